//! Receipts and credit notes as files, for every route that serves them (the patient's
//! pay link, the dashboard, the API): which document a path names, its file name, and
//! the PDF response.

use billing_core::receipt::{
    Document, DocumentKind, DocumentNumber, DocumentRef, DocumentService, file_name,
};
use billing_core::{BillingError, Lang};
use poem::http::header;
use poem::{IntoResponse, Response};

use crate::state::HttpState;

/// The credit note a `{number}` or `{number}.pdf` path segment names.
pub fn credit_note(segment: &str) -> Option<DocumentRef> {
    segment
        .strip_suffix(".pdf")
        .unwrap_or(segment)
        .parse::<DocumentNumber>()
        .ok()
        .map(DocumentRef::CreditNote)
}

/// Where `doc` is served, below its payment's path (`/pay/{token}`,
/// `/dashboard/payments/{id}`, `/api/v1/payments/{id}`): `receipt.pdf`, or
/// `credit-notes/{number}.pdf` for a credit note or its cancellation.
pub fn path(doc: &Document) -> String {
    match doc.draft.kind {
        DocumentKind::Receipt => "receipt.pdf".to_owned(),
        DocumentKind::CreditNote | DocumentKind::CreditNoteCancellation => {
            format!("credit-notes/{}.pdf", doc.number)
        }
    }
}

/// The PDF of the document `which` among `documents`, with its file name.
pub fn pdf(
    state: &HttpState,
    documents: &[Document],
    which: DocumentRef,
    lang: Lang,
) -> Result<(Vec<u8>, String), BillingError> {
    let doc = DocumentService::pick(documents, which)?;
    Ok((
        state.billing.documents.pdf(doc, lang)?,
        file_name(doc, lang),
    ))
}

/// A PDF shown in the browser (and saved under `name`); never cached by shared caches.
pub fn pdf_response(bytes: Vec<u8>, name: &str) -> Response {
    Response::builder()
        .content_type("application/pdf")
        .header(
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{name}\""),
        )
        .header(header::CACHE_CONTROL, "private, no-store")
        .body(bytes)
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_notes_are_named_by_number_with_or_without_the_extension() {
        let n = DocumentNumber {
            year: 2026,
            seq: 124,
        };
        assert_eq!(
            credit_note("2026-000124.pdf"),
            Some(DocumentRef::CreditNote(n))
        );
        assert_eq!(credit_note("2026-000124"), Some(DocumentRef::CreditNote(n)));
        assert_eq!(credit_note("receipt.pdf"), None);
        assert_eq!(credit_note("../2026-000124.pdf"), None);
    }
}
