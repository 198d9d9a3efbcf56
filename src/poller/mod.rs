//! The poller: one poll of one host (SSH exec of the probe, parse, store). `local` runs the same
//! probe on this machine without SSH.

pub mod local;
