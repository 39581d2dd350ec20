//! The operator board: accounts, presence facts, and the state derived from them.
//!
//! ```text
//!            registered & logged in
//!  Offline ─────────────────────────▶ Available ◀──── resume ──── Paused(reason)
//!     ▲  ◀── unregistered / logged out ──┤  ▲                       ▲
//!     │                                offer │ wrap-up over            │ pause (also "no answer"
//!     │                                  ▼   │                         │ after N misses)
//!     │          no answer / reject ── Ringing ─answer─▶ OnCall ─end─▶ WrapUp
//!     │                                                  │ end while paused ─▶ Paused (no wrap-up)
//! ```
//! The state is never stored: [`Operator::state`] derives it, in this order, from facts —
//! connected calls (OnCall), outstanding offers (Ringing), registration and login (Offline),
//! a pause (Paused), a wrap-up deadline (WrapUp), else Available. So an expired registration
//! or a finished dialog can never leave an operator stuck in a stale state.
//!
//! Owns: [`OperatorAccount`], [`OperatorState`], [`OperatorView`], the per-operator facts and
//! counters, and the set of registered usernames (kept apart from the accounts, so a
//! directory reload picks up registrations that arrived first).
//! Must not touch: queues, routing, timers, outputs. The engine changes the facts and
//! publishes state changes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::ids::{CallId, Language, OperatorId, QueueName};

/// An operator's account, as loaded from the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorAccount {
    /// The username (SIP user).
    pub id: OperatorId,
    /// Shown in the admin API.
    pub display_name: String,
    /// The queues served, each with a level (penalty; lower = preferred).
    pub queues: Vec<(QueueName, u32)>,
    /// Languages spoken. Empty means Italian only.
    pub languages: Vec<Language>,
    /// Calls at once (ringing + connected). 0 is read as 1.
    pub max_calls: u32,
}

impl OperatorAccount {
    /// An account serving no queue yet: display name = username, Italian, one call at a time.
    pub fn new(id: OperatorId) -> OperatorAccount {
        OperatorAccount {
            display_name: id.0.clone(),
            id,
            queues: Vec::new(),
            languages: vec![Language::It],
            max_calls: 1,
        }
    }

    /// The operator's level in `queue`, if they serve it.
    pub fn level_in(&self, queue: &QueueName) -> Option<u32> {
        self.queues.iter().find(|(q, _)| q == queue).map(|(_, level)| *level)
    }

    /// Whether the operator speaks `lang` (an empty list means Italian only).
    pub fn speaks(&self, lang: Language) -> bool {
        if self.languages.is_empty() {
            lang == Language::It
        } else {
            self.languages.contains(&lang)
        }
    }
}

/// An operator's presence, as shown by the API and `centralino_operators{state}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OperatorState {
    /// Not registered, logged out, or no longer in the directory.
    Offline,
    /// Can be offered a call.
    Available,
    /// A call is being offered (their phone rings).
    Ringing,
    /// Talking to a caller.
    OnCall,
    /// After a call, before being offered the next one.
    WrapUp,
    /// Paused, with a reason.
    Paused,
}

impl OperatorState {
    /// Every state, for gauges that must show zeros.
    pub const ALL: [OperatorState; 6] = [
        OperatorState::Offline,
        OperatorState::Available,
        OperatorState::Ringing,
        OperatorState::OnCall,
        OperatorState::WrapUp,
        OperatorState::Paused,
    ];

    /// The label value used by the API, metrics and records.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorState::Offline => "offline",
            OperatorState::Available => "available",
            OperatorState::Ringing => "ringing",
            OperatorState::OnCall => "on_call",
            OperatorState::WrapUp => "wrap_up",
            OperatorState::Paused => "paused",
        }
    }
}

/// A queue an operator serves, for the admin API.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MembershipView {
    /// The queue.
    pub queue: String,
    /// The level (penalty) in it.
    pub level: u32,
}

/// What `GET /api/v1/operators` shows of an operator.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OperatorView {
    /// The username.
    pub username: String,
    /// The display name.
    pub display_name: String,
    /// `offline`, `available`, `ringing`, `on_call`, `wrap_up` or `paused`.
    pub state: &'static str,
    /// The pause reason while paused (also while a pause waits for the call to end).
    pub reason: Option<String>,
    /// Queues served, with levels.
    pub queues: Vec<MembershipView>,
    /// Languages spoken (`it`, `en`).
    pub languages: Vec<&'static str>,
    /// Whether a registration is live.
    pub registered: bool,
    /// Whether the operator is logged in (not logged out).
    pub logged_in: bool,
    /// Calls answered since the engine started.
    pub calls_taken: u64,
    /// Talk time since the engine started, in whole seconds.
    pub talk_seconds: u64,
    /// The call they talk on, else the call ringing their phone.
    pub current_call: Option<String>,
}

/// One operator's facts and counters.
#[derive(Debug)]
pub(crate) struct Operator {
    pub(crate) account: OperatorAccount,
    /// False once a directory reload dropped the account. The entry stays (a few bytes), so
    /// live calls finish normally and a re-added account keeps its pause and login facts.
    pub(crate) in_directory: bool,
    pub(crate) logged_out: bool,
    pub(crate) paused: Option<String>,
    /// In wrap-up until the engine's `WrapUp` timer clears this.
    pub(crate) wrap_up_until: Option<Instant>,
    /// Calls offered to them now (their phone rings).
    pub(crate) offers: Vec<CallId>,
    /// Calls they talk on now.
    pub(crate) calls: Vec<CallId>,
    pub(crate) idle_since: Option<Instant>,
    pub(crate) calls_taken: u64,
    pub(crate) talk_time: Duration,
    /// Consecutive ring-no-answers (reset by an answer or a resume).
    pub(crate) misses: u32,
    /// The state and reason last published with `OperatorStateChanged`.
    pub(crate) published: (OperatorState, Option<String>),
}

impl Operator {
    fn new(account: OperatorAccount) -> Operator {
        Operator {
            account,
            in_directory: true,
            logged_out: false,
            paused: None,
            wrap_up_until: None,
            offers: Vec::new(),
            calls: Vec::new(),
            idle_since: None,
            calls_taken: 0,
            talk_time: Duration::ZERO,
            misses: 0,
            published: (OperatorState::Offline, None),
        }
    }

    /// The derived state and its reason (see the module diagram for the order).
    pub(crate) fn state(&self, registered: bool) -> (OperatorState, Option<String>) {
        let state = if !self.calls.is_empty() {
            OperatorState::OnCall
        } else if !self.offers.is_empty() {
            OperatorState::Ringing
        } else if !self.in_directory || !registered || self.logged_out {
            OperatorState::Offline
        } else if self.paused.is_some() {
            OperatorState::Paused
        } else if self.wrap_up_until.is_some() {
            OperatorState::WrapUp
        } else {
            OperatorState::Available
        };
        let reason = if state == OperatorState::Paused { self.paused.clone() } else { None };
        (state, reason)
    }

    /// Calls at once allowed.
    pub(crate) fn capacity(&self) -> usize {
        self.account.max_calls.max(1) as usize
    }

    /// Calls it may still take at once: its capacity less its calls and offers ringing.
    pub(crate) fn idle_lines(&self) -> usize {
        self.capacity().saturating_sub(self.calls.len() + self.offers.len())
    }

    /// Whether a new offer may go to this operator now (any queue).
    pub(crate) fn can_take(&self, registered: bool) -> bool {
        self.in_directory
            && registered
            && !self.logged_out
            && self.paused.is_none()
            && self.wrap_up_until.is_none()
            && self.idle_lines() > 0
    }
}

/// Every known operator, plus the registrations.
#[derive(Debug, Default)]
pub(crate) struct Board {
    pub(crate) operators: BTreeMap<OperatorId, Operator>,
    registered: BTreeSet<OperatorId>,
}

impl Board {
    pub(crate) fn get(&self, id: &OperatorId) -> Option<&Operator> {
        self.operators.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &OperatorId) -> Option<&mut Operator> {
        self.operators.get_mut(id)
    }

    /// Records a registration; returns true if it is new.
    pub(crate) fn set_registered(&mut self, id: &OperatorId, now: Instant, registered: bool) -> bool {
        if registered {
            if let Some(op) = self.operators.get_mut(id) {
                op.idle_since.get_or_insert(now);
            }
            self.registered.insert(id.clone())
        } else {
            self.registered.remove(id)
        }
    }

    /// Whether `id` may be offered a new call now.
    #[cfg(test)]
    pub(crate) fn can_take(&self, id: &OperatorId) -> bool {
        self.operators.get(id).is_some_and(|op| op.can_take(self.registered.contains(id)))
    }

    /// Operators who may be offered a new call now.
    pub(crate) fn free(&self) -> impl Iterator<Item = &Operator> {
        self.operators.values().filter(|op| op.can_take(self.registered.contains(&op.account.id)))
    }

    /// Operators logged in now (in the directory, registered, not logged out), paused or not.
    pub(crate) fn logged_in(&self) -> impl Iterator<Item = &Operator> {
        self.operators
            .values()
            .filter(|op| op.in_directory && !op.logged_out && self.registered.contains(&op.account.id))
    }

    /// An operator's derived state.
    pub(crate) fn state_of(&self, op: &Operator) -> (OperatorState, Option<String>) {
        op.state(self.registered.contains(&op.account.id))
    }

    /// Replaces the accounts. Known operators keep their facts; dropped ones are marked out of
    /// the directory (they finish their live calls). Returns the dropped ones.
    pub(crate) fn load(&mut self, accounts: Vec<OperatorAccount>, now: Instant) -> Vec<OperatorId> {
        let mut seen = BTreeSet::new();
        for account in accounts {
            seen.insert(account.id.clone());
            let registered = self.registered.contains(&account.id);
            let op = self.operators.entry(account.id.clone()).or_insert_with(|| Operator::new(account.clone()));
            op.account = account;
            op.in_directory = true;
            if registered {
                op.idle_since.get_or_insert(now);
            }
        }
        let mut dropped = Vec::new();
        for (id, op) in &mut self.operators {
            if !seen.contains(id) && op.in_directory {
                op.in_directory = false;
                dropped.push(id.clone());
            }
        }
        dropped
    }

    /// States that changed since last published (each is marked published).
    pub(crate) fn take_changes(&mut self) -> Vec<(OperatorId, OperatorState, Option<String>)> {
        let mut changes = Vec::new();
        for (id, op) in &mut self.operators {
            let now = op.state(self.registered.contains(id));
            if now != op.published {
                op.published = now.clone();
                changes.push((id.clone(), now.0, now.1));
            }
        }
        changes
    }

    /// The admin API's view of every operator in the directory, by username.
    pub(crate) fn views(&self) -> Vec<OperatorView> {
        self.operators
            .values()
            .filter(|op| op.in_directory)
            .map(|op| {
                let registered = self.registered.contains(&op.account.id);
                let (state, _) = op.state(registered);
                OperatorView {
                    username: op.account.id.0.clone(),
                    display_name: op.account.display_name.clone(),
                    state: state.as_str(),
                    reason: op.paused.clone(),
                    queues: op
                        .account
                        .queues
                        .iter()
                        .map(|(q, level)| MembershipView { queue: q.0.clone(), level: *level })
                        .collect(),
                    languages: op.account.languages.iter().map(|l| l.code()).collect(),
                    registered,
                    logged_in: !op.logged_out,
                    calls_taken: op.calls_taken,
                    talk_seconds: op.talk_time.as_secs(),
                    current_call: op.calls.first().or(op.offers.first()).map(|c| c.0.clone()),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        #[allow(clippy::disallowed_methods)] // an arbitrary origin for the test
        Instant::now()
    }

    fn account(id: &str) -> OperatorAccount {
        let mut a = OperatorAccount::new(OperatorId(id.into()));
        a.queues = vec![(QueueName("a".into()), 0)];
        a
    }

    fn state(board: &Board, id: &str) -> OperatorState {
        board.state_of(board.get(&OperatorId(id.into())).unwrap()).0
    }

    #[test]
    fn state_is_derived_from_facts_in_order() {
        let mut board = Board::default();
        let op1 = OperatorId("op1".into());
        board.load(vec![account("op1")], t0());
        assert_eq!(state(&board, "op1"), OperatorState::Offline);
        board.set_registered(&op1, t0(), true);
        assert_eq!(state(&board, "op1"), OperatorState::Available);
        assert!(board.can_take(&op1));
        let op = board.get_mut(&op1).unwrap();
        op.offers.push(CallId("c".into()));
        assert_eq!(state(&board, "op1"), OperatorState::Ringing);
        assert!(!board.can_take(&op1), "max calls 1");
        let op = board.get_mut(&op1).unwrap();
        op.offers.clear();
        op.calls.push(CallId("c".into()));
        op.paused = Some("lunch".into());
        assert_eq!(state(&board, "op1"), OperatorState::OnCall, "a pause waits for the call to end");
        let op = board.get_mut(&op1).unwrap();
        op.calls.clear();
        assert_eq!(board.state_of(board.get(&op1).unwrap()), (OperatorState::Paused, Some("lunch".into())));
        let op = board.get_mut(&op1).unwrap();
        op.paused = None;
        op.wrap_up_until = Some(t0());
        assert_eq!(state(&board, "op1"), OperatorState::WrapUp);
        board.set_registered(&op1, t0(), false);
        assert_eq!(state(&board, "op1"), OperatorState::Offline, "expired registration wins over wrap-up");
    }

    #[test]
    fn a_reload_keeps_registrations_and_hides_removed_operators() {
        let mut board = Board::default();
        let op1 = OperatorId("op1".into());
        board.set_registered(&op1, t0(), true);
        board.load(vec![account("op1"), account("op2")], t0());
        assert_eq!(state(&board, "op1"), OperatorState::Available, "registered before the account loaded");
        let changes = board.take_changes();
        assert_eq!(changes, vec![(op1.clone(), OperatorState::Available, None)]);
        board.get_mut(&op1).unwrap().calls.push(CallId("c".into()));
        assert_eq!(board.take_changes(), vec![(op1.clone(), OperatorState::OnCall, None)]);
        let dropped = board.load(vec![account("op2")], t0());
        assert_eq!(dropped, vec![op1.clone()]);
        assert!(board.take_changes().is_empty(), "on call until the call ends");
        assert_eq!(board.views().len(), 1, "not shown once removed");
        board.get_mut(&op1).unwrap().calls.clear();
        assert_eq!(board.take_changes(), vec![(op1.clone(), OperatorState::Offline, None)]);
        assert_eq!(board.free().count(), 0);
    }

    #[test]
    fn max_calls_bounds_offers_plus_calls_and_languages_default_to_italian() {
        let mut a = account("op1");
        a.max_calls = 2;
        a.languages.clear();
        assert!(a.speaks(Language::It) && !a.speaks(Language::En));
        let mut board = Board::default();
        let op1 = OperatorId("op1".into());
        board.load(vec![a], t0());
        board.set_registered(&op1, t0(), true);
        board.get_mut(&op1).unwrap().calls.push(CallId("c1".into()));
        assert!(board.can_take(&op1));
        board.get_mut(&op1).unwrap().offers.push(CallId("c2".into()));
        assert!(!board.can_take(&op1));
        assert_eq!(board.free().count(), 0);
    }
}
