//! A plugin version's compiled scripts: every `.rhai` (or, for a
//! `runtime = "lua"` plugin, `.lua`) file of `scripts/<plugin>/` compiled
//! once, which file and function answers each route, and which entity and
//! lifecycle hooks exist. A request uses the set of the version it started
//! with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Runtime;
use crate::plugins::manifest::{Manifest, Runtime as Language};

/// An entity hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// `before_create(ctx, record)` → record.
    BeforeCreate,
    /// `after_create(ctx, record)`.
    AfterCreate,
    /// `before_update(ctx, old, changes)` → changes.
    BeforeUpdate,
    /// `after_update(ctx, old, new)`.
    AfterUpdate,
    /// `before_delete(ctx, record)`.
    BeforeDelete,
    /// `after_delete(ctx, record)`.
    AfterDelete,
}

impl HookKind {
    /// Every hook.
    pub const ALL: [HookKind; 6] = [
        HookKind::BeforeCreate,
        HookKind::AfterCreate,
        HookKind::BeforeUpdate,
        HookKind::AfterUpdate,
        HookKind::BeforeDelete,
        HookKind::AfterDelete,
    ];

    /// The function name.
    pub fn name(self) -> &'static str {
        match self {
            HookKind::BeforeCreate => "before_create",
            HookKind::AfterCreate => "after_create",
            HookKind::BeforeUpdate => "before_update",
            HookKind::AfterUpdate => "after_update",
            HookKind::BeforeDelete => "before_delete",
            HookKind::AfterDelete => "after_delete",
        }
    }

    /// The documented signature.
    pub fn signature(self) -> &'static str {
        match self {
            HookKind::BeforeCreate => "before_create(ctx, record)",
            HookKind::AfterCreate => "after_create(ctx, record)",
            HookKind::BeforeUpdate => "before_update(ctx, old, changes)",
            HookKind::AfterUpdate => "after_update(ctx, old, new)",
            HookKind::BeforeDelete => "before_delete(ctx, record)",
            HookKind::AfterDelete => "after_delete(ctx, record)",
        }
    }

    /// Parameters, `ctx` included.
    pub fn arity(self) -> usize {
        match self {
            HookKind::BeforeUpdate | HookKind::AfterUpdate => 3,
            _ => 2,
        }
    }
}

/// A plugin lifecycle hook of `plugin.rhai`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// `on_install(ctx)`, per tenant, in the install transaction.
    Install,
    /// `on_uninstall(ctx)`, per tenant, in the uninstall transaction.
    Uninstall,
}

impl Lifecycle {
    /// The function name.
    pub fn name(self) -> &'static str {
        match self {
            Lifecycle::Install => "on_install",
            Lifecycle::Uninstall => "on_uninstall",
        }
    }
}

/// A compiled program, in its language.
#[derive(Clone)]
pub enum Program {
    /// A Rhai AST.
    Rhai(super::rhai::Compiled),
    /// Lua bytecode and the functions it defines.
    Lua(super::lua::Compiled),
}

impl Program {
    /// Whether the script defines an entry point `name` for `params`
    /// arguments (Rhai: exactly; Lua: at most that many declared).
    pub fn defines(&self, name: &str, params: usize) -> bool {
        match self {
            Program::Rhai(p) => p.defines(name, params),
            Program::Lua(p) => p.arity_of(name).is_some_and(|n| n <= params),
        }
    }

    /// The parameter count of the function `name`.
    pub fn arity_of(&self, name: &str) -> Option<usize> {
        match self {
            Program::Rhai(p) => p.arity_of(name),
            Program::Lua(p) => p.arity_of(name),
        }
    }

    /// Whether `name` taking `n` parameters fits a hook taking `expected`.
    fn fits(&self, n: usize, expected: usize) -> bool {
        match self {
            Program::Rhai(_) => n == expected,
            // Lua ignores extra arguments: fewer parameters are fine.
            Program::Lua(_) => n <= expected,
        }
    }
}

/// One compiled script file.
#[derive(Clone)]
pub struct ScriptFile {
    /// The file as shown in messages (`scripts/inventory/item.rhai`).
    pub shown: String,
    /// Its compiled program.
    pub program: Program,
}

/// The compiled scripts of one plugin version.
#[derive(Clone, Default)]
pub struct PluginScripts {
    /// `.rhai` or `.lua`.
    extension: &'static str,
    files: BTreeMap<String, ScriptFile>,
    /// entity → the hooks its `<entity>.rhai` defines.
    entity_hooks: BTreeMap<String, Vec<HookKind>>,
    lifecycle: Vec<Lifecycle>,
}

impl std::fmt::Debug for PluginScripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginScripts")
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .field("entity_hooks", &self.entity_hooks)
            .field("lifecycle", &self.lifecycle)
            .finish()
    }
}

impl PluginScripts {
    /// A compiled file by its name in the plugin folder.
    pub fn file(&self, name: &str) -> Option<&ScriptFile> {
        self.files.get(name)
    }

    /// The script defining an entity's hook, if it does.
    pub fn hook(&self, entity: &str, kind: HookKind) -> Option<&ScriptFile> {
        self.entity_hooks
            .get(entity)
            .filter(|hooks| hooks.contains(&kind))
            .and_then(|_| self.files.get(&format!("{entity}{}", self.extension)))
    }

    /// Whether an entity has any hook (writes then run through the runtime).
    pub fn has_hooks(&self, entity: &str) -> bool {
        self.entity_hooks.get(entity).is_some_and(|h| !h.is_empty())
    }

    /// `plugin.rhai` (`plugin.lua`) when it defines this lifecycle hook.
    pub fn lifecycle(&self, which: Lifecycle) -> Option<&ScriptFile> {
        if self.lifecycle.contains(&which) {
            self.files.get(&format!("plugin{}", self.extension))
        } else {
            None
        }
    }
}

fn script_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == extension))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Compile every script of a plugin, and check that each route names a
/// script that exists and defines `fn <function>(ctx, req)`, and that hook
/// functions take the documented parameters. Errors are complete lines
/// (`file:line:col: message`), all of them.
pub fn compile_plugin(
    runtime: &Runtime,
    manifest: &Manifest,
    manifest_file: &str,
    scripts_dir: &Path,
) -> Result<PluginScripts, Vec<String>> {
    let dir = scripts_dir.join(&manifest.name);
    let shown = |name: &str| crate::plugins::loader::display_path(&dir.join(name));
    let rhai = (manifest.runtime == Language::Rhai).then(|| runtime.rhai().compiler(&dir));
    let mut errors = Vec::new();
    let mut out = PluginScripts {
        extension: manifest.runtime.extension(),
        ..PluginScripts::default()
    };
    for path in script_files(&dir, &manifest.runtime.extension()[1..]) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let compiled = match &rhai {
            Some(compiler) => compiler.compile(&path, &shown(&name)).map(Program::Rhai),
            None => runtime
                .lua()
                .compile(&path, &shown(&name))
                .map(Program::Lua),
        };
        match compiled {
            Ok(program) => {
                out.files.insert(
                    name.clone(),
                    ScriptFile {
                        shown: shown(&name),
                        program,
                    },
                );
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    let fn_word = if manifest.runtime == Language::Lua {
        "function"
    } else {
        "fn"
    };
    for (i, route) in manifest.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        if !dir.join(&route.script).is_file() {
            errors.push(format!(
                "{manifest_file}: {key}.script: {} does not exist",
                shown(&route.script)
            ));
        } else if let Some(file) = out.files.get(&route.script)
            && !file.program.defines(&route.function, 2)
        {
            errors.push(format!(
                "{manifest_file}: {key}.function: {} defines no {fn_word} {}(ctx, req)",
                shown(&route.script),
                route.function
            ));
        }
    }
    for entity in &manifest.entities {
        let name = format!("{}{}", entity.name, out.extension);
        let Some(file) = out.files.get(&name) else {
            continue;
        };
        let mut hooks = Vec::new();
        for kind in HookKind::ALL {
            match file.program.arity_of(kind.name()) {
                Some(n) if file.program.fits(n, kind.arity()) => hooks.push(kind),
                Some(n) => errors.push(format!(
                    "{}: {fn_word} {} takes {n} parameters (expected {})",
                    file.shown,
                    kind.name(),
                    kind.signature()
                )),
                None => {}
            }
        }
        out.entity_hooks.insert(entity.name.clone(), hooks);
    }
    if let Some(file) = out.files.get(&format!("plugin{}", out.extension)) {
        for which in [Lifecycle::Install, Lifecycle::Uninstall] {
            match file.program.arity_of(which.name()) {
                Some(n) if file.program.fits(n, 1) => out.lifecycle.push(which),
                Some(n) => errors.push(format!(
                    "{}: {fn_word} {} takes {n} parameters (expected {}(ctx))",
                    file.shown,
                    which.name(),
                    which.name()
                )),
                None => {}
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
