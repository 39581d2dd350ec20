//! Rendering for `centralino schedule`: the state at an instant as text or JSON, and a year's
//! holidays, closures and openings as text.
//!
//! Owns: the wording and the JSON shape `{"open": bool, "reason": string|null,
//! "next_change": RFC 3339 string|null}`.
//! Must not touch: argument parsing, printing, the clock (the CLI passes `--at` or the time it
//! read once).

use std::fmt::Write as _;

use jiff::Zoned;

use super::{OfficeState, Schedule};

/// `2026-12-28T09:00:00+01:00`: RFC 3339 with the local offset (no zone annotation).
pub fn rfc3339(z: &Zoned) -> String {
    z.timestamp().display_with_offset(z.offset()).to_string()
}

/// `Monday 2026-12-28 09:00 CET`.
fn long(z: &Zoned) -> String {
    z.strftime("%A %Y-%m-%d %H:%M %Z").to_string()
}

fn zone_name(schedule: &Schedule) -> &str {
    schedule.time_zone().iana_name().unwrap_or("UTC")
}

/// One line for humans, e.g. `open until 13:00 CET (Europe/Rome)` or
/// `closed (holiday: Natale) — opens Monday 2026-12-28 09:00 CET (Europe/Rome)`.
pub fn describe_state(schedule: &Schedule, at: &Zoned) -> String {
    let zone = zone_name(schedule);
    let local_at = at.with_time_zone(schedule.time_zone().clone());
    match schedule.state_at(at) {
        OfficeState::Open { closes_at: Some(c) } if c.date() == local_at.date() => {
            format!("open until {} ({zone})", c.strftime("%H:%M %Z"))
        }
        OfficeState::Open { closes_at: Some(c) } => format!("open until {} ({zone})", long(&c)),
        OfficeState::Open { closes_at: None } => {
            format!(
                "open, with no closing within {} days ({zone})",
                super::HORIZON_DAYS
            )
        }
        OfficeState::Closed {
            reason,
            opens_at: Some(o),
        } => {
            format!("closed ({reason}) — opens {} ({zone})", long(&o))
        }
        OfficeState::Closed {
            reason,
            opens_at: None,
        } => {
            format!(
                "closed ({reason}) — does not open within {} days ({zone})",
                super::HORIZON_DAYS
            )
        }
    }
}

/// Exactly `{"open": bool, "reason": string|null, "next_change": string|null}`; `reason` is
/// null when open, `next_change` is RFC 3339 with the local offset, null beyond the horizon.
pub fn state_json(schedule: &Schedule, at: &Zoned) -> serde_json::Value {
    let state = schedule.state_at(at);
    let reason = match &state {
        OfficeState::Open { .. } => None,
        OfficeState::Closed { reason, .. } => Some(reason.to_string()),
    };
    serde_json::json!({
        "open": state.is_open(),
        "reason": reason,
        "next_change": state.next_change().map(rfc3339),
    })
}

/// The year's holidays, closures and openings, one per line, grouped under headings.
pub fn describe_year(schedule: &Schedule, year: i16) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "Holidays {year} ({}):", zone_name(schedule));
    let holidays = schedule.holidays_in_year(year);
    for (date, name) in &holidays {
        let _ = writeln!(out, "  {}  {name}", date.strftime("%Y-%m-%d %a"));
    }
    if holidays.is_empty() {
        out.push_str("  (none)\n");
    }
    for (title, list) in [
        ("Closures", schedule.closures_in_year(year)),
        ("Openings", schedule.openings_in_year(year)),
    ] {
        let _ = writeln!(out, "{title} {year}:");
        if list.is_empty() {
            out.push_str("  (none)\n");
        }
        for (start, end, reason) in &list {
            let _ = writeln!(
                out,
                "  {} → {}  {reason}",
                start.strftime("%Y-%m-%d %a %H:%M"),
                end.strftime("%Y-%m-%d %a %H:%M")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::schedule::ScheduleSpec;

    fn rome(text: &str) -> Zoned {
        format!("{text}[Europe/Rome]").parse().unwrap()
    }

    fn christmas() -> Schedule {
        ScheduleSpec {
            closures: vec!["2026-12-24T13:00/2026-12-24T17:00 Vigilia di Natale".into()],
            ..ScheduleSpec::default()
        }
        .compile()
        .unwrap()
    }

    #[test]
    fn describes_open_and_closed() {
        let s = christmas();
        assert_eq!(
            describe_state(&s, &rome("2026-12-23T10:00")),
            "open until 13:00 CET (Europe/Rome)"
        );
        assert_eq!(
            describe_state(&s, &rome("2026-12-25T10:00")),
            "closed (holiday: Natale) — opens Monday 2026-12-28 09:00 CET (Europe/Rome)"
        );
        assert_eq!(
            describe_state(&s, &rome("2026-12-24T14:00")),
            "closed (closure: Vigilia di Natale) — opens Monday 2026-12-28 09:00 CET (Europe/Rome)"
        );
        assert_eq!(
            describe_state(&s, &rome("2026-07-01T18:00")),
            "closed (outside opening hours) — opens Thursday 2026-07-02 09:00 CEST (Europe/Rome)"
        );
    }

    #[test]
    fn json_has_exactly_three_fields() {
        let s = christmas();
        let v = state_json(&s, &rome("2026-12-25T10:00"));
        assert_eq!(
            v,
            serde_json::json!({
                "open": false,
                "reason": "holiday: Natale",
                "next_change": "2026-12-28T09:00:00+01:00",
            })
        );
        let v = state_json(&s, &rome("2026-07-01T10:00"));
        assert_eq!(
            v,
            serde_json::json!({"open": true, "reason": null, "next_change": "2026-07-01T13:00:00+02:00"})
        );
    }

    #[test]
    fn describes_a_year() {
        let text = describe_year(&christmas(), 2026);
        assert!(
            text.starts_with("Holidays 2026 (Europe/Rome):\n  2026-01-01 Thu  Capodanno\n"),
            "{text}"
        );
        assert!(
            text.contains("  2026-04-06 Mon  Lunedì dell'Angelo\n"),
            "{text}"
        );
        assert!(
            text.contains("  2026-10-04 Sun  San Francesco d'Assisi, patrono d'Italia\n"),
            "{text}"
        );
        assert!(
            text.contains("  2026-12-06 Sun  San Nicola, patrono di Bari\n"),
            "{text}"
        );
        assert!(
            text.contains("Closures 2026:\n  2026-12-24 Thu 13:00 → 2026-12-24 Thu 17:00  Vigilia di Natale\n"),
            "{text}"
        );
        assert!(text.ends_with("Openings 2026:\n  (none)\n"), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.starts_with("  2026-")).count(),
            14 + 1
        );
    }
}
