//! Domain values to store, built only through `billing-core`'s own constructors, and
//! small helpers to write them the way the use cases do.

use billing_core::access::{Role, StaffUser};
use billing_core::audit::{AuditAction, AuditActor, AuditEntry};
use billing_core::consultation::model::{
    Consultation, ConsultationRecord, PatientRef, PaymentMode,
};
use billing_core::consultation::ports::ConsultationRepository;
use billing_core::contact::{DisplayName, EmailAddress};
use billing_core::fees::FeeSchedule;
use billing_core::ids::{
    ConsultationId, CustomerId, DisputeId, PaymentId, PaymentMethodId, PractitionerId, UserId,
};
use billing_core::money::{Currency, Money};
use billing_core::payment::model::{
    Applied, Dispute, DisputeStatus, Payment, PaymentEvent, PaymentStatus, SavedCard,
};
use billing_core::payment::ports::{ChangeLog, HistoryEntry, PaymentRepository};
use billing_core::practitioner::model::{Practitioner, TimeZone};
use billing_core::secrets::{PayToken, StaffToken, TokenHash};
use billing_core::staff::UserRepository;
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use storage_seaorm::Store;
use uuid::Uuid;

/// A fixed instant with microseconds, so precision is exercised everywhere.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap() + Duration::microseconds(123_456)
}

pub fn mins(n: i64) -> Duration {
    Duration::minutes(n)
}

pub fn new_uuid() -> Uuid {
    Uuid::new_v4()
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
pub async fn practitioner(store: &Store) -> Practitioner {
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
        lang: billing_core::Lang::Fr,
        pay_token_hash: pay_token_hash(),
        pay_link_generation: 0,
        created_by: None,
        created_at: t0(),
        status: billing_core::consultation::model::ConsultationStatus::Scheduled,
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
pub async fn scheduled(
    store: &Store,
    p: PractitionerId,
    amount: Money,
    created_at: DateTime<Utc>,
) -> Payment {
    let record = online(p, amount, created_at);
    store
        .create(&record, &audit(p, AuditAction::Scheduled, created_at), &[])
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
pub async fn apply(store: &Store, p: &Payment, event: PaymentEvent, at: DateTime<Utc>) -> Payment {
    let (next, log) = step(p, &event, at);
    store.update(&next, p.version(), &log).await.unwrap();
    next
}

pub fn saved_card() -> SavedCard {
    SavedCard {
        customer: CustomerId::parse("cus_1Saved").unwrap(),
        payment_method: PaymentMethodId::parse("pm_1Saved").unwrap(),
    }
}

/// A dispute of `amount` whose funds and Stripe's 15.00 fee were withdrawn.
pub fn dispute(amount: Money, status: DisputeStatus, at: DateTime<Utc>) -> Dispute {
    Dispute {
        id: DisputeId::parse("dp_1Stored").unwrap(),
        amount,
        reason: "fraudulent".into(),
        status,
        evidence_due_by: Some(at + Duration::days(7)),
        withdrawn: amount,
        fee: Money::from_minor(1500, amount.currency()),
        transactions: 1,
    }
}

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
pub async fn payment_in(
    store: &Store,
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
        PaymentStatus::Failed => vec![PaymentEvent::AuthorizationFailed(
            billing_core::payment::model::Failure {
                code: Some("card_declined".into()),
                decline_code: Some("insufficient_funds".into()),
                message: "Your card has insufficient funds.".into(),
            },
        )],
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
