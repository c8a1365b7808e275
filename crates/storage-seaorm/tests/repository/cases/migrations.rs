use billing_core::repository::RepositoryError;
use billing_core::staff::UserRepository;
use storage_seaorm::Store;

pub async fn migrations_run_down_to_nothing_and_up_again(store: Store) {
    let applied = store.applied_migrations().await.unwrap();
    assert_eq!(applied.len(), 8, "{applied:?}");
    assert!(store.pending_migrations().await.unwrap().is_empty());
    // Running them again is a no-op.
    store.migrate().await.unwrap();
    assert_eq!(store.applied_migrations().await.unwrap(), applied);

    store.migrate_down().await.unwrap();
    assert!(store.applied_migrations().await.unwrap().is_empty());
    assert_eq!(store.pending_migrations().await.unwrap(), applied);
    assert!(
        matches!(store.count().await, Err(RepositoryError::Unavailable(_))),
        "the tables are gone"
    );

    store.migrate().await.unwrap();
    assert_eq!(store.applied_migrations().await.unwrap(), applied);
    assert_eq!(store.count().await.unwrap(), 0);
    store.ping().await.unwrap();
}
