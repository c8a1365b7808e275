//! Use cases that move money or report on it: validate the act (C6), release, refund
//! (C11), the payments table (C8), webhooks (C9), holds that age and reconciliation
//! (C10), and the sandbox's checkout page.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::access::{AccessDenied, Action, Actor, authorize};
use crate::audit::{AuditActor, AuditEntry, AuditLog};
use crate::config::BillingConfig;
use crate::consultation::ports::ConsultationRepository;
use crate::error::BillingError;
use crate::gateway::{
    GatewayError, GatewayEvent, IntentStatus, RefundStatus, SandboxCheckout, SandboxControl,
    SandboxNext, WebhookEvent, WebhookVerifier,
};
use crate::ids::{
    CheckoutSessionId, ConnectedAccountId, ConsultationId, PaymentId, PaymentIntentId,
    PractitionerId,
};
use crate::money::{AmountInput, Money, MoneyError};
use crate::payment::ledger::{Begun, Ledger, StatusChange};
use crate::payment::model::{IdempotencyKey, Operation, Payment, PaymentEvent, PaymentStatus};
use crate::payment::ports::{
    Claim, HistoryEntry, IdempotencyRecord, IdempotencyStore, PaymentCursor, PaymentPage,
    PaymentQuery, PaymentRow, PaymentScope, Reservation, WebhookInbox,
};
use crate::practitioner::service::ConnectService;
use crate::repository::RepositoryError;

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
        if amount.is_zero() {
            return self.release_payment(actor, payment).await;
        }
        payment.check_capture(&amount)?;
        let key = IdempotencyKey::capture(payment.id(), &amount)?;
        let who = AuditActor::of(actor);
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
            return Err(BillingError::Validation {
                field: "payment",
                message: "the hold has no gateway reference".into(),
            });
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
            Err(e) => Err(self.ledger.settle_failure(&payment, e, &who).await),
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
        self.release_payment(actor, payment).await
    }

    async fn release_payment(
        &self,
        actor: &Actor,
        payment: Payment,
    ) -> Result<Payment, BillingError> {
        authorize(actor, Action::ReleaseHold, payment.practitioner())?;
        payment.check_release()?;
        let who = AuditActor::of(actor);
        let key = IdempotencyKey::release(payment.id());
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
        // Nothing held yet, but a checkout session may still be open: close it so the
        // patient can no longer pay (Stripe cancels the session's own intent, which
        // may not be cancelled directly).
        let cancelled = if matches!(
            payment.status(),
            PaymentStatus::Incomplete | PaymentStatus::Failed
        ) && let (Some(account), Some(session)) = (
            payment.account(),
            payment.checkout().and_then(|c| c.session.as_ref()),
        ) {
            let expire = IdempotencyKey::derive(payment.id(), "expire-checkout");
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
                // The patient's card is held after all: cancel that hold too.
                Ok(Some(intent)) if intent.status == IntentStatus::RequiresCapture => {
                    gateway.release(account, &intent.id, &key).await
                }
                Ok(Some(intent)) if intent.status == IntentStatus::Canceled => Ok(intent),
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
            Ok(snapshot) => Ok(self
                .ledger
                .apply_snapshot(payment.id(), &snapshot, &who)
                .await?
                .payment),
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
            .apply_facts(payment.id(), &[PaymentEvent::Released], None, true, who)
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
        let payment = match self
            .ledger
            .begin(
                payment.id(),
                Operation::Refund { amount },
                &key,
                &who,
                |p| p.check_refund(&amount).map(|()| true),
            )
            .await?
        {
            Begun::AlreadyDone(p) => return Ok(p),
            Begun::Proceed(p) => p,
        };
        let (Some(account), Some(intent)) = (payment.account(), payment.intent()) else {
            return Err(BillingError::Validation {
                field: "payment",
                message: "the payment has no gateway reference".into(),
            });
        };
        match self
            .ledger
            .gateway
            .refund(account, intent, &amount, &key)
            .await
        {
            Ok(outcome)
                if matches!(
                    outcome.status,
                    RefundStatus::Succeeded | RefundStatus::Pending
                ) =>
            {
                let events = self
                    .refund_totals(&payment, account, intent, &outcome.amount)
                    .await?;
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

    /// The refunded total after a refund of `amount` the gateway accepted. Ours is
    /// what was refunded when the refund began plus `amount`; but another refund may
    /// have been recorded since (a webhook of one made in Stripe's dashboard), which
    /// would make ours look stale. Stripe's cumulative figure on the charge counts
    /// both, so it is read and wins when it is larger; a gateway that cannot be read
    /// now (or does not report it) leaves ours, and the `charge.refunded` webhook
    /// completes it later. Cumulative facts: the smaller one is skipped as stale.
    async fn refund_totals(
        &self,
        payment: &Payment,
        account: &ConnectedAccountId,
        intent: &PaymentIntentId,
        amount: &Money,
    ) -> Result<Vec<PaymentEvent>, BillingError> {
        let ours = payment.refunded().checked_add(amount)?;
        let mut events = vec![PaymentEvent::Refunded { total: ours }];
        if let (Ok(snapshot), Some(captured)) = (
            self.ledger.gateway.retrieve(account, intent).await,
            payment.captured(),
        ) {
            let reported = snapshot.amount_refunded;
            let larger = reported.checked_cmp(&ours)? == std::cmp::Ordering::Greater;
            let possible = reported.checked_cmp(&captured)? != std::cmp::Ordering::Greater;
            if larger && possible {
                events.push(PaymentEvent::Refunded { total: reported });
            }
        }
        Ok(events)
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
    pub statuses: Vec<PaymentStatus>,
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    pub cursor: Option<PaymentCursor>,
    /// Defaults to 50, at most 200.
    pub limit: Option<u32>,
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

impl ReportingService {
    fn scope(
        &self,
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

    /// A page of the actor's payments (C8), newest first, with totals over the filter.
    pub async fn payments(
        &self,
        actor: &Actor,
        filter: &PaymentFilter,
    ) -> Result<PaymentPage, BillingError> {
        let practitioners = self.scope(actor, filter.practitioner)?;
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
        };
        Ok(self.ledger.payments.list(&query).await?)
    }

    /// Holds whose capture deadline is near (C10): the dashboard's warning.
    pub async fn expiring_holds(&self, actor: &Actor) -> Result<Vec<PaymentRow>, BillingError> {
        let practitioners = self.scope(actor, None)?;
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Applied (possibly changing nothing, when it repeated known facts).
    Applied(Vec<StatusChange>),
    /// Delivered before and processed: acknowledged, ignored.
    Duplicate,
    /// Acknowledged, deliberately not applied.
    Ignored(&'static str),
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

/// Stripe webhooks (C9): verified, stored once, applied monotonically.
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

impl WebhookService {
    /// Verifies a delivery (signature over the raw body) and applies it.
    pub async fn receive(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookOutcome, BillingError> {
        let event = self.verifier.verify(signature, body)?;
        self.apply(&event).await
    }

    /// Applies a verified event once. An event whose processing failed midway is not
    /// marked processed, so the gateway's retry applies it again (safely: monotonic).
    pub async fn apply(&self, event: &WebhookEvent) -> Result<WebhookOutcome, BillingError> {
        let now = self.ledger.now();
        if let Claim::Seen { processed: true } =
            self.inbox.claim(&event.id, &event.kind, now).await?
        {
            return Ok(WebhookOutcome::Duplicate);
        }
        let outcome = self.dispatch(event).await?;
        self.inbox
            .mark_processed(&event.id, self.ledger.now(), &outcome.describe())
            .await?;
        Ok(outcome)
    }

    async fn dispatch(&self, event: &WebhookEvent) -> Result<WebhookOutcome, BillingError> {
        let actor = AuditActor::Stripe(Some(event.id.clone()));
        match &event.payload {
            GatewayEvent::PaymentIntent(snapshot) => {
                let Some(payment) = self
                    .find(event, snapshot.payment, Some(&snapshot.id))
                    .await?
                else {
                    return Ok(WebhookOutcome::Ignored("unknown payment"));
                };
                // A new Checkout Session forgot the intent of the one before; when
                // that old session expires, Stripe cancels its intent. That is not
                // news about this attempt, whose own intent is learnt from its hold or
                // decline.
                if payment.intent().is_none() && snapshot.status == IntentStatus::Canceled {
                    return Ok(WebhookOutcome::Ignored("intent of an earlier checkout"));
                }
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
                Ok(WebhookOutcome::Applied(written.changes))
            }
            GatewayEvent::ChargeRefunded {
                intent,
                payment,
                amount_refunded,
            } => {
                let Some(p) = self.find(event, *payment, intent.as_ref()).await? else {
                    return Ok(WebhookOutcome::Ignored("unknown payment"));
                };
                let events = [PaymentEvent::Refunded {
                    total: *amount_refunded,
                }];
                let written = self
                    .ledger
                    .apply_facts(p.id(), &events, None, false, &actor)
                    .await?;
                Ok(WebhookOutcome::Applied(written.changes))
            }
            GatewayEvent::ChargeExpired { intent, payment } => {
                let Some(p) = self.find(event, *payment, intent.as_ref()).await? else {
                    return Ok(WebhookOutcome::Ignored("unknown payment"));
                };
                let written = self
                    .ledger
                    .apply_facts(p.id(), &[PaymentEvent::Expired], None, false, &actor)
                    .await?;
                Ok(WebhookOutcome::Applied(written.changes))
            }
            GatewayEvent::AccountUpdated(snapshot) => {
                if self.connect.account_updated(snapshot, actor).await? {
                    Ok(WebhookOutcome::Applied(vec![]))
                } else {
                    Ok(WebhookOutcome::Ignored("no change to a known link"))
                }
            }
            GatewayEvent::AccountDeauthorized { account } => {
                if self.connect.account_deauthorized(account, actor).await? {
                    Ok(WebhookOutcome::Applied(vec![]))
                } else {
                    Ok(WebhookOutcome::Ignored("no linked practitioner"))
                }
            }
            GatewayEvent::Unhandled => Ok(WebhookOutcome::Ignored("event type not used")),
        }
    }

    /// The payment an event is about: by our id in the metadata, else by intent. An
    /// event from another connected account than the payment's, or about another
    /// intent than the payment's, is not about that payment (a connected account
    /// cannot move someone else's payment by copying its id into metadata).
    async fn find(
        &self,
        event: &WebhookEvent,
        payment: Option<PaymentId>,
        intent: Option<&PaymentIntentId>,
    ) -> Result<Option<Payment>, BillingError> {
        let found = match (payment, intent) {
            (Some(id), _) => match self.ledger.payments.get(id).await {
                Ok(p) => Some(p),
                Err(RepositoryError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            (None, Some(i)) => self.ledger.payments.find_by_intent(i).await?,
            (None, None) => None,
        };
        Ok(found.filter(|p| {
            let same_account = match (p.account(), event.account.as_ref()) {
                (Some(mine), Some(theirs)) => mine == theirs,
                _ => true,
            };
            let same_intent = match (p.intent(), intent) {
                (Some(mine), Some(theirs)) => mine == theirs,
                _ => true,
            };
            same_account && same_intent
        }))
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

/// One reconciliation pass (C10).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Holds within the warning window of their deadline (flagged, not changed).
    pub expiring: Vec<PaymentId>,
    /// Status moves the pass made.
    pub changed: Vec<StatusChange>,
    /// Payments the gateway could not tell us about this time.
    pub failed: Vec<(PaymentId, String)>,
}

/// Ageing holds and payments left in a transient state.
#[derive(Clone)]
pub struct ReconcileService {
    pub(crate) ledger: Ledger,
    pub(crate) config: BillingConfig,
}

impl std::fmt::Debug for ReconcileService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconcileService").finish_non_exhaustive()
    }
}

impl ReconcileService {
    /// Re-reads lapsed holds and transient payments from the gateway and writes what it
    /// says; lists holds near their deadline. A lapsed hold the gateway knows nothing
    /// about is expired.
    pub async fn run_once(&self) -> Result<ReconcileReport, BillingError> {
        let now = self.ledger.now();
        let actor = AuditActor::System;
        let mut report = ReconcileReport::default();

        let lapsed = self
            .ledger
            .payments
            .holds_due(&PaymentScope::All, now)
            .await?;
        for row in lapsed {
            let p = row.payment;
            match self.ledger.refresh(&p, &actor).await {
                Ok(Some(written)) => report.changed.extend(written.changes),
                // Nothing to read at the gateway, or an account that no longer lets us
                // read (deauthorised): past its deadline, the hold has lapsed there too.
                Ok(None) | Err(BillingError::Gateway(GatewayError::AccountUnavailable { .. })) => {
                    match self
                        .ledger
                        .apply_facts(p.id(), &[PaymentEvent::Expired], None, true, &actor)
                        .await
                    {
                        Ok(written) => report.changed.extend(written.changes),
                        // One payment's trouble never stops the pass for the others.
                        Err(e) => report.failed.push((p.id(), e.to_string())),
                    }
                }
                Err(e) => report.failed.push((p.id(), e.to_string())),
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
            match self.ledger.refresh(&p, &actor).await {
                Ok(Some(written)) => report.changed.extend(written.changes),
                Ok(None) if p.pending().is_some() => {
                    // Nothing at the gateway to settle the operation against.
                    if let Err(e) = self
                        .ledger
                        .apply_facts(p.id(), &[], None, true, &actor)
                        .await
                    {
                        report.failed.push((p.id(), e.to_string()));
                    }
                }
                Ok(None) => {}
                Err(e) => report.failed.push((p.id(), e.to_string())),
            }
        }

        let soon = self
            .ledger
            .payments
            .holds_due(&PaymentScope::All, now + self.config.expiring_within)
            .await?;
        report.expiring = soon
            .into_iter()
            .filter(|r| !r.payment.is_lapsed(now))
            .map(|r| r.payment.id())
            .collect();
        Ok(report)
    }
}

/// The sandbox's stand-in for Stripe's hosted pages.
#[derive(Clone)]
pub struct SandboxService {
    pub(crate) sandbox: Arc<dyn SandboxControl>,
    pub(crate) webhooks: WebhookService,
}

impl std::fmt::Debug for SandboxService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxService").finish_non_exhaustive()
    }
}

impl SandboxService {
    fn not_found(e: GatewayError) -> BillingError {
        match e {
            GatewayError::NotFound { .. } => BillingError::NotFound("checkout session"),
            other => other.into(),
        }
    }

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
        for event in &outcome.events {
            self.webhooks.apply(event).await?;
        }
        Ok(outcome.next)
    }

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
        for event in &outcome.events {
            self.webhooks.apply(event).await?;
        }
        Ok(outcome.next)
    }

    /// The code the sandbox consent page hands to the OAuth callback.
    pub async fn approve_connect(&self, state: &str) -> Result<String, BillingError> {
        Ok(self.sandbox.approve_connect(state).await?)
    }
}

#[cfg(test)]
mod tests;
