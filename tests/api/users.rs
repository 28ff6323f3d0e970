//! `/api/users`: CRUD, shapes, validation, paging, uniqueness, permission
//! checks, privilege-escalation guards and self-protection. Every refused
//! request leaves the data as it was.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const USER_KEYS: [&str; 7] = [
    "id",
    "email",
    "name",
    "roles",
    "active",
    "platform_admin",
    "created_at",
];

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("id in {v}"))
        .to_owned()
}

/// Assert a JSON value is a user in the API's shape, with no password hash.
fn assert_user_shape(user: &Value) {
    for key in USER_KEYS {
        assert!(user.get(key).is_some(), "user.{key} in {user}");
    }
    for key in ["password", "password_hash", "hash", "tenant_id"] {
        assert!(user.get(key).is_none(), "no {key} in {user}");
    }
    assert!(!user.to_string().contains("$argon2"), "no hash in {user}");
    let id = uuid::Uuid::parse_str(user["id"].as_str().expect("id string")).expect("uuid");
    assert_eq!(id.get_version_num(), 7, "UUID v7: {id}");
    chrono::DateTime::parse_from_rfc3339(user["created_at"].as_str().expect("created_at"))
        .expect("RFC 3339 created_at");
    assert!(user["roles"].is_array(), "roles array in {user}");
    assert!(user["active"].is_boolean(), "active bool in {user}");
    assert!(
        user["platform_admin"].is_boolean(),
        "platform_admin in {user}"
    );
}

/// Every user of the caller's tenant, as the SUPER_ADMIN `token` sees them.
async fn all_users(app: &TestApp, token: &str) -> Value {
    let (status, body) = app.get("/api/users?limit=500", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].clone()
}

async fn read_user(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/users/{id}"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Create a role with these permissions (as `token`) and return its id.
async fn role_with(app: &TestApp, token: &str, name: &str, permissions: &[&str]) -> String {
    let (status, role) = app.post("/api/roles", token, json!({"name": name})).await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    let id = id_of(&role);
    let (status, body) = app
        .put(
            &format!("/api/roles/{id}/permissions"),
            token,
            json!({"permissions": permissions}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

#[tokio::test]
async fn create_returns_201_with_the_user_and_never_a_hash() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (status, user) = app
        .post(
            "/api/users",
            &admin,
            json!({"email": "ann@acme.test", "password": PASSWORD, "name": "Ann",
                   "roles": ["EMPLOYEE", "VIEWER"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_user_shape(&user);
    assert_eq!(user["email"], "ann@acme.test");
    assert_eq!(user["name"], "Ann");
    let mut roles: Vec<String> = serde_json::from_value(user["roles"].clone()).expect("roles");
    roles.sort();
    assert_eq!(roles, ["EMPLOYEE", "VIEWER"]);
    assert_eq!(user["active"], true);
    assert_eq!(user["platform_admin"], false);

    // GET answers the same user.
    let read = read_user(&app, &admin, &id_of(&user)).await;
    assert_user_shape(&read);
    assert_eq!(read, user);
    // And the new user can log in.
    let (status, body) = app.login("ann@acme.test", PASSWORD, Some("acme")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn create_without_name_or_roles_uses_defaults() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (status, user) = app
        .post(
            "/api/users",
            &admin,
            json!({"email": "bare@acme.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_user_shape(&user);
    assert_eq!(user["roles"], json!([]));
    let token = app.token("bare@acme.test", PASSWORD, Some("acme")).await;
    let (status, me) = app.get("/api/auth/me", &token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["permissions"], json!([]));
}

#[tokio::test]
async fn list_is_paged_with_items_total_limit_offset() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    for i in 0..4 {
        app.user(&admin, "acme", &format!("u{i}@acme.test"), &["VIEWER"])
            .await;
    }
    // 4 users plus the tenant's SUPER_ADMIN.
    let (status, page) = app.get("/api/users", &admin).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 5);
    assert_eq!(page["limit"], 50);
    assert_eq!(page["offset"], 0);
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 5);
    for user in items {
        assert_user_shape(user);
    }

    let (status, p1) = app.get("/api/users?limit=2&offset=0", &admin).await;
    assert_eq!(status, StatusCode::OK, "{p1}");
    let (_, p2) = app.get("/api/users?limit=2&offset=2", &admin).await;
    let (_, p3) = app.get("/api/users?limit=2&offset=4", &admin).await;
    let (_, p4) = app.get("/api/users?limit=2&offset=10", &admin).await;
    assert_eq!(p1["limit"], 2);
    assert_eq!(p2["offset"], 2);
    for p in [&p1, &p2, &p3, &p4] {
        assert_eq!(p["total"], 5, "{p}");
    }
    assert_eq!(p1["items"].as_array().expect("items").len(), 2);
    assert_eq!(p2["items"].as_array().expect("items").len(), 2);
    assert_eq!(p3["items"].as_array().expect("items").len(), 1);
    assert_eq!(p4["items"], json!([]));
    // Pages do not overlap and together are the whole list.
    let mut paged: Vec<String> = [&p1, &p2, &p3]
        .iter()
        .flat_map(|p| p["items"].as_array().expect("items").iter().map(id_of))
        .collect();
    let mut whole: Vec<String> = items.iter().map(id_of).collect();
    paged.sort();
    whole.sort();
    assert_eq!(paged, whole);

    // The bounds themselves are accepted.
    for q in ["limit=1", "limit=500", "offset=0"] {
        let (status, body) = app.get(&format!("/api/users?{q}"), &admin).await;
        assert_eq!(status, StatusCode::OK, "{q}: {body}");
    }
}

#[tokio::test]
async fn bad_list_query_parameters_are_400_naming_them() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let cases = [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=", "limit"),
        ("limit=1.5", "limit"),
        ("offset=-1", "offset"),
        ("offset=abc", "offset"),
        ("sort=email", "sort"),
        ("tenant_id=x", "tenant_id"),
        ("limit=10&bogus=1", "bogus"),
    ];
    for (query, field) in cases {
        let (status, body) = app.get(&format!("/api/users?{query}"), &admin).await;
        assert_field_error(status, &body, field);
    }
}

#[tokio::test]
async fn invalid_create_bodies_are_400_naming_the_field_and_create_nothing() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let before = all_users(&app, &admin).await;
    let ok_email = "new@acme.test";
    let cases = [
        (json!({"password": PASSWORD}), "email"),
        (json!({"email": ok_email}), "password"),
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"email": "a b@acme.test", "password": PASSWORD}),
            "email",
        ),
        (json!({"email": "", "password": PASSWORD}), "email"),
        (json!({"email": "x@", "password": PASSWORD}), "email"),
        (
            json!({"email": ok_email, "password": "123456789"}),
            "password",
        ),
        (json!({"email": ok_email, "password": ""}), "password"),
        (
            json!({"email": ok_email, "password": "x".repeat(1025)}),
            "password",
        ),
        (json!({"email": 42, "password": PASSWORD}), "email"),
        (json!({"email": null, "password": PASSWORD}), "email"),
        (
            json!({"email": ok_email, "password": 1_234_567_890_123_i64}),
            "password",
        ),
        (
            json!({"email": ok_email, "password": PASSWORD, "name": 5}),
            "name",
        ),
        (
            json!({"email": ok_email, "password": PASSWORD, "name": "n".repeat(201)}),
            "name",
        ),
        (
            json!({"email": ok_email, "password": PASSWORD, "roles": "EMPLOYEE"}),
            "roles",
        ),
        (
            json!({"email": ok_email, "password": PASSWORD, "roles": ["NO_SUCH_ROLE"]}),
            "roles",
        ),
        (
            json!({"email": ok_email, "password": PASSWORD, "roles": ["EMPLOYEE", "employee"]}),
            "roles",
        ),
        (
            json!({"email": ok_email, "password": PASSWORD, "platform_admin": true}),
            "platform_admin",
        ),
        (
            json!({"email": ok_email, "password": PASSWORD, "active": false}),
            "active",
        ),
        (
            json!({"email": ok_email, "password": PASSWORD, "tenant_id": "x"}),
            "tenant_id",
        ),
        (
            json!({"email": ok_email, "password": PASSWORD, "nickname": "n"}),
            "nickname",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = app.post("/api/users", &admin, body.clone()).await;
        assert_field_error(status, &problem, field);
    }
    assert_eq!(all_users(&app, &admin).await, before);
    let (status, _) = app.login(ok_email, PASSWORD, Some("acme")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_or_missing_json_bodies_are_400() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (user, _) = app.user(&admin, "acme", "e@acme.test", &["EMPLOYEE"]).await;
    let before = all_users(&app, &admin).await;
    let user_path = format!("/api/users/{}", id_of(&user));
    let bodies = [
        "{",
        "not json",
        r#"{"email": "x@acme.test", "password": "password-123",}"#,
        r#"{"email": "x@acme.test"} trailing"#,
        "\"a string\"",
        "",
    ];
    for (method, path) in [
        (Method::POST, "/api/users"),
        (Method::PATCH, user_path.as_str()),
    ] {
        for raw in bodies {
            let resp = app
                .request(method.clone(), path, Some(&admin))
                .header(CONTENT_TYPE, "application/json")
                .body(raw)
                .send()
                .await
                .expect("sent");
            let (status, problem) = split(resp).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{method} {raw:?}: {problem}"
            );
            assert_problem(status, &problem, StatusCode::BAD_REQUEST);
        }
    }
    assert_eq!(all_users(&app, &admin).await, before);
}

#[tokio::test]
async fn a_json_array_instead_of_an_object_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (user, _) = app.user(&admin, "acme", "e@acme.test", &["EMPLOYEE"]).await;
    let id = id_of(&user);
    let path = format!("/api/users/{id}");
    let before = all_users(&app, &admin).await;
    // Positional arrays that would be valid bodies if read as the object's
    // fields in order: a body is a JSON object, nothing else.
    let cases = [
        (
            Method::POST,
            "/api/users",
            json!(["arr@acme.test", PASSWORD, "Arr", ["EMPLOYEE"]]),
        ),
        (Method::PATCH, path.as_str(), json!(["Renamed"])),
        (Method::PATCH, path.as_str(), json!([])),
    ];
    for (method, p, body) in cases {
        let (status, problem) = app
            .call(method.clone(), p, Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {body}: {problem}"
        );
        assert_problem(status, &problem, StatusCode::BAD_REQUEST);
    }
    assert_eq!(all_users(&app, &admin).await, before);
    let (status, _) = app.login("arr@acme.test", PASSWORD, Some("acme")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no user was created");
}

#[tokio::test]
async fn duplicate_email_is_409_case_insensitively() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    app.user(&admin, "acme", "dup@acme.test", &["VIEWER"]).await;
    let before = all_users(&app, &admin).await;
    for email in ["dup@acme.test", "DUP@acme.test", "Dup@Acme.Test"] {
        let (status, body) = app
            .post(
                "/api/users",
                &admin,
                json!({"email": email, "password": "other-password-9", "roles": ["EMPLOYEE"]}),
            )
            .await;
        assert_problem(status, &body, StatusCode::CONFLICT);
    }
    assert_eq!(all_users(&app, &admin).await, before);
    // The original password still logs in: nothing was overwritten.
    let (status, _) = app.login("dup@acme.test", PASSWORD, Some("acme")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn patch_changes_only_the_given_fields_and_returns_200() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (user, _) = app
        .user(&admin, "acme", "pat@acme.test", &["EMPLOYEE"])
        .await;
    let path = format!("/api/users/{}", id_of(&user));

    let (status, after) = app.patch(&path, &admin, json!({"name": "Pat"})).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_user_shape(&after);
    assert_eq!(after["name"], "Pat");
    for key in [
        "id",
        "email",
        "roles",
        "active",
        "platform_admin",
        "created_at",
    ] {
        assert_eq!(after[key], user[key], "{key} unchanged");
    }

    let (status, after) = app.patch(&path, &admin, json!({"roles": ["VIEWER"]})).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["roles"], json!(["VIEWER"]));
    assert_eq!(after["name"], "Pat");

    let (status, after) = app.patch(&path, &admin, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["roles"], json!(["VIEWER"]));
    assert_eq!(after["name"], "Pat");

    assert_eq!(read_user(&app, &admin, &id_of(&user)).await, after);
}

#[tokio::test]
async fn invalid_patch_bodies_are_400_naming_the_field_and_change_nothing() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (user, _) = app.user(&admin, "acme", "e@acme.test", &["EMPLOYEE"]).await;
    let id = id_of(&user);
    let path = format!("/api/users/{id}");
    let before = read_user(&app, &admin, &id).await;
    let cases = [
        (json!({"password": "123456789"}), "password"),
        (json!({"password": "x".repeat(1025)}), "password"),
        (json!({"password": 1_234_567_890_123_i64}), "password"),
        (json!({"name": 5}), "name"),
        (json!({"name": "n".repeat(201)}), "name"),
        (json!({"active": "no"}), "active"),
        (json!({"active": 0}), "active"),
        (json!({"roles": "VIEWER"}), "roles"),
        (json!({"roles": ["NOPE"]}), "roles"),
        (
            json!({"roles": ["VIEWER", "NOPE"], "name": "Changed"}),
            "roles",
        ),
        (json!({"email": "new@acme.test"}), "email"),
        (json!({"platform_admin": true}), "platform_admin"),
        (json!({"id": "x"}), "id"),
        (json!({"name": "Changed", "bogus": 1}), "bogus"),
    ];
    for (body, field) in cases {
        let (status, problem) = app.patch(&path, &admin, body.clone()).await;
        assert_field_error(status, &problem, field);
        assert_eq!(read_user(&app, &admin, &id).await, before, "after {body}");
    }
    // The password was not changed by any of them.
    let (status, _) = app.login("e@acme.test", PASSWORD, Some("acme")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn delete_is_204_then_the_user_is_404_and_its_token_401() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (user, token) = app.user(&admin, "acme", "del@acme.test", &["ADMIN"]).await;
    let id = id_of(&user);
    let path = format!("/api/users/{id}");
    assert_eq!(app.get("/api/users", &token).await.0, StatusCode::OK);

    let (status, body) = app.delete(&path, &admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null, "204 has no body");

    let (status, body) = app.get(&path, &admin).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = app.patch(&path, &admin, json!({"name": "x"})).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = app.delete(&path, &admin).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    assert!(
        !all_users(&app, &admin)
            .await
            .as_array()
            .expect("items")
            .iter()
            .any(|u| u["id"] == id.as_str()),
        "deleted user not listed"
    );
    let (status, body) = app.get("/api/auth/me", &token).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    let (status, body) = app.get("/api/users", &token).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    let (status, _) = app.login("del@acme.test", PASSWORD, Some("acme")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_user_ids_are_404() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    for id in ["0190aaaa-0000-7000-8000-000000000000", "not-a-uuid"] {
        let path = format!("/api/users/{id}");
        let (status, body) = app.get(&path, &admin).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND);
        let (status, body) = app.patch(&path, &admin, json!({"name": "x"})).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND);
        let (status, body) = app.delete(&path, &admin).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn password_change_via_patch_replaces_the_old_password() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (user, _) = app
        .user(&admin, "acme", "pw@acme.test", &["EMPLOYEE"])
        .await;
    let new_password = "brand-new-password-42";
    let (status, after) = app
        .patch(
            &format!("/api/users/{}", id_of(&user)),
            &admin,
            json!({"password": new_password}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_user_shape(&after);
    let (status, body) = app.login("pw@acme.test", PASSWORD, Some("acme")).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    let (status, body) = app.login("pw@acme.test", new_password, Some("acme")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn user_without_users_view_gets_403_on_every_verb_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (target, _) = app
        .user(&admin, "acme", "target@acme.test", &["EMPLOYEE"])
        .await;
    let (_, viewer) = app
        .user(&admin, "acme", "viewer@acme.test", &["VIEWER"])
        .await;
    let before = all_users(&app, &admin).await;
    let path = format!("/api/users/{}", id_of(&target));
    let calls = [
        (Method::GET, "/api/users", None),
        (Method::GET, path.as_str(), None),
        (
            Method::POST,
            "/api/users",
            Some(json!({"email": "x@acme.test", "password": PASSWORD, "roles": ["VIEWER"]})),
        ),
        (
            Method::PATCH,
            path.as_str(),
            Some(json!({"name": "hacked"})),
        ),
        (Method::DELETE, path.as_str(), None),
    ];
    for (method, p, body) in calls {
        let (status, problem) = app.call(method.clone(), p, Some(&viewer), body).await;
        assert_problem(status, &problem, StatusCode::FORBIDDEN);
    }
    assert_eq!(all_users(&app, &admin).await, before);
}

#[tokio::test]
async fn user_with_only_users_view_can_read_but_not_write() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    role_with(&app, &admin, "USER_READER", &["USERS_VIEW"]).await;
    let (target, _) = app
        .user(&admin, "acme", "target@acme.test", &["EMPLOYEE"])
        .await;
    let (reader_user, reader) = app
        .user(&admin, "acme", "reader@acme.test", &["USER_READER"])
        .await;
    let path = format!("/api/users/{}", id_of(&target));
    let own_path = format!("/api/users/{}", id_of(&reader_user));

    let (status, list) = app.get("/api/users", &reader).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 3);
    let (status, one) = app.get(&path, &reader).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["email"], "target@acme.test");

    let before = all_users(&app, &admin).await;
    let calls = [
        (
            Method::POST,
            "/api/users",
            Some(json!({"email": "x@acme.test", "password": PASSWORD})),
        ),
        (
            Method::PATCH,
            path.as_str(),
            Some(json!({"name": "hacked"})),
        ),
        (
            Method::PATCH,
            own_path.as_str(),
            Some(json!({"roles": ["ADMIN"]})),
        ),
        (Method::DELETE, path.as_str(), None),
    ];
    for (method, p, body) in calls {
        let (status, problem) = app.call(method.clone(), p, Some(&reader), body).await;
        assert_problem(status, &problem, StatusCode::FORBIDDEN);
    }
    assert_eq!(all_users(&app, &admin).await, before);
}

#[tokio::test]
async fn admin_cannot_assign_super_admin() {
    let app = spawn_app().await;
    let (_, root) = app.tenant("acme").await;
    let (admin_user, admin) = app
        .user(&root, "acme", "admin2@acme.test", &["ADMIN"])
        .await;
    let (employee, _) = app
        .user(&root, "acme", "emp@acme.test", &["EMPLOYEE"])
        .await;
    let before = all_users(&app, &root).await;

    let (status, body) = app
        .post(
            "/api/users",
            &admin,
            json!({"email": "boss@acme.test", "password": PASSWORD, "roles": ["SUPER_ADMIN"]}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    for (target, roles) in [
        (&employee, json!(["SUPER_ADMIN"])),
        (&employee, json!(["EMPLOYEE", "SUPER_ADMIN"])),
        (&admin_user, json!(["ADMIN", "SUPER_ADMIN"])),
    ] {
        let (status, body) = app
            .patch(
                &format!("/api/users/{}", id_of(target)),
                &admin,
                json!({"roles": roles}),
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN);
    }
    assert_eq!(all_users(&app, &root).await, before);
    let (_, me) = app.get("/api/auth/me", &admin).await;
    assert_eq!(me["roles"], json!(["ADMIN"]));
}

#[tokio::test]
async fn admin_cannot_assign_a_role_holding_a_permission_it_lacks() {
    let app = spawn_app().await;
    let (_, root) = app.tenant("acme").await;
    // ADMIN loses AUDIT_VIEW; AUDITOR holds it.
    let admin_role = app.role_id(&root, "ADMIN").await;
    let (status, body) = app
        .put(
            &format!("/api/roles/{admin_role}/permissions"),
            &root,
            json!({"permissions": ["USERS_VIEW", "USERS_MANAGE", "ROLES_VIEW", "ROLES_MANAGE",
                                   "PLUGINS_VIEW", "PLUGINS_MANAGE"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    role_with(&app, &root, "AUDITOR", &["AUDIT_VIEW"]).await;
    let (_, admin) = app
        .user(&root, "acme", "admin2@acme.test", &["ADMIN"])
        .await;
    let (employee, _) = app
        .user(&root, "acme", "emp@acme.test", &["EMPLOYEE"])
        .await;
    let before = all_users(&app, &root).await;

    let (status, body) = app
        .post(
            "/api/users",
            &admin,
            json!({"email": "aud@acme.test", "password": PASSWORD, "roles": ["AUDITOR"]}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("AUDIT_VIEW")),
        "403 names the permission: {body}"
    );
    let (status, body) = app
        .patch(
            &format!("/api/users/{}", id_of(&employee)),
            &admin,
            json!({"roles": ["EMPLOYEE", "AUDITOR"]}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("AUDIT_VIEW")),
        "403 names the permission: {body}"
    );
    // Nor to itself.
    let (_, me) = app.get("/api/auth/me", &admin).await;
    let (status, body) = app
        .patch(
            &format!("/api/users/{}", me["user"]["id"].as_str().expect("id")),
            &admin,
            json!({"roles": ["ADMIN", "AUDITOR"]}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(all_users(&app, &root).await, before);
    assert_eq!(app.get("/api/audit", &admin).await.0, StatusCode::FORBIDDEN);
    // Roles whose permissions the admin holds are fine.
    let (status, body) = app
        .patch(
            &format!("/api/users/{}", id_of(&employee)),
            &admin,
            json!({"roles": ["VIEWER"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn admin_cannot_change_or_delete_a_super_admin() {
    let app = spawn_app().await;
    let (_, root) = app.tenant("acme").await;
    let (_, admin) = app
        .user(&root, "acme", "admin2@acme.test", &["ADMIN"])
        .await;
    let (_, me) = app.get("/api/auth/me", &root).await;
    let root_id = me["user"]["id"].as_str().expect("id").to_owned();
    let path = format!("/api/users/{root_id}");
    let before = read_user(&app, &root, &root_id).await;
    let patches = [
        json!({"name": "Pwned"}),
        json!({"active": false}),
        json!({"password": "taken-over-password"}),
        json!({"roles": ["VIEWER"]}),
    ];
    for body in patches {
        let (status, problem) = app.patch(&path, &admin, body.clone()).await;
        assert_problem(status, &problem, StatusCode::FORBIDDEN);
        assert_eq!(
            read_user(&app, &root, &root_id).await,
            before,
            "after {body}"
        );
    }
    let (status, problem) = app.delete(&path, &admin).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN);
    assert_eq!(read_user(&app, &root, &root_id).await, before);
    let (status, _) = app.login("admin@acme.test", PASSWORD, Some("acme")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the SUPER_ADMIN's password is intact"
    );
    assert_eq!(app.get("/api/auth/me", &root).await.0, StatusCode::OK);
}

#[tokio::test]
async fn deleting_or_deactivating_yourself_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, root) = app.tenant("acme").await;
    let (admin_user, admin) = app
        .user(&root, "acme", "admin2@acme.test", &["ADMIN"])
        .await;
    let (_, me) = app.get("/api/auth/me", &root).await;
    let root_id = me["user"]["id"].as_str().expect("id").to_owned();
    for (token, id) in [(&root, root_id), (&admin, id_of(&admin_user))] {
        let path = format!("/api/users/{id}");
        let before = read_user(&app, &root, &id).await;
        let (status, body) = app.delete(&path, token).await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST);
        let (status, body) = app.patch(&path, token, json!({"active": false})).await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST);
        let (status, body) = app
            .patch(&path, token, json!({"name": "Renamed", "active": false}))
            .await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(read_user(&app, &root, &id).await, before);
        assert_eq!(app.get("/api/auth/me", token).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn deactivated_user_is_shown_inactive_and_can_be_reactivated() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (user, _) = app
        .user(&admin, "acme", "off@acme.test", &["EMPLOYEE"])
        .await;
    let path = format!("/api/users/{}", id_of(&user));
    let (status, after) = app.patch(&path, &admin, json!({"active": false})).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["active"], false);
    assert_eq!(
        read_user(&app, &admin, &id_of(&user)).await["active"],
        false
    );
    let (status, _) = app.login("off@acme.test", PASSWORD, Some("acme")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, after) = app.patch(&path, &admin, json!({"active": true})).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["active"], true);
    let (status, _) = app.login("off@acme.test", PASSWORD, Some("acme")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_user_manager_cannot_hand_out_or_take_over_more_than_it_holds() {
    let app = spawn_app().await;
    let (_, root) = app.tenant("acme").await;
    role_with(&app, &root, "USER_MANAGER", &["USERS_VIEW", "USERS_MANAGE"]).await;
    let (manager_user, manager) = app
        .user(&root, "acme", "m@acme.test", &["USER_MANAGER"])
        .await;
    let (admin_user, _) = app.user(&root, "acme", "a@acme.test", &["ADMIN"]).await;
    let (employee, _) = app.user(&root, "acme", "e@acme.test", &["EMPLOYEE"]).await;
    let before = all_users(&app, &root).await;

    // ADMIN holds ROLES_MANAGE and more, which the manager lacks.
    let (status, body) = app
        .post(
            "/api/users",
            &manager,
            json!({"email": "new@acme.test", "password": PASSWORD, "roles": ["ADMIN"]}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    for target in [&employee, &manager_user] {
        let (status, body) = app
            .patch(
                &format!("/api/users/{}", id_of(target)),
                &manager,
                json!({"roles": ["ADMIN"]}),
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN);
    }
    // Taking over the ADMIN user (its password, or deleting it) is refused.
    let admin_path = format!("/api/users/{}", id_of(&admin_user));
    let (status, body) = app
        .patch(
            &admin_path,
            &manager,
            json!({"password": "taken-over-password"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = app.delete(&admin_path, &manager).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(all_users(&app, &root).await, before);
    let (status, _) = app.login("a@acme.test", PASSWORD, Some("acme")).await;
    assert_eq!(status, StatusCode::OK, "the ADMIN's password is intact");
    assert!(
        !app.get("/api/auth/me", &manager).await.1["permissions"]
            .as_array()
            .expect("permissions")
            .iter()
            .any(|p| p == "ROLES_MANAGE")
    );

    // Within its reach it works.
    let (status, body) = app
        .patch(
            &format!("/api/users/{}", id_of(&employee)),
            &manager,
            json!({"roles": ["VIEWER"], "name": "Emp"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(
            "/api/users",
            &manager,
            json!({"email": "new@acme.test", "password": PASSWORD, "roles": ["EMPLOYEE"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
