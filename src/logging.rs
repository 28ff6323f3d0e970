//! Logs to stderr in the configured format, written in batches by a
//! background thread: a request thread only appends its formatted line to a
//! buffer. Measured on the auth benchmark, one `write(2)` and one thread
//! wake-up per line cost about a tenth of `/api/auth/me` throughput;
//! batching every few milliseconds removes nearly all of it. Lines reach
//! stderr within [`FLUSH_EVERY`]; warnings and errors (such as the
//! generated admin password at first start) are written at once, in order;
//! everything is flushed at exit.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// Longest a log line waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Past this many buffered bytes the flusher is woken at once.
const WAKE_AT: usize = 64 * 1024;
/// Past this many buffered bytes writers flush themselves (backpressure when
/// stderr is slower than the log rate).
const CAP: usize = 8 * 1024 * 1024;

struct Shared {
    buf: Mutex<Vec<u8>>,
    wake: Condvar,
    closed: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The writer handed to the formatter: appends to the shared buffer.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
    /// Write through at once (warnings and errors).
    urgent: bool,
}

impl std::io::Write for BatchWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buf = self.shared.lock();
        buf.extend_from_slice(bytes);
        if self.urgent || buf.len() >= CAP {
            let data = std::mem::take(&mut *buf);
            // Holding the lock while writing makes other writers wait too.
            let _ = std::io::stderr().write_all(&data);
        } else if buf.len() >= WAKE_AT {
            self.shared.wake.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> BatchWriter {
        self.clone()
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> BatchWriter {
        BatchWriter {
            shared: Arc::clone(&self.shared),
            urgent: *meta.level() <= tracing::Level::WARN,
        }
    }
}

/// Flushes and stops the background writer when dropped.
pub struct LogGuard {
    shared: Arc<Shared>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        if let Some(handle) = self.flusher.take() {
            let _ = handle.join();
        }
    }
}

fn flush_loop(shared: &Shared) {
    loop {
        let data = {
            let buf = shared.lock();
            let (mut buf, _) = shared
                .wake
                .wait_timeout(buf, FLUSH_EVERY)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            std::mem::take(&mut *buf)
        };
        if !data.is_empty() {
            let _ = std::io::stderr().write_all(&data);
        }
        if shared.closed.load(Ordering::Acquire) && shared.lock().is_empty() {
            return;
        }
    }
}

/// Install the global subscriber (level from `RUST_LOG`, default `info`).
/// Keep the guard alive until exit.
pub fn init(format: LogFormat) -> LogGuard {
    let shared = Arc::new(Shared {
        buf: Mutex::new(Vec::with_capacity(WAKE_AT)),
        wake: Condvar::new(),
        closed: AtomicBool::new(false),
    });
    let for_thread = Arc::clone(&shared);
    let flusher = std::thread::Builder::new()
        .name("plinth-log".into())
        .spawn(move || flush_loop(&for_thread))
        .ok();
    let writer = BatchWriter {
        shared: Arc::clone(&shared),
        urgent: false,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    LogGuard { shared, flusher }
}
