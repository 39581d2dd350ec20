//! SIP: the one module that imports the SIP crate (rsipstack, whose `sip` module is rsip's
//! maintained fork). Transports, the RFC 3261 transaction layer (rsipstack), dialogs of the
//! caller legs, SDP offer/answer, and the mapping between SIP and the runtime's events.
//!
//! Owns: sockets for SIP, transactions, dialogs. Must not touch: call policy (the engine
//! decides), the database, media sockets.

mod call_leg;
pub mod counters;
mod dispatcher;
mod inspector;
pub mod operator_leg;
pub mod screen;
pub mod sdp;

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

/// The methods centralino answers, for `Allow` headers.
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO";

/// What the SIP layer reports to the runtime.
#[derive(Debug)]
pub enum SipEvent {
    /// A new caller; answer with `SipCallCommand::Answer` on `leg`.
    Incoming {
        call: CallId,
        caller: String,
        remote_media: RemoteMedia,
        /// The local address to advertise in SDP for this caller.
        local_ip: IpAddr,
        leg: CallLegHandle,
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
}

/// Shared by the dispatcher and the call legs.
pub(crate) struct SipContext {
    pub dialogs: Arc<DialogLayer>,
    pub events: mpsc::Sender<SipEvent>,
    pub counters: Arc<SipCounters>,
    pub settings: SipSettings,
    pub shutting_down: AtomicBool,
    pub next_call: AtomicU64,
    /// The local SIP port per transport, for Contact headers.
    pub udp_port: Option<u16>,
    pub tcp_port: Option<u16>,
    /// Registered operators' contacts (filled by the registrar).
    pub locations: std::sync::Mutex<std::collections::HashMap<OperatorId, OperatorContact>>,
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
        let transport = TransportLayer::new(cancel.child_token());
        let mut udp_addrs = Vec::new();
        for addr in &settings.udp {
            let socket = tokio::net::UdpSocket::bind(addr).await?;
            let local = socket.local_addr()?;
            udp_addrs.push(local);
            let screened = screen::ScreenedUdp::new(socket, counters.clone(), settings.user_agent.clone());
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
        let ctx = Arc::new(SipContext {
            dialogs: Arc::new(DialogLayer::new(endpoint.inner.clone())),
            events,
            counters,
            udp_port: udp_addrs.first().map(|a| a.port()),
            tcp_port: tcp_addrs.first().map(|a| a.port()),
            settings,
            shutting_down: AtomicBool::new(false),
            next_call: AtomicU64::new(1),
            locations: Default::default(),
        });
        for listener in tcp_listeners {
            tokio::spawn(accept_tcp(listener, endpoint.inner.clone(), cancel.child_token()));
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
        let contact = self.ctx.locations.lock().unwrap_or_else(|e| e.into_inner()).get(&spec.operator).cloned();
        operator_leg::start(self.ctx.clone(), spec, contact)
    }

    /// The local IP to advertise towards an operator (for the operator leg's RTP).
    pub fn local_ip_for(&self, operator: &OperatorId) -> IpAddr {
        if let Some(ip) = self.ctx.settings.advertise_ip {
            return ip;
        }
        let peer = self.ctx.locations.lock().unwrap_or_else(|e| e.into_inner()).get(operator).map(|c| c.source.ip());
        local_ip_towards(peer.unwrap_or(IpAddr::from([127, 0, 0, 1])))
    }

    /// Live dialogs (for leak checks).
    pub fn dialog_count(&self) -> usize {
        self.ctx.dialogs.len()
    }

    /// Closes every transport.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

/// The local IP the kernel would use to reach `peer`: the right address for SDP and
/// Contact on a single-homed host, and 127.0.0.1 for a peer on loopback.
pub fn local_ip_towards(peer: IpAddr) -> IpAddr {
    let bind: SocketAddr = if peer.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
    std::net::UdpSocket::bind(bind)
        .and_then(|s| s.connect(SocketAddr::new(peer, 9)).map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .unwrap_or(if peer.is_ipv4() { IpAddr::from([127, 0, 0, 1]) } else { IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]) })
}

/// Accepts SIP over TCP and hands each stream to rsipstack's transport layer.
async fn accept_tcp(
    listener: tokio::net::TcpListener,
    endpoint: rsipstack::transaction::endpoint::EndpointInnerRef,
    cancel: CancellationToken,
) {
    let Ok(local) = listener.local_addr() else { return };
    let local = SipAddr { r#type: Some(rsipstack::sip::Transport::Tcp), addr: local.into() };
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        match TcpConnection::from_stream(stream, local.clone(), Some(cancel.child_token())) {
            Ok(conn) => endpoint.transport_layer.add_connection(SipConnection::Tcp(conn)),
            Err(e) => tracing::debug!(error = %e, "TCP connection not usable"),
        }
    }
}
