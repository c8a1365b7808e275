//! [`FakeGateway`]: a payment processor in memory that behaves like Stripe's manual
//! capture (an intent is held, captured for at most the hold, released, refunded) and
//! that a test scripts: the next call of an [`Op`] declines, times out, fails, or
//! succeeds at the processor while its answer is lost. It links practitioners too
//! ([`ConnectOnboarding`]) and signs the webhooks it sends ([`WebhookVerifier`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::fees::FeeSchedule;
use crate::gateway::{
    CheckoutMode, CheckoutRequest, CheckoutStart, CheckoutState, CheckoutStatus, ClientSecret,
    ConnectOnboarding, GatewayError, GatewayEvent, IntentSnapshot, IntentStatus, PaymentGateway,
    RefundOutcome, RefundStatus, SetupSnapshot, SetupStatus, WebhookError, WebhookEvent,
    WebhookVerifier,
};
use crate::ids::{
    CheckoutSessionId, ConnectedAccountId, EventId, PaymentId, PaymentIntentId, PractitionerId,
    RefundId, SetupIntentId,
};
use crate::money::Money;
use crate::payment::model::{Failure, IdempotencyKey, RefundLine};
use crate::practitioner::model::AccountSnapshot;
use crate::practitioner::service::OAuthCallback;
use crate::secrets::OAuthState;
use crate::system::Clock;

/// How long a card network lets a hold be captured (Stripe: 7 days for most cards).
pub const HOLD_LIFETIME_DAYS: i64 = 7;

/// A call of the [`PaymentGateway`] port, for scripting and for the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// [`PaymentGateway::create_hold`].
    CreateHold,
    /// [`PaymentGateway::start_checkout`].
    StartCheckout,
    /// [`PaymentGateway::expire_checkout`].
    ExpireCheckout,
    /// [`PaymentGateway::retrieve_checkout`].
    RetrieveCheckout,
    /// [`PaymentGateway::retrieve_setup`].
    RetrieveSetup,
    /// [`PaymentGateway::capture`].
    Capture,
    /// [`PaymentGateway::release`].
    Release,
    /// [`PaymentGateway::refund`].
    Refund,
    /// [`PaymentGateway::retrieve`].
    Retrieve,
}

/// What the next call of an [`Op`] does instead of succeeding
/// ([`FakeGateway::script`]). Scripts of one operation are used in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Script {
    /// The card is declined: [`GatewayError::Declined`]. On a hold the intent is left
    /// waiting for another card with this failure as its `last_error`, as Stripe does.
    Decline(Failure),
    /// No answer in time: [`GatewayError::Unavailable`], and nothing happened at the
    /// processor (a retry with the same key does it).
    Timeout,
    /// The processor did it, but the answer was lost on the way back: the caller gets
    /// [`GatewayError::Unavailable`]; a retry with the same key (or a retrieve) finds
    /// what was done.
    LostAnswer,
    /// The processor refuses with this error; nothing happened.
    Fail(GatewayError),
}

/// A call the fake gateway was given ([`FakeGateway::calls`]), in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayCall {
    /// Which operation.
    pub op: Op,
    /// The intent it was about, when it names one (or the one it created).
    pub intent: Option<PaymentIntentId>,
    /// The amount it asked for (hold, capture, refund).
    pub amount: Option<Money>,
    /// Its idempotency key, for writes.
    pub key: Option<IdempotencyKey>,
}

/// A webhook delivery, as the processor would POST it: the signature header and the
/// body to give [`WebhookVerifier::verify`] (the fake gateway verifies its own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The `Stripe-Signature` header's value.
    pub signature: String,
    /// The raw body.
    pub body: Vec<u8>,
}

/// A payment processor in memory, playing Stripe's manual capture, that a test scripts.
///
/// Writes are idempotent on their key like Stripe's: the same key with the same
/// parameters replays the first answer, with other parameters it is
/// [`GatewayError::IdempotencyConflict`]. Holds last [`HOLD_LIFETIME_DAYS`] on the
/// clock it is given; captures report Stripe's default fee (1.4 % + 0.25 €) as the real
/// one. The patient's side is played by [`FakeGateway::authorize`] and
/// [`FakeGateway::decline`], which return the webhook Stripe would send.
pub struct FakeGateway {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl std::fmt::Debug for FakeGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("FakeGateway")
            .field("intents", &state.intents.len())
            .field("calls", &state.calls.len())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    next: u64,
    intents: BTreeMap<PaymentIntentId, Intent>,
    sessions: BTreeMap<CheckoutSessionId, Session>,
    setups: BTreeMap<SetupIntentId, SetupSnapshot>,
    /// Answers by idempotency key, with the parameters they were for.
    answers: HashMap<IdempotencyKey, (String, Answer)>,
    scripts: HashMap<Op, VecDeque<Script>>,
    calls: Vec<GatewayCall>,
    events: HashMap<String, WebhookEvent>,
    /// OAuth codes not used yet, with the account each links.
    codes: HashMap<String, ConnectedAccountId>,
    /// Connected accounts, and whether the platform can still reach them.
    accounts: HashMap<ConnectedAccountId, bool>,
}

struct Intent {
    account: ConnectedAccountId,
    snapshot: IntentSnapshot,
    refunds: Vec<RefundLine>,
}

struct Session {
    intent: Option<PaymentIntentId>,
    setup: Option<SetupIntentId>,
    status: CheckoutStatus,
}

/// A write's answer, kept under its key to replay. (Sizes differ: a few answers of a
/// test double, not worth a box each.)
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
enum Answer {
    Intent(Result<IntentSnapshot, GatewayError>),
    Checkout(Result<CheckoutStart, GatewayError>),
    Refund(Result<RefundOutcome, GatewayError>),
    Done(Result<(), GatewayError>),
}

fn unavailable(why: &str) -> GatewayError {
    GatewayError::Unavailable {
        message: format!("fake gateway: {why}"),
    }
}

fn unexpected(message: String) -> GatewayError {
    GatewayError::UnexpectedState { message }
}

impl FakeGateway {
    /// A processor with nothing on it, whose holds last [`HOLD_LIFETIME_DAYS`] on
    /// `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        FakeGateway {
            clock,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next call of `op` does what `script` says instead of succeeding.
    pub fn script(&self, op: Op, script: Script) {
        self.lock().scripts.entry(op).or_default().push_back(script);
    }

    /// Every call given so far, oldest first.
    pub fn calls(&self) -> Vec<GatewayCall> {
        self.lock().calls.clone()
    }

    /// The intent as the processor has it now (what [`PaymentGateway::retrieve`]
    /// answers), without recording a call.
    pub fn intent(&self, id: &PaymentIntentId) -> Option<IntentSnapshot> {
        self.lock().intents.get(id).map(Intent::read)
    }

    /// The latest intent made for `payment` (from its metadata).
    pub fn intent_of(&self, payment: PaymentId) -> Option<PaymentIntentId> {
        let state = self.lock();
        state
            .intents
            .values()
            .filter(|i| i.snapshot.payment == Some(payment))
            .max_by_key(|i| i.number())
            .map(|i| i.snapshot.id.clone())
    }

    /// The patient authorises the intent on the hosted page: it is held for its
    /// amount until [`HOLD_LIFETIME_DAYS`] from now, its checkout session completes,
    /// and the `payment_intent.amount_capturable_updated` webhook is returned.
    pub fn authorize(&self, id: &PaymentIntentId) -> Result<Delivery, GatewayError> {
        let now = self.clock.now();
        let mut state = self.lock();
        let intent = state.intent_mut(id)?;
        if intent.snapshot.status != IntentStatus::RequiresPaymentMethod {
            return Err(unexpected(format!(
                "{id} is {:?}, not waiting for a card",
                intent.snapshot.status
            )));
        }
        intent.hold(now);
        let (account, snapshot) = (intent.account.clone(), intent.read());
        state.complete_sessions_of(id);
        Ok(state.event(
            now,
            "payment_intent.amount_capturable_updated",
            Some(account),
            GatewayEvent::PaymentIntent(snapshot),
        ))
    }

    /// The patient's card is declined on the hosted page: the intent keeps waiting
    /// for another card, and the `payment_intent.payment_failed` webhook is returned.
    pub fn decline(
        &self,
        id: &PaymentIntentId,
        failure: Failure,
    ) -> Result<Delivery, GatewayError> {
        let now = self.clock.now();
        let mut state = self.lock();
        let intent = state.intent_mut(id)?;
        if intent.snapshot.status != IntentStatus::RequiresPaymentMethod {
            return Err(unexpected(format!("{id} is not waiting for a card")));
        }
        intent.snapshot.last_error = Some(failure);
        let (account, snapshot) = (intent.account.clone(), intent.read());
        Ok(state.event(
            now,
            "payment_intent.payment_failed",
            Some(account),
            GatewayEvent::PaymentIntent(snapshot),
        ))
    }

    /// The practitioner consents on the page of `authorize_url` (what
    /// [`ConnectOnboarding::authorize_url`] gave): the callback Stripe would redirect
    /// to, with the `state` and a one-time code for a new account.
    pub fn consent(&self, authorize_url: &str) -> OAuthCallback {
        let state = authorize_url
            .split(['?', '&'])
            .find_map(|pair| pair.strip_prefix("state="))
            .map(str::to_owned);
        let mut s = self.lock();
        let n = s.number();
        let code = format!("ac_fake_{n}");
        if let Ok(account) = ConnectedAccountId::parse(&format!("acct_fake_{n}")) {
            s.codes.insert(code.clone(), account);
        }
        OAuthCallback {
            code: Some(code),
            state,
            error: None,
        }
    }

    /// Any webhook the processor could send, e.g. a dispute or an account update.
    pub fn webhook(
        &self,
        kind: &str,
        account: Option<ConnectedAccountId>,
        payload: GatewayEvent,
    ) -> Delivery {
        let now = self.clock.now();
        self.lock().event(now, kind, account, payload)
    }

    /// Runs a write: records it, follows a script if one is waiting, replays the
    /// answer of a key already used, and otherwise does `work` and keeps its answer.
    fn write(
        &self,
        call: GatewayCall,
        params: String,
        work: impl FnOnce(&mut State, DateTime<Utc>) -> Answer,
        decline: impl FnOnce(&mut State, Failure) -> Answer,
    ) -> Answer {
        let now = self.clock.now();
        let mut state = self.lock();
        let (op, key) = (call.op, call.key.clone());
        state.calls.push(call);
        if let Some(key) = &key
            && let Some((used_with, answer)) = state.answers.get(key)
        {
            return if *used_with == params {
                answer.clone()
            } else {
                Answer::Done(Err(GatewayError::IdempotencyConflict))
            };
        }
        let script = state.scripts.get_mut(&op).and_then(VecDeque::pop_front);
        let answer = match script {
            None => work(&mut state, now),
            Some(Script::Timeout) => return Answer::Done(Err(unavailable("timed out"))),
            Some(Script::Fail(e)) => return Answer::Done(Err(e)),
            Some(Script::Decline(failure)) => decline(&mut state, failure),
            Some(Script::LostAnswer) => {
                let done = work(&mut state, now);
                if let Some(key) = key {
                    state.answers.insert(key, (params, done));
                }
                return Answer::Done(Err(unavailable("the answer was lost")));
            }
        };
        if let Some(key) = key {
            state.answers.insert(key, (params, answer.clone()));
        }
        answer
    }

    /// Runs a read: records it and follows a script if one is waiting.
    fn read<T>(
        &self,
        call: GatewayCall,
        work: impl FnOnce(&mut State) -> Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        let mut state = self.lock();
        let op = call.op;
        state.calls.push(call);
        match state.scripts.get_mut(&op).and_then(VecDeque::pop_front) {
            None => work(&mut state),
            Some(Script::Timeout) => Err(unavailable("timed out")),
            Some(Script::LostAnswer) => Err(unavailable("the answer was lost")),
            Some(Script::Fail(e)) => Err(e),
            Some(Script::Decline(failure)) => Err(GatewayError::Declined(failure)),
        }
    }
}

fn call(
    op: Op,
    intent: Option<&PaymentIntentId>,
    amount: Option<Money>,
    key: Option<&IdempotencyKey>,
) -> GatewayCall {
    GatewayCall {
        op,
        intent: intent.cloned(),
        amount,
        key: key.cloned(),
    }
}

impl Intent {
    fn number(&self) -> usize {
        self.snapshot
            .id
            .as_str()
            .rsplit('_')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn read(&self) -> IntentSnapshot {
        IntentSnapshot {
            refunds: Some(self.refunds.clone()),
            ..self.snapshot.clone()
        }
    }

    fn hold(&mut self, now: DateTime<Utc>) {
        let s = &mut self.snapshot;
        s.status = IntentStatus::RequiresCapture;
        s.amount_capturable = s.amount;
        s.capture_before = Some(now + Duration::days(HOLD_LIFETIME_DAYS));
        s.last_error = None;
    }

    /// Stripe's own state check: only a live hold can be captured or released.
    fn expect(&self, status: IntentStatus, doing: &str) -> Result<(), GatewayError> {
        if self.snapshot.status == status {
            Ok(())
        } else {
            Err(unexpected(format!(
                "cannot {doing} {}: it is {:?}",
                self.snapshot.id, self.snapshot.status
            )))
        }
    }
}

impl State {
    fn number(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn intent_mut(&mut self, id: &PaymentIntentId) -> Result<&mut Intent, GatewayError> {
        self.intents
            .get_mut(id)
            .ok_or_else(|| GatewayError::NotFound {
                message: format!("no such payment_intent: {id}"),
            })
    }

    fn new_intent(
        &mut self,
        account: &ConnectedAccountId,
        req: &crate::gateway::HoldRequest,
    ) -> Result<PaymentIntentId, GatewayError> {
        let n = self.number();
        let id = PaymentIntentId::parse(&format!("pi_fake_{n}"))
            .map_err(|e| unavailable(&e.to_string()))?;
        let zero = Money::zero(req.amount.currency());
        self.intents.insert(
            id.clone(),
            Intent {
                account: account.clone(),
                snapshot: IntentSnapshot {
                    id: id.clone(),
                    status: IntentStatus::RequiresPaymentMethod,
                    amount: req.amount,
                    amount_capturable: zero,
                    amount_received: zero,
                    amount_refunded: zero,
                    capture_before: None,
                    fee: None,
                    last_error: None,
                    cancellation_reason: None,
                    payment: Some(req.payment),
                    client_secret: Some(ClientSecret::new(format!("{id}_secret_fake"))),
                    refunds: None,
                    saved_card: req.off_session.clone(),
                },
                refunds: Vec::new(),
            },
        );
        Ok(id)
    }

    fn complete_sessions_of(&mut self, intent: &PaymentIntentId) {
        for session in self.sessions.values_mut() {
            if session.intent.as_ref() == Some(intent) && session.status == CheckoutStatus::Open {
                session.status = CheckoutStatus::Complete;
            }
        }
    }

    fn event(
        &mut self,
        created: DateTime<Utc>,
        kind: &str,
        account: Option<ConnectedAccountId>,
        payload: GatewayEvent,
    ) -> Delivery {
        let n = self.number();
        let id = format!("evt_fake_{n}");
        let event = WebhookEvent {
            id: EventId::parse(&id).unwrap_or_else(|_| unreachable!("a well-formed event id")),
            kind: kind.to_owned(),
            created,
            account,
            payload,
        };
        self.events.insert(id.clone(), event);
        Delivery {
            signature: format!("t={},v1=fake", created.timestamp()),
            body: id.into_bytes(),
        }
    }
}

#[async_trait]
impl PaymentGateway for FakeGateway {
    async fn create_hold(
        &self,
        req: &crate::gateway::HoldRequest,
    ) -> Result<IntentSnapshot, GatewayError> {
        let params = format!("{}|{}|{:?}", req.payment, req.amount, req.off_session);
        let answer = self.write(
            call(Op::CreateHold, None, Some(req.amount), Some(&req.key)),
            params,
            |state, now| {
                Answer::Intent(state.new_intent(&req.account, req).and_then(|id| {
                    let intent = state.intent_mut(&id)?;
                    if req.off_session.is_some() {
                        intent.hold(now);
                    }
                    Ok(intent.read())
                }))
            },
            |state, failure| {
                Answer::Intent(state.new_intent(&req.account, req).and_then(|id| {
                    state.intent_mut(&id)?.snapshot.last_error = Some(failure.clone());
                    Err(GatewayError::Declined(failure))
                }))
            },
        );
        match answer {
            Answer::Intent(result) => result,
            Answer::Done(result) => result.and(Err(unavailable("no intent"))),
            _ => Err(GatewayError::IdempotencyConflict),
        }
    }

    async fn start_checkout(&self, req: &CheckoutRequest) -> Result<CheckoutStart, GatewayError> {
        let params = format!(
            "{}|{}|{:?}|{:?}",
            req.hold.payment, req.hold.amount, req.mode, req.existing_intent
        );
        let answer = self.write(
            call(
                Op::StartCheckout,
                req.existing_intent.as_ref(),
                Some(req.hold.amount),
                Some(&req.hold.key),
            ),
            params,
            |state, now| {
                Answer::Checkout((|| {
                    let n = state.number();
                    let session = CheckoutSessionId::parse(&format!("cs_test_fake_{n}"))
                        .map_err(|e| unavailable(&e.to_string()))?;
                    let (intent, setup, secret) = match req.mode {
                        CheckoutMode::Hold => {
                            let id = match &req.existing_intent {
                                Some(id) if state.intents.contains_key(id) => id.clone(),
                                _ => state.new_intent(&req.hold.account, &req.hold)?,
                            };
                            let secret = state.intent_mut(&id)?.snapshot.client_secret.clone();
                            (Some(id), None, secret)
                        }
                        CheckoutMode::SaveCard => {
                            let id = SetupIntentId::parse(&format!("seti_fake_{n}"))
                                .map_err(|e| unavailable(&e.to_string()))?;
                            state.setups.insert(
                                id.clone(),
                                SetupSnapshot {
                                    id: id.clone(),
                                    status: SetupStatus::RequiresPaymentMethod,
                                    saved_card: None,
                                    last_error: None,
                                    payment: Some(req.hold.payment),
                                },
                            );
                            let secret = ClientSecret::new(format!("{id}_secret_fake"));
                            (None, Some(id), Some(secret))
                        }
                    };
                    state.sessions.insert(
                        session.clone(),
                        Session {
                            intent: intent.clone(),
                            setup: setup.clone(),
                            status: CheckoutStatus::Open,
                        },
                    );
                    Ok(CheckoutStart {
                        intent,
                        redirect_url: Some(format!("https://fake-gateway.invalid/pay/{session}")),
                        session: Some(session),
                        setup,
                        client_secret: secret,
                        expires_at: Some(now + Duration::hours(24)),
                        mode: req.mode,
                    })
                })())
            },
            |_, failure| Answer::Checkout(Err(GatewayError::Declined(failure))),
        );
        match answer {
            Answer::Checkout(result) => result,
            Answer::Done(result) => result.and(Err(unavailable("no checkout"))),
            _ => Err(GatewayError::IdempotencyConflict),
        }
    }

    async fn expire_checkout(
        &self,
        _account: &ConnectedAccountId,
        session: &CheckoutSessionId,
        key: &IdempotencyKey,
    ) -> Result<(), GatewayError> {
        let answer =
            self.write(
                call(Op::ExpireCheckout, None, None, Some(key)),
                session.to_string(),
                |state, _| {
                    Answer::Done((|| {
                        let s = state.sessions.get_mut(session).ok_or_else(|| {
                            GatewayError::NotFound {
                                message: format!("no such checkout session: {session}"),
                            }
                        })?;
                        if s.status != CheckoutStatus::Open {
                            return Ok(());
                        }
                        s.status = CheckoutStatus::Expired;
                        if let Some(id) = s.intent.clone() {
                            let intent = state.intent_mut(&id)?;
                            if intent.snapshot.status == IntentStatus::RequiresPaymentMethod {
                                intent.snapshot.status = IntentStatus::Canceled;
                                intent.snapshot.cancellation_reason = Some("abandoned".into());
                            }
                        }
                        Ok(())
                    })())
                },
                |_, failure| Answer::Done(Err(GatewayError::Declined(failure))),
            );
        match answer {
            Answer::Done(result) => result,
            _ => Err(GatewayError::IdempotencyConflict),
        }
    }

    async fn retrieve_checkout(
        &self,
        _account: &ConnectedAccountId,
        session: &CheckoutSessionId,
    ) -> Result<CheckoutState, GatewayError> {
        self.read(call(Op::RetrieveCheckout, None, None, None), |state| {
            let s = state
                .sessions
                .get(session)
                .ok_or_else(|| GatewayError::NotFound {
                    message: format!("no such checkout session: {session}"),
                })?;
            Ok(CheckoutState {
                status: s.status,
                intent: s
                    .intent
                    .as_ref()
                    .and_then(|id| state.intents.get(id))
                    .map(Intent::read),
                setup: s
                    .setup
                    .as_ref()
                    .and_then(|id| state.setups.get(id))
                    .cloned(),
            })
        })
    }

    async fn retrieve_setup(
        &self,
        _account: &ConnectedAccountId,
        setup: &SetupIntentId,
    ) -> Result<SetupSnapshot, GatewayError> {
        self.read(call(Op::RetrieveSetup, None, None, None), |state| {
            state
                .setups
                .get(setup)
                .cloned()
                .ok_or_else(|| GatewayError::NotFound {
                    message: format!("no such setup_intent: {setup}"),
                })
        })
    }

    async fn capture(
        &self,
        _account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        amount: &Money,
        key: &IdempotencyKey,
    ) -> Result<IntentSnapshot, GatewayError> {
        let answer = self.write(
            call(Op::Capture, Some(intent), Some(*amount), Some(key)),
            format!("{intent}|{amount}"),
            |state, _| {
                Answer::Intent((|| {
                    let i = state.intent_mut(intent)?;
                    i.expect(IntentStatus::RequiresCapture, "capture")?;
                    if amount
                        .checked_cmp(&i.snapshot.amount_capturable)
                        .map_err(|e| unexpected(e.to_string()))?
                        .is_gt()
                    {
                        return Err(GatewayError::InvalidRequest {
                            code: Some("amount_too_large".into()),
                            param: Some("amount_to_capture".into()),
                            message: format!(
                                "{amount} is more than the {} held",
                                i.snapshot.amount_capturable
                            ),
                        });
                    }
                    let fee = FeeSchedule::default_for(amount.currency())
                        .fee(amount)
                        .map_err(|e| unexpected(e.to_string()))?;
                    let s = &mut i.snapshot;
                    s.status = IntentStatus::Succeeded;
                    s.amount_received = *amount;
                    s.amount_capturable = Money::zero(amount.currency());
                    s.fee = Some(fee);
                    Ok(i.read())
                })())
            },
            |_, failure| Answer::Intent(Err(GatewayError::Declined(failure))),
        );
        match answer {
            Answer::Intent(result) => result,
            Answer::Done(result) => result.and(Err(unavailable("no intent"))),
            _ => Err(GatewayError::IdempotencyConflict),
        }
    }

    async fn release(
        &self,
        _account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        key: &IdempotencyKey,
    ) -> Result<IntentSnapshot, GatewayError> {
        let answer = self.write(
            call(Op::Release, Some(intent), None, Some(key)),
            intent.to_string(),
            |state, _| {
                Answer::Intent((|| {
                    let i = state.intent_mut(intent)?;
                    if !matches!(
                        i.snapshot.status,
                        IntentStatus::RequiresCapture | IntentStatus::RequiresPaymentMethod
                    ) {
                        i.expect(IntentStatus::RequiresCapture, "release")?;
                    }
                    let s = &mut i.snapshot;
                    s.status = IntentStatus::Canceled;
                    s.amount_capturable = Money::zero(s.amount.currency());
                    s.cancellation_reason = Some("requested_by_customer".into());
                    Ok(i.read())
                })())
            },
            |_, failure| Answer::Intent(Err(GatewayError::Declined(failure))),
        );
        match answer {
            Answer::Intent(result) => result,
            Answer::Done(result) => result.and(Err(unavailable("no intent"))),
            _ => Err(GatewayError::IdempotencyConflict),
        }
    }

    async fn refund(
        &self,
        _account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        amount: &Money,
        key: &IdempotencyKey,
    ) -> Result<RefundOutcome, GatewayError> {
        let answer = self.write(
            call(Op::Refund, Some(intent), Some(*amount), Some(key)),
            format!("{intent}|{amount}"),
            |state, _| {
                Answer::Refund((|| {
                    let n = state.number();
                    let i = state.intent_mut(intent)?;
                    i.expect(IntentStatus::Succeeded, "refund")?;
                    let refundable = i
                        .snapshot
                        .amount_received
                        .checked_sub(&i.snapshot.amount_refunded)
                        .map_err(|e| unexpected(e.to_string()))?;
                    if !amount.is_positive()
                        || amount
                            .checked_cmp(&refundable)
                            .map_err(|e| unexpected(e.to_string()))?
                            .is_gt()
                    {
                        return Err(GatewayError::InvalidRequest {
                            code: Some("amount_too_large".into()),
                            param: Some("amount".into()),
                            message: format!("{amount} is more than the {refundable} refundable"),
                        });
                    }
                    let outcome = RefundOutcome {
                        id: RefundId::parse(&format!("re_fake_{n}"))
                            .map_err(|e| unavailable(&e.to_string()))?,
                        amount: *amount,
                        status: RefundStatus::Succeeded,
                    };
                    i.snapshot.amount_refunded = i
                        .snapshot
                        .amount_refunded
                        .checked_add(amount)
                        .map_err(|e| unexpected(e.to_string()))?;
                    i.refunds.push(outcome.line());
                    Ok(outcome)
                })())
            },
            |_, failure| Answer::Refund(Err(GatewayError::Declined(failure))),
        );
        match answer {
            Answer::Refund(result) => result,
            Answer::Done(result) => result.and(Err(unavailable("no refund"))),
            _ => Err(GatewayError::IdempotencyConflict),
        }
    }

    async fn retrieve(
        &self,
        _account: &ConnectedAccountId,
        intent: &PaymentIntentId,
    ) -> Result<IntentSnapshot, GatewayError> {
        self.read(call(Op::Retrieve, Some(intent), None, None), |state| {
            Ok(state.intent_mut(intent)?.read())
        })
    }
}

/// Connect as the fake plays it: the consent page is [`FakeGateway::consent`], every
/// code it gives links a new account that can take charges and payouts, a code is
/// used once.
#[async_trait]
impl ConnectOnboarding for FakeGateway {
    fn authorize_url(
        &self,
        state: &OAuthState,
        redirect_uri: &str,
    ) -> Result<String, GatewayError> {
        Ok(format!(
            "https://fake-gateway.invalid/oauth/authorize?state={}&redirect_uri={redirect_uri}",
            state.expose()
        ))
    }

    async fn exchange_code(&self, code: &str) -> Result<ConnectedAccountId, GatewayError> {
        let mut state = self.lock();
        let account = state
            .codes
            .remove(code)
            .ok_or_else(|| GatewayError::InvalidGrant {
                message: format!("unknown or used code {code}"),
            })?;
        state.accounts.insert(account.clone(), true);
        Ok(account)
    }

    async fn deauthorize(&self, account: &ConnectedAccountId) -> Result<(), GatewayError> {
        match self.lock().accounts.get_mut(account) {
            Some(connected @ true) => {
                *connected = false;
                Ok(())
            }
            _ => Err(GatewayError::AccountUnavailable {
                message: format!("{account} is not connected"),
            }),
        }
    }

    async fn retrieve_account(
        &self,
        account: &ConnectedAccountId,
    ) -> Result<AccountSnapshot, GatewayError> {
        if self.lock().accounts.get(account) != Some(&true) {
            return Err(GatewayError::AccountUnavailable {
                message: format!("{account} is not connected"),
            });
        }
        Ok(AccountSnapshot {
            id: account.clone(),
            charges_enabled: true,
            payouts_enabled: true,
            details_submitted: true,
            disabled_reason: None,
            currently_due: Vec::new(),
            payout_schedule: None,
            default_currency: Some(crate::money::Currency::Eur),
            country: Some("FR".into()),
        })
    }

    async fn create_account(
        &self,
        practitioner: PractitionerId,
        _key: &IdempotencyKey,
    ) -> Result<ConnectedAccountId, GatewayError> {
        let account =
            ConnectedAccountId::parse(&format!("acct_fake{}", practitioner.as_uuid().simple()))
                .map_err(|e| unavailable(&e.to_string()))?;
        self.lock().accounts.insert(account.clone(), true);
        Ok(account)
    }

    async fn account_link(
        &self,
        account: &ConnectedAccountId,
        _refresh_url: &str,
        return_url: &str,
    ) -> Result<String, GatewayError> {
        Ok(format!(
            "https://fake-gateway.invalid/onboarding/{account}?return={return_url}"
        ))
    }
}

impl WebhookVerifier for FakeGateway {
    fn verify(
        &self,
        signature_header: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookEvent, WebhookError> {
        let header = signature_header.ok_or(WebhookError::MissingSignature)?;
        if !header.ends_with(",v1=fake") {
            return Err(WebhookError::BadSignature);
        }
        let id = std::str::from_utf8(body)
            .map_err(|_| WebhookError::MalformedEvent("not UTF-8".into()))?;
        self.lock()
            .events
            .get(id)
            .cloned()
            .ok_or_else(|| WebhookError::MalformedEvent(format!("no event {id} was sent")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::HoldRequest;
    use crate::ids::ConsultationId;
    use crate::money::Currency;
    use crate::testing::{FixedClock, block_on, build};

    fn eur(minor: i64) -> Money {
        Money::from_minor(minor, Currency::Eur)
    }

    fn account() -> ConnectedAccountId {
        ConnectedAccountId::parse("acct_1Estival").unwrap()
    }

    fn hold_request(payment: u128, off_session: bool) -> HoldRequest {
        let payment = PaymentId::from_uuid(uuid::Uuid::from_u128(payment));
        HoldRequest {
            account: account(),
            payment,
            consultation: ConsultationId::from_uuid(uuid::Uuid::from_u128(10)),
            amount: eur(2_500),
            description: "Consultation".into(),
            statement_descriptor_suffix: None,
            off_session: off_session.then(build::saved_card),
            key: IdempotencyKey::derive(payment, "hold"),
        }
    }

    fn gateway() -> FakeGateway {
        FakeGateway::new(Arc::new(FixedClock::at(build::t0())))
    }

    /// An intent held for 25.00, through the patient's side.
    fn held(g: &FakeGateway) -> PaymentIntentId {
        let intent = block_on(g.create_hold(&hold_request(20, false))).unwrap();
        assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod);
        g.authorize(&intent.id).unwrap();
        intent.id
    }

    #[test]
    fn a_hold_is_captured_for_at_most_its_amount_with_stripes_fee() {
        let g = gateway();
        let id = held(&g);
        let snapshot = g.intent(&id).unwrap();
        assert_eq!(snapshot.status, IntentStatus::RequiresCapture);
        assert_eq!(
            snapshot.capture_before,
            Some(build::t0() + Duration::days(7))
        );
        let key = |n| IdempotencyKey::derive(PaymentId::from_uuid(uuid::Uuid::from_u128(n)), "c");
        let too_much = block_on(g.capture(&account(), &id, &eur(2_501), &key(1)));
        assert!(matches!(too_much, Err(GatewayError::InvalidRequest { .. })));
        let captured = block_on(g.capture(&account(), &id, &eur(1_800), &key(2))).unwrap();
        assert_eq!(captured.status, IntentStatus::Succeeded);
        assert_eq!(captured.amount_received, eur(1_800));
        assert_eq!(captured.fee, Some(eur(50)));
        // Captured once: a release or another capture is the intent's state's refusal.
        let again = block_on(g.capture(&account(), &id, &eur(1_800), &key(3)));
        assert!(matches!(again, Err(GatewayError::UnexpectedState { .. })));
        let release = block_on(g.release(&account(), &id, &key(4)));
        assert!(matches!(release, Err(GatewayError::UnexpectedState { .. })));
    }

    #[test]
    fn a_key_replays_its_answer_and_refuses_other_parameters() {
        let g = gateway();
        let id = held(&g);
        let key = IdempotencyKey::derive(PaymentId::from_uuid(uuid::Uuid::from_u128(20)), "c");
        let first = block_on(g.capture(&account(), &id, &eur(1_800), &key)).unwrap();
        let replay = block_on(g.capture(&account(), &id, &eur(1_800), &key)).unwrap();
        assert_eq!(first, replay);
        let other = block_on(g.capture(&account(), &id, &eur(1_700), &key));
        assert_eq!(other, Err(GatewayError::IdempotencyConflict));
    }

    #[test]
    fn a_timeout_does_nothing_and_a_lost_answer_does_it_once() {
        let g = gateway();
        let id = held(&g);
        let key = IdempotencyKey::derive(PaymentId::from_uuid(uuid::Uuid::from_u128(20)), "c");
        g.script(Op::Capture, Script::Timeout);
        g.script(Op::Capture, Script::LostAnswer);
        let timeout = block_on(g.capture(&account(), &id, &eur(1_800), &key));
        assert!(matches!(timeout, Err(GatewayError::Unavailable { .. })));
        assert_eq!(g.intent(&id).unwrap().status, IntentStatus::RequiresCapture);
        let lost = block_on(g.capture(&account(), &id, &eur(1_800), &key));
        assert!(matches!(lost, Err(GatewayError::Unavailable { .. })));
        assert_eq!(g.intent(&id).unwrap().status, IntentStatus::Succeeded);
        let retried = block_on(g.capture(&account(), &id, &eur(1_800), &key)).unwrap();
        assert_eq!(retried.amount_received, eur(1_800));
        let captures = g
            .calls()
            .into_iter()
            .filter(|c| c.op == Op::Capture)
            .count();
        assert_eq!(captures, 3);
    }

    #[test]
    fn a_declined_off_session_hold_leaves_the_intent_waiting_with_the_failure() {
        let g = gateway();
        g.script(Op::CreateHold, Script::Decline(build::declined()));
        let declined = block_on(g.create_hold(&hold_request(21, true)));
        assert_eq!(declined, Err(GatewayError::Declined(build::declined())));
        let payment = PaymentId::from_uuid(uuid::Uuid::from_u128(21));
        let intent = g.intent(&g.intent_of(payment).unwrap()).unwrap();
        assert_eq!(intent.status, IntentStatus::RequiresPaymentMethod);
        assert_eq!(intent.last_error, Some(build::declined()));
        // The next off-session hold is placed at once.
        let mut retry = hold_request(21, true);
        retry.key = IdempotencyKey::derive(payment, "hold-2");
        let held = block_on(g.create_hold(&retry)).unwrap();
        assert_eq!(held.status, IntentStatus::RequiresCapture);
        assert_eq!(g.intent_of(payment), Some(held.id));
    }

    #[test]
    fn refunds_add_up_to_the_capture_and_no_more() {
        let g = gateway();
        let id = held(&g);
        let key = |what: &str| {
            IdempotencyKey::derive(PaymentId::from_uuid(uuid::Uuid::from_u128(20)), what)
        };
        block_on(g.capture(&account(), &id, &eur(1_800), &key("c"))).unwrap();
        let first = block_on(g.refund(&account(), &id, &eur(1_000), &key("r1"))).unwrap();
        assert_eq!(first.status, RefundStatus::Succeeded);
        let too_much = block_on(g.refund(&account(), &id, &eur(801), &key("r2")));
        assert!(matches!(too_much, Err(GatewayError::InvalidRequest { .. })));
        block_on(g.refund(&account(), &id, &eur(800), &key("r3"))).unwrap();
        let read = block_on(g.retrieve(&account(), &id)).unwrap();
        assert_eq!(read.amount_refunded, eur(1_800));
        assert_eq!(read.refunds.map(|r| r.len()), Some(2));
    }

    #[test]
    fn webhooks_verify_only_as_sent() {
        let g = gateway();
        let intent = block_on(g.create_hold(&hold_request(20, false))).unwrap();
        let delivery = g.authorize(&intent.id).unwrap();
        let event = g.verify(Some(&delivery.signature), &delivery.body).unwrap();
        assert_eq!(event.kind, "payment_intent.amount_capturable_updated");
        let GatewayEvent::PaymentIntent(snapshot) = event.payload else {
            panic!("an intent event");
        };
        assert_eq!(snapshot.status, IntentStatus::RequiresCapture);
        assert_eq!(
            g.verify(None, &delivery.body),
            Err(WebhookError::MissingSignature)
        );
        assert_eq!(
            g.verify(Some("t=1,v1=forged"), &delivery.body),
            Err(WebhookError::BadSignature)
        );
        assert!(matches!(
            g.verify(Some(&delivery.signature), b"evt_fake_999"),
            Err(WebhookError::MalformedEvent(_))
        ));
    }

    #[test]
    fn a_consent_code_links_one_account_once() {
        let g = gateway();
        let state = OAuthState::from_random("s0000000000000000000000000000000000000000001");
        let url = g
            .authorize_url(&state, "https://pay.example.org/cb")
            .unwrap();
        let callback = g.consent(&url);
        assert_eq!(callback.state.as_deref(), Some(state.expose()));
        let code = callback.code.unwrap();
        let account = block_on(g.exchange_code(&code)).unwrap();
        assert!(
            block_on(g.retrieve_account(&account))
                .unwrap()
                .charges_enabled
        );
        assert!(matches!(
            block_on(g.exchange_code(&code)),
            Err(GatewayError::InvalidGrant { .. })
        ));
        block_on(g.deauthorize(&account)).unwrap();
        assert!(matches!(
            block_on(g.retrieve_account(&account)),
            Err(GatewayError::AccountUnavailable { .. })
        ));
    }
}
