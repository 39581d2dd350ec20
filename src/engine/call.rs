//! One caller's lifecycle as plain data.
//!
//! ```text
//!  Arrived ─▶ Ringing ─▶ Answering ──ACK──▶ Ivr ──choice──▶ Queued ◀──no answer/reject──┐
//!     │                   │               │                 │  └──offer──▶ (rung) ──────┘
//!     │                   │               │                 │                 │ answer
//!     │                   │               │                 │                 ▼
//!     └──closed hours─────┴──▶ Closing ───┴──hang-up/BYE────┴──▶ Ended ◀── Connected
//! ```
//! A queued caller with an offer outstanding shows as stage `ringing`. Leaving a queue
//! without an operator: max wait, a full queue or no operator (`join.rs`, `exits.rs`) go to
//! Queued in the overflow target, or to Closing (a message, then hang-up); the exit key goes
//! to the overflow target or back to Ivr (the entry menu).
//! Owns: the stage, what the caller chose and when things happened.
//! Must not touch: SIP, media or the clock; the engine drives every change.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::ids::{CallId, Language, OperatorId, QueueName};
use super::ivr::IvrRun;

/// Where a call is now.
#[derive(Debug)]
pub enum Stage {
    /// Ringing (180 sent); answered at `answer_at`.
    Ringing {
        /// When to answer.
        answer_at: Instant,
    },
    /// The engine told SIP to answer and waits for the caller's ACK.
    Answering,
    /// In the IVR menus.
    Ivr(IvrRun),
    /// In a queue, hearing the waiting prompt then music on hold, maybe offered to operators.
    Queued(Waiting),
    /// Talking to an operator.
    Connected(Connected),
    /// Hearing a final message (closed office, goodbye) before centralino hangs up.
    Closing,
}

impl Stage {
    /// The stage's name as shown by the API and metrics.
    pub fn kind(&self) -> StageKind {
        match self {
            Stage::Ringing { .. } | Stage::Answering | Stage::Ivr(_) | Stage::Closing => StageKind::Ivr,
            Stage::Queued(w) if w.rung.is_empty() => StageKind::Queued,
            Stage::Queued(_) => StageKind::Ringing,
            Stage::Connected(_) => StageKind::Connected,
        }
    }
}

/// A queued caller's offers and what they were told.
#[derive(Debug)]
pub struct Waiting {
    /// Operators whose phone rings for this caller now, and since when.
    pub rung: BTreeMap<OperatorId, Instant>,
    /// Operators tried (missed or refused) since the caller last went round everyone.
    pub tried: BTreeSet<OperatorId>,
    /// Not offered again before this (the retry delay after a ring-no-answer).
    pub retry_at: Option<Instant>,
    /// The position the caller had on entering the queue (1-based).
    pub original_position: usize,
    /// The caller's priority within the queue (higher first; default 0).
    pub priority: i32,
    /// Entry order across all queues, to keep FIFO among callers queued at the same instant
    /// (kept through an overflow, like the join time).
    pub entry_seq: u64,
    /// When the caller entered this queue (the max wait counts from here; the caller's join
    /// time, [`Call::queued_at`], is kept through an overflow).
    pub entered_at: Instant,
    /// The position last told to the caller, as spoken (11 = "more than ten ahead"); updates
    /// only ever say a lower one.
    pub told_position: Option<usize>,
    /// The next informational prompt to play.
    pub info_next: usize,
}

impl Waiting {
    /// A caller entering a queue at `entered_at`.
    pub fn new(entered_at: Instant, original_position: usize, priority: i32, entry_seq: u64) -> Waiting {
        Waiting {
            rung: BTreeMap::new(),
            tried: BTreeSet::new(),
            retry_at: None,
            original_position,
            priority,
            entry_seq,
            entered_at,
            told_position: None,
            info_next: 0,
        }
    }
}

/// A caller talking to an operator.
#[derive(Debug)]
pub struct Connected {
    /// Who answered.
    pub operator: OperatorId,
    /// When they answered (monotonic).
    pub answered_at: Instant,
    /// When they answered (wall clock).
    pub answered_wall: jiff::Timestamp,
    /// How long the caller waited in the queue before the answer.
    pub hold: Duration,
    /// The position the caller had on entering the queue (1-based).
    pub original_position: usize,
}

/// The stage names used by `/api/v1/calls` and `centralino_calls_active{stage}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StageKind {
    /// Answering, in the menus, or hearing a final message.
    Ivr,
    /// Waiting in a queue.
    Queued,
    /// An operator's phone rings for the call.
    Ringing,
    /// Talking to an operator.
    Connected,
}

impl StageKind {
    /// Every stage, for gauges that must show zeros.
    pub const ALL: [StageKind; 4] =
        [StageKind::Ivr, StageKind::Queued, StageKind::Ringing, StageKind::Connected];

    /// The label value used by the API, metrics and records.
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Ivr => "ivr",
            StageKind::Queued => "queued",
            StageKind::Ringing => "ringing",
            StageKind::Connected => "connected",
        }
    }
}

/// How a call ended: every call gets exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Connected to an operator.
    Answered,
    /// Hung up while waiting in a queue.
    Abandoned,
    /// Hung up (or cancelled) before reaching a queue.
    IvrHangup,
    /// Left the queue at its maximum wait.
    Timeout,
    /// Sent to another queue or message.
    Overflow,
    /// Told the office is closed.
    Closed,
    /// The IVR ended the call (a hang-up menu choice).
    Completed,
    /// Ended by centralino's shutdown or a lost peer.
    Interrupted,
}

impl Outcome {
    /// Every outcome, for counters that must show zeros.
    pub const ALL: [Outcome; 8] = [
        Outcome::Answered,
        Outcome::Abandoned,
        Outcome::IvrHangup,
        Outcome::Timeout,
        Outcome::Overflow,
        Outcome::Closed,
        Outcome::Completed,
        Outcome::Interrupted,
    ];

    /// The label value used by the API, metrics and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Abandoned => "abandoned",
            Outcome::IvrHangup => "ivr_hangup",
            Outcome::Timeout => "timeout",
            Outcome::Overflow => "overflow",
            Outcome::Closed => "closed",
            Outcome::Completed => "completed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// A live call as the engine sees it.
#[derive(Debug)]
pub struct Call {
    /// The call's id.
    pub id: CallId,
    /// The caller's number or SIP user, as presented.
    pub caller: String,
    /// When the INVITE arrived (wall clock).
    pub arrived_at: jiff::Timestamp,
    /// When the INVITE arrived (monotonic).
    pub arrived_instant: Instant,
    /// Where the call is now.
    pub stage: Stage,
    /// The caller's language.
    pub language: Language,
    /// Menu choices so far, e.g. `["principale:1", "demografici:2"]`.
    pub ivr_path: Vec<String>,
    /// The queue the caller chose, once chosen.
    pub queue: Option<QueueName>,
    /// When the caller first joined a queue (kept when overflowed to another).
    pub queued_at: Option<Instant>,
    /// When the caller left the last queue without an operator (timeout, refusal, drain), so
    /// the recorded wait leaves out the goodbye message.
    pub left_queue_at: Option<Instant>,
    /// The caller's priority in queues (higher first; [`Input::CallerPriority`]).
    ///
    /// [`Input::CallerPriority`]: super::Input::CallerPriority
    pub priority: i32,
    /// Overflows so far (bounded, so two queues overflowing to each other cannot loop).
    pub overflows: u32,
    /// The expected wait told on first entering a queue.
    pub announced_wait: Option<Duration>,
    /// The expected wait told on entering the current queue, and when: its error is measured
    /// when an operator answers.
    pub entry_estimate: Option<(Instant, Duration)>,
    /// The last playback sequence number handed to media, so stale "finished" events are ignored.
    pub last_seq: u64,
    /// When this playback finishes, centralino hangs up with this outcome.
    pub hangup_after: Option<(u64, Outcome)>,
    /// After this playback, start music on hold.
    pub music_after: Option<u64>,
}

/// What the admin API shows of a live call.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CallView {
    /// The call's id.
    pub id: String,
    /// The caller's number or SIP user.
    pub caller: String,
    /// RFC 3339 arrival time.
    pub started_at: String,
    /// `ivr`, `queued`, `ringing` or `connected`.
    pub stage: &'static str,
    /// `it` or `en`.
    pub language: &'static str,
    /// Menu choices so far.
    pub ivr_path: Vec<String>,
    /// The queue, once chosen.
    pub queue: Option<String>,
    /// The operator talking to the caller, once connected.
    pub operator: Option<String>,
}

impl Call {
    /// The call as the admin API shows it.
    pub fn view(&self) -> CallView {
        CallView {
            id: self.id.0.clone(),
            caller: self.caller.clone(),
            started_at: self.arrived_at.to_string(),
            stage: self.stage.kind().as_str(),
            language: self.language.code(),
            ivr_path: self.ivr_path.clone(),
            queue: self.queue.as_ref().map(|q| q.0.clone()),
            operator: match &self.stage {
                Stage::Connected(c) => Some(c.operator.0.clone()),
                _ => None,
            },
        }
    }
}

/// The record of a finished call, for the store and metrics.
#[derive(Clone, Debug)]
pub struct CallRecord {
    /// The call's id.
    pub id: CallId,
    /// The caller's number or SIP user.
    pub caller: String,
    /// When the INVITE arrived.
    pub started_at: jiff::Timestamp,
    /// When the call ended.
    pub ended_at: jiff::Timestamp,
    /// The caller's language.
    pub language: Language,
    /// Menu choices so far.
    pub ivr_path: Vec<String>,
    /// The queue the caller chose, once chosen.
    pub queue: Option<QueueName>,
    /// How it ended.
    pub outcome: Outcome,
    /// Time spent in the queue, when the call reached one (until the answer, if answered).
    pub wait: Option<Duration>,
    /// The operator who answered.
    pub operator: Option<OperatorId>,
    /// When the operator answered.
    pub answered_at: Option<jiff::Timestamp>,
    /// Time talking to the operator, if answered.
    pub talk: Option<Duration>,
    /// The expected wait told to the caller on first entering a queue (before rounding to the
    /// spoken minutes), to compare with `wait`; `None` when none was told.
    pub announced_wait: Option<Duration>,
}
