//! # gateway-sandbox
//!
//! ConsultPay's in-process stand-in for Stripe: the payment-gateway, Connect and
//! sandbox-page ports of `billing-core`, following Stripe's test-mode semantics, so
//! every flow of the product runs (and can be demonstrated) with no Stripe account.
//!
//! - Ids are shaped like Stripe's (`pi_…`, `cs_test_…`, `acct_…`, `re_…`, `evt_…`) and
//!   deterministic (a counter), so tests can reason about them.
//! - Holds expire 7 days after authorisation, by the injected clock: an expired intent
//!   reads as `canceled` with `cancellation_reason = automatic`, as at Stripe.
//! - Stripe's test payment methods: `pm_card_visa` (4242 4242 4242 4242) succeeds,
//!   `pm_card_chargeDeclined` (4000 0000 0000 0002) is declined,
//!   `pm_card_authenticationRequired` (4000 0027 6000 3184) needs a 3-D Secure step.
//! - Writes are idempotent on their key, as at Stripe: the same key answers the same.
//! - Captures report the fee of the configured schedule, like a balance transaction.
//! - Paying on the sandbox checkout page yields the events a webhook would carry.
//!
//! What it must never be: a production gateway. State lives in memory and does not
//! survive a restart (a hold placed before a restart cannot be captured after it; the
//! payment then expires at reconciliation). One process only.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use billing_core::fees::FeePreset;
use billing_core::gateway::{
    CheckoutRequest, CheckoutStart, CheckoutState, CheckoutStatus, ClientSecret, ConnectOnboarding,
    GatewayError, GatewayEvent, HoldRequest, IntentSnapshot, IntentStatus, PaymentGateway,
    RefundOutcome, RefundStatus, SandboxCheckout, SandboxControl, SandboxNext, SandboxOutcome,
    WebhookEvent,
};
use billing_core::ids::{
    CheckoutSessionId, ConnectedAccountId, EventId, PaymentId, PaymentIntentId, PractitionerId,
    RefundId,
};
use billing_core::money::{Currency, Money};
use billing_core::payment::model::{DEFAULT_HOLD_VALIDITY_DAYS, Failure, IdempotencyKey};
use billing_core::practitioner::model::{AccountSnapshot, PayoutInterval, PayoutSchedule};
use billing_core::secrets::OAuthState;
use billing_core::system::Clock;
use chrono::{DateTime, Duration, Utc};

/// Stripe's test payment methods and what they do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestCard {
    Succeeds,
    Declined,
    AuthenticationRequired,
}

impl TestCard {
    /// Recognises a test payment method id or card number.
    pub fn parse(payment_method: &str) -> Option<TestCard> {
        let compact: String = payment_method
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        match compact.as_str() {
            "pm_card_visa" | "pm_card_mastercard" | "4242424242424242" | "5555555555554444" => {
                Some(TestCard::Succeeds)
            }
            "pm_card_chargeDeclined" | "pm_card_visa_chargeDeclined" | "4000000000000002" => {
                Some(TestCard::Declined)
            }
            "pm_card_authenticationRequired" | "4000002760003184" | "4000002500003155" => {
                Some(TestCard::AuthenticationRequired)
            }
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
struct Intent {
    id: PaymentIntentId,
    account: ConnectedAccountId,
    amount: Money,
    status: IntentStatus,
    amount_capturable: Money,
    amount_received: Money,
    amount_refunded: Money,
    capture_before: Option<DateTime<Utc>>,
    last_error: Option<Failure>,
    cancellation_reason: Option<String>,
    payment: Option<PaymentId>,
    fee: Option<Money>,
    client_secret: String,
}

#[derive(Clone, Debug)]
struct Session {
    id: CheckoutSessionId,
    intent: PaymentIntentId,
    description: String,
    success_url: String,
    cancel_url: String,
    expires_at: DateTime<Utc>,
    complete: bool,
}

/// What an idempotency key answered the first time.
#[derive(Clone, Debug)]
enum Replay {
    Intent(IntentSnapshot),
    Checkout(CheckoutStart),
    Refund(RefundOutcome),
    Account(ConnectedAccountId),
}

#[derive(Debug, Default)]
struct State {
    seq: u64,
    intents: HashMap<PaymentIntentId, Intent>,
    sessions: HashMap<CheckoutSessionId, Session>,
    /// One-time OAuth codes and whether they were used.
    codes: HashMap<String, bool>,
    /// Accounts connected to the platform.
    connected: HashSet<ConnectedAccountId>,
    replays: HashMap<String, Replay>,
}

impl State {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// The sandbox gateway. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Sandbox {
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
    public_url: String,
    fees: FeePreset,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

fn id<T>(parse: impl Fn(&str) -> Result<T, billing_core::ids::InvalidId>, text: String) -> T {
    // Every id below is built from a fixed prefix and digits: always valid.
    #[allow(clippy::expect_used)]
    parse(&text).expect("sandbox ids are well-formed")
}

fn not_found(what: &str) -> GatewayError {
    GatewayError::NotFound {
        message: format!("No such {what}"),
    }
}

fn unexpected(intent: &Intent, action: &str) -> GatewayError {
    GatewayError::UnexpectedState {
        message: format!(
            "You cannot {action} this PaymentIntent because it has a status of {}.",
            status_name(intent.status)
        ),
    }
}

fn status_name(s: IntentStatus) -> &'static str {
    match s {
        IntentStatus::RequiresPaymentMethod => "requires_payment_method",
        IntentStatus::RequiresConfirmation => "requires_confirmation",
        IntentStatus::RequiresAction => "requires_action",
        IntentStatus::Processing => "processing",
        IntentStatus::RequiresCapture => "requires_capture",
        IntentStatus::Canceled => "canceled",
        IntentStatus::Succeeded => "succeeded",
    }
}

impl Sandbox {
    /// A sandbox whose hosted pages live under `public_url` and whose captures report
    /// the `fees` preset's fee.
    pub fn new(clock: Arc<dyn Clock>, public_url: &str, fees: FeePreset) -> Self {
        Sandbox {
            state: Arc::new(Mutex::new(State::default())),
            clock,
            public_url: public_url.trim_end_matches('/').to_owned(),
            fees,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave money half-moved here (every
        // mutation is a single assignment); keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Lapses a hold past its deadline, as Stripe does.
    fn age(&self, intent: &mut Intent) {
        if intent.status == IntentStatus::RequiresCapture
            && intent.capture_before.is_some_and(|d| d <= self.now())
        {
            intent.status = IntentStatus::Canceled;
            intent.cancellation_reason = Some("automatic".into());
            intent.amount_capturable = Money::zero(intent.amount.currency());
        }
    }

    fn snapshot(intent: &Intent) -> IntentSnapshot {
        IntentSnapshot {
            id: intent.id.clone(),
            status: intent.status,
            amount: intent.amount,
            amount_capturable: intent.amount_capturable,
            amount_received: intent.amount_received,
            amount_refunded: intent.amount_refunded,
            capture_before: intent.capture_before,
            fee: intent.fee,
            last_error: intent.last_error.clone(),
            cancellation_reason: intent.cancellation_reason.clone(),
            payment: intent.payment,
            client_secret: Some(ClientSecret::new(intent.client_secret.clone())),
        }
    }

    fn intent_mut<'a>(
        &self,
        state: &'a mut State,
        account: &ConnectedAccountId,
        id: &PaymentIntentId,
    ) -> Result<&'a mut Intent, GatewayError> {
        match state.intents.get_mut(id) {
            // An intent of another account does not exist for this one, as at Stripe.
            Some(intent) if intent.account == *account => {
                self.age(intent);
                Ok(intent)
            }
            _ => Err(not_found("payment_intent")),
        }
    }

    fn new_intent(&self, state: &mut State, req: &HoldRequest) -> Intent {
        let n = state.next();
        let zero = Money::zero(req.amount.currency());
        let intent = Intent {
            id: id(PaymentIntentId::parse, format!("pi_3Sbx{n:020}")),
            account: req.account.clone(),
            amount: req.amount,
            status: IntentStatus::RequiresPaymentMethod,
            amount_capturable: zero,
            amount_received: zero,
            amount_refunded: zero,
            capture_before: None,
            last_error: None,
            cancellation_reason: None,
            payment: Some(req.payment),
            fee: None,
            client_secret: format!("pi_3Sbx{n:020}_secret_sandbox{n}"),
        };
        state.intents.insert(intent.id.clone(), intent.clone());
        intent
    }

    fn event(&self, state: &mut State, kind: &str, intent: &Intent) -> WebhookEvent {
        let n = state.next();
        WebhookEvent {
            id: id(EventId::parse, format!("evt_1Sbx{n:020}")),
            kind: kind.to_owned(),
            created: self.now(),
            account: Some(intent.account.clone()),
            payload: GatewayEvent::PaymentIntent(Self::snapshot(intent)),
        }
    }

    fn authorise(&self, intent: &mut Intent) {
        let now = self.now();
        intent.status = IntentStatus::RequiresCapture;
        intent.amount_capturable = intent.amount;
        intent.capture_before = Some(now + Duration::days(DEFAULT_HOLD_VALIDITY_DAYS));
        intent.last_error = None;
    }

    fn decline(intent: &mut Intent, code: &str, decline_code: Option<&str>, message: &str) {
        intent.status = IntentStatus::RequiresPaymentMethod;
        intent.last_error = Some(Failure {
            code: Some(code.to_owned()),
            decline_code: decline_code.map(str::to_owned),
            message: message.to_owned(),
        });
    }

    fn account_for_code(code: &str) -> ConnectedAccountId {
        // Deterministic: the same code always names the same account.
        let digest: u64 = code.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        id(ConnectedAccountId::parse, format!("acct_1Sbx{digest:016x}"))
    }

    fn account_snapshot(account: &ConnectedAccountId) -> AccountSnapshot {
        AccountSnapshot {
            id: account.clone(),
            charges_enabled: true,
            payouts_enabled: true,
            details_submitted: true,
            disabled_reason: None,
            currently_due: vec![],
            payout_schedule: Some(PayoutSchedule {
                interval: PayoutInterval::Daily,
                delay_days: Some(7),
            }),
            default_currency: Some(Currency::Eur),
            country: Some("FR".into()),
        }
    }

    fn session_mut<'a>(
        state: &'a mut State,
        id: &CheckoutSessionId,
    ) -> Result<&'a mut Session, GatewayError> {
        state
            .sessions
            .get_mut(id)
            .ok_or_else(|| not_found("checkout.session"))
    }
}

#[async_trait]
impl PaymentGateway for Sandbox {
    async fn create_hold(&self, req: &HoldRequest) -> Result<IntentSnapshot, GatewayError> {
        let mut state = self.lock();
        if let Some(Replay::Intent(s)) = state.replays.get(req.key.as_str()) {
            return Ok(s.clone());
        }
        let intent = self.new_intent(&mut state, req);
        let snapshot = Self::snapshot(&intent);
        state.replays.insert(
            req.key.as_str().to_owned(),
            Replay::Intent(snapshot.clone()),
        );
        Ok(snapshot)
    }

    async fn start_checkout(&self, req: &CheckoutRequest) -> Result<CheckoutStart, GatewayError> {
        let mut state = self.lock();
        let key = req.hold.key.as_str().to_owned();
        if let Some(Replay::Checkout(start)) = state.replays.get(&key) {
            return Ok(start.clone());
        }
        if !state.connected.contains(&req.hold.account) {
            return Err(GatewayError::AccountUnavailable {
                message: "the account is not connected to the platform".into(),
            });
        }
        let reusable = req.existing_intent.as_ref().and_then(|i| {
            state
                .intents
                .get(i)
                .filter(|x| {
                    x.account == req.hold.account && x.status == IntentStatus::RequiresPaymentMethod
                })
                .map(|x| x.id.clone())
        });
        let intent = match reusable {
            Some(i) => i,
            None => self.new_intent(&mut state, &req.hold).id,
        };
        let n = state.next();
        let session = Session {
            id: id(CheckoutSessionId::parse, format!("cs_test_a1Sbx{n:020}")),
            intent: intent.clone(),
            description: req.hold.description.clone(),
            success_url: req.success_url.clone(),
            cancel_url: req.cancel_url.clone(),
            expires_at: self.now() + Duration::hours(24),
            complete: false,
        };
        let start = CheckoutStart {
            intent: Some(intent),
            session: Some(session.id.clone()),
            redirect_url: Some(format!(
                "{}/sandbox/checkout/{}",
                self.public_url, session.id
            )),
            client_secret: None,
            expires_at: Some(session.expires_at),
        };
        state.sessions.insert(session.id.clone(), session);
        state.replays.insert(key, Replay::Checkout(start.clone()));
        Ok(start)
    }

    async fn retrieve_checkout(
        &self,
        account: &ConnectedAccountId,
        session: &CheckoutSessionId,
    ) -> Result<CheckoutState, GatewayError> {
        let mut state = self.lock();
        let s = Self::session_mut(&mut state, session)?.clone();
        let intent = self.intent_mut(&mut state, account, &s.intent)?;
        let status = if s.complete {
            CheckoutStatus::Complete
        } else if s.expires_at <= self.now() {
            CheckoutStatus::Expired
        } else {
            CheckoutStatus::Open
        };
        Ok(CheckoutState {
            status,
            intent: Some(Self::snapshot(intent)),
        })
    }

    async fn capture(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        amount: &Money,
        key: &IdempotencyKey,
    ) -> Result<IntentSnapshot, GatewayError> {
        let mut state = self.lock();
        if let Some(Replay::Intent(s)) = state.replays.get(key.as_str()) {
            return Ok(s.clone());
        }
        let fees = self.fees;
        let i = self.intent_mut(&mut state, account, intent)?;
        if i.status != IntentStatus::RequiresCapture {
            return Err(unexpected(i, "capture"));
        }
        if !amount.is_positive() || amount.amount() > i.amount_capturable.amount() {
            return Err(GatewayError::InvalidRequest {
                code: Some("amount_too_large".into()),
                param: Some("amount_to_capture".into()),
                message:
                    "The amount to capture must be positive and at most the amount capturable."
                        .into(),
            });
        }
        let fee = fees.schedule(amount.currency()).fee(amount).map_err(|e| {
            GatewayError::InvalidRequest {
                code: None,
                param: Some("amount_to_capture".into()),
                message: e.to_string(),
            }
        })?;
        i.status = IntentStatus::Succeeded;
        i.amount_received = *amount;
        i.amount_capturable = Money::zero(amount.currency());
        i.fee = Some(fee);
        let snapshot = Self::snapshot(i);
        state
            .replays
            .insert(key.as_str().to_owned(), Replay::Intent(snapshot.clone()));
        Ok(snapshot)
    }

    async fn release(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        key: &IdempotencyKey,
    ) -> Result<IntentSnapshot, GatewayError> {
        let mut state = self.lock();
        if let Some(Replay::Intent(s)) = state.replays.get(key.as_str()) {
            return Ok(s.clone());
        }
        let i = self.intent_mut(&mut state, account, intent)?;
        if matches!(i.status, IntentStatus::Succeeded | IntentStatus::Canceled) {
            return Err(unexpected(i, "cancel"));
        }
        i.status = IntentStatus::Canceled;
        i.cancellation_reason = Some("requested_by_customer".into());
        i.amount_capturable = Money::zero(i.amount.currency());
        let snapshot = Self::snapshot(i);
        state
            .replays
            .insert(key.as_str().to_owned(), Replay::Intent(snapshot.clone()));
        Ok(snapshot)
    }

    async fn refund(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        amount: &Money,
        key: &IdempotencyKey,
    ) -> Result<RefundOutcome, GatewayError> {
        let mut state = self.lock();
        if let Some(Replay::Refund(r)) = state.replays.get(key.as_str()) {
            return Ok(r.clone());
        }
        let n = state.next();
        let i = self.intent_mut(&mut state, account, intent)?;
        if i.status != IntentStatus::Succeeded {
            return Err(unexpected(i, "refund"));
        }
        let refundable = i
            .amount_received
            .checked_sub(&i.amount_refunded)
            .map_err(|e| GatewayError::InvalidRequest {
                code: None,
                param: Some("amount".into()),
                message: e.to_string(),
            })?;
        if !amount.is_positive() || amount.amount() > refundable.amount() {
            return Err(GatewayError::InvalidRequest {
                code: Some("amount_too_large".into()),
                param: Some("amount".into()),
                message: format!(
                    "Refund amount ({amount}) is greater than the unrefunded amount ({refundable})."
                ),
            });
        }
        i.amount_refunded =
            i.amount_refunded
                .checked_add(amount)
                .map_err(|e| GatewayError::InvalidRequest {
                    code: None,
                    param: Some("amount".into()),
                    message: e.to_string(),
                })?;
        let outcome = RefundOutcome {
            id: id(RefundId::parse, format!("re_3Sbx{n:020}")),
            amount: *amount,
            status: RefundStatus::Succeeded,
        };
        state
            .replays
            .insert(key.as_str().to_owned(), Replay::Refund(outcome.clone()));
        Ok(outcome)
    }

    async fn retrieve(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
    ) -> Result<IntentSnapshot, GatewayError> {
        let mut state = self.lock();
        let i = self.intent_mut(&mut state, account, intent)?;
        Ok(Self::snapshot(i))
    }
}

fn query_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[async_trait]
impl ConnectOnboarding for Sandbox {
    fn authorize_url(
        &self,
        state: &OAuthState,
        redirect_uri: &str,
    ) -> Result<String, GatewayError> {
        Ok(format!(
            "{}/sandbox/connect/authorize?response_type=code&client_id=ca_sandbox&scope=read_write&state={}&redirect_uri={}",
            self.public_url,
            query_encode(state.expose()),
            query_encode(redirect_uri)
        ))
    }

    async fn exchange_code(&self, code: &str) -> Result<ConnectedAccountId, GatewayError> {
        let mut state = self.lock();
        match state.codes.get_mut(code) {
            Some(used) if !*used => {
                *used = true;
                let account = Self::account_for_code(code);
                state.connected.insert(account.clone());
                Ok(account)
            }
            _ => Err(GatewayError::InvalidGrant {
                message: format!("Authorization code does not exist: {code}"),
            }),
        }
    }

    async fn deauthorize(&self, account: &ConnectedAccountId) -> Result<(), GatewayError> {
        if self.lock().connected.remove(account) {
            Ok(())
        } else {
            Err(GatewayError::AccountUnavailable {
                message: "the account is not connected to the platform".into(),
            })
        }
    }

    async fn retrieve_account(
        &self,
        account: &ConnectedAccountId,
    ) -> Result<AccountSnapshot, GatewayError> {
        if self.lock().connected.contains(account) {
            Ok(Self::account_snapshot(account))
        } else {
            Err(GatewayError::AccountUnavailable {
                message: "the account is not connected to the platform".into(),
            })
        }
    }

    async fn create_account(
        &self,
        practitioner: PractitionerId,
        key: &IdempotencyKey,
    ) -> Result<ConnectedAccountId, GatewayError> {
        let mut state = self.lock();
        if let Some(Replay::Account(a)) = state.replays.get(key.as_str()) {
            return Ok(a.clone());
        }
        let account = Self::account_for_code(&format!("{practitioner}:{}", key.as_str()));
        state.connected.insert(account.clone());
        state
            .replays
            .insert(key.as_str().to_owned(), Replay::Account(account.clone()));
        Ok(account)
    }

    /// Onboarding is instant in the sandbox: the link leads straight back.
    async fn account_link(
        &self,
        account: &ConnectedAccountId,
        _refresh_url: &str,
        return_url: &str,
    ) -> Result<String, GatewayError> {
        if self.lock().connected.contains(account) {
            Ok(return_url.to_owned())
        } else {
            Err(GatewayError::AccountUnavailable {
                message: "the account is not connected to the platform".into(),
            })
        }
    }
}

#[async_trait]
impl SandboxControl for Sandbox {
    async fn checkout(&self, session: &CheckoutSessionId) -> Result<SandboxCheckout, GatewayError> {
        let mut state = self.lock();
        let s = Self::session_mut(&mut state, session)?.clone();
        let intent = state
            .intents
            .get_mut(&s.intent)
            .ok_or_else(|| not_found("payment_intent"))?;
        self.age(intent);
        let status = if s.complete {
            CheckoutStatus::Complete
        } else if s.expires_at <= self.now() {
            CheckoutStatus::Expired
        } else {
            CheckoutStatus::Open
        };
        Ok(SandboxCheckout {
            session: s.id,
            payment: intent.payment,
            amount: intent.amount,
            description: s.description,
            status,
            awaiting_authentication: intent.status == IntentStatus::RequiresAction,
            success_url: s.success_url,
            cancel_url: s.cancel_url,
        })
    }

    async fn pay(
        &self,
        session: &CheckoutSessionId,
        payment_method: &str,
    ) -> Result<SandboxOutcome, GatewayError> {
        let card = TestCard::parse(payment_method).ok_or_else(|| GatewayError::InvalidRequest {
            code: Some("resource_missing".into()),
            param: Some("payment_method".into()),
            message: format!(
                "No such PaymentMethod: '{}'",
                payment_method.chars().take(40).collect::<String>()
            ),
        })?;
        let mut state = self.lock();
        let s = Self::session_mut(&mut state, session)?.clone();
        if s.complete || s.expires_at <= self.now() {
            return Err(GatewayError::UnexpectedState {
                message: "This Checkout Session is no longer open.".into(),
            });
        }
        let intent_id = s.intent.clone();
        let mut intent = state
            .intents
            .get(&intent_id)
            .cloned()
            .ok_or_else(|| not_found("payment_intent"))?;
        if intent.status != IntentStatus::RequiresPaymentMethod {
            return Err(unexpected(&intent, "confirm"));
        }
        let (kind, next) = match card {
            TestCard::Succeeds => {
                self.authorise(&mut intent);
                (
                    Some("payment_intent.amount_capturable_updated"),
                    SandboxNext::Return(s.success_url.clone()),
                )
            }
            TestCard::Declined => {
                Self::decline(
                    &mut intent,
                    "card_declined",
                    Some("generic_decline"),
                    "Your card was declined.",
                );
                (
                    Some("payment_intent.payment_failed"),
                    SandboxNext::TryAgain {
                        message: "Your card was declined.".into(),
                    },
                )
            }
            TestCard::AuthenticationRequired => {
                intent.status = IntentStatus::RequiresAction;
                (None, SandboxNext::Authenticate)
            }
        };
        if card == TestCard::Succeeds
            && let Some(stored) = state.sessions.get_mut(session)
        {
            stored.complete = true;
        }
        state.intents.insert(intent_id, intent.clone());
        let events = kind
            .map(|k| vec![self.event(&mut state, k, &intent)])
            .unwrap_or_default();
        Ok(SandboxOutcome { events, next })
    }

    async fn authenticate(
        &self,
        session: &CheckoutSessionId,
        approve: bool,
    ) -> Result<SandboxOutcome, GatewayError> {
        let mut state = self.lock();
        let s = Self::session_mut(&mut state, session)?.clone();
        let mut intent = state
            .intents
            .get(&s.intent)
            .cloned()
            .ok_or_else(|| not_found("payment_intent"))?;
        if intent.status != IntentStatus::RequiresAction {
            return Err(unexpected(&intent, "authenticate"));
        }
        let (kind, next) = if approve {
            self.authorise(&mut intent);
            if let Some(stored) = state.sessions.get_mut(session) {
                stored.complete = true;
            }
            (
                "payment_intent.amount_capturable_updated",
                SandboxNext::Return(s.success_url.clone()),
            )
        } else {
            Self::decline(
                &mut intent,
                "payment_intent_authentication_failure",
                None,
                "The provided PaymentMethod has failed authentication.",
            );
            (
                "payment_intent.payment_failed",
                SandboxNext::TryAgain {
                    message: "Authentication failed.".into(),
                },
            )
        };
        state.intents.insert(s.intent.clone(), intent.clone());
        let event = self.event(&mut state, kind, &intent);
        Ok(SandboxOutcome {
            events: vec![event],
            next,
        })
    }

    async fn approve_connect(&self, _state: &str) -> Result<String, GatewayError> {
        let mut state = self.lock();
        let n = state.next();
        let code = format!("ac_Sbx{n:020}");
        state.codes.insert(code.clone(), false);
        Ok(code)
    }
}

#[cfg(test)]
mod tests;
