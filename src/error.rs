//! The service's error type, and its one mapping to HTTP statuses.
//!
//! Every fallible operation below the API returns [`Error`]; the API turns it into the JSON body
//! `{"error": "<code>", "message": "<what and why>"}` in exactly one place
//! ([`crate::api::error::ApiError`]). Internal failures are logged in full and answered with a
//! generic message, so database details never reach a client.

use sea_orm::{DbErr, SqlErr};

/// What went wrong, classified by who can fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The service is configured in a way it cannot run with; the message says what to change.
    #[error("{0}")]
    Config(String),
    /// The client sent something that cannot be read at all.
    #[error("{0}")]
    BadRequest(String),
    /// The client sent a well-formed value that is not acceptable.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what exists (a duplicate name).
    #[error("{0}")]
    Conflict(String),
    /// The credentials given are wrong (a login).
    #[error("{0}")]
    Unauthenticated(String),
    /// The principal's role does not allow this; the message says which role it needs.
    #[error("{0}")]
    Forbidden(String),
    /// A secret could not be sealed or opened: a wrong or unusable master key, a value sealed
    /// by another key or for another purpose, a key that cannot be generated or decoded.
    #[error("secret store: {0}")]
    Secret(String),
    /// Something stored cannot be read back (JSON written by hand, a value out of range).
    #[error("stored {what} is unreadable: {reason}")]
    StoredData { what: String, reason: String },
    /// TLS could not be set up (the crypto provider or the root store).
    #[error("TLS set-up: {0}")]
    Tls(String),
    /// The job scheduler refused a change or failed.
    #[error("scheduler: {0}")]
    Scheduler(#[from] tokio_cron_scheduler::JobSchedulerError),
    /// The probe run on this machine (`hostwatch probe`) failed.
    #[error("probe: {0}")]
    Probe(String),
    /// Leader-only work was refused: another node holds the lease (or this node's expired).
    #[error("this node does not hold the lease: another node polls, checks and delivers now")]
    NotLeader,
    /// Something hostwatch relies on did not hold (a bug, or a task that stopped).
    #[error("internal: {0}")]
    Internal(String),
    /// A database failure.
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// A file or socket failure.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl Error {
    /// A validation failure of one field.
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// Stored data that cannot be read back.
    pub fn stored(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::StoredData {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// An I/O failure with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// Turns a unique-constraint violation into a conflict with the given message; other database
    /// errors stay as they are.
    pub fn conflict_on_unique(err: DbErr, message: impl Into<String>) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => Self::Conflict(message.into()),
            _ => Self::Db(err),
        }
    }
}

/// The service's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
