//! One poll attempt of a host: its outcome, why it failed, or the metric values it read.

use sea_orm::entity::prelude::*;

use crate::types::{PollErrorKind, PollOutcome};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "polls")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub host_id: i64,
    pub started_at: i64,
    pub duration_ms: i64,
    pub outcome: PollOutcome,
    pub error_kind: Option<PollErrorKind>,
    pub error: Option<String>,
    /// When a successful poll's values were taken; `None` for a failed poll (and for polls
    /// stored before the values moved here, whose values are in `metric_sample_sets`).
    pub sampled_at: Option<i64>,
    /// How many values `samples` holds.
    pub sample_count: Option<i32>,
    /// JSON: `{"<metric name>": {"<label>": value, …}, …}`; the label is `""` for host-wide
    /// metrics.
    pub samples: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
