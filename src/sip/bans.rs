//! The ban list: sources whose every SIP message is dropped unanswered until the ban
//! expires. A source is banned for what it did — kept over its call limits, scanned with a
//! known scanner, guessed passwords — never for what it claims to be.
//!
//! Bans are silent on purpose: answering a flood (even with 503) is work for us and a
//! signal for the attacker. They expire, so an address reused by someone else (dynamic
//! IPs, carrier-grade NAT) is not locked out for good.
//!
//! Owns: who is banned, until when, why, and what their messages cost while banned.
//! Must not touch: clocks (`now` is a parameter), sockets, logging (the driver logs).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::source::SourceKey;

/// Why a source was banned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BanReason {
    /// Kept sending INVITEs over its limits after being refused.
    CallFlood,
    /// Announced itself as a known scanner (SIPVicious's `friendly-scanner`, …).
    Scanner,
    /// Failed digest authentication too often, across usernames.
    PasswordGuessing,
}

impl BanReason {
    /// The label used in metrics, logs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            BanReason::CallFlood => "call_flood",
            BanReason::Scanner => "scanner",
            BanReason::PasswordGuessing => "password_guessing",
        }
    }

    pub const ALL: [BanReason; 3] = [BanReason::CallFlood, BanReason::Scanner, BanReason::PasswordGuessing];
}

/// One ban, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanView {
    /// The address, or the IPv6 /64.
    pub source: String,
    pub reason: BanReason,
    /// When the ban started (wall clock, for people).
    pub since: jiff::Timestamp,
    /// When it ends.
    pub until: jiff::Timestamp,
    /// Messages dropped because of it.
    pub dropped: u64,
}

#[derive(Clone, Debug)]
struct Ban {
    reason: BanReason,
    until: Instant,
    since_wall: jiff::Timestamp,
    until_wall: jiff::Timestamp,
    dropped: u64,
}

/// Counters for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BanStats {
    /// Bans started, by reason.
    pub started: HashMap<BanReason, u64>,
    /// Messages dropped from banned sources.
    pub dropped: u64,
}

/// The bans in force.
#[derive(Debug, Default)]
pub struct BanList {
    bans: HashMap<SourceKey, Ban>,
    stats: BanStats,
    /// Bound on remembered bans; past it the one ending first is forgotten.
    max_bans: usize,
}

impl BanList {
    pub fn new(max_bans: usize) -> BanList {
        BanList { max_bans: max_bans.max(1), ..BanList::default() }
    }

    /// Bans `ip` for `duration` from `now` (`wall` is the same moment on the wall clock).
    /// Returns `false` when it was banned already (the longer of the two bans stays).
    pub fn ban(&mut self, now: Instant, wall: jiff::Timestamp, ip: IpAddr, reason: BanReason, duration: Duration) -> bool {
        let key = SourceKey::from(ip);
        let until = now + duration;
        let until_wall = wall.checked_add(duration).unwrap_or(wall);
        if let Some(ban) = self.bans.get_mut(&key) {
            if now < ban.until {
                if until > ban.until {
                    ban.until = until;
                    ban.until_wall = until_wall;
                }
                return false;
            }
        }
        if !self.bans.contains_key(&key) && self.bans.len() >= self.max_bans {
            self.expire(now);
            if self.bans.len() >= self.max_bans {
                if let Some(first) = self.bans.iter().min_by_key(|(_, b)| b.until).map(|(k, _)| *k) {
                    self.bans.remove(&first);
                }
            }
        }
        self.bans.insert(key, Ban { reason, until, since_wall: wall, until_wall, dropped: 0 });
        *self.stats.started.entry(reason).or_default() += 1;
        true
    }

    /// Whether `ip` is banned at `now`; a banned source's message is counted as dropped.
    pub fn drops(&mut self, now: Instant, ip: IpAddr) -> bool {
        match self.bans.get_mut(&SourceKey::from(ip)) {
            Some(ban) if now < ban.until => {
                ban.dropped += 1;
                self.stats.dropped += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether `ip` is banned at `now` (nothing counted).
    pub fn is_banned(&self, now: Instant, ip: IpAddr) -> bool {
        self.bans.get(&SourceKey::from(ip)).is_some_and(|b| now < b.until)
    }

    /// Lifts a ban (an administrator's decision). `true` if there was one.
    pub fn lift(&mut self, ip: IpAddr) -> bool {
        self.bans.remove(&SourceKey::from(ip)).is_some()
    }

    /// Forgets expired bans.
    pub fn expire(&mut self, now: Instant) {
        self.bans.retain(|_, b| now < b.until);
    }

    /// The bans in force at `now`, the longest-running first.
    pub fn list(&self, now: Instant) -> Vec<BanView> {
        let mut list: Vec<BanView> = self
            .bans
            .iter()
            .filter(|(_, b)| now < b.until)
            .map(|(key, b)| BanView {
                source: key.to_string(),
                reason: b.reason,
                since: b.since_wall,
                until: b.until_wall,
                dropped: b.dropped,
            })
            .collect();
        list.sort_by(|a, b| a.since.cmp(&b.since).then_with(|| a.source.cmp(&b.source)));
        list
    }

    /// Bans in force at `now`.
    pub fn active(&self, now: Instant) -> usize {
        self.bans.values().filter(|b| now < b.until).count()
    }

    pub fn stats(&self) -> &BanStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn origin() -> (Instant, jiff::Timestamp) {
        #[allow(clippy::disallowed_methods)] // an arbitrary origin for the test
        let now = Instant::now();
        (now, jiff::Timestamp::from_second(1_780_000_000).unwrap())
    }

    #[test]
    fn a_ban_drops_and_counts_until_it_expires() {
        let (t0, wall) = origin();
        let mut bans = BanList::new(100);
        assert!(bans.ban(t0, wall, ip("127.0.0.2"), BanReason::CallFlood, Duration::from_secs(60)));
        assert!(bans.drops(t0 + Duration::from_secs(1), ip("127.0.0.2")));
        assert!(bans.drops(t0 + Duration::from_secs(59), ip("127.0.0.2")));
        assert!(!bans.drops(t0 + Duration::from_secs(1), ip("127.0.0.3")), "only that source");
        assert!(!bans.drops(t0 + Duration::from_secs(60), ip("127.0.0.2")), "expired");
        assert_eq!(bans.stats().dropped, 2);
        assert_eq!(bans.stats().started[&BanReason::CallFlood], 1);
        let listed = bans.list(t0);
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].source.as_str(), listed[0].reason, listed[0].dropped), ("127.0.0.2", BanReason::CallFlood, 2));
        assert_eq!(listed[0].until, wall.checked_add(Duration::from_secs(60)).unwrap());
        bans.expire(t0 + Duration::from_secs(61));
        assert!(bans.list(t0).is_empty());
    }

    #[test]
    fn a_second_ban_extends_but_never_shortens_and_is_not_new() {
        let (t0, wall) = origin();
        let mut bans = BanList::new(100);
        bans.ban(t0, wall, ip("10.0.0.1"), BanReason::Scanner, Duration::from_secs(600));
        assert!(!bans.ban(t0, wall, ip("10.0.0.1"), BanReason::CallFlood, Duration::from_secs(10)));
        assert!(bans.is_banned(t0 + Duration::from_secs(599), ip("10.0.0.1")));
        assert_eq!(bans.stats().started.get(&BanReason::CallFlood), None);
        assert!(bans.lift(ip("10.0.0.1")));
        assert!(!bans.is_banned(t0, ip("10.0.0.1")));
    }

    #[test]
    fn the_list_is_bounded_and_ipv6_is_banned_by_slash64() {
        let (t0, wall) = origin();
        let mut bans = BanList::new(2);
        for i in 0..5u8 {
            bans.ban(t0, wall, IpAddr::from([10, 0, 0, i]), BanReason::CallFlood, Duration::from_secs(60 + u64::from(i)));
        }
        assert_eq!(bans.active(t0), 2);
        bans.ban(t0, wall, ip("2001:db8::1"), BanReason::PasswordGuessing, Duration::from_secs(900));
        assert!(bans.is_banned(t0, ip("2001:db8::abcd")));
    }
}
