//! The one place payment changes are written: re-read, apply, conditional write, retry
//! on a lost race. Every use case that moves a payment (commands, webhooks,
//! reconciliation, the sandbox) goes through [`Ledger`].

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::audit::{AuditAction, AuditActor, AuditEntry};
use crate::consultation::ports::ConsultationRepository;
use crate::error::BillingError;
use crate::gateway::{GatewayError, IntentSnapshot, IntentStatus, PaymentGateway, SetupSnapshot};
use crate::ids::{PaymentId, PaymentIntentId};
use crate::money::{Money, MoneyError};
use crate::outbox::compose;
use crate::payment::model::{
    Applied, EventKind, IdempotencyKey, Operation, Payment, PaymentEvent, PaymentStatus,
    TransitionError,
};
use crate::payment::ports::{ChangeLog, HistoryEntry, PaymentRepository};
use crate::practitioner::ports::PractitionerRepository;
use crate::practitioner::service::RETRIES;
use crate::receipt;
use crate::repository::RepositoryError;
use crate::system::{Clock, IdGenerator, now_micros};

/// A move of the state machine, as reported back to callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusChange {
    /// The payment that moved.
    pub payment: PaymentId,
    /// The status before.
    pub from: PaymentStatus,
    /// The status after (different from `from`).
    pub to: PaymentStatus,
}

/// The outcome of writing facts to a payment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Written {
    /// The payment as stored now.
    pub payment: Payment,
    /// Status moves, in order (empty if only data changed or nothing did).
    pub changes: Vec<StatusChange>,
}

/// Told about every status change once it is committed (metrics, notifications).
/// Called on the request's task: implementations must be quick and must not fail.
pub trait PaymentObserver: Send + Sync {
    /// Called once per committed move, in order, after the write.
    fn status_changed(&self, change: &StatusChange);
}

/// Whether an operation should go to the gateway.
pub(crate) enum Begun {
    /// Recorded as pending (or already pending with the same key): call the gateway.
    Proceed(Payment),
    /// Already done (e.g. the same capture was applied): nothing to send.
    AlreadyDone(Payment),
}

/// What the gateway says about a payment now: its intent, or the card saving of its
/// checkout in `setup` mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fresh {
    Intent(IntentSnapshot),
    Setup(SetupSnapshot),
}

/// The payments' write path, shared by every use case that moves money: it applies an
/// event to a payment and writes the result with its history, audit entries, receipts
/// and e-mail in one conditional write; records an operation (and its idempotency key)
/// on the payment before the gateway is called; and reads the gateway again when an
/// outcome is unknown. Build it once and give it to the services that take one.
///
/// Ports: payments (read and write), consultations and practitioners (what receipts
/// print), the payment gateway, ids (of the messages a change queues) and the clock.
#[derive(Clone)]
pub struct Ledger {
    pub(crate) payments: Arc<dyn PaymentRepository>,
    /// Read when a change issues a receipt or a credit note (what it prints).
    pub(crate) consultations: Arc<dyn ConsultationRepository>,
    pub(crate) practitioners: Arc<dyn PractitionerRepository>,
    /// Ids of the messages a change queues.
    pub(crate) ids: Arc<dyn IdGenerator>,
    pub(crate) gateway: Arc<dyn PaymentGateway>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) observer: Option<Arc<dyn PaymentObserver>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("observed", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// The write path on these ports, observed by nobody.
    pub fn new(
        payments: Arc<dyn PaymentRepository>,
        consultations: Arc<dyn ConsultationRepository>,
        practitioners: Arc<dyn PractitionerRepository>,
        gateway: Arc<dyn PaymentGateway>,
        ids: Arc<dyn IdGenerator>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Ledger {
            payments,
            consultations,
            practitioners,
            ids,
            gateway,
            clock,
            observer: None,
        }
    }

    /// Tells `observer` about every status change once it is committed.
    pub fn with_observer(mut self, observer: Option<Arc<dyn PaymentObserver>>) -> Self {
        self.observer = observer;
        self
    }
}

fn audit_action(kind: EventKind) -> AuditAction {
    match kind {
        EventKind::HoldPlaced => AuditAction::Authorized,
        EventKind::AuthorizationFailed => AuditAction::AuthorizationFailed,
        EventKind::CardSaved => AuditAction::CardSaved,
        EventKind::RenewalFailed => AuditAction::HoldRenewalFailed,
        EventKind::AttemptEnded => AuditAction::AttemptEnded,
        EventKind::Reopened => AuditAction::Reopened,
        EventKind::Captured => AuditAction::Validated,
        EventKind::Released => AuditAction::Released,
        EventKind::Expired => AuditAction::Expired,
        EventKind::PartiallyRefunded | EventKind::Refunded => AuditAction::Refunded,
        EventKind::RefundFailed | EventKind::AllRefundsFailed => AuditAction::RefundFailed,
        EventKind::RefundUpdated => AuditAction::RefundUpdated,
        EventKind::FeeReported => AuditAction::FeeReported,
        EventKind::DisputeOpened => AuditAction::Disputed,
        EventKind::DisputeWon
        | EventKind::DisputeWonAfterRefund
        | EventKind::DisputeWonAfterFullRefund
        | EventKind::DisputeLost => AuditAction::DisputeClosed,
    }
}

/// Where facts come from. The gateway's are monotonic: a stale fact (a late webhook) is
/// skipped. A command's are strict: an illegal move is an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Gateway,
    Command,
}

/// The amount a history row shows for a change: what moved.
fn moved_amount(
    event: &PaymentEvent,
    before: &Payment,
    after: &Payment,
) -> Result<Option<Money>, MoneyError> {
    Ok(match event {
        PaymentEvent::Refunded { .. }
        | PaymentEvent::RefundIssued(_)
        | PaymentEvent::RefundsReported(_) => {
            let (a, b) = (after.refunded(), before.refunded());
            match a.checked_cmp(&b)? {
                std::cmp::Ordering::Greater => Some(a.checked_sub(&b)?),
                std::cmp::Ordering::Less => Some(b.checked_sub(&a)?),
                std::cmp::Ordering::Equal => None,
            }
        }
        other => other.amount(),
    })
}

/// What the audit entry says beyond the amount.
fn audit_detail(event: &PaymentEvent, amount: Option<Money>) -> String {
    match (event, amount) {
        (PaymentEvent::Disputed(d), _) => format!("{} {} {}", d.id, d.status, d.amount),
        (PaymentEvent::AuthorizationFailed(f) | PaymentEvent::RenewalFailed(f), _) => f
            .decline_code
            .clone()
            .or(f.code.clone())
            .unwrap_or_default(),
        (_, Some(a)) => a.to_string(),
        _ => String::new(),
    }
}

/// Applies `events` on top of `current`, learning the intent id and clearing the
/// pending operation if asked or if the new state proves it done. Returns the new
/// payment and what to log, or `None` when nothing changed.
pub(crate) fn fold(
    current: &Payment,
    events: &[PaymentEvent],
    intent: Option<&PaymentIntentId>,
    clear_pending: bool,
    source: Source,
    actor: &AuditActor,
    now: DateTime<Utc>,
) -> Result<Option<(Payment, ChangeLog, Vec<StatusChange>)>, TransitionError> {
    let mut p = current.clone();
    let mut log = ChangeLog::default();
    let mut changes = Vec::new();
    if let Some(next) = intent.and_then(|i| p.with_intent(i.clone(), now)) {
        p = next;
    }
    for event in events {
        let applied = match source {
            Source::Gateway => p.apply_from_gateway(event, now)?,
            Source::Command => p.apply(event, now)?,
        };
        if let Applied::Changed {
            payment,
            kind,
            from,
            to,
        } = applied
        {
            let amount = moved_amount(event, &p, &payment)?;
            log.history.push(HistoryEntry {
                payment: p.id(),
                at: now,
                from,
                to,
                event: kind.as_str().to_owned(),
                amount,
                actor: actor.clone(),
            });
            log.audit.push(
                AuditEntry::new(now, p.practitioner(), actor.clone(), audit_action(kind))
                    .subject(p.id().as_uuid())
                    .detail(audit_detail(event, amount)),
            );
            if from != to {
                changes.push(StatusChange {
                    payment: p.id(),
                    from,
                    to,
                });
            }
            p = *payment;
        }
    }
    // A webhook that proves the operation happened settles it too, so refunds are not
    // refused as "operation in progress" until reconciliation comes round.
    if p.pending().is_some() && (clear_pending || p.pending_settled()) {
        p = p.finish(now);
    }
    Ok((p.version() != current.version()).then_some((p, log, changes)))
}

impl Ledger {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        now_micros(self.clock.as_ref())
    }

    pub(crate) async fn get(&self, id: PaymentId) -> Result<Payment, BillingError> {
        match self.payments.get(id).await {
            Err(RepositoryError::NotFound) => Err(BillingError::NotFound("payment")),
            other => Ok(other?),
        }
    }

    /// Writes what `change` makes of the fresh payment, re-reading and re-applying if
    /// another writer got there first. `change` answers `None` when there is nothing
    /// to write.
    async fn write<F>(&self, id: PaymentId, change: F) -> Result<Written, BillingError>
    where
        F: Fn(
            &Payment,
            DateTime<Utc>,
        ) -> Result<Option<(Payment, ChangeLog, Vec<StatusChange>)>, BillingError>,
    {
        for _ in 0..RETRIES {
            let current = self.get(id).await?;
            let now = self.now();
            let Some((next, mut log, changes)) = change(&current, now)? else {
                return Ok(Written {
                    payment: current,
                    changes: vec![],
                });
            };
            self.side_effects(&current, &next, now, &mut log).await?;
            match self.payments.update(&next, current.version(), &log).await {
                Ok(()) => {
                    if let Some(observer) = &self.observer {
                        changes.iter().for_each(|c| observer.status_changed(c));
                    }
                    return Ok(Written {
                        payment: next,
                        changes,
                    });
                }
                Err(RepositoryError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(BillingError::Conflict)
    }

    /// What the move from `before` to `after` issues besides itself, written in its
    /// transaction: receipts and credit notes, drafted from the consultation and the
    /// practitioner as they are now, and the e-mail it sends.
    async fn side_effects(
        &self,
        before: &Payment,
        after: &Payment,
        now: DateTime<Utc>,
        log: &mut ChangeLog,
    ) -> Result<(), BillingError> {
        let due = receipt::due(before, after, now);
        let notices = compose::notices(before, after, &due);
        if due.is_empty() && notices.is_empty() {
            return Ok(());
        }
        let record = self.consultations.get(after.consultation()).await?;
        let practitioner = self.practitioners.get(after.practitioner()).await?;
        log.documents = due
            .into_iter()
            .map(|d| receipt::draft(d, after, &practitioner, &record.consultation, now))
            .collect();
        log.messages = notices
            .iter()
            .filter_map(|n| {
                compose::message(n, after, &record, &practitioner, self.ids.new_id(), now)
            })
            .collect();
        Ok(())
    }

    /// Writes gateway facts to the payment (stale ones skipped), re-reading and
    /// re-applying if another writer got there first.
    pub(crate) async fn apply_facts(
        &self,
        id: PaymentId,
        events: &[PaymentEvent],
        intent: Option<&PaymentIntentId>,
        clear_pending: bool,
        actor: &AuditActor,
    ) -> Result<Written, BillingError> {
        self.write(id, |current, now| {
            Ok(fold(
                current,
                events,
                intent,
                clear_pending,
                Source::Gateway,
                actor,
                now,
            )?)
        })
        .await
    }

    /// Writes a command's own event (strict: an illegal move is an error), clearing
    /// the pending operation.
    pub(crate) async fn apply_command(
        &self,
        id: PaymentId,
        event: &PaymentEvent,
        actor: &AuditActor,
    ) -> Result<Written, BillingError> {
        self.write(id, |current, now| {
            Ok(fold(
                current,
                std::slice::from_ref(event),
                None,
                true,
                Source::Command,
                actor,
                now,
            )?)
        })
        .await
    }

    /// Shows on the payment what could not be settled (reconciliation), with a history
    /// row and an audit entry; clears the pending operation when asked.
    pub(crate) async fn flag(
        &self,
        id: PaymentId,
        message: &str,
        clear_pending: bool,
        actor: &AuditActor,
    ) -> Result<Written, BillingError> {
        self.write(id, |current, now| {
            let mut next = current
                .with_attention(message.to_owned(), now)
                .unwrap_or_else(|| current.clone());
            if clear_pending && next.pending().is_some() {
                next = next.finish(now);
            }
            if next.version() == current.version() {
                return Ok(None);
            }
            let log = ChangeLog {
                history: vec![HistoryEntry {
                    payment: id,
                    at: now,
                    from: current.status(),
                    to: current.status(),
                    event: "needs_attention".into(),
                    amount: None,
                    actor: actor.clone(),
                }],
                audit: vec![
                    AuditEntry::new(
                        now,
                        current.practitioner(),
                        actor.clone(),
                        AuditAction::NeedsAttention,
                    )
                    .subject(id.as_uuid())
                    .detail(message),
                ],
                documents: Vec::new(),
                messages: Vec::new(),
            };
            Ok(Some((next, log, vec![])))
        })
        .await
    }

    /// Writes what an intent snapshot says, clearing any pending operation: the gateway
    /// answered, so whatever was in flight is settled.
    pub(crate) async fn apply_snapshot(
        &self,
        id: PaymentId,
        snapshot: &IntentSnapshot,
        actor: &AuditActor,
    ) -> Result<Written, BillingError> {
        self.apply_facts(id, &snapshot.events(), Some(&snapshot.id), true, actor)
            .await
    }

    /// Records `operation` as pending before calling the gateway. `check` decides on the
    /// fresh payment: `Ok(true)` go on, `Ok(false)` already done.
    pub(crate) async fn begin<F>(
        &self,
        id: PaymentId,
        operation: Operation,
        key: &IdempotencyKey,
        actor: &AuditActor,
        check: F,
    ) -> Result<Begun, BillingError>
    where
        F: Fn(&Payment) -> Result<bool, TransitionError>,
    {
        let begun = self
            .record_pending(id, operation, key, actor, false, check)
            .await?;
        // Not exclusive: an operation already pending never stops a command.
        begun.ok_or(BillingError::Conflict)
    }

    /// [`Ledger::begin`] for background jobs: only the worker whose write recorded the
    /// operation goes on; one that finds an operation already pending leaves it
    /// (`None`), so several servers on one database call the gateway once. (A worker
    /// that died mid-way leaves it pending; reconciliation resumes it under the same
    /// key.)
    pub(crate) async fn claim<F>(
        &self,
        id: PaymentId,
        operation: Operation,
        key: &IdempotencyKey,
        actor: &AuditActor,
        check: F,
    ) -> Result<Option<Begun>, BillingError>
    where
        F: Fn(&Payment) -> Result<bool, TransitionError>,
    {
        self.record_pending(id, operation, key, actor, true, check)
            .await
    }

    async fn record_pending<F>(
        &self,
        id: PaymentId,
        operation: Operation,
        key: &IdempotencyKey,
        actor: &AuditActor,
        exclusive: bool,
        check: F,
    ) -> Result<Option<Begun>, BillingError>
    where
        F: Fn(&Payment) -> Result<bool, TransitionError>,
    {
        for _ in 0..RETRIES {
            let current = self.get(id).await?;
            if exclusive && current.pending().is_some() {
                return Ok(None);
            }
            if !check(&current)? {
                return Ok(Some(Begun::AlreadyDone(current)));
            }
            let now = self.now();
            let Some(next) = current.begin(operation, key.clone(), now)? else {
                return Ok(Some(Begun::Proceed(current)));
            };
            let log = ChangeLog {
                history: vec![HistoryEntry {
                    payment: id,
                    at: now,
                    from: current.status(),
                    to: current.status(),
                    event: format!("{}_requested", operation.name()),
                    amount: operation.amount(),
                    actor: actor.clone(),
                }],
                audit: vec![],
                documents: Vec::new(),
                messages: Vec::new(),
            };
            match self.payments.update(&next, current.version(), &log).await {
                Ok(()) => return Ok(Some(Begun::Proceed(next))),
                Err(RepositoryError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(BillingError::Conflict)
    }

    /// After a gateway call failed: if the outcome is known (the gateway refused), the
    /// pending operation is cleared and, for a state mismatch, the payment re-synced;
    /// if it is unknown (timeout, idempotency clash), it stays pending for a retry or
    /// reconciliation.
    pub(crate) async fn settle_failure(
        &self,
        payment: &Payment,
        err: GatewayError,
        actor: &AuditActor,
    ) -> BillingError {
        // Unknown outcomes keep the operation pending. Stripe's idempotency error is
        // one: the key's first request did something we never heard about.
        if matches!(
            err,
            GatewayError::Unavailable { .. }
                | GatewayError::RateLimited
                | GatewayError::IdempotencyConflict
        ) {
            return err.into();
        }
        let synced = match (&err, payment.account(), payment.intent()) {
            (GatewayError::UnexpectedState { .. }, Some(account), Some(intent)) => {
                match self.gateway.retrieve(account, intent).await {
                    Ok(snapshot) => self
                        .apply_snapshot(payment.id(), &snapshot, actor)
                        .await
                        .ok(),
                    Err(_) => None,
                }
            }
            _ => None,
        };
        if synced.is_none()
            && let Err(e) = self.apply_facts(payment.id(), &[], None, true, actor).await
        {
            return e;
        }
        err.into()
    }

    /// What the gateway says about the payment now: its intent, or else what its
    /// checkout session made (an intent, or a saved card). `Ok(None)` when there is
    /// nothing to read (no account, no intent or session, or an intent the gateway
    /// does not know).
    pub(crate) async fn read(&self, payment: &Payment) -> Result<Option<Fresh>, BillingError> {
        let Some(account) = payment.account() else {
            return Ok(None);
        };
        let checkout = payment.checkout();
        match (
            payment.intent(),
            checkout.and_then(|c| c.session.as_ref()),
            checkout.and_then(|c| c.setup.as_ref()),
        ) {
            (Some(intent), _, _) => match self.gateway.retrieve(account, intent).await {
                Ok(s) => Ok(Some(Fresh::Intent(s))),
                Err(GatewayError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            },
            (None, Some(session), _) => {
                let state = self.gateway.retrieve_checkout(account, session).await?;
                Ok(state
                    .intent
                    .map(Fresh::Intent)
                    .or(state.setup.map(Fresh::Setup)))
            }
            (None, None, Some(setup)) => match self.gateway.retrieve_setup(account, setup).await {
                Ok(s) => Ok(Some(Fresh::Setup(s))),
                Err(GatewayError::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            },
            (None, None, None) => Ok(None),
        }
    }

    /// Writes what fresh gateway facts say, settling any pending operation. A capture
    /// the gateway reports done without its amount captured what was asked.
    pub(crate) async fn apply_fresh(
        &self,
        payment: &Payment,
        fresh: Fresh,
        actor: &AuditActor,
    ) -> Result<Written, BillingError> {
        match fresh {
            Fresh::Intent(mut snapshot) => {
                if snapshot.status == IntentStatus::Succeeded
                    && !snapshot.amount_received.is_positive()
                    && let Some(Operation::Capture { amount }) =
                        payment.pending().map(|p| p.operation)
                {
                    snapshot.amount_received = amount;
                }
                self.apply_snapshot(payment.id(), &snapshot, actor).await
            }
            Fresh::Setup(setup) => {
                self.apply_facts(payment.id(), &setup.events(), None, true, actor)
                    .await
            }
        }
    }

    /// Re-reads the payment from the gateway and writes what it says. `Ok(None)` when
    /// there is nothing to read.
    pub(crate) async fn refresh(
        &self,
        payment: &Payment,
        actor: &AuditActor,
    ) -> Result<Option<Written>, BillingError> {
        match self.read(payment).await? {
            Some(fresh) => Ok(Some(self.apply_fresh(payment, fresh, actor).await?)),
            None => Ok(None),
        }
    }
}
