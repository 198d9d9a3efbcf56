//! hostwatch: agentless SSH monitoring for Linux fleets.
//!
//! One module per stage of the data flow (`docs/architecture.md` draws it):
//! `scheduler` starts polls, `poller` reaches hosts over `ssh` and runs the `probe`, whose
//! pure parsers turn output into a snapshot; the poller's writer stores it through `store`, the
//! only module that speaks SQL, in the same transaction as the alert changes the pure
//! `alerts` evaluator decides; `delivery` sends the notifications over each `channel`;
//! `urlcheck` checks URLs. `registry` is the one place that changes hosts and checks;
//! `services` builds every part once and owns their shutdown; `api` serves it all over HTTP
//! and `app` runs it as the `serve` command. Pure modules (`probe`, `alerts`, `channel`) import
//! no I/O: `tests/architecture.rs` keeps that, and the absence of import cycles, true.

pub mod alerts;
pub mod api;
pub mod app;
pub mod channel;
pub mod config;
pub mod crypto;
pub mod delivery;
pub mod error;
pub mod poller;
pub mod probe;
pub mod registry;
pub mod scheduler;
pub mod services;
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

/// jemalloc's start-up options (a C string jemalloc reads before the first allocation; the
/// `_RJEM_MALLOC_CONF` environment variable still overrides it). Allocations of 16 KiB and more
/// come from an arena that returns freed pages at once, so a new one starts on untouched pages:
/// each connection's few large blocks (russh's ~17 KiB channel blocks, its ~30 KB session task)
/// then only count towards RSS for the parts it writes. Measured at 10,000 hosts over 60 s:
/// 110.6 and 100.7 KiB per host against 116.4 and 115.6 with the default threshold (8 MiB),
/// CPU per poll within the run-to-run noise (223 and 199 µs against 204 and 213).
///
/// `cache_oblivious:false`: by default jemalloc starts each large allocation at a random cache
/// line within its first page (against cache-set aliasing), so a block that is written through
/// spans one page more than its size needs. Alternating 90 s runs at 10,000 hosts: 115.4 and
/// 115.5 KiB per host at the window's end against 119.1 and 121.1 with it on; CPU per poll per
/// simulator-% 15.9, 16.1 against 16.9, 16.0.
#[cfg(feature = "jemalloc")]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &u8 = &b"oversize_threshold:16384,cache_oblivious:false\0"[0];
