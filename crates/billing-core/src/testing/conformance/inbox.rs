use crate::ids::EventId;
use crate::payment::ports::{IdempotencyRecord, IdempotencyStore, Reservation, WebhookInbox};
use crate::repository::RepositoryError;
use futures_util::future::join_all;

use super::fixtures::*;

fn event() -> EventId {
    EventId::parse(&format!("evt_{}", new_uuid().simple())).unwrap()
}

pub async fn a_webhook_event_is_processed_once_recorded_so_and_stays_processed<
    S: WebhookInbox + IdempotencyStore,
>(
    store: S,
) {
    let kind = "payment_intent.succeeded";
    let id = event();
    assert!(!store.processed(&id).await.unwrap());
    // Received, its processing failed: stored, not processed; recorded twice, once.
    store.record_received(&id, kind, t0()).await.unwrap();
    store.record_received(&id, kind, t0()).await.unwrap();
    assert!(!store.processed(&id).await.unwrap());
    // The retry processed it.
    store
        .record_processed(&id, kind, t0() + mins(1), t0() + mins(2), "applied")
        .await
        .unwrap();
    assert!(store.processed(&id).await.unwrap());
    // Processed stays processed, whatever is recorded after.
    store
        .record_received(&id, kind, t0() + mins(3))
        .await
        .unwrap();
    store
        .record_processed(
            &id,
            kind,
            t0() + mins(3),
            t0() + mins(4),
            "ignored: duplicate",
        )
        .await
        .unwrap();
    assert!(store.processed(&id).await.unwrap());
    // A first delivery processed at once: one write.
    let other = event();
    store
        .record_processed(&other, "charge.refunded", t0(), t0(), "applied")
        .await
        .unwrap();
    assert!(store.processed(&other).await.unwrap());
    assert!(!store.processed(&event()).await.unwrap());
}

pub async fn concurrent_records_of_one_event_id_store_it_once_processed<
    S: WebhookInbox + IdempotencyStore,
>(
    store: S,
) {
    let id = event();
    let kind = "payment_intent.succeeded";
    let writes = (0..16).map(|i| {
        let store = &store;
        let id = &id;
        async move {
            if i % 2 == 0 {
                store.record_received(id, kind, t0()).await
            } else {
                store
                    .record_processed(id, kind, t0(), t0() + mins(1), "applied")
                    .await
            }
        }
    });
    for written in join_all(writes).await {
        written.unwrap();
    }
    assert!(store.processed(&id).await.unwrap());
}

fn record(scope: &str, key: &str, fingerprint: &str) -> IdempotencyRecord {
    IdempotencyRecord {
        scope: scope.into(),
        key: key.into(),
        fingerprint: fingerprint.into(),
        resource: None,
        created_at: t0(),
    }
}

pub async fn an_idempotency_key_is_reserved_once_and_replayed_with_what_it_created<
    S: WebhookInbox + IdempotencyStore,
>(
    store: S,
) {
    let first = record("user:1", "key-1", "sha256:aaa");
    assert_eq!(store.reserve(&first).await.unwrap(), Reservation::New);
    // A retry (even with another request) sees the first reservation, still in flight.
    assert_eq!(
        store
            .reserve(&record("user:1", "key-1", "sha256:bbb"))
            .await
            .unwrap(),
        Reservation::Existing(first.clone())
    );
    let created = super::fixtures::new_uuid();
    store.complete("user:1", "key-1", created).await.unwrap();
    assert_eq!(
        store.reserve(&first).await.unwrap(),
        Reservation::Existing(IdempotencyRecord {
            resource: Some(created),
            ..first.clone()
        })
    );
    // Another user's identical key is theirs.
    assert_eq!(
        store
            .reserve(&record("user:2", "key-1", "x"))
            .await
            .unwrap(),
        Reservation::New
    );
    assert!(matches!(
        store.complete("user:1", "never-reserved", created).await,
        Err(RepositoryError::NotFound)
    ));
}

pub async fn a_released_key_can_be_reserved_again_but_a_completed_one_stays<
    S: WebhookInbox + IdempotencyStore,
>(
    store: S,
) {
    let r = record("user:1", "key-2", "f");
    assert_eq!(store.reserve(&r).await.unwrap(), Reservation::New);
    store.release("user:1", "key-2").await.unwrap();
    assert_eq!(
        store.reserve(&r).await.unwrap(),
        Reservation::New,
        "freed for a retry"
    );

    let created = super::fixtures::new_uuid();
    store.complete("user:1", "key-2", created).await.unwrap();
    store.release("user:1", "key-2").await.unwrap();
    assert!(matches!(
        store.reserve(&r).await.unwrap(),
        Reservation::Existing(IdempotencyRecord { resource: Some(id), .. }) if id == created
    ));
    // Releasing an unknown key is harmless.
    store.release("user:1", "unknown").await.unwrap();
}

pub async fn concurrent_reservations_of_one_key_give_exactly_one_new<
    S: WebhookInbox + IdempotencyStore,
>(
    store: S,
) {
    let records: Vec<_> = (0..16)
        .map(|i| record("user:1", "key-3", &format!("f{i}")))
        .collect();
    let mut new = 0;
    for reservation in join_all(records.iter().map(|r| store.reserve(r))).await {
        if reservation.unwrap() == Reservation::New {
            new += 1;
        }
    }
    assert_eq!(new, 1);
}
