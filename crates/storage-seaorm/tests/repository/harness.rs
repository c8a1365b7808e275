//! Where a case runs: a fresh, migrated [`Store`] on one of three backends, destroyed
//! afterwards whatever the case did (panics included).
//!
//! - SQLite in memory: `sqlite::memory:`.
//! - SQLite file: a database file in a temporary directory.
//! - PostgreSQL: a database of its own, created on the server named by
//!   `TEST_POSTGRES_URL` and dropped at the end. Without that variable the PostgreSQL
//!   cases are skipped with a note, except under `CI=true`, where a missing URL or an
//!   unreachable server fails them.

use std::future::Future;
use std::io::Write;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use storage_seaorm::Store;
use tempfile::TempDir;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    SqliteMemory,
    SqliteFile,
    Postgres,
}

const DB_PREFIX: &str = "consultpay_test_";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Written past the test harness's capture, once per process, so a skip is visible.
fn note_once(note: &str) {
    static NOTED: Once = Once::new();
    NOTED.call_once(|| {
        let _ = writeln!(std::io::stderr().lock(), "\nnote: {note}\n");
    });
}

/// The PostgreSQL server to test on, or `None` to skip.
fn postgres_url() -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if in_ci() => {
            panic!("CI=true but TEST_POSTGRES_URL is not set: the PostgreSQL cases must run in CI")
        }
        _ => {
            note_once(
                "TEST_POSTGRES_URL is not set: the PostgreSQL cases are skipped \
                 (e.g. TEST_POSTGRES_URL=postgres://consultpay_test@127.0.0.1:5432/postgres)",
            );
            None
        }
    }
}

/// `url` with its database name replaced by `name` (query string kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[host_start..]
        .find('/')
        .map_or(base.len(), |i| i + host_start);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn admin(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.to_owned());
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at TEST_POSTGRES_URL is unreachable: {e}"))
}

/// Drops test databases left behind by test processes that no longer run (killed
/// mid-run); databases of live processes are left alone.
async fn sweep_orphans(admin: &DatabaseConnection) {
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    let Ok(rows) = admin
        .query_all_raw(sea_orm::Statement::from_string(
            admin.get_database_backend(),
            format!("SELECT datname FROM pg_database WHERE datname LIKE '{DB_PREFIX}%'"),
        ))
        .await
    else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get::<String>("", "datname") else {
            continue;
        };
        let pid = name
            .strip_prefix(DB_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

/// One case's database.
struct TestDb {
    store: Store,
    _dir: Option<TempDir>,
    postgres: Option<(DatabaseConnection, String)>,
}

impl TestDb {
    async fn create(backend: Backend) -> Option<TestDb> {
        let (url, dir, postgres) = match backend {
            Backend::SqliteMemory => ("sqlite::memory:".to_owned(), None, None),
            Backend::SqliteFile => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("consultpay.db").display()
                );
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let server = postgres_url()?;
                let admin = admin(&server).await;
                sweep_orphans(&admin).await;
                static SEQ: AtomicU64 = AtomicU64::new(0);
                let name = format!(
                    "{DB_PREFIX}{}_{}_{}",
                    std::process::id(),
                    SEQ.fetch_add(1, Ordering::SeqCst),
                    &uuid::Uuid::new_v4().simple().to_string()[..8]
                );
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
                (with_database(&server, &name), None, Some((admin, name)))
            }
        };
        let store = Store::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {backend:?}: {e}"));
        store.migrate().await.expect("migrations apply");
        Some(TestDb {
            store,
            _dir: dir,
            postgres,
        })
    }

    async fn destroy(self) {
        let _ = self.store.close().await;
        if let Some((admin, name)) = self.postgres {
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await
                .unwrap_or_else(|e| panic!("cannot drop test database {name}: {e}"));
            let _ = admin.close().await;
        }
    }
}

/// Runs `case` on a fresh store of `backend`, then destroys the database. A panic in the
/// case is re-raised after the clean-up.
pub async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let outcome = tokio::spawn(case(db.store.clone())).await;
    db.destroy().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("case did not finish: {e}"),
        }
    }
}

#[test]
fn a_database_name_replaces_the_one_in_the_url() {
    assert_eq!(
        with_database("postgres://u@127.0.0.1:5432/postgres", "t1"),
        "postgres://u@127.0.0.1:5432/t1"
    );
    assert_eq!(
        with_database("postgres://u:p@h/postgres?sslmode=disable", "t1"),
        "postgres://u:p@h/t1?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:5432", "t1"),
        "postgres://h:5432/t1"
    );
}
