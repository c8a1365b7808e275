//! `documents`: issued notes d'honoraires and credit notes, each a copy of what it
//! prints, keyed by its number.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "documents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub practitioner_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub year: i32,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    /// `receipt` or `credit_note`.
    pub kind: String,
    pub payment_id: Uuid,
    pub refund_id: Option<String>,
    /// `receipt` or `credit_note:{refund}`: unique per payment.
    pub dedupe: String,
    pub issuer_name: String,
    pub issuer_profession: Option<String>,
    pub issuer_address: Option<String>,
    /// The RPPS (11 digits) or ADELI (9 digits) number.
    pub issuer_health_id: Option<String>,
    pub issuer_siret: Option<String>,
    pub vat_mention: String,
    pub patient_name: String,
    pub act_at: DateTimeUtc,
    pub description: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
    pub paid_at: DateTimeUtc,
    pub issued_at: DateTimeUtc,
    pub time_zone: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
