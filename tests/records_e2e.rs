//! Call records end to end: a crash (SIGKILL) with calls in progress, and a database outage
//! while calls go on. The first runs the real binary; the second needs PostgreSQL
//! (`CENTRALINO_TEST_POSTGRES_URL`, set by CI).

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use centralino::engine::call::Outcome;
use common::uac::Uac;
use common::{TestOptions, TestService};

/// Polls `f` every 50 ms until it returns `Some`, for at most `limit` (waiting on a database
/// or a process from outside: there is no event to await).
async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Every call row's `(id, outcome)`; empty when the database cannot be read.
async fn open_calls(url: &str) -> Vec<(String, Option<String>)> {
    sqlx::any::install_default_drivers();
    let Ok(pool) = sqlx::AnyPool::connect(url).await else { return Vec::new() };
    let rows = sqlx::query_as("SELECT id, outcome FROM calls ORDER BY id").fetch_all(&pool).await.unwrap_or_default();
    pool.close().await;
    rows
}

fn spawn_binary(config: &centralino::config::Config, sip: u16, http: SocketAddr) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_centralino"))
        .arg("serve")
        .env("CENTRALINO_SIP__LISTEN", format!(r#"["udp:127.0.0.1:{sip}"]"#))
        .env("CENTRALINO_HTTP__LISTEN", http.to_string())
        .env("CENTRALINO_HTTP__TOKEN_FILE", &config.http.token_file)
        .env("CENTRALINO_DATABASE__URL", &config.database.url)
        .env("CENTRALINO_MEDIA__RTP_PORTS", &config.media.rtp_ports)
        .env("CENTRALINO_IVR__SCRIPTS", config.ivr.scripts.display().to_string())
        .env("CENTRALINO_SCHEDULE__HOLIDAYS", "none")
        .env("CENTRALINO_SCHEDULE__EXTRA_HOLIDAYS", "[]")
        .env("CENTRALINO_LIMITS__TRUNK_SOURCES", r#"["127.0.0.1"]"#)
        .envs(["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"].map(|d| (format!("CENTRALINO_SCHEDULE__{d}"), r#"["00:00-24:00"]"#)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the centralino binary runs")
}

#[tokio::test]
async fn a_killed_service_leaves_every_call_row_and_closes_the_open_ones_as_interrupted_at_restart() {
    let (config, _data) = TestService::prepare(&TestOptions { rtp_slot: 40, ..Default::default() });
    let sip = common::sipp::free_sip_port();
    let http: SocketAddr = format!("127.0.0.1:{}", common::free_tcp_port()).parse().unwrap();
    let mut service = spawn_binary(&config, sip, http);
    eventually(Duration::from_secs(20), || async { tokio::net::TcpStream::connect(http).await.ok() }).await.expect("it starts");
    // Written before the listener binds: the admin token the binary generated.
    let token = std::fs::read_to_string(&config.http.token_file).expect("serve wrote the admin token");
    let token = token.trim();

    // Two callers in the tax queue, one who already hung up.
    let target: SocketAddr = format!("127.0.0.1:{sip}").parse().unwrap();
    let mut phones = Vec::new();
    for _ in 0..3 {
        let mut uac = Uac::udp(target).await;
        let offer = uac.sdp_offer("0 101", "a=rtpmap:101 telephone-event/8000\r\n");
        assert_eq!(uac.call(&offer).await.status(), Some(200));
        assert!(uac.count_rtp(Duration::from_millis(200)).await > 0);
        uac.send_dtmf(2, 101).await;
        phones.push(uac);
    }
    // All three in the queue before one hangs up: a BYE right behind the key press may
    // otherwise be handled first (SIP and media reach the runtime on different channels),
    // and that caller would rightly count as an IVR hang-up.
    let queued = eventually(Duration::from_secs(10), || async {
        let calls = common::http_get(http, token, "/api/v1/calls").await;
        (calls.matches("\"stage\":\"queued\"").count() == 3).then_some(())
    })
    .await;
    assert!(queued.is_some(), "three callers queued: {}", common::http_get(http, token, "/api/v1/calls").await);
    phones[2].hang_up().await;
    let url = config.database.url.clone();
    let rows = eventually(Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            let rows = open_calls(&url).await;
            (rows.len() == 3 && rows.iter().filter(|r| r.1.is_some()).count() == 1).then_some(rows)
        }
    })
    .await
    .expect("three rows, one finished, written while the service runs");
    assert_eq!(rows.iter().filter(|r| r.1.as_deref() == Some("abandoned")).count(), 1);

    service.start_kill().unwrap(); // SIGKILL: no shutdown, no BYE, no final records
    service.wait().await.unwrap();
    let mut restarted = spawn_binary(&config, sip, http);
    eventually(Duration::from_secs(20), || async { tokio::net::TcpStream::connect(http).await.ok() }).await.expect("it restarts");
    let rows = open_calls(&config.database.url).await;
    let outcomes: Vec<Option<&str>> = rows.iter().map(|r| r.1.as_deref()).collect();
    assert_eq!(rows.len(), 3, "no row lost: {rows:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == Some("interrupted")).count(), 2, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == Some("abandoned")).count(), 1, "{outcomes:?}");
    restarted.start_kill().unwrap();
}

/// A TCP proxy to PostgreSQL that the test can cut (connection refused, live connections
/// dropped) and restore.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(to: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let up2 = up.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let mut cuts = cuts.clone();
                cuts.borrow_and_update(); // only cuts after this connection began end it
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(to).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Proxy { addr, up, cut }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        let n = *self.cut.borrow() + 1;
        let _ = self.cut.send(n);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_down_calls_go_on_and_their_records_land_when_it_returns() {
    let Ok(base) = std::env::var("CENTRALINO_TEST_POSTGRES_URL") else {
        eprintln!("CENTRALINO_TEST_POSTGRES_URL is not set: skipping the PostgreSQL outage test");
        return;
    };
    // A fresh schema, reached through the cuttable proxy.
    let schema = format!("t_outage_{}", std::process::id());
    let admin = sqlx::PgPool::connect(&base).await.expect("PostgreSQL reachable");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&admin).await.unwrap();
    let pg: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let proxy = Proxy::start(pg).await;
    let db_path = base.rsplit('/').next().unwrap_or("test").split('?').next().unwrap_or("test");
    let user = base.split("://").nth(1).and_then(|r| r.split('@').next()).filter(|u| !u.contains('/')).unwrap_or("postgres");
    let url = format!("postgres://{user}@{}/{db_path}?options=-c%20search_path%3D{schema}", proxy.addr);
    let direct = format!("postgres://{user}@{pg}/{db_path}?options=-c%20search_path%3D{schema}");

    let opts = TestOptions { rtp_slot: 41, extra_env: vec![("CENTRALINO_DATABASE__URL".into(), url.clone())], ..Default::default() };
    let mut svc = TestService::start(opts).await;

    proxy.down();
    for _ in 0..2 {
        let mut uac = Uac::udp(svc.udp()).await;
        let offer = uac.sdp_offer("0 101", "a=rtpmap:101 telephone-event/8000\r\n");
        assert_eq!(uac.call(&offer).await.status(), Some(200), "calls are answered with the database down");
        assert!(uac.count_rtp(Duration::from_millis(200)).await > 0);
        uac.send_dtmf(2, 101).await;
        eventually(Duration::from_secs(5), || async { svc.http_get("/api/v1/calls").await.contains("\"stage\":\"queued\"").then_some(()) })
            .await
            .expect("queued");
        assert_eq!(uac.hang_up().await.status(), Some(200));
        assert_eq!(svc.next_record(Duration::from_secs(5)).await.outcome, Outcome::Abandoned);
    }
    let backlog = eventually(Duration::from_secs(10), || async {
        let m = svc.http_get("/metrics").await;
        (common::metric(&m, "centralino_store_errors_total") > 0.0).then_some(m)
    })
    .await
    .expect("the failing writes are counted");
    assert!(common::metric(&backlog, "centralino_store_written_total") < 4.0, "nothing could be written yet");

    proxy.restore();
    let landed = eventually(Duration::from_secs(30), || {
        let url = direct.clone();
        async move {
            let rows = open_calls(&url).await;
            (rows.len() == 2 && rows.iter().all(|r| r.1.as_deref() == Some("abandoned"))).then_some(rows)
        }
    })
    .await;
    if landed.is_none() {
        let m = svc.http_get("/metrics").await;
        let store: Vec<&str> = m.lines().filter(|l| l.starts_with("centralino_store")).collect();
        panic!("records did not land after the database came back: rows {:?}, {store:?}", open_calls(&direct).await);
    }
    svc.service.shutdown().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&admin).await.unwrap();
}
