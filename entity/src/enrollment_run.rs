//! One enrollment attempt with its whole transcript, kept whether it worked or not.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "enrollment_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub host_id: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub ok: bool,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    pub provisioned: bool,
    pub duration_ms: Option<i64>,
    /// Attempts this row stands for: a failure repeated the same way is counted, not copied.
    pub repeats: i32,
    /// When the last of them started (`None` while there was only one).
    pub last_started_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
