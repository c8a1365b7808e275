//! The sandbox gateway's objects (intents, sessions, stored answers…) and its head: the
//! version of the latest write and the test clock's offset, in one row every sandbox
//! write locks.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, integer, string, text};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SandboxHead {
    Table,
    Id,
    Version,
    ClockOffsetMicros,
}

#[derive(DeriveIden)]
enum SandboxObjects {
    Table,
    Kind,
    Id,
    Version,
    Body,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SandboxHead::Table)
                    .col(integer(SandboxHead::Id).primary_key())
                    .col(big_integer(SandboxHead::Version))
                    .col(big_integer(SandboxHead::ClockOffsetMicros))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(SandboxHead::Table)
                    .columns([
                        SandboxHead::Id,
                        SandboxHead::Version,
                        SandboxHead::ClockOffsetMicros,
                    ])
                    .values_panic([1.into(), 0_i64.into(), 0_i64.into()])
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SandboxObjects::Table)
                    .col(string(SandboxObjects::Kind))
                    .col(string(SandboxObjects::Id))
                    .col(big_integer(SandboxObjects::Version))
                    .col(text(SandboxObjects::Body))
                    .primary_key(
                        Index::create()
                            .col(SandboxObjects::Kind)
                            .col(SandboxObjects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // What changed since a version.
        manager
            .create_index(
                Index::create()
                    .name("ix_sandbox_objects_version")
                    .table(SandboxObjects::Table)
                    .col(SandboxObjects::Version)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SandboxObjects::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(SandboxHead::Table).to_owned())
            .await
    }
}
