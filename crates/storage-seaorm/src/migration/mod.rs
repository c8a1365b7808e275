//! The schema, as embedded sea-orm migrations. `consultpay migrate` (through
//! [`Store::migrate`](crate::Store::migrate)) applies them; tests run them up and down.
//!
//! Migrations are plain schema statements written against table and column names,
//! never against the entities, so that an old migration keeps meaning what it meant
//! when the entities move on.

use sea_orm_migration::prelude::*;

mod m20260301_000001_initial;
mod m20261127_000002_live_connect;
mod m20261128_000003_receipts;
mod m20261128_000004_outbox;
mod m20261129_000005_consultation_day;
mod m20261201_000006_sandbox;
mod m20261207_000007_staff_sessions;
mod m20261207_000008_sign_in_links;
mod m20261208_000009_payment_totals;

/// Adds `columns` to `table`, one statement each (SQLite alters one column per
/// statement).
async fn add_columns(
    manager: &SchemaManager<'_>,
    table: impl IntoIden,
    columns: Vec<ColumnDef>,
) -> Result<(), DbErr> {
    let table = table.into_iden();
    for mut column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table.clone())
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// Drops the `columns` [`add_columns`] added to `table`.
async fn drop_columns(
    manager: &SchemaManager<'_>,
    table: impl IntoIden,
    columns: Vec<ColumnDef>,
) -> Result<(), DbErr> {
    let table = table.into_iden();
    for column in columns {
        manager
            .alter_table(
                Table::alter()
                    .table(table.clone())
                    .drop_column(column.get_column_name())
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

/// Every migration of the schema, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260301_000001_initial::Migration),
            Box::new(m20261127_000002_live_connect::Migration),
            Box::new(m20261128_000003_receipts::Migration),
            Box::new(m20261128_000004_outbox::Migration),
            Box::new(m20261129_000005_consultation_day::Migration),
            Box::new(m20261201_000006_sandbox::Migration),
            Box::new(m20261207_000007_staff_sessions::Migration),
            Box::new(m20261207_000008_sign_in_links::Migration),
            Box::new(m20261208_000009_payment_totals::Migration),
        ]
    }
}
