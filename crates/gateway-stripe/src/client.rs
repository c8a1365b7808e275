//! A small typed client for the Stripe API and Connect OAuth endpoints, on reqwest.
//!
//! What it does for every call: the platform key as a bearer token, a pinned
//! [`API_VERSION`], `Stripe-Account` when the call acts on a connected account, the
//! caller's `Idempotency-Key` on every POST (the same value on every retry of that
//! call), form-encoded parameters with Stripe's nested keys (`metadata[k]`,
//! `expand[]`), connect and overall timeouts, and retries with jittered exponential
//! backoff for answers that say nothing happened or that Stripe asks us to repeat
//! (429, 5xx, connection failures) — never for other 4xx. It answers either the
//! decoded body or a [`CallError`] that keeps Stripe's error object;
//! [`transformers::gateway_error`](crate::transformers::gateway_error) turns that into
//! the domain's `GatewayError`.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use billing_core::ids::ConnectedAccountId;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::secret::{Secret, redact};
use crate::wire;

/// The Stripe API version every request is pinned to. `2025-03-31.basil` is the first
/// version in which a partial capture no longer creates a refund for the released
/// remainder, so a charge's `amount_refunded` counts real refunds only. Webhook
/// payloads rendered in an older version (the event's `api_version`) are corrected for
/// that when read.
pub const API_VERSION: &str = "2025-03-31.basil";

/// Stripe's API host.
pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";

/// Stripe's Connect OAuth host (authorize, token, deauthorize).
pub const DEFAULT_CONNECT_BASE: &str = "https://connect.stripe.com";

const USER_AGENT: &str = concat!("consultpay-gateway-stripe/", env!("CARGO_PKG_VERSION"));

/// Timeouts and retries of the Stripe client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole attempt (connect, send, read the answer).
    pub timeout: Duration,
    /// Retries after the first attempt (Stripe's own libraries default to 2).
    pub max_retries: u32,
    /// Backoff before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Upper bound of one backoff.
    pub max_backoff: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl ClientOptions {
    /// The pause before retry number `retry` (0-based): exponential, capped, with
    /// "equal jitter" (half fixed, half random) so that clients that failed together
    /// do not retry together.
    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let base = u64::try_from(self.initial_backoff.as_millis()).unwrap_or(u64::MAX);
        let cap = u64::try_from(self.max_backoff.as_millis()).unwrap_or(u64::MAX);
        let exp = base.saturating_mul(1_u64 << retry.min(20)).min(cap);
        let half = exp / 2;
        let jitter = if half == 0 {
            0
        } else {
            random_u64() % (half + 1)
        };
        Duration::from_millis(half + jitter)
    }
}

/// A non-cryptographic random number from the standard library's randomly seeded
/// hasher: enough for jitter and request nonces, no extra dependency.
pub(crate) fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Which Stripe host a call goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Host {
    Api,
    Connect,
}

/// When a failed attempt may be repeated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Repeating cannot do anything twice: a read, a write with an idempotency key
    /// Stripe honours, or a write without side effects.
    Safe,
    /// Repeat only when Stripe cannot have processed the request: the connection
    /// could not be opened, or Stripe refused it unprocessed (429).
    IfUnprocessed,
}

/// Form parameters in Stripe's bracket notation, in the order they were added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn new() -> Self {
        Form(Vec::new())
    }

    pub(crate) fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.push((key.into(), value.into()));
    }

    pub(crate) fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.push(key, value);
        self
    }

    /// `expand[]=path` for each path.
    pub(crate) fn expand(mut self, paths: &[&str]) -> Self {
        for path in paths {
            self.push("expand[]", *path);
        }
        self
    }

    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// One call to Stripe.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    method: Method,
    host: Host,
    path: String,
    params: Form,
    account: Option<&'a ConnectedAccountId>,
    idempotency_key: Option<String>,
    retry: Retry,
}

impl<'a> Call<'a> {
    fn new(method: Method, host: Host, path: impl Into<String>) -> Self {
        Call {
            method,
            host,
            path: path.into(),
            params: Form::new(),
            account: None,
            idempotency_key: None,
            retry: Retry::Safe,
        }
    }

    pub(crate) fn get(host: Host, path: impl Into<String>) -> Self {
        Self::new(Method::GET, host, path)
    }

    /// A POST. Every POST carries an `Idempotency-Key`: the caller's
    /// ([`Call::idempotency_key`]) or, for writes the domain does not key, a fresh one
    /// for this call, so its own retries still share one key.
    pub(crate) fn post(host: Host, path: impl Into<String>) -> Self {
        Self::new(Method::POST, host, path)
    }

    pub(crate) fn params(mut self, params: Form) -> Self {
        self.params = params;
        self
    }

    pub(crate) fn account(mut self, account: &'a ConnectedAccountId) -> Self {
        self.account = Some(account);
        self
    }

    pub(crate) fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub(crate) fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }
}

/// Why a call failed, before it is put in domain terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CallError {
    /// Stripe answered with its error object.
    Api { status: u16, error: wire::ApiError },
    /// A Connect OAuth endpoint answered with an OAuth error.
    OAuth {
        status: u16,
        error: String,
        description: Option<String>,
    },
    /// An error status with a body that is not a Stripe error.
    Status { status: u16 },
    /// No answer: connection failure, timeout, interrupted body.
    Transport { message: String, timeout: bool },
    /// A success status whose body could not be read as the expected object.
    Decode { message: String },
}

/// The Stripe client. Cheap to share: reqwest pools connections.
pub(crate) struct StripeClient {
    http: reqwest::Client,
    api_base: String,
    connect_base: String,
    key: Secret,
    options: ClientOptions,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("api_base", &self.api_base)
            .field("connect_base", &self.connect_base)
            .field("key", &self.key)
            .field("options", &self.options)
            .finish()
    }
}

/// Installs rustls' ring provider as the process default unless one is installed
/// already (the server installs it at start-up; sqlx uses the same one). reqwest is
/// built without a provider of its own, so without this it would fall back to one it
/// does not have.
pub(crate) fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing the same provider is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl StripeClient {
    pub(crate) fn new(
        key: Secret,
        api_base: &str,
        connect_base: &str,
        options: ClientOptions,
    ) -> Result<Self, reqwest::Error> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            .build()?;
        Ok(StripeClient {
            http,
            api_base: api_base.trim_end_matches('/').to_owned(),
            connect_base: connect_base.trim_end_matches('/').to_owned(),
            key,
            options,
        })
    }

    pub(crate) fn connect_base(&self) -> &str {
        &self.connect_base
    }

    /// Sends `call`, retrying as its [`Retry`] allows, and decodes the answer.
    pub(crate) async fn send<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, CallError> {
        let base = match call.host {
            Host::Api => &self.api_base,
            Host::Connect => &self.connect_base,
        };
        let url = format!("{base}{}", call.path);
        let key = match (&call.method, &call.idempotency_key) {
            (&Method::POST, None) => Some(format!("consultpay:call:{:016x}", random_u64())),
            (_, key) => key.clone(),
        };
        let mut retry = 0;
        loop {
            let verdict = self.attempt(&call, &url, key.as_deref()).await;
            match verdict {
                Verdict::Done(body) => {
                    return serde_json::from_slice(&body).map_err(|e| CallError::Decode {
                        message: e.to_string(),
                    });
                }
                Verdict::Fail(error) => return Err(error),
                Verdict::Retryable(error) if retry >= self.options.max_retries => {
                    return Err(error);
                }
                Verdict::Retryable(error) => {
                    let pause = self.options.backoff(retry);
                    tracing::warn!(
                        method = %call.method,
                        path = %call.path,
                        error = ?error,
                        retry = retry + 1,
                        pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                        "Stripe call failed, retrying with the same idempotency key"
                    );
                    tokio::time::sleep(pause).await;
                    retry += 1;
                }
            }
        }
    }

    async fn attempt(&self, call: &Call<'_>, url: &str, key: Option<&str>) -> Verdict {
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .bearer_auth(self.key.expose())
            .header("Stripe-Version", API_VERSION);
        if let Some(account) = call.account {
            request = request.header("Stripe-Account", account.as_str());
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request = if call.method == Method::GET {
            request.query(call.params.pairs())
        } else {
            request.form(call.params.pairs())
        };
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return transport(call, &e),
        };
        let status = response.status();
        let should_retry = stripe_should_retry(response.headers());
        let request_id = response
            .headers()
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return transport(call, &e),
        };
        if status.is_success() {
            return Verdict::Done(body.to_vec());
        }
        let error = error_from(status, &body);
        tracing::debug!(
            method = %call.method,
            path = %call.path,
            status = status.as_u16(),
            request_id = request_id.as_deref().unwrap_or(""),
            "Stripe answered with an error"
        );
        let transient = status == StatusCode::TOO_MANY_REQUESTS
            || (status.is_server_error() && call.retry == Retry::Safe);
        if transient && should_retry != Some(false) {
            Verdict::Retryable(error)
        } else {
            Verdict::Fail(error)
        }
    }
}

enum Verdict {
    Done(Vec<u8>),
    Fail(CallError),
    Retryable(CallError),
}

fn transport(call: &Call<'_>, e: &reqwest::Error) -> Verdict {
    let timeout = e.is_timeout();
    let what = if timeout {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    let error = CallError::Transport {
        message: format!("{} {}: {what}", call.method, call.path),
        timeout,
    };
    // A request whose connection was never opened cannot have been processed.
    if call.retry == Retry::Safe || (e.is_connect() && !timeout) {
        Verdict::Retryable(error)
    } else {
        Verdict::Fail(error)
    }
}

/// Stripe's `Stripe-Should-Retry` header, when present and readable.
fn stripe_should_retry(headers: &HeaderMap) -> Option<bool> {
    match headers
        .get("stripe-should-retry")
        .map(HeaderValue::to_str)?
    {
        Ok("true") => Some(true),
        Ok("false") => Some(false),
        _ => None,
    }
}

fn error_from(status: StatusCode, body: &[u8]) -> CallError {
    let status = status.as_u16();
    match serde_json::from_slice::<wire::ErrorBody>(body) {
        Ok(wire::ErrorBody::Api { mut error }) => {
            error.message = error.message.map(|m| redact(&m));
            CallError::Api { status, error }
        }
        Ok(wire::ErrorBody::OAuth {
            error,
            error_description,
        }) => CallError::OAuth {
            status,
            error,
            description: error_description.map(|d| redact(&d)),
        },
        Err(_) => CallError::Status { status },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered_within_bounds() {
        let options = ClientOptions {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..ClientOptions::default()
        };
        for _ in 0..200 {
            let first = options.backoff(0);
            assert!((50..=100).contains(&first.as_millis()), "{first:?}");
            let third = options.backoff(2);
            assert!((200..=400).contains(&third.as_millis()), "{third:?}");
            let capped = options.backoff(30);
            assert!((500..=1000).contains(&capped.as_millis()), "{capped:?}");
        }
    }

    #[test]
    fn jitter_actually_varies() {
        let options = ClientOptions {
            initial_backoff: Duration::from_millis(1000),
            ..ClientOptions::default()
        };
        let distinct: std::collections::BTreeSet<_> = (0..50).map(|_| options.backoff(0)).collect();
        assert!(distinct.len() > 5, "{distinct:?}");
    }

    #[test]
    fn error_bodies_keep_stripes_error_and_hide_keys() {
        let e = error_from(
            StatusCode::UNAUTHORIZED,
            br#"{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****1234"}}"#,
        );
        let CallError::Api { status, error } = e else {
            panic!("not an API error: {e:?}");
        };
        assert_eq!(status, 401);
        assert_eq!(
            error.message.as_deref(),
            Some("Invalid API Key provided: sk_test_***")
        );
        assert_eq!(
            error_from(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>"),
            CallError::Status { status: 502 }
        );
    }
}
