//! Thresholds of hosts (and, with URL checks, of URLs): defaults at creation, read and replace.

use entity::threshold;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    TryIntoModel,
};

use crate::{
    alerts::{HOST_METRICS, MetricSpec, URL_METRICS, evaluate::ThresholdRule, machine::Rule},
    error::Result,
    store::now_ms,
};

/// Defaults shared by every threshold unless set.
pub const DEFAULT_FOR_POLLS: i32 = 1;
pub const DEFAULT_HYSTERESIS: f64 = 5.0;

/// The settings of one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdSettings {
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    pub for_polls: i32,
    pub hysteresis: f64,
    pub repeat_seconds: Option<i32>,
    pub enabled: bool,
}

impl ThresholdSettings {
    fn defaults(spec: &MetricSpec) -> Option<Self> {
        spec.defaults.map(|(warning, critical)| Self {
            warning: Some(warning),
            critical: Some(critical),
            for_polls: DEFAULT_FOR_POLLS,
            hysteresis: DEFAULT_HYSTERESIS,
            repeat_seconds: None,
            enabled: true,
        })
    }
}

/// Whose thresholds: a host's or a URL check's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Host(i64),
    UrlCheck(i64),
}

impl Owner {
    fn columns(self) -> (Option<i64>, Option<i64>) {
        match self {
            Self::Host(id) => (Some(id), None),
            Self::UrlCheck(id) => (None, Some(id)),
        }
    }

    fn filter(self) -> sea_orm::sea_query::SimpleExpr {
        match self {
            Self::Host(id) => threshold::Column::HostId.eq(id),
            Self::UrlCheck(id) => threshold::Column::UrlCheckId.eq(id),
        }
    }
}

/// Writes the default thresholds of a new host.
pub async fn create_host_defaults(db: &impl ConnectionTrait, host_id: i64) -> Result<()> {
    create_defaults(db, Owner::Host(host_id), HOST_METRICS).await
}

/// Writes the default thresholds of a new URL check.
pub async fn create_url_defaults(db: &impl ConnectionTrait, url_check_id: i64) -> Result<()> {
    create_defaults(db, Owner::UrlCheck(url_check_id), URL_METRICS).await
}

async fn create_defaults(
    db: &impl ConnectionTrait,
    owner: Owner,
    specs: &[MetricSpec],
) -> Result<()> {
    let now = now_ms();
    let (host_id, url_check_id) = owner.columns();
    let rows = specs.iter().filter_map(|spec| {
        let s = ThresholdSettings::defaults(spec)?;
        Some(threshold::ActiveModel {
            host_id: Set(host_id),
            url_check_id: Set(url_check_id),
            metric: Set(spec.name.to_owned()),
            warning: Set(s.warning),
            critical: Set(s.critical),
            for_polls: Set(s.for_polls),
            hysteresis: Set(s.hysteresis),
            repeat_seconds: Set(s.repeat_seconds),
            enabled: Set(s.enabled),
            updated_at: Set(now),
            ..Default::default()
        })
    });
    threshold::Entity::insert_many(rows).exec(db).await?;
    Ok(())
}

/// A host's or URL check's thresholds, by metric name.
pub async fn list(db: &impl ConnectionTrait, owner: Owner) -> Result<Vec<threshold::Model>> {
    Ok(threshold::Entity::find()
        .filter(owner.filter())
        .order_by_asc(threshold::Column::Metric)
        .all(db)
        .await?)
}

/// A host's or URL check's thresholds as the evaluator applies them. A stored metric that is
/// not (or no longer) in the catalogue is left out.
pub async fn rules(db: &impl ConnectionTrait, owner: Owner) -> Result<Vec<ThresholdRule>> {
    let catalogue = match owner {
        Owner::Host(_) => HOST_METRICS,
        Owner::UrlCheck(_) => URL_METRICS,
    };
    Ok(list(db, owner)
        .await?
        .into_iter()
        .filter_map(|t| {
            let spec = catalogue.iter().find(|m| m.name == t.metric)?;
            Some(ThresholdRule {
                rule: Rule {
                    warning: t.warning,
                    critical: t.critical,
                    direction: spec.direction,
                    for_polls: t.for_polls.max(1) as u32,
                    hysteresis: t.hysteresis,
                    repeat_seconds: t.repeat_seconds.map(|r| r.max(0) as u32),
                    enabled: t.enabled,
                },
                metric: t.metric,
            })
        })
        .collect())
}

/// Sets (creates or replaces) one threshold.
pub async fn put(
    db: &impl ConnectionTrait,
    owner: Owner,
    metric: &str,
    s: &ThresholdSettings,
) -> Result<threshold::Model> {
    let existing = threshold::Entity::find()
        .filter(owner.filter())
        .filter(threshold::Column::Metric.eq(metric))
        .one(db)
        .await?;
    let (host_id, url_check_id) = owner.columns();
    let mut model = match existing {
        Some(row) => row.into(),
        None => threshold::ActiveModel {
            host_id: Set(host_id),
            url_check_id: Set(url_check_id),
            metric: Set(metric.to_owned()),
            ..Default::default()
        },
    };
    model.warning = Set(s.warning);
    model.critical = Set(s.critical);
    model.for_polls = Set(s.for_polls);
    model.hysteresis = Set(s.hysteresis);
    model.repeat_seconds = Set(s.repeat_seconds);
    model.enabled = Set(s.enabled);
    model.updated_at = Set(now_ms());
    Ok(model.save(db).await?.try_into_model()?)
}
