//! `/api/audit`: who changed what, newest first (`?action=` filters).

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, ListQuery};

/// Audit routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/audit", get(list))
}

async fn list(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q = ListQuery::parse(query.as_deref(), &["action"])?;
    let action = q
        .extra
        .into_iter()
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v);
    Ok(axum::Json(
        state.accounts.list_audit(&me, action, q.page).await?,
    ))
}
