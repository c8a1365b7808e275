//! Wire types: one sea-orm entity per table, exactly as stored.
//!
//! Nothing here knows the domain: rows hold integer minor units, currency codes, state
//! names and nullable columns. [`crate::convert`] is the only place that turns them
//! into `billing-core` values (and re-validates them on the way).

pub mod audit_entry;
pub mod consultation;
pub mod document;
pub mod document_counter;
pub mod failed_sign_in;
pub mod idempotency_key;
pub mod oauth_state;
pub mod outbox_message;
pub mod payment;
pub mod payment_history;
pub mod payment_total;
pub mod practitioner;
pub mod sandbox_head;
pub mod sandbox_object;
pub mod secretary_link;
pub mod service;
pub mod staff_identity;
pub mod staff_login;
pub mod staff_login_link;
pub mod staff_recovery_code;
pub mod staff_second_factor;
pub mod staff_session;
pub mod staff_token;
pub mod user;
pub mod webhook_event;
