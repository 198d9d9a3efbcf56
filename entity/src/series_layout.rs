//! The (metric, label) keys of a host's packed values, stored once and named by the rows that
//! pack values in their order (`polls.data`, `rollups_*.data`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "series_layouts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub host_id: i64,
    /// JSON: `[["<metric name>", "<label>"], …]` (see [`crate::series::keys_to_json`]).
    pub keys: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
