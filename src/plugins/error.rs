//! The plugins layer's error; `http::error` maps it to problem+json.

use crate::runtime::ScriptFailure;
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
    /// A script ended the request: `ctx.fail` (that 4xx), `ctx.require`
    /// (403), a runtime error or limit (500), the time limit (503).
    #[error("{0}")]
    Script(Box<ScriptFailure>),
    /// An `on_install` / `on_uninstall` hook failed (500); a failed
    /// install leaves the plugin FAILED for the tenant.
    #[error("{detail}")]
    LifecycleFailed {
        /// The plugin.
        plugin: String,
        /// What failed.
        detail: String,
    },
    /// Storage fault (500).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl PluginError {
    /// Whether this is a server or script fault (a 5xx), as counted in the
    /// plugin's health `errors`.
    pub fn is_fault(&self) -> bool {
        match self {
            PluginError::Storage(_) | PluginError::LifecycleFailed { .. } => true,
            PluginError::Script(f) => f.status() >= 500,
            _ => false,
        }
    }

    /// 403 for a missing permission.
    pub fn missing_permission(permission: &str) -> PluginError {
        PluginError::Forbidden(format!("missing permission {permission}"))
    }

    /// 404 for an unknown plugin.
    pub fn unknown_plugin(name: &str) -> PluginError {
        PluginError::NotFound(format!("no plugin named \"{name}\" is loaded"))
    }
}
