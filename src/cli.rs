//! The command line: `plinth [serve]`, `plinth migrate`, `plinth tenant
//! create`, `plinth user create`.
//!
//! Exit codes: 0 success; 1 the operation failed (e.g. a taken slug, a
//! refused input, the port in use); 2 bad usage or a bad setting.

use std::io::BufRead as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::accounts::{NewTenant, NewTenantAdmin, NewUser, ServiceError};
use crate::app::{App, open_platform};
use crate::config::{Config, Flags};

/// Exit code for a failed operation.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad usage or a bad setting.
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "plinth",
    version,
    about = "Multi-tenant application server extended by scripted plugins",
    after_help = "Exit codes: 0 success, 1 operation failed, 2 bad usage or bad setting.\n\
                  Settings: flag > PLINTH_* environment variable > plinth.toml > default."
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Debug, Default)]
struct GlobalArgs {
    /// Config file (also PLINTH_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<String>,
    /// Data dir: SQLite file and secrets (also PLINTH_DATA_DIR; default ./data).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<String>,
    /// Plugin manifests folder (also PLINTH_MANIFESTS_DIR; default ./plugin-manifests).
    #[arg(long, global = true, value_name = "DIR")]
    manifests_dir: Option<String>,
    /// Plugin scripts folder (also PLINTH_SCRIPTS_DIR; default ./scripts).
    #[arg(long, global = true, value_name = "DIR")]
    scripts_dir: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
    /// Apply core migrations and plugin schema changes, then exit. Idempotent.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Check, list, install and uninstall plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Subcommand, Debug)]
enum PluginCommand {
    /// Loaded plugins, their versions, and per-tenant status.
    List,
    /// Validate manifests (and migration file names); print every error as
    /// file:line:col: key: message; exit 1 if any.
    Check {
        /// Plugins to check (default: every manifest found).
        names: Vec<String>,
    },
    /// Install a plugin for a tenant (seeds its grants once).
    Install {
        /// Plugin name.
        name: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Uninstall a plugin from a tenant (data is kept).
    Uninstall {
        /// Plugin name.
        name: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Args, Debug, Default)]
struct ServeArgs {
    /// Address to listen on (also PLINTH_LISTEN; default 127.0.0.1:8080).
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Pin one tenant (single-customer mode; also PLINTH_TENANT).
    #[arg(long, value_name = "SLUG")]
    tenant: Option<String>,
    /// Do not watch plugin folders for changes (also PLINTH_WATCH=false).
    #[arg(long)]
    no_watch: bool,
    /// Development mode: fault details in error responses.
    #[arg(long)]
    dev: bool,
}

#[derive(Subcommand, Debug)]
enum TenantCommand {
    /// Create a tenant with its built-in roles and a SUPER_ADMIN user.
    Create(TenantCreateArgs),
}

#[derive(Args, Debug)]
struct TenantCreateArgs {
    /// Slug: [a-z0-9][a-z0-9-]{1,39}.
    #[arg(long)]
    slug: String,
    /// Display name.
    #[arg(long)]
    name: String,
    /// The tenant's SUPER_ADMIN e-mail.
    #[arg(long)]
    admin_email: String,
    /// Admin display name.
    #[arg(long)]
    admin_name: Option<String>,
    #[command(flatten)]
    password: AdminPasswordArgs,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct AdminPasswordArgs {
    /// Admin password (visible in shell history; prefer the two options below).
    #[arg(long, value_name = "PASSWORD")]
    admin_password: Option<String>,
    /// Read the admin password from this environment variable.
    #[arg(long, value_name = "VAR")]
    admin_password_env: Option<String>,
    /// Read the admin password from the first line of standard input.
    #[arg(long)]
    admin_password_stdin: bool,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user in a tenant.
    Create(UserCreateArgs),
}

#[derive(Args, Debug)]
struct UserCreateArgs {
    /// Tenant slug.
    #[arg(long)]
    tenant: String,
    /// E-mail.
    #[arg(long)]
    email: String,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// Role name; repeat for several.
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// Operator account: may manage tenants.
    #[arg(long)]
    platform_admin: bool,
    #[command(flatten)]
    password: PasswordArgs,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct PasswordArgs {
    /// Password (visible in shell history; prefer the two options below).
    #[arg(long, value_name = "PASSWORD")]
    password: Option<String>,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

/// Parse arguments, run the command, return the exit code.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EXIT_USAGE),
            };
        }
    };
    let serve_args = match &cli.command {
        Some(Command::Serve(a)) => Some(a),
        None => None,
        _ => None,
    };
    let default_serve = ServeArgs::default();
    let serve = serve_args.unwrap_or(&default_serve);
    let flags = Flags {
        config: cli.global.config.clone(),
        listen: serve.listen.clone(),
        data_dir: cli.global.data_dir.clone(),
        manifests_dir: cli.global.manifests_dir.clone(),
        scripts_dir: cli.global.scripts_dir.clone(),
        tenant: serve.tenant.clone(),
        no_watch: serve.no_watch,
        dev: serve.dev,
    };
    let env = |k: &str| std::env::var(k).ok();
    let config = match Config::resolve(&flags, &env).and_then(|c| {
        c.prepare_data_dir(&flags, &env)?;
        Ok(c)
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("plinth: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let _log_guard = crate::logging::init(config.log_format);

    // Scripts run on the blocking threads; nested hooks each bring up to the
    // call-depth limit of script frames, more than the default 2 MiB holds.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(SCRIPT_THREAD_STACK)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plinth: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            None | Some(Command::Serve(_)) => serve_command(config).await,
            Some(Command::Migrate) => migrate_command(&config).await,
            Some(Command::Tenant(TenantCommand::Create(args))) => {
                tenant_create(&config, args).await
            }
            Some(Command::User(UserCommand::Create(args))) => user_create(&config, args).await,
            Some(Command::Plugin(cmd)) => plugin_command(&config, cmd).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plinth: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn serve_command(config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let app = App::build(&config).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "plinth listening on http://{addr}");
    #[cfg(unix)]
    {
        // SIGHUP reloads every plugin by hand (also with watching off).
        let reloads = app.reload_handle();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading plugins");
                        reloads.reload_all();
                    }
                });
            }
            Err(e) => tracing::warn!("cannot listen for SIGHUP: {e}"),
        }
    }
    app.serve(listener, shutdown).await?;
    tracing::info!("plinth stopped");
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when
/// this is called, not when the future is first polled (axum polls it
/// from a task of its own, which may run after the first request is
/// served): a SIGTERM right after start-up must stop the server cleanly,
/// not kill it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (term, int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {},
                () = wait(int) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received; finishing in-flight requests");
    }
}

/// Stack of the runtime's threads (see `run`).
const SCRIPT_THREAD_STACK: usize = 16 << 20;

async fn migrate_command(config: &Config) -> anyhow::Result<()> {
    let db = crate::storage::Db::open(&config.data_dir, config.sync)?;
    let plugin_config = config.clone();
    let (applied, report) = tokio::task::spawn_blocking(move || {
        let applied = crate::storage::migrations::apply(&db)?;
        db.write_blocking(crate::accounts::sync_core_permissions)?;
        let runtime = crate::runtime::Runtime::new(plugin_config.script_limits);
        let report = crate::plugins::loader::load_all(&db, &plugin_config, &runtime);
        Ok::<_, crate::storage::StorageError>((applied, report))
    })
    .await??;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        for name in applied {
            println!("applied {name}");
        }
    }
    for p in &report.loaded {
        println!(
            "plugin {} {}: schema up to date",
            p.manifest.name, p.manifest.version
        );
    }
    for r in &report.refused {
        for e in &r.errors {
            println!("{e}");
        }
    }
    if !report.refused.is_empty() {
        anyhow::bail!("{} plugin(s) refused", report.refused.len());
    }
    Ok(())
}

fn read_secret(
    literal: Option<String>,
    env_var: Option<String>,
    stdin: bool,
    what: &str,
) -> anyhow::Result<String> {
    if let Some(p) = literal {
        return Ok(p);
    }
    if let Some(var) = env_var {
        return std::env::var(&var)
            .with_context(|| format!("{what}: environment variable {var} is not set"));
    }
    if stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .with_context(|| format!("{what}: cannot read standard input"))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    anyhow::bail!("{what}: no password given")
}

fn explain(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::Invalid { detail, errors } => {
            let lines: Vec<String> = errors
                .iter()
                .map(|f| format!("  {}: {}", f.field, f.message))
                .collect();
            anyhow::anyhow!("{detail}\n{}", lines.join("\n"))
        }
        other => anyhow::anyhow!(other),
    }
}

async fn tenant_create(config: &Config, args: TenantCreateArgs) -> anyhow::Result<()> {
    let password = read_secret(
        args.password.admin_password,
        args.password.admin_password_env,
        args.password.admin_password_stdin,
        "admin password",
    )?;
    let accounts = open_platform(config).await?.accounts;
    let tenant = accounts
        .create_tenant(
            None,
            NewTenant {
                slug: args.slug,
                name: args.name,
                admin: NewTenantAdmin {
                    email: args.admin_email,
                    password,
                    name: args.admin_name,
                },
            },
        )
        .await
        .map_err(explain)?;
    println!("{}", serde_json::to_string(&tenant)?);
    Ok(())
}

async fn user_create(config: &Config, args: UserCreateArgs) -> anyhow::Result<()> {
    let password = read_secret(
        args.password.password,
        args.password.password_env,
        args.password.password_stdin,
        "password",
    )?;
    let accounts = open_platform(config).await?.accounts;
    let user = accounts
        .create_user_in(
            &args.tenant,
            NewUser {
                email: args.email,
                password,
                name: args.name,
                roles: args.roles,
            },
            args.platform_admin,
        )
        .await
        .map_err(explain)?;
    println!("{}", serde_json::to_string(&user)?);
    Ok(())
}

async fn plugin_command(config: &Config, cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::Check { names } => plugin_check(config, &names),
        PluginCommand::List => {
            let platform = open_platform(config).await?;
            let db = platform.accounts.db().clone();
            for (name, p) in platform.plugins.registry().all().iter() {
                let plugin = name.clone();
                let statuses = db
                    .read(move |tx| tx.plugin_install_statuses(&plugin))
                    .await?;
                let tenants: Vec<String> = statuses
                    .into_iter()
                    .map(|(slug, status)| format!("{slug}={status}"))
                    .collect();
                println!(
                    "{name} {} {} loaded {}",
                    p.manifest.version,
                    p.manifest.runtime.as_str(),
                    tenants.join(" ")
                );
            }
            for (name, refusal) in platform.plugins.registry().refused().iter() {
                println!(
                    "{name} refused ({} errors; see plinth plugin check)",
                    refusal.errors.len()
                );
            }
            Ok(())
        }
        PluginCommand::Install { name, tenant } => {
            let platform = open_platform(config).await?;
            let tenant_id = platform.plugins.tenant_id(&tenant).await?;
            let view = platform
                .plugins
                .install_in(&tenant_id, &name, None, None)
                .await?;
            println!("{}", serde_json::to_string(&view)?);
            Ok(())
        }
        PluginCommand::Uninstall { name, tenant } => {
            let platform = open_platform(config).await?;
            let tenant_id = platform.plugins.tenant_id(&tenant).await?;
            let view = platform
                .plugins
                .uninstall_in(&tenant_id, &name, None, None)
                .await?;
            println!("{}", serde_json::to_string(&view)?);
            Ok(())
        }
    }
}

/// Static check of manifests and migration names (no database).
fn plugin_check(config: &Config, names: &[String]) -> anyhow::Result<()> {
    let mut scoped = config.clone();
    if !names.is_empty() {
        scoped.active_plugins = Some(names.to_vec());
    }
    let checked = crate::plugins::loader::check_all(&scoped);
    let mut failed = 0usize;
    for name in names {
        let found = checked
            .iter()
            .any(|(p, _)| p.file_stem().and_then(|s| s.to_str()) == Some(name.as_str()));
        if !found {
            println!(
                "{}: no manifest {name}.toml",
                crate::plugins::loader::display_path(&config.manifests_dir)
            );
            failed += 1;
        }
    }
    for (path, result) in &checked {
        let script_errors = match result {
            Ok((m, _)) => crate::runtime::check_plugin_scripts(
                m,
                &crate::plugins::loader::display_path(path),
                &config.scripts_dir,
            ),
            Err(_) => Vec::new(),
        };
        if !script_errors.is_empty() {
            failed += 1;
            for e in &script_errors {
                println!("{e}");
            }
            continue;
        }
        match result {
            Ok((m, migrations)) => println!(
                "{}: ok ({} {}, {} entities, {} migrations)",
                crate::plugins::loader::display_path(path),
                m.name,
                m.version,
                m.entities.len(),
                migrations.len()
            ),
            Err(errors) => {
                failed += 1;
                for e in errors {
                    println!("{e}");
                }
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} plugin(s) have errors");
    }
    Ok(())
}
