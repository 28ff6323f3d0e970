//! User rows and their role assignments.

use rusqlite::{Row, params};
use serde::Serialize;

use super::{OptionalRow, StorageError, Tx};

/// A user as stored. Serializes to the API's user shape: the password hash
/// and tenant id are never written out.
#[derive(Debug, Clone, Serialize)]
pub struct UserRow {
    /// UUID v7.
    pub id: String,
    /// Owning tenant.
    #[serde(skip)]
    pub tenant_id: String,
    /// Lower-cased e-mail, unique per tenant.
    pub email: String,
    /// Display name (may be empty).
    pub name: String,
    /// Argon2id PHC string.
    #[serde(skip)]
    pub password_hash: String,
    /// Role names, sorted.
    pub roles: Vec<String>,
    /// Inactive users cannot authenticate.
    pub active: bool,
    /// Operator account: may manage tenants.
    pub platform_admin: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    #[serde(skip)]
    pub updated_at: String,
}

const COLUMNS: &str =
    "id, tenant_id, email, name, password_hash, active, platform_admin, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        email: r.get(2)?,
        name: r.get(3)?,
        password_hash: r.get(4)?,
        roles: Vec::new(),
        active: r.get(5)?,
        platform_admin: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
    })
}

impl Tx<'_> {
    fn with_roles(&self, mut user: UserRow) -> Result<UserRow, StorageError> {
        user.roles = self.user_role_names(&user.id)?;
        Ok(user)
    }

    /// Sorted role names of a user.
    pub fn user_role_names(&self, user_id: &str) -> Result<Vec<String>, StorageError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT r.name FROM user_roles ur JOIN roles r ON r.id = ur.role_id
                 WHERE ur.user_id = ?1 ORDER BY r.name",
            )?
            .query_map([user_id], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?)
    }

    /// Insert a user (roles are set with [`Tx::set_user_roles`]).
    pub fn insert_user(&self, u: &UserRow) -> Result<(), StorageError> {
        self.conn().execute(
            &format!("INSERT INTO users ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
            params![
                u.id,
                u.tenant_id,
                u.email,
                u.name,
                u.password_hash,
                u.active,
                u.platform_admin,
                u.created_at,
                u.updated_at
            ],
        )?;
        Ok(())
    }

    /// A user of a tenant by id; another tenant's user is `None`.
    pub fn user_by_id(&self, tenant_id: &str, id: &str) -> Result<Option<UserRow>, StorageError> {
        let user = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM users WHERE id = ?1 AND tenant_id = ?2"
            ))?
            .query_row([id, tenant_id], from_row)
            .optional()?;
        user.map(|u| self.with_roles(u)).transpose()
    }

    /// A user of a tenant by (normalised) e-mail.
    pub fn user_by_email(
        &self,
        tenant_id: &str,
        email: &str,
    ) -> Result<Option<UserRow>, StorageError> {
        let user = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM users WHERE email = ?1 AND tenant_id = ?2"
            ))?
            .query_row([email, tenant_id], from_row)
            .optional()?;
        user.map(|u| self.with_roles(u)).transpose()
    }

    /// Every user with this e-mail, across tenants (login without a tenant).
    pub fn users_by_email(&self, email: &str) -> Result<Vec<UserRow>, StorageError> {
        let users = self
            .conn()
            .prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE email = ?1"))?
            .query_map([email], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        users.into_iter().map(|u| self.with_roles(u)).collect()
    }

    /// A page of a tenant's users by creation time, and the total.
    pub fn list_users(
        &self,
        tenant_id: &str,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<UserRow>, u64), StorageError> {
        let users = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM users WHERE tenant_id = ?1
                 ORDER BY created_at, id LIMIT ?2 OFFSET ?3"
            ))?
            .query_map(params![tenant_id, limit, offset], from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let total: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM users WHERE tenant_id = ?1",
            [tenant_id],
            |r| r.get(0),
        )?;
        let users = users
            .into_iter()
            .map(|u| self.with_roles(u))
            .collect::<Result<_, _>>()?;
        Ok((users, total.unsigned_abs()))
    }

    /// Store a user's mutable columns.
    pub fn update_user(&self, u: &UserRow) -> Result<(), StorageError> {
        self.conn().execute(
            "UPDATE users SET name = ?2, password_hash = ?3, active = ?4, platform_admin = ?5,
             updated_at = ?6 WHERE id = ?1",
            params![
                u.id,
                u.name,
                u.password_hash,
                u.active,
                u.platform_admin,
                u.updated_at
            ],
        )?;
        Ok(())
    }

    /// Replace a user's roles by role ids.
    pub fn set_user_roles(&self, user_id: &str, role_ids: &[String]) -> Result<(), StorageError> {
        self.conn()
            .execute("DELETE FROM user_roles WHERE user_id = ?1", [user_id])?;
        let mut insert = self.conn().prepare_cached(
            "INSERT OR IGNORE INTO user_roles (user_id, role_id) VALUES (?1, ?2)",
        )?;
        for role_id in role_ids {
            insert.execute([user_id, role_id])?;
        }
        Ok(())
    }

    /// Delete a user (its roles and refresh tokens go with it).
    pub fn delete_user(&self, tenant_id: &str, id: &str) -> Result<bool, StorageError> {
        Ok(self.conn().execute(
            "DELETE FROM users WHERE id = ?1 AND tenant_id = ?2",
            [id, tenant_id],
        )? > 0)
    }
}
