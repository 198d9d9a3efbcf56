//! The API's error responses: one JSON shape, `{"error", "message"}`, for every failure, and
//! per operation exactly the error statuses it can answer.
//!
//! An operation returns `ApiResult<T, S>`, where `S` lists its error statuses as marker types
//! (`(BadRequest, NotFound)`); every operation can also answer 401 (no valid token) and 500.
//! [`crate::error::Error`] maps to a status in one place ([`Failure::from`]). Errors raised
//! before an operation runs (an unknown route, unreadable JSON, a missing token) are turned
//! into the same shape by [`json_errors`], by their type.

use std::marker::PhantomData;

use poem::{Endpoint, IntoResponse, Request, Response, http::StatusCode};
use poem_openapi::{
    ApiResponse, Object,
    payload::Json,
    registry::{MetaResponses, Registry},
};

use crate::{error::Error, poller::PollError};

/// The body of every error response.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `not_found`, `validation_failed`.
    pub error: String,
    /// What went wrong and why, for a person.
    pub message: String,
}

/// Every error status the API answers, with what it means; each operation's spec lists the
/// ones it can return. Only its description is used: the responses are built by [`Failure`].
#[allow(dead_code)]
#[derive(Debug, ApiResponse)]
enum AllErrors {
    /// The request could not be read (malformed JSON, unknown field, bad parameter).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No valid bearer token.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The token may not do this (a read-only token on a write).
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request conflicts with what exists (a duplicate name), or the host's state refuses
    /// it (`error` is `refused`).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The body is not sent as JSON (`Content-Type: application/json`).
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
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

/// An error status an operation can answer.
pub trait Status {
    const CODE: u16;
}

/// The error statuses an operation can answer besides 401 and 500: a tuple of [`Status`]
/// markers.
pub trait Statuses {
    fn contains(code: u16) -> bool;
}

/// Markers of the error statuses.
pub mod status {
    macro_rules! markers {
        ($($(#[$doc:meta])* $name:ident = $code:literal,)*) => {
            $(
                $(#[$doc])*
                #[derive(Debug)]
                pub struct $name;
                impl super::Status for $name {
                    const CODE: u16 = $code;
                }
            )*
        };
    }

    markers! {
        /// 400: a parameter or the body could not be read.
        BadRequest = 400,
        /// 403: the token is read-only.
        Forbidden = 403,
        /// 404: the resource does not exist.
        NotFound = 404,
        /// 409: a duplicate, or a state that refuses the request.
        Conflict = 409,
        /// 422: a value is not acceptable.
        Invalid = 422,
        /// 415: the body is not sent as JSON.
        UnsupportedMediaType = 415,
        /// 502: the host did not answer properly over SSH.
        BadGateway = 502,
    }
}

macro_rules! statuses_for_tuples {
    ($(($($t:ident),*))*) => {
        $(
            impl<$($t: Status),*> Statuses for ($($t,)*) {
                #[allow(unused_variables)] // by `()`, which lists none
                fn contains(code: u16) -> bool {
                    false $(|| $t::CODE == code)*
                }
            }
        )*
    };
}

statuses_for_tuples! {
    ()
    (A)
    (A, B)
    (A, B, C)
    (A, B, C, D)
    (A, B, C, D, E)
    (A, B, C, D, E, F)
    (A, B, C, D, E, F, G)
}

/// Statuses every operation can answer: 401 (every operation needs a token) and 500.
fn always(code: u16) -> bool {
    code == 401 || code == 500
}

/// A failed operation: its status, code and message.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn into_response(self) -> Response {
        json_response(self.status, self.code, &self.message)
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        match err {
            Error::BadRequest(m) => Self::new(StatusCode::BAD_REQUEST, "bad_request", m),
            Error::Invalid { .. } => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                err.to_string(),
            ),
            Error::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "not_found", m),
            Error::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            Error::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
            Error::Unauthenticated(m) => Self::new(StatusCode::UNAUTHORIZED, "unauthorized", m),
            Error::NotLeader => Self::new(StatusCode::CONFLICT, "not_leader", err.to_string()),
            Error::Config(_)
            | Error::Secret(_)
            | Error::StoredData { .. }
            | Error::Tls(_)
            | Error::Scheduler(_)
            | Error::Probe(_)
            | Error::Internal(_)
            | Error::Db(_)
            | Error::Io { .. } => {
                tracing::error!(error = %crate::logs::Untrusted(&err), "request failed");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the service log",
                )
            }
        }
    }
}

impl From<PollError> for Failure {
    fn from(err: PollError) -> Self {
        match err {
            PollError::Host { kind, message } => {
                Self::new(StatusCode::BAD_GATEWAY, kind.as_str(), message)
            }
            PollError::Refused(m) => Self::new(StatusCode::CONFLICT, "refused", m),
            PollError::Service(e) => e.into(),
        }
    }
}

/// What an operation that answers the error statuses `S` (and 401, 500) returns on failure.
pub struct Fail<S> {
    failure: Failure,
    statuses: PhantomData<fn() -> S>,
}

impl<S> std::fmt::Debug for Fail<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.failure.fmt(f)
    }
}

impl<S: Statuses> Fail<S> {
    fn new(failure: Failure) -> Self {
        let code = failure.status.as_u16();
        // An answer the operation's spec does not list is a bug in the operation.
        debug_assert!(
            always(code) || S::contains(code),
            "status {code} is not in this operation's responses: {failure:?}"
        );
        Self {
            failure,
            statuses: PhantomData,
        }
    }
}

impl<S: Statuses> From<Error> for Fail<S> {
    fn from(err: Error) -> Self {
        Self::new(err.into())
    }
}

impl<S: Statuses> From<PollError> for Fail<S> {
    fn from(err: PollError) -> Self {
        Self::new(err.into())
    }
}

impl<S: Statuses> ApiResponse for Fail<S> {
    fn meta() -> MetaResponses {
        let mut meta = AllErrors::meta();
        meta.responses
            .retain(|r| r.status.is_some_and(|c| always(c) || S::contains(c)));
        meta
    }

    fn register(registry: &mut Registry) {
        AllErrors::register(registry);
    }
}

impl<S: Send> IntoResponse for Fail<S> {
    fn into_response(self) -> Response {
        self.failure.into_response()
    }
}

impl<S> From<Fail<S>> for poem::Error {
    fn from(fail: Fail<S>) -> Self {
        poem::Error::from_response(fail.failure.into_response())
    }
}

/// The API's result type: `T`, or a failure with one of `S`'s statuses (or 401, 500).
pub type ApiResult<T, S = ()> = Result<T, Fail<S>>;

/// An error response of the API's shape, for refusals made outside the operations.
pub fn refusal(status: StatusCode, code: &str, message: impl AsRef<str>) -> Response {
    json_response(status, code, message.as_ref())
}

fn json_response(status: StatusCode, code: &str, message: &str) -> Response {
    let mut resp = Response::builder().status(status).finish();
    set_json_body(&mut resp, code, message);
    resp
}

/// Gives `resp` the error body, keeping its status and other headers.
fn set_json_body(resp: &mut Response, code: &str, message: &str) {
    let body = serde_json::json!({ "error": code, "message": message });
    resp.headers_mut().insert(
        poem::http::header::CONTENT_TYPE,
        poem::http::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp.headers_mut()
        .remove(poem::http::header::CONTENT_LENGTH);
    resp.set_body(body.to_string());
}

/// The error code and message of an error raised outside the operations, by its type.
fn describe(err: &poem::Error) -> (&'static str, String) {
    use poem_openapi::error::{
        AuthorizationError, ContentTypeError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    };
    if err.is::<AuthorizationError>() || err.is::<Unauthorized>() {
        return ("unauthorized", UNAUTHORIZED_MESSAGE.into());
    }
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        return ("bad_request", e.to_string());
    }
    if err.is::<ParseParamError>() || err.is::<ParsePathError>() {
        return ("bad_request", err.to_string());
    }
    if err.is::<ContentTypeError>() {
        return ("unsupported_media_type", err.to_string());
    }
    if err.is::<poem::error::NotFoundError>() {
        return ("not_found", "no such route".into());
    }
    if err.is::<poem::error::MethodNotAllowedError>() {
        return (
            "method_not_allowed",
            "this route does not take that method".into(),
        );
    }
    let status = err.status();
    let code = match status.as_u16() {
        400 => "bad_request",
        413 => "payload_too_large",
        _ if status.is_client_error() => "client_error",
        _ => "internal",
    };
    let message = if status.is_server_error() {
        tracing::error!(%status, error = %crate::logs::Untrusted(err), "request failed");
        "internal error; see the service log".to_owned()
    } else {
        err.to_string()
    };
    (code, message)
}

/// A token that is unknown or revoked (raised by the security scheme's checker).
#[derive(Debug, thiserror::Error)]
#[error("unknown or revoked token")]
pub struct Unauthorized;

/// What a request without valid credentials is told.
pub const UNAUTHORIZED_MESSAGE: &str = "missing or invalid credentials: send \
     Authorization: Bearer <token>, or log in with POST /api/v1/session";

impl poem::error::ResponseError for Unauthorized {
    fn status(&self) -> StatusCode {
        StatusCode::UNAUTHORIZED
    }
}

/// Gives every error response the JSON shape, whatever raised it.
pub async fn json_errors<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        // An operation's failure (or anything else made from a response) carries its response.
        Err(err) if err.is_from_response() => err.into_response(),
        // Raised before an operation ran: told apart by its type; its headers (`Allow`, say)
        // stay.
        Err(err) => {
            let (code, message) = describe(&err);
            let mut resp = err.into_response();
            set_json_body(&mut resp, code, &message);
            return Ok(resp);
        }
    };
    Ok(with_json_body(resp).await)
}

/// An error response that is not JSON (from a handler or middleware outside the API) gets the
/// shape around its text.
async fn with_json_body(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(poem::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let text = resp.into_body().into_string().await.unwrap_or_default();
    let (code, message) = if status.is_server_error() {
        tracing::error!(%status, body = %crate::logs::Untrusted(&text), "request failed");
        ("internal", "internal error; see the service log".to_owned())
    } else if text.trim().is_empty() {
        (
            "client_error",
            status.canonical_reason().unwrap_or("error").to_owned(),
        )
    } else {
        ("client_error", text)
    };
    json_response(status, code, &message)
}

#[cfg(test)]
mod tests {
    use super::{status::*, *};

    fn codes<S: Statuses>() -> Vec<u16> {
        Fail::<S>::meta()
            .responses
            .iter()
            .filter_map(|r| r.status)
            .collect()
    }

    #[test]
    fn an_operation_documents_its_statuses_and_no_others() {
        assert_eq!(codes::<()>(), [401, 500]);
        assert_eq!(codes::<(NotFound, Invalid)>(), [401, 404, 422, 500]);
        assert_eq!(
            codes::<(
                BadRequest,
                Forbidden,
                NotFound,
                Conflict,
                Invalid,
                BadGateway
            )>(),
            [400, 401, 403, 404, 409, 422, 500, 502]
        );
    }

    #[test]
    fn errors_map_to_their_status() {
        let f: Failure = Error::invalid("port", "must be 1 to 65535").into();
        assert_eq!(
            (f.status, f.code, f.message.as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "port: must be 1 to 65535"
            )
        );
        let f: Failure = PollError::Host {
            kind: entity::types::PollErrorKind::Timeout,
            message: "timed out".into(),
        }
        .into();
        assert_eq!((f.status, f.code), (StatusCode::BAD_GATEWAY, "timeout"));
        let f: Failure = Error::Internal("x".into()).into();
        assert_eq!(f.message, "internal error; see the service log");
    }
}
