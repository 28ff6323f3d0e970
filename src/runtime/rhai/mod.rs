//! Rhai: the sandboxed engine plugin scripts run on, compiling with imports
//! confined to the plugin's folder, calling a script function inside an
//! invocation, and turning Rhai's errors into located script failures.
//!
//! One engine serves every request (`sync`): its limits are the
//! deployment's, and the per-request wall-clock deadline is checked from
//! the progress callback against the invocation running on the thread.
//! Scripts compile once per plugin version; `import "x"` with a literal
//! path is resolved at compile time from the plugin's folder and embedded
//! in the compiled program, and nothing can be imported at run time.

mod bindings;
mod convert;
mod resolver;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rhai::packages::{Package, StandardPackage};
use rhai::{AST, Dynamic, Engine, EvalAltResult, Position, Scope, Shared};
use serde_json::Value;

use super::invocation::Invocation;
use super::{FaultKind, ScriptError, ScriptLimits, fault};
use crate::plugins::PluginError;

pub use bindings::CtxHandle;

/// How often (in operations) the progress callback checks the deadline.
const DEADLINE_CHECK_EVERY: u64 = 16;

fn standard_package() -> Shared<rhai::Module> {
    static STD: OnceLock<Shared<rhai::Module>> = OnceLock::new();
    STD.get_or_init(|| StandardPackage::new().as_shared_module())
        .clone()
}

/// An engine with the standard packages, no `eval`, no imports and the
/// sandbox limits.
pub fn engine(limits: &ScriptLimits) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(standard_package());
    engine.disable_symbol("eval");
    engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_depth);
    engine.set_max_string_size(limits.max_string);
    engine.set_max_array_size(limits.max_collection);
    engine.set_max_map_size(limits.max_collection);
    engine.set_max_modules(64);
    // Rhai's own defaults are lower in debug builds; be the same everywhere.
    engine.set_max_expr_depths(64, 32);
    engine
}

/// A compiled script.
#[derive(Clone)]
pub struct Compiled(Arc<AST>);

impl Compiled {
    /// Whether the script defines `name` taking `params` arguments.
    pub fn defines(&self, name: &str, params: usize) -> bool {
        self.0
            .iter_functions()
            .any(|f| f.name == name && f.params.len() == params)
    }

    /// The parameter count of the first function called `name`.
    pub fn arity_of(&self, name: &str) -> Option<usize> {
        self.0
            .iter_functions()
            .find(|f| f.name == name)
            .map(|f| f.params.len())
    }
}

/// Compiles the scripts of one plugin folder.
pub struct Compiler {
    engine: Engine,
}

fn compile_error(shown: &str, err: &EvalAltResult) -> ScriptError {
    let (inner, source) = innermost(err);
    let (line, column) = location(inner.position());
    let message = match inner {
        EvalAltResult::ErrorParsing(kind, _) => kind.to_string(),
        other => message_of(other),
    };
    ScriptError {
        file: source.filter(|s| !s.is_empty()).unwrap_or(shown).to_owned(),
        line,
        column,
        message,
    }
}

impl Compiler {
    /// Compile one file (its literal imports resolved and embedded).
    pub fn compile(&self, path: &Path, shown: &str) -> Result<Compiled, ScriptError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScriptError {
            file: shown.to_owned(),
            line: 0,
            column: None,
            message: format!("cannot read: {e}"),
        })?;
        let mut ast = self
            .engine
            .compile_into_self_contained(&Scope::new(), &text)
            .map_err(|e| compile_error(shown, &e))?;
        ast.set_source(shown);
        Ok(Compiled(Arc::new(ast)))
    }
}

/// The Rhai runtime of a server.
pub struct RhaiRuntime {
    engine: Engine,
    limits: ScriptLimits,
}

impl RhaiRuntime {
    /// The shared engine with the host API registered.
    pub fn new(limits: &ScriptLimits) -> RhaiRuntime {
        let mut engine = engine(limits);
        engine.on_progress(|ops| {
            if ops % DEADLINE_CHECK_EVERY == 0 && super::invocation::deadline_passed() {
                Some(Dynamic::from("script time limit"))
            } else {
                None
            }
        });
        // Rhai checks a map's size when it is assigned as a whole, but not
        // when `m[key] = v` adds a key to it; look at the length of a map
        // or array each time a script reaches for the variable holding it,
        // so growth by assignment in a loop stops at the limit too.
        let max_items = limits.max_collection;
        // `on_var` is marked deprecated only as "volatile API" by Rhai.
        #[allow(deprecated)]
        engine.on_var(move |name, _, context| {
            if let Some(value) = context.scope().get(name)
                && let Some(what) = over_items(value, max_items)
            {
                return Err(EvalAltResult::ErrorDataTooLarge(
                    what.to_owned(),
                    rhai::Position::NONE,
                )
                .into());
            }
            Ok(None)
        });
        bindings::register(&mut engine);
        RhaiRuntime {
            engine,
            limits: *limits,
        }
    }

    /// A compiler for the scripts of `dir` (imports confined to it).
    pub fn compiler(&self, dir: &Path) -> Compiler {
        let mut engine = engine(&self.limits);
        engine.set_module_resolver(resolver::ConfinedResolver::new(dir));
        Compiler { engine }
    }

    /// Call `function(ctx, args...)` of a compiled file inside `inv` (which
    /// is the invocation entered on this thread), `ctx` naming `frame`.
    pub(crate) fn call(
        &self,
        inv: &Invocation,
        frame: usize,
        plugin: &str,
        file: &super::scripts::ScriptFile,
        function: &str,
        args: Vec<Value>,
    ) -> Result<Value, PluginError> {
        let super::scripts::Program::Rhai(program) = &file.program else {
            return Err(fault(
                plugin,
                FaultKind::Runtime,
                ScriptError {
                    file: file.shown.clone(),
                    line: 0,
                    column: None,
                    message: "not a Rhai script".to_owned(),
                },
            ));
        };
        let mut call_args: Vec<Dynamic> = Vec::with_capacity(args.len() + 1);
        call_args.push(Dynamic::from(CtxHandle::new(frame)));
        call_args.extend(args.iter().map(convert::to_dynamic));
        let mut scope = Scope::new();
        let result: Result<Dynamic, Box<EvalAltResult>> = self
            .engine
            .call_fn(&mut scope, &program.0, function, call_args);
        match result {
            Ok(value) => convert::to_json(&value).map_err(|why| {
                fault(
                    plugin,
                    FaultKind::Runtime,
                    ScriptError {
                        file: file.shown.clone(),
                        line: 0,
                        column: None,
                        message: format!("{function} returned a value that is not JSON: {why}"),
                    },
                )
            }),
            Err(err) => Err(classify(inv, plugin, &file.shown, &err)),
        }
    }
}

/// The innermost error of a chain of function calls, and the source file
/// (script or imported module) it happened in.
fn innermost(err: &EvalAltResult) -> (&EvalAltResult, Option<&str>) {
    let mut current = err;
    let mut source = None;
    loop {
        match current {
            EvalAltResult::ErrorInFunctionCall(_, src, inner, _)
            | EvalAltResult::ErrorInModule(src, inner, _) => {
                if !src.is_empty() {
                    source = Some(src.as_str());
                }
                current = inner;
            }
            _ => return (current, source),
        }
    }
}

fn location(pos: Position) -> (usize, Option<usize>) {
    (pos.line().unwrap_or(0), pos.position())
}

/// An error's message without Rhai's trailing position.
fn message_of(err: &EvalAltResult) -> String {
    match err {
        EvalAltResult::ErrorRuntime(value, _) => {
            if value.is_string() {
                value.clone().into_string().unwrap_or_default()
            } else {
                convert::to_json(value).map_or_else(|_| value.to_string(), |v| v.to_string())
            }
        }
        other => {
            let text = other.to_string();
            match text.rfind(" (line ") {
                Some(i) if text.ends_with(')') => text[..i].to_owned(),
                _ => text,
            }
        }
    }
}

/// Turn a failed call into the request's failure: a pending failure set by
/// the host API first (ctx.fail, ctx.require, limits, failing hooks), then
/// an uncaught refused write, then Rhai's own errors by kind.
/// Whether a map or array holds more than `max` items (top level only:
/// nested growth is bounded by the operations limit).
fn over_items(value: &Dynamic, max: usize) -> Option<&'static str> {
    if max == 0 {
        None
    } else if value.is_map() {
        value
            .read_lock::<rhai::Map>()
            .is_some_and(|m| m.len() > max)
            .then_some("Size of object map")
    } else if value.is_array() {
        value
            .read_lock::<rhai::Array>()
            .is_some_and(|a| a.len() > max)
            .then_some("Size of array")
    } else {
        None
    }
}

fn classify(inv: &Invocation, plugin: &str, file: &str, err: &EvalAltResult) -> PluginError {
    if let Some(pending) = inv.pending.borrow_mut().take() {
        return pending;
    }
    let (inner, source) = innermost(err);
    if let EvalAltResult::ErrorRuntime(value, _) = inner
        && let Ok(thrown) = convert::to_json(value)
    {
        let mut rejected = inv.rejected.borrow_mut();
        if rejected.as_ref().is_some_and(|(v, _)| *v == thrown)
            && let Some((_, e)) = rejected.take()
        {
            return e;
        }
    }
    let kind = match inner {
        EvalAltResult::ErrorTooManyOperations(_)
        | EvalAltResult::ErrorStackOverflow(_)
        | EvalAltResult::ErrorDataTooLarge(..)
        | EvalAltResult::ErrorTooManyModules(_)
        | EvalAltResult::ErrorTooManyVariables(_) => FaultKind::Limit,
        EvalAltResult::ErrorTerminated(..) => FaultKind::Timeout,
        _ => FaultKind::Runtime,
    };
    let (line, column) = location(inner.position());
    let message = match inner {
        EvalAltResult::ErrorTerminated(..) => "script time limit exceeded".to_owned(),
        EvalAltResult::ErrorTooManyOperations(_) => "operations limit exceeded".to_owned(),
        EvalAltResult::ErrorStackOverflow(_) => "call depth limit exceeded".to_owned(),
        other => message_of(other),
    };
    fault(
        plugin,
        kind,
        ScriptError {
            file: source.unwrap_or(file).to_owned(),
            line,
            column,
            message,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_text(text: &str) -> Result<Compiled, ScriptError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.rhai");
        std::fs::write(&path, text).expect("write");
        RhaiRuntime::new(&ScriptLimits::default())
            .compiler(dir.path())
            .compile(&path, "scripts/p/x.rhai")
    }

    #[test]
    fn compile_errors_carry_file_line_and_column() {
        let err = compile_text("fn handle(ctx, req) {\n    let x = ;\n}\n")
            .err()
            .expect("syntax error");
        assert_eq!((err.file.as_str(), err.line), ("scripts/p/x.rhai", 2));
        assert!(err.column.is_some());
        assert!(err.to_string().starts_with("scripts/p/x.rhai:2:"), "{err}");
    }

    #[test]
    fn eval_is_not_available() {
        let err = compile_text("fn handle(ctx, req) { eval(\"1\") }")
            .err()
            .expect("eval refused");
        assert!(err.message.to_lowercase().contains("eval"), "{err}");
    }

    #[test]
    fn finds_functions_by_name_and_arity() {
        let c = compile_text("fn handle(ctx, req) { 1 }\nfn helper(a) { a }").expect("valid");
        assert!(c.defines("handle", 2));
        assert!(!c.defines("handle", 1));
        assert!(!c.defines("missing", 2));
        assert_eq!(c.arity_of("helper"), Some(1));
    }

    #[test]
    fn imports_resolve_inside_the_folder_only() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("p");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("lib.rhai"), "fn twice(x) { x * 2 }").expect("write");
        std::fs::write(root.path().join("secret.rhai"), "fn s() { 1 }").expect("write");
        let rt = RhaiRuntime::new(&ScriptLimits::default());
        let c = rt.compiler(&dir);
        std::fs::write(
            dir.join("ok.rhai"),
            "import \"lib\" as lib;\nfn handle(ctx, req) { lib::twice(2) }",
        )
        .expect("write");
        c.compile(&dir.join("ok.rhai"), "ok.rhai")
            .map_err(|e| e.to_string())
            .expect("import inside the folder");
        for bad in ["../secret", "/etc/passwd", "sub/../../secret"] {
            std::fs::write(
                dir.join("bad.rhai"),
                format!("import \"{bad}\" as s;\nfn handle(ctx, req) {{ 1 }}"),
            )
            .expect("write");
            let err = c
                .compile(&dir.join("bad.rhai"), "bad.rhai")
                .err()
                .unwrap_or_else(|| panic!("{bad} must be refused"));
            assert!(err.message.contains("plugin's folder"), "{bad}: {err}");
        }
    }
}
