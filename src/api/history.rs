//! `/hosts/{id}/polls`, `/hosts/{id}/metrics` (step queries and export),
//! `/url-checks/{id}/metrics`, `/metrics/top`, `/metrics/summary`, `/hosts/{id}/enrollment`:
//! what polling, URL checks and enrollment recorded, at any range.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};
use entity::{
    series::Aggregate,
    types::{HostStatus, PollErrorKind, PollOutcome},
};
use poem::Body;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi, ResponseContent,
    param::{Path, Query},
    payload::{Binary, Json},
};

use crate::{
    alerts::{catalog, text},
    api::{
        ApiResult, ApiTags, Auth, Page,
        status::{BadRequest, Invalid, NotFound},
        ts,
    },
    error::Error,
    services::Services,
    store::{
        enrollment,
        history::{self, UrlValue},
        hosts,
        series::{self, KeyFilter, Read},
        url_checks,
    },
    tiers::{self, Tier},
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

/// Which of a bucket's figures `value` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Agg {
    #[default]
    Avg,
    Min,
    Max,
}

impl Agg {
    fn of(self, a: &Aggregate) -> f64 {
        match self {
            Agg::Avg => a.avg().unwrap_or(f64::NAN),
            Agg::Min => a.min,
            Agg::Max => a.max,
        }
    }
}

/// One bucket of a series.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Sample {
    /// The bucket's start.
    pub ts: DateTime<Utc>,
    /// The figure `agg` asked for.
    pub value: f64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    /// Values in the bucket (polls, or URL-check runs).
    pub count: u32,
}

impl Sample {
    fn of(start: i64, a: &Aggregate, agg: Agg) -> Self {
        Sample {
            ts: ts(start),
            value: stored_precision(agg.of(a)),
            avg: stored_precision(a.avg().unwrap_or(f64::NAN)),
            min: stored_precision(a.min),
            max: stored_precision(a.max),
            count: a.count,
        }
    }
}

/// `v` with the seven significant digits history stores (`entity::series`): `0.61`, not the
/// `0.6100000143051147` its `f32` widens to.
fn stored_precision(v: f64) -> f64 {
    let short = (v as f32).to_string();
    short.parse().unwrap_or(v)
}

/// The buckets of one label of a metric. A bucket with no value (the host unreachable, say)
/// is absent: a gap, not a zero.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Series {
    pub name: String,
    /// Mount point, interface, device or GPU index; empty for host-wide metrics.
    pub label: String,
    pub points: Vec<Sample>,
}

impl Series {
    fn of<'a>(
        name: String,
        label: String,
        buckets: impl IntoIterator<Item = (&'a i64, &'a Aggregate)>,
        agg: Agg,
    ) -> Self {
        Self {
            name,
            label,
            points: buckets
                .into_iter()
                .map(|(start, a)| Sample::of(*start, a, agg))
                .collect(),
        }
    }
}

/// A step query's answer.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SeriesSet {
    /// The coarsest tier read: `raw`, `1m`, `10m` or `1h` (the part of the range it has no
    /// buckets for yet comes from finer ones).
    pub tier: String,
    /// Width of each bucket.
    pub step_seconds: i64,
    /// The range's start rounded down to a step, and its end.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub agg: Agg,
    pub series: Vec<Series>,
}

impl SeriesSet {
    /// The answer to `plan`, read from `tier` down.
    fn of(tier: Tier, plan: &tiers::Plan, agg: Agg, series: Vec<Series>) -> Self {
        Self {
            tier: tier.name().into(),
            step_seconds: plan.step_ms / 1000,
            from: ts(plan.from_ms),
            to: ts(plan.to_ms),
            agg,
            series,
        }
    }
}

/// One host's figure in a fleet question.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TopItem {
    pub host_id: i64,
    pub host_name: String,
    /// The label (mount, GPU, …) the figure is of: the host's worst one.
    pub label: String,
    pub value: f64,
}

/// The hosts with the highest (or lowest) figure of a metric over a range.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TopList {
    pub name: String,
    pub agg: Agg,
    /// The tier read; the range is widened to its whole buckets.
    pub tier: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub items: Vec<TopItem>,
}

/// Hosts with one status.
#[derive(Debug, Object)]
pub struct StatusCount {
    pub status: HostStatus,
    pub count: u64,
}

/// The fleet at a glance.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct FleetSummary {
    pub hosts: u64,
    pub by_status: Vec<StatusCount>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Fullest mounts (highest `disk.used_pct`), one a host.
    pub worst_disks: Vec<TopItem>,
    /// Hottest GPUs (highest `gpu.temperature_c`), one a host.
    pub hottest_gpus: Vec<TopItem>,
    /// Busiest CPUs (highest average `cpu.usage_pct`).
    pub busiest_cpus: Vec<TopItem>,
    /// Fullest memory (highest `memory.used_pct`).
    pub fullest_memory: Vec<TopItem>,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Csv,
    Ndjson,
}

/// An export's body, streamed.
#[derive(ResponseContent)]
pub enum ExportBody {
    /// `time,name,label,value` with a header line; fields quoted as RFC 4180 says.
    #[oai(content_type = "text/csv")]
    Csv(Binary<Body>),
    /// One `{"time","name","label","value"}` object a line.
    #[oai(content_type = "application/x-ndjson")]
    Ndjson(Binary<Body>),
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
    Ok(Json<SeriesSet>),
}

#[derive(ApiResponse)]
pub enum ExportResponse {
    #[oai(status = 200)]
    Ok(ExportBody),
}

#[derive(ApiResponse)]
pub enum TopResponse {
    #[oai(status = 200)]
    Ok(Json<TopList>),
}

#[derive(ApiResponse)]
pub enum SummaryResponse {
    #[oai(status = 200)]
    Ok(Json<FleetSummary>),
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

/// Most metric names one series request may ask for.
const MAX_NAMES: usize = 20;
/// Polls read per page of an export.
const EXPORT_PAGE: u64 = 500;
/// What a page of an export usually takes as text: allocated once a page, not grown.
const EXPORT_CHUNK_BYTES: usize = 1 << 20;

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

    /// A host's metric series, in buckets
    ///
    /// `name` such as `cpu.usage_pct`, `disk.used_pct` (label `/`), `net.rx_bytes_per_s`
    /// (label `eth0`), repeated for several (`?name=cpu.usage_pct&name=memory.used_pct`): each
    /// one of `GET /metrics/catalog`, else 400. Without `label`, every label. `from` and `to`
    /// are RFC 3339 times or relative to now (`-1h`, `-30m`, `-7d`, `now`); the range defaults
    /// to the last hour. `step=auto` (the default) fits the range in at most 1,500 buckets a
    /// series and reads the coarsest tier that tiles them: raw polls for hours, 1-minute
    /// buckets for a day, 10-minute for a week, 1-hour for a month; `step=60s`, `10m`, `1h`
    /// ask for a width (at most 20,000 buckets). Each bucket has `avg`, `min`, `max`, `count`,
    /// and `value`, the one `agg` names. A bucket without values is left out.
    #[oai(
        path = "/hosts/:id/metrics",
        method = "get",
        operation_id = "get_metric_series"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn series(
        &self,
        _auth: Auth,
        id: Path<i64>,
        name: Query<Vec<String>>,
        label: Query<Option<String>>,
        /// Start: RFC 3339 (`2026-12-01T10:00:00Z`) or relative (`-6h`); default an hour
        /// before `to`.
        from: Query<Option<String>>,
        /// End: RFC 3339 or relative (`-5m`, `now`); default now.
        to: Query<Option<String>>,
        /// `auto`, or a width such as `60s`, `10m`, `1h`, `1d`.
        step: Query<Option<String>>,
        /// Which figure `value` is: `avg` (default), `min` or `max`.
        agg: Query<Option<Agg>>,
    ) -> ApiResult<SeriesResponse, (BadRequest, NotFound, Invalid)> {
        hosts::get(&self.0.db, id.0).await?;
        let names = host_metrics(name.0)?;
        let (now, from, to) = range(from.0, to.0)?;
        let plan = self.plan(from, to, now, step.0)?;
        let agg = agg.0.unwrap_or_default();
        let found = series::read(
            &self.0.db,
            &Read {
                host_ids: vec![id.0],
                keys: KeyFilter {
                    names: names.clone(),
                    label: label.0,
                },
                tier: plan.tier,
                from_ms: plan.from_ms,
                to_ms: plan.to_ms + 1,
                step_ms: Some(plan.step_ms),
            },
        )
        .await?;
        let mut out: Vec<Series> = found
            .into_iter()
            .map(|((_, key), buckets)| Series::of(key.name, key.label, &buckets, agg))
            .collect();
        // In the order the names were asked for, each name's labels in order.
        out.sort_by_key(|s| names.iter().position(|n| *n == s.name));
        Ok(SeriesResponse::Ok(Json(SeriesSet::of(
            plan.tier, &plan, agg, out,
        ))))
    }

    /// A host's raw values as a file
    ///
    /// Every value of every poll taken in `[from, to)` (default the last hour), oldest first:
    /// CSV (`time,name,label,value`) or NDJSON. Restrict to metrics with `name`, repeated.
    /// Streamed a few hundred polls at a time, so a long range does not fill the service's
    /// memory; the raw tier is kept for `--retention-raw`.
    #[oai(
        path = "/hosts/:id/metrics/export",
        method = "get",
        operation_id = "export_metrics"
    )]
    async fn export(
        &self,
        _auth: Auth,
        id: Path<i64>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        /// `csv` (default) or `ndjson`.
        format: Query<Option<ExportFormat>>,
        name: Query<Vec<String>>,
    ) -> ApiResult<ExportResponse, (BadRequest, NotFound, Invalid)> {
        hosts::get(&self.0.db, id.0).await?;
        let names = if name.0.is_empty() {
            Vec::new()
        } else {
            host_metrics(name.0)?
        };
        let (_, from, to) = range(from.0, to.0)?;
        let format = format.0.unwrap_or_default();
        let body = Body::from_bytes_stream(export_stream(
            self.0.db.clone(),
            id.0,
            from.timestamp_millis(),
            to.timestamp_millis(),
            names,
            format,
        ));
        Ok(ExportResponse::Ok(match format {
            ExportFormat::Csv => ExportBody::Csv(Binary(body)),
            ExportFormat::Ndjson => ExportBody::Ndjson(Binary(body)),
        }))
    }

    /// A URL check's response times, in buckets
    ///
    /// `name` is `url.response_ms` (default) or `cert.days_left`; `from`, `to`, `step` and
    /// `agg` as for a host's series. A bucket without a measured run (the check failed, say)
    /// is left out.
    #[oai(
        path = "/url-checks/:id/metrics",
        method = "get",
        operation_id = "get_url_check_series"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn url_series(
        &self,
        _auth: Auth,
        id: Path<i64>,
        name: Query<Option<String>>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        step: Query<Option<String>>,
        agg: Query<Option<Agg>>,
    ) -> ApiResult<SeriesResponse, (BadRequest, NotFound, Invalid)> {
        url_checks::get(&self.0.db, id.0).await?;
        let name = name.0.unwrap_or_else(|| text::URL_RESPONSE_MS.to_owned());
        let value = match name.as_str() {
            text::URL_RESPONSE_MS => UrlValue::ResponseMs,
            text::CERT_DAYS_LEFT => UrlValue::CertDaysLeft,
            other => {
                return Err(Error::BadRequest(format!(
                    "unknown metric {other:?}; one of {}, {}",
                    text::URL_RESPONSE_MS,
                    text::CERT_DAYS_LEFT
                ))
                .into());
            }
        };
        let (now, from, to) = range(from.0, to.0)?;
        // One row a run: the raw tier only, kept for the URL results' retention.
        let retention = tiers::Retention {
            raw: self.0.poller.settings().retention.url_results,
            minute: std::time::Duration::ZERO,
            ten_minutes: std::time::Duration::ZERO,
            hour: std::time::Duration::ZERO,
            ..self.0.poller.settings().retention
        };
        let plan = plan_within(from, to, now, step.0, &retention)?;
        let agg = agg.0.unwrap_or_default();
        let buckets = history::url_buckets(
            &self.0.db,
            id.0,
            value,
            plan.from_ms,
            plan.to_ms + 1,
            plan.step_ms,
        )
        .await?;
        let series = if buckets.is_empty() {
            Vec::new()
        } else {
            vec![Series::of(
                name.clone(),
                String::new(),
                buckets.iter().map(|(t, a)| (t, a)),
                agg,
            )]
        };
        Ok(SeriesResponse::Ok(Json(SeriesSet::of(
            Tier::Raw,
            &plan,
            agg,
            series,
        ))))
    }

    /// The hosts highest (or lowest) in a metric
    ///
    /// "Which hosts had the most CPU over the last day": each host's `agg` (`max` by default,
    /// `avg`, `min`) of `name` over `[from, to)` (default the last hour), from the rollups;
    /// for a labelled metric (mounts, GPUs) the host's worst label, or the one `label` names.
    /// `order=asc` lists the lowest first. The range is widened to whole buckets of the tier
    /// read (hours for a day).
    #[oai(path = "/metrics/top", method = "get", operation_id = "get_metric_top")]
    #[allow(clippy::too_many_arguments)]
    async fn top(
        &self,
        _auth: Auth,
        name: Query<String>,
        label: Query<Option<String>>,
        agg: Query<Option<Agg>>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        /// 1 to 100, default 10.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// `desc` (default): highest first; `asc`: lowest first.
        order: Query<Option<String>>,
    ) -> ApiResult<TopResponse, (BadRequest, Invalid)> {
        let names = host_metrics(vec![name.0])?;
        let (now, from, to) = range(from.0, to.0)?;
        let ascending = match order.0.as_deref() {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(other) => {
                return Err(Error::invalid("order", format!("{other:?}: asc or desc")).into());
            }
        };
        let agg = agg.0.unwrap_or(Agg::Max);
        let tier = tiers::top_tier(
            from.timestamp_millis(),
            to.timestamp_millis(),
            now.timestamp_millis(),
            &self.0.poller.settings().retention,
        );
        let from_ms = tier.bucket(from.timestamp_millis());
        let mut tops = self
            .fleet(&names, label.0, tier, from_ms, to.timestamp_millis())
            .await?;
        let items = rank(
            tops.remove(&names[0]).unwrap_or_default(),
            agg,
            ascending,
            limit.0.unwrap_or(10) as usize,
            &hosts::names(&self.0.db).await?,
        );
        Ok(TopResponse::Ok(Json(TopList {
            name: names[0].clone(),
            agg,
            tier: tier.name().into(),
            from: ts(from_ms),
            to: ts(to.timestamp_millis()),
            items,
        })))
    }

    /// The fleet at a glance
    ///
    /// Hosts by status, and over `[from, to)` (default the last 15 minutes) the five fullest
    /// mounts, hottest GPUs, busiest CPUs and fullest memories, one entry a host — what an
    /// overview page shows first. Answered from the rollups.
    #[oai(
        path = "/metrics/summary",
        method = "get",
        operation_id = "get_fleet_summary"
    )]
    async fn summary(
        &self,
        _auth: Auth,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
    ) -> ApiResult<SummaryResponse, (BadRequest, Invalid)> {
        let now = Utc::now();
        let from = match from.0 {
            Some(f) => Some(f),
            None => Some("-15m".to_owned()),
        };
        let (now, from, to) = range_at(now, from, to.0)?;
        let tier = tiers::top_tier(
            from.timestamp_millis(),
            to.timestamp_millis(),
            now.timestamp_millis(),
            &self.0.poller.settings().retention,
        );
        let from_ms = tier.bucket(from.timestamp_millis());
        const DISK: &str = "disk.used_pct";
        const GPU: &str = "gpu.temperature_c";
        const CPU: &str = "cpu.usage_pct";
        const MEMORY: &str = "memory.used_pct";
        let names: Vec<String> = [DISK, GPU, CPU, MEMORY].map(String::from).into();
        let mut found = self
            .fleet(&names, None, tier, from_ms, to.timestamp_millis())
            .await?;
        let host_names = hosts::names(&self.0.db).await?;
        let mut top = |name: &str, agg: Agg| {
            rank(
                found.remove(name).unwrap_or_default(),
                agg,
                false,
                5,
                &host_names,
            )
        };
        let by_status: Vec<StatusCount> = hosts::count_by_status(&self.0.db)
            .await?
            .into_iter()
            .map(|(status, count)| StatusCount { status, count })
            .collect();
        Ok(SummaryResponse::Ok(Json(FleetSummary {
            hosts: by_status.iter().map(|s| s.count).sum(),
            by_status,
            from: ts(from_ms),
            to: ts(to.timestamp_millis()),
            worst_disks: top(DISK, Agg::Max),
            hottest_gpus: top(GPU, Agg::Max),
            busiest_cpus: top(CPU, Agg::Avg),
            fullest_memory: top(MEMORY, Agg::Max),
        })))
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

impl HistoryApi {
    /// The plan of a host series query.
    fn plan(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
        step: Option<String>,
    ) -> crate::error::Result<tiers::Plan> {
        plan_within(from, to, now, step, &self.0.poller.settings().retention)
    }

    /// Every host's aggregate of each of `names` over `[from_ms, to_ms)`: by metric, then by
    /// host and label.
    async fn fleet(
        &self,
        names: &[String],
        label: Option<String>,
        tier: Tier,
        from_ms: i64,
        to_ms: i64,
    ) -> crate::error::Result<HashMap<String, BTreeMap<(i64, String), Aggregate>>> {
        let host_ids: Vec<i64> = hosts::names(&self.0.db).await?.into_keys().collect();
        let found = series::read(
            &self.0.db,
            &Read {
                host_ids,
                keys: KeyFilter {
                    names: names.to_vec(),
                    label,
                },
                tier,
                from_ms,
                to_ms,
                step_ms: None,
            },
        )
        .await?;
        let mut out: HashMap<String, BTreeMap<(i64, String), Aggregate>> = HashMap::new();
        for ((host, key), buckets) in found {
            let mut total = Aggregate::default();
            for a in buckets.values() {
                total.merge(a);
            }
            out.entry(key.name)
                .or_default()
                .insert((host, key.label), total);
        }
        Ok(out)
    }
}

/// Each host's worst label by `agg`, best first, at most `limit`.
fn rank(
    found: BTreeMap<(i64, String), Aggregate>,
    agg: Agg,
    ascending: bool,
    limit: usize,
    names: &HashMap<i64, String>,
) -> Vec<TopItem> {
    let better = |a: f64, b: f64| if ascending { a < b } else { a > b };
    let mut per_host: BTreeMap<i64, (String, f64)> = BTreeMap::new();
    for ((host, label), a) in found {
        let value = agg.of(&a);
        if !value.is_finite() {
            continue;
        }
        match per_host.get(&host) {
            Some((_, v)) if !better(value, *v) => {}
            _ => {
                per_host.insert(host, (label, value));
            }
        }
    }
    let mut items: Vec<TopItem> = per_host
        .into_iter()
        .filter_map(|(host_id, (label, value))| {
            Some(TopItem {
                host_id,
                host_name: names.get(&host_id)?.clone(),
                label,
                value: stored_precision(value),
            })
        })
        .collect();
    items.sort_by(|a, b| {
        let o = a.value.total_cmp(&b.value);
        if ascending { o } else { o.reverse() }
    });
    items.truncate(limit);
    items
}

/// `names`, checked against the host metrics of the catalog.
fn host_metrics(names: Vec<String>) -> crate::error::Result<Vec<String>> {
    if names.is_empty() {
        return Err(Error::BadRequest(
            "name: give at least one metric, e.g. ?name=cpu.usage_pct (GET /api/v1/metrics/catalog)"
                .into(),
        ));
    }
    if names.len() > MAX_NAMES {
        return Err(Error::BadRequest(format!(
            "name: at most {MAX_NAMES} metrics in one request"
        )));
    }
    for name in &names {
        if catalog::find(catalog::Owner::Host, name).is_none() {
            return Err(Error::BadRequest(format!(
                "unknown metric {name:?}; one of {} (GET /api/v1/metrics/catalog)",
                catalog::names(catalog::Owner::Host).join(", ")
            )));
        }
    }
    Ok(names)
}

fn parse_step(step: Option<String>) -> crate::error::Result<tiers::Step> {
    match step {
        None => Ok(tiers::Step::Auto),
        Some(s) => tiers::parse_step(&s).map_err(|m| Error::invalid("step", m)),
    }
}

/// The plan of a step query over `[from, to]` with the tiers `retention` keeps; a bad
/// `step` is a 422 naming it.
fn plan_within(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    step: Option<String>,
    retention: &tiers::Retention,
) -> crate::error::Result<tiers::Plan> {
    tiers::plan(
        from.timestamp_millis(),
        to.timestamp_millis(),
        parse_step(step)?,
        now.timestamp_millis(),
        retention,
    )
    .map_err(|m| Error::invalid("step", m))
}

/// A query's range: `to` defaults to now, `from` to an hour before `to`.
fn range(
    from: Option<String>,
    to: Option<String>,
) -> crate::error::Result<(DateTime<Utc>, DateTime<Utc>, DateTime<Utc>)> {
    range_at(Utc::now(), from, to)
}

fn range_at(
    now: DateTime<Utc>,
    from: Option<String>,
    to: Option<String>,
) -> crate::error::Result<(DateTime<Utc>, DateTime<Utc>, DateTime<Utc>)> {
    let to = match to {
        Some(t) => super::time_param("to", &t, now)?,
        None => now,
    };
    let from = match from {
        Some(t) => super::time_param("from", &t, now)?,
        None => to - Duration::hours(1),
    };
    if from > to {
        return Err(Error::invalid("from", "must not be after to"));
    }
    Ok((now, from, to))
}

/// The lines of an export, a page of polls at a time.
fn export_stream(
    db: sea_orm::DatabaseConnection,
    host_id: i64,
    from_ms: i64,
    to_ms: i64,
    names: Vec<String>,
    format: ExportFormat,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    struct State {
        cursor: series::ExportCursor,
        layouts: HashMap<i64, std::sync::Arc<series::Layout>>,
        header: bool,
        done: bool,
    }
    let start = State {
        cursor: None,
        layouts: HashMap::new(),
        header: format == ExportFormat::Csv,
        done: false,
    };
    futures_util::stream::unfold(start, move |mut st| {
        let db = db.clone();
        let names = names.clone();
        async move {
            if st.done {
                return None;
            }
            let mut out = String::with_capacity(EXPORT_CHUNK_BYTES);
            if std::mem::take(&mut st.header) {
                out.push_str("time,name,label,value\n");
            }
            let page = series::export_page(
                &db,
                host_id,
                from_ms,
                to_ms,
                st.cursor,
                EXPORT_PAGE,
                &mut st.layouts,
            )
            .await;
            let rows = match page {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, host_id, "export failed part-way");
                    st.done = true;
                    return Some((Err(std::io::Error::other(e.to_string())), st));
                }
            };
            st.done = (rows.len() as u64) < EXPORT_PAGE;
            if let Some(last) = rows.last() {
                st.cursor = Some((last.started_at, last.poll_id));
            }
            for row in rows {
                let time = ts(row.sampled_at).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                for (key, value) in row.values {
                    if !names.is_empty() && !names.contains(&key.name) {
                        continue;
                    }
                    match format {
                        ExportFormat::Csv => {
                            out.push_str(&time);
                            out.push(',');
                            out.push_str(&csv_field(&key.name));
                            out.push(',');
                            out.push_str(&csv_field(&key.label));
                            out.push(',');
                            out.push_str(&(value as f32).to_string());
                            out.push('\n');
                        }
                        ExportFormat::Ndjson => {
                            out.push_str(
                                &serde_json::json!({
                                    "time": time,
                                    "name": key.name,
                                    "label": key.label,
                                    "value": stored_precision(value),
                                })
                                .to_string(),
                            );
                            out.push('\n');
                        }
                    }
                }
            }
            Some((Ok(bytes::Bytes::from(out)), st))
        }
    })
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
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
