//! `consultations`: scheduled teleconsultations; the pay token is stored hashed.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "consultations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub practitioner_id: Uuid,
    pub patient_name: String,
    pub patient_email: Option<String>,
    pub starts_at: DateTimeUtc,
    /// `none` or `online`.
    pub payment_mode: String,
    #[sea_orm(unique)]
    pub pay_token_hash: String,
    /// The live generation of the pay link (reissuing moves it on).
    pub pay_link_generation: i64,
    /// The chosen service's name, if any.
    pub service_name: Option<String>,
    /// `fr` or `en`.
    pub patient_lang: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    /// `scheduled`, `cancelled` or `no_show`.
    pub status: String,
    pub status_at: Option<DateTimeUtc>,
    /// `patient` or `practice`.
    pub cancelled_by: Option<String>,
    pub cancellation_late: bool,
    pub started_at: Option<DateTimeUtc>,
    pub rescheduled_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_one = "super::payment::Entity")]
    Payment,
}

impl Related<super::payment::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Payment.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
