//! The HTTP edge: routing, extractors, the request middleware, and the one
//! mapping of errors to problem+json. Handlers extract, call one accounts
//! function, and answer.

pub mod error;
pub mod extract;
pub mod metrics;
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

/// What every handler can reach. axum clones the state for every request,
/// so it is one `Arc` (one reference count) rather than a bundle of them.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// Wrap the services.
    pub fn new(services: Services) -> AppState {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind [`AppState`].
pub struct Services {
    /// Core records and sessions.
    pub accounts: Accounts,
    /// Plugin operations and the registry.
    pub plugins: crate::plugins::Plugins,
    /// The database.
    pub db: Db,
    /// Largest accepted body in bytes.
    pub max_body: usize,
    /// Dev mode: fault details in responses.
    pub dev: bool,
    /// Set once start-up (migrations, bootstrap, plugins) is complete.
    pub ready: Arc<AtomicBool>,
    /// Request metrics for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
}

impl Services {
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
        .merge(routes::plugins::router())
        .merge(routes::plugin_paths::router())
        .route_layer(middleware::RouteTagLayer)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::EdgeLayer(Arc::new(middleware::EdgeSettings {
            max_body: state.max_body,
            dev: state.dev,
            metrics: Arc::clone(&state.metrics),
        })))
        .with_state(state)
}

/// A handler that panicked: a 500 problem (inside the edge, so it still
/// carries the request id and gets its log line); the panic is logged.
pub(crate) fn panic_response(
    panic: Box<dyn std::any::Any + Send + 'static>,
) -> axum::response::Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::internal(format!("handler panicked: {message}")).into_response()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_500_problem() {
        let response = panic_response(Box::new("boom"));
        assert_eq!(
            response.status(),
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            response.headers()[axum::http::header::CONTENT_TYPE],
            "application/problem+json"
        );
    }
}
