//! SQLite as a server database: what only a file shows. Two `Store`s on one file stand
//! for two server processes; their writers meet on SQLite's lock (`BEGIN IMMEDIATE`
//! and the busy timeout), not in one process's writer queue.

use std::sync::Arc;

use billing_core::payment::ports::PaymentRepository;
use billing_core::repository::RepositoryError;
use sea_orm::{ConnectionTrait, Database};
use storage_seaorm::Store;

use billing_core::testing::conformance::fixtures::*;

async fn open(url: &str) -> Store {
    let store = Store::connect(url).await.expect("the file opens");
    store.migrate().await.expect("migrations apply");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_sqlite_file_let_exactly_one_validation_win() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("shared.db").display()
    );
    let (a, b) = (Arc::new(open(&url).await), Arc::new(open(&url).await));
    let pr = practitioner(a.as_ref()).await;
    let p = scheduled(a.as_ref(), pr.id, eur(2_500), t0()).await;
    let held = apply(b.as_ref(), &p, hold(eur(2_500)), t0() + mins(1)).await;

    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16_i64)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (held, barrier) = (held.clone(), barrier.clone());
            tokio::spawn(async move {
                let (next, log) = step(&held, &capture(eur(1_000 + i)), t0() + mins(2));
                barrier.wait().await;
                let result = store.update(&next, held.version(), &log).await;
                (next, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (next, Ok(())) => winners.push(next),
            (_, Err(RepositoryError::Conflict)) => {}
            (_, Err(e)) => panic!("a writer failed instead of losing cleanly: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(
        PaymentRepository::get(a.as_ref(), p.id()).await.unwrap(),
        winners[0]
    );
    assert_eq!(
        PaymentRepository::get(b.as_ref(), p.id()).await.unwrap(),
        winners[0]
    );
    assert_eq!(a.history(p.id()).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_sqlite_file_is_left_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let store = open(&url).await;
    store.close().await.unwrap();
    // The journal mode is a property of the file: any later connection sees it.
    let raw = Database::connect(format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let row = raw
        .query_one_raw(sea_orm::Statement::from_string(
            raw.get_database_backend(),
            "PRAGMA journal_mode",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "wal");
}

#[tokio::test]
async fn unsupported_urls_are_refused_before_connecting() {
    for url in ["mysql://root@localhost/db", "", "consultpay.db"] {
        assert!(
            matches!(
                Store::connect(url).await,
                Err(storage_seaorm::StoreError::UnsupportedUrl(_))
            ),
            "{url}"
        );
    }
}
