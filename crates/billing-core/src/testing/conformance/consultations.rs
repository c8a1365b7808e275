use crate::audit::{AuditAction, AuditLog};
use crate::consultation::model::{ConsultationRecord, PayAccess, PaymentMode};
use crate::consultation::ports::ConsultationRepository;
use crate::ids::{ConsultationId, PaymentId, PractitionerId};
use crate::payment::model::{IdempotencyKey, Operation, Payment, PaymentStatus};
use crate::payment::ports::{ChangeLog, PaymentRepository};
use crate::repository::RepositoryError;
use crate::secrets::TokenHash;
use chrono::Duration;

use super::fixtures::*;
use crate::Storage;

pub async fn a_consultation_and_its_payment_round_trip_by_id_and_by_pay_token<S: Storage>(
    store: S,
) {
    let p = practitioner(&store).await;
    let record = online(p.id, eur(2_500), t0());
    ConsultationRepository::create(
        &store,
        &record,
        &audit(p.id, AuditAction::Scheduled, t0()),
        &[],
    )
    .await
    .unwrap();
    let id = record.consultation.id;
    assert_eq!(
        ConsultationRepository::get(&store, id).await.unwrap(),
        record
    );
    assert_eq!(
        store
            .find_by_pay_token(&record.consultation.pay_token_hash)
            .await
            .unwrap(),
        record
    );
    let payment = record.payment.clone().unwrap();
    assert_eq!(
        PaymentRepository::get(&store, payment.id()).await.unwrap(),
        payment
    );
    let trail = AuditLog::recent(&store, p.id, 10).await.unwrap();
    assert_eq!(
        trail[0].action,
        AuditAction::Scheduled,
        "written with the consultation"
    );
}

pub async fn a_consultation_without_online_payment_round_trips<S: Storage>(store: S) {
    let p = practitioner(&store).await;
    let mut c = consultation(p.id, PaymentMode::None, t0() + Duration::days(2));
    c.patient.email = None;
    c.created_by = Some(crate::ids::UserId::from_uuid(p.id.as_uuid()));
    let record = ConsultationRecord {
        consultation: c,
        payment: None,
    };
    ConsultationRepository::create(
        &store,
        &record,
        &audit(p.id, AuditAction::Scheduled, t0()),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        ConsultationRepository::get(&store, record.consultation.id)
            .await
            .unwrap(),
        record
    );
}

pub async fn a_reused_pay_token_hash_is_a_duplicate_and_nothing_is_written<S: Storage>(store: S) {
    let p = practitioner(&store).await;
    let first = online(p.id, eur(2_500), t0());
    ConsultationRepository::create(
        &store,
        &first,
        &audit(p.id, AuditAction::Scheduled, t0()),
        &[],
    )
    .await
    .unwrap();
    let trail = AuditLog::recent(&store, p.id, 100).await.unwrap().len();
    let mut second = online(p.id, eur(3_000), t0());
    second.consultation.pay_token_hash = first.consultation.pay_token_hash.clone();
    let err = ConsultationRepository::create(
        &store,
        &second,
        &audit(p.id, AuditAction::Scheduled, t0()),
        &[],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, RepositoryError::Duplicate("pay token")),
        "{err:?}"
    );
    assert_nothing_written(&store, &second).await;
    assert_eq!(
        AuditLog::recent(&store, p.id, 100).await.unwrap().len(),
        trail
    );
}

pub async fn a_reused_consultation_or_payment_id_is_a_duplicate<S: Storage>(store: S) {
    let p = practitioner(&store).await;
    let first = online(p.id, eur(2_500), t0());
    ConsultationRepository::create(
        &store,
        &first,
        &audit(p.id, AuditAction::Scheduled, t0()),
        &[],
    )
    .await
    .unwrap();

    let mut same_consultation = first.clone();
    same_consultation.consultation.pay_token_hash = pay_token_hash();
    assert!(matches!(
        ConsultationRepository::create(
            &store,
            &same_consultation,
            &audit(p.id, AuditAction::Scheduled, t0()),
            &[],
        )
        .await,
        Err(RepositoryError::Duplicate("consultation"))
    ));

    // A new consultation whose payment reuses the first payment's id: the consultation
    // row is written first, then the payment insert fails, and neither remains.
    let mut same_payment = online(p.id, eur(2_500), t0());
    let parts = first.payment.as_ref().unwrap().to_parts();
    same_payment.payment = Some(
        Payment::restore(crate::payment::model::PaymentParts {
            consultation: same_payment.consultation.id,
            ..parts
        })
        .unwrap(),
    );
    let err = ConsultationRepository::create(
        &store,
        &same_payment,
        &audit(p.id, AuditAction::Scheduled, t0()),
        &[],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, RepositoryError::Duplicate("payment")),
        "{err:?}"
    );
    assert_nothing_written(&store, &same_payment).await;
}

pub async fn a_second_payment_for_one_consultation_is_a_duplicate_and_nothing_is_written<
    S: Storage,
>(
    store: S,
) {
    let p = practitioner(&store).await;
    let first = online(p.id, eur(2_500), t0());
    ConsultationRepository::create(
        &store,
        &first,
        &audit(p.id, AuditAction::Scheduled, t0()),
        &[],
    )
    .await
    .unwrap();
    // A new consultation carrying a payment for the first consultation.
    let mut second = online(p.id, eur(2_500), t0());
    let fresh = second.payment.take().unwrap().to_parts();
    second.payment = Some(
        Payment::restore(crate::payment::model::PaymentParts {
            consultation: first.consultation.id,
            ..fresh
        })
        .unwrap(),
    );
    let err = ConsultationRepository::create(
        &store,
        &second,
        &audit(p.id, AuditAction::Scheduled, t0()),
        &[],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            RepositoryError::Duplicate("payment of this consultation")
        ),
        "{err:?}"
    );
    assert_nothing_written(&store, &second).await;
    assert_eq!(
        ConsultationRepository::get(&store, first.consultation.id)
            .await
            .unwrap(),
        first
    );
}

pub async fn a_consultation_of_an_unknown_practitioner_is_not_found<S: Storage>(store: S) {
    let ghost = PractitionerId::from_uuid(new_uuid());
    let record = online(ghost, eur(2_500), t0());
    let err = ConsultationRepository::create(
        &store,
        &record,
        &audit(ghost, AuditAction::Scheduled, t0()),
        &[],
    )
    .await
    .unwrap_err();
    assert!(matches!(err, RepositoryError::NotFound), "{err:?}");
}

async fn assert_nothing_written<S: Storage>(store: &S, record: &ConsultationRecord) {
    assert!(matches!(
        ConsultationRepository::get(store, record.consultation.id).await,
        Err(RepositoryError::NotFound)
    ));
    if let Some(p) = &record.payment {
        let stored = PaymentRepository::get(store, p.id()).await;
        // Either no such payment, or one that belongs to another consultation.
        assert!(
            match &stored {
                Err(RepositoryError::NotFound) => true,
                Ok(other) => other.consultation() != record.consultation.id,
                Err(_) => false,
            },
            "{stored:?}"
        );
    }
}

pub async fn replacing_the_pay_token_retires_the_previous_one<S: Storage>(store: S) {
    let p = practitioner(&store).await;
    let record = online(p.id, eur(2_500), t0());
    ConsultationRepository::create(
        &store,
        &record,
        &audit(p.id, AuditAction::Scheduled, t0()),
        &[],
    )
    .await
    .unwrap();
    let old = record.consultation.pay_token_hash.clone();
    let new = pay_token_hash();
    store
        .replace_pay_token(record.consultation.id, &new, 3)
        .await
        .unwrap();
    assert!(matches!(
        store.find_by_pay_token(&old).await,
        Err(RepositoryError::NotFound)
    ));
    let found = store.find_by_pay_token(&new).await.unwrap();
    assert_eq!(found.consultation.id, record.consultation.id);
    assert_eq!(found.consultation.pay_link_generation, 3);
    assert!(matches!(
        store
            .replace_pay_token(ConsultationId::from_uuid(new_uuid()), &pay_token_hash(), 1)
            .await,
        Err(RepositoryError::NotFound)
    ));
}

pub async fn an_unknown_consultation_or_pay_token_is_not_found<S: Storage>(store: S) {
    assert!(matches!(
        ConsultationRepository::get(&store, ConsultationId::from_uuid(new_uuid())).await,
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        store.find_by_pay_token(&pay_token_hash()).await,
        Err(RepositoryError::NotFound)
    ));
    assert!(matches!(
        PaymentRepository::get(&store, PaymentId::from_uuid(new_uuid())).await,
        Err(RepositoryError::NotFound)
    ));
}

pub async fn upcoming_lists_consultations_from_a_date_soonest_first<S: Storage>(store: S) {
    let a = practitioner(&store).await;
    let b = practitioner(&store).await;
    let c = practitioner(&store).await;
    let mut expected = Vec::new();
    for (p, hours) in [
        (a.id, 5),
        (b.id, 1),
        (a.id, -1),
        (c.id, 2),
        (a.id, 3),
        (b.id, 3),
    ] {
        let mut record = online(p, eur(2_500), t0());
        record.consultation.starts_at = t0() + Duration::hours(hours);
        ConsultationRepository::create(
            &store,
            &record,
            &audit(p, AuditAction::Scheduled, t0()),
            &[],
        )
        .await
        .unwrap();
        if p != c.id && hours >= 0 {
            expected.push(record);
        }
    }
    expected.sort_by_key(|r| (r.consultation.starts_at, r.consultation.id));
    assert_eq!(
        store.upcoming(&[a.id, b.id], t0(), 10).await.unwrap(),
        expected
    );
    assert_eq!(
        store.upcoming(&[a.id, b.id], t0(), 2).await.unwrap(),
        expected[..2].to_vec()
    );
    assert!(store.upcoming(&[], t0(), 10).await.unwrap().is_empty());
}

pub async fn the_day_of_a_consultation_is_written_conditionally_with_its_history<S: Storage>(
    store: S,
) {
    use crate::audit::AuditActor;
    use crate::consultation::model::{Cancellation, CancelledBy, ConsultationStatus};
    use crate::payment::ports::{ChangeLog, HistoryEntry};
    let p = practitioner(&store).await;
    let record = online(p.id, eur(2_500), t0());
    ConsultationRepository::create(
        &store,
        &record,
        &audit(p.id, AuditAction::Scheduled, t0()),
        &[],
    )
    .await
    .unwrap();
    let before = record.consultation.clone();
    let payment = record.payment.clone().unwrap();
    // Sub-second times round-trip, so the next conditional write still matches.
    let started = crate::consultation::model::Consultation {
        started_at: Some(t0() + Duration::hours(1) + Duration::microseconds(123_456)),
        starts_at: t0() + Duration::days(3),
        rescheduled_at: Some(t0() + Duration::microseconds(654_321)),
        ..before.clone()
    };
    let log = ChangeLog {
        history: vec![HistoryEntry {
            payment: payment.id(),
            at: t0(),
            from: payment.status(),
            to: payment.status(),
            event: "rescheduled".into(),
            amount: None,
            actor: AuditActor::Patient,
        }],
        audit: vec![audit(p.id, AuditAction::Rescheduled, t0())],
        ..ChangeLog::default()
    };
    store.update_day(&started, &before, &log).await.unwrap();
    let read = ConsultationRepository::get(&store, before.id)
        .await
        .unwrap();
    assert_eq!(read.consultation, started);
    assert_eq!(
        store
            .history(payment.id())
            .await
            .unwrap()
            .last()
            .unwrap()
            .event,
        "rescheduled"
    );
    // A writer that read the day before is refused and writes nothing.
    let cancelled = crate::consultation::model::Consultation {
        status: ConsultationStatus::Cancelled(Cancellation {
            by: CancelledBy::Patient,
            at: t0() + Duration::hours(2),
            late: true,
        }),
        ..before.clone()
    };
    assert!(matches!(
        store.update_day(&cancelled, &before, &log).await,
        Err(RepositoryError::Conflict)
    ));
    assert_eq!(
        ConsultationRepository::get(&store, before.id)
            .await
            .unwrap()
            .consultation,
        started
    );
    // Every status round-trips.
    let cancelled = crate::consultation::model::Consultation {
        status: cancelled.status,
        ..started.clone()
    };
    store
        .update_day(&cancelled, &started, &ChangeLog::default())
        .await
        .unwrap();
    let absent = crate::consultation::model::Consultation {
        status: ConsultationStatus::NoShow {
            at: t0() + Duration::days(3),
        },
        ..cancelled.clone()
    };
    store
        .update_day(&absent, &cancelled, &ChangeLog::default())
        .await
        .unwrap();
    assert_eq!(
        ConsultationRepository::get(&store, before.id)
            .await
            .unwrap()
            .consultation,
        absent
    );
    let unknown = crate::consultation::model::Consultation {
        id: ConsultationId::from_uuid(new_uuid()),
        ..absent.clone()
    };
    assert!(matches!(
        store
            .update_day(&unknown, &unknown, &ChangeLog::default())
            .await,
        Err(RepositoryError::NotFound)
    ));
}

pub async fn the_terms_a_patient_accepted_are_kept_with_the_payment<S: Storage>(store: S) {
    use crate::consultation::policy::{AcceptedTerms, CancellationPolicy, MissedFee};
    use crate::payment::ports::ChangeLog;
    let p = practitioner(&store).await;
    let record = online(p.id, eur(2_500), t0());
    ConsultationRepository::create(
        &store,
        &record,
        &audit(p.id, AuditAction::Scheduled, t0()),
        &[],
    )
    .await
    .unwrap();
    let payment = record.payment.unwrap();
    let policy = CancellationPolicy::new(48, MissedFee::Fixed(eur(1_500))).unwrap();
    let terms = AcceptedTerms::of(&policy, eur(2_500), crate::Lang::En, t0());
    let next = payment.with_terms(terms.clone(), t0());
    PaymentRepository::update(&store, &next, payment.version(), &ChangeLog::default())
        .await
        .unwrap();
    let read = PaymentRepository::get(&store, payment.id()).await.unwrap();
    assert_eq!(read.terms(), Some(&terms));
    assert_eq!(read, next);
}

/// The gate a pay token opens is what its whole record says, through the payment's
/// life: nothing authorised, the hold in place, a release in flight; and for a
/// consultation without online payment. An unknown token is not found.
pub async fn the_gate_of_a_pay_token_agrees_with_its_record_through_the_payments_life<
    S: Storage,
>(
    store: S,
) {
    let p = practitioner(&store).await;
    let online_record = online(p.id, eur(2_500), t0());
    let mut offline = consultation(p.id, PaymentMode::None, t0() + Duration::days(2));
    offline.status = crate::consultation::model::ConsultationStatus::NoShow {
        at: t0() + Duration::days(2),
    };
    offline.started_at = Some(t0() + Duration::days(2));
    let offline_record = ConsultationRecord {
        consultation: offline,
        payment: None,
    };
    for record in [&online_record, &offline_record] {
        ConsultationRepository::create(
            &store,
            record,
            &audit(p.id, AuditAction::Scheduled, t0()),
            &[],
        )
        .await
        .unwrap();
    }
    let gate = |hash: TokenHash| {
        let store = &store;
        async move {
            let whole = store.find_by_pay_token(&hash).await.unwrap();
            let gate = store.pay_access(&hash).await.unwrap();
            assert_eq!(gate, PayAccess::of(&whole));
            gate
        }
    };
    let hash = online_record.consultation.pay_token_hash.clone();
    let incomplete = gate(hash.clone()).await;
    assert_eq!(
        incomplete.payment.map(|g| (g.status, g.releasing)),
        Some((PaymentStatus::Incomplete, false))
    );
    assert!(!incomplete.can_enter());

    let payment = online_record.payment.clone().unwrap();
    let held = apply(&store, &payment, hold(eur(2_500)), t0() + mins(1)).await;
    assert!(gate(hash.clone()).await.can_enter());
    let releasing = held
        .begin(
            Operation::Release,
            IdempotencyKey::release(held.id(), None),
            t0() + mins(2),
        )
        .unwrap()
        .unwrap();
    PaymentRepository::update(&store, &releasing, held.version(), &ChangeLog::default())
        .await
        .unwrap();
    let gate_now = gate(hash).await;
    assert!(gate_now.payment.is_some_and(|g| g.releasing));
    assert!(!gate_now.can_enter(), "a hold being released opens nothing");

    let missed = gate(offline_record.consultation.pay_token_hash.clone()).await;
    assert_eq!(missed.payment, None);
    assert_eq!(missed.started_at, offline_record.consultation.started_at);
    assert!(!missed.can_enter(), "a missed consultation is closed");
    assert!(matches!(
        store.pay_access(&pay_token_hash()).await,
        Err(RepositoryError::NotFound)
    ));
}
