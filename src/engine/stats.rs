//! Counters and gauges as plain data, read by `metrics.rs` at scrape time.
//!
//! Owns: the numbers, and [`Engine::stats`] which computes the gauges. Gauges are derived
//! from the live state when read, never incremented and decremented by hand; counters only
//! go up.

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
