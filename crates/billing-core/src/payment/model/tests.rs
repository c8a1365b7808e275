use super::*;
use crate::fees::{FeeSchedule, FeeSource};
use crate::money::Currency;
use chrono::TimeZone;
use proptest::prelude::*;
use uuid::Uuid;

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::Eur)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
}

fn new_payment(cap: i64) -> Payment {
    Payment::new(
        PaymentId::from_uuid(Uuid::from_u128(1)),
        ConsultationId::from_uuid(Uuid::from_u128(2)),
        PractitionerId::from_uuid(Uuid::from_u128(3)),
        eur(cap),
        FeeSchedule::default_for(Currency::Eur),
        t0(),
    )
    .unwrap()
}

fn changed(applied: Applied) -> Payment {
    match applied {
        Applied::Changed { payment, .. } => *payment,
        other => panic!("expected a change, got {other:?}"),
    }
}

fn authorized(cap: i64) -> Payment {
    let p = new_payment(cap);
    changed(
        p.apply(
            &PaymentEvent::HoldPlaced {
                amount: eur(cap),
                capture_before: None,
            },
            t0(),
        )
        .unwrap(),
    )
}

fn captured(cap: i64, amount: i64) -> Payment {
    changed(
        authorized(cap)
            .apply(
                &PaymentEvent::Captured {
                    amount: eur(amount),
                    fee: None,
                },
                t0(),
            )
            .unwrap(),
    )
}

fn pi() -> PaymentIntentId {
    PaymentIntentId::parse("pi_1").unwrap()
}

fn declined() -> Failure {
    Failure {
        code: Some("card_declined".into()),
        decline_code: Some("generic_decline".into()),
        message: "Your card was declined.".into(),
    }
}

#[test]
fn labels_are_exactly_the_specifications() {
    let table = [
        (PaymentStatus::Incomplete, "Incomplet", "Incomplete"),
        (PaymentStatus::Authorized, "Non capturé", "Uncaptured"),
        (PaymentStatus::Captured, "Réussi", "Succeeded"),
        (PaymentStatus::Released, "Annulé", "Released"),
        (PaymentStatus::Expired, "Expiré", "Expired"),
        (PaymentStatus::Failed, "Refusé", "Declined"),
        (PaymentStatus::Refunded, "Remboursé", "Refunded"),
        (
            PaymentStatus::PartiallyRefunded,
            "Partiellement remboursé",
            "Partially refunded",
        ),
        (PaymentStatus::CardSaved, "Carte enregistrée", "Card saved"),
        (PaymentStatus::Disputed, "Contesté", "Disputed"),
        (
            PaymentStatus::DisputeLost,
            "Contestation perdue",
            "Dispute lost",
        ),
    ];
    assert_eq!(table.len(), PaymentStatus::ALL.len());
    for (status, fr, en) in table {
        assert_eq!(status.label(Lang::Fr), fr);
        assert_eq!(status.label(Lang::En), en);
        assert_eq!(status.as_str().parse::<PaymentStatus>(), Ok(status));
    }
}

#[test]
fn the_transition_table_allows_exactly_these_moves() {
    use EventKind as E;
    use PaymentStatus as S;
    // Written out independently of `PaymentStatus::next`: every legal move.
    let legal: &[(S, E, S)] = &[
        (S::Incomplete, E::HoldPlaced, S::Authorized),
        (S::Failed, E::HoldPlaced, S::Authorized),
        (S::CardSaved, E::HoldPlaced, S::Authorized),
        (S::Authorized, E::HoldPlaced, S::Authorized),
        (S::Incomplete, E::AuthorizationFailed, S::Failed),
        (S::Failed, E::AuthorizationFailed, S::Failed),
        (S::CardSaved, E::AuthorizationFailed, S::Failed),
        (S::Incomplete, E::CardSaved, S::CardSaved),
        (S::Failed, E::CardSaved, S::CardSaved),
        (S::CardSaved, E::CardSaved, S::CardSaved),
        (S::Authorized, E::CardSaved, S::Authorized),
        (S::Authorized, E::RenewalFailed, S::Authorized),
        (S::Incomplete, E::AttemptEnded, S::Incomplete),
        (S::Failed, E::AttemptEnded, S::Failed),
        (S::CardSaved, E::AttemptEnded, S::CardSaved),
        (S::Expired, E::Reopened, S::Incomplete),
        (S::Authorized, E::Captured, S::Captured),
        (S::Captured, E::Captured, S::Captured),
        (S::Expired, E::Captured, S::Captured),
        (S::Incomplete, E::Released, S::Released),
        (S::Failed, E::Released, S::Released),
        (S::CardSaved, E::Released, S::Released),
        (S::Authorized, E::Released, S::Released),
        (S::Released, E::Released, S::Released),
        (S::Authorized, E::Expired, S::Expired),
        (S::Expired, E::Expired, S::Expired),
        (S::Captured, E::PartiallyRefunded, S::PartiallyRefunded),
        (
            S::PartiallyRefunded,
            E::PartiallyRefunded,
            S::PartiallyRefunded,
        ),
        (S::Captured, E::Refunded, S::Refunded),
        (S::PartiallyRefunded, E::Refunded, S::Refunded),
        (S::Refunded, E::Refunded, S::Refunded),
        (S::PartiallyRefunded, E::RefundFailed, S::PartiallyRefunded),
        (S::Refunded, E::RefundFailed, S::PartiallyRefunded),
        (S::PartiallyRefunded, E::AllRefundsFailed, S::Captured),
        (S::Refunded, E::AllRefundsFailed, S::Captured),
        (S::Captured, E::RefundUpdated, S::Captured),
        (S::PartiallyRefunded, E::RefundUpdated, S::PartiallyRefunded),
        (S::Refunded, E::RefundUpdated, S::Refunded),
        (S::Disputed, E::RefundUpdated, S::Disputed),
        (S::DisputeLost, E::RefundUpdated, S::DisputeLost),
        (S::Captured, E::FeeReported, S::Captured),
        (S::PartiallyRefunded, E::FeeReported, S::PartiallyRefunded),
        (S::Refunded, E::FeeReported, S::Refunded),
        (S::Disputed, E::FeeReported, S::Disputed),
        (S::DisputeLost, E::FeeReported, S::DisputeLost),
        (S::Captured, E::DisputeOpened, S::Disputed),
        (S::PartiallyRefunded, E::DisputeOpened, S::Disputed),
        (S::Disputed, E::DisputeOpened, S::Disputed),
        (S::Refunded, E::DisputeOpened, S::Disputed),
        (S::Refunded, E::DisputeWonAfterFullRefund, S::Refunded),
        (S::Disputed, E::DisputeWonAfterFullRefund, S::Refunded),
        (S::Refunded, E::DisputeLost, S::DisputeLost),
        (S::Captured, E::DisputeWon, S::Captured),
        (S::Disputed, E::DisputeWon, S::Captured),
        (
            S::PartiallyRefunded,
            E::DisputeWonAfterRefund,
            S::PartiallyRefunded,
        ),
        (S::Disputed, E::DisputeWonAfterRefund, S::PartiallyRefunded),
        (S::Captured, E::DisputeLost, S::DisputeLost),
        (S::PartiallyRefunded, E::DisputeLost, S::DisputeLost),
        (S::Disputed, E::DisputeLost, S::DisputeLost),
        (S::DisputeLost, E::DisputeLost, S::DisputeLost),
    ];
    for from in PaymentStatus::ALL {
        for event in E::ALL {
            let expected = legal
                .iter()
                .find(|(f, e, _)| *f == from && *e == event)
                .map(|(_, _, to)| *to)
                .ok_or(IllegalTransition { from, event });
            assert_eq!(from.next(event), expected, "{from} + {event:?}");
        }
    }
}

#[test]
fn terminal_states_accept_nothing_but_repeats_and_fees() {
    for from in PaymentStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
        for event in [
            EventKind::HoldPlaced,
            EventKind::AuthorizationFailed,
            EventKind::Captured,
        ] {
            assert!(from.next(event).is_err(), "{from} + {event:?}");
        }
    }
}

#[test]
fn a_hold_gets_a_seven_day_deadline_unless_the_gateway_gives_one() {
    let p = authorized(2500);
    assert_eq!(p.status(), PaymentStatus::Authorized);
    assert_eq!(p.capture_before(), Some(t0() + Duration::days(7)));
    assert_eq!(p.held(), eur(2500));

    let stripe_deadline = t0() + Duration::days(6) + Duration::hours(20);
    let p = changed(
        new_payment(2500)
            .apply(
                &PaymentEvent::HoldPlaced {
                    amount: eur(2500),
                    capture_before: Some(stripe_deadline),
                },
                t0(),
            )
            .unwrap(),
    );
    assert_eq!(p.capture_before(), Some(stripe_deadline));
}

#[test]
fn a_replayed_hold_with_a_nanosecond_deadline_changes_nothing() {
    let deadline = t0() + Duration::days(6) + Duration::nanoseconds(123_456_789);
    let hold = PaymentEvent::HoldPlaced {
        amount: eur(2500),
        capture_before: Some(deadline),
    };
    let p = changed(new_payment(2500).apply(&hold, t0()).unwrap());
    assert_eq!(
        p.capture_before()
            .map(|d| d.timestamp_subsec_nanos() % 1000),
        Some(0)
    );
    assert_eq!(p.apply_from_gateway(&hold, t0()), Ok(Applied::Unchanged));
}

#[test]
fn holds_near_their_deadline_are_expiring_and_then_lapsed() {
    let p = authorized(2500);
    let window = Duration::hours(48);
    assert!(!p.is_expiring(t0() + Duration::days(4), window));
    assert!(p.is_expiring(t0() + Duration::days(5) + Duration::hours(1), window));
    assert!(!p.is_lapsed(t0() + Duration::days(6)));
    assert!(p.is_lapsed(t0() + Duration::days(7)));
    // Once captured nothing is expiring any more.
    let c = captured(2500, 1800);
    assert!(!c.is_expiring(t0() + Duration::days(6), window));
}

#[test]
fn validating_above_the_hold_is_refused() {
    let p = authorized(2500);
    assert_eq!(
        p.check_capture(&eur(3000)),
        Err(TransitionError::AboveHold {
            requested: eur(3000),
            held: eur(2500)
        })
    );
    assert_eq!(
        p.check_capture(&eur(0)),
        Err(TransitionError::AmountNotPositive)
    );
    assert!(matches!(
        p.check_capture(&Money::from_minor(100, Currency::Usd)),
        Err(TransitionError::Money(MoneyError::CurrencyMismatch { .. }))
    ));
}

#[test]
fn validating_before_the_hold_is_refused() {
    let p = new_payment(2500);
    assert_eq!(
        p.check_capture(&eur(1000)),
        Err(TransitionError::Illegal(IllegalTransition {
            from: PaymentStatus::Incomplete,
            event: EventKind::Captured
        }))
    );
}

#[test]
fn a_partial_capture_records_the_released_remainder_and_the_fee_estimate() {
    let p = captured(2500, 1800);
    assert_eq!(p.status(), PaymentStatus::Captured);
    assert_eq!(p.captured(), Some(eur(1800)));
    assert_eq!(p.released_remainder(), Ok(Some(eur(700))));
    assert_eq!(p.fee(), Some(Fee::estimated(eur(50))));
    assert_eq!(p.net(), Ok(eur(1750)));
    assert_eq!(p.held(), eur(0));
}

#[test]
fn validating_the_same_amount_again_changes_nothing() {
    let p = captured(2500, 1800);
    assert_eq!(p.check_capture(&eur(1800)), Ok(false));
    assert_eq!(
        p.apply(
            &PaymentEvent::Captured {
                amount: eur(1800),
                fee: None
            },
            t0()
        ),
        Ok(Applied::Unchanged)
    );
    assert_eq!(
        p.check_capture(&eur(2000)),
        Err(TransitionError::AlreadyCapturedOtherAmount {
            captured: eur(1800),
            requested: eur(2000)
        })
    );
    assert!(
        matches!(
            p.check_capture(&eur(3000)),
            Err(TransitionError::AboveHold { .. })
        ),
        "above the hold is refused as such even after a capture"
    );
}

#[test]
fn refunds_are_bounded_by_what_was_captured() {
    let p = captured(2500, 1800);
    assert!(matches!(
        p.check_refund(&eur(1801)),
        Err(TransitionError::AboveRefundable { .. })
    ));
    let partial = changed(
        p.apply(&PaymentEvent::Refunded { total: eur(500) }, t0())
            .unwrap(),
    );
    assert_eq!(partial.status(), PaymentStatus::PartiallyRefunded);
    assert_eq!(partial.refundable(), Ok(eur(1300)));
    assert_eq!(partial.refund_count(), 1);
    assert!(partial.check_refund(&eur(1301)).is_err());
    let full = changed(
        partial
            .apply(&PaymentEvent::Refunded { total: eur(1800) }, t0())
            .unwrap(),
    );
    assert_eq!(full.status(), PaymentStatus::Refunded);
    // Stripe keeps its fee: the net of a refunded payment is minus the fee.
    assert_eq!(full.net(), Ok(eur(-50)));
    assert!(full.check_refund(&eur(1)).is_err());
}

#[test]
fn refunding_an_uncaptured_payment_is_refused() {
    assert!(matches!(
        authorized(2500).check_refund(&eur(100)),
        Err(TransitionError::Illegal(_))
    ));
}

#[test]
fn a_reported_fee_replaces_the_estimate() {
    let p = captured(2500, 2500);
    assert_eq!(p.fee().map(|f| f.source), Some(FeeSource::Estimated));
    let p = changed(
        p.apply(&PaymentEvent::FeeReported { fee: eur(61) }, t0())
            .unwrap(),
    );
    assert_eq!(p.fee(), Some(Fee::reported(eur(61))));
    assert_eq!(p.net(), Ok(eur(2439)));
}

#[test]
fn late_gateway_facts_never_move_a_payment_backwards() {
    let p = captured(2500, 1800);
    let late_hold = PaymentEvent::HoldPlaced {
        amount: eur(2500),
        capture_before: None,
    };
    assert!(matches!(
        p.apply_from_gateway(&late_hold, t0()),
        Ok(Applied::Stale(_))
    ));
    assert!(matches!(
        p.apply_from_gateway(&PaymentEvent::AuthorizationFailed(declined()), t0()),
        Ok(Applied::Stale(_))
    ));
    // The same facts from a user command are errors.
    assert!(matches!(
        p.apply(&PaymentEvent::AuthorizationFailed(declined()), t0()),
        Err(TransitionError::Illegal(_))
    ));
    // A smaller refund total delivered after a larger one changes nothing.
    let refunded = changed(
        p.apply(&PaymentEvent::Refunded { total: eur(900) }, t0())
            .unwrap(),
    );
    assert_eq!(
        refunded.apply_from_gateway(&PaymentEvent::Refunded { total: eur(500) }, t0()),
        Ok(Applied::Unchanged)
    );
    // And only a patient reopens a lapsed payment.
    let lapsed = changed(
        authorized(2500)
            .apply(&PaymentEvent::Expired, t0())
            .unwrap(),
    );
    assert!(matches!(
        lapsed.apply_from_gateway(&PaymentEvent::Reopened, t0()),
        Ok(Applied::Stale(_))
    ));
}

#[test]
fn a_declined_card_can_be_retried_with_another() {
    let p = changed(
        new_payment(2500)
            .apply(&PaymentEvent::AuthorizationFailed(declined()), t0())
            .unwrap(),
    );
    assert_eq!(p.status(), PaymentStatus::Failed);
    assert_eq!(p.failure(), Some(&declined()));
    let p = changed(
        p.apply(
            &PaymentEvent::HoldPlaced {
                amount: eur(2500),
                capture_before: None,
            },
            t0(),
        )
        .unwrap(),
    );
    assert_eq!(p.status(), PaymentStatus::Authorized);
    assert_eq!(p.failure(), None);
}

#[test]
fn a_hold_above_the_cap_is_refused() {
    assert!(matches!(
        new_payment(2500).apply(
            &PaymentEvent::HoldPlaced {
                amount: eur(2600),
                capture_before: None
            },
            t0()
        ),
        Err(TransitionError::AboveHold { .. })
    ));
}

#[test]
fn only_one_stripe_operation_is_pending_at_a_time() {
    let p = authorized(2500);
    let key = IdempotencyKey::capture(p.id(), &pi(), &eur(1800)).unwrap();
    let op = Operation::Capture { amount: eur(1800) };
    let pending = p.begin(op, key.clone(), t0()).unwrap().unwrap();
    assert_eq!(pending.version(), p.version() + 1);
    assert_eq!(
        pending.begin(op, key, t0()),
        Ok(None),
        "a retry writes nothing"
    );
    assert_eq!(
        pending.begin(
            Operation::Release,
            IdempotencyKey::release(p.id(), None),
            t0()
        ),
        Err(TransitionError::OperationInProgress("capture"))
    );
    assert_eq!(pending.finish(t0()).pending(), None);
}

#[test]
fn a_recorded_capture_settles_the_pending_capture_of_that_amount() {
    let p = authorized(2500);
    let key = IdempotencyKey::capture(p.id(), &pi(), &eur(1800)).unwrap();
    let pending = p
        .begin(Operation::Capture { amount: eur(1800) }, key, t0())
        .unwrap()
        .unwrap();
    assert!(!pending.pending_settled());
    let done = changed(
        pending
            .apply(
                &PaymentEvent::Captured {
                    amount: eur(1800),
                    fee: None,
                },
                t0(),
            )
            .unwrap(),
    );
    assert!(done.pending_settled());
    let other = p
        .begin(
            Operation::Refund { amount: eur(100) },
            IdempotencyKey::refund(p.id(), "0"),
            t0(),
        )
        .unwrap()
        .unwrap();
    assert!(
        !other.pending_settled(),
        "refunds are never settled by inference"
    );
}

#[test]
fn every_change_increments_the_version() {
    let p = new_payment(2500);
    let a = authorized(2500);
    assert_eq!(a.version(), p.version() + 1);
    let c = captured(2500, 2500);
    assert_eq!(c.version(), a.version() + 1);
}

#[test]
fn idempotency_keys_are_derived_from_payment_and_operation() {
    let id = PaymentId::from_uuid(Uuid::from_u128(1));
    let first = PaymentIntentId::parse("pi_1").unwrap();
    let renewed = PaymentIntentId::parse("pi_2").unwrap();
    assert_eq!(
        IdempotencyKey::capture(id, &first, &eur(1800))
            .unwrap()
            .as_str(),
        "consultpay:00000000-0000-0000-0000-000000000001:capture:pi_1:1800"
    );
    // The same capture of another hold of the same payment is another request.
    assert_ne!(
        IdempotencyKey::capture(id, &first, &eur(1800)),
        IdempotencyKey::capture(id, &renewed, &eur(1800))
    );
    assert_eq!(
        IdempotencyKey::release(id, Some(&first)),
        IdempotencyKey::release(id, Some(&first))
    );
    assert_ne!(
        IdempotencyKey::release(id, Some(&first)),
        IdempotencyKey::release(id, Some(&renewed))
    );
    assert_ne!(
        IdempotencyKey::refund(id, "0"),
        IdempotencyKey::refund(id, "1")
    );
}

#[test]
fn restoring_corrupt_data_is_refused() {
    let mut parts = captured(2500, 1800).to_parts();
    assert!(Payment::restore(parts.clone()).is_ok());
    parts.refunded = eur(1900);
    assert!(Payment::restore(parts.clone()).is_err());
    parts.refunded = eur(0);
    parts.captured = Some(eur(2600));
    assert!(Payment::restore(parts.clone()).is_err());
    parts.captured = None;
    assert!(
        Payment::restore(parts).is_err(),
        "captured status needs an amount"
    );
}

// --- properties ---------------------------------------------------------------

#[derive(Clone, Debug)]
enum Step {
    Gateway(PaymentEvent),
    Command(PaymentEvent),
}

fn any_event() -> impl Strategy<Value = PaymentEvent> {
    prop_oneof![
        (0i64..3000).prop_map(|a| PaymentEvent::HoldPlaced {
            amount: eur(a),
            capture_before: None
        }),
        Just(PaymentEvent::AuthorizationFailed(declined())),
        (0i64..3000).prop_map(|a| PaymentEvent::Captured {
            amount: eur(a),
            fee: None
        }),
        Just(PaymentEvent::Released),
        Just(PaymentEvent::Expired),
        (0i64..3000).prop_map(|a| PaymentEvent::Refunded { total: eur(a) }),
        (0i64..200).prop_map(|a| PaymentEvent::FeeReported { fee: eur(a) }),
        Just(PaymentEvent::CardSaved(saved_card())),
        Just(PaymentEvent::RenewalFailed(declined())),
        Just(PaymentEvent::Reopened),
        Just(PaymentEvent::AttemptEnded),
        any_refund().prop_map(PaymentEvent::RefundIssued),
        proptest::collection::vec(any_refund(), 0..4).prop_map(PaymentEvent::RefundsReported),
        any_dispute().prop_map(PaymentEvent::Disputed),
    ]
}

fn saved_card() -> SavedCard {
    SavedCard {
        customer: CustomerId::parse("cus_1").unwrap(),
        payment_method: PaymentMethodId::parse("pm_1").unwrap(),
    }
}

fn any_refund() -> impl Strategy<Value = RefundLine> {
    (
        1u8..4,
        0i64..1500,
        proptest::sample::select(RefundState::ALL.to_vec()),
    )
        .prop_map(|(n, a, status)| RefundLine {
            id: crate::ids::RefundId::parse(&format!("re_{n}")).unwrap(),
            amount: eur(a),
            status,
        })
}

fn any_dispute() -> impl Strategy<Value = Dispute> {
    (
        1u8..3,
        proptest::sample::select(DisputeStatus::ALL.to_vec()),
        0u32..3,
    )
        .prop_map(|(n, status, transactions)| Dispute {
            id: crate::ids::DisputeId::parse(&format!("dp_{n}")).unwrap(),
            amount: eur(1800),
            reason: "fraudulent".into(),
            status,
            evidence_due_by: None,
            withdrawn: eur(if transactions > 0 { 1800 } else { 0 }),
            fee: eur(if transactions > 0 { 1500 } else { 0 }),
            transactions,
        })
}

fn any_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        any_event().prop_map(Step::Gateway),
        any_event().prop_map(Step::Command),
    ]
}

/// The phase of a payment's life a status belongs to; gateway facts never lower it
/// (within the captured phase, refunds that fail and disputes that are won move a
/// payment back and forth on purpose).
fn rank(s: PaymentStatus) -> u8 {
    match s {
        PaymentStatus::Incomplete | PaymentStatus::Failed | PaymentStatus::CardSaved => 0,
        PaymentStatus::Authorized => 1,
        PaymentStatus::Captured
        | PaymentStatus::PartiallyRefunded
        | PaymentStatus::Refunded
        | PaymentStatus::Disputed
        | PaymentStatus::DisputeLost
        | PaymentStatus::Released
        | PaymentStatus::Expired => 2,
    }
}

fn check_invariants(p: &Payment) -> Result<(), TestCaseError> {
    let le = |a: Money, b: Money| a.amount() <= b.amount();
    if let Some(c) = p.captured() {
        let a = p.authorized().expect("a capture implies an authorisation");
        prop_assert!(le(c, a), "captured {c} > authorised {a}");
        prop_assert!(c.is_positive());
    }
    prop_assert!(le(p.refunded(), p.captured().unwrap_or(eur(0))));
    prop_assert!(!p.refunded().is_negative());
    if let Some(a) = p.authorized() {
        prop_assert!(le(a, p.amount()), "authorised above the cap");
    }
    prop_assert_eq!(p.status().is_captured(), p.captured().is_some());
    let live = refunds::live_total(p.refunds(), eur(0)).unwrap();
    prop_assert!(
        le(live, p.refunded()),
        "live refunds {live} > refunded {}",
        p.refunded()
    );
    prop_assert_eq!(
        p.status() == PaymentStatus::CardSaved,
        p.status() == PaymentStatus::CardSaved && p.saved_card().is_some()
    );
    prop_assert!(Payment::restore(p.to_parts()).is_ok());
    Ok(())
}

proptest! {
    #[test]
    fn no_sequence_of_events_breaks_the_invariants(steps in proptest::collection::vec(any_step(), 0..25)) {
        let mut p = new_payment(2500);
        for step in steps {
            let before = p.clone();
            let result = match &step {
                Step::Gateway(e) => p.apply_from_gateway(e, t0()),
                Step::Command(e) => p.apply(e, t0()),
            };
            match result {
                Ok(Applied::Changed { payment, kind, from, to }) => {
                    prop_assert_eq!(from, before.status());
                    prop_assert_eq!(to, payment.status());
                    prop_assert_eq!(payment.version(), before.version() + 1);
                    prop_assert_eq!(from.next(kind), Ok(to));
                    if matches!(step, Step::Gateway(_)) {
                        prop_assert!(rank(to) >= rank(from), "{} -> {}", from, to);
                    }
                    if from.is_terminal() {
                        prop_assert_eq!(from, to);
                    }
                    p = *payment;
                }
                Ok(Applied::Unchanged) | Ok(Applied::Stale(_)) | Err(_) => {
                    prop_assert_eq!(&p, &before);
                }
            }
            check_invariants(&p)?;
        }
    }

    #[test]
    fn replaying_a_gateway_event_is_harmless(events in proptest::collection::vec(any_event(), 1..15)) {
        let mut p = new_payment(2500);
        for e in &events {
            if let Ok(Applied::Changed { payment, .. }) = p.apply_from_gateway(e, t0()) {
                p = *payment;
            }
            // The same event delivered again changes nothing.
            let again = p.apply_from_gateway(e, t0());
            prop_assert!(
                matches!(again, Ok(Applied::Unchanged) | Ok(Applied::Stale(_)) | Err(_)),
                "{:?} applied twice changed the payment: {:?}", e, again
            );
        }
    }
}

#[test]
fn a_renewed_hold_counts_its_own_seven_days_when_the_gateway_gives_no_deadline() {
    let first = authorized(2500)
        .with_intent(pi(), t0())
        .expect("the first hold's intent");
    let later = t0() + Duration::days(6) + Duration::hours(12);
    let renewed = first
        .with_intent(PaymentIntentId::parse("pi_2").unwrap(), later)
        .expect("a new intent");
    assert_eq!(renewed.authorized_at(), None, "its authorisation is new");
    // Same amount, no deadline from the gateway: still a new hold, not a repeat.
    let held = changed(
        renewed
            .apply_from_gateway(
                &PaymentEvent::HoldPlaced {
                    amount: eur(2500),
                    capture_before: None,
                },
                later,
            )
            .unwrap(),
    );
    assert_eq!(held.status(), PaymentStatus::Authorized);
    assert_eq!(held.authorized_at(), Some(later));
    assert_eq!(held.capture_before(), Some(later + Duration::days(7)));
    // Told again, it is a repeat.
    assert_eq!(
        held.apply_from_gateway(
            &PaymentEvent::HoldPlaced {
                amount: eur(2500),
                capture_before: None,
            },
            later,
        ),
        Ok(Applied::Unchanged)
    );
}

fn disputed(status: DisputeStatus) -> PaymentEvent {
    PaymentEvent::Disputed(Dispute {
        id: crate::ids::DisputeId::parse("dp_1").unwrap(),
        amount: eur(1800),
        reason: "fraudulent".into(),
        status,
        evidence_due_by: None,
        withdrawn: eur(if status == DisputeStatus::WarningClosed {
            0
        } else {
            1800
        }),
        fee: eur(if status.is_open() || status == DisputeStatus::Lost {
            1500
        } else {
            0
        }),
        transactions: 1,
    })
}

#[test]
fn a_refunded_charge_can_still_be_disputed_and_an_inquiry_closes_it_as_refunded() {
    let refunded = changed(
        captured(2500, 1800)
            .apply(&PaymentEvent::Refunded { total: eur(1800) }, t0())
            .unwrap(),
    );
    assert_eq!(refunded.status(), PaymentStatus::Refunded);
    let open = changed(
        refunded
            .apply_from_gateway(&disputed(DisputeStatus::NeedsResponse), t0())
            .unwrap(),
    );
    assert_eq!(open.status(), PaymentStatus::Disputed);
    // What it took is in the net, beside the refund.
    assert_eq!(open.net().unwrap(), eur(1800 - 1800 - 50 - 1800 - 1500));
    let lost = changed(
        open.apply_from_gateway(&disputed(DisputeStatus::Lost), t0())
            .unwrap(),
    );
    assert_eq!(lost.status(), PaymentStatus::DisputeLost);

    // An inquiry on a fully refunded charge closes back to "refunded", not
    // "partially refunded" (and the gate stays shut).
    let inquiry = changed(
        refunded
            .apply_from_gateway(&disputed(DisputeStatus::WarningNeedsResponse), t0())
            .unwrap(),
    );
    let closed = changed(
        inquiry
            .apply_from_gateway(&disputed(DisputeStatus::WarningClosed), t0())
            .unwrap(),
    );
    assert_eq!(closed.status(), PaymentStatus::Refunded);
}
