//! JSON ↔ Lua values, as SCRIPTING.md fixes it: JSON integers become Lua
//! integers and other numbers floats; `null` becomes `nil` (so a `null`
//! field of an object is absent from its table); arrays become tables with
//! keys 1..n. Back: a table with keys 1..n is an array, an empty table is
//! `[]`, any other table an object (number keys written as text); integers
//! stay integers; functions, coroutines, userdata, NaN and infinities are
//! not JSON and are refused by name.
//!
//! A value leaving a script is also held to the string length and table
//! size limits: Lua builds strings with `..` and tables with `t[k] = v`
//! without asking anyone (only its memory limit bounds them), so this is
//! where the limits Rhai enforces as values grow are enforced for Lua.

use mlua::{Lua, Table, Value as LuaValue};
use serde_json::{Map, Number, Value};

/// Tables nested deeper than this are refused (a table can contain itself).
const MAX_DEPTH: usize = 64;

/// A JSON value as a Lua value.
pub fn to_lua(lua: &Lua, value: &Value) -> mlua::Result<LuaValue> {
    Ok(match value {
        Value::Null => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => LuaValue::Integer(i),
            None => LuaValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(_) | Value::Array(_) | Value::Object(_) => {
            return super::raw::to_lua(lua, value);
        }
    })
}

/// The limits a value leaving a script is held to.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Longest string, in bytes.
    pub max_string: usize,
    /// Most entries of one table.
    pub max_items: usize,
}

impl Bounds {
    /// No limits (for values shown in messages).
    pub const NONE: Bounds = Bounds {
        max_string: usize::MAX,
        max_items: usize::MAX,
    };
}

/// Why a Lua value did not become JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonError {
    /// It is not JSON data (a function, NaN, a cycle, ...).
    Invalid(String),
    /// A string or table past its limit: this ends the request.
    Limit(&'static str),
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonError::Invalid(why) => f.write_str(why),
            JsonError::Limit(what) => f.write_str(what),
        }
    }
}

impl From<String> for JsonError {
    fn from(why: String) -> JsonError {
        JsonError::Invalid(why)
    }
}

/// The limit message of a string too long.
pub const STRING_LIMIT: &str = "string length limit exceeded";
/// The limit message of a table too big.
pub const TABLE_LIMIT: &str = "table size limit exceeded";

/// A Lua value as JSON, or why it is not JSON data (or past its limits).
pub fn to_json(value: &LuaValue, bounds: Bounds) -> Result<Value, JsonError> {
    let mut items = 0;
    to_json_at(value, 0, bounds, &mut items)
}

/// `items`: the entries of the tables converted so far (the item limit
/// counts nested items, as Rhai's does).
fn to_json_at(
    value: &LuaValue,
    depth: usize,
    bounds: Bounds,
    items: &mut usize,
) -> Result<Value, JsonError> {
    Ok(match value {
        LuaValue::Nil => Value::Null,
        LuaValue::Boolean(b) => Value::Bool(*b),
        LuaValue::Integer(i) => Value::from(*i),
        LuaValue::Number(f) => Value::Number(
            Number::from_f64(*f).ok_or_else(|| format!("the number {f} is not JSON"))?,
        ),
        LuaValue::String(s) => {
            if s.as_bytes().len() > bounds.max_string {
                return Err(JsonError::Limit(STRING_LIMIT));
            }
            Value::String(
                s.to_str()
                    .map_err(|_| "a string that is not UTF-8 is not JSON".to_owned())?
                    .to_owned(),
            )
        }
        LuaValue::Table(t) => {
            if depth >= MAX_DEPTH {
                return Err(format!("tables nested deeper than {MAX_DEPTH} levels").into());
            }
            table_to_json(t, depth + 1, bounds, items)?
        }
        other => return Err(format!("a {} is not JSON data", other.type_name()).into()),
    })
}

fn table_to_json(
    t: &Table,
    depth: usize,
    bounds: Bounds,
    total: &mut usize,
) -> Result<Value, JsonError> {
    let len = t.raw_len();
    let mut count = 0usize;
    let mut sequence = true;
    for pair in t.clone().pairs::<LuaValue, LuaValue>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        count += 1;
        *total += 1;
        if *total > bounds.max_items {
            return Err(JsonError::Limit(TABLE_LIMIT));
        }
        match k {
            LuaValue::Integer(i) if i >= 1 && usize::try_from(i).is_ok_and(|i| i <= len) => {}
            _ => sequence = false,
        }
    }
    if sequence && count == len {
        let mut items = Vec::with_capacity(len);
        for i in 1..=len {
            let v: LuaValue = t.raw_get(i).map_err(|e| e.to_string())?;
            items.push(to_json_at(&v, depth, bounds, total)?);
        }
        return Ok(Value::Array(items));
    }
    let mut fields = Map::new();
    for pair in t.clone().pairs::<LuaValue, LuaValue>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
        let key = match &k {
            LuaValue::String(s) => s
                .to_str()
                .map_err(|_| "a key that is not UTF-8 is not JSON".to_owned())?
                .to_owned(),
            LuaValue::Integer(i) => i.to_string(),
            LuaValue::Number(f) => f.to_string(),
            other => return Err(format!("a {} key is not JSON", other.type_name()).into()),
        };
        fields.insert(key, to_json_at(&v, depth, bounds, total)?);
    }
    Ok(Value::Object(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round(lua: &Lua, v: Value) -> Value {
        to_json(&to_lua(lua, &v).expect("to lua"), Bounds::NONE).expect("to json")
    }

    #[test]
    fn values_cross_as_documented() {
        let lua = Lua::new();
        assert_eq!(round(&lua, json!(3)), json!(3));
        assert!(round(&lua, json!(3)).is_i64(), "integers stay integers");
        assert_eq!(round(&lua, json!(2.5)), json!(2.5));
        assert_eq!(round(&lua, json!([1, "a", true])), json!([1, "a", true]));
        assert_eq!(round(&lua, json!({"a": 1, "b": null})), json!({"a": 1}));
        assert_eq!(round(&lua, json!({})), json!([]), "an empty table is []");
        assert_eq!(
            round(&lua, json!({"n": {"m": [1]}})),
            json!({"n": {"m": [1]}})
        );

        let v: LuaValue = lua.load("return {1, 2, [4] = 4}").eval().expect("eval");
        assert_eq!(
            to_json(&v, Bounds::NONE).expect("json"),
            json!({"1": 1, "2": 2, "4": 4})
        );
        let v: LuaValue = lua.load("return 2^53").eval().expect("eval");
        assert!(
            to_json(&v, Bounds::NONE).expect("json").is_f64(),
            "floats stay floats"
        );
        let v: LuaValue = lua.load("return 0/0").eval().expect("eval");
        assert!(to_json(&v, Bounds::NONE).is_err(), "NaN is not JSON");
        let v: LuaValue = lua.load("return {f = print}").eval().expect("eval");
        let err = to_json(&v, Bounds::NONE).expect_err("function");
        assert!(err.to_string().contains("function"), "{err}");
        let v: LuaValue = lua
            .load("local t = {}; t.me = t; return t")
            .eval()
            .expect("eval");
        let err = to_json(&v, Bounds::NONE).expect_err("cycle");
        assert!(err.to_string().contains("nested"), "{err}");
    }

    #[test]
    fn values_leaving_a_script_are_held_to_the_limits() {
        let lua = Lua::new();
        let bounds = Bounds {
            max_string: 4,
            max_items: 3,
        };
        let v: LuaValue = lua.load("return {'abcd', {1}}").eval().expect("eval");
        assert_eq!(to_json(&v, bounds), Ok(json!(["abcd", [1]])));
        let v: LuaValue = lua.load("return {x = 'abcde'}").eval().expect("eval");
        assert_eq!(to_json(&v, bounds), Err(JsonError::Limit(STRING_LIMIT)));
        let v: LuaValue = lua
            .load("return {a = 1, b = 2, c = 3, d = 4}")
            .eval()
            .expect("eval");
        assert_eq!(to_json(&v, bounds), Err(JsonError::Limit(TABLE_LIMIT)));
        let v: LuaValue = lua.load("return {{1, 2, 3, 4}}").eval().expect("eval");
        assert_eq!(to_json(&v, bounds), Err(JsonError::Limit(TABLE_LIMIT)));
        let v: LuaValue = lua.load("return {{1}, {2}}").eval().expect("eval");
        assert_eq!(
            to_json(&v, bounds),
            Err(JsonError::Limit(TABLE_LIMIT)),
            "nested items count: 2 + 1 + 1 > 3"
        );
    }
}
