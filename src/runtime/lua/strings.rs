//! `string.find`, `string.match`, `string.gmatch` and `string.gsub` for
//! scripts, on plinth's matcher ([`super::patterns`]) instead of Lua's C
//! one: the same results, but every step counts against the call's
//! instruction budget and the request's deadline, so a pattern that
//! backtracks without end is a limit like a loop (Lua's C matcher runs to
//! the end whatever the hook says).
//!
//! Each function answers `(true, results...)` or `(false, message)` for
//! the sandbox to raise at the script's line (as Lua's own errors are); a
//! limit is recorded on the invocation and raised at once.

use mlua::{Function, Lua, LuaString, MultiValue, Table, Value as LuaValue};

use super::patterns::{self, Capture, CaptureValue, GMatch, GsubError, PatternError, Repl};
use super::{MAX_OPS, OPS, end};
use crate::runtime::{FaultKind, invocation};

/// The stop callback of the matcher: its steps are the call's
/// instructions; stop past the budget or the deadline.
fn stop() -> bool {
    let ops = OPS.get() + u64::from(patterns::STEPS_PER_CHECK);
    OPS.set(ops);
    ops > MAX_OPS.get() || invocation::deadline_passed()
}

/// The error that ends the request when the matcher was stopped (or its
/// result grew past the string limit).
fn stopped(lua: &Lua, error: &PatternError) -> mlua::Error {
    match error {
        PatternError::OutputTooLarge => end(lua, FaultKind::Limit, "string length limit exceeded"),
        _ if invocation::deadline_passed() => {
            end(lua, FaultKind::Timeout, "script time limit exceeded")
        }
        _ => end(lua, FaultKind::Limit, "operations limit exceeded"),
    }
}

/// An answer of a string function: the results, a catchable error, or the
/// end of the request.
type Answer = mlua::Result<MultiValue>;

fn ok(values: impl IntoIterator<Item = LuaValue>) -> Answer {
    let mut all = MultiValue::new();
    all.push_back(LuaValue::Boolean(true));
    all.extend(values);
    Ok(all)
}

fn refuse(lua: &Lua, message: &str) -> Answer {
    let mut all = MultiValue::new();
    all.push_back(LuaValue::Boolean(false));
    all.push_back(LuaValue::String(lua.create_string(message)?));
    Ok(all)
}

/// The outcome of a matcher call as an answer.
fn answer<T>(
    lua: &Lua,
    result: Result<T, PatternError>,
    values: impl FnOnce(T) -> mlua::Result<Vec<LuaValue>>,
) -> Answer {
    match result {
        Ok(found) => ok(values(found)?),
        Err(PatternError::Malformed(message)) => refuse(lua, &message),
        Err(other) => Err(stopped(lua, &other)),
    }
}

fn type_name(v: &LuaValue) -> &'static str {
    match v {
        LuaValue::Nil => "nil",
        other => other.type_name(),
    }
}

/// Argument `n` of `name` as a string (numbers convert, as in Lua).
fn string_arg(lua: &Lua, args: &MultiValue, n: usize, name: &str) -> Result<LuaString, String> {
    let v = args.get(n - 1).cloned().unwrap_or(LuaValue::Nil);
    match &v {
        LuaValue::String(s) => Ok(s.clone()),
        LuaValue::Integer(_) | LuaValue::Number(_) => {
            lua.coerce_string(v.clone()).ok().flatten().ok_or_else(|| {
                format!("bad argument #{n} to '{name}' (string expected, got number)")
            })
        }
        other => Err(format!(
            "bad argument #{n} to '{name}' (string expected, got {})",
            type_name(other)
        )),
    }
}

/// Optional integer argument `n` of `name` (`default` when absent).
fn int_arg(args: &MultiValue, n: usize, name: &str, default: i64) -> Result<i64, String> {
    match args.get(n - 1) {
        None | Some(LuaValue::Nil) => Ok(default),
        Some(LuaValue::Integer(i)) => Ok(*i),
        Some(LuaValue::Number(f)) => {
            if f.fract() == 0.0 && *f >= -(2f64.powi(63)) && *f < 2f64.powi(63) {
                #[allow(clippy::cast_possible_truncation)]
                Ok(*f as i64)
            } else {
                Err(format!(
                    "bad argument #{n} to '{name}' (number has no integer representation)"
                ))
            }
        }
        Some(LuaValue::String(s)) => s
            .to_str()
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .ok_or_else(|| format!("bad argument #{n} to '{name}' (number expected, got string)")),
        Some(other) => Err(format!(
            "bad argument #{n} to '{name}' (number expected, got {})",
            type_name(other)
        )),
    }
}

/// The `(s, pattern [, init])` arguments of find, match and gmatch.
fn subject_pattern_init(
    lua: &Lua,
    args: &MultiValue,
    name: &str,
) -> Result<(LuaString, LuaString, i64), String> {
    let s = string_arg(lua, args, 1, name)?;
    let p = string_arg(lua, args, 2, name)?;
    let init = int_arg(args, 3, name, 1)?;
    Ok((s, p, init))
}

/// A capture as Lua sees it.
fn capture_value(lua: &Lua, c: CaptureValue<'_>) -> mlua::Result<LuaValue> {
    Ok(match c {
        CaptureValue::Bytes(b) => LuaValue::String(lua.create_string(b)?),
        CaptureValue::Position(p) => LuaValue::Integer(i64::try_from(p).unwrap_or(i64::MAX)),
    })
}

fn captures(lua: &Lua, subject: &[u8], caps: &[Capture]) -> mlua::Result<Vec<LuaValue>> {
    caps.iter()
        .map(|c| capture_value(lua, c.value(subject)))
        .collect()
}

/// Why a replacement did not give a string.
enum ReplError {
    /// The replacement function or table failed (its message).
    Failed(String),
    /// It gave a value that is not a string, a number, `false` or `nil`.
    Invalid(&'static str),
}

/// The replacement a table or function gave: kept match (`nil`/`false`),
/// or its text.
fn replacement(lua: &Lua, v: LuaValue) -> Result<Option<Vec<u8>>, ReplError> {
    match v {
        LuaValue::Nil | LuaValue::Boolean(false) => Ok(None),
        LuaValue::String(s) => Ok(Some(s.as_bytes().to_vec())),
        LuaValue::Integer(_) | LuaValue::Number(_) => Ok(lua
            .coerce_string(v)
            .ok()
            .flatten()
            .map(|s| s.as_bytes().to_vec())),
        other => Err(ReplError::Invalid(type_name(&other))),
    }
}

fn failed(e: &mlua::Error) -> ReplError {
    ReplError::Failed(super::error_text(e))
}

/// Register `str_find`, `str_match`, `str_gmatch` and `str_gsub` in the
/// host table (the sandbox puts them in `string`).
pub fn register(lua: &Lua, host: &Table, max_string: usize) -> mlua::Result<()> {
    host.raw_set(
        "str_find",
        lua.create_function(|lua, args: MultiValue| {
            let (s, p, init) = match subject_pattern_init(lua, &args, "find") {
                Ok(parsed) => parsed,
                Err(message) => return refuse(lua, &message),
            };
            let plain = args
                .get(3)
                .is_some_and(|v| !matches!(v, LuaValue::Nil | LuaValue::Boolean(false)));
            let subject = s.as_bytes();
            let result = patterns::find(&subject, &p.as_bytes(), init, plain, &mut stop);
            answer(lua, result, |found| {
                let Some(found) = found else {
                    return Ok(vec![LuaValue::Nil]);
                };
                let mut values = vec![
                    LuaValue::Integer(i64::try_from(found.start).unwrap_or(i64::MAX)),
                    LuaValue::Integer(i64::try_from(found.end).unwrap_or(i64::MAX)),
                ];
                values.extend(captures(lua, &subject, &found.captures)?);
                Ok(values)
            })
        })?,
    )?;
    host.raw_set(
        "str_match",
        lua.create_function(|lua, args: MultiValue| {
            let (s, p, init) = match subject_pattern_init(lua, &args, "match") {
                Ok(parsed) => parsed,
                Err(message) => return refuse(lua, &message),
            };
            let subject = s.as_bytes();
            let result = patterns::match_(&subject, &p.as_bytes(), init, &mut stop);
            answer(lua, result, |caps| match caps {
                None => Ok(vec![LuaValue::Nil]),
                Some(caps) => captures(lua, &subject, &caps),
            })
        })?,
    )?;
    host.raw_set(
        "str_gmatch",
        lua.create_function(|lua, args: MultiValue| {
            let (s, p, init) = match subject_pattern_init(lua, &args, "gmatch") {
                Ok(parsed) => parsed,
                Err(message) => return refuse(lua, &message),
            };
            let mut state = GMatch::new(&s.as_bytes(), init);
            let next = lua.create_function_mut(move |lua, ()| {
                let subject = s.as_bytes();
                let result = state.next(&subject, &p.as_bytes(), &mut stop);
                answer(lua, result, |caps| match caps {
                    None => Ok(vec![LuaValue::Nil]),
                    Some(caps) => captures(lua, &subject, &caps),
                })
            })?;
            ok([LuaValue::Function(next)])
        })?,
    )?;
    host.raw_set(
        "str_gsub",
        lua.create_function(move |lua, args: MultiValue| gsub(lua, &args, max_string))?,
    )?;
    Ok(())
}

fn gsub(lua: &Lua, args: &MultiValue, max_string: usize) -> Answer {
    let parsed = string_arg(lua, args, 1, "gsub").and_then(|s| {
        let p = string_arg(lua, args, 2, "gsub")?;
        let n = match args.get(3) {
            None | Some(LuaValue::Nil) => None,
            Some(_) => Some(int_arg(args, 4, "gsub", 0)?),
        };
        Ok((s, p, n))
    });
    let (s, p, max_n) = match parsed {
        Ok(parsed) => parsed,
        Err(message) => return refuse(lua, &message),
    };
    let subject = s.as_bytes();
    let pattern = p.as_bytes();
    let repl = args.get(2).cloned().unwrap_or(LuaValue::Nil);
    let result = match &repl {
        LuaValue::String(_) | LuaValue::Integer(_) | LuaValue::Number(_) => {
            let text = match lua.coerce_string(repl.clone()) {
                Ok(Some(text)) => text,
                _ => return refuse(lua, "bad argument #3 to 'gsub' (string expected)"),
            };
            patterns::gsub::<ReplError>(
                &subject,
                &pattern,
                Repl::Str(&text.as_bytes()),
                max_n,
                max_string,
                &mut stop,
            )
        }
        LuaValue::Table(t) => {
            let mut lookup = |c: CaptureValue<'_>| {
                let key = capture_value(lua, c).map_err(|e| failed(&e))?;
                let v: LuaValue = t.get(key).map_err(|e| failed(&e))?;
                replacement(lua, v)
            };
            patterns::gsub(
                &subject,
                &pattern,
                Repl::Table(&mut lookup),
                max_n,
                max_string,
                &mut stop,
            )
        }
        LuaValue::Function(f) => {
            let f: &Function = f;
            let mut call = |caps: &[CaptureValue<'_>]| {
                let mut call_args = MultiValue::new();
                for c in caps {
                    call_args.push_back(capture_value(lua, *c).map_err(|e| failed(&e))?);
                }
                let v: LuaValue = f.call(call_args).map_err(|e| failed(&e))?;
                replacement(lua, v)
            };
            patterns::gsub(
                &subject,
                &pattern,
                Repl::Function(&mut call),
                max_n,
                max_string,
                &mut stop,
            )
        }
        other => {
            return refuse(
                lua,
                &format!(
                    "bad argument #3 to 'gsub' (string/function/table expected, got {})",
                    type_name(other)
                ),
            );
        }
    };
    match result {
        Ok((text, count)) => ok([
            LuaValue::String(lua.create_string(&text)?),
            LuaValue::Integer(i64::try_from(count).unwrap_or(i64::MAX)),
        ]),
        Err(GsubError::Pattern(PatternError::Malformed(message))) => refuse(lua, &message),
        Err(GsubError::Pattern(other)) => Err(stopped(lua, &other)),
        Err(GsubError::Repl(ReplError::Failed(message))) => refuse(lua, &message),
        Err(GsubError::Repl(ReplError::Invalid(what))) => {
            refuse(lua, &format!("invalid replacement value (a {what})"))
        }
    }
}
