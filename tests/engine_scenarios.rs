//! Engine scenarios on simulated time: the shipped IVR scripts and the URP's schedule, with
//! `now` advanced by the test. No sockets, no clock: each runs in microseconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use centralino::clock::Now;
use centralino::engine::call::Outcome;
use centralino::engine::ids::{CallId, DtmfDigit, QueueName};
use centralino::engine::schedule::{Schedule, ScheduleSpec};
use centralino::engine::{Engine, Input, Output, QueueSetup};

struct Sim {
    engine: Engine,
    now: Now,
    out: Vec<Output>,
}

fn queues(patrimonio_hours: Option<Schedule>) -> Vec<QueueSetup> {
    let names = ["tributi", "generale", "patrimonio", "demografici_anagrafe", "demografici_cie", "demografici_stato_civile", "demografici_elettorale", "educazione", "servizi_persona", "informagiovani", "municipio_1", "municipio_2", "municipio_3", "municipio_4", "municipio_5"];
    names
        .iter()
        .map(|n| QueueSetup {
            hours: if *n == "patrimonio" { patrimonio_hours.clone() } else { None },
            ..QueueSetup::new(QueueName(n.to_string()))
        })
        .collect()
}

impl Sim {
    fn at(rfc3339: &str, patrimonio_hours: Option<Schedule>) -> Sim {
        let names: Vec<QueueName> = queues(None).into_iter().map(|q| q.name).collect();
        let ivr = centralino::ivr_scripts::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-scripts"), &names)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let schedule = ScheduleSpec::default().compile().unwrap();
        #[allow(clippy::disallowed_methods)] // the test's arbitrary origin of simulated time
        let instant = Instant::now();
        let now = Now { instant, wall: rfc3339.parse().unwrap() };
        Sim { engine: Engine::new(Arc::new(ivr.scripts), schedule, queues(patrimonio_hours)), now, out: Vec::new() }
    }

    fn input(&mut self, input: Input) -> &[Output] {
        self.engine.handle_input(self.now, input);
        self.drain()
    }

    fn drain(&mut self) -> &[Output] {
        self.out.clear();
        while let Some(o) = self.engine.poll_output() {
            self.out.push(o);
        }
        &self.out
    }

    /// Advances simulated time by `d`, firing every timer due on the way.
    fn advance(&mut self, d: Duration) -> Vec<Output> {
        let end = self.now.instant + d;
        let mut all = Vec::new();
        while let Some(due) = self.engine.poll_timeout().filter(|t| *t <= end) {
            self.set_instant(due);
            self.engine.handle_timeout(self.now);
            all.extend(self.drain().iter().cloned());
        }
        self.set_instant(end);
        all
    }

    fn set_instant(&mut self, t: Instant) {
        let delta = t.saturating_duration_since(self.now.instant);
        self.now.instant = t;
        self.now.wall += jiff::SignedDuration::try_from(delta).unwrap();
    }

    fn last_play_seq(&self) -> Option<u64> {
        self.out.iter().rev().find_map(|o| if let Output::Play { seq, .. } = o { Some(*seq) } else { None })
    }
}

fn id() -> CallId {
    CallId("c1".into())
}

fn record(outputs: &[Output]) -> Option<&centralino::engine::call::CallRecord> {
    outputs.iter().find_map(|o| if let Output::CallFinished(r) = o { Some(r.as_ref()) } else { None })
}

fn played(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| if let Output::Play { prompts, .. } = o { Some(prompts.iter().map(|p| p.to_string()).collect::<Vec<_>>()) } else { None })
        .flatten()
        .collect()
}

#[test]
fn an_open_office_rings_answers_plays_the_welcome_and_a_digit_queues_the_caller() {
    let mut sim = Sim::at("2026-11-27T10:00:00+01:00", None);
    let out = sim.input(Input::CallArrived { call: id(), caller: "3331234567".into() }).to_vec();
    assert!(matches!(out[0], Output::RingCall { .. }) && matches!(out[1], Output::AnswerCall { .. }), "{out:?}");
    let out = sim.input(Input::CallAnswered { call: id() }).to_vec();
    assert_eq!(played(&out)[0], "it/benvenuto");
    let out = sim.input(Input::DigitPressed { call: id(), digit: DtmfDigit::Digit(2) }).to_vec();
    assert!(matches!(out[0], Output::StopPlayback { .. }), "barge-in first: {out:?}");
    let names = played(&out);
    // One playback: a new one would cut the transfer prompt short.
    assert_eq!(out.iter().filter(|o| matches!(o, Output::Play { .. })).count(), 1, "{out:?}");
    assert_eq!(names[..3], ["it/trasferimento", "it/attesa", "it/posizione_1"], "{names:?}");
    let seq = sim.last_play_seq().unwrap();
    let out = sim.input(Input::PlaybackFinished { call: id(), seq }).to_vec();
    assert!(matches!(out[0], Output::PlayMusic { .. }), "music on hold after the waiting prompt: {out:?}");
    let stats = sim.engine.stats(sim.now);
    assert_eq!(stats.queue_waiting[&QueueName("tributi".into())].0, 1);

    sim.advance(Duration::from_secs(42));
    let out = sim.input(Input::CallEnded { call: id() }).to_vec();
    let r = record(&out).expect("a record");
    assert_eq!(r.outcome, Outcome::Abandoned);
    assert_eq!(r.wait, Some(Duration::from_secs(42)));
    assert_eq!(r.ivr_path, vec!["principale:2".to_string()]);
}

#[test]
fn on_a_sunday_the_caller_hears_closed_in_both_languages_with_the_reopening_then_bye() {
    let mut sim = Sim::at("2026-11-29T11:00:00+01:00", None);
    sim.input(Input::CallArrived { call: id(), caller: "x".into() });
    let out = sim.input(Input::CallAnswered { call: id() }).to_vec();
    let names = played(&out);
    assert_eq!(names[0], "it/ufficio_chiuso");
    assert!(names.contains(&"it/riapriamo".to_string()) && names.contains(&"it/domani".to_string()), "reopens Monday = tomorrow: {names:?}");
    assert!(names.contains(&"en/ufficio_chiuso".to_string()), "{names:?}");
    assert!(names.contains(&"it/num_9".to_string()));
    let seq = sim.last_play_seq().unwrap();
    let out = sim.input(Input::PlaybackFinished { call: id(), seq }).to_vec();
    assert!(out.iter().any(|o| matches!(o, Output::HangupCall { .. })), "{out:?}");
    assert_eq!(record(&out).unwrap().outcome, Outcome::Closed);
}

#[test]
fn on_a_holiday_the_reason_is_the_holiday_and_the_reopening_is_the_next_working_day() {
    // 8 December 2026 (Immacolata) is a Tuesday: reopens Wednesday 9 at 9.
    let mut sim = Sim::at("2026-12-08T10:00:00+01:00", None);
    sim.input(Input::CallArrived { call: id(), caller: "x".into() });
    let names = played(sim.input(Input::CallAnswered { call: id() }));
    assert_eq!(names[0], "it/ufficio_chiuso_festivo");
    assert!(names.contains(&"it/domani".to_string()), "{names:?}");
}

#[test]
fn a_desk_with_its_own_hours_turns_callers_away_while_the_office_is_open() {
    let early = ScheduleSpec { friday: vec!["09:00-12:00".into()], ..ScheduleSpec::default() }.compile().unwrap();
    let mut sim = Sim::at("2026-11-27T12:30:00+01:00", Some(early));
    sim.input(Input::CallArrived { call: id(), caller: "x".into() });
    sim.input(Input::CallAnswered { call: id() });
    let out = sim.input(Input::DigitPressed { call: id(), digit: DtmfDigit::Digit(4) }).to_vec();
    let names = played(&out);
    assert!(names.contains(&"it/sportello_chiuso".to_string()), "{names:?}");
    let seq = sim.last_play_seq().unwrap();
    let out = sim.input(Input::PlaybackFinished { call: id(), seq }).to_vec();
    let r = record(&out).unwrap();
    assert_eq!((r.outcome, r.queue.as_ref().map(|q| q.0.as_str())), (Outcome::Closed, Some("patrimonio")));
    // Another desk on the same menu still takes callers.
    assert_eq!(sim.engine.stats(sim.now).queue_waiting[&QueueName("patrimonio".into())].0, 0);
}

#[test]
fn callers_queued_at_closing_keep_their_place_until_the_drain_limit_then_hear_the_closing_message() {
    let mut sim = Sim::at("2026-11-27T16:55:00+01:00", None);
    sim.input(Input::CallArrived { call: id(), caller: "x".into() });
    sim.input(Input::CallAnswered { call: id() });
    sim.input(Input::DigitPressed { call: id(), digit: DtmfDigit::Digit(2) });
    // 17:00 closes; at 17:14 the caller still waits.
    let out = sim.advance(Duration::from_secs(19 * 60));
    assert!(record(&out).is_none(), "still served during the drain: {out:?}");
    assert_eq!(sim.engine.stats(sim.now).queue_waiting[&QueueName("tributi".into())].0, 1);
    // A new caller after closing hears the closed message.
    sim.input(Input::CallArrived { call: CallId("c2".into()), caller: "y".into() });
    let names = played(sim.input(Input::CallAnswered { call: CallId("c2".into()) }));
    assert_eq!(names[0], "it/ufficio_chiuso");
    // 17:15: drained.
    let out = sim.advance(Duration::from_secs(2 * 60));
    assert!(played(&out).contains(&"it/chiusura_coda".to_string()), "{out:?}");
    let seq = out.iter().rev().find_map(|o| if let Output::Play { seq, call, .. } = o { (call == &id()).then_some(*seq) } else { None }).unwrap();
    let out = sim.input(Input::PlaybackFinished { call: id(), seq }).to_vec();
    assert_eq!(record(&out).unwrap().outcome, Outcome::Closed);
}

#[test]
fn no_input_repeats_the_menu_then_sends_the_caller_to_the_general_queue() {
    let mut sim = Sim::at("2026-11-27T10:00:00+01:00", None);
    sim.input(Input::CallArrived { call: id(), caller: "x".into() });
    sim.input(Input::CallAnswered { call: id() });
    let mut queued = false;
    for _ in 0..3 {
        let seq = sim.last_play_seq().unwrap();
        sim.input(Input::PlaybackFinished { call: id(), seq });
        let out = sim.advance(Duration::from_secs(7));
        sim.out = out.clone();
        if played(&out).contains(&"it/attesa".to_string()) {
            queued = true;
            break;
        }
    }
    assert!(queued, "after the retries the caller waits in a queue");
    let calls = sim.engine.calls();
    assert_eq!(calls[0].queue.as_deref(), Some("generale"));
}

#[test]
fn a_caller_who_cancels_while_ringing_is_recorded_and_no_answer_is_sent() {
    let mut sim = Sim::at("2026-11-27T10:00:00+01:00", None);
    sim.engine = std::mem::replace(&mut sim.engine, Sim::at("2026-11-27T10:00:00+01:00", None).engine).with_answer_delay(Duration::from_secs(3));
    let out = sim.input(Input::CallArrived { call: id(), caller: "x".into() }).to_vec();
    assert_eq!(out.len(), 1, "only ringing: {out:?}");
    sim.advance(Duration::from_secs(1));
    let out = sim.input(Input::CallEnded { call: id() }).to_vec();
    assert_eq!(record(&out).unwrap().outcome, Outcome::IvrHangup);
    assert!(sim.advance(Duration::from_secs(5)).is_empty(), "no answer after the cancel");
    assert!(!sim.engine.has_calls());
}

#[test]
fn shutdown_hangs_up_every_call_as_interrupted() {
    let mut sim = Sim::at("2026-11-27T10:00:00+01:00", None);
    for n in 0..3 {
        sim.input(Input::CallArrived { call: CallId(format!("c{n}")), caller: "x".into() });
    }
    let out = sim.input(Input::ShutdownRequested).to_vec();
    let hangups = out.iter().filter(|o| matches!(o, Output::HangupCall { .. })).count();
    let interrupted = out.iter().filter(|o| matches!(o, Output::CallFinished(r) if r.outcome == Outcome::Interrupted)).count();
    assert_eq!((hangups, interrupted), (3, 3));
    let out = sim.input(Input::CallArrived { call: CallId("late".into()), caller: "x".into() }).to_vec();
    assert!(out.is_empty(), "no new calls while shutting down");
}
