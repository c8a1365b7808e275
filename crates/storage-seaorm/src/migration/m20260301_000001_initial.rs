//! The first schema: every table the repository ports need, their constraints and the
//! indexes of the product's queries.
//!
//! Money is integer minor units next to a currency code; timestamps are `timestamptz`
//! on PostgreSQL and RFC 3339 text on SQLite (both keep microseconds); ids are UUIDs.
//! Uniqueness the domain relies on is a constraint here, not a check in code.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, big_pk_auto, boolean, boolean_null, string, string_null, text,
    text_null, timestamp_with_time_zone, timestamp_with_time_zone_null, uuid, uuid_null,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Practitioners {
    Table,
    Id,
    Name,
    TimeZone,
    Currency,
    DefaultAmountMinor,
    MaxAmountMinor,
    FeeRatePpm,
    FeeFixedMinor,
    LinkStatus,
    LinkAccount,
    LinkSince,
    LinkVerifiedAt,
    LinkRevokeReason,
    ChargesEnabled,
    PayoutsEnabled,
    DetailsSubmitted,
    DisabledReason,
    CurrentlyDue,
    PayoutInterval,
    PayoutAnchor,
    PayoutDelayDays,
    AccountCurrency,
    AccountCountry,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    Role,
    PractitionerId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StaffTokens {
    Table,
    Hash,
    UserId,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum SecretaryPractitioners {
    Table,
    UserId,
    PractitionerId,
}

#[derive(DeriveIden)]
enum OauthStates {
    Table,
    Hash,
    PractitionerId,
    CreatedAt,
    ExpiresAt,
    ConsumedAt,
}

#[derive(DeriveIden)]
enum Services {
    Table,
    Id,
    PractitionerId,
    Name,
    Currency,
    PriceMinor,
    Active,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Consultations {
    Table,
    Id,
    PractitionerId,
    PatientName,
    PatientEmail,
    StartsAt,
    PaymentMode,
    PayTokenHash,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
    ConsultationId,
    PractitionerId,
    Currency,
    AmountMinor,
    FeeRatePpm,
    FeeFixedMinor,
    Status,
    AuthorizedMinor,
    CapturedMinor,
    RefundedMinor,
    RefundCount,
    FeeMinor,
    FeeSource,
    Account,
    Intent,
    HasCheckout,
    CheckoutSession,
    CheckoutUrl,
    CheckoutExpiresAt,
    FailureMessage,
    FailureCode,
    FailureDeclineCode,
    PendingOperation,
    PendingAmountMinor,
    PendingKey,
    PendingSince,
    AuthorizedAt,
    CaptureBefore,
    CapturedAt,
    Version,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PaymentHistory {
    Table,
    Seq,
    PaymentId,
    At,
    FromStatus,
    ToStatus,
    Event,
    AmountMinor,
    AmountCurrency,
    Actor,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Seq,
    At,
    PractitionerId,
    Actor,
    Action,
    Subject,
    Detail,
}

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    EventId,
    Kind,
    ReceivedAt,
    ProcessedAt,
    Outcome,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Scope,
    Key,
    Fingerprint,
    Resource,
    CreatedAt,
}

/// A foreign key that refuses to delete a referenced row (nothing is ever deleted;
/// if it were, history must not vanish with it).
fn fk(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Restrict)
        .on_update(ForeignKeyAction::Restrict)
        .to_owned()
}

fn index(name: &str, table: impl IntoIden, cols: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(Alias::new(*col));
    }
    index.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Practitioners::Table)
                    .col(uuid(Practitioners::Id).primary_key())
                    .col(text(Practitioners::Name))
                    .col(string(Practitioners::TimeZone))
                    .col(string(Practitioners::Currency))
                    .col(big_integer(Practitioners::DefaultAmountMinor))
                    .col(big_integer(Practitioners::MaxAmountMinor))
                    .col(big_integer(Practitioners::FeeRatePpm))
                    .col(big_integer(Practitioners::FeeFixedMinor))
                    .col(string(Practitioners::LinkStatus))
                    .col(string_null(Practitioners::LinkAccount))
                    .col(timestamp_with_time_zone_null(Practitioners::LinkSince))
                    .col(timestamp_with_time_zone_null(Practitioners::LinkVerifiedAt))
                    .col(string_null(Practitioners::LinkRevokeReason))
                    .col(boolean_null(Practitioners::ChargesEnabled))
                    .col(boolean_null(Practitioners::PayoutsEnabled))
                    .col(boolean_null(Practitioners::DetailsSubmitted))
                    .col(text_null(Practitioners::DisabledReason))
                    .col(text_null(Practitioners::CurrentlyDue))
                    .col(string_null(Practitioners::PayoutInterval))
                    .col(string_null(Practitioners::PayoutAnchor))
                    .col(big_integer_null(Practitioners::PayoutDelayDays))
                    .col(string_null(Practitioners::AccountCurrency))
                    .col(string_null(Practitioners::AccountCountry))
                    .col(big_integer(Practitioners::Version))
                    .col(timestamp_with_time_zone(Practitioners::CreatedAt))
                    .col(timestamp_with_time_zone(Practitioners::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // Webhooks and OAuth callbacks find the practitioner by Stripe account.
        manager
            .create_index(index(
                "ix_practitioners_link_account",
                Practitioners::Table,
                &["link_account"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(uuid(Users::Id).primary_key())
                    .col(text(Users::Name))
                    .col(string(Users::Role))
                    .col(uuid_null(Users::PractitionerId))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_users_practitioner",
                        (Users::Table, Users::PractitionerId),
                        (Practitioners::Table, Practitioners::Id),
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StaffTokens::Table)
                    .col(string(StaffTokens::Hash).primary_key())
                    .col(uuid(StaffTokens::UserId))
                    .col(timestamp_with_time_zone(StaffTokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(StaffTokens::RevokedAt))
                    .foreign_key(&mut fk(
                        "fk_staff_tokens_user",
                        (StaffTokens::Table, StaffTokens::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_staff_tokens_user",
                StaffTokens::Table,
                &["user_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SecretaryPractitioners::Table)
                    .col(uuid(SecretaryPractitioners::UserId))
                    .col(uuid(SecretaryPractitioners::PractitionerId))
                    .primary_key(
                        Index::create()
                            .col(SecretaryPractitioners::UserId)
                            .col(SecretaryPractitioners::PractitionerId),
                    )
                    .foreign_key(&mut fk(
                        "fk_secretary_practitioners_user",
                        (
                            SecretaryPractitioners::Table,
                            SecretaryPractitioners::UserId,
                        ),
                        (Users::Table, Users::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_secretary_practitioners_practitioner",
                        (
                            SecretaryPractitioners::Table,
                            SecretaryPractitioners::PractitionerId,
                        ),
                        (Practitioners::Table, Practitioners::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_secretary_practitioners_practitioner",
                SecretaryPractitioners::Table,
                &["practitioner_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OauthStates::Table)
                    .col(string(OauthStates::Hash).primary_key())
                    .col(uuid(OauthStates::PractitionerId))
                    .col(timestamp_with_time_zone(OauthStates::CreatedAt))
                    .col(timestamp_with_time_zone(OauthStates::ExpiresAt))
                    .col(timestamp_with_time_zone_null(OauthStates::ConsumedAt))
                    .foreign_key(&mut fk(
                        "fk_oauth_states_practitioner",
                        (OauthStates::Table, OauthStates::PractitionerId),
                        (Practitioners::Table, Practitioners::Id),
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Services::Table)
                    .col(uuid(Services::Id).primary_key())
                    .col(uuid(Services::PractitionerId))
                    .col(text(Services::Name))
                    .col(string(Services::Currency))
                    .col(big_integer(Services::PriceMinor))
                    .col(boolean(Services::Active))
                    .col(timestamp_with_time_zone(Services::CreatedAt))
                    .col(timestamp_with_time_zone(Services::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_services_practitioner",
                        (Services::Table, Services::PractitionerId),
                        (Practitioners::Table, Practitioners::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_services_practitioner",
                Services::Table,
                &["practitioner_id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Consultations::Table)
                    .col(uuid(Consultations::Id).primary_key())
                    .col(uuid(Consultations::PractitionerId))
                    .col(text(Consultations::PatientName))
                    .col(text_null(Consultations::PatientEmail))
                    .col(timestamp_with_time_zone(Consultations::StartsAt))
                    .col(string(Consultations::PaymentMode))
                    .col(string(Consultations::PayTokenHash))
                    .col(uuid_null(Consultations::CreatedBy))
                    .col(timestamp_with_time_zone(Consultations::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_consultations_practitioner",
                        (Consultations::Table, Consultations::PractitionerId),
                        (Practitioners::Table, Practitioners::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        // The patient's pay link opens exactly one consultation.
        manager
            .create_index(
                index(
                    "ux_consultations_pay_token_hash",
                    Consultations::Table,
                    &["pay_token_hash"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        // The agenda: a practitioner's consultations from a date, soonest first.
        manager
            .create_index(index(
                "ix_consultations_practitioner_starts_at",
                Consultations::Table,
                &["practitioner_id", "starts_at"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .col(uuid(Payments::Id).primary_key())
                    .col(uuid(Payments::ConsultationId))
                    .col(uuid(Payments::PractitionerId))
                    .col(string(Payments::Currency))
                    .col(big_integer(Payments::AmountMinor))
                    .col(big_integer(Payments::FeeRatePpm))
                    .col(big_integer(Payments::FeeFixedMinor))
                    .col(string(Payments::Status))
                    .col(big_integer_null(Payments::AuthorizedMinor))
                    .col(big_integer_null(Payments::CapturedMinor))
                    .col(big_integer(Payments::RefundedMinor))
                    .col(big_integer(Payments::RefundCount))
                    .col(big_integer_null(Payments::FeeMinor))
                    .col(string_null(Payments::FeeSource))
                    .col(string_null(Payments::Account))
                    .col(string_null(Payments::Intent))
                    .col(boolean(Payments::HasCheckout))
                    .col(string_null(Payments::CheckoutSession))
                    .col(text_null(Payments::CheckoutUrl))
                    .col(timestamp_with_time_zone_null(Payments::CheckoutExpiresAt))
                    .col(text_null(Payments::FailureMessage))
                    .col(string_null(Payments::FailureCode))
                    .col(string_null(Payments::FailureDeclineCode))
                    .col(string_null(Payments::PendingOperation))
                    .col(big_integer_null(Payments::PendingAmountMinor))
                    .col(string_null(Payments::PendingKey))
                    .col(timestamp_with_time_zone_null(Payments::PendingSince))
                    .col(timestamp_with_time_zone_null(Payments::AuthorizedAt))
                    .col(timestamp_with_time_zone_null(Payments::CaptureBefore))
                    .col(timestamp_with_time_zone_null(Payments::CapturedAt))
                    .col(big_integer(Payments::Version))
                    .col(timestamp_with_time_zone(Payments::CreatedAt))
                    .col(timestamp_with_time_zone(Payments::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_payments_consultation",
                        (Payments::Table, Payments::ConsultationId),
                        (Consultations::Table, Consultations::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_payments_practitioner",
                        (Payments::Table, Payments::PractitionerId),
                        (Practitioners::Table, Practitioners::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        // One payment per consultation.
        manager
            .create_index(
                index(
                    "ux_payments_consultation",
                    Payments::Table,
                    &["consultation_id"],
                )
                .unique()
                .to_owned(),
            )
            .await?;
        // The payments table (C8): a practitioner's payments newest first, by date
        // range, continued after a (created_at, id) cursor.
        manager
            .create_index(index(
                "ix_payments_practitioner_created",
                Payments::Table,
                &["practitioner_id", "created_at", "id"],
            ))
            .await?;
        // The same with a status filter.
        manager
            .create_index(index(
                "ix_payments_practitioner_status_created",
                Payments::Table,
                &["practitioner_id", "status", "created_at"],
            ))
            .await?;
        // The operator's view over every practitioner.
        manager
            .create_index(index(
                "ix_payments_created",
                Payments::Table,
                &["created_at", "id"],
            ))
            .await?;
        // Holds near or past their capture deadline (C10).
        manager
            .create_index(index(
                "ix_payments_status_capture_before",
                Payments::Table,
                &["status", "capture_before"],
            ))
            .await?;
        // Reconciliation: operations in flight, and transient payments by last update.
        manager
            .create_index(index(
                "ix_payments_pending_since",
                Payments::Table,
                &["pending_since"],
            ))
            .await?;
        manager
            .create_index(index(
                "ix_payments_status_updated",
                Payments::Table,
                &["status", "updated_at"],
            ))
            .await?;
        // Webhooks find the payment by PaymentIntent.
        manager
            .create_index(index("ix_payments_intent", Payments::Table, &["intent"]))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PaymentHistory::Table)
                    .col(big_pk_auto(PaymentHistory::Seq))
                    .col(uuid(PaymentHistory::PaymentId))
                    .col(timestamp_with_time_zone(PaymentHistory::At))
                    .col(string(PaymentHistory::FromStatus))
                    .col(string(PaymentHistory::ToStatus))
                    .col(string(PaymentHistory::Event))
                    .col(big_integer_null(PaymentHistory::AmountMinor))
                    .col(string_null(PaymentHistory::AmountCurrency))
                    .col(string(PaymentHistory::Actor))
                    .foreign_key(&mut fk(
                        "fk_payment_history_payment",
                        (PaymentHistory::Table, PaymentHistory::PaymentId),
                        (Payments::Table, Payments::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "ix_payment_history_payment",
                PaymentHistory::Table,
                &["payment_id", "seq"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(big_pk_auto(AuditLog::Seq))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(uuid(AuditLog::PractitionerId))
                    .col(string(AuditLog::Actor))
                    .col(string(AuditLog::Action))
                    .col(uuid_null(AuditLog::Subject))
                    .col(text(AuditLog::Detail))
                    .foreign_key(&mut fk(
                        "fk_audit_log_practitioner",
                        (AuditLog::Table, AuditLog::PractitionerId),
                        (Practitioners::Table, Practitioners::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        // A practitioner's most recent entries.
        manager
            .create_index(index(
                "ix_audit_log_practitioner_at",
                AuditLog::Table,
                &["practitioner_id", "at", "seq"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookEvents::Table)
                    .col(string(WebhookEvents::EventId).primary_key())
                    .col(string(WebhookEvents::Kind))
                    .col(timestamp_with_time_zone(WebhookEvents::ReceivedAt))
                    .col(timestamp_with_time_zone_null(WebhookEvents::ProcessedAt))
                    .col(text_null(WebhookEvents::Outcome))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(string(IdempotencyKeys::Scope))
                    .col(string(IdempotencyKeys::Key))
                    .col(text(IdempotencyKeys::Fingerprint))
                    .col(uuid_null(IdempotencyKeys::Resource))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(IdempotencyKeys::Scope)
                            .col(IdempotencyKeys::Key),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children before parents; indexes go with their tables.
        for table in [
            IdempotencyKeys::Table.into_iden(),
            WebhookEvents::Table.into_iden(),
            AuditLog::Table.into_iden(),
            PaymentHistory::Table.into_iden(),
            Payments::Table.into_iden(),
            Consultations::Table.into_iden(),
            Services::Table.into_iden(),
            OauthStates::Table.into_iden(),
            SecretaryPractitioners::Table.into_iden(),
            StaffTokens::Table.into_iden(),
            Users::Table.into_iden(),
            Practitioners::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        // DDL is transactional on both engines: a failed migration leaves no half schema.
        Some(true)
    }
}
