//! Joining a queue: the desk's own hours, the limits on entering (a full queue, no operator
//! logged in), the place in the line, the queue's timers and the message on entering; moving
//! a caller on to an overflow target; a caller's priority.
//!
//! Owns: the `impl Engine` methods that put a caller in a line or refuse them.
//! Decisions: a caller moved from another queue keeps the time they first joined and their
//! entry order, so they are placed among the callers there by how long they have waited;
//! the max wait counts from entering each queue. At most [`MAX_OVERFLOWS`] moves per call,
//! so queues overflowing to each other cannot loop; past that, or with no target, the caller
//! hears why and is hung up (outcome `overflow`). Nothing is ever promised that the system
//! does not do (no "we will call you back").
//! Must not touch: what the caller hears while waiting (`announce.rs`), leaving a line
//! (`offer.rs`, `exits.rs`).

use std::time::Instant;

use super::call::{Outcome, Stage, Waiting};
use super::flow::{closed_message, extend_path, play_then_hang_up};
use super::ids::{CallId, PromptId, QueueName};
use super::queue::{NoOperators, QueueEventKind};
use super::schedule::OfficeState;
use super::timers::TimerKey;
use super::{Engine, Now};

/// The most times one call is moved to an overflow target.
pub(super) const MAX_OVERFLOWS: u32 = 3;

/// Why a caller was not let into a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// The queue had `max_callers` waiting.
    Full,
    /// No operator of the queue was logged in.
    NoOperators(NoOperators),
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::Full => "full",
            Refusal::NoOperators(_) => "no_operators",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::Full => "coda_piena",
            Refusal::NoOperators(_) => "nessun_operatore",
        }
    }

    fn may_overflow(self) -> bool {
        !matches!(self, Refusal::NoOperators(NoOperators::Message))
    }
}

impl Engine {
    /// The IVR chose `queue` for the caller; `lead` is what it wanted played first (the
    /// transfer prompt), heard together with the message on entering.
    pub(super) fn enter_queue(&mut self, now: Now, id: &CallId, queue: QueueName, lead: Vec<PromptId>) {
        let Some(call) = self.calls.get_mut(id) else { return };
        if let Stage::Ivr(run) = &call.stage {
            extend_path(&mut call.ivr_path, run.path());
            call.language = run.language();
        }
        self.join(now, id, queue, lead, None);
    }

    /// Puts the caller in `queue_name`, or refuses them (see the module docs). `kept` is the
    /// join time and entry order of a caller moved from another queue.
    pub(super) fn join(&mut self, now: Now, id: &CallId, queue_name: QueueName, lead: Vec<PromptId>, kept: Option<(Instant, u64)>) {
        let Some(call) = self.calls.get_mut(id) else { return };
        call.queue = Some(queue_name.clone());
        let Some(queue) = self.queues.get_mut(&queue_name) else {
            // The scripts and overflow targets are validated against the configured queues;
            // hang up rather than leave the caller in a line nobody serves.
            let bye = vec![PromptId::new(call.language, "arrivederci")];
            play_then_hang_up(&mut self.outputs, call, bye, Outcome::Completed);
            return;
        };
        if let Some(hours) = &queue.setup.hours {
            if let OfficeState::Closed { opens_at, .. } = hours.state_at_timestamp(now.wall) {
                // The office is open but this desk is not: say so and when it reopens.
                let why = vec!["sportello_chiuso".into()];
                let mut prompts = lead;
                prompts.extend(closed_message(hours, now, call.language, why, opens_at.as_ref()));
                play_then_hang_up(&mut self.outputs, call, prompts, Outcome::Closed);
                return;
            }
        }
        let policy = queue.setup.when_no_operators;
        if queue.setup.max_callers.is_some_and(|max| queue.len() >= max) {
            self.refuse(now, id, &queue_name, Refusal::Full, lead, kept);
            return;
        }
        if policy != NoOperators::Join && !self.board.logged_in().any(|op| op.account.level_in(&queue_name).is_some()) {
            self.refuse(now, id, &queue_name, Refusal::NoOperators(policy), lead, kept);
            return;
        }
        let Some(queue) = self.queues.get_mut(&queue_name) else { return };
        let Some(call) = self.calls.get_mut(id) else { return };
        let (joined, seq) = kept.unwrap_or_else(|| {
            self.entry_seq += 1;
            (now.instant, self.entry_seq)
        });
        let position = queue.push(id.clone(), call.priority, joined, seq);
        call.stage = Stage::Queued(Waiting::new(now.instant, position, call.priority, seq));
        call.queued_at = Some(joined);
        call.left_queue_at = None;
        let language_wait_over = joined + queue.setup.language_wait;
        if language_wait_over > now.instant {
            self.timers.set(TimerKey::LanguageWait(id.clone()), language_wait_over);
        }
        if let Some(max_wait) = queue.setup.max_wait {
            self.timers.set(TimerKey::MaxWait(id.clone()), now.instant + max_wait);
        }
        *self.counters.queue_entered.entry(queue_name.clone()).or_default() += 1;
        let data = vec![String::new(), call.caller.clone(), position.to_string()];
        self.queue_event(now, id, &queue_name, None, QueueEventKind::EnterQueue, data);
        self.play_entry_message(now, id, &queue_name, position, lead);
    }

    /// Sends the caller refused by `queue` to its overflow target, or tells them why and
    /// hangs up (outcome `overflow`). OVERFLOW is logged either way.
    fn refuse(&mut self, now: Now, id: &CallId, queue: &QueueName, why: Refusal, lead: Vec<PromptId>, kept: Option<(Instant, u64)>) {
        let target = if why.may_overflow() { self.overflow_target(id, queue) } else { None };
        let to = target.as_ref().map(|t| t.0.clone()).unwrap_or_default();
        let data = vec![why.reason().to_string(), to, "0".into(), "0".into(), "0".into()];
        self.queue_event(now, id, queue, None, QueueEventKind::Overflow, data);
        match target {
            Some(target) => {
                self.count_overflow(id, queue);
                self.join(now, id, target, lead, kept);
            }
            None => {
                let Some(call) = self.calls.get_mut(id) else { return };
                if call.queued_at.is_some() {
                    call.left_queue_at = Some(now.instant);
                }
                let lang = call.language;
                let mut prompts = lead;
                prompts.extend([why.message(), "arrivederci"].map(|n| PromptId::new(lang, n)));
                play_then_hang_up(&mut self.outputs, call, prompts, Outcome::Overflow);
            }
        }
    }

    /// Where a caller leaving `queue` may overflow to: its target, if it is another
    /// configured queue and the call has not been moved [`MAX_OVERFLOWS`] times.
    pub(super) fn overflow_target(&self, id: &CallId, queue: &QueueName) -> Option<QueueName> {
        let target = self.queues.get(queue)?.setup.overflow.clone()?;
        let moves = self.calls.get(id)?.overflows;
        (target != *queue && self.queues.contains_key(&target) && moves < MAX_OVERFLOWS).then_some(target)
    }

    /// Counts a caller leaving `queue` for its overflow target.
    pub(super) fn count_overflow(&mut self, id: &CallId, queue: &QueueName) {
        *self.counters.queue_exits.entry((queue.clone(), Outcome::Overflow)).or_default() += 1;
        if let Some(call) = self.calls.get_mut(id) {
            call.overflows += 1;
        }
    }

    /// The caller's priority (a priority line, a returning caller): higher is served first.
    /// A waiting caller moves to their place among the new priority, keeping their join time.
    pub(super) fn on_caller_priority(&mut self, id: &CallId, priority: i32) {
        let Some(call) = self.calls.get_mut(id) else { return };
        call.priority = priority;
        let Stage::Queued(w) = &mut call.stage else { return };
        w.priority = priority;
        if let Some(queue) = call.queue.as_ref().and_then(|q| self.queues.get_mut(q)) {
            queue.reprioritize(id, priority);
        }
    }
}
