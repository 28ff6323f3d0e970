//! Core schema migrations: the ordered SQL files of `migrations/`, embedded
//! in the binary so a fresh install needs nothing but the executable. Each is
//! applied once, in order, in its own transaction, and recorded in
//! `schema_migrations`; applying again is a no-op.

use super::{Db, StorageError, now_rfc3339};

/// One embedded migration.
pub struct Migration {
    /// Ordering number (the file's prefix).
    pub version: i64,
    /// File name.
    pub name: &'static str,
    /// SQL text.
    pub sql: &'static str,
}

/// Every core migration, in order.
pub const CORE: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_core.sql",
        sql: include_str!("../../migrations/0001_core.sql"),
    },
    Migration {
        version: 2,
        name: "0002_plugins.sql",
        sql: include_str!("../../migrations/0002_plugins.sql"),
    },
];

/// Apply the pending core migrations; returns the names of those applied now.
pub fn apply(db: &Db) -> Result<Vec<&'static str>, StorageError> {
    db.write_blocking(|tx| {
        tx.conn().execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at TEXT NOT NULL
             )",
        )?;
        Ok::<_, StorageError>(())
    })?;
    let mut applied = Vec::new();
    for m in CORE {
        let done = db.write_blocking(|tx| {
            let exists: bool = tx.conn().query_row(
                "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [m.version],
                |r| r.get(0),
            )?;
            if exists {
                return Ok::<_, StorageError>(false);
            }
            tx.conn().execute_batch(m.sql)?;
            tx.conn().execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![m.version, m.name, now_rfc3339()],
            )?;
            Ok(true)
        })?;
        if done {
            applied.push(m.name);
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered_and_idempotent() {
        let versions: Vec<i64> = CORE.iter().map(|m| m.version).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(versions, sorted, "versions strictly increasing");

        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), crate::config::SyncMode::Normal).expect("open");
        assert_eq!(apply(&db).expect("first").len(), CORE.len());
        assert!(apply(&db).expect("second").is_empty());
    }
}
