//! The API's error responses: one JSON shape, `{"error", "message"}`, for every failure.
//!
//! [`ApiError`] is what operations return; [`json_errors`] wraps the whole app so errors raised
//! before an operation runs (unknown route, bad JSON, missing token) get the same shape.

use poem::{Endpoint, IntoResponse, Request, Response, http::StatusCode};
use poem_openapi::{ApiResponse, Object, payload::Json};

use crate::error::Error;

/// The body of every error response.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `not_found`, `validation_failed`.
    pub error: String,
    /// What went wrong and why, for a person.
    pub message: String,
}

impl ErrorBody {
    fn new(error: &str, message: impl Into<String>) -> Json<Self> {
        Json(Self {
            error: error.to_owned(),
            message: message.into(),
        })
    }
}

/// Error responses shared by every operation.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request could not be read (malformed JSON, unknown field, bad parameter).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No valid bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The token may not do this (read-only token on a write).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// A resource with that name already exists.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// A value was read but is not acceptable; the message says which field and why.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// The service failed; details are in its log.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The host could not be reached or did not answer properly over SSH; `error` says how
    /// (`connect`, `timeout`, `auth_failed`, `host_key_mismatch`, `output_too_large`, …).
    #[oai(status = 502)]
    BadGateway(Json<ErrorBody>),
}

impl From<crate::poller::PollError> for ApiError {
    fn from(err: crate::poller::PollError) -> Self {
        use crate::poller::PollError;
        match err {
            PollError::Host { kind, message } => Self::BadGateway(ErrorBody::new(kind, message)),
            PollError::Refused(m) => Self::Conflict(ErrorBody::new("refused", m)),
            PollError::Service(e) => e.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match err {
            Error::BadRequest(m) => Self::BadRequest(ErrorBody::new("bad_request", m)),
            Error::Invalid { .. } => {
                Self::Unprocessable(ErrorBody::new("validation_failed", err.to_string()))
            }
            Error::NotFound(m) => Self::NotFound(ErrorBody::new("not_found", m)),
            Error::Conflict(m) => Self::Conflict(ErrorBody::new("conflict", m)),
            Error::ReadOnly => Self::Forbidden(ErrorBody::new("forbidden", err.to_string())),
            Error::Crypto(_) | Error::Db(_) | Error::Io { .. } => {
                tracing::error!(error = %err, "request failed");
                Self::Internal(ErrorBody::new(
                    "internal",
                    "internal error; see the service log",
                ))
            }
        }
    }
}

/// The API's result type.
pub type ApiResult<T> = Result<T, ApiError>;

fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        502 => "bad_gateway",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "validation_failed",
        _ if status.is_client_error() => "client_error",
        _ => "internal",
    }
}

/// Gives every error response the JSON shape, whatever raised it.
pub async fn json_errors<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => err.into_response(),
    };
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(resp);
    }
    let is_json = resp
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(resp);
    }
    let text = resp.into_body().into_string().await.unwrap_or_default();
    let message = match status.as_u16() {
        401 if text.trim().is_empty() || text.contains("authorization") => {
            "missing or invalid token: send Authorization: Bearer <token>".to_owned()
        }
        404 if text.trim().is_empty() || text == "not found" => "no such route".to_owned(),
        500..=599 => {
            tracing::error!(%status, body = %text, "request failed");
            "internal error; see the service log".to_owned()
        }
        _ if text.trim().is_empty() => status.canonical_reason().unwrap_or("error").to_owned(),
        _ => text,
    };
    let body = serde_json::json!({ "error": code_for(status), "message": message });
    Ok(Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .body(body.to_string()))
}
