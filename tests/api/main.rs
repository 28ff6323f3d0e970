//! Integration tests: the real server on 127.0.0.1:0 with a temp data dir,
//! driven over HTTP (and the CLI binary), one module per feature.

mod helpers;

mod audit;
mod auth;
mod cli;
mod conformance;
mod docs;
mod edge;
mod entities;
mod isolation;
mod lifecycle;
mod lua;
mod plugins;
mod reload;
mod roles;
mod scripting;
mod tenants;
mod tokens;
mod users;
