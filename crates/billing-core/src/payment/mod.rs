//! Payments: the authorise-then-capture state machine and the use cases around it.

pub mod holds;
pub mod ledger;
pub mod model;
pub mod ports;
pub mod service;
