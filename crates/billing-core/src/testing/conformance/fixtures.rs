//! Domain values to store, built only through `billing-core`'s own constructors, and
//! small helpers to write them the way the use cases do.

use crate::Storage;
use crate::access::{Role, StaffUser};
use crate::audit::{AuditAction, AuditActor, AuditEntry};
use crate::consultation::model::{Consultation, ConsultationRecord, PatientRef, PaymentMode};
use crate::consultation::ports::ConsultationRepository;
use crate::contact::{DisplayName, EmailAddress};
use crate::fees::FeeSchedule;
use crate::ids::{ConsultationId, PaymentId, PractitionerId, UserId};
use crate::money::{Currency, Money};
use crate::payment::model::{Applied, DisputeStatus, Payment, PaymentEvent, PaymentStatus};
use crate::payment::ports::{ChangeLog, HistoryEntry, PaymentRepository};
use crate::practitioner::model::{Practitioner, TimeZone};
use crate::secrets::{PayToken, StaffToken, TokenHash};
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use uuid::Uuid;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

/// A fixed instant with microseconds, so precision is exercised everywhere.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap() + Duration::microseconds(123_456)
}

pub fn mins(n: i64) -> Duration {
    Duration::minutes(n)
}

/// A new identifier, unique in this process (the suite's values are the same on every
/// run; each case is given a fresh store).
pub fn new_uuid() -> Uuid {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // A fixed high part keeps the suite's ids apart from small hand-written ones.
    Uuid::from_u128((0xC0F0_u128 << 112) | u128::from(NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// Lets the other futures of a join run before this one goes on (an `await` point
/// that is not I/O), without an async runtime of its own.
pub async fn yield_now() {
    struct YieldNow(bool);
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
    YieldNow(false).await;
}

pub fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::Eur)
}

fn random_secret() -> String {
    format!("{}{}", new_uuid().simple(), new_uuid().simple())
}

pub fn pay_token_hash() -> TokenHash {
    PayToken::from_random(&random_secret()).hash()
}

pub fn staff_token_hash() -> TokenHash {
    StaffToken::from_random(&random_secret()).hash()
}

pub fn name(s: &str) -> DisplayName {
    DisplayName::parse(s).unwrap()
}

pub fn audit(p: PractitionerId, action: AuditAction, at: DateTime<Utc>) -> AuditEntry {
    AuditEntry::new(at, p, AuditActor::System, action)
}

/// A practitioner stored with their user, as `StaffService::add_practitioner` does.
pub async fn practitioner<S: Storage>(store: &S) -> Practitioner {
    let id = PractitionerId::from_uuid(new_uuid());
    let p = Practitioner::new(
        id,
        name("Dr Estival"),
        TimeZone::default(),
        Currency::Eur,
        t0(),
    );
    store
        .create_practitioner(
            &p,
            &staff_token_hash(),
            &audit(id, AuditAction::UserCreated, t0()).subject(id.as_uuid()),
        )
        .await
        .unwrap();
    p
}

pub fn secretary(practitioners: &[PractitionerId]) -> StaffUser {
    StaffUser {
        id: UserId::from_uuid(new_uuid()),
        name: "Accueil".into(),
        role: Role::Secretary(practitioners.iter().copied().collect()),
    }
}

pub fn consultation(
    p: PractitionerId,
    mode: PaymentMode,
    starts_at: DateTime<Utc>,
) -> Consultation {
    Consultation {
        id: ConsultationId::from_uuid(new_uuid()),
        practitioner: p,
        patient: PatientRef {
            display_name: name("M. Martin"),
            email: Some(EmailAddress::parse("martin@example.org").unwrap()),
        },
        starts_at,
        payment_mode: mode,
        service: None,
        lang: crate::Lang::Fr,
        pay_token_hash: pay_token_hash(),
        pay_link_generation: 0,
        created_by: None,
        created_at: t0(),
        status: crate::consultation::model::ConsultationStatus::Scheduled,
        started_at: None,
        rescheduled_at: None,
    }
}

/// A consultation with online payment for `amount`, created at `created_at`.
pub fn online(p: PractitionerId, amount: Money, created_at: DateTime<Utc>) -> ConsultationRecord {
    let mut c = consultation(p, PaymentMode::Online, created_at + Duration::days(1));
    c.created_at = created_at;
    let payment = Payment::new(
        PaymentId::from_uuid(new_uuid()),
        c.id,
        p,
        amount,
        FeeSchedule::default_for(amount.currency()),
        created_at,
    )
    .unwrap();
    ConsultationRecord {
        consultation: c,
        payment: Some(payment),
    }
}

/// Schedules a consultation with online payment and returns its (stored) payment.
pub async fn scheduled<S: Storage>(
    store: &S,
    p: PractitionerId,
    amount: Money,
    created_at: DateTime<Utc>,
) -> Payment {
    let record = online(p, amount, created_at);
    ConsultationRepository::create(
        store,
        &record,
        &audit(p, AuditAction::Scheduled, created_at),
        &[],
    )
    .await
    .unwrap();
    record.payment.unwrap()
}

/// The next state of `p` after `event` at `at`, with the log the ledger would write.
pub fn step(p: &Payment, event: &PaymentEvent, at: DateTime<Utc>) -> (Payment, ChangeLog) {
    let Applied::Changed {
        payment, from, to, ..
    } = p.apply(event, at).unwrap()
    else {
        panic!("{event:?} changes nothing on a {} payment", p.status());
    };
    let log = ChangeLog {
        history: vec![HistoryEntry {
            payment: p.id(),
            at,
            from,
            to,
            event: format!("{to}"),
            amount: event.amount(),
            actor: AuditActor::System,
        }],
        audit: vec![
            AuditEntry::new(
                at,
                p.practitioner(),
                AuditActor::System,
                AuditAction::Validated,
            )
            .subject(p.id().as_uuid())
            .detail(format!("{from} → {to}")),
        ],
        documents: vec![],
        messages: vec![],
    };
    (*payment, log)
}

/// Applies `event` and writes it; returns the stored next state.
pub async fn apply<S: Storage>(
    store: &S,
    p: &Payment,
    event: PaymentEvent,
    at: DateTime<Utc>,
) -> Payment {
    let (next, log) = step(p, &event, at);
    PaymentRepository::update(store, &next, p.version(), &log)
        .await
        .unwrap();
    next
}

pub use crate::testing::build::{declined, dispute, saved_card};

pub fn hold(amount: Money) -> PaymentEvent {
    PaymentEvent::HoldPlaced {
        amount,
        capture_before: None,
    }
}

pub fn capture(amount: Money) -> PaymentEvent {
    PaymentEvent::Captured { amount, fee: None }
}

/// A payment moved to `status` by the usual events (hold of its amount, capture of
/// `captured`, …), each at `at`.
pub async fn payment_in<S: Storage>(
    store: &S,
    p: PractitionerId,
    amount: Money,
    status: PaymentStatus,
    created_at: DateTime<Utc>,
) -> Payment {
    let mut pay = scheduled(store, p, amount, created_at).await;
    let at = created_at + mins(1);
    let captured = Money::from_minor(amount.to_minor().unwrap() * 3 / 4, amount.currency());
    let events: Vec<PaymentEvent> = match status {
        PaymentStatus::Incomplete => vec![],
        PaymentStatus::Authorized => vec![hold(amount)],
        PaymentStatus::Captured => vec![hold(amount), capture(captured)],
        PaymentStatus::Released => vec![hold(amount), PaymentEvent::Released],
        PaymentStatus::Expired => vec![hold(amount), PaymentEvent::Expired],
        PaymentStatus::Failed => vec![PaymentEvent::AuthorizationFailed(declined())],
        PaymentStatus::Refunded => vec![
            hold(amount),
            capture(captured),
            PaymentEvent::Refunded { total: captured },
        ],
        PaymentStatus::PartiallyRefunded => vec![
            hold(amount),
            capture(captured),
            PaymentEvent::Refunded {
                total: Money::from_minor(captured.to_minor().unwrap() / 3, amount.currency()),
            },
        ],
        PaymentStatus::CardSaved => vec![PaymentEvent::CardSaved(saved_card())],
        PaymentStatus::Disputed => vec![
            hold(amount),
            capture(captured),
            PaymentEvent::Disputed(dispute(captured, DisputeStatus::NeedsResponse, at)),
        ],
        PaymentStatus::DisputeLost => vec![
            hold(amount),
            capture(captured),
            PaymentEvent::Disputed(dispute(captured, DisputeStatus::Lost, at)),
        ],
    };
    for event in events {
        pay = apply(store, &pay, event, at).await;
    }
    assert_eq!(pay.status(), status);
    pay
}
