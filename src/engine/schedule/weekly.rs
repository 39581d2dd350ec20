//! Weekly opening hours: for each weekday, a list of split shifts in local wall-clock time.
//!
//! Owns: the `"HH:MM-HH:MM"` shift syntax, the per-day overlap rule, and turning a day's shifts
//! into instants in the schedule's time zone.
//! Must not touch: holidays, one-off closures or openings, the clock.
//! Invariants: a shift is non-empty and lies within its own day (`24:00` is the end of the day),
//! so a shift never crosses midnight; ends are exclusive.

use std::fmt;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Minutes in a civil day; also the encoding of `24:00`.
pub const MINUTES_PER_DAY: u16 = 24 * 60;

/// One opening shift of a day, `[start, end)` in minutes after local midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shift {
    start: u16,
    end: u16,
}

/// Why a shift string was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShiftError {
    /// Not of the form `HH:MM-HH:MM`.
    #[error("expected \"HH:MM-HH:MM\", got {0:?}")]
    Syntax(String),
    /// A clock time out of range (`24:00` is allowed only as an end).
    #[error("invalid time {0:?} (expected 00:00 to 23:59, or 24:00 as an end)")]
    BadTime(String),
    /// The end is not after the start, e.g. `13:00-09:00`.
    #[error("range {0:?} is inverted or empty: the end must be after the start")]
    Inverted(String),
    /// Two shifts of the same day overlap.
    #[error("{later} overlaps {earlier}")]
    Overlap {
        /// The shift listed later in the configuration.
        later: Shift,
        /// The shift it overlaps.
        earlier: Shift,
    },
}

impl Shift {
    /// A shift from `start` to `end` minutes after local midnight; `None` unless
    /// `start < end <= 1440`.
    pub fn new(start: u16, end: u16) -> Option<Shift> {
        (start < end && end <= MINUTES_PER_DAY).then_some(Shift { start, end })
    }

    /// Parses `"HH:MM-HH:MM"` (surrounding spaces allowed; `24:00` only as the end).
    pub fn parse(text: &str) -> Result<Shift, ShiftError> {
        let text = text.trim();
        let (from, to) = text
            .split_once('-')
            .ok_or_else(|| ShiftError::Syntax(text.to_string()))?;
        let start = parse_clock(from.trim(), false)?;
        let end = parse_clock(to.trim(), true)?;
        Shift::new(start, end).ok_or_else(|| ShiftError::Inverted(text.to_string()))
    }

    /// Start, in minutes after local midnight.
    pub fn start_minute(self) -> u16 {
        self.start
    }

    /// Exclusive end, in minutes after local midnight (1440 = end of day).
    pub fn end_minute(self) -> u16 {
        self.end
    }

    /// The instants this shift covers on `date` in `tz`, or `None` if it is empty that day.
    ///
    /// Wall-clock times are resolved with jiff's "compatible" rule: a time inside a DST gap
    /// moves forward by the gap, a repeated time takes its first occurrence. `24:00` is the
    /// start of the next day, so a 23- or 25-hour day is covered exactly.
    pub fn instants_on(self, date: Date, tz: &TimeZone) -> Option<(Timestamp, Timestamp)> {
        let start = local_instant(date, self.start, tz)?;
        let end = local_instant(date, self.end, tz)?;
        (start < end).then_some((start, end))
    }
}

impl fmt::Display for Shift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// Parses `H:MM` or `HH:MM` into minutes after midnight; `24:00` only if `allow_end_of_day`.
pub fn parse_clock(text: &str, allow_end_of_day: bool) -> Result<u16, ShiftError> {
    let bad = || ShiftError::BadTime(text.to_string());
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(h) || h.len() > 2 || !all_digits(m) || m.len() != 2 {
        return Err(bad());
    }
    let hours: u16 = h.parse().map_err(|_| bad())?;
    let minutes: u16 = m.parse().map_err(|_| bad())?;
    match (hours, minutes) {
        (24, 0) if allow_end_of_day => Ok(MINUTES_PER_DAY),
        (0..=23, 0..=59) => Ok(hours * 60 + minutes),
        _ => Err(bad()),
    }
}

/// The instant of `minutes` after local midnight of `date` in `tz` (1440 = next midnight).
/// `None` only at the edges of jiff's supported range.
pub fn local_instant(date: Date, minutes: u16, tz: &TimeZone) -> Option<Timestamp> {
    if minutes >= MINUTES_PER_DAY {
        return day_start(date.tomorrow().ok()?, tz);
    }
    // Both fit in i8: minutes < 1440 gives hours <= 23 and minutes <= 59.
    let (h, m) = ((minutes / 60) as i8, (minutes % 60) as i8);
    tz.to_ambiguous_timestamp(date.at(h, m, 0, 0))
        .compatible()
        .ok()
}

/// The first instant of `date` in `tz` (after the gap if midnight does not exist that day).
pub fn day_start(date: Date, tz: &TimeZone) -> Option<Timestamp> {
    date.to_zoned(tz.clone()).ok().map(|z| z.timestamp())
}

/// Overlapping pairs among one day's shifts, as `(later index, earlier index)` in list order.
pub fn overlaps(shifts: &[Shift]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    for (i, a) in shifts.iter().enumerate() {
        for (j, b) in shifts.iter().enumerate().skip(i + 1) {
            if a.start < b.end && b.start < a.end {
                found.push((j, i));
            }
        }
    }
    found
}

/// Opening hours for each day of the week.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Weekly {
    /// Index 0 is Monday; each list is sorted by start.
    days: [Vec<Shift>; 7],
}

impl Weekly {
    /// Builds the week from Monday-first lists, sorting each day's shifts.
    pub fn new(mut days: [Vec<Shift>; 7]) -> Weekly {
        for day in &mut days {
            day.sort();
        }
        Weekly { days }
    }

    /// The shifts of `weekday`, sorted by start.
    pub fn shifts(&self, weekday: Weekday) -> &[Shift] {
        &self.days[weekday.to_monday_zero_offset() as usize]
    }

    /// Whether every day is one `00:00-24:00` shift.
    pub fn is_always_open(&self) -> bool {
        self.days.iter().all(|d| d.len() == 1 && d[0].start_minute() == 0 && d[0].end_minute() == 24 * 60)
    }

    /// Whether no day has any shift.
    pub fn is_always_closed(&self) -> bool {
        self.days.iter().all(Vec::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn rome() -> TimeZone {
        TimeZone::get("Europe/Rome").unwrap()
    }

    #[test]
    fn parses_and_displays_a_shift() {
        let s = Shift::parse(" 09:00 - 13:00 ").unwrap();
        assert_eq!((s.start_minute(), s.end_minute()), (540, 780));
        assert_eq!(s.to_string(), "09:00-13:00");
        assert_eq!(
            Shift::parse("9:30-24:00").unwrap().to_string(),
            "09:30-24:00"
        );
        assert_eq!(Shift::parse("00:00-24:00").unwrap().end_minute(), 1440);
    }

    #[test]
    fn rejects_bad_shifts() {
        assert!(matches!(
            Shift::parse("09:00 13:00"),
            Err(ShiftError::Syntax(_))
        ));
        assert!(matches!(
            Shift::parse("0900-1300"),
            Err(ShiftError::BadTime(_))
        ));
        assert!(matches!(
            Shift::parse("09:00-25:00"),
            Err(ShiftError::BadTime(_))
        ));
        assert!(matches!(
            Shift::parse("24:00-24:00"),
            Err(ShiftError::BadTime(_))
        ));
        assert!(matches!(
            Shift::parse("09:60-10:00"),
            Err(ShiftError::BadTime(_))
        ));
        assert!(matches!(
            Shift::parse("9:0-10:00"),
            Err(ShiftError::BadTime(_))
        ));
        assert!(matches!(
            Shift::parse("+9:00-10:00"),
            Err(ShiftError::BadTime(_))
        ));
        assert!(matches!(
            Shift::parse("13:00-09:00"),
            Err(ShiftError::Inverted(_))
        ));
        assert!(matches!(
            Shift::parse("09:00-09:00"),
            Err(ShiftError::Inverted(_))
        ));
    }

    #[test]
    fn finds_overlaps_but_allows_touching_shifts() {
        let a = Shift::parse("09:00-13:00").unwrap();
        let b = Shift::parse("13:00-17:00").unwrap();
        let c = Shift::parse("12:00-14:00").unwrap();
        assert!(overlaps(&[a, b]).is_empty());
        assert_eq!(overlaps(&[a, b, c]), vec![(2, 0), (2, 1)]);
    }

    #[test]
    fn all_day_covers_23_and_25_hour_days() {
        let all = Shift::parse("00:00-24:00").unwrap();
        let hours = |d: Date| {
            let (s, e) = all.instants_on(d, &rome()).unwrap();
            (e - s).get_seconds() / 3600
        };
        assert_eq!(hours(date(2026, 3, 29)), 23); // last Sunday of March
        assert_eq!(hours(date(2026, 10, 25)), 25); // last Sunday of October
        assert_eq!(hours(date(2026, 6, 1)), 24);
    }

    #[test]
    fn shift_in_dst_gap_moves_forward_or_vanishes() {
        let tz = rome();
        // 02:00-03:00 does not exist on 2026-03-29: both ends resolve to 03:00 CEST.
        let gap = Shift::parse("02:00-03:00").unwrap();
        assert_eq!(gap.instants_on(date(2026, 3, 29), &tz), None);
        let (s, e) = Shift::parse("01:30-02:30")
            .unwrap()
            .instants_on(date(2026, 3, 29), &tz)
            .unwrap();
        assert_eq!(s.to_string(), "2026-03-29T00:30:00Z");
        assert_eq!(e.to_string(), "2026-03-29T01:30:00Z"); // 02:30 -> 03:30 CEST
    }

    #[test]
    fn weekly_sorts_and_looks_up_by_weekday() {
        let mut days: [Vec<Shift>; 7] = Default::default();
        days[0] = vec![
            Shift::parse("14:00-17:00").unwrap(),
            Shift::parse("09:00-13:00").unwrap(),
        ];
        let w = Weekly::new(days);
        assert_eq!(w.shifts(Weekday::Monday)[0].to_string(), "09:00-13:00");
        assert!(w.shifts(Weekday::Sunday).is_empty());
        assert!(!w.is_always_closed());
        assert!(Weekly::default().is_always_closed());
    }
}
