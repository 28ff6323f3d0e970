//! Manifest TOML → [`Manifest`], checking every rule of MANIFEST.md and
//! collecting every error (not only the first) with its line and column.

use std::collections::BTreeSet;
use std::ops::Range;

use toml_edit::{ImDocument, Item, TableLike};

mod fields;
mod routes;

pub use fields::check_value;

use super::{
    BASE_FIELDS, EntityPermissions, EntitySchema, FieldSpec, Manifest, ManifestError,
    RESERVED_PLUGIN_NAMES, Runtime, is_field_name, is_plugin_name, permission_prefix,
};

const TOP_KEYS: [&str; 11] = [
    "name",
    "version",
    "runtime",
    "description",
    "default_install",
    "requires",
    "permissions",
    "grants",
    "settings",
    "entities",
    "routes",
];
const ENTITY_KEYS: [&str; 3] = ["permissions", "indexes", "fields"];
const OPERATIONS: [&str; 5] = ["list", "read", "create", "update", "delete"];
const FIELD_KEYS: [&str; 10] = [
    "type",
    "required",
    "unique",
    "default",
    "min",
    "max",
    "max_length",
    "pattern",
    "values",
    "entity",
];
const SETTING_KEYS: [&str; 7] = [
    "type",
    "default",
    "min",
    "max",
    "max_length",
    "pattern",
    "values",
];
const ROUTE_KEYS: [&str; 5] = ["method", "path", "permission", "script", "function"];

/// Parse and validate a manifest. `file` is how errors name the file;
/// `stem` is the file name without `.toml` (the plugin name must equal it).
pub fn parse(file: &str, stem: Option<&str>, text: &str) -> Result<Manifest, Vec<ManifestError>> {
    let mut cx = Cx {
        file,
        text,
        errors: Vec::new(),
    };
    let doc = match ImDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
            cx.error(e.span(), "", format!("invalid TOML: {message}"));
            return Err(cx.errors);
        }
    };
    let manifest = cx.manifest(doc.as_table(), stem);
    if cx.errors.is_empty() {
        manifest.ok_or(cx.errors)
    } else {
        Err(cx.errors)
    }
}

struct Cx<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<ManifestError>,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn one_of(list: &[&str]) -> String {
    list.join(", ")
}

/// Span of a key in a table, else of its value.
fn key_span(table: &dyn TableLike, key: &str) -> Option<Range<usize>> {
    table
        .key(key)
        .and_then(toml_edit::Key::span)
        .or_else(|| table.get(key).and_then(Item::span))
}

fn kind(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => v.type_name(),
        Item::Table(_) => "table",
        Item::ArrayOfTables(_) => "array of tables",
    }
}

impl Cx<'_> {
    fn error(&mut self, span: Option<Range<usize>>, key: &str, message: String) {
        let (line, column) = span.map_or((0, 0), |s| {
            let before = &self.text[..s.start.min(self.text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
                .chars()
                .count()
                + 1;
            (line, column)
        });
        self.errors.push(ManifestError {
            file: self.file.to_owned(),
            line,
            column,
            key: key.to_owned(),
            message,
        });
    }

    /// Report keys of `table` outside `allowed`.
    fn unknown_keys(&mut self, table: &dyn TableLike, path: &str, allowed: &[&str]) {
        for (key, _) in table.iter() {
            if !allowed.contains(&key) {
                self.error(
                    key_span(table, key),
                    &join(path, key),
                    format!("unknown key (expected one of {})", one_of(allowed)),
                );
            }
        }
    }

    fn string(&mut self, table: &dyn TableLike, key: &str, path: &str) -> Option<String> {
        let item = table.get(key)?;
        match item.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.error(
                    item.span(),
                    &join(path, key),
                    format!("expected a string, found {}", kind(item)),
                );
                None
            }
        }
    }

    fn boolean(&mut self, table: &dyn TableLike, key: &str, path: &str) -> Option<bool> {
        let item = table.get(key)?;
        match item.as_bool() {
            Some(b) => Some(b),
            None => {
                self.error(
                    item.span(),
                    &join(path, key),
                    format!("expected true or false, found {}", kind(item)),
                );
                None
            }
        }
    }

    /// A table or inline table at `key`.
    fn table<'t>(
        &mut self,
        parent: &'t dyn TableLike,
        key: &str,
        path: &str,
    ) -> Option<&'t dyn TableLike> {
        let item = parent.get(key)?;
        let table = item.as_table_like();
        if table.is_none() {
            self.error(
                item.span(),
                &join(path, key),
                format!("expected a table, found {}", kind(item)),
            );
        }
        table
    }

    /// An array of strings at `key`, each with its span.
    fn strings(
        &mut self,
        table: &dyn TableLike,
        key: &str,
        path: &str,
    ) -> Option<Vec<(String, Option<Range<usize>>)>> {
        let item = table.get(key)?;
        let Some(array) = item.as_array() else {
            self.error(
                item.span(),
                &join(path, key),
                format!("expected an array of strings, found {}", kind(item)),
            );
            return None;
        };
        let mut out = Vec::new();
        for (i, value) in array.iter().enumerate() {
            match value.as_str() {
                Some(s) => out.push((s.to_owned(), value.span())),
                None => self.error(
                    value.span(),
                    &format!("{}[{i}]", join(path, key)),
                    format!("expected a string, found {}", value.type_name()),
                ),
            }
        }
        Some(out)
    }

    fn manifest(&mut self, root: &dyn TableLike, stem: Option<&str>) -> Option<Manifest> {
        self.unknown_keys(root, "", &TOP_KEYS);

        let name = self.string(root, "name", "");
        if name.is_none() && root.get("name").is_none() {
            self.error(
                Some(0..0),
                "name",
                "missing (expected the plugin name)".into(),
            );
        }
        let name = name.filter(|n| {
            let span = root.get("name").and_then(Item::span);
            if !is_plugin_name(n) {
                self.error(
                    span,
                    "name",
                    format!(
                        "\"{n}\" is not a valid plugin name (expected [a-z][a-z0-9_-]{{1,39}})"
                    ),
                );
                return false;
            }
            if RESERVED_PLUGIN_NAMES.contains(&n.as_str()) {
                self.error(
                    span,
                    "name",
                    format!(
                        "\"{n}\" is reserved (reserved names: {})",
                        one_of(&RESERVED_PLUGIN_NAMES)
                    ),
                );
                return false;
            }
            if let Some(stem) = stem
                && stem != n
            {
                self.error(
                    span,
                    "name",
                    format!("\"{n}\" does not match the file name (expected \"{stem}\")"),
                );
                return false;
            }
            true
        });

        let version = match self.string(root, "version", "") {
            Some(v) => {
                if semver::Version::parse(&v).is_err() {
                    self.error(
                        root.get("version").and_then(Item::span),
                        "version",
                        format!("\"{v}\" is not a semantic version (expected e.g. 1.2.0)"),
                    );
                }
                v
            }
            None => {
                if root.get("version").is_none() {
                    self.error(
                        Some(0..0),
                        "version",
                        "missing (expected a semantic version such as 1.0.0)".into(),
                    );
                }
                String::new()
            }
        };

        let runtime = match self.string(root, "runtime", "").as_deref() {
            None | Some("rhai") => Runtime::Rhai,
            Some("lua") => Runtime::Lua,
            Some(other) => {
                self.error(
                    root.get("runtime").and_then(Item::span),
                    "runtime",
                    format!("unknown runtime \"{other}\" (expected rhai or lua)"),
                );
                Runtime::Rhai
            }
        };
        let description = self.string(root, "description", "").unwrap_or_default();
        let default_install = self.boolean(root, "default_install", "").unwrap_or(false);

        let mut requires = Vec::new();
        for (i, (r, span)) in self
            .strings(root, "requires", "")
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let key = format!("requires[{i}]");
            if !is_plugin_name(&r) {
                self.error(span, &key, format!("\"{r}\" is not a valid plugin name"));
            } else if name.as_deref() == Some(r.as_str()) {
                self.error(span, &key, "a plugin cannot require itself".into());
            } else if requires.contains(&r) {
                self.error(span, &key, format!("\"{r}\" is listed twice"));
            } else {
                requires.push(r);
            }
        }

        let prefix = permission_prefix(name.as_deref().unwrap_or("plugin"));
        let permissions = self.permissions(root, &prefix, name.is_some());
        let declared: BTreeSet<String> = permissions.iter().map(|(n, _)| n.clone()).collect();
        let grants = self.grants(root, &declared);
        let settings = self.settings(root);
        let entities = self.entities(root, name.as_deref().unwrap_or(""), &declared);
        let routes = self.routes(root, runtime, &declared, &entities);

        Some(Manifest {
            name: name?,
            version,
            runtime,
            description,
            default_install,
            requires,
            permissions,
            grants,
            settings,
            entities,
            routes,
        })
    }

    fn permissions(
        &mut self,
        root: &dyn TableLike,
        prefix: &str,
        check_prefix: bool,
    ) -> Vec<(String, String)> {
        let Some(table) = self.table(root, "permissions", "") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, item) in table.iter() {
            let path = join("permissions", key);
            let span = key_span(table, key);
            let well_formed = key.len() > prefix.len()
                && key.starts_with(|c: char| c.is_ascii_uppercase())
                && key
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !well_formed || (check_prefix && !key.starts_with(prefix)) {
                self.error(
                    span,
                    &path,
                    format!("permission names must start with the plugin prefix (expected {prefix}NAME in [A-Z0-9_])"),
                );
                continue;
            }
            match item.as_str() {
                Some(d) => out.push((key.to_owned(), d.to_owned())),
                None => self.error(
                    item.span(),
                    &path,
                    format!("expected a description string, found {}", kind(item)),
                ),
            }
        }
        out
    }

    fn grants(
        &mut self,
        root: &dyn TableLike,
        declared: &BTreeSet<String>,
    ) -> Vec<(String, Vec<String>)> {
        let Some(table) = self.table(root, "grants", "") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (role, _) in table.iter() {
            let path = join("grants", role);
            if crate::validation::check_role_name(role).is_err() {
                self.error(
                    key_span(table, role),
                    &path,
                    format!(
                        "\"{role}\" is not a valid role name (expected [A-Z][A-Z0-9_]{{1,63}})"
                    ),
                );
                continue;
            }
            let mut perms = Vec::new();
            for (i, (p, span)) in self
                .strings(table, role, "grants")
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                if declared.contains(&p) {
                    if !perms.contains(&p) {
                        perms.push(p);
                    }
                } else {
                    self.error(
                        span,
                        &format!("{path}[{i}]"),
                        format!("permission \"{p}\" is not declared in [permissions]"),
                    );
                }
            }
            out.push((role.to_owned(), perms));
        }
        out
    }

    fn settings(&mut self, root: &dyn TableLike) -> Vec<FieldSpec> {
        let Some(table) = self.table(root, "settings", "") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, item) in table.iter() {
            let path = join("settings", key);
            if !is_field_name(key) {
                self.error(
                    key_span(table, key),
                    &path,
                    format!(
                        "\"{key}\" is not a valid setting name (expected [a-z][a-z0-9_]{{0,62}})"
                    ),
                );
                continue;
            }
            let Some(spec) = item.as_table_like() else {
                self.error(
                    item.span(),
                    &path,
                    format!(
                        "expected a table such as {{ type = \"integer\", default = 5 }}, found {}",
                        kind(item)
                    ),
                );
                continue;
            };
            if let Some(field) = self.field(spec, key, &path, &SETTING_KEYS, key_span(table, key)) {
                out.push(field);
            }
        }
        out
    }

    fn entities(
        &mut self,
        root: &dyn TableLike,
        plugin: &str,
        declared: &BTreeSet<String>,
    ) -> Vec<EntitySchema> {
        let Some(table) = self.table(root, "entities", "") else {
            return Vec::new();
        };
        let mut out: Vec<EntitySchema> = Vec::new();
        let mut ref_checks = Vec::new();
        for (name, item) in table.iter() {
            let path = join("entities", name);
            if !is_field_name(name) {
                self.error(
                    key_span(table, name),
                    &path,
                    format!(
                        "\"{name}\" is not a valid entity name (expected [a-z][a-z0-9_]{{0,62}})"
                    ),
                );
                continue;
            }
            let Some(entity) = item.as_table_like() else {
                self.error(
                    item.span(),
                    &path,
                    format!("expected a table, found {}", kind(item)),
                );
                continue;
            };
            self.unknown_keys(entity, &path, &ENTITY_KEYS);

            let mut fields: Vec<FieldSpec> = Vec::new();
            if let Some(ftable) = self.table(entity, "fields", &path) {
                let fpath = join(&path, "fields");
                for (fname, fitem) in ftable.iter() {
                    let key = join(&fpath, fname);
                    let span = key_span(ftable, fname);
                    if !is_field_name(fname) {
                        self.error(span, &key, format!("\"{fname}\" is not a valid field name (expected [a-z][a-z0-9_]{{0,62}})"));
                        continue;
                    }
                    if BASE_FIELDS.contains(&fname) {
                        self.error(
                            span,
                            &key,
                            format!(
                                "\"{fname}\" is reserved (every entity has {})",
                                one_of(&BASE_FIELDS)
                            ),
                        );
                        continue;
                    }
                    let Some(spec) = fitem.as_table_like() else {
                        self.error(
                            fitem.span(),
                            &key,
                            format!(
                                "expected a table such as {{ type = \"text\" }}, found {}",
                                kind(fitem)
                            ),
                        );
                        continue;
                    };
                    if let Some(field) = self.field(spec, fname, &key, &FIELD_KEYS, span.clone()) {
                        if let Some(target) = &field.entity {
                            ref_checks.push((
                                target.clone(),
                                spec.get("entity").and_then(Item::span),
                                join(&key, "entity"),
                            ));
                        }
                        fields.push(field);
                    }
                }
            }

            let mut permissions = EntityPermissions::default();
            if let Some(ptable) = self.table(entity, "permissions", &path) {
                let ppath = join(&path, "permissions");
                self.unknown_keys(ptable, &ppath, &OPERATIONS);
                for op in OPERATIONS {
                    let Some(p) = self.string(ptable, op, &ppath) else {
                        continue;
                    };
                    if !declared.contains(&p) {
                        self.error(
                            ptable.get(op).and_then(Item::span),
                            &join(&ppath, op),
                            format!("permission \"{p}\" is not declared in [permissions]"),
                        );
                        continue;
                    }
                    let slot = match op {
                        "list" => &mut permissions.list,
                        "read" => &mut permissions.read,
                        "create" => &mut permissions.create,
                        "update" => &mut permissions.update,
                        _ => &mut permissions.delete,
                    };
                    *slot = Some(p);
                }
            }

            let mut indexes = Vec::new();
            if let Some(item) = entity.get("indexes") {
                let ipath = join(&path, "indexes");
                match item.as_array() {
                    None => self.error(
                        item.span(),
                        &ipath,
                        format!(
                            "expected an array of arrays of field names, found {}",
                            kind(item)
                        ),
                    ),
                    Some(array) => {
                        for (i, index) in array.iter().enumerate() {
                            let key = format!("{ipath}[{i}]");
                            let Some(cols) = index.as_array().filter(|a| !a.is_empty()) else {
                                self.error(
                                    index.span(),
                                    &key,
                                    "expected a non-empty array of field names, e.g. [\"sku\"]"
                                        .into(),
                                );
                                continue;
                            };
                            let mut names = Vec::new();
                            for col in cols.iter() {
                                match col.as_str() {
                                    Some("tenant_id") => self.error(
                                        col.span(),
                                        &key,
                                        "tenant_id leads every index already; leave it out".into(),
                                    ),
                                    Some(c)
                                        if fields.iter().any(|f| f.name == c)
                                            || BASE_FIELDS.contains(&c) =>
                                    {
                                        if names.iter().any(|n| n == c) {
                                            self.error(
                                                col.span(),
                                                &key,
                                                format!("field \"{c}\" appears twice"),
                                            );
                                        } else {
                                            names.push(c.to_owned());
                                        }
                                    }
                                    Some(c) => {
                                        let known: Vec<&str> =
                                            fields.iter().map(|f| f.name.as_str()).collect();
                                        self.error(
                                            col.span(),
                                            &key,
                                            format!(
                                                "unknown field \"{c}\" (entity {name} has: {})",
                                                one_of(&known)
                                            ),
                                        );
                                    }
                                    None => self.error(
                                        col.span(),
                                        &key,
                                        format!("expected a field name, found {}", col.type_name()),
                                    ),
                                }
                            }
                            if names.len() == cols.len() {
                                indexes.push(names);
                            }
                        }
                    }
                }
            }

            out.push(EntitySchema {
                name: name.to_owned(),
                table: format!("{}_{name}", plugin.replace('-', "_")),
                permissions,
                indexes,
                fields,
                shape: std::sync::OnceLock::new(),
            });
        }
        for (target, span, key) in ref_checks {
            if !out.iter().any(|e| e.name == target) {
                let known: Vec<&str> = out.iter().map(|e| e.name.as_str()).collect();
                self.error(
                    span,
                    &key,
                    format!(
                        "unknown entity \"{target}\" (this plugin has: {})",
                        one_of(&known)
                    ),
                );
            }
        }
        out
    }
}
