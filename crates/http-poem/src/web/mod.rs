//! The pages: the patient's pay page and the staff dashboard, server-rendered with
//! compile-checked templates (askama), in French and English, with as little
//! JavaScript as possible and nothing loaded from a CDN.
//!
//! Staff sign in with their e-mail and password (or an access token); the server keeps
//! the session, the browser an HttpOnly, SameSite=Strict cookie naming it
//! ([`session`]). Every form carries a CSRF
//! token (bound to the session once signed in) and passes an origin check on submit.

pub mod dashboard;
pub use billing_core::format;
pub mod i18n;
pub mod oidc;
pub mod pay;
pub mod receipts;
pub mod security;
pub mod session;
pub mod team;

use std::time::Duration;

use askama::Template;
use billing_core::Lang;
use billing_core::access::{Actor, Role};
use poem::http::StatusCode;
use poem::middleware::{CookieJarManager, Csrf, SetHeader};
use poem::web::cookie::{CookieJar, SameSite};
use poem::web::{CsrfToken, CsrfVerifier, Html};
use poem::{
    Endpoint, EndpointExt, FromRequest, IntoResponse, Request, RequestBody, Response, Route, get,
    handler, post,
};
use sha2::{Digest, Sha256};

use crate::problem::Problem;
use crate::state::HttpState;
use i18n::Texts;

/// What the base template shows around every page.
#[derive(Debug)]
pub struct Layout {
    pub t: &'static Texts,
    pub lang: Lang,
    pub sandbox: bool,
    pub title: String,
    pub lang_switch_url: String,
    pub user: Option<UserBox>,
    pub nav: &'static str,
    pub csrf: String,
}

#[derive(Debug, Clone)]
pub struct UserBox {
    pub name: String,
    pub role: &'static str,
    pub practitioner: bool,
}

/// The request context every page handler starts from.
pub struct Ctx {
    pub lang: Lang,
    pub t: &'static Texts,
    pub csrf: String,
    pub path_and_query: String,
    pub sandbox: bool,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("lang", &self.lang)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    pub fn new(req: &Request, jar: &CookieJar, csrf: &CsrfToken, state: &HttpState) -> Ctx {
        let lang = i18n::detect(req, jar);
        // Signed in, forms carry the session's own token; otherwise poem's.
        let csrf = match session::presented(req) {
            Some(s) => session::csrf_token(&csrf_key(state), &s),
            None => csrf.0.clone(),
        };
        Ctx {
            lang,
            t: i18n::texts(lang),
            csrf,
            path_and_query: req.uri().path().to_owned(),
            sandbox: state.settings.sandbox,
        }
    }

    pub fn layout(&self, title: &str, user: Option<UserBox>, nav: &'static str) -> Layout {
        Layout {
            t: self.t,
            lang: self.lang,
            sandbox: self.sandbox,
            title: title.to_owned(),
            lang_switch_url: format!("{}?lang={}", self.path_and_query, self.t.other_lang),
            user,
            nav,
            csrf: self.csrf.clone(),
        }
    }
}

/// A page carried as an extractor's error (the sign-in redirect, the CSRF refusal):
/// marked so that the routes' catch-all passes it through instead of turning it into
/// a problem document.
#[derive(Clone, Copy, Debug)]
pub struct Rendered;

pub fn rendered(resp: Response) -> poem::Error {
    let mut err = poem::Error::from_response(resp);
    err.set_data(Rendered);
    err
}

/// The server state, which the routes attach to every request.
pub fn http_state(req: &Request) -> poem::Result<&HttpState> {
    req.data::<HttpState>()
        .ok_or_else(|| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error").into())
}

impl<'a> FromRequest<'a> for Ctx {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let csrf = <&CsrfToken>::from_request(req, body).await?;
        Ok(Ctx::new(req, req.cookie(), csrf, http_state(req)?))
    }
}

/// A submitted form whose origin and CSRF token were verified: a cross-site form
/// (`Origin`, `Sec-Fetch-Site`) or one without a valid token is answered with the
/// refusal page and never reaches the handler. With a session cookie, the token must
/// be that session's; without, poem's double-submit token.
#[derive(Debug)]
pub struct Checked<T>(pub T);

/// A form with nothing but its CSRF token (a button).
#[derive(Debug, serde::Deserialize)]
pub struct NoFields {}

#[derive(serde::Deserialize)]
struct CsrfField {
    csrf_token: String,
}

impl<'a, T: serde::de::DeserializeOwned> FromRequest<'a> for Checked<T> {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let ctx = Ctx::from_request(req, body).await?;
        let bytes = body.take()?.into_bytes().await?;
        let token = serde_urlencoded::from_bytes::<CsrfField>(&bytes).map(|f| f.csrf_token);
        let state = http_state(req)?;
        let origin = session::origin_of(&state.settings.public_url);
        let presented = session::presented(req);
        // The sign-in form is shown to nobody signed in, whatever cookie the browser
        // holds (another tab may have signed in since): it also takes poem's token.
        let anonymous_form = presented.is_none()
            || matches!(
                req.uri().path(),
                "/dashboard/login" | "/dashboard/login/code" | "/dashboard/forgot"
            );
        let valid = match token {
            Ok(t) => {
                presented
                    .as_deref()
                    .is_some_and(|s| session::csrf_valid(&csrf_key(state), s, &t))
                    || (anonymous_form
                        && <&CsrfVerifier>::from_request(req, body).await?.is_valid(&t))
            }
            Err(_) => false,
        };
        if !(valid && session::same_origin(req, &origin)) {
            return Err(rendered(message(
                &ctx,
                StatusCode::FORBIDDEN,
                ctx.t.error_title,
                ctx.t.flash_csrf,
                Some(("/dashboard", ctx.t.back)),
            )));
        }
        serde_urlencoded::from_bytes::<T>(&bytes)
            .map(Checked)
            .map_err(|e| Problem::invalid("form", e.to_string()).into())
    }
}

/// Renders a template; a template error is a bug, answered as a 500 problem.
pub fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error").into_response()
        }
    }
}

/// A form's page status: `422` when it shows what was refused, else `200`.
pub fn form_status(refused: bool) -> StatusCode {
    if refused {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    }
}

pub fn with_status(mut resp: Response, status: StatusCode) -> Response {
    resp.set_status(status);
    resp
}

/// A message page (errors, confirmations).
#[derive(Debug, Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub layout: Layout,
    pub heading: String,
    pub text: String,
    pub link: Option<String>,
    pub link_text: String,
    pub refresh_to: Option<String>,
}

pub fn message(
    ctx: &Ctx,
    status: StatusCode,
    heading: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Response {
    let page = MessagePage {
        layout: ctx.layout(heading, None, ""),
        heading: heading.to_owned(),
        text: text.to_owned(),
        link: link.map(|(url, _)| url.to_owned()),
        link_text: link.map(|(_, t)| t.to_owned()).unwrap_or_default(),
        refresh_to: None,
    };
    with_status(render(&page), status)
}

pub fn user_box(actor: &Actor, t: &Texts) -> Option<UserBox> {
    match actor {
        Actor::Staff(u) => Some(UserBox {
            name: u.name.clone(),
            role: match u.role {
                Role::Practitioner(_) => t.role_practitioner,
                Role::Secretary(_) => t.role_secretary,
            },
            practitioner: matches!(u.role, Role::Practitioner(_)),
        }),
        _ => None,
    }
}

/// The key of signed-in forms' CSRF tokens.
fn csrf_key(state: &HttpState) -> [u8; 32] {
    derive(&state.settings.session_secret, b"csrf-session")
}

pub(super) fn derive(secret: &[u8], purpose: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(purpose);
    h.update(secret);
    h.finalize().into()
}

const APP_CSS: &str = include_str!("../../static/app.css");
const APP_JS: &str = include_str!("../../static/app.js");
const ELEMENTS_JS: &str = include_str!("../../static/elements.js");
const WAITING_JS: &str = include_str!("../../static/waiting.js");

fn asset(body: &'static str, content_type: &'static str) -> Response {
    Response::builder()
        .content_type(content_type)
        .header("cache-control", "public, max-age=3600")
        .body(body)
}

#[handler]
fn app_css() -> Response {
    asset(APP_CSS, "text/css; charset=utf-8")
}

#[handler]
fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

#[handler]
fn waiting_js() -> Response {
    asset(WAITING_JS, "text/javascript; charset=utf-8")
}

#[handler]
fn elements_js() -> Response {
    asset(ELEMENTS_JS, "text/javascript; charset=utf-8")
}

/// `/`: the dashboard (which sends whoever is not signed in to the sign-in page).
#[handler]
pub fn home() -> Response {
    poem::web::Redirect::see_other("/dashboard").into_response()
}

/// The pages' routes, with sessions, CSRF and security headers.
pub fn routes(state: &HttpState) -> impl Endpoint + use<> {
    // Pages only; the JSON API and the webhook are routed in `crate::app`.
    let settings = &state.settings;
    let secure = settings.public_url.starts_with("https://");
    let csrf = Csrf::new()
        .cookie_name("consultpay_csrf")
        .key(derive(&settings.session_secret, b"csrf"))
        .secure(secure)
        .http_only(true)
        .same_site(SameSite::Strict)
        .ttl(Duration::from_secs(12 * 3600));
    let stripe = !settings.sandbox;
    let csp = if stripe {
        "default-src 'self'; script-src 'self' https://js.stripe.com; frame-src https://js.stripe.com https://hooks.stripe.com; \
         connect-src 'self' https://api.stripe.com; img-src 'self' data: https://*.stripe.com; style-src 'self'; \
         form-action 'self' https://checkout.stripe.com https://connect.stripe.com; frame-ancestors 'none'; base-uri 'none'"
    } else {
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    };
    Route::new()
        .at("/static/app.css", get(app_css))
        .at("/static/app.js", get(app_js))
        .at("/static/elements.js", get(elements_js))
        .at("/pay/:token", get(pay::pay_page))
        .at("/pay/:token/checkout", post(pay::checkout_submit))
        .at("/pay/:token/waiting-room", get(pay::waiting_room_page))
        .at("/pay/:token/join", get(pay::join))
        .at("/pay/:token/cancel", post(pay::cancel_submit))
        .at("/static/waiting.js", get(waiting_js))
        .at("/pay/:token/receipt", get(receipts::receipt_page))
        .at("/pay/:token/receipt.pdf", get(receipts::receipt_pdf))
        .at(
            "/pay/:token/credit-notes/:file",
            get(receipts::credit_note_pdf),
        )
        .at("/dashboard", get(dashboard::overview))
        .at(
            "/dashboard/login",
            get(dashboard::login_page).post(dashboard::login_submit),
        )
        .at("/dashboard/logout", post(dashboard::logout_submit))
        .at("/dashboard/sessions", get(dashboard::sessions_page))
        .at(
            "/dashboard/sessions/end-all",
            post(dashboard::end_all_sessions_submit),
        )
        .at(
            "/dashboard/password/:token",
            get(team::password_page).post(team::password_submit),
        )
        .at("/dashboard/login/code", post(security::code_submit))
        .at("/dashboard/security", get(security::security_page))
        .at("/dashboard/security/totp", post(security::enrol_submit))
        .at(
            "/dashboard/security/totp/confirm",
            post(security::confirm_submit),
        )
        .at(
            "/dashboard/security/totp/disable",
            post(security::disable_submit),
        )
        .at(
            "/dashboard/tokens",
            get(security::tokens_page).post(security::create_token_submit),
        )
        .at(
            "/dashboard/tokens/revoke",
            post(security::revoke_token_submit),
        )
        .at("/dashboard/oidc/start", get(oidc::start))
        .at("/dashboard/oidc/callback", get(oidc::callback))
        .at(
            "/dashboard/forgot",
            get(team::forgot_page).post(team::forgot_submit),
        )
        .at("/dashboard/team", get(team::team_page))
        .at("/dashboard/team/invite", post(team::invite_submit))
        .at("/dashboard/team/:user/link", post(team::new_link_submit))
        .at("/dashboard/fee-preview", get(dashboard::fee_preview))
        .at("/dashboard/payments.csv", get(dashboard::csv_download))
        .at("/dashboard/payments/:id", get(dashboard::payment_page))
        .at(
            "/dashboard/payments/:id/receipt.pdf",
            get(dashboard::receipt_pdf),
        )
        .at(
            "/dashboard/payments/:id/credit-notes/:file",
            get(dashboard::credit_note_pdf),
        )
        .at(
            "/dashboard/payments/:id/validate",
            post(dashboard::validate_submit),
        )
        .at(
            "/dashboard/payments/:id/release",
            post(dashboard::release_submit),
        )
        .at(
            "/dashboard/payments/:id/refund",
            post(dashboard::refund_submit),
        )
        .at(
            "/dashboard/consultations/:id/start",
            post(dashboard::start_submit),
        )
        .at(
            "/dashboard/consultations/:id/cancel",
            post(dashboard::cancel_consultation_submit),
        )
        .at(
            "/dashboard/consultations/:id/reschedule",
            post(dashboard::reschedule_submit),
        )
        .at(
            "/dashboard/consultations/:id/no-show",
            post(dashboard::no_show_submit),
        )
        .at(
            "/dashboard/consultations/:id/cancellation-fee",
            post(dashboard::cancellation_fee_submit),
        )
        .at(
            "/dashboard/schedule",
            get(dashboard::schedule_page).post(dashboard::schedule_submit),
        )
        .at(
            "/dashboard/preferences",
            get(dashboard::preferences_page).post(dashboard::preferences_submit),
        )
        .at("/dashboard/profile", post(dashboard::profile_submit))
        .at("/dashboard/messages", get(dashboard::messages_page))
        .at(
            "/dashboard/payments/:id/send-link",
            post(dashboard::send_link_submit),
        )
        .at(
            "/dashboard/services",
            get(dashboard::services_page).post(dashboard::add_service),
        )
        .at("/dashboard/services/:id", post(dashboard::update_service))
        .at("/dashboard/stripe/link", post(dashboard::stripe_link))
        .at("/dashboard/stripe/onboard", post(dashboard::stripe_onboard))
        .at("/dashboard/stripe/verify", post(dashboard::stripe_verify))
        .at(
            "/dashboard/stripe/unlink",
            get(dashboard::unlink_page).post(dashboard::unlink_submit),
        )
        .at(
            "/connect/stripe/callback",
            get(crate::pages::oauth_callback),
        )
        .at(
            "/connect/stripe/onboarding",
            get(crate::pages::onboarding_return),
        )
        .at(
            "/sandbox/connect/authorize",
            get(crate::pages::sandbox_authorize),
        )
        .at(
            "/sandbox/checkout/:id",
            get(crate::pages::sandbox_checkout_page).post(crate::pages::sandbox_checkout_pay),
        )
        .at(
            "/sandbox/checkout/:id/authenticate",
            post(crate::pages::sandbox_checkout_authenticate),
        )
        .with(csrf)
        .with(CookieJarManager::new())
        .with(
            SetHeader::new()
                .overriding("content-security-policy", csp)
                .overriding("x-content-type-options", "nosniff")
                .overriding("referrer-policy", "no-referrer")
                .overriding("x-frame-options", "DENY"),
        )
}
