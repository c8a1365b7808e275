//! Receipts and credit notes: numbered in the transaction of the payment change that
//! issues them, read back per payment.
//!
//! The number comes from `document_counters` by one upsert that increments and returns
//! the practitioner's counter for the year. The row it writes stays locked until the
//! transaction ends (PostgreSQL), or the whole database does (SQLite writers queue),
//! so concurrent issuers take turns; a rolled-back transaction takes its increment
//! with it. Hence no gap and no reuse, on one server or many.

use billing_core::ids::PaymentId;
use billing_core::receipt::{Document, DocumentDraft, DocumentKind, DocumentNumber};
use billing_core::repository::RepositoryError;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder,
};

use crate::Store;
use crate::convert::{document_from_row, document_row};
use crate::entity::{document, document_counter};
use crate::store::{unavailable, write_error_by_constraint};

/// The next number of `draft`'s practitioner for its year.
async fn next_seq(
    txn: &DatabaseTransaction,
    draft: &DocumentDraft,
) -> Result<i64, RepositoryError> {
    use document_counter::Column as C;
    let upsert = Query::insert()
        .into_table(document_counter::Entity)
        .columns([C::PractitionerId, C::Year, C::Last])
        .values_panic([
            draft.practitioner.as_uuid().into(),
            draft.year.into(),
            1_i64.into(),
        ])
        .on_conflict(
            OnConflict::columns([C::PractitionerId, C::Year])
                .value(
                    C::Last,
                    Expr::col((document_counter::Entity, C::Last)).add(1),
                )
                .to_owned(),
        )
        .returning_col(C::Last)
        .to_owned();
    let row = txn
        .query_one(&upsert)
        .await
        .map_err(|e| write_error_by_constraint(e, "document", "document", "practitioner"))?
        .ok_or_else(|| RepositoryError::Corrupt("the document counter returned nothing".into()))?;
    row.try_get::<i64>("", "last").map_err(unavailable)
}

/// Numbers and stores `drafts` inside `txn`.
pub(super) async fn issue(
    txn: &DatabaseTransaction,
    drafts: &[DocumentDraft],
) -> Result<(), RepositoryError> {
    for draft in drafts {
        let seq = next_seq(txn, draft).await?;
        document::Entity::insert(sea_orm::IntoActiveModel::into_active_model(document_row(
            draft, seq,
        )?))
        .exec_without_returning(txn)
        .await
        .map_err(|e| write_error_by_constraint(e, "dedupe", "document", "document"))?;
    }
    Ok(())
}

impl Store {
    /// The receipt numbers of `payments`, in one query.
    pub(super) async fn receipt_numbers_of(
        &self,
        payments: &[PaymentId],
    ) -> Result<Vec<(PaymentId, DocumentNumber)>, RepositoryError> {
        if payments.is_empty() {
            return Ok(Vec::new());
        }
        let rows = document::Entity::find()
            .filter(document::Column::PaymentId.is_in(payments.iter().map(|p| p.as_uuid())))
            .filter(document::Column::Kind.eq(DocumentKind::Receipt.as_str()))
            .all(&self.db)
            .await
            .map_err(unavailable)?;
        rows.into_iter()
            .map(|r| {
                let seq = u32::try_from(r.seq).map_err(|_| {
                    RepositoryError::Corrupt(format!("documents: sequence {}", r.seq))
                })?;
                Ok((
                    PaymentId::from_uuid(r.payment_id),
                    DocumentNumber { year: r.year, seq },
                ))
            })
            .collect()
    }

    /// The documents of `payment`, in number order, credit notes referring to the
    /// receipt.
    pub(super) async fn documents_of(
        &self,
        payment: PaymentId,
    ) -> Result<Vec<Document>, RepositoryError> {
        let rows = document::Entity::find()
            .filter(document::Column::PaymentId.eq(payment.as_uuid()))
            .order_by_asc(document::Column::Year)
            .order_by_asc(document::Column::Seq)
            .all(&self.db)
            .await
            .map_err(unavailable)?;
        let number = |r: &document::Model| {
            Some(DocumentNumber {
                year: r.year,
                seq: u32::try_from(r.seq).ok()?,
            })
        };
        let of_kind = |kind: DocumentKind, refund: Option<&String>| {
            rows.iter()
                .find(|r| r.kind == kind.as_str() && r.refund_id.as_ref() == refund)
                .and_then(number)
        };
        let refers: Vec<Option<DocumentNumber>> = rows
            .iter()
            .map(|r| match r.kind.parse::<DocumentKind>() {
                Ok(DocumentKind::CreditNote) => of_kind(DocumentKind::Receipt, None),
                Ok(DocumentKind::CreditNoteCancellation) => {
                    of_kind(DocumentKind::CreditNote, r.refund_id.as_ref())
                }
                _ => None,
            })
            .collect();
        rows.into_iter()
            .zip(refers)
            .map(|(row, refers_to)| document_from_row(row, refers_to))
            .collect()
    }
}
