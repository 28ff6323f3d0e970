//! The plugin operations behind `/api/plugins` and `plinth plugin …`:
//! listing with the caller's tenant status, install, uninstall, settings
//! and health. Each write is one transaction.

use serde::Serialize;
use serde_json::{Map, Value};

use super::error::PluginError;
use super::install::{self, INSTALLED};
use super::manifest::parse::check_value;
use super::registry::Registry;
use crate::auth::{Principal, rbac};
use crate::storage::Db;
use crate::validation::FieldError;

/// A plugin as listed for a tenant.
#[derive(Debug, Serialize)]
pub struct PluginView {
    /// Name.
    pub name: String,
    /// Loaded version.
    pub version: String,
    /// `rhai` or `lua`.
    pub runtime: &'static str,
    /// Description.
    pub description: String,
    /// INSTALLED, UNINSTALLED or FAILED for the caller's tenant.
    pub status: String,
    /// Whether this plugin is loaded now.
    pub loaded: bool,
    /// Declared permission names.
    pub permissions: Vec<String>,
    /// Entity names.
    pub entities: Vec<String>,
    /// Last install time (single-plugin answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installed_at: Option<Option<String>>,
    /// Installer's user id (single-plugin answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installed_by: Option<Option<String>>,
}

/// A plugin's settings in a tenant, defaults filled in (a stored value that
/// no longer fits its declared type falls back to the default).
pub fn settings_in(
    tx: &crate::storage::Tx<'_>,
    manifest: &crate::plugins::manifest::Manifest,
    tenant_id: &str,
) -> Result<Map<String, Value>, PluginError> {
    let stored = tx.plugin_settings(tenant_id, &manifest.name)?;
    let mut out = Map::new();
    for spec in &manifest.settings {
        let value = stored
            .iter()
            .find(|(k, _)| *k == spec.name)
            .and_then(|(_, v)| serde_json::from_str::<Value>(v).ok())
            .filter(|v| check_value(spec, v).is_ok())
            .or_else(|| spec.default.clone())
            .unwrap_or(Value::Null);
        out.insert(spec.name.clone(), value);
    }
    Ok(out)
}

/// The service; cheap to clone.
#[derive(Clone)]
pub struct Plugins {
    db: Db,
    registry: Registry,
}

fn require(actor: &Principal, permission: &str) -> Result<(), PluginError> {
    if actor.can(permission) {
        Ok(())
    } else {
        Err(PluginError::missing_permission(permission))
    }
}

impl Plugins {
    /// Build over the database and registry.
    pub fn new(db: Db, registry: Registry) -> Plugins {
        Plugins { db, registry }
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    fn view(&self, name: &str, status: String) -> Result<PluginView, PluginError> {
        let p = self
            .registry
            .get(name)
            .ok_or_else(|| PluginError::unknown_plugin(name))?;
        let m = &p.manifest;
        Ok(PluginView {
            name: m.name.clone(),
            version: m.version.clone(),
            runtime: m.runtime.as_str(),
            description: m.description.clone(),
            status,
            loaded: true,
            permissions: m.permissions.iter().map(|(n, _)| n.clone()).collect(),
            entities: m.entities.iter().map(|e| e.name.clone()).collect(),
            installed_at: None,
            installed_by: None,
        })
    }

    /// `GET /api/plugins`.
    pub async fn list(&self, actor: &Principal) -> Result<Vec<PluginView>, PluginError> {
        require(actor, rbac::PLUGINS_VIEW)?;
        let tenant = actor.tenant_id().to_owned();
        let statuses = self.db.read(move |tx| tx.plugin_installs(&tenant)).await?;
        self.registry
            .all()
            .keys()
            .map(|name| {
                let status = statuses
                    .iter()
                    .find(|(p, _)| p == name)
                    .map_or_else(|| install::UNINSTALLED.to_owned(), |(_, s)| s.clone());
                self.view(name, status)
            })
            .collect()
    }

    /// `GET /api/plugins/{name}`.
    pub async fn get(&self, actor: &Principal, name: &str) -> Result<PluginView, PluginError> {
        require(actor, rbac::PLUGINS_VIEW)?;
        self.view_with_install(actor.tenant_id(), name).await
    }

    async fn view_with_install(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<PluginView, PluginError> {
        if self.registry.get(name).is_none() {
            return Err(PluginError::unknown_plugin(name));
        }
        let (tenant, plugin) = (tenant_id.to_owned(), name.to_owned());
        let row = self
            .db
            .read(move |tx| tx.plugin_install(&tenant, &plugin))
            .await?;
        let mut view = self.view(
            name,
            row.as_ref()
                .map_or_else(|| install::UNINSTALLED.to_owned(), |r| r.status.clone()),
        )?;
        view.installed_at = Some(row.as_ref().and_then(|r| r.installed_at.clone()));
        view.installed_by = Some(row.and_then(|r| r.installed_by));
        Ok(view)
    }

    /// `POST /api/plugins/{name}/install` (idempotent).
    pub async fn install(
        &self,
        actor: &Principal,
        name: &str,
        request_id: Option<String>,
    ) -> Result<PluginView, PluginError> {
        require(actor, rbac::PLUGINS_MANAGE)?;
        self.install_in(actor.tenant_id(), name, Some(actor), request_id)
            .await
    }

    /// Install for a tenant id; `caller` is `None` from the CLI. A failing
    /// `on_install` leaves the plugin FAILED and answers the hook's error.
    pub async fn install_in(
        &self,
        tenant_id: &str,
        name: &str,
        caller: Option<&Principal>,
        request_id: Option<String>,
    ) -> Result<PluginView, PluginError> {
        let plugin = self
            .registry
            .get(name)
            .ok_or_else(|| PluginError::unknown_plugin(name))?;
        let registry = self.registry.clone();
        let (tenant, caller) = (tenant_id.to_owned(), caller.cloned());
        let outcome = self
            .db
            .write(move |tx| {
                install::install(
                    tx,
                    &registry,
                    &tenant,
                    &plugin,
                    caller.as_ref(),
                    request_id.as_deref(),
                )
            })
            .await?;
        if let install::InstallOutcome::Failed(e) = outcome {
            return Err(e);
        }
        self.view_with_install(tenant_id, name).await
    }

    /// `POST /api/plugins/{name}/uninstall`; data is kept.
    pub async fn uninstall(
        &self,
        actor: &Principal,
        name: &str,
        request_id: Option<String>,
    ) -> Result<PluginView, PluginError> {
        require(actor, rbac::PLUGINS_MANAGE)?;
        self.uninstall_in(actor.tenant_id(), name, Some(actor), request_id)
            .await
    }

    /// Uninstall for a tenant id; `caller` is `None` from the CLI.
    pub async fn uninstall_in(
        &self,
        tenant_id: &str,
        name: &str,
        caller: Option<&Principal>,
        request_id: Option<String>,
    ) -> Result<PluginView, PluginError> {
        if self.registry.get(name).is_none() {
            return Err(PluginError::unknown_plugin(name));
        }
        let registry = self.registry.clone();
        let (tenant, plugin, caller) = (tenant_id.to_owned(), name.to_owned(), caller.cloned());
        self.db
            .write(move |tx| {
                install::uninstall(
                    tx,
                    &registry,
                    &tenant,
                    &plugin,
                    caller.as_ref(),
                    request_id.as_deref(),
                )
            })
            .await?;
        self.view_with_install(tenant_id, name).await
    }

    /// A tenant id by slug (CLI).
    pub async fn tenant_id(&self, slug: &str) -> Result<String, PluginError> {
        let s = slug.to_owned();
        self.db
            .read(move |tx| tx.tenant_by_slug(&s))
            .await?
            .map(|t| t.id)
            .ok_or_else(|| PluginError::NotFound(format!("no tenant with slug \"{slug}\"")))
    }

    /// 403 unless the plugin is installed for the caller's tenant.
    pub async fn ensure_installed(&self, tenant_id: &str, name: &str) -> Result<(), PluginError> {
        let (tenant, plugin) = (tenant_id.to_owned(), name.to_owned());
        let status = self
            .db
            .read(move |tx| install::status(tx, &tenant, &plugin))
            .await?;
        if status == INSTALLED {
            Ok(())
        } else {
            Err(PluginError::Forbidden(format!(
                "plugin {name} is not installed for this tenant"
            )))
        }
    }

    /// `GET /api/plugins/{name}/settings`: flat object, defaults filled in.
    pub async fn settings(
        &self,
        actor: &Principal,
        name: &str,
    ) -> Result<Map<String, Value>, PluginError> {
        require(actor, rbac::PLUGINS_VIEW)?;
        self.settings_of(actor.tenant_id(), name).await
    }

    /// Settings of a plugin in a tenant, defaults filled in.
    pub async fn settings_of(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Map<String, Value>, PluginError> {
        let plugin = self
            .registry
            .get(name)
            .ok_or_else(|| PluginError::unknown_plugin(name))?;
        let tenant = tenant_id.to_owned();
        self.db
            .read(move |tx| settings_in(tx, &plugin.manifest, &tenant))
            .await
    }

    /// `PUT /api/plugins/{name}/settings`: change the given keys (null resets
    /// to the default); unknown keys and wrong types are a 400 naming them.
    pub async fn put_settings(
        &self,
        actor: &Principal,
        name: &str,
        changes: Map<String, Value>,
    ) -> Result<Map<String, Value>, PluginError> {
        require(actor, rbac::PLUGINS_MANAGE)?;
        let plugin = self
            .registry
            .get(name)
            .ok_or_else(|| PluginError::unknown_plugin(name))?;
        let mut errors = Vec::new();
        let mut writes: Vec<(String, Option<String>)> = Vec::new();
        for (key, value) in &changes {
            let Some(spec) = plugin.manifest.settings.iter().find(|s| s.name == *key) else {
                let known: Vec<&str> = plugin
                    .manifest
                    .settings
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                errors.push(FieldError::new(
                    key.clone(),
                    "unknown",
                    format!(
                        "unknown setting \"{key}\" (plugin {name} has: {})",
                        known.join(", ")
                    ),
                ));
                continue;
            };
            if value.is_null() {
                writes.push((key.clone(), None));
                continue;
            }
            match check_value(spec, value) {
                Ok(v) => writes.push((key.clone(), Some(v.to_string()))),
                Err(why) => errors.push(FieldError::new(key.clone(), "type", why)),
            }
        }
        if !errors.is_empty() {
            let names: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            return Err(PluginError::Invalid {
                detail: format!("invalid settings: {}", names.join(", ")),
                errors,
            });
        }
        let (tenant, pname, actor_id) = (
            actor.tenant_id().to_owned(),
            name.to_owned(),
            actor.user_id().to_owned(),
        );
        let after = Value::Object(changes);
        self.db
            .write(move |tx| -> Result<(), PluginError> {
                for (k, v) in &writes {
                    tx.set_plugin_setting(&tenant, &pname, k, v.as_deref())?;
                }
                tx.insert_audit(
                    &uuid::Uuid::now_v7().to_string(),
                    &crate::storage::now_rfc3339(),
                    &crate::storage::NewAuditEntry {
                        tenant_id: tenant.clone(),
                        actor_id: Some(actor_id),
                        action: "plugin.settings.update".into(),
                        target_type: "plugin".into(),
                        target_id: Some(pname.clone()),
                        before: None,
                        after: Some(after),
                    },
                )?;
                Ok(())
            })
            .await?;
        self.settings_of(actor.tenant_id(), name).await
    }

    /// `GET /api/plugins/{name}/health`: also for a plugin whose manifest
    /// was refused before any version of it loaded (version and loaded_at
    /// null, last_reload naming the problem).
    pub fn health(&self, actor: &Principal, name: &str) -> Result<Value, PluginError> {
        require(actor, rbac::PLUGINS_VIEW)?;
        let plugin = self.registry.get(name);
        if plugin.is_none() && !self.registry.refused().contains_key(name) {
            return Err(PluginError::unknown_plugin(name));
        }
        let counters = self.registry.stats(name);
        let stats = counters.snapshot();
        let last_error = counters.last_error().map(|e| {
            serde_json::json!({
                "at": e.at,
                "kind": e.kind.as_str(),
                "file": e.file,
                "line": e.line,
                "column": e.column,
                "message": e.message,
            })
        });
        let faults: Map<String, Value> = counters
            .faults()
            .iter()
            .map(|(k, n)| (k.as_str().to_owned(), Value::from(*n)))
            .collect();
        let last_reload = match counters.last_reload() {
            Some(status) => {
                let mut v = serde_json::json!({"at": status.at, "ok": status.error.is_none()});
                if let Some(e) = status.error {
                    v["error"] = serde_json::json!({
                        "file": e.file,
                        "line": e.line,
                        "column": e.column,
                        "message": e.message,
                    });
                }
                v
            }
            None => serde_json::json!({
                "at": plugin.as_ref().map(|p| p.loaded_at.clone()),
                "ok": plugin.is_some(),
            }),
        };
        Ok(serde_json::json!({
            "name": name,
            "version": plugin.as_ref().map(|p| p.manifest.version.clone()),
            "loaded_at": plugin.as_ref().map(|p| p.loaded_at.clone()),
            "last_reload": last_reload,
            "requests": stats.requests,
            "errors": stats.errors,
            "p50_ms": stats.p50_ms,
            "p99_ms": stats.p99_ms,
            "script_errors": faults,
            "last_error": last_error,
        }))
    }
}
