//! First start, second start, restart, SIGTERM, `/healthz` and `/readyz`.
//!
//! Start-up and shutdown are driven on the real binary (`plinth serve` on a
//! free port, SIGTERM through `kill`); restart persistence also in-process
//! through the harness.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::cli::{COMMAND_DEADLINE, data_dir_in, plinth, run};
use crate::helpers::*;

/// How long start-up may take before the test gives up.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a SIGTERM'd server may take to exit (the drain bound is 10 s).
const EXIT_DEADLINE: Duration = Duration::from_secs(15);

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// `plinth serve` as a child process on a free port, logs in a file.
struct Served {
    child: Child,
    addr: SocketAddr,
    base: String,
    client: reqwest::Client,
    log: PathBuf,
}

impl Served {
    /// Start `plinth serve` in `work` (data dir `work/data`) with extra
    /// environment, and wait until `/healthz` answers. `log_name` is the
    /// stderr file inside `work`.
    async fn start(work: &Path, env: &[(&str, &str)], log_name: &str) -> Served {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let log = work.join(log_name);
        let file = std::fs::File::create(&log).expect("log file");
        let child = plinth(work)
            .arg("serve")
            .env("PLINTH_LISTEN", addr.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("plinth serve starts");
        let mut served = Served {
            child,
            addr,
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
            log,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = served.child.try_wait().expect("try_wait") {
                panic!(
                    "plinth serve exited during start-up with {status}:\n{}",
                    served.stderr()
                );
            }
            let ok = served
                .client
                .get(format!("{}/healthz", served.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK);
            if ok {
                return served;
            }
            assert!(
                started.elapsed() < START_DEADLINE,
                "plinth serve not healthy after {START_DEADLINE:?}:\n{}",
                served.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything written to stderr so far.
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).expect("read log")
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Send a signal (`TERM`, `INT`) to this child, by its pid.
    fn signal(&self, name: &str) {
        let flag = format!("-{name}");
        let status = Command::new("kill")
            .args([flag.as_str(), &self.pid()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {flag} {}", self.pid());
    }

    fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Wait for the child to exit; panics after `EXIT_DEADLINE`.
    async fn wait_exit(&mut self) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                started.elapsed() < EXIT_DEADLINE,
                "plinth serve still running {EXIT_DEADLINE:?} after SIGTERM:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then assert a clean exit (code 0) and a closed port; returns
    /// the complete stderr.
    async fn terminate(self) -> String {
        self.stop_with("TERM").await
    }

    /// Send `signal`, then assert a clean exit (code 0) and a closed port;
    /// returns the complete stderr.
    async fn stop_with(mut self, signal: &str) -> String {
        self.signal(signal);
        let status = self.wait_exit().await;
        let log = self.stderr();
        assert_eq!(
            status.code(),
            Some(0),
            "exit status {status}; stderr:\n{log}"
        );
        assert!(
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_err(),
            "port {} still accepts after exit",
            self.addr
        );
        log
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

    async fn token(&self, email: &str, password: &str) -> String {
        let (status, body) = self.login(email, password).await;
        assert_eq!(status, StatusCode::OK, "login {email}: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("get sent");
        split(resp).await
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // A failed test must not leave its server running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Remove ANSI colour sequences (pretty logs colour their fields).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Random-looking words (letters and digits, at least 10) on log lines that
/// mention `email`: the candidates for a generated password.
fn password_candidates(log: &str, email: &str) -> Vec<String> {
    let mut words = Vec::new();
    for line in strip_ansi(log).lines().filter(|l| l.contains(email)) {
        for word in line.split(|c: char| !c.is_ascii_alphanumeric()) {
            let random_looking = word.len() >= 10
                && word.bytes().any(|b| b.is_ascii_digit())
                && word.bytes().any(|b| b.is_ascii_alphabetic());
            if random_looking && !words.iter().any(|w| w == word) {
                words.push(word.to_owned());
            }
        }
    }
    words
}

/// Count of API users in the caller's tenant.
async fn user_total(served: &Served, token: &str) -> u64 {
    let (status, users) = served.get("/api/users", token).await;
    assert_eq!(status, StatusCode::OK, "{users}");
    users["total"].as_u64().expect("total")
}

#[tokio::test]
async fn first_start_prints_a_generated_admin_password_once_and_a_second_start_changes_nothing() {
    let work = tempfile::tempdir().expect("temp dir");

    // First start, PLINTH_ADMIN_* unset.
    let first = Served::start(work.path(), &[], "first.log").await;
    let mut password = None;
    for candidate in password_candidates(&first.stderr(), "admin@localhost") {
        if first.login("admin@localhost", &candidate).await.0 == StatusCode::OK {
            password = Some(candidate);
            break;
        }
    }
    let password = password.unwrap_or_else(|| {
        panic!(
            "no working password for admin@localhost in the log:\n{}",
            first.stderr()
        )
    });
    let token = first.token("admin@localhost", &password).await;
    let (status, me) = first.get("/api/auth/me", &token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["tenant"]["slug"], "default");
    assert_eq!(me["roles"], json!(["SUPER_ADMIN"]));
    assert_eq!(me["user"]["platform_admin"], true);
    // A write acknowledged before SIGTERM must survive it.
    let resp = first
        .client
        .post(format!("{}/api/tenants", first.base))
        .bearer_auth(&token)
        .json(&json!({"slug": "acme", "name": "Acme",
                      "admin": {"email": "boss@acme.test", "password": PASSWORD}}))
        .send()
        .await
        .expect("create tenant sent");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let log = first.terminate().await;
    assert_eq!(
        log.matches(password.as_str()).count(),
        1,
        "the generated password is printed exactly once:\n{log}"
    );

    // The generated JWT secret is private to the owner.
    let secret = data_dir_in(work.path()).join("jwt_secret");
    let meta = std::fs::metadata(&secret).expect("jwt_secret exists in the data dir");
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o600,
        "mode of {secret:?}"
    );
    let secret_before = std::fs::read(&secret).expect("read secret");
    assert!(secret_before.len() >= 32, "secret has at least 32 bytes");

    // Second start: nothing new is created or printed; old credentials work.
    let second = Served::start(work.path(), &[], "second.log").await;
    let second_log = second.stderr();
    assert!(
        !second_log.contains(&password),
        "no password printed again:\n{second_log}"
    );
    assert!(
        password_candidates(&second_log, "admin@localhost").is_empty(),
        "no new admin password printed:\n{second_log}"
    );
    let (status, _) = second.get("/api/auth/me", &token).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a token from the first run is valid: the secret persisted"
    );
    let token = second.token("admin@localhost", &password).await;
    let (status, tenants) = second.get("/api/tenants", &token).await;
    assert_eq!(status, StatusCode::OK, "{tenants}");
    let mut slugs: Vec<&str> = tenants["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["slug"].as_str().expect("slug"))
        .collect();
    slugs.sort_unstable();
    assert_eq!(slugs, ["acme", "default"], "no second bootstrap: {tenants}");
    assert_eq!(user_total(&second, &token).await, 1);
    second.token("boss@acme.test", PASSWORD).await;
    second.terminate().await;
    assert_eq!(
        std::fs::read(&secret).expect("read secret"),
        secret_before,
        "the secret is not regenerated"
    );
}

#[tokio::test]
async fn serve_after_a_separate_migrate_still_bootstraps_the_configured_admin() {
    let work = tempfile::tempdir().expect("temp dir");
    let migrated = run(plinth(work.path()).arg("migrate"), None, COMMAND_DEADLINE);
    assert_eq!(migrated.code, Some(0), "{migrated:?}");
    assert!(
        migrated.stdout.contains("applied 0001_core.sql"),
        "{migrated:?}"
    );

    let served = Served::start(
        work.path(),
        &[
            ("PLINTH_ADMIN_EMAIL", "ops@example.test"),
            ("PLINTH_ADMIN_PASSWORD", "configured-password-1"),
        ],
        "serve.log",
    )
    .await;

    let token = served
        .token("ops@example.test", "configured-password-1")
        .await;
    let (status, me) = served.get("/api/auth/me", &token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["tenant"]["slug"], "default");
    assert_eq!(me["roles"], json!(["SUPER_ADMIN"]));
    assert_eq!(me["user"]["platform_admin"], true);
    let (status, _) = served.login("admin@localhost", "whatever-password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no admin@localhost");
    let log = served.terminate().await;
    assert!(
        !log.contains("configured-password-1"),
        "a configured password is never logged:\n{log}"
    );
}

#[tokio::test]
async fn a_second_start_with_other_admin_settings_creates_no_second_admin() {
    let work = tempfile::tempdir().expect("temp dir");
    let first = Served::start(
        work.path(),
        &[
            ("PLINTH_ADMIN_EMAIL", "first@example.test"),
            ("PLINTH_ADMIN_PASSWORD", "first-password-1"),
        ],
        "first.log",
    )
    .await;
    first.terminate().await;

    let second = Served::start(
        work.path(),
        &[
            ("PLINTH_ADMIN_EMAIL", "second@example.test"),
            ("PLINTH_ADMIN_PASSWORD", "second-password-1"),
        ],
        "second.log",
    )
    .await;

    let (status, _) = second
        .login("second@example.test", "second-password-1")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no second admin created");
    let token = second.token("first@example.test", "first-password-1").await;
    assert_eq!(user_total(&second, &token).await, 1);
    let (_, tenants) = second.get("/api/tenants", &token).await;
    assert_eq!(tenants["total"], 1, "{tenants}");
    second.terminate().await;
}

#[tokio::test]
async fn sigterm_stops_accepting_finishes_the_in_flight_request_and_exits_0() {
    let work = tempfile::tempdir().expect("temp dir");
    let mut served = Served::start(
        work.path(),
        &[
            ("PLINTH_ADMIN_EMAIL", "ops@example.test"),
            ("PLINTH_ADMIN_PASSWORD", "configured-password-1"),
        ],
        "serve.log",
    )
    .await;

    // A login whose body is only half sent: the request is in flight.
    let body = json!({"email": "ops@example.test", "password": "configured-password-1"})
        .to_string()
        .into_bytes();
    let (head, tail) = body.split_at(body.len() / 2);
    let mut stream = TcpStream::connect(served.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    write!(
        stream,
        "POST /api/auth/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        served.addr,
        body.len()
    )
    .expect("write head");
    stream.write_all(head).expect("write half the body");
    stream.flush().expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;

    served.sigterm();

    // New connections are refused while the old request is still open.
    let started = Instant::now();
    while TcpStream::connect_timeout(&served.addr, Duration::from_millis(500)).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "port still accepts 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        served.child.try_wait().expect("try_wait").is_none(),
        "the process waits for the in-flight request:\n{}",
        served.stderr()
    );

    // Finish the request: it is answered in full.
    stream.write_all(tail).expect("write the rest of the body");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "in-flight request completes: {response}"
    );
    assert!(response.contains("access_token"), "{response}");

    let status = served.wait_exit().await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM; stderr:\n{}",
        served.stderr()
    );
}

#[tokio::test]
async fn sigterm_with_a_request_that_never_finishes_still_exits_0_within_a_bound() {
    let work = tempfile::tempdir().expect("temp dir");
    let mut served = Served::start(
        work.path(),
        &[
            ("PLINTH_ADMIN_EMAIL", "ops@example.test"),
            ("PLINTH_ADMIN_PASSWORD", "configured-password-1"),
        ],
        "serve.log",
    )
    .await;
    // A request whose body never arrives.
    let mut stream = TcpStream::connect(served.addr).expect("connect");
    write!(
        stream,
        "POST /api/auth/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"email\"",
        served.addr
    )
    .expect("write head");
    stream.flush().expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;

    served.sigterm();
    let started = Instant::now();
    let bound = Duration::from_secs(30);
    let status = loop {
        if let Some(status) = served.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            started.elapsed() < bound,
            "still running {bound:?} after SIGTERM with a stuck request:\n{}",
            served.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(0), "stderr:\n{}", served.stderr());
    drop(stream);
}

#[tokio::test]
async fn restart_keeps_every_record_and_earlier_tokens_stay_valid() {
    // The secret comes from the data dir file, as in production.
    let app = spawn_app_with(|c| c.jwt_secret = None).await;
    let (tenant, admin) = app.tenant("acme").await;
    let (status, role) = app
        .post(
            "/api/roles",
            &admin,
            json!({"name": "CLERK", "description": "front desk"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    let role_id = role["id"].as_str().expect("role id").to_owned();
    let (status, grants) = app
        .put(
            &format!("/api/roles/{role_id}/permissions"),
            &admin,
            json!({"permissions": ["USERS_VIEW"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{grants}");
    let (user, user_token) = app
        .user(&admin, "acme", "clerk@acme.test", &["CLERK", "EMPLOYEE"])
        .await;
    let (_, login) = app.login("clerk@acme.test", PASSWORD, Some("acme")).await;
    let refresh = login["refresh_token"].as_str().expect("refresh").to_owned();
    let root_token = app.root_token.clone();
    let user_path = format!("/api/users/{}", user["id"].as_str().expect("user id"));
    let tenant_path = format!("/api/tenants/{}", tenant["id"].as_str().expect("tenant id"));

    // What each reader sees before the restart.
    let reads: Vec<(&str, String)> = vec![
        (admin.as_str(), user_path.clone()),
        (admin.as_str(), "/api/users".to_owned()),
        (admin.as_str(), "/api/roles".to_owned()),
        (admin.as_str(), format!("/api/roles/{role_id}/permissions")),
        (user_token.as_str(), "/api/auth/me".to_owned()),
        (root_token.as_str(), "/api/tenants".to_owned()),
        (root_token.as_str(), tenant_path.clone()),
        (root_token.as_str(), "/api/users".to_owned()),
    ];
    let mut before = Vec::new();
    for (token, path) in &reads {
        let (status, body) = app.get(path, token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        before.push(body);
    }

    let app = app.restart().await;

    for ((token, path), expected) in reads.iter().zip(&before) {
        let (status, body) = app.get(path, token).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{path} with a pre-restart token: {body}"
        );
        assert_eq!(&body, expected, "{path} unchanged by the restart");
    }
    let (_, me) = app.get("/api/auth/me", &user_token).await;
    let mut roles: Vec<String> = serde_json::from_value(me["roles"].clone()).expect("roles");
    roles.sort();
    assert_eq!(roles, ["CLERK", "EMPLOYEE"]);
    assert_eq!(me["permissions"], json!(["USERS_VIEW"]));
    let (_, root_users) = app.get("/api/users", &app.root_token).await;
    assert_eq!(root_users["total"], 1, "no second bootstrap admin");
    let (status, pair) = app
        .call(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a pre-restart refresh token: {pair}"
    );
}

#[tokio::test]
async fn healthz_and_readyz_answer_200_json_without_a_token() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let resp = app
            .request(Method::GET, path, None)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let content_type = resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            content_type.starts_with("application/json"),
            "{path}: {content_type}"
        );
        assert!(resp.headers().contains_key("x-request-id"), "{path}");
        let body: Value = resp.json().await.expect("JSON body");
        assert!(body.is_object(), "{path}: {body}");
    }
}

#[tokio::test]
async fn ctrl_c_stops_the_server_like_sigterm() {
    let work = tempfile::tempdir().expect("temp dir");
    let served = Served::start(
        work.path(),
        &[
            ("PLINTH_ADMIN_EMAIL", "ops@example.test"),
            ("PLINTH_ADMIN_PASSWORD", "configured-password-1"),
        ],
        "serve.log",
    )
    .await;
    served
        .token("ops@example.test", "configured-password-1")
        .await;

    served.stop_with("INT").await;
}

#[tokio::test]
async fn first_start_with_a_pinned_tenant_creates_that_tenant_instead_of_default() {
    let work = tempfile::tempdir().expect("temp dir");
    let served = Served::start(
        work.path(),
        &[
            ("PLINTH_TENANT", "shop"),
            ("PLINTH_ADMIN_EMAIL", "owner@shop.test"),
            ("PLINTH_ADMIN_PASSWORD", "owner-password-1"),
        ],
        "serve.log",
    )
    .await;

    let token = served.token("owner@shop.test", "owner-password-1").await;
    let (status, me) = served.get("/api/auth/me", &token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["tenant"]["slug"], "shop");
    assert_eq!(me["roles"], json!(["SUPER_ADMIN"]));
    assert_eq!(me["user"]["platform_admin"], true);
    let (_, tenants) = served.get("/api/tenants", &token).await;
    let slugs: Vec<&str> = tenants["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["slug"].as_str().expect("slug"))
        .collect();
    assert_eq!(slugs, ["shop"], "no default tenant: {tenants}");
    served.terminate().await;
}

#[tokio::test]
async fn settings_from_the_environment_and_plinth_toml_reach_the_server() {
    let work = tempfile::tempdir().expect("temp dir");
    let toml = work.path().join("plinth.toml");
    // `listen` here loses to PLINTH_LISTEN (set by the harness); the body
    // limit and the admin come from the file; the token lifetime from env.
    std::fs::write(
        &toml,
        "listen = \"127.0.0.1:1\"\nmax_body = \"1KiB\"\naccess_ttl = \"1h\"\n\
         admin_email = \"file@example.test\"\nadmin_password = \"file-password-1\"\n",
    )
    .expect("write plinth.toml");
    let toml = toml.to_string_lossy().into_owned();
    let served = Served::start(
        work.path(),
        &[
            ("PLINTH_CONFIG", toml.as_str()),
            ("PLINTH_ACCESS_TTL", "90s"),
        ],
        "serve.log",
    )
    .await;

    let (status, login) = served.login("file@example.test", "file-password-1").await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["expires_in"], 90, "env beats file: {login}");

    let resp = served
        .client
        .post(format!("{}/api/auth/login", served.base))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"email\": \"file@example.test\", \"password\": \"{}\"}}",
            "p".repeat(2048)
        ))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        resp.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "max_body from plinth.toml"
    );
    served.terminate().await;
}

#[tokio::test]
async fn json_log_format_writes_one_json_object_per_line_with_the_request_id() {
    let work = tempfile::tempdir().expect("temp dir");
    let served = Served::start(
        work.path(),
        &[
            ("PLINTH_LOG_FORMAT", "json"),
            ("RUST_LOG", "info"),
            ("PLINTH_ADMIN_EMAIL", "ops@example.test"),
            ("PLINTH_ADMIN_PASSWORD", "configured-password-1"),
        ],
        "serve.log",
    )
    .await;
    let resp = served
        .client
        .get(format!("{}/readyz", served.base))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let id = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();

    let log = served.terminate().await;

    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    assert!(!lines.is_empty(), "info logs were written");
    assert!(
        lines.iter().all(Value::is_object),
        "one object per line:\n{log}"
    );
    assert!(
        lines.iter().any(|l| l.to_string().contains(&id)),
        "the request is logged with its id {id}:\n{log}"
    );
    assert!(
        !log.contains("configured-password-1"),
        "no password in the logs"
    );
}

#[test]
fn serve_on_a_port_in_use_fails_with_exit_1_naming_the_address() {
    let work = tempfile::tempdir().expect("temp dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let mut cmd = plinth(work.path());
    cmd.env("PLINTH_LISTEN", &addr).arg("serve");

    let out = run(&mut cmd, None, COMMAND_DEADLINE);

    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains(&addr), "{}", out.stderr);
    drop(taken);
}
