//! A notification record: written on each alert transition, read over REST and delivered by
//! channels.

use sea_orm::entity::prelude::*;

use crate::types::{AlertKind, Event, Level, NotificationState};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub host_id: Option<i64>,
    pub url_check_id: Option<i64>,
    pub kind: AlertKind,
    pub metric: Option<String>,
    pub label: Option<String>,
    pub level: Level,
    pub state: NotificationState,
    /// fired, escalated, de-escalated, reminder or resolved.
    pub event: Option<Event>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub title: String,
    pub message: String,
    pub created_at: i64,
    pub read_at: Option<i64>,
    /// The alert (`alert_states` row) it is about.
    pub alert_id: Option<i64>,
    /// The silence that kept it from channels, when one did.
    pub silence_id: Option<i64>,
    /// The maintenance window that kept it from channels, when one did.
    pub maintenance_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
