//! `practitioners`: the practitioner aggregate, its preferences and its Stripe link
//! flattened into one row.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "practitioners")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    pub time_zone: String,
    /// ISO 4217 code of the preferences (default, maximum, fixed fee).
    pub currency: String,
    pub default_amount_minor: i64,
    pub max_amount_minor: i64,
    /// The fee percentage in parts per million of the amount (1.4 % = 14 000).
    pub fee_rate_ppm: i64,
    pub fee_fixed_minor: i64,
    /// `unlinked`, `pending`, `linked` or `revoked`.
    pub link_status: String,
    pub link_account: Option<String>,
    /// Pending since, linked at, or revoked at, depending on `link_status`.
    pub link_since: Option<DateTimeUtc>,
    pub link_verified_at: Option<DateTimeUtc>,
    pub link_revoke_reason: Option<String>,
    pub charges_enabled: Option<bool>,
    pub payouts_enabled: Option<bool>,
    pub details_submitted: Option<bool>,
    pub disabled_reason: Option<String>,
    /// Stripe's `currently_due`, one requirement per line (NULL when empty).
    pub currently_due: Option<String>,
    /// `manual`, `daily`, `weekly` or `monthly`; NULL when Stripe gave no schedule.
    pub payout_interval: Option<String>,
    pub payout_anchor: Option<String>,
    pub payout_delay_days: Option<i64>,
    pub account_currency: Option<String>,
    pub account_country: Option<String>,
    /// `oauth` or `account_links` for a linked account (null: linked by OAuth before
    /// this column existed).
    pub link_via: Option<String>,
    pub payment_label: Option<String>,
    pub statement_descriptor_suffix: Option<String>,
    pub profession: Option<String>,
    pub professional_address: Option<String>,
    /// The RPPS (11 digits) or ADELI (9 digits) number.
    pub health_id: Option<String>,
    pub siret: Option<String>,
    /// The practitioner's own VAT mention; null prints the default.
    pub vat_mention: Option<String>,
    /// Where the practitioner's notifications go.
    pub contact_email: Option<String>,
    /// Free cancellation until this many hours before the start.
    pub cancel_free_hours: i32,
    /// `none`, `fixed` or `full_hold`.
    pub missed_fee: String,
    /// The fixed fee, in minor units of the preferences' currency.
    pub missed_fee_minor: Option<i64>,
    pub version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
