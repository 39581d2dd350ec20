//! Makes password guessing useless: failed digest answers are counted per (address,
//! username), per username and per address, each with its own answer.
//!
//! - **(address, username)**: `pair_free` failures are free (a mistyped password); then that
//!   address may not try that user for a backoff that doubles with every further failure
//!   (`base_backoff`, 2×, 4×, … up to `max_backoff`). A success clears it. One phone with a
//!   wrong password behind an office's NAT blocks only itself, not its neighbours.
//! - **username**: after `user_free` failures from anywhere, the user is blocked with the same
//!   doubling backoff — except from addresses where it last authenticated (its own phones),
//!   so guessing from many addresses gets nowhere and cannot lock the operator out.
//! - **address**: `address_max` failures across usernames within `address_window` mark the
//!   address as a guesser, for the edge to ban (every SIP message dropped).
//!
//! While blocked, a REGISTER is refused (403) without its answer being checked: it is not a
//! guess. Failures for usernames that do not exist count for the pair and the address only,
//! so random usernames cannot grow the per-user table.
//!
//! Owns: the failure history. Must not touch: clocks (time is a parameter), IO, logging.
//! Invariant: every table is bounded by `max_tracked`; when full, the entry whose last
//! activity is oldest is forgotten first.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::source::SourceKey;

/// Throttling policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Free failures per (address, username) before the backoff starts.
    pub pair_free: u32,
    /// Free failures per username, from any address.
    pub user_free: u32,
    /// The first backoff; each further failure doubles it.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Failure counts are forgotten after this long without a failure.
    pub forget_after: Duration,
    /// Failures across usernames within `address_window` that mark a guesser.
    pub address_max: usize,
    pub address_window: Duration,
    /// How long an address that authenticated stays trusted for its user.
    pub known_for: Duration,
    /// Bound on each table.
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            pair_free: 5,
            user_free: 20,
            base_backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(3600),
            forget_after: Duration::from_secs(3600),
            address_max: 30,
            address_window: Duration::from_secs(3600),
            known_for: Duration::from_secs(7 * 24 * 3600),
            max_tracked: 10_000,
        }
    }
}

/// Why a request is refused unchecked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// This address failed too often for this user.
    Pair { until: Instant },
    /// The user failed too often from everywhere.
    User { until: Instant },
}

/// What a failure led to, for the driver to log and act on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailureOutcome {
    /// A block that starts with this failure.
    pub blocked: Option<(Block, Duration)>,
    /// The address has now failed `address_max` times across usernames: ban it.
    pub guesser: bool,
}

#[derive(Debug)]
struct Backoff {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

impl Backoff {
    fn new(now: Instant) -> Backoff {
        Backoff { failures: 0, last: now, blocked_until: None }
    }

    fn is_blocked(&self, now: Instant) -> Option<Instant> {
        self.blocked_until.filter(|&until| now < until)
    }

    /// Counts a failure; the block it starts, if any.
    fn fail(&mut self, now: Instant, free: u32, config: &ThrottleConfig) -> Option<(Instant, Duration)> {
        if now.saturating_duration_since(self.last) >= config.forget_after {
            self.failures = 0;
        }
        self.failures += 1;
        self.last = now;
        let over = self.failures.checked_sub(free)?;
        // Capped at 2^16 so the shift cannot overflow; max_backoff caps the time anyway.
        let backoff = config.base_backoff.saturating_mul(1 << over.min(16)).min(config.max_backoff);
        let until = now + backoff;
        self.blocked_until = Some(until);
        Some((until, backoff))
    }
}

#[derive(Debug, Default)]
struct UserState {
    backoff: Option<Backoff>,
    /// Addresses that authenticated as this user, and when last.
    known: HashMap<SourceKey, Instant>,
}

/// Failure counting.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    pairs: HashMap<(SourceKey, String), Backoff>,
    users: HashMap<String, UserState>,
    addresses: HashMap<SourceKey, VecDeque<Instant>>,
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Throttle {
        Throttle { config, pairs: HashMap::new(), users: HashMap::new(), addresses: HashMap::new() }
    }

    /// Whether a REGISTER for `user` from `ip` is refused unchecked at `now`.
    pub fn blocked(&self, now: Instant, ip: IpAddr, user: &str) -> Option<Block> {
        let key = SourceKey::from(ip);
        if let Some(until) = self.pairs.get(&(key, user.to_owned())).and_then(|b| b.is_blocked(now)) {
            return Some(Block::Pair { until });
        }
        let state = self.users.get(user)?;
        let until = state.backoff.as_ref()?.is_blocked(now)?;
        let known = state.known.get(&key).is_some_and(|&t| now.saturating_duration_since(t) < self.config.known_for);
        (!known).then_some(Block::User { until })
    }

    /// Records a failed answer for `user` from `ip`; `user_exists` is false for usernames
    /// that are not operators.
    pub fn record_failure(&mut self, now: Instant, ip: IpAddr, user: &str, user_exists: bool) -> FailureOutcome {
        let key = SourceKey::from(ip);
        let config = self.config.clone();
        let mut outcome = FailureOutcome::default();
        bound(&mut self.pairs, config.max_tracked, |b| b.last);
        let pair = self.pairs.entry((key, user.to_owned())).or_insert_with(|| Backoff::new(now));
        if let Some((until, d)) = pair.fail(now, config.pair_free, &config) {
            outcome.blocked = Some((Block::Pair { until }, d));
        }
        if user_exists {
            bound(&mut self.users, config.max_tracked, |u| u.backoff.as_ref().map_or(now, |b| b.last));
            let state = self.users.entry(user.to_owned()).or_default();
            let backoff = state.backoff.get_or_insert_with(|| Backoff::new(now));
            if let Some((until, d)) = backoff.fail(now, config.user_free, &config) {
                if outcome.blocked.is_none() {
                    outcome.blocked = Some((Block::User { until }, d));
                }
            }
        }
        bound(&mut self.addresses, config.max_tracked, |q| q.back().copied().unwrap_or(now));
        let failures = self.addresses.entry(key).or_default();
        while failures.front().is_some_and(|&t| now.saturating_duration_since(t) >= config.address_window) {
            failures.pop_front();
        }
        failures.push_back(now);
        if failures.len() >= config.address_max.max(1) {
            failures.clear();
            outcome.guesser = true;
        }
        outcome
    }

    /// Records a successful answer: the pair is cleared and the address becomes known for
    /// the user (a user block does not apply to it).
    pub fn record_success(&mut self, now: Instant, ip: IpAddr, user: &str) {
        let key = SourceKey::from(ip);
        self.pairs.remove(&(key, user.to_owned()));
        let state = self.users.entry(user.to_owned()).or_default();
        state.known.insert(key, now);
        if state.known.len() > 16 {
            if let Some(oldest) = state.known.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                state.known.remove(&oldest);
            }
        }
    }

    /// Forgets what no longer matters.
    pub fn handle_timeout(&mut self, now: Instant) {
        let c = &self.config;
        let stale = |last: Instant| now.saturating_duration_since(last) >= c.forget_after;
        self.pairs.retain(|_, b| b.is_blocked(now).is_some() || !stale(b.last));
        self.users.retain(|_, u| {
            u.known.retain(|_, t| now.saturating_duration_since(*t) < c.known_for);
            let active = u.backoff.as_ref().is_some_and(|b| b.is_blocked(now).is_some() || !stale(b.last));
            if !active {
                u.backoff = None;
            }
            active || !u.known.is_empty()
        });
        self.addresses.retain(|_, q| q.back().is_some_and(|&t| now.saturating_duration_since(t) < c.address_window));
    }

    /// Entries remembered, all tables together.
    #[cfg_attr(not(test), allow(dead_code))] // read by tests and for diagnostics
    pub fn tracked(&self) -> usize {
        self.pairs.len() + self.users.len() + self.addresses.len()
    }
}

/// Makes room for one more entry in `map`, forgetting the least recently active.
fn bound<K: Clone + Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>, max: usize, last: impl Fn(&V) -> Instant) {
    if map.len() < max.max(1) {
        return;
    }
    if let Some(oldest) = map.iter().min_by_key(|(_, v)| last(v)).map(|(k, _)| k.clone()) {
        map.remove(&oldest);
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

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_pair_gets_free_failures_then_a_backoff_that_doubles() {
        let t0 = origin();
        let mut th = Throttle::new(ThrottleConfig::default());
        let a = ip("10.0.0.1");
        for i in 0..4 {
            assert_eq!(th.record_failure(t0 + secs(i), a, "op1", true).blocked, None);
        }
        let out = th.record_failure(t0 + secs(4), a, "op1", true);
        assert_eq!(out.blocked.map(|(_, d)| d), Some(secs(60)), "the fifth failure starts the first block");
        assert!(matches!(th.blocked(t0 + secs(5), a, "op1"), Some(Block::Pair { .. })));
        assert_eq!(th.blocked(t0 + secs(5), a, "op2"), None, "another user from the same office");
        assert_eq!(th.blocked(t0 + secs(5), ip("10.0.0.2"), "op1"), None, "the same user elsewhere");
        assert_eq!(th.blocked(t0 + secs(64), a, "op1"), None);
        let out = th.record_failure(t0 + secs(65), a, "op1", true);
        assert_eq!(out.blocked.map(|(_, d)| d), Some(secs(120)), "then it doubles");
        th.record_success(t0 + secs(400), a, "op1");
        assert_eq!(th.record_failure(t0 + secs(401), a, "op1", true).blocked, None, "a success clears the pair");
    }

    #[test]
    fn guessing_from_twenty_addresses_gets_few_guesses_an_hour_and_spares_the_operators_phone() {
        let t0 = origin();
        let mut th = Throttle::new(ThrottleConfig::default());
        let phone = ip("192.168.1.50");
        th.record_success(t0, phone, "op1");
        // 20 attackers, each trying whenever it is not blocked, once a second, for an hour.
        let mut guesses = 0;
        for s in 0..3600u64 {
            let now = t0 + secs(s);
            for a in 0..20u8 {
                let attacker = IpAddr::from([127, 0, 1, a]);
                if th.blocked(now, attacker, "op1").is_none() {
                    guesses += 1;
                    th.record_failure(now, attacker, "op1", true);
                }
            }
        }
        assert!(guesses <= 100, "{guesses} guesses in an hour");
        assert!(guesses >= 20, "the free failures are used: {guesses}");
        assert_eq!(th.blocked(t0 + secs(3600), phone, "op1"), None, "the operator's own phone still registers");
        assert!(matches!(th.blocked(t0 + secs(3600), ip("127.0.9.9"), "op1"), Some(Block::User { .. })));
    }

    #[test]
    fn an_address_guessing_across_usernames_is_a_guesser_and_unknown_users_are_not_tracked() {
        let t0 = origin();
        let mut th = Throttle::new(ThrottleConfig::default());
        let a = ip("127.0.0.7");
        let mut guesser_at = None;
        for i in 0..40u64 {
            if th.record_failure(t0 + secs(i), a, &format!("user{i}"), false).guesser {
                guesser_at.get_or_insert(i);
            }
        }
        assert_eq!(guesser_at, Some(29), "the 30th failure");
        assert!(th.users.is_empty(), "unknown usernames are not remembered per user");
    }

    #[test]
    fn memory_is_bounded_and_forgotten() {
        let t0 = origin();
        let mut th = Throttle::new(ThrottleConfig { max_tracked: 3, ..ThrottleConfig::default() });
        for i in 0..10u8 {
            th.record_failure(t0 + Duration::from_millis(u64::from(i)), IpAddr::from([10, 0, 0, i]), "op1", true);
        }
        assert!(th.pairs.len() <= 3 && th.addresses.len() <= 3);
        th.handle_timeout(t0 + secs(7200));
        assert_eq!(th.tracked(), 0);
    }
}
