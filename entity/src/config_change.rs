//! A change of what is monitored, made through some node's API: the leader follows these to
//! bring its schedule and cache in line with changes made on other nodes.

use sea_orm::entity::prelude::*;

use crate::types::ChangeKind;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "config_changes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub kind: ChangeKind,
    pub target_id: i64,
    /// The node whose API made it (that node has applied it already).
    pub node_id: String,
    pub at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
