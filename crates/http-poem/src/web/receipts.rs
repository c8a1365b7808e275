//! The patient's receipt and credit notes, behind their pay link: the note
//! d'honoraires as a printable page and as PDF, credit notes as PDF. Before the
//! capture there is nothing to show: 404.

use askama::Template;
use billing_core::BillingError;
use billing_core::receipt::{Document, DocumentRef, DocumentService, Sheet, sheet};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{IntoResponse, Response, handler};

use super::{Ctx, Layout, message, render};
use crate::documents;
use crate::state::HttpState;

#[derive(Template)]
#[template(path = "receipt.html")]
struct ReceiptTemplate {
    layout: Layout,
    sheet: Sheet,
    pdf_href: String,
    back_href: String,
}

fn not_found(ctx: &Ctx) -> Response {
    message(
        ctx,
        StatusCode::NOT_FOUND,
        ctx.t.not_found_title,
        ctx.t.not_found_text,
        None,
    )
}

async fn documents_of(state: &HttpState, token: &str) -> Result<Vec<Document>, BillingError> {
    state.billing.patients.documents(token).await
}

fn answer(ctx: &Ctx, result: Result<Response, BillingError>) -> Response {
    match result {
        Ok(resp) => resp,
        Err(
            BillingError::NotFound(_) | BillingError::ReceiptNotIssued | BillingError::Access(_),
        ) => not_found(ctx),
        Err(e) => crate::problem::Problem::from(e).into_response(),
    }
}

/// `GET /pay/{token}/receipt`: the note d'honoraires as a page.
#[handler]
pub async fn receipt_page(
    ctx: Ctx,
    Path(token): Path<String>,
    Data(state): Data<&HttpState>,
) -> Response {
    let result = async {
        let docs = documents_of(state, &token).await?;
        let doc = DocumentService::pick(&docs, DocumentRef::Receipt)?;
        let sheet = sheet(doc, ctx.lang);
        Ok(render(&ReceiptTemplate {
            layout: ctx.layout(&sheet.title, None, ""),
            sheet,
            pdf_href: format!("/pay/{token}/receipt.pdf"),
            back_href: format!("/pay/{token}"),
        }))
    }
    .await;
    answer(&ctx, result)
}

/// `GET /pay/{token}/receipt.pdf`.
#[handler]
pub async fn receipt_pdf(
    ctx: Ctx,
    Path(token): Path<String>,
    Data(state): Data<&HttpState>,
) -> Response {
    let result = async {
        let docs = documents_of(state, &token).await?;
        let (pdf, name) = documents::pdf(state, &docs, DocumentRef::Receipt, ctx.lang)?;
        Ok(documents::pdf_response(pdf, &name))
    }
    .await;
    answer(&ctx, result)
}

/// `GET /pay/{token}/credit-notes/{number}.pdf`.
#[handler]
pub async fn credit_note_pdf(
    ctx: Ctx,
    Path((token, file)): Path<(String, String)>,
    Data(state): Data<&HttpState>,
) -> Response {
    let Some(which) = documents::credit_note(&file) else {
        return not_found(&ctx);
    };
    let result = async {
        let docs = documents_of(state, &token).await?;
        let (pdf, name) = documents::pdf(state, &docs, which, ctx.lang)?;
        Ok(documents::pdf_response(pdf, &name))
    }
    .await;
    answer(&ctx, result)
}
