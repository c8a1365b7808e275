//! # http-poem
//!
//! ConsultPay's HTTP adapter (the API boundary): the JSON API under `/api/v1` with its
//! generated OpenAPI document (`/api/v1/openapi.json`, Swagger UI at `/docs`), the
//! Stripe webhook endpoint, the OAuth callback, the patient and practitioner pages, the
//! sandbox's stand-ins for Stripe's hosted pages, `/healthz` and `/readyz`; and, on
//! the operator's own listener ([`admin`]), `/metrics` with the health checks.
//!
//! Handlers only convert: wire types (this crate's `wire` module) into domain types, a
//! use case of [`billing_core::Billing`], and the result or the error back. Every
//! failure leaves as `application/problem+json` with a stable `code` (the mapping is in
//! [`problem`], in one place). This crate never touches storage or Stripe directly and
//! depends on `billing-core` only among the workspace crates.

pub mod allow;
pub mod api;
pub mod csv;
pub mod docs;
pub mod documents;
pub mod limit;
pub mod metrics;
pub mod ops;
pub mod pages;
pub mod problem;
pub mod ratelimit;
pub mod server;
pub mod state;
pub mod web;
pub mod wire;

use poem::middleware::{CatchPanic, RequestId, ReuseId};
use poem::{Endpoint, EndpointExt, IntoResponse, PathPattern, Route, get, post};
use poem_openapi::OpenApiService;

pub use server::{ServerLimits, serve};
pub use state::{HttpSettings, HttpState, Readiness};

use crate::metrics::Observe;
use crate::problem::Problem;

/// The OpenAPI service (also used to print the document).
pub fn openapi(state: &HttpState) -> OpenApiService<api::Api, ()> {
    OpenApiService::new(
        api::Api {
            state: state.clone(),
        },
        "ConsultPay",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Billing for teleconsultations on Stripe Connect: authorise a hold before the \
         session, capture the validated amount after. Amounts are decimal strings in \
         the currency's scale; errors are application/problem+json with a stable `code`.",
    )
    .server(state.settings.public_url.clone())
}

/// The operator's listener (`CONSULTPAY_ADMIN_LISTEN`, loopback by default): the
/// Prometheus metrics, kept off the public listener, and the health checks, which
/// answer here even while the public listener is busy with clients.
pub fn admin(state: HttpState) -> impl Endpoint {
    Route::new()
        .at("/metrics", get(ops::metrics))
        .at("/healthz", get(ops::healthz))
        .at("/readyz", get(ops::readyz))
        .data(state)
        .catch_all_error(|err| async move { Problem::from_poem(err).into_response() })
        .with(CatchPanic::new().with_handler(|_| {
            Problem::new(
                poem::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
            )
            .into_response()
        }))
}

/// The OpenAPI document as served and committed (`docs/openapi.json`): poem-openapi's,
/// with what its derive cannot say — request bodies refuse unknown fields
/// (`additionalProperties: false` on every object a request body reaches, each of them
/// `deny_unknown_fields`).
pub fn openapi_document(state: &HttpState) -> String {
    document(&openapi(state))
}

/// [`openapi_document`] of a service already built.
fn document(api: &OpenApiService<api::Api, ()>) -> String {
    let spec = api.spec();
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(&spec) else {
        return spec;
    };
    fn refs(x: &serde_json::Value, out: &mut Vec<String>) {
        match x {
            serde_json::Value::Object(o) => {
                if let Some(r) = o.get("$ref").and_then(|r| r.as_str()) {
                    out.push(r.rsplit('/').next().unwrap_or_default().to_owned());
                }
                o.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut pending = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for op in paths
            .values()
            .filter_map(|p| p.as_object())
            .flat_map(|p| p.values())
        {
            refs(&op["requestBody"], &mut pending);
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let schema = &mut doc["components"]["schemas"][&name];
        refs(schema, &mut pending);
        if schema["type"] == "object" {
            schema["additionalProperties"] = serde_json::Value::Bool(false);
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or(spec)
}

/// Every route, with the middleware stack. Serve it with [`serve`].
pub fn app(state: HttpState) -> impl Endpoint {
    let api = openapi(&state);
    let document = document(&api);
    let allowed = allow::Allowed::from_spec(&document);
    let spec = poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(document.clone())
    });
    let docs = std::sync::Arc::new(docs::swagger(&api.swagger_ui_html()));
    let pages = std::sync::Arc::new(web::routes(&state).map_to_response());
    let mut routes = Route::new()
        .at("/api/v1/openapi.json", spec)
        .at("/docs", docs.clone())
        .at("/docs/", docs)
        .nest_no_strip("/api/v1", api)
        .at("/webhooks/stripe", post(ops::stripe_webhook))
        .at("/.well-known/jwks.json", get(ops::jwks))
        .at("/", get(web::home))
        .at("/healthz", get(ops::healthz))
        .at("/readyz", get(ops::readyz));
    for prefix in ["/pay", "/dashboard", "/static", "/connect"] {
        routes = routes.nest_no_strip(prefix, pages.clone());
    }
    if state.settings.sandbox {
        routes = routes
            .at("/sandbox/clock/advance", post(ops::sandbox_clock_advance))
            .nest_no_strip("/sandbox", pages.clone());
    }
    let body_limit = limit::BodyLimit {
        max: state.settings.body_limit,
        read_timeout: state.settings.body_read_timeout,
    };
    let metrics = state.metrics.clone();
    let rate_limits = state.settings.rate_limits;
    routes
        .data(state)
        .with(body_limit)
        .catch_all_error(|err| async move {
            // The route the error came from, for `Observe`'s labels.
            let route = err.data::<PathPattern>().cloned();
            let mut resp = if err.data::<web::Rendered>().is_some() {
                err.into_response()
            } else {
                Problem::from_poem(err).into_response()
            };
            if let Some(route) = route {
                resp.set_data(route);
            }
            resp
        })
        .with(CatchPanic::new().with_handler(|_| {
            Problem::new(
                poem::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
            )
            .into_response()
        }))
        // Personal and payment data is never kept by a browser or a proxy: every answer
        // that does not say otherwise (static assets, receipts), a panic's 500
        // included, is `no-store`.
        .after(|resp: poem::Result<poem::Response>| async move {
            resp.map(|mut resp| {
                resp.headers_mut()
                    .entry(poem::http::header::CACHE_CONTROL)
                    .or_insert(poem::http::HeaderValue::from_static("no-store"));
                resp
            })
        })
        // Outside the error catchers: a refused client costs a map look-up, and its
        // 429 is already a problem document.
        .with(allowed)
        .with(ratelimit::RateLimit::new(rate_limits))
        .with(Observe(metrics))
        .with(RequestId::default().reuse_id(ReuseId::Use))
}
