//! `/api/tenants`: platform admins manage tenants.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::accounts::{NewTenant, TenantPatch};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, JsonBody, ListQuery};

/// Tenant routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tenants", get(list).post(create))
        .route("/api/tenants/{id}", get(read).patch(update).delete(remove))
}

async fn list(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q = ListQuery::parse(query.as_deref(), &[])?;
    Ok(axum::Json(state.accounts.list_tenants(&me, q.page).await?))
}

async fn create(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    JsonBody(body): JsonBody<NewTenant>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = state.accounts.create_tenant(Some(&me), body).await?;
    Ok((StatusCode::CREATED, axum::Json(tenant)))
}

async fn read(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.accounts.get_tenant(&me, id).await?))
}

async fn update(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<TenantPatch>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(
        state.accounts.update_tenant(&me, id, body).await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.accounts.delete_tenant(&me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
