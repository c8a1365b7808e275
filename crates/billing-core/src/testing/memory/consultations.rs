//! [`ConsultationRepository`]: a consultation and its payment are written together.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, State, count};
use crate::audit::AuditEntry;
use crate::consultation::model::{Consultation, ConsultationRecord};
use crate::consultation::ports::ConsultationRepository;
use crate::ids::{ConsultationId, PractitionerId};
use crate::outbox::Message;
use crate::payment::ports::ChangeLog;
use crate::repository::RepositoryError;
use crate::secrets::TokenHash;

impl State {
    /// The consultation with its payment.
    fn record(&self, consultation: &Consultation) -> ConsultationRecord {
        ConsultationRecord {
            consultation: consultation.clone(),
            payment: self.payment_of(consultation.id).cloned(),
        }
    }
}

#[async_trait]
impl ConsultationRepository for MemoryStore {
    async fn create(
        &self,
        record: &ConsultationRecord,
        audit: &AuditEntry,
        messages: &[Message],
    ) -> Result<(), RepositoryError> {
        let c = &record.consultation;
        self.transaction(|s| {
            if s.consultations.contains_key(&c.id) {
                return Err(RepositoryError::Duplicate("consultation"));
            }
            if s.consultations
                .values()
                .any(|other| other.pay_token_hash == c.pay_token_hash)
            {
                return Err(RepositoryError::Duplicate("pay token"));
            }
            s.practitioner_exists(c.practitioner)?;
            s.consultations.insert(c.id, c.clone());
            if let Some(payment) = &record.payment {
                s.insert_payment(payment)?;
            }
            s.append_audit(std::slice::from_ref(audit))?;
            s.enqueue(messages)?;
            Ok(())
        })
    }

    async fn get(&self, id: ConsultationId) -> Result<ConsultationRecord, RepositoryError> {
        self.read(|s| s.consultations.get(&id).map(|c| s.record(c)))
            .ok_or(RepositoryError::NotFound)
    }

    async fn find_by_pay_token(
        &self,
        hash: &TokenHash,
    ) -> Result<ConsultationRecord, RepositoryError> {
        self.read(|s| {
            s.consultations
                .values()
                .find(|c| &c.pay_token_hash == hash)
                .map(|c| s.record(c))
        })
        .ok_or(RepositoryError::NotFound)
    }

    async fn replace_pay_token(
        &self,
        id: ConsultationId,
        hash: &TokenHash,
        generation: u32,
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            if !s.consultations.contains_key(&id) {
                return Err(RepositoryError::NotFound);
            }
            if s.consultations
                .values()
                .any(|c| c.id != id && &c.pay_token_hash == hash)
            {
                return Err(RepositoryError::Duplicate("pay token"));
            }
            let c = s
                .consultations
                .get_mut(&id)
                .ok_or(RepositoryError::NotFound)?;
            c.pay_token_hash = hash.clone();
            c.pay_link_generation = generation;
            Ok(())
        })
    }

    async fn update_day(
        &self,
        next: &Consultation,
        expected: &Consultation,
        log: &ChangeLog,
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            // The day is still the one the caller read: the status (its kind, as the
            // adapter compares its status column), the start and `started_at`.
            let stored = s
                .consultations
                .get_mut(&expected.id)
                .ok_or(RepositoryError::NotFound)?;
            if stored.status.as_str() != expected.status.as_str()
                || stored.starts_at != expected.starts_at
                || stored.started_at != expected.started_at
            {
                return Err(RepositoryError::Conflict);
            }
            stored.status = next.status;
            stored.starts_at = next.starts_at;
            stored.started_at = next.started_at;
            stored.rescheduled_at = next.rescheduled_at;
            s.append_log(log)
        })
    }

    async fn upcoming(
        &self,
        practitioners: &[PractitionerId],
        from: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ConsultationRecord>, RepositoryError> {
        Ok(self.read(|s| {
            let mut found: Vec<&Consultation> = s
                .consultations
                .values()
                .filter(|c| practitioners.contains(&c.practitioner) && c.starts_at >= from)
                .collect();
            found.sort_by_key(|c| (c.starts_at, c.id));
            found
                .into_iter()
                .take(count(limit))
                .map(|c| s.record(c))
                .collect()
        }))
    }
}
