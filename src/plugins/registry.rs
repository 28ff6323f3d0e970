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
}

type Snapshot = BTreeMap<String, Arc<PluginVersion>>;

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

    /// Replace the whole set.
    pub fn replace(&self, loaded: Vec<Arc<PluginVersion>>, refused: Vec<Refusal>) {
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
}
