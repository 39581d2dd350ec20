//! One call leg's media: its RTP socket and sans-IO `MediaSession`, driven from three sides
//! without a task of its own per packet.
//!
//! - The runtime's commands (play, stop, bridge, hold, retarget) are applied at once, under
//!   the leg's lock, and the first packet of a prompt leaves with them.
//! - A send worker (`send_pool`) sends each next packet on its 5 ms tick grid.
//! - A small receive task wakes only when a datagram arrives (and once per `rtp_timeout` to
//!   look for a dead peer): the source check (`source`: media only from the call's SIP peer,
//!   a NAT latch at most once), DTMF, and relaying to the bridged leg, whose socket sends
//!   the frame straight away.
//!
//! Owns: the socket, the port lease (released with the last reference), the source check's
//! state, liveness (valid RTP only), hold.
//! Must not touch: SIP, engine state. It reports digits and finished playbacks as events.
//! Locking: a leg's lock is never held while another leg's is taken.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::io::unix::{AsyncFd, AsyncFdReadyGuard};
use tokio::io::Interest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::g711::Codec;
use super::library::AudioLibrary;
use super::ports::{PortLease, PortPool};
use super::send_pool::{Grid, Moved, Paced, Place, SendPool, Sent, Worker};
use super::session::{MediaEvent, MediaSession, MediaStats, Playback, SessionParams};
use super::source::{MediaSource, Verdict};
use crate::engine::ids::{CallId, DtmfDigit, OperatorId, PromptId};

/// What the runtime tells a leg to do.
#[derive(Debug)]
pub enum LegCommand {
    Play { seq: u64, prompts: Vec<PromptId> },
    Music,
    Stop,
    /// A re-INVITE changed where to send, or the codec.
    Retarget { remote: SocketAddr, codec: Codec, telephone_event_pt: Option<u8> },
    /// Relay media to and from another leg (the caller ↔ operator bridge).
    Bridge { peer: RelayTarget },
    /// The peer put the call on hold (`sendonly`/`inactive`/`c=0.0.0.0`, RFC 3264 §8.4): send
    /// nothing until it resumes; playback keeps its place and timing.
    Hold(bool),
}

/// Whose media a leg carries: where the call's SIP came from, and where its SDP says to send.
/// The leg accepts RTP only from that peer (`source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalledPeer {
    /// The source IP of the caller's INVITE, or of the operator's REGISTER.
    pub ip: IpAddr,
    /// The SDP's media address (a placeholder until an operator answers).
    pub sdp: SocketAddr,
}

/// Where a bridged leg relays what it receives. Holds the other leg weakly: a bridge never
/// keeps a finished leg (or its port) alive.
#[derive(Clone, Debug)]
pub struct RelayTarget(Weak<Leg>);

/// What a leg reports.
#[derive(Debug)]
pub enum LegEvent {
    Digit { call: CallId, digit: DtmfDigit },
    PlaybackFinished { call: CallId, seq: u64 },
    /// No valid RTP from the peer for the configured time: it is probably gone (a lost BYE).
    /// `operator` is set for an operator's leg.
    MediaTimeout { call: CallId, operator: Option<OperatorId> },
}

/// Process-wide media counters for metrics, updated by every leg.
#[derive(Default)]
pub struct MediaCounters {
    pub packets_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub packets_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub malformed: AtomicU64,
    /// Datagrams dropped because they came from neither the SDP address nor the latched one.
    pub rtp_foreign: AtomicU64,
    pub dtmf_rfc4733: AtomicU64,
    pub missing_prompts: AtomicU64,
    pub dropped_events: AtomicU64,
}

impl MediaCounters {
    fn add(&self, d: &MediaStats) {
        let add = |c: &AtomicU64, n: u64| {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.packets_sent, d.packets_sent);
        add(&self.bytes_sent, d.bytes_sent);
        add(&self.packets_received, d.packets_received);
        add(&self.bytes_received, d.bytes_received);
        add(&self.malformed, d.malformed);
        add(&self.dtmf_rfc4733, d.dtmf_digits);
    }
}

/// Everything a leg needs besides its call's specifics.
#[derive(Clone)]
pub struct MediaContext {
    pub pool: PortPool,
    pub library: Arc<AudioLibrary>,
    pub counters: Arc<MediaCounters>,
    pub events: mpsc::Sender<LegEvent>,
    /// 0 disables the dead-peer check.
    pub rtp_timeout: Duration,
    pub senders: Arc<SendPool<Leg>>,
}

impl MediaContext {
    /// The send workers for `counters`: one per core, a thread each.
    pub fn start_senders(counters: Arc<MediaCounters>) -> std::io::Result<Arc<SendPool<Leg>>> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let publish = move |sent: Sent| {
            counters.add(&MediaStats { packets_sent: sent.packets, bytes_sent: sent.bytes, ..Default::default() })
        };
        #[allow(clippy::disallowed_methods)] // driver: the grid's epoch
        let now = Instant::now();
        Ok(Arc::new(SendPool::start(threads, now, Arc::new(publish))?))
    }
}

/// The runtime's handle on a running leg. Dropping it ends the leg and frees its port.
pub struct MediaLeg {
    leg: Arc<Leg>,
    receiver: JoinHandle<()>,
}

impl MediaLeg {
    /// Binds a port on `ip` and starts the leg for `peer`.
    #[allow(clippy::too_many_arguments)] // one call site (runtime); each argument is a distinct fact of the leg
    pub fn open(
        ctx: &MediaContext,
        call: CallId,
        operator: Option<OperatorId>,
        ip: IpAddr,
        peer: SignalledPeer,
        codec: Codec,
        telephone_event_pt: Option<u8>,
        ssrc: u32,
    ) -> std::io::Result<MediaLeg> {
        let (std_socket, lease) =
            ctx.pool.bind(ip).map_err(|e| std::io::Error::new(std::io::ErrorKind::AddrInUse, e))?;
        std_socket.set_nonblocking(true)?;
        let local = std_socket.local_addr()?;
        // Read interest only. Sends go straight to the socket from whichever thread; with
        // write interest registered, every packet sent would come back as an epoll event
        // (the send buffer drains: an EPOLLOUT edge), a reactor turn per packet for nothing.
        // SAFETY: the `UdpSocket` owns its fd, keeps it open and returns the same one until
        // it is dropped, which happens only with the `AsyncFd` itself.
        let socket = unsafe { AsyncFd::register_with_interest(std_socket, Interest::READABLE) }.map_err(std::io::Error::from)?;
        #[allow(clippy::disallowed_methods)] // driver: the session's start instant
        let now = Instant::now();
        let params = SessionParams {
            codec,
            telephone_event_pt,
            ssrc,
            initial_seq: (ssrc >> 16) as u16,
            initial_timestamp: ssrc.rotate_left(7),
        };
        let leg = Arc::new(Leg {
            socket,
            local,
            call,
            operator,
            state: Mutex::new(LegState {
                session: MediaSession::new(params, now),
                source: MediaSource::new(peer.ip, peer.sdp, now),
                held: false,
                peer: None,
                last_rx: now,
                reported: MediaStats::default(),
                place: Place::default(),
            }),
            closed: AtomicBool::new(false),
            worker: ctx.senders.assign(),
            grid: ctx.senders.grid(),
            library: ctx.library.clone(),
            counters: ctx.counters.clone(),
            events: ctx.events.clone(),
            _lease: lease,
        });
        let receiver = tokio::spawn(receive(leg.clone(), ctx.rtp_timeout));
        Ok(MediaLeg { leg, receiver })
    }

    /// The local RTP address (for SDP).
    pub fn local_addr(&self) -> SocketAddr {
        self.leg.local
    }

    /// Where another leg relays media for this one to send.
    pub fn relay_target(&self) -> RelayTarget {
        RelayTarget(Arc::downgrade(&self.leg))
    }

    /// Applies a command now.
    pub fn command(&self, cmd: LegCommand) {
        #[allow(clippy::disallowed_methods)] // driver clock site
        let now = Instant::now();
        let filing = {
            let mut st = self.leg.lock();
            st.apply(&self.leg, now, cmd);
            let mut events = Vec::new();
            st.flush(&self.leg, &mut events);
            self.leg.report(events);
            self.leg.counters.add(&st.delta());
            let next = st.session.poll_timeout();
            st.place.moved_to(next, &self.leg.grid)
        };
        if let Moved::Filed(filing) = filing {
            self.leg.worker.file(self.leg.clone(), filing);
        }
    }
}

impl Drop for MediaLeg {
    fn drop(&mut self) {
        // The worker forgets a closed leg at its next tick; the port returns with the last
        // reference.
        self.leg.closed.store(true, Ordering::Relaxed);
        self.receiver.abort();
    }
}

/// A leg shared by its handle, its receive task and its send worker.
pub struct Leg {
    socket: AsyncFd<std::net::UdpSocket>,
    local: SocketAddr,
    call: CallId,
    /// Set on an operator's leg: its digits and playbacks are not the caller's.
    operator: Option<OperatorId>,
    state: Mutex<LegState>,
    closed: AtomicBool,
    worker: Arc<Worker<Leg>>,
    grid: Grid,
    library: Arc<AudioLibrary>,
    counters: Arc<MediaCounters>,
    events: mpsc::Sender<LegEvent>,
    _lease: PortLease,
}

struct LegState {
    session: MediaSession,
    /// Which datagrams are the peer's, and where to send.
    source: MediaSource,
    /// On hold: packets are produced (timing continues) but not sent.
    held: bool,
    /// The bridged leg.
    peer: Option<RelayTarget>,
    /// The last valid RTP from the peer (the dead-peer check).
    last_rx: Instant,
    /// The session's counters already added to the process-wide ones.
    reported: MediaStats,
    place: Place,
}

/// Media received on a bridged leg, for the other one.
enum Relay {
    Audio { codec: Codec, payload: Vec<u8> },
    Event { timestamp: u32, marker: bool, payload: [u8; 4] },
}

impl Paced for Leg {
    fn on_tick(&self, now: Instant, ticket: u64, grid: &Grid, sent: &mut Sent) -> Moved {
        if self.closed.load(Ordering::Relaxed) {
            return Moved::Unfiled;
        }
        let mut st = self.lock();
        if !st.place.holds(ticket) {
            return Moved::Unfiled;
        }
        st.session.handle_timeout(now);
        let mut events = Vec::new();
        st.flush(self, &mut events);
        let delta = st.delta();
        sent.packets += delta.packets_sent;
        sent.bytes += delta.bytes_sent;
        let next = st.session.poll_timeout();
        let moved = st.place.moved_to(next, grid);
        drop(st);
        self.report(events);
        moved
    }
}

impl Leg {
    fn lock(&self) -> MutexGuard<'_, LegState> {
        // A panic while holding a leg's lock would be a bug; the state is still a valid
        // session, so the call's media goes on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, packet: &[u8], to: SocketAddr) {
        // Nonblocking: a full socket buffer drops the packet, as RTP may.
        let _ = self.socket.get_ref().send_to(packet, to);
    }

    /// Passes events to the runtime; a full channel drops them (counted).
    fn report(&self, events: Vec<MediaEvent>) {
        for event in events {
            if self.operator.is_some() && matches!(event, MediaEvent::Digit(_) | MediaEvent::PlaybackFinished { .. }) {
                continue; // only the caller's leg drives the IVR
            }
            let event = match event {
                MediaEvent::Digit(digit) => LegEvent::Digit { call: self.call.clone(), digit },
                MediaEvent::PlaybackFinished { token } => LegEvent::PlaybackFinished { call: self.call.clone(), seq: token },
                _ => continue,
            };
            if self.events.try_send(event).is_err() {
                self.counters.dropped_events.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Reads every datagram waiting on the socket. The buffer lives on this stack frame, not
    /// in the receive task: a waiting leg costs no buffer.
    fn drain(&self, guard: &mut AsyncFdReadyGuard<'_, std::net::UdpSocket>) {
        let mut buf = [0u8; 2048];
        // A bounded batch, so one flooding peer cannot hold a runtime thread.
        for _ in 0..64 {
            match guard.try_io(|socket| socket.get_ref().recv_from(&mut buf)) {
                Ok(Ok((len, from))) => self.received(&buf[..len], from),
                Ok(Err(_)) => continue, // e.g. an ICMP port unreachable surfaced as an error
                Err(_would_block) => return,
            }
        }
    }

    fn received(&self, datagram: &[u8], from: SocketAddr) {
        #[allow(clippy::disallowed_methods)] // driver clock site
        let now = Instant::now();
        let mut relays = Vec::new();
        let mut events = Vec::new();
        let peer = {
            let mut st = self.lock();
            let valid = st.session.is_negotiated(datagram);
            match st.source.on_datagram(now, from, valid) {
                Verdict::Accept => {}
                Verdict::Latch => {
                    let sdp = st.source.bound().sdp;
                    tracing::info!(call = %self.call, operator = ?self.operator, %from, %sdp, "RTP source latched (NAT)");
                }
                Verdict::Drop => {
                    // Not the peer's: no digit, no relayed audio, no sign of life.
                    self.counters.rtp_foreign.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            // Any datagram would keep a dead call (and its port) alive: only real media does.
            if valid {
                st.last_rx = now;
            }
            st.session.handle_rtp(now, datagram);
            while let Some(event) = st.session.poll_event() {
                match event {
                    MediaEvent::Audio { codec, payload } => relays.push(Relay::Audio { codec, payload }),
                    MediaEvent::TelephoneEvent { timestamp, marker, payload } => {
                        relays.push(Relay::Event { timestamp, marker, payload })
                    }
                    other => events.push(other),
                }
            }
            self.counters.add(&st.delta());
            st.peer.clone()
        };
        self.report(events);
        if relays.is_empty() {
            return;
        }
        if let Some(peer) = peer.and_then(|p| p.0.upgrade()) {
            peer.relay(now, relays);
        }
    }

    /// Sends what the bridged leg received.
    fn relay(&self, now: Instant, frames: Vec<Relay>) {
        let mut st = self.lock();
        for frame in frames {
            match frame {
                Relay::Audio { codec, payload } => st.session.relay_audio(now, codec, &payload),
                Relay::Event { timestamp, marker, payload } => st.session.relay_event(now, timestamp, marker, payload),
            }
        }
        let mut events = Vec::new();
        st.flush(self, &mut events);
        self.counters.add(&st.delta());
    }

    /// The dead-peer check: reports and starts counting again when nothing arrived for
    /// `timeout`; returns when to look next.
    fn check_dead_peer(&self, now: Instant, timeout: Duration) -> Instant {
        let mut st = self.lock();
        if now.saturating_duration_since(st.last_rx) >= timeout {
            st.last_rx = now;
            let event = LegEvent::MediaTimeout { call: self.call.clone(), operator: self.operator.clone() };
            if self.events.try_send(event).is_err() {
                self.counters.dropped_events.fetch_add(1, Ordering::Relaxed);
            }
        }
        st.last_rx + timeout
    }
}

impl LegState {
    fn apply(&mut self, leg: &Leg, now: Instant, cmd: LegCommand) {
        match cmd {
            LegCommand::Play { seq, prompts } => {
                let clips = prompts
                    .iter()
                    .filter_map(|p| {
                        let clip = leg.library.prompt(p, self.session.codec());
                        if clip.is_none() {
                            leg.counters.missing_prompts.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(prompt = %p, "no recording for prompt; skipped");
                        }
                        clip
                    })
                    .collect();
                self.session.play(now, Playback::Prompts { token: seq, clips });
            }
            LegCommand::Music => {
                let clip = leg.library.music(self.session.codec());
                self.session.play(now, Playback::Music { clip, offset_hint: 0 });
            }
            LegCommand::Stop => self.session.stop(now),
            LegCommand::Hold(held) => self.held = held,
            LegCommand::Bridge { peer } => {
                self.session.set_relaying(now, true);
                self.peer = Some(peer);
            }
            LegCommand::Retarget { remote, codec, telephone_event_pt } => {
                // The re-INVITE (or the operator's 200) came through the dialog: its
                // address is the peer's.
                self.source.retarget(now, remote);
                self.session.set_codec(codec, telephone_event_pt);
            }
        }
    }

    /// Sends the session's queued packets and collects its events. On hold, or while the
    /// source check has nowhere safe to send (an SDP naming someone else, not yet confirmed
    /// by its RTP), the packets are made and dropped: playback keeps its timing.
    fn flush(&mut self, leg: &Leg, events: &mut Vec<MediaEvent>) {
        let to = if self.held { None } else { self.source.send_to() };
        while let Some(packet) = self.session.poll_transmit() {
            if let Some(to) = to {
                leg.send(&packet, to);
            }
            self.session.recycle(packet);
        }
        while let Some(event) = self.session.poll_event() {
            events.push(event);
        }
    }

    /// What the session counted since the last call.
    fn delta(&mut self) -> MediaStats {
        let now = self.session.stats();
        let r = &self.reported;
        let delta = MediaStats {
            packets_sent: now.packets_sent - r.packets_sent,
            bytes_sent: now.bytes_sent - r.bytes_sent,
            packets_received: now.packets_received - r.packets_received,
            bytes_received: now.bytes_received - r.bytes_received,
            malformed: now.malformed - r.malformed,
            dtmf_digits: now.dtmf_digits - r.dtmf_digits,
            ..MediaStats::default()
        };
        self.reported = now.clone();
        delta
    }
}

/// The leg's receive task: wakes when datagrams arrive, and once per `timeout` (when set)
/// to look for a dead peer. Aborted when the leg's handle drops.
async fn receive(leg: Arc<Leg>, timeout: Duration) {
    let check = !timeout.is_zero();
    #[allow(clippy::disallowed_methods)] // driver clock site
    let first = Instant::now() + timeout;
    let dead_peer = tokio::time::sleep_until(first.into());
    tokio::pin!(dead_peer);
    loop {
        tokio::select! {
            ready = leg.socket.readable() => match ready {
                Ok(mut guard) => leg.drain(&mut guard),
                Err(_) => return,
            },
            _ = &mut dead_peer, if check => {
                #[allow(clippy::disallowed_methods)] // driver clock site
                let next = leg.check_dead_peer(Instant::now(), timeout);
                dead_peer.as_mut().reset(next.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ids::PromptId;
    use std::ops::RangeInclusive;

    #[test]
    fn counters_add_what_changed() {
        let c = MediaCounters::default();
        c.add(&MediaStats { packets_sent: 3, bytes_sent: 516, dtmf_digits: 1, ..Default::default() });
        c.add(&MediaStats { packets_sent: 2, ..Default::default() });
        assert_eq!(c.packets_sent.load(Ordering::Relaxed), 5);
        assert_eq!(c.bytes_sent.load(Ordering::Relaxed), 516);
        assert_eq!(c.dtmf_rfc4733.load(Ordering::Relaxed), 1);
    }

    /// A leg on a real socket, its packets read by another: a 1 s prompt arrives as 50
    /// packets with consecutive sequence numbers, then `PlaybackFinished`; dropping the leg
    /// gives its port back.
    #[tokio::test]
    async fn a_prompt_leaves_as_fifty_paced_packets_and_the_port_comes_back() {
        let prompt = PromptId::new(crate::engine::ids::Language::It, "benvenuto");
        let pcm = vec![1000i16; 8000];
        let library = Arc::new(AudioLibrary::new([(&prompt, &pcm[..])], &[0i16; 160]));
        let counters = Arc::new(MediaCounters::default());
        let (events, mut rx) = mpsc::channel(8);
        let ctx = MediaContext {
            pool: PortPool::new(47000..=47009, 42),
            library,
            counters: counters.clone(),
            events,
            rtp_timeout: Duration::ZERO,
            senders: MediaContext::start_senders(counters.clone()).expect("threads"),
        };
        let phone = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ip = "127.0.0.1".parse().unwrap();
        let call = CallId("c1".into());
        let peer = SignalledPeer { ip, sdp: phone.local_addr().unwrap() };
        let leg = MediaLeg::open(&ctx, call, None, ip, peer, Codec::Pcmu, None, 42).unwrap();
        leg.command(LegCommand::Play { seq: 9, prompts: vec![prompt] });
        let mut seqs = Vec::new();
        let mut buf = [0u8; 512];
        while seqs.len() < 50 {
            let (n, from) = phone.recv_from(&mut buf).await.unwrap();
            assert_eq!(from, leg.local_addr(), "sent from the leg's own port");
            let rtp = rtp_rs::RtpReader::new(&buf[..n]).unwrap();
            seqs.push(u16::from(rtp.sequence_number()));
        }
        assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)), "{seqs:?}");
        match rx.recv().await {
            Some(LegEvent::PlaybackFinished { seq: 9, .. }) => {}
            other => panic!("expected the end of the prompt, got {other:?}"),
        }
        assert_eq!(counters.packets_sent.load(Ordering::Relaxed), 50);
        assert_eq!(ctx.pool.in_use(), 1);
        drop(leg);
        tokio::time::timeout(Duration::from_secs(5), ctx.pool.all_returned()).await.expect("the port returns");
    }

    /// A context for legs on real loopback sockets, with no prompts.
    fn context(ports: RangeInclusive<u16>, rtp_timeout: Duration) -> (MediaContext, mpsc::Receiver<LegEvent>) {
        let counters = Arc::new(MediaCounters::default());
        let (events, rx) = mpsc::channel(64);
        let ctx = MediaContext {
            pool: PortPool::new(ports, 7),
            library: Arc::new(AudioLibrary::new(std::iter::empty(), &[0i16; 160])),
            counters: counters.clone(),
            events,
            rtp_timeout,
            senders: MediaContext::start_senders(counters).expect("threads"),
        };
        (ctx, rx)
    }

    fn pcmu(fill: u8, seq: u16) -> Vec<u8> {
        let b = rtp_rs::RtpPacketBuilder::new().payload_type(0).ssrc(5).sequence(rtp_rs::Seq::from(seq));
        b.timestamp(u32::from(seq) * 160).payload(&[fill; 160]).build().expect("valid")
    }

    fn key_press(seq: u16) -> Vec<u8> {
        let b = rtp_rs::RtpPacketBuilder::new().payload_type(101).ssrc(6).sequence(rtp_rs::Seq::from(seq));
        b.timestamp(4242).marked(seq == 0).payload(&[2, 0x8A, 0, 160]).build().expect("valid")
    }

    async fn socket(ip: &str) -> tokio::net::UdpSocket {
        tokio::net::UdpSocket::bind((ip.parse::<IpAddr>().unwrap(), 0)).await.unwrap()
    }

    /// A caller's leg bridged to an operator's: audio and key presses sent to the caller's
    /// port from another address are dropped and counted, and never reach the operator;
    /// the caller's own audio does.
    #[tokio::test]
    async fn a_foreign_source_is_dropped_counted_and_never_relayed() {
        let (ctx, _events) = context(47010..=47019, Duration::ZERO);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (caller, operator, attacker) = (socket("127.0.0.1").await, socket("127.0.0.1").await, socket("127.0.0.2").await);
        let open = |phone: &tokio::net::UdpSocket, op: Option<OperatorId>| {
            let peer = SignalledPeer { ip, sdp: phone.local_addr().unwrap() };
            MediaLeg::open(&ctx, CallId("c1".into()), op, ip, peer, Codec::Pcmu, Some(101), 9).unwrap()
        };
        let (a, b) = (open(&caller, None), open(&operator, Some(OperatorId("op1".into()))));
        a.command(LegCommand::Bridge { peer: b.relay_target() });
        b.command(LegCommand::Bridge { peer: a.relay_target() });
        for seq in 0..10 {
            attacker.send_to(&pcmu(0x77, seq), a.local_addr()).await.unwrap();
            attacker.send_to(&key_press(seq), a.local_addr()).await.unwrap();
        }
        for seq in 0..5 {
            caller.send_to(&pcmu(0x11, seq), a.local_addr()).await.unwrap();
        }
        // The caller's frames arrive after the attacker's were handled (one socket, in order).
        let mut heard = Vec::new();
        let mut buf = [0u8; 512];
        while heard.iter().filter(|&&f| f == 0x11).count() < 5 {
            let received = tokio::time::timeout(Duration::from_secs(5), operator.recv_from(&mut buf)).await;
            let (n, _) = received.expect("the caller's audio is relayed").unwrap();
            let rtp = rtp_rs::RtpReader::new(&buf[..n]).unwrap();
            assert_eq!(rtp.payload_type(), 0, "no key press passed through");
            heard.push(rtp.payload()[0]);
        }
        assert!(heard.iter().all(|&f| f == 0x11), "only the caller's audio: {heard:x?}");
        assert_eq!(ctx.counters.rtp_foreign.load(Ordering::Relaxed), 20);
        assert_eq!(ctx.counters.packets_received.load(Ordering::Relaxed), 5);
    }

    /// The dead-peer check counts only valid RTP from the peer: bytes from its own address
    /// and RTP from elsewhere do not keep the leg alive.
    #[tokio::test]
    async fn only_valid_rtp_from_the_peer_keeps_a_leg_alive() {
        let (ctx, mut events) = context(47020..=47029, Duration::from_millis(400));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (phone, attacker) = (socket("127.0.0.1").await, socket("127.0.0.3").await);
        let peer = SignalledPeer { ip, sdp: phone.local_addr().unwrap() };
        let leg = MediaLeg::open(&ctx, CallId("c2".into()), None, ip, peer, Codec::Pcmu, Some(101), 9).unwrap();
        let to = leg.local_addr();
        let noise = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            for seq in 0.. {
                tick.tick().await;
                let _ = phone.send_to(&[0], to).await;
                let _ = attacker.send_to(&pcmu(0x77, seq), to).await;
            }
        });
        let event = tokio::time::timeout(Duration::from_secs(3), events.recv()).await.expect("the dead-peer check fires");
        assert!(matches!(event, Some(LegEvent::MediaTimeout { operator: None, .. })), "{event:?}");
        noise.abort();
        assert!(ctx.counters.rtp_foreign.load(Ordering::Relaxed) > 0);
        assert!(ctx.counters.malformed.load(Ordering::Relaxed) > 0, "the peer's bytes reached the session");
    }

    /// An SDP naming an address other than the signalling peer's gets nothing until valid
    /// RTP comes from there; a NAT latch sends to where the peer's media comes from.
    #[tokio::test]
    async fn no_media_to_an_unconfirmed_third_party_and_a_latch_sends_back() {
        let prompt = PromptId::new(crate::engine::ids::Language::It, "benvenuto");
        let pcm = vec![1000i16; 80_000];
        let (mut ctx, _events) = context(47030..=47039, Duration::ZERO);
        ctx.library = Arc::new(AudioLibrary::new([(&prompt, &pcm[..])], &[0i16; 160]));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (third, nat) = (socket("127.0.0.9").await, socket("127.0.0.1").await);
        let peer = SignalledPeer { ip, sdp: third.local_addr().unwrap() };
        let leg = MediaLeg::open(&ctx, CallId("c3".into()), None, ip, peer, Codec::Pcmu, Some(101), 9).unwrap();
        leg.command(LegCommand::Play { seq: 1, prompts: vec![prompt] });
        let mut buf = [0u8; 512];
        // 300 ms of prompt (15 packets) made, none sent to the third party.
        let sent = tokio::time::timeout(Duration::from_millis(300), third.recv_from(&mut buf)).await;
        assert!(sent.is_err(), "nothing reaches an address the SIP peer is not");
        assert!(ctx.counters.packets_sent.load(Ordering::Relaxed) >= 10, "the prompt's timing runs");
        // The signalling peer's own RTP, from a port its SDP did not name: latched, answered.
        nat.send_to(&pcmu(0x11, 1), leg.local_addr()).await.unwrap();
        let (_, from) = tokio::time::timeout(Duration::from_secs(5), nat.recv_from(&mut buf)).await.expect("media follows the latch").unwrap();
        assert_eq!(from, leg.local_addr());
    }
}
