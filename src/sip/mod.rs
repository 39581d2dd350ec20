//! SIP: the one module that imports the SIP crate (rsipstack, whose `sip` module is rsip's
//! maintained fork). Transports, the RFC 3261 transaction layer (rsipstack), dialogs of the
//! caller legs, SDP offer/answer, and the mapping between SIP and the runtime's events.
//!
//! Owns: sockets for SIP, transactions, dialogs. Must not touch: call policy (the engine
//! decides), the database, media sockets.

pub mod admission;
pub mod bans;
mod call_leg;
pub mod counters;
mod dialog_peers;
mod dialog_states;
mod dispatcher;
pub mod digest;
pub mod edge;
mod inspector;
mod local_ip;
mod location;
mod nonce;
pub mod operator_leg;
pub mod registrar;
mod throttle;
pub mod screen;
pub mod sdp;
mod source;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::{SipAddr, SipConnection};
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::TransportLayer;
use rsipstack::EndpointBuilder;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use call_leg::{CallLegHandle, SipCallCommand};
pub use operator_leg::{OfferSpec, OperatorContact, OperatorLegHandle};
pub use counters::SipCounters;
pub use sdp::RemoteMedia;

use crate::engine::ids::{CallId, DtmfDigit, OperatorId};

/// What an operator's softphone can dial instead of the service number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureCode {
    /// `*1`: pause (reason "pausa").
    Pause,
    /// `*2`: resume after a pause.
    Resume,
    /// `*0`: log out (no calls until logging in again).
    Logout,
    /// `*9`: log in again.
    Login,
    /// Any other `*…`.
    Unknown,
}

impl FeatureCode {
    /// From the dialled user part, e.g. `*1`; `None` for the service number.
    pub fn from_dialled(user: &str) -> Option<FeatureCode> {
        let code = user.strip_prefix('*').or_else(|| user.strip_prefix("%2A")).or_else(|| user.strip_prefix("%2a"))?;
        Some(match code {
            "1" => FeatureCode::Pause,
            "2" => FeatureCode::Resume,
            "0" => FeatureCode::Logout,
            "9" => FeatureCode::Login,
            _ => FeatureCode::Unknown,
        })
    }
}

/// The methods centralino answers, for `Allow` headers.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REGISTER";

/// What the SIP layer reports to the runtime.
#[derive(Debug)]
pub enum SipEvent {
    /// A new caller; answer with `SipCallCommand::Answer` on `leg`.
    Incoming {
        call: CallId,
        caller: String,
        remote_media: RemoteMedia,
        /// Where the INVITE came from: the only IP the call's RTP is accepted from, besides
        /// the SDP's exact address.
        peer_ip: IpAddr,
        /// The local address to advertise in SDP for this caller.
        local_ip: IpAddr,
        leg: CallLegHandle,
        /// Set when a registered operator dialled a feature code instead of the service.
        feature: Option<(OperatorId, FeatureCode)>,
    },
    /// The caller's ACK arrived.
    Established { call: CallId },
    /// The dialog ended (BYE, CANCEL, timeout, or after our own BYE).
    Ended { call: CallId },
    /// A DTMF digit by SIP INFO.
    Digit { call: CallId, digit: DtmfDigit },
    /// A re-INVITE moved the media (hold, unhold, new address).
    MediaChanged { call: CallId, remote_media: RemoteMedia },
    /// The operator answered the offer of `call`.
    OperatorAnswered { call: CallId, operator: OperatorId, remote_media: RemoteMedia },
    /// The offer failed: busy (486/600/603), another error, no contact, or our CANCEL.
    OperatorFailed { call: CallId, operator: OperatorId, busy: bool },
    /// The operator's answered leg ended (either side's BYE).
    OperatorEnded { call: CallId, operator: OperatorId },
    /// The operator's first contact registered.
    OperatorRegistered { operator: OperatorId },
    /// The operator's last contact expired or was removed.
    OperatorUnregistered { operator: OperatorId },
}

/// How to run the SIP service.
#[derive(Clone, Debug)]
pub struct SipSettings {
    pub udp: Vec<SocketAddr>,
    pub tcp: Vec<SocketAddr>,
    pub advertise_ip: Option<IpAddr>,
    pub user_agent: String,
    pub node: String,
    /// The SIP domain (digest realm, From host of offers).
    pub domain: String,
    /// Algorithms offered in REGISTER challenges, in order.
    pub digest_algorithms: Vec<digest::DigestAlgorithm>,
    /// Limits, bans and scanners at the edge.
    pub edge: edge::EdgeSettings,
}

/// Shared by the dispatcher and the call legs.
pub(crate) struct SipContext {
    pub dialogs: Arc<DialogLayer>,
    /// Every dialog's states, routed to its leg by Call-ID.
    pub dialog_states: dialog_states::DialogStates,
    pub events: mpsc::Sender<SipEvent>,
    pub counters: Arc<SipCounters>,
    pub settings: SipSettings,
    pub shutting_down: AtomicBool,
    pub next_call: AtomicU64,
    /// The local SIP port per transport, for Contact headers.
    pub udp_port: Option<u16>,
    pub tcp_port: Option<u16>,
    /// The registrar (sans-IO) behind a std Mutex: locked for one REGISTER or lookup,
    /// never across an `.await`.
    pub registrar: std::sync::Mutex<registrar::Registrar>,
    /// Operators' digest HA1s by username, from the database.
    pub credentials: std::sync::RwLock<std::collections::HashMap<String, registrar::Credentials>>,
    /// Which local address reaches which peer (SDP and Contact).
    pub local_ips: local_ip::LocalIps,
    /// Bans, scanners and admission of new calls.
    pub edge: Arc<edge::Edge>,
    /// Each dialog's peer address: in-dialog requests from anyone else are refused.
    pub dialog_peers: dialog_peers::DialogPeers,
}

impl SipContext {
    /// The local IP to advertise (SDP, Contact) towards `peer`: the configured
    /// `advertise_ip`, else the one the routing table picks.
    pub(crate) fn local_ip_towards(&self, peer: IpAddr) -> IpAddr {
        self.settings.advertise_ip.unwrap_or_else(|| self.local_ips.towards(peer))
    }

    /// Whether `ip` is the source of a registered operator's live binding.
    pub(crate) fn is_operator_address(&self, ip: IpAddr) -> bool {
        self.registrar().has_source_ip(crate::clock::Now::read().instant, ip)
    }

    pub(crate) fn registrar(&self) -> std::sync::MutexGuard<'_, registrar::Registrar> {
        // A poisoned lock means a panic mid-update elsewhere; the bindings are still usable.
        self.registrar.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest live binding of an operator.
    pub(crate) fn contact_of(&self, operator: &OperatorId) -> Option<OperatorContact> {
        let now = crate::clock::Now::read().instant;
        let registrar = self.registrar();
        let binding = registrar.contacts(now, &operator.0).into_iter().max_by_key(|b| b.expires_at)?;
        Some(OperatorContact {
            uri: binding.contact.to_string(),
            source: binding.source,
            tcp: !matches!(binding.transport, rsipstack::sip::Transport::Udp),
        })
    }

    /// Reports registrar events to the runtime.
    pub(crate) async fn report(&self, events: Vec<registrar::RegistrarEvent>) {
        for event in events {
            let event = match event {
                registrar::RegistrarEvent::Registered { username } => SipEvent::OperatorRegistered { operator: OperatorId(username) },
                registrar::RegistrarEvent::Unregistered { username } => SipEvent::OperatorUnregistered { operator: OperatorId(username) },
                registrar::RegistrarEvent::Blocked { source, username, scope, secs } => {
                    tracing::warn!(%source, %username, scope, secs, "repeated authentication failures: REGISTER blocked");
                    continue;
                }
                registrar::RegistrarEvent::Guesser { source, username } => {
                    let detail = format!("authentication failures across usernames (last: {username:?})");
                    self.edge.ban(source, bans::BanReason::PasswordGuessing, &detail);
                    continue;
                }
            };
            let _ = self.events.send(event).await;
        }
    }
}

/// Transactions the SIP stack holds (see `SipService::transaction_counts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionCounts {
    /// In progress: a request being answered, or a response being retransmitted.
    pub running: usize,
    /// Ended, remembered to absorb late retransmissions.
    pub finished: usize,
    /// Answered INVITEs whose ACK has not arrived.
    pub waiting_ack: usize,
}

/// The running SIP service.
pub struct SipService {
    ctx: Arc<SipContext>,
    cancel: CancellationToken,
    udp_addrs: Vec<SocketAddr>,
    tcp_addrs: Vec<SocketAddr>,
}

impl SipService {
    /// Binds the transports and starts serving. UDP sockets bound to port 0 report their
    /// real port in `udp_addrs`.
    pub async fn start(
        settings: SipSettings,
        events: mpsc::Sender<SipEvent>,
        counters: Arc<SipCounters>,
    ) -> anyhow::Result<SipService> {
        let cancel = CancellationToken::new();
        let edge = edge::Edge::new(settings.edge.clone());
        let transport = TransportLayer::new(cancel.child_token());
        let mut udp_addrs = Vec::new();
        for addr in &settings.udp {
            let socket = tokio::net::UdpSocket::bind(addr).await?;
            let local = socket.local_addr()?;
            udp_addrs.push(local);
            let screened = screen::ScreenedUdp::new(socket, counters.clone(), settings.user_agent.clone(), edge.clone());
            let conn = UdpConnection::from_socket(Arc::new(screened), None, Some(cancel.child_token()))
                .await
                .map_err(|e| anyhow::anyhow!("udp {local}: {e}"))?;
            transport.add_transport(conn.into());
        }
        // TCP listeners are ours (rsipstack's binds lazily, inside `serve`, so neither its
        // readiness nor a port-0 address could be known): accepted streams are handed to
        // the transport layer, which serves them.
        let mut tcp_listeners = Vec::new();
        for addr in &settings.tcp {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("tcp {addr}: {e}"))?;
            tcp_listeners.push(listener);
        }
        let tcp_addrs: Vec<SocketAddr> =
            tcp_listeners.iter().filter_map(|l| l.local_addr().ok()).collect();
        let endpoint = EndpointBuilder::new()
            .with_user_agent(&settings.user_agent)
            .with_transport_layer(transport)
            .with_cancel_token(cancel.child_token())
            .with_inspector(Box::new(inspector::CountingInspector::new(counters.clone())))
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| anyhow::anyhow!("sip endpoint: {e}"))?;
        let settings_domain = settings.domain.clone();
        let challenge_algorithms = settings.digest_algorithms.clone();
        let ctx = Arc::new(SipContext {
            dialogs: Arc::new(DialogLayer::new(endpoint.inner.clone())),
            dialog_states: dialog_states::DialogStates::start(),
            events,
            counters,
            udp_port: udp_addrs.first().map(|a| a.port()),
            tcp_port: tcp_addrs.first().map(|a| a.port()),
            settings,
            shutting_down: AtomicBool::new(false),
            next_call: AtomicU64::new(1),
            local_ips: local_ip::LocalIps::default(),
            registrar: std::sync::Mutex::new(registrar::Registrar::new(
                registrar::RegistrarConfig {
                    realm: settings_domain.clone(),
                    // MD5 only by default: baresip 1.0 and SIPp 3.6.1 fail on any SHA-256
                    // challenge. Answers with SHA-256 (RFC 8760) are accepted all the same.
                    challenge_algorithms: challenge_algorithms.clone(),
                    ..Default::default()
                },
                &registrar_secret(),
                {
                    use rand::RngCore;
                    rand::rngs::OsRng.next_u64()
                },
            )),
            credentials: Default::default(),
            edge: edge.clone(),
            dialog_peers: Default::default(),
        });
        tokio::spawn(expire_registrations(ctx.clone(), cancel.child_token()));
        for listener in tcp_listeners {
            tokio::spawn(accept_tcp(listener, endpoint.inner.clone(), edge.clone(), cancel.child_token()));
        }
        tokio::spawn(async move { endpoint.serve().await });
        tokio::spawn(dispatcher::run(ctx.clone(), incoming));
        Ok(SipService { ctx, cancel, udp_addrs, tcp_addrs })
    }

    /// The bound UDP addresses.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The bound TCP addresses.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }

    /// From now on new INVITEs get 503.
    pub fn stop_accepting(&self) {
        self.ctx.shutting_down.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Offers `spec.call` to an operator's registered contact. The result arrives as
    /// `OperatorAnswered` / `OperatorFailed`; `OperatorFailed` at once when not registered.
    pub fn offer(&self, spec: OfferSpec) -> OperatorLegHandle {
        let contact = self.ctx.contact_of(&spec.operator);
        operator_leg::start(self.ctx.clone(), spec, contact)
    }

    /// The IP an operator's phone registered from (its leg's RTP must come from there, or
    /// from its SDP's address); `None` when not registered.
    pub fn operator_ip(&self, operator: &OperatorId) -> Option<IpAddr> {
        self.ctx.contact_of(operator).map(|c| c.source.ip())
    }

    /// The local IP to advertise towards an operator (for the operator leg's RTP).
    pub fn local_ip_for(&self, operator: &OperatorId) -> IpAddr {
        let peer = self.operator_ip(operator);
        self.ctx.local_ip_towards(peer.unwrap_or(IpAddr::from([127, 0, 0, 1])))
    }

    /// Replaces the operators' credentials (start-up, and after accounts change).
    pub fn set_credentials(&self, credentials: std::collections::HashMap<String, registrar::Credentials>) {
        *self.ctx.credentials.write().unwrap_or_else(|e| e.into_inner()) = credentials;
    }

    /// Bans, scanners and refused calls, for metrics and the API.
    pub fn edge(&self) -> &Arc<edge::Edge> {
        &self.ctx.edge
    }

    /// Registrar counters for metrics.
    pub fn registrar_stats(&self) -> registrar::RegistrarStats {
        self.ctx.registrar().stats()
    }

    /// Live dialogs (for leak checks).
    pub fn dialog_count(&self) -> usize {
        self.ctx.dialogs.len()
    }

    /// The SIP stack's transactions now, for leak checks: every one should end within
    /// its timers (32 s over UDP) of its last message.
    pub fn transaction_counts(&self) -> TransactionCounts {
        let stats = self.ctx.dialogs.endpoint.get_stats();
        TransactionCounts {
            running: stats.running_transactions,
            finished: stats.finished_transactions,
            waiting_ack: stats.waiting_ack,
        }
    }

    /// Closes every transport.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

/// Accepts SIP over TCP and hands each stream to rsipstack's transport layer. A banned
/// source's connection is closed at once. When accepting fails (out of descriptors), the
/// loop waits a little instead of spinning on the same error.
async fn accept_tcp(
    listener: tokio::net::TcpListener,
    endpoint: rsipstack::transaction::endpoint::EndpointInnerRef,
    edge: Arc<edge::Edge>,
    cancel: CancellationToken,
) {
    let Ok(local) = listener.local_addr() else { return };
    let local = SipAddr { r#type: Some(rsipstack::sip::Transport::Tcp), addr: local.into() };
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a SIP TCP connection");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => continue,
                }
            }
        };
        if edge.drops(peer.ip()) {
            continue; // dropped: closes the connection
        }
        let _ = stream.set_nodelay(true);
        match TcpConnection::from_stream(stream, local.clone(), Some(cancel.child_token())) {
            Ok(conn) => endpoint.transport_layer.add_connection(SipConnection::Tcp(conn)),
            Err(e) => tracing::debug!(error = %e, "TCP connection not usable"),
        }
    }
}

/// A per-process secret for nonces: nonces do not outlive a restart (phones re-register
/// after a `stale` challenge), so it need not be stored.
fn registrar_secret() -> [u8; 32] {
    use std::sync::OnceLock;
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    *SECRET.get_or_init(|| {
        use rand::RngCore;
        let mut s = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut s);
        s
    })
}

/// Drives the registrar's expiry timer.
async fn expire_registrations(ctx: Arc<SipContext>, cancel: CancellationToken) {
    loop {
        let next = ctx.registrar().poll_timeout();
        // At most a second: a REGISTER meanwhile may have brought an earlier expiry.
        let cap = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        let at = next.map(|t| tokio::time::Instant::from(t).min(cap)).unwrap_or(cap);
        let sleep = tokio::time::sleep_until(at);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = sleep => {}
        }
        let events = ctx.registrar().handle_timeout(crate::clock::Now::read().instant);
        ctx.report(events).await;
        ctx.edge.tidy();
    }
}
