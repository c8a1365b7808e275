//! Live Stripe Connect over time, through HTTP and the sandbox test clock: holds that
//! cover the consultation (a saved card held when due, renewed when the act comes
//! late), payable again after a decline and an expired checkout, off-session
//! refusals, disputes, failed refunds, the capture minimum, the statement text.
//! Time is moved with `POST /sandbox/clock/advance`, never waited for.

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, Staff, TestApp};
use crate::on_every_backend;

/// A linked practitioner with 25.00 EUR caps and an online consultation `ahead` of
/// the server's time: (practitioner, consultation id, pay token, starts at).
async fn booked(app: &TestApp, ahead: Duration) -> (Staff, String, String, DateTime<Utc>) {
    let dr = app.practitioner("Dr Estival").await;
    app.link_stripe(&dr).await;
    app.set_amounts(&dr, "25.00", "25.00").await;
    let starts_at = app.clock_now() + ahead;
    let (status, scheduled) = app
        .schedule_at(&dr, &dr, json!({ "mode": "online" }), starts_at)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{scheduled}");
    let id = scheduled["id"].as_str().expect("id").to_owned();
    let token = scheduled["pay_token"].as_str().expect("token").to_owned();
    (dr, id, token, starts_at)
}

async fn can_enter(app: &TestApp, token: &str) -> bool {
    let (status, access) = app.get(&format!("/api/v1/pay/{token}/access"), None).await;
    assert_eq!(status, StatusCode::OK, "{access}");
    access["can_enter"].as_bool().expect("can_enter")
}

async fn payment_of(app: &TestApp, dr: &Staff, consultation: &str) -> Value {
    app.consultation(dr, consultation).await["payment"].clone()
}

async fn history(app: &TestApp, dr: &Staff, payment: &Value) -> Vec<String> {
    let id = payment["id"].as_str().expect("payment id");
    let (status, detail) = app
        .get(&format!("/api/v1/payments/{id}"), Some(&dr.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["event"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn count(events: &[String], name: &str) -> usize {
    events.iter().filter(|e| *e == name).count()
}

async fn validate(
    app: &TestApp,
    dr: &Staff,
    consultation: &str,
    amount: &str,
) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/consultations/{consultation}/validate"),
        Some(&dr.token),
        json!({ "amount": amount }),
    )
    .await
}

#[tokio::test]
async fn a_booking_ten_days_ahead_saves_the_card_and_holds_it_when_due() {
    on_every_backend!(|app| {
        let (dr, consultation, token, starts_at) = booked(&app, Duration::days(10)).await;

        // Further ahead than a hold lasts: the page says when the hold will be placed.
        let page = app.pay_page(&token).await;
        assert_eq!(page["can_pay"], true, "{page}");
        let hold_from: DateTime<Utc> = page["hold_from"]
            .as_str()
            .expect("hold_from")
            .parse()
            .expect("a date");
        assert_eq!(hold_from, starts_at - Duration::days(6), "{page}");

        // Paying saves the card; nothing is held yet and the gate stays closed.
        let back = app.pay(&token, "pm_card_visa").await;
        assert!(back.contains(&format!("/pay/{token}")), "{back}");
        let p = payment_of(&app, &dr, &consultation).await;
        assert_eq!(p["status"], "card_saved", "{p}");
        assert_eq!(p["status_label"]["fr"], "Carte enregistrée");
        assert_eq!(p["card_saved"], true);
        assert_eq!(p["amount_held"], "0.00");
        assert!(!can_enter(&app, &token).await);
        let page = app.pay_page(&token).await;
        assert_eq!(
            page["can_pay"], false,
            "a saved card needs nothing more: {page}"
        );

        // Three days on, still too early for the hold.
        let moved = app.advance_clock(Duration::days(3)).await;
        assert_eq!(moved["holds_placed"], 0, "{moved}");
        assert_eq!(
            payment_of(&app, &dr, &consultation).await["status"],
            "card_saved"
        );

        // Six days before the consultation, the hold is placed off-session.
        let moved = app
            .advance_clock(Duration::days(1) + Duration::minutes(1))
            .await;
        assert_eq!(moved["holds_placed"], 1, "{moved}");
        let p = payment_of(&app, &dr, &consultation).await;
        assert_eq!(p["status"], "authorized", "{p}");
        assert_eq!(p["amount_held"], "25.00");
        let capture_before: DateTime<Utc> = p["capture_before"]
            .as_str()
            .expect("deadline")
            .parse()
            .expect("a date");
        assert!(
            capture_before > starts_at,
            "the hold covers the consultation: {p}"
        );
        // A second pass of the jobs places nothing more.
        let moved = app.advance_clock(Duration::hours(1)).await;
        assert_eq!(moved["holds_placed"], 0, "{moved}");

        // At the consultation the patient is let in; the act is validated after it.
        let to_start = starts_at - app.clock_now() + Duration::minutes(30);
        let moved = app.advance_clock(to_start).await;
        assert_eq!(moved["holds_renewed"], 0, "{moved}");
        assert!(can_enter(&app, &token).await);
        let (status, p) = validate(&app, &dr, &consultation, "18.00").await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(p["status"], "captured", "{p}");
        assert_eq!(p["amount_captured"], "18.00");
        assert_eq!(p["amount_released"], "7.00");
        let events = history(&app, &dr, &p).await;
        assert_eq!(count(&events, "hold_placed"), 1, "{events:?}");
        assert_eq!(count(&events, "captured"), 1, "{events:?}");
    });
}

#[tokio::test]
async fn a_hold_running_out_before_a_late_validation_is_renewed_then_captured_once() {
    on_every_backend!(|app| {
        let (dr, consultation, token, starts_at) = booked(&app, Duration::days(10)).await;
        app.pay(&token, "pm_card_visa").await;
        app.advance_clock(Duration::days(4) + Duration::minutes(1))
            .await;
        let first = payment_of(&app, &dr, &consultation).await;
        assert_eq!(first["status"], "authorized", "{first}");

        // The practitioner validates two days after the consultation: the hold placed
        // at day 4 would lapse at day 11, so it is renewed half a day before.
        let to_late = starts_at - app.clock_now() + Duration::days(2);
        let moved = app.advance_clock(to_late).await;
        assert_eq!(moved["holds_renewed"], 1, "{moved}");
        let renewed = payment_of(&app, &dr, &consultation).await;
        assert_eq!(renewed["status"], "authorized", "{renewed}");
        assert_ne!(
            renewed["intent_id"], first["intent_id"],
            "a new hold: {renewed}"
        );
        let deadline: DateTime<Utc> = renewed["capture_before"]
            .as_str()
            .expect("deadline")
            .parse()
            .expect("a date");
        assert!(deadline > app.clock_now() + Duration::days(5), "{renewed}");

        let (status, p) = validate(&app, &dr, &consultation, "25.00").await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(p["status"], "captured", "{p}");
        assert_eq!(p["amount_captured"], "25.00");
        let events = history(&app, &dr, &p).await;
        assert_eq!(count(&events, "captured"), 1, "{events:?}");
        // Only the live hold was captured; the replaced one was given back and, past
        // its own deadline, lapses at Stripe without touching the payment.
        app.advance_clock(Duration::days(8)).await;
        let p = payment_of(&app, &dr, &consultation).await;
        assert_eq!(p["status"], "captured", "{p}");
        assert_eq!(p["amount_captured"], "25.00");
    });
}

#[tokio::test]
async fn after_a_decline_and_an_abandoned_checkout_the_patient_pays_again() {
    on_every_backend!(|app| {
        let (dr, consultation, token, _) = booked(&app, Duration::days(2)).await;

        // A declined card: back to the pay page, which offers to try again.
        let page_url = app.open_checkout(&token).await;
        let (status, back) = app.submit_card(&page_url, "pm_card_chargeDeclined").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{back}");
        let p = payment_of(&app, &dr, &consultation).await;
        assert_eq!(p["status"], "failed", "{p}");
        assert_eq!(p["failure"]["decline_code"], "generic_decline", "{p}");
        assert_eq!(app.pay_page(&token).await["can_pay"], true);

        // The patient leaves; a day later the checkout session expires at Stripe.
        app.advance_clock(Duration::hours(25)).await;
        let p = payment_of(&app, &dr, &consultation).await;
        assert_eq!(p["status"], "failed", "still says why: {p}");
        assert!(p["intent_id"].is_null(), "the attempt is over: {p}");
        let events = history(&app, &dr, &p).await;
        assert_eq!(count(&events, "attempt_ended"), 1, "{events:?}");
        assert!(!can_enter(&app, &token).await);

        // Paying again is a fresh checkout, and this time it holds.
        let page = app.pay_page(&token).await;
        assert_eq!(page["can_pay"], true, "{page}");
        app.pay(&token, "pm_card_visa").await;
        let p = payment_of(&app, &dr, &consultation).await;
        assert_eq!(p["status"], "authorized", "{p}");
        assert!(can_enter(&app, &token).await);
    });
}

#[tokio::test]
async fn a_hold_never_validated_is_kept_while_it_may_be_then_lapses() {
    on_every_backend!(|app| {
        let (dr, consultation, token, starts_at) = booked(&app, Duration::hours(20)).await;
        app.pay(&token, "pm_card_visa").await;
        // The act is never validated. The hold is renewed once, so the practitioner
        // may still validate up to a week after the consultation; then it lapses at
        // Stripe and the payment says so.
        let moved = app.advance_clock(Duration::days(14)).await;
        assert_eq!(moved["holds_renewed"], 1, "{moved}");
        assert!(app.clock_now() > starts_at + Duration::days(7));
        let p = payment_of(&app, &dr, &consultation).await;
        assert_eq!(p["status"], "expired", "{p}");
        assert_eq!(p["status_label"]["fr"], "Expiré", "{p}");
        // Long past its consultation: nothing to pay for, nothing to capture.
        assert_eq!(app.pay_page(&token).await["can_pay"], false);
        let (status, problem) = validate(&app, &dr, &consultation, "10.00").await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    });
}

#[tokio::test]
async fn a_saved_card_refused_off_session_sends_the_patient_back_to_authorise() {
    on_every_backend!(|app| {
        for (card, code) in [
            ("pm_card_chargeCustomerFail", "card_declined"),
            ("pm_card_authenticationRequired", "authentication_required"),
        ] {
            let (dr, consultation, token, _) = booked(&app, Duration::days(10)).await;
            // Saving the card: the 3-D Secure card asks for it once, and passes.
            let page_url = app.open_checkout(&token).await;
            let (status, next) = app.submit_card(&page_url, card).await;
            assert_eq!(status, StatusCode::SEE_OTHER, "{card}: {next}");
            if next.contains("/sandbox/checkout/") {
                let (status, next) = app.authenticate(&page_url, true).await;
                assert_eq!(status, StatusCode::SEE_OTHER, "{card}: {next}");
            }
            let p = payment_of(&app, &dr, &consultation).await;
            assert_eq!(p["status"], "card_saved", "{card}: {p}");

            // When the hold is due, the issuer refuses it with the patient away.
            let moved = app
                .advance_clock(Duration::days(4) + Duration::minutes(1))
                .await;
            assert_eq!(moved["holds_refused"], 1, "{card}: {moved}");
            let p = payment_of(&app, &dr, &consultation).await;
            assert_eq!(p["status"], "failed", "{card}: {p}");
            assert_eq!(p["failure"]["code"], code, "{card}: {p}");
            assert!(!can_enter(&app, &token).await);
            let page = app.pay_page(&token).await;
            assert_eq!(page["can_pay"], true, "{card}: {page}");
            assert!(page["hold_from"].is_null(), "held now, not later: {page}");

            // The patient authorises on the pay page, with the card at hand.
            let page_url = app.open_checkout(&token).await;
            let (status, next) = app
                .submit_card(&page_url, "pm_card_threeDSecure2Required")
                .await;
            assert_eq!(status, StatusCode::SEE_OTHER, "{card}: {next}");
            let (status, _) = app.authenticate(&page_url, true).await;
            assert_eq!(status, StatusCode::SEE_OTHER);
            let p = payment_of(&app, &dr, &consultation).await;
            assert_eq!(p["status"], "authorized", "{card}: {p}");
            assert!(can_enter(&app, &token).await);
            // The jobs leave a hold the patient placed alone.
            let moved = app.advance_clock(Duration::hours(1)).await;
            assert_eq!(moved["holds_placed"], 0, "{moved}");
        }
    });
}

#[tokio::test]
async fn a_dispute_opened_then_lost_is_shown_and_taken_from_the_net() {
    on_every_backend!(|app| {
        let (dr, consultation, token, starts_at) = booked(&app, Duration::hours(1)).await;
        app.pay(&token, "pm_card_createDispute").await;
        app.advance_clock(starts_at - app.clock_now() + Duration::minutes(30))
            .await;
        let (status, p) = validate(&app, &dr, &consultation, "25.00").await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(p["net"], "24.40", "{p}");

        // The cardholder disputes the charge a minute later.
        app.advance_clock(Duration::minutes(2)).await;
        let p = payment_of(&app, &dr, &consultation).await;
        assert_eq!(p["status"], "disputed", "{p}");
        assert_eq!(p["status_label"]["fr"], "Contesté");
        let dispute = &p["dispute"];
        assert_eq!(dispute["reason"], "fraudulent", "{p}");
        assert_eq!(dispute["open"], true, "{p}");
        assert_eq!(dispute["amount"], "25.00", "{p}");
        assert!(dispute["evidence_due_by"].is_string(), "{p}");
        assert!(
            dispute["dashboard_url"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://dashboard.stripe.com/")
                    && u.contains(dispute["id"].as_str().unwrap_or("?"))),
            "{p}"
        );
        assert_eq!(dispute["withdrawn"], "25.00", "{p}");
        assert_eq!(dispute["fee"], "15.00", "{p}");
        // What it took: the 25.00 and Stripe's 15.00 fee, out of the net at once.
        assert_eq!(p["amount_disputed"], "40.00", "{p}");
        assert_eq!(p["net"], "-15.60", "{p}");
        // It cannot be refunded while disputed: the card network decides.
        let payment_id = p["id"].as_str().expect("id");
        let (status, problem) = app
            .post(
                &format!("/api/v1/payments/{payment_id}/refunds"),
                Some(&dr.token),
                json!({ "amount": "5.00" }),
            )
            .await;
        assert!(status.is_client_error(), "{status} {problem}");
        let (_, list) = app.get("/api/v1/payments", Some(&dr.token)).await;
        assert_eq!(list["totals"][0]["disputed"], "40.00", "{list}");
        assert_eq!(list["totals"][0]["net"], "-15.60", "{list}");

        // No evidence: at the due date the dispute is lost, the funds and the fee gone.
        app.advance_clock(Duration::days(8)).await;
        let p = payment_of(&app, &dr, &consultation).await;
        assert_eq!(p["status"], "dispute_lost", "{p}");
        assert_eq!(p["status_label"]["fr"], "Contestation perdue");
        assert_eq!(p["dispute"]["status"], "lost", "{p}");
        assert_eq!(p["dispute"]["open"], false, "{p}");
        assert_eq!(p["dispute"]["fee"], "15.00", "{p}");
        // 25.00 captured − 0.60 Stripe fee − 25.00 taken back − 15.00 dispute fee.
        assert_eq!(p["net"], "-15.60", "{p}");
        let events = history(&app, &dr, &p).await;
        assert!(events.iter().any(|e| e == "dispute_opened"), "{events:?}");
        assert!(events.iter().any(|e| e == "dispute_lost"), "{events:?}");
    });
}

#[tokio::test]
async fn a_refund_that_fails_later_is_shown_and_can_be_made_again() {
    on_every_backend!(|app| {
        let (dr, consultation, token, _) = booked(&app, Duration::hours(1)).await;
        app.pay(&token, "pm_card_refundFail").await;
        let (status, p) = validate(&app, &dr, &consultation, "20.00").await;
        assert_eq!(status, StatusCode::OK, "{p}");
        let payment_id = p["id"].as_str().expect("id").to_owned();
        let refund = async |amount: &str| {
            app.post(
                &format!("/api/v1/payments/{payment_id}/refunds"),
                Some(&dr.token),
                json!({ "amount": amount }),
            )
            .await
        };
        let (status, r) = refund("5.00").await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(r["status"], "partially_refunded", "{r}");
        assert_eq!(r["refunds"][0]["amount"], "5.00", "{r}");

        // An hour later the bank sends it back: the refund failed.
        app.advance_clock(Duration::hours(2)).await;
        let p = payment_of(&app, &dr, &consultation).await;
        assert_eq!(p["refunds"][0]["status"], "failed", "{p}");
        assert_eq!(p["amount_refunded"], "0.00", "{p}");
        assert_eq!(p["status"], "captured", "{p}");
        let events = history(&app, &dr, &p).await;
        assert_eq!(count(&events, "all_refunds_failed"), 1, "{events:?}");
        // Its credit note is cancelled by a document of its own, and the patient's
        // page says the refund did not go through.
        let (_, detail) = app
            .get(&format!("/api/v1/payments/{payment_id}"), Some(&dr.token))
            .await;
        let docs = detail["documents"].as_array().expect("documents");
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(
            kinds,
            ["receipt", "credit_note", "credit_note_cancellation"],
            "{detail}"
        );
        assert_eq!(docs[2]["refers_to"], docs[1]["number"], "{detail}");
        let page = crate::helpers::plain(&app.html(&format!("/pay/{token}?lang=fr")).await);
        assert!(
            page.contains("Le remboursement de 5,00 € n'a pas abouti"),
            "{page}"
        );

        // The whole captured amount may be refunded again (another way).
        let (status, r) = refund("20.01").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
        let (status, r) = refund("20.00").await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(r["amount_refunded"], "20.00", "{r}");
    });
}

#[tokio::test]
async fn a_capture_below_stripes_minimum_is_refused_before_stripe_is_asked() {
    on_every_backend!(|app| {
        let (dr, consultation, token, _) = booked(&app, Duration::hours(1)).await;
        app.pay(&token, "pm_card_visa").await;
        let (status, problem) = validate(&app, &dr, &consultation, "0.49").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["code"], "capture_below_minimum", "{problem}");
        assert_eq!(
            payment_of(&app, &dr, &consultation).await["status"],
            "authorized"
        );
        // Zero still means "nothing to charge": the hold is released.
        let (status, p) = validate(&app, &dr, &consultation, "0").await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(p["status"], "released", "{p}");
        let (status, p) = validate(&app, &dr, &consultation, "0.50").await;
        assert_eq!(status, StatusCode::CONFLICT, "{p}");
    });
}

#[tokio::test]
async fn the_statement_text_is_the_practitioners_and_checks_stripes_rules() {
    on_every_backend!(|app| {
        let dr = app.practitioner("Dr Estival").await;
        app.link_stripe(&dr).await;
        let prefs = format!("/api/v1/practitioners/{}/preferences", dr.id);
        let (status, body) = app
            .put(
                &prefs,
                Some(&dr.token),
                json!({
                    "default_amount": "25.00", "max_amount": "25.00", "currency": "EUR",
                    "payment_label": "Consultation Dr Estival",
                    "statement_descriptor_suffix": "ESTIVAL",
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["payment_label"], "Consultation Dr Estival", "{body}");
        assert_eq!(body["statement_descriptor_suffix"], "ESTIVAL", "{body}");
        for (field, value) in [
            ("statement_descriptor_suffix", "DR <ESTIVAL>"),
            ("statement_descriptor_suffix", "A VERY LONG SUFFIX OF TEXT"),
            ("statement_descriptor_suffix", "1234"),
            ("payment_label", ""),
        ] {
            let mut input =
                json!({ "default_amount": "25.00", "max_amount": "25.00", "currency": "EUR" });
            input[field] = json!(value);
            let (status, problem) = app.put(&prefs, Some(&dr.token), input).await;
            if field == "payment_label" {
                // An empty label clears it: the default one is used again.
                assert_eq!(status, StatusCode::OK, "{problem}");
                assert!(problem["payment_label"].is_null(), "{problem}");
                continue;
            }
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{value}: {problem}"
            );
            assert_eq!(problem["code"], "validation_failed", "{value}: {problem}");
        }
        // The sandbox's checkout page shows what Stripe's would: the default label in
        // the patient's language, when the practitioner set none.
        let (_, scheduled) = app.schedule(&dr, &dr, json!({ "mode": "online" })).await;
        let token = scheduled["pay_token"].as_str().expect("token");
        let page_url = app.open_checkout(token).await;
        let html = app
            .client
            .get(&page_url)
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("html");
        assert!(html.contains("Téléconsultation"), "{html}");
    });
}

#[tokio::test]
async fn the_sandbox_clock_refuses_bad_steps_and_is_absent_with_stripe() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let before = app.clock_now();
    for body in [
        json!({ "seconds": 0 }),
        json!({ "seconds": -60 }),
        json!({ "seconds": 400_000_000 }),
    ] {
        let (status, problem) = app.post("/sandbox/clock/advance", None, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(problem["code"], "validation_failed", "{problem}");
    }
    for body in [
        json!({ "seconds": "soon" }),
        json!({}),
        json!({ "seconds": 1.5 }),
    ] {
        let (status, problem) = app.post("/sandbox/clock/advance", None, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {problem}");
    }
    assert!(
        app.clock_now() - before < Duration::minutes(1),
        "nothing moved"
    );
    let moved = app.advance_clock(Duration::days(1)).await;
    let now: DateTime<Utc> = moved["now"].as_str().expect("now").parse().expect("a date");
    // (`now` is given to the second.)
    let moved_by = now - before;
    assert!(
        moved_by > Duration::days(1) - Duration::seconds(1)
            && moved_by < Duration::days(1) + Duration::minutes(1),
        "{moved}"
    );
    app.stop().await;

    let Some(app) = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.stripe_secret_key = Some(app::config::Secret::new("sk_test_not_called"));
        c.stripe_api_base = Some("http://127.0.0.1:9".to_owned());
    })
    .await
    else {
        return;
    };
    let (status, _) = app
        .post("/sandbox/clock/advance", None, json!({ "seconds": 60 }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}
