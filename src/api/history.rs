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
    /// (label `eth0`). Without `label`, every label of the metric. The range defaults to the
    /// last hour.
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
        from: Query<Option<DateTime<Utc>>>,
        to: Query<Option<DateTime<Utc>>>,
    ) -> ApiResult<SeriesResponse, (BadRequest, NotFound, Invalid)> {
        hosts::get(&self.0.db, id.0).await?;
        let to = to.0.unwrap_or_else(Utc::now);
        let from = from.0.unwrap_or(to - Duration::hours(1));
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
