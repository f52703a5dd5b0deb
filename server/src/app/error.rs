//! The server's one error type: what a client may see, kept apart from the internal detail that is
//! only logged. `http::error` maps it once, at the edge, to a status and an `api::v1::ApiError`.

use crate::agents::AgentError;
use crate::db::DbError;
use api::v1::{LimitAboveCapacity, OvercommitConflict};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A conflict with its own stable code (e.g. `limit-cannot-help`).
    #[error("{message}")]
    CodedConflict { code: &'static str, message: String },
    /// The action would break the cluster's failover plan (409 `would-overcommit`, with figures).
    #[error("{}", .0.message)]
    WouldOvercommit(Box<OvercommitConflict>),
    /// A failure limit above the cluster's capacity, not confirmed (409 `limit-above-capacity`).
    #[error("{}", .0.message)]
    LimitAboveCapacity(Box<LimitAboveCapacity>),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Unavailable(String),
    /// A peer the server called for the client (a host's BMC) failed; `code` says how.
    #[error("{message}")]
    BadGateway { code: &'static str, message: String },
    /// Something failed inside; the client sees a generic message, the log gets the chain.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::CodedConflict { code, message: message.into() }
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        AppError::Internal(Box::new(error))
    }
}

impl From<DbError> for AppError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Conflict(what) => AppError::Conflict(format!("{what} already exists")),
            DbError::Refused(why) => AppError::Conflict(why),
            other => AppError::internal(other),
        }
    }
}

impl From<AgentError> for AppError {
    fn from(error: AgentError) -> Self {
        match error {
            AgentError::NotConnected(_) | AgentError::Disconnected(_) | AgentError::TimedOut { .. } => {
                AppError::Unavailable(error.to_string())
            }
        }
    }
}
