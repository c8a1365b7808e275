//! `payment_history`: append-only moves and recorded operations of payments.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_history")]
pub struct Model {
    /// Insertion order: ties in `at` are read back in the order they were written.
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub payment_id: Uuid,
    pub at: DateTimeUtc,
    pub from_status: String,
    pub to_status: String,
    pub event: String,
    pub amount_minor: Option<i64>,
    pub amount_currency: Option<String>,
    pub actor: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
