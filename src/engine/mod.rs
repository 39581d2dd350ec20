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

/// The engine. See the module docs for the run loop contract.
pub struct Engine {
    ivr: Arc<IvrScripts>,
    schedule: Schedule,
    queues: BTreeSet<QueueName>,
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
}

impl Engine {
    /// Builds an engine over validated IVR scripts, an office schedule and the queue names.
    pub fn new(ivr: Arc<IvrScripts>, schedule: Schedule, queues: impl IntoIterator<Item = QueueName>) -> Engine {
        let queues: BTreeSet<QueueName> = queues.into_iter().collect();
        Engine {
            ivr,
            schedule,
            waiting: queues.iter().map(|q| (q.clone(), VecDeque::new())).collect(),
            queues,
            calls: HashMap::new(),
            timers: BTreeSet::new(),
            deadline_of: HashMap::new(),
            outputs: VecDeque::new(),
            counters: Counters::default(),
            last_wall: None,
            shutting_down: false,
            answer_delay: std::time::Duration::ZERO,
        }
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
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        self.last_wall = Some(now.wall);
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
        self.timers.first().map(|(due, _)| *due)
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
        self.queues.iter()
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
                let lang = call.language;
                let mut names = schedule::speech::closed_reason_fragments(&reason);
                if let Some(opens_at) = opens_at {
                    let here = now.wall.to_zoned(self.schedule.time_zone().clone());
                    names.extend(schedule::speech::reopening_fragments(&opens_at, &here, speech_lang(lang)));
                }
                names.push("arrivederci".to_string());
                let prompts = names.into_iter().map(|n| PromptId::new(lang, n)).collect();
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

fn speech_lang(lang: Language) -> schedule::speech::SpeechLang {
    match lang {
        Language::It => schedule::speech::SpeechLang::It,
        Language::En => schedule::speech::SpeechLang::En,
    }
}
