//! Lua plugins (`runtime = "lua"`) from outside: the same host API as Rhai
//! (ctx members, writes with hooks, failures rolling back), the sandbox
//! (no loaders, files or environment; limits ending only their request;
//! globals never shared between requests), `plinth plugin check`, and the
//! shipped helpdesk example.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::{COMMAND_DEADLINE, plinth, run};
use crate::helpers::*;

const LUALAB: &str = r#"
name = "lualab"
version = "2.0.0"
description = "Lua host API lab"
runtime = "lua"
default_install = true

[permissions]
LUALAB_USE = "Use the lab"

[grants]
ADMIN = ["LUALAB_USE"]

[settings]
greeting = { type = "text", default = "hej" }

[entities.note]
permissions = { list = "LUALAB_USE", read = "LUALAB_USE", create = "LUALAB_USE", update = "LUALAB_USE", delete = "LUALAB_USE" }

[entities.note.fields]
title = { type = "text", required = true, max_length = 20 }
n     = { type = "integer" }

[[routes]]
method = "POST"
path = "/echo"
permission = "LUALAB_USE"
script = "lab.lua"
function = "echo"

[[routes]]
method = "GET"
path = "/ctx"
permission = "LUALAB_USE"
script = "lab.lua"
function = "show_ctx"

[[routes]]
method = "POST"
path = "/run/{kind}"
permission = "LUALAB_USE"
script = "lab.lua"
function = "run"

[[routes]]
method = "GET"
path = "/global"
permission = "LUALAB_USE"
script = "lab.lua"
function = "global"

[[routes]]
method = "GET"
path = "/spin"
permission = "LUALAB_USE"
script = "lab.lua"
function = "spin"

[[routes]]
method = "GET"
path = "/backtrack"
permission = "LUALAB_USE"
script = "lab.lua"
function = "backtrack"

[[routes]]
method = "GET"
path = "/patterns"
permission = "LUALAB_USE"
script = "lab.lua"
function = "patterns"
"#;

const LAB_LUA: &str = r#"
function echo(ctx, req)
    local n = req.body.n
    return { n = n, n_type = math.type(n), f_type = math.type(req.body.f),
             list = req.body.list, empty = {}, missing = req.body.missing,
             params = req.params, query = req.query }
end

function show_ctx(ctx, req)
    return { user = ctx.user, tenant = ctx.tenant, plugin = ctx.plugin,
             settings = ctx.settings, can = ctx.can("LUALAB_USE"),
             now = ctx.now(), uuid = ctx.uuid() }
end

local function deep(n) return 1 + deep(n + 1) end

function run(ctx, req)
    local kind = req.params.kind
    ctx.db.insert("note", { title = kind })
    if kind == "fail" then ctx.fail(422, "the lab says no") end
    if kind == "catch-fail" then
        local ok = pcall(function() ctx.fail(418, "uncatchable") end)
        return { caught = not ok }
    end
    if kind == "throw" then error("thrown on purpose") end
    if kind == "nil-index" then local t = nil; return t.x end
    if kind == "invalid" then ctx.db.insert("note", { title = string.rep("x", 50) }) end
    if kind == "catch-invalid" then
        local ok, err = pcall(ctx.db.insert, "note", { n = 1 })
        return { ok = ok, status = err.status, field = err.errors[1].field }
    end
    if kind == "loop" then while true do end end
    if kind == "catch-loop" then
        while true do pcall(function() while true do end end) end
    end
    if kind == "recurse" then deep(0) end
    if kind == "rep" then local s = string.rep("x", 1 << 30); return s end
    if kind == "grow" then local t = {}; while true do table.insert(t, 1) end end
    if kind == "memory" then local s = "x"; while true do s = s .. s end end
    if kind == "concat" then local s = "x"; for _ = 1, 17 do s = s .. s end; return { s = s } end
    if kind == "format" then local a = string.rep("x", 40000); return string.format("%s%s", a, a) end
    if kind == "store" then
        local s = "x"; for _ = 1, 17 do s = s .. s end
        local ok = pcall(ctx.db.insert, "note", { title = s })
        return { caught = ok }
    end
    if kind == "table" then local t = {}; for i = 1, 6000 do t[i] = i end; return t end
    if kind == "backtrack" then return { m = ("@"):rep(20000):match("^(.-)@(.-)%.(.-)$") } end
    if kind == "backtrack-caught" then
        local ok = pcall(string.find, ("a"):rep(40), ("a?"):rep(40) .. ("a"):rep(40))
        return { caught = not ok }
    end
    if kind == "gsub-grow" then return { s = (("x"):rep(1000)):gsub("x", ("y"):rep(100)) } end
    if kind == "escape" then
        return { io = io == nil, os = os == nil, load = load == nil, require = require == nil,
                 dofile = dofile == nil, debug = debug == nil, dump = string.dump == nil,
                 gc = not pcall(setmetatable, {}, { __gc = function() end }),
                 mt = getmetatable(setmetatable({}, { __index = { x = 1 } })) ~= nil }
    end
    if kind == "xpcall-loop" then
        xpcall(function() while true do end end, function() while true do end end)
    end
    if kind == "xpcall-ok" then
        local ok, why = xpcall(function() error("inner") end, function(e) return "handled: " .. e end)
        return { ok = ok, why = why }
    end
    if kind == "gsub-refused" then string.gsub("a", "a", function() ctx.db.insert("note", { n = 1 }) end) end
    if kind == "readonly" then string.upper = nil end
    return { done = kind }
end

function global(ctx, req)
    local before = counter
    counter = (counter or 0) + 1
    return { before = before, after = counter }
end

function spin(ctx, req)
    local i = 0
    while true do i = i + 1 end
end

function backtrack(ctx, req)
    return { m = string.match(("a"):rep(60), ("a?"):rep(60) .. ("a"):rep(60)) }
end

function patterns(ctx, req)
    local words = {}
    for w in ("one two  three"):gmatch("%a+") do words[#words + 1] = w end
    local key, value = ("name = plinth"):match("^(%w+)%s*=%s*(%w+)$")
    local s, e, cap = string.find("hello world", "(o w)")
    local upper, n = ("a-b-c"):gsub("%a", string.upper)
    local mapped = ("$x and $y"):gsub("%$(%w+)", { x = "1", y = 2 })
    local ok, err = pcall(function() local r = string.find("abc", "%"); return r end)
    return { words = words, key = key, value = value, s = s, e = e, cap = cap,
             upper = upper, n = n, mapped = mapped, plain = ("a.b"):find(".", 1, true),
             pos = { ("abc"):match("()b()") }, ok = ok, err = err }
end
"#;

const NOTE_LUA: &str = r#"
function before_create(ctx, record)
    if record.title == "hooked" then record.n = 99 end
    return record
end
"#;

fn write_lab(config: &plinth::config::Config) {
    std::fs::write(config.manifests_dir.join("lualab.toml"), LUALAB).expect("manifest");
    let dir = config.scripts_dir.join("lualab");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("lab.lua"), LAB_LUA).expect("lab.lua");
    std::fs::write(dir.join("note.lua"), NOTE_LUA).expect("note.lua");
}

async fn lab(adjust: impl FnOnce(&mut plinth::config::Config)) -> (TestApp, String) {
    let app = spawn_app_with(|config| {
        write_lab(config);
        adjust(config);
    })
    .await;
    let (_, token) = app.tenant("acme").await;
    (app, token)
}

async fn titles(app: &TestApp, token: &str) -> Vec<String> {
    let (status, body) = app.get("/api/lualab/note", token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| n["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn health(app: &TestApp) -> Value {
    let (status, body) = app.get("/api/plugins/lualab/health", &app.root_token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// `kind` is a 500 limit fault of lualab that keeps none of its writes.
async fn assert_limit(app: &TestApp, token: &str, kind: &str, message: &str) -> Value {
    let (status, body) = app
        .post(&format!("/api/lualab/run/{kind}"), token, json!({}))
        .await;
    assert_problem(status, &body, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["plugin"], "lualab", "{body}");
    assert!(
        !titles(app, token).await.contains(&kind.to_owned()),
        "{kind} rolled back"
    );
    let h = health(app).await;
    assert_eq!(h["last_error"]["kind"], "limit", "{kind}: {h}");
    assert!(
        h["last_error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(message),
        "{kind} stopped by the {message} limit: {h}"
    );
    h["last_error"].clone()
}

/// The line of `LAB_LUA` that contains `text`.
fn lab_line(text: &str) -> u64 {
    let at = LAB_LUA
        .lines()
        .position(|l| l.contains(text))
        .expect("line in lab.lua");
    u64::try_from(at + 1).expect("small")
}

#[tokio::test]
async fn json_crosses_into_lua_and_back_as_documented() {
    let (app, token) = lab(|_| {}).await;
    let (status, body) = app
        .post(
            "/api/lualab/echo?x=1",
            &token,
            json!({"n": 3, "f": 2.5, "list": [1, "a", true], "missing": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["n"], 3, "{body}");
    assert!(body["n"].is_i64(), "integers stay integers: {body}");
    assert_eq!(body["n_type"], "integer");
    assert_eq!(body["f_type"], "float");
    assert_eq!(body["list"], json!([1, "a", true]));
    assert_eq!(body["empty"], json!([]), "an empty table is []");
    assert!(
        body.get("missing").is_none(),
        "nil fields are left out: {body}"
    );
    assert_eq!(body["query"], json!({"x": "1"}));
}

#[tokio::test]
async fn ctx_members_are_the_same_as_in_rhai() {
    let (app, token) = lab(|_| {}).await;
    let (status, body) = app.get("/api/lualab/ctx", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["email"], "admin@acme.test", "{body}");
    assert_eq!(body["tenant"]["slug"], "acme");
    assert_eq!(
        body["plugin"],
        json!({"name": "lualab", "version": "2.0.0"})
    );
    assert_eq!(body["settings"], json!({"greeting": "hej"}));
    assert_eq!(body["can"], true);
    assert!(
        body["now"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{body}"
    );
    let id = body["uuid"].as_str().expect("uuid");
    assert_eq!(
        uuid::Uuid::parse_str(id).expect("uuid").get_version_num(),
        7
    );
}

#[tokio::test]
async fn writes_run_hooks_and_every_failure_kind_rolls_back() {
    let (app, token) = lab(|_| {}).await;
    let (status, body) = app.post("/api/lualab/run/hooked", &token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = app.get("/api/lualab/note", &token).await;
    assert_eq!(
        list["items"][0]["n"], 99,
        "the Lua before_create ran: {list}"
    );

    let (status, body) = app.post("/api/lualab/run/fail", &token, json!({})).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"], "the lab says no");

    let (status, body) = app
        .post("/api/lualab/run/catch-fail", &token, json!({}))
        .await;
    assert_problem(status, &body, StatusCode::IM_A_TEAPOT);

    let (status, body) = app.post("/api/lualab/run/invalid", &token, json!({})).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["field"], "title", "{body}");

    let (status, body) = app.post("/api/lualab/run/throw", &token, json!({})).await;
    assert_problem(status, &body, StatusCode::INTERNAL_SERVER_ERROR);
    let h = health(&app).await;
    assert_eq!(h["last_error"]["kind"], "runtime", "{h}");
    assert_eq!(h["last_error"]["line"], 25, "the error's line: {h}");
    assert!(
        h["last_error"]["file"]
            .as_str()
            .unwrap_or_default()
            .ends_with("lab.lua")
    );
    assert_eq!(
        h["last_error"]["column"],
        Value::Null,
        "Lua gives no column"
    );

    let (status, body) = app
        .post("/api/lualab/run/nil-index", &token, json!({}))
        .await;
    assert_problem(status, &body, StatusCode::INTERNAL_SERVER_ERROR);

    assert_eq!(
        titles(&app, &token).await,
        vec!["hooked"],
        "only the clean write stays"
    );

    let (status, body) = app
        .post("/api/lualab/run/catch-invalid", &token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"ok": false, "status": 400, "field": "title"}));
    assert!(
        titles(&app, &token)
            .await
            .contains(&"catch-invalid".to_owned())
    );
}

#[tokio::test]
async fn runaway_scripts_end_at_their_limit_and_only_their_request() {
    let (app, token) = lab(|c| {
        c.script_limits.max_operations = 200_000;
        c.script_limits.max_call_depth = 32;
        c.script_limits.max_string = 64 << 10;
        c.script_limits.max_collection = 5_000;
        c.script_limits.max_memory = 8 << 20;
    })
    .await;
    assert_limit(&app, &token, "loop", "operations").await;
    assert_limit(&app, &token, "catch-loop", "operations").await;
    assert_limit(&app, &token, "recurse", "call depth").await;
    let rep = assert_limit(&app, &token, "rep", "string").await;
    assert_eq!(rep["line"], lab_line("string.rep(\"x\", 1 << 30)"), "{rep}");
    assert_limit(&app, &token, "grow", "table size").await;
    // Growth Lua does without asking (`..`, `t[i] = v`) meets the limits
    // where the value leaves the script, uncatchably.
    assert_limit(&app, &token, "concat", "string length").await;
    assert_limit(&app, &token, "format", "string length").await;
    let store = assert_limit(&app, &token, "store", "string length").await;
    assert_eq!(
        store["line"],
        lab_line("pcall(ctx.db.insert, \"note\", { title = s })"),
        "{store}"
    );
    assert_limit(&app, &token, "table", "table size").await;
    assert_limit(&app, &token, "memory", "memory").await;
    // Patterns that backtrack without end count their steps as
    // instructions (Lua's C matcher would run on, past every limit).
    let m = assert_limit(&app, &token, "backtrack", "operations").await;
    assert_eq!(m["line"], lab_line("kind == \"backtrack\""), "{m}");
    assert_limit(&app, &token, "backtrack-caught", "operations").await;
    assert_limit(&app, &token, "gsub-grow", "string length").await;
    // A script's xpcall handler runs counted too (Lua runs it with the hook
    // off, inside the raise).
    assert_limit(&app, &token, "xpcall-loop", "operations").await;
    let (status, body) = app
        .post("/api/lualab/run/xpcall-ok", &token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], false);
    let why = body["why"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("handled: ") && why.ends_with("inner"),
        "{body}"
    );
    // A refused write inside a gsub replacement is still the request's 400.
    let (status, body) = app
        .post("/api/lualab/run/gsub-refused", &token, json!({}))
        .await;
    assert_field_error(status, &body, "title");
    let (status, body) = app.post("/api/lualab/run/ok", &token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "the plugin carries on: {body}");
    let (status, body) = app.get("/api/inventory/item", &token).await;
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
}

#[tokio::test]
async fn the_time_limit_is_a_503() {
    let (app, token) = lab(|c| {
        c.script_limits.max_operations = u64::MAX / 2;
        c.script_limits.timeout = Duration::from_millis(300);
    })
    .await;
    let (status, body) = app.get("/api/lualab/spin", &token).await;
    assert_problem(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health(&app).await["last_error"]["kind"], "timeout");
    // An exponential pattern is cut off by the clock too.
    let started = std::time::Instant::now();
    let (status, body) = app.get("/api/lualab/backtrack", &token).await;
    assert_problem(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(health(&app).await["last_error"]["kind"], "timeout");
}

#[tokio::test]
async fn string_patterns_work_as_in_lua() {
    let (app, token) = lab(|_| {}).await;
    let (status, body) = app.get("/api/lualab/patterns", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["words"], json!(["one", "two", "three"]));
    assert_eq!(
        (&body["key"], &body["value"]),
        (&json!("name"), &json!("plinth"))
    );
    assert_eq!(
        (&body["s"], &body["e"], &body["cap"]),
        (&json!(5), &json!(7), &json!("o w"))
    );
    assert_eq!((&body["upper"], &body["n"]), (&json!("A-B-C"), &json!(3)));
    assert_eq!(body["mapped"], "1 and 2");
    assert_eq!(body["plain"], 2);
    assert_eq!(body["pos"], json!([2, 3]));
    assert_eq!(body["ok"], false);
    let err = body["err"].as_str().unwrap_or_default();
    assert!(
        err.starts_with("lab.lua:") && err.ends_with("malformed pattern (ends with '%')"),
        "a malformed pattern is a located, catchable error: {err}"
    );
}

#[tokio::test]
async fn the_sandbox_has_no_escape_and_shares_no_globals() {
    let (app, token) = lab(|_| {}).await;
    let (status, body) = app.post("/api/lualab/run/escape", &token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let checks = body.as_object().expect("object");
    assert_eq!(checks.len(), 9, "every escape checked: {body}");
    for (k, v) in checks {
        assert_eq!(*v, true, "{k} is not reachable: {body}");
    }
    let (status, body) = app
        .post("/api/lualab/run/readonly", &token, json!({}))
        .await;
    assert_problem(status, &body, StatusCode::INTERNAL_SERVER_ERROR);

    let (_, beta) = app.tenant("beta").await;
    for token in [&token, &beta, &token] {
        let (status, body) = app.get("/api/lualab/global", token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({"after": 1}),
            "a global starts fresh each request"
        );
    }
}

#[tokio::test]
async fn a_lua_script_never_sees_another_tenants_rows() {
    let (app, acme) = lab(|_| {}).await;
    let (_, beta) = app.tenant("beta").await;
    let (status, _) = app
        .post("/api/lualab/run/acme-only", &acme, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(titles(&app, &acme).await, vec!["acme-only"]);
    assert!(
        titles(&app, &beta).await.is_empty(),
        "beta sees none of acme's rows"
    );
}

#[test]
fn plugin_check_locates_a_lua_syntax_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifests = dir.path().join("plugin-manifests");
    let scripts = dir.path().join("scripts");
    std::fs::create_dir_all(scripts.join("lualab")).expect("dirs");
    std::fs::create_dir_all(&manifests).expect("dirs");
    std::fs::write(manifests.join("lualab.toml"), LUALAB).expect("manifest");
    std::fs::write(
        scripts.join("lualab/lab.lua"),
        "function echo(ctx, req)\n  local x = \nend\n",
    )
    .expect("script");
    let mut cmd = plinth(dir.path());
    cmd.arg("--manifests-dir")
        .arg(&manifests)
        .arg("--scripts-dir")
        .arg(&scripts)
        .args(["plugin", "check"]);
    let out = run(&mut cmd, None, COMMAND_DEADLINE);
    assert_eq!(out.code, Some(1), "{out:?}");
    let prefix = format!(
        "{}:3:0: ",
        Path::new(&scripts).join("lualab/lab.lua").display()
    );
    assert!(
        out.stdout.lines().any(|l| l.starts_with(&prefix)),
        "a line starting {prefix} in\n{}",
        out.stdout
    );
}

#[tokio::test]
async fn the_helpdesk_example_runs_in_lua() {
    let app = spawn_app_with(|config| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::copy(
            repo.join("plugin-manifests/helpdesk.toml"),
            config.manifests_dir.join("helpdesk.toml"),
        )
        .expect("manifest");
    })
    .await;
    let (_, token) = app.tenant("acme").await;
    let (status, ticket) = app
        .post(
            "/api/helpdesk/ticket",
            &token,
            json!({"title": "  printer   on fire "}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["title"], "printer on fire", "the hook tidies titles");
    assert_eq!(ticket["priority"], 3, "the default_priority setting");
    let id = ticket["id"].as_str().expect("id");

    let (status, closed) = app
        .post(
            &format!("/api/helpdesk/ticket/{id}/close"),
            &token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "closed");
    assert!(closed["closed_at"].is_string(), "{closed}");
    let (status, body) = app
        .post(
            &format!("/api/helpdesk/ticket/{id}/close"),
            &token,
            json!({}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    let (status, body) = app
        .patch(
            &format!("/api/helpdesk/ticket/{id}"),
            &token,
            json!({"status": "open"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);

    let (status, stats) = app.get("/api/helpdesk/stats", &token).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["open"], 0);
    assert_eq!(stats["closed"], 1);
}
