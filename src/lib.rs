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

/// jemalloc instead of the C library's allocator, for the service and everything linking this
/// library (the bench measures the poller with the allocator the service has). A fleet is
/// thousands of long-lived connections, each with buffers that grow and shrink every poll; with
/// glibc's malloc that fragmentation held about 125 KiB per host at 10,000 hosts and with
/// jemalloc about 108 KiB, with some 10 % less CPU per poll (figures in the commit that made the
/// change). Build with `--no-default-features` for heap profilers that hook malloc (heaptrack).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
