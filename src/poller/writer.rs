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
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use entity::{host, latest_snapshot, notification, poll};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, TransactionTrait,
    sea_query::{CaseStatement, Expr, ExprTrait, OnConflict, Query, SimpleExpr},
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    error::{Error, Result},
    probe::MetricValue,
};

/// Most results written in one transaction.
const MAX_BATCH: usize = 512;
/// How long a batch waits for more results after its first. A transaction costs a fixed number
/// of round trips to the database whatever its size, and those dominated the cost of a poll
/// when results were written as they came (a few per transaction at 1,000 polls/s).
const LINGER: std::time::Duration = std::time::Duration::from_millis(25);
/// A batch stops waiting when no result came for this long: results then arrive too seldom
/// for waiting to pay, and each poll's caller would wait the whole linger for nothing (a
/// lone poll took 25 ms longer). At 1 ms, batches at 10,000 hosts fell from ~35 to 5.5 polls
/// and the CPU per poll rose by a quarter.
const GAP: std::time::Duration = std::time::Duration::from_millis(4);
/// Results that may wait for the writer before pollers wait too.
const QUEUE: usize = 4096;

/// What a successful poll leaves to be stored.
pub(crate) struct SuccessRecord {
    /// The polled host as the poll saw it (shared with the poller's cache, not copied).
    pub prepared: Arc<super::Prepared>,
    pub thresholds: Arc<Vec<entity::threshold::Model>>,
    pub started_ms: i64,
    pub duration_ms: i64,
    /// When the snapshot was taken (its samples' time).
    pub ts: i64,
    /// The `latest_snapshots` row, when this poll is one that refreshes it and the host's row
    /// (see [`super::LATEST_ROW_EVERY_MS`]).
    pub latest: Option<LatestRow>,
    pub values: Vec<MetricValue>,
}

/// A host's newest snapshot and counters as its `latest_snapshots` row stores them.
pub(crate) struct LatestRow {
    pub host_id: i64,
    pub taken_at: i64,
    pub snapshot_json: Arc<str>,
    pub counters_json: String,
}

impl SuccessRecord {
    fn host(&self) -> &host::Model {
        &self.prepared.host
    }
}

type Reply = oneshot::Sender<Result<Vec<notification::Model>>>;

/// A result waiting for the writer: what to store, who waits for it, when it was queued.
type Queued = (SuccessRecord, Reply, std::time::Instant);

/// How often results reach the writer, as a moving average of the time between two of them.
/// Waiting for a batch to fill pays only when results come often; below one per [`GAP`] a
/// batch would not grow while each poll's caller waited, so the writer writes at once (8 polls
/// in a closed loop at ~180/s would each wait out the 4 ms gap for nothing).
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

/// A handle to the writer task, started on first use.
#[derive(Debug, Default)]
pub(crate) struct PollWriter {
    queue: std::sync::OnceLock<mpsc::Sender<Queued>>,
    stats: Arc<Counters>,
}

/// What the writer has done since it started.
#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    results: AtomicU64,
    busy_us: AtomicU64,
    slowest_us: AtomicU64,
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
        }
    }

    /// Stores a poll's result with others waiting; returns the notifications it wrote once they
    /// are committed.
    pub async fn store(
        &self,
        db: &DatabaseConnection,
        record: SuccessRecord,
    ) -> Result<Vec<notification::Model>> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(run(db.clone(), rx, self.stats.clone()));
            tx
        });
        let (reply, answer) = oneshot::channel();
        let closed = || {
            Error::io(
                "poll writer",
                std::io::Error::other("the writer task has stopped"),
            )
        };
        queue
            .send((record, reply, std::time::Instant::now()))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

/// The writer task: ends when the poller (every sender) is gone.
async fn run(db: DatabaseConnection, mut queue: mpsc::Receiver<Queued>, stats: Arc<Counters>) {
    let mut carried = None;
    let mut pace = Pace::default();
    loop {
        let first = match carried.take() {
            Some(item) => item,
            None => match queue.recv().await {
                Some(item) => item,
                None => return,
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
        let result = write_batch(&db, &records).await;
        let took = started.elapsed().as_micros() as u64;
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .results
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        stats.busy_us.fetch_add(took, Ordering::Relaxed);
        stats.slowest_us.fetch_max(took, Ordering::Relaxed);
        match result {
            Ok(written) => {
                for (reply, notes) in replies.into_iter().zip(written) {
                    let _ = reply.send(Ok(notes));
                }
            }
            Err(e) if records.len() == 1 => {
                let _ = replies.into_iter().next().expect("one").send(Err(e));
            }
            Err(e) => {
                tracing::warn!(error = %e, results = records.len(), "batch write failed; writing its results one by one");
                for (record, reply) in records.iter().zip(replies) {
                    let one = write_batch(&db, std::slice::from_ref(record)).await;
                    let _ = reply.send(one.map(|mut w| w.pop().unwrap_or_default()));
                }
            }
        }
    }
}

/// Splits `items` into chunks whose lengths come from a short fixed ladder (`top`, `top`/4, …,
/// 1; `top` a power of 4), so the database sees a handful of distinct statements whatever the
/// batch size and its statement cache keeps them prepared.
pub(crate) fn ladder_chunks<T>(mut items: &[T], top: usize) -> Vec<&[T]> {
    debug_assert!(top.is_power_of_two() && top.trailing_zeros().is_multiple_of(2));
    let mut chunks = Vec::new();
    let mut size = top;
    while !items.is_empty() {
        while size > items.len() {
            size /= 4;
        }
        let (chunk, rest) = items.split_at(size);
        chunks.push(chunk);
        items = rest;
    }
    chunks
}

/// Writes `records` in one transaction; returns each one's notifications, in order.
async fn write_batch(
    db: &DatabaseConnection,
    records: &[SuccessRecord],
) -> Result<Vec<Vec<notification::Model>>> {
    use poll::Column as Poll;

    let txn = db.begin().await?;
    let latest: Vec<&LatestRow> = records.iter().filter_map(|r| r.latest.as_ref()).collect();
    upsert_latest(&txn, &latest).await?;
    // The poll's values ride in its own row: one row and one per-host index entry per poll
    // (see the `000006` migration).
    insert_rows(
        &txn,
        records,
        poll::Entity,
        [
            Poll::HostId,
            Poll::StartedAt,
            Poll::DurationMs,
            Poll::Outcome,
            Poll::SampledAt,
            Poll::SampleCount,
            Poll::Samples,
        ],
        |r| {
            [
                r.host().id.into(),
                r.started_ms.into(),
                r.duration_ms.into(),
                "ok".into(),
                r.ts.into(),
                (r.values.len() as i32).into(),
                crate::store::history::pack(&r.values).into(),
            ]
        },
        None,
    )
    .await?;

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
    write_host_times(&txn, &times, true).await?;

    let mut states = HashMap::new();
    for chunk in ladder_chunks(records, 256) {
        states
            .extend(crate::evaluator::host_states(&txn, chunk.iter().map(|r| r.host().id)).await?);
    }
    let mut written = Vec::with_capacity(records.len());
    for r in records {
        let stored = states.get(&r.host().id).map(Vec::as_slice).unwrap_or(&[]);
        let mut notes = if r.thresholds.is_empty() {
            Vec::new()
        } else {
            crate::evaluator::evaluate_thresholds(
                &txn,
                r.host(),
                &r.thresholds,
                stored,
                &r.values,
                r.ts,
            )
            .await?
        };
        notes.extend(crate::evaluator::record_reachable(&txn, r.host(), stored, r.ts).await?);
        written.push(notes);
    }
    txn.commit().await?;
    Ok(written)
}

/// A host's newest successful poll, as its row records it.
pub(crate) struct HostTimes {
    pub host_id: i64,
    /// When the poll started (`last_poll_at`).
    pub polled_at: i64,
    /// When its snapshot was taken (`last_ok_at`).
    pub ok_at: i64,
}

/// Moves the hosts' `last_poll_at` and `last_ok_at` forward to `rows`, never back (a failed
/// poll recorded meanwhile may have set a later `last_poll_at`); with `mark_ok`, also sets
/// their status to ok.
pub(crate) async fn write_host_times(
    db: &impl ConnectionTrait,
    rows: &[HostTimes],
    mark_ok: bool,
) -> Result<()> {
    use host::Column as Host;
    let later = |column: Host, value: i64| -> SimpleExpr {
        CaseStatement::new()
            .case(Expr::col(column).gt(value), Expr::col(column))
            .finally(value)
            .into()
    };
    // CASE over the chunk's ids: kept short, it is evaluated for each updated row.
    for chunk in ladder_chunks(rows, 64) {
        let mut polled = CaseStatement::new();
        let mut ok = CaseStatement::new();
        for r in chunk {
            polled = polled.case(Host::Id.eq(r.host_id), later(Host::LastPollAt, r.polled_at));
            ok = ok.case(Host::Id.eq(r.host_id), later(Host::LastOkAt, r.ok_at));
        }
        let mut update = Query::update();
        update
            .table(host::Entity)
            .value(Host::LastPollAt, polled)
            .value(Host::LastOkAt, ok)
            .and_where(Host::Id.is_in(chunk.iter().map(|r| r.host_id)));
        if mark_ok {
            update
                .value(Host::Status, super::status::OK)
                .value(Host::StatusMessage, Option::<String>::None);
        }
        db.execute(&update).await?;
    }
    Ok(())
}

/// Writes `rows` over the hosts' `latest_snapshots` rows (creating the missing ones).
pub(crate) async fn upsert_latest(db: &impl ConnectionTrait, rows: &[&LatestRow]) -> Result<()> {
    use latest_snapshot::Column as Latest;
    insert_rows(
        db,
        rows,
        latest_snapshot::Entity,
        [
            Latest::HostId,
            Latest::TakenAt,
            Latest::Snapshot,
            Latest::Counters,
        ],
        |r| {
            [
                r.host_id.into(),
                r.taken_at.into(),
                r.snapshot_json.as_ref().into(),
                r.counters_json.as_str().into(),
            ]
        },
        Some(
            OnConflict::column(Latest::HostId)
                .update_columns([Latest::TakenAt, Latest::Snapshot, Latest::Counters])
                .to_owned(),
        ),
    )
    .await
}

/// One multi-row INSERT per ladder chunk of `records`: `row` gives each record's values for
/// `columns`, `on_conflict` what a row that exists already does.
async fn insert_rows<R, const N: usize, C: sea_orm::sea_query::IntoIden + Copy>(
    txn: &impl ConnectionTrait,
    records: &[R],
    table: impl sea_orm::sea_query::IntoTableRef + Copy,
    columns: [C; N],
    row: impl Fn(&R) -> [sea_orm::sea_query::SimpleExpr; N],
    on_conflict: Option<OnConflict>,
) -> Result<()> {
    for chunk in ladder_chunks(records, 256) {
        let mut insert = Query::insert();
        insert.into_table(table).columns(columns);
        for r in chunk {
            insert.values_panic(row(r));
        }
        if let Some(conflict) = &on_conflict {
            insert.on_conflict(conflict.clone());
        }
        txn.execute(&insert).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{GAP, Pace, ladder_chunks};

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

    #[test]
    fn ladder_covers_everything_with_few_sizes() {
        let items: Vec<u32> = (0..1000).collect();
        let chunks = ladder_chunks(&items, 256);
        let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![256, 256, 256, 64, 64, 64, 16, 16, 4, 4]);
        let joined: Vec<u32> = chunks.concat();
        assert_eq!(joined, items);
        assert!(ladder_chunks::<u32>(&[], 64).is_empty());
        assert_eq!(ladder_chunks(&[7], 1024), vec![&[7][..]]);
        let sizes: Vec<usize> = ladder_chunks(&[0u8; 7], 4)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, vec![4, 1, 1, 1]);
    }
}
