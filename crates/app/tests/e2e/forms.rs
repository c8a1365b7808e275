//! The dashboard's forms that create or move money carry a per-rendering idempotency
//! key: submitting one twice (double click, reload after the POST) does it once.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, csrf_token, plain};

/// The value of the hidden field `name` of a page's form.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .map(|i| i + marker.len())
        .unwrap_or_else(|| panic!("a hidden {name}"));
    let end = html[start..].find('"').expect("end of the value");
    html[start..start + end].to_owned()
}

#[tokio::test]
async fn a_refund_or_schedule_form_submitted_twice_acts_once() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let (dr, scheduled) = t.paid_consultation().await;
    let token = scheduled["pay_token"].as_str().expect("pay_token");
    let consultation = scheduled["id"].as_str().expect("id");
    let payment = scheduled["payment"]["id"].as_str().expect("payment id");
    t.pay(token, "pm_card_visa").await;
    let (status, body) = t
        .post(
            &format!("/api/v1/consultations/{consultation}/validate"),
            Some(&dr.token),
            json!({ "amount": "18.00" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    t.sign_in(&dr).await;

    // A mistyped date filter is refused, not ignored (the export would hold everything).
    let csv = t
        .client
        .get(t.url("/dashboard/payments.csv?from=31/12/2026"))
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let page = format!("/dashboard/payments/{payment}");
    let refund = format!("{page}/refund");
    let refunded = async || {
        let c = t.consultation(&dr, consultation).await;
        c["payment"]["amount_refunded"].clone()
    };
    let html = t.html(&page).await;
    assert!(
        html.contains("id=\"refund-amount\" name=\"amount\" inputmode=\"decimal\" required aria"),
        "the amount is not pre-filled with the whole remainder"
    );
    let (csrf, attempt) = (csrf_token(&html), hidden(&html, "attempt"));
    // First the confirmation: the amount, and that Stripe keeps its fee; no refund yet.
    let asked = t
        .submit(
            &refund,
            &[
                ("csrf_token", csrf.as_str()),
                ("attempt", attempt.as_str()),
                ("amount", "5,00"),
            ],
        )
        .await;
    assert_eq!(asked.status(), StatusCode::OK);
    let confirm = asked.text().await.expect("html");
    assert!(plain(&confirm).contains("5,00"), "{confirm}");
    assert!(confirm.contains("id=\"refund-confirm-fee\""));
    assert_eq!(refunded().await, "0.00");
    for _ in 0..2 {
        let fields = [
            ("csrf_token", csrf.as_str()),
            ("attempt", attempt.as_str()),
            ("amount", "5,00"),
            ("confirmed", "yes"),
        ];
        assert_eq!(
            t.submit(&refund, &fields).await.status(),
            StatusCode::SEE_OTHER
        );
    }
    assert_eq!(refunded().await, "5.00");

    // A freshly rendered form is a new refund.
    let html = t.html(&page).await;
    let again = hidden(&html, "attempt");
    assert_ne!(again, attempt);
    let fields = [
        ("csrf_token", csrf_token(&html)),
        ("attempt", again),
        ("amount", "1,00".to_owned()),
        ("confirmed", "yes".to_owned()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        t.submit(&refund, &fields).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(refunded().await, "6.00");

    // Scheduling: the same rendering submitted twice makes one consultation.
    let html = t.html("/dashboard/schedule").await;
    let (csrf, attempt) = (csrf_token(&html), hidden(&html, "attempt"));
    for _ in 0..2 {
        let fields = [
            ("csrf_token", csrf.as_str()),
            ("attempt", attempt.as_str()),
            ("patient", "Mme Durand"),
            ("starts_at", "2030-01-15T10:30"),
            ("mode", "none"),
        ];
        let resp = t.submit("/dashboard/schedule", &fields).await;
        assert_eq!(resp.status(), StatusCode::OK);
        // The replay shows the same consultation with its link issued again (only
        // the hash of a pay token is kept, so the first one cannot be shown twice).
        assert!(resp.text().await.expect("html").contains("/pay/"));
    }
    let (_, list) = t.get("/api/v1/consultations", Some(&dr.token)).await;
    let items = list.as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "the paid one and Mme Durand's: {list}");
    t.stop().await;
}

#[tokio::test]
async fn a_secretary_of_two_practitioners_schedules_with_the_picked_ones_services() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let a = t.practitioner("Dr Alpha").await;
    let b = t.practitioner("Dr Beta").await;
    let stranger = t.practitioner("Dr Gamma").await;
    let (status, body) = t
        .post(
            &format!("/api/v1/practitioners/{}/services", b.id),
            Some(&b.token),
            json!({ "name": "Bilan de Beta", "amount": "20" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sec = t.secretary(&[&a, &b]).await;
    t.sign_in(&sec).await;

    let html = t
        .html(&format!("/dashboard/schedule?practitioner_id={}", b.id))
        .await;
    assert!(html.contains("Bilan de Beta"), "{html}");
    assert!(
        html.contains(&format!("value=\"{}\" selected", b.id)),
        "{html}"
    );
    for bad in [stranger.id.as_str(), "not-an-id"] {
        let resp = t
            .client
            .get(t.url(&format!("/dashboard/schedule?practitioner_id={bad}")))
            .send()
            .await
            .expect("page");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{bad}");
    }
    t.stop().await;
}

#[tokio::test]
async fn the_pay_page_says_where_an_unconfirmed_payment_stands() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let (_, scheduled) = t.paid_consultation().await;
    let token = scheduled["pay_token"].as_str().expect("pay_token");
    let (status, _) = t
        .post(&format!("/api/v1/pay/{token}/checkout"), None, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Not paid yet: the button, no message.
    let fresh = t.html(&format!("/pay/{token}")).await;
    assert!(fresh.contains("id=\"pay-now\""), "{fresh}");
    assert!(!fresh.contains("id=\"processing\""), "{fresh}");
    // Back from checkout before any hold is confirmed: "being checked", and the
    // button stays for a patient whose bank check failed.
    let back = t.html(&format!("/pay/{token}?checkout=success")).await;
    assert!(back.contains("id=\"processing\""), "{back}");
    assert!(!back.contains("id=\"enter-waiting-room\""), "{back}");
    // Gave up on the checkout page.
    let cancelled = t.html(&format!("/pay/{token}?checkout=cancel")).await;
    assert!(cancelled.contains("id=\"cancelled\""), "{cancelled}");
    t.stop().await;
}

/// The practitioner's side of the day on the dashboard: the policy set in the
/// preferences form, then "Démarrer la téléconsultation", "Patient absent" and what
/// the payment page says afterwards.
#[tokio::test]
async fn the_practitioner_runs_the_day_from_the_dashboard() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    t.link_stripe(&dr).await;
    t.sign_in(&dr).await;
    let csrf = csrf_token(&t.html("/dashboard/preferences").await);
    let saved = t
        .submit(
            "/dashboard/preferences",
            &[
                ("csrf_token", csrf.as_str()),
                ("default_amount", "25,00"),
                ("max_amount", "25,00"),
                ("currency", "EUR"),
                ("preset", "default"),
                ("free_hours", "48"),
                ("missed_fee", "fixed"),
                ("missed_fee_amount", "12,50"),
            ],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let (_, prefs) = t
        .get(
            &format!("/api/v1/practitioners/{}/preferences", dr.id),
            Some(&dr.token),
        )
        .await;
    assert_eq!(
        prefs["cancellation"],
        json!({ "free_hours": 48, "fee": "fixed", "fee_amount": "12.50" })
    );
    // A fee above the maximum is refused, and nothing changes.
    let refused = t
        .submit(
            "/dashboard/preferences",
            &[
                ("csrf_token", csrf.as_str()),
                ("default_amount", "25,00"),
                ("max_amount", "25,00"),
                ("currency", "EUR"),
                ("preset", "default"),
                ("free_hours", "48"),
                ("missed_fee", "fixed"),
                ("missed_fee_amount", "30,00"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let (_, scheduled) = t
        .schedule_at(
            &dr,
            &dr,
            json!({ "mode": "online" }),
            t.clock_now() + chrono::Duration::minutes(10),
        )
        .await;
    let token = scheduled["pay_token"].as_str().expect("pay_token");
    let consultation = scheduled["id"].as_str().expect("id");
    let payment = scheduled["payment"]["id"].as_str().expect("payment id");
    t.pay(token, "pm_card_visa").await;
    let page = plain(&t.html(&format!("/dashboard/payments/{payment}")).await);
    assert!(page.contains("Démarrer la téléconsultation"), "{page}");
    assert!(
        page.contains("Conditions acceptées par le patient"),
        "{page}"
    );
    assert!(!page.contains("Patient absent"), "not before the start");
    let csrf = csrf_token(&t.html(&format!("/dashboard/payments/{payment}")).await);
    let started = t
        .submit(
            &format!("/dashboard/consultations/{consultation}/start"),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let back = started.headers()["location"].to_str().expect("location");
    assert_eq!(back, format!("/dashboard/payments/{payment}?flash=started"));
    let (_, access) = t.get(&format!("/api/v1/pay/{token}/access"), None).await;
    assert_eq!(access["started"], true, "{access}");
    // Without a video platform, the patient is told the practitioner will call.
    let room = plain(&t.html(&format!("/pay/{token}/waiting-room")).await);
    assert!(room.contains("Votre praticien va vous appeler"), "{room}");

    t.advance_clock(chrono::Duration::minutes(11)).await;
    let page = plain(&t.html(&format!("/dashboard/payments/{payment}")).await);
    assert!(
        page.contains("Frais d'absence acceptés par le patient : 12,50 €"),
        "{page}"
    );
    let csrf = csrf_token(&t.html(&format!("/dashboard/payments/{payment}")).await);
    let absent = t
        .submit(
            &format!("/dashboard/consultations/{consultation}/no-show"),
            &[("csrf_token", csrf.as_str())],
        )
        .await;
    assert_eq!(absent.status(), StatusCode::SEE_OTHER);
    let page = plain(&t.html(&format!("/dashboard/payments/{payment}")).await);
    for expected in [
        "Patient absent (noté le",
        "Frais d'absence débités",
        "12,50 €",
    ] {
        assert!(page.contains(expected), "missing {expected:?} in\n{page}");
    }
    t.stop().await;
}
