//! The consultation's day: its status (scheduled, cancelled by whom and whether
//! late, no-show), when the practitioner started it and when the practice last moved
//! it; the practice's cancellation
//! policy; and, with each payment, the policy the patient accepted and when.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer_null, boolean, integer, integer_null, string, string_null, text_null,
    timestamp_with_time_zone_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Consultations {
    Table,
    /// `scheduled`, `cancelled` or `no_show`.
    Status,
    /// When it was cancelled or marked absent.
    StatusAt,
    /// `patient` or `practice`, for a cancellation.
    CancelledBy,
    /// A patient's cancellation after the free window.
    CancellationLate,
    StartedAt,
    /// When the practice last moved it.
    RescheduledAt,
}

#[derive(DeriveIden)]
enum Practitioners {
    Table,
    CancelFreeHours,
    /// `none`, `fixed` or `full_hold`.
    MissedFee,
    MissedFeeMinor,
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    TermsText,
    TermsAt,
    TermsFeeMinor,
    TermsFreeHours,
}

impl Migration {
    fn consultation_columns() -> Vec<ColumnDef> {
        vec![
            string(Consultations::Status)
                .default("scheduled")
                .to_owned(),
            timestamp_with_time_zone_null(Consultations::StatusAt),
            string_null(Consultations::CancelledBy),
            boolean(Consultations::CancellationLate)
                .default(false)
                .to_owned(),
            timestamp_with_time_zone_null(Consultations::StartedAt),
            timestamp_with_time_zone_null(Consultations::RescheduledAt),
        ]
    }

    fn practitioner_columns() -> Vec<ColumnDef> {
        vec![
            integer(Practitioners::CancelFreeHours)
                .default(24)
                .to_owned(),
            string(Practitioners::MissedFee).default("none").to_owned(),
            big_integer_null(Practitioners::MissedFeeMinor),
        ]
    }

    fn payment_columns() -> Vec<ColumnDef> {
        vec![
            text_null(Payments::TermsText),
            timestamp_with_time_zone_null(Payments::TermsAt),
            big_integer_null(Payments::TermsFeeMinor),
            integer_null(Payments::TermsFreeHours),
        ]
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::add_columns(manager, Consultations::Table, Self::consultation_columns()).await?;
        super::add_columns(manager, Practitioners::Table, Self::practitioner_columns()).await?;
        super::add_columns(manager, Payments::Table, Self::payment_columns()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::drop_columns(manager, Payments::Table, Self::payment_columns()).await?;
        super::drop_columns(manager, Practitioners::Table, Self::practitioner_columns()).await?;
        super::drop_columns(manager, Consultations::Table, Self::consultation_columns()).await
    }
}
