//! Storage ports for practitioners, their OAuth states and their services.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditEntry;
use crate::ids::{ConnectedAccountId, PractitionerId, ServiceId};
use crate::practitioner::model::{Practitioner, Service};
use crate::repository::RepositoryError;
use crate::secrets::TokenHash;

/// Practitioners with their Stripe link and preferences (one aggregate).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PractitionerRepository: Send + Sync {
    /// MUST return [`RepositoryError::NotFound`] if there is no such practitioner.
    async fn get(&self, id: PractitionerId) -> Result<Practitioner, RepositoryError>;

    /// The practitioner whose link (pending, linked or revoked) is about `account`.
    /// `Ok(None)` if there is none.
    async fn find_by_account(
        &self,
        account: &ConnectedAccountId,
    ) -> Result<Option<Practitioner>, RepositoryError>;

    /// Stores `practitioner` (with its new, higher version) if the stored version is
    /// still `expected_version`, and appends `audit` in the same transaction. MUST
    /// return [`RepositoryError::Conflict`] (and write nothing) if the stored version
    /// differs, [`RepositoryError::NotFound`] if it does not exist.
    async fn update(
        &self,
        practitioner: &Practitioner,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError>;
}

/// An OAuth `state` issued to a practitioner, stored by hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthStateRecord {
    pub hash: TokenHash,
    pub practitioner: PractitionerId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Single-use OAuth states.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait OAuthStateRepository: Send + Sync {
    /// MUST return [`RepositoryError::Duplicate`] if the hash is already stored.
    async fn insert(&self, record: &OAuthStateRecord) -> Result<(), RepositoryError>;

    /// Consumes the state: returns its record exactly once, even under concurrent
    /// calls. An unknown or already consumed state MUST be [`RepositoryError::NotFound`].
    /// Expiry is the caller's to check (an expired state is consumed all the same).
    async fn consume(&self, hash: &TokenHash) -> Result<OAuthStateRecord, RepositoryError>;
}

/// The practitioners' catalogues of priced services.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ServiceRepository: Send + Sync {
    /// MUST return [`RepositoryError::Duplicate`] if the id exists.
    async fn create(&self, service: &Service, audit: &AuditEntry) -> Result<(), RepositoryError>;

    /// MUST return [`RepositoryError::NotFound`] if there is no such service.
    async fn get(&self, id: ServiceId) -> Result<Service, RepositoryError>;

    /// The practitioner's services by name; inactive ones only if asked.
    async fn list(
        &self,
        practitioner: PractitionerId,
        include_inactive: bool,
    ) -> Result<Vec<Service>, RepositoryError>;

    /// Replaces the service (last write wins). MUST return
    /// [`RepositoryError::NotFound`] if it does not exist.
    async fn update(&self, service: &Service, audit: &AuditEntry) -> Result<(), RepositoryError>;
}
