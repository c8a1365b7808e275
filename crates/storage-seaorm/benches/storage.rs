//! Throughput of the storage adapter's hot paths, on a SQLite file and on PostgreSQL
//! (when `TEST_POSTGRES_URL` names a server; a database is created and dropped):
//!
//! - `create_payment`: a consultation with its payment and audit entry (scheduling);
//! - `transition`: a conditional payment update with a history row and an audit entry;
//! - `read_by_pay_token`: the patient's pay page lookup;
//! - `payments_page_50`: one page of 50 payments with totals over 1 000 matches;
//! - `sandbox_write`: one write of the sandbox gateway (its lock, an intent and a
//!   stored answer as JSON, the head): how long the sandbox's one lock is held.
//!
//! The `x8` variants run eight clients at once, as a server would. Figures, not
//! assertions: `cargo xtask bench storage` (or `cargo bench -p storage-seaorm`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use billing_core::audit::{AuditAction, AuditActor, AuditEntry};
use billing_core::consultation::model::{
    Consultation, ConsultationRecord, PatientRef, PaymentMode,
};
use billing_core::consultation::ports::ConsultationRepository;
use billing_core::contact::DisplayName;
use billing_core::fees::FeeSchedule;
use billing_core::ids::{ConsultationId, PaymentId, PractitionerId};
use billing_core::money::{Currency, Money};
use billing_core::payment::model::{Applied, Payment, PaymentEvent};
use billing_core::payment::ports::{
    ChangeLog, HistoryEntry, PaymentQuery, PaymentRepository, PaymentScope,
};
use billing_core::practitioner::model::{Practitioner, TimeZone};
use billing_core::secrets::{PayToken, TokenHash};
use billing_core::staff::UserRepository;
use chrono::{DateTime, SubsecRound, Utc};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use storage_seaorm::Store;
use tokio::runtime::Runtime;
use uuid::Uuid;

const CLIENTS: u64 = 8;
const PAGE_ROWS: usize = 1_000;

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::Eur)
}

fn secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

fn audit(p: PractitionerId, action: AuditAction) -> AuditEntry {
    AuditEntry::new(now(), p, AuditActor::System, action)
}

fn record(p: PractitionerId) -> (ConsultationRecord, TokenHash) {
    let id = ConsultationId::from_uuid(Uuid::new_v4());
    let hash = PayToken::from_random(&secret()).hash();
    let payment = Payment::new(
        PaymentId::from_uuid(Uuid::new_v4()),
        id,
        p,
        eur(2_500),
        FeeSchedule::default_for(Currency::Eur),
        now(),
    )
    .expect("a valid payment");
    let consultation = Consultation {
        id,
        practitioner: p,
        patient: PatientRef {
            display_name: DisplayName::parse("M. Martin").expect("a name"),
            email: None,
        },
        starts_at: now(),
        payment_mode: PaymentMode::Online,
        service: None,
        lang: billing_core::Lang::Fr,
        pay_token_hash: hash.clone(),
        pay_link_generation: 0,
        created_by: None,
        created_at: now(),
        status: billing_core::consultation::model::ConsultationStatus::Scheduled,
        started_at: None,
        rescheduled_at: None,
    };
    (
        ConsultationRecord {
            consultation,
            payment: Some(payment),
        },
        hash,
    )
}

async fn schedule(store: &Store, p: PractitionerId) -> (Payment, TokenHash) {
    let (record, hash) = record(p);
    store
        .create(&record, &audit(p, AuditAction::Scheduled), &[])
        .await
        .expect("scheduled");
    (record.payment.expect("online"), hash)
}

/// The next state and its log, as the ledger writes them.
fn step(p: &Payment, event: &PaymentEvent) -> (Payment, ChangeLog) {
    let at = now();
    let Ok(Applied::Changed {
        payment, from, to, ..
    }) = p.apply(event, at)
    else {
        panic!("{event:?} must change the payment");
    };
    let log = ChangeLog {
        history: vec![HistoryEntry {
            payment: p.id(),
            at,
            from,
            to,
            event: to.to_string(),
            amount: event.amount(),
            actor: AuditActor::System,
        }],
        audit: vec![
            AuditEntry::new(
                at,
                p.practitioner(),
                AuditActor::System,
                AuditAction::FeeReported,
            )
            .subject(p.id().as_uuid()),
        ],
        documents: vec![],
        messages: vec![],
    };
    (*payment, log)
}

/// A captured payment whose reported fee can change forever (one transition each).
async fn captured(store: &Store, p: PractitionerId) -> Payment {
    captured_with_token(store, p).await.0
}

async fn captured_with_token(store: &Store, p: PractitionerId) -> (Payment, TokenHash) {
    let (mut pay, hash) = schedule(store, p).await;
    for event in [
        PaymentEvent::HoldPlaced {
            amount: eur(2_500),
            capture_before: None,
        },
        PaymentEvent::Captured {
            amount: eur(2_000),
            fee: None,
        },
    ] {
        let (next, log) = step(&pay, &event);
        store
            .update(&next, pay.version(), &log)
            .await
            .expect("written");
        pay = next;
    }
    (pay, hash)
}

async fn practitioner(store: &Store) -> PractitionerId {
    let id = PractitionerId::from_uuid(Uuid::new_v4());
    let p = Practitioner::new(
        id,
        DisplayName::parse("Dr Bench").expect("a name"),
        TimeZone::default(),
        Currency::Eur,
        now(),
    );
    store
        .create_practitioner(
            &p,
            &PayToken::from_random(&secret()).hash(),
            &audit(id, AuditAction::UserCreated),
        )
        .await
        .expect("practitioner");
    id
}

/// `n` transitions of `payment`, each a conditional update with history and audit.
async fn transitions(store: &Store, mut payment: Payment, n: u64) -> Payment {
    for i in 0..n {
        let fee = eur(50 + i64::try_from(i % 2).unwrap_or(0));
        let fee = if payment.fee().map(|f| f.amount) == Some(fee) {
            eur(52)
        } else {
            fee
        };
        let (next, log) = step(&payment, &PaymentEvent::FeeReported { fee });
        store
            .update(&next, payment.version(), &log)
            .await
            .expect("transition");
        payment = next;
    }
    payment
}

fn bench_backend(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, store: &Store) {
    let (p, tokens, page_owner) = rt.block_on(async {
        let p = practitioner(store).await;
        let page_owner = practitioner(store).await;
        let mut tokens = Vec::new();
        for i in 0..PAGE_ROWS {
            let (_, hash) = if i % 3 == 0 {
                captured_with_token(store, page_owner).await
            } else {
                schedule(store, page_owner).await
            };
            if tokens.len() < 500 {
                tokens.push(hash);
            }
        }
        (p, Arc::new(tokens), page_owner)
    });

    group.throughput(Throughput::Elements(1));
    group.bench_function("create_payment", |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let start = Instant::now();
            for _ in 0..iters {
                schedule(store, p).await;
            }
            start.elapsed()
        });
    });
    group.bench_function("create_payment_x8", |b| {
        b.to_async(rt).iter_custom(|iters| async move {
            let start = Instant::now();
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        for _ in 0..iters.div_ceil(CLIENTS) {
                            schedule(&store, p).await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("client");
            }
            start.elapsed()
        });
    });

    let payment = rt.block_on(captured(store, p));
    let payment = Arc::new(tokio::sync::Mutex::new(payment));
    group.bench_function("transition", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let payment = payment.clone();
            async move {
                let mut current = payment.lock().await;
                let start = Instant::now();
                *current = transitions(store, current.clone(), iters).await;
                start.elapsed()
            }
        });
    });
    let payments: Vec<Payment> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..CLIENTS {
            v.push(captured(store, p).await);
        }
        v
    });
    let payments = Arc::new(tokio::sync::Mutex::new(payments));
    group.bench_function("transition_x8", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let payments = payments.clone();
            async move {
                let mut current = payments.lock().await;
                let start = Instant::now();
                let tasks: Vec<_> = current
                    .drain(..)
                    .map(|pay| {
                        let store = store.clone();
                        tokio::spawn(async move {
                            transitions(&store, pay, iters.div_ceil(CLIENTS)).await
                        })
                    })
                    .collect();
                for t in tasks {
                    current.push(t.await.expect("client"));
                }
                start.elapsed()
            }
        });
    });

    group.bench_function("sandbox_write", |b| {
        use billing_core::gateway::{SandboxRow, SandboxStore};
        let body = format!("{{\"intent\":\"{}\"}}", "x".repeat(1500));
        b.to_async(rt).iter_custom(|iters| {
            let body = body.clone();
            async move {
                let start = Instant::now();
                for i in 0..iters {
                    let write = store.begin().await.expect("sandbox lock");
                    let rows = ["intent", "replay"].map(|kind| SandboxRow {
                        kind: kind.into(),
                        id: format!("pi_{}", i % 500),
                        body: body.clone(),
                    });
                    write
                        .commit(rows.to_vec(), chrono::Duration::zero())
                        .await
                        .expect("sandbox commit");
                }
                start.elapsed()
            }
        });
    });

    group.bench_function("read_by_pay_token", |b| {
        let tokens = tokens.clone();
        b.to_async(rt).iter_custom(|iters| {
            let tokens = tokens.clone();
            async move {
                let start = Instant::now();
                for i in 0..iters {
                    let hash = &tokens[usize::try_from(i).unwrap_or(0) % tokens.len()];
                    store.find_by_pay_token(hash).await.expect("found");
                }
                start.elapsed()
            }
        });
    });

    let query = PaymentQuery {
        scope: PaymentScope::Practitioners(vec![page_owner]),
        statuses: vec![],
        from: None,
        to: None,
        after: None,
        limit: 50,
        totals: true,
    };
    group.bench_function("payments_page_50", |b| {
        b.to_async(rt).iter(|| async {
            let page = store.list(&query).await.expect("a page");
            assert_eq!(page.items.len(), 50);
        });
    });
}

struct Postgres {
    admin: DatabaseConnection,
    name: String,
    url: String,
}

async fn postgres() -> Option<Postgres> {
    let server = std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let admin = Database::connect(server.as_str())
        .await
        .expect("PostgreSQL reachable");
    let name = format!("consultpay_bench_{}", std::process::id());
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .expect("drop a previous bench database");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create the bench database");
    let (base, query) = server
        .split_once('?')
        .map_or((server.as_str(), None), |(b, q)| (b, Some(q)));
    let host_end = base
        .find("://")
        .and_then(|s| base[s + 3..].find('/').map(|i| i + s + 3))
        .unwrap_or(base.len());
    let url = format!(
        "{}/{name}{}",
        &base[..host_end],
        query.map(|q| format!("?{q}")).unwrap_or_default()
    );
    Some(Postgres { admin, name, url })
}

fn storage(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let store = rt.block_on(async {
        let s = Store::connect(&url).await.expect("SQLite file");
        s.migrate().await.expect("migrated");
        s
    });
    {
        let mut group = c.benchmark_group("sqlite_file");
        bench_backend(&mut group, &rt, &store);
        group.finish();
    }
    rt.block_on(store.close()).expect("closed");

    match rt.block_on(postgres()) {
        None => eprintln!("note: TEST_POSTGRES_URL is not set: PostgreSQL benchmarks skipped"),
        Some(pg) => {
            let store = rt.block_on(async {
                let s = Store::connect(&pg.url).await.expect("PostgreSQL");
                s.migrate().await.expect("migrated");
                s
            });
            {
                let mut group = c.benchmark_group("postgres");
                bench_backend(&mut group, &rt, &store);
                group.finish();
            }
            rt.block_on(async {
                store.close().await.expect("closed");
                pg.admin
                    .execute_unprepared(&format!(
                        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                        pg.name
                    ))
                    .await
                    .expect("bench database dropped");
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = storage
}
criterion_main!(benches);
