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
    /// When a successful poll's values were taken; `None` for a failed poll.
    pub sampled_at: Option<i64>,
    /// The `series_layouts` row naming the keys of `data`.
    pub layout_id: Option<i64>,
    /// The values, packed in the layout's key order (see [`crate::series::encode_values`]).
    pub data: Option<Vec<u8>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
