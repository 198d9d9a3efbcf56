//! `/threshold-rules`: fleet-wide thresholds selected by host labels (`env=prod` → disk 80/90),
//! optionally about one label of the metric (`/data` 95/98), or excluding it (`enabled:
//! false`). A host's own threshold wins over every rule, the rule with the most selector
//! labels wins over others, and any rule wins over the built-in default; see
//! `GET /hosts/{id}/thresholds` for what is in force on a host and where it comes from.

use chrono::{DateTime, Utc};
use entity::threshold_rule;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use crate::{
    alerts::{catalog::Owner as CatalogOwner, rules::Levels},
    api::{
        ApiResult, ApiTags, Auth, Page,
        status::{BadRequest, Conflict, Forbidden, Invalid, NotFound, UnsupportedMediaType},
        thresholds::{ThresholdPut, threshold_metric},
        ts,
    },
    error::{Error, Result},
    services::Services,
    store::thresholds::{self as store, RuleSettings},
    validate,
};

/// A fleet-wide threshold rule.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ThresholdRule {
    pub id: i64,
    pub name: String,
    /// Host labels, all required; empty selects every host.
    pub selector: Vec<String>,
    pub metric: String,
    /// The one label it is about; empty for every label.
    pub label: String,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    pub for_polls: i32,
    pub hysteresis: f64,
    pub repeat_seconds: Option<i32>,
    /// `false`: the metric (or its label) never alerts on the selected hosts.
    pub enabled: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn shown(r: threshold_rule::Model) -> ThresholdRule {
    ThresholdRule {
        selector: store::selector_of(&r),
        id: r.id,
        name: r.name,
        metric: r.metric,
        label: r.label,
        warning: r.warning,
        critical: r.critical,
        for_polls: r.for_polls,
        hysteresis: r.hysteresis,
        repeat_seconds: r.repeat_seconds,
        enabled: r.enabled,
        created_by: r.created_by,
        created_at: ts(r.created_at),
        updated_at: ts(r.updated_at),
    }
}

/// A rule's settings (create and replace; absent levels take their defaults).
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ThresholdRulePut {
    /// 1 to 64 characters, unique.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub name: String,
    /// Host labels, all required (at most 16); empty or absent selects every host.
    #[oai(default, validator(max_items = 16))]
    pub selector: Vec<String>,
    pub metric: String,
    /// The one label (a mount, a GPU index) it is about; absent for every label.
    pub label: Option<String>,
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
    /// Default true; `false` excludes.
    pub enabled: Option<bool>,
}

impl ThresholdRulePut {
    fn validate(self) -> Result<RuleSettings> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "1 to 64 characters, no control characters",
            ));
        }
        let selector = validate::labels(&self.selector).map_err(|e| match e {
            Error::Invalid { reason, .. } => Error::invalid("selector", reason),
            other => other,
        })?;
        let label = self.label.unwrap_or_default();
        let spec = threshold_metric(CatalogOwner::Host, &self.metric, &label)?;
        let levels: Levels = ThresholdPut {
            warning: self.warning,
            critical: self.critical,
            for_polls: self.for_polls,
            hysteresis: self.hysteresis,
            repeat_seconds: self.repeat_seconds,
            enabled: self.enabled,
        }
        .settings(spec)?;
        Ok(RuleSettings {
            name,
            selector,
            metric: self.metric,
            label,
            levels,
        })
    }
}

#[derive(ApiResponse)]
pub enum CreateRuleResponse {
    #[oai(status = 201)]
    Created(Json<ThresholdRule>),
}

#[derive(ApiResponse)]
pub enum RuleResponse {
    #[oai(status = 200)]
    Ok(Json<ThresholdRule>),
}

#[derive(ApiResponse)]
pub enum ListRulesResponse {
    #[oai(status = 200)]
    Ok(Json<Page<ThresholdRule>>),
}

#[derive(ApiResponse)]
pub enum DeleteRuleResponse {
    #[oai(status = 204)]
    Deleted,
}

/// The threshold rules resource.
pub struct ThresholdRulesApi(pub Services);

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Thresholds")]
impl ThresholdRulesApi {
    /// Create a fleet-wide threshold rule
    #[oai(
        path = "/threshold-rules",
        method = "post",
        operation_id = "create_threshold_rule"
    )]
    async fn create(
        &self,
        auth: Auth,
        body: Json<ThresholdRulePut>,
    ) -> ApiResult<
        CreateRuleResponse,
        (
            BadRequest,
            Forbidden,
            Conflict,
            Invalid,
            UnsupportedMediaType,
        ),
    > {
        auth.require_write()?;
        let settings = body.0.validate()?;
        let row = self
            .0
            .registry
            .create_rule(settings, auth.principal().who())
            .await?;
        Ok(CreateRuleResponse::Created(Json(shown(row))))
    }

    /// List fleet-wide threshold rules
    #[oai(
        path = "/threshold-rules",
        method = "get",
        operation_id = "list_threshold_rules"
    )]
    async fn list(
        &self,
        _auth: Auth,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<ListRulesResponse, (BadRequest,)> {
        let (limit, offset) = (super::limit(limit.0), offset.0.unwrap_or(0));
        let (rows, total) = store::list_rules(&self.0.db, limit, offset).await?;
        Ok(ListRulesResponse::Ok(Json(Page {
            items: rows.into_iter().map(shown).collect(),
            total,
            limit,
            offset,
        })))
    }

    /// Get a fleet-wide threshold rule
    #[oai(
        path = "/threshold-rules/:id",
        method = "get",
        operation_id = "get_threshold_rule"
    )]
    async fn get(
        &self,
        _auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<RuleResponse, (BadRequest, NotFound)> {
        Ok(RuleResponse::Ok(Json(shown(
            store::get_rule(&self.0.db, id.0).await?,
        ))))
    }

    /// Replace a fleet-wide threshold rule
    #[oai(
        path = "/threshold-rules/:id",
        method = "put",
        operation_id = "put_threshold_rule"
    )]
    async fn put(
        &self,
        auth: Auth,
        id: Path<i64>,
        body: Json<ThresholdRulePut>,
    ) -> ApiResult<
        RuleResponse,
        (
            BadRequest,
            Forbidden,
            NotFound,
            Conflict,
            Invalid,
            UnsupportedMediaType,
        ),
    > {
        auth.require_write()?;
        let settings = body.0.validate()?;
        let row = self.0.registry.update_rule(id.0, settings).await?;
        Ok(RuleResponse::Ok(Json(shown(row))))
    }

    /// Delete a fleet-wide threshold rule
    #[oai(
        path = "/threshold-rules/:id",
        method = "delete",
        operation_id = "delete_threshold_rule"
    )]
    async fn delete(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<DeleteRuleResponse, (BadRequest, Forbidden, NotFound)> {
        auth.require_write()?;
        self.0.registry.delete_rule(id.0).await?;
        Ok(DeleteRuleResponse::Deleted)
    }
}
