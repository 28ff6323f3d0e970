//! Manifest TOML → [`Manifest`], checking every rule of MANIFEST.md and
//! collecting every error (not only the first) with its line and column.

use std::collections::BTreeSet;
use std::ops::Range;

use serde_json::Value as Json;
use toml_edit::{ImDocument, Item, TableLike};

use super::{
    BASE_FIELDS, EntityPermissions, EntitySchema, FieldSpec, FieldType, Manifest, ManifestError,
    RESERVED_PLUGIN_NAMES, RouteMethod, RouteSpec, Runtime, Segment, is_field_name, is_plugin_name,
    permission_prefix,
};
use crate::auth::rbac::CORE_PERMISSIONS;

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

    /// One field (or setting) spec; `allowed` lists its permitted keys.
    /// `at` is the span of the field's key: errors about the field as a
    /// whole (its type) point there, like `file:14:1: entities.item.fields.qty`.
    fn field(
        &mut self,
        spec: &dyn TableLike,
        name: &str,
        path: &str,
        allowed: &[&str],
        at: Option<Range<usize>>,
    ) -> Option<FieldSpec> {
        self.unknown_keys(spec, path, allowed);
        let types: Vec<&str> = FieldType::ALL.iter().map(|t| t.as_str()).collect();
        let ty = match self.string(spec, "type", path) {
            None => {
                if spec.get("type").is_none() {
                    self.error(
                        at.clone(),
                        path,
                        format!("missing type (expected one of {})", one_of(&types)),
                    );
                }
                return None;
            }
            Some(t) => match FieldType::from_name(&t) {
                Some(ty) if ty != FieldType::Ref || allowed.contains(&"entity") => ty,
                _ => {
                    self.error(
                        at.clone(),
                        path,
                        format!("unknown type \"{t}\" (expected one of {})", one_of(&types)),
                    );
                    return None;
                }
            },
        };
        let errors_before = self.errors.len();
        let mut field = FieldSpec {
            name: name.to_owned(),
            ty,
            required: self.boolean(spec, "required", path).unwrap_or(false),
            unique: self.boolean(spec, "unique", path).unwrap_or(false),
            default: None,
            min: None,
            max: None,
            max_length: None,
            pattern: None,
            values: Vec::new(),
            entity: None,
        };
        let numeric = matches!(ty, FieldType::Integer | FieldType::Real);
        for bound in ["min", "max"] {
            let Some(item) = spec.get(bound) else {
                continue;
            };
            let key = join(path, bound);
            if !numeric {
                self.error(
                    item.span(),
                    &key,
                    format!("{bound} applies to integer and real fields only"),
                );
                continue;
            }
            let value = match (ty, item.as_integer(), item.as_float()) {
                (_, Some(i), _) => Some(i as f64),
                (FieldType::Real, None, Some(f)) => Some(f),
                _ => None,
            };
            match value {
                Some(v) if bound == "min" => field.min = Some(v),
                Some(v) => field.max = Some(v),
                None => self.error(
                    item.span(),
                    &key,
                    format!(
                        "expected {}, found {}",
                        if ty == FieldType::Integer {
                            "an integer"
                        } else {
                            "a number"
                        },
                        kind(item)
                    ),
                ),
            }
        }
        if let (Some(min), Some(max)) = (field.min, field.max)
            && min > max
        {
            self.error(
                spec.get("max").and_then(Item::span),
                &join(path, "max"),
                format!("max {max} is below min {min}"),
            );
        }
        if let Some(item) = spec.get("max_length") {
            let key = join(path, "max_length");
            if ty != FieldType::Text {
                self.error(
                    item.span(),
                    &key,
                    "max_length applies to text fields only".into(),
                );
            } else {
                match item.as_integer().filter(|n| *n > 0) {
                    Some(n) => field.max_length = Some(n.unsigned_abs()),
                    None => self.error(item.span(), &key, "expected a positive integer".into()),
                }
            }
        }
        if let Some(item) = spec.get("pattern") {
            let key = join(path, "pattern");
            if ty != FieldType::Text {
                self.error(
                    item.span(),
                    &key,
                    "pattern applies to text fields only".into(),
                );
            } else if let Some(p) = item.as_str() {
                match regex::Regex::new(p) {
                    Ok(re) => field.pattern = Some(re),
                    Err(e) => {
                        let why = e.to_string().lines().last().unwrap_or("").trim().to_owned();
                        self.error(
                            item.span(),
                            &key,
                            format!("invalid regular expression: {why}"),
                        );
                    }
                }
            } else {
                self.error(
                    item.span(),
                    &key,
                    format!("expected a string, found {}", kind(item)),
                );
            }
        }
        if let Some(item) = spec.get("values") {
            let key = join(path, "values");
            if ty != FieldType::Enum {
                self.error(
                    item.span(),
                    &key,
                    "values applies to enum fields only".into(),
                );
            } else if let Some(values) = self.strings(spec, "values", path) {
                let mut seen = BTreeSet::new();
                for (v, span) in values {
                    if !seen.insert(v.clone()) {
                        self.error(span, &key, format!("\"{v}\" is listed twice"));
                    }
                    field.values.push(v);
                }
            }
        }
        if ty == FieldType::Enum
            && field.values.is_empty()
            && spec.get("values").is_none_or(|i| i.as_array().is_some())
        {
            self.error(
                spec.get("values")
                    .and_then(Item::span)
                    .or_else(|| spec.get("type").and_then(Item::span)),
                &join(path, "values"),
                "an enum needs a non-empty list of values".into(),
            );
        }
        if let Some(item) = spec.get("entity") {
            let key = join(path, "entity");
            if ty != FieldType::Ref {
                self.error(
                    item.span(),
                    &key,
                    "entity applies to ref fields only".into(),
                );
            } else {
                field.entity = self.string(spec, "entity", path);
            }
        } else if ty == FieldType::Ref {
            self.error(
                spec.get("type").and_then(Item::span),
                &join(path, "entity"),
                "a ref field needs entity = \"<entity of this plugin>\"".into(),
            );
        }
        if field.unique && ty == FieldType::Json {
            self.error(
                spec.get("unique").and_then(Item::span),
                &join(path, "unique"),
                "unique is not supported for json fields".into(),
            );
        }
        if let Some(item) = spec.get("default") {
            let key = join(path, "default");
            if ty == FieldType::Ref {
                self.error(
                    item.span(),
                    &key,
                    "a ref field cannot have a default".into(),
                );
            } else if self.errors.len() == errors_before {
                match toml_to_json(item) {
                    None => self.error(
                        item.span(),
                        &key,
                        format!("unsupported value {}", kind(item)),
                    ),
                    Some(json) => match check_value(&field, &json) {
                        Ok(v) => field.default = Some(v),
                        Err(why) => {
                            self.error(item.span(), &key, format!("invalid default: {why}"))
                        }
                    },
                }
            }
        }
        (self.errors.len() == errors_before).then_some(field)
    }

    fn routes(
        &mut self,
        root: &dyn TableLike,
        runtime: Runtime,
        declared: &BTreeSet<String>,
        entities: &[EntitySchema],
    ) -> Vec<RouteSpec> {
        let Some(item) = root.get("routes") else {
            return Vec::new();
        };
        let tables: Vec<(&dyn TableLike, Option<Range<usize>>)> = match item {
            Item::ArrayOfTables(a) => a.iter().map(|t| (t as &dyn TableLike, t.span())).collect(),
            Item::Value(toml_edit::Value::Array(a)) => {
                let mut v = Vec::new();
                for (i, value) in a.iter().enumerate() {
                    match value.as_inline_table() {
                        Some(t) => v.push((t as &dyn TableLike, value.span())),
                        None => self.error(
                            value.span(),
                            &format!("routes[{i}]"),
                            format!("expected a table, found {}", value.type_name()),
                        ),
                    }
                }
                v
            }
            other => {
                self.error(
                    other.span(),
                    "routes",
                    format!("expected [[routes]] tables, found {}", kind(other)),
                );
                return Vec::new();
            }
        };
        let mut out: Vec<RouteSpec> = Vec::new();
        for (i, (table, span)) in tables.into_iter().enumerate() {
            let path = format!("routes[{i}]");
            self.unknown_keys(table, &path, &ROUTE_KEYS);
            let before = self.errors.len();
            let require = |cx: &mut Self, key: &str, what: &str| -> Option<String> {
                let v = cx.string(table, key, &path);
                if v.is_none() && table.get(key).is_none() {
                    cx.error(
                        span.clone(),
                        &join(&path, key),
                        format!("missing (expected {what})"),
                    );
                }
                v
            };
            let method = require(self, "method", "GET, POST, PUT, PATCH or DELETE");
            let route_path = require(self, "path", "a path such as \"/item/{id}/restock\"");
            let permission = require(self, "permission", "a permission name");
            let script = require(self, "script", "a script file name");
            let function = self
                .string(table, "function", &path)
                .unwrap_or_else(|| "handle".to_owned());

            let method = method.and_then(|m| {
                let parsed = match m.to_ascii_uppercase().as_str() {
                    "GET" => Some(RouteMethod::Get),
                    "POST" => Some(RouteMethod::Post),
                    "PUT" => Some(RouteMethod::Put),
                    "PATCH" => Some(RouteMethod::Patch),
                    "DELETE" => Some(RouteMethod::Delete),
                    _ => None,
                };
                if parsed.is_none() {
                    self.error(
                        table.get("method").and_then(Item::span),
                        &join(&path, "method"),
                        format!(
                            "unknown method \"{m}\" (expected GET, POST, PUT, PATCH or DELETE)"
                        ),
                    );
                }
                parsed
            });
            let segments = route_path
                .as_deref()
                .and_then(|p| match parse_route_path(p) {
                    Ok(s) => Some(s),
                    Err(why) => {
                        self.error(
                            table.get("path").and_then(Item::span),
                            &join(&path, "path"),
                            why,
                        );
                        None
                    }
                });
            if let Some(p) = &permission {
                let core = CORE_PERMISSIONS.iter().any(|(n, _)| n == p);
                if !core && !declared.contains(p) {
                    self.error(table.get("permission").and_then(Item::span), &join(&path, "permission"), format!("permission \"{p}\" is neither declared in [permissions] nor a core permission"));
                }
            }
            if let Some(s) = &script {
                let ok_chars = !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                    && !s.starts_with('.');
                if !ok_chars || !s.ends_with(runtime.extension()) {
                    self.error(table.get("script").and_then(Item::span), &join(&path, "script"), format!("\"{s}\" is not a script file of this plugin (expected a file name ending in {} in scripts/<plugin>/, without folders)", runtime.extension()));
                }
            }
            let ident = function.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && function
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident {
                self.error(
                    table.get("function").and_then(Item::span),
                    &join(&path, "function"),
                    format!(
                        "\"{function}\" is not a function name (expected [A-Za-z_][A-Za-z0-9_]*)"
                    ),
                );
            }
            if let (Some(method), Some(segments)) = (method, &segments) {
                if let Some(entity) = collides_with_entity(method, segments, entities) {
                    self.error(
                        table.get("path").and_then(Item::span),
                        &join(&path, "path"),
                        format!(
                            "{} {} collides with the generated routes of entity {entity}",
                            method.as_str(),
                            route_path.as_deref().unwrap_or("")
                        ),
                    );
                } else if let Some(other) = out
                    .iter()
                    .position(|r| r.method == method && overlaps(&r.segments, segments))
                {
                    self.error(
                        table.get("path").and_then(Item::span),
                        &join(&path, "path"),
                        format!(
                            "{} {} collides with routes[{other}] ({})",
                            method.as_str(),
                            route_path.as_deref().unwrap_or(""),
                            out[other].path
                        ),
                    );
                }
            }
            if self.errors.len() == before
                && let (Some(method), Some(path), Some(segments), Some(permission), Some(script)) =
                    (method, route_path, segments, permission, script)
            {
                out.push(RouteSpec {
                    method,
                    path,
                    segments,
                    permission,
                    script,
                    function,
                });
            }
        }
        out
    }
}

/// Parse `/item/{id}/restock` into segments.
fn parse_route_path(path: &str) -> Result<Vec<Segment>, String> {
    let expected =
        "(expected a path such as \"/item/{id}/restock\": segments of [A-Za-z0-9._~-] or {name})";
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("\"{path}\" must start with / {expected}"));
    };
    if rest.is_empty() || rest.ends_with('/') {
        return Err(format!("\"{path}\" has an empty segment {expected}"));
    }
    let mut segments = Vec::new();
    let mut params = BTreeSet::new();
    for seg in rest.split('/') {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident {
                return Err(format!(
                    "\"{path}\": \"{{{name}}}\" is not a valid parameter {expected}"
                ));
            }
            if !params.insert(name.to_owned()) {
                return Err(format!("\"{path}\": parameter {{{name}}} appears twice"));
            }
            segments.push(Segment::Param(name.to_owned()));
        } else if !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'))
        {
            segments.push(Segment::Literal(seg.to_owned()));
        } else {
            return Err(format!("\"{path}\": invalid segment \"{seg}\" {expected}"));
        }
    }
    Ok(segments)
}

/// Two paths that some request path could match both.
fn overlaps(a: &[Segment], b: &[Segment]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Segment::Literal(l), Segment::Literal(r)) => l == r,
            _ => true,
        })
}

/// The entity whose generated routes `method segments` would shadow.
fn collides_with_entity(
    method: RouteMethod,
    segments: &[Segment],
    entities: &[EntitySchema],
) -> Option<String> {
    let first_matches = |e: &EntitySchema| match &segments[0] {
        Segment::Literal(l) => *l == e.name,
        Segment::Param(_) => true,
    };
    let generated = matches!(
        (segments.len(), method),
        (1, RouteMethod::Get | RouteMethod::Post)
            | (
                2,
                RouteMethod::Get | RouteMethod::Patch | RouteMethod::Delete
            )
    );
    if !generated {
        return None;
    }
    entities
        .iter()
        .find(|e| first_matches(e))
        .map(|e| e.name.clone())
}

/// A TOML value as JSON (datetimes become their RFC 3339 text).
fn toml_to_json(item: &Item) -> Option<Json> {
    fn value(v: &toml_edit::Value) -> Option<Json> {
        Some(match v {
            toml_edit::Value::String(s) => Json::String(s.value().clone()),
            toml_edit::Value::Integer(i) => Json::from(*i.value()),
            toml_edit::Value::Float(f) => {
                serde_json::Number::from_f64(*f.value()).map(Json::Number)?
            }
            toml_edit::Value::Boolean(b) => Json::Bool(*b.value()),
            toml_edit::Value::Datetime(d) => Json::String(d.value().to_string()),
            toml_edit::Value::Array(a) => Json::Array(a.iter().map(value).collect::<Option<_>>()?),
            toml_edit::Value::InlineTable(t) => {
                let mut map = serde_json::Map::new();
                for (k, v) in t.iter() {
                    map.insert(k.to_owned(), value(v)?);
                }
                Json::Object(map)
            }
        })
    }
    match item {
        Item::Value(v) => value(v),
        _ => None,
    }
}

/// Check a JSON value against a field's type and constraints; returns the
/// value normalised for storage (e.g. integers given for a real field).
pub fn check_value(field: &FieldSpec, v: &Json) -> Result<Json, String> {
    let out = match field.ty {
        FieldType::Text => {
            let s = v.as_str().ok_or("expected a string")?;
            if let Some(max) = field.max_length {
                let n = s.chars().count() as u64;
                if n > max {
                    return Err(format!("must be at most {max} characters (got {n})"));
                }
            }
            if let Some(re) = &field.pattern
                && !re.is_match(s)
            {
                return Err(format!("must match {}", re.as_str()));
            }
            v.clone()
        }
        FieldType::Integer => {
            let i = v.as_i64().ok_or("expected an integer")?;
            check_bounds(field, i as f64)?;
            v.clone()
        }
        FieldType::Real => {
            let f = v
                .as_f64()
                .filter(|f| f.is_finite())
                .ok_or("expected a number")?;
            check_bounds(field, f)?;
            Json::from(f)
        }
        FieldType::Bool => Json::Bool(v.as_bool().ok_or("expected true or false")?),
        FieldType::Datetime => {
            let s = v.as_str().ok_or("expected an RFC 3339 date-time string")?;
            let t = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|_| format!("\"{s}\" is not an RFC 3339 date-time"))?;
            // One fixed format (UTC, milliseconds) so text order is time order.
            Json::String(
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
            )
        }
        FieldType::Uuid => {
            let s = v.as_str().ok_or("expected a UUID string")?;
            let u = uuid::Uuid::parse_str(s).map_err(|_| format!("\"{s}\" is not a UUID"))?;
            Json::String(u.hyphenated().to_string())
        }
        FieldType::Json => v.clone(),
        FieldType::Enum => {
            let s = v.as_str().ok_or("expected a string")?;
            if !field.values.iter().any(|x| x == s) {
                return Err(format!("\"{s}\" is not one of {}", field.values.join(", ")));
            }
            v.clone()
        }
        FieldType::Ref => {
            let s = v.as_str().ok_or("expected the id of a row (string)")?;
            Json::String(s.to_owned())
        }
    };
    Ok(out)
}

fn check_bounds(field: &FieldSpec, n: f64) -> Result<(), String> {
    if let Some(min) = field.min
        && n < min
    {
        return Err(format!("must be >= {min}"));
    }
    if let Some(max) = field.max
        && n > max
    {
        return Err(format!("must be <= {max}"));
    }
    Ok(())
}
