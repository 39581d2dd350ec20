//! Shared test harness: a service started in-process on loopback ports, a minimal raw SIP
//! user agent for integration tests, and helpers to run SIPp against the service.
#![allow(dead_code)]

pub mod sipp;
pub mod uac;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use centralino::app::{self, Service};
use centralino::config::Config;
use centralino::engine::call::CallRecord;
use tokio::sync::mpsc;

/// The project root (for ivr-scripts/ and tests/interop/).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free TCP port on loopback (bound then released: the SIP TCP listener binds by port).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A block of RTP ports unlikely to collide with other tests in the same run.
pub fn rtp_range(slot: u16) -> String {
    let base = 30000 + (std::process::id() as u16 % 50) * 400 + slot * 40;
    format!("{}-{}", base, base + 39)
}

/// Options for a test service.
pub struct TestOptions {
    /// `true`: the schedule is open around the clock; `false`: always closed.
    pub open: bool,
    pub rtp_slot: u16,
    pub extra_env: Vec<(String, String)>,
    /// `(queue, key, value)` set on the default `[[queue]]` entries, e.g. the strategy.
    pub queue_settings: Vec<(String, String, toml::Value)>,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions { open: true, rtp_slot: 0, extra_env: Vec::new(), queue_settings: Vec::new() }
    }
}

pub fn test_config(opts: &TestOptions, data: &std::path::Path) -> Config {
    let days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let hours = if opts.open { r#"["00:00-24:00"]"# } else { "[]" };
    let mut env: Vec<(String, String)> = vec![
        ("CENTRALINO_SIP__LISTEN".into(), r#"["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]"#.to_string()),
        ("CENTRALINO_HTTP__LISTEN".into(), "127.0.0.1:0".into()),
        ("CENTRALINO_MEDIA__RTP_PORTS".into(), rtp_range(opts.rtp_slot)),
        ("CENTRALINO_IVR__SCRIPTS".into(), root().join("ivr-scripts").display().to_string()),
        ("CENTRALINO_SCHEDULE__HOLIDAYS".into(), "none".into()),
        ("CENTRALINO_DATABASE__URL".into(), format!("sqlite://{}/centralino.db", data.display())),
        ("CENTRALINO_SCHEDULE__EXTRA_HOLIDAYS".into(), "[]".into()),
        // SIPp and the tests' phones call from 127.0.0.1, hundreds of calls at once: that
        // address is a trunk here. Tests of the edge's limits call from 127.0.0.2 and up.
        ("CENTRALINO_LIMITS__TRUNK_SOURCES".into(), r#"["127.0.0.1"]"#.into()),
        // The generated admin token goes with the test's database, not into the repository.
        ("CENTRALINO_HTTP__TOKEN_FILE".into(), data.join("admin.token").display().to_string()),
    ];
    for d in days {
        env.push((format!("CENTRALINO_SCHEDULE__{}", d.to_uppercase()), hours.into()));
    }
    env.extend(opts.extra_env.iter().cloned());
    if opts.queue_settings.is_empty() {
        return Config::load_with_env(None, &env).expect("test config is valid");
    }
    // [[queue]] is an array: a file repeats every queue with the settings changed.
    let defaults: toml::Table = centralino::config::DEFAULT_CONFIG.parse().unwrap();
    let mut queues = defaults["queue"].as_array().unwrap().clone();
    for (queue, key, value) in &opts.queue_settings {
        let entry = queues.iter_mut().find(|q| q["name"].as_str() == Some(queue)).expect("a default queue");
        entry.as_table_mut().unwrap().insert(key.clone(), value.clone());
    }
    let mut file = toml::Table::new();
    file.insert("queue".into(), toml::Value::Array(queues));
    let path = data.join("queues.toml");
    std::fs::write(&path, toml::to_string(&file).unwrap()).unwrap();
    Config::load_with_env(Some(&path), &env).expect("test config is valid")
}

/// A running service plus the records of the calls it finished.
pub struct TestService {
    pub service: Service,
    pub records: mpsc::Receiver<CallRecord>,
    pub config: Config,
    /// The SQLite database's folder, removed when the test ends.
    pub data: tempfile::TempDir,
}

impl TestService {
    pub async fn start(opts: TestOptions) -> TestService {
        let (config, data) = Self::prepare(&opts);
        Self::start_with(config, data).await
    }

    /// The config and data folder a test service would use, to set up its database first.
    pub fn prepare(opts: &TestOptions) -> (Config, tempfile::TempDir) {
        let data = tempfile::tempdir().unwrap();
        (test_config(opts, data.path()), data)
    }

    /// Starts on a given config (e.g. after adding operators to its database).
    pub async fn start_with(config: Config, data: tempfile::TempDir) -> TestService {
        let (tx, rx) = mpsc::channel(10_000);
        let service = app::start_with_records(config.clone(), Some(tx)).await.expect("service starts");
        TestService { service, records: rx, config, data }
    }

    pub fn udp(&self) -> SocketAddr {
        self.service.sip_udp[0]
    }

    pub fn tcp(&self) -> SocketAddr {
        self.service.sip_tcp[0]
    }

    /// The next finished call's record, waiting at most `within`.
    pub async fn next_record(&mut self, within: Duration) -> CallRecord {
        tokio::time::timeout(within, self.records.recv())
            .await
            .expect("a call record in time")
            .expect("service running")
    }

    /// `GET path` on the admin listener with the admin token, as text.
    pub async fn http_get(&self, path: &str) -> String {
        http_get(self.service.http, &self.service.admin_token, path).await
    }

    /// `POST path` on the admin listener with the admin token and a JSON body (may be
    /// empty); returns the status and the body.
    pub async fn http_post(&self, path: &str, body: &str) -> (u16, String) {
        http_post(self.service.http, &self.service.admin_token, path, body).await
    }

    /// Every RTP port is back in the pool (it returns with the last reference to its leg,
    /// a moment after the call ends), waiting at most 5 s.
    pub async fn assert_ports_returned(&self) {
        let pool = &self.service.ports;
        let returned = tokio::time::timeout(Duration::from_secs(5), pool.all_returned()).await;
        assert!(returned.is_ok(), "{} RTP ports still leased", pool.in_use());
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    /// The status line and the headers.
    pub head: String,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
}

/// One bare HTTP/1.1 request with exactly `headers` (plus Content-Length and
/// `Connection: close`), enough for the admin API (no extra client crate).
pub async fn http_request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> HttpReply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("admin listener");
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()));
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    HttpReply { status, head: head.to_string(), body: body.to_string() }
}

/// A GET as a local script sends it: Host the listener's address, the given bearer token.
pub async fn http_get(addr: SocketAddr, token: &str, path: &str) -> String {
    let auth = format!("Bearer {token}");
    http_request(addr, "GET", path, &[("Host", &addr.to_string()), ("Authorization", &auth)], "").await.body
}

/// A POST with a JSON body (may be empty) and the given bearer token; returns the status
/// and the body.
pub async fn http_post(addr: SocketAddr, token: &str, path: &str, body: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let headers = [("Host", addr.to_string()), ("Authorization", auth), ("Content-Type", "application/json".to_string())];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let reply = http_request(addr, "POST", path, &headers, body).await;
    (reply.status, reply.body)
}

/// Waits (by polling the admin API: no event reaches the test from the outside) until
/// `n` operators are registered.
pub async fn wait_registered(svc: &TestService, n: usize) {
    for _ in 0..100 {
        let ops = svc.http_get("/api/v1/operators").await;
        if ops.matches("\"registered\":true").count() >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("operators did not register: {}", svc.http_get("/api/v1/operators").await);
}

/// A sample's value in a Prometheus text exposition (`name` with its labels); 0 when absent.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Whether a command exists (interop tests need SIPp/baresip from Debian).
pub fn have(tool: &str) -> bool {
    std::process::Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().map(|o| o.status.success()).unwrap_or(false)
}

/// A copy of the shipped IVR scripts with a short main menu and 1 s / 1 retry no-input
/// timing, so the timeout path runs in seconds instead of minutes.
pub fn short_timeout_scripts() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("ivr-scripts"), dir.path());
    for (file, menu_prompts) in [("principale.toml", r#"prompts = ["menu_principale", "en/for_english"]"#), ("english.toml", "")] {
        let path = dir.path().join(file);
        let mut text = std::fs::read_to_string(&path).unwrap();
        if !menu_prompts.is_empty() {
            text = text.replace(menu_prompts, r#"prompts = ["scelta_non_valida", "en/for_english"]"#);
        }
        text = text.replace("timeout_seconds = 6", "timeout_seconds = 1").replace("retries = 2", "retries = 1");
        std::fs::write(&path, text).unwrap();
    }
    dir
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// An operator account to create: `(username, password, [(queue, level)])`.
pub type OperatorSpec<'a> = (&'a str, &'a str, &'a [(&'a str, u32)]);

/// Adds operator accounts to the test service's database before it starts.
pub async fn add_operators(config: &Config, operators: &[OperatorSpec<'_>]) {
    use centralino::sip::registrar::Credentials;
    use centralino::store::operators::OperatorRow;
    let store = centralino::store::Store::open(&config.database.url).await.unwrap();
    for (user, password, queues) in operators {
        let creds = Credentials::from_password(user, &config.sip.domain, password);
        let row = OperatorRow {
            username: user.to_string(),
            display_name: user.to_string(),
            ha1_md5: creds.ha1_md5,
            ha1_sha256: creds.ha1_sha256,
            queues: queues.iter().map(|(q, l)| (q.to_string(), *l)).collect(),
            languages: vec!["it".into()],
            max_calls: 1,
        };
        #[allow(clippy::disallowed_methods)] // account creation time in a test fixture
        let now = jiff::Timestamp::now();
        assert!(store.add_operator(&row, now).await.unwrap());
    }
    store.close().await;
}
