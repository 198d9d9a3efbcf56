//! How hostwatch logs in to a host. Secret material is AEAD ciphertext.

use sea_orm::entity::prelude::*;

use crate::types::{AuthMethod, CredentialSource};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "host_credentials")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub host_id: i64,
    pub auth_method: AuthMethod,
    pub source: CredentialSource,
    pub private_key_enc: Option<Vec<u8>>,
    pub passphrase_enc: Option<Vec<u8>>,
    pub password_enc: Option<Vec<u8>>,
    pub public_key: Option<String>,
    pub key_algorithm: Option<String>,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
