//! End-to-end tests: the real server on 127.0.0.1, spoken to over HTTP.

mod authz;
mod bad_input;
mod cluster;
mod contract;
mod dashboard;
mod day;
mod flow;
mod forms;
mod helpers;
mod invitations;
mod live;
mod mail;
mod oauth;
mod ops;
mod readme;
mod receipts;
mod sessions;
mod setup_webhooks;
mod slow;
mod staff;
mod webhooks;
