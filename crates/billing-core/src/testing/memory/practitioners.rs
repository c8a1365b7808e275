//! [`PractitionerRepository`], [`OAuthStateRepository`] and [`ServiceRepository`].

use async_trait::async_trait;

use super::{MemoryStore, OAuthStateRow};
use crate::audit::AuditEntry;
use crate::ids::{ConnectedAccountId, PractitionerId, ServiceId};
use crate::practitioner::model::{Practitioner, Service};
use crate::practitioner::ports::{
    OAuthStateRecord, OAuthStateRepository, PractitionerRepository, ServiceRepository,
};
use crate::repository::RepositoryError;
use crate::secrets::TokenHash;

#[async_trait]
impl PractitionerRepository for MemoryStore {
    async fn get(&self, id: PractitionerId) -> Result<Practitioner, RepositoryError> {
        self.read(|s| s.practitioners.get(&id).cloned())
            .ok_or(RepositoryError::NotFound)
    }

    async fn find_by_account(
        &self,
        account: &ConnectedAccountId,
    ) -> Result<Option<Practitioner>, RepositoryError> {
        // Should two practitioners ever have held the same account, the latest change
        // is the one that holds it now.
        Ok(self.read(|s| {
            s.practitioners
                .values()
                .filter(|p| p.link.account_id() == Some(account))
                .max_by_key(|p| (p.updated_at, p.id))
                .cloned()
        }))
    }

    async fn update(
        &self,
        p: &Practitioner,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            let stored = s
                .practitioners
                .get_mut(&p.id)
                .ok_or(RepositoryError::NotFound)?;
            if stored.version != expected_version {
                return Err(RepositoryError::Conflict);
            }
            *stored = p.clone();
            s.append_audit(std::slice::from_ref(audit))
        })
    }
}

#[async_trait]
impl OAuthStateRepository for MemoryStore {
    async fn insert(&self, record: &OAuthStateRecord) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            if s.oauth_states.contains_key(&record.hash) {
                return Err(RepositoryError::Duplicate("OAuth state"));
            }
            s.practitioner_exists(record.practitioner)?;
            s.oauth_states.insert(
                record.hash.clone(),
                OAuthStateRow {
                    record: record.clone(),
                    consumed: false,
                },
            );
            Ok(())
        })
    }

    async fn consume(&self, hash: &TokenHash) -> Result<OAuthStateRecord, RepositoryError> {
        self.transaction(|s| match s.oauth_states.get_mut(hash) {
            Some(row) if !row.consumed => {
                row.consumed = true;
                Ok(row.record.clone())
            }
            _ => Err(RepositoryError::NotFound),
        })
    }
}

#[async_trait]
impl ServiceRepository for MemoryStore {
    async fn create(&self, service: &Service, audit: &AuditEntry) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            if s.services.contains_key(&service.id()) {
                return Err(RepositoryError::Duplicate("service"));
            }
            s.practitioner_exists(service.practitioner())?;
            s.services.insert(service.id(), service.clone());
            s.append_audit(std::slice::from_ref(audit))
        })
    }

    async fn get(&self, id: ServiceId) -> Result<Service, RepositoryError> {
        self.read(|s| s.services.get(&id).cloned())
            .ok_or(RepositoryError::NotFound)
    }

    async fn list(
        &self,
        practitioner: PractitionerId,
        include_inactive: bool,
    ) -> Result<Vec<Service>, RepositoryError> {
        let mut services: Vec<Service> = self.read(|s| {
            s.services
                .values()
                .filter(|v| v.practitioner() == practitioner && (include_inactive || v.active()))
                .cloned()
                .collect()
        });
        // By code point, as the adapter sorts them.
        services.sort_by(|a, b| {
            a.name()
                .as_str()
                .cmp(b.name().as_str())
                .then(a.id().cmp(&b.id()))
        });
        Ok(services)
    }

    async fn update(&self, service: &Service, audit: &AuditEntry) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            if !s.services.contains_key(&service.id()) {
                return Err(RepositoryError::NotFound);
            }
            s.practitioner_exists(service.practitioner())?;
            s.services.insert(service.id(), service.clone());
            s.append_audit(std::slice::from_ref(audit))
        })
    }
}
