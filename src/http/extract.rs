//! Extractors that carry auth, bodies and list parameters into handlers,
//! each failing with a problem that names what was wrong.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use super::scope;
use crate::accounts::Page;
use crate::auth::Principal;
use crate::validation::FieldError;

/// The authenticated caller (401 otherwise).
pub struct AuthUser(pub Principal);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let value = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer <token>"))?;
        let principal = state.accounts.authenticate(token).await?;
        scope::set_caller(&principal);
        Ok(AuthUser(principal))
    }
}

/// The client's IP address (from the socket; proxies' headers are not trusted).
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(ClientAddr(ip))
    }
}

/// A JSON body, read up to `PLINTH_MAX_BODY` (413 beyond) and parsed with
/// every error located: syntax errors by line and column, type errors,
/// missing and unknown fields by name.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state.max_body).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "request body is required: a JSON object",
            ));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// A body that may be absent or `{}` (POST actions without a payload).
pub struct EmptyBody;

impl FromRequest<AppState> for EmptyBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = read_body(req, state.max_body).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(EmptyBody);
        }
        let value: serde_json::Map<String, serde_json::Value> = parse_json(&bytes)?;
        if let Some(key) = value.keys().next() {
            return Err(ApiError::field(FieldError::new(
                key.clone(),
                "unknown",
                format!("unknown field \"{key}\": this action takes no body or {{}}"),
            )));
        }
        Ok(EmptyBody)
    }
}

pub(crate) async fn read_body(req: Request, max: usize) -> Result<axum::body::Bytes, ApiError> {
    let limited = http_body_util::Limited::new(req.into_body(), max);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large(max))
        }
        Err(e) => Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            format!("could not read request body: {e}"),
        )),
    }
}

/// A required JSON object body (for entity create and update).
pub fn json_object(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "request body is required: a JSON object",
        ));
    }
    parse_json(bytes)
}

/// Any JSON document (custom route bodies); `None` for an empty body.
pub fn json_document(bytes: &[u8]) -> Result<Option<serde_json::Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde::Deserialize::deserialize(&mut de).map_err(|e| json_error(".", e))?;
    de.end().map_err(|e| json_error(".", e))?;
    Ok(Some(value))
}

/// Parse JSON into `T`, turning serde's errors into located 400s.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would also read a struct from an array of its fields in order;
    // every body of this API is an object.
    let first = bytes.iter().position(|b| !b.is_ascii_whitespace());
    if let Some(pos) = first.filter(|p| bytes[*p] != b'{') {
        let (line, column) = locate(bytes, pos);
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            format!(
                "request body must be a JSON object (found something else at line {line} column {column})"
            ),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        json_error(&path, e.into_inner())
    })?;
    de.end().map_err(|e| json_error(".", e))?;
    Ok(value)
}

/// 1-based line and column of byte `offset`.
fn locate(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = offset
        - before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, column)
}

fn json_error(path: &str, e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let (line, column) = (e.line(), e.column());
    let raw = e.to_string();
    // serde appends " at line L column C"; we state the place ourselves.
    let msg = raw
        .rsplit_once(" at line ")
        .map_or(raw.as_str(), |(m, _)| m)
        .to_owned();
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            format!("malformed JSON at line {line} column {column}: {msg}"),
        ),
        Category::Data => {
            let parent = if path == "." {
                String::new()
            } else {
                path.to_owned()
            };
            let (field, code, message) =
                if let Some(name) = between_backticks(&msg, "unknown field `") {
                    // The path already ends with the unknown key in some cases.
                    let field = if parent.ends_with(&name) {
                        parent.clone()
                    } else {
                        join(&parent, &name)
                    };
                    (field, "unknown", format!("unknown field \"{name}\""))
                } else if let Some(name) = between_backticks(&msg, "missing field `") {
                    (join(&parent, &name), "required", "is required".to_owned())
                } else {
                    let field = if parent.is_empty() {
                        "body".to_owned()
                    } else {
                        parent.clone()
                    };
                    (field, "type", msg.clone())
                };
            ApiError::field(FieldError::new(field, code, message))
        }
    }
}

fn between_backticks(msg: &str, prefix: &str) -> Option<String> {
    let rest = msg.strip_prefix(prefix)?;
    rest.split_once('`').map(|(name, _)| name.to_owned())
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// `?limit&offset` plus the extra keys an endpoint accepts; any other key,
/// or a bad number, is a 400 naming it.
pub struct ListQuery {
    /// The page.
    pub page: Page,
    /// Extra accepted parameters, in order.
    pub extra: Vec<(String, String)>,
}

impl ListQuery {
    /// Parse a raw query string.
    pub fn parse(query: Option<&str>, extra_keys: &[&str]) -> Result<ListQuery, ApiError> {
        let mut page = Page {
            limit: 50,
            offset: 0,
        };
        let mut extra = Vec::new();
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "limit" => {
                    page.limit = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=500).contains(n))
                        .ok_or_else(|| {
                            ApiError::field(FieldError::new(
                                "limit",
                                "range",
                                format!("\"{value}\" is not an integer between 1 and 500"),
                            ))
                        })?;
                }
                "offset" => {
                    page.offset = value.parse::<u32>().map_err(|_| {
                        ApiError::field(FieldError::new(
                            "offset",
                            "range",
                            format!("\"{value}\" is not a non-negative integer"),
                        ))
                    })?;
                }
                k if extra_keys.contains(&k) => extra.push((key.into_owned(), value.into_owned())),
                k => {
                    return Err(ApiError::field(FieldError::new(
                        k,
                        "unknown",
                        format!("unknown query parameter \"{k}\""),
                    )));
                }
            }
        }
        Ok(ListQuery { page, extra })
    }
}
