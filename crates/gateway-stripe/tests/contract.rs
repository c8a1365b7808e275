//! Layer 1: contract tests against Stripe's own objects.
//!
//! `../shared/stripe/fixtures3.json` (beside the workspace; Stripe's canonical example
//! of every API resource, published with its OpenAPI description) is read at test
//! time, never copied into the project. Each resource the adapter reads is served as
//! Stripe would serve it — alone, or composed the way `expand[]` and webhook envelopes
//! compose them — and read through the adapter's public ports, so the wire types
//! *and* their conversion to domain types are checked against what Stripe sends.
//!
//! Without the file the tests are skipped with a note, except under `CI=true` where
//! its absence is a failure.

// Suite cases and helpers are test code outside `#[test]` functions: a failed unwrap
// is the test's failure report, as in the tests themselves.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use billing_core::gateway::{
    CheckoutMode, CheckoutRequest, CheckoutStatus, ConnectOnboarding, GatewayEvent, HoldRequest,
    IgnoreReason, IntentStatus, PaymentGateway, RefundStatus, SetupStatus, WebhookVerifier,
};
use billing_core::ids::{ConnectedAccountId, PaymentIntentId};
use billing_core::money::{Currency, Money};
use billing_core::payment::model::{DisputeStatus, IdempotencyKey, Lang};
use billing_core::practitioner::model::PayoutInterval;
use billing_core::system::Clock;
use chrono::{DateTime, TimeZone, Utc};
use gateway_stripe::{
    CheckoutKind, ClientOptions, EndpointChange, EndpointKind, Secret, StripeGateway,
    StripeSettings, StripeWebhookVerifier, setup_webhook_endpoints, signature_header,
};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/stripe/fixtures3.json"
);
const SECRET: &str = "whsec_contract";
const ACCOUNT: &str = "acct_1PgafTB7WZ01zgkW";

/// Stripe's canonical objects, or `None` (after a note) when the file is absent
/// outside CI.
fn fixtures() -> Option<Value> {
    match std::fs::read_to_string(FIXTURES) {
        Ok(text) => Some(serde_json::from_str(&text).expect("fixtures3.json is JSON")),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true and Stripe's fixtures are missing at {FIXTURES}: {e}");
            }
            eprintln!("note: contract test skipped: no Stripe fixtures at {FIXTURES} ({e})");
            None
        }
    }
}

fn resource(fx: &Value, name: &str) -> Value {
    let r = fx["resources"][name].clone();
    assert!(r.is_object(), "fixtures3.json has no '{name}' resource");
    r
}

fn usd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::Usd)
}

fn account() -> ConnectedAccountId {
    ConnectedAccountId::parse(ACCOUNT).unwrap()
}

async fn stripe_serving(verb: &str, at: &str, body: Value) -> (MockServer, StripeGateway) {
    stripe_serving_all(&[(verb, at, body)]).await
}

fn settings(server: &MockServer) -> StripeSettings {
    StripeSettings {
        secret_key: "sk_test_contract".into(),
        api_base: Some(server.uri()),
        connect_base: Some(server.uri()),
        connect_client_id: Some("ca_contract".into()),
        webhook_secret: None,
        connect_webhook_secret: None,
        checkout: CheckoutKind::Hosted,
        describe_intents: true,
        renewable_holds: true,
    }
}

fn options() -> ClientOptions {
    ClientOptions {
        max_retries: 0,
        ..ClientOptions::default()
    }
}

/// A Stripe stub answering each (method, path) with its object.
async fn stripe_serving_all(routes: &[(&str, &str, Value)]) -> (MockServer, StripeGateway) {
    let server = MockServer::start().await;
    for (verb, at, body) in routes {
        Mock::given(method(*verb))
            .and(path(*at))
            .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
            .mount(&server)
            .await;
    }
    let gateway = StripeGateway::new(&settings(&server), options()).unwrap();
    (server, gateway)
}

/// A list object of `items`, as Stripe pages them.
fn list(items: Vec<Value>) -> Value {
    json!({ "object": "list", "data": items, "has_more": false, "url": "/v1/x" })
}

struct At(i64);

impl Clock for At {
    fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.0, 0).unwrap()
    }
}

/// Delivers `event` through the verifier, signed as Stripe signs.
fn deliver(event: &Value) -> billing_core::gateway::WebhookEvent {
    let created = event["created"]
        .as_i64()
        .expect("events have a creation time");
    let verifier = StripeWebhookVerifier::new(Some(Secret::new(SECRET)), Arc::new(At(created)));
    let body = event.to_string();
    let header = signature_header(SECRET, created, body.as_bytes());
    verifier
        .verify(Some(&header), body.as_bytes())
        .unwrap_or_else(|e| panic!("Stripe's event did not verify and parse: {e}"))
}

/// Stripe's event fixture with another type and object inside, as a webhook for that
/// type would carry it.
fn envelope(fx: &Value, kind: &str, object: Value) -> Value {
    let mut event = resource(fx, "event");
    event["type"] = json!(kind);
    event["data"]["object"] = object;
    event["account"] = json!(ACCOUNT);
    event
}

#[tokio::test]
async fn stripes_payment_intent_reads_as_an_intent_snapshot() {
    let Some(fx) = fixtures() else { return };
    let pi = resource(&fx, "payment_intent");
    let id = pi["id"].as_str().unwrap().to_owned();
    let (_server, gateway) = stripe_serving("GET", &format!("/v1/payment_intents/{id}"), pi).await;
    let s = gateway
        .retrieve(&account(), &PaymentIntentId::parse(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(s.id.as_str(), id);
    assert_eq!(s.status, IntentStatus::RequiresPaymentMethod);
    assert_eq!(s.amount, usd(1099));
    assert_eq!(s.amount_capturable, usd(0));
    assert_eq!(s.amount_received, usd(0));
    assert!(s.client_secret.is_some());
    // Stripe's example error has a type and nothing else.
    let failure = s.last_error.unwrap();
    assert_eq!(failure.code, None);
    assert!(!failure.message.is_empty());
    assert_eq!(s.payment, None);
}

#[tokio::test]
async fn stripes_intent_charge_and_balance_transaction_compose_as_expanded() {
    let Some(fx) = fixtures() else { return };
    let mut charge = resource(&fx, "charge");
    charge["balance_transaction"] = resource(&fx, "balance_transaction");
    let mut pi = resource(&fx, "payment_intent");
    pi["latest_charge"] = charge;
    let id = pi["id"].as_str().unwrap().to_owned();
    let (_server, gateway) = stripe_serving("GET", &format!("/v1/payment_intents/{id}"), pi).await;
    let s = gateway
        .retrieve(&account(), &PaymentIntentId::parse(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(s.fee, Some(usd(0)), "the balance transaction's fee");
    assert_eq!(s.amount_refunded, usd(0), "the charge's amount_refunded");
    assert_eq!(
        s.capture_before, None,
        "the example card has no capture deadline"
    );
}

#[tokio::test]
async fn stripes_payment_intent_creates_a_hold() {
    let Some(fx) = fixtures() else { return };
    let (_server, gateway) = stripe_serving(
        "POST",
        "/v1/payment_intents",
        resource(&fx, "payment_intent"),
    )
    .await;
    let payment = "0190b1a4-7c1e-7d3a-9f00-1234567890ab".parse().unwrap();
    let s = gateway
        .create_hold(&HoldRequest {
            account: account(),
            payment,
            consultation: "0190b1a4-0000-7d3a-9f00-1234567890ab".parse().unwrap(),
            amount: usd(1099),
            description: "contract".into(),
            statement_descriptor_suffix: None,
            off_session: None,
            key: IdempotencyKey::checkout(payment, 0),
        })
        .await
        .unwrap();
    assert_eq!(s.amount, usd(1099));
}

#[tokio::test]
async fn a_captured_intent_is_read_with_every_refund_of_its_charge() {
    let Some(fx) = fixtures() else { return };
    let mut pi = resource(&fx, "payment_intent");
    pi["status"] = json!("succeeded");
    let refund = resource(&fx, "refund");
    let id = pi["id"].as_str().unwrap().to_owned();
    let (_server, gateway) = stripe_serving_all(&[
        ("GET", &format!("/v1/payment_intents/{id}"), pi),
        ("GET", "/v1/refunds", list(vec![refund.clone()])),
    ])
    .await;
    let s = gateway
        .retrieve(&account(), &PaymentIntentId::parse(&id).unwrap())
        .await
        .unwrap();
    let refunds = s.refunds.unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0].id.as_str(), refund["id"].as_str().unwrap());
    assert_eq!(refunds[0].amount, usd(100));
    assert_eq!(refunds[0].status, RefundStatus::Succeeded);
}

#[tokio::test]
async fn stripes_refund_reads_as_a_refund_outcome() {
    let Some(fx) = fixtures() else { return };
    let refund = resource(&fx, "refund");
    let (_server, gateway) = stripe_serving("POST", "/v1/refunds", refund.clone()).await;
    let payment = "0190b1a4-7c1e-7d3a-9f00-1234567890ab".parse().unwrap();
    let r = gateway
        .refund(
            &account(),
            &PaymentIntentId::parse("pi_1PgafyB7WZ01zgkWSjxsAJo3").unwrap(),
            &usd(100),
            &IdempotencyKey::refund(payment, "1"),
        )
        .await
        .unwrap();
    assert_eq!(r.id.as_str(), refund["id"].as_str().unwrap());
    assert_eq!(r.amount, usd(100));
    assert_eq!(r.status, RefundStatus::Succeeded);
}

fn assert_is_stripes_example_account(a: &billing_core::practitioner::model::AccountSnapshot) {
    assert_eq!(a.id.as_str(), ACCOUNT);
    assert!(!a.charges_enabled && !a.payouts_enabled && !a.details_submitted);
    assert_eq!(a.disabled_reason.as_deref(), Some("requirements.past_due"));
    assert_eq!(a.currently_due.len(), 6);
    assert!(a.currently_due.contains(&"external_account".to_owned()));
    let schedule = a.payout_schedule.clone().unwrap();
    assert_eq!(schedule.interval, PayoutInterval::Daily);
    assert_eq!(schedule.delay_days, Some(2));
    assert_eq!(a.default_currency, Some(Currency::Usd));
    assert_eq!(a.country.as_deref(), Some("US"));
}

#[tokio::test]
async fn stripes_account_reads_as_an_account_snapshot() {
    let Some(fx) = fixtures() else { return };
    let (_server, gateway) = stripe_serving(
        "GET",
        &format!("/v1/accounts/{ACCOUNT}"),
        resource(&fx, "account"),
    )
    .await;
    assert_is_stripes_example_account(&gateway.retrieve_account(&account()).await.unwrap());
}

#[tokio::test]
async fn stripes_account_creates_a_connected_account() {
    let Some(fx) = fixtures() else { return };
    let (_server, gateway) = stripe_serving("POST", "/v1/accounts", resource(&fx, "account")).await;
    let practitioner = "0190b1a4-1111-7d3a-9f00-1234567890ab".parse().unwrap();
    let created = gateway
        .create_account(
            practitioner,
            &IdempotencyKey::for_practitioner(practitioner, "account", 1),
        )
        .await
        .unwrap();
    assert_eq!(created, account());
}

#[tokio::test]
async fn stripes_account_link_gives_its_url() {
    let Some(fx) = fixtures() else { return };
    let link = resource(&fx, "account_link");
    let (_server, gateway) = stripe_serving("POST", "/v1/account_links", link.clone()).await;
    let url = gateway
        .account_link(&account(), "https://x/refresh", "https://x/return")
        .await
        .unwrap();
    assert_eq!(url, link["url"].as_str().unwrap());
}

#[tokio::test]
async fn stripes_checkout_session_starts_and_reads_a_checkout() {
    let Some(fx) = fixtures() else { return };
    let session = resource(&fx, "checkout.session");
    let (_server, gateway) = stripe_serving_all(&[
        ("POST", "/v1/customers", resource(&fx, "customer")),
        ("POST", "/v1/checkout/sessions", session.clone()),
    ])
    .await;
    let payment = "0190b1a4-7c1e-7d3a-9f00-1234567890ab".parse().unwrap();
    let start = gateway
        .start_checkout(&CheckoutRequest {
            hold: HoldRequest {
                account: account(),
                payment,
                consultation: "0190b1a4-0000-7d3a-9f00-1234567890ab".parse().unwrap(),
                amount: usd(1099),
                description: "contract".into(),
                statement_descriptor_suffix: None,
                off_session: None,
                key: IdempotencyKey::checkout(payment, 1),
            },
            success_url: "https://example.com/success".into(),
            cancel_url: "https://example.com/cancel".into(),
            existing_intent: None,
            customer_email: None,
            mode: CheckoutMode::Hold,
            locale: Lang::Fr,
        })
        .await
        .unwrap();
    assert_eq!(
        start.session.as_ref().map(|s| s.as_str()),
        session["id"].as_str()
    );
    assert_eq!(start.redirect_url.as_deref(), session["url"].as_str());
    assert_eq!(
        start.expires_at,
        Some(Utc.timestamp_opt(1_234_567_890, 0).unwrap())
    );
    assert_eq!(
        start.intent.as_ref().map(|i| i.as_str()),
        session["payment_intent"].as_str()
    );

    let id = session["id"].as_str().unwrap().to_owned();
    let (_server, gateway) =
        stripe_serving("GET", &format!("/v1/checkout/sessions/{id}"), session).await;
    let state = gateway
        .retrieve_checkout(&account(), &id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(state.status, CheckoutStatus::Open);
    assert_eq!(state.intent, None);

    // The same session once paid, with its intent expanded.
    let mut paid = resource(&fx, "checkout.session");
    paid["status"] = json!("complete");
    paid["payment_intent"] = resource(&fx, "payment_intent");
    let (_server, gateway) =
        stripe_serving("GET", &format!("/v1/checkout/sessions/{id}"), paid).await;
    let state = gateway
        .retrieve_checkout(&account(), &id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(state.status, CheckoutStatus::Complete);
    assert_eq!(state.intent.map(|i| i.amount), Some(usd(1099)));
}

#[test]
fn stripes_event_verifies_and_an_unused_type_is_acknowledged_and_ignored() {
    let Some(fx) = fixtures() else { return };
    let event = resource(&fx, "event");
    let e = deliver(&event);
    assert_eq!(e.id.as_str(), event["id"].as_str().unwrap());
    assert_eq!(e.kind, "plan.created");
    assert_eq!(e.account, None);
    assert_eq!(e.created, Utc.timestamp_opt(1_234_567_890, 0).unwrap());
    assert_eq!(e.payload, GatewayEvent::Ignored(IgnoreReason::EventType));
}

#[test]
fn stripes_payment_intent_in_each_intent_event() {
    let Some(fx) = fixtures() else { return };
    for kind in [
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
        "payment_intent.canceled",
        "payment_intent.payment_failed",
    ] {
        let e = deliver(&envelope(&fx, kind, resource(&fx, "payment_intent")));
        assert_eq!(e.account, Some(account()));
        let GatewayEvent::PaymentIntent(s) = e.payload else {
            panic!("{kind}: {:?}", e.payload);
        };
        assert_eq!(s.amount, usd(1099), "{kind}");
    }
}

#[test]
fn stripes_charge_in_charge_events() {
    let Some(fx) = fixtures() else { return };
    let e = deliver(&envelope(&fx, "charge.refunded", resource(&fx, "charge")));
    assert_eq!(
        e.payload,
        GatewayEvent::RefundsChanged {
            intent: None,
            payment: None,
        }
    );
    let e = deliver(&envelope(&fx, "charge.expired", resource(&fx, "charge")));
    assert_eq!(
        e.payload,
        GatewayEvent::ChargeExpired {
            intent: None,
            payment: None
        }
    );
}

#[test]
fn stripes_account_in_account_updated() {
    let Some(fx) = fixtures() else { return };
    let e = deliver(&envelope(&fx, "account.updated", resource(&fx, "account")));
    let GatewayEvent::AccountUpdated(a) = e.payload else {
        panic!("{:?}", e.payload);
    };
    assert_is_stripes_example_account(&a);
}

#[test]
fn stripes_application_in_account_application_deauthorized() {
    let Some(fx) = fixtures() else { return };
    let application = fx["resources"]["application"].clone();
    let object = if application.is_object() {
        application
    } else {
        json!({ "id": "ca_contract", "object": "application", "name": null })
    };
    let e = deliver(&envelope(&fx, "account.application.deauthorized", object));
    assert_eq!(
        e.payload,
        GatewayEvent::AccountDeauthorized { account: account() }
    );
}

#[test]
fn stripes_refund_in_refund_events() {
    let Some(fx) = fixtures() else { return };
    for kind in [
        "charge.refund.updated",
        "refund.created",
        "refund.updated",
        "refund.failed",
    ] {
        let e = deliver(&envelope(&fx, kind, resource(&fx, "refund")));
        // Stripe's example refund names no intent; the domain reads the refunds again.
        assert_eq!(
            e.payload,
            GatewayEvent::RefundsChanged {
                intent: None,
                payment: None,
            },
            "{kind}"
        );
    }
}

#[test]
fn stripes_dispute_in_each_dispute_event() {
    let Some(fx) = fixtures() else { return };
    let dispute = resource(&fx, "dispute");
    for kind in [
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    ] {
        let e = deliver(&envelope(&fx, kind, dispute.clone()));
        let GatewayEvent::Dispute { dispute: d, intent } = e.payload else {
            panic!("{kind}: {:?}", e.payload);
        };
        assert_eq!(intent, None, "the example dispute names no intent");
        assert_eq!(d.id.as_str(), dispute["id"].as_str().unwrap());
        assert_eq!(d.amount, usd(1000));
        assert_eq!(d.reason, "general");
        assert_eq!(d.status, DisputeStatus::WarningNeedsResponse);
        assert_eq!(
            d.evidence_due_by,
            Some(Utc.timestamp_opt(1_723_679_999, 0).unwrap())
        );
        assert_eq!((d.withdrawn, d.fee, d.transactions), (usd(0), usd(0), 0));
    }
    // With Stripe's balance transaction as the withdrawal (negative, with the fee).
    let mut withdrawn = dispute.clone();
    let mut txn = resource(&fx, "balance_transaction");
    txn["amount"] = json!(-1000);
    txn["fee"] = json!(1500);
    withdrawn["balance_transactions"] = json!([txn]);
    withdrawn["status"] = json!("needs_response");
    let e = deliver(&envelope(&fx, "charge.dispute.funds_withdrawn", withdrawn));
    let GatewayEvent::Dispute { dispute: d, .. } = e.payload else {
        panic!("{:?}", e.payload);
    };
    assert_eq!(
        (d.withdrawn, d.fee, d.transactions),
        (usd(1000), usd(1500), 1)
    );
    assert_eq!(d.status, DisputeStatus::NeedsResponse);
}

#[test]
fn stripes_setup_intent_in_setup_intent_events() {
    let Some(fx) = fixtures() else { return };
    let mut setup = resource(&fx, "setup_intent");
    let e = deliver(&envelope(&fx, "setup_intent.setup_failed", setup.clone()));
    let GatewayEvent::SetupIntent(s) = e.payload else {
        panic!("{:?}", e.payload);
    };
    assert_eq!(s.id.as_str(), setup["id"].as_str().unwrap());
    assert_eq!(s.status, SetupStatus::RequiresPaymentMethod);
    assert!(s.last_error.is_some(), "Stripe's example carries an error");
    assert_eq!(s.saved_card, None);

    // Succeeded on a customer, with its card.
    setup["status"] = json!("succeeded");
    setup["customer"] = resource(&fx, "customer")["id"].clone();
    setup["payment_method"] = resource(&fx, "payment_method");
    setup["last_setup_error"] = Value::Null;
    let e = deliver(&envelope(&fx, "setup_intent.succeeded", setup));
    let GatewayEvent::SetupIntent(s) = e.payload else {
        panic!("{:?}", e.payload);
    };
    let card = s.saved_card.unwrap();
    assert_eq!(
        card.customer.as_str(),
        resource(&fx, "customer")["id"].as_str().unwrap()
    );
    assert_eq!(
        card.payment_method.as_str(),
        resource(&fx, "payment_method")["id"].as_str().unwrap()
    );
}

#[test]
fn an_event_in_a_currency_we_do_not_charge_in_is_acknowledged_and_ignored() {
    let Some(fx) = fixtures() else { return };
    let mut pi = resource(&fx, "payment_intent");
    pi["currency"] = json!("xof");
    let e = deliver(&envelope(&fx, "payment_intent.succeeded", pi));
    assert_eq!(e.payload, GatewayEvent::Ignored(IgnoreReason::Currency));
}

#[tokio::test]
async fn stripes_webhook_endpoint_is_found_or_created_for_both_endpoints() {
    let Some(fx) = fixtures() else { return };
    let url = "https://pay.example.org/webhooks/stripe";
    // Stripe's example endpoint is someone else's: both ours are created.
    let mut created = resource(&fx, "webhook_endpoint");
    created["url"] = json!(url);
    created["secret"] = json!("whsec_created");
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(list(vec![resource(&fx, "webhook_endpoint")])),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/webhook_endpoints"))
        .respond_with(ResponseTemplate::new(200).set_body_json(created))
        .expect(2)
        .mount(&server)
        .await;
    let done = setup_webhook_endpoints(&settings(&server), options(), url)
        .await
        .unwrap();
    assert_eq!(
        done.iter().map(|e| (e.kind, e.change)).collect::<Vec<_>>(),
        vec![
            (EndpointKind::Platform, EndpointChange::Created),
            (EndpointKind::Connect, EndpointChange::Created),
        ]
    );
    assert!(
        done.iter()
            .all(|e| e.secret.as_ref().map(|s| s.expose()) == Some("whsec_created"))
    );
}
