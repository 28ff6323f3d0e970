//! Script runtimes: plugin logic in Rhai, run through one host API.
//!
//! - [`host_api`] — every operation a script can call (`ctx.db.get`,
//!   `ctx.can`, `ctx.fail`, …), written once in plain Rust over JSON values
//!   and the request's transaction; no script engine in it.
//! - [`rhai`] — the sandboxed Rhai engine, the confined module resolver,
//!   value conversion, and the thin binding of the host API.
//! - [`scripts`] — a plugin version's compiled scripts: route handlers,
//!   entity hooks, lifecycle hooks (compiled once per version).
//! - [`hooks`] — entity and lifecycle hooks, called by the plugins layer for
//!   REST and script writes alike.
//! - [`routes`] — a custom route's request in, its response out.
//!
//! The runtime sits beside `plugins`: the plugins layer calls into it for
//! hooks, and the host API calls the plugins' row operations, so that a
//! script write and a REST write are the same code. Nothing here knows
//! HTTP.

pub mod hooks;
pub mod host_api;
mod invocation;
pub mod lua;
pub mod rhai;
pub mod routes;
pub mod scripts;
pub mod watcher;

use std::fmt;
use std::time::Duration;

pub use scripts::{HookKind, Lifecycle, PluginScripts, compile_plugin};

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

/// Sandbox limits (SCRIPTING.md defaults; each is a setting).
#[derive(Debug, Clone, Copy)]
pub struct ScriptLimits {
    /// Operations per script call.
    pub max_operations: u64,
    /// Wall-clock time per request, all script calls together.
    pub timeout: Duration,
    /// Call depth.
    pub max_call_depth: usize,
    /// String length in bytes.
    pub max_string: usize,
    /// Array and map size.
    pub max_collection: usize,
    /// Rows one `ctx.db.find` may return.
    pub max_rows: usize,
    /// Bytes one Lua state may allocate.
    pub max_memory: usize,
}

impl Default for ScriptLimits {
    fn default() -> ScriptLimits {
        ScriptLimits {
            max_operations: 1_000_000,
            timeout: Duration::from_secs(2),
            max_call_depth: 64,
            max_string: 1 << 20,
            max_collection: 100_000,
            max_rows: 10_000,
            max_memory: 64 << 20,
        }
    }
}

/// Entity hooks calling entity writes calling hooks stop at this depth.
pub const MAX_HOOK_DEPTH: usize = 8;

/// How a script fault is counted (`plinth_script_errors_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// A runtime error: a thrown value, a type error, a bad host API call.
    Runtime,
    /// A sandbox limit: operations, call depth, sizes, rows, hook depth.
    Limit,
    /// The request's wall-clock limit.
    Timeout,
}

impl FaultKind {
    /// Every kind, in metric order.
    pub const ALL: [FaultKind; 3] = [FaultKind::Runtime, FaultKind::Limit, FaultKind::Timeout];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Runtime => "runtime",
            FaultKind::Limit => "limit",
            FaultKind::Timeout => "timeout",
        }
    }
}

/// A script that ended its request.
#[derive(Debug, Clone)]
pub enum ScriptFailure {
    /// `ctx.fail(status, message)`: that 4xx.
    Fail {
        /// Plugin whose script failed the request.
        plugin: String,
        /// 400–499.
        status: u16,
        /// The script's message.
        message: String,
    },
    /// `ctx.require(permission)` without the permission: 403.
    Forbidden {
        /// Plugin whose script required it.
        plugin: String,
        /// The missing permission.
        permission: String,
    },
    /// A runtime error or a limit: 500 (503 for the time limit).
    Fault {
        /// Plugin whose script faulted.
        plugin: String,
        /// How it is counted.
        kind: FaultKind,
        /// Where and what.
        error: ScriptError,
    },
}

impl ScriptFailure {
    /// The plugin whose script ended the request.
    pub fn plugin(&self) -> &str {
        match self {
            ScriptFailure::Fail { plugin, .. }
            | ScriptFailure::Forbidden { plugin, .. }
            | ScriptFailure::Fault { plugin, .. } => plugin,
        }
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> u16 {
        match self {
            ScriptFailure::Fail { status, .. } => *status,
            ScriptFailure::Forbidden { .. } => 403,
            ScriptFailure::Fault {
                kind: FaultKind::Timeout,
                ..
            } => 503,
            ScriptFailure::Fault { .. } => 500,
        }
    }
}

impl fmt::Display for ScriptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScriptFailure::Fail { message, .. } => f.write_str(message),
            ScriptFailure::Forbidden { permission, .. } => {
                write!(f, "missing permission {permission}")
            }
            ScriptFailure::Fault { plugin, error, .. } => {
                write!(f, "plugin {plugin}: {error}")
            }
        }
    }
}

/// A script fault of `plugin` as the error that ends its request (shared
/// by the language runtimes).
pub(crate) fn fault(
    plugin: &str,
    kind: FaultKind,
    error: ScriptError,
) -> crate::plugins::PluginError {
    crate::plugins::PluginError::Script(Box::new(ScriptFailure::Fault {
        plugin: plugin.to_owned(),
        kind,
        error,
    }))
}

/// The script runtimes of one server, with its limits; shared by every
/// request (`Arc`).
pub struct Runtime {
    limits: ScriptLimits,
    rhai: rhai::RhaiRuntime,
    lua: lua::LuaRuntime,
}

impl Runtime {
    /// Engines configured with `limits`.
    pub fn new(limits: ScriptLimits) -> Runtime {
        Runtime {
            limits,
            rhai: rhai::RhaiRuntime::new(&limits),
            lua: lua::LuaRuntime::new(&limits),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &ScriptLimits {
        &self.limits
    }

    /// The Rhai runtime.
    pub fn rhai(&self) -> &rhai::RhaiRuntime {
        &self.rhai
    }

    /// The Lua runtime.
    pub fn lua(&self) -> &lua::LuaRuntime {
        &self.lua
    }

    /// Call `function(ctx, args...)` of a compiled file, in the language it
    /// is written in, inside `inv` with `ctx` naming `frame`.
    pub(crate) fn call(
        &self,
        inv: &invocation::Invocation,
        frame: usize,
        plugin: &str,
        file: &scripts::ScriptFile,
        function: &str,
        args: Vec<serde_json::Value>,
    ) -> Result<serde_json::Value, crate::plugins::PluginError> {
        match &file.program {
            scripts::Program::Rhai(_) => self.rhai.call(inv, frame, plugin, file, function, args),
            // Lua's `ctx` is always the innermost frame's (`frame`).
            scripts::Program::Lua(_) => self.lua.call(inv, plugin, file, function, args),
        }
    }
}

impl Default for Runtime {
    fn default() -> Runtime {
        Runtime::new(ScriptLimits::default())
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Compile every script of a plugin and check its routes and hooks (for
/// `plinth plugin check`): one located line per problem.
pub fn check_plugin_scripts(
    manifest: &crate::plugins::manifest::Manifest,
    manifest_file: &str,
    scripts_dir: &std::path::Path,
) -> Vec<String> {
    match compile_plugin(&Runtime::default(), manifest, manifest_file, scripts_dir) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    }
}
