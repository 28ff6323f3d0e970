//! Turning client input into validated SQL values for one entity: record
//! bodies for create and update (every bad field reported), and list query
//! strings (filters with operators, sort, paging). Nothing reaches SQL that
//! did not pass through here.

use serde_json::{Map, Value};

use super::manifest::parse::check_value;
use super::manifest::{BASE_FIELDS, EntitySchema, FieldSpec, FieldType};
use crate::storage::{ColumnKind, Filter, FilterOp, ListSpec, SqlValue, TableShape};
use crate::validation::FieldError;

/// The table shape of an entity (built once per loaded manifest).
pub fn shape(entity: &EntitySchema) -> &TableShape {
    entity.shape.get_or_init(|| {
        TableShape::new(
            entity.table.clone(),
            entity
                .fields
                .iter()
                .map(|f| (f.name.clone(), column_kind(f.ty)))
                .collect(),
        )
    })
}

fn column_kind(ty: FieldType) -> ColumnKind {
    match ty {
        FieldType::Integer => ColumnKind::Integer,
        FieldType::Real => ColumnKind::Real,
        FieldType::Bool => ColumnKind::Bool,
        FieldType::Json => ColumnKind::Json,
        _ => ColumnKind::Text,
    }
}

/// A checked JSON value as the SQL value stored for it.
pub fn to_sql(field: &FieldSpec, v: &Value) -> SqlValue {
    match (field.ty, v) {
        (_, Value::Null) => SqlValue::Null,
        (FieldType::Json, v) => SqlValue::Text(v.to_string()),
        (FieldType::Bool, Value::Bool(b)) => SqlValue::Integer(i64::from(*b)),
        (FieldType::Integer, v) => v.as_i64().map_or(SqlValue::Null, SqlValue::Integer),
        (FieldType::Real, v) => v.as_f64().map_or(SqlValue::Null, SqlValue::Real),
        (_, Value::String(s)) => SqlValue::Text(s.clone()),
        (_, other) => SqlValue::Text(other.to_string()),
    }
}

fn body_key_error(entity: &EntitySchema, key: &str) -> FieldError {
    if key == "tenant_id" {
        FieldError::new(
            key,
            "read_only",
            "tenant_id is never accepted from a client",
        )
    } else if BASE_FIELDS.contains(&key) {
        FieldError::new(key, "read_only", format!("{key} is set by the server"))
    } else {
        let known: Vec<&str> = entity.fields.iter().map(|f| f.name.as_str()).collect();
        FieldError::new(
            key,
            "unknown",
            format!(
                "unknown field \"{key}\" (entity {} has: {})",
                entity.name,
                known.join(", ")
            ),
        )
    }
}

fn code_of(message: &str) -> &'static str {
    if message.starts_with("must be >=") {
        "min"
    } else if message.starts_with("must be <=") {
        "max"
    } else if message.starts_with("must be at most") {
        "max_length"
    } else if message.starts_with("must match") {
        "pattern"
    } else if message.contains("is not one of") {
        "enum"
    } else {
        "type"
    }
}

/// Checked values `(field, SQL value, JSON value)` of the fields that are
/// valid, and one error per field that is not.
pub type Checked = (Vec<(String, SqlValue, Value)>, Vec<FieldError>);

/// Validate a create body: every declared field checked (defaults applied),
/// unknown and server-set keys refused. Returns the values to insert and
/// the record's field values as JSON (for hooks and refs).
pub fn validate_create(entity: &EntitySchema, body: &Map<String, Value>) -> Checked {
    let mut errors: Vec<FieldError> = body
        .keys()
        .filter(|k| entity.field(k).is_none())
        .map(|k| body_key_error(entity, k))
        .collect();
    let mut out = Vec::new();
    for field in &entity.fields {
        let given = body.get(&field.name).filter(|v| !v.is_null());
        let value = given.cloned().or_else(|| field.default.clone());
        match value {
            None if field.required => errors.push(FieldError::new(
                field.name.clone(),
                "required",
                "is required",
            )),
            None => out.push((field.name.clone(), SqlValue::Null, Value::Null)),
            Some(v) => match check_value(field, &v) {
                Ok(v) => out.push((field.name.clone(), to_sql(field, &v), v)),
                Err(why) => errors.push(FieldError::new(field.name.clone(), code_of(&why), why)),
            },
        }
    }
    (out, errors)
}

/// Validate a partial update: only the given keys; `null` clears a field
/// unless it is required.
pub fn validate_update(entity: &EntitySchema, body: &Map<String, Value>) -> Checked {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (key, value) in body {
        let Some(field) = entity.field(key) else {
            errors.push(body_key_error(entity, key));
            continue;
        };
        if value.is_null() {
            if field.required {
                errors.push(FieldError::new(
                    key.clone(),
                    "required",
                    "is required and cannot be null",
                ));
            } else {
                out.push((key.clone(), SqlValue::Null, Value::Null));
            }
            continue;
        }
        match check_value(field, value) {
            Ok(v) => out.push((key.clone(), to_sql(field, &v), v)),
            Err(why) => errors.push(FieldError::new(key.clone(), code_of(&why), why)),
        }
    }
    (out, errors)
}

/// Largest page.
pub const MAX_LIMIT: u32 = 500;
/// Default page.
pub const DEFAULT_LIMIT: u32 = 50;

const OPS: [&str; 9] = ["eq", "ne", "gt", "gte", "lt", "lte", "like", "in", "null"];

/// The type of a filterable/sortable column: base columns are text.
fn column_type(entity: &EntitySchema, name: &str) -> Option<FieldType> {
    if ["id", "created_at", "updated_at", "created_by"].contains(&name) {
        return Some(if name == "id" || name == "created_by" {
            FieldType::Uuid
        } else {
            FieldType::Datetime
        });
    }
    entity.field(name).map(|f| f.ty)
}

fn parse_operand(ty: FieldType, raw: &str) -> Result<SqlValue, String> {
    match ty {
        FieldType::Integer => raw
            .parse::<i64>()
            .map(SqlValue::Integer)
            .map_err(|_| format!("\"{raw}\" is not an integer")),
        FieldType::Real => raw
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(SqlValue::Real)
            .ok_or_else(|| format!("\"{raw}\" is not a number")),
        FieldType::Bool => match raw {
            "true" | "1" => Ok(SqlValue::Integer(1)),
            "false" | "0" => Ok(SqlValue::Integer(0)),
            _ => Err(format!("\"{raw}\" is not true or false")),
        },
        FieldType::Datetime => chrono::DateTime::parse_from_rfc3339(raw)
            .map(|t| {
                SqlValue::Text(
                    t.with_timezone(&chrono::Utc)
                        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                        .to_string(),
                )
            })
            .map_err(|_| format!("\"{raw}\" is not an RFC 3339 date-time")),
        FieldType::Uuid => uuid::Uuid::parse_str(raw)
            .map(|u| SqlValue::Text(u.hyphenated().to_string()))
            .map_err(|_| format!("\"{raw}\" is not a UUID")),
        _ => Ok(SqlValue::Text(raw.to_owned())),
    }
}

/// Parse a list query string (`field=value`, `field[op]=value`, `sort`,
/// `limit`, `offset`, `total`), reporting every bad parameter by name.
pub fn parse_list_query(
    entity: &EntitySchema,
    query: Option<&str>,
) -> Result<ListSpec, Vec<FieldError>> {
    let mut spec = ListSpec {
        filters: Vec::new(),
        sort: vec![("created_at".to_owned(), true), ("id".to_owned(), true)],
        limit: DEFAULT_LIMIT,
        offset: 0,
        count: true,
    };
    let mut errors = Vec::new();
    let fields_list = || fields_list(entity);
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let (key, value) = (key.into_owned(), value.into_owned());
        match key.as_str() {
            "limit" => match value
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
            {
                Some(n) => spec.limit = n,
                None => errors.push(FieldError::new(
                    "limit",
                    "range",
                    format!("\"{value}\" is not an integer between 1 and {MAX_LIMIT}"),
                )),
            },
            "offset" => match value.parse::<u32>() {
                Ok(n) => spec.offset = n,
                Err(_) => errors.push(FieldError::new(
                    "offset",
                    "range",
                    format!("\"{value}\" is not a non-negative integer"),
                )),
            },
            "total" => match value.as_str() {
                "true" => spec.count = true,
                "false" => spec.count = false,
                _ => errors.push(FieldError::new(
                    "total",
                    "type",
                    format!("\"{value}\" is not true or false"),
                )),
            },
            "sort" => match parse_sort(entity, &value) {
                Ok(sort) => spec.sort = sort,
                Err(mut e) => errors.append(&mut e),
            },
            _ => {
                let (name, op) = match key.split_once('[') {
                    Some((n, rest)) => match rest.strip_suffix(']') {
                        Some(op) => (n.to_owned(), op.to_owned()),
                        None => {
                            errors.push(FieldError::new(
                                key.clone(),
                                "format",
                                format!("\"{key}\" is not field or field[op]"),
                            ));
                            continue;
                        }
                    },
                    None => (key.clone(), "eq".to_owned()),
                };
                if name == "tenant_id" {
                    errors.push(FieldError::new(
                        "tenant_id",
                        "forbidden",
                        "tenant_id cannot be used in queries",
                    ));
                    continue;
                }
                let Some(ty) = column_type(entity, &name) else {
                    errors.push(FieldError::new(
                        name.clone(),
                        "unknown",
                        format!("unknown field \"{name}\" (filterable: {})", fields_list()),
                    ));
                    continue;
                };
                if !OPS.contains(&op.as_str()) {
                    errors.push(FieldError::new(
                        key.clone(),
                        "unknown_op",
                        format!(
                            "unknown operator \"{op}\" (expected one of {})",
                            OPS.join(", ")
                        ),
                    ));
                    continue;
                }
                match filter(ty, &name, &op, &value) {
                    Ok(f) => spec.filters.push(f),
                    Err(why) => errors.push(FieldError::new(key.clone(), "type", why)),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(errors)
    }
}

fn fields_list(entity: &EntitySchema) -> String {
    let mut names: Vec<&str> = vec!["id", "created_at", "updated_at", "created_by"];
    names.extend(entity.fields.iter().map(|f| f.name.as_str()));
    names.join(", ")
}

/// Parse a sort list such as `name,-quantity` (`-` descending).
pub fn parse_sort(
    entity: &EntitySchema,
    value: &str,
) -> Result<Vec<(String, bool)>, Vec<FieldError>> {
    let mut sort = Vec::new();
    let mut errors = Vec::new();
    for part in value.split(',').map(str::trim) {
        let (name, desc) = part.strip_prefix('-').map_or((part, false), |n| (n, true));
        if name == "tenant_id" {
            errors.push(FieldError::new(
                "tenant_id",
                "forbidden",
                "tenant_id cannot be used in queries",
            ));
        } else if column_type(entity, name).is_some_and(|t| t != FieldType::Json) {
            sort.push((name.to_owned(), desc));
        } else {
            errors.push(FieldError::new(
                "sort",
                "unknown",
                format!(
                    "cannot sort by \"{name}\" (sortable: {})",
                    fields_list(entity)
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(sort)
    } else {
        Err(errors)
    }
}

/// A JSON scalar as the text a query operand is parsed from.
fn operand_text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("{other} is not a text, number or bool operand")),
    }
}

/// Parse a script's `where` map: `field: value` (equality; `()`/null means
/// IS NULL) or `field: {op: operand, ...}` with the list query's operators
/// (`in` takes an array, `null` a bool). Every bad entry is reported.
pub fn parse_where(
    entity: &EntitySchema,
    conditions: &Map<String, Value>,
) -> Result<Vec<Filter>, Vec<FieldError>> {
    let mut filters = Vec::new();
    let mut errors = Vec::new();
    for (name, condition) in conditions {
        if name == "tenant_id" {
            errors.push(FieldError::new(
                "tenant_id",
                "forbidden",
                "tenant_id cannot be used in queries",
            ));
            continue;
        }
        let Some(ty) = column_type(entity, name) else {
            errors.push(FieldError::new(
                name.clone(),
                "unknown",
                format!(
                    "unknown field \"{name}\" (filterable: {})",
                    fields_list(entity)
                ),
            ));
            continue;
        };
        let ops: Vec<(&str, &Value)> = match condition {
            Value::Null => {
                filters.push(Filter {
                    column: name.clone(),
                    op: FilterOp::Null(true),
                    values: vec![],
                });
                continue;
            }
            Value::Object(ops) => ops.iter().map(|(k, v)| (k.as_str(), v)).collect(),
            Value::Array(_) => {
                errors.push(FieldError::new(
                    name.clone(),
                    "type",
                    "a list of values needs the in operator: {in: [...]}",
                ));
                continue;
            }
            scalar => vec![("eq", scalar)],
        };
        for (op, operand) in ops {
            if !OPS.contains(&op) {
                errors.push(FieldError::new(
                    format!("{name}.{op}"),
                    "unknown_op",
                    format!(
                        "unknown operator \"{op}\" (expected one of {})",
                        OPS.join(", ")
                    ),
                ));
                continue;
            }
            let parsed = match (op, operand) {
                ("in", Value::Array(items)) if ty != FieldType::Json => items
                    .iter()
                    .map(|v| operand_text(v).and_then(|raw| parse_operand(ty, &raw)))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|values| Filter {
                        column: name.clone(),
                        op: FilterOp::In,
                        values,
                    }),
                ("in", Value::Array(_)) => {
                    Err(format!("json field {name} can only be filtered with null"))
                }
                ("in", other) => Err(format!("in takes an array of values, not {other}")),
                ("null", Value::Bool(b)) => filter(ty, name, "null", &b.to_string()),
                ("null", other) => Err(format!("null takes true or false, not {other}")),
                (op, operand) => operand_text(operand).and_then(|raw| filter(ty, name, op, &raw)),
            };
            match parsed {
                Ok(f) => filters.push(f),
                Err(why) => errors.push(FieldError::new(name.clone(), "type", why)),
            }
        }
    }
    if errors.is_empty() {
        Ok(filters)
    } else {
        Err(errors)
    }
}

fn filter(ty: FieldType, name: &str, op: &str, value: &str) -> Result<Filter, String> {
    let textual = matches!(
        ty,
        FieldType::Text | FieldType::Enum | FieldType::Uuid | FieldType::Ref | FieldType::Datetime
    );
    let (op, values) = match op {
        "null" => match value {
            "true" => (FilterOp::Null(true), vec![]),
            "false" => (FilterOp::Null(false), vec![]),
            _ => return Err(format!("\"{value}\" is not true or false")),
        },
        _ if ty == FieldType::Json => {
            return Err(format!(
                "json field {name} can only be filtered with [null]"
            ));
        }
        "like" => {
            if !textual {
                return Err(format!("like applies to text fields; {name} is {ty}"));
            }
            let escaped = value
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            (FilterOp::Like, vec![SqlValue::Text(format!("%{escaped}%"))])
        }
        "in" => {
            let values = value
                .split(',')
                .map(|v| parse_operand(ty, v.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            (FilterOp::In, values)
        }
        "gt" | "gte" | "lt" | "lte" if ty == FieldType::Bool => {
            return Err(format!("{op} does not apply to bool field {name}"));
        }
        other => {
            let op = match other {
                "eq" => FilterOp::Eq,
                "ne" => FilterOp::Ne,
                "gt" => FilterOp::Gt,
                "gte" => FilterOp::Gte,
                "lt" => FilterOp::Lt,
                _ => FilterOp::Lte,
            };
            (op, vec![parse_operand(ty, value)?])
        }
    };
    Ok(Filter {
        column: name.to_owned(),
        op,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::manifest;

    fn item() -> EntitySchema {
        let m = manifest::parse(
            "i.toml",
            Some("inventory"),
            include_str!("../../plugin-manifests/inventory.toml"),
        )
        .expect("valid");
        m.entity("item").expect("item").clone()
    }

    #[test]
    fn create_applies_defaults_and_reports_every_bad_field() {
        let e = item();
        let body: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"name": "Bolt", "sku": "B-1"})).expect("map");
        let (values, errors) = validate_create(&e, &body);
        assert!(errors.is_empty(), "{errors:?}");
        let qty = values
            .iter()
            .find(|(n, _, _)| n == "quantity")
            .expect("quantity");
        assert_eq!(qty.1, SqlValue::Integer(0));
        let bad: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "sku": "lower", "quantity": -1, "tenant_id": "x", "colour": "red", "status": "gone"
        }))
        .expect("map");
        let (_, errors) = validate_create(&e, &bad);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in ["name", "sku", "quantity", "tenant_id", "colour", "status"] {
            assert!(fields.contains(&f), "{f} in {errors:?}");
        }
        let min = errors
            .iter()
            .find(|e| e.field == "quantity")
            .expect("quantity");
        assert_eq!(
            (min.code.as_str(), min.message.as_str()),
            ("min", "must be >= 0")
        );
    }

    #[test]
    fn script_where_maps_parse_like_list_queries() {
        let e = item();
        let conditions: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "quantity": {"lt": 5, "gte": 1},
            "status": {"in": ["active", "discontinued"]},
            "name": "Bolt",
            "price": null,
            "supplier": {"null": false}
        }))
        .expect("map");
        let filters = parse_where(&e, &conditions).expect("valid");
        assert_eq!(filters.len(), 6);
        let in_filter = filters.iter().find(|f| f.op == FilterOp::In).expect("in");
        assert_eq!(in_filter.values.len(), 2);
        assert!(filters.iter().any(|f| f.op == FilterOp::Null(true)));
        let bad: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "colour": "red",
            "tenant_id": "x",
            "quantity": {"approx": 3},
            "status": ["active"],
            "price": {"in": "cheap"},
            "tags": {"eq": 1}
        }))
        .expect("map");
        let errors = parse_where(&e, &bad).expect_err("all bad");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "colour",
            "tenant_id",
            "quantity.approx",
            "status",
            "price",
            "tags",
        ] {
            assert!(fields.contains(&f), "{f} in {errors:?}");
        }
    }

    #[test]
    fn list_query_parses_operators_and_refuses_unknowns() {
        let e = item();
        let spec = parse_list_query(&e, Some("quantity[lt]=5&name[like]=bo_lt&status[in]=active,discontinued&price[null]=true&sort=name,-quantity&limit=20&offset=40&total=false")).expect("valid");
        assert_eq!(spec.filters.len(), 4);
        assert_eq!(
            spec.filters[1].values,
            vec![SqlValue::Text("%bo\\_lt%".into())]
        );
        assert_eq!(
            spec.sort,
            vec![("name".into(), false), ("quantity".into(), true)]
        );
        assert_eq!((spec.limit, spec.offset, spec.count), (20, 40, false));
        for (q, field) in [
            ("colour=red", "colour"),
            ("quantity[approx]=3", "quantity[approx]"),
            ("quantity=abc", "quantity"),
            ("sort=colour", "sort"),
            ("tenant_id=x", "tenant_id"),
            ("sort=-tenant_id", "tenant_id"),
            ("limit=501", "limit"),
            ("limit=0", "limit"),
            ("offset=-1", "offset"),
            ("total=maybe", "total"),
            ("tags=x", "tags"),
        ] {
            let errors = parse_list_query(&e, Some(q)).expect_err(q);
            assert!(errors.iter().any(|e| e.field == field), "{q}: {errors:?}");
        }
    }
}
