//! `/api/audit`: who changed users, roles and grants, when, with the state
//! before and after (never a password hash), newest first, filtered by
//! `?action=`, paged, and readable only with AUDIT_VIEW.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("id in {v}"))
        .to_owned()
}

async fn audit(app: &TestApp, token: &str, query: &str) -> Value {
    let (status, body) = app.get(&format!("/api/audit{query}"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn my_id(app: &TestApp, token: &str) -> String {
    let (status, me) = app.get("/api/auth/me", token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    me["user"]["id"].as_str().expect("id").to_owned()
}

/// No hash, no hash column, no clear password anywhere in the log.
fn assert_no_secrets(log: &Value, passwords: &[&str]) {
    let text = log.to_string();
    assert!(!text.contains("$argon2"), "a hash in the audit log: {text}");
    assert!(
        !text.contains("password_hash"),
        "a hash field in the audit log: {text}"
    );
    for p in passwords {
        assert!(!text.contains(p), "password {p} in the audit log: {text}");
    }
}

#[tokio::test]
async fn audit_needs_audit_view() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    // Everything but AUDIT_VIEW, and nothing but AUDIT_VIEW.
    for (name, perms) in [
        (
            "ALMOST_ADMIN",
            json!([
                "USERS_VIEW",
                "USERS_MANAGE",
                "ROLES_VIEW",
                "ROLES_MANAGE",
                "PLUGINS_VIEW",
                "PLUGINS_MANAGE"
            ]),
        ),
        ("AUDITOR", json!(["AUDIT_VIEW"])),
    ] {
        let (status, role) = app.post("/api/roles", &admin, json!({"name": name})).await;
        assert_eq!(status, StatusCode::CREATED, "{role}");
        let (status, body) = app
            .put(
                &format!("/api/roles/{}/permissions", id_of(&role)),
                &admin,
                json!({"permissions": perms}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for (email, role) in [
        ("v@acme.test", "VIEWER"),
        ("e@acme.test", "EMPLOYEE"),
        ("almost@acme.test", "ALMOST_ADMIN"),
    ] {
        let (_, token) = app.user(&admin, "acme", email, &[role]).await;
        for query in ["", "?action=user.create", "?limit=1"] {
            let (status, body) = app.get(&format!("/api/audit{query}"), &token).await;
            assert_problem(status, &body, StatusCode::FORBIDDEN);
        }
    }
    let (_, auditor) = app
        .user(&admin, "acme", "aud@acme.test", &["AUDITOR"])
        .await;
    let log = audit(&app, &auditor, "").await;
    assert!(log["total"].as_u64().is_some_and(|n| n > 0), "{log}");
    let (status, body) = app.call(Method::GET, "/api/audit", None, None).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn changes_are_recorded_newest_first_with_actor_target_and_states() {
    let app = spawn_app().await;
    let (tenant, admin) = app.tenant("acme").await;
    let admin_id = my_id(&app, &admin).await;
    let new_password = "changed-password-77";

    // 1. user.create
    let (status, user) = app
        .post(
            "/api/users",
            &admin,
            json!({"email": "ann@acme.test", "password": PASSWORD, "name": "Ann",
                   "roles": ["EMPLOYEE"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let user_id = id_of(&user);
    // 2. user.update (name, roles and password)
    let (status, body) = app
        .patch(
            &format!("/api/users/{user_id}"),
            &admin,
            json!({"name": "Anne", "roles": ["VIEWER"], "password": new_password}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // 3. role.create
    let (status, role) = app
        .post(
            "/api/roles",
            &admin,
            json!({"name": "CLERK", "description": "first"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    let role_id = id_of(&role);
    // 4. role.update
    let (status, body) = app
        .patch(
            &format!("/api/roles/{role_id}"),
            &admin,
            json!({"description": "second"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // 5. role.permissions.update
    let (status, body) = app
        .put(
            &format!("/api/roles/{role_id}/permissions"),
            &admin,
            json!({"permissions": ["USERS_VIEW", "AUDIT_VIEW"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // 6. role.delete
    let (status, body) = app.delete(&format!("/api/roles/{role_id}"), &admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // 7. user.delete
    let (status, body) = app.delete(&format!("/api/users/{user_id}"), &admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let log = audit(&app, &admin, "?limit=500").await;
    assert_no_secrets(&log, &[PASSWORD, new_password]);
    let items = log["items"].as_array().expect("items");
    assert_eq!(log["total"].as_u64(), Some(items.len() as u64));

    // Newest first: our seven changes, then the tenant's creation.
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(
        actions,
        [
            "user.delete",
            "role.delete",
            "role.permissions.update",
            "role.update",
            "role.create",
            "user.update",
            "user.create",
            "tenant.create",
        ],
        "{log}"
    );
    let times: Vec<chrono::DateTime<chrono::FixedOffset>> = items
        .iter()
        .map(|e| {
            chrono::DateTime::parse_from_rfc3339(e["at"].as_str().expect("at"))
                .unwrap_or_else(|err| panic!("RFC 3339 at in {e}: {err}"))
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    for entry in &items[..7] {
        assert_eq!(entry["actor_id"], admin_id.as_str(), "{entry}");
        assert!(entry["id"].is_string(), "{entry}");
    }

    let by = |action: &str| -> &Value {
        items
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("{action} in {log}"))
    };

    let e = by("user.create");
    assert_eq!(e["target"], json!({"type": "user", "id": user_id}));
    assert!(e["before"].is_null(), "{e}");
    assert_eq!(e["after"]["email"], "ann@acme.test");
    assert_eq!(e["after"]["name"], "Ann");
    assert_eq!(e["after"]["roles"], json!(["EMPLOYEE"]));

    let e = by("user.update");
    assert_eq!(e["target"], json!({"type": "user", "id": user_id}));
    assert_eq!(e["before"]["name"], "Ann");
    assert_eq!(e["after"]["name"], "Anne");
    assert_eq!(e["before"]["roles"], json!(["EMPLOYEE"]));
    assert_eq!(e["after"]["roles"], json!(["VIEWER"]));

    let e = by("role.create");
    assert_eq!(e["target"], json!({"type": "role", "id": role_id}));
    assert!(e["before"].is_null(), "{e}");
    assert_eq!(e["after"]["name"], "CLERK");

    let e = by("role.update");
    assert_eq!(e["target"], json!({"type": "role", "id": role_id}));
    assert_eq!(e["before"]["description"], "first");
    assert_eq!(e["after"]["description"], "second");

    let e = by("role.permissions.update");
    assert_eq!(e["target"], json!({"type": "role", "id": role_id}));
    let mut granted: Vec<String> =
        serde_json::from_value(e["after"]["permissions"].clone()).expect("list");
    granted.sort();
    assert_eq!(granted, ["AUDIT_VIEW", "USERS_VIEW"]);
    assert_eq!(e["before"]["permissions"], json!([]));

    let e = by("role.delete");
    assert_eq!(e["target"], json!({"type": "role", "id": role_id}));
    assert_eq!(e["before"]["name"], "CLERK");
    assert!(e["after"].is_null(), "{e}");

    let e = by("user.delete");
    assert_eq!(e["target"], json!({"type": "user", "id": user_id}));
    assert_eq!(e["before"]["email"], "ann@acme.test");
    assert!(e["after"].is_null(), "{e}");

    let e = by("tenant.create");
    assert_eq!(e["target"]["type"], "tenant");
    assert_eq!(e["target"]["id"], tenant["id"]);
}

#[tokio::test]
async fn tenant_creation_is_recorded_without_the_admins_hash() {
    let app = spawn_app().await;
    let (tenant, admin) = app.tenant("acme").await;
    for token in [&admin, &app.root_token] {
        let log = audit(&app, token, "?action=tenant.create").await;
        assert_no_secrets(&log, &[PASSWORD]);
        let items = log["items"].as_array().expect("items");
        assert!(
            items.iter().any(|e| e["target"]["type"] == "tenant"
                && e["target"]["id"] == tenant["id"]
                && e["before"].is_null()),
            "{log}"
        );
    }
    let root_id = my_id(&app, &app.root_token).await;
    let log = audit(&app, &app.root_token, "?action=tenant.create").await;
    assert!(
        log["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|e| e["actor_id"] == root_id.as_str() && e["target"]["id"] == tenant["id"]),
        "the operator's own log names it as actor: {log}"
    );
}

#[tokio::test]
async fn action_filter_and_paging() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    for i in 0..3 {
        app.user(&admin, "acme", &format!("u{i}@acme.test"), &["VIEWER"])
            .await;
    }
    let (status, role) = app
        .post("/api/roles", &admin, json!({"name": "CLERK"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{role}");

    let all = audit(&app, &admin, "").await;
    assert_eq!(all["limit"], 50);
    assert_eq!(all["offset"], 0);
    let total = all["total"].as_u64().expect("total");
    assert_eq!(total, 5, "3 users, 1 role, the tenant: {all}");

    let log = audit(&app, &admin, "?action=user.create").await;
    let items = log["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{log}");
    assert_eq!(log["total"], 3);
    assert!(items.iter().all(|e| e["action"] == "user.create"), "{log}");
    let emails: Vec<&str> = items
        .iter()
        .map(|e| e["after"]["email"].as_str().expect("email"))
        .collect();
    assert_eq!(
        emails,
        ["u2@acme.test", "u1@acme.test", "u0@acme.test"],
        "newest first"
    );

    let log = audit(&app, &admin, "?action=role.create").await;
    assert_eq!(log["total"], 1);
    assert_eq!(log["items"][0]["target"]["id"], role["id"]);

    let log = audit(&app, &admin, "?action=no.such.action").await;
    assert_eq!(log["items"], json!([]));
    assert_eq!(log["total"], 0);

    let p1 = audit(&app, &admin, "?limit=2").await;
    let p2 = audit(&app, &admin, "?limit=2&offset=2").await;
    let p3 = audit(&app, &admin, "?limit=2&offset=4").await;
    assert_eq!(p1["limit"], 2);
    assert_eq!(p2["offset"], 2);
    let mut ids: Vec<Value> = Vec::new();
    for (p, n) in [(&p1, 2), (&p2, 2), (&p3, 1)] {
        assert_eq!(p["total"], 5, "{p}");
        let items = p["items"].as_array().expect("items");
        assert_eq!(items.len(), n, "{p}");
        ids.extend(items.iter().map(|e| e["id"].clone()));
    }
    let whole: Vec<Value> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, whole, "pages in order make up the whole log");

    let log = audit(&app, &admin, "?action=user.create&limit=1&offset=1").await;
    assert_eq!(log["total"], 3);
    assert_eq!(log["items"].as_array().expect("items").len(), 1);
    assert_eq!(log["items"][0]["after"]["email"], "u1@acme.test");
}

#[tokio::test]
async fn bad_audit_query_parameters_are_400_naming_them() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let cases = [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=abc", "limit"),
        ("limit=-5", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("actor=someone", "actor"),
        ("action=user.create&bogus=1", "bogus"),
    ];
    for (query, field) in cases {
        let (status, body) = app.get(&format!("/api/audit?{query}"), &admin).await;
        assert_field_error(status, &body, field);
    }
    let (status, body) = app.get("/api/audit?limit=500", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn refused_changes_leave_no_audit_entries() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (user, _) = app.user(&admin, "acme", "e@acme.test", &["EMPLOYEE"]).await;
    let (_, viewer) = app.user(&admin, "acme", "v@acme.test", &["VIEWER"]).await;
    let before = audit(&app, &admin, "?limit=500").await;
    let user_path = format!("/api/users/{}", id_of(&user));
    let super_admin = app.role_id(&admin, "SUPER_ADMIN").await;
    let refused = [
        (
            &viewer,
            Method::PATCH,
            user_path.clone(),
            Some(json!({"name": "x"})),
        ),
        (&viewer, Method::DELETE, user_path.clone(), None),
        (
            &admin,
            Method::PATCH,
            user_path.clone(),
            Some(json!({"roles": ["NOPE"]})),
        ),
        (
            &admin,
            Method::POST,
            "/api/users".to_owned(),
            Some(json!({"email": "e@acme.test", "password": PASSWORD})),
        ),
        (
            &admin,
            Method::POST,
            "/api/roles".to_owned(),
            Some(json!({"name": "ADMIN"})),
        ),
        (
            &admin,
            Method::PUT,
            format!("/api/roles/{super_admin}/permissions"),
            Some(json!({"permissions": []})),
        ),
        (
            &admin,
            Method::DELETE,
            format!("/api/roles/{super_admin}"),
            None,
        ),
    ];
    for (token, method, path, body) in refused {
        let (status, problem) = app.call(method.clone(), &path, Some(token), body).await;
        assert!(
            status.is_client_error(),
            "{method} {path} was refused: {status} {problem}"
        );
    }
    assert_eq!(audit(&app, &admin, "?limit=500").await, before);
}
