//! `payment_totals`: per practitioner, UTC day of creation, status and currency, how
//! many payments and the sums the payments table's totals show, kept exact by a
//! trigger on `payments` (migration 9). Read only: nothing in Rust writes it.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_totals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub practitioner_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub day: Date,
    #[sea_orm(primary_key, auto_increment = false)]
    pub status: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub currency: String,
    pub count: i64,
    pub held: i64,
    pub released: i64,
    pub captured: i64,
    pub refunded: i64,
    pub fee: i64,
    pub disputed: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
