use billing_core::money::{Currency, Money};
use billing_core::payment::model::{Payment, PaymentEvent, PaymentStatus};
use billing_core::payment::ports::{PaymentQuery, PaymentRepository, PaymentScope, PaymentTotals};
use billing_core::repository::RepositoryError;
use billing_core::staff::UserRepository;
use billing_core::testing::conformance::fixtures::{apply, eur, payment_in, practitioner, t0};
use chrono::{Duration, NaiveTime};
use storage_seaorm::Store;

pub async fn migrations_run_down_to_nothing_and_up_again(store: Store) {
    let applied = store.applied_migrations().await.unwrap();
    assert_eq!(applied.len(), 9, "{applied:?}");
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

/// The maintained totals (migration 9) start from the payments written before them, and
/// follow the changes made after.
pub async fn the_totals_migration_sums_the_payments_written_before_it(store: Store) {
    store.migrate_down_by(1).await.unwrap();
    let pr = practitioner(&store).await;
    let mut before = Vec::new();
    for (days, status, amount) in [
        (0, PaymentStatus::Captured, eur(2_500)),
        (0, PaymentStatus::Authorized, eur(1_000)),
        (1, PaymentStatus::PartiallyRefunded, eur(4_000)),
        (
            2,
            PaymentStatus::Released,
            Money::from_minor(900, Currency::Usd),
        ),
    ] {
        before.push(payment_in(&store, pr.id, amount, status, t0() + Duration::days(days)).await);
    }
    store.migrate().await.unwrap();

    // Whole days only: the maintained totals answer alone.
    let first = t0().date_naive().and_time(NaiveTime::MIN).and_utc();
    let q = PaymentQuery {
        scope: PaymentScope::Practitioners(vec![pr.id]),
        statuses: vec![],
        from: Some(first),
        to: Some(first + Duration::days(3)),
        after: None,
        limit: 10,
        totals: true,
    };
    let reference = |payments: &[Payment]| {
        let mut eur = PaymentTotals::zero(Currency::Eur);
        let mut usd = PaymentTotals::zero(Currency::Usd);
        for p in payments {
            let t = if p.amount().currency() == Currency::Eur {
                &mut eur
            } else {
                &mut usd
            };
            t.add(p).unwrap();
        }
        vec![eur, usd]
    };
    let totals = |q| {
        let store = &store;
        async move { PaymentRepository::list(store, q).await.unwrap().totals }
    };
    assert_eq!(totals(&q).await, reference(&before));

    let refunded = apply(
        &store,
        &before[0],
        PaymentEvent::Refunded { total: eur(500) },
        t0() + Duration::days(3),
    )
    .await;
    before[0] = refunded;
    assert_eq!(totals(&q).await, reference(&before));
}
