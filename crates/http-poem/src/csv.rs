//! The payments table as CSV (C8), streamed page by page. Cells that a spreadsheet
//! would run as a formula are neutralised (patient names are typed by people).

use billing_core::access::Actor;
use billing_core::format;
use billing_core::payment::model::Lang;
use std::collections::HashMap;

use billing_core::ids::PaymentId;
use billing_core::payment::ports::{PaymentPage, PaymentRow};
use billing_core::payment::service::PaymentFilter;
use billing_core::receipt::DocumentNumber;
use billing_core::{Billing, BillingError};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use hyper::body::Bytes;
use poem::{Body, Response};

use crate::wire::amount;

pub fn lang(requested: Option<&str>) -> Lang {
    match requested {
        Some(l) if l.eq_ignore_ascii_case("en") => Lang::En,
        _ => Lang::Fr,
    }
}

/// Which spreadsheets the file is made for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsvFormat {
    /// Commas, decimal points, RFC 3339 instants, machine headers: for programs.
    Standard,
    /// What French accounting software and Excel in French read: semicolons, decimal
    /// commas, local dates and times, French headers, a UTF-8 byte-order mark.
    Fr,
}

impl CsvFormat {
    /// `fr`, else the standard format.
    pub fn parse(requested: Option<&str>) -> CsvFormat {
        match requested {
            Some(f) if f.eq_ignore_ascii_case("fr") => CsvFormat::Fr,
            _ => CsvFormat::Standard,
        }
    }

    fn separator(self) -> u8 {
        match self {
            CsvFormat::Standard => b',',
            CsvFormat::Fr => b';',
        }
    }
}

const COLUMNS: [(&str, &str); 15] = [
    ("payment_id", "Paiement"),
    ("consultation_id", "Consultation"),
    ("created_at", "Créé le"),
    ("starts_at", "Date de la consultation"),
    ("patient", "Patient"),
    ("status", "Statut"),
    ("status_label", "Libellé du statut"),
    ("amount_held", "Empreinte"),
    ("amount_captured", "Débité"),
    ("amount_refunded", "Remboursé"),
    ("fee", "Frais Stripe"),
    ("net", "Net"),
    ("currency", "Devise"),
    ("capture_before", "Date limite de capture"),
    ("receipt_number", "N° de note d'honoraires"),
];

/// A cell a spreadsheet will not evaluate.
fn safe(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

fn line(cells: &[String], format: CsvFormat) -> String {
    let mut w = csv::WriterBuilder::new()
        .delimiter(format.separator())
        .from_writer(vec![]);
    // Writing to a Vec cannot fail.
    let _ = w.write_record(cells);
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// The first line (after the byte-order mark, in the French format).
pub fn header(format: CsvFormat) -> String {
    match format {
        CsvFormat::Standard => line(&COLUMNS.map(|(c, _)| c.to_owned()), format),
        CsvFormat::Fr => format!(
            "\u{feff}{}",
            line(&COLUMNS.map(|(_, h)| h.to_owned()), format)
        ),
    }
}

/// How one export writes its rows.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub format: CsvFormat,
    pub lang: Lang,
    /// The time zone of the French format's dates and times.
    pub tz: Tz,
}

pub fn row(r: &PaymentRow, receipt: Option<&DocumentNumber>, l: Layout) -> String {
    let p = &r.payment;
    let currency = p.amount().currency();
    let zero = billing_core::Money::zero(currency);
    let money = |m: &billing_core::Money| match l.format {
        CsvFormat::Standard => amount(m),
        CsvFormat::Fr => format::input(m, Lang::Fr),
    };
    let instant = |at: DateTime<Utc>| match l.format {
        CsvFormat::Standard => at.to_rfc3339(),
        CsvFormat::Fr => format::datetime_short(at, l.tz, Lang::Fr),
    };
    line(
        &[
            p.id().to_string(),
            p.consultation().to_string(),
            instant(p.created_at()),
            instant(r.starts_at),
            safe(r.patient.as_str()),
            p.status().as_str().to_owned(),
            p.status().label(l.lang).to_owned(),
            money(&p.authorized().unwrap_or(zero)),
            money(&p.captured().unwrap_or(zero)),
            money(&p.refunded()),
            money(&p.fee().map_or(zero, |f| f.amount)),
            money(&p.net().unwrap_or(zero)),
            currency.code().to_owned(),
            p.capture_before().map(instant).unwrap_or_default(),
            receipt.map(ToString::to_string).unwrap_or_default(),
        ],
        l.format,
    )
}

/// Rows per page read from storage while streaming.
const PAGE: u32 = 200;

/// How a CSV download is named.
pub const DISPOSITION: &str = "attachment; filename=\"payments.csv\"";

/// Where a streamed export stands.
struct Export {
    billing: Billing,
    actor: Actor,
    filter: PaymentFilter,
    layout: Layout,
    /// The page read and not yet written (the first is read before the answer starts).
    ready: Option<(PaymentPage, HashMap<PaymentId, DocumentNumber>)>,
    /// The header, written with the first chunk.
    header: Option<String>,
    done: bool,
}

/// The filtered payments table as a CSV body, streamed page by page: the memory it
/// takes is one page's, whatever the number of rows. The first page is read before
/// the answer starts, so a refusal (access, filters) is a problem document; a storage
/// failure later cuts the download short (the chunked body is not terminated, so the
/// client sees it fail), never a file that silently misses rows.
pub async fn stream(
    billing: &Billing,
    actor: &Actor,
    mut filter: PaymentFilter,
    layout: Layout,
) -> Result<Body, BillingError> {
    filter.limit = Some(PAGE);
    // The file has no totals line: no page sums every match.
    filter.without_totals = true;
    let first = billing
        .reporting
        .payments_with_receipts(actor, &filter)
        .await?;
    let export = Export {
        billing: billing.clone(),
        actor: actor.clone(),
        filter,
        layout,
        ready: Some(first),
        header: Some(header(layout.format)),
        done: false,
    };
    let chunks = futures_util::stream::unfold(export, |mut e| async move {
        if e.done {
            return None;
        }
        let (page, receipts) = match e.ready.take() {
            Some(page) => page,
            None => match e
                .billing
                .reporting
                .payments_with_receipts(&e.actor, &e.filter)
                .await
            {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(error = %err, "CSV export cut short");
                    e.done = true;
                    return Some((Err(std::io::Error::other(err.to_string())), e));
                }
            },
        };
        let mut chunk = e.header.take().unwrap_or_default();
        for r in &page.items {
            chunk.push_str(&row(r, receipts.get(&r.payment.id()), e.layout));
        }
        match page.next {
            Some(next) => e.filter.cursor = Some(next),
            None => e.done = true,
        }
        Some((Ok(Bytes::from(chunk)), e))
    });
    Ok(Body::from_bytes_stream(chunks))
}

/// A CSV download.
pub fn response(body: Body) -> Response {
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
            line(&["a,b".into(), "say \"hi\"".into()], CsvFormat::Standard),
            "\"a,b\",\"say \"\"hi\"\"\"\n"
        );
        assert_eq!(
            line(&["a,b".into(), "c;d".into()], CsvFormat::Fr),
            "a,b;\"c;d\"\n"
        );
    }

    #[test]
    fn the_header_names_every_column() {
        assert!(header(CsvFormat::Standard).starts_with("payment_id,consultation_id,created_at"));
        assert!(
            header(CsvFormat::Standard)
                .trim_end()
                .ends_with("receipt_number")
        );
        let fr = header(CsvFormat::Fr);
        assert!(
            fr.starts_with("\u{feff}Paiement;Consultation;Créé le;"),
            "{fr}"
        );
        assert!(fr.trim_end().ends_with("N° de note d'honoraires"), "{fr}");
        assert_eq!(CsvFormat::parse(Some("FR")), CsvFormat::Fr);
        assert_eq!(CsvFormat::parse(None), CsvFormat::Standard);
    }
}
