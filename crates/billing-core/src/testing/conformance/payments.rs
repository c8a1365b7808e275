use crate::audit::{AuditAction, AuditActor, AuditEntry, AuditLog};
use crate::consultation::ports::ConsultationRepository;
use crate::fees::{Fee, FeeSchedule};
use crate::ids::{CheckoutSessionId, ConnectedAccountId, PaymentIntentId, PractitionerId, UserId};
use crate::money::{Currency, Money};
use crate::payment::model::{
    CheckoutRef, IdempotencyKey, Operation, Payment, PaymentEvent, PaymentParts, PaymentStatus,
};
use crate::payment::ports::{ChangeLog, HistoryEntry, PaymentRepository};
use crate::repository::RepositoryError;
use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;
use rust_decimal::Decimal;

use super::fixtures::*;
use crate::Storage;

pub async fn a_payment_round_trips_through_its_life_with_its_history_in_order<S: Storage>(
    store: S,
) {
    let pr = practitioner(&store).await;
    let mut p = scheduled(&store, pr.id, eur(2_500), t0()).await;
    let mut written: Vec<HistoryEntry> = Vec::new();
    let account = ConnectedAccountId::parse("acct_1").unwrap();
    let checkout = CheckoutRef {
        session: Some(CheckoutSessionId::parse("cs_test_a1").unwrap()),
        url: Some("https://checkout.stripe.com/c/pay/cs_test_a1".into()),
        expires_at: Some(t0() + Duration::hours(24)),
        setup: None,
    };
    p = {
        let next = p
            .checkout_started(
                account,
                Some(PaymentIntentId::parse("pi_1").unwrap()),
                Some(checkout),
                t0() + mins(1),
            )
            .unwrap();
        PaymentRepository::update(&store, &next, p.version(), &ChangeLog::default())
            .await
            .unwrap();
        next
    };
    assert_eq!(PaymentRepository::get(&store, p.id()).await.unwrap(), p);

    let events = [
        PaymentEvent::AuthorizationFailed(crate::payment::model::Failure {
            code: Some("card_declined".into()),
            decline_code: None,
            message: "declined".into(),
        }),
        PaymentEvent::HoldPlaced {
            amount: eur(2_500),
            capture_before: Some(t0() + Duration::days(7) + Duration::microseconds(1)),
        },
        PaymentEvent::Captured {
            amount: eur(1_800),
            fee: Some(Fee::estimated(eur(50))),
        },
        PaymentEvent::FeeReported { fee: eur(51) },
        PaymentEvent::Refunded { total: eur(700) },
    ];
    for (i, event) in events.into_iter().enumerate() {
        let at = t0() + mins(2 + i64::try_from(i).unwrap());
        let (next, log) = step(&p, &event, at);
        PaymentRepository::update(&store, &next, p.version(), &log)
            .await
            .unwrap();
        written.extend(log.history);
        assert_eq!(
            PaymentRepository::get(&store, p.id()).await.unwrap(),
            next,
            "after {event:?}"
        );
        p = next;
    }

    // An operation in flight, then settled.
    let key = IdempotencyKey::refund(p.id(), "1");
    let pending = p
        .begin(Operation::Refund { amount: eur(100) }, key, t0() + mins(10))
        .unwrap()
        .unwrap();
    let marker = HistoryEntry {
        payment: p.id(),
        at: t0() + mins(10),
        from: p.status(),
        to: p.status(),
        event: "refund_requested".into(),
        amount: Some(eur(100)),
        actor: AuditActor::User(UserId::from_uuid(pr.id.as_uuid())),
    };
    PaymentRepository::update(
        &store,
        &pending,
        p.version(),
        &ChangeLog {
            history: vec![marker.clone()],
            ..ChangeLog::default()
        },
    )
    .await
    .unwrap();
    written.push(marker);
    assert_eq!(
        PaymentRepository::get(&store, p.id()).await.unwrap(),
        pending
    );
    let release = pending.finish(t0() + mins(11));
    PaymentRepository::update(&store, &release, pending.version(), &ChangeLog::default())
        .await
        .unwrap();
    let stored = PaymentRepository::get(&store, p.id()).await.unwrap();
    assert_eq!(stored, release);
    assert_eq!(stored.status(), PaymentStatus::PartiallyRefunded);

    assert_eq!(store.history(p.id()).await.unwrap(), written);
    let rec = ConsultationRepository::get(&store, stored.consultation())
        .await
        .unwrap();
    assert_eq!(rec.payment, Some(stored));
}

/// A payment made of `minor` units everywhere an amount is stored.
fn awkward(base: &Payment, minor: i64, currency: Currency) -> Payment {
    let m = Money::from_minor(minor, currency);
    Payment::restore(PaymentParts {
        amount: m,
        fee_schedule: FeeSchedule::custom(Decimal::new(325, 2), m).unwrap(),
        status: PaymentStatus::Refunded,
        authorized: Some(m),
        captured: Some(m),
        refunded: m,
        refund_count: 1,
        fee: Some(Fee::reported(m)),
        ..base.to_parts()
    })
    .unwrap()
}

pub async fn money_round_trips_exactly_including_awkward_decimals<S: Storage>(store: S) {
    let pr = practitioner(&store).await;
    let cases = [
        ("0.10", 10, Currency::Eur),
        ("0.29", 29, Currency::Eur),
        ("0.01", 1, Currency::Usd),
        ("99999999.99", 9_999_999_999, Currency::Eur),
        ("1234567.89", 123_456_789, Currency::Gbp),
        ("5000", 5_000, Currency::Jpy),
    ];
    for (text, minor, currency) in cases {
        let record = online(pr.id, eur(2_500), t0());
        let base = record.payment.clone().unwrap();
        let payment = awkward(&base, minor, currency);
        let record = crate::consultation::model::ConsultationRecord {
            payment: Some(payment.clone()),
            ..record
        };
        ConsultationRepository::create(
            &store,
            &record,
            &audit(pr.id, AuditAction::Scheduled, t0()),
            &[],
        )
        .await
        .unwrap();
        let back = PaymentRepository::get(&store, payment.id()).await.unwrap();
        assert_eq!(back, payment, "{text}");
        let expected = Money::parse(text, currency).unwrap();
        for amount in [
            back.amount(),
            back.refunded(),
            back.fee().unwrap().amount,
            back.fee_schedule().fixed(),
        ] {
            assert_eq!(amount, expected, "{text}");
            assert_eq!(
                amount.amount().to_string(),
                expected.amount().to_string(),
                "{text}"
            );
        }
        assert_eq!(back.fee_schedule().percent(), Decimal::new(325, 2));
    }
}

pub async fn timestamps_round_trip_at_microsecond_precision<S: Storage>(store: S) {
    let pr = practitioner(&store).await;
    let cases: [DateTime<Utc>; 4] = [
        t0(),
        t0() + Duration::microseconds(1),
        t0() + Duration::microseconds(876_544), // next second, .000000
        DateTime::from_timestamp_micros(4_102_444_799_999_999).unwrap(), // 2099-12-31T23:59:59.999999
    ];
    for at in cases {
        let p = scheduled(&store, pr.id, eur(2_500), at).await;
        let back = PaymentRepository::get(&store, p.id()).await.unwrap();
        assert_eq!(back.created_at(), at);
        assert_eq!(back, p);
    }
    // Finer than a microsecond is truncated, the same way on every engine.
    let nanos = t0() + Duration::nanoseconds(999);
    let p = scheduled(&store, pr.id, eur(2_500), nanos).await;
    assert_eq!(
        PaymentRepository::get(&store, p.id())
            .await
            .unwrap()
            .created_at(),
        t0()
    );
}

pub async fn a_payment_update_from_a_stale_version_is_a_conflict_and_writes_nothing<S: Storage>(
    store: S,
) {
    let pr = practitioner(&store).await;
    let p = scheduled(&store, pr.id, eur(2_500), t0()).await;
    let held = apply(&store, &p, hold(eur(2_500)), t0() + mins(1)).await;
    let trail = AuditLog::recent(&store, pr.id, 100).await.unwrap();

    // A second writer that read the payment before the hold was recorded.
    let (stale, log) = step(&p, &PaymentEvent::Released, t0() + mins(2));
    let err = PaymentRepository::update(&store, &stale, p.version(), &log)
        .await
        .unwrap_err();
    assert!(matches!(err, RepositoryError::Conflict), "{err:?}");
    assert_eq!(PaymentRepository::get(&store, p.id()).await.unwrap(), held);
    assert_eq!(
        store.history(p.id()).await.unwrap().len(),
        1,
        "only the hold"
    );
    assert_eq!(AuditLog::recent(&store, pr.id, 100).await.unwrap(), trail);
}

pub async fn updating_an_unknown_payment_is_not_found<S: Storage>(store: S) {
    let pr = practitioner(&store).await;
    let never_stored = online(pr.id, eur(2_500), t0()).payment.unwrap();
    let (next, _) = step(&never_stored, &hold(eur(2_500)), t0());
    let err =
        PaymentRepository::update(&store, &next, never_stored.version(), &ChangeLog::default())
            .await
            .unwrap_err();
    assert!(matches!(err, RepositoryError::NotFound), "{err:?}");
}

pub async fn a_failure_mid_transaction_leaves_payment_history_and_audit_untouched<S: Storage>(
    store: S,
) {
    let pr = practitioner(&store).await;
    let p = scheduled(&store, pr.id, eur(2_500), t0()).await;
    let trail = AuditLog::recent(&store, pr.id, 100).await.unwrap();
    let (next, mut log) = step(&p, &hold(eur(2_500)), t0() + mins(1));
    // The payment row and the history row are written first; the last audit entry is
    // about a practitioner that does not exist, so its insert fails mid-transaction.
    let ghost = PractitionerId::from_uuid(new_uuid());
    log.audit.push(AuditEntry::new(
        t0(),
        ghost,
        AuditActor::System,
        AuditAction::Authorized,
    ));
    assert!(
        PaymentRepository::update(&store, &next, p.version(), &log)
            .await
            .is_err()
    );

    assert_eq!(PaymentRepository::get(&store, p.id()).await.unwrap(), p);
    assert!(store.history(p.id()).await.unwrap().is_empty());
    assert_eq!(AuditLog::recent(&store, pr.id, 100).await.unwrap(), trail);
    // …and the same change without the failure goes through.
    log.audit.pop();
    PaymentRepository::update(&store, &next, p.version(), &log)
        .await
        .unwrap();
    assert_eq!(PaymentRepository::get(&store, p.id()).await.unwrap(), next);
    assert_eq!(store.history(p.id()).await.unwrap().len(), 1);
}

pub async fn concurrent_validations_of_one_payment_let_exactly_one_win<S: Storage>(store: S) {
    const WRITERS: i64 = 16;
    let pr = practitioner(&store).await;
    let p = scheduled(&store, pr.id, eur(2_500), t0()).await;
    let held = apply(&store, &p, hold(eur(2_500)), t0() + mins(1)).await;
    let writers = (0..WRITERS).map(|i| {
        // Each writer validates a different amount, so the winner is recognisable.
        let (store, held) = (&store, &held);
        async move {
            let (next, log) = step(held, &capture(eur(1_000 + i)), t0() + mins(2));
            let result = PaymentRepository::update(store, &next, held.version(), &log).await;
            (next, result)
        }
    });
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for outcome in join_all(writers).await {
        match outcome {
            (next, Ok(())) => winners.push(next),
            (_, Err(RepositoryError::Conflict)) => conflicts += 1,
            (_, Err(e)) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins");
    assert_eq!(conflicts, WRITERS - 1);
    let stored = PaymentRepository::get(&store, p.id()).await.unwrap();
    assert_eq!(stored, winners[0]);
    let history = store.history(p.id()).await.unwrap();
    assert_eq!(history.len(), 2, "the hold and one capture");
    assert_eq!(history[1].amount, winners[0].captured());
    let validated = AuditLog::recent(&store, pr.id, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.subject == Some(p.id().as_uuid()))
        .count();
    assert_eq!(validated, 2, "one audit entry per committed change");
}

pub async fn a_payment_is_found_by_its_intent<S: Storage>(store: S) {
    let pr = practitioner(&store).await;
    let p = scheduled(&store, pr.id, eur(2_500), t0()).await;
    let _other = scheduled(&store, pr.id, eur(2_500), t0()).await;
    let intent = PaymentIntentId::parse("pi_3MtwBwLkdIwHu7ix28a3tqPa").unwrap();
    assert_eq!(store.find_by_intent(&intent).await.unwrap(), None);
    let next = p.with_intent(intent.clone(), t0() + mins(1)).unwrap();
    PaymentRepository::update(&store, &next, p.version(), &ChangeLog::default())
        .await
        .unwrap();
    assert_eq!(store.find_by_intent(&intent).await.unwrap(), Some(next));
}

pub async fn open_holds_count_authorised_payments_and_operations_in_flight<S: Storage>(store: S) {
    let pr = practitioner(&store).await;
    let other = practitioner(&store).await;
    assert_eq!(store.open_holds(pr.id).await.unwrap(), 0);
    for status in [
        PaymentStatus::Incomplete,
        PaymentStatus::Authorized,
        PaymentStatus::Authorized,
        PaymentStatus::Captured,
        PaymentStatus::Released,
        PaymentStatus::Failed,
    ] {
        payment_in(&store, pr.id, eur(2_500), status, t0()).await;
    }
    payment_in(
        &store,
        other.id,
        eur(2_500),
        PaymentStatus::Authorized,
        t0(),
    )
    .await;
    assert_eq!(store.open_holds(pr.id).await.unwrap(), 2);

    // A captured payment with a refund in flight holds nothing but is not settled.
    let captured = payment_in(&store, pr.id, eur(2_500), PaymentStatus::Captured, t0()).await;
    let pending = captured
        .begin(
            Operation::Refund { amount: eur(100) },
            IdempotencyKey::refund(captured.id(), "0"),
            t0(),
        )
        .unwrap()
        .unwrap();
    PaymentRepository::update(&store, &pending, captured.version(), &ChangeLog::default())
        .await
        .unwrap();
    assert_eq!(store.open_holds(pr.id).await.unwrap(), 3);
}
