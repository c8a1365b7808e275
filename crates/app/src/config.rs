//! Configuration: environment variables (the names in the specification), over an
//! optional TOML file (`CONSULTPAY_CONFIG` or `--config`), over defaults. Secrets are
//! redacted whenever the configuration is printed.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// A configuration secret: `Debug` and `Display` print `*** ***`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*** ***")
    }
}

/// A database URL whose password is never printed.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(s: impl Into<String>) -> Self {
        DatabaseUrl(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url_password(&self.0))
    }
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Stripe Checkout (hosted page) or the Payment Element (client secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckoutMode {
    Hosted,
    Elements,
}

/// The server's settings. Field names are the TOML keys; the environment variable of
/// each is listed in [`ENV`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Config {
    /// `DATABASE_URL`: `sqlite://…` (default: `consultpay.db` in the working
    /// directory) or `postgres://…`.
    pub database_url: DatabaseUrl,
    /// `CONSULTPAY_LISTEN`: address to bind.
    pub listen: SocketAddr,
    /// `CONSULTPAY_ADMIN_LISTEN`: the operator's listener (`/metrics`, `/healthz`,
    /// `/readyz`), loopback by default; `off` for none.
    pub admin_listen: String,
    /// `CONSULTPAY_PUBLIC_URL`: how browsers and Stripe reach the server (default
    /// `http://{listen}`).
    pub public_url: Option<String>,
    /// `STRIPE_SECRET_KEY`: absent → sandbox mode.
    pub stripe_secret_key: Option<Secret>,
    /// `STRIPE_API_BASE`: Stripe's API (tests point it at a local peer).
    pub stripe_api_base: Option<String>,
    /// `STRIPE_CONNECT_BASE`: Stripe Connect OAuth host.
    pub stripe_connect_base: Option<String>,
    /// `STRIPE_CONNECT_CLIENT_ID`: the platform's `ca_…` for Connect OAuth.
    pub stripe_connect_client_id: Option<String>,
    /// `STRIPE_WEBHOOK_SECRET`: the platform endpoint's `whsec_…`.
    pub stripe_webhook_secret: Option<Secret>,
    /// `STRIPE_CONNECT_WEBHOOK_SECRET`: the Connect endpoint's `whsec_…` (every event
    /// of a direct charge reaches only that endpoint).
    pub stripe_connect_webhook_secret: Option<Secret>,
    /// `STRIPE_PUBLISHABLE_KEY`: for the Payment Element.
    pub stripe_publishable_key: Option<String>,
    /// `STRIPE_CHECKOUT`: hosted (Stripe Checkout) or elements (Payment Element).
    pub stripe_checkout: CheckoutMode,
    /// `STRIPE_DESCRIBE_INTENTS`: send the consultation's description on
    /// PaymentIntents (default true; some Stripe-compatible test servers refuse it).
    pub stripe_describe_intents: bool,
    /// `STRIPE_RENEWABLE_HOLDS`: save the card along with a hold made for the
    /// Payment Element, so it can be renewed (default true; localstripe refuses it).
    pub stripe_renewable_holds: bool,
    /// `CONSULTPAY_WAITING_ROOM_URL`: where admitted patients go;
    /// `{consultation_id}` is replaced.
    pub waiting_room_url: Option<String>,
    /// `CONSULTPAY_SESSION_KEY`: key for the dashboard's session cookies (≥ 32
    /// characters); random per start when absent (sessions then end at restart).
    pub session_key: Option<Secret>,
    /// `CONSULTPAY_LOG_FORMAT`: text or json.
    pub log_format: LogFormat,
    /// `CONSULTPAY_RECONCILE_INTERVAL_SECS`: period of the background jobs (holds
    /// placed and renewed, reconciliation; 0 = off).
    pub reconcile_interval_secs: u64,
    /// `CONSULTPAY_RECONCILE_AFTER_SECS`: how long an operation may stay in flight, or
    /// a checkout unanswered, before reconciliation re-reads it from Stripe.
    pub reconcile_after_secs: u64,
    /// `CONSULTPAY_HOLD_LEAD_HOURS`: a hold is placed at most this long before its
    /// consultation (a card hold lasts 7 days); a patient paying earlier saves their
    /// card and the hold is placed off-session then.
    pub hold_lead_hours: u32,
    /// `CONSULTPAY_RENEW_BEFORE_HOURS`: a hold this close to its deadline, act not
    /// validated, is renewed off-session.
    pub renew_before_hours: u32,
    /// `CONSULTPAY_OPEN_AFTER_START_MINUTES`: how long after its start a consultation
    /// still offers the waiting room (and may be paid if its hold lapsed).
    pub open_after_start_minutes: u32,
    /// `CONSULTPAY_SMTP_URL`: where e-mail is sent (`smtp://host:port`,
    /// `smtp://user:pass@host:587?tls=required`, `smtps://user:pass@host:465`).
    /// Without it, messages stay in the outbox, visible on the dashboard.
    pub smtp_url: Option<Secret>,
    /// `CONSULTPAY_MAIL_FROM`: the sender (`Cabinet <no-reply@example.org>`), required
    /// with `CONSULTPAY_SMTP_URL`.
    pub mail_from: Option<String>,
    /// `CONSULTPAY_OIDC_ISSUER`: an OpenID Connect provider staff may sign in with
    /// (its issuer URL; discovery at `/.well-known/openid-configuration`). Register
    /// `{public URL}/dashboard/oidc/callback` there as the redirect URI.
    pub oidc_issuer: Option<String>,
    /// `CONSULTPAY_OIDC_CLIENT_ID`: ConsultPay's client id at that provider.
    pub oidc_client_id: Option<String>,
    /// `CONSULTPAY_OIDC_CLIENT_SECRET`: its client secret.
    pub oidc_client_secret: Option<Secret>,
    /// `CONSULTPAY_MAIL_INTERVAL_SECS`: how often the outbox is delivered (0 = only
    /// by `consultpay reconcile` and the sandbox clock).
    pub mail_interval_secs: u64,
    /// `CONSULTPAY_VIDEO_URL`: the video platform's room URL with `{room}` and
    /// `{jwt}` (e.g. `https://meet.example.org/{room}?jwt={jwt}`); the waiting room's
    /// "Join" goes there. Without it, the practitioner calls the patient.
    pub video_url: Option<String>,
    /// `CONSULTPAY_VIDEO_JWT_SECRET`: signs passes with HS256 (Jitsi's `app_secret`,
    /// at least 32 characters).
    pub video_jwt_secret: Option<Secret>,
    /// `CONSULTPAY_VIDEO_JWT_KEYS`: signs passes with EdDSA instead: `kid=path.pem`
    /// pairs separated by commas, Ed25519 PKCS#8 PEM files; all are published at
    /// `/.well-known/jwks.json`, the first (or `CONSULTPAY_VIDEO_JWT_SIGNING_KID`) signs.
    pub video_jwt_keys: Option<String>,
    /// `CONSULTPAY_VIDEO_JWT_SIGNING_KID`: which of `CONSULTPAY_VIDEO_JWT_KEYS` signs
    /// (default: the first); the others are only published (a new key, before it
    /// signs; an old one, until its passes have expired).
    pub video_jwt_signing_kid: Option<String>,
    /// `CONSULTPAY_VIDEO_JWT_ISSUER`: the passes' `iss` (Jitsi's `app_id`).
    pub video_jwt_issuer: String,
    /// `CONSULTPAY_VIDEO_JWT_AUDIENCE`: the passes' `aud`.
    pub video_jwt_audience: String,
    /// `CONSULTPAY_VIDEO_JWT_SUBJECT`: the passes' `sub` (Jitsi's domain; default:
    /// the host of `CONSULTPAY_VIDEO_URL`, else `*`).
    pub video_jwt_subject: Option<String>,
    /// `CONSULTPAY_VIDEO_OPEN_BEFORE_MINUTES`: how long before its start a
    /// consultation's pass is valid (and the practitioner may start it).
    pub video_open_before_minutes: u32,
    /// `CONSULTPAY_DEMO`: in sandbox mode, create demo users on an empty database.
    pub demo: bool,
    /// `CONSULTPAY_SHUTDOWN_GRACE_SECS`: how long in-flight requests may finish.
    pub shutdown_grace_secs: u64,
    /// `CONSULTPAY_HEADER_READ_TIMEOUT_SECS`: a request head (or a kept-alive
    /// connection's next one) must arrive within this, or the connection is closed.
    pub header_read_timeout_secs: u64,
    /// `CONSULTPAY_BODY_READ_TIMEOUT_SECS`: a request body must arrive within this
    /// (`408`).
    pub body_read_timeout_secs: u64,
    /// `CONSULTPAY_MAX_CONNECTIONS`: connections served at once; more wait in the
    /// kernel's queue. Keep it under the process's file-descriptor limit.
    pub max_connections: usize,
    /// `CONSULTPAY_WRITE_TIMEOUT_SECS`: an answer the client does not read for this
    /// long ends the connection.
    pub write_timeout_secs: u64,
    /// `CONSULTPAY_RATE_LIMIT_PAY`: failed pay-link look-ups (pages and
    /// `/api/v1/pay/…`) per minute per client before its look-ups are refused (0: no
    /// limit).
    pub rate_limit_pay: u32,
    /// `CONSULTPAY_RATE_LIMIT_SIGN_IN`: failed sign-ins per minute per client.
    pub rate_limit_sign_in: u32,
    /// `CONSULTPAY_RATE_LIMIT_WEBHOOKS`: webhook deliveries failing their signature
    /// per minute per client.
    pub rate_limit_webhooks: u32,
    /// `CONSULTPAY_TRUSTED_PROXIES`: reverse proxies in front of the server that
    /// append the client's address to `X-Forwarded-For` (0: the peer is the client).
    pub trusted_proxies: usize,
}

/// Environment variable → configuration key.
pub const ENV: &[(&str, &str)] = &[
    ("DATABASE_URL", "database_url"),
    ("CONSULTPAY_LISTEN", "listen"),
    ("CONSULTPAY_ADMIN_LISTEN", "admin_listen"),
    ("CONSULTPAY_PUBLIC_URL", "public_url"),
    ("STRIPE_SECRET_KEY", "stripe_secret_key"),
    ("STRIPE_API_BASE", "stripe_api_base"),
    ("STRIPE_CONNECT_BASE", "stripe_connect_base"),
    ("STRIPE_CONNECT_CLIENT_ID", "stripe_connect_client_id"),
    ("STRIPE_WEBHOOK_SECRET", "stripe_webhook_secret"),
    (
        "STRIPE_CONNECT_WEBHOOK_SECRET",
        "stripe_connect_webhook_secret",
    ),
    ("STRIPE_PUBLISHABLE_KEY", "stripe_publishable_key"),
    ("STRIPE_CHECKOUT", "stripe_checkout"),
    ("STRIPE_DESCRIBE_INTENTS", "stripe_describe_intents"),
    ("STRIPE_RENEWABLE_HOLDS", "stripe_renewable_holds"),
    ("CONSULTPAY_WAITING_ROOM_URL", "waiting_room_url"),
    ("CONSULTPAY_SESSION_KEY", "session_key"),
    ("CONSULTPAY_LOG_FORMAT", "log_format"),
    (
        "CONSULTPAY_RECONCILE_INTERVAL_SECS",
        "reconcile_interval_secs",
    ),
    ("CONSULTPAY_RECONCILE_AFTER_SECS", "reconcile_after_secs"),
    ("CONSULTPAY_HOLD_LEAD_HOURS", "hold_lead_hours"),
    ("CONSULTPAY_RENEW_BEFORE_HOURS", "renew_before_hours"),
    (
        "CONSULTPAY_OPEN_AFTER_START_MINUTES",
        "open_after_start_minutes",
    ),
    ("CONSULTPAY_SMTP_URL", "smtp_url"),
    ("CONSULTPAY_OIDC_ISSUER", "oidc_issuer"),
    ("CONSULTPAY_OIDC_CLIENT_ID", "oidc_client_id"),
    ("CONSULTPAY_OIDC_CLIENT_SECRET", "oidc_client_secret"),
    ("CONSULTPAY_MAIL_FROM", "mail_from"),
    ("CONSULTPAY_MAIL_INTERVAL_SECS", "mail_interval_secs"),
    ("CONSULTPAY_VIDEO_URL", "video_url"),
    ("CONSULTPAY_VIDEO_JWT_SECRET", "video_jwt_secret"),
    ("CONSULTPAY_VIDEO_JWT_KEYS", "video_jwt_keys"),
    ("CONSULTPAY_VIDEO_JWT_SIGNING_KID", "video_jwt_signing_kid"),
    ("CONSULTPAY_VIDEO_JWT_ISSUER", "video_jwt_issuer"),
    ("CONSULTPAY_VIDEO_JWT_AUDIENCE", "video_jwt_audience"),
    ("CONSULTPAY_VIDEO_JWT_SUBJECT", "video_jwt_subject"),
    (
        "CONSULTPAY_VIDEO_OPEN_BEFORE_MINUTES",
        "video_open_before_minutes",
    ),
    ("CONSULTPAY_DEMO", "demo"),
    ("CONSULTPAY_SHUTDOWN_GRACE_SECS", "shutdown_grace_secs"),
    (
        "CONSULTPAY_HEADER_READ_TIMEOUT_SECS",
        "header_read_timeout_secs",
    ),
    (
        "CONSULTPAY_BODY_READ_TIMEOUT_SECS",
        "body_read_timeout_secs",
    ),
    ("CONSULTPAY_MAX_CONNECTIONS", "max_connections"),
    ("CONSULTPAY_WRITE_TIMEOUT_SECS", "write_timeout_secs"),
    ("CONSULTPAY_RATE_LIMIT_PAY", "rate_limit_pay"),
    ("CONSULTPAY_RATE_LIMIT_SIGN_IN", "rate_limit_sign_in"),
    ("CONSULTPAY_RATE_LIMIT_WEBHOOKS", "rate_limit_webhooks"),
    ("CONSULTPAY_TRUSTED_PROXIES", "trusted_proxies"),
];

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: DatabaseUrl("sqlite://consultpay.db?mode=rwc".into()),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: "127.0.0.1:9464".into(),
            public_url: None,
            stripe_secret_key: None,
            stripe_api_base: None,
            stripe_connect_base: None,
            stripe_connect_client_id: None,
            stripe_webhook_secret: None,
            stripe_connect_webhook_secret: None,
            stripe_publishable_key: None,
            stripe_checkout: CheckoutMode::Hosted,
            stripe_describe_intents: true,
            stripe_renewable_holds: true,
            waiting_room_url: None,
            session_key: None,
            log_format: LogFormat::Text,
            reconcile_interval_secs: 300,
            reconcile_after_secs: 600,
            hold_lead_hours: 6 * 24,
            renew_before_hours: 12,
            open_after_start_minutes: 60,
            smtp_url: None,
            mail_from: None,
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            mail_interval_secs: 5,
            video_url: None,
            video_jwt_secret: None,
            video_jwt_keys: None,
            video_jwt_signing_kid: None,
            video_jwt_issuer: "consultpay".into(),
            video_jwt_audience: "jitsi".into(),
            video_jwt_subject: None,
            video_open_before_minutes: 15,
            demo: true,
            shutdown_grace_secs: 20,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 10,
            max_connections: 1024,
            write_timeout_secs: 30,
            rate_limit_pay: 120,
            rate_limit_sign_in: 10,
            rate_limit_webhooks: 1200,
            trusted_proxies: 0,
        }
    }
}

/// A configuration that cannot be used, with the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("{0}")]
    Load(String),
}

/// Names the environment variable (or TOML key) behind a figment error.
fn explain(err: figment::Error) -> ConfigError {
    let key = err.path.join(".").to_ascii_lowercase();
    match ENV.iter().find(|(_, k)| *k == key) {
        Some((var, _)) => ConfigError::Invalid {
            key: var,
            message: format!("{} (TOML key `{key}`)", err.kind),
        },
        None => ConfigError::Load(err.to_string()),
    }
}

impl Config {
    /// Defaults, then the TOML file (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid {
                    key: "config",
                    message: format!("{} does not exist", path.display()),
                });
            }
            figment = figment.merge(Toml::file(path));
        }
        let env = Env::raw().filter_map(|k| {
            ENV.iter()
                .find(|(var, _)| k.as_str().eq_ignore_ascii_case(var))
                .map(|(_, key)| (*key).into())
        });
        // Empty variables count as unset (a common shell habit: `STRIPE_SECRET_KEY=`).
        let env = env.filter(|k| {
            ENV.iter()
                .find(|(_, key)| k.as_str() == *key)
                .and_then(|(var, _)| std::env::var(var).ok())
                .is_none_or(|v| !v.trim().is_empty())
        });
        let config: Config = figment.merge(env).extract().map_err(explain)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        let db = self.database_url.expose();
        if !(db.starts_with("sqlite:") || db.starts_with("postgres")) {
            return invalid("DATABASE_URL", "expected sqlite://… or postgres://…");
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return invalid("CONSULTPAY_PUBLIC_URL", "expected an http(s):// URL");
        }
        if let Some(key) = &self.stripe_secret_key
            && !(key.expose().starts_with("sk_") || key.expose().starts_with("rk_"))
        {
            return invalid("STRIPE_SECRET_KEY", "expected a secret key (sk_… or rk_…)");
        }
        if let Some(key) = &self.session_key
            && key.expose().len() < 32
        {
            return invalid("CONSULTPAY_SESSION_KEY", "at least 32 characters");
        }
        if !self.sandbox() && self.session_key.is_none() {
            // A key made up at start would differ between instances (a patient's "Pay
            // now" on another instance than the page fails its CSRF check) and sign
            // everyone out at each restart.
            return invalid(
                "CONSULTPAY_SESSION_KEY",
                "required with STRIPE_SECRET_KEY (at least 32 characters, the same on every instance)",
            );
        }
        // A card hold lasts 7 days: a hold placed earlier than that before the
        // consultation would lapse before it, and a renewal must come before the end.
        if !(1..=6 * 24 + 23).contains(&self.hold_lead_hours) {
            return invalid(
                "CONSULTPAY_HOLD_LEAD_HOURS",
                "between 1 and 167 (a card hold lasts 7 days)",
            );
        }
        if !(1..=self.hold_lead_hours).contains(&self.renew_before_hours) {
            return invalid(
                "CONSULTPAY_RENEW_BEFORE_HOURS",
                "between 1 and CONSULTPAY_HOLD_LEAD_HOURS",
            );
        }
        if self.smtp_url.is_some() && self.mail_from.is_none() {
            return invalid(
                "CONSULTPAY_MAIL_FROM",
                "required with CONSULTPAY_SMTP_URL (e.g. \"Cabinet <no-reply@example.org>\")",
            );
        }
        let oidc = [
            self.oidc_issuer.is_some(),
            self.oidc_client_id.is_some(),
            self.oidc_client_secret.is_some(),
        ];
        if oidc.contains(&true) && oidc.contains(&false) {
            return invalid(
                "CONSULTPAY_OIDC_ISSUER",
                "set CONSULTPAY_OIDC_ISSUER, CONSULTPAY_OIDC_CLIENT_ID and CONSULTPAY_OIDC_CLIENT_SECRET together",
            );
        }
        if self.video_jwt_secret.is_some() && self.video_jwt_keys.is_some() {
            return invalid(
                "CONSULTPAY_VIDEO_JWT_KEYS",
                "set either CONSULTPAY_VIDEO_JWT_SECRET (HS256) or CONSULTPAY_VIDEO_JWT_KEYS (EdDSA), not both",
            );
        }
        if let Some(secret) = &self.video_jwt_secret
            && secret.expose().len() < 32
        {
            return invalid("CONSULTPAY_VIDEO_JWT_SECRET", "at least 32 characters");
        }
        if let Some(url) = &self.video_url {
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || !url.contains("{room}")
            {
                return invalid(
                    "CONSULTPAY_VIDEO_URL",
                    "expected an http(s):// URL with {room} (and {jwt}), e.g. https://meet.example.org/{room}?jwt={jwt}",
                );
            }
            // Rooms are named by the signer, and a room anyone can enter without a pass
            // would let in a patient who never paid.
            if !self.video_signing() {
                return invalid(
                    "CONSULTPAY_VIDEO_URL",
                    "needs CONSULTPAY_VIDEO_JWT_SECRET or CONSULTPAY_VIDEO_JWT_KEYS (the platform must check the pass)",
                );
            }
            if !url.contains("{jwt}") {
                return invalid(
                    "CONSULTPAY_VIDEO_URL",
                    "must carry the pass: {jwt}, e.g. https://meet.example.org/{room}?jwt={jwt}",
                );
            }
        }
        if !(1..=24 * 60).contains(&self.video_open_before_minutes) {
            return invalid("CONSULTPAY_VIDEO_OPEN_BEFORE_MINUTES", "between 1 and 1440");
        }
        if self.admin_listen.trim() != "off" && self.admin_addr().is_none() {
            return invalid(
                "CONSULTPAY_ADMIN_LISTEN",
                "an address such as 127.0.0.1:9464, or off",
            );
        }
        if !(1..=300).contains(&self.header_read_timeout_secs) {
            return invalid("CONSULTPAY_HEADER_READ_TIMEOUT_SECS", "between 1 and 300");
        }
        if !(1..=300).contains(&self.body_read_timeout_secs) {
            return invalid("CONSULTPAY_BODY_READ_TIMEOUT_SECS", "between 1 and 300");
        }
        if !(1..=3600).contains(&self.write_timeout_secs) {
            return invalid("CONSULTPAY_WRITE_TIMEOUT_SECS", "between 1 and 3600");
        }
        if self.max_connections == 0 {
            return invalid("CONSULTPAY_MAX_CONNECTIONS", "at least 1");
        }
        if self.reconcile_after_secs == 0 {
            return invalid("CONSULTPAY_RECONCILE_AFTER_SECS", "at least 1 second");
        }
        if self.stripe_checkout == CheckoutMode::Elements
            && self
                .stripe_publishable_key
                .as_deref()
                .is_none_or(|k| !k.starts_with("pk_"))
        {
            return invalid(
                "STRIPE_PUBLISHABLE_KEY",
                "STRIPE_CHECKOUT=elements needs the publishable key (pk_…)",
            );
        }
        Ok(())
    }

    /// What is allowed but probably not meant; logged once logging is set up.
    pub fn warnings(&self) -> Vec<&'static str> {
        let mut warnings = Vec::new();
        if !self.sandbox()
            && self.stripe_webhook_secret.is_none()
            && self.stripe_connect_webhook_secret.is_none()
        {
            warnings.push(
                "neither STRIPE_WEBHOOK_SECRET nor STRIPE_CONNECT_WEBHOOK_SECRET is set: \
                 webhooks are refused and payments only move when reconciliation re-reads \
                 them (`consultpay stripe setup-webhooks` creates both endpoints)",
            );
        } else if !self.sandbox() && self.stripe_connect_webhook_secret.is_none() {
            warnings.push(
                "STRIPE_CONNECT_WEBHOOK_SECRET is not set: with direct charges, payment \
                 events reach only a Connect endpoint (`consultpay stripe setup-webhooks`)",
            );
        }
        warnings
    }

    /// The operator's listener's address, unless `off`.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listen.trim().parse().ok()
    }

    /// What one client may hold of the server.
    pub fn server_limits(&self) -> http_poem::ServerLimits {
        http_poem::ServerLimits {
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_secs),
            max_connections: self.max_connections,
            write_timeout: std::time::Duration::from_secs(self.write_timeout_secs),
        }
    }

    /// Per-client quotas on unauthenticated calls.
    pub fn rate_limits(&self) -> http_poem::ratelimit::RateLimits {
        http_poem::ratelimit::RateLimits {
            pay_per_minute: self.rate_limit_pay,
            sign_in_per_minute: self.rate_limit_sign_in,
            webhooks_per_minute: self.rate_limit_webhooks,
            trusted_proxies: self.trusted_proxies,
        }
    }

    /// Sandbox mode: no Stripe key.
    pub fn sandbox(&self) -> bool {
        self.stripe_secret_key.is_none()
    }

    /// The domain's settings this configuration makes.
    pub fn billing(&self) -> billing_core::BillingConfig {
        let mut config = billing_core::BillingConfig::new(&self.public_url());
        config.reconcile_after =
            chrono::Duration::seconds(i64::try_from(self.reconcile_after_secs).unwrap_or(i64::MAX));
        config.hold_lead = chrono::Duration::hours(i64::from(self.hold_lead_hours));
        config.renew_before = chrono::Duration::hours(i64::from(self.renew_before_hours));
        config.open_after_start =
            chrono::Duration::minutes(i64::from(self.open_after_start_minutes));
        config.pass_open_before =
            chrono::Duration::minutes(i64::from(self.video_open_before_minutes));
        config.video_url = self.video_url.clone();
        config
    }

    /// Passes to the video room are signed (a secret or keys are set).
    pub fn video_signing(&self) -> bool {
        self.video_jwt_secret.is_some() || self.video_jwt_keys.is_some()
    }

    /// The passes' `sub`: as set, else the video URL's host, else `*`.
    pub fn video_subject(&self) -> String {
        if let Some(sub) = &self.video_jwt_subject {
            return sub.clone();
        }
        self.video_url
            .as_deref()
            .and_then(|u| u.split_once("://"))
            .and_then(|(_, rest)| rest.split(['/', '?', ':']).next())
            .filter(|host| !host.is_empty())
            .unwrap_or("*")
            .to_owned()
    }

    /// The EdDSA keys as `(kid, path)` pairs.
    pub fn video_key_files(&self) -> Result<Vec<(String, std::path::PathBuf)>, ConfigError> {
        let Some(list) = &self.video_jwt_keys else {
            return Ok(Vec::new());
        };
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((kid, path)) if !kid.trim().is_empty() && !path.trim().is_empty() => {
                    Ok((kid.trim().to_owned(), path.trim().into()))
                }
                _ => Err(ConfigError::Invalid {
                    key: "CONSULTPAY_VIDEO_JWT_KEYS",
                    message: format!("expected kid=path.pem, got '{pair}'"),
                }),
            })
            .collect()
    }

    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The configuration as TOML, secrets redacted.
    pub fn redacted(&self) -> String {
        let mut shown = self.clone();
        let redact = |s: &mut Option<Secret>| {
            if s.is_some() {
                *s = Some(Secret("*** ***".into()));
            }
        };
        redact(&mut shown.stripe_secret_key);
        redact(&mut shown.stripe_webhook_secret);
        redact(&mut shown.stripe_connect_webhook_secret);
        redact(&mut shown.session_key);
        redact(&mut shown.smtp_url);
        redact(&mut shown.oidc_client_secret);
        redact(&mut shown.video_jwt_secret);
        shown.database_url = DatabaseUrl(redact_url_password(shown.database_url.expose()));
        toml_string(&shown)
    }
}

fn toml_string(c: &Config) -> String {
    // figment re-exports no serializer; a flat `key = value` listing is enough.
    let value = serde_json::to_value(c).unwrap_or_default();
    let mut out = String::new();
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            if !v.is_null() {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
    }
    out
}

/// `postgres://user:pw@host/db` → `postgres://user:***@host/db`.
fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
// figment's `Jail` closures return its (large) error type; that is its API.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_are_sandbox_on_a_local_sqlite_file() {
        Jail::expect_with(|_| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert!(c.sandbox());
            assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
            assert_eq!(c.public_url(), "http://127.0.0.1:8080");
            assert!(c.database_url.expose().starts_with("sqlite:"));
            Ok(())
        });
    }

    #[test]
    fn the_environment_overrides_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file("c.toml", "listen = \"127.0.0.1:9000\"\ndemo = false\n")?;
            jail.set_env("CONSULTPAY_LISTEN", "127.0.0.1:9100");
            jail.set_env("STRIPE_SECRET_KEY", "sk_test_123");
            jail.set_env("CONSULTPAY_SESSION_KEY", "0123456789abcdef0123456789abcdef");
            let c = Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.to_string(), "127.0.0.1:9100");
            assert!(!c.demo);
            assert!(!c.sandbox());
            Ok(())
        });
    }

    #[test]
    fn the_readme_documents_every_variable() {
        let readme = include_str!("../../../README.md");
        for (var, _) in ENV {
            assert!(
                readme.contains(&format!("`{var}`")),
                "{var} is not in README.md"
            );
        }
    }

    #[test]
    fn the_admin_listener_is_loopback_unless_moved_or_turned_off() {
        Jail::expect_with(|jail| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                c.admin_addr().map(|a| a.to_string()).as_deref(),
                Some("127.0.0.1:9464")
            );
            jail.set_env("CONSULTPAY_ADMIN_LISTEN", "off");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.admin_addr(), None);
            jail.set_env("CONSULTPAY_ADMIN_LISTEN", "everywhere");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.starts_with("CONSULTPAY_ADMIN_LISTEN"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_video_room_needs_a_pass_the_platform_checks() {
        let refused = |vars: &[(&str, &str)]| {
            let mut err = String::new();
            Jail::expect_with(|jail| {
                for (k, v) in vars {
                    jail.set_env(k, v);
                }
                err = Config::load(None).unwrap_err().to_string();
                Ok(())
            });
            err
        };
        let url = "https://meet.example.org/{room}?jwt={jwt}";
        let secret = "a jitsi app_secret of 32 bytes or more";
        for (vars, variable) in [
            (vec![("CONSULTPAY_VIDEO_URL", url)], "CONSULTPAY_VIDEO_URL"),
            (
                vec![
                    ("CONSULTPAY_VIDEO_URL", "https://meet.example.org/{room}"),
                    ("CONSULTPAY_VIDEO_JWT_SECRET", secret),
                ],
                "CONSULTPAY_VIDEO_URL",
            ),
            (
                vec![("CONSULTPAY_VIDEO_JWT_SECRET", "short")],
                "CONSULTPAY_VIDEO_JWT_SECRET",
            ),
            (
                vec![
                    ("CONSULTPAY_VIDEO_JWT_SECRET", secret),
                    ("CONSULTPAY_VIDEO_JWT_KEYS", "k1=/etc/k1.pem"),
                ],
                "CONSULTPAY_VIDEO_JWT_KEYS",
            ),
        ] {
            let err = refused(&vars);
            assert!(err.starts_with(variable), "{vars:?}: {err}");
        }
        Jail::expect_with(|jail| {
            jail.set_env("CONSULTPAY_VIDEO_URL", url);
            jail.set_env("CONSULTPAY_VIDEO_JWT_SECRET", secret);
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.video_subject(), "meet.example.org");
            assert_eq!(c.billing().video_url.as_deref(), Some(url));
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_variable() {
        Jail::expect_with(|jail| {
            jail.set_env("CONSULTPAY_LISTEN", "not an address");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.starts_with("CONSULTPAY_LISTEN:"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("STRIPE_SECRET_KEY", "pk_test_oops");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.contains("STRIPE_SECRET_KEY"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn stripe_mode_needs_a_shared_session_key_and_elements_a_publishable_key() {
        Jail::expect_with(|jail| {
            jail.set_env("STRIPE_SECRET_KEY", "sk_test_123");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.starts_with("CONSULTPAY_SESSION_KEY:"), "{err}");
            jail.set_env("CONSULTPAY_SESSION_KEY", "0123456789abcdef0123456789abcdef");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.warnings().len(), 1, "no webhook secret");
            jail.set_env("STRIPE_CHECKOUT", "elements");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.starts_with("STRIPE_PUBLISHABLE_KEY:"), "{err}");
            jail.set_env("STRIPE_PUBLISHABLE_KEY", "pk_test_123");
            jail.set_env("STRIPE_WEBHOOK_SECRET", "whsec_123");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.warnings().len(), 1, "no Connect endpoint secret");
            jail.set_env("STRIPE_CONNECT_WEBHOOK_SECRET", "whsec_456");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert!(c.warnings().is_empty());
            Ok(())
        });
    }

    #[test]
    fn hold_timing_is_configurable_within_what_a_card_hold_allows() {
        Jail::expect_with(|jail| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            let b = c.billing();
            assert_eq!(b.hold_lead, chrono::Duration::days(6));
            assert_eq!(b.renew_before, chrono::Duration::hours(12));
            assert_eq!(b.reconcile_after, chrono::Duration::minutes(10));
            jail.set_env("CONSULTPAY_HOLD_LEAD_HOURS", "72");
            jail.set_env("CONSULTPAY_RECONCILE_AFTER_SECS", "120");
            let b = Config::load(None).map_err(|e| e.to_string())?.billing();
            assert_eq!(b.hold_lead, chrono::Duration::hours(72));
            assert_eq!(b.reconcile_after, chrono::Duration::minutes(2));
            jail.set_env("CONSULTPAY_HOLD_LEAD_HOURS", "200");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.starts_with("CONSULTPAY_HOLD_LEAD_HOURS:"), "{err}");
            jail.set_env("CONSULTPAY_HOLD_LEAD_HOURS", "24");
            jail.set_env("CONSULTPAY_RENEW_BEFORE_HOURS", "48");
            let err = Config::load(None).unwrap_err().to_string();
            assert!(err.starts_with("CONSULTPAY_RENEW_BEFORE_HOURS:"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        Jail::expect_with(|jail| {
            jail.set_env("STRIPE_SECRET_KEY", "");
            assert!(Config::load(None).map_err(|e| e.to_string())?.sandbox());
            Ok(())
        });
    }

    #[test]
    fn printed_configuration_never_shows_secrets() {
        let c = Config {
            stripe_secret_key: Some(Secret("sk_live_very_secret".into())),
            stripe_webhook_secret: Some(Secret("whsec_also_secret".into())),
            stripe_connect_webhook_secret: Some(Secret("whsec_connect_secret".into())),
            database_url: DatabaseUrl("postgres://app:pa55word@db/consultpay".into()),
            ..Config::default()
        };
        let shown = c.redacted();
        for secret in [
            "sk_live_very_secret",
            "whsec_also_secret",
            "whsec_connect_secret",
            "pa55word",
        ] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(!format!("{c:?}").contains(secret), "{c:?}");
        }
        assert!(shown.contains("postgres://app:***@db/consultpay"));
    }
}
