//! A small pool of dedicated threads for argon2 work. Hashing is CPU-bound
//! by design (tens of milliseconds); on these threads it yields the CPU to
//! request handling (see `auth::password`), which keeps a burst of logins
//! from adding latency to every other request, and the pool bounds how many
//! hashes run at once (one per thread). A job that waited in the queue for
//! longer than [`STARVED_AFTER`] (the CPU is saturated) computes at normal
//! priority, so logins still finish under full load.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::storage::StorageError;

type Job = Box<dyn FnOnce() + Send>;

/// Queue wait after which a job no longer yields to requests.
pub(super) const STARVED_AFTER: Duration = Duration::from_millis(500);

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

    /// Queue `f` on a hashing thread without waiting for it.
    pub(super) fn submit(&self, f: impl FnOnce() + Send + 'static) {
        let job: Job = Box::new(f);
        let _ = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(job);
    }

    /// Run `f` on a hashing thread and await its result.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let queued = Instant::now();
        let job: Job = Box::new(move || {
            crate::auth::password::set_yield_to_requests(queued.elapsed() < STARVED_AFTER);
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
