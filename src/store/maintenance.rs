//! Maintenance windows: stored as their local schedule, read back as [`Window`]s.

use chrono::{DateTime, Duration, NaiveDateTime, NaiveTime, Utc};
use entity::{
    maintenance_window,
    types::{Recurrence, Weekday},
};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryOrder, QuerySelect, Set,
};

use crate::{
    alerts::maintenance::{Start, Window},
    error::{Error, Result},
    store::now_ms,
};

/// What a window says, checked.
#[derive(Debug, Clone)]
pub struct WindowSettings {
    pub name: String,
    pub host_ids: Vec<i64>,
    pub labels: Vec<String>,
    pub recurrence: Recurrence,
    /// `YYYY-MM-DDTHH:MM` for once, `HH:MM` otherwise.
    pub starts: String,
    pub weekdays: Vec<Weekday>,
    pub time_zone: String,
    pub duration_minutes: i32,
    pub until_at: Option<i64>,
    pub collect: bool,
    pub comment: String,
}

/// Reads a start as its recurrence writes it.
pub fn parse_start(
    recurrence: Recurrence,
    starts: &str,
    weekdays: &[Weekday],
) -> std::result::Result<Start, String> {
    match recurrence {
        Recurrence::Once => NaiveDateTime::parse_from_str(starts, "%Y-%m-%dT%H:%M")
            .map(Start::At)
            .map_err(|_| format!("{starts:?}: a local date and time, YYYY-MM-DDTHH:MM")),
        Recurrence::Daily | Recurrence::Weekly => {
            let time = NaiveTime::parse_from_str(starts, "%H:%M")
                .map_err(|_| format!("{starts:?}: a local time of day, HH:MM"))?;
            Ok(if recurrence == Recurrence::Daily {
                Start::Daily(time)
            } else {
                Start::Weekly(time, weekdays.to_vec())
            })
        }
    }
}

/// The window of a stored row (`None` when the row no longer reads: a zone gone from the
/// database of zones).
pub fn window(row: &maintenance_window::Model) -> Option<Window> {
    let recurrence = Recurrence::parse(&row.recurrence)?;
    let weekdays: Vec<Weekday> = serde_json::from_str(&row.weekdays).unwrap_or_default();
    Some(Window {
        id: row.id,
        name: row.name.clone(),
        host_ids: serde_json::from_str(&row.host_ids).unwrap_or_default(),
        labels: serde_json::from_str(&row.labels).unwrap_or_default(),
        start: parse_start(recurrence, &row.starts, &weekdays).ok()?,
        tz: row.time_zone.parse().ok()?,
        duration: Duration::minutes(i64::from(row.duration_minutes)),
        until: row
            .until_at
            .and_then(DateTime::<Utc>::from_timestamp_millis),
        collect: row.collect,
    })
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn active_model(s: WindowSettings, model: &mut maintenance_window::ActiveModel) {
    model.name = Set(s.name);
    model.host_ids = Set(json(&s.host_ids));
    model.labels = Set(json(&s.labels));
    model.recurrence = Set(s.recurrence.as_str().to_owned());
    model.starts = Set(s.starts);
    model.weekdays = Set(json(&s.weekdays));
    model.time_zone = Set(s.time_zone);
    model.duration_minutes = Set(s.duration_minutes);
    model.until_at = Set(s.until_at);
    model.collect = Set(s.collect);
    model.comment = Set(s.comment);
    model.updated_at = Set(now_ms());
}

pub async fn create(
    db: &impl ConnectionTrait,
    s: WindowSettings,
    created_by: String,
) -> Result<maintenance_window::Model> {
    let name = s.name.clone();
    let mut model = maintenance_window::ActiveModel {
        created_by: Set(created_by),
        created_at: Set(now_ms()),
        ..Default::default()
    };
    active_model(s, &mut model);
    model.insert(db).await.map_err(|e| {
        Error::conflict_on_unique(e, format!("a maintenance window named {name:?} exists"))
    })
}

pub async fn get(db: &impl ConnectionTrait, id: i64) -> Result<maintenance_window::Model> {
    maintenance_window::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no maintenance window with id {id}")))
}

pub async fn update(
    db: &impl ConnectionTrait,
    id: i64,
    s: WindowSettings,
) -> Result<maintenance_window::Model> {
    let name = s.name.clone();
    let mut model: maintenance_window::ActiveModel = get(db, id).await?.into();
    active_model(s, &mut model);
    model.update(db).await.map_err(|e| {
        Error::conflict_on_unique(e, format!("a maintenance window named {name:?} exists"))
    })
}

pub async fn delete(db: &impl ConnectionTrait, id: i64) -> Result<()> {
    let done = maintenance_window::Entity::delete_by_id(id)
        .exec(db)
        .await?;
    if done.rows_affected == 0 {
        return Err(Error::NotFound(format!(
            "no maintenance window with id {id}"
        )));
    }
    Ok(())
}

/// Windows by id, and how many there are.
pub async fn list(
    db: &impl ConnectionTrait,
    limit: u64,
    offset: u64,
) -> Result<(Vec<maintenance_window::Model>, u64)> {
    let total = maintenance_window::Entity::find().count(db).await?;
    let rows = maintenance_window::Entity::find()
        .order_by_asc(maintenance_window::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((rows, total))
}

/// Every window, as the calendar needs them.
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<Window>> {
    Ok(maintenance_window::Entity::find()
        .order_by_asc(maintenance_window::Column::Id)
        .all(db)
        .await?
        .iter()
        .filter_map(window)
        .collect())
}
