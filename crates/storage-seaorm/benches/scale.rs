//! The payments table at scale: 999,500 payments across 1,000 practitioners, 500,000
//! of them under one, on a SQLite file and (when `TEST_POSTGRES_URL` names a server)
//! on PostgreSQL. Each query the dashboard, the export and the jobs make is timed
//! through the repository ports (the median of 5 runs after one warm-up), and the
//! plans of the list's two queries are printed (`EXPLAIN ANALYZE` on PostgreSQL).
//!
//! The data is loaded once and kept (`target/bench/scale.db`, database
//! `consultpay_scale`), so that two builds can be measured on the same rows: delete
//! the file or drop the database to load again. Figures go to stdout and to
//! `target/bench/scale.md`; they are reported, never asserted.
//!
//! `cargo bench -p storage-seaorm --features bulk --bench scale` (or
//! `cargo xtask bench scale`).

// A benchmark stops at its first failure, with the panic's message and place: that is
// all an `expect` text would add here.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use billing_core::audit::{AuditAction, AuditActor, AuditEntry};
use billing_core::consultation::model::{
    Consultation, ConsultationRecord, ConsultationStatus, PatientRef, PaymentMode,
};
use billing_core::contact::DisplayName;
use billing_core::ids::{ConsultationId, PaymentId, PractitionerId};
use billing_core::money::{Currency, Money};
use billing_core::payment::model::PaymentStatus;
use billing_core::payment::ports::{PaymentCursor, PaymentQuery, PaymentRepository, PaymentScope};
use billing_core::practitioner::model::{Practitioner, TimeZone};
use billing_core::practitioner::ports::PractitionerRepository;
use billing_core::secrets::PayToken;
use billing_core::staff::UserRepository;
use billing_core::testing::build::PaymentBuilder;
use chrono::{DateTime, TimeZone as _, Utc};
use sea_orm::{ConnectionTrait, Database};
use storage_seaorm::Store;
use uuid::Uuid;

const PRACTITIONERS: u64 = 1_000;
/// Payments of practitioner 0.
const BIG: u64 = 500_000;
/// Payments of each other practitioner.
const SMALL: u64 = 500;
/// Created over two years before [`now`], newest first.
const SPAN_SECS: i64 = 730 * 86_400;
/// Records per `insert_bulk` transaction.
const BATCH: u64 = 5_000;
const RUNS: usize = 5;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
}

fn practitioner(n: u64) -> PractitionerId {
    PractitionerId::from_uuid(Uuid::from_u128(0x5ca1_0000_0000_0000_0000 | u128::from(n)))
}

fn payments_of(n: u64) -> u64 {
    if n == 0 { BIG } else { SMALL }
}

/// The `j`-th newest payment of practitioner `n`: its ids and when it was created.
fn position(n: u64, j: u64) -> (ConsultationId, PaymentId, DateTime<Utc>) {
    let base = (u128::from(n) << 64) | (u128::from(j) << 1);
    let step = SPAN_SECS / i64::try_from(payments_of(n)).unwrap();
    let created = now() - chrono::Duration::seconds(i64::try_from(j).unwrap() * step);
    (
        ConsultationId::from_uuid(Uuid::from_u128(base | (1 << 127))),
        PaymentId::from_uuid(Uuid::from_u128(base | (1 << 127) | 1)),
        created,
    )
}

/// Mostly captured, as a practice's history is; a few of every other status.
fn status(j: u64) -> PaymentStatus {
    match j % 100 {
        0 => PaymentStatus::Authorized,
        1 => PaymentStatus::CardSaved,
        2..=4 => PaymentStatus::Released,
        5..=6 => PaymentStatus::Expired,
        7..=8 => PaymentStatus::Refunded,
        9..=11 => PaymentStatus::PartiallyRefunded,
        12..=13 => PaymentStatus::Incomplete,
        14 => PaymentStatus::Failed,
        15 => PaymentStatus::Disputed,
        _ => PaymentStatus::Captured,
    }
}

fn record(n: u64, j: u64) -> ConsultationRecord {
    let (cid, pid, created) = position(n, j);
    let payment = PaymentBuilder::new(Money::from_minor(2_500, Currency::Eur))
        .id(pid)
        .consultation(cid)
        .practitioner(practitioner(n))
        .created_at(created)
        .in_state(status(j));
    ConsultationRecord {
        consultation: Consultation {
            id: cid,
            practitioner: practitioner(n),
            patient: PatientRef {
                display_name: DisplayName::parse("M. Martin").unwrap(),
                email: None,
            },
            starts_at: created + chrono::Duration::days(2),
            payment_mode: PaymentMode::Online,
            service: None,
            lang: billing_core::Lang::Fr,
            pay_token_hash: PayToken::from_random(&format!("{:043x}", cid.as_uuid().as_u128()))
                .hash(),
            pay_link_generation: 0,
            created_by: None,
            created_at: created,
            status: ConsultationStatus::Scheduled,
            started_at: None,
            rescheduled_at: None,
        },
        payment: Some(payment),
    }
}

async fn load(store: &Store) {
    let last = practitioner(PRACTITIONERS - 1);
    let (_, last_payment, _) = position(PRACTITIONERS - 1, SMALL - 1);
    if PaymentRepository::get(store, last_payment).await.is_ok() {
        eprintln!("already loaded");
        return;
    }
    let started = Instant::now();
    for n in 0..PRACTITIONERS {
        let p = Practitioner::new(
            practitioner(n),
            DisplayName::parse(&format!("Dr {n}")).unwrap(),
            TimeZone::default(),
            Currency::Eur,
            now() - chrono::Duration::days(800),
        );
        let audit = AuditEntry::new(now(), p.id, AuditActor::System, AuditAction::UserCreated);
        let token = PayToken::from_random(&format!("{n:043}")).hash();
        if PractitionerRepository::get(store, p.id).await.is_err() {
            store.create_practitioner(&p, &token, &audit).await.unwrap();
        }
    }
    let mut batch = Vec::new();
    let mut written = 0_u64;
    for n in 0..PRACTITIONERS {
        for j in 0..payments_of(n) {
            batch.push(record(n, j));
            if batch.len() as u64 == BATCH {
                store.insert_bulk(&batch).await.unwrap();
                written += BATCH;
                batch.clear();
                if written.is_multiple_of(100_000) {
                    eprintln!("{written} payments in {:?}", started.elapsed());
                }
            }
        }
    }
    store.insert_bulk(&batch).await.unwrap();
    store.analyze().await.unwrap();
    assert_eq!(
        PractitionerRepository::get(store, last).await.unwrap().id,
        last
    );
    eprintln!("loaded in {:?}", started.elapsed());
}

/// The median of [`RUNS`] runs of `f`, after one warm-up.
async fn median<F, Fut, T>(mut f: F) -> (Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut last = f().await;
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        last = f().await;
        times.push(started.elapsed());
    }
    times.sort();
    (times[RUNS / 2], last)
}

fn query(limit: u32, totals: bool) -> PaymentQuery {
    PaymentQuery {
        scope: PaymentScope::Practitioners(vec![practitioner(0)]),
        statuses: vec![],
        from: None,
        to: None,
        after: None,
        limit,
        totals,
    }
}

/// Every page of `q`, as the CSV export reads them: (rows, pages, time).
async fn walk(store: &Store, mut q: PaymentQuery) -> (u64, u64, Duration) {
    let started = Instant::now();
    let (mut rows, mut pages) = (0, 0);
    loop {
        let page = store.list(&q).await.unwrap();
        rows += page.items.len() as u64;
        pages += 1;
        match page.next {
            Some(next) => q.after = Some(next),
            None => return (rows, pages, started.elapsed()),
        }
    }
}

/// Milliseconds with one decimal (the workspace denies float arithmetic).
fn ms(d: Duration) -> String {
    let tenths = d.as_micros() / 100;
    format!("{}.{} ms", tenths / 10, tenths % 10)
}

async fn measure(name: &str, store: &Store, report: &mut String) {
    load(store).await;
    let row = |report: &mut String, what: &str, figure: String| {
        eprintln!("[{name}] {what}: {figure}");
        let _ = writeln!(report, "| {what} | {name} | {figure} |");
    };
    // A page with its totals: the time, and how many payments the totals cover.
    let with_totals = async |report: &mut String, what: &str, q: &PaymentQuery| {
        let (t, page) = median(|| store.list(q)).await;
        let matches = page.unwrap().totals.first().map_or(0, |t| t.count);
        row(report, what, format!("{} ({matches} matches)", ms(t)));
    };
    with_totals(
        report,
        "list, first page of 50 with totals, big practitioner",
        &query(50, true),
    )
    .await;
    // Partial days at both ends (the payments of 07:00–24:00 and 00:00–19:00 summed
    // beside the maintained totals of the whole days between), two statuses.
    let window = PaymentQuery {
        statuses: vec![PaymentStatus::Captured, PaymentStatus::Refunded],
        from: Some(now() - chrono::Duration::days(60) + chrono::Duration::hours(7)),
        to: Some(now() - chrono::Duration::hours(5)),
        ..query(50, true)
    };
    with_totals(
        report,
        "list, first page of 50 with totals, 07:00 60 days ago to 19:00 yesterday, captured or refunded",
        &window,
    )
    .await;
    let bare = query(50, false);
    let (t, _) = median(|| store.list(&bare)).await;
    row(report, "list, first page of 50 without totals", ms(t));
    let (t, open) = median(|| store.open_holds(practitioner(0))).await;
    row(
        report,
        "`open_holds`, big practitioner",
        format!("{} ({} open)", ms(t), open.unwrap()),
    );
    let (_, id, created_at) = position(0, 100_000);
    let deep = PaymentQuery {
        after: Some(PaymentCursor { created_at, id }),
        ..query(50, false)
    };
    let (t, page) = median(|| store.list(&deep)).await;
    assert_eq!(page.unwrap().items[0].payment.id(), position(0, 100_001).1);
    row(report, "keyset page of 50 at depth 100k", ms(t));
    let big = PaymentScope::Practitioners(vec![practitioner(0)]);
    let (t, due) = median(|| store.holds_due(&big, now())).await;
    row(
        report,
        "`holds_due`, big practitioner (the ageing-holds page)",
        format!("{} ({} holds)", ms(t), due.unwrap().len()),
    );
    let last_60_days = PaymentQuery {
        from: Some(now() - chrono::Duration::days(60)),
        ..query(200, false)
    };
    let (rows, pages, t) = walk(store, last_60_days.clone()).await;
    row(
        report,
        "CSV export's reads, last 60 days (pages of 200, no totals)",
        format!("{} ({rows} rows, {pages} pages)", ms(t)),
    );
    let (rows, pages, t) = walk(
        store,
        PaymentQuery {
            totals: true,
            ..last_60_days
        },
    )
    .await;
    row(
        report,
        "the same with totals on every page (the export before)",
        format!("{} ({rows} rows, {pages} pages)", ms(t)),
    );
    let _ = writeln!(
        report,
        "\n{name}, plans of the keyset page at depth 100k:\n\n```"
    );
    for line in store.explain_list(&deep).await.unwrap() {
        let _ = writeln!(report, "{line}");
    }
    let _ = writeln!(
        report,
        "```\n\n{name}, plans of the first page with totals:\n\n```"
    );
    for line in store.explain_list(&query(50, true)).await.unwrap() {
        let _ = writeln!(report, "{line}");
    }
    let _ = writeln!(
        report,
        "```\n\n{name}, plans of the first page with totals over partial days:\n\n```"
    );
    for line in store.explain_list(&window).await.unwrap() {
        let _ = writeln!(report, "{line}");
    }
    let _ = writeln!(report, "```\n");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&root).unwrap();
    let mut report = String::from(
        "999,500 payments across 1,000 practitioners (500,000 under one); median of 5 runs\n\n\
         | query | engine | time |\n|---|---|---|\n",
    );
    let mut plans = String::new();
    rt.block_on(async {
        let mut engines = vec![(
            "SQLite",
            format!("sqlite://{}?mode=rwc", root.join("scale.db").display()),
        )];
        if let Some(server) = std::env::var("TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            let admin = Database::connect(server.as_str()).await.unwrap();
            // Kept between runs: it exists after the first.
            let _ = admin
                .execute_unprepared("CREATE DATABASE consultpay_scale")
                .await;
            let url = match server.rsplit_once('/') {
                Some((base, _)) => format!("{base}/consultpay_scale"),
                None => format!("{server}/consultpay_scale"),
            };
            engines.push(("PostgreSQL", url));
        }
        for (name, url) in engines {
            let store = Store::connect(&url).await.unwrap();
            store.migrate().await.unwrap();
            let mut part = String::new();
            measure(name, &store, &mut part).await;
            let (rows, rest) = part.split_once("\n\n").unwrap_or((&part, ""));
            report.push_str(rows);
            report.push('\n');
            plans.push_str(rest);
        }
    });
    report.push('\n');
    report.push_str(&plans);
    println!("{report}");
    std::fs::write(root.join("scale.md"), report).unwrap();
}
