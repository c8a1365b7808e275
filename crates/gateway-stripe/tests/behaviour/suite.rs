//! The gateway behaviours, written once and run against every [`Peer`]: the sandbox
//! and the Stripe adapter on localstripe. Where localstripe falls short of Stripe
//! (it does not report `amount_capturable`/`amount_received`, and accepts captures
//! after a cancel and refunds beyond the capture), the peer says so and those checks
//! run on the sandbox only.

use billing_core::gateway::{GatewayError, HoldRequest, IntentStatus, RefundStatus};
use billing_core::payment::model::{IdempotencyKey, PaymentEvent};

use crate::harness::eur;
use crate::peers::{Card, Peer, Saving};

fn capture_key(a: &crate::peers::Authorised, minor: i64) -> IdempotencyKey {
    IdempotencyKey::capture(a.hold.payment, &a.intent, &eur(minor)).unwrap()
}

pub async fn a_confirmed_hold_waits_for_capture_for_its_amount(peer: &dyn Peer) {
    let a = peer.authorise(eur(2500), Card::Good).await;
    let s = peer
        .gateway()
        .retrieve(&peer.account(), &a.intent)
        .await
        .unwrap();
    assert_eq!(s.id, a.intent);
    assert_eq!(s.status, IntentStatus::RequiresCapture, "{}", peer.name());
    assert_eq!(s.amount, eur(2500));
    assert_eq!(
        s.payment,
        Some(a.hold.payment),
        "our payment id travels in the metadata"
    );
    // The hold, after the card it saved for a renewal (where the peer saves cards).
    let events = s.events();
    assert!(
        matches!(events.last(), Some(PaymentEvent::HoldPlaced { amount, .. }) if *amount == eur(2500)),
        "{events:?}"
    );
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|e| matches!(e, PaymentEvent::CardSaved(_))),
        "{events:?}"
    );
    if peer.reports_amounts() {
        assert_eq!(s.amount_capturable, eur(2500));
        assert_eq!(s.amount_received, eur(0));
    }
}

pub async fn a_partial_capture_takes_only_that_amount(peer: &dyn Peer) {
    let a = peer.authorise(eur(2500), Card::Good).await;
    let s = peer
        .gateway()
        .capture(
            &peer.account(),
            &a.intent,
            &eur(1800),
            &capture_key(&a, 1800),
        )
        .await
        .unwrap();
    assert_eq!(s.status, IntentStatus::Succeeded, "{}", peer.name());
    assert_eq!(s.amount, eur(2500));
    if peer.reports_amounts() {
        assert_eq!(s.amount_received, eur(1800));
        assert_eq!(s.amount_capturable, eur(0));
        assert_eq!(
            s.amount_refunded,
            eur(0),
            "the released remainder is not a refund"
        );
    }
}

pub async fn retrieving_after_a_capture_tells_the_whole_story(peer: &dyn Peer) {
    let a = peer.authorise(eur(2500), Card::Good).await;
    peer.gateway()
        .capture(
            &peer.account(),
            &a.intent,
            &eur(2000),
            &capture_key(&a, 2000),
        )
        .await
        .unwrap();
    let s = peer
        .gateway()
        .retrieve(&peer.account(), &a.intent)
        .await
        .unwrap();
    assert_eq!(s.status, IntentStatus::Succeeded, "{}", peer.name());
    assert_eq!(s.payment, Some(a.hold.payment));
    assert!(
        s.fee.is_some(),
        "{}: the fee is read once captured",
        peer.name()
    );
    let events = s.events();
    assert!(
        matches!(events.first(), Some(PaymentEvent::HoldPlaced { .. })),
        "{events:?}"
    );
    if peer.reports_amounts() {
        assert_eq!(s.amount_received, eur(2000));
        assert!(events.contains(&PaymentEvent::Captured {
            amount: eur(2000),
            fee: s.fee.map(billing_core::fees::Fee::reported),
        }));
    } else {
        // A peer that does not say how much was captured claims no capture: never
        // "captured 0".
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, PaymentEvent::Captured { .. })),
            "{events:?}"
        );
    }
}

pub async fn capturing_more_than_the_hold_is_refused(peer: &dyn Peer) {
    let a = peer.authorise(eur(2500), Card::Good).await;
    let err = peer
        .gateway()
        .capture(
            &peer.account(),
            &a.intent,
            &eur(3000),
            &capture_key(&a, 3000),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, GatewayError::InvalidRequest { .. }),
        "{}: {err:?}",
        peer.name()
    );
    let s = peer
        .gateway()
        .retrieve(&peer.account(), &a.intent)
        .await
        .unwrap();
    assert_eq!(
        s.status,
        IntentStatus::RequiresCapture,
        "nothing was captured"
    );
}

pub async fn a_released_hold_is_canceled_and_cannot_be_captured(peer: &dyn Peer) {
    let a = peer.authorise(eur(2500), Card::Good).await;
    let s = peer
        .gateway()
        .release(
            &peer.account(),
            &a.intent,
            &IdempotencyKey::release(a.hold.payment, Some(&a.intent)),
        )
        .await
        .unwrap();
    assert_eq!(s.status, IntentStatus::Canceled, "{}", peer.name());
    assert_eq!(s.events(), vec![PaymentEvent::Released]);
    let again = peer
        .gateway()
        .retrieve(&peer.account(), &a.intent)
        .await
        .unwrap();
    assert_eq!(again.status, IntentStatus::Canceled);
    if peer.enforces_stripes_rules() {
        let err = peer
            .gateway()
            .capture(
                &peer.account(),
                &a.intent,
                &eur(1000),
                &capture_key(&a, 1000),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, GatewayError::UnexpectedState { .. }),
            "{err:?}"
        );
        let err = peer
            .gateway()
            .release(
                &peer.account(),
                &a.intent,
                &IdempotencyKey::derive(a.hold.payment, "release-2"),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, GatewayError::UnexpectedState { .. }),
            "{err:?}"
        );
    }
}

pub async fn refunds_are_bounded_by_what_was_captured(peer: &dyn Peer) {
    let a = peer.authorise(eur(2500), Card::Good).await;
    let (account, gw) = (peer.account(), peer.gateway());
    gw.capture(&account, &a.intent, &eur(2500), &capture_key(&a, 2500))
        .await
        .unwrap();

    let first = gw
        .refund(
            &account,
            &a.intent,
            &eur(1000),
            &IdempotencyKey::refund(a.hold.payment, "0"),
        )
        .await
        .unwrap();
    assert_eq!(first.amount, eur(1000), "{}", peer.name());
    assert_eq!(first.status, RefundStatus::Succeeded);
    let s = gw.retrieve(&account, &a.intent).await.unwrap();
    assert_eq!(
        s.amount_refunded,
        eur(1000),
        "{}: a partial refund",
        peer.name()
    );

    if peer.enforces_stripes_rules() {
        let err = gw
            .refund(
                &account,
                &a.intent,
                &eur(1600),
                &IdempotencyKey::refund(a.hold.payment, "1"),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, GatewayError::InvalidRequest { .. }),
            "{err:?}"
        );
    }
    let rest = gw
        .refund(
            &account,
            &a.intent,
            &eur(1500),
            &IdempotencyKey::refund(a.hold.payment, "2"),
        )
        .await
        .unwrap();
    assert_eq!(rest.amount, eur(1500));
    assert_ne!(rest.id, first.id);
    let s = gw.retrieve(&account, &a.intent).await.unwrap();
    assert_eq!(
        s.amount_refunded,
        eur(2500),
        "{}: refunded in full",
        peer.name()
    );
    // Each refund, by id: what the domain's refunded total is made of (in any order:
    // refunds made in the same second tie).
    let refunds = s
        .refunds
        .clone()
        .expect("a captured intent lists its refunds");
    let mut listed = refunds
        .iter()
        .map(|r| (r.id.clone(), r.amount, r.status))
        .collect::<Vec<_>>();
    listed.sort_by_key(|(_, amount, _)| amount.amount());
    assert_eq!(
        listed,
        vec![
            (first.id.clone(), eur(1000), RefundStatus::Succeeded),
            (rest.id.clone(), eur(1500), RefundStatus::Succeeded),
        ],
        "{}",
        peer.name()
    );
    assert!(s.events().contains(&PaymentEvent::RefundsReported(refunds)));
}

pub async fn an_uncaptured_hold_cannot_be_refunded(peer: &dyn Peer) {
    if !peer.enforces_stripes_rules() {
        return;
    }
    let a = peer.authorise(eur(2500), Card::Good).await;
    let err = peer
        .gateway()
        .refund(
            &peer.account(),
            &a.intent,
            &eur(500),
            &IdempotencyKey::refund(a.hold.payment, "0"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, GatewayError::UnexpectedState { .. }),
        "{err:?}"
    );
}

pub async fn a_declined_card_leaves_the_intent_waiting_for_another(peer: &dyn Peer) {
    let a = peer.authorise(eur(2500), Card::Declined).await;
    let s = peer
        .gateway()
        .retrieve(&peer.account(), &a.intent)
        .await
        .unwrap();
    assert_eq!(
        s.status,
        IntentStatus::RequiresPaymentMethod,
        "{}",
        peer.name()
    );
    let failure = s.last_error.clone().expect("the decline is reported");
    assert_eq!(
        failure.code.as_deref(),
        Some("card_declined"),
        "{}",
        peer.name()
    );
    assert!(!failure.message.is_empty());
    assert_eq!(s.events(), vec![PaymentEvent::AuthorizationFailed(failure)]);
    // Nothing is held, so there is nothing to capture.
    let err = peer
        .gateway()
        .capture(
            &peer.account(),
            &a.intent,
            &eur(2500),
            &capture_key(&a, 2500),
        )
        .await
        .unwrap_err();
    assert!(
        !matches!(err, GatewayError::Unavailable { .. }),
        "{}: {err:?}",
        peer.name()
    );
}

pub async fn a_card_asking_for_3ds_is_held_once_authenticated(peer: &dyn Peer) {
    let a = peer
        .authorise(eur(2500), Card::ThreeDSecure { pass: true })
        .await;
    let s = peer
        .gateway()
        .retrieve(&peer.account(), &a.intent)
        .await
        .unwrap();
    assert_eq!(s.status, IntentStatus::RequiresCapture, "{}", peer.name());
    assert_eq!(s.last_error, None);
}

pub async fn a_failed_3ds_is_a_failed_authorisation(peer: &dyn Peer) {
    let a = peer
        .authorise(eur(2500), Card::ThreeDSecure { pass: false })
        .await;
    let s = peer
        .gateway()
        .retrieve(&peer.account(), &a.intent)
        .await
        .unwrap();
    assert_eq!(
        s.status,
        IntentStatus::RequiresPaymentMethod,
        "{}",
        peer.name()
    );
    assert_eq!(
        s.last_error.and_then(|f| f.code).as_deref(),
        Some("payment_intent_authentication_failure"),
        "{}",
        peer.name()
    );
}

pub async fn an_unknown_intent_is_not_found(peer: &dyn Peer) {
    let unknown = billing_core::ids::PaymentIntentId::parse("pi_3DoesNotExist00000000").unwrap();
    let err = peer
        .gateway()
        .retrieve(&peer.account(), &unknown)
        .await
        .unwrap_err();
    assert!(
        matches!(err, GatewayError::NotFound { .. }),
        "{}: {err:?}",
        peer.name()
    );
}

pub async fn a_saved_card_is_held_off_session_as_the_card_allows(peer: &dyn Peer) {
    for (saving, expected) in [
        (Saving::Good, Ok(())),
        (Saving::DeclinesCharges, Err("card_declined")),
        (Saving::NeedsAuthentication, Err("authentication_required")),
    ] {
        let (hold, card) = peer.save_card(eur(2500), saving).await;
        let request = HoldRequest {
            key: IdempotencyKey::hold(hold.payment, &card.payment_method),
            off_session: Some(card),
            ..hold
        };
        let result = peer.gateway().create_hold(&request).await;
        match (expected, result) {
            (Ok(()), Ok(s)) => {
                assert_eq!(s.status, IntentStatus::RequiresCapture, "{}", peer.name());
                assert_eq!(s.amount, eur(2500));
                assert_eq!(s.payment, Some(request.payment));
                let read = peer
                    .gateway()
                    .retrieve(&peer.account(), &s.id)
                    .await
                    .unwrap();
                assert_eq!(read.status, IntentStatus::RequiresCapture);
            }
            (Err(code), Err(GatewayError::Declined(f))) => {
                assert_eq!(
                    f.code.as_deref(),
                    Some(code),
                    "{}: {saving:?}: {f:?}",
                    peer.name()
                );
            }
            (expected, got) => panic!("{}: {saving:?}: {expected:?}, got {got:?}", peer.name()),
        }
    }
}
