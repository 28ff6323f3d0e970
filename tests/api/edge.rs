//! The HTTP edge: problem+json for routing and body errors, the body size
//! limit (by Content-Length and for chunked bodies), and `x-request-id`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use std::io::{Read as _, Write as _};

use crate::helpers::*;

const LIMIT: usize = 1024;

/// Status, content type, `x-request-id` and JSON body of a response.
struct Seen {
    status: StatusCode,
    content_type: String,
    request_id: Option<String>,
    body: Value,
}

async fn seen(resp: Response) -> Seen {
    let header = |name| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_owned())
    };
    let content_type = header("content-type").unwrap_or_default();
    let request_id = header("x-request-id");
    let (status, body) = split(resp).await;
    Seen {
        status,
        content_type,
        request_id,
        body,
    }
}

/// Send a raw body with a content type.
async fn send_raw(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Seen {
    let resp = app
        .request(method, path, token)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .expect("sent");
    seen(resp).await
}

/// Assert a problem+json answer with this status whose `request_id` equals
/// the `x-request-id` header.
fn assert_problem_json(seen: &Seen, expected: StatusCode, what: &str) {
    assert_eq!(seen.status, expected, "{what}: {}", seen.body);
    assert_problem(seen.status, &seen.body, expected);
    assert!(
        seen.content_type.starts_with("application/problem+json"),
        "{what}: content-type {}",
        seen.content_type
    );
    let id = seen
        .request_id
        .as_deref()
        .unwrap_or_else(|| panic!("{what}: no x-request-id"));
    assert_eq!(seen.body["request_id"], id, "{what}: body request_id");
}

/// A login body of exactly `len` bytes (wrong credentials).
fn login_body_of_len(len: usize) -> String {
    let shell = json!({"email": "nobody@test.local", "password": ""}).to_string();
    let pad = len.checked_sub(shell.len()).expect("len fits the shell");
    let body = json!({"email": "nobody@test.local", "password": "p".repeat(pad)}).to_string();
    assert_eq!(body.len(), len);
    body
}

/// A raw HTTP/1.1 exchange: write `request`, read the status line and
/// headers (10 s deadline; the socket work runs off the test's runtime
/// thread, which also drives the server). Returns (status code, lower-cased
/// head).
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let request = request.to_vec();
    let head = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream.write_all(&request).expect("write request");
        stream.flush().expect("flush");
        let mut head = Vec::new();
        let mut buf = [0_u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream
                .read(&mut buf)
                .expect("a response within 10 s, without the rest of the body");
            assert!(
                n > 0,
                "connection closed before a response: {:?}",
                String::from_utf8_lossy(&head)
            );
            head.extend_from_slice(&buf[..n]);
        }
        head
    })
    .await
    .expect("raw exchange");
    let head = String::from_utf8_lossy(&head).to_lowercase();
    let status = head
        .strip_prefix("http/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("status line in {head}"));
    (status, head)
}

#[tokio::test]
async fn unknown_routes_are_404_problems() {
    let app = spawn_app().await;
    let cases = [
        (Method::GET, "/nope", None),
        (Method::GET, "/api/nope", Some(app.root_token.as_str())),
        (
            Method::POST,
            "/api/no-such-thing",
            Some(app.root_token.as_str()),
        ),
        (
            Method::GET,
            "/api/tenants/x/y",
            Some(app.root_token.as_str()),
        ),
    ];
    for (method, path, token) in cases {
        let what = format!("{method} {path}");
        let resp = app.request(method, path, token).send().await.expect("sent");
        assert_problem_json(&seen(resp).await, StatusCode::NOT_FOUND, &what);
    }
}

#[tokio::test]
async fn a_wrong_method_on_a_known_route_is_a_405_problem() {
    let app = spawn_app().await;
    // (method, path, methods the Allow header must list)
    let cases: [(Method, &str, &[&str]); 4] = [
        (Method::DELETE, "/healthz", &["GET"]),
        (Method::POST, "/readyz", &["GET"]),
        (Method::PUT, "/api/tenants", &["GET", "POST"]),
        (Method::GET, "/api/auth/login", &["POST"]),
    ];
    for (method, path, allowed) in cases {
        let what = format!("{method} {path}");
        let resp = app
            .request(method, path, Some(&app.root_token))
            .send()
            .await
            .expect("sent");
        let allow = resp
            .headers()
            .get("allow")
            .map(|v| v.to_str().expect("ascii").to_owned())
            .unwrap_or_else(|| panic!("{what}: a 405 carries Allow (RFC 9110)"));
        let listed: Vec<&str> = allow.split(',').map(str::trim).collect();
        for m in allowed {
            assert!(listed.contains(m), "{what}: Allow {allow} lists {m}");
        }
        assert_problem_json(&seen(resp).await, StatusCode::METHOD_NOT_ALLOWED, &what);
    }
}

#[tokio::test]
async fn malformed_json_is_a_400_whose_detail_gives_line_and_column() {
    let app = spawn_app().await;
    let cases = [
        ("{\n  \"email\": \"a@b.test\",\n  oops\n}", "line 3"),
        ("{\"email\": ", "line 1"),
        ("{\"email\": \"a@b.test\", \"password\": \"x\"}}", "line 1"),
    ];
    for (body, line) in cases {
        let seen = send_raw(&app, Method::POST, "/api/auth/login", None, body).await;
        assert_problem_json(&seen, StatusCode::BAD_REQUEST, body);
        let detail = seen.body["detail"].as_str().expect("detail");
        assert!(detail.contains(line), "{body:?}: {detail}");
        assert!(detail.contains("column"), "{body:?}: {detail}");
    }
}

#[tokio::test]
async fn an_unknown_body_field_is_a_400_naming_it() {
    let app = spawn_app().await;
    let (status, problem) = app
        .post(
            "/api/users",
            &app.root_token,
            json!({"email": "u@test.local", "password": PASSWORD, "roles": [], "nickname": "x"}),
        )
        .await;
    assert_field_error(status, &problem, "nickname");
    let (_, users) = app.get("/api/users", &app.root_token).await;
    assert_eq!(users["total"], 1, "nothing created: {users}");
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_a_400() {
    let app = spawn_app().await;
    for body in [
        "[]",
        "[{\"email\": \"a@b.test\"}]",
        "\"hello\"",
        "42",
        "null",
        "true",
    ] {
        let seen = send_raw(&app, Method::POST, "/api/auth/login", None, body).await;
        assert_problem_json(&seen, StatusCode::BAD_REQUEST, body);
        let seen = send_raw(
            &app,
            Method::POST,
            "/api/users",
            Some(&app.root_token),
            body,
        )
        .await;
        assert_problem_json(&seen, StatusCode::BAD_REQUEST, body);
    }
}

#[tokio::test]
async fn an_array_with_the_fields_in_order_is_not_an_object_and_is_a_400() {
    let app = spawn_app().await;
    // Positional values that a lenient decoder would map onto the fields.
    let bodies = [
        json!([ROOT_EMAIL, ROOT_PASSWORD]),
        json!([ROOT_EMAIL, ROOT_PASSWORD, null]),
        json!([ROOT_EMAIL, ROOT_PASSWORD, "default"]),
    ];
    for body in bodies {
        let seen = send_raw(
            &app,
            Method::POST,
            "/api/auth/login",
            None,
            body.to_string(),
        )
        .await;
        assert!(
            seen.body.get("access_token").is_none(),
            "{body}: no token for an array body: {}",
            seen.body
        );
        assert_problem_json(&seen, StatusCode::BAD_REQUEST, &body.to_string());
    }
}

#[tokio::test]
async fn an_empty_body_where_one_is_required_is_a_400() {
    let app = spawn_app().await;
    for body in ["", "   \n"] {
        let seen = send_raw(
            &app,
            Method::POST,
            "/api/users",
            Some(&app.root_token),
            body,
        )
        .await;
        assert_problem_json(&seen, StatusCode::BAD_REQUEST, &format!("{body:?}"));
    }
    // And with no body and no content type at all.
    let resp = app
        .request(Method::POST, "/api/users", Some(&app.root_token))
        .send()
        .await
        .expect("sent");
    assert_problem_json(&seen(resp).await, StatusCode::BAD_REQUEST, "no body");
}

#[tokio::test]
async fn a_body_above_the_limit_is_413_and_one_at_the_limit_is_read() {
    let app = spawn_app_with(|c| c.max_body = LIMIT).await;

    let at_limit = send_raw(
        &app,
        Method::POST,
        "/api/auth/login",
        None,
        login_body_of_len(LIMIT),
    )
    .await;
    assert_problem_json(
        &at_limit,
        StatusCode::UNAUTHORIZED,
        "body of exactly the limit",
    );

    for len in [LIMIT + 1, 2 * LIMIT] {
        let over = send_raw(
            &app,
            Method::POST,
            "/api/auth/login",
            None,
            login_body_of_len(len),
        )
        .await;
        assert_problem_json(
            &over,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{len} bytes"),
        );
    }
    let over = send_raw(
        &app,
        Method::POST,
        "/api/tenants",
        Some(&app.root_token),
        login_body_of_len(2 * LIMIT),
    )
    .await;
    assert_problem_json(
        &over,
        StatusCode::PAYLOAD_TOO_LARGE,
        "2 KiB to /api/tenants",
    );

    let (status, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_413_is_answered_without_reading_the_rest_of_the_body() {
    let app = spawn_app_with(|c| c.max_body = LIMIT).await;

    // Declared too large: answered before a byte of the body is sent.
    let declared = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        app.addr,
        10 * 1024 * 1024
    );
    let (status, head) = raw_exchange(app.addr, declared.as_bytes()).await;
    assert_eq!(status, 413, "{head}");
    assert!(head.contains("x-request-id:"), "{head}");
    assert!(head.contains("application/problem+json"), "{head}");

    // Chunked, no Content-Length: one 2 KiB chunk and no final chunk.
    let mut chunked = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        app.addr,
        2 * LIMIT
    )
    .into_bytes();
    chunked.extend_from_slice(login_body_of_len(2 * LIMIT).as_bytes());
    chunked.extend_from_slice(b"\r\n");
    let (status, head) = raw_exchange(app.addr, &chunked).await;
    assert_eq!(status, 413, "{head}");
    assert!(head.contains("x-request-id:"), "{head}");

    // A small chunked body is read normally.
    let small = login_body_of_len(100);
    let small = format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{small}\r\n0\r\n\r\n",
        app.addr,
        small.len()
    );
    let (status, head) = raw_exchange(app.addr, small.as_bytes()).await;
    assert_eq!(
        status, 401,
        "small chunked body reaches the handler: {head}"
    );

    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "still healthy: {body}");
}

#[tokio::test]
async fn every_response_carries_a_distinct_request_id_matching_its_problem() {
    let app = spawn_app_with(|c| c.max_body = LIMIT).await;
    let mut ids = HashSet::new();
    let mut record = |what: &str, seen: &Seen| {
        let id = seen
            .request_id
            .clone()
            .unwrap_or_else(|| panic!("{what}: no x-request-id"));
        assert!(!id.is_empty(), "{what}");
        assert!(ids.insert(id.clone()), "{what}: id {id} repeated");
        if seen.status.is_client_error() || seen.status.is_server_error() {
            assert_eq!(seen.body["request_id"], id, "{what}: {}", seen.body);
        }
    };

    let resp = app
        .request(Method::GET, "/healthz", None)
        .send()
        .await
        .expect("sent");
    let ok = seen(resp).await;
    assert_eq!(ok.status, StatusCode::OK);
    record("200 /healthz", &ok);

    let resp = app
        .request(Method::GET, "/api/auth/me", Some(&app.root_token))
        .send()
        .await
        .expect("sent");
    let me = seen(resp).await;
    assert_eq!(me.status, StatusCode::OK);
    record("200 /api/auth/me", &me);

    let resp = app
        .request(Method::GET, "/nope", None)
        .send()
        .await
        .expect("sent");
    let missing = seen(resp).await;
    assert_problem_json(&missing, StatusCode::NOT_FOUND, "404");
    record("404", &missing);

    let resp = app
        .request(Method::GET, "/api/users", None)
        .send()
        .await
        .expect("sent");
    let unauthorized = seen(resp).await;
    assert_problem_json(&unauthorized, StatusCode::UNAUTHORIZED, "401");
    record("401", &unauthorized);

    let too_large = send_raw(
        &app,
        Method::POST,
        "/api/auth/login",
        None,
        login_body_of_len(2 * LIMIT),
    )
    .await;
    assert_problem_json(&too_large, StatusCode::PAYLOAD_TOO_LARGE, "413");
    record("413", &too_large);

    let bad = send_raw(&app, Method::POST, "/api/auth/login", None, "{").await;
    assert_problem_json(&bad, StatusCode::BAD_REQUEST, "400");
    record("400", &bad);

    let resp = app
        .request(Method::DELETE, "/healthz", None)
        .send()
        .await
        .expect("sent");
    let not_allowed = seen(resp).await;
    assert_problem_json(&not_allowed, StatusCode::METHOD_NOT_ALLOWED, "405");
    record("405", &not_allowed);

    // The same request twice gets two ids.
    let resp = app
        .request(Method::GET, "/healthz", None)
        .send()
        .await
        .expect("sent");
    record("200 /healthz again", &seen(resp).await);
}

#[tokio::test]
async fn an_incoming_request_id_is_echoed_in_the_header_and_the_problem() {
    let app = spawn_app_with(|c| c.max_body = LIMIT).await;
    let cases: Vec<(Method, &str, Option<String>, StatusCode)> = vec![
        (Method::GET, "/healthz", None, StatusCode::OK),
        (Method::GET, "/nope", None, StatusCode::NOT_FOUND),
        (Method::GET, "/api/users", None, StatusCode::UNAUTHORIZED),
        (
            Method::POST,
            "/api/auth/login",
            Some(login_body_of_len(2 * LIMIT)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (i, (method, path, body, expected)) in cases.into_iter().enumerate() {
        let id = format!("trace-{i}-7f3a9c");
        let mut rb = app
            .request(method.clone(), path, None)
            .header("x-request-id", &id);
        if let Some(b) = body {
            rb = rb.header(CONTENT_TYPE, "application/json").body(b);
        }
        let seen = seen(rb.send().await.expect("sent")).await;
        let what = format!("{method} {path}");
        assert_eq!(seen.status, expected, "{what}: {}", seen.body);
        assert_eq!(seen.request_id.as_deref(), Some(id.as_str()), "{what}");
        if expected != StatusCode::OK {
            assert_problem_json(&seen, expected, &what);
            assert_eq!(seen.body["request_id"], id, "{what}");
        }
    }
    let (status, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_without_a_token() {
    let app = spawn_app().await;
    let raw = "/api/users/00000000-0000-7000-8000-000000000000";
    for _ in 0..2 {
        let (status, _) = app.get(raw, &app.root_token).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let resp = app
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let text = resp.text().await.expect("body");
    assert!(
        text.contains(
            "plinth_http_requests_total{method=\"GET\",route=\"/api/users/{id}\",status=\"404\"} 2"
        ),
        "{text}"
    );
    assert!(
        !text.contains(raw),
        "route label is the template, never the raw path"
    );
    for family in [
        "# TYPE plinth_http_request_duration_seconds histogram",
        "plinth_http_request_duration_seconds_count{route=\"/api/users/{id}\"} 2",
        "# TYPE plinth_script_errors_total counter",
        "# TYPE plinth_plugin_reloads_total counter",
        "plinth_db_pool_connections{state=\"idle\"}",
    ] {
        assert!(text.contains(family), "{family} in\n{text}");
    }
}
