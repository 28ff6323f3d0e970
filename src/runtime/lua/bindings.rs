//! The host API as the Lua functions `sandbox.lua` wraps into `ctx`: each
//! converts its arguments, calls [`Host`] for the innermost frame of the
//! running invocation, and answers `(true, value)`, or `(false, error)` for
//! what a script may catch (a mistake, as text; a refused write, as the
//! table `{status, message, errors}`). What ends the request (`ctx.fail`,
//! `ctx.require`, a failing hook, the time limit) is recorded on the
//! invocation and raised, and the sandbox's `pcall` never stops it.

use mlua::{Lua, MultiValue, Table, Value as LuaValue};
use serde_json::Value;

use super::convert::{Bounds, JsonError, to_json, to_lua};
use crate::runtime::FaultKind;
use crate::runtime::host_api::{Host, HostError, LogLevel, rejection_value};
use crate::runtime::invocation;

type Answer = mlua::Result<(bool, LuaValue)>;

/// A catchable error: the message as the error value.
fn mistake(lua: &Lua, message: impl AsRef<str>) -> Answer {
    Ok((
        false,
        LuaValue::String(lua.create_string(message.as_ref())?),
    ))
}

/// Run `f` against the host for the innermost frame.
fn with_host(lua: &Lua, f: impl FnOnce(&Host<'_>) -> Result<Value, HostError>) -> Answer {
    let Some(inv) = invocation::current() else {
        return mistake(
            lua,
            "ctx can only be used during the script call it was given to",
        );
    };
    let frame = inv.frames.borrow().len().saturating_sub(1);
    let host = Host::new(&inv, frame);
    match f(&host) {
        Ok(v) => Ok((true, to_lua(lua, &v)?)),
        Err(HostError::Script(message)) => mistake(lua, message),
        Err(HostError::Rejected(err)) => {
            let value = rejection_value(&err);
            let thrown = to_lua(lua, &value)?;
            *inv.rejected.borrow_mut() = Some((value, err));
            Ok((false, thrown))
        }
        Err(HostError::Timeout) => Err(super::end(
            lua,
            FaultKind::Timeout,
            "script time limit exceeded",
        )),
        Err(HostError::End(err)) => {
            *inv.pending.borrow_mut() = Some(err);
            Err(mlua::Error::RuntimeError("the request ended".into()))
        }
    }
}

fn text(call: &str, what: &str, v: &LuaValue) -> Result<String, String> {
    match v {
        LuaValue::String(s) => s
            .to_str()
            .map(|s| s.to_owned())
            .map_err(|_| format!("{call}: {what} is not UTF-8 text")),
        other => Err(format!(
            "{call}: {what} must be a string, not {}",
            other.type_name()
        )),
    }
}

/// A JSON argument; past a limit it ends the request (recorded, so the
/// sandbox's `pcall` does not catch the error this answers).
fn json(
    lua: &Lua,
    bounds: Bounds,
    call: &str,
    what: &str,
    v: &LuaValue,
) -> Result<Option<Value>, String> {
    match v {
        LuaValue::Nil => Ok(None),
        other => match to_json(other, bounds) {
            Ok(v) => Ok(Some(empty_object(v))),
            Err(JsonError::Invalid(why)) => Err(format!("{call}: {what} is not JSON data: {why}")),
            Err(JsonError::Limit(limit)) => match super::end(lua, FaultKind::Limit, limit) {
                mlua::Error::RuntimeError(text) => Err(text),
                other => Err(other.to_string()),
            },
        },
    }
}

/// A value shown in a message (`ctx.fail`, `ctx.log`).
fn shown(v: &LuaValue) -> String {
    match v {
        LuaValue::String(s) => s.to_string_lossy(),
        other => to_json(other, Bounds::NONE)
            .map_or_else(|_| other.type_name().to_owned(), |v| v.to_string()),
    }
}

fn arg(args: &MultiValue, i: usize) -> LuaValue {
    args.get(i).cloned().unwrap_or(LuaValue::Nil)
}

/// Register one host function taking its arguments as given.
fn add(
    lua: &Lua,
    host: &Table,
    name: &str,
    f: impl Fn(&Lua, MultiValue) -> Answer + 'static,
) -> mlua::Result<()> {
    host.raw_set(name, lua.create_function(f)?)
}

/// `f` with a mistake in the arguments answered as a catchable error.
fn checked(
    lua: &Lua,
    parsed: Result<impl FnOnce(&Host<'_>) -> Result<Value, HostError>, String>,
) -> Answer {
    match parsed {
        Ok(f) => with_host(lua, f),
        Err(message) => mistake(lua, message),
    }
}

/// The table of host functions the sandbox is built with.
pub fn host_table(lua: &Lua, bounds: Bounds) -> mlua::Result<Table> {
    let host = lua.create_table()?;

    // Whether an error caught by the sandbox's pcall ends the request.
    host.raw_set(
        "ending",
        lua.create_function(|_, err: LuaValue| {
            let memory = matches!(&err, LuaValue::String(s) if s.to_string_lossy().contains("not enough memory"));
            Ok(invocation::current().is_some_and(|inv| {
                inv.pending.borrow().is_some() || inv.ending.borrow().is_some()
            }) || memory)
        })?,
    )?;
    host.raw_set(
        "limit",
        lua.create_function(|lua, message: String| -> mlua::Result<()> {
            Err(super::end(lua, FaultKind::Limit, &message))
        })?,
    )?;

    host.raw_set(
        "note_thrown",
        lua.create_function(|lua, ()| {
            super::note_thrown(lua);
            Ok(())
        })?,
    )?;

    add(lua, &host, "user", |lua, _| {
        with_host(lua, |h| Ok(h.user()))
    })?;
    add(lua, &host, "tenant", |lua, _| {
        with_host(lua, |h| h.tenant())
    })?;
    add(lua, &host, "plugin", |lua, _| {
        with_host(lua, |h| h.plugin())
    })?;
    add(lua, &host, "settings", |lua, _| {
        with_host(lua, |h| h.settings())
    })?;
    add(lua, &host, "can", |lua, args| {
        checked(
            lua,
            text("ctx.can", "permission", &arg(&args, 0))
                .map(|p| move |h: &Host<'_>| Ok(Value::Bool(h.can(&p)))),
        )
    })?;
    add(lua, &host, "require", |lua, args| {
        checked(
            lua,
            text("ctx.require", "permission", &arg(&args, 0))
                .map(|p| move |h: &Host<'_>| h.require(&p).map(|()| Value::Null)),
        )
    })?;
    add(lua, &host, "fail", |lua, args| {
        // An integer, as in Rhai (and as a response envelope's status).
        let status = match arg(&args, 0) {
            LuaValue::Integer(i) => Ok(i),
            LuaValue::Number(_) => {
                Err("ctx.fail: status must be an integer from 400 to 499, not a float".to_owned())
            }
            other => Err(format!(
                "ctx.fail: status must be an integer from 400 to 499, not {}",
                other.type_name()
            )),
        };
        let message = match arg(&args, 1) {
            LuaValue::Nil => String::new(),
            other => shown(&other),
        };
        checked(
            lua,
            status.map(|status| move |h: &Host<'_>| Err(h.fail(status, &message))),
        )
    })?;
    add(lua, &host, "now", |lua, _| {
        Ok((true, to_lua(lua, &Value::String(Host::now()))?))
    })?;
    add(lua, &host, "uuid", |lua, _| {
        Ok((true, to_lua(lua, &Value::String(Host::uuid()))?))
    })?;

    for (name, level) in [
        ("info", LogLevel::Info),
        ("warn", LogLevel::Warn),
        ("error", LogLevel::Error),
    ] {
        add(lua, &host, name, move |lua, args| {
            let message = shown(&arg(&args, 0));
            with_host(lua, |h| {
                h.log(level, &message);
                Ok(Value::Null)
            })
        })?;
    }

    add(lua, &host, "get", |lua, args| {
        let parsed = text("ctx.db.get", "entity", &arg(&args, 0))
            .and_then(|e| text("ctx.db.get", "id", &arg(&args, 1)).map(|id| (e, id)));
        checked(
            lua,
            parsed.map(|(e, id)| move |h: &Host<'_>| h.get(&e, &id)),
        )
    })?;
    add(lua, &host, "find", move |lua, args| {
        let parsed = text("ctx.db.find", "entity", &arg(&args, 0)).and_then(|e| {
            let w = json(lua, bounds, "ctx.db.find", "where", &arg(&args, 1))?;
            let o = json(lua, bounds, "ctx.db.find", "opts", &arg(&args, 2))?;
            Ok((e, w, o))
        });
        checked(
            lua,
            parsed.map(|(e, w, o)| move |h: &Host<'_>| h.find(&e, w.as_ref(), o.as_ref())),
        )
    })?;
    add(lua, &host, "first", move |lua, args| {
        let parsed = text("ctx.db.first", "entity", &arg(&args, 0)).and_then(|e| {
            Ok((
                e,
                json(lua, bounds, "ctx.db.first", "where", &arg(&args, 1))?,
            ))
        });
        checked(
            lua,
            parsed.map(|(e, w)| move |h: &Host<'_>| h.first(&e, w.as_ref())),
        )
    })?;
    add(lua, &host, "count", move |lua, args| {
        let parsed = text("ctx.db.count", "entity", &arg(&args, 0)).and_then(|e| {
            Ok((
                e,
                json(lua, bounds, "ctx.db.count", "where", &arg(&args, 1))?,
            ))
        });
        checked(
            lua,
            parsed.map(|(e, w)| move |h: &Host<'_>| h.count(&e, w.as_ref()).map(Value::from)),
        )
    })?;
    add(lua, &host, "insert", move |lua, args| {
        let parsed = text("ctx.db.insert", "entity", &arg(&args, 0)).and_then(|e| {
            let fields = json(lua, bounds, "ctx.db.insert", "fields", &arg(&args, 1))?
                .unwrap_or(Value::Object(serde_json::Map::new()));
            Ok((e, fields))
        });
        checked(
            lua,
            parsed.map(|(e, fields)| move |h: &Host<'_>| h.insert(&e, empty_object(fields))),
        )
    })?;
    add(lua, &host, "update", move |lua, args| {
        let parsed = text("ctx.db.update", "entity", &arg(&args, 0)).and_then(|e| {
            let id = text("ctx.db.update", "id", &arg(&args, 1))?;
            let changes = json(lua, bounds, "ctx.db.update", "changes", &arg(&args, 2))?
                .unwrap_or(Value::Object(serde_json::Map::new()));
            Ok((e, id, changes))
        });
        checked(
            lua,
            parsed.map(|(e, id, changes)| {
                move |h: &Host<'_>| h.update(&e, &id, empty_object(changes))
            }),
        )
    })?;
    add(lua, &host, "delete", |lua, args| {
        let parsed = text("ctx.db.delete", "entity", &arg(&args, 0))
            .and_then(|e| text("ctx.db.delete", "id", &arg(&args, 1)).map(|id| (e, id)));
        checked(
            lua,
            parsed.map(|(e, id)| move |h: &Host<'_>| h.delete(&e, &id).map(Value::Bool)),
        )
    })?;
    Ok(host)
}

/// An empty Lua table converts to `[]`; as the fields of a write it means
/// no fields.
fn empty_object(v: Value) -> Value {
    match v {
        Value::Array(items) if items.is_empty() => Value::Object(serde_json::Map::new()),
        other => other,
    }
}
