//! [`WebhookInbox`] and [`IdempotencyStore`]: facts stored once, decided under the
//! store's lock (the database decides them by its unique keys).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{MemoryStore, WebhookRow};
use crate::ids::EventId;
use crate::payment::ports::{IdempotencyRecord, IdempotencyStore, Reservation, WebhookInbox};
use crate::repository::RepositoryError;

#[async_trait]
impl WebhookInbox for MemoryStore {
    async fn processed(&self, id: &EventId) -> Result<bool, RepositoryError> {
        self.transaction(|s| Ok(s.webhook_events.get(id).is_some_and(|e| e.processed)))
    }

    async fn record_processed(
        &self,
        id: &EventId,
        _kind: &str,
        _received_at: DateTime<Utc>,
        _processed_at: DateTime<Utc>,
        _outcome: &str,
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            s.webhook_events
                .insert(id.clone(), WebhookRow { processed: true });
            Ok(())
        })
    }

    async fn record_received(
        &self,
        id: &EventId,
        _kind: &str,
        _received_at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            s.webhook_events
                .entry(id.clone())
                .or_insert(WebhookRow { processed: false });
            Ok(())
        })
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn reserve(&self, record: &IdempotencyRecord) -> Result<Reservation, RepositoryError> {
        let key = (record.scope.clone(), record.key.clone());
        self.transaction(|s| match s.idempotency_keys.get(&key) {
            Some(existing) => Ok(Reservation::Existing(existing.clone())),
            None => {
                s.idempotency_keys.insert(key, record.clone());
                Ok(Reservation::New)
            }
        })
    }

    async fn complete(
        &self,
        scope: &str,
        key: &str,
        resource: Uuid,
    ) -> Result<(), RepositoryError> {
        self.transaction(|s| {
            let record = s
                .idempotency_keys
                .get_mut(&(scope.to_owned(), key.to_owned()))
                .ok_or(RepositoryError::NotFound)?;
            record.resource = Some(resource);
            Ok(())
        })
    }

    async fn release(&self, scope: &str, key: &str) -> Result<(), RepositoryError> {
        // Only a reservation whose request never completed: a completed key keeps
        // answering replays.
        let key = (scope.to_owned(), key.to_owned());
        self.transaction(|s| {
            if s.idempotency_keys
                .get(&key)
                .is_some_and(|r| r.resource.is_none())
            {
                s.idempotency_keys.remove(&key);
            }
            Ok(())
        })
    }
}
