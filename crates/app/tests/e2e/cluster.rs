//! Several servers on one database, and servers that stop: the sandbox's payments
//! survive a restart and work through any server; a server killed in the middle of a
//! job leaves nothing stuck (its claim lapses and another server does the job once).

use std::process::{Child, Command, Stdio};
use std::time::Duration as Wait;

use app::config::Secret;
use chrono::Duration;
use mail_smtp::peer::SmtpPeer;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, backends, postgres_server};

/// A second server on `first`'s database (as a restart, or a second instance behind
/// the load balancer, would be): its sandbox starts with nothing in memory.
async fn beside(first: &TestApp, backend: Backend) -> TestApp {
    let url = first.config.database_url.clone();
    TestApp::spawn_with(backend, move |c| c.database_url = url)
        .await
        .expect("the first server's backend is available")
}

#[tokio::test]
async fn a_sandbox_payment_survives_a_restart_and_works_through_either_server() {
    for backend in backends() {
        let Some(first) = TestApp::spawn(backend).await else {
            continue;
        };
        let (dr, scheduled) = first.paid_consultation().await;
        let token = scheduled["pay_token"].as_str().expect("token").to_owned();
        let id = scheduled["id"].as_str().expect("id").to_owned();
        first.pay(&token, "pm_card_visa").await;

        let second = beside(&first, backend).await;
        // The hold placed through the first server is captured through the second.
        let (status, validated) = second
            .post(
                &format!("/api/v1/consultations/{id}/validate"),
                Some(&dr.token),
                json!({ "amount": "18.00" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {validated}");
        assert_eq!(validated["status"], "captured", "{validated}");
        assert_eq!(validated["amount_captured"], "18.00");
        assert_eq!(validated["fee"], "0.50");

        // And refunded through the first.
        let payment = validated["id"].as_str().expect("payment id");
        let (status, refunded) = first
            .post(
                &format!("/api/v1/payments/{payment}/refunds"),
                Some(&dr.token),
                json!({ "amount": "5.00" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {refunded}");
        assert_eq!(refunded["amount_refunded"], "5.00", "{refunded}");

        // A hold placed through the second server is renewed by the first server's jobs
        // when it moves the test clock (the card was saved), and the second server
        // captures the renewed hold, which only the first one ever saw being made.
        let (_, other) = second.schedule(&dr, &dr, json!({ "mode": "online" })).await;
        let other_token = other["pay_token"].as_str().expect("token").to_owned();
        let other_id = other["id"].as_str().expect("id").to_owned();
        second.pay(&other_token, "pm_card_visa").await;
        let held = second.consultation(&dr, &other_id).await;
        first.advance_clock(Duration::days(8)).await;
        let renewed = second.consultation(&dr, &other_id).await;
        assert_eq!(
            renewed["payment"]["status"], "authorized",
            "{backend:?}: {renewed}"
        );
        assert_ne!(
            renewed["payment"]["intent_id"],
            held["payment"]["intent_id"]
        );
        let (status, validated) = second
            .post(
                &format!("/api/v1/consultations/{other_id}/validate"),
                Some(&dr.token),
                json!({ "amount": "10.00" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {validated}");
        assert_eq!(validated["amount_captured"], "10.00");

        second.stop().await;
        first.stop().await;
    }
}

/// A TCP server that accepts and then never says a word: an SMTP server that hangs.
async fn black_hole() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("smtp://{}", listener.local_addr().expect("local address"));
    (listener, url)
}

/// The `consultpay` binary serving `database_url` in sandbox mode, sending mail every
/// second through `smtp_url`.
fn server_process(database_url: &str, smtp_url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_consultpay"))
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("CONSULTPAY_LISTEN", "127.0.0.1:0")
        .env("CONSULTPAY_ADMIN_LISTEN", "off")
        .env("CONSULTPAY_DEMO", "false")
        .env("CONSULTPAY_RECONCILE_INTERVAL_SECS", "0")
        .env("CONSULTPAY_SMTP_URL", smtp_url)
        .env(
            "CONSULTPAY_MAIL_FROM",
            "Cabinet <no-reply@cabinet.example.org>",
        )
        .env("CONSULTPAY_MAIL_INTERVAL_SECS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the consultpay binary starts")
}

#[tokio::test]
async fn a_server_killed_in_the_middle_of_a_job_leaves_nothing_stuck() {
    if postgres_server().is_none() {
        return;
    }
    let Some(peer) = SmtpPeer::start() else {
        return;
    };
    let url = peer.url();
    let Some(app) = TestApp::spawn_with(Backend::Postgres, move |c| {
        c.smtp_url = Some(Secret::new(url));
        c.mail_from = Some("Cabinet <no-reply@cabinet.example.org>".into());
        c.mail_interval_secs = 0;
    })
    .await
    else {
        return;
    };
    // Scheduled for a patient with an e-mail address: the pay link is queued.
    app.paid_consultation().await;

    // Another server takes the pay link to send it, and hangs on an SMTP server that
    // never answers: killed there (SIGKILL), in the middle of the job.
    let (hole, hole_url) = black_hole().await;
    let mut killed = server_process(app.config.database_url.expose(), &hole_url);
    let accepted = tokio::time::timeout(Wait::from_secs(60), hole.accept()).await;
    killed.kill().expect("kill the server");
    let _ = killed.wait();
    assert!(
        matches!(accepted, Ok(Ok(_))),
        "the killed server was sending: {accepted:?}"
    );

    // Its claim holds the message for its lease: nobody sends it twice meanwhile…
    let outbox = &app.app.billing.outbox;
    assert_eq!(outbox.deliver_due().await.expect("delivery").sent, 0);
    // …and once the lease is over, this server sends it, once.
    app.advance_clock(Duration::minutes(6)).await;
    assert_eq!(
        outbox.deliver_due().await.expect("delivery").sent,
        0,
        "sent by the clock's jobs already"
    );
    let got = peer.wait_for(1, Wait::from_secs(10));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].to.as_deref(), Some("dupont@example.org"));
    tokio::time::sleep(Wait::from_millis(300)).await;
    assert_eq!(peer.received().len(), 1, "sent once");
    app.stop().await;
}
