//! A small engine harness on simulated time, shared by the operator scenarios and the
//! invariants: a programmatic IVR (menu `main`: 1 → queue `a`, 2 → queue `b`, 9 → English
//! menu `main_en` with the same choices), an office open all day, and helpers to
//! drive callers and operators. Needs only the engine. The office is open 06:00–22:00 every
//! day (no holidays) and simulated time starts on a Friday at 10:00, so no test reaches a
//! closing; a schedule without any closing would also work but costs the schedule a long scan
//! for the next change on every call.
#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use centralino::clock::Now;
use centralino::engine::call::CallRecord;
use centralino::engine::ids::{CallId, DtmfDigit, Language, OperatorId, PromptId, QueueName};
use centralino::engine::ivr::{IvrScripts, Menu, MenuId, Target};
use centralino::engine::operators::OperatorAccount;
use centralino::engine::schedule::ScheduleSpec;
use centralino::engine::{Engine, Input, Output, QueueEventKind, QueueSetup};

pub fn q(name: &str) -> QueueName {
    QueueName(name.into())
}

pub fn op(name: &str) -> OperatorId {
    OperatorId(name.into())
}

pub fn cid(name: &str) -> CallId {
    CallId(name.into())
}

fn menu(id: &str, lang: Language) -> Menu {
    let to = |queue: &str| Target::Queue { queue: q(queue), prompts: vec![] };
    let mut options = BTreeMap::from([('1', to("a")), ('2', to("b"))]);
    if lang == Language::It {
        options.insert('9', Target::Language { lang: Language::En, menu: MenuId::new("main_en") });
    }
    Menu {
        id: MenuId::new(id),
        lang,
        prompts: vec![PromptId::new(lang, "menu")],
        options,
        timeout: Duration::from_secs(5),
        retries: 1,
        on_timeout: Target::Hangup { prompts: vec![] },
        invalid_prompts: vec![],
    }
}

pub fn ivr() -> IvrScripts {
    IvrScripts::new(MenuId::new("main"), vec![], [menu("main", Language::It), menu("main_en", Language::En)])
        .expect("a consistent IVR")
}

/// An account serving `queues` at level 0, Italian only, one call at a time.
pub fn account(name: &str, queues: &[&str]) -> OperatorAccount {
    let mut a = OperatorAccount::new(op(name));
    a.queues = queues.iter().map(|n| (q(n), 0)).collect();
    a
}

pub struct Sim {
    pub engine: Engine,
    pub now: Now,
    pub t0: Instant,
}

impl Sim {
    /// An engine with these queues and operators (none registered yet).
    pub fn new(queues: Vec<QueueSetup>, operators: Vec<OperatorAccount>, seed: u64) -> Sim {
        let all_day = || vec!["06:00-22:00".to_string()];
        let spec = ScheduleSpec {
            monday: all_day(),
            tuesday: all_day(),
            wednesday: all_day(),
            thursday: all_day(),
            friday: all_day(),
            saturday: all_day(),
            sunday: all_day(),
            holidays: "none".into(),
            extra_holidays: vec![],
            ..ScheduleSpec::default()
        };
        let engine = Engine::new(Arc::new(ivr()), spec.compile().expect("a valid schedule"), queues).with_rng_seed(seed);
        #[allow(clippy::disallowed_methods)] // the test's arbitrary origin of simulated time
        let instant = Instant::now();
        let now = Now { instant, wall: "2026-11-27T10:00:00+01:00".parse().unwrap() };
        let mut sim = Sim { engine, now, t0: instant };
        sim.input(Input::DirectoryLoaded { operators });
        sim
    }

    /// The two test queues with defaults, then `tweak` applied to each.
    pub fn queues(tweak: impl Fn(&mut QueueSetup)) -> Vec<QueueSetup> {
        ["a", "b"]
            .iter()
            .map(|n| {
                let mut s = QueueSetup::new(q(n));
                tweak(&mut s);
                s
            })
            .collect()
    }

    pub fn input(&mut self, input: Input) -> Vec<Output> {
        self.engine.handle_input(self.now, input);
        self.drain()
    }

    pub fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.engine.poll_output()).collect()
    }

    /// Advances simulated time by `d`, firing every timer due on the way.
    pub fn advance(&mut self, d: Duration) -> Vec<Output> {
        let end = self.now.instant + d;
        let mut all = Vec::new();
        while let Some(due) = self.engine.poll_timeout().filter(|t| *t <= end) {
            self.set_instant(due);
            self.engine.handle_timeout(self.now);
            all.extend(self.drain());
        }
        self.set_instant(end);
        all
    }

    fn set_instant(&mut self, t: Instant) {
        let delta = t.saturating_duration_since(self.now.instant);
        self.now.instant = t;
        self.now.wall += jiff::SignedDuration::try_from(delta).unwrap();
    }

    pub fn register(&mut self, name: &str) -> Vec<Output> {
        self.input(Input::OperatorRegistered { operator: op(name) })
    }

    /// A caller arrives, answers and presses `digits` (e.g. "1" for queue a, "91" for a in English).
    pub fn caller(&mut self, call: &str, digits: &str) -> Vec<Output> {
        let mut out = self.input(Input::CallArrived { call: cid(call), caller: format!("333{call}") });
        out.extend(self.input(Input::CallAnswered { call: cid(call) }));
        for ch in digits.chars() {
            out.extend(self.input(Input::DigitPressed { call: cid(call), digit: DtmfDigit::from_char(ch).unwrap() }));
        }
        out
    }

    pub fn answer(&mut self, call: &str, operator: &str) -> Vec<Output> {
        self.input(Input::OfferAnswered { call: cid(call), operator: op(operator) })
    }
}

/// `(call, operator)` of every offer in `out`.
pub fn offers(out: &[Output]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::OfferToOperator { call, operator, .. } => Some((call.0.clone(), operator.0.clone())),
            _ => None,
        })
        .collect()
}

/// `(call, operator)` of every cancelled offer in `out`.
pub fn cancels(out: &[Output]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::CancelOffer { call, operator } => Some((call.0.clone(), operator.0.clone())),
            _ => None,
        })
        .collect()
}

pub fn records(out: &[Output]) -> Vec<&CallRecord> {
    out.iter().filter_map(|o| if let Output::CallFinished(r) = o { Some(r.as_ref()) } else { None }).collect()
}

/// The queue events of `kind` in `out`, as `(call, operator, data)`.
pub fn events(out: &[Output], kind: QueueEventKind) -> Vec<(String, Option<String>, Vec<String>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::QueueEvent(e) if e.kind == kind => {
                Some((e.call.0.clone(), e.operator.as_ref().map(|o| o.0.clone()), e.data.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The operator's state as the admin API shows it.
pub fn state_of(sim: &Sim, name: &str) -> &'static str {
    sim.engine.operators().into_iter().find(|v| v.username == name).map(|v| v.state).unwrap_or("unknown")
}
