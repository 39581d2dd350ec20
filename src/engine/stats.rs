//! Counters and gauges as plain data, read by `metrics.rs` at scrape time.
//!
//! Owns: the numbers. Gauges are derived from the live state when read, never
//! incremented and decremented by hand; counters only go up.

use std::collections::BTreeMap;

use super::call::Outcome;
use super::ids::QueueName;

/// Monotonic counters kept by the engine.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Finished calls by outcome.
    pub calls_by_outcome: BTreeMap<Outcome, u64>,
    /// IVR choices by `(menu, choice)`.
    pub ivr_choices: BTreeMap<(String, String), u64>,
    /// Calls that left each queue, by outcome.
    pub queue_exits: BTreeMap<(QueueName, Outcome), u64>,
    /// DTMF digits the engine received.
    pub digits: u64,
}

/// A point-in-time view for metrics: counters plus gauges computed from live state.
#[derive(Clone, Debug, Default)]
pub struct StatsSnapshot {
    /// Monotonic counters.
    pub counters: Counters,
    /// Live calls by stage name.
    pub calls_active: BTreeMap<&'static str, u64>,
    /// Callers waiting per queue, and the oldest wait in seconds.
    pub queue_waiting: BTreeMap<QueueName, (u64, f64)>,
    /// Whether the office is open now.
    pub office_open: bool,
}
