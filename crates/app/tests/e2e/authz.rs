//! The authorisation matrix: every endpoint × {practitioner, another practitioner,
//! their secretary, another's secretary, a patient's pay token, no token}.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, csrf_token, plain};

/// Who calls, in the matrix's column order.
const WHO: [&str; 6] = [
    "practitioner",
    "other practitioner",
    "secretary",
    "other secretary",
    "patient token",
    "no token",
];

struct Row {
    method: Method,
    path: String,
    body: Option<Value>,
    /// Expected status per caller, in `WHO` order.
    expect: [u16; 6],
}

fn row(method: Method, path: String, body: Option<Value>, expect: [u16; 6]) -> Row {
    Row {
        method,
        path,
        body,
        expect,
    }
}

#[tokio::test]
async fn every_endpoint_answers_each_caller_as_the_policy_says() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let (dr, scheduled) = app.paid_consultation().await;
    let other = app.practitioner("Dr Autre").await;
    app.link_stripe(&other).await;
    let sec = app.secretary(&[&dr]).await;
    let other_sec = app.secretary(&[&other]).await;
    let pay_token = scheduled["pay_token"]
        .as_str()
        .expect("pay_token")
        .to_owned();
    let consultation = scheduled["id"].as_str().expect("id").to_owned();
    app.pay(&pay_token, "pm_card_visa").await;
    // A second hold, to release.
    let (_, second) = app.schedule(&dr, &dr, json!({ "mode": "online" })).await;
    let second_token = second["pay_token"].as_str().expect("pay_token").to_owned();
    let second_id = second["id"].as_str().expect("id").to_owned();
    app.pay(&second_token, "pm_card_visa").await;
    let (_, third) = app.schedule(&dr, &dr, json!({ "mode": "online" })).await;
    let third_token = third["pay_token"].as_str().expect("pay_token").to_owned();
    let third_id = third["id"].as_str().expect("id").to_owned();
    app.pay(&third_token, "pm_card_visa").await;
    let (_, service) = app
        .post(
            &format!("/api/v1/practitioners/{}/services", dr.id),
            Some(&dr.token),
            json!({ "name": "Bilan", "amount": "20" }),
        )
        .await;
    let service_id = service["id"].as_str().expect("service id").to_owned();
    let c = app.consultation(&dr, &consultation).await;
    let payment_id = c["payment"]["id"].as_str().expect("payment id").to_owned();

    // A pay token opens its own consultation only (checked before the matrix, which
    // issues new pay links).
    let (status, pay) = app.get(&format!("/api/v1/pay/{pay_token}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pay["consultation_id"], consultation);
    let (status, _) = app
        .get(
            &format!("/api/v1/pay/{}x", &pay_token[..pay_token.len() - 1]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let p = format!("/api/v1/practitioners/{}", dr.id);
    let schedule_body = json!({
        "practitioner_id": dr.id,
        "patient": { "display_name": "Mme Roux" },
        "starts_at": (chrono::Utc::now() + chrono::Duration::hours(3)).to_rfc3339(),
        "payment": { "mode": "none" },
    });
    let prefs = json!({ "default_amount": "25.00", "max_amount": "25.00", "currency": "EUR" });
    // Rows that change state come after every refusal of the same endpoint: a caller
    // that is refused changes nothing, so the owner's success is last.
    let rows = vec![
        row(
            Method::GET,
            format!("{p}/stripe"),
            None,
            [200, 404, 200, 404, 401, 401],
        ),
        row(
            Method::POST,
            format!("{p}/stripe/oauth"),
            None,
            [200, 404, 403, 404, 401, 401],
        ),
        row(
            Method::POST,
            format!("{p}/stripe/verify"),
            None,
            [200, 404, 403, 404, 401, 401],
        ),
        // Allowed by the policy, refused by the state (holds are outstanding).
        row(
            Method::DELETE,
            format!("{p}/stripe"),
            None,
            [409, 404, 403, 404, 401, 401],
        ),
        row(
            Method::GET,
            format!("{p}/preferences"),
            None,
            [200, 404, 200, 404, 401, 401],
        ),
        row(
            Method::PUT,
            format!("{p}/preferences"),
            Some(prefs),
            [200, 404, 403, 404, 401, 401],
        ),
        row(
            Method::GET,
            format!("{p}/services"),
            None,
            [200, 404, 200, 404, 401, 401],
        ),
        row(
            Method::POST,
            format!("{p}/services"),
            Some(json!({ "name": "Suivi", "amount": "15" })),
            [201, 404, 403, 404, 401, 401],
        ),
        row(
            Method::PATCH,
            format!("/api/v1/services/{service_id}"),
            Some(json!({ "amount": "21" })),
            [200, 404, 403, 404, 401, 401],
        ),
        row(
            Method::DELETE,
            format!("/api/v1/services/{service_id}"),
            None,
            [200, 404, 403, 404, 401, 401],
        ),
        // Allowed by the policy, refused by the state (already linked: unlink first).
        row(
            Method::POST,
            format!("{p}/stripe/account-link"),
            None,
            [409, 404, 403, 404, 401, 401],
        ),
        row(
            Method::GET,
            format!("{p}/audit"),
            None,
            [200, 404, 403, 404, 401, 401],
        ),
        row(
            Method::POST,
            "/api/v1/consultations".into(),
            Some(schedule_body),
            [201, 404, 201, 404, 401, 401],
        ),
        row(
            Method::GET,
            format!("/api/v1/consultations/{consultation}"),
            None,
            [200, 404, 200, 404, 401, 401],
        ),
        row(
            Method::POST,
            format!("/api/v1/consultations/{consultation}/pay-link"),
            None,
            [200, 404, 200, 404, 401, 401],
        ),
        row(
            Method::GET,
            format!("/api/v1/payments/{payment_id}"),
            None,
            [200, 404, 200, 404, 401, 401],
        ),
        row(
            Method::POST,
            format!("/api/v1/consultations/{second_id}/release"),
            None,
            [200, 404, 403, 404, 401, 401],
        ),
        // The consultation's day (a third consultation, two hours ahead): the
        // practitioner alone starts it, takes the moderator's pass and charges a missed
        // one (refused here by the state: too early, no fee); the secretary cancels and
        // reschedules too.
        row(
            Method::GET,
            format!("/api/v1/consultations/{third_id}/pass"),
            None,
            [409, 404, 403, 404, 401, 401],
        ),
        row(
            Method::POST,
            format!("/api/v1/consultations/{third_id}/start"),
            None,
            [409, 404, 403, 404, 401, 401],
        ),
        row(
            Method::POST,
            format!("/api/v1/consultations/{third_id}/no-show"),
            None,
            [409, 404, 403, 404, 401, 401],
        ),
        row(
            Method::POST,
            format!("/api/v1/consultations/{third_id}/cancellation-fee"),
            None,
            [409, 404, 403, 404, 401, 401],
        ),
        row(
            Method::POST,
            format!("/api/v1/consultations/{third_id}/reschedule"),
            Some(json!({
                "starts_at": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()
            })),
            [200, 404, 200, 404, 401, 401],
        ),
        row(
            Method::POST,
            format!("/api/v1/consultations/{third_id}/cancel"),
            None,
            [200, 404, 200, 404, 401, 401],
        ),
        row(
            Method::POST,
            format!("/api/v1/consultations/{consultation}/validate"),
            Some(json!({ "amount": "20" })),
            [200, 404, 403, 404, 401, 401],
        ),
        row(
            Method::POST,
            format!("/api/v1/payments/{payment_id}/refunds"),
            Some(json!({ "amount": "1" })),
            [200, 404, 403, 404, 401, 401],
        ),
        row(
            Method::GET,
            "/api/v1/payments".into(),
            None,
            [200, 200, 200, 200, 401, 401],
        ),
        row(
            Method::GET,
            "/api/v1/payments.csv".into(),
            None,
            [200, 200, 200, 200, 401, 401],
        ),
        row(
            Method::GET,
            "/api/v1/consultations".into(),
            None,
            [200, 200, 200, 200, 401, 401],
        ),
        row(
            Method::GET,
            "/api/v1/fees/estimate?amount=25".into(),
            None,
            // Arithmetic on the default schedule, no one's data: public.
            [200, 200, 200, 200, 200, 200],
        ),
        row(
            Method::GET,
            "/api/v1/holds/expiring".into(),
            None,
            [200, 200, 200, 200, 401, 401],
        ),
        row(
            Method::GET,
            "/api/v1/me".into(),
            None,
            [200, 200, 200, 200, 401, 401],
        ),
    ];
    let tokens = [
        Some(dr.token.as_str()),
        Some(other.token.as_str()),
        Some(sec.token.as_str()),
        Some(other_sec.token.as_str()),
        Some(pay_token.as_str()),
        None,
    ];
    let mut failures = vec![];
    for r in &rows {
        // Owners last: everyone else's refusal first.
        for i in [1, 2, 3, 4, 5, 0] {
            let (status, body) = app
                .call(r.method.clone(), &r.path, tokens[i], r.body.clone())
                .await;
            if status.as_u16() != r.expect[i] {
                failures.push(format!(
                    "{} {} as {}: {} (expected {}) {body}",
                    r.method, r.path, WHO[i], status, r.expect[i]
                ));
            }
            if !status.is_success() {
                assert!(
                    body["code"].is_string(),
                    "{} {} as {}: not a problem document: {body}",
                    r.method,
                    r.path,
                    WHO[i]
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Lists only ever show the caller's own practitioners' payments.
    let (_, theirs) = app.get("/api/v1/payments", Some(&other.token)).await;
    assert_eq!(
        theirs["items"].as_array().map(Vec::len),
        Some(0),
        "{theirs}"
    );
    let (_, foreign_sec) = app.get("/api/v1/payments", Some(&other_sec.token)).await;
    assert_eq!(
        foreign_sec["items"].as_array().map(Vec::len),
        Some(0),
        "{foreign_sec}"
    );
    let (status, _) = app
        .get(
            &format!("/api/v1/payments?practitioner_id={}", dr.id),
            Some(&other.token),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    app.stop().await;
}

/// The dashboard's money forms, posted with a valid session and CSRF token by someone
/// the policy refuses: another practitioner is told nothing exists (404), the
/// practitioner's secretary is forbidden (403); nothing moves.
#[tokio::test]
async fn the_dashboard_money_forms_refuse_other_practitioners_and_secretaries() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let (dr, scheduled) = app.paid_consultation().await;
    let token = scheduled["pay_token"].as_str().expect("pay_token");
    let consultation = scheduled["id"].as_str().expect("id");
    let payment = scheduled["payment"]["id"].as_str().expect("payment id");
    app.pay(token, "pm_card_visa").await;
    let other = app.practitioner("Dr Autre").await;
    let sec = app.secretary(&[&dr]).await;

    for (who, expected) in [(&other, 404), (&sec, 403)] {
        app.sign_in(who).await;
        let page = app
            .client
            .get(app.url(&format!("/dashboard/payments/{payment}")))
            .send()
            .await
            .expect("payment page");
        let seen = page.status().as_u16();
        let csrf = csrf_token(&app.html("/dashboard").await);
        assert_eq!(seen, if expected == 404 { 404 } else { 200 });
        for (action, amount) in [("validate", "18,00"), ("refund", "1,00"), ("release", "")] {
            let path = format!("/dashboard/payments/{payment}/{action}");
            let resp = app
                .submit(&path, &[("csrf_token", csrf.as_str()), ("amount", amount)])
                .await;
            assert_eq!(resp.status().as_u16(), expected, "{action} by {}", who.id);
        }
        // The consultation's day: starting and charging a missed consultation are the
        // practitioner's; another practitioner cannot even cancel or move it.
        let mut day = vec!["start", "no-show", "cancellation-fee"];
        if expected == 404 {
            day.extend(["cancel", "reschedule"]);
        }
        for action in day {
            let path = format!("/dashboard/consultations/{consultation}/{action}");
            let resp = app
                .submit(
                    &path,
                    &[
                        ("csrf_token", csrf.as_str()),
                        ("starts_at", "2030-01-01T10:00"),
                    ],
                )
                .await;
            assert_eq!(resp.status().as_u16(), expected, "{action} by {}", who.id);
        }
    }
    // Still signed in as the secretary: Stripe and the caps are not theirs either.
    let csrf = csrf_token(&app.html("/dashboard").await);
    for (path, fields) in [
        ("/dashboard/stripe/link", vec![]),
        ("/dashboard/stripe/unlink", vec![]),
        (
            "/dashboard/preferences",
            vec![
                ("default_amount", "30,00"),
                ("max_amount", "30,00"),
                ("currency", "EUR"),
                ("preset", "default"),
            ],
        ),
    ] {
        let mut form = vec![("csrf_token", csrf.as_str())];
        form.extend(fields);
        let resp = app.submit(path, &form).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
    }
    // Her pages that are the practitioner's say so, rather than sending her away.
    for path in [
        "/dashboard/preferences",
        "/dashboard/services",
        "/dashboard/team",
    ] {
        let resp = app.client.get(app.url(path)).send().await.expect("page");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{path}");
        let text = plain(&resp.text().await.unwrap_or_default());
        assert!(text.contains("réservée au praticien"), "{path}: {text}");
    }
    let c = app.consultation(&dr, consultation).await;
    assert_eq!(c["payment"]["status"], "authorized", "{c}");
    assert_eq!(app.link_status(&dr).await, "linked");
    app.stop().await;
}
