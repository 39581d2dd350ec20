//! The tokio driver of one call leg's media: owns the RTP socket and a sans-IO
//! `MediaSession`, pacing on the session's deadlines.
//!
//! Owns: the socket, the port lease (released when the task ends), symmetric-RTP latching.
//! Must not touch: SIP, engine state. It reports digits and finished playbacks as events.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::g711::Codec;
use super::library::AudioLibrary;
use super::ports::{PortLease, PortPool};
use super::session::{MediaEvent, MediaSession, Playback, SessionParams};
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
    Bridge { peer: mpsc::Sender<RelayFrame> },
    /// The peer put the call on hold (`sendonly`/`inactive`/`c=0.0.0.0`, RFC 3264 §8.4): send
    /// nothing until it resumes; playback keeps its place and timing.
    Hold(bool),
}

/// Media received on one bridged leg, for the other.
#[derive(Debug)]
pub enum RelayFrame {
    Audio { codec: Codec, payload: Vec<u8> },
    Event { timestamp: u32, marker: bool, payload: [u8; 4] },
}

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

/// Everything a leg needs besides its call's specifics.
#[derive(Clone)]
pub struct MediaContext {
    pub pool: PortPool,
    pub library: Arc<AudioLibrary>,
    pub counters: Arc<MediaCounters>,
    pub events: mpsc::Sender<LegEvent>,
    /// 0 disables the dead-peer check.
    pub rtp_timeout: Duration,
}

/// The runtime's handle on a running leg. Dropping it ends the leg and frees its port.
pub struct MediaLeg {
    commands: mpsc::Sender<LegCommand>,
    relay: mpsc::Sender<RelayFrame>,
    local: SocketAddr,
}

impl MediaLeg {
    /// Binds a port on `ip` and starts the leg's task, sending to `remote`.
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
        let socket = UdpSocket::from_std(std_socket)?;
        let local = socket.local_addr()?;
        let (tx, rx) = mpsc::channel(16);
        // A few frames of slack: a bridged peer never blocks on this leg.
        let (relay_tx, relay_rx) = mpsc::channel(32);
        #[allow(clippy::disallowed_methods)] // driver: the session's start instant
        let now = Instant::now();
        let params = SessionParams {
            codec,
            telephone_event_pt,
            ssrc,
            initial_seq: (ssrc >> 16) as u16,
            initial_timestamp: ssrc.rotate_left(7),
        };
        let driver = LegDriver {
            call,
            operator,
            socket,
            _lease: lease,
            session: MediaSession::new(params, now),
            remote,
            latched: false,
            codec,
            ctx: ctx.clone(),
            last_rx: now,
            reported: Default::default(),
            peer: None,
            held: false,
        };
        tokio::spawn(driver.run(rx, relay_rx));
        Ok(MediaLeg { commands: tx, relay: relay_tx, local })
    }

    /// The local RTP address (for SDP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Where another leg sends media for this one to relay.
    pub fn relay_sender(&self) -> mpsc::Sender<RelayFrame> {
        self.relay.clone()
    }

    /// Sends a command; a full or closed leg drops it (the leg is ending or stuck).
    pub fn command(&self, cmd: LegCommand) {
        let _ = self.commands.try_send(cmd);
    }
}

struct LegDriver {
    call: CallId,
    /// Set on an operator's leg: its digits and playbacks are not the caller's.
    operator: Option<OperatorId>,
    socket: UdpSocket,
    _lease: PortLease,
    session: MediaSession,
    remote: SocketAddr,
    latched: bool,
    codec: Codec,
    ctx: MediaContext,
    last_rx: Instant,
    reported: super::session::MediaStats,
    /// The bridged leg's relay input.
    peer: Option<mpsc::Sender<RelayFrame>>,
    /// On hold: packets are produced (timing continues) but not sent.
    held: bool,
}

impl LegDriver {
    async fn run(mut self, mut commands: mpsc::Receiver<LegCommand>, mut relay: mpsc::Receiver<RelayFrame>) {
        let mut buf = vec![0u8; 2048];
        loop {
            let deadline = self.session.poll_timeout();
            let dead_peer_at = (!self.ctx.rtp_timeout.is_zero()).then(|| self.last_rx + self.ctx.rtp_timeout);
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.apply(cmd),
                    None => break,
                },
                Some(frame) = relay.recv() => {
                    #[allow(clippy::disallowed_methods)] // driver clock site
                    let now = Instant::now();
                    match frame {
                        RelayFrame::Audio { codec, payload } => self.session.relay_audio(now, codec, &payload),
                        RelayFrame::Event { timestamp, marker, payload } => {
                            self.session.relay_event(now, timestamp, marker, payload)
                        }
                    }
                },
                received = self.socket.recv_from(&mut buf) => {
                    if let Ok((len, from)) = received {
                        #[allow(clippy::disallowed_methods)] // driver clock site
                        let now = Instant::now();
                        self.last_rx = now;
                        // Symmetric RTP: a caller behind NAT sends from an address other than
                        // its SDP; answer where its media really comes from.
                        if !self.latched && from != self.remote {
                            self.remote = from;
                        }
                        self.latched = true;
                        self.session.handle_rtp(now, &buf[..len]);
                    }
                },
                _ = crate::clock::sleep_until(deadline) => {
                    #[allow(clippy::disallowed_methods)] // driver clock site
                    self.session.handle_timeout(Instant::now());
                },
                _ = crate::clock::sleep_until(dead_peer_at) => {
                    let _ = self.ctx.events.try_send(LegEvent::MediaTimeout { call: self.call.clone(), operator: self.operator.clone() });
                    #[allow(clippy::disallowed_methods)] // driver clock site
                    { self.last_rx = Instant::now(); }
                },
            }
            self.flush().await;
        }
        self.publish_counters();
    }

    fn apply(&mut self, cmd: LegCommand) {
        #[allow(clippy::disallowed_methods)] // driver clock site
        let now = Instant::now();
        match cmd {
            LegCommand::Play { seq, prompts } => {
                let clips = prompts
                    .iter()
                    .filter_map(|p| {
                        let clip = self.ctx.library.prompt(p, self.codec);
                        if clip.is_none() {
                            self.ctx.counters.missing_prompts.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(prompt = %p, "no recording for prompt; skipped");
                        }
                        clip
                    })
                    .collect();
                self.session.play(now, Playback::Prompts { token: seq, clips });
            }
            LegCommand::Music => {
                let clip = self.ctx.library.music(self.codec);
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
                self.codec = codec;
                self.session.set_codec(codec, telephone_event_pt);
            }
        }
    }

    async fn flush(&mut self) {
        while let Some(packet) = self.session.poll_transmit() {
            if !self.held {
                let _ = self.socket.send_to(&packet, self.remote).await;
            }
        }
        while let Some(event) = self.session.poll_event() {
            if self.operator.is_some() && matches!(event, MediaEvent::Digit(_) | MediaEvent::PlaybackFinished { .. }) {
                continue; // only the caller's leg drives the IVR
            }
            let event = match event {
                MediaEvent::Digit(digit) => LegEvent::Digit { call: self.call.clone(), digit },
                MediaEvent::PlaybackFinished { token } => {
                    LegEvent::PlaybackFinished { call: self.call.clone(), seq: token }
                }
                MediaEvent::MalformedRtp => continue,
                MediaEvent::Audio { codec, payload } => {
                    if let Some(peer) = &self.peer {
                        let _ = peer.try_send(RelayFrame::Audio { codec, payload });
                    }
                    continue;
                }
                MediaEvent::TelephoneEvent { timestamp, marker, payload } => {
                    if let Some(peer) = &self.peer {
                        let _ = peer.try_send(RelayFrame::Event { timestamp, marker, payload });
                    }
                    continue;
                }
            };
            if self.ctx.events.try_send(event).is_err() {
                self.ctx.counters.dropped_events.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.publish_counters();
    }

    /// Adds what the session counted since the last call to the process-wide counters.
    fn publish_counters(&mut self) {
        let now = self.session.stats().clone();
        let c = &self.ctx.counters;
        c.packets_sent.fetch_add(now.packets_sent - self.reported.packets_sent, Ordering::Relaxed);
        c.bytes_sent.fetch_add(now.bytes_sent - self.reported.bytes_sent, Ordering::Relaxed);
        c.packets_received
            .fetch_add(now.packets_received - self.reported.packets_received, Ordering::Relaxed);
        c.bytes_received.fetch_add(now.bytes_received - self.reported.bytes_received, Ordering::Relaxed);
        c.malformed.fetch_add(now.malformed - self.reported.malformed, Ordering::Relaxed);
        c.dtmf_rfc4733.fetch_add(now.dtmf_digits - self.reported.dtmf_digits, Ordering::Relaxed);
        self.reported = now;
    }
}
