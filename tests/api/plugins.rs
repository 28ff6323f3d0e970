//! `/api/plugins` and `plinth plugin …`: listing the loaded plugins with the
//! caller's tenant status, install / uninstall (idempotent, `requires`,
//! grants seeded once per tenant, audit), permissions, per-tenant settings,
//! refused manifests (broken, reserved names, destructive schema changes),
//! retired permissions, plugin tables and indexes, and the CLI.
//!
//! Plugins load at start from the test app's own (empty) manifests folder:
//! a test writes its manifests there before the app is built
//! ([`spawn_with`]) or edits them and restarts the app.

use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::{COMMAND_DEADLINE, Outcome, plinth, run};
use crate::helpers::*;

/// The shipped example manifests (so they are exercised as shipped).
const INVENTORY: &str = include_str!("../../plugin-manifests/inventory.toml");
const LOYALTY: &str = include_str!("../../plugin-manifests/loyalty.toml");

/// What `plinth plugin check` says about an unknown field type.
const UNKNOWN_INT: &str = "unknown type \"int\" (expected one of text, integer, real, bool, \
                           datetime, uuid, json, enum, ref)";

// ---------------------------------------------------------------- helpers

/// Write `<dir>/<plugin>.toml`.
fn write_manifest(dir: &Path, plugin: &str, text: &str) {
    std::fs::write(dir.join(format!("{plugin}.toml")), text)
        .unwrap_or_else(|e| panic!("write manifest {plugin}: {e}"));
}

/// Start an app whose manifests folder holds exactly these `(name, text)`.
async fn spawn_with(manifests: &[(&str, &str)]) -> TestApp {
    spawn_app_with(|config| {
        for (name, text) in manifests {
            write_manifest(&config.manifests_dir, name, text);
        }
    })
    .await
}

/// `text` with `from` replaced by `to`; panics if `from` is not there (so an
/// edit of a shipped example cannot silently stop applying).
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found in:\n{text}");
    text.replacen(from, to, 1)
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

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("id in {v}"))
        .to_owned()
}

/// `GET /api/plugins` items (asserts 200).
async fn plugin_list(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app.get("/api/plugins", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {body}"))
        .clone()
}

/// Names of the listed plugins, sorted.
async fn listed_names(app: &TestApp, token: &str) -> Vec<String> {
    let mut names: Vec<String> = plugin_list(app, token)
        .await
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect();
    names.sort();
    names
}

/// `GET /api/plugins/{name}` (asserts 200).
async fn plugin(app: &TestApp, token: &str, name: &str) -> Value {
    let (status, body) = app.get(&format!("/api/plugins/{name}"), token).await;
    assert_eq!(status, StatusCode::OK, "plugin {name}: {body}");
    body
}

/// The caller's tenant status of a plugin.
async fn status_of(app: &TestApp, token: &str, name: &str) -> String {
    plugin(app, token, name).await["status"]
        .as_str()
        .expect("status")
        .to_owned()
}

/// `POST /api/plugins/{name}/{action}` with no body at all.
async fn action(app: &TestApp, token: &str, name: &str, action: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/api/plugins/{name}/{action}"),
        Some(token),
        None,
    )
    .await
}

/// Install with no body; asserts 200 INSTALLED.
async fn install(app: &TestApp, token: &str, name: &str) -> Value {
    let (status, body) = action(app, token, name, "install").await;
    assert_eq!(status, StatusCode::OK, "install {name}: {body}");
    assert_eq!(body["status"], "INSTALLED", "{body}");
    body
}

/// Uninstall with no body; asserts 200 UNINSTALLED.
async fn uninstall(app: &TestApp, token: &str, name: &str) -> Value {
    let (status, body) = action(app, token, name, "uninstall").await;
    assert_eq!(status, StatusCode::OK, "uninstall {name}: {body}");
    assert_eq!(body["status"], "UNINSTALLED", "{body}");
    body
}

/// Sorted grants of a role of the caller's tenant.
async fn role_permissions(app: &TestApp, token: &str, role: &str) -> Vec<String> {
    let id = app.role_id(token, role).await;
    let (status, body) = app
        .get(&format!("/api/roles/{id}/permissions"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    sorted(&body["permissions"])
}

/// `/api/auth/me` of the token.
async fn me(app: &TestApp, token: &str) -> Value {
    let (status, body) = app.get("/api/auth/me", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Effective permissions of the token's user, sorted.
async fn my_permissions(app: &TestApp, token: &str) -> Vec<String> {
    sorted(&me(app, token).await["permissions"])
}

/// `GET /api/permissions` items.
async fn catalog(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app.get("/api/permissions", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().expect("items").clone()
}

/// Names in the permission catalog.
async fn catalog_names(app: &TestApp, token: &str) -> Vec<String> {
    catalog(app, token)
        .await
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect()
}

/// `GET /api/plugins/{name}/settings` (asserts 200).
async fn settings(app: &TestApp, token: &str, name: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/plugins/{name}/settings"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "settings {name}: {body}");
    body
}

/// Create a role with these permissions (as `admin`); returns its id.
async fn create_role(app: &TestApp, admin: &str, name: &str, permissions: &[&str]) -> String {
    let (status, role) = app.post("/api/roles", admin, json!({"name": name})).await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    let id = id_of(&role);
    let (status, body) = app
        .put(
            &format!("/api/roles/{id}/permissions"),
            admin,
            json!({"permissions": permissions}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

/// `detail` of a problem, as text.
fn detail(body: &Value) -> &str {
    body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("detail in {body}"))
}

/// The app's SQLite database (opened beside the running server; WAL mode).
fn open_db(app: &TestApp) -> rusqlite::Connection {
    rusqlite::Connection::open(app.data_dir().join("plinth.db")).expect("open plinth.db")
}

/// Column names of a table.
fn columns(db: &rusqlite::Connection, table: &str) -> Vec<String> {
    let mut stmt = db
        .prepare(&format!("PRAGMA table_info(\"{table}\")"))
        .expect("table_info");
    stmt.query_map([], |r| r.get::<_, String>(1))
        .expect("query table_info")
        .collect::<Result<Vec<_>, _>>()
        .expect("columns")
}

/// One index of a table: name, unique, origin (`c`, `u` or `pk`), columns.
#[derive(Debug)]
struct Index {
    name: String,
    unique: bool,
    origin: String,
    columns: Vec<String>,
}

fn indexes(db: &rusqlite::Connection, table: &str) -> Vec<Index> {
    let mut stmt = db
        .prepare(&format!("PRAGMA index_list(\"{table}\")"))
        .expect("index_list");
    let list: Vec<(String, bool, String)> = stmt
        .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("query index_list")
        .collect::<Result<Vec<_>, _>>()
        .expect("indexes");
    list.into_iter()
        .map(|(name, unique, origin)| {
            let mut info = db
                .prepare(&format!("PRAGMA index_info(\"{name}\")"))
                .expect("index_info");
            let columns = info
                .query_map([], |r| r.get::<_, String>(2))
                .expect("query index_info")
                .collect::<Result<Vec<_>, _>>()
                .expect("index columns");
            Index {
                name,
                unique,
                origin,
                columns,
            }
        })
        .collect()
}

/// `/healthz` answers 200.
async fn assert_healthy(app: &TestApp) {
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------- listing

#[tokio::test]
async fn the_list_shows_every_loaded_plugin_with_the_callers_tenant_status() {
    let app = spawn_with(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]).await;

    let items = plugin_list(&app, &app.root_token).await;

    assert_eq!(items.len(), 2, "{items:?}");
    let find = |name: &str| -> &Value {
        items
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {items:?}"))
    };
    // (name, version, description, status, permissions, entities)
    let cases = [
        (
            "inventory",
            "1.0.0",
            "Stock levels per item, with suppliers",
            "INSTALLED",
            strings(&["INVENTORY_VIEW", "INVENTORY_EDIT", "INVENTORY_DELETE"]),
            strings(&["supplier", "item", "movement"]),
        ),
        (
            "loyalty",
            "1.0.0",
            "Customers and their loyalty points ledger",
            "UNINSTALLED",
            strings(&["LOYALTY_VIEW", "LOYALTY_MANAGE"]),
            strings(&["customer", "ledger"]),
        ),
    ];
    for (name, version, description, status, permissions, entities) in cases {
        let p = find(name);
        assert_eq!(p["version"], version, "{p}");
        assert_eq!(p["runtime"], "rhai", "{p}");
        assert_eq!(p["description"], description, "{p}");
        assert_eq!(p["status"], status, "{p}");
        assert_eq!(p["loaded"], true, "{p}");
        assert_eq!(sorted(&p["permissions"]), permissions, "{p}");
        assert_eq!(sorted(&p["entities"]), entities, "{p}");
    }
}

#[tokio::test]
async fn a_default_install_plugin_is_installed_for_the_bootstrap_tenant_and_every_new_tenant() {
    let app = spawn_with(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]).await;

    let (_, acme) = app.tenant("acme").await;

    for (who, token) in [("default", app.root_token.as_str()), ("acme", &acme)] {
        let inventory = plugin(&app, token, "inventory").await;
        assert_eq!(inventory["status"], "INSTALLED", "{who}: {inventory}");
        assert!(
            inventory["installed_at"]
                .as_str()
                .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
            "{who}: RFC 3339 installed_at in {inventory}"
        );
        assert!(
            inventory
                .get("installed_by")
                .is_some_and(serde_json::Value::is_null),
            "{who}: installed_by is null for default_install: {inventory}"
        );
        assert_eq!(inventory["loaded"], true, "{inventory}");
        assert_eq!(inventory["version"], "1.0.0", "{inventory}");

        let loyalty = plugin(&app, token, "loyalty").await;
        assert_eq!(loyalty["status"], "UNINSTALLED", "{who}: {loyalty}");
        for key in ["installed_at", "installed_by"] {
            assert!(
                loyalty.get(key).is_some_and(serde_json::Value::is_null),
                "{who}: {key} is present and null when never installed: {loyalty}"
            );
        }
    }
}

#[tokio::test]
async fn an_unknown_plugin_is_a_404_problem_on_every_plugin_path() {
    let app = spawn_with(&[("inventory", INVENTORY)]).await;
    let cases = [
        (Method::GET, "/api/plugins/nope", None),
        (Method::POST, "/api/plugins/nope/install", None),
        (Method::POST, "/api/plugins/nope/uninstall", None),
        (Method::GET, "/api/plugins/nope/settings", None),
        (
            Method::PUT,
            "/api/plugins/nope/settings",
            Some(json!({"low_stock_threshold": 1})),
        ),
        (Method::GET, "/api/plugins/nope/health", None),
    ];
    for (method, path, body) in cases {
        let (status, answer) = app
            .call(method.clone(), path, Some(&app.root_token), body)
            .await;
        assert_problem(status, &answer, StatusCode::NOT_FOUND);
        assert!(
            detail(&answer).contains("nope"),
            "{method} {path}: {answer}"
        );
    }
}

// ---------------------------------------------------------------- install

#[tokio::test]
async fn install_takes_no_body_or_an_empty_object_and_records_the_installer() {
    let app = spawn_with(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]).await;
    let (_, admin) = app.tenant("acme").await;
    let admin_id = me(&app, &admin).await["user"]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // No body at all.
    let first = install(&app, &admin, "loyalty").await;
    assert_eq!(first["name"], "loyalty", "{first}");
    assert_eq!(first["installed_by"], admin_id.as_str(), "{first}");
    assert!(first["installed_at"].is_string(), "{first}");
    // `{}`, and a second time: idempotent.
    let (status, second) = app
        .post("/api/plugins/loyalty/install", &admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["status"], "INSTALLED", "{second}");
    assert_eq!(second["installed_by"], admin_id.as_str(), "{second}");

    let read = plugin(&app, &admin, "loyalty").await;
    assert_eq!(read["status"], "INSTALLED", "{read}");
    assert_eq!(read["installed_by"], admin_id.as_str(), "{read}");
    // Other tenants are unaffected.
    assert_eq!(
        status_of(&app, &app.root_token, "loyalty").await,
        "UNINSTALLED"
    );
}

#[tokio::test]
async fn install_and_uninstall_with_a_body_field_are_400_and_change_nothing() {
    let app = spawn_with(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]).await;
    let (_, admin) = app.tenant("acme").await;
    // (plugin, action, status before and after)
    let targets = [
        ("loyalty", "install", "UNINSTALLED"),
        ("inventory", "uninstall", "INSTALLED"),
    ];
    let bodies = [
        (json!({"force": true}), "force"),
        (json!({"tenant": "default"}), "tenant"),
    ];
    for (name, act, unchanged) in targets {
        for (body, field) in &bodies {
            let (status, answer) = app
                .post(&format!("/api/plugins/{name}/{act}"), &admin, body.clone())
                .await;
            assert_problem(status, &answer, StatusCode::BAD_REQUEST);
            assert!(
                answer.to_string().contains(field),
                "{act} {name} with {body}: should name {field}: {answer}"
            );
            assert_eq!(status_of(&app, &admin, name).await, unchanged);
        }
        // Not JSON at all.
        let resp = app
            .request(
                Method::POST,
                &format!("/api/plugins/{name}/{act}"),
                Some(&admin),
            )
            .header("content-type", "application/json")
            .body("yes please")
            .send()
            .await
            .expect("request sent");
        let (status, answer) = split(resp).await;
        assert_problem(status, &answer, StatusCode::BAD_REQUEST);
        assert_eq!(status_of(&app, &admin, name).await, unchanged);
    }
}

#[tokio::test]
async fn install_seeds_the_manifests_grants_effective_on_the_very_next_request() {
    let app = spawn_with(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]).await;
    let (_, admin) = app.tenant("acme").await;
    let (_, employee) = app
        .user(&admin, "acme", "emp@acme.test", &["EMPLOYEE"])
        .await;
    let (_, viewer) = app
        .user(&admin, "acme", "view@acme.test", &["VIEWER"])
        .await;
    let loyalty = strings(&["LOYALTY_MANAGE", "LOYALTY_VIEW"]);
    assert!(
        my_permissions(&app, &employee)
            .await
            .iter()
            .all(|p| !p.starts_with("LOYALTY_")),
        "nothing of loyalty before the install"
    );

    install(&app, &admin, "loyalty").await;

    // The same tokens, on the next request.
    let emp = my_permissions(&app, &employee).await;
    assert!(
        loyalty.iter().all(|p| emp.contains(p)),
        "EMPLOYEE holds {loyalty:?}: {emp:?}"
    );
    let view = my_permissions(&app, &viewer).await;
    assert!(view.contains(&"LOYALTY_VIEW".to_owned()), "{view:?}");
    assert!(!view.contains(&"LOYALTY_MANAGE".to_owned()), "{view:?}");
    // (role, plugin grants it must hold)
    let cases: [(&str, &[&str]); 3] = [
        ("ADMIN", &["LOYALTY_VIEW", "LOYALTY_MANAGE"]),
        ("EMPLOYEE", &["LOYALTY_VIEW", "LOYALTY_MANAGE"]),
        ("VIEWER", &["LOYALTY_VIEW"]),
    ];
    for (role, expected) in cases {
        let held = role_permissions(&app, &admin, role).await;
        let of_loyalty: Vec<String> = held
            .iter()
            .filter(|p| p.starts_with("LOYALTY_"))
            .cloned()
            .collect();
        assert_eq!(of_loyalty, strings(expected), "{role}: {held:?}");
    }
    // Another tenant got nothing.
    let (_, other) = app.tenant("other").await;
    let held = role_permissions(&app, &other, "EMPLOYEE").await;
    assert!(held.iter().all(|p| !p.starts_with("LOYALTY_")), "{held:?}");
}

#[tokio::test]
async fn uninstall_keeps_the_grants_and_reinstall_works() {
    let app = spawn_with(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]).await;
    let (_, admin) = app.tenant("acme").await;
    install(&app, &admin, "loyalty").await;
    let before = role_permissions(&app, &admin, "EMPLOYEE").await;

    let body = uninstall(&app, &admin, "loyalty").await;

    assert_eq!(body["name"], "loyalty", "{body}");
    assert_eq!(status_of(&app, &admin, "loyalty").await, "UNINSTALLED");
    let listed = plugin_list(&app, &admin).await;
    let entry = listed
        .iter()
        .find(|p| p["name"] == "loyalty")
        .expect("loyalty still listed");
    assert_eq!(entry["status"], "UNINSTALLED", "{entry}");
    assert_eq!(entry["loaded"], true, "{entry}");
    assert_eq!(role_permissions(&app, &admin, "EMPLOYEE").await, before);
    // Uninstalling again is fine too.
    uninstall(&app, &admin, "loyalty").await;

    install(&app, &admin, "loyalty").await;
    assert_eq!(status_of(&app, &admin, "loyalty").await, "INSTALLED");
    assert_eq!(role_permissions(&app, &admin, "EMPLOYEE").await, before);
}

#[tokio::test]
async fn install_and_uninstall_are_audited_with_the_actor_and_the_plugin() {
    let app = spawn_with(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]).await;
    let (_, admin) = app.tenant("acme").await;
    let admin_id = me(&app, &admin).await["user"]["id"].clone();

    install(&app, &admin, "loyalty").await;
    uninstall(&app, &admin, "loyalty").await;

    for act in ["plugin.install", "plugin.uninstall"] {
        let (status, log) = app
            .get(&format!("/api/audit?action={act}&limit=500"), &admin)
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let items = log["items"].as_array().expect("items");
        assert!(
            items.iter().all(|e| e["action"] == act),
            "only {act}: {log}"
        );
        let ours = items
            .iter()
            .find(|e| e["target"]["id"] == "loyalty")
            .unwrap_or_else(|| panic!("{act} of loyalty in {log}"));
        assert_eq!(
            ours["target"],
            json!({"type": "plugin", "id": "loyalty"}),
            "{ours}"
        );
        assert_eq!(ours["actor_id"], admin_id, "{ours}");
    }
}

// ---------------------------------------------------------------- grants

#[tokio::test]
async fn a_revoked_grant_stays_revoked_across_reinstall_and_restart_while_new_grants_are_seeded() {
    let app = spawn_with(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]).await;
    let (_, admin) = app.tenant("acme").await;
    install(&app, &admin, "loyalty").await;
    let employee = app.role_id(&admin, "EMPLOYEE").await;
    let kept: Vec<String> = role_permissions(&app, &admin, "EMPLOYEE")
        .await
        .into_iter()
        .filter(|p| p != "LOYALTY_MANAGE")
        .collect();
    let (status, body) = app
        .put(
            &format!("/api/roles/{employee}/permissions"),
            &admin,
            json!({"permissions": kept}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Uninstall + reinstall.
    uninstall(&app, &admin, "loyalty").await;
    install(&app, &admin, "loyalty").await;
    assert_eq!(
        role_permissions(&app, &admin, "EMPLOYEE").await,
        kept,
        "revoked grant re-seeded by a reinstall"
    );

    // Restart (and install again after it).
    let app = app.restart().await;
    let admin = app.token("admin@acme.test", PASSWORD, Some("acme")).await;
    assert_eq!(role_permissions(&app, &admin, "EMPLOYEE").await, kept);
    install(&app, &admin, "loyalty").await;
    assert_eq!(
        role_permissions(&app, &admin, "EMPLOYEE").await,
        kept,
        "revoked grant re-seeded after a restart"
    );

    // A new permission granted to EMPLOYEE in the manifest is seeded.
    let v2 = edit(
        LOYALTY,
        "\n[grants]\n",
        "LOYALTY_EXPORT = \"Export the points ledger\"\n\n[grants]\n",
    );
    let v2 = edit(
        &v2,
        "EMPLOYEE = [\"LOYALTY_VIEW\", \"LOYALTY_MANAGE\"]",
        "EMPLOYEE = [\"LOYALTY_VIEW\", \"LOYALTY_MANAGE\", \"LOYALTY_EXPORT\"]",
    );
    write_manifest(&app.config.manifests_dir, "loyalty", &v2);
    let app = app.restart().await;
    let admin = app.token("admin@acme.test", PASSWORD, Some("acme")).await;
    install(&app, &admin, "loyalty").await;

    let mut expected = kept.clone();
    expected.push("LOYALTY_EXPORT".to_owned());
    expected.sort();
    assert_eq!(
        role_permissions(&app, &admin, "EMPLOYEE").await,
        expected,
        "the new grant is seeded, the revoked one is not"
    );
}

#[tokio::test]
async fn install_creates_a_granted_role_that_the_tenant_lacks() {
    // The shipped inventory manifest, but installed by hand.
    let manual = edit(
        INVENTORY,
        "default_install = true",
        "default_install = false",
    );
    let app = spawn_with(&[("inventory", &manual)]).await;
    let (_, admin) = app.tenant("acme").await;
    let (status, roles) = app.get("/api/roles", &admin).await;
    assert_eq!(status, StatusCode::OK, "{roles}");
    assert!(
        !roles.to_string().contains("WAREHOUSE_CLERK"),
        "no WAREHOUSE_CLERK before the install: {roles}"
    );
    assert_eq!(status_of(&app, &admin, "inventory").await, "UNINSTALLED");

    install(&app, &admin, "inventory").await;

    assert_eq!(
        role_permissions(&app, &admin, "WAREHOUSE_CLERK").await,
        strings(&["INVENTORY_VIEW", "INVENTORY_EDIT"])
    );
    // A user can be given the new role and holds its grants.
    let (_, clerk) = app
        .user(&admin, "acme", "clerk@acme.test", &["WAREHOUSE_CLERK"])
        .await;
    assert_eq!(
        my_permissions(&app, &clerk).await,
        strings(&["INVENTORY_VIEW", "INVENTORY_EDIT"])
    );
}

#[tokio::test]
async fn a_default_install_creates_its_granted_roles_in_a_new_tenant() {
    let app = spawn_with(&[("inventory", INVENTORY)]).await;

    let (_, admin) = app.tenant("acme").await;

    for token in [app.root_token.as_str(), &admin] {
        assert_eq!(
            role_permissions(&app, token, "WAREHOUSE_CLERK").await,
            strings(&["INVENTORY_VIEW", "INVENTORY_EDIT"])
        );
    }
}

// ---------------------------------------------------------------- requires

const BASE: &str =
    "name = \"base\"\nversion = \"1.0.0\"\n\n[permissions]\nBASE_VIEW = \"View base\"\n";
const ADDON: &str = "name = \"addon\"\nversion = \"1.0.0\"\nrequires = [\"base\"]\n\n\
                     [permissions]\nADDON_VIEW = \"View addon\"\n";
const ORPHAN: &str = "name = \"orphan\"\nversion = \"1.0.0\"\nrequires = [\"ghost\"]\n\n\
                      [permissions]\nORPHAN_VIEW = \"View orphan\"\n";

#[tokio::test]
async fn installing_a_plugin_before_what_it_requires_is_a_400_naming_the_missing_plugin() {
    let app = spawn_with(&[("base", BASE), ("addon", ADDON), ("orphan", ORPHAN)]).await;
    let (_, admin) = app.tenant("acme").await;
    // (plugin, the missing plugin the detail names)
    for (name, missing) in [("addon", "base"), ("orphan", "ghost")] {
        let (status, body) = action(&app, &admin, name, "install").await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST);
        assert!(
            detail(&body).contains(missing),
            "{name}: detail should name {missing}: {body}"
        );
        assert_eq!(status_of(&app, &admin, name).await, "UNINSTALLED");
    }
    // Nothing of addon was seeded.
    let held = role_permissions(&app, &admin, "ADMIN").await;
    assert!(!held.contains(&"ADDON_VIEW".to_owned()), "{held:?}");
}

#[tokio::test]
async fn a_plugin_installs_after_what_it_requires_and_blocks_its_uninstall() {
    let app = spawn_with(&[("base", BASE), ("addon", ADDON)]).await;
    let (_, admin) = app.tenant("acme").await;

    install(&app, &admin, "base").await;
    install(&app, &admin, "addon").await;

    let (status, body) = action(&app, &admin, "base", "uninstall").await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    assert!(
        detail(&body).contains("addon"),
        "detail should name addon: {body}"
    );
    assert_eq!(status_of(&app, &admin, "base").await, "INSTALLED");

    // In the right order it works.
    uninstall(&app, &admin, "addon").await;
    uninstall(&app, &admin, "base").await;
    // Requirements are per tenant: another tenant still needs base first.
    let (_, other) = app.tenant("other").await;
    let (status, body) = action(&app, &other, "addon", "install").await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    assert!(detail(&body).contains("base"), "{body}");
}

// ---------------------------------------------------------------- permissions

#[tokio::test]
async fn reading_plugins_needs_plugins_view() {
    let app = spawn_with(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]).await;
    let (_, admin) = app.tenant("acme").await;
    let (_, viewer) = app.user(&admin, "acme", "v@acme.test", &["VIEWER"]).await;
    let (_, employee) = app.user(&admin, "acme", "e@acme.test", &["EMPLOYEE"]).await;
    create_role(&app, &admin, "PLUGIN_WATCHER", &["PLUGINS_VIEW"]).await;
    let (_, watcher) = app
        .user(&admin, "acme", "w@acme.test", &["PLUGIN_WATCHER"])
        .await;
    let paths = [
        "/api/plugins",
        "/api/plugins/inventory",
        "/api/plugins/inventory/settings",
        "/api/plugins/inventory/health",
    ];
    for path in paths {
        for (who, token) in [("viewer", &viewer), ("employee", &employee)] {
            let (status, body) = app.get(path, token).await;
            assert_problem(status, &body, StatusCode::FORBIDDEN);
            assert!(
                detail(&body).contains("PLUGINS_VIEW"),
                "{who} {path}: {body}"
            );
        }
        let (status, body) = app.get(path, &watcher).await;
        assert_eq!(status, StatusCode::OK, "watcher {path}: {body}");
        let (status, body) = app.call(Method::GET, path, None, None).await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    }
    let health = plugin_health(&app, &watcher, "inventory").await;
    assert_eq!(health["name"], "inventory", "{health}");
    assert_eq!(health["version"], "1.0.0", "{health}");
    assert_eq!(health["last_reload"]["ok"], true, "{health}");
}

async fn plugin_health(app: &TestApp, token: &str, name: &str) -> Value {
    let (status, body) = app.get(&format!("/api/plugins/{name}/health"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn changing_plugins_needs_plugins_manage_and_a_refusal_changes_nothing() {
    let app = spawn_with(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]).await;
    let (_, admin) = app.tenant("acme").await;
    let (_, viewer) = app.user(&admin, "acme", "v@acme.test", &["VIEWER"]).await;
    create_role(&app, &admin, "PLUGIN_WATCHER", &["PLUGINS_VIEW"]).await;
    let (_, watcher) = app
        .user(&admin, "acme", "w@acme.test", &["PLUGIN_WATCHER"])
        .await;
    let employee_before = role_permissions(&app, &admin, "EMPLOYEE").await;

    for (who, token) in [("viewer", &viewer), ("watcher", &watcher)] {
        let cases = [
            (Method::POST, "/api/plugins/loyalty/install", None),
            (Method::POST, "/api/plugins/inventory/uninstall", None),
            (
                Method::PUT,
                "/api/plugins/inventory/settings",
                Some(json!({"low_stock_threshold": 9})),
            ),
        ];
        for (method, path, body) in cases {
            let (status, answer) = app.call(method.clone(), path, Some(token), body).await;
            assert_problem(status, &answer, StatusCode::FORBIDDEN);
            assert!(
                detail(&answer).contains("PLUGINS_MANAGE"),
                "{who} {method} {path}: {answer}"
            );
        }
    }

    assert_eq!(status_of(&app, &admin, "loyalty").await, "UNINSTALLED");
    assert_eq!(status_of(&app, &admin, "inventory").await, "INSTALLED");
    assert_eq!(
        settings(&app, &admin, "inventory").await,
        json!({"low_stock_threshold": 5})
    );
    assert_eq!(
        role_permissions(&app, &admin, "EMPLOYEE").await,
        employee_before
    );
}

#[tokio::test]
async fn plugin_permissions_are_in_the_catalog_with_their_source_and_held_by_super_admin() {
    let app = spawn_with(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]).await;
    let (_, admin) = app.tenant("acme").await;

    let items = catalog(&app, &admin).await;

    // (permission, source)
    let cases = [
        ("INVENTORY_VIEW", "inventory"),
        ("INVENTORY_EDIT", "inventory"),
        ("INVENTORY_DELETE", "inventory"),
        ("LOYALTY_VIEW", "loyalty"),
        ("LOYALTY_MANAGE", "loyalty"),
        ("PLUGINS_VIEW", "core"),
    ];
    for (name, source) in cases {
        let entry = items
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {items:?}"));
        assert_eq!(entry["source"], source, "{entry}");
        assert!(
            entry["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{entry}"
        );
    }
    assert_eq!(
        items
            .iter()
            .find(|p| p["name"] == "LOYALTY_VIEW")
            .map(|p| p["description"].clone()),
        Some(json!("View customers and points"))
    );
    // SUPER_ADMIN holds every permission, the plugins' too, whether or not
    // the plugin is installed for its tenant.
    for (who, token) in [("root", app.root_token.as_str()), ("acme admin", &admin)] {
        let held = my_permissions(&app, token).await;
        for (name, _) in cases {
            assert!(
                held.contains(&name.to_owned()),
                "{who} holds {name}: {held:?}"
            );
        }
    }
}

// ---------------------------------------------------------------- settings

#[tokio::test]
async fn settings_have_their_defaults_filled_in_and_put_changes_only_the_given_keys() {
    let app = spawn_with(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]).await;
    let (_, admin) = app.tenant("acme").await;

    assert_eq!(
        settings(&app, &admin, "inventory").await,
        json!({"low_stock_threshold": 5})
    );
    let (status, body) = app
        .put(
            "/api/plugins/inventory/settings",
            &admin,
            json!({"low_stock_threshold": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"low_stock_threshold": 7}));
    assert_eq!(
        settings(&app, &admin, "inventory").await,
        json!({"low_stock_threshold": 7})
    );

    // Two keys: changing one keeps the other.
    install(&app, &admin, "loyalty").await;
    assert_eq!(
        settings(&app, &admin, "loyalty").await,
        json!({"points_per_euro": 1, "welcome_bonus": 0})
    );
    let (status, body) = app
        .put(
            "/api/plugins/loyalty/settings",
            &admin,
            json!({"welcome_bonus": 50}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"points_per_euro": 1, "welcome_bonus": 50}));
    let (status, body) = app
        .put(
            "/api/plugins/loyalty/settings",
            &admin,
            json!({"points_per_euro": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"points_per_euro": 3, "welcome_bonus": 50}));
    // An empty change is allowed and changes nothing.
    let (status, body) = app
        .put("/api/plugins/loyalty/settings", &admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"points_per_euro": 3, "welcome_bonus": 50}));
}

#[tokio::test]
async fn invalid_settings_are_400_naming_the_key_and_keep_the_stored_values() {
    let app = spawn_with(&[("inventory", INVENTORY)]).await;
    let (_, admin) = app.tenant("acme").await;
    let path = "/api/plugins/inventory/settings";
    let (status, body) = app
        .put(path, &admin, json!({"low_stock_threshold": 7}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // (body, key the errors name)
    let cases = [
        (json!({"nope": 1}), "nope"),
        (json!({"low_stock_treshold": 3}), "low_stock_treshold"),
        (json!({"low_stock_threshold": "x"}), "low_stock_threshold"),
        (json!({"low_stock_threshold": "8"}), "low_stock_threshold"),
        (json!({"low_stock_threshold": 1.5}), "low_stock_threshold"),
        (json!({"low_stock_threshold": true}), "low_stock_threshold"),
        (json!({"low_stock_threshold": [8]}), "low_stock_threshold"),
        (json!({"low_stock_threshold": -1}), "low_stock_threshold"),
        // one bad key refuses the whole change
        (json!({"low_stock_threshold": 9, "nope": 1}), "nope"),
    ];
    for (body, key) in cases {
        let (status, answer) = app.put(path, &admin, body.clone()).await;
        assert_field_error(status, &answer, key);
        assert_eq!(
            settings(&app, &admin, "inventory").await,
            json!({"low_stock_threshold": 7}),
            "after {body}"
        );
    }
    // A body that is not an object.
    for body in [json!([1]), json!(7), json!("low_stock_threshold")] {
        let (status, answer) = app.put(path, &admin, body.clone()).await;
        assert_problem(status, &answer, StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        settings(&app, &admin, "inventory").await,
        json!({"low_stock_threshold": 7})
    );
}

#[tokio::test]
async fn a_null_setting_resets_to_the_default_and_settings_are_per_tenant() {
    let app = spawn_with(&[("inventory", INVENTORY)]).await;
    let (_, a) = app.tenant("tenant-a").await;
    let (_, b) = app.tenant("tenant-b").await;
    let path = "/api/plugins/inventory/settings";

    let (status, body) = app.put(path, &a, json!({"low_stock_threshold": 0})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"low_stock_threshold": 0}), "min is inclusive");
    let (status, body) = app.put(path, &a, json!({"low_stock_threshold": 7})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for token in [b.as_str(), &app.root_token] {
        assert_eq!(
            settings(&app, token, "inventory").await,
            json!({"low_stock_threshold": 5}),
            "another tenant keeps the default"
        );
    }

    let (status, body) = app
        .put(path, &a, json!({"low_stock_threshold": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"low_stock_threshold": 5}));
    assert_eq!(
        settings(&app, &a, "inventory").await,
        json!({"low_stock_threshold": 5})
    );
}

#[tokio::test]
async fn settings_survive_a_restart() {
    let app = spawn_with(&[("inventory", INVENTORY)]).await;
    let (status, body) = app
        .put(
            "/api/plugins/inventory/settings",
            &app.root_token,
            json!({"low_stock_threshold": 12}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let app = app.restart().await;

    assert_eq!(
        settings(&app, &app.root_token, "inventory").await,
        json!({"low_stock_threshold": 12})
    );
}

// ---------------------------------------------------------------- refused manifests

/// Valid except for one field of an unknown type (line 8).
const BROKEN: &str = "name = \"broken\"\nversion = \"1.0.0\"\n\n[permissions]\n\
                      BROKEN_VIEW = \"View\"\n\n[entities.thing.fields]\n\
                      q = { type = \"int\" }\n";

#[tokio::test]
async fn a_broken_manifest_is_skipped_and_the_good_plugins_still_load() {
    let app = spawn_with(&[
        ("inventory", INVENTORY),
        ("loyalty", LOYALTY),
        ("broken", BROKEN),
    ])
    .await;

    assert_healthy(&app).await;
    assert_eq!(
        listed_names(&app, &app.root_token).await,
        ["inventory", "loyalty"]
    );
    let (status, body) = app.get("/api/plugins/broken", &app.root_token).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let names = catalog_names(&app, &app.root_token).await;
    assert!(
        !names.contains(&"BROKEN_VIEW".to_owned()),
        "a refused plugin registers no permission: {names:?}"
    );
    assert_eq!(
        status_of(&app, &app.root_token, "inventory").await,
        "INSTALLED"
    );

    // `plinth plugin check` over the same folder reports it.
    let work = tempfile::tempdir().expect("temp dir");
    let out = plugin_cli(
        work.path(),
        &app.config.manifests_dir,
        &app.config.scripts_dir,
    )
    .args(["plugin", "check"])
    .output_within();
    assert_eq!(out.code, Some(1), "{out:?}");
    let dir = app.config.manifests_dir.display();
    let expected = format!("{dir}/broken.toml:8:1: entities.thing.fields.q: {UNKNOWN_INT}");
    assert!(
        out.stdout.lines().any(|l| l == expected),
        "expected the line\n{expected}\nin\n{}",
        out.stdout
    );
    for good in ["inventory", "loyalty"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{dir}/{good}.toml: ok ("))),
            "{good} ok in:\n{}",
            out.stdout
        );
    }
}

#[tokio::test]
async fn a_manifest_with_a_reserved_name_is_refused() {
    let reserved = [
        "auth",
        "tenants",
        "users",
        "roles",
        "permissions",
        "plugins",
        "audit",
        "admin",
        "docs",
        "openapi",
        "health",
        "metrics",
        "static",
        "api",
    ];
    let texts: Vec<(String, String)> = reserved
        .iter()
        .map(|name| {
            let prefix = name.to_uppercase();
            (
                (*name).to_owned(),
                format!(
                    "name = \"{name}\"\nversion = \"1.0.0\"\n\n[permissions]\n\
                     {prefix}_VIEW = \"View\"\n"
                ),
            )
        })
        .collect();
    let app = spawn_app_with(|config| {
        write_manifest(&config.manifests_dir, "inventory", INVENTORY);
        for (name, text) in &texts {
            write_manifest(&config.manifests_dir, name, text);
        }
    })
    .await;

    assert_healthy(&app).await;
    assert_eq!(listed_names(&app, &app.root_token).await, ["inventory"]);
    let names = catalog_names(&app, &app.root_token).await;
    assert!(!names.contains(&"METRICS_VIEW".to_owned()), "{names:?}");

    let work = tempfile::tempdir().expect("temp dir");
    let out = plugin_cli(
        work.path(),
        &app.config.manifests_dir,
        &app.config.scripts_dir,
    )
    .args(["plugin", "check"])
    .output_within();
    assert_eq!(out.code, Some(1), "{out:?}");
    let dir = app.config.manifests_dir.display();
    for name in reserved {
        assert!(
            out.stdout.lines().any(|l| {
                l.starts_with(&format!("{dir}/{name}.toml:"))
                    && l.contains("reserved")
                    && l.contains(&format!("\"{name}\""))
            }),
            "{name} reported as reserved in:\n{}",
            out.stdout
        );
    }
}

// ---------------------------------------------------------------- retired permissions

const SHOP: &str = "name = \"shop\"\nversion = \"1.0.0\"\n\n[permissions]\n\
                    SHOP_VIEW = \"View the shop\"\nSHOP_REFUND = \"Refund orders\"\n\n\
                    [grants]\nADMIN = [\"SHOP_VIEW\", \"SHOP_REFUND\"]\n";

#[tokio::test]
async fn a_permission_removed_from_the_manifest_is_retired_and_no_longer_grantable() {
    let app = spawn_with(&[("shop", SHOP)]).await;
    let (_, admin) = app.tenant("acme").await;
    let clerk = create_role(&app, &admin, "CLERK", &["SHOP_REFUND"]).await;
    assert!(
        catalog_names(&app, &admin)
            .await
            .contains(&"SHOP_REFUND".to_owned())
    );

    let v2 = edit(SHOP, "SHOP_REFUND = \"Refund orders\"\n", "");
    let v2 = edit(
        &v2,
        "ADMIN = [\"SHOP_VIEW\", \"SHOP_REFUND\"]",
        "ADMIN = [\"SHOP_VIEW\"]",
    );
    write_manifest(&app.config.manifests_dir, "shop", &v2);
    let app = app.restart().await;
    let admin = app.token("admin@acme.test", PASSWORD, Some("acme")).await;

    let names = catalog_names(&app, &admin).await;
    assert!(names.contains(&"SHOP_VIEW".to_owned()), "{names:?}");
    assert!(
        !names.contains(&"SHOP_REFUND".to_owned()),
        "retired SHOP_REFUND still listed: {names:?}"
    );
    assert_eq!(
        sorted(&plugin(&app, &admin, "shop").await["permissions"]),
        ["SHOP_VIEW"]
    );
    let (status, body) = app
        .put(
            &format!("/api/roles/{clerk}/permissions"),
            &admin,
            json!({"permissions": ["SHOP_VIEW", "SHOP_REFUND"]}),
        )
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    assert!(
        body.to_string().contains("SHOP_REFUND"),
        "400 naming SHOP_REFUND: {body}"
    );

    // Declared again, it is grantable again.
    write_manifest(&app.config.manifests_dir, "shop", SHOP);
    let app = app.restart().await;
    let admin = app.token("admin@acme.test", PASSWORD, Some("acme")).await;
    let entry = catalog(&app, &admin)
        .await
        .into_iter()
        .find(|p| p["name"] == "SHOP_REFUND")
        .expect("SHOP_REFUND listed again");
    assert_eq!(entry["source"], "shop", "{entry}");
    let (status, body) = app
        .put(
            &format!("/api/roles/{clerk}/permissions"),
            &admin,
            json!({"permissions": ["SHOP_VIEW", "SHOP_REFUND"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------- schema changes

const STOCK: &str = "name = \"stock\"\nversion = \"1.0.0\"\n\n[permissions]\n\
                     STOCK_VIEW = \"View stock\"\n\n[entities.item]\n\
                     permissions = { list = \"STOCK_VIEW\", read = \"STOCK_VIEW\" }\n\
                     indexes = [[\"name\"]]\n\n[entities.item.fields]\n\
                     name = { type = \"text\", required = true }\n\
                     qty = { type = \"integer\" }\n";

const QTY: &str = "qty = { type = \"integer\" }\n";

#[tokio::test]
async fn a_destructive_schema_change_without_a_migration_refuses_the_plugin_at_restart() {
    // (what changed, the new qty line)
    let cases = [
        ("field removed", ""),
        ("field retyped", "qty = { type = \"text\" }\n"),
    ];
    for (what, line) in cases {
        let app = spawn_with(&[("stock", STOCK), ("loyalty", LOYALTY)]).await;
        assert_eq!(
            plugin(&app, &app.root_token, "stock").await["name"],
            "stock"
        );

        write_manifest(&app.config.manifests_dir, "stock", &edit(STOCK, QTY, line));
        let app = app.restart().await;

        assert_healthy(&app).await;
        let (status, body) = app.get("/api/plugins/stock", &app.root_token).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND);
        assert_eq!(
            listed_names(&app, &app.root_token).await,
            ["loyalty"],
            "{what}: the other plugin still loads"
        );
        // The data is untouched: the column is still there.
        let db = open_db(&app);
        assert!(
            columns(&db, "stock_item").contains(&"qty".to_owned()),
            "{what}: qty kept"
        );
        drop(db);

        // Back to the old manifest: it loads again.
        write_manifest(&app.config.manifests_dir, "stock", STOCK);
        let app = app.restart().await;
        assert_eq!(
            plugin(&app, &app.root_token, "stock").await["name"],
            "stock",
            "{what}"
        );
    }
}

#[tokio::test]
async fn a_shipped_migration_lets_a_removed_field_load_and_runs_only_once() {
    let app = spawn_with(&[("stock", STOCK)]).await;
    let without_qty = edit(STOCK, QTY, "");
    write_manifest(&app.config.manifests_dir, "stock", &without_qty);
    let app = app.restart().await;
    let (status, body) = app.get("/api/plugins/stock", &app.root_token).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);

    let migrations = app.config.scripts_dir.join("stock").join("migrations");
    std::fs::create_dir_all(&migrations).expect("migrations dir");
    std::fs::write(
        migrations.join("001_drop_qty.sql"),
        "ALTER TABLE stock_item DROP COLUMN qty;\n",
    )
    .expect("write migration");
    let app = app.restart().await;

    assert_eq!(
        plugin(&app, &app.root_token, "stock").await["name"],
        "stock"
    );
    let db = open_db(&app);
    let cols = columns(&db, "stock_item");
    assert!(!cols.contains(&"qty".to_owned()), "qty dropped: {cols:?}");
    assert!(cols.contains(&"name".to_owned()), "{cols:?}");
    drop(db);

    // A further restart does not run the migration again (it would fail).
    let app = app.restart().await;
    assert_eq!(
        plugin(&app, &app.root_token, "stock").await["name"],
        "stock"
    );
}

#[tokio::test]
async fn a_new_optional_field_is_added_to_the_table_at_restart() {
    let app = spawn_with(&[("stock", STOCK)]).await;
    let db = open_db(&app);
    assert!(!columns(&db, "stock_item").contains(&"note".to_owned()));
    drop(db);

    let v2 = edit(
        STOCK,
        QTY,
        "qty = { type = \"integer\" }\nnote = { type = \"text\", max_length = 100 }\n",
    );
    write_manifest(&app.config.manifests_dir, "stock", &v2);
    let app = app.restart().await;

    assert_eq!(
        plugin(&app, &app.root_token, "stock").await["name"],
        "stock"
    );
    let db = open_db(&app);
    let cols = columns(&db, "stock_item");
    for col in [
        "id",
        "tenant_id",
        "created_at",
        "updated_at",
        "created_by",
        "name",
        "qty",
        "note",
    ] {
        assert!(cols.contains(&col.to_owned()), "{col} in {cols:?}");
    }
}

#[tokio::test]
async fn plugin_tables_have_the_base_columns_and_every_index_starts_with_tenant_id() {
    let app = spawn_with(&[("inventory", INVENTORY)]).await;
    let db = open_db(&app);
    // (table, declared fields, declared indexes, unique fields)
    struct Case<'a> {
        table: &'a str,
        fields: &'a [&'a str],
        declared: &'a [&'a [&'a str]],
        unique: &'a [&'a str],
    }
    let cases = [
        Case {
            table: "inventory_item",
            fields: &[
                "name", "sku", "quantity", "price", "status", "tags", "supplier",
            ],
            declared: &[&["sku"], &["name", "quantity"]],
            unique: &["sku"],
        },
        Case {
            table: "inventory_supplier",
            fields: &["name", "email"],
            declared: &[&["name"]],
            unique: &[],
        },
    ];
    for Case {
        table,
        fields,
        declared,
        unique,
    } in cases
    {
        let cols = columns(&db, table);
        let mut expected: Vec<String> =
            ["id", "tenant_id", "created_at", "updated_at", "created_by"]
                .iter()
                .chain(fields.iter())
                .map(|c| (*c).to_owned())
                .collect();
        expected.sort();
        let mut got = cols.clone();
        got.sort();
        assert_eq!(got, expected, "{table} columns");

        let idx = indexes(&db, table);
        // Every index but the primary key's (a UUID, unique on its own)
        // leads with tenant_id.
        for index in idx.iter().filter(|i| i.origin != "pk") {
            assert_eq!(
                index.columns.first().map(String::as_str),
                Some("tenant_id"),
                "{table}: index {} leads with tenant_id: {index:?}",
                index.name
            );
        }
        let has = |cols: &[&str], must_be_unique: bool| {
            idx.iter().any(|i| {
                i.columns.len() > cols.len()
                    && i.columns[1..=cols.len()]
                        .iter()
                        .zip(cols)
                        .all(|(a, b)| a == b)
                    && (!must_be_unique || i.unique)
            })
        };
        assert!(
            has(&["created_at"], false),
            "{table}: list index in {idx:?}"
        );
        for cols in declared {
            assert!(has(cols, false), "{table}: index on {cols:?} in {idx:?}");
        }
        for field in unique {
            assert!(
                idx.iter()
                    .any(|i| i.unique && i.columns == ["tenant_id", field]),
                "{table}: unique per tenant on {field} in {idx:?}"
            );
        }
    }
}

// ---------------------------------------------------------------- CLI

/// `plinth` (see `cli.rs`) with explicit manifests and scripts folders.
fn plugin_cli(work: &Path, manifests: &Path, scripts: &Path) -> std::process::Command {
    let mut cmd = plinth(work);
    cmd.arg("--manifests-dir")
        .arg(manifests)
        .arg("--scripts-dir")
        .arg(scripts);
    cmd
}

/// Run with the suite's deadline.
trait OutputWithin {
    fn output_within(&mut self) -> Outcome;
}

impl OutputWithin for std::process::Command {
    fn output_within(&mut self) -> Outcome {
        run(self, None, COMMAND_DEADLINE)
    }
}

/// A working folder with `plugin-manifests/` (these manifests) and `scripts/`.
struct Workspace {
    dir: tempfile::TempDir,
    manifests: PathBuf,
    scripts: PathBuf,
}

impl Workspace {
    fn new(manifests: &[(&str, &str)]) -> Workspace {
        let dir = tempfile::tempdir().expect("temp dir");
        let m = dir.path().join("plugin-manifests");
        let s = dir.path().join("scripts");
        std::fs::create_dir_all(&m).expect("manifests dir");
        std::fs::create_dir_all(&s).expect("scripts dir");
        copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts"), &s);
        for (name, text) in manifests {
            write_manifest(&m, name, text);
        }
        Workspace {
            dir,
            manifests: m,
            scripts: s,
        }
    }

    fn plinth(&self, args: &[&str]) -> Outcome {
        plugin_cli(self.dir.path(), &self.manifests, &self.scripts)
            .args(args)
            .output_within()
    }
}

#[test]
fn plugin_check_prints_ok_for_each_good_manifest_and_exits_0() {
    let ws = Workspace::new(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]);

    let out = ws.plinth(&["plugin", "check"]);

    assert_eq!(out.code, Some(0), "{out:?}");
    let dir = ws.manifests.display();
    for name in ["inventory", "loyalty"] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{dir}/{name}.toml: ok (")) && l.ends_with(')')),
            "{name}: ok in:\n{}",
            out.stdout
        );
    }
    // Naming one checks only that one.
    let out = ws.plinth(&["plugin", "check", "loyalty"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("loyalty.toml: ok ("), "{out:?}");
    assert!(!out.stdout.contains("inventory.toml"), "{out:?}");
}

#[test]
fn plugin_check_prints_every_error_as_file_line_col_key_message_and_exits_1() {
    let bad = "name = \"bad\"\nversion = \"1.0.0\"\ncolour = \"red\"\n\n\
               [entities.thing.fields]\nq = { type = \"int\" }\n";
    let ws = Workspace::new(&[("inventory", INVENTORY), ("bad", bad)]);

    let out = ws.plinth(&["plugin", "check"]);

    assert_eq!(out.code, Some(1), "{out:?}");
    let dir = ws.manifests.display();
    let expected = format!("{dir}/bad.toml:6:1: entities.thing.fields.q: {UNKNOWN_INT}");
    assert!(
        out.stdout.lines().any(|l| l == expected),
        "expected the line\n{expected}\nin\n{}",
        out.stdout
    );
    // The second error is reported too, located at its key.
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(&format!("{dir}/bad.toml:3:1: colour: "))),
        "the unknown key colour is reported at 3:1 in:\n{}",
        out.stdout
    );
    // Every error line has the file:line:col: form.
    let bad_prefix = format!("{dir}/bad.toml:");
    for line in out.stdout.lines().filter(|l| l.starts_with(&bad_prefix)) {
        let rest = &line[bad_prefix.len()..];
        let mut parts = rest.splitn(3, ':');
        let (l, c) = (parts.next(), parts.next());
        assert!(
            l.is_some_and(|n| n.parse::<u32>().is_ok())
                && c.is_some_and(|n| n.parse::<u32>().is_ok()),
            "file:line:col: in {line}"
        );
    }
    assert!(
        out.stdout.contains(&format!("{dir}/inventory.toml: ok (")),
        "{out:?}"
    );
}

#[test]
fn plugin_check_of_an_unknown_name_exits_1_naming_it() {
    let ws = Workspace::new(&[("inventory", INVENTORY)]);

    let out = ws.plinth(&["plugin", "check", "nope"]);

    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("nope"),
        "{out:?}"
    );
}

#[test]
fn plugin_install_and_uninstall_from_the_cli_show_in_plugin_list() {
    let ws = Workspace::new(&[("inventory", INVENTORY), ("loyalty", LOYALTY)]);
    let created = ws.plinth(&[
        "tenant",
        "create",
        "--slug",
        "default",
        "--name",
        "Default",
        "--admin-email",
        "boss@default.test",
        "--admin-password",
        PASSWORD,
    ]);
    assert_eq!(created.code, Some(0), "{created:?}");

    let list = ws.plinth(&["plugin", "list"]);
    assert_eq!(list.code, Some(0), "{list:?}");
    let lines: Vec<&str> = list.stdout.lines().map(str::trim_end).collect();
    assert!(
        lines.contains(&"inventory 1.0.0 rhai loaded default=INSTALLED"),
        "default_install applied to a CLI-made tenant:\n{}",
        list.stdout
    );
    assert!(
        lines.contains(&"loyalty 1.0.0 rhai loaded default=UNINSTALLED"),
        "{}",
        list.stdout
    );

    let install = ws.plinth(&["plugin", "install", "loyalty", "--tenant", "default"]);
    assert_eq!(install.code, Some(0), "{install:?}");
    let view: Value = serde_json::from_str(install.stdout.trim()).expect("plugin JSON on stdout");
    assert_eq!(view["name"], "loyalty", "{view}");
    assert_eq!(view["status"], "INSTALLED", "{view}");
    assert!(
        view.get("installed_by").is_some_and(Value::is_null),
        "installed_by is null from the CLI: {view}"
    );
    let list = ws.plinth(&["plugin", "list"]);
    assert_eq!(list.code, Some(0), "{list:?}");
    assert!(
        list.stdout
            .lines()
            .any(|l| l.trim_end() == "loyalty 1.0.0 rhai loaded default=INSTALLED"),
        "{}",
        list.stdout
    );

    let uninstall = ws.plinth(&["plugin", "uninstall", "loyalty", "--tenant", "default"]);
    assert_eq!(uninstall.code, Some(0), "{uninstall:?}");
    let list = ws.plinth(&["plugin", "list"]);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.trim_end() == "loyalty 1.0.0 rhai loaded default=UNINSTALLED"),
        "{}",
        list.stdout
    );

    // (args, text on stderr)
    let failures: [(&[&str], &str); 4] = [
        (
            &["plugin", "install", "loyalty", "--tenant", "nope"],
            "nope",
        ),
        (
            &["plugin", "uninstall", "loyalty", "--tenant", "nope"],
            "nope",
        ),
        (
            &["plugin", "install", "ghost", "--tenant", "default"],
            "ghost",
        ),
        (
            &["plugin", "uninstall", "ghost", "--tenant", "default"],
            "ghost",
        ),
    ];
    for (args, named) in failures {
        let out = ws.plinth(args);
        assert_eq!(out.code, Some(1), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(named),
            "{args:?}: stderr should name {named}: {}",
            out.stderr
        );
    }
    // The failures changed nothing.
    let list = ws.plinth(&["plugin", "list"]);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.trim_end() == "loyalty 1.0.0 rhai loaded default=UNINSTALLED"),
        "{}",
        list.stdout
    );
}

#[test]
fn help_of_every_plugin_subcommand_exits_0_and_lists_its_arguments() {
    let ws = Workspace::new(&[]);
    let cases: [(&[&str], &[&str]); 5] = [
        (
            &["plugin", "--help"],
            &["list", "check", "install", "uninstall"],
        ),
        (&["plugin", "list", "--help"], &["--manifests-dir"]),
        (&["plugin", "check", "--help"], &["--manifests-dir"]),
        (&["plugin", "install", "--help"], &["--tenant"]),
        (&["plugin", "uninstall", "--help"], &["--tenant"]),
    ];
    for (args, words) in cases {
        let out = ws.plinth(args);
        assert_eq!(out.code, Some(0), "{args:?}: {out:?}");
        for word in words {
            assert!(
                out.stdout.contains(word),
                "{args:?} should mention {word}:\n{}",
                out.stdout
            );
        }
    }
}

#[tokio::test]
async fn health_reports_the_loaded_version_and_counts_requests() {
    let app = spawn_with(&[("inventory", INVENTORY)]).await;
    let (status, before) = app
        .get("/api/plugins/inventory/health", &app.root_token)
        .await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before["name"], "inventory");
    assert_eq!(before["version"], "1.0.0");
    assert_eq!(before["last_reload"]["ok"], true);
    assert_eq!(before["requests"], 0);
    assert!(before["p50_ms"].is_null());

    for _ in 0..3 {
        let (status, _) = app.get("/api/inventory/item", &app.root_token).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = app
        .post("/api/inventory/item", &app.root_token, json!({"name": "x"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, after) = app
        .get("/api/plugins/inventory/health", &app.root_token)
        .await;
    assert_eq!(after["requests"], 4, "{after}");
    assert_eq!(
        after["errors"], 0,
        "client errors are not plugin faults: {after}"
    );
    assert!(
        after["p50_ms"].as_f64().is_some_and(|v| v >= 0.0),
        "{after}"
    );
    assert!(after["p99_ms"].as_f64().is_some(), "{after}");
}

#[tokio::test]
async fn active_plugins_setting_limits_which_manifests_load() {
    let app = spawn_app_with(|config| {
        write_manifest(&config.manifests_dir, "inventory", INVENTORY);
        write_manifest(&config.manifests_dir, "loyalty", LOYALTY);
        config.active_plugins = Some(vec!["loyalty".to_owned()]);
    })
    .await;
    let (status, list) = app.get("/api/plugins", &app.root_token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, vec!["loyalty"]);
    let (status, body) = app.get("/api/inventory/item", &app.root_token).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (_, perms) = app.get("/api/permissions", &app.root_token).await;
    assert!(
        !perms.to_string().contains("INVENTORY_VIEW"),
        "an inactive plugin's permissions are not grantable: {perms}"
    );
}

#[test]
fn plugin_check_compiles_scripts_and_checks_route_targets() {
    let manifest = "name = \"shop\"\nversion = \"1.0.0\"\n\
        [[routes]]\nmethod = \"GET\"\npath = \"/hello\"\npermission = \"USERS_VIEW\"\nscript = \"hello.rhai\"\n\
        [[routes]]\nmethod = \"GET\"\npath = \"/bye\"\npermission = \"USERS_VIEW\"\nscript = \"bye.rhai\"\n\
        [[routes]]\nmethod = \"GET\"\npath = \"/x\"\npermission = \"USERS_VIEW\"\nscript = \"hello.rhai\"\nfunction = \"nope\"\n";
    let ws = Workspace::new(&[("shop", manifest)]);
    let dir = ws.scripts.join("shop");
    std::fs::create_dir_all(&dir).expect("scripts/shop");
    std::fs::write(
        dir.join("hello.rhai"),
        "fn handle(ctx, req) {\n  #{ hello: \"world\" }\n}\n",
    )
    .expect("write");
    std::fs::write(dir.join("broken.rhai"), "fn x( {\n").expect("write");

    let out = ws.plinth(&["plugin", "check"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let scripts = ws.scripts.display();
    let manifests = ws.manifests.display();
    for line in [
        format!(
            "{scripts}/shop/broken.rhai:1:7: Expecting ')' to close the parameters list of function 'x'"
        ),
        format!("{manifests}/shop.toml: routes[1].script: {scripts}/shop/bye.rhai does not exist"),
        format!(
            "{manifests}/shop.toml: routes[2].function: {scripts}/shop/hello.rhai defines no fn nope(ctx, req)"
        ),
    ] {
        assert!(
            out.stdout.lines().any(|l| l == line),
            "expected line\n  {line}\nin\n{}",
            out.stdout
        );
    }

    // Fixed scripts pass.
    std::fs::remove_file(dir.join("broken.rhai")).expect("rm");
    std::fs::write(dir.join("bye.rhai"), "fn handle(ctx, req) { () }\n").expect("write");
    std::fs::write(
        dir.join("hello.rhai"),
        "fn handle(ctx, req) { 1 }\nfn nope(ctx, req) { 2 }\n",
    )
    .expect("write");
    let out = ws.plinth(&["plugin", "check"]);
    assert_eq!(out.code, Some(0), "{out:?}");
}
