//! The consultation's day through HTTP with the sandbox test clock: the pass to the
//! video room (verified by PyJWT, an independent implementation), the cancellation
//! policy the patient accepts, cancellation by either side, no-show with each policy,
//! rescheduling inside and beyond the hold's life, and who may do what.

use app::config::{Config, Secret};
use chrono::Duration;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, Staff, TestApp, backends, peers_python, plain, pyjwt};

const VIDEO_URL: &str = "https://meet.example.org/{room}?jwt={jwt}";
const VIDEO_SECRET: &str = "a jitsi app_secret of 32 bytes or more";

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

fn with_shared_secret(c: &mut Config) {
    c.video_url = Some(VIDEO_URL.into());
    c.video_jwt_secret = Some(Secret::new(VIDEO_SECRET));
}

/// A linked practitioner with 25.00 EUR caps and this cancellation policy.
async fn practice(app: &TestApp, policy: Value) -> Staff {
    let dr = app.practitioner("Dr Estival").await;
    app.link_stripe(&dr).await;
    let (status, body) = app
        .put(
            &format!("/api/v1/practitioners/{}/preferences", dr.id),
            Some(&dr.token),
            json!({
                "default_amount": "25.00",
                "max_amount": "25.00",
                "currency": "EUR",
                "cancellation": policy,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cancellation"], policy_view(&policy), "{body}");
    dr
}

fn policy_view(input: &Value) -> Value {
    json!({
        "free_hours": input["free_hours"],
        "fee": input["fee"],
        "fee_amount": input.get("fee_amount").cloned().unwrap_or(Value::Null),
    })
}

fn fixed(amount: &str) -> Value {
    json!({ "free_hours": 24, "fee": "fixed", "fee_amount": amount })
}

/// A consultation at `in_` from now, online, paid with a card that holds: (id, pay
/// token).
async fn paid_at(app: &TestApp, dr: &Staff, in_: Duration) -> (String, String) {
    let (status, scheduled) = app
        .schedule_at(dr, dr, json!({ "mode": "online" }), app.clock_now() + in_)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{scheduled}");
    let token = s(&scheduled["pay_token"]);
    app.pay(&token, "pm_card_visa").await;
    assert_eq!(app.pay_page(&token).await["status"], "authorized");
    (s(&scheduled["id"]), token)
}

async fn pass(app: &TestApp, token: &str) -> (StatusCode, Value) {
    app.get(&format!("/api/v1/pay/{token}/pass"), None).await
}

fn refused(resp: (StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(resp.0, status, "{}", resp.1);
    assert_eq!(resp.1["code"], code, "{}", resp.1);
}

async fn history(app: &TestApp, dr: &Staff, consultation: &str) -> Vec<String> {
    let payment = app.consultation(dr, consultation).await["payment"]["id"].clone();
    let (status, detail) = app
        .get(
            &format!("/api/v1/payments/{}", s(&payment)),
            Some(&dr.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| s(&h["event"]))
        .collect()
}

/// PyJWT's verdict on `jwt` as of `at` (unix seconds) for `room`.
fn verdict(python: &std::path::Path, jwt: &str, at: i64, room: &str, key: &[&str]) -> Value {
    let at = at.to_string();
    let mut args = vec!["verify", "--jwt", jwt, "--at", &at, "--room", room];
    args.extend_from_slice(key);
    pyjwt(python, &args)
}

fn refused_by_pyjwt(v: &Value, error: &str) {
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"], error, "{v}");
}

/// The JWT with one character of its signature changed.
fn tampered(jwt: &str) -> String {
    let mut chars: Vec<char> = jwt.chars().collect();
    let i = chars.len() - 3;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[tokio::test]
async fn the_hs256_pass_is_issued_only_once_paid_within_the_window_and_pyjwt_checks_it() {
    let Some(python) = peers_python() else { return };
    let app = TestApp::spawn_with(Backend::Sqlite, with_shared_secret)
        .await
        .expect("server");
    let dr = practice(&app, fixed("15.00")).await;
    let start = app.clock_now() + Duration::hours(2);
    let (_, scheduled) = app
        .schedule_at(&dr, &dr, json!({ "mode": "online" }), start)
        .await;
    let (id, token) = (s(&scheduled["id"]), s(&scheduled["pay_token"]));

    // No pass before the hold, even in the window.
    refused(
        pass(&app, &token).await,
        StatusCode::PAYMENT_REQUIRED,
        "payment_required",
    );
    app.pay(&token, "pm_card_visa").await;
    // Paid, but the window opens 15 minutes before the start.
    refused(pass(&app, &token).await, StatusCode::CONFLICT, "too_early");
    app.advance_clock(Duration::minutes(110)).await;
    let (status, p) = pass(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let (jwt, room) = (s(&p["jwt"]), s(&p["room"]));
    assert!(room.starts_with("cp-") && room.len() == 35, "{room}");
    assert_eq!(
        s(&p["url"]),
        VIDEO_URL.replace("{room}", &room).replace("{jwt}", &jwt)
    );

    let now = app.clock_now().timestamp();
    let key = ["--secret", VIDEO_SECRET];
    let ok = verdict(&python, &jwt, now, &room, &key);
    assert_eq!(ok["ok"], true, "{ok}");
    let claims = &ok["claims"];
    assert_eq!(claims["iss"], "consultpay");
    assert_eq!(claims["aud"], "jitsi");
    assert_eq!(claims["sub"], "meet.example.org");
    assert_eq!(claims["moderator"], false);
    assert_eq!(claims["context"]["user"]["name"], "M. Dupont");
    assert_eq!(claims["nbf"], (start - Duration::minutes(15)).timestamp());
    assert_eq!(claims["exp"], (start + Duration::minutes(60)).timestamp());
    assert_eq!(ok["header"]["alg"], "HS256");

    // What a platform must refuse, PyJWT refuses.
    let exp = claims["exp"].as_i64().expect("exp");
    let nbf = claims["nbf"].as_i64().expect("nbf");
    refused_by_pyjwt(
        &verdict(&python, &jwt, exp + 1, &room, &key),
        "ExpiredSignatureError",
    );
    refused_by_pyjwt(
        &verdict(&python, &jwt, nbf - 1, &room, &key),
        "ImmatureSignatureError",
    );
    refused_by_pyjwt(
        &verdict(&python, &tampered(&jwt), now, &room, &key),
        "InvalidSignatureError",
    );
    refused_by_pyjwt(
        &verdict(
            &python,
            &jwt,
            now,
            &room,
            &["--secret", "another secret of 32 bytes or more"],
        ),
        "InvalidSignatureError",
    );
    // Another consultation has another room: this pass does not open it.
    let (_, other) = app
        .schedule_at(&dr, &dr, json!({ "mode": "none" }), app.clock_now())
        .await;
    let (status, other_pass) = pass(&app, &s(&other["pay_token"])).await;
    assert_eq!(status, StatusCode::OK, "{other_pass}");
    assert_ne!(other_pass["room"], p["room"]);
    refused_by_pyjwt(
        &verdict(&python, &jwt, now, &s(&other_pass["room"]), &key),
        "InvalidRoom",
    );

    // The practitioner's pass: the same room, as moderator; a secretary gets none.
    let (status, moderator) = app
        .get(&format!("/api/v1/consultations/{id}/pass"), Some(&dr.token))
        .await;
    assert_eq!(status, StatusCode::OK, "{moderator}");
    assert_eq!(moderator["room"], p["room"]);
    let checked = verdict(&python, &s(&moderator["jwt"]), now + 60, &room, &key);
    assert_eq!(checked["claims"]["moderator"], true, "{checked}");
    assert_eq!(checked["claims"]["context"]["user"]["name"], "Dr Estival");
    let secretary = app.secretary(&[&dr]).await;
    refused(
        app.get(
            &format!("/api/v1/consultations/{id}/pass"),
            Some(&secretary.token),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    // After the window: over.
    app.advance_clock(Duration::minutes(71)).await;
    refused(
        pass(&app, &token).await,
        StatusCode::CONFLICT,
        "consultation_over",
    );
    app.stop().await;
}

// PyJWT fetches the JWKS from the server while the test waits for it: the server
// needs a thread of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eddsa_pass_verifies_through_the_published_jwks() {
    let Some(python) = peers_python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("video-2026-11.pem");
    pyjwt_genkey(&python, &key);
    let keys = format!("2026-11={}", key.display());
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.video_url = Some(VIDEO_URL.into());
        c.video_jwt_keys = Some(keys);
    })
    .await
    .expect("server");
    let (status, jwks) = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(status, StatusCode::OK, "{jwks}");
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "{jwks}");
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert_eq!(jwks["keys"][0]["kid"], "2026-11");
    assert!(jwks["keys"][0].get("d").is_none(), "never the private key");

    let dr = practice(&app, fixed("15.00")).await;
    let (_, token) = paid_at(&app, &dr, Duration::minutes(10)).await;
    let (status, p) = pass(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let (jwt, room) = (s(&p["jwt"]), s(&p["room"]));
    let jwks_url = app.url("/.well-known/jwks.json");
    let key = ["--jwks-url", jwks_url.as_str()];
    let now = app.clock_now().timestamp();
    let ok = verdict(&python, &jwt, now, &room, &key);
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["header"]["alg"], "EdDSA");
    assert_eq!(ok["header"]["kid"], "2026-11");
    refused_by_pyjwt(
        &verdict(&python, &tampered(&jwt), now, &room, &key),
        "InvalidSignatureError",
    );
    let exp = ok["claims"]["exp"].as_i64().expect("exp");
    refused_by_pyjwt(
        &verdict(&python, &jwt, exp + 1, &room, &key),
        "ExpiredSignatureError",
    );
    app.stop().await;
}

fn pyjwt_genkey(python: &std::path::Path, path: &std::path::Path) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/verify_pass.py");
    let status = std::process::Command::new(python)
        .arg(script)
        .arg("genkey")
        .arg(path)
        .status()
        .expect("genkey");
    assert!(status.success());
}

#[tokio::test]
async fn the_patient_accepts_the_policy_by_paying_and_cancels_for_free_inside_the_window() {
    for backend in backends() {
        let Some(app) = TestApp::spawn(backend).await else {
            continue;
        };
        let dr = practice(&app, fixed("15.00")).await;
        let (status, scheduled) = app
            .schedule_at(
                &dr,
                &dr,
                json!({ "mode": "online" }),
                app.clock_now() + Duration::days(3),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{scheduled}");
        let (id, token) = (s(&scheduled["id"]), s(&scheduled["pay_token"]));
        let expected = "Annulation gratuite jusqu'à 24 h avant le rendez-vous. En cas \
                        d'absence non excusée ou d'annulation moins de 24 h avant, 15,00 € \
                        pourront être débités.";
        // Stated before paying, on the API and on the page.
        let before = app.pay_page(&token).await;
        assert_eq!(plain(&s(&before["cancellation_policy"])), expected);
        assert_eq!(before["policy_accepted_at"], Value::Null);
        assert!(plain(&app.html(&format!("/pay/{token}")).await).contains(expected));
        app.pay(&token, "pm_card_visa").await;
        // Kept with the payment: what was accepted, and when.
        let after = app.pay_page(&token).await;
        assert_eq!(plain(&s(&after["cancellation_policy"])), expected);
        assert!(after["policy_accepted_at"].is_string(), "{after}");
        assert_eq!(after["can_cancel"], true);

        let (status, cancelled) = app
            .post(&format!("/api/v1/pay/{token}/cancel"), None, json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{cancelled}");
        assert_eq!(cancelled["consultation_status"], "cancelled");
        assert_eq!(cancelled["status"], "released", "released at once, free");
        assert_eq!(cancelled["can_cancel"], false);
        let c = app.consultation(&dr, &id).await;
        assert_eq!(c["status"], "cancelled");
        assert_eq!(c["cancellation"]["by"], "patient");
        assert_eq!(c["cancellation"]["late"], false);
        assert!(
            history(&app, &dr, &id)
                .await
                .contains(&"cancelled".to_owned())
        );
        // Retrying changes nothing; the gate and the pass are closed.
        let (status, again) = app
            .post(&format!("/api/v1/pay/{token}/cancel"), None, json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert_eq!(again["status"], "released");
        let (_, access) = app.get(&format!("/api/v1/pay/{token}/access"), None).await;
        assert_eq!(access["can_enter"], false, "{access}");
        assert_eq!(access["status"], "cancelled");
        let page = plain(&app.html(&format!("/pay/{token}")).await);
        assert!(
            page.contains("Consultation annulée. L'empreinte est libérée"),
            "{page}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn a_late_cancellation_waits_for_the_practitioner_who_may_charge_the_accepted_fee() {
    for backend in backends() {
        let Some(app) = TestApp::spawn(backend).await else {
            continue;
        };
        let dr = practice(&app, fixed("15.00")).await;
        let (id, token) = paid_at(&app, &dr, Duration::hours(2)).await;
        // The practice raises its fee afterwards: the patient keeps what they accepted.
        let (status, _) = app
            .put(
                &format!("/api/v1/practitioners/{}/preferences", dr.id),
                Some(&dr.token),
                json!({ "default_amount": "25.00", "max_amount": "25.00", "currency": "EUR",
                        "cancellation": { "free_hours": 24, "fee": "full_hold" } }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);

        let (status, page) = app
            .post(&format!("/api/v1/pay/{token}/cancel"), None, json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["consultation_status"], "cancelled");
        assert_eq!(page["status"], "authorized", "the practitioner decides");
        let c = app.consultation(&dr, &id).await;
        assert_eq!(c["cancellation"]["late"], true, "{c}");
        assert!(
            history(&app, &dr, &id)
                .await
                .contains(&"cancelled_late".to_owned())
        );
        let text = plain(&app.html(&format!("/pay/{token}")).await);
        assert!(text.contains("Consultation annulée hors délai"), "{text}");

        // A secretary never charges it.
        let secretary = app.secretary(&[&dr]).await;
        refused(
            app.post(
                &format!("/api/v1/consultations/{id}/cancellation-fee"),
                Some(&secretary.token),
                json!({}),
            )
            .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        let (status, charged) = app
            .post(
                &format!("/api/v1/consultations/{id}/cancellation-fee"),
                Some(&dr.token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{charged}");
        assert_eq!(charged["payment"]["status"], "captured", "{charged}");
        assert_eq!(charged["payment"]["amount_captured"], "15.00", "{charged}");
        // The receipt says what it was for: never "consultation".
        let receipt = plain(&app.html(&format!("/pay/{token}/receipt")).await);
        assert!(receipt.contains("Frais d'annulation tardive"), "{receipt}");
        refused(
            app.post(
                &format!("/api/v1/consultations/{id}/cancellation-fee"),
                Some(&dr.token),
                json!({}),
            )
            .await,
            StatusCode::CONFLICT,
            "already_settled",
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn a_no_show_charges_what_each_policy_says_and_only_from_the_start() {
    for backend in backends() {
        let Some(app) = TestApp::spawn(backend).await else {
            continue;
        };
        let dr = app.practitioner("Dr Estival").await;
        app.link_stripe(&dr).await;
        let secretary = app.secretary(&[&dr]).await;
        for (policy, status, captured) in [
            (
                json!({ "free_hours": 24, "fee": "none" }),
                "released",
                "0.00",
            ),
            (fixed("15.00"), "captured", "15.00"),
            (
                json!({ "free_hours": 24, "fee": "full_hold" }),
                "captured",
                "25.00",
            ),
        ] {
            let (code, _) = app
                .put(
                    &format!("/api/v1/practitioners/{}/preferences", dr.id),
                    Some(&dr.token),
                    json!({ "default_amount": "25.00", "max_amount": "25.00",
                            "currency": "EUR", "cancellation": policy }),
                )
                .await;
            assert_eq!(code, StatusCode::OK);
            let (id, token) = paid_at(&app, &dr, Duration::minutes(30)).await;
            let no_show = format!("/api/v1/consultations/{id}/no-show");
            refused(
                app.post(&no_show, Some(&dr.token), json!({})).await,
                StatusCode::CONFLICT,
                "too_early",
            );
            app.advance_clock(Duration::minutes(31)).await;
            refused(
                app.post(&no_show, Some(&secretary.token), json!({})).await,
                StatusCode::FORBIDDEN,
                "forbidden",
            );
            let (code, c) = app.post(&no_show, Some(&dr.token), json!({})).await;
            assert_eq!(code, StatusCode::OK, "{c}");
            assert_eq!(c["status"], "no_show");
            assert_eq!(c["payment"]["status"], status, "{policy}: {c}");
            assert_eq!(c["payment"]["amount_captured"], captured, "{c}");
            assert!(
                history(&app, &dr, &id)
                    .await
                    .contains(&"no_show".to_owned())
            );
            let (_, page) = app.get(&format!("/api/v1/pay/{token}"), None).await;
            assert_eq!(page["consultation_status"], "no_show");
            let text = plain(&app.html(&format!("/pay/{token}?lang=en")).await);
            assert!(text.contains("Marked as missed"), "{text}");
            if status == "captured" {
                let receipt = plain(&app.html(&format!("/pay/{token}/receipt")).await);
                assert!(receipt.contains("Frais d'absence"), "{receipt}");
                let detail = plain(&app.html(&format!("/pay/{token}/receipt?lang=en")).await);
                assert!(!detail.contains("Teleconsultation"), "{detail}");
            }
            // Marking again changes nothing.
            let (code, again) = app.post(&no_show, Some(&dr.token), json!({})).await;
            assert_eq!(code, StatusCode::OK, "{again}");
            assert_eq!(again["payment"]["status"], status);
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn the_practice_cancels_and_reschedules_inside_and_beyond_the_holds_life() {
    for backend in backends() {
        let Some(app) = TestApp::spawn(backend).await else {
            continue;
        };
        let dr = practice(&app, json!({ "free_hours": 24, "fee": "full_hold" })).await;
        let secretary = app.secretary(&[&dr]).await;

        // A secretary cancels: the hold is released, never a fee.
        let (id, token) = paid_at(&app, &dr, Duration::hours(2)).await;
        let (status, c) = app
            .post(
                &format!("/api/v1/consultations/{id}/cancel"),
                Some(&secretary.token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{c}");
        assert_eq!(c["status"], "cancelled");
        assert_eq!(c["cancellation"]["by"], "practice");
        assert_eq!(c["payment"]["status"], "released");
        let page = plain(&app.html(&format!("/pay/{token}")).await);
        assert!(
            page.contains("Votre praticien a annulé cette consultation"),
            "{page}"
        );
        refused(
            app.post(&format!("/api/v1/pay/{token}/cancel"), None, json!({}))
                .await,
            StatusCode::CONFLICT,
            "consultation_cancelled",
        );

        // Rescheduled inside the hold's life: the hold stays as it is.
        let (id, token) = paid_at(&app, &dr, Duration::hours(2)).await;
        let reschedule = format!("/api/v1/consultations/{id}/reschedule");
        let held = app.consultation(&dr, &id).await["payment"].clone();
        let tomorrow = app.clock_now() + Duration::days(1);
        let (status, moved) = app
            .post(
                &reschedule,
                Some(&secretary.token),
                json!({ "starts_at": tomorrow.to_rfc3339() }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{moved}");
        assert_eq!(moved["hold"], "covers");
        assert_eq!(moved["consultation"]["payment"], held, "untouched");
        // In the past: refused.
        refused(
            app.post(
                &reschedule,
                Some(&dr.token),
                json!({ "starts_at": (app.clock_now() - Duration::hours(1)).to_rfc3339() }),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );

        // The patient was told each time, in their language, with their link.
        let (_, messages) = app.get("/api/v1/messages", Some(&dr.token)).await;
        let kinds: Vec<(String, String)> = messages
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| (s(&m["kind"]), plain(&s(&m["subject"]))))
            .collect();
        assert!(
            kinds
                .iter()
                .any(|(k, subject)| k == "cancelled"
                    && subject.starts_with("Téléconsultation annulée")),
            "{kinds:?}"
        );
        assert!(
            kinds.iter().any(|(k, subject)| k == "rescheduled"
                && subject.starts_with("Téléconsultation déplacée au")),
            "{kinds:?}"
        );

        // Beyond it: renewed in time with the saved card, by the hold jobs.
        let later = app.clock_now() + Duration::days(10);
        let (status, moved) = app
            .post(
                &reschedule,
                Some(&dr.token),
                json!({ "starts_at": later.to_rfc3339() }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{moved}");
        assert_eq!(moved["hold"], "renewed_in_time", "{moved}");
        let mut renewed = 0;
        for _ in 0..10 {
            let report = app
                .advance_clock(Duration::days(1) - Duration::minutes(1))
                .await;
            renewed += report["holds_renewed"].as_i64().unwrap_or(0);
        }
        assert!(renewed >= 1, "the hold was renewed before it lapsed");
        let payment = app.consultation(&dr, &id).await["payment"].clone();
        assert_eq!(payment["status"], "authorized", "{payment}");
        assert!(
            history(&app, &dr, &id)
                .await
                .contains(&"rescheduled".to_owned())
        );
        // At the new time, the patient enters.
        let (_, access) = app.get(&format!("/api/v1/pay/{token}/access"), None).await;
        assert_eq!(access["can_enter"], true, "{access}");
        assert_eq!(access["waiting_room"], true, "{access}");
        app.stop().await;
    }
}

#[tokio::test]
async fn the_new_endpoints_keep_each_practice_to_itself() {
    let app = TestApp::spawn_with(Backend::Sqlite, with_shared_secret)
        .await
        .expect("server");
    let dr = practice(&app, fixed("15.00")).await;
    let other = app.practitioner("Dr Autre").await;
    let other_secretary = app.secretary(&[&other]).await;
    let (id, token) = paid_at(&app, &dr, Duration::minutes(5)).await;
    let posts = [
        "start",
        "cancel",
        "no-show",
        "cancellation-fee",
        "reschedule",
    ];
    for who in [&other, &other_secretary] {
        for action in posts {
            refused(
                app.post(
                    &format!("/api/v1/consultations/{id}/{action}"),
                    Some(&who.token),
                    json!({ "starts_at": (app.clock_now() + Duration::days(1)).to_rfc3339() }),
                )
                .await,
                StatusCode::NOT_FOUND,
                "not_found",
            );
        }
        refused(
            app.get(
                &format!("/api/v1/consultations/{id}/pass"),
                Some(&who.token),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    // A pay token is not a staff credential; no credential is no access.
    for token in [Some(token.as_str()), None] {
        let (status, _) = app
            .post(
                &format!("/api/v1/consultations/{id}/start"),
                token,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Starting: the practitioner only, and the patient's waiting room follows.
    let secretary = app.secretary(&[&dr]).await;
    refused(
        app.post(
            &format!("/api/v1/consultations/{id}/start"),
            Some(&secretary.token),
            json!({}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let (_, access) = app.get(&format!("/api/v1/pay/{token}/access"), None).await;
    assert_eq!(access["started"], false, "{access}");
    assert_eq!(access["video"], true, "{access}");
    let (status, started) = app
        .post(
            &format!("/api/v1/consultations/{id}/start"),
            Some(&dr.token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert!(started["pass"]["jwt"].is_string(), "{started}");
    assert!(started["consultation"]["started_at"].is_string());
    let (_, access) = app.get(&format!("/api/v1/pay/{token}/access"), None).await;
    assert_eq!(access["started"], true, "{access}");
    // Without JavaScript, "Join" hands over to the platform with the patient's pass.
    let join = app
        .client
        .get(app.url(&format!("/pay/{token}/join")))
        .send()
        .await
        .expect("join");
    assert_eq!(join.status(), StatusCode::SEE_OTHER);
    let location = join.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(
        location.starts_with("https://meet.example.org/cp-"),
        "{location}"
    );
    app.stop().await;
}
