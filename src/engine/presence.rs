//! Operators' inputs: registration, login, pause, resume, directory reloads, wrap-up's end;
//! and publishing derived state changes.
//!
//! Owns: the `impl Engine` methods that change presence facts on the [`Board`] and withdraw
//! offers an operator can no longer take (the caller moves on to the next operator at once).
//! Decisions: pausing, logging out or losing the registration while the phone rings cancels
//! the offer (not counted as a miss); pausing while on a call takes effect when the call ends,
//! with no wrap-up; pausing during wrap-up ends the wrap-up; live calls always continue.
//! Must not touch: routing, queues' lines, calls' stages (`offer.rs`, `flow.rs`).
//!
//! [`Board`]: super::operators::Board

use super::ids::OperatorId;
use super::operators::OperatorAccount;
use super::queue::{no_call, QueueEventKind};
use super::timers::TimerKey;
use super::{Engine, Now, Output};

impl Engine {
    pub(super) fn on_registration(&mut self, now: Now, operator: &OperatorId, registered: bool) {
        self.board.set_registered(operator, now.instant, registered);
        if !registered {
            self.withdraw_offers_of(operator);
        }
    }

    pub(super) fn on_login(&mut self, _now: Now, operator: &OperatorId, logged_in: bool) {
        let Some(op) = self.board.get_mut(operator) else { return };
        op.logged_out = !logged_in;
        if !logged_in {
            self.withdraw_offers_of(operator);
        }
    }

    pub(super) fn on_paused(&mut self, now: Now, operator: &OperatorId, reason: String) {
        self.pause(now, operator, reason);
    }

    /// Pauses (or changes the reason): PAUSE per queue served, wrap-up ended, offers withdrawn.
    pub(super) fn pause(&mut self, now: Now, operator: &OperatorId, reason: String) {
        let Some(op) = self.board.get_mut(operator) else { return };
        if op.paused.as_ref() == Some(&reason) {
            return;
        }
        op.paused = Some(reason.clone());
        op.wrap_up_until = None;
        let queues: Vec<_> = op.account.queues.iter().map(|(q, _)| q.clone()).collect();
        self.timers.cancel(&TimerKey::WrapUp(operator.clone()));
        for queue in queues {
            self.queue_event(now, &no_call(), &queue, Some(operator), QueueEventKind::Pause, vec![reason.clone()]);
        }
        self.withdraw_offers_of(operator);
    }

    pub(super) fn on_resumed(&mut self, now: Now, operator: &OperatorId) {
        let Some(op) = self.board.get_mut(operator) else { return };
        if op.paused.take().is_none() {
            return;
        }
        op.misses = 0;
        let queues: Vec<_> = op.account.queues.iter().map(|(q, _)| q.clone()).collect();
        for queue in queues {
            self.queue_event(now, &no_call(), &queue, Some(operator), QueueEventKind::Unpause, Vec::new());
        }
    }

    /// Replaces the accounts. Dropped operators go offline (their live calls continue); an
    /// operator no longer serving a queue loses that queue's offers.
    pub(super) fn on_directory_loaded(&mut self, now: Now, accounts: Vec<OperatorAccount>) {
        for dropped in self.board.load(accounts, now.instant) {
            self.withdraw_offers_of(&dropped);
        }
        let stale: Vec<(crate::engine::ids::CallId, OperatorId)> = self
            .board
            .operators
            .values()
            .flat_map(|op| {
                op.offers
                    .iter()
                    .filter(|c| {
                        let queue = self.calls.get(*c).and_then(|call| call.queue.as_ref());
                        queue.is_none_or(|q| op.account.level_in(q).is_none())
                    })
                    .map(|c| (c.clone(), op.account.id.clone()))
            })
            .collect();
        for (call, operator) in stale {
            self.cancel_offer_elsewhere(&call, &operator);
        }
    }

    pub(super) fn on_wrap_up_over(&mut self, operator: &OperatorId) {
        if let Some(op) = self.board.get_mut(operator) {
            op.wrap_up_until = None;
        }
    }

    /// Cancels every offer ringing the operator's phone.
    fn withdraw_offers_of(&mut self, operator: &OperatorId) {
        let offers = self.board.get(operator).map(|op| op.offers.clone()).unwrap_or_default();
        for call in offers {
            self.cancel_offer_elsewhere(&call, operator);
        }
    }

    /// Emits `OperatorStateChanged` for every operator whose derived state moved.
    pub(super) fn publish_operator_changes(&mut self) {
        for (operator, state, reason) in self.board.take_changes() {
            self.outputs.push_back(Output::OperatorStateChanged { operator, state, reason });
        }
    }
}
