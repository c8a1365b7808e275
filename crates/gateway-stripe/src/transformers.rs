//! The one place Stripe's wire types and the domain's gateway types meet: request
//! parameters from domain requests, domain snapshots and events from Stripe objects,
//! and `GatewayError` from Stripe's error answers.
//!
//! Everything read here came from outside: ids are parsed into their checked types,
//! amounts must be non-negative integers in minor units of a supported currency, and
//! anything that does not fit is a [`Malformed`] answer, never a panic.

use billing_core::gateway::{
    CheckoutMode, CheckoutRequest, CheckoutStart, CheckoutState, CheckoutStatus, ClientSecret,
    GatewayError, GatewayEvent, HoldRequest, IgnoreReason, IntentSnapshot, IntentStatus,
    RefundOutcome, RefundStatus, SetupSnapshot, SetupStatus, WebhookEvent,
};
use billing_core::ids::{
    CheckoutSessionId, ConnectedAccountId, CustomerId, DisputeId, EventId, PaymentId,
    PaymentIntentId, PaymentMethodId, RefundId, SetupIntentId,
};
use billing_core::money::{Currency, Money};
use billing_core::payment::model::{Dispute, DisputeStatus, Failure, Lang, SavedCard};
use billing_core::practitioner::model::{AccountSnapshot, PayoutInterval, PayoutSchedule};
use chrono::{DateTime, Utc};

use crate::client::{CallError, Form};
use crate::secret::redact;
use crate::wire::{self, Expandable};

/// Metadata key of our payment id on intents, charges and sessions.
pub(crate) const PAYMENT_ID: &str = "payment_id";
/// Metadata key of the consultation id.
pub(crate) const CONSULTATION_ID: &str = "consultation_id";

/// What every intent read expands: the charge (capture deadline, refunds) and its
/// balance transaction (Stripe's real fee).
pub(crate) const INTENT_EXPAND: &[&str] = &["latest_charge", "latest_charge.balance_transaction"];

/// What a checkout session read expands: its intent, as above (three levels; Stripe
/// allows four), or its SetupIntent in `setup` mode.
pub(crate) const SESSION_EXPAND: &[&str] = &[
    "payment_intent",
    "payment_intent.latest_charge",
    "payment_intent.latest_charge.balance_transaction",
    "setup_intent",
];

/// How long a card authorisation can be captured: Stripe's default for online card
/// payments, used when a payload does not carry the charge's `capture_before`.
const HOLD_DAYS: i64 = 7;

/// Product name of the Checkout line item when the request has no description.
const DEFAULT_ITEM_NAME: &str = "Teleconsultation";

/// Every event type ConsultPay reads: what `consultpay stripe setup-webhooks` enables
/// on both endpoints. Any other type is acknowledged and ignored.
pub const CONSUMED_EVENTS: &[&str] = &[
    "payment_intent.amount_capturable_updated",
    "payment_intent.succeeded",
    "payment_intent.canceled",
    "payment_intent.payment_failed",
    "setup_intent.succeeded",
    "setup_intent.setup_failed",
    "charge.refunded",
    "charge.refund.updated",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.expired",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "account.updated",
    "account.application.deauthorized",
];

/// A Stripe answer the adapter cannot put in domain terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Malformed(pub String);

impl Malformed {
    fn new(what: impl Into<String>) -> Self {
        Malformed(what.into())
    }
}

impl From<Malformed> for GatewayError {
    /// Stripe answered, but with something unreadable: what happened is unknown to us,
    /// so it is left to retries and reconciliation.
    fn from(m: Malformed) -> Self {
        GatewayError::Unavailable {
            message: format!("unreadable Stripe answer: {}", m.0),
        }
    }
}

/// How a charge's `amount_refunded` counts the uncaptured part of a hold.
///
/// Before API version `2025-03-31.basil`, a partial capture (and the cancellation of
/// an uncaptured charge) created a refund for the released remainder, so
/// `amount_refunded` included money that was never captured. From basil on, it counts
/// real refunds only. Responses are in the pinned version; webhook payloads are in
/// the endpoint's version, which the event's `api_version` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefundAccounting {
    RefundsOnly,
    IncludesReleasedRemainder,
}

impl RefundAccounting {
    /// The accounting of [`API_VERSION`](crate::client::API_VERSION).
    pub(crate) const PINNED: RefundAccounting = RefundAccounting::RefundsOnly;

    pub(crate) fn for_api_version(version: Option<&str>) -> Self {
        // Versions are dated (`2024-06-20`, `2025-03-31.basil`): the date prefix
        // orders them.
        match version {
            Some(v) if v.get(..10).is_some_and(|date| date < "2025-03-31") => {
                RefundAccounting::IncludesReleasedRemainder
            }
            _ => RefundAccounting::PINNED,
        }
    }
}

/// What was refunded after the capture, in minor units.
fn refunded_after_capture(charge: &wire::Charge, accounting: RefundAccounting) -> i64 {
    let refunded = charge.amount_refunded.unwrap_or(0);
    match accounting {
        RefundAccounting::RefundsOnly => refunded,
        RefundAccounting::IncludesReleasedRemainder => {
            match (charge.captured, charge.amount_captured) {
                // Never captured: whatever was "refunded" is the released hold.
                (Some(false), _) => 0,
                (Some(true), Some(captured)) => {
                    let released = charge.amount.saturating_sub(captured).max(0);
                    refunded.saturating_sub(released).max(0)
                }
                // Too old (or too partial) a payload to tell the two apart.
                _ => refunded,
            }
        }
    }
}

fn currency(code: &str) -> Result<Currency, Malformed> {
    code.parse::<Currency>()
        .map_err(|_| Malformed::new(format!("unsupported currency '{}'", truncate(code))))
}

fn money(minor: i64, currency: Currency, what: &str) -> Result<Money, Malformed> {
    if minor < 0 {
        return Err(Malformed::new(format!("negative {what}")));
    }
    Ok(Money::from_minor(minor, currency))
}

fn timestamp(secs: i64, what: &str) -> Result<DateTime<Utc>, Malformed> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| Malformed::new(format!("{what} out of range")))
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

fn intent_status(status: wire::IntentStatus) -> Result<IntentStatus, Malformed> {
    use wire::IntentStatus as W;
    Ok(match status {
        W::RequiresPaymentMethod | W::RequiresSource => IntentStatus::RequiresPaymentMethod,
        W::RequiresConfirmation => IntentStatus::RequiresConfirmation,
        W::RequiresAction | W::RequiresSourceAction => IntentStatus::RequiresAction,
        W::Processing => IntentStatus::Processing,
        W::RequiresCapture => IntentStatus::RequiresCapture,
        W::Canceled => IntentStatus::Canceled,
        W::Succeeded => IntentStatus::Succeeded,
        W::Unknown => return Err(Malformed::new("unknown PaymentIntent status")),
    })
}

fn failure(e: &wire::LastPaymentError) -> Failure {
    Failure {
        code: e.code.clone(),
        decline_code: e.decline_code.clone(),
        message: e.message.as_deref().map(redact).unwrap_or_else(|| {
            match e.kind.as_deref() {
                Some("card_error") => "The card was declined.",
                _ => "The payment failed.",
            }
            .to_owned()
        }),
    }
}

fn payment_of(metadata: &wire::Metadata) -> Option<PaymentId> {
    metadata.get(PAYMENT_ID).and_then(|s| s.parse().ok())
}

/// The domain's view of a PaymentIntent (with its charge and balance transaction when
/// expanded).
pub(crate) fn intent_snapshot(
    pi: &wire::PaymentIntent,
    accounting: RefundAccounting,
) -> Result<IntentSnapshot, Malformed> {
    let id = PaymentIntentId::parse(&pi.id).map_err(|e| Malformed::new(e.to_string()))?;
    let currency = currency(&pi.currency)?;
    let charge = pi.charge();
    // `amount_received` is on every Stripe intent; the charge's `amount_captured` is the
    // same fact for payloads that leave the intent's field out.
    let received = pi
        .amount_received
        .or_else(|| charge.and_then(|c| c.amount_captured))
        .unwrap_or(0);
    let capture_before = charge
        .and_then(|c| {
            c.payment_method_details
                .as_ref()?
                .card
                .as_ref()?
                .capture_before
        })
        .map(|t| timestamp(t, "capture_before"))
        .transpose()?;
    // A fee is only comparable when the balance transaction is in the charge's
    // currency (an account settling in another currency reports it converted).
    let fee = charge
        .and_then(|c| c.balance_transaction.as_ref()?.object())
        .filter(|txn| txn.currency.eq_ignore_ascii_case(&pi.currency))
        .map(|txn| money(txn.fee, currency, "fee"))
        .transpose()?;
    let saved_card = match (
        &pi.customer,
        &pi.payment_method,
        pi.setup_future_usage.as_deref(),
    ) {
        (Some(customer), Some(method), Some("off_session")) => Some(saved_card(customer, method)?),
        _ => None,
    };
    Ok(IntentSnapshot {
        id,
        status: intent_status(pi.status)?,
        amount: money(pi.amount, currency, "amount")?,
        amount_capturable: money(
            pi.amount_capturable.unwrap_or(0),
            currency,
            "amount_capturable",
        )?,
        amount_received: money(received, currency, "amount_received")?,
        amount_refunded: money(
            charge.map_or(0, |c| refunded_after_capture(c, accounting)),
            currency,
            "amount_refunded",
        )?,
        capture_before,
        fee,
        last_error: pi.last_payment_error.as_ref().map(failure),
        cancellation_reason: pi.cancellation_reason.clone(),
        payment: payment_of(&pi.metadata),
        client_secret: pi
            .client_secret
            .as_ref()
            .map(|s| ClientSecret::new(s.expose().to_owned())),
        refunds: None,
        saved_card,
    })
}

fn saved_card(
    customer: &Expandable<wire::Named>,
    method: &Expandable<wire::Named>,
) -> Result<SavedCard, Malformed> {
    Ok(SavedCard {
        customer: CustomerId::parse(customer.id()).map_err(|e| Malformed::new(e.to_string()))?,
        payment_method: PaymentMethodId::parse(method.id())
            .map_err(|e| Malformed::new(e.to_string()))?,
    })
}

pub(crate) fn refund_outcome(r: &wire::Refund) -> Result<RefundOutcome, Malformed> {
    let currency = currency(&r.currency)?;
    Ok(RefundOutcome {
        id: RefundId::parse(&r.id).map_err(|e| Malformed::new(e.to_string()))?,
        amount: money(r.amount, currency, "refund amount")?,
        status: match r.status.as_deref() {
            Some("succeeded") => RefundStatus::Succeeded,
            Some("failed") => RefundStatus::Failed,
            Some("canceled") => RefundStatus::Canceled,
            Some("requires_action") => RefundStatus::RequiresAction,
            // `pending`, or a status this adapter does not know: not final yet.
            _ => RefundStatus::Pending,
        },
    })
}

/// A SetupIntent: the card saved for later holds, or why not.
pub(crate) fn setup_snapshot(si: &wire::SetupIntent) -> Result<SetupSnapshot, Malformed> {
    let status = match si.status.as_str() {
        "requires_payment_method" => SetupStatus::RequiresPaymentMethod,
        "requires_confirmation" => SetupStatus::RequiresConfirmation,
        "requires_action" => SetupStatus::RequiresAction,
        "processing" => SetupStatus::Processing,
        "canceled" => SetupStatus::Canceled,
        "succeeded" => SetupStatus::Succeeded,
        other => {
            return Err(Malformed::new(format!(
                "unknown SetupIntent status '{}'",
                truncate(other)
            )));
        }
    };
    Ok(SetupSnapshot {
        id: SetupIntentId::parse(&si.id).map_err(|e| Malformed::new(e.to_string()))?,
        status,
        saved_card: match (&si.customer, &si.payment_method) {
            (Some(customer), Some(method)) => Some(saved_card(customer, method)?),
            _ => None,
        },
        last_error: si.last_setup_error.as_ref().map(failure),
        payment: payment_of(&si.metadata),
    })
}

/// A dispute, with what it took from the practitioner's balance so far.
pub(crate) fn dispute(d: &wire::Dispute) -> Result<Dispute, Malformed> {
    let currency = currency(&d.currency)?;
    let status = d.status.parse::<DisputeStatus>().map_err(|()| {
        Malformed::new(format!("unknown dispute status '{}'", truncate(&d.status)))
    })?;
    // The withdrawal is a negative amount, a reinstatement a positive one. An account
    // that settles in another currency than the charge's reports them converted: the
    // funds are then counted as the disputed amount itself (what was withdrawn, or
    // given back), and the fee, which has no figure in the charge's currency, is not.
    let mut withdrawn: i64 = 0;
    let mut fee: i64 = 0;
    for txn in &d.balance_transactions {
        if txn.currency.eq_ignore_ascii_case(&d.currency) {
            withdrawn = withdrawn.saturating_sub(txn.amount);
            fee = fee.saturating_add(txn.fee);
        } else {
            let moved = d.amount.saturating_mul(txn.amount.signum());
            withdrawn = withdrawn.saturating_sub(moved);
        }
    }
    Ok(Dispute {
        id: DisputeId::parse(&d.id).map_err(|e| Malformed::new(e.to_string()))?,
        amount: money(d.amount, currency, "dispute amount")?,
        reason: d.reason.clone().unwrap_or_default(),
        status,
        evidence_due_by: d
            .evidence_details
            .as_ref()
            .and_then(|e| e.due_by)
            .map(|t| timestamp(t, "evidence due_by"))
            .transpose()?,
        withdrawn: money(withdrawn.max(0), currency, "dispute withdrawal")?,
        fee: money(fee.max(0), currency, "dispute fee")?,
        transactions: u32::try_from(d.balance_transactions.len()).unwrap_or(u32::MAX),
    })
}

fn payout_schedule(s: &wire::PayoutSchedule) -> Option<PayoutSchedule> {
    let interval = match s.interval.as_str() {
        "manual" => PayoutInterval::Manual,
        "daily" => PayoutInterval::Daily,
        "weekly" => PayoutInterval::Weekly(s.weekly_anchor.clone()?),
        "monthly" => PayoutInterval::Monthly(u8::try_from(s.monthly_anchor?).ok()?),
        _ => return None,
    };
    Some(PayoutSchedule {
        interval,
        delay_days: s.delay_days.and_then(|d| u32::try_from(d).ok()),
    })
}

pub(crate) fn account_snapshot(a: &wire::Account) -> Result<AccountSnapshot, Malformed> {
    let requirements = a.requirements.as_ref();
    Ok(AccountSnapshot {
        id: ConnectedAccountId::parse(&a.id).map_err(|e| Malformed::new(e.to_string()))?,
        charges_enabled: a.charges_enabled,
        payouts_enabled: a.payouts_enabled,
        details_submitted: a.details_submitted,
        disabled_reason: requirements.and_then(|r| r.disabled_reason.clone()),
        currently_due: requirements
            .map(|r| r.currently_due.clone())
            .unwrap_or_default(),
        payout_schedule: a
            .settings
            .as_ref()
            .and_then(|s| s.payouts.as_ref()?.schedule.as_ref())
            .and_then(payout_schedule),
        // A currency ConsultPay does not charge in is simply not reported.
        default_currency: a.default_currency.as_deref().and_then(|c| c.parse().ok()),
        country: a.country.clone(),
    })
}

fn checkout_status(s: &wire::CheckoutSession) -> Result<CheckoutStatus, Malformed> {
    match s.status.as_deref() {
        Some("open") | None => Ok(CheckoutStatus::Open),
        Some("complete") => Ok(CheckoutStatus::Complete),
        Some("expired") => Ok(CheckoutStatus::Expired),
        Some(other) => Err(Malformed::new(format!(
            "unknown Checkout Session status '{}'",
            truncate(other)
        ))),
    }
}

pub(crate) fn checkout_state(s: &wire::CheckoutSession) -> Result<CheckoutState, Malformed> {
    Ok(CheckoutState {
        status: checkout_status(s)?,
        intent: s
            .payment_intent
            .as_ref()
            .and_then(Expandable::object)
            .map(|pi| intent_snapshot(pi, RefundAccounting::PINNED))
            .transpose()?,
        setup: s
            .setup_intent
            .as_ref()
            .and_then(Expandable::object)
            .map(setup_snapshot)
            .transpose()?,
    })
}

pub(crate) fn checkout_started(s: &wire::CheckoutSession) -> Result<CheckoutStart, Malformed> {
    Ok(CheckoutStart {
        intent: s
            .payment_intent
            .as_ref()
            .and_then(|pi| PaymentIntentId::parse(pi.id()).ok()),
        session: Some(CheckoutSessionId::parse(&s.id).map_err(|e| Malformed::new(e.to_string()))?),
        // Checkout makes its SetupIntent when the patient submits: read from the session.
        setup: None,
        redirect_url: Some(
            s.url
                .clone()
                .ok_or_else(|| Malformed::new("the Checkout Session has no URL"))?,
        ),
        client_secret: None,
        expires_at: s
            .expires_at
            .map(|t| timestamp(t, "expires_at"))
            .transpose()?,
        mode: match s.mode.as_deref() {
            Some("setup") => CheckoutMode::SaveCard,
            _ => CheckoutMode::Hold,
        },
    })
}

fn object<T: serde::de::DeserializeOwned>(event: &wire::Event) -> Result<T, Malformed> {
    T::deserialize(&event.data.object)
        .map_err(|e| Malformed::new(format!("{} payload: {e}", truncate(&event.kind))))
}

/// A verified event in domain terms. Only the types the domain uses are parsed; any
/// other type, an event of the other mode than `live` (when known), or a payload in a
/// currency ConsultPay does not charge in is [`GatewayEvent::Ignored`] whatever its
/// payload: acknowledged, never refused.
pub(crate) fn webhook_event(
    event: &wire::Event,
    live: Option<bool>,
) -> Result<WebhookEvent, Malformed> {
    let id = EventId::parse(&event.id).map_err(|e| Malformed::new(e.to_string()))?;
    let account = event
        .account
        .as_deref()
        .map(ConnectedAccountId::parse)
        .transpose()
        .map_err(|e| Malformed::new(e.to_string()))?;
    let accounting = RefundAccounting::for_api_version(event.api_version.as_deref());
    let created = timestamp(event.created, "created")?;
    let foreign_currency = event
        .data
        .object
        .get("currency")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|c| c.parse::<Currency>().is_err());
    let other_mode = matches!((live, event.livemode), (Some(ours), Some(theirs)) if ours != theirs);
    let payload = if other_mode {
        GatewayEvent::Ignored(IgnoreReason::OtherMode)
    } else if !CONSUMED_EVENTS.contains(&event.kind.as_str()) {
        GatewayEvent::Ignored(IgnoreReason::EventType)
    } else if foreign_currency {
        GatewayEvent::Ignored(IgnoreReason::Currency)
    } else {
        consumed_payload(event, &account, created, accounting)?
    };
    Ok(WebhookEvent {
        id,
        kind: event.kind.clone(),
        created,
        account,
        payload,
    })
}

/// The payload of a type of [`CONSUMED_EVENTS`].
fn consumed_payload(
    event: &wire::Event,
    account: &Option<ConnectedAccountId>,
    created: DateTime<Utc>,
    accounting: RefundAccounting,
) -> Result<GatewayEvent, Malformed> {
    let kind = event.kind.as_str();
    Ok(match kind {
        "payment_intent.amount_capturable_updated"
        | "payment_intent.succeeded"
        | "payment_intent.canceled"
        | "payment_intent.payment_failed" => {
            let pi: wire::PaymentIntent = object(event)?;
            let mut snapshot = intent_snapshot(&pi, accounting)?;
            // Event payloads never expand `latest_charge`, so the charge's own
            // `capture_before` is missing: count the card's 7 days from when the hold
            // happened (the event), not from when a late delivery is processed.
            if snapshot.status == IntentStatus::RequiresCapture && snapshot.capture_before.is_none()
            {
                snapshot.capture_before = Some(created + chrono::Duration::days(HOLD_DAYS));
            }
            GatewayEvent::PaymentIntent(snapshot)
        }
        "setup_intent.succeeded" | "setup_intent.setup_failed" => {
            let si: wire::SetupIntent = object(event)?;
            GatewayEvent::SetupIntent(setup_snapshot(&si)?)
        }
        "charge.refunded" => {
            let charge: wire::Charge = object(event)?;
            GatewayEvent::RefundsChanged {
                intent: charge_intent(&charge),
                payment: payment_of(&charge.metadata),
            }
        }
        "charge.refund.updated" | "refund.created" | "refund.updated" | "refund.failed" => {
            let refund: wire::Refund = object(event)?;
            GatewayEvent::RefundsChanged {
                intent: refund
                    .payment_intent
                    .as_ref()
                    .and_then(|pi| PaymentIntentId::parse(pi.id()).ok()),
                payment: payment_of(&refund.metadata),
            }
        }
        "charge.expired" => {
            let charge: wire::Charge = object(event)?;
            GatewayEvent::ChargeExpired {
                intent: charge_intent(&charge),
                payment: payment_of(&charge.metadata),
            }
        }
        "charge.dispute.created"
        | "charge.dispute.updated"
        | "charge.dispute.closed"
        | "charge.dispute.funds_withdrawn"
        | "charge.dispute.funds_reinstated" => {
            let d: wire::Dispute = object(event)?;
            GatewayEvent::Dispute {
                intent: d
                    .payment_intent
                    .as_ref()
                    .and_then(|pi| PaymentIntentId::parse(pi.id()).ok()),
                dispute: dispute(&d)?,
            }
        }
        "account.updated" => {
            let a: wire::Account = object(event)?;
            GatewayEvent::AccountUpdated(account_snapshot(&a)?)
        }
        // The payload is the platform's application; the account is the event's.
        "account.application.deauthorized" => match account {
            Some(account) => GatewayEvent::AccountDeauthorized {
                account: account.clone(),
            },
            None => GatewayEvent::Ignored(IgnoreReason::UnknownAccount),
        },
        _ => GatewayEvent::Ignored(IgnoreReason::EventType),
    })
}

fn charge_intent(charge: &wire::Charge) -> Option<PaymentIntentId> {
    charge
        .payment_intent
        .as_ref()
        .and_then(|pi| PaymentIntentId::parse(pi.id()).ok())
}

// ---------------------------------------------------------------------------------
// Requests

fn minor(amount: &Money, param: &'static str) -> Result<i64, GatewayError> {
    amount.to_minor().map_err(|e| GatewayError::InvalidRequest {
        code: None,
        param: Some(param.to_owned()),
        message: e.to_string(),
    })
}

/// `POST /v1/payment_intents`: a manual-capture card intent with our ids in metadata;
/// off-session with the saved card, confirmed at once, when the request says so.
pub(crate) fn hold_params(h: &HoldRequest, describe: bool) -> Result<Form, GatewayError> {
    let mut form = Form::new()
        .with("amount", minor(&h.amount, "amount")?.to_string())
        .with("currency", h.amount.currency().stripe_code())
        .with("capture_method", "manual")
        .with("payment_method_types[]", "card");
    if describe && !h.description.trim().is_empty() {
        form.push("description", h.description.trim());
    }
    if describe && let Some(suffix) = &h.statement_descriptor_suffix {
        form.push("statement_descriptor_suffix", suffix.as_str());
    }
    if let Some(card) = &h.off_session {
        form = form
            .with("customer", card.customer.as_str())
            .with("payment_method", card.payment_method.as_str())
            .with("off_session", "true")
            .with("confirm", "true");
    }
    Ok(form
        .with(format!("metadata[{PAYMENT_ID}]"), h.payment.to_string())
        .with(
            format!("metadata[{CONSULTATION_ID}]"),
            h.consultation.to_string(),
        ))
}

/// Checkout's and Stripe.js's name for the patient's language.
pub(crate) fn locale(lang: Lang) -> &'static str {
    lang.code()
}

/// `POST /v1/customers` on the practitioner's account: who a saved card belongs to
/// (no health data: the patient's e-mail when given, our ids in metadata).
pub(crate) fn customer_params(r: &CheckoutRequest) -> Form {
    let mut form = Form::new()
        .with("preferred_locales[]", locale(r.locale))
        .with(
            format!("metadata[{PAYMENT_ID}]"),
            r.hold.payment.to_string(),
        )
        .with(
            format!("metadata[{CONSULTATION_ID}]"),
            r.hold.consultation.to_string(),
        );
    if let Some(email) = r.customer_email.as_deref().filter(|e| !e.trim().is_empty()) {
        form.push("email", email.trim());
    }
    form
}

/// `POST /v1/setup_intents` (the Payment Element saving a card for later holds).
pub(crate) fn setup_intent_params(
    r: &CheckoutRequest,
    customer: &CustomerId,
    describe: bool,
) -> Form {
    let h = &r.hold;
    let mut form = Form::new()
        .with("customer", customer.as_str())
        .with("usage", "off_session")
        .with("payment_method_types[]", "card");
    if describe && !h.description.trim().is_empty() {
        form.push("description", h.description.trim());
    }
    form.with(format!("metadata[{PAYMENT_ID}]"), h.payment.to_string())
        .with(
            format!("metadata[{CONSULTATION_ID}]"),
            h.consultation.to_string(),
        )
}

/// `POST /v1/checkout/sessions` for `customer`, in the patient's language. Mode
/// `Hold`: Checkout in `payment` mode whose intent is a manual-capture hold carrying
/// our ids, saving the card for a renewal off-session. Mode `SaveCard`: Checkout in
/// `setup` mode, saving the card for a hold placed later (nothing is charged now).
pub(crate) fn checkout_session_params(
    r: &CheckoutRequest,
    customer: &CustomerId,
) -> Result<Form, GatewayError> {
    let h = &r.hold;
    let description = h.description.trim();
    // Our ids in the metadata of the session itself (`None`) or of the object it
    // makes (`payment_intent_data`, `setup_intent_data`).
    let ids = |form: Form, within: Option<&str>| {
        let key = |k: &str| match within {
            Some(object) => format!("{object}[metadata][{k}]"),
            None => format!("metadata[{k}]"),
        };
        form.with(key(PAYMENT_ID), h.payment.to_string())
            .with(key(CONSULTATION_ID), h.consultation.to_string())
    };
    let mut form = Form::new()
        .with(
            "mode",
            match r.mode {
                CheckoutMode::Hold => "payment",
                CheckoutMode::SaveCard => "setup",
            },
        )
        .with("success_url", r.success_url.as_str())
        .with("cancel_url", r.cancel_url.as_str())
        .with("client_reference_id", h.payment.to_string())
        .with("customer", customer.as_str())
        .with("locale", locale(r.locale))
        .with("payment_method_types[]", "card");
    match r.mode {
        CheckoutMode::Hold => {
            let name = if description.is_empty() {
                DEFAULT_ITEM_NAME
            } else {
                description
            };
            form = form
                .with(
                    "line_items[0][price_data][currency]",
                    h.amount.currency().stripe_code(),
                )
                .with(
                    "line_items[0][price_data][unit_amount]",
                    minor(&h.amount, "amount")?.to_string(),
                )
                .with("line_items[0][price_data][product_data][name]", name)
                .with("line_items[0][quantity]", "1")
                .with("payment_intent_data[capture_method]", "manual")
                .with("payment_intent_data[setup_future_usage]", "off_session");
            if !description.is_empty() {
                form.push("payment_intent_data[description]", description);
            }
            if let Some(suffix) = &h.statement_descriptor_suffix {
                form.push(
                    "payment_intent_data[statement_descriptor_suffix]",
                    suffix.as_str(),
                );
            }
            form = ids(form, Some("payment_intent_data"));
        }
        CheckoutMode::SaveCard => {
            form = form.with("currency", h.amount.currency().stripe_code());
            if !description.is_empty() {
                form.push("setup_intent_data[description]", description);
            }
            form = ids(form, Some("setup_intent_data"));
        }
    }
    Ok(ids(form, None))
}

/// `POST /v1/payment_intents/{id}/capture`.
pub(crate) fn capture_params(amount: &Money) -> Result<Form, GatewayError> {
    Ok(Form::new()
        .with(
            "amount_to_capture",
            minor(amount, "amount_to_capture")?.to_string(),
        )
        .expand(INTENT_EXPAND))
}

/// `POST /v1/refunds`.
pub(crate) fn refund_params(
    intent: &PaymentIntentId,
    amount: &Money,
) -> Result<Form, GatewayError> {
    Ok(Form::new()
        .with("payment_intent", intent.as_str())
        .with("amount", minor(amount, "amount")?.to_string()))
}

// ---------------------------------------------------------------------------------
// Errors

/// Stripe error codes that mean "not in a state that allows this".
const STATE_CODES: &[&str] = &[
    "payment_intent_unexpected_state",
    "charge_already_captured",
    "charge_already_refunded",
    "charge_expired_for_capture",
    "charge_not_refundable",
];

/// Stripe error codes that mean "this connected account cannot be reached".
const ACCOUNT_CODES: &[&str] = &[
    "account_invalid",
    "account_closed",
    "account_country_invalid_address",
];

/// Stripe's answer in domain terms (<https://docs.stripe.com/error-codes>,
/// <https://docs.stripe.com/api/errors>).
pub(crate) fn gateway_error(e: CallError) -> GatewayError {
    match e {
        CallError::Transport { message, .. } => GatewayError::Unavailable { message },
        CallError::Decode { message } => Malformed(message).into(),
        CallError::Status { status } => match status {
            401 => GatewayError::Authentication,
            403 => GatewayError::AccountUnavailable {
                message: "Stripe refused access to the account".into(),
            },
            404 => GatewayError::NotFound {
                message: "no such object".into(),
            },
            429 => GatewayError::RateLimited,
            s if s >= 500 => GatewayError::Unavailable {
                message: format!("Stripe answered {s}"),
            },
            s => GatewayError::InvalidRequest {
                code: None,
                param: None,
                message: format!("Stripe answered {s}"),
            },
        },
        CallError::OAuth {
            status,
            error,
            description,
        } => {
            let message = description.unwrap_or_else(|| error.clone());
            match error.as_str() {
                "invalid_grant" => GatewayError::InvalidGrant { message },
                _ if status >= 500 => GatewayError::Unavailable { message },
                _ if status == 429 => GatewayError::RateLimited,
                _ => GatewayError::InvalidRequest {
                    code: Some(error),
                    param: None,
                    message,
                },
            }
        }
        CallError::Api { status, error } => api_error(status, error),
    }
}

fn api_error(status: u16, error: wire::ApiError) -> GatewayError {
    let kind = error.kind.as_deref();
    let code = error.code.as_deref();
    let message = error
        .message
        .clone()
        .unwrap_or_else(|| format!("Stripe answered {status}"));
    if kind == Some("card_error") || status == 402 {
        return GatewayError::Declined(Failure {
            code: error.code,
            decline_code: error.decline_code,
            message,
        });
    }
    // Another request with the same key still running (409, `idempotency_key_in_use`,
    // whatever its type): its outcome is unknown, not a conflict of parameters.
    if status == 409 || code == Some("idempotency_key_in_use") {
        return GatewayError::Unavailable { message };
    }
    if kind == Some("idempotency_error") {
        return GatewayError::IdempotencyConflict;
    }
    if status == 401 {
        return GatewayError::Authentication;
    }
    if status == 429 || code == Some("rate_limit") || kind == Some("rate_limit_error") {
        return GatewayError::RateLimited;
    }
    if status == 403 || code.is_some_and(|c| ACCOUNT_CODES.contains(&c)) {
        return GatewayError::AccountUnavailable { message };
    }
    if code.is_some_and(|c| STATE_CODES.contains(&c)) {
        return GatewayError::UnexpectedState { message };
    }
    if status == 404 || code == Some("resource_missing") {
        return GatewayError::NotFound { message };
    }
    // 5xx, api_error, and 409 (another request with the same key is still running,
    // or a lock timed out): the outcome is unknown.
    if status >= 500 || status == 409 || kind == Some("api_error") {
        return GatewayError::Unavailable { message };
    }
    GatewayError::InvalidRequest {
        code: error.code,
        param: error.param,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(
        amount: i64,
        captured: Option<i64>,
        refunded: i64,
        is_captured: bool,
    ) -> wire::Charge {
        serde_json::from_value(serde_json::json!({
            "id": "ch_1", "amount": amount, "amount_captured": captured,
            "amount_refunded": refunded, "captured": is_captured, "currency": "eur",
        }))
        .unwrap()
    }

    #[test]
    fn api_versions_before_basil_count_the_released_remainder_as_refunded() {
        use RefundAccounting::*;
        assert_eq!(
            RefundAccounting::for_api_version(Some("2024-06-20")),
            IncludesReleasedRemainder
        );
        assert_eq!(
            RefundAccounting::for_api_version(Some("2017-08-15")),
            IncludesReleasedRemainder
        );
        assert_eq!(
            RefundAccounting::for_api_version(Some("2025-03-31.basil")),
            RefundsOnly
        );
        assert_eq!(
            RefundAccounting::for_api_version(Some("2025-09-30.clover")),
            RefundsOnly
        );
        assert_eq!(RefundAccounting::for_api_version(None), RefundsOnly);
        assert_eq!(RefundAccounting::for_api_version(Some("x")), RefundsOnly);

        // 25.00 held, 18.00 captured, 5.00 refunded since.
        let legacy = charge(2500, Some(1800), 700 + 500, true);
        assert_eq!(
            refunded_after_capture(&legacy, IncludesReleasedRemainder),
            500
        );
        let basil = charge(2500, Some(1800), 500, true);
        assert_eq!(refunded_after_capture(&basil, RefundsOnly), 500);
        // A released hold is not a refund.
        let released = charge(2500, Some(0), 2500, false);
        assert_eq!(
            refunded_after_capture(&released, IncludesReleasedRemainder),
            0
        );
        // Nonsense never underflows.
        let odd = charge(i64::MIN, Some(i64::MAX), i64::MIN, true);
        assert_eq!(refunded_after_capture(&odd, IncludesReleasedRemainder), 0);
    }

    #[test]
    fn every_payout_interval_is_read() {
        let s = |interval: &str, weekly: Option<&str>, monthly: Option<i64>| wire::PayoutSchedule {
            interval: interval.into(),
            delay_days: Some(7),
            weekly_anchor: weekly.map(str::to_owned),
            monthly_anchor: monthly,
        };
        assert_eq!(
            payout_schedule(&s("daily", None, None)).map(|p| p.interval),
            Some(PayoutInterval::Daily)
        );
        assert_eq!(
            payout_schedule(&s("manual", None, None)).map(|p| p.interval),
            Some(PayoutInterval::Manual)
        );
        assert_eq!(
            payout_schedule(&s("weekly", Some("friday"), None)).map(|p| p.interval),
            Some(PayoutInterval::Weekly("friday".into()))
        );
        assert_eq!(
            payout_schedule(&s("monthly", None, Some(15))).map(|p| p.interval),
            Some(PayoutInterval::Monthly(15))
        );
        assert_eq!(payout_schedule(&s("monthly", None, Some(1000))), None);
        assert_eq!(payout_schedule(&s("fortnightly", None, None)), None);
        assert_eq!(
            payout_schedule(&s("daily", None, None)).and_then(|p| p.delay_days),
            Some(7)
        );
    }

    #[test]
    fn unknown_statuses_and_negative_amounts_are_malformed_not_guessed() {
        let pi: wire::PaymentIntent = serde_json::from_value(serde_json::json!({
            "id": "pi_1", "amount": 100, "currency": "eur", "status": "requires_time_travel"
        }))
        .unwrap();
        assert!(intent_snapshot(&pi, RefundAccounting::PINNED).is_err());
        let pi: wire::PaymentIntent = serde_json::from_value(serde_json::json!({
            "id": "pi_1", "amount": -100, "currency": "eur", "status": "succeeded"
        }))
        .unwrap();
        assert!(intent_snapshot(&pi, RefundAccounting::PINNED).is_err());
        let pi: wire::PaymentIntent = serde_json::from_value(serde_json::json!({
            "id": "pi_1", "amount": 100, "currency": "xts", "status": "succeeded"
        }))
        .unwrap();
        assert!(intent_snapshot(&pi, RefundAccounting::PINNED).is_err());
        let pi: wire::PaymentIntent = serde_json::from_value(serde_json::json!({
            "id": "ch_1", "amount": 100, "currency": "eur", "status": "succeeded"
        }))
        .unwrap();
        assert!(intent_snapshot(&pi, RefundAccounting::PINNED).is_err());
    }

    #[test]
    fn old_status_names_map_to_their_successors() {
        assert_eq!(
            intent_status(wire::IntentStatus::RequiresSource),
            Ok(IntentStatus::RequiresPaymentMethod)
        );
        assert_eq!(
            intent_status(wire::IntentStatus::RequiresSourceAction),
            Ok(IntentStatus::RequiresAction)
        );
    }
}
