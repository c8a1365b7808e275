use std::collections::BTreeMap;

use crate::ids::{CheckoutSessionId, ConnectedAccountId, PaymentIntentId, PractitionerId};
use crate::money::{Currency, Money};
use crate::payment::model::{
    CheckoutRef, IdempotencyKey, Operation, Payment, PaymentEvent, PaymentStatus,
};
use crate::payment::ports::{
    ChangeLog, PaymentCursor, PaymentQuery, PaymentRepository, PaymentScope, PaymentTotals,
};
use chrono::{DateTime, Duration, Utc};
use futures_util::future::join_all;

use super::fixtures::*;
use crate::Storage;

fn query(scope: PaymentScope, limit: u32) -> PaymentQuery {
    PaymentQuery {
        scope,
        statuses: vec![],
        from: None,
        to: None,
        after: None,
        limit,
        totals: true,
    }
}

fn of(p: PractitionerId) -> PaymentScope {
    PaymentScope::Practitioners(vec![p])
}

/// Every page of `q`, following the cursors.
async fn walk<S: Storage>(store: &S, mut q: PaymentQuery) -> (Vec<Payment>, usize) {
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = PaymentRepository::list(store, &q).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= q.limit as usize);
        seen.extend(page.items.into_iter().map(|r| r.payment));
        match page.next {
            // The cursor survives its text form, as clients send it back.
            Some(next) => q.after = Some(next.to_string().parse::<PaymentCursor>().unwrap()),
            None => return (seen, pages),
        }
        assert!(pages < 100, "pagination does not end");
    }
}

fn newest_first(mut payments: Vec<Payment>) -> Vec<Payment> {
    payments.sort_by_key(|p| std::cmp::Reverse((p.created_at(), p.id())));
    payments
}

pub async fn payments_are_paged_newest_first_through_ties_in_created_at<S: Storage>(store: S) {
    let pr = practitioner(&store).await;
    let other = practitioner(&store).await;
    let mut all = Vec::new();
    // Seven payments share one instant, so pages must break ties by id.
    for _ in 0..7 {
        all.push(scheduled(&store, pr.id, eur(2_500), t0()).await);
    }
    for i in [1, 2, -3, 4, -5] {
        all.push(scheduled(&store, pr.id, eur(2_500), t0() + Duration::microseconds(i)).await);
    }
    // Around a whole second and a whole millisecond, SQLite's text form has 0 or 3
    // fractional digits instead of 6: its order must still be the order of time.
    let second = t0() + Duration::microseconds(876_544); // 09:00:01.000000
    for us in [0, 1, -1, 500_000, 500_001, 499_999] {
        all.push(
            scheduled(
                &store,
                pr.id,
                eur(2_500),
                second + Duration::microseconds(us),
            )
            .await,
        );
    }
    scheduled(&store, other.id, eur(2_500), t0()).await;
    let expected = newest_first(all);

    for limit in [1, 3, 5, 12, 18, 50] {
        let (seen, pages) = walk(&store, query(of(pr.id), limit)).await;
        assert_eq!(seen, expected, "limit {limit}");
        assert_eq!(
            pages,
            expected.len().div_ceil(limit as usize).max(1),
            "limit {limit}"
        );
    }
    let page = PaymentRepository::list(&store, &query(of(pr.id), 3))
        .await
        .unwrap();
    assert_eq!(page.items[0].patient.as_str(), "M. Martin");
    assert_eq!(
        page.items[0].starts_at,
        expected[0].created_at() + Duration::days(1)
    );
}

pub async fn the_payments_list_filters_by_status_date_range_and_scope<S: Storage>(store: S) {
    let a = practitioner(&store).await;
    let b = practitioner(&store).await;
    let mut all = Vec::new();
    for (p, status, minutes) in [
        (a.id, PaymentStatus::Authorized, 0),
        (a.id, PaymentStatus::Captured, 10),
        (a.id, PaymentStatus::Authorized, 20),
        (a.id, PaymentStatus::Failed, 30),
        (b.id, PaymentStatus::Authorized, 15),
        (b.id, PaymentStatus::Refunded, 25),
    ] {
        all.push(payment_in(&store, p, eur(2_500), status, t0() + mins(minutes)).await);
    }
    let pick =
        |f: &dyn Fn(&Payment) -> bool| newest_first(all.iter().filter(|p| f(p)).cloned().collect());

    let mut q = query(PaymentScope::All, 50);
    assert_eq!(walk(&store, q.clone()).await.0, pick(&|_| true));

    q.statuses = vec![PaymentStatus::Authorized, PaymentStatus::Refunded];
    assert_eq!(
        walk(&store, q.clone()).await.0,
        pick(&|p| matches!(
            p.status(),
            PaymentStatus::Authorized | PaymentStatus::Refunded
        ))
    );

    q.from = Some(t0() + mins(10));
    q.to = Some(t0() + mins(25)); // exclusive
    assert_eq!(
        walk(&store, q.clone()).await.0,
        pick(&|p| {
            p.status() == PaymentStatus::Authorized
                && p.created_at() >= t0() + mins(10)
                && p.created_at() < t0() + mins(25)
        })
    );

    q.scope = PaymentScope::Practitioners(vec![a.id]);
    let page = PaymentRepository::list(&store, &q).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].payment.created_at(), t0() + mins(20));

    let nobody = PaymentRepository::list(&store, &query(PaymentScope::Practitioners(vec![]), 50))
        .await
        .unwrap();
    assert!(nobody.items.is_empty() && nobody.totals.is_empty() && nobody.next.is_none());
}

/// The core's reference definition, summed in Rust.
fn reference_totals(payments: &[Payment]) -> Vec<PaymentTotals> {
    let mut by_currency: BTreeMap<Currency, PaymentTotals> = BTreeMap::new();
    for p in payments {
        let currency = p.amount().currency();
        by_currency
            .entry(currency)
            .or_insert_with(|| PaymentTotals::zero(currency))
            .add(p)
            .unwrap();
    }
    by_currency.into_values().collect()
}

pub async fn totals_equal_the_reference_sum_over_every_match_not_only_the_page<S: Storage>(
    store: S,
) {
    let pr = practitioner(&store).await;
    let mut all = Vec::new();
    let amounts = [
        Money::from_minor(2_500, Currency::Eur),
        Money::from_minor(1_029, Currency::Eur),
        Money::from_minor(99_999_999, Currency::Eur),
        Money::from_minor(7_310, Currency::Usd),
        Money::from_minor(5_000, Currency::Jpy),
    ];
    let mut minute = 0;
    for amount in amounts {
        for status in PaymentStatus::ALL {
            minute += 1;
            all.push(payment_in(&store, pr.id, amount, status, t0() + mins(minute)).await);
        }
    }
    // A reported fee, so fees are not all estimates.
    let captured = all
        .iter()
        .find(|p| p.status() == PaymentStatus::Captured)
        .unwrap()
        .clone();
    let reported = apply(
        &store,
        &captured,
        crate::payment::model::PaymentEvent::FeeReported { fee: eur(77) },
        t0() + mins(500),
    )
    .await;
    track(&mut all, &reported);

    let q = query(of(pr.id), 2);
    let page = PaymentRepository::list(&store, &q).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let expected = reference_totals(&all);
    assert_eq!(
        expected.iter().map(|t| t.currency).collect::<Vec<_>>(),
        vec![Currency::Eur, Currency::Usd, Currency::Jpy],
        "in the core's currency order"
    );
    assert_eq!(page.totals, expected);
    assert!(expected[0].net.is_negative() || expected[0].net.is_positive());

    // With a filter, the totals are over the filtered set.
    let mut filtered = q.clone();
    filtered.statuses = vec![PaymentStatus::Authorized, PaymentStatus::PartiallyRefunded];
    filtered.from = Some(t0() + mins(3));
    let matching: Vec<Payment> = all
        .iter()
        .filter(|p| filtered.statuses.contains(&p.status()) && p.created_at() >= t0() + mins(3))
        .cloned()
        .collect();
    assert_eq!(
        PaymentRepository::list(&store, &filtered)
            .await
            .unwrap()
            .totals,
        reference_totals(&matching)
    );
    // The totals do not depend on the page.
    let mut later = filtered.clone();
    later.after = PaymentRepository::list(&store, &filtered)
        .await
        .unwrap()
        .next;
    assert_eq!(
        PaymentRepository::list(&store, &later)
            .await
            .unwrap()
            .totals,
        reference_totals(&matching)
    );
    // Asked without totals (an export): the same page, the same cursor, no totals.
    let with = PaymentRepository::list(&store, &later).await.unwrap();
    let without = PaymentRepository::list(
        &store,
        &PaymentQuery {
            totals: false,
            ..later.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(without.items, with.items);
    assert_eq!(without.next, with.next);
    assert!(without.totals.is_empty());
}

/// Midnight UTC starting the day `days` after `t0`'s.
fn day(days: i64) -> DateTime<Utc> {
    (t0() + Duration::days(days))
        .date_naive()
        .and_time(chrono::NaiveTime::MIN)
        .and_utc()
}

/// A `[from, to)` range of creation times, open on a side without a bound.
type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `list`'s totals for `q`, for any page.
async fn totals_of<S: Storage>(store: &S, q: &PaymentQuery) -> Vec<PaymentTotals> {
    PaymentRepository::list(store, q).await.unwrap().totals
}

/// The reference totals of the payments of `all` that `q` matches.
fn expected_totals(all: &[Payment], q: &PaymentQuery) -> Vec<PaymentTotals> {
    let matching: Vec<Payment> = all
        .iter()
        .filter(|p| match &q.scope {
            PaymentScope::All => true,
            PaymentScope::Practitioners(ids) => ids.contains(&p.practitioner()),
        })
        .filter(|p| q.statuses.is_empty() || q.statuses.contains(&p.status()))
        .filter(|p| q.from.is_none_or(|from| p.created_at() >= from))
        .filter(|p| q.to.is_none_or(|to| p.created_at() < to))
        .cloned()
        .collect();
    reference_totals(&matching)
}

/// Replaces the stored state of `p` in `all`.
fn track(all: &mut [Payment], p: &Payment) {
    for stored in all.iter_mut() {
        if stored.id() == p.id() {
            *stored = p.clone();
        }
    }
}

/// The totals of a date range are the reference sum whichever way the store gets them:
/// payments created at the edges of UTC days (midnight, a microsecond either side),
/// ranges of whole days, of partial days at either end, open on a side, within one
/// day; payments changed after they were created (a status that moves, a fee, a
/// refund); a currency none of whose payments has the filtered status any more.
pub async fn totals_over_days_and_their_edges_equal_the_reference_sum_after_every_change<
    S: Storage,
>(
    store: S,
) {
    let a = practitioner(&store).await;
    let b = practitioner(&store).await;
    let us = Duration::microseconds;
    let mut all = Vec::new();
    for d in 0..4 {
        for (offset, status, amount) in [
            (us(0), PaymentStatus::Captured, eur(2_500)),
            (us(1), PaymentStatus::Authorized, eur(1_029)),
            (Duration::hours(11), PaymentStatus::Refunded, eur(4_000)),
            (
                Duration::hours(13),
                PaymentStatus::PartiallyRefunded,
                Money::from_minor(7_310, Currency::Usd),
            ),
            (Duration::days(1) - us(1), PaymentStatus::Released, eur(999)),
        ] {
            all.push(payment_in(&store, a.id, amount, status, day(d) + offset).await);
        }
        all.push(
            payment_in(
                &store,
                b.id,
                eur(3_000),
                PaymentStatus::Captured,
                day(d) + us(5),
            )
            .await,
        );
    }
    // One JPY payment, held then released: its currency leaves the held totals.
    let jpy = payment_in(
        &store,
        a.id,
        Money::from_minor(5_000, Currency::Jpy),
        PaymentStatus::Authorized,
        day(2) + Duration::hours(3),
    )
    .await;
    all.push(jpy.clone());

    let windows: Vec<Window> = vec![
        (None, None),
        (Some(day(1)), None),
        (None, Some(day(3))),
        (Some(day(1)), Some(day(3))),
        (
            Some(day(0) + Duration::hours(12)),
            Some(day(3) + Duration::hours(12)),
        ),
        (Some(day(1) + us(1)), Some(day(3) - us(1))),
        (Some(day(1) - us(1)), Some(day(3) + us(1))),
        (
            Some(day(2) + Duration::hours(1)),
            Some(day(2) + Duration::hours(20)),
        ),
        (Some(day(2)), Some(day(3))),
        (Some(day(3) + Duration::days(1) - us(1)), None),
        (None, Some(day(0) + us(1))),
    ];
    let filters = [
        vec![],
        vec![PaymentStatus::Authorized],
        vec![PaymentStatus::Captured, PaymentStatus::PartiallyRefunded],
    ];
    let scopes = [
        of(a.id),
        PaymentScope::All,
        PaymentScope::Practitioners(vec![a.id, b.id]),
    ];
    let check = |all: Vec<Payment>| {
        let store = &store;
        let (windows, filters, scopes) = (&windows, &filters, &scopes);
        async move {
            for (from, to) in windows {
                for statuses in filters {
                    for scope in scopes {
                        let q = PaymentQuery {
                            statuses: statuses.clone(),
                            from: *from,
                            to: *to,
                            ..query(scope.clone(), 10)
                        };
                        assert_eq!(
                            totals_of(store, &q).await,
                            expected_totals(&all, &q),
                            "{q:?}"
                        );
                    }
                }
            }
        }
    };
    check(all.clone()).await;

    // Changes after creation move the totals: a status that leaves the filter (the
    // JPY hold released, a capture refunded), a reported fee, a dispute.
    let released = apply(&store, &jpy, PaymentEvent::Released, day(3)).await;
    track(&mut all, &released);
    let captured: Vec<Payment> = all
        .iter()
        .filter(|p| p.status() == PaymentStatus::Captured && p.practitioner() == a.id)
        .cloned()
        .collect();
    let refunded = apply(
        &store,
        &captured[0],
        PaymentEvent::Refunded { total: eur(100) },
        day(4),
    )
    .await;
    track(&mut all, &refunded);
    let fee = apply(
        &store,
        &captured[1],
        PaymentEvent::FeeReported { fee: eur(77) },
        day(4),
    )
    .await;
    track(&mut all, &fee);
    check(all.clone()).await;
    let held_yen = PaymentQuery {
        statuses: vec![PaymentStatus::Authorized],
        from: Some(day(1)),
        to: Some(day(4)),
        ..query(of(a.id), 10)
    };
    assert!(
        totals_of(&store, &held_yen)
            .await
            .iter()
            .all(|t| t.currency != Currency::Jpy),
        "no JPY row once no JPY payment is held"
    );
}

/// Concurrent writes to payments created the same day (one row of maintained totals
/// per status) lose no change: after 16 concurrent captures and 16 concurrent fees,
/// the day's totals are the reference sum.
pub async fn concurrent_changes_of_one_days_payments_keep_its_totals_exact<S: Storage>(store: S) {
    const WRITERS: i64 = 16;
    let pr = practitioner(&store).await;
    let mut held = Vec::new();
    for i in 0..WRITERS {
        let p = scheduled(&store, pr.id, eur(5_000), t0() + mins(i)).await;
        held.push(apply(&store, &p, hold(eur(5_000)), t0() + mins(100)).await);
    }
    let q = PaymentQuery {
        from: Some(day(0)),
        to: Some(day(1)),
        ..query(of(pr.id), 10)
    };
    let captures = held.iter().enumerate().map(|(i, p)| {
        let store = &store;
        async move {
            let amount = eur(1_000 + i64::try_from(i).unwrap());
            apply(store, p, capture(amount), t0() + mins(200)).await
        }
    });
    let captured = join_all(captures).await;
    assert_eq!(totals_of(&store, &q).await, reference_totals(&captured));
    let fees = captured.iter().map(|p| {
        let store = &store;
        async move {
            apply(
                store,
                p,
                PaymentEvent::FeeReported { fee: eur(30) },
                t0() + mins(300),
            )
            .await
        }
    });
    let reported = join_all(fees).await;
    assert_eq!(totals_of(&store, &q).await, reference_totals(&reported));
}

pub async fn holds_due_are_authorised_holds_by_deadline_soonest_first<S: Storage>(store: S) {
    let a = practitioner(&store).await;
    let b = practitioner(&store).await;
    // payment_in authorises at created_at + 1 min; the deadline is 7 days later.
    let deadline = |created: DateTime<Utc>| created + mins(1) + Duration::days(7);
    let late = payment_in(
        &store,
        a.id,
        eur(2_500),
        PaymentStatus::Authorized,
        t0() + mins(30),
    )
    .await;
    let soon = payment_in(&store, a.id, eur(2_500), PaymentStatus::Authorized, t0()).await;
    let of_b = payment_in(
        &store,
        b.id,
        eur(2_500),
        PaymentStatus::Authorized,
        t0() + mins(10),
    )
    .await;
    payment_in(&store, a.id, eur(2_500), PaymentStatus::Captured, t0()).await;
    payment_in(&store, a.id, eur(2_500), PaymentStatus::Incomplete, t0()).await;
    assert_eq!(soon.capture_before(), Some(deadline(t0())));

    let ids = |rows: Vec<crate::payment::ports::PaymentRow>| {
        rows.into_iter().map(|r| r.payment.id()).collect::<Vec<_>>()
    };
    let before = |at| store.holds_due(&PaymentScope::All, at);
    assert!(
        before(deadline(t0()) - Duration::microseconds(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(before(deadline(t0())).await.unwrap()),
        vec![soon.id()],
        "at the deadline"
    );
    assert_eq!(
        ids(before(deadline(t0() + mins(30))).await.unwrap()),
        vec![soon.id(), of_b.id(), late.id()]
    );
    assert_eq!(
        ids(store
            .holds_due(&of(a.id), deadline(t0() + mins(30)))
            .await
            .unwrap()),
        vec![soon.id(), late.id()]
    );
    let rows = store
        .holds_due(&of(b.id), deadline(t0() + mins(30)))
        .await
        .unwrap();
    assert_eq!(rows[0].payment, of_b);
    assert_eq!(rows[0].patient.as_str(), "M. Martin");
}

pub async fn reconciliation_finds_stale_operations_and_recent_transient_checkouts<S: Storage>(
    store: S,
) {
    let pr = practitioner(&store).await;
    let now = t0() + Duration::hours(10);
    let stale_before = now - mins(15);
    let since = now - Duration::hours(6);
    let account = ConnectedAccountId::parse("acct_1").unwrap();

    // A capture recorded as pending long ago, and one just now.
    let mut expected = Vec::new();
    for (offset, stale) in [(Duration::hours(1), true), (mins(5), false)] {
        let held = payment_in(&store, pr.id, eur(2_500), PaymentStatus::Authorized, t0()).await;
        let at = now - offset;
        let pending = held
            .begin(
                Operation::Capture { amount: eur(2_000) },
                IdempotencyKey::capture(
                    held.id(),
                    &PaymentIntentId::parse("pi_1").unwrap(),
                    &eur(2_000),
                )
                .unwrap(),
                at,
            )
            .unwrap()
            .unwrap();
        PaymentRepository::update(&store, &pending, held.version(), &ChangeLog::default())
            .await
            .unwrap();
        if stale {
            expected.push(pending);
        }
    }
    // Incomplete payments whose checkout or intent was last touched at various times.
    for (offset, intent, checkout, found) in [
        (Duration::hours(2), true, false, true), // in the window, an intent to read
        (Duration::hours(4), false, true, true), // in the window, a checkout to read
        (Duration::hours(7), true, true, false), // before `since`
        (mins(1), true, true, false),            // too recent to be stuck
    ] {
        let p = scheduled(&store, pr.id, eur(2_500), t0()).await;
        let next = p
            .checkout_started(
                account.clone(),
                intent.then(|| {
                    PaymentIntentId::parse(&format!("pi_{}", new_uuid().simple())).unwrap()
                }),
                checkout.then(|| CheckoutRef {
                    session: Some(CheckoutSessionId::parse("cs_test_1").unwrap()),
                    url: None,
                    expires_at: None,
                    setup: None,
                }),
                now - offset,
            )
            .unwrap();
        PaymentRepository::update(&store, &next, p.version(), &ChangeLog::default())
            .await
            .unwrap();
        if found {
            expected.push(next);
        }
    }
    // Declined inside the window, but with nothing to ask the gateway about.
    let declined = payment_in(
        &store,
        pr.id,
        eur(2_500),
        PaymentStatus::Failed,
        now - Duration::hours(3) - mins(1),
    )
    .await;
    assert!(declined.intent().is_none() && declined.checkout().is_none());
    assert_eq!(declined.updated_at(), now - Duration::hours(3));
    // A captured payment is settled whatever its dates.
    payment_in(&store, pr.id, eur(2_500), PaymentStatus::Captured, t0()).await;

    expected.sort_by_key(|p| (p.updated_at(), p.id()));
    assert_eq!(
        store
            .needing_reconciliation(stale_before, since, 50)
            .await
            .unwrap(),
        expected
    );
    assert_eq!(
        store
            .needing_reconciliation(stale_before, since, 1)
            .await
            .unwrap(),
        expected[..1].to_vec(),
        "oldest update first, at most `limit`"
    );
}
