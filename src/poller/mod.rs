//! The poller: one poll of one host — SSH exec of the probe, parse, store — and the host-key
//! and status bookkeeping around it. `local` runs the same probe on this machine without SSH.
//!
//! A poll has one wall-clock deadline covering waiting for the host's previous poll, dial, auth,
//! exec and read. A failure is recorded as that host's poll and status; it never affects other
//! hosts.

pub mod local;
mod writer;

pub use writer::WriterStats;

use std::{sync::Arc, time::Duration};

use entity::{host, latest_snapshot, poll};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect, Set,
    TransactionTrait,
};

use crate::{
    crypto::SecretBox,
    error::{Error, Result},
    probe::{self, Counters, Snapshot},
    ssh::{
        client::{Auth, HostKeyPolicy, SshError, Target},
        keys::{self, fingerprint},
        pool::{Job, PoolError, SshPool},
    },
    store::{
        self,
        notifications::{self, NewNotification, NotificationHub},
        now_ms,
        ssh::{self as ssh_store, SeenKey},
    },
};

/// Host statuses the poller sets.
pub mod status {
    pub const OK: &str = "ok";
    pub const UNREACHABLE: &str = "unreachable";
    pub const AUTH_FAILED: &str = "auth_failed";
    pub const HOST_KEY_MISMATCH: &str = "host_key_mismatch";
    pub const UNSUPPORTED: &str = "unsupported";
}

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
}

impl Default for PollerSettings {
    fn default() -> Self {
        Self {
            poll_timeout: Duration::from_secs(30),
            enroll_timeout: Duration::from_secs(60),
            output_cap: 1 << 20,
            enroll_on_create: true,
            unreachable_after: 3,
        }
    }
}

/// Why a poll (or enrollment) failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Reaching or talking to the host failed; the class says how.
    #[error("{message}")]
    Host { kind: &'static str, message: String },
    /// The host is in a state that refuses polls until an operator acts.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Service(#[from] Error),
}

impl PollError {
    fn from_pool(err: PoolError) -> Self {
        Self::Host {
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}

/// What a successful poll returns.
#[derive(Debug, Clone)]
pub struct PollReport {
    pub snapshot: Snapshot,
    pub duration: Duration,
    pub dialled: bool,
}

/// Polls and enrolls hosts over the shared connection pool.
#[derive(Debug)]
pub struct Poller {
    pub db: DatabaseConnection,
    pub secrets: Arc<SecretBox>,
    pub pool: SshPool,
    pub hub: NotificationHub,
    pub settings: PollerSettings,
    /// What steady-state polls would otherwise read from the database every time.
    pub(crate) hot: std::sync::Mutex<HotState>,
    /// Stores successful polls in batches.
    pub(crate) writer: writer::PollWriter,
}

/// Per-host data kept in memory between polls. The database stays the source of truth: each
/// entry is dropped by [`Poller::invalidate`] whenever the host, its credentials, thresholds or
/// host key change (the API calls it), and after any failed poll. `newest` is the exception:
/// it is newer than the database (see [`LATEST_ROW_EVERY_MS`]) and outlives invalidation.
#[derive(Default)]
pub(crate) struct HotState {
    prepared: std::collections::HashMap<i64, Arc<Prepared>>,
    counters: std::collections::HashMap<i64, Counters>,
    newest: std::collections::HashMap<i64, Newest>,
    thresholds: std::collections::HashMap<i64, Arc<Vec<entity::threshold::Model>>>,
    /// When the pinned key was last recorded as seen (its `last_seen_at` need not move per poll).
    key_seen: std::collections::HashMap<i64, (String, std::time::Instant)>,
}

impl std::fmt::Debug for HotState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HotState({} hosts)", self.prepared.len())
    }
}

/// How often a host's `latest_snapshots` row, and its `hosts` row's poll times, are rewritten
/// while it stays ok; between two rewrites the newest snapshot and times live in memory
/// ([`Poller::newest_snapshot`] and [`Poller::apply_newest_times`], which the API reads) and are
/// written at shutdown ([`Poller::flush_newest`]). The snapshot row is 2.7 KB, a page of its own,
/// and rewriting it every poll was a quarter of the store's CPU at 10,000 hosts; the host's row
/// is a page shared with a few other hosts, dirtied (and copied to the WAL) by each poll. After
/// a crash both are at most this old: the next poll replaces them, and rates computed from the
/// stored counters are averages over the longer interval, still correct. A poll that changes
/// the host's status writes its row at once.
pub const LATEST_ROW_EVERY_MS: i64 = 60_000;

/// A host's newest successful poll, and when its rows were last written.
struct Newest {
    /// When the poll started (the host's `last_poll_at`, unless a failed poll came since).
    polled_at: i64,
    /// When its snapshot was taken (the host's `last_ok_at`).
    taken_at: i64,
    snapshot_json: Arc<str>,
    row_written_at: Option<i64>,
}

/// How often a pinned key's `last_seen_at` is refreshed.
const KEY_SEEN_REFRESH: Duration = Duration::from_secs(3600);

/// A ready-to-dial target with its identity (what must change to need a new connection).
pub(crate) struct Prepared {
    pub host: host::Model,
    pub target: Target,
    pub identity: String,
}

impl Poller {
    /// What the batch writer has done so far.
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// Forgets what is cached about a host; the next poll reads it from the database.
    pub fn invalidate(&self, host_id: i64) {
        let mut hot = self.hot.lock().expect("not poisoned");
        hot.prepared.remove(&host_id);
        hot.counters.remove(&host_id);
        hot.thresholds.remove(&host_id);
        hot.key_seen.remove(&host_id);
    }

    /// Forgets a deleted host entirely, its newest snapshot too.
    pub fn forget(&self, host_id: i64) {
        self.invalidate(host_id);
        self.hot
            .lock()
            .expect("not poisoned")
            .newest
            .remove(&host_id);
    }

    /// The JSON of the host's newest snapshot, when this process took it (it may be newer than
    /// the host's `latest_snapshots` row).
    pub fn newest_snapshot(&self, host_id: i64) -> Option<Arc<str>> {
        let hot = self.hot.lock().expect("not poisoned");
        hot.newest.get(&host_id).map(|n| n.snapshot_json.clone())
    }

    /// Moves `host`'s poll times up to its newest successful poll in this process, which its
    /// row may not have yet (see [`LATEST_ROW_EVERY_MS`]).
    pub fn apply_newest_times(&self, host: &mut host::Model) {
        let hot = self.hot.lock().expect("not poisoned");
        if let Some(n) = hot.newest.get(&host.id) {
            host.last_poll_at = host.last_poll_at.max(Some(n.polled_at));
            host.last_ok_at = host.last_ok_at.max(Some(n.taken_at));
        }
    }

    /// Writes every newest snapshot that is newer than its host's `latest_snapshots` row, with
    /// the counters it was taken with, and its poll times to the host's row; returns how many
    /// hosts were written. Called at shutdown.
    /// When a host's counters are not in memory (its last poll failed or is in flight, or
    /// [`Self::invalidate`] dropped them) the row keeps its older counters, which carry their
    /// own time: the next rates are averages over a longer interval.
    pub async fn flush_newest(&self) -> Result<usize> {
        // A host deleted since its poll has no row to keep (and its id no longer passes the
        // foreign key).
        let existing: std::collections::HashSet<i64> = host::Entity::find()
            .select_only()
            .column(host::Column::Id)
            .into_tuple::<i64>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        let mut rows = Vec::new();
        let mut snapshot_only = Vec::new();
        let mut times = Vec::new();
        {
            let hot = self.hot.lock().expect("not poisoned");
            let newer = hot.newest.iter().filter(|(id, n)| {
                existing.contains(id) && n.row_written_at.is_none_or(|at| at < n.taken_at)
            });
            for (id, n) in newer {
                times.push(writer::HostTimes {
                    host_id: *id,
                    polled_at: n.polled_at,
                    ok_at: n.taken_at,
                });
                let counters = hot.counters.get(id);
                let row = writer::LatestRow {
                    host_id: *id,
                    taken_at: n.taken_at,
                    snapshot_json: n.snapshot_json.clone(),
                    counters_json: counters
                        .map(|c| serde_json::to_string(c).expect("counters serialise"))
                        .unwrap_or_default(),
                };
                if counters.is_some() {
                    rows.push(row)
                } else {
                    snapshot_only.push(row)
                }
            }
        }
        let txn = self.db.begin().await?;
        writer::upsert_latest(&txn, &rows.iter().collect::<Vec<_>>()).await?;
        for r in &snapshot_only {
            // Its first poll wrote the row (with counters): only the snapshot moves on.
            latest_snapshot::Entity::update_many()
                .col_expr(latest_snapshot::Column::TakenAt, r.taken_at.into())
                .col_expr(
                    latest_snapshot::Column::Snapshot,
                    r.snapshot_json.as_ref().into(),
                )
                .filter(latest_snapshot::Column::HostId.eq(r.host_id))
                .exec(&txn)
                .await?;
        }
        writer::write_host_times(&txn, &times, false).await?;
        txn.commit().await?;
        let mut hot = self.hot.lock().expect("not poisoned");
        for row in rows.iter().chain(&snapshot_only) {
            if let Some(n) = hot.newest.get_mut(&row.host_id)
                && n.taken_at == row.taken_at
            {
                n.row_written_at = Some(row.taken_at);
            }
        }
        Ok(rows.len() + snapshot_only.len())
    }

    /// The entry `slot` picks from the hot state for `host_id`, or what `load` reads (kept for
    /// the next poll). The lock is not held across `load`.
    async fn cached<T: Clone, E>(
        &self,
        host_id: i64,
        slot: fn(&mut HotState) -> &mut std::collections::HashMap<i64, T>,
        load: impl std::future::Future<Output = std::result::Result<T, E>>,
    ) -> std::result::Result<T, E> {
        if let Some(hit) = slot(&mut self.hot.lock().expect("not poisoned")).get(&host_id) {
            return Ok(hit.clone());
        }
        let loaded = load.await?;
        slot(&mut self.hot.lock().expect("not poisoned")).insert(host_id, loaded.clone());
        Ok(loaded)
    }

    /// [`Poller::prepare`], from memory when nothing changed since the last poll.
    async fn prepared(&self, host_id: i64) -> Result<Arc<Prepared>, PollError> {
        self.cached(host_id, |h| &mut h.prepared, async {
            self.prepare(host_id).await.map(Arc::new)
        })
        .await
    }

    /// The host's thresholds, from memory when they did not change since the last poll.
    async fn thresholds(&self, host_id: i64) -> Result<Arc<Vec<entity::threshold::Model>>> {
        self.cached(host_id, |h| &mut h.thresholds, async {
            let owner = crate::store::thresholds::Owner::Host(host_id);
            crate::store::thresholds::list(&self.db, owner)
                .await
                .map(Arc::new)
        })
        .await
    }

    /// Records in the cached host that a poll cleared its status message (an enrolled host's
    /// "enrolled"), as its row now says; else every later poll would find a status to clear
    /// and write the host's rows. Cheaper than dropping the cache: nothing is read again.
    fn message_cleared(&self, prepared: &Arc<Prepared>) {
        let mut hot = self.hot.lock().expect("not poisoned");
        // An entry replaced or dropped since (the host was edited) is left as it is.
        if let Some(cached) = hot.prepared.get_mut(&prepared.host.id)
            && Arc::ptr_eq(cached, prepared)
        {
            let mut host = prepared.host.clone();
            host.status_message = None;
            *cached = Arc::new(Prepared {
                host,
                target: prepared.target.clone(),
                identity: prepared.identity.clone(),
            });
        }
    }

    /// Loads a host, decrypts its login and works out the host-key policy.
    pub(crate) async fn prepare(&self, host_id: i64) -> Result<Prepared, PollError> {
        let host = host::Entity::find_by_id(host_id)
            .one(&self.db)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::NotFound(format!("no host with id {host_id}")))?;
        let login = ssh_store::login(&self.db, &self.secrets, host_id).await?;
        let auth = match (&login.private_key, &login.password) {
            (Some(key), _) => {
                let key =
                    keys::decode_private_key(key, login.passphrase.as_deref().map(String::as_str))
                        .map_err(|e| {
                            Error::Crypto(format!("stored private key of host {host_id}: {e}"))
                        })?;
                Auth::Key(Arc::new(key))
            }
            (None, Some(password)) => Auth::Password(Arc::new(password.clone())),
            (None, None) => {
                return Err(
                    Error::NotFound(format!("host {host_id} has no usable credentials")).into(),
                );
            }
        };
        let trusted = ssh_store::trusted_key(&self.db, host_id).await?;
        let host_key = match (&trusted, &host.expected_host_key_fingerprint) {
            (Some(k), _) => HostKeyPolicy::Fingerprint(k.fingerprint.clone()),
            (None, Some(fp)) => HostKeyPolicy::Fingerprint(fp.clone()),
            (None, None) => HostKeyPolicy::AnyKey,
        };
        // Pinning the key seen on first use is not a reason to re-dial; re-trusting a key
        // drops the connection explicitly (see `trust_host_key`).
        let identity = format!(
            "{}|{}|{}|{}|{}|{:?}",
            host.address,
            host.port,
            host.username,
            login.credential_id,
            login.updated_at,
            host.expected_host_key_fingerprint
        );
        let target = Target {
            address: host.address.clone(),
            port: u16::try_from(host.port).unwrap_or(22),
            username: host.username.clone(),
            auth,
            host_key,
        };
        Ok(Prepared {
            host,
            target,
            identity,
        })
    }

    /// Runs a script on a prepared host, before `deadline`, recording the key it presented.
    pub(crate) async fn run(
        &self,
        p: &Prepared,
        script: &[u8],
        timeout: Duration,
        force: bool,
    ) -> Result<crate::ssh::pool::PoolRun, PollError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let result = self
            .pool
            .run(
                p.host.id,
                &p.target,
                &p.identity,
                Job {
                    script,
                    cap: self.settings.output_cap,
                    deadline,
                    force,
                },
            )
            .await;
        match result {
            Ok(run) => {
                let seen = seen_key(&run.host_key);
                let fresh = self
                    .hot
                    .lock()
                    .expect("not poisoned")
                    .key_seen
                    .get(&p.host.id)
                    .is_some_and(|(fp, at)| {
                        *fp == seen.fingerprint && at.elapsed() < KEY_SEEN_REFRESH
                    });
                if !fresh {
                    // Trust on first use: the first key seen after a successful login is pinned.
                    ssh_store::record_key(&self.db, p.host.id, &seen, true).await?;
                    let entry = (seen.fingerprint, std::time::Instant::now());
                    self.hot
                        .lock()
                        .expect("not poisoned")
                        .key_seen
                        .insert(p.host.id, entry);
                }
                Ok(run)
            }
            Err(err) => {
                self.on_failure(p, &err).await?;
                Err(PollError::from_pool(err))
            }
        }
    }

    /// Status and notifications for a failed SSH operation.
    async fn on_failure(&self, p: &Prepared, err: &PoolError) -> Result<()> {
        let host = &p.host;
        match err {
            PoolError::Ssh(SshError::HostKeyMismatch { presented, .. }) => {
                ssh_store::record_key(&self.db, host.id, &seen_key(presented), false).await?;
                self.enter_status(
                    host,
                    status::HOST_KEY_MISMATCH,
                    err.to_string(),
                    "critical",
                    format!("Host key of {} changed", host.name),
                    format!(
                        "{} ({}:{}) presented a different host key: {err}. Polls are refused until the key is re-trusted with POST /api/v1/hosts/{}/host-key/trust.",
                        host.name, host.address, host.port, host.id
                    ),
                )
                .await
            }
            PoolError::Ssh(SshError::AuthFailed(reason)) => {
                self.enter_status(
                    host,
                    status::AUTH_FAILED,
                    err.to_string(),
                    "critical",
                    format!("Cannot log in to {}", host.name),
                    format!("{} ({}:{}): {reason}. Replace the credentials with PATCH /api/v1/hosts/{}.", host.name, host.address, host.port, host.id),
                )
                .await
            }
            PoolError::Backoff(..) => Ok(()),
            _ => {
                if host.status != status::AUTH_FAILED && host.status != status::HOST_KEY_MISMATCH {
                    ssh_store::set_status(&self.db, host.id, status::UNREACHABLE, Some(err.to_string())).await?;
                }
                Ok(())
            }
        }
    }

    /// Moves a host into a failure status, with a notification on the transition only.
    async fn enter_status(
        &self,
        host: &host::Model,
        new_status: &str,
        message: String,
        level: &str,
        title: String,
        body: String,
    ) -> Result<()> {
        ssh_store::set_status(&self.db, host.id, new_status, Some(message)).await?;
        if host.status != new_status {
            let n = notifications::insert(
                &self.db,
                NewNotification {
                    host_id: Some(host.id),
                    kind: new_status.to_owned(),
                    level: level.to_owned(),
                    state: "firing".into(),
                    event: Some("fired".into()),
                    title,
                    message: body,
                    ..Default::default()
                },
            )
            .await?;
            self.hub.published(n.id);
        }
        Ok(())
    }

    /// Leaves a failure status: writes the resolution of its notification.
    pub(crate) async fn leave_status(
        &self,
        host: &host::Model,
        title: String,
        message: String,
    ) -> Result<()> {
        if host.status == status::AUTH_FAILED || host.status == status::HOST_KEY_MISMATCH {
            let n = notifications::insert(
                &self.db,
                NewNotification {
                    host_id: Some(host.id),
                    kind: host.status.clone(),
                    // The resolution carries the level that was firing, so a client following
                    // level=critical sees both ends.
                    level: "critical".into(),
                    state: "resolved".into(),
                    event: Some("resolved".into()),
                    title,
                    message,
                    ..Default::default()
                },
            )
            .await?;
            self.hub.published(n.id);
        }
        Ok(())
    }

    /// Polls a host now: enrolls it first when it never was, then runs the probe and stores
    /// the snapshot, its samples and the poll record.
    pub async fn poll(&self, host_id: i64, force: bool) -> Result<PollReport, PollError> {
        self.poll_holding(host_id, force, None).await
    }

    /// [`Poller::poll`] holding `ssh_permit` (a slot of the concurrency limit) only while it
    /// talks to the host: parsing and storing do not hold up the next host's SSH work, and a slow
    /// database commit does not make other polls start late.
    pub async fn poll_holding(
        &self,
        host_id: i64,
        force: bool,
        ssh_permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<PollReport, PollError> {
        let started_ms = now_ms();
        let started = std::time::Instant::now();
        let result = self.poll_inner(host_id, force, ssh_permit).await;
        let (outcome, kind, message) = match &result {
            Ok(_) => ("ok", None, None),
            Err(PollError::Host { kind, message }) => ("error", Some(*kind), Some(message.clone())),
            Err(PollError::Refused(m)) => ("refused", Some("refused"), Some(m.clone())),
            Err(PollError::Service(Error::NotFound(_))) => return result,
            Err(PollError::Service(e)) => ("error", Some("internal"), Some(e.to_string())),
        };
        if result.is_err() {
            // Whatever failed may have changed the host's row (status, key): read it afresh.
            self.invalidate(host_id);
        }
        // A scheduled tick on a parked host (key mismatch, unsupported) is not an attempt.
        let parked = !force && matches!(result, Err(PollError::Refused(_)));
        if result.is_err() && !parked {
            let published = self
                .record_failure(
                    host_id,
                    started_ms,
                    started.elapsed(),
                    outcome,
                    kind,
                    message,
                )
                .await?;
            for n in published {
                self.hub.published(n.id);
            }
        }
        result
    }

    /// The poll record of a failure, and the `host_unreachable` count, in one transaction.
    async fn record_failure(
        &self,
        host_id: i64,
        started_ms: i64,
        duration: Duration,
        outcome: &str,
        kind: Option<&str>,
        message: Option<String>,
    ) -> Result<Vec<entity::notification::Model>, PollError> {
        let txn = self.db.begin().await.map_err(Error::from)?;
        poll::ActiveModel {
            host_id: Set(host_id),
            started_at: Set(started_ms),
            duration_ms: Set(duration.as_millis() as i64),
            outcome: Set(outcome.into()),
            error_kind: Set(kind.map(str::to_owned)),
            error: Set(message.clone()),
            ..Default::default()
        }
        .insert(&txn)
        .await
        .map_err(Error::from)?;
        host::Entity::update_many()
            .col_expr(
                host::Column::LastPollAt,
                sea_orm::sea_query::Expr::value(started_ms),
            )
            .filter(host::Column::Id.eq(host_id))
            .exec(&txn)
            .await
            .map_err(Error::from)?;
        let mut published = Vec::new();
        let host = host::Entity::find_by_id(host_id)
            .one(&txn)
            .await
            .map_err(Error::from)?;
        if let Some(host) = host.filter(|h| h.status == status::UNREACHABLE) {
            let error = message.unwrap_or_default();
            published.extend(
                crate::evaluator::record_unreachable(
                    &txn,
                    &host,
                    &error,
                    self.settings.unreachable_after,
                    now_ms(),
                )
                .await?,
            );
        }
        txn.commit().await.map_err(Error::from)?;
        Ok(published)
    }

    async fn poll_inner(
        &self,
        host_id: i64,
        force: bool,
        ssh_permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> Result<PollReport, PollError> {
        let mut prepared = self.prepared(host_id).await?;
        match prepared.host.status.as_str() {
            status::HOST_KEY_MISMATCH => {
                return Err(PollError::Refused(format!(
                    "refused: the host key of {} changed; re-trust it with POST /api/v1/hosts/{host_id}/host-key/trust",
                    prepared.host.name
                )));
            }
            status::UNSUPPORTED => {
                return Err(PollError::Refused(format!(
                    "refused: {} is not a supported host ({}); enroll it again once that changes",
                    prepared.host.name,
                    prepared.host.status_message.clone().unwrap_or_default()
                )));
            }
            _ => {}
        }
        if prepared.host.enrolled_at.is_none() {
            let run = crate::enroll::enroll(self, host_id, force).await?;
            self.invalidate(host_id);
            prepared = self.prepared(host_id).await?;
            if prepared.host.enrolled_at.is_none() {
                return Err(PollError::Host {
                    kind: "enrollment_failed",
                    message: format!(
                        "enrollment failed: {}",
                        run.error.unwrap_or_else(|| format!(
                            "see GET /api/v1/hosts/{host_id}/enrollment"
                        ))
                    ),
                });
            }
            if prepared.host.status == status::UNSUPPORTED {
                return Err(PollError::Refused(
                    prepared.host.status_message.clone().unwrap_or_default(),
                ));
            }
        }
        let started_ms = now_ms();
        let run = self
            .run(
                &prepared,
                probe::PROBE_SCRIPT.as_bytes(),
                self.settings.poll_timeout,
                force,
            )
            .await?;
        drop(ssh_permit);
        if run.output.exit_status.is_some_and(|s| s != 0) || run.output.exit_signal.is_some() {
            let err = PollError::Host {
                kind: "probe_failed",
                message: format!(
                    "the probe exited with {:?}{}: {}",
                    run.output.exit_status,
                    run.output
                        .exit_signal
                        .as_deref()
                        .map(|s| format!(" (signal {s})"))
                        .unwrap_or_default(),
                    String::from_utf8_lossy(&run.output.stderr).trim()
                ),
            };
            ssh_store::set_status(
                &self.db,
                host_id,
                status::UNREACHABLE,
                Some(err.to_string()),
            )
            .await?;
            return Err(err);
        }
        let text = String::from_utf8_lossy(&run.output.stdout);
        let (cached, row_written_at) = {
            let mut hot = self.hot.lock().expect("not poisoned");
            let row_written_at = hot.newest.get(&host_id).and_then(|n| n.row_written_at);
            (hot.counters.remove(&host_id), row_written_at)
        };
        let previous = match cached {
            Some(c) => Some(c),
            None => latest_snapshot::Entity::find()
                .filter(latest_snapshot::Column::HostId.eq(host_id))
                .one(&self.db)
                .await
                .map_err(Error::from)?
                .and_then(|row| serde_json::from_str::<Counters>(&row.counters).ok()),
        };
        let now = now_ms();
        let (snapshot, counters) = probe::build_snapshot(&text, previous.as_ref(), now);
        let thresholds = self.thresholds(host_id).await?;
        let snapshot_json: Arc<str> = serde_json::to_string(&snapshot)
            .expect("snapshot serialises")
            .into();
        // A status to clear is written at once; otherwise the rows wait their turn.
        let status_to_clear =
            prepared.host.status != status::OK || prepared.host.status_message.is_some();
        let rows_due =
            status_to_clear || row_written_at.is_none_or(|at| now - at >= LATEST_ROW_EVERY_MS);
        let latest = rows_due.then(|| writer::LatestRow {
            host_id,
            taken_at: now,
            snapshot_json: snapshot_json.clone(),
            counters_json: serde_json::to_string(&counters).expect("counters serialise"),
        });
        let wrote_row = latest.is_some();
        let published = self
            .store_success(
                &prepared,
                thresholds,
                started_ms,
                run.output.duration,
                &snapshot,
                latest,
            )
            .await?;
        {
            let mut hot = self.hot.lock().expect("not poisoned");
            hot.counters.insert(host_id, counters);
            hot.newest.insert(
                host_id,
                Newest {
                    polled_at: started_ms,
                    taken_at: now,
                    snapshot_json,
                    row_written_at: if wrote_row { Some(now) } else { row_written_at },
                },
            );
        }
        for n in published {
            self.hub.published(n.id);
        }
        if prepared.host.status != status::OK {
            // The cached host row still says the old status.
            self.invalidate(host_id);
            self.leave_status(
                &prepared.host,
                format!("{} is reachable again", prepared.host.name),
                format!(
                    "{} answered a poll; its {} status is cleared.",
                    prepared.host.name, prepared.host.status
                ),
            )
            .await?;
        } else if prepared.host.status_message.is_some() {
            self.message_cleared(&prepared);
        }
        Ok(PollReport {
            snapshot,
            duration: run.output.duration,
            dialled: run.dialled,
        })
    }

    /// The snapshot, its samples, the poll record, the host's status and the notifications the
    /// values cause, committed together (with other polls' results, by the writer). Returns the
    /// notifications written.
    async fn store_success(
        &self,
        prepared: &Arc<Prepared>,
        thresholds: Arc<Vec<entity::threshold::Model>>,
        started_ms: i64,
        duration: Duration,
        snapshot: &Snapshot,
        latest: Option<writer::LatestRow>,
    ) -> Result<Vec<entity::notification::Model>> {
        let record = writer::SuccessRecord {
            prepared: prepared.clone(),
            thresholds,
            started_ms,
            duration_ms: duration.as_millis() as i64,
            ts: snapshot.taken_at.timestamp_millis(),
            latest,
            values: probe::metric_values(snapshot),
        };
        self.writer.store(&self.db, record).await
    }

    /// Accepts the key the host presents now as its only trusted key, and clears a
    /// `host_key_mismatch` status.
    pub async fn trust_host_key(&self, host_id: i64) -> Result<entity::host_key::Model, PollError> {
        let mut prepared = self.prepare(host_id).await?;
        prepared.target.host_key = HostKeyPolicy::AnyKey;
        let deadline = self.settings.poll_timeout;
        let session = tokio::time::timeout(
            deadline,
            crate::ssh::client::connect(&prepared.target, false),
        )
        .await
        .map_err(|_| PollError::Host {
            kind: "timeout",
            message: format!("no SSH handshake within {deadline:?}"),
        })?
        .map_err(|e| PollError::Host {
            kind: e.kind(),
            message: e.to_string(),
        })?;
        let key = seen_key(&session.host_key);
        session.close().await;
        let row = ssh_store::trust_only(&self.db, host_id, &key).await?;
        self.invalidate(host_id);
        self.pool.forget(host_id).await;
        if prepared.host.status == status::HOST_KEY_MISMATCH {
            ssh_store::set_status(
                &self.db,
                host_id,
                store::hosts::status::PENDING,
                Some(format!(
                    "host key {} trusted; waiting for the next poll",
                    key.fingerprint
                )),
            )
            .await?;
            self.leave_status(
                &prepared.host,
                format!("Host key of {} trusted", prepared.host.name),
                format!(
                    "The key {} is now trusted for {}; polls resume.",
                    key.fingerprint, prepared.host.name
                ),
            )
            .await?;
        }
        Ok(row)
    }
}

/// A presented key in storable form.
pub(crate) fn seen_key(key: &russh::keys::PublicKey) -> SeenKey {
    SeenKey {
        algorithm: key.algorithm().as_str().to_owned(),
        public_key: key.to_openssh().unwrap_or_default(),
        fingerprint: fingerprint(key),
    }
}
