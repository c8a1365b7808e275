//! The seeds' whole flow through HTTP, in sandbox mode, on SQLite and PostgreSQL.

use reqwest::StatusCode;
use serde_json::json;

use crate::on_every_backend;

#[tokio::test]
async fn the_seeds_flow_hold_validate_refund_and_report() {
    on_every_backend!(|app| {
        // The practitioner links Stripe (sandbox OAuth), sets 25.00 EUR default and max,
        // and schedules a consultation with online payment.
        let (dr, scheduled) = app.paid_consultation().await;
        let token = scheduled["pay_token"]
            .as_str()
            .expect("pay_token")
            .to_owned();
        let consultation = scheduled["id"].as_str().expect("id").to_owned();
        assert!(
            scheduled["pay_url"]
                .as_str()
                .unwrap_or_default()
                .ends_with(&format!("/pay/{token}"))
        );
        assert_eq!(scheduled["payment"]["status"], "incomplete");
        assert_eq!(scheduled["payment"]["amount"], "25.00");

        // The patient's pay endpoint shows 25.00 and the gate is shut.
        let (status, pay) = app.get(&format!("/api/v1/pay/{token}"), None).await;
        assert_eq!(status, StatusCode::OK, "{pay}");
        assert_eq!(pay["amount"], "25.00");
        assert_eq!(pay["currency"], "EUR");
        assert_eq!(pay["practitioner_name"], "Dr Estival");
        assert_eq!(pay["can_enter"], false);
        let (_, access) = app.get(&format!("/api/v1/pay/{token}/access"), None).await;
        assert_eq!(access["can_enter"], false);

        // Checkout with pm_card_visa: back on the pay page, the gate opens.
        let back = app.pay(&token, "pm_card_visa").await;
        assert!(
            back.contains(&format!("/pay/{token}?checkout=success")),
            "{back}"
        );
        let (_, access) = app.get(&format!("/api/v1/pay/{token}/access"), None).await;
        assert_eq!(access["can_enter"], true);
        let c = app.consultation(&dr, &consultation).await;
        assert_eq!(c["payment"]["status"], "authorized", "{c}");
        assert_eq!(c["payment"]["status_label"]["fr"], "Non capturé");
        assert_eq!(c["payment"]["amount_held"], "25.00");
        assert!(c["payment"]["capture_before"].is_string());

        // Validating 30.00 is refused: above the hold.
        let validate = format!("/api/v1/consultations/{consultation}/validate");
        let (status, problem) = app
            .post(&validate, Some(&dr.token), json!({ "amount": "30.00" }))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["code"], "amount_above_cap");

        // Validate 18.00: captured, "Réussi", fee 0.50, net 17.50.
        let (status, p) = app
            .post(&validate, Some(&dr.token), json!({ "amount": "18.00" }))
            .await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(p["status"], "captured");
        assert_eq!(p["status_label"]["fr"], "Réussi");
        assert_eq!(p["amount_captured"], "18.00");
        assert_eq!(p["amount_released"], "7.00");
        assert_eq!(p["fee"], "0.50");
        assert_eq!(p["net"], "17.50");
        let payment_id = p["id"].as_str().expect("payment id").to_owned();

        // The same validation again captures nothing more.
        let (status, again) = app
            .post(&validate, Some(&dr.token), json!({ "amount": "18,00" }))
            .await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["amount_captured"], "18.00");
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
        let (status, problem) = app
            .post(&validate, Some(&dr.token), json!({ "amount": "30.00" }))
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("amount_above_cap"))
        );

        // A partial refund.
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
        assert_eq!(r["net"], "12.50");

        // The payments list and the CSV show it.
        let (status, list) = app.get("/api/v1/payments", Some(&dr.token)).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let item = &list["items"][0];
        assert_eq!(item["id"], payment_id);
        assert_eq!(item["consultation_id"], consultation);
        assert_eq!(item["status"], "partially_refunded");
        assert_eq!(item["status_label"]["en"], "Partially refunded");
        assert_eq!(item["amount_held"], "25.00");
        assert_eq!(item["amount_captured"], "18.00");
        assert_eq!(item["amount_refunded"], "5.00");
        assert_eq!(item["fee"], "0.50");
        assert_eq!(item["currency"], "EUR");
        assert_eq!(list["totals"][0]["captured"], "18.00");
        assert_eq!(list["totals"][0]["net"], "12.50");
        let csv = app
            .client
            .get(app.url("/api/v1/payments.csv"))
            .bearer_auth(&dr.token)
            .send()
            .await
            .expect("csv");
        assert_eq!(csv.status(), StatusCode::OK);
        let header = |name: &str| {
            csv.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-type"), "text/csv; charset=utf-8");
        assert!(header("content-disposition").starts_with("attachment;"));
        let csv = csv.text().await.expect("csv text");
        let row = csv
            .lines()
            .find(|l| l.starts_with(&payment_id))
            .expect("the payment's row");
        assert!(
            row.contains(
                "partially_refunded,Partiellement remboursé,25.00,18.00,5.00,0.50,12.50,EUR"
            ),
            "{row}"
        );
    });
}

#[tokio::test]
async fn a_consultation_without_payment_lets_the_patient_in_at_once() {
    on_every_backend!(|app| {
        let dr = app.practitioner("Dr Estival").await;
        let (status, scheduled) = app.schedule(&dr, &dr, json!({ "mode": "none" })).await;
        assert_eq!(status, StatusCode::CREATED, "{scheduled}");
        assert!(scheduled["payment"].is_null());
        let token = scheduled["pay_token"].as_str().expect("pay_token");
        let (_, access) = app.get(&format!("/api/v1/pay/{token}/access"), None).await;
        assert_eq!(access["can_enter"], true);
        let (_, pay) = app.get(&format!("/api/v1/pay/{token}"), None).await;
        assert_eq!(pay["payment_required"], false);
        assert!(pay["waiting_room_url"].is_string());
    });
}

#[tokio::test]
async fn releasing_a_declined_payment_closes_its_checkout_for_good() {
    on_every_backend!(|app| {
        let (dr, scheduled) = app.paid_consultation().await;
        let token = scheduled["pay_token"].as_str().expect("pay_token");
        let consultation = scheduled["id"].as_str().expect("id");
        app.pay(token, "pm_card_chargeDeclined").await;
        let (status, released) = app
            .post(
                &format!("/api/v1/consultations/{consultation}/release"),
                Some(&dr.token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{released}");
        assert_eq!(released["status"], "released", "{released}");
        // The patient's card page is closed: no hold can be placed any more.
        let (status, checkout) = app
            .post(&format!("/api/v1/pay/{token}/checkout"), None, json!({}))
            .await;
        assert!(status.is_client_error(), "{status} {checkout}");
        let (_, access) = app.get(&format!("/api/v1/pay/{token}/access"), None).await;
        assert_eq!(access["can_enter"], false);
    });
}

#[tokio::test]
async fn a_declined_card_leaves_the_payment_refused_and_the_gate_shut() {
    on_every_backend!(|app| {
        let (dr, scheduled) = app.paid_consultation().await;
        let token = scheduled["pay_token"]
            .as_str()
            .expect("pay_token")
            .to_owned();
        let consultation = scheduled["id"].as_str().expect("id").to_owned();
        app.pay(&token, "pm_card_chargeDeclined").await;
        let (_, access) = app.get(&format!("/api/v1/pay/{token}/access"), None).await;
        assert_eq!(access["can_enter"], false);
        let c = app.consultation(&dr, &consultation).await;
        assert_eq!(c["payment"]["status"], "failed", "{c}");
        assert_eq!(c["payment"]["status_label"]["fr"], "Refusé");
        let (_, pay) = app.get(&format!("/api/v1/pay/{token}"), None).await;
        assert_eq!(pay["failure"]["code"], "card_declined", "{pay}");

        // Another card works afterwards.
        app.pay(&token, "pm_card_visa").await;
        let (_, access) = app.get(&format!("/api/v1/pay/{token}/access"), None).await;
        assert_eq!(access["can_enter"], true);
    });
}

#[tokio::test]
async fn validating_zero_releases_the_hold() {
    on_every_backend!(|app| {
        let (dr, scheduled) = app.paid_consultation().await;
        let token = scheduled["pay_token"]
            .as_str()
            .expect("pay_token")
            .to_owned();
        let consultation = scheduled["id"].as_str().expect("id").to_owned();
        app.pay(&token, "pm_card_visa").await;
        let (status, p) = app
            .post(
                &format!("/api/v1/consultations/{consultation}/validate"),
                Some(&dr.token),
                json!({ "amount": "0" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{p}");
        assert_eq!(p["status"], "released");
        assert_eq!(p["status_label"]["fr"], "Annulé");
        let (_, access) = app.get(&format!("/api/v1/pay/{token}/access"), None).await;
        assert_eq!(access["can_enter"], false);
    });
}

#[tokio::test]
async fn a_hold_left_seven_days_expires_at_reconciliation() {
    on_every_backend!(|app| {
        let (dr, scheduled) = app.paid_consultation().await;
        let token = scheduled["pay_token"]
            .as_str()
            .expect("pay_token")
            .to_owned();
        let consultation = scheduled["id"].as_str().expect("id").to_owned();
        app.pay(&token, "pm_card_visa").await;

        // Six days later it is flagged as expiring.
        app.clock.advance(chrono::Duration::days(6));
        let (_, expiring) = app.get("/api/v1/holds/expiring", Some(&dr.token)).await;
        assert_eq!(expiring.as_array().map(Vec::len), Some(1), "{expiring}");

        // Past seven days, reconciliation expires it.
        app.clock
            .advance(chrono::Duration::days(1) + chrono::Duration::minutes(1));
        let report = app
            .app
            .billing
            .reconcile
            .run_once()
            .await
            .expect("reconcile");
        assert_eq!(report.changed.len(), 1, "{report:?}");
        let c = app.consultation(&dr, &consultation).await;
        assert_eq!(c["payment"]["status"], "expired", "{c}");
        let (status, problem) = app
            .post(
                &format!("/api/v1/consultations/{consultation}/validate"),
                Some(&dr.token),
                json!({ "amount": "10" }),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    });
}

/// Two refunds of 4,00 € sent at once without an idempotency key (three rounds: at
/// most 24,00 of the 25,00 captured, so every refund can be made): every 200 is a
/// refund made, and a request that cannot tell a second refund from a retry is told
/// so (409 `refund_in_progress`) instead of answering the other's refund as its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_keyless_refunds_each_answer_what_they_did() {
    on_every_backend!(|app| {
        let (dr, scheduled) = app.paid_consultation().await;
        let token = scheduled["pay_token"].as_str().expect("pay_token");
        let consultation = scheduled["id"].as_str().expect("id");
        let payment = scheduled["payment"]["id"].as_str().expect("payment id");
        app.pay(token, "pm_card_visa").await;
        let (status, _) = app
            .post(
                &format!("/api/v1/consultations/{consultation}/validate"),
                Some(&dr.token),
                json!({ "amount": "25.00" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let refund = format!("/api/v1/payments/{payment}/refunds");
        let mut answered_200 = 0;
        for round in 0..3 {
            let body = json!({ "amount": "4.00" });
            let (a, b) = tokio::join!(
                app.post(&refund, Some(&dr.token), body.clone()),
                app.post(&refund, Some(&dr.token), body.clone()),
            );
            for (status, answer) in [&a, &b] {
                assert!(
                    *status == StatusCode::OK
                        || (*status == StatusCode::CONFLICT
                            && answer["code"] == "refund_in_progress"),
                    "round {round}: {status} {answer}"
                );
            }
            let made = [&a, &b]
                .iter()
                .filter(|(s, _)| *s == StatusCode::OK)
                .count();
            assert!(made >= 1, "round {round}: {a:?} {b:?}");
            answered_200 += made;
            eprintln!("round {round}: {made} refund(s) made of 2 asked");
            // Every 200 so far is one refund, at Stripe and in the total.
            let (_, detail) = app
                .get(&format!("/api/v1/payments/{payment}"), Some(&dr.token))
                .await;
            let refunds = detail["payment"]["refunds"].as_array().map_or(0, Vec::len);
            assert_eq!(refunds, answered_200, "round {round}: {detail}");
            assert_eq!(
                detail["payment"]["amount_refunded"],
                format!("{}.00", answered_200 * 4),
                "round {round}: {detail}"
            );
        }
    });
}

/// The CSV streams page after page (chunked, never one buffer): 1 201 payments over
/// seven storage pages come out whole and in order, newest first.
#[tokio::test]
async fn the_csv_export_streams_every_page() {
    let Some(app) = crate::helpers::TestApp::spawn(crate::helpers::Backend::Sqlite).await else {
        return;
    };
    let dr = app.practitioner("Dr Estival").await;
    app.link_stripe(&dr).await;
    let mut ids = Vec::new();
    for _ in 0..1201 {
        let (status, scheduled) = app.schedule(&dr, &dr, json!({ "mode": "online" })).await;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(scheduled["payment"]["id"].as_str().expect("id").to_owned());
    }
    let csv = app
        .client
        .get(app.url("/api/v1/payments.csv"))
        .bearer_auth(&dr.token)
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers().get("content-length").is_none(),
        "streamed, not buffered: {:?}",
        csv.headers()
    );
    let text = csv.text().await.expect("csv text");
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 1201);
    ids.reverse();
    for (row, id) in rows.iter().zip(&ids) {
        assert!(row.starts_with(id.as_str()), "{row} should be {id}");
    }
    app.stop().await;
}

/// Scheduling retried with its `Idempotency-Key` (a burst of 20 at once, then once
/// more later) answers the same consultation with the same pay link, and that link
/// works: a replay changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_scheduling_answers_the_same_working_pay_link() {
    on_every_backend!(|app| {
        let dr = app.practitioner("Dr Estival").await;
        app.link_stripe(&dr).await;
        let body = json!({
            "practitioner_id": dr.id,
            "patient": { "display_name": "M. Dupont" },
            "starts_at": (app.clock_now() + chrono::Duration::hours(2)).to_rfc3339(),
            "payment": { "mode": "online" },
        });
        let post = || {
            app.client
                .post(app.url("/api/v1/consultations"))
                .bearer_auth(&dr.token)
                .header("Idempotency-Key", "appointment-42")
                .json(&body)
                .send()
        };
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..20 {
            burst.spawn(post());
        }
        let mut answers = Vec::new();
        while let Some(resp) = burst.join_next().await {
            let resp = resp.expect("joined").expect("schedule");
            let status = resp.status();
            let answer: serde_json::Value = resp.json().await.expect("json");
            // The key is either done (the same answer) or still in flight (409, retry).
            if status == StatusCode::CONFLICT {
                assert_eq!(answer["code"], "idempotency_key_in_flight", "{answer}");
                continue;
            }
            assert!(status.is_success(), "{status} {answer}");
            answers.push((answer["id"].clone(), answer["pay_token"].clone()));
        }
        let later: serde_json::Value = post().await.expect("replay").json().await.expect("json");
        answers.push((later["id"].clone(), later["pay_token"].clone()));
        let first = answers[0].clone();
        assert!(answers.iter().all(|a| *a == first), "{answers:?}");
        let token = first.1.as_str().expect("pay token");
        let (status, page) = app.get(&format!("/api/v1/pay/{token}"), None).await;
        assert_eq!(status, StatusCode::OK, "the link handed out works: {page}");
        let (_, upcoming) = app.get("/api/v1/consultations", Some(&dr.token)).await;
        assert_eq!(
            upcoming.as_array().map(Vec::len),
            Some(1),
            "one consultation: {upcoming}"
        );
    });
}
