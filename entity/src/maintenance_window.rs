//! A maintenance window: a planned period (once, daily or weekly) during which the selected
//! hosts' notifications are not delivered and, unless it collects, their polls pause.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "maintenance_windows")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    /// JSON array of host ids.
    pub host_ids: String,
    /// JSON array of labels; a host carrying any of them is in the window.
    pub labels: String,
    /// `once`, `daily` or `weekly`.
    pub recurrence: String,
    /// Local start: `YYYY-MM-DDTHH:MM` for `once`, `HH:MM` otherwise.
    pub starts: String,
    /// JSON array of weekday names (`mon` … `sun`) for `weekly`.
    pub weekdays: String,
    /// IANA time zone the start is in.
    pub time_zone: String,
    pub duration_minutes: i32,
    /// A recurring window recurs until then (Unix ms), when set.
    pub until_at: Option<i64>,
    /// Whether hosts are polled during the window.
    pub collect: bool,
    pub comment: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
