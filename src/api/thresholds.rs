//! `/hosts/{id}/thresholds` and `/url-checks/{id}/thresholds`: the levels that turn metrics into
//! notifications.

use chrono::{DateTime, Utc};
use entity::threshold;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use crate::{
    alerts::{self, HOST_METRICS, MetricSpec, URL_METRICS},
    api::{
        ApiResult, ApiTags, Auth, Page,
        status::{BadRequest, Forbidden, Invalid, NotFound, UnsupportedMediaType},
        ts,
    },
    error::{Error, Result},
    services::Services,
    store::{
        hosts,
        thresholds::{
            self as store, DEFAULT_FOR_POLLS, DEFAULT_HYSTERESIS, Owner, ThresholdSettings,
        },
        url_checks,
    },
};

/// One threshold.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Threshold {
    /// Metric name, e.g. `cpu.usage_pct`; per-label metrics (disks, GPUs) apply to each label.
    pub metric: String,
    /// Level for a warning; `null` means no warning level.
    pub warning: Option<f64>,
    /// Level for a critical alert; `null` means no critical level.
    pub critical: Option<f64>,
    /// Consecutive polls over a level before it fires.
    pub for_polls: i32,
    /// How far back under a level the value must go before the alert clears.
    pub hysteresis: f64,
    /// Remind every this many seconds while firing; `null` means never.
    pub repeat_seconds: Option<i32>,
    pub enabled: bool,
    pub updated_at: DateTime<Utc>,
}

impl From<threshold::Model> for Threshold {
    fn from(t: threshold::Model) -> Self {
        Self {
            metric: t.metric,
            warning: t.warning,
            critical: t.critical,
            for_polls: t.for_polls,
            hysteresis: t.hysteresis,
            repeat_seconds: t.repeat_seconds,
            enabled: t.enabled,
            updated_at: ts(t.updated_at),
        }
    }
}

/// A page of thresholds (an owner has one per metric at most: paged in memory).
fn page(rows: Vec<threshold::Model>, limit: Option<u32>, offset: Option<u64>) -> Page<Threshold> {
    let (limit, offset) = (super::limit(limit), offset.unwrap_or(0));
    let total = rows.len() as u64;
    Page {
        items: rows
            .into_iter()
            .skip(offset as usize)
            .take(limit as usize)
            .map(Threshold::from)
            .collect(),
        total,
        limit,
        offset,
    }
}

/// The whole setting of one threshold (PUT replaces it; absent fields take their defaults).
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
#[oai(deny_unknown_fields)]
pub struct ThresholdPut {
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    /// 1 to 100; default 1.
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub for_polls: Option<i32>,
    /// 0 or more; default 5.
    #[oai(validator(minimum(value = "0")))]
    pub hysteresis: Option<f64>,
    /// 60 or more; default none.
    #[oai(validator(minimum(value = "60")))]
    pub repeat_seconds: Option<i32>,
    /// Default true.
    pub enabled: Option<bool>,
}

impl ThresholdPut {
    fn validate(self, catalogue: &[MetricSpec], metric: &str) -> Result<ThresholdSettings> {
        let spec = catalogue.iter().find(|m| m.name == metric).ok_or_else(|| {
            let known: Vec<&str> = catalogue.iter().map(|m| m.name).collect();
            Error::invalid(
                "metric",
                format!("unknown metric {metric:?}; one of {}", known.join(", ")),
            )
        })?;
        alerts::check_levels(spec, self.warning, self.critical)
            .map_err(|r| Error::invalid("critical", r))?;
        let for_polls = self.for_polls.unwrap_or(DEFAULT_FOR_POLLS);
        if !(1..=100).contains(&for_polls) {
            return Err(Error::invalid("for_polls", "must be 1 to 100"));
        }
        let hysteresis = self.hysteresis.unwrap_or(DEFAULT_HYSTERESIS);
        if !hysteresis.is_finite() || hysteresis < 0.0 {
            return Err(Error::invalid(
                "hysteresis",
                "must be a number of 0 or more",
            ));
        }
        if let Some(r) = self.repeat_seconds
            && r < 60
        {
            return Err(Error::invalid(
                "repeat_seconds",
                "must be 60 or more (or null for no reminders)",
            ));
        }
        Ok(ThresholdSettings {
            warning: self.warning,
            critical: self.critical,
            for_polls,
            hysteresis,
            repeat_seconds: self.repeat_seconds,
            enabled: self.enabled.unwrap_or(true),
        })
    }
}

#[derive(ApiResponse)]
pub enum ListThresholdsResponse {
    #[oai(status = 200)]
    Ok(Json<Page<Threshold>>),
}

#[derive(ApiResponse)]
pub enum PutThresholdResponse {
    #[oai(status = 200)]
    Ok(Json<Threshold>),
}

/// The thresholds resource.
pub struct ThresholdsApi(pub Services);

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Thresholds")]
impl ThresholdsApi {
    /// List a host's thresholds
    #[oai(
        path = "/hosts/:id/thresholds",
        method = "get",
        operation_id = "list_thresholds"
    )]
    async fn list(
        &self,
        _auth: Auth,
        id: Path<i64>,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<ListThresholdsResponse, (BadRequest, NotFound)> {
        hosts::get(&self.0.db, id.0).await?;
        let rows = store::list(&self.0.db, Owner::Host(id.0)).await?;
        Ok(ListThresholdsResponse::Ok(Json(page(
            rows, limit.0, offset.0,
        ))))
    }

    /// Set a host threshold
    ///
    /// Creates or replaces the threshold of one metric.
    #[oai(
        path = "/hosts/:id/thresholds/:metric",
        method = "put",
        operation_id = "put_threshold"
    )]
    async fn put(
        &self,
        auth: Auth,
        id: Path<i64>,
        metric: Path<String>,
        body: Json<ThresholdPut>,
    ) -> ApiResult<
        PutThresholdResponse,
        (
            BadRequest,
            Forbidden,
            NotFound,
            Invalid,
            UnsupportedMediaType,
        ),
    > {
        auth.require_write()?;
        hosts::get(&self.0.db, id.0).await?;
        let settings = body.0.validate(HOST_METRICS, &metric.0)?;
        let row = self
            .0
            .registry
            .put_threshold(Owner::Host(id.0), &metric.0, &settings)
            .await?;
        Ok(PutThresholdResponse::Ok(Json(row.into())))
    }

    /// List a URL check's thresholds
    ///
    /// `url.response_ms` (warning/critical response time) and `cert.days_left` (days before the
    /// certificate expires; alerts when at or below the level).
    #[oai(
        path = "/url-checks/:id/thresholds",
        method = "get",
        operation_id = "list_url_check_thresholds"
    )]
    async fn list_url(
        &self,
        _auth: Auth,
        id: Path<i64>,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<ListThresholdsResponse, (BadRequest, NotFound)> {
        url_checks::get(&self.0.db, id.0).await?;
        let rows = store::list(&self.0.db, Owner::UrlCheck(id.0)).await?;
        Ok(ListThresholdsResponse::Ok(Json(page(
            rows, limit.0, offset.0,
        ))))
    }

    /// Set a URL check threshold
    #[oai(
        path = "/url-checks/:id/thresholds/:metric",
        method = "put",
        operation_id = "put_url_check_threshold"
    )]
    async fn put_url(
        &self,
        auth: Auth,
        id: Path<i64>,
        metric: Path<String>,
        body: Json<ThresholdPut>,
    ) -> ApiResult<
        PutThresholdResponse,
        (
            BadRequest,
            Forbidden,
            NotFound,
            Invalid,
            UnsupportedMediaType,
        ),
    > {
        auth.require_write()?;
        url_checks::get(&self.0.db, id.0).await?;
        let settings = body.0.validate(URL_METRICS, &metric.0)?;
        let row = self
            .0
            .registry
            .put_threshold(Owner::UrlCheck(id.0), &metric.0, &settings)
            .await?;
        Ok(PutThresholdResponse::Ok(Json(row.into())))
    }
}
