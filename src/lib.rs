//! plinth: a single-binary, multi-tenant application server extended by
//! scripted plugins.
//!
//! The map, lowest layer first (a module only uses those above it):
//!
//! - [`config`] — flag > env > `plinth.toml` > default; errors name the source.
//! - [`validation`] — field errors and the rules for core identifiers.
//! - [`auth`] — passwords (argon2id), JWTs, refresh-token material, login
//!   rate limiting, the [`auth::Principal`] and RBAC rules.
//! - [`storage`] — SQLite: read pool + one writer, migrations, and every SQL
//!   statement (the seam a second engine would implement).
//! - [`accounts`] — tenants, users, roles, grants, sessions, audit: the rules.
//! - [`plugins`] — manifests: the validated model of a customer's module.
//! - [`runtime`] — plugin scripts: the host API (once, engine-free), the
//!   sandboxed Rhai engine and its thin binding, hooks and custom routes,
//!   limits, located script failures. It works hand in hand with `plugins`:
//!   entity writes run hooks through it, and its `ctx.db` calls the same row
//!   operations as REST.
//! - [`http`] — axum routes, extractors, middleware, problem+json mapping.
//! - [`logging`] — stderr logs, pretty or JSON, written in batches.
//! - [`app`] — wiring: build from a config, serve on a listener.
//! - [`cli`] — subcommands and exit codes.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod http;
pub mod logging;
pub mod plugins;
pub mod runtime;
pub mod storage;
pub mod validation;
