//! The plain records the runtime hands to the store, and their column forms.
//!
//! Owns: [`CallStart`], [`QueueEvent`], the queue_log event names, and how an IVR path and an
//! event's data list map onto columns.
//! Must not touch: sqlx, the clock, engine decisions.

/// How many `dataN` columns `queue_events` has (Asterisk's realtime queue_log has five too:
/// `ATTENDEDTRANSFER` carries five fields).
pub const DATA_COLUMNS: usize = 5;

/// A call has arrived: its row exists (outcome NULL) until it finishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallStart {
    /// The call's id, unique across nodes.
    pub id: String,
    /// The node that took the call.
    pub node: String,
    /// The caller's number or SIP user, as presented (the store hashes it if configured).
    pub caller: String,
    /// When the INVITE arrived.
    pub arrived_at: jiff::Timestamp,
}

/// One line of the append-only queue log, in the spirit of Asterisk's `queue_log`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueEvent {
    /// When it happened.
    pub at: jiff::Timestamp,
    /// The call it is about (Asterisk: `NONE` for operator events such as `PAUSE`).
    pub call_id: String,
    /// The queue (Asterisk: `NONE` when the event concerns no queue).
    pub queue: String,
    /// The operator's username, when one is involved.
    pub operator: Option<String>,
    /// The event name, see [`kind`].
    pub event: String,
    /// The event's parameters in queue_log order, e.g. CONNECT: holdtime, call id, ringtime.
    pub data: Vec<String>,
}

impl From<crate::engine::QueueEvent> for QueueEvent {
    fn from(e: crate::engine::QueueEvent) -> QueueEvent {
        QueueEvent {
            at: e.at,
            call_id: e.call.0,
            queue: e.queue.0,
            operator: e.operator.map(|o| o.0),
            event: e.kind.as_str().to_string(),
            data: e.data,
        }
    }
}

/// Event names, as Asterisk's `queue_log` spells them.
pub mod kind {
    /// The caller entered the queue. Data: url, caller id, position.
    pub const ENTERQUEUE: &str = "ENTERQUEUE";
    /// An operator answered. Data: holdtime, bridged call id, ringtime.
    pub const CONNECT: &str = "CONNECT";
    /// The caller hung up after talking. Data: holdtime, calltime, origposition.
    pub const COMPLETECALLER: &str = "COMPLETECALLER";
    /// The operator hung up after talking. Data: holdtime, calltime, origposition.
    pub const COMPLETEAGENT: &str = "COMPLETEAGENT";
    /// The caller hung up while waiting. Data: position, origposition, waittime.
    pub const ABANDON: &str = "ABANDON";
    /// The caller left at the queue's maximum wait. Data: position, origposition, waittime.
    pub const EXITWITHTIMEOUT: &str = "EXITWITHTIMEOUT";
    /// The caller pressed a key to leave. Data: key, position, origposition, waittime.
    pub const EXITWITHKEY: &str = "EXITWITHKEY";
    /// An operator's phone rang without answer. Data: ringtime (ms).
    pub const RINGNOANSWER: &str = "RINGNOANSWER";
    /// The caller was sent to another queue or message.
    pub const OVERFLOW: &str = "OVERFLOW";
    /// A periodic announcement was played to the caller.
    pub const ANNOUNCE: &str = "ANNOUNCE";
    /// The operator paused. Data: reason.
    pub const PAUSE: &str = "PAUSE";
    /// The operator resumed.
    pub const UNPAUSE: &str = "UNPAUSE";
    /// The operator joined the queue.
    pub const ADDMEMBER: &str = "ADDMEMBER";
    /// The operator left the queue.
    pub const REMOVEMEMBER: &str = "REMOVEMEMBER";
}

impl QueueEvent {
    /// The `data1..data5` column values: the first four items as they are; the fifth column
    /// holds the rest joined with `|`, so the queue_log line reads back the same.
    pub fn data_columns(&self) -> [Option<String>; DATA_COLUMNS] {
        let mut cols: [Option<String>; DATA_COLUMNS] = Default::default();
        for (i, item) in self.data.iter().enumerate().take(DATA_COLUMNS - 1) {
            cols[i] = Some(item.clone());
        }
        if self.data.len() >= DATA_COLUMNS {
            cols[DATA_COLUMNS - 1] = Some(self.data[DATA_COLUMNS - 1..].join("|"));
        }
        cols
    }

    /// The data list back from columns: stops at the first NULL column; the last column is
    /// split on `|` again.
    pub fn data_from_columns(cols: [Option<String>; DATA_COLUMNS]) -> Vec<String> {
        let mut data: Vec<String> = cols.into_iter().map_while(|c| c).collect();
        if data.len() == DATA_COLUMNS {
            let folded = data.pop().unwrap_or_default();
            data.extend(folded.split('|').map(String::from));
        }
        data
    }
}

/// An IVR path as stored: menu choices joined by `>`, e.g. `principale:1>demografici:2`.
pub fn ivr_path_text(path: &[String]) -> String {
    path.join(">")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &[&str]) -> QueueEvent {
        QueueEvent {
            at: jiff::Timestamp::UNIX_EPOCH,
            call_id: "c1".into(),
            queue: "tributi".into(),
            operator: None,
            event: kind::ABANDON.into(),
            data: data.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn short_data_fills_leading_columns_and_leaves_the_rest_null() {
        let cols = event(&["1", "3", "42"]).data_columns();
        assert_eq!(cols, [Some("1".into()), Some("3".into()), Some("42".into()), None, None]);
        assert_eq!(QueueEvent::data_from_columns(cols), vec!["1", "3", "42"]);
    }

    #[test]
    fn data_beyond_five_items_folds_into_the_last_column() {
        let cols = event(&["a", "b", "c", "d", "e", "f"]).data_columns();
        assert_eq!(cols[4].as_deref(), Some("e|f"));
        assert_eq!(QueueEvent::data_from_columns(cols), vec!["a", "b", "c", "d", "e", "f"]);
    }

    #[test]
    fn empty_data_stores_all_nulls() {
        assert_eq!(event(&[]).data_columns(), [None, None, None, None, None]);
    }

    #[test]
    fn ivr_path_joins_choices_with_arrows() {
        let path = vec!["principale:1".to_string(), "demografici:2".to_string()];
        assert_eq!(ivr_path_text(&path), "principale:1>demografici:2");
        assert_eq!(ivr_path_text(&[]), "");
    }
}
