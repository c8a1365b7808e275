//! Sign-in with the OpenID Connect provider: `/dashboard/oidc/start` sends the browser
//! to the provider (with, from an invitation or reset page, the link that will tie the
//! identity to its account), `/dashboard/oidc/callback` brings it back signed in.
//!
//! What the browser carries meanwhile (`state`, `nonce`, the PKCE verifier and the
//! link) is in an encrypted, authenticated cookie (`consultpay_oidc`: AES-GCM under a
//! key derived from the session secret, `Path=/dashboard/oidc`, ten minutes,
//! `SameSite=Lax` so that the provider's redirect back carries it). It is removed on
//! the way back, whatever happens.

use billing_core::BillingError;
use billing_core::identity::{IdentityError, PendingLogin};
use poem::http::StatusCode;
use poem::web::cookie::{Cookie, CookieKey, SameSite};
use poem::web::{Data, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::{Deserialize, Serialize};

use super::{Ctx, MessagePage, derive, message, render, session};
use crate::state::HttpState;

const COOKIE: &str = "consultpay_oidc";
const PATH: &str = "/dashboard/oidc";

/// What the cookie holds.
#[derive(Serialize, Deserialize)]
struct Carried {
    state: String,
    nonce: String,
    verifier: String,
    link: Option<String>,
}

fn key(state: &HttpState) -> CookieKey {
    CookieKey::derive_from(&derive(&state.settings.session_secret, b"oidc-cookie"))
}

fn cookie(value: &str, state: &HttpState) -> Cookie {
    let mut c = Cookie::new_with_str(COOKIE, value);
    c.set_path(PATH);
    c.set_http_only(true);
    c.set_secure(state.settings.public_url.starts_with("https://"));
    c.set_same_site(SameSite::Lax);
    c
}

#[derive(Debug, Deserialize)]
pub struct StartQuery {
    link: Option<String>,
}

fn unavailable(ctx: &Ctx) -> Response {
    message(
        ctx,
        StatusCode::SERVICE_UNAVAILABLE,
        ctx.t.error_title,
        ctx.t.oidc_unavailable,
        Some(("/dashboard/login", ctx.t.login_title)),
    )
}

/// Sends the browser to the provider's sign-in page.
#[handler]
pub async fn start(
    ctx: Ctx,
    req: &Request,
    Query(query): Query<StartQuery>,
    Data(state): Data<&HttpState>,
) -> Response {
    match state.billing.oidc.begin().await {
        Ok(request) => {
            let carried = Carried {
                state: request.pending.state,
                nonce: request.pending.nonce,
                verifier: request.pending.verifier,
                link: query.link.filter(|l| !l.is_empty()),
            };
            let Ok(value) = serde_json::to_string(&carried) else {
                return unavailable(&ctx);
            };
            let mut c = cookie(&value, state);
            c.set_max_age(std::time::Duration::from_secs(600));
            let key = key(state);
            req.cookie().private_with_key(&key).add(c);
            Redirect::see_other(request.url).into_response()
        }
        Err(BillingError::Identity(IdentityError::NotConfigured)) => message(
            &ctx,
            StatusCode::NOT_FOUND,
            ctx.t.error_title,
            ctx.t.oidc_not_configured,
            Some(("/dashboard/login", ctx.t.login_title)),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "OpenID sign-in could not start");
            unavailable(&ctx)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    error: Option<String>,
}

/// The provider sends the browser back here.
#[handler]
pub async fn callback(
    ctx: Ctx,
    req: &Request,
    Query(query): Query<CallbackQuery>,
    Data(state): Data<&HttpState>,
) -> Response {
    let key = key(state);
    let jar = req.cookie().private_with_key(&key);
    let carried = jar
        .get(COOKIE)
        .and_then(|c| serde_json::from_str::<Carried>(c.value_str()).ok());
    // Used once, whatever happens next.
    let mut forget = cookie("", state);
    forget.set_max_age(std::time::Duration::ZERO);
    req.cookie().add(forget);
    let refuse = |status: StatusCode, text: &str| {
        message(
            &ctx,
            status,
            ctx.t.oidc_title,
            text,
            Some(("/dashboard/login", ctx.t.login_title)),
        )
    };
    let Some(carried) = carried else {
        return refuse(StatusCode::BAD_REQUEST, ctx.t.oidc_expired);
    };
    if query.error.is_some() {
        return refuse(StatusCode::UNAUTHORIZED, ctx.t.oidc_cancelled);
    }
    let pending = PendingLogin {
        state: carried.state,
        nonce: carried.nonce,
        verifier: carried.verifier,
    };
    let signed_in = state
        .billing
        .oidc
        .sign_in(&pending, &query.state, &query.code, carried.link.as_deref())
        .await;
    match signed_in {
        Ok(signed_in) => {
            if let Some(previous) = session::presented(req)
                && let Err(e) = state.billing.sessions.sign_out(&previous).await
            {
                tracing::warn!(error = %e, "the previous session could not be ended");
            }
            session::open(req.cookie(), &signed_in.token, state);
            // A page that moves on by itself rather than a redirect: the browser came
            // from the provider's site, and would not send the (SameSite=Strict)
            // session cookie along a redirect chain that started there.
            render(&MessagePage {
                layout: ctx.layout(ctx.t.oidc_title, None, ""),
                heading: ctx.t.oidc_title.to_owned(),
                text: ctx.t.oidc_signed_in.to_owned(),
                link: Some("/dashboard".to_owned()),
                link_text: ctx.t.back.to_owned(),
                refresh_to: Some("/dashboard".to_owned()),
            })
        }
        Err(BillingError::Identity(IdentityError::NotLinked)) => {
            refuse(StatusCode::FORBIDDEN, ctx.t.oidc_not_linked)
        }
        Err(BillingError::NotFound(_)) => refuse(StatusCode::NOT_FOUND, ctx.t.password_link_gone),
        Err(BillingError::Validation { .. }) => {
            refuse(StatusCode::CONFLICT, ctx.t.oidc_identity_taken)
        }
        Err(BillingError::Identity(IdentityError::Rejected(why))) => {
            tracing::info!(%why, "OpenID sign-in refused");
            refuse(StatusCode::UNAUTHORIZED, ctx.t.oidc_rejected)
        }
        Err(e) => {
            tracing::warn!(error = %e, "OpenID sign-in failed");
            unavailable(&ctx)
        }
    }
}
