//! The hold jobs (C14) against mocks: first holds placed off-session with the saved
//! card, refusals, renewals, and several workers on one database.

use chrono::Duration;
use mockall::Sequence;

use super::*;
use crate::gateway::{IntentSnapshot, IntentStatus};
use crate::ids::PaymentIntentId;
use crate::payment::model::{CheckoutRef, Failure};
use crate::test_support::*;

fn amount() -> crate::money::Money {
    eur(2500)
}

/// The card saved (Checkout in setup mode), nothing held yet.
fn card_saved() -> Payment {
    let started = scheduled_payment()
        .checkout_started(
            account(),
            None,
            Some(CheckoutRef {
                setup: None,
                session: Some(crate::ids::CheckoutSessionId::parse("cs_test_setup").unwrap()),
                url: Some("https://checkout.stripe.com/c/pay/cs_test_setup".into()),
                expires_at: Some(now() + Duration::hours(24)),
            }),
            now() - Duration::days(5),
        )
        .unwrap();
    step(&started, PaymentEvent::CardSaved(saved_card()))
}

/// Held with the saved card, `left` before the deadline.
fn held_with_card(left: Duration) -> Payment {
    step(
        &step(&incomplete(), PaymentEvent::CardSaved(saved_card())),
        PaymentEvent::HoldPlaced {
            amount: amount(),
            capture_before: Some(now() + left),
        },
    )
}

fn row_starting(payment: Payment, starts: Duration) -> PaymentRow {
    PaymentRow {
        starts_at: now() + starts,
        ..row(payment)
    }
}

fn renewed() -> PaymentIntentId {
    PaymentIntentId::parse("pi_4Renewed").unwrap()
}

fn authentication_required() -> Failure {
    Failure {
        code: Some("authentication_required".into()),
        decline_code: Some("authentication_required".into()),
        message: "This payment requires authentication.".into(),
    }
}

/// What the two reads of a pass find: holds to place, holds to renew.
fn due(m: &mut Mocks, to_place: Vec<PaymentRow>, to_renew: Vec<PaymentRow>) {
    m.payments
        .expect_holds_to_place()
        .withf(|before, limit| *before == now() + Duration::days(6) && *limit == 200)
        .times(1)
        .returning(move |_, _| Ok(to_place.clone()));
    m.payments
        .expect_holds_due()
        .withf(|scope, before| {
            *scope == PaymentScope::All && *before == now() + Duration::hours(12)
        })
        .times(1)
        .returning(move |_, _| Ok(to_renew.clone()));
}

fn consultation_and_practitioner(m: &mut Mocks, payment: &Payment) {
    m.consultation_is(&record(Some(payment.clone())));
    m.practitioner_is(&practitioner());
}

/// The claim: the payment as read, with the hold recorded as pending under `key`.
fn claims(m: &mut Mocks, read: &Payment, key: IdempotencyKey, seq: &mut Sequence) -> Payment {
    let claimed = pending(read, Operation::Hold { amount: amount() }, key.clone());
    let version = read.version();
    m.payments
        .expect_update()
        .withf(move |p, v, log| {
            *v == version
                && p.pending().map(|o| &o.key) == Some(&key)
                && log.history[0].event == "hold_requested"
        })
        .times(1)
        .in_sequence(seq)
        .returning(|_, _, _| Ok(()));
    claimed
}

#[tokio::test]
async fn a_saved_card_is_held_off_session_when_the_consultation_comes_within_the_lead() {
    let mut m = Mocks::new();
    let saved = card_saved();
    due(
        &mut m,
        vec![row_starting(saved.clone(), Duration::days(5))],
        vec![],
    );
    let key = IdempotencyKey::hold(PAYMENT, &saved_card().payment_method);
    let mut seq = Sequence::new();
    let claimed = claims(&mut m, &saved, key.clone(), &mut seq);
    m.payment_reads(&[saved.clone(), claimed.clone()]);
    consultation_and_practitioner(&mut m, &saved);
    m.gateway
        .expect_create_hold()
        .withf(move |req| {
            req.off_session == Some(saved_card())
                && req.key == key
                && req.amount == amount()
                && req.account == account()
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(hold_snapshot()));
    m.payments
        .expect_update()
        .withf(|p, _, _| {
            is(p, PaymentStatus::Authorized)
                && p.intent() == Some(&intent())
                && p.pending().is_none()
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));

    let report = m.build().reconcile.holds.run_due().await.unwrap();

    assert_eq!(report.placed, vec![PAYMENT]);
    assert_eq!(
        report.changed.first().map(|c| (c.from, c.to)),
        Some((PaymentStatus::CardSaved, PaymentStatus::Authorized))
    );
}

#[tokio::test]
async fn a_saved_card_refused_off_session_fails_the_payment_so_the_patient_authorises_again() {
    for refusal in [authentication_required(), declined()] {
        let mut m = Mocks::new();
        let saved = card_saved();
        due(
            &mut m,
            vec![row_starting(saved.clone(), Duration::days(5))],
            vec![],
        );
        let mut seq = Sequence::new();
        let key = IdempotencyKey::hold(PAYMENT, &saved_card().payment_method);
        let claimed = claims(&mut m, &saved, key, &mut seq);
        m.payment_reads(&[saved.clone(), claimed.clone()]);
        consultation_and_practitioner(&mut m, &saved);
        let answer = refusal.clone();
        m.gateway
            .expect_create_hold()
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_| Err(GatewayError::Declined(answer.clone())));
        let expected = refusal.clone();
        m.payments
            .expect_update()
            .withf(move |p, _, _| {
                is(p, PaymentStatus::Failed)
                    && p.failure() == Some(&expected)
                    && p.pending().is_none()
            })
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_, _, _| Ok(()));

        let report = m.build().reconcile.holds.run_due().await.unwrap();

        assert_eq!(report.refused, vec![PAYMENT], "{refusal:?}");
        assert!(report.placed.is_empty());
    }
}

#[tokio::test]
async fn a_hold_another_server_is_placing_is_left_to_it() {
    let mut m = Mocks::new();
    let saved = card_saved();
    due(
        &mut m,
        vec![row_starting(saved.clone(), Duration::days(5))],
        vec![],
    );
    // The other server's claim is already written.
    let theirs = pending(
        &saved,
        Operation::Hold { amount: amount() },
        IdempotencyKey::hold(PAYMENT, &saved_card().payment_method),
    );
    m.payment_is(&theirs);
    m.payments.expect_update().never();
    m.gateway.expect_create_hold().never();

    let report = m.build().reconcile.holds.run_due().await.unwrap();

    assert_eq!(report, HoldReport::default());
}

#[tokio::test]
async fn a_card_saved_on_an_account_no_longer_linked_is_not_charged() {
    let mut m = Mocks::new();
    let saved = card_saved();
    due(
        &mut m,
        vec![row_starting(saved.clone(), Duration::days(5))],
        vec![],
    );
    let mut seq = Sequence::new();
    let key = IdempotencyKey::hold(PAYMENT, &saved_card().payment_method);
    let claimed = claims(&mut m, &saved, key, &mut seq);
    m.payment_reads(&[saved.clone(), claimed]);
    m.consultation_is(&record(Some(saved.clone())));
    m.practitioner_is(&practitioner_with(
        DR,
        crate::practitioner::model::StripeLink::linked(
            account_snapshot(other_account(), true),
            now(),
        ),
    ));
    m.gateway.expect_create_hold().never();
    m.payments
        .expect_update()
        .withf(|p, _, _| {
            is(p, PaymentStatus::Failed)
                && p.failure().and_then(|f| f.code.as_deref()) == Some("account_changed")
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));

    let report = m.build().reconcile.holds.run_due().await.unwrap();
    assert_eq!(report.refused, vec![PAYMENT]);
}

#[tokio::test]
async fn a_hold_near_its_deadline_is_renewed_then_the_old_one_cancelled() {
    let mut m = Mocks::new();
    let held = held_with_card(Duration::hours(6));
    // The consultation took place yesterday; the act is not validated yet.
    due(
        &mut m,
        vec![],
        vec![row_starting(held.clone(), -Duration::days(1))],
    );
    let key = IdempotencyKey::renewal(PAYMENT, &intent());
    let mut seq = Sequence::new();
    let claimed = claims(&mut m, &held, key.clone(), &mut seq);
    m.payment_reads(&[held.clone(), claimed]);
    consultation_and_practitioner(&mut m, &held);
    let new_deadline = now() + Duration::days(7);
    m.gateway
        .expect_create_hold()
        .withf(move |req| req.key == key && req.off_session == Some(saved_card()))
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_| {
            Ok(IntentSnapshot {
                id: renewed(),
                capture_before: Some(new_deadline),
                ..hold_snapshot()
            })
        });
    m.payments
        .expect_update()
        .withf(move |p, _, _| {
            is(p, PaymentStatus::Authorized)
                && p.intent() == Some(&renewed())
                && p.capture_before() == Some(new_deadline)
                && p.authorized_at() == Some(now())
                && p.pending().is_none()
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));
    m.gateway
        .expect_release()
        .withf(|a, i, key| {
            *a == account()
                && *i == intent()
                && *key == IdempotencyKey::release_superseded(PAYMENT, &intent())
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| {
            Ok(IntentSnapshot {
                status: IntentStatus::Canceled,
                ..hold_snapshot()
            })
        });

    let report = m.build().reconcile.holds.run_due().await.unwrap();

    assert_eq!(report.renewed, vec![PAYMENT]);
}

#[tokio::test]
async fn a_refused_renewal_keeps_the_current_hold_and_says_so() {
    let mut m = Mocks::new();
    let held = held_with_card(Duration::hours(6));
    due(
        &mut m,
        vec![],
        vec![row_starting(held.clone(), -Duration::days(1))],
    );
    let mut seq = Sequence::new();
    let claimed = claims(
        &mut m,
        &held,
        IdempotencyKey::renewal(PAYMENT, &intent()),
        &mut seq,
    );
    m.payment_reads(&[held.clone(), claimed]);
    consultation_and_practitioner(&mut m, &held);
    m.gateway
        .expect_create_hold()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Err(GatewayError::Declined(authentication_required())));
    m.payments
        .expect_update()
        .withf(|p, _, log| {
            is(p, PaymentStatus::Authorized)
                && p.intent() == Some(&intent())
                && p.failure() == Some(&authentication_required())
                && log.history[0].event == "renewal_failed"
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));
    m.gateway.expect_release().never();

    let report = m.build().reconcile.holds.run_due().await.unwrap();
    assert_eq!(report.refused, vec![PAYMENT]);
}

#[tokio::test]
async fn holds_without_a_saved_card_or_of_long_past_consultations_are_left_to_lapse() {
    let mut m = Mocks::new();
    due(
        &mut m,
        vec![],
        vec![
            // Paid within the lead without a card saved for later (an older payment).
            row_starting(
                step(
                    &incomplete(),
                    PaymentEvent::HoldPlaced {
                        amount: amount(),
                        capture_before: Some(now() + Duration::hours(6)),
                    },
                ),
                -Duration::days(1),
            ),
            // The consultation was more than a week ago.
            row_starting(held_with_card(Duration::hours(6)), -Duration::days(8)),
            // Its renewal was refused already: the hold stays until its deadline.
            row_starting(
                step(
                    &held_with_card(Duration::hours(6)),
                    PaymentEvent::RenewalFailed(authentication_required()),
                ),
                -Duration::days(1),
            ),
        ],
    );
    m.payments.expect_get().never();
    m.gateway.expect_create_hold().never();

    let report = m.build().reconcile.holds.run_due().await.unwrap();
    assert_eq!(report, HoldReport::default());
}

#[tokio::test]
async fn a_saved_card_stripe_refuses_to_hold_fails_the_payment_and_says_why() {
    // The card was detached from the customer meanwhile: Stripe refuses the request
    // itself. The patient is asked to authorise again (the payment leaves the queue
    // of holds to place), and a person is told.
    let mut m = Mocks::new();
    let saved = card_saved();
    due(
        &mut m,
        vec![row_starting(saved.clone(), Duration::days(5))],
        vec![],
    );
    let mut seq = Sequence::new();
    let claimed = claims(
        &mut m,
        &saved,
        IdempotencyKey::hold(PAYMENT, &saved_card().payment_method),
        &mut seq,
    );
    let failed = step(
        &saved,
        PaymentEvent::AuthorizationFailed(Failure {
            code: Some("hold_refused".into()),
            decline_code: None,
            message: "x".into(),
        }),
    );
    m.payment_reads(&[saved.clone(), claimed, failed]);
    consultation_and_practitioner(&mut m, &saved);
    m.gateway
        .expect_create_hold()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| {
            Err(GatewayError::InvalidRequest {
                code: Some("resource_missing".into()),
                param: Some("payment_method".into()),
                message: "The PaymentMethod is not attached to this customer.".into(),
            })
        });
    m.payments
        .expect_update()
        .withf(|p, _, log| {
            is(p, PaymentStatus::Failed)
                && p.pending().is_none()
                && p.failure().and_then(|f| f.code.as_deref()) == Some("hold_refused")
                && log.history[0].event == "authorization_failed"
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));
    m.payments
        .expect_update()
        .withf(|p, _, log| {
            p.attention()
                .is_some_and(|a| a.message.contains("not attached"))
                && log.history[0].event == "needs_attention"
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));

    let report = m.build().reconcile.holds.run_due().await.unwrap();
    assert_eq!(report.refused, vec![PAYMENT]);
}

#[tokio::test]
async fn a_renewal_left_pending_is_resumed_under_its_key_never_just_cleared() {
    // The renewal's request timed out after Stripe made the new hold. Reconciliation
    // sends it again under the same key: Stripe answers the same hold, which is
    // adopted, and the old one cancelled — the card never keeps two.
    let mut m = Mocks::new();
    let held = held_with_card(Duration::hours(6));
    let key = IdempotencyKey::renewal(PAYMENT, &intent());
    let stuck = pending(&held, Operation::Hold { amount: amount() }, key.clone());
    m.payment_is(&stuck);
    consultation_and_practitioner(&mut m, &held);
    let mut seq = Sequence::new();
    let new_deadline = now() + Duration::days(7);
    m.gateway
        .expect_create_hold()
        .withf(move |req| req.key == key && req.off_session == Some(saved_card()))
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_| {
            Ok(IntentSnapshot {
                id: renewed(),
                capture_before: Some(new_deadline),
                ..hold_snapshot()
            })
        });
    m.payments
        .expect_update()
        .withf(|p, _, _| p.intent() == Some(&renewed()) && p.pending().is_none())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));
    m.gateway
        .expect_release()
        .withf(|_, i, key| {
            *i == intent() && *key == IdempotencyKey::release_superseded(PAYMENT, &intent())
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(canceled_snapshot("requested_by_customer")));

    let outcome = m.build().reconcile.holds.resume(&stuck).await.unwrap();
    assert!(matches!(outcome, Outcome::Placed(_)));
}
