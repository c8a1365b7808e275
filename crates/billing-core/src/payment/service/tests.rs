//! Use-case tests of the money-moving side: validate the act (C6), release, refund
//! (C11), webhooks (C9), reconciliation (C10) and the payments table (C8), against
//! mocks of the ports.

use chrono::{DateTime, Duration, Utc};
use mockall::Sequence;

use super::*;
use crate::audit::AuditAction;
use crate::gateway::{
    CheckoutState, CheckoutStatus, IntentSnapshot, MockSandboxControl, RefundOutcome, RefundStatus,
    SetupStatus, WebhookError,
};
use crate::ids::{CheckoutSessionId, ConnectedAccountId, RefundId};
use crate::money::Currency;
use crate::payment::model::{CheckoutRef, Dispute, DisputeStatus, Failure, RefundLine};
use crate::receipt::DocumentKind;
use crate::test_support::*;

fn amount(text: &str) -> AmountInput {
    AmountInput::parse(text, None).unwrap()
}

fn capture_key(minor: i64) -> IdempotencyKey {
    IdempotencyKey::capture(PAYMENT, &intent(), &eur(minor)).unwrap()
}

fn pending_release(p: &Payment) -> Payment {
    pending(
        p,
        Operation::Release,
        IdempotencyKey::release(PAYMENT, p.intent()),
    )
}

fn pending_refund(p: &Payment, minor: i64, discriminator: &str) -> Payment {
    pending(
        p,
        Operation::Refund { amount: eur(minor) },
        IdempotencyKey::refund(PAYMENT, discriminator),
    )
}

/// Stripe's cumulative refunded figure, when the intent is read after a refund.
fn charge_reports_refunded(m: &mut Mocks, total: i64) {
    m.gateway.expect_retrieve().times(1).returning(move |_, _| {
        Ok(IntentSnapshot {
            amount_refunded: eur(total),
            ..succeeded_snapshot(1800)
        })
    });
}

/// A release of `read` (its consultation's payment) gets as far as recording itself
/// pending; returns the payment as then stored.
fn release_begins(m: &mut Mocks, read: &Payment, seq: &mut Sequence) -> Payment {
    let in_flight = pending_release(read);
    m.consultation_is(&record(Some(read.clone())));
    m.payment_reads(&[read.clone(), in_flight.clone()]);
    records_pending(
        m,
        read,
        IdempotencyKey::release(PAYMENT, read.intent()),
        seq,
    );
    in_flight
}

/// The first write of an operation: the payment as read, with `operation` pending.
fn records_pending(m: &mut Mocks, read: &Payment, key: IdempotencyKey, seq: &mut Sequence) {
    let version = read.version();
    m.payments
        .expect_update()
        .withf(move |p, expected_version, log| {
            *expected_version == version
                && p.pending().map(|o| &o.key) == Some(&key)
                && log.history.len() == 1
                && log.history[0].event.ends_with("_requested")
        })
        .times(1)
        .in_sequence(seq)
        .returning(|_, _, _| Ok(()));
}

/// The write that settles the operation: `status`, nothing pending any more.
fn settles(m: &mut Mocks, read: &Payment, status: PaymentStatus, seq: &mut Sequence) {
    let version = read.version();
    m.payments
        .expect_update()
        .withf(move |p, expected_version, _| {
            *expected_version == version && is(p, status) && p.pending().is_none()
        })
        .times(1)
        .in_sequence(seq)
        .returning(|_, _, _| Ok(()));
}

// ---- C6: validate the act -------------------------------------------------------------

#[tokio::test]
async fn validating_records_the_capture_then_captures_with_the_derived_key() {
    let mut m = Mocks::new();
    m.documents_readable();
    let held = authorized();
    let in_flight = pending_capture(&held, 1800);
    m.consultation_is(&record(Some(held.clone())));
    m.payment_reads(&[held.clone(), in_flight.clone()]);
    let mut seq = Sequence::new();
    records_pending(&mut m, &held, capture_key(1800), &mut seq);
    m.gateway
        .expect_capture()
        .withf(|a, i, amount, key| {
            *a == account() && *i == intent() && *amount == eur(1800) && *key == capture_key(1800)
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _, _| Ok(succeeded_snapshot(1800)));
    let version = in_flight.version();
    m.payments
        .expect_update()
        .withf(move |p, expected_version, log| {
            *expected_version == version
                && is(p, PaymentStatus::Captured)
                && p.pending().is_none()
                && matches!(log.documents.as_slice(), [d]
                    if d.kind == DocumentKind::Receipt && d.amount == eur(1800) && d.patient == "M. Martin")
                && log.audit.iter().any(|e| {
                    e.action == AuditAction::Validated
                        && e.detail == "18.00 EUR"
                        && e.actor == AuditActor::User(crate::ids::UserId::from_uuid(DR.as_uuid()))
                })
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));

    let p = m
        .build()
        .payments
        .validate(&dr(), CONSULTATION, &amount("18,00"))
        .await
        .unwrap();

    assert_eq!(p.captured(), Some(eur(1800)));
    assert_eq!(p.released_remainder().unwrap(), Some(eur(700)));
    assert_eq!(
        p.fee().map(|f| f.amount),
        Some(eur(50)),
        "1.4 % + 0.25 of 18.00"
    );
    assert_eq!(p.net().unwrap(), eur(1750));
}

#[tokio::test]
async fn amounts_that_cannot_be_captured_are_refused_before_anything_moves() {
    let table = [
        ("above the hold", "25.01", "amount_above_cap"),
        ("a fraction of a cent", "18.001", "invalid_amount"),
    ];
    for (case, typed, expected) in table {
        let mut m = Mocks::new();
        m.consultation_is(&record(Some(authorized())));
        m.payments.expect_get().never();
        m.payments.expect_update().never();
        m.gateway.expect_capture().never();
        let result = m
            .build()
            .payments
            .validate(&dr(), CONSULTATION, &amount(typed))
            .await;
        assert_eq!(code(result), expected, "{case}");
    }
    let mut m = Mocks::new();
    m.consultation_is(&record(Some(authorized())));
    m.gateway.expect_capture().never();
    let in_dollars = AmountInput::parse("18", Some(Currency::Usd)).unwrap();
    let result = m
        .build()
        .payments
        .validate(&dr(), CONSULTATION, &in_dollars)
        .await;
    assert_eq!(code(result), "currency_mismatch");
}

#[tokio::test]
async fn validating_zero_releases_the_hold_and_captures_nothing() {
    let mut m = Mocks::new();
    let held = authorized();
    let mut seq = Sequence::new();
    let in_flight = release_begins(&mut m, &held, &mut seq);
    m.gateway
        .expect_release()
        .withf(|a, i, key| {
            *a == account()
                && *i == intent()
                && *key == IdempotencyKey::release(PAYMENT, Some(&intent()))
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(canceled_snapshot("requested_by_customer")));
    settles(&mut m, &in_flight, PaymentStatus::Released, &mut seq);
    m.gateway.expect_capture().never();

    let p = m
        .build()
        .payments
        .validate(&dr(), CONSULTATION, &amount("0"))
        .await
        .unwrap();

    assert_eq!(p.status(), PaymentStatus::Released);
    assert_eq!(p.captured(), None);
}

#[tokio::test]
async fn the_same_validation_sent_again_captures_once_and_answers_the_same() {
    let mut m = Mocks::new();
    let done = captured(1800);
    m.consultation_is(&record(Some(done.clone())));
    m.payment_is(&done);
    m.gateway.expect_capture().never();
    m.payments.expect_update().never();
    let billing = m.build();

    let again = billing
        .payments
        .validate(&dr(), CONSULTATION, &amount("18"))
        .await
        .unwrap();
    assert_eq!(again, done);

    let other_amount = billing
        .payments
        .validate(&dr(), CONSULTATION, &amount("20"))
        .await;
    assert_eq!(code(other_amount), "payment_state_conflict");
}

#[tokio::test]
async fn a_validation_retried_while_its_capture_is_in_flight_reuses_the_same_key() {
    let mut m = Mocks::new();
    m.documents_readable();
    // A first attempt timed out: the capture is recorded as pending.
    let in_flight = pending_capture(&authorized(), 1800);
    m.consultation_is(&record(Some(in_flight.clone())));
    m.payment_is(&in_flight);
    m.gateway
        .expect_capture()
        .withf(|_, _, _, key| *key == capture_key(1800))
        .times(1)
        .returning(|_, _, _, _| Ok(succeeded_snapshot(1800)));
    let mut seq = Sequence::new();
    settles(&mut m, &in_flight, PaymentStatus::Captured, &mut seq);

    let p = m
        .build()
        .payments
        .validate(&dr(), CONSULTATION, &amount("18"))
        .await
        .unwrap();

    assert_eq!(p.captured(), Some(eur(1800)));
}

#[tokio::test]
async fn another_amount_while_a_capture_is_in_flight_is_refused() {
    let mut m = Mocks::new();
    let in_flight = pending_capture(&authorized(), 1800);
    m.consultation_is(&record(Some(in_flight.clone())));
    m.payment_is(&in_flight);
    m.gateway.expect_capture().never();
    m.payments.expect_update().never();
    let result = m
        .build()
        .payments
        .validate(&dr(), CONSULTATION, &amount("20"))
        .await;
    assert_eq!(code(result), "payment_state_conflict");
}

#[tokio::test]
async fn a_validation_that_loses_a_race_re_reads_the_payment_and_writes_on_its_version() {
    let mut m = Mocks::new();
    m.documents_readable();
    let held = authorized();
    // Meanwhile a webhook moved the capture deadline: a new version.
    let moved = step(&held, hold(Some(now() + Duration::days(5))));
    let in_flight = pending_capture(&moved, 1800);
    m.consultation_is(&record(Some(held.clone())));
    m.payment_reads(&[held.clone(), moved.clone(), in_flight.clone()]);
    let mut seq = Sequence::new();
    let stale = held.version();
    m.payments
        .expect_update()
        .withf(move |_, v, _| *v == stale)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(RepositoryError::Conflict));
    records_pending(&mut m, &moved, capture_key(1800), &mut seq);
    m.gateway
        .expect_capture()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _, _| Ok(succeeded_snapshot(1800)));
    settles(&mut m, &in_flight, PaymentStatus::Captured, &mut seq);

    let p = m
        .build()
        .payments
        .validate(&dr(), CONSULTATION, &amount("18"))
        .await
        .unwrap();

    assert_eq!(p.status(), PaymentStatus::Captured);
    assert_eq!(p.captured(), Some(eur(1800)));
}

/// A capture the gateway answers with `failure`; what must follow.
async fn capture_fails(
    failure: GatewayError,
    resync: Option<IntentSnapshot>,
    cleared_to: Option<PaymentStatus>,
) -> BillingError {
    let mut m = Mocks::new();
    let held = authorized();
    let in_flight = pending_capture(&held, 1800);
    m.consultation_is(&record(Some(held.clone())));
    m.payment_reads(&[held.clone(), in_flight.clone()]);
    let mut seq = Sequence::new();
    records_pending(&mut m, &held, capture_key(1800), &mut seq);
    m.gateway
        .expect_capture()
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, _, _, _| Err(failure.clone()));
    match resync {
        Some(snapshot) => {
            m.gateway
                .expect_retrieve()
                .withf(|a, i| *a == account() && *i == intent())
                .times(1)
                .in_sequence(&mut seq)
                .returning(move |_, _| Ok(snapshot.clone()));
        }
        None => {
            m.gateway.expect_retrieve().never();
        }
    }
    // Without `cleared_to`, only the pending record is written: it stays for a retry
    // or for reconciliation.
    if let Some(status) = cleared_to {
        settles(&mut m, &in_flight, status, &mut seq);
    }
    m.build()
        .payments
        .validate(&dr(), CONSULTATION, &amount("18"))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn a_declined_capture_clears_the_pending_operation_and_says_card_declined() {
    let err = capture_fails(
        GatewayError::Declined(declined()),
        None,
        Some(PaymentStatus::Authorized),
    )
    .await;
    assert_eq!(err.code(), "card_declined");
}

#[tokio::test]
async fn a_capture_whose_outcome_is_unknown_stays_pending_for_a_retry() {
    for failure in [timeout(), GatewayError::RateLimited] {
        let err = capture_fails(failure.clone(), None, None).await;
        assert_eq!(err.code(), "gateway_unavailable", "{failure:?}");
    }
}

#[tokio::test]
async fn a_capture_refused_for_the_intents_state_re_syncs_the_payment_from_the_gateway() {
    let err = capture_fails(
        GatewayError::UnexpectedState {
            message:
                "This PaymentIntent could not be captured because it has a status of canceled."
                    .into(),
        },
        Some(canceled_snapshot("automatic")),
        Some(PaymentStatus::Expired),
    )
    .await;
    assert_eq!(err.code(), "payment_state_conflict");
}

#[tokio::test]
async fn only_the_practitioner_may_validate_release_or_refund() {
    let mut actors = vec![("their secretary", secretary(), "forbidden")];
    actors.extend(outsiders());
    for (who, actor, expected) in actors {
        let mut m = Mocks::new();
        m.consultation_is(&record(Some(captured(1800))));
        m.payment_is(&captured(1800));
        m.payments.expect_update().never();
        m.gateway.expect_capture().never();
        m.gateway.expect_release().never();
        m.gateway.expect_refund().never();
        let p = m.build().payments;
        assert_eq!(
            code(p.validate(&actor, CONSULTATION, &amount("18")).await),
            expected,
            "{who}: validate"
        );
        assert_eq!(
            code(p.release(&actor, CONSULTATION).await),
            expected,
            "{who}: release"
        );
        assert_eq!(
            code(p.refund(&actor, PAYMENT, &amount("5"), None).await),
            expected,
            "{who}: refund"
        );
    }
}

#[tokio::test]
async fn money_commands_on_unknown_or_unpaid_consultations_are_refused() {
    let mut m = Mocks::new();
    m.consultations
        .expect_get()
        .returning(|_| Err(RepositoryError::NotFound));
    let billing = m.build();
    assert_eq!(
        code(
            billing
                .payments
                .validate(&dr(), CONSULTATION, &amount("18"))
                .await
        ),
        "not_found"
    );

    let mut m = Mocks::new();
    m.consultation_is(&record(None));
    let billing = m.build();
    assert_eq!(
        code(
            billing
                .payments
                .validate(&dr(), CONSULTATION, &amount("18"))
                .await
        ),
        "validation_failed"
    );
    assert_eq!(
        code(billing.payments.release(&dr(), CONSULTATION).await),
        "validation_failed"
    );
}

// ---- release ------------------------------------------------------------------------

#[tokio::test]
async fn releasing_an_unpaid_payment_needs_no_gateway_call() {
    let mut m = Mocks::new();
    let unpaid = scheduled_payment();
    let mut seq = Sequence::new();
    let in_flight = release_begins(&mut m, &unpaid, &mut seq);
    settles(&mut m, &in_flight, PaymentStatus::Released, &mut seq);
    m.gateway.expect_release().never();

    let p = m
        .build()
        .payments
        .release(&dr(), CONSULTATION)
        .await
        .unwrap();

    assert_eq!(p.status(), PaymentStatus::Released);
}

/// Declined in a Checkout Session that is still open: the payment knows the session
/// and the intent Stripe made for it.
fn declined_in_an_open_session() -> Payment {
    let in_session = scheduled_payment()
        .checkout_started(
            account(),
            Some(intent()),
            Some(CheckoutRef {
                setup: None,
                session: Some(CheckoutSessionId::parse("cs_test_Open").unwrap()),
                url: Some("https://checkout.stripe.com/c/pay/cs_test_Open".into()),
                expires_at: Some(now() + Duration::hours(20)),
            }),
            now() - Duration::hours(4),
        )
        .unwrap();
    step(&in_session, PaymentEvent::AuthorizationFailed(declined()))
}

#[tokio::test]
async fn releasing_before_any_hold_expires_the_open_checkout_instead_of_cancelling_its_intent() {
    let mut m = Mocks::new();
    let unpaid = declined_in_an_open_session();
    let mut seq = Sequence::new();
    let in_flight = release_begins(&mut m, &unpaid, &mut seq);
    m.gateway
        .expect_expire_checkout()
        .withf(|a, s, key| {
            *a == account()
                && s.as_str() == "cs_test_Open"
                && *key == IdempotencyKey::expire_checkout(PAYMENT, s)
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));
    m.gateway
        .expect_retrieve_checkout()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| {
            Ok(CheckoutState {
                status: CheckoutStatus::Expired,
                intent: None,
                setup: None,
            })
        });
    settles(&mut m, &in_flight, PaymentStatus::Released, &mut seq);
    // Stripe refuses to cancel an intent its Checkout made.
    m.gateway.expect_release().never();

    let p = m
        .build()
        .payments
        .release(&dr(), CONSULTATION)
        .await
        .unwrap();
    assert_eq!(p.status(), PaymentStatus::Released);
}

#[tokio::test]
async fn a_checkout_that_could_not_be_expired_is_not_marked_released() {
    let mut m = Mocks::new();
    let unpaid = declined_in_an_open_session();
    m.consultation_is(&record(Some(unpaid.clone())));
    m.payment_reads(&[unpaid.clone(), pending_release(&unpaid)]);
    let mut seq = Sequence::new();
    records_pending(
        &mut m,
        &unpaid,
        IdempotencyKey::release(PAYMENT, unpaid.intent()),
        &mut seq,
    );
    m.gateway
        .expect_expire_checkout()
        .times(1)
        .returning(|_, _, _| Err(timeout()));
    let result = m.build().payments.release(&dr(), CONSULTATION).await;
    assert_eq!(code(result), "gateway_unavailable");
}

#[tokio::test]
async fn a_checkout_paid_while_it_was_being_closed_has_its_hold_cancelled() {
    // Our row still says unpaid; the patient completed the session just before it was
    // expired (its webhook not yet here, or here after we read the payment).
    let mut m = Mocks::new();
    let unpaid = declined_in_an_open_session();
    let mut seq = Sequence::new();
    release_begins(&mut m, &unpaid, &mut seq);
    m.gateway
        .expect_expire_checkout()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));
    m.gateway
        .expect_retrieve_checkout()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| {
            Ok(CheckoutState {
                status: CheckoutStatus::Complete,
                intent: Some(hold_snapshot()),
                setup: None,
            })
        });
    m.gateway
        .expect_release()
        .withf(|a, i, key| {
            *a == account()
                && *i == intent()
                && *key == IdempotencyKey::release(PAYMENT, Some(&intent()))
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(canceled_snapshot("requested_by_customer")));
    m.payments
        .expect_update()
        .withf(|p, _, _| {
            is(p, PaymentStatus::Released) && p.pending().is_none() && p.intent() == Some(&intent())
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));

    let p = m
        .build()
        .payments
        .release(&dr(), CONSULTATION)
        .await
        .unwrap();
    assert_eq!(p.status(), PaymentStatus::Released);
}

#[tokio::test]
async fn releasing_twice_is_harmless() {
    let mut m = Mocks::new();
    m.consultation_is(&record(Some(released())));
    m.payment_is(&released());
    m.gateway.expect_release().never();
    m.payments.expect_update().never();
    let p = m
        .build()
        .payments
        .release(&dr(), CONSULTATION)
        .await
        .unwrap();
    assert_eq!(p.status(), PaymentStatus::Released);
}

#[tokio::test]
async fn a_captured_payment_cannot_be_released() {
    let mut m = Mocks::new();
    m.consultation_is(&record(Some(captured(1800))));
    m.gateway.expect_release().never();
    let result = m.build().payments.release(&dr(), CONSULTATION).await;
    assert_eq!(code(result), "payment_state_conflict");
}

#[tokio::test]
async fn a_release_whose_outcome_is_unknown_stays_pending() {
    let mut m = Mocks::new();
    let held = authorized();
    m.consultation_is(&record(Some(held.clone())));
    m.payment_reads(&[held.clone(), pending_release(&held)]);
    let mut seq = Sequence::new();
    records_pending(
        &mut m,
        &held,
        IdempotencyKey::release(PAYMENT, held.intent()),
        &mut seq,
    );
    m.gateway
        .expect_release()
        .times(1)
        .returning(|_, _, _| Err(timeout()));
    let result = m.build().payments.release(&dr(), CONSULTATION).await;
    assert_eq!(code(result), "gateway_unavailable");
}

// ---- C11: refunds ---------------------------------------------------------------------

fn refunded_by_gateway(minor: i64, status: RefundStatus) -> Result<RefundOutcome, GatewayError> {
    Ok(RefundOutcome {
        id: RefundId::parse("re_1").unwrap(),
        amount: eur(minor),
        status,
    })
}

#[tokio::test]
async fn refunds_are_bounded_by_what_was_captured_and_not_yet_refunded() {
    // 18.00 captured, 5.00 refunded already: 13.00 is left.
    let table = [
        (
            "a cent more than is left",
            refunded(1800, 500),
            "13.01",
            "amount_above_cap",
        ),
        ("nothing", refunded(1800, 500), "0", "invalid_amount"),
        (
            "a hold not yet captured",
            authorized(),
            "5",
            "payment_state_conflict",
        ),
        (
            "a payment refunded in full",
            refunded(1800, 1800),
            "1",
            "payment_state_conflict",
        ),
        ("a released hold", released(), "1", "payment_state_conflict"),
    ];
    for (case, payment, typed, expected) in table {
        let mut m = Mocks::new();
        m.payment_is(&payment);
        m.payments.expect_update().never();
        m.gateway.expect_refund().never();
        let result = m
            .build()
            .payments
            .refund(&dr(), PAYMENT, &amount(typed), None)
            .await;
        assert_eq!(code(result), expected, "{case}");
    }
}

#[tokio::test]
async fn each_refund_has_its_own_key_and_the_last_one_marks_the_payment_refunded() {
    // (already refunded, refund now, as typed, key discriminator, status after)
    let table = [
        (0, 500, "5", "0:500", PaymentStatus::PartiallyRefunded),
        (500, 1300, "13.00", "1:1300", PaymentStatus::Refunded),
    ];
    for (already, now_refunding, typed, discriminator, after) in table {
        let mut m = Mocks::new();
        m.documents_readable();
        let before = if already == 0 {
            captured(1800)
        } else {
            refunded(1800, already)
        };
        let in_flight = pending_refund(&before, now_refunding, discriminator);
        m.payment_reads(&[before.clone(), before.clone(), in_flight.clone()]);
        let mut seq = Sequence::new();
        let key = IdempotencyKey::refund(PAYMENT, discriminator);
        records_pending(&mut m, &before, key.clone(), &mut seq);
        m.gateway
            .expect_refund()
            .withf(move |a, i, amount, k| {
                *a == account() && *i == intent() && *amount == eur(now_refunding) && *k == key
            })
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _, _, _| {
                refunded_by_gateway(now_refunding, RefundStatus::Succeeded)
            });
        charge_reports_refunded(&mut m, already + now_refunding);
        settles(&mut m, &in_flight, after, &mut seq);

        let p = m
            .build()
            .payments
            .refund(&dr(), PAYMENT, &amount(typed), None)
            .await
            .unwrap();

        assert_eq!(p.refunded(), eur(already + now_refunding));
        assert_eq!(p.status(), after);
    }
}

fn client_key_record(fingerprint: &str, resource: Option<uuid::Uuid>) -> Reservation {
    Reservation::Existing(IdempotencyRecord {
        scope: format!("user:{}", DR.as_uuid()),
        key: format!("refund:{PAYMENT}:k1"),
        fingerprint: fingerprint.into(),
        resource,
        created_at: now() - Duration::minutes(1),
    })
}

#[tokio::test]
async fn a_refund_retried_with_its_client_key_is_answered_not_repeated() {
    // The first request refunded 18.00 (all) or 10.00 (more than what is now left).
    for (done, typed, print) in [
        (refunded(1800, 1800), "18", "1800"),
        (refunded(1800, 1000), "10", "1000"),
    ] {
        let mut m = Mocks::new();
        m.payment_is(&done);
        let answer = client_key_record(print, Some(PAYMENT.as_uuid()));
        m.idempotency
            .expect_reserve()
            .times(1)
            .returning(move |_| Ok(answer.clone()));
        m.gateway.expect_refund().never();
        m.payments.expect_update().never();
        let p = m
            .build()
            .payments
            .refund(&dr(), PAYMENT, &amount(typed), Some("k1"))
            .await
            .unwrap();
        assert_eq!(p, done, "replay of {typed}");
    }
}

#[tokio::test]
async fn a_refund_client_key_reused_for_another_amount_or_still_running_is_refused() {
    let table = [
        (
            client_key_record("500", Some(PAYMENT.as_uuid())),
            "idempotency_key_reused",
        ),
        (client_key_record("1000", None), "idempotency_key_in_flight"),
    ];
    for (answer, expected) in table {
        let mut m = Mocks::new();
        m.payment_is(&captured(1800));
        m.idempotency
            .expect_reserve()
            .times(1)
            .returning(move |_| Ok(answer.clone()));
        m.gateway.expect_refund().never();
        let result = m
            .build()
            .payments
            .refund(&dr(), PAYMENT, &amount("10"), Some("k1"))
            .await;
        assert_eq!(code(result), expected);
    }
}

#[tokio::test]
async fn a_refund_refused_for_its_amount_frees_its_client_key() {
    let mut m = Mocks::new();
    m.payment_is(&refunded(1800, 1000));
    m.idempotency
        .expect_reserve()
        .times(1)
        .returning(|_| Ok(Reservation::New));
    m.idempotency
        .expect_release()
        .withf(|_, key| key == format!("refund:{PAYMENT}:k1"))
        .times(1)
        .returning(|_, _| Ok(()));
    m.idempotency.expect_complete().never();
    m.gateway.expect_refund().never();
    let result = m
        .build()
        .payments
        .refund(&dr(), PAYMENT, &amount("10"), Some("k1"))
        .await;
    assert_eq!(code(result), "amount_above_cap");
}

#[tokio::test]
async fn a_first_refund_with_a_client_key_sends_a_key_derived_from_it_and_records_completion() {
    let mut m = Mocks::new();
    let before = captured(1800);
    let in_flight = pending_refund(&before, 1000, &k1());
    m.payment_reads(&[before.clone(), before.clone(), in_flight.clone()]);
    m.idempotency
        .expect_reserve()
        .withf(|r| {
            r.scope == format!("user:{}", DR.as_uuid())
                && r.key == format!("refund:{PAYMENT}:k1")
                && r.fingerprint == "1000"
        })
        .times(1)
        .returning(|_| Ok(Reservation::New));
    let mut seq = Sequence::new();
    records_pending(
        &mut m,
        &before,
        IdempotencyKey::refund(PAYMENT, &k1()),
        &mut seq,
    );
    m.gateway
        .expect_refund()
        .withf(|_, _, _, k| *k == IdempotencyKey::refund(PAYMENT, &k1()))
        .times(1)
        .returning(|_, _, _, _| refunded_by_gateway(1000, RefundStatus::Pending));
    charge_reports_refunded(&mut m, 1000);
    settles(
        &mut m,
        &in_flight,
        PaymentStatus::PartiallyRefunded,
        &mut seq,
    );
    m.idempotency
        .expect_complete()
        .withf(|scope, key, resource| {
            scope == format!("user:{}", DR.as_uuid())
                && key == format!("refund:{PAYMENT}:k1")
                && *resource == PAYMENT.as_uuid()
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    m.idempotency.expect_release().never();

    let p = m
        .build()
        .payments
        .refund(&dr(), PAYMENT, &amount("10"), Some("k1"))
        .await
        .unwrap();

    assert_eq!(p.refunded(), eur(1000));
}

#[tokio::test]
async fn a_refund_the_gateway_reports_failed_is_cleared_and_frees_the_client_key() {
    let mut m = Mocks::new();
    let before = captured(1800);
    let in_flight = pending_refund(&before, 1000, &k1());
    m.payment_reads(&[before.clone(), before.clone(), in_flight.clone()]);
    m.idempotency
        .expect_reserve()
        .returning(|_| Ok(Reservation::New));
    let mut seq = Sequence::new();
    records_pending(
        &mut m,
        &before,
        IdempotencyKey::refund(PAYMENT, &k1()),
        &mut seq,
    );
    m.gateway
        .expect_refund()
        .times(1)
        .returning(|_, _, _, _| refunded_by_gateway(1000, RefundStatus::Failed));
    settles(&mut m, &in_flight, PaymentStatus::Captured, &mut seq);
    m.idempotency.expect_complete().never();
    m.idempotency
        .expect_release()
        .withf(|_, key| key == format!("refund:{PAYMENT}:k1"))
        .times(1)
        .returning(|_, _| Ok(()));

    let result = m
        .build()
        .payments
        .refund(&dr(), PAYMENT, &amount("10"), Some("k1"))
        .await;

    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn a_refund_retried_after_a_timeout_reuses_its_gateway_key() {
    // The first attempt timed out: its refund is pending, its client key was freed.
    let mut m = Mocks::new();
    m.documents_readable();
    let in_flight = pending_refund(&captured(1800), 1000, &k1());
    m.payment_is(&in_flight);
    m.idempotency
        .expect_reserve()
        .returning(|_| Ok(Reservation::New));
    m.gateway
        .expect_refund()
        .withf(|_, _, _, k| *k == IdempotencyKey::refund(PAYMENT, &k1()))
        .times(1)
        .returning(|_, _, _, _| refunded_by_gateway(1000, RefundStatus::Succeeded));
    // Stripe cannot be read back just now: our own total stands.
    m.gateway
        .expect_retrieve()
        .times(1)
        .returning(|_, _| Err(timeout()));
    let mut seq = Sequence::new();
    settles(
        &mut m,
        &in_flight,
        PaymentStatus::PartiallyRefunded,
        &mut seq,
    );
    m.idempotency
        .expect_complete()
        .times(1)
        .returning(|_, _, _| Ok(()));

    let p = m
        .build()
        .payments
        .refund(&dr(), PAYMENT, &amount("10"), Some("k1"))
        .await
        .unwrap();

    assert_eq!(p.refunded(), eur(1000));
}

#[tokio::test]
async fn a_refund_recorded_while_another_one_landed_counts_both() {
    // 5.00 refunded from Stripe's dashboard reaches us (webhook) while our 10.00 is in
    // flight: the total is 15.00, not our 0 + 10.00.
    let mut m = Mocks::new();
    m.documents_readable();
    let before = captured(1800);
    let meanwhile = pending_refund(&refunded(1800, 500), 1000, "0:1000");
    m.payment_reads(&[before.clone(), before.clone(), meanwhile.clone()]);
    let mut seq = Sequence::new();
    records_pending(
        &mut m,
        &before,
        IdempotencyKey::refund(PAYMENT, "0:1000"),
        &mut seq,
    );
    m.gateway
        .expect_refund()
        .times(1)
        .returning(|_, _, _, _| refunded_by_gateway(1000, RefundStatus::Succeeded));
    charge_reports_refunded(&mut m, 1500);
    let version = meanwhile.version();
    m.payments
        .expect_update()
        .withf(move |p, expected, _| {
            *expected == version && p.refunded() == eur(1500) && p.pending().is_none()
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));

    let p = m
        .build()
        .payments
        .refund(&dr(), PAYMENT, &amount("10"), None)
        .await
        .unwrap();
    assert_eq!(p.refunded(), eur(1500));
}

#[tokio::test]
async fn two_keyless_refunds_at_once_never_answer_one_refund_as_two() {
    // The other request's refund of the same amount is in flight under the key this
    // one would use: answering it as ours would be a 200 for nothing.
    let mut m = Mocks::new();
    m.payment_is(&pending_refund(&captured(1800), 500, "0:500"));
    m.gateway.expect_refund().never();
    m.payments.expect_update().never();
    let result = m
        .build()
        .payments
        .refund(&dr(), PAYMENT, &amount("5"), None)
        .await;
    assert_eq!(code(result), "refund_in_progress");

    // It already landed, after this request read the payment: refunding "the first
    // 5.00" again would reuse its key and make nothing.
    let mut m = Mocks::new();
    let landed = step(&captured(1800), PaymentEvent::Refunded { total: eur(500) });
    m.payment_reads(&[captured(1800), landed]);
    m.gateway.expect_refund().never();
    m.payments.expect_update().never();
    let result = m
        .build()
        .payments
        .refund(&dr(), PAYMENT, &amount("5"), None)
        .await;
    assert_eq!(code(result), "refund_in_progress");
}

#[tokio::test]
async fn a_refund_for_another_amount_waits_for_the_unknown_one_and_never_reuses_its_key() {
    let mut m = Mocks::new();
    m.payment_is(&pending_refund(&captured(1800), 1000, "0:1000"));
    m.gateway.expect_refund().never();
    m.payments.expect_update().never();
    let result = m
        .build()
        .payments
        .refund(&dr(), PAYMENT, &amount("5"), None)
        .await;
    assert_eq!(code(result), "payment_state_conflict");
}

#[tokio::test]
async fn a_refund_stripe_answers_with_an_idempotency_error_stays_pending() {
    let mut m = Mocks::new();
    let before = captured(1800);
    m.payment_reads(&[before.clone(), before.clone()]);
    let mut seq = Sequence::new();
    records_pending(
        &mut m,
        &before,
        IdempotencyKey::refund(PAYMENT, "0:1000"),
        &mut seq,
    );
    m.gateway
        .expect_refund()
        .times(1)
        .returning(|_, _, _, _| Err(GatewayError::IdempotencyConflict));
    // No second write: the pending refund is left for reconciliation.
    let result = m
        .build()
        .payments
        .refund(&dr(), PAYMENT, &amount("10"), None)
        .await;
    assert_eq!(code(result), "idempotency_key_reused");
}

#[tokio::test]
async fn a_refund_whose_outcome_is_unknown_stays_pending_and_frees_the_client_key() {
    let mut m = Mocks::new();
    let before = captured(1800);
    m.payment_reads(&[
        before.clone(),
        before.clone(),
        pending_refund(&before, 1000, &k1()),
    ]);
    m.idempotency
        .expect_reserve()
        .returning(|_| Ok(Reservation::New));
    let mut seq = Sequence::new();
    records_pending(
        &mut m,
        &before,
        IdempotencyKey::refund(PAYMENT, &k1()),
        &mut seq,
    );
    m.gateway
        .expect_refund()
        .times(1)
        .returning(|_, _, _, _| Err(timeout()));
    m.idempotency
        .expect_release()
        .times(1)
        .returning(|_, _| Ok(()));
    let result = m
        .build()
        .payments
        .refund(&dr(), PAYMENT, &amount("10"), Some("k1"))
        .await;
    assert_eq!(code(result), "gateway_unavailable");
}

// ---- C9: webhooks ------------------------------------------------------------------

fn webhook(kind: &str, account: Option<ConnectedAccountId>, payload: GatewayEvent) -> WebhookEvent {
    WebhookEvent {
        id: event_id(),
        kind: kind.into(),
        created: now(),
        account,
        payload,
    }
}

fn intent_event(snapshot: IntentSnapshot) -> WebhookEvent {
    webhook(
        "payment_intent.amount_capturable_updated",
        Some(account()),
        GatewayEvent::PaymentIntent(snapshot),
    )
}

/// The inbox is asked once whether the event was processed, and answers `processed`.
fn claims(m: &mut Mocks, processed: bool) {
    m.webhook_inbox
        .expect_processed()
        .withf(|id| *id == event_id())
        .times(1)
        .returning(move |_| Ok(processed));
}

fn marks_processed(m: &mut Mocks, outcome: &'static str) {
    m.webhook_inbox
        .expect_record_processed()
        .withf(move |id, _, received, _, o| *id == event_id() && *received == now() && o == outcome)
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
}

#[tokio::test]
async fn a_delivery_that_fails_verification_is_refused_before_anything_is_recorded() {
    let table = [
        (WebhookError::MissingSignature, "webhook_signature_invalid"),
        (
            WebhookError::MalformedSignature,
            "webhook_signature_invalid",
        ),
        (WebhookError::BadSignature, "webhook_signature_invalid"),
        (WebhookError::Stale, "webhook_signature_invalid"),
        (
            WebhookError::MalformedEvent("not json".into()),
            "webhook_signature_invalid",
        ),
        (WebhookError::NotConfigured, "webhook_not_configured"),
    ];
    for (failure, expected) in table {
        let mut m = Mocks::new();
        let refused = failure.clone();
        m.webhook_verifier
            .expect_verify()
            .times(1)
            .returning(move |_, _| Err(refused.clone()));
        m.webhook_inbox.expect_processed().never();
        let result = m.build().webhooks.receive(Some("t=1,v1=00"), b"{}").await;
        assert_eq!(code(result), expected, "{failure:?}");
    }
}

#[tokio::test]
async fn a_verified_hold_event_authorizes_the_payment_once() {
    let mut m = Mocks::new();
    m.documents_readable();
    m.webhook_verifier
        .expect_verify()
        .withf(|sig, body| *sig == Some("t=1,v1=ab") && body == b"{\"id\":\"evt_1Webhook\"}")
        .times(1)
        .returning(|_, _| Ok(intent_event(hold_snapshot())));
    claims(&mut m, false);
    m.payment_is(&incomplete());
    m.payments
        .expect_update()
        .withf(|p, _, log| {
            is(p, PaymentStatus::Authorized)
                && p.capture_before() == Some(now() + Duration::days(7))
                && log.audit.iter().any(|e| {
                    e.action == AuditAction::Authorized
                        && e.actor == AuditActor::Stripe(Some(event_id()))
                })
        })
        .times(1)
        .returning(|_, _, _| Ok(()));
    marks_processed(&mut m, "applied (1 status change(s))");

    let receipt = m
        .build()
        .webhooks
        .receive(Some("t=1,v1=ab"), b"{\"id\":\"evt_1Webhook\"}")
        .await
        .unwrap();

    assert_eq!(receipt.id, event_id());
    assert_eq!(receipt.kind, "payment_intent.amount_capturable_updated");
    assert_eq!(
        receipt.outcome,
        WebhookOutcome::Applied(vec![StatusChange {
            payment: PAYMENT,
            from: PaymentStatus::Incomplete,
            to: PaymentStatus::Authorized,
        }])
    );
}

#[tokio::test]
async fn an_event_already_processed_is_acknowledged_and_not_applied_again() {
    let mut m = Mocks::new();
    claims(&mut m, true);
    m.payments.expect_get().never();
    m.payments.expect_update().never();
    m.webhook_inbox.expect_record_processed().never();
    let outcome = m
        .build()
        .webhooks
        .apply(&intent_event(hold_snapshot()))
        .await
        .unwrap();
    assert_eq!(outcome, WebhookOutcome::Duplicate);
}

#[tokio::test]
async fn an_event_whose_processing_was_interrupted_is_applied_on_redelivery() {
    let mut m = Mocks::new();
    m.documents_readable();
    claims(&mut m, false);
    m.payment_is(&incomplete());
    m.payments
        .expect_update()
        .withf(|p, _, _| is(p, PaymentStatus::Authorized))
        .times(1)
        .returning(|_, _, _| Ok(()));
    marks_processed(&mut m, "applied (1 status change(s))");
    let outcome = m
        .build()
        .webhooks
        .apply(&intent_event(hold_snapshot()))
        .await
        .unwrap();
    assert!(matches!(outcome, WebhookOutcome::Applied(changes) if changes.len() == 1));
}

#[tokio::test]
async fn late_or_repeated_events_never_move_a_payment_backwards() {
    let refused = IntentSnapshot {
        last_error: Some(declined()),
        ..snapshot(IntentStatus::RequiresPaymentMethod)
    };
    let table = [
        ("hold after the capture", captured(1800), hold_snapshot()),
        (
            "the capture again",
            captured(1800),
            succeeded_snapshot(1800),
        ),
        ("a decline after the hold", authorized(), refused),
        (
            "the capture after a full refund",
            refunded(1800, 1800),
            succeeded_snapshot(1800),
        ),
        (
            "a hold after the hold lapsed",
            step(&authorized(), PaymentEvent::Expired),
            hold_snapshot(),
        ),
    ];
    for (case, payment, late) in table {
        let mut m = Mocks::new();
        claims(&mut m, false);
        m.payment_is(&payment);
        m.payments.expect_update().never();
        m.gateway.expect_release().never();
        marks_processed(&mut m, "applied (0 status change(s))");
        let outcome = m.build().webhooks.apply(&intent_event(late)).await.unwrap();
        assert_eq!(outcome, WebhookOutcome::Applied(vec![]), "{case}");
    }
}

fn ignoring(payment: &Payment, why: IgnoreReason) -> Mocks {
    let mut m = Mocks::new();
    m.webhook_inbox.expect_processed().returning(|_| Ok(false));
    m.payment_is(payment);
    let by_intent = payment.clone();
    m.payments
        .expect_find_by_intent()
        .returning(move |_| Ok(Some(by_intent.clone())));
    m.payments.expect_update().never();
    m.webhook_inbox
        .expect_record_processed()
        .withf(move |_, _, _, _, o| *o == format!("ignored: {why}"))
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
    m
}

#[tokio::test]
async fn events_that_are_not_about_a_payment_of_ours_are_ignored() {
    let elsewhere = IntentSnapshot {
        id: PaymentIntentId::parse("pi_9Foreign").unwrap(),
        ..hold_snapshot()
    };
    let table = [
        (
            "another connected account than the payment's",
            authorized(),
            webhook(
                "payment_intent.succeeded",
                Some(other_account()),
                GatewayEvent::PaymentIntent(succeeded_snapshot(2500)),
            ),
            IgnoreReason::OtherAccount,
        ),
        (
            // The practitioner's other business names our payment in its metadata.
            "an intent that is not the payment's, naming it in its metadata",
            authorized(),
            intent_event(elsewhere),
            IgnoreReason::OtherIntent,
        ),
        (
            // Any connected account could name an unpaid payment's id: no checkout
            // started, so nothing may attach an intent to it or open the gate.
            "a payment whose checkout never started",
            scheduled_payment(),
            intent_event(hold_snapshot()),
            IgnoreReason::NoAccountYet,
        ),
        (
            "a dispute from another account",
            captured(1800),
            webhook(
                "charge.dispute.created",
                Some(other_account()),
                GatewayEvent::Dispute {
                    dispute: dispute(DisputeStatus::NeedsResponse, 0),
                    intent: Some(intent()),
                },
            ),
            IgnoreReason::OtherAccount,
        ),
        (
            "a card saved on another account",
            incomplete(),
            webhook(
                "setup_intent.succeeded",
                Some(other_account()),
                GatewayEvent::SetupIntent(setup_snapshot()),
            ),
            IgnoreReason::OtherAccount,
        ),
        (
            // A supported currency, but not the payment's: not about this payment.
            "the payment's own intent in another currency",
            authorized(),
            intent_event(IntentSnapshot {
                amount: Money::from_minor(2500, Currency::Usd),
                amount_capturable: Money::from_minor(2500, Currency::Usd),
                ..hold_snapshot()
            }),
            IgnoreReason::Currency,
        ),
        (
            "a dispute in another currency",
            captured(1800),
            webhook(
                "charge.dispute.created",
                Some(account()),
                GatewayEvent::Dispute {
                    dispute: Dispute {
                        amount: Money::from_minor(1800, Currency::Usd),
                        ..dispute(DisputeStatus::NeedsResponse, 0)
                    },
                    intent: Some(intent()),
                },
            ),
            IgnoreReason::Currency,
        ),
    ];
    for (case, payment, event, why) in table {
        let mut m = ignoring(&payment, why);
        // A held intent naming the payment is read back before anything is cancelled:
        // unknown on the account, it is left alone.
        m.gateway.expect_retrieve().returning(|_, _| {
            Err(GatewayError::NotFound {
                message: "No such payment_intent".into(),
            })
        });
        m.gateway.expect_release().never();
        let outcome = m.build().webhooks.apply(&event).await.unwrap();
        assert_eq!(outcome, WebhookOutcome::Ignored(why), "{case}");
    }
}

#[tokio::test]
async fn a_second_hold_for_a_payment_already_held_is_cancelled_at_stripe() {
    // The patient paid in an old tab too: Stripe holds the card twice.
    let stray = IntentSnapshot {
        id: PaymentIntentId::parse("pi_9SecondTab").unwrap(),
        ..hold_snapshot()
    };
    let mut m = ignoring(&authorized(), IgnoreReason::OtherIntent);
    let read = stray.clone();
    m.gateway
        .expect_retrieve()
        .withf(|a, i| *a == account() && i.as_str() == "pi_9SecondTab")
        .times(1)
        .returning(move |_, _| Ok(read.clone()));
    m.gateway
        .expect_release()
        .withf(|a, i, key| {
            *a == account()
                && i.as_str() == "pi_9SecondTab"
                && *key == IdempotencyKey::release(PAYMENT, Some(i))
        })
        .times(1)
        .returning(|_, _, _| Ok(canceled_snapshot("requested_by_customer")));
    let outcome = m
        .build()
        .webhooks
        .apply(&intent_event(stray.clone()))
        .await
        .unwrap();
    assert_eq!(outcome, WebhookOutcome::Ignored(IgnoreReason::OtherIntent));

    // While a renewal is in flight its new hold is the job's to adopt: left alone.
    let renewing = pending(
        &authorized(),
        Operation::Hold { amount: eur(2500) },
        IdempotencyKey::renewal(PAYMENT, &intent()),
    );
    let mut m = ignoring(&renewing, IgnoreReason::OtherIntent);
    m.gateway.expect_retrieve().never();
    m.gateway.expect_release().never();
    let outcome = m
        .build()
        .webhooks
        .apply(&intent_event(stray))
        .await
        .unwrap();
    assert_eq!(outcome, WebhookOutcome::Ignored(IgnoreReason::OtherIntent));
}

#[tokio::test]
async fn a_platform_event_about_the_payments_own_intent_is_applied() {
    // A Stripe-compatible peer (or an endpoint on the platform) sends no `account`:
    // the intent recorded on the payment is still ours.
    let mut m = Mocks::new();
    m.documents_readable();
    claims(&mut m, false);
    m.payment_is(&incomplete());
    m.payments
        .expect_update()
        .withf(|p, _, _| is(p, PaymentStatus::Authorized))
        .times(1)
        .returning(|_, _, _| Ok(()));
    marks_processed(&mut m, "applied (1 status change(s))");
    let event = webhook(
        "payment_intent.amount_capturable_updated",
        None,
        GatewayEvent::PaymentIntent(hold_snapshot()),
    );
    let outcome = m.build().webhooks.apply(&event).await.unwrap();
    assert!(matches!(outcome, WebhookOutcome::Applied(c) if c.len() == 1));
}

#[tokio::test]
async fn an_intent_the_payment_does_not_know_is_adopted_only_as_read_back_from_its_account() {
    // Checkout makes the intent when the patient pays: the payment has an account and
    // a session, but no intent yet.
    let awaiting = scheduled_payment()
        .checkout_started(
            account(),
            None,
            Some(CheckoutRef {
                setup: None,
                session: Some(CheckoutSessionId::parse("cs_test_1").unwrap()),
                url: Some("https://checkout.stripe.com/c/pay/cs_test_1".into()),
                expires_at: Some(now() + Duration::hours(24)),
            }),
            now(),
        )
        .unwrap();
    let table: [(
        &str,
        Result<IntentSnapshot, GatewayError>,
        Option<IgnoreReason>,
    ); 4] = [
        (
            "unknown on the practitioner's account",
            Err(GatewayError::NotFound {
                message: "No such payment_intent".into(),
            }),
            Some(IgnoreReason::OtherIntent),
        ),
        (
            "made for another payment",
            Ok(IntentSnapshot {
                payment: Some(PaymentId::from_uuid(uuid::Uuid::from_u128(99))),
                ..hold_snapshot()
            }),
            Some(IgnoreReason::OtherIntent),
        ),
        (
            "an earlier attempt's, cancelled since",
            Ok(canceled_snapshot("abandoned")),
            Some(IgnoreReason::OtherIntent),
        ),
        ("held, for this payment", Ok(hold_snapshot()), None),
    ];
    for (case, read_back, why) in table {
        let mut m = Mocks::new();
        m.documents_readable();
        claims(&mut m, false);
        m.payment_is(&awaiting);
        m.gateway
            .expect_retrieve()
            .withf(|a, i| *a == account() && *i == intent())
            .times(1)
            .returning(move |_, _| read_back.clone());
        m.payments
            .expect_update()
            .withf(|p, _, _| is(p, PaymentStatus::Authorized) && p.intent() == Some(&intent()))
            .times(usize::from(why.is_none()))
            .returning(|_, _, _| Ok(()));
        m.webhook_inbox
            .expect_record_processed()
            .times(1)
            .returning(|_, _, _, _, _| Ok(()));
        // The payload claims a hold; only the read-back counts.
        let outcome = m
            .build()
            .webhooks
            .apply(&intent_event(hold_snapshot()))
            .await
            .unwrap();
        match why {
            Some(why) => assert_eq!(outcome, WebhookOutcome::Ignored(why), "{case}"),
            None => assert!(
                matches!(outcome, WebhookOutcome::Applied(ref c) if c.len() == 1),
                "{case}: {outcome:?}"
            ),
        }
    }
}

#[tokio::test]
async fn events_for_payments_we_do_not_have_are_ignored() {
    let mut m = Mocks::new();
    claims(&mut m, false);
    m.payments
        .expect_get()
        .times(1)
        .returning(|_| Err(RepositoryError::NotFound));
    marks_processed(&mut m, "ignored: unknown_payment");
    let outcome = m
        .build()
        .webhooks
        .apply(&intent_event(hold_snapshot()))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        WebhookOutcome::Ignored(IgnoreReason::UnknownPayment)
    );

    // Without our id in the metadata the intent is looked up instead.
    let mut m = Mocks::new();
    claims(&mut m, false);
    m.payments
        .expect_find_by_intent()
        .withf(|i| *i == intent())
        .times(1)
        .returning(|_| Ok(None));
    marks_processed(&mut m, "ignored: unknown_payment");
    let anonymous = IntentSnapshot {
        payment: None,
        ..hold_snapshot()
    };
    let outcome = m
        .build()
        .webhooks
        .apply(&intent_event(anonymous))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        WebhookOutcome::Ignored(IgnoreReason::UnknownPayment)
    );
}

#[tokio::test]
async fn a_hold_arriving_after_the_release_is_cancelled_at_the_gateway() {
    let mut m = Mocks::new();
    claims(&mut m, false);
    m.payment_is(&released());
    m.payments.expect_update().never();
    m.gateway
        .expect_release()
        .withf(|a, i, key| {
            *a == account()
                && *i == intent()
                && *key == IdempotencyKey::derive(PAYMENT, "release-orphan:pi_3Hold")
        })
        .times(1)
        .returning(|_, _, _| Ok(canceled_snapshot("requested_by_customer")));
    marks_processed(&mut m, "applied (0 status change(s))");
    let outcome = m
        .build()
        .webhooks
        .apply(&intent_event(hold_snapshot()))
        .await
        .unwrap();
    assert_eq!(outcome, WebhookOutcome::Applied(vec![]));
}

fn refunds_changed() -> WebhookEvent {
    webhook(
        "charge.refund.updated",
        Some(account()),
        GatewayEvent::RefundsChanged {
            intent: Some(intent()),
            payment: Some(PAYMENT),
        },
    )
}

fn refund_line(id: &str, minor: i64, status: RefundStatus) -> RefundLine {
    RefundLine {
        id: RefundId::parse(id).unwrap(),
        amount: eur(minor),
        status,
    }
}

/// The intent read back with its charge's refunds.
fn with_refunds(captured_minor: i64, refunds: Vec<RefundLine>) -> IntentSnapshot {
    IntentSnapshot {
        refunds: Some(refunds),
        ..succeeded_snapshot(captured_minor)
    }
}

#[tokio::test]
async fn refund_events_read_the_refunds_again_and_a_failed_one_gives_its_amount_back() {
    use RefundStatus::{Failed, Pending, Succeeded};
    // 18.00 captured, a refund of 5.00 pending.
    let pending_refund = step(
        &captured(1800),
        PaymentEvent::RefundIssued(refund_line("re_1", 500, Pending)),
    );
    assert_eq!(pending_refund.status(), PaymentStatus::PartiallyRefunded);
    assert_eq!(pending_refund.refunds_pending().unwrap(), eur(500));
    let table = [
        (
            "the refund succeeded: nothing moves but its state",
            pending_refund.clone(),
            vec![refund_line("re_1", 500, Succeeded)],
            PaymentStatus::PartiallyRefunded,
            500,
        ),
        (
            "the refund failed: 5.00 may be refunded again",
            pending_refund.clone(),
            vec![refund_line("re_1", 500, Failed)],
            PaymentStatus::Captured,
            0,
        ),
        (
            "one of two failed",
            step(
                &pending_refund,
                PaymentEvent::RefundIssued(refund_line("re_2", 300, Pending)),
            ),
            vec![
                refund_line("re_1", 500, Succeeded),
                refund_line("re_2", 300, Failed),
            ],
            PaymentStatus::PartiallyRefunded,
            500,
        ),
        (
            "a refund made in Stripe's dashboard",
            captured(1800),
            vec![refund_line("re_9", 1800, Succeeded)],
            PaymentStatus::Refunded,
            1800,
        ),
    ];
    for (case, payment, listed, status, refunded) in table {
        let mut m = Mocks::new();
        m.documents_readable();
        m.webhook_inbox.expect_processed().returning(|_| Ok(false));
        m.payment_is(&payment);
        m.gateway
            .expect_retrieve()
            .times(1)
            .returning(move |_, _| Ok(with_refunds(1800, listed.clone())));
        m.payments
            .expect_update()
            .withf(move |p, _, log| {
                is(p, status)
                    && p.refunded() == eur(refunded)
                    && (refunded > 0 || log.history.iter().any(|h| h.event == "all_refunds_failed"))
            })
            .times(1)
            .returning(|_, _, _| Ok(()));
        m.webhook_inbox
            .expect_record_processed()
            .times(1)
            .returning(|_, _, _, _, _| Ok(()));
        let outcome = m.build().webhooks.apply(&refunds_changed()).await.unwrap();
        assert!(matches!(outcome, WebhookOutcome::Applied(_)), "{case}");
    }
}

#[tokio::test]
async fn a_late_refund_event_never_brings_a_failed_refund_back() {
    let failed = step(
        &step(
            &captured(1800),
            PaymentEvent::RefundIssued(refund_line("re_1", 500, RefundStatus::Pending)),
        ),
        PaymentEvent::RefundsReported(vec![refund_line("re_1", 500, RefundStatus::Failed)]),
    );
    assert_eq!(failed.refunded(), eur(0));
    // A read that raced with the failure and still says "succeeded".
    let mut m = Mocks::new();
    m.webhook_inbox.expect_processed().returning(|_| Ok(false));
    m.payment_is(&failed);
    m.gateway.expect_retrieve().times(1).returning(|_, _| {
        Ok(with_refunds(
            1800,
            vec![refund_line("re_1", 500, RefundStatus::Succeeded)],
        ))
    });
    m.payments.expect_update().never();
    m.webhook_inbox
        .expect_record_processed()
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
    let outcome = m.build().webhooks.apply(&refunds_changed()).await.unwrap();
    assert_eq!(outcome, WebhookOutcome::Applied(vec![]));
}

#[tokio::test]
async fn a_lapsed_charge_expires_the_hold_but_not_a_captured_payment() {
    let expiry = webhook(
        "charge.expired",
        Some(account()),
        GatewayEvent::ChargeExpired {
            intent: Some(intent()),
            payment: None,
        },
    );
    for (case, payment, moved_to) in [
        ("hold lapsed", authorized(), Some(PaymentStatus::Expired)),
        ("lapse after the capture", captured(1800), None),
    ] {
        let mut m = Mocks::new();
        m.webhook_inbox.expect_processed().returning(|_| Ok(false));
        let by_intent = payment.clone();
        m.payments
            .expect_find_by_intent()
            .returning(move |_| Ok(Some(by_intent.clone())));
        m.payment_is(&payment);
        m.payments
            .expect_update()
            .withf(move |p, _, _| Some(p.status()) == moved_to)
            .times(usize::from(moved_to.is_some()))
            .returning(|_, _, _| Ok(()));
        m.webhook_inbox
            .expect_record_processed()
            .times(1)
            .returning(|_, _, _, _, _| Ok(()));
        let outcome = m.build().webhooks.apply(&expiry).await.unwrap();
        let WebhookOutcome::Applied(changes) = outcome else {
            panic!("{case}: {outcome:?}");
        };
        assert_eq!(changes.first().map(|c| c.to), moved_to, "{case}");
    }
}

fn dispute_event(kind: &str, dispute: Dispute) -> WebhookEvent {
    webhook(
        kind,
        Some(account()),
        GatewayEvent::Dispute {
            dispute,
            intent: Some(intent()),
        },
    )
}

/// Applies `events` in order as webhooks to a payment that starts as `payment`,
/// returning what was written last.
async fn through_webhooks(payment: Payment, events: Vec<WebhookEvent>) -> Payment {
    let mut current = payment;
    for event in events {
        let mut m = Mocks::new();
        m.documents_readable();
        m.webhook_inbox.expect_processed().returning(|_| Ok(false));
        let by_intent = current.clone();
        m.payments
            .expect_find_by_intent()
            .returning(move |_| Ok(Some(by_intent.clone())));
        m.payment_is(&current);
        let written = std::sync::Arc::new(std::sync::Mutex::new(None));
        let keep = written.clone();
        m.payments.expect_update().returning(move |p, _, _| {
            *keep.lock().unwrap() = Some(p.clone());
            Ok(())
        });
        m.webhook_inbox
            .expect_record_processed()
            .returning(|_, _, _, _, _| Ok(()));
        m.build().webhooks.apply(&event).await.unwrap();
        if let Some(p) = written.lock().unwrap().take() {
            current = p;
        }
    }
    current
}

#[tokio::test]
async fn a_dispute_opened_then_lost_shows_on_the_payment_and_takes_its_funds_and_fee() {
    let p = through_webhooks(
        captured(1800),
        vec![
            dispute_event(
                "charge.dispute.created",
                dispute(DisputeStatus::NeedsResponse, 0),
            ),
            dispute_event(
                "charge.dispute.funds_withdrawn",
                dispute(DisputeStatus::NeedsResponse, 1),
            ),
        ],
    )
    .await;
    assert_eq!(p.status(), PaymentStatus::Disputed);
    assert_eq!(p.status().label(crate::Lang::Fr), "Contesté");
    let d = p.dispute().unwrap();
    assert_eq!((d.reason.as_str(), d.amount), ("fraudulent", eur(1800)));
    assert_eq!(d.evidence_due_by, Some(now() + Duration::days(7)));
    // 18.00 − 0.50 fee − 18.00 withdrawn − 15.00 dispute fee.
    assert_eq!(p.net().unwrap(), eur(1800 - 50 - 1800 - 1500));
    assert_eq!(
        code(p.check_refund(&eur(100)).map_err(BillingError::from)),
        "payment_state_conflict"
    );

    let lost = through_webhooks(
        p.clone(),
        vec![
            dispute_event("charge.dispute.closed", dispute(DisputeStatus::Lost, 1)),
            // A late "updated" from before the decision changes nothing.
            dispute_event(
                "charge.dispute.updated",
                dispute(DisputeStatus::UnderReview, 1),
            ),
        ],
    )
    .await;
    assert_eq!(lost.status(), PaymentStatus::DisputeLost);
    assert_eq!(lost.dispute().unwrap().status, DisputeStatus::Lost);
    assert_eq!(lost.net().unwrap(), eur(1800 - 50 - 1800 - 1500));

    // Won, with the funds reinstated: back to captured, only the fee lost.
    let won = through_webhooks(
        p,
        vec![dispute_event(
            "charge.dispute.closed",
            Dispute {
                withdrawn: eur(0),
                transactions: 2,
                ..dispute(DisputeStatus::Won, 2)
            },
        )],
    )
    .await;
    assert_eq!(won.status(), PaymentStatus::Captured);
    assert_eq!(won.net().unwrap(), eur(1800 - 50 - 1500));
}

/// An unpaid payment whose checkout (in setup mode) is `checkout`.
fn saving_with(checkout: CheckoutRef) -> Payment {
    scheduled_payment()
        .checkout_started(account(), None, Some(checkout), now() - Duration::hours(1))
        .unwrap()
}

fn setup_session() -> CheckoutSessionId {
    CheckoutSessionId::parse("cs_test_setup").unwrap()
}

/// The Checkout Session in setup mode, complete, with the SetupIntent it made.
fn session_made(setup: SetupSnapshot) -> CheckoutState {
    CheckoutState {
        status: CheckoutStatus::Complete,
        intent: None,
        setup: Some(setup),
    }
}

#[tokio::test]
async fn a_saved_card_event_moves_an_unpaid_payment_to_card_saved() {
    // The Payment Element's SetupIntent, recorded when it was made, read as it is now:
    // a first card's failure delivered after the card was saved changes nothing.
    let elements = saving_with(CheckoutRef {
        session: None,
        url: None,
        expires_at: None,
        setup: Some(setup_snapshot().id),
    });
    let saved = step(&elements, PaymentEvent::CardSaved(saved_card()));
    let mut m = Mocks::new();
    m.documents_readable();
    m.webhook_inbox
        .expect_processed()
        .times(1)
        .returning(|_| Ok(false));
    m.payment_reads(&[elements.clone(), elements, saved]);
    m.gateway.expect_retrieve_checkout().never();
    m.gateway
        .expect_retrieve_setup()
        .withf(|a, s| *a == account() && *s == setup_snapshot().id)
        .times(1)
        .returning(|_, _| Ok(setup_snapshot()));
    m.payments
        .expect_update()
        .withf(|p, _, _| is(p, PaymentStatus::CardSaved) && p.saved_card() == Some(&saved_card()))
        .times(1)
        .returning(|_, _, _| Ok(()));
    marks_processed(&mut m, "applied (1 status change(s))");
    let late_failure = SetupSnapshot {
        status: SetupStatus::RequiresPaymentMethod,
        saved_card: None,
        last_error: Some(Failure {
            code: Some("card_declined".into()),
            decline_code: Some("generic_decline".into()),
            message: "Your card was declined.".into(),
        }),
        ..setup_snapshot()
    };
    let event = webhook(
        "setup_intent.setup_failed",
        Some(account()),
        GatewayEvent::SetupIntent(late_failure),
    );
    let outcome = m.build().webhooks.apply(&event).await.unwrap();
    assert!(matches!(outcome, WebhookOutcome::Applied(c) if c.len() == 1));

    // Checkout's own SetupIntent: read back from the session, as it is now.
    let hosted = saving_with(CheckoutRef {
        session: Some(setup_session()),
        url: Some("https://checkout.stripe.com/c/pay/cs_test_setup".into()),
        expires_at: Some(now() + Duration::hours(23)),
        setup: None,
    });
    let p = through_webhooks_reading(
        hosted,
        Ok(session_made(setup_snapshot())),
        webhook(
            "setup_intent.succeeded",
            Some(account()),
            GatewayEvent::SetupIntent(setup_snapshot()),
        ),
    )
    .await;
    assert_eq!(p.status(), PaymentStatus::CardSaved);
    assert_eq!(p.saved_card(), Some(&saved_card()));
}

/// [`through_webhooks`] for one event, with the gateway answering `session` when the
/// payment's checkout session is read.
async fn through_webhooks_reading(
    payment: Payment,
    session: Result<CheckoutState, GatewayError>,
    event: WebhookEvent,
) -> Payment {
    let mut m = Mocks::new();
    m.gateway
        .expect_retrieve_checkout()
        .times(1)
        .return_once(move |_, _| session);
    m.webhook_inbox.expect_processed().returning(|_| Ok(false));
    m.payment_is(&payment);
    let written = std::sync::Arc::new(std::sync::Mutex::new(None));
    let keep = written.clone();
    m.payments.expect_update().returning(move |p, _, _| {
        *keep.lock().unwrap() = Some(p.clone());
        Ok(())
    });
    m.webhook_inbox
        .expect_record_processed()
        .returning(|_, _, _, _, _| Ok(()));
    m.build().webhooks.apply(&event).await.unwrap();
    let written = written.lock().unwrap().take();
    written.unwrap_or(payment)
}

#[tokio::test]
async fn a_saved_card_event_about_a_setup_intent_we_did_not_make_is_ignored() {
    let other = SetupSnapshot {
        id: crate::ids::SetupIntentId::parse("seti_9SomeoneElses").unwrap(),
        ..setup_snapshot()
    };
    let event = || {
        webhook(
            "setup_intent.succeeded",
            Some(account()),
            GatewayEvent::SetupIntent(other.clone()),
        )
    };
    // The Payment Element was given another SetupIntent.
    let elements = saving_with(CheckoutRef {
        session: None,
        url: None,
        expires_at: None,
        setup: Some(setup_snapshot().id),
    });
    let m = ignoring(&elements, IgnoreReason::OtherIntent);
    let outcome = m.build().webhooks.apply(&event()).await.unwrap();
    assert_eq!(outcome, WebhookOutcome::Ignored(IgnoreReason::OtherIntent));
    // The payment's Checkout Session made another one (or none yet).
    let hosted = saving_with(CheckoutRef {
        session: Some(setup_session()),
        url: None,
        expires_at: None,
        setup: None,
    });
    for made in [Some(setup_snapshot()), None] {
        let mut m = ignoring(&hosted, IgnoreReason::OtherIntent);
        m.gateway
            .expect_retrieve_checkout()
            .times(1)
            .return_once(move |_, _| {
                Ok(CheckoutState {
                    status: CheckoutStatus::Open,
                    intent: None,
                    setup: made,
                })
            });
        let outcome = m.build().webhooks.apply(&event()).await.unwrap();
        assert_eq!(outcome, WebhookOutcome::Ignored(IgnoreReason::OtherIntent));
    }
    // No checkout in setup mode at all: the hold's own intent only.
    let m = ignoring(&incomplete(), IgnoreReason::OtherIntent);
    let outcome = m.build().webhooks.apply(&event()).await.unwrap();
    assert_eq!(outcome, WebhookOutcome::Ignored(IgnoreReason::OtherIntent));
}

#[tokio::test]
async fn the_pay_pages_refresh_reads_the_payment_elements_setup_intent() {
    let elements = saving_with(CheckoutRef {
        session: None,
        url: None,
        expires_at: None,
        setup: Some(setup_snapshot().id),
    });
    let mut m = Mocks::new();
    m.gateway
        .expect_retrieve_setup()
        .withf(|a, s| *a == account() && *s == setup_snapshot().id)
        .times(1)
        .returning(|_, _| Ok(setup_snapshot()));
    m.payment_is(&elements);
    m.payments
        .expect_update()
        .withf(|p, _, _| is(p, PaymentStatus::CardSaved))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let billing = m.build();
    let written = billing
        .payments
        .ledger
        .refresh(&elements, &AuditActor::Patient)
        .await
        .unwrap()
        .expect("something to read");
    assert_eq!(written.payment.status(), PaymentStatus::CardSaved);
}

#[tokio::test]
async fn an_account_update_for_another_account_than_the_events_is_ignored() {
    let mut m = Mocks::new();
    m.webhook_inbox.expect_processed().returning(|_| Ok(false));
    m.practitioners.expect_find_by_account().never();
    m.webhook_inbox
        .expect_record_processed()
        .withf(|_, _, _, _, o| o == "ignored: other_account")
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
    let event = webhook(
        "account.updated",
        Some(other_account()),
        GatewayEvent::AccountUpdated(account_snapshot(account(), true)),
    );
    let outcome = m.build().webhooks.apply(&event).await.unwrap();
    assert_eq!(outcome, WebhookOutcome::Ignored(IgnoreReason::OtherAccount));
}

#[tokio::test]
async fn a_webhook_that_loses_a_race_re_applies_its_facts_to_the_fresh_payment() {
    let mut m = Mocks::new();
    m.documents_readable();
    claims(&mut m, false);
    let first = incomplete();
    // Meanwhile the patient's checkout was recorded: a new version.
    let fresher = first
        .checkout_started(
            account(),
            Some(intent()),
            Some(crate::payment::model::CheckoutRef {
                setup: None,
                session: None,
                url: Some("https://checkout.stripe.com/c/pay/cs_test_2".into()),
                expires_at: None,
            }),
            now(),
        )
        .unwrap();
    m.payment_reads(&[first.clone(), first.clone(), fresher.clone()]);
    let mut seq = Sequence::new();
    let stale = first.version();
    m.payments
        .expect_update()
        .withf(move |_, v, _| *v == stale)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Err(RepositoryError::Conflict));
    let current = fresher.version();
    m.payments
        .expect_update()
        .withf(move |p, v, _| {
            *v == current
                && is(p, PaymentStatus::Authorized)
                && p.checkout().and_then(|c| c.url.as_deref())
                    == Some("https://checkout.stripe.com/c/pay/cs_test_2")
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(()));
    marks_processed(&mut m, "applied (1 status change(s))");

    let outcome = m
        .build()
        .webhooks
        .apply(&intent_event(hold_snapshot()))
        .await
        .unwrap();

    assert!(matches!(outcome, WebhookOutcome::Applied(changes) if changes.len() == 1));
}

#[tokio::test]
async fn an_event_whose_write_fails_is_not_marked_processed_so_the_retry_applies_it() {
    let mut m = Mocks::new();
    m.documents_readable();
    claims(&mut m, false);
    m.payment_is(&incomplete());
    m.payments
        .expect_update()
        .returning(|_, _, _| Err(storage_down()));
    m.webhook_inbox.expect_record_processed().never();
    // Recorded as received, unprocessed: the retry finds it so and applies it.
    m.webhook_inbox
        .expect_record_received()
        .withf(|id, _, received| *id == event_id() && *received == now())
        .times(1)
        .returning(|_, _, _| Ok(()));
    let result = m
        .build()
        .webhooks
        .apply(&intent_event(hold_snapshot()))
        .await;
    assert_eq!(code(result), "storage_unavailable");
}

#[tokio::test]
async fn event_types_we_do_not_use_are_acknowledged() {
    let mut m = Mocks::new();
    m.webhook_inbox.expect_processed().returning(|_| Ok(false));
    m.webhook_inbox
        .expect_record_processed()
        .withf(|_, _, _, _, o| o == "ignored: event_type")
        .times(1)
        .returning(|_, _, _, _, _| Ok(()));
    let outcome = m
        .build()
        .webhooks
        .apply(&webhook(
            "customer.created",
            None,
            GatewayEvent::Ignored(IgnoreReason::EventType),
        ))
        .await
        .unwrap();
    assert_eq!(outcome, WebhookOutcome::Ignored(IgnoreReason::EventType));
}

// ---- C10: reconciliation ----------------------------------------------------------------

fn expiring_within() -> Duration {
    config().expiring_within
}

/// The hold jobs' reads find nothing to do: no card saved for a consultation within
/// the lead, no hold near enough its deadline to renew.
fn no_holds_to_place_or_renew(m: &mut Mocks) {
    m.payments
        .expect_holds_to_place()
        .withf(|before, limit| *before == now() + Duration::days(6) && *limit == 200)
        .times(1)
        .returning(|_, _| Ok(vec![]));
    m.payments
        .expect_holds_due()
        .withf(|scope, before| {
            *scope == PaymentScope::All && *before == now() + Duration::hours(12)
        })
        .times(1)
        .returning(|_, _| Ok(vec![]));
}

/// The reads of a pass: the hold jobs', then holds past their deadline, transient
/// payments, holds near their deadline.
fn reconcile_reads(
    m: &mut Mocks,
    lapsed: Vec<Payment>,
    transient: Vec<Payment>,
    soon: Vec<Payment>,
) {
    no_holds_to_place_or_renew(m);
    let lapsed_rows: Vec<_> = lapsed.into_iter().map(row).collect();
    m.payments
        .expect_holds_due()
        .withf(|scope, before| *scope == PaymentScope::All && *before == now())
        .times(1)
        .returning(move |_, _| Ok(lapsed_rows.clone()));
    m.payments
        .expect_needing_reconciliation()
        .withf(|stale_before, since, limit| {
            *stale_before == now() - Duration::minutes(10)
                && *since == now() - Duration::hours(48)
                && *limit == 200
        })
        .times(1)
        .returning(move |_, _, _| Ok(transient.clone()));
    let soon_rows: Vec<_> = soon.into_iter().map(row).collect();
    m.payments
        .expect_holds_due()
        .withf(|scope, before| *scope == PaymentScope::All && *before == now() + expiring_within())
        .times(1)
        .returning(move |_, _| Ok(soon_rows.clone()));
}

fn change(from: PaymentStatus, to: PaymentStatus) -> StatusChange {
    StatusChange {
        payment: PAYMENT,
        from,
        to,
    }
}

#[tokio::test]
async fn a_lapsed_hold_the_gateway_cancelled_automatically_is_marked_expired() {
    let mut m = Mocks::new();
    reconcile_reads(&mut m, vec![lapsed()], vec![], vec![lapsed()]);
    m.gateway
        .expect_retrieve()
        .times(1)
        .returning(|_, _| Ok(canceled_snapshot("automatic")));
    m.payment_is(&lapsed());
    m.payments
        .expect_update()
        .withf(|p, _, log| {
            is(p, PaymentStatus::Expired)
                && log
                    .audit
                    .iter()
                    .any(|e| e.action == AuditAction::Expired && e.actor == AuditActor::System)
        })
        .times(1)
        .returning(|_, _, _| Ok(()));

    let report = m.build().reconcile.run_once().await.unwrap();

    assert_eq!(
        report.changed,
        vec![change(PaymentStatus::Authorized, PaymentStatus::Expired)]
    );
    assert!(
        report.expiring.is_empty(),
        "a lapsed hold is no longer 'expiring'"
    );
    assert!(report.failed.is_empty());
}

#[tokio::test]
async fn a_lapsed_hold_the_gateway_knows_nothing_about_is_expired() {
    // No intent recorded at all, or an intent the gateway no longer has, or an
    // account that no longer lets us in: past its deadline, the hold has lapsed.
    let no_intent = step(&scheduled_payment(), hold(Some(now() - Duration::hours(1))));
    let table: Vec<(&str, Payment, Option<GatewayError>)> = vec![
        ("no intent", no_intent, None),
        (
            "intent unknown to the gateway",
            lapsed(),
            Some(GatewayError::NotFound {
                message: "No such payment_intent".into(),
            }),
        ),
        (
            "account disconnected from the platform",
            lapsed(),
            Some(GatewayError::AccountUnavailable {
                message: "The application is not connected".into(),
            }),
        ),
    ];
    for (case, payment, answer) in table {
        let mut m = Mocks::new();
        reconcile_reads(&mut m, vec![payment.clone()], vec![], vec![]);
        match answer {
            Some(failure) => {
                m.gateway
                    .expect_retrieve()
                    .times(1)
                    .returning(move |_, _| Err(failure.clone()));
            }
            None => {
                m.gateway.expect_retrieve().never();
            }
        }
        m.payment_is(&payment);
        m.payments
            .expect_update()
            .withf(|p, _, _| is(p, PaymentStatus::Expired))
            .times(1)
            .returning(|_, _, _| Ok(()));
        let report = m.build().reconcile.run_once().await.unwrap();
        assert_eq!(
            report.changed,
            vec![change(PaymentStatus::Authorized, PaymentStatus::Expired)],
            "{case}"
        );
        assert!(report.failed.is_empty(), "{case}: {:?}", report.failed);
    }
}

#[tokio::test]
async fn a_capture_left_pending_by_a_crash_is_settled_from_the_gateway() {
    let mut m = Mocks::new();
    m.documents_readable();
    let crashed = pending_capture(&authorized(), 1800);
    reconcile_reads(&mut m, vec![], vec![crashed.clone()], vec![]);
    m.gateway
        .expect_retrieve()
        .withf(|a, i| *a == account() && *i == intent())
        .times(1)
        .returning(|_, _| Ok(succeeded_snapshot(1800)));
    m.payment_is(&crashed);
    m.payments
        .expect_update()
        .withf(|p, _, _| {
            is(p, PaymentStatus::Captured)
                && p.captured() == Some(eur(1800))
                && p.pending().is_none()
        })
        .times(1)
        .returning(|_, _, _| Ok(()));

    let report = m.build().reconcile.run_once().await.unwrap();

    assert_eq!(
        report.changed,
        vec![change(PaymentStatus::Authorized, PaymentStatus::Captured)]
    );
}

#[tokio::test]
async fn payments_the_gateway_cannot_tell_us_about_are_reported_and_left_alone() {
    let mut m = Mocks::new();
    let crashed = pending_capture(&authorized(), 1800);
    reconcile_reads(&mut m, vec![lapsed()], vec![crashed], vec![]);
    m.gateway
        .expect_retrieve()
        .times(2)
        .returning(|_, _| Err(timeout()));
    m.payments.expect_update().never();

    let report = m.build().reconcile.run_once().await.unwrap();

    assert!(report.changed.is_empty());
    assert_eq!(
        report.failed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![PAYMENT, PAYMENT]
    );
}

#[tokio::test]
async fn holds_near_their_deadline_are_listed_and_left_alone() {
    let mut m = Mocks::new();
    m.documents_readable();
    let soon = step(&incomplete(), hold(Some(now() + Duration::hours(24))));
    reconcile_reads(&mut m, vec![], vec![], vec![soon]);
    m.payments.expect_update().never();
    m.gateway.expect_retrieve().never();
    let report = m.build().reconcile.run_once().await.unwrap();
    assert_eq!(report.expiring, vec![PAYMENT]);
    assert!(report.changed.is_empty());
}

#[tokio::test]
async fn a_capture_stripe_reports_done_without_its_amount_captured_what_was_asked() {
    // A Stripe-compatible server that leaves out `amount_received` (and the charge).
    let mut m = Mocks::new();
    m.documents_readable();
    let crashed = pending_capture(&authorized(), 1800);
    reconcile_reads(&mut m, vec![], vec![crashed.clone()], vec![]);
    m.gateway
        .expect_retrieve()
        .times(1)
        .returning(|_, _| Ok(snapshot(IntentStatus::Succeeded)));
    m.payment_is(&crashed);
    m.payments
        .expect_update()
        .withf(|p, _, _| {
            is(p, PaymentStatus::Captured)
                && p.captured() == Some(eur(1800))
                && p.pending().is_none()
        })
        .times(1)
        .returning(|_, _, _| Ok(()));

    let report = m.build().reconcile.run_once().await.unwrap();

    assert_eq!(
        report.changed,
        vec![change(PaymentStatus::Authorized, PaymentStatus::Captured)]
    );
    assert!(report.attention.is_empty());
}

#[tokio::test]
async fn what_reconciliation_cannot_settle_is_shown_on_the_payment_never_silently_cleared() {
    let table: [(&str, Payment, Result<IntentSnapshot, GatewayError>); 3] = [
        (
            "a release in flight on an intent the gateway does not know",
            pending_release(&authorized()),
            Err(GatewayError::NotFound {
                message: "No such payment_intent".into(),
            }),
        ),
        (
            "captured at Stripe, amount unknown, no capture of ours in flight",
            pending_release(&authorized()),
            Ok(snapshot(IntentStatus::Succeeded)),
        ),
        (
            "a capture above the hold",
            pending_capture(&authorized(), 1800),
            Ok(IntentSnapshot {
                amount_received: eur(9900),
                ..succeeded_snapshot(9900)
            }),
        ),
    ];
    for (case, stuck, read) in table {
        let mut m = Mocks::new();
        reconcile_reads(&mut m, vec![], vec![stuck.clone()], vec![]);
        m.gateway
            .expect_retrieve()
            .times(1)
            .returning(move |_, _| read.clone());
        m.payment_is(&stuck);
        let status = stuck.status();
        m.payments
            .expect_update()
            .withf(move |p, _, log| {
                p.status() == status
                    && p.pending().is_none()
                    && p.attention().is_some()
                    && log.history[0].event == "needs_attention"
                    && log.audit[0].action == AuditAction::NeedsAttention
            })
            .times(1)
            .returning(|_, _, _| Ok(()));

        let report = m.build().reconcile.run_once().await.unwrap();

        assert_eq!(
            report
                .attention
                .iter()
                .map(|(id, _)| *id)
                .collect::<Vec<_>>(),
            vec![PAYMENT],
            "{case}"
        );
    }
}

#[tokio::test]
async fn a_capture_below_the_minimum_charge_is_refused_before_stripe_is_called() {
    let mut m = Mocks::new();
    m.consultation_is(&record(Some(authorized())));
    m.payment_is(&authorized());
    m.payments.expect_update().never();
    m.gateway.expect_capture().never();
    let err = m
        .build()
        .payments
        .validate(&dr(), CONSULTATION, &amount("0,40"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "capture_below_minimum");
    assert!(err.to_string().contains("release"), "{err}");
}

// ---- C8: the payments table -------------------------------------------------------------

fn empty_page() -> PaymentPage {
    PaymentPage {
        items: vec![],
        next: None,
        totals: vec![],
    }
}

fn filter(practitioner: Option<PractitionerId>) -> PaymentFilter {
    PaymentFilter {
        practitioner,
        ..PaymentFilter::default()
    }
}

/// (who, as whom, the practitioner asked for, the scope queried or the refusal)
type ScopeCase = (
    &'static str,
    Actor,
    Option<PractitionerId>,
    Result<Vec<PractitionerId>, &'static str>,
);

#[tokio::test]
async fn staff_see_the_payments_of_their_own_practitioners_only() {
    let several = || secretary_of(&[DR, THIRD_DR]);
    let table: Vec<ScopeCase> = vec![
        ("a practitioner", dr(), None, Ok(vec![DR])),
        (
            "a practitioner asking for themself",
            dr(),
            Some(DR),
            Ok(vec![DR]),
        ),
        (
            "a secretary of two",
            several(),
            None,
            Ok(vec![DR, THIRD_DR]),
        ),
        (
            "a secretary narrowing to one",
            several(),
            Some(THIRD_DR),
            Ok(vec![THIRD_DR]),
        ),
        (
            "a secretary asking for another",
            several(),
            Some(OTHER_DR),
            Err("not_found"),
        ),
        (
            "a practitioner asking for another",
            dr(),
            Some(OTHER_DR),
            Err("not_found"),
        ),
        ("a patient", patient(), None, Err("not_found")),
        (
            "nobody signed in",
            Actor::Anonymous,
            None,
            Err("unauthenticated"),
        ),
    ];
    for (who, actor, only, expected) in table {
        let mut m = Mocks::new();
        let scope = expected.clone().ok().map(PaymentScope::Practitioners);
        m.payments
            .expect_list()
            .withf(move |q| Some(&q.scope) == scope.as_ref())
            .times(usize::from(expected.is_ok()))
            .returning(|_| Ok(empty_page()));
        let result = m.build().reporting.payments(&actor, &filter(only)).await;
        match expected {
            Ok(_) => assert!(result.is_ok(), "{who}: {result:?}"),
            Err(c) => assert_eq!(code(result), c, "{who}"),
        }
    }
}

#[tokio::test]
async fn the_page_size_is_fifty_by_default_and_between_one_and_two_hundred() {
    let table = [
        (None, Ok(50)),
        (Some(1), Ok(1)),
        (Some(200), Ok(200)),
        (Some(0), Err("validation_failed")),
        (Some(201), Err("validation_failed")),
    ];
    for (limit, expected) in table {
        let mut m = Mocks::new();
        let sent = expected.ok();
        m.payments
            .expect_list()
            .withf(move |q| Some(q.limit) == sent)
            .times(usize::from(sent.is_some()))
            .returning(|_| Ok(empty_page()));
        let asked = PaymentFilter {
            limit,
            ..PaymentFilter::default()
        };
        let result = m.build().reporting.payments(&dr(), &asked).await;
        match expected {
            Ok(_) => assert!(result.is_ok(), "{limit:?}"),
            Err(c) => assert_eq!(code(result), c, "{limit:?}"),
        }
    }
}

#[tokio::test]
async fn a_date_range_must_go_forward() {
    let at = |h: i64| -> Option<DateTime<Utc>> { Some(now() + Duration::hours(h)) };
    let table = [
        (at(0), at(1), true),
        (at(0), None, true),
        (at(1), at(1), false),
        (at(2), at(1), false),
    ];
    for (from, to, accepted) in table {
        let mut m = Mocks::new();
        m.payments
            .expect_list()
            .withf(move |q| q.from == from && q.to == to && q.statuses == [PaymentStatus::Captured])
            .times(usize::from(accepted))
            .returning(|_| Ok(empty_page()));
        let asked = PaymentFilter {
            from,
            to,
            statuses: vec![PaymentStatus::Captured],
            ..PaymentFilter::default()
        };
        let result = m.build().reporting.payments(&dr(), &asked).await;
        if accepted {
            assert!(result.is_ok(), "{from:?}..{to:?}");
        } else {
            assert_eq!(code(result), "validation_failed", "{from:?}..{to:?}");
        }
    }
}

#[tokio::test]
async fn the_expiring_holds_warning_covers_the_actors_practitioners_and_the_warning_window() {
    let mut m = Mocks::new();
    m.payments
        .expect_holds_due()
        .withf(|scope, before| {
            *scope == PaymentScope::Practitioners(vec![DR, THIRD_DR])
                && *before == now() + expiring_within()
        })
        .times(1)
        .returning(|_, _| Ok(vec![row(authorized())]));
    let rows = m
        .build()
        .reporting
        .expiring_holds(&secretary_of(&[THIRD_DR, DR]))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
}

#[tokio::test]
async fn a_payment_and_its_history_are_shown_to_staff_of_its_practitioner_only() {
    let mut m = Mocks::new();
    m.payment_is(&captured(1800));
    m.payments
        .expect_history()
        .times(2)
        .returning(|_| Ok(vec![]));
    let billing = m.build();
    for who in [dr(), secretary()] {
        let (p, _) = billing.reporting.payment(&who, PAYMENT).await.unwrap();
        assert_eq!(p.id(), PAYMENT);
    }
    for (who, actor, expected) in outsiders() {
        assert_eq!(
            code(billing.reporting.payment(&actor, PAYMENT).await),
            expected,
            "{who}"
        );
    }
}

#[tokio::test]
async fn the_audit_trail_is_the_practitioners_alone_and_its_length_is_bounded() {
    let mut m = Mocks::new();
    m.audit
        .expect_recent()
        .withf(|p, limit| *p == DR && *limit == 500)
        .times(1)
        .returning(|_, _| Ok(vec![]));
    m.audit
        .expect_recent()
        .withf(|p, limit| *p == DR && *limit == 1)
        .times(1)
        .returning(|_, _| Ok(vec![]));
    let billing = m.build();
    assert!(
        billing
            .reporting
            .audit_trail(&dr(), DR, 10_000)
            .await
            .is_ok()
    );
    assert!(billing.reporting.audit_trail(&dr(), DR, 0).await.is_ok());
    assert_eq!(
        code(billing.reporting.audit_trail(&secretary(), DR, 10).await),
        "forbidden"
    );
    assert_eq!(
        code(billing.reporting.audit_trail(&other_dr(), DR, 10).await),
        "not_found"
    );
}

#[tokio::test]
async fn a_succeeded_webhook_settles_a_capture_left_pending_by_a_timeout() {
    let mut m = Mocks::new();
    m.documents_readable();
    claims(&mut m, false);
    let stuck = pending_capture(&authorized(), 1800);
    m.payment_is(&stuck);
    m.payments
        .expect_update()
        .withf(|p, _, _| is(p, PaymentStatus::Captured) && p.pending().is_none())
        .times(1)
        .returning(|_, _, _| Ok(()));
    marks_processed(&mut m, "applied (1 status change(s))");

    let outcome = m
        .build()
        .webhooks
        .apply(&intent_event(succeeded_snapshot(1800)))
        .await
        .unwrap();

    assert!(matches!(outcome, WebhookOutcome::Applied(changes) if changes.len() == 1));
}

#[tokio::test]
async fn the_observer_hears_each_committed_status_change() {
    use crate::payment::ledger::{PaymentObserver, StatusChange};
    use std::sync::Mutex;

    #[derive(Default)]
    struct Heard(Mutex<Vec<StatusChange>>);
    impl PaymentObserver for Heard {
        fn status_changed(&self, change: &StatusChange) {
            self.0.lock().unwrap().push(*change);
        }
    }

    let mut m = Mocks::new();
    m.documents_readable();
    claims(&mut m, false);
    m.payment_is(&incomplete());
    m.payments
        .expect_update()
        .times(1)
        .returning(|_, _, _| Ok(()));
    marks_processed(&mut m, "applied (1 status change(s))");
    let heard = Arc::new(Heard::default());
    let billing = m.build_with_observer(heard.clone());

    billing
        .webhooks
        .apply(&intent_event(hold_snapshot()))
        .await
        .unwrap();

    let changes = heard.0.lock().unwrap().clone();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].from, changes[0].to),
        (PaymentStatus::Incomplete, PaymentStatus::Authorized)
    );
}

#[tokio::test]
async fn a_capture_answer_without_the_captured_amount_records_the_amount_sent() {
    let mut m = Mocks::new();
    m.documents_readable();
    let held = authorized();
    m.consultations
        .expect_get()
        .returning(move |_| Ok(record(Some(authorized()))));
    m.payment_is(&held);
    m.payments.expect_update().returning(|_, _, _| Ok(()));
    let mut answer = succeeded_snapshot(1800);
    answer.amount_received = eur(0);
    m.gateway
        .expect_capture()
        .times(1)
        .returning(move |_, _, _, _| Ok(answer.clone()));

    let p = m
        .build()
        .payments
        .validate(
            &dr(),
            CONSULTATION,
            &AmountInput::parse("18", None).unwrap(),
        )
        .await
        .unwrap();

    assert_eq!(p.captured(), Some(eur(1800)));
}

/// The refund discriminator of the client key `k1` sent by `dr()`.
fn k1() -> String {
    format!(
        "k:{}",
        fingerprint(&format!("{}|k1", idempotency_scope(&dr())))
    )
}

#[tokio::test]
async fn the_sandbox_clock_moves_in_hourly_ticks_running_the_jobs_after_each() {
    let mut m = Mocks::new();
    let mut sandbox = MockSandboxControl::new();
    let mut seq = Sequence::new();
    // 3 h and 1 s: three whole hours, then the last second.
    for secs in [3600, 3600, 3600, 1] {
        sandbox
            .expect_advance_clock()
            .withf(move |by| by.num_seconds() == secs)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| {
                Ok(crate::gateway::SandboxAdvance {
                    now: now(),
                    events: vec![],
                })
            });
    }
    m.sandbox = Some(sandbox);
    // Each tick is one whole pass of the jobs: holds to place and to renew, lapsed
    // holds, transient payments, holds near their deadline.
    m.payments
        .expect_holds_to_place()
        .times(4)
        .returning(|_, _| Ok(vec![]));
    m.payments
        .expect_holds_due()
        .times(4 * 3)
        .returning(|_, _| Ok(vec![]));
    m.payments
        .expect_needing_reconciliation()
        .times(4)
        .returning(|_, _, _| Ok(vec![]));
    let billing = m.build();
    let sandbox = billing.sandbox.as_ref().expect("sandbox mode");

    let moved = sandbox.advance_clock(3 * 3600 + 1).await.unwrap();
    assert_eq!(moved.now, now());
    assert_eq!(moved.jobs, ReconcileReport::default());

    for refused in [0, -1, MAX_CLOCK_STEP_SECS + 1] {
        assert_eq!(
            code(sandbox.advance_clock(refused).await),
            "validation_failed",
            "{refused}"
        );
    }
}

#[tokio::test]
async fn a_lapsed_hold_is_judged_by_what_stripe_says_now() {
    // Stripe reports a later deadline than ours (ours was an estimate): kept.
    let mut m = Mocks::new();
    reconcile_reads(&mut m, vec![lapsed()], vec![], vec![]);
    let later = now() + Duration::days(1);
    m.gateway.expect_retrieve().times(1).returning(move |_, _| {
        Ok(IntentSnapshot {
            capture_before: Some(later),
            ..hold_snapshot()
        })
    });
    m.payment_is(&lapsed());
    m.payments
        .expect_update()
        .withf(move |p, _, _| is(p, PaymentStatus::Authorized) && p.capture_before() == Some(later))
        .times(1)
        .returning(|_, _, _| Ok(()));
    m.gateway.expect_release().never();
    let report = m.build().reconcile.run_once().await.unwrap();
    assert!(report.changed.is_empty(), "{report:?}");

    // Stripe still calls it held past its deadline: cancelled there, then expired.
    let mut m = Mocks::new();
    reconcile_reads(&mut m, vec![lapsed()], vec![], vec![]);
    let deadline = lapsed().capture_before();
    m.gateway.expect_retrieve().times(1).returning(move |_, _| {
        Ok(IntentSnapshot {
            capture_before: deadline,
            ..hold_snapshot()
        })
    });
    m.gateway
        .expect_release()
        .withf(|a, i, key| {
            *a == account() && *i == intent() && *key == IdempotencyKey::release(PAYMENT, Some(i))
        })
        .times(1)
        .returning(|_, _, _| Ok(canceled_snapshot("requested_by_customer")));
    m.payment_is(&lapsed());
    m.payments
        .expect_update()
        .withf(|p, _, _| is(p, PaymentStatus::Expired))
        .times(1)
        .returning(|_, _, _| Ok(()));
    let report = m.build().reconcile.run_once().await.unwrap();
    assert_eq!(
        report.changed,
        vec![change(PaymentStatus::Authorized, PaymentStatus::Expired)]
    );

    // A validation in flight: left to settle, never expired under it.
    let mut m = Mocks::new();
    let capturing = pending_capture(&lapsed(), 1800);
    reconcile_reads(&mut m, vec![capturing], vec![], vec![]);
    m.gateway.expect_retrieve().never();
    m.payments.expect_update().never();
    let report = m.build().reconcile.run_once().await.unwrap();
    assert!(
        report.changed.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );
}

#[tokio::test]
async fn a_charge_expired_event_about_an_earlier_hold_is_not_news() {
    // The payment was reopened after its hold lapsed: Stripe's late word about that
    // old hold must not end the new attempt.
    let reopened = step(
        &step(&lapsed(), PaymentEvent::Expired),
        PaymentEvent::Reopened,
    );
    assert_eq!(reopened.intent(), None);
    let m = ignoring(&reopened, IgnoreReason::OtherIntent);
    let event = webhook(
        "charge.expired",
        Some(account()),
        GatewayEvent::ChargeExpired {
            intent: Some(intent()),
            payment: Some(PAYMENT),
        },
    );
    let outcome = m.build().webhooks.apply(&event).await.unwrap();
    assert_eq!(outcome, WebhookOutcome::Ignored(IgnoreReason::OtherIntent));
}
