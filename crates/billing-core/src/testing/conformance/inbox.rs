use crate::ids::EventId;
use crate::payment::ports::{
    Claim, IdempotencyRecord, IdempotencyStore, Reservation, WebhookInbox,
};
use crate::repository::RepositoryError;
use futures_util::future::join_all;

use super::fixtures::*;

fn event() -> EventId {
    EventId::parse(&format!("evt_{}", new_uuid().simple())).unwrap()
}

pub async fn a_webhook_event_is_new_once_then_seen_until_processed<
    S: WebhookInbox + IdempotencyStore,
>(
    store: S,
) {
    let id = event();
    assert_eq!(
        store
            .claim(&id, "payment_intent.succeeded", t0())
            .await
            .unwrap(),
        Claim::New
    );
    assert_eq!(
        store
            .claim(&id, "payment_intent.succeeded", t0())
            .await
            .unwrap(),
        Claim::Seen { processed: false }
    );
    store
        .mark_processed(&id, t0() + mins(1), "applied")
        .await
        .unwrap();
    assert_eq!(
        store
            .claim(&id, "payment_intent.succeeded", t0())
            .await
            .unwrap(),
        Claim::Seen { processed: true }
    );
    assert_eq!(
        store
            .claim(&event(), "charge.refunded", t0())
            .await
            .unwrap(),
        Claim::New
    );
    assert!(matches!(
        store.mark_processed(&event(), t0(), "applied").await,
        Err(RepositoryError::NotFound)
    ));
}

pub async fn concurrent_claims_of_one_event_id_give_exactly_one_new<
    S: WebhookInbox + IdempotencyStore,
>(
    store: S,
) {
    let id = event();
    let claims = (0..16).map(|_| store.claim(&id, "payment_intent.succeeded", t0()));
    let mut new = 0;
    for claim in join_all(claims).await {
        match claim.unwrap() {
            Claim::New => new += 1,
            Claim::Seen { processed } => assert!(!processed),
        }
    }
    assert_eq!(new, 1);
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
