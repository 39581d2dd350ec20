//! Admission control for new calls: decides, before a call costs anything (an RTP port, a
//! dialog, an engine call), whether a source may start one more.
//!
//! ```text
//!  INVITE ─▶ service full? ──yes──▶ 503 + Retry-After
//!             │ per-source calls in progress ≥ limit? ──yes──▶ 503 (a refusal)
//!             │ per-source INVITE rate over its token bucket? ──yes──▶ 503 (a refusal)
//!             ▼                       refusals ≥ ban_after within ban_window ──▶ ban (bans.rs)
//!           admitted: calls += 1 until `release`
//! ```
//! Three classes of source get their own limits: carriers' trunks (generous), registered
//! operators, and everyone else (tight). One source can never take the whole RTP pool: its
//! calls in progress are capped, and the service's own ceiling sits below the pool's size.
//!
//! Owns: calls in progress per source and in total, INVITE rate buckets, refusal counts.
//! Must not touch: clocks (`now` is a parameter), sockets, the ban list (it only says when a
//! source has earned a ban).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::source::SourceKey;

/// What a class of source may do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SourceLimits {
    /// Calls in progress at once (0: only the service's ceiling applies).
    pub max_calls: usize,
    /// Sustained new calls per second.
    pub invites_per_sec: f64,
    /// How many new calls may arrive at once above the sustained rate.
    pub invite_burst: f64,
}

/// Who a source is, as far as limits go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceClass {
    Trunk,
    Operator,
    Unknown,
}

impl SourceClass {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceClass::Trunk => "trunk",
            SourceClass::Operator => "operator",
            SourceClass::Unknown => "unknown",
        }
    }
}

/// The policy.
#[derive(Clone, Debug, PartialEq)]
pub struct AdmissionConfig {
    /// Calls in progress in the whole service.
    pub max_calls: usize,
    pub trunk: SourceLimits,
    pub operator: SourceLimits,
    pub unknown: SourceLimits,
    /// Refusals within `ban_window` that earn a ban (0: never ban). Trunks are never banned.
    pub ban_after: usize,
    pub ban_window: Duration,
    /// What a refused caller is told to wait (`Retry-After`).
    pub retry_after: Duration,
    /// Bound on remembered sources.
    pub max_tracked: usize,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_calls: 4500,
            trunk: SourceLimits { max_calls: 0, invites_per_sec: 500.0, invite_burst: 1000.0 },
            operator: SourceLimits { max_calls: 4, invites_per_sec: 2.0, invite_burst: 5.0 },
            unknown: SourceLimits { max_calls: 10, invites_per_sec: 5.0, invite_burst: 10.0 },
            ban_after: 20,
            ban_window: Duration::from_secs(60),
            retry_after: Duration::from_secs(30),
            max_tracked: 100_000,
        }
    }
}

/// Why a call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// The service holds its most calls.
    ServiceFull,
    /// The source holds its most calls.
    SourceCalls,
    /// The source sends new calls faster than its rate.
    SourceRate,
}

impl Refusal {
    pub const ALL: [Refusal; 3] = [Refusal::ServiceFull, Refusal::SourceCalls, Refusal::SourceRate];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ServiceFull => "service_full",
            Refusal::SourceCalls => "source_calls",
            Refusal::SourceRate => "source_rate",
        }
    }
}

/// The decision on one INVITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; call `release` with the same ip when the call ends.
    Admit,
    /// Answer 503 with `Retry-After: retry_after`. `ban` is set when this refusal was one
    /// too many: the source has earned a ban.
    Refuse { reason: Refusal, retry_after: Duration, ban: bool },
}

#[derive(Debug)]
struct Source {
    calls: usize,
    tokens: f64,
    refilled: Instant,
    /// Refusal times within the ban window, oldest first (at most `ban_after`).
    refusals: VecDeque<Instant>,
}

/// Counters for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Refused INVITEs by reason and source class.
    pub refused: HashMap<(Refusal, SourceClass), u64>,
}

/// Calls in progress and INVITE rates, per source.
#[derive(Debug)]
pub struct Admission {
    config: AdmissionConfig,
    total: usize,
    sources: HashMap<SourceKey, Source>,
    stats: AdmissionStats,
}

impl Admission {
    pub fn new(config: AdmissionConfig) -> Admission {
        Admission { config, total: 0, sources: HashMap::new(), stats: AdmissionStats::default() }
    }

    fn limits(&self, class: SourceClass) -> SourceLimits {
        match class {
            SourceClass::Trunk => self.config.trunk,
            SourceClass::Operator => self.config.operator,
            SourceClass::Unknown => self.config.unknown,
        }
    }

    /// Decides on a new call from `ip` of `class` at `now`.
    pub fn admit(&mut self, now: Instant, ip: IpAddr, class: SourceClass) -> Decision {
        let limits = self.limits(class);
        let key = SourceKey::from(ip);
        if !self.sources.contains_key(&key) && self.sources.len() >= self.config.max_tracked {
            self.forget_idle(now);
        }
        let source = self.sources.entry(key).or_insert_with(|| Source {
            calls: 0,
            tokens: limits.invite_burst.max(1.0),
            refilled: now,
            refusals: VecDeque::new(),
        });
        // Refill the bucket for the time since the last INVITE.
        let elapsed = now.saturating_duration_since(source.refilled).as_secs_f64();
        source.tokens = (source.tokens + elapsed * limits.invites_per_sec).min(limits.invite_burst.max(1.0));
        source.refilled = now;
        let refusal = if self.total >= self.config.max_calls {
            Some(Refusal::ServiceFull)
        } else if limits.max_calls > 0 && source.calls >= limits.max_calls {
            Some(Refusal::SourceCalls)
        } else if source.tokens < 1.0 {
            Some(Refusal::SourceRate)
        } else {
            None
        };
        // Only admitted calls spend a token: a caller back at the rate after a burst is
        // served again at once; one that keeps hammering earns a ban instead.
        let Some(reason) = refusal else {
            source.tokens -= 1.0;
            source.calls += 1;
            self.total += 1;
            return Decision::Admit;
        };
        *self.stats.refused.entry((reason, class)).or_default() += 1;
        // A full service is nobody's fault: it bans no one. Trunks are never banned.
        let counts_for_ban = reason != Refusal::ServiceFull && class != SourceClass::Trunk && self.config.ban_after > 0;
        let mut ban = false;
        if counts_for_ban {
            let window = self.config.ban_window;
            while source.refusals.front().is_some_and(|&t| now.saturating_duration_since(t) >= window) {
                source.refusals.pop_front();
            }
            source.refusals.push_back(now);
            if source.refusals.len() >= self.config.ban_after {
                source.refusals.clear();
                ban = true;
            }
        }
        Decision::Refuse { reason, retry_after: self.config.retry_after, ban }
    }

    /// A call admitted from `ip` has ended.
    pub fn release(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(source) = self.sources.get_mut(&SourceKey::from(ip)) {
            source.calls = source.calls.saturating_sub(1);
        }
    }

    /// Calls in progress in the whole service.
    pub fn calls(&self) -> usize {
        self.total
    }

    /// Calls in progress from `ip`.
    pub fn calls_from(&self, ip: IpAddr) -> usize {
        self.sources.get(&SourceKey::from(ip)).map_or(0, |s| s.calls)
    }

    pub fn stats(&self) -> &AdmissionStats {
        &self.stats
    }

    /// Forgets sources with no call in progress that sent nothing for a while (call it now
    /// and then; `admit` calls it when the table is full).
    pub fn forget_idle(&mut self, now: Instant) {
        // A minute idle refills any bucket worth having; the ban window covers refusals.
        let idle = self.config.ban_window.max(Duration::from_secs(60));
        self.sources.retain(|_, s| s.calls > 0 || now.saturating_duration_since(s.refilled) < idle);
    }

    /// Sources remembered.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn origin() -> Instant {
        #[allow(clippy::disallowed_methods)] // an arbitrary origin for the test
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn refused(d: Decision) -> Option<Refusal> {
        match d {
            Decision::Admit => None,
            Decision::Refuse { reason, .. } => Some(reason),
        }
    }

    #[test]
    fn an_unknown_source_is_capped_in_calls_and_others_are_not_affected() {
        let t0 = origin();
        let mut a = Admission::new(AdmissionConfig {
            unknown: SourceLimits { max_calls: 3, invites_per_sec: 100.0, invite_burst: 100.0 },
            ..AdmissionConfig::default()
        });
        for _ in 0..3 {
            assert_eq!(a.admit(t0, ip("127.0.0.2"), SourceClass::Unknown), Decision::Admit);
        }
        assert_eq!(refused(a.admit(t0, ip("127.0.0.2"), SourceClass::Unknown)), Some(Refusal::SourceCalls));
        assert_eq!(a.admit(t0, ip("127.0.0.3"), SourceClass::Unknown), Decision::Admit, "another source");
        a.release(ip("127.0.0.2"));
        assert_eq!(a.admit(t0, ip("127.0.0.2"), SourceClass::Unknown), Decision::Admit, "a freed slot");
        assert_eq!(a.calls(), 4);
        assert_eq!(a.calls_from(ip("127.0.0.2")), 3);
    }

    #[test]
    fn the_rate_is_a_token_bucket_and_a_flood_gets_only_the_rate() {
        let t0 = origin();
        let mut a = Admission::new(AdmissionConfig {
            unknown: SourceLimits { max_calls: 0, invites_per_sec: 5.0, invite_burst: 10.0 },
            ban_after: 0,
            ..AdmissionConfig::default()
        });
        let src = ip("10.1.1.1");
        let admitted = (0..10).filter(|_| a.admit(t0, src, SourceClass::Unknown) == Decision::Admit).count();
        assert_eq!(admitted, 10, "the burst");
        assert_eq!(refused(a.admit(t0, src, SourceClass::Unknown)), Some(Refusal::SourceRate));
        // A steady 5/s after the burst is served in full...
        let mut t = t0;
        let mut steady = 0;
        for _ in 0..50 {
            t += ms(200);
            steady += usize::from(a.admit(t, src, SourceClass::Unknown) == Decision::Admit);
        }
        assert!(steady >= 45, "a caller at the sustained rate gets through: {steady}/50");
        // ... while 1,000/s for a second gets little more than the rate.
        let mut flood = 0;
        for _ in 0..1000 {
            t += ms(1);
            flood += usize::from(a.admit(t, src, SourceClass::Unknown) == Decision::Admit);
        }
        assert!(flood <= 6, "a flood is held to the rate: {flood} admitted");
    }

    #[test]
    fn the_service_ceiling_holds_for_trunks_too_and_bans_nobody() {
        let t0 = origin();
        let mut a = Admission::new(AdmissionConfig { max_calls: 2, ban_after: 1, ..AdmissionConfig::default() });
        assert_eq!(a.admit(t0, ip("10.0.0.1"), SourceClass::Trunk), Decision::Admit);
        assert_eq!(a.admit(t0, ip("10.0.0.2"), SourceClass::Unknown), Decision::Admit);
        let d = a.admit(t0, ip("10.0.0.3"), SourceClass::Unknown);
        assert_eq!(d, Decision::Refuse { reason: Refusal::ServiceFull, retry_after: Duration::from_secs(30), ban: false });
        assert_eq!(refused(a.admit(t0, ip("10.0.0.1"), SourceClass::Trunk)), Some(Refusal::ServiceFull));
    }

    #[test]
    fn repeated_refusals_earn_a_ban_once_but_never_for_a_trunk() {
        let t0 = origin();
        let config = AdmissionConfig {
            unknown: SourceLimits { max_calls: 1, invites_per_sec: 1000.0, invite_burst: 1000.0 },
            trunk: SourceLimits { max_calls: 1, invites_per_sec: 1000.0, invite_burst: 1000.0 },
            ban_after: 5,
            ..AdmissionConfig::default()
        };
        let mut a = Admission::new(config);
        let src = ip("127.0.0.2");
        a.admit(t0, src, SourceClass::Unknown);
        let bans: Vec<bool> = (0..10)
            .map(|i| matches!(a.admit(t0 + ms(i), src, SourceClass::Unknown), Decision::Refuse { ban: true, .. }))
            .collect();
        assert_eq!(bans.iter().filter(|b| **b).count(), 2, "every fifth refusal: {bans:?}");
        assert!(bans[4]);
        let trunk = ip("10.9.9.9");
        a.admit(t0, trunk, SourceClass::Trunk);
        assert!((0..20).all(|_| !matches!(a.admit(t0, trunk, SourceClass::Trunk), Decision::Refuse { ban: true, .. })));
        // Refusals spread wider than the window earn nothing.
        let other = ip("127.0.0.5");
        a.admit(t0, other, SourceClass::Unknown);
        assert!((1..20).all(|i| !matches!(
            a.admit(t0 + Duration::from_secs(20 * i), other, SourceClass::Unknown),
            Decision::Refuse { ban: true, .. }
        )));
    }

    #[test]
    fn idle_sources_are_forgotten_and_memory_is_bounded() {
        let t0 = origin();
        let mut a = Admission::new(AdmissionConfig { max_tracked: 10, ..AdmissionConfig::default() });
        for i in 0..10u8 {
            a.admit(t0, IpAddr::from([10, 0, 0, i]), SourceClass::Unknown);
            a.release(IpAddr::from([10, 0, 0, i]));
        }
        a.forget_idle(t0 + Duration::from_secs(120));
        assert_eq!(a.tracked(), 0);
        a.admit(t0, ip("10.0.0.1"), SourceClass::Unknown);
        a.forget_idle(t0 + Duration::from_secs(120));
        assert_eq!(a.tracked(), 1, "a source with a call in progress is kept");
    }
}
