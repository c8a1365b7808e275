//! `SessionRepository`: dashboard sessions, found only while the staff token they were
//! opened with is live (a sub-query on `staff_tokens`, in the same statement).

use async_trait::async_trait;
use billing_core::access::StaffUser;
use billing_core::ids::UserId;
use billing_core::repository::RepositoryError;
use billing_core::secrets::TokenHash;
use billing_core::session::{SessionRecord, SessionRepository};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Select,
};

use super::users::referenced_user;
use crate::Store;
use crate::convert::at;
use crate::entity::{staff_session, staff_token};
use crate::store::{unavailable, write_error};

/// Sessions whose sign-in token, if they have one, is not revoked.
fn live() -> Select<staff_session::Entity> {
    staff_session::Entity::find().filter(
        Condition::any()
            .add(staff_session::Column::CredentialHash.is_null())
            .add(
                staff_session::Column::CredentialHash.in_subquery(
                    Query::select()
                        .column(staff_token::Column::Hash)
                        .from(staff_token::Entity)
                        .and_where(staff_token::Column::RevokedAt.is_null())
                        .to_owned(),
                ),
            ),
    )
}

fn record(row: staff_session::Model) -> SessionRecord {
    SessionRecord {
        id: TokenHash::from_stored(row.id_hash),
        user: UserId::from_uuid(row.user_id),
        credential: row.credential_hash.map(TokenHash::from_stored),
        created_at: row.created_at,
        last_seen_at: row.last_seen_at,
        expires_at: row.expires_at,
    }
}

#[async_trait]
impl SessionRepository for Store {
    async fn create_session(&self, session: &SessionRecord) -> Result<(), RepositoryError> {
        let row = staff_session::Model {
            id_hash: session.id.as_str().to_owned(),
            user_id: session.user.as_uuid(),
            credential_hash: session.credential.as_ref().map(|c| c.as_str().to_owned()),
            created_at: at(session.created_at),
            last_seen_at: at(session.last_seen_at),
            expires_at: at(session.expires_at),
        };
        staff_session::Entity::insert(row.into_active_model())
            .exec_without_returning(&self.db)
            .await
            .map_err(|e| write_error(e, "session"))?;
        Ok(())
    }

    async fn find_session(
        &self,
        id: &TokenHash,
    ) -> Result<Option<(SessionRecord, StaffUser)>, RepositoryError> {
        // `all`, not `one`: a look-up by primary key needs no `LIMIT`, whose bound
        // parameter makes SQLite prepare the statement again on every request.
        let Some(row) = live()
            .filter(staff_session::Column::IdHash.eq(id.as_str()))
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let user = referenced_user(&self.db, row.user_id, "staff_sessions").await?;
        Ok(Some((record(row), user)))
    }

    async fn touch_session(
        &self,
        id: &TokenHash,
        at_: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        staff_session::Entity::update_many()
            .col_expr(staff_session::Column::LastSeenAt, Expr::value(at(at_)))
            .filter(staff_session::Column::IdHash.eq(id.as_str()))
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn end_session(&self, id: &TokenHash) -> Result<bool, RepositoryError> {
        let ended = staff_session::Entity::delete_by_id(id.as_str().to_owned())
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(ended.rows_affected > 0)
    }

    async fn end_sessions(&self, user: UserId) -> Result<u64, RepositoryError> {
        let ended = staff_session::Entity::delete_many()
            .filter(staff_session::Column::UserId.eq(user.as_uuid()))
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(ended.rows_affected)
    }

    async fn purge_sessions(
        &self,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> Result<u64, RepositoryError> {
        let purged = staff_session::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(staff_session::Column::ExpiresAt.lte(at(now)))
                    .add(staff_session::Column::LastSeenAt.lte(at(idle_since))),
            )
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(purged.rows_affected)
    }

    async fn sessions_of(&self, user: UserId) -> Result<Vec<SessionRecord>, RepositoryError> {
        Ok(live()
            .filter(staff_session::Column::UserId.eq(user.as_uuid()))
            .order_by_desc(staff_session::Column::LastSeenAt)
            .order_by_asc(staff_session::Column::IdHash)
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(record)
            .collect())
    }
}
