//! # app
//!
//! The `consultpay` server and CLI: configuration ([`config`]), the OS-backed system
//! ports ([`system`]), logs ([`telemetry`]) and the wiring of `billing-core` with the
//! storage, gateway and HTTP adapters ([`wiring`]). This crate wires; it must never hold
//! a business rule — those live in `billing-core`.

pub mod config;
pub mod system;
pub mod telemetry;
pub mod wiring;
