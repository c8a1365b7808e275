//! Live Stripe Connect over time (C14, C15): a payment's saved card, its refunds one by
//! one, its dispute, what reconciliation could not settle; how a practitioner's account
//! was linked and what their patients' statements say.
//!
//! Every column is added as nullable, or with a default, so existing rows stay valid:
//! a payment without these facts is one that never had them. SQLite alters one column
//! per statement.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, big_integer_null, string_null, text_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Payments {
    Table,
    /// The SetupIntent the Payment Element saves the card with.
    CheckoutSetupIntent,
    SavedCustomer,
    SavedPaymentMethod,
    /// One refund per line: `{id} {amount_minor} {status}`.
    Refunds,
    DisputeId,
    DisputeStatus,
    DisputeReason,
    DisputeAmountMinor,
    DisputeEvidenceDueBy,
    /// Funds withdrawn net of reinstated, and Stripe's dispute fees: 0 without a
    /// dispute, so the totals' SQL sums them as they are.
    DisputeWithdrawnMinor,
    DisputeFeeMinor,
    DisputeTransactions,
    AttentionAt,
    AttentionMessage,
}

#[derive(DeriveIden)]
enum Practitioners {
    Table,
    /// `oauth` or `account_links`; null (linked before this column) means OAuth.
    LinkVia,
    PaymentLabel,
    StatementDescriptorSuffix,
}

fn timestamp_null<T: IntoIden>(name: T) -> ColumnDef {
    sea_orm_migration::schema::timestamp_with_time_zone_null(name)
}

impl Migration {
    fn payment_columns() -> Vec<ColumnDef> {
        vec![
            string_null(Payments::CheckoutSetupIntent),
            string_null(Payments::SavedCustomer),
            string_null(Payments::SavedPaymentMethod),
            text_null(Payments::Refunds),
            string_null(Payments::DisputeId),
            string_null(Payments::DisputeStatus),
            string_null(Payments::DisputeReason),
            big_integer_null(Payments::DisputeAmountMinor),
            timestamp_null(Payments::DisputeEvidenceDueBy),
            big_integer(Payments::DisputeWithdrawnMinor)
                .default(0)
                .to_owned(),
            big_integer(Payments::DisputeFeeMinor).default(0).to_owned(),
            big_integer_null(Payments::DisputeTransactions),
            timestamp_null(Payments::AttentionAt),
            text_null(Payments::AttentionMessage),
        ]
    }

    fn practitioner_columns() -> Vec<ColumnDef> {
        vec![
            string_null(Practitioners::LinkVia),
            string_null(Practitioners::PaymentLabel),
            string_null(Practitioners::StatementDescriptorSuffix),
        ]
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::add_columns(manager, Payments::Table, Self::payment_columns()).await?;
        super::add_columns(manager, Practitioners::Table, Self::practitioner_columns()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::drop_columns(manager, Payments::Table, Self::payment_columns()).await?;
        super::drop_columns(manager, Practitioners::Table, Self::practitioner_columns()).await?;
        Ok(())
    }
}
