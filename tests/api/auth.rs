//! Login, refresh rotation, logout, me, rate limiting.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn login_returns_token_pair_and_user_without_hash() {
    let app = spawn_app().await;
    let (status, body) = app.login(ROOT_EMAIL, ROOT_PASSWORD, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(
        body["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 32)
    );
    let user = &body["user"];
    for key in [
        "id",
        "email",
        "name",
        "roles",
        "active",
        "platform_admin",
        "created_at",
    ] {
        assert!(user.get(key).is_some(), "user.{key} in {body}");
    }
    assert!(user.get("password_hash").is_none());
    assert!(
        !body.to_string().contains("argon2"),
        "no hash anywhere: {body}"
    );
}

#[tokio::test]
async fn wrong_email_and_wrong_password_get_the_same_401() {
    let app = spawn_app().await;
    let (s1, b1) = app.login(ROOT_EMAIL, "wrong-password-1", None).await;
    let (s2, b2) = app
        .login("nobody@test.local", "wrong-password-1", None)
        .await;
    let (s3, b3) = app
        .login(ROOT_EMAIL, ROOT_PASSWORD, Some("no-such-tenant"))
        .await;
    for (s, b) in [(s1, &b1), (s2, &b2), (s3, &b3)] {
        assert_problem(s, b, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(b1["detail"], b2["detail"]);
    assert_eq!(b1["detail"], b3["detail"]);
}

#[tokio::test]
async fn login_bad_inputs_are_400_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({"email": ROOT_EMAIL}), "password"),
        (json!({"password": ROOT_PASSWORD}), "email"),
        (
            json!({"email": ROOT_EMAIL, "password": "short"}),
            "password",
        ),
        (
            json!({"email": ROOT_EMAIL, "password": "x".repeat(1025)}),
            "password",
        ),
        (
            json!({"email": ROOT_EMAIL, "password": 12345678901_i64}),
            "password",
        ),
        (
            json!({"email": ROOT_EMAIL, "password": ROOT_PASSWORD, "tenant": "BAD SLUG"}),
            "tenant",
        ),
        (
            json!({"email": ROOT_EMAIL, "password": ROOT_PASSWORD, "remember": true}),
            "remember",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = app
            .call(Method::POST, "/api/auth/login", None, Some(body.clone()))
            .await;
        assert_field_error(status, &problem, field);
    }
}

#[tokio::test]
async fn me_lists_effective_sorted_permissions() {
    let app = spawn_app().await;
    let (status, me) = app.get("/api/auth/me", &app.root_token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["email"], ROOT_EMAIL);
    assert_eq!(me["tenant"]["slug"], "default");
    assert_eq!(me["roles"], json!(["SUPER_ADMIN"]));
    let perms: Vec<String> = serde_json::from_value(me["permissions"].clone()).expect("list");
    let mut sorted = perms.clone();
    sorted.sort();
    assert_eq!(perms, sorted);
    for p in [
        "USERS_VIEW",
        "USERS_MANAGE",
        "ROLES_VIEW",
        "ROLES_MANAGE",
        "PLUGINS_VIEW",
        "PLUGINS_MANAGE",
        "AUDIT_VIEW",
    ] {
        assert!(perms.contains(&p.to_owned()), "{p} in {me}");
    }
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    let (_, login) = app.login(ROOT_EMAIL, ROOT_PASSWORD, None).await;
    let r1 = login["refresh_token"].as_str().expect("refresh").to_owned();

    let (status, pair) = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let r2 = pair["refresh_token"].as_str().expect("refresh").to_owned();
    assert_ne!(r1, r2);
    let access2 = pair["access_token"].as_str().expect("access").to_owned();
    assert_eq!(app.get("/api/auth/me", &access2).await.0, StatusCode::OK);

    // Presenting the rotated-out token again is reuse: 401, and r2 dies too.
    let (status, _) = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": r1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": r2})),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_with_garbage_or_missing_token() {
    let app = spawn_app().await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": "garbage"})),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .call(Method::POST, "/api/auth/refresh", None, Some(json!({})))
        .await;
    assert_field_error(status, &body, "refresh_token");
}

#[tokio::test]
async fn logout_revokes_that_refresh_token() {
    let app = spawn_app().await;
    let (_, login) = app.login(ROOT_EMAIL, ROOT_PASSWORD, None).await;
    let refresh = login["refresh_token"].as_str().expect("refresh").to_owned();
    let access = login["access_token"].as_str().expect("access").to_owned();
    let (status, body) = app
        .post(
            "/api/auth/logout",
            &access,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // logout itself needs a token
    let (status, _) = app
        .call(
            Method::POST,
            "/api/auth/logout",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn eleventh_failed_login_is_429_even_with_the_right_password() {
    let app = spawn_app().await;
    for i in 0..10 {
        let (status, _) = app.login(ROOT_EMAIL, "wrong-password-1", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let resp = app
        .request(Method::POST, "/api/auth/login", None)
        .json(&json!({"email": ROOT_EMAIL, "password": ROOT_PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=300).contains(&retry), "retry-after {retry}");
    // Another account from the same address is unaffected.
    let (_, t) = app.tenant("other").await;
    assert!(!t.is_empty());
}

#[tokio::test]
async fn login_without_tenant_works_when_email_is_unique_and_needs_it_otherwise() {
    let app = spawn_app().await;
    let (_, a) = app.tenant("alpha").await;
    let (_, b) = app.tenant("beta").await;
    app.user(&a, "alpha", "shared@x.test", &["VIEWER"]).await;
    app.user(&b, "beta", "shared@x.test", &["VIEWER"]).await;
    // Same password in both tenants: ambiguous → 400 naming tenant.
    let (status, body) = app.login("shared@x.test", PASSWORD, None).await;
    assert_field_error(status, &body, "tenant");
    let (status, body) = app.login("shared@x.test", PASSWORD, Some("beta")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Unique email: no tenant needed.
    let (status, _) = app.login("admin@alpha.test", PASSWORD, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn grant_change_applies_on_the_next_request() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (_, viewer) = app.user(&admin, "acme", "v@acme.test", &["VIEWER"]).await;
    assert_eq!(
        app.get("/api/users", &viewer).await.0,
        StatusCode::FORBIDDEN
    );
    let role = app.role_id(&admin, "VIEWER").await;
    let (status, body) = app
        .put(
            &format!("/api/roles/{role}/permissions"),
            &admin,
            json!({"permissions": ["USERS_VIEW"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.get("/api/users", &viewer).await.0, StatusCode::OK);
    let (_, me) = app.get("/api/auth/me", &viewer).await;
    assert_eq!(me["permissions"], json!(["USERS_VIEW"]));
}

#[tokio::test]
async fn inactive_user_and_inactive_tenant_get_401() {
    let app = spawn_app().await;
    let (tenant, admin) = app.tenant("acme").await;
    let (user, token) = app.user(&admin, "acme", "e@acme.test", &["EMPLOYEE"]).await;
    let path = format!("/api/users/{}", user["id"].as_str().expect("id"));
    assert_eq!(
        app.patch(&path, &admin, json!({"active": false})).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/auth/me", &token).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("e@acme.test", PASSWORD, Some("acme")).await.0,
        StatusCode::UNAUTHORIZED
    );

    let tpath = format!("/api/tenants/{}", tenant["id"].as_str().expect("id"));
    assert_eq!(
        app.patch(&tpath, &app.root_token, json!({"active": false}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/auth/me", &admin).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("admin@acme.test", PASSWORD, Some("acme")).await.0,
        StatusCode::UNAUTHORIZED
    );
}
