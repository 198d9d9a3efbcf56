//! Retention: old metric samples, poll records and URL-check results are deleted on a timer.
//!
//! Polls and samples go a chunk at a time, each chunk a statement of its own: a large fleet's ten
//! minutes of polls deleted as one statement would hold SQLite's write lock for seconds while
//! the poll writer waits behind it; a chunk holds it for a fraction of a second.

use entity::{metric_sample, metric_sample_set, poll, url_check_result};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use crate::error::Result;

/// Rows deleted per statement by [`purge`].
pub const PURGE_CHUNK: u64 = 5_000;

/// Rows deleted by one purge.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Sample rows: packed sets, and single samples written before sets existed.
    pub samples: u64,
    pub polls: u64,
    pub url_results: u64,
}

/// Deletes history older than `cutoff_ms`.
pub async fn purge(db: &impl ConnectionTrait, cutoff_ms: i64) -> Result<Purged> {
    purge_in_chunks(db, cutoff_ms, PURGE_CHUNK).await
}

/// [`purge`], deleting polls and samples `chunk` rows per statement.
pub async fn purge_in_chunks(
    db: &impl ConnectionTrait,
    cutoff_ms: i64,
    chunk: u64,
) -> Result<Purged> {
    use metric_sample::Column as Sample;
    use metric_sample_set::Column as Set;
    use poll::Column as Poll;
    let samples =
        delete_older::<metric_sample::Entity>(db, Sample::Id, Sample::Ts, cutoff_ms, chunk).await?;
    let sets =
        delete_older::<metric_sample_set::Entity>(db, Set::Id, Set::Ts, cutoff_ms, chunk).await?;
    let polls =
        delete_older::<poll::Entity>(db, Poll::Id, Poll::StartedAt, cutoff_ms, chunk).await?;
    // One row per check and run, indexed by check first: few enough for one statement.
    let url_results = url_check_result::Entity::delete_many()
        .filter(url_check_result::Column::CheckedAt.lt(cutoff_ms))
        .exec(db)
        .await?;
    Ok(Purged {
        samples: samples + sets,
        polls,
        url_results: url_results.rows_affected,
    })
}

/// Deletes the rows of `E` whose `time` is before `cutoff_ms`, `chunk` at a time, and says how
/// many. `time` must be indexed: each chunk is found through it.
async fn delete_older<E: EntityTrait>(
    db: &impl ConnectionTrait,
    id: E::Column,
    time: E::Column,
    cutoff_ms: i64,
    chunk: u64,
) -> Result<u64> {
    let chunk = chunk.max(1);
    let mut deleted = 0;
    loop {
        let ids: Vec<i64> = E::find()
            .select_only()
            .column(id)
            .filter(time.lt(cutoff_ms))
            .limit(chunk)
            .into_tuple()
            .all(db)
            .await?;
        let last = (ids.len() as u64) < chunk;
        if !ids.is_empty() {
            deleted += E::delete_many()
                .filter(id.is_in(ids))
                .exec(db)
                .await?
                .rows_affected;
        }
        if last {
            return Ok(deleted);
        }
    }
}
