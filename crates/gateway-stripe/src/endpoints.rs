//! `consultpay stripe setup-webhooks`: the platform's two webhook endpoints on Stripe,
//! created or found, with exactly the event types ConsultPay reads.
//!
//! With direct charges on Standard accounts every payment event happens on a
//! connected account, and Stripe delivers those only to a **Connect** endpoint; the
//! platform endpoint receives the platform account's own events. Both point at the
//! same URL (`/webhooks/stripe`), each with its own signing secret. Stripe shows a
//! secret only in the answer that created the endpoint, so it is printed then, once.
//!
//! Our endpoints are recognised by their URL and a `metadata[consultpay_endpoint]` of
//! `platform` or `connect`; one found with other event types is updated to exactly
//! [`CONSUMED_EVENTS`].

use std::collections::BTreeSet;

use billing_core::gateway::GatewayError;

use crate::client::{API_VERSION, Call, ClientOptions, Form, Host, StripeClient};
use crate::secret::Secret;
use crate::stripe::{ConfigError, StripeSettings, client_for, list_all};
use crate::transformers::{self, CONSUMED_EVENTS};
use crate::wire;

/// Which of the two endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    /// Events of the platform account itself (`STRIPE_WEBHOOK_SECRET`).
    Platform,
    /// Events of the connected accounts (`STRIPE_CONNECT_WEBHOOK_SECRET`).
    Connect,
}

impl EndpointKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Platform => "platform",
            EndpointKind::Connect => "connect",
        }
    }

    /// The configuration variable its secret goes in.
    pub const fn secret_variable(self) -> &'static str {
        match self {
            EndpointKind::Platform => "STRIPE_WEBHOOK_SECRET",
            EndpointKind::Connect => "STRIPE_CONNECT_WEBHOOK_SECRET",
        }
    }
}

/// What the set-up did to one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointChange {
    Created,
    /// Found, with other event types: now exactly ours.
    Updated,
    Unchanged,
}

impl EndpointChange {
    pub const fn as_str(self) -> &'static str {
        match self {
            EndpointChange::Created => "created",
            EndpointChange::Updated => "updated",
            EndpointChange::Unchanged => "unchanged",
        }
    }
}

/// One endpoint after the set-up.
#[derive(Clone, Debug)]
pub struct EndpointSetup {
    pub kind: EndpointKind,
    pub id: String,
    pub url: String,
    pub change: EndpointChange,
    /// The signing secret: only when the endpoint was just created (Stripe never shows
    /// it again).
    pub secret: Option<Secret>,
}

/// Creates (or finds, and brings up to date) the platform and Connect webhook endpoints
/// at `url`, each enabled for exactly [`CONSUMED_EVENTS`].
pub async fn setup_webhook_endpoints(
    settings: &StripeSettings,
    options: ClientOptions,
    url: &str,
) -> Result<Vec<EndpointSetup>, SetupError> {
    let client = client_for(settings, options)?;
    let existing = list_endpoints(&client).await?;
    let mut done = Vec::new();
    for kind in [EndpointKind::Platform, EndpointKind::Connect] {
        let found = existing
            .iter()
            .find(|e| e.url == url && e.metadata.get(METADATA_KEY) == Some(kind.as_str()));
        done.push(match found {
            Some(endpoint) => update_if_needed(&client, kind, endpoint).await?,
            None => create(&client, kind, url).await?,
        });
    }
    Ok(done)
}

/// Why the endpoints could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("Stripe: {0}")]
    Gateway(#[from] GatewayError),
}

const METADATA_KEY: &str = "consultpay_endpoint";

async fn send<T: serde::de::DeserializeOwned>(
    client: &StripeClient,
    call: Call<'_>,
) -> Result<T, GatewayError> {
    client.send(call).await.map_err(transformers::gateway_error)
}

async fn list_endpoints(client: &StripeClient) -> Result<Vec<wire::WebhookEndpoint>, GatewayError> {
    list_all(client, "/v1/webhook_endpoints", Form::new(), None).await
}

fn with_events(mut form: Form) -> Form {
    for event in CONSUMED_EVENTS {
        form.push("enabled_events[]", *event);
    }
    form
}

async fn create(
    client: &StripeClient,
    kind: EndpointKind,
    url: &str,
) -> Result<EndpointSetup, GatewayError> {
    let mut form = Form::new()
        .with("url", url)
        .with("api_version", API_VERSION)
        .with(
            "description",
            format!("ConsultPay ({} events)", kind.as_str()),
        )
        .with(format!("metadata[{METADATA_KEY}]"), kind.as_str());
    if kind == EndpointKind::Connect {
        form.push("connect", "true");
    }
    let created: wire::WebhookEndpoint = send(
        client,
        Call::post(Host::Api, "/v1/webhook_endpoints").params(with_events(form)),
    )
    .await?;
    Ok(EndpointSetup {
        kind,
        id: created.id,
        url: created.url,
        change: EndpointChange::Created,
        secret: created.secret,
    })
}

async fn update_if_needed(
    client: &StripeClient,
    kind: EndpointKind,
    endpoint: &wire::WebhookEndpoint,
) -> Result<EndpointSetup, GatewayError> {
    let theirs: BTreeSet<&str> = endpoint.enabled_events.iter().map(String::as_str).collect();
    let ours: BTreeSet<&str> = CONSUMED_EVENTS.iter().copied().collect();
    let change = if theirs == ours {
        EndpointChange::Unchanged
    } else {
        let _: wire::WebhookEndpoint = send(
            client,
            Call::post(Host::Api, format!("/v1/webhook_endpoints/{}", endpoint.id))
                .params(with_events(Form::new())),
        )
        .await?;
        EndpointChange::Updated
    };
    Ok(EndpointSetup {
        kind,
        id: endpoint.id.clone(),
        url: endpoint.url.clone(),
        change,
        secret: None,
    })
}
