//! DDL and introspection for plugin entity tables, plus the bookkeeping of
//! applied plugin schemas and migrations. Identifiers reaching this file
//! come only from validated manifests (`[a-z][a-z0-9_]*`); they are quoted
//! anyway.

use rusqlite::{OptionalExtension as _, params};

use super::{StorageError, Tx, now_rfc3339};

/// SQLite storage class of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// TEXT (text, datetime, uuid, enum, ref, json).
    Text,
    /// INTEGER (integer, bool).
    Integer,
    /// REAL.
    Real,
}

impl ColumnType {
    fn sql(self) -> &'static str {
        match self {
            ColumnType::Text => "TEXT",
            ColumnType::Integer => "INTEGER",
            ColumnType::Real => "REAL",
        }
    }
}

/// `"name"` with embedded quotes doubled.
pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl Tx<'_> {
    /// Columns (name, declared type) of a table; `None` if it does not exist.
    pub fn table_columns(
        &self,
        table: &str,
    ) -> Result<Option<Vec<(String, String)>>, StorageError> {
        let cols = self
            .conn()
            .prepare(&format!("PRAGMA table_info({})", quote(table)))?
            .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok((!cols.is_empty()).then_some(cols))
    }

    /// Create an entity table with the base columns, the given columns and the
    /// default list index `(tenant_id, created_at, id)`.
    pub fn create_entity_table(
        &self,
        table: &str,
        columns: &[(String, ColumnType)],
    ) -> Result<(), StorageError> {
        let mut sql = format!(
            "CREATE TABLE {} (
                id TEXT PRIMARY KEY,
                tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                created_by TEXT",
            quote(table)
        );
        for (name, ty) in columns {
            sql.push_str(&format!(",\n                {} {}", quote(name), ty.sql()));
        }
        sql.push_str("\n            )");
        self.conn().execute_batch(&sql)?;
        self.create_entity_index(
            table,
            &format!("{table}__list"),
            &["created_at".to_owned(), "id".to_owned()],
            false,
        )
    }

    /// Add a column (NULL in existing rows).
    pub fn add_entity_column(
        &self,
        table: &str,
        column: &str,
        ty: ColumnType,
    ) -> Result<(), StorageError> {
        self.conn().execute_batch(&format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            quote(table),
            quote(column),
            ty.sql()
        ))?;
        Ok(())
    }

    /// Names of the indexes plinth made on a table (prefix `<table>__`).
    pub fn entity_indexes(&self, table: &str) -> Result<Vec<String>, StorageError> {
        let prefix = format!("{table}__");
        Ok(self
            .conn()
            .prepare(&format!("PRAGMA index_list({})", quote(table)))?
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect())
    }

    /// Create an index led by `tenant_id`.
    pub fn create_entity_index(
        &self,
        table: &str,
        name: &str,
        columns: &[String],
        unique: bool,
    ) -> Result<(), StorageError> {
        let cols: Vec<String> = std::iter::once("tenant_id".to_owned())
            .chain(columns.iter().cloned())
            .map(|c| quote(&c))
            .collect();
        self.conn().execute_batch(&format!(
            "CREATE {}INDEX IF NOT EXISTS {} ON {} ({})",
            if unique { "UNIQUE " } else { "" },
            quote(name),
            quote(table),
            cols.join(", ")
        ))?;
        Ok(())
    }

    /// Drop an index.
    pub fn drop_entity_index(&self, name: &str) -> Result<(), StorageError> {
        self.conn()
            .execute_batch(&format!("DROP INDEX IF EXISTS {}", quote(name)))?;
        Ok(())
    }

    /// Rows of a table (all tenants).
    pub fn count_all_rows(&self, table: &str) -> Result<u64, StorageError> {
        let n: i64 =
            self.conn()
                .query_row(&format!("SELECT COUNT(*) FROM {}", quote(table)), [], |r| {
                    r.get(0)
                })?;
        Ok(n.unsigned_abs())
    }

    /// Rows where a column is NULL (all tenants).
    pub fn count_nulls(&self, table: &str, column: &str) -> Result<u64, StorageError> {
        let n: i64 = self.conn().query_row(
            &format!(
                "SELECT COUNT(*) FROM {} WHERE {} IS NULL",
                quote(table),
                quote(column)
            ),
            [],
            |r| r.get(0),
        )?;
        Ok(n.unsigned_abs())
    }

    /// Values of a column that repeat within one tenant.
    pub fn count_duplicates(&self, table: &str, column: &str) -> Result<u64, StorageError> {
        let n: i64 = self.conn().query_row(
            &format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM {t} WHERE {c} IS NOT NULL
                 GROUP BY tenant_id, {c} HAVING COUNT(*) > 1)",
                t = quote(table),
                c = quote(column)
            ),
            [],
            |r| r.get(0),
        )?;
        Ok(n.unsigned_abs())
    }

    /// The schema a plugin's tables were last brought to: (version, JSON).
    pub fn plugin_schema(&self, plugin: &str) -> Result<Option<(String, String)>, StorageError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT version, schema FROM plugin_schemas WHERE plugin = ?1",
                [plugin],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Record the schema a plugin's tables now have.
    pub fn record_plugin_schema(
        &self,
        plugin: &str,
        version: &str,
        schema: &str,
    ) -> Result<(), StorageError> {
        self.conn().execute(
            "INSERT INTO plugin_schemas (plugin, version, schema, applied_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (plugin) DO UPDATE SET version = excluded.version,
                 schema = excluded.schema, applied_at = excluded.applied_at",
            params![plugin, version, schema, now_rfc3339()],
        )?;
        Ok(())
    }

    /// Versions of a plugin's migrations already applied.
    pub fn applied_plugin_migrations(&self, plugin: &str) -> Result<Vec<i64>, StorageError> {
        Ok(self
            .conn()
            .prepare("SELECT version FROM plugin_migrations WHERE plugin = ?1 ORDER BY version")?
            .query_map([plugin], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Run one plugin migration (operator-supplied SQL) and record it.
    pub fn apply_plugin_migration(
        &self,
        plugin: &str,
        version: i64,
        name: &str,
        sql: &str,
    ) -> Result<(), StorageError> {
        self.conn().execute_batch(sql)?;
        self.conn().execute(
            "INSERT INTO plugin_migrations (plugin, version, name, applied_at) VALUES (?1, ?2, ?3, ?4)",
            params![plugin, version, name, now_rfc3339()],
        )?;
        Ok(())
    }
}
