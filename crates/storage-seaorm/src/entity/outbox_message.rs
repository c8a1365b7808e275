//! `outbox`: e-mail to send, with its delivery and its claim.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub practitioner_id: Uuid,
    pub consultation_id: Option<Uuid>,
    /// The staff member a message is for (a password reset), if any.
    pub user_id: Option<Uuid>,
    pub kind: String,
    pub recipient: String,
    /// `fr` or `en`.
    pub lang: String,
    pub subject: String,
    pub body: String,
    pub attachment_payment_id: Option<Uuid>,
    pub attachment_kind: Option<String>,
    pub attachment_refund_id: Option<String>,
    #[sea_orm(unique)]
    pub dedupe: String,
    pub created_at: DateTimeUtc,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: DateTimeUtc,
    pub claimed_by: Option<String>,
    pub claimed_until: Option<DateTimeUtc>,
    pub sent_at: Option<DateTimeUtc>,
    pub failed_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
