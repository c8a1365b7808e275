//! `SecondFactorRepository`: TOTP secrets and recovery codes. A step and a recovery
//! code are each taken by a conditional update (`WHERE last_step < ?`, `WHERE spent_at
//! IS NULL`), so of concurrent servers exactly one accepts a code.

use async_trait::async_trait;
use billing_core::audit::AuditEntry;
use billing_core::ids::UserId;
use billing_core::repository::RepositoryError;
use billing_core::second_factor::{SecondFactorRecord, SecondFactorRepository, TotpSecret};
use billing_core::secrets::TokenHash;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, Condition, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter};

use super::{append_audit, finish};
use crate::Store;
use crate::convert::at;
use crate::entity::{staff_recovery_code, staff_second_factor, user};
use crate::store::{unavailable, write_error};

/// A step as stored (steps are `unix time / 30`: far below `i64::MAX`).
fn stored_step(step: u64) -> Result<i64, RepositoryError> {
    i64::try_from(step).map_err(|_| RepositoryError::Corrupt(format!("step {step}")))
}

#[async_trait]
impl SecondFactorRepository for Store {
    async fn second_factor(
        &self,
        user: UserId,
    ) -> Result<Option<SecondFactorRecord>, RepositoryError> {
        let Some(row) = staff_second_factor::Entity::find_by_id(user.as_uuid())
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let last_step = row
            .last_step
            .map(|s| {
                u64::try_from(s).map_err(|_| {
                    RepositoryError::Corrupt(format!("staff_second_factors {}: step", row.user_id))
                })
            })
            .transpose()?;
        Ok(Some(SecondFactorRecord {
            secret: TotpSecret::from_stored(row.secret),
            confirmed: row.confirmed_at.is_some(),
            last_step,
        }))
    }

    async fn begin_second_factor(
        &self,
        user_id: UserId,
        secret: &TotpSecret,
        at_: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        let txn = self.begin_write().await?;
        let result = async {
            if user::Entity::find_by_id(user_id.as_uuid())
                .count(&txn)
                .await
                .map_err(unavailable)?
                == 0
            {
                return Err(RepositoryError::NotFound);
            }
            let row = staff_second_factor::Model {
                user_id: user_id.as_uuid(),
                secret: secret.as_base32().to_owned(),
                confirmed_at: None,
                last_step: None,
                created_at: at(at_),
            };
            // Replaces a pending factor; a confirmed one stays (the conflict's update
            // is conditional), which the count below tells.
            staff_second_factor::Entity::insert(row.into_active_model())
                .on_conflict(
                    OnConflict::column(staff_second_factor::Column::UserId)
                        .update_columns([
                            staff_second_factor::Column::Secret,
                            staff_second_factor::Column::CreatedAt,
                        ])
                        .action_and_where(
                            Expr::col((
                                staff_second_factor::Entity,
                                staff_second_factor::Column::ConfirmedAt,
                            ))
                            .is_null(),
                        )
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(|e| write_error(e, "second factor"))?;
            let ours = staff_second_factor::Entity::find_by_id(user_id.as_uuid())
                .filter(staff_second_factor::Column::Secret.eq(secret.as_base32()))
                .filter(staff_second_factor::Column::ConfirmedAt.is_null())
                .count(&txn)
                .await
                .map_err(unavailable)?;
            if ours == 1 {
                Ok(())
            } else {
                Err(RepositoryError::Conflict)
            }
        }
        .await;
        finish(txn, result).await
    }

    async fn confirm_second_factor(
        &self,
        user: UserId,
        step: u64,
        recovery: &[TokenHash],
        at_: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<bool, RepositoryError> {
        let step = stored_step(step)?;
        let txn = self.begin_write().await?;
        let result = async {
            let confirmed = staff_second_factor::Entity::update_many()
                .col_expr(
                    staff_second_factor::Column::ConfirmedAt,
                    Expr::value(at(at_)),
                )
                .col_expr(staff_second_factor::Column::LastStep, Expr::value(step))
                .filter(staff_second_factor::Column::UserId.eq(user.as_uuid()))
                .filter(staff_second_factor::Column::ConfirmedAt.is_null())
                .exec(&txn)
                .await
                .map_err(unavailable)?;
            if confirmed.rows_affected != 1 {
                return Ok(false);
            }
            staff_recovery_code::Entity::delete_many()
                .filter(staff_recovery_code::Column::UserId.eq(user.as_uuid()))
                .exec(&txn)
                .await
                .map_err(unavailable)?;
            if !recovery.is_empty() {
                let rows = recovery.iter().map(|hash| {
                    staff_recovery_code::Model {
                        code_hash: hash.as_str().to_owned(),
                        user_id: user.as_uuid(),
                        spent_at: None,
                    }
                    .into_active_model()
                });
                staff_recovery_code::Entity::insert_many(rows)
                    .exec_without_returning(&txn)
                    .await
                    .map_err(|e| write_error(e, "recovery code"))?;
            }
            append_audit(&txn, audit).await?;
            Ok(true)
        }
        .await;
        finish(txn, result).await
    }

    async fn use_step(&self, user: UserId, step: u64) -> Result<bool, RepositoryError> {
        let step = stored_step(step)?;
        let taken = staff_second_factor::Entity::update_many()
            .col_expr(staff_second_factor::Column::LastStep, Expr::value(step))
            .filter(staff_second_factor::Column::UserId.eq(user.as_uuid()))
            .filter(staff_second_factor::Column::ConfirmedAt.is_not_null())
            .filter(
                Condition::any()
                    .add(staff_second_factor::Column::LastStep.is_null())
                    .add(staff_second_factor::Column::LastStep.lt(step)),
            )
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(taken.rows_affected == 1)
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        code: &TokenHash,
        at_: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        let spent = staff_recovery_code::Entity::update_many()
            .col_expr(staff_recovery_code::Column::SpentAt, Expr::value(at(at_)))
            .filter(staff_recovery_code::Column::CodeHash.eq(code.as_str()))
            .filter(staff_recovery_code::Column::UserId.eq(user.as_uuid()))
            .filter(staff_recovery_code::Column::SpentAt.is_null())
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(spent.rows_affected == 1)
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<u32, RepositoryError> {
        let left = staff_recovery_code::Entity::find()
            .filter(staff_recovery_code::Column::UserId.eq(user.as_uuid()))
            .filter(staff_recovery_code::Column::SpentAt.is_null())
            .count(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(u32::try_from(left).unwrap_or(u32::MAX))
    }

    async fn remove_second_factor(
        &self,
        user: UserId,
        audit: &[AuditEntry],
    ) -> Result<(), RepositoryError> {
        let txn = self.begin_write().await?;
        let result = async {
            staff_recovery_code::Entity::delete_many()
                .filter(staff_recovery_code::Column::UserId.eq(user.as_uuid()))
                .exec(&txn)
                .await
                .map_err(unavailable)?;
            staff_second_factor::Entity::delete_by_id(user.as_uuid())
                .exec(&txn)
                .await
                .map_err(unavailable)?;
            append_audit(&txn, audit).await
        }
        .await;
        finish(txn, result).await
    }
}
