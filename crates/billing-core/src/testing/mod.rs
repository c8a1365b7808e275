//! What an embedder tests with (the `testing` feature, off by default).
//!
//! - [`MemoryStore`]: every storage port in memory, with the same concurrency contract
//!   as a database adapter (versions, conditional writes, unique claims). It passes the
//!   [`conformance`] suite.
//! - [`FakeGateway`]: a scriptable payment processor (holds, declines, timeouts,
//!   unknown outcomes, webhooks) that records every call it was given.
//! - [`FixedClock`], [`SequentialIds`] and [`SequentialSecrets`]: time that moves only
//!   when told, and identifiers and secrets that are the same on every run;
//!   [`FastHasher`]: passwords checked without Argon2's wait.
//! - [`Practice`]: all of that wired into [`Billing`](crate::Billing), with a
//!   practitioner whose Stripe account is linked and consultations held on demand.
//! - [`build`]: payments in each state of the state machine, made through the domain's
//!   own transitions.
//! - [`conformance`]: every behaviour a storage adapter must have, written once as
//!   functions any adapter's tests call with a fresh store.
//!
//! Nothing here does I/O or needs an async runtime of its own ([`block_on`] runs a
//! test); the suite's concurrent cases run their callers as joined futures, so a
//! database adapter sees them on several connections at once.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::ids::ConsultationId;
use crate::receipt::{DocumentRenderer, RenderError, Sheet};
use crate::secrets::PayToken;
use crate::system::{Clock, IdGenerator, PayLinkSigner, SecretGenerator};

pub mod build;
pub mod conformance;
mod gateway;
mod memory;
mod practice;

pub use gateway::{Delivery, FakeGateway, GatewayCall, HOLD_LIFETIME_DAYS, Op, Script};
pub use memory::MemoryStore;
pub use practice::{Practice, PracticeError};

/// A clock that shows one instant until it is moved: [`FixedClock::advance`] and
/// [`FixedClock::set`]. Shared through an `Arc` by the use cases and the test.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    /// A clock showing `at`.
    pub fn at(at: DateTime<Utc>) -> Self {
        FixedClock(Mutex::new(at))
    }

    /// Moves the clock by `by` (backwards too, for a test that needs it) and returns
    /// the new time.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        let mut now = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
        *now
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Identifiers 1, 2, 3, … (as UUIDs, plus an optional fixed high part so two
/// generators in one test never collide): the same on every run.
#[derive(Debug, Default)]
pub struct SequentialIds {
    prefix: u64,
    next: AtomicU64,
}

impl SequentialIds {
    /// Ids `{prefix}-0…1`, `{prefix}-0…2`, …: `prefix` fills the UUID's high 64 bits.
    pub fn with_prefix(prefix: u64) -> Self {
        SequentialIds {
            prefix,
            next: AtomicU64::new(0),
        }
    }
}

impl IdGenerator for SequentialIds {
    fn new_id(&self) -> Uuid {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        Uuid::from_u128((u128::from(self.prefix) << 64) | u128::from(n))
    }
}

/// Secrets `s000…001`, `s000…002`, …: 43 URL-safe characters like a real 256-bit
/// secret, but predictable, so a test can write the token it expects. Never use it
/// outside tests.
#[derive(Debug, Default)]
pub struct SequentialSecrets(AtomicU64);

impl SecretGenerator for SequentialSecrets {
    fn secret(&self) -> String {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        format!("s{n:0>42}")
    }
}

/// Runs a future to completion on the calling thread: enough for tests of use cases
/// whose ports (like everything in this module) never need a runtime's timers or
/// I/O. A test that uses a real database adapter needs that adapter's runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::Thread;

    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }

    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// Password "hashing" for tests: fast and deterministic (a SHA-256 with no salt), so
/// tests that sign in do not wait on Argon2. Never use it outside tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher;

impl FastHasher {
    fn digest(password: &str) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(password.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("fast${hex}")
    }
}

#[async_trait::async_trait]
impl crate::password::PasswordHasher for FastHasher {
    async fn hash(
        &self,
        password: &crate::password::Password,
    ) -> Result<crate::password::PasswordHash, crate::password::HashError> {
        Ok(crate::password::PasswordHash::from_stored(Self::digest(
            password.expose(),
        )))
    }

    async fn verify(
        &self,
        password: &crate::password::Password,
        hash: &crate::password::PasswordHash,
    ) -> bool {
        Self::digest(password.expose()) == hash.as_str()
    }

    fn decoy(&self) -> crate::password::PasswordHash {
        crate::password::PasswordHash::from_stored(format!("fast${}", "0".repeat(64)))
    }
}

/// Pay links derived in the open, `pay_l{consultation}g{generation}`: deterministic
/// like the server's HMAC links, so a test can compute the link it expects, but
/// guessable. Never use it outside tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenPayLinks;

impl PayLinkSigner for OpenPayLinks {
    fn pay_token(&self, consultation: ConsultationId, generation: u32) -> PayToken {
        PayToken::from_random(&format!(
            "l{}g{generation}",
            consultation.as_uuid().simple()
        ))
    }
}

/// Renders receipts and credit notes as plain UTF-8 text (one line per item of the
/// [`Sheet`], in order) instead of a PDF, so a test can read what a document says.
#[derive(Debug, Default, Clone, Copy)]
pub struct TextRenderer;

impl DocumentRenderer for TextRenderer {
    fn pdf(&self, sheet: &Sheet) -> Result<Vec<u8>, RenderError> {
        let mut lines = vec![
            sheet.title.clone(),
            sheet.number.clone(),
            sheet.issued.clone(),
        ];
        lines.extend(sheet.issuer.iter().cloned());
        lines.push(sheet.patient.clone());
        lines.extend(
            sheet
                .rows
                .iter()
                .map(|(label, value)| format!("{label}: {value}")),
        );
        lines.push(format!("{}: {}", sheet.total.0, sheet.total.1));
        lines.extend(sheet.mentions.iter().cloned());
        Ok(lines.join("\n").into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn the_fixed_clock_moves_only_when_told() {
        let t = Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap();
        let clock = FixedClock::at(t);
        assert_eq!(clock.now(), t);
        assert_eq!(clock.advance(Duration::days(8)), t + Duration::days(8));
        assert_eq!(clock.now(), t + Duration::days(8));
        clock.set(t);
        assert_eq!(clock.now(), t);
    }

    #[test]
    fn block_on_runs_joined_futures_that_wait_for_each_other() {
        let lock = futures_util::lock::Mutex::new(0);
        let bump = || async {
            let mut n = lock.lock().await;
            conformance::fixtures::yield_now().await;
            *n += 1;
        };
        block_on(futures_util::future::join3(bump(), bump(), bump()));
        assert_eq!(block_on(lock.lock()).clone(), 3);
    }

    #[test]
    fn sequential_ids_and_secrets_repeat_across_runs_and_never_within_one() {
        let ids = SequentialIds::with_prefix(7);
        assert_eq!(ids.new_id(), Uuid::from_u128((7 << 64) | 1));
        assert_eq!(ids.new_id(), Uuid::from_u128((7 << 64) | 2));
        let secrets = SequentialSecrets::default();
        let first = secrets.secret();
        assert_eq!(first.len(), 43);
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(first, secrets.secret());
    }
}
