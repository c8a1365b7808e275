//! Layer 4: the webhook verifier. A table of deliveries (valid, tampered, wrong secret,
//! stale, several signatures, malformed headers), the event types the domain uses, and
//! a property: no header and no body ever makes it panic.

use std::sync::Arc;

use billing_core::gateway::{
    GatewayEvent, IgnoreReason, IntentStatus, WebhookError, WebhookEvent, WebhookVerifier,
};
use billing_core::money::{Currency, Money};
use billing_core::practitioner::model::PayoutInterval;
use billing_core::system::Clock;
use chrono::{DateTime, TimeZone, Utc};
use gateway_stripe::{Secret, StripeWebhookVerifier, signature_header};
use proptest::prelude::*;
use serde_json::{Value, json};

const SECRET: &str = "whsec_test_5f2b1c0e9a8d7c6b5a4f3e2d1c0b9a8f";
const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const PAYMENT: &str = "0190b1a4-7c1e-7d3a-9f00-1234567890ab";

struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

fn verifier() -> StripeWebhookVerifier {
    StripeWebhookVerifier::new(
        Some(Secret::new(SECRET)),
        Arc::new(FixedClock(Utc.timestamp_opt(NOW, 0).unwrap())),
    )
}

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::Eur)
}

/// A Stripe event envelope around `object`, as Stripe documents it.
fn event(kind: &str, object: Value) -> Value {
    json!({
        "id": "evt_1QxYzAB7WZ01zgkW3dJk9LmN",
        "object": "event",
        "api_version": "2025-03-31.basil",
        "account": "acct_1QxYz0B7WZ01zgkW",
        "created": NOW - 5,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": "consultpay:x:hold" },
        "type": kind,
    })
}

fn intent(status: &str, capturable: i64, received: i64) -> Value {
    json!({
        "id": "pi_3QxYzAB7WZ01zgkW0a1b2c3d",
        "object": "payment_intent",
        "amount": 2500,
        "amount_capturable": capturable,
        "amount_received": received,
        "capture_method": "manual",
        "currency": "eur",
        "status": status,
        "cancellation_reason": null,
        "client_secret": "pi_3QxYzAB7WZ01zgkW0a1b2c3d_secret_abc",
        "last_payment_error": null,
        "latest_charge": "ch_3QxYzAB7WZ01zgkW0e1f2g3h",
        "livemode": false,
        "metadata": { "payment_id": PAYMENT, "consultation_id": "0190b1a4-0000-7d3a-9f00-1234567890ab" },
        "payment_method": "pm_1QxYz9B7WZ01zgkWk3l4m5n6",
        "created": NOW - 60,
    })
}

fn charge(amount: i64, captured: i64, refunded: i64) -> Value {
    json!({
        "id": "ch_3QxYzAB7WZ01zgkW0e1f2g3h",
        "object": "charge",
        "amount": amount,
        "amount_captured": captured,
        "amount_refunded": refunded,
        "captured": captured > 0,
        "currency": "eur",
        "metadata": { "payment_id": PAYMENT },
        "payment_intent": "pi_3QxYzAB7WZ01zgkW0a1b2c3d",
        "balance_transaction": "txn_3QxYzAB7WZ01zgkW1x2y3z4a",
        "refunded": refunded == amount,
        "status": "succeeded",
        "payment_method_details": { "type": "card", "card": { "brand": "visa", "last4": "4242", "capture_before": NOW + 6 * 86_400 } },
    })
}

fn deliver(body: &Value, header: Option<String>) -> Result<WebhookEvent, WebhookError> {
    let text = body.to_string();
    verifier().verify(header.as_deref(), text.as_bytes())
}

fn signed(body: &Value) -> Option<String> {
    Some(signature_header(SECRET, NOW, body.to_string().as_bytes()))
}

#[test]
fn deliveries_are_accepted_only_when_signed_fresh_and_well_formed() {
    let body = event("payment_intent.succeeded", intent("succeeded", 0, 1800));
    let text = body.to_string();
    let good_sig = signature_header(SECRET, NOW, text.as_bytes());
    let good_v1 = good_sig.split("v1=").nth(1).unwrap().to_owned();
    let other_v1 = signature_header("whsec_other", NOW, text.as_bytes())
        .split("v1=")
        .nth(1)
        .unwrap()
        .to_owned();
    let at = |t: i64| signature_header(SECRET, t, text.as_bytes());

    type Case = (
        &'static str,
        Option<String>,
        Vec<u8>,
        Result<(), WebhookError>,
    );
    let cases: Vec<Case> = vec![
        (
            "valid",
            Some(good_sig.clone()),
            text.clone().into_bytes(),
            Ok(()),
        ),
        (
            "tampered body",
            Some(good_sig.clone()),
            text.replace("1800", "2500").into_bytes(),
            Err(WebhookError::BadSignature),
        ),
        (
            "one byte appended",
            Some(good_sig.clone()),
            format!("{text} ").into_bytes(),
            Err(WebhookError::BadSignature),
        ),
        (
            "wrong secret",
            Some(signature_header("whsec_not_ours", NOW, text.as_bytes())),
            text.clone().into_bytes(),
            Err(WebhookError::BadSignature),
        ),
        (
            "old timestamp",
            Some(at(NOW - 301)),
            text.clone().into_bytes(),
            Err(WebhookError::Stale),
        ),
        (
            "just within tolerance",
            Some(at(NOW - 300)),
            text.clone().into_bytes(),
            Ok(()),
        ),
        (
            "far future timestamp",
            Some(at(NOW + 301)),
            text.clone().into_bytes(),
            Err(WebhookError::Stale),
        ),
        (
            "timestamp changed after signing",
            Some(format!("t={},v1={good_v1}", NOW + 1)),
            text.clone().into_bytes(),
            Err(WebhookError::BadSignature),
        ),
        (
            "multiple v1, the second matches (secret rolling)",
            Some(format!("t={NOW},v1={other_v1},v1={good_v1}")),
            text.clone().into_bytes(),
            Ok(()),
        ),
        (
            "multiple v1, none matches",
            Some(format!("t={NOW},v1={other_v1},v1={other_v1}")),
            text.clone().into_bytes(),
            Err(WebhookError::BadSignature),
        ),
        (
            "v0 and unknown schemes are ignored beside a good v1",
            Some(format!("t={NOW},v0={other_v1},v9=zz,v1={good_v1}")),
            text.clone().into_bytes(),
            Ok(()),
        ),
        (
            "only a v0 signature",
            Some(format!("t={NOW},v0={good_v1}")),
            text.clone().into_bytes(),
            Err(WebhookError::MalformedSignature),
        ),
        (
            "v1 that is not hex",
            Some(format!("t={NOW},v1=not-hex-at-all")),
            text.clone().into_bytes(),
            Err(WebhookError::BadSignature),
        ),
        (
            "v1 truncated",
            Some(format!("t={NOW},v1={}", &good_v1[..62])),
            text.clone().into_bytes(),
            Err(WebhookError::BadSignature),
        ),
        (
            "no header",
            None,
            text.clone().into_bytes(),
            Err(WebhookError::MissingSignature),
        ),
        (
            "empty header",
            Some("  ".into()),
            text.clone().into_bytes(),
            Err(WebhookError::MissingSignature),
        ),
        (
            "garbage header",
            Some("garbage".into()),
            text.clone().into_bytes(),
            Err(WebhookError::MalformedSignature),
        ),
        (
            "non-numeric timestamp",
            Some(format!("t=abc,v1={good_v1}")),
            text.clone().into_bytes(),
            Err(WebhookError::MalformedSignature),
        ),
        (
            "no timestamp",
            Some(format!("v1={good_v1}")),
            text.clone().into_bytes(),
            Err(WebhookError::MalformedSignature),
        ),
        (
            "no signature",
            Some(format!("t={NOW}")),
            text.clone().into_bytes(),
            Err(WebhookError::MalformedSignature),
        ),
        (
            "two timestamps",
            Some(format!("t={NOW},t={NOW},v1={good_v1}")),
            text.clone().into_bytes(),
            Err(WebhookError::MalformedSignature),
        ),
    ];
    for (name, header, body, expected) in cases {
        let got = verifier().verify(header.as_deref(), &body).map(|_| ());
        assert_eq!(got, expected, "{name}");
    }
}

#[test]
fn a_verifier_without_a_secret_refuses_everything_as_not_configured() {
    let clock = Arc::new(FixedClock(Utc.timestamp_opt(NOW, 0).unwrap()));
    let body = event("payment_intent.succeeded", intent("succeeded", 0, 1800));
    for secret in [None, Some(Secret::new("")), Some(Secret::new("   "))] {
        let v = StripeWebhookVerifier::new(secret, clock.clone());
        assert_eq!(
            v.verify(signed(&body).as_deref(), body.to_string().as_bytes()),
            Err(WebhookError::NotConfigured)
        );
    }
}

#[test]
fn a_correctly_signed_body_that_is_not_an_event_is_malformed() {
    for body in [
        json!({"hello": "world"}),
        json!([1, 2]),
        json!({"id": "evt_1", "type": "x", "created": "yesterday", "data": {}}),
    ] {
        let got = deliver(&body, signed(&body));
        assert!(
            matches!(got, Err(WebhookError::MalformedEvent(_))),
            "{body}: {got:?}"
        );
    }
    let raw = b"not json";
    let header = signature_header(SECRET, NOW, raw);
    assert!(matches!(
        verifier().verify(Some(&header), raw),
        Err(WebhookError::MalformedEvent(_))
    ));
}

#[test]
fn payment_intent_events_carry_the_intent_snapshot() {
    for (kind, status, capturable, received, expected) in [
        (
            "payment_intent.amount_capturable_updated",
            "requires_capture",
            2500,
            0,
            IntentStatus::RequiresCapture,
        ),
        (
            "payment_intent.succeeded",
            "succeeded",
            0,
            1800,
            IntentStatus::Succeeded,
        ),
        (
            "payment_intent.canceled",
            "canceled",
            0,
            0,
            IntentStatus::Canceled,
        ),
        (
            "payment_intent.payment_failed",
            "requires_payment_method",
            0,
            0,
            IntentStatus::RequiresPaymentMethod,
        ),
    ] {
        let body = event(kind, intent(status, capturable, received));
        let e = deliver(&body, signed(&body)).unwrap();
        assert_eq!(e.id.as_str(), "evt_1QxYzAB7WZ01zgkW3dJk9LmN");
        assert_eq!(e.kind, kind);
        assert_eq!(e.created, Utc.timestamp_opt(NOW - 5, 0).unwrap());
        assert_eq!(
            e.account.as_ref().map(|a| a.as_str()),
            Some("acct_1QxYz0B7WZ01zgkW")
        );
        let GatewayEvent::PaymentIntent(s) = e.payload else {
            panic!("{kind}: {:?}", e.payload);
        };
        assert_eq!(s.id.as_str(), "pi_3QxYzAB7WZ01zgkW0a1b2c3d");
        assert_eq!(s.status, expected, "{kind}");
        assert_eq!(s.amount, eur(2500));
        assert_eq!(s.amount_capturable, eur(capturable));
        assert_eq!(s.amount_received, eur(received));
        assert_eq!(s.payment.map(|p| p.to_string()).as_deref(), Some(PAYMENT));
    }
}

#[test]
fn a_failed_payment_event_carries_the_decline() {
    let mut pi = intent("requires_payment_method", 0, 0);
    pi["last_payment_error"] = json!({
        "type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.", "charge": "ch_1",
    });
    let body = event("payment_intent.payment_failed", pi);
    let GatewayEvent::PaymentIntent(s) = deliver(&body, signed(&body)).unwrap().payload else {
        panic!("not an intent event");
    };
    let failure = s.last_error.unwrap();
    assert_eq!(failure.code.as_deref(), Some("card_declined"));
    assert_eq!(failure.decline_code.as_deref(), Some("insufficient_funds"));
    assert_eq!(failure.message, "Your card has insufficient funds.");
}

#[test]
fn an_intent_event_with_its_charge_expanded_reports_the_capture_deadline() {
    let mut pi = intent("requires_capture", 2500, 0);
    pi["latest_charge"] = charge(2500, 0, 0);
    let body = event("payment_intent.amount_capturable_updated", pi);
    let GatewayEvent::PaymentIntent(s) = deliver(&body, signed(&body)).unwrap().payload else {
        panic!("not an intent event");
    };
    assert_eq!(
        s.capture_before,
        Some(Utc.timestamp_opt(NOW + 6 * 86_400, 0).unwrap())
    );
}

#[test]
fn a_hold_event_without_its_charge_counts_the_deadline_from_the_event_not_its_delivery() {
    // Stripe's payloads carry `latest_charge` as an id: no `capture_before` in them.
    let mut pi = intent("requires_capture", 2500, 0);
    pi["latest_charge"] = json!("ch_3QxYzAB7WZ01zgkW0a1b2c3d");
    let body = event("payment_intent.amount_capturable_updated", pi);
    let e = deliver(&body, signed(&body)).unwrap();
    let GatewayEvent::PaymentIntent(s) = e.payload else {
        panic!("not an intent event");
    };
    assert_eq!(
        s.capture_before,
        Some(e.created + chrono::Duration::days(7))
    );
}

#[test]
fn refund_events_name_the_intent_whose_refunds_are_read_again() {
    // The payload may be older than another event: only what it is about is kept.
    let changed = GatewayEvent::RefundsChanged {
        intent: Some("pi_3QxYzAB7WZ01zgkW0a1b2c3d".parse().unwrap()),
        payment: Some(PAYMENT.parse().unwrap()),
    };
    let body = event("charge.refunded", charge(2500, 1800, 500));
    assert_eq!(deliver(&body, signed(&body)).unwrap().payload, changed);
    let refund = json!({
        "id": "re_3QxYzAB7WZ01zgkW1r2f3n4d", "object": "refund", "amount": 500,
        "currency": "eur", "status": "failed", "failure_reason": "expired_or_canceled_card",
        "charge": "ch_3QxYzAB7WZ01zgkW0e1f2g3h",
        "payment_intent": "pi_3QxYzAB7WZ01zgkW0a1b2c3d",
        "metadata": { "payment_id": PAYMENT },
    });
    for kind in [
        "charge.refund.updated",
        "refund.created",
        "refund.updated",
        "refund.failed",
    ] {
        let body = event(kind, refund.clone());
        assert_eq!(
            deliver(&body, signed(&body)).unwrap().payload,
            changed,
            "{kind}"
        );
    }
}

#[test]
fn a_dispute_counts_what_it_withdrew_and_reinstated_and_its_fees() {
    let txn = |amount: i64, fee: i64| {
        json!({ "id": "txn_1", "object": "balance_transaction", "amount": amount,
                "currency": "eur", "fee": fee, "net": -amount - fee, "type": "adjustment" })
    };
    let dispute = |status: &str, txns: Vec<Value>| {
        json!({
            "id": "dp_1QxYzAB7WZ01zgkW", "object": "dispute", "amount": 1800,
            "currency": "eur", "charge": "ch_3QxYzAB7WZ01zgkW0e1f2g3h",
            "payment_intent": "pi_3QxYzAB7WZ01zgkW0a1b2c3d", "reason": "fraudulent",
            "status": status, "balance_transactions": txns,
            "evidence_details": { "due_by": NOW + 7 * 86_400, "has_evidence": false,
                                  "past_due": false, "submission_count": 0 },
        })
    };
    let read = |body: Value| match deliver(&body, signed(&body)).unwrap().payload {
        GatewayEvent::Dispute { dispute, intent } => {
            assert_eq!(intent, Some("pi_3QxYzAB7WZ01zgkW0a1b2c3d".parse().unwrap()));
            dispute
        }
        other => panic!("{other:?}"),
    };
    let withdrawn = read(event(
        "charge.dispute.funds_withdrawn",
        dispute("needs_response", vec![txn(-1800, 1500)]),
    ));
    assert_eq!((withdrawn.withdrawn, withdrawn.fee), (eur(1800), eur(1500)));
    assert_eq!(withdrawn.reason, "fraudulent");
    assert_eq!(
        withdrawn.evidence_due_by,
        Some(Utc.timestamp_opt(NOW + 7 * 86_400, 0).unwrap())
    );
    let won = read(event(
        "charge.dispute.funds_reinstated",
        dispute("won", vec![txn(-1800, 1500), txn(1800, 0)]),
    ));
    assert_eq!(
        (won.withdrawn, won.fee, won.transactions),
        (eur(0), eur(1500), 2)
    );

    // An account settling in another currency (CHF) reports the balance converted:
    // the funds count as the disputed amount; the fee has no figure in euros.
    let chf = |amount: i64, fee: i64| {
        json!({ "id": "txn_2", "object": "balance_transaction", "amount": amount,
                "currency": "chf", "fee": fee, "net": -amount - fee, "type": "adjustment" })
    };
    let withdrawn = read(event(
        "charge.dispute.funds_withdrawn",
        dispute("needs_response", vec![chf(-1710, 1400)]),
    ));
    assert_eq!((withdrawn.withdrawn, withdrawn.fee), (eur(1800), eur(0)));
    let won = read(event(
        "charge.dispute.funds_reinstated",
        dispute("won", vec![chf(-1710, 1400), chf(1705, 0)]),
    ));
    assert_eq!(won.withdrawn, eur(0));
}

#[test]
fn a_saved_card_is_read_from_setup_intent_events() {
    let body = event(
        "setup_intent.succeeded",
        json!({
            "id": "seti_1QxYzAB7WZ01zgkW", "object": "setup_intent", "status": "succeeded",
            "customer": "cus_QxYz1", "payment_method": "pm_1QxYz9B7WZ01zgkWk3l4m5n6",
            "usage": "off_session", "metadata": { "payment_id": PAYMENT },
        }),
    );
    let GatewayEvent::SetupIntent(s) = deliver(&body, signed(&body)).unwrap().payload else {
        panic!("not a setup event");
    };
    assert_eq!(s.payment, Some(PAYMENT.parse().unwrap()));
    let card = s.saved_card.unwrap();
    assert_eq!(card.customer.as_str(), "cus_QxYz1");
    assert_eq!(card.payment_method.as_str(), "pm_1QxYz9B7WZ01zgkWk3l4m5n6");
}

#[test]
fn an_intent_that_saves_its_card_says_so() {
    let mut pi = intent("requires_capture", 2500, 0);
    pi["customer"] = json!("cus_QxYz1");
    pi["setup_future_usage"] = json!("off_session");
    let body = event("payment_intent.amount_capturable_updated", pi);
    let GatewayEvent::PaymentIntent(s) = deliver(&body, signed(&body)).unwrap().payload else {
        panic!("not an intent event");
    };
    assert_eq!(
        s.saved_card.map(|c| c.customer.as_str().to_owned()),
        Some("cus_QxYz1".into())
    );
}

#[test]
fn either_endpoints_secret_signs_and_the_other_modes_events_are_ignored() {
    const CONNECT: &str = "whsec_connect_0123456789";
    let clock = Arc::new(FixedClock(Utc.timestamp_opt(NOW, 0).unwrap()));
    let both = StripeWebhookVerifier::new(Some(Secret::new(SECRET)), clock)
        .with_secret(Some(Secret::new(CONNECT)))
        .with_livemode(Some(false));
    let body = event("payment_intent.succeeded", intent("succeeded", 0, 1800));
    let text = body.to_string();
    for secret in [SECRET, CONNECT] {
        let header = signature_header(secret, NOW, text.as_bytes());
        assert!(
            both.verify(Some(&header), text.as_bytes()).is_ok(),
            "{secret}"
        );
    }
    let header = signature_header("whsec_someone_else", NOW, text.as_bytes());
    assert_eq!(
        both.verify(Some(&header), text.as_bytes()),
        Err(WebhookError::BadSignature)
    );
    // A live event reaching a test server: acknowledged, changes nothing.
    let mut live = body.clone();
    live["livemode"] = json!(true);
    let text = live.to_string();
    let header = signature_header(CONNECT, NOW, text.as_bytes());
    assert_eq!(
        both.verify(Some(&header), text.as_bytes()).unwrap().payload,
        GatewayEvent::Ignored(IgnoreReason::OtherMode)
    );
}

#[test]
fn charge_expired_names_the_intent_and_payment() {
    let body = event("charge.expired", charge(2500, 0, 0));
    assert_eq!(
        deliver(&body, signed(&body)).unwrap().payload,
        GatewayEvent::ChargeExpired {
            intent: Some("pi_3QxYzAB7WZ01zgkW0a1b2c3d".parse().unwrap()),
            payment: Some(PAYMENT.parse().unwrap()),
        }
    );
}

#[test]
fn account_updated_carries_the_account_snapshot() {
    let body = event(
        "account.updated",
        json!({
            "id": "acct_1QxYz0B7WZ01zgkW", "object": "account", "type": "standard",
            "charges_enabled": false, "payouts_enabled": false, "details_submitted": true,
            "country": "FR", "default_currency": "eur",
            "requirements": { "currently_due": ["external_account"], "disabled_reason": "requirements.past_due", "eventually_due": [], "past_due": [] },
            "settings": { "payouts": { "schedule": { "delay_days": 7, "interval": "weekly", "weekly_anchor": "monday" } } },
        }),
    );
    let GatewayEvent::AccountUpdated(a) = deliver(&body, signed(&body)).unwrap().payload else {
        panic!("not an account event");
    };
    assert_eq!(a.id.as_str(), "acct_1QxYz0B7WZ01zgkW");
    assert!(!a.charges_enabled && !a.payouts_enabled && a.details_submitted);
    assert_eq!(a.disabled_reason.as_deref(), Some("requirements.past_due"));
    assert_eq!(a.currently_due, vec!["external_account".to_owned()]);
    let schedule = a.payout_schedule.unwrap();
    assert_eq!(schedule.interval, PayoutInterval::Weekly("monday".into()));
    assert_eq!(schedule.delay_days, Some(7));
    assert_eq!(a.default_currency, Some(Currency::Eur));
    assert_eq!(a.country.as_deref(), Some("FR"));
}

#[test]
fn deauthorization_is_about_the_events_account() {
    let application =
        json!({ "id": "ca_1QxYz0B7WZ01zgkWabc", "object": "application", "name": "ConsultPay" });
    let body = event("account.application.deauthorized", application.clone());
    assert_eq!(
        deliver(&body, signed(&body)).unwrap().payload,
        GatewayEvent::AccountDeauthorized {
            account: "acct_1QxYz0B7WZ01zgkW".parse().unwrap()
        }
    );
    // Without the account there is nothing to act on: acknowledged, not refused.
    let mut platform = event("account.application.deauthorized", application);
    platform.as_object_mut().unwrap().remove("account");
    assert_eq!(
        deliver(&platform, signed(&platform)).unwrap().payload,
        GatewayEvent::Ignored(IgnoreReason::UnknownAccount)
    );
}

#[test]
fn other_event_types_are_ignored_whatever_their_payload() {
    for (kind, object) in [
        (
            "payment_intent.created",
            intent("requires_payment_method", 0, 0),
        ),
        (
            "customer.created",
            json!({ "id": "cus_1", "object": "customer" }),
        ),
        ("invoice.paid", json!("not even an object")),
    ] {
        let body = event(kind, object);
        let e = deliver(&body, signed(&body)).unwrap();
        assert_eq!(
            e.payload,
            GatewayEvent::Ignored(IgnoreReason::EventType),
            "{kind}"
        );
        assert_eq!(e.kind, kind);
    }
}

#[test]
fn a_used_event_type_with_a_broken_payload_is_malformed_not_ignored() {
    let body = event(
        "payment_intent.succeeded",
        json!({ "id": "pi_1", "amount": "lots" }),
    );
    assert!(matches!(
        deliver(&body, signed(&body)),
        Err(WebhookError::MalformedEvent(_))
    ));
}

fn header_like() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        "t=[0-9]{0,14}",
        "t=[-+a-z0-9 ]{0,6}",
        "v1=[0-9a-f]{0,70}",
        "v1=[^,]{0,10}",
        "v0=[0-9a-f]{64}",
        "[a-z0-9]{0,3}=?[^,]{0,8}",
        ",",
        " ",
    ];
    prop::collection::vec(part, 0..12).prop_map(|parts| parts.join(","))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_headers_never_panic_and_are_never_accepted(header in header_like(), body in prop::collection::vec(any::<u8>(), 0..64)) {
        let result = verifier().verify(Some(&header), &body);
        prop_assert!(result.is_err());
    }

    #[test]
    fn arbitrary_header_strings_never_panic(header in any::<String>()) {
        let _ = verifier().verify(Some(&header), b"{}");
    }

    #[test]
    fn correctly_signed_arbitrary_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let header = signature_header(SECRET, NOW, &body);
        let result = verifier().verify(Some(&header), &body);
        prop_assert!(matches!(result, Err(WebhookError::MalformedEvent(_))));
    }

    #[test]
    fn signed_events_with_arbitrary_amounts_never_panic(amount in any::<i64>(), refunded in any::<i64>(), created in any::<i64>()) {
        let mut body = event("charge.refunded", charge(amount, amount, refunded));
        body["created"] = json!(created);
        let _ = deliver(&body, signed(&body));
    }
}
