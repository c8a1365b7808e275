//! Ports to the world outside the domain that are not storage or Stripe: time,
//! identifiers and randomness. Injected so tests are deterministic and the core
//! never reads the OS on its own.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The current time.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock. Reading the time is not I/O the core needs to hide from embedders,
/// so this one implementation lives here.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// New unique identifiers. Implementations SHOULD return time-ordered UUIDs (v7) so
/// that indexes stay compact; uniqueness is the only hard requirement.
#[cfg_attr(test, mockall::automock)]
pub trait IdGenerator: Send + Sync {
    fn new_id(&self) -> Uuid;
}

/// Unguessable secrets (pay tokens, staff tokens, OAuth `state`).
#[cfg_attr(test, mockall::automock)]
pub trait SecretGenerator: Send + Sync {
    /// MUST return at least 256 bits from a cryptographically secure source, encoded
    /// with URL-safe characters only (`A–Z a–z 0–9 - _`).
    fn secret(&self) -> String;
}

/// The clock's time truncated to microseconds, the precision every store keeps, so a
/// value read back equals the value written.
pub fn now_micros(clock: &dyn Clock) -> DateTime<Utc> {
    use chrono::SubsecRound;
    clock.now().trunc_subsecs(6)
}
