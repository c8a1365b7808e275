//! `OutboxRepository`: messages queued (also inside other writes' transactions),
//! claimed by conditional updates so that concurrent servers never share one, and
//! marked sent or failed only by their claimer.

use async_trait::async_trait;
use billing_core::ids::PractitionerId;
use billing_core::outbox::{Message, OutboxRepository, Queued};
use billing_core::repository::RepositoryError;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::Store;
use crate::convert::{at, outbox_row, queued_from_row};
use crate::entity::outbox_message::{self, Column};
use crate::store::{unavailable, write_error};

/// Queues `messages` through `db` (a transaction or the writer), skipping known
/// `dedupe` keys. Returns how many were queued.
pub(crate) async fn enqueue_in<C: ConnectionTrait>(
    db: &C,
    messages: &[Message],
) -> Result<u64, RepositoryError> {
    if messages.is_empty() {
        return Ok(0);
    }
    outbox_message::Entity::insert_many(
        messages
            .iter()
            .map(|m| sea_orm::IntoActiveModel::into_active_model(outbox_row(m))),
    )
    .on_conflict(OnConflict::column(Column::Dedupe).do_nothing().to_owned())
    .exec_without_returning(db)
    .await
    .map_err(|e| write_error(e, "message"))
}

/// Free to claim at `now`: never claimed, or the claim ran out.
fn lease_free(now: DateTime<Utc>) -> Condition {
    Condition::any()
        .add(Column::ClaimedUntil.is_null())
        .add(Column::ClaimedUntil.lt(at(now)))
}

#[async_trait]
impl OutboxRepository for Store {
    async fn enqueue(&self, messages: &[Message]) -> Result<u64, RepositoryError> {
        enqueue_in(self.writer(), messages).await
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        claim: &str,
        limit: u32,
    ) -> Result<Vec<Queued>, RepositoryError> {
        let candidates = outbox_message::Entity::find()
            .filter(Column::Status.eq("pending"))
            .filter(Column::NextAttemptAt.lte(at(now)))
            .filter(lease_free(now))
            .order_by_asc(Column::NextAttemptAt)
            .order_by_asc(Column::Id)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(unavailable)?;
        let mut claimed = Vec::with_capacity(candidates.len());
        for mut row in candidates {
            // The claim itself: only one writer's condition still holds.
            let won = outbox_message::Entity::update_many()
                .col_expr(Column::ClaimedBy, Expr::value(claim.to_owned()))
                .col_expr(Column::ClaimedUntil, Expr::value(at(lease_until)))
                .filter(Column::Id.eq(row.id))
                .filter(Column::Status.eq("pending"))
                .filter(Column::NextAttemptAt.lte(at(now)))
                .filter(lease_free(now))
                .exec(self.writer())
                .await
                .map_err(unavailable)?
                .rows_affected
                == 1;
            if won {
                row.claimed_by = Some(claim.to_owned());
                row.claimed_until = Some(at(lease_until));
                claimed.push(queued_from_row(row)?);
            }
        }
        Ok(claimed)
    }

    async fn mark_sent(
        &self,
        id: uuid::Uuid,
        claim: &str,
        when: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        let written = outbox_message::Entity::update_many()
            .col_expr(Column::Status, Expr::value("sent"))
            .col_expr(Column::SentAt, Expr::value(at(when)))
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
            .col_expr(Column::ClaimedBy, Expr::value(Option::<String>::None))
            .col_expr(
                Column::ClaimedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(Column::Id.eq(id))
            .filter(Column::ClaimedBy.eq(claim))
            .filter(Column::Status.eq("pending"))
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(written.rows_affected == 1)
    }

    async fn attempt_failed(
        &self,
        id: uuid::Uuid,
        claim: &str,
        when: DateTime<Utc>,
        retry_at: Option<DateTime<Utc>>,
        error: &str,
    ) -> Result<bool, RepositoryError> {
        let error: String = error.chars().take(1000).collect();
        let mut update = outbox_message::Entity::update_many()
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
            .col_expr(Column::LastError, Expr::value(error))
            .col_expr(Column::ClaimedBy, Expr::value(Option::<String>::None))
            .col_expr(
                Column::ClaimedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            );
        update = match retry_at {
            Some(next) => update.col_expr(Column::NextAttemptAt, Expr::value(at(next))),
            None => update
                .col_expr(Column::Status, Expr::value("failed"))
                .col_expr(Column::FailedAt, Expr::value(at(when))),
        };
        let written = update
            .filter(Column::Id.eq(id))
            .filter(Column::ClaimedBy.eq(claim))
            .filter(Column::Status.eq("pending"))
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        Ok(written.rows_affected == 1)
    }

    async fn recent(
        &self,
        practitioners: &[PractitionerId],
        limit: u32,
    ) -> Result<Vec<Queued>, RepositoryError> {
        if practitioners.is_empty() {
            return Ok(Vec::new());
        }
        outbox_message::Entity::find()
            .filter(Column::PractitionerId.is_in(practitioners.iter().map(|p| p.as_uuid())))
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(queued_from_row)
            .collect()
    }
}
