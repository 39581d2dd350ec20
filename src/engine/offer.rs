//! Offers: matching waiting callers to free operators, ringing, answers, refusals, ring
//! timeouts, bridging, and the end of a connected call.
//!
//! ```text
//!  caller Queued ──dispatch──▶ rung{op: since} ──OfferAnswered──▶ Connected ──either side──▶ Ended
//!        ▲                       │  │                                (HangupOperator or HangupCall,
//!        │   ring timeout:       │  │ OfferRejected / leg failed:        operator → WrapUp)
//!        │   CancelOffer,        │  │ next operator at once
//!        └── retry delay ◀───────┘  └──────────────▶ Queued (tried += op)
//! ```
//! Fairness: every dispatch takes the ready callers of every queue a free operator serves,
//! ordered by queue priority (higher first), caller priority, then time queued (oldest first),
//! and offers each in turn to the operators its queue's strategy picks among those still free.
//! An operator's load (offers + calls) never exceeds their max calls, so no phone is rung twice.
//! A caller is not offered to an operator already tried in this round (a miss or refusal);
//! once everyone eligible was tried, a new round starts after the retry delay.
//!
//! Owns: the `impl Engine` methods for offers and connected calls, and queue_log emission.
//! Must not touch: the choice itself (`routing.rs`), presence facts other than offers, calls,
//! misses and wrap-up (`presence.rs`).

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::call::{Connected, Stage};
use super::flow::secs;
use super::ids::{CallId, OperatorId, QueueName};
use super::queue::{QueueEvent, QueueEventKind};
use super::routing::{self, Candidate, Snapshot};
use super::timers::TimerKey;
use super::{Engine, Now, Output};

/// A caller who left a queue's line while still waiting.
pub(super) struct Exit {
    pub(super) queue: QueueName,
    /// Position in the line when leaving (1-based).
    pub(super) position: usize,
    pub(super) original_position: usize,
    /// When the caller first joined a queue (kept through overflows).
    pub(super) queued_at: Instant,
    /// The caller's entry order (kept through overflows, like the join time).
    pub(super) entry_seq: u64,
}

impl Engine {
    /// Offers ready callers to free operators (see the module docs for the order).
    pub(super) fn dispatch(&mut self, now: Now) {
        if self.shutting_down || self.board.free().next().is_none() {
            return;
        }
        let served: BTreeSet<&QueueName> =
            self.board.free().flat_map(|op| op.account.queues.iter().map(|(q, _)| q)).collect();
        let mut ready = Vec::new();
        for name in served {
            let Some(queue) = self.queues.get(name) else { continue };
            for id in queue.callers() {
                let Some(call) = self.calls.get(id) else { continue };
                let Stage::Queued(w) = &call.stage else { continue };
                if w.rung.is_empty() && w.retry_at.is_none_or(|t| t <= now.instant) {
                    let key = (Reverse(queue.setup.priority), Reverse(w.priority), call.queued_at, w.entry_seq);
                    ready.push((key, id.clone()));
                }
            }
        }
        ready.sort();
        for (_, id) in ready {
            if self.board.free().next().is_none() {
                break;
            }
            self.try_offer(now, &id);
        }
    }

    /// Offers one ready caller to the operator(s) its queue's strategy picks, if any is free.
    fn try_offer(&mut self, now: Now, id: &CallId) {
        let Some(call) = self.calls.get(id) else { return };
        let (Stage::Queued(w), Some(name)) = (&call.stage, &call.queue) else { return };
        let Some(queue) = self.queues.get(name) else { return };
        let setup = &queue.setup;
        let restricted = call.queued_at.is_some_and(|t| now.instant < t + setup.language_wait);
        let eligible: Vec<Candidate> = self
            .board
            .free()
            .filter(|op| !restricted || op.account.speaks(call.language))
            .filter_map(|op| {
                Some(Candidate {
                    id: op.account.id.clone(),
                    level: op.account.level_in(name)?,
                    idle_since: op.idle_since,
                    calls_taken: op.calls_taken,
                    talk_time: op.talk_time,
                })
            })
            .collect();
        if eligible.is_empty() {
            return;
        }
        let untried: Vec<Candidate> = eligible.iter().filter(|c| !w.tried.contains(&c.id)).cloned().collect();
        let (pool, new_round) = if untried.is_empty() { (eligible, true) } else { (untried, false) };
        let delay_due = new_round && w.retry_at.is_none();
        let retry_delay = setup.retry_delay;
        let chosen = if delay_due {
            Vec::new()
        } else {
            let snapshot =
                Snapshot { strategy: setup.strategy, candidates: &pool, last_offered: queue.last_offered.as_ref() };
            routing::choose(&snapshot, &mut self.rng)
        };
        let Some(Stage::Queued(w)) = self.calls.get_mut(id).map(|c| &mut c.stage) else { return };
        if new_round {
            w.tried.clear();
        }
        if delay_due {
            // Everyone was tried and no delay has passed since the last try: wait first.
            w.retry_at = Some(now.instant + retry_delay);
            self.timers.set(TimerKey::Retry(id.clone()), now.instant + retry_delay);
            return;
        }
        self.offer(now, id, chosen);
    }

    /// Rings `operators` for the caller.
    fn offer(&mut self, now: Now, id: &CallId, operators: Vec<OperatorId>) {
        let Some(call) = self.calls.get_mut(id) else { return };
        let (Stage::Queued(w), Some(name)) = (&mut call.stage, &call.queue) else { return };
        let Some(queue) = self.queues.get_mut(name) else { return };
        for operator in operators {
            let Some(op) = self.board.get_mut(&operator) else { continue };
            op.offers.push(id.clone());
            w.rung.insert(operator.clone(), now.instant);
            w.retry_at = None;
            queue.last_offered = Some(operator.clone());
            *self.counters.offers.entry(name.clone()).or_default() += 1;
            let ring = TimerKey::Ring { call: id.clone(), operator: operator.clone() };
            self.timers.set(ring, now.instant + queue.setup.ring_timeout);
            self.outputs.push_back(Output::OfferToOperator {
                call: id.clone(),
                operator,
                queue: name.clone(),
                theme: queue.setup.theme.clone(),
                caller: call.caller.clone(),
                language: call.language,
                ivr_path: call.ivr_path.clone(),
            });
        }
    }

    /// Removes the offer of `id` to `operator` on both sides; returns the queue and when it
    /// started ringing, or `None` if there was no such offer.
    fn withdraw_offer(&mut self, id: &CallId, operator: &OperatorId) -> Option<(QueueName, Instant)> {
        let call = self.calls.get_mut(id)?;
        let Stage::Queued(w) = &mut call.stage else { return None };
        let since = w.rung.remove(operator)?;
        if let Some(op) = self.board.get_mut(operator) {
            op.offers.retain(|c| c != id);
        }
        self.timers.cancel(&TimerKey::Ring { call: id.clone(), operator: operator.clone() });
        Some((call.queue.clone()?, since))
    }

    /// Withdraws an offer because the operator went away (paused, logged out, unregistered,
    /// removed): CANCEL, and the caller moves on to the next operator at once.
    pub(super) fn cancel_offer_elsewhere(&mut self, id: &CallId, operator: &OperatorId) {
        if self.withdraw_offer(id, operator).is_some() {
            self.outputs.push_back(Output::CancelOffer { call: id.clone(), operator: operator.clone() });
            self.mark_tried(id, operator);
        }
    }

    /// Notes that the caller tried `operator` in this round.
    fn mark_tried(&mut self, id: &CallId, operator: &OperatorId) {
        if let Some(Stage::Queued(w)) = self.calls.get_mut(id).map(|c| &mut c.stage) {
            w.tried.insert(operator.clone());
        }
    }

    pub(super) fn on_ring_timeout(&mut self, now: Now, id: &CallId, operator: &OperatorId) {
        let Some((queue, since)) = self.withdraw_offer(id, operator) else { return };
        self.outputs.push_back(Output::CancelOffer { call: id.clone(), operator: operator.clone() });
        self.missed(now, id, operator, &queue, since);
        let retry_delay = self.queues.get(&queue).map(|q| q.setup.retry_delay).unwrap_or_default();
        let Some(Stage::Queued(w)) = self.calls.get_mut(id).map(|c| &mut c.stage) else { return };
        w.tried.insert(operator.clone());
        if w.rung.is_empty() {
            w.retry_at = Some(now.instant + retry_delay);
            self.timers.set(TimerKey::Retry(id.clone()), now.instant + retry_delay);
        }
    }

    pub(super) fn on_offer_rejected(&mut self, now: Now, id: &CallId, operator: &OperatorId, busy: bool) {
        let Some((queue, since)) = self.withdraw_offer(id, operator) else { return };
        if !busy {
            self.missed(now, id, operator, &queue, since);
        }
        self.mark_tried(id, operator);
    }

    /// A ring-no-answer (or a refusal that is not busy): log it, and auto-pause the operator
    /// after the queue's number of consecutive misses.
    fn missed(&mut self, now: Now, id: &CallId, operator: &OperatorId, queue: &QueueName, since: Instant) {
        let ring_ms = now.instant.saturating_duration_since(since).as_millis().to_string();
        self.queue_event(now, id, queue, Some(operator), QueueEventKind::RingNoAnswer, vec![ring_ms]);
        *self.counters.ring_no_answer.entry(queue.clone()).or_default() += 1;
        let limit = self.queues.get(queue).map(|q| q.setup.auto_pause_after).unwrap_or(0);
        let Some(op) = self.board.get_mut(operator) else { return };
        op.misses += 1;
        if limit > 0 && op.misses >= limit {
            *self.counters.auto_pauses.entry(queue.clone()).or_default() += 1;
            self.pause(now, operator, "no answer".to_string());
        }
    }

    pub(super) fn on_offer_answered(&mut self, now: Now, id: &CallId, operator: &OperatorId) {
        if matches!(self.calls.get(id).map(|c| &c.stage), Some(Stage::Connected(c)) if &c.operator == operator) {
            return; // A repeated answer for the bridged leg.
        }
        let Some((queue, since)) = self.withdraw_offer(id, operator) else {
            // The offer was cancelled (timeout, caller gone, another operator first) and the
            // 200 OK crossed the CANCEL: end the leg nobody will be bridged to.
            self.outputs.push_back(Output::HangupOperator { call: id.clone(), operator: operator.clone() });
            return;
        };
        // Ring-all: leaving the line cancels the offers to the other operators.
        let Some(exit) = self.leave_queue(id) else { return };
        let Some(call) = self.calls.get_mut(id) else { return };
        let hold = now.instant.saturating_duration_since(exit.queued_at);
        let ring = now.instant.saturating_duration_since(since);
        self.counters.observe_wait(&queue, super::call::Outcome::Answered, hold);
        if let Some(q) = self.queues.get_mut(&queue) {
            q.history.observe_ring(ring);
        }
        if let (Some((told_at, told)), Some(errors)) = (call.entry_estimate.take(), self.counters.ewt_error_seconds.get_mut(&queue)) {
            errors.observe(now.instant.saturating_duration_since(told_at).as_secs_f64() - told.as_secs_f64());
        }
        call.stage = Stage::Connected(Connected {
            operator: operator.clone(),
            answered_at: now.instant,
            answered_wall: now.wall,
            hold,
            original_position: exit.original_position,
        });
        call.music_after = None;
        if let Some(op) = self.board.get_mut(operator) {
            op.calls.push(id.clone());
            op.calls_taken += 1;
            op.misses = 0;
        }
        self.outputs.push_back(Output::Bridge { call: id.clone(), operator: operator.clone() });
        let data = vec![hold.as_secs().to_string(), id.0.clone(), secs(now, since)];
        self.queue_event(now, id, &queue, Some(operator), QueueEventKind::Connect, data);
    }

    pub(super) fn on_operator_leg_ended(&mut self, now: Now, id: &CallId, operator: &OperatorId) {
        match self.calls.get(id).map(|c| &c.stage) {
            Some(Stage::Connected(c)) if &c.operator == operator => {
                self.outputs.push_back(Output::HangupCall { call: id.clone() });
                self.complete(now, id, QueueEventKind::CompleteAgent);
                self.finish(now, id, super::call::Outcome::Answered);
            }
            // The leg failed before an answer: a refusal that is not busy.
            Some(Stage::Queued(w)) if w.rung.contains_key(operator) => {
                self.on_offer_rejected(now, id, operator, false);
            }
            _ => {}
        }
    }

    /// Logs COMPLETECALLER or COMPLETEAGENT for a connected call (before `finish`).
    pub(super) fn complete(&mut self, now: Now, id: &CallId, kind: QueueEventKind) {
        let Some(call) = self.calls.get(id) else { return };
        let (Stage::Connected(c), Some(queue)) = (&call.stage, &call.queue) else { return };
        let data = vec![c.hold.as_secs().to_string(), secs(now, c.answered_at), c.original_position.to_string()];
        let (queue, operator) = (queue.clone(), c.operator.clone());
        self.queue_event(now, id, &queue, Some(&operator), kind, data);
    }

    /// A connected call ended: the operator's talk time grows, then wrap-up (none if a pause
    /// is waiting for the call to end, or the queue's wrap-up is zero).
    pub(super) fn release_operator(
        &mut self,
        now: Now,
        operator: &OperatorId,
        id: &CallId,
        talk: Duration,
        queue: Option<&QueueName>,
    ) {
        let wrap_up = queue.and_then(|q| self.queues.get(q)).map(|q| q.setup.wrap_up).unwrap_or_default();
        let Some(op) = self.board.get_mut(operator) else { return };
        op.calls.retain(|c| c != id);
        op.talk_time += talk;
        op.idle_since = Some(now.instant);
        if op.paused.is_none() && !wrap_up.is_zero() {
            op.wrap_up_until = Some(now.instant + wrap_up);
            self.timers.set(TimerKey::WrapUp(operator.clone()), now.instant + wrap_up);
        }
    }

    /// Takes a waiting caller out of their queue's line: offers cancelled (CancelOffer for
    /// each), queue timers disarmed. `None` if the caller was not waiting.
    pub(super) fn leave_queue(&mut self, id: &CallId) -> Option<Exit> {
        let call = self.calls.get(id)?;
        let Stage::Queued(w) = &call.stage else { return None };
        let rung: Vec<OperatorId> = w.rung.keys().cloned().collect();
        let (original_position, entry_seq) = (w.original_position, w.entry_seq);
        for operator in rung {
            if self.withdraw_offer(id, &operator).is_some() {
                self.outputs.push_back(Output::CancelOffer { call: id.clone(), operator });
            }
        }
        for key in [TimerKey::Retry(id.clone()), TimerKey::LanguageWait(id.clone()), TimerKey::Announce(id.clone()), TimerKey::MaxWait(id.clone())] {
            self.timers.cancel(&key);
        }
        let call = self.calls.get_mut(id)?;
        let queue = call.queue.clone()?;
        let queued_at = call.queued_at?;
        call.stage = Stage::Closing;
        let position = self.queues.get_mut(&queue).and_then(|q| q.remove(id)).unwrap_or(0);
        Some(Exit { queue, position, original_position, queued_at, entry_seq })
    }

    /// Emits one queue_log line.
    pub(super) fn queue_event(
        &mut self,
        now: Now,
        call: &CallId,
        queue: &QueueName,
        operator: Option<&OperatorId>,
        kind: QueueEventKind,
        data: Vec<String>,
    ) {
        self.outputs.push_back(Output::QueueEvent(QueueEvent {
            at: now.wall,
            call: call.clone(),
            queue: queue.clone(),
            operator: operator.cloned(),
            kind,
            data,
        }));
    }
}
