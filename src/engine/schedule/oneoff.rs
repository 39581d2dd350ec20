//! One-off closures and openings: a range of local time with a human-readable reason.
//!
//! Owns: the `"FROM/TO Reason"` syntax and its resolution to instants in the schedule's zone.
//! Must not touch: weekly hours, holidays, the clock.
//! Syntax: `FROM` and `TO` are `YYYY-MM-DDTHH:MM` (`T24:00` allowed as `TO`) or a bare date;
//! a bare `TO` date is inclusive (the range ends at the end of that day). A bare date with no
//! `/TO` is that whole day. The reason is optional. Ranges are `[start, end)`.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::weekly::{local_instant, parse_clock, MINUTES_PER_DAY};

/// A one-off range of instants with its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneOff {
    /// First instant covered.
    pub start: Timestamp,
    /// First instant no longer covered.
    pub end: Timestamp,
    /// Why, e.g. "Vigilia di Natale".
    pub reason: String,
}

/// Why a one-off range was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OneOffError {
    /// Not of the form `FROM[/TO] [reason]`.
    #[error("expected \"YYYY-MM-DDTHH:MM/YYYY-MM-DDTHH:MM [reason]\" or \"YYYY-MM-DD [reason]\", got {0:?}")]
    Syntax(String),
    /// A date that does not exist, e.g. `2026-02-30`.
    #[error("invalid date {0:?}")]
    InvalidDate(String),
    /// A clock time out of range.
    #[error("invalid time {0:?}")]
    InvalidTime(String),
    /// The range ends before it starts.
    #[error("ends before it starts ({end} is before {start})")]
    EndsBeforeStart {
        /// The configured start.
        start: String,
        /// The configured end.
        end: String,
    },
    /// The range is empty (start equals end).
    #[error("empty range: starts and ends at {0}")]
    Empty(String),
    /// A time outside jiff's supported range.
    #[error("date out of range: {0:?}")]
    OutOfRange(String),
}

/// A parsed endpoint: a date and minutes after local midnight (1440 = end of day).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct LocalPoint {
    date: Date,
    minutes: u16,
}

impl OneOff {
    /// Parses one config entry, resolving local times in `tz`; `default_reason` is used when
    /// the entry has none.
    pub fn parse(text: &str, tz: &TimeZone, default_reason: &str) -> Result<OneOff, OneOffError> {
        let text = text.trim();
        let (range, reason) = match text.split_once(char::is_whitespace) {
            Some((range, reason)) => (range, reason.trim()),
            None => (text, ""),
        };
        if range.is_empty() {
            return Err(OneOffError::Syntax(text.to_string()));
        }
        let (from, to) = match range.split_once('/') {
            Some((from, to)) => (parse_point(from, false)?, parse_point(to, true)?),
            None => {
                let from = parse_point(range, false)?;
                if from.minutes != 0 || range.contains('T') {
                    // A single date-time has no end.
                    return Err(OneOffError::Syntax(text.to_string()));
                }
                (
                    from,
                    LocalPoint {
                        date: from.date,
                        minutes: MINUTES_PER_DAY,
                    },
                )
            }
        };
        let (from_text, to_text) = range.split_once('/').unwrap_or((range, range));
        if to < from {
            return Err(OneOffError::EndsBeforeStart {
                start: from_text.to_string(),
                end: to_text.to_string(),
            });
        }
        let resolve = |p: LocalPoint| {
            local_instant(p.date, p.minutes, tz)
                .ok_or_else(|| OneOffError::OutOfRange(range.to_string()))
        };
        let (start, end) = (resolve(from)?, resolve(to)?);
        if start >= end {
            // Equal civil points, or both inside the same DST gap.
            return Err(OneOffError::Empty(from_text.to_string()));
        }
        let reason = if reason.is_empty() {
            default_reason
        } else {
            reason
        };
        Ok(OneOff {
            start,
            end,
            reason: reason.to_string(),
        })
    }

    /// Whether `at` lies in `[start, end)`.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.start <= at && at < self.end
    }

    /// Whether two ranges share at least one instant.
    pub fn overlaps(&self, other: &OneOff) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM`. A bare date is the start of the day, or, when
/// `is_end`, the end of the day (inclusive end date).
fn parse_point(text: &str, is_end: bool) -> Result<LocalPoint, OneOffError> {
    let (date_text, time_text) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let date = parse_date(date_text)?;
    let minutes = match time_text {
        Some(t) => parse_clock(t, is_end).map_err(|_| OneOffError::InvalidTime(t.to_string()))?,
        None if is_end => MINUTES_PER_DAY,
        None => 0,
    };
    Ok(LocalPoint { date, minutes })
}

/// Strict `YYYY-MM-DD`.
fn parse_date(text: &str) -> Result<Date, OneOffError> {
    let parts: Vec<&str> = text.split('-').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let well_formed =
        parts.len() == 3 && digits(parts[0], 4) && digits(parts[1], 2) && digits(parts[2], 2);
    if !well_formed {
        return Err(OneOffError::Syntax(text.to_string()));
    }
    let invalid = || OneOffError::InvalidDate(text.to_string());
    let year: i16 = parts[0].parse().map_err(|_| invalid())?;
    let month: i8 = parts[1].parse().map_err(|_| invalid())?;
    let day: i8 = parts[2].parse().map_err(|_| invalid())?;
    Date::new(year, month, day).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rome() -> TimeZone {
        TimeZone::get("Europe/Rome").unwrap()
    }

    fn parse(text: &str) -> Result<OneOff, OneOffError> {
        OneOff::parse(text, &rome(), "Chiusura straordinaria")
    }

    #[test]
    fn parses_a_time_range_with_reason() {
        let c = parse("2026-12-24T13:00/2026-12-24T17:00 Vigilia di Natale").unwrap();
        assert_eq!(c.start.to_string(), "2026-12-24T12:00:00Z");
        assert_eq!(c.end.to_string(), "2026-12-24T16:00:00Z");
        assert_eq!(c.reason, "Vigilia di Natale");
        assert!(c.contains(c.start));
        assert!(!c.contains(c.end));
    }

    #[test]
    fn bare_dates_cover_whole_days_and_default_reason() {
        let one = parse("2026-08-14").unwrap();
        assert_eq!(one.start.to_string(), "2026-08-13T22:00:00Z");
        assert_eq!(one.end.to_string(), "2026-08-14T22:00:00Z");
        assert_eq!(one.reason, "Chiusura straordinaria");
        let span = parse("2026-12-28/2026-12-30 Inventario").unwrap();
        assert_eq!(span.start.to_string(), "2026-12-27T23:00:00Z");
        assert_eq!(span.end.to_string(), "2026-12-30T23:00:00Z");
        let to_midnight = parse("2026-12-24T13:00/2026-12-24T24:00").unwrap();
        assert_eq!(to_midnight.end.to_string(), "2026-12-24T23:00:00Z");
    }

    #[test]
    fn resolves_across_dst() {
        // The night of the October change lasts 25 hours of wall time 00:00-24:00.
        let c = parse("2026-10-25").unwrap();
        assert_eq!((c.end - c.start).get_seconds(), 25 * 3600);
    }

    #[test]
    fn rejects_bad_ranges() {
        assert!(matches!(
            parse("2026-12-24T17:00/2026-12-24T13:00"),
            Err(OneOffError::EndsBeforeStart { .. })
        ));
        assert!(matches!(
            parse("2026-12-25/2026-12-24"),
            Err(OneOffError::EndsBeforeStart { .. })
        ));
        assert!(matches!(
            parse("2026-12-24T13:00/2026-12-24T13:00"),
            Err(OneOffError::Empty(_))
        ));
        // 02:00 is in the spring-forward gap and moves to 03:00 CEST, the same instant as 03:00.
        assert!(matches!(
            parse("2026-03-29T02:00/2026-03-29T03:00"),
            Err(OneOffError::Empty(_))
        ));
        assert!(matches!(
            parse("2026-02-30"),
            Err(OneOffError::InvalidDate(_))
        ));
        assert!(matches!(
            parse("2026-02-29T09:00/2026-03-01T09:00"),
            Err(OneOffError::InvalidDate(_))
        ));
        assert!(matches!(
            parse("2026-12-24T25:00/2026-12-24T26:00"),
            Err(OneOffError::InvalidTime(_))
        ));
        assert!(matches!(
            parse("2026-12-24T24:00/2026-12-25T01:00"),
            Err(OneOffError::InvalidTime(_))
        ));
        assert!(matches!(parse("24/12/2026"), Err(OneOffError::Syntax(_))));
        assert!(matches!(
            parse("2026-12-24T13:00 Pomeriggio"),
            Err(OneOffError::Syntax(_))
        ));
        assert!(matches!(parse(""), Err(OneOffError::Syntax(_))));
    }

    #[test]
    fn overlap_is_symmetric_and_touching_is_fine() {
        let a = parse("2026-12-24T09:00/2026-12-24T13:00").unwrap();
        let b = parse("2026-12-24T13:00/2026-12-24T17:00").unwrap();
        let c = parse("2026-12-24T12:00/2026-12-24T14:00").unwrap();
        assert!(!a.overlaps(&b) && !b.overlaps(&a));
        assert!(a.overlaps(&c) && c.overlaps(&a) && b.overlaps(&c));
    }
}
