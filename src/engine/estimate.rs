//! The expected wait of one caller, from their position, the operators serving the queue now
//! and the queue's recent talk times.
//!
//! Owns: [`HandleTimes`] (a window of recent talk times, winsorised, and an average ring
//! time) and [`estimate`], a pure function of its inputs and the RNG it is given.
//! Must not touch: engine state, the clock, a global RNG.
//!
//! Method: a small Monte Carlo of the line ahead. Each operator line ("slot") becomes free
//! after the rest of its current call, drawn from the recent talk times that lasted longer
//! than the call has lasted so far (so a call 10 minutes old is expected to go on longer than
//! a fresh one), plus its wrap-up. The callers ahead then take the earliest free slot in turn,
//! each keeping it for a ring time, a talk time drawn from the window and the wrap-up. The
//! caller's wait is when the slot reaches them plus a ring time. The median over the runs is
//! the estimate: a typical wait, less pulled by the long tail than a mean. Callers beyond the
//! 64th place add one average cycle per slot each, so a long line costs no more than that.
//! Unknown to it: callers of other queues served by the same operators, abandonments ahead,
//! and higher-priority callers who will arrive later.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use rand::Rng;

/// Talk times kept per queue.
const WINDOW: usize = 200;
/// Monte Carlo runs per estimate.
const RUNS: usize = 128;
/// Places simulated one by one; the rest are extrapolated.
const SIMULATED_PLACES: usize = 64;
/// A new talk time is capped at this many medians (a forgotten call must not skew the window).
const WINSOR: f64 = 10.0;
/// Weight of a new ring time in its moving average.
const RING_WEIGHT: f64 = 0.2;

/// Recent talk times (seconds, oldest first, and the same sorted) and ring times of a queue.
#[derive(Clone, Debug, Default)]
pub(crate) struct HandleTimes {
    recent: VecDeque<f64>,
    sorted: Vec<f64>,
    ring: Option<f64>,
}

impl HandleTimes {
    /// A connected call of this queue ended after `talk`.
    pub(crate) fn observe_talk(&mut self, talk: Duration) {
        let mut t = talk.as_secs_f64();
        if self.sorted.len() >= 10 {
            t = t.min(WINSOR * self.median());
        }
        if self.recent.len() == WINDOW {
            if let Some(old) = self.recent.pop_front() {
                let at = self.sorted.partition_point(|x| *x < old);
                self.sorted.remove(at);
            }
        }
        self.recent.push_back(t);
        let at = self.sorted.partition_point(|x| *x <= t);
        self.sorted.insert(at, t);
    }

    /// An operator answered after ringing for `ring`.
    pub(crate) fn observe_ring(&mut self, ring: Duration) {
        let r = ring.as_secs_f64();
        self.ring = Some(self.ring.map_or(r, |old| old + RING_WEIGHT * (r - old)));
    }

    /// How many talk times are in the window.
    pub(crate) fn samples(&self) -> usize {
        self.sorted.len()
    }

    fn median(&self) -> f64 {
        self.sorted.get(self.sorted.len() / 2).copied().unwrap_or(0.0)
    }

    fn mean(&self) -> f64 {
        if self.sorted.is_empty() {
            0.0
        } else {
            self.sorted.iter().sum::<f64>() / self.sorted.len() as f64
        }
    }
}

/// One operator line serving the queue now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Slot {
    /// On a call that has lasted this long; `None` when not talking.
    pub(crate) talking_for: Option<Duration>,
    /// Then busy this much longer (the wrap-up after the call, or what is left of one).
    pub(crate) then: Duration,
}

impl Slot {
    /// A line free now (or ringing for a caller of this queue, who is in the line ahead).
    pub(crate) const FREE: Slot = Slot { talking_for: None, then: Duration::ZERO };
}

/// What the estimate knows about the queue's calls.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Model<'a> {
    /// The queue's recent times.
    pub(crate) history: &'a HandleTimes,
    /// Talk times needed before the window is trusted.
    pub(crate) min_samples: usize,
    /// The talk time assumed before that; `None`: no estimate.
    pub(crate) prior: Option<Duration>,
    /// The queue's wrap-up.
    pub(crate) wrap_up: Duration,
}

/// Where talk times are drawn from.
enum Talk<'a> {
    /// The window, sorted, and its mean.
    Window(&'a [f64], f64),
    /// Exponential with this mean (the prior, or past the longest call seen).
    Exponential(f64),
}

impl Talk<'_> {
    fn mean(&self) -> f64 {
        match self {
            Talk::Window(_, mean) | Talk::Exponential(mean) => *mean,
        }
    }

    fn draw(&self, rng: &mut impl Rng) -> f64 {
        match self {
            Talk::Window(sorted, _) => sorted[rng.gen_range(0..sorted.len())],
            Talk::Exponential(mean) => exponential(*mean, rng),
        }
    }

    /// What is left of a call that has lasted `elapsed` seconds.
    fn rest(&self, elapsed: f64, rng: &mut impl Rng) -> f64 {
        match self {
            Talk::Window(sorted, mean) => {
                let longer = sorted.partition_point(|t| *t <= elapsed);
                if longer < sorted.len() {
                    sorted[rng.gen_range(longer..sorted.len())] - elapsed
                } else {
                    // Longer than every call in the window: assume it is memoryless from here.
                    exponential(*mean, rng)
                }
            }
            Talk::Exponential(mean) => exponential(*mean, rng),
        }
    }
}

fn exponential(mean: f64, rng: &mut impl Rng) -> f64 {
    let u: f64 = rng.gen();
    -mean * (1.0 - u).ln()
}

/// A total order on seconds for the heap (estimates are never NaN: sums of finite draws).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Secs(f64);

impl Eq for Secs {}

impl PartialOrd for Secs {
    fn partial_cmp(&self, other: &Secs) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Secs {
    fn cmp(&self, other: &Secs) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The expected wait of the caller at `position` (1-based) given the lines serving the queue.
/// `None` when no line serves it or the talk time is not known yet (see [`Model`]).
pub(crate) fn estimate(slots: &[Slot], position: usize, model: &Model<'_>, rng: &mut impl Rng) -> Option<Duration> {
    if slots.is_empty() || position == 0 {
        return None;
    }
    let history = model.history;
    let talk = if history.samples() >= model.min_samples.max(1) {
        Talk::Window(&history.sorted, history.mean())
    } else {
        Talk::Exponential(model.prior?.as_secs_f64())
    };
    let ring = history.ring.unwrap_or(0.0);
    if slots.iter().filter(|s| **s == Slot::FREE).count() >= position {
        // A line is free for everyone up to the caller: every run would say "after a ring".
        return Some(Duration::from_secs_f64(ring));
    }
    let wrap = model.wrap_up.as_secs_f64();
    let places = position.min(SIMULATED_PLACES);
    let mut waits = Vec::with_capacity(RUNS);
    let mut free: BinaryHeap<Reverse<Secs>> = BinaryHeap::with_capacity(slots.len());
    for _ in 0..RUNS {
        free.clear();
        for slot in slots {
            let rest = slot.talking_for.map_or(0.0, |a| talk.rest(a.as_secs_f64(), rng));
            free.push(Reverse(Secs(rest + slot.then.as_secs_f64())));
        }
        let mut start = 0.0;
        for place in 1..=places {
            let Some(Reverse(Secs(at))) = free.pop() else { break };
            start = at;
            if place < places {
                free.push(Reverse(Secs(at + ring + talk.draw(rng) + wrap)));
            }
        }
        waits.push(start + ring);
    }
    waits.sort_by(f64::total_cmp);
    let median = waits[waits.len() / 2];
    let beyond = (position - places) as f64 * (ring + talk.mean() + wrap) / slots.len() as f64;
    Some(Duration::from_secs_f64((median + beyond).max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn history(talks: &[u64]) -> HandleTimes {
        let mut h = HandleTimes::default();
        for t in talks {
            h.observe_talk(s(*t));
        }
        h
    }

    fn run(slots: &[Slot], position: usize, h: &HandleTimes) -> Option<u64> {
        let model = Model { history: h, min_samples: 5, prior: None, wrap_up: Duration::ZERO };
        estimate(slots, position, &model, &mut SmallRng::seed_from_u64(3)).map(|d| d.as_secs())
    }

    #[test]
    fn no_line_or_no_talk_times_means_no_estimate() {
        let h = history(&[100; 10]);
        assert_eq!(run(&[], 1, &h), None);
        assert_eq!(run(&[Slot::FREE], 1, &history(&[100; 3])), None, "3 of 5 samples");
        let model = Model { history: &HandleTimes::default(), min_samples: 5, prior: Some(s(120)), wrap_up: s(0) };
        assert!(estimate(&[Slot::FREE], 2, &model, &mut SmallRng::seed_from_u64(1)).is_some(), "the prior stands in");
    }

    #[test]
    fn constant_talk_times_give_the_schedule_of_the_line() {
        let h = history(&[100; 20]);
        let fresh = Slot { talking_for: Some(s(0)), then: s(0) };
        assert_eq!(run(&[Slot::FREE], 1, &h), Some(0), "a free line: at once");
        assert_eq!(run(&[Slot::FREE], 3, &h), Some(200));
        assert_eq!(run(&[fresh, fresh], 1, &h), Some(100));
        assert_eq!(run(&[fresh, fresh], 4, &h), Some(200));
        let old = Slot { talking_for: Some(s(70)), then: s(10) };
        assert_eq!(run(&[old], 1, &h), Some(40), "30 s of talk left, then 10 s of wrap-up");
        assert_eq!(run(&[Slot::FREE], 100, &h), Some(9900), "extrapolated past the simulated places");
        assert_eq!(run(&[Slot::FREE; 100], 100, &h), Some(0), "a free line for each: at once");
        let mut ringing = history(&[100; 20]);
        ringing.observe_ring(s(4));
        assert_eq!(run(&[Slot::FREE, fresh], 1, &ringing), Some(4), "a free line: after a ring");
    }

    #[test]
    fn more_operators_shorten_the_wait_and_a_later_place_never_waits_less() {
        let h = history(&(1..=40).map(|i| i * 15).collect::<Vec<_>>());
        let busy = |a| Slot { talking_for: Some(s(a)), then: s(5) };
        let one = run(&[busy(30)], 3, &h).unwrap();
        let five = run(&[busy(30), busy(200), busy(10), busy(400), busy(60)], 3, &h).unwrap();
        assert!(five < one, "{five} < {one}");
        let mut last = 0;
        for p in 1..80 {
            let e = run(&[busy(30), busy(200)], p, &h).unwrap();
            assert!(e >= last, "place {p}: {e} < {last}");
            last = e;
        }
    }

    #[test]
    fn the_window_forgets_old_calls_and_caps_outliers() {
        let mut h = history(&[60; WINDOW]);
        h.observe_talk(s(100_000));
        assert_eq!(h.samples(), WINDOW);
        assert_eq!(*h.sorted.last().unwrap(), 600.0, "capped at ten medians");
        for _ in 0..WINDOW {
            h.observe_talk(s(300));
        }
        assert_eq!((h.sorted[0], h.median()), (300.0, 300.0));
        h.observe_ring(s(10));
        h.observe_ring(s(0));
        assert_eq!(h.ring, Some(8.0));
    }
}
