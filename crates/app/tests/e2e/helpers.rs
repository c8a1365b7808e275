//! The real server on a random 127.0.0.1 port, on a fresh database per test (SQLite
//! file, or a PostgreSQL database created for the test and dropped after), in sandbox
//! mode, with a clock the test can move. Clients talk to it over HTTP only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use app::config::{Config, DatabaseUrl, Secret};
use app::wiring::App;
use billing_core::system::Clock;
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The webhook endpoint secret the test server is configured with.
pub const WEBHOOK_SECRET: &str = "whsec_e2e_test_secret";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The wall clock plus an offset the test controls.
#[derive(Debug, Default)]
pub struct TestClock {
    offset_secs: AtomicI64,
}

impl TestClock {
    pub fn advance(&self, by: Duration) {
        self.offset_secs
            .fetch_add(by.num_seconds(), Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::seconds(self.offset_secs.load(Ordering::SeqCst))
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The PostgreSQL server for tests, or `None` (skipped with a note) outside CI.
pub fn postgres_server() -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if in_ci() => panic!("CI=true but TEST_POSTGRES_URL is not set"),
        _ => {
            eprintln!(
                "note: TEST_POSTGRES_URL is not set; the PostgreSQL end-to-end cases are skipped"
            );
            None
        }
    }
}

fn with_database(server: &str, name: &str) -> String {
    match server.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => format!("{server}/{name}"),
    }
}

struct PgDatabase {
    server: String,
    name: String,
}

pub struct TestApp {
    pub base: String,
    /// The operator's listener (`/metrics`, health).
    pub admin_base: String,
    admin: Option<(
        oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
    /// No redirects followed, cookies kept (the pages' CSRF and session cookies).
    pub client: reqwest::Client,
    pub app: App,
    pub clock: Arc<TestClock>,
    /// The configuration the server runs with (a second server may share it).
    #[allow(
        dead_code,
        reason = "the localstripe binary starts a second server with it"
    )]
    pub config: Config,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    pg: Option<PgDatabase>,
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    /// Starts a server; `None` when the backend is not available here (PostgreSQL
    /// outside CI without `TEST_POSTGRES_URL`).
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
        let (database_url, pg, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("e2e.db").display());
                (url, None, Some(dir))
            }
            Backend::Postgres => {
                let server = postgres_server()?;
                let name = format!("consultpay_e2e_{}", uuid::Uuid::new_v4().simple());
                let admin = Database::connect(&server)
                    .await
                    .expect("PostgreSQL reachable");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                (
                    with_database(&server, &name),
                    Some(PgDatabase { server, name }),
                    None,
                )
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr: SocketAddr = listener.local_addr().expect("a local address");
        let base = format!("http://{addr}");
        let mut config = Config {
            listen: addr,
            public_url: Some(base.clone()),
            demo: false,
            reconcile_interval_secs: 0,
            stripe_webhook_secret: Some(Secret::new(WEBHOOK_SECRET)),
            session_key: Some(Secret::new("e2e-session-key-0123456789abcdef0123456789")),
            database_url: DatabaseUrl::new(database_url),
            ..Config::default()
        };
        adjust(&mut config);
        let clock = Arc::new(TestClock::default());
        let app = App::build_with(&config, clock.clone())
            .await
            .expect("app builds");
        let state = app.http_state(&config);
        let endpoint = http_poem::app(state.clone());
        // The operator's listener, on a port of its own, as the binary runs it.
        let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the admin listener");
        let admin_base = format!(
            "http://{}",
            admin_listener.local_addr().expect("admin address")
        );
        let (admin_tx, admin_rx) = oneshot::channel::<()>();
        let admin = tokio::spawn(http_poem::serve(
            admin_listener,
            http_poem::admin(state),
            config.server_limits(),
            async {
                let _ = admin_rx.await;
            },
            std::time::Duration::from_secs(1),
        ));
        let (tx, rx) = oneshot::channel::<()>();
        // The server the binary runs, with its limits.
        let limits = config.server_limits();
        let server = tokio::spawn(async move {
            let _ = http_poem::serve(
                listener,
                endpoint,
                limits,
                async {
                    let _ = rx.await;
                },
                std::time::Duration::from_secs(5),
            )
            .await;
        });
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .cookie_store(true)
            .build()
            .expect("client");
        Some(TestApp {
            base,
            admin_base,
            admin: Some((admin_tx, admin)),
            client,
            app,
            clock,
            config,
            shutdown: Some(tx),
            server: Some(server),
            pg,
            _dir: dir,
        })
    }

    /// Stops the server and drops the PostgreSQL database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        if let Some((tx, admin)) = self.admin.take() {
            let _ = tx.send(());
            let _ = admin.await;
        }
        let _ = self.app.store.clone().close().await;
        if let Some(pg) = self.pg.take()
            && let Ok(admin) = Database::connect(&pg.server).await
        {
            let _ = admin
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                    pg.name
                ))
                .await;
            let _ = admin.close().await;
        }
    }

    /// The server's (movable) time.
    pub fn clock_now(&self) -> DateTime<Utc> {
        self.app.billing.now()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A new practitioner, as `consultpay user add --role practitioner` makes one.
    pub async fn practitioner(&self, name: &str) -> Staff {
        let created = self
            .app
            .billing
            .staff
            .add_practitioner(name, Some("Europe/Paris"))
            .await
            .expect("practitioner");
        Staff {
            id: created.id.to_string(),
            token: created.token.expose().to_owned(),
        }
    }

    pub async fn secretary(&self, of: &[&Staff]) -> Staff {
        let ids: Vec<_> = of.iter().map(|s| s.id.parse().expect("id")).collect();
        let created = self
            .app
            .billing
            .staff
            .add_secretary("Secrétariat", &ids)
            .await
            .expect("secretary");
        Staff {
            id: created.id.to_string(),
            token: created.token.expose().to_owned(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A consultation with its payment, as `who` (staff) reads it from the API.
    pub async fn consultation(&self, who: &Staff, id: &str) -> Value {
        let (status, c) = self
            .get(&format!("/api/v1/consultations/{id}"), Some(&who.token))
            .await;
        assert_eq!(status, StatusCode::OK, "{c}");
        c
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.admin_base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, token, Some(body))
            .await
    }

    /// A page's HTML, fetched with this client's cookies.
    pub async fn html(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("html")
    }

    /// Posts a form with this client's cookies.
    pub async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .form(fields)
            .send()
            .await
            .expect("form")
    }

    /// The status of `who`'s Stripe link, as the API reports it.
    pub async fn link_status(&self, who: &Staff) -> String {
        let (status, link) = self
            .get(
                &format!("/api/v1/practitioners/{}/stripe", who.id),
                Some(&who.token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{link}");
        link["status"].as_str().unwrap_or_default().to_owned()
    }

    /// Sets the e-mail and password `who` signs in with (as the operator's
    /// `consultpay user set-password` does).
    pub async fn set_password(&self, who: &Staff, email: &str, password: &str) {
        let id = who.id.parse().expect("a user id");
        self.app
            .billing
            .sessions
            .set_password(id, email, password)
            .await
            .expect("password set");
    }

    /// Signs `who` in to the dashboard on this client (its session cookie), signing
    /// out whoever was signed in on it.
    pub async fn sign_in(&self, who: &Staff) {
        let mut page = self
            .client
            .get(self.url("/dashboard/login"))
            .send()
            .await
            .expect("login page");
        if page.status() == StatusCode::SEE_OTHER {
            let dashboard = self.client.get(self.url("/dashboard")).send().await;
            let csrf = csrf_token(&dashboard.expect("dashboard").text().await.expect("html"));
            let out = self
                .client
                .post(self.url("/dashboard/logout"))
                .form(&[("csrf_token", csrf.as_str())])
                .send()
                .await
                .expect("sign out");
            assert_eq!(out.status(), StatusCode::SEE_OTHER, "sign out");
            page = self
                .client
                .get(self.url("/dashboard/login"))
                .send()
                .await
                .expect("login page");
        }
        let csrf = csrf_token(&page.text().await.expect("html"));
        let resp = self
            .client
            .post(self.url("/dashboard/login"))
            .form(&[("csrf_token", csrf.as_str()), ("token", who.token.as_str())])
            .send()
            .await
            .expect("sign in");
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "sign in");
    }

    /// Starts Connect OAuth over the API and approves on the sandbox consent page;
    /// returns the callback URL the browser is sent to.
    pub async fn approve_oauth(&self, who: &Staff) -> String {
        let (status, body) = self
            .post(
                &format!("/api/v1/practitioners/{}/stripe/oauth", who.id),
                Some(&who.token),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let authorize = body["authorize_url"]
            .as_str()
            .expect("authorize_url")
            .to_owned();
        assert!(
            authorize.contains("/sandbox/connect/authorize?"),
            "{authorize}"
        );
        let approve = self
            .client
            .get(format!("{authorize}&approve=1"))
            .send()
            .await
            .expect("consent");
        assert_eq!(approve.status(), StatusCode::SEE_OTHER);
        let callback = approve
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .expect("redirect to the callback")
            .to_owned();
        assert!(
            callback.contains("/connect/stripe/callback?code="),
            "{callback}"
        );
        callback
    }

    /// Follows the sandbox OAuth consent as a practitioner's signed-in browser would.
    pub async fn link_stripe(&self, who: &Staff) {
        let callback = self.approve_oauth(who).await;
        self.sign_in(who).await;
        let done = self.client.get(&callback).send().await.expect("callback");
        assert_eq!(done.status(), StatusCode::OK);
        let (status, link) = self
            .get(
                &format!("/api/v1/practitioners/{}/stripe", who.id),
                Some(&who.token),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(link["status"], "linked", "{link}");
        assert_eq!(link["charges_enabled"], true, "{link}");
    }

    pub async fn set_amounts(&self, who: &Staff, default: &str, max: &str) {
        let (status, body) = self
            .put(
                &format!("/api/v1/practitioners/{}/preferences", who.id),
                Some(&who.token),
                json!({ "default_amount": default, "max_amount": max, "currency": "EUR" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Schedules a consultation; `payment` is the `payment` object of the request.
    pub async fn schedule(
        &self,
        who: &Staff,
        for_practitioner: &Staff,
        payment: Value,
    ) -> (StatusCode, Value) {
        self.schedule_at(
            who,
            for_practitioner,
            payment,
            self.clock_now() + Duration::hours(2),
        )
        .await
    }

    /// [`TestApp::schedule`] for a consultation starting at `starts_at`.
    pub async fn schedule_at(
        &self,
        who: &Staff,
        for_practitioner: &Staff,
        payment: Value,
        starts_at: DateTime<Utc>,
    ) -> (StatusCode, Value) {
        self.post(
            "/api/v1/consultations",
            Some(&who.token),
            json!({
                "practitioner_id": for_practitioner.id,
                "patient": { "display_name": "M. Dupont", "email": "dupont@example.org" },
                "starts_at": starts_at.to_rfc3339(),
                "payment": payment,
            }),
        )
        .await
    }

    /// A linked practitioner with 25.00 EUR caps and an online consultation scheduled.
    pub async fn paid_consultation(&self) -> (Staff, Value) {
        let dr = self.practitioner("Dr Estival").await;
        self.link_stripe(&dr).await;
        self.set_amounts(&dr, "25.00", "25.00").await;
        let (status, scheduled) = self.schedule(&dr, &dr, json!({ "mode": "online" })).await;
        assert_eq!(status, StatusCode::CREATED, "{scheduled}");
        (dr, scheduled)
    }

    /// The patient pays on the sandbox checkout page with `payment_method`; returns
    /// where the browser ends up.
    pub async fn pay(&self, pay_token: &str, payment_method: &str) -> String {
        let page = self.open_checkout(pay_token).await;
        let (status, location) = self.submit_card(&page, payment_method).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
        location
    }

    /// "Pay now" on the pay page: the sandbox checkout page's URL.
    pub async fn open_checkout(&self, pay_token: &str) -> String {
        let (status, checkout) = self
            .post(
                &format!("/api/v1/pay/{pay_token}/checkout"),
                None,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{checkout}");
        let page_url = checkout["redirect_url"]
            .as_str()
            .expect("redirect_url")
            .to_owned();
        assert!(page_url.contains("/sandbox/checkout/cs_"), "{page_url}");
        page_url
    }

    /// Submits a card on the sandbox checkout page: the status and where the browser
    /// is sent (or the body of a refusal).
    pub async fn submit_card(&self, page_url: &str, payment_method: &str) -> (StatusCode, String) {
        self.sandbox_form(page_url, page_url, &[("payment_method", payment_method)])
            .await
    }

    /// Answers the sandbox's 3-D Secure challenge on the checkout page.
    pub async fn authenticate(&self, page_url: &str, approve: bool) -> (StatusCode, String) {
        let result = if approve { "approve" } else { "fail" };
        self.sandbox_form(
            page_url,
            &format!("{page_url}/authenticate"),
            &[("result", result)],
        )
        .await
    }

    async fn sandbox_form(
        &self,
        page_url: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let page = self
            .client
            .get(page_url)
            .send()
            .await
            .expect("checkout page");
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.expect("html");
        let csrf = csrf_token(&html);
        let mut form = vec![("csrf_token", csrf.as_str())];
        form.extend_from_slice(fields);
        let resp = self
            .client
            .post(action)
            .form(&form)
            .send()
            .await
            .expect("sandbox form");
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        match location {
            Some(l) => (status, l),
            None => (status, resp.text().await.unwrap_or_default()),
        }
    }

    /// `POST /sandbox/clock/advance`: moves the server's time and runs what fell due.
    pub async fn advance_clock(&self, by: Duration) -> Value {
        let (status, body) = self
            .post(
                "/sandbox/clock/advance",
                None,
                json!({ "seconds": by.num_seconds() }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The patient's pay page (`GET /api/v1/pay/{token}`).
    pub async fn pay_page(&self, pay_token: &str) -> Value {
        let (status, page) = self.get(&format!("/api/v1/pay/{pay_token}"), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if self.pg.is_some() {
            eprintln!("note: a PostgreSQL test app was dropped without stop(); its database stays");
        }
    }
}

/// The CSRF token of the first form of a page.
pub fn csrf_token(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html
        .find(marker)
        .map(|i| i + marker.len())
        .expect("a CSRF field");
    let end = html[start..].find('"').expect("end of the CSRF value");
    html[start..start + end].to_owned()
}

#[derive(Clone, Debug)]
pub struct Staff {
    pub id: String,
    pub token: String,
}

/// Every backend the suite runs on here (PostgreSQL when configured).
pub fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Sqlite];
    if postgres_server().is_some() {
        b.push(Backend::Postgres);
    }
    b
}

/// Runs `body` once per backend, stopping each server after.
#[macro_export]
macro_rules! on_every_backend {
    (|$app:ident| $body:block) => {
        for backend in $crate::helpers::backends() {
            let Some($app) = $crate::helpers::TestApp::spawn(backend).await else { continue };
            eprintln!("backend: {backend:?}");
            $body
            $app.stop().await;
        }
    };
}

/// Text with the no-break spaces of French amounts made plain and HTML's escapes
/// undone, for comparisons.
pub fn plain(text: &str) -> String {
    text.replace(['\u{a0}', '\u{202f}'], " ")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&#x22;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The text of a PDF, as poppler's `pdftotext` extracts it.
/// `None` (after a note) when poppler-utils is not installed, outside CI only.
pub fn pdf_text(pdf: &[u8]) -> Option<String> {
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).expect("write pdf");
    let out = match std::process::Command::new("pdftotext")
        .args(["-enc", "UTF-8", "-layout"])
        .arg(&path)
        .arg("-")
        .output()
    {
        Ok(out) => out,
        Err(e) if in_ci() => panic!("CI=true but pdftotext (poppler-utils) cannot run: {e}"),
        Err(_) => {
            eprintln!(
                "note: pdftotext (poppler-utils) is not installed; a PDF's text is not checked"
            );
            return None;
        }
    };
    assert!(out.status.success(), "pdftotext failed");
    Some(plain(&String::from_utf8(out.stdout).expect("utf-8")))
}

/// Whitespace-insensitive form (pdftotext lays columns out with runs of spaces).
pub fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The test peers' Python (`$PEERS_PYTHON`, else `target/peers/venv/bin/python`), or
/// `None` (after a note) when `cargo xtask peers` has not installed them, outside CI
/// only.
pub fn peers_python() -> Option<std::path::PathBuf> {
    let python = std::env::var_os("PEERS_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/peers/venv/bin/python")
        });
    if python.exists() {
        return Some(python);
    }
    assert!(
        !in_ci(),
        "CI=true but the test peers are not installed (cargo xtask peers)"
    );
    eprintln!(
        "note: the test peers are not installed (cargo xtask peers); PyJWT checks are skipped"
    );
    None
}

/// Runs the PyJWT verifier (`tests/e2e/verify_pass.py`) with `args`: its JSON answer.
pub fn pyjwt(python: &std::path::Path, args: &[&str]) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/verify_pass.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .expect("run the PyJWT verifier");
    assert!(
        out.status.success(),
        "verify_pass.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}
