//! Thresholds: a host's or URL check's own (per metric, optionally per label), the fleet-wide
//! rules selected by host labels, and the rules in force that `alerts::rules` picks from them
//! and the built-in defaults.
//!
//! A new URL check gets the defaults written as its own; a host writes nothing and inherits.

use entity::{host_label, threshold, threshold_rule, types::ThresholdSource};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TryIntoModel,
};

use crate::{
    alerts::{
        HOST_METRICS, MetricSpec, URL_METRICS,
        evaluate::ThresholdRule,
        rules::{self, Candidate, Levels, RuleRef},
    },
    error::{Error, Result},
    store::now_ms,
};

/// Defaults shared by every threshold unless set.
pub const DEFAULT_FOR_POLLS: i32 = 1;
pub const DEFAULT_HYSTERESIS: f64 = 5.0;

/// The settings of one threshold.
pub type ThresholdSettings = Levels;

fn defaults_of(spec: &MetricSpec) -> Option<ThresholdSettings> {
    spec.defaults.map(|(warning, critical)| Levels {
        warning: Some(warning),
        critical: Some(critical),
        for_polls: DEFAULT_FOR_POLLS,
        hysteresis: DEFAULT_HYSTERESIS,
        repeat_seconds: None,
        enabled: true,
    })
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

    fn catalog(self) -> &'static [MetricSpec] {
        match self {
            Self::Host(_) => HOST_METRICS,
            Self::UrlCheck(_) => URL_METRICS,
        }
    }
}

/// Writes the default thresholds of a new URL check.
pub async fn create_url_defaults(db: &impl ConnectionTrait, url_check_id: i64) -> Result<()> {
    let now = now_ms();
    let rows = URL_METRICS.iter().filter_map(|spec| {
        let s = defaults_of(spec)?;
        Some(threshold::ActiveModel {
            host_id: Set(None),
            url_check_id: Set(Some(url_check_id)),
            metric: Set(spec.name.to_owned()),
            label: Set(String::new()),
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

/// A host's or URL check's own thresholds, by metric and label.
pub async fn list(db: &impl ConnectionTrait, owner: Owner) -> Result<Vec<threshold::Model>> {
    Ok(threshold::Entity::find()
        .filter(owner.filter())
        .order_by_asc(threshold::Column::Metric)
        .order_by_asc(threshold::Column::Label)
        .all(db)
        .await?)
}

/// A stored threshold's levels.
pub fn levels_of(t: &threshold::Model) -> Levels {
    Levels {
        warning: t.warning,
        critical: t.critical,
        for_polls: t.for_polls,
        hysteresis: t.hysteresis,
        repeat_seconds: t.repeat_seconds,
        enabled: t.enabled,
    }
}

/// An owner's own threshold as a candidate.
fn own_candidate(t: &threshold::Model) -> Candidate {
    Candidate {
        metric: t.metric.clone(),
        label: t.label.clone(),
        levels: levels_of(t),
        source: ThresholdSource::Host,
        rule: None,
    }
}

/// A fleet rule's selector.
pub fn selector_of(r: &threshold_rule::Model) -> Vec<String> {
    serde_json::from_str(&r.selector).unwrap_or_default()
}

fn rule_candidate(r: &threshold_rule::Model) -> Candidate {
    Candidate {
        metric: r.metric.clone(),
        label: r.label.clone(),
        levels: Levels {
            warning: r.warning,
            critical: r.critical,
            for_polls: r.for_polls,
            hysteresis: r.hysteresis,
            repeat_seconds: r.repeat_seconds,
            enabled: r.enabled,
        },
        source: ThresholdSource::Rule,
        rule: Some(RuleRef {
            id: r.id,
            name: r.name.clone(),
            selector: selector_of(r),
        }),
    }
}

/// A host's labels.
pub async fn host_labels(db: &impl ConnectionTrait, host_id: i64) -> Result<Vec<String>> {
    Ok(host_label::Entity::find()
        .filter(host_label::Column::HostId.eq(host_id))
        .all(db)
        .await?
        .into_iter()
        .map(|l| l.label)
        .collect())
}

/// The thresholds in force on a host: its own, the fleet rules its labels select and the
/// defaults, the winner of each (metric, label).
pub async fn effective_for_host(db: &impl ConnectionTrait, host_id: i64) -> Result<Vec<Candidate>> {
    let mut all = rules::defaults(HOST_METRICS, DEFAULT_FOR_POLLS, DEFAULT_HYSTERESIS);
    all.extend(
        threshold_rule::Entity::find()
            .all(db)
            .await?
            .iter()
            .map(rule_candidate),
    );
    all.extend(
        list(db, Owner::Host(host_id))
            .await?
            .iter()
            .map(own_candidate),
    );
    let labels = host_labels(db, host_id).await?;
    Ok(rules::effective(&all, &labels))
}

/// A host's or URL check's thresholds as the evaluator applies them. A stored metric that is
/// not (or no longer) in the catalogue is left out.
pub async fn rules(db: &impl ConnectionTrait, owner: Owner) -> Result<Vec<ThresholdRule>> {
    let effective = match owner {
        Owner::Host(id) => effective_for_host(db, id).await?,
        Owner::UrlCheck(_) => list(db, owner).await?.iter().map(own_candidate).collect(),
    };
    Ok(rules::to_rules(&effective, owner.catalog()))
}

/// One of the owner's own thresholds.
pub async fn find(
    db: &impl ConnectionTrait,
    owner: Owner,
    metric: &str,
    label: &str,
) -> Result<Option<threshold::Model>> {
    Ok(threshold::Entity::find()
        .filter(owner.filter())
        .filter(threshold::Column::Metric.eq(metric))
        .filter(threshold::Column::Label.eq(label))
        .one(db)
        .await?)
}

/// Sets (creates or replaces) one threshold.
pub async fn put(
    db: &impl ConnectionTrait,
    owner: Owner,
    metric: &str,
    label: &str,
    s: &ThresholdSettings,
) -> Result<threshold::Model> {
    let existing = find(db, owner, metric, label).await?;
    let (host_id, url_check_id) = owner.columns();
    let mut model = match existing {
        Some(row) => row.into(),
        None => threshold::ActiveModel {
            host_id: Set(host_id),
            url_check_id: Set(url_check_id),
            metric: Set(metric.to_owned()),
            label: Set(label.to_owned()),
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
    let saved = model.save(db).await.map_err(|e| {
        Error::conflict_on_unique(e, format!("{metric} was set at the same time; try again"))
    })?;
    Ok(saved.try_into_model()?)
}

/// Deletes one of the owner's own thresholds; `false` when it had none.
pub async fn delete(
    db: &impl ConnectionTrait,
    owner: Owner,
    metric: &str,
    label: &str,
) -> Result<bool> {
    let done = threshold::Entity::delete_many()
        .filter(owner.filter())
        .filter(threshold::Column::Metric.eq(metric))
        .filter(threshold::Column::Label.eq(label))
        .exec(db)
        .await?;
    Ok(done.rows_affected > 0)
}

/// What a fleet rule says.
#[derive(Debug, Clone)]
pub struct RuleSettings {
    pub name: String,
    pub selector: Vec<String>,
    pub metric: String,
    pub label: String,
    pub levels: Levels,
}

fn set_rule(model: &mut threshold_rule::ActiveModel, s: RuleSettings) {
    model.name = Set(s.name);
    model.selector = Set(serde_json::to_string(&s.selector).unwrap_or_else(|_| "[]".into()));
    model.metric = Set(s.metric);
    model.label = Set(s.label);
    model.warning = Set(s.levels.warning);
    model.critical = Set(s.levels.critical);
    model.for_polls = Set(s.levels.for_polls);
    model.hysteresis = Set(s.levels.hysteresis);
    model.repeat_seconds = Set(s.levels.repeat_seconds);
    model.enabled = Set(s.levels.enabled);
    model.updated_at = Set(now_ms());
}

pub async fn create_rule(
    db: &impl ConnectionTrait,
    s: RuleSettings,
    created_by: String,
) -> Result<threshold_rule::Model> {
    let name = s.name.clone();
    let mut model = threshold_rule::ActiveModel {
        created_by: Set(created_by),
        created_at: Set(now_ms()),
        ..Default::default()
    };
    set_rule(&mut model, s);
    model
        .insert(db)
        .await
        .map_err(|e| Error::conflict_on_unique(e, format!("a rule named {name:?} exists")))
}

pub async fn get_rule(db: &impl ConnectionTrait, id: i64) -> Result<threshold_rule::Model> {
    threshold_rule::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no threshold rule with id {id}")))
}

pub async fn update_rule(
    db: &impl ConnectionTrait,
    id: i64,
    s: RuleSettings,
) -> Result<threshold_rule::Model> {
    let name = s.name.clone();
    let mut model: threshold_rule::ActiveModel = get_rule(db, id).await?.into();
    set_rule(&mut model, s);
    model
        .update(db)
        .await
        .map_err(|e| Error::conflict_on_unique(e, format!("a rule named {name:?} exists")))
}

pub async fn delete_rule(db: &impl ConnectionTrait, id: i64) -> Result<()> {
    let done = threshold_rule::Entity::delete_by_id(id).exec(db).await?;
    if done.rows_affected == 0 {
        return Err(Error::NotFound(format!("no threshold rule with id {id}")));
    }
    Ok(())
}

/// Rules by id, and how many there are.
pub async fn list_rules(
    db: &impl ConnectionTrait,
    limit: u64,
    offset: u64,
) -> Result<(Vec<threshold_rule::Model>, u64)> {
    let total = threshold_rule::Entity::find().count(db).await?;
    let rows = threshold_rule::Entity::find()
        .order_by_asc(threshold_rule::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((rows, total))
}
