//! Storage port for consultations (with their payment).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit::AuditEntry;
use crate::consultation::model::{Consultation, ConsultationRecord, PayAccess};
use crate::ids::{ConsultationId, PractitionerId};
use crate::outbox::Message;
use crate::payment::ports::ChangeLog;
use crate::repository::RepositoryError;
use crate::secrets::TokenHash;

/// Consultations, each with its payment when paid online (C3, C4, C14).
///
/// # Contract
///
/// - **Atomicity.** [`create`](ConsultationRepository::create) writes the
///   consultation, its payment, its audit entry and its messages together or not at
///   all; so does [`update_day`](ConsultationRepository::update_day) with its
///   [`ChangeLog`].
/// - **Uniqueness.** One payment per consultation; consultation ids, payment ids and
///   pay-token hashes are unique. A reused one is [`RepositoryError::Duplicate`] and
///   nothing is written; a consultation of an unknown practitioner is
///   [`RepositoryError::NotFound`].
/// - **Conditional day changes.** `update_day` writes only if the stored status,
///   start time and `started_at` are still the expected ones, decided by the store in
///   one conditional statement: of concurrent changes exactly one wins, the others
///   get [`RepositoryError::Conflict`].
/// - **Faithful round trip.** A record reads back equal (`==`) to the one written,
///   with its payment, timestamps at microsecond precision.
/// - Undecodable stored data is [`RepositoryError::Corrupt`] (never a panic); an
///   outage is [`RepositoryError::Unavailable`].
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ConsultationRepository: Send + Sync {
    /// Stores the consultation and its payment (if any), appends `audit` and queues
    /// `messages` (the pay link e-mail), all in one transaction. MUST return
    /// [`RepositoryError::Duplicate`] if the consultation id, the payment id or the
    /// pay-token hash is already stored (nothing is written).
    async fn create(
        &self,
        record: &ConsultationRecord,
        audit: &AuditEntry,
        messages: &[Message],
    ) -> Result<(), RepositoryError>;

    /// MUST return [`RepositoryError::NotFound`] if there is no such consultation.
    async fn get(&self, id: ConsultationId) -> Result<ConsultationRecord, RepositoryError>;

    /// The consultation opened by a pay token. MUST return
    /// [`RepositoryError::NotFound`] for an unknown hash.
    async fn find_by_pay_token(
        &self,
        hash: &TokenHash,
    ) -> Result<ConsultationRecord, RepositoryError>;

    /// What the waiting-room gate needs of the consultation opened by a pay token (the
    /// patient's page polls it). The default reads the whole record; a store should
    /// read only these columns. MUST return [`RepositoryError::NotFound`] for an
    /// unknown hash, and agree with [`find_by_pay_token`](Self::find_by_pay_token).
    async fn pay_access(&self, hash: &TokenHash) -> Result<PayAccess, RepositoryError> {
        self.find_by_pay_token(hash)
            .await
            .map(|record| PayAccess::of(&record))
    }

    /// Replaces the consultation's pay-token hash and the link's generation: the
    /// previous link stops working. MUST return [`RepositoryError::NotFound`] if there
    /// is no such consultation.
    async fn replace_pay_token(
        &self,
        id: ConsultationId,
        hash: &TokenHash,
        generation: u32,
    ) -> Result<(), RepositoryError>;

    /// Writes `next`'s day — its status, start time, `started_at` and
    /// `rescheduled_at` — if the stored consultation's status, start time and
    /// `started_at` are still `expected`'s, with `log`'s history, audit and messages in
    /// the same transaction. MUST return [`RepositoryError::Conflict`] (nothing written)
    /// if any of the three changed meanwhile, [`RepositoryError::NotFound`] if there
    /// is no such consultation.
    async fn update_day(
        &self,
        next: &Consultation,
        expected: &Consultation,
        log: &ChangeLog,
    ) -> Result<(), RepositoryError>;

    /// Consultations of these practitioners starting at or after `from`, soonest
    /// first (ties by id), at most `limit`; none for an empty list.
    async fn upcoming(
        &self,
        practitioners: &[PractitionerId],
        from: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ConsultationRecord>, RepositoryError>;
}
