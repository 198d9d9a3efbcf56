//! Warning and critical levels of one metric of a host or a URL check.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "thresholds")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub host_id: Option<i64>,
    pub url_check_id: Option<i64>,
    pub metric: String,
    /// The one label (mount, GPU index, interface) it is about; empty for every label.
    pub label: String,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    pub for_polls: i32,
    pub hysteresis: f64,
    pub repeat_seconds: Option<i32>,
    pub enabled: bool,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
