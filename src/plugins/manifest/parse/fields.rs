//! Field and setting specs: types, constraints, defaults, and the value
//! check shared with record validation.

use std::collections::BTreeSet;
use std::ops::Range;

use serde_json::Value as Json;
use toml_edit::{Item, TableLike};

use super::super::{FieldSpec, FieldType};
use super::{Cx, join, kind, one_of};

impl Cx<'_> {
    /// One field (or setting) spec; `allowed` lists its permitted keys.
    /// `at` is the span of the field's key: errors about the field as a
    /// whole (its type) point there, like `file:14:1: entities.item.fields.qty`.
    pub(super) fn field(
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
