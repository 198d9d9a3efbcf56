//! Users: name, role, password hash. The last admin can be neither deleted nor demoted, so the
//! service always has someone who can manage it; deleting a user takes its tokens and sessions
//! with it.

use entity::{api_token, session, types::Role, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use super::now_ms;
use crate::error::{Error, Result};

/// A user to create (the password already hashed).
#[derive(Debug)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

/// What an update changes.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub password_hash: Option<String>,
    pub role: Option<Role>,
}

/// Creates a user.
pub async fn create(db: &impl ConnectionTrait, new: NewUser) -> Result<user::Model> {
    let now = now_ms();
    user::ActiveModel {
        username: Set(new.username.clone()),
        password_hash: Set(new.password_hash),
        role: Set(new.role),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
    .map_err(|e| {
        Error::conflict_on_unique(e, format!("a user named {:?} already exists", new.username))
    })
}

/// Whether any user exists.
pub async fn any(db: &impl ConnectionTrait) -> Result<bool> {
    Ok(user::Entity::find().count(db).await? > 0)
}

/// A page of users by id, and how many there are.
pub async fn list(
    db: &impl ConnectionTrait,
    limit: u64,
    offset: u64,
) -> Result<(Vec<user::Model>, u64)> {
    let total = user::Entity::find().count(db).await?;
    let items = user::Entity::find()
        .order_by_asc(user::Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?;
    Ok((items, total))
}

/// A user by id.
pub async fn get(db: &impl ConnectionTrait, id: i64) -> Result<user::Model> {
    user::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no user with id {id}")))
}

/// A user by name.
pub async fn find_by_name(
    db: &impl ConnectionTrait,
    username: &str,
) -> Result<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(user::Column::Username.eq(username))
        .one(db)
        .await?)
}

/// A user by name, or a not-found error naming it.
pub async fn get_by_name(db: &impl ConnectionTrait, username: &str) -> Result<user::Model> {
    find_by_name(db, username)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no user named {username:?}")))
}

async fn other_admins(db: &impl ConnectionTrait, id: i64) -> Result<u64> {
    Ok(user::Entity::find()
        .filter(user::Column::Role.eq(Role::Admin))
        .filter(user::Column::Id.ne(id))
        .count(db)
        .await?)
}

/// Changes a user's password or role. Demoting the last admin is refused.
pub async fn update(db: &DatabaseConnection, id: i64, changes: UserChanges) -> Result<user::Model> {
    let txn = super::begin_write(db).await?;
    let current = get(&txn, id).await?;
    if current.role == Role::Admin
        && changes.role.is_some_and(|r| r != Role::Admin)
        && other_admins(&txn, id).await? == 0
    {
        return Err(Error::Conflict(format!(
            "{:?} is the last admin: make another user admin first",
            current.username
        )));
    }
    let password_changed = changes.password_hash.is_some();
    let mut m: user::ActiveModel = current.into();
    if let Some(hash) = changes.password_hash {
        m.password_hash = Set(hash);
    }
    if let Some(role) = changes.role {
        m.role = Set(role);
    }
    m.updated_at = Set(now_ms());
    let row = m.update(&txn).await?;
    if password_changed {
        // A new password ends the sessions opened with the old one.
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(id))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(row)
}

/// Deletes a user with its tokens and sessions. Deleting the last admin is refused.
pub async fn delete(db: &DatabaseConnection, id: i64) -> Result<()> {
    let txn = super::begin_write(db).await?;
    let current = get(&txn, id).await?;
    if current.role == Role::Admin && other_admins(&txn, id).await? == 0 {
        return Err(Error::Conflict(format!(
            "{:?} is the last admin: make another user admin first",
            current.username
        )));
    }
    api_token::Entity::delete_many()
        .filter(api_token::Column::UserId.eq(id))
        .exec(&txn)
        .await?;
    session::Entity::delete_many()
        .filter(session::Column::UserId.eq(id))
        .exec(&txn)
        .await?;
    user::Entity::delete_by_id(id).exec(&txn).await?;
    txn.commit().await?;
    Ok(())
}

/// Notes a successful login.
pub async fn record_login(db: &impl ConnectionTrait, id: i64) -> Result<()> {
    user::Entity::update_many()
        .col_expr(
            user::Column::LastLoginAt,
            sea_orm::sea_query::Expr::value(now_ms()),
        )
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
