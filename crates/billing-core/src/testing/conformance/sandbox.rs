//! The sandbox gateway's store: rows stamped by version, one writer at a time across
//! connections, nothing written by a write that is dropped.

use crate::gateway::{SandboxHead, SandboxRow, SandboxStore};
use chrono::Duration;
use futures_util::future::join_all;

use super::fixtures::yield_now;

fn row(kind: &str, id: &str, body: &str) -> SandboxRow {
    SandboxRow {
        kind: kind.into(),
        id: id.into(),
        body: body.into(),
    }
}

fn sorted(mut rows: Vec<SandboxRow>) -> Vec<(String, String, String)> {
    rows.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
    rows.into_iter().map(|r| (r.kind, r.id, r.body)).collect()
}

fn triple(kind: &str, id: &str, body: &str) -> (String, String, String) {
    (kind.into(), id.into(), body.into())
}

pub async fn the_sandbox_store_keeps_rows_by_version_and_replaces_them<S: SandboxStore>(store: S) {
    let zero = SandboxHead {
        version: 0,
        clock_offset: Duration::zero(),
    };
    assert_eq!(store.head().await.unwrap(), zero);
    let mut write = store.begin().await.unwrap();
    assert_eq!(write.head(), zero);
    assert!(write.changed_since(0).await.unwrap().is_empty());
    let head = write
        .commit(
            vec![
                row("intent", "pi_1", "{\"a\":1}"),
                row("session", "pi_1", "{}"),
            ],
            Duration::seconds(90),
        )
        .await
        .unwrap();
    assert_eq!(
        head,
        SandboxHead {
            version: 1,
            clock_offset: Duration::seconds(90),
        }
    );

    // The same id under another kind is another row; the same kind and id replaces.
    let mut write = store.begin().await.unwrap();
    assert_eq!(write.head(), head);
    assert_eq!(
        sorted(write.changed_since(0).await.unwrap()),
        [
            triple("intent", "pi_1", "{\"a\":1}"),
            triple("session", "pi_1", "{}")
        ]
    );
    assert!(write.changed_since(1).await.unwrap().is_empty());
    let head = write
        .commit(
            vec![row("intent", "pi_1", "{\"a\":2}")],
            Duration::seconds(90),
        )
        .await
        .unwrap();
    assert_eq!(head.version, 2);

    let mut write = store.begin().await.unwrap();
    assert_eq!(
        sorted(write.changed_since(1).await.unwrap()),
        [triple("intent", "pi_1", "{\"a\":2}")]
    );
    assert_eq!(write.changed_since(0).await.unwrap().len(), 2);
    drop(write);
    assert_eq!(store.head().await.unwrap(), head);
}

pub async fn a_dropped_sandbox_write_changes_nothing<S: SandboxStore>(store: S) {
    let write = store.begin().await.unwrap();
    write
        .commit(vec![row("intent", "pi_1", "1")], Duration::zero())
        .await
        .unwrap();
    let mut write = store.begin().await.unwrap();
    let _ = write.changed_since(0).await.unwrap();
    drop(write);
    // A later writer is not blocked by the dropped one, and sees what was committed.
    let mut write = store.begin().await.unwrap();
    assert_eq!(write.head().version, 1);
    assert_eq!(
        sorted(write.changed_since(0).await.unwrap()),
        [triple("intent", "pi_1", "1")]
    );
}

/// Each writer reads a counter and writes it plus one: without mutual exclusion,
/// increments are lost.
pub async fn sandbox_writers_take_turns<S: SandboxStore>(store: S) {
    const WRITERS: usize = 4;
    const EACH: usize = 10;
    let writers = (0..WRITERS).map(|_| {
        let store = &store;
        async move {
            for _ in 0..EACH {
                let mut write = store.begin().await.unwrap();
                let count = write
                    .changed_since(0)
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|r| r.kind == "counter")
                    .map_or(0, |r| r.body.parse::<usize>().unwrap());
                yield_now().await;
                write
                    .commit(
                        vec![row("counter", "n", &(count + 1).to_string())],
                        Duration::zero(),
                    )
                    .await
                    .unwrap();
            }
        }
    });
    join_all(writers).await;
    let mut write = store.begin().await.unwrap();
    assert_eq!(write.head().version, (WRITERS * EACH) as i64);
    assert_eq!(
        sorted(write.changed_since(0).await.unwrap()),
        [triple("counter", "n", &(WRITERS * EACH).to_string())]
    );
}
