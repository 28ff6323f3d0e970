//! The audit log: who changed what, when, with the state before and after.

use rusqlite::params;
use serde::Serialize;
use serde_json::Value;

use super::{StorageError, Tx};

/// An entry to record.
#[derive(Debug, Clone)]
pub struct NewAuditEntry {
    /// Tenant whose log receives the entry.
    pub tenant_id: String,
    /// Acting user; `None` for the CLI and bootstrap.
    pub actor_id: Option<String>,
    /// E.g. `user.create`, `role.permissions.update`.
    pub action: String,
    /// E.g. `user`, `role`, `tenant`, `plugin`.
    pub target_type: String,
    /// Target id or name.
    pub target_id: Option<String>,
    /// State before (JSON), if any.
    pub before: Option<Value>,
    /// State after (JSON), if any.
    pub after: Option<Value>,
}

/// A recorded entry as answered by `GET /api/audit`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// UUID v7.
    pub id: String,
    /// Acting user id, or null.
    pub actor_id: Option<String>,
    /// Acting user's e-mail at read time, or null.
    pub actor_email: Option<String>,
    /// Action name.
    pub action: String,
    /// `{"type", "id"}` of the target.
    pub target: AuditTarget,
    /// State before.
    pub before: Option<Value>,
    /// State after.
    pub after: Option<Value>,
    /// RFC 3339.
    pub at: String,
}

/// Target of an audit entry.
#[derive(Debug, Clone, Serialize)]
pub struct AuditTarget {
    /// Kind of record.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id or name.
    pub id: Option<String>,
}

impl Tx<'_> {
    /// Record an entry.
    pub fn insert_audit(&self, id: &str, at: &str, e: &NewAuditEntry) -> Result<(), StorageError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO audit_log (id, tenant_id, actor_id, action, target_type, target_id,
                     before, after, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                id,
                e.tenant_id,
                e.actor_id,
                e.action,
                e.target_type,
                e.target_id,
                e.before.as_ref().map(Value::to_string),
                e.after.as_ref().map(Value::to_string),
                at
            ])?;
        Ok(())
    }

    /// A page of a tenant's log, newest first, optionally of one action.
    pub fn list_audit(
        &self,
        tenant_id: &str,
        action: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<AuditEntry>, u64), StorageError> {
        let parse = |s: Option<String>| -> rusqlite::Result<Option<Value>> {
            Ok(s.and_then(|s| serde_json::from_str(&s).ok()))
        };
        let items = self
            .conn()
            .prepare_cached(
                "SELECT a.id, a.actor_id, u.email, a.action, a.target_type, a.target_id,
                     a.before, a.after, a.at
                 FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id
                 WHERE a.tenant_id = ?1 AND (?2 IS NULL OR a.action = ?2)
                 ORDER BY a.at DESC, a.id DESC LIMIT ?3 OFFSET ?4",
            )?
            .query_map(params![tenant_id, action, limit, offset], |r| {
                Ok(AuditEntry {
                    id: r.get(0)?,
                    actor_id: r.get(1)?,
                    actor_email: r.get(2)?,
                    action: r.get(3)?,
                    target: AuditTarget {
                        kind: r.get(4)?,
                        id: r.get(5)?,
                    },
                    before: parse(r.get(6)?)?,
                    after: parse(r.get(7)?)?,
                    at: r.get(8)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let total: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM audit_log WHERE tenant_id = ?1 AND (?2 IS NULL OR action = ?2)",
            params![tenant_id, action],
            |r| r.get(0),
        )?;
        Ok((items, total.unsigned_abs()))
    }
}
