//! API tokens: created with a random secret shown once, stored as a SHA-256 hash. A token
//! belongs to a user and carries a role of its own; at each use it may do what both its role
//! and its user's current role allow, so demoting or deleting a user takes effect on its tokens
//! at once, and so does revoking (deleting) a token.
//!
//! A token is 32 random bytes, so a fast hash is enough: there is nothing to brute-force that a
//! slow password hash would protect.

use base64::Engine;
use entity::{api_token, types::Role, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, sea_query::Expr,
};
use sha2::{Digest, Sha256};

use crate::{
    error::{Error, Result},
    store::now_ms,
};

/// The prefix of every token, so a leaked one is recognisable in logs and scanners.
pub const TOKEN_PREFIX: &str = "hw_";

/// How stale a token's `last_used_at` may get before a use rewrites it: a busy client does not
/// cost a write per request.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// How a request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Token { id: i64, name: String },
    Session { id: i64 },
}

/// Who a request authenticated as, and what it may do.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Option<i64>,
    pub username: String,
    pub via: Via,
    pub role: Role,
}

impl Principal {
    /// For logs: `alice (token grafana)`, `alice (session)`.
    pub fn who(&self) -> String {
        match &self.via {
            Via::Token { name, .. } => format!("{} (token {name})", self.username),
            Via::Session { .. } => format!("{} (session)", self.username),
        }
    }
}

pub(super) fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A random secret with `prefix`.
pub(super) fn secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The role a stored token may use by itself (tokens from before roles: by `read_only`).
fn own_role(t: &api_token::Model) -> Role {
    t.role.unwrap_or(if t.read_only {
        Role::Viewer
    } else {
        Role::Admin
    })
}

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub role: Role,
}

/// Creates a token for a user (refused above the user's role) and returns its secret text,
/// which is not stored anywhere, with its row.
pub async fn create(
    db: &impl ConnectionTrait,
    new: NewToken<'_>,
) -> Result<(String, api_token::Model)> {
    let owner = super::users::get(db, new.user_id).await?;
    if new.role > owner.role {
        return Err(Error::invalid(
            "role",
            format!(
                "{} is above the role of {:?} ({})",
                new.role, owner.username, owner.role
            ),
        ));
    }
    let token = secret(TOKEN_PREFIX);
    let row = api_token::ActiveModel {
        name: Set(new.name.to_owned()),
        token_hash: Set(hash(&token)),
        read_only: Set(new.role == Role::Viewer),
        created_at: Set(now_ms()),
        user_id: Set(Some(new.user_id)),
        role: Set(Some(new.role)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok((token, row))
}

/// Whether any token exists.
pub async fn any(db: &impl ConnectionTrait) -> Result<bool> {
    Ok(api_token::Entity::find().count(db).await? > 0)
}

/// Gives the tokens made before accounts (no user) to `user_id`, with the role they had.
pub async fn adopt_orphans(db: &impl ConnectionTrait, user_id: i64) -> Result<u64> {
    let orphans = api_token::Entity::find()
        .filter(api_token::Column::UserId.is_null())
        .all(db)
        .await?;
    for t in &orphans {
        let role = own_role(t);
        let mut m: api_token::ActiveModel = t.clone().into();
        m.user_id = Set(Some(user_id));
        m.role = Set(Some(role));
        m.update(db).await?;
    }
    Ok(orphans.len() as u64)
}

/// The principal for a presented token, if it is one of ours and its user still exists.
pub async fn authenticate(db: &impl ConnectionTrait, token: &str) -> Result<Option<Principal>> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let Some(t) = api_token::Entity::find()
        .filter(api_token::Column::TokenHash.eq(hash(token)))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let (username, role) = match t.user_id {
        Some(uid) => match user::Entity::find_by_id(uid).one(db).await? {
            Some(u) => (u.username, own_role(&t).min(u.role)),
            None => return Ok(None),
        },
        // From before accounts, until the first start adopts it.
        None => ("admin".to_owned(), own_role(&t)),
    };
    let now = now_ms();
    if t.last_used_at
        .is_none_or(|at| now - at >= LAST_USED_GRANULARITY_MS)
    {
        api_token::Entity::update_many()
            .col_expr(api_token::Column::LastUsedAt, Expr::value(now))
            .filter(api_token::Column::Id.eq(t.id))
            .exec(db)
            .await?;
    }
    Ok(Some(Principal {
        user_id: t.user_id,
        username,
        via: Via::Token {
            id: t.id,
            name: t.name,
        },
        role,
    }))
}

/// A token with its owner's name, for listing.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub token: api_token::Model,
    pub username: Option<String>,
    /// What it may do now: its role, capped by its user's.
    pub effective_role: Role,
}

/// A page of tokens (of one user, or all), by id, and how many there are.
pub async fn list(
    db: &impl ConnectionTrait,
    user_id: Option<i64>,
    limit: u64,
    offset: u64,
) -> Result<(Vec<TokenInfo>, u64)> {
    let mut q = api_token::Entity::find();
    if let Some(uid) = user_id {
        q = q.filter(api_token::Column::UserId.eq(uid));
    }
    let total = q.clone().count(db).await?;
    let rows = q
        .order_by_asc(api_token::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    let users: std::collections::HashMap<i64, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(rows.iter().filter_map(|t| t.user_id)))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    let items = rows
        .into_iter()
        .map(|t| {
            let owner = t.user_id.and_then(|id| users.get(&id));
            TokenInfo {
                effective_role: owner.map_or(own_role(&t), |u| own_role(&t).min(u.role)),
                username: owner.map(|u| u.username.clone()),
                token: t,
            }
        })
        .collect();
    Ok((items, total))
}

/// One token by id.
pub async fn get(db: &impl ConnectionTrait, id: i64) -> Result<TokenInfo> {
    let t = api_token::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no token with id {id}")))?;
    let owner = match t.user_id {
        Some(uid) => user::Entity::find_by_id(uid).one(db).await?,
        None => None,
    };
    Ok(TokenInfo {
        effective_role: owner
            .as_ref()
            .map_or(own_role(&t), |u| own_role(&t).min(u.role)),
        username: owner.map(|u| u.username),
        token: t,
    })
}

/// Revokes a token: it is refused from the next request on.
pub async fn revoke(db: &impl ConnectionTrait, id: i64) -> Result<()> {
    let gone = api_token::Entity::delete_by_id(id)
        .exec(db)
        .await?
        .rows_affected;
    if gone == 0 {
        return Err(Error::NotFound(format!("no token with id {id}")));
    }
    Ok(())
}
