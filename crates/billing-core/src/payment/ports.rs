//! Storage ports for payments, their history, the webhook inbox and idempotency
//! records, with the query types the payments table needs (C8, C10).

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::audit::{AuditActor, AuditEntry};
use crate::contact::DisplayName;
use crate::ids::{EventId, PaymentId, PaymentIntentId, PractitionerId};
use crate::money::{Currency, Money, MoneyError};
use crate::outbox::Message;
use crate::payment::model::{Payment, PaymentStatus};
use crate::receipt::{Document, DocumentDraft, DocumentNumber};
use crate::repository::RepositoryError;

/// One row of a payment's history: a move of the state machine or a recorded
/// operation, and who caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The payment the row is about.
    pub payment: PaymentId,
    /// When it happened (the use case's clock, in microseconds).
    pub at: DateTime<Utc>,
    /// The status before.
    pub from: PaymentStatus,
    /// The status after; the same as `from` for an operation marker.
    pub to: PaymentStatus,
    /// What happened: an event kind (`captured`, `refunded`…) or an operation marker
    /// (`capture_requested`, `checkout_started`…).
    pub event: String,
    /// The amount the event or operation is about, if any (hold, capture, refund…).
    pub amount: Option<Money>,
    /// Who caused it: a staff user, the patient, Stripe (with the event id) or the system.
    pub actor: AuditActor,
}

/// What is written together with a payment change, in the same transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeLog {
    /// Rows appended to the payment's history ([`PaymentRepository::history`]).
    pub history: Vec<HistoryEntry>,
    /// Entries appended to the audit trail.
    pub audit: Vec<AuditEntry>,
    /// Receipts and credit notes the change issues, to be numbered in the
    /// transaction (see [`PaymentRepository::update`]).
    pub documents: Vec<DocumentDraft>,
    /// E-mail the change sends, queued in the same transaction (a `dedupe` key
    /// already queued is skipped, as [`OutboxRepository::enqueue`] does).
    ///
    /// [`OutboxRepository::enqueue`]: crate::outbox::OutboxRepository::enqueue
    pub messages: Vec<Message>,
}

/// Whose payments a query is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentScope {
    /// Every practitioner's payments (an administrator's view).
    All,
    /// Only these practitioners' payments; an empty list matches nothing.
    Practitioners(Vec<PractitionerId>),
}

/// A position in the payments list: newest first, by creation time then id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaymentCursor {
    /// The creation time of the last payment seen.
    pub created_at: DateTime<Utc>,
    /// Its id, which orders payments created in the same microsecond.
    pub id: PaymentId,
}

/// A cursor that is not one [`PaymentCursor`]'s `Display` wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

impl fmt::Display for PaymentCursor {
    /// Opaque to clients: `{microseconds}.{id}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.created_at.timestamp_micros(), self.id)
    }
}

impl FromStr for PaymentCursor {
    type Err = InvalidCursor;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (micros, id) = s.split_once('.').ok_or(InvalidCursor)?;
        let micros: i64 = micros.parse().map_err(|_| InvalidCursor)?;
        Ok(PaymentCursor {
            created_at: DateTime::from_timestamp_micros(micros).ok_or(InvalidCursor)?,
            id: id.parse().map_err(|_| InvalidCursor)?,
        })
    }
}

/// Filters of the payments table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentQuery {
    /// Whose payments.
    pub scope: PaymentScope,
    /// Empty means every status.
    pub statuses: Vec<PaymentStatus>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created strictly before.
    pub to: Option<DateTime<Utc>>,
    /// Continue after this position.
    pub after: Option<PaymentCursor>,
    /// 1–200.
    pub limit: u32,
    /// Whether to sum every match into [`PaymentPage::totals`] (left empty if not): an
    /// export shows no totals, and should not pay for them on each of its pages.
    pub totals: bool,
}

/// A payment with what the table shows of its consultation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRow {
    /// The payment.
    pub payment: Payment,
    /// The patient's name, as the consultation has it.
    pub patient: DisplayName,
    /// When the consultation starts.
    pub starts_at: DateTime<Utc>,
}

/// Sums over every payment matching a query (not only the page), per currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentTotals {
    /// The currency every amount of this row is in.
    pub currency: Currency,
    /// How many payments matched in this currency.
    pub count: u64,
    /// Currently held (authorised, not yet captured or released).
    pub held: Money,
    /// Given back to cards uncharged ([`Payment::released`]).
    pub released: Money,
    /// Everything captured (kept after refunds and disputes).
    pub captured: Money,
    /// Everything refunded.
    pub refunded: Money,
    /// Stripe's fees, reported or estimated.
    pub fee: Money,
    /// What disputes took: funds withdrawn (net of reinstated) and Stripe's dispute
    /// fees.
    pub disputed: Money,
    /// captured − refunded − fee − disputed.
    pub net: Money,
}

impl PaymentTotals {
    /// Totals of no payment, to [`add`](PaymentTotals::add) payments to.
    pub fn zero(currency: Currency) -> Self {
        let z = Money::zero(currency);
        PaymentTotals {
            currency,
            count: 0,
            held: z,
            released: z,
            captured: z,
            refunded: z,
            fee: z,
            disputed: z,
            net: z,
        }
    }

    /// Adds one payment: the reference definition storage's SQL sums must match.
    pub fn add(&mut self, p: &Payment) -> Result<(), MoneyError> {
        let z = Money::zero(self.currency);
        self.count += 1;
        self.held = self.held.checked_add(&p.held())?;
        self.released = self.released.checked_add(&p.released())?;
        self.captured = self.captured.checked_add(&p.captured().unwrap_or(z))?;
        self.refunded = self.refunded.checked_add(&p.refunded())?;
        self.fee = self.fee.checked_add(&p.fee().map_or(z, |f| f.amount))?;
        self.disputed = self.disputed.checked_add(&p.dispute_cost()?)?;
        self.net = self.net.checked_add(&p.net()?)?;
        Ok(())
    }
}

/// One page of the payments table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentPage {
    /// The payments of this page, newest first.
    pub items: Vec<PaymentRow>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PaymentCursor>,
    /// Per currency, in currency order; empty when the query asked for no totals.
    pub totals: Vec<PaymentTotals>,
}

/// Where payments live, with their history, their documents and the e-mail their
/// changes send (C5, C6, C8, C10, C11).
///
/// A payment is created with its consultation ([`ConsultationRepository::create`]);
/// afterwards every write is an [`update`](PaymentRepository::update).
///
/// # Contract
///
/// - **Optimistic concurrency.** `update` writes only if the stored version is still
///   the expected one, decided by the store in one conditional statement (never a
///   read then a write, never a lock held in one process): of any number of
///   concurrent updates from one version, exactly one succeeds and every other gets
///   [`RepositoryError::Conflict`] with nothing written.
/// - **Atomicity.** The payment and its [`ChangeLog`] (history, audit entries,
///   documents, messages) commit together or not at all.
/// - **Faithful round trip.** A payment reads back equal (`==`) to the one written:
///   every field, money exactly, timestamps at microsecond precision.
/// - **Documents** are numbered per practitioner and year with no gap and no reuse,
///   whatever the number of concurrent writers.
/// - **Errors.** Each method says which of `NotFound`, `Duplicate` and `Conflict` it
///   MUST return; stored data that [`Payment::restore`] refuses is
///   [`RepositoryError::Corrupt`] (never a panic); an outage is
///   [`RepositoryError::Unavailable`].
/// - Reads that list return them in the order each method states, with ties broken
///   by id, so that pages and jobs are deterministic.
///
/// [`ConsultationRepository::create`]: crate::consultation::ports::ConsultationRepository::create
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PaymentRepository: Send + Sync {
    /// MUST return [`RepositoryError::NotFound`] if there is no such payment.
    async fn get(&self, id: PaymentId) -> Result<Payment, RepositoryError>;

    /// The payment whose current intent this is, if any (if several payments
    /// recorded it, the most recently updated one).
    async fn find_by_intent(
        &self,
        intent: &PaymentIntentId,
    ) -> Result<Option<Payment>, RepositoryError>;

    /// The concurrency contract: stores `payment` (with its new, higher version) only
    /// if the stored version is still `expected_version`, together with the history
    /// rows, audit entries and documents of `log`, all in one transaction (a
    /// conditional update, never a read-then-write). MUST return
    /// [`RepositoryError::Conflict`] and write nothing if the version moved (another
    /// writer won), [`RepositoryError::NotFound`] if the payment does not exist.
    ///
    /// Each document gets the next number of its practitioner's sequence for its
    /// `year` (starting at 1), taken in the same transaction so that a write that
    /// fails or rolls back consumes no number: numbers have no gap and are never
    /// reused, whatever the number of concurrent writers. A credit note refers to the
    /// payment's receipt. A second document for the same payment, kind and refund
    /// MUST be refused with [`RepositoryError::Duplicate`] (nothing written).
    async fn update(
        &self,
        payment: &Payment,
        expected_version: i64,
        log: &ChangeLog,
    ) -> Result<(), RepositoryError>;

    /// The receipt and credit notes of a payment, in number order (empty if none).
    async fn documents(&self, payment: PaymentId) -> Result<Vec<Document>, RepositoryError>;

    /// The receipt numbers of these payments (those that have one), in one query.
    async fn receipt_numbers(
        &self,
        payments: &[PaymentId],
    ) -> Result<Vec<(PaymentId, DocumentNumber)>, RepositoryError>;

    /// A page of payments matching `query`, newest first (ties by id, highest first),
    /// with totals over all matches, read from one snapshot so that the page and its
    /// totals agree. A `limit` outside 1–200 is brought into it. The totals MUST equal
    /// [`PaymentTotals::add`] over every match, one row per currency in currency
    /// order.
    async fn list(&self, query: &PaymentQuery) -> Result<PaymentPage, RepositoryError>;

    /// Authorised payments whose capture deadline is at or before `deadline_before`,
    /// soonest deadline first.
    async fn holds_due(
        &self,
        scope: &PaymentScope,
        deadline_before: DateTime<Utc>,
    ) -> Result<Vec<PaymentRow>, RepositoryError>;

    /// Payments whose card is saved for a hold placed later (status `card_saved`) and
    /// whose consultation starts before `starting_before`, soonest first, at most
    /// `limit`: the holds to place now (C14).
    async fn holds_to_place(
        &self,
        starting_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PaymentRow>, RepositoryError>;

    /// Payments the gateway may know more about than we do: a pending operation
    /// recorded before `stale_before`, or an incomplete/failed payment with a checkout
    /// or intent last updated between `since` and `stale_before`. At most `limit`,
    /// oldest update first.
    async fn needing_reconciliation(
        &self,
        stale_before: DateTime<Utc>,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Payment>, RepositoryError>;

    /// How many of the practitioner's payments hold money on a card, will (a card
    /// saved for a hold placed later), or have an operation in flight.
    async fn open_holds(&self, practitioner: PractitionerId) -> Result<u64, RepositoryError>;

    /// The payment's history, oldest first.
    async fn history(&self, id: PaymentId) -> Result<Vec<HistoryEntry>, RepositoryError>;
}

/// Webhook de-duplication: each event id stored once (C9).
///
/// A delivery is looked up ([`processed`](WebhookInbox::processed)), applied, then
/// recorded in one write ([`record_processed`](WebhookInbox::record_processed)).
/// Applying is monotonic, so two deliveries of one event that cross (Stripe's retry
/// of a slow delivery) may both apply it: the second changes nothing. The inbox
/// only spares the work of an event already processed.
///
/// # Contract
///
/// - An event id is stored once, by the store's unique key, whatever the number of
///   concurrent writes of it from any number of servers.
/// - [`record_processed`](WebhookInbox::record_processed) stores the id processed if it
///   is new, and marks it processed if it was stored by
///   [`record_received`](WebhookInbox::record_received); once processed, an id stays
///   processed.
/// - An outage is [`RepositoryError::Unavailable`]: the delivery then fails, and
///   Stripe retries it.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait WebhookInbox: Send + Sync {
    /// Whether the event was recorded processed: a delivery of it is a duplicate.
    async fn processed(&self, id: &EventId) -> Result<bool, RepositoryError>;

    /// Records the event processed, with a short outcome (`applied`, `ignored: …`), in
    /// one write: stored if new (received at `received_at`), else marked processed.
    async fn record_processed(
        &self,
        id: &EventId,
        kind: &str,
        received_at: DateTime<Utc>,
        processed_at: DateTime<Utc>,
        outcome: &str,
    ) -> Result<(), RepositoryError>;

    /// Records that the event arrived and its processing failed (Stripe will deliver
    /// it again): stored if new, unprocessed; an id already stored is left as it is.
    async fn record_received(
        &self,
        id: &EventId,
        kind: &str,
        received_at: DateTime<Utc>,
    ) -> Result<(), RepositoryError>;
}

/// A client's idempotency key and what it produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// Who the key belongs to (a user id): keys of different users never collide.
    pub scope: String,
    /// The key the client sent (`Idempotency-Key`).
    pub key: String,
    /// A digest of the request, so a reused key with another request is detected.
    pub fingerprint: String,
    /// What the request created, once it completed.
    pub resource: Option<Uuid>,
    /// When the key was first reserved.
    pub created_at: DateTime<Utc>,
}

/// The answer to [`IdempotencyStore::reserve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// The key is ours now; run the request, then [`IdempotencyStore::complete`].
    New,
    /// The key was used before: replay (or report a mismatch / in-flight request).
    Existing(IdempotencyRecord),
}

/// Client-supplied `Idempotency-Key`s on requests that create things.
///
/// # Contract
///
/// - A (scope, key) pair is reserved once, by the store's unique key: of concurrent
///   [`reserve`](IdempotencyStore::reserve)s exactly one gets [`Reservation::New`];
///   the others get [`Reservation::Existing`] with the stored record (so the caller
///   can compare fingerprints, and replay the resource once there is one).
/// - Keys of different scopes never collide.
/// - A [`complete`](IdempotencyStore::complete)d key keeps answering replays:
///   [`release`](IdempotencyStore::release) frees only a reservation whose request
///   never completed, and releasing an unknown key is not an error.
/// - A reservation that cannot be settled (a key released and reserved again under
///   it, over and over) may be [`RepositoryError::Conflict`]; an outage is
///   [`RepositoryError::Unavailable`].
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Stores the key if new. Exactly one of concurrent reservations of the same
    /// (scope, key) MUST get [`Reservation::New`].
    async fn reserve(&self, record: &IdempotencyRecord) -> Result<Reservation, RepositoryError>;

    /// Records what the request created. MUST return [`RepositoryError::NotFound`] if
    /// the key was not reserved.
    async fn complete(&self, scope: &str, key: &str, resource: Uuid)
    -> Result<(), RepositoryError>;

    /// Frees a reserved key whose request failed, so a retry can run.
    async fn release(&self, scope: &str, key: &str) -> Result<(), RepositoryError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = PaymentCursor {
            created_at: DateTime::from_timestamp_micros(1_762_000_000_123_456).unwrap(),
            id: PaymentId::from_uuid(Uuid::from_u128(42)),
        };
        assert_eq!(c.to_string().parse(), Ok(c));
        for bad in [
            "",
            "abc",
            "12",
            "12.nope",
            "x.00000000-0000-0000-0000-00000000002a",
        ] {
            assert_eq!(bad.parse::<PaymentCursor>(), Err(InvalidCursor), "{bad}");
        }
    }
}
