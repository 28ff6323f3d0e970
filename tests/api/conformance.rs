//! Conformance: one table of cases run against a Rhai plugin (`conf_rhai`)
//! and its Lua twin (`conf_lua`), so that the two runtimes cannot drift
//! (SCRIPTING.md: "The same conformance tests run against a Rhai and a Lua
//! version of one plugin").
//!
//! The twins have the same manifest except `name`, `runtime` and the script
//! file extension named by their routes, and scripts that do the same thing
//! in each language. Every case is one HTTP request (after optional setup
//! requests) with an expected status, an expectation on the body, an
//! optional expected script fault (checked in the plugin's health), and
//! optional post-conditions (rows left after the request, to prove a
//! rollback). The driver runs each case against both plugins, checks each
//! against the expectation, and checks that both gave the same outcome
//! (status, body with ids/timestamps/plugin names masked, health counters,
//! fault kind/file/line, post-conditions). Every case runs in a fresh
//! tenant, so the cases do not see each other's rows.
//!
//! Where the two languages legitimately differ (SCRIPTING.md fixes how Lua
//! values become JSON: `nil` fields are left out, an empty table is `[]`),
//! a case says so (`diverges`) and states the expected answer per language;
//! every other part of its outcome is still compared.
//!
//! Cases marked `CONTRACT:` assert what SCRIPTING.md / API.md say where a
//! runtime was found (or is suspected) to deviate; they are kept strict on
//! purpose.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use plinth::runtime::ScriptLimits;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::helpers::*;

// ---------------------------------------------------------------- limits

/// Sandbox limits of the `Limits` profile, low so that runaways end fast.
const MAX_OPERATIONS: u64 = 200_000;
const MAX_CALL_DEPTH: usize = 32;
const MAX_STRING: usize = 64 << 10;
const MAX_ITEMS: usize = 5_000;
const MAX_ROWS: usize = 5;
const MAX_MEMORY: usize = 8 << 20;
/// The wall-clock limit of the `Clock` profile.
const CLOCK_LIMIT: Duration = Duration::from_millis(300);

/// One server configuration; the cases of a profile share one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// Low operation, depth, size, row and memory limits; a generous clock.
    Limits,
    /// No practical operations limit, a 300 ms clock: the time limit.
    Clock,
    /// The `Limits` profile with the scripts in a deep folder, as in a real
    /// deployment (long script paths).
    LongPath,
}

impl Profile {
    fn tag(self) -> &'static str {
        match self {
            Profile::Limits => "lim",
            Profile::Clock => "clk",
            Profile::LongPath => "deep",
        }
    }

    fn apply(self, l: &mut ScriptLimits) {
        l.max_call_depth = MAX_CALL_DEPTH;
        l.max_string = MAX_STRING;
        l.max_collection = MAX_ITEMS;
        l.max_rows = MAX_ROWS;
        l.max_memory = MAX_MEMORY;
        match self {
            Profile::Limits | Profile::LongPath => {
                l.max_operations = MAX_OPERATIONS;
                l.timeout = Duration::from_secs(10);
            }
            Profile::Clock => {
                l.max_operations = u64::MAX / 2;
                l.timeout = CLOCK_LIMIT;
            }
        }
    }
}

// ---------------------------------------------------------------- the twins

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Rhai,
    Lua,
}

const LANGS: [Lang; 2] = [Lang::Rhai, Lang::Lua];

impl Lang {
    fn plugin(self) -> &'static str {
        match self {
            Lang::Rhai => "conf_rhai",
            Lang::Lua => "conf_lua",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Lang::Rhai => "CONF_RHAI",
            Lang::Lua => "CONF_LUA",
        }
    }

    fn twin(self) -> Lang {
        match self {
            Lang::Rhai => Lang::Lua,
            Lang::Lua => Lang::Rhai,
        }
    }

    fn ext(self) -> &'static str {
        match self {
            Lang::Rhai => "rhai",
            Lang::Lua => "lua",
        }
    }

    fn runtime_line(self) -> &'static str {
        match self {
            // Rhai is the default runtime: the Rhai twin leaves it out.
            Lang::Rhai => "",
            Lang::Lua => "runtime = \"lua\"",
        }
    }

    fn scripts(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Lang::Rhai => RHAI_SCRIPTS,
            Lang::Lua => LUA_SCRIPTS,
        }
    }
}

/// The twins' manifest; `@NAME@`, `@RUNTIME@` and `@P@` (the permission
/// prefix) are filled in, the routes are appended from [`ROUTES`].
const TWIN_MANIFEST: &str = r#"
name = "@NAME@"
version = "1.0.0"
@RUNTIME@
description = "Conformance twin"
default_install = true
requires = ["confbase_r", "confbase_l"]

[permissions]
@P@_USE    = "Use the twin"
@P@_SECRET = "See the twin's secrets"
@P@_NEVER  = "Granted to nobody"

[grants]
ADMIN  = ["@P@_USE", "@P@_SECRET"]
VIEWER = ["@P@_USE"]

[settings]
greeting = { type = "text", default = "hello" }
limit    = { type = "integer", default = 3, min = 0 }
ratio    = { type = "real", default = 0.5 }
enabled  = { type = "bool", default = true }
explode  = { type = "bool", default = false }

[entities.note]
permissions = { list = "@P@_USE", read = "@P@_USE", create = "@P@_USE", update = "@P@_USE", delete = "@P@_USE" }

[entities.note.fields]
title  = { type = "text", required = true, max_length = 40 }
code   = { type = "text", unique = true }
label  = { type = "text" }
n      = { type = "integer" }
r      = { type = "real" }
flag   = { type = "bool" }
data   = { type = "json" }
kind   = { type = "enum", values = ["a", "b"], default = "a" }
parent = { type = "ref", entity = "note" }

# Every hook (tag.rhai / tag.lua).
[entities.tag]
permissions = { list = "@P@_USE", read = "@P@_USE", create = "@P@_USE", update = "@P@_USE", delete = "@P@_USE" }

[entities.tag.fields]
label = { type = "text", required = true }
note  = { type = "text" }
data  = { type = "json" }

# Written by the tag hooks only.
[entities.event]
permissions = { list = "@P@_USE", read = "@P@_USE" }

[entities.event.fields]
kind   = { type = "text", required = true }
target = { type = "uuid" }
info   = { type = "text" }

# Each link's after_create makes the next: endless nesting of hooks.
[entities.chain]
permissions = { list = "@P@_USE", read = "@P@_USE", create = "@P@_USE" }

[entities.chain.fields]
depth = { type = "integer", required = true }

# before_create never returns (the time limit inside a hook).
[entities.slow]
permissions = { list = "@P@_USE", read = "@P@_USE" }

[entities.slow.fields]
label = { type = "text" }

# Written by on_install / on_uninstall.
[entities.seed]
permissions = { list = "@P@_USE", read = "@P@_USE" }

[entities.seed.fields]
label = { type = "text", required = true }
who   = { type = "text" }
"#;

/// (method, path, script stem, function, permission suffix) of every route
/// of both twins.
const ROUTES: &[(&str, &str, &str, &str, &str)] = &[
    ("GET", "/ping", "ping", "handle", "USE"),
    ("GET", "/echo/{a}/{b}", "req", "handle", "USE"),
    ("POST", "/echo/{a}/{b}", "req", "handle", "USE"),
    ("POST", "/types", "req", "types", "USE"),
    ("POST", "/roundtrip", "req", "roundtrip", "USE"),
    ("POST", "/nulls", "req", "nulls", "USE"),
    ("GET", "/made", "req", "made", "USE"),
    ("GET", "/made-empty", "req", "made_empty", "USE"),
    ("GET", "/ctx", "ctx", "handle", "USE"),
    ("POST", "/log", "ctx", "logging", "USE"),
    ("POST", "/ctx-readonly", "ctx", "readonly", "USE"),
    (
        "POST",
        "/ctx-readonly-caught",
        "ctx",
        "readonly_caught",
        "USE",
    ),
    ("GET", "/secret", "perm", "secret", "USE"),
    ("GET", "/admin-only", "perm", "admin_only", "SECRET"),
    ("POST", "/require-never", "perm", "require_never", "USE"),
    ("POST", "/require-caught", "perm", "require_caught", "USE"),
    ("GET", "/return/{kind}", "ret", "handle", "USE"),
    ("POST", "/fail/{kind}", "fail", "handle", "USE"),
    ("POST", "/fault/{kind}", "fault", "handle", "USE"),
    ("POST", "/db", "db", "handle", "USE"),
    ("POST", "/db-args", "db", "args", "USE"),
    ("GET", "/db-read", "db", "reads", "USE"),
    ("GET", "/db-write", "db", "write_in_get", "USE"),
    ("GET", "/db-write-caught", "db", "write_caught", "USE"),
    ("POST", "/db-null", "db", "set_null", "USE"),
    ("POST", "/rows/{n}", "rows", "handle", "USE"),
    ("POST", "/rows-limit/{n}", "rows", "explicit", "USE"),
    ("POST", "/tag-ops", "hooks", "tag_ops", "USE"),
    ("POST", "/tag-veto", "hooks", "tag_veto", "USE"),
    (
        "POST",
        "/tag-veto-caught",
        "hooks",
        "tag_veto_caught",
        "USE",
    ),
    ("POST", "/base/{which}", "hooks", "base", "USE"),
    ("POST", "/wild/{kind}", "wild", "handle", "USE"),
    ("POST", "/escape/{kind}", "escape", "handle", "USE"),
    ("POST", "/state", "state", "plant", "USE"),
    ("GET", "/state", "state", "read_state", "USE"),
    ("POST", "/peek/{id}", "peek", "handle", "USE"),
];

fn twin_manifest(lang: Lang) -> String {
    let mut text = TWIN_MANIFEST
        .replace("@NAME@", lang.plugin())
        .replace("@RUNTIME@", lang.runtime_line())
        .replace("@P@", lang.prefix());
    for (method, path, stem, function, permission) in ROUTES {
        text.push_str(&format!(
            "\n[[routes]]\nmethod = \"{method}\"\npath = \"{path}\"\npermission = \"{}_{permission}\"\nscript = \"{stem}.{}\"\nfunction = \"{function}\"\n",
            lang.prefix(),
            lang.ext()
        ));
    }
    text
}

/// A plugin the twins require, with one entity whose `before_create` hook
/// stamps the record with the hook's own `ctx.plugin` and `ctx.user`: the
/// twins' writes into it nest a hook of another plugin (one base per
/// language, so Rhai→Lua, Lua→Rhai, Rhai→Rhai and Lua→Lua all happen).
const BASE_MANIFEST: &str = r#"
name = "@NAME@"
version = "1.0.0"
@RUNTIME@
default_install = true

[permissions]
@P@_USE = "Use the base"

[grants]
ADMIN = ["@P@_USE"]

[entities.shared]
permissions = { list = "@P@_USE", read = "@P@_USE", create = "@P@_USE" }

[entities.shared.fields]
label = { type = "text", required = true }
stamp = { type = "text" }
who   = { type = "text" }
"#;

const SHARED_RHAI: &str = r#"
fn before_create(ctx, record) {
    if record.label.starts_with("veto") { ctx.fail(409, "base says no"); }
    if record.label.starts_with("explode") { throw "base hook exploded"; }
    record.stamp = ctx.plugin.name;
    record.who = if type_of(ctx.user) == "()" { "system" } else { ctx.user.email };
    record
}
"#;

const SHARED_LUA: &str = r#"
function before_create(ctx, record)
    if record.label:sub(1, 4) == "veto" then ctx.fail(409, "base says no") end
    if record.label:sub(1, 7) == "explode" then error("base hook exploded") end
    record.stamp = ctx.plugin.name
    record.who = ctx.user == nil and "system" or ctx.user.email
    return record
end
"#;

/// The base plugins: (name, runtime line, permission prefix, extension, hook).
const BASES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "confbase_r",
        "runtime = \"rhai\"",
        "CONFBASE_R",
        "rhai",
        SHARED_RHAI,
    ),
    (
        "confbase_l",
        "runtime = \"lua\"",
        "CONFBASE_L",
        "lua",
        SHARED_LUA,
    ),
];

/// The script file of `stem` of a plugin (twins and bases), for locating
/// the line an error should be reported at.
fn script_of(plugin: &str, stem: &str) -> Option<(&'static str, &'static str)> {
    for lang in LANGS {
        if lang.plugin() == plugin {
            return lang
                .scripts()
                .iter()
                .find(|(s, _)| *s == stem)
                .map(|(_, text)| (lang.ext(), *text));
        }
    }
    BASES
        .iter()
        .find(|b| b.0 == plugin && stem == "shared")
        .map(|b| (b.3, b.4))
}

/// The 1-based line of `text` containing `marker` (exactly one).
fn line_of(text: &str, marker: &str) -> usize {
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(marker))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "marker {marker:?} must be on exactly one line of the script"
    );
    lines[0]
}

fn write_plugins(manifests: &Path, scripts: &Path) {
    for lang in LANGS {
        std::fs::write(
            manifests.join(format!("{}.toml", lang.plugin())),
            twin_manifest(lang),
        )
        .expect("twin manifest");
        let dir = scripts.join(lang.plugin());
        std::fs::create_dir_all(&dir).expect("twin scripts dir");
        for (stem, text) in lang.scripts() {
            std::fs::write(dir.join(format!("{stem}.{}", lang.ext())), text).expect("twin script");
        }
    }
    for (name, runtime, prefix, ext, hook) in BASES {
        let manifest = BASE_MANIFEST
            .replace("@NAME@", name)
            .replace("@RUNTIME@", runtime)
            .replace("@P@", prefix);
        std::fs::write(manifests.join(format!("{name}.toml")), manifest).expect("base manifest");
        let dir = scripts.join(name);
        std::fs::create_dir_all(&dir).expect("base scripts dir");
        std::fs::write(dir.join(format!("shared.{ext}")), hook).expect("base hook");
    }
}

// ---------------------------------------------------------------- Rhai scripts

const PING_RHAI: &str = r#"
fn handle(ctx, req) {
    #{ pong: true }
}
"#;

const REQ_RHAI: &str = r#"
fn kind(v) {
    switch type_of(v) {
        "i64" => "integer",
        "f64" => "float",
        "string" => "string",
        "bool" => "bool",
        "array" => "array",
        "map" => "object",
        "()" => "null",
        _ => "other " + type_of(v)
    }
}

fn lower_case(headers) {
    for key in headers.keys() {
        if key != key.to_lower() {
            return false;
        }
    }
    true
}

// Like Lua, leave out what is () so that both answer the same JSON.
fn handle(ctx, req) {
    let out = #{
        method: req.method,
        path: req.path,
        params: req.params,
        query: req.query,
        has_authorization: req.headers.contains("authorization"),
        lower_case: lower_case(req.headers),
        body_kind: kind(req.body)
    };
    if req.headers.contains("x-conf") {
        out.header = req.headers["x-conf"];
    }
    if type_of(req.body) != "()" {
        out.body = req.body;
    }
    out
}

fn types(ctx, req) {
    let b = req.body;
    let kinds = #{};
    for key in b.keys() {
        kinds[key] = kind(b[key]);
    }
    #{
        kinds: kinds,
        echo: b,
        i_plus_1: b.i + 1,
        big_plus_1: b.big + 1,
        f_times_2: b.f * 2.0,
        whole_plus_half: b.whole + 0.5,
        chars: b.s.len(),
        list_len: b.list.len(),
        obj_k: b.obj.k
    }
}

fn roundtrip(ctx, req) {
    req.body
}

fn nulls(ctx, req) {
    #{
        a_is_null: type_of(req.body.a) == "()",
        missing_is_null: type_of(req.body.zzz) == "()",
        nested_is_null: type_of(req.body.o.b) == "()"
    }
}

fn made(ctx, req) {
    #{
        int: 7,
        neg: -3,
        half: 0.5,
        four: 2.0 * 2.0,
        text: "plain",
        yes: true,
        list: [1, 2.5, "x", false],
        map: #{ k: [#{ deep: 1 }] }
    }
}

fn made_empty(ctx, req) {
    #{ empty_list: [], empty_map: #{}, nested: #{ inner: #{} } }
}
"#;

const CTX_RHAI: &str = r#"
fn handle(ctx, req) {
    let p = ctx.plugin.name.to_upper();
    #{
        user: ctx.user,
        tenant: ctx.tenant,
        plugin: ctx.plugin,
        settings: ctx.settings,
        can_use: ctx.can(p + "_USE"),
        can_secret: ctx.can(p + "_SECRET"),
        can_never: ctx.can(p + "_NEVER"),
        can_core: ctx.can("USERS_MANAGE"),
        now: ctx.now(),
        uuid: ctx.uuid(),
        uuid2: ctx.uuid()
    }
}

fn logging(ctx, req) {
    let a = ctx.log.info("conformance: an info line");
    let b = ctx.log.warn(#{ structured: true, n: 1 });
    let c = ctx.log.error(42);
    #{ info: type_of(a) == "()", warn: type_of(b) == "()", error: type_of(c) == "()" }
}

fn readonly(ctx, req) {
    ctx.db.insert("note", #{ title: "readonly" });
    ctx.user = #{ email: "forged@example.com" };
    #{ changed: true }
}

fn readonly_caught(ctx, req) {
    let blocked = [];
    let seen = ctx.user.email + ctx.tenant.slug;
    try { ctx.user = #{ email: "forged@example.com" }; } catch { blocked.push("user"); }
    try { ctx.tenant = #{ id: "forged" }; } catch { blocked.push("tenant"); }
    try { ctx.db = (); } catch { blocked.push("db"); }
    #{ blocked: blocked, email: ctx.user.email, tenant: ctx.tenant.slug }
}
"#;

const PERM_RHAI: &str = r#"
fn secret(ctx, req) {
    ctx.require(ctx.plugin.name.to_upper() + "_SECRET");
    #{ secret: 42 }
}

fn admin_only(ctx, req) {
    #{ admin: true }
}

fn require_never(ctx, req) {
    ctx.db.insert("note", #{ title: "require-never" });
    ctx.require(ctx.plugin.name.to_upper() + "_NEVER");
    #{ held: true }
}

fn require_caught(ctx, req) {
    ctx.db.insert("note", #{ title: "require-caught" });
    try {
        ctx.require(ctx.plugin.name.to_upper() + "_NEVER");
    } catch {
        return #{ caught: true };
    }
    #{ held: true }
}
"#;

const RET_RHAI: &str = r#"
fn handle(ctx, req) {
    let kind = req.params.kind;
    if kind == "envelope" { return #{ status: 201, body: #{ made: true }, headers: #{ "x-conf": "made" } }; }
    if kind == "teapot" { return #{ status: 418, body: #{ short: "stout" } }; }
    if kind == "empty" { return #{ status: 204 }; }
    if kind == "record" { return #{ status: "active", name: "x" }; }
    if kind == "extra" { return #{ status: 202, extra: 1 }; }
    if kind == "out-of-range" { return #{ status: 700, body: 1 }; }
    if kind == "float-status" { return #{ status: 201.0, body: 1 }; }
    if kind == "array" { return [1, 2, 3]; }
    if kind == "string" { return "plain"; }
    if kind == "number" { return 7; }
    if kind == "float" { return 2.5; }
    if kind == "bool" { return false; }
    if kind == "null" { return (); }
    if kind == "text-body" { return #{ status: 200, body: "a,b", headers: #{ "content-type": "text/csv" } }; }
    ctx.fail(404, "unknown kind " + kind);
}
"#;

const FAIL_RHAI: &str = r#"
fn rep(c, n) {
    let s = "";
    s.pad(n, c);
    s
}

fn fields_of(e) {
    let out = [];
    for x in e.errors { out.push(x.field); }
    out
}

fn codes_of(e) {
    let out = [];
    for x in e.errors { out.push(x.code); }
    out
}

fn handle(ctx, req) {
    let kind = req.params.kind;
    ctx.db.insert("note", #{ title: kind });
    if kind == "fail" { ctx.fail(422, "the script says no"); }
    if kind == "fail-caught" {
        try { ctx.fail(418, "cannot be caught"); } catch { return #{ caught: true }; }
    }
    if kind == "fail-int-message" { ctx.fail(400, 42); }
    if kind == "fail-float-status" { ctx.fail(422.0, "float status"); }
    if kind == "invalid" { ctx.db.insert("note", #{}); }
    if kind == "too-long" { ctx.db.insert("note", #{ title: rep("x", 41) }); }
    if kind == "wrong-type" { ctx.db.insert("note", #{ title: "t", n: "five" }); }
    if kind == "float-for-int" { ctx.db.insert("note", #{ title: "t", n: 1.5 }); }
    if kind == "unknown-field" { ctx.db.insert("note", #{ title: "t", bogus: 1 }); }
    if kind == "tenant-field" { ctx.db.insert("note", #{ title: "t", tenant_id: ctx.tenant.id }); }
    if kind == "bad-ref" { ctx.db.insert("note", #{ title: "t", parent: ctx.uuid() }); }
    if kind == "bad-enum" { ctx.db.insert("note", #{ title: "t", kind: "c" }); }
    if kind == "conflict" {
        ctx.db.insert("note", #{ title: "c1", code: "same" });
        ctx.db.insert("note", #{ title: "c2", code: "same" });
    }
    if kind == "update-invalid" {
        let row = ctx.db.insert("note", #{ title: "u" });
        ctx.db.update("note", row.id, #{ n: "x" });
    }
    if kind == "invalid-caught" {
        try { ctx.db.insert("note", #{ n: 1 }); } catch (e) {
            return #{ caught: e.status, fields: fields_of(e), codes: codes_of(e), message: e.message };
        }
    }
    if kind == "conflict-caught" {
        ctx.db.insert("note", #{ title: "d1", code: "dup" });
        try { ctx.db.insert("note", #{ title: "d2", code: "dup" }); } catch (e) {
            return #{ caught: e.status, errors: e.errors, message: e.message };
        }
    }
    if kind == "invalid-rethrown" {
        try { ctx.db.insert("note", #{ n: 1 }); } catch (e) { throw e; }
    }
    #{ kept: kind }
}
"#;

/// Lines line up with fault.lua (the health location is compared).
const FAULT_RHAI: &str = r#"
fn handle(ctx, req) {
    let kind = req.params.kind;
    ctx.db.insert("note", #{ title: "fault-" + kind });
    if kind == "throw" { throw "thrown on purpose"; }
    if kind == "undefined" { no_such_function(1); }
    if kind == "nil-index" { let m = (); return m.field.deeper; }
    if kind == "host" { ctx.db.get("no_such_entity", "x"); }
    if kind == "throw-value" { throw #{ code: 7 }; }
    if kind == "helper" { return helper(1); }
    if kind == "bad-fail" { ctx.fail(200, "not a client error"); }
    if kind == "not-json" { return |x| x; }
    if kind == "bad-header" { return #{ status: 200, headers: #{ "content-length": "1" } }; }
    if kind == "type" { return "text" - 1; }
    #{ kept: kind }
}

fn helper(n) {
    throw "helper failed";
}
"#;

const DB_RHAI: &str = r#"
fn titles(rows) {
    let out = [];
    for r in rows { out.push(r.title); }
    out
}

fn handle(ctx, req) {
    let a = ctx.db.insert("note", #{ title: "alpha", n: 1, r: 0.5, flag: true, data: #{ k: [1, 2] }, code: "A" });
    let b = ctx.db.insert("note", #{ title: "beta", n: 5, kind: "b" });
    let c = ctx.db.insert("note", #{ title: "gamma", n: 9, parent: a.id });
    let r = #{};
    r.id_kind = type_of(a.id) == "string";
    r.created = type_of(a.created_at) == "string";
    r.n = a.n;
    r.r = a.r;
    r.flag = a.flag;
    r.data = a.data;
    r.kind_default = a.kind;
    r.parent_ok = c.parent == a.id;
    r.got = ctx.db.get("note", b.id).title;
    r.missing_is_null = type_of(ctx.db.get("note", ctx.uuid())) == "()";
    r.big = titles(ctx.db.find("note", #{ n: #{ "gt": 2 } }, #{ sort: "-n" }));
    r.like = titles(ctx.db.find("note", #{ title: #{ "like": "AMM" } }));
    r.in_ = titles(ctx.db.find("note", #{ title: #{ "in": ["alpha", "gamma"] } }, #{ sort: "title" }));
    r.ne = titles(ctx.db.find("note", #{ kind: #{ "ne": "a" } }));
    r.gte_lte = titles(ctx.db.find("note", #{ n: #{ "gte": 1, "lte": 5 } }, #{ sort: "n" }));
    r.null_ = titles(ctx.db.find("note", #{ code: #{ "null": true } }, #{ sort: "title" }));
    r.eq = titles(ctx.db.find("note", #{ n: 5 }));
    r.eq_op = titles(ctx.db.find("note", #{ n: #{ "eq": 9 } }));
    r.and_ = titles(ctx.db.find("note", #{ n: #{ "gt": 0 }, kind: "a" }, #{ sort: "-title" }));
    r.paged = titles(ctx.db.find("note", (), #{ sort: "n", limit: 1, offset: 1 }));
    r.by_id = titles(ctx.db.find("note", #{ id: b.id }));
    r.default_order = titles(ctx.db.find("note"));
    r.empty_where = ctx.db.find("note", #{}).len();
    r.first = ctx.db.first("note", #{ title: "gamma" }).n;
    r.first_default = ctx.db.first("note").title;
    r.first_none = type_of(ctx.db.first("note", #{ title: "zeta" })) == "()";
    r.count_all = ctx.db.count("note");
    r.count_where = ctx.db.count("note", #{ n: #{ "lt": 6 } });
    r.count_type = type_of(r.count_all) == "i64";
    let u = ctx.db.update("note", a.id, #{ n: 2, title: "alpha2" });
    r.updated = [u.title, u.n, u.code];
    r.update_missing_is_null = type_of(ctx.db.update("note", ctx.uuid(), #{ n: 3 })) == "()";
    try { ctx.db.delete("note", a.id); r.delete_referenced = 0; } catch (e) { r.delete_referenced = e.status; }
    r.deleted = ctx.db.delete("note", b.id);
    r.deleted_again = ctx.db.delete("note", b.id);
    r.gone_is_null = type_of(ctx.db.get("note", b.id)) == "()";
    r.after = titles(ctx.db.find("note", (), #{ sort: "title" }));
    #{ status: 201, body: r }
}

fn args(ctx, req) {
    let twin = if ctx.plugin.name == "conf_rhai" { "conf_lua" } else { "conf_rhai" };
    let out = #{};
    try { ctx.db.find("nope"); } catch (e) { out.unknown_entity = e; }
    try { ctx.db.find(ctx.plugin.name + "_note"); } catch (e) { out.table_name = e; }
    try { ctx.db.find("note", #{ bogus: 1 }); } catch (e) { out.unknown_field = e; }
    try { ctx.db.find("note", #{ n: #{ around: 1 } }); } catch (e) { out.unknown_op = e; }
    try { ctx.db.find("note", #{ tenant_id: ctx.tenant.id }); } catch (e) { out.tenant_where = e; }
    try { ctx.db.find("note", "1 = 1 OR title = title"); } catch (e) { out.sql_where = e; }
    try { ctx.db.find("note", (), #{ sort: "bogus" }); } catch (e) { out.bad_sort = e; }
    try { ctx.db.find("note", (), #{ sort: "title; DROP TABLE note" }); } catch (e) { out.sql_sort = e; }
    try { ctx.db.find("note", (), #{ limit: 0 }); } catch (e) { out.bad_limit = e; }
    try { ctx.db.find("note", (), #{ page: 2 }); } catch (e) { out.unknown_opt = e; }
    try { ctx.db.get(1, "x"); } catch (e) { out.entity_type = e; }
    try { ctx.db.insert("note", "title=x"); } catch (e) { out.fields_type = e; }
    try { ctx.db.count(twin + ".note"); } catch (e) { out.twin = e; }
    try { ctx.db.find("confbase_r.nope"); } catch (e) { out.base_unknown = e; }
    out
}

fn reads(ctx, req) {
    #{
        count: ctx.db.count("note"),
        found: ctx.db.find("note").len(),
        first_is_null: type_of(ctx.db.first("note")) == "()",
        got_is_null: type_of(ctx.db.get("note", ctx.uuid())) == "()"
    }
}

fn write_in_get(ctx, req) {
    ctx.db.insert("note", #{ title: "from-get" })
}

fn write_caught(ctx, req) {
    let out = #{};
    try { ctx.db.insert("note", #{ title: "from-get" }); out.insert = false; } catch (e) { out.insert = e.contains("read-only"); }
    try { ctx.db.update("note", ctx.uuid(), #{ n: 1 }); out.update = false; } catch (e) { out.update = e.contains("read-only"); }
    try { ctx.db.delete("note", ctx.uuid()); out.delete = false; } catch (e) { out.delete = e.contains("read-only"); }
    out
}

fn set_null(ctx, req) {
    let a = ctx.db.insert("note", #{ title: "nullable", n: 1 });
    let u = ctx.db.update("note", a.id, #{ n: () });
    #{ n_is_null: type_of(u.n) == "()" }
}
"#;

const ROWS_RHAI: &str = r#"
fn handle(ctx, req) {
    let n = parse_int(req.params.n);
    for i in 0..n { ctx.db.insert("note", #{ title: "row-" + i, label: "rows" }); }
    #{ found: ctx.db.find("note", #{ label: "rows" }).len() }
}

fn explicit(ctx, req) {
    ctx.db.insert("note", #{ title: "explicit", label: "rows" });
    let n = parse_int(req.params.n);
    #{ found: ctx.db.find("note", #{ label: "rows" }, #{ limit: n }).len() }
}
"#;

const HOOKS_RHAI: &str = r#"
fn tag_ops(ctx, req) {
    let made = ctx.db.insert("tag", #{ label: req.body.label });
    let changed = ctx.db.update("tag", made.id, #{ label: "lime" });
    let gone = ctx.db.delete("tag", made.id);
    #{ made: made.label, changed: changed.label, gone: gone }
}

fn tag_veto(ctx, req) {
    ctx.db.insert("note", #{ title: "before-veto" });
    ctx.db.insert("tag", #{ label: req.body.label });
    #{ kept: true }
}

fn tag_veto_caught(ctx, req) {
    ctx.db.insert("note", #{ title: "veto-caught" });
    try { ctx.db.insert("tag", #{ label: "forbidden" }); } catch { return #{ caught: true }; }
    #{ caught: false }
}

fn base(ctx, req) {
    let which = req.params.which;
    ctx.db.insert("note", #{ title: "base-" + which });
    let label = req.body.label + "-from-" + ctx.plugin.name;
    let row = ctx.db.insert(which + ".shared", #{ label: label });
    #{ stamp: row.stamp, who: row.who, me: ctx.plugin.name, mine: ctx.db.count(which + ".shared", #{ label: label }) }
}
"#;

/// Lines line up with tag.lua.
const TAG_RHAI: &str = r#"
fn before_create(ctx, record) {
    if record.label == "forbidden" { ctx.fail(400, "forbidden label"); }
    if record.label == "explode" { throw "before_create exploded"; }
    if record.label == "as-is" { return (); }
    if record.label == "bad-return" { return "not a map"; }
    record.label = record.label.to_upper();
    record
}

fn after_create(ctx, record) {
    if record.label == "AFTER-FAIL" { ctx.fail(409, "after_create refused"); }
    ctx.db.insert("event", #{ kind: "after_create", target: record.id, info: record.label });
}

fn before_update(ctx, old, changes) {
    if type_of(changes.label) == "string" { changes.label = changes.label.to_upper(); }
    changes
}

fn after_update(ctx, old, updated) {
    ctx.db.insert("event", #{ kind: "after_update", target: updated.id, info: old.label + "->" + updated.label });
}

fn before_delete(ctx, record) {
    if record.label == "KEEP" { ctx.fail(409, "this tag is kept"); }
    ctx.db.insert("event", #{ kind: "before_delete", target: record.id, info: record.label });
}

fn after_delete(ctx, record) {
    ctx.db.insert("event", #{ kind: "after_delete", target: record.id, info: record.label });
}
"#;

const CHAIN_RHAI: &str = r#"
fn after_create(ctx, record) {
    ctx.db.insert("chain", #{ depth: record.depth + 1 });
}
"#;

const SLOW_RHAI: &str = r#"
fn before_create(ctx, record) {
    let i = 0;
    loop { i += 1; }
}
"#;

/// Lines line up with plugin.lua.
const PLUGIN_RHAI: &str = r#"
fn who(ctx) {
    if type_of(ctx.user) == "()" { "system" } else { ctx.user.email }
}

fn on_install(ctx) {
    ctx.db.insert("seed", #{ label: "installed for " + ctx.tenant.slug, who: who(ctx) });
    if ctx.settings.explode { throw "on_install exploded"; }
}

fn on_uninstall(ctx) {
    ctx.db.insert("seed", #{ label: "uninstalled for " + ctx.tenant.slug, who: who(ctx) });
}
"#;

const WILD_RHAI: &str = r#"
fn deep(n) {
    1 + deep(n + 1)
}

fn bounded(n) {
    if n == 0 { 0 } else { 1 + bounded(n - 1) }
}

fn rep(c, n) {
    let s = "";
    s.pad(n, c);
    s
}

fn handle(ctx, req) {
    let kind = req.params.kind;
    let max = req.body;
    ctx.db.insert("note", #{ title: "wild-" + kind });
    if kind == "loop" { loop {} }
    if kind == "loop-caught" { loop { try { loop {} } catch {} } }
    if kind == "busy-ok" {
        let sum = 0;
        for i in 0..1000 { sum += i; }
        return #{ sum: sum };
    }
    if kind == "recurse" { return deep(0); }
    if kind == "recurse-caught" {
        try { deep(0); } catch { return #{ caught: true }; }
    }
    if kind == "recurse-ok" { return #{ depth: bounded(20) }; }
    if kind == "string-concat" {
        let s = "x";
        while s.len() <= 2 * max.string { s += s; }
        return #{ s: s };
    }
    if kind == "string-repeat" { return #{ len: rep("x", 2 * max.string).len() }; }
    if kind == "string-caught" {
        try { rep("x", 2 * max.string); } catch { return #{ caught: true }; }
    }
    if kind == "array-push" {
        let a = [];
        while a.len() <= 2 * max.items { a.push(1); }
        return #{ len: a.len() };
    }
    if kind == "map-keys" {
        let m = #{};
        let i = 0;
        while i <= 2 * max.items { m["k" + i] = i; i += 1; }
        return m;
    }
    if kind == "array-caught" {
        try { let a = []; loop { a.push(1); } } catch { return #{ caught: true }; }
    }
    if kind == "memory" {
        let a = [];
        for i in 0..4000 { a.push(rep("x", max.string - 16) + i); }
        return #{ len: a.len() };
    }
    if kind == "memory-caught" {
        try {
            let a = [];
            for i in 0..4000 { a.push(rep("x", max.string - 16) + i); }
        } catch { return #{ caught: true }; }
    }
    if kind == "nested" {
        let outer = [];
        for i in 0..20 {
            let inner = [];
            for j in 0..400 { inner.push(j); }
            outer.push(inner);
        }
        return outer;
    }
    if kind == "nested-ok" {
        let outer = [];
        for i in 0..10 {
            let inner = [];
            for j in 1..401 { inner.push(j); }
            outer.push(inner);
        }
        return outer;
    }
    if kind == "spin" { let i = 0; loop { i += 1; } }
    if kind == "spin-caught" { loop { try { let i = 0; loop { i += 1; } } catch {} } }
    if kind == "slow-hook" { ctx.db.insert("slow", #{ label: "slow" }); }
    if kind == "count-forever" { loop { try { ctx.db.count("note"); } catch {} } }
    #{ done: kind }
}
"#;

const ESCAPE_RHAI: &str = r#"
fn handle(ctx, req) {
    let kind = req.params.kind;
    ctx.db.insert("note", #{ title: "escape-" + kind });
    let twin = if ctx.plugin.name == "conf_rhai" { "conf_lua" } else { "conf_rhai" };
    let escaped = [];
    if kind == "files" {
        try { open_file("/etc/passwd"); escaped.push("open_file"); } catch {}
        try { read_file("/etc/passwd"); escaped.push("read_file"); } catch {}
        try { let p = "/etc/passwd"; import p as m; escaped.push("import absolute"); } catch {}
        try { let p = "../" + twin + "/ping"; import p as m; escaped.push("import sibling"); } catch {}
    }
    if kind == "env" {
        try { env("PATH"); escaped.push("env"); } catch {}
        try { getenv("PATH"); escaped.push("getenv"); } catch {}
        try { system("true"); escaped.push("system"); } catch {}
        try { exec("true"); escaped.push("exec"); } catch {}
        try { http_get("http://127.0.0.1:9/"); escaped.push("http_get"); } catch {}
        try { connect("127.0.0.1:9"); escaped.push("connect"); } catch {}
    }
    if kind == "code" {
        try { let f = Fn("open_file"); f.call("/etc/passwd"); escaped.push("Fn(open_file)"); } catch {}
        try { let p = "../../" + "plugin-manifests/" + twin; import p as m; escaped.push("import manifests"); } catch {}
    }
    if kind == "plugins" {
        try { ctx.db.find(twin + ".note"); escaped.push("find twin"); } catch {}
        try { ctx.db.insert(twin + ".note", #{ title: "smuggled" }); escaped.push("insert twin"); } catch {}
        try { ctx.db.find("confbase_r.nope"); escaped.push("unknown base entity"); } catch {}
        try { ctx.db.find(ctx.plugin.name + "_note"); escaped.push("own table name"); } catch {}
        try { ctx.db.find("confbase_r_shared"); escaped.push("base table name"); } catch {}
    }
    if kind == "tenants" {
        try { ctx.db.find("note", #{ tenant_id: ctx.tenant.id }); escaped.push("tenant_id where"); } catch {}
        try { ctx.db.insert("note", #{ title: "t", tenant_id: ctx.tenant.id }); escaped.push("tenant_id insert"); } catch {}
        try { ctx.db.find("note", "1 = 1"); escaped.push("raw sql where"); } catch {}
        try { ctx.db.find("note", (), #{ sort: "title; DROP TABLE x" }); escaped.push("sql in sort"); } catch {}
        try { ctx.db.find("note", #{ "title = title OR 1": 1 }); escaped.push("sql in field"); } catch {}
    }
    if kind == "uncaught" { return #{ content: open_file("/etc/passwd") }; }
    if kind == "eval" { let f = Fn("ev" + "al"); return #{ answer: f.call("40 + 2") }; }
    #{ escaped: escaped }
}
"#;

const STATE_RHAI: &str = r#"
import "lib" as lib;

// Rhai functions see no mutable globals; the one place state could outlive
// a request is a module compiled once per plugin version (a closure over
// its top-level variable).
fn plant(ctx, req) {
    let planted = [];
    try {
        let bump = lib::bump;
        bump.call();
        planted.push("module closure");
    } catch {}
    #{ planted: planted }
}

fn read_state(ctx, req) {
    let leaked = [];
    try {
        let peek = lib::peek;
        let n = peek.call();
        if n != 0 { leaked.push("module closure: " + n); }
    } catch {}
    #{ leaked: leaked }
}
"#;

const LIB_RHAI: &str = r#"
let counter = 0;
let bump = || { counter += 1; counter };
let peek = || counter;
export bump;
export peek;
"#;

const PEEK_RHAI: &str = r#"
fn handle(ctx, req) {
    let id = req.params.id;
    let title = req.body.title;
    #{
        got_is_null: type_of(ctx.db.get("note", id)) == "()",
        found: ctx.db.find("note", #{ title: title }).len(),
        count: ctx.db.count("note"),
        first_is_null: type_of(ctx.db.first("note", #{ id: id })) == "()",
        updated_is_null: type_of(ctx.db.update("note", id, #{ n: 99 })) == "()",
        deleted: ctx.db.delete("note", id),
        base_count: ctx.db.count("confbase_r.shared")
    }
}
"#;

const RHAI_SCRIPTS: &[(&str, &str)] = &[
    ("ping", PING_RHAI),
    ("req", REQ_RHAI),
    ("ctx", CTX_RHAI),
    ("perm", PERM_RHAI),
    ("ret", RET_RHAI),
    ("fail", FAIL_RHAI),
    ("fault", FAULT_RHAI),
    ("db", DB_RHAI),
    ("rows", ROWS_RHAI),
    ("hooks", HOOKS_RHAI),
    ("tag", TAG_RHAI),
    ("chain", CHAIN_RHAI),
    ("slow", SLOW_RHAI),
    ("plugin", PLUGIN_RHAI),
    ("wild", WILD_RHAI),
    ("escape", ESCAPE_RHAI),
    ("state", STATE_RHAI),
    ("lib", LIB_RHAI),
    ("peek", PEEK_RHAI),
];

// ---------------------------------------------------------------- Lua scripts

const PING_LUA: &str = r#"
function handle(ctx, req)
    return { pong = true }
end
"#;

const REQ_LUA: &str = r#"
local function kind(v)
    local t = type(v)
    if t == "number" then return math.type(v) end
    if t == "boolean" then return "bool" end
    if t == "nil" then return "null" end
    if t == "table" then
        local n = 0
        for _ in pairs(v) do n = n + 1 end
        if n > 0 and n == #v then return "array" end
        return "object"
    end
    return t
end

local function lower_case(headers)
    for key in pairs(headers) do
        if key ~= string.lower(key) then return false end
    end
    return true
end

function handle(ctx, req)
    return {
        method = req.method,
        path = req.path,
        params = req.params,
        query = req.query,
        has_authorization = req.headers.authorization ~= nil,
        lower_case = lower_case(req.headers),
        body_kind = kind(req.body),
        header = req.headers["x-conf"],
        body = req.body,
    }
end

function types(ctx, req)
    local b = req.body
    local kinds = {}
    for k, v in pairs(b) do kinds[k] = kind(v) end
    return {
        kinds = kinds,
        echo = b,
        i_plus_1 = b.i + 1,
        big_plus_1 = b.big + 1,
        f_times_2 = b.f * 2.0,
        whole_plus_half = b.whole + 0.5,
        chars = utf8.len(b.s),
        list_len = #b.list,
        obj_k = b.obj.k,
    }
end

function roundtrip(ctx, req)
    return req.body
end

function nulls(ctx, req)
    return {
        a_is_null = req.body.a == nil,
        missing_is_null = req.body.zzz == nil,
        nested_is_null = req.body.o.b == nil,
    }
end

function made(ctx, req)
    return {
        int = 7,
        neg = -3,
        half = 0.5,
        four = 2.0 * 2.0,
        text = "plain",
        yes = true,
        list = { 1, 2.5, "x", false },
        map = { k = { { deep = 1 } } },
    }
end

function made_empty(ctx, req)
    return { empty_list = {}, empty_map = {}, nested = { inner = {} } }
end
"#;

const CTX_LUA: &str = r#"
function handle(ctx, req)
    local p = string.upper(ctx.plugin.name)
    return {
        user = ctx.user,
        tenant = ctx.tenant,
        plugin = ctx.plugin,
        settings = ctx.settings,
        can_use = ctx.can(p .. "_USE"),
        can_secret = ctx.can(p .. "_SECRET"),
        can_never = ctx.can(p .. "_NEVER"),
        can_core = ctx.can("USERS_MANAGE"),
        now = ctx.now(),
        uuid = ctx.uuid(),
        uuid2 = ctx.uuid(),
    }
end

function logging(ctx, req)
    local a = ctx.log.info("conformance: an info line")
    local b = ctx.log.warn({ structured = true, n = 1 })
    local c = ctx.log.error(42)
    return { info = a == nil, warn = b == nil, error = c == nil }
end

function readonly(ctx, req)
    ctx.db.insert("note", { title = "readonly" })
    ctx.user = { email = "forged@example.com" }
    return { changed = true }
end

function readonly_caught(ctx, req)
    local blocked = {}
    local seen = ctx.user.email .. ctx.tenant.slug
    if not pcall(function() ctx.user = { email = "forged@example.com" } end) then table.insert(blocked, "user") end
    if not pcall(function() ctx.tenant = { id = "forged" } end) then table.insert(blocked, "tenant") end
    if not pcall(function() ctx.db = nil end) then table.insert(blocked, "db") end
    return { blocked = blocked, email = ctx.user.email, tenant = ctx.tenant.slug }
end
"#;

const PERM_LUA: &str = r#"
function secret(ctx, req)
    ctx.require(string.upper(ctx.plugin.name) .. "_SECRET")
    return { secret = 42 }
end

function admin_only(ctx, req)
    return { admin = true }
end

function require_never(ctx, req)
    ctx.db.insert("note", { title = "require-never" })
    ctx.require(string.upper(ctx.plugin.name) .. "_NEVER")
    return { held = true }
end

function require_caught(ctx, req)
    ctx.db.insert("note", { title = "require-caught" })
    local ok = pcall(function()
        ctx.require(string.upper(ctx.plugin.name) .. "_NEVER")
    end)
    if not ok then return { caught = true } end
    return { held = true }
end
"#;

const RET_LUA: &str = r#"
function handle(ctx, req)
    local kind = req.params.kind
    if kind == "envelope" then return { status = 201, body = { made = true }, headers = { ["x-conf"] = "made" } } end
    if kind == "teapot" then return { status = 418, body = { short = "stout" } } end
    if kind == "empty" then return { status = 204 } end
    if kind == "record" then return { status = "active", name = "x" } end
    if kind == "extra" then return { status = 202, extra = 1 } end
    if kind == "out-of-range" then return { status = 700, body = 1 } end
    if kind == "float-status" then return { status = 201.0, body = 1 } end
    if kind == "array" then return { 1, 2, 3 } end
    if kind == "string" then return "plain" end
    if kind == "number" then return 7 end
    if kind == "float" then return 2.5 end
    if kind == "bool" then return false end
    if kind == "null" then return nil end
    if kind == "text-body" then return { status = 200, body = "a,b", headers = { ["content-type"] = "text/csv" } } end
    ctx.fail(404, "unknown kind " .. kind)
end
"#;

const FAIL_LUA: &str = r#"
local function fields_of(e)
    local out = {}
    for _, x in ipairs(e.errors) do table.insert(out, x.field) end
    return out
end

local function codes_of(e)
    local out = {}
    for _, x in ipairs(e.errors) do table.insert(out, x.code) end
    return out
end

function handle(ctx, req)
    local kind = req.params.kind
    ctx.db.insert("note", { title = kind })
    if kind == "fail" then ctx.fail(422, "the script says no") end
    if kind == "fail-caught" then
        if not pcall(function() ctx.fail(418, "cannot be caught") end) then return { caught = true } end
    end
    if kind == "fail-int-message" then ctx.fail(400, 42) end
    if kind == "fail-float-status" then ctx.fail(422.0, "float status") end
    if kind == "invalid" then ctx.db.insert("note", {}) end
    if kind == "too-long" then ctx.db.insert("note", { title = string.rep("x", 41) }) end
    if kind == "wrong-type" then ctx.db.insert("note", { title = "t", n = "five" }) end
    if kind == "float-for-int" then ctx.db.insert("note", { title = "t", n = 1.5 }) end
    if kind == "unknown-field" then ctx.db.insert("note", { title = "t", bogus = 1 }) end
    if kind == "tenant-field" then ctx.db.insert("note", { title = "t", tenant_id = ctx.tenant.id }) end
    if kind == "bad-ref" then ctx.db.insert("note", { title = "t", parent = ctx.uuid() }) end
    if kind == "bad-enum" then ctx.db.insert("note", { title = "t", kind = "c" }) end
    if kind == "conflict" then
        ctx.db.insert("note", { title = "c1", code = "same" })
        ctx.db.insert("note", { title = "c2", code = "same" })
    end
    if kind == "update-invalid" then
        local row = ctx.db.insert("note", { title = "u" })
        ctx.db.update("note", row.id, { n = "x" })
    end
    if kind == "invalid-caught" then
        local ok, e = pcall(function() return ctx.db.insert("note", { n = 1 }) end)
        if not ok then
            return { caught = e.status, fields = fields_of(e), codes = codes_of(e), message = e.message }
        end
    end
    if kind == "conflict-caught" then
        ctx.db.insert("note", { title = "d1", code = "dup" })
        local ok, e = pcall(function() return ctx.db.insert("note", { title = "d2", code = "dup" }) end)
        if not ok then
            return { caught = e.status, errors = e.errors, message = e.message }
        end
    end
    if kind == "invalid-rethrown" then
        local ok, e = pcall(function() return ctx.db.insert("note", { n = 1 }) end)
        if not ok then error(e) end
    end
    return { kept = kind }
end
"#;

/// Lines line up with fault.rhai (the health location is compared).
const FAULT_LUA: &str = r#"
function handle(ctx, req)
    local kind = req.params.kind
    ctx.db.insert("note", { title = "fault-" .. kind })
    if kind == "throw" then error("thrown on purpose") end
    if kind == "undefined" then no_such_function(1) end
    if kind == "nil-index" then local m = nil; return m.field.deeper end
    if kind == "host" then ctx.db.get("no_such_entity", "x") end
    if kind == "throw-value" then error({ code = 7 }) end
    if kind == "helper" then return helper(1) end
    if kind == "bad-fail" then ctx.fail(200, "not a client error") end
    if kind == "not-json" then return function(x) return x end end
    if kind == "bad-header" then return { status = 200, headers = { ["content-length"] = "1" } } end
    if kind == "type" then return "text" - 1 end
    return { kept = kind }
end

function helper(n)
    error("helper failed")
end
"#;

const DB_LUA: &str = r#"
local function titles(rows)
    local out = {}
    for _, r in ipairs(rows) do table.insert(out, r.title) end
    return out
end

function handle(ctx, req)
    local a = ctx.db.insert("note", { title = "alpha", n = 1, r = 0.5, flag = true, data = { k = { 1, 2 } }, code = "A" })
    local b = ctx.db.insert("note", { title = "beta", n = 5, kind = "b" })
    local c = ctx.db.insert("note", { title = "gamma", n = 9, parent = a.id })
    local r = {}
    r.id_kind = type(a.id) == "string"
    r.created = type(a.created_at) == "string"
    r.n = a.n
    r.r = a.r
    r.flag = a.flag
    r.data = a.data
    r.kind_default = a.kind
    r.parent_ok = c.parent == a.id
    r.got = ctx.db.get("note", b.id).title
    r.missing_is_null = ctx.db.get("note", ctx.uuid()) == nil
    r.big = titles(ctx.db.find("note", { n = { gt = 2 } }, { sort = "-n" }))
    r.like = titles(ctx.db.find("note", { title = { like = "AMM" } }))
    r.in_ = titles(ctx.db.find("note", { title = { ["in"] = { "alpha", "gamma" } } }, { sort = "title" }))
    r.ne = titles(ctx.db.find("note", { kind = { ne = "a" } }))
    r.gte_lte = titles(ctx.db.find("note", { n = { gte = 1, lte = 5 } }, { sort = "n" }))
    r.null_ = titles(ctx.db.find("note", { code = { null = true } }, { sort = "title" }))
    r.eq = titles(ctx.db.find("note", { n = 5 }))
    r.eq_op = titles(ctx.db.find("note", { n = { eq = 9 } }))
    r.and_ = titles(ctx.db.find("note", { n = { gt = 0 }, kind = "a" }, { sort = "-title" }))
    r.paged = titles(ctx.db.find("note", nil, { sort = "n", limit = 1, offset = 1 }))
    r.by_id = titles(ctx.db.find("note", { id = b.id }))
    r.default_order = titles(ctx.db.find("note"))
    r.empty_where = #ctx.db.find("note", {})
    r.first = ctx.db.first("note", { title = "gamma" }).n
    r.first_default = ctx.db.first("note").title
    r.first_none = ctx.db.first("note", { title = "zeta" }) == nil
    r.count_all = ctx.db.count("note")
    r.count_where = ctx.db.count("note", { n = { lt = 6 } })
    r.count_type = math.type(r.count_all) == "integer"
    local u = ctx.db.update("note", a.id, { n = 2, title = "alpha2" })
    r.updated = { u.title, u.n, u.code }
    r.update_missing_is_null = ctx.db.update("note", ctx.uuid(), { n = 3 }) == nil
    local ok, e = pcall(function() return ctx.db.delete("note", a.id) end)
    if ok then r.delete_referenced = 0 else r.delete_referenced = e.status end
    r.deleted = ctx.db.delete("note", b.id)
    r.deleted_again = ctx.db.delete("note", b.id)
    r.gone_is_null = ctx.db.get("note", b.id) == nil
    r.after = titles(ctx.db.find("note", nil, { sort = "title" }))
    return { status = 201, body = r }
end

function args(ctx, req)
    local twin = ctx.plugin.name == "conf_rhai" and "conf_lua" or "conf_rhai"
    local out = {}
    local function try(name, f)
        local ok, e = pcall(f)
        if not ok then out[name] = e end
    end
    try("unknown_entity", function() return ctx.db.find("nope") end)
    try("table_name", function() return ctx.db.find(ctx.plugin.name .. "_note") end)
    try("unknown_field", function() return ctx.db.find("note", { bogus = 1 }) end)
    try("unknown_op", function() return ctx.db.find("note", { n = { around = 1 } }) end)
    try("tenant_where", function() return ctx.db.find("note", { tenant_id = ctx.tenant.id }) end)
    try("sql_where", function() return ctx.db.find("note", "1 = 1 OR title = title") end)
    try("bad_sort", function() return ctx.db.find("note", nil, { sort = "bogus" }) end)
    try("sql_sort", function() return ctx.db.find("note", nil, { sort = "title; DROP TABLE note" }) end)
    try("bad_limit", function() return ctx.db.find("note", nil, { limit = 0 }) end)
    try("unknown_opt", function() return ctx.db.find("note", nil, { page = 2 }) end)
    try("entity_type", function() return ctx.db.get(1, "x") end)
    try("fields_type", function() return ctx.db.insert("note", "title=x") end)
    try("twin", function() return ctx.db.count(twin .. ".note") end)
    try("base_unknown", function() return ctx.db.find("confbase_r.nope") end)
    return out
end

function reads(ctx, req)
    return {
        count = ctx.db.count("note"),
        found = #ctx.db.find("note"),
        first_is_null = ctx.db.first("note") == nil,
        got_is_null = ctx.db.get("note", ctx.uuid()) == nil,
    }
end

function write_in_get(ctx, req)
    return ctx.db.insert("note", { title = "from-get" })
end

function write_caught(ctx, req)
    local out = {}
    local function try(name, f)
        local ok, e = pcall(f)
        if ok then out[name] = false else out[name] = string.find(e, "read-only", 1, true) ~= nil end
    end
    try("insert", function() return ctx.db.insert("note", { title = "from-get" }) end)
    try("update", function() return ctx.db.update("note", ctx.uuid(), { n = 1 }) end)
    try("delete", function() return ctx.db.delete("note", ctx.uuid()) end)
    return out
end

function set_null(ctx, req)
    local a = ctx.db.insert("note", { title = "nullable", n = 1 })
    local u = ctx.db.update("note", a.id, { n = nil })
    return { n_is_null = u.n == nil }
end
"#;

const ROWS_LUA: &str = r#"
function handle(ctx, req)
    local n = math.tointeger(tonumber(req.params.n))
    for i = 0, n - 1 do ctx.db.insert("note", { title = "row-" .. i, label = "rows" }) end
    return { found = #ctx.db.find("note", { label = "rows" }) }
end

function explicit(ctx, req)
    ctx.db.insert("note", { title = "explicit", label = "rows" })
    local n = math.tointeger(tonumber(req.params.n))
    return { found = #ctx.db.find("note", { label = "rows" }, { limit = n }) }
end
"#;

const HOOKS_LUA: &str = r#"
function tag_ops(ctx, req)
    local made = ctx.db.insert("tag", { label = req.body.label })
    local changed = ctx.db.update("tag", made.id, { label = "lime" })
    local gone = ctx.db.delete("tag", made.id)
    return { made = made.label, changed = changed.label, gone = gone }
end

function tag_veto(ctx, req)
    ctx.db.insert("note", { title = "before-veto" })
    ctx.db.insert("tag", { label = req.body.label })
    return { kept = true }
end

function tag_veto_caught(ctx, req)
    ctx.db.insert("note", { title = "veto-caught" })
    if not pcall(function() return ctx.db.insert("tag", { label = "forbidden" }) end) then return { caught = true } end
    return { caught = false }
end

function base(ctx, req)
    local which = req.params.which
    ctx.db.insert("note", { title = "base-" .. which })
    local label = req.body.label .. "-from-" .. ctx.plugin.name
    local row = ctx.db.insert(which .. ".shared", { label = label })
    return { stamp = row.stamp, who = row.who, me = ctx.plugin.name, mine = ctx.db.count(which .. ".shared", { label = label }) }
end
"#;

/// Lines line up with tag.rhai.
const TAG_LUA: &str = r#"
function before_create(ctx, record)
    if record.label == "forbidden" then ctx.fail(400, "forbidden label") end
    if record.label == "explode" then error("before_create exploded") end
    if record.label == "as-is" then return nil end
    if record.label == "bad-return" then return "not a map" end
    record.label = string.upper(record.label)
    return record
end

function after_create(ctx, record)
    if record.label == "AFTER-FAIL" then ctx.fail(409, "after_create refused") end
    ctx.db.insert("event", { kind = "after_create", target = record.id, info = record.label })
end

function before_update(ctx, old, changes)
    if type(changes.label) == "string" then changes.label = string.upper(changes.label) end
    return changes
end

function after_update(ctx, old, updated)
    ctx.db.insert("event", { kind = "after_update", target = updated.id, info = old.label .. "->" .. updated.label })
end

function before_delete(ctx, record)
    if record.label == "KEEP" then ctx.fail(409, "this tag is kept") end
    ctx.db.insert("event", { kind = "before_delete", target = record.id, info = record.label })
end

function after_delete(ctx, record)
    ctx.db.insert("event", { kind = "after_delete", target = record.id, info = record.label })
end
"#;

const CHAIN_LUA: &str = r#"
function after_create(ctx, record)
    ctx.db.insert("chain", { depth = record.depth + 1 })
end
"#;

const SLOW_LUA: &str = r#"
function before_create(ctx, record)
    local i = 0
    while true do i = i + 1 end
end
"#;

/// Lines line up with plugin.rhai.
const PLUGIN_LUA: &str = r#"
local function who(ctx)
    if ctx.user == nil then return "system" else return ctx.user.email end
end

function on_install(ctx)
    ctx.db.insert("seed", { label = "installed for " .. ctx.tenant.slug, who = who(ctx) })
    if ctx.settings.explode then error("on_install exploded") end
end

function on_uninstall(ctx)
    ctx.db.insert("seed", { label = "uninstalled for " .. ctx.tenant.slug, who = who(ctx) })
end
"#;

const WILD_LUA: &str = r#"
local function deep(n)
    return 1 + deep(n + 1)
end

local function bounded(n)
    if n == 0 then return 0 end
    return 1 + bounded(n - 1)
end

local function memory(max)
    local a = {}
    for i = 0, 3999 do table.insert(a, string.rep("x", max.string - 16) .. i) end
    return a
end

function handle(ctx, req)
    local kind = req.params.kind
    local max = req.body
    ctx.db.insert("note", { title = "wild-" .. kind })
    if kind == "loop" then while true do end end
    if kind == "loop-caught" then while true do pcall(function() while true do end end) end end
    if kind == "busy-ok" then
        local sum = 0
        for i = 0, 999 do sum = sum + i end
        return { sum = sum }
    end
    if kind == "recurse" then return deep(0) end
    if kind == "recurse-caught" then
        if not pcall(deep, 0) then return { caught = true } end
    end
    if kind == "recurse-ok" then return { depth = bounded(20) } end
    if kind == "string-concat" then
        local s = "x"
        while #s <= 2 * max.string do s = s .. s end
        return { s = s }
    end
    if kind == "string-repeat" then return { len = #string.rep("x", 2 * max.string) } end
    if kind == "string-caught" then
        if not pcall(string.rep, "x", 2 * max.string) then return { caught = true } end
    end
    if kind == "array-push" then
        local a = {}
        while #a <= 2 * max.items do table.insert(a, 1) end
        return { len = #a }
    end
    if kind == "map-keys" then
        local m = {}
        for i = 0, 2 * max.items do m["k" .. i] = i end
        return m
    end
    if kind == "array-caught" then
        if not pcall(function() local a = {} while true do table.insert(a, 1) end end) then return { caught = true } end
    end
    if kind == "memory" then return { len = #memory(max) } end
    if kind == "memory-caught" then
        if not pcall(memory, max) then return { caught = true } end
    end
    if kind == "nested" then
        local outer = {}
        for i = 1, 20 do
            local inner = {}
            for j = 1, 400 do table.insert(inner, j) end
            table.insert(outer, inner)
        end
        return outer
    end
    if kind == "nested-ok" then
        local outer = {}
        for i = 1, 10 do
            local inner = {}
            for j = 1, 400 do table.insert(inner, j) end
            table.insert(outer, inner)
        end
        return outer
    end
    if kind == "spin" then local i = 0 while true do i = i + 1 end end
    if kind == "spin-caught" then while true do pcall(function() local i = 0 while true do i = i + 1 end end) end end
    if kind == "slow-hook" then ctx.db.insert("slow", { label = "slow" }) end
    if kind == "count-forever" then while true do pcall(function() return ctx.db.count("note") end) end end
    return { done = kind }
end
"#;

const ESCAPE_LUA: &str = r#"
function handle(ctx, req)
    local kind = req.params.kind
    ctx.db.insert("note", { title = "escape-" .. kind })
    local twin = ctx.plugin.name == "conf_rhai" and "conf_lua" or "conf_rhai"
    local escaped = {}
    local function try(name, f)
        if pcall(f) then table.insert(escaped, name) end
    end
    if kind == "files" then
        try("io.open", function() return io.open("/etc/passwd"):read("a") end)
        try("io.lines", function() return io.lines("/etc/passwd")() end)
        try("loadfile", function() return loadfile("/etc/passwd") end)
        try("dofile", function() return dofile("/etc/passwd") end)
        try("require", function() return require("io") end)
        try("package.loadlib", function() return package.loadlib("libc.so.6", "*") end)
    end
    if kind == "env" then
        try("os.getenv", function() return os.getenv("PATH") end)
        try("os.execute", function() return os.execute("true") end)
        try("io.popen", function() return io.popen("true") end)
        try("os.time", function() return os.time() end)
        try("socket", function() return require("socket").connect("127.0.0.1", 9) end)
        try("package.cpath", function() return package.cpath end)
    end
    if kind == "code" then
        try("load", function() return load("return 40 + 2")() end)
        try("_ENV.load", function() return _ENV["lo" .. "ad"]("return 40 + 2")() end)
        try("loadstring", function() return loadstring("return 40 + 2")() end)
        try("string.dump", function() return string.dump(function() end) end)
        try("debug", function() return debug.getinfo(1) end)
        try("collectgarbage", function() return collectgarbage("count") end)
        try("rawset", function() return rawset(_ENV, "x", 1) end)
        try("coroutine", function() return coroutine.create(function() end) end)
        try("string metatable", function() return setmetatable(getmetatable(""), {}) end)
    end
    if kind == "plugins" then
        try("find twin", function() return ctx.db.find(twin .. ".note") end)
        try("insert twin", function() return ctx.db.insert(twin .. ".note", { title = "smuggled" }) end)
        try("unknown base entity", function() return ctx.db.find("confbase_r.nope") end)
        try("own table name", function() return ctx.db.find(ctx.plugin.name .. "_note") end)
        try("base table name", function() return ctx.db.find("confbase_r_shared") end)
    end
    if kind == "tenants" then
        try("tenant_id where", function() return ctx.db.find("note", { tenant_id = ctx.tenant.id }) end)
        try("tenant_id insert", function() return ctx.db.insert("note", { title = "t", tenant_id = ctx.tenant.id }) end)
        try("raw sql where", function() return ctx.db.find("note", "1 = 1") end)
        try("sql in sort", function() return ctx.db.find("note", nil, { sort = "title; DROP TABLE x" }) end)
        try("sql in field", function() return ctx.db.find("note", { ["title = title OR 1"] = 1 }) end)
    end
    if kind == "uncaught" then return { content = io.open("/etc/passwd"):read("a") } end
    if kind == "eval" then return { answer = load("return 40 + 2")() } end
    return { escaped = escaped }
end
"#;

const STATE_LUA: &str = r#"
function plant(ctx, req)
    local planted = {}
    local function try(name, f)
        if pcall(f) then table.insert(planted, name) end
    end
    try("global", function() leaked_global = "planted" end)
    try("_ENV", function() _ENV.leaked_env = "planted" end)
    try("string", function() string.leaked = "planted" end)
    try("table", function() table.leaked = "planted" end)
    try("math", function() math.leaked = "planted" end)
    try("utf8", function() utf8.leaked = "planted" end)
    try("string metatable", function() getmetatable("").leaked = "planted" end)
    try("ctx.db", function() ctx.db.leaked = "planted" end)
    try("ctx.log", function() ctx.log.leaked = "planted" end)
    try("require", function() require("lib").leaked = "planted" end)
    return { planted = planted }
end

function read_state(ctx, req)
    local leaked = {}
    local function check(name, v)
        if v ~= nil then table.insert(leaked, name) end
    end
    check("global", leaked_global)
    check("_ENV", rawget(_ENV, "leaked_env"))
    check("string", string.leaked)
    check("table", table.leaked)
    check("math", math.leaked)
    check("utf8", utf8.leaked)
    check("string metatable", ("").leaked)
    check("ctx.db", ctx.db.leaked)
    check("ctx.log", ctx.log.leaked)
    return { leaked = leaked }
end
"#;

/// The Rhai twin's module; Lua has no loader that could reach this file.
const LIB_LUA: &str = r#"
function twice(x)
    return x * 2
end
"#;

const PEEK_LUA: &str = r#"
function handle(ctx, req)
    local id = req.params.id
    local title = req.body.title
    return {
        got_is_null = ctx.db.get("note", id) == nil,
        found = #ctx.db.find("note", { title = title }),
        count = ctx.db.count("note"),
        first_is_null = ctx.db.first("note", { id = id }) == nil,
        updated_is_null = ctx.db.update("note", id, { n = 99 }) == nil,
        deleted = ctx.db.delete("note", id),
        base_count = ctx.db.count("confbase_r.shared"),
    }
end
"#;

const LUA_SCRIPTS: &[(&str, &str)] = &[
    ("ping", PING_LUA),
    ("req", REQ_LUA),
    ("ctx", CTX_LUA),
    ("perm", PERM_LUA),
    ("ret", RET_LUA),
    ("fail", FAIL_LUA),
    ("fault", FAULT_LUA),
    ("db", DB_LUA),
    ("rows", ROWS_LUA),
    ("hooks", HOOKS_LUA),
    ("tag", TAG_LUA),
    ("chain", CHAIN_LUA),
    ("slow", SLOW_LUA),
    ("plugin", PLUGIN_LUA),
    ("wild", WILD_LUA),
    ("escape", ESCAPE_LUA),
    ("state", STATE_LUA),
    ("lib", LIB_LUA),
    ("peek", PEEK_LUA),
];

// ---------------------------------------------------------------- the case model

/// Who sends a case's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The tenant's admin (SUPER_ADMIN: holds every permission).
    Admin,
    /// A user with the ADMIN role (the twins grant it USE and SECRET).
    Manager,
    /// A user with the VIEWER role (USE only).
    Viewer,
    /// No token.
    Anonymous,
}

/// Which tenant a setup step or check talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tenant {
    /// The case's own (fresh) tenant.
    Own,
    /// A second fresh tenant of the case.
    Other,
}

/// A request before the case's (as that tenant's admin; must be 2xx). The
/// `id` of its JSON answer becomes `$id`.
#[derive(Clone, Copy)]
struct Step {
    tenant: Tenant,
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
}

const fn step(method: &'static str, path: &'static str, body: Option<&'static str>) -> Step {
    Step {
        tenant: Tenant::Own,
        method,
        path,
        body,
    }
}

const fn other(method: &'static str, path: &'static str, body: Option<&'static str>) -> Step {
    Step {
        tenant: Tenant::Other,
        method,
        path,
        body,
    }
}

/// A problem's `detail`.
#[derive(Clone, Copy)]
enum Detail {
    Any,
    Exact(&'static str),
    Contains(&'static str),
}

/// What the answer's body must be. Texts are JSON with placeholders (see
/// [`Env::fill`]).
#[derive(Clone, Copy)]
enum Expect {
    /// Anything (the status and the comparison between runtimes still apply).
    Any,
    /// Exactly this JSON.
    Json(&'static str),
    /// Exactly this JSON per runtime: a documented difference (`nil` fields
    /// left out, an empty table is `[]`); the bodies are not compared.
    PerLang {
        rhai: &'static str,
        lua: &'static str,
    },
    /// Exactly this text (`""`: no body).
    Raw(&'static str),
    /// A predicate.
    Pred(fn(&Env, &Value) -> Result<(), String>),
    /// A problem (RFC 9457) with this detail, naming this plugin (`None`:
    /// not checked) and with `errors` naming these (field, code) pairs
    /// (code `""`: any).
    Problem {
        detail: Detail,
        plugin: Option<&'static str>,
        errors: &'static [(&'static str, &'static str)],
    },
    /// A list answer (`items`) projected onto `fields`, in any order.
    Items {
        fields: &'static [&'static str],
        expect: &'static str,
    },
}

const fn problem(detail: Detail) -> Expect {
    Expect::Problem {
        detail,
        plugin: Some("$plugin"),
        errors: &[],
    }
}

const fn invalid(errors: &'static [(&'static str, &'static str)]) -> Expect {
    Expect::Problem {
        detail: Detail::Any,
        plugin: None,
        errors,
    }
}

/// A script fault's message in the plugin's health.
#[derive(Clone, Copy)]
enum Msg {
    Any,
    /// Contains this text (case-insensitive); may differ between runtimes.
    Contains(&'static str),
    /// Contains this text and is the same in both runtimes.
    Same(&'static str),
    /// Contains the first text (Rhai) / the second (Lua), case-insensitive.
    PerLang(&'static str, &'static str),
}

/// The script fault a case must cause: counted once in the health of the
/// plugin (`script_errors[kind]`), and described by `last_error`.
#[derive(Clone, Copy)]
struct Fault {
    kind: &'static str,
    /// Whose health (`None`: the twin's own).
    plugin: Option<&'static str>,
    /// The stem of the script file `last_error.file` names.
    file: Option<&'static str>,
    /// Text on the line `last_error.line` must name (column: an integer for
    /// Rhai, null for Lua, as SCRIPTING.md says).
    line: Option<&'static str>,
    message: Msg,
}

const fn fault(kind: &'static str) -> Fault {
    Fault {
        kind,
        plugin: None,
        file: None,
        line: None,
        message: Msg::Any,
    }
}

impl Fault {
    const fn file(self, stem: &'static str) -> Fault {
        Fault {
            file: Some(stem),
            ..self
        }
    }

    const fn line(self, marker: &'static str) -> Fault {
        Fault {
            line: Some(marker),
            ..self
        }
    }

    const fn msg(self, message: Msg) -> Fault {
        Fault { message, ..self }
    }

    const fn of(self, plugin: &'static str) -> Fault {
        Fault {
            plugin: Some(plugin),
            ..self
        }
    }
}

/// A post-condition, checked after the case's request.
#[derive(Clone, Copy)]
enum Check {
    /// `GET path` (a list) as the tenant's admin: the items projected onto
    /// `fields`, in any order, are exactly `expect`.
    Rows {
        tenant: Tenant,
        path: &'static str,
        fields: &'static [&'static str],
        expect: &'static str,
        /// What Lua leaves instead, where a documented difference says so.
        lua: Option<&'static str>,
    },
    /// A request as the own tenant's admin answers this status.
    Call {
        method: &'static str,
        path: &'static str,
        body: Option<&'static str>,
        status: u16,
    },
    /// `GET /api/plugins/$plugin` shows this status for the own tenant.
    PluginStatus(&'static str),
    /// The case's request took this long.
    Elapsed { min_ms: u64, max_ms: u64 },
    /// The answer has this header.
    Header(&'static str, &'static str),
    /// The answer's body does not contain this text.
    NotInBody(&'static str),
}

const fn rows(path: &'static str, fields: &'static [&'static str], expect: &'static str) -> Check {
    Check::Rows {
        tenant: Tenant::Own,
        path,
        fields,
        expect,
        lua: None,
    }
}

/// `rows`, with what Lua leaves per a documented difference.
const fn rows_per_lang(
    path: &'static str,
    fields: &'static [&'static str],
    rhai: &'static str,
    lua: &'static str,
) -> Check {
    Check::Rows {
        tenant: Tenant::Own,
        path,
        fields,
        expect: rhai,
        lua: Some(lua),
    }
}

/// No note left (of a failed request) with this title.
const fn no_note(path: &'static str) -> Check {
    rows(path, &["title"], "[]")
}

/// The plugin still answers (after a runaway).
const HEALTHY: Check = Check::Call {
    method: "GET",
    path: "/ping",
    body: None,
    status: 200,
};

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    profile: Profile,
    who: Who,
    setup: &'static [Step],
    method: &'static str,
    /// Under the plugin's prefix (`/api/<plugin>`), unless it starts `/api/`.
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Option<&'static str>,
    status: u16,
    expect: Expect,
    fault: Option<Fault>,
    after: &'static [Check],
    /// Why the bodies differ between the runtimes (documented); `None`:
    /// they must be equal.
    diverges: Option<&'static str>,
}

impl Case {
    const fn new(name: &'static str, method: &'static str, path: &'static str) -> Case {
        Case {
            name,
            profile: Profile::Limits,
            who: Who::Admin,
            setup: &[],
            method,
            path,
            headers: &[],
            body: None,
            status: 200,
            expect: Expect::Any,
            fault: None,
            after: &[],
            diverges: None,
        }
    }

    const fn body(self, body: &'static str) -> Case {
        Case {
            body: Some(body),
            ..self
        }
    }

    const fn status(self, status: u16) -> Case {
        Case { status, ..self }
    }

    const fn expect(self, expect: Expect) -> Case {
        Case { expect, ..self }
    }

    const fn json(self, text: &'static str) -> Case {
        self.expect(Expect::Json(text))
    }

    const fn fault(self, fault: Fault) -> Case {
        Case {
            fault: Some(fault),
            ..self
        }
    }

    const fn after(self, after: &'static [Check]) -> Case {
        Case { after, ..self }
    }

    const fn setup(self, setup: &'static [Step]) -> Case {
        Case { setup, ..self }
    }

    const fn who(self, who: Who) -> Case {
        Case { who, ..self }
    }

    const fn headers(self, headers: &'static [(&'static str, &'static str)]) -> Case {
        Case { headers, ..self }
    }

    const fn profile(self, profile: Profile) -> Case {
        Case { profile, ..self }
    }

    const fn diverges(self, why: &'static str) -> Case {
        Case {
            diverges: Some(why),
            ..self
        }
    }

    fn uses_other_tenant(&self) -> bool {
        self.setup.iter().any(|s| s.tenant == Tenant::Other)
            || self.after.iter().any(|c| {
                matches!(
                    c,
                    Check::Rows {
                        tenant: Tenant::Other,
                        ..
                    }
                )
            })
    }
}

const fn get(name: &'static str, path: &'static str) -> Case {
    Case::new(name, "GET", path)
}

const fn post(name: &'static str, path: &'static str) -> Case {
    Case::new(name, "POST", path)
}

/// The body of every `/wild/{kind}` request: the limits the scripts aim at.
const WILD: &str = r#"{"string": $max_string, "items": $max_items}"#;

// ---------------------------------------------------------------- the cases

const CASES: &[Case] = &[
    // ------------------------------------------------ req, JSON in and out
    post("req_has_method_path_params_query_headers_and_body", "/echo/one/two?q=a%20b&n=1")
        .headers(&[("X-Conf", "Yes Please")])
        .body(r#"{"k": [1, {"z": true}]}"#)
        .json(r#"{"method": "POST", "path": "/api/$plugin/echo/one/two",
                  "params": {"a": "one", "b": "two"}, "query": {"q": "a b", "n": "1"},
                  "has_authorization": false, "lower_case": true, "header": "Yes Please",
                  "body_kind": "object", "body": {"k": [1, {"z": true}]}}"#),
    get("req_body_is_null_without_a_body", "/echo/x/y?q=1")
        .headers(&[("x-conf", "v")])
        .json(r#"{"method": "GET", "path": "/api/$plugin/echo/x/y",
                  "params": {"a": "x", "b": "y"}, "query": {"q": "1"},
                  "has_authorization": false, "lower_case": true, "header": "v",
                  "body_kind": "null"}"#),
    post("json_integers_stay_integers_and_floats_floats", "/types")
        .body(r#"{"i": 3, "neg": -7, "big": 9007199254740993, "max": 9223372036854775807,
                  "f": 2.5, "whole": 1.0, "exp": 1e300, "huge": 18446744073709551615,
                  "s": "héllo ✓", "t": true, "no": false, "list": [1, "a", true, 2.5],
                  "obj": {"k": "v", "n": 1}, "nested": [{"a": [1, 2]}, {"b": {"c": "d"}}]}"#)
        .json(r#"{"kinds": {"i": "integer", "neg": "integer", "big": "integer", "max": "integer",
                            "f": "float", "whole": "float", "exp": "float", "huge": "float",
                            "s": "string", "t": "bool", "no": "bool", "list": "array",
                            "obj": "object", "nested": "array"},
                  "echo": {"i": 3, "neg": -7, "big": 9007199254740993, "max": 9223372036854775807,
                           "f": 2.5, "whole": 1.0, "exp": 1e300, "huge": 18446744073709551615.0,
                           "s": "héllo ✓", "t": true, "no": false, "list": [1, "a", true, 2.5],
                           "obj": {"k": "v", "n": 1}, "nested": [{"a": [1, 2]}, {"b": {"c": "d"}}]},
                  "i_plus_1": 4, "big_plus_1": 9007199254740994, "f_times_2": 5.0,
                  "whole_plus_half": 1.5, "chars": 7, "list_len": 4, "obj_k": "v"}"#),
    post("json_null_arrives_as_unit_or_nil", "/nulls")
        .body(r#"{"a": null, "o": {"b": null}}"#)
        .json(r#"{"a_is_null": true, "missing_is_null": true, "nested_is_null": true}"#),
    get("json_script_made_values", "/made").json(
        r#"{"int": 7, "neg": -3, "half": 0.5, "four": 4.0, "text": "plain", "yes": true,
            "list": [1, 2.5, "x", false], "map": {"k": [{"deep": 1}]}}"#,
    ),
    post("json_round_trip_of_plain_values", "/roundtrip")
        .body(r#"{"a": [1, 2, {"b": "c"}], "n": -0.25, "t": true, "big": 9223372036854775807, "s": ""}"#)
        .json(r#"{"a": [1, 2, {"b": "c"}], "n": -0.25, "t": true, "big": 9223372036854775807, "s": ""}"#),
    post("json_round_trip_of_null_and_empty_containers", "/roundtrip")
        .body(r#"{"keep": 1, "gone": null, "empty_obj": {}, "empty_list": [], "holes": [1, null, 3]}"#)
        .expect(Expect::PerLang {
            rhai: r#"{"keep": 1, "gone": null, "empty_obj": {}, "empty_list": [], "holes": [1, null, 3]}"#,
            lua: r#"{"keep": 1, "empty_obj": [], "empty_list": [], "holes": {"1": 1, "3": 3}}"#,
        })
        .diverges("SCRIPTING.md: null is nil and nil fields are left out; an empty table is []; a table without keys 1..n is an object"),
    get("json_script_made_empty_containers", "/made-empty")
        .expect(Expect::PerLang {
            rhai: r#"{"empty_list": [], "empty_map": {}, "nested": {"inner": {}}}"#,
            lua: r#"{"empty_list": [], "empty_map": [], "nested": {"inner": []}}"#,
        })
        .diverges("SCRIPTING.md: an empty Lua table becomes []"),
    // ------------------------------------------------ return values
    get("return_envelope_sets_status_body_and_headers", "/return/envelope")
        .status(201)
        .json(r#"{"made": true}"#)
        .after(&[Check::Header("x-conf", "made")]),
    get("return_envelope_with_a_4xx_status", "/return/teapot")
        .status(418)
        .json(r#"{"short": "stout"}"#),
    get("return_envelope_without_body", "/return/empty")
        .status(204)
        .expect(Expect::Raw("")),
    get("return_record_with_a_text_status_is_a_200", "/return/record")
        .json(r#"{"status": "active", "name": "x"}"#),
    get("return_map_with_other_keys_is_a_200", "/return/extra")
        .json(r#"{"status": 202, "extra": 1}"#),
    get("return_status_out_of_range_is_a_200", "/return/out-of-range")
        .json(r#"{"status": 700, "body": 1}"#),
    get("return_float_status_is_not_an_envelope", "/return/float-status")
        .json(r#"{"status": 201.0, "body": 1}"#),
    get("return_array", "/return/array").json("[1, 2, 3]"),
    get("return_string", "/return/string").json(r#""plain""#),
    get("return_integer", "/return/number").json("7"),
    get("return_float", "/return/float").json("2.5"),
    get("return_bool", "/return/bool").json("false"),
    get("return_null", "/return/null").expect(Expect::Raw("null")),
    get("return_text_body_with_a_content_type", "/return/text-body")
        .expect(Expect::Raw("a,b"))
        .after(&[Check::Header("content-type", "text/csv")]),
    get("return_after_ctx_fail_is_the_failure", "/return/zzz")
        .status(404)
        .expect(problem(Detail::Exact("unknown kind zzz"))),
    // ------------------------------------------------ ctx members
    get("ctx_members_for_the_super_admin", "/ctx").expect(Expect::Pred(ctx_members)),
    get("ctx_members_for_an_admin", "/ctx")
        .who(Who::Manager)
        .expect(Expect::Pred(ctx_members)),
    get("ctx_members_for_a_viewer", "/ctx")
        .who(Who::Viewer)
        .expect(Expect::Pred(ctx_members)),
    get("ctx_settings_follow_the_tenants_settings", "/ctx")
        .setup(&[step(
            "PUT",
            "/api/plugins/$plugin/settings",
            Some(r#"{"limit": 7, "greeting": "hej", "ratio": 2.5}"#),
        )])
        .expect(Expect::Pred(ctx_settings_changed)),
    post("ctx_log_takes_text_maps_and_numbers", "/log")
        .json(r#"{"info": true, "warn": true, "error": true}"#),
    post("ctx_cannot_be_assigned", "/ctx-readonly")
        .status(500)
        .fault(fault("runtime").file("ctx"))
        .after(&[no_note("/note?title=readonly")]),
    // CONTRACT: ctx is the host's view of the request; a script cannot
    // replace its members (Rhai refuses every assignment).
    post("ctx_members_stay_after_they_were_read", "/ctx-readonly-caught")
        .json(r#"{"blocked": ["user", "tenant", "db"], "email": "$user_email", "tenant": "$slug"}"#),
    // ------------------------------------------------ permissions
    get("ctx_require_passes_when_held", "/secret").json(r#"{"secret": 42}"#),
    get("ctx_require_is_a_403_naming_the_permission", "/secret")
        .who(Who::Viewer)
        .status(403)
        .expect(problem(Detail::Exact("missing permission $PREFIX_SECRET"))),
    post("ctx_require_rolls_back_earlier_writes", "/require-never")
        .who(Who::Manager)
        .status(403)
        .expect(problem(Detail::Contains("$PREFIX_NEVER")))
        .after(&[no_note("/note")]),
    post("ctx_require_cannot_be_caught", "/require-caught")
        .who(Who::Manager)
        .status(403)
        .expect(problem(Detail::Contains("$PREFIX_NEVER")))
        .after(&[no_note("/note")]),
    post("ctx_can_and_require_hold_everything_for_the_super_admin", "/require-never")
        .json(r#"{"held": true}"#)
        .after(&[rows("/note", &["title"], r#"["require-never"]"#)]),
    get("route_permission_is_a_403_naming_it", "/admin-only")
        .who(Who::Viewer)
        .status(403)
        .expect(Expect::Problem {
            detail: Detail::Contains("$PREFIX_SECRET"),
            plugin: None,
            errors: &[],
        }),
    get("route_permission_held", "/admin-only")
        .who(Who::Manager)
        .json(r#"{"admin": true}"#),
    get("route_needs_a_token", "/ping")
        .who(Who::Anonymous)
        .status(401)
        .expect(invalid(&[])),
    get("route_of_an_uninstalled_plugin_is_a_403", "/ping")
        .setup(&[step("POST", "/api/plugins/$plugin/uninstall", None)])
        .status(403)
        .expect(Expect::Problem {
            detail: Detail::Contains("not installed"),
            plugin: None,
            errors: &[],
        }),
    Case::new("route_wrong_method_is_a_405", "DELETE", "/ping")
        .status(405)
        .expect(invalid(&[])),
    // ------------------------------------------------ ctx.fail and validation
    post("ctx_fail_answers_its_status_and_rolls_back", "/fail/fail")
        .status(422)
        .expect(problem(Detail::Exact("the script says no")))
        .after(&[no_note("/note")]),
    post("ctx_fail_cannot_be_caught", "/fail/fail-caught")
        .status(418)
        .expect(problem(Detail::Exact("cannot be caught")))
        .after(&[no_note("/note")]),
    post("ctx_fail_with_a_number_as_message", "/fail/fail-int-message")
        .status(400)
        .expect(problem(Detail::Exact("42")))
        .after(&[no_note("/note")]),
    // CONTRACT: ctx.fail takes a 4xx integer status (as an envelope's
    // status must be an integer); 422.0 is a float, so the call is a
    // script error (Rhai refuses it).
    post("ctx_fail_status_must_be_an_integer", "/fail/fail-float-status")
        .status(500)
        .fault(fault("runtime").file("fail").msg(Msg::Contains("ctx.fail: status must be an integer")))
        .after(&[no_note("/note")]),
    post("invalid_missing_required_field", "/fail/invalid")
        .status(400)
        .expect(invalid(&[("title", "required")]))
        .after(&[no_note("/note")]),
    post("invalid_too_long", "/fail/too-long")
        .status(400)
        .expect(invalid(&[("title", "max_length")]))
        .after(&[no_note("/note")]),
    post("invalid_wrong_type", "/fail/wrong-type")
        .status(400)
        .expect(invalid(&[("n", "type")]))
        .after(&[no_note("/note")]),
    post("invalid_float_for_an_integer_field", "/fail/float-for-int")
        .status(400)
        .expect(invalid(&[("n", "")]))
        .after(&[no_note("/note")]),
    post("invalid_unknown_field", "/fail/unknown-field")
        .status(400)
        .expect(invalid(&[("bogus", "unknown")]))
        .after(&[no_note("/note")]),
    post("invalid_tenant_id_is_never_accepted", "/fail/tenant-field")
        .status(400)
        .expect(invalid(&[("tenant_id", "read_only")]))
        .after(&[no_note("/note")]),
    post("invalid_ref_to_no_row", "/fail/bad-ref")
        .status(400)
        .expect(invalid(&[("parent", "ref")]))
        .after(&[no_note("/note")]),
    post("invalid_enum_value", "/fail/bad-enum")
        .status(400)
        .expect(invalid(&[("kind", "enum")]))
        .after(&[no_note("/note")]),
    post("conflict_unique_is_a_409_and_rolls_back", "/fail/conflict")
        .status(409)
        .expect(invalid(&[]))
        .after(&[no_note("/note")]),
    post("invalid_update_rolls_back", "/fail/update-invalid")
        .status(400)
        .expect(invalid(&[("n", "type")]))
        .after(&[no_note("/note")]),
    post("invalid_caught_keeps_other_writes", "/fail/invalid-caught")
        .expect(Expect::Pred(caught_invalid))
        .after(&[rows("/note", &["title"], r#"["invalid-caught"]"#)]),
    post("conflict_caught_keeps_other_writes", "/fail/conflict-caught")
        .expect(Expect::Pred(caught_conflict))
        .after(&[rows("/note", &["title"], r#"["conflict-caught", "d1"]"#)]),
    post("invalid_rethrown_is_the_requests_400", "/fail/invalid-rethrown")
        .status(400)
        .expect(invalid(&[("title", "required")]))
        .after(&[no_note("/note")]),
    post("a_clean_write_commits", "/fail/ok")
        .json(r#"{"kept": "ok"}"#)
        .after(&[rows("/note", &["title"], r#"["ok"]"#)]),
    // ------------------------------------------------ runtime errors, located
    post("fault_thrown_text", "/fault/throw")
        .status(500)
        .fault(fault("runtime").file("fault").line("thrown on purpose").msg(Msg::Same("thrown on purpose")))
        .after(&[no_note("/note"), Check::NotInBody("thrown on purpose")]),
    post("fault_undefined_function", "/fault/undefined")
        .status(500)
        .fault(fault("runtime").file("fault").line("no_such_function").msg(Msg::Contains("no_such_function")))
        .after(&[no_note("/note")]),
    post("fault_index_of_nothing", "/fault/nil-index")
        .status(500)
        .fault(fault("runtime").file("fault").line("m.field.deeper"))
        .after(&[no_note("/note")]),
    post("fault_host_api_error", "/fault/host")
        .status(500)
        .fault(
            fault("runtime")
                .file("fault")
                .line("no_such_entity")
                .msg(Msg::Same("ctx.db.get: unknown entity \"no_such_entity\"")),
        )
        .after(&[no_note("/note")]),
    // CONTRACT: "the log and the plugin's health get the message with
    // file, line and column" — also when the thrown value is a map/table.
    post("fault_thrown_value", "/fault/throw-value")
        .status(500)
        .fault(fault("runtime").file("fault").line("code").msg(Msg::Same(r#"{"code":7}"#)))
        .after(&[no_note("/note")]),
    post("fault_in_a_helper_function", "/fault/helper")
        .status(500)
        .fault(fault("runtime").file("fault").line("helper failed").msg(Msg::Same("helper failed")))
        .after(&[no_note("/note")]),
    post("fault_ctx_fail_outside_4xx", "/fault/bad-fail")
        .status(500)
        .fault(
            fault("runtime")
                .file("fault")
                .line("not a client error")
                .msg(Msg::Same("ctx.fail: status must be an integer from 400 to 499 (got 200)")),
        )
        .after(&[no_note("/note")]),
    post("fault_return_value_that_is_not_json", "/fault/not-json")
        .status(500)
        .fault(fault("runtime").file("fault").msg(Msg::Contains("handle returned a value that is not JSON")))
        .after(&[no_note("/note")]),
    post("fault_reserved_response_header", "/fault/bad-header")
        .status(500)
        .fault(fault("runtime").file("fault").msg(Msg::Same("handle: response header \"content-length\" is set by the server, not by scripts")))
        .after(&[no_note("/note")]),
    post("fault_type_error", "/fault/type")
        .status(500)
        .fault(fault("runtime").file("fault").line("\"text\" - 1"))
        .after(&[no_note("/note")]),
    // ------------------------------------------------ ctx.db
    post("db_crud_find_first_count_and_where_operators", "/db")
        .status(201)
        .json(r#"{"id_kind": true, "created": true, "n": 1, "r": 0.5, "flag": true,
                  "data": {"k": [1, 2]}, "kind_default": "a", "parent_ok": true, "got": "beta",
                  "missing_is_null": true, "big": ["gamma", "beta"], "like": ["gamma"],
                  "in_": ["alpha", "gamma"], "ne": ["beta"], "gte_lte": ["alpha", "beta"],
                  "null_": ["beta", "gamma"], "eq": ["beta"], "eq_op": ["gamma"],
                  "and_": ["gamma", "alpha"], "paged": ["beta"], "by_id": ["beta"],
                  "default_order": ["gamma", "beta", "alpha"], "empty_where": 3, "first": 9,
                  "first_default": "gamma", "first_none": true, "count_all": 3, "count_where": 2,
                  "count_type": true, "updated": ["alpha2", 2, "A"], "update_missing_is_null": true,
                  "delete_referenced": 409, "deleted": true, "deleted_again": false,
                  "gone_is_null": true, "after": ["alpha2", "gamma"]}"#)
        .after(&[rows("/note", &["title", "n", "code"], r#"[["alpha2", 2, "A"], ["gamma", 9, null]]"#)]),
    post("db_bad_arguments_are_catchable_errors", "/db-args")
        .expect(Expect::Pred(db_args))
        .diverges("a caught error string carries Lua's \"file:line: \" prefix (error(msg, 2)); Rhai's has none"),
    get("db_reads_in_a_get_route", "/db-read")
        .json(r#"{"count": 0, "found": 0, "first_is_null": true, "got_is_null": true}"#),
    get("db_write_in_a_get_route_is_an_error", "/db-write")
        .status(500)
        .fault(fault("runtime").file("db").msg(Msg::Contains("read-only transaction")))
        .after(&[no_note("/note")]),
    get("db_write_in_a_get_route_caught", "/db-write-caught")
        .json(r#"{"insert": true, "update": true, "delete": true}"#),
    post("db_update_to_null", "/db-null")
        .expect(Expect::PerLang {
            rhai: r#"{"n_is_null": true}"#,
            lua: r#"{"n_is_null": false}"#,
        })
        .diverges("SCRIPTING.md: nil fields are left out, so a Lua script cannot set a field to null"),
    post("db_find_within_the_row_limit", "/rows/5")
        .json(r#"{"found": 5}"#)
        .after(&[rows("/note?label=rows", &["label"], r#"["rows", "rows", "rows", "rows", "rows"]"#)]),
    post("db_find_over_the_row_limit", "/rows/6")
        .status(500)
        .fault(fault("limit").msg(Msg::Same("matches more than 5 rows")))
        .after(&[no_note("/note")]),
    post("db_find_with_opts_limit_over_the_row_limit", "/rows-limit/6")
        .status(500)
        .fault(fault("limit").msg(Msg::Same("opts.limit 6 is above the limit of 5 rows per find")))
        .after(&[no_note("/note")]),
    post("db_find_with_opts_limit_within", "/rows-limit/5").json(r#"{"found": 1}"#),
    // ------------------------------------------------ entity hooks
    post("hook_rest_create_runs_before_and_after_create", "/tag")
        .body(r#"{"label": "red"}"#)
        .status(201)
        .expect(Expect::Pred(label_is_red))
        .after(&[rows("/event", &["kind", "info"], r#"[["after_create", "RED"]]"#)]),
    Case::new("hook_rest_update_runs_before_and_after_update", "PATCH", "/tag/$id")
        .setup(&[step("POST", "/tag", Some(r#"{"label": "blue"}"#))])
        .body(r#"{"label": "green"}"#)
        .expect(Expect::Pred(label_is_green))
        .after(&[rows(
            "/event",
            &["kind", "info"],
            r#"[["after_create", "BLUE"], ["after_update", "BLUE->GREEN"]]"#,
        )]),
    Case::new("hook_rest_delete_runs_before_and_after_delete", "DELETE", "/tag/$id")
        .setup(&[step("POST", "/tag", Some(r#"{"label": "gone"}"#))])
        .status(204)
        .expect(Expect::Raw(""))
        .after(&[
            rows(
                "/event",
                &["kind", "info"],
                r#"[["after_create", "GONE"], ["before_delete", "GONE"], ["after_delete", "GONE"]]"#,
            ),
            rows("/tag", &["label"], "[]"),
        ]),
    post("hook_script_writes_run_the_same_hooks", "/tag-ops")
        .body(r#"{"label": "green"}"#)
        .json(r#"{"made": "GREEN", "changed": "LIME", "gone": true}"#)
        .after(&[rows(
            "/event",
            &["kind", "info"],
            r#"[["after_create", "GREEN"], ["after_update", "GREEN->LIME"],
                ["before_delete", "LIME"], ["after_delete", "LIME"]]"#,
        )]),
    post("hook_veto_of_a_rest_create", "/tag")
        .body(r#"{"label": "forbidden"}"#)
        .status(400)
        .expect(problem(Detail::Exact("forbidden label")))
        .after(&[rows("/tag", &["label"], "[]"), rows("/event", &["kind"], "[]")]),
    post("hook_veto_of_a_script_write_rolls_back", "/tag-veto")
        .body(r#"{"label": "forbidden"}"#)
        .status(400)
        .expect(problem(Detail::Exact("forbidden label")))
        .after(&[no_note("/note"), rows("/tag", &["label"], "[]")]),
    post("hook_veto_cannot_be_caught", "/tag-veto-caught")
        .status(400)
        .expect(problem(Detail::Exact("forbidden label")))
        .after(&[no_note("/note")]),
    Case::new("hook_veto_of_a_delete_keeps_the_row", "DELETE", "/tag/$id")
        .setup(&[step("POST", "/tag", Some(r#"{"label": "keep"}"#))])
        .status(409)
        .expect(problem(Detail::Exact("this tag is kept")))
        .after(&[
            rows("/tag", &["label"], r#"["KEEP"]"#),
            rows("/event", &["kind", "info"], r#"[["after_create", "KEEP"]]"#),
        ]),
    post("hook_failing_after_create_drops_the_row", "/tag")
        .body(r#"{"label": "after-fail"}"#)
        .status(409)
        .expect(problem(Detail::Exact("after_create refused")))
        .after(&[rows("/tag", &["label"], "[]")]),
    post("hook_runtime_error", "/tag")
        .body(r#"{"label": "explode"}"#)
        .status(500)
        .fault(fault("runtime").file("tag").line("before_create exploded").msg(Msg::Same("before_create exploded")))
        .after(&[rows("/tag", &["label"], "[]")]),
    post("hook_returning_nothing_keeps_the_record", "/tag")
        .body(r#"{"label": "as-is"}"#)
        .status(201)
        .expect(Expect::Pred(label_is_as_is))
        .after(&[rows("/event", &["kind", "info"], r#"[["after_create", "as-is"]]"#)]),
    post("hook_returning_a_non_map_is_an_error", "/tag")
        .body(r#"{"label": "bad-return"}"#)
        .status(500)
        .fault(fault("runtime").file("tag").msg(Msg::Same("before_create must return the (changed) map of fields or nothing")))
        .after(&[rows("/tag", &["label"], "[]")]),
    // CONTRACT: API.md — PATCH changes exactly the given fields; a field
    // given as null is cleared, whether or not the entity has a
    // before_update hook that returns the changes it was given.
    Case::new("hook_before_update_passes_a_null_change_through", "PATCH", "/tag/$id")
        .setup(&[step("POST", "/tag", Some(r#"{"label": "n", "note": "x"}"#))])
        .body(r#"{"note": null}"#)
        .expect(Expect::Pred(note_is_null))
        .after(&[rows("/tag", &["label", "note"], r#"[["N", null]]"#)]),
    // CONTRACT: API.md — PATCH changes only the given fields; an empty
    // PATCH changes nothing and answers the record.
    Case::new("hook_before_update_with_no_changes", "PATCH", "/tag/$id")
        .setup(&[step("POST", "/tag", Some(r#"{"label": "same"}"#))])
        .body("{}")
        .expect(Expect::Pred(label_is_same))
        .after(&[rows("/tag", &["label"], r#"["SAME"]"#)]),
    // A json field crosses a hook as any value does: through Lua, an empty
    // object comes back as [] and a null inside it is left out.
    post("hook_before_create_passes_a_json_field_through", "/tag")
        .body(r#"{"label": "j", "data": {"empty": {}, "list": [], "nul": null, "n": 1}}"#)
        .status(201)
        .expect(Expect::Pred(data_passed_through))
        .after(&[rows_per_lang(
            "/tag",
            &["data"],
            r#"[{"empty": {}, "list": [], "nul": null, "n": 1}]"#,
            r#"[{"empty": [], "list": [], "n": 1}]"#,
        )])
        .diverges("SCRIPTING.md: an empty Lua table becomes []; nil fields are left out"),
    post("hook_recursion_stops_at_depth_8", "/chain")
        .body(r#"{"depth": 0}"#)
        .status(500)
        .fault(fault("limit").file("chain").msg(Msg::Same("hook recursion limit")))
        .after(&[rows("/chain", &["depth"], "[]")]),
    post("cross_plugin_write_runs_a_rhai_hook", "/base/confbase_r")
        .body(r#"{"label": "hello"}"#)
        .json(r#"{"stamp": "confbase_r", "who": "$user_email", "me": "$plugin", "mine": 1}"#)
        .after(&[rows(
            "/api/confbase_r/shared?label=hello-from-$plugin",
            &["label", "stamp"],
            r#"[["hello-from-$plugin", "confbase_r"]]"#,
        )]),
    post("cross_plugin_write_runs_a_lua_hook", "/base/confbase_l")
        .body(r#"{"label": "hello"}"#)
        .json(r#"{"stamp": "confbase_l", "who": "$user_email", "me": "$plugin", "mine": 1}"#)
        .after(&[rows(
            "/api/confbase_l/shared?label=hello-from-$plugin",
            &["label", "stamp"],
            r#"[["hello-from-$plugin", "confbase_l"]]"#,
        )]),
    post("cross_plugin_hook_veto_rolls_back", "/base/confbase_l")
        .body(r#"{"label": "veto"}"#)
        .status(409)
        .expect(Expect::Problem {
            detail: Detail::Exact("base says no"),
            plugin: Some("confbase_l"),
            errors: &[],
        })
        .after(&[
            no_note("/note"),
            rows("/api/confbase_l/shared?label=veto-from-$plugin", &["label"], "[]"),
        ]),
    post("cross_plugin_hook_error_is_the_hooks_fault", "/base/confbase_r")
        .body(r#"{"label": "explode"}"#)
        .status(500)
        .fault(
            fault("runtime")
                .of("confbase_r")
                .file("shared")
                .line("base hook exploded")
                .msg(Msg::Same("base hook exploded")),
        )
        .after(&[no_note("/note")]),
    // ------------------------------------------------ lifecycle hooks
    get("lifecycle_on_install_ran_at_default_install", "/seed").expect(Expect::Items {
        fields: &["label", "who"],
        expect: r#"[["installed for $slug", "system"]]"#,
    }),
    post("lifecycle_uninstall_and_install_run_their_hooks", "/api/plugins/$plugin/install")
        .setup(&[step("POST", "/api/plugins/$plugin/uninstall", None)])
        .expect(Expect::Pred(installed))
        .after(&[rows(
            "/seed",
            &["label", "who"],
            r#"[["installed for $slug", "system"], ["uninstalled for $slug", "$user_email"],
                ["installed for $slug", "$user_email"]]"#,
        )]),
    post("lifecycle_failing_on_install_keeps_nothing", "/api/plugins/$plugin/install")
        .setup(&[
            step("PUT", "/api/plugins/$plugin/settings", Some(r#"{"explode": true}"#)),
            step("POST", "/api/plugins/$plugin/uninstall", None),
        ])
        .status(500)
        .expect(problem(Detail::Contains("on_install failed")))
        .fault(fault("runtime").file("plugin").line("on_install exploded").msg(Msg::Same("on_install exploded")))
        .after(&[
            Check::PluginStatus("FAILED"),
            Check::Call { method: "GET", path: "/ping", body: None, status: 403 },
            Check::Call {
                method: "PUT",
                path: "/api/plugins/$plugin/settings",
                body: Some(r#"{"explode": false}"#),
                status: 200,
            },
            Check::Call { method: "POST", path: "/api/plugins/$plugin/install", body: None, status: 200 },
            rows(
                "/seed",
                &["label", "who"],
                r#"[["installed for $slug", "system"], ["uninstalled for $slug", "$user_email"],
                    ["installed for $slug", "$user_email"]]"#,
            ),
        ]),
    // ------------------------------------------------ escapes
    post("escape_files", "/escape/files")
        .json(r#"{"escaped": []}"#)
        .after(&[rows("/note", &["title"], r#"["escape-files"]"#)]),
    post("escape_environment_processes_and_network", "/escape/env")
        .json(r#"{"escaped": []}"#)
        .after(&[rows("/note", &["title"], r#"["escape-env"]"#)]),
    post("escape_loading_code_and_eval", "/escape/code")
        .json(r#"{"escaped": []}"#)
        .after(&[rows("/note", &["title"], r#"["escape-code"]"#)]),
    post("escape_other_plugins_and_table_names", "/escape/plugins")
        .json(r#"{"escaped": []}"#)
        .after(&[rows("/note", &["title"], r#"["escape-plugins"]"#)]),
    post("escape_tenant_id_and_raw_sql", "/escape/tenants")
        .json(r#"{"escaped": []}"#)
        .after(&[rows("/note", &["title"], r#"["escape-tenants"]"#)]),
    // Naming eval by a computed string is refused at run time; in Rhai this
    // is an uncatchable (parse) error, so the probe is not caught in either.
    post("escape_eval_by_a_computed_name", "/escape/eval")
        .status(500)
        .fault(fault("runtime").file("escape"))
        .after(&[no_note("/note"), Check::NotInBody("answer")]),
    post("escape_uncaught_is_a_runtime_error", "/escape/uncaught")
        .status(500)
        .fault(fault("runtime").file("escape"))
        .after(&[no_note("/note"), Check::NotInBody("root:")]),
    // ------------------------------------------------ isolation
    post("isolation_another_tenants_rows_are_invisible", "/peek/$id")
        .setup(&[
            other("POST", "/api/confbase_r/shared", Some(r#"{"label": "theirs-$case"}"#)),
            other("POST", "/note", Some(r#"{"title": "theirs-$case"}"#)),
        ])
        .body(r#"{"title": "theirs-$case"}"#)
        .json(r#"{"got_is_null": true, "found": 0, "count": 0, "first_is_null": true,
                  "updated_is_null": true, "deleted": false, "base_count": 0}"#)
        .after(&[Check::Rows {
            tenant: Tenant::Other,
            path: "/note?title=theirs-$case",
            fields: &["title", "n"],
            expect: r#"[["theirs-$case", null]]"#,
            lua: None,
        }]),
    // CONTRACT: nothing a request stores in the language's state is seen
    // by the next request (SCRIPTING.md, lua.rs: "globals never shared").
    get("isolation_state_is_not_kept_between_requests", "/state")
        .setup(&[step("POST", "/state", None), step("POST", "/state", None), step("POST", "/state", None)])
        .json(r#"{"leaked": []}"#),
    get("isolation_state_is_not_shared_between_tenants", "/state")
        .setup(&[other("POST", "/state", None), other("POST", "/state", None), other("POST", "/state", None)])
        .json(r#"{"leaked": []}"#),
    // ------------------------------------------------ runaways (Limits)
    post("limit_operations", "/wild/loop")
        .body(WILD)
        .status(500)
        .fault(fault("limit").file("wild").msg(Msg::Same("operations limit exceeded")))
        .after(&[no_note("/note"), HEALTHY]),
    post("limit_operations_cannot_be_caught", "/wild/loop-caught")
        .body(WILD)
        .status(500)
        .fault(fault("limit").file("wild").msg(Msg::Same("operations limit exceeded")))
        .after(&[no_note("/note"), HEALTHY]),
    post("within_the_operations_limit", "/wild/busy-ok")
        .body(WILD)
        .json(r#"{"sum": 499500}"#),
    post("limit_call_depth", "/wild/recurse")
        .body(WILD)
        .status(500)
        .fault(fault("limit").file("wild").msg(Msg::Same("call depth limit exceeded")))
        .after(&[no_note("/note"), HEALTHY]),
    post("limit_call_depth_cannot_be_caught", "/wild/recurse-caught")
        .body(WILD)
        .status(500)
        .fault(fault("limit").file("wild").msg(Msg::Same("call depth limit exceeded")))
        .after(&[no_note("/note"), HEALTHY]),
    post("within_the_call_depth_limit", "/wild/recurse-ok")
        .body(WILD)
        .json(r#"{"depth": 20}"#),
    // The string length limit holds for every way of growing a string:
    // Rhai checks as it grows, Lua where the string leaves the script
    // (here: returned); a Lua string built and dropped is held only by the
    // memory limit (lua.rs, scripting guide).
    post("limit_string_grown_by_concatenation", "/wild/string-concat")
        .body(WILD)
        .status(500)
        .fault(fault("limit").file("wild").msg(Msg::Contains("string")))
        .after(&[no_note("/note"), HEALTHY]),
    post("limit_string_grown_by_repetition", "/wild/string-repeat")
        .body(WILD)
        .status(500)
        .fault(fault("limit").file("wild").msg(Msg::Contains("string")))
        .after(&[no_note("/note"), HEALTHY]),
    post("limit_string_cannot_be_caught", "/wild/string-caught")
        .body(WILD)
        .status(500)
        .fault(fault("limit").file("wild").msg(Msg::Contains("string")))
        .after(&[no_note("/note"), HEALTHY]),
    post("limit_array_grown_by_push", "/wild/array-push")
        .body(WILD)
        .status(500)
        .fault(fault("limit").file("wild").msg(Msg::Contains("size")))
        .after(&[no_note("/note"), HEALTHY]),
    // The array / map size limit holds for a map grown by assigning new
    // keys too (Lua: where it leaves the script, as above).
    post("limit_map_grown_by_assignment", "/wild/map-keys")
        .body(WILD)
        .status(500)
        .fault(fault("limit").file("wild").msg(Msg::Contains("size")))
        .after(&[no_note("/note"), HEALTHY]),
    post("limit_array_cannot_be_caught", "/wild/array-caught")
        .body(WILD)
        .status(500)
        .fault(fault("limit").file("wild").msg(Msg::Contains("size")))
        .after(&[no_note("/note"), HEALTHY]),
    // Rhai has no memory limit: the same data hits its string limit first.
    post("limit_memory", "/wild/memory")
        .body(WILD)
        .status(500)
        .fault(fault("limit").file("wild").msg(Msg::PerLang("string", "memory")))
        .after(&[no_note("/note"), HEALTHY]),
    post("limit_memory_cannot_be_caught", "/wild/memory-caught")
        .body(WILD)
        .status(500)
        .fault(fault("limit").file("wild").msg(Msg::PerLang("string", "memory")))
        .after(&[no_note("/note"), HEALTHY]),
    // The item limit counts nested items (Rhai's engine does; Lua's check
    // where a value leaves the script does the same): 20 arrays of 400
    // items are 8,020 items, over 5,000, though each is within it.
    post("limit_items_count_nested_values", "/wild/nested")
        .body(WILD)
        .status(500)
        .fault(fault("limit").file("wild").msg(Msg::PerLang("size of array", "table size")))
        .after(&[no_note("/note"), HEALTHY]),
    post("within_the_item_limit_with_nested_values", "/wild/nested-ok")
        .body(WILD)
        .expect(Expect::Pred(ten_arrays_of_400))
        .after(&[rows("/note", &["title"], r#"["wild-nested-ok"]"#)]),
    // ------------------------------------------------ the clock (Clock)
    post("timeout_is_a_503", "/wild/spin")
        .profile(Profile::Clock)
        .body(WILD)
        .status(503)
        .fault(fault("timeout").file("wild").msg(Msg::Same("script time limit exceeded")))
        .after(&[no_note("/note"), Check::Elapsed { min_ms: 250, max_ms: 3000 }, HEALTHY]),
    post("timeout_cannot_be_caught", "/wild/spin-caught")
        .profile(Profile::Clock)
        .body(WILD)
        .status(503)
        .fault(fault("timeout").file("wild").msg(Msg::Same("script time limit exceeded")))
        .after(&[no_note("/note"), Check::Elapsed { min_ms: 250, max_ms: 3000 }, HEALTHY]),
    post("timeout_in_a_hook", "/wild/slow-hook")
        .profile(Profile::Clock)
        .body(WILD)
        .status(503)
        .fault(fault("timeout").file("slow").msg(Msg::Same("script time limit exceeded")))
        .after(&[
            no_note("/note"),
            rows("/slow", &["label"], "[]"),
            Check::Elapsed { min_ms: 250, max_ms: 3000 },
            HEALTHY,
        ]),
    post("timeout_while_calling_the_host", "/wild/count-forever")
        .profile(Profile::Clock)
        .body(WILD)
        .status(503)
        .fault(fault("timeout").file("wild").msg(Msg::Same("script time limit exceeded")))
        .after(&[no_note("/note"), Check::Elapsed { min_ms: 250, max_ms: 3000 }, HEALTHY]),
    post("within_the_time_limit", "/wild/busy-ok")
        .profile(Profile::Clock)
        .body(WILD)
        .json(r#"{"sum": 499500}"#),
    // ------------------------------------------------ long script paths (LongPath)
    post("deep_path_fault_is_located", "/fault/throw")
        .profile(Profile::LongPath)
        .status(500)
        .fault(fault("runtime").file("fault").line("thrown on purpose").msg(Msg::Same("thrown on purpose")))
        .after(&[no_note("/note")]),
    post("deep_path_host_error_is_located", "/fault/host")
        .profile(Profile::LongPath)
        .status(500)
        .fault(
            fault("runtime")
                .file("fault")
                .line("no_such_entity")
                .msg(Msg::Same("ctx.db.get: unknown entity \"no_such_entity\"")),
        )
        .after(&[no_note("/note")]),
    post("deep_path_limit_is_located", "/wild/loop")
        .profile(Profile::LongPath)
        .body(WILD)
        .status(500)
        .fault(fault("limit").file("wild").msg(Msg::Same("operations limit exceeded")))
        .after(&[no_note("/note")]),
];

// ---------------------------------------------------------------- predicates

fn same(errs: &mut Vec<String>, what: &str, got: &Value, want: &Value) {
    if got != want {
        errs.push(format!("{what}: got {got}, expected {want}"));
    }
}

fn done(errs: Vec<String>) -> Result<(), String> {
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

const DEFAULT_SETTINGS: &str =
    r#"{"greeting": "hello", "limit": 3, "ratio": 0.5, "enabled": true, "explode": false}"#;

fn ctx_members(env: &Env, body: &Value) -> Result<(), String> {
    let mut errs = Vec::new();
    same(&mut errs, "user", &body["user"], &env.user);
    same(&mut errs, "tenant", &body["tenant"], &env.tenant);
    same(
        &mut errs,
        "plugin",
        &body["plugin"],
        &json!({"name": env.lang.plugin(), "version": "1.0.0"}),
    );
    same(
        &mut errs,
        "settings (defaults filled in, integers and floats kept)",
        &body["settings"],
        &env.json(DEFAULT_SETTINGS),
    );
    let (can_use, can_secret, can_never, can_core) = match env.who {
        Who::Admin => (true, true, true, true),
        Who::Manager => (true, true, false, true),
        Who::Viewer | Who::Anonymous => (true, false, false, false),
    };
    for (key, want) in [
        ("can_use", can_use),
        ("can_secret", can_secret),
        ("can_never", can_never),
        ("can_core", can_core),
    ] {
        same(&mut errs, key, &body[key], &json!(want));
    }
    match body["now"].as_str() {
        Some(now) => match chrono::DateTime::parse_from_rfc3339(now) {
            Ok(t) => {
                if t.offset().local_minus_utc() != 0 {
                    errs.push(format!("now {now} is not UTC"));
                }
                let skew = chrono::Utc::now().signed_duration_since(t);
                if skew.num_seconds().abs() > 60 {
                    errs.push(format!("now {now} is not current"));
                }
            }
            Err(e) => errs.push(format!("now {now} is not RFC 3339: {e}")),
        },
        None => errs.push(format!("now is not text: {}", body["now"])),
    }
    let ids: Vec<Option<uuid::Uuid>> = ["uuid", "uuid2"]
        .iter()
        .map(|k| body[k].as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()))
        .collect();
    match (ids[0], ids[1]) {
        (Some(a), Some(b)) => {
            if a.get_version_num() != 7 || b.get_version_num() != 7 {
                errs.push(format!("ctx.uuid() is not v7: {a} {b}"));
            }
            if a == b {
                errs.push("two ctx.uuid() calls gave the same id".to_owned());
            }
        }
        _ => errs.push(format!("uuid/uuid2 are not UUIDs: {body}")),
    }
    done(errs)
}

fn ctx_settings_changed(env: &Env, body: &Value) -> Result<(), String> {
    let mut errs = Vec::new();
    same(
        &mut errs,
        "settings",
        &body["settings"],
        &env.json(
            r#"{"greeting": "hej", "limit": 7, "ratio": 2.5, "enabled": true, "explode": false}"#,
        ),
    );
    done(errs)
}

fn caught_invalid(_env: &Env, body: &Value) -> Result<(), String> {
    let mut errs = Vec::new();
    same(&mut errs, "caught", &body["caught"], &json!(400));
    same(&mut errs, "fields", &body["fields"], &json!(["title"]));
    same(&mut errs, "codes", &body["codes"], &json!(["required"]));
    if body["message"].as_str().is_none_or(str::is_empty) {
        errs.push(format!("message of the refusal: {}", body["message"]));
    }
    done(errs)
}

fn caught_conflict(_env: &Env, body: &Value) -> Result<(), String> {
    let mut errs = Vec::new();
    same(&mut errs, "caught", &body["caught"], &json!(409));
    same(&mut errs, "errors", &body["errors"], &json!([]));
    if body["message"].as_str().is_none_or(str::is_empty) {
        errs.push(format!("message of the refusal: {}", body["message"]));
    }
    done(errs)
}

fn field_is(body: &Value, field: &str, want: Value) -> Result<(), String> {
    let mut errs = Vec::new();
    same(&mut errs, field, &body[field], &want);
    if !body["id"].is_string() {
        errs.push(format!("not a record: {body}"));
    }
    done(errs)
}

fn label_is_red(_env: &Env, body: &Value) -> Result<(), String> {
    field_is(body, "label", json!("RED"))
}

fn label_is_green(_env: &Env, body: &Value) -> Result<(), String> {
    field_is(body, "label", json!("GREEN"))
}

fn label_is_same(_env: &Env, body: &Value) -> Result<(), String> {
    field_is(body, "label", json!("SAME"))
}

fn label_is_as_is(_env: &Env, body: &Value) -> Result<(), String> {
    field_is(body, "label", json!("as-is"))
}

fn note_is_null(_env: &Env, body: &Value) -> Result<(), String> {
    let mut errs = Vec::new();
    if body.get("note") != Some(&Value::Null) {
        errs.push(format!(
            "note must be null after PATCH {{\"note\": null}}: {body}"
        ));
    }
    same(&mut errs, "label", &body["label"], &json!("N"));
    done(errs)
}

fn ten_arrays_of_400(_env: &Env, body: &Value) -> Result<(), String> {
    let outer = body.as_array().ok_or("not an array")?;
    if outer.len() == 10
        && outer
            .iter()
            .all(|a| a.as_array().is_some_and(|a| a.len() == 400))
    {
        Ok(())
    } else {
        Err(format!("{} arrays, expected 10 of 400 items", outer.len()))
    }
}

fn data_passed_through(env: &Env, body: &Value) -> Result<(), String> {
    let want = match env.lang {
        Lang::Rhai => json!({"empty": {}, "list": [], "nul": null, "n": 1}),
        Lang::Lua => json!({"empty": [], "list": [], "n": 1}),
    };
    field_is(body, "data", want)
}

fn installed(_env: &Env, body: &Value) -> Result<(), String> {
    field_is_text(body, "status", "INSTALLED")
}

fn field_is_text(body: &Value, field: &str, want: &str) -> Result<(), String> {
    if body[field] == want {
        Ok(())
    } else {
        Err(format!("{field} is not {want}: {body}"))
    }
}

/// (key, the host's message starts with, and contains).
const DB_ARGS: &[(&str, &str, &str)] = &[
    (
        "unknown_entity",
        "ctx.db.find: unknown entity \"nope\"",
        "note",
    ),
    (
        "table_name",
        "ctx.db.find: unknown entity \"$plugin_note\"",
        "",
    ),
    (
        "unknown_field",
        "ctx.db.find: bad where for note: ",
        "bogus",
    ),
    ("unknown_op", "ctx.db.find: bad where for note: ", "around"),
    (
        "tenant_where",
        "ctx.db.find: bad where for note: ",
        "tenant_id",
    ),
    (
        "sql_where",
        "ctx.db.find: where must be a map of field conditions",
        "",
    ),
    ("bad_sort", "ctx.db.find: ", "bogus"),
    ("sql_sort", "ctx.db.find: ", "DROP"),
    ("bad_limit", "ctx.db.find: opts.limit has a wrong value", ""),
    ("unknown_opt", "ctx.db.find: unknown option \"page\"", ""),
    ("entity_type", "ctx.db.get: entity must be a string", ""),
    (
        "fields_type",
        "ctx.db.insert: fields must be a map of fields",
        "",
    ),
    (
        "twin",
        "ctx.db.count: entity \"$twin.note\" belongs to plugin $twin, which plugin $plugin does not require",
        "",
    ),
    (
        "base_unknown",
        "ctx.db.find: unknown entity \"confbase_r.nope\"",
        "shared",
    ),
];

/// A caught error string without Lua's `<file>.lua:<line>: ` prefix.
fn without_lua_location(message: &str) -> &str {
    if let Some(i) = message.find(".lua:") {
        let rest = &message[i + ".lua:".len()..];
        if let Some((line, tail)) = rest.split_once(": ")
            && !line.is_empty()
            && line.bytes().all(|b| b.is_ascii_digit())
        {
            return tail;
        }
    }
    message
}

fn db_args(env: &Env, body: &Value) -> Result<(), String> {
    let mut errs = Vec::new();
    let Some(map) = body.as_object() else {
        return Err(format!("not a map: {body}"));
    };
    for (key, start, contains) in DB_ARGS {
        let Some(message) = map.get(*key).and_then(Value::as_str) else {
            errs.push(format!(
                "{key}: no catchable error (got {:?})",
                map.get(*key)
            ));
            continue;
        };
        let host = match env.lang {
            Lang::Rhai => message,
            Lang::Lua => without_lua_location(message),
        };
        let start = env.fill(start);
        if !host.starts_with(&start) || !host.contains(contains) {
            errs.push(format!(
                "{key}: {message:?} is not {start:?}… containing {contains:?}"
            ));
        }
    }
    if map.len() != DB_ARGS.len() {
        errs.push(format!("unexpected keys in {body}"));
    }
    done(errs)
}

// ---------------------------------------------------------------- the driver

/// What a case's checks see.
struct Env {
    lang: Lang,
    who: Who,
    /// The case's tag (its tenant's slug).
    case: String,
    /// `{id, slug, name}` of the own tenant.
    tenant: Value,
    /// `{id, email, name, roles}` of the caller (null: anonymous).
    user: Value,
    /// `id` of the last setup answer.
    id: Option<String>,
}

impl Env {
    /// Placeholders: `$plugin`, `$PREFIX`, `$twin`, `$slug`, `$tenant_id`,
    /// `$user_email`, `$user_id`, `$id`, `$case`, `$max_string`, `$max_items`.
    fn fill(&self, text: &str) -> String {
        text.replace("$plugin", self.lang.plugin())
            .replace("$PREFIX", self.lang.prefix())
            .replace("$twin", self.lang.twin().plugin())
            .replace("$slug", self.tenant["slug"].as_str().unwrap_or_default())
            .replace("$tenant_id", self.tenant["id"].as_str().unwrap_or_default())
            .replace(
                "$user_email",
                self.user["email"].as_str().unwrap_or_default(),
            )
            .replace("$user_id", self.user["id"].as_str().unwrap_or_default())
            .replace("$id", self.id.as_deref().unwrap_or("no-setup-id"))
            .replace("$case", &self.case)
            .replace("$max_string", &MAX_STRING.to_string())
            .replace("$max_items", &MAX_ITEMS.to_string())
    }

    fn json(&self, text: &str) -> Value {
        let filled = self.fill(text);
        serde_json::from_str(&filled)
            .unwrap_or_else(|e| panic!("bad JSON in a case: {e}: {filled}"))
    }

    fn url(&self, path: &str) -> String {
        let path = self.fill(path);
        if path.starts_with("/api/") {
            path
        } else {
            format!("/api/{}{path}", self.lang.plugin())
        }
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    raw: String,
}

async fn send(
    app: &TestApp,
    env: &Env,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let mut rb = app.request(method, &env.url(path), token);
    for (name, value) in headers {
        rb = rb.header(*name, env.fill(value));
    }
    if let Some(b) = body {
        rb = rb.json(&env.json(b));
    }
    let resp = rb.send().await.expect("request sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let raw = resp.text().await.expect("body");
    let body = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&raw).unwrap_or_else(|_| Value::String(raw.clone()))
    };
    Answer {
        status,
        headers,
        body,
        raw,
    }
}

async fn health(app: &TestApp, plugin: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/plugins/{plugin}/health"), &app.root_token)
        .await;
    assert_eq!(status, StatusCode::OK, "health of {plugin}: {body}");
    body
}

fn counter(h: &Value, key: &str) -> i64 {
    match key {
        "requests" | "errors" => h[key].as_i64(),
        kind => h["script_errors"][kind].as_i64(),
    }
    .unwrap_or(0)
}

const KINDS: [&str; 3] = ["runtime", "limit", "timeout"];

/// Strings with what differs between the runtimes by construction (plugin
/// names, file extensions, ids, timestamps) replaced.
fn mask_str(s: &str, lang: Lang) -> String {
    if uuid::Uuid::parse_str(s).is_ok() {
        return "<uuid>".to_owned();
    }
    if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
        return "<time>".to_owned();
    }
    if s == lang.ext() {
        return "<runtime>".to_owned();
    }
    s.replace(lang.prefix(), "<PREFIX>")
        .replace(lang.twin().prefix(), "<TWIN>")
        .replace(lang.plugin(), "<plugin>")
        .replace(lang.twin().plugin(), "<twin>")
        .replace(&format!(".{}", lang.ext()), ".<ext>")
}

/// A body as compared between the runtimes: masked, without request ids,
/// and without the detail of 5xx problems (it names the request).
fn mask(v: &Value, lang: Lang) -> Value {
    match v {
        Value::String(s) => Value::String(mask_str(s, lang)),
        Value::Array(items) => Value::Array(items.iter().map(|x| mask(x, lang)).collect()),
        Value::Object(m) => {
            let fault = m.contains_key("type")
                && m.contains_key("title")
                && m.get("status")
                    .and_then(Value::as_u64)
                    .is_some_and(|s| s >= 500);
            let mut out = Map::new();
            for (k, x) in m {
                if k == "request_id" || (fault && k == "detail") {
                    continue;
                }
                out.insert(k.clone(), mask(x, lang));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Items of a list answer projected onto `fields`, sorted.
fn project(body: &Value, fields: &[&str]) -> Result<Vec<Value>, String> {
    let items = body["items"]
        .as_array()
        .ok_or_else(|| format!("not a list answer: {body}"))?;
    let mut out: Vec<Value> = items
        .iter()
        .map(|item| {
            if fields.len() == 1 {
                item.get(fields[0]).cloned().unwrap_or(Value::Null)
            } else {
                Value::Array(
                    fields
                        .iter()
                        .map(|f| item.get(*f).cloned().unwrap_or(Value::Null))
                        .collect(),
                )
            }
        })
        .collect();
    out.sort_by_key(|v| v.to_string());
    Ok(out)
}

fn sorted(v: Value) -> Vec<Value> {
    let mut items = match v {
        Value::Array(items) => items,
        other => vec![other],
    };
    items.sort_by_key(|v| v.to_string());
    items
}

/// The own and the other tenant of a case: (tenant json, admin token).
struct Tenants {
    own: (Value, String),
    other: Option<(Value, String)>,
}

impl Tenants {
    fn token(&self, which: Tenant) -> &str {
        match which {
            Tenant::Own => &self.own.1,
            Tenant::Other => &self.other.as_ref().expect("the case's other tenant").1,
        }
    }
}

/// Run one case against one twin: the problems found, and the outcome to
/// compare with the other twin's.
async fn run_case(
    app: &TestApp,
    case: &Case,
    env: &mut Env,
    tenants: &Tenants,
    token: Option<&str>,
) -> (Vec<String>, Value) {
    let mut problems = Vec::new();
    for s in case.setup {
        let answer = send(
            app,
            env,
            s.method,
            s.path,
            Some(tenants.token(s.tenant)),
            &[],
            s.body,
        )
        .await;
        if !answer.status.is_success() {
            problems.push(format!(
                "setup {} {} answered {}: {}",
                s.method, s.path, answer.status, answer.raw
            ));
        }
        if let Some(id) = answer.body.get("id").and_then(Value::as_str) {
            env.id = Some(id.to_owned());
        }
    }

    let fault_plugin = case
        .fault
        .and_then(|f| f.plugin)
        .unwrap_or(env.lang.plugin())
        .to_owned();
    let before = health(app, &fault_plugin).await;
    let started = Instant::now();
    let answer = send(
        app,
        env,
        case.method,
        case.path,
        token,
        case.headers,
        case.body,
    )
    .await;
    let elapsed = started.elapsed();
    let after = health(app, &fault_plugin).await;

    check_answer(case, env, &answer, &mut problems);
    let fault_outcome = check_fault(case, env, &fault_plugin, &before, &after, &mut problems);
    let deltas: BTreeMap<&str, i64> = ["requests", "errors", "runtime", "limit", "timeout"]
        .into_iter()
        .map(|k| (k, counter(&after, k) - counter(&before, k)))
        .collect();

    let mut checked = Vec::new();
    for check in case.after {
        checked.push(run_check(app, env, tenants, check, &answer, elapsed, &mut problems).await);
    }

    // A documented difference: each runtime was checked against its own
    // expectation above; the data (body, rows left) is not compared.
    let (body, checked) = if case.diverges.is_some() {
        (
            json!("<differs by design>"),
            vec![json!("<differs by design>")],
        )
    } else {
        (mask(&answer.body, env.lang), checked)
    };
    let outcome = json!({
        "status": answer.status.as_u16(),
        "body": body,
        "empty": answer.raw.is_empty(),
        "health": deltas,
        "fault": fault_outcome,
        "after": checked,
    });
    (problems, outcome)
}

fn check_answer(case: &Case, env: &Env, answer: &Answer, problems: &mut Vec<String>) {
    let status = answer.status.as_u16();
    let body = &answer.body;
    if status != case.status {
        problems.push(format!(
            "status {status}, expected {}: {}",
            case.status, answer.raw
        ));
    }
    // An error the server makes is problem+json; a script's own envelope
    // (an exact body expected) is sent as the script wrote it.
    if status >= 400 && !matches!(case.expect, Expect::Json(_) | Expect::Raw(_)) {
        let content_type = answer
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !content_type.starts_with("application/problem+json") {
            problems.push(format!("a {status} is not problem+json ({content_type})"));
        }
        if body["status"] != status || !body["detail"].is_string() || !body["title"].is_string() {
            problems.push(format!("not a problem of status {status}: {body}"));
        }
        let header_id = answer
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok());
        if body["request_id"].as_str() != header_id {
            problems.push(format!(
                "request_id {} is not the x-request-id {header_id:?}",
                body["request_id"]
            ));
        }
    }
    if status >= 500 {
        // API.md: a script fault's body names the plugin and the request_id
        // (checked above against x-request-id).
        if !body["request_id"].is_string() {
            problems.push(format!("the 5xx does not name the request: {body}"));
        }
        if !body["plugin"].is_string() {
            problems.push(format!("the 5xx does not name the plugin: {body}"));
        }
    }
    match case.expect {
        Expect::Any => {}
        Expect::Json(text) => {
            let want = env.json(text);
            if *body != want {
                problems.push(format!("body {body}, expected {want}"));
            }
        }
        Expect::PerLang { rhai, lua } => {
            let want = env.json(match env.lang {
                Lang::Rhai => rhai,
                Lang::Lua => lua,
            });
            if *body != want {
                problems.push(format!("body {body}, expected {want}"));
            }
        }
        Expect::Raw(text) => {
            if answer.raw != env.fill(text) {
                problems.push(format!("raw body {:?}, expected {text:?}", answer.raw));
            }
        }
        Expect::Pred(pred) => {
            if let Err(why) = pred(env, body) {
                problems.push(format!("{why} (body {body})"));
            }
        }
        Expect::Problem {
            detail,
            plugin,
            errors,
        } => {
            let text = body["detail"].as_str().unwrap_or_default();
            match detail {
                Detail::Any => {}
                Detail::Exact(want) => {
                    if text != env.fill(want) {
                        problems.push(format!("detail {text:?}, expected {:?}", env.fill(want)));
                    }
                }
                Detail::Contains(want) => {
                    if !text.contains(&env.fill(want)) {
                        problems.push(format!(
                            "detail {text:?} does not contain {:?}",
                            env.fill(want)
                        ));
                    }
                }
            }
            if let Some(plugin) = plugin
                && body["plugin"] != env.fill(plugin)
            {
                problems.push(format!("the problem does not name plugin {plugin}: {body}"));
            }
            let listed = body["errors"].as_array().cloned().unwrap_or_default();
            for (field, code) in errors {
                if !listed
                    .iter()
                    .any(|e| e["field"] == *field && (code.is_empty() || e["code"] == *code))
                {
                    problems.push(format!("no error for ({field}, {code}) in {body}"));
                }
            }
        }
        Expect::Items { fields, expect } => match project(body, fields) {
            Ok(got) => {
                let want = sorted(env.json(expect));
                if got != want {
                    problems.push(format!("items {got:?}, expected {want:?}"));
                }
            }
            Err(why) => problems.push(why),
        },
    }
}

/// Check the fault against the health counters and `last_error`; returns
/// what is compared between the runtimes.
fn check_fault(
    case: &Case,
    env: &Env,
    plugin: &str,
    before: &Value,
    after: &Value,
    problems: &mut Vec<String>,
) -> Value {
    let last = &after["last_error"];
    let Some(f) = case.fault else {
        for kind in KINDS {
            if counter(after, kind) != counter(before, kind) {
                problems.push(format!("an unexpected {kind} fault: {last}"));
            }
        }
        return Value::Null;
    };
    for kind in KINDS {
        let delta = counter(after, kind) - counter(before, kind);
        let want = i64::from(kind == f.kind);
        if delta != want {
            problems.push(format!(
                "health of {plugin}: script_errors.{kind} went up by {delta}, expected {want} (last_error {last})"
            ));
        }
    }
    if last["kind"] != f.kind {
        problems.push(format!("last_error.kind is not {}: {last}", f.kind));
    }
    let file = last["file"].as_str().unwrap_or_default();
    let (ext, text) = match f.file {
        Some(stem) => script_of(plugin, stem).unwrap_or(("?", "")),
        None => ("?", ""),
    };
    if let Some(stem) = f.file {
        let suffix = format!("/scripts/{plugin}/{stem}.{ext}");
        if !file.ends_with(&suffix) {
            problems.push(format!("last_error.file {file:?} is not …{suffix}"));
        }
    }
    let mut line_ok = Value::Null;
    if let (Some(marker), Some(_)) = (f.line, f.file) {
        let want = line_of(text, marker);
        let ok = last["line"].as_u64() == Some(want as u64);
        if !ok {
            problems.push(format!(
                "last_error.line is {}, expected {want}: {last}",
                last["line"]
            ));
        }
        let column_ok = if ext == "lua" {
            // SCRIPTING.md: where a Lua compiler gives no column, health shows null.
            last["column"].is_null()
        } else {
            last["column"].as_u64().is_some_and(|c| c >= 1)
        };
        if !column_ok {
            problems.push(format!(
                "last_error.column {} for a .{ext} script",
                last["column"]
            ));
        }
        line_ok = json!(ok && column_ok);
    }
    let message = last["message"].as_str().unwrap_or_default();
    let lower = message.to_lowercase();
    let mut compared = Value::Null;
    match f.message {
        Msg::Any => {
            if message.is_empty() {
                problems.push(format!("last_error has no message: {last}"));
            }
        }
        Msg::Contains(text) => {
            if !lower.contains(&env.fill(text).to_lowercase()) {
                problems.push(format!(
                    "last_error.message {message:?} does not contain {text:?}"
                ));
            }
        }
        Msg::Same(text) => {
            if !lower.contains(&env.fill(text).to_lowercase()) {
                problems.push(format!(
                    "last_error.message {message:?} does not contain {text:?}"
                ));
            }
            compared = json!(mask_str(message, env.lang));
        }
        Msg::PerLang(rhai, lua) => {
            let text = match env.lang {
                Lang::Rhai => rhai,
                Lang::Lua => lua,
            };
            if !lower.contains(text) {
                problems.push(format!(
                    "last_error.message {message:?} does not contain {text:?}"
                ));
            }
        }
    }
    let base = file.rsplit('/').next().unwrap_or_default();
    let base = if plugin == env.lang.plugin() {
        mask_str(base, env.lang)
    } else {
        base.to_owned()
    };
    json!({
        "kind": last["kind"],
        "file": base,
        "line_ok": line_ok,
        "message": compared,
    })
}

async fn run_check(
    app: &TestApp,
    env: &Env,
    tenants: &Tenants,
    check: &Check,
    answer: &Answer,
    elapsed: Duration,
    problems: &mut Vec<String>,
) -> Value {
    match *check {
        Check::Rows {
            tenant,
            path,
            fields,
            expect,
            lua,
        } => {
            let expect = match (env.lang, lua) {
                (Lang::Lua, Some(lua)) => lua,
                _ => expect,
            };
            let sep = if path.contains('?') { '&' } else { '?' };
            let full = format!("{path}{sep}limit=500");
            let got = send(
                app,
                env,
                "GET",
                &full,
                Some(tenants.token(tenant)),
                &[],
                None,
            )
            .await;
            let want = sorted(env.json(expect));
            match project(&got.body, fields) {
                Ok(rows) => {
                    if rows != want {
                        problems.push(format!(
                            "after: GET {path}: rows {rows:?}, expected {want:?}"
                        ));
                    }
                    mask(&Value::Array(rows), env.lang)
                }
                Err(why) => {
                    problems.push(format!("after: GET {path} ({}): {why}", got.status));
                    json!(got.status.as_u16())
                }
            }
        }
        Check::Call {
            method,
            path,
            body,
            status,
        } => {
            let got = send(
                app,
                env,
                method,
                path,
                Some(tenants.token(Tenant::Own)),
                &[],
                body,
            )
            .await;
            if got.status.as_u16() != status {
                problems.push(format!(
                    "after: {method} {path} answered {}, expected {status}: {}",
                    got.status, got.raw
                ));
            }
            json!(got.status.as_u16())
        }
        Check::PluginStatus(want) => {
            let got = send(
                app,
                env,
                "GET",
                "/api/plugins/$plugin",
                Some(tenants.token(Tenant::Own)),
                &[],
                None,
            )
            .await;
            if got.body["status"] != want {
                problems.push(format!("after: plugin status is not {want}: {}", got.raw));
            }
            got.body["status"].clone()
        }
        Check::Elapsed { min_ms, max_ms } => {
            let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
            if ms < min_ms || ms > max_ms {
                problems.push(format!("took {ms} ms, expected {min_ms}..{max_ms} ms"));
            }
            json!(ms >= min_ms && ms <= max_ms)
        }
        Check::Header(name, want) => {
            let got = answer.headers.get(name).and_then(|v| v.to_str().ok());
            if got != Some(want) {
                problems.push(format!("header {name} is {got:?}, expected {want:?}"));
            }
            json!(got)
        }
        Check::NotInBody(text) => {
            let found = answer.raw.contains(text);
            if found {
                problems.push(format!("the answer shows {text:?}: {}", answer.raw));
            }
            json!(!found)
        }
    }
}

/// `{id, email, name, roles}` of a user answer.
fn ctx_user(user: &Value) -> Value {
    json!({"id": user["id"], "email": user["email"], "name": user["name"], "roles": user["roles"]})
}

/// The caller of a case: (its `ctx.user`, its token).
async fn caller(app: &TestApp, tenants: &Tenants, tag: &str, who: Who) -> (Value, Option<String>) {
    let admin = &tenants.own.1;
    match who {
        Who::Admin => {
            let (status, me) = app.get("/api/auth/me", admin).await;
            assert_eq!(status, StatusCode::OK, "{me}");
            (ctx_user(&me["user"]), Some(admin.clone()))
        }
        Who::Manager | Who::Viewer => {
            let (email, role) = if who == Who::Manager {
                (format!("manager@{tag}.test"), "ADMIN")
            } else {
                (format!("viewer@{tag}.test"), "VIEWER")
            };
            let (user, token) = app.user(admin, tag, &email, &[role]).await;
            (ctx_user(&user), Some(token))
        }
        Who::Anonymous => (Value::Null, None),
    }
}

/// Run every case of a profile against both twins; panics with every
/// problem found.
async fn run_profile(profile: Profile) {
    let app = spawn_app_with(|config| {
        if profile == Profile::LongPath {
            // As deep as a real deployment's scripts folder (longer than
            // the 60 characters Lua keeps of a chunk name).
            config.scripts_dir = config
                .data_dir
                .join("srv/plinth/deployments/customer-production-eu-west/current/scripts");
            std::fs::create_dir_all(&config.scripts_dir).expect("deep scripts dir");
        }
        write_plugins(&config.manifests_dir, &config.scripts_dir);
        profile.apply(&mut config.script_limits);
    })
    .await;
    for name in ["conf_rhai", "conf_lua", "confbase_r", "confbase_l"] {
        let (status, body) = app
            .get(&format!("/api/plugins/{name}"), &app.root_token)
            .await;
        assert_eq!(status, StatusCode::OK, "plugin {name} loaded: {body}");
        let h = health(&app, name).await;
        assert_eq!(
            h["last_reload"]["ok"], true,
            "plugin {name} loaded cleanly: {h}"
        );
    }

    let mut failures: Vec<String> = Vec::new();
    let mut passed = [0usize; 2];
    let mut agreed = 0usize;
    let mut total = 0usize;
    for (i, case) in CASES
        .iter()
        .enumerate()
        .filter(|(_, c)| c.profile == profile)
    {
        total += 1;
        let tag = format!("{}{i:03}", profile.tag());
        let own = app.tenant(&tag).await;
        let other = if case.uses_other_tenant() {
            Some(app.tenant(&format!("{tag}-other")).await)
        } else {
            None
        };
        let own = (
            json!({"id": own.0["id"], "slug": own.0["slug"], "name": own.0["name"]}),
            own.1,
        );
        let tenants = Tenants { own, other };
        let (user, token) = caller(&app, &tenants, &tag, case.who).await;
        let mut outcomes = Vec::new();
        for (n, lang) in LANGS.into_iter().enumerate() {
            let mut env = Env {
                lang,
                who: case.who,
                case: tag.clone(),
                tenant: tenants.own.0.clone(),
                user: user.clone(),
                id: None,
            };
            let (problems, outcome) =
                run_case(&app, case, &mut env, &tenants, token.as_deref()).await;
            if problems.is_empty() {
                passed[n] += 1;
            }
            for p in problems {
                failures.push(format!("{} [{:?}]: {p}", case.name, lang));
            }
            outcomes.push(outcome);
        }
        if outcomes[0] == outcomes[1] {
            agreed += 1;
        } else {
            failures.push(format!(
                "{} [Rhai vs Lua]: the runtimes disagree\n      rhai: {}\n      lua:  {}",
                case.name, outcomes[0], outcomes[1]
            ));
        }
    }
    eprintln!(
        "conformance {profile:?}: {total} cases; Rhai passed {}, Lua passed {}, both agreed on {agreed}",
        passed[0], passed[1]
    );
    assert!(
        failures.is_empty(),
        "conformance {profile:?}: {} problems (Rhai passed {}/{total}, Lua passed {}/{total}, agreed {agreed}/{total}):\n  {}",
        failures.len(),
        passed[0],
        passed[1],
        failures.join("\n  ")
    );
}

#[tokio::test]
async fn rhai_and_lua_twins_conform_under_low_limits() {
    run_profile(Profile::Limits).await;
}

#[tokio::test]
async fn rhai_and_lua_twins_conform_on_the_time_limit() {
    run_profile(Profile::Clock).await;
}

#[tokio::test]
async fn rhai_and_lua_twins_locate_errors_in_a_deep_scripts_folder() {
    run_profile(Profile::LongPath).await;
}

/// The table itself: names are unique, and the scripts the fault cases
/// locate exist in both languages with each marker on exactly one line.
#[test]
fn the_case_table_is_well_formed() {
    let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "case names are unique");
    for case in CASES {
        if let Some(f) = case.fault
            && let (Some(stem), Some(marker)) = (f.file, f.line)
        {
            let plugins: Vec<&str> = match f.plugin {
                Some(p) => vec![p],
                None => LANGS.iter().map(|l| l.plugin()).collect(),
            };
            for plugin in plugins {
                let (_, text) = script_of(plugin, stem)
                    .unwrap_or_else(|| panic!("{}: no script {stem} of {plugin}", case.name));
                line_of(text, marker);
            }
        }
    }
    for lang in LANGS {
        let stems: Vec<&str> = lang.scripts().iter().map(|(s, _)| *s).collect();
        for (_, _, stem, _, _) in ROUTES {
            assert!(stems.contains(stem), "{lang:?} has the route script {stem}");
        }
        assert_eq!(
            stems,
            lang.twin()
                .scripts()
                .iter()
                .map(|(s, _)| *s)
                .collect::<Vec<_>>(),
            "both twins have the same script files"
        );
    }
}
