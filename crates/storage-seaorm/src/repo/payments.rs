//! `PaymentRepository`: the conditional write of the state machine, and the queries of
//! the payments table (C8) and of reconciliation (C10).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use async_trait::async_trait;
use billing_core::ids::{PaymentId, PaymentIntentId, PractitionerId};
use billing_core::money::{Currency, Money};
use billing_core::payment::model::{Payment, PaymentStatus};
use billing_core::payment::ports::{
    ChangeLog, HistoryEntry, PaymentCursor, PaymentPage, PaymentQuery, PaymentRepository,
    PaymentRow, PaymentScope, PaymentTotals,
};
use billing_core::receipt::{Document, DocumentNumber};
use billing_core::repository::RepositoryError;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use sea_orm::ActiveValue::NotSet;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func};
use sea_orm::{
    AccessMode, ActiveModelTrait, ColumnTrait, Condition, DatabaseTransaction, EntityTrait,
    FromQueryResult, IntoActiveModel, IsolationLevel, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, SelectModel, SelectTwo, Selector, TransactionTrait,
};

use super::{append_audit, documents, finish, outbox, unique};
use crate::Store;
use crate::convert::{
    at, history_from_row, history_row, payment_from_row, payment_row, payment_row_from_rows,
};
use crate::entity::{consultation, payment, payment_history, payment_total};
use crate::store::{Engine, unavailable, write_error, write_error_by_constraint};

/// The most rows one page may have (the port's bound).
const MAX_PAGE: u32 = 200;

/// The filter of a scope on `column` (a practitioner id), or `None` when the scope can
/// match nothing.
fn scope_on(column: impl ColumnTrait, scope: &PaymentScope) -> Option<Condition> {
    match scope {
        PaymentScope::All => Some(Condition::all()),
        PaymentScope::Practitioners(ids) if ids.is_empty() => None,
        PaymentScope::Practitioners(ids) => {
            Some(Condition::all().add(column.is_in(ids.iter().map(|p| p.as_uuid()))))
        }
    }
}

fn scope_condition(scope: &PaymentScope) -> Option<Condition> {
    scope_on(payment::Column::PractitionerId, scope)
}

/// The filter of `statuses` on `column` (none: every status).
fn statuses_on(column: impl ColumnTrait, statuses: &[PaymentStatus]) -> Condition {
    let mut cond = Condition::all();
    if !statuses.is_empty() {
        cond = cond.add(column.is_in(statuses.iter().map(|s| s.as_str().to_owned())));
    }
    cond
}

/// What a query matches, before pagination: shared by the page and its totals.
pub(crate) fn query_condition(query: &PaymentQuery) -> Option<Condition> {
    let mut cond =
        scope_condition(&query.scope)?.add(statuses_on(payment::Column::Status, &query.statuses));
    if let Some(from) = query.from {
        cond = cond.add(payment::Column::CreatedAt.gte(at(from)));
    }
    if let Some(to) = query.to {
        cond = cond.add(payment::Column::CreatedAt.lt(at(to)));
    }
    Some(cond)
}

/// Strictly after `cursor` in the order newest first, then highest id first, as one
/// row comparison, `(created_at, id) < (?, ?)`: the index on `(practitioner_id,
/// created_at, id)` starts its range there. (Written as `created_at < ? OR (created_at
/// = ? AND id < ?)` it was a filter over every newer row: 47.7 ms at depth 100k of
/// 500,000 payments on PostgreSQL, 0.2 ms as a row comparison; docs/PERFORMANCE.md.)
fn after_cursor(cursor: &PaymentCursor) -> Expr {
    // Qualified: the page joins `consultations`, which has both columns too.
    Expr::tuple([
        Expr::col((payment::Entity, payment::Column::CreatedAt)),
        Expr::col((payment::Entity, payment::Column::Id)),
    ])
    .lt(Expr::tuple([
        Expr::val(at(cursor.created_at)),
        Expr::val(cursor.id.as_uuid()),
    ]))
}

/// `CAST(SUM(expr) AS BIGINT)`: PostgreSQL sums `bigint` into `numeric`.
fn sum_bigint(expr: Expr) -> Expr {
    Func::cast_as(Func::sum(expr), Alias::new("BIGINT")).into()
}

fn or_zero(col: payment::Column) -> Expr {
    Func::coalesce([Expr::col(col), Expr::val(0_i64)]).into()
}

/// One currency's count and sums, from the payments or from their maintained totals.
#[derive(Debug, FromQueryResult)]
pub(crate) struct TotalsRow {
    currency: String,
    count: i64,
    held: i64,
    released: i64,
    captured: i64,
    refunded: i64,
    fee: i64,
    disputed: i64,
}

impl TotalsRow {
    /// Both rows' counts and sums (of one currency); `None` past `i64`.
    fn plus(&self, other: &TotalsRow) -> Option<TotalsRow> {
        Some(TotalsRow {
            currency: self.currency.clone(),
            count: self.count.checked_add(other.count)?,
            held: self.held.checked_add(other.held)?,
            released: self.released.checked_add(other.released)?,
            captured: self.captured.checked_add(other.captured)?,
            refunded: self.refunded.checked_add(other.refunded)?,
            fee: self.fee.checked_add(other.fee)?,
            disputed: self.disputed.checked_add(other.disputed)?,
        })
    }
}

/// The rows of [`totals_selects`] added up per currency, in currency order; a currency
/// none of whose payments matched (its maintained count back to 0) has no row.
fn add_up(rows: Vec<TotalsRow>) -> Result<Vec<PaymentTotals>, RepositoryError> {
    let mut by_currency: BTreeMap<String, TotalsRow> = BTreeMap::new();
    for row in rows {
        match by_currency.entry(row.currency.clone()) {
            Entry::Vacant(e) => {
                e.insert(row);
            }
            Entry::Occupied(mut e) => {
                let sum = e.get().plus(&row).ok_or_else(|| {
                    RepositoryError::Corrupt(format!(
                        "payments totals in {}: overflow",
                        row.currency
                    ))
                })?;
                e.insert(sum);
            }
        }
    }
    let mut totals = by_currency
        .into_values()
        .filter(|row| row.count != 0)
        .map(totals_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    totals.sort_by_key(|t| t.currency);
    Ok(totals)
}

fn totals_from_row(row: TotalsRow) -> Result<PaymentTotals, RepositoryError> {
    let corrupt = |what: &str| {
        RepositoryError::Corrupt(format!("payments totals in {}: {what}", row.currency))
    };
    let currency: Currency = row
        .currency
        .parse()
        .map_err(|_| corrupt("unknown currency"))?;
    let m = |minor: i64| Money::from_minor(minor, currency);
    let (held, released, captured, refunded, fee, disputed) = (
        m(row.held),
        m(row.released),
        m(row.captured),
        m(row.refunded),
        m(row.fee),
        m(row.disputed),
    );
    // The reference definition (`PaymentTotals::add`) sums each payment's net; the sum
    // of nets is the net of the sums.
    let net = captured
        .checked_sub(&refunded)
        .and_then(|n| n.checked_sub(&fee))
        .and_then(|n| n.checked_sub(&disputed))
        .map_err(|e| corrupt(&e.to_string()))?;
    Ok(PaymentTotals {
        currency,
        count: u64::try_from(row.count).map_err(|_| corrupt("negative count"))?,
        held,
        released,
        captured,
        refunded,
        fee,
        disputed,
        net,
    })
}

/// A page's rows (one more than asked: whether it exists says if there is a next page).
pub(crate) fn page_select(
    query: &PaymentQuery,
    matches: Condition,
) -> SelectTwo<payment::Entity, consultation::Entity> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    let mut items = payment::Entity::find().filter(matches);
    if let Some(cursor) = &query.after {
        items = items.filter(after_cursor(cursor));
    }
    items
        .order_by_desc(payment::Column::CreatedAt)
        .order_by_desc(payment::Column::Id)
        .limit(u64::from(limit) + 1)
        .find_also_related(consultation::Entity)
}

/// The totals of every payment `matches`, per currency.
pub(crate) fn totals_select(matches: Condition) -> Selector<SelectModel<TotalsRow>> {
    let held = Expr::case(
        payment::Column::Status.eq(PaymentStatus::Authorized.as_str()),
        or_zero(payment::Column::AuthorizedMinor),
    )
    .finally(Expr::val(0_i64));
    // `Payment::released`: the hold minus the capture, or the whole hold released
    // or lapsed.
    let released = Expr::case(
        payment::Column::CapturedMinor.is_not_null(),
        or_zero(payment::Column::AuthorizedMinor).sub(Expr::col(payment::Column::CapturedMinor)),
    )
    .case(
        payment::Column::Status.is_in([
            PaymentStatus::Released.as_str(),
            PaymentStatus::Expired.as_str(),
        ]),
        or_zero(payment::Column::AuthorizedMinor),
    )
    .finally(Expr::val(0_i64));
    payment::Entity::find()
        .select_only()
        .column(payment::Column::Currency)
        .column_as(Expr::col(payment::Column::Id).count(), "count")
        .column_as(sum_bigint(held.into()), "held")
        .column_as(sum_bigint(released.into()), "released")
        .column_as(
            sum_bigint(or_zero(payment::Column::CapturedMinor)),
            "captured",
        )
        .column_as(
            sum_bigint(Expr::col(payment::Column::RefundedMinor)),
            "refunded",
        )
        .column_as(sum_bigint(or_zero(payment::Column::FeeMinor)), "fee")
        .column_as(
            sum_bigint(
                Expr::col(payment::Column::DisputeWithdrawnMinor)
                    .add(Expr::col(payment::Column::DisputeFeeMinor)),
            ),
            "disputed",
        )
        .filter(matches)
        .group_by(payment::Column::Currency)
        .into_model::<TotalsRow>()
}

/// The UTC midnight that starts `day`.
fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// The whole UTC days inside `[from, to)`, as `[first, end)`: from the first midnight
/// at or after `from` to the last midnight at or before `to` (unbounded on a side the
/// query leaves open). `None` when not one whole day is inside.
fn whole_days(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Option<(Option<NaiveDate>, Option<NaiveDate>)> {
    let first = match from {
        None => None,
        Some(from) => {
            let day = from.date_naive();
            Some(if midnight(day) == from {
                day
            } else {
                day.succ_opt()?
            })
        }
    };
    let end = to.map(|to| to.date_naive());
    match (first, end) {
        (Some(first), Some(end)) if first >= end => None,
        _ => Some((first, end)),
    }
}

/// The maintained totals (`payment_totals`, kept by a trigger on `payments`) of the
/// rows `days` selects, per currency.
fn maintained_select(days: Condition) -> Selector<SelectModel<TotalsRow>> {
    use payment_total::Column as T;
    let sum = |c: T| sum_bigint(Expr::col(c));
    payment_total::Entity::find()
        .select_only()
        .column(T::Currency)
        .column_as(sum(T::Count), "count")
        .column_as(sum(T::Held), "held")
        .column_as(sum(T::Released), "released")
        .column_as(sum(T::Captured), "captured")
        .column_as(sum(T::Refunded), "refunded")
        .column_as(sum(T::Fee), "fee")
        .column_as(sum(T::Disputed), "disputed")
        .filter(days)
        .group_by(T::Currency)
        .into_model::<TotalsRow>()
}

/// The statements whose rows, added up per currency ([`add_up`]), are the totals of
/// `query` (which `matches`): the maintained totals of the whole UTC days inside its
/// range, and the payments themselves on the partial days at either end, or only the
/// payments when no whole day is inside. Each is served by an index: the totals' key
/// `(practitioner_id, day, …)`, and `(practitioner_id, created_at)` over at most a day
/// at each end.
pub(crate) fn totals_selects(
    query: &PaymentQuery,
    matches: Condition,
) -> Vec<Selector<SelectModel<TotalsRow>>> {
    let (from, to) = (query.from.map(at), query.to.map(at));
    let Some((first, end)) = whole_days(from, to) else {
        return vec![totals_select(matches)];
    };
    let Some(scope) = scope_on(payment_total::Column::PractitionerId, &query.scope) else {
        return Vec::new();
    };
    let mut days = scope.add(statuses_on(payment_total::Column::Status, &query.statuses));
    if let Some(first) = first {
        days = days.add(payment_total::Column::Day.gte(first));
    }
    if let Some(end) = end {
        days = days.add(payment_total::Column::Day.lt(end));
    }
    let mut selects = vec![maintained_select(days)];
    if let (Some(from), Some(first)) = (from, first.map(midnight))
        && from < first
    {
        selects.push(totals_select(
            matches.clone().add(payment::Column::CreatedAt.lt(first)),
        ));
    }
    if let (Some(to), Some(end)) = (to, end.map(midnight))
        && end < to
    {
        selects.push(totals_select(
            matches.add(payment::Column::CreatedAt.gte(end)),
        ));
    }
    selects
}

impl Store {
    /// A read-only transaction seeing one snapshot, so that a page and its totals agree.
    /// (SQLite: a deferred transaction reads one snapshot of the WAL by itself.)
    async fn begin_snapshot(&self) -> Result<DatabaseTransaction, RepositoryError> {
        match self.engine() {
            Engine::PostgreSql => self
                .db
                .begin_with_config(
                    Some(IsolationLevel::RepeatableRead),
                    Some(AccessMode::ReadOnly),
                )
                .await
                .map_err(unavailable),
            Engine::Sqlite => self.db.begin().await.map_err(unavailable),
        }
    }

    async fn page(
        txn: &DatabaseTransaction,
        query: &PaymentQuery,
        matches: Condition,
    ) -> Result<PaymentPage, RepositoryError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        let rows = page_select(query, matches.clone())
            .all(txn)
            .await
            .map_err(unavailable)?;
        let more = rows.len() > limit as usize;
        let items = rows
            .into_iter()
            .take(limit as usize)
            .map(|(p, c)| payment_row_from_rows(p, c))
            .collect::<Result<Vec<PaymentRow>, _>>()?;
        let next = match (more, items.last()) {
            (true, Some(last)) => Some(PaymentCursor {
                created_at: last.payment.created_at(),
                id: last.payment.id(),
            }),
            _ => None,
        };
        if !query.totals {
            return Ok(PaymentPage {
                items,
                next,
                totals: Vec::new(),
            });
        }
        let mut rows = Vec::new();
        for select in totals_selects(query, matches) {
            rows.extend(select.all(txn).await.map_err(unavailable)?);
        }
        Ok(PaymentPage {
            items,
            next,
            totals: add_up(rows)?,
        })
    }
}

#[async_trait]
impl PaymentRepository for Store {
    async fn get(&self, id: PaymentId) -> Result<Payment, RepositoryError> {
        payment::Entity::find_by_id(id.as_uuid())
            .all(&self.db)
            .await
            .map(unique)
            .map_err(unavailable)?
            .ok_or(RepositoryError::NotFound)
            .and_then(payment_from_row)
    }

    async fn find_by_intent(
        &self,
        intent: &PaymentIntentId,
    ) -> Result<Option<Payment>, RepositoryError> {
        payment::Entity::find()
            .filter(payment::Column::Intent.eq(intent.as_str()))
            .order_by_desc(payment::Column::UpdatedAt)
            .order_by_desc(payment::Column::Id)
            .one(&self.db)
            .await
            .map_err(unavailable)?
            .map(payment_from_row)
            .transpose()
    }

    async fn update(
        &self,
        p: &Payment,
        expected_version: i64,
        log: &ChangeLog,
    ) -> Result<(), RepositoryError> {
        let mut changes = payment_row(p)?.into_active_model().reset_all();
        changes.id = NotSet;
        let txn = self.begin_write().await?;
        let result = async {
            // The concurrency contract: one statement decides whether this writer won.
            let written = payment::Entity::update_many()
                .set(changes)
                .filter(payment::Column::Id.eq(p.id().as_uuid()))
                .filter(payment::Column::Version.eq(expected_version))
                .exec(&txn)
                .await
                .map_err(|e| {
                    write_error_by_constraint(
                        e,
                        "consultation",
                        "payment of this consultation",
                        "payment",
                    )
                })?;
            if written.rows_affected == 0 {
                let exists = payment::Entity::find_by_id(p.id().as_uuid())
                    .all(&txn)
                    .await
                    .map(unique)
                    .map_err(unavailable)?
                    .is_some();
                return Err(if exists {
                    RepositoryError::Conflict
                } else {
                    RepositoryError::NotFound
                });
            }
            append_log(&txn, log).await
        }
        .await;
        finish(txn, result).await
    }

    async fn documents(&self, payment: PaymentId) -> Result<Vec<Document>, RepositoryError> {
        self.documents_of(payment).await
    }

    async fn receipt_numbers(
        &self,
        payments: &[PaymentId],
    ) -> Result<Vec<(PaymentId, DocumentNumber)>, RepositoryError> {
        self.receipt_numbers_of(payments).await
    }

    async fn list(&self, query: &PaymentQuery) -> Result<PaymentPage, RepositoryError> {
        let Some(matches) = query_condition(query) else {
            return Ok(PaymentPage {
                items: Vec::new(),
                next: None,
                totals: Vec::new(),
            });
        };
        let txn = self.begin_snapshot().await?;
        let result = Store::page(&txn, query, matches).await;
        finish(txn, result).await
    }

    async fn holds_due(
        &self,
        scope: &PaymentScope,
        deadline_before: DateTime<Utc>,
    ) -> Result<Vec<PaymentRow>, RepositoryError> {
        let Some(in_scope) = scope_condition(scope) else {
            return Ok(Vec::new());
        };
        payment::Entity::find()
            .filter(in_scope)
            .filter(payment::Column::Status.eq(PaymentStatus::Authorized.as_str()))
            .filter(payment::Column::CaptureBefore.lte(at(deadline_before)))
            .order_by_asc(payment::Column::CaptureBefore)
            .order_by_asc(payment::Column::Id)
            .find_also_related(consultation::Entity)
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|(p, c)| payment_row_from_rows(p, c))
            .collect()
    }

    async fn holds_to_place(
        &self,
        starting_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PaymentRow>, RepositoryError> {
        payment::Entity::find()
            .filter(payment::Column::Status.eq(PaymentStatus::CardSaved.as_str()))
            .find_also_related(consultation::Entity)
            .filter(consultation::Column::StartsAt.lt(at(starting_before)))
            .order_by_asc(consultation::Column::StartsAt)
            .order_by_asc(payment::Column::Id)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|(p, c)| payment_row_from_rows(p, c))
            .collect()
    }

    async fn needing_reconciliation(
        &self,
        stale_before: DateTime<Utc>,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Payment>, RepositoryError> {
        let (stale_before, since) = (at(stale_before), at(since));
        let pending = Condition::all().add(payment::Column::PendingSince.lt(stale_before));
        let transient = Condition::all()
            .add(payment::Column::Status.is_in([
                PaymentStatus::Incomplete.as_str(),
                PaymentStatus::Failed.as_str(),
            ]))
            .add(
                Condition::any()
                    .add(payment::Column::HasCheckout.eq(true))
                    .add(payment::Column::Intent.is_not_null()),
            )
            .add(payment::Column::UpdatedAt.gte(since))
            .add(payment::Column::UpdatedAt.lt(stale_before));
        payment::Entity::find()
            .filter(Condition::any().add(pending).add(transient))
            .order_by_asc(payment::Column::UpdatedAt)
            .order_by_asc(payment::Column::Id)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(payment_from_row)
            .collect()
    }

    async fn open_holds(&self, practitioner: PractitionerId) -> Result<u64, RepositoryError> {
        // Two counts, each on an index, rather than one `status IN … OR pending_operation
        // IS NOT NULL` that no index serves (a scan of every payment): the open
        // statuses by `(practitioner_id, status, …)`, then the few payments with an
        // operation in flight by `pending_since` (set exactly when an operation is).
        let open = [
            PaymentStatus::Authorized.as_str(),
            PaymentStatus::CardSaved.as_str(),
        ];
        let of = || {
            payment::Entity::find()
                .filter(payment::Column::PractitionerId.eq(practitioner.as_uuid()))
        };
        let held = of()
            .filter(payment::Column::Status.is_in(open))
            .count(&self.db)
            .await
            .map_err(unavailable)?;
        let in_flight = of()
            .filter(payment::Column::PendingSince.is_not_null())
            .filter(payment::Column::PendingOperation.is_not_null())
            .filter(payment::Column::Status.is_not_in(open))
            .count(&self.db)
            .await
            .map_err(unavailable)?;
        Ok(held + in_flight)
    }

    async fn history(&self, id: PaymentId) -> Result<Vec<HistoryEntry>, RepositoryError> {
        // Insertion order: writes to one payment are serialised by its version, so the
        // sequence is the order in which its moves were committed.
        payment_history::Entity::find()
            .filter(payment_history::Column::PaymentId.eq(id.as_uuid()))
            .order_by_asc(payment_history::Column::Seq)
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(history_from_row)
            .collect()
    }
}

/// Writes what goes with a change, in its transaction: history, audit, e-mail, and
/// documents last (their numbering locks the practitioner's counter until the
/// commit, so concurrent captures of one practitioner wait for as little as possible).
pub(super) async fn append_log(
    txn: &DatabaseTransaction,
    log: &ChangeLog,
) -> Result<(), RepositoryError> {
    let history = log
        .history
        .iter()
        .map(history_row)
        .collect::<Result<Vec<_>, _>>()?;
    if !history.is_empty() {
        payment_history::Entity::insert_many(history)
            .exec_without_returning(txn)
            .await
            .map_err(|e| write_error(e, "history entry"))?;
    }
    append_audit(txn, &log.audit).await?;
    outbox::enqueue_in(txn, &log.messages).await?;
    documents::issue(txn, &log.documents).await
}
