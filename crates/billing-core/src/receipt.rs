//! Notes d'honoraires (receipts) and avoirs (credit notes).
//!
//! A receipt is issued when a payment is captured; a credit note when one of its
//! refunds succeeds, referring to the receipt; and, should that refund fail afterwards
//! (a closed card), a cancellation of the credit note, referring to it. Both are drafted here from the payment,
//! its consultation and the practitioner's profile **as they are at that moment**,
//! and written by the storage port in the same transaction as the payment change
//! (see [`ChangeLog::documents`](crate::payment::ports::ChangeLog)). Storage gives the
//! number: sequential per practitioner and year, with no gap and no reuse, because the
//! counter moves in that transaction and rolls back with it.
//!
//! A document, once issued, never changes: it keeps its own copy of every field it
//! prints. [`sheet`] lays one out in French or English for the HTML and PDF renderers.

use std::fmt;
use std::str::FromStr;

use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc};

use crate::consultation::model::{Consultation, ConsultationStatus};
use crate::error::BillingError;
use crate::format;
use crate::ids::{PaymentId, PractitionerId, RefundId};
use crate::money::{Money, MoneyError};
use crate::payment::model::{Lang, Payment, RefundState};
use crate::practitioner::model::{Practitioner, TimeZone};
use crate::practitioner::profile::{HealthId, Siret};

/// A receipt or a credit note.
// Exhaustive on purpose: each kind has its own legal title, file name and URL in the
// adapters; a wildcard arm there would mistitle a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DocumentKind {
    /// Note d'honoraires: what the patient paid for the act.
    Receipt,
    /// Avoir: money given back on a receipt.
    CreditNote,
    /// Annulation d'avoir: the refund of a credit note did not go through; the amount
    /// stays paid.
    CreditNoteCancellation,
}

impl DocumentKind {
    /// The stable name (`receipt`, `credit_note`, `credit_note_cancellation`), stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Receipt => "receipt",
            DocumentKind::CreditNote => "credit_note",
            DocumentKind::CreditNoteCancellation => "credit_note_cancellation",
        }
    }

    /// What the document's amount does to what the patient paid.
    const fn gives_back(self) -> bool {
        matches!(self, DocumentKind::CreditNote)
    }
}

impl FromStr for DocumentKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "receipt" => Ok(DocumentKind::Receipt),
            "credit_note" => Ok(DocumentKind::CreditNote),
            "credit_note_cancellation" => Ok(DocumentKind::CreditNoteCancellation),
            _ => Err(()),
        }
    }
}

/// `2026-000123`: the year of issue and the practitioner's sequence in that year.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocumentNumber {
    /// The year of issue, in the practitioner's time zone.
    pub year: i32,
    /// The practitioner's sequence in that year, from 1.
    pub seq: u32,
}

/// Text that is not `YYYY-NNNNNN` with a sequence from 1; carries it, cut to 32
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a document number (YYYY-NNNNNN)")]
pub struct InvalidDocumentNumber(pub String);

impl fmt::Display for DocumentNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:06}", self.year, self.seq)
    }
}

impl FromStr for DocumentNumber {
    type Err = InvalidDocumentNumber;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidDocumentNumber(s.chars().take(32).collect());
        let (year, seq) = s.split_once('-').ok_or_else(bad)?;
        let digits = |t: &str, n: usize| t.len() == n && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(year, 4) || !digits(seq, 6) {
            return Err(bad());
        }
        let number = DocumentNumber {
            year: year.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        };
        if number.seq == 0 {
            return Err(bad());
        }
        Ok(number)
    }
}

/// The practitioner as the document prints them, copied at issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuer {
    /// The practitioner's name.
    pub name: String,
    /// Their profession, if set.
    pub profession: Option<String>,
    /// Lines separated by `\n`.
    pub address: Option<String>,
    /// Their RPPS or ADELI number, if set.
    pub health_id: Option<HealthId>,
    /// Their SIRET number, if set.
    pub siret: Option<Siret>,
    /// The VAT mention printed (the practitioner's, or [`DEFAULT_VAT_MENTION`]).
    ///
    /// [`DEFAULT_VAT_MENTION`]: crate::practitioner::profile::DEFAULT_VAT_MENTION
    pub vat_mention: String,
}

impl Issuer {
    /// The practitioner's profile as it is now.
    pub fn of(practitioner: &Practitioner) -> Self {
        let profile = &practitioner.profile;
        Issuer {
            name: practitioner.name.to_string(),
            profession: profile.profession().map(str::to_owned),
            address: profile.address().map(str::to_owned),
            health_id: profile.health_id().cloned(),
            siret: profile.siret().cloned(),
            vat_mention: profile.vat_mention().to_owned(),
        }
    }
}

/// Everything a document says, before storage numbers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentDraft {
    /// Receipt, credit note, or cancellation of a credit note.
    pub kind: DocumentKind,
    /// Whose sequence numbers it.
    pub practitioner: PractitionerId,
    /// The payment it is about.
    pub payment: PaymentId,
    /// The refund a credit note (or its cancellation) is for: one of each per refund.
    pub refund: Option<RefundId>,
    /// The numbering year: the year of issue in the practitioner's time zone.
    pub year: i32,
    /// The practitioner, as printed.
    pub issuer: Issuer,
    /// The patient's name, as printed.
    pub patient: String,
    /// When the act took place (the consultation's start).
    pub act_at: DateTime<Utc>,
    /// The service's name or the practitioner's label; `None` prints
    /// "Téléconsultation" / "Teleconsultation".
    pub description: Option<String>,
    /// Paid (receipt) or given back (credit note).
    pub amount: Money,
    /// When the money moved: the capture, or the refund.
    pub paid_at: DateTime<Utc>,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// The time zone dates are printed in.
    pub time_zone: TimeZone,
}

/// An issued document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// Its number, given by storage.
    pub number: DocumentNumber,
    /// A credit note's receipt, a cancellation's credit note.
    pub refers_to: Option<DocumentNumber>,
    /// What it says.
    pub draft: DocumentDraft,
}

/// What a payment change makes due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Due {
    Receipt {
        amount: Money,
        paid_at: DateTime<Utc>,
    },
    CreditNote {
        refund: RefundId,
        amount: Money,
    },
    Cancellation {
        refund: RefundId,
        amount: Money,
    },
}

/// The documents `after` makes due that `before` did not: a receipt when the payment
/// became captured, a credit note for each refund that newly succeeded, and the
/// cancellation of a credit note whose refund failed or was cancelled after it had
/// succeeded.
pub(crate) fn due(before: &Payment, after: &Payment, now: DateTime<Utc>) -> Vec<Due> {
    let mut out = Vec::new();
    if before.captured().is_none()
        && let Some(amount) = after.captured()
    {
        out.push(Due::Receipt {
            amount,
            paid_at: after.captured_at().unwrap_or(now),
        });
    }
    let succeeded_before = |id: &RefundId| {
        before
            .refunds()
            .iter()
            .any(|l| &l.id == id && l.status == RefundState::Succeeded)
    };
    let ended_before = |id: &RefundId| {
        before
            .refunds()
            .iter()
            .any(|l| &l.id == id && !l.status.is_live())
    };
    for line in after.refunds() {
        if line.status == RefundState::Succeeded && !succeeded_before(&line.id) {
            out.push(Due::CreditNote {
                refund: line.id.clone(),
                amount: line.amount,
            });
        }
        if !line.status.is_live() && succeeded_before(&line.id) && !ended_before(&line.id) {
            out.push(Due::Cancellation {
                refund: line.id.clone(),
                amount: line.amount,
            });
        }
    }
    out
}

/// What a missed consultation's fee is, in the patient's language: a receipt for
/// an absence never says a consultation took place.
fn missed_description(c: &Consultation) -> Option<String> {
    let text = match (c.status, c.lang) {
        (ConsultationStatus::NoShow { .. }, Lang::Fr) => "Frais d'absence (rendez-vous non honoré)",
        (ConsultationStatus::NoShow { .. }, Lang::En) => "No-show fee (missed appointment)",
        (ConsultationStatus::Cancelled(_), Lang::Fr) => "Frais d'annulation tardive",
        (ConsultationStatus::Cancelled(_), Lang::En) => "Late cancellation fee",
        (ConsultationStatus::Scheduled, _) => return None,
    };
    Some(text.to_owned())
}

/// The draft of what `due` asks for.
pub(crate) fn draft(
    due: Due,
    payment: &Payment,
    practitioner: &Practitioner,
    consultation: &Consultation,
    now: DateTime<Utc>,
) -> DocumentDraft {
    let (kind, refund, amount, paid_at) = match due {
        Due::Receipt { amount, paid_at } => (DocumentKind::Receipt, None, amount, paid_at),
        Due::CreditNote { refund, amount } => (DocumentKind::CreditNote, Some(refund), amount, now),
        Due::Cancellation { refund, amount } => (
            DocumentKind::CreditNoteCancellation,
            Some(refund),
            amount,
            now,
        ),
    };
    let time_zone = practitioner.time_zone;
    DocumentDraft {
        kind,
        practitioner: practitioner.id,
        payment: payment.id(),
        refund,
        year: now.with_timezone(&time_zone.tz()).year(),
        issuer: Issuer::of(practitioner),
        patient: consultation.patient.display_name.to_string(),
        act_at: consultation.starts_at,
        description: missed_description(consultation).or_else(|| {
            consultation
                .service
                .as_ref()
                .map(ToString::to_string)
                .or_else(|| {
                    practitioner
                        .preferences
                        .statement()
                        .label
                        .as_ref()
                        .map(|l| l.as_str().to_owned())
                })
        }),
        amount,
        paid_at,
        issued_at: now,
        time_zone,
    }
}

/// A document laid out in one language: what every renderer prints, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sheet {
    /// The language it is laid out in.
    pub lang: Lang,
    /// "Note d'honoraires" / "Avoir".
    pub title: String,
    /// "N° 2026-000123".
    pub number: String,
    /// "Émise le 27/11/2026".
    pub issued: String,
    /// Name, profession, address lines, RPPS/ADELI, SIRET.
    pub issuer: Vec<String>,
    /// "Patient : M. Martin".
    pub patient: String,
    /// Label, value.
    pub rows: Vec<(String, String)>,
    /// The amount line, set apart.
    pub total: (String, String),
    /// The VAT mention and, for credit notes, what it refers to.
    pub mentions: Vec<String>,
}

/// `text` cut into lines of at most `width` characters, at spaces where possible (a
/// word longer than a line stays whole).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split(' ').filter(|w| !w.is_empty()) {
            let needed =
                line.chars().count() + word.chars().count() + usize::from(!line.is_empty());
            if !line.is_empty() && needed > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// Lays `doc` out in `lang`.
pub fn sheet(doc: &Document, lang: Lang) -> Sheet {
    let d = &doc.draft;
    let tz = d.time_zone.tz();
    let fr = lang == Lang::Fr;
    let t = |fr_text: &str, en_text: &str| if fr { fr_text } else { en_text }.to_owned();
    let mut issuer = vec![d.issuer.name.clone()];
    issuer.extend(d.issuer.profession.clone());
    if let Some(address) = &d.issuer.address {
        issuer.extend(address.lines().map(str::to_owned));
    }
    issuer.extend(d.issuer.health_id.as_ref().map(ToString::to_string));
    issuer.extend(d.issuer.siret.as_ref().map(|s| format!("SIRET {s}")));
    let description = d
        .description
        .clone()
        .unwrap_or_else(|| t("Téléconsultation", "Teleconsultation"));
    let mut rows = vec![
        (
            t("Date de l'acte", "Date of the act"),
            format::date(d.act_at, tz, lang),
        ),
        (t("Prestation", "Service"), description),
        (
            t("Mode de paiement", "Payment method"),
            t("Carte bancaire, via Stripe", "Card, via Stripe"),
        ),
    ];
    let when = format::date(d.paid_at, tz, lang);
    let (title, issued, moved, total) = match d.kind {
        DocumentKind::Receipt => (
            t("Note d'honoraires", "Receipt (note d'honoraires)"),
            t("Émise le", "Issued on"),
            (t("Date du paiement", "Date of payment"), when),
            t("Montant réglé", "Amount paid"),
        ),
        DocumentKind::CreditNote => (
            t("Avoir", "Credit note (avoir)"),
            t("Émis le", "Issued on"),
            (t("Date du remboursement", "Date of refund"), when),
            t("Montant remboursé", "Amount refunded"),
        ),
        DocumentKind::CreditNoteCancellation => (
            t("Annulation d'avoir", "Credit note cancelled"),
            t("Émise le", "Issued on"),
            (
                t("Date de l'échec du remboursement", "Date the refund failed"),
                when,
            ),
            t(
                "Montant de l'avoir annulé",
                "Amount of the cancelled credit note",
            ),
        ),
    };
    rows.push(moved);
    let mut mentions = Vec::new();
    match (d.kind, doc.refers_to) {
        (DocumentKind::CreditNote, Some(n)) => mentions.push(if fr {
            format!("Avoir sur la note d'honoraires n° {n}")
        } else {
            format!("Credit note on receipt No. {n}")
        }),
        (DocumentKind::CreditNoteCancellation, n) => {
            let n = n.map(|n| n.to_string()).unwrap_or_default();
            mentions.push(if fr {
                format!(
                    "Annule l'avoir n° {n} : le remboursement n'a pas abouti, la somme reste \
                     réglée."
                )
            } else {
                format!(
                    "Cancels credit note No. {n}: the refund did not go through; the amount \
                     stays paid."
                )
            });
        }
        _ => {}
    }
    mentions.push(d.issuer.vat_mention.clone());
    if d.kind == DocumentKind::Receipt {
        mentions.push(t("Acquittée.", "Paid in full."));
    }
    let sep = if fr { "\u{a0}:" } else { ":" };
    Sheet {
        lang,
        title,
        number: format!("{} {}", t("N°", "No."), doc.number),
        issued: format!("{issued} {}", format::date(d.issued_at, tz, lang)),
        issuer,
        patient: format!("{}{sep} {}", t("Patient", "Patient"), d.patient),
        rows,
        total: (total, format::money(&d.amount, lang)),
        mentions,
    }
}

/// What a receipt leaves to the patient once credit notes (and their cancellations)
/// are counted.
pub fn net_of(documents: &[Document]) -> Result<Option<Money>, MoneyError> {
    let Some(receipt) = documents
        .iter()
        .find(|d| d.draft.kind == DocumentKind::Receipt)
    else {
        return Ok(None);
    };
    documents
        .iter()
        .filter(|d| d.draft.kind != DocumentKind::Receipt)
        .try_fold(receipt.draft.amount, |sum, d| {
            if d.draft.kind.gives_back() {
                sum.checked_sub(&d.draft.amount)
            } else {
                sum.checked_add(&d.draft.amount)
            }
        })
        .map(Some)
}

/// Why a document could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document rendering failed: {0}")]
pub struct RenderError(pub String);

/// Turns a laid-out document into a PDF (an adapter: no I/O, CPU only).
#[cfg_attr(test, mockall::automock)]
pub trait DocumentRenderer: Send + Sync {
    /// The PDF of `sheet`, printing every field in order. An error is a fault of the
    /// renderer (a font, the PDF writer), never of the sheet's content.
    fn pdf(&self, sheet: &Sheet) -> Result<Vec<u8>, RenderError>;
}

/// `note-d-honoraires-2026-000123.pdf`, `avoir-2026-000124.pdf` (or their English
/// names).
pub fn file_name(doc: &Document, lang: Lang) -> String {
    let stem = match (doc.draft.kind, lang) {
        (DocumentKind::Receipt, Lang::Fr) => "note-d-honoraires",
        (DocumentKind::Receipt, Lang::En) => "receipt",
        (DocumentKind::CreditNote, Lang::Fr) => "avoir",
        (DocumentKind::CreditNote, Lang::En) => "credit-note",
        (DocumentKind::CreditNoteCancellation, Lang::Fr) => "annulation-avoir",
        (DocumentKind::CreditNoteCancellation, Lang::En) => "credit-note-cancellation",
    };
    format!("{stem}-{}.pdf", doc.number)
}

/// Which document of a payment: its receipt, or one of its credit notes (or their
/// cancellations) by number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentRef {
    /// The payment's receipt.
    Receipt,
    /// The credit note (or credit-note cancellation) with this number.
    CreditNote(DocumentNumber),
}

impl DocumentRef {
    /// The document `self` names among a payment's documents.
    pub fn find(self, documents: &[Document]) -> Option<&Document> {
        documents.iter().find(|d| match self {
            DocumentRef::Receipt => d.draft.kind == DocumentKind::Receipt,
            DocumentRef::CreditNote(n) => d.draft.kind != DocumentKind::Receipt && d.number == n,
        })
    }
}

/// Documents as files: the PDF of a laid-out document.
#[derive(Clone)]
pub struct DocumentService {
    renderer: Arc<dyn DocumentRenderer>,
}

impl std::fmt::Debug for DocumentService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentService").finish_non_exhaustive()
    }
}

impl DocumentService {
    /// Documents rendered by `renderer`.
    pub fn new(renderer: Arc<dyn DocumentRenderer>) -> Self {
        DocumentService { renderer }
    }

    /// `doc` as a PDF in `lang`.
    pub fn pdf(&self, doc: &Document, lang: Lang) -> Result<Vec<u8>, BillingError> {
        self.render(&sheet(doc, lang))
    }

    /// A laid-out document as a PDF.
    pub fn render(&self, sheet: &Sheet) -> Result<Vec<u8>, BillingError> {
        Ok(self.renderer.pdf(sheet)?)
    }

    /// The document `which` of `documents`: [`BillingError::ReceiptNotIssued`] when
    /// the payment has no receipt yet, not found for an unknown credit note.
    pub fn pick(documents: &[Document], which: DocumentRef) -> Result<&Document, BillingError> {
        which.find(documents).ok_or(match which {
            DocumentRef::Receipt => BillingError::ReceiptNotIssued,
            DocumentRef::CreditNote(_) => BillingError::NotFound("credit note"),
        })
    }
}

#[cfg(test)]
mod tests;
