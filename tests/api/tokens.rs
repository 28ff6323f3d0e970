//! Access-token attacks on `GET /api/auth/me`: every forged, tampered,
//! expired, misplaced or orphaned token is a 401 problem, and a genuine one
//! is a 200.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

/// `GET /api/auth/me` with a raw `Authorization` header (or none); returns
/// status, content type and body.
async fn me_with_header(app: &TestApp, authorization: Option<&str>) -> (StatusCode, String, Value) {
    let mut rb = app.request(Method::GET, "/api/auth/me", None);
    if let Some(value) = authorization {
        rb = rb.header(AUTHORIZATION, value);
    }
    let resp = rb.send().await.expect("request sent");
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (status, body) = split(resp).await;
    (status, content_type, body)
}

/// Assert the answer is a 401 problem+json.
fn assert_unauthorized(case: &str, status: StatusCode, content_type: &str, body: &Value) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{case}: content type {content_type}"
    );
    assert_problem(status, body, StatusCode::UNAUTHORIZED);
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs()
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A token signed with `secret` using `alg` over arbitrary claims.
fn sign_with(alg: Algorithm, secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret))
        .expect("encode")
}

/// A correctly signed HS256 token with the test secret.
fn sign(claims: &Value) -> String {
    sign_with(Algorithm::HS256, JWT_SECRET, claims)
}

fn claims(sub: &str, tid: &str) -> Value {
    let t = now();
    json!({"sub": sub, "tid": tid, "iat": t, "exp": t + 600})
}

/// Decode a token's payload, change it, re-encode it, keep the old signature.
fn tamper(token: &str, change: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT: {token}");
    let raw = URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url payload");
    let mut payload: Value = serde_json::from_slice(&raw).expect("JSON payload");
    change(&mut payload);
    let forged = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    assert_ne!(forged, token, "the payload really changed");
    forged
}

/// The claims of a real token (not verified: we only read them).
fn payload_of(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("payload part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// Two tenants, A with an employee; returns (A's admin token, employee's
/// token, A's tenant id, B's tenant id, B admin's user id).
async fn two_tenants(app: &TestApp) -> (String, String, String, String, String) {
    let (tenant_a, admin_a) = app.tenant("tok-a").await;
    let (tenant_b, admin_b) = app.tenant("tok-b").await;
    let (_, employee) = app
        .user(&admin_a, "tok-a", "emp@tok-a.test", &["EMPLOYEE"])
        .await;
    let (_, me_b) = app.get("/api/auth/me", &admin_b).await;
    (
        admin_a,
        employee,
        tenant_a["id"].as_str().expect("id").to_owned(),
        tenant_b["id"].as_str().expect("id").to_owned(),
        me_b["user"]["id"].as_str().expect("id").to_owned(),
    )
}

#[tokio::test]
async fn a_genuine_token_is_accepted() {
    let app = spawn_app().await;
    let (status, _, body) = me_with_header(&app, Some(&format!("Bearer {}", app.root_token))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["email"], ROOT_EMAIL);

    // A token we sign ourselves with the right key and claims also works, so
    // the forged-token cases below fail for the reason they name.
    let real = payload_of(&app.root_token);
    let forged = sign(&claims(
        real["sub"].as_str().expect("sub"),
        real["tid"].as_str().expect("tid"),
    ));
    let (status, _, body) = me_with_header(&app, Some(&format!("Bearer {forged}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["email"], ROOT_EMAIL);
}

#[tokio::test]
async fn malformed_authorization_headers_are_401() {
    let app = spawn_app().await;
    let cases: [(&str, Option<String>); 8] = [
        ("no header", None),
        ("scheme only", Some("Bearer".to_owned())),
        ("bearer with empty token", Some("Bearer ".to_owned())),
        ("bearer with blank token", Some("Bearer    ".to_owned())),
        ("basic scheme", Some("Basic xyz".to_owned())),
        (
            "valid token under another scheme",
            Some(format!("Token {}", app.root_token)),
        ),
        ("token without scheme", Some(app.root_token.clone())),
        ("garbage", Some("Bearer not-a-jwt".to_owned())),
    ];
    for (case, header) in cases {
        let (status, content_type, body) = me_with_header(&app, header.as_deref()).await;
        assert_unauthorized(case, status, &content_type, &body);
    }
}

#[tokio::test]
async fn garbage_tokens_are_401() {
    let app = spawn_app().await;
    let cases = [
        "a.b.c",
        "...",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0",
        "eyJhbGciOiJIUzI1NiJ9.!!!.sig",
        "%%%%.%%%%.%%%%",
    ];
    for token in cases {
        let (status, content_type, body) =
            me_with_header(&app, Some(&format!("Bearer {token}"))).await;
        assert_unauthorized(token, status, &content_type, &body);
    }
}

#[tokio::test]
async fn alg_none_token_with_valid_claims_is_401() {
    let app = spawn_app().await;
    let real = payload_of(&app.root_token);
    let header = json!({"alg": "none", "typ": "JWT"});
    let body = claims(
        real["sub"].as_str().expect("sub"),
        real["tid"].as_str().expect("tid"),
    );
    for token in [
        format!("{}.{}.", b64(&header), b64(&body)),
        format!("{}.{}", b64(&header), b64(&body)),
        format!(
            "{}.{}.",
            b64(&json!({"alg": "None", "typ": "JWT"})),
            b64(&body)
        ),
    ] {
        let (status, content_type, problem) =
            me_with_header(&app, Some(&format!("Bearer {token}"))).await;
        assert_unauthorized(&token, status, &content_type, &problem);
    }
}

#[tokio::test]
async fn token_signed_with_a_wrong_key_or_algorithm_is_401() {
    let app = spawn_app().await;
    let real = payload_of(&app.root_token);
    let body = claims(
        real["sub"].as_str().expect("sub"),
        real["tid"].as_str().expect("tid"),
    );
    let cases = [
        (
            "wrong key",
            sign_with(
                Algorithm::HS256,
                b"another-secret-another-secret-012345",
                &body,
            ),
        ),
        (
            "right key, HS384",
            sign_with(Algorithm::HS384, JWT_SECRET, &body),
        ),
        (
            "right key, HS512",
            sign_with(Algorithm::HS512, JWT_SECRET, &body),
        ),
        ("empty key", sign_with(Algorithm::HS256, b"", &body)),
    ];
    for (case, token) in cases {
        let (status, content_type, problem) =
            me_with_header(&app, Some(&format!("Bearer {token}"))).await;
        assert_unauthorized(case, status, &content_type, &problem);
    }
}

#[tokio::test]
async fn tampered_tid_or_sub_with_the_old_signature_is_401() {
    let app = spawn_app().await;
    let (admin_a, employee, _, tenant_b, admin_b_id) = two_tenants(&app).await;
    let employee_claims = payload_of(&employee);
    let admin_a_claims = payload_of(&admin_a);
    // Sanity: the originals work.
    assert_eq!(app.get("/api/auth/me", &employee).await.0, StatusCode::OK);

    let cases = [
        (
            "tid changed to tenant B",
            tamper(&employee, |p| p["tid"] = json!(tenant_b)),
        ),
        (
            "sub changed to A's admin",
            tamper(&employee, |p| p["sub"] = admin_a_claims["sub"].clone()),
        ),
        (
            "sub and tid changed to B's admin",
            tamper(&employee, |p| {
                p["sub"] = json!(admin_b_id);
                p["tid"] = json!(tenant_b);
            }),
        ),
        (
            "exp pushed into the future",
            tamper(&employee, |p| {
                p["exp"] = json!(employee_claims["exp"].as_u64().expect("exp") + 3600);
            }),
        ),
    ];
    for (case, token) in cases {
        let (status, content_type, body) =
            me_with_header(&app, Some(&format!("Bearer {token}"))).await;
        assert_unauthorized(case, status, &content_type, &body);
    }
}

#[tokio::test]
async fn correctly_signed_but_expired_or_incomplete_token_is_401() {
    let app = spawn_app().await;
    let real = payload_of(&app.root_token);
    let (sub, tid) = (
        real["sub"].as_str().expect("sub"),
        real["tid"].as_str().expect("tid"),
    );
    let t = now();
    let cases = [
        (
            "expired a minute ago",
            json!({"sub": sub, "tid": tid, "iat": t - 960, "exp": t - 60}),
        ),
        (
            "expired long ago",
            json!({"sub": sub, "tid": tid, "iat": 1_000_000, "exp": 1_000_900}),
        ),
        ("no exp", json!({"sub": sub, "tid": tid, "iat": t})),
        ("no sub", json!({"tid": tid, "iat": t, "exp": t + 600})),
        ("no tid", json!({"sub": sub, "iat": t, "exp": t + 600})),
        (
            "sub not a user",
            json!({"sub": "0190aaaa-0000-7000-8000-000000000000", "tid": tid, "iat": t, "exp": t + 600}),
        ),
        (
            "tid not a tenant",
            json!({"sub": sub, "tid": "0190aaaa-0000-7000-8000-000000000000", "iat": t, "exp": t + 600}),
        ),
    ];
    for (case, body) in cases {
        let token = sign(&body);
        let (status, content_type, problem) =
            me_with_header(&app, Some(&format!("Bearer {token}"))).await;
        assert_unauthorized(case, status, &content_type, &problem);
    }
}

#[tokio::test]
async fn correctly_signed_token_pairing_a_user_of_b_with_tenant_a_is_401() {
    let app = spawn_app().await;
    let (admin_a, _, tenant_a, tenant_b, admin_b_id) = two_tenants(&app).await;
    // B's admin works in B, signed by us: the key and claims are right.
    let genuine = sign(&claims(&admin_b_id, &tenant_b));
    assert_eq!(app.get("/api/auth/me", &genuine).await.0, StatusCode::OK);
    // Same user claimed for tenant A: refused, also once B's principal is cached.
    let crossed = sign(&claims(&admin_b_id, &tenant_a));
    let (status, content_type, body) =
        me_with_header(&app, Some(&format!("Bearer {crossed}"))).await;
    assert_unauthorized("B user in tenant A", status, &content_type, &body);
    // And the other way round: A's admin claimed for tenant B.
    let a_sub = payload_of(&admin_a)["sub"]
        .as_str()
        .expect("sub")
        .to_owned();
    let crossed = sign(&claims(&a_sub, &tenant_b));
    let (status, content_type, body) =
        me_with_header(&app, Some(&format!("Bearer {crossed}"))).await;
    assert_unauthorized("A user in tenant B", status, &content_type, &body);
    // The crossed token did not reach tenant A's data either.
    let (status, _) = app.get("/api/users", &crossed).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_of_a_deleted_user_are_401() {
    let app = spawn_app().await;
    let (tenant, admin) = app.tenant("tok-del").await;
    let (user, token) = app
        .user(&admin, "tok-del", "gone@tok-del.test", &["EMPLOYEE"])
        .await;
    let (status, session) = app
        .login("gone@tok-del.test", PASSWORD, Some("tok-del"))
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let refresh = session["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();
    let id = user["id"].as_str().expect("id");
    // Used once, so a cached principal exists.
    assert_eq!(app.get("/api/auth/me", &token).await.0, StatusCode::OK);
    let self_signed = sign(&claims(id, tenant["id"].as_str().expect("id")));
    assert_eq!(
        app.get("/api/auth/me", &self_signed).await.0,
        StatusCode::OK
    );

    let (status, body) = app.delete(&format!("/api/users/{id}"), &admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    for (case, t) in [
        ("issued token", &token),
        ("self-signed token", &self_signed),
    ] {
        let (status, content_type, body) = me_with_header(&app, Some(&format!("Bearer {t}"))).await;
        assert_unauthorized(case, status, &content_type, &body);
    }
    // Its refresh token is dead too.
    let (status, body) = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
}
