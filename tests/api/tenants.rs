//! `/api/tenants`: platform admins create, list, read, rename, deactivate
//! and delete tenants; nobody else may.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

fn new_tenant(slug: &str) -> Value {
    json!({
        "slug": slug,
        "name": format!("Tenant {slug}"),
        "admin": {"email": format!("admin@{slug}.test"), "password": PASSWORD, "name": "Boss"},
    })
}

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("id in {v}"))
        .to_owned()
}

/// The platform admin's own tenant id.
async fn own_tenant_id(app: &TestApp) -> String {
    let (status, me) = app.get("/api/auth/me", &app.root_token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    id_of(&me["tenant"])
}

/// Total of `GET /api/tenants` as root.
async fn tenant_total(app: &TestApp) -> u64 {
    let (status, list) = app.get("/api/tenants", &app.root_token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list["total"].as_u64().expect("total")
}

#[tokio::test]
async fn create_answers_201_with_the_tenant() {
    let app = spawn_app().await;

    let (status, tenant) = app
        .post("/api/tenants", &app.root_token, new_tenant("acme"))
        .await;

    assert_eq!(status, StatusCode::CREATED, "{tenant}");
    assert_eq!(tenant["slug"], "acme");
    assert_eq!(tenant["name"], "Tenant acme");
    assert_eq!(tenant["active"], true);
    let id = id_of(&tenant);
    assert_eq!(id.len(), 36, "UUID string: {id}");
    assert_eq!(id.as_bytes()[14], b'7', "UUID v7: {id}");
    let created = tenant["created_at"].as_str().expect("created_at");
    assert!(
        created.ends_with('Z') && created.contains('T'),
        "RFC 3339 UTC: {created}"
    );
    assert!(
        !tenant.to_string().contains(PASSWORD),
        "no admin password echoed: {tenant}"
    );
}

#[tokio::test]
async fn a_new_tenant_has_the_built_in_roles_and_its_admin_is_super_admin_but_not_platform_admin() {
    let app = spawn_app().await;
    let (tenant, admin) = app.tenant("acme").await;

    let (status, me) = app.get("/api/auth/me", &admin).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["tenant"]["id"], tenant["id"]);
    assert_eq!(me["tenant"]["slug"], "acme");
    assert_eq!(me["roles"], json!(["SUPER_ADMIN"]));
    assert_eq!(me["user"]["email"], "admin@acme.test");
    assert_eq!(me["user"]["platform_admin"], false);

    let (status, roles) = app.get("/api/roles", &admin).await;
    assert_eq!(status, StatusCode::OK, "{roles}");
    let items = roles["items"].as_array().expect("items");
    let mut names: Vec<&str> = items
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["ADMIN", "EMPLOYEE", "SUPER_ADMIN", "VIEWER"]);

    // Seeded grants: ADMIN all core permissions; EMPLOYEE and VIEWER none.
    let grants = |name: &str| -> Vec<String> {
        let role = items
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {roles}"));
        let mut p: Vec<String> =
            serde_json::from_value(role["permissions"].clone()).expect("permissions");
        p.sort();
        p
    };
    assert_eq!(
        grants("ADMIN"),
        [
            "AUDIT_VIEW",
            "PLUGINS_MANAGE",
            "PLUGINS_VIEW",
            "ROLES_MANAGE",
            "ROLES_VIEW",
            "USERS_MANAGE",
            "USERS_VIEW",
        ]
    );
    assert!(grants("EMPLOYEE").is_empty(), "{roles}");
    assert!(grants("VIEWER").is_empty(), "{roles}");

    // A tenant's SUPER_ADMIN cannot see other tenants through /api/tenants.
    let (status, body) = app.get("/api/tenants", &admin).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_taken_slug_is_409_and_nothing_is_created() {
    let app = spawn_app().await;
    app.tenant("acme").await;
    let before = tenant_total(&app).await;

    let mut body = new_tenant("acme");
    body["admin"]["email"] = json!("other@acme.test");
    let (status, problem) = app.post("/api/tenants", &app.root_token, body).await;

    assert_problem(status, &problem, StatusCode::CONFLICT);
    assert_eq!(tenant_total(&app).await, before);
    let (status, _) = app.login("other@acme.test", PASSWORD, Some("acme")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no second admin made");
    // The default tenant's slug is taken too.
    let (status, problem) = app
        .post("/api/tenants", &app.root_token, new_tenant("default"))
        .await;
    assert_problem(status, &problem, StatusCode::CONFLICT);
}

#[tokio::test]
async fn slugs_at_the_pattern_bounds_are_accepted() {
    let app = spawn_app().await;
    for slug in ["a1", "9lives", "acme-corp", &"a".repeat(40), "x-"] {
        let (status, tenant) = app
            .post("/api/tenants", &app.root_token, new_tenant(slug))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{slug}: {tenant}");
        assert_eq!(tenant["slug"], slug);
    }
}

#[tokio::test]
async fn bad_create_bodies_are_400_naming_the_field() {
    let app = spawn_app().await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut body = new_tenant("acme");
        f(&mut body);
        body
    };
    let long_slug = "a".repeat(41);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "uppercase slug",
            with(&|b| b["slug"] = json!("Acme")),
            "slug",
        ),
        ("one-char slug", with(&|b| b["slug"] = json!("a")), "slug"),
        (
            "41-char slug",
            with(&|b| b["slug"] = json!(long_slug)),
            "slug",
        ),
        (
            "leading dash",
            with(&|b| b["slug"] = json!("-acme")),
            "slug",
        ),
        (
            "underscore",
            with(&|b| b["slug"] = json!("acme_corp")),
            "slug",
        ),
        (
            "space in slug",
            with(&|b| b["slug"] = json!("acme corp")),
            "slug",
        ),
        ("empty slug", with(&|b| b["slug"] = json!("")), "slug"),
        ("numeric slug", with(&|b| b["slug"] = json!(42)), "slug"),
        (
            "missing slug",
            with(&|b| {
                b.as_object_mut().expect("object").remove("slug");
            }),
            "slug",
        ),
        (
            "missing name",
            with(&|b| {
                b.as_object_mut().expect("object").remove("name");
            }),
            "name",
        ),
        ("blank name", with(&|b| b["name"] = json!("   ")), "name"),
        (
            "missing admin",
            with(&|b| {
                b.as_object_mut().expect("object").remove("admin");
            }),
            "admin",
        ),
        (
            "admin bad email",
            with(&|b| b["admin"]["email"] = json!("not-an-email")),
            "admin.email",
        ),
        (
            "admin missing email",
            with(&|b| {
                b["admin"].as_object_mut().expect("object").remove("email");
            }),
            "admin.email",
        ),
        (
            "admin short password",
            with(&|b| b["admin"]["password"] = json!("short")),
            "admin.password",
        ),
        (
            "admin long password",
            with(&|b| b["admin"]["password"] = json!("x".repeat(1025))),
            "admin.password",
        ),
        (
            "admin name too long",
            with(&|b| b["admin"]["name"] = json!("n".repeat(201))),
            "admin.name",
        ),
        (
            "admin not an object",
            with(&|b| b["admin"] = json!("admin@acme.test")),
            "admin",
        ),
        (
            "unknown top-level field",
            with(&|b| b["plan"] = json!("gold")),
            "plan",
        ),
        (
            "unknown admin field",
            with(&|b| b["admin"]["platform_admin"] = json!(true)),
            "admin.platform_admin",
        ),
    ];
    for (case, body, field) in cases {
        let (status, problem) = app.post("/api/tenants", &app.root_token, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {problem}");
        assert_field_error(status, &problem, field);
    }
    assert_eq!(tenant_total(&app).await, 1, "none of them was created");
}

#[tokio::test]
async fn array_bodies_with_the_fields_in_order_are_400_and_change_nothing() {
    let app = spawn_app().await;
    let (tenant, _) = app.tenant("acme").await;
    let path = format!("/api/tenants/{}", id_of(&tenant));
    let creates = [
        json!(["arr", "Arr", ["admin@arr.test", PASSWORD, null]]),
        json!(["arr", "Arr", {"email": "admin@arr.test", "password": PASSWORD}]),
    ];
    for body in creates {
        let (status, problem) = app
            .post("/api/tenants", &app.root_token, body.clone())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "POST {body}: {problem}");
        assert_problem(status, &problem, StatusCode::BAD_REQUEST);
    }
    let (status, problem) = app
        .patch(&path, &app.root_token, json!(["Renamed", false]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "PATCH array: {problem}");
    assert_problem(status, &problem, StatusCode::BAD_REQUEST);

    assert_eq!(tenant_total(&app).await, 2, "no tenant created");
    assert_eq!(
        app.get(&path, &app.root_token).await.1,
        tenant,
        "tenant unchanged"
    );
}

#[tokio::test]
async fn list_answers_every_tenant_with_paging() {
    let app = spawn_app().await;
    let (acme, _) = app.tenant("acme").await;
    let (beta, _) = app.tenant("beta").await;

    let (status, list) = app.get("/api/tenants", &app.root_token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["items"].as_array().expect("items");
    let mut slugs: Vec<&str> = items
        .iter()
        .map(|t| t["slug"].as_str().expect("slug"))
        .collect();
    slugs.sort_unstable();
    assert_eq!(slugs, ["acme", "beta", "default"]);
    assert_eq!(list["total"], 3);
    assert_eq!(list["limit"], 50);
    assert_eq!(list["offset"], 0);
    for created in [&acme, &beta] {
        assert!(
            items.contains(created),
            "{created} listed as created: {list}"
        );
    }

    let (status, page) = app
        .get("/api/tenants?limit=2&offset=2", &app.root_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().expect("items").len(), 1);
    assert_eq!(page["total"], 3);

    for (query, field) in [("limit=abc", "limit"), ("offset=-1", "offset")] {
        let (status, problem) = app
            .get(&format!("/api/tenants?{query}"), &app.root_token)
            .await;
        assert_field_error(status, &problem, field);
    }
}

#[tokio::test]
async fn get_one_answers_the_tenant_and_unknown_ids_are_404() {
    let app = spawn_app().await;
    let (tenant, _) = app.tenant("acme").await;
    let path = format!("/api/tenants/{}", id_of(&tenant));

    let (status, body) = app.get(&path, &app.root_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, tenant);

    let unknown = [
        "/api/tenants/01900000-0000-7000-8000-000000000000",
        "/api/tenants/not-a-uuid",
    ];
    for path in unknown {
        let (status, problem) = app.get(path, &app.root_token).await;
        assert_problem(status, &problem, StatusCode::NOT_FOUND);
        let (status, problem) = app.patch(path, &app.root_token, json!({"name": "X"})).await;
        assert_problem(status, &problem, StatusCode::NOT_FOUND);
        let (status, problem) = app.delete(path, &app.root_token).await;
        assert_problem(status, &problem, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn patch_renames_and_toggles_active() {
    let app = spawn_app().await;
    let (tenant, admin) = app.tenant("acme").await;
    let path = format!("/api/tenants/{}", id_of(&tenant));

    let (status, renamed) = app
        .patch(&path, &app.root_token, json!({"name": "Acme Corp"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Acme Corp");
    assert_eq!(renamed["slug"], "acme");
    assert_eq!(renamed["id"], tenant["id"]);
    assert_eq!(renamed["active"], true);
    assert_eq!(app.get(&path, &app.root_token).await.1, renamed);

    let (_, login) = app.login("admin@acme.test", PASSWORD, Some("acme")).await;
    let refresh = login["refresh_token"].as_str().expect("refresh").to_owned();
    let (status, inactive) = app
        .patch(&path, &app.root_token, json!({"active": false}))
        .await;
    assert_eq!(status, StatusCode::OK, "{inactive}");
    assert_eq!(inactive["active"], false);
    assert_eq!(inactive["name"], "Acme Corp", "name kept");
    assert_eq!(
        app.get("/api/auth/me", &admin).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("admin@acme.test", PASSWORD, Some("acme")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, problem) = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_problem(status, &problem, StatusCode::UNAUTHORIZED);

    let (status, active) = app
        .patch(
            &path,
            &app.root_token,
            json!({"active": true, "name": "Acme"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{active}");
    assert_eq!(active["active"], true);
    assert_eq!(active["name"], "Acme");
    let (status, _) = app.login("admin@acme.test", PASSWORD, Some("acme")).await;
    assert_eq!(status, StatusCode::OK, "reactivated tenant's users log in");
}

#[tokio::test]
async fn bad_patch_bodies_are_400_naming_the_field() {
    let app = spawn_app().await;
    let (tenant, _) = app.tenant("acme").await;
    let path = format!("/api/tenants/{}", id_of(&tenant));
    let cases = [
        (json!({"slug": "other"}), "slug"),
        (json!({"plan": "gold"}), "plan"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"active": "no"}), "active"),
    ];
    for (body, field) in cases {
        let (status, problem) = app.patch(&path, &app.root_token, body).await;
        assert_field_error(status, &problem, field);
    }
    assert_eq!(app.get(&path, &app.root_token).await.1, tenant, "unchanged");
}

#[tokio::test]
async fn delete_answers_204_and_the_tenant_and_its_users_are_gone() {
    let app = spawn_app().await;
    let (tenant, admin) = app.tenant("acme").await;
    app.user(&admin, "acme", "e@acme.test", &["EMPLOYEE"]).await;
    let path = format!("/api/tenants/{}", id_of(&tenant));
    let (_, login) = app.login("e@acme.test", PASSWORD, Some("acme")).await;
    let refresh = login["refresh_token"].as_str().expect("refresh").to_owned();

    let (status, body) = app.delete(&path, &app.root_token).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null, "204 has no body");

    let (status, problem) = app.get(&path, &app.root_token).await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND);
    for email in ["admin@acme.test", "e@acme.test"] {
        let (status, problem) = app.login(email, PASSWORD, Some("acme")).await;
        assert_problem(status, &problem, StatusCode::UNAUTHORIZED);
        let (status, _) = app.login(email, PASSWORD, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{email} without tenant");
    }
    assert_eq!(
        app.get("/api/auth/me", &admin).await.0,
        StatusCode::UNAUTHORIZED,
        "an earlier token dies with its tenant"
    );
    let (status, problem) = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_problem(status, &problem, StatusCode::UNAUTHORIZED);
    assert_eq!(tenant_total(&app).await, 1);
    let (status, problem) = app.delete(&path, &app.root_token).await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_platform_admin_cannot_delete_or_deactivate_its_own_tenant() {
    let app = spawn_app().await;
    let own = format!("/api/tenants/{}", own_tenant_id(&app).await);

    let (status, problem) = app.delete(&own, &app.root_token).await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST);
    let (status, problem) = app
        .patch(&own, &app.root_token, json!({"active": false}))
        .await;
    assert_problem(status, &problem, StatusCode::BAD_REQUEST);

    let (status, tenant) = app.get(&own, &app.root_token).await;
    assert_eq!(status, StatusCode::OK, "{tenant}");
    assert_eq!(tenant["active"], true);
    // Renaming its own tenant is fine.
    let (status, renamed) = app
        .patch(&own, &app.root_token, json!({"name": "Operators"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Operators");
}

#[tokio::test]
async fn a_tenant_super_admin_gets_403_on_every_tenant_route() {
    let app = spawn_app().await;
    let (acme, acme_admin) = app.tenant("acme").await;
    let own = format!("/api/tenants/{}", id_of(&acme));
    let default = format!("/api/tenants/{}", own_tenant_id(&app).await);
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/tenants".to_owned(), None),
        (
            Method::POST,
            "/api/tenants".to_owned(),
            Some(new_tenant("sneaky")),
        ),
        (Method::GET, own.clone(), None),
        (Method::GET, default.clone(), None),
        (Method::PATCH, own.clone(), Some(json!({"name": "Mine"}))),
        (
            Method::PATCH,
            default.clone(),
            Some(json!({"active": false})),
        ),
        (Method::DELETE, own.clone(), None),
        (Method::DELETE, default.clone(), None),
    ];
    for (method, path, body) in cases {
        let (status, problem) = app
            .call(method.clone(), &path, Some(&acme_admin), body)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {problem}");
        assert_problem(status, &problem, StatusCode::FORBIDDEN);
    }

    // Nothing changed.
    assert_eq!(app.get(&own, &app.root_token).await.1, acme);
    assert_eq!(tenant_total(&app).await, 2);
    let (_, me) = app.get("/api/auth/me", &app.root_token).await;
    assert_eq!(me["tenant"]["slug"], "default");
}

#[tokio::test]
async fn tenant_routes_without_a_token_are_401() {
    let app = spawn_app().await;
    let id = own_tenant_id(&app).await;
    let one = format!("/api/tenants/{id}");
    let cases = [
        (Method::GET, "/api/tenants", None),
        (Method::POST, "/api/tenants", Some(new_tenant("anon"))),
        (Method::GET, one.as_str(), None),
        (Method::PATCH, one.as_str(), Some(json!({"name": "X"}))),
        (Method::DELETE, one.as_str(), None),
    ];
    for (method, path, body) in cases {
        let (status, problem) = app.call(method, path, None, body).await;
        assert_problem(status, &problem, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(tenant_total(&app).await, 1);
}
