//! The plugins layer's error; `http::error` maps it to problem+json.

use crate::storage::StorageError;
use crate::validation::FieldError;

/// A plugin operation that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Input failed validation (400 with `errors`).
    #[error("{detail}")]
    Invalid {
        /// Summary.
        detail: String,
        /// One entry per bad field.
        errors: Vec<FieldError>,
    },
    /// A rule was broken (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing permission, or plugin not installed for the tenant (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such plugin or record (404).
    #[error("{0}")]
    NotFound(String),
    /// The operation is not exposed by the manifest (405).
    #[error("{0}")]
    NotExposed(String),
    /// Unique conflict or referenced row (409).
    #[error("{0}")]
    Conflict(String),
    /// Storage fault (500).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl PluginError {
    /// 403 for a missing permission.
    pub fn missing_permission(permission: &str) -> PluginError {
        PluginError::Forbidden(format!("missing permission {permission}"))
    }

    /// 404 for an unknown plugin.
    pub fn unknown_plugin(name: &str) -> PluginError {
        PluginError::NotFound(format!("no plugin named \"{name}\" is loaded"))
    }
}
