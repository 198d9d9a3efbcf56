//! `/session`: logging in from a browser. A user name and password open a session held in an
//! HttpOnly, SameSite=Strict cookie (Secure over HTTPS) for the dashboard; the API then takes
//! the cookie where it takes a token. Logging out ends it.

use chrono::{DateTime, Utc};
use entity::types::Role;
use poem::{Request, http::header};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, payload::Json};

use crate::{
    accounts,
    api::{
        ApiResult, ApiTags, Auth,
        auth::SESSION_COOKIE,
        guard::session_cookie,
        status::{BadRequest, Forbidden, Invalid, UnsupportedMediaType},
        ts,
    },
    error::Error,
    services::Services,
    store::{sessions, tokens::Via, users},
};

/// How long a session lasts.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;

/// A login.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Login {
    #[oai(validator(min_length = 1, max_length = 64))]
    pub username: String,
    /// Write-only.
    #[oai(write_only, validator(min_length = 1, max_length = 256))]
    pub password: String,
}

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum AuthKind {
    Token,
    Session,
}

/// Who is logged in.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SessionInfo {
    pub username: String,
    pub role: Role,
    pub via: AuthKind,
    /// When a session ends (none for a token).
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(ApiResponse)]
pub enum LoginResponse {
    /// Logged in; the cookie is set.
    #[oai(status = 200)]
    Ok(Json<SessionInfo>, #[oai(header = "Set-Cookie")] String),
}

#[derive(ApiResponse)]
pub enum WhoAmIResponse {
    #[oai(status = 200)]
    Ok(Json<SessionInfo>),
}

#[derive(ApiResponse)]
pub enum LogoutResponse {
    /// The session (if any) ended; the cookie is cleared.
    #[oai(status = 204)]
    LoggedOut(#[oai(header = "Set-Cookie")] String),
}

/// The cookie attributes: never readable by scripts, never sent cross-site, HTTPS-only when
/// served over HTTPS.
fn cookie(req: &Request, value: &str, max_age_s: i64) -> String {
    let secure = if req.scheme() == &poem::http::uri::Scheme::HTTPS {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    )
}

/// Whether a login comes from this service's own pages or from no page at all (a script): a
/// login posted by another site would log the browser into the attacker's account.
fn acceptable_origin(req: &Request) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    match (origin.to_str().ok().and_then(|o| o.split_once("://")), host) {
        (Some((_, rest)), Some(host)) => rest == host,
        _ => false,
    }
}

/// Logging in and out.
pub struct SessionApi(pub Services);

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Accounts")]
impl SessionApi {
    /// Log in
    ///
    /// Checks the user name and password and sets the `hostwatch_session` cookie (HttpOnly,
    /// SameSite=Strict, Secure over HTTPS) for 12 hours. Wrong credentials get 401 without
    /// saying which part was wrong.
    #[oai(path = "/session", method = "post", operation_id = "login")]
    async fn login(
        &self,
        req: &Request,
        body: Json<Login>,
    ) -> ApiResult<LoginResponse, (BadRequest, Forbidden, Invalid, UnsupportedMediaType)> {
        if !acceptable_origin(req) {
            return Err(
                Error::Forbidden("a login must come from this service's own pages".into()).into(),
            );
        }
        let db = &self.0.db;
        let user = users::find_by_name(db, &body.0.username).await?;
        let password = body.0.password.clone();
        let checked = match user {
            Some(u) => {
                let hash = u.password_hash.clone();
                let ok = tokio::task::spawn_blocking(move || {
                    accounts::verify_password(&password, &hash)
                })
                .await
                .unwrap_or(false);
                ok.then_some(u)
            }
            None => {
                let _ =
                    tokio::task::spawn_blocking(move || accounts::verify_nobody(&password)).await;
                None
            }
        };
        let Some(user) = checked else {
            tracing::warn!(user = %crate::logs::Untrusted(&body.0.username), remote = %req.remote_addr(), "login refused");
            return Err(Error::Unauthenticated("wrong user name or password".into()).into());
        };
        let (secret, session) = sessions::create(db, user.id, SESSION_TTL_MS).await?;
        users::record_login(db, user.id).await?;
        tracing::info!(user = %user.username, "logged in");
        Ok(LoginResponse::Ok(
            Json(SessionInfo {
                username: user.username,
                role: user.role,
                via: AuthKind::Session,
                expires_at: Some(ts(session.expires_at)),
            }),
            cookie(req, &secret, SESSION_TTL_MS / 1000),
        ))
    }

    /// Who am I
    ///
    /// The user and role the request authenticated as.
    #[oai(path = "/session", method = "get", operation_id = "get_session")]
    async fn whoami(&self, auth: Auth) -> ApiResult<WhoAmIResponse> {
        let p = auth.principal();
        let (via, expires_at) = match p.via {
            Via::Token { .. } => (AuthKind::Token, None),
            Via::Session { id } => (
                AuthKind::Session,
                sessions::expiry(&self.0.db, id).await?.map(ts),
            ),
        };
        Ok(WhoAmIResponse::Ok(Json(SessionInfo {
            username: p.username.clone(),
            role: p.role,
            via,
            expires_at,
        })))
    }

    /// Log out
    ///
    /// Ends the session of the cookie sent (if any) and clears the cookie.
    #[oai(path = "/session", method = "delete", operation_id = "logout")]
    async fn logout(&self, req: &Request) -> ApiResult<LogoutResponse> {
        if let Some(secret) = session_cookie(req) {
            sessions::end(&self.0.db, &secret).await?;
        }
        Ok(LogoutResponse::LoggedOut(cookie(req, "", 0)))
    }
}
