//! `payments`: the payment aggregate, one row per consultation with online payment.
//! Every amount is in integer minor units of `currency`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub consultation_id: Uuid,
    pub practitioner_id: Uuid,
    pub currency: String,
    pub amount_minor: i64,
    pub fee_rate_ppm: i64,
    pub fee_fixed_minor: i64,
    pub status: String,
    pub authorized_minor: Option<i64>,
    pub captured_minor: Option<i64>,
    pub refunded_minor: i64,
    pub refund_count: i64,
    pub fee_minor: Option<i64>,
    /// `estimated` or `reported`, set with `fee_minor`.
    pub fee_source: Option<String>,
    pub account: Option<String>,
    pub intent: Option<String>,
    pub has_checkout: bool,
    pub checkout_session: Option<String>,
    pub checkout_url: Option<String>,
    pub checkout_expires_at: Option<DateTimeUtc>,
    pub checkout_setup_intent: Option<String>,
    /// Set iff the payment carries a failure.
    pub failure_message: Option<String>,
    pub failure_code: Option<String>,
    pub failure_decline_code: Option<String>,
    /// `capture`, `release` or `refund` while an operation is in flight.
    pub pending_operation: Option<String>,
    pub pending_amount_minor: Option<i64>,
    pub pending_key: Option<String>,
    pub pending_since: Option<DateTimeUtc>,
    /// The card saved for holds placed off-session: both set, or neither.
    pub saved_customer: Option<String>,
    pub saved_payment_method: Option<String>,
    /// One refund per line: `{id} {amount_minor} {status}`.
    pub refunds: Option<String>,
    /// The dispute: set together from `dispute_id` to `dispute_transactions`.
    pub dispute_id: Option<String>,
    pub dispute_status: Option<String>,
    pub dispute_reason: Option<String>,
    pub dispute_amount_minor: Option<i64>,
    pub dispute_evidence_due_by: Option<DateTimeUtc>,
    /// 0 without a dispute (summed by the totals' SQL).
    pub dispute_withdrawn_minor: i64,
    pub dispute_fee_minor: i64,
    pub dispute_transactions: Option<i64>,
    pub attention_at: Option<DateTimeUtc>,
    pub attention_message: Option<String>,
    pub authorized_at: Option<DateTimeUtc>,
    pub capture_before: Option<DateTimeUtc>,
    pub captured_at: Option<DateTimeUtc>,
    /// The cancellation policy the patient accepted, as shown to them.
    pub terms_text: Option<String>,
    pub terms_at: Option<DateTimeUtc>,
    pub terms_fee_minor: Option<i64>,
    pub terms_free_hours: Option<i32>,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::consultation::Entity",
        from = "Column::ConsultationId",
        to = "super::consultation::Column::Id"
    )]
    Consultation,
}

impl Related<super::consultation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Consultation.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
