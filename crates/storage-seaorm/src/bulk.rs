//! Bulk loading (feature `bulk`): many consultations with their payments written in
//! a few multi-row statements, for benchmarks at scale and for imports from another
//! system. It writes the rows exactly as [`ConsultationRepository::create`] would,
//! without the audit entries and e-mails that go with scheduling one by one.
//!
//! [`ConsultationRepository::create`]: billing_core::consultation::ports::ConsultationRepository::create

use billing_core::consultation::model::ConsultationRecord;
use billing_core::payment::ports::PaymentQuery;
use billing_core::repository::RepositoryError;
use sea_orm::{ConnectionTrait, EntityTrait, IntoActiveModel, QueryTrait, Statement};

use crate::Store;
use crate::convert::{consultation_row, payment_row};
use crate::entity::{consultation, payment};
use crate::repo::finish;
use crate::repo::payments::{page_select, query_condition, totals_selects};
use crate::store::{Engine, unavailable, write_error};

/// Rows per statement: under SQLite's 32,766 bound parameters at 53 columns.
const ROWS_PER_STATEMENT: usize = 500;

impl Store {
    /// Writes `records` (consultations and their payments) in one transaction, a few
    /// hundred rows per statement. Nothing is written if one of them is refused.
    pub async fn insert_bulk(&self, records: &[ConsultationRecord]) -> Result<(), RepositoryError> {
        let payments = records
            .iter()
            .filter_map(|r| r.payment.as_ref())
            .map(payment_row)
            .collect::<Result<Vec<_>, _>>()?;
        let txn = self.begin_write().await?;
        let result = async {
            for chunk in records.chunks(ROWS_PER_STATEMENT) {
                consultation::Entity::insert_many(
                    chunk
                        .iter()
                        .map(|r| consultation_row(&r.consultation).into_active_model()),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(|e| write_error(e, "consultation"))?;
            }
            for chunk in payments.chunks(ROWS_PER_STATEMENT) {
                payment::Entity::insert_many(
                    chunk
                        .iter()
                        .cloned()
                        .map(IntoActiveModel::into_active_model),
                )
                .exec_without_returning(&txn)
                .await
                .map_err(|e| write_error(e, "payment"))?;
            }
            Ok(())
        }
        .await;
        finish(txn, result).await
    }

    /// Refreshes the planner's statistics (`ANALYZE`), as after any bulk load.
    pub async fn analyze(&self) -> Result<(), RepositoryError> {
        self.writer()
            .execute_unprepared("ANALYZE")
            .await
            .map(drop)
            .map_err(|e| write_error(e, "statistics"))
    }

    /// How the database runs the queries of [`PaymentRepository::list`] for `query`
    /// (the page, then each part of its totals): the lines of `EXPLAIN ANALYZE` on
    /// PostgreSQL, of `EXPLAIN QUERY PLAN` on SQLite.
    ///
    /// [`PaymentRepository::list`]: billing_core::payment::ports::PaymentRepository::list
    pub async fn explain_list(&self, query: &PaymentQuery) -> Result<Vec<String>, RepositoryError> {
        let Some(matches) = query_condition(query) else {
            return Ok(Vec::new());
        };
        let backend = self.db.get_database_backend();
        let mut lines = Vec::new();
        let statements = std::iter::once(page_select(query, matches.clone()).build(backend)).chain(
            totals_selects(query, matches)
                .into_iter()
                .map(|select| select.into_statement(backend)),
        );
        for statement in statements {
            // The select list is long and says nothing about the plan.
            let from = statement.sql.find(" FROM ").unwrap_or(0);
            lines.push(format!("-- SELECT …{}", &statement.sql[from..]));
            lines.extend(self.explain(statement).await?);
        }
        Ok(lines)
    }

    async fn explain(&self, statement: Statement) -> Result<Vec<String>, RepositoryError> {
        let (prefix, column) = match self.engine() {
            Engine::PostgreSql => ("EXPLAIN (ANALYZE, COSTS OFF) ", "QUERY PLAN"),
            Engine::Sqlite => ("EXPLAIN QUERY PLAN ", "detail"),
        };
        let rows = self
            .db
            .query_all_raw(Statement {
                sql: format!("{prefix}{}", statement.sql),
                ..statement
            })
            .await
            .map_err(unavailable)?;
        Ok(rows
            .iter()
            .filter_map(|r| r.try_get::<String>("", column).ok())
            .collect())
    }
}
