//! Plugins: manifests (the validated model of `plugin-manifests/<name>.toml`),
//! loading them into the database (tables, permissions), and the registry
//! of loaded versions.

pub mod crud;
mod error;
pub mod install;
pub mod loader;
pub mod manifest;
pub mod records;
pub mod registry;
pub mod reload;
mod routes;
pub mod schema;
mod service;

pub use error::PluginError;
pub use registry::{PluginVersion, Registry};
pub use service::{PluginView, Plugins, settings_in};
