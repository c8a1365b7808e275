//! The sandbox gateway's store ([`SandboxStore`]): its objects as JSON rows stamped with
//! the version that last wrote them, and one head row that every write locks.
//!
//! A write is one transaction: `SELECT … FOR UPDATE` on the head (PostgreSQL; on SQLite
//! the `IMMEDIATE` transaction already holds the database's write lock), the rows
//! changed since the caller's version, then the changed rows and the head as the next
//! version. Servers on one database thus take turns, and each reads what the others
//! wrote before it works.

use async_trait::async_trait;
use billing_core::gateway::{SandboxHead, SandboxRow, SandboxStore, SandboxWrite};
use billing_core::repository::RepositoryError;
use chrono::Duration;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect,
};

use super::unique;
use crate::Store;
use crate::entity::{sandbox_head, sandbox_object};
use crate::store::unavailable;

/// The head's primary key: there is one.
const HEAD: i32 = 1;
/// Rows per `INSERT` (4 parameters each: well under both engines' limits).
const CHUNK: usize = 1000;

fn head_of(row: sandbox_head::Model) -> SandboxHead {
    SandboxHead {
        version: row.version,
        clock_offset: Duration::microseconds(row.clock_offset_micros),
    }
}

async fn read_head<C: ConnectionTrait>(db: &C, lock: bool) -> Result<SandboxHead, RepositoryError> {
    let mut query = sandbox_head::Entity::find_by_id(HEAD);
    if lock {
        query = query.lock_exclusive();
    }
    query
        .all(db)
        .await
        .map(unique)
        .map_err(unavailable)?
        .map(head_of)
        .ok_or_else(|| RepositoryError::Corrupt("the sandbox head row is missing".into()))
}

/// A sandbox write: the transaction holding the head's lock.
struct Write {
    txn: DatabaseTransaction,
    head: SandboxHead,
}

#[async_trait]
impl SandboxStore for Store {
    async fn begin(&self) -> Result<Box<dyn SandboxWrite>, RepositoryError> {
        let txn = self.begin_write().await?;
        let head = read_head(&txn, true).await?;
        Ok(Box::new(Write { txn, head }))
    }

    async fn head(&self) -> Result<SandboxHead, RepositoryError> {
        read_head(&self.db, false).await
    }
}

#[async_trait]
impl SandboxWrite for Write {
    fn head(&self) -> SandboxHead {
        self.head
    }

    async fn changed_since(&mut self, version: i64) -> Result<Vec<SandboxRow>, RepositoryError> {
        Ok(sandbox_object::Entity::find()
            .filter(sandbox_object::Column::Version.gt(version))
            .all(&self.txn)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|row| SandboxRow {
                kind: row.kind,
                id: row.id,
                body: row.body,
            })
            .collect())
    }

    async fn commit(
        self: Box<Self>,
        rows: Vec<SandboxRow>,
        clock_offset: Duration,
    ) -> Result<SandboxHead, RepositoryError> {
        let Write { txn, head } = *self;
        let micros = clock_offset
            .num_microseconds()
            .ok_or_else(|| RepositoryError::Corrupt("the sandbox clock is too far ahead".into()))?;
        let next = SandboxHead {
            version: head.version + 1,
            clock_offset,
        };
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk = rows
                .by_ref()
                .take(CHUNK)
                .map(|row| sandbox_object::ActiveModel {
                    kind: ActiveValue::Set(row.kind),
                    id: ActiveValue::Set(row.id),
                    version: ActiveValue::Set(next.version),
                    body: ActiveValue::Set(row.body),
                });
            sandbox_object::Entity::insert_many(chunk)
                .on_conflict(
                    OnConflict::columns([sandbox_object::Column::Kind, sandbox_object::Column::Id])
                        .update_columns([
                            sandbox_object::Column::Version,
                            sandbox_object::Column::Body,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(unavailable)?;
        }
        sandbox_head::Entity::update(sandbox_head::ActiveModel {
            id: ActiveValue::Unchanged(HEAD),
            version: ActiveValue::Set(next.version),
            clock_offset_micros: ActiveValue::Set(micros),
        })
        .exec(&txn)
        .await
        .map_err(unavailable)?;
        txn.commit().await.map_err(unavailable)?;
        Ok(next)
    }
}
