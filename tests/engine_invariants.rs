//! Invariants of operators taking calls, over random event sequences on simulated time:
//! random arrivals, IVR digits, answers, rejections, hang-ups on both sides, pauses, logins,
//! registrations, directory reloads, time advances, exit keys and callers' priorities, under
//! random queue settings (limits and overflows included).
//!
//! Checked after every output, from the outputs alone (the model below mirrors what the
//! runtime would know):
//! - no operator has more offers + calls than their max calls;
//! - no caller is offered to two operators at once, except by a ring-all queue;
//! - a paused, logged-out, unregistered or removed operator is never offered a call;
//! - FIFO: an offer never skips an older caller of the same queue who was never offered
//!   (checked when no caller has a priority and no queue overflows: those order by priority
//!   and first join time instead);
//! - every bridge is to an operator whose phone was ringing for that caller;
//! - no caller is lost: every call ends in exactly one `CallFinished`, with no offer or
//!   operator leg left behind (a final shutdown ends the rest).

mod engine_sim;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use centralino::engine::ids::Language;
use centralino::engine::operators::OperatorAccount;
use centralino::engine::{ExitTo, Input, NoOperators, Output, QueueEventKind, QueueSetup, Strategy as Routing};
use engine_sim::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const OPERATORS: usize = 4;

#[derive(Clone, Debug)]
struct OperatorSpec {
    queues: u8,
    max_calls: u32,
    langs: u8,
}

#[derive(Clone, Debug)]
struct QueueSpec {
    strategy: usize,
    ring_timeout: u64,
    retry: u64,
    wrap_up: u64,
    language_wait: u64,
    priority: i32,
    auto_pause: u32,
    /// Limits and exits: bit 0 max wait, 1 overflow to the other queue, 2 max 2 callers,
    /// 3 exit key `#` (to the overflow target when bit 4), 5 no operators: overflow.
    limits: u8,
}

#[derive(Clone, Debug)]
enum Step {
    /// A caller arrives and presses 1 (queue a), 2 (queue b) or nothing (IVR hang-up later).
    Arrive(u8),
    Answer(usize),
    Reject(usize, bool),
    /// An answer for any (call, operator) pair, even one never offered or already cancelled.
    StrayAnswer(usize, usize),
    CallerHangup(usize),
    OperatorHangup(usize),
    Pause(usize),
    Resume(usize),
    Register(usize),
    Unregister(usize),
    Login(usize),
    Logout(usize),
    /// Reload the directory without the operators in the mask.
    Reload(u8),
    Advance(u64),
    /// A live caller presses `#` (the exit key, where configured).
    Exit(usize),
    /// A live caller is given a priority.
    Priority(usize, i32),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0u8..3).prop_map(Step::Arrive),
        5 => any::<usize>().prop_map(Step::Answer),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(k, b)| Step::Reject(k, b)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(k, o)| Step::StrayAnswer(k, o)),
        2 => any::<usize>().prop_map(Step::CallerHangup),
        2 => any::<usize>().prop_map(Step::OperatorHangup),
        1 => (0..OPERATORS).prop_map(Step::Pause),
        1 => (0..OPERATORS).prop_map(Step::Resume),
        3 => (0..OPERATORS).prop_map(Step::Register),
        1 => (0..OPERATORS).prop_map(Step::Unregister),
        1 => (0..OPERATORS).prop_map(Step::Login),
        1 => (0..OPERATORS).prop_map(Step::Logout),
        1 => (0u8..4).prop_map(Step::Reload),
        4 => (0u64..45).prop_map(Step::Advance),
        1 => any::<usize>().prop_map(Step::Exit),
        1 => (any::<usize>(), -1i32..3).prop_map(|(k, p)| Step::Priority(k, p)),
    ]
}

fn operator_spec() -> impl Strategy<Value = OperatorSpec> {
    (1u8..4, 1u32..3, 0u8..3).prop_map(|(queues, max_calls, langs)| OperatorSpec { queues, max_calls, langs })
}

fn queue_spec() -> impl Strategy<Value = QueueSpec> {
    (0usize..6, 3u64..25, 0u64..4, 0u64..15, 0u64..40, -1i32..2, 0u32..4, prop_oneof![Just(0u8), any::<u8>()]).prop_map(
        |(strategy, ring_timeout, retry, wrap_up, language_wait, priority, auto_pause, limits)| QueueSpec {
            strategy,
            ring_timeout,
            retry,
            wrap_up,
            language_wait,
            priority,
            auto_pause,
            limits,
        },
    )
}

fn accounts(specs: &[OperatorSpec]) -> Vec<OperatorAccount> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let names: Vec<&str> = [(1, "a"), (2, "b")].iter().filter(|(bit, _)| s.queues & bit != 0).map(|(_, n)| *n).collect();
            let mut a = account(&format!("op{i}"), &names);
            a.max_calls = s.max_calls;
            a.languages = match s.langs {
                0 => vec![Language::It],
                1 => vec![Language::En],
                _ => vec![Language::It, Language::En],
            };
            a
        })
        .collect()
}

/// What the runtime would know, rebuilt from inputs and outputs.
#[derive(Default)]
struct Model {
    max_calls: BTreeMap<String, usize>,
    in_directory: BTreeSet<String>,
    registered: BTreeSet<String>,
    logged_out: BTreeSet<String>,
    paused: BTreeSet<String>,
    ring_all: BTreeSet<String>,
    live: BTreeSet<String>,
    finished: BTreeMap<String, u32>,
    ringing: BTreeMap<String, BTreeSet<String>>,
    connected: BTreeMap<String, String>,
    /// Per queue, callers in the order they entered; and those never offered yet.
    entered: BTreeMap<String, Vec<String>>,
    fresh: BTreeSet<String>,
    queue_of: BTreeMap<String, String>,
    /// Whether FIFO by ENTERQUEUE order is checked (not with priorities or overflows, which
    /// order callers by priority and first join time instead).
    fifo: bool,
}

impl Model {
    fn load(&self, op: &str) -> usize {
        self.ringing.values().filter(|s| s.contains(op)).count() + self.connected.values().filter(|o| *o == op).count()
    }

    fn observe(&mut self, out: &[Output]) -> Result<(), TestCaseError> {
        for o in out {
            match o {
                Output::QueueEvent(e) => {
                    let op = e.operator.as_ref().map(|o| o.0.clone());
                    match e.kind {
                        QueueEventKind::EnterQueue => {
                            self.entered.entry(e.queue.0.clone()).or_default().push(e.call.0.clone());
                            self.fresh.insert(e.call.0.clone());
                            self.queue_of.insert(e.call.0.clone(), e.queue.0.clone());
                        }
                        QueueEventKind::Abandon
                        | QueueEventKind::ExitWithTimeout
                        | QueueEventKind::ExitWithKey
                        | QueueEventKind::Overflow => {
                            self.fresh.remove(&e.call.0);
                        }
                        QueueEventKind::Pause => {
                            self.paused.insert(op.unwrap());
                        }
                        QueueEventKind::Unpause => {
                            self.paused.remove(&op.unwrap());
                        }
                        _ => {}
                    }
                }
                Output::OfferToOperator { call, operator, queue, .. } => {
                    let (c, op) = (call.0.clone(), operator.0.clone());
                    prop_assert!(self.live.contains(&c), "offer for a call not live: {c}");
                    prop_assert!(self.in_directory.contains(&op), "{op} removed yet offered {c}");
                    prop_assert!(self.registered.contains(&op), "{op} unregistered yet offered {c}");
                    prop_assert!(!self.logged_out.contains(&op), "{op} logged out yet offered {c}");
                    prop_assert!(!self.paused.contains(&op), "{op} paused yet offered {c}");
                    let rung = self.ringing.entry(c.clone()).or_default();
                    prop_assert!(!rung.contains(&op), "{op} offered {c} twice");
                    prop_assert!(
                        rung.is_empty() || self.ring_all.contains(&queue.0),
                        "{c} offered to {op} while {rung:?} still ring"
                    );
                    rung.insert(op.clone());
                    let line = &self.entered[&queue.0];
                    let me = line.iter().rposition(|x| *x == c).unwrap();
                    if let Some(skipped) = line[..me].iter().find(|x| self.fifo && **x != c && self.fresh.contains(*x)) {
                        prop_assert!(false, "{c} offered before the older, never-offered {skipped} in {}", queue.0);
                    }
                    self.fresh.remove(&c);
                    prop_assert!(self.load(&op) <= self.max_calls[&op], "{op} over max calls");
                }
                Output::CancelOffer { call, operator } => {
                    let removed = self.ringing.get_mut(&call.0).is_some_and(|s| s.remove(&operator.0));
                    prop_assert!(removed, "cancel of an offer not ringing: {call} {operator}");
                }
                Output::Bridge { call, operator } => {
                    let rang = self.ringing.get_mut(&call.0).is_some_and(|s| s.remove(&operator.0));
                    prop_assert!(rang, "bridge without a ringing offer: {call} {operator}");
                    prop_assert!(self.connected.insert(call.0.clone(), operator.0.clone()).is_none());
                }
                Output::HangupOperator { call, operator } if self.connected.get(&call.0) == Some(&operator.0) => {
                    self.connected.remove(&call.0);
                }
                Output::HangupCall { call } => {
                    self.connected.remove(&call.0);
                }
                Output::CallFinished(r) => {
                    let c = r.id.0.clone();
                    prop_assert!(self.live.remove(&c), "finished twice or never arrived: {c}");
                    *self.finished.entry(c.clone()).or_default() += 1;
                    prop_assert!(self.ringing.get(&c).is_none_or(|s| s.is_empty()), "{c} ended with phones ringing");
                    prop_assert!(!self.connected.contains_key(&c), "{c} ended with the operator leg up");
                    self.fresh.remove(&c);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn run(ops: Vec<OperatorSpec>, queues: Vec<QueueSpec>, steps: Vec<Step>, seed: u64) -> Result<(), TestCaseError> {
    let accounts = accounts(&ops);
    let setups: Vec<QueueSetup> = ["a", "b"]
        .iter()
        .zip(&queues)
        .map(|(n, s)| QueueSetup {
            strategy: Routing::ALL[s.strategy],
            ring_timeout: Duration::from_secs(s.ring_timeout),
            retry_delay: Duration::from_secs(s.retry),
            wrap_up: Duration::from_secs(s.wrap_up),
            language_wait: Duration::from_secs(s.language_wait),
            priority: s.priority,
            auto_pause_after: s.auto_pause,
            max_wait: (s.limits & 1 != 0).then(|| Duration::from_secs(30)),
            overflow: (s.limits & 2 != 0).then(|| q(if *n == "a" { "b" } else { "a" })),
            max_callers: (s.limits & 4 != 0).then_some(2),
            exit_key: (s.limits & 8 != 0).then_some(centralino::engine::ids::DtmfDigit::Pound),
            exit_to: if s.limits & 16 != 0 { ExitTo::Overflow } else { ExitTo::MainMenu },
            when_no_operators: if s.limits & 32 != 0 { NoOperators::Overflow } else { NoOperators::Join },
            announce_interval: Some(Duration::from_secs(20)),
            ..QueueSetup::new(q(n))
        })
        .collect();
    let mut model = Model { fifo: queues.iter().all(|s| s.limits & 2 == 0), ..Model::default() };
    for s in &setups {
        if s.strategy == Routing::RingAll {
            model.ring_all.insert(s.name.0.clone());
        }
    }
    for a in &accounts {
        model.max_calls.insert(a.id.0.clone(), a.max_calls as usize);
        model.in_directory.insert(a.id.0.clone());
    }
    let mut sim = Sim::new(setups, accounts.clone(), seed);
    model.observe(&sim.drain())?;
    let mut next_call = 0;
    let name = |i: usize| format!("op{i}");
    for step in steps {
        let out = match step {
            Step::Arrive(d) => {
                next_call += 1;
                let id = format!("c{next_call}");
                model.live.insert(id.clone());
                let digits = match d {
                    1 => "1",
                    2 => "2",
                    _ => "",
                };
                sim.caller(&id, digits)
            }
            Step::Answer(k) | Step::Reject(k, _) => {
                let pairs: Vec<(String, String)> =
                    model.ringing.iter().flat_map(|(c, s)| s.iter().map(move |o| (c.clone(), o.clone()))).collect();
                if pairs.is_empty() {
                    continue;
                }
                let (c, o) = pairs[k % pairs.len()].clone();
                match step {
                    Step::Answer(_) => sim.answer(&c, &o),
                    Step::Reject(_, busy) => {
                        model.ringing.get_mut(&c).unwrap().remove(&o);
                        sim.input(Input::OfferRejected { call: cid(&c), operator: op(&o), busy })
                    }
                    _ => unreachable!(),
                }
            }
            Step::StrayAnswer(k, o) => {
                if next_call == 0 {
                    continue;
                }
                let c = format!("c{}", 1 + k % next_call);
                let o = name(o % OPERATORS);
                if model.ringing.get(&c).is_some_and(|s| s.contains(&o)) {
                    sim.answer(&c, &o)
                } else {
                    // Not ringing: never bridged; a leg that is not the bridged one is hung up.
                    let bridged = model.connected.get(&c) == Some(&o);
                    let out = sim.answer(&c, &o);
                    prop_assert!(!out.iter().any(|x| matches!(x, Output::Bridge { .. })), "{out:?}");
                    let hung_up = matches!(out.first(), Some(Output::HangupOperator { call, operator }) if call.0 == c && operator.0 == o);
                    prop_assert_eq!(hung_up, !bridged, "{:?}", out);
                    out
                }
            }
            Step::CallerHangup(k) => {
                let live: Vec<String> = model.live.iter().cloned().collect();
                if live.is_empty() {
                    continue;
                }
                sim.input(Input::CallEnded { call: cid(&live[k % live.len()]) })
            }
            Step::OperatorHangup(k) => {
                let pairs: Vec<(String, String)> = model.connected.iter().map(|(c, o)| (c.clone(), o.clone())).collect();
                if pairs.is_empty() {
                    continue;
                }
                let (c, o) = pairs[k % pairs.len()].clone();
                model.connected.remove(&c);
                sim.input(Input::OperatorLegEnded { call: cid(&c), operator: op(&o) })
            }
            Step::Pause(i) => {
                model.paused.insert(name(i));
                sim.input(Input::OperatorPaused { operator: op(&name(i)), reason: "pausa".into() })
            }
            Step::Resume(i) => {
                model.paused.remove(&name(i));
                sim.input(Input::OperatorResumed { operator: op(&name(i)) })
            }
            Step::Register(i) => {
                model.registered.insert(name(i));
                sim.input(Input::OperatorRegistered { operator: op(&name(i)) })
            }
            Step::Unregister(i) => {
                model.registered.remove(&name(i));
                sim.input(Input::OperatorUnregistered { operator: op(&name(i)) })
            }
            Step::Login(i) => {
                model.logged_out.remove(&name(i));
                sim.input(Input::OperatorLoggedIn { operator: op(&name(i)) })
            }
            Step::Logout(i) => {
                model.logged_out.insert(name(i));
                sim.input(Input::OperatorLoggedOut { operator: op(&name(i)) })
            }
            Step::Reload(mask) => {
                let kept: Vec<OperatorAccount> =
                    accounts.iter().enumerate().filter(|(i, _)| mask & (1 << i) == 0).map(|(_, a)| a.clone()).collect();
                model.in_directory = kept.iter().map(|a| a.id.0.clone()).collect();
                sim.input(Input::DirectoryLoaded { operators: kept })
            }
            Step::Advance(s) => sim.advance(Duration::from_secs(s)),
            Step::Exit(k) | Step::Priority(k, _) => {
                let live: Vec<String> = model.live.iter().cloned().collect();
                if live.is_empty() {
                    continue;
                }
                let call = cid(&live[k % live.len()]);
                match step {
                    Step::Exit(_) => sim.input(Input::DigitPressed { call, digit: centralino::engine::ids::DtmfDigit::Pound }),
                    Step::Priority(_, priority) => {
                        model.fifo = false;
                        sim.input(Input::CallerPriority { call, priority })
                    }
                    _ => unreachable!(),
                }
            }
        };
        model.observe(&out)?;
    }
    let out = sim.input(Input::ShutdownRequested);
    model.observe(&out)?;
    prop_assert!(model.live.is_empty(), "calls lost: {:?}", model.live);
    prop_assert!(model.finished.values().all(|n| *n == 1));
    prop_assert_eq!(model.finished.len(), next_call);
    prop_assert!(model.ringing.values().all(|s| s.is_empty()), "offers left ringing: {:?}", model.ringing);
    prop_assert!(model.connected.is_empty(), "operator legs left up: {:?}", model.connected);
    prop_assert!(!sim.engine.has_calls());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn operators_take_calls_fairly_without_double_booking_or_losing_anyone(
        ops in proptest::collection::vec(operator_spec(), OPERATORS),
        queues in proptest::collection::vec(queue_spec(), 2),
        steps in proptest::collection::vec(step(), 1..120),
        seed in any::<u64>(),
    ) {
        run(ops, queues, steps, seed)?;
    }
}
