//! Browser sessions: a random secret in an HttpOnly cookie, stored as its SHA-256 hash with
//! its user and expiry. A session may do what its user's role allows at each request; logging
//! out, a new password or deleting the user ends it.

use entity::{session, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::Expr,
};

use super::{
    now_ms,
    tokens::{Principal, Via, hash, secret},
};
use crate::error::Result;

/// The prefix of a session secret.
pub const SESSION_PREFIX: &str = "hws_";

/// How stale `last_used_at` may get before a request rewrites it.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// Opens a session for `user_id` lasting `ttl_ms`; returns its secret (for the cookie) and row.
pub async fn create(
    db: &impl ConnectionTrait,
    user_id: i64,
    ttl_ms: i64,
) -> Result<(String, session::Model)> {
    let secret = secret(SESSION_PREFIX);
    let now = now_ms();
    let row = session::ActiveModel {
        token_hash: Set(hash(&secret)),
        user_id: Set(user_id),
        created_at: Set(now),
        expires_at: Set(now + ttl_ms),
        last_used_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok((secret, row))
}

/// The principal of a live session.
pub async fn authenticate(db: &impl ConnectionTrait, secret: &str) -> Result<Option<Principal>> {
    if !secret.starts_with(SESSION_PREFIX) {
        return Ok(None);
    }
    let now = now_ms();
    let Some(s) = session::Entity::find()
        .filter(session::Column::TokenHash.eq(hash(secret)))
        .filter(session::Column::ExpiresAt.gt(now))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let Some(u) = user::Entity::find_by_id(s.user_id).one(db).await? else {
        return Ok(None);
    };
    if now - s.last_used_at >= LAST_USED_GRANULARITY_MS {
        session::Entity::update_many()
            .col_expr(session::Column::LastUsedAt, Expr::value(now))
            .filter(session::Column::Id.eq(s.id))
            .exec(db)
            .await?;
    }
    Ok(Some(Principal {
        user_id: Some(u.id),
        username: u.username,
        via: Via::Session { id: s.id },
        role: u.role,
    }))
}

/// When session `id` expires (`None` when it is gone).
pub async fn expiry(db: &impl ConnectionTrait, id: i64) -> Result<Option<i64>> {
    Ok(session::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(|s| s.expires_at))
}

/// Ends the session with this secret (nothing when there is none).
pub async fn end(db: &impl ConnectionTrait, secret: &str) -> Result<()> {
    session::Entity::delete_many()
        .filter(session::Column::TokenHash.eq(hash(secret)))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes expired sessions.
pub async fn prune(db: &impl ConnectionTrait) -> Result<u64> {
    Ok(session::Entity::delete_many()
        .filter(session::Column::ExpiresAt.lte(now_ms()))
        .exec(db)
        .await?
        .rows_affected)
}
