//! Staff tokens over their life: the operator's `consultpay user` commands, and what a
//! rotated or revoked token does to the API and to open dashboard sessions.

use std::path::Path;
use std::process::Command;

use app::config::{Config, DatabaseUrl};
use app::wiring::App;
use billing_core::ids::UserId;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, csrf_token};

/// Runs the `consultpay` binary on `db` with nothing else from the environment;
/// returns its stdout lines as JSON.
fn consultpay(dir: &Path, db: &str, args: &[&str]) -> Vec<Value> {
    consultpay_with_stdin(dir, db, args, "")
}

/// Runs the CLI with `stdin` as its standard input; asserts it succeeds and returns
/// its JSON lines.
fn consultpay_with_stdin(dir: &Path, db: &str, args: &[&str], stdin: &str) -> Vec<Value> {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_consultpay"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("DATABASE_URL", db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("consultpay runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("consultpay ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "consultpay {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}

#[tokio::test]
async fn the_operator_adds_lists_rotates_and_revokes_staff_tokens_from_the_cli() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
    let run = |args: &[&str]| consultpay(dir.path(), &db, args);

    let dr = run(&[
        "user",
        "add",
        "--role",
        "practitioner",
        "--name",
        "Dr Estival",
    ]);
    let dr_id = str_of(&dr[0], "id").to_owned();
    assert!(
        dr[0].get("invite_url").is_none(),
        "no e-mail, no invitation"
    );
    let sec = run(&[
        "user",
        "add",
        "--role",
        "secretary",
        "--name",
        "Accueil",
        "--for",
        &dr_id,
    ]);
    let sec_id = str_of(&sec[0], "id").to_owned();
    let old_token = str_of(&sec[0], "token").to_owned();

    let listed = run(&["user", "list"]);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["id"], dr_id.as_str());
    assert_eq!(listed[0]["role"], "practitioner");
    assert_eq!(listed[0]["practitioners"], Value::Null);
    assert_eq!(listed[1]["id"], sec_id.as_str());
    assert_eq!(listed[1]["role"], "secretary");
    assert_eq!(listed[1]["practitioners"], serde_json::json!([dr_id]));
    assert!(listed.iter().all(|u| u["live_tokens"] == 1), "{listed:?}");

    let revoked = run(&["user", "revoke", &sec_id]);
    assert_eq!(revoked[0]["revoked_tokens"], 1);
    assert_eq!(run(&["user", "list"])[1]["live_tokens"], 0);

    // The operator sets the secretary's e-mail and password (read from stdin).
    let set = consultpay_with_stdin(
        dir.path(),
        &db,
        &[
            "user",
            "set-password",
            &sec_id,
            "--email",
            "Accueil@Example.org",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    assert_eq!(set[0]["email"], "accueil@example.org");

    let rotated = run(&["user", "rotate-token", &sec_id]);
    assert_eq!(str_of(&rotated[0], "id"), sec_id);
    let new_token = str_of(&rotated[0], "token").to_owned();
    assert_ne!(new_token, old_token);
    assert_eq!(run(&["user", "list"])[1]["live_tokens"], 1);

    // What the CLI printed is what the server accepts.
    let config = Config {
        database_url: DatabaseUrl::new(db.clone()),
        demo: false,
        ..Config::default()
    };
    let app = App::build(&config)
        .await
        .expect("app on the CLI's database");
    let staff = &app.billing.staff;
    assert!(staff.authenticate(Some(&new_token)).await.is_ok());
    let err = staff.authenticate(Some(&old_token)).await.unwrap_err();
    assert_eq!(err.code(), "unauthenticated");
    let sessions = &app.billing.sessions;
    assert!(
        sessions
            .sign_in_with_password("accueil@example.org", "correct horse battery", None)
            .await
            .is_ok()
    );
    let err = sessions
        .sign_in_with_password("accueil@example.org", "correct horse batter", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unauthenticated");
    let _ = app.store.clone().close().await;

    // An unknown id is a clear failure, not a silent success.
    let out = Command::new(env!("CARGO_BIN_EXE_consultpay"))
        .args(["user", "revoke", &uuid::Uuid::new_v4().to_string()])
        .current_dir(dir.path())
        .env_clear()
        .env("DATABASE_URL", &db)
        .output()
        .expect("consultpay runs");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}

#[tokio::test]
async fn a_rotated_token_ends_the_old_one_on_the_api_and_in_open_dashboard_sessions() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    let preferences = format!("/api/v1/practitioners/{}/preferences", dr.id);

    // A dashboard session opened with the token.
    t.sign_in(&dr).await;
    let dashboard = t
        .client
        .get(t.url("/dashboard"))
        .send()
        .await
        .expect("dashboard");
    assert_eq!(dashboard.status(), StatusCode::OK);

    let id: UserId = dr.id.parse().expect("user id");
    let rotated = t.app.billing.staff.rotate_token(id).await.expect("rotated");

    let (status, body) = t.get(&preferences, Some(&dr.token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = t.get(&preferences, Some(rotated.token.expose())).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The open session held the old token: its next page asks to sign in again.
    let after = t
        .client
        .get(t.url("/dashboard"))
        .send()
        .await
        .expect("dashboard");
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    let location = after
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default();
    assert!(location.starts_with("/dashboard/login"), "{location}");

    t.app
        .billing
        .staff
        .revoke_tokens(id)
        .await
        .expect("revoked");
    let (status, _) = t.get(&preferences, Some(rotated.token.expose())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    t.stop().await;
}

#[tokio::test]
async fn signing_out_ends_the_dashboard_session_in_the_cookie_jar() {
    let Some(t) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let dr = t.practitioner("Dr Estival").await;
    t.sign_in(&dr).await;
    let csrf = csrf_token(&t.html("/dashboard").await);
    let out = t
        .submit("/dashboard/logout", &[("csrf_token", csrf.as_str())])
        .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    // The session cookie the jar keeps (Path=/) no longer signs anyone in.
    let after = t
        .client
        .get(t.url("/dashboard"))
        .send()
        .await
        .expect("page");
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    t.stop().await;
}

#[test]
fn openapi_prints_the_document_without_touching_the_configured_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("untouched.db");
    let out = Command::new(env!("CARGO_BIN_EXE_consultpay"))
        .arg("openapi")
        .current_dir(dir.path())
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", db.display()),
        )
        .output()
        .expect("consultpay runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert!(
        spec["paths"]["/api/v1/consultations/{id}/validate"].is_object(),
        "{spec}"
    );
    assert!(!db.exists(), "the configured database was created");
}

#[tokio::test]
async fn the_operator_invites_by_email_and_prints_reset_links_that_work_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
    let run = |args: &[&str]| consultpay(dir.path(), &db, args);
    let dr = run(&[
        "user",
        "add",
        "--role",
        "practitioner",
        "--name",
        "Dr Estival",
        "--email",
        "Camille@Example.org",
    ]);
    let id = str_of(&dr[0], "id").to_owned();
    let invite = str_of(&dr[0], "invite_url").to_owned();
    assert!(
        invite.starts_with("http://127.0.0.1:8080/dashboard/password/cpl_"),
        "{invite}"
    );
    let reset = run(&[
        "user",
        "reset-password",
        &id,
        "--email",
        "camille@example.org",
    ]);
    assert_eq!(reset[0]["email"], "camille@example.org");
    let reset_url = str_of(&reset[0], "reset_url").to_owned();
    let secret = |url: &str| url.rsplit('/').next().unwrap_or_default().to_owned();

    let config = Config {
        database_url: DatabaseUrl::new(db.clone()),
        demo: false,
        ..Config::default()
    };
    let app = App::build(&config)
        .await
        .expect("app on the CLI's database");
    let team = &app.billing.team;
    let (link, user) = team.open_link(&secret(&invite)).await.expect("live");
    assert_eq!(
        (user.name.as_str(), link.email.as_str()),
        ("Dr Estival", "camille@example.org")
    );
    team.redeem(&secret(&reset_url), "correct horse battery")
        .await
        .expect("the reset link sets the password");
    // Setting the password spent the invitation too.
    assert_eq!(
        team.open_link(&secret(&invite)).await.unwrap_err().code(),
        "not_found"
    );
    assert!(
        app.billing
            .sessions
            .sign_in_with_password("camille@example.org", "correct horse battery", None)
            .await
            .is_ok()
    );
    let _ = app.store.clone().close().await;
}
