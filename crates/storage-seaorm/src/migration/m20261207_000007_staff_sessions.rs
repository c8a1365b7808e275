//! Dashboard sign-in: the e-mail and password hash a staff user signs in with
//! (`staff_logins`), and sessions kept by the server (`staff_sessions`): the hash of
//! the cookie's random token, who it signs in, the staff token they signed in with if
//! any (a session of a revoked token is not found), and when it was opened, last used
//! and ends.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string, string_null, text, timestamp_with_time_zone, uuid};

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
enum StaffLogins {
    Table,
    UserId,
    Email,
    PasswordHash,
    UpdatedAt,
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
                    .table(StaffLogins::Table)
                    .col(uuid(StaffLogins::UserId).primary_key())
                    // In lower case: one account per address, whatever its case.
                    .col(string(StaffLogins::Email).unique_key())
                    .col(text(StaffLogins::PasswordHash))
                    .col(timestamp_with_time_zone(StaffLogins::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_staff_logins_user")
                            .from(StaffLogins::Table, StaffLogins::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StaffSessions::Table)
                    .col(string(StaffSessions::IdHash).primary_key())
                    .col(uuid(StaffSessions::UserId))
                    .col(string_null(StaffSessions::CredentialHash))
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
            .await?;
        manager
            .drop_table(Table::drop().table(StaffLogins::Table).to_owned())
            .await
    }
}
