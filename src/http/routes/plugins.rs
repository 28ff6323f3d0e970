//! `/api/plugins`: the loaded plugins with the caller's tenant status,
//! install / uninstall, settings and health.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, EmptyBody, JsonBody};

/// Plugin routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/plugins", get(list))
        .route("/api/plugins/{name}", get(read))
        .route("/api/plugins/{name}/install", post(install))
        .route("/api/plugins/{name}/uninstall", post(uninstall))
        .route(
            "/api/plugins/{name}/settings",
            get(settings).put(put_settings),
        )
        .route("/api/plugins/{name}/health", get(health))
}

async fn list(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    let items = state.plugins.list(&me).await?;
    Ok(axum::Json(json!({"items": items})))
}

async fn read(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.plugins.get(&me, &name).await?))
}

async fn install(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(name): Path<String>,
    _: EmptyBody,
) -> Result<impl IntoResponse, ApiError> {
    let view = state
        .plugins
        .install(&me, &name, crate::http::scope::request_id())
        .await;
    // Seeded grants change effective permissions from the next request on
    // (also when on_install failed after seeding: nothing is kept, but the
    // cache must not hold a stale view either way).
    state.accounts.invalidate_principals();
    let view = view?;
    Ok(axum::Json(view))
}

async fn uninstall(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(name): Path<String>,
    _: EmptyBody,
) -> Result<impl IntoResponse, ApiError> {
    let view = state
        .plugins
        .uninstall(&me, &name, crate::http::scope::request_id())
        .await?;
    Ok(axum::Json(view))
}

async fn settings(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.plugins.settings(&me, &name).await?))
}

async fn put_settings(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(
        state.plugins.put_settings(&me, &name, body).await?,
    ))
}

async fn health(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.plugins.health(&me, &name)?))
}
