//! Public holidays: the Italian national calendar (with Easter computed for any Gregorian year)
//! plus recurring local holidays from the configuration.
//!
//! Owns: the list of national holidays and their Italian names, the Easter computation, the
//! `"MM-DD Reason"` syntax of local holidays.
//! Must not touch: opening hours, time zones, the clock. A holiday is a civil date; the caller
//! decides which instants that date covers.

use std::fmt;

use jiff::civil::Date;

/// Which national calendar applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NationalCalendar {
    /// The Italian calendar (`"it"`).
    Italy,
    /// No national holidays (`"none"`); only local ones.
    None,
}

impl NationalCalendar {
    /// Parses the config value: `"it"` or `"none"`.
    pub fn parse(code: &str) -> Option<NationalCalendar> {
        match code.trim() {
            "it" => Some(NationalCalendar::Italy),
            "none" => Some(NationalCalendar::None),
            _ => None,
        }
    }
}

/// Name of Easter Sunday (a Sunday, listed for completeness).
pub const EASTER: &str = "Pasqua";
/// Name of Easter Monday.
pub const EASTER_MONDAY: &str = "Lunedì dell'Angelo";
/// Name of the 4 October holiday.
pub const SAN_FRANCESCO: &str = "San Francesco d'Assisi, patrono d'Italia";
/// First year in which 4 October is a national holiday again.
pub const SAN_FRANCESCO_FROM: i16 = 2026;

/// Fixed-date national holidays, `(month, day, name)`.
///
/// Source: Legge 27 maggio 1949, n. 260, art. 2, as amended by Legge 5 marzo 1977, n. 54,
/// D.P.R. 28 dicembre 1985, n. 792 (6 January restored) and Legge 20 novembre 2000, n. 336
/// (2 June restored). Valid for 2001 onwards; earlier years are not modelled.
const FIXED: [(i8, i8, &str); 10] = [
    (1, 1, "Capodanno"),
    (1, 6, "Epifania"),
    (4, 25, "Festa della Liberazione"),
    (5, 1, "Festa del Lavoro"),
    (6, 2, "Festa della Repubblica"),
    (8, 15, "Ferragosto"),
    (11, 1, "Ognissanti"),
    (12, 8, "Immacolata Concezione"),
    (12, 25, "Natale"),
    (12, 26, "Santo Stefano"),
];

/// Easter Sunday of a Gregorian `year` (1583 onwards), by the anonymous Gregorian algorithm
/// (Meeus/Jones/Butcher, J. Meeus, *Astronomical Algorithms*, ch. 8). `None` before 1583 or
/// outside jiff's date range.
pub fn easter_sunday(year: i16) -> Option<Date> {
    if year < 1583 {
        return None;
    }
    let y = i32::from(year);
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    // month is 3 or 4 and day 1..=31 by construction, so both fit in i8.
    Date::new(year, month as i8, day as i8).ok()
}

/// Easter Monday (Lunedì dell'Angelo) of `year`.
pub fn easter_monday(year: i16) -> Option<Date> {
    easter_sunday(year)?.tomorrow().ok()
}

/// The Italian national holidays of `year`, sorted by date.
pub fn italian_holidays(year: i16) -> Vec<(Date, &'static str)> {
    let mut out: Vec<(Date, &'static str)> = FIXED
        .iter()
        .filter_map(|&(m, d, name)| Date::new(year, m, d).ok().map(|date| (date, name)))
        .collect();
    if let Some(sunday) = easter_sunday(year) {
        out.push((sunday, EASTER));
    }
    if let Some(monday) = easter_monday(year) {
        out.push((monday, EASTER_MONDAY));
    }
    // Legge 8 ottobre 2025, n. 151 "Istituzione della festa nazionale di San Francesco
    // d'Assisi" (G.U. n. 236 del 10 ottobre 2025, in vigore dal 1° gennaio 2026), art. 1,
    // c. 2, adds "il 4 ottobre: festa nazionale di San Francesco d'Assisi, patrono d'Italia"
    // to art. 2 of Legge 260/1949, i.e. a full public holiday from 2026.
    // https://www.normattiva.it/uri-res/N2Ls?urn:nir:stato:legge:2025-10-08;151
    if year >= SAN_FRANCESCO_FROM {
        if let Ok(date) = Date::new(year, 10, 4) {
            out.push((date, SAN_FRANCESCO));
        }
    }
    out.sort();
    out
}

/// The Italian national holiday on `date`, if any.
pub fn italian_holiday_on(date: Date) -> Option<&'static str> {
    let (m, d) = (date.month(), date.day());
    if let Some(&(_, _, name)) = FIXED.iter().find(|&&(fm, fd, _)| (fm, fd) == (m, d)) {
        return Some(name);
    }
    if (m, d) == (10, 4) && date.year() >= SAN_FRANCESCO_FROM {
        return Some(SAN_FRANCESCO);
    }
    if m == 3 || m == 4 {
        if easter_sunday(date.year()) == Some(date) {
            return Some(EASTER);
        }
        if easter_monday(date.year()) == Some(date) {
            return Some(EASTER_MONDAY);
        }
    }
    None
}

/// A local holiday repeating every year on the same month and day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecurringHoliday {
    /// Month, 1–12.
    pub month: i8,
    /// Day of month; 29 February applies only in leap years.
    pub day: i8,
    /// Name as shown and logged, e.g. "San Nicola, patrono di Bari".
    pub name: String,
}

/// Name given to a local holiday configured without one.
pub const DEFAULT_LOCAL_NAME: &str = "Festività locale";

/// Why a recurring holiday string was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HolidayError {
    /// Not of the form `MM-DD` optionally followed by a name.
    #[error("expected \"MM-DD\" or \"MM-DD Name\", got {0:?}")]
    Syntax(String),
    /// A month/day pair that no year has, e.g. `02-30`.
    #[error("invalid date {0:?}")]
    InvalidDate(String),
}

impl RecurringHoliday {
    /// Parses `"MM-DD"` or `"MM-DD Name with spaces"`.
    pub fn parse(text: &str) -> Result<RecurringHoliday, HolidayError> {
        let text = text.trim();
        let (date, name) = match text.split_once(char::is_whitespace) {
            Some((date, name)) => (date, name.trim()),
            None => (text, ""),
        };
        let syntax = || HolidayError::Syntax(text.to_string());
        let (m, d) = date.split_once('-').ok_or_else(syntax)?;
        let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        if !two_digits(m) || !two_digits(d) {
            return Err(syntax());
        }
        let month: i8 = m.parse().map_err(|_| syntax())?;
        let day: i8 = d.parse().map_err(|_| syntax())?;
        // 2024 is a leap year, so this accepts exactly the month/days that exist in some year.
        Date::new(2024, month, day).map_err(|_| HolidayError::InvalidDate(date.to_string()))?;
        let name = if name.is_empty() {
            DEFAULT_LOCAL_NAME
        } else {
            name
        };
        Ok(RecurringHoliday {
            month,
            day,
            name: name.to_string(),
        })
    }

    /// This holiday's date in `year`; `None` for 29 February in a common year.
    pub fn in_year(&self, year: i16) -> Option<Date> {
        Date::new(year, self.month, self.day).ok()
    }
}

impl fmt::Display for RecurringHoliday {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}-{:02} {}", self.month, self.day, self.name)
    }
}

/// National plus local holidays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holidays {
    national: NationalCalendar,
    local: Vec<RecurringHoliday>,
}

impl Holidays {
    /// A calendar from its parts.
    pub fn new(national: NationalCalendar, local: Vec<RecurringHoliday>) -> Holidays {
        Holidays { national, local }
    }

    /// Whether the calendar has no holiday at all.
    pub fn is_empty(&self) -> bool {
        matches!(self.national, NationalCalendar::None) && self.local.is_empty()
    }

    /// The holiday name(s) on `date`, joined with " / " when several fall on the same day.
    pub fn name_on(&self, date: Date) -> Option<String> {
        let national = match self.national {
            NationalCalendar::Italy => italian_holiday_on(date),
            NationalCalendar::None => None,
        };
        let local = self
            .local
            .iter()
            .filter(|h| (h.month, h.day) == (date.month(), date.day()))
            .map(|h| h.name.as_str());
        let names: Vec<&str> = national.into_iter().chain(local).collect();
        (!names.is_empty()).then(|| names.join(" / "))
    }

    /// Every holiday of `year`, sorted by date, one entry per date.
    pub fn in_year(&self, year: i16) -> Vec<(Date, String)> {
        let mut dates: Vec<Date> = match self.national {
            NationalCalendar::Italy => italian_holidays(year).into_iter().map(|(d, _)| d).collect(),
            NationalCalendar::None => Vec::new(),
        };
        dates.extend(self.local.iter().filter_map(|h| h.in_year(year)));
        dates.sort();
        dates.dedup();
        dates
            .into_iter()
            .filter_map(|d| self.name_on(d).map(|name| (d, name)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn easter_matches_published_table_2025_to_2035() {
        let table = [
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2029, 4, 1),
            (2030, 4, 21),
            (2031, 4, 13),
            (2032, 3, 28),
            (2033, 4, 17),
            (2034, 4, 9),
            (2035, 3, 25),
        ];
        for (y, m, d) in table {
            let sunday = date(y, m, d);
            assert_eq!(easter_sunday(y), Some(sunday), "Easter {y}");
            assert_eq!(
                easter_monday(y),
                sunday.tomorrow().ok(),
                "Easter Monday {y}"
            );
            assert_eq!(
                italian_holiday_on(sunday.tomorrow().unwrap()),
                Some(EASTER_MONDAY)
            );
        }
    }

    #[test]
    fn easter_extremes_and_always_a_sunday() {
        // Earliest and latest possible dates (22 March 1818, 25 April 1943 and 2038).
        assert_eq!(easter_sunday(1818), Some(date(1818, 3, 22)));
        assert_eq!(easter_sunday(1943), Some(date(1943, 4, 25)));
        assert_eq!(easter_sunday(2038), Some(date(2038, 4, 25)));
        assert_eq!(easter_sunday(1500), None);
        for y in 1583..=9998 {
            let e = easter_sunday(y).unwrap();
            assert_eq!(e.weekday(), jiff::civil::Weekday::Sunday, "{y}");
            assert!(e >= date(y, 3, 22) && e <= date(y, 4, 25), "{y}");
        }
    }

    #[test]
    fn every_fixed_holiday_is_known() {
        let expected = [
            ((1, 1), "Capodanno"),
            ((1, 6), "Epifania"),
            ((4, 25), "Festa della Liberazione"),
            ((5, 1), "Festa del Lavoro"),
            ((6, 2), "Festa della Repubblica"),
            ((8, 15), "Ferragosto"),
            ((11, 1), "Ognissanti"),
            ((12, 8), "Immacolata Concezione"),
            ((12, 25), "Natale"),
            ((12, 26), "Santo Stefano"),
        ];
        for year in 2025..=2035 {
            for ((m, d), name) in expected {
                assert_eq!(
                    italian_holiday_on(date(year, m, d)),
                    Some(name),
                    "{year}-{m}-{d}"
                );
            }
        }
        assert_eq!(italian_holiday_on(date(2026, 12, 24)), None);
        assert_eq!(italian_holiday_on(date(2026, 6, 3)), None);
    }

    #[test]
    fn san_francesco_is_a_holiday_from_2026() {
        assert_eq!(italian_holiday_on(date(2025, 10, 4)), None);
        assert_eq!(italian_holiday_on(date(2026, 10, 4)), Some(SAN_FRANCESCO));
        assert_eq!(italian_holiday_on(date(2027, 10, 4)), Some(SAN_FRANCESCO));
        assert_eq!(italian_holidays(2025).len(), 12);
        assert_eq!(italian_holidays(2026).len(), 13);
    }

    #[test]
    fn year_list_is_sorted_and_complete() {
        let list = italian_holidays(2026);
        assert!(list.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(list[0], (date(2026, 1, 1), "Capodanno"));
        assert!(list.contains(&(date(2026, 4, 6), EASTER_MONDAY)));
        for (d, name) in &list {
            assert_eq!(italian_holiday_on(*d), Some(*name));
        }
    }

    #[test]
    fn parses_local_holidays() {
        let h = RecurringHoliday::parse("12-06 San Nicola, patrono di Bari").unwrap();
        assert_eq!(
            (h.month, h.day, h.name.as_str()),
            (12, 6, "San Nicola, patrono di Bari")
        );
        assert_eq!(h.to_string(), "12-06 San Nicola, patrono di Bari");
        assert_eq!(
            RecurringHoliday::parse("05-08").unwrap().name,
            DEFAULT_LOCAL_NAME
        );
        let leap = RecurringHoliday::parse("02-29 Bisestile").unwrap();
        assert_eq!(leap.in_year(2028), Some(date(2028, 2, 29)));
        assert_eq!(leap.in_year(2027), None);
        assert!(matches!(
            RecurringHoliday::parse("02-30"),
            Err(HolidayError::InvalidDate(_))
        ));
        assert!(matches!(
            RecurringHoliday::parse("13-01"),
            Err(HolidayError::InvalidDate(_))
        ));
        assert!(matches!(
            RecurringHoliday::parse("6-12"),
            Err(HolidayError::Syntax(_))
        ));
        assert!(matches!(
            RecurringHoliday::parse("12/06"),
            Err(HolidayError::Syntax(_))
        ));
        assert!(matches!(
            RecurringHoliday::parse(""),
            Err(HolidayError::Syntax(_))
        ));
    }

    #[test]
    fn local_and_national_combine() {
        let local = vec![
            RecurringHoliday::parse("12-06 San Nicola, patrono di Bari").unwrap(),
            RecurringHoliday::parse("12-08 Festa locale").unwrap(),
        ];
        let it = Holidays::new(NationalCalendar::Italy, local.clone());
        assert_eq!(
            it.name_on(date(2026, 12, 6)).as_deref(),
            Some("San Nicola, patrono di Bari")
        );
        assert_eq!(
            it.name_on(date(2026, 12, 8)).as_deref(),
            Some("Immacolata Concezione / Festa locale")
        );
        assert_eq!(it.in_year(2026).len(), 14);
        let none = Holidays::new(NationalCalendar::None, local);
        assert_eq!(none.name_on(date(2026, 12, 25)), None);
        assert_eq!(none.in_year(2026).len(), 2);
        assert_eq!(NationalCalendar::parse("fr"), None);
    }
}
