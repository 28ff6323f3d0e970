//! Plugin logic in Rhai (SCRIPTING.md): custom routes and their return
//! values, the `ctx` host API, transactions and rollback, runtime errors in
//! health, sandbox limits, entity and lifecycle hooks, cross-plugin access,
//! tenant isolation, escape attempts, `plinth plugin check`, and the shipped
//! examples (inventory, loyalty).
//!
//! Each test writes its plugins (manifest and scripts) into the test app's
//! folders before the app is built, with the sandbox limits it needs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plinth::runtime::ScriptLimits;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::{COMMAND_DEADLINE, Outcome, plinth, run};
use crate::helpers::*;

const INVENTORY: &str = include_str!("../../plugin-manifests/inventory.toml");
const LOYALTY: &str = include_str!("../../plugin-manifests/loyalty.toml");

/// A plugin: name, manifest, scripts (file name, text).
type PluginDef<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

// ---------------------------------------------------------------- lab plugin

/// The test bench plugin: routes for every host API feature, hooks on `tag`
/// and `chain`, and a plain `note` entity.
const LAB: &str = r##"
name = "lab"
version = "1.2.3"
description = "Script test bench"
default_install = true

[permissions]
LAB_USE    = "Use the lab"
LAB_SECRET = "See the lab's secrets"
LAB_NEVER  = "Granted to nobody"

[grants]
ADMIN  = ["LAB_USE", "LAB_SECRET"]
VIEWER = ["LAB_USE"]

[settings]
greeting = { type = "text", default = "hello" }
limit    = { type = "integer", default = 3, min = 0 }

[entities.note]
permissions = { list = "LAB_USE", read = "LAB_USE", create = "LAB_USE", update = "LAB_USE", delete = "LAB_USE" }

[entities.note.fields]
title = { type = "text", required = true, max_length = 50 }
code  = { type = "text", unique = true }
n     = { type = "integer" }

[entities.tag]
permissions = { list = "LAB_USE", read = "LAB_USE", create = "LAB_USE", update = "LAB_USE", delete = "LAB_USE" }

[entities.tag.fields]
label = { type = "text", required = true }

# Written by the tag hooks only.
[entities.event]
permissions = { list = "LAB_USE", read = "LAB_USE" }

[entities.event.fields]
kind   = { type = "text", required = true }
target = { type = "uuid" }
info   = { type = "text" }

[entities.chain]
permissions = { list = "LAB_USE", read = "LAB_USE", create = "LAB_USE" }

[entities.chain.fields]
depth = { type = "integer", required = true }

[[routes]]
method = "GET"
path = "/echo/{a}/{b}"
permission = "LAB_USE"
script = "echo.rhai"

[[routes]]
method = "POST"
path = "/echo/{a}/{b}"
permission = "LAB_USE"
script = "echo.rhai"

[[routes]]
method = "GET"
path = "/ctx"
permission = "LAB_USE"
script = "ctx.rhai"

[[routes]]
method = "GET"
path = "/secret"
permission = "LAB_USE"
script = "require.rhai"

[[routes]]
method = "GET"
path = "/admin-only"
permission = "LAB_SECRET"
script = "require.rhai"
function = "admin_only"

[[routes]]
method = "GET"
path = "/return/{kind}"
permission = "LAB_USE"
script = "return.rhai"

[[routes]]
method = "POST"
path = "/fail/{kind}"
permission = "LAB_USE"
script = "fail.rhai"

[[routes]]
method = "GET"
path = "/write"
permission = "LAB_USE"
script = "write.rhai"

[[routes]]
method = "POST"
path = "/db"
permission = "LAB_USE"
script = "db.rhai"

[[routes]]
method = "POST"
path = "/tag-ops"
permission = "LAB_USE"
script = "tagops.rhai"

[[routes]]
method = "GET"
path = "/peek/{id}"
permission = "LAB_USE"
script = "peek.rhai"

[[routes]]
method = "POST"
path = "/touch/{id}"
permission = "LAB_USE"
script = "peek.rhai"
function = "touch"

[[routes]]
method = "GET"
path = "/sandbox/{kind}"
permission = "LAB_USE"
script = "sandbox.rhai"
"##;

const ECHO: &str = r##"
fn handle(ctx, req) {
    let types = #{};
    if type_of(req.body) == "map" {
        for key in req.body.keys() {
            types[key] = type_of(req.body[key]);
        }
    }
    #{
        method: req.method,
        path: req.path,
        params: req.params,
        query: req.query,
        headers: req.headers,
        body: req.body,
        body_type: type_of(req.body),
        types: types
    }
}
"##;

const CTX: &str = r##"
fn handle(ctx, req) {
    ctx.log.info("ctx route called");
    ctx.log.warn(#{ structured: true });
    ctx.log.error("not really an error");
    #{
        user: ctx.user,
        tenant: ctx.tenant,
        plugin: ctx.plugin,
        settings: ctx.settings,
        can_use: ctx.can("LAB_USE"),
        can_secret: ctx.can("LAB_SECRET"),
        can_never: ctx.can("LAB_NEVER"),
        now: ctx.now(),
        uuid: ctx.uuid(),
        uuid2: ctx.uuid()
    }
}
"##;

const REQUIRE: &str = r##"
fn handle(ctx, req) {
    ctx.require("LAB_SECRET");
    #{ secret: "42" }
}

fn admin_only(ctx, req) {
    #{ admin: true }
}
"##;

const RETURN: &str = r##"
fn handle(ctx, req) {
    let kind = req.params.kind;
    if kind == "envelope" {
        return #{ status: 201, body: #{ made: true }, headers: #{ "x-lab": "made" } };
    }
    if kind == "teapot" {
        return #{ status: 418, body: #{ short: "stout" } };
    }
    if kind == "empty" {
        return #{ status: 204 };
    }
    if kind == "record" {
        return #{ status: "active", name: "x" };
    }
    if kind == "extra" {
        return #{ status: 202, extra: 1 };
    }
    if kind == "out-of-range" {
        return #{ status: 700, body: 1 };
    }
    if kind == "array" {
        return [1, 2, 3];
    }
    if kind == "string" {
        return "plain";
    }
    if kind == "number" {
        return 7;
    }
    ctx.fail(404, "unknown kind");
}
"##;

/// Every way a request can fail, each after a first write.
const FAIL: &str = r##"
fn handle(ctx, req) {
    let kind = req.params.kind;
    ctx.db.insert("note", #{ title: kind });
    if kind == "fail" {
        ctx.fail(422, "the lab says no");
    }
    if kind == "require" {
        ctx.require("LAB_NEVER");
    }
    if kind == "throw" {
        throw "thrown on purpose";
    }
    if kind == "undefined" {
        no_such_function(1);
    }
    if kind == "invalid" {
        ctx.db.insert("note", #{});
    }
    if kind == "conflict" {
        ctx.db.insert("note", #{ title: "c1", code: "same" });
        ctx.db.insert("note", #{ title: "c2", code: "same" });
    }
    if kind == "catch" {
        try {
            ctx.db.insert("note", #{ n: 1 });
        } catch (e) {
            return #{ caught: e.status, errors: e.errors };
        }
    }
    if kind == "catch-fail" {
        try {
            ctx.fail(409, "cannot be caught");
        } catch (e) {
            return #{ caught: true };
        }
    }
    if kind == "bad-fail" {
        ctx.fail(200, "not a client error");
    }
    #{ kept: kind }
}
"##;

const WRITE: &str = r##"
fn handle(ctx, req) {
    ctx.db.insert("note", #{ title: "from get" })
}
"##;

const DB: &str = r##"
fn titles(rows) {
    let out = [];
    for r in rows {
        out.push(r.title);
    }
    out
}

fn handle(ctx, req) {
    let a = ctx.db.insert("note", #{ title: "alpha", n: 1 });
    let b = ctx.db.insert("note", #{ title: "beta", n: 5 });
    let c = ctx.db.insert("note", #{ title: "gamma", n: 9 });
    let r = #{};
    r.id_type = type_of(a.id);
    r.n_type = type_of(a.n);
    r.got = ctx.db.get("note", b.id).title;
    r.big = titles(ctx.db.find("note", #{ n: #{ gt: 2 } }, #{ sort: "-n" }));
    r.like = titles(ctx.db.find("note", #{ title: #{ like: "amm" } }));
    r.paged = titles(ctx.db.find("note", (), #{ sort: "n", limit: 1, offset: 1 }));
    r.all = ctx.db.find("note").len();
    r.first = ctx.db.first("note", #{ title: "gamma" }).n;
    r.none = ctx.db.first("note", #{ title: "zeta" });
    r.count_all = ctx.db.count("note");
    r.count_small = ctx.db.count("note", #{ n: #{ lt: 6 } });
    r.updated = ctx.db.update("note", a.id, #{ n: 2 }).n;
    r.deleted = ctx.db.delete("note", c.id);
    r.deleted_again = ctx.db.delete("note", c.id);
    r.missing = ctx.db.get("note", c.id);
    r.missing_update = ctx.db.update("note", c.id, #{ n: 3 });
    #{ status: 201, body: r }
}
"##;

const TAGOPS: &str = r##"
fn handle(ctx, req) {
    let made = ctx.db.insert("tag", #{ label: req.body.label });
    let changed = ctx.db.update("tag", made.id, #{ label: "lime" });
    let gone = ctx.db.delete("tag", made.id);
    #{ made: made, changed: changed, gone: gone }
}
"##;

const PEEK: &str = r##"
fn handle(ctx, req) {
    let all = [];
    for r in ctx.db.find("note") {
        all.push(r.title);
    }
    #{
        all: all,
        got: ctx.db.get("note", req.params.id),
        count: ctx.db.count("note"),
        first: ctx.db.first("note", #{ title: "theirs" })
    }
}

fn touch(ctx, req) {
    #{
        updated: ctx.db.update("note", req.params.id, #{ n: 99 }),
        deleted: ctx.db.delete("note", req.params.id)
    }
}
"##;

const SANDBOX: &str = r##"
fn handle(ctx, req) {
    let kind = req.params.kind;
    if kind == "file" {
        return open_file("x");
    }
    if kind == "env" {
        return env("HOME");
    }
    #{ ok: kind }
}
"##;

/// Hooks of `tag`: labels upper-case, every change leaves an `event`.
const TAG_HOOKS: &str = r##"
fn before_create(ctx, record) {
    if record.label == "forbidden" {
        ctx.fail(400, "forbidden label");
    }
    record.label = record.label.to_upper();
    record
}

fn after_create(ctx, record) {
    ctx.db.insert("event", #{ kind: "after_create", target: record.id, info: record.label });
}

fn before_update(ctx, old, changes) {
    if type_of(changes.label) == "string" {
        changes.label = changes.label.to_upper();
    }
    changes
}

fn after_update(ctx, old, updated) {
    ctx.db.insert("event", #{ kind: "after_update", target: updated.id, info: old.label + "->" + updated.label });
}

fn before_delete(ctx, record) {
    if record.label == "KEEP" {
        ctx.fail(409, "this tag is kept");
    }
    ctx.db.insert("event", #{ kind: "before_delete", target: record.id, info: record.label });
}

fn after_delete(ctx, record) {
    ctx.db.insert("event", #{ kind: "after_delete", target: record.id, info: record.label });
}
"##;

/// Each chain link makes the next: endless nesting of hooks.
const CHAIN_HOOKS: &str = r##"
fn after_create(ctx, record) {
    ctx.db.insert("chain", #{ depth: record.depth + 1 });
}
"##;

const LAB_SCRIPTS: &[(&str, &str)] = &[
    ("echo.rhai", ECHO),
    ("ctx.rhai", CTX),
    ("require.rhai", REQUIRE),
    ("return.rhai", RETURN),
    ("fail.rhai", FAIL),
    ("write.rhai", WRITE),
    ("db.rhai", DB),
    ("tagops.rhai", TAGOPS),
    ("peek.rhai", PEEK),
    ("sandbox.rhai", SANDBOX),
    ("tag.rhai", TAG_HOOKS),
    ("chain.rhai", CHAIN_HOOKS),
];

const LAB_PLUGIN: PluginDef<'static> = ("lab", LAB, LAB_SCRIPTS);

// ---------------------------------------------------------------- wild plugin

/// Runaway scripts for the sandbox limits; each first writes a `mark`.
const WILD: &str = r##"
name = "wild"
version = "0.1.0"
default_install = true

[permissions]
WILD_RUN = "Run wild scripts"

[grants]
ADMIN = ["WILD_RUN"]

[entities.mark]
permissions = { list = "WILD_RUN", read = "WILD_RUN", create = "WILD_RUN" }

[entities.mark.fields]
label = { type = "text", required = true }

[[routes]]
method = "POST"
path = "/run/{kind}"
permission = "WILD_RUN"
script = "run.rhai"

[[routes]]
method = "GET"
path = "/spin"
permission = "WILD_RUN"
script = "spin.rhai"
"##;

const RUN: &str = r##"
fn deep(n) {
    deep(n + 1)
}

fn handle(ctx, req) {
    let kind = req.params.kind;
    ctx.db.insert("mark", #{ label: kind });
    if kind == "loop" {
        loop {}
    }
    if kind == "recurse" {
        deep(0);
    }
    if kind == "string" {
        let s = "x";
        loop { s += s; }
    }
    if kind == "array" {
        let a = [];
        loop { a.push(1); }
    }
    if kind == "map" {
        let m = #{};
        let i = 0;
        loop { m["k" + i] = i; i += 1; }
    }
    if kind == "rows" {
        return #{ rows: ctx.db.find("mark").len() };
    }
    if kind == "slow" {
        let i = 0;
        loop { i += 1; }
    }
    #{ done: kind }
}
"##;

const SPIN: &str = r##"
fn handle(ctx, req) {
    let i = 0;
    loop { i += 1; }
}
"##;

const WILD_PLUGIN: PluginDef<'static> = ("wild", WILD, &[("run.rhai", RUN), ("spin.rhai", SPIN)]);

// ---------------------------------------------------------------- helpers

/// Write `manifests/<name>.toml` and `scripts/<name>/<file>` for a plugin.
fn write_plugin(manifests: &Path, scripts: &Path, (name, manifest, files): PluginDef<'_>) {
    std::fs::write(manifests.join(format!("{name}.toml")), manifest)
        .unwrap_or_else(|e| panic!("write manifest {name}: {e}"));
    let dir = scripts.join(name);
    std::fs::create_dir_all(&dir).expect("scripts dir of the plugin");
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap_or_else(|e| panic!("write {name}/{file}: {e}"));
    }
}

/// An app with these plugins (all of which must load) and adjusted limits.
async fn app_with(plugins: &[PluginDef<'_>], limits: impl FnOnce(&mut ScriptLimits)) -> TestApp {
    let app = spawn_app_with(|config| {
        for p in plugins {
            write_plugin(&config.manifests_dir, &config.scripts_dir, *p);
        }
        limits(&mut config.script_limits);
    })
    .await;
    for (name, _, _) in plugins {
        let (status, body) = app
            .get(&format!("/api/plugins/{name}"), &app.root_token)
            .await;
        assert_eq!(status, StatusCode::OK, "plugin {name} loaded: {body}");
    }
    app
}

/// An app with the lab plugin and default limits.
async fn lab_app() -> TestApp {
    app_with(&[LAB_PLUGIN], |_| {}).await
}

fn detail(body: &Value) -> &str {
    body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("detail in {body}"))
}

fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("id in {v}"))
        .to_owned()
}

/// The items of an entity list (up to 500), asserting 200.
async fn items(app: &TestApp, token: &str, path: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("{path}?limit=500"), token).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items in {body}"))
        .clone()
}

/// One field of every item of an entity list, sorted.
async fn field_of_all(app: &TestApp, token: &str, path: &str, field: &str) -> Vec<String> {
    let mut out: Vec<String> = items(app, token, path)
        .await
        .iter()
        .map(|r| match &r[field] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    out.sort();
    out
}

async fn note_titles(app: &TestApp, token: &str) -> Vec<String> {
    field_of_all(app, token, "/api/lab/note", "title").await
}

async fn health(app: &TestApp, name: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/plugins/{name}/health"), &app.root_token)
        .await;
    assert_eq!(status, StatusCode::OK, "health of {name}: {body}");
    body
}

/// POST with no body at all.
async fn post_empty(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    app.call(Method::POST, path, Some(token), None).await
}

/// A 5xx script fault: problem JSON naming the plugin and the request.
fn assert_fault(status: StatusCode, body: &Value, expected: StatusCode, plugin: &str) {
    assert_problem(status, body, expected);
    assert_eq!(body["plugin"], plugin, "plugin named in {body}");
    let request_id = body["request_id"].as_str().expect("request_id");
    assert!(!request_id.is_empty(), "request_id in {body}");
}

/// The value of one sample line of the Prometheus text, if present.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
}

// ---------------------------------------------------------------- custom routes

#[tokio::test]
async fn a_custom_route_gets_method_path_params_query_headers_and_body_in_req() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;

    let resp = app
        .request(
            Method::GET,
            "/api/lab/echo/one/two?q=a%20b&n=1",
            Some(&token),
        )
        .header("X-Lab", "Yes Please")
        .send()
        .await
        .expect("request sent");
    let (status, body) = split(resp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["method"], "GET", "{body}");
    assert_eq!(body["path"], "/api/lab/echo/one/two", "{body}");
    assert_eq!(body["params"], json!({"a": "one", "b": "two"}), "{body}");
    assert_eq!(body["query"], json!({"q": "a b", "n": "1"}), "{body}");
    assert_eq!(body["headers"]["x-lab"], "Yes Please", "{body}");
    let headers = body["headers"].as_object().expect("headers map");
    assert!(
        !headers.contains_key("authorization"),
        "authorization is never shown to scripts: {body}"
    );
    assert!(
        headers.keys().all(|k| *k == k.to_lowercase()),
        "header names are lower-case: {body}"
    );
    assert_eq!(body["body"], Value::Null, "no body is (): {body}");
    assert_eq!(body["body_type"], "()", "{body}");

    let (status, body) = app
        .post(
            "/api/lab/echo/x/y",
            &token,
            json!({"n": 3, "f": 1.5, "s": "t", "list": [1, 2], "nothing": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["method"], "POST");
    assert_eq!(body["params"], json!({"a": "x", "b": "y"}));
    assert_eq!(
        body["body"],
        json!({"n": 3, "f": 1.5, "s": "t", "list": [1, 2], "nothing": null})
    );
    assert_eq!(
        body["types"],
        json!({"n": "i64", "f": "f64", "s": "string", "list": "array", "nothing": "()"}),
        "JSON integers arrive as integers, null as (): {body}"
    );
}

#[tokio::test]
async fn a_wrong_method_on_a_custom_route_path_is_405() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    for (method, path) in [
        (Method::PUT, "/api/lab/echo/a/b"),
        (Method::DELETE, "/api/lab/echo/a/b"),
        (Method::POST, "/api/lab/ctx"),
        (Method::PATCH, "/api/lab/return/x"),
    ] {
        let (status, body) = app
            .call(method.clone(), path, Some(&token), Some(json!({})))
            .await;
        assert_problem(status, &body, StatusCode::METHOD_NOT_ALLOWED);
        let _ = method;
    }
}

#[tokio::test]
async fn a_route_without_its_permission_is_403_naming_the_permission() {
    let app = lab_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (_, viewer) = app
        .user(&admin, "acme", "viewer@acme.test", &["VIEWER"])
        .await;

    let (status, body) = app.get("/api/lab/admin-only", &viewer).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert!(detail(&body).contains("LAB_SECRET"), "{body}");

    let (status, body) = app.get("/api/lab/admin-only", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"admin": true}));

    let (status, body) = app
        .call(Method::GET, "/api/lab/admin-only", None, None)
        .await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_route_of_a_plugin_not_installed_for_the_tenant_is_403_not_installed() {
    let app = lab_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (status, body) = app.get("/api/lab/ctx", &admin).await;
    assert_eq!(status, StatusCode::OK, "installed by default: {body}");

    let (status, body) = post_empty(&app, &admin, "/api/plugins/lab/uninstall").await;
    assert_eq!(status, StatusCode::OK, "uninstall: {body}");
    let (status, body) = app.get("/api/lab/ctx", &admin).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert!(detail(&body).contains("not installed"), "{body}");
}

#[tokio::test]
async fn an_envelope_map_sets_the_status_body_and_headers() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;

    let resp = app
        .request(Method::GET, "/api/lab/return/envelope", Some(&token))
        .send()
        .await
        .expect("request sent");
    assert_eq!(
        resp.headers().get("x-lab").and_then(|v| v.to_str().ok()),
        Some("made"),
        "{:?}",
        resp.headers()
    );
    let (status, body) = split(resp).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body, json!({"made": true}));

    let (status, body) = app.get("/api/lab/return/teapot", &token).await;
    assert_eq!(status, StatusCode::IM_A_TEAPOT, "{body}");
    assert_eq!(body, json!({"short": "stout"}));

    let (status, body) = app.get("/api/lab/return/empty", &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);
}

#[tokio::test]
async fn any_other_return_value_is_a_200_with_that_value_as_json() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    for (kind, expected) in [
        ("record", json!({"status": "active", "name": "x"})),
        ("extra", json!({"status": 202, "extra": 1})),
        ("out-of-range", json!({"status": 700, "body": 1})),
        ("array", json!([1, 2, 3])),
        ("string", json!("plain")),
        ("number", json!(7)),
    ] {
        let (status, body) = app.get(&format!("/api/lab/return/{kind}"), &token).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {body}");
        assert_eq!(body, expected, "{kind}");
    }
}

// ---------------------------------------------------------------- ctx

#[tokio::test]
async fn ctx_shows_the_caller_tenant_plugin_settings_time_and_new_uuids() {
    let app = lab_app().await;
    let (tenant, admin) = app.tenant("acme").await;
    let (user, viewer) = app
        .user(&admin, "acme", "viewer@acme.test", &["VIEWER"])
        .await;

    let (status, body) = app.get("/api/lab/ctx", &viewer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["id"], user["id"], "{body}");
    assert_eq!(body["user"]["email"], "viewer@acme.test", "{body}");
    assert_eq!(body["user"]["name"], user["name"], "{body}");
    assert_eq!(body["user"]["roles"], json!(["VIEWER"]), "{body}");
    assert_eq!(
        body["tenant"],
        json!({"id": tenant["id"], "slug": "acme", "name": "Tenant acme"}),
        "{body}"
    );
    assert_eq!(body["plugin"], json!({"name": "lab", "version": "1.2.3"}));
    assert_eq!(
        body["settings"],
        json!({"greeting": "hello", "limit": 3}),
        "defaults filled in: {body}"
    );
    assert_eq!(body["can_use"], true, "{body}");
    assert_eq!(body["can_secret"], false, "{body}");
    assert_eq!(body["can_never"], false, "{body}");

    let now = body["now"].as_str().expect("now is text");
    let parsed = chrono::DateTime::parse_from_rfc3339(now)
        .unwrap_or_else(|e| panic!("now {now} is RFC 3339: {e}"));
    let skew = chrono::Utc::now().signed_duration_since(parsed);
    assert!(skew.num_seconds().abs() < 60, "now {now} is current");
    assert_eq!(parsed.offset().local_minus_utc(), 0, "now {now} is in UTC");
    let ids: Vec<uuid::Uuid> = ["uuid", "uuid2"]
        .iter()
        .map(|k| {
            let text = body[k].as_str().unwrap_or_else(|| panic!("{k} in {body}"));
            uuid::Uuid::parse_str(text).unwrap_or_else(|e| panic!("{k} {text}: {e}"))
        })
        .collect();
    assert!(
        ids.iter().all(|u| u.get_version_num() == 7),
        "UUID v7: {ids:?}"
    );
    assert_ne!(ids[0], ids[1], "each ctx.uuid() is new");

    // An ADMIN holds what the manifest grants it, and nothing more.
    let (_, manager) = app
        .user(&admin, "acme", "manager@acme.test", &["ADMIN"])
        .await;
    let (status, body) = app.get("/api/lab/ctx", &manager).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["can_secret"], true, "{body}");
    assert_eq!(body["can_never"], false, "{body}");

    // SUPER_ADMIN holds every permission, granted or not (API.md).
    let (status, body) = app.get("/api/lab/ctx", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["can_secret"], true, "{body}");
    assert_eq!(body["can_never"], true, "{body}");
}

#[tokio::test]
async fn ctx_settings_follow_the_tenants_put_settings() {
    let app = lab_app().await;
    let (_, acme) = app.tenant("acme").await;
    let (_, beta) = app.tenant("beta").await;
    let (status, body) = app
        .put("/api/plugins/lab/settings", &acme, json!({"limit": 7}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = app.get("/api/lab/ctx", &acme).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["settings"], json!({"greeting": "hello", "limit": 7}));
    let (status, body) = app.get("/api/lab/ctx", &beta).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["settings"],
        json!({"greeting": "hello", "limit": 3}),
        "another tenant keeps the defaults"
    );
}

#[tokio::test]
async fn ctx_require_passes_when_held_and_is_a_403_naming_the_permission_otherwise() {
    let app = lab_app().await;
    let (_, admin) = app.tenant("acme").await;
    let (_, viewer) = app
        .user(&admin, "acme", "viewer@acme.test", &["VIEWER"])
        .await;

    let (status, body) = app.get("/api/lab/secret", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"secret": "42"}));

    let (status, body) = app.get("/api/lab/secret", &viewer).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert!(detail(&body).contains("LAB_SECRET"), "{body}");
    assert_eq!(body["plugin"], "lab", "{body}");
}

// ---------------------------------------------------------------- failures roll back

#[tokio::test]
async fn ctx_fail_answers_its_status_and_message_and_rolls_back_earlier_writes() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    let (status, body) = post_empty(&app, &token, "/api/lab/fail/fail").await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(detail(&body), "the lab says no", "{body}");
    assert_eq!(body["plugin"], "lab", "{body}");
    assert!(note_titles(&app, &token).await.is_empty(), "rolled back");

    // The same script without a failure commits its write.
    let (status, body) = post_empty(&app, &token, "/api/lab/fail/none").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"kept": "none"}));
    assert_eq!(note_titles(&app, &token).await, vec!["none"]);
}

#[tokio::test]
async fn ctx_require_in_a_script_is_a_403_with_the_plugin_and_rolls_back() {
    let app = lab_app().await;
    let (_, admin) = app.tenant("acme").await;
    // Not the SUPER_ADMIN, who holds every permission, LAB_NEVER included.
    let (_, token) = app
        .user(&admin, "acme", "manager@acme.test", &["ADMIN"])
        .await;
    let (status, body) = post_empty(&app, &token, "/api/lab/fail/require").await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert!(detail(&body).contains("LAB_NEVER"), "{body}");
    assert_eq!(body["plugin"], "lab", "{body}");
    assert!(note_titles(&app, &token).await.is_empty(), "rolled back");
}

#[tokio::test]
async fn ctx_fail_cannot_be_caught_and_takes_only_4xx_statuses() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    let (status, body) = post_empty(&app, &token, "/api/lab/fail/catch-fail").await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    assert_eq!(detail(&body), "cannot be caught", "{body}");

    let (status, body) = post_empty(&app, &token, "/api/lab/fail/bad-fail").await;
    assert_fault(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "lab");
    assert!(
        note_titles(&app, &token).await.is_empty(),
        "both rolled back"
    );
}

#[tokio::test]
async fn a_thrown_error_is_a_500_and_rolls_back() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    let (status, body) = post_empty(&app, &token, "/api/lab/fail/throw").await;
    assert_fault(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "lab");
    assert!(note_titles(&app, &token).await.is_empty(), "rolled back");
    let h = health(&app, "lab").await;
    assert!(
        h["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("thrown on purpose")),
        "{h}"
    );
}

#[tokio::test]
async fn a_runtime_error_is_a_500_naming_plugin_and_request_and_is_located_in_health() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    let before = health(&app, "lab").await;
    assert_eq!(before["errors"], 0, "{before}");

    let (status, body) = post_empty(&app, &token, "/api/lab/fail/undefined").await;
    assert_fault(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "lab");
    assert!(note_titles(&app, &token).await.is_empty(), "rolled back");

    let h = health(&app, "lab").await;
    assert!(h["errors"].as_u64().is_some_and(|n| n >= 1), "{h}");
    let last = &h["last_error"];
    assert!(
        last["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("fail.rhai")),
        "file of {h}"
    );
    let line = FAIL
        .lines()
        .position(|l| l.contains("no_such_function"))
        .expect("call in the script")
        + 1;
    assert!(last["line"].as_u64().is_some_and(|l| l > 0), "line of {h}");
    assert_eq!(last["line"], line, "the line of the bad call: {h}");
    assert!(last["column"].as_u64().is_some(), "column of {h}");
    assert!(
        last["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message of {h}"
    );
}

#[tokio::test]
async fn an_uncaught_validation_error_from_ctx_db_insert_is_a_400_naming_the_field_and_rolls_back()
{
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    let (status, body) = post_empty(&app, &token, "/api/lab/fail/invalid").await;
    assert_field_error(status, &body, "title");
    assert!(note_titles(&app, &token).await.is_empty(), "rolled back");
}

#[tokio::test]
async fn a_unique_conflict_from_ctx_db_insert_is_a_409_and_rolls_back() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    let (status, body) = post_empty(&app, &token, "/api/lab/fail/conflict").await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    assert!(
        note_titles(&app, &token).await.is_empty(),
        "the first note and c1 are rolled back"
    );
}

#[tokio::test]
async fn a_caught_validation_error_gives_the_script_its_status_and_errors_and_keeps_other_writes() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    let (status, body) = post_empty(&app, &token, "/api/lab/fail/catch").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["caught"], 400, "{body}");
    let errors = body["errors"].as_array().expect("errors array");
    assert!(errors.iter().any(|e| e["field"] == "title"), "{body}");
    assert_eq!(
        note_titles(&app, &token).await,
        vec!["catch"],
        "the refused insert left nothing, the first one is kept"
    );
}

#[tokio::test]
async fn ctx_db_get_find_first_count_insert_update_delete_work_and_commit() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    let (status, body) = post_empty(&app, &token, "/api/lab/db").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body,
        json!({
            "id_type": "string",
            "n_type": "i64",
            "got": "beta",
            "big": ["gamma", "beta"],
            "like": ["gamma"],
            "paged": ["beta"],
            "all": 3,
            "first": 9,
            "none": null,
            "count_all": 3,
            "count_small": 2,
            "updated": 2,
            "deleted": true,
            "deleted_again": false,
            "missing": null,
            "missing_update": null,
        })
    );
    let notes = items(&app, &token, "/api/lab/note").await;
    let mut seen: Vec<(String, Value)> = notes
        .iter()
        .map(|n| {
            (
                n["title"].as_str().expect("title").to_owned(),
                n["n"].clone(),
            )
        })
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("alpha".to_owned(), json!(2)),
            ("beta".to_owned(), json!(5))
        ],
        "the script's writes are committed"
    );
}

#[tokio::test]
async fn a_get_route_is_read_only_and_a_write_there_is_a_500_that_stores_nothing() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    let (status, body) = app.get("/api/lab/write", &token).await;
    assert_fault(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "lab");
    assert!(note_titles(&app, &token).await.is_empty());
}

// ---------------------------------------------------------------- limits

/// Run a wild kind, expect a limit 500 for plugin wild, and no mark kept.
async fn assert_limit_500(app: &TestApp, token: &str, kind: &str) -> Value {
    let started = Instant::now();
    let (status, body) = post_empty(app, token, &format!("/api/wild/run/{kind}")).await;
    assert_fault(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "wild");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{kind} stopped quickly ({:?})",
        started.elapsed()
    );
    let marks = field_of_all(app, token, "/api/wild/mark", "label").await;
    assert!(
        !marks.contains(&kind.to_owned()),
        "{kind} rolled back: {marks:?}"
    );
    let h = health(app, "wild").await;
    assert_eq!(h["last_error"]["kind"], "limit", "{kind}: {h}");
    h
}

/// Limits set so the size and depth limits, not the operations limit or
/// the clock, are what stop a runaway.
fn size_limits(l: &mut ScriptLimits) {
    l.max_operations = 5_000_000;
    l.timeout = Duration::from_secs(10);
    l.max_call_depth = 16;
    l.max_string = 10_000;
    l.max_collection = 1_000;
}

/// The limit that stopped the last runaway was not the operations limit.
fn assert_not_operations(h: &Value) {
    let message = h["last_error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        !message.contains("operations"),
        "the size/depth limit must stop it, not the operations limit: {h}"
    );
}

#[tokio::test]
async fn an_endless_loop_hits_the_operations_limit_with_a_500_and_rolls_back() {
    let app = app_with(&[WILD_PLUGIN], |l| l.max_operations = 50_000).await;
    let (_, token) = app.tenant("acme").await;
    assert_limit_500(&app, &token, "loop").await;
    // The server carries on: the next request of the same plugin works.
    let (status, body) = post_empty(&app, &token, "/api/wild/run/ok").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn deep_recursion_hits_the_call_depth_limit_with_a_500() {
    let app = app_with(&[WILD_PLUGIN], size_limits).await;
    let (_, token) = app.tenant("acme").await;
    let h = assert_limit_500(&app, &token, "recurse").await;
    assert_not_operations(&h);
}

#[tokio::test]
async fn a_huge_string_hits_the_string_limit_with_a_500() {
    let app = app_with(&[WILD_PLUGIN], size_limits).await;
    let (_, token) = app.tenant("acme").await;
    let h = assert_limit_500(&app, &token, "string").await;
    assert_not_operations(&h);
}

#[tokio::test]
async fn a_growing_array_hits_the_collection_limit_with_a_500() {
    let app = app_with(&[WILD_PLUGIN], size_limits).await;
    let (_, token) = app.tenant("acme").await;
    let h = assert_limit_500(&app, &token, "array").await;
    assert_not_operations(&h);
}

#[tokio::test]
async fn a_map_grown_by_assignment_hits_the_collection_limit_with_a_500() {
    let app = app_with(&[WILD_PLUGIN], size_limits).await;
    let (_, token) = app.tenant("acme").await;
    let h = assert_limit_500(&app, &token, "map").await;
    assert_not_operations(&h);
}

#[tokio::test]
async fn a_find_over_max_rows_is_a_500_and_rolls_back_while_a_find_within_it_works() {
    let app = app_with(&[WILD_PLUGIN], |l| l.max_rows = 5).await;
    let (_, token) = app.tenant("acme").await;
    for _ in 0..4 {
        let (status, body) = post_empty(&app, &token, "/api/wild/run/seed").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // 4 seeds + this request's mark = 5 rows: exactly the limit.
    let (status, body) = post_empty(&app, &token, "/api/wild/run/rows").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"rows": 5}));
    // One more row makes 6 > 5.
    let (status, body) = post_empty(&app, &token, "/api/wild/run/rows").await;
    assert_fault(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "wild");
    let (status, list) = app.get("/api/wild/mark", &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        list["total"], 5,
        "the failed request's mark is gone: {list}"
    );
}

#[tokio::test]
async fn a_slow_script_hits_the_wall_clock_limit_with_a_503() {
    let app = app_with(&[WILD_PLUGIN], |l| {
        l.max_operations = 1_000_000_000_000;
        l.timeout = Duration::from_millis(300);
    })
    .await;
    let (_, token) = app.tenant("acme").await;
    let started = Instant::now();
    let (status, body) = post_empty(&app, &token, "/api/wild/run/slow").await;
    let took = started.elapsed();
    assert_fault(status, &body, StatusCode::SERVICE_UNAVAILABLE, "wild");
    assert!(
        took >= Duration::from_millis(250),
        "ran until the limit: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "stopped near 300 ms: {took:?}"
    );
    assert!(
        field_of_all(&app, &token, "/api/wild/mark", "label")
            .await
            .is_empty(),
        "rolled back"
    );
    let (status, text) = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().expect("metrics text");
    assert!(
        metric(
            text,
            "plinth_script_errors_total{plugin=\"wild\",kind=\"timeout\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
}

#[tokio::test]
async fn other_plugins_keep_serving_while_a_runaway_script_runs() {
    let app = app_with(&[WILD_PLUGIN, LAB_PLUGIN], |l| {
        l.max_operations = 1_000_000_000_000;
        l.timeout = Duration::from_secs(2);
    })
    .await;
    let (_, token) = app.tenant("acme").await;
    let started = Instant::now();
    let runaway_request = app.request(Method::GET, "/api/wild/spin", Some(&token));
    let runaway = tokio::spawn(async move {
        runaway_request
            .send()
            .await
            .map(|r| r.status())
            .expect("runaway request sent")
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (status, body) = app.get("/api/lab/ctx", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post("/api/lab/note", &token, json!({"title": "meanwhile"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = post_empty(&app, &token, "/api/lab/db").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        !runaway.is_finished(),
        "the other plugin answered while the runaway was still running ({:?})",
        started.elapsed()
    );

    let status = runaway.await.expect("runaway task");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn script_limits_are_counted_in_metrics_and_health_by_plugin_and_kind() {
    let app = app_with(&[WILD_PLUGIN], |l| l.max_operations = 50_000).await;
    let (_, token) = app.tenant("acme").await;
    for _ in 0..2 {
        let (status, body) = post_empty(&app, &token, "/api/wild/run/loop").await;
        assert_fault(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "wild");
    }
    let (status, text) = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().expect("metrics text");
    let n = metric(
        text,
        "plinth_script_errors_total{plugin=\"wild\",kind=\"limit\"}",
    )
    .unwrap_or_else(|| panic!("limit series in {text}"));
    assert!(n >= 2.0, "two limit hits counted: {text}");

    let h = health(&app, "wild").await;
    assert!(h["errors"].as_u64().is_some_and(|n| n >= 2), "{h}");
    assert!(
        h["script_errors"]["limit"].as_u64().is_some_and(|n| n >= 2),
        "{h}"
    );
}

// ---------------------------------------------------------------- hooks

/// (kind, info) of every event, sorted.
async fn events(app: &TestApp, token: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = items(app, token, "/api/lab/event")
        .await
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().expect("kind").to_owned(),
                e["info"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = list
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn rest_writes_run_every_entity_hook_and_before_hooks_change_the_record() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;

    let (status, tag) = app
        .post("/api/lab/tag", &token, json!({"label": "red"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tag}");
    assert_eq!(tag["label"], "RED", "before_create changed it: {tag}");
    let id = id_of(&tag);
    let (_, stored) = app.get(&format!("/api/lab/tag/{id}"), &token).await;
    assert_eq!(stored["label"], "RED", "{stored}");
    assert_eq!(
        events(&app, &token).await,
        pairs(&[("after_create", "RED")])
    );

    let (status, tag) = app
        .patch(
            &format!("/api/lab/tag/{id}"),
            &token,
            json!({"label": "blue"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tag}");
    assert_eq!(tag["label"], "BLUE", "before_update changed it: {tag}");
    assert_eq!(
        events(&app, &token).await,
        pairs(&[("after_create", "RED"), ("after_update", "RED->BLUE")])
    );

    let (status, body) = app.delete(&format!("/api/lab/tag/{id}"), &token).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        events(&app, &token).await,
        pairs(&[
            ("after_create", "RED"),
            ("after_update", "RED->BLUE"),
            ("before_delete", "BLUE"),
            ("after_delete", "BLUE"),
        ])
    );
    let events = items(&app, &token, "/api/lab/event").await;
    assert!(
        events.iter().all(|e| e["target"] == id.as_str()),
        "{events:?}"
    );
}

#[tokio::test]
async fn script_writes_run_the_same_entity_hooks() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    let (status, body) = app
        .post("/api/lab/tag-ops", &token, json!({"label": "green"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["made"]["label"], "GREEN", "{body}");
    assert_eq!(body["changed"]["label"], "LIME", "{body}");
    assert_eq!(body["gone"], true, "{body}");
    assert_eq!(
        events(&app, &token).await,
        pairs(&[
            ("after_create", "GREEN"),
            ("after_update", "GREEN->LIME"),
            ("before_delete", "LIME"),
            ("after_delete", "LIME"),
        ])
    );
}

#[tokio::test]
async fn a_failing_before_create_blocks_the_create_with_its_status_and_stores_nothing() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    let (status, body) = app
        .post("/api/lab/tag", &token, json!({"label": "forbidden"}))
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(detail(&body), "forbidden label", "{body}");

    // The same from a script write.
    let (status, body) = app
        .post("/api/lab/tag-ops", &token, json!({"label": "forbidden"}))
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(detail(&body), "forbidden label", "{body}");

    assert!(items(&app, &token, "/api/lab/tag").await.is_empty());
    assert!(events(&app, &token).await.is_empty());
}

#[tokio::test]
async fn a_failing_before_delete_keeps_the_record() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    let (status, tag) = app
        .post("/api/lab/tag", &token, json!({"label": "keep"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tag}");
    let id = id_of(&tag);
    let (status, body) = app.delete(&format!("/api/lab/tag/{id}"), &token).await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    assert_eq!(detail(&body), "this tag is kept", "{body}");
    let (status, body) = app.get(&format!("/api/lab/tag/{id}"), &token).await;
    assert_eq!(status, StatusCode::OK, "still there: {body}");
    assert_eq!(
        events(&app, &token).await,
        pairs(&[("after_create", "KEEP")])
    );
}

#[tokio::test]
async fn nested_hooks_stop_at_depth_8_with_a_500_and_keep_nothing() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    let started = Instant::now();
    let (status, body) = app
        .post("/api/lab/chain", &token, json!({"depth": 0}))
        .await;
    assert_fault(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "lab");
    assert!(started.elapsed() < Duration::from_secs(5));
    let h = health(&app, "lab").await;
    assert!(
        detail(&body).contains("hook recursion limit")
            || h["last_error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("hook recursion limit")),
        "names the hook recursion limit: {body} / {h}"
    );
    let (status, list) = app.get("/api/lab/chain", &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 0, "no link kept: {list}");
}

// ---------------------------------------------------------------- lifecycle

const SPROUT: &str = r##"
name = "sprout"
version = "1.0.0"

[permissions]
SPROUT_USE = "Use sprout"

[grants]
ADMIN = ["SPROUT_USE"]

[settings]
explode = { type = "bool", default = false }

[entities.seed]
permissions = { list = "SPROUT_USE", read = "SPROUT_USE", create = "SPROUT_USE" }

[entities.seed.fields]
label = { type = "text", required = true }
"##;

const SPROUT_LIFECYCLE: &str = r##"
fn on_install(ctx) {
    ctx.db.insert("seed", #{ label: "seeded for " + ctx.tenant.slug });
    if ctx.settings.explode {
        throw "on_install exploded";
    }
}
"##;

const SPROUT_PLUGIN: PluginDef<'static> = ("sprout", SPROUT, &[("plugin.rhai", SPROUT_LIFECYCLE)]);

async fn sprout_status(app: &TestApp, token: &str) -> Value {
    let (status, body) = app.get("/api/plugins/sprout", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["status"].clone()
}

#[tokio::test]
async fn on_install_runs_in_the_install_transaction_and_its_rows_are_visible() {
    let app = app_with(&[SPROUT_PLUGIN], |_| {}).await;
    let (_, admin) = app.tenant("acme").await;
    let (status, body) = post_empty(&app, &admin, "/api/plugins/sprout/install").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "INSTALLED", "{body}");
    assert_eq!(
        field_of_all(&app, &admin, "/api/sprout/seed", "label").await,
        vec!["seeded for acme"]
    );
}

#[tokio::test]
async fn a_failing_on_install_answers_500_leaves_the_plugin_failed_and_keeps_none_of_its_writes() {
    let app = app_with(&[SPROUT_PLUGIN], |_| {}).await;
    let (_, admin) = app.tenant("acme").await;
    let (status, body) = app
        .put(
            "/api/plugins/sprout/settings",
            &admin,
            json!({"explode": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = post_empty(&app, &admin, "/api/plugins/sprout/install").await;
    assert_problem(status, &body, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["plugin"], "sprout", "{body}");
    assert_eq!(sprout_status(&app, &admin).await, "FAILED");
    let (status, body) = app.get("/api/sprout/seed", &admin).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);

    // With the setting fixed, a new attempt installs; only its own seed row
    // exists, so the failed attempt's row was rolled back.
    let (status, body) = app
        .put(
            "/api/plugins/sprout/settings",
            &admin,
            json!({"explode": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post_empty(&app, &admin, "/api/plugins/sprout/install").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(sprout_status(&app, &admin).await, "INSTALLED");
    assert_eq!(
        field_of_all(&app, &admin, "/api/sprout/seed", "label").await,
        vec!["seeded for acme"]
    );
}

// ---------------------------------------------------------------- cross-plugin, isolation

const NOTES_OF_LAB: &str = r##"
fn handle(ctx, req) {
    let out = [];
    for r in ctx.db.find("lab.note") {
        out.push(r.title);
    }
    out
}

fn add(ctx, req) {
    ctx.db.insert("lab.note", #{ title: req.body.title })
}
"##;

fn reader_manifest(name: &str, requires: &str) -> String {
    let upper = name.to_uppercase();
    format!(
        r##"
name = "{name}"
version = "1.0.0"
default_install = true
requires = [{requires}]

[permissions]
{upper}_USE = "Read other plugins"

[grants]
ADMIN = ["{upper}_USE"]

[[routes]]
method = "GET"
path = "/lab-notes"
permission = "{upper}_USE"
script = "notes.rhai"

[[routes]]
method = "POST"
path = "/lab-notes"
permission = "{upper}_USE"
script = "notes.rhai"
function = "add"
"##
    )
}

#[tokio::test]
async fn another_plugins_entity_is_reachable_when_required_and_installed() {
    let reader = reader_manifest("reader", "\"lab\"");
    let app = app_with(
        &[
            LAB_PLUGIN,
            ("reader", &reader, &[("notes.rhai", NOTES_OF_LAB)]),
        ],
        |_| {},
    )
    .await;
    let (_, token) = app.tenant("acme").await;
    let (status, body) = app
        .post("/api/lab/note", &token, json!({"title": "from lab"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, body) = app.get("/api/reader/lab-notes", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!(["from lab"]));

    let (status, body) = app
        .post(
            "/api/reader/lab-notes",
            &token,
            json!({"title": "from reader"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["title"], "from reader", "{body}");
    assert_eq!(
        note_titles(&app, &token).await,
        vec!["from lab", "from reader"]
    );
}

#[tokio::test]
async fn another_plugins_entity_without_requires_is_a_runtime_error() {
    let nosy = reader_manifest("nosy", "");
    let app = app_with(
        &[LAB_PLUGIN, ("nosy", &nosy, &[("notes.rhai", NOTES_OF_LAB)])],
        |_| {},
    )
    .await;
    let (_, token) = app.tenant("acme").await;
    let (status, body) = app
        .post("/api/lab/note", &token, json!({"title": "private"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, body) = app.get("/api/nosy/lab-notes", &token).await;
    assert_fault(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "nosy");
    assert!(!body.to_string().contains("private"), "{body}");
    let (status, body) = app
        .post("/api/nosy/lab-notes", &token, json!({"title": "smuggled"}))
        .await;
    assert_fault(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "nosy");
    assert_eq!(note_titles(&app, &token).await, vec!["private"]);
}

#[tokio::test]
async fn a_script_never_sees_or_changes_another_tenants_rows() {
    let app = lab_app().await;
    let (_, a) = app.tenant("alpha").await;
    let (_, b) = app.tenant("bravo").await;
    let (status, theirs) = app
        .post("/api/lab/note", &b, json!({"title": "theirs"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let (status, mine) = app
        .post("/api/lab/note", &a, json!({"title": "mine"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    let theirs_id = id_of(&theirs);

    let (status, body) = app.get(&format!("/api/lab/peek/{theirs_id}"), &a).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"all": ["mine"], "got": null, "count": 1, "first": null})
    );

    let (status, body) = post_empty(&app, &a, &format!("/api/lab/touch/{theirs_id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"updated": null, "deleted": false}));

    let (status, body) = app.get(&format!("/api/lab/note/{theirs_id}"), &b).await;
    assert_eq!(status, StatusCode::OK, "B's note is still there: {body}");
    assert_eq!(body["n"], Value::Null, "and unchanged: {body}");
}

// ---------------------------------------------------------------- sandbox escapes

/// A one-route plugin whose `ping.rhai` is `script` (plus extra files).
fn ping_plugin(name: &str) -> String {
    let upper = name.to_uppercase();
    format!(
        r##"
name = "{name}"
version = "1.0.0"
default_install = true

[permissions]
{upper}_USE = "Ping"

[grants]
ADMIN = ["{upper}_USE"]

[[routes]]
method = "GET"
path = "/ping"
permission = "{upper}_USE"
script = "ping.rhai"
"##
    )
}

/// An app with lab and `name` (whose ping.rhai is `script`), which must be
/// refused at load while lab serves.
async fn assert_refused_at_load(name: &str, script: &str) {
    let manifest = ping_plugin(name);
    let app = spawn_app_with(|config| {
        write_plugin(&config.manifests_dir, &config.scripts_dir, LAB_PLUGIN);
        write_plugin(
            &config.manifests_dir,
            &config.scripts_dir,
            (name, &manifest, &[("ping.rhai", script)]),
        );
    })
    .await;
    let (_, token) = app.tenant("acme").await;
    let (status, list) = app.get("/api/plugins", &token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(names.contains(&"lab"), "{list}");
    assert!(!names.contains(&name), "{name} is refused: {list}");
    let (status, body) = app.get(&format!("/api/{name}/ping"), &token).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = app.get("/api/lab/ctx", &token).await;
    assert_eq!(status, StatusCode::OK, "the good plugin serves: {body}");
}

#[tokio::test]
async fn an_import_outside_the_plugin_folder_refuses_the_plugin_at_load() {
    assert_refused_at_load(
        "escape",
        "import \"../lab/echo\" as x;\nfn handle(ctx, req) { #{ pong: true } }\n",
    )
    .await;
}

#[tokio::test]
async fn eval_is_a_compile_error_that_refuses_the_plugin() {
    assert_refused_at_load("evaler", "fn handle(ctx, req) {\n    eval(\"1\")\n}\n").await;
}

#[tokio::test]
async fn an_import_inside_the_plugin_folder_works() {
    let manifest = ping_plugin("libby");
    let app = app_with(
        &[(
            "libby",
            &manifest,
            &[
                ("lib.rhai", "fn twice(x) { x * 2 }\n"),
                (
                    "ping.rhai",
                    "import \"lib\" as lib;\nfn handle(ctx, req) { #{ answer: lib::twice(21) } }\n",
                ),
            ],
        )],
        |_| {},
    )
    .await;
    let (_, token) = app.tenant("acme").await;
    let (status, body) = app.get("/api/libby/ping", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"answer": 42}));
}

#[tokio::test]
async fn scripts_have_no_file_or_environment_functions() {
    let app = lab_app().await;
    let (_, token) = app.tenant("acme").await;
    for kind in ["file", "env"] {
        let (status, body) = app.get(&format!("/api/lab/sandbox/{kind}"), &token).await;
        assert_fault(status, &body, StatusCode::INTERNAL_SERVER_ERROR, "lab");
        let home = std::env::var("HOME").unwrap_or_default();
        if !home.is_empty() {
            assert!(!body.to_string().contains(&home), "{kind}: {body}");
        }
    }
    let (status, body) = app.get("/api/lab/sandbox/none", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

// ---------------------------------------------------------------- plinth plugin check

const CHK: &str = r##"
name = "chk"
version = "1.0.0"

[permissions]
CHK_USE = "Check"

[[routes]]
method = "GET"
path = "/hello"
permission = "CHK_USE"
script = "hello.rhai"
"##;

/// A folder with `plugin-manifests/chk.toml` and `scripts/chk/*`; runs
/// `plinth plugin check` there. Returns the outcome and the scripts folder.
fn check_chk(manifest: &str, scripts: &[(&str, &str)]) -> (Outcome, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifests = dir.path().join("plugin-manifests");
    let scripts_dir = dir.path().join("scripts");
    std::fs::create_dir_all(&manifests).expect("manifests dir");
    std::fs::create_dir_all(&scripts_dir).expect("scripts dir");
    write_plugin(&manifests, &scripts_dir, ("chk", manifest, scripts));
    let mut cmd = plinth(dir.path());
    cmd.arg("--manifests-dir")
        .arg(&manifests)
        .arg("--scripts-dir")
        .arg(&scripts_dir)
        .args(["plugin", "check"]);
    let out = run(&mut cmd, None, COMMAND_DEADLINE);
    (out, scripts_dir, dir)
}

#[test]
fn plugin_check_prints_a_syntax_error_as_file_line_col_and_exits_1() {
    let (out, scripts, _dir) = check_chk(
        CHK,
        &[
            (
                "hello.rhai",
                "fn handle(ctx, req) {\n    #{ hello: 1 }\n}\n",
            ),
            ("bad.rhai", "fn handle(ctx, req) {\n    let x = ;\n}\n"),
        ],
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    let prefix = format!("{}/chk/bad.rhai:2:", scripts.display());
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("a line starting {prefix} in\n{}", out.stdout));
    let rest = &line[prefix.len()..];
    let (col, message) = rest
        .split_once(": ")
        .unwrap_or_else(|| panic!("col: message in {line}"));
    assert!(col.parse::<u32>().is_ok_and(|c| c >= 1), "column in {line}");
    assert!(!message.trim().is_empty(), "message in {line}");

    // Fixed, it passes.
    let (out, _, _dir) = check_chk(CHK, &[("hello.rhai", "fn handle(ctx, req) { 1 }\n")]);
    assert_eq!(out.code, Some(0), "{out:?}");
}

#[test]
fn plugin_check_reports_a_route_naming_a_missing_function() {
    let manifest = format!("{CHK}function = \"nope\"\n");
    let (out, scripts, _dir) =
        check_chk(&manifest, &[("hello.rhai", "fn handle(ctx, req) { 1 }\n")]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let expected = format!(
        "routes[0].function: {}/chk/hello.rhai defines no fn nope(ctx, req)",
        scripts.display()
    );
    assert!(
        out.stdout.lines().any(|l| l.ends_with(&expected)),
        "expected a line ending\n  {expected}\nin\n{}",
        out.stdout
    );
}

// ---------------------------------------------------------------- shipped examples

async fn inventory_app() -> TestApp {
    app_with(&[("inventory", INVENTORY, &[])], |_| {}).await
}

#[tokio::test]
async fn inventory_item_skus_are_normalised_by_the_before_create_hook() {
    let app = inventory_app().await;
    let (_, token) = app.tenant("acme").await;
    let (status, item) = app
        .post(
            "/api/inventory/item",
            &token,
            json!({"name": "Bolt", "sku": " ab 12 "}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    assert_eq!(item["sku"], "AB-12", "{item}");
    let (_, stored) = app
        .get(&format!("/api/inventory/item/{}", id_of(&item)), &token)
        .await;
    assert_eq!(stored["sku"], "AB-12", "{stored}");
}

#[tokio::test]
async fn inventory_restock_adds_stock_and_records_a_movement() {
    let app = inventory_app().await;
    let (_, token) = app.tenant("acme").await;
    let (status, item) = app
        .post(
            "/api/inventory/item",
            &token,
            json!({"name": "Nut", "sku": "N-1", "quantity": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{item}");
    let id = id_of(&item);

    let (status, body) = app
        .post(
            &format!("/api/inventory/item/{id}/restock"),
            &token,
            json!({"quantity": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["quantity"], 8, "{body}");
    let (_, stored) = app.get(&format!("/api/inventory/item/{id}"), &token).await;
    assert_eq!(stored["quantity"], 8, "{stored}");

    let movements = items(&app, &token, "/api/inventory/movement").await;
    assert_eq!(movements.len(), 1, "{movements:?}");
    assert_eq!(movements[0]["delta"], 5);
    assert_eq!(movements[0]["quantity"], 8);
    assert_eq!(movements[0]["item"], id.as_str());

    // A bad body is the script's 400 and changes nothing.
    let (status, body) = app
        .post(
            &format!("/api/inventory/item/{id}/restock"),
            &token,
            json!({"quantity": 0}),
        )
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(
        items(&app, &token, "/api/inventory/movement").await.len(),
        1
    );
}

#[tokio::test]
async fn inventory_low_stock_report_uses_the_tenants_threshold_setting() {
    let app = inventory_app().await;
    let (_, token) = app.tenant("acme").await;
    for (sku, quantity) in [("A-1", 1), ("A-4", 4), ("A-7", 7)] {
        let (status, body) = app
            .post(
                "/api/inventory/item",
                &token,
                json!({"name": sku, "sku": sku, "quantity": quantity}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let skus = |report: &Value| -> Vec<String> {
        report["items"]
            .as_array()
            .unwrap_or_else(|| panic!("items in {report}"))
            .iter()
            .map(|i| i["sku"].as_str().expect("sku").to_owned())
            .collect()
    };
    let (status, report) = app.get("/api/inventory/reports/low-stock", &token).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["threshold"], 5, "{report}");
    assert_eq!(report["count"], 2, "{report}");
    assert_eq!(skus(&report), vec!["A-1", "A-4"]);

    let (status, body) = app
        .put(
            "/api/plugins/inventory/settings",
            &token,
            json!({"low_stock_threshold": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, report) = app.get("/api/inventory/reports/low-stock", &token).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["threshold"], 2, "{report}");
    assert_eq!(skus(&report), vec!["A-1"]);
}

#[tokio::test]
async fn loyalty_purchase_earns_points_by_the_setting_and_moves_the_tier() {
    let app = app_with(&[("loyalty", LOYALTY, &[])], |_| {}).await;
    let (_, token) = app.tenant("acme").await;
    let (status, body) = post_empty(&app, &token, "/api/plugins/loyalty/install").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, customer) = app
        .post(
            "/api/loyalty/customer",
            &token,
            json!({"name": "Ada", "email": "ada@acme.test"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    let id = id_of(&customer);

    let (status, body) = app
        .post(
            &format!("/api/loyalty/customer/{id}/purchase"),
            &token,
            json!({"amount": 300}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["points"], 300, "{body}");
    let (status, stored) = app
        .get(&format!("/api/loyalty/customer/{id}"), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["points"], 300, "{stored}");
    assert_eq!(stored["tier"], "silver", "{stored}");
    let ledger = items(&app, &token, "/api/loyalty/ledger").await;
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(ledger[0]["points"], 300);
}
