//! The payments table's totals, maintained: `payment_totals` holds, per practitioner,
//! UTC day of creation, status and currency, the count and the sums the totals' SQL
//! computes over `payments` (held, released, captured, refunded, fee, disputed).
//!
//! A trigger on `payments` keeps it exact in the writing transaction itself: an insert
//! adds the row's contribution, a delete subtracts it, an update subtracts the old
//! row's and adds the new one's (only when one of the summed columns moved). Whatever
//! writes a payment — the repository, a bulk load, a cascade — moves the totals with
//! it, and a rolled-back write moves nothing.
//!
//! The existing payments are summed once, after the trigger exists: on PostgreSQL the
//! migration's transaction holds the trigger's lock on `payments` until it commits, so
//! no write slips between the two.
//!
//! The status names and the sums are those of this migration's day, written out: a
//! later change to what the totals mean is a later migration.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The table, on both engines (`day` is a `date`: text `YYYY-MM-DD` on SQLite).
const TABLE: &str = "CREATE TABLE payment_totals (
    practitioner_id uuid NOT NULL,
    day date NOT NULL,
    status varchar NOT NULL,
    currency varchar NOT NULL,
    count bigint NOT NULL,
    held bigint NOT NULL,
    released bigint NOT NULL,
    captured bigint NOT NULL,
    refunded bigint NOT NULL,
    fee bigint NOT NULL,
    disputed bigint NOT NULL,
    PRIMARY KEY (practitioner_id, day, status, currency)
)";

/// The summed columns after `count`, in the table's order.
const SUMS: [&str; 6] = [
    "held", "released", "captured", "refunded", "fee", "disputed",
];

/// One payment's contribution to each of [`SUMS`] (each times `{sign}`), for the
/// payment row `{p}`: the same expressions as the totals' `SELECT` over `payments`
/// (`repo::payments::totals_select`).
fn contribution(p: &str, sign: &str) -> [String; 6] {
    [
        format!(
            "CASE WHEN {p}.status = 'authorized' THEN COALESCE({p}.authorized_minor, 0) ELSE 0 END"
        ),
        format!(
            "CASE WHEN {p}.captured_minor IS NOT NULL
                    THEN COALESCE({p}.authorized_minor, 0) - {p}.captured_minor
                  WHEN {p}.status IN ('released', 'expired')
                    THEN COALESCE({p}.authorized_minor, 0)
                  ELSE 0 END"
        ),
        format!("COALESCE({p}.captured_minor, 0)"),
        format!("{p}.refunded_minor"),
        format!("COALESCE({p}.fee_minor, 0)"),
        format!("({p}.dispute_withdrawn_minor + {p}.dispute_fee_minor)"),
    ]
    .map(|sum| format!("{sign} * {sum}"))
}

/// Adds `{sign}` times the payment row `{p}` to its totals row (`{day}`: its UTC day).
fn add(p: &str, day: &str, sign: &str) -> String {
    format!(
        "INSERT INTO payment_totals
           (practitioner_id, day, status, currency, count, {sums})
         VALUES ({p}.practitioner_id, {day}, {p}.status, {p}.currency, {sign},
                 {contribution})
         ON CONFLICT (practitioner_id, day, status, currency) DO UPDATE SET
           count = payment_totals.count + excluded.count, {updates}",
        contribution = contribution(p, sign).join(", "),
        sums = SUMS.join(", "),
        updates = SUMS
            .map(|c| format!("{c} = payment_totals.{c} + excluded.{c}"))
            .join(", "),
    )
}

/// What an update must change for the totals to move: the key and every summed column.
fn summed(p: &str) -> String {
    [
        "practitioner_id",
        "created_at",
        "status",
        "currency",
        "authorized_minor",
        "captured_minor",
        "refunded_minor",
        "fee_minor",
        "dispute_withdrawn_minor",
        "dispute_fee_minor",
    ]
    .map(|c| format!("{p}.{c}"))
    .join(", ")
}

/// Every payment summed into its totals row (the rows written before the trigger).
fn backfill(day: &str) -> String {
    let named = contribution("p", "1")
        .into_iter()
        .zip(SUMS)
        .map(|(sum, name)| format!("{sum} AS {name}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO payment_totals
           (practitioner_id, day, status, currency, count, {sums})
         SELECT practitioner_id, day, status, currency, COUNT(*), {summed}
         FROM (SELECT p.practitioner_id, {day} AS day, p.status, p.currency, {named}
               FROM payments p) AS c
         GROUP BY practitioner_id, day, status, currency",
        sums = SUMS.join(", "),
        summed = SUMS.map(|c| format!("SUM({c})")).join(", "),
    )
}

fn postgres_up() -> Vec<String> {
    let day = |p: &str| format!("({p}.created_at AT TIME ZONE 'UTC')::date");
    vec![
        TABLE.to_owned(),
        format!(
            "CREATE FUNCTION payment_totals_add(p payments, sign bigint) RETURNS void
             LANGUAGE sql AS $$ {} $$",
            add("(p)", &day("(p)"), "sign")
        ),
        // On an update whose key moved (its status), the two totals rows are written in
        // key order, so that concurrent writers lock them in one order.
        format!(
            "CREATE FUNCTION payments_maintain_totals() RETURNS trigger
             LANGUAGE plpgsql AS $$
             BEGIN
               IF TG_OP = 'INSERT' THEN
                 PERFORM payment_totals_add(NEW, 1);
               ELSIF TG_OP = 'DELETE' THEN
                 PERFORM payment_totals_add(OLD, -1);
               ELSIF ({old}) IS DISTINCT FROM ({new}) THEN
                 IF (OLD.practitioner_id, {old_day}, OLD.status, OLD.currency)
                    <= (NEW.practitioner_id, {new_day}, NEW.status, NEW.currency) THEN
                   PERFORM payment_totals_add(OLD, -1);
                   PERFORM payment_totals_add(NEW, 1);
                 ELSE
                   PERFORM payment_totals_add(NEW, 1);
                   PERFORM payment_totals_add(OLD, -1);
                 END IF;
               END IF;
               RETURN NULL;
             END $$",
            old = summed("OLD"),
            new = summed("NEW"),
            old_day = day("OLD"),
            new_day = day("NEW"),
        ),
        "CREATE TRIGGER payments_maintain_totals
         AFTER INSERT OR UPDATE OR DELETE ON payments
         FOR EACH ROW EXECUTE FUNCTION payments_maintain_totals()"
            .to_owned(),
        backfill(&day("p")),
    ]
}

fn sqlite_up() -> Vec<String> {
    // SQLite has one writer: no lock order to keep. (`date()` reads the stored
    // RFC 3339 text, offset included.)
    let day = |p: &str| format!("date({p}.created_at)");
    let trigger = |name: &str, event: &str, when: &str, body: &[String]| {
        format!(
            "CREATE TRIGGER {name} AFTER {event} ON payments FOR EACH ROW {when}
             BEGIN {}; END",
            body.join(";\n")
        )
    };
    vec![
        TABLE.to_owned(),
        trigger(
            "payments_totals_insert",
            "INSERT",
            "",
            &[add("NEW", &day("NEW"), "1")],
        ),
        trigger(
            "payments_totals_delete",
            "DELETE",
            "",
            &[add("OLD", &day("OLD"), "-1")],
        ),
        trigger(
            "payments_totals_update",
            "UPDATE",
            &format!("WHEN ({}) IS NOT ({})", summed("OLD"), summed("NEW")),
            &[add("OLD", &day("OLD"), "-1"), add("NEW", &day("NEW"), "1")],
        ),
        backfill(&day("p")),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements = match manager.get_database_backend() {
            DbBackend::Postgres => postgres_up(),
            DbBackend::Sqlite => sqlite_up(),
            other => {
                return Err(DbErr::Migration(format!(
                    "payment totals: no trigger for {other:?}"
                )));
            }
        };
        for statement in statements {
            db.execute_unprepared(&statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let statements: &[&str] = match manager.get_database_backend() {
            DbBackend::Postgres => &[
                "DROP TRIGGER payments_maintain_totals ON payments",
                "DROP FUNCTION payments_maintain_totals()",
                "DROP FUNCTION payment_totals_add(payments, bigint)",
                "DROP TABLE payment_totals",
            ],
            _ => &[
                "DROP TRIGGER payments_totals_insert",
                "DROP TRIGGER payments_totals_delete",
                "DROP TRIGGER payments_totals_update",
                "DROP TABLE payment_totals",
            ],
        };
        for statement in statements {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }
}
