//! The only unsafe code of plinth, kept to this file: the Lua hook and
//! the JSON → Lua conversion written against Lua's C API. Both run on every
//! call (the hook at every function call of a script), and going through
//! mlua's safe wrappers there cost more than the script itself: each
//! mlua hook event or created value is a protected call of its own.
//!
//! Rules kept here: only this thread's live state is touched, inside
//! mlua's `exec_raw` (a protected call) or from the hook (where Lua lets
//! errors be raised); and no Rust value with a destructor is alive where
//! Lua may raise an error (`lua_error`, or an allocation that fails), since
//! the error unwinds Rust frames without running destructors.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_int};
use std::ptr;

use mlua::{Lua, Value as LuaValue, ffi};
use serde_json::Value;

use super::{DEPTH_LIMIT, EVERY, MAX_OPS, OPS, PROBE, record_end};
use crate::runtime::{FaultKind, invocation};

/// Install [`hook`] on the state's main thread, the only one scripts run
/// on (the sandbox has no coroutines): every call, and every `every`
/// instructions.
pub fn install_hook(lua: &Lua, every: u32) -> mlua::Result<()> {
    let count = c_int::try_from(every).unwrap_or(1000);
    // SAFETY: sets the hook of the live state exec_raw hands over.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            ffi::lua_sethook(
                state,
                Some(hook),
                ffi::LUA_MASKCALL | ffi::LUA_MASKCOUNT,
                count,
            );
        })
    }
}

/// A zeroed activation record for `lua_getstack` / `lua_getinfo`.
fn debug_record() -> ffi::lua_Debug {
    // SAFETY: lua_Debug is plain C data (integers, pointers, a char
    // array); all zeroes is the state Lua expects before filling it in.
    unsafe { std::mem::zeroed() }
}

/// Whether the running thread has a frame at `level` (0: the running
/// function).
///
/// # Safety
/// `state` is a live Lua state on this thread.
unsafe fn has_level(state: *mut ffi::lua_State, level: usize) -> bool {
    let mut ar = debug_record();
    let level = c_int::try_from(level).unwrap_or(c_int::MAX);
    // SAFETY: per the caller; `ar` outlives the call.
    unsafe { ffi::lua_getstack(state, level, &mut ar) != 0 }
}

/// The file and line of the innermost script frame of `state`, skipping
/// library functions and the sandbox.
///
/// # Safety
/// `state` is a live Lua state on this thread.
unsafe fn script_location(state: *mut ffi::lua_State) -> (String, usize) {
    let mut ar = debug_record();
    let mut level = 0;
    // SAFETY: per the caller; every pointer read is one Lua just filled in.
    unsafe {
        while ffi::lua_getstack(state, level, &mut ar) != 0 {
            level += 1;
            if ffi::lua_getinfo(state, c"Sl".as_ptr(), &mut ar) == 0 {
                continue;
            }
            let is_c = !ar.what.is_null() && CStr::from_ptr(ar.what).to_bytes() == b"C";
            let sandbox = !ar.source.is_null()
                && CStr::from_ptr(ar.source).to_bytes() == super::SANDBOX_NAME.as_bytes();
            if is_c || sandbox {
                continue;
            }
            let src = CStr::from_ptr(ar.short_src.as_ptr())
                .to_string_lossy()
                .into_owned();
            return (src, usize::try_from(ar.currentline).unwrap_or(0));
        }
    }
    (String::new(), 0)
}

/// Raise the end of the running invocation from inside the hook: record
/// it located at the script's line, then unwind the script with the text.
///
/// # Safety
/// Only from the hook of `state`, which Lua lets raise errors.
unsafe fn raise_end(state: *mut ffi::lua_State, kind: FaultKind, message: &str) -> ! {
    // SAFETY: the hook's own live state.
    let (file, line) = unsafe { script_location(state) };
    let text = record_end(kind, file, line, message);
    // SAFETY: the string is copied by Lua before `text` is dropped; no Rust
    // value with a destructor is alive when `lua_error` unwinds this frame.
    unsafe {
        ffi::lua_pushlstring(state, text.as_ptr().cast(), text.len());
        drop(text);
        ffi::lua_error(state)
    }
}

/// The hook of every state, in C for speed (it runs at every call): counts
/// instructions against the budget, checks the request's deadline, bounds
/// the call depth, and answers the parameter count while probing.
pub unsafe extern "C-unwind" fn hook(state: *mut ffi::lua_State, ar: *mut ffi::lua_Debug) {
    // SAFETY: Lua calls the hook with its state and a valid record.
    unsafe {
        match (*ar).event {
            ffi::LUA_HOOKCOUNT => {
                let every = u64::from(EVERY.get());
                let ops = OPS.get() + every;
                OPS.set(ops);
                if ops > MAX_OPS.get() {
                    raise_end(state, FaultKind::Limit, "operations limit exceeded");
                }
                if invocation::deadline_passed() {
                    raise_end(state, FaultKind::Timeout, "script time limit exceeded");
                }
            }
            ffi::LUA_HOOKCALL | ffi::LUA_HOOKTAILCALL => {
                if PROBE.get() == Some(usize::MAX) {
                    ffi::lua_getinfo(state, c"u".as_ptr(), ar);
                    PROBE.set(Some(usize::from((*ar).nparams)));
                    ffi::lua_pushstring(state, c"probed".as_ptr());
                    ffi::lua_error(state);
                }
                let limit = DEPTH_LIMIT.get();
                if limit > 0 && has_level(state, limit) {
                    raise_end(state, FaultKind::Limit, "call depth limit exceeded");
                }
            }
            _ => {}
        }
    }
}

/// A string, table or array as a Lua value, built in one protected call
/// (scalars never come here; see [`super::convert::to_lua`] for the rules).
pub fn to_lua(lua: &Lua, value: &Value) -> mlua::Result<LuaValue> {
    // SAFETY: `push_json` pushes exactly one value onto the live stack
    // exec_raw protects, which answers it.
    unsafe { lua.exec_raw((), |state| push_json(state, value)) }
}

/// Push `value`: `null` as nil (and left out of objects), integers as
/// integers, other numbers as floats, arrays as tables with keys 1..n.
///
/// # Safety
/// Inside a protected call on `state`; Lua may raise a memory error at
/// any push, which unwinds only borrowed data and iterators here.
unsafe fn push_json(state: *mut ffi::lua_State, value: &Value) {
    unsafe {
        ffi::luaL_checkstack(state, 3, ptr::null());
        match value {
            Value::Null => ffi::lua_pushnil(state),
            Value::Bool(b) => ffi::lua_pushboolean(state, c_int::from(*b)),
            Value::Number(n) => match n.as_i64() {
                Some(i) => ffi::lua_pushinteger(state, i),
                None => ffi::lua_pushnumber(state, n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => {
                ffi::lua_pushlstring(state, s.as_ptr().cast(), s.len());
            }
            Value::Array(items) => {
                ffi::lua_createtable(state, c_int::try_from(items.len()).unwrap_or(0), 0);
                let mut i: ffi::lua_Integer = 0;
                for item in items {
                    i += 1;
                    push_json(state, item);
                    ffi::lua_rawseti(state, -2, i);
                }
            }
            Value::Object(fields) => {
                ffi::lua_createtable(state, 0, c_int::try_from(fields.len()).unwrap_or(0));
                for (k, v) in fields {
                    if v.is_null() {
                        continue;
                    }
                    ffi::lua_pushlstring(state, k.as_ptr().cast(), k.len());
                    push_json(state, v);
                    ffi::lua_rawset(state, -3);
                }
            }
        }
    }
}
