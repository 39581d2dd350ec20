//! Opening hours: whether the office (or one queue) is open at a given instant, why not, and
//! when that changes.
//!
//! Owns: [`Schedule`] (weekly split shifts, national and local holidays, one-off closures and
//! openings, all in one time zone) and the answer types [`OfficeState`] and [`ClosedReason`].
//! Must not touch: the clock (every query takes the instant), IO, call handling. Sans-IO.
//! Precedence, highest first: a closure, then a one-off opening, then a holiday (whole day),
//! then the weekly hours. Every range is `[start, end)`: at 13:00:00 a 09:00-13:00 shift is over.

pub mod holidays;
pub mod oneoff;
pub mod report;
pub mod spec;
pub mod speech;
pub mod weekly;

#[cfg(test)]
mod scenarios;

use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

pub use spec::{ScheduleSpec, SpecError};

use holidays::Holidays;
use oneoff::OneOff;
use weekly::{day_start, Weekly};

/// How far ahead [`Schedule::state_at`] looks for the next change before giving up.
pub const HORIZON_DAYS: u32 = 400;

/// Opening hours in one time zone. Build it with [`ScheduleSpec::compile`].
#[derive(Clone, Debug)]
pub struct Schedule {
    tz: TimeZone,
    weekly: Weekly,
    holidays: Holidays,
    /// Sorted by start; pairwise disjoint.
    closures: Vec<OneOff>,
    /// Sorted by start; pairwise disjoint.
    openings: Vec<OneOff>,
}

/// Whether the office is open at an instant, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OfficeState {
    /// Open now.
    Open {
        /// When it closes, in the schedule's zone; `None` if it stays open for the whole
        /// horizon ([`HORIZON_DAYS`]), e.g. a 24/7 queue with no holidays.
        closes_at: Option<Zoned>,
    },
    /// Closed now.
    Closed {
        /// Why it is closed at this instant.
        reason: ClosedReason,
        /// When it opens again, in the schedule's zone; `None` if not within the horizon.
        opens_at: Option<Zoned>,
    },
}

impl OfficeState {
    /// Whether this is [`OfficeState::Open`].
    pub fn is_open(&self) -> bool {
        matches!(self, OfficeState::Open { .. })
    }

    /// The next instant at which the state flips, if within the horizon.
    pub fn next_change(&self) -> Option<&Zoned> {
        match self {
            OfficeState::Open { closes_at } => closes_at.as_ref(),
            OfficeState::Closed { opens_at, .. } => opens_at.as_ref(),
        }
    }
}

/// Why the office is closed at an instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClosedReason {
    /// No shift covers this time of this weekday.
    OutsideHours,
    /// A national or local holiday (the whole day), named in Italian, e.g. "Natale".
    Holiday {
        /// The holiday's name, e.g. "Lunedì dell'Angelo".
        name: String,
    },
    /// A one-off closure from the configuration.
    Closure {
        /// The configured reason, e.g. "Vigilia di Natale".
        reason: String,
    },
}

impl fmt::Display for ClosedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClosedReason::OutsideHours => f.write_str("outside opening hours"),
            ClosedReason::Holiday { name } => write!(f, "holiday: {name}"),
            ClosedReason::Closure { reason } => write!(f, "closure: {reason}"),
        }
    }
}

impl Default for Schedule {
    /// The URP of the Comune di Bari: Monday–Friday 09:00–13:00 and 14:00–17:00, Europe/Rome,
    /// Italian holidays plus San Nicola (6 December).
    fn default() -> Self {
        // Invariant: the default spec is valid; the `default_compiles_to_the_urp_week` test in
        // spec.rs checks it, and it contains no data from outside this crate.
        ScheduleSpec::default()
            .compile()
            .expect("the built-in default schedule is valid")
    }
}

impl Schedule {
    /// The schedule's time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The state at `at`, which may be in any zone; the answer is in the schedule's zone.
    pub fn state_at(&self, at: &Zoned) -> OfficeState {
        self.state_at_timestamp(at.timestamp())
    }

    /// The state at the instant `at`.
    pub fn state_at_timestamp(&self, at: Timestamp) -> OfficeState {
        let open = self.is_open_at(at);
        let next = self.next_change_timestamp(at, open).map(|t| self.zoned(t));
        if open {
            OfficeState::Open { closes_at: next }
        } else {
            OfficeState::Closed {
                reason: self.closed_reason(at),
                opens_at: next,
            }
        }
    }

    /// The next instant after `at` at which the office opens or closes, within the horizon.
    pub fn next_change(&self, at: &Zoned) -> Option<Zoned> {
        let t = at.timestamp();
        self.next_change_timestamp(t, self.is_open_at(t))
            .map(|t| self.zoned(t))
    }

    /// Whether the office is open at `at`; cheaper than [`Schedule::state_at_timestamp`].
    pub fn is_open_at(&self, at: Timestamp) -> bool {
        if self.closures.iter().any(|c| c.contains(at)) {
            return false;
        }
        if self.openings.iter().any(|o| o.contains(at)) {
            return true;
        }
        let date = self.local_date(at);
        if self.holidays.name_on(date).is_some() {
            return false;
        }
        self.weekly
            .shifts(date.weekday())
            .iter()
            .filter_map(|s| s.instants_on(date, &self.tz))
            .any(|(start, end)| start <= at && at < end)
    }

    /// Every holiday of `year` (national and local), sorted by date.
    pub fn holidays_in_year(&self, year: i16) -> Vec<(Date, String)> {
        self.holidays.in_year(year)
    }

    /// One-off closures that overlap `year` (local time), sorted by start.
    pub fn closures_in_year(&self, year: i16) -> Vec<(Zoned, Zoned, String)> {
        self.one_offs_in_year(&self.closures, year)
    }

    /// One-off openings that overlap `year` (local time), sorted by start.
    pub fn openings_in_year(&self, year: i16) -> Vec<(Zoned, Zoned, String)> {
        self.one_offs_in_year(&self.openings, year)
    }

    fn one_offs_in_year(&self, list: &[OneOff], year: i16) -> Vec<(Zoned, Zoned, String)> {
        let first = Date::new(year, 1, 1)
            .ok()
            .and_then(|d| day_start(d, &self.tz));
        let next = year
            .checked_add(1)
            .and_then(|y| Date::new(y, 1, 1).ok())
            .and_then(|d| day_start(d, &self.tz));
        list.iter()
            .filter(|r| first.is_none_or(|f| r.end > f) && next.is_none_or(|n| r.start < n))
            .map(|r| (self.zoned(r.start), self.zoned(r.end), r.reason.clone()))
            .collect()
    }

    fn zoned(&self, t: Timestamp) -> Zoned {
        t.to_zoned(self.tz.clone())
    }

    fn local_date(&self, t: Timestamp) -> Date {
        self.zoned(t).date()
    }

    /// Why the office is closed at `at` (assuming it is).
    fn closed_reason(&self, at: Timestamp) -> ClosedReason {
        if let Some(c) = self.closures.iter().find(|c| c.contains(at)) {
            return ClosedReason::Closure {
                reason: c.reason.clone(),
            };
        }
        match self.holidays.name_on(self.local_date(at)) {
            Some(name) => ClosedReason::Holiday { name },
            None => ClosedReason::OutsideHours,
        }
    }

    /// The first instant after `at` where [`Schedule::is_open_at`] differs from `open_now`.
    ///
    /// The state can only change at a candidate boundary: a local midnight (holidays and
    /// dates change), a shift start or end, or a one-off range's start or end. Between two
    /// consecutive candidates it is constant, so testing candidates in increasing order finds
    /// the change exactly. Candidates of day `d` lie in `[midnight(d), midnight(d + 1)]`, so
    /// scanning day by day keeps them in order.
    fn next_change_timestamp(&self, at: Timestamp, open_now: bool) -> Option<Timestamp> {
        // Open around the clock with nothing ahead to change it (a 24/7 desk, a benchmark):
        // no day-by-day scan of the horizon, which would cost milliseconds on every call.
        if open_now
            && self.weekly.is_always_open()
            && self.holidays.is_empty()
            && self.closures.iter().all(|c| c.end <= at)
        {
            return None;
        }
        let mut date = self.local_date(at);
        for _ in 0..=HORIZON_DAYS {
            let next_date = date.tomorrow().ok()?;
            let (Some(begin), Some(end)) =
                (day_start(date, &self.tz), day_start(next_date, &self.tz))
            else {
                return None;
            };
            let mut candidates = vec![begin, end];
            for shift in self.weekly.shifts(date.weekday()) {
                if let Some((s, e)) = shift.instants_on(date, &self.tz) {
                    candidates.extend([s, e]);
                }
            }
            for r in self.closures.iter().chain(&self.openings) {
                candidates.extend(
                    [r.start, r.end]
                        .into_iter()
                        .filter(|&b| begin <= b && b < end),
                );
            }
            candidates.sort();
            candidates.dedup();
            let change = candidates
                .into_iter()
                .filter(|&c| c > at)
                .find(|&c| self.is_open_at(c) != open_now);
            if change.is_some() {
                return change;
            }
            date = next_date;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rome(text: &str) -> Zoned {
        format!("{text}[Europe/Rome]").parse().unwrap()
    }

    #[test]
    fn an_always_open_schedule_never_closes_and_answers_at_once() {
        let spec = ScheduleSpec {
            monday: vec!["00:00-24:00".into()],
            tuesday: vec!["00:00-24:00".into()],
            wednesday: vec!["00:00-24:00".into()],
            thursday: vec!["00:00-24:00".into()],
            friday: vec!["00:00-24:00".into()],
            saturday: vec!["00:00-24:00".into()],
            sunday: vec!["00:00-24:00".into()],
            holidays: "none".into(),
            extra_holidays: vec![],
            ..ScheduleSpec::default()
        };
        let s = spec.compile().unwrap();
        assert_eq!(s.state_at(&rome("2026-12-25T03:00")), OfficeState::Open { closes_at: None });
        let with_closure = ScheduleSpec { closures: vec!["2026-12-31T10:00/2026-12-31T12:00".into()], ..spec }.compile().unwrap();
        assert_eq!(
            with_closure.state_at(&rome("2026-12-30T10:00")),
            OfficeState::Open { closes_at: Some(rome("2026-12-31T10:00")) },
            "a closure ahead still ends the open stretch"
        );
    }

    #[test]
    fn lunch_break_edges() {
        let s = Schedule::default();
        // 2026-06-03 is a Wednesday.
        assert_eq!(
            s.state_at(&rome("2026-06-03T12:59:59")),
            OfficeState::Open {
                closes_at: Some(rome("2026-06-03T13:00"))
            }
        );
        assert_eq!(
            s.state_at(&rome("2026-06-03T13:00:00")),
            OfficeState::Closed {
                reason: ClosedReason::OutsideHours,
                opens_at: Some(rome("2026-06-03T14:00")),
            }
        );
        assert_eq!(
            s.state_at(&rome("2026-06-03T13:59:59.999")).next_change(),
            Some(&rome("2026-06-03T14:00"))
        );
        assert_eq!(
            s.state_at(&rome("2026-06-03T14:00:00")),
            OfficeState::Open {
                closes_at: Some(rome("2026-06-03T17:00"))
            }
        );
        assert!(s.state_at(&rome("2026-06-03T09:00:00")).is_open());
        assert!(!s.state_at(&rome("2026-06-03T08:59:59")).is_open());
    }

    #[test]
    fn input_zone_does_not_matter_and_output_is_in_schedule_zone() {
        let s = Schedule::default();
        let utc: Zoned = "2026-06-03T10:30:00+00:00[UTC]".parse().unwrap(); // 12:30 in Rome
        let state = s.state_at(&utc);
        assert_eq!(
            state,
            OfficeState::Open {
                closes_at: Some(rome("2026-06-03T13:00"))
            }
        );
        assert_eq!(
            state.next_change().unwrap().time_zone().iana_name(),
            Some("Europe/Rome")
        );
        assert_eq!(s.state_at_timestamp(utc.timestamp()), state);
        assert_eq!(s.next_change(&utc), Some(rome("2026-06-03T13:00")));
    }

    #[test]
    fn closed_reason_display() {
        assert_eq!(
            ClosedReason::OutsideHours.to_string(),
            "outside opening hours"
        );
        let h = ClosedReason::Holiday {
            name: "Natale".into(),
        };
        assert_eq!(h.to_string(), "holiday: Natale");
        let c = ClosedReason::Closure {
            reason: "Vigilia".into(),
        };
        assert_eq!(c.to_string(), "closure: Vigilia");
    }

    #[test]
    fn never_open_and_always_open_hit_the_horizon() {
        let closed = ScheduleSpec {
            monday: vec![],
            tuesday: vec![],
            wednesday: vec![],
            thursday: vec![],
            friday: vec![],
            ..ScheduleSpec::default()
        };
        let s = closed.compile().unwrap();
        assert_eq!(
            s.state_at(&rome("2026-06-03T10:00")),
            OfficeState::Closed {
                reason: ClosedReason::OutsideHours,
                opens_at: None
            }
        );
        let all = vec!["00:00-24:00".to_string()];
        let always = ScheduleSpec {
            monday: all.clone(),
            tuesday: all.clone(),
            wednesday: all.clone(),
            thursday: all.clone(),
            friday: all.clone(),
            saturday: all.clone(),
            sunday: all,
            holidays: "none".into(),
            extra_holidays: vec![],
            ..ScheduleSpec::default()
        };
        let s = always.compile().unwrap();
        assert_eq!(
            s.state_at(&rome("2026-06-03T10:00")),
            OfficeState::Open { closes_at: None }
        );
    }

    #[test]
    fn year_lists() {
        let spec = ScheduleSpec {
            closures: vec![
                "2026-12-31T13:00/2027-01-02 Fine anno".into(),
                "2026-12-24T13:00/2026-12-24T17:00 Vigilia di Natale".into(),
            ],
            openings: vec!["2026-12-19T09:00/2026-12-19T12:00".into()],
            ..ScheduleSpec::default()
        };
        let s = spec.compile().unwrap();
        let h = s.holidays_in_year(2026);
        assert_eq!(h.len(), 14); // 12 national + 4 October + San Nicola
        assert!(h.contains(&(
            jiff::civil::date(2026, 12, 6),
            "San Nicola, patrono di Bari".into()
        )));
        let c26 = s.closures_in_year(2026);
        assert_eq!(c26.len(), 2);
        assert_eq!(c26[0].2, "Vigilia di Natale");
        assert_eq!(c26[0].0, rome("2026-12-24T13:00"));
        let c27 = s.closures_in_year(2027);
        assert_eq!(c27.len(), 1);
        assert_eq!(c27[0].1, rome("2027-01-03T00:00"));
        assert!(s.closures_in_year(2028).is_empty());
        assert_eq!(s.openings_in_year(2026)[0].2, spec::DEFAULT_OPENING_REASON);
    }
}
