//! Bearer-token authentication for every `/api/v1` operation.

use poem::Request;
use poem_openapi::{SecurityScheme, auth::Bearer};

use crate::{
    api::error::Unauthorized,
    error::{Error, Result},
    services::Services,
    store::tokens::{self, Principal},
};

/// `Authorization: Bearer <token>`; tokens come from `hostwatch token create` or the admin
/// token written on first start.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "hw_…", checker = "check_token")]
pub struct Token(pub Principal);

async fn check_token(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    // A write was authenticated before its body was read (see `guard`).
    if let Some(principal) = req.extensions().get::<Principal>() {
        return Ok(principal.clone());
    }
    let state = req
        .data::<Services>()
        .expect("Services is attached to every route");
    match tokens::authenticate(&state.db, &bearer.token).await {
        Ok(Some(principal)) => Ok(principal),
        Ok(None) => Err(Unauthorized.into()),
        Err(err) => {
            tracing::error!(error = %err, "token lookup failed");
            Err(poem::Error::from_status(
                poem::http::StatusCode::INTERNAL_SERVER_ERROR,
            ))
        }
    }
}

impl Token {
    /// Refuses read-only tokens; call first in every operation that changes something.
    pub fn require_write(&self) -> Result<()> {
        if self.0.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }
}
