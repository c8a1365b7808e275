//! Operational endpoints (health, readiness, metrics) and the Stripe webhook.

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{Body, IntoResponse, Request, Response, handler};
use serde_json::json;

use billing_core::payment::service::WebhookOutcome;

use crate::problem::Problem;
use crate::state::HttpState;

/// Liveness: the process answers.
#[handler]
pub fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The public keys that verify passes to the video room (a JSON Web Key Set; empty
/// when passes are signed with a shared secret, or not at all). Cacheable for five
/// minutes: a new key is published (`CONSULTPAY_VIDEO_JWT_KEYS`) before it is made
/// to sign (`CONSULTPAY_VIDEO_JWT_SIGNING_KID`).
#[handler]
pub fn jwks(Data(state): Data<&HttpState>) -> Response {
    let body = state
        .settings
        .video_jwks
        .clone()
        .unwrap_or_else(|| r#"{"keys":[]}"#.to_owned());
    Response::builder()
        .content_type("application/jwk-set+json")
        .header("cache-control", "public, max-age=300")
        .body(body)
}

/// Readiness: the database answers.
#[handler]
pub async fn readyz(Data(state): Data<&HttpState>) -> Response {
    match state.readiness.check().await {
        Ok(()) => Json(json!({ "status": "ready" })).into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable").into_response()
        }
    }
}

/// Prometheus text format.
#[handler]
pub fn metrics(Data(state): Data<&HttpState>) -> Response {
    Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

/// `POST /webhooks/stripe`: the raw body is verified against `Stripe-Signature`, the
/// event id stored once, the event applied; 2xx as soon as that is done. Forged or
/// stale → 400; a duplicate → 200, ignored; a storage outage → 503 so Stripe retries.
#[handler]
pub async fn stripe_webhook(req: &Request, body: Body, Data(state): Data<&HttpState>) -> Response {
    let signature = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let bytes = match body.into_bytes().await {
        Ok(b) => b,
        Err(e) => return Problem::from_poem(e.into()).into_response(),
    };
    match state.billing.webhooks.receive(signature, &bytes).await {
        Ok(receipt) => {
            let (kind, reason, changes) = match &receipt.outcome {
                WebhookOutcome::Applied(changes) => ("applied", "", changes.len()),
                WebhookOutcome::Duplicate => ("duplicate", "", 0),
                WebhookOutcome::Ignored(why) => {
                    // Acknowledged all the same: a refusal would be retried for days.
                    tracing::warn!(
                        event = %receipt.id,
                        kind = %receipt.kind,
                        why = why.as_str(),
                        "webhook event ignored"
                    );
                    ("ignored", why.as_str(), 0)
                }
            };
            state.metrics.webhook(kind, reason);
            Json(json!({ "received": true, "outcome": kind, "reason": reason, "status_changes": changes }))
                .into_response()
        }
        Err(e) => {
            tracing::warn!(code = e.code(), error = %e, "webhook delivery refused");
            Problem::from(e).into_response()
        }
    }
}

/// `POST /sandbox/clock/advance` body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockStep {
    pub seconds: i64,
}

/// `POST /sandbox/clock/advance` (sandbox mode only; 404 otherwise): moves the
/// server's clock — the domain's and the sandbox gateway's — forward by `seconds`,
/// applies what happened at the sandbox meanwhile and runs every job that became due.
/// Time is tested, never waited for.
#[handler]
pub async fn sandbox_clock_advance(body: Body, Data(state): Data<&HttpState>) -> Response {
    let Some(sandbox) = &state.billing.sandbox else {
        return Problem::new(StatusCode::NOT_FOUND, "not_found").into_response();
    };
    let bytes = match body.into_bytes().await {
        Ok(b) => b,
        Err(e) => return Problem::from_poem(e.into()).into_response(),
    };
    let step: ClockStep = match serde_json::from_slice(&bytes) {
        Ok(step) => step,
        Err(e) => return Problem::invalid("seconds", e.to_string()).into_response(),
    };
    match sandbox.advance_clock(step.seconds).await {
        Ok(moved) => {
            let jobs = &moved.jobs;
            Json(ClockAdvanced {
                now: moved.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                holds_placed: jobs.holds.placed.len(),
                holds_renewed: jobs.holds.renewed.len(),
                holds_refused: jobs.holds.refused.len(),
                status_changes: jobs.changed.len() + jobs.holds.changed.len(),
            })
            .into_response()
        }
        Err(e) => Problem::from(e).into_response(),
    }
}

/// What `POST /sandbox/clock/advance` answers.
#[derive(Debug, serde::Serialize)]
pub struct ClockAdvanced {
    /// The server's time now (RFC 3339).
    pub now: String,
    pub holds_placed: usize,
    pub holds_renewed: usize,
    pub holds_refused: usize,
    pub status_changes: usize,
}
