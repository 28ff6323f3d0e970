//! `[[routes]]`: methods, paths, permissions, scripts, collisions.

use std::collections::BTreeSet;
use std::ops::Range;

use toml_edit::{Item, TableLike};

use super::super::{EntitySchema, RouteMethod, RouteSpec, Runtime, Segment};
use super::{Cx, ROUTE_KEYS, join, kind};
use crate::auth::rbac::CORE_PERMISSIONS;

impl Cx<'_> {
    pub(super) fn routes(
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
