//! Installing a plugin into a tenant: `requires` checked, the manifest's
//! grants seeded once per (tenant, role, permission) — a grant an admin
//! revoked stays revoked across reinstalls, restarts and manifest changes —
//! roles the tenant lacks created, status and audit recorded, all in the
//! caller's transaction.

use std::sync::Arc;

use serde_json::json;

use super::PluginVersion;
use super::crud::Writer;
use super::error::PluginError;
use super::manifest::Manifest;
use super::registry::Registry;
use crate::auth::Principal;
use crate::runtime::{Lifecycle, hooks};
use crate::storage::{NewAuditEntry, RoleRow, Tx, now_rfc3339};

/// Status of a plugin in a tenant.
pub const INSTALLED: &str = "INSTALLED";
/// Not installed (or never).
pub const UNINSTALLED: &str = "UNINSTALLED";
/// The last install failed.
pub const FAILED: &str = "FAILED";

/// A tenant's status of a plugin (UNINSTALLED when never touched).
pub fn status(tx: &Tx<'_>, tenant_id: &str, plugin: &str) -> Result<String, PluginError> {
    Ok(tx
        .plugin_install(tenant_id, plugin)?
        .map_or_else(|| UNINSTALLED.to_owned(), |r| r.status))
}

fn audit(
    tx: &Tx<'_>,
    tenant_id: &str,
    actor: Option<&str>,
    action: &str,
    plugin: &str,
    after: serde_json::Value,
) -> Result<(), PluginError> {
    tx.insert_audit(
        &uuid::Uuid::now_v7().to_string(),
        &now_rfc3339(),
        &NewAuditEntry {
            tenant_id: tenant_id.to_owned(),
            actor_id: actor.map(str::to_owned),
            action: action.to_owned(),
            target_type: "plugin".to_owned(),
            target_id: Some(plugin.to_owned()),
            before: None,
            after: Some(after),
        },
    )?;
    Ok(())
}

/// Seed the manifest's grants that this tenant has never been given (roles
/// it lacks are created). Returns `ROLE:PERMISSION` of each grant seeded now.
pub fn seed_grants(tx: &Tx<'_>, tenant_id: &str, m: &Manifest) -> Result<Vec<String>, PluginError> {
    let mut seeded = Vec::new();
    for (role_name, permissions) in &m.grants {
        let role = match tx.role_by_name(tenant_id, role_name)? {
            Some(r) => r,
            None => {
                let now = now_rfc3339();
                let role = RoleRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    tenant_id: tenant_id.to_owned(),
                    name: role_name.clone(),
                    description: format!("Created by plugin {}", m.name),
                    builtin: false,
                    permissions: Vec::new(),
                    created_at: now.clone(),
                    updated_at: now,
                };
                tx.insert_role(&role)?;
                role
            }
        };
        for p in permissions {
            if !tx.grant_seeded(tenant_id, role_name, p)? {
                tx.add_role_grant(&role.id, p)?;
                tx.record_grant_seed(tenant_id, &m.name, role_name, p)?;
                seeded.push(format!("{role_name}:{p}"));
            }
        }
    }
    Ok(seeded)
}

/// How an install attempt ended (both are committed).
#[derive(Debug)]
pub enum InstallOutcome {
    /// Installed (or already installed).
    Installed,
    /// `on_install` failed: nothing of the attempt is kept but the status
    /// FAILED and its audit entry; the error says what failed.
    Failed(PluginError),
}

fn hook_failure(e: &PluginError) -> String {
    match e {
        PluginError::Script(f) => match f.as_ref() {
            crate::runtime::ScriptFailure::Fail {
                status, message, ..
            } => format!("ctx.fail({status}): {message}"),
            crate::runtime::ScriptFailure::Forbidden { permission, .. } => {
                format!("ctx.require: missing permission {permission}")
            }
            crate::runtime::ScriptFailure::Fault { error, .. } => error.to_string(),
        },
        other => other.to_string(),
    }
}

/// Install (or re-install) a plugin into a tenant: grants seeded, status
/// INSTALLED, and `on_install(ctx)` run in the same transaction when the
/// plugin was not installed already. `caller` is `None` from the CLI and
/// for `default_install`.
pub fn install(
    tx: &Tx<'_>,
    registry: &Registry,
    tenant_id: &str,
    plugin: &Arc<PluginVersion>,
    caller: Option<&Principal>,
    request_id: Option<&str>,
) -> Result<InstallOutcome, PluginError> {
    let m = &plugin.manifest;
    let missing: Vec<&str> = m
        .requires
        .iter()
        .filter(|r| {
            registry.get(r).is_none() || status(tx, tenant_id, r).map_or(true, |s| s != INSTALLED)
        })
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(PluginError::BadRequest(format!(
            "plugin {} requires plugins that are not installed for this tenant: {}",
            m.name,
            missing.join(", ")
        )));
    }
    let actor = caller.map(Principal::user_id);
    let was_installed = status(tx, tenant_id, &m.name)? == INSTALLED;
    let attempt = tx.savepoint(|tx| {
        let seeded = seed_grants(tx, tenant_id, m)?;
        tx.set_plugin_install(tenant_id, &m.name, INSTALLED, Some(actor), None)?;
        if !was_installed {
            let w = Writer {
                tx,
                registry,
                tenant_id,
                caller,
                request_id,
            };
            hooks::lifecycle(&w, plugin, Lifecycle::Install)?;
        }
        audit(
            tx,
            tenant_id,
            actor,
            "plugin.install",
            &m.name,
            json!({"plugin": m.name, "version": m.version, "status": INSTALLED, "seeded_grants": seeded}),
        )
    });
    match attempt {
        Ok(()) => Ok(InstallOutcome::Installed),
        Err(PluginError::Storage(e)) => Err(PluginError::Storage(e)),
        Err(e) => {
            if let PluginError::Script(f) = &e {
                registry.record_failure(f, now_rfc3339());
            }
            let why = hook_failure(&e);
            tracing::warn!(plugin = %m.name, tenant = tenant_id, "install failed: {why}");
            tx.set_plugin_install(tenant_id, &m.name, FAILED, Some(actor), None)?;
            audit(
                tx,
                tenant_id,
                actor,
                "plugin.install.failed",
                &m.name,
                json!({"plugin": m.name, "version": m.version, "status": FAILED, "error": why}),
            )?;
            Ok(InstallOutcome::Failed(PluginError::LifecycleFailed {
                plugin: m.name.clone(),
                detail: format!(
                    "plugin {} could not be installed: on_install failed: {why}",
                    m.name
                ),
            }))
        }
    }
}

/// Uninstall a plugin from a tenant; its data and grants are kept.
/// `on_uninstall(ctx)` runs in the same transaction; if it fails nothing
/// changes.
pub fn uninstall(
    tx: &Tx<'_>,
    registry: &Registry,
    tenant_id: &str,
    plugin: &str,
    caller: Option<&Principal>,
    request_id: Option<&str>,
) -> Result<(), PluginError> {
    let dependents: Vec<String> = registry
        .all()
        .values()
        .filter(|p| p.manifest.requires.iter().any(|r| r == plugin))
        .filter(|p| status(tx, tenant_id, &p.manifest.name).is_ok_and(|s| s == INSTALLED))
        .map(|p| p.manifest.name.clone())
        .collect();
    if !dependents.is_empty() {
        return Err(PluginError::BadRequest(format!(
            "plugin {plugin} is required by installed plugins: {}",
            dependents.join(", ")
        )));
    }
    let was_installed = status(tx, tenant_id, plugin)? == INSTALLED;
    tx.set_plugin_install(tenant_id, plugin, UNINSTALLED, None, None)?;
    if was_installed && let Some(version) = registry.get(plugin) {
        let w = Writer {
            tx,
            registry,
            tenant_id,
            caller,
            request_id,
        };
        hooks::lifecycle(&w, &version, Lifecycle::Uninstall).map_err(|e| {
            if let PluginError::Script(f) = &e {
                registry.record_failure(f, now_rfc3339());
            }
            PluginError::LifecycleFailed {
                plugin: plugin.to_owned(),
                detail: format!(
                    "plugin {plugin} could not be uninstalled: on_uninstall failed: {}",
                    hook_failure(&e)
                ),
            }
        })?;
    }
    audit(
        tx,
        tenant_id,
        caller.map(Principal::user_id),
        "plugin.uninstall",
        plugin,
        json!({"plugin": plugin, "status": UNINSTALLED}),
    )
}

/// Install every `default_install` plugin into a (new) tenant, dependencies
/// first. A plugin whose requirements are missing is skipped with a warning.
pub fn install_defaults(
    tx: &Tx<'_>,
    registry: &Registry,
    tenant_id: &str,
) -> Result<(), PluginError> {
    let mut pending: Vec<_> = registry
        .all()
        .values()
        .filter(|p| p.manifest.default_install)
        .cloned()
        .collect();
    // Repeat while progress is made, so dependencies go first.
    loop {
        let before = pending.len();
        let mut rest = Vec::new();
        for p in pending {
            match install(tx, registry, tenant_id, &p, None, None) {
                Ok(InstallOutcome::Installed) => {}
                Ok(InstallOutcome::Failed(e)) => {
                    tracing::warn!(plugin = %p.manifest.name, "default_install for a new tenant: {e}");
                }
                Err(PluginError::BadRequest(_)) => rest.push(p),
                Err(e) => return Err(e),
            }
        }
        pending = rest;
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    for p in pending {
        tracing::warn!(
            plugin = %p.manifest.name,
            "default_install skipped for a new tenant: its required plugins are not installed"
        );
    }
    Ok(())
}
