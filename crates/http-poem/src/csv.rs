//! The payments table as CSV (C8). Cells that a spreadsheet would run as a formula are
//! neutralised (patient names are typed by people).

use billing_core::access::Actor;
use billing_core::payment::model::Lang;
use billing_core::payment::ports::PaymentRow;
use billing_core::payment::service::PaymentFilter;
use billing_core::{Billing, BillingError};
use poem::Response;

use crate::wire::amount;

pub fn lang(requested: Option<&str>) -> Lang {
    match requested {
        Some(l) if l.eq_ignore_ascii_case("en") => Lang::En,
        _ => Lang::Fr,
    }
}

const COLUMNS: [&str; 14] = [
    "payment_id",
    "consultation_id",
    "created_at",
    "starts_at",
    "patient",
    "status",
    "status_label",
    "amount_held",
    "amount_captured",
    "amount_refunded",
    "fee",
    "net",
    "currency",
    "capture_before",
];

/// A cell a spreadsheet will not evaluate.
fn safe(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

fn line(cells: &[String]) -> String {
    let mut w = csv::WriterBuilder::new().from_writer(vec![]);
    // Writing to a Vec cannot fail.
    let _ = w.write_record(cells);
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

pub fn header(_lang: Lang) -> String {
    line(&COLUMNS.map(str::to_owned))
}

pub fn row(r: &PaymentRow, lang: Lang) -> String {
    let p = &r.payment;
    let currency = p.amount().currency();
    let zero = billing_core::Money::zero(currency);
    line(&[
        p.id().to_string(),
        p.consultation().to_string(),
        p.created_at().to_rfc3339(),
        r.starts_at.to_rfc3339(),
        safe(r.patient.as_str()),
        p.status().as_str().to_owned(),
        p.status().label(lang).to_owned(),
        amount(&p.authorized().unwrap_or(zero)),
        amount(&p.captured().unwrap_or(zero)),
        amount(&p.refunded()),
        amount(&p.fee().map_or(zero, |f| f.amount)),
        amount(&p.net().unwrap_or(zero)),
        currency.code().to_owned(),
        p.capture_before()
            .map(|d| d.to_rfc3339())
            .unwrap_or_default(),
    ])
}

/// At most this many pages of 200 rows in one export (100 000 payments).
const MAX_PAGES: usize = 500;

/// How a CSV download is named.
pub const DISPOSITION: &str = "attachment; filename=\"payments.csv\"";

/// Every page of the filtered payments table as one CSV document. An export that would
/// exceed [`MAX_PAGES`] is refused (narrow the dates) rather than silently cut short.
pub async fn export(
    billing: &Billing,
    actor: &Actor,
    mut filter: PaymentFilter,
    lang: Lang,
) -> Result<String, BillingError> {
    filter.limit = Some(200);
    let mut out = header(lang);
    for _ in 0..MAX_PAGES {
        let page = billing.reporting.payments(actor, &filter).await?;
        for r in &page.items {
            out.push_str(&row(r, lang));
        }
        match page.next {
            Some(next) => filter.cursor = Some(next),
            None => return Ok(out),
        }
    }
    Err(BillingError::Validation {
        field: "to",
        message: "more than 100000 payments match: narrow the date range".into(),
    })
}

/// A CSV download.
pub fn response(body: String) -> Response {
    Response::builder()
        .content_type("text/csv; charset=utf-8")
        .header("content-disposition", DISPOSITION)
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_quotes_escaped() {
        assert_eq!(safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(safe("Dupont"), "Dupont");
        assert_eq!(
            line(&["a,b".into(), "say \"hi\"".into()]),
            "\"a,b\",\"say \"\"hi\"\"\"\n"
        );
    }

    #[test]
    fn the_header_names_every_column() {
        assert!(header(Lang::Fr).starts_with("payment_id,consultation_id,created_at"));
    }
}
