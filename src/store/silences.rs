//! Silences: created, listed, expired — never deleted, so a notification's `silence_id` always
//! names one that can be read.

use entity::{
    silence,
    types::{MatchField, MatchOp},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use crate::{
    alerts::silence::{Matcher, Silence},
    error::{Error, Result},
    store::now_ms,
};

/// A matcher as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatcherSpec {
    pub field: MatchField,
    pub op: MatchOp,
    pub value: String,
}

/// What a new silence says.
#[derive(Debug, Clone)]
pub struct NewSilence {
    pub matchers: Vec<MatcherSpec>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub comment: String,
    pub created_by: String,
}

/// A stored silence's matchers.
pub fn matchers_of(row: &silence::Model) -> Vec<MatcherSpec> {
    serde_json::from_str(&row.matchers).unwrap_or_default()
}

/// The silence as the matcher applies it (a matcher stored that no longer compiles is left
/// out, and a silence left without matchers selects nothing).
pub fn compiled(row: &silence::Model) -> Silence {
    Silence {
        id: row.id,
        matchers: matchers_of(row)
            .into_iter()
            .filter_map(|m| Matcher::new(m.field, m.op, m.value).ok())
            .collect(),
        starts_at: row.starts_at,
        ends_at: row.ends_at,
    }
}

pub async fn create(db: &impl ConnectionTrait, new: NewSilence) -> Result<silence::Model> {
    let now = now_ms();
    let matchers = serde_json::to_string(&new.matchers)
        .map_err(|e| Error::Internal(format!("matchers: {e}")))?;
    Ok(silence::ActiveModel {
        matchers: Set(matchers),
        starts_at: Set(new.starts_at),
        ends_at: Set(new.ends_at),
        comment: Set(new.comment),
        created_by: Set(new.created_by),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

pub async fn get(db: &impl ConnectionTrait, id: i64) -> Result<silence::Model> {
    silence::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no silence with id {id}")))
}

/// Which silences to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceFilter {
    All,
    /// In force now or to come.
    Active,
    /// Ended (expired or run out).
    Expired,
}

/// Silences, newest first, and how many there are.
pub async fn list(
    db: &impl ConnectionTrait,
    filter: SilenceFilter,
    limit: u64,
    offset: u64,
) -> Result<(Vec<silence::Model>, u64)> {
    let now = now_ms();
    let mut q = silence::Entity::find();
    match filter {
        SilenceFilter::All => {}
        SilenceFilter::Active => q = q.filter(silence::Column::EndsAt.gt(now)),
        SilenceFilter::Expired => q = q.filter(silence::Column::EndsAt.lte(now)),
    }
    let total = q.clone().count(db).await?;
    let rows = q
        .order_by_desc(silence::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((rows, total))
}

/// The silences in force at `now`.
pub async fn in_force(db: &impl ConnectionTrait, now: i64) -> Result<Vec<Silence>> {
    Ok(silence::Entity::find()
        .filter(silence::Column::StartsAt.lte(now))
        .filter(silence::Column::EndsAt.gt(now))
        .all(db)
        .await?
        .iter()
        .map(compiled)
        .collect())
}

/// Ends a silence now (one already over keeps its end).
pub async fn expire(db: &impl ConnectionTrait, id: i64) -> Result<silence::Model> {
    let row = get(db, id).await?;
    let now = now_ms();
    if row.ends_at <= now {
        return Ok(row);
    }
    let mut model: silence::ActiveModel = row.into();
    model.ends_at = Set(now);
    model.updated_at = Set(now);
    Ok(model.update(db).await?)
}
