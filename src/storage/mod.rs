//! Storage: one SQLite file in WAL mode, a pool of read-only connections and
//! one writer connection behind a mutex (SQLite allows one writer at a time;
//! serializing here turns lock contention into a queue instead of
//! `SQLITE_BUSY`). Async writes are queued to one writer thread; reads run
//! on blocking threads; nothing runs on the async executor, and every call
//! runs inside one transaction.
//!
//! Nothing above this module writes SQL: the repositories (`tenants`,
//! `users`, `roles`, `tokens`, `audit`) are methods on [`Tx`], which is the one
//! seam a second engine would implement.

mod audit;
mod entities;
pub mod migrations;
mod plugin_schema;
mod plugin_state;
mod roles;
mod tenants;
mod tokens;
mod users;

pub use audit::{AuditEntry, NewAuditEntry};
pub use entities::{ColumnKind, Filter, FilterOp, ListSpec, SqlValue, TableShape};
pub use plugin_schema::ColumnType;
pub use plugin_state::InstallRow;
pub use roles::{PermissionRow, RoleRow};
pub use tenants::TenantRow;
pub use tokens::RefreshTokenRow;
pub use users::UserRow;

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{ArcMutexGuard, RawMutex};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};

use crate::config::SyncMode;

/// A storage failure. Constraint violations that callers can anticipate are
/// checked before writing; what reaches this type is a fault.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No read connection could be had.
    #[error("database pool error: {0}")]
    Pool(#[from] r2d2::Error),
    /// The data dir could not be prepared.
    #[error("data dir {path}: {message}")]
    DataDir {
        /// The folder.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A blocking task panicked or was cancelled.
    #[error("database task failed: {0}")]
    Task(String),
    /// A stored value could not be decoded.
    #[error("corrupt stored value in {0}")]
    Corrupt(&'static str),
}

/// An open transaction. Repositories are methods on this type.
///
/// It holds its connection (the writer's lock, or a pooled reader) by a
/// shared owned handle, so the script runtime can keep the request's
/// transaction for the duration of a script call ([`Tx::share`]) without
/// borrowing from this module's stack frame. The lifetime parameter keeps
/// the signatures of the repositories unchanged.
pub struct Tx<'a> {
    conn: Rc<Held>,
    _scope: PhantomData<&'a ()>,
}

/// The connection a transaction runs on.
enum Held {
    /// The one writer, locked for the whole transaction.
    Writer(ArcMutexGuard<RawMutex, Connection>),
    /// A read-only connection from the pool.
    Reader(r2d2::PooledConnection<SqliteConnectionManager>),
}

impl Held {
    fn conn(&self) -> &Connection {
        match self {
            Held::Writer(c) => c,
            Held::Reader(c) => c,
        }
    }
}

impl Tx<'_> {
    fn conn(&self) -> &Connection {
        self.conn.conn()
    }

    /// Another handle to this same transaction that does not borrow from
    /// the caller (it must not outlive the transaction's closure: the
    /// transaction ends when that closure returns, whoever holds handles).
    pub fn share(&self) -> Tx<'static> {
        Tx {
            conn: Rc::clone(&self.conn),
            _scope: PhantomData,
        }
    }

    /// Whether this transaction runs on a read-only connection.
    pub fn is_read_only(&self) -> bool {
        matches!(*self.conn, Held::Reader(_))
    }

    /// Run `f` inside a savepoint: its writes are kept when it returns `Ok`
    /// and undone when it fails, while the enclosing transaction goes on.
    pub fn savepoint<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<T, E>,
        E: From<StorageError>,
    {
        let run = |sql: &str| -> Result<(), StorageError> {
            self.conn().prepare_cached(sql)?.execute([])?;
            Ok(())
        };
        run("SAVEPOINT plinth_sp")?;
        match f(self) {
            Ok(v) => {
                run("RELEASE plinth_sp")?;
                Ok(v)
            }
            Err(e) => {
                // Savepoints nest by name: this undoes the innermost one.
                run("ROLLBACK TO plinth_sp")?;
                run("RELEASE plinth_sp")?;
                Err(e)
            }
        }
    }
}

/// Ends a transaction: rolls back unless committed (also on panic).
struct Finish<'a> {
    conn: &'a Connection,
    done: bool,
}

impl Finish<'_> {
    fn commit(mut self) -> Result<(), StorageError> {
        self.done = true;
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        Ok(())
    }
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// Counts of the read pool, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct PoolState {
    /// Connections open in the read pool.
    pub connections: u32,
    /// Of those, idle.
    pub idle: u32,
}

/// Handle to the database: cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<DbInner>,
}

struct DbInner {
    writer: Arc<parking_lot::Mutex<Connection>>,
    /// Queue of the writer thread (see [`Db::write`]).
    jobs: std::sync::mpsc::Sender<WriteJob>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    path: PathBuf,
}

const BUSY_TIMEOUT_MS: u32 = 5_000;
const READ_POOL_SIZE: u32 = 4;
/// Prepared statements kept per connection: every entity table has its own
/// statements, so the default of 16 would thrash with a few plugins.
const STATEMENT_CACHE: usize = 512;

impl Db {
    /// Open (creating if needed) `<data_dir>/plinth.db`.
    pub fn open(data_dir: &Path, sync: SyncMode) -> Result<Db, StorageError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StorageError::DataDir {
            path: data_dir.to_owned(),
            message: e.to_string(),
        })?;
        let path = data_dir.join("plinth.db");
        let writer = Connection::open(&path)?;
        writer.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        register_functions(&writer)?;
        let sync_pragma = match sync {
            SyncMode::Normal => "NORMAL",
            SyncMode::Full => "FULL",
        };
        // WAL must be set on a plain connection before the read-only pool opens.
        writer.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = {sync_pragma};
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};"
        ))?;
        let manager = SqliteConnectionManager::file(&path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(|c| {
                c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                register_functions(c)?;
                c.execute_batch(&format!(
                    "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};"
                ))
            });
        let readers = r2d2::Pool::builder()
            .max_size(READ_POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        Ok(Db {
            inner: Arc::new(DbInner {
                writer: Arc::new(parking_lot::Mutex::new(writer)),
                jobs: start_writer_thread()?,
                readers,
                path,
            }),
        })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Read-pool counts.
    pub fn pool_state(&self) -> PoolState {
        let s = self.inner.readers.state();
        PoolState {
            connections: s.connections,
            idle: s.idle_connections,
        }
    }

    /// Run `f` in a read transaction on a pooled read-only connection, on a
    /// blocking thread.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.read_blocking(f))
            .await
            .map_err(|e| E::from(StorageError::Task(e.to_string())))?
    }

    /// Run `f` in one write transaction (`BEGIN IMMEDIATE`) on the single
    /// writer, on a blocking thread. Commits when `f` returns `Ok`, rolls
    /// back otherwise.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    {
        let db = self.clone();
        let (done, answer) = tokio::sync::oneshot::channel();
        let job: WriteJob = Box::new(move || {
            let _ = done.send(db.write_blocking(f));
        });
        self.inner
            .jobs
            .send(job)
            .map_err(|_| E::from(StorageError::Task("the writer thread is gone".into())))?;
        answer
            .await
            .map_err(|_| E::from(StorageError::Task("a write panicked".into())))?
    }

    /// [`Db::read`] for callers already on a blocking thread.
    pub fn read_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<T, E>,
        E: From<StorageError>,
    {
        let conn = self.inner.readers.get().map_err(StorageError::from)?;
        conn.execute_batch("BEGIN").map_err(StorageError::from)?;
        let tx = Tx {
            conn: Rc::new(Held::Reader(conn)),
            _scope: PhantomData,
        };
        // A read transaction has nothing to commit; ending it releases the
        // snapshot (the guard rolls back when dropped).
        let _finish = Finish {
            conn: tx.conn(),
            done: false,
        };
        f(&tx)
    }

    /// [`Db::write`] for callers already on a blocking thread.
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<T, E>,
        E: From<StorageError>,
    {
        // The lock is held by the transaction itself, so a handle to it can
        // be kept by the script runtime for the duration of `f`.
        let conn = parking_lot::Mutex::lock_arc(&self.inner.writer);
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(StorageError::from)?;
        let tx = Tx {
            conn: Rc::new(Held::Writer(conn)),
            _scope: PhantomData,
        };
        let finish = Finish {
            conn: tx.conn(),
            done: false,
        };
        let out = f(&tx)?;
        finish.commit()?;
        Ok(out)
    }

    /// Check the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StorageError> {
        self.read(|tx| {
            tx.conn()
                .query_row("SELECT 1", [], |_| Ok(()))
                .map_err(StorageError::from)
        })
        .await
    }
}

/// A write transaction queued for the writer thread.
type WriteJob = Box<dyn FnOnce() + Send>;

/// Stack of the writer thread: write routes run scripts (and nested hooks) on it.
const WRITER_STACK: usize = 16 << 20;

/// The thread that runs every async write, one after another. Writers
/// queue here instead of each parking a blocking thread on the writer lock:
/// under load the lock would hand over between dozens of threads, and the
/// context switches cost more than the writes themselves.
fn start_writer_thread() -> Result<std::sync::mpsc::Sender<WriteJob>, StorageError> {
    let (jobs, queue) = std::sync::mpsc::channel::<WriteJob>();
    std::thread::Builder::new()
        .name("plinth-writer".into())
        .stack_size(WRITER_STACK)
        .spawn(move || {
            // Ends when the last `Db` handle (and so the sender) is dropped.
            while let Ok(job) = queue.recv() {
                // A panicking write rolled back (its guard dropped); the
                // waiting request sees its channel closed and answers 500.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })
        .map_err(|e| StorageError::Task(format!("cannot start the writer thread: {e}")))?;
    Ok(jobs)
}

/// SQL functions plinth's statements use: `plinth_fold(text)` lower-cases
/// with Unicode rules (SQLite's own `lower` and `LIKE` fold ASCII only).
fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "plinth_fold",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(match ctx.get_raw(0) {
                rusqlite::types::ValueRef::Text(t) => {
                    Some(String::from_utf8_lossy(t).to_lowercase())
                }
                rusqlite::types::ValueRef::Null => None,
                other => Some(match other {
                    rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                    rusqlite::types::ValueRef::Real(f) => f.to_string(),
                    _ => String::new(),
                }),
            })
        },
    )
}

/// Current time as RFC 3339 UTC with milliseconds (sorts lexically).
pub fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Map "no row" to `None`.
trait OptionalRow<T> {
    fn optional(self) -> Result<Option<T>, StorageError>;
}

impl<T> OptionalRow<T> for Result<T, rusqlite::Error> {
    fn optional(self) -> Result<Option<T>, StorageError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
