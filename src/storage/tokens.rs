//! Refresh tokens, stored as SHA-256 digests in rotation families.

use rusqlite::{Row, params};

use super::{OptionalRow, StorageError, Tx};

/// A refresh token as stored (never the token itself).
#[derive(Debug, Clone)]
pub struct RefreshTokenRow {
    /// UUID v7.
    pub id: String,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// Tokens issued by rotating one login share a family.
    pub family_id: String,
    /// Owner.
    pub user_id: String,
    /// Owner's tenant.
    pub tenant_id: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Set when this token was exchanged for a new one.
    pub rotated_at: Option<String>,
    /// Set when revoked by logout or reuse detection.
    pub revoked_at: Option<String>,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<RefreshTokenRow> {
    Ok(RefreshTokenRow {
        id: r.get(0)?,
        token_hash: r.get(1)?,
        family_id: r.get(2)?,
        user_id: r.get(3)?,
        tenant_id: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        rotated_at: r.get(7)?,
        revoked_at: r.get(8)?,
    })
}

impl Tx<'_> {
    /// Store a new refresh token.
    pub fn insert_refresh_token(&self, t: &RefreshTokenRow) -> Result<(), StorageError> {
        self.conn().execute(
            "INSERT INTO refresh_tokens (id, token_hash, family_id, user_id, tenant_id,
                 created_at, expires_at, rotated_at, revoked_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                t.id,
                t.token_hash,
                t.family_id,
                t.user_id,
                t.tenant_id,
                t.created_at,
                t.expires_at,
                t.rotated_at,
                t.revoked_at
            ],
        )?;
        Ok(())
    }

    /// A refresh token by digest.
    pub fn refresh_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRow>, StorageError> {
        self.conn()
            .prepare_cached(
                "SELECT id, token_hash, family_id, user_id, tenant_id, created_at, expires_at,
                     rotated_at, revoked_at
                 FROM refresh_tokens WHERE token_hash = ?1",
            )?
            .query_row([token_hash], from_row)
            .optional()
    }

    /// Mark a token as exchanged.
    pub fn mark_refresh_rotated(&self, id: &str, at: &str) -> Result<(), StorageError> {
        self.conn().execute(
            "UPDATE refresh_tokens SET rotated_at = ?2 WHERE id = ?1",
            [id, at],
        )?;
        Ok(())
    }

    /// Revoke one token.
    pub fn revoke_refresh_token(&self, id: &str, at: &str) -> Result<(), StorageError> {
        self.conn().execute(
            "UPDATE refresh_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            [id, at],
        )?;
        Ok(())
    }

    /// Revoke every token of a family (reuse of a rotated-out token).
    pub fn revoke_refresh_family(&self, family_id: &str, at: &str) -> Result<(), StorageError> {
        self.conn().execute(
            "UPDATE refresh_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL",
            [family_id, at],
        )?;
        Ok(())
    }

    /// Revoke every token of a user (password change, deactivation).
    pub fn revoke_user_refresh_tokens(&self, user_id: &str, at: &str) -> Result<(), StorageError> {
        self.conn().execute(
            "UPDATE refresh_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
            [user_id, at],
        )?;
        Ok(())
    }

    /// Drop tokens that expired before `now` (housekeeping).
    pub fn delete_expired_refresh_tokens(&self, now: &str) -> Result<usize, StorageError> {
        Ok(self
            .conn()
            .execute("DELETE FROM refresh_tokens WHERE expires_at < ?1", [now])?)
    }
}
