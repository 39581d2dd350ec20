//! The sans-IO decision core: calls' lifecycle, IVR runs, queues, opening hours.
//!
//! Owns: every decision about a call. Fed facts with `handle_input(now, input)` and
//! `handle_timeout(now)`; drained with `poll_output()` until `None`; woken at `poll_timeout()`.
//! Must not touch: sockets, tokio, sqlx, the clock, a global RNG (STYLE.md §4).
#![warn(missing_docs)]

pub mod call;
pub mod ids;
pub mod ivr;
pub mod schedule;
pub mod stats;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use call::{Call, CallRecord, CallView, Outcome, Stage, StageKind};
use ids::{CallId, DtmfDigit, Language, PromptId, QueueName};
use ivr::{IvrAction, IvrRun, IvrScripts};
use schedule::{OfficeState, Schedule};
use stats::{Counters, StatsSnapshot};

/// Both clocks as read once by the driver.
pub use crate::clock::Now;

/// A fact that happened, fed to the engine.
#[derive(Clone, Debug)]
pub enum Input {
    /// A new INVITE was accepted by SIP and media is ready to be set up.
    CallArrived {
        /// The new call's id.
        call: CallId,
        /// Caller number or SIP user.
        caller: String,
    },
    /// The caller's ACK arrived: media flows both ways.
    CallAnswered {
        /// Which call.
        call: CallId,
    },
    /// The caller pressed a key (RFC 4733 or SIP INFO).
    DigitPressed {
        /// Which call.
        call: CallId,
        /// The key.
        digit: DtmfDigit,
    },
    /// Media finished playing the prompts of `seq`.
    PlaybackFinished {
        /// Which call.
        call: CallId,
        /// The playback it finished.
        seq: u64,
    },
    /// The caller hung up, cancelled, or the call failed below the engine.
    CallEnded {
        /// Which call.
        call: CallId,
    },
    /// Shut down: end every call.
    ShutdownRequested,
}

/// A command for the drivers.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send 180 Ringing to the caller's INVITE.
    RingCall {
        /// Which call.
        call: CallId,
    },
    /// Send 200 OK to the caller's INVITE.
    AnswerCall {
        /// Which call.
        call: CallId,
    },
    /// Play prompts back to back; report `PlaybackFinished { seq }` at the end.
    Play {
        /// Which call.
        call: CallId,
        /// Playback sequence number.
        seq: u64,
        /// The prompts.
        prompts: Vec<PromptId>,
    },
    /// Loop music on hold until told otherwise.
    PlayMusic {
        /// Which call.
        call: CallId,
    },
    /// Stop whatever plays (barge-in).
    StopPlayback {
        /// Which call.
        call: CallId,
    },
    /// End the call from our side (BYE, or a final response if not answered).
    HangupCall {
        /// Which call.
        call: CallId,
    },
    /// A call ended: store and count it. The drivers release its resources.
    CallFinished(Box<CallRecord>),
}

/// A queue as the engine needs it.
#[derive(Clone, Debug)]
pub struct QueueSetup {
    /// The queue's name.
    pub name: QueueName,
    /// The desk's own hours; `None` follows the office's.
    pub hours: Option<Schedule>,
}

/// Prompts the engine itself plays (besides the IVR scripts'), in every language.
pub fn engine_prompt_names() -> Vec<String> {
    let mut names: Vec<String> =
        ["attesa", "arrivederci", "chiusura_coda", "sportello_chiuso"].iter().map(|s| s.to_string()).collect();
    names.extend(schedule::speech::all_fragment_names());
    names
}

/// The engine. See the module docs for the run loop contract.
pub struct Engine {
    ivr: Arc<IvrScripts>,
    schedule: Schedule,
    queues: BTreeMap<QueueName, Option<Schedule>>,
    calls: HashMap<CallId, Call>,
    /// Callers waiting per queue, oldest first.
    waiting: BTreeMap<QueueName, VecDeque<CallId>>,
    /// IVR deadlines, `(due, call)`; `deadline_of` mirrors it for removal.
    timers: BTreeSet<(Instant, CallId)>,
    deadline_of: HashMap<CallId, Instant>,
    outputs: VecDeque<Output>,
    counters: Counters,
    last_wall: Option<jiff::Timestamp>,
    shutting_down: bool,
    answer_delay: std::time::Duration,
    /// How long queued callers are still served after the office closes.
    drain: std::time::Duration,
    /// When to next look at the office's hours for draining queues.
    drain_check_at: Option<Instant>,
}

impl Engine {
    /// Builds an engine over validated IVR scripts, an office schedule and the queue names.
    pub fn new(ivr: Arc<IvrScripts>, schedule: Schedule, queues: impl IntoIterator<Item = QueueSetup>) -> Engine {
        let queues: BTreeMap<QueueName, Option<Schedule>> =
            queues.into_iter().map(|q| (q.name, q.hours)).collect();
        Engine {
            ivr,
            schedule,
            waiting: queues.keys().map(|q| (q.clone(), VecDeque::new())).collect(),
            queues,
            calls: HashMap::new(),
            timers: BTreeSet::new(),
            deadline_of: HashMap::new(),
            outputs: VecDeque::new(),
            counters: Counters::default(),
            last_wall: None,
            shutting_down: false,
            answer_delay: std::time::Duration::ZERO,
            drain: std::time::Duration::from_secs(15 * 60),
            drain_check_at: None,
        }
    }

    /// Serves queued callers this long after closing (default 15 minutes).
    pub fn with_drain(mut self, drain: std::time::Duration) -> Engine {
        self.drain = drain;
        self
    }

    /// Rings callers for `delay` before answering (0: answer at once).
    pub fn with_answer_delay(mut self, delay: std::time::Duration) -> Engine {
        self.answer_delay = delay;
        self
    }

    /// Feeds one fact. Drain `poll_output` afterwards.
    pub fn handle_input(&mut self, now: Now, input: Input) {
        self.last_wall = Some(now.wall);
        match input {
            Input::CallArrived { call, caller } => self.on_arrived(now, call, caller),
            Input::CallAnswered { call } => self.on_answered(now, &call),
            Input::DigitPressed { call, digit } => self.on_digit(now, &call, digit),
            Input::PlaybackFinished { call, seq } => self.on_playback_finished(now, &call, seq),
            Input::CallEnded { call } => self.on_caller_gone(now, &call),
            Input::ShutdownRequested => self.on_shutdown(now),
        }
        self.arm_drain_check(now);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        self.last_wall = Some(now.wall);
        if self.drain_check_at.is_some_and(|at| at <= now.instant) {
            self.drain_check_at = None;
            self.drain_queues_if_closed(now);
            self.arm_drain_check(now);
        }
        while let Some((due, call)) = self.timers.first().cloned() {
            if due > now.instant {
                break;
            }
            self.timers.remove(&(due, call.clone()));
            self.deadline_of.remove(&call);
            let Some(c) = self.calls.get_mut(&call) else { continue };
            match &mut c.stage {
                Stage::Ivr(run) => {
                    let actions = run.handle_timeout(&self.ivr, now.instant);
                    self.apply_ivr(now, &call, actions);
                }
                Stage::Ringing { answer_at } if *answer_at <= now.instant => {
                    c.stage = Stage::Answering;
                    self.outputs.push_back(Output::AnswerCall { call });
                }
                _ => {}
            }
        }
    }

    /// The next instant `handle_timeout` must be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let call_timer = self.timers.first().map(|(due, _)| *due);
        match (call_timer, self.drain_check_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next command for the drivers.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The live calls, for the admin API.
    pub fn calls(&self) -> Vec<CallView> {
        let mut views: Vec<CallView> = self.calls.values().map(Call::view).collect();
        views.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        views
    }

    /// Whether any call is still live (shutdown waits for none).
    pub fn has_calls(&self) -> bool {
        !self.calls.is_empty()
    }

    /// Counters plus gauges computed now from live state.
    pub fn stats(&self, now: Now) -> StatsSnapshot {
        let mut calls_active: BTreeMap<&'static str, u64> =
            StageKind::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        for c in self.calls.values() {
            *calls_active.entry(c.stage.kind().as_str()).or_default() += 1;
        }
        let queue_waiting = self
            .waiting
            .iter()
            .map(|(q, line)| {
                let oldest = line
                    .front()
                    .and_then(|id| self.calls.get(id))
                    .and_then(|c| c.queued_at)
                    .map(|t| now.instant.saturating_duration_since(t).as_secs_f64())
                    .unwrap_or(0.0);
                (q.clone(), (line.len() as u64, oldest))
            })
            .collect();
        StatsSnapshot {
            counters: self.counters.clone(),
            calls_active,
            queue_waiting,
            office_open: matches!(self.schedule.state_at_timestamp(now.wall), OfficeState::Open { .. }),
        }
    }

    /// The queue names this engine serves.
    pub fn queue_names(&self) -> impl Iterator<Item = &QueueName> {
        self.queues.keys()
    }

    fn on_arrived(&mut self, now: Now, id: CallId, caller: String) {
        if self.shutting_down || self.calls.contains_key(&id) {
            // The SIP layer answers 503 itself while shutting down; a duplicate id is a bug
            // upstream, and the first call keeps it.
            return;
        }
        let call = Call {
            id: id.clone(),
            caller,
            arrived_at: now.wall,
            arrived_instant: now.instant,
            stage: Stage::Ringing { answer_at: now.instant + self.answer_delay },
            language: Language::It,
            ivr_path: Vec::new(),
            queue: None,
            queued_at: None,
            last_seq: 0,
            hangup_after: None,
            music_after: None,
        };
        self.calls.insert(id.clone(), call);
        self.outputs.push_back(Output::RingCall { call: id.clone() });
        if self.answer_delay.is_zero() {
            if let Some(c) = self.calls.get_mut(&id) {
                c.stage = Stage::Answering;
            }
            self.outputs.push_back(Output::AnswerCall { call: id });
        } else {
            self.rearm_timer(&id);
        }
    }

    fn on_answered(&mut self, now: Now, id: &CallId) {
        let Some(call) = self.calls.get_mut(id) else { return };
        if !matches!(call.stage, Stage::Answering) {
            return;
        }
        match self.schedule.state_at_timestamp(now.wall) {
            OfficeState::Open { .. } => {
                let (run, actions) = IvrRun::start(&self.ivr, now.instant);
                call.stage = Stage::Ivr(run);
                self.apply_ivr(now, id, actions);
            }
            OfficeState::Closed { reason, opens_at } => {
                // The caller has not chosen a language yet: Italian first, then English.
                let prompts = Language::ALL
                    .iter()
                    .flat_map(|&lang| {
                        closed_message(&self.schedule, now, lang, schedule::speech::closed_reason_fragments(&reason), opens_at.as_ref())
                    })
                    .collect();
                call.stage = Stage::Closing;
                let seq = call.last_seq + 1;
                call.last_seq = seq;
                call.hangup_after = Some((seq, Outcome::Closed));
                self.outputs.push_back(Output::Play { call: id.clone(), seq, prompts });
            }
        }
    }

    fn on_digit(&mut self, now: Now, id: &CallId, digit: DtmfDigit) {
        self.counters.digits += 1;
        let Some(call) = self.calls.get_mut(id) else { return };
        if let Stage::Ivr(run) = &mut call.stage {
            let menu = run.current_menu().map(|m| m.to_string());
            let actions = run.handle_digit(&self.ivr, now.instant, digit);
            if let Some(menu) = menu {
                *self.counters.ivr_choices.entry((menu, digit.to_string())).or_default() += 1;
            }
            self.apply_ivr(now, id, actions);
        }
    }

    fn on_playback_finished(&mut self, now: Now, id: &CallId, seq: u64) {
        let Some(call) = self.calls.get_mut(id) else { return };
        if seq != call.last_seq {
            return;
        }
        if let Some((hangup_seq, outcome)) = call.hangup_after {
            if hangup_seq == seq {
                self.outputs.push_back(Output::HangupCall { call: id.clone() });
                self.finish(now, id, outcome);
                return;
            }
        }
        if call.music_after == Some(seq) {
            call.music_after = None;
            self.outputs.push_back(Output::PlayMusic { call: id.clone() });
            return;
        }
        if let Stage::Ivr(run) = &mut call.stage {
            let actions = run.handle_playback_finished(&self.ivr, now.instant, seq);
            self.apply_ivr(now, id, actions);
        }
    }

    fn on_caller_gone(&mut self, now: Now, id: &CallId) {
        let Some(call) = self.calls.get(id) else { return };
        let outcome = match &call.stage {
            Stage::Queued => Outcome::Abandoned,
            Stage::Closing => call.hangup_after.map(|(_, o)| o).unwrap_or(Outcome::IvrHangup),
            Stage::Ringing { .. } | Stage::Answering | Stage::Ivr(_) => Outcome::IvrHangup,
        };
        self.finish(now, id, outcome);
    }

    fn on_shutdown(&mut self, now: Now) {
        self.shutting_down = true;
        let ids: Vec<CallId> = self.calls.keys().cloned().collect();
        for id in ids {
            self.outputs.push_back(Output::HangupCall { call: id.clone() });
            self.finish(now, &id, Outcome::Interrupted);
        }
    }

    /// Applies what the IVR decided, then re-arms the call's IVR timer.
    fn apply_ivr(&mut self, now: Now, id: &CallId, actions: Vec<IvrAction>) {
        for action in actions {
            let Some(call) = self.calls.get_mut(id) else { return };
            match action {
                IvrAction::Play { seq, prompts } => {
                    call.last_seq = seq;
                    self.outputs.push_back(Output::Play { call: id.clone(), seq, prompts });
                }
                IvrAction::StopPlayback => {
                    self.outputs.push_back(Output::StopPlayback { call: id.clone() });
                }
                IvrAction::SetLanguage(lang) => call.language = lang,
                IvrAction::EnterQueue(queue) => self.enter_queue(now, id, queue),
                IvrAction::Hangup => {
                    self.outputs.push_back(Output::HangupCall { call: id.clone() });
                    self.finish(now, id, Outcome::Completed);
                    return;
                }
            }
        }
        self.rearm_timer(id);
    }

    fn enter_queue(&mut self, now: Now, id: &CallId, queue: QueueName) {
        let Some(call) = self.calls.get_mut(id) else { return };
        if let Stage::Ivr(run) = &call.stage {
            call.ivr_path = run.path().to_vec();
            call.language = run.language();
        }
        if let Some(Some(hours)) = self.queues.get(&queue) {
            if let OfficeState::Closed { opens_at, .. } = hours.state_at_timestamp(now.wall) {
                // The office is open but this desk is not: say so and when it reopens.
                let prompts = closed_message(hours, now, call.language, vec!["sportello_chiuso".into()], opens_at.as_ref());
                call.queue = Some(queue);
                call.stage = Stage::Closing;
                let seq = call.last_seq + 1;
                call.last_seq = seq;
                call.hangup_after = Some((seq, Outcome::Closed));
                self.outputs.push_back(Output::Play { call: id.clone(), seq, prompts });
                return;
            }
        }
        call.stage = Stage::Queued;
        call.queued_at = Some(now.instant);
        self.waiting.entry(queue.clone()).or_default().push_back(id.clone());
        call.queue = Some(queue);
        // Whatever the IVR queued to play (the transfer prompt) is followed by the waiting
        // prompt, then music on hold until an operator takes the call.
        let seq = call.last_seq + 1;
        call.last_seq = seq;
        call.music_after = Some(seq);
        let lang = call.language;
        self.outputs.push_back(Output::Play {
            call: id.clone(),
            seq,
            prompts: vec![PromptId::new(lang, "attesa")],
        });
    }

    /// Arms the next look at the office hours: the next closing plus the drain time.
    fn arm_drain_check(&mut self, now: Now) {
        if self.drain_check_at.is_some() {
            return;
        }
        let next = match self.schedule.state_at_timestamp(now.wall) {
            OfficeState::Open { closes_at: Some(closes_at) } => Some(closes_at.timestamp()),
            // Closed now: queued callers are drained once the closing is `drain` old. The
            // closing instant is not known here, so look again a drain period from now
            // unless nobody waits (then the next opening re-arms it).
            OfficeState::Closed { .. } if self.waiting.values().any(|w| !w.is_empty()) => Some(now.wall),
            _ => None,
        };
        if let Some(at) = next {
            let until = at.duration_since(now.wall).unsigned_abs();
            let until = if at > now.wall { until } else { std::time::Duration::ZERO };
            self.drain_check_at = Some(now.instant + until + self.drain);
        }
    }

    /// At the drain limit: callers still waiting hear the closing message and are ended.
    fn drain_queues_if_closed(&mut self, now: Now) {
        if self.schedule.state_at_timestamp(now.wall).is_open() {
            return;
        }
        let queued: Vec<CallId> = self.waiting.values().flatten().cloned().collect();
        for id in queued {
            for line in self.waiting.values_mut() {
                line.retain(|c| c != &id);
            }
            let Some(call) = self.calls.get_mut(&id) else { continue };
            let lang = call.language;
            call.stage = Stage::Closing;
            call.music_after = None;
            let seq = call.last_seq + 1;
            call.last_seq = seq;
            call.hangup_after = Some((seq, Outcome::Closed));
            let prompts = vec![PromptId::new(lang, "chiusura_coda"), PromptId::new(lang, "arrivederci")];
            self.outputs.push_back(Output::Play { call: id, seq, prompts });
        }
    }

    /// Re-arms the call's one timer from its stage (IVR no-input, or ringing → answer).
    fn rearm_timer(&mut self, id: &CallId) {
        if let Some(old) = self.deadline_of.remove(id) {
            self.timers.remove(&(old, id.clone()));
        }
        let due = match self.calls.get(id).map(|c| &c.stage) {
            Some(Stage::Ivr(run)) => run.poll_timeout(),
            Some(Stage::Ringing { answer_at }) => Some(*answer_at),
            _ => None,
        };
        if let Some(due) = due {
            self.timers.insert((due, id.clone()));
            self.deadline_of.insert(id.clone(), due);
        }
    }

    /// Removes a call and emits its record. Idempotent.
    fn finish(&mut self, now: Now, id: &CallId, outcome: Outcome) {
        let Some(mut call) = self.calls.remove(id) else { return };
        if let Some(old) = self.deadline_of.remove(id) {
            self.timers.remove(&(old, id.clone()));
        }
        if let Stage::Ivr(run) = &call.stage {
            call.ivr_path = run.path().to_vec();
            call.language = run.language();
        }
        let mut wait = None;
        if let Some(queue) = &call.queue {
            if let Some(line) = self.waiting.get_mut(queue) {
                line.retain(|c| c != id);
            }
            wait = call.queued_at.map(|t| now.instant.saturating_duration_since(t));
            *self.counters.queue_exits.entry((queue.clone(), outcome)).or_default() += 1;
        }
        *self.counters.calls_by_outcome.entry(outcome).or_default() += 1;
        self.outputs.push_back(Output::CallFinished(Box::new(CallRecord {
            id: call.id,
            caller: call.caller,
            started_at: call.arrived_at,
            ended_at: now.wall,
            language: call.language,
            ivr_path: call.ivr_path,
            queue: call.queue,
            outcome,
            wait,
        })));
    }
}

/// A closed message in one language: why, when it reopens, goodbye.
fn closed_message(
    schedule: &Schedule,
    now: Now,
    lang: Language,
    why: Vec<String>,
    opens_at: Option<&jiff::Zoned>,
) -> Vec<PromptId> {
    let mut names = why;
    if let Some(opens_at) = opens_at {
        let here = now.wall.to_zoned(schedule.time_zone().clone());
        names.extend(schedule::speech::reopening_fragments(opens_at, &here, speech_lang(lang)));
    }
    names.push("arrivederci".to_string());
    names.into_iter().map(|n| PromptId::new(lang, n)).collect()
}

fn speech_lang(lang: Language) -> schedule::speech::SpeechLang {
    match lang {
        Language::It => schedule::speech::SpeechLang::It,
        Language::En => schedule::speech::SpeechLang::En,
    }
}
