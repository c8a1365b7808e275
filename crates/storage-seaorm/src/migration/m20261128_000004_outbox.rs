//! The e-mail outbox: one row per message, written in the transaction of the change
//! that sends it, with its delivery (status, attempts, when to try next) and its
//! claim (who is sending it, until when).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, string, string_null, text, text_null, timestamp_with_time_zone,
    timestamp_with_time_zone_null, uuid, uuid_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    PractitionerId,
    ConsultationId,
    Kind,
    Recipient,
    Lang,
    Subject,
    Body,
    AttachmentPaymentId,
    /// `receipt`, `credit_note` or `credit_note_cancellation`.
    AttachmentKind,
    AttachmentRefundId,
    Dedupe,
    CreatedAt,
    /// `pending`, `sent` or `failed`.
    Status,
    Attempts,
    NextAttemptAt,
    ClaimedBy,
    ClaimedUntil,
    SentAt,
    FailedAt,
    LastError,
}

#[derive(DeriveIden)]
enum Practitioners {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(uuid(Outbox::Id).primary_key())
                    .col(uuid(Outbox::PractitionerId))
                    .col(uuid_null(Outbox::ConsultationId))
                    .col(string(Outbox::Kind))
                    .col(string(Outbox::Recipient))
                    .col(string(Outbox::Lang))
                    .col(text(Outbox::Subject))
                    .col(text(Outbox::Body))
                    .col(uuid_null(Outbox::AttachmentPaymentId))
                    .col(string_null(Outbox::AttachmentKind))
                    .col(string_null(Outbox::AttachmentRefundId))
                    .col(string(Outbox::Dedupe).unique_key())
                    .col(timestamp_with_time_zone(Outbox::CreatedAt))
                    .col(string(Outbox::Status))
                    .col(big_integer(Outbox::Attempts).default(0))
                    .col(timestamp_with_time_zone(Outbox::NextAttemptAt))
                    .col(string_null(Outbox::ClaimedBy))
                    .col(timestamp_with_time_zone_null(Outbox::ClaimedUntil))
                    .col(timestamp_with_time_zone_null(Outbox::SentAt))
                    .col(timestamp_with_time_zone_null(Outbox::FailedAt))
                    .col(text_null(Outbox::LastError))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_outbox_practitioner")
                            .from(Outbox::Table, Outbox::PractitionerId)
                            .to(Practitioners::Table, Practitioners::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // What is due: pending messages by the time they are due.
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_due")
                    .table(Outbox::Table)
                    .col(Outbox::Status)
                    .col(Outbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        // A practitioner's latest messages.
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_practitioner_created")
                    .table(Outbox::Table)
                    .col(Outbox::PractitionerId)
                    .col(Outbox::CreatedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Outbox::Table).to_owned())
            .await
    }
}
