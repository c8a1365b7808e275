//! Consultations, scheduling and the patient's side.

pub mod day;
pub mod model;
pub mod policy;
pub mod ports;
pub mod service;
