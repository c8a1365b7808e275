//! The sandbox gateway: the gateway ports in process, following Stripe's test-mode
//! semantics, so every flow of the product runs with no Stripe account.
//!
//! - **Ids** are shaped like Stripe's (`pi_…`, `cs_test_…`, `acct_…`, `re_…`, `evt_…`,
//!   `ac_…`) and deterministic: each is derived (SHA-256) from what makes the object
//!   unique — the connected account and idempotency key of the request that created
//!   it — so the same inputs give the same ids and ids never repeat across restarts.
//! - **Holds** lapse [`SandboxConfig::hold_validity`] (7 days, Stripe's rule for online
//!   card payments) after authorisation, by the clock port: a lapsed hold reads as
//!   `canceled` with `cancellation_reason = "automatic"`, as Stripe reports it, and
//!   can no longer be captured or released.
//! - **Test payment methods** are Stripe's ([`TEST_CARDS`]): `pm_card_visa` /
//!   4242 4242 4242 4242 succeed, `pm_card_chargeDeclined` / 4000 0000 0000 0002
//!   decline (`card_declined` / `generic_decline`), `pm_card_authenticationRequired`
//!   / 4000 0027 6000 3184 need a 3-D Secure step that [`SandboxControl::authenticate`]
//!   approves or fails.
//! - **Captures** may be partial (≤ the hold; the rest is released), **refunds**
//!   partial or full (never above what was captured), **releases** cancel. Once
//!   captured, Stripe's fee from the configured [`FeeSchedule`] is reported as a
//!   balance transaction would report it.
//! - **Idempotency** works like Stripe's: the same key with the same parameters
//!   replays the first answer, with other parameters it is
//!   [`GatewayError::IdempotencyConflict`].
//! - **Connect**: the OAuth consent page is `{public_url}/sandbox/connect/authorize`;
//!   [`SandboxControl::approve_connect`] mints a one-time code (valid 5 minutes) that
//!   [`ConnectOnboarding::exchange_code`] turns into an `acct_…` derived from the
//!   OAuth state. Accounts can take charges at once; an account created for Account
//!   Links becomes able to when its (instant) onboarding link is issued. A
//!   deauthorised account is unreachable, as at Stripe.
//! - **Checkout** sessions live 24 hours; their page is
//!   `{public_url}/sandbox/checkout/{cs_…}`. In `payment` mode paying holds the amount
//!   and saves the card for renewals; in `setup` mode it only saves the card. Paying
//!   returns the events a webhook would carry (`payment_intent.amount_capturable_updated`,
//!   `payment_intent.payment_failed`, `setup_intent.succeeded`, …) and where the browser
//!   goes next.
//! - **Saved cards** are held **off-session** as Stripe's test cards document:
//!   `pm_card_chargeCustomerFail` saves but declines every charge,
//!   `pm_card_authenticationRequired` needs authentication on every charge (so an
//!   off-session hold fails with `authentication_required`), while
//!   `pm_card_authenticationRequiredSetupForOffSession` authenticates once when saved.
//! - **After the capture**: `pm_card_refundFail`'s refunds succeed, then fail an hour
//!   later (`charge.refund.updated`); `pm_card_createDispute`'s charge is disputed a
//!   minute after its capture (funds and Stripe's 15.00 fee withdrawn), and the
//!   dispute is lost when its evidence is due a week later.
//! - **The test clock** ([`SandboxControl::advance_clock`]) moves the sandbox's time —
//!   the clock the whole server reads in sandbox mode — and returns, in order, the
//!   events that became due: holds lapsing (`payment_intent.canceled`, `automatic`),
//!   checkouts expiring with an unpaid intent (`payment_intent.canceled`), refunds
//!   failing, disputes opened and closed.
//!
//! **State.** [`SandboxGateway::new`] keeps its objects in memory, for as long as the
//! process lives. [`SandboxGateway::with_store`] (what the server uses) keeps them in a
//! [`SandboxStore`] — the server's database — so they survive a restart and every
//! server on that database works on one sandbox: each operation takes the store's
//! writer lock, loads what other servers wrote since it last looked, works on the
//! objects and stores those it changed (and the test clock's offset) as the next
//! version. Objects are JSON (billing-core's `serde` feature); a test card is stored
//! by its payment method id. A failed store answers
//! [`GatewayError::Unavailable`], like Stripe unreachable: a retry with the same key
//! settles it. Another server's move of the test clock is seen at the next operation,
//! or by [`SandboxControl::refresh`] (the server calls it every second).
//!
//! Webhooks: the sandbox delivers its events in process (through
//! [`SandboxOutcome::events`]), so it needs no webhook endpoint. The webhook verifier
//! of sandbox mode is the real [`StripeWebhookVerifier`](crate::StripeWebhookVerifier):
//! with `STRIPE_WEBHOOK_SECRET` set it accepts correctly signed deliveries (handy to
//! replay events by hand); without it, it answers `NotConfigured`.

mod table;

use std::sync::Arc;

use async_trait::async_trait;
use billing_core::fees::FeeSchedule;
use billing_core::gateway::{
    CheckoutMode, CheckoutRequest, CheckoutStart, CheckoutState, CheckoutStatus, ClientSecret,
    ConnectOnboarding, GatewayError, GatewayEvent, HoldRequest, IntentSnapshot, IntentStatus,
    PaymentGateway, RefundOutcome, RefundStatus, SandboxAdvance, SandboxCheckout, SandboxControl,
    SandboxHead, SandboxNext, SandboxOutcome, SandboxRow, SandboxStore, SetupSnapshot, SetupStatus,
    WebhookEvent,
};
use billing_core::ids::{
    CheckoutSessionId, ConnectedAccountId, ConsultationId, CustomerId, DisputeId, EventId,
    PaymentId, PaymentIntentId, PaymentMethodId, PractitionerId, RefundId, SetupIntentId,
};
use billing_core::money::{Currency, Money};
use billing_core::payment::model::{
    DEFAULT_HOLD_VALIDITY_DAYS, Dispute, DisputeStatus, Failure, IdempotencyKey, RefundLine,
    SavedCard,
};
use billing_core::practitioner::model::{AccountSnapshot, PayoutInterval, PayoutSchedule};
use billing_core::secrets::OAuthState;
use billing_core::system::{Clock, OffsetClock};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use self::table::Table;

/// What a Stripe test payment method does when charged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CardBehaviour {
    /// The authorisation succeeds.
    Succeeds,
    /// The issuer declines.
    Declines {
        code: &'static str,
        decline_code: &'static str,
        message: &'static str,
    },
    /// The issuer asks for 3-D Secure before deciding.
    RequiresAuthentication,
}

/// What happens to a card's charges after the capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aftermath {
    Nothing,
    /// Refunds succeed, then fail an hour later (`pm_card_refundFail`).
    RefundsFail,
    /// The charge is disputed as fraudulent a minute after its capture
    /// (`pm_card_createDispute`).
    Disputed,
}

/// One of Stripe's test payment methods, by id and card number, and what it does in
/// each of the ways ConsultPay uses a card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestCard {
    pub payment_method: &'static str,
    pub number: &'static str,
    /// Paid on the checkout page, the patient there.
    pub behaviour: CardBehaviour,
    /// Saved for later (Checkout in `setup` mode).
    pub saving: CardBehaviour,
    /// Held off-session with the saved card, the patient away: a card that asks for
    /// authentication fails with `authentication_required`.
    pub off_session: CardBehaviour,
    pub after: Aftermath,
}

/// A card that behaves the same way wherever it is used.
const fn card(payment_method: &'static str, number: &'static str, b: CardBehaviour) -> TestCard {
    TestCard {
        payment_method,
        number,
        behaviour: b,
        saving: b,
        off_session: b,
        after: Aftermath::Nothing,
    }
}

const GENERIC_DECLINE: CardBehaviour = CardBehaviour::Declines {
    code: "card_declined",
    decline_code: "generic_decline",
    message: "Your card was declined.",
};

/// Stripe's test payment methods the sandbox knows
/// (<https://docs.stripe.com/testing>).
pub const TEST_CARDS: &[TestCard] = &[
    card("pm_card_visa", "4242424242424242", CardBehaviour::Succeeds),
    card(
        "pm_card_mastercard",
        "5555555555554444",
        CardBehaviour::Succeeds,
    ),
    card("pm_card_amex", "378282246310005", CardBehaviour::Succeeds),
    card(
        "pm_card_chargeDeclined",
        "4000000000000002",
        GENERIC_DECLINE,
    ),
    card(
        "pm_card_chargeDeclinedInsufficientFunds",
        "4000000000009995",
        CardBehaviour::Declines {
            code: "card_declined",
            decline_code: "insufficient_funds",
            message: "Your card has insufficient funds.",
        },
    ),
    card(
        "pm_card_chargeDeclinedExpiredCard",
        "4000000000000069",
        CardBehaviour::Declines {
            code: "expired_card",
            decline_code: "expired_card",
            message: "Your card has expired.",
        },
    ),
    // Saving succeeds; every charge is declined.
    TestCard {
        saving: CardBehaviour::Succeeds,
        ..card(
            "pm_card_chargeCustomerFail",
            "4000000000000341",
            GENERIC_DECLINE,
        )
    },
    // Authentication on every payment, however the card was saved.
    card(
        "pm_card_authenticationRequired",
        "4000002760003184",
        CardBehaviour::RequiresAuthentication,
    ),
    card(
        "pm_card_threeDSecure2Required",
        "4000000000003220",
        CardBehaviour::RequiresAuthentication,
    ),
    // Authenticated once when saved; off-session holds then succeed.
    TestCard {
        off_session: CardBehaviour::Succeeds,
        ..card(
            "pm_card_authenticationRequiredSetupForOffSession",
            "4000002500003155",
            CardBehaviour::RequiresAuthentication,
        )
    },
    TestCard {
        after: Aftermath::RefundsFail,
        ..card(
            "pm_card_refundFail",
            "4000000000005126",
            CardBehaviour::Succeeds,
        )
    },
    TestCard {
        after: Aftermath::Disputed,
        ..card(
            "pm_card_createDispute",
            "4000000000000259",
            CardBehaviour::Succeeds,
        )
    },
];

/// The test card for a payment method id or a card number (spaces allowed).
pub fn test_card(payment_method: &str) -> Option<&'static TestCard> {
    let trimmed = payment_method.trim();
    let digits: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
    TEST_CARDS
        .iter()
        .find(|c| c.payment_method == trimmed || c.number == digits)
}

const AUTHENTICATION_FAILED: &str = "The provided PaymentMethod has failed authentication. You can provide payment_method_data or a new PaymentMethod to attempt to fulfill this PaymentIntent again.";

/// How the sandbox behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The server's public URL: the sandbox pages are under `{public_url}/sandbox/`.
    pub public_url: String,
    /// The fee reported once captured. A payment in another currency uses the
    /// default schedule of its currency (1.4 % + 0.25).
    pub fee_schedule: Option<FeeSchedule>,
    /// How long an authorisation lasts before it lapses (7 days).
    pub hold_validity: Duration,
    /// How long a checkout session stays open (24 hours, Stripe's default).
    pub session_validity: Duration,
    /// How long an OAuth code may wait before its exchange (5 minutes).
    pub code_validity: Duration,
}

impl SandboxConfig {
    pub fn new(public_url: &str) -> Self {
        SandboxConfig {
            public_url: public_url.trim_end_matches('/').to_owned(),
            fee_schedule: None,
            hold_validity: Duration::days(DEFAULT_HOLD_VALIDITY_DAYS),
            session_validity: Duration::hours(24),
            code_validity: Duration::minutes(5),
        }
    }

    pub fn with_fee_schedule(mut self, schedule: FeeSchedule) -> Self {
        self.fee_schedule = Some(schedule);
        self
    }

    fn fees(&self, currency: Currency) -> FeeSchedule {
        self.fee_schedule
            .clone()
            .filter(|s| s.currency() == currency)
            .unwrap_or_else(|| FeeSchedule::default_for(currency))
    }
}

/// The in-process gateway (see the module docs).
pub struct SandboxGateway {
    config: SandboxConfig,
    /// The sandbox's test clock: the given clock, moved forward by
    /// [`SandboxControl::advance_clock`]. The server reads it too ([`Self::clock`]).
    clock: Arc<OffsetClock<Arc<dyn Clock>>>,
    /// The objects, as of `version` of the store. Operations take turns on it (and,
    /// with a store, on the store's writer lock).
    held: Mutex<Held>,
    store: Option<Arc<dyn SandboxStore>>,
}

/// The sandbox's objects as this process holds them.
#[derive(Default)]
struct Held {
    state: State,
    /// The store's version `state` reflects (0: nothing loaded).
    version: i64,
}

impl std::fmt::Debug for SandboxGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxGateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    intents: Table<Intent>,
    sessions: Table<Session>,
    /// Stored answers by account and idempotency key ([`replay_id`]), with the
    /// request's fingerprint.
    replays: Table<(String, Replay)>,
    codes: Table<Code>,
    /// Codes minted so far per OAuth state (keeps code ids deterministic and distinct).
    minted: Table<u64>,
    /// Accounts created for Account Links: whether their onboarding is done.
    onboarding: Table<bool>,
    /// Accounts that deauthorised the platform (`true`), or that linked it again.
    deauthorized: Table<bool>,
    /// Cards saved on a customer, by payment method id.
    saved: Table<Saved>,
}

/// Applies `$apply` to each table of a [`State`] with its kind's name: the one list of
/// what is stored.
macro_rules! each_table {
    ($state:expr, |$kind:ident, $table:ident| $apply:expr) => {
        each_table!(@ $state, $kind, $table, $apply;
            "intent" intents, "session" sessions, "replay" replays, "code" codes,
            "minted" minted, "onboarding" onboarding, "deauthorized" deauthorized,
            "saved" saved)
    };
    (@ $state:expr, $kind:ident, $table:ident, $apply:expr; $($name:literal $field:ident),+) => {{
        let state = $state;
        $({
            let ($kind, $table) = ($name, &mut state.$field);
            $apply
        })+
    }};
}

impl State {
    /// What changed since the last call, as rows to store.
    fn changes(&mut self) -> Result<Vec<SandboxRow>, serde_json::Error> {
        let mut rows = Vec::new();
        each_table!(self, |kind, table| table.changes(kind, &mut rows)?);
        Ok(rows)
    }

    fn forget_touched(&mut self) {
        each_table!(self, |_kind, table| table.forget_touched());
    }

    /// Rows another write stored (rows of a kind this version does not know are left
    /// alone: a newer server wrote them).
    fn load(&mut self, rows: Vec<SandboxRow>) -> Result<(), serde_json::Error> {
        for row in rows {
            let SandboxRow { kind, id, body } = row;
            each_table!(&mut *self, |name, table| if kind == name {
                table.load(id.clone(), &body)?;
            });
        }
        Ok(())
    }
}

/// The key of a stored answer: the account and the idempotency key (an account id has
/// no space).
fn replay_id(account: &ConnectedAccountId, key: &IdempotencyKey) -> String {
    format!("{account} {}", key.as_str())
}

#[derive(Clone, Serialize, Deserialize)]
enum Replay {
    Intent(Box<Result<IntentSnapshot, GatewayError>>),
    Checkout(Result<CheckoutStart, GatewayError>),
    Refund(Result<RefundOutcome, GatewayError>),
}

/// A card saved on the practitioner's account.
#[derive(Serialize, Deserialize)]
struct Saved {
    account: ConnectedAccountId,
    customer: CustomerId,
    #[serde(with = "card_ref")]
    card: &'static TestCard,
}

#[derive(Serialize, Deserialize)]
struct Intent {
    id: PaymentIntentId,
    account: ConnectedAccountId,
    amount: Money,
    payment: PaymentId,
    status: IntentStatus,
    capturable: Money,
    received: Money,
    refunded: Money,
    capture_before: Option<DateTime<Utc>>,
    last_error: Option<Failure>,
    cancellation_reason: Option<String>,
    fee: Option<Money>,
    events: u64,
    client_secret: String,
    /// The card that paid, once one did.
    #[serde(with = "card_ref::option")]
    card: Option<&'static TestCard>,
    /// The card saved by paying (Checkout's `setup_future_usage`).
    saved_card: Option<SavedCard>,
    refunds: Vec<Refund>,
    dispute: Option<Disputing>,
    /// The lapse of its hold was told (`payment_intent.canceled`).
    lapse_told: bool,
}

#[derive(Serialize, Deserialize)]
struct Refund {
    id: RefundId,
    amount: Money,
    status: RefundStatus,
    /// When it fails (`pm_card_refundFail`).
    fails_at: Option<DateTime<Utc>>,
}

/// A dispute on an intent's charge (`pm_card_createDispute`), opened at `opens_at`.
#[derive(Serialize, Deserialize)]
struct Disputing {
    dispute: Dispute,
    opens_at: DateTime<Utc>,
    opened_told: bool,
    closed_told: bool,
}

#[derive(Serialize, Deserialize)]
struct Session {
    id: CheckoutSessionId,
    account: ConnectedAccountId,
    payment: PaymentId,
    consultation: ConsultationId,
    amount: Money,
    description: String,
    success_url: String,
    cancel_url: String,
    mode: CheckoutMode,
    intent: Option<String>,
    setup: Option<Setup>,
    complete: bool,
    expires_at: DateTime<Utc>,
    /// The expiry was told (its unpaid intent's `payment_intent.canceled`).
    expiry_told: bool,
}

/// A session's card saving (mode `SaveCard`).
#[derive(Serialize, Deserialize)]
struct Setup {
    id: SetupIntentId,
    status: SetupStatus,
    #[serde(with = "card_ref::option")]
    card: Option<&'static TestCard>,
    saved: Option<SavedCard>,
    last_error: Option<Failure>,
    events: u64,
}

#[derive(Serialize, Deserialize)]
struct Code {
    state: String,
    minted_at: DateTime<Utc>,
    used: bool,
}

/// A store's failure, as the gateway reports an outage.
fn store_error(err: billing_core::repository::RepositoryError) -> GatewayError {
    GatewayError::Unavailable {
        message: format!("the sandbox's store: {err}"),
    }
}

/// A test card as stored: its payment method id.
mod card_ref {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{TestCard, test_card};

    pub(super) fn serialize<S: Serializer>(
        card: &&'static TestCard,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(card.payment_method)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<&'static TestCard, D::Error> {
        let id = String::deserialize(d)?;
        test_card(&id).ok_or_else(|| serde::de::Error::custom(format!("unknown test card {id}")))
    }

    pub(super) mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use super::super::TestCard;

        pub(in super::super) fn serialize<S: Serializer>(
            card: &Option<&'static TestCard>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match card {
                Some(card) => s.serialize_some(card.payment_method),
                None => s.serialize_none(),
            }
        }

        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<&'static TestCard>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(with = "super")] &'static TestCard);
            Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(card)| card))
        }
    }
}

/// `prefix` + the first `len` hex digits of SHA-256 over `parts`.
fn derived_id(prefix: &str, len: usize, parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0x1f]);
    }
    let digest = hash.finalize();
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    for byte in digest.iter() {
        for nibble in [byte >> 4, byte & 0x0f] {
            if id.len() - prefix.len() < len {
                id.push(char::from(b"0123456789abcdef"[usize::from(nibble)]));
            }
        }
    }
    id
}

fn unexpected(message: impl Into<String>) -> GatewayError {
    GatewayError::UnexpectedState {
        message: message.into(),
    }
}

fn invalid(code: Option<&str>, param: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::InvalidRequest {
        code: code.map(str::to_owned),
        param: Some(param.to_owned()),
        message: message.into(),
    }
}

fn status_name(status: IntentStatus) -> &'static str {
    match status {
        IntentStatus::RequiresPaymentMethod => "requires_payment_method",
        IntentStatus::RequiresConfirmation => "requires_confirmation",
        IntentStatus::RequiresAction => "requires_action",
        IntentStatus::Processing => "processing",
        IntentStatus::RequiresCapture => "requires_capture",
        IntentStatus::Canceled => "canceled",
        IntentStatus::Succeeded => "succeeded",
    }
}

/// A declined card's failure, as Stripe words it.
fn declined(code: &str, decline_code: &str, message: &str) -> Failure {
    Failure {
        code: Some(code.into()),
        decline_code: Some(decline_code.into()),
        message: message.into(),
    }
}

/// An off-session hold the card's bank wants authenticated: Stripe's refusal.
fn authentication_required() -> Failure {
    declined(
        "authentication_required",
        "authentication_required",
        "This payment requires authentication, and the cardholder is not there to give it.",
    )
}

/// A webhook event about `payload`, with an id derived from what it is about.
fn event(
    about: &str,
    n: u64,
    kind: &str,
    account: &ConnectedAccountId,
    now: DateTime<Utc>,
    payload: GatewayEvent,
) -> Result<WebhookEvent, GatewayError> {
    let id = EventId::parse(&derived_id("evt_", 24, &[about, kind, &n.to_string()]))
        .map_err(|e| unexpected(e.to_string()))?;
    Ok(WebhookEvent {
        id,
        kind: kind.to_owned(),
        created: now,
        account: Some(account.clone()),
        payload,
    })
}

impl Intent {
    /// Stripe cancels an authorisation nobody captured in time.
    fn settle(&mut self, now: DateTime<Utc>) {
        if self.status == IntentStatus::RequiresCapture
            && self.capture_before.is_some_and(|deadline| now >= deadline)
        {
            self.status = IntentStatus::Canceled;
            self.cancellation_reason = Some("automatic".into());
            self.capturable = Money::zero(self.amount.currency());
        }
    }

    fn refund_lines(&self) -> Vec<RefundLine> {
        self.refunds
            .iter()
            .map(|r| RefundLine {
                id: r.id.clone(),
                amount: r.amount,
                status: r.status,
            })
            .collect()
    }

    /// What an event's payload says about the intent (no refunds listed).
    fn snapshot(&self) -> IntentSnapshot {
        IntentSnapshot {
            id: self.id.clone(),
            status: self.status,
            amount: self.amount,
            amount_capturable: self.capturable,
            amount_received: self.received,
            amount_refunded: self.refunded,
            capture_before: self.capture_before,
            fee: self.fee,
            last_error: self.last_error.clone(),
            cancellation_reason: self.cancellation_reason.clone(),
            payment: Some(self.payment),
            client_secret: Some(ClientSecret::new(self.client_secret.clone())),
            refunds: None,
            saved_card: self.saved_card.clone(),
        }
    }

    /// What a read of the intent says: with every refund once captured, as
    /// `retrieve` lists them.
    fn read(&self) -> IntentSnapshot {
        IntentSnapshot {
            refunds: (self.status == IntentStatus::Succeeded).then(|| self.refund_lines()),
            ..self.snapshot()
        }
    }

    fn authorise(&mut self, now: DateTime<Utc>, validity: Duration) {
        self.status = IntentStatus::RequiresCapture;
        self.capturable = self.amount;
        self.capture_before = Some(now + validity);
        self.last_error = None;
    }

    fn fail(&mut self, failure: Failure) {
        self.status = IntentStatus::RequiresPaymentMethod;
        self.last_error = Some(failure);
    }

    /// The event a webhook would carry about this intent now.
    fn event(&mut self, kind: &str, now: DateTime<Utc>) -> Result<WebhookEvent, GatewayError> {
        self.events += 1;
        event(
            self.id.as_str(),
            self.events,
            kind,
            &self.account,
            now,
            GatewayEvent::PaymentIntent(self.snapshot()),
        )
    }

    /// A refund-related event (`charge.refund.updated`): the domain reads the
    /// refunds again.
    fn refunds_event(&mut self, now: DateTime<Utc>) -> Result<WebhookEvent, GatewayError> {
        self.events += 1;
        event(
            self.id.as_str(),
            self.events,
            "charge.refund.updated",
            &self.account,
            now,
            GatewayEvent::RefundsChanged {
                intent: Some(self.id.clone()),
                payment: Some(self.payment),
            },
        )
    }

    fn dispute_event(
        &mut self,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebhookEvent>, GatewayError> {
        let Some(d) = &self.dispute else {
            return Ok(None);
        };
        let payload = GatewayEvent::Dispute {
            dispute: d.dispute.clone(),
            intent: Some(self.id.clone()),
        };
        self.events += 1;
        event(
            self.id.as_str(),
            self.events,
            kind,
            &self.account,
            now,
            payload,
        )
        .map(Some)
    }

    /// Everything that came due by `now`, with when it happened: the hold's lapse, a
    /// refund failing, the dispute opening or closing.
    fn due(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, WebhookEvent)>, GatewayError> {
        let mut due = Vec::new();
        let deadline = self.capture_before;
        self.settle(now);
        if self.status == IntentStatus::Canceled
            && self.cancellation_reason.as_deref() == Some("automatic")
            && !self.lapse_told
        {
            self.lapse_told = true;
            let at = deadline.unwrap_or(now);
            due.push((at, self.event("payment_intent.canceled", at)?));
        }
        let mut failed_at = None;
        for r in &mut self.refunds {
            if let Some(at) = r.fails_at.filter(|at| *at <= now)
                && r.status == RefundStatus::Succeeded
            {
                r.status = RefundStatus::Failed;
                r.fails_at = None;
                self.refunded = self
                    .refunded
                    .checked_sub(&r.amount)
                    .map_err(|e| unexpected(e.to_string()))?;
                failed_at = Some(at);
            }
        }
        if let Some(at) = failed_at {
            due.push((at, self.refunds_event(at)?));
        }
        let (opens, closes) = match &self.dispute {
            Some(d) => (
                (!d.opened_told && d.opens_at <= now).then_some(d.opens_at),
                d.dispute
                    .evidence_due_by
                    .filter(|due_by| !d.closed_told && *due_by <= now),
            ),
            None => (None, None),
        };
        if let Some(at) = opens {
            if let Some(d) = &mut self.dispute {
                d.opened_told = true;
            }
            due.extend(
                self.dispute_event("charge.dispute.created", at)?
                    .map(|e| (at, e)),
            );
            // Funds and Stripe's dispute fee leave the balance at once.
            if let Some(d) = &mut self.dispute {
                d.dispute.withdrawn = d.dispute.amount;
                d.dispute.fee = Money::from_minor(1500, d.dispute.amount.currency());
                d.dispute.transactions = 1;
            }
            due.extend(
                self.dispute_event("charge.dispute.funds_withdrawn", at)?
                    .map(|e| (at, e)),
            );
        }
        if let Some(at) = closes {
            // No evidence was submitted: the bank decides for the cardholder.
            if let Some(d) = &mut self.dispute {
                d.closed_told = true;
                d.dispute.status = DisputeStatus::Lost;
            }
            due.extend(
                self.dispute_event("charge.dispute.closed", at)?
                    .map(|e| (at, e)),
            );
        }
        Ok(due)
    }
}

impl Session {
    fn status(&self, now: DateTime<Utc>) -> CheckoutStatus {
        if self.complete {
            CheckoutStatus::Complete
        } else if now >= self.expires_at {
            CheckoutStatus::Expired
        } else {
            CheckoutStatus::Open
        }
    }

    fn setup_snapshot(&self) -> Option<SetupSnapshot> {
        self.setup.as_ref().map(|s| SetupSnapshot {
            id: s.id.clone(),
            status: s.status,
            saved_card: s.saved.clone(),
            last_error: s.last_error.clone(),
            payment: Some(self.payment),
        })
    }

    fn setup_event(
        &mut self,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Result<WebhookEvent, GatewayError> {
        let snapshot = self
            .setup_snapshot()
            .ok_or_else(|| unexpected("the session saves no card"))?;
        let setup = self
            .setup
            .as_mut()
            .ok_or_else(|| unexpected("the session saves no card"))?;
        setup.events += 1;
        event(
            setup.id.as_str(),
            setup.events,
            kind,
            &self.account,
            now,
            GatewayEvent::SetupIntent(snapshot),
        )
    }
}

impl State {
    fn ensure_reachable(&self, account: &ConnectedAccountId) -> Result<(), GatewayError> {
        if self.deauthorized.get(account.as_str()) == Some(&true) {
            return Err(GatewayError::AccountUnavailable {
                message: format!("the platform has no access to {account}"),
            });
        }
        Ok(())
    }

    /// The intent, if it exists on `account` (an intent on another account does not
    /// exist for this one, as at Stripe).
    fn intent(
        &mut self,
        account: &ConnectedAccountId,
        id: &PaymentIntentId,
        now: DateTime<Utc>,
    ) -> Result<&mut Intent, GatewayError> {
        self.ensure_reachable(account)?;
        let intent = self
            .intents
            .get_mut(id.as_str())
            .filter(|i| i.account == *account)
            .ok_or_else(|| GatewayError::NotFound {
                message: format!("No such payment_intent: '{id}'"),
            })?;
        intent.settle(now);
        Ok(intent)
    }

    /// A session as its connected account sees it: another account's is not found.
    fn session_on(
        &mut self,
        account: &ConnectedAccountId,
        id: &CheckoutSessionId,
    ) -> Result<&mut Session, GatewayError> {
        self.ensure_reachable(account)?;
        let s = self.session(id)?;
        if s.account != *account {
            return Err(GatewayError::NotFound {
                message: format!("No such checkout.session: '{id}'"),
            });
        }
        Ok(s)
    }

    fn session(&mut self, id: &CheckoutSessionId) -> Result<&mut Session, GatewayError> {
        self.sessions
            .get_mut(id.as_str())
            .ok_or_else(|| GatewayError::NotFound {
                message: format!("No such checkout.session: '{id}'"),
            })
    }

    /// Stripe's idempotency: a stored answer for the same key and parameters, or a
    /// conflict for the same key with other parameters.
    fn replay(
        &self,
        account: &ConnectedAccountId,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Option<Replay>, GatewayError> {
        match self.replays.get(&replay_id(account, key)) {
            Some((stored, replay)) if stored == fingerprint => Ok(Some(replay.clone())),
            Some(_) => Err(GatewayError::IdempotencyConflict),
            None => Ok(None),
        }
    }

    fn remember(
        &mut self,
        account: &ConnectedAccountId,
        key: &IdempotencyKey,
        fingerprint: String,
        replay: Replay,
    ) {
        self.replays
            .insert(replay_id(account, key), (fingerprint, replay));
    }

    fn new_intent(&mut self, hold: &HoldRequest, id: String) -> Result<&mut Intent, GatewayError> {
        let parsed = PaymentIntentId::parse(&id).map_err(|e| unexpected(e.to_string()))?;
        let zero = Money::zero(hold.amount.currency());
        let secret = derived_id("", 24, &["secret", &id]);
        Ok(self.intents.get_or_insert_with(id.clone(), || Intent {
            id: parsed,
            account: hold.account.clone(),
            amount: hold.amount,
            payment: hold.payment,
            status: IntentStatus::RequiresPaymentMethod,
            capturable: zero,
            received: zero,
            refunded: zero,
            capture_before: None,
            last_error: None,
            cancellation_reason: None,
            fee: None,
            events: 0,
            client_secret: format!("{id}_secret_{secret}"),
            card: None,
            saved_card: None,
            refunds: Vec::new(),
            dispute: None,
            lapse_told: false,
        }))
    }

    /// Saves `card` on a customer of `account` for the payment behind `about` (a
    /// session): the customer and payment method ids derive from it.
    fn save(
        &mut self,
        account: &ConnectedAccountId,
        about: &str,
        card: &'static TestCard,
    ) -> Result<SavedCard, GatewayError> {
        let customer = CustomerId::parse(&derived_id("cus_", 14, &[account.as_str(), about]))
            .map_err(|e| unexpected(e.to_string()))?;
        let method = PaymentMethodId::parse(&derived_id(
            "pm_",
            24,
            &[account.as_str(), about, card.payment_method],
        ))
        .map_err(|e| unexpected(e.to_string()))?;
        self.saved.insert(
            method.as_str().to_owned(),
            Saved {
                account: account.clone(),
                customer: customer.clone(),
                card,
            },
        );
        Ok(SavedCard {
            customer,
            payment_method: method,
        })
    }
}

fn hold_fingerprint(op: &str, h: &HoldRequest) -> String {
    format!(
        "{op}|{}|{}|{}|{}|{:?}|{:?}",
        h.payment,
        h.consultation,
        h.amount,
        h.description,
        h.statement_descriptor_suffix,
        h.off_session
    )
}

fn check_amount(hold: &Money) -> Result<(), GatewayError> {
    if !hold.is_positive() {
        return Err(invalid(None, "amount", "the amount must be positive"));
    }
    hold.to_minor()
        .map_err(|e| invalid(None, "amount", e.to_string()))?;
    Ok(())
}

impl SandboxGateway {
    /// A sandbox that keeps its objects in memory: they last as long as the process.
    pub fn new(clock: Arc<dyn Clock>, config: SandboxConfig) -> Self {
        SandboxGateway {
            config,
            clock: Arc::new(OffsetClock::new(clock)),
            held: Mutex::new(Held::default()),
            store: None,
        }
    }

    /// A sandbox that keeps its objects and its test clock in `store`: they survive a
    /// restart, and every server on the store's database works on the same sandbox.
    /// Call [`SandboxControl::refresh`] before serving, so the server starts at the
    /// sandbox's time.
    pub fn with_store(
        clock: Arc<dyn Clock>,
        config: SandboxConfig,
        store: Arc<dyn SandboxStore>,
    ) -> Self {
        SandboxGateway {
            store: Some(store),
            ..SandboxGateway::new(clock, config)
        }
    }

    /// Runs `op` on the objects, up to date with the store: under its writer lock, with
    /// what other writers stored meanwhile loaded first, and what `op` changed (its
    /// refusals included: Stripe keeps their answers too) stored after. If storing
    /// fails, the answer is [`GatewayError::Unavailable`] (the outcome of a write is
    /// unknown: a retry with the same key settles it) and what is held is reloaded.
    async fn with_state<T>(
        &self,
        op: impl FnOnce(&mut State) -> Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        let mut held = self.held.lock().await;
        let Some(store) = &self.store else {
            let answer = op(&mut held.state);
            held.state.forget_touched();
            return answer;
        };
        let mut write = store.begin().await.map_err(store_error)?;
        let head: SandboxHead = write.head();
        if head.version != held.version {
            if head.version < held.version {
                // The store was emptied behind our back: start again from it.
                *held = Held::default();
            }
            let rows = write
                .changed_since(held.version)
                .await
                .map_err(store_error)?;
            if let Err(e) = held.state.load(rows) {
                *held = Held::default();
                return Err(unexpected(format!(
                    "a stored sandbox object is unreadable: {e}"
                )));
            }
            held.version = head.version;
        }
        self.clock.catch_up(head.clock_offset);
        let answer = op(&mut held.state);
        let offset = self.clock.offset();
        let stored = match held.state.changes() {
            Ok(rows) if rows.is_empty() && offset == head.clock_offset => return answer,
            Ok(rows) => write.commit(rows, offset).await.map_err(store_error),
            Err(e) => Err(unexpected(format!(
                "a sandbox object cannot be stored: {e}"
            ))),
        };
        match stored {
            Ok(head) => {
                held.version = head.version;
                answer
            }
            Err(e) => {
                // What is held is ahead of the store: reload it all next time.
                *held = Held::default();
                Err(e)
            }
        }
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The sandbox's test clock, for the rest of the server: in sandbox mode the
    /// domain reads the same time as the simulated Stripe.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    fn checkout_url(&self, session: &CheckoutSessionId) -> String {
        format!("{}/sandbox/checkout/{session}", self.config.public_url)
    }

    fn account_snapshot(&self, account: &ConnectedAccountId, onboarded: bool) -> AccountSnapshot {
        AccountSnapshot {
            id: account.clone(),
            charges_enabled: onboarded,
            payouts_enabled: onboarded,
            details_submitted: onboarded,
            disabled_reason: (!onboarded).then(|| "requirements.past_due".to_owned()),
            currently_due: if onboarded {
                vec![]
            } else {
                [
                    "business_profile.url",
                    "external_account",
                    "tos_acceptance.date",
                ]
                .map(str::to_owned)
                .to_vec()
            },
            payout_schedule: Some(PayoutSchedule {
                interval: PayoutInterval::Daily,
                delay_days: Some(7),
            }),
            default_currency: Some(Currency::Eur),
            country: Some("FR".into()),
        }
    }

    /// The 3-D Secure outcome or a card's answer, applied to the session: its intent
    /// (mode `Hold`, the card saved along with the hold) or its card saving (mode
    /// `SaveCard`).
    fn conclude(
        &self,
        state: &mut State,
        session_id: &CheckoutSessionId,
        card: &'static TestCard,
        behaviour: CardBehaviour,
        now: DateTime<Utc>,
    ) -> Result<SandboxOutcome, GatewayError> {
        let session = state.session(session_id)?;
        let success_url = session.success_url.clone();
        let account = session.account.clone();
        if session.mode == CheckoutMode::SaveCard {
            return match behaviour {
                CardBehaviour::Succeeds => {
                    let saved = state.save(&account, session_id.as_str(), card)?;
                    let session = state.session(session_id)?;
                    if let Some(setup) = session.setup.as_mut() {
                        setup.status = SetupStatus::Succeeded;
                        setup.card = Some(card);
                        setup.saved = Some(saved);
                        setup.last_error = None;
                    }
                    session.complete = true;
                    Ok(SandboxOutcome {
                        events: vec![session.setup_event("setup_intent.succeeded", now)?],
                        next: SandboxNext::Return(success_url),
                    })
                }
                CardBehaviour::Declines {
                    code,
                    decline_code,
                    message,
                } => {
                    if let Some(setup) = session.setup.as_mut() {
                        setup.status = SetupStatus::RequiresPaymentMethod;
                        setup.last_error = Some(declined(code, decline_code, message));
                    }
                    Ok(SandboxOutcome {
                        events: vec![session.setup_event("setup_intent.setup_failed", now)?],
                        next: SandboxNext::TryAgain {
                            message: message.into(),
                        },
                    })
                }
                CardBehaviour::RequiresAuthentication => {
                    if let Some(setup) = session.setup.as_mut() {
                        setup.status = SetupStatus::RequiresAction;
                        setup.card = Some(card);
                    }
                    Ok(SandboxOutcome {
                        events: vec![],
                        next: SandboxNext::Authenticate,
                    })
                }
            };
        }
        let intent_id = session
            .intent
            .clone()
            .ok_or_else(|| unexpected("the session has no payment yet"))?;
        match behaviour {
            CardBehaviour::Succeeds => {
                let saved = state.save(&account, session_id.as_str(), card)?;
                let intent = state
                    .intents
                    .get_mut(&intent_id)
                    .ok_or_else(|| unexpected("the session's payment is gone"))?;
                intent.card = Some(card);
                intent.saved_card = Some(saved);
                intent.authorise(now, self.config.hold_validity);
                let event = intent.event("payment_intent.amount_capturable_updated", now)?;
                state.session(session_id)?.complete = true;
                Ok(SandboxOutcome {
                    events: vec![event],
                    next: SandboxNext::Return(success_url),
                })
            }
            CardBehaviour::Declines {
                code,
                decline_code,
                message,
            } => {
                let intent = state
                    .intents
                    .get_mut(&intent_id)
                    .ok_or_else(|| unexpected("the session's payment is gone"))?;
                intent.fail(declined(code, decline_code, message));
                let event = intent.event("payment_intent.payment_failed", now)?;
                Ok(SandboxOutcome {
                    events: vec![event],
                    next: SandboxNext::TryAgain {
                        message: message.into(),
                    },
                })
            }
            CardBehaviour::RequiresAuthentication => {
                let intent = state
                    .intents
                    .get_mut(&intent_id)
                    .ok_or_else(|| unexpected("the session's payment is gone"))?;
                intent.status = IntentStatus::RequiresAction;
                intent.card = Some(card);
                intent.last_error = None;
                Ok(SandboxOutcome {
                    events: vec![],
                    next: SandboxNext::Authenticate,
                })
            }
        }
    }

    /// An open session, or why it cannot be paid.
    fn open_session<'s>(
        state: &'s mut State,
        id: &CheckoutSessionId,
        now: DateTime<Utc>,
    ) -> Result<&'s mut Session, GatewayError> {
        let session = state.session(id)?;
        match session.status(now) {
            CheckoutStatus::Open => Ok(session),
            CheckoutStatus::Complete => Err(unexpected("this checkout session is already paid")),
            CheckoutStatus::Expired => Err(unexpected("this checkout session has expired")),
            _ => Err(unexpected("this checkout session cannot be paid")),
        }
    }

    /// A hold placed off-session with a saved card: the card's off-session behaviour
    /// decides, and a card that asks for authentication cannot be held.
    fn hold_saved_card(
        &self,
        state: &mut State,
        req: &HoldRequest,
        card: &SavedCard,
        now: DateTime<Utc>,
    ) -> Result<IntentSnapshot, GatewayError> {
        let saved = state
            .saved
            .get(card.payment_method.as_str())
            .filter(|s| s.account == req.account && s.customer == card.customer)
            .ok_or_else(|| GatewayError::InvalidRequest {
                code: Some("resource_missing".into()),
                param: Some("payment_method".into()),
                message: format!(
                    "No such PaymentMethod: '{}' on this customer",
                    card.payment_method
                ),
            })?;
        let test_card = saved.card;
        let id = derived_id("pi_", 24, &[req.account.as_str(), req.key.as_str()]);
        let validity = self.config.hold_validity;
        let intent = state.new_intent(req, id)?;
        intent.card = Some(test_card);
        match test_card.off_session {
            CardBehaviour::Succeeds => {
                intent.authorise(now, validity);
                Ok(intent.snapshot())
            }
            CardBehaviour::Declines {
                code,
                decline_code,
                message,
            } => {
                let failure = declined(code, decline_code, message);
                intent.fail(failure.clone());
                Err(GatewayError::Declined(failure))
            }
            CardBehaviour::RequiresAuthentication => {
                let failure = authentication_required();
                intent.fail(failure.clone());
                Err(GatewayError::Declined(failure))
            }
        }
    }
}

#[async_trait]
impl PaymentGateway for SandboxGateway {
    async fn create_hold(&self, req: &HoldRequest) -> Result<IntentSnapshot, GatewayError> {
        check_amount(&req.amount)?;
        self.with_state(|state| {
            let now = self.clock.now();
            state.ensure_reachable(&req.account)?;
            let fingerprint = hold_fingerprint("create_hold", req);
            if let Some(Replay::Intent(answer)) =
                state.replay(&req.account, &req.key, &fingerprint)?
            {
                return *answer;
            }
            let answer = match &req.off_session {
                Some(card) => self.hold_saved_card(state, req, card, now),
                None => {
                    let id = derived_id("pi_", 24, &[req.account.as_str(), req.key.as_str()]);
                    Ok(state.new_intent(req, id)?.snapshot())
                }
            };
            state.remember(
                &req.account,
                &req.key,
                fingerprint,
                Replay::Intent(Box::new(answer.clone())),
            );
            answer
        })
        .await
    }

    /// Always the sandbox card page (the sandbox's stand-in for Stripe Checkout). Like a
    /// Checkout Session, each one makes its own intent (or card saving) when the card is
    /// submitted.
    async fn start_checkout(&self, req: &CheckoutRequest) -> Result<CheckoutStart, GatewayError> {
        let h = &req.hold;
        check_amount(&h.amount)?;
        self.with_state(|state| {
            let now = self.clock.now();
            state.ensure_reachable(&h.account)?;
            let fingerprint = format!(
                "{}|{}|{}|{:?}|{:?}",
                hold_fingerprint("checkout", h),
                req.success_url,
                req.cancel_url,
                req.mode,
                req.locale,
            );
            if let Some(Replay::Checkout(answer)) =
                state.replay(&h.account, &h.key, &fingerprint)?
            {
                return answer;
            }
            let id = CheckoutSessionId::parse(&derived_id(
                "cs_test_",
                40,
                &[h.account.as_str(), h.key.as_str()],
            ))
            .map_err(|e| unexpected(e.to_string()))?;
            let expires_at = now + self.config.session_validity;
            let start = CheckoutStart {
                intent: None,
                session: Some(id.clone()),
                setup: None,
                redirect_url: Some(self.checkout_url(&id)),
                client_secret: None,
                expires_at: Some(expires_at),
                mode: req.mode,
            };
            let setup = match req.mode {
                CheckoutMode::Hold => None,
                CheckoutMode::SaveCard => Some(Setup {
                    id: SetupIntentId::parse(&derived_id(
                        "seti_",
                        24,
                        &[h.account.as_str(), id.as_str()],
                    ))
                    .map_err(|e| unexpected(e.to_string()))?,
                    status: SetupStatus::RequiresPaymentMethod,
                    card: None,
                    saved: None,
                    last_error: None,
                    events: 0,
                }),
            };
            state.sessions.insert(
                id.as_str().to_owned(),
                Session {
                    id,
                    account: h.account.clone(),
                    payment: h.payment,
                    consultation: h.consultation,
                    amount: h.amount,
                    description: h.description.clone(),
                    success_url: req.success_url.clone(),
                    cancel_url: req.cancel_url.clone(),
                    mode: req.mode,
                    intent: None,
                    setup,
                    complete: false,
                    expires_at,
                    expiry_told: false,
                },
            );
            state.remember(
                &h.account,
                &h.key,
                fingerprint,
                Replay::Checkout(Ok(start.clone())),
            );
            Ok(start)
        })
        .await
    }

    async fn expire_checkout(
        &self,
        account: &ConnectedAccountId,
        session: &CheckoutSessionId,
        _key: &IdempotencyKey,
    ) -> Result<(), GatewayError> {
        self.with_state(|state| {
            let now = self.clock.now();
            let s = state.session_on(account, session)?;
            if s.status(now) != CheckoutStatus::Open {
                return Ok(());
            }
            let intent = s.intent.clone();
            s.expires_at = now;
            // Told now, by this call's answer: the advancing clock need not tell it again.
            s.expiry_told = true;
            if let Some(setup) = s.setup.as_mut()
                && setup.status != SetupStatus::Succeeded
            {
                setup.status = SetupStatus::Canceled;
            }
            // Like Checkout, expiring the session cancels the intent it made.
            if let Some(i) = intent.and_then(|id| state.intents.get_mut(&id))
                && matches!(
                    i.status,
                    IntentStatus::RequiresPaymentMethod | IntentStatus::RequiresAction
                )
            {
                i.status = IntentStatus::Canceled;
                i.cancellation_reason = Some("abandoned".into());
            }
            Ok(())
        })
        .await
    }

    async fn retrieve_checkout(
        &self,
        account: &ConnectedAccountId,
        session: &CheckoutSessionId,
    ) -> Result<CheckoutState, GatewayError> {
        self.with_state(|state| {
            let now = self.clock.now();
            let s = state.session_on(account, session)?;
            let status = s.status(now);
            let setup = s.setup_snapshot();
            let intent = match s.intent.clone() {
                Some(id) => state.intents.get_mut(&id).map(|i| {
                    i.settle(now);
                    i.read()
                }),
                None => None,
            };
            Ok(CheckoutState {
                status,
                intent,
                setup,
            })
        })
        .await
    }

    async fn retrieve_setup(
        &self,
        account: &ConnectedAccountId,
        setup: &SetupIntentId,
    ) -> Result<SetupSnapshot, GatewayError> {
        self.with_state(|state| {
            state.ensure_reachable(account)?;
            state
                .sessions
                .values()
                .filter(|s| s.account == *account)
                .find_map(|s| s.setup_snapshot().filter(|snap| snap.id == *setup))
                .ok_or_else(|| GatewayError::NotFound {
                    message: format!("No such setupintent: '{setup}'"),
                })
        })
        .await
    }

    async fn capture(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        amount: &Money,
        key: &IdempotencyKey,
    ) -> Result<IntentSnapshot, GatewayError> {
        self.with_state(|state| {
            let now = self.clock.now();
            state.ensure_reachable(account)?;
            let fingerprint = format!("capture|{intent}|{amount}");
            if let Some(Replay::Intent(answer)) = state.replay(account, key, &fingerprint)? {
                return *answer;
            }
            let fees = |c| self.config.fees(c);
            let answer = (|| {
                let i = state.intent(account, intent, now)?;
                if i.status != IntentStatus::RequiresCapture {
                    return Err(unexpected(format!(
                        "This PaymentIntent could not be captured because it has a status of {}.",
                        status_name(i.status)
                    )));
                }
                if amount.currency() != i.amount.currency() {
                    return Err(invalid(None, "amount_to_capture", "currency mismatch"));
                }
                if !amount.is_positive() || amount.amount() > i.capturable.amount() {
                    return Err(invalid(
                        Some("amount_too_large"),
                        "amount_to_capture",
                        format!(
                            "The amount to capture must be positive and at most the {} authorized.",
                            i.capturable
                        ),
                    ));
                }
                let fee = fees(amount.currency())
                    .fee(amount)
                    .map_err(|e| invalid(None, "amount_to_capture", e.to_string()))?;
                i.status = IntentStatus::Succeeded;
                i.received = *amount;
                i.capturable = Money::zero(amount.currency());
                i.fee = Some(fee);
                if i.card.is_some_and(|c| c.after == Aftermath::Disputed) {
                    let zero = Money::zero(amount.currency());
                    i.dispute = Some(Disputing {
                        dispute: Dispute {
                            id: DisputeId::parse(&derived_id("dp_", 24, &[i.id.as_str()]))
                                .map_err(|e| unexpected(e.to_string()))?,
                            amount: *amount,
                            reason: "fraudulent".into(),
                            status: DisputeStatus::NeedsResponse,
                            evidence_due_by: Some(now + Duration::days(7)),
                            withdrawn: zero,
                            fee: zero,
                            transactions: 0,
                        },
                        opens_at: now + Duration::minutes(1),
                        opened_told: false,
                        closed_told: false,
                    });
                }
                Ok(i.read())
            })();
            // Stripe stores the answer of a request it processed, refusals included.
            state.remember(
                account,
                key,
                fingerprint,
                Replay::Intent(Box::new(answer.clone())),
            );
            answer
        })
        .await
    }

    async fn release(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        key: &IdempotencyKey,
    ) -> Result<IntentSnapshot, GatewayError> {
        self.with_state(|state| {
            let now = self.clock.now();
            state.ensure_reachable(account)?;
            let fingerprint = format!("release|{intent}");
            if let Some(Replay::Intent(answer)) = state.replay(account, key, &fingerprint)? {
                return *answer;
            }
            let answer = (|| {
                let i = state.intent(account, intent, now)?;
                match i.status {
                    IntentStatus::RequiresPaymentMethod
                    | IntentStatus::RequiresConfirmation
                    | IntentStatus::RequiresAction
                    | IntentStatus::RequiresCapture => {
                        i.status = IntentStatus::Canceled;
                        i.capturable = Money::zero(i.amount.currency());
                        Ok(i.snapshot())
                    }
                    other => Err(unexpected(format!(
                        "You cannot cancel this PaymentIntent because it has a status of {}.",
                        status_name(other)
                    ))),
                }
            })();
            state.remember(
                account,
                key,
                fingerprint,
                Replay::Intent(Box::new(answer.clone())),
            );
            answer
        })
        .await
    }

    async fn refund(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        amount: &Money,
        key: &IdempotencyKey,
    ) -> Result<RefundOutcome, GatewayError> {
        self.with_state(|state| {
            let now = self.clock.now();
            state.ensure_reachable(account)?;
            let fingerprint = format!("refund|{intent}|{amount}");
            if let Some(Replay::Refund(answer)) = state.replay(account, key, &fingerprint)? {
                return answer;
            }
            let answer = (|| {
                let i = state.intent(account, intent, now)?;
                if i.status != IntentStatus::Succeeded {
                    return Err(unexpected(format!(
                        "This PaymentIntent has no captured charge to refund (status {}).",
                        status_name(i.status)
                    )));
                }
                if i.dispute.as_ref().is_some_and(|d| d.opened_told) {
                    return Err(GatewayError::UnexpectedState {
                        message: "This charge has been disputed and cannot be refunded.".into(),
                    });
                }
                if amount.currency() != i.amount.currency() {
                    return Err(invalid(None, "amount", "currency mismatch"));
                }
                let refundable = i
                    .received
                    .checked_sub(&i.refunded)
                    .map_err(|e| unexpected(e.to_string()))?;
                if !amount.is_positive() || amount.amount() > refundable.amount() {
                    return Err(invalid(
                        Some("amount_too_large"),
                        "amount",
                        format!(
                            "Refund amount ({amount}) is greater than unrefunded amount on charge ({refundable})"
                        ),
                    ));
                }
                i.refunded = i
                    .refunded
                    .checked_add(amount)
                    .map_err(|e| unexpected(e.to_string()))?;
                let n = (i.refunds.len() + 1).to_string();
                let id = RefundId::parse(&derived_id("re_", 24, &[i.id.as_str(), &n]))
                    .map_err(|e| unexpected(e.to_string()))?;
                let fails_at = i
                    .card
                    .filter(|c| c.after == Aftermath::RefundsFail)
                    .map(|_| now + Duration::hours(1));
                i.refunds.push(Refund {
                    id: id.clone(),
                    amount: *amount,
                    status: RefundStatus::Succeeded,
                    fails_at,
                });
                Ok(RefundOutcome {
                    id,
                    amount: *amount,
                    status: RefundStatus::Succeeded,
                })
            })();
            state.remember(account, key, fingerprint, Replay::Refund(answer.clone()));
            answer
        })
        .await
    }

    async fn retrieve(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
    ) -> Result<IntentSnapshot, GatewayError> {
        self.with_state(|state| {
            let now = self.clock.now();
            Ok(state.intent(account, intent, now)?.read())
        })
        .await
    }
}

#[async_trait]
impl ConnectOnboarding for SandboxGateway {
    fn authorize_url(
        &self,
        state: &OAuthState,
        redirect_uri: &str,
    ) -> Result<String, GatewayError> {
        Ok(format!(
            "{}/sandbox/connect/authorize?client_id=sandbox&state={}&redirect_uri={}&response_type=code&scope=read_write",
            self.config.public_url,
            form_encode(state.expose()),
            form_encode(redirect_uri),
        ))
    }

    async fn exchange_code(&self, code: &str) -> Result<ConnectedAccountId, GatewayError> {
        self.with_state(|state| {
            let now = self.clock.now();
            let validity = self.config.code_validity;
            let grant =
                state
                    .codes
                    .get_mut(code.trim())
                    .ok_or_else(|| GatewayError::InvalidGrant {
                        message: "Authorization code does not exist".into(),
                    })?;
            if grant.used {
                return Err(GatewayError::InvalidGrant {
                    message: "Authorization code already used".into(),
                });
            }
            if now >= grant.minted_at + validity {
                return Err(GatewayError::InvalidGrant {
                    message: "Authorization code expired".into(),
                });
            }
            grant.used = true;
            let account =
                ConnectedAccountId::parse(&derived_id("acct_", 16, &["oauth", &grant.state]))
                    .map_err(|e| unexpected(e.to_string()))?;
            if state.deauthorized.get(account.as_str()).is_some() {
                state
                    .deauthorized
                    .insert(account.as_str().to_owned(), false);
            }
            Ok(account)
        })
        .await
    }

    async fn deauthorize(&self, account: &ConnectedAccountId) -> Result<(), GatewayError> {
        self.with_state(|state| {
            state.ensure_reachable(account)?;
            state.deauthorized.insert(account.as_str().to_owned(), true);
            Ok(())
        })
        .await
    }

    async fn retrieve_account(
        &self,
        account: &ConnectedAccountId,
    ) -> Result<AccountSnapshot, GatewayError> {
        self.with_state(|state| {
            state.ensure_reachable(account)?;
            let onboarded = state
                .onboarding
                .get(account.as_str())
                .copied()
                .unwrap_or(true);
            Ok(self.account_snapshot(account, onboarded))
        })
        .await
    }

    async fn create_account(
        &self,
        practitioner: PractitionerId,
        key: &IdempotencyKey,
    ) -> Result<ConnectedAccountId, GatewayError> {
        self.with_state(|state| {
            let practitioner = practitioner.to_string();
            let account = ConnectedAccountId::parse(&derived_id(
                "acct_",
                16,
                &["account", &practitioner, key.as_str()],
            ))
            .map_err(|e| unexpected(e.to_string()))?;
            state
                .onboarding
                .get_or_insert_with(account.as_str().to_owned(), || false);
            Ok(account)
        })
        .await
    }

    /// Onboarding in the sandbox is instant: the link completes it and leads straight
    /// back to `return_url`.
    async fn account_link(
        &self,
        account: &ConnectedAccountId,
        _refresh_url: &str,
        return_url: &str,
    ) -> Result<String, GatewayError> {
        self.with_state(|state| {
            state.ensure_reachable(account)?;
            state.onboarding.insert(account.as_str().to_owned(), true);
            Ok(return_url.to_owned())
        })
        .await
    }
}

#[async_trait]
impl SandboxControl for SandboxGateway {
    async fn checkout(&self, session: &CheckoutSessionId) -> Result<SandboxCheckout, GatewayError> {
        self.with_state(|state| {
            let now = self.clock.now();
            let s = state.session(session)?;
            let status = s.status(now);
            let intent = s.intent.clone();
            let mut page = SandboxCheckout {
                session: s.id.clone(),
                payment: Some(s.payment),
                amount: s.amount,
                description: s.description.clone(),
                mode: s.mode,
                status,
                awaiting_authentication: status == CheckoutStatus::Open
                    && s.setup
                        .as_ref()
                        .is_some_and(|setup| setup.status == SetupStatus::RequiresAction),
                success_url: s.success_url.clone(),
                cancel_url: s.cancel_url.clone(),
            };
            if let Some(i) = intent.and_then(|id| state.intents.get(&id)) {
                page.awaiting_authentication =
                    status == CheckoutStatus::Open && i.status == IntentStatus::RequiresAction;
            }
            Ok(page)
        })
        .await
    }

    async fn pay(
        &self,
        session: &CheckoutSessionId,
        payment_method: &str,
    ) -> Result<SandboxOutcome, GatewayError> {
        self.with_state(|state| {
            let now = self.clock.now();
            let s = Self::open_session(state, session, now)?;
            let card = test_card(payment_method).ok_or_else(|| {
                invalid(
                    Some("resource_missing"),
                    "payment_method",
                    format!(
                        "No such PaymentMethod: '{}'",
                        payment_method.chars().take(64).collect::<String>()
                    ),
                )
            })?;
            let account = s.account.clone();
            state.ensure_reachable(&account)?;
            let s = state.session(session)?;
            if s.mode == CheckoutMode::SaveCard {
                return self.conclude(state, session, card, card.saving, now);
            }
            let hold = HoldRequest {
                account: s.account.clone(),
                payment: s.payment,
                consultation: s.consultation,
                amount: s.amount,
                description: s.description.clone(),
                statement_descriptor_suffix: None,
                off_session: None,
                key: IdempotencyKey::from_stored(s.id.as_str().to_owned()),
            };
            let existing = s.intent.clone();
            // Like Checkout, the intent is created when the patient first pays and kept
            // for the next attempts of the same session.
            let intent_id = match existing {
                Some(id) => id,
                None => {
                    let id = derived_id("pi_", 24, &[account.as_str(), session.as_str()]);
                    state.new_intent(&hold, id.clone())?;
                    state.session(session)?.intent = Some(id.clone());
                    id
                }
            };
            if let Some(i) = state.intents.get_mut(&intent_id) {
                i.settle(now);
                if !matches!(
                    i.status,
                    IntentStatus::RequiresPaymentMethod | IntentStatus::RequiresAction
                ) {
                    return Err(unexpected(format!(
                        "This PaymentIntent cannot be paid because it has a status of {}.",
                        status_name(i.status)
                    )));
                }
            }
            self.conclude(state, session, card, card.behaviour, now)
        })
        .await
    }

    async fn authenticate(
        &self,
        session: &CheckoutSessionId,
        approve: bool,
    ) -> Result<SandboxOutcome, GatewayError> {
        self.with_state(|state| {
            let now = self.clock.now();
            let s = Self::open_session(state, session, now)?;
            // The card waiting for its 3-D Secure answer: the session's saving, or its
            // intent's.
            let waiting = match &s.setup {
                Some(setup) => setup
                    .card
                    .filter(|_| setup.status == SetupStatus::RequiresAction),
                None => s
                    .intent
                    .clone()
                    .and_then(|id| state.intents.get(&id))
                    .filter(|i| i.status == IntentStatus::RequiresAction)
                    .and_then(|i| i.card),
            };
            let Some(card) = waiting else {
                return Err(unexpected("no 3-D Secure step is pending on this session"));
            };
            if approve {
                return self.conclude(state, session, card, CardBehaviour::Succeeds, now);
            }
            let failure = Failure {
                code: Some("payment_intent_authentication_failure".into()),
                decline_code: None,
                message: AUTHENTICATION_FAILED.into(),
            };
            let s = state.session(session)?;
            let event = if let Some(setup) = s.setup.as_mut() {
                setup.status = SetupStatus::RequiresPaymentMethod;
                setup.last_error = Some(failure);
                s.setup_event("setup_intent.setup_failed", now)?
            } else {
                let intent_id = s.intent.clone().unwrap_or_default();
                let intent = state
                    .intents
                    .get_mut(&intent_id)
                    .ok_or_else(|| unexpected("the session's payment is gone"))?;
                intent.fail(failure);
                intent.event("payment_intent.payment_failed", now)?
            };
            Ok(SandboxOutcome {
                events: vec![event],
                next: SandboxNext::TryAgain {
                    message: "The card's authentication failed.".into(),
                },
            })
        })
        .await
    }

    async fn approve_connect(&self, oauth_state: &str) -> Result<String, GatewayError> {
        let oauth_state = oauth_state.trim();
        if oauth_state.is_empty() || oauth_state.len() > 256 {
            return Err(invalid(None, "state", "missing or too long"));
        }
        self.with_state(|state| {
            let now = self.clock.now();
            let n = state
                .minted
                .get_or_insert_with(oauth_state.to_owned(), || 0);
            *n += 1;
            let code = derived_id("ac_", 32, &["code", oauth_state, &n.to_string()]);
            state.codes.insert(
                code.clone(),
                Code {
                    state: oauth_state.to_owned(),
                    minted_at: now,
                    used: false,
                },
            );
            Ok(code)
        })
        .await
    }

    /// Catches the test clock up with the store's (another server may have moved it).
    async fn refresh(&self) -> Result<(), GatewayError> {
        if let Some(store) = &self.store {
            let head = store.head().await.map_err(store_error)?;
            self.clock.catch_up(head.clock_offset);
        }
        Ok(())
    }

    async fn advance_clock(&self, by: Duration) -> Result<SandboxAdvance, GatewayError> {
        if by <= Duration::zero() {
            return Err(invalid(None, "seconds", "the clock only moves forward"));
        }
        self.with_state(|state| {
            let now = self.clock.advance(by);
            let mut due: Vec<(DateTime<Utc>, WebhookEvent)> = Vec::new();
            // Checkouts that expired with an unpaid intent: Stripe cancels that intent.
            let expired: Vec<(DateTime<Utc>, String)> = state
                .sessions
                .values_mut()
                .filter(|s| !s.complete && !s.expiry_told && s.expires_at <= now)
                .filter_map(|s| {
                    s.expiry_told = true;
                    if let Some(setup) = s.setup.as_mut() {
                        setup.status = SetupStatus::Canceled;
                    }
                    s.intent.clone().map(|i| (s.expires_at, i))
                })
                .collect();
            for (at, id) in expired {
                if let Some(i) = state.intents.get_mut(&id)
                    && matches!(
                        i.status,
                        IntentStatus::RequiresPaymentMethod | IntentStatus::RequiresAction
                    )
                {
                    i.status = IntentStatus::Canceled;
                    i.cancellation_reason = Some("abandoned".into());
                    due.push((at, i.event("payment_intent.canceled", at)?));
                }
            }
            for intent in state.intents.values_mut() {
                due.extend(intent.due(now)?);
            }
            // In the order things happened (stable for events of the same instant).
            due.sort_by_key(|(at, _)| *at);
            Ok(SandboxAdvance {
                now,
                events: due.into_iter().map(|(_, e)| e).collect(),
            })
        })
        .await
    }
}

/// `application/x-www-form-urlencoded` encoding of a query value.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(other >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(other & 0x0f)]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_are_found_by_id_or_by_number_with_spaces() {
        assert_eq!(
            test_card("pm_card_visa").map(|c| c.behaviour),
            Some(CardBehaviour::Succeeds)
        );
        assert_eq!(
            test_card("4000 0000 0000 0002").map(|c| c.behaviour),
            Some(GENERIC_DECLINE)
        );
        assert_eq!(
            test_card(" 4000002760003184 ").map(|c| c.behaviour),
            Some(CardBehaviour::RequiresAuthentication)
        );
        assert_eq!(test_card("pm_card_unknown"), None);
        assert_eq!(test_card(""), None);
    }

    #[test]
    fn derived_ids_are_stable_distinct_and_stripe_shaped() {
        let a = derived_id("pi_", 24, &["acct_1", "key"]);
        assert_eq!(a, derived_id("pi_", 24, &["acct_1", "key"]));
        assert_ne!(a, derived_id("pi_", 24, &["acct_1", "key2"]));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(
            derived_id("x_", 24, &["ab", "c"]),
            derived_id("x_", 24, &["a", "bc"])
        );
        assert_eq!(a.len(), 27);
        assert!(PaymentIntentId::parse(&a).is_ok());
    }

    #[test]
    fn query_values_are_form_encoded() {
        assert_eq!(
            form_encode("http://127.0.0.1:8080/cb?x=1&y=a b"),
            "http%3A%2F%2F127.0.0.1%3A8080%2Fcb%3Fx%3D1%26y%3Da+b"
        );
    }
}
