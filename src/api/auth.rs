//! Authentication for every `/api/v1` operation: a bearer token (`Authorization: Bearer hw_…`)
//! or a browser session cookie (`hostwatch_session`, from `POST /api/v1/session`), and the
//! role checks operations make.

use entity::types::Role;
use poem::Request;
use poem_openapi::{
    SecurityScheme,
    auth::{ApiKey, Bearer},
};

use crate::{
    api::error::Unauthorized,
    error::{Error, Result},
    services::Services,
    store::{
        sessions,
        tokens::{self, Principal},
    },
};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hostwatch_session";

/// `Authorization: Bearer <token>`; tokens come from `POST /api/v1/tokens`,
/// `hostwatch token create`, or the admin token written on first start.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "hw_…", checker = "check_token")]
pub struct BearerToken(pub Principal);

/// The session cookie a browser gets from `POST /api/v1/session`.
#[derive(SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "hostwatch_session",
    key_in = "cookie",
    checker = "check_session"
)]
pub struct SessionCookie(pub Principal);

/// Either way of authenticating.
#[derive(SecurityScheme)]
pub enum Auth {
    Bearer(BearerToken),
    Session(SessionCookie),
}

fn services(req: &Request) -> &Services {
    req.data::<Services>()
        .expect("Services is attached to every route")
}

fn lookup_failed(err: &Error) -> poem::Error {
    tracing::error!(error = %err, "credential lookup failed");
    poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
}

async fn check_token(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    // A write was authenticated before its body was read (see `guard`).
    if let Some(principal) = req.extensions().get::<Principal>() {
        return Ok(principal.clone());
    }
    match tokens::authenticate(&services(req).db, &bearer.token).await {
        Ok(Some(principal)) => Ok(principal),
        Ok(None) => Err(Unauthorized.into()),
        Err(err) => Err(lookup_failed(&err)),
    }
}

async fn check_session(req: &Request, cookie: ApiKey) -> poem::Result<Principal> {
    if let Some(principal) = req.extensions().get::<Principal>() {
        return Ok(principal.clone());
    }
    match sessions::authenticate(&services(req).db, &cookie.key).await {
        Ok(Some(principal)) => Ok(principal),
        Ok(None) => Err(Unauthorized.into()),
        Err(err) => Err(lookup_failed(&err)),
    }
}

impl Auth {
    /// Who made the request.
    pub fn principal(&self) -> &Principal {
        match self {
            Self::Bearer(BearerToken(p)) | Self::Session(SessionCookie(p)) => p,
        }
    }

    /// Refuses the request unless its principal has at least `role`.
    pub fn require(&self, role: Role) -> Result<()> {
        let p = self.principal();
        if p.role >= role {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this needs the {role} role; {} has {}",
                p.who(),
                p.role
            )))
        }
    }

    /// Refuses viewers: call first in every operation that changes what is monitored.
    pub fn require_write(&self) -> Result<()> {
        self.require(Role::Operator)
    }

    /// Refuses all but admins: users and tokens.
    pub fn require_admin(&self) -> Result<()> {
        self.require(Role::Admin)
    }
}
