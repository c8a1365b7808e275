//! The behaviours every backend must show: billing-core's repository conformance
//! suite (`billing_core::testing::conformance`, written once for every storage
//! adapter), and what only this adapter has (its migrations).

mod migrations;

pub use billing_core::testing::conformance::*;
pub use migrations::*;
