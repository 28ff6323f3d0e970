//! Watching the plugin folders (notify + notify-debouncer-full): recursive
//! watches on the manifests and scripts folders, not on single files, so
//! editors that save through a temp file and a rename are seen like any
//! write. Events are debounced (a burst of saves settles on the last one)
//! and handed on as the set of changed paths; when the OS drops events the
//! handler is told to rescan everything.

use std::path::PathBuf;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

/// Quiet time after the last event before a change is handed on.
pub const DEBOUNCE: Duration = Duration::from_millis(40);

/// What the watcher saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// These paths were created, written, renamed or removed.
    Paths(Vec<PathBuf>),
    /// Events were lost (queue overflow, watch error): look at everything.
    Rescan,
}

/// A running watch; dropping it stops watching.
pub struct FolderWatch {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

/// Watch `folders` recursively and call `on_change` (on the watcher's own
/// thread) after each settled burst. Folders that do not exist are
/// skipped with a warning; an error means nothing could be watched.
pub fn watch(
    folders: &[PathBuf],
    mut on_change: impl FnMut(Change) + Send + 'static,
) -> Result<FolderWatch, String> {
    let mut debouncer =
        new_debouncer(
            DEBOUNCE,
            None,
            move |result: DebounceEventResult| match result {
                Ok(events) => {
                    if events.iter().any(|e| e.need_rescan()) {
                        on_change(Change::Rescan);
                        return;
                    }
                    let mut paths: Vec<PathBuf> = events
                        .iter()
                        .filter(|e| relevant(&e.kind))
                        .flat_map(|e| e.paths.iter().cloned())
                        .collect();
                    paths.sort();
                    paths.dedup();
                    if !paths.is_empty() {
                        on_change(Change::Paths(paths));
                    }
                }
                Err(errors) => {
                    for e in &errors {
                        tracing::warn!("plugin folder watch: {e}; rescanning");
                    }
                    on_change(Change::Rescan);
                }
            },
        )
        .map_err(|e| format!("cannot start watching: {e}"))?;
    let mut watched = 0;
    for folder in folders {
        if !folder.is_dir() {
            tracing::warn!(folder = %folder.display(), "not watching a folder that does not exist");
            continue;
        }
        match debouncer.watch(folder, RecursiveMode::Recursive) {
            Ok(()) => watched += 1,
            Err(e) => tracing::warn!(folder = %folder.display(), "cannot watch: {e}"),
        }
    }
    if watched == 0 && !folders.is_empty() {
        return Err("no plugin folder could be watched".to_owned());
    }
    Ok(FolderWatch {
        _debouncer: debouncer,
    })
}

/// Writes, creations, removals and renames count; reads and other access
/// events do not (except a writer closing its file).
fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Other => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RemoveKind, RenameMode};

    #[test]
    fn only_changes_count() {
        assert!(relevant(&EventKind::Create(CreateKind::File)));
        assert!(relevant(&EventKind::Modify(ModifyKind::Name(
            RenameMode::Both
        ))));
        assert!(relevant(&EventKind::Remove(RemoveKind::File)));
        assert!(relevant(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!relevant(&EventKind::Access(AccessKind::Read)));
        assert!(!relevant(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
    }
}
