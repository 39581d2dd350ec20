//! One waiting line per theme: its settings, its callers in order, and the queue_log events.
//!
//! Owns: [`QueueSetup`] (with its defaults), [`Queue`] (the line: priority first, then arrival
//! order; the round-robin cursor), [`QueueEvent`] and [`QueueEventKind`].
//! Must not touch: operators' presence, routing decisions, calls' stages (the engine moves
//! callers in and out of the line and decides who is offered to whom).

use std::collections::VecDeque;
use std::time::Duration;

use super::ids::{CallId, OperatorId, QueueName};
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
    /// The longest a caller may wait (enforced in a later issue). Default none.
    pub max_wait: Option<Duration>,
    /// Where callers go after `max_wait` (a later issue). Default none.
    pub overflow: Option<QueueName>,
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
        }
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
    /// The caller hung up while waiting. Data: position, original position, wait seconds.
    Abandon,
    /// The caller was sent away while waiting (the office closed and the drain time passed).
    /// Data: position, original position, wait seconds.
    ExitWithTimeout,
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
            QueueEventKind::Abandon => "ABANDON",
            QueueEventKind::ExitWithTimeout => "EXITWITHTIMEOUT",
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

/// A queue: settings plus its waiting callers.
#[derive(Debug)]
pub(crate) struct Queue {
    pub(crate) setup: QueueSetup,
    /// Waiting callers (ringing ones too), best first: `(priority, call)`.
    line: VecDeque<(i32, CallId)>,
    /// The operator last offered a call of this queue (round-robin's cursor).
    pub(crate) last_offered: Option<OperatorId>,
}

impl Queue {
    pub(crate) fn new(setup: QueueSetup) -> Queue {
        Queue { setup, line: VecDeque::new(), last_offered: None }
    }

    /// Adds a caller behind everyone of the same or higher priority; returns the position (1-based).
    pub(crate) fn push(&mut self, call: CallId, priority: i32) -> usize {
        let at = self.line.iter().position(|(p, _)| *p < priority).unwrap_or(self.line.len());
        self.line.insert(at, (priority, call));
        at + 1
    }

    /// Removes a caller; returns the position they had (1-based).
    pub(crate) fn remove(&mut self, call: &CallId) -> Option<usize> {
        let at = self.line.iter().position(|(_, c)| c == call)?;
        self.line.remove(at);
        Some(at + 1)
    }

    /// Waiting callers, best first.
    pub(crate) fn callers(&self) -> impl Iterator<Item = &CallId> {
        self.line.iter().map(|(_, c)| c)
    }

    pub(crate) fn len(&self) -> usize {
        self.line.len()
    }

    pub(crate) fn front(&self) -> Option<&CallId> {
        self.line.front().map(|(_, c)| c)
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
    }

    #[test]
    fn the_line_is_fifo_within_a_priority_and_higher_priorities_go_first() {
        let mut q = Queue::new(QueueSetup::new(QueueName("a".into())));
        assert_eq!(q.push(id("1"), 0), 1);
        assert_eq!(q.push(id("2"), 0), 2);
        assert_eq!(q.push(id("vip"), 5), 1);
        assert_eq!(q.push(id("3"), 0), 4);
        let order: Vec<&str> = q.callers().map(|c| c.0.as_str()).collect();
        assert_eq!(order, ["vip", "1", "2", "3"]);
        assert_eq!(q.remove(&id("2")), Some(3));
        assert_eq!(q.remove(&id("2")), None);
        assert_eq!(q.len(), 3);
        assert_eq!(q.front(), Some(&id("vip")));
    }
}
