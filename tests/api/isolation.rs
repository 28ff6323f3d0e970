//! Tenant isolation: another tenant's users and roles are 404 on every verb
//! (indistinguishable from ids that never existed) and stay untouched; lists
//! and the audit log show only the caller's tenant; tenant admins who are not
//! platform admins cannot manage tenants.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

const NO_SUCH_ID: &str = "0190aaaa-0000-7000-8000-000000000000";

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("id in {v}"))
        .to_owned()
}

/// Two tenants, each with an employee and a custom role.
struct Two {
    tenant_a: Value,
    admin_a: String,
    tenant_b: Value,
    admin_b: String,
    user_b: Value,
    role_b: String,
}

async fn two_tenants(app: &TestApp) -> Two {
    let (tenant_a, admin_a) = app.tenant("alpha").await;
    let (tenant_b, admin_b) = app.tenant("beta").await;
    app.user(&admin_a, "alpha", "emp@alpha.test", &["EMPLOYEE"])
        .await;
    let (user_b, _) = app
        .user(&admin_b, "beta", "emp@beta.test", &["EMPLOYEE"])
        .await;
    let (status, role) = app
        .post("/api/roles", &admin_a, json!({"name": "ALPHA_ROLE"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    let (status, role) = app
        .post(
            "/api/roles",
            &admin_b,
            json!({"name": "BETA_ROLE", "description": "B's own"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    let role_b = id_of(&role);
    let (status, body) = app
        .put(
            &format!("/api/roles/{role_b}/permissions"),
            &admin_b,
            json!({"permissions": ["USERS_VIEW"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Two {
        tenant_a,
        admin_a,
        tenant_b,
        admin_b,
        user_b,
        role_b,
    }
}

/// Everything tenant B has, as B's admin sees it.
async fn snapshot(app: &TestApp, token: &str) -> (Value, Value) {
    let (status, users) = app.get("/api/users?limit=500", token).await;
    assert_eq!(status, StatusCode::OK, "{users}");
    let (status, roles) = app.get("/api/roles", token).await;
    assert_eq!(status, StatusCode::OK, "{roles}");
    (users, roles)
}

#[tokio::test]
async fn other_tenants_users_are_404_on_every_verb_and_untouched() {
    let app = spawn_app().await;
    let t = two_tenants(&app).await;
    let before = snapshot(&app, &t.admin_b).await;
    let (_, me_b) = app.get("/api/auth/me", &t.admin_b).await;
    let admin_b_id = me_b["user"]["id"].as_str().expect("id").to_owned();

    for victim in [id_of(&t.user_b), admin_b_id] {
        let path = format!("/api/users/{victim}");
        let calls = [
            (Method::GET, None),
            (Method::PATCH, Some(json!({"name": "owned by A"}))),
            (Method::PATCH, Some(json!({"active": false}))),
            (
                Method::PATCH,
                Some(json!({"password": "taken-over-password"})),
            ),
            (Method::PATCH, Some(json!({"roles": ["VIEWER"]}))),
            (Method::DELETE, None),
        ];
        for (method, body) in calls {
            let (status, problem) = app
                .call(method.clone(), &path, Some(&t.admin_a), body.clone())
                .await;
            assert_problem(status, &problem, StatusCode::NOT_FOUND);
            // Same answer as for an id that never existed.
            let (status2, problem2) = app
                .call(
                    method.clone(),
                    &format!("/api/users/{NO_SUCH_ID}"),
                    Some(&t.admin_a),
                    body,
                )
                .await;
            assert_eq!(status2, status);
            assert_eq!(problem2["detail"], problem["detail"], "{method}");
        }
    }
    assert_eq!(snapshot(&app, &t.admin_b).await, before, "B unchanged");
    // B's users still log in with their passwords.
    for email in ["emp@beta.test", "admin@beta.test"] {
        let (status, _) = app.login(email, PASSWORD, Some("beta")).await;
        assert_eq!(status, StatusCode::OK, "{email}");
    }
}

#[tokio::test]
async fn other_tenants_roles_are_404_on_every_verb_and_untouched() {
    let app = spawn_app().await;
    let t = two_tenants(&app).await;
    let before = snapshot(&app, &t.admin_b).await;
    let admin_role_b = app.role_id(&t.admin_b, "ADMIN").await;
    let employee_role_b = app.role_id(&t.admin_b, "EMPLOYEE").await;

    for victim in [t.role_b.clone(), admin_role_b, employee_role_b] {
        let one = format!("/api/roles/{victim}");
        let perms = format!("/api/roles/{victim}/permissions");
        let calls = [
            (Method::GET, one.as_str(), None),
            (
                Method::PATCH,
                one.as_str(),
                Some(json!({"description": "owned by A"})),
            ),
            (
                Method::PATCH,
                one.as_str(),
                Some(json!({"name": "OWNED_BY_A"})),
            ),
            (Method::DELETE, one.as_str(), None),
            (Method::GET, perms.as_str(), None),
            (
                Method::PUT,
                perms.as_str(),
                Some(json!({"permissions": ["AUDIT_VIEW"]})),
            ),
            (
                Method::PUT,
                perms.as_str(),
                Some(json!({"permissions": []})),
            ),
        ];
        for (method, path, body) in calls {
            let (status, problem) = app
                .call(method.clone(), path, Some(&t.admin_a), body.clone())
                .await;
            assert_problem(status, &problem, StatusCode::NOT_FOUND);
            let never = path.replace(&victim, NO_SUCH_ID);
            let (status2, problem2) = app
                .call(method.clone(), &never, Some(&t.admin_a), body)
                .await;
            assert_eq!(status2, status);
            assert_eq!(problem2["detail"], problem["detail"], "{method} {path}");
        }
    }
    assert_eq!(snapshot(&app, &t.admin_b).await, before, "B unchanged");
}

#[tokio::test]
async fn lists_show_only_the_callers_tenant() {
    let app = spawn_app().await;
    let t = two_tenants(&app).await;

    let (status, users_a) = app.get("/api/users?limit=500", &t.admin_a).await;
    assert_eq!(status, StatusCode::OK, "{users_a}");
    let mut emails: Vec<&str> = users_a["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["email"].as_str().expect("email"))
        .collect();
    emails.sort_unstable();
    assert_eq!(emails, ["admin@alpha.test", "emp@alpha.test"]);
    assert_eq!(users_a["total"], 2);

    let (_, users_b) = app.get("/api/users?limit=500", &t.admin_b).await;
    let b_ids: Vec<&Value> = users_b["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| &u["id"])
        .collect();
    assert!(
        !users_a["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|u| b_ids.contains(&&u["id"])),
        "no B user in A's list"
    );

    let (status, roles_a) = app.get("/api/roles", &t.admin_a).await;
    assert_eq!(status, StatusCode::OK, "{roles_a}");
    let mut names: Vec<&str> = roles_a["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["ADMIN", "ALPHA_ROLE", "EMPLOYEE", "SUPER_ADMIN", "VIEWER"]
    );
    assert!(
        !roles_a["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|r| r["id"] == t.role_b.as_str()),
        "no B role in A's list"
    );
    // Built-in roles are per tenant: same names, different ids.
    for name in ["ADMIN", "VIEWER"] {
        assert_ne!(
            app.role_id(&t.admin_a, name).await,
            app.role_id(&t.admin_b, name).await
        );
    }
}

#[tokio::test]
async fn names_and_emails_are_unique_per_tenant_only() {
    let app = spawn_app().await;
    let t = two_tenants(&app).await;
    // The same e-mail and role name as in B are free in A.
    let (status, body) = app
        .post(
            "/api/users",
            &t.admin_a,
            json!({"email": "emp@beta.test", "password": "another-password-1", "roles": ["VIEWER"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .post("/api/roles", &t.admin_a, json!({"name": "BETA_ROLE"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Role names resolve in the caller's tenant only: A's BETA_ROLE has no
    // grants, B's has USERS_VIEW.
    let (_, a_user) = app
        .user(&t.admin_a, "alpha", "r@alpha.test", &["BETA_ROLE"])
        .await;
    let (_, me) = app.get("/api/auth/me", &a_user).await;
    assert_eq!(me["permissions"], json!([]));
    // B's user keeps its own password in its own tenant.
    let (status, _) = app.login("emp@beta.test", PASSWORD, Some("beta")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .login("emp@beta.test", "another-password-1", Some("beta"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tenant_admins_who_are_not_platform_admins_get_403_on_tenants() {
    let app = spawn_app().await;
    let t = two_tenants(&app).await;
    let a_id = id_of(&t.tenant_a);
    let b_id = id_of(&t.tenant_b);
    let (_, root_tenants_before) = app.get("/api/tenants", &app.root_token).await;
    let new_tenant = json!({"slug": "gamma", "name": "Gamma",
                            "admin": {"email": "admin@gamma.test", "password": PASSWORD}});
    let calls = [
        (Method::GET, "/api/tenants".to_owned(), None),
        (Method::POST, "/api/tenants".to_owned(), Some(new_tenant)),
        (Method::GET, format!("/api/tenants/{a_id}"), None),
        (Method::GET, format!("/api/tenants/{b_id}"), None),
        (
            Method::PATCH,
            format!("/api/tenants/{a_id}"),
            Some(json!({"name": "Renamed"})),
        ),
        (
            Method::PATCH,
            format!("/api/tenants/{b_id}"),
            Some(json!({"active": false})),
        ),
        (Method::DELETE, format!("/api/tenants/{b_id}"), None),
        (Method::DELETE, format!("/api/tenants/{a_id}"), None),
    ];
    for (method, path, body) in calls {
        let (status, problem) = app
            .call(method.clone(), &path, Some(&t.admin_a), body)
            .await;
        assert_problem(status, &problem, StatusCode::FORBIDDEN);
    }
    let (_, root_tenants_after) = app.get("/api/tenants", &app.root_token).await;
    assert_eq!(root_tenants_after, root_tenants_before, "tenants unchanged");
    assert_eq!(
        app.get("/api/auth/me", &t.admin_b).await.0,
        StatusCode::OK,
        "B still active"
    );
    let (status, _) = app.login("admin@gamma.test", PASSWORD, Some("gamma")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "gamma was not created");
}

#[tokio::test]
async fn audit_of_a_tenant_does_not_show_another_tenants_actions() {
    let app = spawn_app().await;
    let t = two_tenants(&app).await;
    // More B activity after A's last change.
    let (status, body) = app
        .patch(
            &format!("/api/users/{}", id_of(&t.user_b)),
            &t.admin_b,
            json!({"name": "B person"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .delete(&format!("/api/users/{}", id_of(&t.user_b)), &t.admin_b)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let (status, audit_a) = app.get("/api/audit?limit=500", &t.admin_a).await;
    assert_eq!(status, StatusCode::OK, "{audit_a}");
    let (status, audit_b) = app.get("/api/audit?limit=500", &t.admin_b).await;
    assert_eq!(status, StatusCode::OK, "{audit_b}");
    let entries_a = audit_a["items"].as_array().expect("items");
    let entries_b = audit_b["items"].as_array().expect("items");
    assert!(!entries_a.is_empty() && !entries_b.is_empty());

    let (_, me_b) = app.get("/api/auth/me", &t.admin_b).await;
    let admin_b_id = me_b["user"]["id"].clone();
    let b_targets = [
        json!(id_of(&t.user_b)),
        json!(t.role_b),
        t.tenant_b["id"].clone(),
    ];
    for entry in entries_a {
        assert_ne!(
            entry["actor_id"], admin_b_id,
            "B's admin acted in A: {entry}"
        );
        assert!(
            !b_targets.contains(&entry["target"]["id"]),
            "B's record in A's audit: {entry}"
        );
        let text = entry.to_string();
        assert!(
            !text.contains("beta.test") && !text.contains("BETA_ROLE"),
            "B's data in A's audit: {entry}"
        );
    }
    // No entry id is shared, and B's log does hold B's actions.
    for entry in entries_b {
        assert!(
            !entries_a.iter().any(|a| a["id"] == entry["id"]),
            "shared entry {entry}"
        );
    }
    assert!(
        entries_b
            .iter()
            .any(|e| e["action"] == "user.delete" && e["target"]["id"] == json!(id_of(&t.user_b)))
    );
    // The filter does not widen the view either.
    let (_, filtered) = app.get("/api/audit?action=user.delete", &t.admin_a).await;
    assert_eq!(filtered["items"], json!([]), "{filtered}");
    assert_eq!(filtered["total"], 0);
}
