//! A real OpenID provider for tests: panva's certified `oidc-provider` (npm, installed
//! by `cargo xtask peers` under `target/peers/oidc`) on 127.0.0.1, and a player of its
//! development sign-in and consent pages (any login becomes the subject).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A client registered at the provider.
#[derive(Debug, Clone)]
pub struct PeerClient {
    /// Its id.
    pub id: String,
    /// Its secret (`client_secret_basic`).
    pub secret: String,
    /// Its one redirect URI.
    pub redirect_uri: String,
}

/// A running provider; stopped when dropped.
#[derive(Debug)]
pub struct OidcPeer {
    /// Its issuer URL (`http://127.0.0.1:PORT`).
    pub issuer: String,
    _child: Child,
}

fn installed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/peers/oidc")
}

impl OidcPeer {
    /// Starts a provider for `clients`, or `None` when it is not installed (outside
    /// CI; under `CI` that is a failure).
    ///
    /// # Panics
    /// When it is not installed under `CI`, or does not start within 20 seconds.
    pub async fn start(clients: &[PeerClient]) -> Option<OidcPeer> {
        let dir = installed();
        if !dir.join("node_modules/oidc-provider").exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI=true but the OpenID provider is not installed: cargo xtask peers"
            );
            eprintln!("skipped: oidc-provider is not installed (cargo xtask peers)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let clients: Vec<serde_json::Value> = clients
            .iter()
            .map(|c| {
                serde_json::json!({
                    "client_id": c.id,
                    "client_secret": c.secret,
                    "redirect_uris": [c.redirect_uri],
                })
            })
            .collect();
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .arg(port.to_string())
            .arg(serde_json::Value::from(clients).to_string())
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let issuer = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(issuer) = line.strip_prefix("listening ") {
                    return Some(issuer.to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("the provider starts");
        // Keep reading what it prints, or its next write would fail on a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(OidcPeer {
            issuer,
            _child: child,
        })
    }
}

/// Where a redirect answer to a request for `from` leads (relative or absolute).
fn follow(from: &str, answer: &reqwest::Response) -> String {
    let location = answer.headers()["location"].to_str().expect("location");
    url::Url::parse(from)
        .and_then(|base| base.join(location))
        .expect("a URL")
        .to_string()
}

/// Plays the browser on the provider's pages from the authorization `url`: signs in
/// as `login`, consents, and returns the URL the provider sends the browser back to
/// (the first one that starts with `back_to`).
///
/// # Panics
/// When the pages are not what the provider's development interactions show.
pub async fn sign_in_at_provider(url: &str, login: &str, back_to: &str) -> String {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client");
    let mut next = url.to_owned();
    for _ in 0..12 {
        if next.starts_with(back_to) {
            return next;
        }
        let page = browser.get(&next).send().await.expect("provider page");
        if page.status().is_redirection() {
            next = follow(&next, &page);
            continue;
        }
        let html = page.text().await.expect("html");
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("a form in {html}"))
            .to_owned();
        let form: Vec<(&str, &str)> = if html.contains("value=\"login\"") {
            vec![("prompt", "login"), ("login", login), ("password", "any")]
        } else {
            vec![("prompt", "consent")]
        };
        let posted = browser
            .post(&action)
            .form(&form)
            .send()
            .await
            .expect("form");
        assert!(posted.status().is_redirection(), "{}", posted.status());
        next = follow(&action, &posted);
    }
    panic!("the provider never sent the browser back");
}

/// The query parameters of `url`.
pub fn query_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}
