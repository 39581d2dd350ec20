//! Slows down password guessing: after `max_failures` failed authentications from one source
//! within `window`, every REGISTER from that source is refused, unchecked, for `cool_off`.
//!
//! Owns: the failure history per source. Must not touch: clocks (time is a parameter), IO.
//! Invariants: a source is an IPv4 address or an IPv6 /64 (one host usually owns a whole /64);
//! at most `max_tracked` sources are remembered — when full, the one whose last failure is
//! oldest is forgotten first.
//! Caveat: operators behind one NAT share a source, so one phone with a wrong password can lock
//! out its neighbours for `cool_off`; raise `max_failures` for such offices.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::source::SourceKey;

/// Throttling policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures within `window` that trigger the cool-off.
    pub max_failures: usize,
    pub window: Duration,
    pub cool_off: Duration,
    /// Bound on remembered sources.
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_failures: 5,
            window: Duration::from_secs(60),
            cool_off: Duration::from_secs(60),
            max_tracked: 10_000,
        }
    }
}

#[derive(Debug, Default)]
struct Source {
    /// Failure times within the window, oldest first (at most `max_failures`).
    failures: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

impl Source {
    fn last_activity(&self) -> Option<Instant> {
        self.failures.back().copied().max(self.blocked_until)
    }
}

/// Failure counting per source.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    sources: HashMap<SourceKey, Source>,
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Throttle {
        Throttle {
            config,
            sources: HashMap::new(),
        }
    }

    /// Whether requests from `ip` are refused at `now`.
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.sources
            .get(&SourceKey::from(ip))
            .and_then(|s| s.blocked_until)
            .is_some_and(|until| now < until)
    }

    /// Records a failed authentication; `true` if `ip` is now blocked.
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) -> bool {
        let key = SourceKey::from(ip);
        if !self.sources.contains_key(&key) && self.sources.len() >= self.config.max_tracked {
            self.handle_timeout(now);
            if self.sources.len() >= self.config.max_tracked {
                self.evict_least_recent();
            }
        }
        let max = self.config.max_failures.max(1);
        let window = self.config.window;
        let source = self.sources.entry(key).or_default();
        while source
            .failures
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            source.failures.pop_front();
        }
        source.failures.push_back(now);
        while source.failures.len() > max {
            source.failures.pop_front();
        }
        if source.failures.len() >= max {
            source.blocked_until = Some(now + self.config.cool_off);
            source.failures.clear();
            true
        } else {
            false
        }
    }

    /// Forgets sources with no failure inside the window and no running cool-off.
    pub fn handle_timeout(&mut self, now: Instant) {
        let window = self.config.window;
        self.sources.retain(|_, s| {
            let blocked = s.blocked_until.is_some_and(|until| now < until);
            let recent = s
                .failures
                .back()
                .is_some_and(|&t| now.saturating_duration_since(t) < window);
            blocked || recent
        });
    }

    /// How many sources are remembered.
    #[cfg_attr(not(test), allow(dead_code))] // read by tests and for diagnostics
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    fn evict_least_recent(&mut self) {
        let oldest = self
            .sources
            .iter()
            .min_by_key(|(_, s)| s.last_activity())
            .map(|(k, _)| *k);
        if let Some(key) = oldest {
            self.sources.remove(&key);
        }
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

    #[test]
    fn blocks_after_max_failures_within_window_for_cool_off() {
        let t0 = origin();
        let mut th = Throttle::new(ThrottleConfig::default());
        for i in 0..4 {
            assert!(!th.record_failure(ip("10.0.0.1"), t0 + Duration::from_secs(i)));
        }
        assert!(!th.is_blocked(ip("10.0.0.1"), t0 + Duration::from_secs(4)));
        assert!(th.record_failure(ip("10.0.0.1"), t0 + Duration::from_secs(5)));
        assert!(th.is_blocked(ip("10.0.0.1"), t0 + Duration::from_secs(6)));
        assert!(!th.is_blocked(ip("10.0.0.2"), t0 + Duration::from_secs(6)));
        assert!(th.is_blocked(ip("10.0.0.1"), t0 + Duration::from_secs(64)));
        assert!(!th.is_blocked(ip("10.0.0.1"), t0 + Duration::from_secs(65)));
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let t0 = origin();
        let mut th = Throttle::new(ThrottleConfig::default());
        for i in 0..10 {
            assert!(!th.record_failure(ip("10.0.0.1"), t0 + Duration::from_secs(20 * i)));
        }
    }

    #[test]
    fn ipv6_hosts_in_one_slash64_share_a_budget() {
        let t0 = origin();
        let mut th = Throttle::new(ThrottleConfig {
            max_failures: 2,
            ..ThrottleConfig::default()
        });
        th.record_failure(ip("2001:db8::1"), t0);
        assert!(th.record_failure(ip("2001:db8::ffff:2"), t0));
        assert!(th.is_blocked(ip("2001:db8::3"), t0));
        assert!(!th.is_blocked(ip("2001:db8:0:1::3"), t0));
        th.record_failure(ip("::ffff:10.0.0.9"), t0);
        assert!(th.record_failure(ip("10.0.0.9"), t0));
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = origin();
        let mut th = Throttle::new(ThrottleConfig {
            max_tracked: 3,
            ..ThrottleConfig::default()
        });
        for i in 0..10u8 {
            th.record_failure(
                IpAddr::from([10, 0, 0, i]),
                t0 + Duration::from_millis(u64::from(i)),
            );
        }
        assert_eq!(th.tracked(), 3);
        th.handle_timeout(t0 + Duration::from_secs(120));
        assert_eq!(th.tracked(), 0);
    }
}
