//! One waiting line per theme: its settings, its callers in order, and the queue_log events.
//!
//! Owns: [`QueueSetup`] (with its defaults), [`Queue`] (the line: priority first, then join
//! time; the round-robin cursor; the recent handle times), [`QueueEvent`] and
//! [`QueueEventKind`], and the exit policies [`NoOperators`] and [`ExitTo`].
//! Invariant: the line is sorted by `(priority desc, joined, entry seq)`, so two callers
//! already in it never swap places; only a higher priority or an earlier join time (a caller
//! overflowed from another queue, who keeps the time they first joined) goes ahead.
//! Must not touch: operators' presence, routing decisions, calls' stages (the engine moves
//! callers in and out of the line and decides who is offered to whom).

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::estimate::HandleTimes;
use super::ids::{CallId, DtmfDigit, OperatorId, QueueName};
use super::routing::Strategy;
use super::schedule::Schedule;

/// A queue's configuration, as the engine needs it.
#[derive(Clone, Debug)]
pub struct QueueSetup {
    /// The queue's name (one queue per theme).
    pub name: QueueName,
    /// The desk's own hours; `None` follows the office's.
    pub hours: Option<Schedule>,
    /// The theme shown to operators, e.g. `Tributi` in `"[Tributi] 3331234567"`.
    pub theme: String,
    /// How an operator is picked. Default: longest-idle.
    pub strategy: Strategy,
    /// How long an operator's phone rings before the offer is cancelled. Default 20 s.
    pub ring_timeout: Duration,
    /// After a ring-no-answer, how long the caller waits before the next offer. Default 2 s.
    pub retry_delay: Duration,
    /// How long an operator stays in wrap-up after a call of this queue. Default 10 s.
    pub wrap_up: Duration,
    /// The longest a caller waits in this queue (counted from entering it); then they go to
    /// `overflow`, or hear `attesa_scaduta` and are hung up (outcome `timeout`). Default none.
    pub max_wait: Option<Duration>,
    /// Where callers go at `max_wait`, when the queue is full, when no operator is logged in
    /// (with [`NoOperators::Overflow`]) and on the exit key (with [`ExitTo::Overflow`]). They
    /// keep the time they first joined, so their place there is fair. Default none: a message
    /// and hang-up instead.
    pub overflow: Option<QueueName>,
    /// The most callers waiting at once (ringing ones included); a caller arriving at a full
    /// queue goes to `overflow`, or hears `coda_piena` and is hung up. Default none (no limit).
    pub max_callers: Option<usize>,
    /// What happens to a caller joining while no operator of the queue is logged in (paused
    /// operators count as logged in). Default [`NoOperators::Join`].
    pub when_no_operators: NoOperators,
    /// The key that takes a waiting caller out of the queue; the caller is told about it.
    /// Default none.
    pub exit_key: Option<DtmfDigit>,
    /// Where the exit key takes the caller. Default [`ExitTo::MainMenu`].
    pub exit_to: ExitTo,
    /// How often a waiting caller hears an update between music on hold: the new position and
    /// wait when the position went down, else the next of `info_prompts`. Default 45 s; none:
    /// only the message on entering.
    pub announce_interval: Option<Duration>,
    /// Whether callers hear their position. Default true.
    pub announce_position: bool,
    /// Whether callers hear the expected wait when it can be estimated. Default true.
    pub announce_wait: bool,
    /// Informational prompts (names in every language) played in turn at updates when the
    /// position did not change. Default `["servizi_online"]`.
    pub info_prompts: Vec<String>,
    /// Talk times measured in this queue before the wait is estimated from them. Default 10.
    pub wait_min_samples: usize,
    /// The talk time assumed until `wait_min_samples` calls were measured; none: no wait is
    /// announced until then. Default none.
    pub expected_talk: Option<Duration>,
    /// Answered within this wait counts as within the service level (for stats). Default 20 s.
    pub service_level: Duration,
    /// For this long a caller is offered only to operators who speak the caller's language;
    /// after it, to anyone. Default 30 s.
    pub language_wait: Duration,
    /// Higher is served first when queues share operators. Default 0.
    pub priority: i32,
    /// Pause an operator after this many consecutive ring-no-answers (0 = never). Default 3.
    pub auto_pause_after: u32,
}

impl QueueSetup {
    /// A queue with every default; the theme is the name with a capital first letter.
    pub fn new(name: QueueName) -> QueueSetup {
        let mut chars = name.0.chars();
        let theme = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
        QueueSetup {
            name,
            hours: None,
            theme,
            strategy: Strategy::LongestIdle,
            ring_timeout: Duration::from_secs(20),
            retry_delay: Duration::from_secs(2),
            wrap_up: Duration::from_secs(10),
            max_wait: None,
            overflow: None,
            service_level: Duration::from_secs(20),
            language_wait: Duration::from_secs(30),
            priority: 0,
            auto_pause_after: 3,
            max_callers: None,
            when_no_operators: NoOperators::Join,
            exit_key: None,
            exit_to: ExitTo::MainMenu,
            announce_interval: Some(Duration::from_secs(45)),
            announce_position: true,
            announce_wait: true,
            info_prompts: vec!["servizi_online".to_string()],
            wait_min_samples: 10,
            expected_talk: None,
        }
    }

    /// The prompt names this queue's settings add to the engine's own (its informational
    /// prompts), for the start-up check.
    pub fn prompt_names(&self) -> Vec<String> {
        self.info_prompts.clone()
    }
}

/// What a caller joining a queue with no operator logged in gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NoOperators {
    /// Joins and waits (operators may log in); config name `join`.
    #[default]
    Join,
    /// Goes to the queue's overflow target (a message and hang-up if none); `overflow`.
    Overflow,
    /// Hears `nessun_operatore` and is hung up; `message`.
    Message,
}

/// Where a waiting caller's exit key leads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ExitTo {
    /// Back to the IVR's entry menu (welcome included); config name `menu`.
    #[default]
    MainMenu,
    /// To the queue's overflow target (the key is not offered if there is none); `overflow`.
    Overflow,
}

/// A policy name that is not one of the listed ones.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown value '{value}' (expected {expected})")]
pub struct UnknownPolicy {
    /// What was given.
    pub value: String,
    /// The accepted names.
    pub expected: &'static str,
}

impl NoOperators {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            NoOperators::Join => "join",
            NoOperators::Overflow => "overflow",
            NoOperators::Message => "message",
        }
    }
}

impl FromStr for NoOperators {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<NoOperators, UnknownPolicy> {
        [NoOperators::Join, NoOperators::Overflow, NoOperators::Message]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPolicy { value: s.to_string(), expected: "join, overflow or message" })
    }
}

impl ExitTo {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitTo::MainMenu => "menu",
            ExitTo::Overflow => "overflow",
        }
    }
}

impl FromStr for ExitTo {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<ExitTo, UnknownPolicy> {
        [ExitTo::MainMenu, ExitTo::Overflow]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPolicy { value: s.to_string(), expected: "menu or overflow" })
    }
}

impl fmt::Display for NoOperators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ExitTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The queue_log event names (Asterisk's spelling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueEventKind {
    /// The caller joined. Data: url (empty), caller, position.
    EnterQueue,
    /// An operator did not answer in time, or refused (not busy). Data: ring time in ms.
    RingNoAnswer,
    /// An operator answered. Data: hold seconds, call id, ring seconds.
    Connect,
    /// The caller hung up after talking. Data: hold seconds, talk seconds, original position.
    CompleteCaller,
    /// The operator hung up after talking. Data: hold seconds, talk seconds, original position.
    CompleteAgent,
    /// The caller heard their position and/or expected wait. Data: position, expected wait in
    /// seconds (empty when not said).
    Announce,
    /// The caller hung up while waiting (or while an operator's phone rang). Data: position,
    /// original position, wait seconds.
    Abandon,
    /// The caller was sent away while waiting with a message: the queue's max wait passed with
    /// no overflow target, or the office closed and the drain time passed.
    /// Data: position, original position, wait seconds.
    ExitWithTimeout,
    /// The caller pressed the queue's exit key. Data: key, position, original position, wait
    /// seconds, where to (`menu` or the overflow queue).
    ExitWithKey,
    /// The caller was sent elsewhere by a limit. Data: reason (`timeout`, `full`,
    /// `no_operators`), target queue (empty: a message and hang-up), position, original
    /// position, wait seconds (position 0 and wait 0 when refused on entering).
    Overflow,
    /// The operator paused. Call `NONE`, one event per queue they serve. Data: reason.
    Pause,
    /// The operator resumed. Call `NONE`, one event per queue they serve.
    Unpause,
}

impl QueueEventKind {
    /// The event name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueEventKind::EnterQueue => "ENTERQUEUE",
            QueueEventKind::RingNoAnswer => "RINGNOANSWER",
            QueueEventKind::Connect => "CONNECT",
            QueueEventKind::CompleteCaller => "COMPLETECALLER",
            QueueEventKind::CompleteAgent => "COMPLETEAGENT",
            QueueEventKind::Announce => "ANNOUNCE",
            QueueEventKind::Abandon => "ABANDON",
            QueueEventKind::ExitWithTimeout => "EXITWITHTIMEOUT",
            QueueEventKind::ExitWithKey => "EXITWITHKEY",
            QueueEventKind::Overflow => "OVERFLOW",
            QueueEventKind::Pause => "PAUSE",
            QueueEventKind::Unpause => "UNPAUSE",
        }
    }
}

/// One line of the queue log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEvent {
    /// When it happened.
    pub at: jiff::Timestamp,
    /// The call (`NONE` for operator events such as PAUSE).
    pub call: CallId,
    /// The queue.
    pub queue: QueueName,
    /// The operator involved, if any.
    pub operator: Option<OperatorId>,
    /// What happened.
    pub kind: QueueEventKind,
    /// The event's parameters, see [`QueueEventKind`].
    pub data: Vec<String>,
}

/// The call id used by events that concern no call.
pub fn no_call() -> CallId {
    CallId("NONE".to_string())
}

/// One caller in a line.
#[derive(Debug)]
struct Place {
    priority: i32,
    joined: Instant,
    seq: u64,
    call: CallId,
}

impl Place {
    /// Sort key: higher priority first, then earlier join time, then entry order.
    fn key(&self) -> (std::cmp::Reverse<i32>, Instant, u64) {
        (std::cmp::Reverse(self.priority), self.joined, self.seq)
    }
}

/// A queue: settings plus its waiting callers.
#[derive(Debug)]
pub(crate) struct Queue {
    pub(crate) setup: QueueSetup,
    /// Waiting callers (ringing ones too), best first (see the module invariant).
    line: VecDeque<Place>,
    /// The operator last offered a call of this queue (round-robin's cursor).
    pub(crate) last_offered: Option<OperatorId>,
    /// Recent talk and ring times, for the expected wait.
    pub(crate) history: HandleTimes,
}

impl Queue {
    pub(crate) fn new(setup: QueueSetup) -> Queue {
        Queue { setup, line: VecDeque::new(), last_offered: None, history: HandleTimes::default() }
    }

    /// Adds a caller behind everyone of a higher priority, or of the same priority who joined
    /// earlier (`joined`, then `seq` for the same instant); returns the position (1-based).
    pub(crate) fn push(&mut self, call: CallId, priority: i32, joined: Instant, seq: u64) -> usize {
        let place = Place { priority, joined, seq, call };
        let at = self.line.partition_point(|p| p.key() <= place.key());
        self.line.insert(at, place);
        at + 1
    }

    /// Removes a caller; returns the position they had (1-based).
    pub(crate) fn remove(&mut self, call: &CallId) -> Option<usize> {
        let at = self.line.iter().position(|p| &p.call == call)?;
        self.line.remove(at);
        Some(at + 1)
    }

    /// The caller's position (1-based), if waiting here.
    pub(crate) fn position(&self, call: &CallId) -> Option<usize> {
        self.line.iter().position(|p| &p.call == call).map(|at| at + 1)
    }

    /// Moves a waiting caller to a new priority (keeping their join time); returns the new
    /// position.
    pub(crate) fn reprioritize(&mut self, call: &CallId, priority: i32) -> Option<usize> {
        let at = self.line.iter().position(|p| &p.call == call)?;
        let Place { joined, seq, call, .. } = self.line.remove(at)?;
        Some(self.push(call, priority, joined, seq))
    }

    /// Waiting callers, best first.
    pub(crate) fn callers(&self) -> impl Iterator<Item = &CallId> {
        self.line.iter().map(|p| &p.call)
    }

    pub(crate) fn len(&self) -> usize {
        self.line.len()
    }

    pub(crate) fn front(&self) -> Option<&CallId> {
        self.line.front().map(|p| &p.call)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> CallId {
        CallId(s.into())
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let q = QueueSetup::new(QueueName("tributi".into()));
        assert_eq!(q.theme, "Tributi");
        assert_eq!(q.strategy, Strategy::LongestIdle);
        assert_eq!(
            (q.ring_timeout, q.retry_delay, q.wrap_up, q.service_level, q.language_wait),
            (
                Duration::from_secs(20),
                Duration::from_secs(2),
                Duration::from_secs(10),
                Duration::from_secs(20),
                Duration::from_secs(30)
            )
        );
        assert_eq!((q.max_wait, q.priority, q.auto_pause_after), (None, 0, 3));
        assert_eq!((q.max_callers, q.when_no_operators, q.exit_key, q.exit_to), (None, NoOperators::Join, None, ExitTo::MainMenu));
        assert_eq!((q.announce_interval, q.announce_position, q.announce_wait), (Some(Duration::from_secs(45)), true, true));
        assert_eq!((q.info_prompts.clone(), q.wait_min_samples, q.expected_talk), (vec!["servizi_online".to_string()], 10, None));
    }

    #[test]
    fn policies_parse_from_their_config_names() {
        for p in [NoOperators::Join, NoOperators::Overflow, NoOperators::Message] {
            assert_eq!(p.as_str().parse::<NoOperators>(), Ok(p));
        }
        for p in [ExitTo::MainMenu, ExitTo::Overflow] {
            assert_eq!(p.as_str().parse::<ExitTo>(), Ok(p));
        }
        assert!("hangup".parse::<NoOperators>().is_err() && "main".parse::<ExitTo>().is_err());
    }

    fn t0() -> Instant {
        #[allow(clippy::disallowed_methods)] // an arbitrary origin for the test
        Instant::now()
    }

    #[test]
    fn the_line_is_fifo_within_a_priority_and_higher_priorities_go_first() {
        let t = t0();
        let s = Duration::from_secs;
        let mut q = Queue::new(QueueSetup::new(QueueName("a".into())));
        assert_eq!(q.push(id("1"), 0, t, 1), 1);
        assert_eq!(q.push(id("2"), 0, t, 2), 2);
        assert_eq!(q.push(id("vip"), 5, t + s(1), 3), 1);
        assert_eq!(q.push(id("3"), 0, t + s(2), 4), 4);
        let order: Vec<&str> = q.callers().map(|c| c.0.as_str()).collect();
        assert_eq!(order, ["vip", "1", "2", "3"]);
        assert_eq!(q.remove(&id("2")), Some(3));
        assert_eq!(q.remove(&id("2")), None);
        assert_eq!(q.len(), 3);
        assert_eq!(q.front(), Some(&id("vip")));
        // An overflowed caller keeps their earlier join time: ahead of later joiners only.
        assert_eq!(q.push(id("moved"), 0, t + s(1), 0), 3);
        assert_eq!(q.position(&id("3")), Some(4));
        assert_eq!(q.reprioritize(&id("3"), 5), Some(2), "behind the earlier vip");
        assert_eq!(q.position(&id("moved")), Some(4));
    }
}
