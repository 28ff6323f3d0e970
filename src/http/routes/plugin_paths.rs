//! Everything under `/api/{plugin}/…`: a plugin's custom routes
//! (`[[routes]]`, answered by scripts) first, then the CRUD generated from
//! its entities (`/api/{plugin}/{entity}[/{id}]`). Core paths are static
//! and take precedence in the router.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, json_document, json_object, read_body};
use crate::http::scope;
use crate::plugins::manifest::RouteMatch;
use crate::plugins::{PluginError, PluginVersion};
use crate::runtime::routes::{ResponseBody, RouteRequest, RouteResponse};

/// Plugin paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/{plugin}/{entity}", any(dispatch))
        .route("/api/{plugin}/{entity}/{id}", any(dispatch))
        .route("/api/{plugin}/{entity}/{id}/{*rest}", any(dispatch))
}

fn not_allowed(method: &Method, path: &str, allowed: &[&str]) -> ApiError {
    let mut allowed: Vec<&str> = allowed.to_vec();
    allowed.sort_unstable();
    allowed.dedup();
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {method} is not allowed on {path} (allowed: {})",
            allowed.join(", ")
        ),
    )
}

async fn dispatch(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    req: Request,
) -> Result<Response, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let segments: Vec<String> = path
        .trim_start_matches("/api/")
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let plugin = segments[0].as_str();
    let version = state
        .plugins
        .registry()
        .get(plugin)
        .ok_or_else(|| PluginError::unknown_plugin(plugin))?;
    let rest: Vec<&str> = segments[1..].iter().map(String::as_str).collect();
    let matched = version.manifest.match_route(method.as_str(), &rest);
    let is_entity = version.manifest.entity(rest[0]).is_some();
    match (matched, rest.len()) {
        (RouteMatch::Found { index, params }, _) => {
            scope::set_custom_route(format!(
                "/api/{}{}",
                version.manifest.name, version.manifest.routes[index].path
            ));
            custom(&state, &me, version, index, params, req).await
        }
        (RouteMatch::OtherMethods(allowed), n) if !is_entity || n > 2 => {
            Err(not_allowed(&method, &path, &allowed))
        }
        (_, 1) => {
            let entity = rest[0].to_owned();
            match method {
                Method::GET => {
                    let query = req.uri().query().map(str::to_owned);
                    let list = state
                        .plugins
                        .list_records(&me, plugin, &entity, query)
                        .await?;
                    Ok(axum::Json(list).into_response())
                }
                Method::POST => {
                    let body = json_object(&read_body(req, state.max_body).await?)?;
                    let record = state
                        .plugins
                        .create_record(&me, plugin, &entity, body, scope::request_id())
                        .await?;
                    Ok((StatusCode::CREATED, axum::Json(record)).into_response())
                }
                _ => Err(not_allowed(&method, &path, &["GET", "POST"])),
            }
        }
        (_, 2) => {
            let (entity, id) = (rest[0].to_owned(), rest[1].to_owned());
            match method {
                Method::GET => {
                    let record = state.plugins.get_record(&me, plugin, &entity, id).await?;
                    Ok(axum::Json(record).into_response())
                }
                Method::PATCH => {
                    let body = json_object(&read_body(req, state.max_body).await?)?;
                    let record = state
                        .plugins
                        .update_record(&me, plugin, &entity, id, body, scope::request_id())
                        .await?;
                    Ok(axum::Json(record).into_response())
                }
                Method::DELETE => {
                    state
                        .plugins
                        .delete_record(&me, plugin, &entity, id, scope::request_id())
                        .await?;
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                _ => Err(not_allowed(&method, &path, &["DELETE", "GET", "PATCH"])),
            }
        }
        _ => Err(ApiError::not_found(format!("no route for {method} {path}"))),
    }
}

/// A custom route: the request as `req`, the handler's answer as the response.
async fn custom(
    state: &AppState,
    me: &crate::auth::Principal,
    version: std::sync::Arc<PluginVersion>,
    index: usize,
    params: Vec<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let mut query: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        query.retain(|(name, _)| *name != k);
        query.push((k.into_owned(), v.into_owned()));
    }
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(name, _)| *name != axum::http::header::AUTHORIZATION)
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = json_document(&read_body(req, state.max_body).await?)?;
    let request = RouteRequest {
        method,
        path,
        params,
        query,
        headers,
        body,
    };
    let answer = state
        .plugins
        .call_route(me, version, index, request, scope::request_id())
        .await?;
    Ok(into_response(answer))
}

fn into_response(answer: RouteResponse) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = match answer.body {
        ResponseBody::Empty => status.into_response(),
        ResponseBody::Json(v) => (status, axum::Json(v)).into_response(),
        ResponseBody::Text(t) => (status, t).into_response(),
    };
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        // Names and values were checked by the runtime (inside the
        // transaction, so a bad one rolled back); this cannot fail.
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) else {
            continue;
        };
        headers.insert(name, value);
    }
    response
}
