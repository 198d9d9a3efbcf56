//! SSH: keys and fingerprints now; connections, host-key pinning and exec come with the SSH
//! engine. Everything that touches russh lives under this module.

pub mod burst;
pub mod client;
pub mod keys;
pub mod pool;
