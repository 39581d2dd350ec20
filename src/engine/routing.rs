//! Routing strategies: which free operator(s) to offer a caller to.
//!
//! Owns: [`Strategy`] (parsed once from config) and [`choose`], a pure function over a
//! [`Snapshot`] of the operators already found eligible (skills, presence, load, language).
//! Must not touch: engine state. `choose` never mutates anything but the RNG it is given;
//! the engine applies the result (e.g. moves the round-robin cursor) afterwards.
//!
//! Levels (penalties, lower = preferred): `linear` orders by level first; every other strategy
//! uses its own metric first and the level only to break ties. Ties that remain are broken at
//! random with the injected RNG (so no operator is favoured by their username), except in
//! `linear` and `round-robin`, whose order is by design stable (username order).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rand::Rng;

use super::ids::OperatorId;

/// How a queue picks among eligible operators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// The operator idle the longest (since their last call ended, or since they came online).
    #[default]
    LongestIdle,
    /// The next operator after the one last offered a call of this queue, in username order.
    RoundRobin,
    /// The operator who has taken the fewest calls.
    FewestCalls,
    /// The operator with the least talk time.
    LeastTalkTime,
    /// Every eligible operator at once; the first to answer takes the call.
    RingAll,
    /// The lowest level (penalty) first, then username order: always the same order.
    Linear,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 6] = [
        Strategy::LongestIdle,
        Strategy::RoundRobin,
        Strategy::FewestCalls,
        Strategy::LeastTalkTime,
        Strategy::RingAll,
        Strategy::Linear,
    ];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LongestIdle => "longest-idle",
            Strategy::RoundRobin => "round-robin",
            Strategy::FewestCalls => "fewest-calls",
            Strategy::LeastTalkTime => "least-talk-time",
            Strategy::RingAll => "ring-all",
            Strategy::Linear => "linear",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A strategy name that is not one of [`Strategy::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy '{0}' (expected longest-idle, round-robin, fewest-calls, least-talk-time, ring-all or linear)")]
pub struct UnknownStrategy(pub String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    fn from_str(s: &str) -> Result<Strategy, UnknownStrategy> {
        Strategy::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| UnknownStrategy(s.to_string()))
    }
}

/// One eligible operator as the strategies see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The operator.
    pub id: OperatorId,
    /// Their level (penalty) in the caller's queue; lower is preferred.
    pub level: u32,
    /// Since when they have been idle; `None` sorts as idle the longest.
    pub idle_since: Option<Instant>,
    /// Calls answered so far.
    pub calls_taken: u64,
    /// Talk time so far.
    pub talk_time: Duration,
}

/// What `choose` decides over.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    /// The queue's strategy.
    pub strategy: Strategy,
    /// Eligible operators, in any order (`choose` sorts by username where order matters).
    pub candidates: &'a [Candidate],
    /// The operator last offered a call of this queue (round-robin's cursor).
    pub last_offered: Option<&'a OperatorId>,
}

/// The operator(s) to offer the caller to: one, or every candidate for ring-all (in level
/// then username order); empty only when there are no candidates.
pub fn choose(snapshot: &Snapshot<'_>, rng: &mut impl Rng) -> Vec<OperatorId> {
    let cands = snapshot.candidates;
    if cands.is_empty() {
        return Vec::new();
    }
    let by_name = |a: &&Candidate, b: &&Candidate| a.id.cmp(&b.id);
    let pick = match snapshot.strategy {
        Strategy::RingAll => {
            let mut all: Vec<&Candidate> = cands.iter().collect();
            all.sort_by(|a, b| a.level.cmp(&b.level).then(by_name(a, b)));
            return all.into_iter().map(|c| c.id.clone()).collect();
        }
        Strategy::Linear => cands.iter().min_by(|a, b| a.level.cmp(&b.level).then(by_name(a, b))),
        Strategy::RoundRobin => {
            let mut sorted: Vec<&Candidate> = cands.iter().collect();
            sorted.sort_by(by_name);
            let after = snapshot.last_offered.and_then(|last| sorted.iter().find(|c| &c.id > last));
            after.or(sorted.first()).copied()
        }
        // `None` (never idle-measured) sorts first: idle the longest.
        Strategy::LongestIdle => best(cands, rng, |a, b| a.idle_since.cmp(&b.idle_since).then(a.level.cmp(&b.level))),
        Strategy::FewestCalls => best(cands, rng, |a, b| a.calls_taken.cmp(&b.calls_taken).then(a.level.cmp(&b.level))),
        Strategy::LeastTalkTime => best(cands, rng, |a, b| a.talk_time.cmp(&b.talk_time).then(a.level.cmp(&b.level))),
    };
    pick.map(|c| vec![c.id.clone()]).unwrap_or_default()
}

/// The smallest candidate by `cmp`; equal smallest ones are drawn at random.
fn best<'c>(
    cands: &'c [Candidate],
    rng: &mut impl Rng,
    cmp: impl Fn(&Candidate, &Candidate) -> Ordering,
) -> Option<&'c Candidate> {
    let min = cands.iter().min_by(|a, b| cmp(a, b))?;
    let mut tied: Vec<&Candidate> = cands.iter().filter(|c| cmp(c, min) == Ordering::Equal).collect();
    if tied.len() == 1 {
        return tied.pop();
    }
    // Sort first so the draw depends on the seed only, not on the caller's candidate order.
    tied.sort_by(|a, b| a.id.cmp(&b.id));
    let i = rng.gen_range(0..tied.len());
    Some(tied[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn t0() -> Instant {
        #[allow(clippy::disallowed_methods)] // an arbitrary origin for the test
        Instant::now()
    }

    fn cand(id: &str, level: u32, idle: Option<Instant>, calls: u64, talk: u64) -> Candidate {
        Candidate {
            id: OperatorId(id.into()),
            level,
            idle_since: idle,
            calls_taken: calls,
            talk_time: Duration::from_secs(talk),
        }
    }

    fn run(strategy: Strategy, cands: &[Candidate], last: Option<&str>) -> Vec<String> {
        let last = last.map(|l| OperatorId(l.into()));
        let snap = Snapshot { strategy, candidates: cands, last_offered: last.as_ref() };
        choose(&snap, &mut SmallRng::seed_from_u64(7)).into_iter().map(|o| o.0).collect()
    }

    #[test]
    fn strategies_parse_from_their_config_names_and_print_back() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(s));
        }
        assert!("ringall".parse::<Strategy>().is_err());
        assert_eq!(Strategy::default(), Strategy::LongestIdle);
    }

    #[test]
    fn no_candidates_means_no_choice() {
        for s in Strategy::ALL {
            assert!(run(s, &[], None).is_empty());
        }
    }

    #[test]
    fn longest_idle_takes_the_earliest_idle_and_level_breaks_ties() {
        let t = t0();
        let c = [cand("a", 0, Some(t + Duration::from_secs(5)), 0, 0), cand("b", 0, Some(t), 9, 99)];
        assert_eq!(run(Strategy::LongestIdle, &c, None), ["b"]);
        let c = [cand("a", 2, Some(t), 0, 0), cand("b", 1, Some(t), 0, 0)];
        assert_eq!(run(Strategy::LongestIdle, &c, None), ["b"]);
        let c = [cand("a", 0, Some(t), 0, 0), cand("b", 0, None, 0, 0)];
        assert_eq!(run(Strategy::LongestIdle, &c, None), ["b"], "never measured counts as idle longest");
    }

    #[test]
    fn round_robin_moves_past_the_last_offered_and_wraps() {
        let c = [cand("c", 0, None, 0, 0), cand("a", 0, None, 0, 0), cand("b", 0, None, 0, 0)];
        assert_eq!(run(Strategy::RoundRobin, &c, None), ["a"]);
        assert_eq!(run(Strategy::RoundRobin, &c, Some("a")), ["b"]);
        assert_eq!(run(Strategy::RoundRobin, &c, Some("b")), ["c"]);
        assert_eq!(run(Strategy::RoundRobin, &c, Some("c")), ["a"]);
        // The last one offered may be busy now: the next name after it still goes next.
        let c = [cand("a", 0, None, 0, 0), cand("c", 0, None, 0, 0)];
        assert_eq!(run(Strategy::RoundRobin, &c, Some("b")), ["c"]);
    }

    #[test]
    fn fewest_calls_and_least_talk_time_use_their_counters() {
        let c = [cand("a", 0, None, 3, 10), cand("b", 0, None, 5, 5)];
        assert_eq!(run(Strategy::FewestCalls, &c, None), ["a"]);
        assert_eq!(run(Strategy::LeastTalkTime, &c, None), ["b"]);
        let c = [cand("a", 3, None, 1, 1), cand("b", 1, None, 1, 1)];
        assert_eq!(run(Strategy::FewestCalls, &c, None), ["b"], "level breaks the tie");
        assert_eq!(run(Strategy::LeastTalkTime, &c, None), ["b"]);
    }

    #[test]
    fn ring_all_returns_everyone_by_level_then_name() {
        let c = [cand("b", 1, None, 0, 0), cand("c", 0, None, 0, 0), cand("a", 1, None, 0, 0)];
        assert_eq!(run(Strategy::RingAll, &c, None), ["c", "a", "b"]);
    }

    #[test]
    fn linear_takes_the_lowest_level_then_the_first_name_always() {
        let c = [cand("b", 1, None, 0, 0), cand("c", 0, None, 0, 0), cand("a", 0, None, 0, 0)];
        for _ in 0..3 {
            assert_eq!(run(Strategy::Linear, &c, Some("a")), ["a"]);
        }
    }

    #[test]
    fn remaining_ties_are_drawn_by_the_seeded_rng_and_every_tied_operator_can_win() {
        let c = [cand("a", 0, None, 0, 0), cand("b", 0, None, 0, 0), cand("c", 0, None, 0, 0)];
        let snap = Snapshot { strategy: Strategy::FewestCalls, candidates: &c, last_offered: None };
        let mut rng = SmallRng::seed_from_u64(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..60 {
            seen.insert(choose(&snap, &mut rng)[0].0.clone());
        }
        assert_eq!(seen.len(), 3);
        let again = |seed| choose(&snap, &mut SmallRng::seed_from_u64(seed));
        assert_eq!(again(42), again(42), "same seed, same choice");
    }
}
