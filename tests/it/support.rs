//! The test harness: a real server on an ephemeral port over a real store.
//!
//! Every store-parametrised test runs once per backend from [`backends`]: always the
//! embedded SQLite store, and PostgreSQL + Redis when `AGENTIDP_TEST_DATABASE_URL` and
//! `AGENTIDP_TEST_REDIS_URL` are set. Under CI (`CI` set) both must be set: tests against
//! real stores never skip there. Each app gets its own PostgreSQL schema and Redis
//! namespace, so tests run in parallel without seeing each other.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::Arc;

use agentidp_engine::{BootstrapOutput, Engine, EngineConfig, ManualClock};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::oneshot;

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    Postgres { database_url: String, redis_url: String },
}

impl Backend {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres { .. })
    }
}

/// The backends to run every store-parametrised test against.
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    match (
        std::env::var("AGENTIDP_TEST_DATABASE_URL").ok().filter(|s| !s.is_empty()),
        std::env::var("AGENTIDP_TEST_REDIS_URL").ok().filter(|s| !s.is_empty()),
    ) {
        (Some(database_url), Some(redis_url)) => out.push(Backend::Postgres { database_url, redis_url }),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI must set AGENTIDP_TEST_DATABASE_URL and AGENTIDP_TEST_REDIS_URL: store tests never skip in CI")
        }
        _ => {}
    }
    out
}

/// Where one app keeps its data: reusable across restarts of the app.
pub struct Storage {
    pub backend: Backend,
    pub data_dir: PathBuf,
    _tmp: tempfile::TempDir,
    /// PostgreSQL schema and Redis namespace of this storage.
    pub namespace: String,
    pub database_url: Option<String>,
    /// The clock of every app on this storage: frozen unless a test advances it.
    pub clock: Arc<ManualClock>,
}

impl Storage {
    pub async fn new(backend: &Backend) -> Storage {
        let tmp = tempfile::tempdir().expect("tempdir");
        let namespace = format!("t_{}", uuid::Uuid::now_v7().simple());
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres { database_url, .. } => {
                let (client, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
                    .await
                    .expect("PostgreSQL must be reachable at AGENTIDP_TEST_DATABASE_URL");
                tokio::spawn(conn);
                client.batch_execute(&format!("CREATE SCHEMA {namespace}")).await.expect("create test schema");
                let sep = if database_url.contains('?') { '&' } else { '?' };
                Some(format!("{database_url}{sep}options=-csearch_path%3D{namespace}"))
            }
        };
        Storage {
            backend: backend.clone(),
            data_dir: tmp.path().join("data"),
            _tmp: tmp,
            namespace,
            database_url,
            clock: Arc::new(ManualClock::default()),
        }
    }

    pub fn config(&self, addr: SocketAddr) -> EngineConfig {
        let mut config = EngineConfig::embedded(&self.data_dir);
        config.issuer = format!("http://{addr}");
        config.audience = config.issuer.clone();
        config.database_url = self.database_url.clone();
        config.clock = self.clock.clone();
        // Nodes sharing a PostgreSQL must share the key that seals signing keys.
        config.master_key = Some(vec![7; 32]);
        if let Backend::Postgres { redis_url, .. } = &self.backend {
            config.redis_url = Some(redis_url.clone());
            config.redis_namespace = self.namespace.clone();
        }
        config
    }
}

pub struct TestApp {
    pub base: String,
    pub engine: Engine,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// A running server, bootstrapped, with its admin credentials.
pub struct App {
    pub app: TestApp,
    pub boot: BootstrapOutput,
    pub storage: Storage,
}

impl std::ops::Deref for App {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl TestApp {
    /// Start a server over `storage` (which may hold data from an earlier app).
    pub async fn start(storage: &Storage) -> TestApp {
        TestApp::start_with(storage, |_| {}).await
    }

    /// Start a server with a configuration adjusted by `tweak`.
    pub async fn start_with(storage: &Storage, tweak: impl FnOnce(&mut EngineConfig)) -> TestApp {
        TestApp::start_limited(storage, tweak, agentidp::HttpLimits::default()).await
    }

    /// Start a server with the given HTTP connection limits.
    pub async fn start_limited(
        storage: &Storage,
        tweak: impl FnOnce(&mut EngineConfig),
        limits: agentidp::HttpLimits,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = storage.config(addr);
        tweak(&mut config);
        let engine = Engine::start(config).await.expect("engine starts");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn({
            let engine = engine.clone();
            async move {
                agentidp::serve_with(listener, engine, limits, async {
                    let _ = rx.await;
                })
                .await
                .expect("server runs");
            }
        });
        TestApp {
            base: format!("http://{addr}"),
            engine,
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Graceful shutdown, as on SIGTERM.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Client credentials with private_key_jwt (`assertion`): the status and the body.
    pub async fn assertion_token_request(&self, assertion: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .post(self.url("/api/v1/oauth2/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", assertion),
            ])
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or_default())
    }

    /// Client credentials with client_secret_post; panics unless 200.
    pub async fn token(&self, client_id: &str, secret: &str, scope: Option<&str>) -> String {
        let (status, body) = self.token_request(client_id, secret, scope).await;
        assert_eq!(status, StatusCode::OK, "token request failed: {body}");
        body["access_token"].as_str().expect("access_token").to_string()
    }

    pub async fn token_request(&self, client_id: &str, secret: &str, scope: Option<&str>) -> (StatusCode, Value) {
        let mut form = vec![("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret)];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let resp = self.http.post(self.url("/api/v1/oauth2/token")).form(&form).send().await.expect("send");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A JSON request with a Bearer token; returns status and body (Null if empty).
    pub async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

impl App {
    pub async fn admin_token(&self) -> String {
        self.token(&self.boot.client_id, &self.boot.client_secret, None).await
    }

    pub async fn platform_token(&self) -> String {
        self.token(&self.boot.platform_client_id, &self.boot.platform_client_secret, None).await
    }

    pub async fn stop(self) {
        self.app.stop().await;
    }

    /// Create an agent and a credential for it; returns (agent, client_id, secret).
    pub async fn agent_with_credential(&self, token: &str, body: Value) -> (Value, String, String) {
        let (status, agent) = self.call(Method::POST, "/api/v1/agents", token, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{agent}");
        let id = agent["id"].as_str().expect("id");
        let org = agent["org_id"].as_str().expect("org_id");
        let path = format!("/api/v1/agents/{id}/credentials?org_id={org}");
        let (status, cred) = self.call(Method::POST, &path, token, None).await;
        assert_eq!(status, StatusCode::CREATED, "{cred}");
        let client_id = cred["client_id"].as_str().expect("client_id").to_string();
        let secret = cred["client_secret"].as_str().expect("client_secret").to_string();
        (agent, client_id, secret)
    }
}

/// A fresh, bootstrapped app on `backend`.
pub async fn spawn_app(backend: &Backend) -> App {
    spawn_app_with(backend, |_| {}).await
}

/// A fresh, bootstrapped app whose configuration `tweak` adjusts.
pub async fn spawn_app_with(backend: &Backend, tweak: impl FnOnce(&mut EngineConfig)) -> App {
    let storage = Storage::new(backend).await;
    let app = TestApp::start_with(&storage, tweak).await;
    let boot = app.engine.bootstrap().await.expect("bootstrap");
    App { app, boot, storage }
}

/// Decode a JWT's header and payload without verifying (to inspect what was issued).
pub fn jwt_parts(token: &str) -> (Value, Value) {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let mut decode = || {
        let part = parts.next().expect("jwt part");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).expect("base64url");
        serde_json::from_slice::<Value>(&bytes).expect("json")
    };
    let header = decode();
    let payload = decode();
    (header, payload)
}

/// Run a test body once per backend.
#[macro_export]
macro_rules! each_backend {
    ($name:ident, |$app:ident| $body:block) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for backend in $crate::support::backends() {
                let $app = $crate::support::spawn_app(&backend).await;
                $body
            }
        }
    };
}

/// A client_credentials token from the server at `base` (a process a test started);
/// panics unless one is issued.
pub async fn client_token(base: &str, client_id: &str, client_secret: &str) -> String {
    let form = [("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", client_secret)];
    let body: Value = reqwest::Client::new().post(format!("{base}/api/v1/oauth2/token")).form(&form).json_body().await;
    body["access_token"].as_str().unwrap_or_else(|| panic!("no access_token: {body}")).to_string()
}

/// Poll `url` until it answers 2xx (up to 10 s); panics with `what` otherwise. For
/// servers a test starts as a separate process.
pub async fn wait_until_up(url: &str, what: &str) {
    let http = reqwest::Client::new();
    for _ in 0..500 {
        if http.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{what} did not become ready at {url}");
}

/// An `agentidp serve` process a test started, killed (SIGKILL) when dropped — also when
/// the test fails, so nothing is left running.
pub struct ServeProcess {
    child: std::process::Child,
    pub base: String,
}

impl ServeProcess {
    /// Run `cmd` (an `agentidp serve` without `--listen`) on a free port until it is ready.
    pub async fn start(mut cmd: std::process::Command) -> ServeProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        cmd.args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let process = ServeProcess { child: cmd.spawn().unwrap(), base: format!("http://127.0.0.1:{port}") };
        wait_until_up(&format!("{}/ready", process.base), "agentidp serve").await;
        process
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `agentidp serve` processes on one PostgreSQL (a schema of their own) and one Redis,
/// bootstrapped once: nodes of one deployment, as an operator runs them.
pub struct ProcessCluster {
    pub storage: Storage,
    pub redis_url: String,
    pub client_id: String,
    pub client_secret: String,
    dir: tempfile::TempDir,
    config: Option<PathBuf>,
}

impl ProcessCluster {
    /// On the configured PostgreSQL and `redis_url` (the configured Redis if `None`), with
    /// a configuration file holding `toml` if given; `None` where no PostgreSQL backend is
    /// configured (CI always has one).
    pub async fn new(redis_url: Option<String>, toml: Option<&str>) -> Option<ProcessCluster> {
        let backend = backends().into_iter().find(|b| b.is_postgres())?;
        let Backend::Postgres { redis_url: shared_redis, .. } = &backend else { unreachable!() };
        let dir = tempfile::tempdir().unwrap();
        let config = toml.map(|toml| {
            let path = dir.path().join("agentidp.toml");
            std::fs::write(&path, toml).unwrap();
            path
        });
        let mut cluster = ProcessCluster {
            redis_url: redis_url.unwrap_or_else(|| shared_redis.clone()),
            storage: Storage::new(&backend).await,
            client_id: String::new(),
            client_secret: String::new(),
            dir,
            config,
        };
        let out = cluster.command("boot").args(["bootstrap", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let creds: Value = serde_json::from_slice(&out.stdout).unwrap();
        cluster.client_id = creds["client_id"].as_str().unwrap().to_string();
        cluster.client_secret = creds["client_secret"].as_str().unwrap().to_string();
        Some(cluster)
    }

    /// An `agentidp` command with this deployment's environment, its data dir `name`.
    pub fn command(&self, name: &str) -> std::process::Command {
        use base64::Engine as _;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_agentidp"));
        for var in ["AGENTIDP_CONFIG", "AGENTIDP_LISTEN", "VAULT_ADDR"] {
            cmd.env_remove(var);
        }
        if let Some(config) = &self.config {
            cmd.env("AGENTIDP_CONFIG", config);
        }
        cmd.env("DATABASE_URL", self.storage.database_url.as_deref().unwrap())
            .env("REDIS_URL", &self.redis_url)
            .env("AGENTIDP_REDIS_NAMESPACE", &self.storage.namespace)
            .env("AGENTIDP_MASTER_KEY", base64::engine::general_purpose::STANDARD.encode([9u8; 32]))
            .env("AGENTIDP_ISSUER", "http://agentidp.cluster.test")
            .env("AGENTIDP_DATA_DIR", self.dir.path().join(name))
            .env("AGENTIDP_LOG", "warn");
        cmd
    }

    /// A token of the bootstrapped org admin, from the node at `base`.
    pub async fn admin_token(&self, base: &str) -> String {
        client_token(base, &self.client_id, &self.client_secret).await
    }

    /// Start node `name` and wait until it is ready.
    pub async fn node(&self, name: &str) -> ServeProcess {
        let mut cmd = self.command(name);
        cmd.arg("serve");
        ServeProcess::start(cmd).await
    }
}

/// A Redis server of the test's own, on a free port (never the shared one), which the
/// test may stop and start again on the same port — with no persistence, as the probe's
/// was: a restart forgets everything. Killed when dropped.
pub struct OwnRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    pub async fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut redis = OwnRedis { port, child: None };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill the server (SIGKILL: an outage, not a shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it (again) on its port and wait until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test installs it)");
        self.child = Some(child);
        for _ in 0..250 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("redis-server on port {} did not start", self.port);
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL server of the test's own (never the shared one): a fresh cluster in a
/// temporary directory on a free port, run as the `postgres` user when the test runs as
/// root (PostgreSQL refuses to run as root). The test may stop and start it again on the
/// same port and data. Stopped (immediate shutdown) when dropped.
pub struct OwnPostgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Option<std::process::Child>,
}

impl OwnPostgres {
    pub async fn start() -> OwnPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql (scripts/test installs them)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|b| b.join("initdb").exists())
            .expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pg = OwnPostgres { port, dir, bin, child: None };
        pg.chown_to_postgres(pg.dir.path());
        let status = pg
            .command("initdb")
            .args(["-D", &pg.data().to_string_lossy(), "-U", "postgres", "--auth=trust", "--no-sync"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run initdb");
        assert!(status.success(), "initdb failed");
        let mut pg = pg;
        pg.restart().await;
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The `postgres` user's ids when the test runs as root; `None` otherwise.
    fn postgres_ids() -> Option<(u32, u32)> {
        let out = std::process::Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&out.stdout).trim() != "0" {
            return None;
        }
        let id = |flag: &str| -> Option<u32> {
            let out = std::process::Command::new("id").args([flag, "postgres"]).output().ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        Some((id("-u")?, id("-g")?))
    }

    fn chown_to_postgres(&self, path: &std::path::Path) {
        if let Some((uid, gid)) = Self::postgres_ids() {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown the cluster directory");
        }
    }

    fn command(&self, program: &str) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(self.bin.join(program));
        if let Some((uid, gid)) = Self::postgres_ids() {
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    /// The postmaster's pid, for signals.
    fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Begin a smart shutdown (SIGTERM): sessions already open go on, new ones are refused
    /// with "the database system is shutting down" until the last one ends.
    pub fn begin_shutdown(&self) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
    }

    /// Wait (at most 30 s) until the server has exited.
    pub async fn wait_stopped(&mut self) {
        for _ in 0..1500 {
            match self.child.as_mut().map(|c| c.try_wait()) {
                None | Some(Ok(Some(_))) | Some(Err(_)) => {
                    self.child = None;
                    return;
                }
                Some(Ok(None)) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        panic!("PostgreSQL on port {} did not stop", self.port);
    }

    /// Stop it at once (SIGQUIT: immediate shutdown) and wait for the exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill").args(["-QUIT", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }

    /// Start it (again) on its port and data, and wait until it accepts connections.
    pub async fn restart(&mut self) {
        self.kill();
        let child = self
            .command("postgres")
            .args(["-D", &self.data().to_string_lossy(), "-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "unix_socket_directories="])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        for _ in 0..500 {
            if tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("PostgreSQL on port {} did not start", self.port);
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A request's JSON answer: `.send().await.unwrap().json().await.unwrap()`, said once.
pub trait JsonBody {
    fn json_body<T: serde::de::DeserializeOwned>(self) -> impl std::future::Future<Output = T>;
}

impl JsonBody for reqwest::RequestBuilder {
    async fn json_body<T: serde::de::DeserializeOwned>(self) -> T {
        self.send().await.unwrap().json().await.unwrap()
    }
}
