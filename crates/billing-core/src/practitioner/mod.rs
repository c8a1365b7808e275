//! Practitioners: the Stripe link, fee caps and services.

pub mod model;
pub mod ports;
pub mod profile;
pub mod service;
