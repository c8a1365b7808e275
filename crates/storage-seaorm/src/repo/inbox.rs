//! `WebhookInbox` and `IdempotencyStore`: facts stored once, decided by the database's
//! unique keys (`INSERT … ON CONFLICT DO NOTHING` and the number of rows inserted).

use async_trait::async_trait;
use billing_core::ids::EventId;
use billing_core::payment::ports::{
    IdempotencyRecord, IdempotencyStore, Reservation, WebhookInbox,
};
use billing_core::repository::RepositoryError;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, TryInsertResult};
use uuid::Uuid;

use super::unique;
use crate::Store;
use crate::convert::{at, idempotency_from_row, idempotency_row, webhook_row};
use crate::entity::{idempotency_key, webhook_event};
use crate::store::unavailable;

/// How often a reservation is retried when its key is released between our insert
/// and our read.
const RESERVE_ATTEMPTS: usize = 3;

fn inserted(result: TryInsertResult<u64>) -> bool {
    matches!(result, TryInsertResult::Inserted(n) if n > 0)
}

#[async_trait]
impl WebhookInbox for Store {
    async fn processed(&self, id: &EventId) -> Result<bool, RepositoryError> {
        Ok(webhook_event::Entity::find_by_id(id.as_str().to_owned())
            .filter(webhook_event::Column::ProcessedAt.is_not_null())
            .all(&self.db)
            .await
            .map(unique)
            .map_err(unavailable)?
            .is_some())
    }

    async fn record_processed(
        &self,
        id: &EventId,
        kind: &str,
        received_at: DateTime<Utc>,
        processed_at: DateTime<Utc>,
        outcome: &str,
    ) -> Result<(), RepositoryError> {
        // One statement: the id stored processed, or the stored one (received, not
        // processed) marked so. Processed stays processed, with its first outcome.
        let mut row = webhook_row(id.as_str(), kind, received_at);
        row.processed_at = Some(at(processed_at));
        row.outcome = Some(outcome.to_owned());
        webhook_event::Entity::insert(row.into_active_model())
            .on_conflict(
                OnConflict::column(webhook_event::Column::EventId)
                    .update_columns([
                        webhook_event::Column::ProcessedAt,
                        webhook_event::Column::Outcome,
                    ])
                    .action_and_where(
                        Expr::col((webhook_event::Entity, webhook_event::Column::ProcessedAt))
                            .is_null(),
                    )
                    .to_owned(),
            )
            .exec_without_returning(self.writer())
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn record_received(
        &self,
        id: &EventId,
        kind: &str,
        received_at: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        let row = webhook_row(id.as_str(), kind, received_at);
        webhook_event::Entity::insert(row.into_active_model())
            .on_conflict_do_nothing_on([webhook_event::Column::EventId])
            .exec_without_returning(self.writer())
            .await
            .map(drop)
            .map_err(unavailable)
    }
}

#[async_trait]
impl IdempotencyStore for Store {
    async fn reserve(&self, record: &IdempotencyRecord) -> Result<Reservation, RepositoryError> {
        for _ in 0..RESERVE_ATTEMPTS {
            let row = idempotency_row(record);
            let result = idempotency_key::Entity::insert(row.into_active_model())
                .on_conflict_do_nothing_on([
                    idempotency_key::Column::Scope,
                    idempotency_key::Column::Key,
                ])
                .exec_without_returning(self.writer())
                .await
                .map_err(unavailable)?;
            if inserted(result) {
                return Ok(Reservation::New);
            }
            let existing =
                idempotency_key::Entity::find_by_id((record.scope.clone(), record.key.clone()))
                    .all(&self.db)
                    .await
                    .map(unique)
                    .map_err(unavailable)?;
            if let Some(existing) = existing {
                return Ok(Reservation::Existing(idempotency_from_row(existing)));
            }
            // Released between our insert and our read: try again.
        }
        Err(RepositoryError::Conflict)
    }

    async fn complete(
        &self,
        scope: &str,
        key: &str,
        resource: Uuid,
    ) -> Result<(), RepositoryError> {
        let written = idempotency_key::Entity::update_many()
            .col_expr(idempotency_key::Column::Resource, Expr::value(resource))
            .filter(idempotency_key::Column::Scope.eq(scope))
            .filter(idempotency_key::Column::Key.eq(key))
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        if written.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        Ok(())
    }

    async fn release(&self, scope: &str, key: &str) -> Result<(), RepositoryError> {
        // Only a reservation whose request never completed: a completed key keeps
        // answering replays.
        idempotency_key::Entity::delete_many()
            .filter(idempotency_key::Column::Scope.eq(scope))
            .filter(idempotency_key::Column::Key.eq(key))
            .filter(idempotency_key::Column::Resource.is_null())
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
