//! Storage ports for practitioners, their OAuth states and their services.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditEntry;
use crate::ids::{ConnectedAccountId, PractitionerId, ServiceId};
use crate::practitioner::model::{Practitioner, Service};
use crate::repository::RepositoryError;
use crate::secrets::TokenHash;

/// Practitioners with their Stripe link and preferences (one aggregate).
///
/// Practitioners are created with their staff user
/// ([`UserRepository::create_practitioner`](crate::staff::UserRepository::create_practitioner)).
///
/// # Contract
///
/// - **Optimistic concurrency.** [`update`](PractitionerRepository::update) writes
///   only if the stored version is still the expected one, decided by the store in
///   one conditional statement: of concurrent updates from one version exactly one
///   succeeds, the others get [`RepositoryError::Conflict`] with nothing written.
/// - **Atomicity.** The practitioner and its audit entry commit together.
/// - **Faithful round trip.** A practitioner reads back equal (`==`) to the one
///   written, with every kind of [`StripeLink`](crate::practitioner::model::StripeLink),
///   its preferences, profile and statement text.
/// - Undecodable stored data is [`RepositoryError::Corrupt`] (never a panic); an
///   outage is [`RepositoryError::Unavailable`].
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
    /// The SHA-256 of the `state` sent to Stripe.
    pub hash: TokenHash,
    /// Who started linking.
    pub practitioner: PractitionerId,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it stops being accepted ([`BillingConfig::oauth_state_ttl`] after issue).
    ///
    /// [`BillingConfig::oauth_state_ttl`]: crate::BillingConfig::oauth_state_ttl
    pub expires_at: DateTime<Utc>,
}

/// Single-use OAuth states.
///
/// # Contract
///
/// - A state is stored once: a second insert of its hash is
///   [`RepositoryError::Duplicate`].
/// - A state is consumed once: of any number of concurrent
///   [`consume`](OAuthStateRepository::consume)s exactly one gets the record; every
///   other, and every later one, is [`RepositoryError::NotFound`].
/// - Only hashes are stored, never the state itself.
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
///
/// # Contract
///
/// - A service id is stored once ([`RepositoryError::Duplicate`] otherwise); an
///   unknown one is [`RepositoryError::NotFound`].
/// - A service and its audit entry commit together.
/// - Services read back equal (`==`) to what was written; a list is sorted by name,
///   comparing code points (not a database collation), ties by id, and includes
///   withdrawn services only when asked.
/// - An update replaces the service: last write wins (a service has no version).
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
