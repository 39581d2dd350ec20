//! Leaving a queue before an operator answers, other than by hanging up: the max wait and
//! the exit key, and where the caller goes (the overflow target, the main menu, or a message
//! and hang-up).
//!
//! Owns: the `impl Engine` methods for the `MaxWait` timer and keys pressed while queued.
//! Decisions: at the max wait a caller whose operator's phone is ringing is given the ring
//! timeout first (the answer is seconds away). With an overflow target the caller moves there
//! keeping their join time (OVERFLOW, counted `overflow` in the queue left); without one they
//! hear `attesa_scaduta` and are hung up (EXITWITHTIMEOUT, outcome `timeout`). The exit key
//! (EXITWITHKEY) leads to the overflow target or back to the IVR's entry menu, as configured;
//! an exit to an overflow target that does not exist is ignored (and never offered).
//! Must not touch: joining (`join.rs`), offers (`offer.rs`).

use super::call::{Outcome, Stage};
use super::flow::{extend_path, play_then_hang_up, secs};
use super::ids::{CallId, DtmfDigit, PromptId};
use super::ivr::IvrRun;
use super::queue::{ExitTo, QueueEventKind};
use super::timers::TimerKey;
use super::{Engine, Now};

impl Engine {
    /// The caller has waited the queue's max wait.
    pub(super) fn on_max_wait(&mut self, now: Now, id: &CallId) {
        let Some(call) = self.calls.get(id) else { return };
        let (Stage::Queued(w), Some(queue)) = (&call.stage, &call.queue) else { return };
        let queue = queue.clone();
        if !w.rung.is_empty() {
            let ring_timeout = self.queues.get(&queue).map(|q| q.setup.ring_timeout).unwrap_or_default();
            self.timers.set(TimerKey::MaxWait(id.clone()), now.instant + ring_timeout);
            return;
        }
        let target = self.overflow_target(id, &queue);
        let Some(exit) = self.leave_queue(id) else { return };
        let wait = now.instant.saturating_duration_since(exit.queued_at);
        let (position, original) = (exit.position.to_string(), exit.original_position.to_string());
        match target {
            Some(target) => {
                self.counters.observe_wait(&queue, Outcome::Overflow, wait);
                let data = vec!["timeout".into(), target.0.clone(), position, original, secs(now, exit.queued_at)];
                self.queue_event(now, id, &queue, None, QueueEventKind::Overflow, data);
                self.count_overflow(id, &queue);
                self.join(now, id, target, Vec::new(), Some((exit.queued_at, exit.entry_seq)));
            }
            None => {
                self.counters.observe_wait(&queue, Outcome::Timeout, wait);
                let data = vec![position, original, secs(now, exit.queued_at)];
                self.queue_event(now, id, &queue, None, QueueEventKind::ExitWithTimeout, data);
                let Some(call) = self.calls.get_mut(id) else { return };
                call.left_queue_at = Some(now.instant);
                call.music_after = None;
                let prompts = ["attesa_scaduta", "arrivederci"].map(|n| PromptId::new(call.language, n)).to_vec();
                play_then_hang_up(&mut self.outputs, call, prompts, Outcome::Timeout);
            }
        }
    }

    /// A key pressed while queued: the queue's exit key leaves; other keys are ignored.
    pub(super) fn on_queued_digit(&mut self, now: Now, id: &CallId, digit: DtmfDigit) {
        let Some(call) = self.calls.get(id) else { return };
        let (Stage::Queued(_), Some(queue)) = (&call.stage, &call.queue) else { return };
        let Some(setup) = self.queues.get(queue).map(|q| &q.setup) else { return };
        if setup.exit_key != Some(digit) {
            return;
        }
        let queue = queue.clone();
        let target = match setup.exit_to {
            ExitTo::Overflow => match self.overflow_target(id, &queue) {
                Some(target) => Some(target),
                None => return,
            },
            ExitTo::MainMenu => None,
        };
        let Some(exit) = self.leave_queue(id) else { return };
        let wait = now.instant.saturating_duration_since(exit.queued_at);
        let to = target.as_ref().map_or("menu".to_string(), |t| t.0.clone());
        let data = vec![
            digit.to_string(),
            exit.position.to_string(),
            exit.original_position.to_string(),
            secs(now, exit.queued_at),
            to,
        ];
        self.queue_event(now, id, &queue, None, QueueEventKind::ExitWithKey, data);
        *self.counters.exit_key.entry(queue.clone()).or_default() += 1;
        match target {
            Some(target) => {
                self.counters.observe_wait(&queue, Outcome::Overflow, wait);
                self.count_overflow(id, &queue);
                self.join(now, id, target, Vec::new(), Some((exit.queued_at, exit.entry_seq)));
            }
            None => self.back_to_main_menu(now, id, &format!("{queue}:{digit}")),
        }
    }

    /// Starts the IVR again from its entry menu (welcome included): a new wait, should the
    /// caller choose a queue again.
    fn back_to_main_menu(&mut self, now: Now, id: &CallId, choice: &str) {
        let Some(call) = self.calls.get_mut(id) else { return };
        extend_path(&mut call.ivr_path, &[choice.to_string()]);
        call.queue = None;
        call.queued_at = None;
        call.left_queue_at = None;
        call.announced_wait = None;
        call.entry_estimate = None;
        call.music_after = None;
        let (run, actions) = IvrRun::start(&self.ivr, now.instant);
        call.stage = Stage::Ivr(run);
        self.apply_ivr(now, id, actions);
    }
}
