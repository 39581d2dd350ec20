//! The waiting experience on simulated time: what a caller hears on entering a queue and
//! while waiting, the expected wait, priorities, the limits and exits (max wait, full queue,
//! no operator, exit key, overflow) and how each exit is recorded. Uses the programmatic IVR
//! of `engine_sim` (1 → queue `a`, 2 → queue `b`).

mod engine_sim;

use std::time::Duration;

use centralino::engine::call::Outcome;
use centralino::engine::ids::DtmfDigit;
use centralino::engine::{ExitTo, Input, NoOperators, Output, QueueEventKind, QueueSetup};
use engine_sim::*;

const S: fn(u64) -> Duration = Duration::from_secs;

/// Prompts played to `call` in `out`, in order, as `lang/name`, leaving out the IVR's menu.
fn heard(out: &[Output], call: &str) -> Vec<String> {
    out.iter()
        .filter_map(|o| match o {
            Output::Play { call: c, prompts, .. } if c.0 == call => Some(prompts.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .filter(|p| p != "it/menu")
        .collect()
}

/// Every prompt played to `call` in `out`.
fn heard_all(out: &[Output], call: &str) -> Vec<String> {
    out.iter()
        .filter_map(|o| if let Output::Play { call: c, prompts, .. } = o { (c.0 == call).then_some(prompts) } else { None })
        .flatten()
        .map(|p| p.to_string())
        .collect()
}

/// Reports the end of `call`'s last playback in `out`; returns what the engine did.
fn finish_playback(sim: &mut Sim, out: &[Output], call: &str) -> Vec<Output> {
    let seq = out
        .iter()
        .rev()
        .find_map(|o| if let Output::Play { call: c, seq, .. } = o { (c.0 == call).then_some(*seq) } else { None })
        .expect("a playback");
    sim.input(Input::PlaybackFinished { call: cid(call), seq })
}

/// The expected wait told in the ANNOUNCE events of `call` (None: not told).
fn told(out: &[Output], call: &str) -> Vec<(String, Option<u64>)> {
    events(out, QueueEventKind::Announce)
        .into_iter()
        .filter(|(c, _, _)| c == call)
        .map(|(_, _, d)| (d[0].clone(), d[1].parse().ok()))
        .collect()
}

/// A caller with a priority: arrives, priority, answers, presses `digits`.
fn vip(sim: &mut Sim, call: &str, priority: i32, digits: &str) -> Vec<Output> {
    let mut out = sim.input(Input::CallArrived { call: cid(call), caller: format!("333{call}") });
    out.extend(sim.input(Input::CallerPriority { call: cid(call), priority }));
    out.extend(sim.input(Input::CallAnswered { call: cid(call) }));
    for ch in digits.chars() {
        out.extend(sim.input(Input::DigitPressed { call: cid(call), digit: DtmfDigit::from_char(ch).unwrap() }));
    }
    out
}

fn sim(tweak: impl Fn(&mut QueueSetup), operators: &[&str]) -> Sim {
    let accounts = operators.iter().map(|o| account(o, &["a", "b"])).collect();
    let mut sim = Sim::new(Sim::queues(tweak), accounts, 1);
    for o in operators {
        sim.register(o);
    }
    sim
}

#[test]
fn on_entering_a_busy_queue_the_caller_hears_busy_position_and_wait_then_music_then_updates_every_45_s() {
    let mut sim = sim(|s| s.expected_talk = Some(S(240)), &["op1"]);
    sim.caller("c0", "1");
    sim.answer("c0", "op1");
    let out = sim.caller("c1", "1");
    let said = heard(&out, "c1");
    assert_eq!(said[..3], ["it/attesa", "it/posizione_1", "it/attesa_stimata"], "{said:?}");
    assert!(said[3].starts_with("it/num_") && said[4].starts_with("it/minut"), "{said:?}");
    let announced = told(&out, "c1");
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0].0, "1");
    assert!((60..900).contains(&announced[0].1.unwrap()), "{announced:?}");
    let out = finish_playback(&mut sim, &out, "c1");
    assert!(matches!(out.as_slice(), [Output::PlayMusic { call }] if call.0 == "c1"), "{out:?}");

    // Nothing new before the interval; at 45 s the position is the same: information instead.
    assert!(heard(&sim.advance(S(44)), "c1").is_empty());
    let out = sim.advance(S(1));
    assert_eq!(heard(&out, "c1"), ["it/servizi_online"]);
    assert!(told(&out, "c1").is_empty(), "no ANNOUNCE for information");
    let out = finish_playback(&mut sim, &out, "c1");
    assert!(matches!(out.as_slice(), [Output::PlayMusic { .. }]));
    assert_eq!(heard(&sim.advance(S(45)), "c1"), ["it/servizi_online"], "the information rotates (one prompt here)");
}

#[test]
fn an_update_tells_a_lower_position_only_and_never_a_higher_one() {
    let mut sim = sim(|s| s.announce_interval = Some(S(30)), &[]);
    sim.caller("c1", "1");
    let out = sim.caller("c2", "1");
    assert_eq!(heard(&out, "c2"), ["it/attesa", "it/posizione_2"], "no operator logged in: no wait");
    assert_eq!(told(&out, "c2"), [("2".to_string(), None)]);
    finish_playback(&mut sim, &out, "c2");
    // A priority caller goes ahead: c2 is third now, but hears information, not "third".
    let out = vip(&mut sim, "v", 5, "1");
    assert_eq!(events(&out, QueueEventKind::EnterQueue)[0].2[2], "1");
    let out = sim.advance(S(30));
    assert_eq!(heard(&out, "c2"), ["it/servizi_online"]);
    finish_playback(&mut sim, &out, "c2");
    // c1 leaves: second again, as already told: still no position.
    sim.input(Input::CallEnded { call: cid("c1") });
    let out = sim.advance(S(30));
    assert_eq!(heard(&out, "c2"), ["it/servizi_online"]);
    finish_playback(&mut sim, &out, "c2");
    // The priority caller leaves: first, lower than told.
    sim.input(Input::CallEnded { call: cid("v") });
    let out = sim.advance(S(30));
    assert_eq!(heard(&out, "c2"), ["it/posizione_1"]);
    assert_eq!(told(&out, "c2"), [("1".to_string(), None)]);
}

#[test]
fn no_update_plays_while_a_message_still_plays_or_an_operator_rings() {
    let mut sim = sim(|s| s.announce_interval = Some(S(10)), &["op1"]);
    let out = sim.caller("c1", "1");
    assert_eq!(offers(&out).len(), 1);
    assert!(heard(&sim.advance(S(15)), "c1").is_empty(), "ringing");
    let out = sim.caller("c2", "1");
    assert!(!heard(&out, "c2").is_empty());
    assert!(heard(&sim.advance(S(10)), "c2").is_empty(), "the entry message has not finished");
}

#[test]
fn the_wait_is_estimated_per_caller_from_position_and_operators_and_said_only_when_known() {
    // No prior and no measured calls: no wait is said, only the position.
    let mut sim0 = sim(|_| {}, &["op1"]);
    sim0.caller("x", "1");
    sim0.answer("x", "op1");
    let out = sim0.caller("c1", "1");
    assert_eq!(told(&out, "c1"), [("1".to_string(), None)]);
    // Ten measured calls of 120 s: one busy operator, fresh call, 10 s wrap-up: 130 s, "2 minutes".
    let mut sim1 = sim(|s| s.wrap_up = S(10), &["op1"]);
    for n in 0..10 {
        let id = format!("h{n}");
        sim1.caller(&id, "1");
        sim1.answer(&id, "op1");
        sim1.advance(S(120));
        sim1.input(Input::CallEnded { call: cid(&id) });
        sim1.advance(S(10));
    }
    sim1.caller("busy", "1");
    sim1.answer("busy", "op1");
    let out = sim1.caller("c1", "1");
    assert_eq!(told(&out, "c1"), [("1".to_string(), Some(130))]);
    assert_eq!(heard(&out, "c1")[1..], ["it/posizione_1", "it/attesa_stimata", "it/num_2", "it/minuti"]);
    let out = sim1.caller("c2", "1");
    assert_eq!(told(&out, "c2"), [("2".to_string(), Some(260))]);

    // With a prior: one operator versus five, the first caller waiting.
    let wait_with = |operators: &[&str]| {
        let mut sim = sim(|s| s.expected_talk = Some(S(240)), operators);
        for (n, o) in operators.iter().enumerate() {
            let id = format!("x{n}");
            sim.caller(&id, "1");
            sim.answer(&id, o);
        }
        let out = sim.caller("c", "1");
        told(&out, "c")[0].1.unwrap()
    };
    let (one, five) = (wait_with(&["op1"]), wait_with(&["op1", "op2", "op3", "op4", "op5"]));
    assert!(five * 3 < one, "five operators: {five} s, one: {one} s");
    // A free operator: under a minute, said alone.
    let mut free = sim(|s| s.expected_talk = Some(S(240)), &["op1"]);
    let out = free.caller("c", "1");
    assert_eq!(heard(&out, "c"), ["it/posizione_1", "it/meno_di_un_minuto"], "no 'all busy' when someone is free");
}

#[test]
fn at_max_wait_the_caller_overflows_keeping_the_join_time_and_goes_ahead_of_later_joiners() {
    let mut sim = sim(
        |s| {
            if s.name.0 == "a" {
                s.max_wait = Some(S(60));
                s.overflow = Some(q("b"));
            }
        },
        &[],
    );
    sim.caller("x", "1");
    sim.advance(S(30));
    sim.caller("y", "2");
    let out = sim.advance(S(30));
    assert_eq!(events(&out, QueueEventKind::Overflow)[0].2, ["timeout", "b", "1", "1", "60"]);
    let entered = events(&out, QueueEventKind::EnterQueue);
    assert_eq!((entered[0].0.as_str(), entered[0].2[2].as_str()), ("x", "1"), "ahead of y, who joined later");
    assert_eq!(heard(&out, "x"), ["it/attesa", "it/posizione_1"]);
    let stats = sim.engine.stats(sim.now);
    assert_eq!(stats.counters.queue_exits[&(q("a"), Outcome::Overflow)], 1);
    assert_eq!(stats.counters.wait_seconds[&(q("a"), Outcome::Overflow)].count, 1);
    assert_eq!(stats.queue_waiting[&q("b")].0, 2);

    // An operator of b arrives: x first; x's wait counts from joining a.
    let mut accounts = vec![account("op1", &["b"])];
    accounts.push(account("op2", &["b"]));
    sim.input(Input::DirectoryLoaded { operators: accounts });
    let out = sim.register("op1");
    assert_eq!(offers(&out), [("x".into(), "op1".into())]);
    sim.answer("x", "op1");
    sim.advance(S(20));
    let out = sim.input(Input::CallEnded { call: cid("x") });
    let r = records(&out)[0];
    assert_eq!((r.outcome, r.queue.as_ref().map(|q| q.0.as_str()), r.wait), (Outcome::Answered, Some("b"), Some(S(60))));
}

#[test]
fn at_max_wait_without_a_target_the_caller_hears_why_and_is_recorded_as_timeout() {
    let mut sim = sim(|s| s.max_wait = Some(S(60)), &[]);
    sim.caller("x", "1");
    let out = sim.advance(S(60));
    assert_eq!(events(&out, QueueEventKind::ExitWithTimeout)[0].2, ["1", "1", "60"]);
    assert_eq!(heard(&out, "x"), ["it/attesa_scaduta", "it/arrivederci"]);
    sim.advance(S(8));
    let out = finish_playback(&mut sim, &out, "x");
    assert!(out.iter().any(|o| matches!(o, Output::HangupCall { .. })));
    let r = records(&out)[0];
    assert_eq!((r.outcome, r.wait), (Outcome::Timeout, Some(S(60))), "the goodbye is not waiting");
    let stats = sim.engine.stats(sim.now);
    assert_eq!(stats.counters.queue_exits[&(q("a"), Outcome::Timeout)], 1);
    assert_eq!(stats.counters.wait_seconds[&(q("a"), Outcome::Timeout)].sum, 60.0);
}

#[test]
fn the_max_wait_lets_a_ringing_phone_finish_ringing_first() {
    let mut sim = sim(|s| s.max_wait = Some(S(30)), &["op1"]);
    sim.caller("x", "1");
    let out = sim.advance(S(30));
    assert!(events(&out, QueueEventKind::ExitWithTimeout).is_empty());
    let out = sim.answer("x", "op1");
    assert!(out.iter().any(|o| matches!(o, Output::Bridge { .. })));
    assert!(events(&sim.advance(S(60)), QueueEventKind::ExitWithTimeout).is_empty());
}

#[test]
fn a_full_queue_sends_the_caller_to_its_overflow_target_or_says_so() {
    let full = |overflow: Option<&str>| {
        sim(
            |s| {
                if s.name.0 == "a" {
                    s.max_callers = Some(1);
                    s.overflow = overflow.map(q);
                }
            },
            &[],
        )
    };
    let mut sim = full(Some("b"));
    sim.caller("c1", "1");
    let out = sim.caller("c2", "1");
    assert_eq!(events(&out, QueueEventKind::Overflow)[0].2, ["full", "b", "0", "0", "0"]);
    assert_eq!(events(&out, QueueEventKind::EnterQueue)[0].0, "c2");
    assert_eq!(sim.engine.calls().iter().find(|c| c.id == "c2").unwrap().queue.as_deref(), Some("b"));

    let mut sim = full(None);
    sim.caller("c1", "1");
    let out = sim.caller("c2", "1");
    assert_eq!(events(&out, QueueEventKind::Overflow)[0].2, ["full", "", "0", "0", "0"]);
    assert_eq!(heard(&out, "c2"), ["it/coda_piena", "it/arrivederci"]);
    let out = finish_playback(&mut sim, &out, "c2");
    let r = records(&out)[0];
    assert_eq!((r.outcome, r.queue.as_ref().map(|q| q.0.as_str()), r.wait), (Outcome::Overflow, Some("a"), None));
}

#[test]
fn with_no_operator_logged_in_the_caller_joins_overflows_or_hears_a_message_as_configured() {
    let policy = |p: NoOperators| {
        sim(
            move |s| {
                if s.name.0 == "a" {
                    s.when_no_operators = p;
                    s.overflow = Some(q("b"));
                }
            },
            &[],
        )
    };
    let mut sim = policy(NoOperators::Message);
    let out = sim.caller("c1", "1");
    assert_eq!(heard(&out, "c1"), ["it/nessun_operatore", "it/arrivederci"]);
    assert_eq!(events(&out, QueueEventKind::Overflow)[0].2[..2], ["no_operators".to_string(), String::new()]);

    let mut sim = policy(NoOperators::Overflow);
    let out = sim.caller("c1", "1");
    assert_eq!(events(&out, QueueEventKind::Overflow)[0].2[..2], ["no_operators".to_string(), "b".to_string()]);
    assert_eq!(events(&out, QueueEventKind::EnterQueue)[0].1, None);

    let mut sim = policy(NoOperators::Join);
    assert_eq!(events(&sim.caller("c1", "1"), QueueEventKind::EnterQueue).len(), 1);

    // A paused operator is logged in: the caller waits for them.
    let mut sim = policy(NoOperators::Message);
    sim.input(Input::DirectoryLoaded { operators: vec![account("op1", &["a"])] });
    sim.register("op1");
    sim.input(Input::OperatorPaused { operator: op("op1"), reason: "pausa".into() });
    let out = sim.caller("c1", "1");
    assert_eq!(events(&out, QueueEventKind::EnterQueue).len(), 1);
    assert_eq!(told(&out, "c1"), [("1".to_string(), None)], "nobody serves now: no wait");
}

#[test]
fn the_exit_key_takes_the_caller_back_to_the_main_menu_or_to_the_overflow_target() {
    let mut sim = sim(|s| s.exit_key = Some(DtmfDigit::Pound), &[]);
    let out = sim.caller("c1", "1");
    assert_eq!(heard(&out, "c1"), ["it/attesa", "it/posizione_1", "it/uscita_menu", "it/tasto_cancelletto"]);
    sim.advance(S(10));
    let out = sim.input(Input::DigitPressed { call: cid("c1"), digit: DtmfDigit::Digit(5) });
    assert!(out.is_empty(), "other keys do nothing: {out:?}");
    let out = sim.input(Input::DigitPressed { call: cid("c1"), digit: DtmfDigit::Pound });
    assert_eq!(events(&out, QueueEventKind::ExitWithKey)[0].2, ["#", "1", "1", "10", "menu"]);
    assert_eq!(heard_all(&out, "c1"), ["it/menu"]);
    assert_eq!(sim.engine.stats(sim.now).queue_waiting[&q("a")].0, 0);
    sim.input(Input::DigitPressed { call: cid("c1"), digit: DtmfDigit::Digit(2) });
    sim.advance(S(5));
    let out = sim.input(Input::CallEnded { call: cid("c1") });
    let r = records(&out)[0];
    assert_eq!(r.ivr_path, ["main:1", "a:#", "main:2"]);
    assert_eq!((r.outcome, r.queue.as_ref().map(|q| q.0.as_str()), r.wait), (Outcome::Abandoned, Some("b"), Some(S(5))));

    let mut sim = sim_exit_to_b();
    let out = sim.caller("c1", "1");
    assert_eq!(heard(&out, "c1")[2..], ["it/uscita_trasferimento", "it/num_0"]);
    let out = sim.input(Input::DigitPressed { call: cid("c1"), digit: DtmfDigit::Digit(0) });
    assert_eq!(events(&out, QueueEventKind::ExitWithKey)[0].2[4], "b");
    assert_eq!(events(&out, QueueEventKind::EnterQueue).len(), 1);
    assert_eq!(sim.engine.stats(sim.now).counters.exit_key[&q("a")], 1);
    // In b (no exit key there) the key does nothing.
    assert!(sim.input(Input::DigitPressed { call: cid("c1"), digit: DtmfDigit::Digit(0) }).is_empty());
}

fn sim_exit_to_b() -> Sim {
    sim(
        |s| {
            if s.name.0 == "a" {
                s.exit_key = Some(DtmfDigit::Digit(0));
                s.exit_to = ExitTo::Overflow;
                s.overflow = Some(q("b"));
            }
        },
        &[],
    )
}

#[test]
fn overflow_targets_that_point_back_cannot_loop() {
    let mut sim = sim(
        |s| {
            s.max_wait = Some(S(10));
            s.overflow = Some(q(if s.name.0 == "a" { "b" } else { "a" }));
        },
        &[],
    );
    sim.caller("x", "1");
    let out = sim.advance(S(100));
    assert_eq!(events(&out, QueueEventKind::Overflow).len(), 3, "three moves");
    assert_eq!(events(&out, QueueEventKind::ExitWithTimeout).len(), 1, "then the message");
    assert_eq!(heard(&out, "x")[heard(&out, "x").len() - 2..], ["it/attesa_scaduta", "it/arrivederci"]);
}

#[test]
fn short_and_long_abandons_are_recorded_with_their_wait_and_position() {
    let mut sim = sim(|_| {}, &[]);
    sim.caller("c1", "1");
    sim.caller("c2", "1");
    sim.advance(S(5));
    let out = sim.input(Input::CallEnded { call: cid("c2") });
    assert_eq!(events(&out, QueueEventKind::Abandon)[0].2, ["2", "2", "5"]);
    assert_eq!((records(&out)[0].outcome, records(&out)[0].wait), (Outcome::Abandoned, Some(S(5))));
    sim.advance(S(115));
    let out = sim.input(Input::CallEnded { call: cid("c1") });
    assert_eq!(events(&out, QueueEventKind::Abandon)[0].2, ["1", "1", "120"]);
    assert_eq!(records(&out)[0].wait, Some(S(120)));
    let h = &sim.engine.stats(sim.now).counters.wait_seconds[&(q("a"), Outcome::Abandoned)];
    assert_eq!((h.count, h.sum), (2, 125.0));
}

#[test]
fn higher_priority_goes_first_and_equal_priorities_keep_their_order() {
    let mut sim = sim(|_| {}, &[]);
    sim.caller("c1", "1");
    sim.caller("c2", "1");
    assert_eq!(events(&vip(&mut sim, "v1", 5, "1"), QueueEventKind::EnterQueue)[0].2[2], "1");
    assert_eq!(events(&vip(&mut sim, "v2", 5, "1"), QueueEventKind::EnterQueue)[0].2[2], "2");
    assert_eq!(events(&sim.caller("c3", "1"), QueueEventKind::EnterQueue)[0].2[2], "5");
    assert_eq!(events(&vip(&mut sim, "low", -1, "1"), QueueEventKind::EnterQueue)[0].2[2], "6");
    sim.input(Input::DirectoryLoaded { operators: vec![account("op1", &["a"])] });
    let mut order = Vec::new();
    let mut out = sim.register("op1");
    for _ in 0..6 {
        let (call, _) = offers(&out)[0].clone();
        sim.answer(&call, "op1");
        sim.input(Input::CallEnded { call: cid(&call) });
        order.push(call);
        out = sim.advance(S(10));
    }
    assert_eq!(order, ["v1", "v2", "c1", "c2", "c3", "low"]);
}

#[test]
fn every_queue_has_its_histograms_from_the_start_and_answered_calls_fill_them() {
    let mut sim = sim(|s| s.expected_talk = Some(S(60)), &["op1"]);
    let stats = sim.engine.stats(sim.now);
    assert_eq!(stats.counters.wait_seconds.len(), 2 * 5);
    assert_eq!((stats.counters.talk_seconds.len(), stats.counters.ewt_error_seconds.len()), (2, 2));
    sim.caller("c0", "1");
    sim.answer("c0", "op1");
    sim.caller("c1", "1");
    sim.advance(S(90));
    let out = sim.input(Input::CallEnded { call: cid("c0") });
    let told0 = records(&out)[0].announced_wait.expect("a free operator: under a minute");
    sim.advance(S(10));
    sim.answer("c1", "op1");
    sim.advance(S(30));
    let out = sim.input(Input::CallEnded { call: cid("c1") });
    let told1 = records(&out)[0].announced_wait.expect("an estimate was told on entering");
    let c = sim.engine.stats(sim.now).counters;
    assert_eq!(c.wait_seconds[&(q("a"), Outcome::Answered)].count, 2);
    assert_eq!((c.talk_seconds[&q("a")].count, c.talk_seconds[&q("a")].sum), (2, 120.0));
    let err = &c.ewt_error_seconds[&q("a")];
    assert_eq!(err.count, 2);
    let expect = (0.0 - told0.as_secs_f64()) + (100.0 - told1.as_secs_f64());
    assert!((err.sum - expect).abs() < 1e-6, "{} vs {expect}", err.sum);
}

#[test]
fn every_prompt_the_engine_says_exists_in_both_languages() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-scripts/prompts");
    let mut missing = Vec::new();
    for name in centralino::engine::engine_prompt_names() {
        for lang in ["it", "en"] {
            if !dir.join(lang).join(format!("{name}.wav")).exists() {
                missing.push(format!("{lang}/{name}"));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:?}");
}
