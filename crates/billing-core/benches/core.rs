//! Benchmarks of the hot pure paths: fee math (C7), parsing what people type, and the
//! payment state machine (C5) as commands and webhooks drive it.
//!
//! Run with `cargo xtask bench core` (or `cargo bench -p billing-core --bench core`).

use std::hint::black_box;

use billing_core::fees::{Fee, FeeSchedule};
use billing_core::gateway::{IntentSnapshot, IntentStatus};
use billing_core::ids::{ConsultationId, PaymentId, PaymentIntentId, PractitionerId};
use billing_core::money::{Currency, Money};
use billing_core::payment::model::{Applied, Payment, PaymentEvent};
use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use uuid::Uuid;

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::Eur)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0)
        .single()
        .expect("a valid date")
}

/// A fresh 25.00 EUR payment, as scheduled.
fn fresh_payment() -> Payment {
    Payment::new(
        PaymentId::from_uuid(Uuid::from_u128(1)),
        ConsultationId::from_uuid(Uuid::from_u128(2)),
        PractitionerId::from_uuid(Uuid::from_u128(3)),
        eur(2500),
        FeeSchedule::default_for(Currency::Eur),
        t0(),
    )
    .expect("a chargeable amount")
}

fn changed(applied: Applied) -> Payment {
    match applied {
        Applied::Changed { payment, .. } => *payment,
        other => panic!("expected a change, got {other:?}"),
    }
}

fn fee_estimate(c: &mut Criterion) {
    let schedule = FeeSchedule::default_for(Currency::Eur);
    let mut group = c.benchmark_group("fee_estimate");
    for minor in [50, 1_800, 2_500, 10_000, 99_999_999] {
        let amount = eur(minor);
        group.bench_with_input(
            BenchmarkId::from_parameter(amount.amount()),
            &amount,
            |b, amount| b.iter(|| schedule.estimate(black_box(amount))),
        );
    }
    group.finish();
}

fn money_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("money_parse");
    for input in ["25", "25,00", "1234567.89", "25.001"] {
        group.bench_with_input(BenchmarkId::from_parameter(input), input, |b, input| {
            b.iter(|| Money::parse(black_box(input), Currency::Eur))
        });
    }
    group.finish();
}

fn payment_lifecycle(c: &mut Criterion) {
    // Hold, capture 18.00 of 25.00, refund 5.00, then the rest: every command checked
    // against the transition table, as `Payment::apply` does for user commands.
    let events = [
        PaymentEvent::HoldPlaced {
            amount: eur(2500),
            capture_before: None,
        },
        PaymentEvent::Captured {
            amount: eur(1800),
            fee: None,
        },
        PaymentEvent::Refunded { total: eur(500) },
        PaymentEvent::Refunded { total: eur(1800) },
    ];
    let start = fresh_payment();
    let now = t0() + Duration::hours(1);
    c.bench_function("payment_apply/hold_capture_refund", |b| {
        b.iter(|| {
            let mut p = start.clone();
            for event in &events {
                p = changed(p.apply(black_box(event), now).expect("a legal move"));
            }
            p
        })
    });
}

fn gateway_snapshot(c: &mut Criterion) {
    // `payment_intent.succeeded` after a partial refund, as a webhook or
    // reconciliation brings it: hold, capture with Stripe's fee, refund, fee.
    let snapshot = IntentSnapshot {
        id: PaymentIntentId::parse("pi_3Bench").expect("an intent id"),
        status: IntentStatus::Succeeded,
        amount: eur(2500),
        amount_capturable: eur(0),
        amount_received: eur(1800),
        amount_refunded: eur(500),
        capture_before: Some(t0() + Duration::days(7)),
        fee: Some(eur(50)),
        last_error: None,
        cancellation_reason: None,
        payment: Some(PaymentId::from_uuid(Uuid::from_u128(1))),
        client_secret: None,
        refunds: None,
        saved_card: None,
    };
    let events = snapshot.events();
    let start = fresh_payment();
    let now = t0() + Duration::hours(1);
    let apply_all = |from: &Payment| {
        let mut p = from.clone();
        for event in &events {
            if let Applied::Changed { payment, .. } = p
                .apply_from_gateway(black_box(event), now)
                .expect("facts the payment can take")
            {
                p = *payment;
            }
        }
        p
    };
    let settled = apply_all(&start);
    assert_eq!(settled.fee(), Some(Fee::reported(eur(50))));

    let mut group = c.benchmark_group("apply_from_gateway");
    group.bench_function("succeeded_snapshot_on_fresh_payment", |b| {
        b.iter(|| apply_all(&start))
    });
    // The same delivery again (a duplicate or late webhook): every fact is known.
    group.bench_function("succeeded_snapshot_replayed", |b| {
        b.iter(|| apply_all(&settled))
    });
    group.bench_function("snapshot_events", |b| {
        b.iter(|| black_box(&snapshot).events())
    });
    group.finish();
}

criterion_group!(
    benches,
    fee_estimate,
    money_parse,
    payment_lifecycle,
    gateway_snapshot
);
criterion_main!(benches);
