//! One active poller per database. Two processes polling the same fleet poll every host twice
//! and write every alert twice, so:
//!
//! - on SQLite the database file is locked by the OS ([`DataDirLock`]) and a second process on
//!   it exits at once, naming the PID that holds it;
//! - on PostgreSQL every node serves the API, and the nodes elect the one that polls, checks
//!   URLs and delivers through a lease row whose expiry is the database's clock
//!   ([`crate::store::cluster`]): the holder renews it every fifth of the lease period, a
//!   standby takes it over once it has expired, and the fence in every leader-only transaction
//!   keeps a deposed leader from committing anything after.
//!
//! [`run_role`] is each node's loop: heartbeat, lease, and starting or stopping the leader's
//! workers ([`Services::lead`], [`Services::step_down`]).

use std::{
    fs::File,
    io::{Read, Seek, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use entity::types::NodeRole;
use tokio_util::sync::CancellationToken;

use crate::{
    error::{Error, Result},
    services::{Services, WorkerSettings},
    store::cluster::{self as store, NodeInfo},
};

/// How a node shares its database.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// The only process on it (SQLite, locked): leads from the start.
    Sole,
    /// One of any number of nodes on PostgreSQL, electing a leader through the lease.
    Lease(LeaseTiming),
}

/// The lease's timing, from its period: the longest a fleet goes unpolled after its leader
/// dies is one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    pub period: Duration,
    /// How long a taken or renewed lease lasts: two thirds of the period, so a standby that
    /// looks every `every` finds it expired within the period.
    pub ttl: Duration,
    /// How often the leader renews and a standby looks: a fifth of the period.
    pub every: Duration,
}

impl LeaseTiming {
    /// The timing of a lease `period`, refused when shorter than a poll may take (a poll in
    /// flight would routinely outlast the leader's term) or than a second.
    pub fn new(period: Duration, poll_timeout: Duration) -> Result<Self> {
        if period < Duration::from_secs(1) {
            return Err(Error::Config(format!(
                "--lease-period {period:?} is too short: at least 1s"
            )));
        }
        if period <= poll_timeout {
            return Err(Error::Config(format!(
                "--lease-period {period:?} is not longer than the poll deadline \
                 (--poll-timeout {poll_timeout:?}): a poll would outlast the leader's term; \
                 raise --lease-period or lower --poll-timeout"
            )));
        }
        Ok(Self {
            period,
            ttl: period * 2 / 3,
            every: period / 5,
        })
    }
}

/// The OS lock on a SQLite database: held while the process lives (the OS drops it when the
/// process dies, however it dies), with the holder's PID in the file for the message.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    pub path: PathBuf,
}

impl DataDirLock {
    /// Locks `path` (created when missing), or says which process holds it.
    pub fn take(path: &Path) -> Result<Self> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(format!("opening the lock file {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_owned()
                } else {
                    format!("another hostwatch (PID {holder})")
                };
                return Err(Error::Config(format!(
                    "{who} holds {}: one process serves a SQLite database; stop it, or give \
                     this one another --data-dir",
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("locking {}", path.display()), e));
            }
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(Self {
            _file: file,
            path: path.to_owned(),
        })
    }
}

/// How often a sole node writes its heartbeat (only shown by `GET /cluster`).
const SOLE_HEARTBEAT: Duration = Duration::from_secs(10);
/// Rows of nodes not heard of for this long are deleted.
const STALE_NODE: Duration = Duration::from_secs(24 * 3600);

/// The node's loop until `stop`: leads at once (sole), or takes, renews and loses the lease
/// (PostgreSQL), starting and stopping the leader's workers to match. Returns an error only
/// when the workers cannot start on a sole node.
pub async fn run_role(
    services: Services,
    node: NodeInfo,
    mode: Mode,
    workers: WorkerSettings,
    stop: CancellationToken,
) -> Result<()> {
    let db = services.db.clone();
    if let Err(e) = store::prune_nodes(&db, STALE_NODE.as_millis() as i64).await {
        tracing::warn!(error = %e, "could not prune the rows of stopped nodes");
    }
    let timing = match mode {
        Mode::Sole => {
            services.lead(workers).await?;
            loop {
                if let Err(e) = store::heartbeat(&db, &node, NodeRole::Leader).await {
                    tracing::warn!(error = %e, "could not write the heartbeat");
                }
                tokio::select! {
                    () = tokio::time::sleep(SOLE_HEARTBEAT) => {}
                    () = stop.cancelled() => return Ok(()),
                }
            }
        }
        Mode::Lease(timing) => timing,
    };
    let fence = services.poller.fence().clone();
    let ttl_ms = timing.ttl.as_millis() as i64;
    let mut last_renewed: Option<Instant> = None;
    let mut announced_standby = false;
    loop {
        let attempt = Instant::now();
        match store::try_lease(&db, &node.node_id, ttl_ms).await {
            Ok(Some(epoch)) => {
                last_renewed = Some(attempt);
                if fence.epoch() != Some(epoch) {
                    // A new term (or a new epoch after losing and regaining it unnoticed).
                    if fence.epoch().is_some() {
                        fence.lose();
                        services.step_down().await;
                    }
                    fence.hold(epoch);
                    tracing::info!(epoch, node = %node.node_id, "took the lease: this node polls, checks URLs and delivers");
                    if let Err(e) = services.lead(workers).await {
                        tracing::error!(error = %e, "could not start the leader's workers; giving the lease up");
                        fence.lose();
                        let _ = store::release(&db, &node.node_id, epoch).await;
                    }
                    announced_standby = false;
                }
            }
            Ok(None) => {
                if fence.epoch().is_some() {
                    tracing::warn!(node = %node.node_id, "lost the lease to another node; standing by");
                    fence.lose();
                    services.step_down().await;
                } else if !announced_standby {
                    tracing::info!(node = %node.node_id, "standing by: another node holds the lease");
                }
                announced_standby = true;
                last_renewed = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not reach the database to renew the lease");
                // Partitioned: once the lease must have expired, stop as if deposed (the fence
                // refuses the writes already; this stops the work).
                if fence.epoch().is_some() && last_renewed.is_none_or(|t| t.elapsed() >= timing.ttl)
                {
                    tracing::warn!("the lease has expired unrenewed; standing by");
                    fence.lose();
                    services.step_down().await;
                }
            }
        }
        let role = if fence.epoch().is_some() {
            NodeRole::Leader
        } else {
            NodeRole::Standby
        };
        if let Err(e) = store::heartbeat(&db, &node, role).await {
            tracing::debug!(error = %e, "could not write the heartbeat");
        }
        tokio::select! {
            () = tokio::time::sleep(timing.every.saturating_sub(attempt.elapsed())) => {}
            () = stop.cancelled() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_timing_follows_its_period_and_refuses_short_ones() {
        let t = LeaseTiming::new(Duration::from_secs(15), Duration::from_secs(10)).unwrap();
        assert_eq!(t.ttl, Duration::from_secs(10));
        assert_eq!(t.every, Duration::from_secs(3));
        // A dead leader's lease expires at most ttl after its last renewal; a standby looks
        // every `every`: together within the period.
        assert!(t.ttl + t.every <= t.period);
        let err = LeaseTiming::new(Duration::from_secs(5), Duration::from_secs(10)).unwrap_err();
        assert!(err.to_string().contains("--poll-timeout"), "{err}");
        assert!(LeaseTiming::new(Duration::from_millis(500), Duration::ZERO).is_err());
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostwatch.db.lock");
        let held = DataDirLock::take(&path).unwrap();
        let err = DataDirLock::take(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("PID {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("--data-dir"), "{err}");
        drop(held);
        DataDirLock::take(&path).unwrap();
    }
}
