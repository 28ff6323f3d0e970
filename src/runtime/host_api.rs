//! The host API: every operation a script can call, once, in plain Rust
//! over JSON values. The language bindings only convert values and map
//! [`HostError`] to their own error mechanism.
//!
//! The tenant is the invocation's, never an argument; entities are named
//! as the plugin's own (`"item"`) or, with `requires`, another installed
//! plugin's (`"other.entity"`); there is no table name and no SQL. Writes
//! go through the same validation and hooks as REST writes, each inside a
//! savepoint so that a refusal the script catches leaves nothing behind.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::invocation::Invocation;
use super::{FaultKind, ScriptError, ScriptFailure};
use crate::plugins::crud::{self, Writer};
use crate::plugins::install::{self, INSTALLED};
use crate::plugins::records::{self, parse_sort, parse_where};
use crate::plugins::{PluginError, PluginVersion};
use crate::storage::ListSpec;
use crate::validation::FieldError;

/// Why a host call did not return a value.
#[derive(Debug)]
pub enum HostError {
    /// A mistake in the call (bad argument, unknown entity, write in a GET
    /// route): a runtime error the script may catch.
    Script(String),
    /// A write refused by validation or a unique/ref conflict: the script
    /// may catch it; uncaught, it is the request's 400 / 409.
    Rejected(PluginError),
    /// The request's script time ran out.
    Timeout,
    /// Ends the request (`ctx.fail`, `ctx.require`, a limit, a failing
    /// hook, a storage fault); scripts cannot catch it.
    End(PluginError),
}

/// Severity of a `ctx.log` line.
#[derive(Debug, Clone, Copy)]
pub enum LogLevel {
    /// `ctx.log.info`.
    Info,
    /// `ctx.log.warn`.
    Warn,
    /// `ctx.log.error`.
    Error,
}

/// The host API as seen from one frame of the running invocation.
pub struct Host<'a> {
    inv: &'a Invocation,
    frame: usize,
}

fn field_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl<'a> Host<'a> {
    pub(crate) fn new(inv: &'a Invocation, frame: usize) -> Host<'a> {
        Host { inv, frame }
    }

    fn version(&self) -> Result<Arc<PluginVersion>, HostError> {
        self.inv
            .version(self.frame)
            .ok_or_else(|| HostError::Script("ctx is not valid outside its call".into()))
    }

    fn limit(&self, message: String) -> HostError {
        let plugin = self
            .inv
            .version(self.frame)
            .map(|v| v.manifest.name.clone())
            .unwrap_or_default();
        HostError::End(PluginError::Script(Box::new(ScriptFailure::Fault {
            plugin,
            kind: FaultKind::Limit,
            error: ScriptError {
                file: String::new(),
                line: 0,
                column: None,
                message,
            },
        })))
    }

    fn check_time(&self) -> Result<(), HostError> {
        if self.inv.expired() {
            Err(HostError::Timeout)
        } else {
            Ok(())
        }
    }

    /// `ctx.user`: `{id, email, name, roles}`, or null for system work.
    pub fn user(&self) -> Value {
        self.inv.caller.as_ref().map_or(Value::Null, |p| {
            let d = &p.inner;
            json!({"id": d.user_id, "email": d.email, "name": d.name, "roles": d.roles})
        })
    }

    /// `ctx.tenant`: `{id, slug, name}`.
    pub fn tenant(&self) -> Result<Value, HostError> {
        if let Some(v) = self.inv.tenant_json.get() {
            return Ok(v.clone());
        }
        let value = match &self.inv.caller {
            Some(p) => {
                json!({"id": p.inner.tenant_id, "slug": p.inner.tenant_slug, "name": p.inner.tenant_name})
            }
            None => {
                let row = self
                    .inv
                    .tx
                    .tenant_by_id(&self.inv.tenant_id)
                    .map_err(|e| HostError::End(e.into()))?;
                row.map_or(
                    Value::Null,
                    |t| json!({"id": t.id, "slug": t.slug, "name": t.name}),
                )
            }
        };
        let _ = self.inv.tenant_json.set(value.clone());
        Ok(value)
    }

    /// `ctx.plugin`: `{name, version}`.
    pub fn plugin(&self) -> Result<Value, HostError> {
        let v = self.version()?;
        Ok(json!({"name": v.manifest.name, "version": v.manifest.version}))
    }

    /// `ctx.settings`: this tenant's settings of this plugin, defaults filled in.
    pub fn settings(&self) -> Result<Value, HostError> {
        let frames = self.inv.frames.borrow();
        let frame = frames
            .get(self.frame)
            .ok_or_else(|| HostError::Script("ctx is not valid outside its call".into()))?;
        if let Some(v) = frame.settings.get() {
            return Ok(v.clone());
        }
        let map =
            crate::plugins::settings_in(&self.inv.tx, &frame.version.manifest, &self.inv.tenant_id)
                .map_err(HostError::End)?;
        let value = Value::Object(map);
        let _ = frame.settings.set(value.clone());
        Ok(value)
    }

    /// `ctx.can(permission)`; system work holds every permission.
    pub fn can(&self, permission: &str) -> bool {
        self.inv.caller.as_ref().is_none_or(|p| p.can(permission))
    }

    /// `ctx.require(permission)`: returns if held, else ends the request
    /// with 403 naming the permission.
    pub fn require(&self, permission: &str) -> Result<(), HostError> {
        if self.can(permission) {
            return Ok(());
        }
        let plugin = self.version()?.manifest.name.clone();
        Err(HostError::End(PluginError::Script(Box::new(
            ScriptFailure::Forbidden {
                plugin,
                permission: permission.to_owned(),
            },
        ))))
    }

    /// `ctx.fail(status, message)`: ends the request with that 4xx.
    pub fn fail(&self, status: i64, message: &str) -> HostError {
        let Some(status) = u16::try_from(status)
            .ok()
            .filter(|s| (400..=499).contains(s))
        else {
            return HostError::Script(format!(
                "ctx.fail: status must be an integer from 400 to 499 (got {status})"
            ));
        };
        match self.version() {
            Ok(v) => HostError::End(PluginError::Script(Box::new(ScriptFailure::Fail {
                plugin: v.manifest.name.clone(),
                status,
                message: message.to_owned(),
            }))),
            Err(e) => e,
        }
    }

    /// Resolve `"entity"` or `"other_plugin.entity"` for `call`.
    fn entity(&self, call: &str, name: &str) -> Result<(Arc<PluginVersion>, usize), HostError> {
        let own = self.version()?;
        let (version, entity) = match name.split_once('.') {
            None => (own, name),
            Some((other, entity)) => {
                if other == own.manifest.name {
                    (own, entity)
                } else {
                    if !own.manifest.requires.iter().any(|r| r == other) {
                        return Err(HostError::Script(format!(
                            "{call}: entity \"{name}\" belongs to plugin {other}, which plugin {} \
                             does not require (add requires = [\"{other}\"] to its manifest)",
                            own.manifest.name
                        )));
                    }
                    let Some(version) = self.inv.plugins.get(other).cloned() else {
                        return Err(HostError::Script(format!(
                            "{call}: entity \"{name}\": plugin {other} is not loaded"
                        )));
                    };
                    let installed = install::status(&self.inv.tx, &self.inv.tenant_id, other)
                        .map_err(HostError::End)?;
                    if installed != INSTALLED {
                        return Err(HostError::Script(format!(
                            "{call}: entity \"{name}\": plugin {other} is not installed for this tenant"
                        )));
                    }
                    (version, entity)
                }
            }
        };
        match version
            .manifest
            .entities
            .iter()
            .position(|e| e.name == entity)
        {
            Some(index) => Ok((version, index)),
            None => {
                let known: Vec<&str> = version
                    .manifest
                    .entities
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect();
                Err(HostError::Script(format!(
                    "{call}: unknown entity \"{name}\" (plugin {} has: {})",
                    version.manifest.name,
                    if known.is_empty() {
                        "no entities".to_owned()
                    } else {
                        known.join(", ")
                    }
                )))
            }
        }
    }

    /// `ctx.db.get(entity, id)`: the record, or null.
    pub fn get(&self, entity: &str, id: &str) -> Result<Value, HostError> {
        self.check_time()?;
        let (version, index) = self.entity("ctx.db.get", entity)?;
        let e = &version.manifest.entities[index];
        let row = self
            .inv
            .tx
            .entity_get(records::shape(e), &self.inv.tenant_id, id)
            .map_err(|err| HostError::End(err.into()))?;
        Ok(row.map_or(Value::Null, Value::Object))
    }

    fn where_filters(
        call: &str,
        version: &PluginVersion,
        index: usize,
        conditions: Option<&Value>,
    ) -> Result<Vec<crate::storage::Filter>, HostError> {
        let e = &version.manifest.entities[index];
        match conditions {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(map)) => parse_where(e, map).map_err(|errors| {
                HostError::Script(format!(
                    "{call}: bad where for {}: {}",
                    e.name,
                    field_errors(&errors)
                ))
            }),
            Some(other) => Err(HostError::Script(format!(
                "{call}: where must be a map of field conditions, not {other}"
            ))),
        }
    }

    /// `ctx.db.find(entity, where, opts)`: matching records (`opts`: `sort`,
    /// `limit`, `offset`); more rows than the per-find limit end the request.
    pub fn find(
        &self,
        entity: &str,
        conditions: Option<&Value>,
        opts: Option<&Value>,
    ) -> Result<Value, HostError> {
        self.check_time()?;
        let call = "ctx.db.find";
        let (version, index) = self.entity(call, entity)?;
        let filters = Self::where_filters(call, &version, index, conditions)?;
        let e = &version.manifest.entities[index];
        let cap = self.inv.registry.runtime().limits().max_rows;
        let mut spec = ListSpec {
            filters,
            sort: vec![("created_at".to_owned(), true), ("id".to_owned(), true)],
            limit: u32::try_from(cap.saturating_add(1)).unwrap_or(u32::MAX),
            offset: 0,
            count: false,
        };
        let mut explicit_limit = false;
        match opts {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("sort", Value::String(s)) => {
                            spec.sort = parse_sort(e, s).map_err(|errors| {
                                HostError::Script(format!("{call}: {}", field_errors(&errors)))
                            })?;
                        }
                        ("limit", v) if v.as_u64().is_some_and(|n| n >= 1) => {
                            let n = v.as_u64().unwrap_or(1);
                            if n > cap as u64 {
                                return Err(self.limit(format!(
                                    "{call}: opts.limit {n} is above the limit of {cap} rows per find"
                                )));
                            }
                            spec.limit = u32::try_from(n).unwrap_or(u32::MAX);
                            explicit_limit = true;
                        }
                        ("offset", v) if v.as_u64().is_some() => {
                            spec.offset =
                                u32::try_from(v.as_u64().unwrap_or(0)).unwrap_or(u32::MAX);
                        }
                        ("sort" | "limit" | "offset", v) => {
                            return Err(HostError::Script(format!(
                                "{call}: opts.{key} has a wrong value {v} (sort is a text like \"-quantity,name\", limit an integer >= 1, offset an integer >= 0)"
                            )));
                        }
                        _ => {
                            return Err(HostError::Script(format!(
                                "{call}: unknown option \"{key}\" (expected sort, limit, offset)"
                            )));
                        }
                    }
                }
            }
            Some(other) => {
                return Err(HostError::Script(format!(
                    "{call}: opts must be a map (sort, limit, offset), not {other}"
                )));
            }
        }
        let (rows, _) = self
            .inv
            .tx
            .entity_list(records::shape(e), &self.inv.tenant_id, &spec)
            .map_err(|err| HostError::End(err.into()))?;
        if !explicit_limit && rows.len() > cap {
            return Err(self.limit(format!(
                "{call}: {entity} matches more than {cap} rows, the limit per find \
                 (narrow where, or page with opts.limit and opts.offset)"
            )));
        }
        Ok(Value::Array(rows.into_iter().map(Value::Object).collect()))
    }

    /// `ctx.db.first(entity, where)`: the first match (default order), or null.
    pub fn first(&self, entity: &str, conditions: Option<&Value>) -> Result<Value, HostError> {
        let opts = json!({"limit": 1});
        match self.find(entity, conditions, Some(&opts))? {
            Value::Array(mut rows) if !rows.is_empty() => Ok(rows.swap_remove(0)),
            _ => Ok(Value::Null),
        }
    }

    /// `ctx.db.count(entity, where)`.
    pub fn count(&self, entity: &str, conditions: Option<&Value>) -> Result<i64, HostError> {
        self.check_time()?;
        let call = "ctx.db.count";
        let (version, index) = self.entity(call, entity)?;
        let filters = Self::where_filters(call, &version, index, conditions)?;
        let spec = ListSpec {
            filters,
            sort: vec![("id".to_owned(), true)],
            limit: 0,
            offset: 0,
            count: true,
        };
        let e = &version.manifest.entities[index];
        let (_, total) = self
            .inv
            .tx
            .entity_list(records::shape(e), &self.inv.tenant_id, &spec)
            .map_err(|err| HostError::End(err.into()))?;
        Ok(i64::try_from(total.unwrap_or(0)).unwrap_or(i64::MAX))
    }

    fn writable(&self, call: &str) -> Result<(), HostError> {
        self.check_time()?;
        if self.inv.tx.is_read_only() {
            return Err(HostError::Script(format!(
                "{call}: a GET route runs in a read-only transaction; writes need a POST, PUT, PATCH or DELETE route"
            )));
        }
        Ok(())
    }

    fn object(call: &str, what: &str, v: Value) -> Result<Map<String, Value>, HostError> {
        match v {
            Value::Object(map) => Ok(map),
            other => Err(HostError::Script(format!(
                "{call}: {what} must be a map of fields, not {other}"
            ))),
        }
    }

    /// Run a write as the invocation's caller. When the entity has hooks
    /// it runs in a savepoint, so that a refusal the script catches leaves
    /// nothing of the hooks' writes; without hooks a refused write has
    /// written nothing (every check comes before the statement).
    fn write<T>(
        &self,
        version: &PluginVersion,
        index: usize,
        f: impl FnOnce(&Writer<'_>) -> Result<T, PluginError>,
    ) -> Result<T, HostError> {
        let inv = self.inv;
        let run = |tx: &crate::storage::Tx<'_>| {
            let writer = Writer {
                tx,
                registry: &inv.registry,
                tenant_id: &inv.tenant_id,
                caller: inv.caller.as_ref(),
                request_id: inv.request_id.as_deref(),
            };
            f(&writer)
        };
        let hooked = version
            .scripts
            .has_hooks(&version.manifest.entities[index].name);
        let result = if hooked {
            inv.tx.savepoint(run)
        } else {
            run(&inv.tx)
        };
        result.map_err(|e| match e {
            PluginError::Invalid { .. } | PluginError::Conflict(_) | PluginError::BadRequest(_) => {
                HostError::Rejected(e)
            }
            other => HostError::End(other),
        })
    }

    /// `ctx.db.insert(entity, fields)`: the new record.
    pub fn insert(&self, entity: &str, fields: Value) -> Result<Value, HostError> {
        let call = "ctx.db.insert";
        self.writable(call)?;
        let (version, index) = self.entity(call, entity)?;
        let body = Self::object(call, "fields", fields)?;
        self.write(&version, index, |w| crud::insert(w, &version, index, body))
            .map(Value::Object)
    }

    /// `ctx.db.update(entity, id, changes)`: the updated record, or null.
    pub fn update(&self, entity: &str, id: &str, changes: Value) -> Result<Value, HostError> {
        let call = "ctx.db.update";
        self.writable(call)?;
        let (version, index) = self.entity(call, entity)?;
        let body = Self::object(call, "changes", changes)?;
        self.write(&version, index, |w| {
            crud::update(w, &version, index, id, body)
        })
        .map(|r| r.map_or(Value::Null, Value::Object))
    }

    /// `ctx.db.delete(entity, id)`: whether a row was deleted.
    pub fn delete(&self, entity: &str, id: &str) -> Result<bool, HostError> {
        let call = "ctx.db.delete";
        self.writable(call)?;
        let (version, index) = self.entity(call, entity)?;
        self.write(&version, index, |w| crud::delete(w, &version, index, id))
    }

    /// `ctx.log.info/warn/error(message)`: a log line tagged with plugin,
    /// tenant and request id.
    pub fn log(&self, level: LogLevel, message: &str) {
        let plugin = self
            .inv
            .version(self.frame)
            .map(|v| v.manifest.name.clone())
            .unwrap_or_default();
        let tenant = self.inv.tenant_id.as_str();
        let request_id = self.inv.request_id.as_deref().unwrap_or("-");
        match level {
            LogLevel::Info => {
                tracing::info!(target: "plinth::script", plugin, tenant, request_id, "{message}");
            }
            LogLevel::Warn => {
                tracing::warn!(target: "plinth::script", plugin, tenant, request_id, "{message}");
            }
            LogLevel::Error => {
                tracing::error!(target: "plinth::script", plugin, tenant, request_id, "{message}");
            }
        }
    }

    /// `ctx.now()`: RFC 3339 UTC.
    pub fn now() -> String {
        crate::storage::now_rfc3339()
    }

    /// `ctx.uuid()`: a new UUID v7.
    pub fn uuid() -> String {
        uuid::Uuid::now_v7().to_string()
    }
}

/// The value a refused write is thrown into the script as:
/// `{status, message, errors: [{field, code, message}]}`.
pub fn rejection_value(e: &PluginError) -> Value {
    let status = match e {
        PluginError::Conflict(_) => 409,
        _ => 400,
    };
    let errors: Vec<Value> = match e {
        PluginError::Invalid { errors, .. } => errors
            .iter()
            .map(|f| json!({"field": f.field, "code": f.code, "message": f.message}))
            .collect(),
        _ => Vec::new(),
    };
    json!({"status": status, "message": e.to_string(), "errors": errors})
}
