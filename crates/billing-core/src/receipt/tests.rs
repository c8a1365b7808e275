//! What a payment change issues, what a document says, and how it reads.

use chrono::Duration;

use super::*;
use crate::payment::model::{PaymentEvent, RefundLine};
use crate::practitioner::model::{PaymentLabel, StatementText};
use crate::practitioner::profile::{Profile, ProfileInput};
use crate::test_support::*;

fn refund(id: &str, minor: i64, status: RefundState) -> RefundLine {
    RefundLine {
        id: RefundId::parse(id).unwrap(),
        amount: eur(minor),
        status,
    }
}

fn psychologist() -> Practitioner {
    let mut p = practitioner();
    p.profile = Profile::parse(&ProfileInput {
        profession: "Psychologue".into(),
        address: "12 rue des Lilas\n75011 Paris".into(),
        health_id: "10000000009".into(),
        siret: "73282932000074".into(),
        vat_mention: String::new(),
        email: String::new(),
    })
    .unwrap();
    p
}

fn issued(due: Due, p: &Payment, practitioner: &Practitioner) -> Document {
    let consultation = record(Some(p.clone())).consultation;
    Document {
        number: DocumentNumber {
            year: 2026,
            seq: 123,
        },
        refers_to: None,
        draft: draft(due, p, practitioner, &consultation, now()),
    }
}

#[test]
fn a_capture_issues_one_receipt_for_what_was_captured() {
    let before = authorized();
    let after = captured(1800);
    assert_eq!(
        due(&before, &after, now()),
        vec![Due::Receipt {
            amount: eur(1800),
            paid_at: after.captured_at().unwrap()
        }]
    );
    assert_eq!(
        due(&after, &after, now()),
        vec![],
        "nothing new, nothing issued"
    );
    assert_eq!(
        due(&authorized(), &released(), now()),
        vec![],
        "a release pays nothing"
    );
}

#[test]
fn a_credit_note_is_issued_when_a_refund_succeeds_once() {
    let paid = captured(1800);
    let pending = step(
        &paid,
        PaymentEvent::RefundIssued(refund("re_1", 500, RefundState::Pending)),
    );
    assert_eq!(due(&paid, &pending, now()), vec![], "not yet given back");
    let succeeded = step(
        &pending,
        PaymentEvent::RefundsReported(vec![refund("re_1", 500, RefundState::Succeeded)]),
    );
    let note = Due::CreditNote {
        refund: RefundId::parse("re_1").unwrap(),
        amount: eur(500),
    };
    assert_eq!(due(&pending, &succeeded, now()), vec![note.clone()]);
    assert_eq!(due(&paid, &succeeded, now()), vec![note]);
    assert_eq!(due(&succeeded, &succeeded, now()), vec![]);
}

#[test]
fn the_draft_copies_the_practitioner_and_the_consultation_as_they_are() {
    let p = captured(1800);
    let doc = issued(
        Due::Receipt {
            amount: eur(1800),
            paid_at: now(),
        },
        &p,
        &psychologist(),
    );
    let d = &doc.draft;
    assert_eq!(d.kind, DocumentKind::Receipt);
    assert_eq!((d.payment, d.practitioner, d.year), (PAYMENT, DR, 2026));
    assert_eq!(d.issuer.name, "Dr Estival");
    assert_eq!(d.issuer.profession.as_deref(), Some("Psychologue"));
    assert_eq!(
        d.issuer.vat_mention,
        crate::practitioner::profile::DEFAULT_VAT_MENTION
    );
    assert_eq!(d.patient, "M. Martin");
    assert_eq!(d.act_at, now() + Duration::days(1));
    assert_eq!(d.description, None);
}

#[test]
fn the_description_is_the_service_else_the_label_else_teleconsultation() {
    let p = captured(1800);
    let mut labelled = psychologist();
    labelled.preferences = labelled.preferences.clone().with_statement(StatementText {
        label: Some(PaymentLabel::parse("Séance").unwrap()),
        descriptor_suffix: None,
    });
    let receipt = || Due::Receipt {
        amount: eur(1800),
        paid_at: now(),
    };
    let doc = issued(receipt(), &p, &labelled);
    assert_eq!(doc.draft.description.as_deref(), Some("Séance"));
    let mut consultation = record(Some(p.clone())).consultation;
    consultation.service = Some(crate::contact::DisplayName::parse("Bilan").unwrap());
    let with_service = draft(receipt(), &p, &labelled, &consultation, now());
    assert_eq!(with_service.description.as_deref(), Some("Bilan"));
    let plain = issued(receipt(), &p, &psychologist());
    assert_eq!(sheet(&plain, Lang::Fr).rows[1].1, "Téléconsultation");
    assert_eq!(sheet(&plain, Lang::En).rows[1].1, "Teleconsultation");
}

#[test]
fn a_receipt_reads_as_french_practice_requires() {
    let doc = issued(
        Due::Receipt {
            amount: eur(1800),
            paid_at: now(),
        },
        &captured(1800),
        &psychologist(),
    );
    let s = sheet(&doc, Lang::Fr);
    assert_eq!(s.title, "Note d'honoraires");
    assert_eq!(s.number, "N° 2026-000123");
    assert_eq!(s.issued, "Émise le 02/11/2026");
    assert_eq!(
        s.issuer,
        [
            "Dr Estival",
            "Psychologue",
            "12 rue des Lilas",
            "75011 Paris",
            "RPPS 10000000009",
            "SIRET 73282932000074"
        ]
    );
    assert_eq!(s.patient, "Patient\u{a0}: M. Martin");
    assert_eq!(s.total, ("Montant réglé".into(), "18,00\u{a0}€".into()));
    assert!(s.rows.contains(&(
        "Mode de paiement".into(),
        "Carte bancaire, via Stripe".into()
    )));
    assert!(
        s.rows
            .contains(&("Date de l'acte".into(), "03/11/2026".into()))
    );
    assert!(
        s.mentions
            .contains(&"TVA non applicable, article 261-4-1° du CGI".into())
    );
    let en = sheet(&doc, Lang::En);
    assert_eq!(en.total, ("Amount paid".into(), "€18.00".into()));
    assert_eq!(en.issued, "Issued on 2 November 2026");
}

#[test]
fn a_credit_note_names_its_receipt() {
    let mut doc = issued(
        Due::CreditNote {
            refund: RefundId::parse("re_1").unwrap(),
            amount: eur(500),
        },
        &captured(1800),
        &psychologist(),
    );
    doc.refers_to = Some(DocumentNumber { year: 2026, seq: 7 });
    let s = sheet(&doc, Lang::Fr);
    assert_eq!(s.title, "Avoir");
    assert!(s.issued.starts_with("Émis le"), "{}", s.issued);
    assert_eq!(s.total, ("Montant remboursé".into(), "5,00\u{a0}€".into()));
    assert_eq!(
        s.mentions[0],
        "Avoir sur la note d'honoraires n° 2026-000007"
    );
    assert_eq!(
        sheet(&doc, Lang::En).mentions[0],
        "Credit note on receipt No. 2026-000007"
    );
}

#[test]
fn numbers_print_and_parse_as_year_and_six_digits() {
    let n = DocumentNumber {
        year: 2026,
        seq: 123,
    };
    assert_eq!(n.to_string(), "2026-000123");
    assert_eq!("2026-000123".parse(), Ok(n));
    for bad in [
        "",
        "2026",
        "2026-123",
        "2026-0001234",
        "26-000123",
        "2026-000000",
        "2026-00012a",
    ] {
        assert!(bad.parse::<DocumentNumber>().is_err(), "{bad}");
    }
}

#[test]
fn the_net_is_the_receipt_less_its_credit_notes() {
    let p = captured(1800);
    let receipt = issued(
        Due::Receipt {
            amount: eur(1800),
            paid_at: now(),
        },
        &p,
        &psychologist(),
    );
    let note = issued(
        Due::CreditNote {
            refund: RefundId::parse("re_1").unwrap(),
            amount: eur(500),
        },
        &p,
        &psychologist(),
    );
    assert_eq!(net_of(&[]), Ok(None));
    assert_eq!(net_of(&[receipt, note]), Ok(Some(eur(1300))));
}

#[test]
fn long_text_wraps_at_spaces_and_keeps_its_lines() {
    assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
    assert_eq!(wrap("short", 95), ["short"]);
    assert_eq!(wrap("", 10), Vec::<String>::new());
    assert_eq!(wrap("unbreakablewordhere", 5), ["unbreakablewordhere"]);
    assert_eq!(wrap("one\ntwo  three", 20), ["one", "two three"]);
}

#[test]
fn a_refund_that_fails_after_its_credit_note_cancels_it() {
    let paid = captured(1800);
    let done = step(
        &paid,
        PaymentEvent::RefundIssued(refund("re_1", 500, RefundState::Succeeded)),
    );
    let failed = step(
        &done,
        PaymentEvent::RefundsReported(vec![refund("re_1", 500, RefundState::Failed)]),
    );
    let cancel = Due::Cancellation {
        refund: RefundId::parse("re_1").unwrap(),
        amount: eur(500),
    };
    assert_eq!(due(&done, &failed, now()), vec![cancel.clone()]);
    assert_eq!(due(&failed, &failed, now()), vec![]);
    let never_succeeded = step(
        &paid,
        PaymentEvent::RefundIssued(refund("re_2", 500, RefundState::Pending)),
    );
    let refused = step(
        &never_succeeded,
        PaymentEvent::RefundsReported(vec![refund("re_2", 500, RefundState::Failed)]),
    );
    assert_eq!(
        due(&never_succeeded, &refused, now()),
        vec![],
        "no credit note to cancel"
    );

    let mut doc = issued(cancel, &failed, &psychologist());
    doc.refers_to = Some(DocumentNumber {
        year: 2026,
        seq: 124,
    });
    let s = sheet(&doc, Lang::Fr);
    assert_eq!(s.title, "Annulation d'avoir");
    assert!(
        s.mentions[0].starts_with("Annule l'avoir n° 2026-000124"),
        "{:?}",
        s.mentions
    );
    let receipt = issued(
        Due::Receipt {
            amount: eur(1800),
            paid_at: now(),
        },
        &paid,
        &psychologist(),
    );
    let note = issued(
        Due::CreditNote {
            refund: RefundId::parse("re_1").unwrap(),
            amount: eur(500),
        },
        &done,
        &psychologist(),
    );
    assert_eq!(
        net_of(&[receipt, note, doc]),
        Ok(Some(eur(1800))),
        "paid in full again"
    );
}
