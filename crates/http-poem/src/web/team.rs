//! Staff accounts on the web: the page an invitation or reset link opens (choose a
//! password), and the practitioner's team (invite a secretary, send a new link).

use askama::Template;
use billing_core::BillingError;
use billing_core::invitation::{IssuedLink, LinkPurpose};
use billing_core::staff::StaffRecord;
use poem::http::StatusCode;
use poem::web::{Data, Path, Redirect};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;

use super::dashboard::Staff;
use super::{Checked, Ctx, Layout, form_status, format, message, render, with_status};
use crate::problem::Problem;
use crate::state::HttpState;

// ---------------------------------------------------------------- choose a password

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordTemplate {
    layout: Layout,
    heading: &'static str,
    name: String,
    email: String,
    action: String,
    error: Option<&'static str>,
    /// Where to link an OpenID identity instead, when a provider is configured.
    oidc_start: Option<String>,
}

fn link_gone(ctx: &Ctx) -> Response {
    message(
        ctx,
        StatusCode::NOT_FOUND,
        ctx.t.password_link_gone_title,
        ctx.t.password_link_gone,
        Some(("/dashboard/login", ctx.t.login_title)),
    )
}

fn heading(ctx: &Ctx, purpose: LinkPurpose) -> &'static str {
    match purpose {
        LinkPurpose::Invitation => ctx.t.password_title_invitation,
        LinkPurpose::Reset => ctx.t.password_title_reset,
    }
}

/// The way to link an OpenID identity with this link, when a provider is configured.
fn oidc_start(state: &HttpState, token: &str) -> Option<String> {
    let encoded: String = url_escape(token);
    state
        .billing
        .oidc
        .is_configured()
        .then(|| format!("/dashboard/oidc/start?link={encoded}"))
}

/// A link secret is URL-safe already (`cpl_` and base64url); anything else is
/// dropped rather than trusted into a URL.
fn url_escape(token: &str) -> String {
    token
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

/// The form an invitation or reset link opens: whose account, and a new password.
#[handler]
pub async fn password_page(
    ctx: Ctx,
    Path(token): Path<String>,
    Data(state): Data<&HttpState>,
) -> Response {
    match state.billing.team.open_link(&token).await {
        Ok((link, user)) => render(&PasswordTemplate {
            layout: ctx.layout(heading(&ctx, link.purpose), None, ""),
            heading: heading(&ctx, link.purpose),
            name: user.name,
            email: link.email.as_str().to_owned(),
            action: format!("/dashboard/password/{token}"),
            error: None,
            oidc_start: oidc_start(state, &token),
        }),
        Err(BillingError::NotFound(_)) => link_gone(&ctx),
        Err(e) => Problem::from(e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

impl std::fmt::Debug for PasswordForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordForm").finish_non_exhaustive()
    }
}

/// Sets the password; the link is spent, and the sign-in page says so.
#[handler]
pub async fn password_submit(
    ctx: Ctx,
    Path(token): Path<String>,
    Checked(form): Checked<PasswordForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    let team = &state.billing.team;
    let (link, user) = match team.open_link(&token).await {
        Ok(found) => found,
        Err(BillingError::NotFound(_)) => return link_gone(&ctx),
        Err(e) => return Problem::from(e).into_response(),
    };
    let again = |error: &'static str| {
        with_status(
            render(&PasswordTemplate {
                layout: ctx.layout(heading(&ctx, link.purpose), None, ""),
                heading: heading(&ctx, link.purpose),
                name: user.name.clone(),
                email: link.email.as_str().to_owned(),
                action: format!("/dashboard/password/{token}"),
                error: Some(error),
                oidc_start: oidc_start(state, &token),
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    if form.password != form.confirm {
        return again(ctx.t.password_mismatch);
    }
    match team.redeem(&token, &form.password).await {
        Ok(_) => Redirect::see_other("/dashboard/login?flash=password_set").into_response(),
        Err(BillingError::Validation {
            field: "password", ..
        }) => again(ctx.t.password_length),
        Err(BillingError::Validation { field: "email", .. }) => again(ctx.t.password_email_taken),
        Err(BillingError::NotFound(_)) => link_gone(&ctx),
        Err(e) => Problem::from(e).into_response(),
    }
}

// ---------------------------------------------------------------- the team

/// A secretary as the team page lists them.
#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub since: String,
    pub locked_out: bool,
}

/// A link just made, shown once to pass on.
#[derive(Debug)]
pub struct Issued {
    pub name: String,
    pub email: String,
    pub url: String,
    pub until: String,
}

#[derive(Template)]
#[template(path = "team.html")]
struct TeamTemplate {
    layout: Layout,
    members: Vec<Member>,
    issued: Option<Issued>,
    error: Option<String>,
}

async fn team_view(
    staff: &Staff,
    state: &HttpState,
    issued: Option<&IssuedLink>,
    error: Option<String>,
) -> Response {
    let (tz, lang) = (staff.tz(), staff.ctx.lang);
    let records: Vec<StaffRecord> = match state
        .billing
        .team
        .team(&staff.actor, staff.practitioner.id)
        .await
    {
        Ok(records) => records,
        Err(e) => return staff.refusal(e),
    };
    let issued = issued.map(|link| Issued {
        name: records
            .iter()
            .find(|r| r.user.id == link.user)
            .map(|r| r.user.name.clone())
            .unwrap_or_default(),
        email: link.email.as_str().to_owned(),
        url: link.url.clone(),
        until: format::datetime_short(link.expires_at, tz, lang),
    });
    let members = records
        .into_iter()
        .map(|r| Member {
            id: r.user.id.to_string(),
            name: r.user.name,
            since: format::datetime_short(r.created_at, tz, lang),
            locked_out: r.live_tokens == 0,
        })
        .collect();
    let status = form_status(error.is_some());
    with_status(
        render(&TeamTemplate {
            layout: staff.layout(staff.ctx.t.team_title, "team"),
            members,
            issued,
            error,
        }),
        status,
    )
}

/// The practitioner's secretaries, and the form to invite one.
#[handler]
pub async fn team_page(staff: Staff, Data(state): Data<&HttpState>) -> Response {
    team_view(&staff, state, None, None).await
}

#[derive(Debug, Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
}

/// What a refused invitation says next to the form.
fn invite_error(staff: &Staff, e: &BillingError) -> Option<String> {
    match e {
        BillingError::Validation { field: "email", .. } => {
            Some(staff.ctx.t.team_email_refused.to_owned())
        }
        BillingError::Validation { field: "name", .. } => {
            Some(staff.ctx.t.team_name_refused.to_owned())
        }
        _ => None,
    }
}

/// Creates the secretary's account and shows the invitation link to pass on.
#[handler]
pub async fn invite_submit(
    staff: Staff,
    Checked(form): Checked<InviteForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    match state
        .billing
        .team
        .invite_secretary(&staff.actor, staff.practitioner.id, &form.name, &form.email)
        .await
    {
        Ok(link) => team_view(&staff, state, Some(&link), None).await,
        Err(e) => match invite_error(&staff, &e) {
            Some(text) => team_view(&staff, state, None, Some(text)).await,
            None => staff.refusal(e),
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct NewLinkForm {
    #[serde(default)]
    email: String,
}

/// A new link for a secretary of the team to set their password (a lost one, or an
/// invitation that expired).
#[handler]
pub async fn new_link_submit(
    staff: Staff,
    Path(user): Path<String>,
    Checked(form): Checked<NewLinkForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Ok(user) = user.parse() else {
        return Problem::from(BillingError::NotFound("user")).into_response();
    };
    match state
        .billing
        .team
        .issue_link(&staff.actor, user, &form.email, LinkPurpose::Reset)
        .await
    {
        Ok(link) => team_view(&staff, state, Some(&link), None).await,
        Err(e) => match invite_error(&staff, &e) {
            Some(text) => team_view(&staff, state, None, Some(text)).await,
            None => staff.refusal(e),
        },
    }
}

// ---------------------------------------------------------------- forgotten password

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotTemplate {
    layout: Layout,
    sent: bool,
}

/// "Forgot your password?": the form that asks for the e-mail.
#[handler]
pub async fn forgot_page(ctx: Ctx) -> Response {
    render(&ForgotTemplate {
        layout: ctx.layout(ctx.t.forgot_title, None, ""),
        sent: false,
    })
}

#[derive(Debug, Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    email: String,
}

/// Queues the reset e-mail when the address signs in; says the same either way.
#[handler]
pub async fn forgot_submit(
    ctx: Ctx,
    Checked(form): Checked<ForgotForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    if let Err(e) = state
        .billing
        .team
        .request_reset(&form.email, ctx.lang)
        .await
    {
        tracing::warn!(error = %e, "password reset request failed");
        return message(
            &ctx,
            StatusCode::SERVICE_UNAVAILABLE,
            ctx.t.error_title,
            ctx.t.login_unavailable,
            Some(("/dashboard/forgot", ctx.t.back)),
        );
    }
    render(&ForgotTemplate {
        layout: ctx.layout(ctx.t.forgot_title, None, ""),
        sent: true,
    })
}
