//! The Rhai engine plinth runs plugin scripts on: the standard packages,
//! no `eval`, no module imports yet (they will be confined to the plugin's
//! folder), and the sandbox limits. Compiling reports errors with file,
//! line and column.

use std::path::Path;

use rhai::packages::{Package, StandardPackage};
use rhai::{AST, Engine};

use super::{ScriptError, ScriptLimits};

/// A sandboxed engine.
pub fn engine(limits: &ScriptLimits) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(StandardPackage::new().as_shared_module());
    engine.disable_symbol("eval");
    engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_depth);
    engine.set_max_string_size(limits.max_string);
    engine.set_max_array_size(limits.max_collection);
    engine.set_max_map_size(limits.max_collection);
    engine
}

/// Compile one script file.
pub fn compile(engine: &Engine, path: &Path, shown: &str) -> Result<AST, ScriptError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScriptError {
        file: shown.to_owned(),
        line: 0,
        column: None,
        message: format!("cannot read: {e}"),
    })?;
    engine.compile(&text).map_err(|e| ScriptError {
        file: shown.to_owned(),
        line: e.position().line().unwrap_or(0),
        column: e.position().position(),
        message: e.err_type().to_string(),
    })
}

/// Whether a compiled script defines `name` taking `params` arguments.
pub fn defines(ast: &AST, name: &str, params: usize) -> bool {
    ast.iter_functions()
        .any(|f| f.name == name && f.params.len() == params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_text(text: &str) -> Result<AST, ScriptError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.rhai");
        std::fs::write(&path, text).expect("write");
        compile(&engine(&ScriptLimits::default()), &path, "scripts/p/x.rhai")
    }

    #[test]
    fn compile_errors_carry_file_line_and_column() {
        let err =
            compile_text("fn handle(ctx, req) {\n    let x = ;\n}\n").expect_err("syntax error");
        assert_eq!((err.file.as_str(), err.line), ("scripts/p/x.rhai", 2));
        assert!(err.column.is_some());
        assert!(err.to_string().starts_with("scripts/p/x.rhai:2:"), "{err}");
    }

    #[test]
    fn eval_is_not_available() {
        let err = compile_text("fn handle(ctx, req) { eval(\"1\") }").expect_err("eval refused");
        assert!(err.message.to_lowercase().contains("eval"), "{err}");
    }

    #[test]
    fn finds_functions_by_name_and_arity() {
        let ast = compile_text("fn handle(ctx, req) { 1 }\nfn helper(a) { a }").expect("valid");
        assert!(defines(&ast, "handle", 2));
        assert!(!defines(&ast, "handle", 1));
        assert!(!defines(&ast, "missing", 2));
    }
}
