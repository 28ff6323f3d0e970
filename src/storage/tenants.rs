//! Tenant rows.

use rusqlite::{Row, params};
use serde::Serialize;

use super::{OptionalRow, StorageError, Tx};

/// A tenant as stored (and as answered by the API).
#[derive(Debug, Clone, Serialize)]
pub struct TenantRow {
    /// UUID v7.
    pub id: String,
    /// URL-safe unique name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Inactive tenants' users cannot authenticate.
    pub active: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

const COLUMNS: &str = "id, slug, name, active, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<TenantRow> {
    Ok(TenantRow {
        id: r.get(0)?,
        slug: r.get(1)?,
        name: r.get(2)?,
        active: r.get(3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

impl Tx<'_> {
    /// Insert a tenant.
    pub fn insert_tenant(&self, t: &TenantRow) -> Result<(), StorageError> {
        self.conn().execute(
            "INSERT INTO tenants (id, slug, name, active, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![t.id, t.slug, t.name, t.active, t.created_at, t.updated_at],
        )?;
        Ok(())
    }

    /// A tenant by id.
    pub fn tenant_by_id(&self, id: &str) -> Result<Option<TenantRow>, StorageError> {
        self.conn()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM tenants WHERE id = ?1"))?
            .query_row([id], from_row)
            .optional()
    }

    /// A tenant by slug.
    pub fn tenant_by_slug(&self, slug: &str) -> Result<Option<TenantRow>, StorageError> {
        self.conn()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM tenants WHERE slug = ?1"))?
            .query_row([slug], from_row)
            .optional()
    }

    /// A page of tenants ordered by creation, and the total count.
    pub fn list_tenants(
        &self,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<TenantRow>, u64), StorageError> {
        let items = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM tenants ORDER BY created_at, id LIMIT ?1 OFFSET ?2"
            ))?
            .query_map(params![limit, offset], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((items, self.count_tenants()?))
    }

    /// Number of tenants.
    pub fn count_tenants(&self) -> Result<u64, StorageError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM tenants", [], |r| r.get(0))?;
        Ok(n.unsigned_abs())
    }

    /// Store a tenant's name and active flag.
    pub fn update_tenant(&self, t: &TenantRow) -> Result<(), StorageError> {
        self.conn().execute(
            "UPDATE tenants SET name = ?2, active = ?3, updated_at = ?4 WHERE id = ?1",
            params![t.id, t.name, t.active, t.updated_at],
        )?;
        Ok(())
    }

    /// Delete a tenant and (by cascade) everything it owns.
    pub fn delete_tenant(&self, id: &str) -> Result<bool, StorageError> {
        Ok(self
            .conn()
            .execute("DELETE FROM tenants WHERE id = ?1", [id])?
            > 0)
    }
}
