//! # billing-core
//!
//! The pure domain of ConsultPay: billing for teleconsultations on Stripe Connect,
//! where the patient's card is only **authorised** before the session and the
//! practitioner **validates the act** afterwards with the final amount, never above
//! the hold.
//!
//! What is here: [`money`] (exact decimals with a currency), [`fees`] (Stripe's
//! percentage + fixed fee, rounded half-up), the practitioner's Stripe link, caps and
//! services ([`practitioner`]), consultations and the patient's gate
//! ([`consultation`]), the authorise-then-capture state machine ([`payment`]), the
//! permission policy ([`access`]), the audit trail ([`audit`]) and every use case
//! (C1–C13 of the specification), written against **ports**: async traits for storage
//! ([`practitioner::ports`], [`consultation::ports`], [`payment::ports`],
//! [`staff::UserRepository`], [`session::SessionRepository`], [`audit::AuditLog`]), the payment processor
//! ([`gateway`]) and the system ([`system`]: clock, ids, randomness).
//!
//! What is never here: I/O. No database, no HTTP, no async runtime, no randomness
//! source: adapters implement the ports (`storage-seaorm`, `gateway-stripe`,
//! `http-poem`), and an application wires them (`app`). `cargo tree -p billing-core
//! -e normal` shows no I/O crate. Money is never a float.
//!
//! ## Embedding
//!
//! The crates whose types appear in the API are re-exported: [`async_trait`],
//! [`chrono`], [`rust_decimal`] and [`uuid`] (`billing_core::chrono::Utc`, …), so
//! `billing-core` is the only dependency an embedder needs. The optional `serde`
//! feature serialises the gateway's answers and the values in them (ids and money as
//! text, validated when read back), for an adapter that stores them.
//!
//! Build [`Billing`] from your ports with [`Billing::builder`], or use a single service on
//! its own. Here an embedder keeps staff users in memory and signs one in:
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//!
//! use billing_core::async_trait::async_trait;
//! use billing_core::access::{Actor, Role, StaffUser};
//! use billing_core::audit::AuditEntry;
//! use billing_core::contact::EmailAddress;
//! use billing_core::password::PasswordHash;
//! use billing_core::practitioner::model::Practitioner;
//! use billing_core::repository::RepositoryError;
//! use billing_core::secrets::TokenHash;
//! use billing_core::ids::UserId;
//! use billing_core::identity::Identity;
//! use billing_core::staff::{AccessToken, StaffRecord, StaffService, UserRepository};
//! use billing_core::system::{IdGenerator, SecretGenerator, SystemClock};
//! use billing_core::BillingConfig;
//! use billing_core::chrono::{DateTime, Utc};
//!
//! #[derive(Default)]
//! struct MemoryUsers(Mutex<HashMap<TokenHash, StaffUser>>);
//!
//! #[async_trait]
//! impl UserRepository for MemoryUsers {
//!     async fn create_practitioner(
//!         &self,
//!         p: &Practitioner,
//!         token: &TokenHash,
//!         _audit: &AuditEntry,
//!     ) -> Result<(), RepositoryError> {
//!         let user = StaffUser {
//!             id: billing_core::ids::UserId::from_uuid(p.id.as_uuid()),
//!             name: p.name.to_string(),
//!             role: Role::Practitioner(p.id),
//!         };
//!         self.0.lock().unwrap().insert(token.clone(), user);
//!         Ok(())
//!     }
//!     async fn create_secretary(
//!         &self,
//!         user: &StaffUser,
//!         token: &TokenHash,
//!         _at: DateTime<Utc>,
//!         _audit: &AuditEntry,
//!     ) -> Result<(), RepositoryError> {
//!         self.0.lock().unwrap().insert(token.clone(), user.clone());
//!         Ok(())
//!     }
//!     async fn find_by_token(&self, t: &TokenHash) -> Result<Option<StaffUser>, RepositoryError> {
//!         Ok(self.0.lock().unwrap().get(t).cloned())
//!     }
//!     async fn count(&self) -> Result<u64, RepositoryError> {
//!         Ok(self.0.lock().unwrap().len() as u64)
//!     }
//!     async fn get_user(&self, id: UserId) -> Result<StaffUser, RepositoryError> {
//!         let users = self.0.lock().unwrap();
//!         users.values().find(|u| u.id == id).cloned().ok_or(RepositoryError::NotFound)
//!     }
//!     async fn list_users(&self) -> Result<Vec<StaffRecord>, RepositoryError> {
//!         Ok(Vec::new()) // not needed here
//!     }
//!     async fn replace_tokens(
//!         &self,
//!         id: UserId,
//!         replacement: Option<TokenHash>,
//!         _at: DateTime<Utc>,
//!         _audit: &[AuditEntry],
//!     ) -> Result<u64, RepositoryError> {
//!         let mut users = self.0.lock().unwrap();
//!         let user = users.values().find(|u| u.id == id).cloned().ok_or(RepositoryError::NotFound)?;
//!         let before = users.len();
//!         users.retain(|_, u| u.id != id);
//!         let revoked = (before - users.len()) as u64;
//!         if let Some(hash) = replacement {
//!             users.insert(hash, user);
//!         }
//!         Ok(revoked)
//!     }
//!     async fn set_login(
//!         &self,
//!         _user: UserId,
//!         _email: &EmailAddress,
//!         _password: &PasswordHash,
//!         _at: DateTime<Utc>,
//!         _audit: &[AuditEntry],
//!     ) -> Result<(), RepositoryError> {
//!         Err(RepositoryError::Unavailable("passwords are not kept here".into()))
//!     }
//!     async fn find_login(
//!         &self,
//!         _email: &EmailAddress,
//!     ) -> Result<Option<(StaffUser, PasswordHash)>, RepositoryError> {
//!         Ok(None) // tokens only: nobody signs in with a password
//!     }
//!     async fn find_by_identity(&self, _: &Identity) -> Result<Option<StaffUser>, RepositoryError> {
//!         Ok(None) // no OpenID provider here
//!     }
//!     async fn add_token(
//!         &self,
//!         user: UserId,
//!         token: &AccessToken,
//!         _audit: &[AuditEntry],
//!     ) -> Result<(), RepositoryError> {
//!         let mut users = self.0.lock().unwrap();
//!         let holder = users.values().find(|u| u.id == user).cloned();
//!         users.insert(token.id.clone(), holder.ok_or(RepositoryError::NotFound)?);
//!         Ok(())
//!     }
//!     async fn tokens_of(&self, _user: UserId) -> Result<Vec<AccessToken>, RepositoryError> {
//!         Ok(Vec::new()) // not needed here
//!     }
//!     async fn revoke_token(
//!         &self,
//!         user: UserId,
//!         token: &TokenHash,
//!         _at: DateTime<Utc>,
//!         _audit: &[AuditEntry],
//!     ) -> Result<bool, RepositoryError> {
//!         let mut users = self.0.lock().unwrap();
//!         let theirs = users.get(token).is_some_and(|u| u.id == user);
//!         Ok(theirs && users.remove(token).is_some())
//!     }
//!     async fn touch_token(&self, _: &TokenHash, _: DateTime<Utc>) -> Result<(), RepositoryError> {
//!         Ok(()) // last use is not kept here
//!     }
//! }
//!
//! /// Deterministic ids and secrets, as a test of yours might use.
//! struct Counter(Mutex<u128>);
//! impl IdGenerator for Counter {
//!     fn new_id(&self) -> billing_core::uuid::Uuid {
//!         let mut n = self.0.lock().unwrap();
//!         *n += 1;
//!         billing_core::uuid::Uuid::from_u128(*n)
//!     }
//! }
//! impl SecretGenerator for Counter {
//!     fn secret(&self) -> String {
//!         format!("{:0>43}", self.new_id().as_u128())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let counter = Arc::new(Counter(Mutex::new(0)));
//! let staff = StaffService::new(
//!     Arc::new(MemoryUsers::default()),
//!     Arc::new(SystemClock),
//!     counter.clone(),
//!     counter,
//!     BillingConfig::new("https://pay.example.org"),
//! );
//! let created = staff.add_practitioner("Dr Estival", Some("Europe/Paris")).await?;
//! let actor = staff.authenticate(Some(created.token.expose())).await?;
//! assert!(matches!(actor, Actor::Staff(StaffUser { role: Role::Practitioner(_), .. })));
//! // A rotated token replaces the old one at once.
//! let rotated = staff.rotate_token(created.id).await?;
//! assert!(staff.authenticate(Some(created.token.expose())).await.is_err());
//! assert!(staff.authenticate(Some(rotated.token.expose())).await.is_ok());
//! // The fee preview the practitioner sees (C7): 25.00 € → 0.60 € fee, 24.40 € net.
//! let schedule = billing_core::fees::FeeSchedule::default_for(billing_core::money::Currency::Eur);
//! let estimate = schedule.estimate(&billing_core::money::Money::parse("25,00", billing_core::money::Currency::Eur)?)?;
//! assert_eq!(estimate.fee.to_string(), "0.60 EUR");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

#![warn(missing_docs)]

#[macro_use]
mod serde_text;

pub mod access;
pub mod audit;
pub mod billing;
pub mod config;
pub mod consultation;
pub mod contact;
pub mod error;
pub mod fees;
pub mod format;
pub mod gateway;
pub mod identity;
pub mod ids;
pub mod invitation;
pub mod money;
pub mod outbox;
pub mod password;
pub mod payment;
pub mod practitioner;
pub mod receipt;
pub mod repository;
pub mod second_factor;
pub mod secrets;
pub mod session;
pub mod staff;
pub mod system;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod throttle;
pub mod video;

pub use billing::{Billing, BillingBuilder, MissingPort, Storage};

// The crates whose types and macros are in this crate's API, so that an embedder needs
// no other dependency, and never a version that does not match.
pub use async_trait;
pub use chrono;
pub use config::BillingConfig;
pub use error::{BillingError, ErrorClass};
pub use money::{Currency, Money, MoneyError};
pub use payment::model::{Lang, PaymentStatus};
pub use rust_decimal;
pub use uuid;

/// The crate's README, whose example runs as a doc-test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
