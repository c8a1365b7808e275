//! Scheduling (C3) and the patient's side: the pay page, checkout and the
//! waiting-room gate (C4).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::access::{Action, Actor, authorize, authorize_patient};
use crate::audit::{AuditAction, AuditActor, AuditEntry};
use crate::config::BillingConfig;
use crate::consultation::model::{Consultation, ConsultationRecord, PatientRef, PaymentMode};
use crate::consultation::ports::ConsultationRepository;
use crate::contact::{DisplayName, EmailAddress};
use crate::error::BillingError;
use crate::gateway::{CheckoutRequest, CheckoutStart, HoldRequest};
use crate::ids::{ConsultationId, PaymentId, PractitionerId, ServiceId};
use crate::money::AmountInput;
use crate::payment::ledger::Ledger;
use crate::payment::model::{CheckoutRef, IdempotencyKey, Payment, PaymentStatus};
use crate::payment::ports::{
    ChangeLog, HistoryEntry, IdempotencyRecord, IdempotencyStore, Reservation,
};
use crate::payment::service::{fingerprint, idempotency_scope};
use crate::practitioner::model::{Practitioner, TimeZone};
use crate::practitioner::ports::{PractitionerRepository, ServiceRepository};
use crate::practitioner::service::RETRIES;
use crate::repository::RepositoryError;
use crate::secrets::PayToken;
use crate::system::{Clock, IdGenerator, SecretGenerator, now_micros};

/// How the consultation is paid, as chosen when scheduling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentChoice {
    None,
    /// The cap is `amount` if given, else the service's price, else the default.
    Online {
        amount: Option<AmountInput>,
        service: Option<ServiceId>,
    },
}

/// A consultation to schedule, as typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleRequest {
    pub practitioner: PractitionerId,
    pub patient_name: String,
    pub patient_email: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub payment: PaymentChoice,
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
            "{}|{}|{}|{}|{}",
            self.practitioner,
            self.patient_name.trim(),
            self.patient_email.as_deref().unwrap_or("").trim(),
            self.starts_at.timestamp_micros(),
            payment
        )
    }
}

/// A scheduled consultation with its pay link, shown once.
#[derive(Debug)]
pub struct Scheduled {
    pub record: ConsultationRecord,
    pub pay_token: PayToken,
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
    pub(crate) secrets: Arc<dyn SecretGenerator>,
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
                return self.reissue_link(ConsultationId::from_uuid(id)).await;
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
        let payment = match &request.payment {
            PaymentChoice::None => None,
            PaymentChoice::Online { amount, service } => Some(
                self.new_payment(&practitioner, id, amount.as_ref(), *service, now)
                    .await?,
            ),
        };
        let token = PayToken::from_random(&self.secrets.secret());
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
            pay_token_hash: token.hash(),
            created_by: match actor {
                Actor::Staff(u) => Some(u.id),
                _ => None,
            },
            created_at: now,
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
        self.consultations.create(&record, &audit).await?;
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
    ) -> Result<Payment, BillingError> {
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
        Ok(Payment::new(
            PaymentId::from_uuid(self.ids.new_id()),
            consultation,
            practitioner.id,
            cap,
            prefs.fee_schedule().clone(),
            now,
        )?)
    }

    async fn reissue_link(&self, id: ConsultationId) -> Result<Scheduled, BillingError> {
        let record = self.consultations.get(id).await?;
        let token = PayToken::from_random(&self.secrets.secret());
        self.consultations
            .replace_pay_token(id, &token.hash())
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
pub struct PayPage {
    pub record: ConsultationRecord,
    pub practitioner_name: DisplayName,
    pub time_zone: TimeZone,
    /// The waiting-room gate.
    pub can_enter: bool,
}

/// The patient's side: pay page, checkout, waiting-room gate. The pay token in the
/// path is the only credential; an unknown or malformed token is not found.
#[derive(Clone)]
pub struct PatientService {
    pub(crate) consultations: Arc<dyn ConsultationRepository>,
    pub(crate) practitioners: Arc<dyn PractitionerRepository>,
    pub(crate) ledger: Ledger,
    pub(crate) config: BillingConfig,
}

impl std::fmt::Debug for PatientService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatientService").finish_non_exhaustive()
    }
}

impl PatientService {
    async fn find(&self, token: &str) -> Result<(PayToken, ConsultationRecord), BillingError> {
        let token = PayToken::parse(token).map_err(|_| BillingError::NotFound("pay link"))?;
        let record = match self.consultations.find_by_pay_token(&token.hash()).await {
            Err(RepositoryError::NotFound) => return Err(BillingError::NotFound("pay link")),
            other => other?,
        };
        authorize_patient(
            &Actor::Patient {
                consultation: record.consultation.id,
            },
            record.consultation.id,
        )?;
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
        let can_enter = record.can_enter();
        Ok(PayPage {
            record,
            practitioner_name: practitioner.name,
            time_zone: practitioner.time_zone,
            can_enter,
        })
    }

    /// The waiting-room gate (C4): may this patient enter now?
    pub async fn access(&self, token: &str) -> Result<bool, BillingError> {
        Ok(self.find(token).await?.1.can_enter())
    }

    /// Starts (or resumes) the authorisation: where to send the patient.
    pub async fn start_checkout(&self, token: &str) -> Result<CheckoutStart, BillingError> {
        let (token, record) = self.find(token).await?;
        let Some(payment) = record.payment else {
            return Err(BillingError::Validation {
                field: "consultation",
                message: "this consultation needs no payment".into(),
            });
        };
        for _ in 0..RETRIES {
            let payment = self.ledger.get(payment.id()).await?;
            if !matches!(
                payment.status(),
                PaymentStatus::Incomplete | PaymentStatus::Failed
            ) {
                return Err(BillingError::PaymentState(
                    crate::payment::model::TransitionError::Illegal(
                        crate::payment::model::IllegalTransition {
                            from: payment.status(),
                            event: crate::payment::model::EventKind::HoldPlaced,
                        },
                    ),
                ));
            }
            let now = self.ledger.now();
            if let Some(open) = payment.checkout().filter(|c| {
                c.url.is_some() && c.expires_at.is_none_or(|e| e > now + Duration::minutes(5))
            }) {
                return Ok(CheckoutStart {
                    intent: payment.intent().cloned(),
                    session: open.session.clone(),
                    redirect_url: open.url.clone(),
                    client_secret: None,
                    expires_at: open.expires_at,
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
            let local = record
                .consultation
                .starts_at
                .with_timezone(&practitioner.time_zone.tz());
            let request = CheckoutRequest {
                hold: HoldRequest {
                    account: account.clone(),
                    payment: payment.id(),
                    consultation: record.consultation.id,
                    amount: payment.amount(),
                    description: format!(
                        "Téléconsultation {} {}",
                        practitioner.name,
                        local.format("%Y-%m-%d %H:%M")
                    ),
                    key: IdempotencyKey::checkout(payment.id(), payment.version()),
                },
                success_url: self.config.checkout_return_url(&token, "success"),
                cancel_url: self.config.checkout_return_url(&token, "cancel"),
                existing_intent,
                customer_email: record
                    .consultation
                    .patient
                    .email
                    .as_ref()
                    .map(|e| e.as_str().to_owned()),
            };
            let start = self.ledger.gateway.start_checkout(&request).await?;
            let checkout =
                (start.session.is_some() || start.redirect_url.is_some()).then(|| CheckoutRef {
                    session: start.session.clone(),
                    url: start.redirect_url.clone(),
                    expires_at: start.expires_at,
                });
            let unchanged = payment.account() == Some(&account)
                && (start.intent.is_none() || payment.intent() == start.intent.as_ref())
                && checkout.is_none();
            if unchanged {
                return Ok(start);
            }
            let next = payment.checkout_started(account, start.intent.clone(), checkout, now)?;
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
}

#[cfg(test)]
mod tests;
