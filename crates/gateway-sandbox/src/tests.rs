use super::*;
use chrono::TimeZone;
use std::sync::atomic::{AtomicI64, Ordering};
use uuid::Uuid;

#[derive(Debug, Default)]
struct MovableClock(AtomicI64);

impl Clock for MovableClock {
    fn now(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap()
            + Duration::seconds(self.0.load(Ordering::SeqCst))
    }
}

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::Eur)
}

fn payment() -> PaymentId {
    PaymentId::from_uuid(Uuid::from_u128(7))
}

struct World {
    sandbox: Sandbox,
    clock: Arc<MovableClock>,
    account: ConnectedAccountId,
}

async fn world() -> World {
    let clock = Arc::new(MovableClock::default());
    let sandbox = Sandbox::new(clock.clone(), "http://127.0.0.1:8080/", FeePreset::Default);
    let code = sandbox.approve_connect("state").await.unwrap();
    let account = sandbox.exchange_code(&code).await.unwrap();
    World {
        sandbox,
        clock,
        account,
    }
}

fn checkout(account: &ConnectedAccountId, key: &str) -> CheckoutRequest {
    CheckoutRequest {
        hold: HoldRequest {
            account: account.clone(),
            payment: payment(),
            consultation: billing_core::ids::ConsultationId::from_uuid(Uuid::from_u128(8)),
            amount: eur(2500),
            description: "Téléconsultation".into(),
            key: IdempotencyKey::from_stored(key.into()),
        },
        success_url: "http://127.0.0.1:8080/pay/t?checkout=success".into(),
        cancel_url: "http://127.0.0.1:8080/pay/t?checkout=cancel".into(),
        existing_intent: None,
        customer_email: None,
    }
}

async fn held(w: &World) -> (CheckoutSessionId, PaymentIntentId) {
    let start = w
        .sandbox
        .start_checkout(&checkout(&w.account, "k1"))
        .await
        .unwrap();
    let session = start.session.unwrap();
    let outcome = w.sandbox.pay(&session, "pm_card_visa").await.unwrap();
    assert_eq!(
        outcome.next,
        SandboxNext::Return("http://127.0.0.1:8080/pay/t?checkout=success".into())
    );
    (session, start.intent.unwrap())
}

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::from_stored(s.into())
}

#[tokio::test]
async fn the_checkout_page_lives_under_the_public_url() {
    let w = world().await;
    let start = w
        .sandbox
        .start_checkout(&checkout(&w.account, "k1"))
        .await
        .unwrap();
    let session = start.session.unwrap();
    assert_eq!(
        start.redirect_url.as_deref(),
        Some(format!("http://127.0.0.1:8080/sandbox/checkout/{session}").as_str())
    );
    assert!(session.as_str().starts_with("cs_test_"));
    assert!(start.intent.unwrap().as_str().starts_with("pi_"));
    let page = w.sandbox.checkout(&session).await.unwrap();
    assert_eq!(
        (page.amount, page.status, page.payment),
        (eur(2500), CheckoutStatus::Open, Some(payment()))
    );
}

#[tokio::test]
async fn the_test_visa_places_a_hold_and_emits_the_webhook_event() {
    let w = world().await;
    let start = w
        .sandbox
        .start_checkout(&checkout(&w.account, "k1"))
        .await
        .unwrap();
    let outcome = w
        .sandbox
        .pay(start.session.as_ref().unwrap(), "4242 4242 4242 4242")
        .await
        .unwrap();
    assert_eq!(outcome.events.len(), 1);
    let event = &outcome.events[0];
    assert_eq!(event.kind, "payment_intent.amount_capturable_updated");
    assert_eq!(event.account.as_ref(), Some(&w.account));
    let GatewayEvent::PaymentIntent(s) = &event.payload else {
        panic!("an intent event")
    };
    assert_eq!(
        (s.status, s.amount_capturable, s.payment),
        (IntentStatus::RequiresCapture, eur(2500), Some(payment()))
    );
    assert_eq!(s.capture_before, Some(w.clock.now() + Duration::days(7)));
}

#[tokio::test]
async fn a_declined_card_fails_the_attempt_and_another_card_can_follow() {
    let w = world().await;
    let start = w
        .sandbox
        .start_checkout(&checkout(&w.account, "k1"))
        .await
        .unwrap();
    let session = start.session.unwrap();
    let outcome = w
        .sandbox
        .pay(&session, "pm_card_chargeDeclined")
        .await
        .unwrap();
    assert!(matches!(outcome.next, SandboxNext::TryAgain { .. }));
    let GatewayEvent::PaymentIntent(s) = &outcome.events[0].payload else {
        panic!()
    };
    assert_eq!(outcome.events[0].kind, "payment_intent.payment_failed");
    assert_eq!(
        s.last_error
            .as_ref()
            .and_then(|f| f.decline_code.as_deref()),
        Some("generic_decline")
    );
    let retry = w.sandbox.pay(&session, "pm_card_visa").await.unwrap();
    assert!(matches!(retry.next, SandboxNext::Return(_)));
}

#[tokio::test]
async fn three_d_secure_waits_for_the_patient_then_succeeds_or_fails() {
    let w = world().await;
    for (approve, expected) in [
        (true, IntentStatus::RequiresCapture),
        (false, IntentStatus::RequiresPaymentMethod),
    ] {
        let start = w
            .sandbox
            .start_checkout(&checkout(&w.account, &format!("k-{approve}")))
            .await
            .unwrap();
        let session = start.session.unwrap();
        let asked = w
            .sandbox
            .pay(&session, "pm_card_authenticationRequired")
            .await
            .unwrap();
        assert_eq!(
            (asked.next, asked.events.len()),
            (SandboxNext::Authenticate, 0)
        );
        assert!(
            w.sandbox
                .checkout(&session)
                .await
                .unwrap()
                .awaiting_authentication
        );
        let answered = w.sandbox.authenticate(&session, approve).await.unwrap();
        let GatewayEvent::PaymentIntent(s) = &answered.events[0].payload else {
            panic!()
        };
        assert_eq!(s.status, expected);
    }
}

#[tokio::test]
async fn a_partial_capture_releases_the_rest_and_reports_the_fee() {
    let w = world().await;
    let (_, intent) = held(&w).await;
    let s = w
        .sandbox
        .capture(&w.account, &intent, &eur(1800), &key("c1"))
        .await
        .unwrap();
    assert_eq!(
        (s.status, s.amount_received, s.amount_capturable),
        (IntentStatus::Succeeded, eur(1800), eur(0))
    );
    assert_eq!(s.fee, Some(eur(50)));
    // The same key answers the same; another capture is refused.
    assert_eq!(
        w.sandbox
            .capture(&w.account, &intent, &eur(1800), &key("c1"))
            .await
            .unwrap(),
        s
    );
    assert!(matches!(
        w.sandbox
            .capture(&w.account, &intent, &eur(1800), &key("c2"))
            .await,
        Err(GatewayError::UnexpectedState { .. })
    ));
}

#[tokio::test]
async fn capturing_above_the_hold_is_refused() {
    let w = world().await;
    let (_, intent) = held(&w).await;
    assert!(matches!(
        w.sandbox
            .capture(&w.account, &intent, &eur(2501), &key("c"))
            .await,
        Err(GatewayError::InvalidRequest { .. })
    ));
}

#[tokio::test]
async fn holds_lapse_after_seven_days_like_stripes() {
    let w = world().await;
    let (_, intent) = held(&w).await;
    w.clock
        .0
        .store(Duration::days(7).num_seconds(), Ordering::SeqCst);
    let s = w.sandbox.retrieve(&w.account, &intent).await.unwrap();
    assert_eq!(
        (s.status, s.cancellation_reason.as_deref()),
        (IntentStatus::Canceled, Some("automatic"))
    );
    assert!(matches!(
        w.sandbox
            .capture(&w.account, &intent, &eur(100), &key("late"))
            .await,
        Err(GatewayError::UnexpectedState { .. })
    ));
}

#[tokio::test]
async fn refunds_never_exceed_what_was_captured() {
    let w = world().await;
    let (_, intent) = held(&w).await;
    w.sandbox
        .capture(&w.account, &intent, &eur(1800), &key("c"))
        .await
        .unwrap();
    let r = w
        .sandbox
        .refund(&w.account, &intent, &eur(500), &key("r1"))
        .await
        .unwrap();
    assert_eq!((r.amount, r.status), (eur(500), RefundStatus::Succeeded));
    assert_eq!(
        w.sandbox
            .refund(&w.account, &intent, &eur(500), &key("r1"))
            .await
            .unwrap(),
        r,
        "replayed"
    );
    assert!(
        w.sandbox
            .refund(&w.account, &intent, &eur(1301), &key("r2"))
            .await
            .is_err()
    );
    w.sandbox
        .refund(&w.account, &intent, &eur(1300), &key("r3"))
        .await
        .unwrap();
    let s = w.sandbox.retrieve(&w.account, &intent).await.unwrap();
    assert_eq!(s.amount_refunded, eur(1800));
}

#[tokio::test]
async fn releasing_cancels_and_a_captured_intent_cannot_be_released() {
    let w = world().await;
    let (_, intent) = held(&w).await;
    let s = w
        .sandbox
        .release(&w.account, &intent, &key("rel"))
        .await
        .unwrap();
    assert_eq!(s.status, IntentStatus::Canceled);
    assert_eq!(
        s.cancellation_reason.as_deref(),
        Some("requested_by_customer")
    );
    let w2 = world().await;
    let (_, intent2) = held(&w2).await;
    w2.sandbox
        .capture(&w2.account, &intent2, &eur(100), &key("c"))
        .await
        .unwrap();
    assert!(matches!(
        w2.sandbox.release(&w2.account, &intent2, &key("rel")).await,
        Err(GatewayError::UnexpectedState { .. })
    ));
}

#[tokio::test]
async fn another_accounts_intent_does_not_exist() {
    let w = world().await;
    let (_, intent) = held(&w).await;
    let stranger = ConnectedAccountId::parse("acct_1Stranger").unwrap();
    assert!(matches!(
        w.sandbox.retrieve(&stranger, &intent).await,
        Err(GatewayError::NotFound { .. })
    ));
}

#[tokio::test]
async fn oauth_codes_are_single_use_and_deauthorisation_disconnects() {
    let w = world().await;
    let code = w.sandbox.approve_connect("s").await.unwrap();
    let account = w.sandbox.exchange_code(&code).await.unwrap();
    assert!(matches!(
        w.sandbox.exchange_code(&code).await,
        Err(GatewayError::InvalidGrant { .. })
    ));
    assert!(matches!(
        w.sandbox.exchange_code("ac_forged").await,
        Err(GatewayError::InvalidGrant { .. })
    ));
    assert!(
        w.sandbox
            .retrieve_account(&account)
            .await
            .unwrap()
            .charges_enabled
    );
    w.sandbox.deauthorize(&account).await.unwrap();
    assert!(matches!(
        w.sandbox.retrieve_account(&account).await,
        Err(GatewayError::AccountUnavailable { .. })
    ));
    assert!(matches!(
        w.sandbox.deauthorize(&account).await,
        Err(GatewayError::AccountUnavailable { .. })
    ));
}

#[tokio::test]
async fn the_authorize_url_carries_state_and_redirect_uri() {
    let w = world().await;
    let state = OAuthState::from_random(&"a".repeat(43));
    let url = w
        .sandbox
        .authorize_url(&state, "http://127.0.0.1:8080/connect/stripe/callback")
        .unwrap();
    assert!(url.starts_with("http://127.0.0.1:8080/sandbox/connect/authorize?response_type=code"));
    assert!(url.contains(&format!("state={}", "a".repeat(43))));
    assert!(
        url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fconnect%2Fstripe%2Fcallback")
    );
    assert!(url.contains("scope=read_write"));
}

#[tokio::test]
async fn an_unknown_payment_method_is_refused() {
    let w = world().await;
    let start = w
        .sandbox
        .start_checkout(&checkout(&w.account, "k"))
        .await
        .unwrap();
    assert!(matches!(
        w.sandbox
            .pay(start.session.as_ref().unwrap(), "pm_card_bogus")
            .await,
        Err(GatewayError::InvalidRequest { .. })
    ));
}
