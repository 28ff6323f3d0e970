-- The sandbox every plinth Lua script runs in. Run once per Lua state with
-- the host functions (H, written in Rust) and the limits; returns `run`
-- (call one function of a script with a fresh environment and ctx) and
-- `define` (run a script's top level, returning what it defines).
--
-- Scripts see: the base functions without the loaders (no load, loadfile,
-- dofile, require), collectgarbage, print or rawset; `string` (no dump),
-- `table`, `math` (no randomseed) and `utf8`, all read-only. string.rep,
-- string.format, table.concat and table.insert check the
-- string length and table size limits; other growth is checked where a
-- value leaves the script (Rust side) and bounded by the memory limit. Each call gets
-- a fresh global table, so a global written by one request is never seen
-- by another. `pcall`/`xpcall` catch script errors but never the end of a
-- request (ctx.fail, ctx.require, a limit, the time limit).

local H, max_string, max_items = ...

local native_pcall, native_xpcall = pcall, xpcall
local native_setmetatable, table_pack, table_unpack = setmetatable, table.pack, table.unpack
local error, type, rawget, setmetatable, getmetatable, pairs =
    error, type, rawget, setmetatable, getmetatable, pairs
local string_len, string_rep, table_insert = string.len, string.rep, table.insert
local string_format, table_concat = string.format, table.concat

local function readonly(t, name)
    return setmetatable({}, {
        __index = t,
        __newindex = function()
            error(name .. " is read-only", 2)
        end,
        __metatable = false,
    })
end

local function copy(t, without)
    local c = {}
    for k, v in pairs(t) do
        if not (without and without[k]) then
            c[k] = v
        end
    end
    return c
end

local ending, limit = H.ending, H.limit

-- A string built by a library function, held to the string length limit
-- (`..` is held to it where a value leaves the script, and by memory).
local function bounded(s, ...)
    if type(s) == "string" and string_len(s) > max_string then
        limit("string length limit exceeded")
    end
    return s, ...
end

local S = copy(string, { dump = true })
S.format = function(...)
    return bounded(string_format(...))
end
-- find, match, gmatch and gsub run on plinth's matcher, whose steps
-- count as instructions and which the deadline stops (Lua's C matcher
-- runs to its end whatever the hook says). They answer (true, ...) or
-- (false, message), raised at the script's line as Lua's own errors are.
local function finish(ok, ...)
    if ok then
        return ...
    end
    error((...), 2)
end
local str_find, str_match, str_gmatch, str_gsub = H.str_find, H.str_match, H.str_gmatch, H.str_gsub
S.find = function(...)
    return finish(str_find(...))
end
S.match = function(...)
    return finish(str_match(...))
end
S.gsub = function(s, p, repl, n)
    if type(repl) ~= "function" then
        return finish(str_gsub(s, p, repl, n))
    end
    -- An error of the replacement function passes through unchanged (a
    -- refused write stays that table; a text keeps its location).
    local raised
    local function call(...)
        local r = table_pack(native_pcall(repl, ...))
        if r[1] then
            return r[2]
        end
        raised = r
        error(r[2], 0)
    end
    local r = table_pack(str_gsub(s, p, call, n))
    if r[1] then
        return table_unpack(r, 2, r.n)
    end
    if raised then
        error(raised[2], 0)
    end
    error(r[2], 2)
end
S.gmatch = function(...)
    local ok, next_match = str_gmatch(...)
    if not ok then
        error(next_match, 2)
    end
    return function()
        return finish(next_match())
    end
end
S.rep = function(s, n, sep)
    if type(n) == "number" and n > 0 then
        local total = string_len(s) * n
        if sep ~= nil then
            total = total + string_len(sep) * (n - 1)
        end
        if total > max_string then
            limit("string length limit exceeded")
        end
    end
    return string_rep(s, n, sep)
end

local T = copy(table)
T.concat = function(...)
    return bounded(table_concat(...))
end
T.insert = function(t, ...)
    if type(t) == "table" and #t >= max_items then
        limit("table size limit exceeded")
    end
    return table_insert(t, ...)
end

local STRING = readonly(S, "string")
-- Methods on strings ("x"):upper() use the same read-only library.
local string_mt = getmetatable("")
string_mt.__index = STRING
string_mt.__metatable = false

local function after(ok, ...)
    if not ok and ending((...)) then
        error((...), 0)
    end
    return ok, ...
end

local BASE = {
    _VERSION = _VERSION,
    assert = assert,
    error = error,
    getmetatable = getmetatable,
    ipairs = ipairs,
    next = next,
    pairs = pairs,
    pcall = function(f, ...)
        return after(native_pcall(f, ...))
    end,
    -- The handler runs after the error unwound (Lua would run it inside
    -- the raise, where the hook is off: uncounted, past every limit).
    xpcall = function(f, handler, ...)
        local r = table_pack(native_pcall(f, ...))
        if r[1] then
            return table_unpack(r, 1, r.n)
        end
        if ending(r[2]) then
            error(r[2], 0)
        end
        return false, select(2, after(native_pcall(handler, r[2])))
    end,
    rawequal = rawequal,
    rawget = rawget,
    rawlen = rawlen,
    select = select,
    -- No finalizers: Lua runs them with the hook off, whenever the
    -- collector gets to them, in whatever request is running then.
    setmetatable = function(t, mt)
        if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
            error("setmetatable: __gc (finalizers) is not available to scripts", 2)
        end
        return native_setmetatable(t, mt)
    end,
    tonumber = tonumber,
    tostring = tostring,
    type = type,
    string = STRING,
    table = readonly(T, "table"),
    math = readonly(copy(math, { randomseed = true }), "math"),
    utf8 = readonly(copy(utf8), "utf8"),
}

local ENV_MT = { __index = BASE, __metatable = false }

-- Host functions answer (true, value) or (false, error); the error is
-- raised at the script's call site (a refused write as a table).
local function wrap(f)
    return function(...)
        local ok, v = f(...)
        if ok then
            return v
        end
        error(v, 2)
    end
end

local DB = readonly({
    get = wrap(H.get),
    find = wrap(H.find),
    first = wrap(H.first),
    count = wrap(H.count),
    insert = wrap(H.insert),
    update = wrap(H.update),
    delete = wrap(H.delete),
}, "ctx.db")

local LOG = readonly({
    info = wrap(H.info),
    warn = wrap(H.warn),
    error = wrap(H.error),
}, "ctx.log")

local MEMBERS = {
    db = DB,
    log = LOG,
    can = wrap(H.can),
    require = wrap(H.require),
    fail = wrap(H.fail),
    now = wrap(H.now),
    uuid = wrap(H.uuid),
}
local VALUES = { user = H.user, tenant = H.tenant, plugin = H.plugin, settings = H.settings }

local CTX_MT = {
    __index = function(t, k)
        local member = MEMBERS[k]
        if member ~= nil then
            return member
        end
        local value = VALUES[k]
        if value ~= nil then
            -- A fresh copy at every read: what a script changes in it is
            -- its own, and ctx itself never holds a key to overwrite.
            local ok, v = value()
            if not ok then
                error(v, 2)
            end
            return v
        end
        return nil
    end,
    __newindex = function()
        error("ctx is read-only", 2)
    end,
    __metatable = false,
}

local function invoke(chunk, name, ...)
    local env = setmetatable({}, ENV_MT)
    chunk(env)
    local f = rawget(env, name)
    if type(f) ~= "function" then
        error("function " .. name .. " is not defined", 0)
    end
    return f(setmetatable({}, CTX_MT), ...)
end

-- Runs where an uncaught error is raised, the script's frames still
-- there: notes the script's line (a thrown table has none of its own).
local note_thrown = H.note_thrown
local function handler(err)
    note_thrown()
    return err
end

local function run(chunk, name, ...)
    return native_xpcall(invoke, handler, chunk, name, ...)
end

local function define(chunk)
    local env = setmetatable({}, ENV_MT)
    local ok, err = native_pcall(chunk, env)
    if not ok then
        return false, err
    end
    local functions = {}
    for k, v in pairs(env) do
        if type(k) == "string" and type(v) == "function" then
            functions[k] = v
        end
    end
    return true, functions
end

return run, define
