//! Live reload of plugins: for each plugin whose files changed, build a
//! complete new version off to the side ([`loader::build_version`]: manifest
//! validated, every script compiled, schema change checked and applied in
//! one transaction) and swap it in; a refused version leaves the previous
//! one serving and is recorded for the plugin's health and metrics. Plugins
//! reload independently. A deleted (or no longer active) manifest unloads
//! its plugin; its tables and rows stay.
//!
//! Reloads run one at a time on the caller's (blocking) thread; the watcher
//! and `SIGHUP` feed them through [`Reloader::run`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use super::loader;
use super::registry::Registry;
use crate::config::Config;
use crate::storage::Db;

/// What to reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadRequest {
    /// These plugins (by name) changed on disk.
    Plugins(BTreeSet<String>),
    /// Look at every plugin: new and deleted manifests too. `force`
    /// rebuilds plugins whose files look unchanged (`SIGHUP`); without it
    /// only changed ones are rebuilt (a rescan after lost events).
    All {
        /// Rebuild even unchanged plugins.
        force: bool,
    },
    /// Stop the reload loop.
    Stop,
}

/// What one reload did, by plugin.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Plugins with a new version now serving.
    pub reloaded: Vec<String>,
    /// Plugins whose new version was refused (the old one, if any, serves).
    pub refused: Vec<String>,
    /// Plugins no longer served (manifest deleted or no longer active).
    pub unloaded: Vec<String>,
}

/// Rebuilds plugin versions and swaps them into the registry.
pub struct Reloader {
    db: Db,
    config: Config,
    registry: Registry,
    /// Called after any change to permissions or grants (cached principals
    /// must be recomputed).
    on_change: Arc<dyn Fn() + Send + Sync>,
    /// Fingerprint of the files each plugin was last built from.
    seen: BTreeMap<String, u64>,
}

impl Reloader {
    /// A reloader over the plugins loaded at start from `config`'s folders.
    pub fn new(
        db: Db,
        config: Config,
        registry: Registry,
        on_change: Arc<dyn Fn() + Send + Sync>,
    ) -> Reloader {
        let mut reloader = Reloader {
            db,
            config,
            registry,
            on_change,
            seen: BTreeMap::new(),
        };
        // What each plugin was built from at start; a file saved since then
        // is picked up by the first rescan.
        for (name, version) in reloader.registry.all().iter() {
            reloader.seen.insert(name.clone(), version.fingerprint);
        }
        for (name, refusal) in reloader.registry.refused().iter() {
            reloader.seen.insert(name.clone(), refusal.fingerprint);
        }
        reloader
    }

    /// Serve requests from `rx` until [`ReloadRequest::Stop`] or the sender
    /// is gone; requests that queued up meanwhile are merged into one.
    pub fn run(mut self, rx: &Receiver<ReloadRequest>) {
        while let Ok(first) = rx.recv() {
            let mut request = first;
            while let Ok(next) = rx.try_recv() {
                request = merge(request, next);
            }
            if request == ReloadRequest::Stop {
                return;
            }
            self.reload(&request);
        }
    }

    /// Carry out one request.
    pub fn reload(&mut self, request: &ReloadRequest) -> ReloadOutcome {
        let (names, force): (BTreeSet<String>, bool) = match request {
            // Only a real change rebuilds: an editor's swap file or a
            // `touch` does not (SIGHUP forces a rebuild).
            ReloadRequest::Plugins(names) => (names.clone(), false),
            ReloadRequest::All { force } => (self.known(), *force),
            ReloadRequest::Stop => return ReloadOutcome::default(),
        };
        let mut outcome = ReloadOutcome::default();
        for name in names {
            self.reload_one(&name, force, &mut outcome);
        }
        if outcome != ReloadOutcome::default() {
            (self.on_change)();
        }
        outcome
    }

    fn reload_one(&mut self, name: &str, force: bool, outcome: &mut ReloadOutcome) {
        let path = self.manifest_path(name);
        if !self.is_active(name) || !path.is_file() {
            self.seen.remove(name);
            let was_refused = self.registry.refused().contains_key(name);
            if self.registry.unload(name) {
                tracing::info!(plugin = %name, "plugin unloaded (its manifest is gone); data kept");
                let loaded: Vec<String> = self.registry.all().keys().cloned().collect();
                loader::retire_unloaded(&self.db, &loaded);
                outcome.unloaded.push(name.to_owned());
            } else if was_refused {
                outcome.unloaded.push(name.to_owned());
            }
            return;
        }
        let print = self.fingerprint(name);
        if !force && self.seen.get(name) == Some(&print) {
            return;
        }
        self.seen.insert(name.to_owned(), print);
        let taken: Vec<(String, String)> = self
            .registry
            .all()
            .values()
            .filter(|v| v.manifest.name != name)
            .flat_map(|v| loader::tables_of(&v.manifest).collect::<Vec<_>>())
            .collect();
        let started = std::time::Instant::now();
        match loader::build_version(
            &self.db,
            &self.config,
            self.registry.runtime(),
            &path,
            &taken,
        ) {
            Ok(version) => {
                tracing::info!(
                    plugin = %name,
                    version = %version.manifest.version,
                    ms = started.elapsed().as_secs_f64() * 1000.0,
                    "plugin reloaded"
                );
                self.registry.swap_in(version);
                outcome.reloaded.push(name.to_owned());
            }
            Err(refusal) => {
                tracing::warn!(
                    plugin = %name,
                    "plugin reload refused; the previous version (if any) keeps serving"
                );
                self.registry.refuse(refusal);
                outcome.refused.push(name.to_owned());
            }
        }
    }

    /// Every plugin worth a look: manifests on disk, loaded and refused.
    fn known(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = loader::discover(&self.config)
            .iter()
            .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_owned))
            .collect();
        names.extend(self.registry.all().keys().cloned());
        names.extend(self.registry.refused().keys().cloned());
        names
    }

    fn manifest_path(&self, name: &str) -> PathBuf {
        self.config.manifests_dir.join(format!("{name}.toml"))
    }

    fn is_active(&self, name: &str) -> bool {
        self.config
            .active_plugins
            .as_ref()
            .is_none_or(|active| active.iter().any(|a| a == name))
    }

    fn fingerprint(&self, name: &str) -> u64 {
        loader::fingerprint(&self.config, name)
    }
}

/// Two queued requests as one.
fn merge(a: ReloadRequest, b: ReloadRequest) -> ReloadRequest {
    use ReloadRequest::{All, Plugins, Stop};
    match (a, b) {
        (Stop, _) | (_, Stop) => Stop,
        (All { force: x }, All { force: y }) => All { force: x || y },
        (All { force }, Plugins(_)) | (Plugins(_), All { force }) => All { force },
        (Plugins(mut x), Plugins(y)) => {
            x.extend(y);
            Plugins(x)
        }
    }
}

/// The plugin a changed path belongs to: `<manifests>/<name>.toml` or
/// anything under `<scripts>/<name>/`.
pub fn plugin_of(config: &Config, path: &Path) -> Option<String> {
    let under = |root: &Path| -> Option<PathBuf> {
        path.strip_prefix(root)
            .ok()
            .map(Path::to_path_buf)
            .or_else(|| {
                let root = std::fs::canonicalize(root).ok()?;
                path.strip_prefix(&root).ok().map(Path::to_path_buf)
            })
    };
    if let Some(rest) = under(&config.manifests_dir) {
        let mut parts = rest.components();
        let first = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let file = Path::new(first.as_os_str());
        if file.extension().is_some_and(|x| x == "toml") {
            return file.file_stem()?.to_str().map(str::to_owned);
        }
        return None;
    }
    if let Some(rest) = under(&config.scripts_dir) {
        // `<scripts>/<name>` itself too (a deleted folder); a stray file
        // directly in the scripts folder names no manifest and is a no-op.
        let first = rest.components().next()?;
        return first.as_os_str().to_str().map(str::to_owned);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_requests_merge() {
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        assert_eq!(
            merge(
                ReloadRequest::Plugins(set(&["a"])),
                ReloadRequest::Plugins(set(&["b"]))
            ),
            ReloadRequest::Plugins(set(&["a", "b"]))
        );
        assert_eq!(
            merge(
                ReloadRequest::All { force: false },
                ReloadRequest::Plugins(set(&["a"]))
            ),
            ReloadRequest::All { force: false }
        );
        assert_eq!(
            merge(
                ReloadRequest::All { force: false },
                ReloadRequest::All { force: true }
            ),
            ReloadRequest::All { force: true }
        );
        assert_eq!(
            merge(ReloadRequest::Stop, ReloadRequest::All { force: true }),
            ReloadRequest::Stop
        );
    }

    #[test]
    fn changed_paths_map_to_their_plugin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_data_dir(dir.path().join("d"));
        config.manifests_dir = dir.path().join("m");
        config.scripts_dir = dir.path().join("s");
        let m = &config.manifests_dir;
        let s = &config.scripts_dir;
        assert_eq!(
            plugin_of(&config, &m.join("inv.toml")).as_deref(),
            Some("inv")
        );
        assert_eq!(plugin_of(&config, &m.join(".inv.toml.swp")), None);
        assert_eq!(plugin_of(&config, &m.join("notes.txt")), None);
        assert_eq!(
            plugin_of(&config, &s.join("inv/a.rhai")).as_deref(),
            Some("inv")
        );
        assert_eq!(
            plugin_of(&config, &s.join("inv/lib/b.rhai")).as_deref(),
            Some("inv")
        );
        assert_eq!(plugin_of(&config, &s.join("inv")).as_deref(), Some("inv"));
        assert_eq!(plugin_of(&config, Path::new("/elsewhere/inv.toml")), None);
    }
}
