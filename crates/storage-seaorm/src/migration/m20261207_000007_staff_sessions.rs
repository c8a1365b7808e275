//! Dashboard sessions kept by the server: the hash of the cookie's random token, who it
//! signs in, the staff token they signed in with (a session of a revoked token is not
//! found), and when it was opened, last used and ends.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string, timestamp_with_time_zone, uuid};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StaffSessions {
    Table,
    IdHash,
    UserId,
    CredentialHash,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum StaffTokens {
    Table,
    Hash,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StaffSessions::Table)
                    .col(string(StaffSessions::IdHash).primary_key())
                    .col(uuid(StaffSessions::UserId))
                    .col(string(StaffSessions::CredentialHash))
                    .col(timestamp_with_time_zone(StaffSessions::CreatedAt))
                    .col(timestamp_with_time_zone(StaffSessions::LastSeenAt))
                    .col(timestamp_with_time_zone(StaffSessions::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_staff_sessions_user")
                            .from(StaffSessions::Table, StaffSessions::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_staff_sessions_credential")
                            .from(StaffSessions::Table, StaffSessions::CredentialHash)
                            .to(StaffTokens::Table, StaffTokens::Hash),
                    )
                    .to_owned(),
            )
            .await?;
        // A user's sessions (the list, sign out everywhere, token replacement).
        manager
            .create_index(
                Index::create()
                    .name("ix_staff_sessions_user")
                    .table(StaffSessions::Table)
                    .col(StaffSessions::UserId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(StaffSessions::Table).to_owned())
            .await
    }
}
