//! The metric values of one poll of one host, packed in one row (see the `000005` migration).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "metric_sample_sets")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub host_id: i64,
    /// When the values were taken.
    pub ts: i64,
    /// How many values `samples` holds.
    pub count: i32,
    /// JSON: `{"<metric name>": {"<label>": value, …}, …}`; the label is `""` for host-wide
    /// metrics.
    pub samples: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
