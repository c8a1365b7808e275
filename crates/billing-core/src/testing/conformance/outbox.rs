//! The e-mail outbox: queued once per key and with the change that sends it, claimed
//! by one server at a time, marked only by its claimer.

use futures_util::future::join_all;
use std::collections::HashSet;

use crate::Lang;
use crate::audit::AuditAction;
use crate::consultation::ports::ConsultationRepository;
use crate::contact::EmailAddress;
use crate::ids::PractitionerId;
use crate::outbox::{Delivery, Message, MessageKind, OutboxRepository};
use crate::payment::ports::PaymentRepository;
use crate::repository::RepositoryError;

use super::fixtures::*;
use crate::Storage;

fn message(p: PractitionerId, dedupe: &str, minutes: i64) -> Message {
    Message {
        id: new_uuid(),
        kind: MessageKind::PayLink,
        practitioner: p,
        consultation: None,
        user: None,
        to: EmailAddress::parse("martin@example.org").unwrap(),
        lang: Lang::En,
        subject: "Your teleconsultation".into(),
        body: "Hello,\n{pay_url}\n".into(),
        attachment: None,
        dedupe: dedupe.into(),
        created_at: t0() + mins(minutes),
    }
}

pub async fn messages_are_queued_once_per_key_with_the_change_that_sends_them<S: Storage>(
    store: S,
) {
    let dr = practitioner(&store).await;
    let record = online(dr.id, eur(2_500), t0());
    let mut pay_link = message(dr.id, "pay_link:1", 0);
    pay_link.consultation = Some(record.consultation.id);
    ConsultationRepository::create(
        &store,
        &record,
        &audit(dr.id, AuditAction::Scheduled, t0()),
        &[pay_link.clone()],
    )
    .await
    .unwrap();
    assert_eq!(
        store
            .enqueue(&[pay_link.clone(), message(dr.id, "x", 1)])
            .await
            .unwrap(),
        1,
        "a known key is skipped"
    );

    // A payment change queues its messages; a lost race queues nothing.
    let p = record.payment.clone().unwrap();
    let (held, mut log) = step(&p, &hold(eur(2_500)), t0() + mins(1));
    log.messages.push(message(dr.id, "hold_placed:1", 2));
    log.messages.push(message(dr.id, "hold_placed:2", 2));
    assert!(matches!(
        PaymentRepository::update(&store, &held, p.version() + 5, &log).await,
        Err(RepositoryError::Conflict)
    ));
    assert_eq!(
        OutboxRepository::recent(&store, &[dr.id], 10)
            .await
            .unwrap()
            .len(),
        2
    );
    PaymentRepository::update(&store, &held, p.version(), &log)
        .await
        .unwrap();

    let recent = OutboxRepository::recent(&store, &[dr.id], 10)
        .await
        .unwrap();
    let keys: Vec<_> = recent.iter().map(|q| q.message.dedupe.as_str()).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert_eq!(
        recent.last().unwrap().message,
        pay_link,
        "oldest last, every field kept"
    );
    assert!(
        recent
            .iter()
            .all(|q| q.delivery == Delivery::Pending && q.attempts == 0)
    );
    let other = practitioner(&store).await;
    assert!(
        OutboxRepository::recent(&store, &[other.id], 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A write that fails does not queue its messages either.
    let mut ghost = online(dr.id, eur(2_500), t0());
    ghost.consultation.practitioner = PractitionerId::from_uuid(new_uuid());
    let r = ConsultationRepository::create(
        &store,
        &ghost,
        &audit(dr.id, AuditAction::Scheduled, t0()),
        &[message(dr.id, "ghost", 3)],
    )
    .await;
    assert!(r.is_err());
    assert_eq!(
        OutboxRepository::recent(&store, &[dr.id], 10)
            .await
            .unwrap()
            .len(),
        4
    );
}

pub async fn concurrent_claimers_never_share_a_message<S: Storage>(store: S) {
    const MESSAGES: usize = 30;
    const CLAIMERS: usize = 6;
    let dr = practitioner(&store).await;
    let all: Vec<_> = (0..MESSAGES)
        .map(|i| message(dr.id, &format!("m{i}"), 0))
        .collect();
    store.enqueue(&all).await.unwrap();
    let claimers = (0..CLAIMERS).map(|i| {
        let store = &store;
        async move {
            let claim = format!("server-{i}");
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_due(t0() + mins(1), t0() + mins(3), &claim, 4)
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|q| q.message.id));
                yield_now().await;
            }
            (claim, mine)
        }
    });
    let mut seen = HashSet::new();
    for (claim, mine) in join_all(claimers).await {
        for id in mine {
            assert!(seen.insert(id), "{id} claimed twice");
            assert!(store.mark_sent(id, &claim, t0() + mins(2)).await.unwrap());
        }
    }
    assert_eq!(seen.len(), MESSAGES);
    let sent = OutboxRepository::recent(&store, &[dr.id], 100)
        .await
        .unwrap();
    assert!(
        sent.iter()
            .all(|q| matches!(q.delivery, Delivery::Sent { .. }) && q.attempts == 1)
    );
}

pub async fn a_lapsed_claim_is_taken_over_and_only_the_claimer_settles_a_message<S: Storage>(
    store: S,
) {
    let dr = practitioner(&store).await;
    store.enqueue(&[message(dr.id, "one", 0)]).await.unwrap();
    let now = t0() + mins(1);
    let first = store.claim_due(now, now + mins(2), "a", 10).await.unwrap();
    assert_eq!(first.len(), 1);
    let id = first[0].message.id;
    assert!(
        store
            .claim_due(now + mins(1), now + mins(3), "b", 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    assert!(!store.mark_sent(id, "b", now).await.unwrap(), "not b's");
    // a dies; its lease runs out; b takes over and a can no longer settle it.
    let taken = store
        .claim_due(now + mins(3), now + mins(5), "b", 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert!(!store.mark_sent(id, "a", now + mins(3)).await.unwrap());
    // A temporary failure: due again later, attempt counted, error kept.
    assert!(
        store
            .attempt_failed(id, "b", now + mins(3), Some(now + mins(30)), "421 busy")
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_due(now + mins(29), now + mins(31), "c", 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let again = store
        .claim_due(now + mins(30), now + mins(32), "c", 10)
        .await
        .unwrap();
    assert_eq!((again.len(), again[0].attempts), (1, 1));
    assert_eq!(again[0].last_error.as_deref(), Some("421 busy"));
    // A permanent failure is final.
    assert!(
        store
            .attempt_failed(id, "c", now + mins(31), None, "550 no such user")
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_due(now + mins(600), now + mins(602), "d", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let q = &OutboxRepository::recent(&store, &[dr.id], 1).await.unwrap()[0];
    assert_eq!(q.delivery, Delivery::Failed { at: now + mins(31) });
    assert_eq!(q.attempts, 2);
}

pub async fn a_message_to_a_staff_member_reads_back_with_its_user<S: Storage>(store: S) {
    let p = practitioner(&store).await;
    let mut m = message(p.id, "password_reset:1", 0);
    m.kind = MessageKind::PasswordReset;
    m.user = Some(crate::ids::UserId::from_uuid(p.id.as_uuid()));
    m.body = "{password_url}".into();
    assert_eq!(store.enqueue(std::slice::from_ref(&m)).await.unwrap(), 1);
    let claimed = store
        .claim_due(t0() + mins(1), t0() + mins(6), "c1", 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].message, m);
}
