//! Scenario and property tests for [`Schedule`] across weekends, holidays, DST and closures.
//!
//! Owns: nothing but tests (compiled only under `cfg(test)`).
//! Must not touch: the clock; every instant is written out.

use jiff::{Timestamp, ToSpan, Zoned};
use proptest::prelude::*;

use super::*;

fn rome(text: &str) -> Zoned {
    format!("{text}[Europe/Rome]").parse().unwrap()
}

fn closed(reason: ClosedReason, opens: &str) -> OfficeState {
    OfficeState::Closed {
        reason,
        opens_at: Some(rome(opens)),
    }
}

fn holiday(name: &str) -> ClosedReason {
    ClosedReason::Holiday {
        name: name.to_string(),
    }
}

#[test]
fn friday_evening_opens_monday_morning() {
    let s = Schedule::default();
    // 2026-06-05 is a Friday.
    assert_eq!(
        s.state_at(&rome("2026-06-05T16:59:59")),
        OfficeState::Open {
            closes_at: Some(rome("2026-06-05T17:00"))
        }
    );
    assert_eq!(
        s.state_at(&rome("2026-06-05T17:00")),
        closed(ClosedReason::OutsideHours, "2026-06-08T09:00")
    );
    assert_eq!(
        s.state_at(&rome("2026-06-06T11:00")),
        closed(ClosedReason::OutsideHours, "2026-06-08T09:00")
    );
}

#[test]
fn holiday_on_a_monday_opens_tuesday() {
    let s = Schedule::default();
    // 2025-12-08 (Immacolata) is a Monday, and Saturday 6 December is San Nicola.
    assert_eq!(
        s.state_at(&rome("2025-12-05T17:00")),
        closed(ClosedReason::OutsideHours, "2025-12-09T09:00")
    );
    assert_eq!(
        s.state_at(&rome("2025-12-06T10:00")),
        closed(holiday("San Nicola, patrono di Bari"), "2025-12-09T09:00")
    );
    assert_eq!(
        s.state_at(&rome("2025-12-08T10:00")),
        closed(holiday("Immacolata Concezione"), "2025-12-09T09:00")
    );
    // Easter 2026: Friday 3 April to Tuesday 7 April.
    assert_eq!(
        s.state_at(&rome("2026-04-03T17:00")),
        closed(ClosedReason::OutsideHours, "2026-04-07T09:00")
    );
    assert_eq!(
        s.state_at(&rome("2026-04-05T10:00")),
        closed(holiday("Pasqua"), "2026-04-07T09:00")
    );
    assert_eq!(
        s.state_at(&rome("2026-04-06T10:00")),
        closed(holiday("Lunedì dell'Angelo"), "2026-04-07T09:00")
    );
}

#[test]
fn every_weekday_holiday_closes_the_whole_day() {
    let s = Schedule::default();
    for year in [2025, 2026, 2027] {
        for (date, name) in s.holidays_in_year(year) {
            let noon = date
                .at(10, 0, 0, 0)
                .to_zoned(s.time_zone().clone())
                .unwrap();
            match s.state_at(&noon) {
                OfficeState::Closed {
                    reason: ClosedReason::Holiday { name: got },
                    opens_at,
                } => {
                    assert_eq!(got, name);
                    assert!(opens_at.unwrap().date() > date);
                }
                other => panic!("{date} {name}: {other:?}"),
            }
        }
    }
    // 4 October 2027 is a Monday: a holiday from 2026 on (L. 8 ottobre 2025, n. 151).
    assert_eq!(
        s.state_at(&rome("2027-10-04T10:00")),
        closed(holiday(holidays::SAN_FRANCESCO), "2027-10-05T09:00")
    );
    // 4 October 2025 was a Saturday anyway; check a plain weekday that is not a holiday.
    assert!(s.state_at(&rome("2027-10-05T10:00")).is_open());
}

#[test]
fn christmas_week_with_a_closure_on_christmas_eve() {
    let spec = ScheduleSpec {
        closures: vec!["2026-12-24T13:00/2026-12-24T17:00 Vigilia di Natale".into()],
        ..ScheduleSpec::default()
    };
    let s = spec.compile().unwrap();
    // Thursday 24: morning as usual, then the closure; 25 and 26 are holidays; weekend.
    assert_eq!(
        s.state_at(&rome("2026-12-24T12:59:59")),
        OfficeState::Open {
            closes_at: Some(rome("2026-12-24T13:00"))
        }
    );
    let vigilia = ClosedReason::Closure {
        reason: "Vigilia di Natale".into(),
    };
    assert_eq!(
        s.state_at(&rome("2026-12-24T13:00")),
        closed(vigilia.clone(), "2026-12-28T09:00")
    );
    assert_eq!(
        s.state_at(&rome("2026-12-24T15:00")),
        closed(vigilia, "2026-12-28T09:00")
    );
    assert_eq!(
        s.state_at(&rome("2026-12-24T17:00")),
        closed(ClosedReason::OutsideHours, "2026-12-28T09:00")
    );
    assert_eq!(
        s.state_at(&rome("2026-12-25T10:00")),
        closed(holiday("Natale"), "2026-12-28T09:00")
    );
    assert_eq!(
        s.state_at(&rome("2026-12-26T10:00")),
        closed(holiday("Santo Stefano"), "2026-12-28T09:00")
    );
    // New Year's Day 2027 is a Friday: open again on Monday 4 January.
    assert_eq!(
        s.state_at(&rome("2026-12-31T17:00")),
        closed(ClosedReason::OutsideHours, "2027-01-04T09:00")
    );
    assert_eq!(
        s.state_at(&rome("2027-01-06T10:00")),
        closed(holiday("Epifania"), "2027-01-07T09:00")
    );
}

#[test]
fn openings_override_holidays_and_closures_override_openings() {
    let spec = ScheduleSpec {
        openings: vec![
            "2026-12-19T09:00/2026-12-19T12:00 Apertura sabato".into(),
            "2026-12-08T09:00/2026-12-08T11:00".into(),
        ],
        closures: vec!["2026-12-19T10:00/2026-12-19T10:30 Prova di evacuazione".into()],
        ..ScheduleSpec::default()
    };
    let s = spec.compile().unwrap();
    assert_eq!(
        s.state_at(&rome("2026-12-19T09:00")),
        OfficeState::Open {
            closes_at: Some(rome("2026-12-19T10:00"))
        }
    );
    let drill = ClosedReason::Closure {
        reason: "Prova di evacuazione".into(),
    };
    assert_eq!(
        s.state_at(&rome("2026-12-19T10:00")),
        closed(drill, "2026-12-19T10:30")
    );
    assert_eq!(
        s.state_at(&rome("2026-12-19T10:30")),
        OfficeState::Open {
            closes_at: Some(rome("2026-12-19T12:00"))
        }
    );
    assert_eq!(
        s.state_at(&rome("2026-12-08T08:00")),
        closed(holiday("Immacolata Concezione"), "2026-12-08T09:00")
    );
    assert_eq!(
        s.state_at(&rome("2026-12-08T10:59")),
        OfficeState::Open {
            closes_at: Some(rome("2026-12-08T11:00"))
        }
    );
    assert_eq!(
        s.state_at(&rome("2026-12-08T11:00")),
        closed(holiday("Immacolata Concezione"), "2026-12-09T09:00")
    );
}

#[test]
fn dst_weekends_keep_wall_clock_hours() {
    let s = Schedule::default();
    // Spring forward on Sunday 2026-03-29: Friday 17:00 CET to Monday 09:00 CEST is 63 h.
    let fri = rome("2026-03-27T17:00");
    let opens = s.state_at(&fri).next_change().cloned().unwrap();
    assert_eq!(opens, rome("2026-03-30T09:00"));
    assert_eq!(opens.offset().seconds(), 7200);
    assert_eq!(
        (opens.timestamp() - fri.timestamp()).get_seconds(),
        63 * 3600
    );
    // Fall back on Sunday 2026-10-25: Friday 17:00 CEST to Monday 09:00 CET is 65 h.
    let fri = rome("2026-10-23T17:00");
    let opens = s.state_at(&fri).next_change().cloned().unwrap();
    assert_eq!(opens, rome("2026-10-26T09:00"));
    assert_eq!(opens.offset().seconds(), 3600);
    assert_eq!(
        (opens.timestamp() - fri.timestamp()).get_seconds(),
        65 * 3600
    );
    // The Monday after: 09:00 local is 08:00 UTC, and 07:59:59 UTC is still closed.
    let t: Timestamp = "2026-10-26T08:00:00Z".parse().unwrap();
    assert!(s.is_open_at(t));
    assert!(!s.is_open_at(t - 1.second()));
}

#[test]
fn all_day_sunday_across_dst_lasts_23_and_25_hours() {
    let spec = ScheduleSpec {
        sunday: vec!["00:00-24:00".into()],
        saturday: vec!["01:00-03:00".into()],
        ..ScheduleSpec::default()
    };
    let s = spec.compile().unwrap();
    for (sunday, hours) in [("2026-03-29", 23), ("2026-10-25", 25)] {
        let start = rome(&format!("{sunday}T00:00"));
        let state = s.state_at(&start);
        let closes = state.next_change().unwrap();
        assert!(state.is_open());
        assert_eq!(
            (closes.timestamp() - start.timestamp()).get_seconds(),
            hours * 3600
        );
        // During the repeated or skipped hour it is still open.
        let mid: Timestamp = format!("{sunday}T01:30:00Z").parse().unwrap();
        assert!(s.is_open_at(mid));
    }
    // Saturday 01:00-03:00 followed by Sunday: closes at 03:00 Saturday, reopens Sunday 00:00.
    assert_eq!(
        s.state_at(&rome("2026-10-24T03:00")),
        closed(ClosedReason::OutsideHours, "2026-10-25T00:00")
    );
}

#[test]
fn a_queue_may_close_earlier_than_the_office() {
    let tributi = ScheduleSpec {
        friday: vec!["09:00-12:00".into()],
        ..ScheduleSpec::default()
    }
    .compile()
    .unwrap();
    let office = Schedule::default();
    let at = rome("2026-06-05T12:30");
    assert!(office.state_at(&at).is_open());
    assert_eq!(
        tributi.state_at(&at),
        closed(ClosedReason::OutsideHours, "2026-06-08T09:00")
    );
}

/// A schedule that stresses DST and boundaries: night shifts around the change, adjacent
/// shifts, all-day Sunday, one-off ranges over the DST nights and over holidays.
fn tricky() -> Schedule {
    ScheduleSpec {
        monday: vec![
            "00:00-01:00".into(),
            "02:30-03:30".into(),
            "09:00-13:00".into(),
            "13:00-17:00".into(),
        ],
        saturday: vec!["01:59-02:01".into(), "02:30-02:45".into()],
        sunday: vec!["00:00-24:00".into()],
        closures: vec![
            "2026-03-29T01:00/2026-03-29T04:00 Cambio ora".into(),
            "2026-12-24T12:00/2026-12-27T10:00 Natale lungo".into(),
        ],
        openings: vec![
            "2026-10-25T23:00/2026-10-26T02:00 Notte".into(),
            "2026-08-15/2026-08-16 Ferragosto aperto".into(),
        ],
        ..ScheduleSpec::default()
    }
    .compile()
    .unwrap()
}

/// Checks the invariants of `state_at` at `t`: the next change is in the future, the state
/// there is the opposite, and no instant between them (every 15 minutes, plus the last second
/// before the change) has the opposite state.
fn check_invariants(s: &Schedule, t: Timestamp) -> Result<(), TestCaseError> {
    let state = s.state_at_timestamp(t);
    prop_assert_eq!(state.is_open(), s.is_open_at(t));
    let Some(next) = state.next_change().map(Zoned::timestamp) else {
        return Ok(());
    };
    prop_assert!(next > t, "next change {} not after {}", next, t);
    let after = s.state_at_timestamp(next);
    prop_assert_ne!(
        after.is_open(),
        state.is_open(),
        "state at {} did not flip",
        next
    );
    let mut probe = t;
    while probe < next {
        prop_assert_eq!(
            s.is_open_at(probe),
            state.is_open(),
            "flipped early at {}",
            probe
        );
        probe += 15.minutes();
    }
    let last = next - 1.second();
    if last >= t {
        prop_assert_eq!(
            s.is_open_at(last),
            state.is_open(),
            "flipped early at {}",
            last
        );
    }
    Ok(())
}

/// Instants from 2025-01-01 to 2036-01-01 UTC.
fn instant() -> impl Strategy<Value = Timestamp> {
    (1_735_689_600i64..2_082_758_400i64).prop_map(|s| Timestamp::from_second(s).unwrap())
}

/// Instants within a day of a 2026 DST change or of the tricky schedule's one-offs.
fn instant_near_edges() -> impl Strategy<Value = Timestamp> {
    let anchors: Vec<Timestamp> = [
        "2026-03-28T00:00:00Z",
        "2026-10-24T00:00:00Z",
        "2026-12-24T00:00:00Z",
        "2026-08-14T00:00:00Z",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    (proptest::sample::select(anchors), 0i64..3 * 86_400)
        .prop_map(|(anchor, offset)| anchor + offset.seconds())
}

proptest! {
    #[test]
    fn default_schedule_next_change_is_exact(t in instant()) {
        check_invariants(&Schedule::default(), t)?;
    }

    #[test]
    fn tricky_schedule_next_change_is_exact(t in prop_oneof![instant(), instant_near_edges()]) {
        check_invariants(&tricky(), t)?;
    }

    #[test]
    fn closed_opens_at_is_open_and_in_the_future(t in instant()) {
        let s = Schedule::default();
        if let OfficeState::Closed { opens_at: Some(opens), .. } = s.state_at_timestamp(t) {
            prop_assert!(opens.timestamp() > t);
            prop_assert!(s.state_at(&opens).is_open());
            prop_assert!(!s.is_open_at(opens.timestamp() - 1.nanosecond()));
        }
    }
}
