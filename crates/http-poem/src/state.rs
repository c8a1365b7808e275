//! What every handler shares: the use cases, the settings, readiness and metrics.

use std::sync::Arc;

use async_trait::async_trait;
use billing_core::Billing;
use billing_core::access::Actor;
use chrono::{DateTime, Utc};

use crate::metrics::Metrics;
use crate::problem::Problem;

/// Whether the server can serve (the database answers). Implemented by the
/// application with its storage adapter.
#[async_trait]
pub trait Readiness: Send + Sync {
    async fn check(&self) -> Result<(), String>;
}

/// Settings of the HTTP adapter.
#[derive(Clone)]
pub struct HttpSettings {
    /// Public base URL, no trailing slash.
    pub public_url: String,
    /// Where patients go once allowed in; `{consultation_id}` is replaced.
    pub waiting_room_url: Option<String>,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// A request body must arrive whole within this (`408 request_timeout`).
    pub body_read_timeout: std::time::Duration,
    /// Per-client quotas on unauthenticated calls.
    pub rate_limits: crate::ratelimit::RateLimits,
    /// Serve the sandbox's stand-in pages.
    pub sandbox: bool,
    /// Stripe's publishable key, for the Payment Element (Stripe mode only).
    pub stripe_publishable_key: Option<String>,
    /// Stripe runs live (a live secret key): links to its dashboard say so.
    pub stripe_live: bool,
    /// Secret (≥ 32 bytes) from which the session-cookie and CSRF keys are derived.
    /// Shared by every instance behind a load balancer; random per process by default.
    pub session_secret: Vec<u8>,
    /// The video passes' public keys as a JWKS document, when passes are signed
    /// (empty with a shared secret).
    pub video_jwks: Option<String>,
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("public_url", &self.public_url)
            .field("waiting_room_url", &self.waiting_room_url)
            .field("body_limit", &self.body_limit)
            .field("sandbox", &self.sandbox)
            .field("session_secret", &"*** ***")
            .finish_non_exhaustive()
    }
}

impl HttpSettings {
    pub fn new(public_url: &str) -> Self {
        HttpSettings {
            public_url: public_url.trim_end_matches('/').to_owned(),
            waiting_room_url: None,
            body_limit: 64 * 1024,
            body_read_timeout: std::time::Duration::from_secs(10),
            rate_limits: crate::ratelimit::RateLimits::default(),
            sandbox: false,
            stripe_publishable_key: None,
            stripe_live: false,
            // Random unless set: never a key anyone could derive. Set it to share
            // sessions between instances and across restarts.
            session_secret: [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
                .iter()
                .flat_map(|u| u.as_bytes().to_owned())
                .collect(),
            video_jwks: None,
        }
    }

    pub fn waiting_room(&self, consultation: uuid::Uuid) -> Option<String> {
        self.waiting_room_url
            .as_ref()
            .map(|t| t.replace("{consultation_id}", &consultation.to_string()))
    }
}

/// Shared by all handlers. Cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    pub billing: Billing,
    pub settings: Arc<HttpSettings>,
    pub readiness: Arc<dyn Readiness>,
    pub metrics: Metrics,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl HttpState {
    /// `metrics` should be the observer given to `billing` (see
    /// [`billing_core::BillingBuilder::observer`]) so payment transitions are counted.
    pub fn new(
        billing: Billing,
        settings: HttpSettings,
        readiness: Arc<dyn Readiness>,
        metrics: Metrics,
    ) -> Self {
        HttpState {
            billing,
            settings: Arc::new(settings),
            readiness,
            metrics,
        }
    }

    /// The staff actor behind a bearer token.
    pub async fn staff(&self, token: &str) -> Result<Actor, Problem> {
        Ok(self.billing.staff.authenticate(Some(token)).await?)
    }

    /// The server's time: the domain's clock (in sandbox mode, the test clock).
    pub fn now(&self) -> DateTime<Utc> {
        self.billing.now()
    }

    /// What payment views need beside the payment.
    pub fn view_context(&self) -> crate::wire::ViewContext {
        crate::wire::ViewContext {
            now: self.now(),
            expiring_within: self.billing.config.expiring_within,
            live: self.settings.stripe_live,
        }
    }
}
