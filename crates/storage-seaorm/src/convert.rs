//! Rows ↔ domain values: the only place that knows both.
//!
//! Writing goes through the domain's accessors (`Payment::to_parts`); reading rebuilds
//! values through their validating constructors (`Payment::restore`, `Money` from minor
//! units, `DisplayName::parse`, `FeeSchedule::custom`…). Stored data that does not
//! make a valid domain value is [`RepositoryError::Corrupt`], never a panic.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::str::FromStr;

use billing_core::access::{Role, StaffUser};
use billing_core::audit::{AuditAction, AuditActor, AuditEntry};
use billing_core::consultation::model::{
    Cancellation, CancelledBy, Consultation, ConsultationRecord, ConsultationStatus, PatientRef,
    PayAccess, PaymentGate, PaymentMode,
};
use billing_core::consultation::policy::{AcceptedTerms, CancellationPolicy, MissedFee};
use billing_core::contact::{DisplayName, EmailAddress};
use billing_core::fees::{Fee, FeeSchedule, FeeSource};
use billing_core::ids::{
    CheckoutSessionId, ConnectedAccountId, ConsultationId, CustomerId, DisputeId, PaymentId,
    PaymentIntentId, PaymentMethodId, PractitionerId, RefundId, ServiceId, SetupIntentId, UserId,
};
use billing_core::money::{Currency, Money};
use billing_core::outbox::{AttachmentRef, Delivery, Message, MessageKind, Queued};
use billing_core::payment::model::{
    Attention, CheckoutRef, Dispute, DisputeStatus, Failure, IdempotencyKey, Lang, Operation,
    Payment, PaymentParts, PaymentStatus, PendingOperation, RefundLine, RefundState, SavedCard,
};
use billing_core::payment::ports::{HistoryEntry, IdempotencyRecord, PaymentRow};
use billing_core::practitioner::model::{
    AccountSnapshot, DescriptorSuffix, LinkVia, PaymentLabel, PayoutInterval, PayoutSchedule,
    Practitioner, Preferences, RevokeReason, Service, StatementText, StripeLink, TimeZone,
};
use billing_core::practitioner::ports::OAuthStateRecord;
use billing_core::practitioner::profile::{HealthId, Profile, ProfileInput, Siret};
use billing_core::receipt::{Document, DocumentDraft, DocumentKind, DocumentNumber, Issuer};
use billing_core::repository::RepositoryError;
use billing_core::secrets::TokenHash;
use chrono::{DateTime, SubsecRound, Utc};
use rust_decimal::Decimal;
use sea_orm::FromQueryResult;
use uuid::Uuid;

use crate::entity::{
    audit_entry, consultation, document, idempotency_key, oauth_state, outbox_message, payment,
    payment_history, practitioner, service, user, webhook_event,
};

/// Parts per million in one percent: a fee percentage with at most four decimals is
/// an exact integer number of ppm.
const PPM_SCALE: u32 = 4;

pub(crate) type Read<T> = Result<T, RepositoryError>;

fn corrupt(table: &str, id: impl Display, what: impl Display) -> RepositoryError {
    RepositoryError::Corrupt(format!("{table} {id}: {what}"))
}

/// The precision both engines keep. The core already truncates its clock; this makes
/// any other caller's nanoseconds read back the same on SQLite and PostgreSQL.
pub(crate) fn at(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

fn at_opt(t: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.map(at)
}

/// Integer minor units of an amount. `Money` keeps them within `i64` by construction,
/// so this only fails on a broken invariant.
pub(crate) fn minor(m: &Money) -> Result<i64, RepositoryError> {
    m.to_minor()
        .map_err(|e| RepositoryError::Corrupt(format!("amount {m:?}: {e}")))
}

fn minor_opt(m: Option<Money>) -> Result<Option<i64>, RepositoryError> {
    m.as_ref().map(minor).transpose()
}

/// A stored amount: never negative (nets are computed, not stored).
fn money(table: &str, id: impl Display, minor: i64, currency: Currency) -> Read<Money> {
    if minor < 0 {
        return Err(corrupt(table, id, format!("negative amount {minor}")));
    }
    Ok(Money::from_minor(minor, currency))
}

fn currency(table: &str, id: impl Display, code: &str) -> Read<Currency> {
    code.parse().map_err(|e| corrupt(table, id, e))
}

fn parse<T: FromStr>(table: &str, id: impl Display, what: &str, s: &str) -> Read<T>
where
    T::Err: Display,
{
    s.parse()
        .map_err(|e| corrupt(table, id, format!("{what} '{s}': {e}")))
}

fn name(table: &str, id: impl Display, s: &str) -> Read<DisplayName> {
    DisplayName::parse(s).map_err(|e| corrupt(table, id, e))
}

fn account(table: &str, id: impl Display, s: &str) -> Read<ConnectedAccountId> {
    ConnectedAccountId::parse(s).map_err(|e| corrupt(table, id, e))
}

fn fee_rate_ppm(schedule: &FeeSchedule) -> Result<i64, RepositoryError> {
    let mut percent = schedule.percent();
    percent.rescale(PPM_SCALE);
    if percent.scale() != PPM_SCALE {
        return Err(RepositoryError::Corrupt(format!(
            "fee percentage {} has more than {PPM_SCALE} decimals",
            schedule.percent()
        )));
    }
    i64::try_from(percent.mantissa())
        .map_err(|_| RepositoryError::Corrupt(format!("fee percentage {percent} overflows")))
}

fn fee_schedule(
    table: &str,
    id: impl Display + Copy,
    ppm: i64,
    fixed_minor: i64,
    currency: Currency,
) -> Read<FeeSchedule> {
    let fixed = money(table, id, fixed_minor, currency)?;
    FeeSchedule::custom(Decimal::new(ppm, PPM_SCALE), fixed).map_err(|e| corrupt(table, id, e))
}

// --- Lists in one text column -------------------------------------------------------

/// Stripe requirement names, one per line; `%` and line breaks are escaped so that any
/// string round-trips. An empty list is NULL (so `[""]` and `[]` stay distinct).
pub(crate) fn encode_lines(items: &[String]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let escaped: Vec<String> = items
        .iter()
        .map(|s| s.replace('%', "%25").replace('\n', "%0A"))
        .collect();
    Some(escaped.join("\n"))
}

pub(crate) fn decode_lines(stored: Option<&str>) -> Vec<String> {
    match stored {
        None => Vec::new(),
        Some(s) => s
            .split('\n')
            .map(|line| line.replace("%0A", "\n").replace("%25", "%"))
            .collect(),
    }
}

// --- Practitioners ------------------------------------------------------------------

const T_PRACTITIONERS: &str = "practitioners";

pub(crate) fn practitioner_row(p: &Practitioner) -> Result<practitioner::Model, RepositoryError> {
    let prefs = &p.preferences;
    let mut row = practitioner::Model {
        id: p.id.as_uuid(),
        name: p.name.as_str().to_owned(),
        time_zone: p.time_zone.name().to_owned(),
        currency: prefs.currency().code().to_owned(),
        default_amount_minor: minor(&prefs.default_amount())?,
        max_amount_minor: minor(&prefs.max_amount())?,
        fee_rate_ppm: fee_rate_ppm(prefs.fee_schedule())?,
        fee_fixed_minor: minor(&prefs.fee_schedule().fixed())?,
        link_status: p.link.status().as_str().to_owned(),
        link_account: p.link.account_id().map(|a| a.as_str().to_owned()),
        link_since: None,
        link_verified_at: None,
        link_revoke_reason: None,
        charges_enabled: None,
        payouts_enabled: None,
        details_submitted: None,
        disabled_reason: None,
        currently_due: None,
        payout_interval: None,
        payout_anchor: None,
        payout_delay_days: None,
        account_currency: None,
        account_country: None,
        link_via: None,
        payment_label: prefs
            .statement()
            .label
            .as_ref()
            .map(|l| l.as_str().to_owned()),
        statement_descriptor_suffix: prefs
            .statement()
            .descriptor_suffix
            .as_ref()
            .map(|s| s.as_str().to_owned()),
        profession: p.profile.profession().map(str::to_owned),
        professional_address: p.profile.address().map(str::to_owned),
        health_id: p.profile.health_id().map(|h| h.number().to_owned()),
        siret: p.profile.siret().map(|s| s.as_str().to_owned()),
        vat_mention: p.profile.custom_vat_mention().map(str::to_owned),
        contact_email: p.profile.email().map(|e| e.as_str().to_owned()),
        cancel_free_hours: i32::try_from(prefs.cancellation().free_hours())
            .map_err(|_| RepositoryError::Corrupt("free cancellation hours out of range".into()))?,
        missed_fee: prefs.cancellation().fee().kind().to_owned(),
        missed_fee_minor: match prefs.cancellation().fee() {
            MissedFee::Fixed(m) => Some(minor(&m)?),
            MissedFee::None | MissedFee::FullHold => None,
        },
        version: p.version,
        created_at: at(p.created_at),
        updated_at: at(p.updated_at),
    };
    match &p.link {
        StripeLink::Unlinked => {}
        StripeLink::Pending { since, .. } => row.link_since = Some(at(*since)),
        StripeLink::Revoked { at: t, reason, .. } => {
            row.link_since = Some(at(*t));
            row.link_revoke_reason = Some(reason.as_str().to_owned());
        }
        StripeLink::Linked {
            account,
            linked_at,
            verified_at,
            via,
        } => {
            row.link_via = Some(via.as_str().to_owned());
            row.link_since = Some(at(*linked_at));
            row.link_verified_at = Some(at(*verified_at));
            row.charges_enabled = Some(account.charges_enabled);
            row.payouts_enabled = Some(account.payouts_enabled);
            row.details_submitted = Some(account.details_submitted);
            row.disabled_reason = account.disabled_reason.clone();
            row.currently_due = encode_lines(&account.currently_due);
            if let Some(schedule) = &account.payout_schedule {
                let (interval, anchor) = match &schedule.interval {
                    PayoutInterval::Manual => ("manual", None),
                    PayoutInterval::Daily => ("daily", None),
                    PayoutInterval::Weekly(day) => ("weekly", Some(day.clone())),
                    PayoutInterval::Monthly(day) => ("monthly", Some(day.to_string())),
                };
                row.payout_interval = Some(interval.to_owned());
                row.payout_anchor = anchor;
                row.payout_delay_days = schedule.delay_days.map(i64::from);
            }
            row.account_currency = account.default_currency.map(|c| c.code().to_owned());
            row.account_country = account.country.clone();
        }
    }
    Ok(row)
}

fn required<T>(value: Option<T>, id: Uuid, what: &str) -> Read<T> {
    value.ok_or_else(|| corrupt(T_PRACTITIONERS, id, format!("{what} missing")))
}

fn link_of(row: &practitioner::Model) -> Read<StripeLink> {
    let id = row.id;
    let account_id = || -> Read<ConnectedAccountId> {
        let raw = required(row.link_account.as_deref(), id, "link account")?;
        account(T_PRACTITIONERS, id, raw)
    };
    let since = || required(row.link_since, id, "link date");
    match row.link_status.as_str() {
        "unlinked" => Ok(StripeLink::Unlinked),
        "pending" => Ok(StripeLink::Pending {
            account: account_id()?,
            since: since()?,
        }),
        "revoked" => Ok(StripeLink::Revoked {
            account: account_id()?,
            at: since()?,
            reason: match required(row.link_revoke_reason.as_deref(), id, "revoke reason")? {
                "unlinked" => RevokeReason::Unlinked,
                "deauthorized" => RevokeReason::Deauthorized,
                other => {
                    return Err(corrupt(
                        T_PRACTITIONERS,
                        id,
                        format!("revoke reason '{other}'"),
                    ));
                }
            },
        }),
        "linked" => {
            let payout_schedule = match row.payout_interval.as_deref() {
                None => None,
                Some(kind) => {
                    let anchor = || required(row.payout_anchor.clone(), id, "payout anchor");
                    let interval = match kind {
                        "manual" => PayoutInterval::Manual,
                        "daily" => PayoutInterval::Daily,
                        "weekly" => PayoutInterval::Weekly(anchor()?),
                        "monthly" => PayoutInterval::Monthly(parse(
                            T_PRACTITIONERS,
                            id,
                            "monthly anchor",
                            &anchor()?,
                        )?),
                        other => {
                            return Err(corrupt(
                                T_PRACTITIONERS,
                                id,
                                format!("payout interval '{other}'"),
                            ));
                        }
                    };
                    let delay_days = row
                        .payout_delay_days
                        .map(u32::try_from)
                        .transpose()
                        .map_err(|e| corrupt(T_PRACTITIONERS, id, format!("payout delay: {e}")))?;
                    Some(PayoutSchedule {
                        interval,
                        delay_days,
                    })
                }
            };
            let snapshot = AccountSnapshot {
                id: account_id()?,
                charges_enabled: required(row.charges_enabled, id, "charges_enabled")?,
                payouts_enabled: required(row.payouts_enabled, id, "payouts_enabled")?,
                details_submitted: required(row.details_submitted, id, "details_submitted")?,
                disabled_reason: row.disabled_reason.clone(),
                currently_due: decode_lines(row.currently_due.as_deref()),
                payout_schedule,
                default_currency: row
                    .account_currency
                    .as_deref()
                    .map(|c| currency(T_PRACTITIONERS, id, c))
                    .transpose()?,
                country: row.account_country.clone(),
            };
            Ok(StripeLink::Linked {
                account: snapshot,
                linked_at: since()?,
                verified_at: required(row.link_verified_at, id, "verification date")?,
                via: match row.link_via.as_deref() {
                    None | Some("oauth") => LinkVia::OAuth,
                    Some("account_links") => LinkVia::AccountLinks,
                    Some(other) => {
                        return Err(corrupt(T_PRACTITIONERS, id, format!("link via '{other}'")));
                    }
                },
            })
        }
        other => Err(corrupt(
            T_PRACTITIONERS,
            id,
            format!("link status '{other}'"),
        )),
    }
}

fn cancellation_policy(row: &practitioner::Model, cur: Currency) -> Read<CancellationPolicy> {
    let id = row.id;
    let fee = match (row.missed_fee.as_str(), row.missed_fee_minor) {
        ("none", None) => MissedFee::None,
        ("full_hold", None) => MissedFee::FullHold,
        ("fixed", Some(m)) => MissedFee::Fixed(money(T_PRACTITIONERS, id, m, cur)?),
        (kind, _) => {
            return Err(corrupt(T_PRACTITIONERS, id, format!("missed fee '{kind}'")));
        }
    };
    let hours =
        u32::try_from(row.cancel_free_hours).map_err(|e| corrupt(T_PRACTITIONERS, id, e))?;
    CancellationPolicy::new(hours, fee).map_err(|e| corrupt(T_PRACTITIONERS, id, e))
}

pub(crate) fn practitioner_from_row(row: practitioner::Model) -> Read<Practitioner> {
    let id = row.id;
    let cur = currency(T_PRACTITIONERS, id, &row.currency)?;
    let preferences = Preferences::new(
        money(T_PRACTITIONERS, id, row.default_amount_minor, cur)?,
        money(T_PRACTITIONERS, id, row.max_amount_minor, cur)?,
        fee_schedule(
            T_PRACTITIONERS,
            id,
            row.fee_rate_ppm,
            row.fee_fixed_minor,
            cur,
        )?,
    )
    .map_err(|e| corrupt(T_PRACTITIONERS, id, e))?
    .with_statement(StatementText {
        label: row
            .payment_label
            .as_deref()
            .map(PaymentLabel::parse)
            .transpose()
            .map_err(|e| corrupt(T_PRACTITIONERS, id, e))?,
        descriptor_suffix: row
            .statement_descriptor_suffix
            .as_deref()
            .map(DescriptorSuffix::parse)
            .transpose()
            .map_err(|e| corrupt(T_PRACTITIONERS, id, e))?,
    })
    .with_cancellation(cancellation_policy(&row, cur)?)
    .map_err(|e| corrupt(T_PRACTITIONERS, id, e))?;
    let profile = Profile::parse(&ProfileInput {
        profession: row.profession.clone().unwrap_or_default(),
        address: row.professional_address.clone().unwrap_or_default(),
        health_id: row.health_id.clone().unwrap_or_default(),
        siret: row.siret.clone().unwrap_or_default(),
        vat_mention: row.vat_mention.clone().unwrap_or_default(),
        email: row.contact_email.clone().unwrap_or_default(),
    })
    .map_err(|(field, e)| corrupt(T_PRACTITIONERS, id, format!("{field}: {e}")))?;
    Ok(Practitioner {
        id: PractitionerId::from_uuid(id),
        name: name(T_PRACTITIONERS, id, &row.name)?,
        time_zone: parse::<TimeZone>(T_PRACTITIONERS, id, "time zone", &row.time_zone)?,
        link: link_of(&row)?,
        preferences,
        profile,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

// --- OAuth states -------------------------------------------------------------------

pub(crate) fn oauth_state_row(r: &OAuthStateRecord) -> oauth_state::Model {
    oauth_state::Model {
        hash: r.hash.as_str().to_owned(),
        practitioner_id: r.practitioner.as_uuid(),
        created_at: at(r.created_at),
        expires_at: at(r.expires_at),
        consumed_at: None,
    }
}

pub(crate) fn oauth_state_from_row(row: oauth_state::Model) -> OAuthStateRecord {
    OAuthStateRecord {
        hash: TokenHash::from_stored(row.hash),
        practitioner: PractitionerId::from_uuid(row.practitioner_id),
        created_at: row.created_at,
        expires_at: row.expires_at,
    }
}

// --- Services -----------------------------------------------------------------------

const T_SERVICES: &str = "services";

pub(crate) fn service_row(s: &Service) -> Result<service::Model, RepositoryError> {
    Ok(service::Model {
        id: s.id().as_uuid(),
        practitioner_id: s.practitioner().as_uuid(),
        name: s.name().as_str().to_owned(),
        currency: s.price().currency().code().to_owned(),
        price_minor: minor(&s.price())?,
        active: s.active(),
        created_at: at(s.created_at()),
        updated_at: at(s.updated_at()),
    })
}

pub(crate) fn service_from_row(row: service::Model) -> Read<Service> {
    let id = row.id;
    let cur = currency(T_SERVICES, id, &row.currency)?;
    Ok(Service::restore(
        ServiceId::from_uuid(id),
        PractitionerId::from_uuid(row.practitioner_id),
        name(T_SERVICES, id, &row.name)?,
        money(T_SERVICES, id, row.price_minor, cur)?,
        row.active,
        row.created_at,
        row.updated_at,
    ))
}

// --- Consultations ------------------------------------------------------------------

const T_CONSULTATIONS: &str = "consultations";

pub(crate) fn consultation_row(c: &Consultation) -> consultation::Model {
    consultation::Model {
        id: c.id.as_uuid(),
        practitioner_id: c.practitioner.as_uuid(),
        patient_name: c.patient.display_name.as_str().to_owned(),
        patient_email: c.patient.email.as_ref().map(|e| e.as_str().to_owned()),
        starts_at: at(c.starts_at),
        payment_mode: c.payment_mode.as_str().to_owned(),
        pay_token_hash: c.pay_token_hash.as_str().to_owned(),
        pay_link_generation: i64::from(c.pay_link_generation),
        service_name: c.service.as_ref().map(|s| s.as_str().to_owned()),
        patient_lang: c.lang.code().to_owned(),
        created_by: c.created_by.map(|u| u.as_uuid()),
        created_at: at(c.created_at),
        status: c.status.as_str().to_owned(),
        status_at: match c.status {
            ConsultationStatus::Scheduled => None,
            ConsultationStatus::Cancelled(x) => Some(at(x.at)),
            ConsultationStatus::NoShow { at: t } => Some(at(t)),
        },
        cancelled_by: match c.status {
            ConsultationStatus::Cancelled(x) => Some(x.by.as_str().to_owned()),
            _ => None,
        },
        cancellation_late: matches!(
            c.status,
            ConsultationStatus::Cancelled(Cancellation { late: true, .. })
        ),
        started_at: at_opt(c.started_at),
        rescheduled_at: at_opt(c.rescheduled_at),
    }
}

/// A consultation's stored status columns.
struct StatusColumns<'a> {
    id: Uuid,
    status: &'a str,
    status_at: Option<DateTime<Utc>>,
    cancelled_by: Option<&'a str>,
    cancellation_late: bool,
}

fn consultation_status(row: StatusColumns<'_>) -> Read<ConsultationStatus> {
    let id = row.id;
    let when = || required_in(T_CONSULTATIONS, id, row.status_at, "status date");
    Ok(match (row.status, row.cancelled_by) {
        ("scheduled", None) => ConsultationStatus::Scheduled,
        ("no_show", None) => ConsultationStatus::NoShow { at: when()? },
        ("cancelled", Some(by)) => ConsultationStatus::Cancelled(Cancellation {
            by: match by {
                "patient" => CancelledBy::Patient,
                "practice" => CancelledBy::Practice,
                other => {
                    return Err(corrupt(
                        T_CONSULTATIONS,
                        id,
                        format!("cancelled by '{other}'"),
                    ));
                }
            },
            at: when()?,
            late: row.cancellation_late,
        }),
        (status, _) => {
            return Err(corrupt(T_CONSULTATIONS, id, format!("status '{status}'")));
        }
    })
}

fn payment_mode(id: Uuid, stored: &str) -> Read<PaymentMode> {
    match stored {
        "none" => Ok(PaymentMode::None),
        "online" => Ok(PaymentMode::Online),
        other => Err(corrupt(
            T_CONSULTATIONS,
            id,
            format!("payment mode '{other}'"),
        )),
    }
}

/// The columns the waiting-room gate reads: a consultation's, and its payment's
/// status and operation in flight (`ConsultationRepository::pay_access`).
#[derive(Debug, FromQueryResult)]
pub(crate) struct PayAccessRow {
    id: Uuid,
    status: String,
    status_at: Option<DateTime<Utc>>,
    cancelled_by: Option<String>,
    cancellation_late: bool,
    payment_mode: String,
    starts_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    payment_id: Option<Uuid>,
    payment_status: Option<String>,
    pending_operation: Option<String>,
}

pub(crate) fn pay_access_from_row(row: PayAccessRow) -> Read<PayAccess> {
    let id = row.id;
    let payment = match (row.payment_id, row.payment_status.as_deref()) {
        (None, _) => None,
        (Some(payment), Some(status)) => Some(PaymentGate {
            status: parse::<PaymentStatus>(T_PAYMENTS, payment, "status", status)?,
            releasing: row.pending_operation.as_deref() == Some("release"),
        }),
        (Some(payment), None) => return Err(corrupt(T_PAYMENTS, payment, "no status")),
    };
    Ok(PayAccess {
        consultation: ConsultationId::from_uuid(id),
        status: consultation_status(StatusColumns {
            id,
            status: &row.status,
            status_at: row.status_at,
            cancelled_by: row.cancelled_by.as_deref(),
            cancellation_late: row.cancellation_late,
        })?,
        payment_mode: payment_mode(id, &row.payment_mode)?,
        starts_at: row.starts_at,
        started_at: row.started_at,
        payment,
    })
}

pub(crate) fn consultation_from_row(row: consultation::Model) -> Read<Consultation> {
    let id = row.id;
    let status = consultation_status(StatusColumns {
        id,
        status: &row.status,
        status_at: row.status_at,
        cancelled_by: row.cancelled_by.as_deref(),
        cancellation_late: row.cancellation_late,
    })?;
    let payment_mode = payment_mode(id, &row.payment_mode)?;
    let email = row
        .patient_email
        .as_deref()
        .map(EmailAddress::parse)
        .transpose()
        .map_err(|e| corrupt(T_CONSULTATIONS, id, e))?;
    Ok(Consultation {
        id: ConsultationId::from_uuid(id),
        practitioner: PractitionerId::from_uuid(row.practitioner_id),
        patient: PatientRef {
            display_name: name(T_CONSULTATIONS, id, &row.patient_name)?,
            email,
        },
        starts_at: row.starts_at,
        payment_mode,
        service: row
            .service_name
            .as_deref()
            .map(|n| name(T_CONSULTATIONS, id, n))
            .transpose()?,
        lang: lang(T_CONSULTATIONS, id, &row.patient_lang)?,
        pay_token_hash: TokenHash::from_stored(row.pay_token_hash),
        pay_link_generation: u32::try_from(row.pay_link_generation).map_err(|_| {
            corrupt(
                T_CONSULTATIONS,
                id,
                format!("pay link generation {}", row.pay_link_generation),
            )
        })?,
        created_by: row.created_by.map(UserId::from_uuid),
        created_at: row.created_at,
        status,
        started_at: row.started_at,
        rescheduled_at: row.rescheduled_at,
    })
}

pub(crate) fn record_from_rows(
    c: consultation::Model,
    p: Option<payment::Model>,
) -> Read<ConsultationRecord> {
    Ok(ConsultationRecord {
        consultation: consultation_from_row(c)?,
        payment: p.map(payment_from_row).transpose()?,
    })
}

// --- Payments -----------------------------------------------------------------------

const T_PAYMENTS: &str = "payments";

pub(crate) fn payment_row(p: &Payment) -> Result<payment::Model, RepositoryError> {
    let parts = p.to_parts();
    let (fee_minor, fee_source) = match parts.fee {
        Some(f) => (
            Some(minor(&f.amount)?),
            Some(
                match f.source {
                    FeeSource::Estimated => "estimated",
                    FeeSource::Reported => "reported",
                }
                .to_owned(),
            ),
        ),
        None => (None, None),
    };
    let (pending_operation, pending_amount_minor, pending_key, pending_since) = match &parts.pending
    {
        Some(op) => {
            let amount = minor_opt(op.operation.amount())?;
            (
                Some(op.operation.name().to_owned()),
                amount,
                Some(op.key.as_str().to_owned()),
                Some(at(op.since)),
            )
        }
        None => (None, None, None, None),
    };
    let checkout = parts.checkout.as_ref();
    let dispute = parts.dispute.as_ref();
    let refunds = parts
        .refunds
        .iter()
        .map(|r| Ok(format!("{} {} {}", r.id, minor(&r.amount)?, r.status)))
        .collect::<Result<Vec<String>, RepositoryError>>()?;
    Ok(payment::Model {
        id: parts.id.as_uuid(),
        consultation_id: parts.consultation.as_uuid(),
        practitioner_id: parts.practitioner.as_uuid(),
        currency: parts.amount.currency().code().to_owned(),
        amount_minor: minor(&parts.amount)?,
        fee_rate_ppm: fee_rate_ppm(&parts.fee_schedule)?,
        fee_fixed_minor: minor(&parts.fee_schedule.fixed())?,
        status: parts.status.as_str().to_owned(),
        authorized_minor: minor_opt(parts.authorized)?,
        captured_minor: minor_opt(parts.captured)?,
        refunded_minor: minor(&parts.refunded)?,
        refund_count: parts.refund_count,
        fee_minor,
        fee_source,
        account: parts.account.as_ref().map(|a| a.as_str().to_owned()),
        intent: parts.intent.as_ref().map(|i| i.as_str().to_owned()),
        has_checkout: checkout.is_some(),
        checkout_session: checkout
            .and_then(|c| c.session.as_ref())
            .map(|s| s.as_str().to_owned()),
        checkout_url: checkout.and_then(|c| c.url.clone()),
        checkout_expires_at: at_opt(checkout.and_then(|c| c.expires_at)),
        checkout_setup_intent: checkout
            .and_then(|c| c.setup.as_ref())
            .map(|s| s.as_str().to_owned()),
        failure_message: parts.failure.as_ref().map(|f| f.message.clone()),
        failure_code: parts.failure.as_ref().and_then(|f| f.code.clone()),
        failure_decline_code: parts.failure.as_ref().and_then(|f| f.decline_code.clone()),
        pending_operation,
        pending_amount_minor,
        pending_key,
        pending_since,
        saved_customer: parts
            .saved_card
            .as_ref()
            .map(|c| c.customer.as_str().to_owned()),
        saved_payment_method: parts
            .saved_card
            .as_ref()
            .map(|c| c.payment_method.as_str().to_owned()),
        refunds: encode_lines(&refunds),
        dispute_id: dispute.map(|d| d.id.as_str().to_owned()),
        dispute_status: dispute.map(|d| d.status.as_str().to_owned()),
        dispute_reason: dispute.map(|d| d.reason.clone()),
        dispute_amount_minor: minor_opt(dispute.map(|d| d.amount))?,
        dispute_evidence_due_by: at_opt(dispute.and_then(|d| d.evidence_due_by)),
        dispute_withdrawn_minor: minor_opt(dispute.map(|d| d.withdrawn))?.unwrap_or(0),
        dispute_fee_minor: minor_opt(dispute.map(|d| d.fee))?.unwrap_or(0),
        dispute_transactions: dispute.map(|d| i64::from(d.transactions)),
        attention_at: at_opt(parts.attention.as_ref().map(|a| a.at)),
        attention_message: parts.attention.as_ref().map(|a| a.message.clone()),
        authorized_at: at_opt(parts.authorized_at),
        capture_before: at_opt(parts.capture_before),
        captured_at: at_opt(parts.captured_at),
        terms_text: parts.terms.as_ref().map(|t| t.text.clone()),
        terms_at: at_opt(parts.terms.as_ref().map(|t| t.at)),
        terms_fee_minor: minor_opt(parts.terms.as_ref().and_then(|t| t.fee))?,
        terms_free_hours: parts
            .terms
            .as_ref()
            .map(|t| i32::try_from(t.free_hours))
            .transpose()
            .map_err(|_| RepositoryError::Corrupt("free cancellation hours out of range".into()))?,
        version: parts.version,
        created_at: at(parts.created_at),
        updated_at: at(parts.updated_at),
    })
}

pub(crate) fn payment_from_row(row: payment::Model) -> Read<Payment> {
    let id = row.id;
    let cur = currency(T_PAYMENTS, id, &row.currency)?;
    let amount = |m: i64| money(T_PAYMENTS, id, m, cur);
    let amount_opt = |m: Option<i64>| m.map(amount).transpose();
    let fee = match (row.fee_minor, row.fee_source.as_deref()) {
        (None, None) => None,
        (Some(m), Some("estimated")) => Some(Fee::estimated(amount(m)?)),
        (Some(m), Some("reported")) => Some(Fee::reported(amount(m)?)),
        (m, source) => {
            return Err(corrupt(
                T_PAYMENTS,
                id,
                format!("fee {m:?} from {source:?}"),
            ));
        }
    };
    let pending = match row.pending_operation.as_deref() {
        None => None,
        Some(name) => {
            let op_amount = || {
                row.pending_amount_minor
                    .ok_or_else(|| corrupt(T_PAYMENTS, id, "pending amount missing"))
                    .and_then(amount)
            };
            let operation = match name {
                "hold" => Operation::Hold {
                    amount: op_amount()?,
                },
                "capture" => Operation::Capture {
                    amount: op_amount()?,
                },
                "release" => Operation::Release,
                "refund" => Operation::Refund {
                    amount: op_amount()?,
                },
                other => {
                    return Err(corrupt(
                        T_PAYMENTS,
                        id,
                        format!("pending operation '{other}'"),
                    ));
                }
            };
            let (Some(key), Some(since)) = (row.pending_key.clone(), row.pending_since) else {
                return Err(corrupt(
                    T_PAYMENTS,
                    id,
                    "pending operation without key or date",
                ));
            };
            Some(PendingOperation {
                operation,
                key: IdempotencyKey::from_stored(key),
                since,
            })
        }
    };
    let checkout = if row.has_checkout {
        Some(CheckoutRef {
            session: row
                .checkout_session
                .as_deref()
                .map(CheckoutSessionId::parse)
                .transpose()
                .map_err(|e| corrupt(T_PAYMENTS, id, e))?,
            url: row.checkout_url.clone(),
            expires_at: row.checkout_expires_at,
            setup: row
                .checkout_setup_intent
                .as_deref()
                .map(SetupIntentId::parse)
                .transpose()
                .map_err(|e| corrupt(T_PAYMENTS, id, e))?,
        })
    } else {
        None
    };
    let failure = row.failure_message.clone().map(|message| Failure {
        code: row.failure_code.clone(),
        decline_code: row.failure_decline_code.clone(),
        message,
    });
    let saved_card = match (&row.saved_customer, &row.saved_payment_method) {
        (None, None) => None,
        (Some(customer), Some(method)) => Some(SavedCard {
            customer: CustomerId::parse(customer).map_err(|e| corrupt(T_PAYMENTS, id, e))?,
            payment_method: PaymentMethodId::parse(method)
                .map_err(|e| corrupt(T_PAYMENTS, id, e))?,
        }),
        _ => return Err(corrupt(T_PAYMENTS, id, "half a saved card")),
    };
    let refunds = decode_lines(row.refunds.as_deref())
        .iter()
        .map(|line| refund_line(id, line, cur))
        .collect::<Read<Vec<RefundLine>>>()?;
    let dispute = match (&row.dispute_id, &row.dispute_status) {
        (None, None) => None,
        (Some(dispute_id), Some(status)) => Some(Dispute {
            id: DisputeId::parse(dispute_id).map_err(|e| corrupt(T_PAYMENTS, id, e))?,
            amount: amount(required_in(
                T_PAYMENTS,
                id,
                row.dispute_amount_minor,
                "dispute amount",
            )?)?,
            reason: row.dispute_reason.clone().unwrap_or_default(),
            status: status
                .parse::<DisputeStatus>()
                .map_err(|()| corrupt(T_PAYMENTS, id, format!("dispute status '{status}'")))?,
            evidence_due_by: row.dispute_evidence_due_by,
            withdrawn: amount(row.dispute_withdrawn_minor)?,
            fee: amount(row.dispute_fee_minor)?,
            transactions: u32::try_from(row.dispute_transactions.unwrap_or(0))
                .map_err(|e| corrupt(T_PAYMENTS, id, e))?,
        }),
        _ => return Err(corrupt(T_PAYMENTS, id, "half a dispute")),
    };
    let attention = match (row.attention_at, &row.attention_message) {
        (Some(at), Some(message)) => Some(Attention {
            at,
            message: message.clone(),
        }),
        (None, None) => None,
        _ => return Err(corrupt(T_PAYMENTS, id, "half an attention note")),
    };
    let parts = PaymentParts {
        id: PaymentId::from_uuid(id),
        consultation: ConsultationId::from_uuid(row.consultation_id),
        practitioner: PractitionerId::from_uuid(row.practitioner_id),
        amount: amount(row.amount_minor)?,
        fee_schedule: fee_schedule(T_PAYMENTS, id, row.fee_rate_ppm, row.fee_fixed_minor, cur)?,
        status: parse::<PaymentStatus>(T_PAYMENTS, id, "status", &row.status)?,
        authorized: amount_opt(row.authorized_minor)?,
        captured: amount_opt(row.captured_minor)?,
        refunded: amount(row.refunded_minor)?,
        refund_count: row.refund_count,
        fee,
        account: row
            .account
            .as_deref()
            .map(|a| account(T_PAYMENTS, id, a))
            .transpose()?,
        intent: row
            .intent
            .as_deref()
            .map(PaymentIntentId::parse)
            .transpose()
            .map_err(|e| corrupt(T_PAYMENTS, id, e))?,
        checkout,
        failure,
        pending,
        saved_card,
        refunds,
        dispute,
        attention,
        authorized_at: row.authorized_at,
        capture_before: row.capture_before,
        captured_at: row.captured_at,
        terms: match (&row.terms_text, row.terms_at, row.terms_free_hours) {
            (None, None, None) => None,
            (Some(text), Some(at), Some(hours)) => Some(AcceptedTerms {
                text: text.clone(),
                at,
                fee: amount_opt(row.terms_fee_minor)?,
                free_hours: u32::try_from(hours).map_err(|e| corrupt(T_PAYMENTS, id, e))?,
            }),
            _ => return Err(corrupt(T_PAYMENTS, id, "half the accepted terms")),
        },
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    };
    Payment::restore(parts).map_err(|e| RepositoryError::Corrupt(e.to_string()))
}

/// `{id} {amount_minor} {status}`, as [`payment_row`] writes each refund.
fn refund_line(id: Uuid, line: &str, cur: Currency) -> Read<RefundLine> {
    let mut fields = line.split(' ');
    let (Some(refund), Some(minor), Some(status), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(corrupt(T_PAYMENTS, id, format!("refund line '{line}'")));
    };
    Ok(RefundLine {
        id: RefundId::parse(refund).map_err(|e| corrupt(T_PAYMENTS, id, e))?,
        amount: money(
            T_PAYMENTS,
            id,
            parse::<i64>(T_PAYMENTS, id, "refund amount", minor)?,
            cur,
        )?,
        status: status
            .parse::<RefundState>()
            .map_err(|()| corrupt(T_PAYMENTS, id, format!("refund status '{status}'")))?,
    })
}

fn required_in<T>(table: &str, id: Uuid, value: Option<T>, what: &str) -> Read<T> {
    value.ok_or_else(|| corrupt(table, id, format!("{what} missing")))
}

/// A payment with the columns of its consultation the payments table shows.
pub(crate) fn payment_row_from_rows(
    p: payment::Model,
    c: Option<consultation::Model>,
) -> Read<PaymentRow> {
    let id = p.id;
    let c = c.ok_or_else(|| corrupt(T_PAYMENTS, id, "consultation missing"))?;
    Ok(PaymentRow {
        payment: payment_from_row(p)?,
        patient: name(T_CONSULTATIONS, c.id, &c.patient_name)?,
        starts_at: c.starts_at,
    })
}

// --- History and audit --------------------------------------------------------------

const T_HISTORY: &str = "payment_history";

pub(crate) fn history_row(
    h: &HistoryEntry,
) -> Result<payment_history::ActiveModel, RepositoryError> {
    use sea_orm::ActiveValue::{NotSet, Set};
    Ok(payment_history::ActiveModel {
        seq: NotSet,
        payment_id: Set(h.payment.as_uuid()),
        at: Set(at(h.at)),
        from_status: Set(h.from.as_str().to_owned()),
        to_status: Set(h.to.as_str().to_owned()),
        event: Set(h.event.clone()),
        amount_minor: Set(minor_opt(h.amount)?),
        amount_currency: Set(h.amount.map(|m| m.currency().code().to_owned())),
        actor: Set(h.actor.to_stored()),
    })
}

pub(crate) fn history_from_row(row: payment_history::Model) -> Read<HistoryEntry> {
    let seq = row.seq;
    let amount = match (row.amount_minor, row.amount_currency.as_deref()) {
        (None, None) => None,
        (Some(m), Some(code)) => Some(money(T_HISTORY, seq, m, currency(T_HISTORY, seq, code)?)?),
        _ => return Err(corrupt(T_HISTORY, seq, "amount without currency")),
    };
    Ok(HistoryEntry {
        payment: PaymentId::from_uuid(row.payment_id),
        at: row.at,
        from: parse(T_HISTORY, seq, "status", &row.from_status)?,
        to: parse(T_HISTORY, seq, "status", &row.to_status)?,
        event: row.event,
        amount,
        actor: AuditActor::from_stored(&row.actor)
            .ok_or_else(|| corrupt(T_HISTORY, seq, format!("actor '{}'", row.actor)))?,
    })
}

const T_AUDIT: &str = "audit_log";

pub(crate) fn audit_row(e: &AuditEntry) -> audit_entry::ActiveModel {
    use sea_orm::ActiveValue::{NotSet, Set};
    audit_entry::ActiveModel {
        seq: NotSet,
        at: Set(at(e.at)),
        practitioner_id: Set(e.practitioner.as_uuid()),
        actor: Set(e.actor.to_stored()),
        action: Set(e.action.as_str().to_owned()),
        subject: Set(e.subject),
        detail: Set(e.detail.clone()),
    }
}

pub(crate) fn audit_from_row(row: audit_entry::Model) -> Read<AuditEntry> {
    let seq = row.seq;
    Ok(AuditEntry {
        at: row.at,
        practitioner: PractitionerId::from_uuid(row.practitioner_id),
        actor: AuditActor::from_stored(&row.actor)
            .ok_or_else(|| corrupt(T_AUDIT, seq, format!("actor '{}'", row.actor)))?,
        action: row
            .action
            .parse::<AuditAction>()
            .map_err(|()| corrupt(T_AUDIT, seq, format!("action '{}'", row.action)))?,
        subject: row.subject,
        detail: row.detail,
    })
}

// --- Webhooks and idempotency -------------------------------------------------------

pub(crate) fn webhook_row(
    id: &str,
    kind: &str,
    received_at: DateTime<Utc>,
) -> webhook_event::Model {
    webhook_event::Model {
        event_id: id.to_owned(),
        kind: kind.to_owned(),
        received_at: at(received_at),
        processed_at: None,
        outcome: None,
    }
}

pub(crate) fn idempotency_row(r: &IdempotencyRecord) -> idempotency_key::Model {
    idempotency_key::Model {
        scope: r.scope.clone(),
        key: r.key.clone(),
        fingerprint: r.fingerprint.clone(),
        resource: r.resource,
        created_at: at(r.created_at),
    }
}

pub(crate) fn idempotency_from_row(row: idempotency_key::Model) -> IdempotencyRecord {
    IdempotencyRecord {
        scope: row.scope,
        key: row.key,
        fingerprint: row.fingerprint,
        resource: row.resource,
        created_at: row.created_at,
    }
}

// --- Users --------------------------------------------------------------------------

const T_USERS: &str = "users";

pub(crate) const ROLE_PRACTITIONER: &str = "practitioner";
pub(crate) const ROLE_SECRETARY: &str = "secretary";

pub(crate) fn user_row(u: &StaffUser, created_at: DateTime<Utc>) -> user::Model {
    let (role, practitioner_id) = match &u.role {
        Role::Practitioner(p) => (ROLE_PRACTITIONER, Some(p.as_uuid())),
        Role::Secretary(_) => (ROLE_SECRETARY, None),
    };
    user::Model {
        id: u.id.as_uuid(),
        name: u.name.clone(),
        role: role.to_owned(),
        practitioner_id,
        created_at: at(created_at),
    }
}

/// A user with, for a secretary, the practitioners they work for.
pub(crate) fn user_from_row(row: user::Model, works_for: Vec<Uuid>) -> Read<StaffUser> {
    let id = row.id;
    let role = match (row.role.as_str(), row.practitioner_id) {
        (ROLE_PRACTITIONER, Some(p)) => Role::Practitioner(PractitionerId::from_uuid(p)),
        (ROLE_SECRETARY, None) => Role::Secretary(
            works_for
                .into_iter()
                .map(PractitionerId::from_uuid)
                .collect::<BTreeSet<_>>(),
        ),
        (role, p) => {
            return Err(corrupt(
                T_USERS,
                id,
                format!("role '{role}' with practitioner {p:?}"),
            ));
        }
    };
    Ok(StaffUser {
        id: UserId::from_uuid(id),
        name: row.name,
        role,
    })
}

fn lang(table: &'static str, id: impl std::fmt::Display, code: &str) -> Read<Lang> {
    match code {
        "fr" => Ok(Lang::Fr),
        "en" => Ok(Lang::En),
        other => Err(corrupt(table, id, format!("language '{other}'"))),
    }
}

// --- Documents ----------------------------------------------------------------------

const T_DOCUMENTS: &str = "documents";

/// The unique key of what a draft is for: the payment's receipt, or a refund's credit
/// note.
pub(crate) fn document_dedupe(d: &DocumentDraft) -> String {
    match (&d.kind, &d.refund) {
        (kind, Some(refund)) => format!("{}:{refund}", kind.as_str()),
        (kind, None) => kind.as_str().to_owned(),
    }
}

pub(crate) fn document_row(
    d: &DocumentDraft,
    seq: i64,
) -> Result<document::Model, RepositoryError> {
    Ok(document::Model {
        practitioner_id: d.practitioner.as_uuid(),
        year: d.year,
        seq,
        kind: d.kind.as_str().to_owned(),
        payment_id: d.payment.as_uuid(),
        refund_id: d.refund.as_ref().map(|r| r.as_str().to_owned()),
        dedupe: document_dedupe(d),
        issuer_name: d.issuer.name.clone(),
        issuer_profession: d.issuer.profession.clone(),
        issuer_address: d.issuer.address.clone(),
        issuer_health_id: d.issuer.health_id.as_ref().map(|h| h.number().to_owned()),
        issuer_siret: d.issuer.siret.as_ref().map(|s| s.as_str().to_owned()),
        vat_mention: d.issuer.vat_mention.clone(),
        patient_name: d.patient.clone(),
        act_at: at(d.act_at),
        description: d.description.clone(),
        amount_minor: minor(&d.amount)?,
        currency: d.amount.currency().code().to_owned(),
        paid_at: at(d.paid_at),
        issued_at: at(d.issued_at),
        time_zone: d.time_zone.name().to_owned(),
    })
}

/// A stored document; `refers_to` is the document it refers to (a credit note's
/// receipt, a cancellation's credit note).
pub(crate) fn document_from_row(
    row: document::Model,
    refers_to: Option<DocumentNumber>,
) -> Read<Document> {
    let key = format!("{}/{}-{}", row.practitioner_id, row.year, row.seq);
    let bad = |what: String| corrupt(T_DOCUMENTS, &key, what);
    let kind: DocumentKind = row
        .kind
        .parse()
        .map_err(|()| bad(format!("kind '{}'", row.kind)))?;
    let cur = currency(T_DOCUMENTS, &key, &row.currency)?;
    let number = DocumentNumber {
        year: row.year,
        seq: u32::try_from(row.seq).map_err(|_| bad(format!("sequence {}", row.seq)))?,
    };
    Ok(Document {
        number,
        refers_to,
        draft: DocumentDraft {
            kind,
            practitioner: PractitionerId::from_uuid(row.practitioner_id),
            payment: PaymentId::from_uuid(row.payment_id),
            refund: row
                .refund_id
                .as_deref()
                .map(RefundId::parse)
                .transpose()
                .map_err(|e| bad(e.to_string()))?,
            year: row.year,
            issuer: Issuer {
                name: row.issuer_name,
                profession: row.issuer_profession,
                address: row.issuer_address,
                health_id: row
                    .issuer_health_id
                    .as_deref()
                    .map(HealthId::parse)
                    .transpose()
                    .map_err(|e| bad(e.to_string()))?,
                siret: row
                    .issuer_siret
                    .as_deref()
                    .map(Siret::parse)
                    .transpose()
                    .map_err(|e| bad(e.to_string()))?,
                vat_mention: row.vat_mention,
            },
            patient: row.patient_name,
            act_at: row.act_at,
            description: row.description,
            amount: money(T_DOCUMENTS, &key, row.amount_minor, cur)?,
            paid_at: row.paid_at,
            issued_at: row.issued_at,
            time_zone: parse::<TimeZone>(T_DOCUMENTS, &key, "time zone", &row.time_zone)?,
        },
    })
}

// --- Outbox -------------------------------------------------------------------------

const T_OUTBOX: &str = "outbox";

pub(crate) fn outbox_row(m: &Message) -> outbox_message::Model {
    outbox_message::Model {
        id: m.id,
        practitioner_id: m.practitioner.as_uuid(),
        consultation_id: m.consultation.map(|c| c.as_uuid()),
        user_id: m.user.map(|u| u.as_uuid()),
        kind: m.kind.as_str().to_owned(),
        recipient: m.to.as_str().to_owned(),
        lang: m.lang.code().to_owned(),
        subject: m.subject.clone(),
        body: m.body.clone(),
        attachment_payment_id: m.attachment.as_ref().map(|a| a.payment.as_uuid()),
        attachment_kind: m.attachment.as_ref().map(|a| a.kind.as_str().to_owned()),
        attachment_refund_id: m
            .attachment
            .as_ref()
            .and_then(|a| a.refund.as_ref())
            .map(|r| r.as_str().to_owned()),
        dedupe: m.dedupe.clone(),
        created_at: at(m.created_at),
        status: "pending".to_owned(),
        attempts: 0,
        next_attempt_at: at(m.created_at),
        claimed_by: None,
        claimed_until: None,
        sent_at: None,
        failed_at: None,
        last_error: None,
    }
}

pub(crate) fn queued_from_row(row: outbox_message::Model) -> Read<Queued> {
    let id = row.id;
    let bad = |what: String| corrupt(T_OUTBOX, id, what);
    let delivery = match (row.status.as_str(), row.sent_at, row.failed_at) {
        ("pending", _, _) => Delivery::Pending,
        ("sent", Some(at), _) => Delivery::Sent { at },
        ("failed", _, Some(at)) => Delivery::Failed { at },
        (other, _, _) => return Err(bad(format!("status '{other}'"))),
    };
    Ok(Queued {
        message: Message {
            id,
            kind: row
                .kind
                .parse::<MessageKind>()
                .map_err(|()| bad(format!("kind '{}'", row.kind)))?,
            practitioner: PractitionerId::from_uuid(row.practitioner_id),
            consultation: row.consultation_id.map(ConsultationId::from_uuid),
            user: row.user_id.map(billing_core::ids::UserId::from_uuid),
            to: EmailAddress::parse(&row.recipient).map_err(|e| bad(e.to_string()))?,
            lang: lang(T_OUTBOX, id, &row.lang)?,
            subject: row.subject,
            body: row.body,
            attachment: match row.attachment_payment_id {
                Some(payment) => Some(AttachmentRef {
                    payment: PaymentId::from_uuid(payment),
                    kind: row
                        .attachment_kind
                        .as_deref()
                        .unwrap_or_default()
                        .parse::<DocumentKind>()
                        .map_err(|()| bad(format!("attachment kind {:?}", row.attachment_kind)))?,
                    refund: row
                        .attachment_refund_id
                        .as_deref()
                        .map(RefundId::parse)
                        .transpose()
                        .map_err(|e| bad(e.to_string()))?,
                }),
                None => None,
            },
            dedupe: row.dedupe,
            created_at: row.created_at,
        },
        delivery,
        attempts: u32::try_from(row.attempts)
            .map_err(|_| bad(format!("attempts {}", row.attempts)))?,
        next_attempt_at: row.next_attempt_at,
        last_error: row.last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_lists_round_trip_whatever_they_contain() {
        let cases: Vec<Vec<String>> = vec![
            vec![],
            vec![String::new()],
            vec!["external_account".into(), "individual.dob.day".into()],
            vec!["line\nbreak".into(), "100%".into(), "%0A literal".into()],
        ];
        for items in cases {
            assert_eq!(
                decode_lines(encode_lines(&items).as_deref()),
                items,
                "{items:?}"
            );
        }
    }

    #[test]
    fn fee_percentages_are_stored_as_exact_parts_per_million() {
        let eur = |m| Money::from_minor(m, Currency::Eur);
        let table = [
            ("1.4", 14_000),
            ("3.25", 32_500),
            ("0", 0),
            ("100", 1_000_000),
            ("2.9999", 29_999),
        ];
        for (percent, ppm) in table {
            let schedule =
                FeeSchedule::custom(Decimal::from_str(percent).unwrap(), eur(25)).unwrap();
            assert_eq!(fee_rate_ppm(&schedule).unwrap(), ppm, "{percent}");
            let back = fee_schedule("t", 1, ppm, 25, Currency::Eur).unwrap();
            assert_eq!(back, schedule, "{percent}");
        }
    }

    #[test]
    fn a_negative_stored_amount_is_corrupt() {
        assert!(matches!(
            money("payments", 1, -1, Currency::Eur),
            Err(RepositoryError::Corrupt(_))
        ));
    }
}
