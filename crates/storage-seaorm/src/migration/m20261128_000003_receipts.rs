//! Notes d'honoraires and credit notes: the documents themselves (each a copy of what
//! it prints), the per-practitioner, per-year counter that numbers them, the
//! practitioner's professional identity, and the consultation's service and patient
//! language.
//!
//! A document's key is its number (practitioner, year, sequence), so a number can
//! never be used twice; `dedupe` (`receipt`, or `credit_note:{refund}`) makes a second
//! receipt of a payment, or a second credit note of a refund, a unique violation.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, integer, string, string_null, text, text_null, timestamp_with_time_zone, uuid,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Documents {
    Table,
    PractitionerId,
    Year,
    Seq,
    Kind,
    PaymentId,
    RefundId,
    Dedupe,
    IssuerName,
    IssuerProfession,
    IssuerAddress,
    IssuerHealthId,
    IssuerSiret,
    VatMention,
    PatientName,
    ActAt,
    Description,
    AmountMinor,
    Currency,
    PaidAt,
    IssuedAt,
    TimeZone,
}

#[derive(DeriveIden)]
enum DocumentCounters {
    Table,
    PractitionerId,
    Year,
    Last,
}

#[derive(DeriveIden)]
enum Practitioners {
    Table,
    Id,
    Profession,
    ProfessionalAddress,
    HealthId,
    Siret,
    VatMention,
    ContactEmail,
}

#[derive(DeriveIden)]
enum Consultations {
    Table,
    ServiceName,
    PatientLang,
    PayLinkGeneration,
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
}

impl Migration {
    fn practitioner_columns() -> Vec<ColumnDef> {
        vec![
            string_null(Practitioners::Profession),
            text_null(Practitioners::ProfessionalAddress),
            string_null(Practitioners::HealthId),
            string_null(Practitioners::Siret),
            string_null(Practitioners::VatMention),
            string_null(Practitioners::ContactEmail),
        ]
    }

    fn consultation_columns() -> Vec<ColumnDef> {
        vec![
            string_null(Consultations::ServiceName),
            string(Consultations::PatientLang).default("fr").to_owned(),
            big_integer(Consultations::PayLinkGeneration)
                .default(0)
                .to_owned(),
        ]
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::add_columns(manager, Practitioners::Table, Self::practitioner_columns()).await?;
        super::add_columns(manager, Consultations::Table, Self::consultation_columns()).await?;
        manager
            .create_table(
                Table::create()
                    .table(DocumentCounters::Table)
                    .col(uuid(DocumentCounters::PractitionerId))
                    .col(integer(DocumentCounters::Year))
                    .col(big_integer(DocumentCounters::Last))
                    .primary_key(
                        Index::create()
                            .col(DocumentCounters::PractitionerId)
                            .col(DocumentCounters::Year),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_document_counters_practitioner")
                            .from(DocumentCounters::Table, DocumentCounters::PractitionerId)
                            .to(Practitioners::Table, Practitioners::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Documents::Table)
                    .col(uuid(Documents::PractitionerId))
                    .col(integer(Documents::Year))
                    .col(big_integer(Documents::Seq))
                    .col(string(Documents::Kind))
                    .col(uuid(Documents::PaymentId))
                    .col(string_null(Documents::RefundId))
                    .col(string(Documents::Dedupe))
                    .col(string(Documents::IssuerName))
                    .col(string_null(Documents::IssuerProfession))
                    .col(text_null(Documents::IssuerAddress))
                    .col(string_null(Documents::IssuerHealthId))
                    .col(string_null(Documents::IssuerSiret))
                    .col(text(Documents::VatMention))
                    .col(string(Documents::PatientName))
                    .col(timestamp_with_time_zone(Documents::ActAt))
                    .col(string_null(Documents::Description))
                    .col(big_integer(Documents::AmountMinor))
                    .col(string(Documents::Currency))
                    .col(timestamp_with_time_zone(Documents::PaidAt))
                    .col(timestamp_with_time_zone(Documents::IssuedAt))
                    .col(string(Documents::TimeZone))
                    .primary_key(
                        Index::create()
                            .col(Documents::PractitionerId)
                            .col(Documents::Year)
                            .col(Documents::Seq),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_documents_payment")
                            .from(Documents::Table, Documents::PaymentId)
                            .to(Payments::Table, Payments::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_documents_payment_dedupe")
                    .table(Documents::Table)
                    .col(Documents::PaymentId)
                    .col(Documents::Dedupe)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Documents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(DocumentCounters::Table).to_owned())
            .await?;
        super::drop_columns(manager, Consultations::Table, Self::consultation_columns()).await?;
        super::drop_columns(manager, Practitioners::Table, Self::practitioner_columns()).await?;
        Ok(())
    }
}
