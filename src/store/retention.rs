//! Retention: raw polls, each rollup tier and URL-check results are deleted on a timer, each
//! past its own age.
//!
//! Rows go a chunk at a time, each chunk a statement of its own: a large fleet's ten minutes of
//! polls deleted as one statement would hold SQLite's write lock for seconds while the poll
//! writer waits behind it; a chunk holds it for a fraction of a second.

use entity::{poll, url_check_result};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use crate::{error::Result, store::series, tiers::Tier};

/// Rows deleted per statement by [`purge`].
pub const PURGE_CHUNK: u64 = 5_000;

/// What is older than these times (Unix ms) is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Poll records (with their raw values).
    pub raw: i64,
    pub minute: i64,
    pub ten_minutes: i64,
    pub hour: i64,
    pub url_results: i64,
}

impl Cutoffs {
    /// The same cutoff for everything.
    pub fn all(cutoff_ms: i64) -> Self {
        Self {
            raw: cutoff_ms,
            minute: cutoff_ms,
            ten_minutes: cutoff_ms,
            hour: cutoff_ms,
            url_results: cutoff_ms,
        }
    }

    fn of(&self, tier: Tier) -> i64 {
        match tier {
            Tier::Raw => self.raw,
            Tier::Minute => self.minute,
            Tier::TenMinutes => self.ten_minutes,
            Tier::Hour => self.hour,
        }
    }
}

/// Rows deleted by one purge.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub polls: u64,
    /// Buckets of the 1-minute, 10-minute and 1-hour tiers.
    pub buckets: [u64; 3],
    pub url_results: u64,
}

/// Deletes history older than its tier's cutoff.
pub async fn purge(db: &impl ConnectionTrait, cutoffs: &Cutoffs) -> Result<Purged> {
    purge_in_chunks(db, cutoffs, PURGE_CHUNK).await
}

/// [`purge`], deleting `chunk` rows per statement.
pub async fn purge_in_chunks(
    db: &impl ConnectionTrait,
    cutoffs: &Cutoffs,
    chunk: u64,
) -> Result<Purged> {
    use poll::Column as Poll;
    let chunk = chunk.max(1);
    let polls =
        delete_older::<poll::Entity>(db, Poll::Id, Poll::StartedAt, cutoffs.raw, chunk).await?;
    let hosts: Vec<i64> = crate::store::polls::host_ids(db)
        .await?
        .into_iter()
        .collect();
    let mut buckets = [0; 3];
    for (n, tier) in buckets.iter_mut().zip(Tier::ROLLUPS) {
        *n = series::purge_tier(db, tier, &hosts, cutoffs.of(tier), chunk).await?;
    }
    // One row per check and run, indexed by check first: few enough for one statement.
    let url_results = url_check_result::Entity::delete_many()
        .filter(url_check_result::Column::CheckedAt.lt(cutoffs.url_results))
        .exec(db)
        .await?;
    Ok(Purged {
        polls,
        buckets,
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
