//! One call leg's media as a sans-IO state machine: what we send, what we hear.
//!
//! Owns: outgoing RTP (prompts back to back, looping music, 20 ms pacing via `pacer`),
//! sequence numbers, timestamps, marker bits and the SSRC; incoming RTP parsing, RFC 4733
//! digits (via `dtmf`) and media counters.
//! Must not touch: sockets, the clock (`now` is an input), SIP, engine decisions (the
//! caller decides to stop a prompt when a digit arrives).
//!
//! ```text
//!          play(Prompts | Music)
//!   Idle ─────────────────────────▶ Playing ──┐ play(..) replaces it (no event)
//!    ▲                                │  ▲────┘
//!    ├──── stop() / play(Silence) ◀───┤
//!    └──── PlaybackFinished{token} ◀──┘ (last prompt frame sent)
//! ```
//! While idle nothing is sent (no comfort noise): the RTP timestamp keeps following wall
//! time, and the next talkspurt starts with the marker bit (RFC 3551 §4.1).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};

use super::dtmf::DtmfReceiver;
use super::g711::Codec;
use super::pacer::{Cursor, Pacer, RtpClock, FRAME_BYTES, PTIME};
use crate::engine::ids::DtmfDigit;

/// Comfort noise (RFC 3389): phones with silence suppression send it between talkspurts,
/// often without offering it, so it counts as the peer's media.
const COMFORT_NOISE_PT: u8 = 13;

/// Sent datagrams' buffers kept for reuse (a late wake-up sends up to `MAX_CATCH_UP`).
const SPARE_BUFFERS: usize = 4;

/// How a session starts; the SSRC, sequence number and timestamp should be random
/// (RFC 3550 §5.1), chosen by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionParams {
    /// The negotiated audio codec.
    pub codec: Codec,
    /// The negotiated RFC 4733 payload type, if any (otherwise DTMF comes by SIP INFO).
    pub telephone_event_pt: Option<u8>,
    /// Our SSRC for the whole session.
    pub ssrc: u32,
    /// Sequence number of our first packet.
    pub initial_seq: u16,
    /// RTP timestamp at the session's creation instant.
    pub initial_timestamp: u32,
}

/// What to send. Audio is pre-encoded in the session's codec; the caller encodes each clip
/// once per codec and shares it.
#[derive(Clone, Debug)]
pub enum Playback {
    /// Clips back to back, then `MediaEvent::PlaybackFinished { token }`. The last partial
    /// frame is padded with the codec's silence byte.
    Prompts {
        /// Echoed in `PlaybackFinished`.
        token: u64,
        /// Encoded audio, played in order without gaps between clips.
        clips: Vec<Arc<[u8]>>,
    },
    /// One clip looped forever, starting at byte `offset_hint` (modulo its length).
    /// An empty clip plays as `Silence`.
    Music {
        /// Encoded audio.
        clip: Arc<[u8]>,
        /// Where to start, e.g. `music_position()` of an earlier session to resume.
        offset_hint: usize,
    },
    /// Send nothing.
    Silence,
}

/// What the session tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    /// A key press (RFC 4733), reported once.
    Digit(DtmfDigit),
    /// The prompts with this token were sent completely.
    PlaybackFinished {
        /// The token given to `play`.
        token: u64,
    },
    /// A datagram was not RTP, or its telephone-event payload was malformed (also counted).
    MalformedRtp,
    /// Bridged: an audio frame received, to relay to the other leg.
    Audio {
        /// The codec it is encoded in.
        codec: Codec,
        /// The G.711 bytes.
        payload: Vec<u8>,
    },
    /// Bridged: a telephone-event packet received, to pass through to the other leg.
    TelephoneEvent {
        /// The sender's RTP timestamp (one per key press).
        timestamp: u32,
        /// The marker bit (start of an event).
        marker: bool,
        /// The 4-byte RFC 4733 payload.
        payload: [u8; 4],
    },
}

/// Plain counters for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// RTP packets sent.
    pub packets_sent: u64,
    /// RTP bytes sent, headers included.
    pub bytes_sent: u64,
    /// Well-formed RTP packets received (any payload type).
    pub packets_received: u64,
    /// RTP bytes received, headers included, of well-formed packets.
    pub bytes_received: u64,
    /// Received packets in the negotiated audio codec.
    pub audio_packets_received: u64,
    /// Received packets with another payload type (not audio, not telephone-event).
    pub other_payload_type: u64,
    /// Datagrams that were not RTP, and malformed telephone-event payloads.
    pub malformed: u64,
    /// Digits reported.
    pub dtmf_digits: u64,
    /// 20 ms slots skipped because the driver woke up late.
    pub skipped_slots: u64,
}

#[derive(Debug)]
struct Active {
    cursor: Cursor,
    pacer: Pacer,
    /// The next packet starts a talkspurt.
    marker: bool,
}

/// The media state of one call leg. Drive it like every sans-IO machine: feed one input
/// (`play`, `stop`, `handle_rtp`, `handle_timeout`), then drain `poll_transmit` and
/// `poll_event` until `None`, then sleep until `poll_timeout`.
#[derive(Debug)]
pub struct MediaSession {
    codec: Codec,
    telephone_event_pt: Option<u8>,
    ssrc: u32,
    next_seq: u16,
    clock: RtpClock,
    active: Option<Active>,
    /// Deadline of the last packet sent: the next talkspurt starts 20 ms after it at the
    /// earliest, so timestamps never overlap audio already sent.
    last_sent: Option<Instant>,
    last_received: Option<Instant>,
    dtmf: DtmfReceiver,
    /// Bridged to another leg: received media is reported for relaying.
    relaying: bool,
    /// Our timestamp for the passed-through key press whose sender timestamp is `.0`.
    relayed_event: Option<(u32, u32)>,
    transmit: VecDeque<Vec<u8>>,
    /// Buffers of sent datagrams, for the next ones.
    spare: Vec<Vec<u8>>,
    events: VecDeque<MediaEvent>,
    stats: MediaStats,
}

impl MediaSession {
    /// A silent session; its RTP clock reads `params.initial_timestamp` at `now`.
    pub fn new(params: SessionParams, now: Instant) -> Self {
        MediaSession {
            codec: params.codec,
            telephone_event_pt: params.telephone_event_pt,
            ssrc: params.ssrc,
            next_seq: params.initial_seq,
            clock: RtpClock::new(now, params.initial_timestamp),
            active: None,
            last_sent: None,
            last_received: None,
            dtmf: DtmfReceiver::new(),
            relaying: false,
            relayed_event: None,
            transmit: VecDeque::new(),
            spare: Vec::new(),
            events: VecDeque::new(),
            stats: MediaStats::default(),
        }
    }

    /// Replaces whatever plays (the replaced prompts get no `PlaybackFinished`). The first
    /// packet is due at `now`, or 20 ms after the last packet sent if that is later, and
    /// carries the marker bit. Empty prompts finish at once; due packets are queued now.
    pub fn play(&mut self, now: Instant, playback: Playback) {
        let start = self.last_sent.and_then(|t| t.checked_add(PTIME)).map_or(now, |t| t.max(now));
        let cursor = match playback {
            Playback::Prompts { token, clips } => {
                let cursor = Cursor::prompts(token, clips);
                if cursor.is_none() {
                    self.events.push_back(MediaEvent::PlaybackFinished { token });
                }
                cursor
            }
            Playback::Music { clip, offset_hint } => Cursor::music(clip, offset_hint),
            Playback::Silence => None,
        };
        self.active =
            cursor.map(|cursor| Active { cursor, pacer: Pacer::new(start), marker: true });
        self.handle_timeout(now);
    }

    /// Barge-in: stops sending at once, without `PlaybackFinished`. Same as
    /// `play(now, Playback::Silence)`.
    pub fn stop(&mut self, now: Instant) {
        self.play(now, Playback::Silence);
    }

    /// Feeds one received datagram. Malformed ones are counted and reported, never fatal.
    /// Packets with the telephone-event PT go to the DTMF receiver; others are counted.
    pub fn handle_rtp(&mut self, now: Instant, datagram: &[u8]) {
        let Ok(rtp) = RtpReader::new(datagram) else {
            self.malformed();
            return;
        };
        self.last_received = Some(now);
        self.stats.packets_received += 1;
        self.stats.bytes_received += datagram.len() as u64;
        let pt = rtp.payload_type();
        if self.relaying {
            if Some(pt) == self.telephone_event_pt {
                if let Ok(payload) = <[u8; 4]>::try_from(rtp.payload().get(..4).unwrap_or(&[])) {
                    self.events.push_back(MediaEvent::TelephoneEvent {
                        timestamp: rtp.timestamp(),
                        marker: rtp.mark(),
                        payload,
                    });
                } else {
                    self.malformed();
                }
            } else if pt == self.codec.payload_type() {
                self.stats.audio_packets_received += 1;
                self.events.push_back(MediaEvent::Audio { codec: self.codec, payload: rtp.payload().to_vec() });
            } else {
                self.stats.other_payload_type += 1;
            }
            return;
        }
        if Some(pt) == self.telephone_event_pt {
            match self.dtmf.handle_packet(rtp.timestamp(), rtp.mark(), rtp.payload()) {
                Ok(Some(digit)) => {
                    self.stats.dtmf_digits += 1;
                    self.events.push_back(MediaEvent::Digit(digit));
                }
                Ok(None) => {}
                Err(_) => self.malformed(),
            }
        } else if pt == self.codec.payload_type() {
            self.stats.audio_packets_received += 1;
        } else {
            self.stats.other_payload_type += 1;
        }
    }

    /// Whether a datagram is RTP this leg negotiated: it parses as RTP and carries the
    /// codec's, the telephone-event's or comfort noise's payload type. Only such packets
    /// prove the peer alive or may latch its media source; anyone can send a byte.
    pub fn is_negotiated(&self, datagram: &[u8]) -> bool {
        RtpReader::new(datagram).is_ok_and(|rtp| {
            let pt = rtp.payload_type();
            pt == self.codec.payload_type() || Some(pt) == self.telephone_event_pt || pt == COMFORT_NOISE_PT
        })
    }

    /// Queues every packet due at `now`. A wake-up more than `pacer::MAX_CATCH_UP` packets
    /// late sends only the newest one: the audio continues where it was, the timestamp
    /// jumps over the lost time, and the packet carries the marker bit.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(mut active) = self.active.take() else {
            return;
        };
        let due = active.pacer.advance(now);
        if due.skipped > 0 {
            self.stats.skipped_slots += due.skipped;
            active.marker = true;
        }
        let silence = self.codec.silence_byte();
        for n in due.first..due.first + due.send {
            let mut frame = [silence; FRAME_BYTES];
            if !active.cursor.fill(&mut frame, silence) {
                break;
            }
            self.send(active.pacer.deadline_of(n), active.marker, &frame);
            active.marker = false;
            if let Some(token) = active.cursor.finished_token() {
                self.events.push_back(MediaEvent::PlaybackFinished { token });
                return;
            }
        }
        self.active = Some(active);
    }

    /// The next RTP datagram to send to the remote media address.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// Gives a sent datagram's buffer back for the next packet.
    pub fn recycle(&mut self, mut buffer: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            buffer.clear();
            self.spare.push(buffer);
        }
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must be called next; `None` while silent.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.active.as_ref().map(|a| a.pacer.next_deadline())
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &MediaStats {
        &self.stats
    }

    /// After a re-INVITE: new payload types from the next packet on (with the marker bit).
    /// Audio that is playing is not transcoded: call `play` again with clips in the new codec.
    pub fn set_codec(&mut self, codec: Codec, telephone_event_pt: Option<u8>) {
        if telephone_event_pt != self.telephone_event_pt {
            self.dtmf.reset();
        }
        if codec != self.codec {
            if let Some(active) = &mut self.active {
                active.marker = true;
            }
        }
        self.codec = codec;
        self.telephone_event_pt = telephone_event_pt;
    }

    /// Bridges (or unbridges) this leg: while bridged, playback stops, received audio and
    /// telephone-events are reported as `Audio` / `TelephoneEvent` for the other leg, and
    /// `relay_audio` / `relay_event` send what the other leg received.
    pub fn set_relaying(&mut self, now: Instant, relaying: bool) {
        if relaying {
            self.stop(now);
        }
        self.relaying = relaying;
        self.relayed_event = None;
    }

    /// Sends one frame received on the other leg, transcoded when its law differs.
    pub fn relay_audio(&mut self, now: Instant, codec: Codec, payload: &[u8]) {
        if !self.relaying || payload.is_empty() {
            return;
        }
        let marker = self.last_sent.is_none_or(|t| now.saturating_duration_since(t) > super::pacer::PTIME * 3);
        if codec == self.codec {
            self.send(now, marker, payload);
        } else {
            let transcoded = self.codec.encode(&codec.decode(payload));
            self.send(now, marker, &transcoded);
        }
    }

    /// Passes a key press through with this leg's telephone-event payload type. All packets
    /// of one press keep one timestamp (RFC 4733 §2.5.1.2); with no telephone-event
    /// negotiated on this leg the press is dropped.
    pub fn relay_event(&mut self, now: Instant, sender_timestamp: u32, marker: bool, payload: [u8; 4]) {
        let Some(pt) = self.telephone_event_pt.filter(|_| self.relaying) else { return };
        let timestamp = match self.relayed_event {
            Some((from, ours)) if from == sender_timestamp => ours,
            _ => {
                let ours = self.clock.timestamp_at(now);
                self.relayed_event = Some((sender_timestamp, ours));
                ours
            }
        };
        let built = RtpPacketBuilder::new()
            .payload_type(pt)
            .ssrc(self.ssrc)
            .sequence(Seq::from(self.next_seq))
            .timestamp(timestamp)
            .marked(marker)
            .payload(&payload)
            .build();
        if let Ok(packet) = built {
            self.next_seq = self.next_seq.wrapping_add(1);
            self.stats.packets_sent += 1;
            self.stats.bytes_sent += packet.len() as u64;
            self.transmit.push_back(packet);
        }
    }

    /// The codec packets are sent with.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Whether prompts or music are being sent.
    pub fn is_playing(&self) -> bool {
        self.active.is_some()
    }

    /// The byte offset music has reached, to resume it later with `offset_hint`.
    pub fn music_position(&self) -> Option<usize> {
        self.active.as_ref().and_then(|a| a.cursor.music_position())
    }

    /// When the last well-formed RTP packet arrived, to detect dead media.
    pub fn last_received(&self) -> Option<Instant> {
        self.last_received
    }

    fn send(&mut self, deadline: Instant, marker: bool, payload: &[u8]) {
        let builder = RtpPacketBuilder::new()
            .payload_type(self.codec.payload_type())
            .ssrc(self.ssrc)
            .sequence(Seq::from(self.next_seq))
            .timestamp(self.clock.timestamp_at(deadline))
            .marked(marker)
            .payload(payload);
        // A buffer given back by the driver: no allocation per packet in steady playback.
        let mut packet = self.spare.pop().unwrap_or_default();
        packet.resize(builder.target_length(), 0);
        // Building fails only for a payload type above 127 or a bad extension; ours are 0/8
        // and none, so there is nothing to count here.
        let Ok(len) = builder.build_into(&mut packet) else {
            return;
        };
        packet.truncate(len);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.last_sent = Some(deadline);
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += packet.len() as u64;
        self.transmit.push_back(packet);
    }

    fn malformed(&mut self) {
        self.stats.malformed += 1;
        self.events.push_back(MediaEvent::MalformedRtp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use proptest::prelude::*;

    const TE: u8 = 101;

    #[allow(clippy::disallowed_methods)] // tests build their own simulated time
    fn t0() -> Instant {
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn session(t: Instant, seq: u16, ts: u32) -> MediaSession {
        let (codec, telephone_event_pt) = (Codec::Pcmu, Some(TE));
        let params = SessionParams {
            codec,
            telephone_event_pt,
            ssrc: 0xCAFE,
            initial_seq: seq,
            initial_timestamp: ts,
        };
        MediaSession::new(params, t)
    }

    fn clip(len: usize, first: u8) -> Arc<[u8]> {
        (0..len).map(|i| first.wrapping_add(i as u8)).collect()
    }

    fn prompt(token: u64, len: usize) -> Playback {
        Playback::Prompts { token, clips: vec![clip(len, 0)] }
    }

    /// One sent packet, decoded, with the instant it was sent at.
    #[derive(Debug)]
    struct Sent {
        at: Instant,
        pt: u8,
        seq: u16,
        ts: u32,
        marker: bool,
        ssrc: u32,
        payload: Vec<u8>,
    }

    /// Feeds `input` at `at`, then jumps from deadline to deadline up to `until`, draining
    /// packets and events after each step like a driver (STYLE.md R8).
    fn drive(
        s: &mut MediaSession,
        at: Instant,
        until: Instant,
        input: impl FnOnce(&mut MediaSession),
    ) -> (Vec<Sent>, Vec<MediaEvent>) {
        let (mut out, mut events) = (Vec::new(), Vec::new());
        input(s);
        let mut now = at;
        loop {
            while let Some(p) = s.poll_transmit() {
                let r = RtpReader::new(&p).expect("we send valid RTP");
                let (pt, seq, ts, marker) =
                    (r.payload_type(), r.sequence_number().into(), r.timestamp(), r.mark());
                let payload = r.payload().to_vec();
                out.push(Sent { at: now, pt, seq, ts, marker, ssrc: r.ssrc(), payload });
            }
            events.extend(std::iter::from_fn(|| s.poll_event()));
            match s.poll_timeout().filter(|&d| d <= until) {
                Some(deadline) => now = deadline,
                None => return (out, events),
            }
            s.handle_timeout(now);
        }
    }

    fn dtmf_packet(event: u8, end: bool, marker: bool, ts: u32) -> Vec<u8> {
        let payload = [event, if end { 0x8A } else { 0x0A }, 0, 160];
        let b = RtpPacketBuilder::new().payload_type(TE).ssrc(7).sequence(Seq::from(9));
        b.timestamp(ts).marked(marker).payload(&payload).build().expect("valid")
    }

    #[test]
    fn prompt_headers_pacing_and_padding() {
        let t = t0();
        let mut s = session(t, 65534, u32::MAX - 100);
        let start = t + ms(1000);
        let (sent, ev) = drive(&mut s, start, start + ms(1000), |s| s.play(start, prompt(9, 400)));
        assert_eq!(ev, vec![MediaEvent::PlaybackFinished { token: 9 }]);
        assert_eq!(sent.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![65534, 65535, 0]);
        let base = (u32::MAX - 100).wrapping_add(8000);
        for (i, p) in sent.iter().enumerate() {
            assert_eq!(p.at, start + ms(20 * i as u64));
            assert_eq!(p.ts, base.wrapping_add(160 * i as u32));
            assert_eq!((p.pt, p.ssrc, p.marker, p.payload.len()), (0, 0xCAFE, i == 0, FRAME_BYTES));
        }
        assert_eq!(sent[1].payload[0], 160);
        assert_eq!(&sent[2].payload[..80], &clip(400, 0)[320..]);
        assert!(sent[2].payload[80..].iter().all(|&b| b == 0xFF));
        assert_eq!(s.poll_timeout(), None);
        assert_eq!((s.stats().packets_sent, s.stats().bytes_sent), (3, 3 * 172));
    }

    #[test]
    fn finished_after_ceil_len_over_160_packets() {
        for len in [0usize, 1, 159, 160, 161, 320, 1000] {
            let t = t0();
            let mut s = session(t, 0, 0);
            let (sent, ev) = drive(&mut s, t, t + ms(60_000), |s| s.play(t, prompt(3, len)));
            assert_eq!(sent.len(), len.div_ceil(FRAME_BYTES), "len {len}");
            assert_eq!(ev, vec![MediaEvent::PlaybackFinished { token: 3 }]);
            assert_eq!(s.poll_timeout(), None);
        }
    }

    #[test]
    fn barge_in_by_dtmf_then_stop_then_new_talkspurt() {
        let t = t0();
        let mut s = session(t, 100, 5000);
        let (sent, _) = drive(&mut s, t, t + ms(90), |s| s.play(t, prompt(1, 16_000)));
        assert_eq!(sent.len(), 5);
        let (_, ev) = drive(&mut s, t + ms(95), t + ms(95), |s| {
            s.handle_rtp(t + ms(95), &dtmf_packet(5, false, true, 777));
            s.handle_rtp(t + ms(95), &dtmf_packet(5, true, false, 777));
        });
        assert_eq!(ev, vec![MediaEvent::Digit(DtmfDigit::Digit(5))]);
        let (sent, ev) = drive(&mut s, t + ms(96), t + ms(5000), |s| s.stop(t + ms(96)));
        assert!(sent.is_empty() && ev.is_empty());
        // A new prompt 2 s later: marker set, seq continues, timestamp follows wall time.
        let at = t + ms(2000);
        let (sent, ev) = drive(&mut s, at, at, |s| s.play(at, prompt(2, 10)));
        assert_eq!((sent[0].marker, sent[0].seq, sent[0].ts), (true, 105, 5000 + 16_000));
        assert_eq!(ev, vec![MediaEvent::PlaybackFinished { token: 2 }]);
        assert_eq!(s.stats().dtmf_digits, 1);
    }

    #[test]
    fn replacing_keeps_the_20ms_grid_and_reports_only_the_new_token() {
        let t = t0();
        let mut s = session(t, 0, 0);
        drive(&mut s, t, t + ms(40), |s| s.play(t, prompt(1, 1600))); // packets at 0, 20, 40
        let (sent, ev) =
            drive(&mut s, t + ms(45), t + ms(1000), |s| s.play(t + ms(45), prompt(2, 320)));
        assert_eq!(
            sent.iter().map(|p| (p.at, p.ts, p.marker)).collect::<Vec<_>>(),
            [(t + ms(60), 480, true), (t + ms(80), 640, false)]
        );
        assert_eq!(ev, vec![MediaEvent::PlaybackFinished { token: 2 }]);
    }

    #[test]
    fn late_wake_up_skips_instead_of_bursting() {
        let t = t0();
        let mut s = session(t, 10, 0);
        drive(&mut s, t, t + ms(20), |s| s.play(t, prompt(1, 16_000))); // packets 0 and 1
                                                                        // 50 ms late: three due, all sent with their own timestamps.
        let (a, _) = drive(&mut s, t + ms(80), t, |s| s.handle_timeout(t + ms(80)));
        let headers: Vec<_> = a.iter().map(|p| (p.seq, p.ts)).collect();
        assert_eq!(headers, [(12, 320), (13, 480), (14, 640)]);
        // 500 ms late: one packet, timestamp of its own slot, marker set, audio continues.
        let (b, _) = drive(&mut s, t + ms(585), t, |s| s.handle_timeout(t + ms(585)));
        assert_eq!(b.len(), 1);
        assert_eq!((b[0].seq, b[0].ts, b[0].marker), (15, 29 * 160, true));
        assert_eq!(b[0].payload[0], a[2].payload[0].wrapping_add(160));
        assert_eq!(s.stats().skipped_slots, 24);
        assert_eq!(s.poll_timeout(), Some(t + ms(600)));
        assert!(!drive(&mut s, t + ms(585), t + ms(600), |_| {}).0[0].marker);
    }

    #[test]
    fn music_loops_forever() {
        let t = t0();
        let mut s = session(t, 0, 0);
        let music = Playback::Music { clip: clip(200, 0), offset_hint: 150 };
        let (sent, ev) = drive(&mut s, t, t + ms(60_000), |s| s.play(t, music));
        assert_eq!(sent.len(), 3001);
        assert!(ev.is_empty() && s.is_playing());
        assert!(sent.iter().skip(1).all(|p| !p.marker && p.payload.len() == FRAME_BYTES));
        assert_eq!(sent[1].payload[..2], [110, 111]);
        assert_eq!(s.music_position(), Some((150 + 3001 * 160) % 200));
        s.play(t + ms(60_010), Playback::Music { clip: clip(0, 0), offset_hint: 3 });
        assert_eq!(s.poll_timeout(), None); // an empty clip is silence
    }

    #[test]
    fn incoming_rtp_counted_and_malformed_reported() {
        let t = t0();
        let mut s = session(t, 0, 0);
        let build = |pt: u8, payload: &[u8]| {
            RtpPacketBuilder::new().payload_type(pt).payload(payload).build().expect("ok")
        };
        let (_, events) = drive(&mut s, t, t, |s| {
            s.handle_rtp(t, &[0x80, 0]); // too short
            s.handle_rtp(t, &[0x40; 20]); // version 1
            s.handle_rtp(t, &build(TE, &[1, 2])); // telephone-event too short
            s.handle_rtp(t, &build(0, &[0xFF; 160]));
            s.handle_rtp(t + ms(5), &build(13, &[0]));
        });
        assert_eq!(events, vec![MediaEvent::MalformedRtp; 3]);
        let st = s.stats();
        assert_eq!((st.malformed, st.packets_received, st.audio_packets_received), (3, 3, 1));
        assert_eq!((st.other_payload_type, st.bytes_received), (1, 14 + 172 + 13));
        assert_eq!(s.last_received(), Some(t + ms(5)));
    }

    #[test]
    fn bridged_legs_relay_audio_transcoded_and_dtmf_restamped() {
        let t = t0();
        let mut a = session(t, 10, 1000);
        a.set_codec(Codec::Pcmu, Some(101));
        let mut b = session(t, 500, 9000);
        b.set_codec(Codec::Pcma, Some(96));
        a.set_relaying(t, true);
        b.set_relaying(t, true);
        // A µ-law frame arrives on leg a.
        let frame = Codec::Pcmu.encode(&[1000i16; 160]);
        let pkt = RtpPacketBuilder::new().payload_type(0).ssrc(7).sequence(Seq::from(1)).timestamp(5).payload(&frame).build().unwrap();
        a.handle_rtp(t, &pkt);
        let Some(MediaEvent::Audio { codec, payload }) = a.poll_event() else { panic!("audio event") };
        b.relay_audio(t, codec, &payload);
        let out = b.poll_transmit().expect("relayed packet");
        let r = RtpReader::new(&out).unwrap();
        assert_eq!(r.payload_type(), 8, "sent in leg b's law");
        assert_eq!(r.payload(), &Codec::Pcma.encode(&Codec::Pcmu.decode(&frame))[..]);
        // A key press passes through with b's payload type and one timestamp for all packets.
        for (i, end) in [(0, false), (1, false), (2, true)] {
            let ev = [5u8, if end { 0x80 } else { 0 }, 0, 40 * (i + 1)];
            b.relay_event(t + ms(20 * i as u64), 777, i == 0, ev);
        }
        let stamps: Vec<(u8, u32)> = std::iter::from_fn(|| b.poll_transmit())
            .map(|p| {
                let r = RtpReader::new(&p).unwrap();
                (r.payload_type(), r.timestamp())
            })
            .collect();
        assert_eq!(stamps.len(), 3);
        assert!(stamps.iter().all(|(pt, ts)| *pt == 96 && *ts == stamps[0].1), "{stamps:?}");
    }

    #[test]
    fn set_codec_changes_payload_types() {
        let t = t0();
        let mut s = session(t, 0, 0);
        s.play(t, Playback::Music { clip: clip(160, 0), offset_hint: 0 });
        let (sent, _) = drive(&mut s, t, t + ms(40), |s| s.set_codec(Codec::Pcma, None));
        let headers: Vec<_> = sent.iter().map(|p| (p.pt, p.marker)).collect();
        assert_eq!(headers, [(0, true), (8, true), (8, false)]);
        s.handle_rtp(t, &dtmf_packet(1, false, true, 1));
        assert_eq!((s.poll_event(), s.stats().other_payload_type), (None, 1));
        s.set_codec(Codec::Pcma, Some(TE));
        s.handle_rtp(t, &dtmf_packet(1, false, true, 1));
        assert_eq!(s.poll_event(), Some(MediaEvent::Digit(DtmfDigit::Digit(1))));
    }

    #[test]
    fn negotiated_means_rtp_with_the_codec_telephone_event_or_comfort_noise() {
        let t = t0();
        let mut s = session(t, 0, 0);
        let build = |pt: u8| RtpPacketBuilder::new().payload_type(pt).payload(&[0; 4]).build().expect("ok");
        assert!(s.is_negotiated(&build(0)) && s.is_negotiated(&build(TE)) && s.is_negotiated(&build(13)));
        assert!(!s.is_negotiated(&build(8)), "PCMA on a PCMU leg");
        assert!(!s.is_negotiated(&build(96)));
        assert!(!s.is_negotiated(&[0x80]), "a byte");
        assert!(!s.is_negotiated(&[]));
        assert!(!s.is_negotiated(&[0x40; 20]), "RTP version 1");
        s.set_codec(Codec::Pcma, None);
        assert!(s.is_negotiated(&build(8)) && !s.is_negotiated(&build(0)) && !s.is_negotiated(&build(TE)));
    }

    proptest! {
        #[test]
        fn random_datagrams_never_panic(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..300),
            version_2 in any::<bool>(),
        ) {
            let t = t0();
            let mut s = session(t, 0, 0);
            if version_2 && !bytes.is_empty() {
                bytes[0] = (bytes[0] & 0x3F) | 0x80; // get past the version check
            }
            s.handle_rtp(t, &bytes);
            let st = s.stats();
            // Counted once as malformed, or as received (a bad telephone-event payload: both).
            prop_assert!(st.malformed <= 1 && st.packets_received <= 1);
            prop_assert!(st.malformed + st.packets_received >= 1);
        }
    }
}
