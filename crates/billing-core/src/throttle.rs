//! Sign-in throttling kept in the store, so that every server of a practice counts the
//! same failures: after [`SignInThrottle::per_account`] wrong passwords for one e-mail,
//! or [`SignInThrottle::per_address`] from one address, within
//! [`SignInThrottle::window`], sign-in with that e-mail (or from that address) is
//! refused until the oldest of those failures leaves the window.
//!
//! The account is the e-mail as typed (trimmed, lower case), whether or not anyone
//! signs in with it: a throttled unknown e-mail looks exactly like a throttled real one,
//! so the refusal says nothing about who has an account. Keys are stored hashed.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::repository::RepositoryError;
use crate::secrets::TokenHash;

/// What a failure counts against, stored as a hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ThrottleKey(TokenHash);

impl ThrottleKey {
    /// An account, by the e-mail typed (trimmed and in lower case here).
    pub fn account(email: &str) -> Self {
        ThrottleKey(TokenHash::of(&format!(
            "account:{}",
            email.trim().to_lowercase()
        )))
    }

    /// A client address, as the HTTP adapter names it (an IPv6 client by its /64).
    pub fn address(address: &str) -> Self {
        ThrottleKey(TokenHash::of(&format!("address:{address}")))
    }

    /// Rebuilds a key read back from storage.
    pub fn from_stored(hex: String) -> Self {
        ThrottleKey(TokenHash::from_stored(hex))
    }

    /// The stored form (64 hex digits).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// How many failed sign-ins are allowed, and over how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignInThrottle {
    /// Failures per account (e-mail) within the window.
    pub per_account: u32,
    /// Failures per client address within the window (several people may share an
    /// address: a practice behind one router).
    pub per_address: u32,
    /// The window.
    pub window: Duration,
}

impl Default for SignInThrottle {
    /// 5 per account and 30 per address in 15 minutes.
    fn default() -> Self {
        SignInThrottle {
            per_account: 5,
            per_address: 30,
            window: Duration::minutes(15),
        }
    }
}

impl SignInThrottle {
    /// When a key with these `failures` (newest first, within the window) may try
    /// again, if it is throttled at `now`: once the `limit`-th newest failure is older
    /// than the window. A limit of 0 throttles nothing.
    pub fn retry_at(
        &self,
        failures: &[DateTime<Utc>],
        limit: u32,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let nth = usize::try_from(limit).ok()?.checked_sub(1)?;
        let until = *failures.get(nth)? + self.window;
        (until > now).then_some(until)
    }
}

/// Failed sign-ins, counted per [`ThrottleKey`].
///
/// # Contract
///
/// - **Counted by every server.** A failure recorded by one caller is seen by every
///   later [`failures_since`](FailedSignIns::failures_since), whoever asks; concurrent
///   failures are each counted.
/// - **Cleared per key.** [`clear_failures`](FailedSignIns::clear_failures) forgets one
///   key's failures, no other's.
/// - Times read back at the microsecond; an outage is
///   [`RepositoryError::Unavailable`].
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait FailedSignIns: Send + Sync {
    /// Records a failed sign-in against each of `keys` at `at`, together.
    async fn record_failure(
        &self,
        keys: &[ThrottleKey],
        at: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;

    /// The times of `key`'s failures after `since`, newest first.
    async fn failures_since(
        &self,
        key: &ThrottleKey,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, RepositoryError>;

    /// Forgets `key`'s failures (a successful sign-in).
    async fn clear_failures(&self, key: &ThrottleKey) -> Result<(), RepositoryError>;

    /// Deletes every failure at or before `before`; how many. (A job: any server may
    /// run it.)
    async fn purge_failures(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap() + Duration::minutes(minute)
    }

    #[test]
    fn a_key_is_throttled_until_its_limit_th_newest_failure_leaves_the_window() {
        let t = SignInThrottle::default();
        // Newest first: failures at minutes 10, 8, 6, 4, 2.
        let failures: Vec<_> = [10, 8, 6, 4, 2].into_iter().map(at).collect();
        assert_eq!(t.retry_at(&failures[..4], 5, at(11)), None, "4 of 5");
        assert_eq!(t.retry_at(&failures, 5, at(11)), Some(at(17)));
        assert_eq!(t.retry_at(&failures, 5, at(17)), None, "the oldest left");
        assert_eq!(t.retry_at(&failures, 3, at(11)), Some(at(21)));
        assert_eq!(t.retry_at(&failures, 0, at(11)), None, "0: no limit");
    }

    #[test]
    fn keys_are_hashed_and_accounts_normalised() {
        let a = ThrottleKey::account(" Camille@Example.org ");
        assert_eq!(a, ThrottleKey::account("camille@example.org"));
        assert_ne!(a, ThrottleKey::address("camille@example.org"));
        assert_eq!(a.as_str().len(), 64);
        assert!(!a.as_str().contains("camille"));
    }
}
