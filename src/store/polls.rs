//! What polling writes: poll records (a successful poll's values packed into its own row), the
//! hosts' poll times, and each host's newest snapshot with the counters its next rates need.
//!
//! Successful polls are written many at a time by the poll writer, with a few multi-row
//! statements whatever the batch size (see [`ladder_chunks`]).

use std::collections::HashSet;

use entity::{
    host, latest_snapshot, poll,
    types::{HostStatus, PollErrorKind, PollOutcome},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set,
    sea_query::{CaseStatement, Expr, ExprTrait, OnConflict, Query, SimpleExpr},
};

use crate::{error::Result, probe::Counters};

/// Splits `items` into chunks whose lengths come from a short fixed ladder (`top`, `top`/4, …,
/// 1; `top` a power of 4), so the database sees a handful of distinct statements whatever the
/// batch size and its statement cache keeps them prepared.
pub fn ladder_chunks<T>(mut items: &[T], top: usize) -> Vec<&[T]> {
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

/// A successful poll's record.
#[derive(Debug)]
pub struct OkPoll<'a> {
    pub host_id: i64,
    pub started_ms: i64,
    pub duration_ms: i64,
    /// When its values were taken.
    pub sampled_ms: i64,
    /// Its values, packed against the host's layout `layout_id` (see `store::rollups`).
    pub layout_id: i64,
    pub data: &'a [u8],
}

/// A host's newest snapshot and counters as its `latest_snapshots` row stores them.
#[derive(Debug, Clone)]
pub struct LatestRow {
    pub host_id: i64,
    pub taken_at: i64,
    pub snapshot_json: std::sync::Arc<str>,
    pub counters_json: String,
}

/// A host's newest successful poll, as its row records it.
#[derive(Debug, Clone, Copy)]
pub struct HostTimes {
    pub host_id: i64,
    /// When the poll started (`last_poll_at`).
    pub polled_at: i64,
    /// When its snapshot was taken (`last_ok_at`).
    pub ok_at: i64,
}

/// Writes a batch of successful polls: their records, the `latest_snapshots` rows due, and the
/// poll times (with status ok) of the hosts whose rows are due.
pub async fn write_ok(
    db: &impl ConnectionTrait,
    polls: &[OkPoll<'_>],
    latest: &[&LatestRow],
    times: &[HostTimes],
) -> Result<()> {
    use poll::Column as Poll;
    upsert_latest(db, latest).await?;
    // The poll's values ride in its own row, packed: one row and one per-host index entry per
    // poll (see the `000006` and `000013` migrations).
    insert_rows(
        db,
        polls,
        poll::Entity,
        [
            Poll::HostId,
            Poll::StartedAt,
            Poll::DurationMs,
            Poll::Outcome,
            Poll::SampledAt,
            Poll::LayoutId,
            Poll::Data,
        ],
        |p| {
            [
                p.host_id.into(),
                p.started_ms.into(),
                p.duration_ms.into(),
                PollOutcome::Ok.as_str().into(),
                p.sampled_ms.into(),
                p.layout_id.into(),
                p.data.to_vec().into(),
            ]
        },
        None,
    )
    .await?;
    write_host_times(db, times, true).await
}

/// A failed (or refused) poll's record.
#[derive(Debug, Clone)]
pub struct FailedPoll {
    pub host_id: i64,
    pub started_ms: i64,
    pub duration_ms: i64,
    pub outcome: PollOutcome,
    pub error_kind: PollErrorKind,
    pub error: String,
}

/// Records a failed poll and moves the host's `last_poll_at` to it; returns the host as it is
/// now (`None` once deleted).
pub async fn write_failed(
    db: &impl ConnectionTrait,
    p: &FailedPoll,
) -> Result<Option<host::Model>> {
    poll::ActiveModel {
        host_id: Set(p.host_id),
        started_at: Set(p.started_ms),
        duration_ms: Set(p.duration_ms),
        outcome: Set(p.outcome),
        error_kind: Set(Some(p.error_kind)),
        error: Set(Some(p.error.clone())),
        ..Default::default()
    }
    .insert(db)
    .await?;
    host::Entity::update_many()
        .col_expr(host::Column::LastPollAt, Expr::value(p.started_ms))
        .filter(host::Column::Id.eq(p.host_id))
        .exec(db)
        .await?;
    Ok(host::Entity::find_by_id(p.host_id).one(db).await?)
}

/// Records a skipped tick of a host whose previous poll was still running.
pub async fn write_overrun(db: &impl ConnectionTrait, host_id: i64, at_ms: i64) -> Result<()> {
    poll::ActiveModel {
        host_id: Set(host_id),
        started_at: Set(at_ms),
        duration_ms: Set(0),
        outcome: Set(PollOutcome::SkippedOverrun),
        error_kind: Set(Some(PollErrorKind::Overrun)),
        error: Set(Some(
            "the previous poll was still running; this tick was skipped".into(),
        )),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The counters of the host's `latest_snapshots` row, when it has a readable one.
pub async fn latest_counters(db: &impl ConnectionTrait, host_id: i64) -> Result<Option<Counters>> {
    Ok(latest_snapshot::Entity::find()
        .filter(latest_snapshot::Column::HostId.eq(host_id))
        .one(db)
        .await?
        .and_then(|row| serde_json::from_str::<Counters>(&row.counters).ok()))
}

/// The snapshot JSON of the host's `latest_snapshots` row.
pub async fn latest_snapshot(db: &impl ConnectionTrait, host_id: i64) -> Result<Option<String>> {
    Ok(latest_snapshot::Entity::find()
        .select_only()
        .column(latest_snapshot::Column::Snapshot)
        .filter(latest_snapshot::Column::HostId.eq(host_id))
        .into_tuple::<String>()
        .one(db)
        .await?)
}

/// The ids of every host.
pub async fn host_ids(db: &impl ConnectionTrait) -> Result<HashSet<i64>> {
    Ok(host::Entity::find()
        .select_only()
        .column(host::Column::Id)
        .into_tuple::<i64>()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

/// Writes the newest snapshots held in memory: `rows` in full, `snapshot_only` (hosts whose
/// counters are not in memory) over their rows' snapshot, keeping the older counters; and the
/// hosts' poll times.
pub async fn write_newest(
    db: &impl ConnectionTrait,
    rows: &[&LatestRow],
    snapshot_only: &[&LatestRow],
    times: &[HostTimes],
) -> Result<()> {
    upsert_latest(db, rows).await?;
    for r in snapshot_only {
        // Its first poll wrote the row (with counters): only the snapshot moves on.
        latest_snapshot::Entity::update_many()
            .col_expr(latest_snapshot::Column::TakenAt, r.taken_at.into())
            .col_expr(
                latest_snapshot::Column::Snapshot,
                r.snapshot_json.as_ref().into(),
            )
            .filter(latest_snapshot::Column::HostId.eq(r.host_id))
            .exec(db)
            .await?;
    }
    write_host_times(db, times, false).await
}

/// Moves the hosts' `last_poll_at` and `last_ok_at` forward to `rows`, never back (a failed
/// poll recorded meanwhile may have set a later `last_poll_at`); with `mark_ok`, also sets
/// their status to ok.
async fn write_host_times(
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
            // A status about the host's setup stays (see `HostStatus::survives_polls`).
            let kept = || Expr::col(Host::Status).eq(HostStatus::ProvisionFailed.as_str());
            update
                .value(
                    Host::Status,
                    CaseStatement::new()
                        .case(kept(), Expr::col(Host::Status))
                        .finally(HostStatus::Ok.as_str()),
                )
                .value(
                    Host::StatusMessage,
                    CaseStatement::new()
                        .case(kept(), Expr::col(Host::StatusMessage))
                        .finally(Option::<String>::None),
                );
        }
        db.execute(&update).await?;
    }
    Ok(())
}

/// Writes `rows` over the hosts' `latest_snapshots` rows (creating the missing ones).
async fn upsert_latest(db: &impl ConnectionTrait, rows: &[&LatestRow]) -> Result<()> {
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
    row: impl Fn(&R) -> [SimpleExpr; N],
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
    use super::ladder_chunks;

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
