//! What every repository port may answer besides success.
//!
//! Each port method documents which of these it MUST return and when; the storage
//! adapter's test suite checks that text against SQLite and PostgreSQL.

/// A repository failure a use case can act on, or an outage it cannot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError {
    /// The thing asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A unique fact already exists (same id, same event id, same idempotency key…).
    #[error("already exists: {0}")]
    Duplicate(&'static str),
    /// A conditional write lost: the stored version is no longer the expected one.
    /// Nothing was written.
    #[error("modified concurrently")]
    Conflict,
    /// Stored data cannot be turned back into a domain value.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database could not be reached or failed; nothing is known to be written.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl RepositoryError {
    /// Wraps any adapter error as an outage.
    pub fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        RepositoryError::Unavailable(Box::new(err))
    }
}
