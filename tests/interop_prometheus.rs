//! Interop: centralino's /metrics under promtool and a real Prometheus, with SIPp traffic.
//!
//! * `promtool check metrics` accepts a live scrape (before and after traffic);
//! * `promtool check config|rules|test rules` accept ops/prometheus/;
//! * a real `prometheus` (loopback, 1 s scrapes, ops/prometheus/alerts.yml loaded) sees a
//!   caller waiting, then exactly the answered and abandoned calls SIPp made, and the
//!   service-level recording rules compute the right values from the live label sets;
//! * every panel query of ops/grafana/centralino.json returns data through the HTTP API.
//!
//! Ignored by plain `cargo test`; CI runs it with `--include-ignored`.
//! Needs `prometheus`, `promtool` (Debian `prometheus`) and `sipp` (Debian `sip-tester`).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use centralino::engine::call::Outcome;
use common::{sipp, TestOptions, TestService};
use serde_json::Value;

fn info_caller_keys(digit: &'static str, hold_ms: &'static str, require_remote_bye: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("from_user", "3331234567"),
        ("digits", digit),
        ("pre_dtmf_ms", "300"),
        ("gap_ms", "300"),
        ("hold_ms", hold_ms),
        ("require_remote_bye", require_remote_bye),
        ("info_duration", "160"),
    ]
}

// ------------------------------------------------------------------------------------------
// promtool

fn ops(path: &str) -> PathBuf {
    common::root().join("ops").join(path)
}

/// Runs promtool with `args` (and `stdin`), returning (success, combined output).
async fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("promtool")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("promtool runs (apt-get install --no-install-recommends prometheus)");
    if let Some(text) = stdin {
        let mut input = child.stdin.take().unwrap();
        input.write_all(text.as_bytes()).await.unwrap();
        drop(input);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.expect("promtool finishes").unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn assert_promtool(args: &[&str], stdin: Option<&str>) {
    let (ok, out) = promtool(args, stdin).await;
    assert!(ok, "promtool {} failed:\n{out}", args.join(" "));
}

// ------------------------------------------------------------------------------------------
// A real Prometheus

/// A Prometheus server on a loopback port, killed (and its TSDB removed) on drop.
struct Prometheus {
    addr: SocketAddr,
    _child: tokio::process::Child,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrapes `target` every second as job `centralino` and evaluates ops/prometheus/alerts.yml.
    fn start(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let rules = ops("prometheus/alerts.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules:?}\n\
             scrape_configs:\n  - job_name: centralino\n    metrics_path: /metrics\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules = rules.display().to_string(),
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = common::free_tcp_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = tokio::process::Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(["--storage.tsdb.retention.time=1h", "--log.level=warn"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus runs (apt-get install --no-install-recommends prometheus)");
        Prometheus { addr: SocketAddr::from(([127, 0, 0, 1], port)), _child: child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET path` as HTTP/1.0 (so the body is neither chunked nor kept alive); None when
    /// Prometheus is not listening yet.
    async fn get(&self, path: &str) -> Option<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.addr).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
    }

    /// An instant query through `/api/v1/query`: the whole JSON answer.
    async fn query_raw(&self, expr: &str) -> Value {
        let body = self.get(&format!("/api/v1/query?query={}", urlencode(expr))).await.unwrap_or_default();
        serde_json::from_str(&body).unwrap_or(Value::String(body.clone()))
    }

    /// An instant query's vector as (labels, value); empty on any error.
    async fn query(&self, expr: &str) -> Vec<(Value, f64)> {
        let answer = self.query_raw(expr).await;
        answer["data"]["result"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| (r["metric"].clone(), r["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Polls `expr` until `done` accepts its result; Err with the last answer after `within`.
    /// Prometheus learns about the service only by scraping it (every second), so there is no
    /// event to wait for: this is a bounded poll of its HTTP API with short sleeps.
    async fn try_eventually(&self, expr: &str, within: Duration, done: impl Fn(&[(Value, f64)]) -> bool) -> Result<Vec<(Value, f64)>, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let rows = self.query(expr).await;
            if done(&rows) {
                return Ok(rows);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("`{expr}` never met the condition within {within:?}; last answer {rows:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn eventually(&self, expr: &str, within: Duration, done: impl Fn(&[(Value, f64)]) -> bool) -> Vec<(Value, f64)> {
        match self.try_eventually(expr, within, done).await {
            Ok(rows) => rows,
            Err(e) => panic!("Prometheus: {e}\nlog:\n{}", self.log()),
        }
    }

    /// Polls until the single sample of `expr` equals `want`.
    async fn eventually_eq(&self, expr: &str, want: f64, within: Duration) {
        self.eventually(expr, within, |rows| rows.len() == 1 && (rows[0].1 - want).abs() < 1e-9).await;
    }

    async fn try_eq(&self, expr: &str, want: f64, within: Duration) -> Result<(), String> {
        self.try_eventually(expr, within, |rows| rows.len() == 1 && (rows[0].1 - want).abs() < 1e-6).await.map(|_| ())
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// The Grafana dashboard's queries

/// Every `targets[].expr` of the dashboard (rows' nested panels included), with its panel title.
fn dashboard_queries(path: &Path) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push((p["title"].as_str().unwrap_or("?").to_string(), expr.to_string()));
                }
            }
            walk(&p["panels"], out);
        }
    }
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the dashboard is JSON");
    assert_eq!(dash["templating"]["list"].as_array().unwrap().iter().filter(|v| v["name"] == "queue").count(), 1);
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// Grafana's template variables as Grafana would expand them for "All" over the test's run.
fn expand(expr: &str) -> String {
    let mut e = expr.to_string();
    for (var, value) in [
        ("${queue}", ".*"),
        ("$queue", ".*"),
        ("${job}", "centralino"),
        ("$job", "centralino"),
        ("${__rate_interval}", "1m"),
        ("$__rate_interval", "1m"),
        ("${__interval}", "1m"),
        ("$__interval", "1m"),
        // The whole run, like the dashboard's default "today so far".
        ("${__range}", "10m"),
        ("$__range", "10m"),
    ] {
        e = e.replace(var, value);
    }
    assert!(!e.contains('$'), "a template variable the test does not know: {expr}");
    e
}

// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Prometheus, promtool and SIPp"]
async fn prometheus_scrapes_live_metrics_evaluates_the_rules_and_every_dashboard_query_has_data() {
    // tributi: one SIPp operator, no wrap-up. educazione: nobody, so its caller waits.
    let opts = TestOptions {
        rtp_slot: 37,
        queue_settings: vec![
            ("tributi".into(), "wrap_up_secs".into(), toml::Value::Integer(0)),
            // Estimates from the first call on (not after 10 measured calls), so the second
            // caller is told a wait and the expected-wait accuracy panels get data.
            ("tributi".into(), "expected_talk_secs".into(), toml::Value::Integer(3)),
        ],
        ..Default::default()
    };
    let (config, data) = TestService::prepare(&opts);
    common::add_operators(&config, &[("op1", "s1", &[("tributi", 1)])]).await;
    let mut svc = TestService::start_with(config, data).await;

    // promtool: a live exposition, the shipped config, rules and rule unit tests.
    let scrape = svc.http_get("/metrics").await;
    assert!(scrape.contains("centralino_queue_waiting{queue=\"tributi\"} 0"), "{scrape}");
    assert_promtool(&["check", "metrics"], Some(&scrape)).await;
    let (config_file, rules_file, tests_file) = (ops("prometheus/prometheus.yml"), ops("prometheus/alerts.yml"), ops("prometheus/alerts_test.yml"));
    assert_promtool(&["check", "config", config_file.to_str().unwrap()], None).await;
    assert_promtool(&["check", "rules", rules_file.to_str().unwrap()], None).await;
    assert_promtool(&["test", "rules", tests_file.to_str().unwrap()], None).await;

    // A real Prometheus scraping the service's admin listener every second.
    let prom = Prometheus::start(svc.service.http);
    prom.eventually_eq("up{job=\"centralino\"}", 1.0, Duration::from_secs(30)).await;

    let dir = tempfile::tempdir().unwrap();
    let _phone = sipp::spawn_operator(dir.path(), svc.udp(), "op1", "s1", "answer", 3000, Duration::from_secs(120));
    common::wait_registered(&svc, 1).await;
    prom.eventually_eq("sum(centralino_operators{job=\"centralino\",queue=\"tributi\",state=\"available\"})", 1.0, Duration::from_secs(10))
        .await;

    // 1. Two callers press 2 (Tributi), 2 s apart; op1 talks 3 s with each and hangs up, so
    //    the second one waits for op1 first. Both answered.
    let keys = info_caller_keys("2", "30000", "1");
    let run = sipp::run(dir.path(), svc.udp(), "caller_info_dtmf.xml", &keys, &["-m", "2", "-r", "1", "-rp", "2000"], Duration::from_secs(40)).await;
    assert!(run.success, "tributi callers answered and hung up by op1\n{}", run.stderr);
    for _ in 0..2 {
        let r = svc.next_record(Duration::from_secs(10)).await;
        assert_eq!((r.outcome, r.queue.map(|q| q.0)), (Outcome::Answered, Some("tributi".to_string())));
    }

    // 2. A caller presses 3 (Politiche educative), where nobody is logged in: while they
    //    wait, Prometheus must show one caller waiting there; after 8 s they hang up.
    let keys = info_caller_keys("3", "8000", "0");
    let waiting = "centralino_queue_waiting{job=\"centralino\",queue=\"educazione\"}";
    let (run, seen) = tokio::join!(
        sipp::run(dir.path(), svc.udp(), "caller_info_dtmf.xml", &keys, &["-m", "1"], Duration::from_secs(30)),
        async {
            prom.eventually_eq(waiting, 1.0, Duration::from_secs(15)).await;
            prom.eventually(
                "centralino_queue_oldest_wait_seconds{job=\"centralino\",queue=\"educazione\"}",
                Duration::from_secs(5),
                |rows| rows.len() == 1 && rows[0].1 > 0.0,
            )
            .await
        },
    );
    assert!(run.success, "the educazione caller hung up by themselves\n{}", run.stderr);
    assert!(seen[0].1 < 30.0, "{seen:?}");
    let r = svc.next_record(Duration::from_secs(10)).await;
    assert_eq!((r.outcome, r.queue.map(|q| q.0)), (Outcome::Abandoned, Some("educazione".to_string())));
    prom.eventually_eq(waiting, 0.0, Duration::from_secs(10)).await;

    // 3. What was done is what Prometheus reads.
    // Everything from here on is collected, so one run lists every missing metric or panel.
    let within = Duration::from_secs(10);
    let mut problems: Vec<String> = Vec::new();
    let q = |queue: &str, outcome: &str| format!("centralino_queue_calls_total{{job=\"centralino\",queue=\"{queue}\",outcome=\"{outcome}\"}}");
    problems.extend(prom.try_eq(&q("tributi", "answered"), 2.0, within).await.err());
    problems.extend(prom.try_eq(&q("educazione", "abandoned"), 1.0, within).await.err());
    problems.extend(prom.try_eq("sum(centralino_queue_calls_total{job=\"centralino\"})", 3.0, within).await.err());
    problems.extend(prom.try_eq("centralino_calls_total{job=\"centralino\",outcome=\"answered\"}", 2.0, within).await.err());
    problems.extend(prom.try_eq("centralino_calls_total{job=\"centralino\",outcome=\"abandoned\"}", 1.0, within).await.err());
    let h = |queue: &str, outcome: &str, suffix: &str| {
        format!("centralino_queue_wait_seconds_{suffix}{{job=\"centralino\",queue=\"{queue}\",outcome=\"{outcome}\"}}")
    };
    problems.extend(prom.try_eq(&h("tributi", "answered", "count"), 2.0, within).await.err());
    problems.extend(prom.try_eq(&h("educazione", "abandoned", "count"), 1.0, within).await.err());
    // Both tributi callers were answered within the 20 s threshold; the abandon came after > 5 s.
    problems.extend(prom.try_eq(&h("tributi", "answered", "bucket").replace('}', ",le=\"20\"}"), 2.0, within).await.err());
    problems.extend(prom.try_eq(&h("educazione", "abandoned", "bucket").replace('}', ",le=\"5\"}"), 0.0, within).await.err());
    problems.extend(prom.try_eq("sum(centralino_talk_seconds_count{job=\"centralino\",queue=\"tributi\"})", 2.0, within).await.err());
    problems.extend(prom.try_eventually(
        "sum(centralino_sip_messages_total{job=\"centralino\",direction=\"in\",method=\"INVITE\",status=\"\"})",
        within,
        |rows| rows.len() == 1 && rows[0].1 >= 3.0,
    )
    .await
    .err());
    for name in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"] {
        let expr = format!("{name}{{job=\"centralino\"}}");
        problems.extend(prom.try_eventually(&expr, within, |rows| rows.len() == 1 && rows[0].1 > 0.0).await.err());
    }

    // 4. The recording rules on the live label sets (le="20" is tributi's threshold):
    //    tributi 2 of 2 answered within the threshold, educazione 1 of 1 abandoned.
    let close_to = |want: f64| move |rows: &[(Value, f64)]| rows.len() == 1 && (rows[0].1 - want).abs() < 1e-6;
    problems.extend(prom.try_eventually("queue:centralino_service_level:ratio15m{queue=\"tributi\"}", within, close_to(1.0)).await.err());
    problems.extend(prom.try_eventually("queue:centralino_service_level:ratio15m{queue=\"educazione\"}", within, close_to(0.0)).await.err());
    problems.extend(prom.try_eventually("queue:centralino_abandon:ratio15m{queue=\"educazione\"}", within, close_to(1.0)).await.err());
    problems.extend(prom.try_eventually("queue:centralino_abandon:ratio8h{queue=\"tributi\"}", within, close_to(0.0)).await.err());
    problems.extend(prom.try_eventually("queue:centralino_service_level:ratio8h{queue=\"tributi\"}", within, close_to(1.0)).await.err());
    let rules = prom.get("/api/v1/rules").await.expect("rules API");
    let rules: Value = serde_json::from_str(&rules).unwrap();
    let mut unhealthy = Vec::new();
    let mut count = 0;
    for group in rules["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            count += 1;
            if rule["health"] != "ok" {
                unhealthy.push(format!("{} {} {}", rule["name"], rule["health"], rule["lastError"]));
            }
        }
    }
    if count < 20 || !unhealthy.is_empty() {
        problems.push(format!("{count} rules loaded, unhealthy: {unhealthy:?}"));
    }

    // 5. Every dashboard query returns data.
    let queries = dashboard_queries(&ops("grafana/centralino.json"));
    assert!(queries.len() >= 30, "{} queries", queries.len());
    for (title, expr) in &queries {
        let answer = prom.query_raw(&expand(expr)).await;
        let rows = answer["data"]["result"].as_array().map(|r| r.len()).unwrap_or(0);
        if answer["status"] != "success" || rows == 0 {
            problems.push(format!("dashboard panel [{title}] has no data: {expr}\n  -> {answer}"));
        }
    }
    // The exposition with every histogram and SIP message series present still lints clean.
    let scrape = svc.http_get("/metrics").await;
    for name in ["centralino_queue_wait_seconds_bucket", "centralino_talk_seconds_bucket", "centralino_ewt_error_seconds_bucket", "centralino_sip_messages_total"] {
        if !scrape.contains(name) {
            problems.push(format!("/metrics has no {name}"));
        }
    }
    let (ok, lint) = promtool(&["check", "metrics"], Some(&scrape)).await;
    if !ok {
        problems.push(format!("promtool check metrics after traffic:\n{lint}"));
    }
    assert!(problems.is_empty(), "{} problems ({} dashboard queries checked):\n{}", problems.len(), queries.len(), problems.join("\n"));

    svc.service.shutdown().await;
}
