//! `/users`: who may log in, with which role. Admins only. Passwords are write-only and stored
//! as argon2id hashes; the last admin can be neither deleted nor demoted.

use chrono::{DateTime, Utc};
use entity::{types::Role, user as user_row};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use crate::{
    accounts,
    api::{
        ApiResult, ApiTags, Auth, Page,
        status::{BadRequest, Conflict, Forbidden, Invalid, NotFound, UnsupportedMediaType},
        ts,
    },
    error::{Error, Result},
    services::Services,
    store::users::{self as store, NewUser, UserChanges},
};

/// A user to create.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UserCreate {
    /// 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub username: String,
    /// 10 to 256 characters. Write-only.
    #[oai(write_only, validator(min_length = 10, max_length = 256))]
    pub password: String,
    pub role: Role,
}

/// A change of a user; absent fields stay. A new password ends the user's sessions.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UserUpdate {
    /// Write-only.
    #[oai(write_only, validator(min_length = 10, max_length = 256))]
    pub password: Option<String>,
    pub role: Option<Role>,
}

/// A user as the API shows it.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<user_row::Model> for User {
    fn from(u: user_row::Model) -> Self {
        Self {
            id: u.id,
            username: u.username,
            role: u.role,
            created_at: ts(u.created_at),
            updated_at: ts(u.updated_at),
            last_login_at: u.last_login_at.map(ts),
        }
    }
}

#[derive(ApiResponse)]
pub enum CreateUserResponse {
    #[oai(status = 201)]
    Created(Json<User>),
}

#[derive(ApiResponse)]
pub enum UserResponse {
    #[oai(status = 200)]
    Ok(Json<User>),
}

#[derive(ApiResponse)]
pub enum ListUsersResponse {
    #[oai(status = 200)]
    Ok(Json<Page<User>>),
}

#[derive(ApiResponse)]
pub enum DeleteUserResponse {
    /// Deleted, with its tokens and sessions.
    #[oai(status = 204)]
    Deleted,
}

fn hashed(password: &str) -> Result<String> {
    accounts::validate_password(password).map_err(|r| Error::invalid("password", r))?;
    accounts::hash_password(password)
}

/// The users resource.
pub struct UsersApi(pub Services);

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Accounts")]
impl UsersApi {
    /// Create a user
    #[oai(path = "/users", method = "post", operation_id = "create_user")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<UserCreate>,
    ) -> ApiResult<
        CreateUserResponse,
        (
            BadRequest,
            Forbidden,
            Conflict,
            Invalid,
            UnsupportedMediaType,
        ),
    > {
        auth.require_admin()?;
        let b = body.0;
        accounts::validate_username(&b.username).map_err(|r| Error::invalid("username", r))?;
        let new = NewUser {
            password_hash: hashed(&b.password)?,
            username: b.username,
            role: b.role,
        };
        let user = store::create(&self.0.db, new).await?;
        tracing::info!(user = %user.username, role = %user.role, by = %auth.principal().who(), "user created");
        Ok(CreateUserResponse::Created(Json(user.into())))
    }

    /// List users
    #[oai(path = "/users", method = "get", operation_id = "list_users")]
    async fn list(
        &self,
        auth: Auth,
        /// 1 to 500, default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        offset: Query<Option<u64>>,
    ) -> ApiResult<ListUsersResponse, (BadRequest, Forbidden)> {
        auth.require_admin()?;
        let (limit, offset) = (super::limit(limit.0), offset.0.unwrap_or(0));
        let (rows, total) = store::list(&self.0.db, limit, offset).await?;
        Ok(ListUsersResponse::Ok(Json(Page {
            items: rows.into_iter().map(User::from).collect(),
            total,
            limit,
            offset,
        })))
    }

    /// Get a user
    #[oai(path = "/users/:id", method = "get", operation_id = "get_user")]
    async fn get(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<UserResponse, (BadRequest, Forbidden, NotFound)> {
        auth.require_admin()?;
        Ok(UserResponse::Ok(Json(
            store::get(&self.0.db, id.0).await?.into(),
        )))
    }

    /// Change a user's password or role
    ///
    /// A new password ends the user's sessions; a lower role applies to its tokens at once.
    #[oai(path = "/users/:id", method = "patch", operation_id = "update_user")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<i64>,
        body: Json<UserUpdate>,
    ) -> ApiResult<
        UserResponse,
        (
            BadRequest,
            Forbidden,
            NotFound,
            Conflict,
            Invalid,
            UnsupportedMediaType,
        ),
    > {
        auth.require_admin()?;
        let changes = UserChanges {
            password_hash: body.0.password.as_deref().map(hashed).transpose()?,
            role: body.0.role,
        };
        let user = store::update(&self.0.db, id.0, changes).await?;
        tracing::info!(user = %user.username, role = %user.role, by = %auth.principal().who(), "user changed");
        Ok(UserResponse::Ok(Json(user.into())))
    }

    /// Delete a user
    ///
    /// With its tokens and sessions. The last admin cannot be deleted (409).
    #[oai(path = "/users/:id", method = "delete", operation_id = "delete_user")]
    async fn delete(
        &self,
        auth: Auth,
        id: Path<i64>,
    ) -> ApiResult<DeleteUserResponse, (BadRequest, Forbidden, NotFound, Conflict)> {
        auth.require_admin()?;
        store::delete(&self.0.db, id.0).await?;
        tracing::info!(user_id = id.0, by = %auth.principal().who(), "user deleted");
        Ok(DeleteUserResponse::Deleted)
    }
}
