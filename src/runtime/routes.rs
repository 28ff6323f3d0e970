//! A custom route: the request as the script's `req` map, the handler's
//! return value as the response (SCRIPTING.md: a map of only `status`
//! 100–599, `body` and `headers` is used as is; anything else is a 200 with
//! that value as the JSON body). Headers are checked here, inside the
//! request's transaction, so a bad one is a script fault that rolls back.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::hooks;
use super::{FaultKind, ScriptError, ScriptFailure};
use crate::plugins::crud::Writer;
use crate::plugins::{PluginError, PluginVersion};

/// The request a route handler sees.
#[derive(Debug, Clone)]
pub struct RouteRequest {
    /// Upper-case method.
    pub method: String,
    /// Full request path.
    pub path: String,
    /// Path parameters by name.
    pub params: Vec<(String, String)>,
    /// Query parameters (the last value of a repeated key wins).
    pub query: Vec<(String, String)>,
    /// Headers, lower-case names, `authorization` left out.
    pub headers: Vec<(String, String)>,
    /// Parsed JSON body; `None` when the body is empty.
    pub body: Option<Value>,
}

impl RouteRequest {
    /// The `req` map a handler receives (built before the transaction, so
    /// the single writer does not wait for it).
    pub fn to_value(&self) -> Value {
        let pairs = |list: &[(String, String)]| -> Value {
            let mut m = Map::new();
            for (k, v) in list {
                m.insert(k.clone(), Value::String(v.clone()));
            }
            Value::Object(m)
        };
        let mut req = Map::new();
        req.insert("method".into(), Value::String(self.method.clone()));
        req.insert("path".into(), Value::String(self.path.clone()));
        req.insert("params".into(), pairs(&self.params));
        req.insert("query".into(), pairs(&self.query));
        req.insert("headers".into(), pairs(&self.headers));
        req.insert("body".into(), self.body.clone().unwrap_or(Value::Null));
        Value::Object(req)
    }
}

/// A route's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseBody {
    /// No body.
    Empty,
    /// A JSON document.
    Json(Value),
    /// Text sent as is (a string body with a non-JSON `content-type`).
    Text(String),
}

/// What the handler answered.
#[derive(Debug, Clone)]
pub struct RouteResponse {
    /// HTTP status.
    pub status: u16,
    /// Extra headers (checked names and values).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: ResponseBody,
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers a script may not set (the server owns them).
const RESERVED_HEADERS: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "x-request-id",
    "upgrade",
];

/// Interpret a handler's return value.
fn response_of(value: Value) -> Result<RouteResponse, String> {
    let is_envelope = value.as_object().is_some_and(|m| {
        m.get("status")
            .and_then(Value::as_i64)
            .is_some_and(|s| (100..=599).contains(&s))
            && m.keys()
                .all(|k| k == "status" || k == "body" || k == "headers")
    });
    if !is_envelope {
        return Ok(RouteResponse {
            status: 200,
            headers: Vec::new(),
            body: ResponseBody::Json(value),
        });
    }
    let Value::Object(mut m) = value else {
        return Err("unreachable".into());
    };
    let status = m
        .get("status")
        .and_then(Value::as_i64)
        .and_then(|s| u16::try_from(s).ok())
        .unwrap_or(200);
    let mut headers = Vec::new();
    match m.remove("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (name, v) in h {
                let lower = name.to_ascii_lowercase();
                if !is_token(&lower) {
                    return Err(format!("response header name \"{name}\" is not valid"));
                }
                if RESERVED_HEADERS.contains(&lower.as_str()) {
                    return Err(format!(
                        "response header \"{name}\" is set by the server, not by scripts"
                    ));
                }
                let text = match v {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(format!(
                            "response header \"{name}\" must be a string, not {other}"
                        ));
                    }
                };
                if text.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
                    return Err(format!(
                        "response header \"{name}\" contains control characters"
                    ));
                }
                headers.push((lower, text));
            }
        }
        Some(other) => return Err(format!("headers must be a map, not {other}")),
    }
    let textual = headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .is_some_and(|(_, v)| !v.to_ascii_lowercase().contains("json"));
    let body = match m.remove("body") {
        None => ResponseBody::Empty,
        Some(Value::String(s)) if textual => ResponseBody::Text(s),
        Some(v) => ResponseBody::Json(v),
    };
    Ok(RouteResponse {
        status,
        headers,
        body,
    })
}

/// Run route `index` of `version` with `req` ([`RouteRequest::to_value`])
/// in the writer's transaction (the caller checked permission and install).
pub fn run(
    w: &Writer<'_>,
    version: &Arc<PluginVersion>,
    index: usize,
    req: Value,
) -> Result<RouteResponse, PluginError> {
    let route = &version.manifest.routes[index];
    let Some(file) = version.scripts.file(&route.script) else {
        return Err(PluginError::Script(Box::new(ScriptFailure::Fault {
            plugin: version.manifest.name.clone(),
            kind: FaultKind::Runtime,
            error: ScriptError {
                file: route.script.clone(),
                line: 0,
                column: None,
                message: format!(
                    "route {} {} has no compiled script (runtime {} is not available)",
                    route.method.as_str(),
                    route.path,
                    version.manifest.runtime.as_str()
                ),
            },
        })));
    };
    let value = hooks::call(w, version, file, &route.function, vec![req], false)?;
    response_of(value).map_err(|message| {
        PluginError::Script(Box::new(ScriptFailure::Fault {
            plugin: version.manifest.name.clone(),
            kind: FaultKind::Runtime,
            error: ScriptError {
                file: file.shown.clone(),
                line: 0,
                column: None,
                message: format!("{}: {message}", route.function),
            },
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_envelope_is_used_as_is_and_anything_else_is_a_200() {
        let r = response_of(json!({"status": 201, "body": {"a": 1}, "headers": {"X-Id": "7"}}))
            .expect("envelope");
        assert_eq!(r.status, 201);
        assert_eq!(r.headers, vec![("x-id".to_owned(), "7".to_owned())]);
        assert_eq!(r.body, ResponseBody::Json(json!({"a": 1})));
        let r = response_of(json!({"status": "active", "name": "x"})).expect("record");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            ResponseBody::Json(json!({"status": "active", "name": "x"}))
        );
        let r = response_of(json!({"status": 200, "extra": 1})).expect("not an envelope");
        assert_eq!(
            r.body,
            ResponseBody::Json(json!({"status": 200, "extra": 1}))
        );
        let r = response_of(json!({"status": 204})).expect("no body");
        assert_eq!((r.status, r.body), (204, ResponseBody::Empty));
        let r = response_of(json!({"status": 700})).expect("out of range is a record");
        assert_eq!(r.status, 200);
        let r = response_of(
            json!({"status": 200, "body": "a,b", "headers": {"content-type": "text/csv"}}),
        )
        .expect("text");
        assert_eq!(r.body, ResponseBody::Text("a,b".into()));
    }

    #[test]
    fn bad_headers_are_refused() {
        for h in [
            json!({"bad name": "x"}),
            json!({"x-a": "line\r\nbreak"}),
            json!({"content-length": "3"}),
            json!({"x-a": [1]}),
        ] {
            assert!(
                response_of(json!({"status": 200, "headers": h})).is_err(),
                "{h}"
            );
        }
    }
}
