//! Storage: one SQLite file in WAL mode, a pool of read-only connections and
//! one writer connection behind a mutex (SQLite allows one writer at a time;
//! serializing here turns lock contention into a queue instead of
//! `SQLITE_BUSY`). Every call runs on a blocking thread, never on the async
//! executor, and inside one transaction.
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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

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
pub struct Tx<'a> {
    conn: &'a Connection,
}

impl Tx<'_> {
    fn conn(&self) -> &Connection {
        self.conn
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
    writer: Mutex<Connection>,
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
                writer: Mutex::new(writer),
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
        tokio::task::spawn_blocking(move || db.write_blocking(f))
            .await
            .map_err(|e| E::from(StorageError::Task(e.to_string())))?
    }

    /// [`Db::read`] for callers already on a blocking thread.
    pub fn read_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<T, E>,
        E: From<StorageError>,
    {
        let conn = self.inner.readers.get().map_err(StorageError::from)?;
        let tx = conn.unchecked_transaction().map_err(StorageError::from)?;
        let out = f(&Tx { conn: &tx });
        // A read transaction has nothing to commit; ending it releases the snapshot.
        drop(tx);
        out
    }

    /// [`Db::write`] for callers already on a blocking thread.
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Tx<'_>) -> Result<T, E>,
        E: From<StorageError>,
    {
        // A panic inside a transaction drops (rolls back) it, so the
        // connection is still usable after poisoning.
        let mut conn = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StorageError::from)?;
        let out = f(&Tx { conn: &tx })?;
        tx.commit().map_err(StorageError::from)?;
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
