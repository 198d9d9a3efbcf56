//! Reads of what polling and enrollment recorded: poll attempts, metric series, transcripts.

use entity::{enrollment_run, metric_sample, poll};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::error::Result;

/// The latest poll attempts of a host, newest first.
pub async fn polls(
    db: &impl ConnectionTrait,
    host_id: i64,
    limit: u64,
) -> Result<Vec<poll::Model>> {
    Ok(poll::Entity::find()
        .filter(poll::Column::HostId.eq(host_id))
        .order_by_desc(poll::Column::StartedAt)
        .order_by_desc(poll::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// A metric series query.
#[derive(Debug, Clone)]
pub struct SeriesQuery {
    pub host_id: i64,
    pub name: String,
    /// `None` returns every label of the metric.
    pub label: Option<String>,
    pub from_ms: i64,
    pub to_ms: i64,
    pub limit: u64,
}

/// Samples of one metric in a time range, oldest first, ordered by label then time.
pub async fn series(
    db: &impl ConnectionTrait,
    q: &SeriesQuery,
) -> Result<Vec<metric_sample::Model>> {
    let mut query = metric_sample::Entity::find()
        .filter(metric_sample::Column::HostId.eq(q.host_id))
        .filter(metric_sample::Column::Name.eq(q.name.as_str()))
        .filter(metric_sample::Column::Ts.gte(q.from_ms))
        .filter(metric_sample::Column::Ts.lte(q.to_ms));
    if let Some(label) = &q.label {
        query = query.filter(metric_sample::Column::Label.eq(label.as_str()));
    }
    Ok(query
        .order_by_asc(metric_sample::Column::Label)
        .order_by_asc(metric_sample::Column::Ts)
        .limit(q.limit)
        .all(db)
        .await?)
}

/// The most recent enrollment run of a host.
pub async fn latest_enrollment(
    db: &impl ConnectionTrait,
    host_id: i64,
) -> Result<Option<enrollment_run::Model>> {
    Ok(enrollment_run::Entity::find()
        .filter(enrollment_run::Column::HostId.eq(host_id))
        .order_by_desc(enrollment_run::Column::Id)
        .one(db)
        .await?)
}
