//! `import "name" as m;` for plugin scripts: only files of the plugin's own
//! folder, named by a plain relative path (`"lib"`, `"lib/money"`; the
//! `.rhai` extension is optional). Absolute paths, `..`, and anything that
//! resolves (through links) outside the folder are refused.

use std::path::{Component, Path, PathBuf};

use rhai::{Engine, EvalAltResult, Module, Position, Scope, Shared};

type SharedModule = Shared<Module>;

/// The resolver of one plugin folder (used when compiling).
pub struct ConfinedResolver {
    root: PathBuf,
    /// The folder as shown in messages (`scripts/inventory`).
    shown_root: String,
}

impl ConfinedResolver {
    /// Confine imports to `root`.
    pub fn new(root: &Path) -> ConfinedResolver {
        ConfinedResolver {
            root: root.canonicalize().unwrap_or_else(|_| root.to_owned()),
            shown_root: crate::plugins::loader::display_path(root),
        }
    }

    fn refuse(&self, path: &str, why: &str, pos: Position) -> Box<EvalAltResult> {
        Box::new(EvalAltResult::ErrorRuntime(
            format!("import \"{path}\": {why}; imports are confined to the plugin's folder").into(),
            pos,
        ))
    }

    /// The real file, and how it is shown in messages.
    fn locate(&self, path: &str, pos: Position) -> Result<(PathBuf, String), Box<EvalAltResult>> {
        let relative = Path::new(path);
        if path.is_empty()
            || path.contains('\\')
            || relative
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(self.refuse(path, "only plain relative paths may be imported", pos));
        }
        let mut relative = relative.to_owned();
        if relative.extension().is_none() {
            relative.set_extension("rhai");
        }
        let file = self.root.join(&relative);
        let shown = format!("{}/{}", self.shown_root, relative.display());
        let real = file
            .canonicalize()
            .map_err(|_| self.refuse(path, "no such script", pos))?;
        if !real.starts_with(&self.root) || !real.is_file() {
            return Err(self.refuse(path, "it resolves outside the folder", pos));
        }
        Ok((real, shown))
    }

    fn compile(
        &self,
        engine: &Engine,
        path: &str,
        pos: Position,
    ) -> Result<rhai::AST, Box<EvalAltResult>> {
        let (file, shown) = self.locate(path, pos)?;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| self.refuse(path, &format!("cannot read: {e}"), pos))?;
        let mut ast = engine.compile(&text).map_err(|e| {
            Box::new(EvalAltResult::ErrorInModule(
                shown.clone(),
                Box::new(EvalAltResult::ErrorParsing(*e.0, e.1)),
                pos,
            ))
        })?;
        ast.set_source(shown);
        Ok(ast)
    }
}

impl rhai::ModuleResolver for ConfinedResolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let ast = self.compile(engine, path, pos)?;
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(path.to_owned(), e, pos)))?;
        Ok(module.into())
    }

    fn resolve_ast(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Option<Result<rhai::AST, Box<EvalAltResult>>> {
        Some(self.compile(engine, path, pos))
    }
}
