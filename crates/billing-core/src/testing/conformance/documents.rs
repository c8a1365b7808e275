//! Receipts and credit notes: numbered in the payment's transaction, per practitioner
//! and year, with no gap and no reuse; copies of what they print; read back per
//! payment.

use crate::Lang;
use crate::audit::AuditAction;
use crate::consultation::ports::ConsultationRepository;
use crate::ids::{PaymentId, RefundId};
use crate::payment::model::PaymentEvent;
use crate::payment::model::{Payment, RefundLine, RefundState};
use crate::payment::ports::{ChangeLog, PaymentRepository};
use crate::practitioner::model::{Practitioner, TimeZone};
use crate::practitioner::ports::PractitionerRepository;
use crate::practitioner::profile::{Profile, ProfileInput};
use crate::receipt::{DocumentDraft, DocumentKind, DocumentNumber, Issuer};
use crate::repository::RepositoryError;
use futures_util::future::join_all;

use super::fixtures::*;
use crate::Storage;

fn draft(p: &Payment, kind: DocumentKind, refund: Option<&str>, year: i32) -> DocumentDraft {
    DocumentDraft {
        kind,
        practitioner: p.practitioner(),
        payment: p.id(),
        refund: refund.map(|r| RefundId::parse(r).unwrap()),
        year,
        issuer: Issuer {
            name: "Dr Estival".into(),
            profession: Some("Psychologue".into()),
            address: Some("12 rue des Lilas\n75011 Paris".into()),
            health_id: Some(crate::practitioner::profile::HealthId::parse("10000000009").unwrap()),
            siret: None,
            vat_mention: "TVA non applicable, article 261-4-1° du CGI".into(),
        },
        patient: "Mme Hélène Müller".into(),
        act_at: t0(),
        description: Some("Bilan".into()),
        amount: eur(1_800),
        paid_at: t0() + mins(5),
        issued_at: t0() + mins(5),
        time_zone: TimeZone::default(),
    }
}

/// Captures `p` (held first) and issues its receipt in the same write.
async fn capture_with_receipt<S: Storage>(
    store: &S,
    p: &Payment,
    year: i32,
) -> Result<Payment, RepositoryError> {
    let held = apply(store, p, hold(p.amount()), t0() + mins(1)).await;
    let (next, mut log) = step(&held, &capture(eur(1_800)), t0() + mins(2));
    log.documents
        .push(draft(&next, DocumentKind::Receipt, None, year));
    PaymentRepository::update(store, &next, held.version(), &log)
        .await
        .map(|()| next)
}

fn numbers(docs: &[crate::receipt::Document]) -> Vec<String> {
    docs.iter().map(|d| d.number.to_string()).collect()
}

pub async fn documents_are_numbered_per_practitioner_and_year_and_read_back_whole<S: Storage>(
    store: S,
) {
    let (dr, other) = (practitioner(&store).await, practitioner(&store).await);
    let first = scheduled(&store, dr.id, eur(2_500), t0()).await;
    let first = capture_with_receipt(&store, &first, 2026).await.unwrap();
    let second = scheduled(&store, dr.id, eur(2_500), t0()).await;
    capture_with_receipt(&store, &second, 2026).await.unwrap();
    let theirs = scheduled(&store, other.id, eur(2_500), t0()).await;
    capture_with_receipt(&store, &theirs, 2026).await.unwrap();
    let next_year = scheduled(&store, dr.id, eur(2_500), t0()).await;
    capture_with_receipt(&store, &next_year, 2027)
        .await
        .unwrap();

    let docs = store.documents(first.id()).await.unwrap();
    assert_eq!(numbers(&docs), ["2026-000001"]);
    assert_eq!(
        docs[0].draft,
        draft(&first, DocumentKind::Receipt, None, 2026),
        "every field kept"
    );
    assert_eq!(
        numbers(&store.documents(second.id()).await.unwrap()),
        ["2026-000002"]
    );
    assert_eq!(
        numbers(&store.documents(theirs.id()).await.unwrap()),
        ["2026-000001"],
        "their own series"
    );
    assert_eq!(
        numbers(&store.documents(next_year.id()).await.unwrap()),
        ["2027-000001"]
    );
    assert_eq!(
        store
            .documents(PaymentId::from_uuid(new_uuid()))
            .await
            .unwrap(),
        vec![]
    );

    // A credit note refers to the receipt and takes the next number of the series.
    let refunded = first
        .apply(
            &PaymentEvent::RefundIssued(RefundLine {
                id: RefundId::parse("re_1Back").unwrap(),
                amount: eur(500),
                status: RefundState::Succeeded,
            }),
            t0() + mins(10),
        )
        .unwrap();
    let crate::payment::model::Applied::Changed {
        payment: refunded, ..
    } = refunded
    else {
        panic!("the refund changes the payment");
    };
    let mut note = draft(&refunded, DocumentKind::CreditNote, Some("re_1Back"), 2026);
    note.amount = eur(500);
    let log = ChangeLog {
        documents: vec![note],
        ..ChangeLog::default()
    };
    PaymentRepository::update(&store, &refunded, first.version(), &log)
        .await
        .unwrap();
    let docs = store.documents(first.id()).await.unwrap();
    assert_eq!(numbers(&docs), ["2026-000001", "2026-000003"]);
    assert_eq!(docs[1].draft.kind, DocumentKind::CreditNote);
    assert_eq!(
        docs[1].refers_to,
        Some(DocumentNumber { year: 2026, seq: 1 })
    );
    assert_eq!(docs[0].refers_to, None);
}

pub async fn a_second_receipt_or_a_lost_race_writes_nothing_and_consumes_no_number<S: Storage>(
    store: S,
) {
    let dr = practitioner(&store).await;
    let p = scheduled(&store, dr.id, eur(2_500), t0()).await;
    let held = apply(&store, &p, hold(p.amount()), t0() + mins(1)).await;
    let (captured, mut log) = step(&held, &capture(eur(1_800)), t0() + mins(2));
    log.documents
        .push(draft(&captured, DocumentKind::Receipt, None, 2026));
    // Lost race: another writer moved the version.
    assert!(matches!(
        PaymentRepository::update(&store, &captured, held.version() - 1, &log).await,
        Err(RepositoryError::Conflict)
    ));
    PaymentRepository::update(&store, &captured, held.version(), &log)
        .await
        .unwrap();
    // The same receipt again (a bug upstream): refused whole.
    let again = captured.with_attention("x".into(), t0() + mins(3)).unwrap();
    let mut twice = ChangeLog::default();
    twice
        .documents
        .push(draft(&captured, DocumentKind::Receipt, None, 2026));
    assert!(matches!(
        PaymentRepository::update(&store, &again, captured.version(), &twice).await,
        Err(RepositoryError::Duplicate(_))
    ));
    assert_eq!(
        PaymentRepository::get(&store, p.id()).await.unwrap(),
        captured,
        "nothing written"
    );
    let other = scheduled(&store, dr.id, eur(2_500), t0()).await;
    capture_with_receipt(&store, &other, 2026).await.unwrap();
    assert_eq!(
        numbers(&store.documents(p.id()).await.unwrap()),
        ["2026-000001"]
    );
    assert_eq!(
        numbers(&store.documents(other.id()).await.unwrap()),
        ["2026-000002"],
        "neither the lost race nor the duplicate used a number"
    );
}

pub async fn concurrent_captures_number_receipts_without_gap_or_reuse<S: Storage>(store: S) {
    const CAPTURES: usize = 50;
    let dr = practitioner(&store).await;
    let mut held = Vec::new();
    for _ in 0..CAPTURES {
        let p = scheduled(&store, dr.id, eur(2_500), t0()).await;
        held.push(apply(&store, &p, hold(p.amount()), t0() + mins(1)).await);
    }
    let captures = held.iter().map(|h| {
        let store = &store;
        async move {
            let (next, mut log) = step(h, &capture(eur(1_800)), t0() + mins(2));
            log.documents
                .push(draft(&next, DocumentKind::Receipt, None, 2026));
            PaymentRepository::update(store, &next, h.version(), &log).await
        }
    });
    for result in join_all(captures).await {
        result.unwrap();
    }
    let mut seqs = Vec::new();
    for h in &held {
        let docs = store.documents(h.id()).await.unwrap();
        assert_eq!(docs.len(), 1);
        seqs.push(docs[0].number.seq);
    }
    seqs.sort_unstable();
    let expected: Vec<u32> = (1..=CAPTURES as u32).collect();
    assert_eq!(seqs, expected, "1 to {CAPTURES}, each once");
}

pub async fn the_practitioners_profile_and_the_consultations_service_and_language_round_trip<
    S: Storage,
>(
    store: S,
) {
    let dr = practitioner(&store).await;
    let profile = Profile::parse(&ProfileInput {
        profession: "Psychologue".into(),
        address: "12 rue des Lilas\n75011 Paris".into(),
        health_id: "751234567".into(),
        siret: "73282932000074".into(),
        vat_mention: "TVA non applicable".into(),
        email: "cabinet@example.org".into(),
    })
    .unwrap();
    let updated: Practitioner = dr.with_profile(profile.clone(), t0() + mins(1));
    PractitionerRepository::update(
        &store,
        &updated,
        dr.version,
        &audit(dr.id, AuditAction::PreferencesChanged, t0()),
    )
    .await
    .unwrap();
    let stored = PractitionerRepository::get(&store, dr.id).await.unwrap();
    assert_eq!(stored.profile, profile);
    assert_eq!(stored, updated);

    let mut record = online(dr.id, eur(2_500), t0());
    record.consultation.service = Some(name("Bilan psychologique"));
    record.consultation.lang = Lang::En;
    ConsultationRepository::create(
        &store,
        &record,
        &audit(dr.id, AuditAction::Scheduled, t0()),
        &[],
    )
    .await
    .unwrap();
    let back = ConsultationRepository::get(&store, record.consultation.id)
        .await
        .unwrap();
    assert_eq!(back, record);
}
