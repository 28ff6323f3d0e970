//! The host API registered into Rhai: `ctx` and its `db` and `log` members
//! are small handles naming a frame of the running invocation; every
//! function converts its arguments, calls [`Host`], and converts the answer
//! or the [`HostError`] back.
//!
//! Error mapping: a script mistake or a refused write is a runtime error the
//! script may `catch` (a refused write is thrown as `#{status, message,
//! errors}`); everything that ends the request (`ctx.fail`, `ctx.require`,
//! limits, failing hooks, time) is recorded on the invocation and unwinds
//! the script as a termination, which `try`/`catch` cannot intercept.

use rhai::{Dynamic, Engine, EvalAltResult, Position};
use serde_json::Value;

use super::convert::{to_dynamic, to_json};
use crate::runtime::host_api::{Host, HostError, LogLevel, rejection_value};
use crate::runtime::invocation::{self, Invocation};

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// `ctx`: a handle to one frame of the running invocation.
#[derive(Debug, Clone, Copy)]
pub struct CtxHandle {
    frame: usize,
}

impl CtxHandle {
    /// The handle of a frame.
    pub fn new(frame: usize) -> CtxHandle {
        CtxHandle { frame }
    }
}

/// `ctx.db`.
#[derive(Debug, Clone, Copy)]
struct DbHandle {
    frame: usize,
}

/// `ctx.log`.
#[derive(Debug, Clone, Copy)]
struct LogHandle {
    frame: usize,
}

fn runtime_error(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(message.into()),
        Position::NONE,
    ))
}

fn to_rhai(inv: &Invocation, e: HostError) -> Box<EvalAltResult> {
    match e {
        HostError::Script(message) => runtime_error(message),
        HostError::Rejected(err) => {
            let value = rejection_value(&err);
            let thrown = to_dynamic(&value);
            *inv.rejected.borrow_mut() = Some((value, err));
            Box::new(EvalAltResult::ErrorRuntime(thrown, Position::NONE))
        }
        HostError::Timeout => Box::new(EvalAltResult::ErrorTerminated(
            Dynamic::from("script time limit"),
            Position::NONE,
        )),
        HostError::End(err) => {
            *inv.pending.borrow_mut() = Some(err);
            Box::new(EvalAltResult::ErrorTerminated(
                Dynamic::UNIT,
                Position::NONE,
            ))
        }
    }
}

fn with_host<T>(
    frame: usize,
    f: impl FnOnce(&Host<'_>) -> std::result::Result<T, HostError>,
) -> Result<T> {
    let Some(inv) = invocation::current() else {
        return Err(runtime_error(
            "ctx can only be used during the script call it was given to",
        ));
    };
    let host = Host::new(&inv, frame);
    f(&host).map_err(|e| to_rhai(&inv, e))
}

fn json_arg(call: &str, what: &str, v: &Dynamic) -> Result<Value> {
    to_json(v).map_err(|why| runtime_error(format!("{call}: {what} is not JSON data: {why}")))
}

fn text_arg(call: &str, what: &str, v: &Dynamic) -> Result<String> {
    if v.is_string() {
        Ok(v.clone().into_string().unwrap_or_default())
    } else {
        Err(runtime_error(format!(
            "{call}: {what} must be a string, not {}",
            v.type_name()
        )))
    }
}

fn optional(v: Option<Value>) -> Option<Value> {
    v.filter(|v| !v.is_null())
}

/// Register `ctx`, `ctx.db` and `ctx.log` into `engine`.
pub fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<CtxHandle>("Ctx")
        .register_type_with_name::<DbHandle>("Db")
        .register_type_with_name::<LogHandle>("Log");

    engine.register_get("user", |c: &mut CtxHandle| -> Result<Dynamic> {
        with_host(c.frame, |h| Ok(to_dynamic(&h.user())))
    });
    engine.register_get("tenant", |c: &mut CtxHandle| -> Result<Dynamic> {
        with_host(c.frame, |h| h.tenant().map(|v| to_dynamic(&v)))
    });
    engine.register_get("plugin", |c: &mut CtxHandle| -> Result<Dynamic> {
        with_host(c.frame, |h| h.plugin().map(|v| to_dynamic(&v)))
    });
    engine.register_get("settings", |c: &mut CtxHandle| -> Result<Dynamic> {
        with_host(c.frame, |h| h.settings().map(|v| to_dynamic(&v)))
    });
    engine.register_get("db", |c: &mut CtxHandle| DbHandle { frame: c.frame });
    engine.register_get("log", |c: &mut CtxHandle| LogHandle { frame: c.frame });
    engine.register_fn("can", |c: &mut CtxHandle, p: Dynamic| -> Result<bool> {
        let p = text_arg("ctx.can", "permission", &p)?;
        with_host(c.frame, |h| Ok(h.can(&p)))
    });
    engine.register_fn("require", |c: &mut CtxHandle, p: Dynamic| -> Result<()> {
        let p = text_arg("ctx.require", "permission", &p)?;
        with_host(c.frame, |h| h.require(&p))
    });
    engine.register_fn(
        "fail",
        |c: &mut CtxHandle, status: Dynamic, message: Dynamic| -> Result<()> {
            let Ok(status) = status.as_int() else {
                return Err(runtime_error(format!(
                    "ctx.fail: status must be an integer from 400 to 499, not {}",
                    status.type_name()
                )));
            };
            let message = if message.is_string() {
                message.into_string().unwrap_or_default()
            } else {
                message.to_string()
            };
            with_host(c.frame, |h| Err(h.fail(status, &message)))
        },
    );
    engine.register_fn("now", |_: &mut CtxHandle| Host::now());
    engine.register_fn("uuid", |_: &mut CtxHandle| Host::uuid());

    register_db(engine);

    for (name, level) in [
        ("info", LogLevel::Info),
        ("warn", LogLevel::Warn),
        ("error", LogLevel::Error),
    ] {
        engine.register_fn(
            name,
            move |l: &mut LogHandle, message: Dynamic| -> Result<()> {
                let text = if message.is_string() {
                    message.into_string().unwrap_or_default()
                } else {
                    to_json(&message).map_or_else(|_| message.to_string(), |v| v.to_string())
                };
                with_host(l.frame, |h| {
                    h.log(level, &text);
                    Ok(())
                })
            },
        );
    }
}

fn register_db(engine: &mut Engine) {
    engine.register_fn(
        "get",
        |d: &mut DbHandle, entity: Dynamic, id: Dynamic| -> Result<Dynamic> {
            let entity = text_arg("ctx.db.get", "entity", &entity)?;
            let id = text_arg("ctx.db.get", "id", &id)?;
            with_host(d.frame, |h| h.get(&entity, &id).map(|v| to_dynamic(&v)))
        },
    );
    fn find(
        d: DbHandle,
        entity: &Dynamic,
        w: Option<&Dynamic>,
        o: Option<&Dynamic>,
    ) -> Result<Dynamic> {
        let entity = text_arg("ctx.db.find", "entity", entity)?;
        let w = optional(w.map(|w| json_arg("ctx.db.find", "where", w)).transpose()?);
        let o = optional(o.map(|o| json_arg("ctx.db.find", "opts", o)).transpose()?);
        with_host(d.frame, |h| {
            h.find(&entity, w.as_ref(), o.as_ref())
                .map(|v| to_dynamic(&v))
        })
    }
    engine.register_fn("find", |d: &mut DbHandle, e: Dynamic| {
        find(*d, &e, None, None)
    });
    engine.register_fn("find", |d: &mut DbHandle, e: Dynamic, w: Dynamic| {
        find(*d, &e, Some(&w), None)
    });
    engine.register_fn(
        "find",
        |d: &mut DbHandle, e: Dynamic, w: Dynamic, o: Dynamic| find(*d, &e, Some(&w), Some(&o)),
    );
    fn first(d: DbHandle, entity: &Dynamic, w: Option<&Dynamic>) -> Result<Dynamic> {
        let entity = text_arg("ctx.db.first", "entity", entity)?;
        let w = optional(
            w.map(|w| json_arg("ctx.db.first", "where", w))
                .transpose()?,
        );
        with_host(d.frame, |h| {
            h.first(&entity, w.as_ref()).map(|v| to_dynamic(&v))
        })
    }
    engine.register_fn("first", |d: &mut DbHandle, e: Dynamic| first(*d, &e, None));
    engine.register_fn("first", |d: &mut DbHandle, e: Dynamic, w: Dynamic| {
        first(*d, &e, Some(&w))
    });
    fn count(d: DbHandle, entity: &Dynamic, w: Option<&Dynamic>) -> Result<i64> {
        let entity = text_arg("ctx.db.count", "entity", entity)?;
        let w = optional(
            w.map(|w| json_arg("ctx.db.count", "where", w))
                .transpose()?,
        );
        with_host(d.frame, |h| h.count(&entity, w.as_ref()))
    }
    engine.register_fn("count", |d: &mut DbHandle, e: Dynamic| count(*d, &e, None));
    engine.register_fn("count", |d: &mut DbHandle, e: Dynamic, w: Dynamic| {
        count(*d, &e, Some(&w))
    });
    engine.register_fn(
        "insert",
        |d: &mut DbHandle, entity: Dynamic, fields: Dynamic| -> Result<Dynamic> {
            let entity = text_arg("ctx.db.insert", "entity", &entity)?;
            let fields = json_arg("ctx.db.insert", "fields", &fields)?;
            with_host(d.frame, |h| {
                h.insert(&entity, fields).map(|v| to_dynamic(&v))
            })
        },
    );
    engine.register_fn(
        "update",
        |d: &mut DbHandle, entity: Dynamic, id: Dynamic, changes: Dynamic| -> Result<Dynamic> {
            let entity = text_arg("ctx.db.update", "entity", &entity)?;
            let id = text_arg("ctx.db.update", "id", &id)?;
            let changes = json_arg("ctx.db.update", "changes", &changes)?;
            with_host(d.frame, |h| {
                h.update(&entity, &id, changes).map(|v| to_dynamic(&v))
            })
        },
    );
    engine.register_fn(
        "delete",
        |d: &mut DbHandle, entity: Dynamic, id: Dynamic| -> Result<bool> {
            let entity = text_arg("ctx.db.delete", "entity", &entity)?;
            let id = text_arg("ctx.db.delete", "id", &id)?;
            with_host(d.frame, |h| h.delete(&entity, &id))
        },
    );
}
