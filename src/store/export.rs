//! Exports `queue_events` as Asterisk `queue_log` text, for tools that read that format.
//!
//! Owns: the line format `epoch|callid|queue|agent|event|data1|data2|…` and reading the events
//! back in time order, page by page (bounded memory whatever the range).
//! Must not touch: writes, the clock, engine decisions.
//! Fields are sanitised so every event stays one line of the right shape: `|` becomes `_`,
//! line breaks become spaces (Asterisk itself does neither).

use std::io::Write;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::model::{QueueEvent, DATA_COLUMNS};
use super::{from_ms, to_ms, Store, StoreError};

/// Events read per query while exporting.
const PAGE: i64 = 1000;

/// What can go wrong exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the events failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output failed (closed pipe, full disk).
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

/// One `queue_log` line (without the newline): epoch seconds, call id, queue, operator or
/// `NONE`, event, then the data fields.
pub fn queue_log_line(e: &QueueEvent) -> String {
    let mut fields = vec![
        e.at.as_second().to_string(),
        clean(&e.call_id),
        clean(&e.queue),
        e.operator.as_deref().map(clean).unwrap_or_else(|| "NONE".to_string()),
        clean(&e.event),
    ];
    fields.extend(e.data.iter().map(|d| clean(d)));
    fields.join("|")
}

/// A field made safe for the `|`-separated, line-per-event format.
fn clean(s: &str) -> String {
    s.replace('|', "_").replace(['\n', '\r'], " ")
}

impl Store {
    /// Writes every event with `from <= at < to` as `queue_log` lines, oldest first.
    /// Returns how many lines were written.
    pub async fn export_queue_log(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
        out: &mut (impl Write + Send),
    ) -> Result<u64, ExportError> {
        let mut written = 0;
        // Keyset pagination on (at, id): stable even while the writer appends.
        let mut after: (i64, i64) = (to_ms(from), i64::MIN);
        loop {
            let page = self.events_page(after, to_ms(to)).await?;
            for (key, event) in &page {
                after = *key;
                writeln!(out, "{}", queue_log_line(event))?;
                written += 1;
            }
            if (page.len() as i64) < PAGE {
                break;
            }
        }
        out.flush()?;
        Ok(written)
    }

    /// Events with `(at, id) > after` and `at < before_ms`, at most one page, each with its key.
    async fn events_page(
        &self,
        after: (i64, i64),
        before_ms: i64,
    ) -> Result<Vec<((i64, i64), QueueEvent)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, call_id, queue, operator, event, data1, data2, data3, data4, data5 \
             FROM queue_events \
             WHERE (at > $1 OR (at = $1 AND id > $2)) AND at < $3 \
             ORDER BY at, id LIMIT $4",
        )
        .bind(after.0)
        .bind(after.1)
        .bind(before_ms)
        .bind(PAGE)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let (id, event) = event_from_row(row)?;
                Ok(((to_ms(event.at), id), event))
            })
            .collect()
    }

    /// Every stored event of one call, oldest first.
    pub async fn call_events(&self, call_id: &str) -> Result<Vec<QueueEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, call_id, queue, operator, event, data1, data2, data3, data4, data5 \
             FROM queue_events WHERE call_id = $1 ORDER BY at, id",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(event_from_row(row)?.1)).collect()
    }
}

/// A `queue_events` row (columns in table order) as its id and event.
fn event_from_row(row: &AnyRow) -> Result<(i64, QueueEvent), StoreError> {
    let mut cols: [Option<String>; DATA_COLUMNS] = Default::default();
    for (i, col) in cols.iter_mut().enumerate() {
        *col = row.try_get(6 + i)?;
    }
    let event = QueueEvent {
        at: from_ms(row.try_get("at")?),
        call_id: row.try_get("call_id")?,
        queue: row.try_get("queue")?,
        operator: row.try_get("operator")?,
        event: row.try_get("event")?,
        data: QueueEvent::data_from_columns(cols),
    };
    Ok((row.try_get("id")?, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(operator: Option<&str>, event: &str, data: &[&str]) -> QueueEvent {
        QueueEvent {
            at: "2026-03-02T08:05:07.250Z".parse().unwrap(),
            call_id: "bari1-0001".into(),
            queue: "tributi".into(),
            operator: operator.map(String::from),
            event: event.into(),
            data: data.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn line_follows_asterisk_queue_log_field_order() {
        let line = queue_log_line(&event(Some("mrossi"), "CONNECT", &["12", "bari1-0001", "3"]));
        assert_eq!(line, "1772438707|bari1-0001|tributi|mrossi|CONNECT|12|bari1-0001|3");
    }

    #[test]
    fn missing_operator_is_written_as_none() {
        let line = queue_log_line(&event(None, "ENTERQUEUE", &["", "3331234567", "1"]));
        assert_eq!(line, "1772438707|bari1-0001|tributi|NONE|ENTERQUEUE||3331234567|1");
    }

    #[test]
    fn separators_and_line_breaks_inside_fields_cannot_break_the_format() {
        let line = queue_log_line(&event(None, "PAUSE", &["pausa|caffè\nlunga"]));
        assert_eq!(line, "1772438707|bari1-0001|tributi|NONE|PAUSE|pausa_caffè lunga");
    }

    #[test]
    fn event_without_data_ends_at_the_event_name() {
        assert_eq!(queue_log_line(&event(Some("a"), "UNPAUSE", &[])), "1772438707|bari1-0001|tributi|a|UNPAUSE");
    }
}
