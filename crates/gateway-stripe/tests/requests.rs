//! Layer 2: what goes over the wire, against a local HTTP stub (wiremock on
//! 127.0.0.1) answering with objects shaped like Stripe's documented ones: exact form
//! bodies, headers (`Stripe-Account`, `Idempotency-Key` identical across retries,
//! `Stripe-Version`, the bearer key), retries with backoff on 429 / 5xx / broken
//! connections and none on other 4xx, Connect OAuth on its own host, Account Links,
//! Checkout Sessions, and Stripe's error types mapped to `GatewayError`.

// Suite cases and helpers are test code outside `#[test]` functions: a failed unwrap
// is the test's failure report, as in the tests themselves.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use billing_core::gateway::{
    CheckoutMode, CheckoutRequest, CheckoutStatus, ConnectOnboarding, GatewayError, HoldRequest,
    IntentStatus, PaymentGateway, RefundStatus, SetupStatus,
};
use billing_core::ids::{
    ConnectedAccountId, CustomerId, PaymentId, PaymentIntentId, PaymentMethodId, SetupIntentId,
};
use billing_core::money::{Currency, Money};
use billing_core::payment::model::{IdempotencyKey, Lang, PaymentEvent, SavedCard};
use billing_core::practitioner::model::PayoutInterval;
use billing_core::secrets::OAuthState;
use chrono::{TimeZone, Utc};
use gateway_stripe::{API_VERSION, CheckoutKind, ClientOptions, StripeGateway, StripeSettings};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const KEY: &str = "sk_test_51NotARealKeyButLongEnough0123456789";
const ACCOUNT: &str = "acct_1QxYz0B7WZ01zgkW";
const INTENT: &str = "pi_3QxYzAB7WZ01zgkW0a1b2c3d";
const PAYMENT: &str = "0190b1a4-7c1e-7d3a-9f00-1234567890ab";
const CONSULTATION: &str = "0190b1a4-0000-7d3a-9f00-1234567890ab";
const CREATED: i64 = 1_767_225_600;

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::Eur)
}

fn account() -> ConnectedAccountId {
    ConnectedAccountId::parse(ACCOUNT).unwrap()
}

fn intent_id() -> PaymentIntentId {
    PaymentIntentId::parse(INTENT).unwrap()
}

fn payment() -> PaymentId {
    PAYMENT.parse().unwrap()
}

fn fast() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        max_retries: 2,
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(8),
    }
}

struct Stub {
    api: MockServer,
    connect: MockServer,
}

impl Stub {
    async fn start() -> Stub {
        Stub {
            api: MockServer::start().await,
            connect: MockServer::start().await,
        }
    }

    fn settings(&self, checkout: CheckoutKind) -> StripeSettings {
        StripeSettings {
            secret_key: KEY.into(),
            api_base: Some(self.api.uri()),
            connect_base: Some(self.connect.uri()),
            connect_client_id: Some("ca_TestClient123".into()),
            webhook_secret: Some("whsec_test_secret".into()),
            connect_webhook_secret: None,
            checkout,
            describe_intents: true,
            renewable_holds: true,
        }
    }

    fn gateway(&self) -> StripeGateway {
        self.gateway_with(CheckoutKind::Hosted, fast())
    }

    fn gateway_with(&self, checkout: CheckoutKind, options: ClientOptions) -> StripeGateway {
        StripeGateway::new(&self.settings(checkout), options).unwrap()
    }

    async fn requests(&self) -> Vec<Request> {
        self.api.received_requests().await.unwrap_or_default()
    }

    async fn connect_requests(&self) -> Vec<Request> {
        self.connect.received_requests().await.unwrap_or_default()
    }

    /// Customers are created as Stripe does (an id, the rest ignored here).
    async fn answer_customer(&self) {
        self.answer(
            "POST",
            "/v1/customers",
            200,
            json!({ "id": "cus_Patient1", "object": "customer", "email": "dupont@example.org" }),
        )
        .await;
    }

    /// The charge's refunds, listed as Stripe lists them.
    async fn answer_refunds(&self, refunds: Vec<Value>) {
        self.answer(
            "GET",
            "/v1/refunds",
            200,
            json!({ "object": "list", "data": refunds, "has_more": false, "url": "/v1/refunds" }),
        )
        .await;
    }

    async fn answer(&self, verb: &str, at: &str, status: u16, body: Value) {
        Mock::given(method(verb))
            .and(path(at))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&self.api)
            .await;
    }
}

/// The form parameters of a request, decoded, in order.
fn form(req: &Request) -> Vec<(String, String)> {
    let body = String::from_utf8(req.body.clone()).unwrap();
    pairs(&body)
}

fn query(req: &Request) -> Vec<(String, String)> {
    pairs(req.url.query().unwrap_or(""))
}

fn pairs(encoded: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{encoded}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn expected(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn header<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A PaymentIntent as Stripe documents it (fields beyond what the adapter reads
/// included, as Stripe sends them).
fn pi(status: &str, capturable: i64, received: i64, latest_charge: Value) -> Value {
    json!({
        "id": INTENT,
        "object": "payment_intent",
        "amount": 2500,
        "amount_capturable": capturable,
        "amount_details": { "tip": {} },
        "amount_received": received,
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": null,
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": "manual",
        "client_secret": format!("{INTENT}_secret_Dm43xiq1k0ywrRRj"),
        "confirmation_method": "automatic",
        "created": CREATED,
        "currency": "eur",
        "customer": null,
        "description": "Téléconsultation Dr Estival 2026-01-05 10:00",
        "last_payment_error": null,
        "latest_charge": latest_charge,
        "livemode": false,
        "metadata": { "payment_id": PAYMENT, "consultation_id": CONSULTATION },
        "next_action": null,
        "on_behalf_of": null,
        "payment_method": "pm_1QxYz9B7WZ01zgkWk3l4m5n6",
        "payment_method_options": { "card": { "request_three_d_secure": "automatic" } },
        "payment_method_types": ["card"],
        "processing": null,
        "receipt_email": null,
        "setup_future_usage": null,
        "shipping": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": status,
        "transfer_data": null,
        "transfer_group": null,
    })
}

fn charge(amount: i64, captured: i64, refunded: i64, txn: Value) -> Value {
    json!({
        "id": "ch_3QxYzAB7WZ01zgkW0e1f2g3h",
        "object": "charge",
        "amount": amount,
        "amount_captured": captured,
        "amount_refunded": refunded,
        "balance_transaction": txn,
        "captured": captured > 0,
        "created": CREATED,
        "currency": "eur",
        "metadata": { "payment_id": PAYMENT },
        "paid": true,
        "payment_intent": INTENT,
        "payment_method_details": {
            "card": {
                "brand": "visa", "capture_before": CREATED + 7 * 86_400, "country": "FR",
                "exp_month": 12, "exp_year": 2030, "funding": "credit", "last4": "4242",
                "network": "visa",
            },
            "type": "card",
        },
        "refunded": refunded == amount,
        "status": "succeeded",
    })
}

fn txn(fee: i64, currency: &str) -> Value {
    json!({
        "id": "txn_3QxYzAB7WZ01zgkW1x2y3z4a",
        "object": "balance_transaction",
        "amount": 1800,
        "available_on": CREATED + 7 * 86_400,
        "created": CREATED,
        "currency": currency,
        "description": null,
        "exchange_rate": null,
        "fee": fee,
        "fee_details": [{ "amount": fee, "currency": currency, "description": "Stripe processing fees", "type": "stripe_fee" }],
        "net": 1800 - fee,
        "reporting_category": "charge",
        "source": "ch_3QxYzAB7WZ01zgkW0e1f2g3h",
        "status": "pending",
        "type": "charge",
    })
}

fn stripe_error(kind: &str, code: Option<&str>, message: &str) -> Value {
    json!({
        "error": {
            "type": kind,
            "code": code,
            "message": message,
            "doc_url": code.map(|c| format!("https://stripe.com/docs/error-codes/{c}")),
            "request_log_url": "https://dashboard.stripe.com/test/logs/req_abc",
        }
    })
}

fn hold() -> HoldRequest {
    HoldRequest {
        account: account(),
        payment: payment(),
        consultation: CONSULTATION.parse().unwrap(),
        amount: eur(2500),
        description: "Téléconsultation Dr Estival 2026-01-05 10:00".into(),
        statement_descriptor_suffix: None,
        off_session: None,
        key: hold_key(),
    }
}

/// The key of the off-session hold of the saved card `pm_1Saved`.
fn hold_key() -> IdempotencyKey {
    IdempotencyKey::hold(payment(), &PaymentMethodId::parse("pm_1Saved").unwrap())
}

fn checkout_request(existing: Option<&str>) -> CheckoutRequest {
    CheckoutRequest {
        hold: HoldRequest {
            key: IdempotencyKey::checkout(payment(), 3),
            ..hold()
        },
        success_url: "http://127.0.0.1:8080/pay/tok?checkout=success".into(),
        cancel_url: "http://127.0.0.1:8080/pay/tok?checkout=cancel".into(),
        existing_intent: existing.map(|i| PaymentIntentId::parse(i).unwrap()),
        customer_email: Some("dupont@example.org".into()),
        mode: CheckoutMode::Hold,
        locale: Lang::Fr,
    }
}

fn assert_common_headers(req: &Request, account: Option<&str>) {
    let expected_auth = format!("Bearer {KEY}");
    assert_eq!(header(req, "authorization"), Some(expected_auth.as_str()));
    assert_eq!(header(req, "stripe-version"), Some(API_VERSION));
    assert_eq!(header(req, "stripe-account"), account);
}

// ---------------------------------------------------------------------------------
// Payments

#[tokio::test]
async fn a_hold_is_a_manual_capture_card_intent_on_the_connected_account() {
    let stub = Stub::start().await;
    stub.answer(
        "POST",
        "/v1/payment_intents",
        200,
        pi("requires_payment_method", 0, 0, Value::Null),
    )
    .await;
    let snapshot = stub.gateway().create_hold(&hold()).await.unwrap();

    let reqs = stub.requests().await;
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_common_headers(req, Some(ACCOUNT));
    assert_eq!(header(req, "idempotency-key"), Some(hold_key().as_str()));
    assert_eq!(
        header(req, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        form(req),
        expected(&[
            ("amount", "2500"),
            ("currency", "eur"),
            ("capture_method", "manual"),
            ("payment_method_types[]", "card"),
            (
                "description",
                "Téléconsultation Dr Estival 2026-01-05 10:00"
            ),
            ("metadata[payment_id]", PAYMENT),
            ("metadata[consultation_id]", CONSULTATION),
        ])
    );
    assert_eq!(snapshot.id, intent_id());
    assert_eq!(snapshot.status, IntentStatus::RequiresPaymentMethod);
    assert_eq!(snapshot.amount, eur(2500));
    assert_eq!(snapshot.payment, Some(payment()));
    assert_eq!(
        snapshot
            .client_secret
            .as_ref()
            .map(|s| s.expose().to_owned()),
        Some(format!("{INTENT}_secret_Dm43xiq1k0ywrRRj"))
    );
}

#[tokio::test]
async fn a_zero_decimal_currency_is_sent_in_whole_units() {
    let stub = Stub::start().await;
    let mut body = pi("requires_payment_method", 0, 0, Value::Null);
    body["currency"] = json!("jpy");
    body["amount"] = json!(3000);
    stub.answer("POST", "/v1/payment_intents", 200, body).await;
    let req = HoldRequest {
        amount: Money::from_minor(3000, Currency::Jpy),
        description: "  ".into(),
        ..hold()
    };
    let snapshot = stub.gateway().create_hold(&req).await.unwrap();
    let sent = form(&stub.requests().await[0]);
    assert_eq!(sent[0], ("amount".into(), "3000".into()));
    assert_eq!(sent[1], ("currency".into(), "jpy".into()));
    assert!(
        !sent.iter().any(|(k, _)| k == "description"),
        "a blank description is not sent"
    );
    assert_eq!(snapshot.amount, Money::from_minor(3000, Currency::Jpy));
}

#[tokio::test]
async fn the_description_can_be_left_out_for_peers_that_refuse_it() {
    let stub = Stub::start().await;
    stub.answer(
        "POST",
        "/v1/payment_intents",
        200,
        pi("requires_payment_method", 0, 0, Value::Null),
    )
    .await;
    let quiet = StripeGateway::new(
        &StripeSettings {
            describe_intents: false,
            renewable_holds: true,
            ..stub.settings(CheckoutKind::Hosted)
        },
        fast(),
    )
    .unwrap();
    quiet.create_hold(&hold()).await.unwrap();
    stub.gateway().create_hold(&hold()).await.unwrap();
    let requests = stub.requests().await;
    let has_description = |i: usize| form(&requests[i]).iter().any(|(k, _)| k == "description");
    assert!(!has_description(0), "left out when asked");
    assert!(has_description(1), "sent by default");
}

#[tokio::test]
async fn a_partial_capture_sends_amount_to_capture_and_reads_the_fee_and_deadline() {
    let stub = Stub::start().await;
    stub.answer(
        "POST",
        &format!("/v1/payment_intents/{INTENT}/capture"),
        200,
        pi("succeeded", 0, 1800, charge(2500, 1800, 0, txn(50, "eur"))),
    )
    .await;
    let key = IdempotencyKey::capture(payment(), &intent_id(), &eur(1800)).unwrap();
    let s = stub
        .gateway()
        .capture(&account(), &intent_id(), &eur(1800), &key)
        .await
        .unwrap();

    let req = &stub.requests().await[0];
    assert_common_headers(req, Some(ACCOUNT));
    assert_eq!(header(req, "idempotency-key"), Some(key.as_str()));
    assert_eq!(
        form(req),
        expected(&[
            ("amount_to_capture", "1800"),
            ("expand[]", "latest_charge"),
            ("expand[]", "latest_charge.balance_transaction"),
        ])
    );
    assert_eq!(s.status, IntentStatus::Succeeded);
    assert_eq!(s.amount_received, eur(1800));
    assert_eq!(s.amount_capturable, eur(0));
    assert_eq!(s.amount_refunded, eur(0));
    assert_eq!(s.fee, Some(eur(50)));
    assert_eq!(
        s.capture_before,
        Some(Utc.timestamp_opt(CREATED + 7 * 86_400, 0).unwrap())
    );
    assert!(
        s.events()
            .contains(&PaymentEvent::FeeReported { fee: eur(50) })
    );
}

#[tokio::test]
async fn a_fee_settled_in_another_currency_is_not_reported_as_the_charges() {
    let stub = Stub::start().await;
    stub.answer(
        "GET",
        &format!("/v1/payment_intents/{INTENT}"),
        200,
        pi("succeeded", 0, 1800, charge(2500, 1800, 0, txn(60, "usd"))),
    )
    .await;
    stub.answer_refunds(vec![]).await;
    let s = stub
        .gateway()
        .retrieve(&account(), &intent_id())
        .await
        .unwrap();
    assert_eq!(s.fee, None);
}

#[tokio::test]
async fn retrieve_expands_the_charge_and_sends_no_idempotency_key() {
    let stub = Stub::start().await;
    stub.answer(
        "GET",
        &format!("/v1/payment_intents/{INTENT}"),
        200,
        pi(
            "succeeded",
            0,
            1800,
            charge(2500, 1800, 500, txn(50, "eur")),
        ),
    )
    .await;
    stub.answer_refunds(vec![
        json!({ "id": "re_2Later", "object": "refund", "amount": 200, "currency": "eur",
                "status": "pending", "payment_intent": INTENT }),
        json!({ "id": "re_1First", "object": "refund", "amount": 300, "currency": "eur",
                "status": "failed", "payment_intent": INTENT }),
    ])
    .await;
    let s = stub
        .gateway()
        .retrieve(&account(), &intent_id())
        .await
        .unwrap();

    // Once captured, the charge's refunds are listed too, oldest first.
    let refunds = s.refunds.clone().unwrap();
    assert_eq!(
        refunds
            .iter()
            .map(|r| (r.id.as_str(), r.amount, r.status))
            .collect::<Vec<_>>(),
        vec![
            ("re_1First", eur(300), RefundStatus::Failed),
            ("re_2Later", eur(200), RefundStatus::Pending),
        ]
    );
    let listed = &stub.requests().await[1];
    assert_eq!(listed.url.path(), "/v1/refunds");
    assert_eq!(
        query(listed),
        expected(&[("payment_intent", INTENT), ("limit", "100")])
    );
    assert_common_headers(listed, Some(ACCOUNT));

    let req = &stub.requests().await[0];
    assert_eq!(req.method.as_str(), "GET");
    assert_common_headers(req, Some(ACCOUNT));
    assert_eq!(header(req, "idempotency-key"), None);
    assert!(req.body.is_empty());
    assert_eq!(
        query(req),
        expected(&[
            ("expand[]", "latest_charge"),
            ("expand[]", "latest_charge.balance_transaction")
        ])
    );
    assert_eq!(s.amount_refunded, eur(500));
    assert_eq!(
        s.events(),
        vec![
            PaymentEvent::HoldPlaced {
                amount: eur(2500),
                capture_before: Some(Utc.timestamp_opt(CREATED + 7 * 86_400, 0).unwrap())
            },
            PaymentEvent::Captured {
                amount: eur(1800),
                fee: Some(billing_core::fees::Fee::reported(eur(50)))
            },
            PaymentEvent::RefundsReported(refunds),
            PaymentEvent::FeeReported { fee: eur(50) },
        ]
    );
}

#[tokio::test]
async fn release_cancels_the_intent_with_its_key() {
    let stub = Stub::start().await;
    stub.answer(
        "POST",
        &format!("/v1/payment_intents/{INTENT}/cancel"),
        200,
        pi("canceled", 0, 0, Value::Null),
    )
    .await;
    let key = IdempotencyKey::release(payment(), Some(&intent_id()));
    let s = stub
        .gateway()
        .release(&account(), &intent_id(), &key)
        .await
        .unwrap();
    let req = &stub.requests().await[0];
    assert_eq!(header(req, "idempotency-key"), Some(key.as_str()));
    assert_eq!(header(req, "stripe-account"), Some(ACCOUNT));
    assert_eq!(
        form(req),
        expected(&[
            ("expand[]", "latest_charge"),
            ("expand[]", "latest_charge.balance_transaction")
        ])
    );
    assert_eq!(s.status, IntentStatus::Canceled);
    assert_eq!(s.events(), vec![PaymentEvent::Released]);
}

#[tokio::test]
async fn a_refund_names_the_intent_and_the_amount() {
    let stub = Stub::start().await;
    for (status, expected_status) in [
        ("succeeded", RefundStatus::Succeeded),
        ("pending", RefundStatus::Pending),
    ] {
        stub.api.reset().await;
        stub.answer(
            "POST",
            "/v1/refunds",
            200,
            json!({
                "id": "re_3QxYzAB7WZ01zgkW0r1s2t3u", "object": "refund", "amount": 700,
                "balance_transaction": "txn_1", "charge": "ch_3QxYzAB7WZ01zgkW0e1f2g3h",
                "created": CREATED, "currency": "eur", "metadata": {}, "payment_intent": INTENT,
                "reason": null, "receipt_number": null, "source_transfer_reversal": null,
                "status": status, "transfer_reversal": null,
            }),
        )
        .await;
        let key = IdempotencyKey::refund(payment(), "1");
        let r = stub
            .gateway()
            .refund(&account(), &intent_id(), &eur(700), &key)
            .await
            .unwrap();
        let req = &stub.requests().await[0];
        assert_eq!(
            form(req),
            expected(&[("payment_intent", INTENT), ("amount", "700")])
        );
        assert_eq!(header(req, "idempotency-key"), Some(key.as_str()));
        assert_eq!(header(req, "stripe-account"), Some(ACCOUNT));
        assert_eq!(r.id.as_str(), "re_3QxYzAB7WZ01zgkW0r1s2t3u");
        assert_eq!(r.amount, eur(700));
        assert_eq!(r.status, expected_status);
    }
}

// ---------------------------------------------------------------------------------
// Checkout

fn session(status: &str, payment_intent: Value) -> Value {
    json!({
        "id": "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY",
        "object": "checkout.session",
        "amount_subtotal": 2500,
        "amount_total": 2500,
        "cancel_url": "http://127.0.0.1:8080/pay/tok?checkout=cancel",
        "client_reference_id": PAYMENT,
        "created": CREATED,
        "currency": "eur",
        "customer_email": "dupont@example.org",
        "expires_at": CREATED + 86_400,
        "livemode": false,
        "metadata": { "payment_id": PAYMENT, "consultation_id": CONSULTATION },
        "mode": "payment",
        "payment_intent": payment_intent,
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "status": status,
        "success_url": "http://127.0.0.1:8080/pay/tok?checkout=success",
        "ui_mode": "hosted",
        "url": if status == "open" { json!("https://checkout.stripe.com/c/pay/cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY") } else { Value::Null },
    })
}

#[tokio::test]
async fn hosted_checkout_is_a_payment_mode_session_whose_intent_is_a_manual_capture_hold() {
    let stub = Stub::start().await;
    stub.answer(
        "POST",
        "/v1/checkout/sessions",
        200,
        session("open", Value::Null),
    )
    .await;
    stub.answer_customer().await;
    let request = CheckoutRequest {
        hold: HoldRequest {
            statement_descriptor_suffix: Some("CABINET 12".into()),
            ..checkout_request(Some(INTENT)).hold
        },
        ..checkout_request(Some(INTENT))
    };
    let start = stub.gateway().start_checkout(&request).await.unwrap();

    let reqs = stub.requests().await;
    assert_eq!(
        reqs.len(),
        2,
        "a customer for the card, then the session: Checkout makes its own intent"
    );
    let customer = &reqs[0];
    assert_eq!(customer.url.path(), "/v1/customers");
    assert_common_headers(customer, Some(ACCOUNT));
    assert_eq!(
        header(customer, "idempotency-key"),
        Some(
            format!(
                "{}:customer",
                IdempotencyKey::checkout(payment(), 3).as_str()
            )
            .as_str()
        )
    );
    assert_eq!(
        form(customer),
        expected(&[
            ("preferred_locales[]", "fr"),
            ("metadata[payment_id]", PAYMENT),
            ("metadata[consultation_id]", CONSULTATION),
            ("email", "dupont@example.org"),
        ])
    );
    let req = &reqs[1];
    assert_common_headers(req, Some(ACCOUNT));
    assert_eq!(
        header(req, "idempotency-key"),
        Some(IdempotencyKey::checkout(payment(), 3).as_str())
    );
    assert_eq!(
        form(req),
        expected(&[
            ("mode", "payment"),
            (
                "success_url",
                "http://127.0.0.1:8080/pay/tok?checkout=success"
            ),
            (
                "cancel_url",
                "http://127.0.0.1:8080/pay/tok?checkout=cancel"
            ),
            ("client_reference_id", PAYMENT),
            ("customer", "cus_Patient1"),
            ("locale", "fr"),
            ("payment_method_types[]", "card"),
            ("line_items[0][price_data][currency]", "eur"),
            ("line_items[0][price_data][unit_amount]", "2500"),
            (
                "line_items[0][price_data][product_data][name]",
                "Téléconsultation Dr Estival 2026-01-05 10:00"
            ),
            ("line_items[0][quantity]", "1"),
            ("payment_intent_data[capture_method]", "manual"),
            ("payment_intent_data[setup_future_usage]", "off_session"),
            (
                "payment_intent_data[description]",
                "Téléconsultation Dr Estival 2026-01-05 10:00"
            ),
            (
                "payment_intent_data[statement_descriptor_suffix]",
                "CABINET 12"
            ),
            ("payment_intent_data[metadata][payment_id]", PAYMENT),
            (
                "payment_intent_data[metadata][consultation_id]",
                CONSULTATION
            ),
            ("metadata[payment_id]", PAYMENT),
            ("metadata[consultation_id]", CONSULTATION),
        ])
    );
    assert_eq!(
        start.session.as_ref().map(|s| s.as_str()),
        Some("cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY")
    );
    assert!(
        start
            .redirect_url
            .as_deref()
            .unwrap()
            .starts_with("https://checkout.stripe.com/c/pay/cs_test_")
    );
    assert_eq!(
        start.expires_at,
        Some(Utc.timestamp_opt(CREATED + 86_400, 0).unwrap())
    );
    assert_eq!(start.intent, None);
    assert_eq!(start.client_secret, None);
}

#[tokio::test]
async fn a_consultation_further_ahead_saves_the_card_in_a_setup_mode_session_in_english() {
    let stub = Stub::start().await;
    let mut answer = session("open", Value::Null);
    answer["mode"] = json!("setup");
    stub.answer("POST", "/v1/checkout/sessions", 200, answer)
        .await;
    stub.answer_customer().await;
    let request = CheckoutRequest {
        mode: CheckoutMode::SaveCard,
        locale: Lang::En,
        ..checkout_request(None)
    };
    let start = stub.gateway().start_checkout(&request).await.unwrap();
    assert_eq!(start.mode, CheckoutMode::SaveCard);
    let reqs = stub.requests().await;
    assert_eq!(
        form(&reqs[0]).first(),
        Some(&("preferred_locales[]".to_owned(), "en".to_owned()))
    );
    assert_eq!(
        form(&reqs[1]),
        expected(&[
            ("mode", "setup"),
            (
                "success_url",
                "http://127.0.0.1:8080/pay/tok?checkout=success"
            ),
            (
                "cancel_url",
                "http://127.0.0.1:8080/pay/tok?checkout=cancel"
            ),
            ("client_reference_id", PAYMENT),
            ("customer", "cus_Patient1"),
            ("locale", "en"),
            ("payment_method_types[]", "card"),
            ("currency", "eur"),
            (
                "setup_intent_data[description]",
                "Téléconsultation Dr Estival 2026-01-05 10:00"
            ),
            ("setup_intent_data[metadata][payment_id]", PAYMENT),
            ("setup_intent_data[metadata][consultation_id]", CONSULTATION),
            ("metadata[payment_id]", PAYMENT),
            ("metadata[consultation_id]", CONSULTATION),
        ])
    );
}

#[tokio::test]
async fn a_session_without_a_url_is_an_unreadable_answer() {
    let stub = Stub::start().await;
    stub.answer_customer().await;
    stub.answer(
        "POST",
        "/v1/checkout/sessions",
        200,
        session("complete", Value::Null),
    )
    .await;
    let err = stub
        .gateway()
        .start_checkout(&checkout_request(None))
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn retrieve_checkout_reads_the_session_with_its_intent_expanded() {
    let stub = Stub::start().await;
    let cs = "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY";
    stub.answer(
        "GET",
        &format!("/v1/checkout/sessions/{cs}"),
        200,
        session(
            "complete",
            pi("requires_capture", 2500, 0, charge(2500, 0, 0, Value::Null)),
        ),
    )
    .await;
    let state = stub
        .gateway()
        .retrieve_checkout(&account(), &cs.parse().unwrap())
        .await
        .unwrap();
    let req = &stub.requests().await[0];
    assert_common_headers(req, Some(ACCOUNT));
    assert_eq!(
        query(req),
        expected(&[
            ("expand[]", "payment_intent"),
            ("expand[]", "payment_intent.latest_charge"),
            (
                "expand[]",
                "payment_intent.latest_charge.balance_transaction"
            ),
            ("expand[]", "setup_intent"),
        ])
    );
    assert_eq!(state.status, CheckoutStatus::Complete);
    let intent = state.intent.unwrap();
    assert_eq!(intent.status, IntentStatus::RequiresCapture);
    assert_eq!(intent.amount_capturable, eur(2500));

    stub.api.reset().await;
    stub.answer(
        "GET",
        &format!("/v1/checkout/sessions/{cs}"),
        200,
        session("expired", json!(INTENT)),
    )
    .await;
    let state = stub
        .gateway()
        .retrieve_checkout(&account(), &cs.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(state.status, CheckoutStatus::Expired);
    assert_eq!(
        state.intent, None,
        "an intent that is only an id says nothing"
    );
}

#[tokio::test]
async fn expiring_a_checkout_posts_to_the_session_with_its_key_and_a_closed_one_is_no_error() {
    let stub = Stub::start().await;
    let cs = "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY";
    let at = format!("/v1/checkout/sessions/{cs}/expire");
    stub.answer("POST", &at, 200, session("expired", Value::Null))
        .await;
    let key = IdempotencyKey::derive(payment(), "expire-checkout");
    stub.gateway()
        .expire_checkout(&account(), &cs.parse().unwrap(), &key)
        .await
        .unwrap();
    let req = &stub.requests().await[0];
    assert_eq!(req.url.path(), at);
    assert_eq!(header(req, "idempotency-key"), Some(key.as_str()));
    assert_eq!(header(req, "stripe-account"), Some(ACCOUNT));

    // Already expired, or paid meanwhile: Stripe refuses; the session, read back, is
    // indeed closed, so there is nothing to do.
    let refused = stripe_error(
        "invalid_request_error",
        None,
        "Only Checkout Sessions with a status in [\"open\"] can be expired.",
    );
    for closed in ["expired", "complete"] {
        stub.api.reset().await;
        stub.answer("POST", &at, 400, refused.clone()).await;
        stub.answer(
            "GET",
            &format!("/v1/checkout/sessions/{cs}"),
            200,
            session(closed, Value::Null),
        )
        .await;
        stub.gateway()
            .expire_checkout(&account(), &cs.parse().unwrap(), &key)
            .await
            .unwrap();
    }

    // Any other refusal, with the session still open, is surfaced: never recorded as
    // released.
    stub.api.reset().await;
    stub.answer(
        "POST",
        &at,
        400,
        stripe_error(
            "invalid_request_error",
            Some("parameter_unknown"),
            "Received unknown parameter: foo",
        ),
    )
    .await;
    stub.answer(
        "GET",
        &format!("/v1/checkout/sessions/{cs}"),
        200,
        session("open", Value::Null),
    )
    .await;
    let err = stub
        .gateway()
        .expire_checkout(&account(), &cs.parse().unwrap(), &key)
        .await
        .unwrap_err();
    assert!(
        matches!(err, GatewayError::InvalidRequest { .. }),
        "{err:?}"
    );

    // An outage is not mistaken for "already closed".
    stub.api.reset().await;
    stub.answer(
        "POST",
        &at,
        401,
        stripe_error("invalid_request_error", None, "bad key"),
    )
    .await;
    let err = stub
        .gateway()
        .expire_checkout(&account(), &cs.parse().unwrap(), &key)
        .await
        .unwrap_err();
    assert_eq!(err, GatewayError::Authentication);
}

#[tokio::test]
async fn the_payment_element_gets_the_client_secret_of_a_new_hold() {
    let stub = Stub::start().await;
    stub.answer(
        "POST",
        "/v1/payment_intents",
        200,
        pi("requires_payment_method", 0, 0, Value::Null),
    )
    .await;
    stub.answer_customer().await;
    let gateway = stub.gateway_with(CheckoutKind::Elements, fast());
    let start = gateway
        .start_checkout(&checkout_request(None))
        .await
        .unwrap();
    let reqs = stub.requests().await;
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].url.path(), "/v1/customers");
    assert_eq!(reqs[1].url.path(), "/v1/payment_intents");
    assert_eq!(
        header(&reqs[1], "idempotency-key"),
        Some(IdempotencyKey::checkout(payment(), 3).as_str())
    );
    let sent = form(&reqs[1]);
    assert!(sent.contains(&("capture_method".into(), "manual".into())));
    assert!(sent.contains(&("customer".into(), "cus_Patient1".into())));
    assert!(sent.contains(&("setup_future_usage".into(), "off_session".into())));
    assert_eq!(start.intent, Some(intent_id()));
    assert_eq!(start.redirect_url, None);
    assert_eq!(start.session, None);
    assert_eq!(
        start.client_secret.map(|s| s.expose().to_owned()),
        Some(format!("{INTENT}_secret_Dm43xiq1k0ywrRRj"))
    );
}

#[tokio::test]
async fn the_payment_element_reuses_an_intent_still_waiting_for_a_card() {
    let stub = Stub::start().await;
    stub.answer(
        "GET",
        &format!("/v1/payment_intents/{INTENT}"),
        200,
        pi("requires_payment_method", 0, 0, Value::Null),
    )
    .await;
    let gateway = stub.gateway_with(CheckoutKind::Elements, fast());
    let start = gateway
        .start_checkout(&checkout_request(Some(INTENT)))
        .await
        .unwrap();
    let reqs = stub.requests().await;
    assert_eq!(reqs.len(), 1, "no second hold is created");
    assert_eq!(reqs[0].method.as_str(), "GET");
    assert_eq!(start.intent, Some(intent_id()));
    assert!(start.client_secret.is_some());
}

#[tokio::test]
async fn the_payment_element_replaces_an_intent_that_is_canceled_or_gone() {
    for (status, body) in [
        (200, pi("canceled", 0, 0, Value::Null)),
        (
            404,
            stripe_error(
                "invalid_request_error",
                Some("resource_missing"),
                "No such payment_intent",
            ),
        ),
    ] {
        let stub = Stub::start().await;
        stub.answer(
            "GET",
            &format!("/v1/payment_intents/{INTENT}"),
            status,
            body,
        )
        .await;
        stub.answer(
            "POST",
            "/v1/payment_intents",
            200,
            pi("requires_payment_method", 0, 0, Value::Null),
        )
        .await;
        stub.answer_customer().await;
        let gateway = stub.gateway_with(CheckoutKind::Elements, fast());
        let start = gateway
            .start_checkout(&checkout_request(Some(INTENT)))
            .await
            .unwrap();
        let calls: Vec<String> = stub
            .requests()
            .await
            .iter()
            .map(|r| format!("{} {}", r.method, r.url.path()))
            .collect();
        assert_eq!(
            calls,
            vec![
                format!("GET /v1/payment_intents/{INTENT}"),
                "POST /v1/customers".into(),
                "POST /v1/payment_intents".into()
            ],
            "status {status}"
        );
        assert!(start.client_secret.is_some());
    }
}

#[tokio::test]
async fn the_payment_element_saves_the_card_with_a_setup_intent() {
    let stub = Stub::start().await;
    stub.answer_customer().await;
    stub.answer(
        "POST",
        "/v1/setup_intents",
        200,
        json!({ "id": "seti_1Save", "object": "setup_intent", "status": "requires_payment_method",
                "client_secret": "seti_1Save_secret_xyz", "usage": "off_session" }),
    )
    .await;
    let gateway = stub.gateway_with(CheckoutKind::Elements, fast());
    let start = gateway
        .start_checkout(&CheckoutRequest {
            mode: CheckoutMode::SaveCard,
            ..checkout_request(None)
        })
        .await
        .unwrap();
    assert_eq!(start.mode, CheckoutMode::SaveCard);
    assert_eq!(start.intent, None);
    // Recorded on the payment, so it can be read back without its webhook.
    assert_eq!(
        start.setup,
        Some(SetupIntentId::parse("seti_1Save").unwrap())
    );
    assert_eq!(
        start.client_secret.map(|s| s.expose().to_owned()),
        Some("seti_1Save_secret_xyz".into())
    );
    let setup = &stub.requests().await[1];
    assert_eq!(setup.url.path(), "/v1/setup_intents");
    assert_eq!(
        form(setup),
        expected(&[
            ("customer", "cus_Patient1"),
            ("usage", "off_session"),
            ("payment_method_types[]", "card"),
            (
                "description",
                "Téléconsultation Dr Estival 2026-01-05 10:00"
            ),
            ("metadata[payment_id]", PAYMENT),
            ("metadata[consultation_id]", CONSULTATION),
        ])
    );
}

#[tokio::test]
async fn a_setup_intent_is_read_back_on_the_practitioners_account() {
    let stub = Stub::start().await;
    stub.answer(
        "GET",
        "/v1/setup_intents/seti_1Save",
        200,
        json!({ "id": "seti_1Save", "object": "setup_intent", "status": "succeeded",
                "customer": "cus_Patient1", "payment_method": "pm_1Saved", "usage": "off_session",
                "metadata": { "payment_id": PAYMENT } }),
    )
    .await;
    let setup = stub
        .gateway()
        .retrieve_setup(&account(), &SetupIntentId::parse("seti_1Save").unwrap())
        .await
        .unwrap();
    let req = &stub.requests().await[0];
    assert_common_headers(req, Some(ACCOUNT));
    assert_eq!(setup.status, SetupStatus::Succeeded);
    assert_eq!(
        setup.saved_card,
        Some(SavedCard {
            customer: CustomerId::parse("cus_Patient1").unwrap(),
            payment_method: PaymentMethodId::parse("pm_1Saved").unwrap(),
        })
    );
    assert_eq!(
        setup.payment.map(|p| p.to_string()),
        Some(PAYMENT.to_owned())
    );

    // One that is not on the account.
    stub.api.reset().await;
    stub.answer(
        "GET",
        "/v1/setup_intents/seti_1Gone",
        404,
        json!({ "error": { "type": "invalid_request_error", "code": "resource_missing",
                           "message": "No such setupintent: 'seti_1Gone'", "param": "intent" } }),
    )
    .await;
    let err = stub
        .gateway()
        .retrieve_setup(&account(), &SetupIntentId::parse("seti_1Gone").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::NotFound { .. }), "{err:?}");
}

fn off_session_hold() -> HoldRequest {
    HoldRequest {
        off_session: Some(SavedCard {
            customer: CustomerId::parse("cus_Patient1").unwrap(),
            payment_method: PaymentMethodId::parse("pm_1Saved").unwrap(),
        }),
        statement_descriptor_suffix: Some("CABINET 12".into()),
        ..hold()
    }
}

#[tokio::test]
async fn an_off_session_hold_confirms_the_saved_card_at_once() {
    let stub = Stub::start().await;
    stub.answer(
        "POST",
        "/v1/payment_intents",
        200,
        pi("requires_capture", 2500, 0, charge(2500, 0, 0, Value::Null)),
    )
    .await;
    let s = stub
        .gateway()
        .create_hold(&off_session_hold())
        .await
        .unwrap();
    assert_eq!(s.status, IntentStatus::RequiresCapture);
    let req = &stub.requests().await[0];
    assert_eq!(header(req, "idempotency-key"), Some(hold_key().as_str()));
    assert_eq!(
        form(req),
        expected(&[
            ("amount", "2500"),
            ("currency", "eur"),
            ("capture_method", "manual"),
            ("payment_method_types[]", "card"),
            (
                "description",
                "Téléconsultation Dr Estival 2026-01-05 10:00"
            ),
            ("statement_descriptor_suffix", "CABINET 12"),
            ("customer", "cus_Patient1"),
            ("payment_method", "pm_1Saved"),
            ("off_session", "true"),
            ("confirm", "true"),
            ("metadata[payment_id]", PAYMENT),
            ("metadata[consultation_id]", CONSULTATION),
        ])
    );
}

#[tokio::test]
async fn an_off_session_hold_reads_its_deadline_back_when_the_charge_is_not_expanded() {
    // Stripe's create answer names the charge by id only: the deadline is on it.
    let stub = Stub::start().await;
    stub.answer(
        "POST",
        "/v1/payment_intents",
        200,
        pi(
            "requires_capture",
            2500,
            0,
            json!("ch_3QxYzAB7WZ01zgkW0e1f2g3h"),
        ),
    )
    .await;
    stub.answer(
        "GET",
        &format!("/v1/payment_intents/{INTENT}"),
        200,
        pi("requires_capture", 2500, 0, charge(2500, 0, 0, Value::Null)),
    )
    .await;
    let s = stub
        .gateway()
        .create_hold(&off_session_hold())
        .await
        .unwrap();
    assert_eq!(s.status, IntentStatus::RequiresCapture);
    assert_eq!(
        s.capture_before,
        Some(Utc.timestamp_opt(CREATED + 7 * 86_400, 0).unwrap())
    );
    let requests = stub.requests().await;
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].method.as_str(), "GET");
    assert_common_headers(&requests[1], Some(ACCOUNT));
}

#[tokio::test]
async fn an_off_session_hold_the_bank_wants_authenticated_is_a_refusal() {
    // Stripe: a card_error with `authentication_required` (the intent left waiting).
    let stub = Stub::start().await;
    stub.answer(
        "POST",
        "/v1/payment_intents",
        402,
        json!({ "error": { "type": "card_error", "code": "authentication_required",
                "decline_code": "authentication_required",
                "message": "Your card was declined. This transaction requires authentication.",
                "payment_intent": pi("requires_payment_method", 0, 0, Value::Null) } }),
    )
    .await;
    let err = stub
        .gateway()
        .create_hold(&off_session_hold())
        .await
        .unwrap_err();
    let GatewayError::Declined(f) = err else {
        panic!("{err:?}");
    };
    assert_eq!(f.code.as_deref(), Some("authentication_required"));

    // A Stripe-compatible peer that leaves the intent waiting for an action that
    // nobody is there to take: the same refusal.
    for (status, code) in [
        ("requires_action", "authentication_required"),
        ("requires_payment_method", "card_declined"),
    ] {
        let stub = Stub::start().await;
        stub.answer(
            "POST",
            "/v1/payment_intents",
            200,
            pi(status, 0, 0, Value::Null),
        )
        .await;
        let err = stub
            .gateway()
            .create_hold(&off_session_hold())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, GatewayError::Declined(f) if f.code.as_deref() == Some(code)),
            "{status}: {err:?}"
        );
    }
}

#[tokio::test]
async fn webhook_endpoints_found_are_brought_to_exactly_our_event_types() {
    let url = "https://pay.example.org/webhooks/stripe";
    let endpoint = |id: &str, kind: &str, events: Vec<&str>| {
        json!({ "id": id, "object": "webhook_endpoint", "url": url, "status": "enabled",
                "enabled_events": events, "metadata": { "consultpay_endpoint": kind } })
    };
    let stub = Stub::start().await;
    stub.answer(
        "GET",
        "/v1/webhook_endpoints",
        200,
        json!({ "object": "list", "has_more": false, "data": [
            endpoint("we_1Platform", "platform", gateway_stripe::CONSUMED_EVENTS.to_vec()),
            endpoint("we_2Connect", "connect", vec!["payment_intent.succeeded"]),
        ]}),
    )
    .await;
    stub.answer(
        "POST",
        "/v1/webhook_endpoints/we_2Connect",
        200,
        endpoint(
            "we_2Connect",
            "connect",
            gateway_stripe::CONSUMED_EVENTS.to_vec(),
        ),
    )
    .await;
    let done =
        gateway_stripe::setup_webhook_endpoints(&stub.settings(CheckoutKind::Hosted), fast(), url)
            .await
            .unwrap();
    assert_eq!(
        done.iter()
            .map(|e| (e.id.as_str(), e.change))
            .collect::<Vec<_>>(),
        vec![
            ("we_1Platform", gateway_stripe::EndpointChange::Unchanged),
            ("we_2Connect", gateway_stripe::EndpointChange::Updated),
        ]
    );
    assert!(done.iter().all(|e| e.secret.is_none()), "never shown again");
    let update = stub
        .requests()
        .await
        .into_iter()
        .find(|r| r.url.path() == "/v1/webhook_endpoints/we_2Connect")
        .unwrap();
    let events: Vec<String> = form(&update)
        .into_iter()
        .filter(|(k, _)| k == "enabled_events[]")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(events, gateway_stripe::CONSUMED_EVENTS);

    // Created from nothing: one Connect endpoint, one platform endpoint, both on our
    // API version, their secrets shown once.
    let stub = Stub::start().await;
    stub.answer(
        "GET",
        "/v1/webhook_endpoints",
        200,
        json!({ "object": "list", "has_more": false, "data": [] }),
    )
    .await;
    stub.answer(
        "POST",
        "/v1/webhook_endpoints",
        200,
        json!({ "id": "we_3New", "object": "webhook_endpoint", "url": url,
                "secret": "whsec_new", "enabled_events": [] }),
    )
    .await;
    let done =
        gateway_stripe::setup_webhook_endpoints(&stub.settings(CheckoutKind::Hosted), fast(), url)
            .await
            .unwrap();
    assert!(done.iter().all(|e| e.secret.is_some()));
    let created: Vec<Vec<(String, String)>> = stub
        .requests()
        .await
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .map(form)
        .collect();
    assert_eq!(created.len(), 2);
    let has =
        |f: &Vec<(String, String)>, k: &str, v: &str| f.contains(&(k.to_owned(), v.to_owned()));
    assert!(has(
        &created[0],
        "metadata[consultpay_endpoint]",
        "platform"
    ));
    assert!(!created[0].iter().any(|(k, _)| k == "connect"));
    assert!(has(&created[1], "metadata[consultpay_endpoint]", "connect"));
    assert!(has(&created[1], "connect", "true"));
    assert!(
        created
            .iter()
            .all(|f| has(f, "api_version", API_VERSION) && has(f, "url", url))
    );
}

// ---------------------------------------------------------------------------------
// Retries

#[tokio::test]
async fn the_same_idempotency_key_and_body_are_sent_on_every_retry_of_a_write() {
    let stub = Stub::start().await;
    let at = format!("/v1/payment_intents/{INTENT}/capture");
    Mock::given(method("POST"))
        .and(path(at.as_str()))
        .respond_with(ResponseTemplate::new(500).set_body_json(stripe_error(
            "api_error",
            None,
            "An unknown error occurred",
        )))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&stub.api)
        .await;
    Mock::given(method("POST"))
        .and(path(at.as_str()))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&stub.api)
        .await;
    stub.answer("POST", &at, 200, pi("succeeded", 0, 1800, Value::Null))
        .await;
    let key = IdempotencyKey::capture(payment(), &intent_id(), &eur(1800)).unwrap();
    let s = stub
        .gateway()
        .capture(&account(), &intent_id(), &eur(1800), &key)
        .await
        .unwrap();
    assert_eq!(s.status, IntentStatus::Succeeded);

    let reqs = stub.requests().await;
    assert_eq!(reqs.len(), 3);
    for req in &reqs {
        assert_eq!(header(req, "idempotency-key"), Some(key.as_str()));
        assert_eq!(req.body, reqs[0].body);
        assert_common_headers(req, Some(ACCOUNT));
    }
}

#[tokio::test]
async fn a_write_without_a_domain_key_still_keeps_one_key_across_its_retries() {
    let stub = Stub::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/account_links"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&stub.api)
        .await;
    stub.answer(
        "POST",
        "/v1/account_links",
        200,
        json!({
            "object": "account_link", "created": CREATED, "expires_at": CREATED + 300,
            "url": "https://connect.stripe.com/setup/s/acct_1QxYz0B7WZ01zgkW/MerI6itPZo2K",
        }),
    )
    .await;
    let gateway = stub.gateway();
    gateway
        .account_link(&account(), "http://r", "http://b")
        .await
        .unwrap();
    gateway
        .account_link(&account(), "http://r", "http://b")
        .await
        .unwrap();
    let keys: Vec<String> = stub
        .requests()
        .await
        .iter()
        .map(|r| header(r, "idempotency-key").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0], keys[1], "the retry reuses the key");
    assert_ne!(keys[1], keys[2], "another link is another request");
    assert!(
        keys.iter()
            .all(|k| k.starts_with("consultpay:account_link:"))
    );
}

#[tokio::test]
async fn rate_limits_are_retried_then_reported() {
    let stub = Stub::start().await;
    let at = format!("/v1/payment_intents/{INTENT}");
    stub.answer(
        "GET",
        &at,
        429,
        stripe_error(
            "invalid_request_error",
            Some("rate_limit"),
            "Too many requests",
        ),
    )
    .await;
    let err = stub
        .gateway()
        .retrieve(&account(), &intent_id())
        .await
        .unwrap_err();
    assert_eq!(err, GatewayError::RateLimited);
    assert_eq!(
        stub.requests().await.len(),
        3,
        "one attempt and two retries"
    );

    stub.api.reset().await;
    Mock::given(method("GET"))
        .and(path(at.as_str()))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&stub.api)
        .await;
    stub.answer(
        "GET",
        &at,
        200,
        pi("requires_capture", 2500, 0, Value::Null),
    )
    .await;
    assert!(
        stub.gateway()
            .retrieve(&account(), &intent_id())
            .await
            .is_ok()
    );
    assert_eq!(stub.requests().await.len(), 2);
}

#[tokio::test]
async fn server_errors_are_retried_and_then_the_outcome_is_unknown() {
    for status in [500, 502, 503, 504] {
        let stub = Stub::start().await;
        stub.answer(
            "POST",
            "/v1/refunds",
            status,
            stripe_error("api_error", None, "Something went wrong"),
        )
        .await;
        let err = stub
            .gateway()
            .refund(
                &account(),
                &intent_id(),
                &eur(100),
                &IdempotencyKey::refund(payment(), "1"),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, GatewayError::Unavailable { .. }),
            "{status}: {err:?}"
        );
        assert_eq!(stub.requests().await.len(), 3, "{status}");
    }
}

#[tokio::test]
async fn other_client_errors_are_never_retried() {
    for (status, kind, code) in [
        (
            400,
            "invalid_request_error",
            Some("parameter_invalid_integer"),
        ),
        (401, "invalid_request_error", None),
        (402, "card_error", Some("card_declined")),
        (403, "invalid_request_error", None),
        (404, "invalid_request_error", Some("resource_missing")),
        (409, "invalid_request_error", Some("idempotency_key_in_use")),
    ] {
        let stub = Stub::start().await;
        stub.answer(
            "POST",
            "/v1/payment_intents",
            status,
            stripe_error(kind, code, "No."),
        )
        .await;
        assert!(stub.gateway().create_hold(&hold()).await.is_err());
        assert_eq!(stub.requests().await.len(), 1, "{status} {code:?}");
    }
}

#[tokio::test]
async fn stripe_should_retry_false_stops_the_retries() {
    let stub = Stub::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(
            ResponseTemplate::new(500)
                .insert_header("Stripe-Should-Retry", "false")
                .set_body_json(stripe_error("api_error", None, "Do not retry this")),
        )
        .mount(&stub.api)
        .await;
    let err = stub.gateway().create_hold(&hold()).await.unwrap_err();
    assert!(matches!(err, GatewayError::Unavailable { .. }));
    assert_eq!(stub.requests().await.len(), 1);
}

#[tokio::test]
async fn retries_back_off_exponentially() {
    let stub = Stub::start().await;
    stub.answer(
        "GET",
        &format!("/v1/payment_intents/{INTENT}"),
        503,
        json!({}),
    )
    .await;
    let options = ClientOptions {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        ..fast()
    };
    let gateway = stub.gateway_with(CheckoutKind::Hosted, options);
    let started = Instant::now();
    assert!(gateway.retrieve(&account(), &intent_id()).await.is_err());
    let elapsed = started.elapsed();
    // Equal jitter: the first pause is 50–100 ms, the second 100–200 ms.
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
}

#[tokio::test]
async fn a_timeout_is_retried_then_unavailable() {
    let stub = Stub::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(800)))
        .mount(&stub.api)
        .await;
    let options = ClientOptions {
        timeout: Duration::from_millis(150),
        ..fast()
    };
    let err = stub
        .gateway_with(CheckoutKind::Hosted, options)
        .retrieve(&account(), &intent_id())
        .await
        .unwrap_err();
    let GatewayError::Unavailable { message } = err else {
        panic!("{err:?}");
    };
    assert!(message.contains("timed out"), "{message}");
    assert_eq!(stub.requests().await.len(), 3);
}

/// A server that accepts connections and closes them at once, counting them.
fn slamming_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (url, count)
}

#[tokio::test]
async fn broken_connections_are_retried_for_keyed_writes() {
    let (url, count) = slamming_server();
    let settings = StripeSettings {
        secret_key: KEY.into(),
        api_base: Some(url),
        connect_base: None,
        connect_client_id: None,
        webhook_secret: None,
        connect_webhook_secret: None,
        checkout: CheckoutKind::Hosted,
        describe_intents: true,
        renewable_holds: true,
    };
    let gateway = StripeGateway::new(&settings, fast()).unwrap();
    let err = gateway.create_hold(&hold()).await.unwrap_err();
    assert!(matches!(err, GatewayError::Unavailable { .. }), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_oauth_code_is_not_sent_again_once_stripe_may_have_seen_it() {
    let (url, count) = slamming_server();
    let settings = StripeSettings {
        secret_key: KEY.into(),
        api_base: None,
        connect_base: Some(url),
        connect_client_id: Some("ca_TestClient123".into()),
        webhook_secret: None,
        connect_webhook_secret: None,
        checkout: CheckoutKind::Hosted,
        describe_intents: true,
        renewable_holds: true,
    };
    let gateway = StripeGateway::new(&settings, fast()).unwrap();
    let err = gateway.exchange_code("ac_123").await.unwrap_err();
    assert!(matches!(err, GatewayError::Unavailable { .. }), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // A 5xx may have consumed the code too; a 429 has not.
    let stub = Stub::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&stub.connect)
        .await;
    assert!(stub.gateway().exchange_code("ac_123").await.is_err());
    assert_eq!(stub.connect_requests().await.len(), 1);
    stub.connect.reset().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(429))
        .mount(&stub.connect)
        .await;
    assert_eq!(
        stub.gateway().exchange_code("ac_123").await,
        Err(GatewayError::RateLimited)
    );
    assert_eq!(stub.connect_requests().await.len(), 3);
}

// ---------------------------------------------------------------------------------
// Errors

#[tokio::test]
async fn each_stripe_error_type_maps_to_what_the_domain_can_act_on() {
    type Check = fn(&GatewayError) -> bool;
    let cases: Vec<(u16, Value, Check)> = vec![
        (
            402,
            json!({ "error": { "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                "message": "Your card has insufficient funds.", "charge": "ch_1", "payment_intent": { "id": INTENT } } }),
            |e| {
                matches!(e, GatewayError::Declined(f) if f.code.as_deref() == Some("card_declined")
                && f.decline_code.as_deref() == Some("insufficient_funds")
                && f.message == "Your card has insufficient funds.")
            },
        ),
        (
            400,
            stripe_error(
                "invalid_request_error",
                Some("payment_intent_unexpected_state"),
                "This PaymentIntent could not be captured because it has a status of canceled.",
            ),
            |e| matches!(e, GatewayError::UnexpectedState { message } if message.contains("status of canceled")),
        ),
        (
            400,
            stripe_error(
                "invalid_request_error",
                Some("charge_expired_for_capture"),
                "expired",
            ),
            |e| matches!(e, GatewayError::UnexpectedState { .. }),
        ),
        (
            400,
            stripe_error(
                "idempotency_error",
                None,
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            ),
            |e| *e == GatewayError::IdempotencyConflict,
        ),
        (
            401,
            stripe_error(
                "invalid_request_error",
                None,
                "Invalid API Key provided: sk_test_****6789",
            ),
            |e| *e == GatewayError::Authentication,
        ),
        (
            403,
            stripe_error(
                "invalid_request_error",
                None,
                "The provided key 'sk_test_********************6789' does not have access to account 'acct_1QxYz0B7WZ01zgkW' (or that account does not exist). Application access may have been revoked.",
            ),
            |e| matches!(e, GatewayError::AccountUnavailable { message } if !message.contains("6789") && message.contains("acct_1QxYz0B7WZ01zgkW")),
        ),
        (
            400,
            stripe_error(
                "invalid_request_error",
                Some("account_invalid"),
                "The account ID provided as a value for the Stripe-Account header is invalid.",
            ),
            |e| matches!(e, GatewayError::AccountUnavailable { .. }),
        ),
        (
            404,
            stripe_error(
                "invalid_request_error",
                Some("resource_missing"),
                "No such payment_intent: 'pi_x'",
            ),
            |e| matches!(e, GatewayError::NotFound { message } if message.contains("No such payment_intent")),
        ),
        (
            400,
            json!({ "error": { "type": "invalid_request_error", "code": "amount_too_large", "param": "amount_to_capture",
                "message": "The amount to capture must be less than or equal to the amount capturable." } }),
            |e| {
                matches!(e, GatewayError::InvalidRequest { code, param, .. }
                if code.as_deref() == Some("amount_too_large") && param.as_deref() == Some("amount_to_capture"))
            },
        ),
        (
            429,
            stripe_error(
                "invalid_request_error",
                Some("rate_limit"),
                "Too many requests",
            ),
            |e| *e == GatewayError::RateLimited,
        ),
        (
            500,
            stripe_error("api_error", None, "An unknown error occurred"),
            |e| matches!(e, GatewayError::Unavailable { .. }),
        ),
        (
            409,
            stripe_error(
                "invalid_request_error",
                Some("idempotency_key_in_use"),
                "There is currently another in-progress request",
            ),
            |e| matches!(e, GatewayError::Unavailable { .. }),
        ),
        // The same, typed as an idempotency error: still "outcome unknown", never a
        // conflict of parameters (which would clear the other request's pending mark).
        (
            409,
            stripe_error(
                "idempotency_error",
                Some("idempotency_key_in_use"),
                "There is currently another in-progress request using this Stripe-Idempotency-Key",
            ),
            |e| matches!(e, GatewayError::Unavailable { .. }),
        ),
        (502, json!("<html>Bad Gateway</html>"), |e| {
            matches!(e, GatewayError::Unavailable { .. })
        }),
        (200, json!({ "unexpected": true }), |e| {
            matches!(e, GatewayError::Unavailable { .. })
        }),
        (200, pi("requires_time_travel", 0, 0, Value::Null), |e| {
            matches!(e, GatewayError::Unavailable { .. })
        }),
    ];
    for (status, body, check) in cases {
        let stub = Stub::start().await;
        stub.answer(
            "POST",
            &format!("/v1/payment_intents/{INTENT}/capture"),
            status,
            body.clone(),
        )
        .await;
        let key = IdempotencyKey::capture(payment(), &intent_id(), &eur(1800)).unwrap();
        let err = stub
            .gateway()
            .capture(&account(), &intent_id(), &eur(1800), &key)
            .await
            .unwrap_err();
        assert!(check(&err), "{status} {body}: {err:?}");
        assert!(!err.to_string().contains(KEY), "{err}");
    }
}

// ---------------------------------------------------------------------------------
// Connect

fn oauth_state() -> OAuthState {
    OAuthState::from_random("aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6kM9nP2")
}

#[tokio::test]
async fn the_authorize_url_asks_the_connect_host_for_a_read_write_code() {
    let stub = Stub::start().await;
    let url = stub
        .gateway()
        .authorize_url(
            &oauth_state(),
            "http://127.0.0.1:8080/connect/stripe/callback",
        )
        .unwrap();
    assert_eq!(
        url,
        format!(
            "{}/oauth/authorize?response_type=code&scope=read_write&client_id=ca_TestClient123&state=aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6kM9nP2&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fconnect%2Fstripe%2Fcallback",
            stub.connect.uri()
        )
    );
    let default = StripeGateway::new(
        &StripeSettings {
            connect_base: None,
            ..stub.settings(CheckoutKind::Hosted)
        },
        fast(),
    )
    .unwrap();
    assert!(
        default
            .authorize_url(&oauth_state(), "https://x/cb")
            .unwrap()
            .starts_with("https://connect.stripe.com/oauth/authorize?")
    );
}

#[tokio::test]
async fn without_a_client_id_the_oauth_path_is_not_configured() {
    let stub = Stub::start().await;
    let gateway = StripeGateway::new(
        &StripeSettings {
            connect_client_id: Some("  ".into()),
            ..stub.settings(CheckoutKind::Hosted)
        },
        fast(),
    )
    .unwrap();
    assert!(matches!(
        gateway.authorize_url(&oauth_state(), "http://x"),
        Err(GatewayError::NotConfigured(_))
    ));
    assert!(matches!(
        gateway.deauthorize(&account()).await,
        Err(GatewayError::NotConfigured(_))
    ));
    assert!(stub.connect_requests().await.is_empty());
}

#[tokio::test]
async fn a_code_is_exchanged_on_the_connect_host_for_the_account_id() {
    let stub = Stub::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "sk_test_accessTokenOfThePractitioner", "livemode": false,
            "refresh_token": "rt_refreshToken", "token_type": "bearer",
            "stripe_publishable_key": "pk_test_abc", "stripe_user_id": ACCOUNT, "scope": "read_write",
        })))
        .mount(&stub.connect)
        .await;
    let account = stub
        .gateway()
        .exchange_code("ac_QxYzAbCdEf123")
        .await
        .unwrap();
    assert_eq!(account.as_str(), ACCOUNT);
    assert!(
        stub.requests().await.is_empty(),
        "nothing goes to the API host"
    );
    let reqs = stub.connect_requests().await;
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.method.as_str(), "POST");
    assert_common_headers(req, None);
    assert!(
        header(req, "idempotency-key").is_some(),
        "every POST carries a key"
    );
    assert_eq!(
        form(req),
        expected(&[
            ("grant_type", "authorization_code"),
            ("code", "ac_QxYzAbCdEf123")
        ])
    );
}

#[tokio::test]
async fn an_unknown_expired_or_reused_code_is_an_invalid_grant() {
    let stub = Stub::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": "This authorization code has already been used. All tokens issued with this code have been revoked.",
        })))
        .mount(&stub.connect)
        .await;
    let err = stub.gateway().exchange_code("ac_used").await.unwrap_err();
    assert!(
        matches!(&err, GatewayError::InvalidGrant { message } if message.contains("already been used")),
        "{err:?}"
    );
    assert_eq!(stub.connect_requests().await.len(), 1);
    assert!(matches!(
        stub.gateway().exchange_code("  ").await,
        Err(GatewayError::InvalidGrant { .. })
    ));
}

#[tokio::test]
async fn deauthorize_names_our_client_and_the_account() {
    let stub = Stub::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/deauthorize"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "stripe_user_id": ACCOUNT })),
        )
        .mount(&stub.connect)
        .await;
    stub.gateway().deauthorize(&account()).await.unwrap();
    let req = &stub.connect_requests().await[0];
    assert_common_headers(req, None);
    assert_eq!(
        form(req),
        expected(&[
            ("client_id", "ca_TestClient123"),
            ("stripe_user_id", ACCOUNT)
        ])
    );
}

#[tokio::test]
async fn deauthorizing_an_account_already_disconnected_is_account_unavailable() {
    let stub = Stub::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/deauthorize"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": "invalid_client",
            "error_description": "This application is not connected to stripe account acct_1QxYz0B7WZ01zgkW, or that account does not exist.",
        })))
        .mount(&stub.connect)
        .await;
    let err = stub.gateway().deauthorize(&account()).await.unwrap_err();
    assert!(
        matches!(err, GatewayError::AccountUnavailable { .. }),
        "{err:?}"
    );
}

fn stripe_account(charges: bool) -> Value {
    json!({
        "id": ACCOUNT, "object": "account", "type": "standard", "business_type": "individual",
        "capabilities": { "card_payments": "active", "transfers": "active" },
        "charges_enabled": charges, "payouts_enabled": charges, "details_submitted": true,
        "country": "FR", "created": CREATED, "default_currency": "eur", "email": "dr@example.org",
        "requirements": {
            "alternatives": [], "current_deadline": null,
            "currently_due": if charges { json!([]) } else { json!(["individual.verification.document"]) },
            "disabled_reason": if charges { Value::Null } else { json!("requirements.pending_verification") },
            "errors": [], "eventually_due": [], "past_due": [], "pending_verification": [],
        },
        "settings": { "payouts": { "debit_negative_balances": true, "schedule": { "delay_days": 7, "interval": "monthly", "monthly_anchor": 15 }, "statement_descriptor": null } },
        "metadata": {},
    })
}

#[tokio::test]
async fn the_connected_account_is_read_with_the_platform_key_alone() {
    let stub = Stub::start().await;
    stub.answer(
        "GET",
        &format!("/v1/accounts/{ACCOUNT}"),
        200,
        stripe_account(false),
    )
    .await;
    let a = stub.gateway().retrieve_account(&account()).await.unwrap();
    let req = &stub.requests().await[0];
    assert_common_headers(req, None);
    assert_eq!(a.id, account());
    assert!(!a.charges_enabled && !a.payouts_enabled && a.details_submitted);
    assert_eq!(
        a.disabled_reason.as_deref(),
        Some("requirements.pending_verification")
    );
    assert_eq!(
        a.currently_due,
        vec!["individual.verification.document".to_owned()]
    );
    assert_eq!(
        a.payout_schedule.as_ref().map(|p| p.interval.clone()),
        Some(PayoutInterval::Monthly(15))
    );
    assert_eq!(a.default_currency, Some(Currency::Eur));
}

#[tokio::test]
async fn an_account_stripe_will_not_show_us_is_unavailable() {
    for (status, code) in [(403, None), (404, Some("resource_missing"))] {
        let stub = Stub::start().await;
        stub.answer(
            "GET",
            &format!("/v1/accounts/{ACCOUNT}"),
            status,
            stripe_error("invalid_request_error", code, "No access"),
        )
        .await;
        let err = stub
            .gateway()
            .retrieve_account(&account())
            .await
            .unwrap_err();
        assert!(
            matches!(err, GatewayError::AccountUnavailable { .. }),
            "{status}: {err:?}"
        );
    }
}

#[tokio::test]
async fn an_account_for_account_links_is_a_standard_account_created_once_per_key() {
    let stub = Stub::start().await;
    stub.answer("POST", "/v1/accounts", 200, stripe_account(false))
        .await;
    let practitioner: billing_core::ids::PractitionerId =
        "0190b1a4-1111-7d3a-9f00-1234567890ab".parse().unwrap();
    let key = IdempotencyKey::for_practitioner(practitioner, "account", 4);
    let created = stub
        .gateway()
        .create_account(practitioner, &key)
        .await
        .unwrap();
    assert_eq!(created, account());
    let req = &stub.requests().await[0];
    assert_common_headers(req, None);
    assert_eq!(header(req, "idempotency-key"), Some(key.as_str()));
    assert_eq!(
        form(req),
        expected(&[
            ("type", "standard"),
            (
                "metadata[practitioner_id]",
                "0190b1a4-1111-7d3a-9f00-1234567890ab"
            )
        ])
    );
}

#[tokio::test]
async fn an_account_link_is_an_onboarding_link_back_to_our_pages() {
    let stub = Stub::start().await;
    stub.answer(
        "POST",
        "/v1/account_links",
        200,
        json!({
            "object": "account_link", "created": CREATED, "expires_at": CREATED + 300,
            "url": "https://connect.stripe.com/setup/s/acct_1QxYz0B7WZ01zgkW/MerI6itPZo2K",
        }),
    )
    .await;
    let url = stub
        .gateway()
        .account_link(
            &account(),
            "http://127.0.0.1:8080/dashboard?stripe=refresh",
            "http://127.0.0.1:8080/dashboard?stripe=return",
        )
        .await
        .unwrap();
    assert_eq!(
        url,
        "https://connect.stripe.com/setup/s/acct_1QxYz0B7WZ01zgkW/MerI6itPZo2K"
    );
    let req = &stub.requests().await[0];
    assert_common_headers(req, None);
    assert_eq!(
        form(req),
        expected(&[
            ("account", ACCOUNT),
            (
                "refresh_url",
                "http://127.0.0.1:8080/dashboard?stripe=refresh"
            ),
            (
                "return_url",
                "http://127.0.0.1:8080/dashboard?stripe=return"
            ),
            ("type", "account_onboarding"),
        ])
    );
}

// ---------------------------------------------------------------------------------
// Configuration and secrets

#[tokio::test]
async fn secrets_never_show_in_debug_output() {
    let stub = Stub::start().await;
    let settings = stub.settings(CheckoutKind::Hosted);
    let gateway = stub.gateway();
    for text in [format!("{settings:?}"), format!("{gateway:?}")] {
        assert!(!text.contains(KEY), "{text}");
        assert!(!text.contains("whsec_test_secret"), "{text}");
        assert!(text.contains("*** ***"), "{text}");
    }
    let gateways =
        gateway_stripe::stripe_gateways(settings, Arc::new(billing_core::system::SystemClock))
            .unwrap();
    assert!(!format!("{gateways:?}").contains(KEY));
}

#[test]
fn a_gateway_needs_a_key_and_http_bases() {
    let settings = StripeSettings {
        secret_key: "  ".into(),
        api_base: None,
        connect_base: None,
        connect_client_id: None,
        webhook_secret: None,
        connect_webhook_secret: None,
        checkout: CheckoutKind::Hosted,
        describe_intents: true,
        renewable_holds: true,
    };
    assert_eq!(
        StripeGateway::new(&settings, fast()).err(),
        Some(gateway_stripe::ConfigError::MissingKey)
    );
    for bad in ["ftp://x", "not a url", "http://"] {
        let s = StripeSettings {
            secret_key: KEY.into(),
            api_base: Some(bad.into()),
            ..settings.clone()
        };
        assert!(
            matches!(
                StripeGateway::new(&s, fast()),
                Err(gateway_stripe::ConfigError::InvalidBase { .. })
            ),
            "{bad}"
        );
    }
    let ok = StripeSettings {
        secret_key: KEY.into(),
        api_base: Some("http://127.0.0.1:12111/".into()),
        ..settings
    };
    assert!(StripeGateway::new(&ok, fast()).is_ok());
}
