//! The accounts layer's error: what a caller did wrong, or a storage fault.
//! `http::error` maps each variant to its status once.

use crate::storage::StorageError;
use crate::validation::FieldError;

/// An accounts operation that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Input failed validation (400 with `errors`).
    #[error("{detail}")]
    Invalid {
        /// Summary sentence.
        detail: String,
        /// One entry per bad field.
        errors: Vec<FieldError>,
    },
    /// A request that breaks a rule (400 without field errors).
    #[error("{0}")]
    BadRequest(String),
    /// Missing or bad credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such record in the caller's tenant (404).
    #[error("{0}")]
    NotFound(String),
    /// A unique value is taken (409).
    #[error("{0}")]
    Conflict(String),
    /// Too many failed logins (429).
    #[error("too many failed login attempts; retry after {retry_after} seconds")]
    RateLimited {
        /// Seconds until the next attempt is allowed.
        retry_after: u64,
    },
    /// A storage fault (500).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A plugin operation inside an accounts operation failed.
    #[error(transparent)]
    Plugin(#[from] crate::plugins::PluginError),
}

impl ServiceError {
    /// A 400 for one bad field.
    pub fn field(error: FieldError) -> ServiceError {
        ServiceError::Invalid {
            detail: format!("invalid field {}: {}", error.field, error.message),
            errors: vec![error],
        }
    }

    /// A 400 for several bad fields (none if the list is empty).
    pub fn fields(errors: Vec<FieldError>) -> Result<(), ServiceError> {
        if errors.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        Err(ServiceError::Invalid {
            detail: format!("invalid fields: {}", names.join(", ")),
            errors,
        })
    }

    /// The one 403 for a missing permission.
    pub fn missing_permission(permission: &str) -> ServiceError {
        ServiceError::Forbidden(format!("missing permission {permission}"))
    }
}
