//! SIP counters for metrics, shared by the transport screen and the dialog handlers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::collections::BTreeMap;

/// Process-wide SIP counters.
#[derive(Default)]
pub struct SipCounters {
    /// Datagrams that did not parse as SIP.
    pub parse_errors: AtomicU64,
    /// DTMF digits received by SIP INFO.
    pub dtmf_info: AtomicU64,
    /// In-dialog requests refused because they came from another address than the peer's.
    pub foreign_in_dialog: AtomicU64,
    // std Mutex: a map insert per message, never held across an `.await`.
    messages: Mutex<BTreeMap<(&'static str, String, String), u64>>,
}

/// Which way a message went.
#[derive(Clone, Copy)]
pub enum Direction {
    In,
    Out,
}

impl SipCounters {
    /// Counts one request (`status` empty) or response.
    pub fn count(&self, direction: Direction, method: &str, status: &str) {
        let dir = match direction {
            Direction::In => "in",
            Direction::Out => "out",
        };
        let mut m = self.messages.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((dir, method.to_string(), status.to_string())).or_default() += 1;
    }

    /// `(direction, method, status) -> count`.
    pub fn messages(&self) -> BTreeMap<(&'static str, String, String), u64> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn parse_errors(&self) -> u64 {
        self.parse_errors.load(Ordering::Relaxed)
    }
}
