//! The poller: polls and enrolls hosts over SSH and stores what it finds. Its parts, one job
//! each:
//!
//! - `link`: a host's dial target, its pooled connection, its pinned key and the failure
//!   statuses SSH errors imply — what polling and enrollment both need;
//! - `cache`: what steady-state polls would otherwise read from the database, one entry a host;
//! - `poll`: one poll — the probe, the plan of what to store, the failure record;
//! - `enroll`: enrollment and provisioning, beside polling, over the same link;
//! - `writer`: the task that stores many successful polls per transaction;
//! - `local`: the same probe on this machine, without SSH.
//!
//! A poll has one wall-clock deadline covering waiting for the host's previous poll, dial, auth,
//! exec and read. A failure is recorded as that host's poll and status; it never affects other
//! hosts.

mod cache;
mod enroll;
mod link;
pub mod local;
mod poll;
mod writer;

pub use poll::PollReport;
pub use writer::WriterStats;

use std::{future::Future, sync::Arc, time::Duration};

use entity::{enrollment_run, host, host_key, types::PollErrorKind};
use sea_orm::DatabaseConnection;

use crate::{
    alerts::{
        evaluate::{Subject, Who},
        maintenance::Window,
        text::{Named, Place},
    },
    crypto::SecretBox,
    error::{Error, Result},
    ssh::{client::Target, pool::ConnIdentity},
    store::{
        cluster::Fence,
        notifications::NotificationHub,
        polls::{self, HostTimes, LatestRow},
    },
};

/// Limits of SSH work.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    /// Deadline of one poll, dial to last byte.
    pub poll_timeout: Duration,
    /// Deadline of one enrollment (it may create a user).
    pub enroll_timeout: Duration,
    /// Most bytes of probe output accepted.
    pub output_cap: usize,
    /// Enroll a host in the background as soon as it is registered (when no scheduler does).
    pub enroll_on_create: bool,
    /// Failed polls in a row before `host_unreachable` fires.
    pub unreachable_after: u32,
    /// Filesystem types left out of disk thresholds unless a threshold names the mount.
    pub pseudo_filesystems: Arc<[String]>,
    /// The window of the disk-full forecast's least-squares rate.
    pub forecast_window: Duration,
    /// How long each history tier is kept (what retention deletes and what queries may read).
    pub retention: crate::tiers::Retention,
}

impl Default for PollerSettings {
    fn default() -> Self {
        Self {
            poll_timeout: Duration::from_secs(30),
            enroll_timeout: Duration::from_secs(60),
            output_cap: 1 << 20,
            enroll_on_create: true,
            unreachable_after: 3,
            pseudo_filesystems: crate::alerts::rules::PSEUDO_FILESYSTEMS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            forecast_window: Duration::from_secs(6 * 3600),
            retention: crate::tiers::Retention::default(),
        }
    }
}

/// Why a poll (or enrollment) failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Reaching or talking to the host failed; the kind says how.
    #[error("{message}")]
    Host {
        kind: PollErrorKind,
        message: String,
    },
    /// The host is in a state that refuses polls until an operator acts.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Service(#[from] Error),
}

/// How often a host's `latest_snapshots` row, and its `hosts` row's poll times, are rewritten
/// while it stays ok; between two rewrites the newest snapshot and times live in memory
/// ([`Poller::latest_snapshot`] and [`Poller::apply_newest_times`], which the API reads) and are
/// written at shutdown ([`Poller::flush_newest`]). The snapshot row is a page of its own, and
/// rewriting it every poll was a large share of the store's work at a large fleet; the host's
/// row is a page shared with a few other hosts, dirtied (and copied to the WAL) by each poll.
/// After a crash both are at most this old: the next poll replaces them, and rates computed
/// from the stored counters are averages over the longer interval, still correct. A poll that
/// changes the host's status writes its row at once.
pub const LATEST_ROW_EVERY_MS: i64 = 60_000;

/// A host ready to dial: its row, its target, and what must change to need a new connection.
#[derive(Debug)]
pub struct Prepared {
    pub host: host::Model,
    /// Its labels (maintenance windows select hosts by them).
    pub labels: Vec<String>,
    pub target: Target,
    pub identity: ConnIdentity,
}

impl Prepared {
    /// Where the host is, as messages show it.
    pub fn place(&self) -> Place<'_> {
        Place::Address {
            address: &self.host.address,
            port: self.host.port,
        }
    }
}

/// How the host's notifications name it.
fn who(host: &host::Model) -> Who<'_> {
    Who {
        subject: Subject::Host(host.id),
        named: Named {
            name: &host.name,
            place: Place::Address {
                address: &host.address,
                port: host.port,
            },
        },
    }
}

/// Polls and enrolls hosts over their pooled connections.
#[derive(Debug)]
pub struct Poller {
    link: link::Link,
    writer: writer::PollWriter,
    settings: PollerSettings,
    /// The maintenance windows, read again whenever one changes.
    calendar: std::sync::RwLock<Arc<Vec<Window>>>,
}

impl Poller {
    /// A poller over `db`; its writer runs once [`Poller::start_writer`]'s task is spawned.
    pub fn new(
        db: DatabaseConnection,
        secrets: Arc<SecretBox>,
        hub: NotificationHub,
        settings: PollerSettings,
        fence: Fence,
    ) -> Self {
        Self {
            link: link::Link::new(db, secrets, hub, settings.output_cap, fence),
            writer: writer::PollWriter::default(),
            settings,
            calendar: std::sync::RwLock::new(Arc::new(Vec::new())),
        }
    }

    /// The writer task, to spawn once: it stores successful polls until
    /// [`Poller::close_writer`], then drains what is queued and ends.
    pub fn start_writer(&self) -> impl Future<Output = ()> + Send + 'static {
        self.writer
            .start(self.link.db.clone(), self.link.fence.clone())
    }

    /// Stops taking results; the writer task ends once it has stored those queued.
    pub fn close_writer(&self) {
        self.writer.close();
    }

    /// The database it stores into.
    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.link.db
    }

    /// The limits this poller works within.
    pub fn settings(&self) -> &PollerSettings {
        &self.settings
    }

    /// What the batch writer has done so far.
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// How many connections have been dialled (successfully or not) since start.
    pub fn dials(&self) -> u64 {
        self.link.pool.dials()
    }

    /// Whether a host currently holds a live connection.
    pub async fn is_connected(&self, host_id: i64) -> bool {
        self.link.pool.is_connected(host_id).await
    }

    /// Polls a host now: enrolls it first when it never was, then runs the probe and stores
    /// the snapshot, its values and the poll record.
    pub async fn poll(&self, host_id: i64, force: bool) -> Result<PollReport, PollError> {
        self.poll_holding(host_id, force, None).await
    }

    /// Whether this process may do SSH work and store its results: it holds the lease (or
    /// needs none). Only the leader reaches hosts.
    pub(crate) fn ensure_leader(&self) -> Result<(), PollError> {
        if self.link.fence.is_leader() {
            Ok(())
        } else {
            Err(PollError::Service(Error::NotLeader))
        }
    }

    /// What this poller's writes need.
    pub fn fence(&self) -> &Fence {
        &self.link.fence
    }

    /// Enrolls a host now (and provisions it when it asks for it and was not yet).
    pub async fn enroll(
        &self,
        host_id: i64,
        force: bool,
    ) -> Result<enrollment_run::Model, PollError> {
        self.ensure_leader()?;
        enroll::enroll(&self.link, self.enroll_deadlines(), host_id, force).await
    }

    fn enroll_deadlines(&self) -> enroll::Deadlines {
        enroll::Deadlines {
            enroll: self.settings.enroll_timeout,
            login: self.settings.poll_timeout,
        }
    }

    /// Accepts the key the host presents now as its only trusted key, and clears a
    /// `host_key_mismatch` status.
    pub async fn trust_host_key(&self, host_id: i64) -> Result<host_key::Model, PollError> {
        self.ensure_leader()?;
        self.link
            .trust_host_key(host_id, self.settings.poll_timeout)
            .await
    }

    /// A host's rows, login or thresholds changed: what is cached about it goes, and so does
    /// its connection when what it was dialled with changed (the pool compares).
    pub(crate) fn host_changed(&self, host_id: i64) {
        self.link.cache.invalidate(host_id);
    }

    /// A host's address or login changed: its connection and what the pool remembers of its
    /// failures go, so the next poll dials at once with the new settings (no back-off from the
    /// old ones carried over).
    pub(crate) async fn redial(&self, host_id: i64) {
        self.link.forget_connection(host_id).await;
    }

    /// Reads the maintenance windows again (one changed, or this node starts leading).
    pub(crate) async fn reload_maintenance(&self) -> Result<()> {
        let windows = crate::store::maintenance::all(&self.link.db).await?;
        *self.calendar.write().expect("not poisoned") = Arc::new(windows);
        Ok(())
    }

    /// The windows as last read.
    pub fn maintenance_windows(&self) -> Arc<Vec<Window>> {
        self.calendar.read().expect("not poisoned").clone()
    }

    /// A fleet rule changed: every host's rules are read again at its next poll.
    pub(crate) fn rules_changed(&self) {
        self.link.cache.invalidate_rules();
    }

    /// Forgets every host (this node just became the leader: what it cached as a standby may
    /// be stale).
    pub(crate) fn forget_all(&self) {
        self.link.cache.invalidate_all();
    }

    /// Closes every SSH connection (this node stopped being the leader).
    pub(crate) async fn disconnect_all(&self) {
        self.link.pool.forget_all().await;
    }

    /// A host was deleted: everything about it goes, its connection too.
    pub(crate) async fn host_deleted(&self, host_id: i64) {
        self.link.cache.forget(host_id);
        self.link.pool.forget(host_id).await;
    }

    /// The JSON of the host's newest snapshot: this process's copy, which may be newer than
    /// the host's `latest_snapshots` row, or the row. `None` until a poll worked.
    pub async fn latest_snapshot(&self, host_id: i64) -> Result<Option<Arc<str>>> {
        let held = self.link.cache.read(host_id, |e| {
            e.newest.as_ref().map(|n| n.snapshot_json.clone())
        });
        match held {
            Some(json) => Ok(Some(json)),
            None => Ok(polls::latest_snapshot(&self.link.db, host_id)
                .await?
                .map(Arc::from)),
        }
    }

    /// Moves `host`'s poll times up to its newest successful poll in this process, which its
    /// row may not have yet (see [`LATEST_ROW_EVERY_MS`]).
    pub fn apply_newest_times(&self, host: &mut host::Model) {
        self.link.cache.read(host.id, |e| {
            if let Some(n) = &e.newest {
                host.last_poll_at = host.last_poll_at.max(Some(n.polled_at));
                host.last_ok_at = host.last_ok_at.max(Some(n.taken_at));
            }
        });
    }

    /// Writes every newest snapshot that is newer than its host's `latest_snapshots` row, with
    /// the counters it was taken with, and its poll times to the host's row; returns how many
    /// hosts were written. Called at shutdown.
    /// When a host's counters are not in memory (its last poll failed or is in flight, or the
    /// host was edited since) the row keeps its older counters, which carry their own time:
    /// the next rates are averages over a longer interval.
    pub async fn flush_newest(&self) -> Result<usize> {
        // A host deleted since its poll has no row to keep (and its id no longer passes the
        // foreign key).
        let existing = polls::host_ids(&self.link.db).await?;
        let mut rows = Vec::new();
        let mut snapshot_only = Vec::new();
        let mut times = Vec::new();
        for (id, n, counters) in self.link.cache.newest_all() {
            if !existing.contains(&id) || n.row_written_at.is_some_and(|at| at >= n.taken_at) {
                continue;
            }
            times.push(HostTimes {
                host_id: id,
                polled_at: n.polled_at,
                ok_at: n.taken_at,
            });
            let row = LatestRow {
                host_id: id,
                taken_at: n.taken_at,
                snapshot_json: n.snapshot_json,
                counters_json: counters
                    .as_ref()
                    .map(|c| serde_json::to_string(c).expect("counters serialise"))
                    .unwrap_or_default(),
            };
            if counters.is_some() {
                rows.push(row)
            } else {
                snapshot_only.push(row)
            }
        }
        let txn = self.link.fence.begin(&self.link.db).await?;
        polls::write_newest(
            &txn,
            &rows.iter().collect::<Vec<_>>(),
            &snapshot_only.iter().collect::<Vec<_>>(),
            &times,
        )
        .await?;
        txn.commit().await?;
        for row in rows.iter().chain(&snapshot_only) {
            self.link.cache.update_existing(row.host_id, |e| {
                if let Some(n) = &mut e.newest
                    && n.taken_at == row.taken_at
                {
                    n.row_written_at = Some(row.taken_at);
                }
            });
        }
        Ok(rows.len() + snapshot_only.len())
    }
}
