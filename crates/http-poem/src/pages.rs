//! Browser routes outside the dashboard and pay page: the OAuth callback and, in
//! sandbox mode, the stand-ins for Stripe's hosted pages (consent, checkout, 3-D
//! Secure).

use askama::Template;
use billing_core::BillingError;
use billing_core::Lang;
use billing_core::consultation::service::PayPage;
use billing_core::gateway::{GatewayError, SandboxNext};
use billing_core::ids::CheckoutSessionId;
use billing_core::practitioner::service::OAuthCallback;
use poem::http::StatusCode;
use poem::web::{Data, Path, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::Deserialize;

use crate::problem::{Problem, status_of};
use crate::state::{HttpSettings, HttpState};
use crate::web::dashboard::error_text;
use crate::web::session::staff;
use crate::web::{Checked, Ctx, Layout, MessagePage, format, message, render};
use crate::wire::{FailureView, PayView, StatusLabel, amount};

/// The pay page's data, as the JSON API and the HTML page both show it.
pub fn pay_view(page: &PayPage, settings: &HttpSettings, token: &str) -> PayView {
    let c = &page.record.consultation;
    let p = page.record.payment.as_ref();
    PayView {
        consultation_id: c.id.as_uuid(),
        practitioner_name: page.practitioner_name.as_str().to_owned(),
        starts_at: c.starts_at,
        time_zone: page.time_zone.name().to_owned(),
        payment_required: p.is_some(),
        amount: p.map(|p| amount(&p.amount())),
        currency: p.map(|p| p.amount().currency().code().to_owned()),
        status: p.map(|p| p.status().as_str().to_owned()),
        status_label: p.map(|p| StatusLabel::of(p.status())),
        failure: p.and_then(|p| p.failure()).map(|f| FailureView {
            code: f.code.clone(),
            decline_code: f.decline_code.clone(),
            message: f.message.clone(),
        }),
        can_enter: page.can_enter,
        waiting_room: page.waiting_room,
        can_pay: page.can_pay,
        hold_from: page.hold_from,
        waiting_room_url: page.waiting_room.then(|| {
            settings
                .waiting_room(c.id.as_uuid())
                .unwrap_or_else(|| format!("{}/pay/{token}/waiting-room", settings.public_url))
        }),
        consultation_status: c.status.as_str().to_owned(),
        cancellation_policy: policy_text(page, c.lang),
        policy_accepted_at: p.and_then(|p| p.terms()).map(|t| t.at),
        can_cancel: page.can_cancel,
    }
}

/// The policy the patient accepted, or (before paying) the one they accept by
/// paying, in `lang`. None without online payment.
pub fn policy_text(page: &PayPage, lang: Lang) -> Option<String> {
    let p = page.record.payment.as_ref()?;
    Some(match p.terms() {
        Some(t) => t.text.clone(),
        None => page
            .policy
            .statement(p.authorized().unwrap_or(p.amount()), lang),
    })
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    /// Set on the second pass through our own hop page.
    hop: Option<String>,
}

/// A page of ours (not a redirect) that leads on: the SameSite=Strict session cookie,
/// withheld on the cross-site hop back from Stripe, is sent again from here.
fn continue_to(ctx: &Ctx, url: &str, text: &str) -> Response {
    render(&MessagePage {
        layout: ctx.layout("Stripe", None, ""),
        heading: "Stripe".to_owned(),
        text: text.to_owned(),
        link: Some(url.to_owned()),
        link_text: ctx.t.nav_overview.to_owned(),
        refresh_to: Some(url.to_owned()),
    })
}

/// Stripe's OAuth redirect: links the account of the browser's signed-in practitioner
/// (the state must have been issued to them), then leads back to the dashboard.
///
/// The browser arrives from connect.stripe.com without the SameSite=Strict session
/// cookie, so the first pass only hops through a page of ours back to this URL; that
/// same-site navigation carries the session, and the second pass completes.
/// An API client (no browser session) follows the redirect with its bearer token
/// instead — a header no other site can make a browser send — and is answered with a
/// plain redirect.
#[handler]
pub async fn oauth_callback(
    ctx: Ctx,
    req: &Request,
    Query(q): Query<CallbackQuery>,
    Data(state): Data<&HttpState>,
) -> Response {
    let dashboard = state.billing.config.dashboard_url();
    let bearer = bearer_token(req);
    let signed_in = match bearer {
        Some(token) => state.staff(token).await.ok(),
        None => staff(req, state).await,
    };
    let Some(signed_in) = signed_in else {
        if bearer.is_some() {
            return Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated").into_response();
        }
        if q.hop.is_none() {
            let uri = req.original_uri();
            let again = match uri.query() {
                Some(_) => format!("{uri}&hop=1"),
                None => format!("{}?hop=1", uri.path()),
            };
            return continue_to(&ctx, &again, ctx.t.oauth_returning);
        }
        return message(
            &ctx,
            StatusCode::UNAUTHORIZED,
            ctx.t.error_title,
            ctx.t.oauth_sign_in_first,
            Some(("/dashboard/login", ctx.t.login_title)),
        );
    };
    let callback = OAuthCallback {
        code: q.code,
        state: q.state,
        error: q.error,
    };
    let outcome = state
        .billing
        .connect
        .complete_oauth(&callback, &signed_in)
        .await;
    if bearer.is_some() {
        return match outcome {
            Ok(_) => Redirect::see_other(format!("{dashboard}?stripe=linked")).into_response(),
            Err(err) => Problem::from(err).into_response(),
        };
    }
    match outcome {
        Ok(_) => continue_to(
            &ctx,
            &format!("{dashboard}?stripe=linked"),
            ctx.t.flash_linked,
        ),
        Err(err) if err.code() == "oauth_access_denied" => continue_to(
            &ctx,
            &format!("{dashboard}?stripe=denied"),
            ctx.t.flash_denied,
        ),
        Err(err) => message(
            &ctx,
            status_of(&err),
            ctx.t.error_title,
            &error_text(&err, ctx.lang),
            Some((&dashboard, ctx.t.nav_overview)),
        ),
    }
}

/// The token of an `Authorization: Bearer …` header.
fn bearer_token(req: &Request) -> Option<&str> {
    req.headers()
        .get(poem::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[derive(Debug, Deserialize)]
pub struct OnboardingQuery {
    step: Option<String>,
}

/// Where Stripe's onboarding sends the practitioner back (finished, left, or the link
/// expired). Like the OAuth return, it arrives cross-site without the session cookie:
/// a page of ours leads on to the dashboard, which then has it.
#[handler]
pub async fn onboarding_return(
    ctx: Ctx,
    Query(q): Query<OnboardingQuery>,
    Data(state): Data<&HttpState>,
) -> Response {
    let dashboard = state.billing.config.dashboard_url();
    let (flash, text) = match q.step.as_deref() {
        Some("refresh") => ("onboarding_expired", ctx.t.flash_onboarding_expired),
        _ => ("onboarding_back", ctx.t.flash_onboarding_back),
    };
    continue_to(&ctx, &format!("{dashboard}?flash={flash}"), text)
}

#[derive(Debug, Deserialize)]
pub struct AuthorizeQuery {
    state: Option<String>,
    redirect_uri: Option<String>,
    approve: Option<String>,
    deny: Option<String>,
}

#[derive(Template)]
#[template(path = "sandbox_authorize.html")]
struct SandboxAuthorize {
    layout: Layout,
    here: String,
}

/// Sandbox stand-in for Stripe's OAuth consent page.
#[handler]
pub async fn sandbox_authorize(
    ctx: Ctx,
    Query(q): Query<AuthorizeQuery>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Some(sandbox) = &state.billing.sandbox else {
        return Problem::not_found().into_response();
    };
    let callback = state.billing.config.oauth_redirect_uri();
    // Like Stripe, only the registered redirect URI is accepted (no open redirect).
    if q.redirect_uri.as_deref().is_some_and(|r| r != callback) {
        return Problem::invalid("redirect_uri", "not the registered redirect URI").into_response();
    }
    let Some(oauth_state) = q
        .state
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.len() <= 256)
    else {
        return Problem::invalid("state", "missing").into_response();
    };
    let encoded = urlencode(&oauth_state);
    if q.approve.as_deref() == Some("1") {
        return match sandbox.approve_connect(&oauth_state).await {
            Ok(code) => Redirect::see_other(format!(
                "{callback}?code={}&state={encoded}",
                urlencode(&code)
            ))
            .into_response(),
            Err(e) => sandbox_refused(e),
        };
    }
    if q.deny.as_deref() == Some("1") {
        return Redirect::see_other(format!(
            "{callback}?error=access_denied&error_description=The+user+denied+your+request&state={encoded}"
        ))
        .into_response();
    }
    render(&SandboxAuthorize {
        layout: ctx.layout("Stripe", None, ""),
        here: format!(
            "/sandbox/connect/authorize?state={encoded}&redirect_uri={}",
            urlencode(&callback)
        ),
    })
}

/// The sandbox refusing what the visitor typed or clicked is their input's fault (a
/// 4xx), not a gateway outage: unknown test payment methods, sessions, states.
fn sandbox_refused(e: BillingError) -> Response {
    match e {
        BillingError::Gateway(GatewayError::InvalidRequest { param, message, .. }) => {
            Problem::invalid(param.as_deref().unwrap_or("request"), message).into_response()
        }
        BillingError::Gateway(GatewayError::NotFound { .. }) => {
            Problem::not_found().into_response()
        }
        other => Problem::from(other).into_response(),
    }
}

fn session(id: &str) -> Result<CheckoutSessionId, Problem> {
    CheckoutSessionId::parse(id).map_err(|_| Problem::not_found())
}

#[derive(Template)]
#[template(path = "sandbox_checkout.html")]
struct SandboxCheckoutPage {
    layout: Layout,
    session: String,
    description: String,
    amount: String,
    awaiting_authentication: bool,
    cancel_url: String,
}

/// Sandbox stand-in for Stripe Checkout: Stripe's test cards.
#[handler]
pub async fn sandbox_checkout_page(
    ctx: Ctx,
    Path(id): Path<String>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Some(sandbox) = &state.billing.sandbox else {
        return Problem::not_found().into_response();
    };
    let session = match session(&id) {
        Ok(s) => s,
        Err(p) => return p.into_response(),
    };
    match sandbox.checkout(&session).await {
        Ok(c) => render(&SandboxCheckoutPage {
            layout: ctx.layout("Checkout", None, ""),
            session: session.as_str().to_owned(),
            description: c.description,
            amount: format::money(&c.amount, ctx.lang),
            awaiting_authentication: c.awaiting_authentication,
            cancel_url: c.cancel_url,
        }),
        Err(e) => sandbox_refused(e),
    }
}

fn sandbox_next(
    next: SandboxNext,
    session: &CheckoutSessionId,
    cancel_url: Option<String>,
) -> Response {
    let here = format!("/sandbox/checkout/{}", session.as_str());
    match next {
        SandboxNext::Return(url) => Redirect::see_other(url).into_response(),
        SandboxNext::Authenticate => Redirect::see_other(here).into_response(),
        // Declined: back to the pay page, which says so and offers another card.
        SandboxNext::TryAgain { .. } => {
            Redirect::see_other(cancel_url.unwrap_or(here)).into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct PayForm {
    payment_method: String,
}

/// Pays the sandbox session with a Stripe test payment method.
#[handler]
pub async fn sandbox_checkout_pay(
    Path(id): Path<String>,
    Checked(form): Checked<PayForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Some(sandbox) = &state.billing.sandbox else {
        return Problem::not_found().into_response();
    };
    let session = match session(&id) {
        Ok(s) => s,
        Err(p) => return p.into_response(),
    };
    let cancel_url = sandbox.checkout(&session).await.ok().map(|c| c.cancel_url);
    match sandbox.pay(&session, form.payment_method.trim()).await {
        Ok(next) => sandbox_next(next, &session, cancel_url),
        Err(e) => sandbox_refused(e),
    }
}

#[derive(Debug, Deserialize)]
pub struct AuthenticateForm {
    result: String,
}

/// Answers the sandbox's 3-D Secure challenge.
#[handler]
pub async fn sandbox_checkout_authenticate(
    Path(id): Path<String>,
    Checked(form): Checked<AuthenticateForm>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Some(sandbox) = &state.billing.sandbox else {
        return Problem::not_found().into_response();
    };
    let session = match session(&id) {
        Ok(s) => s,
        Err(p) => return p.into_response(),
    };
    let approve = match form.result.as_str() {
        "approve" => true,
        "fail" => false,
        _ => return Problem::invalid("result", "approve or fail").into_response(),
    };
    let cancel_url = sandbox.checkout(&session).await.ok().map(|c| c.cancel_url);
    match sandbox.authenticate(&session, approve).await {
        Ok(next) => sandbox_next(next, &session, cancel_url),
        Err(e) => sandbox_refused(e),
    }
}
