//! The fixed cost of entering a script: a route handler that returns a
//! constant, run through the same path a request takes below HTTP (a read
//! transaction, the invocation, the Rhai call, value conversion, the
//! response rules), against the bare read transaction as the baseline.
//!
//! Also, inside one write transaction each: the generated update of a row
//! vs a script route that gets and updates it (the time a write holds the
//! single writer).
//!
//! Every script benchmark runs twice: in Rhai (plugin `entry`) and in its
//! Lua twin (plugin `entryl`, `runtime = "lua"`), the same scripts.
//!
//! Run: `cargo bench --bench script_entry` (criterion; prints the estimate
//! per iteration).

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use plinth::config::Config;
use plinth::plugins::crud::Writer;
use plinth::plugins::{PluginVersion, Registry};
use plinth::runtime::routes::{RouteRequest, run};
use plinth::runtime::{Runtime, ScriptLimits};
use plinth::storage::{Db, StorageError};

const MANIFEST: &str = r#"
name = "entry"
version = "1.0.0"

[permissions]
ENTRY_USE = "Use"

[entities.row]
[entities.row.fields]
n = { type = "integer", default = 0 }

[[routes]]
method = "GET"
path = "/const"
permission = "ENTRY_USE"
script = "const.rhai"

[[routes]]
method = "POST"
path = "/row/{id}/touch"
permission = "ENTRY_USE"
script = "touch.rhai"
"#;

/// The Lua twin of `MANIFEST`.
fn lua_manifest() -> String {
    MANIFEST
        .replace("name = \"entry\"", "name = \"entryl\"\nruntime = \"lua\"")
        .replace("ENTRY_USE", "ENTRYL_USE")
        .replace(".rhai", ".lua")
}

type Setup = (
    tempfile::TempDir,
    Db,
    Registry,
    Arc<PluginVersion>,
    Arc<PluginVersion>,
);

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let manifests = dir.path().join("plugin-manifests");
    let scripts = dir.path().join("scripts").join("entry");
    let lua = dir.path().join("scripts").join("entryl");
    std::fs::create_dir_all(&manifests).expect("dir");
    std::fs::create_dir_all(&scripts).expect("dir");
    std::fs::create_dir_all(&lua).expect("dir");
    std::fs::write(manifests.join("entry.toml"), MANIFEST).expect("manifest");
    std::fs::write(manifests.join("entryl.toml"), lua_manifest()).expect("manifest");
    std::fs::write(scripts.join("const.rhai"), "fn handle(ctx, req) { 42 }").expect("script");
    std::fs::write(
        scripts.join("touch.rhai"),
        "fn handle(ctx, req) { let r = ctx.db.get(\"row\", req.params.id); ctx.db.update(\"row\", r.id, #{ n: r.n + 1 }) }",
    )
    .expect("script");
    std::fs::write(
        lua.join("const.lua"),
        "function handle(ctx, req) return 42 end",
    )
    .expect("script");
    std::fs::write(
        lua.join("touch.lua"),
        "function handle(ctx, req) local r = ctx.db.get(\"row\", req.params.id); return ctx.db.update(\"row\", r.id, { n = r.n + 1 }) end",
    )
    .expect("script");
    let mut config = Config::for_data_dir(dir.path().join("data"));
    config.manifests_dir = manifests;
    config.scripts_dir = dir.path().join("scripts");
    let db = Db::open(&config.data_dir, config.sync).expect("db");
    plinth::storage::migrations::apply(&db).expect("migrations");
    let registry = Registry::new(Runtime::new(ScriptLimits::default()));
    let report = plinth::plugins::loader::load_all(&db, &config, registry.runtime());
    assert!(report.refused.is_empty(), "{:?}", report.refused);
    registry.replace(report.loaded.clone(), Vec::new());
    let version = registry.get("entry").expect("loaded");
    let lua = registry.get("entryl").expect("loaded");
    (dir, db, registry, version, lua)
}

fn entry(c: &mut Criterion) {
    let (_dir, db, registry, rhai, lua) = setup();
    let request = RouteRequest {
        method: "GET".into(),
        path: "/api/entry/const".into(),
        params: Vec::new(),
        query: Vec::new(),
        headers: vec![("accept".into(), "*/*".into())],
        body: None,
    };
    let mut group = c.benchmark_group("script_entry");
    group.bench_function("read transaction only (baseline)", |b| {
        b.iter(|| {
            db.read_blocking(|_tx| Ok::<_, StorageError>(()))
                .expect("tx")
        });
    });
    for (runtime, version) in [("rhai", &rhai), ("lua", &lua)] {
        group.bench_function(format!("constant route handler ({runtime})"), |b| {
            b.iter(|| {
                db.read_blocking(|tx| {
                    let w = Writer {
                        tx,
                        registry: &registry,
                        tenant_id: "bench-tenant",
                        caller: None,
                        request_id: None,
                    };
                    run(&w, version, 0, request.to_value())
                })
                .expect("route answers")
            });
        });
    }
    let now = plinth::storage::now_rfc3339();
    db.write_blocking(|tx| {
        tx.insert_tenant(&plinth::storage::TenantRow {
            id: "bench-tenant".into(),
            slug: "bench".into(),
            name: "Bench".into(),
            active: true,
            created_at: now.clone(),
            updated_at: now,
        })
    })
    .expect("tenant");
    let row_of = |version: &Arc<PluginVersion>| {
        let row = db
            .write_blocking(|tx| {
                let w = Writer {
                    tx,
                    registry: &registry,
                    tenant_id: "bench-tenant",
                    caller: None,
                    request_id: None,
                };
                plinth::plugins::crud::insert(&w, version, 0, serde_json::Map::new())
            })
            .expect("row");
        row["id"].as_str().expect("id").to_owned()
    };
    let id = row_of(&rhai);
    let lua_id = row_of(&lua);
    let touch_of = |id: &str| RouteRequest {
        method: "POST".into(),
        path: format!("/api/entry/row/{id}/touch"),
        params: vec![("id".into(), id.to_owned())],
        ..request.clone()
    };
    group.bench_function("generated update of a row (baseline)", |b| {
        let mut n = 0;
        b.iter(|| {
            n += 1;
            let mut changes = serde_json::Map::new();
            changes.insert("n".into(), n.into());
            db.write_blocking(|tx| {
                let w = Writer {
                    tx,
                    registry: &registry,
                    tenant_id: "bench-tenant",
                    caller: None,
                    request_id: None,
                };
                plinth::plugins::crud::update(&w, &rhai, 0, &id, changes)
            })
            .expect("updated")
        });
    });
    for (runtime, version, id) in [("rhai", &rhai, &id), ("lua", &lua, &lua_id)] {
        let touch = touch_of(id);
        group.bench_function(
            format!("script route: get + update of a row ({runtime})"),
            |b| {
                b.iter(|| {
                    db.write_blocking(|tx| {
                        let w = Writer {
                            tx,
                            registry: &registry,
                            tenant_id: "bench-tenant",
                            caller: None,
                            request_id: None,
                        };
                        run(&w, version, 1, touch.to_value())
                    })
                    .expect("touched")
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, entry);
criterion_main!(benches);
