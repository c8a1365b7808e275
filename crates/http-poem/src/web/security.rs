//! The second factor on the web: the code a password sign-in asks for when the account
//! has one (`/dashboard/login/code`; the password's result waits in an encrypted
//! cookie, `consultpay_2fa`, for five minutes), and the page where a staff member sets
//! it up, sees their recovery codes once, and turns it off (`/dashboard/security`).

use askama::Template;
use billing_core::BillingError;
use billing_core::ids::UserId;
use billing_core::second_factor::SecondFactorStatus;
use billing_core::session::PendingSecondFactor;
use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem::web::cookie::SameSite;
use poem::web::{Data, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::{Deserialize, Serialize};

use super::dashboard::{Staff, open_session, throttled};
use super::session::Sealed;
use super::{Checked, Ctx, Layout, form_status, message, render, with_status};
use crate::state::HttpState;

/// Where a correct password waits for its code.
const PENDING: Sealed = Sealed {
    name: "consultpay_2fa",
    path: "/dashboard/login",
    same_site: SameSite::Strict,
};

/// What the cookie holds.
#[derive(Serialize, Deserialize)]
struct Carried {
    user: String,
    email: String,
    /// Microseconds since the epoch.
    expires_at: i64,
}

#[derive(Template)]
#[template(path = "login_code.html")]
struct CodeTemplate {
    layout: Layout,
    error: Option<String>,
}

fn code_page(ctx: &Ctx, error: Option<String>) -> Response {
    render(&CodeTemplate {
        layout: ctx.layout(ctx.t.login_title, None, ""),
        error,
    })
}

/// After a correct password, for an account with a second factor: the form that asks
/// for the code.
pub(super) fn ask_for_code(
    ctx: &Ctx,
    req: &Request,
    state: &HttpState,
    pending: &PendingSecondFactor,
) -> Response {
    let carried = Carried {
        user: pending.user.to_string(),
        email: pending.email.clone(),
        expires_at: pending.expires_at.timestamp_micros(),
    };
    let ttl = billing_core::session::SECOND_FACTOR_WITHIN
        .to_std()
        .unwrap_or_default();
    if PENDING.put(req.cookie(), &carried, ttl, state).is_err() {
        return message(
            ctx,
            StatusCode::SERVICE_UNAVAILABLE,
            ctx.t.error_title,
            ctx.t.login_unavailable,
            Some(("/dashboard/login", ctx.t.back)),
        );
    }
    code_page(ctx, None)
}

/// A one-time code typed in a form (at sign-in, to confirm or turn off the factor);
/// never printed.
#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

impl std::fmt::Debug for CodeForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeForm").finish_non_exhaustive()
    }
}

/// The code: signed in, or asked again.
#[handler]
pub async fn code_submit(
    ctx: Ctx,
    req: &Request,
    Checked(form): Checked<CodeForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    let pending = PENDING.get::<Carried>(req.cookie(), state).and_then(|c| {
        Some(PendingSecondFactor {
            user: c.user.parse::<UserId>().ok()?,
            email: c.email,
            expires_at: DateTime::<Utc>::from_timestamp_micros(c.expires_at)?,
        })
    });
    let Some(pending) = pending else {
        return Redirect::see_other("/dashboard/login").into_response();
    };
    let from = crate::ratelimit::client_key(req, state.settings.rate_limits.trusted_proxies);
    match state
        .billing
        .sessions
        .complete_second_factor(&pending, &form.code, from.as_deref())
        .await
    {
        Ok(signed_in) => {
            PENDING.forget(req.cookie(), state);
            open_session(req, state, &signed_in).await;
            Redirect::see_other("/dashboard").into_response()
        }
        Err(BillingError::TooManyAttempts { retry_after }) => {
            let minutes = billing_core::error::minutes_up(retry_after);
            let text = ctx.t.login_throttled.replace("{n}", &minutes.to_string());
            throttled(code_page(&ctx, Some(text)), minutes)
        }
        Err(BillingError::Access(_)) => with_status(
            code_page(&ctx, Some(ctx.t.code_wrong.to_owned())),
            StatusCode::UNAUTHORIZED,
        ),
        Err(e) => {
            tracing::warn!(error = %e, "second factor failed");
            message(
                &ctx,
                StatusCode::SERVICE_UNAVAILABLE,
                ctx.t.error_title,
                ctx.t.login_unavailable,
                Some(("/dashboard/login", ctx.t.back)),
            )
        }
    }
}

// ---------------------------------------------------------------- the security page

#[derive(Template)]
#[template(path = "security.html")]
struct SecurityTemplate {
    layout: Layout,
    /// `off`, `pending`, `on`.
    status: &'static str,
    recovery_left: u32,
    /// Setting up: the QR code (SVG) and the secret to type.
    enrolment: Option<(String, String)>,
    /// Just confirmed: the recovery codes, shown once.
    recovery_codes: Vec<String>,
    error: Option<&'static str>,
}

async fn security_view(
    staff: &Staff,
    state: &HttpState,
    enrolment: Option<(String, String)>,
    recovery_codes: Vec<String>,
    error: Option<&'static str>,
) -> Response {
    let status = match state.billing.second_factor.status(&staff.actor).await {
        Ok(status) => status,
        Err(e) => return staff.refusal(e),
    };
    let (status, recovery_left) = match status {
        SecondFactorStatus::On { recovery_left } => ("on", recovery_left),
        SecondFactorStatus::Pending => ("pending", 0),
        _ => ("off", 0),
    };
    let page = render(&SecurityTemplate {
        layout: staff.layout(staff.ctx.t.security_title, "sessions"),
        status,
        recovery_left,
        enrolment,
        recovery_codes,
        error,
    });
    with_status(page, form_status(error.is_some()))
}

/// The staff member's second factor: on or off, and the way to change it.
#[handler]
pub async fn security_page(staff: Staff, Data(state): Data<&HttpState>) -> Response {
    security_view(&staff, state, None, vec![], None).await
}

/// An SVG QR code of `text`, or nothing if it does not fit one.
fn qr_svg(text: &str) -> String {
    qrcode::QrCode::new(text.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build()
        })
        .unwrap_or_default()
}

/// Starts setting up: a new secret, shown as a QR code and as text.
#[handler]
pub async fn enrol_submit(
    staff: Staff,
    _: Checked<super::NoFields>,
    Data(state): Data<&HttpState>,
) -> Response {
    match state.billing.second_factor.enrol(&staff.actor).await {
        Ok(enrolment) => {
            let shown = (
                qr_svg(&enrolment.uri),
                enrolment.secret.as_base32().to_owned(),
            );
            security_view(&staff, state, Some(shown), vec![], None).await
        }
        Err(BillingError::Conflict) => security_view(&staff, state, None, vec![], None).await,
        Err(e) => staff.refusal(e),
    }
}

/// Confirms with a first code: on, and the recovery codes shown once.
#[handler]
pub async fn confirm_submit(
    staff: Staff,
    Checked(form): Checked<CodeForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    match state
        .billing
        .second_factor
        .confirm(&staff.actor, &form.code)
        .await
    {
        Ok(codes) => security_view(&staff, state, None, codes, None).await,
        Err(BillingError::Validation { .. }) => {
            security_view(&staff, state, None, vec![], Some(staff.ctx.t.code_wrong)).await
        }
        Err(BillingError::Conflict) => security_view(&staff, state, None, vec![], None).await,
        Err(e) => staff.refusal(e),
    }
}

/// Turns it off, given a current code.
#[handler]
pub async fn disable_submit(
    staff: Staff,
    Checked(form): Checked<CodeForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    match state
        .billing
        .second_factor
        .disable(&staff.actor, &form.code)
        .await
    {
        Ok(()) => security_view(&staff, state, None, vec![], None).await,
        Err(BillingError::Validation { .. }) => {
            security_view(&staff, state, None, vec![], Some(staff.ctx.t.code_wrong)).await
        }
        Err(e) => staff.refusal(e),
    }
}

// ---------------------------------------------------------------- API tokens

/// A token as the tokens page lists it.
#[derive(Debug)]
pub struct TokenLine {
    pub id: String,
    pub name: String,
    pub created: String,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensTemplate {
    layout: Layout,
    tokens: Vec<TokenLine>,
    /// Just made: the token, shown once.
    made: Option<String>,
    error: Option<&'static str>,
}

async fn tokens_view(
    staff: &Staff,
    state: &HttpState,
    made: Option<String>,
    error: Option<&'static str>,
) -> Response {
    let tokens = match state.billing.staff.tokens(&staff.actor).await {
        Ok(tokens) => tokens,
        Err(e) => return staff.refusal(e),
    };
    let (tz, lang, t) = (staff.tz(), staff.ctx.lang, staff.ctx.t);
    let when = |at| super::format::datetime_short(at, tz, lang);
    let tokens = tokens
        .into_iter()
        .map(|token| TokenLine {
            id: token.id.as_str().to_owned(),
            name: token.name.unwrap_or_else(|| t.tokens_operator.to_owned()),
            created: when(token.created_at),
            last_used: token
                .last_used_at
                .map_or_else(|| t.tokens_never.to_owned(), when),
        })
        .collect();
    let page = render(&TokensTemplate {
        layout: staff.layout(t.tokens_title, "sessions"),
        tokens,
        made,
        error,
    });
    with_status(page, form_status(error.is_some()))
}

/// The staff member's API tokens: make one, see when each was last used, revoke.
#[handler]
pub async fn tokens_page(staff: Staff, Data(state): Data<&HttpState>) -> Response {
    tokens_view(&staff, state, None, None).await
}

#[derive(Debug, Deserialize)]
pub struct NewTokenForm {
    #[serde(default)]
    name: String,
}

/// Makes a token; the page shows it once.
#[handler]
pub async fn create_token_submit(
    staff: Staff,
    Checked(form): Checked<NewTokenForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    match state
        .billing
        .staff
        .create_token(&staff.actor, &form.name)
        .await
    {
        Ok(made) => tokens_view(&staff, state, Some(made.token.expose().to_owned()), None).await,
        Err(BillingError::Validation { .. }) => {
            tokens_view(&staff, state, None, Some(staff.ctx.t.tokens_name_refused)).await
        }
        Err(e) => staff.refusal(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct RevokeTokenForm {
    #[serde(default)]
    id: String,
}

/// Revokes one of the staff member's tokens.
#[handler]
pub async fn revoke_token_submit(
    staff: Staff,
    Checked(form): Checked<RevokeTokenForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    match state
        .billing
        .staff
        .revoke_own_token(&staff.actor, &form.id)
        .await
    {
        Ok(()) => Redirect::see_other("/dashboard/tokens").into_response(),
        Err(e) => staff.refusal(e),
    }
}
