//! The one place where errors become HTTP: every layer's error maps to an
//! RFC 9457 problem (`application/problem+json`) here and nowhere else.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::scope;
use crate::accounts::ServiceError;
use crate::plugins::PluginError;
use crate::runtime::{FaultKind, ScriptFailure};
use crate::validation::FieldError;

/// An HTTP error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
    errors: Vec<FieldError>,
    retry_after: Option<u64>,
    /// Fault details shown only in `--dev` mode; always logged.
    internal: Option<String>,
    /// The plugin whose script answered or failed.
    plugin: Option<String>,
    /// Append the request id to the detail (script faults name it).
    name_request: bool,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(skip_serializing_if = "Option::is_none")]
    plugin: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
}

impl ApiError {
    /// An error with a status and a human sentence.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            internal: None,
            plugin: None,
            name_request: false,
        }
    }

    /// The same error, naming the plugin.
    pub fn with_plugin(mut self, plugin: impl Into<String>) -> ApiError {
        self.plugin = Some(plugin.into());
        self
    }

    /// 400 with field errors.
    pub fn invalid(detail: impl Into<String>, errors: Vec<FieldError>) -> ApiError {
        ApiError {
            errors,
            ..ApiError::new(StatusCode::BAD_REQUEST, detail)
        }
    }

    /// 400 for one bad field.
    pub fn field(error: FieldError) -> ApiError {
        let detail = format!("invalid field {}: {}", error.field, error.message);
        ApiError::invalid(detail, vec![error])
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }

    /// 413.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 500 for a fault; the cause is logged, and shown only in dev mode.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        ApiError {
            internal: Some(cause.to_string()),
            ..ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Invalid { detail, errors } => ApiError::invalid(detail, errors),
            ServiceError::BadRequest(d) => ApiError::new(StatusCode::BAD_REQUEST, d),
            ServiceError::Unauthorized(d) => ApiError::unauthorized(d),
            ServiceError::Forbidden(d) => ApiError::new(StatusCode::FORBIDDEN, d),
            ServiceError::NotFound(d) => ApiError::not_found(d),
            ServiceError::Conflict(d) => ApiError::new(StatusCode::CONFLICT, d),
            ServiceError::RateLimited { retry_after } => ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            },
            ServiceError::Storage(s) => ApiError::internal(s),
            ServiceError::Plugin(p) => ApiError::from(p),
        }
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> ApiError {
        match e {
            PluginError::Invalid { detail, errors } => ApiError::invalid(detail, errors),
            PluginError::BadRequest(d) => ApiError::new(StatusCode::BAD_REQUEST, d),
            PluginError::Forbidden(d) => ApiError::new(StatusCode::FORBIDDEN, d),
            PluginError::NotFound(d) => ApiError::not_found(d),
            PluginError::Conflict(d) => ApiError::new(StatusCode::CONFLICT, d),
            PluginError::NotExposed(d) => ApiError::new(StatusCode::METHOD_NOT_ALLOWED, d),
            PluginError::Script(failure) => ApiError::from(*failure),
            PluginError::LifecycleFailed { plugin, detail } => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, detail).with_plugin(plugin)
            }
            PluginError::Storage(s) => ApiError::internal(s),
        }
    }
}

impl From<ScriptFailure> for ApiError {
    fn from(f: ScriptFailure) -> ApiError {
        let status = StatusCode::from_u16(f.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match f {
            ScriptFailure::Fail {
                plugin, message, ..
            } => ApiError::new(status, message).with_plugin(plugin),
            ScriptFailure::Forbidden { plugin, permission } => {
                ApiError::new(status, format!("missing permission {permission}"))
                    .with_plugin(plugin)
            }
            ScriptFailure::Fault {
                plugin,
                kind,
                error,
            } => {
                // Runtime messages may carry data: they go to the log and the
                // plugin's health (and to the answer only in dev mode).
                let detail = match kind {
                    FaultKind::Runtime => format!("plugin {plugin} failed: script error"),
                    FaultKind::Limit => format!(
                        "plugin {plugin} failed: script limit exceeded ({})",
                        error.message
                    ),
                    FaultKind::Timeout => {
                        format!("plugin {plugin} failed: script time limit exceeded")
                    }
                };
                ApiError {
                    internal: Some(format!("plugin {plugin}: {error}")),
                    name_request: true,
                    ..ApiError::new(status, detail).with_plugin(plugin)
                }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = scope::request_id();
        let mut detail = self.detail;
        if self.name_request
            && let Some(id) = &request_id
        {
            detail = format!("{detail} (request {id})");
        }
        if let Some(cause) = &self.internal {
            tracing::error!(request_id = request_id.as_deref().unwrap_or("-"), "{cause}");
            if scope::dev_mode() {
                detail = format!("{detail}: {cause}");
            }
        }
        let problem = Problem {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: &detail,
            errors: &self.errors,
            plugin: self.plugin.as_deref(),
            request_id,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
