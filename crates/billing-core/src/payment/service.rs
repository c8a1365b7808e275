//! Use cases that move money or report on it: validate the act (C6), release, refund
//! (C11), the payments table (C8), webhooks (C9), holds that age and reconciliation
//! (C10), and the sandbox's checkout page.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::access::{AccessDenied, Action, Actor, authorize};
use crate::audit::{AuditActor, AuditEntry, AuditLog};
use crate::config::BillingConfig;
use crate::consultation::model::ConsultationStatus;
use crate::consultation::ports::ConsultationRepository;
use crate::error::BillingError;
use crate::gateway::{
    GatewayError, GatewayEvent, IgnoreReason, IntentSnapshot, IntentStatus, SandboxCheckout,
    SandboxControl, SandboxNext, SetupSnapshot, WebhookEvent, WebhookVerifier,
};
use crate::ids::{
    CheckoutSessionId, ConnectedAccountId, ConsultationId, EventId, PaymentId, PaymentIntentId,
    PractitionerId,
};
use crate::money::{AmountInput, Currency, Money, MoneyError};
use crate::outbox::{DeliveryReport, OutboxRepository, OutboxService, compose};
use crate::payment::holds::{HoldReport, HoldService, Outcome};
use crate::payment::ledger::{Begun, Fresh, Ledger, StatusChange, Written};
use crate::payment::model::{
    IdempotencyKey, Operation, Payment, PaymentEvent, PaymentStatus, TransitionError,
};
use crate::payment::ports::{
    HistoryEntry, IdempotencyRecord, IdempotencyStore, PaymentCursor, PaymentPage, PaymentQuery,
    PaymentRow, PaymentScope, Reservation, WebhookInbox,
};
use crate::practitioner::service::ConnectService;
use crate::receipt::{Document, DocumentNumber};
use crate::repository::RepositoryError;
use crate::video::DayError;

/// Validate the act, release the hold, refund.
#[derive(Clone)]
pub struct PaymentService {
    pub(crate) consultations: Arc<dyn ConsultationRepository>,
    pub(crate) idempotency: Arc<dyn IdempotencyStore>,
    pub(crate) ledger: Ledger,
}

impl std::fmt::Debug for PaymentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentService").finish_non_exhaustive()
    }
}

impl PaymentService {
    /// Validating the act (capture), releasing, refunding and reading payments.
    /// Ports: consultations (the payment of a consultation), the API's idempotency
    /// keys, and the [`Ledger`]'s.
    pub fn new(
        consultations: Arc<dyn ConsultationRepository>,
        idempotency: Arc<dyn IdempotencyStore>,
        ledger: Ledger,
    ) -> Self {
        PaymentService {
            consultations,
            idempotency,
            ledger,
        }
    }

    async fn payment_of(
        &self,
        actor: &Actor,
        consultation: ConsultationId,
        action: Action,
    ) -> Result<Payment, BillingError> {
        let record = match self.consultations.get(consultation).await {
            Err(RepositoryError::NotFound) => return Err(BillingError::NotFound("consultation")),
            other => other?,
        };
        authorize(actor, action, record.consultation.practitioner)?;
        // A cancelled or missed consultation's money moves only as its day says: the
        // fee the patient accepted (`DayService`), or a release — never an act.
        if action == Action::ValidateAct {
            match record.consultation.status {
                ConsultationStatus::Scheduled => {}
                ConsultationStatus::Cancelled(_) => {
                    return Err(DayError::ConsultationCancelled.into());
                }
                ConsultationStatus::NoShow { .. } => return Err(DayError::ConsultationOver.into()),
            }
        }
        record.payment.ok_or(BillingError::Validation {
            field: "consultation",
            message: "this consultation has no online payment".into(),
        })
    }

    /// Validates the act (C6): captures `amount` (0 < amount ≤ hold), the rest of the
    /// hold is released. `0` releases the whole hold. Idempotent: the same validation
    /// retried (or sent twice at once) captures once and answers the same.
    pub async fn validate(
        &self,
        actor: &Actor,
        consultation: ConsultationId,
        amount: &AmountInput,
    ) -> Result<Payment, BillingError> {
        let payment = self
            .payment_of(actor, consultation, Action::ValidateAct)
            .await?;
        let amount = amount.in_currency(payment.amount().currency())?;
        let who = AuditActor::of(actor);
        if amount.is_zero() {
            return self.release_payment(&who, payment).await;
        }
        self.capture_payment(&who, payment, amount).await
    }

    /// Captures `amount` of the hold (the rest is released), once: the actor was
    /// authorised by the caller.
    pub(crate) async fn capture_payment(
        &self,
        who: &AuditActor,
        payment: Payment,
        amount: Money,
    ) -> Result<Payment, BillingError> {
        let who = who.clone();
        payment.check_validation(&amount)?;
        let Some(held) = payment.intent() else {
            return Err(no_gateway_reference("the hold"));
        };
        let key = IdempotencyKey::capture(payment.id(), held, &amount)?;
        let operation = Operation::Capture { amount };
        let payment = match self
            .ledger
            .begin(payment.id(), operation, &key, &who, |p| {
                p.check_capture(&amount)
            })
            .await?
        {
            Begun::AlreadyDone(p) => return Ok(p),
            Begun::Proceed(p) => p,
        };
        let (Some(account), Some(intent)) = (payment.account(), payment.intent()) else {
            return Err(no_gateway_reference("the hold"));
        };
        match self
            .ledger
            .gateway
            .capture(account, intent, &amount, &key)
            .await
        {
            Ok(mut snapshot) => {
                // A successful capture captured the `amount_to_capture` sent, unless the
                // gateway reports its own figure.
                if snapshot.status == IntentStatus::Succeeded
                    && !snapshot.amount_received.is_positive()
                {
                    snapshot.amount_received = amount;
                }
                Ok(self
                    .ledger
                    .apply_snapshot(payment.id(), &snapshot, &who)
                    .await?
                    .payment)
            }
            Err(e) => {
                let refused = self.ledger.settle_failure(&payment, e, &who).await;
                // The same validation sent at once through another server may have made
                // this very capture meanwhile (same key), and the failure's re-sync or
                // that server's write recorded it: a capture that happened is answered
                // as such.
                match self.ledger.get(payment.id()).await {
                    Ok(now) if now.captured() == Some(amount) && now.pending().is_none() => Ok(now),
                    _ => Err(refused),
                }
            }
        }
    }

    /// Releases the hold (or abandons an unpaid payment): nothing is charged.
    pub async fn release(
        &self,
        actor: &Actor,
        consultation: ConsultationId,
    ) -> Result<Payment, BillingError> {
        let payment = self
            .payment_of(actor, consultation, Action::ReleaseHold)
            .await?;
        self.release_payment(&AuditActor::of(actor), payment).await
    }

    /// Releases the hold (or abandons an unpaid payment): the actor was authorised by
    /// the caller.
    pub(crate) async fn release_payment(
        &self,
        who: &AuditActor,
        payment: Payment,
    ) -> Result<Payment, BillingError> {
        payment.check_release()?;
        let who = who.clone();
        let key = IdempotencyKey::release(payment.id(), payment.intent());
        let payment = match self
            .ledger
            .begin(payment.id(), Operation::Release, &key, &who, |p| {
                p.check_release()?;
                Ok(p.status() != PaymentStatus::Released)
            })
            .await?
        {
            Begun::AlreadyDone(p) => return Ok(p),
            Begun::Proceed(p) => p,
        };
        let gateway = &self.ledger.gateway;
        if payment.status() == PaymentStatus::CardSaved {
            // Nothing is held: the hold that was to be placed never will be.
            return self.released_locally(&payment, &who).await;
        }
        // Nothing held yet, but a checkout session may still be open: close it so the
        // patient can no longer pay (Stripe cancels the session's own intent, which
        // may not be cancelled directly).
        let cancelled = if payment.status().awaits_patient()
            && let (Some(account), Some(session)) = (
                payment.account(),
                payment.checkout().and_then(|c| c.session.as_ref()),
            ) {
            let expire = IdempotencyKey::expire_checkout(payment.id(), session);
            // A session that is no longer open may have been paid just now: what it
            // made is read from the gateway, not from our row (its webhook may not have
            // arrived, or may have arrived since we read the payment).
            let paid = match gateway.expire_checkout(account, session, &expire).await {
                Ok(()) => gateway
                    .retrieve_checkout(account, session)
                    .await
                    .map(|state| state.intent),
                Err(e) => Err(e),
            };
            match paid {
                // The patient's card is held after all: cancel that hold too; then
                // nothing is held anywhere.
                Ok(Some(intent)) if intent.status == IntentStatus::RequiresCapture => {
                    let key = IdempotencyKey::release(payment.id(), Some(&intent.id));
                    match gateway.release(account, &intent.id, &key).await {
                        Ok(_) => return self.released_locally(&payment, &who).await,
                        Err(e) => Err(e),
                    }
                }
                // Nothing is held at the gateway: the release is ours to record.
                Ok(_) => return self.released_locally(&payment, &who).await,
                Err(e) => Err(e),
            }
        } else if let (Some(account), Some(intent)) = (payment.account(), payment.intent()) {
            gateway.release(account, intent, &key).await
        } else {
            // No intent exists at the gateway: nothing is held anywhere.
            return self.released_locally(&payment, &who).await;
        };
        match cancelled {
            Ok(snapshot) => {
                let written = self
                    .ledger
                    .apply_snapshot(payment.id(), &snapshot, &who)
                    .await?;
                if written.payment.status().awaits_patient() {
                    // An unpaid intent cancelled: the release itself is ours.
                    return self.released_locally(&written.payment, &who).await;
                }
                Ok(written.payment)
            }
            Err(e) => Err(self.ledger.settle_failure(&payment, e, &who).await),
        }
    }

    /// Records a release that needed no gateway call (nothing held there).
    async fn released_locally(
        &self,
        payment: &Payment,
        who: &AuditActor,
    ) -> Result<Payment, BillingError> {
        let written = self
            .ledger
            .apply_command(payment.id(), &PaymentEvent::Released, who)
            .await?;
        Ok(written.payment)
    }

    /// Refunds part or all of a captured payment (C11). With a client idempotency key,
    /// the same request retried refunds once.
    pub async fn refund(
        &self,
        actor: &Actor,
        id: PaymentId,
        amount: &AmountInput,
        client_key: Option<&str>,
    ) -> Result<Payment, BillingError> {
        let payment = self.ledger.get(id).await?;
        authorize(actor, Action::Refund, payment.practitioner())?;
        let amount = amount.in_currency(payment.amount().currency())?;
        let reservation = match client_key {
            Some(k) => Some(
                self.reserve(
                    actor,
                    &format!("refund:{id}:{k}"),
                    &amount.to_minor()?.to_string(),
                )
                .await?,
            ),
            None => None,
        };
        if let Some(Reservation::Existing(record)) = &reservation {
            return match record.resource {
                Some(_) => self.ledger.get(id).await,
                None => Err(BillingError::IdempotencyKeyInFlight),
            };
        }
        // Checked only now: a replayed refund has already used up what it refunded.
        let result = match payment.check_refund(&amount) {
            Ok(()) => self.refund_now(actor, &payment, amount, client_key).await,
            Err(e) => Err(e.into()),
        };
        if let (Some(k), Some(Reservation::New)) = (client_key, &reservation) {
            let scope = idempotency_scope(actor);
            let key = format!("refund:{id}:{k}");
            // The refund's own outcome wins over a failure to record it: a key left
            // reserved answers "in flight" to retries, which never refunds twice.
            let _ = match &result {
                Ok(_) => self.idempotency.complete(&scope, &key, id.as_uuid()).await,
                Err(_) => self.idempotency.release(&scope, &key).await,
            };
        }
        result
    }

    async fn refund_now(
        &self,
        actor: &Actor,
        payment: &Payment,
        amount: Money,
        client_key: Option<&str>,
    ) -> Result<Payment, BillingError> {
        let who = AuditActor::of(actor);
        // A client's key is hashed with its scope: bounded in length (Stripe takes 255
        // characters at most) and never shared by two users who chose the same key.
        // Without one, the n-th refund's key names its amount too: a retry for another
        // amount is a different operation, refused while the first one's outcome is
        // unknown, and never sent to Stripe under the first one's key.
        let discriminator = client_key.map_or_else(
            || Ok(format!("{}:{}", payment.refund_count(), amount.to_minor()?)),
            |k| {
                Ok::<_, MoneyError>(format!(
                    "k:{}",
                    fingerprint(&format!("{}|{k}", idempotency_scope(actor)))
                ))
            },
        )?;
        let key = IdempotencyKey::refund(payment.id(), &discriminator);
        let read_count = payment.refund_count();
        let payment = match self
            .ledger
            .begin(
                payment.id(),
                Operation::Refund { amount },
                &key,
                &who,
                |p| {
                    // Without a client key, a refund made since this request read the
                    // payment, or one of the same amount in flight, would share its key:
                    // this request would answer that refund as its own. Refuse instead.
                    if client_key.is_none()
                        && (p.refund_count() != read_count
                            || p.pending().is_some_and(|op| op.key == key))
                    {
                        return Err(TransitionError::ConcurrentRefund);
                    }
                    p.check_refund(&amount).map(|()| true)
                },
            )
            .await?
        {
            Begun::AlreadyDone(p) => return Ok(p),
            Begun::Proceed(p) => p,
        };
        let (Some(account), Some(intent)) = (payment.account(), payment.intent()) else {
            return Err(no_gateway_reference("the payment"));
        };
        match self
            .ledger
            .gateway
            .refund(account, intent, &amount, &key)
            .await
        {
            Ok(outcome) if outcome.status.is_live() => {
                let mut events = vec![PaymentEvent::RefundIssued(outcome.line())];
                events.extend(self.refunds_now(account, intent).await);
                let written = self
                    .ledger
                    .apply_facts(payment.id(), &events, None, true, &who)
                    .await?;
                Ok(written.payment)
            }
            Ok(outcome) => Err(self
                .ledger
                .settle_failure(
                    &payment,
                    GatewayError::InvalidRequest {
                        code: Some(crate::error::REFUND_FAILED.into()),
                        param: None,
                        message: format!("refund {} ended {:?}", outcome.id, outcome.status),
                    },
                    &who,
                )
                .await),
            Err(e) => Err(self.ledger.settle_failure(&payment, e, &who).await),
        }
    }

    /// The charge's refunds as the gateway lists them now, after one of ours. Another
    /// refund may have landed meanwhile (one made in Stripe's dashboard, recorded by a
    /// webhook or not yet): the list counts it, and each refund is known by id so none
    /// is counted twice. A gateway that cannot be read now leaves ours alone; the
    /// refund webhooks complete it later.
    async fn refunds_now(
        &self,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
    ) -> Option<PaymentEvent> {
        match self.ledger.gateway.retrieve(account, intent).await {
            Ok(IntentSnapshot {
                refunds: Some(list),
                ..
            }) => Some(PaymentEvent::RefundsReported(list)),
            Ok(IntentSnapshot {
                amount_refunded, ..
            }) if amount_refunded.is_positive() => Some(PaymentEvent::Refunded {
                total: amount_refunded,
            }),
            _ => None,
        }
    }

    async fn reserve(
        &self,
        actor: &Actor,
        key: &str,
        fingerprint: &str,
    ) -> Result<Reservation, BillingError> {
        let record = IdempotencyRecord {
            scope: idempotency_scope(actor),
            key: key.to_owned(),
            fingerprint: fingerprint.to_owned(),
            resource: None,
            created_at: self.ledger.now(),
        };
        let reservation = self.idempotency.reserve(&record).await?;
        if let Reservation::Existing(existing) = &reservation
            && existing.fingerprint != record.fingerprint
        {
            return Err(BillingError::IdempotencyKeyReused);
        }
        Ok(reservation)
    }
}

/// The scope of a client idempotency key: keys of different users never collide.
pub(crate) fn idempotency_scope(actor: &Actor) -> String {
    match actor {
        Actor::Staff(u) => format!("user:{}", u.id),
        _ => "system".to_owned(),
    }
}

/// A digest of a request, to recognise a reused idempotency key.
pub(crate) fn fingerprint(canonical: &str) -> String {
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Filters of the payments table, as a client sends them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentFilter {
    /// One practitioner of the actor's, or all of them.
    pub practitioner: Option<PractitionerId>,
    /// Only these statuses; empty means every status.
    pub statuses: Vec<PaymentStatus>,
    /// Created at or after.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Created strictly before.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Continue after this position (the previous page's
    /// [`next`](crate::payment::ports::PaymentPage::next)).
    pub cursor: Option<PaymentCursor>,
    /// Defaults to 50, at most 200.
    pub limit: Option<u32>,
    /// Leave [`PaymentPage::totals`](crate::payment::ports::PaymentPage::totals) empty
    /// (an export, which shows none).
    pub without_totals: bool,
}

/// The payments table, ageing holds and the audit trail (read-only).
#[derive(Clone)]
pub struct ReportingService {
    pub(crate) audit: Arc<dyn AuditLog>,
    pub(crate) ledger: Ledger,
    pub(crate) config: BillingConfig,
}

impl std::fmt::Debug for ReportingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportingService").finish_non_exhaustive()
    }
}

/// The practitioners whose payments `actor` asks about (`only`, else all of theirs),
/// each checked against the policy: the scope of the payments table, the CSV and the
/// outbox's messages.
pub(crate) fn payments_scope(
    actor: &Actor,
    only: Option<PractitionerId>,
) -> Result<Vec<PractitionerId>, BillingError> {
    let mine = match actor {
        Actor::Staff(user) => user.role.practitioners(),
        Actor::System => match only {
            Some(p) => vec![p],
            None => return Err(BillingError::validation("practitioner", "required")),
        },
        Actor::Anonymous => return Err(AccessDenied::Unauthenticated.into()),
        Actor::Patient { .. } | Actor::Stripe => return Err(AccessDenied::NotFound.into()),
    };
    let chosen: Vec<_> = match only {
        Some(p) => vec![p],
        None => mine,
    };
    for p in &chosen {
        authorize(actor, Action::ViewPayments, *p)?;
    }
    Ok(chosen)
}

impl ReportingService {
    /// The payments table, its totals and CSV, the audit trail. Ports: the audit log
    /// and the [`Ledger`]'s (payments are read through it).
    pub fn new(audit: Arc<dyn AuditLog>, ledger: Ledger, config: BillingConfig) -> Self {
        ReportingService {
            audit,
            ledger,
            config,
        }
    }

    /// A page of the actor's payments (C8), newest first, with totals over the filter.
    pub async fn payments(
        &self,
        actor: &Actor,
        filter: &PaymentFilter,
    ) -> Result<PaymentPage, BillingError> {
        let practitioners = payments_scope(actor, filter.practitioner)?;
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from >= to
        {
            return Err(BillingError::validation("from", "must be before `to`"));
        }
        let limit = filter.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(BillingError::validation("limit", "between 1 and 200"));
        }
        let query = PaymentQuery {
            scope: PaymentScope::Practitioners(practitioners),
            statuses: filter.statuses.clone(),
            from: filter.from,
            to: filter.to,
            after: filter.cursor,
            limit,
            totals: !filter.without_totals,
        };
        Ok(self.ledger.payments.list(&query).await?)
    }

    /// Holds whose capture deadline is near (C10): the dashboard's warning.
    pub async fn expiring_holds(&self, actor: &Actor) -> Result<Vec<PaymentRow>, BillingError> {
        let practitioners = payments_scope(actor, None)?;
        let before = self.ledger.now() + self.config.expiring_within;
        Ok(self
            .ledger
            .payments
            .holds_due(&PaymentScope::Practitioners(practitioners), before)
            .await?)
    }

    /// One payment with its history.
    pub async fn payment(
        &self,
        actor: &Actor,
        id: PaymentId,
    ) -> Result<(Payment, Vec<HistoryEntry>), BillingError> {
        let payment = self.ledger.get(id).await?;
        authorize(actor, Action::ViewPayments, payment.practitioner())?;
        let history = self.ledger.payments.history(id).await?;
        Ok((payment, history))
    }

    /// A page of the actor's payments with the receipt number of each captured one
    /// (the CSV export).
    pub async fn payments_with_receipts(
        &self,
        actor: &Actor,
        filter: &PaymentFilter,
    ) -> Result<
        (
            PaymentPage,
            std::collections::HashMap<PaymentId, DocumentNumber>,
        ),
        BillingError,
    > {
        let page = self.payments(actor, filter).await?;
        let captured: Vec<PaymentId> = page
            .items
            .iter()
            .filter(|r| r.payment.captured().is_some())
            .map(|r| r.payment.id())
            .collect();
        let numbers = if captured.is_empty() {
            Default::default()
        } else {
            self.ledger
                .payments
                .receipt_numbers(&captured)
                .await?
                .into_iter()
                .collect()
        };
        Ok((page, numbers))
    }

    /// The receipt and credit notes of a payment, for staff who may see it.
    pub async fn documents(
        &self,
        actor: &Actor,
        id: PaymentId,
    ) -> Result<Vec<Document>, BillingError> {
        let payment = self.ledger.get(id).await?;
        authorize(actor, Action::ViewPayments, payment.practitioner())?;
        Ok(self.ledger.payments.documents(id).await?)
    }

    /// The practitioner's recent audit trail (C13).
    pub async fn audit_trail(
        &self,
        actor: &Actor,
        practitioner: PractitionerId,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, BillingError> {
        authorize(actor, Action::ViewAudit, practitioner)?;
        Ok(self.audit.recent(practitioner, limit.clamp(1, 500)).await?)
    }
}

/// What happened to a webhook delivery.
// Exhaustive on purpose: the webhook endpoint logs and counts each outcome under a
// closed set of metric labels; a wildcard arm there would blur a new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Applied (possibly changing nothing, when it repeated known facts).
    Applied(Vec<StatusChange>),
    /// Delivered before and processed: acknowledged, ignored.
    Duplicate,
    /// Acknowledged, deliberately not applied.
    Ignored(IgnoreReason),
}

impl WebhookOutcome {
    fn describe(&self) -> String {
        match self {
            WebhookOutcome::Applied(changes) => {
                format!("applied ({} status change(s))", changes.len())
            }
            WebhookOutcome::Duplicate => "duplicate".into(),
            WebhookOutcome::Ignored(why) => format!("ignored: {why}"),
        }
    }
}

/// A verified delivery and what became of it: what the endpoint logs and counts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookReceipt {
    /// The event's id.
    pub id: EventId,
    /// Stripe's event type.
    pub kind: String,
    /// What became of it.
    pub outcome: WebhookOutcome,
}

/// Stripe webhooks (C9, C15): verified, stored once, applied monotonically. Only
/// events about our own objects move anything: a payment's intent must be one we
/// created or read back from Stripe on the practitioner's account, and the event's
/// account must be the payment's.
#[derive(Clone)]
pub struct WebhookService {
    pub(crate) verifier: Arc<dyn WebhookVerifier>,
    pub(crate) inbox: Arc<dyn WebhookInbox>,
    pub(crate) connect: ConnectService,
    pub(crate) ledger: Ledger,
}

impl std::fmt::Debug for WebhookService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookService").finish_non_exhaustive()
    }
}

/// The payment an event is about, or why it is not ours.
type Resolved = Result<Payment, IgnoreReason>;

/// A command on a payment Stripe has no object for yet.
fn no_gateway_reference(what: &str) -> BillingError {
    BillingError::Validation {
        field: "payment",
        message: format!("{what} has no gateway reference"),
    }
}

/// An object an event names, read back on the payment's account: one the account does
/// not have (or no longer lets us read) is not ours.
fn read_back<T>(read: Result<T, GatewayError>) -> Result<Result<T, IgnoreReason>, BillingError> {
    match read {
        Ok(found) => Ok(Ok(found)),
        Err(GatewayError::NotFound { .. } | GatewayError::AccountUnavailable { .. }) => {
            Ok(Err(IgnoreReason::OtherIntent))
        }
        Err(e) => Err(e.into()),
    }
}

/// What a Connect event did to a link: `None` when nobody is linked to its account.
fn link_outcome(changed: Option<bool>) -> WebhookOutcome {
    match changed {
        Some(true) => WebhookOutcome::Applied(vec![]),
        Some(false) => WebhookOutcome::Ignored(IgnoreReason::NoChange),
        None => WebhookOutcome::Ignored(IgnoreReason::UnknownAccount),
    }
}

impl WebhookService {
    /// Stripe's events, verified and applied once. Ports: the verifier, the inbox of
    /// events already seen, the [`ConnectService`] (account events) and the
    /// [`Ledger`] (payment events).
    pub fn new(
        verifier: Arc<dyn WebhookVerifier>,
        inbox: Arc<dyn WebhookInbox>,
        connect: ConnectService,
        ledger: Ledger,
    ) -> Self {
        WebhookService {
            verifier,
            inbox,
            connect,
            ledger,
        }
    }

    /// Verifies a delivery (signature over the raw body) and applies it.
    pub async fn receive(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookReceipt, BillingError> {
        let event = self.verifier.verify(signature, body)?;
        let outcome = self.apply(&event).await?;
        Ok(WebhookReceipt {
            id: event.id,
            kind: event.kind,
            outcome,
        })
    }

    /// Applies a verified event once: a read, the event's own work, one write. An
    /// event whose processing failed midway is recorded unprocessed, so the gateway's
    /// retry applies it again (safely: monotonic).
    pub async fn apply(&self, event: &WebhookEvent) -> Result<WebhookOutcome, BillingError> {
        let received = self.ledger.now();
        if self.inbox.processed(&event.id).await? {
            return Ok(WebhookOutcome::Duplicate);
        }
        match self.dispatch(event).await {
            Ok(outcome) => {
                self.inbox
                    .record_processed(
                        &event.id,
                        &event.kind,
                        received,
                        self.ledger.now(),
                        &outcome.describe(),
                    )
                    .await?;
                Ok(outcome)
            }
            Err(e) => {
                // What failed is the answer; a record that fails too changes nothing
                // (the retry finds the event unprocessed either way).
                let _ = self
                    .inbox
                    .record_received(&event.id, &event.kind, received)
                    .await;
                Err(e)
            }
        }
    }

    async fn dispatch(&self, event: &WebhookEvent) -> Result<WebhookOutcome, BillingError> {
        let actor = AuditActor::Stripe(Some(event.id.clone()));
        let applied = |written: Written| Ok(WebhookOutcome::Applied(written.changes));
        match &event.payload {
            GatewayEvent::PaymentIntent(snapshot) => {
                let (payment, snapshot) = match self.intent_of_ours(event, snapshot).await? {
                    Ok(found) => found,
                    Err(why) => {
                        if why == IgnoreReason::OtherIntent {
                            self.release_stray_hold(event, snapshot).await;
                        }
                        return Ok(WebhookOutcome::Ignored(why));
                    }
                };
                let written = self
                    .ledger
                    .apply_facts(
                        payment.id(),
                        &snapshot.events(),
                        Some(&snapshot.id),
                        false,
                        &actor,
                    )
                    .await?;
                self.release_orphan_hold(&written.payment, snapshot.status, &snapshot.id)
                    .await;
                applied(written)
            }
            GatewayEvent::SetupIntent(setup) => {
                let (payment, setup) = match self.setup_of_ours(event, setup).await? {
                    Ok(found) => found,
                    Err(why) => return Ok(WebhookOutcome::Ignored(why)),
                };
                applied(
                    self.ledger
                        .apply_facts(payment.id(), &setup.events(), None, false, &actor)
                        .await?,
                )
            }
            GatewayEvent::RefundsChanged { intent, payment } => {
                let payment = match self.resolve(event, *payment, intent.as_ref(), None).await? {
                    Ok(p) => p,
                    Err(why) => return Ok(WebhookOutcome::Ignored(why)),
                };
                // The payload may be older than what another event said: the refunds
                // are read as they are now.
                match self.ledger.refresh(&payment, &actor).await {
                    Ok(Some(written)) => applied(written),
                    Ok(None) | Err(BillingError::Gateway(GatewayError::NotFound { .. })) => {
                        Ok(WebhookOutcome::Ignored(IgnoreReason::OtherIntent))
                    }
                    Err(e) => Err(e),
                }
            }
            GatewayEvent::ChargeExpired { intent, payment } => {
                let payment = match self.resolve(event, *payment, intent.as_ref(), None).await? {
                    Ok(p) => p,
                    Err(why) => return Ok(WebhookOutcome::Ignored(why)),
                };
                // Only the payment's own hold: an earlier one (the payment was reopened
                // after it lapsed) is not news about this attempt.
                if intent.is_none() || payment.intent() != intent.as_ref() {
                    return Ok(WebhookOutcome::Ignored(IgnoreReason::OtherIntent));
                }
                applied(
                    self.ledger
                        .apply_facts(payment.id(), &[PaymentEvent::Expired], None, false, &actor)
                        .await?,
                )
            }
            GatewayEvent::Dispute { dispute, intent } => {
                let currency = Some(dispute.amount.currency());
                let payment = match self.resolve(event, None, intent.as_ref(), currency).await? {
                    Ok(p) => p,
                    Err(why) => return Ok(WebhookOutcome::Ignored(why)),
                };
                // A dispute is on a captured charge: the payment's own intent.
                if payment.intent() != intent.as_ref() {
                    return Ok(WebhookOutcome::Ignored(IgnoreReason::OtherIntent));
                }
                applied(
                    self.ledger
                        .apply_facts(
                            payment.id(),
                            &[PaymentEvent::Disputed(dispute.clone())],
                            None,
                            false,
                            &actor,
                        )
                        .await?,
                )
            }
            GatewayEvent::AccountUpdated(snapshot) => {
                if event.account.as_ref().is_some_and(|a| *a != snapshot.id) {
                    return Ok(WebhookOutcome::Ignored(IgnoreReason::OtherAccount));
                }
                Ok(link_outcome(
                    self.connect.account_updated(snapshot, actor).await?,
                ))
            }
            GatewayEvent::AccountDeauthorized { account } => Ok(link_outcome(
                self.connect.account_deauthorized(account, actor).await?,
            )),
            GatewayEvent::Ignored(why) => Ok(WebhookOutcome::Ignored(*why)),
        }
    }

    /// The payment an event is about: by our id in the metadata, else by intent. It is
    /// ours only if its checkout started (an account is recorded), the event comes
    /// from that account (a connected account cannot move someone else's payment by
    /// copying its id into metadata), when the payment knows its intent, the event
    /// is about that intent, and its amounts are in the payment's currency.
    async fn resolve(
        &self,
        event: &WebhookEvent,
        payment: Option<PaymentId>,
        intent: Option<&PaymentIntentId>,
        currency: Option<Currency>,
    ) -> Result<Resolved, BillingError> {
        let found = match (payment, intent) {
            (Some(id), _) => match self.ledger.payments.get(id).await {
                Ok(p) => Some(p),
                Err(RepositoryError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            (None, Some(i)) => self.ledger.payments.find_by_intent(i).await?,
            (None, None) => None,
        };
        let Some(p) = found else {
            return Ok(Err(IgnoreReason::UnknownPayment));
        };
        let Some(mine) = p.account() else {
            return Ok(Err(IgnoreReason::NoAccountYet));
        };
        if event.account.as_ref().is_some_and(|theirs| theirs != mine) {
            return Ok(Err(IgnoreReason::OtherAccount));
        }
        if let (Some(mine), Some(theirs)) = (p.intent(), intent)
            && mine != theirs
        {
            return Ok(Err(IgnoreReason::OtherIntent));
        }
        // Amounts in another currency than the payment's are not about it.
        if currency.is_some_and(|c| c != p.amount().currency()) {
            return Ok(Err(IgnoreReason::Currency));
        }
        Ok(Ok(p))
    }

    /// An intent event's payment and the snapshot to apply. An intent the payment does
    /// not know yet (Checkout makes it when the patient pays) is read back from the
    /// gateway on the payment's account: only an intent that exists there, for this
    /// payment, and is not an earlier attempt's cancelled one, is adopted, as it is now
    /// rather than as the payload says.
    async fn intent_of_ours(
        &self,
        event: &WebhookEvent,
        snapshot: &IntentSnapshot,
    ) -> Result<Result<(Payment, IntentSnapshot), IgnoreReason>, BillingError> {
        let payment = match self
            .resolve(
                event,
                snapshot.payment,
                Some(&snapshot.id),
                Some(snapshot.amount.currency()),
            )
            .await?
        {
            Ok(p) => p,
            Err(why) => return Ok(Err(why)),
        };
        if payment.intent().is_some() {
            return Ok(Ok((payment, snapshot.clone())));
        }
        let Some(account) = payment.account() else {
            return Ok(Err(IgnoreReason::NoAccountYet));
        };
        let fresh = match read_back(self.ledger.gateway.retrieve(account, &snapshot.id).await)? {
            Ok(fresh) => fresh,
            Err(why) => return Ok(Err(why)),
        };
        // A new Checkout Session forgot the intent of the one before; when that old
        // session expires, Stripe cancels its intent. That is not news about this
        // attempt.
        if fresh.payment != Some(payment.id()) || fresh.status == IntentStatus::Canceled {
            return Ok(Err(IgnoreReason::OtherIntent));
        }
        Ok(Ok((payment, fresh)))
    }

    /// A SetupIntent event's payment and the snapshot to apply: the SetupIntent must be
    /// the one the payment's Payment Element was given, or the one its Checkout
    /// Session made (read back from the gateway, as it is now).
    async fn setup_of_ours(
        &self,
        event: &WebhookEvent,
        snapshot: &SetupSnapshot,
    ) -> Result<Result<(Payment, SetupSnapshot), IgnoreReason>, BillingError> {
        let payment = match self.resolve(event, snapshot.payment, None, None).await? {
            Ok(p) => p,
            Err(why) => return Ok(Err(why)),
        };
        let checkout = payment.checkout();
        let Some(account) = payment.account() else {
            return Ok(Err(IgnoreReason::NoAccountYet));
        };
        // Read as it is now, whatever the order events arrive in (a first card's
        // failure delivered after the second card's success).
        if checkout.and_then(|c| c.setup.as_ref()) == Some(&snapshot.id) {
            let fresh = read_back(
                self.ledger
                    .gateway
                    .retrieve_setup(account, &snapshot.id)
                    .await,
            )?;
            return Ok(fresh.map(|fresh| (payment, fresh)));
        }
        let Some(session) = checkout.and_then(|c| c.session.as_ref()) else {
            return Ok(Err(IgnoreReason::OtherIntent));
        };
        let state = match read_back(
            self.ledger
                .gateway
                .retrieve_checkout(account, session)
                .await,
        )? {
            Ok(state) => state,
            Err(why) => return Ok(Err(why)),
        };
        match state.setup {
            Some(fresh) if fresh.id == snapshot.id => Ok(Ok((payment, fresh))),
            _ => Ok(Err(IgnoreReason::OtherIntent)),
        }
    }

    /// A hold on the patient's card that is not the payment's (an earlier checkout
    /// paid late, a second tab): cancelled, so one consultation never holds the card
    /// twice. It must be Stripe's word — read back on the payment's account, made for
    /// this payment, still held — and no hold job may be in flight (that one adopts
    /// its hold). Best effort: unless captured, Stripe lets it lapse in a week.
    async fn release_stray_hold(&self, event: &WebhookEvent, snapshot: &IntentSnapshot) {
        if snapshot.status != IntentStatus::RequiresCapture {
            return;
        }
        let Some(id) = snapshot.payment else {
            return;
        };
        let Ok(payment) = self.ledger.payments.get(id).await else {
            return;
        };
        let Some(account) = payment.account() else {
            return;
        };
        // (A payment without an intent of its own adopted any hold Stripe made for it.)
        if event
            .account
            .as_ref()
            .is_some_and(|theirs| theirs != account)
            || payment.intent().is_none_or(|own| *own == snapshot.id)
            || matches!(
                payment.pending().map(|op| op.operation),
                Some(Operation::Hold { .. })
            )
        {
            return;
        }
        let Ok(fresh) = self.ledger.gateway.retrieve(account, &snapshot.id).await else {
            return;
        };
        if fresh.payment != Some(id) || fresh.status != IntentStatus::RequiresCapture {
            return;
        }
        let key = IdempotencyKey::release(id, Some(&snapshot.id));
        let _ = self
            .ledger
            .gateway
            .release(account, &snapshot.id, &key)
            .await;
    }

    /// A hold placed after the payment was released (the patient finished an old
    /// checkout) would block money on the card for a week: cancel it at once.
    async fn release_orphan_hold(
        &self,
        payment: &Payment,
        status: IntentStatus,
        intent: &PaymentIntentId,
    ) {
        if payment.status() != PaymentStatus::Released || status != IntentStatus::RequiresCapture {
            return;
        }
        if let Some(account) = payment.account() {
            let key = IdempotencyKey::derive(payment.id(), &format!("release-orphan:{intent}"));
            // Best effort: reconciliation and the gateway's own expiry are the backstop.
            let _ = self.ledger.gateway.release(account, intent, &key).await;
        }
    }
}

/// One pass of the background jobs (C10, C14).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// Holds placed, renewed or refused off-session.
    pub holds: HoldReport,
    /// Holds within the warning window of their deadline (flagged, not changed).
    pub expiring: Vec<PaymentId>,
    /// Status moves the pass made.
    pub changed: Vec<StatusChange>,
    /// Disagreements with the gateway the pass could not settle: noted on the payment
    /// for a person to look at, never silently cleared.
    pub attention: Vec<(PaymentId, String)>,
    /// Payments the gateway could not tell us about this time.
    pub failed: Vec<(PaymentId, String)>,
}

impl ReconcileReport {
    /// Adds a later pass to this one: what each did, and what is expiring now.
    pub fn absorb(&mut self, later: ReconcileReport) {
        self.holds.absorb(later.holds);
        self.expiring = later.expiring;
        self.changed.extend(later.changed);
        self.attention.extend(later.attention);
        self.failed.extend(later.failed);
    }
}

/// The background jobs: holds placed and renewed off-session, lapsed holds, payments
/// left in a transient state, holds near their deadline. Every step is a conditional
/// write on one payment, so any number of servers may run it on one database.
#[derive(Clone)]
pub struct ReconcileService {
    pub(crate) holds: HoldService,
    pub(crate) ledger: Ledger,
    pub(crate) outbox: Arc<dyn OutboxRepository>,
    pub(crate) config: BillingConfig,
}

impl std::fmt::Debug for ReconcileService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconcileService").finish_non_exhaustive()
    }
}

impl ReconcileService {
    /// The background jobs: holds placed and renewed ([`HoldService`]), stale
    /// operations settled with the gateway, holds about to lapse told. Ports: the
    /// [`Ledger`]'s and the outbox (the warnings).
    pub fn new(
        holds: HoldService,
        ledger: Ledger,
        outbox: Arc<dyn OutboxRepository>,
        config: BillingConfig,
    ) -> Self {
        ReconcileService {
            holds,
            ledger,
            outbox,
            config,
        }
    }

    /// Runs every job that is due now: places and renews holds, re-reads lapsed holds
    /// and transient payments from the gateway and writes what it says, lists holds
    /// near their deadline. A lapsed hold the gateway knows nothing about is expired.
    pub async fn run_once(&self) -> Result<ReconcileReport, BillingError> {
        let mut report = ReconcileReport {
            holds: self.holds.run_due().await?,
            ..ReconcileReport::default()
        };
        let now = self.ledger.now();

        let lapsed = self
            .ledger
            .payments
            .holds_due(&PaymentScope::All, now)
            .await?;
        for row in lapsed {
            // One payment's trouble never stops the pass for the others.
            if let Err(e) = self.lapse(&row.payment, now, &mut report).await {
                report.failed.push((row.payment.id(), e.to_string()));
            }
        }

        let transient = self
            .ledger
            .payments
            .needing_reconciliation(
                now - self.config.reconcile_after,
                now - self.config.reconcile_window,
                200,
            )
            .await?;
        for p in transient {
            self.settle(&p, &mut report).await;
        }

        let soon = self
            .ledger
            .payments
            .holds_due(&PaymentScope::All, now + self.config.expiring_within)
            .await?;
        let soon: Vec<_> = soon
            .into_iter()
            .filter(|r| !r.payment.is_lapsed(now))
            .collect();
        report.expiring = soon.iter().map(|r| r.payment.id()).collect();
        self.warn_expiring(&soon, now).await?;
        Ok(report)
    }

    /// Writes to the practitioner about holds nearing their deadline that nothing will
    /// renew (no saved card, or its renewal was refused), once per deadline (C10).
    async fn warn_expiring(
        &self,
        rows: &[PaymentRow],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), BillingError> {
        let mut practitioners = std::collections::HashMap::new();
        let mut messages = Vec::new();
        for row in rows {
            let p = &row.payment;
            if p.saved_card().is_some() && p.failure().is_none() {
                continue;
            }
            let who = p.practitioner();
            let practitioner = match practitioners.entry(who) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(self.holds.practitioners.get(who).await?)
                }
            };
            messages.extend(compose::hold_expiring(
                row,
                practitioner,
                self.ledger.ids.new_id(),
                now,
            ));
        }
        if !messages.is_empty() {
            self.outbox.enqueue(&messages).await?;
        }
        Ok(())
    }

    /// A hold past our deadline: what Stripe says decides. A later deadline from
    /// Stripe keeps it; a hold Stripe no longer has, or still calls held past its
    /// deadline, has lapsed — and the latter is cancelled at Stripe, so nothing stays
    /// on the card that the payment does not show. A payment with an operation in
    /// flight (a validation just made, a renewal) is left to settle first.
    async fn lapse(
        &self,
        p: &Payment,
        now: chrono::DateTime<chrono::Utc>,
        report: &mut ReconcileReport,
    ) -> Result<(), BillingError> {
        let actor = AuditActor::System;
        if p.pending().is_some() {
            return Ok(());
        }
        let still_held = match self.ledger.refresh(p, &actor).await {
            Ok(Some(written)) if written.payment.status() != PaymentStatus::Authorized => {
                report.changed.extend(written.changes);
                return Ok(());
            }
            Ok(Some(written)) if !written.payment.is_lapsed(now) => {
                report.changed.extend(written.changes);
                return Ok(());
            }
            Ok(Some(written)) => written.payment.intent().cloned(),
            // Nothing to read at the gateway, or an account that no longer lets us
            // read (deauthorised): past its deadline, the hold has lapsed.
            Ok(None) | Err(BillingError::Gateway(GatewayError::AccountUnavailable { .. })) => None,
            Err(e) => return Err(e),
        };
        if let (Some(intent), Some(account)) = (still_held, p.account()) {
            let key = IdempotencyKey::release(p.id(), Some(&intent));
            // Best effort: Stripe cancels a lapsed authorisation on its own anyway.
            let _ = self.ledger.gateway.release(account, &intent, &key).await;
        }
        let written = self
            .ledger
            .apply_facts(p.id(), &[PaymentEvent::Expired], None, true, &actor)
            .await?;
        report.changed.extend(written.changes);
        Ok(())
    }

    /// Brings one transient payment in line with the gateway, or notes why it cannot.
    async fn settle(&self, p: &Payment, report: &mut ReconcileReport) {
        let actor = AuditActor::System;
        let pending = p.pending().map(|op| op.operation);
        // A hold job that stopped mid-way: resumed under its key, so whatever hold
        // Stripe made is adopted (or cancelled as replaced), never left on the card.
        if let Some(Operation::Hold { .. }) = pending {
            match self.holds.resume(p).await {
                Ok(Outcome::Placed(changes) | Outcome::Refused(changes)) => {
                    report.changed.extend(changes);
                }
                Ok(Outcome::Skipped) => {}
                Err(e) => report.failed.push((p.id(), e.to_string())),
            }
            return;
        }
        let fresh = match self.ledger.read(p).await {
            Ok(fresh) => fresh,
            Err(e) => return report.failed.push((p.id(), e.to_string())),
        };
        let unsettled = match (&fresh, pending) {
            (None, Some(op)) => Some(format!(
                "the gateway has no record to settle the {} in flight against",
                op.name()
            )),
            (None, None) => None,
            (Some(Fresh::Intent(s)), _)
                if s.status == IntentStatus::Succeeded
                    && !s.amount_received.is_positive()
                    && p.captured().is_none()
                    && !matches!(pending, Some(Operation::Capture { .. })) =>
            {
                Some("Stripe reports the payment captured without saying how much".into())
            }
            (Some(fresh), _) => match self.ledger.apply_fresh(p, fresh.clone(), &actor).await {
                Ok(written) => {
                    report.changed.extend(written.changes);
                    None
                }
                Err(
                    e @ (BillingError::PaymentState(_)
                    | BillingError::InvalidAmount(_)
                    | BillingError::CurrencyMismatch { .. }
                    | BillingError::AmountAboveCap { .. }),
                ) => Some(format!("what the gateway reports cannot be applied: {e}")),
                Err(e) => return report.failed.push((p.id(), e.to_string())),
            },
        };
        if let Some(message) = unsettled {
            match self.ledger.flag(p.id(), &message, true, &actor).await {
                Ok(_) => report.attention.push((p.id(), message)),
                Err(e) => report.failed.push((p.id(), e.to_string())),
            }
        }
    }
}

/// The sandbox's stand-in for Stripe's hosted pages.
#[derive(Clone)]
pub struct SandboxService {
    pub(crate) sandbox: Arc<dyn SandboxControl>,
    pub(crate) webhooks: WebhookService,
    pub(crate) jobs: ReconcileService,
    pub(crate) outbox: OutboxService,
}

impl std::fmt::Debug for SandboxService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxService").finish_non_exhaustive()
    }
}

impl SandboxService {
    /// The sandbox's pages and test clock, whose events are applied like webhooks and
    /// whose moves run the jobs and the outbox.
    pub fn new(
        sandbox: Arc<dyn SandboxControl>,
        webhooks: WebhookService,
        jobs: ReconcileService,
        outbox: OutboxService,
    ) -> Self {
        SandboxService {
            sandbox,
            webhooks,
            jobs,
            outbox,
        }
    }

    fn not_found(e: GatewayError) -> BillingError {
        match e {
            GatewayError::NotFound { .. } => BillingError::NotFound("checkout session"),
            other => other.into(),
        }
    }

    /// Catches up with what other servers sharing the sandbox did to its test clock
    /// (the server calls it at start and every second).
    pub async fn refresh(&self) -> Result<(), BillingError> {
        Ok(self.sandbox.refresh().await?)
    }

    /// What the sandbox checkout page shows for `session`.
    ///
    /// # Errors
    ///
    /// [`BillingError::NotFound`] for an unknown session.
    pub async fn checkout(
        &self,
        session: &CheckoutSessionId,
    ) -> Result<SandboxCheckout, BillingError> {
        self.sandbox
            .checkout(session)
            .await
            .map_err(Self::not_found)
    }

    /// Pays with a Stripe test payment method; the resulting events are applied exactly
    /// as webhooks would be.
    pub async fn pay(
        &self,
        session: &CheckoutSessionId,
        payment_method: &str,
    ) -> Result<SandboxNext, BillingError> {
        let outcome = self
            .sandbox
            .pay(session, payment_method)
            .await
            .map_err(Self::not_found)?;
        self.apply_all(&outcome.events).await?;
        Ok(outcome.next)
    }

    /// Answers the 3-D Secure challenge the session waits on (`approve`: the patient
    /// confirms); the resulting events are applied exactly as webhooks would be.
    pub async fn authenticate(
        &self,
        session: &CheckoutSessionId,
        approve: bool,
    ) -> Result<SandboxNext, BillingError> {
        let outcome = self
            .sandbox
            .authenticate(session, approve)
            .await
            .map_err(Self::not_found)?;
        self.apply_all(&outcome.events).await?;
        Ok(outcome.next)
    }

    /// Applies what happened at the sandbox exactly as its webhooks would be.
    async fn apply_all(&self, events: &[WebhookEvent]) -> Result<(), BillingError> {
        for event in events {
            self.webhooks.apply(event).await?;
        }
        Ok(())
    }

    /// The code the sandbox consent page hands to the OAuth callback.
    pub async fn approve_connect(&self, state: &str) -> Result<String, BillingError> {
        Ok(self.sandbox.approve_connect(state).await?)
    }

    /// The sandbox test clock: moves the server's time forward by `seconds` (the
    /// domain's and the sandbox gateway's, one clock) in ticks of at most
    /// [`JOB_TICK_SECS`]; after each tick it applies what happened at the gateway
    /// meanwhile, as its webhooks would, then runs the jobs that became due — as a
    /// server running its jobs every hour would have. Time is tested, never waited for.
    pub async fn advance_clock(&self, seconds: i64) -> Result<ClockAdvanced, BillingError> {
        if !(1..=MAX_CLOCK_STEP_SECS).contains(&seconds) {
            return Err(BillingError::validation(
                "seconds",
                format!("between 1 and {MAX_CLOCK_STEP_SECS}"),
            ));
        }
        let mut left = seconds;
        let mut jobs = ReconcileReport::default();
        let mut mail = DeliveryReport::default();
        loop {
            let tick = left.min(JOB_TICK_SECS);
            left -= tick;
            let advance = self
                .sandbox
                .advance_clock(chrono::Duration::seconds(tick))
                .await?;
            self.apply_all(&advance.events).await?;
            jobs.absorb(self.jobs.run_once().await?);
            mail.absorb(self.outbox.deliver_due().await?);
            if left == 0 {
                return Ok(ClockAdvanced {
                    now: advance.now,
                    jobs,
                    mail,
                });
            }
        }
    }
}

/// The longest single move of the sandbox clock: a year and a day.
pub const MAX_CLOCK_STEP_SECS: i64 = 366 * 24 * 3600;

/// The sandbox clock runs the jobs at least every hour of its time (a real server
/// runs them every few minutes; every deadline they keep is hours wide).
pub const JOB_TICK_SECS: i64 = 3600;

/// The sandbox clock after a step, and what the jobs that became due did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClockAdvanced {
    /// The sandbox clock's new time.
    pub now: chrono::DateTime<chrono::Utc>,
    /// What the jobs that became due did.
    pub jobs: ReconcileReport,
    /// E-mail sent (or retried) as its time came.
    pub mail: DeliveryReport,
}

#[cfg(test)]
mod tests;
