//! `PractitionerRepository`, `OAuthStateRepository` and `ServiceRepository`.

use async_trait::async_trait;
use billing_core::audit::AuditEntry;
use billing_core::ids::{ConnectedAccountId, PractitionerId, ServiceId};
use billing_core::practitioner::model::{Practitioner, Service};
use billing_core::practitioner::ports::{
    OAuthStateRecord, OAuthStateRepository, PractitionerRepository, ServiceRepository,
};
use billing_core::repository::RepositoryError;
use billing_core::secrets::TokenHash;
use chrono::Utc;
use sea_orm::ActiveValue::NotSet;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
};

use super::{append_audit, finish, unique};
use crate::Store;
use crate::convert::{
    at, oauth_state_from_row, oauth_state_row, practitioner_from_row, practitioner_row,
    service_from_row, service_row,
};
use crate::entity::{oauth_state, practitioner, service};
use crate::store::{unavailable, write_error};

#[async_trait]
impl PractitionerRepository for Store {
    async fn get(&self, id: PractitionerId) -> Result<Practitioner, RepositoryError> {
        practitioner::Entity::find_by_id(id.as_uuid())
            .all(&self.db)
            .await
            .map(unique)
            .map_err(unavailable)?
            .ok_or(RepositoryError::NotFound)
            .and_then(practitioner_from_row)
    }

    async fn find_by_account(
        &self,
        account: &ConnectedAccountId,
    ) -> Result<Option<Practitioner>, RepositoryError> {
        // Should two practitioners ever have held the same account, the latest change
        // is the one that holds it now.
        practitioner::Entity::find()
            .filter(practitioner::Column::LinkAccount.eq(account.as_str()))
            .order_by_desc(practitioner::Column::UpdatedAt)
            .order_by_desc(practitioner::Column::Id)
            .one(&self.db)
            .await
            .map_err(unavailable)?
            .map(practitioner_from_row)
            .transpose()
    }

    async fn update(
        &self,
        p: &Practitioner,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let mut changes = practitioner_row(p)?.into_active_model().reset_all();
        changes.id = NotSet;
        let txn = self.begin_write().await?;
        let result = async {
            let written = practitioner::Entity::update_many()
                .set(changes)
                .filter(practitioner::Column::Id.eq(p.id.as_uuid()))
                .filter(practitioner::Column::Version.eq(expected_version))
                .exec(&txn)
                .await
                .map_err(unavailable)?;
            if written.rows_affected == 0 {
                let exists = practitioner::Entity::find_by_id(p.id.as_uuid())
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
            append_audit(&txn, std::slice::from_ref(audit)).await
        }
        .await;
        finish(txn, result).await
    }
}

#[async_trait]
impl OAuthStateRepository for Store {
    async fn insert(&self, record: &OAuthStateRecord) -> Result<(), RepositoryError> {
        oauth_state::Entity::insert(oauth_state_row(record).into_active_model())
            .exec_without_returning(self.writer())
            .await
            .map_err(|e| write_error(e, "OAuth state"))?;
        Ok(())
    }

    async fn consume(&self, hash: &TokenHash) -> Result<OAuthStateRecord, RepositoryError> {
        // One conditional update decides who consumes it: of any number of concurrent
        // calls, exactly one sees a row affected. The row is kept, marked consumed.
        let consumed = oauth_state::Entity::update_many()
            .col_expr(oauth_state::Column::ConsumedAt, Expr::value(at(Utc::now())))
            .filter(oauth_state::Column::Hash.eq(hash.as_str()))
            .filter(oauth_state::Column::ConsumedAt.is_null())
            .exec(self.writer())
            .await
            .map_err(unavailable)?;
        if consumed.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        oauth_state::Entity::find_by_id(hash.as_str().to_owned())
            .all(&self.db)
            .await
            .map(unique)
            .map_err(unavailable)?
            .map(oauth_state_from_row)
            .ok_or(RepositoryError::NotFound)
    }
}

#[async_trait]
impl ServiceRepository for Store {
    async fn create(&self, s: &Service, audit: &AuditEntry) -> Result<(), RepositoryError> {
        let row = service_row(s)?;
        let txn = self.begin_write().await?;
        let result = async {
            service::Entity::insert(row.into_active_model())
                .exec_without_returning(&txn)
                .await
                .map_err(|e| write_error(e, "service"))?;
            append_audit(&txn, std::slice::from_ref(audit)).await
        }
        .await;
        finish(txn, result).await
    }

    async fn get(&self, id: ServiceId) -> Result<Service, RepositoryError> {
        service::Entity::find_by_id(id.as_uuid())
            .all(&self.db)
            .await
            .map(unique)
            .map_err(unavailable)?
            .ok_or(RepositoryError::NotFound)
            .and_then(service_from_row)
    }

    async fn list(
        &self,
        practitioner: PractitionerId,
        include_inactive: bool,
    ) -> Result<Vec<Service>, RepositoryError> {
        let mut query = service::Entity::find()
            .filter(service::Column::PractitionerId.eq(practitioner.as_uuid()));
        if !include_inactive {
            query = query.filter(service::Column::Active.eq(true));
        }
        let mut services = query
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(service_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // Sorted here, by code point: PostgreSQL's collation and SQLite's differ, and a
        // catalogue is small.
        services.sort_by(|a, b| {
            a.name()
                .as_str()
                .cmp(b.name().as_str())
                .then(a.id().cmp(&b.id()))
        });
        Ok(services)
    }

    async fn update(&self, s: &Service, audit: &AuditEntry) -> Result<(), RepositoryError> {
        let mut changes = service_row(s)?.into_active_model().reset_all();
        changes.id = NotSet;
        let txn = self.begin_write().await?;
        let result = async {
            let written = service::Entity::update_many()
                .set(changes)
                .filter(service::Column::Id.eq(s.id().as_uuid()))
                .exec(&txn)
                .await
                .map_err(|e| write_error(e, "service"))?;
            if written.rows_affected == 0 {
                return Err(RepositoryError::NotFound);
            }
            append_audit(&txn, std::slice::from_ref(audit)).await
        }
        .await;
        finish(txn, result).await
    }
}
