//! `/api/{plugin}/{entity}[/{id}]`: CRUD generated from plugin manifests.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Map, Value};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, JsonBody};

/// Entity routes (core paths are static and take precedence).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/{plugin}/{entity}", get(list).post(create))
        .route(
            "/api/{plugin}/{entity}/{id}",
            get(read).patch(update).delete(remove),
        )
}

async fn list(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path((plugin, entity)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(
        state
            .plugins
            .list_records(&me, &plugin, &entity, query)
            .await?,
    ))
}

async fn create(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path((plugin, entity)): Path<(String, String)>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<impl IntoResponse, ApiError> {
    let record = state
        .plugins
        .create_record(&me, &plugin, &entity, body)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(record)))
}

async fn read(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path((plugin, entity, id)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(
        state.plugins.get_record(&me, &plugin, &entity, id).await?,
    ))
}

async fn update(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path((plugin, entity, id)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(
        state
            .plugins
            .update_record(&me, &plugin, &entity, id, body)
            .await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path((plugin, entity, id)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .plugins
        .delete_record(&me, &plugin, &entity, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
