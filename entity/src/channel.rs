//! A notification channel. Non-secret settings are JSON; secret ones are AEAD ciphertext.

use sea_orm::entity::prelude::*;

use crate::types::{ChannelKind, Level};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "channels")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    pub kind: ChannelKind,
    pub enabled: bool,
    pub min_level: Level,
    pub host_id: Option<i64>,
    pub label: Option<String>,
    pub settings: String,
    pub secrets_enc: Option<Vec<u8>>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
