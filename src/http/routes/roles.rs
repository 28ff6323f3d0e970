//! `/api/roles`, `/api/roles/{id}/permissions` and `/api/permissions`.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use crate::accounts::{NewRole, RolePatch};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, JsonBody, ListQuery};

/// Role and permission routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/roles", get(list).post(create))
        .route("/api/roles/{id}", get(read).patch(update).delete(remove))
        .route(
            "/api/roles/{id}/permissions",
            get(read_permissions).put(replace_permissions),
        )
        .route("/api/permissions", get(catalog))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermissionsBody {
    permissions: Vec<String>,
}

async fn list(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let page = ListQuery::parse(query.as_deref(), &[])?.page;
    Ok(axum::Json(state.accounts.list_roles(&me, page).await?))
}

async fn create(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    JsonBody(body): JsonBody<NewRole>,
) -> Result<impl IntoResponse, ApiError> {
    let role = state.accounts.create_role(&me, body).await?;
    Ok((StatusCode::CREATED, axum::Json(role)))
}

async fn read(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.accounts.get_role(&me, id).await?))
}

async fn update(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RolePatch>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.accounts.update_role(&me, id, body).await?))
}

async fn remove(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.accounts.delete_role(&me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn read_permissions(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let permissions = state.accounts.role_permissions(&me, id).await?;
    Ok(axum::Json(json!({"permissions": permissions})))
}

async fn replace_permissions(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PermissionsBody>,
) -> Result<impl IntoResponse, ApiError> {
    let permissions = state
        .accounts
        .set_role_permissions(&me, id, body.permissions)
        .await?;
    Ok(axum::Json(json!({"permissions": permissions})))
}

async fn catalog(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<impl IntoResponse, ApiError> {
    let items = state.accounts.list_permissions(&me).await?;
    Ok(axum::Json(json!({"items": items})))
}
