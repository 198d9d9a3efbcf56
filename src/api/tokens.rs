//! `/tokens`: API tokens, each belonging to a user and carrying at most its role. Admins only.
//! A token's secret is shown once, in the answer that creates it; revoking one refuses it from
//! the next request on.

use chrono::{DateTime, Utc};
use entity::types::Role;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use crate::{
    api::{
        ApiResult, ApiTags, Auth, Page,
        status::{BadRequest, Forbidden, Invalid, NotFound, UnsupportedMediaType},
        ts,
    },
    error::Error,
    services::Services,
    store::{
        tokens::{self as store, NewToken, TokenInfo},
        users,
    },
};

/// A token to create.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TokenCreate {
    /// Who or what uses it, e.g. `grafana`.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: String,
    /// The user it belongs to; defaults to the caller's.
    pub user_id: Option<i64>,
    /// What it may do, at most its user's role; defaults to the user's role.
    pub role: Option<Role>,
}

/// A token as the API shows it (never its secret).
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Token {
    pub id: i64,
    pub name: String,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    /// Its own role.
    pub role: Role,
    /// What it may do now: its role, capped by its user's current role.
    pub effective_role: Role,
    pub created_at: DateTime<Utc>,
    /// The last request made with it (to the minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<TokenInfo> for Token {
    fn from(t: TokenInfo) -> Self {
        Self {
            id: t.token.id,
            name: t.token.name,
            user_id: t.token.user_id,
            username: t.username,
            role: t.token.role.unwrap_or(if t.token.read_only {
                Role::Viewer
            } else {
                Role::Admin
            }),
            effective_role: t.effective_role,
            created_at: ts(t.token.created_at),
            last_used_at: t.token.last_used_at.map(ts),
        }
    }
}

/// A new token with its secret, shown this once.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CreatedToken {
    /// Send as `Authorization: Bearer <token>`. Not stored: keep it now.
    pub token: String,
    pub info: Token,
}

#[derive(ApiResponse)]
pub enum CreateTokenResponse {
    #[oai(status = 201)]
    Created(Json<CreatedToken>),
}

#[derive(ApiResponse)]
pub enum ListTokensResponse {
    #[oai(status = 200)]
    Ok(Json<Page<Token>>),
}

#[derive(ApiResponse)]
pub enum RevokeTokenResponse {
    /// Revoked: refused from the next request on.
    #[oai(status = 204)]
    Revoked,
}

/// The tokens resource.
pub struct TokensApi(pub Services);

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Accounts")]
impl TokensApi {
    /// Create a token
    #[oai(path = "/tokens", method = "post", operation_id = "create_token")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<TokenCreate>,
    ) -> ApiResult<CreateTokenResponse, (BadRequest, Forbidden, Invalid, UnsupportedMediaType)>
    {
        auth.require_admin()?;
        let b = body.0;
        crate::validate::name("name", &b.name)?;
        let user_id = match b.user_id.or(auth.principal().user_id) {
            Some(id) => id,
            None => return Err(Error::invalid("user_id", "required").into()),
        };
        let owner = users::get(&self.0.db, user_id).await.map_err(|e| match e {
            Error::NotFound(m) => Error::invalid("user_id", m),
            e => e,
        })?;
        let role = b.role.unwrap_or(owner.role);
        let (secret, row) = store::create(
            &self.0.db,
            NewToken {
                user_id,
                name: &b.name,
                role,
            },
        )
        .await?;
        tracing::info!(token_id = row.id, user = %owner.username, %role, by = %auth.principal().who(), "token created");
        let info = store::get(&self.0.db, row.id).await?.into();
        Ok(CreateTokenResponse::Created(Json(CreatedToken {
            token: secret,
            info,
        })))
    }

    /// List tokens
    #[oai(path = "/tokens", method = "get", operation_id = "list_tokens")]
    async fn list(
        &self,
        auth: Auth,
        /// Only this user's.
        user_id: Query<Option<i64>>,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<ListTokensResponse, (BadRequest, Forbidden)> {
        auth.require_admin()?;
        let (limit, offset) = (super::limit(limit.0), offset.0.unwrap_or(0));
        let (rows, total) = store::list(&self.0.db, user_id.0, limit, offset).await?;
        Ok(ListTokensResponse::Ok(Json(Page {
            items: rows.into_iter().map(Token::from).collect(),
            total,
            limit,
            offset,
        })))
    }

    /// Revoke a token
    #[oai(path = "/tokens/:id", method = "delete", operation_id = "revoke_token")]
    async fn revoke(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<RevokeTokenResponse, (BadRequest, Forbidden, NotFound)> {
        auth.require_admin()?;
        store::revoke(&self.0.db, id.0).await?;
        tracing::info!(token_id = id.0, by = %auth.principal().who(), "token revoked");
        Ok(RevokeTokenResponse::Revoked)
    }
}
