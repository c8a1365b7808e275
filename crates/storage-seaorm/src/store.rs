//! The [`Store`]: one connection pool, the engine it talks to, migrations, readiness,
//! and the error mapping every repository shares.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use billing_core::repository::RepositoryError;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr, SqlErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::migration::Migrator;

/// How long a SQLite writer waits for another writer's lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections per pool for a SQLite file: WAL lets readers run beside one writer.
const SQLITE_FILE_CONNECTIONS: u32 = 8;
/// Connections per pool for PostgreSQL.
const POSTGRES_CONNECTIONS: u32 = 10;
/// How long a request waits for a free connection before the store is "unavailable".
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The database engine behind a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// A SQLite file, or `sqlite::memory:`.
    Sqlite,
    PostgreSql,
}

/// Why the store could not be opened, migrated or reached (outside the repository
/// ports, which answer [`RepositoryError`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no engine this store speaks (`sqlite:…`, `postgres://…`).
    #[error("unsupported database URL (expected sqlite:… or postgres://…): {0}")]
    UnsupportedUrl(String),
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] DbErr),
    #[error("migration failed: {0}")]
    Migration(#[source] DbErr),
    #[error("database unavailable: {0}")]
    Unavailable(#[source] DbErr),
}

/// The storage adapter: implements every repository port of `billing-core` on one
/// connection pool. Cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct Store {
    /// Reads (and, on PostgreSQL and in-memory SQLite, everything).
    pub(crate) db: DatabaseConnection,
    /// Writes. On a SQLite file, a pool of its own with one connection: writers queue
    /// here in order instead of polling SQLite's lock, and readers never wait for them.
    writer: DatabaseConnection,
    engine: Engine,
}

impl fmt::Debug for Store {
    /// Never prints the URL (it may hold a password).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// `sqlite::memory:` and `?mode=memory` databases live only as long as a connection.
fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The URL without credentials, for error messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.chars().take(80).collect(),
    }
}

impl Store {
    /// Opens a pool on `url`:
    ///
    /// - `sqlite://path/to/file.db?mode=rwc` (or `sqlite:file.db`): WAL journal, a busy
    ///   timeout of 5 s, foreign keys on; up to 8 connections for reads and one writer
    ///   connection in a pool of its own (writers queue for it in order), write
    ///   transactions begun `IMMEDIATE` (another process's writer is waited for, never
    ///   raced half-way).
    /// - `sqlite::memory:`: a private in-memory database on exactly one connection that
    ///   is never recycled (the database would vanish with it).
    /// - `postgres://…` or `postgresql://…`: up to 10 connections.
    ///
    /// Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let base = || {
            let mut options = ConnectOptions::new(url.to_owned());
            options
                .sqlx_logging(false)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_timeout(ACQUIRE_TIMEOUT)
                // No ping on every acquire (a round trip per statement on PostgreSQL):
                // a connection that died fails its one query and is dropped, and
                // whether the database answers is `/readyz`'s question.
                .test_before_acquire(false);
            options
        };
        let connect = |options: ConnectOptions| async move {
            Database::connect(options)
                .await
                .map_err(StoreError::Connect)
        };
        if url.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url)
                .map_err(|_| StoreError::UnsupportedUrl(redacted(url)))?;
            if is_sqlite_memory(url) {
                let mut options = base();
                options
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None::<Duration>)
                    .max_lifetime(None::<Duration>)
                    .map_sqlx_sqlite_opts(|o| {
                        o.foreign_keys(true).busy_timeout(SQLITE_BUSY_TIMEOUT)
                    });
                let db = connect(options).await?;
                return Ok(Store {
                    writer: db.clone(),
                    db,
                    engine: Engine::Sqlite,
                });
            }
            let file = |connections: u32| {
                let mut options = base();
                options
                    .max_connections(connections)
                    .map_sqlx_sqlite_opts(|o| {
                        o.journal_mode(SqliteJournalMode::Wal)
                            .foreign_keys(true)
                            .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    });
                options
            };
            // The writer first: it creates the file and switches it to WAL once.
            let writer = connect(file(1)).await?;
            let db = connect(file(SQLITE_FILE_CONNECTIONS)).await?;
            Ok(Store {
                db,
                writer,
                engine: Engine::Sqlite,
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut options = base();
            options.max_connections(POSTGRES_CONNECTIONS);
            let db = connect(options).await?;
            Ok(Store {
                writer: db.clone(),
                db,
                engine: Engine::PostgreSql,
            })
        } else {
            Err(StoreError::UnsupportedUrl(redacted(url)))
        }
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Applies every pending migration (each in its own transaction).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Migrator::up(&self.writer, None)
            .await
            .map_err(StoreError::Migration)
    }

    /// Reverts every applied migration: drops every table. For tests and for an
    /// operator who really means it; the server never calls this.
    pub async fn migrate_down(&self) -> Result<(), StoreError> {
        Migrator::down(&self.writer, None)
            .await
            .map_err(StoreError::Migration)
    }

    /// Reverts the last `steps` applied migrations (tests of a migration over data
    /// written before it).
    pub async fn migrate_down_by(&self, steps: u32) -> Result<(), StoreError> {
        Migrator::down(&self.writer, Some(steps))
            .await
            .map_err(StoreError::Migration)
    }

    /// Names of the applied migrations, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(Migrator::get_applied_migrations(&self.db)
            .await
            .map_err(StoreError::Unavailable)?
            .iter()
            .map(|m| m.name().to_owned())
            .collect())
    }

    /// Names of the migrations not applied yet, oldest first.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(Migrator::get_pending_migrations(&self.db)
            .await
            .map_err(StoreError::Unavailable)?
            .iter()
            .map(|m| m.name().to_owned())
            .collect())
    }

    /// Readiness: the database answers a round trip.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.ping().await.map_err(StoreError::Unavailable)
    }

    /// Closes the pool (waits for connections in use to be returned).
    pub async fn close(self) -> Result<(), StoreError> {
        self.writer
            .close_by_ref()
            .await
            .map_err(StoreError::Unavailable)?;
        self.db.close().await.map_err(StoreError::Unavailable)
    }

    /// Where single-statement writes go (see [`Store::begin_write`] for transactions).
    pub(crate) fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a transaction never fails half-way because another
    /// writer upgraded first; it waits up to the busy timeout instead.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction, RepositoryError> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        self.writer
            .begin_with_options(options)
            .await
            .map_err(unavailable)
    }
}

/// Anything the database said that a caller cannot act on: an outage.
pub(crate) fn unavailable(err: DbErr) -> RepositoryError {
    RepositoryError::unavailable(err)
}

/// The error of a write that may break a uniqueness rule (→ `Duplicate(what)`) or refer
/// to a missing row (→ `NotFound`).
pub(crate) fn write_error(err: DbErr, what: &'static str) -> RepositoryError {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => RepositoryError::Duplicate(what),
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => RepositoryError::NotFound,
        _ => unavailable(err),
    }
}

/// Like [`write_error`], naming the duplicate by the constraint it broke: the message
/// names the column on SQLite and the index on PostgreSQL, and both contain `needle`.
pub(crate) fn write_error_by_constraint(
    err: DbErr,
    needle: &str,
    matched: &'static str,
    otherwise: &'static str,
) -> RepositoryError {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(message)) if message.contains(needle) => {
            RepositoryError::Duplicate(matched)
        }
        _ => write_error(err, otherwise),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redacted("postgres://app:s3cret@db:5432/consultpay"),
            "postgres://***@db:5432/consultpay"
        );
        assert_eq!(redacted("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn in_memory_sqlite_urls_are_recognised() {
        assert!(is_sqlite_memory("sqlite::memory:"));
        assert!(is_sqlite_memory("sqlite://x?mode=memory"));
        assert!(!is_sqlite_memory("sqlite://consultpay.db?mode=rwc"));
    }
}
