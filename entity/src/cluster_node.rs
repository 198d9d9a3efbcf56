//! An instance of the service on this database, with its last heartbeat (the database's clock).

use sea_orm::entity::prelude::*;

use crate::types::NodeRole;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "cluster_nodes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub node_id: String,
    pub hostname: String,
    pub pid: i32,
    /// The address its API listens on.
    pub listen: String,
    pub version: String,
    pub role: NodeRole,
    pub started_at: i64,
    pub heartbeat_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
