//! Lua 5.4: the sandboxed states plugin scripts with `runtime = "lua"` run
//! on, compiling a script to bytecode once per plugin version, calling a
//! script function inside an invocation, and turning Lua's errors into
//! located script failures. The host API is the one of
//! [`crate::runtime::host_api`]; `bindings` only converts values.
//!
//! A Lua state is not `Send`, so each thread that runs scripts keeps its
//! own state per runtime (the request threads and the writer thread), with
//! the sandbox of `sandbox.lua`, the memory limit, and one hook that counts
//! instructions, checks the request's deadline and bounds the call depth.
//! A script file is compiled wrapped as `local _ENV = ...; <source>` (same
//! line numbers), so every call runs its top level again with a fresh
//! global table: what one request writes to a global, no other request or
//! tenant ever sees.

mod bindings;
mod convert;
mod patterns;
mod raw;
mod strings;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mlua::chunk::ChunkMode;
use mlua::{Function, Lua, LuaOptions, MultiValue, StdLib, Value as LuaValue};
use serde_json::Value;

use super::invocation::{self, Invocation};
use super::{FaultKind, ScriptError, ScriptLimits, fault};
use crate::plugins::PluginError;

/// The sandbox, run once per state.
const SANDBOX: &str = include_str!("sandbox.lua");

/// The sandbox's chunk name (a `/` no script file name can contain).
const SANDBOX_NAME: &str = "=plinth/sandbox";

/// What the compiler puts before a script's first line.
const PREFIX: &str = "local _ENV = ...; ";

/// Frames between the entry of a call and the script's function (the
/// sandbox's `run`, `pcall`, `invoke`), plus a host function at the leaf.
const ENTRY_FRAMES: usize = 6;

/// A compiled script: its bytecode and the global functions its top level
/// defines (name → declared parameters).
#[derive(Clone)]
pub struct Compiled {
    id: u64,
    /// The chunk's name inside Lua (the file name: Lua keeps only 60
    /// characters of a chunk name, too few for a whole path).
    name: Arc<str>,
    bytecode: Arc<[u8]>,
    functions: Arc<BTreeMap<String, usize>>,
}

impl Compiled {
    /// Whether the script defines a global function `name`.
    pub fn defines(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// The declared parameter count of `name`.
    pub fn arity_of(&self, name: &str) -> Option<usize> {
        self.functions.get(name).copied()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The Lua runtime of a server: its limits, and an id that keys the
/// per-thread states.
pub struct LuaRuntime {
    id: u64,
    limits: ScriptLimits,
}

/// One thread's Lua state.
struct State {
    runtime: u64,
    lua: Lua,
    run: Function,
    define: Function,
    /// (plugin, file) → (program id, loaded chunk).
    chunks: RefCell<HashMap<(String, String), (u64, Function)>>,
}

thread_local! {
    static STATES: RefCell<Vec<Rc<State>>> = const { RefCell::new(Vec::new()) };
    /// Instructions counted in the current call.
    static OPS: Cell<u64> = const { Cell::new(0) };
    /// The instruction budget of the current call.
    static MAX_OPS: Cell<u64> = const { Cell::new(u64::MAX) };
    /// Instructions between two count events of the current call's state.
    static EVERY: Cell<u32> = const { Cell::new(1000) };
    /// Stack level past which a call is too deep (0: unchecked).
    static DEPTH_LIMIT: Cell<usize> = const { Cell::new(0) };
    /// The script line an error was thrown at (noted by the sandbox's
    /// message handler).
    static THROWN_AT: Cell<Option<usize>> = const { Cell::new(None) };
    /// Set while probing a function's parameter count.
    static PROBE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The limits a value leaving a script is held to.
fn bounds(limits: &ScriptLimits) -> convert::Bounds {
    convert::Bounds {
        max_string: limits.max_string,
        max_items: limits.max_collection,
    }
}

/// How many instructions run between two checks of the hook.
fn check_every(limits: &ScriptLimits) -> u32 {
    u32::try_from((limits.max_operations / 20).clamp(1, 1000)).unwrap_or(1000)
}

/// Record that a limit ends the running invocation (if any), located at
/// `file:line`; answers the error text (`file:line: message`).
fn record_end(kind: FaultKind, file: String, line: usize, message: &str) -> String {
    let text = if file.is_empty() {
        message.to_owned()
    } else {
        format!("{file}:{line}: {message}")
    };
    if let Some(inv) = invocation::current() {
        let mut ending = inv.ending.borrow_mut();
        if ending.is_none() {
            *ending = Some((
                kind,
                ScriptError {
                    file,
                    line,
                    column: None,
                    message: message.to_owned(),
                },
            ));
        }
    }
    text
}

/// Record that a limit ends the running invocation (if any), located at
/// the line the script was at; the error unwinds the script.
fn end(lua: &Lua, kind: FaultKind, message: &str) -> mlua::Error {
    let (file, line) = script_location(lua).unwrap_or_default();
    mlua::Error::RuntimeError(record_end(kind, file, line, message))
}

/// The file and line of the innermost script frame (skipping library
/// functions and the sandbox).
fn script_location(lua: &Lua) -> Option<(String, usize)> {
    let mut level = 0;
    loop {
        let found = lua.inspect_stack(level, |d| {
            let source = d.source();
            let script =
                source.what != "C" && source.source.as_deref().is_none_or(|s| s != SANDBOX_NAME);
            script.then(|| {
                (
                    source.short_src.map(|s| s.to_string()).unwrap_or_default(),
                    d.current_line().unwrap_or(0),
                )
            })
        })?;
        if found.is_some() {
            return found;
        }
        level += 1;
    }
}

/// Note where the error being raised was thrown (the sandbox's message
/// handler calls this while the script's frames are still there).
fn note_thrown(lua: &Lua) {
    THROWN_AT.set(script_location(lua).map(|(_, line)| line));
}

/// The budget of the calls about to run on this thread, restored when
/// dropped (a host call may run a nested script call).
struct Budget {
    thrown_at: Option<usize>,
    ops: u64,
    max_ops: u64,
    every: u32,
    depth: usize,
}

impl Budget {
    fn enter(limits: &ScriptLimits, depth_limit: usize) -> Budget {
        Budget {
            thrown_at: THROWN_AT.take(),
            ops: OPS.replace(0),
            max_ops: MAX_OPS.replace(limits.max_operations),
            every: EVERY.replace(check_every(limits)),
            depth: DEPTH_LIMIT.replace(depth_limit),
        }
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        THROWN_AT.set(self.thrown_at);
        OPS.set(self.ops);
        MAX_OPS.set(self.max_ops);
        EVERY.set(self.every);
        DEPTH_LIMIT.set(self.depth);
    }
}

impl LuaRuntime {
    /// A runtime with these limits.
    pub fn new(limits: &ScriptLimits) -> LuaRuntime {
        LuaRuntime {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            limits: *limits,
        }
    }

    /// A sandboxed state with the host API, limits and hook.
    fn new_state(&self) -> mlua::Result<State> {
        let lua = Lua::new_with(
            StdLib::STRING | StdLib::TABLE | StdLib::MATH | StdLib::UTF8,
            LuaOptions::default(),
        )?;
        let limits = self.limits;
        let every = check_every(&limits);
        raw::install_hook(&lua, every)?;
        let host = bindings::host_table(&lua, bounds(&limits))?;
        strings::register(&lua, &host, limits.max_string)?;
        let (run, define): (Function, Function) =
            lua.load(SANDBOX).set_name(SANDBOX_NAME).call((
                host,
                i64::try_from(limits.max_string).unwrap_or(i64::MAX),
                i64::try_from(limits.max_collection).unwrap_or(i64::MAX),
            ))?;
        // The sandbox itself is outside the memory budget of scripts.
        lua.set_memory_limit(limits.max_memory + lua.used_memory())?;
        Ok(State {
            runtime: self.id,
            lua,
            run,
            define,
            chunks: RefCell::new(HashMap::new()),
        })
    }

    /// This thread's state of this runtime.
    fn state(&self) -> mlua::Result<Rc<State>> {
        if let Some(s) = STATES.with(|s| {
            s.borrow()
                .iter()
                .find(|st| st.runtime == self.id)
                .map(Rc::clone)
        }) {
            return Ok(s);
        }
        let state = Rc::new(self.new_state()?);
        STATES.with(|s| {
            let mut states = s.borrow_mut();
            // A thread serves one server in practice; keep a handful.
            if states.len() >= 4 {
                states.remove(0);
            }
            states.push(Rc::clone(&state));
        });
        Ok(state)
    }

    /// Compile one file: syntax checked, its top level run once in the
    /// sandbox to learn the functions it defines.
    pub fn compile(&self, path: &Path, shown: &str) -> Result<Compiled, ScriptError> {
        let name = chunk_name(path);
        let located = |line: usize, message: String| ScriptError {
            file: shown.to_owned(),
            line,
            column: None,
            message,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| located(0, format!("cannot read: {e}")))?;
        let state = self
            .new_state()
            .map_err(|e| located(0, format!("cannot start Lua: {e}")))?;
        let lua = &state.lua;
        let chunk = lua
            .load(format!("{PREFIX}{text}"))
            .set_name(format!("={name}"))
            .set_mode(ChunkMode::Text)
            .into_function()
            .map_err(|e| {
                let (line, message) = split_location(&name, &error_text(&e));
                located(line, message)
            })?;
        let bytecode: Arc<[u8]> = chunk.dump(false).into();
        let budget = Budget::enter(&self.limits, 0);
        let defined: mlua::Result<(bool, LuaValue)> = state.define.call(chunk);
        drop(budget);
        let functions = match defined {
            Ok((true, LuaValue::Table(t))) => t,
            Ok((_, err)) => {
                let (line, message) = split_location(&name, &value_text(&err));
                return Err(located(line, format!("top-level code failed: {message}")));
            }
            Err(e) => {
                let (line, message) = split_location(&name, &error_text(&e));
                return Err(located(line, format!("top-level code failed: {message}")));
            }
        };
        let mut defined = BTreeMap::new();
        for pair in functions.pairs::<String, Function>() {
            let Ok((name, f)) = pair else { continue };
            PROBE.set(Some(usize::MAX));
            let _ = f.call::<()>(());
            let params = PROBE.take().filter(|n| *n != usize::MAX).unwrap_or(0);
            defined.insert(name, params);
        }
        Ok(Compiled {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: name.into(),
            bytecode,
            functions: Arc::new(defined),
        })
    }

    /// Call `function(ctx, args...)` of a compiled file inside `inv` (the
    /// invocation entered on this thread); `ctx` is the innermost frame's.
    pub(crate) fn call(
        &self,
        inv: &Invocation,
        plugin: &str,
        file: &super::scripts::ScriptFile,
        function: &str,
        args: Vec<Value>,
    ) -> Result<Value, PluginError> {
        let super::scripts::Program::Lua(program) = &file.program else {
            return Err(fault(
                plugin,
                FaultKind::Runtime,
                ScriptError {
                    file: file.shown.clone(),
                    line: 0,
                    column: None,
                    message: "not a Lua script".to_owned(),
                },
            ));
        };
        let internal = |e: mlua::Error| {
            fault(
                plugin,
                FaultKind::Runtime,
                ScriptError {
                    file: file.shown.clone(),
                    line: 0,
                    column: None,
                    message: format!("Lua: {e}"),
                },
            )
        };
        let state = self.state().map_err(internal)?;
        let chunk = state
            .chunk(plugin, &file.shown, program)
            .map_err(internal)?;
        let lua = &state.lua;
        let mut call_args: Vec<LuaValue> = Vec::with_capacity(args.len() + 2);
        call_args.push(LuaValue::Function(chunk));
        call_args.push(LuaValue::String(
            lua.create_string(function).map_err(internal)?,
        ));
        for a in &args {
            call_args.push(convert::to_lua(lua, a).map_err(internal)?);
        }
        let base = stack_depth(lua);
        let budget = Budget::enter(
            &self.limits,
            base + self.limits.max_call_depth + ENTRY_FRAMES,
        );
        let result: mlua::Result<MultiValue> = state.run.call(MultiValue::from_vec(call_args));
        let thrown_at = THROWN_AT.take();
        drop(budget);
        let names = (file.shown.as_str(), &*program.name);
        let mut values = match result {
            Ok(values) => values.into_iter(),
            Err(e) => {
                return Err(classify(
                    inv,
                    plugin,
                    names,
                    thrown_at,
                    &LuaValue::String(lua.create_string(error_text(&e)).map_err(internal)?),
                ));
            }
        };
        let ok = matches!(values.next(), Some(LuaValue::Boolean(true)));
        let value = values.next().unwrap_or(LuaValue::Nil);
        if ok {
            convert::to_json(&value, bounds(&self.limits)).map_err(|why| {
                let (kind, message) = match why {
                    convert::JsonError::Limit(what) => (
                        FaultKind::Limit,
                        format!("{function} returned a value past a limit: {what}"),
                    ),
                    convert::JsonError::Invalid(why) => (
                        FaultKind::Runtime,
                        format!("{function} returned a value that is not JSON: {why}"),
                    ),
                };
                fault(
                    plugin,
                    kind,
                    ScriptError {
                        file: file.shown.clone(),
                        line: 0,
                        column: None,
                        message,
                    },
                )
            })
        } else {
            Err(classify(inv, plugin, names, thrown_at, &value))
        }
    }
}

impl State {
    /// The loaded chunk of a compiled file (loaded again when the plugin
    /// version changed).
    fn chunk(&self, plugin: &str, shown: &str, program: &Compiled) -> mlua::Result<Function> {
        let key = (plugin.to_owned(), shown.to_owned());
        if let Some((id, f)) = self.chunks.borrow().get(&key)
            && *id == program.id
        {
            return Ok(f.clone());
        }
        let f = self
            .lua
            .load(&program.bytecode[..])
            .set_name(format!("={}", program.name))
            .set_mode(ChunkMode::Binary)
            .into_function()?;
        self.chunks
            .borrow_mut()
            .insert(key, (program.id, f.clone()));
        Ok(f)
    }
}

/// How many levels the Lua stack has now (0 outside any Lua call).
fn stack_depth(lua: &Lua) -> usize {
    let mut level = 0;
    while lua.inspect_stack(level, |_| ()).is_some() {
        level += 1;
    }
    level
}

/// The text of an mlua error, without its Rust-side traceback.
fn error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) | mlua::Error::MemoryError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => error_text(cause),
        other => other.to_string(),
    }
}

/// The text of a Lua error value.
fn value_text(v: &LuaValue) -> String {
    match v {
        LuaValue::String(s) => s.to_string_lossy(),
        LuaValue::Error(e) => error_text(e),
        LuaValue::Nil => "nil".to_owned(),
        other => convert::to_json(other, convert::Bounds::NONE)
            .map_or_else(|_| format!("a {}", other.type_name()), |j| j.to_string()),
    }
}

/// The name a script's chunk has inside Lua: its file name (the tail of
/// it, should it be longer than Lua keeps).
fn chunk_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut start = name.len().saturating_sub(50);
    while !name.is_char_boundary(start) {
        start += 1;
    }
    name[start..].to_owned()
}

/// `file:line: message` → (line, message) when it names `shown`.
fn split_location(shown: &str, text: &str) -> (usize, String) {
    if let Some(rest) = text.strip_prefix(shown).and_then(|r| r.strip_prefix(':'))
        && let Some((line, message)) = rest.split_once(": ")
        && let Ok(line) = line.parse::<usize>()
    {
        return (line, message.to_owned());
    }
    (0, text.to_owned())
}

/// What ended a call: the request's end recorded by the host API, a limit
/// recorded by the hook, Lua's own memory and stack errors, an uncaught
/// refused write, or a runtime error located in the script.
fn classify(
    inv: &Invocation,
    plugin: &str,
    (shown, name): (&str, &str),
    thrown_at: Option<usize>,
    err: &LuaValue,
) -> PluginError {
    if let Some(pending) = inv.pending.borrow_mut().take() {
        return pending;
    }
    if let Some((kind, mut error)) = inv.ending.borrow_mut().take() {
        if error.file != name {
            error.line = 0;
        }
        error.file = shown.to_owned();
        return fault(plugin, kind, error);
    }
    if let LuaValue::Table(_) = err
        && let Ok(thrown) = convert::to_json(err, convert::Bounds::NONE)
    {
        let mut rejected = inv.rejected.borrow_mut();
        if rejected.as_ref().is_some_and(|(v, _)| *v == thrown)
            && let Some((_, e)) = rejected.take()
        {
            return e;
        }
    }
    let text = value_text(err);
    let (line, message) = split_location(name, &text);
    // A thrown table (or text thrown at level 0) has no location of its
    // own: the sandbox's message handler noted the script's line.
    let line = if line == 0 {
        thrown_at.unwrap_or(0)
    } else {
        line
    };
    let (kind, message) = if message.contains("not enough memory") {
        (FaultKind::Limit, "memory limit exceeded".to_owned())
    } else if message.contains("stack overflow") {
        (FaultKind::Limit, "call depth limit exceeded".to_owned())
    } else {
        (FaultKind::Runtime, message)
    };
    fault(
        plugin,
        kind,
        ScriptError {
            file: shown.to_owned(),
            line,
            column: None,
            message,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_text(text: &str) -> Result<Compiled, ScriptError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.lua");
        std::fs::write(&path, text).expect("write");
        LuaRuntime::new(&ScriptLimits::default()).compile(&path, "scripts/p/x.lua")
    }

    #[test]
    fn syntax_errors_carry_file_and_line() {
        let err = compile_text("function handle(ctx, req)\n  local x = \nend\n")
            .err()
            .expect("syntax error");
        assert_eq!(err.file, "scripts/p/x.lua");
        assert_eq!(err.line, 3, "{err}");
        assert_eq!(err.column, None);
        assert!(err.message.contains("unexpected symbol"), "{err}");
    }

    #[test]
    fn compiling_learns_the_global_functions_and_their_parameters() {
        let c = compile_text(
            "local function helper() end\nfunction handle(ctx, req) end\nfunction on_install(ctx) end\n",
        )
        .expect("compiles");
        assert!(c.defines("handle"));
        assert_eq!(c.arity_of("handle"), Some(2));
        assert_eq!(c.arity_of("on_install"), Some(1));
        assert!(!c.defines("helper"), "locals are not entry points");
    }

    #[test]
    fn a_runaway_top_level_is_a_compile_error() {
        let err = compile_text("while true do end\n").err().expect("refused");
        assert!(err.message.contains("operations"), "{err}");
        assert_eq!(err.line, 1, "{err}");
    }

    #[test]
    fn the_sandbox_has_no_loaders_files_or_environment() {
        for name in [
            "load",
            "loadfile",
            "dofile",
            "require",
            "loadstring",
            "io",
            "os",
            "debug",
            "package",
            "collectgarbage",
            "print",
            "rawset",
            "coroutine",
        ] {
            let c = compile_text(&format!("assert({name} == nil, '{name}')\n"));
            assert!(c.is_ok(), "{name} is absent: {:?}", c.err());
        }
        assert!(compile_text("assert(string.dump == nil)\n").is_ok());
        assert!(compile_text("assert(math.randomseed == nil)\n").is_ok());
        let err = compile_text("string.upper = nil\n")
            .err()
            .expect("read-only");
        assert!(err.message.contains("read-only"), "{err}");
    }

    #[test]
    fn a_limit_hit_in_a_library_function_is_located_at_the_script_line() {
        let err = compile_text("local a = 1\nlocal s = string.rep('x', 1 << 30)\n")
            .err()
            .expect("refused");
        assert!(err.message.contains("string length"), "{err}");
        assert_eq!(err.line, 2, "{err}");
    }

    #[test]
    fn locations_split_off_messages() {
        assert_eq!(
            split_location("scripts/p/x.lua", "scripts/p/x.lua:12: boom"),
            (12, "boom".to_owned())
        );
        assert_eq!(
            split_location("scripts/p/x.lua", "elsewhere: boom"),
            (0, "elsewhere: boom".to_owned())
        );
    }
}
