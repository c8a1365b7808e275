//! # storage-seaorm
//!
//! ConsultPay's storage adapter: every repository port of `billing-core`
//! (practitioners and their Stripe link, OAuth states, services, consultations,
//! payments with their history, the webhook inbox, idempotency keys, staff users and
//! their hashed tokens, the audit trail) implemented on one [`Store`], over sea-orm 2
//! and sqlx: **SQLite** by default (a file, or `sqlite::memory:` for tests) and
//! **PostgreSQL** in production, chosen by URL. The schema is embedded as migrations
//! ([`Store::migrate`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), storage_seaorm::StoreError> {
//! use std::sync::Arc;
//! use billing_core::{audit, consultation, payment, practitioner, staff};
//!
//! // `?mode=rwc` creates the file if needed; `postgres://…` works the same way.
//! let store = storage_seaorm::Store::connect("sqlite://consultpay.db?mode=rwc").await?;
//! store.migrate().await?;
//! store.ping().await?; // readiness
//!
//! // One store fills every storage port of `billing_core::Billing::builder`.
//! let store = Arc::new(store);
//! let _: Arc<dyn practitioner::ports::PractitionerRepository> = store.clone();
//! let _: Arc<dyn practitioner::ports::OAuthStateRepository> = store.clone();
//! let _: Arc<dyn practitioner::ports::ServiceRepository> = store.clone();
//! let _: Arc<dyn consultation::ports::ConsultationRepository> = store.clone();
//! let _: Arc<dyn payment::ports::PaymentRepository> = store.clone();
//! let _: Arc<dyn payment::ports::WebhookInbox> = store.clone();
//! let _: Arc<dyn payment::ports::IdempotencyStore> = store.clone();
//! let _: Arc<dyn staff::UserRepository> = store.clone();
//! let _: Arc<dyn audit::AuditLog> = store.clone();
//! // … all of them at once: `Billing::builder(config).storage(store)`.
//! fn every_storage_port<S: billing_core::Storage>(_: &S) {}
//! every_storage_port(store.as_ref());
//! # Ok(()) }
//! ```
//!
//! ## What it guarantees
//!
//! - **Concurrency is the database's job.** Aggregates are written with a conditional
//!   update (`… WHERE id = ? AND version = ?`); the loser of a race gets
//!   [`RepositoryError::Conflict`](billing_core::repository::RepositoryError::Conflict)
//!   and nothing is written. Unique constraints (one payment per consultation, a
//!   webhook event id once, an idempotency key once, a pay-token hash once) and the
//!   single-use OAuth state are decided by the database, so several servers can share
//!   it. `SELECT … FOR UPDATE` is never used (sea-orm drops it on SQLite).
//! - **Atomic writes.** A change, its history rows and its audit entries commit
//!   together or not at all.
//! - **Exact money.** Amounts are integer minor units beside a currency code; read back
//!   through `Money` and `Payment::restore`, so stored data that breaks an invariant is
//!   `Corrupt`, never a panic. Timestamps keep microseconds on both engines.
//!
//! ## What it must never do
//!
//! Decide anything about billing (that is `billing-core`'s), depend on another
//! adapter, store a secret in clear (tokens and OAuth states arrive hashed), hold a
//! lock in process memory, or let a wire row (the private `entity` module) out of the
//! crate: rows become domain values only through the validating conversions of the
//! private `convert` module.
//!
//! ## Features
//!
//! - `bulk`: `Store::insert_bulk` (many consultations and payments in a few multi-row
//!   statements, without the audit entries and e-mails of scheduling one by one),
//!   `Store::analyze` and `Store::explain_list` (the plans of the payments table's two
//!   queries). `benches/scale.rs` loads a million payments with it.

#[cfg(feature = "bulk")]
mod bulk;
mod convert;
mod entity;
pub mod migration;
mod repo;
mod store;

pub use store::{Engine, Store, StoreError};
