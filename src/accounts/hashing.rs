//! A small pool of dedicated threads for argon2 work. Hashing is CPU-bound
//! by design (tens of milliseconds); running it on these threads, at a lower
//! scheduling priority than the request handlers, keeps a burst of logins
//! from adding latency to every other request, and bounds how many hashes
//! run at once (one per thread).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::storage::StorageError;

type Job = Box<dyn FnOnce() + Send>;

/// Threads fed from one queue; they exit when the pool is dropped.
pub(super) struct HashPool {
    queue: Mutex<mpsc::Sender<Job>>,
}

impl HashPool {
    /// Start `threads` hashing threads.
    pub(super) fn new(threads: usize) -> HashPool {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("plinth-hash-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = {
                            let guard =
                                rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                            guard.recv()
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => break,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start password hashing thread: {e}");
            }
        }
        HashPool {
            queue: Mutex::new(tx),
        }
    }

    /// Run `f` on a hashing thread and await its result.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(job)
            .map_err(|_| StorageError::Task("password hashing threads stopped".into()))?;
        rx.await
            .map_err(|_| StorageError::Task("password hashing job was dropped".into()))
    }
}

/// SCHED_BATCH at about nice 10: the scheduler lets request threads preempt
/// hashing at once, while hashing still gets a fair share under load.
fn lower_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let Ok(value) = ThreadPriorityValue::try_from(25u8) else {
        return;
    };
    if let Err(e) = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
    ) {
        tracing::debug!("cannot lower the priority of the hashing thread: {e:?}");
    }
}
