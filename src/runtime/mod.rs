//! Script runtimes. This release compiles and checks Rhai scripts (used by
//! `plinth plugin check`); running them through the host API comes next.

pub mod rhai;

use std::fmt;

/// A script problem located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// Script file as shown in messages (e.g. `scripts/inventory/restock.rhai`).
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column; `None` where the compiler gives none.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file,
            self.line,
            self.column.unwrap_or(0),
            self.message
        )
    }
}

/// Sandbox limits (SCRIPTING.md defaults).
#[derive(Debug, Clone, Copy)]
pub struct ScriptLimits {
    /// Operations per call.
    pub max_operations: u64,
    /// Call depth.
    pub max_call_depth: usize,
    /// String length in bytes.
    pub max_string: usize,
    /// Array and map size.
    pub max_collection: usize,
}

impl Default for ScriptLimits {
    fn default() -> ScriptLimits {
        ScriptLimits {
            max_operations: 1_000_000,
            max_call_depth: 64,
            max_string: 1 << 20,
            max_collection: 100_000,
        }
    }
}

/// Compile every Rhai script of a plugin and check that each route names a
/// script that exists and defines its function as `fn name(ctx, req)`.
/// Returns one located line per problem.
pub fn check_plugin_scripts(
    manifest: &crate::plugins::manifest::Manifest,
    manifest_file: &str,
    scripts_dir: &std::path::Path,
) -> Vec<String> {
    use crate::plugins::manifest::Runtime;
    if manifest.runtime != Runtime::Rhai {
        return Vec::new();
    }
    let dir = scripts_dir.join(&manifest.name);
    let shown = |name: &str| crate::plugins::loader::display_path(&dir.join(name));
    let engine = rhai::engine(&ScriptLimits::default());
    let mut errors = Vec::new();
    let mut compiled = std::collections::BTreeMap::new();
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rhai"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        match rhai::compile(&engine, &path, &shown(&name)) {
            Ok(ast) => {
                compiled.insert(name, ast);
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    for (i, route) in manifest.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        if !dir.join(&route.script).is_file() {
            errors.push(format!(
                "{manifest_file}: {key}.script: {} does not exist",
                shown(&route.script)
            ));
        } else if let Some(ast) = compiled.get(&route.script)
            && !rhai::defines(ast, &route.function, 2)
        {
            errors.push(format!(
                "{manifest_file}: {key}.function: {} defines no fn {}(ctx, req)",
                shown(&route.script),
                route.function
            ));
        }
    }
    errors
}
