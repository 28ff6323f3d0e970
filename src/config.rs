//! Configuration: command-line flag > environment variable > `plinth.toml` >
//! built-in default. Every setting is parsed once here; a bad one becomes a
//! [`ConfigError`] that names the setting and the source it came from, so the
//! operator knows which of four places to fix.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag, e.g. `--listen`.
    Flag(&'static str),
    /// An environment variable, e.g. `PLINTH_LISTEN`.
    Env(&'static str),
    /// A key in the config file.
    File { key: String, path: PathBuf },
    /// The built-in default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag {flag}"),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::File { key, path } => write!(f, "key `{key}` in {}", path.display()),
            Source::Default => write!(f, "built-in default"),
        }
    }
}

/// A setting that could not be used; start-up stops with exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting} (from {origin}): {message}")]
pub struct ConfigError {
    /// Human name of the setting, e.g. `listen address`.
    pub setting: &'static str,
    /// Where the bad value came from.
    pub origin: Source,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// SQLite durability (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Committed writes survive a process crash.
    Normal,
    /// Committed writes also survive power loss.
    Full,
}

/// The resolved configuration of one plinth process.
#[derive(Clone)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Folder of `plinth.db` and the generated JWT secret.
    pub data_dir: PathBuf,
    /// Folder of plugin manifests.
    pub manifests_dir: PathBuf,
    /// Folder of plugin scripts.
    pub scripts_dir: PathBuf,
    /// Plugins to load; `None` loads all found.
    pub active_plugins: Option<Vec<String>>,
    /// Pinned tenant slug (single-customer mode).
    pub tenant: Option<String>,
    /// JWT signing secret; `None` means read or generate the one in the data dir.
    pub jwt_secret: Option<Vec<u8>>,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// Largest accepted request body in bytes.
    pub max_body: usize,
    /// Bootstrap admin e-mail.
    pub admin_email: Option<String>,
    /// Bootstrap admin password.
    pub admin_password: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Watch plugin folders for changes.
    pub watch: bool,
    /// Development mode: error details in responses.
    pub dev: bool,
    /// SQLite durability.
    pub sync: SyncMode,
    /// Sandbox limits of plugin scripts.
    pub script_limits: crate::runtime::ScriptLimits,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets are never printed.
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("manifests_dir", &self.manifests_dir)
            .field("scripts_dir", &self.scripts_dir)
            .field("active_plugins", &self.active_plugins)
            .field("tenant", &self.tenant)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("max_body", &self.max_body)
            .field("watch", &self.watch)
            .field("dev", &self.dev)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A configuration for tests and embedding: defaults with the given data dir.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        let mut config =
            Config::resolve(&Flags::default(), &|_| None).expect("built-in defaults are valid");
        config.data_dir = data_dir.into();
        config
    }

    /// Resolve every setting from flags, the environment (through `env`), the
    /// config file named by `--config`/`PLINTH_CONFIG`, and the defaults.
    pub fn resolve(
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = load_file(flags, env)?;
        let r = Resolver { flags, env, file };
        let config = Config {
            listen: r.get(&LISTEN, parse_addr)?,
            data_dir: r.get(&DATA_DIR, parse_path)?,
            manifests_dir: r.get(&MANIFESTS_DIR, parse_path)?,
            scripts_dir: r.get(&SCRIPTS_DIR, parse_path)?,
            active_plugins: r.get_opt(&ACTIVE_PLUGINS, parse_plugin_list)?,
            tenant: r.get_opt(&TENANT, parse_slug)?,
            jwt_secret: r.get_opt(&JWT_SECRET, parse_secret)?,
            access_ttl: r.get(&ACCESS_TTL, parse_duration)?,
            refresh_ttl: r.get(&REFRESH_TTL, parse_duration)?,
            max_body: r.get(&MAX_BODY, parse_size)?,
            admin_email: r.get_opt(&ADMIN_EMAIL, parse_email)?,
            admin_password: r.get_opt(&ADMIN_PASSWORD, parse_password)?,
            log_format: r.get(&LOG_FORMAT, parse_log_format)?,
            watch: r.get(&WATCH, parse_bool)?,
            dev: flags.dev,
            sync: r.get(&SYNC, parse_sync)?,
            script_limits: crate::runtime::ScriptLimits {
                max_operations: r.get(&SCRIPT_MAX_OPERATIONS, parse_count_u64)?,
                timeout: r.get(&SCRIPT_TIMEOUT, parse_duration)?,
                max_call_depth: r.get(&SCRIPT_MAX_CALL_DEPTH, parse_count)?,
                max_string: r.get(&SCRIPT_MAX_STRING, parse_size)?,
                max_collection: r.get(&SCRIPT_MAX_ITEMS, parse_count)?,
                max_rows: r.get(&SCRIPT_MAX_ROWS, parse_count)?,
                max_memory: r.get(&SCRIPT_MAX_MEMORY, parse_memory)?,
            },
        };
        // Folders of plugins must exist when named explicitly; the defaults
        // may be absent (a server without plugins is still a server).
        for (spec, path) in [
            (&MANIFESTS_DIR, &config.manifests_dir),
            (&SCRIPTS_DIR, &config.scripts_dir),
        ] {
            let source = r.source_of(spec);
            if source != Source::Default && !path.is_dir() {
                return Err(ConfigError {
                    setting: spec.label,
                    origin: source,
                    message: format!("folder {} does not exist", path.display()),
                });
            }
        }
        if config.data_dir.exists() && !config.data_dir.is_dir() {
            return Err(ConfigError {
                setting: DATA_DIR.label,
                origin: r.source_of(&DATA_DIR),
                message: format!("{} is not a folder", config.data_dir.display()),
            });
        }
        Ok(config)
    }

    /// Create the data dir if it is missing; a failure is a bad setting.
    pub fn prepare_data_dir(
        &self,
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        std::fs::create_dir_all(&self.data_dir).map_err(|e| {
            let file = load_file(flags, env).ok().flatten();
            let origin = Resolver { flags, env, file }.source_of(&DATA_DIR);
            ConfigError {
                setting: DATA_DIR.label,
                origin,
                message: format!("cannot create {}: {e}", self.data_dir.display()),
            }
        })
    }
}

/// Raw values given on the command line (strings, parsed like every other source).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    /// `--config`
    pub config: Option<String>,
    /// `--listen`
    pub listen: Option<String>,
    /// `--data-dir`
    pub data_dir: Option<String>,
    /// `--manifests-dir`
    pub manifests_dir: Option<String>,
    /// `--scripts-dir`
    pub scripts_dir: Option<String>,
    /// `--tenant`
    pub tenant: Option<String>,
    /// `--no-watch`
    pub no_watch: bool,
    /// `--dev`
    pub dev: bool,
}

/// A command-line flag's name and how to read it from [`Flags`].
type FlagSource = (&'static str, fn(&Flags) -> Option<String>);

/// One setting: its names in each source and its default.
struct Spec {
    label: &'static str,
    key: &'static str,
    env: &'static str,
    flag: Option<FlagSource>,
    default: Option<&'static str>,
}

const LISTEN: Spec = Spec {
    label: "listen address",
    key: "listen",
    env: "PLINTH_LISTEN",
    flag: Some(("--listen", |f| f.listen.clone())),
    default: Some("127.0.0.1:8080"),
};
const DATA_DIR: Spec = Spec {
    label: "data dir",
    key: "data_dir",
    env: "PLINTH_DATA_DIR",
    flag: Some(("--data-dir", |f| f.data_dir.clone())),
    default: Some("./data"),
};
const MANIFESTS_DIR: Spec = Spec {
    label: "manifests dir",
    key: "manifests_dir",
    env: "PLINTH_MANIFESTS_DIR",
    flag: Some(("--manifests-dir", |f| f.manifests_dir.clone())),
    default: Some("./plugin-manifests"),
};
const SCRIPTS_DIR: Spec = Spec {
    label: "scripts dir",
    key: "scripts_dir",
    env: "PLINTH_SCRIPTS_DIR",
    flag: Some(("--scripts-dir", |f| f.scripts_dir.clone())),
    default: Some("./scripts"),
};
const ACTIVE_PLUGINS: Spec = Spec {
    label: "active plugins",
    key: "active_plugins",
    env: "PLINTH_ACTIVE_PLUGINS",
    flag: None,
    default: None,
};
const TENANT: Spec = Spec {
    label: "pinned tenant",
    key: "tenant",
    env: "PLINTH_TENANT",
    flag: Some(("--tenant", |f| f.tenant.clone())),
    default: None,
};
const JWT_SECRET: Spec = Spec {
    label: "JWT secret",
    key: "jwt_secret",
    env: "PLINTH_JWT_SECRET",
    flag: None,
    default: None,
};
const ACCESS_TTL: Spec = Spec {
    label: "access token lifetime",
    key: "access_ttl",
    env: "PLINTH_ACCESS_TTL",
    flag: None,
    default: Some("15m"),
};
const REFRESH_TTL: Spec = Spec {
    label: "refresh token lifetime",
    key: "refresh_ttl",
    env: "PLINTH_REFRESH_TTL",
    flag: None,
    default: Some("30d"),
};
const MAX_BODY: Spec = Spec {
    label: "largest request body",
    key: "max_body",
    env: "PLINTH_MAX_BODY",
    flag: None,
    default: Some("1MiB"),
};
const ADMIN_EMAIL: Spec = Spec {
    label: "bootstrap admin e-mail",
    key: "admin_email",
    env: "PLINTH_ADMIN_EMAIL",
    flag: None,
    default: None,
};
const ADMIN_PASSWORD: Spec = Spec {
    label: "bootstrap admin password",
    key: "admin_password",
    env: "PLINTH_ADMIN_PASSWORD",
    flag: None,
    default: None,
};
const LOG_FORMAT: Spec = Spec {
    label: "log format",
    key: "log_format",
    env: "PLINTH_LOG_FORMAT",
    flag: None,
    default: Some("pretty"),
};
const WATCH: Spec = Spec {
    label: "watch for changes",
    key: "watch",
    env: "PLINTH_WATCH",
    flag: Some(("--no-watch", |f| f.no_watch.then(|| "false".to_owned()))),
    default: Some("true"),
};
const SYNC: Spec = Spec {
    label: "durability",
    key: "sync",
    env: "PLINTH_SYNC",
    flag: None,
    default: Some("normal"),
};

const SCRIPT_MAX_OPERATIONS: Spec = Spec {
    label: "script operations limit",
    key: "script_max_operations",
    env: "PLINTH_SCRIPT_MAX_OPERATIONS",
    flag: None,
    default: Some("1000000"),
};
const SCRIPT_TIMEOUT: Spec = Spec {
    label: "script time limit",
    key: "script_timeout",
    env: "PLINTH_SCRIPT_TIMEOUT",
    flag: None,
    default: Some("2s"),
};
const SCRIPT_MAX_CALL_DEPTH: Spec = Spec {
    label: "script call depth limit",
    key: "script_max_call_depth",
    env: "PLINTH_SCRIPT_MAX_CALL_DEPTH",
    flag: None,
    default: Some("64"),
};
const SCRIPT_MAX_STRING: Spec = Spec {
    label: "script string length limit",
    key: "script_max_string",
    env: "PLINTH_SCRIPT_MAX_STRING",
    flag: None,
    default: Some("1MiB"),
};
const SCRIPT_MAX_ITEMS: Spec = Spec {
    label: "script array and map size limit",
    key: "script_max_items",
    env: "PLINTH_SCRIPT_MAX_ITEMS",
    flag: None,
    default: Some("100000"),
};
const SCRIPT_MAX_ROWS: Spec = Spec {
    label: "rows per script find",
    key: "script_max_rows",
    env: "PLINTH_SCRIPT_MAX_ROWS",
    flag: None,
    default: Some("10000"),
};

const SCRIPT_MAX_MEMORY: Spec = Spec {
    label: "memory per Lua state",
    key: "script_max_memory",
    env: "PLINTH_SCRIPT_MAX_MEMORY",
    flag: None,
    default: Some("64MiB"),
};

const ALL: [&Spec; 22] = [
    &LISTEN,
    &DATA_DIR,
    &MANIFESTS_DIR,
    &SCRIPTS_DIR,
    &ACTIVE_PLUGINS,
    &TENANT,
    &JWT_SECRET,
    &ACCESS_TTL,
    &REFRESH_TTL,
    &MAX_BODY,
    &ADMIN_EMAIL,
    &ADMIN_PASSWORD,
    &LOG_FORMAT,
    &WATCH,
    &SYNC,
    &SCRIPT_MAX_OPERATIONS,
    &SCRIPT_TIMEOUT,
    &SCRIPT_MAX_CALL_DEPTH,
    &SCRIPT_MAX_STRING,
    &SCRIPT_MAX_ITEMS,
    &SCRIPT_MAX_ROWS,
    &SCRIPT_MAX_MEMORY,
];

struct ConfigFile {
    path: PathBuf,
    values: BTreeMap<String, String>,
}

struct Resolver<'a> {
    flags: &'a Flags,
    env: &'a dyn Fn(&str) -> Option<String>,
    file: Option<ConfigFile>,
}

impl Resolver<'_> {
    fn raw(&self, spec: &Spec) -> Option<(String, Source)> {
        if let Some((flag, get)) = spec.flag
            && let Some(v) = get(self.flags)
        {
            return Some((v, Source::Flag(flag)));
        }
        if let Some(v) = (self.env)(spec.env) {
            return Some((v, Source::Env(spec.env)));
        }
        if let Some(file) = &self.file
            && let Some(v) = file.values.get(spec.key)
        {
            return Some((
                v.clone(),
                Source::File {
                    key: spec.key.to_owned(),
                    path: file.path.clone(),
                },
            ));
        }
        spec.default.map(|d| (d.to_owned(), Source::Default))
    }

    fn source_of(&self, spec: &Spec) -> Source {
        self.raw(spec).map_or(Source::Default, |(_, s)| s)
    }

    fn get_opt<T>(
        &self,
        spec: &Spec,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.raw(spec) {
            None => Ok(None),
            Some((value, origin)) => parse(&value).map(Some).map_err(|message| ConfigError {
                setting: spec.label,
                origin,
                message,
            }),
        }
    }

    fn get<T>(&self, spec: &Spec, parse: fn(&str) -> Result<T, String>) -> Result<T, ConfigError> {
        let value = self.get_opt(spec, parse)?;
        Ok(value.expect("every required setting has a default"))
    }
}

fn load_file(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ConfigFile>, ConfigError> {
    let (path, source) = match (&flags.config, env("PLINTH_CONFIG")) {
        (Some(p), _) => (PathBuf::from(p), Source::Flag("--config")),
        (None, Some(p)) => (PathBuf::from(p), Source::Env("PLINTH_CONFIG")),
        (None, None) => return Ok(None),
    };
    let fail = |message: String| ConfigError {
        setting: "config file",
        origin: source.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    let values = parse_file(&path, &text).map_err(fail)?;
    Ok(Some(ConfigFile { path, values }))
}

/// Parse `plinth.toml` into raw strings per key; unknown keys are errors.
fn parse_file(path: &Path, text: &str) -> Result<BTreeMap<String, String>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // One line: the parser's message may span several.
        let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("{}:{line}:{column}: {message}", path.display())
            }
            None => format!("{}: {message}", path.display()),
        }
    })?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        if !ALL.iter().any(|s| s.key == key) {
            let known: Vec<&str> = ALL.iter().map(|s| s.key).collect();
            return Err(format!(
                "{}: unknown key `{key}` (expected one of {})",
                path.display(),
                known.join(", ")
            ));
        }
        let raw = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => {
                let mut parts = Vec::new();
                for item in items {
                    match item {
                        toml::Value::String(s) => parts.push(s),
                        other => {
                            return Err(format!(
                                "{}: key `{key}`: expected a list of strings, found {}",
                                path.display(),
                                other.type_str()
                            ));
                        }
                    }
                }
                parts.join(",")
            }
            other => {
                return Err(format!(
                    "{}: key `{key}`: expected a string, number or boolean, found {}",
                    path.display(),
                    other.type_str()
                ));
            }
        };
        values.insert(key, raw);
    }
    Ok(values)
}

fn parse_addr(v: &str) -> Result<SocketAddr, String> {
    v.trim().parse().map_err(|_| {
        format!("invalid socket address \"{v}\" (expected host:port, e.g. 127.0.0.1:8080)")
    })
}

fn parse_path(v: &str) -> Result<PathBuf, String> {
    if v.trim().is_empty() {
        return Err("empty path".to_owned());
    }
    Ok(PathBuf::from(v))
}

fn parse_email(v: &str) -> Result<String, String> {
    let v = v.trim();
    crate::validation::check_email(v)
        .map(|()| v.to_owned())
        .map_err(|e| format!("\"{v}\" {}", e.message))
}

fn parse_password(v: &str) -> Result<String, String> {
    crate::validation::check_password(v)
        .map(|()| v.to_owned())
        .map_err(|e| e.message)
}

fn parse_slug(v: &str) -> Result<String, String> {
    crate::validation::check_slug(v)
        .map(|()| v.to_owned())
        .map_err(|e| e.message)
}

fn parse_plugin_list(v: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    for name in &names {
        let ok = name.len() >= 2
            && name.len() <= 40
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok {
            return Err(format!(
                "invalid plugin name \"{name}\" (expected [a-z][a-z0-9_-]{{1,39}})"
            ));
        }
    }
    Ok(names)
}

fn parse_secret(v: &str) -> Result<Vec<u8>, String> {
    if v.len() < 32 {
        return Err(format!(
            "secret is {} bytes long (expected at least 32)",
            v.len()
        ));
    }
    Ok(v.as_bytes().to_vec())
}

/// Parse a positive count such as `64` or `100000` (`_` separators allowed).
fn parse_count_u64(v: &str) -> Result<u64, String> {
    let digits: String = v.trim().chars().filter(|c| *c != '_').collect();
    match digits.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "invalid count \"{}\" (expected a positive whole number, e.g. 1000000)",
            v.trim()
        )),
    }
}

/// [`parse_count_u64`] as a `usize`.
fn parse_count(v: &str) -> Result<usize, String> {
    parse_count_u64(v)
        .and_then(|n| usize::try_from(n).map_err(|_| format!("count \"{}\" too large", v.trim())))
}

/// Parse a duration such as `500ms`, `90s`, `15m`, `12h` or `30d`.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let expected = "(expected a positive number followed by ms, s, m, h or d, e.g. 15m)";
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid duration \"{v}\" {expected}"))?;
    if unit == "ms" {
        return match n {
            1..=86_400_000 => Ok(Duration::from_millis(n)),
            _ => Err(format!(
                "duration \"{v}\" out of range (expected between 1ms and 1d in ms)"
            )),
        };
    }
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => return Err(format!("invalid duration \"{v}\" {expected}")),
    };
    match secs {
        Some(s) if s > 0 && s <= 10 * 365 * 86_400 => Ok(Duration::from_secs(s)),
        _ => Err(format!(
            "duration \"{v}\" out of range (expected between 1s and 3650d)"
        )),
    }
}

/// Parse a size such as `512KiB`, `1MiB` or a plain number of bytes.
pub fn parse_size(v: &str) -> Result<usize, String> {
    let expected = "(expected a positive number with an optional unit B, KiB, MiB, GiB, KB, MB or GB, e.g. 1MiB)";
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size \"{v}\" {expected}"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(format!("invalid size \"{v}\" {expected}")),
    };
    match n.checked_mul(mult) {
        Some(bytes) if bytes > 0 && bytes <= (1 << 32) => {
            usize::try_from(bytes).map_err(|_| format!("size \"{v}\" too large"))
        }
        _ => Err(format!(
            "size \"{v}\" out of range (expected between 1B and 4GiB)"
        )),
    }
}

/// A Lua state's memory limit: a size of at least 1MiB (the sandbox
/// itself needs some).
fn parse_memory(v: &str) -> Result<usize, String> {
    let bytes = parse_size(v)?;
    if bytes < 1 << 20 {
        return Err(format!(
            "memory limit \"{}\" too small (expected at least 1MiB)",
            v.trim()
        ));
    }
    Ok(bytes)
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("invalid boolean \"{v}\" (expected true or false)")),
    }
}

fn parse_log_format(v: &str) -> Result<LogFormat, String> {
    match v.trim() {
        "pretty" => Ok(LogFormat::Pretty),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!(
            "invalid log format \"{v}\" (expected pretty or json)"
        )),
    }
}

fn parse_sync(v: &str) -> Result<SyncMode, String> {
    match v.trim() {
        "normal" => Ok(SyncMode::Normal),
        "full" => Ok(SyncMode::Full),
        _ => Err(format!(
            "invalid durability \"{v}\" (expected normal or full)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        for bad in [
            "",
            "15",
            "m",
            "0s",
            "-5m",
            "1.5h",
            "15 minutes",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        for bad in ["", "0", "1TiB", "MiB", "1.5MiB", "-1", "5GiB"] {
            assert!(parse_size(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn defaults_apply_without_sources() {
        let c = Config::resolve(&Flags::default(), &|_| None).expect("defaults");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.access_ttl, Duration::from_secs(900));
        assert_eq!(c.max_body, 1 << 20);
        assert!(c.watch);
        assert_eq!(c.sync, SyncMode::Normal);
    }

    #[test]
    fn flag_beats_env_beats_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plinth.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:3\"\naccess_ttl = \"1h\"\nwatch = false\n",
        )
        .expect("write");
        let path_s = path.to_string_lossy().into_owned();
        let flags = Flags {
            config: Some(path_s),
            listen: Some("127.0.0.1:1".into()),
            ..Flags::default()
        };
        let env = env_of(&[
            ("PLINTH_LISTEN", "127.0.0.1:2"),
            ("PLINTH_ACCESS_TTL", "2h"),
        ]);
        let c = Config::resolve(&flags, &env).expect("resolves");
        assert_eq!(c.listen.port(), 1);
        assert_eq!(c.access_ttl, Duration::from_secs(7200));
        assert!(!c.watch);
        let c = Config::resolve(
            &Flags {
                listen: None,
                ..flags
            },
            &env,
        )
        .expect("resolves");
        assert_eq!(c.listen.port(), 2);
    }

    #[test]
    fn bad_env_value_names_setting_and_source() {
        let env = env_of(&[("PLINTH_LISTEN", "nope")]);
        let err = Config::resolve(&Flags::default(), &env)
            .expect_err("bad address")
            .to_string();
        assert!(err.contains("listen address"), "{err}");
        assert!(err.contains("PLINTH_LISTEN"), "{err}");
        assert!(err.contains("\"nope\""), "{err}");
    }

    #[test]
    fn unknown_file_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plinth.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:3\"\n").expect("write");
        let flags = Flags {
            config: Some(path.to_string_lossy().into_owned()),
            ..Flags::default()
        };
        let err = Config::resolve(&flags, &|_| None)
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("unknown key `lisen`"), "{err}");
    }

    #[test]
    fn explicit_missing_manifest_dir_is_refused() {
        let env = env_of(&[("PLINTH_MANIFESTS_DIR", "/definitely/not/here")]);
        let err = Config::resolve(&Flags::default(), &env)
            .expect_err("missing dir")
            .to_string();
        assert!(err.contains("manifests dir"), "{err}");
        assert!(err.contains("does not exist"), "{err}");
    }

    /// The `plinth.toml` example and the settings table of the operator guide
    /// are what the code accepts.
    #[test]
    fn operator_guide_example_and_table_match_the_code() {
        let guide = include_str!("../sdk-docs/operator-guide.md");
        let start = guide.find("```toml\n").expect("toml example") + "```toml\n".len();
        let len = guide[start..].find("```").expect("end of example");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("plinth.toml");
        std::fs::write(&path, &guide[start..start + len]).expect("write");
        let existing = dir.path().to_string_lossy().into_owned();
        let flags = Flags {
            config: Some(path.to_string_lossy().into_owned()),
            manifests_dir: Some(existing.clone()),
            scripts_dir: Some(existing),
            ..Flags::default()
        };
        let c = Config::resolve(&flags, &|_| None).expect("documented example resolves");
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(
            c.active_plugins,
            Some(vec!["inventory".into(), "loyalty".into()])
        );
        for spec in ALL {
            assert!(
                guide.contains(&format!("`{}`", spec.env)),
                "{} documented",
                spec.env
            );
            assert!(
                guide.contains(&format!("`{}`", spec.key)),
                "key {} documented",
                spec.key
            );
        }
    }

    #[test]
    fn script_limits_are_settings_and_bad_ones_name_themselves() {
        let env = env_of(&[
            ("PLINTH_SCRIPT_TIMEOUT", "500ms"),
            ("PLINTH_SCRIPT_MAX_OPERATIONS", "5_000"),
            ("PLINTH_SCRIPT_MAX_STRING", "64KiB"),
        ]);
        let c = Config::resolve(&Flags::default(), &env).expect("valid limits");
        assert_eq!(c.script_limits.timeout, Duration::from_millis(500));
        assert_eq!(c.script_limits.max_operations, 5_000);
        assert_eq!(c.script_limits.max_string, 64 << 10);
        assert_eq!(c.script_limits.max_rows, 10_000, "default");
        assert_eq!(c.script_limits.max_memory, 64 << 20, "default");
        for (key, value) in [
            ("PLINTH_SCRIPT_MAX_ROWS", "0"),
            ("PLINTH_SCRIPT_MAX_MEMORY", "64KiB"),
            ("PLINTH_SCRIPT_MAX_MEMORY", "lots"),
            ("PLINTH_SCRIPT_MAX_CALL_DEPTH", "deep"),
            ("PLINTH_SCRIPT_TIMEOUT", "0ms"),
        ] {
            let pairs: &'static [(&'static str, &'static str)] =
                Box::leak(vec![(key, value)].into_boxed_slice());
            let err = Config::resolve(&Flags::default(), &env_of(pairs))
                .expect_err(key)
                .to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn malformed_admin_email_is_refused() {
        let env = env_of(&[("PLINTH_ADMIN_EMAIL", "not-an-address")]);
        let err = Config::resolve(&Flags::default(), &env)
            .expect_err("bad email")
            .to_string();
        assert!(err.contains("PLINTH_ADMIN_EMAIL"), "{err}");
    }

    #[test]
    fn uncreatable_data_dir_is_a_bad_setting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, "x").expect("write");
        let inside = file.join("data").to_string_lossy().into_owned();
        let flags = Flags {
            data_dir: Some(inside),
            ..Flags::default()
        };
        let env = |_: &str| None;
        let config = Config::resolve(&flags, &env).expect("resolves");
        let err = config
            .prepare_data_dir(&flags, &env)
            .expect_err("cannot create under a file")
            .to_string();
        assert!(
            err.contains("data dir") && err.contains("--data-dir"),
            "{err}"
        );
    }

    #[test]
    fn short_jwt_secret_is_refused() {
        let env = env_of(&[("PLINTH_JWT_SECRET", "short")]);
        let err = Config::resolve(&Flags::default(), &env)
            .expect_err("short secret")
            .to_string();
        assert!(err.contains("at least 32"), "{err}");
        assert!(
            !err.contains("short\""),
            "secret value must not be echoed: {err}"
        );
    }
}
