//! Wiring: the adapters chosen by the configuration, plugged into `billing-core`'s
//! ports, and the server's life cycle (migrate, seed the sandbox demo, serve,
//! reconcile periodically, shut down gracefully).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use billing_core::system::{Clock, SystemClock};
use billing_core::{Billing, BillingConfig, BillingError, Deps};
use gateway_stripe::{CheckoutKind, Gateways, StripeSettings};
use http_poem::metrics::Metrics;
use http_poem::{HttpSettings, HttpState, Readiness};
use poem::Server;
use poem::listener::TcpListener;
use storage_seaorm::Store;
use tokio::sync::watch;

use crate::config::{CheckoutMode, Config};
use crate::system::{OsSecrets, UuidV7};

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

/// The gateway chosen by the configuration: Stripe with a key, the sandbox without.
fn gateways(
    config: &Config,
    clock: Arc<dyn Clock>,
    public_url: &str,
) -> Result<Gateways, AppError> {
    let webhook_secret = config
        .stripe_webhook_secret
        .as_ref()
        .map(|s| s.expose().to_owned());
    let Some(key) = &config.stripe_secret_key else {
        return Ok(gateway_stripe::sandbox_gateways(
            clock,
            public_url,
            webhook_secret,
        ));
    };
    gateway_stripe::stripe_gateways(
        StripeSettings {
            secret_key: key.expose().to_owned(),
            api_base: config.stripe_api_base.clone(),
            connect_base: config.stripe_connect_base.clone(),
            connect_client_id: config.stripe_connect_client_id.clone(),
            webhook_secret,
            checkout: match config.stripe_checkout {
                CheckoutMode::Hosted => CheckoutKind::Hosted,
                CheckoutMode::Elements => CheckoutKind::Elements,
            },
            describe_intents: config.stripe_describe_intents,
        },
        clock,
    )
    .map_err(|e| AppError::Gateway(e.to_string()))
}

/// The built application: use cases and what the server needs beside them.
#[derive(Debug)]
pub struct App {
    pub billing: Billing,
    pub store: Store,
    pub sandbox: bool,
    pub metrics: Metrics,
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
        let billing_config = BillingConfig::new(&public_url);
        let store_arc = Arc::new(store.clone());
        let metrics = Metrics::new();
        let gateways = gateways(config, clock.clone(), &public_url)?;
        let deps = Deps {
            practitioners: store_arc.clone(),
            oauth_states: store_arc.clone(),
            services: store_arc.clone(),
            consultations: store_arc.clone(),
            payments: store_arc.clone(),
            webhook_inbox: store_arc.clone(),
            idempotency: store_arc.clone(),
            users: store_arc.clone(),
            audit: store_arc,
            gateway: gateways.payments,
            connect: gateways.connect,
            webhook_verifier: gateways.webhooks,
            sandbox: gateways.sandbox,
            clock,
            ids: Arc::new(UuidV7),
            secrets: Arc::new(OsSecrets),
            observer: Some(Arc::new(metrics.clone())),
        };
        Ok(App {
            billing: Billing::new(deps, billing_config),
            store,
            sandbox: config.sandbox(),
            metrics,
        })
    }

    pub fn http_state(&self, config: &Config) -> HttpState {
        let mut settings = HttpSettings::new(&config.public_url());
        settings.sandbox = self.sandbox;
        settings.waiting_room_url = config.waiting_room_url.clone();
        settings.stripe_publishable_key = config.stripe_publishable_key.clone();
        settings.session_secret = match &config.session_key {
            Some(k) => k.expose().as_bytes().to_vec(),
            None => {
                use billing_core::system::SecretGenerator;
                OsSecrets.secret().into_bytes()
            }
        };
        HttpState::new(
            self.billing.clone(),
            settings,
            Arc::new(StoreReadiness(self.store.clone())),
            self.metrics.clone(),
        )
    }
}

/// On an empty database in sandbox mode: a demo practitioner and their secretary, with
/// their tokens and where to go, so a newcomer can try every flow at once.
async fn seed_demo(app: &App, public_url: &str) -> Result<(), AppError> {
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
    println!(
        "\n  Demo accounts (sandbox only):\n\
         \n    practitioner  id {}\n                  token {}\
         \n    secretary     id {}\n                  token {}\n\
         \n  Open {public_url}/dashboard and sign in with a token.\n  API: {public_url}/docs\n",
        practitioner.id,
        practitioner.token.expose(),
        secretary.id,
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

/// The periodic reconciliation job (C10), until shutdown.
async fn reconcile_loop(billing: Billing, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        match billing.reconcile.run_once().await {
            Ok(report) => {
                for c in &report.changed {
                    tracing::info!(payment = %c.payment, from = %c.from, to = %c.to, "reconciled");
                }
                if !report.expiring.is_empty() || !report.failed.is_empty() {
                    tracing::info!(
                        expiring = report.expiring.len(),
                        failed = report.failed.len(),
                        "reconciliation pass"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "reconciliation pass failed"),
        }
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
    let job = (config.reconcile_interval_secs > 0).then(|| {
        tokio::spawn(reconcile_loop(
            app.billing.clone(),
            Duration::from_secs(config.reconcile_interval_secs),
            stop_rx,
        ))
    });
    tracing::info!(listen = %config.listen, public_url = %public_url, sandbox = app.sandbox, "ConsultPay ready");
    eprintln!(
        "  ConsultPay listening on http://{} (public URL {public_url})",
        config.listen
    );
    let result = Server::new(TcpListener::bind(config.listen))
        .run_with_graceful_shutdown(
            http_poem::app(state),
            shutdown_signal(),
            Some(Duration::from_secs(config.shutdown_grace_secs)),
        )
        .await;
    let _ = stop_tx.send(true);
    if let Some(job) = job {
        let _ = job.await;
    }
    result.map_err(AppError::Io)
}
