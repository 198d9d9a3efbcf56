//! API tokens: created with a random secret shown once, stored as a SHA-256 hash.
//!
//! A token is 32 random bytes, so a fast hash is enough: there is nothing to brute-force that a
//! slow password hash would protect.

use base64::Engine;
use entity::api_token;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use sha2::{Digest, Sha256};

use crate::{error::Result, store::now_ms};

/// The prefix of every token, so a leaked one is recognisable in logs and scanners.
pub const TOKEN_PREFIX: &str = "hw_";

/// Who a request authenticated as.
#[derive(Debug, Clone)]
pub struct Principal {
    pub token_id: i64,
    pub name: String,
    pub read_only: bool,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token and returns its secret text, which is not stored anywhere.
pub async fn create(db: &impl ConnectionTrait, name: &str, read_only: bool) -> Result<String> {
    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    api_token::ActiveModel {
        name: Set(name.to_owned()),
        token_hash: Set(hash(&token)),
        read_only: Set(read_only),
        created_at: Set(now_ms()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(token)
}

/// Whether any token exists (the first start creates the admin token when none does).
pub async fn any(db: &impl ConnectionTrait) -> Result<bool> {
    Ok(api_token::Entity::find().count(db).await? > 0)
}

/// The principal for a presented token, if it is one of ours.
pub async fn authenticate(db: &impl ConnectionTrait, token: &str) -> Result<Option<Principal>> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let found = api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(hash(token)))
        .one(db)
        .await?;
    Ok(found.map(|t| Principal {
        token_id: t.id,
        name: t.name,
        read_only: t.read_only,
    }))
}
