//! The seeds' flow with the real Stripe adapter against localstripe (a third-party
//! stateful Stripe server), through our HTTP API: the test plays the patient's browser
//! (the Payment Element's confirm step) directly at localstripe, and localstripe
//! delivers signed webhooks to the running server.
//!
//! localstripe has no Connect: the practitioner's link is set up through the storage
//! port, as a completed OAuth would leave it (Connect itself is covered by the gateway
//! crate's request-level tests).
//!
//! Two servers on one PostgreSQL run the background jobs at the same moment against
//! localstripe: a saved card's hold is placed once.

#[allow(dead_code)]
#[path = "../e2e/helpers.rs"]
mod helpers;

#[allow(dead_code)]
#[path = "../../../gateway-stripe/tests/behaviour/localstripe.rs"]
mod localstripe;

mod harness {
    pub fn http() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }
}

use app::config::{CheckoutMode, Secret};
use billing_core::audit::{AuditAction, AuditActor, AuditEntry};
use billing_core::ids::{ConnectedAccountId, PractitionerId};
use billing_core::practitioner::model::{AccountSnapshot, StripeLink};
use billing_core::practitioner::ports::PractitionerRepository;
use helpers::{Backend, TestApp, WEBHOOK_SECRET};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn link_directly(app: &TestApp, practitioner: &str) {
    let id: PractitionerId = practitioner.parse().expect("id");
    let store = &app.app.store;
    let p = store.get(id).await.expect("practitioner");
    let now = chrono::Utc::now();
    let account = AccountSnapshot {
        id: ConnectedAccountId::parse("acct_1LocalstripeE2e").expect("acct"),
        charges_enabled: true,
        payouts_enabled: true,
        details_submitted: true,
        disabled_reason: None,
        currently_due: vec![],
        payout_schedule: None,
        default_currency: None,
        country: None,
    };
    let next = p.with_link(StripeLink::linked(account, now), now);
    let audit = AuditEntry::new(now, id, AuditActor::System, AuditAction::StripeLinked);
    store
        .update(&next, p.version, &audit)
        .await
        .expect("link stored");
}

async fn at_localstripe(base: &str, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = harness::http()
        .post(format!("{base}{path}"))
        .basic_auth("sk_test_localstripe", Some(""))
        .form(form)
        .send()
        .await
        .expect("localstripe answers");
    let status = resp.status();
    (status, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_seeds_flow_against_localstripe_with_its_signed_webhooks() {
    let Some((_guard, peer)) = localstripe::acquire().await else {
        return;
    };
    let base = peer.base.clone();
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.stripe_secret_key = Some(Secret::new("sk_test_localstripe"));
        c.stripe_api_base = Some(base.clone());
        c.stripe_checkout = CheckoutMode::Elements;
        // localstripe answers "Unexpected description" to a PaymentIntent description,
        // and "Unexpected setup_future_usage" to a hold that saves the card.
        c.stripe_describe_intents = false;
        c.stripe_renewable_holds = false;
    })
    .await
    else {
        return;
    };
    // localstripe signs its deliveries to our webhook endpoint with our secret.
    let hook = app.url("/webhooks/stripe");
    let (status, body) = at_localstripe(
        &base,
        "/_config/webhooks/consultpay",
        &[("url", hook.as_str()), ("secret", WEBHOOK_SECRET)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let dr = app.practitioner("Dr Estival").await;
    link_directly(&app, &dr.id).await;
    app.set_amounts(&dr, "25.00", "25.00").await;
    let (status, scheduled) = app.schedule(&dr, &dr, json!({ "mode": "online" })).await;
    assert_eq!(status, StatusCode::CREATED, "{scheduled}");
    let pay_token = scheduled["pay_token"].as_str().expect("token").to_owned();
    let id = scheduled["id"].as_str().expect("id").to_owned();

    // The pay page's "Pay now" gives the Payment Element its client secret.
    let (status, checkout) = app
        .post(
            &format!("/api/v1/pay/{pay_token}/checkout"),
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{checkout}");
    let secret = checkout["client_secret"].as_str().expect("client secret");
    let intent = secret
        .split("_secret_")
        .next()
        .expect("intent id")
        .to_owned();
    let (_, c) = app
        .get(&format!("/api/v1/pay/{pay_token}/access"), None)
        .await;
    assert_eq!(c["can_enter"], false);

    // The browser confirms at Stripe (here localstripe) with the test card.
    let at = format!("/v1/payment_intents/{intent}");
    let (status, body) = at_localstripe(&base, &at, &[("payment_method", "pm_card_visa")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = at_localstripe(&base, &format!("{at}/confirm"), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "requires_capture", "{body}");

    // Back on the pay page (which re-reads the intent), the gate opens. (localstripe
    // sends no `amount_capturable_updated`; its signed webhooks are proven below.)
    let (status, pay) = app
        .get(&format!("/api/v1/pay/{pay_token}?refresh=true"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{pay}");
    assert_eq!(pay["status"], "authorized", "{pay}");
    assert_eq!(pay["can_enter"], true);

    // Above the hold: refused before Stripe is asked.
    let (status, refused) = app
        .post(
            &format!("/api/v1/consultations/{id}/validate"),
            Some(&dr.token),
            json!({ "amount": "30.00" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["code"], "amount_above_cap");

    // Validate the act for the whole hold: captured at localstripe; then its signed
    // succeeded webhook is verified and applied (and changes nothing: the capture is
    // already recorded). The full amount, because localstripe books a partial
    // capture's remainder as a refund (Stripe before API version 2025-03-31.basil),
    // which the pinned adapter rightly reads as one; partial capture is covered by the
    // sandbox flows and by the gateway's own localstripe suite.
    let (status, p) = app
        .post(
            &format!("/api/v1/consultations/{id}/validate"),
            Some(&dr.token),
            json!({ "amount": "25.00" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["status"], "captured");
    assert_eq!(p["amount_captured"], "25.00");
    // The fee is the balance transaction's (localstripe charges none), not an estimate.
    assert_eq!(
        (p["fee"].as_str(), p["fee_source"].as_str()),
        (Some("0.00"), Some("reported")),
        "{p}"
    );
    let payment_id = p["id"].as_str().expect("payment id").to_owned();
    // Validating again with the same amount captures nothing more.
    let (status, again) = app
        .post(
            &format!("/api/v1/consultations/{id}/validate"),
            Some(&dr.token),
            json!({ "amount": "25.00" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["amount_captured"], "25.00");
    let mut webhook_applied = false;
    for _ in 0..100 {
        let metrics = app.metrics().await;
        if metrics
            .lines()
            .any(|l| l.contains("route=\"/webhooks/stripe\"") && l.contains("status=\"200\""))
        {
            webhook_applied = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(webhook_applied, "localstripe's signed webhook was accepted");
    let (_, detail) = app
        .get(&format!("/api/v1/payments/{payment_id}"), Some(&dr.token))
        .await;
    let captures = detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|h| h["event"] == "captured")
        .count();
    assert_eq!(captures, 1, "{detail}");

    // A partial refund, at localstripe too.
    let (status, r) = app
        .post(
            &format!("/api/v1/payments/{payment_id}/refunds"),
            Some(&dr.token),
            json!({ "amount": "5.00" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "partially_refunded");
    assert_eq!(r["amount_refunded"], "5.00");
    let c = app.consultation(&dr, &id).await;
    assert_eq!(
        c["payment"]["status_label"]["fr"],
        "Partiellement remboursé"
    );

    // A declined card, confirmed at localstripe: nobody re-reads the intent, so only
    // its signed `payment_intent.payment_failed` webhook, verified and applied, can
    // mark the payment failed — and the history says Stripe's event did it.
    let (_, second) = app.schedule(&dr, &dr, json!({ "mode": "online" })).await;
    let second_token = second["pay_token"].as_str().expect("token").to_owned();
    let second_id = second["id"].as_str().expect("id").to_owned();
    let (_, checkout) = app
        .post(
            &format!("/api/v1/pay/{second_token}/checkout"),
            None,
            json!({}),
        )
        .await;
    let intent = checkout["client_secret"]
        .as_str()
        .and_then(|s| s.split("_secret_").next())
        .expect("intent id")
        .to_owned();
    let at = format!("/v1/payment_intents/{intent}");
    at_localstripe(
        &base,
        &at,
        &[("payment_method", "pm_card_chargeCustomerFail")],
    )
    .await;
    let (status, body) = at_localstripe(&base, &format!("{at}/confirm"), &[]).await;
    assert!(
        status.is_client_error() || body["status"] == "requires_payment_method",
        "{status} {body}"
    );
    let mut failed = Value::Null;
    for _ in 0..100 {
        let c = app.consultation(&dr, &second_id).await;
        if c["payment"]["status"] == "failed" {
            failed = c;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let failed_id = failed["payment"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the decline's webhook was applied: {failed}"))
        .to_owned();
    assert_eq!(
        failed["payment"]["status_label"]["fr"], "Refusé",
        "{failed}"
    );
    let (_, detail) = app
        .get(&format!("/api/v1/payments/{failed_id}"), Some(&dr.token))
        .await;
    let by_webhook = detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .any(|h| {
            h["event"] == "authorization_failed"
                && h["actor"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("stripe:evt"))
        });
    assert!(by_webhook, "{detail}");
    let (_, access) = app
        .get(&format!("/api/v1/pay/{second_token}/access"), None)
        .await;
    assert_eq!(access["can_enter"], false);
    app.stop().await;
}

/// Several servers share one PostgreSQL and all run the jobs: a saved card's hold,
/// due for both at the same moment, is placed once, at localstripe.
#[tokio::test]
async fn two_servers_on_one_database_place_a_saved_cards_hold_once() {
    let Some((_guard, peer)) = localstripe::acquire().await else {
        return;
    };
    let base = peer.base.clone();
    let Some(app) = TestApp::spawn_with(Backend::Postgres, |c| {
        c.stripe_secret_key = Some(Secret::new("sk_test_localstripe"));
        c.stripe_api_base = Some(base.clone());
        c.stripe_checkout = CheckoutMode::Elements;
        c.stripe_describe_intents = false;
    })
    .await
    else {
        return;
    };
    let dr = app.practitioner("Dr Estival").await;
    link_directly(&app, &dr.id).await;
    app.set_amounts(&dr, "25.00", "25.00").await;
    let starts_at = app.clock_now() + chrono::Duration::days(10);
    let (status, scheduled) = app
        .schedule_at(&dr, &dr, json!({ "mode": "online" }), starts_at)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{scheduled}");
    let pay_token = scheduled["pay_token"].as_str().expect("token").to_owned();
    let id = scheduled["id"].as_str().expect("id").to_owned();

    // Ten days ahead, the Payment Element saves the card (a SetupIntent).
    let (status, checkout) = app
        .post(
            &format!("/api/v1/pay/{pay_token}/checkout"),
            None,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{checkout}");
    let secret = checkout["client_secret"].as_str().expect("client secret");
    assert!(secret.starts_with("seti_"), "{checkout}");
    let setup = secret.split("_secret_").next().expect("setup id");
    let (status, body) = at_localstripe(
        &base,
        &format!("/v1/setup_intents/{setup}/confirm"),
        &[("payment_method", "pm_card_visa")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, pay) = app
        .get(&format!("/api/v1/pay/{pay_token}?refresh=true"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{pay}");
    assert_eq!(pay["status"], "card_saved", "{pay}");
    assert_eq!(pay["can_enter"], false);

    // A second server on the same database, its clock where the first one's is.
    let clock = std::sync::Arc::new(helpers::TestClock::default());
    let second = app::wiring::App::build_with(&app.config, clock.clone())
        .await
        .expect("second server");
    let due = chrono::Duration::days(4) + chrono::Duration::minutes(1);
    app.clock.advance(due);
    clock.advance(due);
    let (a, b) = tokio::join!(
        app.app.billing.reconcile.run_once(),
        second.billing.reconcile.run_once()
    );
    let (a, b) = (
        a.expect("first server's jobs"),
        b.expect("second server's jobs"),
    );
    assert_eq!(
        a.holds.placed.len() + b.holds.placed.len(),
        1,
        "{a:?}\n{b:?}"
    );
    // Both again: nothing more to do.
    let (a, b) = tokio::join!(
        app.app.billing.reconcile.run_once(),
        second.billing.reconcile.run_once()
    );
    assert_eq!(
        a.expect("jobs").holds.placed.len() + b.expect("jobs").holds.placed.len(),
        0
    );

    let c = app.consultation(&dr, &id).await;
    assert_eq!(c["payment"]["status"], "authorized", "{c}");
    assert_eq!(c["payment"]["amount_held"], "25.00", "{c}");
    let intent = c["payment"]["intent_id"]
        .as_str()
        .expect("intent")
        .to_owned();
    let at_stripe: Value = harness::http()
        .get(format!("{base}/v1/payment_intents/{intent}"))
        .basic_auth("sk_test_localstripe", Some(""))
        .send()
        .await
        .expect("localstripe")
        .json()
        .await
        .expect("json");
    assert_eq!(at_stripe["status"], "requires_capture", "{at_stripe}");
    let payment_id = c["payment"]["id"].as_str().expect("payment id");
    let (_, detail) = app
        .get(&format!("/api/v1/payments/{payment_id}"), Some(&dr.token))
        .await;
    let holds = detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|h| h["event"] == "hold_placed")
        .count();
    assert_eq!(holds, 1, "{detail}");

    // The act validated through both servers at once (a double click landing on two
    // instances behind a load balancer): one capture at Stripe. A request that lost
    // the race may be told to retry (localstripe refuses the second capture instead of
    // replaying it as Stripe does); its retry answers the capture made.
    let actor = second
        .billing
        .staff
        .authenticate(Some(&dr.token))
        .await
        .expect("the practitioner on the second server");
    let consultation =
        billing_core::ids::ConsultationId::from_uuid(id.parse().expect("consultation id"));
    let amount = billing_core::money::AmountInput::parse("18.00", None).expect("amount");
    let validate = format!("/api/v1/consultations/{id}/validate");
    let (first, other) = tokio::join!(
        app.post(&validate, Some(&dr.token), json!({ "amount": "18.00" })),
        second
            .billing
            .payments
            .validate(&actor, consultation, &amount)
    );
    assert!(
        first.0 == StatusCode::OK || other.is_ok(),
        "at least one validation went through: {first:?} {other:?}"
    );
    let first = if first.0 == StatusCode::OK {
        first.1
    } else {
        let (status, again) = app
            .post(&validate, Some(&dr.token), json!({ "amount": "18.00" }))
            .await;
        assert_eq!(status, StatusCode::OK, "the retry answers: {again}");
        again
    };
    let other = match other {
        Ok(p) => p,
        Err(_) => second
            .billing
            .payments
            .validate(&actor, consultation, &amount)
            .await
            .expect("the retry answers"),
    };
    assert_eq!(first["amount_captured"], "18.00", "{first}");
    assert_eq!(
        other.captured().map(|m| m.to_string()),
        Some("18.00 EUR".into())
    );
    let at_stripe: Value = harness::http()
        .get(format!("{base}/v1/payment_intents/{intent}"))
        .basic_auth("sk_test_localstripe", Some(""))
        .send()
        .await
        .expect("localstripe")
        .json()
        .await
        .expect("json");
    assert_eq!(at_stripe["status"], "succeeded", "{at_stripe}");
    // localstripe captures the hold and refunds the remainder: one charge, 18.00 kept.
    let charges = at_stripe["charges"]["data"].as_array().expect("charges");
    assert_eq!(charges.len(), 1, "{at_stripe}");
    let kept = charges[0]["amount"].as_i64().unwrap_or(0)
        - charges[0]["amount_refunded"].as_i64().unwrap_or(0);
    assert_eq!(kept, 1800, "{at_stripe}");
    assert_eq!(
        charges[0]["refunds"]["data"].as_array().map(Vec::len),
        Some(1),
        "the remainder released once: {at_stripe}"
    );
    let (_, detail) = app
        .get(&format!("/api/v1/payments/{payment_id}"), Some(&dr.token))
        .await;
    let captures = detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|h| h["event"] == "captured")
        .count();
    assert_eq!(captures, 1, "{detail}");
    let _ = second.store.clone().close().await;
    app.stop().await;
}
