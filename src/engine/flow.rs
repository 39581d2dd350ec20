//! The caller's side of a call: arrival, answer, IVR, closed hours, draining at closing,
//! hanging up, shutdown, and the final record.
//!
//! Owns: the `impl Engine` methods that move a [`Call`] through its stages up to the IVR's
//! choice of a queue, and [`Engine::finish`], the one place a call ends (exactly one
//! `CallFinished` per call). A hang-up while waiting or while an operator's phone rings is
//! `abandoned`, with the wait and the position (ABANDON).
//! Must not touch: joining a queue and its limits (`join.rs`), what a waiting caller hears
//! (`announce.rs`), exits (`exits.rs`), which operator is offered a caller (`offer.rs`),
//! operators' presence (`presence.rs`).

use std::time::Duration;

use super::call::{Call, CallRecord, Outcome, Stage};
use super::ids::{CallId, DtmfDigit, Language, PromptId};
use super::ivr::{IvrAction, IvrRun};
use super::queue::QueueEventKind;
use super::schedule::{self, OfficeState, Schedule};
use super::timers::TimerKey;
use super::{Engine, Now, Output};

impl Engine {
    pub(super) fn on_arrived(&mut self, now: Now, id: CallId, caller: String) {
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
            left_queue_at: None,
            priority: 0,
            overflows: 0,
            announced_wait: None,
            entry_estimate: None,
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
            self.rearm_call_timer(&id);
        }
    }

    /// The call's own timer: IVR no-input, or the end of the answer delay.
    pub(super) fn on_call_timer(&mut self, now: Now, id: &CallId) {
        let Some(c) = self.calls.get_mut(id) else { return };
        match &mut c.stage {
            Stage::Ivr(run) => {
                let actions = run.handle_timeout(&self.ivr, now.instant);
                self.apply_ivr(now, id, actions);
            }
            Stage::Ringing { answer_at } if *answer_at <= now.instant => {
                c.stage = Stage::Answering;
                self.outputs.push_back(Output::AnswerCall { call: id.clone() });
            }
            _ => {}
        }
    }

    pub(super) fn on_answered(&mut self, now: Now, id: &CallId) {
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
                        let why = schedule::speech::closed_reason_fragments(&reason);
                        closed_message(&self.schedule, now, lang, why, opens_at.as_ref())
                    })
                    .collect();
                play_then_hang_up(&mut self.outputs, call, prompts, Outcome::Closed);
            }
        }
    }

    pub(super) fn on_digit(&mut self, now: Now, id: &CallId, digit: DtmfDigit) {
        self.counters.digits += 1;
        if matches!(self.calls.get(id).map(|c| &c.stage), Some(Stage::Answering)) {
            // A key can only come over an established call: the ACK is on its way through
            // another transaction (SIPp sends ACK and INFO back to back). Start the call now
            // rather than lose the key.
            self.on_answered(now, id);
        }
        let Some(call) = self.calls.get_mut(id) else { return };
        if let Stage::Queued(_) = &call.stage {
            self.on_queued_digit(now, id, digit);
        } else if let Stage::Ivr(run) = &mut call.stage {
            let menu = run.current_menu().map(|m| m.to_string());
            let actions = run.handle_digit(&self.ivr, now.instant, digit);
            if let Some(menu) = menu {
                *self.counters.ivr_choices.entry((menu, digit.to_string())).or_default() += 1;
            }
            self.apply_ivr(now, id, actions);
        }
    }

    pub(super) fn on_playback_finished(&mut self, now: Now, id: &CallId, seq: u64) {
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

    /// The caller hung up: abandoned if waiting (offers cancelled), answered if connected
    /// (the operator's leg is hung up too).
    pub(super) fn on_caller_gone(&mut self, now: Now, id: &CallId) {
        let Some(call) = self.calls.get(id) else { return };
        let outcome = match &call.stage {
            Stage::Queued(_) => {
                if let Some(exit) = self.leave_queue(id) {
                    let wait = now.instant.saturating_duration_since(exit.queued_at);
                    self.counters.observe_wait(&exit.queue, Outcome::Abandoned, wait);
                    let data = vec![exit.position.to_string(), exit.original_position.to_string(), secs(now, exit.queued_at)];
                    self.queue_event(now, id, &exit.queue, None, QueueEventKind::Abandon, data);
                }
                Outcome::Abandoned
            }
            Stage::Connected(c) => {
                let operator = c.operator.clone();
                self.outputs.push_back(Output::HangupOperator { call: id.clone(), operator: operator.clone() });
                self.complete(now, id, QueueEventKind::CompleteCaller);
                Outcome::Answered
            }
            Stage::Closing => call.hangup_after.map(|(_, o)| o).unwrap_or(Outcome::IvrHangup),
            Stage::Ringing { .. } | Stage::Answering | Stage::Ivr(_) => Outcome::IvrHangup,
        };
        self.finish(now, id, outcome);
    }

    pub(super) fn on_shutdown(&mut self, now: Now) {
        self.shutting_down = true;
        let mut ids: Vec<CallId> = self.calls.keys().cloned().collect();
        ids.sort();
        for id in ids {
            if let Some(Stage::Connected(c)) = self.calls.get(&id).map(|c| &c.stage) {
                let operator = c.operator.clone();
                self.outputs.push_back(Output::HangupOperator { call: id.clone(), operator });
            }
            self.outputs.push_back(Output::HangupCall { call: id.clone() });
            self.finish(now, &id, Outcome::Interrupted);
        }
    }

    /// Applies what the IVR decided, then re-arms the call's IVR timer. Prompts played just
    /// before entering a queue (the transfer prompt) go with the queue's message on entering:
    /// a new playback replaces the one playing, so they cannot be two.
    pub(super) fn apply_ivr(&mut self, now: Now, id: &CallId, actions: Vec<IvrAction>) {
        let mut actions = actions.into_iter().peekable();
        let mut lead = Vec::new();
        while let Some(action) = actions.next() {
            let Some(call) = self.calls.get_mut(id) else { return };
            match action {
                IvrAction::Play { seq, prompts } => {
                    call.last_seq = seq;
                    if matches!(actions.peek(), Some(IvrAction::EnterQueue(_))) {
                        lead = prompts;
                    } else {
                        self.outputs.push_back(Output::Play { call: id.clone(), seq, prompts });
                    }
                }
                IvrAction::StopPlayback => {
                    self.outputs.push_back(Output::StopPlayback { call: id.clone() });
                }
                IvrAction::SetLanguage(lang) => call.language = lang,
                IvrAction::EnterQueue(queue) => self.enter_queue(now, id, queue, std::mem::take(&mut lead)),
                IvrAction::Hangup => {
                    self.outputs.push_back(Output::HangupCall { call: id.clone() });
                    self.finish(now, id, Outcome::Completed);
                    return;
                }
            }
        }
        self.rearm_call_timer(id);
    }

    /// Arms the next look at the office hours: the next closing plus the drain time.
    pub(super) fn arm_drain_check(&mut self, now: Now) {
        if self.timers.is_set(&TimerKey::DrainCheck) {
            return;
        }
        let next = match self.schedule.state_at_timestamp(now.wall) {
            OfficeState::Open { closes_at: Some(closes_at) } => Some(closes_at.timestamp()),
            // Open with no closing in sight (e.g. around the clock): look again in a day rather
            // than recomputing the hours on every input.
            OfficeState::Open { closes_at: None } => {
                self.timers.set(TimerKey::DrainCheck, now.instant + Duration::from_secs(24 * 3600));
                return;
            }
            // Closed now: queued callers are drained once the closing is `drain` old. The
            // closing instant is not known here, so look again a drain period from now
            // unless nobody waits (then the next opening re-arms it).
            OfficeState::Closed { .. } if self.queues.values().any(|q| q.len() > 0) => Some(now.wall),
            _ => None,
        };
        if let Some(at) = next {
            let until = if at > now.wall { at.duration_since(now.wall).unsigned_abs() } else { Duration::ZERO };
            self.timers.set(TimerKey::DrainCheck, now.instant + until + self.drain);
        }
    }

    /// At the drain limit: callers still waiting (offers cancelled) hear the closing message
    /// and are ended. Callers talking to an operator carry on.
    pub(super) fn drain_queues_if_closed(&mut self, now: Now) {
        if self.schedule.state_at_timestamp(now.wall).is_open() {
            return;
        }
        let queued: Vec<CallId> = self.queues.values().flat_map(|q| q.callers().cloned().collect::<Vec<_>>()).collect();
        for id in queued {
            if let Some(exit) = self.leave_queue(&id) {
                let wait = now.instant.saturating_duration_since(exit.queued_at);
                self.counters.observe_wait(&exit.queue, Outcome::Closed, wait);
                let data = vec![exit.position.to_string(), exit.original_position.to_string(), secs(now, exit.queued_at)];
                self.queue_event(now, &id, &exit.queue, None, QueueEventKind::ExitWithTimeout, data);
            }
            let Some(call) = self.calls.get_mut(&id) else { continue };
            call.left_queue_at = Some(now.instant);
            let lang = call.language;
            call.music_after = None;
            let prompts = vec![PromptId::new(lang, "chiusura_coda"), PromptId::new(lang, "arrivederci")];
            play_then_hang_up(&mut self.outputs, call, prompts, Outcome::Closed);
        }
    }

    /// Re-arms the call's own timer from its stage (IVR no-input, or ringing → answer).
    fn rearm_call_timer(&mut self, id: &CallId) {
        let key = TimerKey::Call(id.clone());
        let due = match self.calls.get(id).map(|c| &c.stage) {
            Some(Stage::Ivr(run)) => run.poll_timeout(),
            Some(Stage::Ringing { answer_at }) => Some(*answer_at),
            _ => None,
        };
        match due {
            Some(due) => self.timers.set(key, due),
            None => self.timers.cancel(&key),
        }
    }

    /// Removes a call and emits its record: the one place a call ends. Outstanding offers are
    /// cancelled and a connected operator is released (the caller of `finish` emits the
    /// hang-up of whichever leg is still up). Idempotent.
    pub(super) fn finish(&mut self, now: Now, id: &CallId, outcome: Outcome) {
        self.leave_queue(id);
        self.timers.cancel(&TimerKey::Call(id.clone()));
        let Some(mut call) = self.calls.remove(id) else { return };
        if let Stage::Ivr(run) = &call.stage {
            extend_path(&mut call.ivr_path, run.path());
            call.language = run.language();
        }
        let left = call.left_queue_at.unwrap_or(now.instant);
        let mut record = CallRecord {
            id: call.id.clone(),
            caller: std::mem::take(&mut call.caller),
            started_at: call.arrived_at,
            ended_at: now.wall,
            language: call.language,
            ivr_path: std::mem::take(&mut call.ivr_path),
            queue: call.queue.clone(),
            outcome,
            wait: call.queued_at.map(|t| left.saturating_duration_since(t)),
            operator: None,
            answered_at: None,
            talk: None,
            announced_wait: call.announced_wait,
        };
        if let Stage::Connected(c) = &call.stage {
            let talk = now.instant.saturating_duration_since(c.answered_at);
            self.release_operator(now, &c.operator, id, talk, call.queue.as_ref());
            if let Some(queue) = &call.queue {
                if let Some(q) = self.queues.get_mut(queue) {
                    q.history.observe_talk(talk);
                }
                if let Some(h) = self.counters.talk_seconds.get_mut(queue) {
                    h.observe(talk.as_secs_f64());
                }
            }
            record.wait = Some(c.hold);
            record.operator = Some(c.operator.clone());
            record.answered_at = Some(c.answered_wall);
            record.talk = Some(talk);
        }
        if let Some(queue) = &call.queue {
            *self.counters.queue_exits.entry((queue.clone(), outcome)).or_default() += 1;
        }
        *self.counters.calls_by_outcome.entry(outcome).or_default() += 1;
        self.outputs.push_back(Output::CallFinished(Box::new(record)));
    }
}

/// The longest menu path kept on a call (a caller going back and forth stays bounded).
const MAX_PATH: usize = 64;

/// Appends IVR choices to a call's path, up to [`MAX_PATH`].
pub(super) fn extend_path(path: &mut Vec<String>, more: &[String]) {
    let room = MAX_PATH.saturating_sub(path.len());
    path.extend(more.iter().take(room).cloned());
}

/// Plays `prompts`, then hangs up with `outcome` when they finish.
pub(super) fn play_then_hang_up(outputs: &mut std::collections::VecDeque<Output>, call: &mut Call, prompts: Vec<PromptId>, outcome: Outcome) {
    call.stage = Stage::Closing;
    let seq = call.last_seq + 1;
    call.last_seq = seq;
    call.hangup_after = Some((seq, outcome));
    outputs.push_back(Output::Play { call: call.id.clone(), seq, prompts });
}

/// Whole seconds since `since`, as queue_log data.
pub(super) fn secs(now: Now, since: std::time::Instant) -> String {
    now.instant.saturating_duration_since(since).as_secs().to_string()
}

/// A closed message in one language: why, when it reopens, goodbye.
pub(super) fn closed_message(
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
