//! `UserRepository`: staff users, their hashed tokens, and the practitioner created
//! with a practitioner's user.

use std::collections::HashMap;

use async_trait::async_trait;
use billing_core::access::{Role, StaffUser};
use billing_core::audit::AuditEntry;
use billing_core::contact::EmailAddress;
use billing_core::ids::UserId;
use billing_core::password::PasswordHash;
use billing_core::practitioner::model::Practitioner;
use billing_core::repository::RepositoryError;
use billing_core::secrets::TokenHash;
use billing_core::staff::{AccessToken, StaffRecord, UserRepository};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, prelude::Uuid,
};

use super::{append_audit, finish, unique};
use crate::Store;
use crate::convert::{ROLE_SECRETARY, at, practitioner_row, user_from_row, user_row};
use crate::entity::{
    practitioner, secretary_link, staff_identity, staff_login, staff_login_link, staff_session,
    staff_token, user,
};
use crate::store::{unavailable, write_error};

async fn insert_user<C: ConnectionTrait>(
    db: &C,
    user: &StaffUser,
    token: &TokenHash,
    created_at: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    user::Entity::insert(user_row(user, created_at).into_active_model())
        .exec_without_returning(db)
        .await
        .map_err(|e| write_error(e, "user"))?;
    insert_token(db, user.id, token, None, created_at).await
}

async fn insert_token<C: ConnectionTrait>(
    db: &C,
    user: UserId,
    token: &TokenHash,
    name: Option<&str>,
    created_at: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    let token = staff_token::Model {
        hash: token.as_str().to_owned(),
        user_id: user.as_uuid(),
        created_at: at(created_at),
        revoked_at: None,
        name: name.map(str::to_owned),
        last_used_at: None,
    };
    staff_token::Entity::insert(token.into_active_model())
        .exec_without_returning(db)
        .await
        .map_err(|e| write_error(e, "token"))?;
    Ok(())
}

#[async_trait]
impl UserRepository for Store {
    async fn create_practitioner(
        &self,
        p: &Practitioner,
        token: &TokenHash,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let row = practitioner_row(p)?;
        let user = StaffUser {
            id: UserId::from_uuid(p.id.as_uuid()),
            name: p.name.as_str().to_owned(),
            role: Role::Practitioner(p.id),
        };
        let txn = self.begin_write().await?;
        let result = async {
            practitioner::Entity::insert(row.into_active_model())
                .exec_without_returning(&txn)
                .await
                .map_err(|e| write_error(e, "practitioner"))?;
            insert_user(&txn, &user, token, p.created_at).await?;
            append_audit(&txn, std::slice::from_ref(audit)).await
        }
        .await;
        finish(txn, result).await
    }

    async fn create_secretary(
        &self,
        user: &StaffUser,
        token: &TokenHash,
        created_at: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let works_for: Vec<_> = match &user.role {
            Role::Secretary(ps) => ps.iter().map(|p| p.as_uuid()).collect(),
            Role::Practitioner(_) => Vec::new(),
        };
        let txn = self.begin_write().await?;
        let result = async {
            insert_user(&txn, user, token, created_at).await?;
            if !works_for.is_empty() {
                let known = practitioner::Entity::find()
                    .filter(practitioner::Column::Id.is_in(works_for.iter().copied()))
                    .count(&txn)
                    .await
                    .map_err(unavailable)?;
                if known != works_for.len() as u64 {
                    return Err(RepositoryError::NotFound);
                }
                let links = works_for.iter().map(|p| {
                    secretary_link::Model {
                        user_id: user.id.as_uuid(),
                        practitioner_id: *p,
                    }
                    .into_active_model()
                });
                secretary_link::Entity::insert_many(links)
                    .exec_without_returning(&txn)
                    .await
                    .map_err(|e| write_error(e, "secretary link"))?;
            }
            append_audit(&txn, std::slice::from_ref(audit)).await
        }
        .await;
        finish(txn, result).await
    }

    async fn find_by_token(&self, token: &TokenHash) -> Result<Option<StaffUser>, RepositoryError> {
        let Some(token) = staff_token::Entity::find_by_id(token.as_str().to_owned())
            .filter(staff_token::Column::RevokedAt.is_null())
            .all(&self.db)
            .await
            .map(unique)
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let row = user::Entity::find_by_id(token.user_id)
            .all(&self.db)
            .await
            .map(unique)
            .map_err(unavailable)?
            .ok_or_else(|| {
                RepositoryError::Corrupt(format!("staff_tokens: user {} missing", token.user_id))
            })?;
        load_user(&self.db, row).await.map(Some)
    }

    async fn count(&self) -> Result<u64, RepositoryError> {
        user::Entity::find()
            .count(&self.db)
            .await
            .map_err(unavailable)
    }

    async fn get_user(&self, id: UserId) -> Result<StaffUser, RepositoryError> {
        let row = user::Entity::find_by_id(id.as_uuid())
            .all(&self.db)
            .await
            .map(unique)
            .map_err(unavailable)?
            .ok_or(RepositoryError::NotFound)?;
        load_user(&self.db, row).await
    }

    async fn list_users(&self) -> Result<Vec<StaffRecord>, RepositoryError> {
        let rows = user::Entity::find()
            .order_by_asc(user::Column::CreatedAt)
            .order_by_asc(user::Column::Id)
            .all(&self.db)
            .await
            .map_err(unavailable)?;
        let mut works_for: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for link in secretary_link::Entity::find()
            .order_by_asc(secretary_link::Column::PractitionerId)
            .all(&self.db)
            .await
            .map_err(unavailable)?
        {
            works_for
                .entry(link.user_id)
                .or_default()
                .push(link.practitioner_id);
        }
        let mut live: HashMap<Uuid, u64> = HashMap::new();
        for user_id in staff_token::Entity::find()
            .select_only()
            .column(staff_token::Column::UserId)
            .filter(staff_token::Column::RevokedAt.is_null())
            .into_tuple::<Uuid>()
            .all(&self.db)
            .await
            .map_err(unavailable)?
        {
            *live.entry(user_id).or_default() += 1;
        }
        rows.into_iter()
            .map(|row| {
                let id = row.id;
                let created_at = row.created_at;
                let user = user_from_row(row, works_for.remove(&id).unwrap_or_default())?;
                Ok(StaffRecord {
                    user,
                    created_at,
                    live_tokens: live.get(&id).copied().unwrap_or(0),
                })
            })
            .collect()
    }

    async fn set_login(
        &self,
        id: UserId,
        email: &EmailAddress,
        password: &PasswordHash,
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<(), RepositoryError> {
        let txn = self.begin_write().await?;
        let result = async {
            write_login(&txn, id, email, password, now).await?;
            append_audit(&txn, audit).await
        }
        .await;
        finish(txn, result).await
    }

    async fn add_token(
        &self,
        user_id: UserId,
        token: &AccessToken,
        audit: &[AuditEntry],
    ) -> Result<(), RepositoryError> {
        let txn = self.begin_write().await?;
        let result = async {
            user::Entity::find_by_id(user_id.as_uuid())
                .all(&txn)
                .await
                .map_err(unavailable)?
                .into_iter()
                .next()
                .ok_or(RepositoryError::NotFound)?;
            insert_token(
                &txn,
                user_id,
                &token.id,
                token.name.as_deref(),
                token.created_at,
            )
            .await?;
            append_audit(&txn, audit).await
        }
        .await;
        finish(txn, result).await
    }

    async fn tokens_of(&self, user_id: UserId) -> Result<Vec<AccessToken>, RepositoryError> {
        Ok(staff_token::Entity::find()
            .filter(staff_token::Column::UserId.eq(user_id.as_uuid()))
            .filter(staff_token::Column::RevokedAt.is_null())
            .order_by_desc(staff_token::Column::CreatedAt)
            .order_by_asc(staff_token::Column::Hash)
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|row| AccessToken {
                id: TokenHash::from_stored(row.hash),
                name: row.name,
                created_at: row.created_at,
                last_used_at: row.last_used_at,
            })
            .collect())
    }

    async fn revoke_token(
        &self,
        user_id: UserId,
        token: &TokenHash,
        at_: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<bool, RepositoryError> {
        let txn = self.begin_write().await?;
        let result = async {
            let revoked = staff_token::Entity::update_many()
                .col_expr(staff_token::Column::RevokedAt, Expr::value(at(at_)))
                .filter(staff_token::Column::Hash.eq(token.as_str()))
                .filter(staff_token::Column::UserId.eq(user_id.as_uuid()))
                .filter(staff_token::Column::RevokedAt.is_null())
                .exec(&txn)
                .await
                .map_err(unavailable)?;
            if revoked.rows_affected != 1 {
                return Ok(false);
            }
            append_audit(&txn, audit).await?;
            Ok(true)
        }
        .await;
        finish(txn, result).await
    }

    async fn touch_token(
        &self,
        token: &TokenHash,
        at_: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        staff_token::Entity::update_many()
            .col_expr(staff_token::Column::LastUsedAt, Expr::value(at(at_)))
            .filter(staff_token::Column::Hash.eq(token.as_str()))
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn find_by_identity(
        &self,
        identity: &billing_core::identity::Identity,
    ) -> Result<Option<StaffUser>, RepositoryError> {
        let Some(row) =
            staff_identity::Entity::find_by_id((identity.issuer.clone(), identity.subject.clone()))
                .all(&self.db)
                .await
                .map_err(unavailable)?
                .into_iter()
                .next()
        else {
            return Ok(None);
        };
        Ok(Some(
            referenced_user(&self.db, row.user_id, "staff_identities").await?,
        ))
    }

    async fn find_login(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<(StaffUser, PasswordHash)>, RepositoryError> {
        let Some(login) = staff_login::Entity::find()
            .filter(staff_login::Column::Email.eq(email.as_str()))
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let user = referenced_user(&self.db, login.user_id, "staff_logins").await?;
        Ok(Some((user, PasswordHash::from_stored(login.password_hash))))
    }

    async fn replace_tokens(
        &self,
        id: UserId,
        replacement: Option<TokenHash>,
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<u64, RepositoryError> {
        let txn = self.begin_write().await?;
        let result = async {
            user::Entity::find_by_id(id.as_uuid())
                .all(&txn)
                .await
                .map(unique)
                .map_err(unavailable)?
                .ok_or(RepositoryError::NotFound)?;
            let revoked = staff_token::Entity::update_many()
                .col_expr(staff_token::Column::RevokedAt, Expr::value(at(now)))
                .filter(staff_token::Column::UserId.eq(id.as_uuid()))
                .filter(staff_token::Column::RevokedAt.is_null())
                .exec(&txn)
                .await
                .map_err(|e| write_error(e, "token"))?
                .rows_affected;
            staff_session::Entity::delete_many()
                .filter(staff_session::Column::UserId.eq(id.as_uuid()))
                .exec(&txn)
                .await
                .map_err(unavailable)?;
            match replacement {
                Some(hash) => insert_token(&txn, id, &hash, None, now).await?,
                // Locked out: no password signs them in either.
                None => {
                    staff_login::Entity::delete_by_id(id.as_uuid())
                        .exec(&txn)
                        .await
                        .map_err(unavailable)?;
                    delete_links_of(&txn, id).await?;
                    staff_identity::Entity::delete_many()
                        .filter(staff_identity::Column::UserId.eq(id.as_uuid()))
                        .exec(&txn)
                        .await
                        .map_err(unavailable)?;
                }
            }
            append_audit(&txn, audit).await?;
            Ok(revoked)
        }
        .await;
        finish(txn, result).await
    }
}

/// [`UserRepository::set_login`]'s writes, inside the caller's transaction: the
/// user's e-mail and password hash (`NotFound` for no such user, `Duplicate` for an
/// e-mail another user signs in with), and the end of their sessions.
pub(super) async fn write_login<C: ConnectionTrait>(
    txn: &C,
    id: UserId,
    email: &EmailAddress,
    password: &PasswordHash,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    user::Entity::find_by_id(id.as_uuid())
        .all(txn)
        .await
        .map_err(unavailable)?
        .into_iter()
        .next()
        .ok_or(RepositoryError::NotFound)?;
    let row = staff_login::Model {
        user_id: id.as_uuid(),
        email: email.as_str().to_owned(),
        password_hash: password.as_str().to_owned(),
        updated_at: at(now),
    };
    staff_login::Entity::insert(row.into_active_model())
        .on_conflict(
            OnConflict::column(staff_login::Column::UserId)
                .update_columns([
                    staff_login::Column::Email,
                    staff_login::Column::PasswordHash,
                    staff_login::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await
        .map_err(|e| write_error(e, "email"))?;
    staff_session::Entity::delete_many()
        .filter(staff_session::Column::UserId.eq(id.as_uuid()))
        .exec(txn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// Deletes every invitation or reset link of `user`.
pub(super) async fn delete_links_of<C: ConnectionTrait>(
    txn: &C,
    user: UserId,
) -> Result<(), RepositoryError> {
    staff_login_link::Entity::delete_many()
        .filter(staff_login_link::Column::UserId.eq(user.as_uuid()))
        .exec(txn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

/// The user a row of `table` refers to (its foreign key guarantees one: a missing user
/// is [`RepositoryError::Corrupt`]). `all`, not `one`: a look-up by primary key needs
/// no `LIMIT`, whose bound parameter makes SQLite prepare the statement again.
pub(super) async fn referenced_user<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    table: &str,
) -> Result<StaffUser, RepositoryError> {
    let row = user::Entity::find_by_id(id)
        .all(db)
        .await
        .map_err(unavailable)?
        .into_iter()
        .next()
        .ok_or_else(|| RepositoryError::Corrupt(format!("{table}: user {id} missing")))?;
    load_user(db, row).await
}

/// A user row with the practitioners a secretary works for.
async fn load_user<C: ConnectionTrait>(
    db: &C,
    row: user::Model,
) -> Result<StaffUser, RepositoryError> {
    let works_for = if row.role == ROLE_SECRETARY {
        secretary_link::Entity::find()
            .filter(secretary_link::Column::UserId.eq(row.id))
            .order_by_asc(secretary_link::Column::PractitionerId)
            .all(db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|l| l.practitioner_id)
            .collect()
    } else {
        Vec::new()
    };
    user_from_row(row, works_for)
}
