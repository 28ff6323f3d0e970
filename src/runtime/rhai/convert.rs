//! JSON ↔ Rhai values: integers stay `i64`, other numbers are `f64`, null
//! is `()`, objects are maps, arrays are arrays. Values a script makes that
//! JSON cannot hold (functions, the `ctx` handle, NaN) are refused by name.

use rhai::{Array, Dynamic, Map as RhaiMap};
use serde_json::{Map, Number, Value};

/// A JSON value as a Rhai value.
pub fn to_dynamic(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(items) => Dynamic::from_array(items.iter().map(to_dynamic).collect()),
        Value::Object(map) => {
            let mut out = RhaiMap::new();
            for (k, v) in map {
                out.insert(k.as_str().into(), to_dynamic(v));
            }
            Dynamic::from_map(out)
        }
    }
}

/// A Rhai value as JSON.
pub fn to_json(v: &Dynamic) -> Result<Value, String> {
    if v.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = v.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = v.as_int() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = v.as_float() {
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} is not a JSON number"));
    }
    if let Ok(c) = v.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if v.is_string() {
        return Ok(Value::String(v.clone().into_string().unwrap_or_default()));
    }
    if v.is_array() {
        let array = v.read_lock::<Array>().ok_or("array is locked")?;
        return array
            .iter()
            .map(to_json)
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if v.is_map() {
        let map = v.read_lock::<RhaiMap>().ok_or("map is locked")?;
        let mut out = Map::new();
        for (k, item) in map.iter() {
            out.insert(k.to_string(), to_json(item)?);
        }
        return Ok(Value::Object(out));
    }
    if v.is_blob() {
        let blob = v.read_lock::<rhai::Blob>().ok_or("blob is locked")?;
        return Ok(Value::Array(blob.iter().map(|b| Value::from(*b)).collect()));
    }
    Err(format!("a value of type {}", v.type_name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips_with_integers_kept() {
        let v = json!({"n": 3, "f": 2.5, "s": "x", "b": true, "z": null, "a": [1, {"k": []}], "big": 1e300});
        let back = to_json(&to_dynamic(&v)).expect("json");
        assert_eq!(back, v);
        assert!(to_dynamic(&json!(3)).is_int());
        assert!(to_dynamic(&json!(3.0)).is_float());
    }

    #[test]
    fn values_json_cannot_hold_are_named() {
        let err = to_json(&Dynamic::from_float(f64::NAN)).expect_err("NaN");
        assert!(err.contains("not a JSON number"), "{err}");
        let err = to_json(&Dynamic::from(super::super::CtxHandle::new(0))).expect_err("ctx");
        assert!(err.contains("type"), "{err}");
    }
}
