//! The edge of every request: request id, early 413 by `Content-Length`,
//! and one log line with method, route, status, latency, request id and
//! tenant.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::scope::{self, RequestScope};

const REQUEST_ID: &str = "x-request-id";

/// Outermost middleware.
pub async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    // Keep a caller's id when it is short and printable, so traces line up.
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let method = req.method().clone();
    let declared_len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let max = state.max_body;
    let too_large = declared_len.is_some_and(|n| n > max as u64);

    scope::run(RequestScope::new(id.clone(), state.dev), async move {
        let mut response = if too_large {
            // Answered before reading a byte of the body.
            ApiError::too_large(max).into_response()
        } else {
            next.run(req).await
        };
        if let Ok(v) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID, v);
        }
        let (route, tenant) = scope::take_recorded();
        let status = response.status().as_u16();
        let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        tracing::info!(
            target: "plinth::http",
            method = %method,
            route = route.as_deref().unwrap_or("-"),
            status,
            latency_us,
            request_id = %id,
            tenant = tenant.as_deref().unwrap_or("-"),
            "request"
        );
        response
    })
    .await
}

/// Runs after routing: records the matched route template for the log line.
pub async fn record_route(req: Request, next: Next) -> Response {
    if let Some(path) = req.extensions().get::<MatchedPath>() {
        scope::set_route(path.as_str());
    }
    next.run(req).await
}
