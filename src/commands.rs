//! The account commands (`hostwatch user …`, `hostwatch token …`): what an operator with a
//! shell on the service's machine uses to manage users and tokens, through the same store the
//! API uses. They open an existing data dir only (see [`app::open_existing`]).

use std::io::BufRead;

use entity::types::Role;
use sea_orm::DatabaseConnection;

use crate::{
    accounts, app,
    config::{StorageArgs, TokenCommand, UserCommand},
    error::{Error, Result},
    store::{
        tokens::{self, NewToken},
        users::{self, NewUser, UserChanges},
    },
};

async fn open(storage: &StorageArgs) -> Result<DatabaseConnection> {
    Ok(app::open_existing(storage, true).await?.0)
}

/// A time for a listing (or `-`).
fn when(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
}

/// The password to set: read from stdin, or made up (and then printed).
fn password(from_stdin: bool) -> Result<(zeroize::Zeroizing<String>, bool)> {
    if !from_stdin {
        return Ok((accounts::generate_password(), true));
    }
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::io("reading the password from stdin", e))?;
    let password = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
    accounts::validate_password(&password).map_err(|r| Error::invalid("password", r))?;
    Ok((password, false))
}

/// `hostwatch user …`.
pub async fn user(command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Create {
            username,
            role,
            password_stdin,
            storage,
        } => {
            accounts::validate_username(&username).map_err(|r| Error::invalid("username", r))?;
            let db = open(&storage).await?;
            let (password, made) = password(password_stdin)?;
            users::create(
                &db,
                NewUser {
                    username: username.clone(),
                    password_hash: accounts::hash_password(&password)?,
                    role,
                },
            )
            .await?;
            if made {
                println!("{}", password.as_str());
            }
            eprintln!("created user {username} ({role})");
        }
        UserCommand::List { storage } => {
            let db = open(&storage).await?;
            let (rows, _) = users::list(&db, i64::MAX as u64, 0).await?;
            println!(
                "{:<6} {:<24} {:<9} {:<20} LAST LOGIN",
                "ID", "USER", "ROLE", "CREATED"
            );
            for u in rows {
                println!(
                    "{:<6} {:<24} {:<9} {:<20} {}",
                    u.id,
                    u.username,
                    u.role,
                    when(Some(u.created_at)),
                    when(u.last_login_at)
                );
            }
        }
        UserCommand::Passwd {
            username,
            password_stdin,
            storage,
        } => {
            let db = open(&storage).await?;
            let user = users::get_by_name(&db, &username).await?;
            let (password, made) = password(password_stdin)?;
            let changes = UserChanges {
                password_hash: Some(accounts::hash_password(&password)?),
                role: None,
            };
            users::update(&db, user.id, changes).await?;
            if made {
                println!("{}", password.as_str());
            }
            eprintln!("password of {username} changed; its sessions ended");
        }
        UserCommand::Delete { username, storage } => {
            let db = open(&storage).await?;
            let user = users::get_by_name(&db, &username).await?;
            users::delete(&db, user.id).await?;
            eprintln!("deleted user {username} with its tokens and sessions");
        }
    }
    Ok(())
}

/// `hostwatch token …`.
pub async fn token(command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create {
            name,
            user,
            role,
            read_only,
            storage,
        } => {
            let db = open(&storage).await?;
            let owner = users::get_by_name(&db, &user).await?;
            let role = if read_only {
                Role::Viewer
            } else {
                role.unwrap_or(owner.role)
            };
            let (secret, row) = tokens::create(
                &db,
                NewToken {
                    user_id: owner.id,
                    name: &name,
                    role,
                },
            )
            .await?;
            println!("{secret}");
            eprintln!("created token {} ({name}, {role}, user {user})", row.id);
        }
        TokenCommand::List { user, storage } => {
            let db = open(&storage).await?;
            let user_id = match user {
                Some(name) => Some(users::get_by_name(&db, &name).await?.id),
                None => None,
            };
            let (rows, _) = tokens::list(&db, user_id, i64::MAX as u64, 0).await?;
            println!(
                "{:<6} {:<24} {:<16} {:<9} {:<20} LAST USED",
                "ID", "NAME", "USER", "ROLE", "CREATED"
            );
            for t in rows {
                println!(
                    "{:<6} {:<24} {:<16} {:<9} {:<20} {}",
                    t.token.id,
                    t.token.name,
                    t.username.as_deref().unwrap_or("-"),
                    t.effective_role,
                    when(Some(t.token.created_at)),
                    when(t.token.last_used_at)
                );
            }
        }
        TokenCommand::Revoke { id, storage } => {
            let db = open(&storage).await?;
            tokens::revoke(&db, id).await?;
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}
