//! Counters and gauges as plain data, read by `metrics.rs` at scrape time.
//!
//! Owns: the numbers, [`Histogram`], and [`Engine::stats`] which computes the gauges. Gauges
//! are derived from the live state when read, never incremented and decremented by hand;
//! counters and histograms only go up. Every queue has its histograms from start-up (zeros),
//! so metrics show them before the first call.

use std::collections::BTreeMap;

use super::call::{Outcome, StageKind};
use super::ids::QueueName;
use super::operators::OperatorState;
use super::schedule::OfficeState;
use super::{Engine, Now};

/// Monotonic counters kept by the engine.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Finished calls by outcome.
    pub calls_by_outcome: BTreeMap<Outcome, u64>,
    /// IVR choices by `(menu, choice)`.
    pub ivr_choices: BTreeMap<(String, String), u64>,
    /// Calls that left each queue, by outcome.
    pub queue_exits: BTreeMap<(QueueName, Outcome), u64>,
    /// Callers who joined each queue.
    pub queue_entered: BTreeMap<QueueName, u64>,
    /// Offers made (phones rung) per queue; ring-all counts one per phone.
    pub offers: BTreeMap<QueueName, u64>,
    /// Offers not answered in time, or refused other than busy, per queue (RINGNOANSWER).
    pub ring_no_answer: BTreeMap<QueueName, u64>,
    /// Operators paused for too many consecutive misses, per queue of the last miss.
    pub auto_pauses: BTreeMap<QueueName, u64>,
    /// DTMF digits the engine received.
    pub digits: u64,
    /// Callers who left each queue with its exit key.
    pub exit_key: BTreeMap<QueueName, u64>,
    /// Time waited in each queue, by how the wait ended: answered (at the answer), abandoned,
    /// timeout, overflow (moved or sent to a message at max wait, or by the exit key) and
    /// closed (drained at closing). Buckets [`WAIT_BUCKETS`]. An overflowed caller's wait in
    /// the next queue counts from their first join.
    pub wait_seconds: BTreeMap<(QueueName, Outcome), Histogram>,
    /// Talk time of each queue's answered calls. Buckets [`TALK_BUCKETS`].
    pub talk_seconds: BTreeMap<QueueName, Histogram>,
    /// Answered callers' real wait minus the wait announced on entering the queue (positive:
    /// waited longer than told). Buckets [`EWT_ERROR_BUCKETS`].
    pub ewt_error_seconds: BTreeMap<QueueName, Histogram>,
}

/// Upper bounds of the wait histograms, in seconds.
pub const WAIT_BUCKETS: [f64; 14] = [5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0];
/// Upper bounds of the talk histograms, in seconds.
pub const TALK_BUCKETS: [f64; 9] = [30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0];
/// Upper bounds of the estimate error histograms, in seconds (signed).
pub const EWT_ERROR_BUCKETS: [f64; 13] =
    [-600.0, -300.0, -120.0, -60.0, -30.0, -10.0, 0.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// The outcomes a queue's wait histogram is kept for.
pub const WAIT_OUTCOMES: [Outcome; 5] =
    [Outcome::Answered, Outcome::Abandoned, Outcome::Timeout, Outcome::Overflow, Outcome::Closed];

impl Counters {
    /// Zeroed counters with every histogram of every queue in place.
    pub fn for_queues<'a>(queues: impl IntoIterator<Item = &'a QueueName>) -> Counters {
        let mut c = Counters::default();
        for q in queues {
            for outcome in WAIT_OUTCOMES {
                c.wait_seconds.insert((q.clone(), outcome), Histogram::new(&WAIT_BUCKETS));
            }
            c.talk_seconds.insert(q.clone(), Histogram::new(&TALK_BUCKETS));
            c.ewt_error_seconds.insert(q.clone(), Histogram::new(&EWT_ERROR_BUCKETS));
        }
        c
    }

    /// Notes a wait in `queue` that ended with `outcome`.
    pub(crate) fn observe_wait(&mut self, queue: &QueueName, outcome: Outcome, wait: std::time::Duration) {
        self.wait_seconds
            .entry((queue.clone(), outcome))
            .or_insert_with(|| Histogram::new(&WAIT_BUCKETS))
            .observe(wait.as_secs_f64());
    }
}

/// A histogram as plain data, in Prometheus' shape: `counts[i]` holds the observations
/// `<= bounds[i]` and `> bounds[i - 1]` (not cumulative); the last count, one past the
/// bounds, holds those above every bound (`+Inf`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Upper bounds, increasing.
    pub bounds: Vec<f64>,
    /// Observations per bucket; `bounds.len() + 1` entries.
    pub counts: Vec<u64>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds` (increasing).
    pub fn new(bounds: &[f64]) -> Histogram {
        Histogram { bounds: bounds.to_vec(), counts: vec![0; bounds.len() + 1], sum: 0.0, count: 0 }
    }

    /// Adds one observation.
    pub fn observe(&mut self, v: f64) {
        let at = self.bounds.partition_point(|b| *b < v);
        if let Some(n) = self.counts.get_mut(at) {
            *n += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// Cumulative counts per bound (observations `<= bounds[i]`), as Prometheus exposes them;
    /// the `+Inf` bucket is [`Histogram::count`].
    pub fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .take(self.bounds.len())
            .scan(0, |acc, n| {
                *acc += n;
                Some(*acc)
            })
            .collect()
    }
}

/// A point-in-time view for metrics: counters plus gauges computed from live state.
#[derive(Clone, Debug, Default)]
pub struct StatsSnapshot {
    /// Monotonic counters.
    pub counters: Counters,
    /// Live calls by stage name (`ivr`, `queued`, `ringing`, `connected`; zeros included).
    pub calls_active: BTreeMap<&'static str, u64>,
    /// Callers waiting per queue (ringing ones included), and the oldest wait in seconds.
    pub queue_waiting: BTreeMap<QueueName, (u64, f64)>,
    /// Operators by `(queue, state)` for `centralino_operators{queue,state}`: every queue ×
    /// every state, zeros included. An operator serving two queues counts in both.
    pub operators: BTreeMap<(QueueName, &'static str), u64>,
    /// Each queue's service-level threshold in seconds (for histogram buckets and reports).
    pub service_level_seconds: BTreeMap<QueueName, f64>,
    /// Whether the office is open now.
    pub office_open: bool,
}

impl Engine {
    /// Counters plus gauges computed now from live state.
    pub fn stats(&self, now: Now) -> StatsSnapshot {
        let mut calls_active: BTreeMap<&'static str, u64> =
            StageKind::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for c in self.calls.values() {
            *calls_active.entry(c.stage.kind().as_str()).or_default() += 1;
        }
        let queue_waiting = self
            .queues
            .iter()
            .map(|(name, q)| {
                let oldest = q
                    .front()
                    .and_then(|id| self.calls.get(id))
                    .and_then(|c| c.queued_at)
                    .map(|t| now.instant.saturating_duration_since(t).as_secs_f64())
                    .unwrap_or(0.0);
                (name.clone(), (q.len() as u64, oldest))
            })
            .collect();
        let mut operators: BTreeMap<(QueueName, &'static str), u64> = self
            .queues
            .keys()
            .flat_map(|q| OperatorState::ALL.iter().map(move |s| ((q.clone(), s.as_str()), 0)))
            .collect();
        for op in self.board.operators.values().filter(|op| op.in_directory) {
            let state = self.board.state_of(op).0.as_str();
            for (queue, _) in &op.account.queues {
                if let Some(n) = operators.get_mut(&(queue.clone(), state)) {
                    *n += 1;
                }
            }
        }
        StatsSnapshot {
            counters: self.counters.clone(),
            calls_active,
            queue_waiting,
            operators,
            service_level_seconds: self
                .queues
                .iter()
                .map(|(name, q)| (name.clone(), q.setup.service_level.as_secs_f64()))
                .collect(),
            office_open: matches!(self.schedule.state_at_timestamp(now.wall), OfficeState::Open { .. }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_value_in_the_first_bucket_at_or_above_it() {
        let mut h = Histogram::new(&[-10.0, 0.0, 10.0]);
        for v in [-20.0, -10.0, -5.0, 0.0, 3.0, 10.0, 11.0] {
            h.observe(v);
        }
        assert_eq!(h.counts, vec![2, 2, 2, 1]);
        assert_eq!(h.cumulative(), vec![2, 4, 6]);
        assert_eq!((h.count, h.sum), (7, -11.0));
    }

    #[test]
    fn every_queue_has_its_histograms_from_the_start() {
        let names = [QueueName("a".into()), QueueName("b".into())];
        let c = Counters::for_queues(&names);
        assert_eq!(c.wait_seconds.len(), 2 * WAIT_OUTCOMES.len());
        assert_eq!(c.talk_seconds[&names[1]].counts.len(), TALK_BUCKETS.len() + 1);
        assert_eq!(c.ewt_error_seconds[&names[0]].bounds, EWT_ERROR_BUCKETS.to_vec());
    }
}
