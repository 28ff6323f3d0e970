//! Roles, their grants, and the permission catalog.

use rusqlite::{Row, params};
use serde::Serialize;

use super::{OptionalRow, StorageError, Tx, now_rfc3339};

/// A role as stored; `permissions` holds its explicit grants, sorted.
#[derive(Debug, Clone, Serialize)]
pub struct RoleRow {
    /// UUID v7.
    pub id: String,
    /// Owning tenant.
    #[serde(skip)]
    pub tenant_id: String,
    /// `[A-Z][A-Z0-9_]{1,63}`, unique per tenant.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Built-in roles cannot be renamed or deleted.
    pub builtin: bool,
    /// Granted permission names, sorted.
    pub permissions: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// One entry of the permission catalog.
#[derive(Debug, Clone, Serialize)]
pub struct PermissionRow {
    /// E.g. `USERS_MANAGE`.
    pub name: String,
    /// Human description.
    pub description: String,
    /// `core` or the registering plugin's name.
    pub source: String,
    /// Retired permissions are kept for history but not grantable.
    #[serde(skip)]
    pub retired: bool,
}

const COLUMNS: &str = "id, tenant_id, name, description, builtin, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<RoleRow> {
    Ok(RoleRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        builtin: r.get(4)?,
        permissions: Vec::new(),
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

impl Tx<'_> {
    fn with_grants(&self, mut role: RoleRow) -> Result<RoleRow, StorageError> {
        role.permissions = self.role_grants(&role.id)?;
        Ok(role)
    }

    /// Explicit grants of a role, sorted.
    pub fn role_grants(&self, role_id: &str) -> Result<Vec<String>, StorageError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT permission FROM role_permissions WHERE role_id = ?1 ORDER BY permission",
            )?
            .query_map([role_id], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?)
    }

    /// Insert a role.
    pub fn insert_role(&self, role: &RoleRow) -> Result<(), StorageError> {
        self.conn().execute(
            &format!("INSERT INTO roles ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                role.id,
                role.tenant_id,
                role.name,
                role.description,
                role.builtin,
                role.created_at,
                role.updated_at
            ],
        )?;
        Ok(())
    }

    /// A role of a tenant by id.
    pub fn role_by_id(&self, tenant_id: &str, id: &str) -> Result<Option<RoleRow>, StorageError> {
        let role = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM roles WHERE id = ?1 AND tenant_id = ?2"
            ))?
            .query_row([id, tenant_id], from_row)
            .optional()?;
        role.map(|r| self.with_grants(r)).transpose()
    }

    /// A role of a tenant by name.
    pub fn role_by_name(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Option<RoleRow>, StorageError> {
        let role = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM roles WHERE name = ?1 AND tenant_id = ?2"
            ))?
            .query_row([name, tenant_id], from_row)
            .optional()?;
        role.map(|r| self.with_grants(r)).transpose()
    }

    /// Every role of a tenant, by name.
    pub fn list_roles(&self, tenant_id: &str) -> Result<Vec<RoleRow>, StorageError> {
        let roles = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM roles WHERE tenant_id = ?1 ORDER BY name"
            ))?
            .query_map([tenant_id], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        roles.into_iter().map(|r| self.with_grants(r)).collect()
    }

    /// Store a role's name and description.
    pub fn update_role(&self, role: &RoleRow) -> Result<(), StorageError> {
        self.conn().execute(
            "UPDATE roles SET name = ?2, description = ?3, updated_at = ?4 WHERE id = ?1",
            params![role.id, role.name, role.description, role.updated_at],
        )?;
        Ok(())
    }

    /// Delete a role (its grants and assignments go with it).
    pub fn delete_role(&self, tenant_id: &str, id: &str) -> Result<bool, StorageError> {
        Ok(self.conn().execute(
            "DELETE FROM roles WHERE id = ?1 AND tenant_id = ?2",
            [id, tenant_id],
        )? > 0)
    }

    /// Replace a role's grants.
    pub fn set_role_grants(
        &self,
        role_id: &str,
        permissions: &[String],
    ) -> Result<(), StorageError> {
        self.conn()
            .execute("DELETE FROM role_permissions WHERE role_id = ?1", [role_id])?;
        let mut insert = self.conn().prepare_cached(
            "INSERT OR IGNORE INTO role_permissions (role_id, permission) VALUES (?1, ?2)",
        )?;
        for p in permissions {
            insert.execute([role_id, p])?;
        }
        Ok(())
    }

    /// Effective explicit grants of a set of roles (union, sorted, active only).
    pub fn grants_of_user(&self, user_id: &str) -> Result<Vec<String>, StorageError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT DISTINCT rp.permission FROM user_roles ur
                 JOIN role_permissions rp ON rp.role_id = ur.role_id
                 JOIN permissions p ON p.name = rp.permission
                 WHERE ur.user_id = ?1 AND p.retired_at IS NULL
                 ORDER BY rp.permission",
            )?
            .query_map([user_id], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?)
    }

    /// Register or refresh a catalog entry (un-retiring it).
    pub fn upsert_permission(
        &self,
        name: &str,
        description: &str,
        source: &str,
    ) -> Result<(), StorageError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO permissions (name, description, source, retired_at)
                 VALUES (?1, ?2, ?3, NULL)
                 ON CONFLICT (name) DO UPDATE SET description = excluded.description,
                     source = excluded.source, retired_at = NULL",
            )?
            .execute([name, description, source])?;
        Ok(())
    }

    /// Retire a catalog entry: kept for history, no longer grantable or effective.
    pub fn retire_permission(&self, name: &str) -> Result<(), StorageError> {
        self.conn().execute(
            "UPDATE permissions SET retired_at = ?2 WHERE name = ?1 AND retired_at IS NULL",
            [name, &now_rfc3339()],
        )?;
        Ok(())
    }

    /// The catalog; retired entries only when asked for.
    pub fn list_permissions(
        &self,
        include_retired: bool,
    ) -> Result<Vec<PermissionRow>, StorageError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT name, description, source, retired_at IS NOT NULL FROM permissions
                 WHERE ?1 OR retired_at IS NULL ORDER BY name",
            )?
            .query_map([include_retired], |r| {
                Ok(PermissionRow {
                    name: r.get(0)?,
                    description: r.get(1)?,
                    source: r.get(2)?,
                    retired: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?)
    }
}
