//! `failed_sign_ins`: one row per failed sign-in and key (an account or an address,
//! hashed), for the throttle.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "failed_sign_ins")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub seq: i64,
    pub key_hash: String,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
