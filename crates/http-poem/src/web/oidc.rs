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
use poem::web::cookie::SameSite;
use poem::web::{Data, Query, Redirect};
use poem::{IntoResponse, Request, Response, handler};
use serde::{Deserialize, Serialize};

use super::session::Sealed;
use super::{Ctx, MessagePage, message, render};
use crate::state::HttpState;

/// Where `state`, `nonce`, verifier and link wait for the provider's answer.
const CARRIED: Sealed = Sealed {
    name: "consultpay_oidc",
    path: "/dashboard/oidc",
    same_site: SameSite::Lax,
};

/// What the cookie holds.
#[derive(Serialize, Deserialize)]
struct Carried {
    state: String,
    nonce: String,
    verifier: String,
    link: Option<String>,
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
            let ttl = std::time::Duration::from_secs(600);
            if CARRIED.put(req.cookie(), &carried, ttl, state).is_err() {
                return unavailable(&ctx);
            }
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
    let carried: Option<Carried> = CARRIED.get(req.cookie(), state);
    // Used once, whatever happens next.
    CARRIED.forget(req.cookie(), state);
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
            super::dashboard::open_session(req, state, &signed_in).await;
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
