//! What live Stripe Connect over time adds to a payment (C14, C15): the saved card,
//! refunds one by one, a dispute, a note of what reconciliation could not settle; the
//! holds to place; and what a practitioner's statements say.

use crate::consultation::model::ConsultationRecord;
use crate::consultation::ports::ConsultationRepository;
use crate::ids::{ConnectedAccountId, PractitionerId, RefundId, SetupIntentId};
use crate::payment::model::{
    CheckoutRef, DisputeStatus, IdempotencyKey, Operation, Payment, PaymentEvent, PaymentStatus,
    RefundLine, RefundState,
};
use crate::payment::ports::{ChangeLog, PaymentRepository};
use crate::practitioner::model::{DescriptorSuffix, PaymentLabel, StatementText};
use crate::practitioner::ports::PractitionerRepository;
use chrono::{DateTime, Duration, Utc};

use super::fixtures::*;
use crate::Storage;

fn refund(id: &str, minor: i64, status: RefundState) -> RefundLine {
    RefundLine {
        id: RefundId::parse(id).unwrap(),
        amount: eur(minor),
        status,
    }
}

async fn write<S: Storage>(store: &S, before: &Payment, after: &Payment) {
    PaymentRepository::update(store, after, before.version(), &ChangeLog::default())
        .await
        .unwrap();
}

pub async fn a_payment_round_trips_with_its_saved_card_refunds_dispute_and_attention<S: Storage>(
    store: S,
) {
    let pr = practitioner(&store).await;
    let p = scheduled(&store, pr.id, eur(2_500), t0()).await;
    // The Payment Element saving the card: its SetupIntent is recorded.
    let started = p
        .checkout_started(
            ConnectedAccountId::parse("acct_1").unwrap(),
            None,
            Some(CheckoutRef {
                session: None,
                url: None,
                expires_at: None,
                setup: Some(SetupIntentId::parse("seti_1Save").unwrap()),
            }),
            t0() + Duration::seconds(30),
        )
        .unwrap();
    write(&store, &p, &started).await;
    assert_eq!(
        PaymentRepository::get(&store, p.id()).await.unwrap(),
        started
    );
    let saved = apply(
        &store,
        &started,
        PaymentEvent::CardSaved(saved_card()),
        t0() + mins(1),
    )
    .await;
    assert_eq!(PaymentRepository::get(&store, p.id()).await.unwrap(), saved);

    // A hold placed off-session, in flight.
    let key = IdempotencyKey::hold(p.id(), &saved_card().payment_method);
    let holding = saved
        .begin(Operation::Hold { amount: eur(2_500) }, key, t0() + mins(2))
        .unwrap()
        .unwrap();
    write(&store, &saved, &holding).await;
    assert_eq!(
        PaymentRepository::get(&store, p.id()).await.unwrap(),
        holding
    );

    let mut now = holding.finish(t0() + mins(3));
    write(&store, &holding, &now).await;
    for event in [
        hold(eur(2_500)),
        capture(eur(1_800)),
        PaymentEvent::RefundIssued(refund("re_1", 500, RefundState::Pending)),
        PaymentEvent::RefundsReported(vec![
            refund("re_1", 500, RefundState::Failed),
            refund("re_2", 300, RefundState::Succeeded),
        ]),
        PaymentEvent::Disputed(dispute(eur(1_500), DisputeStatus::NeedsResponse, t0())),
    ] {
        now = apply(&store, &now, event, t0() + mins(4)).await;
    }
    assert_eq!(now.status(), PaymentStatus::Disputed);
    assert_eq!(now.refunds().len(), 2);
    let noted = now
        .with_attention(
            "what the gateway reports cannot be applied".into(),
            t0() + mins(5),
        )
        .unwrap();
    write(&store, &now, &noted).await;

    let stored = PaymentRepository::get(&store, p.id()).await.unwrap();
    assert_eq!(stored, noted);
    assert_eq!(stored.refunded(), eur(300));
    assert_eq!(stored.dispute_cost().unwrap(), eur(1_500 + 1_500));
    assert_eq!(
        stored.net().unwrap(),
        eur(1_800 - 300 - 50 - 3_000),
        "1.4 % + 0.25 of 18.00 estimated"
    );
}

async fn card_saved_starting<S: Storage>(
    store: &S,
    pr: PractitionerId,
    starts: DateTime<Utc>,
) -> Payment {
    let record: ConsultationRecord = {
        let mut r = online(pr, eur(2_500), t0());
        r.consultation.starts_at = starts;
        r
    };
    ConsultationRepository::create(
        store,
        &record,
        &audit(pr, crate::audit::AuditAction::Scheduled, t0()),
        &[],
    )
    .await
    .unwrap();
    let p = record.payment.unwrap();
    apply(
        store,
        &p,
        PaymentEvent::CardSaved(saved_card()),
        t0() + mins(1),
    )
    .await
}

pub async fn holds_to_place_are_saved_cards_of_consultations_starting_soon_soonest_first<
    S: Storage,
>(
    store: S,
) {
    let pr = practitioner(&store).await;
    let day = |n: i64| t0() + Duration::days(n);
    let in_five = card_saved_starting(&store, pr.id, day(5)).await;
    let in_three = card_saved_starting(&store, pr.id, day(3)).await;
    let _in_nine = card_saved_starting(&store, pr.id, day(9)).await;
    // Held already, or not saved: not for the job.
    let _held = payment_in(&store, pr.id, eur(2_500), PaymentStatus::Authorized, t0()).await;
    let _unpaid = payment_in(&store, pr.id, eur(2_500), PaymentStatus::Incomplete, t0()).await;

    let due = store.holds_to_place(day(6), 200).await.unwrap();
    assert_eq!(
        due.iter().map(|r| r.payment.id()).collect::<Vec<_>>(),
        vec![in_three.id(), in_five.id()]
    );
    assert_eq!(due[0].starts_at, day(3));
    assert_eq!(store.holds_to_place(day(6), 1).await.unwrap().len(), 1);
    assert!(store.holds_to_place(day(2), 200).await.unwrap().is_empty());
    // A saved card is a hold to come: unlinking waits for it.
    assert_eq!(store.open_holds(pr.id).await.unwrap(), 4);
}

pub async fn what_statements_say_round_trips_with_the_practitioner<S: Storage>(store: S) {
    let p = practitioner(&store).await;
    let statement = StatementText {
        label: Some(PaymentLabel::parse("Séance de suivi").unwrap()),
        descriptor_suffix: Some(DescriptorSuffix::parse("CABINET 12").unwrap()),
    };
    let next = p.with_preferences(p.preferences.clone().with_statement(statement), t0());
    PractitionerRepository::update(
        &store,
        &next,
        p.version,
        &audit(p.id, crate::audit::AuditAction::PreferencesChanged, t0()),
    )
    .await
    .unwrap();
    let stored = PractitionerRepository::get(&store, p.id).await.unwrap();
    assert_eq!(stored, next);
}
