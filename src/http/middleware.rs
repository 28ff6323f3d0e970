//! The edge of every request, as plain tower services (no per-request boxing
//! of the inner service): request id, early 413 by `Content-Length`, and one
//! log line with method, route, status, latency, request id and tenant.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use super::error::ApiError;
use super::scope::{self, RequestScope};

const REQUEST_ID: &str = "x-request-id";

/// Settings the edge needs.
pub struct EdgeSettings {
    /// Largest accepted body.
    pub max_body: usize,
    /// Dev mode.
    pub dev: bool,
    /// Where each answered request is counted.
    pub metrics: Arc<super::metrics::Metrics>,
}

/// Outermost layer: see the module docs.
#[derive(Clone)]
pub struct EdgeLayer(pub Arc<EdgeSettings>);

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            settings: Arc::clone(&self.0),
        }
    }
}

/// The edge service.
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    settings: Arc<EdgeSettings>,
}

type BoxedResponse = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxedResponse;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> BoxedResponse {
        let start = Instant::now();
        // Keep a caller's id when it is short and printable, so traces line up.
        let id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
        let method = req.method().clone();
        let max = self.settings.max_body;
        let too_large = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > max as u64);
        // Routing (and so the route tag) happens inside the future, within
        // the request's scope.
        let mut inner = self.inner.clone();
        std::mem::swap(&mut self.inner, &mut inner);
        let scope = RequestScope::new(id.clone(), self.settings.dev);
        let settings = Arc::clone(&self.settings);
        Box::pin(scope::run(scope, async move {
            let mut response = if too_large {
                // Answered before reading a byte of the body.
                ApiError::too_large(max).into_response()
            } else {
                let handler = std::pin::pin!(inner.call(req));
                match (CatchUnwind { inner: handler }).await {
                    Ok(result) => result?,
                    Err(panic) => super::panic_response(panic),
                }
            };
            if let Ok(v) = HeaderValue::from_str(&id) {
                response.headers_mut().insert(REQUEST_ID, v);
            }
            let (route, caller) = scope::take_recorded();
            let elapsed = start.elapsed();
            let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            settings.metrics.record(
                method.as_str(),
                route
                    .as_ref()
                    .map_or("unmatched", super::scope::RouteLabel::as_str),
                response.status().as_u16(),
                elapsed,
            );
            tracing::info!(
                target: "plinth::http",
                method = %method,
                route = route.as_ref().map_or("-", super::scope::RouteLabel::as_str),
                status = response.status().as_u16(),
                latency_us,
                request_id = %id,
                tenant = caller.as_ref().map_or("-", |c| c.tenant_slug()),
                "request"
            );
            Ok(response)
        }))
    }
}

/// Route layer: records the matched route template for the log line.
#[derive(Clone, Copy)]
pub struct RouteTagLayer;

impl<S> Layer<S> for RouteTagLayer {
    type Service = RouteTag<S>;

    fn layer(&self, inner: S) -> RouteTag<S> {
        RouteTag(inner)
    }
}

/// The route-tag service.
#[derive(Clone)]
pub struct RouteTag<S>(S);

impl<S> Service<Request> for RouteTag<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> S::Future {
        if let Some(path) = req.extensions().get::<MatchedPath>() {
            scope::set_route(path.clone());
        }
        self.0.call(req)
    }
}

/// Polls a future, turning a panic inside it into an `Err` carrying the
/// panic payload (so a panicking handler answers 500 instead of dropping the
/// connection).
struct CatchUnwind<'a, F> {
    inner: Pin<&'a mut F>,
}

impl<F: Future> Future for CatchUnwind<'_, F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send + 'static>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}
