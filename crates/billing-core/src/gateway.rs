//! Ports to the payment processor: the payment gateway (holds, captures, releases,
//! refunds), Connect onboarding, webhook verification, and the sandbox's stand-in
//! pages. The Stripe adapter and the in-process sandbox implement them; the domain
//! only ever sees the types below, never Stripe's JSON.
//!
//! Every write takes an [`IdempotencyKey`] derived from the payment and the operation:
//! implementations MUST send it (Stripe's `Idempotency-Key`) so a retry never charges
//! twice.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use chrono::Duration;

use crate::ids::{
    CheckoutSessionId, ConnectedAccountId, ConsultationId, EventId, PaymentId, PaymentIntentId,
    PractitionerId, RefundId, SetupIntentId,
};
use crate::money::Money;
use crate::payment::model::{
    Dispute, Failure, IdempotencyKey, Lang, PaymentEvent, RefundLine, SavedCard,
};
use crate::practitioner::model::AccountSnapshot;
use crate::repository::RepositoryError;
use crate::secrets::OAuthState;

/// Why the gateway refused or could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum GatewayError {
    /// The card was declined or its authentication failed.
    #[error("card declined: {}", .0.message)]
    Declined(Failure),
    /// The object is not in a state that allows this (e.g. capturing a cancelled intent).
    #[error("unexpected state: {message}")]
    UnexpectedState {
        /// The gateway's explanation.
        message: String,
    },
    /// Stripe refused the parameters.
    #[error("invalid request{}: {message}", param.as_ref().map(|p| format!(" ({p})")).unwrap_or_default())]
    InvalidRequest {
        /// Stripe's error code (`parameter_invalid_integer`, …), when it gave one.
        code: Option<String>,
        /// The parameter Stripe refused, when it named one.
        param: Option<String>,
        /// The gateway's explanation.
        message: String,
    },
    /// The idempotency key was used before with different parameters.
    #[error("idempotency key reused with different parameters")]
    IdempotencyConflict,
    /// No such object.
    #[error("not found: {message}")]
    NotFound {
        /// The gateway's explanation.
        message: String,
    },
    /// The connected account cannot be reached: deauthorised, or not ours.
    #[error("the connected account is not reachable: {message}")]
    AccountUnavailable {
        /// The gateway's explanation.
        message: String,
    },
    /// The OAuth authorisation code is unknown, expired or already used.
    #[error("authorisation code rejected: {message}")]
    InvalidGrant {
        /// The gateway's explanation.
        message: String,
    },
    /// Too many requests even after retries.
    #[error("rate limited by the gateway")]
    RateLimited,
    /// The platform's own API key was refused.
    #[error("the platform's API key was refused")]
    Authentication,
    /// Timeout, network failure or gateway error: the outcome of a write is unknown
    /// and must be settled by retrying with the same key or by reconciliation.
    #[error("gateway unavailable: {message}")]
    Unavailable {
        /// What went wrong (timeout, status), for logs.
        message: String,
    },
    /// A feature the operator has not configured (e.g. no Connect client id).
    #[error("not configured: {0}")]
    // What is missing is a fact of this server's configuration: never stored.
    NotConfigured(#[cfg_attr(feature = "serde", serde(skip))] &'static str),
}

/// The client secret of a PaymentIntent, for the Payment Element. A secret: never
/// logged, never stored by the domain (with the `serde` feature the sandbox gateway,
/// which stands in for Stripe, keeps the ones it issued, as Stripe does).
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps the secret the gateway returned.
    pub fn new(s: String) -> Self {
        ClientSecret(s)
    }
    /// The secret itself, to hand to the Payment Element in the patient's browser only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(*** ***)")
    }
}

/// A PaymentIntent's status, as Stripe names them.
// Exhaustive on purpose: gateway adapters translate every status to and from Stripe's
// wire name (the sandbox names the intents it simulates), and a new one also changes
// `IntentSnapshot::events`; a wildcard arm in an adapter would hide it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum IntentStatus {
    /// No card yet, or the last one failed (see [`IntentSnapshot::last_error`]).
    RequiresPaymentMethod,
    /// A card is attached; the intent is not confirmed yet.
    RequiresConfirmation,
    /// The patient must act (3-D Secure).
    RequiresAction,
    /// Being processed by the card network.
    Processing,
    /// Authorised and waiting for capture: the hold is in place.
    RequiresCapture,
    /// Cancelled: released on request, or lapsed (see
    /// [`IntentSnapshot::cancellation_reason`]).
    Canceled,
    /// Captured.
    Succeeded,
}

/// What the gateway says about a payment's intent right now.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IntentSnapshot {
    /// The intent (`pi_…`).
    pub id: PaymentIntentId,
    /// Its status.
    pub status: IntentStatus,
    /// The amount the intent is for (the hold).
    pub amount: Money,
    /// What may still be captured (the hold while `RequiresCapture`, zero otherwise).
    pub amount_capturable: Money,
    /// What was captured; zero when the payload does not say.
    pub amount_received: Money,
    /// Cumulative amount refunded on the intent's charge.
    pub amount_refunded: Money,
    /// The card network's capture deadline, when the gateway reports it.
    pub capture_before: Option<DateTime<Utc>>,
    /// Stripe's real fee, from the charge's balance transaction, when known.
    pub fee: Option<Money>,
    /// Why the last authorisation attempt failed, if it did.
    pub last_error: Option<Failure>,
    /// Stripe's `cancellation_reason` (`requested_by_customer`, `automatic`, …).
    pub cancellation_reason: Option<String>,
    /// Our payment id, from the intent's metadata.
    pub payment: Option<PaymentId>,
    /// The intent's client secret, for the Payment Element, when the gateway gave it.
    pub client_secret: Option<ClientSecret>,
    /// Every refund of the intent's charge, when the gateway was asked for them (a
    /// read); `None` when the snapshot does not say (an event's payload).
    pub refunds: Option<Vec<RefundLine>>,
    /// The card, when the intent saved it for later off-session use.
    pub saved_card: Option<SavedCard>,
}

impl IntentSnapshot {
    /// The payment events this snapshot stands for, oldest first. Applying them with
    /// [`Payment::apply_from_gateway`](crate::payment::model::Payment::apply_from_gateway)
    /// brings a payment up to date whatever it last knew: steps it already took are
    /// recognised as unchanged or stale.
    pub fn events(&self) -> Vec<PaymentEvent> {
        let hold = || PaymentEvent::HoldPlaced {
            amount: self.amount,
            capture_before: self.capture_before,
        };
        let saved = || self.saved_card.clone().map(PaymentEvent::CardSaved);
        match self.status {
            IntentStatus::RequiresCapture => saved()
                .into_iter()
                .chain([PaymentEvent::HoldPlaced {
                    amount: if self.amount_capturable.is_positive() {
                        self.amount_capturable
                    } else {
                        self.amount
                    },
                    capture_before: self.capture_before,
                }])
                .collect(),
            IntentStatus::Succeeded => {
                let mut events = vec![hold()];
                // A payload that does not say how much was captured says nothing about
                // the capture: it is never read as "captured 0".
                if self.amount_received.is_positive() {
                    events.push(PaymentEvent::Captured {
                        amount: self.amount_received,
                        fee: self.fee.map(crate::fees::Fee::reported),
                    });
                }
                // Itemised refunds are the truth; the cumulative figure stands in only
                // when the snapshot lists none.
                match &self.refunds {
                    Some(list) if !list.is_empty() => {
                        events.push(PaymentEvent::RefundsReported(list.clone()));
                    }
                    _ if self.amount_refunded.is_positive() => {
                        events.push(PaymentEvent::Refunded {
                            total: self.amount_refunded,
                        });
                    }
                    _ => {}
                }
                if let Some(fee) = self.fee {
                    events.push(PaymentEvent::FeeReported { fee });
                }
                events
            }
            IntentStatus::Canceled => match self.cancellation_reason.as_deref() {
                Some("automatic" | "expired") => vec![PaymentEvent::Expired],
                _ => vec![PaymentEvent::Released],
            },
            IntentStatus::RequiresPaymentMethod => self
                .last_error
                .clone()
                .map(PaymentEvent::AuthorizationFailed)
                .into_iter()
                .collect(),
            IntentStatus::RequiresConfirmation
            | IntentStatus::RequiresAction
            | IntentStatus::Processing => vec![],
        }
    }
}

/// Where a SetupIntent stands (Stripe's statuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum SetupStatus {
    /// No card yet, or the last one failed (see [`SetupSnapshot::last_error`]).
    RequiresPaymentMethod,
    /// A card is attached; not confirmed yet.
    RequiresConfirmation,
    /// The patient must act (3-D Secure).
    RequiresAction,
    /// Being processed.
    Processing,
    /// Cancelled: nothing will be saved.
    Canceled,
    /// The card is saved.
    Succeeded,
}

/// What the gateway says about the saving of a card without a charge (Checkout in
/// `setup` mode, or a SetupIntent for the Payment Element).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupSnapshot {
    /// The SetupIntent (`seti_…`).
    pub id: SetupIntentId,
    /// Its status.
    pub status: SetupStatus,
    /// The card, once saved on a customer.
    pub saved_card: Option<SavedCard>,
    /// Why saving the card failed, if it did.
    pub last_error: Option<Failure>,
    /// Our payment id, from the SetupIntent's metadata.
    pub payment: Option<PaymentId>,
}

impl SetupSnapshot {
    /// The payment events this snapshot stands for.
    pub fn events(&self) -> Vec<PaymentEvent> {
        match (self.status, &self.saved_card, &self.last_error) {
            (SetupStatus::Succeeded, Some(card), _) => vec![PaymentEvent::CardSaved(card.clone())],
            (SetupStatus::RequiresPaymentMethod, _, Some(failure)) => {
                vec![PaymentEvent::AuthorizationFailed(failure.clone())]
            }
            _ => vec![],
        }
    }
}

/// Create a manual-capture intent (a hold) on the practitioner's account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldRequest {
    /// The practitioner's connected account the hold is placed on.
    pub account: ConnectedAccountId,
    /// Our payment, put in the intent's metadata.
    pub payment: PaymentId,
    /// The consultation, put in the intent's metadata.
    pub consultation: ConsultationId,
    /// The amount to hold: the payment's amount (a renewal holds what the current hold
    /// is for).
    pub amount: Money,
    /// Shown in the Stripe dashboard and on receipts: the practitioner's label and the
    /// date, never more than the practitioner chose (no health data).
    pub description: String,
    /// Appended to the account's statement descriptor on the patient's bank statement
    /// (Stripe's `statement_descriptor_suffix`), when the practitioner set one.
    pub statement_descriptor_suffix: Option<String>,
    /// Place the hold off-session with this saved card (the patient is not there:
    /// a declined card or a bank asking for authentication fails the hold).
    pub off_session: Option<SavedCard>,
    /// The `Idempotency-Key` to send: the same request again MUST NOT create a second
    /// intent.
    pub key: IdempotencyKey,
}

/// What the patient's authorisation step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CheckoutMode {
    /// Hold the amount now (manual capture), and save the card so a hold that nears
    /// its deadline can be renewed off-session.
    Hold,
    /// Only save the card now (nothing held): the consultation is further ahead than a
    /// hold can last, and the hold is placed off-session in time.
    SaveCard,
}

/// Set up the patient's authorisation step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutRequest {
    /// The hold to place (in `SaveCard` mode, what the card is saved for).
    pub hold: HoldRequest,
    /// Where the gateway sends the patient back after authorising.
    pub success_url: String,
    /// Where the gateway sends the patient back if they give up.
    pub cancel_url: String,
    /// An intent already created for this payment, to reuse rather than duplicate.
    pub existing_intent: Option<PaymentIntentId>,
    /// The patient's e-mail, to prefill the hosted page and receipts, if known.
    pub customer_email: Option<String>,
    /// Hold now, or only save the card.
    pub mode: CheckoutMode,
    /// The patient's language: the hosted page's `locale`.
    pub locale: Lang,
}

/// Where the patient goes to authorise: a hosted page, and/or a client secret for an
/// embedded Payment Element.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CheckoutStart {
    /// The intent, when the gateway created (or reused) one now; Checkout creates its own
    /// when the patient submits a card.
    pub intent: Option<PaymentIntentId>,
    /// The Checkout Session, when the patient pays on a hosted page.
    pub session: Option<CheckoutSessionId>,
    /// The SetupIntent saving the card (Payment Element, mode `SaveCard`); Checkout
    /// makes its own, read from the session.
    pub setup: Option<SetupIntentId>,
    /// The hosted page to send the patient to; `None` for the Payment Element.
    pub redirect_url: Option<String>,
    /// The client secret of the intent (mode `Hold`) or of the SetupIntent (mode
    /// `SaveCard`) for the Payment Element.
    pub client_secret: Option<ClientSecret>,
    /// When the hosted page stops accepting payment.
    pub expires_at: Option<DateTime<Utc>>,
    /// What the page does: the request's mode.
    pub mode: CheckoutMode,
}

/// Where a checkout session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckoutStatus {
    /// The patient may still pay.
    Open,
    /// The patient paid (or saved their card).
    Complete,
    /// Closed without payment.
    Expired,
}

/// A checkout session as the gateway sees it now
/// ([`PaymentGateway::retrieve_checkout`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutState {
    /// Where the session stands.
    pub status: CheckoutStatus,
    /// The intent the session made, once the patient submitted a card.
    pub intent: Option<IntentSnapshot>,
    /// The card saving of a session in `setup` mode.
    pub setup: Option<SetupSnapshot>,
}

pub use crate::payment::model::RefundState as RefundStatus;

/// A refund as the gateway accepted it ([`PaymentGateway::refund`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RefundOutcome {
    /// The refund (`re_…`).
    pub id: RefundId,
    /// The amount refunded.
    pub amount: Money,
    /// Usually `Pending` or `Succeeded` at first; it may still fail later.
    pub status: RefundStatus,
}

impl RefundOutcome {
    /// The refund as a line of the payment's refunds.
    pub fn line(&self) -> RefundLine {
        RefundLine {
            id: self.id.clone(),
            amount: self.amount,
            status: self.status,
        }
    }
}

/// Holds, captures, releases and refunds on the practitioner's connected account
/// (direct charges: every call carries the account).
///
/// Errors: a declined card MUST be [`GatewayError::Declined`]; an operation the
/// intent's state forbids MUST be [`GatewayError::UnexpectedState`]; an unknown
/// intent [`GatewayError::NotFound`]; an unreachable account
/// [`GatewayError::AccountUnavailable`]; any outcome that is unknown (timeout, 5xx)
/// MUST be [`GatewayError::Unavailable`], never a guess.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Creates a PaymentIntent with `capture_method=manual` for `req.amount`, with
    /// the payment and consultation ids in its metadata. Idempotent on `req.key`.
    /// With `req.off_session`, confirms it at once off-session with the saved card: a
    /// card that declines or whose bank asks for authentication MUST be
    /// [`GatewayError::Declined`] (code `authentication_required` for the latter),
    /// never an intent left waiting for the patient.
    async fn create_hold(&self, req: &HoldRequest) -> Result<IntentSnapshot, GatewayError>;

    /// Prepares the patient's authorisation: a hosted checkout page (Stripe Checkout
    /// in `payment` mode with manual capture, or the sandbox card page) and/or the
    /// client secret of an intent for the Payment Element.
    async fn start_checkout(&self, req: &CheckoutRequest) -> Result<CheckoutStart, GatewayError>;

    /// Closes an open checkout session so it can no longer be paid (Stripe cancels
    /// the intent the session made, if any). A session that is no longer open
    /// (expired, or completed) is not an error.
    async fn expire_checkout(
        &self,
        account: &ConnectedAccountId,
        session: &CheckoutSessionId,
        key: &IdempotencyKey,
    ) -> Result<(), GatewayError>;

    /// Where a checkout session stands, with its intent once there is one.
    async fn retrieve_checkout(
        &self,
        account: &ConnectedAccountId,
        session: &CheckoutSessionId,
    ) -> Result<CheckoutState, GatewayError>;

    /// A SetupIntent the Payment Element is saving a card with, as it is now.
    async fn retrieve_setup(
        &self,
        account: &ConnectedAccountId,
        setup: &SetupIntentId,
    ) -> Result<SetupSnapshot, GatewayError>;

    /// Captures `amount` (≤ the authorised amount) with `amount_to_capture`; the rest
    /// of the hold is released by the gateway.
    async fn capture(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        amount: &Money,
        key: &IdempotencyKey,
    ) -> Result<IntentSnapshot, GatewayError>;

    /// Cancels the intent, releasing the hold.
    async fn release(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        key: &IdempotencyKey,
    ) -> Result<IntentSnapshot, GatewayError>;

    /// Refunds `amount` of the captured charge.
    async fn refund(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        amount: &Money,
        key: &IdempotencyKey,
    ) -> Result<RefundOutcome, GatewayError>;

    /// Reads the intent (with its charge's capture deadline, its fee and, once
    /// captured, every refund of its charge in `refunds`).
    async fn retrieve(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
    ) -> Result<IntentSnapshot, GatewayError>;
}

/// Linking a practitioner's own Stripe account to the platform (C1).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ConnectOnboarding: Send + Sync {
    /// The consent page URL (`response_type=code`, `scope=read_write`, `client_id`,
    /// `state`, `redirect_uri`). MUST fail with [`GatewayError::NotConfigured`] when the
    /// platform has no Connect client id.
    fn authorize_url(&self, state: &OAuthState, redirect_uri: &str)
    -> Result<String, GatewayError>;

    /// Exchanges the authorisation code for the connected account id. An unknown,
    /// expired or reused code MUST be [`GatewayError::InvalidGrant`].
    async fn exchange_code(&self, code: &str) -> Result<ConnectedAccountId, GatewayError>;

    /// Revokes the platform's access to the account. The account itself is untouched.
    /// An account that is already disconnected MUST be
    /// [`GatewayError::AccountUnavailable`].
    async fn deauthorize(&self, account: &ConnectedAccountId) -> Result<(), GatewayError>;

    /// Reads the account: can it take charges and payouts, and why not.
    async fn retrieve_account(
        &self,
        account: &ConnectedAccountId,
    ) -> Result<AccountSnapshot, GatewayError>;

    /// Creates a connected account for the Account Links path. Idempotent on `key`.
    async fn create_account(
        &self,
        practitioner: PractitionerId,
        key: &IdempotencyKey,
    ) -> Result<ConnectedAccountId, GatewayError>;

    /// An `account_onboarding` Account Link for `account`.
    async fn account_link(
        &self,
        account: &ConnectedAccountId,
        refresh_url: &str,
        return_url: &str,
    ) -> Result<String, GatewayError>;
}

/// A webhook event, verified and turned into domain terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Stripe's event id (`evt_…`): deliveries are de-duplicated on it.
    pub id: EventId,
    /// Stripe's event type, e.g. `payment_intent.succeeded`.
    pub kind: String,
    /// When Stripe created the event.
    pub created: DateTime<Utc>,
    /// The connected account the event happened on (`account` field of Connect events).
    pub account: Option<ConnectedAccountId>,
    /// What the event tells the domain.
    pub payload: GatewayEvent,
}

/// What a gateway event tells the domain.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayEvent {
    /// `payment_intent.*`: the intent as it was when the event happened.
    PaymentIntent(IntentSnapshot),
    /// `setup_intent.*`: a card saved (or refused) for later holds.
    SetupIntent(SetupSnapshot),
    /// `charge.refunded`, `charge.refund.updated`, `refund.*`: the charge's refunds
    /// changed; they are read again from the gateway (a payload may be older than
    /// what another event already said).
    RefundsChanged {
        /// The intent whose charge it is, if the payload says.
        intent: Option<PaymentIntentId>,
        /// Our payment, from the metadata, if the payload says.
        payment: Option<PaymentId>,
    },
    /// `charge.expired`: an uncaptured charge lapsed.
    ChargeExpired {
        /// The intent whose charge lapsed, if the payload says.
        intent: Option<PaymentIntentId>,
        /// Our payment, from the metadata, if the payload says.
        payment: Option<PaymentId>,
    },
    /// `charge.dispute.*`: the dispute as it is now, with the intent it is about.
    Dispute {
        /// The dispute, whole.
        dispute: Dispute,
        /// The intent of the disputed charge, if the payload says.
        intent: Option<PaymentIntentId>,
    },
    /// `account.updated`.
    AccountUpdated(AccountSnapshot),
    /// `account.application.deauthorized`: the practitioner disconnected us at Stripe.
    AccountDeauthorized {
        /// The account that disconnected the platform.
        account: ConnectedAccountId,
    },
    /// Well signed, but not for us: acknowledged (2xx) and ignored, for this reason.
    Ignored(IgnoreReason),
}

/// Why a well-signed event changed nothing. Acknowledged all the same: Stripe retries
/// refused deliveries for days and then disables the endpoint. Labels are a closed set
/// (metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IgnoreReason {
    /// A type ConsultPay does not read.
    EventType,
    /// A test-mode event on a live server, or the reverse.
    OtherMode,
    /// A currency ConsultPay does not charge in.
    Currency,
    /// No payment of ours (the practitioner's other business on their account).
    UnknownPayment,
    /// From another connected account than the payment's.
    OtherAccount,
    /// About an intent that is not the payment's own (an earlier attempt, a hold a
    /// renewal replaced, or an intent someone else made).
    OtherIntent,
    /// About a payment whose checkout never started: no account is recorded yet.
    NoAccountYet,
    /// About an account no practitioner is linked to.
    UnknownAccount,
    /// Already known: nothing to change.
    NoChange,
}

impl IgnoreReason {
    /// Every reason, in declaration order (the closed set of metric labels).
    pub const ALL: [IgnoreReason; 9] = [
        IgnoreReason::EventType,
        IgnoreReason::OtherMode,
        IgnoreReason::Currency,
        IgnoreReason::UnknownPayment,
        IgnoreReason::OtherAccount,
        IgnoreReason::OtherIntent,
        IgnoreReason::NoAccountYet,
        IgnoreReason::UnknownAccount,
        IgnoreReason::NoChange,
    ];

    /// The stable label (logs, metrics, the inbox's outcome).
    pub const fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::EventType => "event_type",
            IgnoreReason::OtherMode => "other_mode",
            IgnoreReason::Currency => "currency",
            IgnoreReason::UnknownPayment => "unknown_payment",
            IgnoreReason::OtherAccount => "other_account",
            IgnoreReason::OtherIntent => "other_intent",
            IgnoreReason::NoAccountYet => "no_account_yet",
            IgnoreReason::UnknownAccount => "unknown_account",
            IgnoreReason::NoChange => "no_change",
        }
    }
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a webhook delivery was refused: nothing is applied, and the delivery is
/// answered with an error (Stripe retries it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The request has no `Stripe-Signature` header.
    #[error("no Stripe-Signature header")]
    MissingSignature,
    /// The header is not `t=…,v1=…`.
    #[error("the Stripe-Signature header is malformed")]
    MalformedSignature,
    /// No `v1` signature matches the body with the endpoint's secret.
    #[error("no signature matches")]
    BadSignature,
    /// The signature's timestamp is further from the clock than the adapter's tolerance
    /// (300 s by default): a possible replay.
    #[error("the signature timestamp is outside the tolerance")]
    Stale,
    /// Well signed, but the body is not an event the adapter can read; carries why.
    #[error("the event body is not a Stripe event: {0}")]
    MalformedEvent(String),
    /// The server has no webhook secret, so nothing can be verified.
    #[error("no webhook secret is configured")]
    NotConfigured,
}

/// Verifies a webhook delivery and parses it (C9). No I/O: the adapter checks
/// `Stripe-Signature` (HMAC-SHA256 of `{t}.{raw body}`, any `v1` matching, constant-time
/// comparison, 300 s tolerance against its clock port) before reading the body.
#[cfg_attr(test, mockall::automock)]
pub trait WebhookVerifier: Send + Sync {
    /// Checks the signature of `body` (the raw bytes as received) against
    /// `signature_header`, then parses the event. An event of a type the domain does not
    /// read is still `Ok`, as [`GatewayEvent::Ignored`].
    #[allow(clippy::needless_lifetimes)] // mockall needs the lifetime named
    fn verify<'a>(
        &self,
        signature_header: Option<&'a str>,
        body: &[u8],
    ) -> Result<WebhookEvent, WebhookError>;
}

/// The sandbox's stand-ins for Stripe's hosted pages (checkout and 3-D Secure), so
/// every flow runs with no Stripe account. Only the sandbox gateway implements it.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SandboxControl: Send + Sync {
    /// What the checkout page shows.
    async fn checkout(&self, session: &CheckoutSessionId) -> Result<SandboxCheckout, GatewayError>;

    /// Pays the session with one of Stripe's test payment methods (`pm_card_visa`,
    /// `pm_card_chargeDeclined`, `pm_card_authenticationRequired`, …).
    async fn pay(
        &self,
        session: &CheckoutSessionId,
        payment_method: &str,
    ) -> Result<SandboxOutcome, GatewayError>;

    /// Completes (or fails) the 3-D Secure step the session is waiting on.
    async fn authenticate(
        &self,
        session: &CheckoutSessionId,
        approve: bool,
    ) -> Result<SandboxOutcome, GatewayError>;

    /// A one-time authorisation code for the sandbox OAuth consent page.
    async fn approve_connect(&self, state: &str) -> Result<String, GatewayError>;

    /// Moves the sandbox's test clock forward by `by` (the clock the whole server
    /// reads in sandbox mode, like a Stripe test clock) and returns the new time with
    /// the events that became due meanwhile (holds that lapsed, refunds that failed,
    /// disputes opened or closed), in order.
    async fn advance_clock(&self, by: Duration) -> Result<SandboxAdvance, GatewayError>;

    /// Catches up with what other servers sharing the sandbox did to its test clock
    /// (a sandbox of one process has nothing to do).
    async fn refresh(&self) -> Result<(), GatewayError> {
        Ok(())
    }
}

/// Where the sandbox gateway keeps its simulated Stripe objects, so that they survive
/// a restart and every server on one database works on the same sandbox.
///
/// The store holds rows (a `kind`, an `id` and an opaque `body` the sandbox wrote),
/// each stamped with the version of the write that last changed it, and a
/// [`SandboxHead`]: the latest version and the test clock's offset. Writes are
/// serialised: [`SandboxStore::begin`] takes the one writer lock (across processes,
/// so a lock in the database), the sandbox reads what changed since the version it
/// last saw, works, and commits what it changed as the next version.
///
/// # Contract
///
/// (Checked by `storage-seaorm`'s tests on SQLite and PostgreSQL.)
///
/// - while one [`SandboxWrite`] is open, another `begin` (from any process) waits;
/// - a dropped write changes nothing;
/// - `changed_since(v)` returns every row whose last write is after version `v`;
/// - `commit` replaces rows with the same `kind` and `id`.
#[async_trait]
pub trait SandboxStore: Send + Sync {
    /// Takes the writer lock, held until the write is committed or dropped.
    async fn begin(&self) -> Result<Box<dyn SandboxWrite>, RepositoryError>;

    /// The latest head, without taking the lock.
    async fn head(&self) -> Result<SandboxHead, RepositoryError>;
}

/// A write in progress on a [`SandboxStore`]: holds the writer lock.
#[async_trait]
pub trait SandboxWrite: Send {
    /// The head as it was when the lock was taken.
    fn head(&self) -> SandboxHead;

    /// Every row last written after `version`, in no particular order.
    async fn changed_since(&mut self, version: i64) -> Result<Vec<SandboxRow>, RepositoryError>;

    /// Writes `rows` (inserted, or replacing the row of the same kind and id) and the
    /// clock's offset as version `head().version + 1`, commits and releases the lock.
    async fn commit(
        self: Box<Self>,
        rows: Vec<SandboxRow>,
        clock_offset: Duration,
    ) -> Result<SandboxHead, RepositoryError>;
}

/// The state of a [`SandboxStore`] as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SandboxHead {
    /// The version of the latest write (0: nothing written yet).
    pub version: i64,
    /// How far the sandbox's test clock is ahead of the system clock.
    pub clock_offset: Duration,
}

/// One object of a [`SandboxStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxRow {
    /// What it is (`intent`, `session`, …): with `id`, what makes it unique.
    pub kind: String,
    /// The object's id (`pi_…`, `cs_…`, …), unique within its `kind`.
    pub id: String,
    /// What the sandbox wrote (JSON).
    pub body: String,
}

/// The sandbox clock after a move, and what happened meanwhile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxAdvance {
    /// The sandbox clock's new time.
    pub now: DateTime<Utc>,
    /// The events that became due meanwhile, in order, as webhooks would carry them.
    pub events: Vec<WebhookEvent>,
}

/// The sandbox checkout page's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxCheckout {
    /// The session the page is for.
    pub session: CheckoutSessionId,
    /// Our payment, from the session's metadata.
    pub payment: Option<PaymentId>,
    /// The amount held (or that a hold will be, in `SaveCard` mode).
    pub amount: Money,
    /// The hold's description.
    pub description: String,
    /// Whether the page holds the amount or only saves the card.
    pub mode: CheckoutMode,
    /// Where the session stands.
    pub status: CheckoutStatus,
    /// The card is waiting for a 3-D Secure answer.
    pub awaiting_authentication: bool,
    /// Where the patient goes back after paying.
    pub success_url: String,
    /// Where the patient goes back if they give up.
    pub cancel_url: String,
}

/// What happened when the sandbox page was submitted: the events a webhook would
/// carry, and where the browser goes next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxOutcome {
    /// The events the submission caused, in order.
    pub events: Vec<WebhookEvent>,
    /// Where the browser goes next.
    pub next: SandboxNext,
}

/// Where the sandbox checkout page sends the browser after a submission.
// Exhaustive on purpose: the sandbox pages send the browser somewhere for each step;
// a wildcard arm there would send it to the wrong page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SandboxNext {
    /// Back to the pay page.
    Return(String),
    /// Show the 3-D Secure challenge.
    Authenticate,
    /// Declined: stay on the checkout page to try another card.
    TryAgain {
        /// The decline message to show.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    fn eur(m: i64) -> Money {
        Money::from_minor(m, Currency::Eur)
    }

    fn snapshot(status: IntentStatus) -> IntentSnapshot {
        IntentSnapshot {
            id: PaymentIntentId::parse("pi_123").unwrap(),
            status,
            amount: eur(2500),
            amount_capturable: eur(0),
            amount_received: eur(0),
            amount_refunded: eur(0),
            capture_before: None,
            fee: None,
            last_error: None,
            cancellation_reason: None,
            payment: None,
            client_secret: None,
            refunds: None,
            saved_card: None,
        }
    }

    #[test]
    fn a_succeeded_intent_replays_hold_capture_refund_and_fee() {
        let mut s = snapshot(IntentStatus::Succeeded);
        s.amount_received = eur(1800);
        s.amount_refunded = eur(500);
        s.fee = Some(eur(50));
        let events = s.events();
        assert_eq!(
            events,
            vec![
                PaymentEvent::HoldPlaced {
                    amount: eur(2500),
                    capture_before: None
                },
                PaymentEvent::Captured {
                    amount: eur(1800),
                    fee: Some(crate::fees::Fee::reported(eur(50)))
                },
                PaymentEvent::Refunded { total: eur(500) },
                PaymentEvent::FeeReported { fee: eur(50) },
            ]
        );
    }

    #[test]
    fn a_succeeded_intent_that_omits_the_captured_amount_claims_no_capture() {
        let s = snapshot(IntentStatus::Succeeded);
        assert_eq!(
            s.events(),
            vec![PaymentEvent::HoldPlaced {
                amount: eur(2500),
                capture_before: None
            }]
        );
    }

    #[test]
    fn cancellation_reasons_tell_expiry_from_release() {
        let mut s = snapshot(IntentStatus::Canceled);
        s.cancellation_reason = Some("automatic".into());
        assert_eq!(s.events(), vec![PaymentEvent::Expired]);
        s.cancellation_reason = Some("requested_by_customer".into());
        assert_eq!(s.events(), vec![PaymentEvent::Released]);
        s.cancellation_reason = None;
        assert_eq!(s.events(), vec![PaymentEvent::Released]);
    }

    #[test]
    fn an_intent_waiting_for_the_patient_says_nothing() {
        for status in [
            IntentStatus::RequiresConfirmation,
            IntentStatus::RequiresAction,
            IntentStatus::Processing,
            IntentStatus::RequiresPaymentMethod,
        ] {
            assert!(snapshot(status).events().is_empty(), "{status:?}");
        }
    }

    #[test]
    fn client_secrets_are_not_printed() {
        let s = ClientSecret::new("pi_123_secret_abc".into());
        assert!(!format!("{s:?}").contains("secret_abc"));
    }
}
