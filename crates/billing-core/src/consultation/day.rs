//! The consultation's day: the pass to the video room, the practitioner starting the
//! consultation, cancellation (by the patient or the practice), rescheduling, and
//! the no-show — with the hold doing its job.
//!
//! Every change of a consultation's day is a conditional write
//! ([`ConsultationRepository::update_day`]) with its history and audit, made
//! *before* the money moves: a release or capture that fails (the gateway down) is
//! finished by the same request retried, which finds the day already written and
//! only settles the payment. The fee a missed consultation costs is the one the
//! patient accepted ([`AcceptedTerms`]), never more than the hold; without accepted
//! terms nothing is charged.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};

use crate::access::{Action, Actor, authorize};
use crate::audit::{AuditAction, AuditActor, AuditEntry};
use crate::config::BillingConfig;
use crate::consultation::model::{
    Cancellation, CancelledBy, Consultation, ConsultationRecord, ConsultationStatus,
};
use crate::consultation::policy::AcceptedTerms;
use crate::consultation::ports::ConsultationRepository;
use crate::consultation::service::PatientService;
use crate::error::BillingError;
use crate::ids::ConsultationId;
use crate::money::Money;
use crate::outbox::{Message, compose};
use crate::payment::ledger::Ledger;
use crate::payment::model::{Payment, PaymentStatus};
use crate::payment::ports::{ChangeLog, HistoryEntry};
use crate::payment::service::PaymentService;
use crate::practitioner::ports::PractitionerRepository;
use crate::repository::RepositoryError;
use crate::video::{DayError, Pass, PassClaims, PassSigner, room_url};

/// When a consultation's pass is valid: from `pass_open_before` before its start
/// until `open_after_start` after it.
pub fn pass_window(c: &Consultation, config: &BillingConfig) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        c.starts_at - config.pass_open_before,
        c.starts_at + config.open_after_start,
    )
}

/// May the consultation be started at `now` (what [`DayService::start`] checks, for
/// pages that offer the button): scheduled, not validated, within its pass window.
pub fn startable(record: &ConsultationRecord, config: &BillingConfig, now: DateTime<Utc>) -> bool {
    let (opens_at, closes_at) = pass_window(&record.consultation, config);
    scheduled(&record.consultation).is_ok()
        && over_once_validated(record.payment.as_ref()).is_ok()
        && now >= opens_at
        && now < closes_at
}

/// Cancelled and missed consultations refuse what only a scheduled one allows.
fn scheduled(c: &Consultation) -> Result<(), DayError> {
    match c.status {
        ConsultationStatus::Scheduled => Ok(()),
        ConsultationStatus::Cancelled(_) => Err(DayError::ConsultationCancelled),
        ConsultationStatus::NoShow { .. } => Err(DayError::ConsultationOver),
    }
}

/// The act was validated: nothing about the day can change any more.
fn unsettled(payment: Option<&Payment>) -> Result<(), DayError> {
    match payment {
        Some(p) if p.captured().is_some() => Err(DayError::AlreadySettled),
        _ => Ok(()),
    }
}

/// A validated act means the consultation took place: no room to enter any more.
fn over_once_validated(payment: Option<&Payment>) -> Result<(), DayError> {
    match payment {
        Some(p) if p.captured().is_some() => Err(DayError::ConsultationOver),
        _ => Ok(()),
    }
}

/// Can the payment still be released (a hold, a saved card, an unpaid attempt)?
fn releasable(p: &Payment) -> bool {
    p.status() != PaymentStatus::Released && p.check_release().is_ok()
}

/// The fee a missed consultation costs: what the patient accepted, at most what is
/// held. `None` when nothing is held or nothing was agreed.
fn missed_fee(p: &Payment) -> Option<Money> {
    if p.status() != PaymentStatus::Authorized {
        return None;
    }
    let held = p.authorized()?;
    p.terms().and_then(|t: &AcceptedTerms| t.fee_for(held))
}

/// Would the patient cancelling at `now` cost nothing? Yes unless something is held,
/// the patient accepted a fee, and the free window has passed.
///
/// A practice that moved the consultation, after the patient accepted, to a time
/// already inside the window leaves the patient a free cancellation: they never had
/// the notice the policy promised.
pub(crate) fn cancelling_is_free(record: &ConsultationRecord, now: DateTime<Utc>) -> bool {
    let Some(p) = &record.payment else {
        return true;
    };
    let c = &record.consultation;
    missed_fee(p).is_none()
        || p.terms().is_none_or(|t| {
            t.is_free(c.starts_at, now)
                || c.rescheduled_at
                    .is_some_and(|moved| moved > t.at && !t.is_free(c.starts_at, moved))
        })
}

/// Signs a pass for `c` now, if its window is open and a platform is configured.
fn issue_pass(
    passes: Option<&Arc<dyn PassSigner>>,
    config: &BillingConfig,
    c: &Consultation,
    display_name: String,
    moderator: bool,
    now: DateTime<Utc>,
) -> Result<Pass, BillingError> {
    let (opens_at, closes_at) = pass_window(c, config);
    if now < opens_at {
        return Err(DayError::TooEarly { opens_at }.into());
    }
    if now >= closes_at {
        return Err(DayError::ConsultationOver.into());
    }
    let signer = passes.ok_or(DayError::VideoNotConfigured)?;
    let room = signer.room(c.id);
    let claims = PassClaims {
        consultation: c.id,
        room: room.clone(),
        display_name,
        moderator,
        issued_at: now,
        not_before: opens_at,
        expires_at: closes_at,
    };
    let jwt = signer.sign(&claims).map_err(BillingError::Pass)?;
    Ok(Pass {
        url: config
            .video_url
            .as_deref()
            .map(|t| room_url(t, &room, &jwt)),
        jwt,
        room,
        expires_at: closes_at,
    })
}

/// What a change of the day records: its history line (on the payment, if any) and
/// its audit entry.
struct DayChange {
    event: &'static str,
    amount: Option<Money>,
    action: AuditAction,
    detail: String,
    /// What the patient is told (queued in the same transaction).
    messages: Vec<Message>,
}

/// `record` with its day moved to `next` (the payment as read).
fn moved(record: &ConsultationRecord, next: Consultation) -> ConsultationRecord {
    ConsultationRecord {
        consultation: next,
        payment: record.payment.clone(),
    }
}

/// Writes `after`'s day (see [`moved`]) with what it records, conditionally on the
/// day `record` was read with.
async fn write_day(
    consultations: &dyn ConsultationRepository,
    record: &ConsultationRecord,
    after: &ConsultationRecord,
    change: DayChange,
    who: &AuditActor,
    now: DateTime<Utc>,
) -> Result<(), BillingError> {
    let DayChange {
        event,
        amount,
        action,
        detail,
        messages,
    } = change;
    let c = &record.consultation;
    let log = ChangeLog {
        history: record
            .payment
            .iter()
            .map(|p| HistoryEntry {
                payment: p.id(),
                at: now,
                from: p.status(),
                to: p.status(),
                event: event.to_owned(),
                amount,
                actor: who.clone(),
            })
            .collect(),
        audit: vec![
            AuditEntry::new(now, c.practitioner, who.clone(), action)
                .subject(c.id.as_uuid())
                .detail(detail),
        ],
        messages,
        ..ChangeLog::default()
    };
    match consultations.update_day(&after.consultation, c, &log).await {
        Ok(()) => Ok(()),
        Err(RepositoryError::Conflict) => Err(BillingError::Conflict),
        Err(e) => Err(e.into()),
    }
}

impl PatientService {
    /// The patient's pass to the video room: only while the gate is open (the hold
    /// in place, or no payment needed) and within the consultation's window.
    pub async fn pass(&self, token: &str) -> Result<Pass, BillingError> {
        let (_, record) = self.find(token).await?;
        scheduled(&record.consultation)?;
        if !record.can_enter() {
            return Err(DayError::PaymentRequired.into());
        }
        if record
            .payment
            .as_ref()
            .is_some_and(|p| p.status() != PaymentStatus::Authorized)
        {
            // Validated (or refunded): the consultation took place.
            return Err(DayError::ConsultationOver.into());
        }
        issue_pass(
            self.passes.as_ref(),
            &self.config,
            &record.consultation,
            record.consultation.patient.display_name.to_string(),
            false,
            self.ledger.now(),
        )
    }

    /// The patient cancels from their link, until the start. Inside the free window
    /// (or when nothing would be charged) the hold is released at once; later, the
    /// cancellation is recorded and the practitioner decides: charge the fee the
    /// patient accepted, or release. Retrying finishes a release that failed.
    pub async fn cancel(&self, token: &str) -> Result<ConsultationRecord, BillingError> {
        // A second tap at the same moment lost the write: it reads the cancellation
        // and answers it.
        match self.cancel_once(token).await {
            Err(BillingError::Conflict) => self.cancel_once(token).await,
            other => other,
        }
    }

    async fn cancel_once(&self, token: &str) -> Result<ConsultationRecord, BillingError> {
        let (_, record) = self.find(token).await?;
        let c = &record.consultation;
        let now = self.ledger.now();
        match c.status {
            ConsultationStatus::Cancelled(Cancellation {
                by: CancelledBy::Patient,
                ..
            }) => return settle_cancellation(&self.payments, &self.consultations, record).await,
            _ => scheduled(c)?,
        }
        if now >= c.starts_at || c.started_at.is_some() {
            return Err(DayError::CancellationClosed.into());
        }
        unsettled(record.payment.as_ref())?;
        let fee = record.payment.as_ref().and_then(missed_fee);
        let late = !cancelling_is_free(&record, now);
        let next = Consultation {
            status: ConsultationStatus::Cancelled(Cancellation {
                by: CancelledBy::Patient,
                at: now,
                late,
            }),
            ..c.clone()
        };
        let (event, detail) = if late {
            (
                "cancelled_late",
                "by the patient, after the free window: the practitioner decides".to_owned(),
            )
        } else {
            ("cancelled", "by the patient, free".to_owned())
        };
        let practitioner = self.practitioners.get(c.practitioner).await?;
        let after = moved(&record, next);
        write_day(
            self.consultations.as_ref(),
            &record,
            &after,
            DayChange {
                event,
                amount: if late { fee } else { None },
                action: AuditAction::ConsultationCancelled,
                detail,
                messages: compose::cancelled(&after, &practitioner, self.ledger.ids.new_id(), now)
                    .into_iter()
                    .collect(),
            },
            &AuditActor::Patient,
            now,
        )
        .await?;
        settle_cancellation(&self.payments, &self.consultations, after).await
    }
}

/// Releases what a free cancellation leaves held; a late one waits for the
/// practitioner. Answers the consultation as it now is.
async fn settle_cancellation(
    payments: &PaymentService,
    consultations: &Arc<dyn ConsultationRepository>,
    record: ConsultationRecord,
) -> Result<ConsultationRecord, BillingError> {
    let ConsultationStatus::Cancelled(cancellation) = record.consultation.status else {
        return Ok(record);
    };
    let who = match cancellation.by {
        CancelledBy::Patient => AuditActor::Patient,
        CancelledBy::Practice => AuditActor::System,
    };
    settle_with(payments, consultations, record, &who, !cancellation.late).await
}

/// Releases the payment when `release` and it can be; answers the record re-read.
async fn settle_with(
    payments: &PaymentService,
    consultations: &Arc<dyn ConsultationRepository>,
    record: ConsultationRecord,
    who: &AuditActor,
    release: bool,
) -> Result<ConsultationRecord, BillingError> {
    if release && let Some(p) = record.payment.as_ref().filter(|p| releasable(p)) {
        let p = payments.ledger.get(p.id()).await?;
        if releasable(&p) {
            payments.release_payment(who, p).await?;
        }
    }
    Ok(consultations.get(record.consultation.id).await?)
}

/// A consultation rescheduled, and what becomes of its hold.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rescheduled {
    /// The consultation at its new time, with its payment.
    pub record: ConsultationRecord,
    /// What becomes of the hold.
    pub hold: HoldCoverage,
}

/// Whether the hold in place still covers a rescheduled consultation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HoldCoverage {
    /// No online payment, or nothing authorised yet.
    NotHeld,
    /// The hold lasts until after the new time's window: kept as it is.
    Covers,
    /// The hold lapses before the new time: it is renewed off-session with the saved
    /// card before its deadline (the hold timing of live Stripe).
    RenewedInTime,
    /// The hold lapses before the new time and there is no saved card to renew it
    /// with: the patient will be asked to authorise again.
    Lapses,
    /// Only the card is saved: the hold is placed in time before the new start.
    PlacedInTime,
}

impl HoldCoverage {
    /// The stable name (`covers`, `lapses`, …), for the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            HoldCoverage::NotHeld => "not_held",
            HoldCoverage::Covers => "covers",
            HoldCoverage::RenewedInTime => "renewed_in_time",
            HoldCoverage::Lapses => "lapses",
            HoldCoverage::PlacedInTime => "placed_in_time",
        }
    }
}

/// A consultation started, with the practitioner's pass when a platform is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Started {
    /// The consultation, now started.
    pub record: ConsultationRecord,
    /// The practitioner's (moderator's) pass, when a video platform is configured.
    pub pass: Option<Pass>,
}

/// The practice's side of the day: start, pass, cancel, reschedule, no-show.
#[derive(Clone)]
pub struct DayService {
    pub(crate) consultations: Arc<dyn ConsultationRepository>,
    pub(crate) practitioners: Arc<dyn PractitionerRepository>,
    pub(crate) payments: PaymentService,
    pub(crate) passes: Option<Arc<dyn PassSigner>>,
    pub(crate) config: BillingConfig,
}

impl std::fmt::Debug for DayService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DayService")
            .field("video", &self.passes.is_some())
            .finish_non_exhaustive()
    }
}

impl DayService {
    /// The practice's day: start, pass, cancel, reschedule, no-show. Ports:
    /// consultations, practitioners, the [`PaymentService`] (releases and the missed
    /// fee's capture) and, optionally, video passes.
    pub fn new(
        consultations: Arc<dyn ConsultationRepository>,
        practitioners: Arc<dyn PractitionerRepository>,
        payments: PaymentService,
        passes: Option<Arc<dyn PassSigner>>,
        config: BillingConfig,
    ) -> Self {
        DayService {
            consultations,
            practitioners,
            payments,
            passes,
            config,
        }
    }

    fn ledger(&self) -> &Ledger {
        &self.payments.ledger
    }

    async fn load(
        &self,
        actor: &Actor,
        action: Action,
        id: ConsultationId,
    ) -> Result<ConsultationRecord, BillingError> {
        let record = match self.consultations.get(id).await {
            Err(RepositoryError::NotFound) => return Err(BillingError::NotFound("consultation")),
            other => other?,
        };
        authorize(actor, action, record.consultation.practitioner)?;
        Ok(record)
    }

    /// The practitioner opens the consultation ("Démarrer la téléconsultation"):
    /// the patient's waiting room then offers to join. Within the pass window only;
    /// starting again changes nothing.
    pub async fn start(&self, actor: &Actor, id: ConsultationId) -> Result<Started, BillingError> {
        // A second "start" at the same moment lost the write: the day it reads again
        // is started, which it answers.
        match self.start_once(actor, id).await {
            Err(BillingError::Conflict) => self.start_once(actor, id).await,
            other => other,
        }
    }

    async fn start_once(&self, actor: &Actor, id: ConsultationId) -> Result<Started, BillingError> {
        let record = self.load(actor, Action::RunConsultation, id).await?;
        let c = &record.consultation;
        scheduled(c)?;
        over_once_validated(record.payment.as_ref())?;
        let now = self.ledger().now();
        let (opens_at, closes_at) = pass_window(c, &self.config);
        if now < opens_at {
            return Err(DayError::TooEarly { opens_at }.into());
        }
        if now >= closes_at {
            return Err(DayError::ConsultationOver.into());
        }
        let record = if c.started_at.is_none() {
            let after = moved(
                &record,
                Consultation {
                    started_at: Some(now),
                    ..c.clone()
                },
            );
            write_day(
                self.consultations.as_ref(),
                &record,
                &after,
                DayChange {
                    event: "consultation_started",
                    amount: None,
                    action: AuditAction::ConsultationStarted,
                    detail: String::new(),
                    messages: Vec::new(),
                },
                &AuditActor::of(actor),
                now,
            )
            .await?;
            after
        } else {
            record
        };
        let pass = match &self.passes {
            Some(_) => Some(self.moderator_pass(&record, now).await?),
            None => None,
        };
        Ok(Started { record, pass })
    }

    /// The practitioner's (moderator's) pass to the consultation's room, within its
    /// window.
    pub async fn pass(&self, actor: &Actor, id: ConsultationId) -> Result<Pass, BillingError> {
        let record = self.load(actor, Action::RunConsultation, id).await?;
        scheduled(&record.consultation)?;
        over_once_validated(record.payment.as_ref())?;
        self.moderator_pass(&record, self.ledger().now()).await
    }

    async fn moderator_pass(
        &self,
        record: &ConsultationRecord,
        now: DateTime<Utc>,
    ) -> Result<Pass, BillingError> {
        let practitioner = self
            .practitioners
            .get(record.consultation.practitioner)
            .await?;
        issue_pass(
            self.passes.as_ref(),
            &self.config,
            &record.consultation,
            practitioner.name.to_string(),
            true,
            now,
        )
    }

    /// The practice cancels (practitioner or secretary): the hold is released, no fee
    /// ever applies. Retrying finishes a release that failed.
    pub async fn cancel(
        &self,
        actor: &Actor,
        id: ConsultationId,
    ) -> Result<ConsultationRecord, BillingError> {
        match self.cancel_once(actor, id).await {
            Err(BillingError::Conflict) => self.cancel_once(actor, id).await,
            other => other,
        }
    }

    async fn cancel_once(
        &self,
        actor: &Actor,
        id: ConsultationId,
    ) -> Result<ConsultationRecord, BillingError> {
        let record = self.load(actor, Action::Schedule, id).await?;
        // Once its time has come (or it started), cancelling releases what may be a
        // consultation that took place or a no-show's fee: that is the practitioner's
        // call (releasing the hold), never a secretary's.
        let now = self.ledger().now();
        let c = &record.consultation;
        if c.started_at.is_some() || now >= c.starts_at {
            authorize(actor, Action::ReleaseHold, c.practitioner)?;
        }
        let who = AuditActor::of(actor);
        if let ConsultationStatus::Cancelled(Cancellation {
            by: CancelledBy::Practice,
            ..
        }) = c.status
        {
            return settle_with(&self.payments, &self.consultations, record, &who, true).await;
        }
        scheduled(c)?;
        unsettled(record.payment.as_ref())?;
        let next = Consultation {
            status: ConsultationStatus::Cancelled(Cancellation {
                by: CancelledBy::Practice,
                at: now,
                late: false,
            }),
            ..c.clone()
        };
        let practitioner = self.practitioners.get(c.practitioner).await?;
        let after = moved(&record, next);
        write_day(
            self.consultations.as_ref(),
            &record,
            &after,
            DayChange {
                event: "cancelled_by_practice",
                amount: None,
                action: AuditAction::ConsultationCancelled,
                detail: "by the practice".to_owned(),
                messages: compose::cancelled(
                    &after,
                    &practitioner,
                    self.ledger().ids.new_id(),
                    now,
                )
                .into_iter()
                .collect(),
            },
            &who,
            now,
        )
        .await?;
        settle_with(&self.payments, &self.consultations, after, &who, true).await
    }

    /// Moves the consultation to `starts_at` (practitioner or secretary), before it
    /// started. The hold is kept; if it lapses before the new time it is renewed in
    /// time with the saved card, as any hold of a consultation further ahead.
    pub async fn reschedule(
        &self,
        actor: &Actor,
        id: ConsultationId,
        starts_at: DateTime<Utc>,
    ) -> Result<Rescheduled, BillingError> {
        let record = self.load(actor, Action::Schedule, id).await?;
        let c = &record.consultation;
        scheduled(c)?;
        if c.started_at.is_some() {
            return Err(DayError::AlreadyStarted.into());
        }
        unsettled(record.payment.as_ref())?;
        let now = self.ledger().now();
        let starts_at = starts_at.trunc_subsecs(0);
        if starts_at <= now {
            return Err(BillingError::validation("starts_at", "is in the past"));
        }
        let next = Consultation {
            starts_at,
            rescheduled_at: Some(now),
            ..c.clone()
        };
        let practitioner = self.practitioners.get(c.practitioner).await?;
        let after = moved(&record, next);
        write_day(
            self.consultations.as_ref(),
            &record,
            &after,
            DayChange {
                event: "rescheduled",
                amount: None,
                action: AuditAction::Rescheduled,
                detail: format!("{} → {}", c.starts_at.to_rfc3339(), starts_at.to_rfc3339()),
                messages: compose::rescheduled(
                    &after,
                    &practitioner,
                    c.starts_at,
                    self.ledger().ids.new_id(),
                    now,
                )
                .into_iter()
                .collect(),
            },
            &AuditActor::of(actor),
            now,
        )
        .await?;
        let hold = self.coverage(after.payment.as_ref(), &after.consultation);
        Ok(Rescheduled {
            record: after,
            hold,
        })
    }

    fn coverage(&self, payment: Option<&Payment>, c: &Consultation) -> HoldCoverage {
        let Some(p) = payment else {
            return HoldCoverage::NotHeld;
        };
        match p.status() {
            PaymentStatus::Authorized => {
                let (_, closes_at) = pass_window(c, &self.config);
                if p.capture_before()
                    .is_none_or(|deadline| deadline >= closes_at)
                {
                    HoldCoverage::Covers
                } else if p.saved_card().is_some() {
                    HoldCoverage::RenewedInTime
                } else {
                    HoldCoverage::Lapses
                }
            }
            PaymentStatus::CardSaved => HoldCoverage::PlacedInTime,
            _ => HoldCoverage::NotHeld,
        }
    }

    /// The practitioner marks the patient absent, from the start on: the fee the
    /// patient accepted is captured (the rest released), or the hold released when
    /// there is none. The history, pages and receipt say "absence".
    pub async fn no_show(
        &self,
        actor: &Actor,
        id: ConsultationId,
    ) -> Result<ConsultationRecord, BillingError> {
        let record = self.load(actor, Action::ChargeMissedFee, id).await?;
        let c = &record.consultation;
        let who = AuditActor::of(actor);
        let record = match c.status {
            ConsultationStatus::NoShow { .. } => record,
            _ => {
                scheduled(c)?;
                unsettled(record.payment.as_ref())?;
                let now = self.ledger().now();
                if now < c.starts_at {
                    return Err(DayError::TooEarly {
                        opens_at: c.starts_at,
                    }
                    .into());
                }
                let fee = record.payment.as_ref().and_then(missed_fee);
                let after = moved(
                    &record,
                    Consultation {
                        status: ConsultationStatus::NoShow { at: now },
                        ..c.clone()
                    },
                );
                write_day(
                    self.consultations.as_ref(),
                    &record,
                    &after,
                    DayChange {
                        event: "no_show",
                        amount: fee,
                        action: AuditAction::NoShow,
                        detail: fee.map_or_else(|| "no fee".to_owned(), |f| format!("fee {f}")),
                        messages: Vec::new(),
                    },
                    &who,
                    now,
                )
                .await?;
                after
            }
        };
        self.settle_missed(record, &who).await
    }

    /// Charges the fee of a consultation the patient cancelled late (the
    /// practitioner's decision; releasing instead is the usual release).
    pub async fn charge_cancellation_fee(
        &self,
        actor: &Actor,
        id: ConsultationId,
    ) -> Result<ConsultationRecord, BillingError> {
        let record = self.load(actor, Action::ChargeMissedFee, id).await?;
        match record.consultation.status {
            ConsultationStatus::Cancelled(Cancellation { late: true, .. }) => {}
            _ => return Err(DayError::NoFeeApplies.into()),
        }
        if record.payment.as_ref().and_then(missed_fee).is_none() {
            unsettled(record.payment.as_ref())?;
            return Err(DayError::NoFeeApplies.into());
        }
        self.settle_missed(record, &AuditActor::of(actor)).await
    }

    /// Captures the missed consultation's fee, or releases what is held when none
    /// applies; a payment already settled is left as it is.
    async fn settle_missed(
        &self,
        record: ConsultationRecord,
        who: &AuditActor,
    ) -> Result<ConsultationRecord, BillingError> {
        if let Some(p) = &record.payment {
            let p = self.ledger().get(p.id()).await?;
            match missed_fee(&p) {
                Some(fee) => {
                    self.payments.capture_payment(who, p, fee).await?;
                }
                None if releasable(&p) => {
                    self.payments.release_payment(who, p).await?;
                }
                None => {}
            }
        }
        Ok(self.consultations.get(record.consultation.id).await?)
    }
}

#[cfg(test)]
mod tests;
