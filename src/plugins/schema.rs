//! Bringing a plugin's tables to its manifest, in one transaction: pending
//! plugin migrations first, then additive changes (new tables, columns,
//! indexes). Destructive changes are refused with a clear reason unless the
//! plugin ships a migration for them. The same function serves start-up,
//! `plinth migrate` and (later) live reload.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::manifest::{FieldType, Manifest};
use crate::storage::{ColumnType, StorageError, Tx};

/// A plugin migration file: `scripts/<plugin>/migrations/NNN_name.sql`.
#[derive(Debug, Clone)]
pub struct PluginMigration {
    /// NNN.
    pub version: i64,
    /// File name.
    pub name: String,
    /// SQL text.
    pub sql: String,
}

/// Why a schema change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The change would lose or invalidate data; one reason per problem.
    #[error("schema change refused: {}", .0.join("; "))]
    Refused(Vec<String>),
    /// SQLite refused (e.g. a migration's SQL failed).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What a successful sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Migrations applied now.
    pub migrations: Vec<String>,
    /// Tables created now.
    pub created: Vec<String>,
    /// `table.column` added now.
    pub added: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredSchema {
    entities: BTreeMap<String, StoredEntity>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredEntity {
    table: String,
    fields: BTreeMap<String, StoredField>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredField {
    #[serde(rename = "type")]
    ty: String,
    required: bool,
    unique: bool,
}

fn stored(manifest: &Manifest) -> StoredSchema {
    StoredSchema {
        entities: manifest
            .entities
            .iter()
            .map(|e| {
                let fields = e
                    .fields
                    .iter()
                    .map(|f| {
                        (
                            f.name.clone(),
                            StoredField {
                                ty: f.ty.as_str().to_owned(),
                                required: f.required,
                                unique: f.unique,
                            },
                        )
                    })
                    .collect();
                (
                    e.name.clone(),
                    StoredEntity {
                        table: e.table.clone(),
                        fields,
                    },
                )
            })
            .collect(),
    }
}

/// Storage class of a field type.
pub fn column_type(ty: FieldType) -> ColumnType {
    match ty {
        FieldType::Integer | FieldType::Bool => ColumnType::Integer,
        FieldType::Real => ColumnType::Real,
        _ => ColumnType::Text,
    }
}

/// The indexes an entity's table should have: (name, columns after
/// `tenant_id`, unique) — the list index, declared ones, unique fields, refs.
fn wanted_indexes(entity: &super::manifest::EntitySchema) -> Vec<(String, Vec<String>, bool)> {
    let table = &entity.table;
    let mut wanted = vec![(
        format!("{table}__list"),
        vec!["created_at".to_owned(), "id".to_owned()],
        false,
    )];
    for cols in &entity.indexes {
        wanted.push((
            format!("{table}__idx__{}", cols.join("__")),
            cols.clone(),
            false,
        ));
    }
    for f in &entity.fields {
        if f.unique {
            wanted.push((
                format!("{table}__uq__{}", f.name),
                vec![f.name.clone()],
                true,
            ));
        }
        if f.ty == FieldType::Ref {
            wanted.push((
                format!("{table}__ref__{}", f.name),
                vec![f.name.clone()],
                false,
            ));
        }
    }
    wanted
}

/// Bring the plugin's tables to `manifest` inside `tx` (the caller commits,
/// or rolls back on error).
pub fn sync(
    tx: &Tx<'_>,
    manifest: &Manifest,
    migrations: &[PluginMigration],
) -> Result<SyncReport, SchemaError> {
    let plugin = &manifest.name;
    let previous: StoredSchema = tx
        .plugin_schema(plugin)?
        .and_then(|(_, json)| serde_json::from_str(&json).ok())
        .unwrap_or_default();
    let applied: BTreeSet<i64> = tx.applied_plugin_migrations(plugin)?.into_iter().collect();
    let pending: Vec<&PluginMigration> = migrations
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect();

    // Removed and retyped fields lose data: only with a migration.
    let mut structural = Vec::new();
    for entity in &manifest.entities {
        let Some(before) = previous.entities.get(&entity.name) else {
            continue;
        };
        for (name, old) in &before.fields {
            let key = format!("entities.{}.fields.{name}", entity.name);
            match entity.field(name) {
                None => structural.push(format!(
                    "{key}: field removed; its column and data would be kept unserved"
                )),
                Some(f) if f.ty.as_str() != old.ty => {
                    structural.push(format!("{key}: type changed from {} to {}", old.ty, f.ty))
                }
                Some(_) => {}
            }
        }
    }
    if !structural.is_empty() && pending.is_empty() {
        return Err(SchemaError::Refused(
            structural
                .into_iter()
                .map(|p| {
                    format!(
                        "{p} (ship a migration as scripts/{plugin}/migrations/NNN_name.sql to apply it)"
                    )
                })
                .collect(),
        ));
    }

    // Indexes of fields that are going away must go before a migration can
    // drop their columns.
    for entity in &manifest.entities {
        if tx.table_columns(&entity.table)?.is_some() {
            let wanted = wanted_indexes(entity);
            for name in tx.entity_indexes(&entity.table)? {
                if !wanted.iter().any(|(w, _, _)| *w == name) {
                    tx.drop_entity_index(&name)?;
                }
            }
        }
    }

    let mut report = SyncReport::default();
    for m in &pending {
        tx.apply_plugin_migration(plugin, m.version, &m.name, &m.sql)
            .map_err(|e| SchemaError::Refused(vec![format!("migration {} failed: {e}", m.name)]))?;
        report.migrations.push(m.name.clone());
    }

    // A migration must not take away what the manifest still declares
    // (saved before the manifest change it belongs to, it would drop a
    // column that the sync below re-adds empty).
    if !pending.is_empty() {
        let mut lost = Vec::new();
        for entity in &manifest.entities {
            let Some(before) = previous.entities.get(&entity.name) else {
                continue;
            };
            let columns = tx.table_columns(&entity.table)?.unwrap_or_default();
            for f in &entity.fields {
                if before.fields.contains_key(&f.name) && !columns.iter().any(|(c, _)| *c == f.name)
                {
                    lost.push(format!(
                        "entities.{}.fields.{}: a migration drops its column, but the manifest still declares the field (save the manifest change together with its migration)",
                        entity.name, f.name
                    ));
                }
            }
        }
        if !lost.is_empty() {
            return Err(SchemaError::Refused(lost));
        }
    }

    let mut problems = Vec::new();
    for entity in &manifest.entities {
        let table = &entity.table;
        match tx.table_columns(table)? {
            None => {
                let columns: Vec<(String, ColumnType)> = entity
                    .fields
                    .iter()
                    .map(|f| (f.name.clone(), column_type(f.ty)))
                    .collect();
                tx.create_entity_table(table, &columns)?;
                report.created.push(table.clone());
            }
            Some(existing) => {
                for f in &entity.fields {
                    if !existing.iter().any(|(c, _)| *c == f.name) {
                        tx.add_entity_column(table, &f.name, column_type(f.ty))?;
                        report.added.push(format!("{table}.{}", f.name));
                    }
                }
            }
        }

        let before = previous.entities.get(&entity.name);
        for f in &entity.fields {
            let old = before.and_then(|b| b.fields.get(&f.name));
            let key = format!("entities.{}.fields.{}", entity.name, f.name);
            let newly_required =
                f.required && f.default.is_none() && !old.is_some_and(|o| o.required);
            if newly_required {
                let missing = tx.count_nulls(table, &f.name)?;
                if missing > 0 {
                    problems.push(format!(
                        "{key}: required without a default, but {missing} existing rows have no value"
                    ));
                }
            }
            if f.unique && !old.is_some_and(|o| o.unique) {
                let dupes = tx.count_duplicates(table, &f.name)?;
                if dupes > 0 {
                    problems.push(format!(
                        "{key}: unique, but {dupes} values repeat within a tenant"
                    ));
                }
            }
        }

        let wanted = wanted_indexes(entity);
        let existing = tx.entity_indexes(table)?;
        if problems.is_empty() {
            for (name, cols, unique) in &wanted {
                if !existing.contains(name) {
                    tx.create_entity_index(table, name, cols, *unique)?;
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(SchemaError::Refused(problems));
    }
    let json = serde_json::to_string(&stored(manifest))
        .map_err(|_| StorageError::Corrupt("plugin schema"))?;
    tx.record_plugin_schema(plugin, &manifest.version, &json)?;
    Ok(report)
}
