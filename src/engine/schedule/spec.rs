//! The `[schedule]` configuration table as plain data, and its validation into a [`Schedule`].
//!
//! Owns: the config field names and defaults (the URP of the Comune di Bari), and the mapping
//! of every config error to the field it came from (`"monday[1]"`, `"closures[0]"`).
//! Must not touch: file reading or TOML parsing (the config layer deserializes this struct),
//! the clock. The same type is reused for a queue's own hours.

use std::fmt;

use jiff::tz::TimeZone;

use super::holidays::{Holidays, NationalCalendar, RecurringHoliday};
use super::oneoff::OneOff;
use super::weekly::{overlaps, Shift, Weekly};
use super::Schedule;

/// Reason given to a closure configured without one.
pub const DEFAULT_CLOSURE_REASON: &str = "Chiusura straordinaria";
/// Reason given to an opening configured without one.
pub const DEFAULT_OPENING_REASON: &str = "Apertura straordinaria";

/// Mirrors the `[schedule]` TOML table; every field defaults to the URP's values.
///
/// Weekday lists hold `"HH:MM-HH:MM"` shifts in local time (`[]` = closed, `"00:00-24:00"` =
/// all day). `extra_holidays` are recurring `"MM-DD [Name]"`; `closures` and `openings` are
/// one-off `"YYYY-MM-DDTHH:MM/YYYY-MM-DDTHH:MM [Reason]"` or `"YYYY-MM-DD [Reason]"` ranges in
/// the schedule's zone. An opening overrides holidays and weekly hours; a closure overrides
/// everything.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSpec {
    /// IANA time zone name.
    pub timezone: String,
    /// Monday's shifts.
    pub monday: Vec<String>,
    /// Tuesday's shifts.
    pub tuesday: Vec<String>,
    /// Wednesday's shifts.
    pub wednesday: Vec<String>,
    /// Thursday's shifts.
    pub thursday: Vec<String>,
    /// Friday's shifts.
    pub friday: Vec<String>,
    /// Saturday's shifts.
    pub saturday: Vec<String>,
    /// Sunday's shifts.
    pub sunday: Vec<String>,
    /// National calendar: `"it"` or `"none"`.
    pub holidays: String,
    /// Recurring local holidays, `"MM-DD"` or `"MM-DD Name"`.
    pub extra_holidays: Vec<String>,
    /// One-off closures.
    pub closures: Vec<String>,
    /// One-off extra openings.
    pub openings: Vec<String>,
    /// Minutes after closing that callers already queued keep being served; then they hear
    /// the closing message. Read by the engine, not by `compile`.
    pub drain_minutes: u32,
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        let urp = || vec!["09:00-13:00".to_string(), "14:00-17:00".to_string()];
        ScheduleSpec {
            timezone: "Europe/Rome".to_string(),
            monday: urp(),
            tuesday: urp(),
            wednesday: urp(),
            thursday: urp(),
            friday: urp(),
            saturday: Vec::new(),
            sunday: Vec::new(),
            holidays: "it".to_string(),
            extra_holidays: vec!["12-06 San Nicola, patrono di Bari".to_string()],
            closures: Vec::new(),
            openings: Vec::new(),
            drain_minutes: 15,
        }
    }
}

/// One problem in a [`ScheduleSpec`], located by field (and index for lists).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The offending field, e.g. `"monday[1]"`, `"closures[0]"`, `"timezone"`.
    pub field: String,
    /// What is wrong, in a sentence an operator can act on.
    pub message: String,
}

impl SpecError {
    fn new(field: impl fmt::Display, message: impl fmt::Display) -> SpecError {
        SpecError {
            field: field.to_string(),
            message: message.to_string(),
        }
    }
}

impl ScheduleSpec {
    /// The weekday lists, Monday first, with their field names.
    fn days(&self) -> [(&'static str, &[String]); 7] {
        [
            ("monday", &self.monday),
            ("tuesday", &self.tuesday),
            ("wednesday", &self.wednesday),
            ("thursday", &self.thursday),
            ("friday", &self.friday),
            ("saturday", &self.saturday),
            ("sunday", &self.sunday),
        ]
    }

    /// Validates every field and builds the schedule, or returns every problem found.
    pub fn compile(&self) -> Result<Schedule, Vec<SpecError>> {
        let mut errors = Vec::new();
        let tz = match TimeZone::get(self.timezone.trim()) {
            Ok(tz) => tz,
            Err(_) => {
                errors.push(SpecError::new(
                    "timezone",
                    format!(
                        "unknown time zone {:?} (expected an IANA name such as \"Europe/Rome\")",
                        self.timezone
                    ),
                ));
                // Keep validating the rest; local times are resolved in UTC meanwhile.
                TimeZone::UTC
            }
        };
        let weekly = self.compile_weekly(&mut errors);
        let national = NationalCalendar::parse(&self.holidays).unwrap_or_else(|| {
            errors.push(SpecError::new(
                "holidays",
                format!(
                    "unknown holiday calendar {:?} (expected \"it\" or \"none\")",
                    self.holidays
                ),
            ));
            NationalCalendar::None
        });
        let local = self.compile_local_holidays(&mut errors);
        let closures = compile_one_offs(
            "closures",
            &self.closures,
            &tz,
            DEFAULT_CLOSURE_REASON,
            &mut errors,
        );
        let openings = compile_one_offs(
            "openings",
            &self.openings,
            &tz,
            DEFAULT_OPENING_REASON,
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Schedule {
            tz,
            weekly,
            holidays: Holidays::new(national, local),
            closures,
            openings,
        })
    }

    fn compile_weekly(&self, errors: &mut Vec<SpecError>) -> Weekly {
        let mut days: [Vec<Shift>; 7] = Default::default();
        for (slot, (name, entries)) in days.iter_mut().zip(self.days()) {
            let mut parsed: Vec<(usize, Shift)> = Vec::new();
            for (i, text) in entries.iter().enumerate() {
                match Shift::parse(text) {
                    Ok(shift) => parsed.push((i, shift)),
                    Err(e) => errors.push(SpecError::new(format!("{name}[{i}]"), e)),
                }
            }
            let shifts: Vec<Shift> = parsed.iter().map(|&(_, s)| s).collect();
            for (later, earlier) in overlaps(&shifts) {
                let (li, ls) = parsed[later];
                let (ei, es) = parsed[earlier];
                errors.push(SpecError::new(
                    format!("{name}[{li}]"),
                    format!("{ls} overlaps {es} ({name}[{ei}])"),
                ));
            }
            *slot = shifts;
        }
        Weekly::new(days)
    }

    fn compile_local_holidays(&self, errors: &mut Vec<SpecError>) -> Vec<RecurringHoliday> {
        let mut local: Vec<RecurringHoliday> = Vec::new();
        for (i, text) in self.extra_holidays.iter().enumerate() {
            match RecurringHoliday::parse(text) {
                Ok(h) if local.iter().any(|o| (o.month, o.day) == (h.month, h.day)) => {
                    errors.push(SpecError::new(
                        format!("extra_holidays[{i}]"),
                        format!("{:02}-{:02} is listed more than once", h.month, h.day),
                    ));
                }
                Ok(h) => local.push(h),
                Err(e) => errors.push(SpecError::new(format!("extra_holidays[{i}]"), e)),
            }
        }
        local
    }
}

/// Parses a list of one-off ranges, rejecting overlaps within the list; sorted by start.
fn compile_one_offs(
    field: &str,
    entries: &[String],
    tz: &TimeZone,
    default_reason: &str,
    errors: &mut Vec<SpecError>,
) -> Vec<OneOff> {
    let mut parsed: Vec<(usize, OneOff)> = Vec::new();
    for (i, text) in entries.iter().enumerate() {
        match OneOff::parse(text, tz, default_reason) {
            Ok(range) => {
                if let Some((j, _)) = parsed.iter().find(|(_, other)| other.overlaps(&range)) {
                    errors.push(SpecError::new(
                        format!("{field}[{i}]"),
                        format!("overlaps {field}[{j}]"),
                    ));
                }
                parsed.push((i, range));
            }
            Err(e) => errors.push(SpecError::new(format!("{field}[{i}]"), e)),
        }
    }
    let mut ranges: Vec<OneOff> = parsed.into_iter().map(|(_, r)| r).collect();
    ranges.sort_by_key(|r| (r.start, r.end));
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(spec: ScheduleSpec) -> Vec<String> {
        spec.compile()
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn default_compiles_to_the_urp_week() {
        let s = ScheduleSpec::default().compile().unwrap();
        assert_eq!(s.time_zone().iana_name(), Some("Europe/Rome"));
        let mon = s.weekly.shifts(jiff::civil::Weekday::Monday);
        assert_eq!(
            mon.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["09:00-13:00", "14:00-17:00"]
        );
        assert!(s.weekly.shifts(jiff::civil::Weekday::Saturday).is_empty());
    }

    #[test]
    fn deserializes_partial_tables_with_defaults() {
        let spec: ScheduleSpec =
            serde_json::from_str(r#"{"friday": ["09:00-12:00"], "closures": []}"#).unwrap();
        assert_eq!(spec.friday, ["09:00-12:00"]);
        assert_eq!(spec.monday, ScheduleSpec::default().monday);
        assert_eq!(spec.timezone, "Europe/Rome");
    }

    #[test]
    fn rejects_unknown_weekdays_and_fields() {
        let err = serde_json::from_str::<ScheduleSpec>(r#"{"funday": []}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `funday`"), "{err}");
    }

    #[test]
    fn reports_every_problem_with_its_field() {
        let spec = ScheduleSpec {
            timezone: "Europe/Bari".into(),
            monday: vec!["09:00-13:00".into(), "12:00-14:00".into()],
            tuesday: vec!["13:00-09:00".into()],
            wednesday: vec!["9-13".into()],
            holidays: "fr".into(),
            extra_holidays: vec!["02-30".into(), "12-06".into(), "12-06 doppio".into()],
            closures: vec![
                "2026-12-24T17:00/2026-12-24T13:00".into(),
                "2026-13-01".into(),
                "2026-08-14".into(),
                "2026-08-14T10:00/2026-08-14T11:00".into(),
            ],
            openings: vec!["2026-02-29".into()],
            ..ScheduleSpec::default()
        };
        let got = errors(spec);
        let fields: Vec<&str> = got
            .iter()
            .map(|e| e.split(':').next().unwrap_or(""))
            .collect();
        assert_eq!(
            fields,
            [
                "timezone",
                "monday[1]",
                "tuesday[0]",
                "wednesday[0]",
                "holidays",
                "extra_holidays[0]",
                "extra_holidays[2]",
                "closures[0]",
                "closures[1]",
                "closures[3]",
                "openings[0]",
            ],
            "{got:#?}"
        );
        assert!(
            got[1].contains("12:00-14:00 overlaps 09:00-13:00 (monday[0])"),
            "{}",
            got[1]
        );
        assert!(got[2].contains("inverted"), "{}", got[2]);
        assert!(got[7].contains("ends before it starts"), "{}", got[7]);
        assert!(got[9].contains("overlaps closures[2]"), "{}", got[9]);
    }

    #[test]
    fn accepts_touching_shifts_all_day_and_no_calendar() {
        let spec = ScheduleSpec {
            timezone: "UTC".into(),
            monday: vec!["00:00-12:00".into(), "12:00-24:00".into()],
            sunday: vec!["00:00-24:00".into()],
            holidays: "none".into(),
            extra_holidays: vec![],
            closures: vec!["2026-12-24T13:00/2026-12-24T17:00 Vigilia di Natale".into()],
            openings: vec!["2026-12-19T09:00/2026-12-19T12:00".into()],
            ..ScheduleSpec::default()
        };
        let s = spec.compile().unwrap();
        assert_eq!(s.closures[0].reason, "Vigilia di Natale");
        assert_eq!(s.openings[0].reason, DEFAULT_OPENING_REASON);
    }

    #[test]
    fn spec_error_displays_field_then_message() {
        let e = SpecError::new("closures[0]", "ends before it starts");
        assert_eq!(e.to_string(), "closures[0]: ends before it starts");
    }
}
