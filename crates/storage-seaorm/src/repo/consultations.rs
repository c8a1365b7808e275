//! `ConsultationRepository`: a consultation and its payment are written together.

use async_trait::async_trait;
use billing_core::audit::AuditEntry;
use billing_core::consultation::model::{Consultation, ConsultationRecord, PayAccess};
use billing_core::consultation::ports::ConsultationRepository;
use billing_core::ids::{ConsultationId, PractitionerId};
use billing_core::outbox::Message;
use billing_core::payment::ports::ChangeLog;
use billing_core::repository::RepositoryError;
use billing_core::secrets::TokenHash;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};

use super::payments::append_log;
use super::{append_audit, finish, outbox, unique};
use crate::Store;
use crate::convert::{
    PayAccessRow, at, consultation_row, pay_access_from_row, payment_row, record_from_rows,
};
use crate::entity::{consultation, payment};
use crate::store::{unavailable, write_error, write_error_by_constraint};

#[async_trait]
impl ConsultationRepository for Store {
    async fn create(
        &self,
        record: &ConsultationRecord,
        audit: &AuditEntry,
        messages: &[Message],
    ) -> Result<(), RepositoryError> {
        let consultation = consultation_row(&record.consultation);
        let payment = record.payment.as_ref().map(payment_row).transpose()?;
        let txn = self.begin_write().await?;
        let result = async {
            consultation::Entity::insert(consultation.into_active_model())
                .exec_without_returning(&txn)
                .await
                .map_err(|e| {
                    write_error_by_constraint(e, "pay_token", "pay token", "consultation")
                })?;
            if let Some(payment) = payment {
                payment::Entity::insert(payment.into_active_model())
                    .exec_without_returning(&txn)
                    .await
                    .map_err(|e| {
                        write_error_by_constraint(
                            e,
                            "consultation",
                            "payment of this consultation",
                            "payment",
                        )
                    })?;
            }
            append_audit(&txn, std::slice::from_ref(audit)).await?;
            outbox::enqueue_in(&txn, messages).await?;
            Ok(())
        }
        .await;
        finish(txn, result).await
    }

    async fn get(&self, id: ConsultationId) -> Result<ConsultationRecord, RepositoryError> {
        let (c, p) = consultation::Entity::find_by_id(id.as_uuid())
            .find_also_related(payment::Entity)
            .all(&self.db)
            .await
            .map(unique)
            .map_err(unavailable)?
            .ok_or(RepositoryError::NotFound)?;
        record_from_rows(c, p)
    }

    async fn find_by_pay_token(
        &self,
        hash: &TokenHash,
    ) -> Result<ConsultationRecord, RepositoryError> {
        let (c, p) = consultation::Entity::find()
            .filter(consultation::Column::PayTokenHash.eq(hash.as_str()))
            .find_also_related(payment::Entity)
            .all(&self.db)
            .await
            .map(unique)
            .map_err(unavailable)?
            .ok_or(RepositoryError::NotFound)?;
        record_from_rows(c, p)
    }

    /// The gate's columns only (11 of the two tables' 69): the patient's page polls it.
    async fn pay_access(&self, hash: &TokenHash) -> Result<PayAccess, RepositoryError> {
        use consultation::Column as C;
        consultation::Entity::find()
            .select_only()
            .columns([
                C::Id,
                C::Status,
                C::StatusAt,
                C::CancelledBy,
                C::CancellationLate,
                C::PaymentMode,
                C::StartsAt,
                C::StartedAt,
            ])
            .column_as(payment::Column::Id, "payment_id")
            .column_as(payment::Column::Status, "payment_status")
            .column_as(payment::Column::PendingOperation, "pending_operation")
            .left_join(payment::Entity)
            .filter(C::PayTokenHash.eq(hash.as_str()))
            .into_model::<PayAccessRow>()
            .all(&self.db)
            .await
            .map(unique)
            .map_err(unavailable)?
            .ok_or(RepositoryError::NotFound)
            .and_then(pay_access_from_row)
    }

    async fn replace_pay_token(
        &self,
        id: ConsultationId,
        hash: &TokenHash,
        generation: u32,
    ) -> Result<(), RepositoryError> {
        let written = consultation::Entity::update_many()
            .col_expr(
                consultation::Column::PayTokenHash,
                Expr::value(hash.as_str().to_owned()),
            )
            .col_expr(
                consultation::Column::PayLinkGeneration,
                Expr::value(i64::from(generation)),
            )
            .filter(consultation::Column::Id.eq(id.as_uuid()))
            .exec(self.writer())
            .await
            .map_err(|e| write_error(e, "pay token"))?;
        if written.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        Ok(())
    }

    async fn update_day(
        &self,
        next: &Consultation,
        expected: &Consultation,
        log: &ChangeLog,
    ) -> Result<(), RepositoryError> {
        let row = consultation_row(next);
        let was = consultation_row(expected);
        let txn = self.begin_write().await?;
        let result = async {
            // One statement decides whether this writer won: the day is still the one
            // the caller read.
            let written = consultation::Entity::update_many()
                .col_expr(consultation::Column::Status, Expr::value(row.status))
                .col_expr(consultation::Column::StatusAt, Expr::value(row.status_at))
                .col_expr(
                    consultation::Column::CancelledBy,
                    Expr::value(row.cancelled_by),
                )
                .col_expr(
                    consultation::Column::CancellationLate,
                    Expr::value(row.cancellation_late),
                )
                .col_expr(consultation::Column::StartsAt, Expr::value(row.starts_at))
                .col_expr(consultation::Column::StartedAt, Expr::value(row.started_at))
                .col_expr(
                    consultation::Column::RescheduledAt,
                    Expr::value(row.rescheduled_at),
                )
                .filter(consultation::Column::Id.eq(was.id))
                .filter(consultation::Column::Status.eq(was.status))
                .filter(consultation::Column::StartsAt.eq(was.starts_at))
                .filter(match was.started_at {
                    Some(t) => consultation::Column::StartedAt.eq(t),
                    None => consultation::Column::StartedAt.is_null(),
                })
                .exec(&txn)
                .await
                .map_err(|e| write_error(e, "consultation"))?;
            if written.rows_affected == 0 {
                let exists = consultation::Entity::find_by_id(was.id)
                    .all(&txn)
                    .await
                    .map(unique)
                    .map_err(unavailable)?
                    .is_some();
                return Err(if exists {
                    RepositoryError::Conflict
                } else {
                    RepositoryError::NotFound
                });
            }
            append_log(&txn, log).await
        }
        .await;
        finish(txn, result).await
    }

    async fn upcoming(
        &self,
        practitioners: &[PractitionerId],
        from: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ConsultationRecord>, RepositoryError> {
        if practitioners.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        consultation::Entity::find()
            .filter(
                consultation::Column::PractitionerId
                    .is_in(practitioners.iter().map(|p| p.as_uuid())),
            )
            .filter(consultation::Column::StartsAt.gte(at(from)))
            .order_by_asc(consultation::Column::StartsAt)
            .order_by_asc(consultation::Column::Id)
            .limit(u64::from(limit))
            .find_also_related(payment::Entity)
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|(c, p)| record_from_rows(c, p))
            .collect()
    }
}
