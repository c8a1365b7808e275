//! The JSON API's wire types (they *are* the OpenAPI schema) and their conversions
//! from and to domain types, in one module. Amounts are decimal strings at the
//! currency's scale ("25.00"), never numbers.

use billing_core::access::{Actor, Role};
use billing_core::audit::AuditEntry;
use billing_core::consultation::model::{ConsultationRecord, ConsultationStatus, PaymentMode};
use billing_core::consultation::policy::{CancellationPolicy, MissedFee};
use billing_core::fees::{FeeEstimate, FeePreset, FeeSchedule, FeeSource};
use billing_core::money::{AmountInput, Currency, Money};
use billing_core::outbox::Queued;
use billing_core::payment::model::{Lang, Payment, PaymentStatus};
use billing_core::payment::ports::{HistoryEntry, PaymentPage, PaymentRow, PaymentTotals};
use billing_core::practitioner::model::{PayoutInterval, Preferences, Service, StripeLink};
use billing_core::practitioner::profile::{Profile, ProfileInput};
use billing_core::practitioner::service::{CancellationInput, FeeScheduleInput, MissedFeeInput};
use billing_core::receipt::Document;
use billing_core::video::Pass;
use chrono::{DateTime, Duration, Utc};
use poem_openapi::{Enum, Object};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::problem::Problem;

/// An amount as a client sends it: a JSON *string* ("25.00", "25,00"), never a
/// number — numbers are floats in most clients, and money is never a float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecimalText(pub String);

impl poem_openapi::types::Type for DecimalText {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        "string(decimal)".into()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        let mut schema = poem_openapi::registry::MetaSchema::new_with_format("string", "decimal");
        schema.pattern = Some(r"^\d+([.,]\d+)?$".to_owned());
        schema.example = Some(serde_json::Value::String("25.00".into()));
        poem_openapi::registry::MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl poem_openapi::types::ParseFromJSON for DecimalText {
    fn parse_from_json(value: Option<serde_json::Value>) -> poem_openapi::types::ParseResult<Self> {
        match value {
            Some(serde_json::Value::String(s)) => Ok(DecimalText(s)),
            Some(other) => Err(poem_openapi::types::ParseError::custom(format!(
                "amounts are decimal strings such as \"25.00\", not {other}"
            ))),
            None => Err(poem_openapi::types::ParseError::expected_input()),
        }
    }
}

impl poem_openapi::types::ToJSON for DecimalText {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(serde_json::Value::String(self.0.clone()))
    }
}

/// A money amount as the API writes it: the decimal at the currency's scale.
pub fn amount(m: &Money) -> String {
    m.amount().to_string()
}

pub fn parse_currency(field: &str, s: &str) -> Result<Currency, Problem> {
    s.parse::<Currency>()
        .map_err(|e| Problem::invalid(field, e.to_string()))
}

pub fn parse_amount(
    field: &str,
    text: &str,
    currency: Option<&str>,
) -> Result<AmountInput, Problem> {
    let currency = currency
        .map(|c| parse_currency("currency", c))
        .transpose()?;
    AmountInput::parse(text, currency).map_err(|e| Problem::invalid_amount(field, e.to_string()))
}

#[derive(Debug, Clone, Object)]
pub struct StatusLabel {
    pub fr: String,
    pub en: String,
}

impl StatusLabel {
    pub fn of(status: PaymentStatus) -> Self {
        StatusLabel {
            fr: status.label(Lang::Fr).to_owned(),
            en: status.label(Lang::En).to_owned(),
        }
    }
}

/// What every payment view needs beside the payment: the server's time, the warning
/// window of holds near their deadline, and whether Stripe is live (for links to its
/// dashboard).
#[derive(Clone, Copy, Debug)]
pub struct ViewContext {
    pub now: DateTime<Utc>,
    pub expiring_within: Duration,
    pub live: bool,
}

/// One refund of a payment.
#[derive(Debug, Clone, Object)]
pub struct RefundView {
    pub id: String,
    pub amount: String,
    /// pending, requires_action, succeeded, failed or canceled: a failed or cancelled
    /// refund gave its amount back to what may be refunded.
    pub status: String,
}

/// A dispute on the payment's charge (C15).
#[derive(Debug, Clone, Object)]
pub struct DisputeView {
    pub id: String,
    /// Stripe's status: warning_needs_response, warning_under_review, warning_closed,
    /// needs_response, under_review, won, lost.
    pub status: String,
    pub status_label: StatusLabel,
    pub open: bool,
    /// Stripe's reason code (fraudulent, general, …).
    pub reason: String,
    pub amount: String,
    /// When the practitioner's evidence is due.
    #[oai(nullable)]
    pub evidence_due_by: Option<DateTime<Utc>>,
    /// Funds taken from the balance (net of any reinstated).
    pub withdrawn: String,
    /// Stripe's dispute fee.
    pub fee: String,
    /// The dispute in the Stripe dashboard, where evidence is submitted.
    pub dashboard_url: String,
}

/// What reconciliation could not settle, for a person to look at.
#[derive(Debug, Clone, Object)]
pub struct AttentionView {
    pub at: DateTime<Utc>,
    pub message: String,
}

#[derive(Debug, Clone, Object)]
pub struct FailureView {
    #[oai(nullable)]
    pub code: Option<String>,
    #[oai(nullable)]
    pub decline_code: Option<String>,
    pub message: String,
}

/// A payment, with its amounts and the fee Stripe keeps.
#[derive(Debug, Clone, Object)]
pub struct PaymentView {
    pub id: Uuid,
    pub consultation_id: Uuid,
    /// incomplete, card_saved, authorized, captured, released, expired, failed,
    /// refunded, partially_refunded, disputed, dispute_lost.
    pub status: String,
    pub status_label: StatusLabel,
    /// The hold's amount: the most that may be captured.
    pub amount: String,
    /// Authorised on the card (zero before the hold).
    pub amount_held: String,
    pub amount_captured: String,
    pub amount_refunded: String,
    /// Given back to the card after a partial capture.
    pub amount_released: String,
    /// Stripe's fee: estimated from the schedule until Stripe reports it.
    pub fee: String,
    /// `estimated`, `reported`, or `none` before a capture.
    pub fee_source: String,
    /// Refunds Stripe accepted but has not confirmed yet (part of `amount_refunded`).
    pub amount_refund_pending: String,
    /// What a dispute took: funds withdrawn and Stripe's dispute fee.
    pub amount_disputed: String,
    /// captured − refunded − fee − disputed.
    pub net: String,
    #[oai(validator(pattern = r"^(EUR|USD|GBP|CHF|CAD|AUD|SEK|DKK|NOK|PLN|JPY)$"))]
    pub currency: String,
    /// The patient saved their card: the hold is placed (or renewed) off-session.
    pub card_saved: bool,
    pub refunds: Vec<RefundView>,
    #[oai(nullable)]
    pub dispute: Option<DisputeView>,
    /// What reconciliation could not settle with Stripe (shown until resolved).
    #[oai(nullable)]
    pub attention: Option<AttentionView>,
    #[oai(nullable)]
    pub capture_before: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub authorized_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub captured_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The hold's deadline is near (C10).
    pub expiring_soon: bool,
    #[oai(nullable)]
    pub failure: Option<FailureView>,
    /// A Stripe operation in flight (`capture`, `release`, `refund`).
    #[oai(nullable)]
    pub pending_operation: Option<String>,
    /// The Stripe PaymentIntent (`pi_…`), once there is one.
    #[oai(nullable)]
    pub intent_id: Option<String>,
    /// The connected account the intent lives on (`acct_…`).
    #[oai(nullable)]
    pub account_id: Option<String>,
    /// The patient's display name (in lists).
    #[oai(nullable)]
    pub patient_name: Option<String>,
    /// When the consultation starts (in lists).
    #[oai(nullable)]
    pub starts_at: Option<DateTime<Utc>>,
}

impl PaymentView {
    pub fn of(p: &Payment, ctx: ViewContext) -> Self {
        let currency = p.amount().currency();
        let zero = Money::zero(currency);
        let fee = p.fee();
        PaymentView {
            id: p.id().as_uuid(),
            consultation_id: p.consultation().as_uuid(),
            status: p.status().as_str().to_owned(),
            status_label: StatusLabel::of(p.status()),
            amount: amount(&p.amount()),
            amount_held: amount(&p.authorized().unwrap_or(zero)),
            amount_captured: amount(&p.captured().unwrap_or(zero)),
            amount_refunded: amount(&p.refunded()),
            amount_released: amount(&p.released_remainder().ok().flatten().unwrap_or(zero)),
            fee: amount(&fee.map_or(zero, |f| f.amount)),
            fee_source: match fee.map(|f| f.source) {
                Some(FeeSource::Estimated) => "estimated",
                Some(FeeSource::Reported) => "reported",
                None => "none",
            }
            .to_owned(),
            amount_refund_pending: amount(&p.refunds_pending().unwrap_or(zero)),
            amount_disputed: amount(&p.dispute_cost().unwrap_or(zero)),
            net: amount(&p.net().unwrap_or(zero)),
            currency: currency.code().to_owned(),
            card_saved: p.saved_card().is_some(),
            refunds: p
                .refunds()
                .iter()
                .map(|r| RefundView {
                    id: r.id.as_str().to_owned(),
                    amount: amount(&r.amount),
                    status: r.status.as_str().to_owned(),
                })
                .collect(),
            dispute: p.dispute().map(|d| DisputeView {
                id: d.id.as_str().to_owned(),
                status: d.status.as_str().to_owned(),
                status_label: StatusLabel {
                    fr: d.status.label(Lang::Fr).to_owned(),
                    en: d.status.label(Lang::En).to_owned(),
                },
                open: d.status.is_open(),
                reason: d.reason.clone(),
                amount: amount(&d.amount),
                evidence_due_by: d.evidence_due_by,
                withdrawn: amount(&d.withdrawn),
                fee: amount(&d.fee),
                dashboard_url: d.dashboard_url(p.account(), ctx.live),
            }),
            attention: p.attention().map(|a| AttentionView {
                at: a.at,
                message: a.message.clone(),
            }),
            capture_before: p.capture_before(),
            authorized_at: p.authorized_at(),
            captured_at: p.captured_at(),
            created_at: p.created_at(),
            updated_at: p.updated_at(),
            expiring_soon: p.is_expiring(ctx.now, ctx.expiring_within),
            failure: p.failure().map(|f| FailureView {
                code: f.code.clone(),
                decline_code: f.decline_code.clone(),
                message: f.message.clone(),
            }),
            pending_operation: p.pending().map(|op| op.operation.name().to_owned()),
            intent_id: p.intent().map(|i| i.as_str().to_owned()),
            account_id: p.account().map(|a| a.as_str().to_owned()),
            patient_name: None,
            starts_at: None,
        }
    }

    pub fn of_row(row: &PaymentRow, ctx: ViewContext) -> Self {
        PaymentView {
            patient_name: Some(row.patient.as_str().to_owned()),
            starts_at: Some(row.starts_at),
            ..PaymentView::of(&row.payment, ctx)
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct TotalsView {
    #[oai(validator(pattern = r"^(EUR|USD|GBP|CHF|CAD|AUD|SEK|DKK|NOK|PLN|JPY)$"))]
    pub currency: String,
    pub count: u64,
    pub held: String,
    pub captured: String,
    pub refunded: String,
    pub fee: String,
    /// What disputes took (funds and Stripe's fees).
    pub disputed: String,
    pub net: String,
}

impl From<&PaymentTotals> for TotalsView {
    fn from(t: &PaymentTotals) -> Self {
        TotalsView {
            currency: t.currency.code().to_owned(),
            count: t.count,
            held: amount(&t.held),
            captured: amount(&t.captured),
            refunded: amount(&t.refunded),
            fee: amount(&t.fee),
            disputed: amount(&t.disputed),
            net: amount(&t.net),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct PaymentsPageView {
    pub items: Vec<PaymentView>,
    /// Per currency, over every payment matching the filters (not only this page).
    pub totals: Vec<TotalsView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

impl PaymentsPageView {
    pub fn of(page: &PaymentPage, ctx: ViewContext) -> Self {
        PaymentsPageView {
            items: page
                .items
                .iter()
                .map(|r| PaymentView::of_row(r, ctx))
                .collect(),
            totals: page.totals.iter().map(TotalsView::from).collect(),
            next_cursor: page.next.map(|c| c.to_string()),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct HistoryView {
    pub at: DateTime<Utc>,
    pub from: String,
    pub to: String,
    pub event: String,
    #[oai(nullable)]
    pub amount: Option<String>,
    pub actor: String,
}

impl From<&HistoryEntry> for HistoryView {
    fn from(h: &HistoryEntry) -> Self {
        HistoryView {
            at: h.at,
            from: h.from.as_str().to_owned(),
            to: h.to.as_str().to_owned(),
            event: h.event.clone(),
            amount: h.amount.as_ref().map(amount),
            actor: h.actor.to_stored(),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct PaymentDetailView {
    pub payment: PaymentView,
    pub history: Vec<HistoryView>,
    /// The receipt (once captured) and credit notes (one per refund that succeeded).
    pub documents: Vec<DocumentView>,
}

/// The CSV export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum CsvFormatView {
    /// Commas, decimal points, RFC 3339 instants.
    Standard,
    /// Semicolons, decimal commas, local dates, French headers, UTF-8 BOM.
    Fr,
}

/// A consultation's pay link.
#[derive(Debug, Clone, Object)]
pub struct PayLinkView {
    #[oai(nullable)]
    pub pay_url: Option<String>,
}

/// An e-mail of the outbox and its delivery.
#[derive(Debug, Clone, Object)]
pub struct MessageView {
    pub id: Uuid,
    /// pay_link, hold_placed, receipt, credit_note, authorize_again, hold_expiring,
    /// refund_failed, dispute_opened, cancelled, rescheduled.
    pub kind: String,
    #[oai(nullable)]
    pub consultation_id: Option<Uuid>,
    pub to: String,
    pub lang: LangView,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    /// pending, sent or failed.
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    #[oai(nullable)]
    pub last_error: Option<String>,
    pub attachment: bool,
}

impl MessageView {
    pub fn of(q: &Queued) -> Self {
        let m = &q.message;
        MessageView {
            id: m.id,
            kind: m.kind.as_str().to_owned(),
            consultation_id: m.consultation.map(|c| c.as_uuid()),
            to: m.to.as_str().to_owned(),
            lang: m.lang.into(),
            subject: m.subject.clone(),
            created_at: m.created_at,
            status: q.delivery.as_str().to_owned(),
            attempts: q.attempts,
            next_attempt_at: q.next_attempt_at,
            last_error: q.last_error.clone(),
            attachment: m.attachment.is_some(),
        }
    }
}

/// A note d'honoraires or a credit note, as issued.
#[derive(Debug, Clone, Object)]
pub struct DocumentView {
    /// `receipt`, `credit_note` or `credit_note_cancellation`.
    pub kind: String,
    /// `2026-000123`: sequential per practitioner and year.
    pub number: String,
    /// A credit note's receipt.
    #[oai(nullable)]
    pub refers_to: Option<String>,
    pub amount: String,
    #[oai(validator(pattern = r"^(EUR|USD|GBP|CHF|CAD|AUD|SEK|DKK|NOK|PLN|JPY)$"))]
    pub currency: String,
    pub issued_at: DateTime<Utc>,
    /// The PDF, for staff with the same credentials.
    pub pdf_url: String,
}

impl DocumentView {
    pub fn of(d: &Document) -> Self {
        let pdf_url = format!(
            "/api/v1/payments/{}/{}",
            d.draft.payment,
            crate::documents::path(d)
        );
        DocumentView {
            kind: d.draft.kind.as_str().to_owned(),
            number: d.number.to_string(),
            refers_to: d.refers_to.map(|n| n.to_string()),
            amount: amount(&d.draft.amount),
            currency: d.draft.amount.currency().code().to_owned(),
            issued_at: d.draft.issued_at,
            pdf_url,
        }
    }
}

/// The practitioner's professional identity, printed on receipts.
#[derive(Debug, Clone, Object)]
pub struct ProfileView {
    #[oai(nullable)]
    pub profession: Option<String>,
    /// Lines separated by `\n`.
    #[oai(nullable)]
    pub address: Option<String>,
    /// RPPS (11 digits) or ADELI (9 digits).
    #[oai(nullable)]
    pub health_id: Option<String>,
    /// `RPPS` or `ADELI`.
    #[oai(nullable)]
    pub health_register: Option<String>,
    #[oai(nullable)]
    pub siret: Option<String>,
    /// What receipts print (the practitioner's own, or the default exemption).
    pub vat_mention: String,
    /// Where ConsultPay writes to the practitioner (holds about to lapse, failed
    /// refunds, disputes).
    #[oai(nullable)]
    pub email: Option<String>,
}

impl From<&Profile> for ProfileView {
    fn from(p: &Profile) -> Self {
        ProfileView {
            profession: p.profession().map(str::to_owned),
            address: p.address().map(str::to_owned),
            health_id: p.health_id().map(|h| h.number().to_owned()),
            health_register: p.health_id().map(|h| h.register().to_owned()),
            siret: p.siret().map(|s| s.as_str().to_owned()),
            vat_mention: p.vat_mention().to_owned(),
            email: p.email().map(|e| e.as_str().to_owned()),
        }
    }
}

/// The whole identity: absent or empty fields are unset (the VAT mention then prints
/// the default exemption).
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct ProfileInputView {
    #[oai(nullable)]
    pub profession: Option<String>,
    #[oai(nullable)]
    pub address: Option<String>,
    #[oai(nullable)]
    pub health_id: Option<String>,
    #[oai(nullable)]
    pub siret: Option<String>,
    #[oai(nullable)]
    pub vat_mention: Option<String>,
    #[oai(nullable)]
    pub email: Option<String>,
}

impl ProfileInputView {
    pub fn to_domain(&self) -> ProfileInput {
        let text = |o: &Option<String>| o.clone().unwrap_or_default();
        ProfileInput {
            profession: text(&self.profession),
            address: text(&self.address),
            health_id: text(&self.health_id),
            siret: text(&self.siret),
            vat_mention: text(&self.vat_mention),
            email: text(&self.email),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct AuditView {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    #[oai(nullable)]
    pub subject: Option<Uuid>,
    pub detail: String,
}

impl From<&AuditEntry> for AuditView {
    fn from(a: &AuditEntry) -> Self {
        AuditView {
            at: a.at,
            actor: a.actor.to_stored(),
            action: a.action.as_str().to_owned(),
            subject: a.subject,
            detail: a.detail.clone(),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct PayoutScheduleView {
    /// manual, daily, weekly or monthly.
    pub interval: String,
    #[oai(nullable)]
    pub weekly_anchor: Option<String>,
    #[oai(nullable)]
    pub monthly_anchor: Option<u8>,
    #[oai(nullable)]
    pub delay_days: Option<u32>,
}

/// The practitioner's Stripe link (C1) and payouts (C12).
#[derive(Debug, Clone, Object)]
pub struct StripeLinkView {
    /// unlinked, pending, linked or revoked.
    pub status: String,
    #[oai(nullable)]
    pub account_id: Option<String>,
    pub charges_enabled: bool,
    pub payouts_enabled: bool,
    pub details_submitted: bool,
    /// Why charges or payouts are off, as Stripe says.
    #[oai(nullable)]
    pub disabled_reason: Option<String>,
    /// What Stripe still needs from the practitioner.
    pub currently_due: Vec<String>,
    #[oai(nullable)]
    pub payout_schedule: Option<PayoutScheduleView>,
    #[oai(nullable)]
    pub linked_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub verified_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// unlinked (by the practitioner) or deauthorized (at Stripe).
    #[oai(nullable)]
    pub revoked_reason: Option<String>,
    /// How the account was linked: `oauth` (unlinking revokes the platform's access)
    /// or `account_links` (the platform created it; unlinking only stops ConsultPay
    /// from using it, the practitioner disconnects it in their Stripe dashboard).
    #[oai(nullable)]
    pub linked_via: Option<String>,
    /// Where the practitioner manages payouts.
    pub dashboard_url: String,
}

impl From<&StripeLink> for StripeLinkView {
    fn from(link: &StripeLink) -> Self {
        let mut view = StripeLinkView {
            status: link.status().as_str().to_owned(),
            account_id: link.account_id().map(|a| a.as_str().to_owned()),
            charges_enabled: false,
            payouts_enabled: false,
            details_submitted: false,
            disabled_reason: None,
            currently_due: vec![],
            payout_schedule: None,
            linked_at: None,
            verified_at: None,
            revoked_at: None,
            revoked_reason: None,
            linked_via: None,
            dashboard_url: "https://dashboard.stripe.com/settings/payouts".to_owned(),
        };
        match link {
            StripeLink::Linked {
                account,
                linked_at,
                verified_at,
                via,
            } => {
                view.linked_via = Some(via.as_str().to_owned());
                view.charges_enabled = account.charges_enabled;
                view.payouts_enabled = account.payouts_enabled;
                view.details_submitted = account.details_submitted;
                view.disabled_reason = account.disabled_reason.clone();
                view.currently_due = account.currently_due.clone();
                view.payout_schedule = account.payout_schedule.as_ref().map(|s| {
                    let (interval, weekly, monthly) = match &s.interval {
                        PayoutInterval::Manual => ("manual", None, None),
                        PayoutInterval::Daily => ("daily", None, None),
                        PayoutInterval::Weekly(a) => ("weekly", Some(a.clone()), None),
                        PayoutInterval::Monthly(d) => ("monthly", None, Some(*d)),
                    };
                    PayoutScheduleView {
                        interval: interval.to_owned(),
                        weekly_anchor: weekly,
                        monthly_anchor: monthly,
                        delay_days: s.delay_days,
                    }
                });
                view.linked_at = Some(*linked_at);
                view.verified_at = Some(*verified_at);
            }
            StripeLink::Revoked { at, reason, .. } => {
                view.revoked_at = Some(*at);
                view.revoked_reason = Some(reason.as_str().to_owned());
            }
            StripeLink::Pending { .. } | StripeLink::Unlinked => {}
        }
        view
    }
}

#[derive(Debug, Clone, Object)]
pub struct AuthorizeUrlView {
    /// Send the practitioner's browser here.
    pub authorize_url: String,
}

#[derive(Debug, Clone, Object)]
pub struct UrlView {
    pub url: String,
}

#[derive(Debug, Clone, Object)]
pub struct FeeScheduleView {
    /// default, standard, premium, uk, international; absent for a custom schedule.
    #[oai(nullable)]
    pub preset: Option<String>,
    /// In percent: "1.4" means 1.4 %.
    pub percent: String,
    pub fixed: String,
}

impl From<&FeeSchedule> for FeeScheduleView {
    fn from(s: &FeeSchedule) -> Self {
        FeeScheduleView {
            preset: s.preset().map(|p| p.id().to_owned()),
            percent: s.percent().to_string(),
            fixed: amount(&s.fixed()),
        }
    }
}

/// A fee schedule to set: a preset, or a custom percent and fixed amount.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct FeeScheduleInputView {
    #[oai(
        nullable,
        validator(pattern = r"^(default|standard|premium|uk|international)$")
    )]
    pub preset: Option<String>,
    #[oai(nullable)]
    pub percent: Option<DecimalText>,
    #[oai(nullable)]
    pub fixed: Option<DecimalText>,
}

impl FeeScheduleInputView {
    pub fn to_domain(&self) -> Result<FeeScheduleInput, Problem> {
        match (&self.preset, &self.percent, &self.fixed) {
            (Some(p), None, None) => p
                .parse::<FeePreset>()
                .map(FeeScheduleInput::Preset)
                .map_err(|e| Problem::invalid("fee_schedule.preset", e.to_string())),
            (None, Some(percent), Some(fixed)) => {
                let percent = percent.0.trim().parse::<Decimal>().map_err(|_| {
                    Problem::invalid("fee_schedule.percent", "a decimal number such as 1.4")
                })?;
                Ok(FeeScheduleInput::Custom {
                    percent,
                    fixed: parse_amount("fee_schedule.fixed", &fixed.0, None)?,
                })
            }
            _ => Err(Problem::unprocessable(
                "fee_schedule",
                "give either `preset`, or `percent` and `fixed`",
            )),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct FeeEstimateView {
    pub amount: String,
    pub fee: String,
    pub net: String,
    #[oai(validator(pattern = r"^(EUR|USD|GBP|CHF|CAD|AUD|SEK|DKK|NOK|PLN|JPY)$"))]
    pub currency: String,
    pub schedule: FeeScheduleView,
}

impl FeeEstimateView {
    pub fn of(amount_: &Money, schedule: &FeeSchedule, est: &FeeEstimate) -> Self {
        FeeEstimateView {
            amount: amount(amount_),
            fee: amount(&est.fee),
            net: amount(&est.net),
            currency: amount_.currency().code().to_owned(),
            schedule: schedule.into(),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct PreferencesView {
    /// Billed by default for a teleconsultation.
    pub default_amount: String,
    /// The most a consultation may be billed (the cap).
    pub max_amount: String,
    #[oai(validator(pattern = r"^(EUR|USD|GBP|CHF|CAD|AUD|SEK|DKK|NOK|PLN|JPY)$"))]
    pub currency: String,
    pub fee_schedule: FeeScheduleView,
    /// Fee and net on the default amount.
    #[oai(nullable)]
    pub default_estimate: Option<FeeEstimateView>,
    /// What receipts and the Stripe dashboard call a payment (absent: the neutral
    /// "Téléconsultation" / "Teleconsultation", with the date).
    #[oai(nullable)]
    pub payment_label: Option<String>,
    /// Appended to the account's statement descriptor on the patient's bank
    /// statement.
    #[oai(nullable)]
    pub statement_descriptor_suffix: Option<String>,
    /// Free cancellation window and missed-consultation fee.
    pub cancellation: CancellationPolicyView,
}

/// The practice's cancellation and no-show policy.
#[derive(Debug, Clone, Object)]
pub struct CancellationPolicyView {
    /// Free cancellation until this many hours before the start (0–720).
    pub free_hours: u32,
    /// What a no-show or a late cancellation costs: `none`, `fixed` (`fee_amount`,
    /// or the hold if less) or `full_hold`.
    pub fee: String,
    /// The fixed fee, in the preferences' currency.
    #[oai(nullable)]
    pub fee_amount: Option<String>,
}

impl From<&CancellationPolicy> for CancellationPolicyView {
    fn from(p: &CancellationPolicy) -> Self {
        CancellationPolicyView {
            free_hours: p.free_hours(),
            fee: p.fee().kind().to_owned(),
            fee_amount: match p.fee() {
                MissedFee::Fixed(m) => Some(amount(&m)),
                MissedFee::None | MissedFee::FullHold => None,
            },
        }
    }
}

/// A cancellation policy to set.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct CancellationPolicyInputView {
    /// Free cancellation until this many hours before the start (0–720).
    #[oai(validator(minimum(value = "0"), maximum(value = "720")))]
    pub free_hours: u32,
    /// `none`, `fixed` or `full_hold`.
    #[oai(validator(pattern = r"^(none|fixed|full_hold)$"))]
    pub fee: String,
    /// Required with `fixed`: a decimal string in the preferences' currency, at most
    /// the maximum amount.
    #[oai(nullable)]
    pub fee_amount: Option<DecimalText>,
}

impl CancellationPolicyInputView {
    pub fn to_domain(&self) -> Result<CancellationInput, Problem> {
        let fee = match (self.fee.as_str(), &self.fee_amount) {
            ("none", None) => MissedFeeInput::None,
            ("full_hold", None) => MissedFeeInput::FullHold,
            ("fixed", Some(a)) => {
                MissedFeeInput::Fixed(parse_amount("cancellation.fee_amount", &a.0, None)?)
            }
            ("fixed", None) => {
                return Err(Problem::unprocessable(
                    "cancellation.fee_amount",
                    "required with fee \"fixed\"",
                ));
            }
            ("none" | "full_hold", Some(_)) => {
                return Err(Problem::unprocessable(
                    "cancellation.fee_amount",
                    "only with fee \"fixed\"",
                ));
            }
            _ => {
                return Err(Problem::invalid(
                    "cancellation.fee",
                    "expected none, fixed or full_hold",
                ));
            }
        };
        Ok(CancellationInput {
            free_hours: self.free_hours,
            fee,
        })
    }
}

impl From<&Preferences> for PreferencesView {
    fn from(p: &Preferences) -> Self {
        let default = p.default_amount();
        PreferencesView {
            default_amount: amount(&default),
            max_amount: amount(&p.max_amount()),
            currency: p.currency().code().to_owned(),
            fee_schedule: p.fee_schedule().into(),
            default_estimate: p
                .fee_schedule()
                .estimate(&default)
                .ok()
                .map(|e| FeeEstimateView::of(&default, p.fee_schedule(), &e)),
            payment_label: p.statement().label.as_ref().map(|l| l.as_str().to_owned()),
            statement_descriptor_suffix: p
                .statement()
                .descriptor_suffix
                .as_ref()
                .map(|s| s.as_str().to_owned()),
            cancellation: p.cancellation().into(),
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct PreferencesInputView {
    pub default_amount: DecimalText,
    pub max_amount: DecimalText,
    #[oai(validator(pattern = r"^(EUR|USD|GBP|CHF|CAD|AUD|SEK|DKK|NOK|PLN|JPY)$"))]
    pub currency: String,
    /// Defaults to the `default` preset (1.4 % + 0.25).
    #[oai(nullable)]
    pub fee_schedule: Option<FeeScheduleInputView>,
    /// What receipts call a payment: absent keeps it, `""` restores the default.
    #[oai(nullable)]
    pub payment_label: Option<String>,
    /// The bank statement's descriptor suffix (≤ 22 Latin characters): absent keeps
    /// it, `""` removes it.
    #[oai(nullable)]
    pub statement_descriptor_suffix: Option<String>,
    /// The cancellation and no-show policy: absent keeps it.
    #[oai(nullable)]
    pub cancellation: Option<CancellationPolicyInputView>,
}

#[derive(Debug, Clone, Object)]
pub struct ServiceView {
    pub id: Uuid,
    pub practitioner_id: Uuid,
    pub name: String,
    pub amount: String,
    #[oai(validator(pattern = r"^(EUR|USD|GBP|CHF|CAD|AUD|SEK|DKK|NOK|PLN|JPY)$"))]
    pub currency: String,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&Service> for ServiceView {
    fn from(s: &Service) -> Self {
        ServiceView {
            id: s.id().as_uuid(),
            practitioner_id: s.practitioner().as_uuid(),
            name: s.name().as_str().to_owned(),
            amount: amount(&s.price()),
            currency: s.price().currency().code().to_owned(),
            active: s.active(),
            created_at: s.created_at(),
            updated_at: s.updated_at(),
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct ServiceInputView {
    pub name: String,
    pub amount: DecimalText,
    /// Must be the practitioner's currency if given.
    #[oai(
        validator(pattern = r"^(EUR|USD|GBP|CHF|CAD|AUD|SEK|DKK|NOK|PLN|JPY)$"),
        nullable
    )]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct ServicePatchView {
    #[oai(nullable)]
    pub name: Option<String>,
    #[oai(nullable)]
    pub amount: Option<DecimalText>,
    #[oai(
        validator(pattern = r"^(EUR|USD|GBP|CHF|CAD|AUD|SEK|DKK|NOK|PLN|JPY)$"),
        nullable
    )]
    pub currency: Option<String>,
    #[oai(nullable)]
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum PaymentModeView {
    None,
    Online,
}

/// A language ConsultPay speaks to patients in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum LangView {
    Fr,
    En,
}

impl From<LangView> for Lang {
    fn from(l: LangView) -> Lang {
        match l {
            LangView::Fr => Lang::Fr,
            LangView::En => Lang::En,
        }
    }
}

impl From<Lang> for LangView {
    fn from(l: Lang) -> LangView {
        match l {
            Lang::Fr => LangView::Fr,
            Lang::En => LangView::En,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct PatientInputView {
    pub display_name: String,
    #[oai(nullable)]
    pub email: Option<String>,
    /// The patient's language for their e-mails and documents (default fr).
    #[oai(nullable)]
    pub lang: Option<LangView>,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct PaymentChoiceView {
    pub mode: PaymentModeView,
    /// The hold's amount; else the service's price; else the default.
    #[oai(nullable)]
    pub amount: Option<DecimalText>,
    #[oai(
        validator(pattern = r"^(EUR|USD|GBP|CHF|CAD|AUD|SEK|DKK|NOK|PLN|JPY)$"),
        nullable
    )]
    pub currency: Option<String>,
    #[oai(nullable)]
    pub service_id: Option<Uuid>,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct ConsultationInputView {
    pub practitioner_id: Uuid,
    pub patient: PatientInputView,
    pub starts_at: DateTime<Utc>,
    pub payment: PaymentChoiceView,
}

#[derive(Debug, Clone, Object)]
pub struct PatientView {
    pub display_name: String,
    #[oai(nullable)]
    pub email: Option<String>,
    pub lang: LangView,
}

#[derive(Debug, Clone, Object)]
pub struct ConsultationView {
    pub id: Uuid,
    pub practitioner_id: Uuid,
    pub patient: PatientView,
    pub starts_at: DateTime<Utc>,
    /// none or online.
    pub payment_mode: String,
    #[oai(nullable)]
    pub payment: Option<PaymentView>,
    /// The waiting-room gate.
    pub can_enter: bool,
    pub created_at: DateTime<Utc>,
    /// `scheduled`, `cancelled` or `no_show`.
    pub status: String,
    /// For a cancelled consultation: who cancelled (`patient`, `practice`), when, and
    /// whether after the free window (the practitioner then decides on the fee).
    #[oai(nullable)]
    pub cancellation: Option<CancellationView>,
    /// When the patient was marked absent.
    #[oai(nullable)]
    pub no_show_at: Option<DateTime<Utc>>,
    /// When the practitioner started the consultation.
    #[oai(nullable)]
    pub started_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Object)]
pub struct CancellationView {
    /// `patient` or `practice`.
    pub by: String,
    pub at: DateTime<Utc>,
    pub late: bool,
}

impl ConsultationView {
    pub fn of(r: &ConsultationRecord, ctx: ViewContext) -> Self {
        let c = &r.consultation;
        ConsultationView {
            id: c.id.as_uuid(),
            practitioner_id: c.practitioner.as_uuid(),
            patient: PatientView {
                display_name: c.patient.display_name.as_str().to_owned(),
                email: c.patient.email.as_ref().map(|e| e.as_str().to_owned()),
                lang: c.lang.into(),
            },
            starts_at: c.starts_at,
            payment_mode: match c.payment_mode {
                PaymentMode::None => "none",
                PaymentMode::Online => "online",
            }
            .to_owned(),
            payment: r.payment.as_ref().map(|p| PaymentView::of(p, ctx)),
            can_enter: r.can_enter(),
            created_at: c.created_at,
            status: c.status.as_str().to_owned(),
            cancellation: match c.status {
                ConsultationStatus::Cancelled(x) => Some(CancellationView {
                    by: x.by.as_str().to_owned(),
                    at: x.at,
                    late: x.late,
                }),
                _ => None,
            },
            no_show_at: match c.status {
                ConsultationStatus::NoShow { at } => Some(at),
                _ => None,
            },
            started_at: c.started_at,
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct ScheduledView {
    pub id: Uuid,
    /// The patient's pay link: shown once, give it to the patient.
    pub pay_url: String,
    pub pay_token: String,
    #[oai(nullable)]
    pub payment: Option<PaymentView>,
    pub consultation: ConsultationView,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct AmountInputView {
    /// A decimal string; "0" on validate releases the hold.
    pub amount: DecimalText,
    /// Optional; must be the payment's currency.
    #[oai(
        validator(pattern = r"^(EUR|USD|GBP|CHF|CAD|AUD|SEK|DKK|NOK|PLN|JPY)$"),
        nullable
    )]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct PayView {
    pub consultation_id: Uuid,
    pub practitioner_name: String,
    pub starts_at: DateTime<Utc>,
    /// The practitioner's IANA time zone, to show the time.
    pub time_zone: String,
    /// Whether the patient must authorise a hold before entering.
    pub payment_required: bool,
    /// The amount that will be held (at most this is charged).
    #[oai(nullable)]
    pub amount: Option<String>,
    #[oai(
        validator(pattern = r"^(EUR|USD|GBP|CHF|CAD|AUD|SEK|DKK|NOK|PLN|JPY)$"),
        nullable
    )]
    pub currency: Option<String>,
    #[oai(nullable)]
    pub status: Option<String>,
    #[oai(nullable)]
    pub status_label: Option<StatusLabel>,
    #[oai(nullable)]
    pub failure: Option<FailureView>,
    pub can_enter: bool,
    /// The waiting room is still offered (the gate is open and the consultation not
    /// over); `waiting_room_url` is set only then.
    pub waiting_room: bool,
    /// The patient may (again) authorise now.
    pub can_pay: bool,
    /// When the hold will be placed, if later: the consultation is further ahead than
    /// a hold lasts, so paying saves the card and the hold is placed then.
    #[oai(nullable)]
    pub hold_from: Option<DateTime<Utc>>,
    /// Where to go once allowed in, when the operator configured it.
    #[oai(nullable)]
    pub waiting_room_url: Option<String>,
    /// `scheduled`, `cancelled` or `no_show`.
    pub consultation_status: String,
    /// The cancellation policy in the patient's words: once paid, the text they
    /// accepted; before, the one they accept by paying.
    #[oai(nullable)]
    pub cancellation_policy: Option<String>,
    /// When the patient accepted it.
    #[oai(nullable)]
    pub policy_accepted_at: Option<DateTime<Utc>>,
    /// The patient may still cancel from the link (`POST …/cancel`).
    pub can_cancel: bool,
}

#[derive(Debug, Clone, Object)]
pub struct CheckoutView {
    /// Send the patient's browser here (Stripe Checkout or the sandbox card page).
    #[oai(nullable)]
    pub redirect_url: Option<String>,
    /// For the Payment Element, when the operator chose it.
    #[oai(nullable)]
    pub client_secret: Option<String>,
    #[oai(nullable)]
    pub expires_at: Option<DateTime<Utc>>,
    /// `hold` (the amount is held now) or `save_card` (the card is saved; the hold is
    /// placed later).
    pub mode: String,
}

#[derive(Debug, Clone, Object)]
pub struct AccessView {
    /// The gate: no payment needed, or the hold is in place, or the act captured.
    pub can_enter: bool,
    /// The waiting room is still offered: the gate is open and the consultation is
    /// not over (not validated or released, not long past its start).
    pub waiting_room: bool,
    /// The practitioner has started the consultation: the patient may join.
    pub started: bool,
    /// A video platform is set up (`GET …/pass` opens its room); otherwise the
    /// practitioner calls the patient.
    pub video: bool,
    /// `scheduled`, `cancelled` or `no_show`.
    pub status: String,
    pub starts_at: DateTime<Utc>,
}

/// A pass to the consultation's video room.
#[derive(Debug, Clone, Object)]
pub struct PassView {
    /// The signed pass (a JWT the platform verifies).
    pub jwt: String,
    /// The room on the configured platform, with the pass; absent without one.
    #[oai(nullable)]
    pub url: Option<String>,
    pub room: String,
    pub expires_at: DateTime<Utc>,
}

impl From<&Pass> for PassView {
    fn from(p: &Pass) -> Self {
        PassView {
            jwt: p.jwt.clone(),
            url: p.url.clone(),
            room: p.room.as_str().to_owned(),
            expires_at: p.expires_at,
        }
    }
}

/// A consultation started, with the practitioner's pass when a platform is set up.
#[derive(Debug, Clone, Object)]
pub struct StartedView {
    pub consultation: ConsultationView,
    #[oai(nullable)]
    pub pass: Option<PassView>,
}

#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct RescheduleInputView {
    /// The new start, in the future.
    pub starts_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Object)]
pub struct RescheduledView {
    pub consultation: ConsultationView,
    /// What becomes of the hold: `not_held`, `covers` (kept as it is),
    /// `renewed_in_time` (renewed with the saved card before it lapses),
    /// `placed_in_time` (only the card is saved; the hold is placed before the new
    /// start) or `lapses` (the patient will authorise again).
    pub hold: String,
}

#[derive(Debug, Clone, Object)]
pub struct MeView {
    pub user_id: Uuid,
    pub name: String,
    /// practitioner or secretary.
    pub role: String,
    /// The practitioners whose data this user may see.
    pub practitioners: Vec<Uuid>,
}

impl MeView {
    pub fn of(actor: &Actor) -> Option<Self> {
        match actor {
            Actor::Staff(u) => Some(MeView {
                user_id: u.id.as_uuid(),
                name: u.name.clone(),
                role: u.role.kind().as_str().to_owned(),
                practitioners: u.role.practitioners().iter().map(|p| p.as_uuid()).collect(),
            }),
            _ => None,
        }
    }

    pub fn is_practitioner(actor: &Actor) -> bool {
        matches!(actor, Actor::Staff(u) if matches!(u.role, Role::Practitioner(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_keep_their_trailing_zeros() {
        let m = Money::parse("12.5", Currency::Eur).unwrap();
        assert_eq!(amount(&m), "12.50");
        assert_eq!(amount(&Money::from_minor(500, Currency::Jpy)), "500");
    }

    #[test]
    fn a_fee_schedule_input_is_a_preset_or_a_custom_pair() {
        let preset = FeeScheduleInputView {
            preset: Some("premium".into()),
            percent: None,
            fixed: None,
        };
        assert_eq!(
            preset.to_domain().unwrap(),
            FeeScheduleInput::Preset(FeePreset::Premium)
        );
        let both = FeeScheduleInputView {
            preset: Some("premium".into()),
            percent: Some(DecimalText("1.4".into())),
            fixed: Some(DecimalText("0.25".into())),
        };
        assert_eq!(both.to_domain().unwrap_err().code, "validation_failed");
        let bad_percent = FeeScheduleInputView {
            preset: None,
            percent: Some(DecimalText("lots".into())),
            fixed: Some(DecimalText("0.25".into())),
        };
        assert_eq!(
            bad_percent.to_domain().unwrap_err().field.as_deref(),
            Some("fee_schedule.percent")
        );
    }

    #[test]
    fn bad_amounts_are_invalid_amount_problems() {
        let p = parse_amount("amount", "1e3", None).unwrap_err();
        assert_eq!(
            (p.code, p.field.as_deref()),
            ("invalid_amount", Some("amount"))
        );
        let p = parse_amount("amount", "10", Some("XXX")).unwrap_err();
        assert_eq!(
            (p.code, p.field.as_deref()),
            ("validation_failed", Some("currency"))
        );
    }
}
