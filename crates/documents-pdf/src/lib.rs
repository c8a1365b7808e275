//! # documents-pdf
//!
//! ConsultPay's PDF adapter: implements `billing-core`'s
//! [`DocumentRenderer`] port. It prints a laid-out note d'honoraires or credit note
//! ([`Sheet`]) on one A4 page with [krilla](https://docs.rs/krilla), in process, with
//! no browser and no external service. The DejaVu Sans fonts are embedded in the
//! binary (and subset into each PDF), so French accents, `€` and the narrow
//! no-break spaces of French amounts render the same on every machine.
//!
//! Coordinates are points from the top-left corner of the page; the arithmetic on
//! them is layout, never money (which arrives already formatted in the sheet).

#![allow(clippy::float_arithmetic)]

use billing_core::receipt::{DocumentRenderer, RenderError, Sheet, wrap};
use krilla::Document;
use krilla::geom::{PathBuilder, Point};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::Stroke;
use krilla::text::{Font, TextDirection};

static REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 56.0;
const VALUE_X: f32 = 250.0;
/// Characters per line before text wraps: a full line (DejaVu Sans at 9–11 pt), and
/// the value column of the table (10 pt from `VALUE_X`).
const WRAP_AT: usize = 90;
const VALUE_WRAP_AT: usize = 50;
/// Label column width, in characters.
const LABEL_WRAP_AT: usize = 32;

/// Renders sheets as PDF with the embedded fonts. Cheap to share: the fonts are parsed
/// once.
#[derive(Clone)]
pub struct PdfRenderer {
    regular: Font,
    bold: Font,
}

impl std::fmt::Debug for PdfRenderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdfRenderer").finish_non_exhaustive()
    }
}

impl PdfRenderer {
    /// Parses the embedded fonts.
    pub fn new() -> Result<Self, RenderError> {
        let font = |data: &'static [u8]| {
            Font::new(data.into(), 0)
                .ok_or_else(|| RenderError("the embedded font cannot be read".into()))
        };
        Ok(PdfRenderer {
            regular: font(REGULAR)?,
            bold: font(BOLD)?,
        })
    }
}

/// A cursor going down the page.
struct Pen<'a> {
    surface: krilla::surface::Surface<'a>,
    y: f32,
}

impl Pen<'_> {
    fn text(&mut self, x: f32, font: &Font, size: f32, text: &str) {
        self.surface.draw_text(
            Point::from_xy(x, self.y),
            font.clone(),
            size,
            text,
            false,
            TextDirection::Auto,
        );
    }

    /// A label and its value, each wrapped in its column.
    fn table_row(&mut self, font: &Font, size: f32, label: &str, value: &str) {
        let labels = wrap(label, LABEL_WRAP_AT);
        let values = wrap(value, VALUE_WRAP_AT);
        for i in 0..labels.len().max(values.len()).max(1) {
            if let Some(l) = labels.get(i) {
                self.text(MARGIN, font, size, l);
            }
            if let Some(v) = values.get(i) {
                self.text(VALUE_X, font, size, v);
            }
            self.y += size * 1.45;
        }
        self.y += size * 0.15;
    }

    fn line(&mut self, size: f32, font: &Font, text: &str) {
        self.text(MARGIN, font, size, text);
        self.y += size * 1.45;
    }

    fn rule(&mut self) {
        let mut path = PathBuilder::new();
        path.move_to(MARGIN, self.y);
        path.line_to(PAGE_W - MARGIN, self.y);
        if let Some(path) = path.finish() {
            self.surface.set_stroke(Some(Stroke {
                width: 0.5,
                ..Stroke::default()
            }));
            self.surface.draw_path(&path);
            self.surface.set_stroke(None);
        }
        self.y += 18.0;
    }

    fn skip(&mut self, points: f32) {
        self.y += points;
    }

    fn finish(self) {
        self.surface.finish();
    }
}

impl DocumentRenderer for PdfRenderer {
    fn pdf(&self, sheet: &Sheet) -> Result<Vec<u8>, RenderError> {
        let mut document = Document::new();
        document.set_metadata(
            Metadata::new()
                .title(format!("{} {}", sheet.title, sheet.number))
                .language(sheet.lang.code().to_owned())
                .creator("ConsultPay".to_owned()),
        );
        let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
            .ok_or_else(|| RenderError("invalid page size".into()))?;
        let mut page = document.start_page_with(settings);
        let mut pen = Pen {
            surface: page.surface(),
            y: MARGIN + 10.0,
        };
        let (regular, bold) = (&self.regular, &self.bold);

        for (i, text) in sheet.issuer.iter().enumerate() {
            for line in wrap(text, WRAP_AT) {
                pen.line(10.0, if i == 0 { bold } else { regular }, &line);
            }
        }
        pen.skip(18.0);
        pen.line(20.0, bold, &sheet.title);
        pen.line(11.0, regular, &sheet.number);
        pen.line(10.0, regular, &sheet.issued);
        pen.skip(8.0);
        pen.rule();
        for line in wrap(&sheet.patient, WRAP_AT) {
            pen.line(11.0, regular, &line);
        }
        pen.skip(6.0);
        for (label, value) in &sheet.rows {
            pen.table_row(regular, 10.0, label, value);
        }
        pen.skip(4.0);
        pen.rule();
        pen.table_row(bold, 12.0, &sheet.total.0, &sheet.total.1);
        pen.skip(14.0);
        for mention in &sheet.mentions {
            for line in wrap(mention, WRAP_AT) {
                pen.line(9.0, regular, &line);
            }
        }
        pen.finish();
        page.finish();
        document.finish().map_err(|e| RenderError(format!("{e:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sheet_becomes_a_one_page_pdf_with_the_fonts_subset_in() -> Result<(), RenderError> {
        let sheet = Sheet {
            lang: billing_core::Lang::Fr,
            title: "Note d'honoraires".into(),
            number: "N° 2026-000001".into(),
            issued: "Émise le 27/11/2026".into(),
            issuer: vec!["Dr Estival".into(), "Psychologue".into()],
            patient: "Patient\u{a0}: Mme Hélène Müller".into(),
            rows: vec![(
                "Prestation".into(),
                "Bilan psychologique approfondi avec entretien familial et restitution écrite"
                    .into(),
            )],
            total: ("Montant réglé".into(), "18,00\u{a0}€".into()),
            mentions: vec!["TVA non applicable, article 261-4-1° du CGI".into()],
        };
        let pdf = PdfRenderer::new()?.pdf(&sheet)?;
        assert!(pdf.starts_with(b"%PDF-"), "a PDF file");
        assert!(
            pdf.windows(9).any(|w| w == b"/FontFile"),
            "the font is embedded"
        );
        assert!(
            pdf.len() < 120_000,
            "fonts are subset, not embedded whole: {} bytes",
            pdf.len()
        );
        Ok(())
    }
}
