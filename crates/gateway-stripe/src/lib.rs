//! # gateway-stripe — ConsultPay's payment gateway adapter
//!
//! Implements `billing-core`'s gateway ports — [`PaymentGateway`], [`ConnectOnboarding`],
//! [`WebhookVerifier`] and, for the sandbox, [`SandboxControl`] — twice:
//!
//! - [`StripeGateway`] on the **Stripe API**: direct charges on the practitioner's
//!   connected account (`Stripe-Account`), manual-capture PaymentIntents (holds),
//!   Stripe Checkout or the Payment Element, partial capture, release, refunds,
//!   Connect OAuth and Account Links. Built on a small typed client over
//!   reqwest with rustls on ring (`client`): pinned `Stripe-Version` ([`API_VERSION`]), the
//!   domain's `Idempotency-Key` on every write, timeouts, retries with jittered
//!   backoff for 429 / 5xx / connection failures only.
//! - [`SandboxGateway`] **in process** ([`sandbox`]): Stripe's test-mode semantics
//!   (test cards, 3-D Secure, holds that lapse after 7 days on the clock port, fees
//!   from the configured schedule, a sandbox OAuth consent and card page) so every
//!   flow runs with no Stripe account — the server's mode when no key is configured.
//!
//! [`StripeWebhookVerifier`] checks `Stripe-Signature` and turns verified events
//! into the domain's [`WebhookEvent`]s.
//!
//! Layout, after Hyperswitch's connectors: `client` (HTTP; [`ClientOptions`]), `wire` (Stripe's JSON,
//! tolerant of older API versions and of Stripe-compatible test servers),
//! `transformers` (the only place wire and domain types meet, errors included), then
//! the port implementations ([`StripeGateway`], [`SandboxGateway`],
//! [`StripeWebhookVerifier`]).
//!
//! **What this crate must never do:** depend on another adapter, decide anything
//! about billing (what may be captured or refunded is the domain's state machine; the
//! adapter reports what Stripe says), use floating point for money (amounts cross as
//! integer minor units through `Money::to_minor`/`from_minor`), panic on anything
//! Stripe or a webhook sender sends (it becomes a typed error), or let a secret (API
//! key, webhook secret, client secret) reach a log line or a `Debug` output.
//!
//! [`PaymentGateway`]: billing_core::gateway::PaymentGateway
//! [`ConnectOnboarding`]: billing_core::gateway::ConnectOnboarding
//! [`WebhookVerifier`]: billing_core::gateway::WebhookVerifier
//! [`SandboxControl`]: billing_core::gateway::SandboxControl
//! [`WebhookEvent`]: billing_core::gateway::WebhookEvent

use std::sync::Arc;

use billing_core::gateway::{ConnectOnboarding, PaymentGateway, SandboxControl, WebhookVerifier};
use billing_core::system::Clock;

mod client;
mod endpoints;
pub mod sandbox;
mod secret;
mod stripe;
mod transformers;
mod webhook;
mod wire;

pub use client::{API_VERSION, ClientOptions, DEFAULT_API_BASE, DEFAULT_CONNECT_BASE};
pub use endpoints::{
    EndpointChange, EndpointKind, EndpointSetup, SetupError, setup_webhook_endpoints,
};
pub use sandbox::{SandboxConfig, SandboxGateway};
pub use secret::Secret;
pub use stripe::{CheckoutKind, ConfigError, StripeGateway, StripeSettings};
pub use transformers::CONSUMED_EVENTS;
pub use webhook::{DEFAULT_TOLERANCE_SECS, StripeWebhookVerifier, signature_header};

/// The gateway ports of one mode, ready for `billing_core::Billing::builder`.
#[derive(Clone)]
pub struct Gateways {
    pub payments: Arc<dyn PaymentGateway>,
    pub connect: Arc<dyn ConnectOnboarding>,
    pub webhooks: Arc<dyn WebhookVerifier>,
    /// Present only in sandbox mode.
    pub sandbox: Option<Arc<dyn SandboxControl>>,
    /// The clock the rest of the server must read: the given one with Stripe; in
    /// sandbox mode, the sandbox's test clock (moved by `advance_clock`), so the
    /// domain and the simulated Stripe share one time.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Gateways {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateways")
            .field("sandbox", &self.sandbox.is_some())
            .finish_non_exhaustive()
    }
}

/// The Stripe gateways (payments and Connect on [`StripeGateway`], the webhook
/// verifier with `settings.webhook_secret`) with default timeouts and retries.
pub fn stripe_gateways(
    settings: StripeSettings,
    clock: Arc<dyn Clock>,
) -> Result<Gateways, ConfigError> {
    stripe_gateways_with(settings, ClientOptions::default(), clock)
}

/// [`stripe_gateways`] with explicit client options.
pub fn stripe_gateways_with(
    settings: StripeSettings,
    options: ClientOptions,
    clock: Arc<dyn Clock>,
) -> Result<Gateways, ConfigError> {
    let gateway = Arc::new(StripeGateway::new(&settings, options)?);
    let livemode = settings.livemode();
    let webhooks =
        StripeWebhookVerifier::new(settings.webhook_secret.map(Secret::from), clock.clone())
            .with_secret(settings.connect_webhook_secret.map(Secret::from))
            .with_livemode(livemode);
    Ok(Gateways {
        payments: gateway.clone(),
        connect: gateway,
        webhooks: Arc::new(webhooks),
        sandbox: None,
        clock,
    })
}

/// The sandbox gateways: one [`SandboxGateway`] behind the payment, Connect and
/// sandbox ports, and a webhook verifier that accepts deliveries signed with any of
/// `webhook_secrets` (the platform and Connect endpoints' secrets, as with Stripe) and
/// answers `NotConfigured` when there is none.
pub fn sandbox_gateways(
    clock: Arc<dyn Clock>,
    public_url: &str,
    webhook_secrets: Vec<String>,
) -> Gateways {
    sandbox_gateways_with(
        SandboxGateway::new(clock, SandboxConfig::new(public_url)),
        webhook_secrets,
    )
}

/// [`sandbox_gateways`] on a given sandbox (a configuration of its own, a store).
pub fn sandbox_gateways_with(sandbox: SandboxGateway, webhook_secrets: Vec<String>) -> Gateways {
    let sandbox = Arc::new(sandbox);
    let clock = sandbox.clock();
    let mut secrets = webhook_secrets.into_iter().map(Secret::from);
    // The sandbox is a test mode: deliveries of live events are ignored.
    let first = secrets.next();
    let webhooks = secrets.fold(
        StripeWebhookVerifier::new(first, clock.clone()),
        |verifier, secret| verifier.with_secret(Some(secret)),
    );
    let webhooks = webhooks.with_livemode(Some(false));
    Gateways {
        payments: sandbox.clone(),
        connect: sandbox.clone(),
        webhooks: Arc::new(webhooks),
        sandbox: Some(sandbox),
        clock,
    }
}
