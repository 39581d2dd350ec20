//! Operators take calls: engine scenarios on simulated time (no sockets, no clock), with a
//! programmatic IVR (1 → queue `a`, 2 → queue `b`, 9 → English) from `engine_sim`.

mod engine_sim;

use std::time::Duration;

use centralino::engine::call::Outcome;
use centralino::engine::ids::Language;
use centralino::engine::operators::OperatorState;
use centralino::engine::{Input, Output, QueueEventKind, Strategy};
use engine_sim::*;

const S: fn(u64) -> Duration = Duration::from_secs;

/// Queues a and b with defaults and the strategy, operators registered one second apart
/// (so the first registered is idle the longest).
fn sim_with(strategy: Strategy, accounts: Vec<centralino::engine::operators::OperatorAccount>) -> Sim {
    let names: Vec<String> = accounts.iter().map(|a| a.id.0.clone()).collect();
    let mut sim = Sim::new(Sim::queues(|s| s.strategy = strategy), accounts, 1);
    for n in names {
        sim.register(&n);
        sim.advance(S(1));
    }
    sim
}

#[test]
fn a_caller_is_offered_answered_bridged_and_hanging_up_ends_the_operator_leg_then_wrap_up() {
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op1", &["a"])]);
    let out = sim.caller("c1", "1");
    let offer = out.iter().find(|o| matches!(o, Output::OfferToOperator { .. })).expect("an offer");
    let Output::OfferToOperator { call, operator, queue, theme, caller, language, ivr_path } = offer else { unreachable!() };
    assert_eq!((call.0.as_str(), operator.0.as_str(), queue.0.as_str()), ("c1", "op1", "a"));
    assert_eq!((theme.as_str(), caller.as_str(), *language), ("A", "333c1", Language::It));
    assert_eq!(ivr_path, &vec!["main:1".to_string()]);
    assert_eq!(events(&out, QueueEventKind::EnterQueue).len(), 1);
    assert_eq!(state_of(&sim, "op1"), "ringing");
    assert_eq!(sim.engine.stats(sim.now).calls_active["ringing"], 1);

    sim.advance(S(4));
    let out = sim.answer("c1", "op1");
    assert!(out.iter().any(|o| matches!(o, Output::Bridge { call, operator } if call.0 == "c1" && operator.0 == "op1")), "{out:?}");
    assert_eq!(events(&out, QueueEventKind::Connect)[0].2, vec!["4".to_string(), "c1".into(), "4".into()]);
    assert_eq!(state_of(&sim, "op1"), "on_call");
    let stats = sim.engine.stats(sim.now);
    assert_eq!((stats.calls_active["connected"], stats.calls_active["ringing"]), (1, 0));
    assert_eq!(stats.queue_waiting[&q("a")].0, 0, "a connected caller no longer waits");
    assert_eq!(sim.engine.calls()[0].operator.as_deref(), Some("op1"));

    sim.advance(S(60));
    let out = sim.input(Input::CallEnded { call: cid("c1") });
    assert!(out.iter().any(|o| matches!(o, Output::HangupOperator { operator, .. } if operator.0 == "op1")), "{out:?}");
    assert_eq!(events(&out, QueueEventKind::CompleteCaller)[0].2, vec!["4".to_string(), "60".into(), "1".into()]);
    let r = records(&out)[0];
    assert_eq!(r.outcome, Outcome::Answered);
    assert_eq!((r.wait, r.talk, r.operator.as_ref().map(|o| o.0.as_str())), (Some(S(4)), Some(S(60)), Some("op1")));
    assert!(r.answered_at.is_some());
    assert_eq!(state_of(&sim, "op1"), "wrap_up");
    let out = sim.advance(S(10));
    assert!(out.iter().any(|o| matches!(o, Output::OperatorStateChanged { state: OperatorState::Available, .. })), "{out:?}");
    let view = &sim.engine.operators()[0];
    assert_eq!((view.calls_taken, view.talk_seconds, view.current_call.as_deref()), (1, 60, None));
}

#[test]
fn the_operator_hanging_up_ends_the_caller() {
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op1", &["a"])]);
    sim.caller("c1", "1");
    sim.answer("c1", "op1");
    sim.advance(S(30));
    let out = sim.input(Input::OperatorLegEnded { call: cid("c1"), operator: op("op1") });
    assert!(out.iter().any(|o| matches!(o, Output::HangupCall { call } if call.0 == "c1")), "{out:?}");
    assert!(!out.iter().any(|o| matches!(o, Output::HangupOperator { .. })));
    assert_eq!(events(&out, QueueEventKind::CompleteAgent).len(), 1);
    assert_eq!(records(&out)[0].outcome, Outcome::Answered);
    assert!(!sim.engine.has_calls());
}

#[test]
fn no_answer_within_the_ring_timeout_goes_to_the_next_operator_after_the_retry_delay() {
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op1", &["a"]), account("op2", &["a"])]);
    assert_eq!(offers(&sim.caller("c1", "1")), [("c1".into(), "op1".into())], "op1 idle the longest");
    let out = sim.advance(S(20));
    assert_eq!(cancels(&out), [("c1".into(), "op1".into())]);
    assert_eq!(events(&out, QueueEventKind::RingNoAnswer)[0].2, vec!["20000".to_string()]);
    assert!(offers(&out).is_empty(), "not before the retry delay");
    assert_eq!(sim.engine.stats(sim.now).calls_active["queued"], 1);
    let out = sim.advance(S(2));
    assert_eq!(offers(&out), [("c1".into(), "op2".into())]);
    assert_eq!(sim.engine.stats(sim.now).counters.ring_no_answer[&q("a")], 1);
}

#[test]
fn a_busy_rejection_goes_to_the_next_operator_at_once_and_is_not_a_miss() {
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op1", &["a"]), account("op2", &["a"])]);
    sim.caller("c1", "1");
    let out = sim.input(Input::OfferRejected { call: cid("c1"), operator: op("op1"), busy: true });
    assert_eq!(offers(&out), [("c1".into(), "op2".into())]);
    assert!(events(&out, QueueEventKind::RingNoAnswer).is_empty());
    // op2 declines (not busy): a miss; op1 is tried again only after the retry delay.
    let out = sim.input(Input::OfferRejected { call: cid("c1"), operator: op("op2"), busy: false });
    assert_eq!(events(&out, QueueEventKind::RingNoAnswer).len(), 1);
    assert!(offers(&out).is_empty(), "{out:?}");
    assert_eq!(offers(&sim.advance(S(2))), [("c1".into(), "op1".into())]);
}

#[test]
fn consecutive_misses_pause_the_operator_with_reason_no_answer() {
    let mut sim = Sim::new(Sim::queues(|s| s.auto_pause_after = 2), vec![account("op1", &["a", "b"])], 1);
    sim.register("op1");
    sim.caller("c1", "1");
    let out = sim.advance(S(20 + 2 + 20));
    assert_eq!(offers(&out), [("c1".into(), "op1".into())], "offered again after the retry delay");
    let pauses = events(&out, QueueEventKind::Pause);
    assert_eq!(pauses.len(), 2, "one PAUSE per queue served: {pauses:?}");
    assert_eq!(pauses[0].2, vec!["no answer".to_string()]);
    assert_eq!(state_of(&sim, "op1"), "paused");
    assert_eq!(sim.engine.operators()[0].reason.as_deref(), Some("no answer"));
    assert!(out.iter().any(|o| matches!(o, Output::OperatorStateChanged { state: OperatorState::Paused, reason: Some(r), .. } if r == "no answer")));
    assert!(offers(&sim.advance(S(120))).is_empty(), "a paused operator is never offered a call");
    let out = sim.input(Input::OperatorResumed { operator: op("op1") });
    assert_eq!(events(&out, QueueEventKind::Unpause).len(), 2);
    assert_eq!(offers(&out), [("c1".into(), "op1".into())]);
    // The count restarts after a resume.
    assert!(events(&sim.advance(S(20)), QueueEventKind::Pause).is_empty());
}

#[test]
fn wrap_up_keeps_the_next_caller_waiting_until_it_ends() {
    let mut sim = Sim::new(Sim::queues(|s| s.wrap_up = S(15)), vec![account("op1", &["a"])], 1);
    sim.register("op1");
    sim.caller("c1", "1");
    sim.answer("c1", "op1");
    assert!(offers(&sim.caller("c2", "1")).is_empty(), "never ring a busy phone");
    sim.input(Input::CallEnded { call: cid("c1") });
    assert!(offers(&sim.advance(S(14))).is_empty());
    assert_eq!(offers(&sim.advance(S(1))), [("c2".into(), "op1".into())]);
}

#[test]
fn pause_and_resume_and_a_pause_during_a_call_takes_effect_after_it_without_wrap_up() {
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op1", &["a"])]);
    let out = sim.input(Input::OperatorPaused { operator: op("op1"), reason: "pranzo".into() });
    assert_eq!(events(&out, QueueEventKind::Pause)[0].2, vec!["pranzo".to_string()]);
    assert!(offers(&sim.caller("c1", "1")).is_empty());
    assert_eq!(offers(&sim.input(Input::OperatorResumed { operator: op("op1") })), [("c1".into(), "op1".into())]);
    sim.answer("c1", "op1");
    sim.input(Input::OperatorPaused { operator: op("op1"), reason: "pausa".into() });
    assert_eq!(state_of(&sim, "op1"), "on_call");
    sim.input(Input::CallEnded { call: cid("c1") });
    assert_eq!(state_of(&sim, "op1"), "paused", "no wrap-up after a call when a pause waits");
    sim.advance(S(60));
    assert_eq!(state_of(&sim, "op1"), "paused");
}

#[test]
fn a_pause_while_ringing_cancels_the_offer_and_the_caller_moves_on_at_once() {
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op1", &["a"]), account("op2", &["a"])]);
    sim.caller("c1", "1");
    let out = sim.input(Input::OperatorPaused { operator: op("op1"), reason: "x".into() });
    assert_eq!(cancels(&out), [("c1".into(), "op1".into())]);
    assert_eq!(offers(&out), [("c1".into(), "op2".into())]);
    assert!(events(&out, QueueEventKind::RingNoAnswer).is_empty());
}

#[test]
fn an_operator_serving_two_queues_takes_the_longest_waiting_caller_first() {
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op1", &["a", "b"])]);
    sim.caller("x", "1");
    sim.answer("x", "op1");
    sim.caller("b1", "2");
    sim.advance(S(5));
    sim.caller("a1", "1");
    sim.input(Input::CallEnded { call: cid("x") });
    assert_eq!(offers(&sim.advance(S(10))), [("b1".into(), "op1".into())], "b1 waited longer");
}

#[test]
fn a_higher_priority_queue_is_served_first_by_shared_operators() {
    let queues = Sim::queues(|s| {
        if s.name.0 == "a" {
            s.priority = 5;
        }
    });
    let mut sim = Sim::new(queues, vec![account("op1", &["a", "b"])], 1);
    sim.register("op1");
    sim.caller("x", "2");
    sim.answer("x", "op1");
    sim.caller("b1", "2");
    sim.advance(S(5));
    sim.caller("a1", "1");
    sim.input(Input::CallEnded { call: cid("x") });
    assert_eq!(offers(&sim.advance(S(10))), [("a1".into(), "op1".into())]);
}

#[test]
fn an_operator_is_offered_one_call_even_when_both_queues_want_them_at_once() {
    let mut sim = Sim::new(Sim::queues(|_| {}), vec![account("op1", &["a", "b"])], 1);
    sim.caller("a1", "1");
    sim.caller("b1", "2");
    let out = sim.register("op1");
    assert_eq!(offers(&out), [("a1".into(), "op1".into())]);
}

#[test]
fn a_registration_expiring_mid_ring_cancels_the_offer_and_the_caller_goes_to_the_next_operator() {
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op1", &["a"]), account("op2", &["a"])]);
    sim.caller("c1", "1");
    let out = sim.input(Input::OperatorUnregistered { operator: op("op1") });
    assert_eq!(cancels(&out), [("c1".into(), "op1".into())]);
    assert_eq!(offers(&out), [("c1".into(), "op2".into())]);
    assert_eq!(state_of(&sim, "op1"), "offline");
    // op1's late 200 OK crossed the CANCEL: its leg is hung up, not bridged.
    let out = sim.answer("c1", "op1");
    assert!(matches!(out.as_slice(), [Output::HangupOperator { .. }]), "{out:?}");
    assert!(offers(&sim.advance(S(60))).iter().all(|(_, o)| o != "op1"), "offline is never offered");
}

#[test]
fn a_caller_hanging_up_mid_ring_cancels_the_offer_at_once_as_abandoned() {
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op1", &["a"])]);
    sim.caller("c0", "1");
    sim.caller("c1", "1");
    sim.advance(S(7));
    let out = sim.input(Input::CallEnded { call: cid("c0") });
    assert_eq!(cancels(&out), [("c0".into(), "op1".into())]);
    assert_eq!(events(&out, QueueEventKind::Abandon)[0].2, vec!["1".to_string(), "1".into(), "7".into()]);
    assert_eq!(records(&out)[0].outcome, Outcome::Abandoned);
    assert_eq!(offers(&out), [("c1".into(), "op1".into())], "the freed operator takes the next caller");
}

#[test]
fn an_english_caller_goes_to_an_english_speaker_first_then_anyone_after_the_language_wait() {
    let mut en = account("op_en", &["a"]);
    en.languages = vec![Language::It, Language::En];
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op_it", &["a"]), en]);
    // Both free, op_it idle longer: the English caller still goes to op_en.
    let out = sim.caller("e1", "91");
    assert_eq!(offers(&out), [("e1".into(), "op_en".into())]);
    let Some(Output::OfferToOperator { language, .. }) = out.iter().find(|o| matches!(o, Output::OfferToOperator { .. })) else { panic!() };
    assert_eq!(*language, Language::En);
    sim.answer("e1", "op_en");
    // op_en is busy: a second English caller waits for them, then anyone after 30 s.
    assert!(offers(&sim.caller("e2", "91")).is_empty());
    assert!(offers(&sim.advance(S(29))).is_empty());
    assert_eq!(offers(&sim.advance(S(1))), [("e2".into(), "op_it".into())]);
}

#[test]
fn round_robin_takes_turns_in_username_order() {
    let mut sim = sim_with(Strategy::RoundRobin, vec![account("op1", &["a"]), account("op2", &["a"]), account("op3", &["a"])]);
    let mut got = Vec::new();
    for n in 0..4 {
        let id = format!("c{n}");
        let o = offers(&sim.caller(&id, "1"));
        got.push(o[0].1.clone());
        sim.answer(&id, &o[0].1);
        sim.input(Input::CallEnded { call: cid(&id) });
        sim.advance(S(10));
    }
    assert_eq!(got, ["op1", "op2", "op3", "op1"]);
}

#[test]
fn ring_all_rings_everyone_free_and_the_first_answer_cancels_the_others() {
    let mut sim = sim_with(Strategy::RingAll, vec![account("op1", &["a"]), account("op2", &["a"]), account("op3", &["a"])]);
    sim.input(Input::OperatorPaused { operator: op("op3"), reason: "x".into() });
    let out = sim.caller("c1", "1");
    assert_eq!(offers(&out), [("c1".into(), "op1".into()), ("c1".into(), "op2".into())]);
    assert!(offers(&sim.caller("c2", "1")).is_empty(), "nobody is free for the second caller");
    let out = sim.answer("c1", "op2");
    assert_eq!(cancels(&out), [("c1".into(), "op1".into())]);
    assert!(events(&out, QueueEventKind::RingNoAnswer).is_empty(), "cancelled, not missed");
    assert!(out.iter().any(|o| matches!(o, Output::Bridge { operator, .. } if operator.0 == "op2")));
    assert_eq!(offers(&out), [("c2".into(), "op1".into())], "op1 is free again for the next caller");
}

#[test]
fn ring_all_with_nobody_answering_rings_everyone_again_after_the_retry_delay() {
    let mut sim = sim_with(Strategy::RingAll, vec![account("op1", &["a"]), account("op2", &["a"])]);
    sim.caller("c1", "1");
    let out = sim.advance(S(20));
    assert_eq!(cancels(&out).len(), 2);
    assert_eq!(offers(&sim.advance(S(2))).len(), 2);
}

#[test]
fn fewest_calls_and_least_talk_time_pick_by_their_counters() {
    for (strategy, expect) in [(Strategy::FewestCalls, "op2"), (Strategy::LeastTalkTime, "op1")] {
        let mut sim = sim_with(strategy, vec![account("op1", &["a"]), account("op2", &["a"])]);
        // op1 takes two short calls, op2 one long call.
        for (call, operator, talk) in [("x1", "op1", 5), ("x2", "op1", 5), ("y1", "op2", 100)] {
            sim.caller(call, "1");
            let out = sim.answer(call, operator);
            if !out.iter().any(|o| matches!(o, Output::Bridge { .. })) {
                // The strategy offered the other operator: hand the call over by rejecting.
                let other = if operator == "op1" { "op2" } else { "op1" };
                sim.input(Input::OfferRejected { call: cid(call), operator: op(other), busy: true });
                sim.answer(call, operator);
            }
            sim.advance(S(talk));
            sim.input(Input::CallEnded { call: cid(call) });
            sim.advance(S(30));
        }
        assert_eq!(offers(&sim.caller("c", "1"))[0].1, expect, "{strategy}");
    }
}

#[test]
fn linear_always_starts_with_the_lowest_level() {
    let mut senior = account("zed", &[]);
    senior.queues = vec![(q("a"), 0)];
    let mut junior = account("amy", &[]);
    junior.queues = vec![(q("a"), 5)];
    let mut sim = sim_with(Strategy::Linear, vec![junior, senior]);
    for n in 0..3 {
        let id = format!("c{n}");
        assert_eq!(offers(&sim.caller(&id, "1"))[0].1, "zed");
        sim.answer(&id, "zed");
        sim.input(Input::CallEnded { call: cid(&id) });
        sim.advance(S(10));
    }
}

#[test]
fn longest_idle_prefers_the_operator_whose_last_call_ended_first() {
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op1", &["a"]), account("op2", &["a"])]);
    sim.caller("x", "1");
    sim.answer("x", "op1");
    sim.caller("y", "1");
    sim.answer("y", "op2");
    sim.input(Input::CallEnded { call: cid("y") });
    sim.advance(S(5));
    sim.input(Input::CallEnded { call: cid("x") });
    sim.advance(S(30));
    assert_eq!(offers(&sim.caller("c", "1"))[0].1, "op2");
}

#[test]
fn an_operator_with_two_lines_is_offered_a_second_call_while_talking() {
    let mut two = account("op1", &["a"]);
    two.max_calls = 2;
    let mut sim = sim_with(Strategy::LongestIdle, vec![two]);
    sim.caller("c1", "1");
    sim.answer("c1", "op1");
    assert_eq!(offers(&sim.caller("c2", "1")), [("c2".into(), "op1".into())]);
    assert!(offers(&sim.caller("c3", "1")).is_empty());
}

#[test]
fn stats_count_operators_by_queue_and_state_with_zeros() {
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op1", &["a", "b"]), account("op2", &["a"])]);
    sim.input(Input::OperatorLoggedOut { operator: op("op2") });
    let ops = sim.engine.stats(sim.now).operators;
    assert_eq!(ops.len(), 2 * 6);
    assert_eq!((ops[&(q("a"), "available")], ops[&(q("a"), "offline")], ops[&(q("b"), "available")]), (1, 1, 1));
    assert_eq!(ops[&(q("b"), "paused")], 0);
    assert_eq!(state_of(&sim, "op2"), "offline");
    assert!(!sim.engine.operators()[1].logged_in);
    assert_eq!(offers(&sim.input(Input::OperatorLoggedIn { operator: op("op2") })).len(), 0);
    assert_eq!(state_of(&sim, "op2"), "available");
}

#[test]
fn a_directory_reload_takes_a_removed_operator_offline_while_their_call_continues() {
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op1", &["a"]), account("op2", &["a"])]);
    sim.caller("c1", "1");
    sim.answer("c1", "op1");
    let out = sim.input(Input::DirectoryLoaded { operators: vec![account("op2", &["a"])] });
    assert!(out.iter().all(|o| !matches!(o, Output::HangupOperator { .. } | Output::HangupCall { .. })));
    assert_eq!(sim.engine.operators().len(), 1);
    let out = sim.input(Input::OperatorLegEnded { call: cid("c1"), operator: op("op1") });
    assert_eq!(records(&out)[0].outcome, Outcome::Answered);
    assert!(out.iter().any(|o| matches!(o, Output::OperatorStateChanged { state: OperatorState::Offline, operator, .. } if operator.0 == "op1")), "{out:?}");
}

#[test]
fn shutdown_cancels_offers_and_hangs_up_operator_legs() {
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op1", &["a"]), account("op2", &["a"])]);
    sim.caller("c1", "1");
    sim.answer("c1", "op1");
    sim.caller("c2", "1");
    let out = sim.input(Input::ShutdownRequested);
    assert_eq!(cancels(&out), [("c2".into(), "op2".into())]);
    assert!(out.iter().any(|o| matches!(o, Output::HangupOperator { operator, .. } if operator.0 == "op1")));
    assert_eq!(records(&out).iter().filter(|r| r.outcome == Outcome::Interrupted).count(), 2);
    assert!(offers(&out).is_empty());
}

#[test]
fn music_on_hold_is_not_started_after_the_operator_answered_during_the_waiting_prompt() {
    let mut sim = sim_with(Strategy::LongestIdle, vec![account("op1", &["a"])]);
    let out = sim.caller("c1", "1");
    let seq = out.iter().rev().find_map(|o| if let Output::Play { seq, .. } = o { Some(*seq) } else { None }).unwrap();
    sim.answer("c1", "op1");
    let out = sim.input(Input::PlaybackFinished { call: cid("c1"), seq });
    assert!(out.is_empty(), "{out:?}");
}
