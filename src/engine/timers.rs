//! The engine's deadlines: one ordered set, keyed by what each deadline is for.
//!
//! Owns: [`TimerKey`] and [`Timers`] (`(due, key)` ordered, plus `key → due` for re-arming and
//! cancelling). At most one deadline per key: setting a key again moves it.
//! Must not touch: the clock. The engine passes `now`; the driver sleeps until [`Timers::next`].

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::ids::{CallId, OperatorId};

/// What a deadline is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    /// The call's own stage timer: IVR no-input, or the answer delay while ringing.
    Call(CallId),
    /// An operator's phone has rung this long for the call: cancel the offer.
    Ring {
        /// The caller offered.
        call: CallId,
        /// The operator rung.
        operator: OperatorId,
    },
    /// The caller's retry delay after a ring-no-answer is over: offer again.
    Retry(CallId),
    /// The caller's language wait is over: any operator may take the call.
    LanguageWait(CallId),
    /// Time for the waiting caller's next update (position and wait, or information).
    Announce(CallId),
    /// The caller has waited the queue's max wait.
    MaxWait(CallId),
    /// The operator's wrap-up time is over.
    WrapUp(OperatorId),
    /// Look at the office hours to drain the queues after closing.
    DrainCheck,
}

/// Deadlines ordered by time, each under one key.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    due: BTreeSet<(Instant, TimerKey)>,
    by_key: HashMap<TimerKey, Instant>,
}

impl Timers {
    /// Arms `key` at `at`, replacing its previous deadline.
    pub(crate) fn set(&mut self, key: TimerKey, at: Instant) {
        self.cancel(&key);
        self.due.insert((at, key.clone()));
        self.by_key.insert(key, at);
    }

    /// Disarms `key`; nothing happens if it is not armed.
    pub(crate) fn cancel(&mut self, key: &TimerKey) {
        if let Some(at) = self.by_key.remove(key) {
            self.due.remove(&(at, key.clone()));
        }
    }

    /// Whether `key` is armed.
    pub(crate) fn is_set(&self, key: &TimerKey) -> bool {
        self.by_key.contains_key(key)
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest key due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerKey> {
        let (at, _) = self.due.first()?;
        if *at > now {
            return None;
        }
        let (_, key) = self.due.pop_first()?;
        self.by_key.remove(&key);
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keys_pop_in_time_order_and_rearming_moves_a_key() {
        #[allow(clippy::disallowed_methods)] // an arbitrary origin for the test
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let a = TimerKey::Retry(CallId("a".into()));
        let b = TimerKey::WrapUp(OperatorId("op".into()));
        timers.set(a.clone(), t0 + Duration::from_secs(5));
        timers.set(b.clone(), t0 + Duration::from_secs(3));
        timers.set(a.clone(), t0 + Duration::from_secs(1));
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(timers.pop_due(t0), None);
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(4)), Some(a.clone()));
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(4)), Some(b.clone()));
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(10)), None);
        timers.set(b.clone(), t0);
        timers.cancel(&b);
        assert!(!timers.is_set(&b) && timers.next().is_none());
    }
}
