//! Invitations and password-reset links (`staff_login_links`: the hash of the link's
//! secret, whose password it sets, for which e-mail, until when), the OpenID
//! identities linked to users (`staff_identities`: issuer and subject, one user each),
//! the sign-in throttle's failures (`failed_sign_ins`: a hashed key per account or
//! address, and when), personal access tokens (`staff_tokens` gains a `name` and a
//! `last_used_at`), the staff member an outbox message is for (`outbox.user_id`: a
//! password reset's link is made for them when it is sent), and second factors (`staff_second_factors`: the TOTP secret,
//! confirmed or not, the last step accepted; `staff_recovery_codes`: hashed, spent
//! once).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer_null, big_pk_auto, string, string_null, text, timestamp_with_time_zone,
    timestamp_with_time_zone_null, uuid, uuid_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StaffLoginLinks {
    Table,
    IdHash,
    UserId,
    Purpose,
    Email,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum FailedSignIns {
    Table,
    Seq,
    KeyHash,
    At,
}

#[derive(DeriveIden)]
enum StaffIdentities {
    Table,
    Issuer,
    Subject,
    UserId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StaffSecondFactors {
    Table,
    UserId,
    Secret,
    ConfirmedAt,
    LastStep,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StaffRecoveryCodes {
    Table,
    CodeHash,
    UserId,
    SpentAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    UserId,
}

#[derive(DeriveIden)]
enum StaffTokens {
    Table,
    Name,
    LastUsedAt,
}

fn token_columns() -> Vec<ColumnDef> {
    vec![
        string_null(StaffTokens::Name),
        timestamp_with_time_zone_null(StaffTokens::LastUsedAt),
    ]
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::add_columns(manager, StaffTokens::Table, token_columns()).await?;
        // The staff member a message is for (a password reset's link is made for them
        // when it is sent).
        super::add_columns(manager, Outbox::Table, vec![uuid_null(Outbox::UserId)]).await?;
        manager
            .create_table(
                Table::create()
                    .table(StaffLoginLinks::Table)
                    .col(string(StaffLoginLinks::IdHash).primary_key())
                    .col(uuid(StaffLoginLinks::UserId))
                    .col(string(StaffLoginLinks::Purpose))
                    .col(string(StaffLoginLinks::Email))
                    .col(timestamp_with_time_zone(StaffLoginLinks::CreatedAt))
                    .col(timestamp_with_time_zone(StaffLoginLinks::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_staff_login_links_user")
                            .from(StaffLoginLinks::Table, StaffLoginLinks::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // A user's links (spent together when one is used, or the user locked out).
        manager
            .create_index(
                Index::create()
                    .name("ix_staff_login_links_user")
                    .table(StaffLoginLinks::Table)
                    .col(StaffLoginLinks::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StaffIdentities::Table)
                    .col(text(StaffIdentities::Issuer))
                    .col(text(StaffIdentities::Subject))
                    .col(uuid(StaffIdentities::UserId))
                    .col(timestamp_with_time_zone(StaffIdentities::CreatedAt))
                    // One person at one issuer is one account.
                    .primary_key(
                        Index::create()
                            .col(StaffIdentities::Issuer)
                            .col(StaffIdentities::Subject),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_staff_identities_user")
                            .from(StaffIdentities::Table, StaffIdentities::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_staff_identities_user")
                    .table(StaffIdentities::Table)
                    .col(StaffIdentities::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StaffSecondFactors::Table)
                    .col(uuid(StaffSecondFactors::UserId).primary_key())
                    .col(string(StaffSecondFactors::Secret))
                    .col(timestamp_with_time_zone_null(
                        StaffSecondFactors::ConfirmedAt,
                    ))
                    .col(big_integer_null(StaffSecondFactors::LastStep))
                    .col(timestamp_with_time_zone(StaffSecondFactors::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_staff_second_factors_user")
                            .from(StaffSecondFactors::Table, StaffSecondFactors::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StaffRecoveryCodes::Table)
                    .col(string(StaffRecoveryCodes::CodeHash).primary_key())
                    .col(uuid(StaffRecoveryCodes::UserId))
                    .col(timestamp_with_time_zone_null(StaffRecoveryCodes::SpentAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_staff_recovery_codes_user")
                            .from(StaffRecoveryCodes::Table, StaffRecoveryCodes::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_staff_recovery_codes_user")
                    .table(StaffRecoveryCodes::Table)
                    .col(StaffRecoveryCodes::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FailedSignIns::Table)
                    .col(big_pk_auto(FailedSignIns::Seq))
                    .col(string(FailedSignIns::KeyHash))
                    .col(timestamp_with_time_zone(FailedSignIns::At))
                    .to_owned(),
            )
            .await?;
        // A key's recent failures, read on every sign-in.
        manager
            .create_index(
                Index::create()
                    .name("ix_failed_sign_ins_key_at")
                    .table(FailedSignIns::Table)
                    .col(FailedSignIns::KeyHash)
                    .col(FailedSignIns::At)
                    .to_owned(),
            )
            .await?;
        // The purge, by age.
        manager
            .create_index(
                Index::create()
                    .name("ix_failed_sign_ins_at")
                    .table(FailedSignIns::Table)
                    .col(FailedSignIns::At)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::drop_columns(manager, StaffTokens::Table, token_columns()).await?;
        super::drop_columns(manager, Outbox::Table, vec![uuid_null(Outbox::UserId)]).await?;
        manager
            .drop_table(Table::drop().table(FailedSignIns::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(StaffIdentities::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(StaffRecoveryCodes::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(StaffSecondFactors::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(StaffLoginLinks::Table).to_owned())
            .await
    }
}
