//! A fleet-wide threshold rule: levels for one metric (optionally one label of it) on every
//! host carrying all of the rule's labels.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "threshold_rules")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    /// JSON array of host labels, all required; empty selects every host.
    pub selector: String,
    pub metric: String,
    /// Empty for every label of the metric.
    pub label: String,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    pub for_polls: i32,
    pub hysteresis: f64,
    pub repeat_seconds: Option<i32>,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
