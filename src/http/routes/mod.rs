//! One module per resource, each exposing `router()`.

pub mod audit;
pub mod auth;
pub mod ops;
pub mod plugin_paths;
pub mod plugins;
pub mod roles;
pub mod tenants;
pub mod users;
