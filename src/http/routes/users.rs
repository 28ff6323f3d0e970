//! `/api/users`: a tenant's users.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::accounts::{NewUser, UserPatch};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, JsonBody, ListQuery};

/// User routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", get(list).post(create))
        .route("/api/users/{id}", get(read).patch(update).delete(remove))
}

async fn list(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q = ListQuery::parse(query.as_deref(), &[])?;
    Ok(axum::Json(state.accounts.list_users(&me, q.page).await?))
}

async fn create(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    JsonBody(body): JsonBody<NewUser>,
) -> Result<impl IntoResponse, ApiError> {
    let user = state.accounts.create_user(&me, body).await?;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

async fn read(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.accounts.get_user(&me, id).await?))
}

async fn update(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UserPatch>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(state.accounts.update_user(&me, id, body).await?))
}

async fn remove(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.accounts.delete_user(&me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
