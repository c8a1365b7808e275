//! Ports to the world outside the domain that are not storage or Stripe: time,
//! identifiers and randomness. Injected so tests are deterministic and the core
//! never reads the OS on its own.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The current time.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    /// The current instant, in UTC. Every use case reads the time here, never from the OS.
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

/// A clock that can be moved forward: another clock plus an offset. The sandbox's test
/// clock (`POST /sandbox/clock/advance`), so time is tested, never waited for. It only
/// ever moves forward.
#[derive(Debug)]
pub struct OffsetClock<C> {
    base: C,
    offset_micros: std::sync::atomic::AtomicI64,
}

impl<C: Clock> OffsetClock<C> {
    /// A clock that reads `base`, with no offset yet.
    pub fn new(base: C) -> Self {
        OffsetClock {
            base,
            offset_micros: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Moves the clock forward by `by` (a negative or overflowing step moves nothing)
    /// and returns the new time.
    pub fn advance(&self, by: chrono::Duration) -> DateTime<Utc> {
        use std::sync::atomic::Ordering;
        if let Some(step) = by.num_microseconds().filter(|s| *s > 0) {
            let _ = self
                .offset_micros
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |o| o.checked_add(step));
        }
        self.now()
    }

    /// How far ahead of the base clock this one is.
    pub fn offset(&self) -> chrono::Duration {
        chrono::Duration::microseconds(self.offset_micros.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Moves the clock forward to `offset` ahead of the base clock, if it is behind
    /// that (a clock shared by several processes catches up with the one that moved
    /// it; it never goes back).
    pub fn catch_up(&self, offset: chrono::Duration) {
        if let Some(target) = offset.num_microseconds() {
            self.offset_micros
                .fetch_max(target, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl<C: Clock> Clock for OffsetClock<C> {
    fn now(&self) -> DateTime<Utc> {
        let offset = self.offset_micros.load(std::sync::atomic::Ordering::SeqCst);
        let base = self.base.now();
        base.checked_add_signed(chrono::Duration::microseconds(offset))
            .unwrap_or(base)
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

/// New unique identifiers. Implementations SHOULD return time-ordered UUIDs (v7) so
/// that indexes stay compact; uniqueness is the only hard requirement.
#[cfg_attr(test, mockall::automock)]
pub trait IdGenerator: Send + Sync {
    /// A UUID never returned before (by any process sharing the store).
    fn new_id(&self) -> Uuid;
}

/// Pay tokens derived from a server key (an HMAC of the consultation and the link's
/// generation), so that a consultation's link can be shown and sent again without
/// being stored: storage keeps only its hash. Reissuing a link moves to the next
/// generation, which retires the previous one.
#[cfg_attr(test, mockall::automock)]
pub trait PayLinkSigner: Send + Sync {
    /// MUST be deterministic for one key, unguessable without it (≥ 256 bits), and
    /// return a token of 43 URL-safe characters after the `pay_` prefix.
    fn pay_token(
        &self,
        consultation: crate::ids::ConsultationId,
        generation: u32,
    ) -> crate::secrets::PayToken;
}

/// Unguessable secrets (staff tokens, OAuth `state`).
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    struct Fixed;
    impl Clock for Fixed {
        fn now(&self) -> DateTime<Utc> {
            Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap()
        }
    }

    #[test]
    fn an_offset_clock_only_moves_forward() {
        let clock = OffsetClock::new(Fixed);
        assert_eq!(clock.now(), Fixed.now());
        assert_eq!(
            clock.advance(Duration::days(9)),
            Fixed.now() + Duration::days(9)
        );
        assert_eq!(
            clock.advance(-Duration::days(3)),
            Fixed.now() + Duration::days(9)
        );
        assert_eq!(
            clock.advance(Duration::zero()),
            Fixed.now() + Duration::days(9)
        );
        assert_eq!(clock.now(), Fixed.now() + Duration::days(9));
    }
}
