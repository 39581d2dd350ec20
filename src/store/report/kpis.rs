//! The report's figures: grouping calls and computing each group's KPIs. Pure: no SQL, no clock.
//!
//! Owns: what each KPI means ([`Kpis`]), grouping by queue/day/hour, averages and the 90th
//! percentile (computed here so both backends give the same numbers).
//! Must not touch: the database, rendering.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::{GroupBy, ReportParams};
use crate::engine::call::Outcome;

/// One finished call, as the report reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportCall {
    /// When it arrived (decides its day and hour).
    pub arrived_at: Timestamp,
    /// The queue it reached, if any.
    pub queue: Option<String>,
    /// [`Outcome::as_str`](crate::engine::call::Outcome::as_str).
    pub outcome: String,
    /// Time in the queue.
    pub wait_ms: Option<i64>,
    /// Time talking to an operator.
    pub talk_ms: Option<i64>,
    /// Abandoned before the short-abandon threshold.
    pub short_abandon: bool,
}

/// The KPIs of one group of calls.
///
/// **Service level** = answered within the threshold ÷ (offered − short abandons) × 100, where
/// *offered* counts the calls that entered the queue, *answered within the threshold* those an
/// operator answered after waiting at most `service_level` (default 20 s), and *short abandons*
/// the callers who hung up after waiting less than the short-abandon threshold (default 5 s,
/// decided when the record is written). Abandoned, timed-out and overflowed calls count against
/// it; short abandons count neither way. `None` when nothing is left to divide by.
/// (Asterisk's `ServicelevelPerf` divides by answered calls only, and `ServicelevelPerf2` counts
/// abandons within the threshold as successes, so expect different figures from app_queue.)
///
/// Wait figures cover every offered call (time until answered, or until it left the queue);
/// the 90th percentile is the nearest-rank value. Talk figures cover answered calls with a
/// recorded talk time. Durations are in seconds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Kpis {
    /// Every finished call in the group.
    pub calls: u64,
    /// Calls that entered the queue.
    pub offered: u64,
    /// Answered by an operator.
    pub answered: u64,
    /// Answered after waiting at most the service-level threshold.
    pub answered_in_sl: u64,
    /// Hung up while waiting.
    pub abandoned: u64,
    /// Abandoned before the short-abandon threshold (included in `abandoned`).
    pub short_abandoned: u64,
    /// Left at the queue's maximum wait.
    pub timeout: u64,
    /// Sent to another queue or message.
    pub overflow: u64,
    /// Called while the office was closed.
    pub closed: u64,
    /// Cut by a shutdown or crash.
    pub interrupted: u64,
    /// See the type's docs.
    pub service_level_pct: Option<f64>,
    /// Mean wait of offered calls.
    pub avg_wait_s: Option<f64>,
    /// 90th-percentile wait of offered calls.
    pub p90_wait_s: Option<f64>,
    /// Mean talk time of answered calls.
    pub avg_talk_s: Option<f64>,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ReportRow {
    /// The day or hour (`None` when grouped by queue only).
    pub period: Option<String>,
    /// The queue; `None` for calls that never reached one (closed office, IVR hang-ups).
    pub queue: Option<String>,
    /// The figures.
    #[serde(flatten)]
    pub kpis: Kpis,
}

/// A whole report: what was asked, the rows, and the total over every call in the range.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Report {
    /// First local day.
    pub from: String,
    /// Last local day.
    pub to: String,
    /// The zone of the days and hours.
    pub time_zone: String,
    /// How rows are split.
    pub by: GroupBy,
    /// The queue filter.
    pub queue: Option<String>,
    /// The service-level threshold in seconds.
    pub service_level_s: f64,
    /// Rows by period, then queue (the queue-less row last).
    pub rows: Vec<ReportRow>,
    /// Every call in the range.
    pub total: Kpis,
}

/// Groups the calls and computes every row's KPIs and the total. Pure.
pub fn compute(calls: &[ReportCall], params: &ReportParams) -> Report {
    let sl_ms = crate::store::duration_ms(params.service_level);
    // Key: (period, queue-less last, queue name).
    let mut groups: BTreeMap<(Option<String>, bool, String), Acc> = BTreeMap::new();
    let mut total = Acc::default();
    for call in calls {
        let period = period_of(call.arrived_at, &params.time_zone, params.by);
        let key = (period, call.queue.is_none(), call.queue.clone().unwrap_or_default());
        groups.entry(key).or_default().add(call, sl_ms);
        total.add(call, sl_ms);
    }
    let rows = groups
        .into_iter()
        .map(|((period, no_queue, queue), acc)| ReportRow {
            period,
            queue: (!no_queue).then_some(queue),
            kpis: acc.finish(),
        })
        .collect();
    Report {
        from: params.from.to_string(),
        to: params.to.to_string(),
        time_zone: params.time_zone.iana_name().unwrap_or("UTC").to_string(),
        by: params.by,
        queue: params.queue.clone(),
        service_level_s: params.service_level.as_secs_f64(),
        rows,
        total: total.finish(),
    }
}

/// The local day (`2026-03-02`) or hour (`2026-03-02 09:00`) a call belongs to.
fn period_of(at: Timestamp, tz: &TimeZone, by: GroupBy) -> Option<String> {
    let local = at.to_zoned(tz.clone());
    match by {
        GroupBy::Queue => None,
        GroupBy::Day => Some(local.date().to_string()),
        GroupBy::Hour => Some(format!("{} {:02}:00", local.date(), local.hour())),
    }
}

/// Running counts for one group.
#[derive(Default)]
struct Acc {
    kpis: Kpis,
    waits_ms: Vec<i64>,
    talk_ms: Vec<i64>,
}

impl Acc {
    fn add(&mut self, call: &ReportCall, sl_ms: i64) {
        let k = &mut self.kpis;
        k.calls += 1;
        if call.queue.is_some() {
            k.offered += 1;
            if let Some(w) = call.wait_ms {
                self.waits_ms.push(w);
            }
        }
        // Unknown outcome strings (written by a newer version) count as calls only.
        match Outcome::ALL.into_iter().find(|o| o.as_str() == call.outcome) {
            Some(Outcome::Answered) => {
                k.answered += 1;
                if call.wait_ms.is_some_and(|w| w <= sl_ms) {
                    k.answered_in_sl += 1;
                }
                if let Some(t) = call.talk_ms {
                    self.talk_ms.push(t);
                }
            }
            Some(Outcome::Abandoned) => {
                k.abandoned += 1;
                if call.short_abandon {
                    k.short_abandoned += 1;
                }
            }
            Some(Outcome::Timeout) => k.timeout += 1,
            Some(Outcome::Overflow) => k.overflow += 1,
            Some(Outcome::Closed) => k.closed += 1,
            Some(Outcome::Interrupted) => k.interrupted += 1,
            Some(Outcome::IvrHangup | Outcome::Completed) | None => {}
        }
    }

    fn finish(mut self) -> Kpis {
        let k = &mut self.kpis;
        let base = k.offered.saturating_sub(k.short_abandoned);
        k.service_level_pct = (base > 0).then(|| 100.0 * k.answered_in_sl as f64 / base as f64);
        k.avg_wait_s = mean_s(&self.waits_ms);
        k.p90_wait_s = p90_s(&mut self.waits_ms);
        k.avg_talk_s = mean_s(&self.talk_ms);
        self.kpis
    }
}

fn mean_s(ms: &[i64]) -> Option<f64> {
    (!ms.is_empty()).then(|| ms.iter().map(|&v| v as f64).sum::<f64>() / ms.len() as f64 / 1000.0)
}

/// Nearest-rank 90th percentile: the smallest value with at least 90 % of values at or below it.
fn p90_s(ms: &mut [i64]) -> Option<f64> {
    if ms.is_empty() {
        return None;
    }
    ms.sort_unstable();
    let rank = (ms.len() * 9).div_ceil(10); // ceil(0.9 n), 1-based
    Some(ms[rank.max(1) - 1] as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(at: &str, queue: Option<&str>, outcome: &str, wait_s: Option<i64>, talk_s: Option<i64>) -> ReportCall {
        ReportCall {
            arrived_at: at.parse().unwrap(),
            queue: queue.map(String::from),
            outcome: outcome.into(),
            wait_ms: wait_s.map(|s| s * 1000),
            talk_ms: talk_s.map(|s| s * 1000),
            short_abandon: outcome == "abandoned" && wait_s.is_some_and(|w| w < 5),
        }
    }

    /// Nine calls on 2 March 2026 (Rome is UTC+1): six for tributi, one for demografici, two
    /// that never reached a queue.
    fn sample() -> Vec<ReportCall> {
        vec![
            call("2026-03-02T08:05:00Z", Some("tributi"), "answered", Some(10), Some(100)),
            call("2026-03-02T08:10:00Z", Some("tributi"), "answered", Some(20), Some(200)),
            call("2026-03-02T09:00:00Z", Some("tributi"), "answered", Some(30), Some(300)),
            call("2026-03-02T09:10:00Z", Some("tributi"), "abandoned", Some(3), None),
            call("2026-03-02T09:20:00Z", Some("tributi"), "abandoned", Some(40), None),
            call("2026-03-02T09:30:00Z", Some("tributi"), "timeout", Some(60), None),
            call("2026-03-02T09:40:00Z", Some("demografici"), "overflow", Some(50), None),
            call("2026-03-02T18:00:00Z", None, "closed", None, None),
            call("2026-03-02T08:00:00Z", None, "ivr_hangup", None, None),
        ]
    }

    fn params(by: GroupBy) -> ReportParams {
        let day = "2026-03-02".parse().unwrap();
        ReportParams { by, ..ReportParams::new(day, day) }
    }

    #[test]
    fn queue_kpis_follow_the_documented_definitions() {
        let report = compute(&sample(), &params(GroupBy::Queue));
        let queues: Vec<Option<&str>> = report.rows.iter().map(|r| r.queue.as_deref()).collect();
        assert_eq!(queues, [Some("demografici"), Some("tributi"), None], "queue-less row last");
        let t = &report.rows[1].kpis;
        assert_eq!((t.calls, t.offered, t.answered, t.answered_in_sl), (6, 6, 3, 2));
        assert_eq!((t.abandoned, t.short_abandoned, t.timeout, t.overflow), (2, 1, 1, 0));
        // 2 answered within 20 s out of 6 offered minus 1 short abandon.
        assert_eq!(t.service_level_pct, Some(40.0));
        // Waits 3, 10, 20, 30, 40, 60 s: mean 27.17 s, nearest-rank p90 is the 6th value.
        assert!((t.avg_wait_s.unwrap() - 163.0 / 6.0).abs() < 1e-9);
        assert_eq!(t.p90_wait_s, Some(60.0));
        assert_eq!(t.avg_talk_s, Some(200.0));
    }

    #[test]
    fn calls_that_never_queued_count_as_calls_but_not_as_offered() {
        let report = compute(&sample(), &params(GroupBy::Queue));
        let none = &report.rows[2].kpis;
        assert_eq!((none.calls, none.offered, none.closed), (2, 0, 1));
        assert_eq!(none.service_level_pct, None);
        assert_eq!(none.avg_wait_s, None);
    }

    #[test]
    fn total_covers_every_call_in_the_range() {
        let total = compute(&sample(), &params(GroupBy::Queue)).total;
        assert_eq!((total.calls, total.offered, total.answered_in_sl, total.closed), (9, 7, 2, 1));
        assert!((total.service_level_pct.unwrap() - 100.0 * 2.0 / 6.0).abs() < 1e-9);
    }

    #[test]
    fn hours_are_local_intervals() {
        let report = compute(&sample(), &params(GroupBy::Hour));
        let keys: Vec<(String, Option<String>)> =
            report.rows.iter().map(|r| (r.period.clone().unwrap(), r.queue.clone())).collect();
        assert_eq!(keys[0], ("2026-03-02 09:00".to_string(), Some("tributi".to_string())));
        assert_eq!(keys[1], ("2026-03-02 09:00".to_string(), None));
        assert!(keys.contains(&("2026-03-02 19:00".to_string(), None)));
        assert_eq!(report.rows[0].kpis.calls, 2);
    }

    #[test]
    fn days_follow_the_local_calendar_not_utc() {
        // 23:30 UTC on 1 March is 00:30 on 2 March in Rome.
        let calls = vec![call("2026-03-01T23:30:00Z", Some("tributi"), "answered", Some(1), Some(1))];
        let report = compute(&calls, &params(GroupBy::Day));
        assert_eq!(report.rows[0].period.as_deref(), Some("2026-03-02"));
    }

    #[test]
    fn answered_exactly_at_the_threshold_is_within_the_service_level() {
        let calls = vec![call("2026-03-02T08:00:00Z", Some("q"), "answered", Some(20), None)];
        assert_eq!(compute(&calls, &params(GroupBy::Queue)).total.service_level_pct, Some(100.0));
    }

    #[test]
    fn only_short_abandons_leave_no_service_level_to_report() {
        let calls = vec![call("2026-03-02T08:00:00Z", Some("q"), "abandoned", Some(2), None)];
        assert_eq!(compute(&calls, &params(GroupBy::Queue)).total.service_level_pct, None);
    }

    #[test]
    fn p90_is_the_nearest_rank_value() {
        let mut ten: Vec<i64> = (1..=10).rev().map(|s| s * 1000).collect();
        assert_eq!(p90_s(&mut ten), Some(9.0));
        assert_eq!(p90_s(&mut [7000]), Some(7.0));
        let mut twenty: Vec<i64> = (1..=20).map(|s| s * 1000).collect();
        assert_eq!(p90_s(&mut twenty), Some(18.0));
        assert_eq!(p90_s(&mut []), None);
    }

    #[test]
    fn unknown_outcomes_are_counted_as_calls_only() {
        let calls = vec![call("2026-03-02T08:00:00Z", None, "transferred", None, None)];
        let total = compute(&calls, &params(GroupBy::Queue)).total;
        assert_eq!((total.calls, total.closed, total.answered), (1, 0, 0));
    }
}
