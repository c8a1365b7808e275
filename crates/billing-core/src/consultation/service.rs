//! Scheduling (C3) and the patient's side: the pay page, checkout and the
//! waiting-room gate (C4).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::access::{Action, Actor, authorize, authorize_patient};
use crate::audit::{AuditAction, AuditActor, AuditEntry};
use crate::config::BillingConfig;
use crate::consultation::model::{
    Consultation, ConsultationRecord, ConsultationStatus, PatientRef, PayAccess, PaymentMode,
};
use crate::consultation::policy::{AcceptedTerms, CancellationPolicy};
use crate::consultation::ports::ConsultationRepository;
use crate::contact::{DisplayName, EmailAddress};
use crate::error::BillingError;
use crate::gateway::{CheckoutMode, CheckoutRequest, CheckoutStart, HoldRequest};
use crate::ids::{ConnectedAccountId, ConsultationId, PaymentId, PractitionerId, ServiceId};
use crate::money::AmountInput;
use crate::outbox::compose;
use crate::payment::ledger::Ledger;
use crate::payment::model::{
    CheckoutRef, DEFAULT_HOLD_VALIDITY_DAYS, EventKind, IdempotencyKey, IllegalTransition, Lang,
    Payment, PaymentEvent, PaymentStatus, TransitionError,
};
use crate::payment::ports::{
    ChangeLog, HistoryEntry, IdempotencyRecord, IdempotencyStore, Reservation,
};
use crate::payment::service::{PaymentService, fingerprint, idempotency_scope};
use crate::practitioner::model::{Practitioner, Service, TimeZone};
use crate::practitioner::ports::{PractitionerRepository, ServiceRepository};
use crate::practitioner::service::RETRIES;
use crate::receipt::Document;
use crate::repository::RepositoryError;
use crate::secrets::PayToken;
use crate::system::{Clock, IdGenerator, PayLinkSigner, now_micros};
use crate::video::PassSigner;

/// How the consultation is paid, as chosen when scheduling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentChoice {
    /// No online payment: the patient enters directly.
    None,
    /// The cap is `amount` if given, else the service's price, else the default.
    Online {
        /// An explicit cap, as typed.
        amount: Option<AmountInput>,
        /// A service of the practitioner's catalogue, whose price is the cap.
        service: Option<ServiceId>,
    },
}

/// A consultation to schedule, as typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleRequest {
    /// Who the consultation is with.
    pub practitioner: PractitionerId,
    /// The patient's name, as typed.
    pub patient_name: String,
    /// The patient's e-mail, as typed: the pay link is sent there.
    pub patient_email: Option<String>,
    /// When it starts.
    pub starts_at: DateTime<Utc>,
    /// How it is paid.
    pub payment: PaymentChoice,
    /// The patient's language (their e-mails and documents).
    pub patient_lang: Lang,
}

impl ScheduleRequest {
    fn canonical(&self) -> String {
        let payment = match &self.payment {
            PaymentChoice::None => "none".to_owned(),
            PaymentChoice::Online { amount, service } => format!(
                "online|{}|{}",
                amount.map(|a| a.canonical()).unwrap_or_default(),
                service.map(|s| s.to_string()).unwrap_or_default()
            ),
        };
        format!(
            "{}|{}|{}|{}|{}{}",
            self.practitioner,
            self.patient_name.trim(),
            self.patient_email.as_deref().unwrap_or("").trim(),
            self.starts_at.timestamp_micros(),
            payment,
            match self.patient_lang {
                Lang::Fr => "",
                Lang::En => "|en",
            }
        )
    }
}

/// A scheduled consultation with its pay link, shown once.
#[derive(Debug)]
#[non_exhaustive]
pub struct Scheduled {
    /// The consultation as stored, with its payment.
    pub record: ConsultationRecord,
    /// The pay link's token, to show once (only its hash is stored).
    pub pay_token: PayToken,
    /// The patient's pay link.
    pub pay_url: String,
}

/// Scheduling teleconsultations, with or without online payment.
#[derive(Clone)]
pub struct SchedulingService {
    pub(crate) practitioners: Arc<dyn PractitionerRepository>,
    pub(crate) services: Arc<dyn ServiceRepository>,
    pub(crate) consultations: Arc<dyn ConsultationRepository>,
    pub(crate) idempotency: Arc<dyn IdempotencyStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdGenerator>,
    pub(crate) links: Arc<dyn PayLinkSigner>,
    pub(crate) config: BillingConfig,
}

impl std::fmt::Debug for SchedulingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulingService").finish_non_exhaustive()
    }
}

/// How far in the past a consultation may still be scheduled (entered late).
const SCHEDULE_PAST_GRACE_HOURS: i64 = 24;

impl SchedulingService {
    /// Scheduling consultations (C3), from the ports it uses: the practitioners, their
    /// services, the consultations, the API's idempotency keys, the clock, the id
    /// source and the pay-link signer.
    // One argument per port the use case calls: grouping them would only hide which.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        practitioners: Arc<dyn PractitionerRepository>,
        services: Arc<dyn ServiceRepository>,
        consultations: Arc<dyn ConsultationRepository>,
        idempotency: Arc<dyn IdempotencyStore>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        links: Arc<dyn PayLinkSigner>,
        config: BillingConfig,
    ) -> Self {
        SchedulingService {
            practitioners,
            services,
            consultations,
            idempotency,
            clock,
            ids,
            links,
            config,
        }
    }

    /// Schedules a consultation (practitioner or their secretary). Online payment needs
    /// a linked account that can take charges; the cap follows the preferences' rule.
    /// With a client idempotency key, a retried request returns the same consultation
    /// (with a fresh pay link: the first one was shown once and is not stored).
    pub async fn schedule(
        &self,
        actor: &Actor,
        request: &ScheduleRequest,
        idempotency_key: Option<&str>,
    ) -> Result<Scheduled, BillingError> {
        authorize(actor, Action::Schedule, request.practitioner)?;
        let now = now_micros(self.clock.as_ref());
        let scope = idempotency_scope(actor);
        if let Some(key) = idempotency_key {
            let record = IdempotencyRecord {
                scope: scope.clone(),
                key: format!("schedule:{key}"),
                fingerprint: fingerprint(&request.canonical()),
                resource: None,
                created_at: now,
            };
            if let Reservation::Existing(existing) = self.idempotency.reserve(&record).await? {
                if existing.fingerprint != record.fingerprint {
                    return Err(BillingError::IdempotencyKeyReused);
                }
                let Some(id) = existing.resource else {
                    return Err(BillingError::IdempotencyKeyInFlight);
                };
                return self.replay(ConsultationId::from_uuid(id)).await;
            }
        }
        let result = self.schedule_now(actor, request, now).await;
        if let Some(key) = idempotency_key {
            let key = format!("schedule:{key}");
            // The consultation's own outcome wins over a failure to record it: a key
            // left reserved answers "in flight" to retries, which never schedules twice.
            let _ = match &result {
                Ok(s) => {
                    self.idempotency
                        .complete(&scope, &key, s.record.consultation.id.as_uuid())
                        .await
                }
                Err(_) => self.idempotency.release(&scope, &key).await,
            };
        }
        result
    }

    async fn schedule_now(
        &self,
        actor: &Actor,
        request: &ScheduleRequest,
        now: DateTime<Utc>,
    ) -> Result<Scheduled, BillingError> {
        let practitioner = match self.practitioners.get(request.practitioner).await {
            Err(RepositoryError::NotFound) => return Err(BillingError::NotFound("practitioner")),
            other => other?,
        };
        let patient = PatientRef {
            display_name: DisplayName::parse(&request.patient_name)?,
            email: request
                .patient_email
                .as_deref()
                .filter(|e| !e.trim().is_empty())
                .map(EmailAddress::parse)
                .transpose()?,
        };
        if request.starts_at < now - Duration::hours(SCHEDULE_PAST_GRACE_HOURS) {
            return Err(BillingError::validation("starts_at", "is in the past"));
        }
        let id = ConsultationId::from_uuid(self.ids.new_id());
        let (payment, service) = match &request.payment {
            PaymentChoice::None => (None, None),
            PaymentChoice::Online { amount, service } => {
                let (payment, service) = self
                    .new_payment(&practitioner, id, amount.as_ref(), *service, now)
                    .await?;
                (Some(payment), service.map(|s| s.name().clone()))
            }
        };
        let token = self.links.pay_token(id, 0);
        let consultation = Consultation {
            id,
            practitioner: practitioner.id,
            patient,
            starts_at: request.starts_at,
            payment_mode: if payment.is_some() {
                PaymentMode::Online
            } else {
                PaymentMode::None
            },
            service,
            lang: request.patient_lang,
            pay_token_hash: token.hash(),
            pay_link_generation: 0,
            created_by: match actor {
                Actor::Staff(u) => Some(u.id),
                _ => None,
            },
            created_at: now,
            status: ConsultationStatus::Scheduled,
            started_at: None,
            rescheduled_at: None,
        };
        let audit = AuditEntry::new(
            now,
            practitioner.id,
            AuditActor::of(actor),
            AuditAction::Scheduled,
        )
        .subject(id.as_uuid())
        .detail(match &payment {
            Some(p) => format!("online, hold {}", p.amount()),
            None => "without online payment".to_owned(),
        });
        let record = ConsultationRecord {
            consultation,
            payment,
        };
        let messages: Vec<_> = compose::pay_link(
            &record,
            &practitioner,
            self.ids.new_id(),
            &format!("pay_link:{id}:0"),
            now,
        )
        .into_iter()
        .collect();
        self.consultations
            .create(&record, &audit, &messages)
            .await?;
        let pay_url = self.config.pay_url(&token);
        Ok(Scheduled {
            record,
            pay_token: token,
            pay_url,
        })
    }

    async fn new_payment(
        &self,
        practitioner: &Practitioner,
        consultation: ConsultationId,
        amount: Option<&AmountInput>,
        service: Option<ServiceId>,
        now: DateTime<Utc>,
    ) -> Result<(Payment, Option<Service>), BillingError> {
        practitioner
            .link
            .chargeable_account()
            .map_err(BillingError::StripeNotLinked)?;
        let prefs = &practitioner.preferences;
        let service = match service {
            Some(id) => match self.services.get(id).await {
                Ok(s) if s.practitioner() == practitioner.id => Some(s),
                Ok(_) | Err(RepositoryError::NotFound) => {
                    return Err(BillingError::NotFound("service"));
                }
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let explicit = amount
            .map(|a| a.in_currency(prefs.currency()))
            .transpose()?;
        let cap = prefs.pick_cap(explicit, service.as_ref())?;
        let payment = Payment::new(
            PaymentId::from_uuid(self.ids.new_id()),
            consultation,
            practitioner.id,
            cap,
            prefs.fee_schedule().clone(),
            now,
        )?;
        Ok((payment, service))
    }

    /// What a replayed scheduling request answers: the consultation and its live link,
    /// changing nothing. Only a link made before links were derived (its hash is of a
    /// random token) must be reissued to be shown.
    async fn replay(&self, id: ConsultationId) -> Result<Scheduled, BillingError> {
        let mut record = self.consultations.get(id).await?;
        let token = match live_token(self.links.as_ref(), &record.consultation) {
            Some(token) => token,
            None => {
                reissue(
                    self.consultations.as_ref(),
                    self.links.as_ref(),
                    &mut record.consultation,
                )
                .await?
            }
        };
        let pay_url = self.config.pay_url(&token);
        Ok(Scheduled {
            record,
            pay_token: token,
            pay_url,
        })
    }

    async fn reissue_link(&self, id: ConsultationId) -> Result<Scheduled, BillingError> {
        let mut record = self.consultations.get(id).await?;
        let token = reissue(
            self.consultations.as_ref(),
            self.links.as_ref(),
            &mut record.consultation,
        )
        .await?;
        let pay_url = self.config.pay_url(&token);
        Ok(Scheduled {
            record,
            pay_token: token,
            pay_url,
        })
    }

    /// A new pay link for a consultation (the old one stops working): for staff who
    /// lost the link, which is never stored in clear.
    pub async fn new_pay_link(
        &self,
        actor: &Actor,
        id: ConsultationId,
    ) -> Result<Scheduled, BillingError> {
        let record = self.get(actor, id).await?;
        authorize(actor, Action::Schedule, record.consultation.practitioner)?;
        self.reissue_link(id).await
    }

    /// The consultation's live pay link, shown again to its staff (it is derived, never
    /// stored). `None` for a link made before links were derived: reissue it.
    pub async fn pay_link(
        &self,
        actor: &Actor,
        id: ConsultationId,
    ) -> Result<Option<String>, BillingError> {
        let record = self.get(actor, id).await?;
        Ok(live_token(self.links.as_ref(), &record.consultation).map(|t| self.config.pay_url(&t)))
    }

    /// A consultation with its payment (staff of that practitioner).
    pub async fn get(
        &self,
        actor: &Actor,
        id: ConsultationId,
    ) -> Result<ConsultationRecord, BillingError> {
        let record = match self.consultations.get(id).await {
            Err(RepositoryError::NotFound) => return Err(BillingError::NotFound("consultation")),
            other => other?,
        };
        authorize(
            actor,
            Action::ViewConsultation,
            record.consultation.practitioner,
        )?;
        Ok(record)
    }

    /// The actor's consultations from now on, soonest first.
    pub async fn upcoming(
        &self,
        actor: &Actor,
        limit: u32,
    ) -> Result<Vec<ConsultationRecord>, BillingError> {
        let practitioners = match actor {
            Actor::Staff(u) => u.role.practitioners(),
            _ => return Err(crate::access::AccessDenied::Unauthenticated.into()),
        };
        let since = now_micros(self.clock.as_ref()) - Duration::hours(2);
        Ok(self
            .consultations
            .upcoming(&practitioners, since, limit.clamp(1, 200))
            .await?)
    }
}

/// What the patient's pay page shows.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PayPage {
    /// The consultation and its payment.
    pub record: ConsultationRecord,
    /// Who the patient sees.
    pub practitioner_name: DisplayName,
    /// The practitioner's time zone, which the page shows times in.
    pub time_zone: TimeZone,
    /// The waiting-room gate.
    pub can_enter: bool,
    /// The patient may (again) authorise: nothing is held or saved yet, or a lapsed
    /// hold while the consultation is still ahead.
    pub can_pay: bool,
    /// When the hold will be taken, if not at once: the consultation is further ahead
    /// than a hold lasts, so paying saves the card and the hold is placed then (C14).
    pub hold_from: Option<DateTime<Utc>>,
    /// The waiting room is offered: the gate is open and the consultation is not over
    /// (not validated or released, and less than `open_after_start` after its start).
    pub waiting_room: bool,
    /// How long a hold lasts before it lapses.
    pub hold_validity: Duration,
    /// The payment's receipt and credit notes, once captured.
    pub documents: Vec<Document>,
    /// The practice's cancellation policy now: what the patient accepts by paying
    /// (once paid, the payment's [`terms`](Payment::terms) are what they accepted).
    pub policy: CancellationPolicy,
    /// The patient may still cancel from the link (scheduled, not started, before
    /// the start, not validated).
    pub can_cancel: bool,
    /// Cancelling now costs nothing (inside the free window, or no fee agreed).
    pub cancel_is_free: bool,
}

/// `c`'s live pay token, if it can be derived: the one its stored hash is of (not a
/// link made before links were derived, nor under another server key).
pub(crate) fn live_token(links: &dyn PayLinkSigner, c: &Consultation) -> Option<PayToken> {
    let token = links.pay_token(c.id, c.pay_link_generation);
    (token.hash() == c.pay_token_hash).then_some(token)
}

/// Moves `c`'s pay link to its next generation (the previous link stops working) and
/// returns the new token.
pub(crate) async fn reissue(
    consultations: &dyn ConsultationRepository,
    links: &dyn PayLinkSigner,
    c: &mut Consultation,
) -> Result<PayToken, BillingError> {
    let generation = c.pay_link_generation.saturating_add(1);
    let token = links.pay_token(c.id, generation);
    consultations
        .replace_pay_token(c.id, &token.hash(), generation)
        .await?;
    c.pay_token_hash = token.hash();
    c.pay_link_generation = generation;
    Ok(token)
}

/// What the access check answers (the waiting room polls it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Access {
    /// The gate (C4): no payment needed, or the hold is in place, or the act captured.
    pub can_enter: bool,
    /// The waiting room is still offered (see [`PayPage::waiting_room`]).
    pub waiting_room: bool,
    /// The practitioner has started the consultation: the patient may join.
    pub started: bool,
    /// A video platform is set up (a pass opens its room); otherwise the
    /// practitioner calls the patient.
    pub video: bool,
    /// Where the consultation stands.
    pub status: ConsultationStatus,
    /// When it starts.
    pub starts_at: DateTime<Utc>,
}

/// The patient's side: pay page, checkout, waiting-room gate. The pay token in the
/// path is the only credential; an unknown or malformed token is not found.
#[derive(Clone)]
pub struct PatientService {
    pub(crate) consultations: Arc<dyn ConsultationRepository>,
    pub(crate) practitioners: Arc<dyn PractitionerRepository>,
    pub(crate) ledger: Ledger,
    /// Releases the hold of a cancellation.
    pub(crate) payments: PaymentService,
    /// Signs passes to the video room, when a platform is set up.
    pub(crate) passes: Option<Arc<dyn PassSigner>>,
    pub(crate) config: BillingConfig,
}

impl std::fmt::Debug for PatientService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatientService").finish_non_exhaustive()
    }
}

/// A pay link's token, or `NotFound` for what is not one.
fn parse_pay_token(token: &str) -> Result<PayToken, BillingError> {
    PayToken::parse(token).map_err(|_| BillingError::NotFound("pay link"))
}

/// What a pay token opened, an unknown one being the pay link `NotFound`.
fn opened_by<T>(found: Result<T, RepositoryError>) -> Result<T, BillingError> {
    match found {
        Err(RepositoryError::NotFound) => Err(BillingError::NotFound("pay link")),
        other => Ok(other?),
    }
}

/// The patient a pay token speaks for may act on its consultation.
fn patient_of(consultation: ConsultationId) -> Result<(), BillingError> {
    Ok(authorize_patient(
        &Actor::Patient { consultation },
        consultation,
    )?)
}

impl PatientService {
    /// The patient's side: the pay page, the gate, checkout, cancelling, the pass.
    /// Ports: consultations, practitioners, the [`Ledger`]'s, the
    /// [`PaymentService`] (a release on cancellation) and, optionally, video passes.
    pub fn new(
        consultations: Arc<dyn ConsultationRepository>,
        practitioners: Arc<dyn PractitionerRepository>,
        ledger: Ledger,
        payments: PaymentService,
        passes: Option<Arc<dyn PassSigner>>,
        config: BillingConfig,
    ) -> Self {
        PatientService {
            consultations,
            practitioners,
            ledger,
            payments,
            passes,
            config,
        }
    }

    pub(crate) async fn find(
        &self,
        token: &str,
    ) -> Result<(PayToken, ConsultationRecord), BillingError> {
        let token = parse_pay_token(token)?;
        let record = opened_by(self.consultations.find_by_pay_token(&token.hash()).await)?;
        patient_of(record.consultation.id)?;
        Ok((token, record))
    }

    /// The pay page. With `refresh`, a payment waiting on the patient is first re-read
    /// from the gateway, so coming back from checkout shows the hold at once even if
    /// the webhook is late.
    pub async fn open(&self, token: &str, refresh: bool) -> Result<PayPage, BillingError> {
        let (_, mut record) = self.find(token).await?;
        if refresh
            && let Some(p) = &record.payment
            && matches!(
                p.status(),
                PaymentStatus::Incomplete | PaymentStatus::Failed
            )
            && let Ok(Some(written)) = self.ledger.refresh(p, &AuditActor::Patient).await
        {
            record.payment = Some(written.payment);
        }
        let practitioner = self
            .practitioners
            .get(record.consultation.practitioner)
            .await?;
        let now = self.ledger.now();
        let can_enter = record.can_enter();
        let can_pay = self.payable(&record, now);
        let hold_from = match record.payment.as_ref().map(Payment::status) {
            Some(
                PaymentStatus::Incomplete
                | PaymentStatus::Failed
                | PaymentStatus::Expired
                | PaymentStatus::CardSaved,
            ) => self.hold_time(&record, now),
            _ => None,
        };
        let documents = match &record.payment {
            Some(p) if p.captured().is_some() => self.ledger.payments.documents(p.id()).await?,
            _ => Vec::new(),
        };
        let waiting_room = self.waiting_room(&PayAccess::of(&record), can_enter, now);
        let c = &record.consultation;
        let can_cancel = c.status == ConsultationStatus::Scheduled
            && c.started_at.is_none()
            && now < c.starts_at
            && record
                .payment
                .as_ref()
                .is_none_or(|p| p.captured().is_none());
        Ok(PayPage {
            cancel_is_free: crate::consultation::day::cancelling_is_free(&record, now),
            policy: *practitioner.preferences.cancellation(),
            can_cancel,
            record,
            practitioner_name: practitioner.name,
            time_zone: practitioner.time_zone,
            can_enter,
            can_pay,
            hold_from,
            waiting_room,
            hold_validity: Duration::days(DEFAULT_HOLD_VALIDITY_DAYS),
            documents,
        })
    }

    /// The receipt and credit notes of the payment behind a pay link.
    pub async fn documents(&self, token: &str) -> Result<Vec<Document>, BillingError> {
        let (_, record) = self.find(token).await?;
        match &record.payment {
            Some(p) if p.captured().is_some() => Ok(self.ledger.payments.documents(p.id()).await?),
            _ => Ok(Vec::new()),
        }
    }

    /// May the patient (again) authorise now?
    fn payable(&self, record: &ConsultationRecord, now: DateTime<Utc>) -> bool {
        record.consultation.status == ConsultationStatus::Scheduled
            && record.payment.as_ref().is_some_and(|p| match p.status() {
                PaymentStatus::Incomplete | PaymentStatus::Failed => true,
                PaymentStatus::Expired => record.is_ahead(now, self.config.open_after_start),
                _ => false,
            })
    }

    /// When the hold of `record` is taken, if later than now: `hold_lead` before the
    /// consultation.
    fn hold_time(&self, record: &ConsultationRecord, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = record.consultation.starts_at - self.config.hold_lead;
        (at > now).then_some(at)
    }

    /// The gate (C4), whether the waiting room is still offered, and whether the
    /// practitioner has started.
    pub async fn access(&self, token: &str) -> Result<Access, BillingError> {
        let token = parse_pay_token(token)?;
        let gate = opened_by(self.consultations.pay_access(&token.hash()).await)?;
        patient_of(gate.consultation)?;
        let can_enter = gate.can_enter();
        Ok(Access {
            can_enter,
            waiting_room: self.waiting_room(&gate, can_enter, self.ledger.now()),
            started: gate.started_at.is_some(),
            video: self.video_offered(),
            status: gate.status,
            starts_at: gate.starts_at,
        })
    }

    /// A video platform is set up: passes are signed and the room has a URL.
    pub fn video_offered(&self) -> bool {
        self.passes.is_some() && self.config.video_url.is_some()
    }

    /// The waiting room is offered while the gate is open and the consultation is not
    /// over: no payment or a hold still in place (not captured, released…), and less
    /// than `open_after_start` after its start.
    fn waiting_room(&self, gate: &PayAccess, can_enter: bool, now: DateTime<Utc>) -> bool {
        can_enter
            && gate.is_ahead(now, self.config.open_after_start)
            && gate
                .payment
                .is_none_or(|p| p.status == PaymentStatus::Authorized)
    }

    /// Starts (or resumes) the authorisation: where to send the patient. A
    /// consultation further ahead than a hold lasts saves the card (the hold is placed
    /// off-session in time); otherwise the amount is held now, and the card saved so
    /// the hold can be renewed. A lapsed hold is paid again while the consultation is
    /// ahead. The hosted page speaks the patient's language.
    pub async fn start_checkout(
        &self,
        token: &str,
        lang: Lang,
    ) -> Result<CheckoutStart, BillingError> {
        let (token, record) = self.find(token).await?;
        let Some(payment) = record.payment.clone() else {
            return Err(BillingError::Validation {
                field: "consultation",
                message: "this consultation needs no payment".into(),
            });
        };
        for _ in 0..RETRIES {
            let mut payment = self.ledger.get(payment.id()).await?;
            let now = self.ledger.now();
            let fresh = ConsultationRecord {
                consultation: record.consultation.clone(),
                payment: Some(payment.clone()),
            };
            if !self.payable(&fresh, now) {
                return Err(BillingError::PaymentState(TransitionError::Illegal(
                    IllegalTransition {
                        from: payment.status(),
                        event: EventKind::HoldPlaced,
                    },
                )));
            }
            if payment.status() == PaymentStatus::Expired {
                // The lapsed hold is gone; a new attempt starts from nothing.
                payment = self
                    .ledger
                    .apply_command(payment.id(), &PaymentEvent::Reopened, &AuditActor::Patient)
                    .await?
                    .payment;
            }
            if let Some(open) = payment.checkout().filter(|c| {
                c.url.is_some() && c.expires_at.is_none_or(|e| e > now + Duration::minutes(5))
            }) {
                return Ok(CheckoutStart {
                    intent: payment.intent().cloned(),
                    session: open.session.clone(),
                    setup: None,
                    redirect_url: open.url.clone(),
                    client_secret: None,
                    expires_at: open.expires_at,
                    mode: self.mode(&fresh, now),
                });
            }
            let practitioner = self.practitioners.get(payment.practitioner()).await?;
            // Only the account linked now may take the hold: an intent left by an
            // earlier attempt on an account the practitioner has since unlinked or
            // replaced is not reused.
            let account = practitioner
                .link
                .chargeable_account()
                .map_err(BillingError::StripeNotLinked)?
                .clone();
            let existing_intent = payment
                .intent()
                .filter(|_| payment.account() == Some(&account))
                .cloned();
            let request = CheckoutRequest {
                hold: hold_request(
                    &practitioner,
                    &record.consultation,
                    &payment,
                    account.clone(),
                    lang,
                    IdempotencyKey::checkout(payment.id(), payment.version()),
                ),
                success_url: self.config.checkout_return_url(&token, "success"),
                cancel_url: self.config.checkout_return_url(&token, "cancel"),
                existing_intent,
                customer_email: record
                    .consultation
                    .patient
                    .email
                    .as_ref()
                    .map(|e| e.as_str().to_owned()),
                mode: self.mode(&fresh, now),
                locale: lang,
            };
            let start = self.ledger.gateway.start_checkout(&request).await?;
            let checkout =
                (start.session.is_some() || start.redirect_url.is_some() || start.setup.is_some())
                    .then(|| CheckoutRef {
                        session: start.session.clone(),
                        url: start.redirect_url.clone(),
                        expires_at: start.expires_at,
                        setup: start.setup.clone(),
                    });
            // What the patient accepts by paying: the policy as the page showed it.
            let terms = AcceptedTerms::of(
                practitioner.preferences.cancellation(),
                payment.authorized().unwrap_or(payment.amount()),
                lang,
                now,
            );
            let unchanged = payment.account() == Some(&account)
                && (start.intent.is_none() || payment.intent() == start.intent.as_ref())
                && checkout.is_none()
                && payment.terms().is_some_and(|t| t.text == terms.text);
            if unchanged {
                return Ok(start);
            }
            let next = payment
                .checkout_started(account, start.intent.clone(), checkout, now)?
                .with_terms(terms, now);
            let log = ChangeLog {
                history: vec![HistoryEntry {
                    payment: payment.id(),
                    at: now,
                    from: payment.status(),
                    to: payment.status(),
                    event: "checkout_started".into(),
                    amount: Some(payment.amount()),
                    actor: AuditActor::Patient,
                }],
                audit: vec![
                    AuditEntry::new(
                        now,
                        payment.practitioner(),
                        AuditActor::Patient,
                        AuditAction::CheckoutStarted,
                    )
                    .subject(payment.id().as_uuid()),
                ],
                documents: Vec::new(),
                messages: Vec::new(),
            };
            match self
                .ledger
                .payments
                .update(&next, payment.version(), &log)
                .await
            {
                Ok(()) => return Ok(start),
                Err(RepositoryError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(BillingError::Conflict)
    }

    /// Hold now, or only save the card when the consultation is further ahead than a
    /// hold lasts.
    fn mode(&self, record: &ConsultationRecord, now: DateTime<Utc>) -> CheckoutMode {
        match self.hold_time(record, now) {
            Some(_) => CheckoutMode::SaveCard,
            None => CheckoutMode::Hold,
        }
    }
}

/// The hold of `payment` on `account`, described only as the practitioner chose: their
/// label (default "Téléconsultation" / "Teleconsultation" in the patient's language)
/// and the date, with their statement descriptor suffix.
pub(crate) fn hold_request(
    practitioner: &Practitioner,
    consultation: &Consultation,
    payment: &Payment,
    account: ConnectedAccountId,
    lang: Lang,
    key: IdempotencyKey,
) -> HoldRequest {
    let statement = practitioner.preferences.statement();
    let label = statement.label.as_ref().map_or(
        match lang {
            Lang::Fr => "Téléconsultation",
            Lang::En => "Teleconsultation",
        },
        |l| l.as_str(),
    );
    let day = consultation
        .starts_at
        .with_timezone(&practitioner.time_zone.tz())
        .date_naive();
    let date = match lang {
        Lang::Fr => day.format("%d/%m/%Y"),
        Lang::En => day.format("%Y-%m-%d"),
    };
    HoldRequest {
        account,
        payment: payment.id(),
        consultation: consultation.id,
        amount: payment.authorized().unwrap_or(payment.amount()),
        description: format!("{label} {date}"),
        statement_descriptor_suffix: statement
            .descriptor_suffix
            .as_ref()
            .map(|s| s.as_str().to_owned()),
        off_session: None,
        key,
    }
}

#[cfg(test)]
mod tests;
