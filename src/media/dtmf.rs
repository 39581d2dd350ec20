//! DTMF input: RFC 4733 telephone-events over RTP, and SIP INFO bodies.
//!
//! Owns: the 4-byte telephone-event payload format, one-report-per-key-press deduplication,
//! and the `application/dtmf-relay` / `application/dtmf` INFO body formats.
//! Must not touch: sockets, the clock, SIP messages (the SIP layer hands us the body).
//! Invariant: sequence numbers and SSRCs are never used (SIPp's pcaps break both).

use std::fmt;

use thiserror::Error;

use crate::engine::ids::DtmfDigit;

/// Why a telephone-event payload was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DtmfError {
    /// An event is 4 bytes; the payload had fewer.
    #[error("telephone-event payload too short: {0} bytes, need 4")]
    TooShort(usize),
}

/// One RFC 4733 §2.3 event block.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     event     |E|R| volume    |          duration             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code; 0–15 are the DTMF keys.
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// Power level in −dBm0 (0–63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event block of a payload. Longer payloads carry several blocks
    /// (RFC 4733 §2.5.1.5 redundancy); only the first is read.
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, DtmfError> {
        match payload {
            [event, flags, d0, d1, ..] => Ok(TelephoneEvent {
                event: *event,
                end: flags & 0x80 != 0,
                volume: flags & 0x3F,
                duration: u16::from_be_bytes([*d0, *d1]),
            }),
            _ => Err(DtmfError::TooShort(payload.len())),
        }
    }
}

/// How many recent events are remembered to drop their late retransmissions.
const HISTORY: usize = 8;
/// A key held longer than the 16-bit duration field allows (~8 s) continues in a new
/// segment whose timestamp is at most this much later, without the marker bit
/// (RFC 4733 §2.5.1.3); it is the same key press.
const MAX_SEGMENT: u32 = 0x1_0000;

#[derive(Clone, Copy, Debug)]
struct SeenEvent {
    timestamp: u32,
    event: u8,
    ended: bool,
}

/// Turns a stream of telephone-event packets into one digit per key press.
///
/// All packets of one event share the RTP timestamp (RFC 4733 §2.5.1.1). A packet is a
/// new key press when its (timestamp, event) pair was not seen recently; the digit is
/// reported on that first packet, whatever it is (start, continuation or end), so
/// barge-in is fast and end-only senders still work. Continuations, the three end
/// retransmissions and late stragglers of a recent event are dropped.
///
/// A long press continuing in a new segment (RFC 4733 §2.5.1.3) is not a new press either.
///
/// One exception: a marker-bit start packet (E clear) for an event that has already
/// ended is a new press. SIPp's `play_pcap_audio` replays the same pcap byte for byte,
/// so pressing `1` twice repeats timestamp, sequence numbers and SSRC; a real sender
/// never restarts an ended event, so this only costs a duplicate if a start packet is
/// reordered behind its own end packets.
///
/// Feed it only packets whose payload type is the negotiated telephone-event PT.
#[derive(Debug, Default)]
pub struct DtmfReceiver {
    /// Most recent first.
    recent: Vec<SeenEvent>,
}

impl DtmfReceiver {
    /// A receiver that has seen nothing.
    pub fn new() -> Self {
        DtmfReceiver::default()
    }

    /// Feeds one packet; returns the digit if this packet starts a new key press.
    /// Event codes above 15 (tones, flash) are ignored.
    pub fn handle_packet(
        &mut self,
        rtp_timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<Option<DtmfDigit>, DtmfError> {
        let ev = TelephoneEvent::parse(payload)?;
        let Some(digit) = DtmfDigit::from_event(ev.event) else {
            return Ok(None);
        };
        let known =
            self.recent.iter().position(|s| s.timestamp == rtp_timestamp && s.event == ev.event);
        if let Some(i) = known {
            let seen = self.recent.remove(i);
            let restarted = seen.ended && marker && !ev.end;
            self.remember(rtp_timestamp, ev.event, ev.end || (seen.ended && !restarted));
            return Ok(restarted.then_some(digit));
        }
        let continues = self.recent.first().is_some_and(|last| {
            let step = rtp_timestamp.wrapping_sub(last.timestamp);
            !marker && !last.ended && last.event == ev.event && (1..=MAX_SEGMENT).contains(&step)
        });
        self.remember(rtp_timestamp, ev.event, ev.end);
        Ok((!continues).then_some(digit))
    }

    /// Forgets every event, e.g. after the telephone-event PT changed.
    pub fn reset(&mut self) {
        self.recent.clear();
    }

    fn remember(&mut self, timestamp: u32, event: u8, ended: bool) {
        self.recent.insert(0, SeenEvent { timestamp, event, ended });
        self.recent.truncate(HISTORY);
    }
}

/// Reads the key from a SIP INFO body, by its Content-Type:
/// - `application/dtmf-relay`: lines `Signal=5` / `Duration=160`; key case-insensitive,
///   spaces tolerated; `Signal=10`/`11` (as some phones send) mean `*`/`#`.
/// - `application/dtmf`: the bare key, e.g. `5` (or an event code `10`/`11`).
///
/// Parameters after `;` in the Content-Type are ignored. Anything else gives `None`.
pub fn parse_info_body(content_type: &str, body: &[u8]) -> Option<DtmfDigit> {
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    let body = std::str::from_utf8(body).ok()?;
    if mime.eq_ignore_ascii_case("application/dtmf-relay") {
        body.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            key.trim().eq_ignore_ascii_case("signal").then(|| key_from_text(value))?
        })
    } else if mime.eq_ignore_ascii_case("application/dtmf") {
        key_from_text(body)
    } else {
        None
    }
}

/// A key written as a character (`5`, `*`, `#`, `A`) or an event code (`10` = `*`).
fn key_from_text(text: &str) -> Option<DtmfDigit> {
    let text = text.trim();
    if let Ok(code) = text.parse::<u8>() {
        return DtmfDigit::from_event(code);
    }
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => DtmfDigit::from_char(c),
        _ => None,
    }
}

impl fmt::Display for TelephoneEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event {} vol -{} dBm0 dur {}{}",
            self.event,
            self.volume,
            self.duration,
            if self.end { " end" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [event, if end { 0x8A } else { 0x0A }, d[0], d[1]]
    }

    /// The packets of one event as SIPp's `dtmf_2833_<d>.pcap` carries them:
    /// a marked start, six continuations, three identical end packets.
    fn sipp_event(event: u8) -> Vec<(bool, [u8; 4])> {
        let mut packets = vec![(true, payload(event, false, 0))];
        packets.extend((1..7).map(|i| (false, payload(event, false, i * 320))));
        packets.extend((0..3).map(|_| (false, payload(event, true, 2240))));
        packets
    }

    fn feed(rx: &mut DtmfReceiver, ts: u32, packets: &[(bool, [u8; 4])]) -> Vec<DtmfDigit> {
        packets
            .iter()
            .filter_map(|(m, p)| rx.handle_packet(ts, *m, p).expect("well-formed"))
            .collect()
    }

    #[test]
    fn parse_fields() {
        let ev = TelephoneEvent::parse(&[0x05, 0x8A, 0x03, 0x20]).expect("4 bytes");
        assert_eq!(ev, TelephoneEvent { event: 5, end: true, volume: 10, duration: 800 });
        let ev = TelephoneEvent::parse(&[11, 0x3F, 0, 0]).expect("4 bytes");
        assert_eq!(ev, TelephoneEvent { event: 11, end: false, volume: 63, duration: 0 });
        // The R bit is ignored.
        let ev = TelephoneEvent::parse(&[1, 0x40, 0, 160]).expect("4 bytes");
        assert_eq!((ev.end, ev.volume, ev.duration), (false, 0, 160));
        assert_eq!(ev.to_string(), "event 1 vol -0 dBm0 dur 160");
    }

    #[test]
    fn parse_takes_first_block_and_rejects_short() {
        let ev = TelephoneEvent::parse(&[3, 0x0A, 0, 160, 4, 0x8A, 1, 0]).expect("8 bytes");
        assert_eq!(ev.event, 3);
        for len in 0..4 {
            assert_eq!(TelephoneEvent::parse(&[0u8; 3][..len]), Err(DtmfError::TooShort(len)));
        }
        let mut rx = DtmfReceiver::new();
        assert_eq!(rx.handle_packet(1, true, &[1, 2]), Err(DtmfError::TooShort(2)));
    }

    #[test]
    fn one_digit_per_sipp_event_reported_on_first_packet() {
        let mut rx = DtmfReceiver::new();
        let packets = sipp_event(5);
        let first = rx.handle_packet(43200, true, &packets[0].1).expect("ok");
        assert_eq!(first, Some(DtmfDigit::Digit(5)));
        assert!(feed(&mut rx, 43200, &packets[1..]).is_empty());
        // Stragglers of the same event later on are dropped too.
        assert!(feed(&mut rx, 43200, &packets[9..]).is_empty());
    }

    #[test]
    fn same_digit_twice_with_new_timestamps() {
        let mut rx = DtmfReceiver::new();
        let mut got = feed(&mut rx, 1000, &sipp_event(1));
        got.extend(feed(&mut rx, 4000, &sipp_event(1)));
        assert_eq!(got, vec![DtmfDigit::Digit(1), DtmfDigit::Digit(1)]);
    }

    #[test]
    fn sipp_pcaps_out_of_order_timestamps_and_replays() {
        // dtmf_2833_1 (ts 13280), _5 (ts 43200), then _1 replayed verbatim: "151".
        let mut rx = DtmfReceiver::new();
        let mut got = feed(&mut rx, 13280, &sipp_event(1));
        got.extend(feed(&mut rx, 43200, &sipp_event(5)));
        got.extend(feed(&mut rx, 13280, &sipp_event(1)));
        // and "11": the same pcap twice in a row.
        got.extend(feed(&mut rx, 13280, &sipp_event(1)));
        let digits: String = got.iter().map(|d| d.as_char()).collect();
        assert_eq!(digits, "1511");
    }

    #[test]
    fn late_end_packet_of_previous_event_is_not_a_new_press() {
        let mut rx = DtmfReceiver::new();
        let a = sipp_event(2);
        let b = sipp_event(3);
        let mut got = feed(&mut rx, 100, &a[..8]);
        got.extend(feed(&mut rx, 900, &b[..3]));
        got.extend(feed(&mut rx, 100, &a[8..])); // A's delayed end retransmissions
        got.extend(feed(&mut rx, 900, &b[3..]));
        assert_eq!(got, vec![DtmfDigit::Digit(2), DtmfDigit::Digit(3)]);
    }

    #[test]
    fn long_press_segments_are_one_press() {
        let mut rx = DtmfReceiver::new();
        let mut got = feed(&mut rx, 1000, &sipp_event(9)[..7]);
        got.extend(feed(&mut rx, 1000 + 65535, &[(false, payload(9, false, 160))]));
        got.extend(feed(&mut rx, 1000 + 65535, &[(false, payload(9, true, 320))]));
        // The next press of the same key has the marker bit and is reported.
        got.extend(feed(&mut rx, 1000 + 65535 + 800, &sipp_event(9)));
        assert_eq!(got, vec![DtmfDigit::Digit(9), DtmfDigit::Digit(9)]);
    }

    #[test]
    fn end_only_event_is_reported_once() {
        let mut rx = DtmfReceiver::new();
        let end = payload(11, true, 1280);
        let got = feed(&mut rx, 7, &[(false, end), (false, end), (false, end)]);
        assert_eq!(got, vec![DtmfDigit::Pound]);
    }

    #[test]
    fn non_dtmf_events_are_ignored() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(rx.handle_packet(5, true, &payload(16, false, 0)), Ok(None));
        assert_eq!(rx.handle_packet(5, true, &payload(70, true, 0)), Ok(None));
        assert_eq!(rx.handle_packet(5, true, &payload(10, false, 0)), Ok(Some(DtmfDigit::Star)));
        rx.reset();
        assert_eq!(rx.handle_packet(5, false, &payload(10, true, 0)), Ok(Some(DtmfDigit::Star)));
    }

    #[test]
    fn info_dtmf_relay_bodies() {
        let ct = "application/dtmf-relay";
        assert_eq!(parse_info_body(ct, b"Signal=5\r\nDuration=160\r\n"), Some(DtmfDigit::Digit(5)));
        assert_eq!(parse_info_body(ct, b"signal = *\r\nDuration= 100"), Some(DtmfDigit::Star));
        assert_eq!(parse_info_body(ct, b"Duration=160\nSIGNAL=#\n"), Some(DtmfDigit::Pound));
        assert_eq!(parse_info_body(ct, b"Signal=10\r\n"), Some(DtmfDigit::Star));
        assert_eq!(parse_info_body(ct, b"Signal=11\r\n"), Some(DtmfDigit::Pound));
        assert_eq!(parse_info_body(ct, b"Signal=0"), Some(DtmfDigit::Digit(0)));
        assert_eq!(parse_info_body(ct, b"Signal=d"), Some(DtmfDigit::Letter('D')));
        assert_eq!(
            parse_info_body("Application/DTMF-Relay; charset=utf-8", b"Signal=7"),
            Some(DtmfDigit::Digit(7))
        );
        assert_eq!(parse_info_body(ct, b"Signal=16"), None);
        assert_eq!(parse_info_body(ct, b"Signal=55"), None);
        assert_eq!(parse_info_body(ct, b"Signal="), None);
        assert_eq!(parse_info_body(ct, b"Duration=160"), None);
        assert_eq!(parse_info_body(ct, b"\xff\xfe"), None);
        assert_eq!(parse_info_body(ct, b""), None);
    }

    #[test]
    fn info_dtmf_bodies() {
        assert_eq!(parse_info_body("application/dtmf", b"5"), Some(DtmfDigit::Digit(5)));
        assert_eq!(parse_info_body("application/dtmf", b" #\r\n"), Some(DtmfDigit::Pound));
        assert_eq!(parse_info_body("application/dtmf", b"11"), Some(DtmfDigit::Pound));
        assert_eq!(parse_info_body("application/dtmf", b"55"), None);
        assert_eq!(parse_info_body("application/dtmf", b"x"), None);
        assert_eq!(parse_info_body("application/sdp", b"5"), None);
        assert_eq!(parse_info_body("", b"5"), None);
    }
}
