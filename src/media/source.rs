//! Which datagrams a leg's RTP port takes in, and where the leg may send: media is bound to
//! the call's signalling peer, so an address that merely knows (or guesses) the port can
//! neither steer the IVR with RFC 4733 events, nor inject audio, nor take the call's audio
//! away, nor use centralino to stream prompts at a third party.
//!
//! The rule, per datagram, with `now` injected (sans-IO):
//! - from the exact address:port the SDP names: accepted;
//! - else, latching for NAT: the first well-formed RTP packet with a negotiated payload type
//!   from the signalling peer's IP (any port) is accepted and fixes the source, once, and
//!   only within `LATCH_WINDOW` of the leg's start (or of a re-INVITE that moved the SDP
//!   address) and before any valid RTP came from the SDP address;
//! - after a latch: the latched address (and the SDP address) only;
//! - everything else is dropped before the session sees it (the leg counts it).
//!
//! Sending: to the latched address, else to the SDP address, but before any valid RTP was
//! accepted only when the SDP's IP is the signalling peer's: an SDP naming a third party
//! (or a private address behind NAT) gets nothing until its own media proves it is there.
//!
//! Owns: the SDP address, the latch and its window. Must not touch: sockets, the clock, the
//! session (the leg feeds it only what this accepts).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How long after the leg starts (or its SDP address moves) a NAT latch may happen. Phones
/// send RTP as soon as the call is answered; SIPp's pcap DTMF starts 1.5 s after its ACK.
/// Only the signalling peer's IP can latch at all; the window narrows a race from behind the
/// same address (a shared NAT) to the first seconds of the call.
pub const LATCH_WINDOW: Duration = Duration::from_secs(3);

/// What to do with one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// From the SDP address or the latched one: give it to the session.
    Accept,
    /// The NAT latch: accept it, and from now on this address is the peer's media source.
    Latch,
    /// From anywhere else: drop it (and count it).
    Drop,
}

/// What the rule looks at besides the datagram's source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// Where the call's SIP came from (the INVITE's, or the operator's REGISTER's source).
    pub signalling_ip: IpAddr,
    /// The address:port the SDP names.
    pub sdp: SocketAddr,
    /// Where media was latched to, once.
    pub latched: Option<SocketAddr>,
    /// Valid RTP already came from the SDP address: the peer needs no latch.
    pub sdp_proven: bool,
}

/// The acceptance rule, as a pure function. `valid`: the datagram parses as RTP with a
/// negotiated payload type; `elapsed`: since the leg started or its SDP address moved.
pub fn verdict(bound: &Bound, from: SocketAddr, valid: bool, elapsed: Duration) -> Verdict {
    if from == bound.sdp || Some(from) == bound.latched {
        return Verdict::Accept;
    }
    let may_latch = bound.latched.is_none() && !bound.sdp_proven && elapsed < LATCH_WINDOW;
    if may_latch && valid && from.ip() == bound.signalling_ip {
        Verdict::Latch
    } else {
        Verdict::Drop
    }
}

/// A leg's media source and destination: the rule above with its state.
#[derive(Clone, Debug)]
pub struct MediaSource {
    bound: Bound,
    /// When the latch window opened.
    since: Instant,
    /// Valid RTP was accepted from somewhere (the SDP address or the latched one).
    heard: bool,
}

impl MediaSource {
    /// A leg bound to `signalling_ip`, its SDP naming `sdp`, started at `now`.
    pub fn new(signalling_ip: IpAddr, sdp: SocketAddr, now: Instant) -> MediaSource {
        let bound = Bound { signalling_ip, sdp, latched: None, sdp_proven: false };
        MediaSource { bound, since: now, heard: false }
    }

    /// Judges one datagram and remembers what it changes. Two comparisons for the common
    /// packet from the established source.
    pub fn on_datagram(&mut self, now: Instant, from: SocketAddr, valid: bool) -> Verdict {
        let verdict = verdict(&self.bound, from, valid, now.saturating_duration_since(self.since));
        match verdict {
            Verdict::Latch => {
                self.bound.latched = Some(from);
                self.heard = true;
            }
            Verdict::Accept if valid => {
                if from == self.bound.sdp {
                    self.bound.sdp_proven = true;
                }
                self.heard = true;
            }
            Verdict::Accept | Verdict::Drop => {}
        }
        verdict
    }

    /// Where to send now; `None` while an SDP that names someone other than the signalling
    /// peer has not been confirmed by valid RTP (no reflection at a third party).
    pub fn send_to(&self) -> Option<SocketAddr> {
        if let Some(latched) = self.bound.latched {
            return Some(latched);
        }
        (self.heard || self.bound.sdp.ip() == self.bound.signalling_ip).then_some(self.bound.sdp)
    }

    /// A re-INVITE (or the operator's answer) names a new SDP address. When it moved, what
    /// was learnt about the old one is forgotten and the latch window opens again: a phone
    /// that changed networks re-INVITEs, and its NAT maps a new port.
    pub fn retarget(&mut self, now: Instant, sdp: SocketAddr) {
        if sdp == self.bound.sdp {
            return;
        }
        self.bound.sdp = sdp;
        self.bound.latched = None;
        self.bound.sdp_proven = false;
        self.heard = false;
        self.since = now;
    }

    /// The state the rule looks at (for logs and tests).
    pub fn bound(&self) -> &Bound {
        &self.bound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const PEER: [u8; 4] = [127, 0, 0, 1];

    fn bound(sdp: &str, latched: Option<&str>, sdp_proven: bool) -> Bound {
        Bound { signalling_ip: IpAddr::from(PEER), sdp: addr(sdp), latched: latched.map(addr), sdp_proven }
    }

    #[test]
    fn the_rule_case_by_case() {
        use Verdict::*;
        let fresh = bound("127.0.0.1:4000", None, false);
        let proven = bound("127.0.0.1:4000", None, true);
        let latched = bound("10.0.0.5:4000", Some("127.0.0.1:5555"), false);
        let cases = [
            // (state, from, valid, elapsed, verdict, why)
            (fresh, "127.0.0.1:4000", true, ms(0), Accept, "the SDP address"),
            (fresh, "127.0.0.1:4000", false, ms(9000), Accept, "the SDP address, garbage or late (the session counts it)"),
            (fresh, "127.0.0.1:4002", true, ms(100), Latch, "the signalling IP from another port: NAT"),
            (fresh, "127.0.0.1:4002", false, ms(100), Drop, "not RTP with a negotiated PT: no latch"),
            (fresh, "127.0.0.1:4002", true, LATCH_WINDOW, Drop, "too late to latch"),
            (fresh, "127.0.0.3:4000", true, ms(0), Drop, "another IP, even first and on time"),
            (fresh, "127.0.0.3:4002", true, ms(0), Drop, "another IP"),
            (proven, "127.0.0.1:4002", true, ms(100), Drop, "the SDP address already sends: no latch"),
            (latched, "127.0.0.1:5555", false, ms(9000), Accept, "the latched address"),
            (latched, "10.0.0.5:4000", true, ms(9000), Accept, "the SDP address stays acceptable"),
            (latched, "127.0.0.1:5556", true, ms(10), Drop, "never a second latch"),
            (latched, "127.0.0.9:5555", true, ms(10), Drop, "another IP"),
        ];
        for (state, from, valid, elapsed, expected, why) in cases {
            assert_eq!(verdict(&state, addr(from), valid, elapsed), expected, "{why}: {state:?} {from}");
        }
    }

    #[allow(clippy::disallowed_methods)] // tests build their own simulated time
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn latches_once_and_then_sends_where_media_comes_from() {
        let t = t0();
        // Behind NAT: the SDP names a private address the signalling peer's IP is not.
        let mut s = MediaSource::new(IpAddr::from(PEER), addr("192.168.1.10:4000"), t);
        assert_eq!(s.send_to(), None, "nothing is sent to an unconfirmed third address");
        assert_eq!(s.on_datagram(t + ms(5), addr("127.0.0.3:7000"), true), Verdict::Drop);
        assert_eq!(s.send_to(), None);
        assert_eq!(s.on_datagram(t + ms(10), addr("127.0.0.1:7000"), true), Verdict::Latch);
        assert_eq!(s.send_to(), Some(addr("127.0.0.1:7000")));
        assert_eq!(s.on_datagram(t + ms(30), addr("127.0.0.1:7000"), true), Verdict::Accept);
        assert_eq!(s.on_datagram(t + ms(30), addr("127.0.0.1:7002"), true), Verdict::Drop);
        assert_eq!(s.send_to(), Some(addr("127.0.0.1:7000")));
    }

    #[test]
    fn an_sdp_naming_a_third_party_gets_nothing_until_it_sends_valid_rtp() {
        let t = t0();
        let mut s = MediaSource::new(IpAddr::from(PEER), addr("127.0.0.9:4000"), t);
        assert_eq!(s.send_to(), None);
        // A byte from there is accepted (the session counts it) but proves nothing.
        assert_eq!(s.on_datagram(t, addr("127.0.0.9:4000"), false), Verdict::Accept);
        assert_eq!(s.send_to(), None);
        assert_eq!(s.on_datagram(t, addr("127.0.0.9:4000"), true), Verdict::Accept);
        assert_eq!(s.send_to(), Some(addr("127.0.0.9:4000")));
    }

    #[test]
    fn the_signalling_peers_own_sdp_address_is_sent_to_at_once() {
        let t = t0();
        let s = MediaSource::new(IpAddr::from(PEER), addr("127.0.0.1:4000"), t);
        assert_eq!(s.send_to(), Some(addr("127.0.0.1:4000")));
    }

    #[test]
    fn a_reinvite_that_moves_the_sdp_address_opens_a_new_window() {
        let t = t0();
        let mut s = MediaSource::new(IpAddr::from(PEER), addr("127.0.0.1:4000"), t);
        assert_eq!(s.on_datagram(t + ms(10), addr("127.0.0.1:4000"), true), Verdict::Accept);
        // Hold with the same address changes nothing.
        s.retarget(t + ms(5000), addr("127.0.0.1:4000"));
        assert_eq!(s.on_datagram(t + ms(5000), addr("127.0.0.1:4002"), true), Verdict::Drop);
        // A new address: the old one is foreign now, the new one (or a latch) accepted.
        s.retarget(t + ms(6000), addr("127.0.0.1:4004"));
        assert_eq!(s.on_datagram(t + ms(6001), addr("127.0.0.1:4000"), true), Verdict::Latch);
        s.retarget(t + ms(7000), addr("127.0.0.1:4006"));
        assert_eq!(s.on_datagram(t + ms(7001), addr("127.0.0.1:4006"), true), Verdict::Accept);
        assert_eq!(s.on_datagram(t + ms(7001), addr("127.0.0.1:4000"), true), Verdict::Drop);
        assert_eq!(s.send_to(), Some(addr("127.0.0.1:4006")));
    }
}
