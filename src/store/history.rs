//! Reads of what polling and enrollment recorded: poll attempts, metric series, transcripts;
//! and the packed form a poll's metric values are stored in.

use std::collections::BTreeMap;

use entity::{
    metric_sample, metric_sample_set, poll,
    types::{PollErrorKind, PollOutcome},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::{error::Result, probe::MetricValue};

/// The values of one poll as its `polls` row stores them (and `metric_sample_sets` rows did):
/// `{"<name>": {"<label>": value, …}, …}`.
pub fn pack(values: &[MetricValue]) -> String {
    let mut by_name: BTreeMap<&str, BTreeMap<&str, f64>> = BTreeMap::new();
    for v in values {
        by_name
            .entry(v.name)
            .or_default()
            .insert(v.label.as_str(), v.value);
    }
    serde_json::to_string(&by_name).expect("names, labels and finite numbers serialise")
}

/// The values of metric `name` in a packed set, by label. A set that cannot be read (written
/// by hand, say) gives none rather than failing the whole query.
pub fn unpack(samples: &str, name: &str) -> BTreeMap<String, f64> {
    serde_json::from_str::<BTreeMap<String, BTreeMap<String, Option<f64>>>>(samples)
        .ok()
        .and_then(|mut by_name| by_name.remove(name))
        .map(|labels| {
            labels
                .into_iter()
                .filter_map(|(label, value)| Some((label, value?)))
                .collect()
        })
        .unwrap_or_default()
}

/// A poll attempt as listed: its row without the metric values it carries.
#[derive(Debug, Clone, PartialEq, sea_orm::FromQueryResult)]
pub struct PollRecord {
    pub id: i64,
    pub started_at: i64,
    pub duration_ms: i64,
    pub outcome: PollOutcome,
    pub error_kind: Option<PollErrorKind>,
    pub error: Option<String>,
}

/// The latest poll attempts of a host, newest first.
/// A page of a host's polls, newest first, and how many it has in all.
pub async fn polls(
    db: &impl ConnectionTrait,
    host_id: i64,
    limit: u64,
    offset: u64,
) -> Result<(Vec<PollRecord>, u64)> {
    use poll::Column as C;
    let total = poll::Entity::find()
        .filter(poll::Column::HostId.eq(host_id))
        .count(db)
        .await?;
    // Not the values (a kilobyte or two a row): the listing does not show them.
    let rows = poll::Entity::find()
        .select_only()
        .columns([
            C::Id,
            C::StartedAt,
            C::DurationMs,
            C::Outcome,
            C::ErrorKind,
            C::Error,
        ])
        .filter(poll::Column::HostId.eq(host_id))
        .order_by_desc(poll::Column::StartedAt)
        .order_by_desc(poll::Column::Id)
        .limit(limit)
        .offset(offset)
        .into_model::<PollRecord>()
        .all(db)
        .await?;
    Ok((rows, total))
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

/// One point of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub label: String,
    pub ts: i64,
    pub value: f64,
}

/// How long before a range's start a poll may have started and still have taken its values
/// inside the range. Polls are found by when they started (the indexed column) and their values
/// belong to when they were taken, a poll's duration later. An hour is 120 times the default
/// 30 s poll deadline; a poll that took longer would be missed at a range's very start.
const POLL_SPAN_MS: i64 = 3_600_000;

/// Samples of one metric in a time range, ordered by label then time, at most `limit`.
pub async fn series(db: &impl ConnectionTrait, q: &SeriesQuery) -> Result<Vec<Point>> {
    let mut points: Vec<Point> = legacy_series(db, q)
        .await?
        .into_iter()
        .map(|s| Point {
            label: s.label,
            ts: s.ts,
            value: s.value,
        })
        .collect();
    // Each poll holds at most a few values of one metric: `limit` polls are enough for `limit`
    // points.
    let polls: Vec<(Option<i64>, Option<String>)> = poll::Entity::find()
        .select_only()
        .column(poll::Column::SampledAt)
        .column(poll::Column::Samples)
        .filter(poll::Column::HostId.eq(q.host_id))
        .filter(poll::Column::StartedAt.gte(q.from_ms.saturating_sub(POLL_SPAN_MS)))
        .filter(poll::Column::StartedAt.lte(q.to_ms))
        .filter(poll::Column::SampledAt.gte(q.from_ms))
        .filter(poll::Column::SampledAt.lte(q.to_ms))
        .order_by_asc(poll::Column::StartedAt)
        .limit(q.limit)
        .into_tuple()
        .all(db)
        .await?;
    for (ts, samples) in polls {
        if let (Some(ts), Some(samples)) = (ts, samples) {
            push_points(&mut points, q, ts, &samples);
        }
    }
    // Sets written before the values moved into `polls`.
    let sets = metric_sample_set::Entity::find()
        .filter(metric_sample_set::Column::HostId.eq(q.host_id))
        .filter(metric_sample_set::Column::Ts.gte(q.from_ms))
        .filter(metric_sample_set::Column::Ts.lte(q.to_ms))
        .order_by_asc(metric_sample_set::Column::Ts)
        .limit(q.limit)
        .all(db)
        .await?;
    for set in sets {
        push_points(&mut points, q, set.ts, &set.samples);
    }
    points.sort_by(|a, b| a.label.cmp(&b.label).then(a.ts.cmp(&b.ts)));
    points.truncate(q.limit as usize);
    Ok(points)
}

/// The points of `q`'s metric (and label, when given) in one poll's packed values.
fn push_points(points: &mut Vec<Point>, q: &SeriesQuery, ts: i64, samples: &str) {
    for (label, value) in unpack(samples, &q.name) {
        if q.label.as_ref().is_none_or(|l| *l == label) {
            points.push(Point { label, ts, value });
        }
    }
}

/// Samples stored one row each, before samples were packed per poll.
async fn legacy_series(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn value(name: &'static str, label: &str, value: f64) -> MetricValue {
        MetricValue {
            name,
            label: label.into(),
            value,
        }
    }

    #[test]
    fn packed_values_read_back_by_name() {
        let packed = pack(&[
            value("cpu.usage_pct", "", 12.5),
            value("disk.used_pct", "/", 40.0),
            value("disk.used_pct", "/home \"x\"", 3.25),
        ]);
        assert_eq!(
            unpack(&packed, "cpu.usage_pct"),
            BTreeMap::from([(String::new(), 12.5)])
        );
        assert_eq!(
            unpack(&packed, "disk.used_pct"),
            BTreeMap::from([("/".to_owned(), 40.0), ("/home \"x\"".to_owned(), 3.25)])
        );
        assert!(unpack(&packed, "load.one").is_empty());
        assert!(unpack("not json", "cpu.usage_pct").is_empty());
        assert_eq!(
            unpack(r#"{"m":{"a":null,"b":1}}"#, "m"),
            BTreeMap::from([("b".to_owned(), 1.0)])
        );
    }
}
