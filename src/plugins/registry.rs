//! The loaded plugins: an atomically swappable snapshot. A request clones
//! the `Arc` of the version it uses and keeps it to its end; loading builds
//! a whole new map off to the side and swaps it in.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::manifest::Manifest;
use crate::runtime::{FaultKind, PluginScripts, Runtime, ScriptFailure};

/// One loaded version of a plugin.
#[derive(Debug)]
pub struct PluginVersion {
    /// The validated manifest.
    pub manifest: Manifest,
    /// Its compiled scripts.
    pub scripts: PluginScripts,
    /// Manifest file as shown in messages.
    pub file: String,
    /// RFC 3339 time this version was loaded.
    pub loaded_at: String,
    /// Hash of the files it was built from ([`super::loader::fingerprint`]).
    pub fingerprint: u64,
}

/// Why a plugin is not loaded (shown by `plugin list` and health).
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Plugin name (the file stem).
    pub plugin: String,
    /// RFC 3339 time of the attempt.
    pub at: String,
    /// Each problem, located where possible.
    pub errors: Vec<String>,
    /// Hash of the files the refused version was built from.
    pub fingerprint: u64,
}

impl Refusal {
    /// The reload status this refusal stands for (its first problem).
    pub fn status(&self) -> ReloadStatus {
        ReloadStatus {
            at: self.at.clone(),
            error: Some(
                self.errors
                    .first()
                    .map(|e| Located::parse(e))
                    .unwrap_or_else(|| Located::parse("refused")),
            ),
        }
    }
}

/// Every loaded plugin by name, as one request sees them.
pub type Snapshot = BTreeMap<String, Arc<PluginVersion>>;

/// Where a load problem is: a manifest, a script or a migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file as shown in messages.
    pub file: String,
    /// 1-based line, where known.
    pub line: Option<usize>,
    /// 1-based column, where the parser or compiler gives one.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl Located {
    /// Split a problem line as the loaders print it —
    /// `file:line:col: message`, `file:line: message` or `file: message` —
    /// back into its parts (a 0 line or column means unknown).
    pub fn parse(text: &str) -> Located {
        let Some((head, message)) = text.split_once(": ") else {
            return Located {
                file: String::new(),
                line: None,
                column: None,
                message: text.to_owned(),
            };
        };
        fn trailing_number(s: &str) -> Option<(&str, usize)> {
            let (rest, n) = s.rsplit_once(':')?;
            Some((rest, n.parse().ok()?))
        }
        let (file, line, column) = match trailing_number(head) {
            Some((rest, last)) => match trailing_number(rest) {
                Some((file, line)) => (file, Some(line), Some(last)),
                None => (rest, Some(last), None),
            },
            None => (head, None, None),
        };
        Located {
            file: file.to_owned(),
            line: line.filter(|n| *n > 0),
            column: column.filter(|n| *n > 0),
            message: message.to_owned(),
        }
    }
}

/// How the last load or reload of a plugin went.
#[derive(Debug, Clone)]
pub struct ReloadStatus {
    /// RFC 3339 time of the attempt.
    pub at: String,
    /// The first problem of a refused version; `None` when it loaded.
    pub error: Option<Located>,
}

/// Latency samples kept per plugin for p50/p99.
const SAMPLES: usize = 1024;

/// The last script fault of a plugin, for its health.
#[derive(Debug, Clone)]
pub struct LastError {
    /// RFC 3339 time.
    pub at: String,
    /// runtime, limit or timeout.
    pub kind: FaultKind,
    /// Script file (empty when the fault has no location).
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// Column; `None` where the compiler gives none.
    pub column: Option<usize>,
    /// What went wrong.
    pub message: String,
}

/// Request counts and recent latencies of one plugin (kept across versions).
#[derive(Debug, Default)]
pub struct PluginStats {
    requests: AtomicU64,
    errors: AtomicU64,
    recent_us: Mutex<VecDeque<u64>>,
    /// Script faults by kind, in [`FaultKind::ALL`] order.
    faults: [AtomicU64; 3],
    last_error: Mutex<Option<LastError>>,
    /// Loads and reloads that succeeded / were refused.
    reloads: [AtomicU64; 2],
    last_reload: Mutex<Option<ReloadStatus>>,
}

/// A point-in-time view of [`PluginStats`].
#[derive(Debug, Clone, Copy)]
pub struct StatsSnapshot {
    /// Requests served.
    pub requests: u64,
    /// Of those, failed by a server or script fault.
    pub errors: u64,
    /// Median latency of the recent requests, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of the recent requests, ms.
    pub p99_ms: Option<f64>,
}

impl PluginStats {
    /// Count one request.
    pub fn record(&self, elapsed: Duration, error: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut recent = self
            .recent_us
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.len() == SAMPLES {
            recent.pop_front();
        }
        recent.push_back(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    /// Count a script fault and keep it as the last error.
    pub fn record_fault(&self, kind: FaultKind, error: &crate::runtime::ScriptError, at: String) {
        let i = FaultKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.faults[i].fetch_add(1, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(LastError {
            at,
            kind,
            file: error.file.clone(),
            line: error.line,
            column: error.column,
            message: error.message.clone(),
        });
    }

    /// Script faults by kind.
    pub fn faults(&self) -> [(FaultKind, u64); 3] {
        FaultKind::ALL.map(|k| {
            let i = FaultKind::ALL.iter().position(|x| *x == k).unwrap_or(0);
            (k, self.faults[i].load(Ordering::Relaxed))
        })
    }

    /// Count a load or reload and keep how it went.
    pub fn record_reload(&self, status: ReloadStatus) {
        let i = usize::from(status.error.is_some());
        self.reloads[i].fetch_add(1, Ordering::Relaxed);
        *self
            .last_reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(status);
    }

    /// How the last load or reload went.
    pub fn last_reload(&self) -> Option<ReloadStatus> {
        self.last_reload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// (succeeded, refused) loads and reloads.
    pub fn reloads(&self) -> (u64, u64) {
        (
            self.reloads[0].load(Ordering::Relaxed),
            self.reloads[1].load(Ordering::Relaxed),
        )
    }

    /// The last script fault.
    pub fn last_error(&self) -> Option<LastError> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Current counts and percentiles.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut sorted: Vec<u64> = self
            .recent_us
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        sorted.sort_unstable();
        let pct = |p: f64| -> Option<f64> {
            if sorted.is_empty() {
                return None;
            }
            let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
            Some(sorted[idx] as f64 / 1000.0)
        };
        StatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
        }
    }
}

/// Loaded plugins by name, and the script runtime they run on; cheap to
/// clone.
#[derive(Clone, Default)]
pub struct Registry {
    loaded: Arc<ArcSwap<Snapshot>>,
    refused: Arc<ArcSwap<BTreeMap<String, Refusal>>>,
    stats: Arc<Mutex<HashMap<String, Arc<PluginStats>>>>,
    runtime: Arc<Runtime>,
}

impl Registry {
    /// An empty registry whose scripts run on `runtime`.
    pub fn new(runtime: Runtime) -> Registry {
        Registry {
            runtime: Arc::new(runtime),
            ..Registry::default()
        }
    }

    /// The script runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Count a script failure against its plugin (faults only: a 4xx from
    /// `ctx.fail` or `ctx.require` is an answer, not a fault).
    pub fn record_failure(&self, failure: &ScriptFailure, at: String) {
        if let ScriptFailure::Fault {
            plugin,
            kind,
            error,
        } = failure
        {
            self.stats(plugin).record_fault(*kind, error, at);
        }
    }

    /// The current version of a plugin.
    pub fn get(&self, name: &str) -> Option<Arc<PluginVersion>> {
        self.loaded.load().get(name).cloned()
    }

    /// Every loaded plugin, by name.
    pub fn all(&self) -> Arc<Snapshot> {
        self.loaded.load_full()
    }

    /// Counters of a plugin (created on first use).
    pub fn stats(&self, name: &str) -> Arc<PluginStats> {
        let mut stats = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(stats.entry(name.to_owned()).or_default())
    }

    /// Plugins that failed to load, by name.
    pub fn refused(&self) -> Arc<BTreeMap<String, Refusal>> {
        self.refused.load_full()
    }

    /// Replace the whole set (start-up), counting each as a load.
    pub fn replace(&self, loaded: Vec<Arc<PluginVersion>>, refused: Vec<Refusal>) {
        for p in &loaded {
            self.stats(&p.manifest.name).record_reload(ReloadStatus {
                at: p.loaded_at.clone(),
                error: None,
            });
        }
        for r in &refused {
            self.stats(&r.plugin).record_reload(r.status());
        }
        self.loaded.store(Arc::new(
            loaded
                .into_iter()
                .map(|p| (p.manifest.name.clone(), p))
                .collect(),
        ));
        self.refused.store(Arc::new(
            refused.into_iter().map(|r| (r.plugin.clone(), r)).collect(),
        ));
    }

    /// Swap in a new version of one plugin (a request that already holds
    /// the old one keeps it to its end).
    pub fn swap_in(&self, version: Arc<PluginVersion>) {
        let name = version.manifest.name.clone();
        self.stats(&name).record_reload(ReloadStatus {
            at: version.loaded_at.clone(),
            error: None,
        });
        self.loaded.rcu(|current| {
            let mut next = Snapshot::clone(current);
            next.insert(name.clone(), Arc::clone(&version));
            next
        });
        self.refused.rcu(|current| {
            let mut next = BTreeMap::clone(current);
            next.remove(&name);
            next
        });
    }

    /// Record a refused version: the loaded one (if any) keeps serving; a
    /// plugin that has none is listed as refused.
    pub fn refuse(&self, refusal: Refusal) {
        self.stats(&refusal.plugin).record_reload(refusal.status());
        if self.get(&refusal.plugin).is_none() {
            self.refused.rcu(|current| {
                let mut next = BTreeMap::clone(current);
                next.insert(refusal.plugin.clone(), refusal.clone());
                next
            });
        }
    }

    /// Stop serving a plugin (its manifest is gone); returns whether it
    /// was loaded.
    pub fn unload(&self, name: &str) -> bool {
        let was = self.get(name).is_some();
        self.loaded.rcu(|current| {
            let mut next = Snapshot::clone(current);
            next.remove(name);
            next
        });
        self.refused.rcu(|current| {
            let mut next = BTreeMap::clone(current);
            next.remove(name);
            next
        });
        was
    }
}

#[cfg(test)]
mod tests {
    use super::Located;

    #[test]
    fn located_problem_lines_split_into_file_line_column_and_message() {
        let l = Located::parse("scripts/inv/a.rhai:3:14: Expecting ';'");
        assert_eq!(
            (l.file.as_str(), l.line, l.column, l.message.as_str()),
            ("scripts/inv/a.rhai", Some(3), Some(14), "Expecting ';'")
        );
        let l = Located::parse("m/x.toml:2:0: entities.a: unknown key");
        assert_eq!((l.line, l.column), (Some(2), None));
        assert_eq!(l.message, "entities.a: unknown key");
        let l = Located::parse("m/x.toml:7: bad");
        assert_eq!(
            (l.file.as_str(), l.line, l.column),
            ("m/x.toml", Some(7), None)
        );
        let l = Located::parse("m/x.toml: schema change refused: a: b");
        assert_eq!(
            (l.file.as_str(), l.line, l.column),
            ("m/x.toml", None, None)
        );
        assert_eq!(l.message, "schema change refused: a: b");
        let l = Located::parse("no location at all");
        assert_eq!(
            (l.file.as_str(), l.message.as_str()),
            ("", "no location at all")
        );
    }
}
