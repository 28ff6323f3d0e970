//! The plugin manifest: a validated model of `plugin-manifests/<name>.toml`.
//!
//! [`parse`] turns TOML text into a [`Manifest`] or the complete list of
//! [`ManifestError`]s, each located by file, line and column. Nothing else
//! in the server sees unvalidated manifest data: table and column names used
//! in SQL come only from here.

pub mod parse;

use std::fmt;

pub use parse::parse;

/// Names no plugin may take (they are core API paths).
pub const RESERVED_PLUGIN_NAMES: [&str; 14] = [
    "auth",
    "tenants",
    "users",
    "roles",
    "permissions",
    "plugins",
    "audit",
    "admin",
    "docs",
    "openapi",
    "health",
    "metrics",
    "static",
    "api",
];

/// Columns every entity table has; no declared field may use these names.
pub const BASE_FIELDS: [&str; 5] = ["id", "tenant_id", "created_at", "updated_at", "created_by"];

/// Script runtime of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// Rhai (the default).
    Rhai,
    /// Lua 5.4.
    Lua,
}

impl Runtime {
    /// `rhai` or `lua`.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Rhai => "rhai",
            Runtime::Lua => "lua",
        }
    }

    /// Script file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Runtime::Rhai => ".rhai",
            Runtime::Lua => ".lua",
        }
    }
}

/// Type of an entity field or a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// UTF-8 text.
    Text,
    /// 64-bit signed integer.
    Integer,
    /// 64-bit float.
    Real,
    /// true / false.
    Bool,
    /// RFC 3339 timestamp.
    Datetime,
    /// UUID string.
    Uuid,
    /// Any JSON value.
    Json,
    /// One of `values`.
    Enum,
    /// Id of a row of another entity of the same plugin and tenant.
    Ref,
}

impl FieldType {
    /// Every type, in documentation order.
    pub const ALL: [FieldType; 9] = [
        FieldType::Text,
        FieldType::Integer,
        FieldType::Real,
        FieldType::Bool,
        FieldType::Datetime,
        FieldType::Uuid,
        FieldType::Json,
        FieldType::Enum,
        FieldType::Ref,
    ];

    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Real => "real",
            FieldType::Bool => "bool",
            FieldType::Datetime => "datetime",
            FieldType::Uuid => "uuid",
            FieldType::Json => "json",
            FieldType::Enum => "enum",
            FieldType::Ref => "ref",
        }
    }

    /// Parse the manifest spelling.
    pub fn from_name(name: &str) -> Option<FieldType> {
        FieldType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One declared field (or setting) with its constraints.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    /// `[a-z][a-z0-9_]{0,62}`.
    pub name: String,
    /// Its type.
    pub ty: FieldType,
    /// Must be present on create (unless it has a default).
    pub required: bool,
    /// Unique per tenant.
    pub unique: bool,
    /// Value used when absent on create (already validated against the type).
    pub default: Option<serde_json::Value>,
    /// Lower bound (integer, real).
    pub min: Option<f64>,
    /// Upper bound (integer, real).
    pub max: Option<f64>,
    /// Longest text, in characters.
    pub max_length: Option<u64>,
    /// Regular expression the whole text must match.
    pub pattern: Option<regex::Regex>,
    /// Allowed values (enum).
    pub values: Vec<String>,
    /// Referenced entity (ref).
    pub entity: Option<String>,
}

/// Permissions guarding the generated CRUD operations; `None` = not exposed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntityPermissions {
    /// `GET /api/{plugin}/{entity}`.
    pub list: Option<String>,
    /// `GET /api/{plugin}/{entity}/{id}`.
    pub read: Option<String>,
    /// `POST /api/{plugin}/{entity}`.
    pub create: Option<String>,
    /// `PATCH /api/{plugin}/{entity}/{id}`.
    pub update: Option<String>,
    /// `DELETE /api/{plugin}/{entity}/{id}`.
    pub delete: Option<String>,
}

/// One entity: a table of the plugin.
#[derive(Debug, Clone)]
pub struct EntitySchema {
    /// `[a-z][a-z0-9_]{0,62}`.
    pub name: String,
    /// SQL table: `<plugin>_<entity>` with `-` as `_`.
    pub table: String,
    /// Operation permissions.
    pub permissions: EntityPermissions,
    /// Declared indexes (field names; base fields allowed), each to be led by
    /// `tenant_id`.
    pub indexes: Vec<Vec<String>>,
    /// Declared fields, in manifest order.
    pub fields: Vec<FieldSpec>,
    /// Its table shape and statements, built on first use
    /// (`plugins::records::shape`).
    pub shape: std::sync::OnceLock<crate::storage::TableShape>,
}

impl EntitySchema {
    /// A declared field by name.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// HTTP method of a custom route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMethod {
    /// GET (runs in a read-only transaction).
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

impl RouteMethod {
    /// Upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteMethod::Get => "GET",
            RouteMethod::Post => "POST",
            RouteMethod::Put => "PUT",
            RouteMethod::Patch => "PATCH",
            RouteMethod::Delete => "DELETE",
        }
    }
}

/// One segment of a route path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Matches itself.
    Literal(String),
    /// `{name}`: matches any one segment.
    Param(String),
}

/// A custom route served by a script.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// Method.
    pub method: RouteMethod,
    /// Path below `/api/{plugin}`, starting with `/`.
    pub path: String,
    /// Parsed path.
    pub segments: Vec<Segment>,
    /// Required permission (plugin's own or core).
    pub permission: String,
    /// Script file in `scripts/<plugin>/`.
    pub script: String,
    /// Function in that script (default `handle`).
    pub function: String,
}

/// A validated plugin manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// `[a-z][a-z0-9_-]{1,39}`, equal to the file stem.
    pub name: String,
    /// Semver.
    pub version: String,
    /// Script runtime.
    pub runtime: Runtime,
    /// Free text.
    pub description: String,
    /// Installed for every new tenant.
    pub default_install: bool,
    /// Plugins whose entities the scripts may use.
    pub requires: Vec<String>,
    /// Declared permissions (name, description), manifest order.
    pub permissions: Vec<(String, String)>,
    /// Role → permissions seeded at install, manifest order.
    pub grants: Vec<(String, Vec<String>)>,
    /// Per-tenant settings.
    pub settings: Vec<FieldSpec>,
    /// Entities.
    pub entities: Vec<EntitySchema>,
    /// Custom routes.
    pub routes: Vec<RouteSpec>,
}

/// How a request path below `/api/{plugin}` meets the custom routes.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch {
    /// Route `index` answers; its `{name}` segments bound to their values.
    Found {
        /// Index into [`Manifest::routes`].
        index: usize,
        /// Path parameters by name.
        params: Vec<(String, String)>,
    },
    /// The path is a route's, but not with this method: these are.
    OtherMethods(Vec<&'static str>),
    /// No route has this path.
    None,
}

fn bind(route: &RouteSpec, segments: &[&str]) -> Option<Vec<(String, String)>> {
    if route.segments.len() != segments.len() {
        return None;
    }
    let mut params = Vec::new();
    for (spec, given) in route.segments.iter().zip(segments) {
        match spec {
            Segment::Literal(l) if l == given => {}
            Segment::Literal(_) => return None,
            Segment::Param(name) => params.push((name.clone(), (*given).to_owned())),
        }
    }
    Some(params)
}

impl Manifest {
    /// The custom route for `method` and the path `segments` (already split
    /// and percent-decoded, below `/api/{plugin}`); literal segments win
    /// over parameters.
    pub fn match_route(&self, method: &str, segments: &[&str]) -> RouteMatch {
        // (route index, number of parameters, bound parameters)
        type Candidate = (usize, usize, Vec<(String, String)>);
        let mut best: Option<Candidate> = None;
        let mut others = Vec::new();
        for (index, route) in self.routes.iter().enumerate() {
            let Some(params) = bind(route, segments) else {
                continue;
            };
            if route.method.as_str() != method {
                others.push(route.method.as_str());
                continue;
            }
            if best.as_ref().is_none_or(|(_, n, _)| params.len() < *n) {
                best = Some((index, params.len(), params));
            }
        }
        match best {
            Some((index, _, params)) => RouteMatch::Found { index, params },
            None if !others.is_empty() => RouteMatch::OtherMethods(others),
            None => RouteMatch::None,
        }
    }

    /// An entity by name.
    pub fn entity(&self, name: &str) -> Option<&EntitySchema> {
        self.entities.iter().find(|e| e.name == name)
    }

    /// The prefix every permission of this plugin must start with.
    pub fn permission_prefix(&self) -> String {
        permission_prefix(&self.name)
    }
}

/// `inventory` → `INVENTORY_`, `my-crm` → `MY_CRM_`.
pub fn permission_prefix(plugin: &str) -> String {
    format!("{}_", plugin.to_ascii_uppercase().replace('-', "_"))
}

/// Whether `name` is a valid plugin name (`[a-z][a-z0-9_-]{1,39}`).
pub fn is_plugin_name(name: &str) -> bool {
    let b = name.as_bytes();
    (2..=40).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// Whether `name` is a valid field, setting or entity name (`[a-z][a-z0-9_]{0,62}`).
pub fn is_field_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// One problem in a manifest, located where TOML allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The manifest file as given (e.g. `plugin-manifests/inventory.toml`).
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// Dotted key, e.g. `entities.item.fields.qty`.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests;
