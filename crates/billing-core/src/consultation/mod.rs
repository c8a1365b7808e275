//! Consultations, scheduling and the patient's side.

pub mod model;
pub mod ports;
pub mod service;
