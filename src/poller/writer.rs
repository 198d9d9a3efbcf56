//! The poll writer: stores the results of many successful polls in one transaction.
//!
//! A poll's snapshot, its poll record with its samples, its host's status and the notifications
//! its values cause were one transaction of about seven statements. With a fleet each statement
//! is a round trip to the database (for SQLite, a hand-off to its worker thread and back), and
//! those hand-offs were most of a poll's CPU. The writer takes every result waiting in its queue
//! and writes them together: one transaction, a few multi-row statements, whatever the batch
//! size.
//!
//! What a poll's caller sees does not change: [`PollWriter::store`] returns once the batch that
//! holds its result is committed, with the notifications that result wrote; a sample and its
//! notifications are still committed together. A batch that fails is retried one result at a
//! time, so one bad result fails only its own poll.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use entity::notification;
use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};

use super::{Prepared, who};
use crate::{
    alerts::evaluate::{self, ThresholdRule},
    error::{Error, Result},
    probe::MetricValue,
    store::{
        alerts,
        cluster::Fence,
        polls::{self, HostTimes, LatestRow, OkPoll, ladder_chunks},
        rollups::{Rollups, Stage},
    },
};

/// Most results written in one transaction.
const MAX_BATCH: usize = 512;
/// How long a batch waits for more results after its first. A transaction costs a fixed number
/// of round trips to the database whatever its size, and those dominated the cost of a poll
/// when results were written as they came.
const LINGER: std::time::Duration = std::time::Duration::from_millis(25);
/// A batch stops waiting when no result came for this long: results then arrive too seldom
/// for waiting to pay, and each poll's caller would wait the whole linger for nothing. Much
/// shorter, and a large fleet's batches shrink to a few polls each (`docs/performance.md`).
const GAP: std::time::Duration = std::time::Duration::from_millis(4);
/// Results that may wait for the writer before pollers wait too.
const QUEUE: usize = 4096;
/// How often the writer writes the rollup buckets of hosts that stopped sending polls.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// How often it sweeps while hosts are still to be caught up after a start, and how long each
/// such sweep may spend catching up: a fifth of the writer's time, for the minutes after a
/// start (10,000 hosts took about two; `docs/performance.md`).
const CATCH_UP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
const CATCH_UP_BUDGET: std::time::Duration = std::time::Duration::from_millis(200);

/// What a successful poll leaves to be stored.
pub(super) struct SuccessRecord {
    /// The polled host as the poll saw it (shared with the poller's cache, not copied).
    pub prepared: Arc<Prepared>,
    pub rules: Arc<Vec<ThresholdRule>>,
    pub started_ms: i64,
    pub duration_ms: i64,
    /// When the snapshot was taken (its values' time).
    pub ts: i64,
    /// The `latest_snapshots` row, when this poll is one that refreshes it and the host's row
    /// (see [`super::LATEST_ROW_EVERY_MS`]).
    pub latest: Option<LatestRow>,
    pub values: Vec<MetricValue>,
    /// Mounts no disk threshold applies to unless one names them.
    pub pseudo_mounts: Vec<String>,
}

impl SuccessRecord {
    fn host(&self) -> &entity::host::Model {
        &self.prepared.host
    }
}

type Reply = oneshot::Sender<Result<Vec<notification::Model>>>;

/// A result waiting for the writer: what to store, who waits for it, when it was queued.
type Queued = (SuccessRecord, Reply, std::time::Instant);

/// How often results reach the writer, as a moving average of the time between two of them.
/// Waiting for a batch to fill pays only when results come often; below one per [`GAP`] a
/// batch would not grow while each poll's caller waited (a few polls in a closed loop would
/// each wait out the gap for nothing), so the writer writes at once.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    last: Option<std::time::Instant>,
    mean_interval: Option<std::time::Duration>,
}

impl Pace {
    /// Notes that a result was queued at `at` (results are seen in queue order).
    pub fn arrived(&mut self, at: std::time::Instant) {
        if let Some(last) = self.last {
            // One long pause (a quiet night) should not hide a busy minute for long.
            let interval = at.saturating_duration_since(last).min(LINGER * 4);
            self.mean_interval = Some(match self.mean_interval {
                None => interval,
                Some(mean) => (mean * 15 + interval) / 16,
            });
        }
        self.last = Some(at);
    }

    /// Whether results have lately come often enough that a batch gains by waiting.
    pub fn worth_waiting(&self) -> bool {
        self.mean_interval.is_some_and(|mean| mean < GAP)
    }
}

/// A handle to the writer task: [`PollWriter::start`] gives the task to spawn,
/// [`PollWriter::close`] lets it end once what is queued is stored.
#[derive(Debug)]
pub(super) struct PollWriter {
    queue: Mutex<Option<mpsc::Sender<Queued>>>,
    /// Taken by the task when it starts.
    receiver: Mutex<Option<mpsc::Receiver<Queued>>>,
    started: std::sync::atomic::AtomicBool,
    stats: Arc<Counters>,
}

impl Default for PollWriter {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            queue: Mutex::new(Some(tx)),
            receiver: Mutex::new(Some(rx)),
            started: Default::default(),
            stats: Default::default(),
        }
    }
}

/// What the writer has done since it started.
#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    results: AtomicU64,
    busy_us: AtomicU64,
    slowest_us: AtomicU64,
    caught_up: std::sync::atomic::AtomicBool,
}

/// A summary of the writer's work, for benchmarks and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub batches: u64,
    /// Poll results they held.
    pub results: u64,
    /// Time spent writing, in microseconds.
    pub busy_us: u64,
    /// The longest batch, in microseconds.
    pub slowest_us: u64,
    /// Whether the rollups of every host have been caught up since the writer started.
    pub caught_up: bool,
}

impl PollWriter {
    /// What the writer has done so far.
    pub fn stats(&self) -> WriterStats {
        let c = &self.stats;
        WriterStats {
            batches: c.batches.load(Ordering::Relaxed),
            results: c.results.load(Ordering::Relaxed),
            busy_us: c.busy_us.load(Ordering::Relaxed),
            slowest_us: c.slowest_us.load(Ordering::Relaxed),
            caught_up: c.caught_up.load(Ordering::Relaxed),
        }
    }

    /// The writer task over `db`, to spawn once; its transactions need `fence`.
    ///
    /// # Panics
    /// When called twice: one writer orders each host's rows.
    pub fn start(
        &self,
        db: DatabaseConnection,
        fence: Fence,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let rx = self
            .receiver
            .lock()
            .expect("not poisoned")
            .take()
            .expect("the poll writer is started once");
        self.started.store(true, Ordering::Release);
        run(db, fence, rx, self.stats.clone())
    }

    /// Takes no more results; the task stores those queued and ends.
    pub fn close(&self) {
        self.queue.lock().expect("not poisoned").take();
    }

    /// Stores a poll's result with others waiting; returns the notifications it wrote once they
    /// are committed.
    pub async fn store(&self, record: SuccessRecord) -> Result<Vec<notification::Model>> {
        let stopped = || Error::Internal("the poll writer is not running".into());
        if !self.started.load(Ordering::Acquire) {
            return Err(stopped());
        }
        let queue = self
            .queue
            .lock()
            .expect("not poisoned")
            .clone()
            .ok_or_else(stopped)?;
        let (reply, answer) = oneshot::channel();
        queue
            .send((record, reply, std::time::Instant::now()))
            .await
            .map_err(|_| stopped())?;
        drop(queue);
        answer.await.map_err(|_| stopped())?
    }
}

/// The writer task: ends when the queue is closed and empty.
async fn run(
    db: DatabaseConnection,
    fence: Fence,
    mut queue: mpsc::Receiver<Queued>,
    stats: Arc<Counters>,
) {
    let mut carried = None;
    let mut pace = Pace::default();
    let mut rollups = Rollups::default();
    let mut next_sweep = tokio::time::Instant::now() + CATCH_UP_EVERY;
    loop {
        if tokio::time::Instant::now() >= next_sweep {
            let caught_up = sweep(&db, &fence, &mut rollups).await;
            stats.caught_up.store(caught_up, Ordering::Relaxed);
            next_sweep = tokio::time::Instant::now()
                + if caught_up {
                    SWEEP_EVERY
                } else {
                    CATCH_UP_EVERY
                };
        }
        let first = match carried.take() {
            Some(item) => item,
            None => match tokio::time::timeout_at(next_sweep, queue.recv()).await {
                Ok(Some(item)) => item,
                Ok(None) => return,
                Err(_) => continue,
            },
        };
        pace.arrived(first.2);
        let mut hosts = std::collections::HashSet::from([first.0.host().id]);
        let mut batch = vec![(first.0, first.1)];
        let wait = pace.worth_waiting();
        let until = tokio::time::Instant::now() + LINGER;
        while batch.len() < MAX_BATCH {
            let item = match queue.try_recv() {
                Ok(item) => item,
                Err(_) if !wait => break,
                Err(_) => match tokio::time::timeout_at(
                    until.min(tokio::time::Instant::now() + GAP),
                    queue.recv(),
                )
                .await
                {
                    Ok(Some(item)) => item,
                    Ok(None) | Err(_) => break,
                },
            };
            // A host's second result waits for the next batch: its rows must follow the first.
            if !hosts.insert(item.0.host().id) {
                carried = Some(item);
                break;
            }
            pace.arrived(item.2);
            batch.push((item.0, item.1));
        }
        let (records, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let started = std::time::Instant::now();
        let result = write_batch(&db, &fence, &records, &mut rollups).await;
        let took = started.elapsed().as_micros() as u64;
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .results
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        stats.busy_us.fetch_add(took, Ordering::Relaxed);
        stats.slowest_us.fetch_max(took, Ordering::Relaxed);
        if matches!(result, Err(Error::NotLeader)) {
            // Another node may have written this one's buckets meanwhile: start over from what
            // is stored when this node leads again.
            rollups = Rollups::default();
        }
        match result {
            Ok((written, stage)) => {
                rollups.commit(stage);
                for (reply, notes) in replies.into_iter().zip(written) {
                    let _ = reply.send(Ok(notes));
                }
            }
            Err(e) if records.len() == 1 => {
                let _ = replies.into_iter().next().expect("one").send(Err(e));
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    results = records.len(),
                    "batch write failed; writing its results one by one"
                );
                for (record, reply) in records.iter().zip(replies) {
                    let one = write_batch(&db, &fence, std::slice::from_ref(record), &mut rollups)
                        .await
                        .map(|(mut w, stage)| {
                            rollups.commit(stage);
                            w.pop().unwrap_or_default()
                        });
                    let _ = reply.send(one);
                }
            }
        }
    }
}

/// Writes the rollup buckets of hosts that sent no poll since they ended, then catches up hosts
/// for a while (see `store::rollups`), forgetting hosts deleted meanwhile. Returns whether
/// every host is caught up. A failure is logged and tried again at the next sweep.
async fn sweep(db: &DatabaseConnection, fence: &Fence, rollups: &mut Rollups) -> bool {
    let started = std::time::Instant::now();
    let result = async {
        let existing = polls::host_ids(db).await?;
        rollups.retain(|id| existing.contains(&id));
        let txn = fence.begin(db).await?;
        let mut stage = rollups.stage();
        rollups
            .sweep(&mut stage, &txn, crate::store::now_ms())
            .await?;
        txn.commit().await?;
        rollups.commit(stage);
        // Hosts a transaction at a time until the budget is spent.
        let mut more = true;
        while more && started.elapsed() < CATCH_UP_BUDGET {
            let txn = fence.begin(db).await?;
            let mut stage = rollups.stage();
            let batch = std::time::Instant::now();
            while more && batch.elapsed() < CATCH_UP_BUDGET / 4 {
                more = rollups
                    .catch_up_one(&mut stage, &txn, &existing, crate::store::now_ms())
                    .await?;
            }
            txn.commit().await?;
            rollups.commit(stage);
        }
        Ok::<_, Error>(rollups.caught_up(&existing))
    }
    .await;
    match result {
        Ok(done) => done,
        Err(Error::NotLeader) => {
            *rollups = Rollups::default();
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "writing the rollups of quiet hosts failed");
            false
        }
    }
}

/// Writes `records` in one transaction; returns each one's notifications, in order, and the
/// rollup changes to keep once it is committed.
async fn write_batch(
    db: &DatabaseConnection,
    fence: &Fence,
    records: &[SuccessRecord],
    rollups: &mut Rollups,
) -> Result<(Vec<Vec<notification::Model>>, Stage)> {
    let txn = fence.begin(db).await?;
    let latest: Vec<&LatestRow> = records.iter().filter_map(|r| r.latest.as_ref()).collect();
    let mut stage = rollups.stage();
    let mut packed = Vec::with_capacity(records.len());
    for r in records {
        packed.push(
            rollups
                .record(&mut stage, &txn, r.host().id, r.ts, &r.values)
                .await?,
        );
    }
    let polls: Vec<OkPoll<'_>> = records
        .iter()
        .zip(&packed)
        .map(|(r, (layout_id, data))| OkPoll {
            host_id: r.host().id,
            started_ms: r.started_ms,
            duration_ms: r.duration_ms,
            sampled_ms: r.ts,
            layout_id: *layout_id,
            data,
        })
        .collect();
    // The host's row goes with its `latest_snapshots` row (see `LATEST_ROW_EVERY_MS`).
    let times: Vec<HostTimes> = records
        .iter()
        .filter(|r| r.latest.is_some())
        .map(|r| HostTimes {
            host_id: r.host().id,
            polled_at: r.started_ms,
            ok_at: r.ts,
        })
        .collect();
    polls::write_ok(&txn, &polls, &latest, &times).await?;

    let mut states = HashMap::new();
    for chunk in ladder_chunks(records, 256) {
        states.extend(alerts::of_hosts(&txn, chunk.iter().map(|r| r.host().id)).await?);
    }
    let mut written = Vec::with_capacity(records.len());
    for r in records {
        let stored = states.get(&r.host().id).map(Vec::as_slice).unwrap_or(&[]);
        let changes = evaluate::after_poll(
            who(r.host()),
            &r.rules,
            stored,
            &r.values,
            &r.pseudo_mounts,
            r.ts,
        );
        written.push(if changes.is_empty() {
            Vec::new()
        } else {
            alerts::apply(&txn, changes, r.ts).await?
        });
    }
    txn.commit().await?;
    Ok((written, stage))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{GAP, Pace};

    #[test]
    fn pace_waits_only_when_results_come_often() {
        let start = Instant::now();
        let mut pace = Pace::default();
        assert!(!pace.worth_waiting(), "nothing seen yet");
        pace.arrived(start);
        assert!(!pace.worth_waiting(), "one result says nothing about pace");

        // 1,000 results a second (a 10,000-host fleet on a 10 s schedule): wait.
        let mut at = start;
        for _ in 0..50 {
            at += Duration::from_millis(1);
            pace.arrived(at);
        }
        assert!(pace.worth_waiting());

        // 100 a second (1,000 hosts): each result would wait alone; it takes a few results to
        // see the change, not one.
        at += Duration::from_millis(10);
        pace.arrived(at);
        assert!(
            pace.worth_waiting(),
            "one slow gap does not flip the average"
        );
        for _ in 0..50 {
            at += Duration::from_millis(10);
            pace.arrived(at);
        }
        assert!(!pace.worth_waiting());

        // A quiet hour counts as a bounded gap: a burst afterwards soon waits again.
        at += Duration::from_secs(3600);
        pace.arrived(at);
        for _ in 0..60 {
            at += GAP / 8;
            pace.arrived(at);
        }
        assert!(pace.worth_waiting());
    }
}
