//! Generated CRUD for plugin entities: the manifest's permission per
//! operation (an operation without one is not exposed), the plugin must be
//! installed for the caller's tenant, full validation, `ref` checks inside
//! the tenant and plugin, unique conflicts, and referenced rows protected
//! from deletion. The tenant always comes from the principal.
//!
//! The `*_tx` functions are the row operations themselves; [`insert`],
//! [`update`] and [`delete`] wrap them with the entity's hooks, and are what
//! REST writes and script writes (`ctx.db.*`) both call.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::error::PluginError;
use super::install::{self, INSTALLED};
use super::manifest::{EntitySchema, FieldType, Manifest};
use super::records::{self, parse_list_query, shape, validate_create, validate_update};
use super::registry::Registry;
use super::{PluginVersion, Plugins};
use crate::auth::Principal;
use crate::runtime::{HookKind, hooks};
use crate::storage::{SqlValue, Tx, now_rfc3339};

/// Who writes, in which transaction and tenant (the tenant is always the
/// caller's; `caller` is `None` for system work).
pub struct Writer<'a> {
    /// The request's transaction.
    pub tx: &'a Tx<'a>,
    /// Loaded plugins (and the script runtime).
    pub registry: &'a Registry,
    /// The tenant every statement is scoped to.
    pub tenant_id: &'a str,
    /// The caller, for `created_by` and the hooks' `ctx.user`.
    pub caller: Option<&'a Principal>,
    /// For script log lines.
    pub request_id: Option<&'a str>,
}

/// Create a record: `before_create` (may change the fields or fail),
/// validation, insert, `after_create`.
pub fn insert(
    w: &Writer<'_>,
    version: &Arc<PluginVersion>,
    index: usize,
    body: Map<String, Value>,
) -> Result<Map<String, Value>, PluginError> {
    let m = &version.manifest;
    let e = &m.entities[index];
    let body = hooks::before(w, version, &e.name, HookKind::BeforeCreate, body, None)?;
    let record = insert_tx(
        w.tx,
        m,
        e,
        w.tenant_id,
        w.caller.map(Principal::user_id),
        &body,
    )?;
    hooks::notify(
        w,
        version,
        &e.name,
        HookKind::AfterCreate,
        vec![Value::Object(record.clone())],
    )?;
    Ok(record)
}

/// Change a record: `before_update(old, changes)` (may change the changes
/// or fail), validation, update, `after_update(old, new)`; `None` if no
/// such row in the tenant.
pub fn update(
    w: &Writer<'_>,
    version: &Arc<PluginVersion>,
    index: usize,
    id: &str,
    changes: Map<String, Value>,
) -> Result<Option<Map<String, Value>>, PluginError> {
    let m = &version.manifest;
    let e = &m.entities[index];
    if !version.scripts.has_hooks(&e.name) {
        return update_tx(w.tx, m, e, w.tenant_id, id, &changes);
    }
    let Some(old) = w.tx.entity_get(shape(e), w.tenant_id, id)? else {
        return Ok(None);
    };
    let changes = hooks::before(
        w,
        version,
        &e.name,
        HookKind::BeforeUpdate,
        changes,
        Some(&old),
    )?;
    let Some(new) = update_tx(w.tx, m, e, w.tenant_id, id, &changes)? else {
        return Ok(None);
    };
    hooks::notify(
        w,
        version,
        &e.name,
        HookKind::AfterUpdate,
        vec![Value::Object(old), Value::Object(new.clone())],
    )?;
    Ok(Some(new))
}

/// Delete a record: `before_delete` (may fail), the reference check,
/// delete, `after_delete`; false if no such row in the tenant.
pub fn delete(
    w: &Writer<'_>,
    version: &Arc<PluginVersion>,
    index: usize,
    id: &str,
) -> Result<bool, PluginError> {
    let m = &version.manifest;
    let e = &m.entities[index];
    if !version.scripts.has_hooks(&e.name) {
        return delete_tx(w.tx, m, e, w.tenant_id, id);
    }
    let Some(record) = w.tx.entity_get(shape(e), w.tenant_id, id)? else {
        return Ok(false);
    };
    hooks::notify(
        w,
        version,
        &e.name,
        HookKind::BeforeDelete,
        vec![Value::Object(record.clone())],
    )?;
    let deleted = delete_tx(w.tx, m, e, w.tenant_id, id)?;
    if deleted {
        hooks::notify(
            w,
            version,
            &e.name,
            HookKind::AfterDelete,
            vec![Value::Object(record)],
        )?;
    }
    Ok(deleted)
}

/// A generated operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// GET collection.
    List,
    /// GET one.
    Read,
    /// POST.
    Create,
    /// PATCH.
    Update,
    /// DELETE.
    Delete,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::List => "list",
            Op::Read => "read",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

fn invalid(errors: Vec<crate::validation::FieldError>) -> PluginError {
    let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    PluginError::Invalid {
        detail: format!("invalid fields: {}", names.join(", ")),
        errors,
    }
}

fn not_found(entity: &str) -> PluginError {
    PluginError::NotFound(format!("no {entity} with this id"))
}

pub(crate) fn ensure_installed(
    tx: &Tx<'_>,
    tenant_id: &str,
    plugin: &str,
) -> Result<(), PluginError> {
    if install::status(tx, tenant_id, plugin)? == INSTALLED {
        Ok(())
    } else {
        Err(PluginError::Forbidden(format!(
            "plugin {plugin} is not installed for this tenant"
        )))
    }
}

/// `ref` values must name a row of the target entity in the same tenant;
/// adds one error per bad reference to `errors`, then fails if any.
fn check_refs(
    tx: &Tx<'_>,
    manifest: &Manifest,
    entity: &EntitySchema,
    tenant_id: &str,
    values: &[(String, SqlValue, Value)],
    mut errors: Vec<crate::validation::FieldError>,
) -> Result<(), PluginError> {
    for (name, sql, _) in values {
        let Some(field) = entity.field(name) else {
            continue;
        };
        let (FieldType::Ref, Some(target)) = (field.ty, field.entity.as_deref()) else {
            continue;
        };
        if *sql == SqlValue::Null {
            continue;
        }
        let Some(target_entity) = manifest.entity(target) else {
            continue;
        };
        if !tx.entity_value_exists(&target_entity.table, tenant_id, "id", sql, None)? {
            errors.push(crate::validation::FieldError::new(
                name.clone(),
                "ref",
                format!("no {target} with this id in this tenant"),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(invalid(errors))
    }
}

/// Unique fields must not repeat within the tenant.
fn check_unique(
    tx: &Tx<'_>,
    entity: &EntitySchema,
    tenant_id: &str,
    values: &[(String, SqlValue, Value)],
    except_id: Option<&str>,
) -> Result<(), PluginError> {
    for (name, sql, json) in values {
        let unique = entity.field(name).is_some_and(|f| f.unique);
        if unique
            && *sql != SqlValue::Null
            && tx.entity_value_exists(&entity.table, tenant_id, name, sql, except_id)?
        {
            return Err(PluginError::Conflict(format!(
                "{} {name} {json} already exists in this tenant",
                entity.name
            )));
        }
    }
    Ok(())
}

/// Insert a validated record; returns it as stored.
pub fn insert_tx(
    tx: &Tx<'_>,
    manifest: &Manifest,
    entity: &EntitySchema,
    tenant_id: &str,
    user_id: Option<&str>,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, PluginError> {
    let (values, errors) = validate_create(entity, body);
    check_refs(tx, manifest, entity, tenant_id, &values, errors)?;
    check_unique(tx, entity, tenant_id, &values, None)?;
    let id = uuid::Uuid::now_v7().to_string();
    let sql: Vec<(String, SqlValue)> = values.into_iter().map(|(n, s, _)| (n, s)).collect();
    tx.entity_insert(&entity.table, tenant_id, &id, user_id, &now_rfc3339(), &sql)?;
    tx.entity_get(shape(entity), tenant_id, &id)?
        .ok_or_else(|| not_found(&entity.name))
}

/// Apply a validated partial update; `None` if no such row in the tenant.
pub fn update_tx(
    tx: &Tx<'_>,
    manifest: &Manifest,
    entity: &EntitySchema,
    tenant_id: &str,
    id: &str,
    body: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, PluginError> {
    let (values, errors) = validate_update(entity, body);
    let table = shape(entity);
    if tx.entity_get(table, tenant_id, id)?.is_none() {
        return Ok(None);
    }
    check_refs(tx, manifest, entity, tenant_id, &values, errors)?;
    check_unique(tx, entity, tenant_id, &values, Some(id))?;
    let sql: Vec<(String, SqlValue)> = values.into_iter().map(|(n, s, _)| (n, s)).collect();
    tx.entity_update(&entity.table, tenant_id, id, &now_rfc3339(), &sql)?;
    Ok(tx.entity_get(table, tenant_id, id)?)
}

/// Delete a row unless another row of the plugin references it; false if
/// no such row in the tenant.
pub fn delete_tx(
    tx: &Tx<'_>,
    manifest: &Manifest,
    entity: &EntitySchema,
    tenant_id: &str,
    id: &str,
) -> Result<bool, PluginError> {
    if tx.entity_get(shape(entity), tenant_id, id)?.is_none() {
        return Ok(false);
    }
    let key = SqlValue::Text(id.to_owned());
    for other in &manifest.entities {
        for f in &other.fields {
            if f.ty == FieldType::Ref
                && f.entity.as_deref() == Some(entity.name.as_str())
                && tx.entity_value_exists(&other.table, tenant_id, &f.name, &key, None)?
            {
                return Err(PluginError::Conflict(format!(
                    "this {} is still referenced by {} rows (field {}); delete or change those first",
                    entity.name, other.name, f.name
                )));
            }
        }
    }
    Ok(tx.entity_delete(&entity.table, tenant_id, id)?)
}

impl Plugins {
    /// Count a request in the plugin's health figures (faults as errors).
    pub(crate) fn observe<T>(
        &self,
        plugin: &str,
        started: std::time::Instant,
        result: Result<T, PluginError>,
    ) -> Result<T, PluginError> {
        if self.registry().get(plugin).is_some() {
            let fault = result.as_ref().err().is_some_and(PluginError::is_fault);
            self.registry()
                .stats(plugin)
                .record(started.elapsed(), fault);
        }
        if let Err(PluginError::Script(failure)) = &result {
            self.registry()
                .record_failure(failure, crate::storage::now_rfc3339());
        }
        result
    }

    /// Resolve plugin and entity, check the operation is exposed and the
    /// caller holds its permission.
    fn target(
        &self,
        actor: &Principal,
        plugin: &str,
        entity: &str,
        op: Op,
    ) -> Result<(Arc<PluginVersion>, usize), PluginError> {
        let version = self
            .registry()
            .get(plugin)
            .ok_or_else(|| PluginError::unknown_plugin(plugin))?;
        let index = version
            .manifest
            .entities
            .iter()
            .position(|e| e.name == entity)
            .ok_or_else(|| {
                let known: Vec<&str> = version
                    .manifest
                    .entities
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect();
                PluginError::NotFound(format!(
                    "plugin {plugin} has no entity \"{entity}\" (it has: {})",
                    known.join(", ")
                ))
            })?;
        let perms = &version.manifest.entities[index].permissions;
        let permission = match op {
            Op::List => &perms.list,
            Op::Read => &perms.read,
            Op::Create => &perms.create,
            Op::Update => &perms.update,
            Op::Delete => &perms.delete,
        };
        let Some(permission) = permission else {
            return Err(PluginError::NotExposed(format!(
                "{plugin}.{entity} does not expose the {} operation",
                op.name()
            )));
        };
        if !actor.can(permission) {
            return Err(PluginError::missing_permission(permission));
        }
        Ok((version, index))
    }

    /// `GET /api/{plugin}/{entity}`.
    pub async fn list_records(
        &self,
        actor: &Principal,
        plugin: &str,
        entity: &str,
        query: Option<String>,
    ) -> Result<Value, PluginError> {
        let started = std::time::Instant::now();
        let result = async {
            let (version, index) = self.target(actor, plugin, entity, Op::List)?;
            let spec = parse_list_query(&version.manifest.entities[index], query.as_deref())
                .map_err(invalid)?;
            let tenant = actor.tenant_id().to_owned();
            let (limit, offset) = (spec.limit, spec.offset);
            let (items, total) = self
                .db()
                .read(move |tx| {
                    ensure_installed(tx, &tenant, &version.manifest.name)?;
                    let e = &version.manifest.entities[index];
                    Ok::<_, PluginError>(tx.entity_list(records::shape(e), &tenant, &spec)?)
                })
                .await?;
            Ok(json!({"items": items, "total": total, "limit": limit, "offset": offset}))
        }
        .await;
        self.observe(plugin, started, result)
    }

    /// `GET /api/{plugin}/{entity}/{id}`.
    pub async fn get_record(
        &self,
        actor: &Principal,
        plugin: &str,
        entity: &str,
        id: String,
    ) -> Result<Map<String, Value>, PluginError> {
        let started = std::time::Instant::now();
        let result = async {
            let (version, index) = self.target(actor, plugin, entity, Op::Read)?;
            let tenant = actor.tenant_id().to_owned();
            self.db()
                .read(move |tx| {
                    ensure_installed(tx, &tenant, &version.manifest.name)?;
                    let e = &version.manifest.entities[index];
                    tx.entity_get(records::shape(e), &tenant, &id)?
                        .ok_or_else(|| not_found(&e.name))
                })
                .await
        }
        .await;
        self.observe(plugin, started, result)
    }

    /// `POST /api/{plugin}/{entity}`.
    pub async fn create_record(
        &self,
        actor: &Principal,
        plugin: &str,
        entity: &str,
        body: Map<String, Value>,
        request_id: Option<String>,
    ) -> Result<Map<String, Value>, PluginError> {
        let started = std::time::Instant::now();
        let result = async {
            let (version, index) = self.target(actor, plugin, entity, Op::Create)?;
            let (actor, registry) = (actor.clone(), self.registry().clone());
            self.db()
                .write(move |tx| {
                    ensure_installed(tx, actor.tenant_id(), &version.manifest.name)?;
                    let w = Writer {
                        tx,
                        registry: &registry,
                        tenant_id: actor.tenant_id(),
                        caller: Some(&actor),
                        request_id: request_id.as_deref(),
                    };
                    insert(&w, &version, index, body)
                })
                .await
        }
        .await;
        self.observe(plugin, started, result)
    }

    /// `PATCH /api/{plugin}/{entity}/{id}`.
    pub async fn update_record(
        &self,
        actor: &Principal,
        plugin: &str,
        entity: &str,
        id: String,
        body: Map<String, Value>,
        request_id: Option<String>,
    ) -> Result<Map<String, Value>, PluginError> {
        let started = std::time::Instant::now();
        let result = async {
            let (version, index) = self.target(actor, plugin, entity, Op::Update)?;
            let (actor, registry) = (actor.clone(), self.registry().clone());
            self.db()
                .write(move |tx| {
                    ensure_installed(tx, actor.tenant_id(), &version.manifest.name)?;
                    let w = Writer {
                        tx,
                        registry: &registry,
                        tenant_id: actor.tenant_id(),
                        caller: Some(&actor),
                        request_id: request_id.as_deref(),
                    };
                    update(&w, &version, index, &id, body)?
                        .ok_or_else(|| not_found(&version.manifest.entities[index].name))
                })
                .await
        }
        .await;
        self.observe(plugin, started, result)
    }

    /// `DELETE /api/{plugin}/{entity}/{id}`.
    pub async fn delete_record(
        &self,
        actor: &Principal,
        plugin: &str,
        entity: &str,
        id: String,
        request_id: Option<String>,
    ) -> Result<(), PluginError> {
        let started = std::time::Instant::now();
        let result = async {
            let (version, index) = self.target(actor, plugin, entity, Op::Delete)?;
            let (actor, registry) = (actor.clone(), self.registry().clone());
            self.db()
                .write(move |tx| {
                    ensure_installed(tx, actor.tenant_id(), &version.manifest.name)?;
                    let w = Writer {
                        tx,
                        registry: &registry,
                        tenant_id: actor.tenant_id(),
                        caller: Some(&actor),
                        request_id: request_id.as_deref(),
                    };
                    if delete(&w, &version, index, &id)? {
                        Ok(())
                    } else {
                        Err(not_found(&version.manifest.entities[index].name))
                    }
                })
                .await
        }
        .await;
        self.observe(plugin, started, result)
    }
}
