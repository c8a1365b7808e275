//! The one place payment changes are written: re-read, apply, conditional write, retry
//! on a lost race. Every use case that moves a payment (commands, webhooks,
//! reconciliation, the sandbox) goes through [`Ledger`].

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::audit::{AuditAction, AuditActor, AuditEntry};
use crate::error::BillingError;
use crate::gateway::{GatewayError, IntentSnapshot, PaymentGateway};
use crate::ids::{PaymentId, PaymentIntentId};
use crate::payment::model::{
    Applied, EventKind, IdempotencyKey, Operation, Payment, PaymentEvent, PaymentStatus,
    TransitionError,
};
use crate::payment::ports::{ChangeLog, HistoryEntry, PaymentRepository};
use crate::practitioner::service::RETRIES;
use crate::repository::RepositoryError;
use crate::system::{Clock, now_micros};

/// A move of the state machine, as reported back to callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusChange {
    pub payment: PaymentId,
    pub from: PaymentStatus,
    pub to: PaymentStatus,
}

/// The outcome of writing facts to a payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub payment: Payment,
    /// Status moves, in order (empty if only data changed or nothing did).
    pub changes: Vec<StatusChange>,
}

/// Told about every status change once it is committed (metrics, notifications).
/// Called on the request's task: implementations must be quick and must not fail.
pub trait PaymentObserver: Send + Sync {
    fn status_changed(&self, change: &StatusChange);
}

/// Whether an operation should go to the gateway.
pub(crate) enum Begun {
    /// Recorded as pending (or already pending with the same key): call the gateway.
    Proceed(Payment),
    /// Already done (e.g. the same capture was applied): nothing to send.
    AlreadyDone(Payment),
}

#[derive(Clone)]
pub(crate) struct Ledger {
    pub(crate) payments: Arc<dyn PaymentRepository>,
    pub(crate) gateway: Arc<dyn PaymentGateway>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) observer: Option<Arc<dyn PaymentObserver>>,
}

fn audit_action(kind: EventKind) -> AuditAction {
    match kind {
        EventKind::HoldPlaced => AuditAction::Authorized,
        EventKind::AuthorizationFailed => AuditAction::AuthorizationFailed,
        EventKind::Captured => AuditAction::Validated,
        EventKind::Released => AuditAction::Released,
        EventKind::Expired => AuditAction::Expired,
        EventKind::PartiallyRefunded | EventKind::Refunded => AuditAction::Refunded,
        EventKind::FeeReported => AuditAction::FeeReported,
    }
}

fn event_kind(event: &PaymentEvent, to: PaymentStatus) -> EventKind {
    match event {
        PaymentEvent::HoldPlaced { .. } => EventKind::HoldPlaced,
        PaymentEvent::AuthorizationFailed(_) => EventKind::AuthorizationFailed,
        PaymentEvent::Captured { .. } => EventKind::Captured,
        PaymentEvent::Released => EventKind::Released,
        PaymentEvent::Expired if to == PaymentStatus::Expired => EventKind::Expired,
        PaymentEvent::Expired => EventKind::Released,
        PaymentEvent::Refunded { .. } if to == PaymentStatus::Refunded => EventKind::Refunded,
        PaymentEvent::Refunded { .. } => EventKind::PartiallyRefunded,
        PaymentEvent::FeeReported { .. } => EventKind::FeeReported,
    }
}

/// Applies `events` on top of `current` (gateway semantics: stale facts are skipped),
/// learning the intent id and clearing the pending operation if asked or if the new
/// state proves it done. Returns the new
/// payment and what to log, or `None` when nothing changed.
pub(crate) fn fold(
    current: &Payment,
    events: &[PaymentEvent],
    intent: Option<&PaymentIntentId>,
    clear_pending: bool,
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
        if let Applied::Changed { payment, from, to } = p.apply_from_gateway(event, now)? {
            let kind = event_kind(event, to);
            let amount = match event {
                PaymentEvent::Refunded { total } => Some(total.checked_sub(&p.refunded())?),
                other => other.amount(),
            };
            log.history.push(HistoryEntry {
                payment: p.id(),
                at: now,
                from,
                to,
                event: kind.as_str().to_owned(),
                amount,
                actor: actor.clone(),
            });
            let mut entry =
                AuditEntry::new(now, p.practitioner(), actor.clone(), audit_action(kind))
                    .subject(p.id().as_uuid());
            if let Some(a) = amount {
                entry = entry.detail(a.to_string());
            } else if let PaymentEvent::AuthorizationFailed(f) = event {
                entry = entry.detail(
                    f.decline_code
                        .clone()
                        .or(f.code.clone())
                        .unwrap_or_default(),
                );
            }
            log.audit.push(entry);
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

    /// Writes gateway facts to the payment, re-reading and re-applying if another
    /// writer got there first.
    pub(crate) async fn apply_facts(
        &self,
        id: PaymentId,
        events: &[PaymentEvent],
        intent: Option<&PaymentIntentId>,
        clear_pending: bool,
        actor: &AuditActor,
    ) -> Result<Written, BillingError> {
        for _ in 0..RETRIES {
            let current = self.get(id).await?;
            let now = self.now();
            let Some((next, log, changes)) =
                fold(&current, events, intent, clear_pending, actor, now)?
            else {
                return Ok(Written {
                    payment: current,
                    changes: vec![],
                });
            };
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
        for _ in 0..RETRIES {
            let current = self.get(id).await?;
            if !check(&current)? {
                return Ok(Begun::AlreadyDone(current));
            }
            let now = self.now();
            let Some(next) = current.begin(operation, key.clone(), now)? else {
                return Ok(Begun::Proceed(current));
            };
            let log = ChangeLog {
                history: vec![HistoryEntry {
                    payment: id,
                    at: now,
                    from: current.status(),
                    to: current.status(),
                    event: format!("{}_requested", operation.name()),
                    amount: match operation {
                        Operation::Capture { amount } | Operation::Refund { amount } => {
                            Some(amount)
                        }
                        Operation::Release => None,
                    },
                    actor: actor.clone(),
                }],
                audit: vec![],
            };
            match self.payments.update(&next, current.version(), &log).await {
                Ok(()) => return Ok(Begun::Proceed(next)),
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

    /// Re-reads the payment's intent (or checkout session) from the gateway and writes
    /// what it says. `Ok(None)` when there is nothing to read.
    pub(crate) async fn refresh(
        &self,
        payment: &Payment,
        actor: &AuditActor,
    ) -> Result<Option<Written>, BillingError> {
        let Some(account) = payment.account() else {
            return Ok(None);
        };
        let snapshot = match (
            payment.intent(),
            payment.checkout().and_then(|c| c.session.as_ref()),
        ) {
            (Some(intent), _) => match self.gateway.retrieve(account, intent).await {
                Ok(s) => Some(s),
                Err(GatewayError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            },
            (None, Some(session)) => {
                self.gateway
                    .retrieve_checkout(account, session)
                    .await?
                    .intent
            }
            (None, None) => None,
        };
        match snapshot {
            Some(s) => Ok(Some(self.apply_snapshot(payment.id(), &s, actor).await?)),
            None => Ok(None),
        }
    }
}
