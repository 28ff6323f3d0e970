//! Wiring: [`App::build`] opens storage, applies migrations, loads the JWT
//! secret, bootstraps the first tenant; [`App::serve`] runs the HTTP server
//! on a given listener until a shutdown future resolves, then drains
//! in-flight requests (bounded).

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::accounts::{Accounts, BootstrapOutcome, ServiceError};
use crate::auth::token::{TokenKeys, random_hex};
use crate::config::Config;
use crate::http::{self, AppState, Services};
use crate::plugins::loader::{self, LoadReport};
use crate::plugins::reload::{ReloadRequest, Reloader};
use crate::plugins::{Plugins, Registry};
use crate::runtime::watcher::Change;
use crate::storage::{Db, StorageError, migrations};

/// How long in-flight requests may take to finish after shutdown begins.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// First start failed.
    #[error("bootstrap: {0}")]
    Bootstrap(#[from] ServiceError),
    /// The JWT secret file could not be read or written.
    #[error("JWT secret file {path}: {message}")]
    Secret {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// A built application, ready to serve.
pub struct App {
    state: AppState,
    config: Config,
    reloads: ReloadHandle,
    reload_rx: std::sync::mpsc::Receiver<ReloadRequest>,
}

/// Asks the running server to reload its plugins (`SIGHUP`, the watcher);
/// cheap to clone. Requests made before [`App::serve`] starts wait for it.
#[derive(Clone)]
pub struct ReloadHandle(std::sync::mpsc::Sender<ReloadRequest>);

impl ReloadHandle {
    /// Reload every plugin (new and deleted manifests too), as `SIGHUP` does.
    pub fn reload_all(&self) {
        let _ = self.0.send(ReloadRequest::All { force: true });
    }

    fn send(&self, request: ReloadRequest) {
        let _ = self.0.send(request);
    }
}

impl App {
    /// Open storage, migrate, bootstrap. Safe to call on an initialised data dir.
    pub async fn build(config: &Config) -> Result<App, StartError> {
        let Platform {
            accounts, plugins, ..
        } = open_platform(config).await?;
        match accounts
            .bootstrap(
                config.tenant.clone(),
                config.admin_email.clone(),
                config.admin_password.clone(),
            )
            .await?
        {
            BootstrapOutcome::AlreadyInitialised => {}
            BootstrapOutcome::Created {
                tenant,
                email,
                generated_password,
            } => match generated_password {
                Some(password) => tracing::warn!(
                    tenant,
                    email,
                    "first start: created tenant and SUPER_ADMIN; generated password (shown once): {password}"
                ),
                None => {
                    tracing::info!(tenant, email, "first start: created tenant and SUPER_ADMIN")
                }
            },
        }
        let state = AppState::new(Services {
            db: accounts.db().clone(),
            accounts,
            plugins,
            max_body: config.max_body,
            dev: config.dev,
            ready: Arc::new(AtomicBool::new(false)),
            metrics: Arc::default(),
        });
        state.ready.store(true, Ordering::Release);
        let (tx, reload_rx) = std::sync::mpsc::channel();
        Ok(App {
            state,
            config: config.clone(),
            reloads: ReloadHandle(tx),
            reload_rx,
        })
    }

    /// A handle to ask for reloads while the server runs.
    pub fn reload_handle(&self) -> ReloadHandle {
        self.reloads.clone()
    }

    /// The router (for tests that drive it without a socket).
    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }

    /// The accounts service.
    pub fn accounts(&self) -> &Accounts {
        &self.state.accounts
    }

    /// Serve on `listener` until `shutdown` resolves, then stop accepting and
    /// give in-flight requests up to [`DRAIN_TIMEOUT`] to finish.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        let App {
            state,
            config,
            reloads,
            reload_rx,
        } = self;
        let _reloading = start_reloading(&state, &config, reloads, reload_rx)?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let signalled = async move {
            shutdown.await;
            let _ = tx.send(true);
        };
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signalled);
        let mut rx_deadline = rx.clone();
        let deadline = async move {
            let _ = rx_deadline.wait_for(|s| *s).await;
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        };
        tokio::select! {
            result = server => result,
            () = deadline => {
                tracing::warn!("shutdown: in-flight requests did not finish in {DRAIN_TIMEOUT:?}; exiting");
                Ok(())
            }
        }
    }
}

/// The reload thread (and the folder watch feeding it) of a serving app;
/// dropping it stops both.
struct Reloading {
    reloads: ReloadHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    _watch: Option<crate::runtime::watcher::FolderWatch>,
}

impl Drop for Reloading {
    fn drop(&mut self) {
        self.reloads.send(ReloadRequest::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Stack of the reload thread (compiling deeply nested scripts recurses).
const RELOAD_STACK: usize = 16 << 20;

/// Start the reload thread on `rx`, and the folder watcher feeding it
/// unless watching is off.
fn start_reloading(
    state: &AppState,
    config: &Config,
    reloads: ReloadHandle,
    rx: std::sync::mpsc::Receiver<ReloadRequest>,
) -> std::io::Result<Reloading> {
    let accounts = state.accounts.clone();
    let registry = state.plugins.registry().clone();
    let reloader = Reloader::new(
        state.db.clone(),
        config.clone(),
        registry,
        Arc::new(move || accounts.invalidate_principals()),
    );
    let thread = std::thread::Builder::new()
        .name("plinth-reload".to_owned())
        .stack_size(RELOAD_STACK)
        .spawn(move || reloader.run(&rx))?;
    let watch = if config.watch {
        let folders = vec![config.manifests_dir.clone(), config.scripts_dir.clone()];
        let (to_reload, watch_config) = (reloads.clone(), config.clone());
        let started = crate::runtime::watcher::watch(&folders, move |change| {
            let request = match change {
                Change::Rescan => ReloadRequest::All { force: false },
                Change::Paths(paths) => {
                    let names: std::collections::BTreeSet<String> = paths
                        .iter()
                        .filter_map(|p| crate::plugins::reload::plugin_of(&watch_config, p))
                        .collect();
                    if names.is_empty() {
                        return;
                    }
                    ReloadRequest::Plugins(names)
                }
            };
            to_reload.send(request);
        });
        match started {
            Ok(watch) => {
                tracing::info!("watching plugin folders for changes");
                Some(watch)
            }
            Err(e) => {
                tracing::warn!("plugin folders are not watched: {e}");
                None
            }
        }
    } else {
        tracing::info!("watching plugin folders is off (SIGHUP reloads)");
        None
    };
    // Files saved between loading and watching: one rescan picks them up.
    reloads.send(ReloadRequest::All { force: false });
    Ok(Reloading {
        reloads,
        thread: Some(thread),
        _watch: watch,
    })
}

/// The services over one data dir, ready for the server or a CLI command.
pub struct Platform {
    /// Core records and sessions.
    pub accounts: Accounts,
    /// Plugin operations (and the registry).
    pub plugins: Plugins,
    /// What loading the plugins found.
    pub load: LoadReport,
}

/// Open and migrate the database, load the plugins (their tables and
/// permissions), and build the services (also used by the CLI commands that
/// work on the data dir directly).
pub async fn open_platform(config: &Config) -> Result<Platform, StartError> {
    let db = Db::open(&config.data_dir, config.sync)?;
    let db_for_migrations = db.clone();
    tokio::task::spawn_blocking(move || migrations::apply(&db_for_migrations))
        .await
        .map_err(|e| StorageError::Task(e.to_string()))??;
    let secret = match &config.jwt_secret {
        Some(s) => s.clone(),
        None => load_or_create_secret(&config.data_dir)?,
    };
    let keys = TokenKeys::new(&secret, config.access_ttl);
    let registry = Registry::new(crate::runtime::Runtime::new(config.script_limits));
    let accounts = Accounts::new(
        db.clone(),
        keys,
        config.refresh_ttl,
        config.tenant.clone(),
        registry.clone(),
    );
    accounts
        .db()
        .write(crate::accounts::sync_core_permissions)
        .await?;
    let (load_db, load_config, load_registry) = (db.clone(), config.clone(), registry.clone());
    let load = tokio::task::spawn_blocking(move || {
        loader::load_all(&load_db, &load_config, load_registry.runtime())
    })
    .await
    .map_err(|e| StorageError::Task(e.to_string()))?;
    registry.replace(load.loaded.clone(), load.refused.clone());
    accounts.invalidate_principals();
    Ok(Platform {
        accounts,
        plugins: Plugins::new(db, registry),
        load,
    })
}

/// Read `<data dir>/jwt_secret`, or create it (mode 0600) with 32 random bytes
/// written as 64 hex characters (the characters are the key).
fn load_or_create_secret(data_dir: &Path) -> Result<Vec<u8>, StartError> {
    let path = data_dir.join("jwt_secret");
    let fail = |message: String| StartError::Secret {
        path: path.display().to_string(),
        message,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let secret = text.trim().as_bytes().to_vec();
            if secret.len() < 32 {
                return Err(fail(format!(
                    "secret is {} bytes long (expected at least 32)",
                    secret.len()
                )));
            }
            Ok(secret)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = random_hex(32);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&path).map_err(|e| fail(e.to_string()))?;
            file.write_all(secret.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| fail(e.to_string()))?;
            Ok(secret.into_bytes())
        }
        Err(e) => Err(fail(e.to_string())),
    }
}
