//! The script invocation running on this thread: the request's
//! transaction, caller, tenant, deadline, the stack of plugin frames (a hook
//! of another plugin runs in that plugin's frame) and the failure that ends
//! the request.
//!
//! Script engines hold values only by `'static` handles, so the host API
//! reaches the invocation through a thread-local set for the duration of a
//! call. Script calls are synchronous on one blocking thread; nested calls
//! (hooks run by a script's write) share the invocation.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use crate::auth::Principal;
use crate::plugins::registry::Snapshot;
use crate::plugins::{PluginError, PluginVersion, Registry};
use crate::storage::Tx;

/// One plugin frame: whose `ctx.plugin` and `ctx.settings` a call sees.
pub(crate) struct Frame {
    pub version: Arc<PluginVersion>,
    pub settings: OnceCell<Value>,
}

/// The running invocation.
pub(crate) struct Invocation {
    /// The request's transaction (read-only for GET routes).
    pub tx: Tx<'static>,
    /// The caller; `None` for system work (CLI install, default install).
    pub caller: Option<Principal>,
    /// The tenant everything is scoped to.
    pub tenant_id: String,
    /// For log lines.
    pub request_id: Option<String>,
    /// When the request's script time runs out.
    pub deadline: Instant,
    /// The runtime and the plugins' counters.
    pub registry: Registry,
    /// The loaded plugins as they were when the invocation began: another
    /// plugin reached through `requires` is seen at one version for the
    /// whole request, even if it reloads meanwhile.
    pub plugins: Arc<Snapshot>,
    /// Plugin frames; a `ctx` handle names its frame by index.
    pub frames: RefCell<Vec<Frame>>,
    /// Hooks currently running.
    pub hook_depth: Cell<usize>,
    /// A failure that ends the request (set before unwinding the script).
    pub pending: RefCell<Option<PluginError>>,
    /// A sandbox limit that ends the request, where the script was (Lua:
    /// set by the instruction hook before unwinding).
    pub ending: RefCell<Option<(super::FaultKind, super::ScriptError)>>,
    /// The last write refused to a script, as the value thrown into it, so
    /// that if it goes uncaught the request answers with that refusal.
    pub rejected: RefCell<Option<(Value, PluginError)>>,
    /// `ctx.tenant`, read once.
    pub tenant_json: OnceCell<Value>,
}

impl Invocation {
    /// Add a frame for `version`; returns its index.
    pub fn push_frame(&self, version: Arc<PluginVersion>) -> usize {
        let mut frames = self.frames.borrow_mut();
        frames.push(Frame {
            version,
            settings: OnceCell::new(),
        });
        frames.len() - 1
    }

    /// Remove the innermost frame.
    pub fn pop_frame(&self) {
        self.frames.borrow_mut().pop();
    }

    /// The version of a frame.
    pub fn version(&self, frame: usize) -> Option<Arc<PluginVersion>> {
        self.frames
            .borrow()
            .get(frame)
            .map(|f| Arc::clone(&f.version))
    }

    /// Whether the request's script time has run out.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Invocation>>> = const { RefCell::new(None) };
}

/// The invocation running on this thread, if any.
pub(crate) fn current() -> Option<Rc<Invocation>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Whether the running invocation's deadline has passed.
pub(crate) fn deadline_passed() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|i| i.expired()))
}

/// Restores the previous invocation (normally none) when dropped, so the
/// transaction handle never outlives the call that entered it.
pub(crate) struct Entered {
    previous: Option<Rc<Invocation>>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Make `invocation` the running one until the guard drops.
pub(crate) fn enter(invocation: Rc<Invocation>) -> Entered {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(invocation));
    Entered { previous }
}
