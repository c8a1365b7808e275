//! `LinkRepository` (invitation and reset links: a conditional delete makes each one
//! single use) and `FailedSignIns` (the sign-in throttle's rows).

use async_trait::async_trait;
use billing_core::access::StaffUser;
use billing_core::audit::AuditEntry;
use billing_core::contact::EmailAddress;
use billing_core::identity::Identity;
use billing_core::ids::UserId;
use billing_core::invitation::{LinkPurpose, LinkRepository, LoginLink};
use billing_core::password::PasswordHash;
use billing_core::repository::RepositoryError;
use billing_core::secrets::TokenHash;
use billing_core::throttle::{FailedSignIns, ThrottleKey};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::users::{delete_links_of, referenced_user, write_login};
use super::{append_audit, finish};
use crate::Store;
use crate::convert::at;
use crate::entity::{failed_sign_in, staff_identity, staff_login_link};
use crate::store::{unavailable, write_error};

fn link(row: staff_login_link::Model) -> Result<LoginLink, RepositoryError> {
    let corrupt =
        |what: &str| RepositoryError::Corrupt(format!("staff_login_links {}: {what}", row.id_hash));
    Ok(LoginLink {
        purpose: row
            .purpose
            .parse::<LinkPurpose>()
            .map_err(|()| corrupt("purpose"))?,
        email: EmailAddress::parse(&row.email).map_err(|_| corrupt("email"))?,
        id: TokenHash::from_stored(row.id_hash),
        user: UserId::from_uuid(row.user_id),
        created_at: row.created_at,
        expires_at: row.expires_at,
    })
}

/// The link with this id if it is live at `now` (`all`, not `one`: no bound `LIMIT`).
async fn live_link<C: ConnectionTrait>(
    db: &C,
    id: &TokenHash,
    now: DateTime<Utc>,
) -> Result<Option<staff_login_link::Model>, RepositoryError> {
    Ok(staff_login_link::Entity::find_by_id(id.as_str().to_owned())
        .filter(staff_login_link::Column::ExpiresAt.gt(at(now)))
        .all(db)
        .await
        .map_err(unavailable)?
        .into_iter()
        .next())
}

/// Deletes the link if it is live at `now`, inside the caller's transaction, and
/// returns it; `NotFound` otherwise. The conditional delete is the claim: of concurrent
/// redemptions, the one whose delete removed the row wins (PostgreSQL makes the others
/// wait for it, then find nothing to delete; SQLite runs them one by one).
async fn claim_link<C: ConnectionTrait>(
    txn: &C,
    id: &TokenHash,
    now: DateTime<Utc>,
) -> Result<LoginLink, RepositoryError> {
    let row = live_link(txn, id, now)
        .await?
        .ok_or(RepositoryError::NotFound)?;
    let claimed = staff_login_link::Entity::delete_many()
        .filter(staff_login_link::Column::IdHash.eq(id.as_str()))
        .filter(staff_login_link::Column::ExpiresAt.gt(at(now)))
        .exec(txn)
        .await
        .map_err(unavailable)?;
    if claimed.rows_affected != 1 {
        return Err(RepositoryError::NotFound);
    }
    link(row)
}

#[async_trait]
impl LinkRepository for Store {
    async fn create_link(
        &self,
        new: &LoginLink,
        audit: &[AuditEntry],
    ) -> Result<(), RepositoryError> {
        let row = staff_login_link::Model {
            id_hash: new.id.as_str().to_owned(),
            user_id: new.user.as_uuid(),
            purpose: new.purpose.as_str().to_owned(),
            email: new.email.as_str().to_owned(),
            created_at: at(new.created_at),
            expires_at: at(new.expires_at),
        };
        let txn = self.begin_write().await?;
        let result = async {
            staff_login_link::Entity::insert(row.into_active_model())
                .exec_without_returning(&txn)
                .await
                .map_err(|e| write_error(e, "link"))?;
            append_audit(&txn, audit).await
        }
        .await;
        finish(txn, result).await
    }

    async fn find_link(
        &self,
        id: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<(LoginLink, StaffUser)>, RepositoryError> {
        let Some(row) = live_link(&self.db, id, now).await? else {
            return Ok(None);
        };
        let user = referenced_user(&self.db, row.user_id, "staff_login_links").await?;
        Ok(Some((link(row)?, user)))
    }

    async fn redeem_link(
        &self,
        id: &TokenHash,
        now: DateTime<Utc>,
        password: &PasswordHash,
        audit: &[AuditEntry],
    ) -> Result<LoginLink, RepositoryError> {
        let txn = self.begin_write().await?;
        let result = async {
            let used = claim_link(&txn, id, now).await?;
            write_login(&txn, used.user, &used.email, password, now).await?;
            delete_links_of(&txn, used.user).await?;
            append_audit(&txn, audit).await?;
            Ok(used)
        }
        .await;
        finish(txn, result).await
    }

    async fn redeem_link_for_identity(
        &self,
        id: &TokenHash,
        now: DateTime<Utc>,
        identity: &Identity,
        audit: &[AuditEntry],
    ) -> Result<LoginLink, RepositoryError> {
        let txn = self.begin_write().await?;
        let result = async {
            let used = claim_link(&txn, id, now).await?;
            let linked = staff_identity::Entity::find_by_id((
                identity.issuer.clone(),
                identity.subject.clone(),
            ))
            .all(&txn)
            .await
            .map_err(unavailable)?
            .into_iter()
            .next();
            match linked {
                Some(row) if row.user_id != used.user.as_uuid() => {
                    return Err(RepositoryError::Duplicate("identity"));
                }
                Some(_) => {}
                None => {
                    let row = staff_identity::Model {
                        issuer: identity.issuer.clone(),
                        subject: identity.subject.clone(),
                        user_id: used.user.as_uuid(),
                        created_at: at(now),
                    };
                    staff_identity::Entity::insert(row.into_active_model())
                        .exec_without_returning(&txn)
                        .await
                        .map_err(|e| write_error(e, "identity"))?;
                }
            }
            delete_links_of(&txn, used.user).await?;
            append_audit(&txn, audit).await?;
            Ok(used)
        }
        .await;
        finish(txn, result).await
    }

    async fn purge_links(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError> {
        let purged = staff_login_link::Entity::delete_many()
            .filter(staff_login_link::Column::ExpiresAt.lte(at(now)))
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(purged.rows_affected)
    }
}

#[async_trait]
impl FailedSignIns for Store {
    async fn record_failure(
        &self,
        keys: &[ThrottleKey],
        at_: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        if keys.is_empty() {
            return Ok(());
        }
        let rows = keys.iter().map(|key| failed_sign_in::ActiveModel {
            seq: ActiveValue::NotSet,
            key_hash: ActiveValue::Set(key.as_str().to_owned()),
            at: ActiveValue::Set(at(at_)),
        });
        failed_sign_in::Entity::insert_many(rows)
            .exec_without_returning(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn failures_since(
        &self,
        key: &ThrottleKey,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, RepositoryError> {
        failed_sign_in::Entity::find()
            .select_only()
            .column(failed_sign_in::Column::At)
            .filter(failed_sign_in::Column::KeyHash.eq(key.as_str()))
            .filter(failed_sign_in::Column::At.gt(at(since)))
            .order_by_desc(failed_sign_in::Column::At)
            .into_tuple::<DateTime<Utc>>()
            .all(&self.db)
            .await
            .map_err(unavailable)
    }

    async fn clear_failures(&self, key: &ThrottleKey) -> Result<(), RepositoryError> {
        failed_sign_in::Entity::delete_many()
            .filter(failed_sign_in::Column::KeyHash.eq(key.as_str()))
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn purge_failures(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError> {
        let purged = failed_sign_in::Entity::delete_many()
            .filter(failed_sign_in::Column::At.lte(at(before)))
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(purged.rows_affected)
    }
}
