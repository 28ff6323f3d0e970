//! The HTTP edge: routing, extractors, the request middleware, and the one
//! mapping of errors to problem+json. Handlers extract, call one accounts
//! function, and answer.

pub mod error;
pub mod extract;
mod middleware;
mod routes;
pub mod scope;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::{Method, Uri};
use axum::response::IntoResponse;

use crate::accounts::Accounts;
use crate::storage::Db;
use error::ApiError;

/// What every handler can reach; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Core records and sessions.
    pub accounts: Accounts,
    /// The database.
    pub db: Db,
    /// Largest accepted body in bytes.
    pub max_body: usize,
    /// Dev mode: fault details in responses.
    pub dev: bool,
    /// Set once start-up (migrations, bootstrap, plugins) is complete.
    pub ready: Arc<AtomicBool>,
}

impl AppState {
    /// Whether start-up has completed.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::ops::router())
        .merge(routes::auth::router())
        .merge(routes::tenants::router())
        .merge(routes::users::router())
        .merge(routes::roles::router())
        .merge(routes::audit::router())
        .route_layer(middleware::RouteTagLayer)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::EdgeLayer(Arc::new(middleware::EdgeSettings {
            max_body: state.max_body,
            dev: state.dev,
        })))
        .with_state(state)
}

async fn not_found(method: Method, uri: Uri) -> impl IntoResponse {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> impl IntoResponse {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on {}", uri.path()),
    )
}
