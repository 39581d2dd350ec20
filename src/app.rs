//! The composition root: builds the engine, the drivers and the admin listener from a
//! `Config`, wires their channels, and runs them until shutdown.
//!
//! Owns: start-up order and shutdown order (stop accepting INVITEs → end calls → stop
//! listeners). Must not touch: business rules.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};

use crate::config::{Config, Listen};
use std::collections::HashMap;

use crate::engine::ids::{Language, OperatorId, QueueName};
use crate::engine::operators::OperatorAccount;
use crate::sip::registrar::Credentials;
use crate::store::operators::OperatorRow;
use crate::engine::{Engine, Input};
use crate::http::AdminState;
use crate::media::leg::{MediaContext, MediaCounters};
use crate::media::library::AudioLibrary;
use crate::media::ports::PortPool;
use crate::metrics::MetricsSources;
use crate::runtime::{Inputs, Runtime};
use crate::sip::{SipCounters, SipService, SipSettings};
use crate::store::writer::{spawn_writer, WriterStats};
use crate::store::Store;

/// A running service. Dropping it does not stop it: call `shutdown`.
pub struct Service {
    pub sip_udp: Vec<SocketAddr>,
    pub sip_tcp: Vec<SocketAddr>,
    pub http: SocketAddr,
    /// An admin token of the HTTP API (the first configured one, else the generated one),
    /// for in-process clients such as tests.
    pub admin_token: String,
    pub ports: PortPool,
    /// The SIP edge: bans, admission counts.
    pub edge: Arc<crate::sip::edge::Edge>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl Service {
    /// The sources banned now.
    pub fn bans(&self) -> Vec<crate::sip::bans::BanView> {
        self.edge.bans()
    }

    /// Ends every call, stops the listeners and waits for the control loop.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.done.await;
    }

    /// Waits until the service stops by itself (after `shutdown` was signalled elsewhere).
    pub async fn wait(self) {
        let _ = self.done.await;
    }
}

/// Loads everything the config names and starts the service.
pub async fn start(config: Config) -> anyhow::Result<Service> {
    start_with_records(config, None).await
}

/// As [`start`], also sending every finished call's record to `records` (tests, store).
pub async fn start_with_records(
    config: Config,
    records: Option<crate::runtime::RecordSink>,
) -> anyhow::Result<Service> {
    // Before anything binds: `validate` reports this too, but a `Config` can be built by hand.
    if let Some(problem) = config.http.exposure_problem() {
        anyhow::bail!("http.listen: {problem}");
    }
    let admin_tokens = crate::http::token_file::admin_tokens(&config.http)?;
    let admin_token = admin_tokens[0].clone();
    let queue_names: Vec<QueueName> = config.queues.iter().map(|q| QueueName(q.name.clone())).collect();
    let ivr = crate::ivr_scripts::load(&config.ivr.scripts, &queue_names).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow::anyhow!("the IVR scripts have problems:\n{}", list.join("\n"))
    })?;
    let schedule = config
        .schedule
        .compile()
        .map_err(|e| anyhow::anyhow!("schedule: {}", e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")))?;
    let library = AudioLibrary::new(
        ivr.prompts.iter().map(|(id, audio)| (id, audio.samples.as_slice())),
        &ivr.music.samples,
    );
    tracing::info!(prompts = library.len(), "prompts loaded");
    let mut queues = Vec::new();
    for q in &config.queues {
        queues.push(q.setup().map_err(|e| anyhow::anyhow!("queue {}: {e}", q.name))?);
    }
    let mut needed = crate::engine::engine_prompt_names();
    for q in &queues {
        needed.extend(q.prompt_names());
    }
    let missing = ivr.missing(needed.iter().map(String::as_str));
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|p| p.to_string()).collect();
        anyhow::bail!("prompts the engine needs have no recording: {}", list.join(", "));
    }
    let seed = {
        use rand::RngCore;
        rand::rngs::OsRng.next_u64()
    };
    let engine = Engine::new(Arc::new(ivr.scripts), schedule, queues)
        .with_rng_seed(seed)
        .with_answer_delay(Duration::from_millis(config.sip.answer_after_ms))
        .with_drain(Duration::from_secs(u64::from(config.schedule.drain_minutes) * 60));

    let (sip_tx, sip_rx) = mpsc::channel(4096);
    let (media_tx, media_rx) = mpsc::channel(4096);
    let (admin_tx, admin_rx) = mpsc::channel(64);

    let sip_counters = Arc::new(SipCounters::default());
    let media_counters = Arc::new(MediaCounters::default());
    let ports = PortPool::new(config.rtp_ports(), {
        use rand::RngCore;
        rand::rngs::OsRng.next_u64()
    });
    let listen = config.sip_listen();
    let settings = SipSettings {
        udp: listen.iter().filter_map(|l| if let Listen::Udp(a) = l { Some(*a) } else { None }).collect(),
        tcp: listen.iter().filter_map(|l| if let Listen::Tcp(a) = l { Some(*a) } else { None }).collect(),
        advertise_ip: config.sip.advertise_ip.parse().ok(),
        user_agent: config.sip.user_agent.clone(),
        node: config.node.clone(),
        domain: config.sip.domain.clone(),
        digest_algorithms: config
            .sip
            .digest_algorithms
            .iter()
            .filter_map(|a| crate::sip::digest::DigestAlgorithm::from_token(a))
            .collect(),
        edge: config.limits.edge(ports.capacity()),
    };
    let store = Store::open(&config.database.url)
        .await
        .with_context(|| format!("opening the database {}", config.database.url))?
        .with_node(config.node.clone());
    let store = if config.database.hash_callers {
        let candidate = {
            use rand::RngCore;
            let mut bytes = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            hex::encode(bytes)
        };
        let salt = store.install_salt(&candidate).await.context("reading the caller-hash salt")?;
        store.with_caller_hasher(crate::store::retention::CallerHasher::new(salt))
    } else {
        store
    };
    if config.database.retention_days > 0 {
        tokio::spawn(apply_retention(store.clone(), config.database.retention_days));
    }
    let closed = store.close_interrupted(crate::clock::Now::read().wall).await.context("closing interrupted calls")?;
    if closed > 0 {
        tracing::warn!(calls = closed, "closed call records left open by a crash as `interrupted`");
    }
    let operators = store.operators().await.context("loading operators")?;
    let directory = accounts_of(&operators);
    let writer_stats = Arc::new(WriterStats::default());
    let (writer, writer_task) = spawn_writer(store.clone(), 8192, writer_stats.clone());

    let sip = Arc::new(SipService::start(settings, sip_tx, sip_counters.clone()).await.context("starting SIP")?);
    sip.set_credentials(credentials_of(&operators));
    let sip_udp = sip.udp_addrs().to_vec();
    let sip_tcp = sip.tcp_addrs().to_vec();
    let edge = sip.edge().clone();

    let media = MediaContext {
        pool: ports.clone(),
        library: Arc::new(library),
        counters: media_counters.clone(),
        events: media_tx,
        rtp_timeout: Duration::from_secs(config.media.rtp_timeout_secs),
        senders: MediaContext::start_senders(media_counters.clone()).context("starting the RTP send workers")?,
    };
    let mut runtime = Runtime::new(engine, media, sip.clone(), Some(writer), records, config.node.clone());
    runtime.handle_input(Input::DirectoryLoaded { operators: directory });

    let http_listener = tokio::net::TcpListener::bind(&config.http.listen)
        .await
        .with_context(|| format!("binding the admin listener {}", config.http.listen))?;
    let http = http_listener.local_addr()?;
    if !http.ip().is_loopback() {
        tracing::warn!(%http, "the admin HTTP API listens off loopback: only its bearer tokens protect it");
    }
    let admin_tx_reload = admin_tx.clone();
    let admin = AdminState {
        requests: admin_tx,
        metrics: Arc::new(MetricsSources {
            sip: sip_counters,
            media: media_counters,
            ports: ports.clone(),
            writer: writer_stats,
            service: sip.clone(),
            control: runtime.load(),
            version: env!("CARGO_PKG_VERSION"),
        }),
        access: Arc::new(crate::http::auth::Policy::new(
            crate::http::tokens::Tokens::new(&admin_tokens, &config.http.read_tokens),
            config.http.public_metrics,
            &config.http.allowed_hosts,
        )),
    };
    let (http_stop_tx, http_stop_rx) = oneshot::channel::<()>();
    let http_task = tokio::spawn(async move {
        let stop = async move {
            let _ = http_stop_rx.await;
        };
        if let Err(e) = crate::http::serve(http_listener, admin, stop).await {
            tracing::error!(error = %e, "admin listener failed");
        }
    });

    tokio::spawn(reload_directory(store.clone(), sip.clone(), admin_tx_reload, operators));

    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let done = tokio::spawn(async move {
        let inputs = Inputs { sip: sip_rx, media: media_rx, admin: admin_rx };
        let sip_ref = sip.clone();
        let shutdown = async move {
            let _ = stop_rx.await;
            // New INVITEs get 503 from here on; the runtime then ends the calls.
            sip_ref.stop_accepting();
        };
        runtime.run(inputs, shutdown).await;
        sip.shutdown();
        // The runtime (and its writer handle) is gone: the writer drains, bounded in time
        // since it retries while the database is down.
        if tokio::time::timeout(Duration::from_secs(10), writer_task).await.is_err() {
            tracing::error!("the store writer did not drain in 10 s: some records may be lost");
        }
        store.close().await;
        let _ = http_stop_tx.send(());
        let _ = http_task.await;
        tracing::info!("stopped");
    });
    tracing::info!(?sip_udp, ?sip_tcp, %http, "centralino is serving");
    Ok(Service { sip_udp, sip_tcp, http, admin_token, ports, edge, stop: Some(stop_tx), done })
}

/// Runs until SIGINT or SIGTERM, then shuts down cleanly.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let service = start(config).await?;
    wait_for_signal().await;
    tracing::info!("signal received: shutting down");
    service.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The engine's view of the stored accounts.
pub fn accounts_of(rows: &[OperatorRow]) -> Vec<OperatorAccount> {
    rows.iter()
        .map(|r| OperatorAccount {
            id: OperatorId(r.username.clone()),
            display_name: r.display_name.clone(),
            queues: r.queues.iter().map(|(q, l)| (QueueName(q.clone()), *l)).collect(),
            languages: r.languages.iter().filter_map(|l| Language::from_code(l)).collect(),
            max_calls: r.max_calls,
        })
        .collect()
}

/// The registrar's view of the stored accounts.
pub fn credentials_of(rows: &[OperatorRow]) -> HashMap<String, Credentials> {
    rows.iter()
        .map(|r| (r.username.clone(), Credentials { ha1_md5: r.ha1_md5.clone(), ha1_sha256: r.ha1_sha256.clone() }))
        .collect()
}

/// How often the operator accounts are re-read, so `centralino operators …` takes effect on
/// a running service.
const DIRECTORY_RELOAD: Duration = Duration::from_secs(10);

async fn reload_directory(
    store: Store,
    sip: Arc<SipService>,
    admin: mpsc::Sender<crate::runtime::AdminRequest>,
    mut known: Vec<OperatorRow>,
) {
    loop {
        tokio::time::sleep(DIRECTORY_RELOAD).await;
        let rows = match store.operators().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read the operators");
                continue;
            }
        };
        if rows == known {
            continue;
        }
        sip.set_credentials(credentials_of(&rows));
        if admin.send(crate::runtime::AdminRequest::Directory(accounts_of(&rows))).await.is_err() {
            return; // shutting down
        }
        tracing::info!(operators = rows.len(), "operator accounts reloaded");
        known = rows;
    }
}

/// Deletes records older than the retention period at start-up and then once a day.
async fn apply_retention(store: Store, days: u32) {
    loop {
        match store.delete_older_than(days, crate::clock::Now::read().wall).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, days, "deleted records past the retention period"),
            Err(e) => tracing::warn!(error = %e, "retention: cannot delete old records"),
        }
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    }
}
