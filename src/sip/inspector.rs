//! Counts every SIP message in and out by method and status, through rsipstack's
//! message-inspector hook (it sees all messages, retransmissions included).

use std::sync::Arc;

use rsipstack::sip::{HeadersExt, SipMessage};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transport::SipAddr;

use super::counters::{Direction, SipCounters};

pub struct CountingInspector {
    counters: Arc<SipCounters>,
}

impl CountingInspector {
    pub fn new(counters: Arc<SipCounters>) -> Self {
        CountingInspector { counters }
    }

    fn count(&self, direction: Direction, msg: &SipMessage) {
        match msg {
            SipMessage::Request(r) => self.counters.count(direction, &r.method.to_string(), ""),
            SipMessage::Response(r) => {
                let method = r
                    .cseq_header()
                    .ok()
                    .and_then(|c| c.method().ok())
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                self.counters.count(direction, &method, &r.status_code.code().to_string())
            }
        }
    }
}

impl MessageInspector for CountingInspector {
    fn before_send(&self, msg: SipMessage, _dest: Option<&SipAddr>) -> SipMessage {
        self.count(Direction::Out, &msg);
        msg
    }

    fn after_received(&self, msg: SipMessage, _from: Option<&SipAddr>) -> SipMessage {
        self.count(Direction::In, &msg);
        msg
    }
}
