//! The alert state machine's state for one (subject, metric, label).

use sea_orm::entity::prelude::*;

use crate::types::{AlertKind, AlertPhase, Level};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "alert_states")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub alert_key: String,
    pub host_id: Option<i64>,
    pub url_check_id: Option<i64>,
    pub kind: AlertKind,
    pub metric: String,
    pub label: String,
    pub state: AlertPhase,
    pub level: Option<Level>,
    pub pending_polls: i32,
    pub last_value: Option<f64>,
    pub since_at: i64,
    pub last_notified_at: Option<i64>,
    pub updated_at: i64,
    /// The notification that opened the current episode (its `fired`).
    pub opened_notification_id: Option<i64>,
    /// The level crossed, as the last notification said.
    pub threshold: Option<f64>,
    pub acked_by: Option<String>,
    pub acked_at: Option<i64>,
    pub ack_comment: Option<String>,
    pub ack_expires_at: Option<i64>,
    /// The newest firing notification a silence or maintenance window kept from channels, to
    /// deliver when it ends while the alert still fires.
    pub held_notification_id: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
