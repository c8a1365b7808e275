//! The payment aggregate and its authorise-then-capture state machine (C5, C6, C11).
//!
//! Every change of a payment goes through [`Payment::apply`] with a [`PaymentEvent`];
//! the legal moves are the one table in [`PaymentStatus::next`]. User commands are
//! strict (an illegal move is a [`TransitionError`]); gateway facts go through
//! [`Payment::apply_from_gateway`], which ignores what is stale (a late
//! `amount_capturable_updated` after the capture) so a payment never moves backwards.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, SubsecRound, Utc};

use crate::consultation::policy::AcceptedTerms;
use crate::fees::{Fee, FeeSchedule};
use crate::ids::{
    CheckoutSessionId, ConnectedAccountId, ConsultationId, CustomerId, PaymentId, PaymentIntentId,
    PaymentMethodId, PractitionerId, SetupIntentId,
};
use crate::money::{Money, MoneyError};

mod dispute;
mod refunds;

pub use dispute::{Dispute, DisputeStatus};
pub use refunds::{MAX_REFUNDS, RefundLine, RefundState};

/// How long Stripe keeps an online card authorisation before it lapses.
pub const DEFAULT_HOLD_VALIDITY_DAYS: i64 = 7;

/// A language the product speaks.
// Exhaustive on purpose: the web adapter holds every page's texts per language and
// must be given a new language's; a wildcard arm there would show another one's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    /// French, the default.
    #[default]
    Fr,
    /// English.
    En,
}

impl Lang {
    /// The ISO 639-1 code: `fr`, `en`.
    pub const fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }
}

/// Where a payment stands.
// Exhaustive on purpose: the web adapter shows each status its own way (the pay
// page's state, labels, filters); a wildcard arm there would hide a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PaymentStatus {
    /// Payment page reached, no card authorised yet.
    Incomplete,
    /// The patient saved their card for a consultation further ahead than a hold can
    /// last: the hold is placed off-session, in time (C14).
    CardSaved,
    /// Hold in place, act not validated.
    Authorized,
    /// Act validated, amount captured.
    Captured,
    /// Hold cancelled, nothing charged.
    Released,
    /// Hold lapsed before capture.
    Expired,
    /// Card declined or authentication failed.
    Failed,
    /// Captured, then entirely refunded.
    Refunded,
    /// Captured, then partly refunded.
    PartiallyRefunded,
    /// Captured, and the patient's bank disputes the charge (an inquiry or a
    /// chargeback still open).
    Disputed,
    /// The dispute was lost: the charge's funds went back to the patient's bank.
    DisputeLost,
}

impl PaymentStatus {
    /// Every status, in declaration order.
    pub const ALL: [PaymentStatus; 11] = [
        PaymentStatus::Incomplete,
        PaymentStatus::CardSaved,
        PaymentStatus::Authorized,
        PaymentStatus::Captured,
        PaymentStatus::Released,
        PaymentStatus::Expired,
        PaymentStatus::Failed,
        PaymentStatus::Refunded,
        PaymentStatus::PartiallyRefunded,
        PaymentStatus::Disputed,
        PaymentStatus::DisputeLost,
    ];

    /// The stable machine name (API, storage, CSV).
    pub const fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Incomplete => "incomplete",
            PaymentStatus::CardSaved => "card_saved",
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Captured => "captured",
            PaymentStatus::Released => "released",
            PaymentStatus::Expired => "expired",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
            PaymentStatus::Disputed => "disputed",
            PaymentStatus::DisputeLost => "dispute_lost",
        }
    }

    /// The label people see, exactly as in the specification.
    pub const fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (PaymentStatus::Incomplete, Lang::Fr) => "Incomplet",
            (PaymentStatus::Incomplete, Lang::En) => "Incomplete",
            (PaymentStatus::CardSaved, Lang::Fr) => "Carte enregistrée",
            (PaymentStatus::CardSaved, Lang::En) => "Card saved",
            (PaymentStatus::Authorized, Lang::Fr) => "Non capturé",
            (PaymentStatus::Authorized, Lang::En) => "Uncaptured",
            (PaymentStatus::Captured, Lang::Fr) => "Réussi",
            (PaymentStatus::Captured, Lang::En) => "Succeeded",
            (PaymentStatus::Released, Lang::Fr) => "Annulé",
            (PaymentStatus::Released, Lang::En) => "Released",
            (PaymentStatus::Expired, Lang::Fr) => "Expiré",
            (PaymentStatus::Expired, Lang::En) => "Expired",
            (PaymentStatus::Failed, Lang::Fr) => "Refusé",
            (PaymentStatus::Failed, Lang::En) => "Declined",
            (PaymentStatus::Refunded, Lang::Fr) => "Remboursé",
            (PaymentStatus::Refunded, Lang::En) => "Refunded",
            (PaymentStatus::PartiallyRefunded, Lang::Fr) => "Partiellement remboursé",
            (PaymentStatus::PartiallyRefunded, Lang::En) => "Partially refunded",
            (PaymentStatus::Disputed, Lang::Fr) => "Contesté",
            (PaymentStatus::Disputed, Lang::En) => "Disputed",
            (PaymentStatus::DisputeLost, Lang::Fr) => "Contestation perdue",
            (PaymentStatus::DisputeLost, Lang::En) => "Dispute lost",
        }
    }

    /// No event can move a payment out of a terminal state. (An expired hold is not
    /// terminal: the patient may pay again while the consultation is ahead; a refunded
    /// payment is not either: a refund may still fail.)
    pub const fn is_terminal(self) -> bool {
        matches!(self, PaymentStatus::Released | PaymentStatus::DisputeLost)
    }

    /// Money has been taken from the card (possibly given back since).
    pub const fn is_captured(self) -> bool {
        matches!(
            self,
            PaymentStatus::Captured
                | PaymentStatus::PartiallyRefunded
                | PaymentStatus::Refunded
                | PaymentStatus::Disputed
                | PaymentStatus::DisputeLost
        )
    }

    /// Nothing is held and nothing was taken yet: the patient may (re)start paying.
    pub const fn awaits_patient(self) -> bool {
        matches!(self, PaymentStatus::Incomplete | PaymentStatus::Failed)
    }

    /// The one table of legal moves. `Ok(self)` means "same state, data may change".
    pub fn next(self, event: EventKind) -> Result<PaymentStatus, IllegalTransition> {
        use EventKind as E;
        use PaymentStatus as S;
        let next = match (self, event) {
            (S::Incomplete | S::Failed | S::CardSaved | S::Authorized, E::HoldPlaced) => {
                S::Authorized
            }
            (S::Incomplete | S::Failed | S::CardSaved, E::AuthorizationFailed) => S::Failed,
            (S::Incomplete | S::Failed | S::CardSaved, E::CardSaved) => S::CardSaved,
            // Checkout in payment mode saves the card along with the hold.
            (S::Authorized, E::CardSaved | E::RenewalFailed) => S::Authorized,
            (S::Incomplete | S::Failed | S::CardSaved, E::AttemptEnded) => self,
            (S::Expired, E::Reopened) => S::Incomplete,
            // Stripe reports a capture of a hold we had counted lapsed (our deadline
            // was an estimate): what Stripe took is recorded.
            (S::Authorized | S::Captured | S::Expired, E::Captured) => S::Captured,
            (
                S::Incomplete | S::Failed | S::CardSaved | S::Authorized | S::Released,
                E::Released,
            ) => S::Released,
            (S::Authorized | S::Expired, E::Expired) => S::Expired,
            (S::Captured | S::PartiallyRefunded, E::PartiallyRefunded) => S::PartiallyRefunded,
            (S::Captured | S::PartiallyRefunded | S::Refunded, E::Refunded) => S::Refunded,
            (S::PartiallyRefunded | S::Refunded, E::RefundFailed) => S::PartiallyRefunded,
            (S::PartiallyRefunded | S::Refunded, E::AllRefundsFailed) => S::Captured,
            // A cardholder may dispute a charge even after it was refunded.
            (S::Captured | S::PartiallyRefunded | S::Refunded | S::Disputed, E::DisputeOpened) => {
                S::Disputed
            }
            (S::Captured | S::Disputed, E::DisputeWon) => S::Captured,
            (S::PartiallyRefunded | S::Disputed, E::DisputeWonAfterRefund) => S::PartiallyRefunded,
            (S::Refunded | S::Disputed, E::DisputeWonAfterFullRefund) => S::Refunded,
            (
                S::Captured | S::PartiallyRefunded | S::Refunded | S::Disputed | S::DisputeLost,
                E::DisputeLost,
            ) => S::DisputeLost,
            (
                S::Captured | S::PartiallyRefunded | S::Refunded | S::Disputed | S::DisputeLost,
                E::FeeReported | E::RefundUpdated,
            ) => self,
            (from, event) => return Err(IllegalTransition { from, event }),
        };
        Ok(next)
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PaymentStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.chars().take(32).collect()))
    }
}

/// Text that is not a [`PaymentStatus::as_str`] name; carries it, cut to 32 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a payment status")]
pub struct UnknownStatus(pub String);

/// The kind of an event, without its data: what the transition table is keyed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A hold was placed, or renewed ([`PaymentEvent::HoldPlaced`]).
    HoldPlaced,
    /// The card was declined or its authentication failed.
    AuthorizationFailed,
    /// The patient's card was saved for a hold placed later.
    CardSaved,
    /// The saved card refused a renewed hold; the current hold stays.
    RenewalFailed,
    /// The gateway closed an unpaid attempt; the patient may pay again.
    AttemptEnded,
    /// A lapsed hold reopened for payment while the consultation is ahead.
    Reopened,
    /// The act was validated and the amount captured.
    Captured,
    /// The hold (or the unpaid intent) was cancelled.
    Released,
    /// The hold lapsed before capture.
    Expired,
    /// More was refunded, and less than everything captured.
    PartiallyRefunded,
    /// Everything captured is now refunded.
    Refunded,
    /// A refund failed (or was cancelled); other refunds remain.
    RefundFailed,
    /// A refund failed (or was cancelled) and nothing remains refunded.
    AllRefundsFailed,
    /// A refund's state changed without changing what is refunded (pending →
    /// succeeded).
    RefundUpdated,
    /// Stripe reported its real fee.
    FeeReported,
    /// A dispute (inquiry or chargeback) opened, or moved on while still open.
    DisputeOpened,
    /// The dispute closed in the practitioner's favour; nothing had been refunded.
    DisputeWon,
    /// The dispute closed in the practitioner's favour after a partial refund.
    DisputeWonAfterRefund,
    /// The dispute (an inquiry, usually) closed after everything was refunded.
    DisputeWonAfterFullRefund,
    /// The dispute closed against the practitioner.
    DisputeLost,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 20] = [
        EventKind::HoldPlaced,
        EventKind::AuthorizationFailed,
        EventKind::CardSaved,
        EventKind::RenewalFailed,
        EventKind::AttemptEnded,
        EventKind::Reopened,
        EventKind::Captured,
        EventKind::Released,
        EventKind::Expired,
        EventKind::PartiallyRefunded,
        EventKind::Refunded,
        EventKind::RefundFailed,
        EventKind::AllRefundsFailed,
        EventKind::RefundUpdated,
        EventKind::FeeReported,
        EventKind::DisputeOpened,
        EventKind::DisputeWon,
        EventKind::DisputeWonAfterRefund,
        EventKind::DisputeWonAfterFullRefund,
        EventKind::DisputeLost,
    ];

    /// The stable machine name (`hold_placed`, `captured`, …), used in the history and in
    /// [`IllegalTransition`]'s message.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::HoldPlaced => "hold_placed",
            EventKind::AuthorizationFailed => "authorization_failed",
            EventKind::CardSaved => "card_saved",
            EventKind::RenewalFailed => "renewal_failed",
            EventKind::AttemptEnded => "attempt_ended",
            EventKind::Reopened => "reopened",
            EventKind::Captured => "captured",
            EventKind::Released => "released",
            EventKind::Expired => "expired",
            EventKind::PartiallyRefunded => "partially_refunded",
            EventKind::Refunded => "refunded",
            EventKind::RefundFailed => "refund_failed",
            EventKind::AllRefundsFailed => "all_refunds_failed",
            EventKind::RefundUpdated => "refund_updated",
            EventKind::FeeReported => "fee_reported",
            EventKind::DisputeOpened => "dispute_opened",
            EventKind::DisputeWon => "dispute_won",
            EventKind::DisputeWonAfterRefund => "dispute_won_after_refund",
            EventKind::DisputeWonAfterFullRefund => "dispute_won_after_full_refund",
            EventKind::DisputeLost => "dispute_lost",
        }
    }
}

/// A move the transition table ([`PaymentStatus::next`]) does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a payment that is {from} cannot be {}", event.as_str())]
#[non_exhaustive]
pub struct IllegalTransition {
    /// The payment's status when the event came.
    pub from: PaymentStatus,
    /// What was refused.
    pub event: EventKind,
}

/// Why an authorisation failed, as the gateway said it (no card data).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Failure {
    /// Stripe's error code, e.g. `card_declined`.
    pub code: Option<String>,
    /// The issuer's reason, e.g. `insufficient_funds`.
    pub decline_code: Option<String>,
    /// The gateway's message, for people (may be in English whatever the patient's
    /// language).
    pub message: String,
}

/// The patient's card, saved with their consent on the practitioner's Stripe account,
/// for a hold placed (or renewed) off-session later (C14).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SavedCard {
    /// The Stripe customer the card is attached to, on the practitioner's account.
    pub customer: CustomerId,
    /// The saved card (`pm_…`).
    pub payment_method: PaymentMethodId,
}

/// Something reconciliation could not settle between what we recorded and what the
/// gateway says: shown on the payment for a person to look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attention {
    /// When reconciliation noted it.
    pub at: DateTime<Utc>,
    /// What a person should look at, in plain words.
    pub message: String,
}

/// A fact about a payment, from a user command or from the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaymentEvent {
    /// The card is authorised for `amount` until `capture_before` (gateway's deadline,
    /// if it told us).
    HoldPlaced {
        /// The amount authorised, at most the payment's [`Payment::amount`].
        amount: Money,
        /// The gateway's capture deadline; `None`: authorisation + [`DEFAULT_HOLD_VALIDITY_DAYS`].
        capture_before: Option<DateTime<Utc>>,
    },
    /// The card was declined or its authentication failed; the patient may try again.
    AuthorizationFailed(Failure),
    /// The card was saved for a hold placed later (or along with a hold).
    CardSaved(SavedCard),
    /// The saved card refused a renewed hold; the current hold stays until its
    /// deadline.
    RenewalFailed(Failure),
    /// The gateway closed an unpaid attempt (its intent cancelled when its checkout
    /// expired): nothing is held, and the patient may pay with a new attempt.
    AttemptEnded,
    /// The hold lapsed while the consultation is still ahead: the patient pays again.
    Reopened,
    /// `amount` was captured; the rest of the hold is released by the gateway.
    Captured {
        /// The amount captured: more than zero, at most the hold.
        amount: Money,
        /// Stripe's fee if the gateway reported it; `None`: estimated from the payment's
        /// schedule.
        fee: Option<Fee>,
    },
    /// The hold (or the unpaid intent) was cancelled on request.
    Released,
    /// The hold lapsed before capture.
    Expired,
    /// `total` has been refunded so far (cumulative, so duplicates are harmless). Used
    /// only while no refund is known one by one: itemised refunds are the truth.
    Refunded {
        /// Everything refunded so far, not the last refund alone.
        total: Money,
    },
    /// A refund we just made, as the gateway accepted it (not yet known otherwise).
    RefundIssued(RefundLine),
    /// Every refund of the payment, as the gateway lists them now.
    RefundsReported(Vec<RefundLine>),
    /// A dispute on the charge, as Stripe reports it.
    Disputed(Dispute),
    /// Stripe's real fee, from the balance transaction.
    FeeReported {
        /// The fee, in the payment's currency.
        fee: Money,
    },
}

/// What a refund fact does to the payment's refunds: the new list and total.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RefundChange {
    lines: Vec<RefundLine>,
    total: Money,
}

impl PaymentEvent {
    /// The transition-table key. Refund facts are keyed by what they do to the
    /// refunded total (more, less, the same), disputes by their status.
    fn kind_for(&self, payment: &Payment, refund: Option<&RefundChange>) -> EventKind {
        match self {
            PaymentEvent::HoldPlaced { .. } => EventKind::HoldPlaced,
            PaymentEvent::AuthorizationFailed(_) => EventKind::AuthorizationFailed,
            PaymentEvent::CardSaved(_) => EventKind::CardSaved,
            PaymentEvent::RenewalFailed(_) => EventKind::RenewalFailed,
            PaymentEvent::AttemptEnded => EventKind::AttemptEnded,
            PaymentEvent::Reopened => EventKind::Reopened,
            PaymentEvent::Captured { .. } => EventKind::Captured,
            PaymentEvent::Released => EventKind::Released,
            PaymentEvent::Expired => EventKind::Expired,
            PaymentEvent::Refunded { .. }
            | PaymentEvent::RefundIssued(_)
            | PaymentEvent::RefundsReported(_) => {
                let total = refund.map_or(payment.refunded, |r| r.total);
                payment.refund_kind(total)
            }
            PaymentEvent::FeeReported { .. } => EventKind::FeeReported,
            PaymentEvent::Disputed(d) => match d.status {
                s if s.is_open() => EventKind::DisputeOpened,
                DisputeStatus::Lost => EventKind::DisputeLost,
                _ if payment
                    .captured
                    .is_some_and(|c| payment.refunded.amount() >= c.amount()) =>
                {
                    EventKind::DisputeWonAfterFullRefund
                }
                _ if payment.refunded.is_positive() => EventKind::DisputeWonAfterRefund,
                _ => EventKind::DisputeWon,
            },
        }
    }

    /// The amount the event is about, for the history.
    pub fn amount(&self) -> Option<Money> {
        match self {
            PaymentEvent::HoldPlaced { amount, .. } | PaymentEvent::Captured { amount, .. } => {
                Some(*amount)
            }
            PaymentEvent::Refunded { total } => Some(*total),
            PaymentEvent::RefundIssued(line) => Some(line.amount),
            PaymentEvent::FeeReported { fee } => Some(*fee),
            PaymentEvent::Disputed(d) => Some(d.amount),
            _ => None,
        }
    }
}

/// Why a command or an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The payment's status does not allow this (release a captured payment, refund an
    /// uncaptured one, …).
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    /// A capture, hold or refund of zero.
    #[error("the amount must be greater than zero")]
    AmountNotPositive,
    /// More than the card is authorised for (or, before a hold, than the payment's amount).
    #[error("{requested} is above the hold of {held}")]
    AboveHold {
        /// The amount asked for.
        requested: Money,
        /// The amount authorised (or the payment's amount, before a hold).
        held: Money,
    },
    /// The payment was already captured for another amount; a capture of the same amount
    /// is an idempotent retry, not this error.
    #[error("already captured {captured}; cannot capture {requested}")]
    AlreadyCapturedOtherAmount {
        /// What was captured.
        captured: Money,
        /// The different amount asked for now.
        requested: Money,
    },
    /// A refund larger than what is captured and not yet refunded.
    #[error("{requested} is more than the {refundable} that can still be refunded")]
    AboveRefundable {
        /// The refund asked for.
        requested: Money,
        /// What may still be refunded ([`Payment::refundable`]).
        refundable: Money,
    },
    /// Another Stripe write on this payment is recorded as in flight
    /// ([`Payment::pending`]); carries its [`Operation::name`]. Retry once it settles.
    #[error("another operation ({0}) is in progress on this payment")]
    OperationInProgress(&'static str),
    /// A refund without an idempotency key met another one of the same payment (made
    /// or in flight since it was asked): it cannot tell a second refund from a retry,
    /// so it makes none.
    #[error(
        "another refund of this payment was made or is in progress at the same time: \
         reload, and refund again if a second refund is meant (send an Idempotency-Key \
         to make retries safe)"
    )]
    ConcurrentRefund,
    /// A validation below the currency's minimum charge, which Stripe refuses.
    #[error(
        "{requested} is below the minimum charge of {minimum}: release the hold instead \
         (validate 0)"
    )]
    CaptureBelowMinimum {
        /// The amount the practitioner validated.
        requested: Money,
        /// The currency's minimum charge ([`Currency::minimum_charge`]).
        ///
        /// [`Currency::minimum_charge`]: crate::money::Currency::minimum_charge
        minimum: Money,
    },
    /// The gateway's refunds add up to more than was captured: we and the gateway
    /// disagree about money, and a person must look.
    #[error("the gateway reports {reported} refunded, more than the {captured} captured")]
    RefundsAboveCaptured {
        /// The refunded total the gateway's facts would give.
        reported: Money,
        /// What the payment records as captured.
        captured: Money,
    },
    /// An amount in another currency than the payment's, or an overflow.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// A Stripe write that has been decided and may be in flight. Recorded before the call
/// so that a crash between Stripe's answer and our commit is found and repaired by
/// reconciliation; its key makes the retry safe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingOperation {
    /// What is being sent, with its amount.
    pub operation: Operation,
    /// The `Idempotency-Key` it is sent with; a retry reuses it.
    pub key: IdempotencyKey,
    /// When it was recorded; reconciliation looks at operations pending for longer than
    /// [`BillingConfig::reconcile_after`](crate::BillingConfig::reconcile_after).
    pub since: DateTime<Utc>,
}

/// A Stripe write on a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A hold placed off-session with the saved card (first hold or renewal).
    Hold {
        /// The amount to authorise.
        amount: Money,
    },
    /// Capturing part or all of the hold (the practitioner's validation).
    Capture {
        /// The amount to capture.
        amount: Money,
    },
    /// Cancelling the hold, or the unpaid intent.
    Release,
    /// Refunding part or all of what was captured.
    Refund {
        /// The amount to refund.
        amount: Money,
    },
}

impl Operation {
    /// Its stable name (`hold`, `capture`, `release`, `refund`), stored with a pending
    /// operation and shown in [`TransitionError::OperationInProgress`].
    pub const fn name(&self) -> &'static str {
        match self {
            Operation::Hold { .. } => "hold",
            Operation::Capture { .. } => "capture",
            Operation::Release => "release",
            Operation::Refund { .. } => "refund",
        }
    }

    /// The amount the operation moves, if it is about one.
    pub const fn amount(&self) -> Option<Money> {
        match self {
            Operation::Hold { amount }
            | Operation::Capture { amount }
            | Operation::Refund { amount } => Some(*amount),
            Operation::Release => None,
        }
    }
}

/// The `Idempotency-Key` of a Stripe write, derived from the payment and the operation
/// so that retrying the same operation can never charge twice.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// `consultpay:{payment}:{what}`: stable for the same payment and operation.
    pub fn derive(payment: PaymentId, what: &str) -> Self {
        IdempotencyKey(format!("consultpay:{payment}:{what}"))
    }

    /// The key of a capture of the hold on `intent`: the amount is part of it, so
    /// the same validation retried reuses the key and a different amount cannot be
    /// mistaken for a retry; so is the intent, since a payment may hold the card
    /// again (a renewal, a new attempt after a lapse).
    pub fn capture(
        payment: PaymentId,
        intent: &PaymentIntentId,
        amount: &Money,
    ) -> Result<Self, MoneyError> {
        Ok(Self::derive(
            payment,
            &format!("capture:{intent}:{}", amount.to_minor()?),
        ))
    }

    /// Releasing the hold on `intent`, or an unpaid payment (no intent).
    pub fn release(payment: PaymentId, intent: Option<&PaymentIntentId>) -> Self {
        match intent {
            Some(intent) => Self::derive(payment, &format!("release:{intent}")),
            None => Self::derive(payment, "release"),
        }
    }

    /// Closing the checkout session `session`.
    pub fn expire_checkout(payment: PaymentId, session: &CheckoutSessionId) -> Self {
        Self::derive(payment, &format!("expire-checkout:{session}"))
    }

    /// The n-th refund of a payment (n counts refunds already recorded), or the
    /// caller's own key when they sent one.
    pub fn refund(payment: PaymentId, discriminator: &str) -> Self {
        Self::derive(payment, &format!("refund:{discriminator}"))
    }

    /// The off-session hold of the saved card `card` (one per saved card: a card
    /// saved again after a refusal is a new attempt).
    pub fn hold(payment: PaymentId, card: &PaymentMethodId) -> Self {
        Self::derive(payment, &format!("hold:{card}"))
    }

    /// The hold that renews the one on `current` (one renewal per hold).
    pub fn renewal(payment: PaymentId, current: &PaymentIntentId) -> Self {
        Self::derive(payment, &format!("renew:{current}"))
    }

    /// Cancelling a hold that a renewal replaced.
    pub fn release_superseded(payment: PaymentId, superseded: &PaymentIntentId) -> Self {
        Self::derive(payment, &format!("release-superseded:{superseded}"))
    }

    /// The Checkout Session of an attempt; `attempt` is the payment's version when the
    /// attempt starts, so a new attempt gets a new session and a retried one the same.
    pub fn checkout(payment: PaymentId, attempt: i64) -> Self {
        Self::derive(payment, &format!("checkout:{attempt}"))
    }

    /// A key for a practitioner-level Stripe write (account creation), stable while
    /// the practitioner is unchanged.
    pub fn for_practitioner(id: PractitionerId, what: &str, version: i64) -> Self {
        IdempotencyKey(format!("consultpay:practitioner:{id}:{what}:{version}"))
    }

    /// Rebuilds a key read back from storage (or sent by Stripe), as it was written.
    pub fn from_stored(s: String) -> Self {
        IdempotencyKey(s)
    }

    /// The key, as sent in Stripe's `Idempotency-Key` header.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where the patient is sent to authorise, as the gateway set it up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckoutRef {
    /// The Checkout Session (`cs_…`), when the patient pays on Stripe Checkout.
    pub session: Option<CheckoutSessionId>,
    /// The page to send the patient to (Stripe Checkout's); `None` when the card is
    /// entered on our own page (Payment Element).
    pub url: Option<String>,
    /// When the session stops accepting payment.
    pub expires_at: Option<DateTime<Utc>>,
    /// The SetupIntent the Payment Element saves the card with.
    pub setup: Option<SetupIntentId>,
}

/// A payment: what the hold is for, what happened to it, and what Stripe kept.
///
/// Invariants (checked by [`Payment::restore`] and kept by every method):
/// captured ≤ authorised, refunded ≤ captured, every amount in the payment's currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    id: PaymentId,
    consultation: ConsultationId,
    practitioner: PractitionerId,
    amount: Money,
    fee_schedule: FeeSchedule,
    status: PaymentStatus,
    authorized: Option<Money>,
    captured: Option<Money>,
    refunded: Money,
    refund_count: i64,
    fee: Option<Fee>,
    account: Option<ConnectedAccountId>,
    intent: Option<PaymentIntentId>,
    checkout: Option<CheckoutRef>,
    failure: Option<Failure>,
    pending: Option<PendingOperation>,
    saved_card: Option<SavedCard>,
    refunds: Vec<RefundLine>,
    dispute: Option<Dispute>,
    attention: Option<Attention>,
    authorized_at: Option<DateTime<Utc>>,
    capture_before: Option<DateTime<Utc>>,
    captured_at: Option<DateTime<Utc>>,
    terms: Option<AcceptedTerms>,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Every field of a payment, for storage adapters to rebuild one with
/// [`Payment::restore`] (which re-checks the invariants).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentParts {
    /// See [`Payment::id`].
    pub id: PaymentId,
    /// See [`Payment::consultation`].
    pub consultation: ConsultationId,
    /// See [`Payment::practitioner`].
    pub practitioner: PractitionerId,
    /// See [`Payment::amount`].
    pub amount: Money,
    /// See [`Payment::fee_schedule`].
    pub fee_schedule: FeeSchedule,
    /// See [`Payment::status`].
    pub status: PaymentStatus,
    /// See [`Payment::authorized`].
    pub authorized: Option<Money>,
    /// See [`Payment::captured`].
    pub captured: Option<Money>,
    /// See [`Payment::refunded`].
    pub refunded: Money,
    /// See [`Payment::refund_count`].
    pub refund_count: i64,
    /// See [`Payment::fee`].
    pub fee: Option<Fee>,
    /// See [`Payment::account`].
    pub account: Option<ConnectedAccountId>,
    /// See [`Payment::intent`].
    pub intent: Option<PaymentIntentId>,
    /// See [`Payment::checkout`].
    pub checkout: Option<CheckoutRef>,
    /// See [`Payment::failure`].
    pub failure: Option<Failure>,
    /// See [`Payment::pending`].
    pub pending: Option<PendingOperation>,
    /// See [`Payment::saved_card`].
    pub saved_card: Option<SavedCard>,
    /// See [`Payment::refunds`].
    pub refunds: Vec<RefundLine>,
    /// See [`Payment::dispute`].
    pub dispute: Option<Dispute>,
    /// See [`Payment::attention`].
    pub attention: Option<Attention>,
    /// See [`Payment::authorized_at`].
    pub authorized_at: Option<DateTime<Utc>>,
    /// See [`Payment::capture_before`].
    pub capture_before: Option<DateTime<Utc>>,
    /// See [`Payment::captured_at`].
    pub captured_at: Option<DateTime<Utc>>,
    /// The cancellation policy the patient accepted when authorising, and when.
    pub terms: Option<AcceptedTerms>,
    /// See [`Payment::version`].
    pub version: i64,
    /// See [`Payment::created_at`].
    pub created_at: DateTime<Utc>,
    /// See [`Payment::updated_at`].
    pub updated_at: DateTime<Utc>,
}

/// Stored data that breaks a payment invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored payment {id} is inconsistent: {reason}")]
#[non_exhaustive]
pub struct CorruptPayment {
    /// The payment read.
    pub id: PaymentId,
    /// Which invariant the stored data breaks.
    pub reason: String,
}

/// The result of applying an event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// The payment changed; `payment` is the new state (version already incremented).
    Changed {
        /// The payment after the event, to be stored with
        /// [`PaymentRepository::update`](crate::payment::ports::PaymentRepository::update)
        /// against the version it was applied to.
        payment: Box<Payment>,
        /// What happened, as the transition table knows it.
        kind: EventKind,
        /// The status before.
        from: PaymentStatus,
        /// The status after (may equal `from`: a fee reported, a card saved with the hold).
        to: PaymentStatus,
    },
    /// Nothing to do: the event repeats what is already recorded.
    Unchanged,
    /// A gateway fact older than what is recorded; ignored so nothing moves backwards.
    Stale(IllegalTransition),
}

impl Payment {
    /// A new payment for a consultation with online payment: incomplete, for `amount`.
    pub fn new(
        id: PaymentId,
        consultation: ConsultationId,
        practitioner: PractitionerId,
        amount: Money,
        fee_schedule: FeeSchedule,
        now: DateTime<Utc>,
    ) -> Result<Self, MoneyError> {
        amount.ensure_chargeable()?;
        if fee_schedule.currency() != amount.currency() {
            return Err(MoneyError::CurrencyMismatch {
                left: amount.currency(),
                right: fee_schedule.currency(),
            });
        }
        let currency = amount.currency();
        Ok(Payment {
            id,
            consultation,
            practitioner,
            amount,
            fee_schedule,
            status: PaymentStatus::Incomplete,
            authorized: None,
            captured: None,
            refunded: Money::zero(currency),
            refund_count: 0,
            fee: None,
            account: None,
            intent: None,
            checkout: None,
            failure: None,
            pending: None,
            saved_card: None,
            refunds: Vec::new(),
            dispute: None,
            attention: None,
            authorized_at: None,
            capture_before: None,
            captured_at: None,
            terms: None,
            version: 0,
            created_at: now,
            updated_at: now,
        })
    }

    /// Rebuilds a stored payment, refusing data that breaks an invariant.
    pub fn restore(p: PaymentParts) -> Result<Self, CorruptPayment> {
        let corrupt = |reason: &str| CorruptPayment {
            id: p.id,
            reason: reason.to_owned(),
        };
        let currency = p.amount.currency();
        let amounts = [p.authorized, p.captured, Some(p.refunded)]
            .into_iter()
            .flatten()
            .chain(p.fee.map(|f| f.amount))
            .chain(p.refunds.iter().map(|r| r.amount))
            .chain(
                p.dispute
                    .iter()
                    .flat_map(|d| [d.amount, d.withdrawn, d.fee]),
            );
        if amounts.into_iter().any(|m| m.currency() != currency)
            || p.fee_schedule.currency() != currency
        {
            return Err(corrupt("amounts in different currencies"));
        }
        let le = |a: &Money, b: &Money| a.amount() <= b.amount();
        if let (Some(c), Some(a)) = (&p.captured, &p.authorized)
            && !le(c, a)
        {
            return Err(corrupt("captured above authorised"));
        }
        let captured = p.captured.unwrap_or(Money::zero(currency));
        if !le(&p.refunded, &captured) || p.refunded.is_negative() {
            return Err(corrupt("refunded above captured"));
        }
        if p.status.is_captured() && p.captured.is_none() {
            return Err(corrupt("captured status without a captured amount"));
        }
        if p.status == PaymentStatus::Authorized && p.authorized.is_none() {
            return Err(corrupt("authorised status without an authorised amount"));
        }
        if p.status == PaymentStatus::CardSaved && p.saved_card.is_none() {
            return Err(corrupt("card saved status without a saved card"));
        }
        if matches!(
            p.status,
            PaymentStatus::Disputed | PaymentStatus::DisputeLost
        ) && p.dispute.is_none()
        {
            return Err(corrupt("disputed status without a dispute"));
        }
        if p.refunds.len() > MAX_REFUNDS
            || refunds::live_total(&p.refunds, Money::zero(currency))
                .map_or(true, |live| !le(&live, &captured))
        {
            return Err(corrupt("refunds above captured"));
        }
        if p.dispute
            .as_ref()
            .is_some_and(|d| d.withdrawn.is_negative() || d.fee.is_negative())
        {
            return Err(corrupt("negative dispute amounts"));
        }
        Ok(Payment {
            id: p.id,
            consultation: p.consultation,
            practitioner: p.practitioner,
            amount: p.amount,
            fee_schedule: p.fee_schedule,
            status: p.status,
            authorized: p.authorized,
            captured: p.captured,
            refunded: p.refunded,
            refund_count: p.refund_count,
            fee: p.fee,
            account: p.account,
            intent: p.intent,
            checkout: p.checkout,
            failure: p.failure,
            pending: p.pending,
            saved_card: p.saved_card,
            refunds: p.refunds,
            dispute: p.dispute,
            attention: p.attention,
            authorized_at: p.authorized_at,
            capture_before: p.capture_before,
            captured_at: p.captured_at,
            terms: p.terms,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        })
    }

    /// All fields, for storage.
    pub fn to_parts(&self) -> PaymentParts {
        PaymentParts {
            id: self.id,
            consultation: self.consultation,
            practitioner: self.practitioner,
            amount: self.amount,
            fee_schedule: self.fee_schedule.clone(),
            status: self.status,
            authorized: self.authorized,
            captured: self.captured,
            refunded: self.refunded,
            refund_count: self.refund_count,
            fee: self.fee,
            account: self.account.clone(),
            intent: self.intent.clone(),
            checkout: self.checkout.clone(),
            failure: self.failure.clone(),
            pending: self.pending.clone(),
            saved_card: self.saved_card.clone(),
            refunds: self.refunds.clone(),
            dispute: self.dispute.clone(),
            attention: self.attention.clone(),
            authorized_at: self.authorized_at,
            capture_before: self.capture_before,
            captured_at: self.captured_at,
            terms: self.terms.clone(),
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// The payment's id.
    pub fn id(&self) -> PaymentId {
        self.id
    }
    /// The consultation this payment pays for (one payment per consultation).
    pub fn consultation(&self) -> ConsultationId {
        self.consultation
    }
    /// The practitioner paid, on whose Stripe account the charge lives.
    pub fn practitioner(&self) -> PractitionerId {
        self.practitioner
    }
    /// The most that may be charged: the hold's amount.
    pub fn amount(&self) -> Money {
        self.amount
    }
    /// The schedule the fee is estimated with: the practitioner's when the payment was
    /// created.
    pub fn fee_schedule(&self) -> &FeeSchedule {
        &self.fee_schedule
    }
    /// Where the payment stands.
    pub fn status(&self) -> PaymentStatus {
        self.status
    }
    /// The amount authorised on the card, once a hold was placed.
    pub fn authorized(&self) -> Option<Money> {
        self.authorized
    }
    /// The amount captured, once the act was validated (kept after refunds and disputes).
    pub fn captured(&self) -> Option<Money> {
        self.captured
    }
    /// Everything refunded so far (zero if nothing): the sum of the live refunds.
    pub fn refunded(&self) -> Money {
        self.refunded
    }
    /// How many times the refunded total went up: numbers the next refund's
    /// idempotency key when the caller sends none.
    pub fn refund_count(&self) -> i64 {
        self.refund_count
    }
    /// Stripe's fee on the capture: an estimate until Stripe reports it; `None` before a
    /// capture.
    pub fn fee(&self) -> Option<Fee> {
        self.fee
    }
    /// The practitioner's connected account the intent lives on, once checkout started.
    pub fn account(&self) -> Option<&ConnectedAccountId> {
        self.account.as_ref()
    }
    /// The current PaymentIntent (`pi_…`), once known; a renewed hold or a new attempt
    /// replaces it.
    pub fn intent(&self) -> Option<&PaymentIntentId> {
        self.intent.as_ref()
    }
    /// Where the current attempt sends the patient, if one is under way.
    pub fn checkout(&self) -> Option<&CheckoutRef> {
        self.checkout.as_ref()
    }
    /// Why the last authorisation (or renewal) failed; cleared by a successful hold.
    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }
    /// The Stripe write recorded as in flight, if any (see [`Payment::begin`]).
    pub fn pending(&self) -> Option<&PendingOperation> {
        self.pending.as_ref()
    }
    /// The card saved for holds placed off-session, if the patient saved one.
    pub fn saved_card(&self) -> Option<&SavedCard> {
        self.saved_card.as_ref()
    }
    /// Every refund known one by one, oldest first.
    pub fn refunds(&self) -> &[RefundLine] {
        &self.refunds
    }
    /// The latest dispute on the charge, if any.
    pub fn dispute(&self) -> Option<&Dispute> {
        self.dispute.as_ref()
    }
    /// What reconciliation could not settle, for a person to look at.
    pub fn attention(&self) -> Option<&Attention> {
        self.attention.as_ref()
    }
    /// When the current hold was placed (`None` before a hold, and for a renewed hold
    /// until it is confirmed).
    pub fn authorized_at(&self) -> Option<DateTime<Utc>> {
        self.authorized_at
    }
    /// The capture deadline: the gateway's, else authorisation + 7 days.
    pub fn capture_before(&self) -> Option<DateTime<Utc>> {
        self.capture_before
    }
    /// The cancellation policy the patient accepted when authorising, and when.
    pub fn terms(&self) -> Option<&AcceptedTerms> {
        self.terms.as_ref()
    }

    /// The same payment with the terms the patient accepted (kept with the checkout
    /// they started).
    pub fn with_terms(&self, terms: AcceptedTerms, now: DateTime<Utc>) -> Payment {
        Payment {
            terms: Some(terms),
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        }
    }

    /// When the capture was recorded.
    pub fn captured_at(&self) -> Option<DateTime<Utc>> {
        self.captured_at
    }
    /// Incremented by every change; storage writes conditionally on it (optimistic
    /// concurrency, see
    /// [`PaymentRepository::update`](crate::payment::ports::PaymentRepository::update)).
    pub fn version(&self) -> i64 {
        self.version
    }
    /// When the payment was created (with its consultation).
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// When the payment last changed.
    pub fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at
    }

    /// The amount currently held on the card (zero unless authorised).
    pub fn held(&self) -> Money {
        match (self.status, self.authorized) {
            (PaymentStatus::Authorized, Some(a)) => a,
            _ => Money::zero(self.amount.currency()),
        }
    }

    /// What went back to the card without being charged: the part of the hold a
    /// capture did not take, or the whole hold once released or lapsed.
    pub fn released(&self) -> Money {
        let zero = Money::zero(self.amount.currency());
        match (self.authorized, self.captured) {
            (Some(a), Some(c)) => a.checked_sub(&c).unwrap_or(zero),
            (Some(a), None)
                if matches!(
                    self.status,
                    PaymentStatus::Released | PaymentStatus::Expired
                ) =>
            {
                a
            }
            _ => zero,
        }
    }

    /// What the practitioner keeps: captured − refunded − fee − what a dispute took
    /// (funds withdrawn and Stripe's dispute fee). Negative after a full refund,
    /// because Stripe keeps its fee.
    pub fn net(&self) -> Result<Money, MoneyError> {
        let currency = self.amount.currency();
        let captured = self.captured.unwrap_or(Money::zero(currency));
        let fee = self.fee.map_or(Money::zero(currency), |f| f.amount);
        let disputed = match &self.dispute {
            Some(d) => d.cost()?,
            None => Money::zero(currency),
        };
        captured
            .checked_sub(&self.refunded)?
            .checked_sub(&fee)?
            .checked_sub(&disputed)
    }

    /// What a dispute has cost so far (zero without one).
    pub fn dispute_cost(&self) -> Result<Money, MoneyError> {
        match &self.dispute {
            Some(d) => d.cost(),
            None => Ok(Money::zero(self.amount.currency())),
        }
    }

    /// Refunds accepted by the gateway but not yet confirmed.
    pub fn refunds_pending(&self) -> Result<Money, MoneyError> {
        self.refunds
            .iter()
            .filter(|r| matches!(r.status, RefundState::Pending | RefundState::RequiresAction))
            .try_fold(Money::zero(self.amount.currency()), |sum, r| {
                sum.checked_add(&r.amount)
            })
    }

    /// The status a captured payment has for `refunded` (nothing, part, all).
    fn refund_kind(&self, total: Money) -> EventKind {
        let captured = self.captured.unwrap_or(Money::zero(self.amount.currency()));
        if matches!(
            self.status,
            PaymentStatus::Disputed | PaymentStatus::DisputeLost
        ) {
            // A dispute decides the status; refunds only change figures meanwhile.
            return EventKind::RefundUpdated;
        }
        match total.amount().cmp(&self.refunded.amount()) {
            std::cmp::Ordering::Greater if total == captured => EventKind::Refunded,
            std::cmp::Ordering::Greater => EventKind::PartiallyRefunded,
            std::cmp::Ordering::Less if total.is_zero() => EventKind::AllRefundsFailed,
            std::cmp::Ordering::Less => EventKind::RefundFailed,
            std::cmp::Ordering::Equal => EventKind::RefundUpdated,
        }
    }

    /// The part of the hold given back to the card after a partial capture.
    pub fn released_remainder(&self) -> Result<Option<Money>, MoneyError> {
        match (self.authorized, self.captured) {
            (Some(a), Some(c)) => a.checked_sub(&c).map(Some),
            _ => Ok(None),
        }
    }

    /// What can still be refunded.
    pub fn refundable(&self) -> Result<Money, MoneyError> {
        let captured = self.captured.unwrap_or(Money::zero(self.amount.currency()));
        captured.checked_sub(&self.refunded)
    }

    /// Is the hold within `window` of its deadline (C10)? Only authorised payments.
    pub fn is_expiring(&self, now: DateTime<Utc>, window: Duration) -> bool {
        self.status == PaymentStatus::Authorized
            && self.capture_before.is_some_and(|d| d - now <= window)
    }

    /// Has the hold's deadline passed?
    pub fn is_lapsed(&self, now: DateTime<Utc>) -> bool {
        self.status == PaymentStatus::Authorized && self.capture_before.is_some_and(|d| d <= now)
    }

    fn touched(&self, now: DateTime<Utc>) -> Payment {
        let mut next = self.clone();
        next.version += 1;
        next.updated_at = now;
        next
    }

    /// Checks a capture command before any Stripe call: authorised, 0 < amount ≤ hold.
    /// `Ok(false)` means the same amount was already captured (idempotent retry).
    pub fn check_capture(&self, amount: &Money) -> Result<bool, TransitionError> {
        if amount.currency() != self.amount.currency() {
            return Err(MoneyError::CurrencyMismatch {
                left: amount.currency(),
                right: self.amount.currency(),
            }
            .into());
        }
        if !amount.is_positive() {
            return Err(TransitionError::AmountNotPositive);
        }
        // Above the hold is refused first, whatever the state: it can never be right.
        let held = self.authorized.unwrap_or(self.amount);
        if amount.amount() > held.amount() {
            return Err(TransitionError::AboveHold {
                requested: *amount,
                held,
            });
        }
        if let Some(captured) = self.captured {
            return if captured == *amount {
                Ok(false)
            } else {
                Err(TransitionError::AlreadyCapturedOtherAmount {
                    captured,
                    requested: *amount,
                })
            };
        }
        self.status.next(EventKind::Captured)?;
        Ok(true)
    }

    /// Checks the practitioner's validation of `amount` before anything is sent: what
    /// [`Payment::check_capture`] checks, and at least the currency's minimum charge
    /// (Stripe refuses less; releasing the hold is what charges nothing).
    pub fn check_validation(&self, amount: &Money) -> Result<bool, TransitionError> {
        let fresh = self.check_capture(amount)?;
        let minimum = amount.currency().minimum_charge();
        if fresh && amount.amount() < minimum.amount() {
            return Err(TransitionError::CaptureBelowMinimum {
                requested: *amount,
                minimum,
            });
        }
        Ok(fresh)
    }

    /// Checks a refund command: captured, 0 < amount ≤ captured − refunded.
    pub fn check_refund(&self, amount: &Money) -> Result<(), TransitionError> {
        if !amount.is_positive() {
            return Err(TransitionError::AmountNotPositive);
        }
        self.status
            .next(EventKind::PartiallyRefunded)
            .map_err(|_| IllegalTransition {
                from: self.status,
                event: EventKind::Refunded,
            })?;
        let refundable = self.refundable()?;
        if amount.checked_cmp(&refundable)? == std::cmp::Ordering::Greater {
            return Err(TransitionError::AboveRefundable {
                requested: *amount,
                refundable,
            });
        }
        Ok(())
    }

    /// Checks a release command.
    pub fn check_release(&self) -> Result<(), TransitionError> {
        self.status.next(EventKind::Released)?;
        Ok(())
    }

    /// Records that an operation is about to be sent to Stripe. Refused while another
    /// one is pending; `Ok(None)` when this very operation (same key) is already
    /// pending: it is a retry and nothing needs writing.
    pub fn begin(
        &self,
        operation: Operation,
        key: IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Result<Option<Payment>, TransitionError> {
        match &self.pending {
            Some(current) if current.key == key => Ok(None),
            Some(current) => Err(TransitionError::OperationInProgress(
                current.operation.name(),
            )),
            None => {
                let mut next = self.touched(now);
                next.pending = Some(PendingOperation {
                    operation,
                    key,
                    since: now,
                });
                Ok(Some(next))
            }
        }
    }

    /// Does the recorded state prove the pending operation happened (the capture of
    /// that amount is recorded, or the hold is gone)? Refunds cannot be told apart from
    /// other refunds, so they are settled only by their own caller or reconciliation.
    pub fn pending_settled(&self) -> bool {
        match self.pending.as_ref().map(|p| p.operation) {
            Some(Operation::Capture { amount }) => self.captured == Some(amount),
            Some(Operation::Release) => {
                matches!(
                    self.status,
                    PaymentStatus::Released | PaymentStatus::Expired
                )
            }
            Some(Operation::Refund { .. } | Operation::Hold { .. }) | None => false,
        }
    }

    /// Clears the pending operation (its outcome has been applied or it failed cleanly).
    pub fn finish(&self, now: DateTime<Utc>) -> Payment {
        let mut next = self.touched(now);
        next.pending = None;
        next
    }

    /// Records where the patient is sent to authorise and on which account the intent
    /// lives. Only before a hold is in place.
    pub fn checkout_started(
        &self,
        account: ConnectedAccountId,
        intent: Option<PaymentIntentId>,
        checkout: Option<CheckoutRef>,
        now: DateTime<Utc>,
    ) -> Result<Payment, TransitionError> {
        if !matches!(
            self.status,
            PaymentStatus::Incomplete | PaymentStatus::Failed
        ) {
            return Err(IllegalTransition {
                from: self.status,
                event: EventKind::HoldPlaced,
            }
            .into());
        }
        let mut next = self.touched(now);
        if self.account.as_ref() != Some(&account) {
            // An intent lives on one account: moving to another forgets it.
            next.intent = None;
        }
        next.account = Some(account);
        if checkout.is_some() {
            // A new Checkout Session makes its own intent (Stripe creates it when the
            // patient submits a card): an intent of an earlier session is not this
            // attempt's, and events about it must not move the payment.
            next.intent = intent;
        } else if intent.is_some() {
            next.intent = intent;
        }
        next.checkout = checkout;
        Ok(next)
    }

    /// Learns the intent id (e.g. from a Checkout Session's webhook) if not known yet.
    pub fn with_intent(&self, intent: PaymentIntentId, now: DateTime<Utc>) -> Option<Payment> {
        if self.intent.as_ref() == Some(&intent) {
            return None;
        }
        let mut next = self.touched(now);
        if self.intent.is_some() && self.status == PaymentStatus::Authorized {
            // A renewed hold: its authorisation is new.
            next.authorized_at = None;
        }
        next.intent = Some(intent);
        Some(next)
    }

    /// Applies an event strictly: illegal moves are errors.
    ///
    /// Returns the new payment inside [`Applied::Changed`] (`self` is untouched: store
    /// the new one, conditionally on `self`'s version), [`Applied::Unchanged`] when
    /// the event repeats what is recorded, or [`Applied::Stale`] for an older dispute
    /// picture.
    ///
    /// # Errors
    ///
    /// [`TransitionError::Illegal`] when the status does not allow the event; an
    /// amount error when the event's amounts break an invariant (above the hold, above
    /// what is refundable, another currency, another amount already captured).
    ///
    /// # Example
    ///
    /// A consultation's payment of at most 25.00 €: the card is authorised for 25.00,
    /// and the practitioner validates 18.00; the remaining 7.00 go back to the card.
    ///
    /// ```
    /// use billing_core::chrono::{Duration, TimeZone, Utc};
    /// use billing_core::fees::{FeeSchedule, FeeSource};
    /// use billing_core::ids::{ConsultationId, PaymentId, PractitionerId};
    /// use billing_core::money::{Currency, Money};
    /// use billing_core::payment::model::{Applied, EventKind, Payment, PaymentEvent};
    /// use billing_core::uuid::Uuid;
    /// use billing_core::PaymentStatus;
    ///
    /// let eur = |s| Money::parse(s, Currency::Eur);
    /// let now = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    /// let scheduled = Payment::new(
    ///     PaymentId::from_uuid(Uuid::from_u128(1)),
    ///     ConsultationId::from_uuid(Uuid::from_u128(2)),
    ///     PractitionerId::from_uuid(Uuid::from_u128(3)),
    ///     eur("25.00")?,
    ///     FeeSchedule::default_for(Currency::Eur),
    ///     now,
    /// )?;
    /// assert_eq!(scheduled.status(), PaymentStatus::Incomplete);
    ///
    /// // The patient's card is authorised for the whole cap.
    /// let hold = PaymentEvent::HoldPlaced { amount: eur("25.00")?, capture_before: None };
    /// let applied = scheduled.apply(&hold, now)?;
    /// let Applied::Changed { payment: authorized, from, to, .. } = applied else {
    ///     panic!("a hold on an incomplete payment changes it");
    /// };
    /// assert_eq!((from, to), (PaymentStatus::Incomplete, PaymentStatus::Authorized));
    /// assert_eq!(authorized.held(), eur("25.00")?);
    /// // Without the gateway's deadline, the hold lasts seven days.
    /// assert_eq!(authorized.capture_before(), Some(now + Duration::days(7)));
    ///
    /// // After the consultation, the practitioner validates 18.00.
    /// let later = now + Duration::hours(2);
    /// let capture = PaymentEvent::Captured { amount: eur("18.00")?, fee: None };
    /// let applied = authorized.apply(&capture, later)?;
    /// let Applied::Changed { payment: captured, kind, from, to } = applied else {
    ///     panic!("a capture below the hold changes the payment");
    /// };
    /// assert_eq!(kind, EventKind::Captured);
    /// assert_eq!((from, to), (PaymentStatus::Authorized, PaymentStatus::Captured));
    /// assert_eq!(captured.captured(), Some(eur("18.00")?));
    /// assert_eq!(captured.released_remainder()?, Some(eur("7.00")?));
    /// assert_eq!(captured.held(), Money::zero(Currency::Eur));
    /// // The fee is estimated from the schedule until Stripe reports it:
    /// // 18.00 × 1.4 % = 0.252 → 0.25, + 0.25.
    /// let fee = captured.fee().unwrap();
    /// assert_eq!((fee.amount, fee.source), (eur("0.50")?, FeeSource::Estimated));
    /// assert_eq!(captured.net()?, eur("17.50")?);
    /// assert_eq!(captured.version(), scheduled.version() + 2);
    ///
    /// // The same capture again (a retried request) changes nothing...
    /// assert_eq!(captured.apply(&capture, later)?, Applied::Unchanged);
    /// // ...and capturing more than the hold is refused, whatever the state.
    /// let more = PaymentEvent::Captured { amount: eur("30.00")?, fee: None };
    /// assert!(authorized.apply(&more, later).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apply(
        &self,
        event: &PaymentEvent,
        now: DateTime<Utc>,
    ) -> Result<Applied, TransitionError> {
        let refund = self.refund_change(event)?;
        let kind = event.kind_for(self, refund.as_ref());
        let to = self.status.next(kind)?;
        let mut next = self.touched(now);
        next.status = to;
        match event {
            PaymentEvent::HoldPlaced {
                amount,
                capture_before,
            } => {
                // Microseconds: what every store keeps, so a deadline read back (or
                // replayed by the gateway) compares equal.
                let capture_before = &capture_before.map(|d| d.trunc_subsecs(6));
                self.same_currency(amount)?;
                if !amount.is_positive() {
                    return Err(TransitionError::AmountNotPositive);
                }
                if amount.amount() > self.amount.amount() {
                    return Err(TransitionError::AboveHold {
                        requested: *amount,
                        held: self.amount,
                    });
                }
                let same_deadline =
                    capture_before.is_none() || *capture_before == self.capture_before;
                // A renewed hold (a new intent, `authorized_at` cleared) is new even for
                // the same amount: its deadline counts from now when the gateway gives
                // none.
                let renewed = self.authorized_at.is_none();
                if self.status == PaymentStatus::Authorized
                    && self.authorized == Some(*amount)
                    && same_deadline
                    && !renewed
                {
                    return Ok(Applied::Unchanged);
                }
                let authorized_at = self.authorized_at.unwrap_or(now);
                next.authorized = Some(*amount);
                next.authorized_at = Some(authorized_at);
                next.capture_before = Some(
                    capture_before
                        .unwrap_or(authorized_at + Duration::days(DEFAULT_HOLD_VALIDITY_DAYS))
                        .trunc_subsecs(6),
                );
                next.failure = None;
            }
            PaymentEvent::AuthorizationFailed(failure) => {
                if self.status == PaymentStatus::Failed && self.failure.as_ref() == Some(failure) {
                    return Ok(Applied::Unchanged);
                }
                next.failure = Some(failure.clone());
            }
            PaymentEvent::CardSaved(card) => {
                if self.saved_card.as_ref() == Some(card) && self.status == to {
                    return Ok(Applied::Unchanged);
                }
                next.saved_card = Some(card.clone());
                if to == PaymentStatus::CardSaved {
                    next.failure = None;
                }
            }
            PaymentEvent::RenewalFailed(failure) => {
                if self.failure.as_ref() == Some(failure) {
                    return Ok(Applied::Unchanged);
                }
                next.failure = Some(failure.clone());
            }
            PaymentEvent::AttemptEnded => {
                if self.intent.is_none() && self.checkout.is_none() {
                    return Ok(Applied::Unchanged);
                }
                next.intent = None;
                next.checkout = None;
            }
            PaymentEvent::Reopened => {
                // The lapsed hold is gone: a new attempt starts from nothing but the
                // saved card, if any.
                next.intent = None;
                next.checkout = None;
                next.authorized = None;
                next.authorized_at = None;
                next.capture_before = None;
                next.failure = None;
            }
            PaymentEvent::Captured { amount, fee } => {
                self.same_currency(amount)?;
                if !self.check_capture(amount)? {
                    return Ok(Applied::Unchanged);
                }
                next.captured = Some(*amount);
                next.captured_at = Some(now);
                let reported_or_estimate = match fee {
                    Some(f) => *f,
                    None => Fee::estimated(self.fee_schedule.fee(amount)?),
                };
                next.fee = Some(Fee::merge(self.fee, reported_or_estimate));
            }
            PaymentEvent::Released | PaymentEvent::Expired => {
                if self.status == to {
                    return Ok(Applied::Unchanged);
                }
            }
            PaymentEvent::Refunded { .. }
            | PaymentEvent::RefundIssued(_)
            | PaymentEvent::RefundsReported(_) => {
                let Some(change) = refund else {
                    return Ok(Applied::Unchanged);
                };
                if change.total.amount() > self.refunded.amount() {
                    let increase = change.total.checked_sub(&self.refunded)?;
                    if !matches!(
                        self.status,
                        PaymentStatus::Disputed | PaymentStatus::DisputeLost
                    ) {
                        self.check_refund(&increase)?;
                    }
                    next.refund_count += 1;
                }
                let captured = self.captured.unwrap_or(Money::zero(self.amount.currency()));
                if change.total.amount() > captured.amount() {
                    return Err(TransitionError::RefundsAboveCaptured {
                        reported: change.total,
                        captured,
                    });
                }
                next.refunded = change.total;
                next.refunds = change.lines;
            }
            PaymentEvent::FeeReported { fee } => {
                self.same_currency(fee)?;
                let reported = Fee::reported(*fee);
                if self.fee == Some(reported) {
                    return Ok(Applied::Unchanged);
                }
                next.fee = Some(reported);
            }
            PaymentEvent::Disputed(dispute) => {
                for m in [dispute.amount, dispute.withdrawn, dispute.fee] {
                    self.same_currency(&m)?;
                }
                if self
                    .dispute
                    .as_ref()
                    .is_some_and(|known| !dispute.supersedes(known))
                {
                    // Already known, or older than what is known.
                    return Ok(if self.dispute.as_ref() == Some(dispute) {
                        Applied::Unchanged
                    } else {
                        Applied::Stale(IllegalTransition {
                            from: self.status,
                            event: kind,
                        })
                    });
                }
                next.dispute = Some(dispute.clone());
            }
        }
        if next.status != self.status {
            // A new state settles what reconciliation had flagged before.
            next.attention = None;
        }
        Ok(Applied::Changed {
            payment: Box::new(next),
            kind,
            from: self.status,
            to,
        })
    }

    /// What a refund fact does to the refunds and their total, or `None` if it changes
    /// nothing (or is not a refund fact).
    ///
    /// Itemised refunds are the truth: a complete list from the gateway sets the total
    /// to its live refunds, so a refund that failed gives its amount back. Our own new
    /// refund adds its amount to what was refunded when it began. A cumulative total
    /// (from a payload that lists no refunds) only ever raises the total, and only
    /// while no refund is known one by one.
    fn refund_change(&self, event: &PaymentEvent) -> Result<Option<RefundChange>, TransitionError> {
        let zero = Money::zero(self.amount.currency());
        let change = match event {
            PaymentEvent::Refunded { total } => {
                self.same_currency(total)?;
                if !self.refunds.is_empty() || total.amount() <= self.refunded.amount() {
                    None
                } else {
                    Some(RefundChange {
                        lines: self.refunds.clone(),
                        total: *total,
                    })
                }
            }
            PaymentEvent::RefundIssued(line) => {
                self.same_currency(&line.amount)?;
                let known = self.refunds.iter().find(|l| l.id == line.id).cloned();
                refunds::merge(&self.refunds, std::slice::from_ref(line))
                    .map(|lines| {
                        let total = match known {
                            // New: on top of what was refunded before it.
                            None if line.status.is_live() => {
                                self.refunded.checked_add(&line.amount)?
                            }
                            None => self.refunded,
                            // Known, and now dead: its amount comes back.
                            Some(k) if k.status.is_live() && !line.status.is_live() => {
                                self.refunded.checked_sub(&k.amount)?
                            }
                            Some(_) => self.refunded,
                        };
                        Ok::<_, MoneyError>(RefundChange { lines, total })
                    })
                    .transpose()?
            }
            PaymentEvent::RefundsReported(list) => {
                for l in list {
                    self.same_currency(&l.amount)?;
                }
                if list.is_empty() {
                    None
                } else {
                    let lines = refunds::merge(&self.refunds, list);
                    let lines_now = lines.as_deref().unwrap_or(&self.refunds);
                    let total = refunds::live_total(lines_now, zero)?;
                    (lines.is_some() || total != self.refunded).then(|| RefundChange {
                        lines: lines_now.to_vec(),
                        total,
                    })
                }
            }
            _ => None,
        };
        Ok(change)
    }

    /// Notes what reconciliation could not settle (shown on the payment).
    pub fn with_attention(&self, message: String, now: DateTime<Utc>) -> Option<Payment> {
        if self.attention.as_ref().map(|a| &a.message) == Some(&message) {
            return None;
        }
        let mut next = self.touched(now);
        next.attention = Some(Attention { at: now, message });
        Some(next)
    }

    /// Applies a fact reported by the gateway: stale or conflicting facts are ignored
    /// (reported as [`Applied::Stale`]) so that a late or duplicated webhook never moves
    /// a payment backwards. Amount errors are still errors: they mean the gateway and
    /// we disagree about money and a person must look.
    pub fn apply_from_gateway(
        &self,
        event: &PaymentEvent,
        now: DateTime<Utc>,
    ) -> Result<Applied, TransitionError> {
        // Nothing was held yet: the gateway cancelling the attempt's intent (its
        // checkout expired, or it was abandoned) ends that attempt, not the payment.
        // Only a command releases an unpaid payment.
        let event = match event {
            PaymentEvent::Released | PaymentEvent::Expired if self.status.awaits_patient() => {
                &PaymentEvent::AttemptEnded
            }
            // Only the patient reopens a lapsed payment, never a gateway fact.
            PaymentEvent::Reopened => {
                return Ok(Applied::Stale(IllegalTransition {
                    from: self.status,
                    event: EventKind::Reopened,
                }));
            }
            other => other,
        };
        match self.apply(event, now) {
            Err(TransitionError::Illegal(illegal)) => Ok(Applied::Stale(illegal)),
            other => other,
        }
    }

    fn same_currency(&self, m: &Money) -> Result<(), MoneyError> {
        if m.currency() == self.amount.currency() {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: m.currency(),
                right: self.amount.currency(),
            })
        }
    }
}

#[cfg(test)]
mod tests;
