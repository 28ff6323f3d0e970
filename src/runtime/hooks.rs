//! Running scripts for the plugins layer: entity hooks (for REST and script
//! writes alike), lifecycle hooks (install, uninstall) and route handlers.
//!
//! A call made while a script runs on this thread (a hook run by a script's
//! write) joins that invocation: same transaction, caller and deadline, one
//! more hook level, and a frame for the hook's plugin. Otherwise a new
//! invocation starts over the caller's transaction.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::invocation::{self, Invocation};
use super::scripts::{HookKind, Lifecycle, ScriptFile};
use super::{FaultKind, MAX_HOOK_DEPTH, ScriptError, ScriptFailure};
use crate::plugins::crud::Writer;
use crate::plugins::{PluginError, PluginVersion};

/// Call `function` of `file` with the invocation of `w` (joined or new).
pub(crate) fn call(
    w: &Writer<'_>,
    version: &Arc<PluginVersion>,
    file: &ScriptFile,
    function: &str,
    args: Vec<Value>,
    is_hook: bool,
) -> Result<Value, PluginError> {
    let run = |inv: &Invocation| -> Result<Value, PluginError> {
        if is_hook {
            if inv.hook_depth.get() >= MAX_HOOK_DEPTH {
                return Err(PluginError::Script(Box::new(ScriptFailure::Fault {
                    plugin: version.manifest.name.clone(),
                    kind: FaultKind::Limit,
                    error: ScriptError {
                        file: file.shown.clone(),
                        line: 0,
                        column: None,
                        message: format!(
                            "hook recursion limit: {function} would nest hooks deeper than {MAX_HOOK_DEPTH}"
                        ),
                    },
                })));
            }
            inv.hook_depth.set(inv.hook_depth.get() + 1);
        }
        let frame = inv.push_frame(Arc::clone(version));
        let result =
            w.registry
                .runtime()
                .call(inv, frame, &version.manifest.name, file, function, args);
        inv.pop_frame();
        if is_hook {
            inv.hook_depth.set(inv.hook_depth.get() - 1);
        }
        result
    };
    if let Some(inv) = invocation::current() {
        return run(&inv);
    }
    let inv = Rc::new(Invocation {
        tx: w.tx.share(),
        caller: w.caller.cloned(),
        tenant_id: w.tenant_id.to_owned(),
        request_id: w.request_id.map(str::to_owned),
        deadline: Instant::now() + w.registry.runtime().limits().timeout,
        registry: w.registry.clone(),
        plugins: w.registry.all(),
        frames: RefCell::new(Vec::new()),
        hook_depth: Cell::new(0),
        pending: RefCell::new(None),
        ending: RefCell::new(None),
        rejected: RefCell::new(None),
        tenant_json: OnceCell::new(),
    });
    let _entered = invocation::enter(Rc::clone(&inv));
    run(&inv)
}

fn not_a_map(
    version: &PluginVersion,
    file: &ScriptFile,
    hook: HookKind,
    got: &Value,
) -> PluginError {
    PluginError::Script(Box::new(ScriptFailure::Fault {
        plugin: version.manifest.name.clone(),
        kind: FaultKind::Runtime,
        error: ScriptError {
            file: file.shown.clone(),
            line: 0,
            column: None,
            message: format!(
                "{} must return the (changed) map of fields or nothing, not {got}",
                hook.name()
            ),
        },
    }))
}

/// A `before_*` hook that may change the record: returns the fields to
/// write (unchanged when the entity has no such hook or it returns nothing).
pub fn before(
    w: &Writer<'_>,
    version: &Arc<PluginVersion>,
    entity: &str,
    hook: HookKind,
    fields: serde_json::Map<String, Value>,
    old: Option<&serde_json::Map<String, Value>>,
) -> Result<serde_json::Map<String, Value>, PluginError> {
    let Some(file) = version.scripts.hook(entity, hook) else {
        return Ok(fields);
    };
    let mut args = Vec::with_capacity(2);
    if let Some(old) = old {
        args.push(Value::Object(old.clone()));
    }
    args.push(Value::Object(fields.clone()));
    let lua = matches!(file.program, super::scripts::Program::Lua(_));
    match call(w, version, file, hook.name(), args, true)? {
        Value::Object(changed) if lua => Ok(lua_fields(&fields, changed)),
        Value::Object(changed) => Ok(changed),
        Value::Null => Ok(fields),
        // Lua has one empty table, which becomes `[]`: as fields, none.
        Value::Array(items) if lua && items.is_empty() => {
            Ok(lua_fields(&fields, serde_json::Map::new()))
        }
        other => Err(not_a_map(version, file, hook, &other)),
    }
}

/// The fields a Lua hook returned, with the `null`s it was given put back:
/// a Lua table cannot hold `nil`, so a `null` field (clearing it, in an
/// update) would otherwise vanish on its way through the hook. A hook that
/// wants another value sets one.
fn lua_fields(
    given: &serde_json::Map<String, Value>,
    mut changed: serde_json::Map<String, Value>,
) -> serde_json::Map<String, Value> {
    for (k, v) in given {
        if v.is_null() && !changed.contains_key(k) {
            changed.insert(k.clone(), Value::Null);
        }
    }
    changed
}

/// A hook whose return value is ignored (`after_*`, `before_delete`).
pub fn notify(
    w: &Writer<'_>,
    version: &Arc<PluginVersion>,
    entity: &str,
    hook: HookKind,
    args: Vec<Value>,
) -> Result<(), PluginError> {
    if let Some(file) = version.scripts.hook(entity, hook) {
        call(w, version, file, hook.name(), args, true)?;
    }
    Ok(())
}

/// `on_install(ctx)` / `on_uninstall(ctx)` if `plugin.rhai` defines it.
pub fn lifecycle(
    w: &Writer<'_>,
    version: &Arc<PluginVersion>,
    which: Lifecycle,
) -> Result<(), PluginError> {
    if let Some(file) = version.scripts.lifecycle(which) {
        call(w, version, file, which.name(), Vec::new(), false)?;
    }
    Ok(())
}
