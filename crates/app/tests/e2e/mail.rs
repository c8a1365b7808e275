//! E-mail through the outbox, end to end on SQLite and PostgreSQL, received by a real
//! SMTP server (aiosmtpd): who gets what, in which language, with which link and
//! attachment; nothing lost while the server is down; a message sent again after a
//! crash is the same message.

use std::time::Duration as Wait;

use app::config::Secret;
use billing_core::outbox::{Mailer, OutboxRepository};
use chrono::Duration;
use mail_smtp::SmtpMailer;
use mail_smtp::peer::{Received, SmtpPeer};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, backends, pdf_text};

const FROM: &str = "Cabinet Estival <no-reply@cabinet.example.org>";

async fn with_mail(backend: Backend, peer: &SmtpPeer) -> Option<TestApp> {
    let url = peer.url();
    TestApp::spawn_with(backend, move |c| {
        c.smtp_url = Some(Secret::new(url));
        c.mail_from = Some(FROM.to_owned());
        c.mail_interval_secs = 0;
    })
    .await
}

async fn deliver(app: &TestApp) -> billing_core::outbox::DeliveryReport {
    app.app
        .billing
        .outbox
        .deliver_due()
        .await
        .expect("delivery")
}

fn wait(peer: &SmtpPeer, n: usize) -> Vec<Received> {
    let got = peer.wait_for(n, Wait::from_secs(10));
    assert_eq!(got.len(), n, "{got:#?}");
    got
}

#[tokio::test]
async fn each_step_mails_the_patient_in_their_language_and_the_practitioner_hears_of_trouble() {
    for backend in backends() {
        let Some(peer) = SmtpPeer::start() else {
            return;
        };
        let Some(app) = with_mail(backend, &peer).await else {
            continue;
        };
        let dr = app.practitioner("Dr Estival").await;
        app.link_stripe(&dr).await;
        app.set_amounts(&dr, "25.00", "25.00").await;
        let (status, _) = app
            .put(
                &format!("/api/v1/practitioners/{}/profile", dr.id),
                Some(&dr.token),
                json!({ "email": "cabinet@example.org" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, scheduled) = app
            .post(
                "/api/v1/consultations",
                Some(&dr.token),
                json!({
                    "practitioner_id": dr.id,
                    "patient": { "display_name": "Mrs Smith", "email": "smith@example.org", "lang": "en" },
                    "starts_at": (app.clock_now() + Duration::hours(2)).to_rfc3339(),
                    "payment": { "mode": "online" },
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{scheduled}");
        let pay_url = scheduled["pay_url"].as_str().expect("pay_url").to_owned();
        let token = scheduled["pay_token"].as_str().expect("token").to_owned();
        let consultation = scheduled["id"].as_str().expect("id").to_owned();
        let payment = scheduled["payment"]["id"]
            .as_str()
            .expect("payment")
            .to_owned();

        // Scheduled: the pay link, in English, from the practice's sender.
        assert_eq!(deliver(&app).await.sent, 1);
        let m = &wait(&peer, 1)[0];
        assert_eq!(m.to.as_deref(), Some("smith@example.org"));
        assert_eq!(m.from.as_deref(), Some("no-reply@cabinet.example.org"));
        assert_eq!(m.content_language.as_deref(), Some("en"));
        assert!(
            m.subject
                .as_deref()
                .unwrap_or_default()
                .starts_with("Your teleconsultation with Dr Estival"),
            "{m:?}"
        );
        assert!(m.text.contains(&pay_url), "the live link: {}", m.text);
        assert!(m.text.contains("(Europe/Paris)"), "{}", m.text);

        // The link, shown again to staff, is the same.
        let (_, link) = app
            .get(
                &format!("/api/v1/consultations/{consultation}/pay-link"),
                Some(&dr.token),
            )
            .await;
        assert_eq!(link["pay_url"], pay_url.as_str());

        // Held, then validated: the hold's confirmation, then the receipt as PDF.
        app.pay(&token, "pm_card_visa").await;
        let (status, _) = app
            .post(
                &format!("/api/v1/consultations/{consultation}/validate"),
                Some(&dr.token),
                json!({ "amount": "18.00" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(deliver(&app).await.sent, 2);
        let got = wait(&peer, 3);
        assert!(
            got[1]
                .subject
                .as_deref()
                .unwrap_or_default()
                .contains("Card hold in place"),
            "{:?}",
            got[1]
        );
        let receipt = got
            .iter()
            .find(|m| !m.attachments.is_empty())
            .expect("the receipt mail");
        assert!(
            receipt.text.contains("€18.00 was charged"),
            "{}",
            receipt.text
        );
        let (name, pdf) = &receipt.attachments[0];
        assert!(
            name.starts_with("receipt-") && name.ends_with("-000001.pdf"),
            "{name}"
        );
        if let Some(text) = pdf_text(pdf) {
            assert!(text.contains("Receipt (note d'honoraires)"), "{text}");
        }

        // A refund: the credit note.
        let (status, _) = app
            .post(
                &format!("/api/v1/payments/{payment}/refunds"),
                Some(&dr.token),
                json!({ "amount": "5.00" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        deliver(&app).await;
        let got = wait(&peer, 4);
        let note = &got[3];
        assert!(
            note.subject
                .as_deref()
                .unwrap_or_default()
                .contains("Refund of €5.00"),
            "{note:?}"
        );
        assert!(
            note.attachments[0].0.starts_with("credit-note-"),
            "{:?}",
            note.attachments
        );

        // Staff send the link again; nothing is ever sent twice.
        let (status, _) = app
            .post(
                &format!("/api/v1/consultations/{consultation}/pay-link/email"),
                Some(&dr.token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        deliver(&app).await;
        assert_eq!(deliver(&app).await.sent, 0);
        let got = wait(&peer, 5);
        assert!(got[4].text.contains(&pay_url));
        let ids: std::collections::HashSet<_> = got.iter().map(|m| m.message_id.clone()).collect();
        assert_eq!(ids.len(), 5, "five distinct messages");
        let (_, listed) = app.get("/api/v1/messages", Some(&dr.token)).await;
        let listed = listed.as_array().expect("messages");
        assert_eq!(listed.len(), 5);
        assert!(listed.iter().all(|m| m["status"] == "sent"), "{listed:?}");

        // A secretary may send the link; another practitioner may not see or send.
        let other = app.practitioner("Dr Autre").await;
        let (status, _) = app
            .post(
                &format!("/api/v1/consultations/{consultation}/pay-link/email"),
                Some(&other.token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, theirs) = app.get("/api/v1/messages", Some(&other.token)).await;
        assert_eq!(theirs, json!([]));
        app.stop().await;
    }
}

#[tokio::test]
async fn nothing_is_lost_while_the_mail_server_is_down_and_a_resent_message_is_the_same_message() {
    for backend in backends() {
        let Some(mut peer) = SmtpPeer::start() else {
            return;
        };
        let Some(app) = with_mail(backend, &peer).await else {
            continue;
        };
        let (_dr, _) = app.paid_consultation().await;

        // Down: the pay link waits, its attempt counted.
        peer.stop();
        let report = deliver(&app).await;
        assert_eq!((report.sent, report.retried), (0, 1));
        peer.resume();
        assert_eq!(deliver(&app).await.sent, 0, "not due before its backoff");
        app.advance_clock(Duration::minutes(1)).await;
        let got = wait(&peer, 1);
        assert!(got[0].text.contains("/pay/"));

        // A server claims a message, sends it, and dies before marking it sent.
        let (_dr2, _) = app.paid_consultation().await;
        let now = app.clock_now();
        let claimed = app
            .app
            .store
            .claim_due(now, now + Duration::minutes(2), "dead-server", 10)
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1);
        let email = app
            .app
            .billing
            .outbox
            .email(&claimed[0].message)
            .await
            .expect("email");
        SmtpMailer::new(&peer.url(), FROM)
            .expect("mailer")
            .send(&email)
            .await
            .expect("the dead server's send");
        assert_eq!(deliver(&app).await.sent, 0, "its lease holds");
        // Its lease runs out: another server sends it again, as the same message.
        app.advance_clock(Duration::minutes(3)).await;
        let got = wait(&peer, 3);
        assert_eq!(
            got[1].message_id, got[2].message_id,
            "one message, delivered twice"
        );
        assert_eq!(got[1].subject, got[2].subject);
        assert_eq!(deliver(&app).await.sent, 0, "and marked sent");
        app.stop().await;
    }
}

/// "Mot de passe oublié": the e-mail goes out through the outbox to a real SMTP
/// server with a link made when it is sent; the link sets a new password once; an
/// unknown address gets the same answer and no e-mail.
#[tokio::test]
async fn a_forgotten_password_is_reset_from_the_emailed_link() {
    let Some(peer) = SmtpPeer::start() else {
        return;
    };
    let Some(app) = with_mail(Backend::Sqlite, &peer).await else {
        return;
    };
    let dr = app.practitioner("Dr Estival").await;
    app.set_password(&dr, "camille@example.org", "correct horse battery")
        .await;
    let ask = |email: &'static str| {
        let (client, url) = (
            reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .expect("client"),
            app.url("/dashboard/forgot"),
        );
        async move {
            let page = client
                .get(&url)
                .send()
                .await
                .expect("page")
                .text()
                .await
                .expect("html");
            let csrf = crate::helpers::csrf_token(&page);
            let resp = client
                .post(&url)
                .form(&[("csrf_token", csrf.as_str()), ("email", email)])
                .send()
                .await
                .expect("form");
            (resp.status(), resp.text().await.unwrap_or_default())
        }
    };
    let (known, known_page) = ask("camille@example.org").await;
    let (unknown, unknown_page) = ask("nobody@example.org").await;
    assert_eq!((known, unknown), (StatusCode::OK, StatusCode::OK));
    let sent = |page: &str| {
        crate::helpers::plain(page.split("id=\"forgot-sent\"").nth(1).unwrap_or_default())
    };
    assert_eq!(sent(&known_page), sent(&unknown_page), "the same answer");
    assert_eq!(
        deliver(&app).await.sent,
        1,
        "one e-mail: the known address's"
    );
    let got = wait(&peer, 1);
    assert_eq!(got[0].to.as_deref(), Some("camille@example.org"));
    let link = got[0]
        .text
        .split_whitespace()
        .find(|w| w.contains("/dashboard/password/cpl_"))
        .expect("a link")
        .to_owned();
    let path = link.strip_prefix(&app.url("")).unwrap_or(&link).to_owned();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client");
    let page = browser
        .get(app.url(&path))
        .send()
        .await
        .expect("link")
        .text()
        .await
        .expect("html");
    let csrf = crate::helpers::csrf_token(&page);
    let set = browser
        .post(app.url(&path))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("password", "another horse battery"),
            ("confirm", "another horse battery"),
        ])
        .send()
        .await
        .expect("set");
    assert_eq!(set.status(), StatusCode::SEE_OTHER);
    assert!(
        app.app
            .billing
            .sessions
            .sign_in_with_password("camille@example.org", "another horse battery", None)
            .await
            .is_ok()
    );
    assert_eq!(
        browser
            .get(app.url(&path))
            .send()
            .await
            .expect("again")
            .status(),
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}
