//! The loaded plugins: an atomically swappable snapshot. A request clones
//! the `Arc` of the version it uses and keeps it to its end; loading builds
//! a whole new map off to the side and swaps it in.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::manifest::Manifest;

/// One loaded version of a plugin.
#[derive(Debug)]
pub struct PluginVersion {
    /// The validated manifest.
    pub manifest: Manifest,
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

/// Loaded plugins by name; cheap to clone.
#[derive(Clone, Default)]
pub struct Registry {
    loaded: Arc<ArcSwap<Snapshot>>,
    refused: Arc<ArcSwap<BTreeMap<String, Refusal>>>,
}

impl Registry {
    /// The current version of a plugin.
    pub fn get(&self, name: &str) -> Option<Arc<PluginVersion>> {
        self.loaded.load().get(name).cloned()
    }

    /// Every loaded plugin, by name.
    pub fn all(&self) -> Arc<Snapshot> {
        self.loaded.load_full()
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
