//! Per-request context carried in a task-local: the request id (for every
//! problem body and log line), dev mode, and what the log line needs to know
//! once the handler is done (matched route, tenant). Handlers and the error
//! mapping run in the request's task, so no state is threaded by hand.

use std::cell::RefCell;

use axum::extract::MatchedPath;

use crate::auth::Principal;

/// The route template a request is counted and logged under.
#[derive(Clone)]
pub enum RouteLabel {
    /// The axum route that matched.
    Matched(MatchedPath),
    /// A plugin's custom route (`/api/inventory/item/{id}/restock`).
    Custom(String),
}

impl RouteLabel {
    /// The template.
    pub fn as_str(&self) -> &str {
        match self {
            RouteLabel::Matched(m) => m.as_str(),
            RouteLabel::Custom(s) => s,
        }
    }
}

/// The context of one request.
pub struct RequestScope {
    id: String,
    dev: bool,
    route: RefCell<Option<RouteLabel>>,
    caller: RefCell<Option<Principal>>,
}

tokio::task_local! {
    static SCOPE: RequestScope;
}

impl RequestScope {
    /// A new scope.
    pub fn new(id: String, dev: bool) -> RequestScope {
        RequestScope {
            id,
            dev,
            route: RefCell::new(None),
            caller: RefCell::new(None),
        }
    }
}

/// Run `fut` inside `scope`.
pub async fn run<F: std::future::Future>(scope: RequestScope, fut: F) -> F::Output {
    SCOPE.scope(scope, fut).await
}

/// The current request id.
pub fn request_id() -> Option<String> {
    SCOPE.try_with(|s| s.id.clone()).ok()
}

/// Whether error details go into responses.
pub fn dev_mode() -> bool {
    SCOPE.try_with(|s| s.dev).unwrap_or(false)
}

/// Record the matched route template.
pub fn set_route(route: MatchedPath) {
    let _ = SCOPE.try_with(|s| *s.route.borrow_mut() = Some(RouteLabel::Matched(route)));
}

/// Record a plugin route's template (replacing the axum one).
pub fn set_custom_route(template: String) {
    let _ = SCOPE.try_with(|s| *s.route.borrow_mut() = Some(RouteLabel::Custom(template)));
}

/// Record the authenticated caller (its tenant goes into the log line).
pub fn set_caller(principal: &Principal) {
    let _ = SCOPE.try_with(|s| *s.caller.borrow_mut() = Some(principal.clone()));
}

/// Take what was recorded: (route, caller).
pub fn take_recorded() -> (Option<RouteLabel>, Option<Principal>) {
    SCOPE
        .try_with(|s| (s.route.borrow_mut().take(), s.caller.borrow_mut().take()))
        .unwrap_or((None, None))
}
