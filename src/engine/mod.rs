//! The sans-IO decision core: calls' lifecycle, IVR runs, queues, operators, routing,
//! opening hours.
//!
//! Owns: every decision about a call and an operator. Fed facts with `handle_input(now, input)`
//! and `handle_timeout(now)`; drained with `poll_output()` until `None`; woken at
//! `poll_timeout()`. After every input or timeout the engine offers waiting callers to free
//! operators (`offer.rs`) and publishes operators' state changes (`presence.rs`).
//! Must not touch: sockets, tokio, sqlx, the clock, a global RNG (STYLE.md §4). Randomness
//! comes from a `SmallRng` seeded by [`Engine::with_rng_seed`].
//!
//! This file only dispatches: the caller's flow is in `flow.rs`, joining a queue and its
//! limits in `join.rs`, what a waiting caller hears in `announce.rs` (the expected wait in
//! `estimate.rs`), leaving by max wait or exit key in `exits.rs`, offers and bridging in
//! `offer.rs`, operators' inputs in `presence.rs`, the lines in `queue.rs`, the board in
//! `operators.rs`, the strategies in `routing.rs`, deadlines in `timers.rs`.
#![warn(missing_docs)]

mod announce;
pub mod call;
mod estimate;
mod exits;
mod flow;
pub mod ids;
pub mod ivr;
mod join;
mod offer;
pub mod operators;
mod presence;
pub mod queue;
pub mod routing;
pub mod schedule;
pub mod stats;
mod timers;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::SeedableRng;

use call::{Call, CallRecord, CallView};
use ids::{CallId, DtmfDigit, Language, OperatorId, PromptId, QueueName};
use ivr::IvrScripts;
use operators::{Board, OperatorAccount, OperatorState, OperatorView};
use queue::Queue;
use schedule::Schedule;
use stats::Counters;
use timers::{TimerKey, Timers};

/// Both clocks as read once by the driver.
pub use crate::clock::Now;
pub use queue::{ExitTo, NoOperators, QueueEvent, QueueEventKind, QueueSetup};
pub use routing::Strategy;

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
    /// The caller's priority in queues, when not 0 (a priority line, a returning caller):
    /// sent right after `CallArrived`, or later (a waiting caller moves to their new place).
    /// Higher is served first; FIFO by join time within a priority.
    CallerPriority {
        /// Which call.
        call: CallId,
        /// Higher first; default 0.
        priority: i32,
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
    /// The operator answered an offer (200 OK to our INVITE).
    OfferAnswered {
        /// The caller offered.
        call: CallId,
        /// Who answered.
        operator: OperatorId,
    },
    /// The operator's phone refused the offer (486/600 busy, 603 decline, other error).
    OfferRejected {
        /// The caller offered.
        call: CallId,
        /// Who refused.
        operator: OperatorId,
        /// Busy (486/600): not counted as a miss.
        busy: bool,
    },
    /// The operator's leg ended (BYE from the operator, or it failed).
    OperatorLegEnded {
        /// The caller the leg belonged to.
        call: CallId,
        /// Whose leg.
        operator: OperatorId,
    },
    /// The operator has a live registration.
    OperatorRegistered {
        /// Who.
        operator: OperatorId,
    },
    /// The operator's last contact expired or was removed.
    OperatorUnregistered {
        /// Who.
        operator: OperatorId,
    },
    /// The operator logged in (again) after logging out.
    OperatorLoggedIn {
        /// Who.
        operator: OperatorId,
    },
    /// The operator logged out: offline while still registered.
    OperatorLoggedOut {
        /// Who.
        operator: OperatorId,
    },
    /// The operator paused.
    OperatorPaused {
        /// Who.
        operator: OperatorId,
        /// Why (free text, shown and stored; never a metric label).
        reason: String,
    },
    /// The operator resumed after a pause.
    OperatorResumed {
        /// Who.
        operator: OperatorId,
    },
    /// The operators' accounts, loaded from the database: replaces the whole set.
    DirectoryLoaded {
        /// Every account.
        operators: Vec<OperatorAccount>,
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
    /// Ring the operator for the caller: INVITE to their contact, `From` display
    /// `"[<theme>] <caller>"`. Answer with `OfferAnswered`, `OfferRejected` or nothing (the
    /// engine cancels at the ring timeout).
    OfferToOperator {
        /// The caller.
        call: CallId,
        /// Who to ring.
        operator: OperatorId,
        /// The caller's queue.
        queue: QueueName,
        /// The queue's theme, for the display name.
        theme: String,
        /// The caller's number or SIP user.
        caller: String,
        /// The caller's language.
        language: Language,
        /// The caller's menu choices.
        ivr_path: Vec<String>,
    },
    /// Stop ringing the operator for the caller (CANCEL). If the operator's 200 OK crosses
    /// it, the runtime reports `OfferAnswered` and the engine answers with `HangupOperator`.
    CancelOffer {
        /// The caller.
        call: CallId,
        /// Whose phone.
        operator: OperatorId,
    },
    /// Connect the caller and the operator's answered leg (stop the caller's music first).
    Bridge {
        /// The caller.
        call: CallId,
        /// The operator who answered.
        operator: OperatorId,
    },
    /// End the operator's leg for the caller (BYE).
    HangupOperator {
        /// The caller the leg belongs to.
        call: CallId,
        /// Whose leg.
        operator: OperatorId,
    },
    /// A queue_log line to store.
    QueueEvent(QueueEvent),
    /// An operator's presence changed (for presence history and live views).
    OperatorStateChanged {
        /// Who.
        operator: OperatorId,
        /// The new state.
        state: OperatorState,
        /// The pause reason, when paused.
        reason: Option<String>,
    },
    /// A call ended: store and count it. The drivers release its resources.
    CallFinished(Box<CallRecord>),
}

/// Prompts the engine itself plays (besides the IVR scripts'), in every language.
pub fn engine_prompt_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "attesa",
        "arrivederci",
        "chiusura_coda",
        "sportello_chiuso",
        "attesa_scaduta",
        "coda_piena",
        "nessun_operatore",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Position, expected wait, exit key and the default informational prompt. Queues'
    // own informational prompts: `QueueSetup::prompt_names`.
    names.extend(announce::prompt_names());
    // Confirmations of operators' feature codes (played by the runtime).
    names.extend(
        ["funzione_pausa", "funzione_ripresa", "funzione_logout", "funzione_login", "funzione_sconosciuta"]
            .iter()
            .map(|s| s.to_string()),
    );
    names.extend(schedule::speech::all_fragment_names());
    names
}

/// Mixed into the seed of the estimates' RNG.
const ESTIMATE_SEED: u64 = 0x5eed_e57a_7e00_0001;

/// The engine. See the module docs for the run loop contract.
pub struct Engine {
    ivr: Arc<IvrScripts>,
    schedule: Schedule,
    queues: BTreeMap<QueueName, Queue>,
    calls: HashMap<CallId, Call>,
    board: Board,
    timers: Timers,
    outputs: VecDeque<Output>,
    counters: Counters,
    rng: SmallRng,
    /// Draws for the expected-wait estimates (separate, so estimates never shift routing's
    /// tie-breaks); seeded from the same seed.
    estimate_rng: SmallRng,
    /// Counts queue entries, so callers queued at the same instant keep their order.
    entry_seq: u64,
    shutting_down: bool,
    answer_delay: Duration,
    /// How long queued callers are still served after the office closes.
    drain: Duration,
}

impl Engine {
    /// Builds an engine over validated IVR scripts, an office schedule and the queues. It
    /// knows no operators until `DirectoryLoaded`; its RNG seed is 0 unless
    /// [`Engine::with_rng_seed`] sets one.
    pub fn new(ivr: Arc<IvrScripts>, schedule: Schedule, queues: impl IntoIterator<Item = QueueSetup>) -> Engine {
        let queues: BTreeMap<QueueName, Queue> = queues.into_iter().map(|q| (q.name.clone(), Queue::new(q))).collect();
        Engine {
            ivr,
            schedule,
            counters: Counters::for_queues(queues.keys()),
            queues,
            calls: HashMap::new(),
            board: Board::default(),
            timers: Timers::default(),
            outputs: VecDeque::new(),
            rng: SmallRng::seed_from_u64(0),
            estimate_rng: SmallRng::seed_from_u64(ESTIMATE_SEED),
            entry_seq: 0,
            shutting_down: false,
            answer_delay: Duration::ZERO,
            drain: Duration::from_secs(15 * 60),
        }
    }

    /// Seeds the RNG that breaks routing ties (the driver passes e.g. a boot-time random).
    pub fn with_rng_seed(mut self, seed: u64) -> Engine {
        self.rng = SmallRng::seed_from_u64(seed);
        self.estimate_rng = SmallRng::seed_from_u64(seed ^ ESTIMATE_SEED);
        self
    }

    /// Serves queued callers this long after closing (default 15 minutes).
    pub fn with_drain(mut self, drain: Duration) -> Engine {
        self.drain = drain;
        self
    }

    /// Rings callers for `delay` before answering (0: answer at once).
    pub fn with_answer_delay(mut self, delay: Duration) -> Engine {
        self.answer_delay = delay;
        self
    }

    /// Feeds one fact. Drain `poll_output` afterwards.
    pub fn handle_input(&mut self, now: Now, input: Input) {
        match input {
            Input::CallArrived { call, caller } => self.on_arrived(now, call, caller),
            Input::CallerPriority { call, priority } => self.on_caller_priority(&call, priority),
            Input::CallAnswered { call } => self.on_answered(now, &call),
            Input::DigitPressed { call, digit } => self.on_digit(now, &call, digit),
            Input::PlaybackFinished { call, seq } => self.on_playback_finished(now, &call, seq),
            Input::CallEnded { call } => self.on_caller_gone(now, &call),
            Input::OfferAnswered { call, operator } => self.on_offer_answered(now, &call, &operator),
            Input::OfferRejected { call, operator, busy } => self.on_offer_rejected(now, &call, &operator, busy),
            Input::OperatorLegEnded { call, operator } => self.on_operator_leg_ended(now, &call, &operator),
            Input::OperatorRegistered { operator } => self.on_registration(now, &operator, true),
            Input::OperatorUnregistered { operator } => self.on_registration(now, &operator, false),
            Input::OperatorLoggedIn { operator } => self.on_login(now, &operator, true),
            Input::OperatorLoggedOut { operator } => self.on_login(now, &operator, false),
            Input::OperatorPaused { operator, reason } => self.on_paused(now, &operator, reason),
            Input::OperatorResumed { operator } => self.on_resumed(now, &operator),
            Input::DirectoryLoaded { operators } => self.on_directory_loaded(now, operators),
            Input::ShutdownRequested => self.on_shutdown(now),
        }
        self.settle(now);
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        while let Some(key) = self.timers.pop_due(now.instant) {
            match key {
                TimerKey::Call(call) => self.on_call_timer(now, &call),
                TimerKey::Ring { call, operator } => self.on_ring_timeout(now, &call, &operator),
                // The retry delay or language wait is over: `settle` offers the caller again.
                TimerKey::Retry(_) | TimerKey::LanguageWait(_) => {}
                TimerKey::Announce(call) => self.on_announce_tick(now, &call),
                TimerKey::MaxWait(call) => self.on_max_wait(now, &call),
                TimerKey::WrapUp(operator) => self.on_wrap_up_over(&operator),
                TimerKey::DrainCheck => self.drain_queues_if_closed(now),
            }
        }
        self.settle(now);
    }

    /// The next instant `handle_timeout` must be called at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
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

    /// The operators in the directory, by username, for the admin API.
    pub fn operators(&self) -> Vec<OperatorView> {
        self.board.views()
    }

    /// Whether any call is still live (shutdown waits for none).
    pub fn has_calls(&self) -> bool {
        !self.calls.is_empty()
    }

    /// The queue names this engine serves.
    pub fn queue_names(&self) -> impl Iterator<Item = &QueueName> {
        self.queues.keys()
    }

    /// After every input or timeout: re-arm the drain check, offer waiting callers to free
    /// operators, publish operators' state changes.
    fn settle(&mut self, now: Now) {
        self.arm_drain_check(now);
        self.dispatch(now);
        self.publish_operator_changes();
    }
}
