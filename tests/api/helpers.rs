//! Test harness: `spawn_app()` builds the real App on 127.0.0.1:0 with a
//! temp data dir, and a small client over real HTTP.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use plinth::app::App;
use plinth::config::Config;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

/// E-mail of the bootstrap SUPER_ADMIN (platform admin) of tenant `default`.
pub const ROOT_EMAIL: &str = "root@test.local";
/// Its password.
pub const ROOT_PASSWORD: &str = "root-password-1";
/// JWT secret of every test app (lets token-attack tests forge tokens).
pub const JWT_SECRET: &[u8] = b"test-secret-test-secret-test-secret-0123";
/// A valid password for users made by tests.
pub const PASSWORD: &str = "password-123";

/// A running server.
pub struct TestApp {
    /// Bound address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// Shared client (no redirects, no proxies).
    pub client: reqwest::Client,
    /// The config it was built from.
    pub config: Config,
    /// Access token of the bootstrap SUPER_ADMIN (platform admin).
    pub root_token: String,
    data_dir: Option<TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A test config over a data dir.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config::for_data_dir(data_dir);
    // Plugins come only from what a test writes here, never from the repo.
    let manifests = data_dir.join("plugin-manifests");
    let scripts = data_dir.join("scripts");
    std::fs::create_dir_all(&manifests).expect("manifests dir");
    std::fs::create_dir_all(&scripts).expect("scripts dir");
    // The shipped example scripts come along, so a test that writes a
    // shipped manifest gets the plugin as shipped, logic included.
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts"),
        &scripts,
    );
    config.manifests_dir = manifests;
    config.scripts_dir = scripts;
    config.admin_email = Some(ROOT_EMAIL.to_owned());
    config.admin_password = Some(ROOT_PASSWORD.to_owned());
    config.jwt_secret = Some(JWT_SECRET.to_vec());
    config.watch = false;
    config
}

/// Copy a folder tree (the example scripts) into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Start a server with the test defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Start a server after adjusting the config.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(dir.path());
    adjust(&mut config);
    start(config, Some(dir)).await
}

async fn start(config: Config, data_dir: Option<TempDir>) -> TestApp {
    let app = App::build(&config).await.expect("app builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut test_app = TestApp {
        addr,
        base: format!("http://{addr}"),
        client,
        config,
        root_token: String::new(),
        data_dir,
        shutdown: Some(tx),
        server: Some(server),
    };
    test_app.root_token = test_app.token(ROOT_EMAIL, ROOT_PASSWORD, None).await;
    test_app
}

impl TestApp {
    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// Stop the server gracefully; returns the data dir for a restart.
    pub async fn stop(mut self) -> (Config, Option<TempDir>) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server io");
        }
        (self.config.clone(), self.data_dir.take())
    }

    /// Start again on the same data dir (a restart).
    pub async fn restart(self) -> TestApp {
        let (config, dir) = self.stop().await;
        start(config, dir).await
    }

    /// A request builder for a path, with a bearer token when given.
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let rb = self.client.request(method, format!("{}{path}", self.base));
        match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Send a request with an optional JSON body; returns status and parsed body
    /// (`Value::Null` for an empty body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self.request(method, path, token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.expect("request sent");
        split(resp).await
    }

    /// GET with a token.
    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// POST JSON with a token.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    /// PATCH JSON with a token.
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// PUT JSON with a token.
    pub async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    /// DELETE with a token.
    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// POST /api/auth/login.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        tenant: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut body = json!({"email": email, "password": password});
        if let Some(t) = tenant {
            body["tenant"] = json!(t);
        }
        self.call(Method::POST, "/api/auth/login", None, Some(body))
            .await
    }

    /// Log in and return the access token (panics unless 200).
    pub async fn token(&self, email: &str, password: &str, tenant: Option<&str>) -> String {
        let (status, body) = self.login(email, password, tenant).await;
        assert_eq!(status, StatusCode::OK, "login {email}: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Create a tenant (as root) and return (tenant json, its admin's token).
    pub async fn tenant(&self, slug: &str) -> (Value, String) {
        let email = format!("admin@{slug}.test");
        let (status, tenant) = self
            .post(
                "/api/tenants",
                &self.root_token,
                json!({"slug": slug, "name": format!("Tenant {slug}"),
                       "admin": {"email": email, "password": PASSWORD}}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "create tenant {slug}: {tenant}"
        );
        let token = self.token(&email, PASSWORD, Some(slug)).await;
        (tenant, token)
    }

    /// Create a user with roles using `admin_token`; returns (user json, token).
    pub async fn user(
        &self,
        admin_token: &str,
        tenant_slug: &str,
        email: &str,
        roles: &[&str],
    ) -> (Value, String) {
        let (status, user) = self
            .post(
                "/api/users",
                admin_token,
                json!({"email": email, "password": PASSWORD, "roles": roles}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create user {email}: {user}");
        let token = self.token(email, PASSWORD, Some(tenant_slug)).await;
        (user, token)
    }

    /// Id of a role by name in the caller's tenant.
    pub async fn role_id(&self, token: &str, name: &str) -> String {
        let (status, roles) = self.get("/api/roles", token).await;
        assert_eq!(status, StatusCode::OK, "{roles}");
        roles["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("role {name} in {roles}"))["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }
}

/// Status and JSON body of a response.
pub async fn split(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// Assert a response is a problem with this status, returning its body.
pub fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "body: {body}");
    assert_eq!(
        body["status"],
        expected.as_u16(),
        "problem status in {body}"
    );
    assert!(body["detail"].is_string(), "problem detail in {body}");
    assert!(
        body["request_id"].is_string(),
        "problem request_id in {body}"
    );
}

/// Assert a 400 whose `errors` name `field`.
pub fn assert_field_error(status: StatusCode, body: &Value, field: &str) {
    assert_problem(status, body, StatusCode::BAD_REQUEST);
    let errors = body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("errors in {body}"));
    assert!(
        errors.iter().any(|e| e["field"] == field),
        "expected an error naming {field} in {body}"
    );
}
