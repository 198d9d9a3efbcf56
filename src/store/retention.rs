//! Retention: old metric samples, poll records and URL-check results are deleted on a timer.

use entity::{metric_sample, metric_sample_set, poll, url_check_result};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::error::Result;

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
    let samples = metric_sample::Entity::delete_many()
        .filter(metric_sample::Column::Ts.lt(cutoff_ms))
        .exec(db)
        .await?;
    let sets = metric_sample_set::Entity::delete_many()
        .filter(metric_sample_set::Column::Ts.lt(cutoff_ms))
        .exec(db)
        .await?;
    let polls = poll::Entity::delete_many()
        .filter(poll::Column::StartedAt.lt(cutoff_ms))
        .exec(db)
        .await?;
    let url_results = url_check_result::Entity::delete_many()
        .filter(url_check_result::Column::CheckedAt.lt(cutoff_ms))
        .exec(db)
        .await?;
    Ok(Purged {
        samples: samples.rows_affected + sets.rows_affected,
        polls: polls.rows_affected,
        url_results: url_results.rows_affected,
    })
}
