//! `POST /webhooks/stripe` through HTTP: forged, stale, duplicated and out-of-order
//! deliveries never double-apply anything nor move a payment backwards.

use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{Backend, Staff, TestApp, WEBHOOK_SECRET};
use crate::on_every_backend;

fn sign(secret: &str, t: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(format!("{t}.{body}").as_bytes());
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={sig}")
}

async fn deliver(app: &TestApp, body: &Value, signature: Option<String>) -> (StatusCode, Value) {
    let text = body.to_string();
    let t = app.clock_now().timestamp();
    let signature = signature.unwrap_or_else(|| sign(WEBHOOK_SECRET, t, &text));
    let resp = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("stripe-signature", signature)
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .expect("delivery");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A Stripe event around a PaymentIntent of ours, shaped as Stripe sends them.
fn intent_event(
    id: &str,
    kind: &str,
    account: &str,
    payment: &Value,
    status: &str,
    received: i64,
    capturable: i64,
) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "type": kind,
        "created": chrono::Utc::now().timestamp(),
        "livemode": false,
        "account": account,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "data": { "object": {
            "id": payment["intent_id"],
            "object": "payment_intent",
            "amount": 2500,
            "amount_capturable": capturable,
            "amount_received": received,
            "capture_method": "manual",
            "currency": "eur",
            "status": status,
            "livemode": false,
            "metadata": { "payment_id": payment["id"], "consultation_id": payment["consultation_id"] },
            "latest_charge": null,
            "last_payment_error": null,
            "cancellation_reason": null,
            "created": chrono::Utc::now().timestamp(),
        }},
    })
}

async fn authorised(app: &TestApp) -> (Staff, String, Value) {
    let (dr, scheduled) = app.paid_consultation().await;
    let token = scheduled["pay_token"]
        .as_str()
        .expect("pay_token")
        .to_owned();
    let consultation = scheduled["id"].as_str().expect("id").to_owned();
    app.pay(&token, "pm_card_visa").await;
    let c = app.consultation(&dr, &consultation).await;
    (dr, consultation, c["payment"].clone())
}

#[tokio::test]
async fn forged_and_stale_deliveries_are_refused_and_change_nothing() {
    on_every_backend!(|app| {
        let (dr, consultation, payment) = authorised(&app).await;
        let account = payment["account_id"].as_str().expect("account").to_owned();
        let event = intent_event(
            "evt_forged1",
            "payment_intent.canceled",
            &account,
            &payment,
            "canceled",
            0,
            0,
        );
        let t = app.clock_now().timestamp();
        let cases = [
            (
                "wrong secret",
                Some(sign("whsec_not_ours", t, &event.to_string())),
            ),
            (
                "stale timestamp",
                Some(sign(WEBHOOK_SECRET, t - 600, &event.to_string())),
            ),
            ("malformed header", Some("t=abc,v1=".to_owned())),
            ("empty header", Some(String::new())),
        ];
        for (case, signature) in cases {
            let (status, body) = deliver(&app, &event, signature).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
            assert_eq!(body["code"], "webhook_signature_invalid", "{case}: {body}");
        }
        // A tampered body with a signature of the original.
        let signature = sign(WEBHOOK_SECRET, t, &event.to_string());
        let mut tampered = event.clone();
        tampered["data"]["object"]["amount_received"] = json!(2500);
        let (status, _) = deliver(&app, &tampered, Some(signature)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let c = app.consultation(&dr, &consultation).await;
        assert_eq!(c["payment"]["status"], "authorized");
    });
}

#[tokio::test]
async fn a_duplicate_is_acknowledged_and_ignored_and_late_events_never_move_back() {
    on_every_backend!(|app| {
        let (dr, consultation, payment) = authorised(&app).await;
        let account = payment["account_id"].as_str().expect("account").to_owned();

        // Validate 18.00 (captured), then Stripe's earlier event arrives late.
        let (status, _) = app
            .post(
                &format!("/api/v1/consultations/{consultation}/validate"),
                Some(&dr.token),
                json!({ "amount": "18.00" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let late = intent_event(
            "evt_late1",
            "payment_intent.amount_capturable_updated",
            &account,
            &payment,
            "requires_capture",
            0,
            2500,
        );
        let (status, body) = deliver(&app, &late, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status_changes"], 0, "{body}");

        // The succeeded event, twice: applied once, then acknowledged as a duplicate.
        let succeeded = intent_event(
            "evt_ok1",
            "payment_intent.succeeded",
            &account,
            &payment,
            "succeeded",
            1800,
            0,
        );
        let (status, first) = deliver(&app, &succeeded, None).await;
        assert_eq!(status, StatusCode::OK, "{first}");
        let (status, second) = deliver(&app, &succeeded, None).await;
        assert_eq!(status, StatusCode::OK, "{second}");
        assert_eq!(second["outcome"], "duplicate", "{second}");

        // A cancellation arriving after the capture cannot undo it.
        let canceled = intent_event(
            "evt_cancel1",
            "payment_intent.canceled",
            &account,
            &payment,
            "canceled",
            0,
            0,
        );
        let (status, _) = deliver(&app, &canceled, None).await;
        assert_eq!(status, StatusCode::OK);
        let c = app.consultation(&dr, &consultation).await;
        assert_eq!(c["payment"]["status"], "captured", "{c}");
        assert_eq!(c["payment"]["amount_captured"], "18.00");

        // Refunds: 3.00 then 5.00, then Stripe's earlier charge.refunded (3.00 in
        // total) arrives late. Refund events are read back from Stripe, so the late
        // total cannot shrink what was refunded.
        let payment_id = payment["id"].as_str().expect("payment id");
        for amount in ["3.00", "5.00"] {
            let (status, body) = app
                .post(
                    &format!("/api/v1/payments/{payment_id}/refunds"),
                    Some(&dr.token),
                    json!({ "amount": amount }),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let late_refund = json!({
            "id": "evt_ref1", "object": "event", "type": "charge.refunded",
            "created": chrono::Utc::now().timestamp(),
            "livemode": false, "account": account, "pending_webhooks": 1, "api_version": "2024-06-20",
            "request": { "id": null, "idempotency_key": null },
            "data": { "object": {
                "id": "ch_e2e", "object": "charge", "amount": 1800, "amount_captured": 1800,
                "amount_refunded": 300, "refunded": false, "captured": true, "paid": true,
                "currency": "eur", "status": "succeeded", "payment_intent": payment["intent_id"],
                "metadata": { "payment_id": payment["id"] }, "livemode": false,
                "created": chrono::Utc::now().timestamp(),
            }},
        });
        let (status, body) = deliver(&app, &late_refund, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let c = app.consultation(&dr, &consultation).await;
        assert_eq!(c["payment"]["status"], "partially_refunded", "{c}");
        assert_eq!(c["payment"]["amount_refunded"], "8.00");
    });
}

#[tokio::test]
async fn unknown_event_types_are_acknowledged_and_deauthorisation_revokes_the_link() {
    on_every_backend!(|app| {
        let (dr, _, payment) = authorised(&app).await;
        let account = payment["account_id"].as_str().expect("account").to_owned();
        let unknown = json!({
            "id": "evt_other1", "object": "event", "type": "customer.created", "created": 1,
            "livemode": false, "pending_webhooks": 1, "api_version": "2024-06-20",
            "request": { "id": null, "idempotency_key": null },
            "data": { "object": { "id": "cus_1", "object": "customer" } },
        });
        let (status, body) = deliver(&app, &unknown, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["outcome"], "ignored");

        let deauthorized = json!({
            "id": "evt_deauth1", "object": "event", "type": "account.application.deauthorized",
            "created": 1, "livemode": false, "account": account, "pending_webhooks": 1,
            "api_version": "2024-06-20", "request": { "id": null, "idempotency_key": null },
            "data": { "object": { "id": "ca_platform", "object": "application", "name": "ConsultPay" } },
        });
        let (status, body) = deliver(&app, &deauthorized, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, link) = app
            .get(
                &format!("/api/v1/practitioners/{}/stripe", dr.id),
                Some(&dr.token),
            )
            .await;
        assert_eq!(link["status"], "revoked", "{link}");
        assert_eq!(link["revoked_reason"], "deauthorized");
    });
}

/// Reads `consultpay_webhook_events_total{outcome, reason}` from `/metrics`.
fn webhook_count(metrics: &str, outcome: &str, reason: &str) -> u64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("consultpay_webhook_events_total")
                && l.contains(&format!("outcome=\"{outcome}\""))
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn well_signed_events_that_are_not_ours_are_acknowledged_counted_and_change_nothing() {
    on_every_backend!(|app| {
        let (dr, consultation, payment) = authorised(&app).await;
        let account = payment["account_id"].as_str().expect("account").to_owned();
        // A second consultation whose checkout has started: its account is recorded,
        // its hold is not placed.
        let (_, other) = app.schedule(&dr, &dr, json!({ "mode": "online" })).await;
        let other_token = other["pay_token"].as_str().expect("token").to_owned();
        let other_id = other["id"].as_str().expect("id").to_owned();
        app.open_checkout(&other_token).await;
        let other_payment = app.consultation(&dr, &other_id).await["payment"].clone();
        assert_eq!(other_payment["status"], "incomplete", "{other_payment}");

        let held = |id: &str| {
            intent_event(
                id,
                "payment_intent.amount_capturable_updated",
                &account,
                &payment,
                "requires_capture",
                0,
                2500,
            )
        };
        let mut foreign_currency = held("evt_usd");
        foreign_currency["data"]["object"]["currency"] = json!("usd");
        let mut other_account = held("evt_other_account");
        other_account["account"] = json!("acct_1SomeoneElse");
        let mut other_mode = held("evt_live");
        other_mode["livemode"] = json!(true);
        other_mode["data"]["object"]["livemode"] = json!(true);
        // Our own held intent, with metadata naming the other payment: it must not
        // put that payment on hold nor open its waiting room.
        let mut names_another = held("evt_names_another");
        names_another["data"]["object"]["metadata"]["payment_id"] = other_payment["id"].clone();
        // An intent nobody created for that payment (not at Stripe on the account).
        let mut made_up = held("evt_made_up");
        made_up["data"]["object"]["id"] = json!("pi_3MadeUpByAnyoneElse");
        made_up["data"]["object"]["metadata"]["payment_id"] = other_payment["id"].clone();
        // The practitioner's other business on their Standard account.
        let mut not_a_payment = held("evt_their_shop");
        not_a_payment["data"]["object"]["id"] = json!("pi_3TheirShopSale");
        not_a_payment["data"]["object"]["metadata"] = json!({ "order": "42" });
        let unknown_type = json!({
            "id": "evt_cus", "object": "event", "type": "customer.created", "created": 1,
            "livemode": false, "account": account, "pending_webhooks": 1, "api_version": "2024-06-20",
            "request": { "id": null, "idempotency_key": null },
            "data": { "object": { "id": "cus_1", "object": "customer" } },
        });

        let before = app.metrics().await;
        let cases = [
            ("foreign currency", &foreign_currency, "currency"),
            ("other account", &other_account, "other_account"),
            ("other mode", &other_mode, "other_mode"),
            (
                "metadata naming another payment",
                &names_another,
                "other_intent",
            ),
            ("an intent we never made", &made_up, "other_intent"),
            ("not a payment of ours", &not_a_payment, "unknown_payment"),
            ("unknown type", &unknown_type, "event_type"),
        ];
        for (case, event, _) in &cases {
            let (status, body) = deliver(&app, event, None).await;
            assert_eq!(status, StatusCode::OK, "{case}: {body}");
            assert_eq!(body["outcome"], "ignored", "{case}: {body}");
        }
        let after = app.metrics().await;
        for (case, _, reason) in &cases {
            let counted = webhook_count(&after, "ignored", reason)
                - webhook_count(&before, "ignored", reason);
            assert!(counted >= 1, "{case}: {reason} counted\n{after}");
        }
        // Nothing moved: the hold is the same, the other payment is still unpaid and
        // its waiting room closed.
        let c = app.consultation(&dr, &consultation).await;
        assert_eq!(c["payment"]["status"], "authorized", "{c}");
        assert_eq!(c["payment"]["intent_id"], payment["intent_id"], "{c}");
        let o = app.consultation(&dr, &other_id).await;
        assert_eq!(o["payment"]["status"], "incomplete", "{o}");
        assert_eq!(o["payment"]["amount_held"], "0.00", "{o}");
        let (_, access) = app
            .get(&format!("/api/v1/pay/{other_token}/access"), None)
            .await;
        assert_eq!(access["can_enter"], false, "{access}");
        // Only an unreadable body or a bad signature is refused.
        let (status, body) = deliver(&app, &json!({ "id": "evt_x" }), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    });
}

#[tokio::test]
async fn either_endpoints_secret_may_sign_a_delivery() {
    const CONNECT_SECRET: &str = "whsec_e2e_connect_endpoint";
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.stripe_connect_webhook_secret = Some(app::config::Secret::new(CONNECT_SECRET));
    })
    .await
    else {
        return;
    };
    let (dr, consultation, payment) = authorised(&app).await;
    let account = payment["account_id"].as_str().expect("account").to_owned();
    let canceled = intent_event(
        "evt_by_connect",
        "payment_intent.canceled",
        &account,
        &payment,
        "canceled",
        0,
        0,
    );
    let t = app.clock_now().timestamp();
    let body = canceled.to_string();
    let (status, refused) = deliver(&app, &canceled, Some(sign("whsec_neither", t, &body))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let c = app.consultation(&dr, &consultation).await;
    assert_eq!(c["payment"]["status"], "authorized", "{c}");
    // The Connect endpoint's secret signs what happens on connected accounts.
    let (status, applied) = deliver(&app, &canceled, Some(sign(CONNECT_SECRET, t, &body))).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["outcome"], "applied", "{applied}");
    let c = app.consultation(&dr, &consultation).await;
    assert_eq!(c["payment"]["status"], "released", "{c}");
    // And the platform endpoint's still signs.
    let (status, _) = deliver(&app, &canceled, None).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}
