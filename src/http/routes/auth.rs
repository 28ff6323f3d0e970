//! `/api/auth/*`: login, refresh, logout, me.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;

use crate::accounts::LoginRequest;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, ClientAddr, JsonBody};

/// Auth routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/refresh", post(refresh))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(body): JsonBody<LoginRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.accounts.login(body, addr).await?))
}

async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(
        state.accounts.refresh(body.refresh_token).await?,
    ))
}

async fn logout(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<impl IntoResponse, ApiError> {
    state.accounts.logout(&me, body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller with effective permissions: served from the principal snapshot.
async fn me(AuthUser(me): AuthUser) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        me.inner.me_json.clone(),
    )
}
