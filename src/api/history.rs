//! `/hosts/{id}/polls`, `/hosts/{id}/metrics`, `/hosts/{id}/enrollment`: what polling and
//! enrollment recorded about a host.

use chrono::{DateTime, Duration, Utc};
use entity::types::{PollErrorKind, PollOutcome};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use crate::{
    alerts::catalog,
    api::{
        ApiResult, ApiTags, Auth, Page,
        status::{BadRequest, Invalid, NotFound},
        ts,
    },
    error::Error,
    services::Services,
    store::{
        enrollment,
        history::{self, SeriesQuery},
        hosts,
    },
};

/// One poll attempt.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Poll {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub outcome: PollOutcome,
    /// A short class of failure, when the poll failed.
    pub error_kind: Option<PollErrorKind>,
    pub error: Option<String>,
}

/// One point of a series.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Sample {
    pub ts: DateTime<Utc>,
    pub value: f64,
}

/// The points of one label of a metric.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Series {
    pub name: String,
    /// Mount point, interface, device or GPU index; empty for host-wide metrics.
    pub label: String,
    pub points: Vec<Sample>,
}

/// An enrollment run with its whole transcript.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EnrollmentRun {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub ok: bool,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    pub provisioned: bool,
    pub duration_ms: Option<i64>,
    /// Attempts this run stands for: a failure repeated the same way is counted on its first
    /// run, not stored again.
    pub repeats: i32,
    /// When the last repeat started.
    pub last_started_at: Option<DateTime<Utc>>,
}

#[derive(ApiResponse)]
pub enum PollsResponse {
    #[oai(status = 200)]
    Ok(Json<Page<Poll>>),
}

#[derive(ApiResponse)]
pub enum SeriesResponse {
    #[oai(status = 200)]
    Ok(Json<Vec<Series>>),
}

/// One metric of the catalog.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CatalogMetric {
    /// As in `?name=` and in threshold paths.
    pub name: String,
    /// `host` or `url_check`.
    pub subject: String,
    /// Unit of its values: `percent`, `bytes per second`, `hours`, …
    pub unit: String,
    /// What its label holds (`mount point`, `interface`, `GPU index`); empty when it has none.
    pub label: String,
    pub description: String,
    /// Whether a threshold can be set on it.
    pub threshold: bool,
    /// `above`: values over a level are bad; `below`: values under it (days left).
    pub direction: Option<String>,
    /// Built-in warning and critical levels, when it has them.
    pub default_warning: Option<f64>,
    pub default_critical: Option<f64>,
}

#[derive(ApiResponse)]
pub enum CatalogResponse {
    #[oai(status = 200)]
    Ok(Json<Vec<CatalogMetric>>),
}

#[derive(ApiResponse)]
pub enum EnrollmentResponse {
    #[oai(status = 200)]
    Ok(Json<EnrollmentRun>),
}

/// The history resource.
pub struct HistoryApi(pub Services);

/// Most points one series request returns.
const MAX_POINTS: u64 = 10_000;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::History")]
impl HistoryApi {
    /// Recent poll attempts
    ///
    /// Newest first: time, duration, and the error when a poll failed.
    #[oai(path = "/hosts/:id/polls", method = "get", operation_id = "list_polls")]
    async fn polls(
        &self,
        _auth: Auth,
        id: Path<i64>,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<PollsResponse, (BadRequest, NotFound)> {
        hosts::get(&self.0.db, id.0).await?;
        let (limit, offset) = (super::limit(limit.0), offset.0.unwrap_or(0));
        let (rows, total) = history::polls(&self.0.db, id.0, limit, offset).await?;
        Ok(PollsResponse::Ok(Json(Page {
            items: rows
                .into_iter()
                .map(|p| Poll {
                    id: p.id,
                    started_at: ts(p.started_at),
                    duration_ms: p.duration_ms,
                    outcome: p.outcome,
                    error_kind: p.error_kind,
                    error: p.error,
                })
                .collect(),
            total,
            limit,
            offset,
        })))
    }

    /// A metric's time series
    ///
    /// `name` such as `cpu.usage_pct`, `disk.used_pct` (label `/`), `net.rx_bytes_per_s`
    /// (label `eth0`): one of `GET /metrics/catalog`, else 400. Without `label`, every label of
    /// the metric. `from` and `to` are RFC 3339 times or relative to now (`-1h`, `-30m`,
    /// `-7d`, `now`); the range defaults to the last hour.
    #[oai(
        path = "/hosts/:id/metrics",
        method = "get",
        operation_id = "get_metric_series"
    )]
    async fn series(
        &self,
        _auth: Auth,
        id: Path<i64>,
        name: Query<String>,
        label: Query<Option<String>>,
        /// Start: RFC 3339 (`2026-12-01T10:00:00Z`) or relative (`-6h`); default an hour
        /// before `to`.
        from: Query<Option<String>>,
        /// End: RFC 3339 or relative (`-5m`, `now`); default now.
        to: Query<Option<String>>,
    ) -> ApiResult<SeriesResponse, (BadRequest, NotFound, Invalid)> {
        hosts::get(&self.0.db, id.0).await?;
        if catalog::find(catalog::Owner::Host, &name.0).is_none() {
            return Err(Error::BadRequest(format!(
                "unknown metric {:?}; one of {} (GET /api/v1/metrics/catalog)",
                name.0,
                catalog::names(catalog::Owner::Host).join(", ")
            ))
            .into());
        }
        let now = Utc::now();
        let to = match to.0 {
            Some(t) => super::time_param("to", &t, now)?,
            None => now,
        };
        let from = match from.0 {
            Some(t) => super::time_param("from", &t, now)?,
            None => to - Duration::hours(1),
        };
        if from > to {
            return Err(Error::invalid("from", "must not be after to").into());
        }
        let query = SeriesQuery {
            host_id: id.0,
            name: name.0.clone(),
            label: label.0,
            from_ms: from.timestamp_millis(),
            to_ms: to.timestamp_millis(),
            limit: MAX_POINTS,
        };
        let mut out: Vec<Series> = Vec::new();
        for s in history::series(&self.0.db, &query).await? {
            if out.last().is_none_or(|last| last.label != s.label) {
                out.push(Series {
                    name: name.0.clone(),
                    label: s.label.clone(),
                    points: Vec::new(),
                });
            }
            out.last_mut().expect("pushed above").points.push(Sample {
                ts: ts(s.ts),
                value: s.value,
            });
        }
        Ok(SeriesResponse::Ok(Json(out)))
    }

    /// The metric catalog
    ///
    /// Every metric hostwatch records: name, unit, label, description, and whether a
    /// threshold can be set on it (with its defaults).
    #[oai(
        path = "/metrics/catalog",
        method = "get",
        operation_id = "get_metric_catalog"
    )]
    async fn catalog(&self, _auth: Auth) -> ApiResult<CatalogResponse, ()> {
        let items = catalog::CATALOG
            .iter()
            .map(|e| {
                let spec = catalog::threshold_spec(e);
                CatalogMetric {
                    name: e.name.to_owned(),
                    subject: match e.owner {
                        catalog::Owner::Host => "host".into(),
                        catalog::Owner::UrlCheck => "url_check".into(),
                    },
                    unit: e.unit.to_owned(),
                    label: e.label.to_owned(),
                    description: e.description.to_owned(),
                    threshold: spec.is_some(),
                    direction: spec.map(|s| match s.direction {
                        crate::alerts::Direction::Above => "above".into(),
                        crate::alerts::Direction::Below => "below".into(),
                    }),
                    default_warning: spec.and_then(|s| s.defaults).map(|d| d.0),
                    default_critical: spec.and_then(|s| s.defaults).map(|d| d.1),
                }
            })
            .collect();
        Ok(CatalogResponse::Ok(Json(items)))
    }

    /// The latest enrollment transcript
    ///
    /// stdout, stderr, exit code and timings of the most recent enrollment, whether it worked or
    /// not. 404 until the host has been enrolled once.
    #[oai(
        path = "/hosts/:id/enrollment",
        method = "get",
        operation_id = "get_enrollment"
    )]
    async fn enrollment(
        &self,
        _auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<EnrollmentResponse, (BadRequest, NotFound)> {
        hosts::get(&self.0.db, id.0).await?;
        let run = enrollment::latest(&self.0.db, id.0)
            .await?
            .ok_or_else(|| Error::NotFound(format!("host {} has not been enrolled yet", id.0)))?;
        Ok(EnrollmentResponse::Ok(Json(enrollment_view(run))))
    }
}

/// The API form of a stored enrollment run.
pub fn enrollment_view(run: entity::enrollment_run::Model) -> EnrollmentRun {
    EnrollmentRun {
        id: run.id,
        started_at: ts(run.started_at),
        finished_at: run.finished_at.map(ts),
        ok: run.ok,
        exit_code: run.exit_code,
        stdout: run.stdout,
        stderr: run.stderr,
        error: run.error,
        provisioned: run.provisioned,
        duration_ms: run.duration_ms,
        repeats: run.repeats,
        last_started_at: run.last_started_at.map(ts),
    }
}
