//! What the suites share: a clock tests move, requests for fresh payments, a plain
//! HTTP client for what a browser would do.

use std::sync::{Arc, Mutex};

use billing_core::gateway::{
    CheckoutMode, CheckoutRequest, HoldRequest, SandboxHead, SandboxRow, SandboxStore, SandboxWrite,
};
use billing_core::ids::{ConnectedAccountId, PaymentId};
use billing_core::money::{Currency, Money};
use billing_core::payment::model::{IdempotencyKey, Lang};
use billing_core::repository::RepositoryError;
use billing_core::system::Clock;
use chrono::{DateTime, Duration, TimeZone, Utc};

pub fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::Eur)
}

/// A clock that stands still until a test moves it.
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    pub fn new() -> Arc<TestClock> {
        Arc::new(TestClock(Mutex::new(
            Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap(),
        )))
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap();
        *now += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// A payment id no other test uses.
pub fn fresh_payment() -> PaymentId {
    random_uuid().parse().expect("a UUID")
}

/// A random version-4 UUID, as text.
fn random_uuid() -> String {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let a = RandomState::new().hash_one(n);
    let b = RandomState::new().hash_one(!n);
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// A hold for a fresh payment. The description is empty: localstripe refuses a
/// `description` parameter on PaymentIntents (Stripe accepts it), and an empty one is
/// not sent.
pub fn hold(account: &ConnectedAccountId, amount: Money) -> HoldRequest {
    let payment = fresh_payment();
    HoldRequest {
        account: account.clone(),
        payment,
        consultation: random_uuid().parse().expect("a UUID"),
        amount,
        description: String::new(),
        statement_descriptor_suffix: None,
        off_session: None,
        key: IdempotencyKey::checkout(payment, 1),
    }
}

pub fn checkout(hold: HoldRequest) -> CheckoutRequest {
    CheckoutRequest {
        hold,
        success_url: "http://127.0.0.1:8080/pay/tok?checkout=success".into(),
        cancel_url: "http://127.0.0.1:8080/pay/tok?checkout=cancel".into(),
        existing_intent: None,
        customer_email: None,
        mode: CheckoutMode::Hold,
        locale: Lang::Fr,
    }
}

/// A plain HTTP client (what a browser or localstripe's own API needs).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("an HTTP client")
}

/// A [`SandboxStore`](billing_core::gateway::SandboxStore) in memory with the port's
/// contract (one writer at a time, a dropped write changes nothing), as servers on one
/// database share it; `failing` makes the next commits fail as an outage would.
#[derive(Clone, Default)]
pub struct MemorySandboxStore {
    rows: Arc<tokio::sync::Mutex<StoredRows>>,
    pub failing: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Default)]
struct StoredRows {
    version: i64,
    clock_offset: Duration,
    rows: std::collections::HashMap<(String, String), (i64, String)>,
}

impl StoredRows {
    fn head(&self) -> SandboxHead {
        SandboxHead {
            version: self.version,
            clock_offset: self.clock_offset,
        }
    }
}

struct MemoryWrite {
    rows: tokio::sync::OwnedMutexGuard<StoredRows>,
    failing: bool,
}

#[async_trait::async_trait]
impl SandboxStore for MemorySandboxStore {
    async fn begin(&self) -> Result<Box<dyn SandboxWrite>, RepositoryError> {
        Ok(Box::new(MemoryWrite {
            rows: self.rows.clone().lock_owned().await,
            failing: self.failing.load(std::sync::atomic::Ordering::SeqCst),
        }))
    }

    async fn head(&self) -> Result<SandboxHead, RepositoryError> {
        Ok(self.rows.lock().await.head())
    }
}

#[async_trait::async_trait]
impl SandboxWrite for MemoryWrite {
    fn head(&self) -> SandboxHead {
        self.rows.head()
    }

    async fn changed_since(&mut self, version: i64) -> Result<Vec<SandboxRow>, RepositoryError> {
        Ok(self
            .rows
            .rows
            .iter()
            .filter(|(_, (v, _))| *v > version)
            .map(|((kind, id), (_, body))| SandboxRow {
                kind: kind.clone(),
                id: id.clone(),
                body: body.clone(),
            })
            .collect())
    }

    async fn commit(
        mut self: Box<Self>,
        rows: Vec<SandboxRow>,
        clock_offset: Duration,
    ) -> Result<SandboxHead, RepositoryError> {
        if self.failing {
            return Err(RepositoryError::unavailable(std::io::Error::other(
                "the database went away",
            )));
        }
        let version = self.rows.version + 1;
        for row in rows {
            self.rows
                .rows
                .insert((row.kind, row.id), (version, row.body));
        }
        self.rows.version = version;
        self.rows.clock_offset = clock_offset;
        Ok(self.rows.head())
    }
}
