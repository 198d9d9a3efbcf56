//! `/hosts/{id}/thresholds` and `/url-checks/{id}/thresholds`: the levels that turn metrics into
//! notifications.
//!
//! A host's list is what is in force: for each metric (and each label with a threshold of its
//! own) the winner of the host's own thresholds, the fleet-wide rules its labels select
//! (`/threshold-rules`) and the built-in defaults, saying where each comes from. `PUT` sets the
//! host's own threshold whole (absent fields take their defaults), `PATCH` changes only the
//! fields given (starting from the threshold in force), `DELETE` removes the host's own so the
//! inherited one applies again. `?label=` makes any of them about one label: a mount, a GPU
//! index; `enabled: false` on a label excludes it (that mount never alerts).

use chrono::{DateTime, Utc};
use entity::{threshold, types::ThresholdSource};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::MaybeUndefined,
};

use crate::{
    alerts::{
        self, MetricSpec,
        catalog::{self, Owner as CatalogOwner},
        rules::{Candidate, Levels},
    },
    api::{
        ApiResult, ApiTags, Auth, Page,
        status::{BadRequest, Forbidden, Invalid, NotFound, UnsupportedMediaType},
        ts,
    },
    error::{Error, Result},
    services::Services,
    store::{
        hosts,
        thresholds::{self as store, DEFAULT_FOR_POLLS, DEFAULT_HYSTERESIS, Owner},
        url_checks,
    },
};

/// One threshold, and where it comes from.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Threshold {
    /// Metric name, e.g. `cpu.usage_pct` (see `GET /metrics/catalog`).
    pub metric: String,
    /// The one label it is about (a mount, a GPU index); empty for every label.
    pub label: String,
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
    /// `false`: never alerts (an exclusion, when about one label).
    pub enabled: bool,
    /// `host`: set on it; `rule`: a fleet-wide rule its labels select; `default`: built in.
    pub source: ThresholdSource,
    /// The rule it comes from, for `source: rule`.
    pub rule_id: Option<i64>,
    pub rule_name: Option<String>,
    /// When it was last set, for the host's or URL check's own.
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<threshold::Model> for Threshold {
    fn from(t: threshold::Model) -> Self {
        Self {
            metric: t.metric,
            label: t.label,
            warning: t.warning,
            critical: t.critical,
            for_polls: t.for_polls,
            hysteresis: t.hysteresis,
            repeat_seconds: t.repeat_seconds,
            enabled: t.enabled,
            source: ThresholdSource::Host,
            rule_id: None,
            rule_name: None,
            updated_at: Some(ts(t.updated_at)),
        }
    }
}

fn from_candidate(c: Candidate, own: &[threshold::Model]) -> Threshold {
    let updated = own
        .iter()
        .find(|t| c.source == ThresholdSource::Host && t.metric == c.metric && t.label == c.label)
        .map(|t| ts(t.updated_at));
    Threshold {
        metric: c.metric,
        label: c.label,
        warning: c.levels.warning,
        critical: c.levels.critical,
        for_polls: c.levels.for_polls,
        hysteresis: c.levels.hysteresis,
        repeat_seconds: c.levels.repeat_seconds,
        enabled: c.levels.enabled,
        source: c.source,
        rule_id: c.rule.as_ref().map(|r| r.id),
        rule_name: c.rule.map(|r| r.name),
        updated_at: updated,
    }
}

/// A page of thresholds (an owner has a few dozen at most: paged in memory).
fn page(rows: Vec<Threshold>, limit: Option<u32>, offset: Option<u64>) -> Page<Threshold> {
    let (limit, offset) = (super::limit(limit), offset.unwrap_or(0));
    let total = rows.len() as u64;
    Page {
        items: rows
            .into_iter()
            .skip(offset as usize)
            .take(limit as usize)
            .collect(),
        total,
        limit,
        offset,
    }
}

/// The metric a threshold can be set on, or 400 naming the unknown one; and the label checked
/// against it.
pub fn threshold_metric(
    owner: CatalogOwner,
    metric: &str,
    label: &str,
) -> Result<&'static MetricSpec> {
    let listed = || {
        let specs = match owner {
            CatalogOwner::Host => alerts::HOST_METRICS,
            CatalogOwner::UrlCheck => alerts::URL_METRICS,
        };
        specs.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
    };
    let entry = catalog::find(owner, metric).ok_or_else(|| {
        Error::BadRequest(format!(
            "unknown metric {metric:?}; thresholds can be set on {} (GET /api/v1/metrics/catalog)",
            listed()
        ))
    })?;
    let spec = catalog::threshold_spec(entry).ok_or_else(|| {
        Error::BadRequest(format!(
            "{metric} cannot have a threshold; thresholds can be set on {}",
            listed()
        ))
    })?;
    if !label.is_empty() && entry.label.is_empty() {
        return Err(Error::invalid(
            "label",
            format!("{metric} has no labels: leave label out"),
        ));
    }
    if label.len() > 256 || label.chars().any(char::is_control) {
        return Err(Error::invalid(
            "label",
            "at most 256 characters, no control characters",
        ));
    }
    Ok(spec)
}

fn check_settings(spec: &MetricSpec, s: &Levels) -> Result<()> {
    alerts::check_levels(spec, s.warning, s.critical).map_err(|r| Error::invalid("critical", r))?;
    if !(1..=100).contains(&s.for_polls) {
        return Err(Error::invalid("for_polls", "must be 1 to 100"));
    }
    if !s.hysteresis.is_finite() || s.hysteresis < 0.0 {
        return Err(Error::invalid(
            "hysteresis",
            "must be a number of 0 or more",
        ));
    }
    if let Some(r) = s.repeat_seconds
        && r < 60
    {
        return Err(Error::invalid(
            "repeat_seconds",
            "must be 60 or more (or null for no reminders)",
        ));
    }
    Ok(())
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
    /// The settings, checked against the metric.
    pub fn settings(self, spec: &MetricSpec) -> Result<Levels> {
        let s = Levels {
            warning: self.warning,
            critical: self.critical,
            for_polls: self.for_polls.unwrap_or(DEFAULT_FOR_POLLS),
            hysteresis: self.hysteresis.unwrap_or(DEFAULT_HYSTERESIS),
            repeat_seconds: self.repeat_seconds,
            enabled: self.enabled.unwrap_or(true),
        };
        check_settings(spec, &s)?;
        Ok(s)
    }
}

/// Changes to one threshold: only the fields given change; `null` removes a level or the
/// reminders.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ThresholdPatch {
    pub warning: MaybeUndefined<f64>,
    pub critical: MaybeUndefined<f64>,
    /// 1 to 100.
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub for_polls: Option<i32>,
    /// 0 or more.
    #[oai(validator(minimum(value = "0")))]
    pub hysteresis: Option<f64>,
    /// 60 or more; `null` for no reminders.
    #[oai(validator(minimum(value = "60")))]
    pub repeat_seconds: MaybeUndefined<i32>,
    pub enabled: Option<bool>,
}

impl ThresholdPatch {
    fn apply(self, mut s: Levels, spec: &MetricSpec) -> Result<Levels> {
        fn set<T: Copy>(field: &MaybeUndefined<T>, target: &mut Option<T>) {
            match field {
                MaybeUndefined::Value(v) => *target = Some(*v),
                MaybeUndefined::Null => *target = None,
                MaybeUndefined::Undefined => {}
            }
        }
        set(&self.warning, &mut s.warning);
        set(&self.critical, &mut s.critical);
        set(&self.repeat_seconds, &mut s.repeat_seconds);
        if let Some(v) = self.for_polls {
            s.for_polls = v;
        }
        if let Some(v) = self.hysteresis {
            s.hysteresis = v;
        }
        if let Some(v) = self.enabled {
            s.enabled = v;
        }
        check_settings(spec, &s)?;
        Ok(s)
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

#[derive(ApiResponse)]
pub enum DeleteThresholdResponse {
    /// The host's own threshold is gone; the inherited one applies.
    #[oai(status = 204)]
    Deleted,
}

/// The thresholds resource.
pub struct ThresholdsApi(pub Services);

impl ThresholdsApi {
    /// The host's threshold in force for (metric, label), as levels.
    async fn in_force(&self, host_id: i64, metric: &str, label: &str) -> Result<Option<Levels>> {
        let effective = store::effective_for_host(&self.0.db, host_id).await?;
        let exact = effective
            .iter()
            .find(|c| c.metric == metric && c.label == label);
        let every = effective
            .iter()
            .find(|c| c.metric == metric && c.label.is_empty());
        Ok(exact.or(every).map(|c| c.levels.clone()))
    }
}

fn default_levels() -> Levels {
    Levels {
        warning: None,
        critical: None,
        for_polls: DEFAULT_FOR_POLLS,
        hysteresis: DEFAULT_HYSTERESIS,
        repeat_seconds: None,
        enabled: true,
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Thresholds")]
impl ThresholdsApi {
    /// List a host's thresholds in force
    ///
    /// One per metric that has one, and one per label with a threshold of its own; `source`
    /// says whether it is the host's own, a fleet-wide rule's or the built-in default.
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
        let own = store::list(&self.0.db, Owner::Host(id.0)).await?;
        let rows = store::effective_for_host(&self.0.db, id.0)
            .await?
            .into_iter()
            .map(|c| from_candidate(c, &own))
            .collect();
        Ok(ListThresholdsResponse::Ok(Json(page(
            rows, limit.0, offset.0,
        ))))
    }

    /// Set a host threshold
    ///
    /// Creates or replaces the host's own threshold of one metric (of one label with
    /// `?label=`); absent fields take their defaults.
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
        /// The one label it is about (a mount such as `/data`, a GPU index); default every
        /// label.
        label: Query<Option<String>>,
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
        let label = label.0.unwrap_or_default();
        let spec = threshold_metric(CatalogOwner::Host, &metric.0, &label)?;
        let settings = body.0.settings(spec)?;
        let row = self
            .0
            .registry
            .put_threshold(Owner::Host(id.0), &metric.0, &label, &settings)
            .await?;
        Ok(PutThresholdResponse::Ok(Json(row.into())))
    }

    /// Change a host threshold
    ///
    /// Changes only the fields given, starting from the threshold in force (the host's own,
    /// else the inherited one, which then becomes the host's own).
    #[oai(
        path = "/hosts/:id/thresholds/:metric",
        method = "patch",
        operation_id = "patch_threshold"
    )]
    async fn patch(
        &self,
        auth: Auth,
        id: Path<i64>,
        metric: Path<String>,
        /// The one label it is about; default every label.
        label: Query<Option<String>>,
        body: Json<ThresholdPatch>,
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
        let label = label.0.unwrap_or_default();
        let spec = threshold_metric(CatalogOwner::Host, &metric.0, &label)?;
        let base = self
            .in_force(id.0, &metric.0, &label)
            .await?
            .unwrap_or_else(default_levels);
        let settings = body.0.apply(base, spec)?;
        let row = self
            .0
            .registry
            .put_threshold(Owner::Host(id.0), &metric.0, &label, &settings)
            .await?;
        Ok(PutThresholdResponse::Ok(Json(row.into())))
    }

    /// Remove a host's own threshold
    ///
    /// The threshold inherited from a fleet-wide rule or the defaults applies again.
    #[oai(
        path = "/hosts/:id/thresholds/:metric",
        method = "delete",
        operation_id = "delete_threshold"
    )]
    async fn delete(
        &self,
        auth: Auth,
        id: Path<i64>,
        metric: Path<String>,
        /// The one label it is about; default every label.
        label: Query<Option<String>>,
    ) -> ApiResult<DeleteThresholdResponse, (BadRequest, Forbidden, NotFound, Invalid)> {
        auth.require_write()?;
        hosts::get(&self.0.db, id.0).await?;
        let label = label.0.unwrap_or_default();
        threshold_metric(CatalogOwner::Host, &metric.0, &label)?;
        if !self
            .0
            .registry
            .delete_threshold(Owner::Host(id.0), &metric.0, &label)
            .await?
        {
            return Err(Error::NotFound(format!(
                "host {} has no threshold of its own for {}{}",
                id.0,
                metric.0,
                if label.is_empty() {
                    String::new()
                } else {
                    format!(" label {label:?}")
                }
            ))
            .into());
        }
        Ok(DeleteThresholdResponse::Deleted)
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
        let rows = store::list(&self.0.db, Owner::UrlCheck(id.0))
            .await?
            .into_iter()
            .map(Threshold::from)
            .collect();
        Ok(ListThresholdsResponse::Ok(Json(page(
            rows, limit.0, offset.0,
        ))))
    }

    /// Set a URL check threshold
    ///
    /// Replaces it whole; absent fields take their defaults.
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
        let spec = threshold_metric(CatalogOwner::UrlCheck, &metric.0, "")?;
        let settings = body.0.settings(spec)?;
        let row = self
            .0
            .registry
            .put_threshold(Owner::UrlCheck(id.0), &metric.0, "", &settings)
            .await?;
        Ok(PutThresholdResponse::Ok(Json(row.into())))
    }

    /// Change a URL check threshold
    ///
    /// Changes only the fields given.
    #[oai(
        path = "/url-checks/:id/thresholds/:metric",
        method = "patch",
        operation_id = "patch_url_check_threshold"
    )]
    async fn patch_url(
        &self,
        auth: Auth,
        id: Path<i64>,
        metric: Path<String>,
        body: Json<ThresholdPatch>,
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
        let spec = threshold_metric(CatalogOwner::UrlCheck, &metric.0, "")?;
        let base = store::find(&self.0.db, Owner::UrlCheck(id.0), &metric.0, "")
            .await?
            .map(|t| store::levels_of(&t))
            .unwrap_or_else(default_levels);
        let settings = body.0.apply(base, spec)?;
        let row = self
            .0
            .registry
            .put_threshold(Owner::UrlCheck(id.0), &metric.0, "", &settings)
            .await?;
        Ok(PutThresholdResponse::Ok(Json(row.into())))
    }
}
