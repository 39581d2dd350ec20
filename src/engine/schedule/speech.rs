//! How the schedule is spoken to a caller: prompt-fragment names, played in order.
//!
//! Owns: the fragment vocabulary for closed-office messages (file stems under
//! `ivr-scripts/prompts/<lang>/`) and the word order in Italian and English.
//! Must not touch: audio, file access, the clock (`now` is passed in).
//! Times are spoken on the 24-hour clock in both languages: "riapriamo lunedì 8 dicembre alle
//! ore 9 e 30" / "we reopen on Monday 8 December at 9 30".

use jiff::Zoned;

use super::ClosedReason;

/// The language a fragment list is built for (maps 1:1 to the engine's `Language`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpeechLang {
    /// Italian.
    It,
    /// English.
    En,
}

/// "riapriamo" / "we reopen".
pub const REOPEN: &str = "riapriamo";
/// "oggi" / "today".
pub const TODAY: &str = "oggi";
/// "domani" / "tomorrow".
pub const TOMORROW: &str = "domani";
/// "alle ore" / "at".
pub const AT: &str = "alle_ore";
/// Italian "e" between hours and minutes ("alle ore 9 e 30"); not used in English.
pub const AND: &str = "e";
/// Closed outside opening hours.
pub const CLOSED_OUTSIDE_HOURS: &str = "ufficio_chiuso";
/// Closed for a public holiday ("oggi è giorno festivo").
pub const CLOSED_HOLIDAY: &str = "ufficio_chiuso_festivo";
/// Closed for a one-off closure.
pub const CLOSED_EXCEPTIONAL: &str = "ufficio_chiuso_straordinario";

/// `num_<n>`: a spoken cardinal number.
pub fn number(n: i8) -> String {
    format!("num_{n}")
}

/// `wd_<n>`: a weekday, Monday = 1 … Sunday = 7.
pub fn weekday(n: i8) -> String {
    format!("wd_{n}")
}

/// `month_<n>`: a month, January = 1.
pub fn month(n: i8) -> String {
    format!("month_{n}")
}

/// What to say about when the office reopens at `opens_at`, seen from `now`.
///
/// Same local day: `riapriamo oggi alle_ore num_14`; next day: `riapriamo domani alle_ore
/// num_9`; later: `riapriamo wd_1 num_8 month_12 alle_ore num_9`. Minutes are added only when
/// non-zero (`… num_9 e num_30` in Italian, `… num_9 num_30` in English). Days are compared in
/// `opens_at`'s zone.
pub fn reopening_fragments(opens_at: &Zoned, now: &Zoned, lang: SpeechLang) -> Vec<String> {
    let today = now.with_time_zone(opens_at.time_zone().clone()).date();
    let day = opens_at.date();
    let mut out = vec![REOPEN.to_string()];
    if day == today {
        out.push(TODAY.to_string());
    } else if today.tomorrow().ok() == Some(day) {
        out.push(TOMORROW.to_string());
    } else {
        out.push(weekday(day.weekday().to_monday_one_offset()));
        out.push(number(day.day()));
        out.push(month(day.month()));
    }
    out.push(AT.to_string());
    out.push(number(opens_at.hour()));
    if opens_at.minute() != 0 {
        if lang == SpeechLang::It {
            out.push(AND.to_string());
        }
        out.push(number(opens_at.minute()));
    }
    out
}

/// What to say about why the office is closed: one generic prompt per kind of reason (holiday
/// and closure names are not recorded one by one).
pub fn closed_reason_fragments(reason: &ClosedReason) -> Vec<String> {
    let name = match reason {
        ClosedReason::OutsideHours => CLOSED_OUTSIDE_HOURS,
        ClosedReason::Holiday { .. } => CLOSED_HOLIDAY,
        ClosedReason::Closure { .. } => CLOSED_EXCEPTIONAL,
    };
    vec![name.to_string()]
}

/// Every fragment name this module can produce, for checking that the prompt files exist.
pub fn all_fragment_names() -> Vec<String> {
    let fixed = [
        REOPEN,
        TODAY,
        TOMORROW,
        AT,
        AND,
        CLOSED_OUTSIDE_HOURS,
        CLOSED_HOLIDAY,
        CLOSED_EXCEPTIONAL,
    ];
    let mut out: Vec<String> = fixed.iter().map(|s| s.to_string()).collect();
    out.extend((1..=7).map(weekday));
    out.extend((1..=12).map(month));
    out.extend((0..=59).map(number));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rome(text: &str) -> Zoned {
        format!("{text}[Europe/Rome]").parse().unwrap()
    }

    fn speak(opens: &str, now: &str, lang: SpeechLang) -> String {
        reopening_fragments(&rome(opens), &rome(now), lang).join(" ")
    }

    #[test]
    fn same_day_and_next_day() {
        assert_eq!(
            speak("2026-06-03T14:00", "2026-06-03T13:05", SpeechLang::It),
            "riapriamo oggi alle_ore num_14"
        );
        assert_eq!(
            speak("2026-06-04T09:00", "2026-06-03T17:30", SpeechLang::En),
            "riapriamo domani alle_ore num_9"
        );
    }

    #[test]
    fn later_days_name_weekday_day_and_month() {
        // Friday evening before the 2025 Immacolata weekend: Tuesday 9 December.
        assert_eq!(
            speak("2025-12-09T09:00", "2025-12-05T17:00", SpeechLang::It),
            "riapriamo wd_2 num_9 month_12 alle_ore num_9"
        );
        // Across the new year.
        assert_eq!(
            speak("2027-01-04T09:00", "2026-12-31T17:00", SpeechLang::En),
            "riapriamo wd_1 num_4 month_1 alle_ore num_9"
        );
    }

    #[test]
    fn minutes_use_e_in_italian_only() {
        assert_eq!(
            speak("2026-06-04T09:30", "2026-06-03T18:00", SpeechLang::It),
            "riapriamo domani alle_ore num_9 e num_30"
        );
        assert_eq!(
            speak("2026-06-04T09:30", "2026-06-03T18:00", SpeechLang::En),
            "riapriamo domani alle_ore num_9 num_30"
        );
    }

    #[test]
    fn now_in_another_zone_is_compared_in_the_schedule_zone() {
        // 23:30 UTC on 3 June is already 4 June in Rome: "oggi", not "domani".
        let now: Zoned = "2026-06-03T23:30:00+00:00[UTC]".parse().unwrap();
        let got = reopening_fragments(&rome("2026-06-04T09:00"), &now, SpeechLang::It);
        assert_eq!(got[1], TODAY);
    }

    #[test]
    fn reasons_map_to_generic_prompts() {
        assert_eq!(
            closed_reason_fragments(&ClosedReason::OutsideHours),
            ["ufficio_chiuso"]
        );
        let h = ClosedReason::Holiday {
            name: "Natale".into(),
        };
        assert_eq!(closed_reason_fragments(&h), ["ufficio_chiuso_festivo"]);
        let c = ClosedReason::Closure {
            reason: "Vigilia".into(),
        };
        assert_eq!(
            closed_reason_fragments(&c),
            ["ufficio_chiuso_straordinario"]
        );
    }

    #[test]
    fn vocabulary_covers_everything_produced() {
        let all = all_fragment_names();
        assert_eq!(all.len(), 8 + 7 + 12 + 60);
        let mut produced = reopening_fragments(
            &rome("2026-12-28T23:59"),
            &rome("2026-12-20T10:00"),
            SpeechLang::It,
        );
        produced.extend(closed_reason_fragments(&ClosedReason::OutsideHours));
        for f in produced {
            assert!(all.contains(&f), "{f}");
        }
    }
}
