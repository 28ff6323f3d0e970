//! `/api/roles`, `/api/roles/{id}/permissions` and `/api/permissions`:
//! CRUD, the built-in roles and their seeded grants, name rules, grant
//! replacement, no granting of what one lacks, and no sawing off one's own
//! branch (the last path to ROLES_MANAGE). Refused requests change nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const CORE: [&str; 7] = [
    "AUDIT_VIEW",
    "PLUGINS_MANAGE",
    "PLUGINS_VIEW",
    "ROLES_MANAGE",
    "ROLES_VIEW",
    "USERS_MANAGE",
    "USERS_VIEW",
];

const BUILTIN: [&str; 4] = ["SUPER_ADMIN", "ADMIN", "EMPLOYEE", "VIEWER"];

/// Everything ADMIN holds except ROLES_MANAGE.
const CORE_WITHOUT_ROLES_MANAGE: [&str; 6] = [
    "AUDIT_VIEW",
    "PLUGINS_MANAGE",
    "PLUGINS_VIEW",
    "ROLES_VIEW",
    "USERS_MANAGE",
    "USERS_VIEW",
];

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("id in {v}"))
        .to_owned()
}

fn sorted(list: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        serde_json::from_value(list.clone()).unwrap_or_else(|_| panic!("string list: {list}"));
    v.sort();
    v
}

fn strings(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

/// All roles of the caller's tenant.
async fn roles(app: &TestApp, token: &str) -> Value {
    let (status, body) = app.get("/api/roles", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].clone()
}

async fn role(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/roles/{id}"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn grants(app: &TestApp, token: &str, id: &str) -> Vec<String> {
    let (status, body) = app
        .get(&format!("/api/roles/{id}/permissions"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    sorted(&body["permissions"])
}

async fn create_role(app: &TestApp, token: &str, name: &str, permissions: &[&str]) -> String {
    let (status, role) = app.post("/api/roles", token, json!({"name": name})).await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    let id = id_of(&role);
    if !permissions.is_empty() {
        let (status, body) = app
            .put(
                &format!("/api/roles/{id}/permissions"),
                token,
                json!({"permissions": permissions}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    id
}

async fn my_permissions(app: &TestApp, token: &str) -> Vec<String> {
    let (status, me) = app.get("/api/auth/me", token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    sorted(&me["permissions"])
}

#[tokio::test]
async fn permission_catalog_lists_the_core_permissions_with_source_core() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (status, body) = app.get("/api/permissions", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"].as_array().expect("items");
    for item in items {
        assert!(item["name"].is_string(), "{item}");
        assert!(item["description"].is_string(), "{item}");
        assert!(item["source"].is_string(), "{item}");
    }
    let mut core: Vec<String> = items
        .iter()
        .filter(|p| p["source"] == "core")
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect();
    core.sort();
    assert_eq!(core, strings(&CORE));
    for name in CORE {
        let entry = items
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {body}"));
        assert_eq!(entry["source"], "core", "{entry}");
        assert!(
            entry["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{entry}"
        );
    }
}

#[tokio::test]
async fn built_in_roles_carry_the_seeded_grants() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (_, catalog) = app.get("/api/permissions", &admin).await;
    let mut all: Vec<String> = catalog["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect();
    all.sort();

    let list = roles(&app, &admin).await;
    for name in BUILTIN {
        let r = list
            .as_array()
            .expect("items")
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("built-in {name} in {list}"));
        let expected = match name {
            "SUPER_ADMIN" => all.clone(),
            "ADMIN" => strings(&CORE),
            _ => Vec::new(),
        };
        assert_eq!(sorted(&r["permissions"]), expected, "{name} in the list");
        let id = id_of(r);
        assert_eq!(grants(&app, &admin, &id).await, expected, "{name} grants");
        assert_eq!(
            sorted(&role(&app, &admin, &id).await["permissions"]),
            expected,
            "{name} read"
        );
    }
    // A fresh tenant has exactly the built-in roles.
    assert_eq!(list.as_array().expect("items").len(), 4, "{list}");
}

#[tokio::test]
async fn role_list_is_a_paged_list() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    create_role(&app, &admin, "CLERK", &[]).await;
    let (status, body) = app.get("/api/roles", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"].as_array().expect("items").len(), 5);
    assert_eq!(body["total"], 5, "{body}");
    assert_eq!(body["limit"], 50, "{body}");
    assert_eq!(body["offset"], 0, "{body}");
    let (status, body) = app.get("/api/roles?limit=2&offset=1", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"].as_array().expect("items").len(), 2, "{body}");
    assert_eq!(body["total"], 5, "{body}");
    assert_eq!(body["limit"], 2, "{body}");
    assert_eq!(body["offset"], 1, "{body}");
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("bogus=1", "bogus"),
    ] {
        let (status, body) = app.get(&format!("/api/roles?{query}"), &admin).await;
        assert_field_error(status, &body, field);
    }
}

#[tokio::test]
async fn custom_role_crud_with_status_codes() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (status, created) = app
        .post(
            "/api/roles",
            &admin,
            json!({"name": "WAREHOUSE_CLERK", "description": "Counts boxes"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "WAREHOUSE_CLERK");
    assert_eq!(created["description"], "Counts boxes");
    assert_eq!(created["permissions"], json!([]));
    let id = id_of(&created);
    assert_eq!(
        uuid::Uuid::parse_str(&id).expect("uuid").get_version_num(),
        7
    );
    let read = role(&app, &admin, &id).await;
    assert_eq!(read["name"], "WAREHOUSE_CLERK");
    assert_eq!(read["description"], "Counts boxes");
    assert!(
        roles(&app, &admin)
            .await
            .as_array()
            .expect("items")
            .iter()
            .any(|r| r["id"] == id.as_str()),
        "listed"
    );

    let (status, updated) = app
        .patch(
            &format!("/api/roles/{id}"),
            &admin,
            json!({"name": "STOCK_CLERK"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "STOCK_CLERK");
    assert_eq!(updated["description"], "Counts boxes", "only name changed");
    let (status, updated) = app
        .patch(
            &format!("/api/roles/{id}"),
            &admin,
            json!({"description": "Counts more boxes"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "STOCK_CLERK", "only description changed");
    assert_eq!(
        role(&app, &admin, &id).await["description"],
        "Counts more boxes"
    );

    let (status, body) = app.delete(&format!("/api/roles/{id}"), &admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);
    for (method, path) in [
        (Method::GET, format!("/api/roles/{id}")),
        (Method::GET, format!("/api/roles/{id}/permissions")),
        (Method::DELETE, format!("/api/roles/{id}")),
    ] {
        let (status, body) = app.call(method, &path, Some(&admin), None).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND);
    }
    let (status, body) = app
        .patch(
            &format!("/api/roles/{id}"),
            &admin,
            json!({"description": "x"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = app
        .put(
            &format!("/api/roles/{id}/permissions"),
            &admin,
            json!({"permissions": []}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    assert!(
        !roles(&app, &admin)
            .await
            .as_array()
            .expect("items")
            .iter()
            .any(|r| r["id"] == id.as_str()),
        "not listed after delete"
    );
}

#[tokio::test]
async fn deleting_a_role_takes_it_and_its_grants_from_its_users() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let id = create_role(&app, &admin, "READER", &["USERS_VIEW"]).await;
    let (user, token) = app
        .user(&admin, "acme", "r@acme.test", &["READER", "VIEWER"])
        .await;
    assert_eq!(my_permissions(&app, &token).await, ["USERS_VIEW"]);
    let (status, body) = app.delete(&format!("/api/roles/{id}"), &admin).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, after) = app
        .get(&format!("/api/users/{}", id_of(&user)), &admin)
        .await;
    assert_eq!(after["roles"], json!(["VIEWER"]));
    assert_eq!(my_permissions(&app, &token).await, Vec::<String>::new());
    assert_eq!(app.get("/api/users", &token).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_role_names_and_bodies_are_400_naming_the_field() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let id = create_role(&app, &admin, "CLERK", &[]).await;
    let before = roles(&app, &admin).await;
    let too_long = format!("A{}", "B".repeat(64));
    let bad_names = [
        "",
        "A",
        "clerk",
        "Clerk",
        "1ROLE",
        "_ROLE",
        "ROLE-X",
        "ROLE X",
        "RÖLE",
        too_long.as_str(),
    ];
    for name in bad_names {
        let (status, body) = app.post("/api/roles", &admin, json!({"name": name})).await;
        assert_field_error(status, &body, "name");
        let (status, body) = app
            .patch(&format!("/api/roles/{id}"), &admin, json!({"name": name}))
            .await;
        assert_field_error(status, &body, "name");
    }
    let post_cases = [
        (json!({}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": null}), "name"),
        (
            json!({"name": "GOOD_NAME", "description": 5}),
            "description",
        ),
        (
            json!({"name": "GOOD_NAME", "description": "d".repeat(1001)}),
            "description",
        ),
        (
            json!({"name": "GOOD_NAME", "permissions": ["USERS_VIEW"]}),
            "permissions",
        ),
        (json!({"name": "GOOD_NAME", "builtin": true}), "builtin"),
    ];
    for (body, field) in post_cases {
        let (status, problem) = app.post("/api/roles", &admin, body.clone()).await;
        assert_field_error(status, &problem, field);
    }
    let patch_cases = [
        (json!({"name": 5}), "name"),
        (json!({"description": ["x"]}), "description"),
        (json!({"description": "d".repeat(1001)}), "description"),
        (json!({"builtin": true}), "builtin"),
        (json!({"permissions": ["USERS_VIEW"]}), "permissions"),
    ];
    for (body, field) in patch_cases {
        let (status, problem) = app
            .patch(&format!("/api/roles/{id}"), &admin, body.clone())
            .await;
        assert_field_error(status, &problem, field);
    }
    // Valid bounds are accepted.
    let longest = format!("A{}", "B".repeat(63));
    for name in ["AB", "A1", "A_", longest.as_str()] {
        let (status, body) = app.post("/api/roles", &admin, json!({"name": name})).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
    }
    let after = roles(&app, &admin).await;
    let kept: Vec<&Value> = after
        .as_array()
        .expect("items")
        .iter()
        .filter(|r| {
            before
                .as_array()
                .expect("items")
                .iter()
                .any(|b| b["id"] == r["id"])
        })
        .collect();
    assert_eq!(
        Value::Array(kept.into_iter().cloned().collect()),
        before,
        "the refused requests changed nothing"
    );
    assert_eq!(after.as_array().expect("items").len(), 5 + 4);
}

#[tokio::test]
async fn duplicate_role_names_are_409() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    create_role(&app, &admin, "CLERK", &[]).await;
    let other = create_role(&app, &admin, "PACKER", &[]).await;
    let before = roles(&app, &admin).await;
    for name in ["CLERK", "ADMIN", "SUPER_ADMIN", "VIEWER"] {
        let (status, body) = app.post("/api/roles", &admin, json!({"name": name})).await;
        assert_problem(status, &body, StatusCode::CONFLICT);
        let (status, body) = app
            .patch(
                &format!("/api/roles/{other}"),
                &admin,
                json!({"name": name}),
            )
            .await;
        assert_problem(status, &body, StatusCode::CONFLICT);
    }
    assert_eq!(roles(&app, &admin).await, before);
}

#[tokio::test]
async fn built_in_roles_cannot_be_renamed_or_deleted_but_their_description_may_change() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    for name in BUILTIN {
        let id = app.role_id(&admin, name).await;
        let path = format!("/api/roles/{id}");
        let before = role(&app, &admin, &id).await;
        let (status, body) = app.patch(&path, &admin, json!({"name": "RENAMED"})).await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST);
        let (status, body) = app
            .patch(
                &path,
                &admin,
                json!({"name": "RENAMED", "description": "sneaky"}),
            )
            .await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST);
        let (status, body) = app.delete(&path, &admin).await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(role(&app, &admin, &id).await, before, "{name} unchanged");

        let description = format!("Our {name}");
        let (status, after) = app
            .patch(&path, &admin, json!({"description": description}))
            .await;
        assert_eq!(status, StatusCode::OK, "{after}");
        assert_eq!(after["name"], name);
        assert_eq!(after["description"], description.as_str());
        assert_eq!(after["permissions"], before["permissions"]);
        let read = role(&app, &admin, &id).await;
        assert_eq!(read["name"], name);
        assert_eq!(read["description"], description.as_str());
    }
    // The renames did not slip a role in under the new name.
    assert!(
        !roles(&app, &admin)
            .await
            .as_array()
            .expect("items")
            .iter()
            .any(|r| r["name"] == "RENAMED")
    );
}

#[tokio::test]
async fn put_permissions_replaces_the_grants_and_applies_at_once() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let id = create_role(&app, &admin, "CLERK", &[]).await;
    let (_, clerk) = app.user(&admin, "acme", "c@acme.test", &["CLERK"]).await;
    let path = format!("/api/roles/{id}/permissions");
    let steps: [&[&str]; 4] = [
        &["USERS_VIEW", "ROLES_VIEW"],
        &["AUDIT_VIEW"],
        &["AUDIT_VIEW", "AUDIT_VIEW", "PLUGINS_VIEW"],
        &[],
    ];
    for step in steps {
        let (status, body) = app.put(&path, &admin, json!({"permissions": step})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let mut expected = strings(step);
        expected.dedup();
        assert_eq!(
            sorted(&body["permissions"]),
            expected,
            "answer is the new state"
        );
        assert_eq!(grants(&app, &admin, &id).await, expected);
        assert_eq!(
            sorted(&role(&app, &admin, &id).await["permissions"]),
            expected
        );
        assert_eq!(my_permissions(&app, &clerk).await, expected);
    }
}

#[tokio::test]
async fn unknown_permission_is_400_naming_it_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let id = create_role(&app, &admin, "CLERK", &["USERS_VIEW"]).await;
    let path = format!("/api/roles/{id}/permissions");
    for bad in ["NO_SUCH_PERMISSION", "users_view", ""] {
        let (status, body) = app
            .put(&path, &admin, json!({"permissions": ["ROLES_VIEW", bad]}))
            .await;
        assert_field_error(status, &body, "permissions");
        if !bad.is_empty() {
            let named = body["detail"].as_str().is_some_and(|d| d.contains(bad))
                || body["errors"]
                    .as_array()
                    .expect("errors")
                    .iter()
                    .any(|e| e["message"].as_str().is_some_and(|m| m.contains(bad)));
            assert!(named, "the problem names {bad:?}: {body}");
        }
        assert_eq!(grants(&app, &admin, &id).await, ["USERS_VIEW"]);
    }
    let shapes = [
        (json!({}), "permissions"),
        (json!({"permissions": "USERS_VIEW"}), "permissions"),
        (json!({"permissions": null}), "permissions"),
        (json!({"permissions": [], "extra": 1}), "extra"),
    ];
    for (body, field) in shapes {
        let (status, problem) = app.put(&path, &admin, body.clone()).await;
        assert_field_error(status, &problem, field);
        assert_eq!(grants(&app, &admin, &id).await, ["USERS_VIEW"]);
    }
}

#[tokio::test]
async fn granting_a_permission_the_caller_lacks_is_403_naming_it() {
    let app = spawn_app().await;
    let (_, root) = app.tenant("acme").await;
    // A manager with ROLES_MANAGE but not AUDIT_VIEW.
    create_role(
        &app,
        &root,
        "MANAGER",
        &["USERS_VIEW", "USERS_MANAGE", "ROLES_VIEW", "ROLES_MANAGE"],
    )
    .await;
    let (_, manager) = app.user(&root, "acme", "m@acme.test", &["MANAGER"]).await;
    let clerk = create_role(&app, &root, "CLERK", &["USERS_VIEW"]).await;
    let own = app.role_id(&root, "MANAGER").await;
    let employee = app.role_id(&root, "EMPLOYEE").await;
    let before = roles(&app, &root).await;

    let cases = [
        (&clerk, json!(["USERS_VIEW", "AUDIT_VIEW"]), "AUDIT_VIEW"),
        (&employee, json!(["PLUGINS_MANAGE"]), "PLUGINS_MANAGE"),
        (
            &own,
            json!([
                "USERS_VIEW",
                "USERS_MANAGE",
                "ROLES_VIEW",
                "ROLES_MANAGE",
                "AUDIT_VIEW"
            ]),
            "AUDIT_VIEW",
        ),
    ];
    for (id, permissions, missing) in cases {
        let (status, body) = app
            .put(
                &format!("/api/roles/{id}/permissions"),
                &manager,
                json!({"permissions": permissions}),
            )
            .await;
        assert_problem(status, &body, StatusCode::FORBIDDEN);
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains(missing)),
            "403 names {missing}: {body}"
        );
    }
    assert_eq!(roles(&app, &root).await, before, "nothing changed");
    assert!(
        !my_permissions(&app, &manager)
            .await
            .contains(&"AUDIT_VIEW".to_owned())
    );
    assert_eq!(
        app.get("/api/audit", &manager).await.0,
        StatusCode::FORBIDDEN
    );

    // What the manager holds it may grant, and what it lacks it may remove.
    let (status, body) = app
        .put(
            &format!("/api/roles/{employee}/permissions"),
            &manager,
            json!({"permissions": ["USERS_VIEW", "ROLES_VIEW"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let admin_role = app.role_id(&root, "ADMIN").await;
    let (status, body) = app
        .put(
            &format!("/api/roles/{admin_role}/permissions"),
            &manager,
            json!({"permissions": ["USERS_VIEW"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn super_admin_grants_cannot_be_replaced() {
    let app = spawn_app().await;
    let (_, root) = app.tenant("acme").await;
    let (_, admin) = app.user(&root, "acme", "a@acme.test", &["ADMIN"]).await;
    let id = app.role_id(&root, "SUPER_ADMIN").await;
    let before = grants(&app, &root, &id).await;
    for token in [&root, &admin] {
        for permissions in [json!([]), json!(CORE), json!(["USERS_VIEW"])] {
            let (status, body) = app
                .put(
                    &format!("/api/roles/{id}/permissions"),
                    token,
                    json!({"permissions": permissions}),
                )
                .await;
            assert_problem(status, &body, StatusCode::BAD_REQUEST);
        }
    }
    assert_eq!(grants(&app, &root, &id).await, before);
    assert_eq!(my_permissions(&app, &root).await, before);
}

#[tokio::test]
async fn removing_your_own_last_path_to_roles_manage_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, root) = app.tenant("acme").await;
    let admin_role = app.role_id(&root, "ADMIN").await;
    let (admin_user, admin) = app.user(&root, "acme", "a@acme.test", &["ADMIN"]).await;
    let keeper = create_role(&app, &root, "KEEPER", &["ROLES_VIEW", "ROLES_MANAGE"]).await;
    let (keeper_user, keeper_token) = app.user(&root, "acme", "k@acme.test", &["KEEPER"]).await;
    let before_roles = roles(&app, &root).await;
    let (_, before_users) = app.get("/api/users?limit=500", &root).await;

    // ADMIN is the admin's only path: dropping ROLES_MANAGE from it is refused.
    let (status, body) = app
        .put(
            &format!("/api/roles/{admin_role}/permissions"),
            &admin,
            json!({"permissions": CORE_WITHOUT_ROLES_MANAGE}),
        )
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    // Nor may the admin drop its own ADMIN role.
    let (status, body) = app
        .patch(
            &format!("/api/users/{}", id_of(&admin_user)),
            &admin,
            json!({"roles": ["VIEWER"]}),
        )
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    // KEEPER is the keeper's only path: neither deleting it nor emptying it.
    let (status, body) = app
        .delete(&format!("/api/roles/{keeper}"), &keeper_token)
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    let (status, body) = app
        .put(
            &format!("/api/roles/{keeper}/permissions"),
            &keeper_token,
            json!({"permissions": ["ROLES_VIEW"]}),
        )
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);

    assert_eq!(roles(&app, &root).await, before_roles, "roles unchanged");
    let (_, after_users) = app.get("/api/users?limit=500", &root).await;
    assert_eq!(after_users, before_users, "users unchanged");
    assert!(
        my_permissions(&app, &admin)
            .await
            .contains(&"ROLES_MANAGE".to_owned())
    );
    assert!(
        my_permissions(&app, &keeper_token)
            .await
            .contains(&"ROLES_MANAGE".to_owned())
    );

    // With a second path the same changes go through.
    let (status, body) = app
        .patch(
            &format!("/api/users/{}", id_of(&keeper_user)),
            &root,
            json!({"roles": ["KEEPER", "ADMIN"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .delete(&format!("/api/roles/{keeper}"), &keeper_token)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // And a SUPER_ADMIN (implicit path) may strip ROLES_MANAGE from ADMIN.
    let (status, body) = app
        .put(
            &format!("/api/roles/{admin_role}/permissions"),
            &root,
            json!({"permissions": CORE_WITHOUT_ROLES_MANAGE}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !my_permissions(&app, &admin)
            .await
            .contains(&"ROLES_MANAGE".to_owned())
    );
}

#[tokio::test]
async fn role_endpoints_need_roles_view_or_roles_manage() {
    let app = spawn_app().await;
    let (_, root) = app.tenant("acme").await;
    create_role(&app, &root, "ROLE_READER", &["ROLES_VIEW"]).await;
    let target = create_role(&app, &root, "CLERK", &["USERS_VIEW"]).await;
    let (_, viewer) = app.user(&root, "acme", "v@acme.test", &["VIEWER"]).await;
    let (_, reader) = app
        .user(&root, "acme", "r@acme.test", &["ROLE_READER"])
        .await;
    let before = roles(&app, &root).await;
    let one = format!("/api/roles/{target}");
    let perms = format!("/api/roles/{target}/permissions");
    let reads = [
        (Method::GET, "/api/roles"),
        (Method::GET, one.as_str()),
        (Method::GET, perms.as_str()),
        (Method::GET, "/api/permissions"),
    ];
    let writes = [
        (
            Method::POST,
            "/api/roles",
            Some(json!({"name": "NEW_ROLE"})),
        ),
        (
            Method::PATCH,
            one.as_str(),
            Some(json!({"description": "x"})),
        ),
        (Method::DELETE, one.as_str(), None),
        (
            Method::PUT,
            perms.as_str(),
            Some(json!({"permissions": []})),
        ),
    ];
    for (method, path) in &reads {
        let (status, body) = app.call(method.clone(), path, Some(&viewer), None).await;
        assert_problem(status, &body, StatusCode::FORBIDDEN);
        let (status, body) = app.call(method.clone(), path, Some(&reader), None).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {body}");
    }
    for (method, path, body) in writes {
        for token in [&viewer, &reader] {
            let (status, problem) = app
                .call(method.clone(), path, Some(token), body.clone())
                .await;
            assert_problem(status, &problem, StatusCode::FORBIDDEN);
        }
    }
    assert_eq!(roles(&app, &root).await, before);
}

#[tokio::test]
async fn unknown_role_ids_are_404() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    for id in ["0190aaaa-0000-7000-8000-000000000000", "nope"] {
        let one = format!("/api/roles/{id}");
        let perms = format!("/api/roles/{id}/permissions");
        let calls = [
            (Method::GET, one.as_str(), None),
            (
                Method::PATCH,
                one.as_str(),
                Some(json!({"description": "x"})),
            ),
            (Method::DELETE, one.as_str(), None),
            (Method::GET, perms.as_str(), None),
            (
                Method::PUT,
                perms.as_str(),
                Some(json!({"permissions": []})),
            ),
        ];
        for (method, path, body) in calls {
            let (status, problem) = app.call(method, path, Some(&admin), body).await;
            assert_problem(status, &problem, StatusCode::NOT_FOUND);
        }
    }
}

#[tokio::test]
async fn a_json_array_instead_of_an_object_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, admin) = app.tenant("acme").await;
    let id = create_role(&app, &admin, "CLERK", &["USERS_VIEW"]).await;
    let before = roles(&app, &admin).await;
    // Positional arrays that would be valid if read as the fields in order.
    let one = format!("/api/roles/{id}");
    let perms = format!("/api/roles/{id}/permissions");
    let cases = [
        (
            Method::POST,
            "/api/roles",
            json!(["ARRAY_ROLE", "from an array"]),
        ),
        (Method::PATCH, one.as_str(), json!(["RENAMED_ROLE"])),
        (Method::PUT, perms.as_str(), json!([["ROLES_VIEW"]])),
    ];
    for (method, path, body) in cases {
        let (status, problem) = app
            .call(method.clone(), path, Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {body}: {problem}"
        );
        assert_problem(status, &problem, StatusCode::BAD_REQUEST);
    }
    assert_eq!(roles(&app, &admin).await, before);
}
