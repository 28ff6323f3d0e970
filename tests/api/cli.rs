//! The `plinth` binary: help, usage errors, `migrate`, `tenant create`,
//! `user create`, and configuration errors that stop start-up with exit 2.
//!
//! Every command runs the real executable with a temp folder as working
//! directory, its `data` sub-folder as `--data-dir`, no inherited `PLINTH_*`
//! variables, and a deadline so a command that unexpectedly starts serving
//! cannot hang the suite. `lifecycle.rs` reuses [`plinth`] and [`run`].

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plinth::app::App;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Long enough for argon2 in a debug build on a busy machine.
pub(crate) const COMMAND_DEADLINE: Duration = Duration::from_secs(60);
/// Config errors are reported before anything is opened.
const CONFIG_ERROR_DEADLINE: Duration = Duration::from_secs(10);

/// The data dir used under a test's working folder.
pub(crate) fn data_dir_in(work: &Path) -> PathBuf {
    work.join("data")
}

/// `plinth --data-dir <work>/data`, run in `work`, with no `PLINTH_*`
/// variables from the caller's environment and `RUST_LOG=warn`.
pub(crate) fn plinth(work: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plinth"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PLINTH_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "warn")
        .current_dir(work)
        .arg("--data-dir")
        .arg(data_dir_in(work));
    cmd
}

/// What a finished command did.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Exit code (`None` if ended by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Run `cmd` to completion, feeding `stdin` when given; kills it and panics
/// if it is still running after `deadline`.
pub(crate) fn run(cmd: &mut Command, stdin: Option<&str>, deadline: Duration) -> Outcome {
    let mut out = tempfile::tempfile().expect("stdout file");
    let mut err = tempfile::tempfile().expect("stderr file");
    cmd.stdout(Stdio::from(out.try_clone().expect("clone stdout file")))
        .stderr(Stdio::from(err.try_clone().expect("clone stderr file")))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().expect("plinth starts");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(text.as_bytes()).expect("write stdin");
        // dropping the pipe closes the child's stdin
    }
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut stderr = String::new();
            let _ = err.seek(SeekFrom::Start(0));
            let _ = err.read_to_string(&mut stderr);
            panic!("{cmd:?} still running after {deadline:?}; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    out.seek(SeekFrom::Start(0)).expect("rewind stdout");
    out.read_to_string(&mut stdout).expect("read stdout");
    let mut stderr = String::new();
    err.seek(SeekFrom::Start(0)).expect("rewind stderr");
    err.read_to_string(&mut stderr).expect("read stderr");
    Outcome {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// Run `plinth <args>` in `work` and return what it did.
fn plinth_run(work: &Path, args: &[&str], stdin: Option<&str>) -> Outcome {
    run(plinth(work).args(args), stdin, COMMAND_DEADLINE)
}

/// `plinth tenant create` with a literal password; asserts exit 0.
fn create_tenant(work: &Path, slug: &str, email: &str, password: &str) -> Value {
    let out = plinth_run(
        work,
        &[
            "tenant",
            "create",
            "--slug",
            slug,
            "--name",
            &format!("Tenant {slug}"),
            "--admin-email",
            email,
            "--admin-password",
            password,
        ],
        None,
    );
    assert_eq!(out.code, Some(0), "tenant create {slug}: {out:?}");
    serde_json::from_str(out.stdout.trim()).expect("tenant JSON on stdout")
}

/// A server built in-process on a data dir the CLI prepared (no bootstrap
/// happens there: the CLI already created a tenant).
struct InProcess {
    base: String,
    client: reqwest::Client,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcess {
    async fn start(data_dir: &Path) -> InProcess {
        let config = test_config(data_dir);
        let app = App::build(&config).await.expect("app builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.serve(listener, async move {
            let _ = rx.await;
        }));
        InProcess {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
            shutdown,
            server,
        }
    }

    async fn login(&self, email: &str, password: &str) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}/api/auth/login", self.base))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login sent");
        split(resp).await
    }

    /// Log in and return `/api/auth/me` (panics unless both succeed).
    async fn me(&self, email: &str, password: &str) -> Value {
        let (status, login) = self.login(email, password).await;
        assert_eq!(status, StatusCode::OK, "login {email}: {login}");
        let token = login["access_token"].as_str().expect("access_token");
        let resp = self
            .client
            .get(format!("{}/api/auth/me", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("me sent");
        let (status, me) = split(resp).await;
        assert_eq!(status, StatusCode::OK, "me {email}: {me}");
        me
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.server.await.expect("server task").expect("server io");
    }
}

#[test]
fn help_of_every_command_exits_0_and_lists_its_flags() {
    let work = tempfile::tempdir().expect("temp dir");
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--help"],
            &[
                "serve",
                "migrate",
                "tenant",
                "user",
                "--config",
                "--data-dir",
            ],
        ),
        (
            &["serve", "--help"],
            &["--listen", "--tenant", "--no-watch", "--dev", "--data-dir"],
        ),
        (&["migrate", "--help"], &["--data-dir", "--config"]),
        (
            &["tenant", "create", "--help"],
            &[
                "--slug",
                "--name",
                "--admin-email",
                "--admin-password",
                "--admin-password-env",
                "--admin-password-stdin",
            ],
        ),
        (
            &["user", "create", "--help"],
            &[
                "--tenant",
                "--email",
                "--password",
                "--password-env",
                "--password-stdin",
                "--role",
                "--platform-admin",
            ],
        ),
    ];
    for (args, flags) in cases {
        let out = plinth_run(work.path(), args, None);
        assert_eq!(out.code, Some(0), "plinth {args:?}: {out:?}");
        for flag in *flags {
            assert!(
                out.stdout.contains(flag),
                "plinth {args:?} should mention {flag}:\n{}",
                out.stdout
            );
        }
    }
    assert!(
        !data_dir_in(work.path()).exists(),
        "help must not create the data dir"
    );
}

#[test]
fn bad_usage_exits_2_with_a_message_on_stderr() {
    let work = tempfile::tempdir().expect("temp dir");
    let cases: &[(&[&str], &str)] = &[
        (&["frobnicate"], "frobnicate"),
        (&["serve", "--no-such-flag"], "--no-such-flag"),
        (
            &[
                "tenant",
                "create",
                "--name",
                "Acme",
                "--admin-email",
                "a@acme.test",
                "--admin-password",
                PASSWORD,
            ],
            "--slug",
        ),
        (
            &[
                "tenant",
                "create",
                "--slug",
                "acme",
                "--name",
                "Acme",
                "--admin-email",
                "a@acme.test",
            ],
            "--admin-password",
        ),
        (
            &[
                "tenant",
                "create",
                "--slug",
                "acme",
                "--name",
                "Acme",
                "--admin-email",
                "a@acme.test",
                "--admin-password",
                PASSWORD,
                "--admin-password-stdin",
            ],
            "--admin-password",
        ),
        (
            &[
                "user",
                "create",
                "--tenant",
                "acme",
                "--email",
                "u@acme.test",
            ],
            "--password",
        ),
        (&["tenant"], "create"),
    ];
    for (args, named) in cases {
        let out = plinth_run(work.path(), args, None);
        assert_eq!(out.code, Some(2), "plinth {args:?}: {out:?}");
        assert!(
            out.stderr.contains(named),
            "plinth {args:?} stderr should name {named}: {}",
            out.stderr
        );
    }
    assert!(
        !data_dir_in(work.path()).exists(),
        "bad usage must not create the data dir"
    );
}

#[test]
fn migrate_applies_the_core_schema_once_then_reports_up_to_date() {
    let work = tempfile::tempdir().expect("temp dir");

    let first = plinth_run(work.path(), &["migrate"], None);
    assert_eq!(first.code, Some(0), "{first:?}");
    assert!(
        first.stdout.contains("applied 0001_core.sql"),
        "{}",
        first.stdout
    );
    assert!(data_dir_in(work.path()).join("plinth.db").is_file());

    let second = plinth_run(work.path(), &["migrate"], None);
    assert_eq!(second.code, Some(0), "{second:?}");
    assert!(
        second.stdout.contains("database is up to date"),
        "{}",
        second.stdout
    );
    assert!(
        !second.stdout.contains("applied"),
        "nothing applied twice: {}",
        second.stdout
    );
}

#[tokio::test]
async fn tenant_create_prints_the_tenant_and_its_super_admin_can_log_in() {
    let work = tempfile::tempdir().expect("temp dir");

    let tenant = create_tenant(work.path(), "acme", "boss@acme.test", PASSWORD);

    assert_eq!(tenant["slug"], "acme");
    assert_eq!(tenant["name"], "Tenant acme");
    assert_eq!(tenant["active"], true);
    assert!(
        tenant["id"]
            .as_str()
            .is_some_and(|id| uuid_like(id) && id.as_bytes()[14] == b'7'),
        "UUID v7 id in {tenant}"
    );
    assert!(tenant["created_at"].is_string(), "{tenant}");

    let server = InProcess::start(&data_dir_in(work.path())).await;
    let me = server.me("boss@acme.test", PASSWORD).await;
    assert_eq!(me["tenant"]["id"], tenant["id"]);
    assert_eq!(me["tenant"]["slug"], "acme");
    assert_eq!(me["roles"], json!(["SUPER_ADMIN"]));
    assert_eq!(me["user"]["platform_admin"], false);
    let (status, _) = server.login("boss@acme.test", "wrong-password-1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[test]
fn tenant_create_with_a_taken_slug_exits_1_naming_the_slug() {
    let work = tempfile::tempdir().expect("temp dir");
    create_tenant(work.path(), "acme", "boss@acme.test", PASSWORD);

    let out = plinth_run(
        work.path(),
        &[
            "tenant",
            "create",
            "--slug",
            "acme",
            "--name",
            "Another",
            "--admin-email",
            "other@acme.test",
            "--admin-password",
            PASSWORD,
        ],
        None,
    );

    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("acme"), "{}", out.stderr);
    assert!(out.stdout.trim().is_empty(), "no tenant printed: {out:?}");
}

#[test]
fn tenant_create_with_bad_input_exits_1_naming_the_field() {
    let work = tempfile::tempdir().expect("temp dir");
    // (slug, email, password, field named on stderr)
    let cases = [
        ("Acme", "a@acme.test", PASSWORD, "slug"),
        ("a", "a@acme.test", PASSWORD, "slug"),
        ("-acme", "a@acme.test", PASSWORD, "slug"),
        ("acme", "a@acme.test", "short", "password"),
        ("acme", "not-an-email", PASSWORD, "email"),
    ];
    for (slug, email, password, field) in cases {
        let out = plinth_run(
            work.path(),
            &[
                "tenant",
                "create",
                // `=` so a slug starting with '-' is a value, not a flag
                &format!("--slug={slug}"),
                "--name",
                "Acme",
                "--admin-email",
                email,
                "--admin-password",
                password,
            ],
            None,
        );
        assert_eq!(out.code, Some(1), "{slug}/{email}/{password}: {out:?}");
        assert!(
            out.stderr.contains(field),
            "stderr should name {field}: {}",
            out.stderr
        );
        assert!(out.stdout.trim().is_empty(), "{out:?}");
    }
    // None of them created the tenant: the slug is still free.
    create_tenant(work.path(), "acme", "a@acme.test", PASSWORD);
}

#[tokio::test]
async fn admin_password_can_come_from_an_environment_variable_or_stdin() {
    let work = tempfile::tempdir().expect("temp dir");
    let base = |slug: &str| {
        let mut cmd = plinth(work.path());
        cmd.args([
            "tenant",
            "create",
            "--slug",
            slug,
            "--name",
            slug,
            "--admin-email",
            &format!("admin@{slug}.test"),
        ]);
        cmd
    };

    let from_env = run(
        base("viaenv")
            .args(["--admin-password-env", "ACME_ADMIN_PW"])
            .env("ACME_ADMIN_PW", "env-password-123"),
        None,
        COMMAND_DEADLINE,
    );
    assert_eq!(from_env.code, Some(0), "{from_env:?}");

    let from_stdin = run(
        base("viastdin").arg("--admin-password-stdin"),
        Some("stdin-password-123\n"),
        COMMAND_DEADLINE,
    );
    assert_eq!(from_stdin.code, Some(0), "{from_stdin:?}");

    let unset = run(
        base("unset")
            .args(["--admin-password-env", "PLINTH_TEST_UNSET_VAR"])
            .env_remove("PLINTH_TEST_UNSET_VAR"),
        None,
        COMMAND_DEADLINE,
    );
    assert_eq!(unset.code, Some(1), "{unset:?}");
    assert!(
        unset.stderr.contains("PLINTH_TEST_UNSET_VAR"),
        "{}",
        unset.stderr
    );

    let server = InProcess::start(&data_dir_in(work.path())).await;
    let me = server.me("admin@viaenv.test", "env-password-123").await;
    assert_eq!(me["tenant"]["slug"], "viaenv");
    let me = server.me("admin@viastdin.test", "stdin-password-123").await;
    assert_eq!(me["tenant"]["slug"], "viastdin");
    // The newline ending the stdin line is not part of the password.
    let (status, _) = server
        .login("admin@viastdin.test", "stdin-password-123\n")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.stop().await;
}

#[tokio::test]
async fn user_create_with_password_on_stdin_makes_a_user_that_can_log_in_with_its_role() {
    let work = tempfile::tempdir().expect("temp dir");
    create_tenant(work.path(), "acme", "boss@acme.test", PASSWORD);

    let out = plinth_run(
        work.path(),
        &[
            "user",
            "create",
            "--tenant",
            "acme",
            "--email",
            "viewer@acme.test",
            "--password-stdin",
            "--role",
            "VIEWER",
        ],
        Some("viewer-password-1\n"),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let user: Value = serde_json::from_str(out.stdout.trim()).expect("user JSON on stdout");
    assert_eq!(user["email"], "viewer@acme.test");
    assert_eq!(user["roles"], json!(["VIEWER"]));
    assert_eq!(user["platform_admin"], false);
    assert!(user.get("password_hash").is_none(), "{user}");
    assert!(!out.stdout.contains("argon2"), "no hash printed: {out:?}");

    // Several roles, an operator account, and the password from a variable.
    let operator = run(
        plinth(work.path())
            .args([
                "user",
                "create",
                "--tenant",
                "acme",
                "--email",
                "ops@acme.test",
                "--password-env",
                "OPS_PASSWORD",
                "--role",
                "ADMIN",
                "--role",
                "EMPLOYEE",
                "--platform-admin",
            ])
            .env("OPS_PASSWORD", "operator-password-1"),
        None,
        COMMAND_DEADLINE,
    );
    assert_eq!(operator.code, Some(0), "{operator:?}");

    let server = InProcess::start(&data_dir_in(work.path())).await;
    let me = server.me("viewer@acme.test", "viewer-password-1").await;
    assert_eq!(me["user"]["id"], user["id"]);
    assert_eq!(me["tenant"]["slug"], "acme");
    assert_eq!(me["roles"], json!(["VIEWER"]));
    assert_eq!(me["permissions"], json!([]));
    let me = server.me("ops@acme.test", "operator-password-1").await;
    let mut roles: Vec<String> = serde_json::from_value(me["roles"].clone()).expect("roles");
    roles.sort();
    assert_eq!(roles, ["ADMIN", "EMPLOYEE"]);
    assert_eq!(me["user"]["platform_admin"], true);
    server.stop().await;
}

#[test]
fn user_create_with_an_unknown_tenant_or_role_or_bad_input_exits_1() {
    let work = tempfile::tempdir().expect("temp dir");
    create_tenant(work.path(), "acme", "boss@acme.test", PASSWORD);
    // (tenant, email, password, role, text on stderr)
    let cases = [
        ("nope", "u@acme.test", PASSWORD, "VIEWER", "nope"),
        (
            "acme",
            "u@acme.test",
            PASSWORD,
            "NO_SUCH_ROLE",
            "NO_SUCH_ROLE",
        ),
        ("acme", "u@acme.test", "short", "VIEWER", "password"),
        ("acme", "not-an-email", PASSWORD, "VIEWER", "email"),
        (
            "acme",
            "boss@acme.test",
            PASSWORD,
            "VIEWER",
            "boss@acme.test",
        ),
    ];
    for (tenant, email, password, role, named) in cases {
        let out = plinth_run(
            work.path(),
            &[
                "user",
                "create",
                "--tenant",
                tenant,
                "--email",
                email,
                "--password-stdin",
                "--role",
                role,
            ],
            Some(&format!("{password}\n")),
        );
        assert_eq!(out.code, Some(1), "{tenant}/{email}/{role}: {out:?}");
        assert!(
            out.stderr.contains(named),
            "stderr should name {named}: {}",
            out.stderr
        );
        assert!(out.stdout.trim().is_empty(), "{out:?}");
    }
}

#[test]
fn a_bad_setting_exits_2_with_one_line_naming_it_and_its_source_before_starting() {
    let work = tempfile::tempdir().expect("temp dir");
    let write_toml = |name: &str, text: &str| -> String {
        let path = work.path().join(name);
        std::fs::write(&path, text).expect("write toml");
        path.to_string_lossy().into_owned()
    };
    // Every file binds port 0, so a server that wrongly starts cannot
    // collide with anything (and hits the deadline instead).
    let unknown_key = write_toml(
        "unknown-key.toml",
        "listen = \"127.0.0.1:0\"\nlisen = \"oops\"\n",
    );
    let bad_value = write_toml(
        "bad-value.toml",
        "listen = \"127.0.0.1:0\"\naccess_ttl = \"forever\"\n",
    );
    let good = write_toml(
        "good.toml",
        "listen = \"127.0.0.1:0\"\naccess_ttl = \"15m\"\n",
    );
    let missing = work.path().join("missing.toml");
    let missing = missing.to_string_lossy().into_owned();
    let (unknown_key, bad_value, good, missing) = (
        unknown_key.as_str(),
        bad_value.as_str(),
        good.as_str(),
        missing.as_str(),
    );

    struct Case<'a> {
        env: &'a [(&'a str, &'a str)],
        args: &'a [&'a str],
        /// Texts the one line must contain.
        names: &'a [&'a str],
        /// Texts it must not contain (secrets, sources that lost).
        never: &'a [&'a str],
    }
    let any_port = ("PLINTH_LISTEN", "127.0.0.1:0");
    let cases = [
        Case {
            env: &[("PLINTH_LISTEN", "nope")],
            args: &["serve"],
            names: &["listen address", "PLINTH_LISTEN", "nope"],
            never: &[],
        },
        Case {
            env: &[],
            args: &["serve", "--listen", "nope"],
            names: &["listen address", "--listen", "nope"],
            never: &[],
        },
        // flag beats environment: the error names the flag only
        Case {
            env: &[any_port],
            args: &["serve", "--listen", "127.0.0.1:99999"],
            names: &["--listen", "99999"],
            never: &["PLINTH_LISTEN"],
        },
        Case {
            env: &[any_port, ("PLINTH_ACCESS_TTL", "15x")],
            args: &["serve"],
            names: &["access token lifetime", "PLINTH_ACCESS_TTL", "15x"],
            never: &[],
        },
        // environment beats file: the file's valid value does not hide it
        Case {
            env: &[("PLINTH_ACCESS_TTL", "15x")],
            args: &["--config", good, "serve"],
            names: &["PLINTH_ACCESS_TTL", "15x"],
            never: &[good],
        },
        Case {
            env: &[any_port, ("PLINTH_REFRESH_TTL", "0s")],
            args: &["serve"],
            names: &["PLINTH_REFRESH_TTL"],
            never: &[],
        },
        Case {
            env: &[any_port, ("PLINTH_MAX_BODY", "lots")],
            args: &["serve"],
            names: &["largest request body", "PLINTH_MAX_BODY", "lots"],
            never: &[],
        },
        Case {
            env: &[any_port, ("PLINTH_JWT_SECRET", "hunter2-shortsecret")],
            args: &["serve"],
            names: &["JWT secret", "PLINTH_JWT_SECRET", "32"],
            never: &["hunter2-shortsecret"],
        },
        Case {
            env: &[any_port, ("PLINTH_ADMIN_PASSWORD", "tiny-pw")],
            args: &["serve"],
            names: &["PLINTH_ADMIN_PASSWORD"],
            never: &["tiny-pw"],
        },
        Case {
            env: &[],
            args: &["--config", unknown_key, "serve"],
            names: &["lisen", unknown_key, "--config"],
            never: &[],
        },
        Case {
            env: &[("PLINTH_CONFIG", unknown_key)],
            args: &["serve"],
            names: &["lisen", unknown_key, "PLINTH_CONFIG"],
            never: &[],
        },
        Case {
            env: &[],
            args: &["--config", bad_value, "serve"],
            names: &["access_ttl", bad_value, "forever"],
            never: &[],
        },
        Case {
            env: &[any_port],
            args: &["--config", missing, "serve"],
            names: &["--config", missing],
            never: &[],
        },
        Case {
            env: &[any_port, ("PLINTH_MANIFESTS_DIR", "/does/not/exist")],
            args: &["serve"],
            names: &["manifests dir", "PLINTH_MANIFESTS_DIR", "/does/not/exist"],
            never: &[],
        },
        Case {
            env: &[any_port],
            args: &["--scripts-dir", "/does/not/exist", "serve"],
            names: &["scripts dir", "--scripts-dir", "/does/not/exist"],
            never: &[],
        },
        Case {
            env: &[any_port, ("PLINTH_LOG_FORMAT", "xml")],
            args: &["serve"],
            names: &["log format", "PLINTH_LOG_FORMAT", "xml"],
            never: &[],
        },
        Case {
            env: &[any_port, ("PLINTH_WATCH", "maybe")],
            args: &["serve"],
            names: &["PLINTH_WATCH", "maybe"],
            never: &[],
        },
        Case {
            env: &[any_port, ("PLINTH_SYNC", "sometimes")],
            args: &["serve"],
            names: &["PLINTH_SYNC", "sometimes"],
            never: &[],
        },
        Case {
            env: &[any_port, ("PLINTH_TENANT", "Not_A_Slug")],
            args: &["serve"],
            names: &["PLINTH_TENANT", "Not_A_Slug"],
            never: &[],
        },
    ];
    for case in cases {
        let mut cmd = plinth(work.path());
        cmd.envs(case.env.iter().copied()).args(case.args);
        let out = run(&mut cmd, None, CONFIG_ERROR_DEADLINE);
        let what = format!("{:?} {:?}", case.env, case.args);
        assert_eq!(out.code, Some(2), "{what}: {out:?}");
        let stderr = out.stderr.trim_end();
        assert_eq!(
            stderr.lines().count(),
            1,
            "{what}: exactly one line on stderr:\n{stderr}"
        );
        for name in case.names {
            assert!(
                stderr.contains(name),
                "{what}: should name {name}: {stderr}"
            );
        }
        for text in case.never {
            assert!(
                !stderr.contains(text),
                "{what}: must not say {text}: {stderr}"
            );
        }
        assert!(
            !data_dir_in(work.path()).exists(),
            "{what}: the server must not have started (data dir created)"
        );
    }
}

#[test]
fn a_plinth_toml_that_is_not_toml_exits_2_with_one_line_naming_the_file() {
    let work = tempfile::tempdir().expect("temp dir");
    let path = work.path().join("plinth.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:0\"\naccess_ttl = \n").expect("write toml");
    let path = path.to_string_lossy().into_owned();
    let mut cmd = plinth(work.path());
    cmd.args(["--config", &path, "serve"]);

    let out = run(&mut cmd, None, CONFIG_ERROR_DEADLINE);

    assert_eq!(out.code, Some(2), "{out:?}");
    let stderr = out.stderr.trim_end();
    for name in ["config file", "--config", &path] {
        assert!(stderr.contains(name), "should name {name}: {stderr}");
    }
    assert_eq!(
        stderr.lines().count(),
        1,
        "exactly one line on stderr:\n{stderr}"
    );
    assert!(!data_dir_in(work.path()).exists(), "nothing started");
}

#[test]
fn a_data_dir_that_is_a_file_exits_2_naming_it() {
    let work = tempfile::tempdir().expect("temp dir");
    // `plinth` passes `--data-dir <work>/data`; make that path a file.
    let file = data_dir_in(work.path());
    std::fs::write(&file, "not a folder").expect("write file");
    let mut cmd = plinth(work.path());
    cmd.env("PLINTH_LISTEN", "127.0.0.1:0").arg("serve");

    let out = run(&mut cmd, None, CONFIG_ERROR_DEADLINE);

    assert_eq!(out.code, Some(2), "{out:?}");
    let stderr = out.stderr.trim_end();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for name in ["data dir", "--data-dir"] {
        assert!(stderr.contains(name), "should name {name}: {stderr}");
    }
    assert_eq!(
        std::fs::read_to_string(&file).expect("read file"),
        "not a folder",
        "the file is untouched"
    );
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in lowercase hex.
fn uuid_like(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && groups.iter().all(|g| {
            g.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}
