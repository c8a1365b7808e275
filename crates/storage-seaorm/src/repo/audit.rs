//! `AuditLog`: entries appended on their own, and the most recent ones read back.

use async_trait::async_trait;
use billing_core::audit::{AuditEntry, AuditLog};
use billing_core::ids::PractitionerId;
use billing_core::repository::RepositoryError;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::append_audit;
use crate::Store;
use crate::convert::audit_from_row;
use crate::entity::audit_entry;
use crate::store::unavailable;

#[async_trait]
impl AuditLog for Store {
    async fn append(&self, entry: &AuditEntry) -> Result<(), RepositoryError> {
        append_audit(self.writer(), std::slice::from_ref(entry)).await
    }

    async fn recent(
        &self,
        practitioner: PractitionerId,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, RepositoryError> {
        audit_entry::Entity::find()
            .filter(audit_entry::Column::PractitionerId.eq(practitioner.as_uuid()))
            .order_by_desc(audit_entry::Column::At)
            .order_by_desc(audit_entry::Column::Seq)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(audit_from_row)
            .collect()
    }
}
