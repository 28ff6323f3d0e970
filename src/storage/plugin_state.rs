//! Per-tenant plugin state: installation status, grants seeded once, and
//! settings values.

use rusqlite::{OptionalExtension as _, params};

use super::{StorageError, Tx, now_rfc3339};

/// A tenant's installation record of a plugin.
#[derive(Debug, Clone)]
pub struct InstallRow {
    /// `INSTALLED`, `UNINSTALLED` or `FAILED`.
    pub status: String,
    /// RFC 3339 of the last successful install.
    pub installed_at: Option<String>,
    /// Installer's user id (null from the CLI or default_install).
    pub installed_by: Option<String>,
    /// Last failure, if FAILED.
    pub error: Option<String>,
}

impl Tx<'_> {
    /// A tenant's installation record of a plugin.
    pub fn plugin_install(
        &self,
        tenant_id: &str,
        plugin: &str,
    ) -> Result<Option<InstallRow>, StorageError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT status, installed_at, installed_by, error FROM plugin_installs
                 WHERE tenant_id = ?1 AND plugin = ?2",
            )?
            .query_row([tenant_id, plugin], |r| {
                Ok(InstallRow {
                    status: r.get(0)?,
                    installed_at: r.get(1)?,
                    installed_by: r.get(2)?,
                    error: r.get(3)?,
                })
            })
            .optional()?)
    }

    /// Every plugin with a record in a tenant, with its status.
    pub fn plugin_installs(&self, tenant_id: &str) -> Result<Vec<(String, String)>, StorageError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT plugin, status FROM plugin_installs WHERE tenant_id = ?1 ORDER BY plugin",
            )?
            .query_map([tenant_id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Tenants (id, slug) and their status for one plugin.
    pub fn plugin_install_statuses(
        &self,
        plugin: &str,
    ) -> Result<Vec<(String, String)>, StorageError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT t.slug, COALESCE(i.status, 'UNINSTALLED') FROM tenants t
                 LEFT JOIN plugin_installs i ON i.tenant_id = t.id AND i.plugin = ?1
                 ORDER BY t.slug",
            )?
            .query_map([plugin], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Set a tenant's status of a plugin; `installed` updates installed_at/by.
    pub fn set_plugin_install(
        &self,
        tenant_id: &str,
        plugin: &str,
        status: &str,
        installed: Option<Option<&str>>,
        error: Option<&str>,
    ) -> Result<(), StorageError> {
        let now = now_rfc3339();
        match installed {
            Some(by) => self.conn().execute(
                "INSERT INTO plugin_installs (tenant_id, plugin, status, installed_at, installed_by, updated_at, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?6)
                 ON CONFLICT (tenant_id, plugin) DO UPDATE SET status = excluded.status,
                     installed_at = excluded.installed_at, installed_by = excluded.installed_by,
                     updated_at = excluded.updated_at, error = excluded.error",
                params![tenant_id, plugin, status, now, by, error],
            )?,
            None => self.conn().execute(
                "INSERT INTO plugin_installs (tenant_id, plugin, status, updated_at, error)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant_id, plugin) DO UPDATE SET status = excluded.status,
                     updated_at = excluded.updated_at, error = excluded.error",
                params![tenant_id, plugin, status, now, error],
            )?,
        };
        Ok(())
    }

    /// Whether a grant was already seeded into a tenant's role.
    pub fn grant_seeded(
        &self,
        tenant_id: &str,
        role: &str,
        permission: &str,
    ) -> Result<bool, StorageError> {
        Ok(self.conn().query_row(
            "SELECT EXISTS(SELECT 1 FROM plugin_grant_seeds WHERE tenant_id = ?1 AND role = ?2 AND permission = ?3)",
            [tenant_id, role, permission],
            |r| r.get(0),
        )?)
    }

    /// Remember that a grant was seeded (it is never seeded again).
    pub fn record_grant_seed(
        &self,
        tenant_id: &str,
        plugin: &str,
        role: &str,
        permission: &str,
    ) -> Result<(), StorageError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO plugin_grant_seeds (tenant_id, plugin, role, permission, seeded_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![tenant_id, plugin, role, permission, now_rfc3339()],
        )?;
        Ok(())
    }

    /// Add one grant to a role (no-op if present).
    pub fn add_role_grant(&self, role_id: &str, permission: &str) -> Result<(), StorageError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO role_permissions (role_id, permission) VALUES (?1, ?2)",
            [role_id, permission],
        )?;
        Ok(())
    }

    /// A tenant's stored settings of a plugin (key → JSON text).
    pub fn plugin_settings(
        &self,
        tenant_id: &str,
        plugin: &str,
    ) -> Result<Vec<(String, String)>, StorageError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT key, value FROM plugin_settings WHERE tenant_id = ?1 AND plugin = ?2",
            )?
            .query_map([tenant_id, plugin], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Store (Some) or clear (None) one setting.
    pub fn set_plugin_setting(
        &self,
        tenant_id: &str,
        plugin: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), StorageError> {
        match value {
            Some(v) => self.conn().execute(
                "INSERT INTO plugin_settings (tenant_id, plugin, key, value, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant_id, plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![tenant_id, plugin, key, v, now_rfc3339()],
            )?,
            None => self.conn().execute(
                "DELETE FROM plugin_settings WHERE tenant_id = ?1 AND plugin = ?2 AND key = ?3",
                [tenant_id, plugin, key],
            )?,
        };
        Ok(())
    }

    /// Every tenant id.
    pub fn tenant_ids(&self) -> Result<Vec<String>, StorageError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT id FROM tenants ORDER BY created_at")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?)
    }
}
