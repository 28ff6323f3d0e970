//! Finding, reading and loading plugins: manifests from the manifests dir
//! (filtered by `PLINTH_ACTIVE_PLUGINS`), migrations from
//! `scripts/<plugin>/migrations/`, then per plugin one transaction that
//! brings its tables to the manifest and registers its permissions. A
//! refused plugin is reported and skipped; the others load.

use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::PluginError;
use super::install;
use super::manifest::{self, Manifest};
use super::registry::{PluginVersion, Refusal};
use super::schema::{self, PluginMigration, SchemaError};
use crate::config::Config;
use crate::storage::{Db, StorageError, Tx, now_rfc3339};

/// What loading found.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Plugins now loaded.
    pub loaded: Vec<Arc<PluginVersion>>,
    /// Plugins refused, with reasons.
    pub refused: Vec<Refusal>,
}

/// How a path is shown in messages (`plugin-manifests/x.toml`, not `./…`).
pub fn display_path(path: &Path) -> String {
    let s = path.display().to_string();
    s.strip_prefix("./").map_or(s.clone(), str::to_owned)
}

/// Manifest files to consider, sorted by name.
pub fn discover(config: &Config) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(&config.manifests_dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .filter(|p| {
            match (
                &config.active_plugins,
                p.file_stem().and_then(|s| s.to_str()),
            ) {
                (Some(active), Some(stem)) => active.iter().any(|a| a == stem),
                (Some(_), None) => false,
                (None, _) => true,
            }
        })
        .collect();
    files.sort();
    files
}

/// Read and validate one manifest file; errors are full lines.
pub fn read_manifest(path: &Path) -> Result<Manifest, Vec<String>> {
    let file = display_path(path);
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{file}: cannot read: {e}")])?;
    let stem = path.file_stem().and_then(|s| s.to_str());
    manifest::parse(&file, stem, &text)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect())
}

/// Read `scripts/<plugin>/migrations/NNN_name.sql`, sorted by NNN.
pub fn read_migrations(
    scripts_dir: &Path,
    plugin: &str,
) -> Result<Vec<PluginMigration>, Vec<String>> {
    let dir = scripts_dir.join(plugin).join("migrations");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<PluginMigration> = Vec::new();
    let mut errors = Vec::new();
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let shown = display_path(&path);
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let version = name
            .strip_suffix(".sql")
            .and_then(|stem| stem.split_once('_'))
            .filter(|(n, rest)| {
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty()
            })
            .and_then(|(n, _)| n.parse::<i64>().ok());
        let Some(version) = version else {
            errors.push(format!(
                "{shown}: migration files are named NNN_name.sql (e.g. 002_drop_qty.sql)"
            ));
            continue;
        };
        if let Some(other) = out.iter().find(|m| m.version == version) {
            errors.push(format!(
                "{shown}: migration number {version} is also used by {}",
                other.name
            ));
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(sql) => out.push(PluginMigration { version, name, sql }),
            Err(e) => errors.push(format!("{shown}: cannot read: {e}")),
        }
    }
    if errors.is_empty() {
        out.sort_by_key(|m| m.version);
        Ok(out)
    } else {
        Err(errors)
    }
}

/// A checked plugin: its manifest and migrations, or every error found.
pub type Checked = Result<(Manifest, Vec<PluginMigration>), Vec<String>>;

/// Read one manifest and its migrations; its tables must not be among
/// `taken` (table, owning plugin) of other plugins. No database involved.
pub fn check_one(config: &Config, path: &Path, taken: &[(String, String)]) -> Checked {
    let m = read_manifest(path)?;
    let migrations = read_migrations(&config.scripts_dir, &m.name)?;
    let clashes: Vec<String> = m
        .entities
        .iter()
        .filter_map(|e| {
            taken
                .iter()
                .find(|(t, owner)| *t == e.table && *owner != m.name)
                .map(|(_, owner)| {
                    format!(
                        "{}: entities.{}: table {} is already used by plugin {owner}",
                        display_path(path),
                        e.name,
                        e.table
                    )
                })
        })
        .collect();
    if clashes.is_empty() {
        Ok((m, migrations))
    } else {
        Err(clashes)
    }
}

/// The tables of a manifest, as (table, plugin) pairs for [`check_one`].
pub fn tables_of(manifest: &Manifest) -> impl Iterator<Item = (String, String)> + '_ {
    manifest
        .entities
        .iter()
        .map(|e| (e.table.clone(), manifest.name.clone()))
}

/// Read every manifest (and its migrations); no database involved.
pub fn check_all(config: &Config) -> Vec<(PathBuf, Checked)> {
    let mut out = Vec::new();
    let mut taken: Vec<(String, String)> = Vec::new();
    for path in discover(config) {
        let result = check_one(config, &path, &taken);
        if let Ok((m, _)) = &result {
            taken.extend(tables_of(m));
        }
        out.push((path, result));
    }
    out
}

/// Register a plugin's permissions (un-retiring them) and retire the ones
/// it no longer declares.
fn sync_permissions(tx: &Tx<'_>, manifest: &Manifest) -> Result<(), StorageError> {
    for (name, description) in &manifest.permissions {
        tx.upsert_permission(name, description, &manifest.name)?;
    }
    for p in tx.list_permissions(true)? {
        if p.source == manifest.name && !manifest.permissions.iter().any(|(n, _)| *n == p.name) {
            tx.retire_permission(&p.name)?;
        }
    }
    Ok(())
}

/// Build a complete plugin version from `path` and bring the database to
/// it in one transaction: manifest read and validated, every script
/// compiled, then schema changes, permissions and new grants. Anything
/// refused leaves the database as it was.
pub fn build_version(
    db: &Db,
    config: &Config,
    runtime: &crate::runtime::Runtime,
    path: &Path,
    taken: &[(String, String)],
) -> Result<Arc<PluginVersion>, Refusal> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("?")
        .to_owned();
    let file = display_path(path);
    // Taken before reading, so a save during the build is seen as a change.
    let print = fingerprint(config, &stem);
    let refuse = |errors: Vec<String>| {
        for e in &errors {
            tracing::error!(plugin = %stem, "plugin refused: {e}");
        }
        Refusal {
            plugin: stem.clone(),
            at: now_rfc3339(),
            errors,
            fingerprint: print,
        }
    };
    let (manifest, migrations) = check_one(config, path, taken).map_err(&refuse)?;
    let scripts = crate::runtime::compile_plugin(runtime, &manifest, &file, &config.scripts_dir)
        .map_err(&refuse)?;
    let synced = db.write_blocking(|tx| -> Result<schema::SyncReport, SchemaError> {
        let r = schema::sync(tx, &manifest, &migrations)?;
        sync_permissions(tx, &manifest)?;
        // New grants reach the tenants that have the plugin installed
        // (once each: revoked grants stay revoked).
        for tenant in tx.tenant_ids()? {
            let installed =
                install::status(tx, &tenant, &manifest.name).is_ok_and(|s| s == install::INSTALLED);
            if installed {
                install::seed_grants(tx, &tenant, &manifest).map_err(|e| match e {
                    PluginError::Storage(s) => SchemaError::Storage(s),
                    other => SchemaError::Refused(vec![other.to_string()]),
                })?;
            }
        }
        Ok(r)
    });
    match synced {
        Ok(r) => {
            for m in &r.migrations {
                tracing::info!(plugin = %manifest.name, "applied plugin migration {m}");
            }
            tracing::info!(plugin = %manifest.name, version = %manifest.version, "plugin loaded");
            Ok(Arc::new(PluginVersion {
                manifest,
                scripts,
                file,
                loaded_at: now_rfc3339(),
                fingerprint: print,
            }))
        }
        Err(SchemaError::Refused(reasons)) => Err(refuse(
            reasons
                .into_iter()
                .map(|r| format!("{file}: {r}"))
                .collect(),
        )),
        Err(SchemaError::Storage(s)) => Err(refuse(vec![format!("{file}: {s}")])),
    }
}

/// Load every plugin into the database (schema + permissions), blocking.
/// A plugin whose scripts do not compile is refused before its schema is
/// touched.
pub fn load_all(db: &Db, config: &Config, runtime: &crate::runtime::Runtime) -> LoadReport {
    let mut report = LoadReport::default();
    let mut taken: Vec<(String, String)> = Vec::new();
    for path in discover(config) {
        match build_version(db, config, runtime, &path, &taken) {
            Ok(version) => {
                taken.extend(tables_of(&version.manifest));
                report.loaded.push(version);
            }
            Err(refusal) => report.refused.push(refusal),
        }
    }
    // Permissions of plugins that are no longer loaded are retired.
    let loaded: Vec<String> = report
        .loaded
        .iter()
        .map(|p| p.manifest.name.clone())
        .collect();
    retire_unloaded(db, &loaded);
    report
}

/// Retire the permissions of every plugin not in `loaded`.
pub fn retire_unloaded(db: &Db, loaded: &[String]) {
    let retired = db.write_blocking(|tx| -> Result<(), StorageError> {
        for p in tx.list_permissions(false)? {
            if p.source != "core" && !loaded.contains(&p.source) {
                tx.retire_permission(&p.name)?;
            }
        }
        Ok(())
    });
    if let Err(e) = retired {
        tracing::error!("cannot retire permissions of unloaded plugins: {e}");
    }
}

/// A hash of the manifest and of the files under `scripts/<name>/`
/// that make a version (scripts and migrations: names and contents), to
/// tell a real change from a rescan, a `touch` or an editor's swap file.
pub fn fingerprint(config: &Config, name: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut files = vec![config.manifests_dir.join(format!("{name}.toml"))];
    collect_files(&config.scripts_dir.join(name), &mut files, 0);
    for file in files {
        file.hash(&mut hasher);
        match std::fs::read(&file) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(_) => 0u8.hash(&mut hasher),
        }
    }
    hasher.finish()
}

/// Extensions of the files under `scripts/<name>/` that belong to a version.
const VERSION_FILES: &[&str] = &["rhai", "lua", "sql"];

/// The version files below `dir` (sorted, a bounded depth), for fingerprints.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            if depth < 8 {
                collect_files(&path, out, depth + 1);
            }
        } else if path
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| VERSION_FILES.contains(&x))
        {
            out.push(path);
        }
    }
}
