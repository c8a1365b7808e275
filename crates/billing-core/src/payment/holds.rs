//! Holds that cover the consultation (C14): the background work that places a hold
//! off-session with the card the patient saved, in time before the consultation, and
//! renews a hold nearing its deadline while the act is not yet validated.
//!
//! A card hold lasts about seven days (Stripe's extended authorisation is not
//! assumed), so a patient who pays for a consultation further ahead only saves their
//! card, with their consent; the hold is placed [`BillingConfig::hold_lead`] before the
//! start. A renewal places a new hold first, then cancels the old one: captures only
//! ever use the payment's current intent, and the renewal is recorded as the
//! payment's pending operation meanwhile, so a validation waits for it — never two
//! captures.
//!
//! Every step is claimed on the payment first (a conditional write of the pending
//! operation): of several servers sharing one database, one places the hold; the
//! idempotency key (per saved card, or per renewed intent) makes a retry after a crash
//! safe, and reconciliation resumes a step left pending under that same key, so a
//! hold Stripe made is always adopted or cancelled.

use chrono::{DateTime, Utc};

use crate::audit::AuditActor;
use crate::config::BillingConfig;
use crate::consultation::ports::ConsultationRepository;
use crate::consultation::service::hold_request;
use crate::error::BillingError;
use crate::gateway::GatewayError;
use crate::ids::{ConnectedAccountId, PaymentId, PaymentIntentId};
use crate::money::Money;
use crate::payment::ledger::{Begun, Ledger, StatusChange};
use crate::payment::model::{
    Failure, IdempotencyKey, Lang, Operation, Payment, PaymentEvent, PaymentStatus, SavedCard,
};
use crate::payment::ports::{PaymentRow, PaymentScope};
use crate::practitioner::ports::PractitionerRepository;
use std::sync::Arc;

/// How many holds one pass places or renews at most (the next pass takes the rest).
const BATCH: u32 = 200;

/// What a pass of the hold jobs did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HoldReport {
    /// Off-session holds placed (first hold of a saved card).
    pub placed: Vec<PaymentId>,
    /// Holds renewed before their deadline.
    pub renewed: Vec<PaymentId>,
    /// Holds the saved card refused (declined, or the bank asked for authentication):
    /// the payment says so and the patient's link lets them authorise again.
    pub refused: Vec<PaymentId>,
    /// Status moves the pass made, in order.
    pub changed: Vec<StatusChange>,
    /// Payments the gateway could not be asked about this time.
    pub failed: Vec<(PaymentId, String)>,
}

impl HoldReport {
    /// Adds a later pass to this one.
    pub fn absorb(&mut self, later: HoldReport) {
        self.placed.extend(later.placed);
        self.renewed.extend(later.renewed);
        self.refused.extend(later.refused);
        self.changed.extend(later.changed);
        self.failed.extend(later.failed);
    }
}

/// Places and renews holds off-session.
#[derive(Clone)]
pub struct HoldService {
    pub(crate) consultations: Arc<dyn ConsultationRepository>,
    pub(crate) practitioners: Arc<dyn PractitionerRepository>,
    pub(crate) ledger: Ledger,
    pub(crate) config: BillingConfig,
}

impl std::fmt::Debug for HoldService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HoldService").finish_non_exhaustive()
    }
}

/// Which hold a job places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Job {
    /// The first hold of a saved card.
    Place,
    /// A new hold replacing the current one before its deadline.
    Renew,
}

impl HoldService {
    /// Holds placed off-session with saved cards, and renewed before they lapse. Ports:
    /// consultations and practitioners (what is due, on which account) and the
    /// [`Ledger`]'s.
    pub fn new(
        consultations: Arc<dyn ConsultationRepository>,
        practitioners: Arc<dyn PractitionerRepository>,
        ledger: Ledger,
        config: BillingConfig,
    ) -> Self {
        HoldService {
            consultations,
            practitioners,
            ledger,
            config,
        }
    }

    /// Places the holds that are due (card saved, consultation within
    /// [`BillingConfig::hold_lead`]) and renews those near their deadline.
    pub async fn run_due(&self) -> Result<HoldReport, BillingError> {
        let now = self.ledger.now();
        let mut report = HoldReport::default();
        let due = self
            .ledger
            .payments
            .holds_to_place(now + self.config.hold_lead, BATCH)
            .await?;
        for row in due {
            self.run(Job::Place, &row, &mut report).await;
        }
        let expiring = self
            .ledger
            .payments
            .holds_due(&PaymentScope::All, now + self.config.renew_before)
            .await?;
        for row in expiring
            .into_iter()
            .filter(|r| self.renewable(r, now))
            .take(BATCH as usize)
        {
            self.run(Job::Renew, &row, &mut report).await;
        }
        Ok(report)
    }

    /// A hold worth renewing: still in place, a saved card to renew it with, and a
    /// consultation recent enough that its act may still be validated.
    fn renewable(&self, row: &PaymentRow, now: DateTime<Utc>) -> bool {
        let p = &row.payment;
        p.status() == PaymentStatus::Authorized
            && p.saved_card().is_some()
            && p.intent().is_some()
            // A renewal the card refused is not retried: the current hold stays until
            // its deadline (a new hold clears the failure).
            && p.failure().is_none()
            && !p.is_lapsed(now)
            && now < row.starts_at + self.config.renew_until_after_start
    }

    async fn run(&self, job: Job, row: &PaymentRow, report: &mut HoldReport) {
        let id = row.payment.id();
        match self.hold(job, &row.payment).await {
            Ok(Outcome::Placed(changes)) => {
                report.changed.extend(changes);
                match job {
                    Job::Place => report.placed.push(id),
                    Job::Renew => report.renewed.push(id),
                }
            }
            Ok(Outcome::Refused(changes)) => {
                report.changed.extend(changes);
                report.refused.push(id);
            }
            Ok(Outcome::Skipped) => {}
            // One payment's trouble never stops the pass for the others.
            Err(e) => report.failed.push((id, e.to_string())),
        }
    }

    async fn hold(&self, job: Job, seen: &Payment) -> Result<Outcome, BillingError> {
        let (Some(card), Some(account)) = (seen.saved_card().cloned(), seen.account().cloned())
        else {
            return Ok(Outcome::Skipped);
        };
        let replaced = seen.intent().cloned();
        let (key, expected) = match (job, &replaced) {
            (Job::Place, _) => (
                IdempotencyKey::hold(seen.id(), &card.payment_method),
                PaymentStatus::CardSaved,
            ),
            (Job::Renew, Some(current)) => (
                IdempotencyKey::renewal(seen.id(), current),
                PaymentStatus::Authorized,
            ),
            (Job::Renew, None) => return Ok(Outcome::Skipped),
        };
        let amount = seen.authorized().unwrap_or(seen.amount());
        let claimed = self
            .ledger
            .claim(
                seen.id(),
                Operation::Hold { amount },
                &key,
                &AuditActor::System,
                |p| {
                    Ok(p.status() == expected
                        && p.intent() == replaced.as_ref()
                        && p.saved_card() == Some(&card))
                },
            )
            .await?;
        let payment = match claimed {
            Some(Begun::Proceed(p)) => p,
            Some(Begun::AlreadyDone(_)) | None => return Ok(Outcome::Skipped),
        };
        let attempt = Attempt {
            job,
            replaced,
            card,
            account,
            key,
            amount,
        };
        self.send(&payment, attempt).await
    }

    /// Resumes a hold job that stopped after recording its operation (a crash, a
    /// timeout): the request is sent again under the recorded key — Stripe answers what
    /// the first one did — and its hold adopted, or its refusal recorded, as the job
    /// would have. Reconciliation calls it for a hold left pending; a pending hold is
    /// never just cleared, which could leave a second hold on the card unknown.
    pub(crate) async fn resume(&self, p: &Payment) -> Result<Outcome, BillingError> {
        let Some(pending) = p.pending() else {
            return Ok(Outcome::Skipped);
        };
        let Operation::Hold { amount } = pending.operation else {
            return Ok(Outcome::Skipped);
        };
        let job = match (p.status(), p.intent()) {
            (PaymentStatus::Authorized, Some(current)) => Some((Job::Renew, Some(current.clone()))),
            (PaymentStatus::CardSaved, _) => Some((Job::Place, None)),
            _ => None,
        };
        let (Some((job, replaced)), Some(card), Some(account)) =
            (job, p.saved_card().cloned(), p.account().cloned())
        else {
            // The hold was settled another way (its webhook): nothing is in flight.
            self.ledger
                .apply_facts(p.id(), &[], None, true, &AuditActor::System)
                .await?;
            return Ok(Outcome::Skipped);
        };
        let attempt = Attempt {
            job,
            replaced,
            card,
            account,
            key: pending.key.clone(),
            amount,
        };
        self.send(p, attempt).await
    }

    /// Sends a claimed hold request and records what came of it.
    async fn send(&self, payment: &Payment, attempt: Attempt) -> Result<Outcome, BillingError> {
        let who = AuditActor::System;
        let Attempt {
            job,
            replaced,
            card,
            account,
            key,
            amount,
        } = attempt;
        let consultation = self.consultations.get(payment.consultation()).await?;
        let practitioner = self.practitioners.get(payment.practitioner()).await?;
        if practitioner.link.chargeable_account().ok() != Some(&account) {
            // The card was saved on an account the practitioner no longer charges
            // on: it cannot be used; the patient authorises again.
            let failure = Failure {
                code: Some("account_changed".into()),
                decline_code: None,
                message: "The practitioner's Stripe account changed since the card was saved."
                    .into(),
            };
            return self.refused(job, payment, failure, &who).await;
        }
        let mut request = hold_request(
            &practitioner,
            &consultation.consultation,
            payment,
            account.clone(),
            Lang::Fr,
            key,
        );
        request.amount = amount;
        request.off_session = Some(card);
        match self.ledger.gateway.create_hold(&request).await {
            Ok(snapshot) => {
                let written = self
                    .ledger
                    .apply_snapshot(payment.id(), &snapshot, &who)
                    .await?;
                if let (Job::Renew, Some(old)) = (job, &replaced)
                    && written.payment.intent() != Some(old)
                {
                    self.release_replaced(&written.payment, old).await;
                }
                Ok(Outcome::Placed(written.changes))
            }
            Err(GatewayError::Declined(failure)) => self.refused(job, payment, failure, &who).await,
            // The outcome is unknown: the operation stays pending, and the next pass of
            // reconciliation resumes it under the same key.
            Err(
                e @ (GatewayError::Unavailable { .. }
                | GatewayError::RateLimited
                | GatewayError::IdempotencyConflict),
            ) => Err(self.ledger.settle_failure(payment, e, &who).await),
            // The platform itself cannot call Stripe: nothing about this payment is
            // wrong; a person must fix the configuration, then the job retries.
            Err(e @ (GatewayError::Authentication | GatewayError::NotConfigured(_))) => {
                let message = format!("the hold could not be placed: {e}");
                let err = self.ledger.settle_failure(payment, e, &who).await;
                let _ = self.ledger.flag(payment.id(), &message, false, &who).await;
                Err(err)
            }
            // Stripe refused this hold (the saved card or the customer is gone, the
            // account is no longer reachable, …): the card cannot be held, so the
            // patient is asked to authorise again, and a person is told why.
            Err(e) => {
                let message = format!("the hold could not be placed: {e}");
                let failure = Failure {
                    code: Some("hold_refused".into()),
                    decline_code: None,
                    message: e.to_string(),
                };
                let outcome = self.refused(job, payment, failure, &who).await?;
                let _ = self.ledger.flag(payment.id(), &message, false, &who).await;
                Ok(outcome)
            }
        }
    }

    /// The saved card was refused: a first hold fails the payment (the patient is
    /// asked to authorise again); a refused renewal is noted and the current hold
    /// stays until its deadline.
    async fn refused(
        &self,
        job: Job,
        payment: &Payment,
        failure: Failure,
        who: &AuditActor,
    ) -> Result<Outcome, BillingError> {
        let event = match job {
            Job::Place => PaymentEvent::AuthorizationFailed(failure),
            Job::Renew => PaymentEvent::RenewalFailed(failure),
        };
        let written = self
            .ledger
            .apply_facts(payment.id(), &[event], None, true, who)
            .await?;
        Ok(Outcome::Refused(written.changes))
    }

    /// Cancels the hold a renewal replaced. Should that fail, the old hold lapses by
    /// itself within [`BillingConfig::renew_before`]; it is noted on the payment.
    async fn release_replaced(&self, payment: &Payment, old: &PaymentIntentId) {
        let Some(account) = payment.account() else {
            return;
        };
        let key = IdempotencyKey::release_superseded(payment.id(), old);
        if let Err(e) = self.ledger.gateway.release(account, old, &key).await {
            let _ = self
                .ledger
                .flag(
                    payment.id(),
                    &format!(
                        "the replaced hold {old} could not be cancelled ({e}); it lapses by itself"
                    ),
                    false,
                    &AuditActor::System,
                )
                .await;
        }
    }
}

/// A claimed hold request: which job, the hold it replaces, with what, under which
/// key.
struct Attempt {
    job: Job,
    replaced: Option<PaymentIntentId>,
    card: SavedCard,
    account: ConnectedAccountId,
    key: IdempotencyKey,
    amount: Money,
}

pub(crate) enum Outcome {
    Placed(Vec<StatusChange>),
    Refused(Vec<StatusChange>),
    Skipped,
}

#[cfg(test)]
mod tests;
