//! What a change writes to whom, and how delivery treats the mail server's answers.

use chrono::Duration;

use super::compose::{Notice, message, notices, pay_link};
use super::*;
use crate::payment::model::{DisputeStatus, PaymentEvent, RefundLine, RefundState};
use crate::practitioner::profile::{Profile, ProfileInput};
use crate::receipt::{Document, DocumentDraft, DocumentNumber, Issuer};
use crate::test_support::*;

fn refund(id: &str, minor: i64, status: RefundState) -> RefundLine {
    RefundLine {
        id: RefundId::parse(id).unwrap(),
        amount: eur(minor),
        status,
    }
}

fn with_email(
    mut r: crate::consultation::model::ConsultationRecord,
    lang: Lang,
) -> crate::consultation::model::ConsultationRecord {
    r.consultation.patient.email = Some(EmailAddress::parse("martin@example.org").unwrap());
    r.consultation.lang = lang;
    r
}

fn reachable_dr() -> Practitioner {
    let mut p = practitioner();
    p.profile = Profile::parse(&ProfileInput {
        email: "cabinet@example.org".into(),
        ..ProfileInput::default()
    })
    .unwrap();
    p
}

use crate::practitioner::model::Practitioner;

/// The notices of a change, with the documents it issues.
fn notices_of(
    before: &crate::payment::model::Payment,
    after: &crate::payment::model::Payment,
) -> Vec<Notice> {
    notices(before, after, &crate::receipt::due(before, after, now()))
}

#[test]
fn each_change_calls_for_its_own_notices_once() {
    use Notice::*;
    let held = authorized();
    assert_eq!(notices_of(&incomplete(), &held), vec![HoldPlaced]);
    assert_eq!(
        notices_of(&held, &held),
        vec![],
        "a renewal or a repeat writes nothing"
    );
    let paid = captured(1800);
    assert_eq!(notices_of(&held, &paid), vec![Receipt]);
    let pending = step(
        &paid,
        PaymentEvent::RefundIssued(refund("re_1", 500, RefundState::Pending)),
    );
    assert_eq!(notices_of(&paid, &pending), vec![], "not yet given back");
    let done = step(
        &pending,
        PaymentEvent::RefundsReported(vec![refund("re_1", 500, RefundState::Succeeded)]),
    );
    assert_eq!(
        notices_of(&pending, &done),
        vec![CreditNote(RefundId::parse("re_1").unwrap())]
    );
    let failed = step(
        &done,
        PaymentEvent::RefundsReported(vec![refund("re_1", 500, RefundState::Failed)]),
    );
    let re_1 = RefundId::parse("re_1").unwrap();
    assert_eq!(
        notices_of(&done, &failed),
        vec![CreditNoteCancelled(re_1.clone()), RefundFailed(re_1)],
        "the patient's credit note is cancelled, the practitioner told"
    );
    let refused = step(
        &pending,
        PaymentEvent::RefundsReported(vec![refund("re_1", 500, RefundState::Failed)]),
    );
    assert_eq!(
        notices_of(&pending, &refused),
        vec![RefundFailed(RefundId::parse("re_1").unwrap())],
        "no credit note was issued, none to cancel"
    );
    let disputed = step(
        &paid,
        PaymentEvent::Disputed(dispute(DisputeStatus::NeedsResponse, 0)),
    );
    assert_eq!(notices_of(&paid, &disputed), vec![DisputeOpened]);
    let again = step(
        &disputed,
        PaymentEvent::Disputed(dispute(DisputeStatus::UnderReview, 1)),
    );
    assert_eq!(
        notices_of(&disputed, &again),
        vec![],
        "the same dispute, still open"
    );
}

#[test]
fn a_refused_off_session_hold_asks_the_patient_to_authorise_again() {
    let saved = step(&incomplete(), PaymentEvent::CardSaved(saved_card()));
    let refused = step(&saved, PaymentEvent::AuthorizationFailed(declined()));
    assert_eq!(notices_of(&saved, &refused), vec![Notice::AuthorizeAgain]);
    let on_session = step(&incomplete(), PaymentEvent::AuthorizationFailed(declined()));
    assert_eq!(
        notices_of(&incomplete(), &on_session),
        vec![],
        "the patient is on the page"
    );
}

#[test]
fn the_pay_link_goes_to_the_patient_in_their_language_with_the_link_left_out() {
    let english = with_email(record(Some(scheduled_payment())), Lang::En);
    let m = pay_link(
        &english,
        &practitioner(),
        generated_id(1),
        "pay_link:x:0",
        now(),
    )
    .unwrap();
    assert_eq!(m.kind, MessageKind::PayLink);
    assert_eq!(m.to.as_str(), "martin@example.org");
    assert_eq!(m.lang, Lang::En);
    assert!(
        m.subject
            .starts_with("Your teleconsultation with Dr Estival on 3 November 2026"),
        "{}",
        m.subject
    );
    assert!(
        m.body
            .contains("Tuesday 3 November 2026, 10:00 (Europe/Paris)"),
        "{}",
        m.body
    );
    assert!(m.body.contains("at most €25.00"), "{}", m.body);
    assert!(m.body.contains(PAY_URL), "the link is filled in when sent");
    let fr = with_email(english.clone(), Lang::Fr);
    let m = pay_link(&fr, &practitioner(), generated_id(1), "k", now()).unwrap();
    assert!(
        m.body
            .contains("empreinte bancaire de 25,00\u{a0}€ au plus"),
        "{}",
        m.body
    );
    let no_address = record(Some(scheduled_payment()));
    assert_eq!(
        pay_link(&no_address, &practitioner(), generated_id(1), "k", now()),
        None
    );
}

#[test]
fn receipts_attach_the_document_and_staff_notices_go_to_the_practitioners_address() {
    let paid = captured(1800);
    let r = with_email(record(Some(paid.clone())), Lang::Fr);
    let m = message(
        &Notice::Receipt,
        &paid,
        &r,
        &practitioner(),
        generated_id(1),
        now(),
    )
    .unwrap();
    assert_eq!(
        m.attachment,
        Some(AttachmentRef {
            payment: PAYMENT,
            kind: crate::receipt::DocumentKind::Receipt,
            refund: None
        })
    );
    assert_eq!(m.dedupe, format!("receipt:{PAYMENT}"));
    assert!(
        m.body.contains(
            "18,00\u{a0}€ débités sur votre carte ; 7,00\u{a0}€ de l'empreinte sont libérés"
        ),
        "{}",
        m.body
    );

    let disputed = step(
        &paid,
        PaymentEvent::Disputed(dispute(DisputeStatus::NeedsResponse, 0)),
    );
    let note = message(
        &Notice::DisputeOpened,
        &disputed,
        &r,
        &reachable_dr(),
        generated_id(2),
        now(),
    )
    .unwrap();
    assert_eq!(note.to.as_str(), "cabinet@example.org");
    assert_eq!(note.lang, Lang::Fr);
    assert!(note.body.contains(&format!(
        "{}/dashboard/payments/{PAYMENT}",
        super::PUBLIC_URL
    )));
    assert_eq!(
        message(
            &Notice::DisputeOpened,
            &disputed,
            &r,
            &practitioner(),
            generated_id(2),
            now()
        ),
        None,
        "no address, no message"
    );
}

fn queued(m: Message, attempts: u32) -> Queued {
    Queued {
        message: m,
        delivery: Delivery::Pending,
        attempts,
        next_attempt_at: now(),
        last_error: None,
    }
}

fn receipt_message() -> Message {
    let paid = captured(1800);
    let r = with_email(record(Some(paid.clone())), Lang::Fr);
    message(
        &Notice::Receipt,
        &paid,
        &r,
        &practitioner(),
        generated_id(7),
        now(),
    )
    .unwrap()
}

fn receipt_document() -> Document {
    let p = practitioner();
    Document {
        number: DocumentNumber { year: 2026, seq: 1 },
        refers_to: None,
        draft: DocumentDraft {
            kind: crate::receipt::DocumentKind::Receipt,
            practitioner: DR,
            payment: PAYMENT,
            refund: None,
            year: 2026,
            issuer: Issuer::of(&p),
            patient: "M. Martin".into(),
            act_at: now(),
            description: None,
            amount: eur(1800),
            paid_at: now(),
            issued_at: now(),
            time_zone: p.time_zone,
        },
    }
}

/// Mocks with a mailer and a renderer, the receipt stored, the consultation's live
/// link derived.
fn delivering(answer: Result<(), MailError>) -> Mocks {
    let mut m = Mocks::new();
    let mut consultation = with_email(record(Some(captured(1800))), Lang::Fr);
    consultation.consultation.pay_token_hash = derived_link(CONSULTATION, 0).hash();
    m.consultation_is(&consultation);
    m.payments
        .expect_documents()
        .returning(|_| Ok(vec![receipt_document()]));
    let mut mailer = MockMailer::new();
    let link = format!(
        "https://pay.example.org/pay/{}",
        derived_link(CONSULTATION, 0).expose()
    );
    mailer
        .expect_send()
        .withf(move |e| {
            e.text.contains(&link)
                && !e.text.contains(PAY_URL)
                && e.attachments.len() == 1
                && e.attachments[0].name == "note-d-honoraires-2026-000001.pdf"
                && e.attachments[0].bytes == b"%PDF-fake"
        })
        .times(1)
        .return_once(move |_| answer);
    m.mailer = Some(mailer);
    m
}

fn build_with_renderer(mut m: Mocks) -> crate::Billing {
    m.renderer
        .expect_pdf()
        .returning(|_| Ok(b"%PDF-fake".to_vec()));
    m.build()
}

#[tokio::test]
async fn a_due_message_is_sent_with_its_link_and_document_then_marked_sent() {
    let mut m = delivering(Ok(()));
    let first = vec![queued(receipt_message(), 0)];
    let mut seq = mockall::Sequence::new();
    m.outbox
        .expect_claim_due()
        .times(1)
        .in_sequence(&mut seq)
        .return_once(move |_, _, _, _| Ok(first));
    m.outbox
        .expect_mark_sent()
        .withf(|id, _, at| *id == generated_id(7) && *at == now())
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(true));
    m.outbox
        .expect_claim_due()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _, _| Ok(vec![]));
    let report = build_with_renderer(m).outbox.deliver_due().await.unwrap();
    assert_eq!(
        report,
        DeliveryReport {
            sent: 1,
            retried: 0,
            failed: 0
        }
    );
}

#[tokio::test]
async fn a_mail_server_that_is_down_gets_the_message_again_later_and_a_refusal_is_final() {
    for (answer, retry, report) in [
        (
            MailError::Temporary("connection refused".into()),
            Some(now() + Duration::minutes(2)),
            DeliveryReport {
                sent: 0,
                retried: 1,
                failed: 0,
            },
        ),
        (
            MailError::Permanent("550 no such user".into()),
            None,
            DeliveryReport {
                sent: 0,
                retried: 0,
                failed: 1,
            },
        ),
    ] {
        let mut m = delivering(Err(answer.clone()));
        let first = vec![queued(receipt_message(), 2)];
        m.outbox
            .expect_claim_due()
            .times(1)
            .return_once(move |_, _, _, _| Ok(first));
        m.outbox
            .expect_attempt_failed()
            .withf(move |id, _, _, retry_at, _| *id == generated_id(7) && *retry_at == retry)
            .times(1)
            .returning(|_, _, _, _, _| Ok(true));
        m.outbox
            .expect_claim_due()
            .returning(|_, _, _, _| Ok(vec![]));
        m.outbox.expect_mark_sent().never();
        let got = build_with_renderer(m).outbox.deliver_due().await.unwrap();
        assert_eq!(got, report, "{answer:?}");
    }
}

#[tokio::test]
async fn without_a_mailer_nothing_is_claimed() {
    let mut m = Mocks::new();
    m.outbox.expect_claim_due().never();
    let billing = m.build();
    assert!(!billing.outbox.sends());
    assert_eq!(
        billing.outbox.deliver_due().await.unwrap(),
        DeliveryReport::default()
    );
}

#[test]
fn retries_back_off_from_thirty_seconds_to_six_hours() {
    assert_eq!(backoff(1), Duration::seconds(30));
    assert_eq!(backoff(2), Duration::seconds(60));
    assert_eq!(backoff(3), Duration::seconds(120));
    assert_eq!(backoff(12), Duration::hours(6));
    assert_eq!(backoff(u32::MAX), Duration::hours(6));
}

#[tokio::test]
async fn staff_send_a_pay_link_again_only_to_a_patient_with_an_address() {
    let mut m = Mocks::new();
    m.consultation_is(&with_email(record(Some(scheduled_payment())), Lang::Fr));
    m.practitioner_is(&practitioner());
    m.outbox
        .expect_enqueue()
        .withf(|ms| {
            ms.len() == 1
                && ms[0].kind == MessageKind::PayLink
                && ms[0].dedupe.starts_with("pay_link:")
        })
        .times(1)
        .returning(|_| Ok(1));
    m.build()
        .outbox
        .send_pay_link(&secretary(), CONSULTATION)
        .await
        .unwrap();

    let mut m = Mocks::new();
    m.consultation_is(&record(Some(scheduled_payment())));
    m.practitioner_is(&practitioner());
    m.outbox.expect_enqueue().never();
    let refused = m.build().outbox.send_pay_link(&dr(), CONSULTATION).await;
    assert_eq!(code(refused), "validation_failed");

    for (_, who, expected) in outsiders() {
        let mut m = Mocks::new();
        m.consultation_is(&with_email(record(Some(scheduled_payment())), Lang::Fr));
        m.outbox.expect_enqueue().never();
        let result = m.build().outbox.send_pay_link(&who, CONSULTATION).await;
        assert_eq!(code(result), expected);
    }
}
