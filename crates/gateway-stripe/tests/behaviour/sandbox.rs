//! The sandbox's own behaviour beyond the shared suite: Stripe's test-mode rules that
//! need the clock (hold expiry, session expiry, code expiry), the card page and its
//! events, idempotency, fees, Connect.

use std::sync::Arc;

use billing_core::fees::{FeePreset, FeeSchedule};
use billing_core::gateway::{
    CheckoutMode, CheckoutStatus, ConnectOnboarding, GatewayError, GatewayEvent, IntentStatus,
    PaymentGateway, RefundStatus, SandboxControl, SandboxNext, WebhookError,
};
use billing_core::ids::{ConnectedAccountId, PractitionerId};
use billing_core::money::Currency;
use billing_core::payment::model::{DisputeStatus, IdempotencyKey, PaymentEvent};
use billing_core::secrets::OAuthState;
use billing_core::system::Clock;
use chrono::Duration;
use gateway_stripe::sandbox::TEST_CARDS;
use gateway_stripe::{SandboxConfig, SandboxGateway, sandbox_gateways, signature_header};

use crate::harness::{TestClock, checkout, eur, hold};
use crate::peers::{Card, Peer, SandboxPeer};

fn account() -> ConnectedAccountId {
    ConnectedAccountId::parse("acct_1SandboxSuite0001").unwrap()
}

#[tokio::test]
async fn a_hold_lapses_seven_days_after_authorisation_as_at_stripe() {
    let peer = SandboxPeer::new();
    let authorised_at = peer.clock.now();
    let a = peer.authorise(eur(2500), Card::Good).await;
    let s = peer.sandbox.retrieve(&account(), &a.intent).await.unwrap();
    assert_eq!(s.capture_before, Some(authorised_at + Duration::days(7)));

    peer.clock.advance(Duration::days(7) - Duration::seconds(1));
    let s = peer.sandbox.retrieve(&account(), &a.intent).await.unwrap();
    assert_eq!(
        s.status,
        IntentStatus::RequiresCapture,
        "still held one second before"
    );

    peer.clock.advance(Duration::seconds(1));
    let s = peer.sandbox.retrieve(&account(), &a.intent).await.unwrap();
    assert_eq!(s.status, IntentStatus::Canceled);
    assert_eq!(s.cancellation_reason.as_deref(), Some("automatic"));
    assert_eq!(s.amount_capturable, eur(0));
    assert_eq!(s.events(), vec![PaymentEvent::Expired]);

    let key = IdempotencyKey::capture(a.hold.payment, &a.intent, &eur(2500)).unwrap();
    let err = peer
        .sandbox
        .capture(&account(), &a.intent, &eur(2500), &key)
        .await
        .unwrap_err();
    assert!(
        matches!(err, GatewayError::UnexpectedState { .. }),
        "{err:?}"
    );
    let err = peer
        .sandbox
        .release(
            &account(),
            &a.intent,
            &IdempotencyKey::release(a.hold.payment, Some(&a.intent)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, GatewayError::UnexpectedState { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_hold_captured_in_time_does_not_lapse() {
    let peer = SandboxPeer::new();
    let a = peer.authorise(eur(2500), Card::Good).await;
    peer.clock.advance(Duration::days(6));
    let key = IdempotencyKey::capture(a.hold.payment, &a.intent, &eur(2500)).unwrap();
    peer.sandbox
        .capture(&account(), &a.intent, &eur(2500), &key)
        .await
        .unwrap();
    peer.clock.advance(Duration::days(30));
    let s = peer.sandbox.retrieve(&account(), &a.intent).await.unwrap();
    assert_eq!(s.status, IntentStatus::Succeeded);
}

#[tokio::test]
async fn the_fee_is_the_configured_schedules_once_captured() {
    for (config, expected) in [
        // 18.00 × 1.4 % = 0.252 → 0.25, + 0.25.
        (SandboxConfig::new("http://x"), eur(50)),
        // 18.00 × 1.5 % = 0.27, + 0.25.
        (
            SandboxConfig::new("http://x")
                .with_fee_schedule(FeePreset::Standard.schedule(Currency::Eur)),
            eur(52),
        ),
        // A schedule in another currency does not apply to euros.
        (
            SandboxConfig::new("http://x")
                .with_fee_schedule(FeeSchedule::default_for(Currency::Usd)),
            eur(50),
        ),
    ] {
        let clock = TestClock::new();
        let sandbox = Arc::new(SandboxGateway::new(clock.clone(), config));
        let peer = SandboxPeer {
            server: sandbox.clone(),
            sandbox,
            clock,
            store: None,
        };
        let a = peer.authorise(eur(2500), Card::Good).await;
        let s = peer.sandbox.retrieve(&account(), &a.intent).await.unwrap();
        assert_eq!(s.fee, None, "no fee before the capture");
        let key = IdempotencyKey::capture(a.hold.payment, &a.intent, &eur(1800)).unwrap();
        let s = peer
            .sandbox
            .capture(&account(), &a.intent, &eur(1800), &key)
            .await
            .unwrap();
        assert_eq!(s.fee, Some(expected));
        assert!(
            s.events()
                .contains(&PaymentEvent::FeeReported { fee: expected })
        );
    }
}

#[tokio::test]
async fn a_key_replays_its_first_answer_and_refuses_other_parameters() {
    let peer = SandboxPeer::new();
    let h = hold(&account(), eur(2500));
    let first = peer.sandbox.create_hold(&h).await.unwrap();
    let again = peer.sandbox.create_hold(&h).await.unwrap();
    assert_eq!(first, again);
    let other = billing_core::gateway::HoldRequest {
        amount: eur(3000),
        ..h.clone()
    };
    assert_eq!(
        peer.sandbox.create_hold(&other).await,
        Err(GatewayError::IdempotencyConflict)
    );

    let a = peer.authorise(eur(2500), Card::Good).await;
    let key = IdempotencyKey::capture(a.hold.payment, &a.intent, &eur(1000)).unwrap();
    let captured = peer
        .sandbox
        .capture(&account(), &a.intent, &eur(1000), &key)
        .await
        .unwrap();
    assert_eq!(
        peer.sandbox
            .capture(&account(), &a.intent, &eur(1000), &key)
            .await,
        Ok(captured),
        "a retried capture is answered, not refused"
    );
    assert_eq!(
        peer.sandbox
            .capture(&account(), &a.intent, &eur(1200), &key)
            .await,
        Err(GatewayError::IdempotencyConflict)
    );
    let refund_key = IdempotencyKey::refund(a.hold.payment, "0");
    let r1 = peer
        .sandbox
        .refund(&account(), &a.intent, &eur(400), &refund_key)
        .await
        .unwrap();
    let r2 = peer
        .sandbox
        .refund(&account(), &a.intent, &eur(400), &refund_key)
        .await
        .unwrap();
    assert_eq!(r1, r2);
    let s = peer.sandbox.retrieve(&account(), &a.intent).await.unwrap();
    assert_eq!(s.amount_refunded, eur(400), "refunded once");
}

#[tokio::test]
async fn ids_look_like_stripes_and_the_same_inputs_give_the_same_ids() {
    let run = || async {
        let sandbox = SandboxGateway::new(
            TestClock::new(),
            SandboxConfig::new("http://127.0.0.1:8080"),
        );
        let h = billing_core::gateway::HoldRequest {
            account: account(),
            payment: "0190b1a4-7c1e-7d3a-9f00-1234567890ab".parse().unwrap(),
            consultation: "0190b1a4-0000-7d3a-9f00-1234567890ab".parse().unwrap(),
            amount: eur(2500),
            description: String::new(),
            statement_descriptor_suffix: None,
            off_session: None,
            key: IdempotencyKey::checkout(
                "0190b1a4-7c1e-7d3a-9f00-1234567890ab".parse().unwrap(),
                1,
            ),
        };
        let start = sandbox.start_checkout(&checkout(h.clone())).await.unwrap();
        let session = start.session.unwrap();
        let out = sandbox.pay(&session, "pm_card_visa").await.unwrap();
        let GatewayEvent::PaymentIntent(s) = &out.events[0].payload else {
            panic!()
        };
        let key = IdempotencyKey::capture(h.payment, &s.id, &eur(2500)).unwrap();
        sandbox
            .capture(&account(), &s.id, &eur(2500), &key)
            .await
            .unwrap();
        let refund = sandbox
            .refund(
                &account(),
                &s.id,
                &eur(100),
                &IdempotencyKey::refund(h.payment, "0"),
            )
            .await
            .unwrap();
        (session, s.id.clone(), out.events[0].id.clone(), refund.id)
    };
    let (session, intent, event, refund) = run().await;
    assert!(session.as_str().starts_with("cs_test_"), "{session}");
    assert!(intent.as_str().starts_with("pi_"), "{intent}");
    assert!(event.as_str().starts_with("evt_"), "{event}");
    assert!(refund.as_str().starts_with("re_"), "{refund}");
    assert_eq!((session, intent, event, refund), run().await);
}

#[tokio::test]
async fn the_card_page_shows_the_hold_and_sends_the_browser_back_to_our_pages() {
    let peer = SandboxPeer::new();
    let mut h = hold(&account(), eur(2500));
    h.description = "Téléconsultation Dr Estival".into();
    let start = peer
        .sandbox
        .start_checkout(&checkout(h.clone()))
        .await
        .unwrap();
    let session = start.session.clone().unwrap();
    assert_eq!(
        start.redirect_url.as_deref(),
        Some(format!("http://127.0.0.1:8080/sandbox/checkout/{session}").as_str())
    );
    assert_eq!(
        start.expires_at,
        Some(peer.clock.now() + Duration::hours(24))
    );
    assert_eq!(start.client_secret, None);

    let page = peer.sandbox.checkout(&session).await.unwrap();
    assert_eq!(page.payment, Some(h.payment));
    assert_eq!(page.amount, eur(2500));
    assert_eq!(page.description, "Téléconsultation Dr Estival");
    assert_eq!(page.status, CheckoutStatus::Open);
    assert!(!page.awaiting_authentication);
    assert_eq!(
        page.cancel_url,
        "http://127.0.0.1:8080/pay/tok?checkout=cancel"
    );

    let out = peer
        .sandbox
        .pay(&session, "4242 4242 4242 4242")
        .await
        .unwrap();
    assert_eq!(
        out.next,
        SandboxNext::Return("http://127.0.0.1:8080/pay/tok?checkout=success".into())
    );
    assert_eq!(out.events.len(), 1);
    let event = &out.events[0];
    assert_eq!(event.kind, "payment_intent.amount_capturable_updated");
    assert_eq!(event.account, Some(account()));
    assert_eq!(event.created, peer.clock.now());
    let GatewayEvent::PaymentIntent(s) = &event.payload else {
        panic!("{:?}", event.payload)
    };
    assert_eq!(s.status, IntentStatus::RequiresCapture);
    assert_eq!(s.payment, Some(h.payment));
    assert_eq!(s.amount_capturable, eur(2500));

    assert_eq!(
        peer.sandbox.checkout(&session).await.unwrap().status,
        CheckoutStatus::Complete
    );
    let state = peer
        .sandbox
        .retrieve_checkout(&account(), &session)
        .await
        .unwrap();
    assert_eq!(state.status, CheckoutStatus::Complete);
    assert_eq!(state.intent.map(|i| i.id), Some(s.id.clone()));
    let err = peer
        .sandbox
        .pay(&session, "pm_card_visa")
        .await
        .unwrap_err();
    assert!(
        matches!(err, GatewayError::UnexpectedState { .. }),
        "a paid session is not paid twice"
    );
}

#[tokio::test]
async fn a_declined_card_can_be_followed_by_a_good_one_on_the_same_page() {
    let peer = SandboxPeer::new();
    let start = peer
        .sandbox
        .start_checkout(&checkout(hold(&account(), eur(2500))))
        .await
        .unwrap();
    let session = start.session.unwrap();

    let declined = peer
        .sandbox
        .pay(&session, "4000 0000 0000 0002")
        .await
        .unwrap();
    assert_eq!(
        declined.next,
        SandboxNext::TryAgain {
            message: "Your card was declined.".into()
        }
    );
    assert_eq!(declined.events[0].kind, "payment_intent.payment_failed");
    let GatewayEvent::PaymentIntent(failed) = &declined.events[0].payload else {
        panic!()
    };
    let failure = failed.last_error.clone().unwrap();
    assert_eq!(failure.code.as_deref(), Some("card_declined"));
    assert_eq!(failure.decline_code.as_deref(), Some("generic_decline"));
    assert_eq!(
        peer.sandbox.checkout(&session).await.unwrap().status,
        CheckoutStatus::Open
    );

    let paid = peer.sandbox.pay(&session, "pm_card_visa").await.unwrap();
    let GatewayEvent::PaymentIntent(held) = &paid.events[0].payload else {
        panic!()
    };
    assert_eq!(held.id, failed.id, "the same intent, another attempt");
    assert_eq!(held.status, IntentStatus::RequiresCapture);
    assert_eq!(held.last_error, None);
    assert_ne!(
        paid.events[0].id, declined.events[0].id,
        "each event has its own id"
    );
}

#[tokio::test]
async fn every_test_card_behaves_as_stripe_documents() {
    let peer = SandboxPeer::new();
    for card in TEST_CARDS {
        for pay_with in [card.payment_method, card.number] {
            let fresh = peer
                .sandbox
                .start_checkout(&checkout(hold(&account(), eur(2500))))
                .await
                .unwrap();
            let out = peer
                .sandbox
                .pay(fresh.session.as_ref().unwrap(), pay_with)
                .await
                .unwrap();
            let expected_next = match card.behaviour {
                gateway_stripe::sandbox::CardBehaviour::Succeeds => {
                    matches!(out.next, SandboxNext::Return(_))
                }
                gateway_stripe::sandbox::CardBehaviour::Declines { .. } => {
                    matches!(out.next, SandboxNext::TryAgain { .. })
                }
                gateway_stripe::sandbox::CardBehaviour::RequiresAuthentication => {
                    out.next == SandboxNext::Authenticate
                }
            };
            assert!(expected_next, "{pay_with}: {:?}", out.next);
        }
    }
}

#[tokio::test]
async fn three_d_secure_waits_on_the_page_then_holds_or_fails() {
    let peer = SandboxPeer::new();
    let start = peer
        .sandbox
        .start_checkout(&checkout(hold(&account(), eur(2500))))
        .await
        .unwrap();
    let session = start.session.unwrap();
    let err = peer.sandbox.authenticate(&session, true).await.unwrap_err();
    assert!(
        matches!(err, GatewayError::UnexpectedState { .. }),
        "nothing to authenticate yet"
    );

    let out = peer
        .sandbox
        .pay(&session, "pm_card_authenticationRequired")
        .await
        .unwrap();
    assert_eq!(out.next, SandboxNext::Authenticate);
    assert!(out.events.is_empty(), "nothing a webhook would say yet");
    assert!(
        peer.sandbox
            .checkout(&session)
            .await
            .unwrap()
            .awaiting_authentication
    );

    let failed = peer.sandbox.authenticate(&session, false).await.unwrap();
    assert!(matches!(failed.next, SandboxNext::TryAgain { .. }));
    assert_eq!(failed.events[0].kind, "payment_intent.payment_failed");
    assert!(
        !peer
            .sandbox
            .checkout(&session)
            .await
            .unwrap()
            .awaiting_authentication
    );

    peer.sandbox
        .pay(&session, "4000002760003184")
        .await
        .unwrap();
    let passed = peer.sandbox.authenticate(&session, true).await.unwrap();
    assert!(matches!(passed.next, SandboxNext::Return(_)));
    assert_eq!(
        passed.events[0].kind,
        "payment_intent.amount_capturable_updated"
    );
}

#[tokio::test]
async fn unknown_sessions_and_payment_methods_are_refused() {
    let peer = SandboxPeer::new();
    let unknown = "cs_test_unknown".parse().unwrap();
    assert!(matches!(
        peer.sandbox.checkout(&unknown).await,
        Err(GatewayError::NotFound { .. })
    ));
    assert!(matches!(
        peer.sandbox.pay(&unknown, "pm_card_visa").await,
        Err(GatewayError::NotFound { .. })
    ));
    let start = peer
        .sandbox
        .start_checkout(&checkout(hold(&account(), eur(2500))))
        .await
        .unwrap();
    let err = peer
        .sandbox
        .pay(start.session.as_ref().unwrap(), "pm_card_bitcoin")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GatewayError::InvalidRequest { param: Some(p), .. } if p == "payment_method"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_checkout_session_expires_after_a_day() {
    let peer = SandboxPeer::new();
    let start = peer
        .sandbox
        .start_checkout(&checkout(hold(&account(), eur(2500))))
        .await
        .unwrap();
    let session = start.session.unwrap();
    peer.clock.advance(Duration::hours(24));
    assert_eq!(
        peer.sandbox.checkout(&session).await.unwrap().status,
        CheckoutStatus::Expired
    );
    assert_eq!(
        peer.sandbox
            .retrieve_checkout(&account(), &session)
            .await
            .unwrap()
            .status,
        CheckoutStatus::Expired
    );
    assert!(matches!(
        peer.sandbox.pay(&session, "pm_card_visa").await,
        Err(GatewayError::UnexpectedState { .. })
    ));
}

#[tokio::test]
async fn a_new_checkout_after_a_decline_makes_its_own_intent_like_stripe_checkout() {
    let peer = SandboxPeer::new();
    let h = hold(&account(), eur(2500));
    let first = peer
        .sandbox
        .start_checkout(&checkout(h.clone()))
        .await
        .unwrap();
    let out = peer
        .sandbox
        .pay(first.session.as_ref().unwrap(), "pm_card_chargeDeclined")
        .await
        .unwrap();
    let GatewayEvent::PaymentIntent(failed) = &out.events[0].payload else {
        panic!()
    };

    let mut retry = checkout(billing_core::gateway::HoldRequest {
        key: IdempotencyKey::checkout(h.payment, 2),
        ..h
    });
    retry.existing_intent = Some(failed.id.clone());
    let second = peer.sandbox.start_checkout(&retry).await.unwrap();
    assert_eq!(second.intent, None, "made when the card is submitted");
    assert_ne!(second.session, first.session);
    let out = peer
        .sandbox
        .pay(second.session.as_ref().unwrap(), "pm_card_visa")
        .await
        .unwrap();
    let GatewayEvent::PaymentIntent(held) = &out.events[0].payload else {
        panic!()
    };
    assert_ne!(held.id, failed.id);
    assert_eq!(held.payment, failed.payment);
    assert_eq!(held.status, IntentStatus::RequiresCapture);
}

#[tokio::test]
async fn an_expired_checkout_cannot_be_paid_and_its_intent_is_cancelled() {
    let peer = SandboxPeer::new();
    let h = hold(&account(), eur(2500));
    let start = peer
        .sandbox
        .start_checkout(&checkout(h.clone()))
        .await
        .unwrap();
    let session = start.session.unwrap();
    let out = peer
        .sandbox
        .pay(&session, "pm_card_chargeDeclined")
        .await
        .unwrap();
    let GatewayEvent::PaymentIntent(declined) = &out.events[0].payload else {
        panic!()
    };
    let key = IdempotencyKey::derive(h.payment, "expire-checkout");
    peer.sandbox
        .expire_checkout(&account(), &session, &key)
        .await
        .unwrap();
    let state = peer
        .sandbox
        .retrieve_checkout(&account(), &session)
        .await
        .unwrap();
    assert_eq!(state.status, CheckoutStatus::Expired);
    assert_eq!(state.intent.unwrap().status, IntentStatus::Canceled);
    assert!(peer.sandbox.pay(&session, "pm_card_visa").await.is_err());
    let intent = peer
        .sandbox
        .retrieve(&account(), &declined.id)
        .await
        .unwrap();
    assert_eq!(intent.status, IntentStatus::Canceled);
    // Expiring it again is no error.
    peer.sandbox
        .expire_checkout(&account(), &session, &key)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_intent_exists_only_on_its_own_account() {
    let peer = SandboxPeer::new();
    let a = peer.authorise(eur(2500), Card::Good).await;
    let other = ConnectedAccountId::parse("acct_1SomeoneElse0000").unwrap();
    assert!(matches!(
        peer.sandbox.retrieve(&other, &a.intent).await,
        Err(GatewayError::NotFound { .. })
    ));
    let key = IdempotencyKey::capture(a.hold.payment, &a.intent, &eur(2500)).unwrap();
    assert!(matches!(
        peer.sandbox
            .capture(&other, &a.intent, &eur(2500), &key)
            .await,
        Err(GatewayError::NotFound { .. })
    ));
}

fn oauth_state(seed: char) -> OAuthState {
    OAuthState::from_random(&seed.to_string().repeat(43))
}

#[tokio::test]
async fn sandbox_oauth_mints_one_time_codes_for_a_deterministic_account() {
    let clock = TestClock::new();
    let sandbox = SandboxGateway::new(clock.clone(), SandboxConfig::new("http://127.0.0.1:8080/"));
    let state = oauth_state('a');
    assert_eq!(
        sandbox
            .authorize_url(&state, "http://127.0.0.1:8080/connect/stripe/callback")
            .unwrap(),
        format!(
            "http://127.0.0.1:8080/sandbox/connect/authorize?client_id=sandbox&state={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fconnect%2Fstripe%2Fcallback&response_type=code&scope=read_write",
            state.expose()
        )
    );

    let code = sandbox.approve_connect(state.expose()).await.unwrap();
    assert!(code.starts_with("ac_"), "{code}");
    let account = sandbox.exchange_code(&code).await.unwrap();
    assert!(account.as_str().starts_with("acct_"));
    assert!(
        matches!(
            sandbox.exchange_code(&code).await,
            Err(GatewayError::InvalidGrant { .. })
        ),
        "reused"
    );
    assert!(matches!(
        sandbox.exchange_code("ac_unknown").await,
        Err(GatewayError::InvalidGrant { .. })
    ));

    // The same consent elsewhere gives the same account; another consent another one.
    let elsewhere = SandboxGateway::new(clock.clone(), SandboxConfig::new("http://x"));
    let again = elsewhere.approve_connect(state.expose()).await.unwrap();
    assert_eq!(again, code, "codes are deterministic too");
    assert_eq!(elsewhere.exchange_code(&again).await.unwrap(), account);
    let second = sandbox.approve_connect(state.expose()).await.unwrap();
    assert_ne!(second, code, "a second approval mints a new code");
    let other = sandbox
        .approve_connect(oauth_state('b').expose())
        .await
        .unwrap();
    assert_ne!(sandbox.exchange_code(&other).await.unwrap(), account);

    // Codes expire after five minutes.
    let late = sandbox
        .approve_connect(oauth_state('c').expose())
        .await
        .unwrap();
    clock.advance(Duration::minutes(5));
    assert!(matches!(
        sandbox.exchange_code(&late).await,
        Err(GatewayError::InvalidGrant { .. })
    ));

    let snapshot = sandbox.retrieve_account(&account).await.unwrap();
    assert!(snapshot.charges_enabled && snapshot.payouts_enabled && snapshot.details_submitted);
    assert!(snapshot.payout_schedule.is_some());
}

#[tokio::test]
async fn a_deauthorised_sandbox_account_is_unreachable_until_relinked() {
    let peer = SandboxPeer::new();
    let a = peer.authorise(eur(2500), Card::Good).await;
    peer.sandbox.deauthorize(&account()).await.unwrap();
    assert!(matches!(
        peer.sandbox.deauthorize(&account()).await,
        Err(GatewayError::AccountUnavailable { .. })
    ));
    assert!(matches!(
        peer.sandbox.retrieve_account(&account()).await,
        Err(GatewayError::AccountUnavailable { .. })
    ));
    assert!(matches!(
        peer.sandbox.retrieve(&account(), &a.intent).await,
        Err(GatewayError::AccountUnavailable { .. })
    ));
    assert!(matches!(
        peer.sandbox.create_hold(&hold(&account(), eur(2500))).await,
        Err(GatewayError::AccountUnavailable { .. })
    ));
}

#[tokio::test]
async fn account_links_onboarding_completes_when_the_link_is_issued() {
    let sandbox = SandboxGateway::new(TestClock::new(), SandboxConfig::new("http://x"));
    let practitioner: PractitionerId = "0190b1a4-1111-7d3a-9f00-1234567890ab".parse().unwrap();
    let key = IdempotencyKey::for_practitioner(practitioner, "account", 1);
    let account = sandbox.create_account(practitioner, &key).await.unwrap();
    assert_eq!(
        sandbox.create_account(practitioner, &key).await.unwrap(),
        account,
        "idempotent"
    );
    let other_key = IdempotencyKey::for_practitioner(practitioner, "account", 2);
    assert_ne!(
        sandbox
            .create_account(practitioner, &other_key)
            .await
            .unwrap(),
        account
    );

    let before = sandbox.retrieve_account(&account).await.unwrap();
    assert!(!before.charges_enabled && !before.details_submitted);
    assert!(!before.currently_due.is_empty());
    let url = sandbox
        .account_link(
            &account,
            "http://x/dashboard?stripe=refresh",
            "http://x/dashboard?stripe=return",
        )
        .await
        .unwrap();
    assert_eq!(url, "http://x/dashboard?stripe=return");
    let after = sandbox.retrieve_account(&account).await.unwrap();
    assert!(after.charges_enabled && after.details_submitted && after.currently_due.is_empty());
}

#[tokio::test]
async fn sandbox_mode_wires_one_sandbox_and_a_verifier_for_the_configured_secret() {
    let clock = TestClock::new();
    let body = br#"{"id":"evt_1","object":"event","type":"ping","created":1,"data":{"object":{}}}"#;
    let now = clock.now().timestamp();
    let with_secret = sandbox_gateways(clock.clone(), "http://x", vec!["whsec_sandbox".into()]);
    assert!(with_secret.sandbox.is_some());
    let header = signature_header("whsec_sandbox", now, body);
    let mut body_at_now = String::from_utf8(body.to_vec()).unwrap();
    body_at_now = body_at_now.replace("\"created\":1", &format!("\"created\":{now}"));
    let header_now = signature_header("whsec_sandbox", now, body_at_now.as_bytes());
    assert!(
        with_secret
            .webhooks
            .verify(Some(&header_now), body_at_now.as_bytes())
            .is_ok()
    );
    assert_eq!(
        with_secret
            .webhooks
            .verify(Some(&header), b"tampered")
            .map(|_| ()),
        Err(WebhookError::BadSignature)
    );
    let without = sandbox_gateways(clock, "http://x", vec![]);
    assert_eq!(
        without.webhooks.verify(Some(&header), body).map(|_| ()),
        Err(WebhookError::NotConfigured)
    );

    // The payment, Connect and sandbox ports are one sandbox: a code minted by the
    // sandbox port is accepted by the Connect port.
    let code = with_secret
        .sandbox
        .as_ref()
        .unwrap()
        .approve_connect("state-1")
        .await
        .unwrap();
    assert!(with_secret.connect.exchange_code(&code).await.is_ok());
}

// ---- the test clock ------------------------------------------------------------------

/// The kinds of the events an advance of the clock by `by` returns.
async fn advance(peer: &SandboxPeer, by: Duration) -> Vec<billing_core::gateway::WebhookEvent> {
    peer.sandbox.advance_clock(by).await.unwrap().events
}

fn kinds(events: &[billing_core::gateway::WebhookEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

#[tokio::test]
async fn the_test_clock_moves_the_sandbox_and_tells_each_lapse_once() {
    let peer = SandboxPeer::new();
    let before = peer.sandbox.clock().now();
    let a = peer.authorise(eur(2500), Card::Good).await;
    let moved = peer.sandbox.advance_clock(Duration::days(6)).await.unwrap();
    assert!(moved.events.is_empty());
    assert!(moved.now >= before + Duration::days(6));
    assert!(
        peer.sandbox.clock().now() >= before + Duration::days(6),
        "the clock the server reads moved too"
    );
    let lapsed = advance(&peer, Duration::days(2)).await;
    assert_eq!(kinds(&lapsed), vec!["payment_intent.canceled"]);
    let GatewayEvent::PaymentIntent(s) = &lapsed[0].payload else {
        panic!("{:?}", lapsed[0].payload);
    };
    assert_eq!(s.id, a.intent);
    assert_eq!(s.events(), vec![PaymentEvent::Expired]);
    assert_eq!(
        lapsed[0].created,
        s.capture_before.unwrap(),
        "when it lapsed"
    );
    assert!(
        advance(&peer, Duration::days(1)).await.is_empty(),
        "told once"
    );
    // The clock never moves back.
    assert!(
        peer.sandbox
            .advance_clock(-Duration::days(1))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_unpaid_checkout_that_expires_cancels_its_intent() {
    let peer = SandboxPeer::new();
    let start = peer
        .sandbox
        .start_checkout(&checkout(hold(&account(), eur(2500))))
        .await
        .unwrap();
    let session = start.session.unwrap();
    peer.sandbox
        .pay(&session, "pm_card_chargeDeclined")
        .await
        .unwrap();
    let expired = advance(&peer, Duration::hours(25)).await;
    assert_eq!(kinds(&expired), vec!["payment_intent.canceled"]);
    let GatewayEvent::PaymentIntent(s) = &expired[0].payload else {
        panic!("{:?}", expired[0].payload);
    };
    assert_eq!(s.status, IntentStatus::Canceled);
    assert_ne!(s.cancellation_reason.as_deref(), Some("automatic"));
}

#[tokio::test]
async fn a_refund_of_the_refund_failing_card_fails_an_hour_later() {
    let peer = SandboxPeer::new();
    let start = peer
        .sandbox
        .start_checkout(&checkout(hold(&account(), eur(2500))))
        .await
        .unwrap();
    let out = peer
        .sandbox
        .pay(start.session.as_ref().unwrap(), "pm_card_refundFail")
        .await
        .unwrap();
    let GatewayEvent::PaymentIntent(held) = &out.events[0].payload else {
        panic!("{:?}", out.events);
    };
    let payment = held.payment.unwrap();
    peer.sandbox
        .capture(
            &account(),
            &held.id,
            &eur(1800),
            &IdempotencyKey::capture(payment, &held.id, &eur(1800)).unwrap(),
        )
        .await
        .unwrap();
    let refund = peer
        .sandbox
        .refund(
            &account(),
            &held.id,
            &eur(500),
            &IdempotencyKey::refund(payment, "0:500"),
        )
        .await
        .unwrap();
    assert_eq!(refund.status, RefundStatus::Succeeded, "at first");
    assert!(advance(&peer, Duration::minutes(59)).await.is_empty());
    let failed = advance(&peer, Duration::minutes(2)).await;
    assert_eq!(kinds(&failed), vec!["charge.refund.updated"]);
    assert!(matches!(
        &failed[0].payload,
        GatewayEvent::RefundsChanged { intent: Some(i), payment: Some(p) } if *i == held.id && *p == payment
    ));
    let read = peer.sandbox.retrieve(&account(), &held.id).await.unwrap();
    assert_eq!(
        read.amount_refunded,
        eur(0),
        "the money stays with the practitioner"
    );
    assert_eq!(
        read.refunds
            .unwrap()
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        vec![RefundStatus::Failed]
    );
}

#[tokio::test]
async fn a_disputed_charge_is_opened_a_minute_after_capture_and_lost_when_evidence_is_due() {
    let peer = SandboxPeer::new();
    let start = peer
        .sandbox
        .start_checkout(&checkout(hold(&account(), eur(2500))))
        .await
        .unwrap();
    let out = peer
        .sandbox
        .pay(start.session.as_ref().unwrap(), "pm_card_createDispute")
        .await
        .unwrap();
    let GatewayEvent::PaymentIntent(held) = &out.events[0].payload else {
        panic!("{:?}", out.events);
    };
    let payment = held.payment.unwrap();
    peer.sandbox
        .capture(
            &account(),
            &held.id,
            &eur(1800),
            &IdempotencyKey::capture(payment, &held.id, &eur(1800)).unwrap(),
        )
        .await
        .unwrap();
    let opened = advance(&peer, Duration::minutes(2)).await;
    assert_eq!(
        kinds(&opened),
        vec!["charge.dispute.created", "charge.dispute.funds_withdrawn"]
    );
    let disputes: Vec<_> = opened
        .iter()
        .map(|e| match &e.payload {
            GatewayEvent::Dispute { dispute, intent } => {
                assert_eq!(intent.as_ref(), Some(&held.id));
                dispute.clone()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(disputes[0].status, DisputeStatus::NeedsResponse);
    assert_eq!(disputes[0].transactions, 0);
    assert_eq!(
        (disputes[1].withdrawn, disputes[1].fee),
        (eur(1800), eur(1500))
    );
    // A disputed charge cannot be refunded.
    let refused = peer
        .sandbox
        .refund(
            &account(),
            &held.id,
            &eur(100),
            &IdempotencyKey::refund(payment, "0:100"),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, GatewayError::UnexpectedState { .. }));
    let closed = advance(&peer, Duration::days(8)).await;
    assert_eq!(kinds(&closed), vec!["charge.dispute.closed"]);
    let GatewayEvent::Dispute { dispute, .. } = &closed[0].payload else {
        panic!("{:?}", closed[0].payload);
    };
    assert_eq!(dispute.status, DisputeStatus::Lost);
}

#[tokio::test]
async fn every_test_card_saves_and_holds_off_session_as_stripe_documents() {
    use gateway_stripe::sandbox::CardBehaviour;
    let peer = SandboxPeer::new();
    for card in TEST_CARDS {
        let h = hold(&account(), eur(2500));
        let start = peer
            .sandbox
            .start_checkout(&billing_core::gateway::CheckoutRequest {
                mode: CheckoutMode::SaveCard,
                ..checkout(h.clone())
            })
            .await
            .unwrap();
        let session = start.session.unwrap();
        let page = peer.sandbox.checkout(&session).await.unwrap();
        assert_eq!(page.mode, CheckoutMode::SaveCard);
        let mut out = peer
            .sandbox
            .pay(&session, card.payment_method)
            .await
            .unwrap();
        if card.saving == CardBehaviour::RequiresAuthentication {
            assert_eq!(
                out.next,
                SandboxNext::Authenticate,
                "{}",
                card.payment_method
            );
            out = peer.sandbox.authenticate(&session, true).await.unwrap();
        }
        let saved = out.events.iter().find_map(|e| match &e.payload {
            GatewayEvent::SetupIntent(s) => Some(s.clone()),
            _ => None,
        });
        let Some(setup) = saved else {
            panic!("{}: no setup event: {:?}", card.payment_method, out.next);
        };
        // Read back as the event told it, on its account only.
        let read = peer
            .sandbox
            .retrieve_setup(&account(), &setup.id)
            .await
            .unwrap();
        assert_eq!(read, setup, "{}", card.payment_method);
        let elsewhere = ConnectedAccountId::parse("acct_1Elsewhere").unwrap();
        assert!(matches!(
            peer.sandbox.retrieve_setup(&elsewhere, &setup.id).await,
            Err(GatewayError::NotFound { .. } | GatewayError::AccountUnavailable { .. })
        ));
        let Some(saved_card) = setup.saved_card else {
            assert!(
                matches!(card.saving, CardBehaviour::Declines { .. }),
                "{}",
                card.payment_method
            );
            assert!(matches!(out.next, SandboxNext::TryAgain { .. }));
            continue;
        };
        let held = peer
            .sandbox
            .create_hold(&billing_core::gateway::HoldRequest {
                key: IdempotencyKey::hold(h.payment, &saved_card.payment_method),
                off_session: Some(saved_card),
                ..h
            })
            .await;
        match (card.off_session, held) {
            (CardBehaviour::Succeeds, Ok(s)) => {
                assert_eq!(
                    s.status,
                    IntentStatus::RequiresCapture,
                    "{}",
                    card.payment_method
                )
            }
            (CardBehaviour::Declines { code, .. }, Err(GatewayError::Declined(f))) => {
                assert_eq!(f.code.as_deref(), Some(code), "{}", card.payment_method)
            }
            (CardBehaviour::RequiresAuthentication, Err(GatewayError::Declined(f))) => assert_eq!(
                f.code.as_deref(),
                Some("authentication_required"),
                "{}",
                card.payment_method
            ),
            (expected, got) => panic!("{}: {expected:?}, got {got:?}", card.payment_method),
        }
    }
}

// ---- kept in a store -------------------------------------------------------------------

/// Another sandbox on `peer`'s store: a second server, or the same after a restart.
fn another(peer: &SandboxPeer) -> SandboxGateway {
    SandboxGateway::with_store(
        peer.clock.clone(),
        SandboxConfig::new("http://127.0.0.1:8080"),
        Arc::new(peer.store.clone().expect("a stored sandbox")),
    )
}

#[tokio::test]
async fn a_sandbox_kept_in_a_store_survives_a_restart() {
    let peer = SandboxPeer::stored();
    let a = peer.authorise(eur(2500), Card::Good).await;
    let key = IdempotencyKey::capture(a.hold.payment, &a.intent, &eur(2000)).unwrap();
    let first = peer
        .server
        .capture(&account(), &a.intent, &eur(2000), &key)
        .await
        .unwrap();

    let restarted = another(&peer);
    drop(peer.sandbox);
    drop(peer.server);
    let seen = restarted.retrieve(&account(), &a.intent).await.unwrap();
    assert_eq!(seen.status, IntentStatus::Succeeded);
    assert_eq!(seen.amount_received, eur(2000));
    assert_eq!(seen.fee, first.fee);
    // The stored answer replays; another amount under the key is still a conflict.
    assert_eq!(
        restarted
            .capture(&account(), &a.intent, &eur(2000), &key)
            .await
            .unwrap(),
        first
    );
    assert_eq!(
        restarted
            .capture(&account(), &a.intent, &eur(1000), &key)
            .await
            .unwrap_err(),
        GatewayError::IdempotencyConflict
    );
}

#[tokio::test]
async fn sandboxes_on_one_store_share_the_test_clock_and_tell_each_event_once() {
    let peer = SandboxPeer::stored();
    let a = peer.authorise(eur(2500), Card::Good).await;
    let before = peer.server.clock().now();
    let lapsed = peer
        .sandbox
        .advance_clock(Duration::days(8))
        .await
        .unwrap()
        .events;
    assert_eq!(kinds(&lapsed), vec!["payment_intent.canceled"]);
    assert!(
        peer.server.clock().now() < before + Duration::days(8),
        "not seen yet"
    );
    peer.server.refresh().await.unwrap();
    assert!(peer.server.clock().now() >= before + Duration::days(8));
    let s = peer.server.retrieve(&account(), &a.intent).await.unwrap();
    assert_eq!(s.status, IntentStatus::Canceled);
    assert!(
        peer.server
            .advance_clock(Duration::seconds(1))
            .await
            .unwrap()
            .events
            .is_empty(),
        "the other sandbox told the lapse already"
    );
    // A sandbox started now starts at the sandbox's time.
    let late = another(&peer);
    late.refresh().await.unwrap();
    assert!(late.clock().now() >= before + Duration::days(8));
}

#[tokio::test]
async fn a_write_the_store_refuses_is_unavailable_and_a_retry_with_its_key_settles_it() {
    use std::sync::atomic::Ordering;
    let peer = SandboxPeer::stored();
    let store = peer.store.clone().unwrap();
    let a = peer.authorise(eur(2500), Card::Good).await;
    let key = IdempotencyKey::capture(a.hold.payment, &a.intent, &eur(2500)).unwrap();

    store.failing.store(true, Ordering::SeqCst);
    let err = peer
        .server
        .capture(&account(), &a.intent, &eur(2500), &key)
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::Unavailable { .. }), "{err:?}");
    store.failing.store(false, Ordering::SeqCst);

    // Nothing was kept: the hold is still there, for this sandbox and the other.
    for sandbox in [&peer.server, &peer.sandbox] {
        let s = sandbox.retrieve(&account(), &a.intent).await.unwrap();
        assert_eq!(s.status, IntentStatus::RequiresCapture);
    }
    let captured = peer
        .server
        .capture(&account(), &a.intent, &eur(2500), &key)
        .await
        .unwrap();
    assert_eq!(captured.status, IntentStatus::Succeeded);
    let s = peer.sandbox.retrieve(&account(), &a.intent).await.unwrap();
    assert_eq!(s.amount_received, eur(2500));
}
