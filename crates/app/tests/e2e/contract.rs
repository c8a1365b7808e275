//! The OpenAPI document is the contract: schemathesis (an independent tool, from PyPI,
//! installed by `cargo xtask peers`) generates requests from it — valid ones, invalid
//! ones, undeclared methods, sequences — against the running server, with every check
//! (server errors, response schemas, status codes, headers, negative data rejected,
//! positive data accepted), and must find nothing. Bounded: a fixed number of
//! examples per operation, a fixed seed.

use std::time::Instant;

use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, peers_python};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_against_the_openapi_document() {
    let Some(python) = peers_python() else { return };
    let st = python.with_file_name("st");
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        // It sends many failing look-ups on purpose: quotas are the rate limits' test.
        c.rate_limit_pay = 0;
        c.rate_limit_sign_in = 0;
        c.rate_limit_webhooks = 0;
    })
    .await
    .expect("server");
    let dr = app.practitioner("Dr Schema").await;
    app.link_stripe(&dr).await;
    let (status, _) = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let config =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/schemathesis.toml");
    let work = tempfile::tempdir().expect("work dir");
    let args = vec![
        "--config-file".to_owned(),
        config.display().to_string(),
        "run".to_owned(),
        app.url("/api/v1/openapi.json"),
        "--header".to_owned(),
        format!("Authorization: Bearer {}", dr.token),
        "--checks".to_owned(),
        "all".to_owned(),
        "--max-examples".to_owned(),
        "25".to_owned(),
        "--seed".to_owned(),
        "20261127".to_owned(),
        "--workers".to_owned(),
        "1".to_owned(),
        "--generation-database".to_owned(),
        "none".to_owned(),
        "--no-color".to_owned(),
    ];
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(st)
            .args(&args)
            .current_dir(work.path())
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .output()
            .expect("run schemathesis")
    })
    .await
    .expect("joined");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "schemathesis ran in {} s:\n{}",
        started.elapsed().as_secs(),
        report
            .lines()
            .rev()
            .take(14)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop().await;
}
