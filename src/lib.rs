//! hostwatch: agentless SSH monitoring for Linux fleets.
//!
//! One module per stage of the data flow (see `DESIGN.md`): `api` serves the REST surface,
//! `store` holds the queries, `alerts` the pure alert rules, `ssh` the key handling, and `app`
//! wires them into the running service.

pub mod alerts;
pub mod api;
pub mod app;
pub mod config;
pub mod crypto;
pub mod delivery;
pub mod enroll;
pub mod error;
pub mod evaluator;
pub mod poller;
pub mod probe;
pub mod scheduler;
pub mod ssh;
pub mod store;
pub mod urlcheck;
pub mod validate;
