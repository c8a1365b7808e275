//! Wiring: the adapters chosen by the configuration, plugged into `billing-core`'s
//! ports, and the server's life cycle (migrate, seed the sandbox demo, serve,
//! reconcile periodically, shut down gracefully).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use billing_core::gateway::SandboxStore;
use billing_core::outbox::Mailer;
use billing_core::payment::service::ReconcileReport;
use billing_core::system::{Clock, SystemClock};
use billing_core::video::PassSigner;
use billing_core::{Billing, BillingError};
use documents_pdf::PdfRenderer;
use gateway_stripe::{CheckoutKind, Gateways, SandboxConfig, SandboxGateway, StripeSettings};
use http_poem::metrics::Metrics;
use http_poem::{HttpSettings, HttpState, Readiness};
use mail_smtp::SmtpMailer;
use storage_seaorm::Store;
use tokio::sync::watch;
use video_jwt::{Audience, JwtPasses, Signing};

use crate::config::{CheckoutMode, Config};
use crate::system::{Argon2Passwords, HmacPayLinks, OsSecrets, UuidV7};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("storage: {0}")]
    Storage(String),
    #[error("payment gateway: {0}")]
    Gateway(String),
    #[error("{code}: {err}", code = .0.code(), err = .0)]
    Billing(#[from] BillingError),
    #[error("{0}")]
    Usage(String),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// The gateway chosen by the configuration: Stripe with a key, the sandbox without
/// (keeping its objects and test clock in `store`, shared by every server on it).
fn gateways(
    config: &Config,
    clock: Arc<dyn Clock>,
    public_url: &str,
    store: Arc<dyn SandboxStore>,
) -> Result<Gateways, AppError> {
    let Some(settings) = stripe_settings(config) else {
        let webhook_secrets = [
            &config.stripe_webhook_secret,
            &config.stripe_connect_webhook_secret,
        ]
        .into_iter()
        .flatten()
        .map(|s| s.expose().to_owned())
        .collect();
        let sandbox = SandboxGateway::with_store(clock, SandboxConfig::new(public_url), store);
        return Ok(gateway_stripe::sandbox_gateways_with(
            sandbox,
            webhook_secrets,
        ));
    };
    gateway_stripe::stripe_gateways(settings, clock).map_err(|e| AppError::Gateway(e.to_string()))
}

/// The Stripe adapter's settings, or `None` in sandbox mode (no key).
fn stripe_settings(config: &Config) -> Option<StripeSettings> {
    let key = config.stripe_secret_key.as_ref()?;
    let secret = |s: &Option<crate::config::Secret>| s.as_ref().map(|s| s.expose().to_owned());
    Some(StripeSettings {
        secret_key: key.expose().to_owned(),
        api_base: config.stripe_api_base.clone(),
        connect_base: config.stripe_connect_base.clone(),
        connect_client_id: config.stripe_connect_client_id.clone(),
        webhook_secret: secret(&config.stripe_webhook_secret),
        connect_webhook_secret: secret(&config.stripe_connect_webhook_secret),
        checkout: match config.stripe_checkout {
            CheckoutMode::Hosted => CheckoutKind::Hosted,
            CheckoutMode::Elements => CheckoutKind::Elements,
        },
        describe_intents: config.stripe_describe_intents,
        renewable_holds: config.stripe_renewable_holds,
    })
}

/// The built application: use cases and what the server needs beside them.
#[derive(Debug)]
pub struct App {
    pub billing: Billing,
    pub store: Store,
    pub sandbox: bool,
    pub metrics: Metrics,
    /// Keys sessions, CSRF tokens and pay links: `CONSULTPAY_SESSION_KEY`, or (sandbox
    /// only) random for this process.
    session_secret: Vec<u8>,
    /// The passes' public keys (`/.well-known/jwks.json`).
    video_jwks: Option<String>,
}

struct StoreReadiness(Store);

#[async_trait]
impl Readiness for StoreReadiness {
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

fn install_crypto_provider() {
    // sqlx and reqwest share rustls on ring; install it once (a second call is a no-op).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub async fn migrate(config: &Config) -> Result<Store, AppError> {
    install_crypto_provider();
    let store = Store::connect(config.database_url.expose())
        .await
        .map_err(|e| AppError::Storage(e.to_string()))?;
    store
        .migrate()
        .await
        .map_err(|e| AppError::Storage(e.to_string()))?;
    Ok(store)
}

impl App {
    /// Connects and migrates the database and builds the use cases on the configured
    /// gateway (Stripe with a key, the sandbox without).
    pub async fn build(config: &Config) -> Result<App, AppError> {
        Self::build_with(config, Arc::new(SystemClock)).await
    }

    /// [`App::build`] with a given clock (tests move time forward).
    pub async fn build_with(config: &Config, clock: Arc<dyn Clock>) -> Result<App, AppError> {
        let store = migrate(config).await?;
        let public_url = config.public_url();
        let billing_config = config.billing();
        let store_arc = Arc::new(store.clone());
        let metrics = Metrics::new();
        let gateways = gateways(config, clock, &public_url, store_arc.clone())?;
        if let Some(sandbox) = &gateways.sandbox {
            // Start at the sandbox's time, wherever another server moved it.
            sandbox
                .refresh()
                .await
                .map_err(|e| AppError::Storage(e.to_string()))?;
        }
        // In sandbox mode, the sandbox's test clock: the domain reads the same time.
        let clock = gateways.clock.clone();
        let session_secret = match &config.session_key {
            Some(k) => k.expose().as_bytes().to_vec(),
            None => {
                use billing_core::system::SecretGenerator;
                OsSecrets.secret().into_bytes()
            }
        };
        let passes = video_passes(config, &session_secret)?;
        let video_jwks = passes.as_ref().map(|p| p.jwks_json());
        let mut builder = Billing::builder(billing_config)
            .storage(store_arc)
            .payment_gateway(gateways.payments)
            .connect(gateways.connect)
            .webhook_verifier(gateways.webhooks)
            .renderer(Arc::new(PdfRenderer::new().map_err(BillingError::from)?))
            .clock(clock)
            .ids(Arc::new(UuidV7))
            .secrets(Arc::new(OsSecrets))
            .pay_links(Arc::new(HmacPayLinks::new(&session_secret)))
            .passwords(Arc::new(
                Argon2Passwords::new().map_err(BillingError::from)?,
            ))
            .observer(Arc::new(metrics.clone()));
        if let Some(mailer) = mailer(config)? {
            builder = builder.mailer(mailer);
        }
        if let Some(provider) = identity_provider(config, &public_url)? {
            builder = builder.identity_provider(provider);
        }
        if let Some(sandbox) = gateways.sandbox {
            builder = builder.sandbox(sandbox);
        }
        if let Some(passes) = passes {
            builder = builder.passes(Arc::new(passes) as Arc<dyn PassSigner>);
        }
        let billing = builder
            .build()
            .map_err(|e| AppError::Usage(e.to_string()))?;
        Ok(App {
            billing,
            store,
            sandbox: config.sandbox(),
            metrics,
            session_secret,
            video_jwks,
        })
    }

    pub fn http_state(&self, config: &Config) -> HttpState {
        let mut settings = HttpSettings::new(&config.public_url());
        settings.sandbox = self.sandbox;
        settings.waiting_room_url = config.waiting_room_url.clone();
        settings.stripe_publishable_key = config.stripe_publishable_key.clone();
        settings.stripe_live = stripe_settings(config).and_then(|s| s.livemode()) == Some(true);
        settings.session_secret = self.session_secret.clone();
        settings.video_jwks = self.video_jwks.clone();
        settings.body_read_timeout = Duration::from_secs(config.body_read_timeout_secs);
        settings.rate_limits = config.rate_limits();
        HttpState::new(
            self.billing.clone(),
            settings,
            Arc::new(StoreReadiness(self.store.clone())),
            self.metrics.clone(),
        )
    }
}

/// `consultpay stripe setup-webhooks`: both webhook endpoints on the platform account,
/// one JSON line each; a new endpoint's secret is printed once.
pub async fn setup_webhooks(config: &Config, url: Option<String>) -> Result<(), AppError> {
    let settings = stripe_settings(config).ok_or_else(|| {
        AppError::Usage("STRIPE_SECRET_KEY is not set: there is no Stripe account to set up".into())
    })?;
    install_crypto_provider();
    let url = url.unwrap_or_else(|| format!("{}/webhooks/stripe", config.public_url()));
    if !url.starts_with("https://") && !url.starts_with("http://") {
        return Err(AppError::Usage(format!("{url} is not an http(s) URL")));
    }
    let done = gateway_stripe::setup_webhook_endpoints(
        &settings,
        gateway_stripe::ClientOptions::default(),
        &url,
    )
    .await
    .map_err(|e| AppError::Gateway(e.to_string()))?;
    for endpoint in done {
        println!(
            "{}",
            serde_json::json!({
                "endpoint": endpoint.kind.as_str(),
                "id": endpoint.id,
                "url": endpoint.url,
                "status": endpoint.change.as_str(),
                "secret_variable": endpoint.kind.secret_variable(),
                "secret": endpoint.secret.as_ref().map(|s| s.expose()),
            })
        );
    }
    Ok(())
}

/// On an empty database in sandbox mode: a demo practitioner and their secretary, with
/// the e-mail and password each signs in with (and their API tokens), so a newcomer
/// can try every flow at once.
async fn seed_demo(app: &App, public_url: &str) -> Result<(), AppError> {
    use billing_core::system::SecretGenerator;
    if !app.billing.staff.is_empty().await? {
        return Ok(());
    }
    let practitioner = app
        .billing
        .staff
        .add_practitioner("Dr Camille Martin", Some("Europe/Paris"))
        .await?;
    let pid = billing_core::ids::PractitionerId::from_uuid(practitioner.id.as_uuid());
    let secretary = app
        .billing
        .staff
        .add_secretary("Secrétariat du Dr Martin", &[pid])
        .await?;
    // Random passwords of 16 URL-safe characters (96 bits), shown once.
    let password = || OsSecrets.secret().chars().take(16).collect::<String>();
    let accounts = [
        (
            practitioner.id,
            "camille.martin@demo.consultpay.test",
            password(),
        ),
        (secretary.id, "secretariat@demo.consultpay.test", password()),
    ];
    for (id, email, password) in &accounts {
        app.billing
            .sessions
            .set_password(*id, email, password)
            .await?;
    }
    let [(_, dr_email, dr_password), (_, sec_email, sec_password)] = &accounts;
    println!(
        "\n  Demo accounts (sandbox only): open {public_url}/dashboard and sign in with\n\
         \n    practitioner  {dr_email}\n                  password {dr_password}\
         \n    secretary     {sec_email}\n                  password {sec_password}\n\
         \n  API tokens (Authorization: Bearer …; docs at {public_url}/docs):\
         \n    practitioner  {}\n    secretary     {}\n",
        practitioner.token.expose(),
        secretary.token.expose()
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}

/// Logs what a pass of the background jobs did: each move, each hold placed, renewed
/// or refused, and at warn what it could not settle.
pub fn log_jobs(report: &ReconcileReport) {
    for c in report.changed.iter().chain(&report.holds.changed) {
        tracing::info!(payment = %c.payment, from = %c.from, to = %c.to, "payment moved by a job");
    }
    for id in &report.holds.placed {
        tracing::info!(payment = %id, "hold placed off-session");
    }
    for id in &report.holds.renewed {
        tracing::info!(payment = %id, "hold renewed off-session");
    }
    for id in &report.holds.refused {
        tracing::warn!(payment = %id, "saved card refused off-session: the patient must authorise again");
    }
    for (id, why) in &report.attention {
        tracing::warn!(payment = %id, why = %why, "reconciliation could not settle a payment");
    }
    for (id, why) in report.failed.iter().chain(&report.holds.failed) {
        tracing::warn!(payment = %id, error = %why, "the gateway could not be asked this time");
    }
    if !report.expiring.is_empty() {
        tracing::info!(
            expiring = report.expiring.len(),
            "holds near their deadline"
        );
    }
}

/// Passes to the video room, when a secret or keys are configured.
fn video_passes(config: &Config, server_secret: &[u8]) -> Result<Option<JwtPasses>, AppError> {
    let signing = if let Some(secret) = &config.video_jwt_secret {
        Signing::SharedSecret(secret.expose().as_bytes().to_vec())
    } else {
        let files = config
            .video_key_files()
            .map_err(|e| AppError::Usage(e.to_string()))?;
        if files.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::with_capacity(files.len());
        for (kid, path) in files {
            let pem = std::fs::read(&path).map_err(|e| {
                AppError::Usage(format!(
                    "CONSULTPAY_VIDEO_JWT_KEYS: key '{kid}' at {}: {e}",
                    path.display()
                ))
            })?;
            keys.push((kid, pem));
        }
        Signing::Ed25519 {
            keys,
            signing: config.video_jwt_signing_kid.clone(),
        }
    };
    let audience = Audience {
        issuer: config.video_jwt_issuer.clone(),
        audience: config.video_jwt_audience.clone(),
        subject: config.video_subject(),
    };
    JwtPasses::new(signing, audience, server_secret)
        .map(Some)
        .map_err(|e| AppError::Usage(format!("video passes: {e}")))
}

/// The mailer of `CONSULTPAY_SMTP_URL`, if set.
fn mailer(config: &Config) -> Result<Option<Arc<dyn Mailer>>, AppError> {
    let (Some(url), Some(from)) = (&config.smtp_url, &config.mail_from) else {
        return Ok(None);
    };
    let mailer = SmtpMailer::new(url.expose(), from).map_err(|e| AppError::Usage(e.to_string()))?;
    Ok(Some(Arc::new(mailer)))
}

/// The OpenID Connect provider of `CONSULTPAY_OIDC_*`, if configured.
fn identity_provider(
    config: &Config,
    public_url: &str,
) -> Result<Option<Arc<dyn billing_core::identity::IdentityProvider>>, AppError> {
    let (Some(issuer), Some(client_id), Some(secret)) = (
        &config.oidc_issuer,
        &config.oidc_client_id,
        &config.oidc_client_secret,
    ) else {
        return Ok(None);
    };
    let provider = identity_oidc::OidcProvider::new(&identity_oidc::OidcSettings {
        issuer: issuer.clone(),
        client_id: client_id.clone(),
        client_secret: secret.expose().to_owned(),
        redirect_url: format!("{public_url}/dashboard/oidc/callback"),
    })
    .map_err(|e| AppError::Usage(e.to_string()))?;
    Ok(Some(Arc::new(provider)))
}

/// How often a sandbox server catches up with the test clock other servers moved.
const SANDBOX_REFRESH: Duration = Duration::from_secs(1);

/// Runs `pass` every `every` until shutdown. Every server runs the background jobs;
/// each step claims its payment (or message) first, so several servers on one
/// database share the work without doing it twice.
async fn every<F, Fut>(every: Duration, mut stop: watch::Receiver<bool>, pass: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        pass().await;
    }
}

/// The periodic background jobs (C10, C14).
async fn jobs_pass(billing: &Billing) {
    match billing.reconcile.run_once().await {
        Ok(report) => log_jobs(&report),
        Err(e) => tracing::warn!(error = %e, "background jobs pass failed"),
    }
    // Dashboard sessions that are over (abandoned ones are never resumed), failed
    // sign-ins that no longer count, and links that expired unused.
    match billing.sessions.purge().await {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "sessions purged"),
        Err(e) => tracing::warn!(error = %e, "session purge failed"),
    }
    match billing.team.purge().await {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "expired password links purged"),
        Err(e) => tracing::warn!(error = %e, "password link purge failed"),
    }
}

/// The outbox's delivery.
async fn mail_pass(billing: &Billing) {
    match billing.outbox.deliver_due().await {
        Ok(r) if r.sent + r.retried + r.failed > 0 => {
            tracing::info!(
                sent = r.sent,
                retried = r.retried,
                failed = r.failed,
                "outbox delivered"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "outbox delivery failed"),
    }
}

pub async fn serve(config: Config) -> Result<(), AppError> {
    let app = App::build(&config).await?;
    let public_url = config.public_url();
    if app.sandbox {
        tracing::warn!("SANDBOX MODE: no STRIPE_SECRET_KEY, so no real payment is ever made");
        eprintln!(
            "\n  *** SANDBOX MODE — no real payments. Stripe is simulated in process. ***\n  \
             Set STRIPE_SECRET_KEY to use Stripe.\n"
        );
        if config.demo {
            seed_demo(&app, &public_url).await?;
        }
    }
    let state = app.http_state(&config);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut jobs = Vec::new();
    if config.reconcile_interval_secs > 0 {
        let billing = app.billing.clone();
        jobs.push(tokio::spawn(every(
            Duration::from_secs(config.reconcile_interval_secs),
            stop_rx.clone(),
            move || {
                let billing = billing.clone();
                async move { jobs_pass(&billing).await }
            },
        )));
    }
    if let Some(sandbox) = app.billing.sandbox.clone() {
        // Another server sharing the sandbox may move its test clock: follow it.
        jobs.push(tokio::spawn(every(
            SANDBOX_REFRESH,
            stop_rx.clone(),
            move || {
                let sandbox = sandbox.clone();
                async move {
                    if let Err(e) = sandbox.refresh().await {
                        tracing::warn!(error = %e, "sandbox clock refresh failed");
                    }
                }
            },
        )));
    }
    if config.mail_interval_secs > 0 && app.billing.outbox.sends() {
        let billing = app.billing.clone();
        jobs.push(tokio::spawn(every(
            Duration::from_secs(config.mail_interval_secs),
            stop_rx,
            move || {
                let billing = billing.clone();
                async move { mail_pass(&billing).await }
            },
        )));
    }
    tracing::info!(listen = %config.listen, public_url = %public_url, sandbox = app.sandbox, "ConsultPay ready");
    eprintln!(
        "  ConsultPay listening on http://{} (public URL {public_url})",
        config.listen
    );
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    // One signal stops both listeners at once (each then has the grace period).
    let (quit_tx, quit_rx) = watch::channel(false);
    let quit = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|quit| *quit).await;
    };
    // The operator's listener: metrics and health, apart from the public one.
    let admin = match config.admin_addr() {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            eprintln!("  metrics and health on http://{addr} (CONSULTPAY_ADMIN_LISTEN)");
            Some(tokio::spawn(http_poem::serve(
                listener,
                http_poem::admin(state.clone()),
                http_poem::ServerLimits {
                    max_connections: 64,
                    ..config.server_limits()
                },
                quit(quit_rx.clone()),
                grace,
            )))
        }
        None => None,
    };
    let signal = tokio::spawn(async move {
        shutdown_signal().await;
        let _ = quit_tx.send(true);
    });
    let result = http_poem::serve(
        listener,
        http_poem::app(state),
        config.server_limits(),
        quit(quit_rx),
        grace,
    )
    .await;
    signal.abort();
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    let _ = stop_tx.send(true);
    for job in jobs {
        let _ = job.await;
    }
    result.map_err(AppError::Io)
}
