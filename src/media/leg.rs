//! One call leg's media: its RTP socket and sans-IO `MediaSession`, driven from three sides
//! without a task of its own per packet.
//!
//! - The runtime's commands (play, stop, bridge, hold, retarget) are applied at once, under
//!   the leg's lock, and the first packet of a prompt leaves with them.
//! - A send worker (`send_pool`) sends each next packet on its 5 ms tick grid.
//! - A small receive task wakes only when a datagram arrives (and once per `rtp_timeout` to
//!   look for a dead peer): DTMF, symmetric-RTP latching, and relaying to the bridged leg,
//!   whose socket sends the frame straight away.
//!
//! Owns: the socket, the port lease (released with the last reference), latching, hold.
//! Must not touch: SIP, engine state. It reports digits and finished playbacks as events.
//! Locking: a leg's lock is never held while another leg's is taken.

use std::net::SocketAddr;
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

/// Where a bridged leg relays what it receives. Holds the other leg weakly: a bridge never
/// keeps a finished leg (or its port) alive.
#[derive(Clone, Debug)]
pub struct RelayTarget(Weak<Leg>);

/// What a leg reports.
#[derive(Debug)]
pub enum LegEvent {
    Digit { call: CallId, digit: DtmfDigit },
    PlaybackFinished { call: CallId, seq: u64 },
    /// No RTP arrived for the configured time: the peer is probably gone (a lost BYE).
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
    /// Binds a port on `ip` and starts the leg, sending to `remote`.
    #[allow(clippy::too_many_arguments)] // one call site (runtime); each argument is a distinct fact of the leg
    pub fn open(
        ctx: &MediaContext,
        call: CallId,
        operator: Option<OperatorId>,
        ip: std::net::IpAddr,
        remote: SocketAddr,
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
                remote,
                latched: false,
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
    remote: SocketAddr,
    latched: bool,
    /// On hold: packets are produced (timing continues) but not sent.
    held: bool,
    /// The bridged leg.
    peer: Option<RelayTarget>,
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
            st.last_rx = now;
            // Symmetric RTP: a caller behind NAT sends from an address other than its SDP;
            // answer where its media really comes from.
            if !st.latched && from != st.remote {
                st.remote = from;
            }
            st.latched = true;
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
                self.remote = remote;
                self.latched = false;
                self.session.set_codec(codec, telephone_event_pt);
            }
        }
    }

    /// Sends the session's queued packets (unless on hold) and collects its events.
    fn flush(&mut self, leg: &Leg, events: &mut Vec<MediaEvent>) {
        while let Some(packet) = self.session.poll_transmit() {
            if !self.held {
                leg.send(&packet, self.remote);
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
            pool: PortPool::new(47000..=47009),
            library,
            counters: counters.clone(),
            events,
            rtp_timeout: Duration::ZERO,
            senders: MediaContext::start_senders(counters.clone()).expect("threads"),
        };
        let phone = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ip = "127.0.0.1".parse().unwrap();
        let call = CallId("c1".into());
        let leg = MediaLeg::open(&ctx, call, None, ip, phone.local_addr().unwrap(), Codec::Pcmu, None, 42).unwrap();
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
}
