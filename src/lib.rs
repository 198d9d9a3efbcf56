//! hostwatch: agentless SSH monitoring for Linux fleets.
//!
//! One module per stage of the data flow (`docs/architecture.md` draws it):
//! `scheduler` starts polls, `poller` reaches hosts over `ssh` and runs the `probe`, whose
//! pure parsers turn output into a snapshot; the poller's writer stores it through `store`, the
//! only module that speaks SQL, in the same transaction as the alert changes the pure
//! `alerts` evaluator decides; `delivery` sends the notifications over each `channel`;
//! `urlcheck` checks URLs. `registry` is the one place that changes hosts and checks;
//! `services` builds every part once and owns their shutdown; `api` serves it all over HTTP
//! and `app` runs it as the `serve` command, whose `cluster` loop decides whether this node
//! polls (it holds the SQLite lock or the PostgreSQL lease) or stands by; `tiers` decides which
//! history tier and step answer a query. Pure modules (`probe`, `alerts`, `channel`, `tiers`) import
//! no I/O: `tests/architecture.rs` keeps that, and the absence of import cycles, true.

pub mod accounts;
pub mod alerts;
pub mod api;
pub mod app;
pub mod channel;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod delivery;
pub mod error;
pub mod logging;
pub mod logs;
pub mod poller;
pub mod probe;
pub mod registry;
pub mod scheduler;
pub mod server;
pub mod services;
pub mod ssh;
pub mod store;
pub mod tiers;
pub mod urlcheck;
pub mod validate;

/// jemalloc instead of the C library's allocator, for the service and everything linking this
/// library (the bench measures the poller with the allocator the service has). A fleet is
/// thousands of long-lived connections, each with buffers that grow and shrink every poll;
/// jemalloc keeps that fragmentation lower than glibc's malloc, at less CPU per poll
/// (`docs/performance.md`). Build with `--no-default-features` for heap profilers that hook
/// malloc (heaptrack).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options (a C string jemalloc reads before the first allocation; the
/// `_RJEM_MALLOC_CONF` environment variable still overrides it).
///
/// `oversize_threshold:16384`: allocations of 16 KiB and more come from an arena that returns
/// freed pages at once, so a new one starts on untouched pages: each connection's few large
/// blocks (russh's channel blocks, its session task) then count towards RSS only for the parts
/// it writes.
///
/// `cache_oblivious:false`: by default jemalloc starts each large allocation at a random cache
/// line within its first page (against cache-set aliasing), so a block that is written through
/// spans one page more than its size needs.
#[cfg(feature = "jemalloc")]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &u8 = &b"oversize_threshold:16384,cache_oblivious:false\0"[0];
