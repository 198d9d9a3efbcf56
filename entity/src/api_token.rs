//! An API bearer token. Only its SHA-256 hash is stored.

use sea_orm::entity::prelude::*;

use crate::types::Role;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    #[sea_orm(unique)]
    pub token_hash: String,
    /// From before roles: `true` for a viewer token. New tokens keep it in step with `role`.
    pub read_only: bool,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// The user it belongs to (`None` only for tokens from before accounts, until the first
    /// start gives them to `admin`).
    pub user_id: Option<i64>,
    /// The most it may do: at most its user's role, which is checked at every use.
    pub role: Option<Role>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
