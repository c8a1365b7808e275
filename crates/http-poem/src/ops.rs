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
        Ok(outcome) => {
            let (kind, changes) = match &outcome {
                WebhookOutcome::Applied(changes) => ("applied", changes.len()),
                WebhookOutcome::Duplicate => ("duplicate", 0),
                WebhookOutcome::Ignored(_) => ("ignored", 0),
            };
            Json(json!({ "received": true, "outcome": kind, "status_changes": changes }))
                .into_response()
        }
        Err(e) => Problem::from(e).into_response(),
    }
}
