//! Writing call records and queue events, and reading a call back.
//!
//! Owns: the `calls` and `queue_events` write statements, the batch transaction used by the
//! writer task, and start-up recovery of calls a crash left open ([`Store::close_interrupted`]).
//! Must not touch: reports (report.rs), retention (retention.rs), engine decisions, the clock.
//! Invariants: a finish without a start still lands (UPSERT); a start never overwrites a finish;
//! `last_seen_at` only moves forward and only on live rows.

use std::collections::HashMap;

use sqlx::AnyConnection;
use sqlx::{AssertSqlSafe, Row};

use super::model::{ivr_path_text, CallStart, QueueEvent, DATA_COLUMNS};
use super::writer::WriteItem;
use super::{duration_ms, from_ms, to_ms, Store, StoreError};
use crate::engine::call::{CallRecord, Outcome};

/// Rows per multi-row `INSERT` into `queue_events` (10 parameters each).
const EVENTS_PER_INSERT: usize = 50;
// SQLite before 3.32 allowed 999 parameters per statement.
const _: () = assert!(EVENTS_PER_INSERT * (5 + DATA_COLUMNS) <= 999);

/// A `calls` row as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCall {
    /// The call's id.
    pub id: String,
    /// The node that took it.
    pub node: String,
    /// The caller, or its salted hash.
    pub caller: String,
    /// `it`/`en`; `None` while live.
    pub language: Option<String>,
    /// Menu choices joined by `>`.
    pub ivr_path: String,
    /// The queue, once chosen.
    pub queue: Option<String>,
    /// When the INVITE arrived.
    pub arrived_at: jiff::Timestamp,
    /// When it entered the queue, when known.
    pub queued_at: Option<jiff::Timestamp>,
    /// When an operator answered.
    pub answered_at: Option<jiff::Timestamp>,
    /// When it ended; `None` while live.
    pub ended_at: Option<jiff::Timestamp>,
    /// [`Outcome::as_str`]; `None` while live.
    pub outcome: Option<String>,
    /// Time in the queue.
    pub wait_ms: Option<i64>,
    /// Time talking to an operator.
    pub talk_ms: Option<i64>,
    /// The operator's wrap-up time after the call.
    pub wrap_ms: Option<i64>,
    /// The operator who answered.
    pub operator: Option<String>,
    /// Abandoned sooner than the short-abandon threshold.
    pub short_abandon: bool,
    /// The last time the call was known alive.
    pub last_seen_at: jiff::Timestamp,
}

impl Store {
    /// Records a call's arrival (outcome NULL until it finishes). A repeated start is ignored.
    pub async fn call_started(&self, start: &CallStart) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        self.insert_start(&mut conn, start).await
    }

    /// Records a finished call, inserting the row if its start never landed.
    pub async fn call_finished(&self, record: &CallRecord) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        self.upsert_finish(&mut conn, record).await
    }

    /// Appends queue events in one transaction and moves their calls' `last_seen_at` forward.
    pub async fn append_events(&self, events: &[QueueEvent]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_events(&mut tx, events).await?;
        touch_calls(&mut tx, events.iter().map(|e| (e.call_id.as_str(), e.at))).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks live calls as seen at `at`, bounding the end time `close_interrupted` will give them.
    pub async fn touch(&self, call_ids: &[String], at: jiff::Timestamp) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        touch_calls(&mut tx, call_ids.iter().map(|id| (id.as_str(), at))).await?;
        tx.commit().await?;
        Ok(())
    }

    /// At start-up: closes this node's calls a crash left open, with outcome `interrupted` and
    /// `ended_at` = their `last_seen_at` (never later than `now`). Returns how many.
    pub async fn close_interrupted(&self, now: jiff::Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE calls SET outcome = $1, \
                 ended_at = CASE WHEN last_seen_at < $2 THEN last_seen_at ELSE $2 END \
             WHERE outcome IS NULL AND node = $3",
        )
        .bind(Outcome::Interrupted.as_str())
        .bind(to_ms(now))
        .bind(self.node())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// One call's row, if stored.
    pub async fn call(&self, id: &str) -> Result<Option<StoredCall>, StoreError> {
        let row = sqlx::query(
            "SELECT id, node, caller, language, ivr_path, queue, arrived_at, queued_at, answered_at, \
                    ended_at, outcome, wait_ms, talk_ms, wrap_ms, operator, \
                    CASE WHEN short_abandon THEN 1 ELSE 0 END AS short_abandon, last_seen_at \
             FROM calls WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let ts = |col: &str| -> Result<Option<jiff::Timestamp>, sqlx::Error> {
            Ok(row.try_get::<Option<i64>, _>(col)?.map(from_ms))
        };
        Ok(Some(StoredCall {
            id: row.try_get("id")?,
            node: row.try_get("node")?,
            caller: row.try_get("caller")?,
            language: row.try_get("language")?,
            ivr_path: row.try_get("ivr_path")?,
            queue: row.try_get("queue")?,
            arrived_at: from_ms(row.try_get("arrived_at")?),
            queued_at: ts("queued_at")?,
            answered_at: ts("answered_at")?,
            ended_at: ts("ended_at")?,
            outcome: row.try_get("outcome")?,
            wait_ms: row.try_get("wait_ms")?,
            talk_ms: row.try_get("talk_ms")?,
            wrap_ms: row.try_get("wrap_ms")?,
            operator: row.try_get("operator")?,
            short_abandon: row.try_get::<i64, _>("short_abandon")? != 0,
            last_seen_at: from_ms(row.try_get("last_seen_at")?),
        }))
    }

    /// Writes a writer batch in one transaction: all of it lands, or none of it.
    pub(crate) async fn write_batch(&self, items: &[WriteItem]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.write_items(&mut tx, items).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn write_items(&self, conn: &mut AnyConnection, items: &[WriteItem]) -> Result<(), StoreError> {
        let mut events: Vec<&QueueEvent> = Vec::new();
        let mut seen: Vec<(&str, jiff::Timestamp)> = Vec::new();
        for item in items {
            match item {
                WriteItem::CallStarted(start) => self.insert_start(conn, start).await?,
                WriteItem::CallFinished(record) => self.upsert_finish(conn, record).await?,
                WriteItem::Events(batch) => {
                    events.extend(batch.iter());
                    seen.extend(batch.iter().map(|e| (e.call_id.as_str(), e.at)));
                }
                WriteItem::Touch { call_ids, at } => seen.extend(call_ids.iter().map(|id| (id.as_str(), *at))),
                WriteItem::Presence { username, state, reason, at } => {
                    record_presence(conn, username, state, reason.as_deref(), *at).await?
                }
            }
        }
        if self.hasher.is_some() {
            // ENTERQUEUE carries the caller's number (queue_log's callerid field).
            let hashed: Vec<QueueEvent> = events
                .iter()
                .map(|e| {
                    let mut e = (*e).clone();
                    if e.event == super::model::kind::ENTERQUEUE {
                        if let Some(caller) = e.data.get_mut(1).filter(|c| !c.is_empty()) {
                            *caller = self.stored_caller(caller);
                        }
                    }
                    e
                })
                .collect();
            insert_events(conn, hashed.iter()).await?;
        } else {
            insert_events(conn, events).await?;
        }
        touch_calls(conn, seen).await?;
        Ok(())
    }

    /// An operator's presence history, with durations: `(state, reason, started, ended)`,
    /// oldest first (the current state has no end).
    pub async fn presence_history(
        &self,
        username: &str,
    ) -> Result<Vec<(String, Option<String>, jiff::Timestamp, Option<jiff::Timestamp>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, reason, started_at, ended_at FROM operator_presence WHERE username = $1 ORDER BY started_at, id",
        )
        .bind(username.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("state")?,
                    r.try_get("reason")?,
                    from_ms(r.try_get("started_at")?),
                    r.try_get::<Option<i64>, _>("ended_at")?.map(from_ms),
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    async fn insert_start(&self, conn: &mut AnyConnection, start: &CallStart) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO calls (id, node, caller, arrived_at, last_seen_at) VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&start.id)
        .bind(&start.node)
        .bind(self.stored_caller(&start.caller))
        .bind(to_ms(start.arrived_at))
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn upsert_finish(&self, conn: &mut AnyConnection, r: &CallRecord) -> Result<(), StoreError> {
        let wait_ms = r.wait.map(duration_ms);
        // The record has no queue-entry time: the caller left the queue when answered, or else
        // when the call ended, so entry = that moment − wait.
        let left_queue = r.answered_at.or((r.outcome != Outcome::Answered).then_some(r.ended_at));
        let queued_at = match (&r.queue, wait_ms, left_queue) {
            (Some(_), Some(w), Some(left)) => Some(to_ms(left).saturating_sub(w)),
            _ => None,
        };
        let short_abandon = r.outcome == Outcome::Abandoned && r.wait.is_some_and(|w| w < self.short_abandon);
        sqlx::query(
            "INSERT INTO calls (id, node, caller, language, ivr_path, queue, arrived_at, queued_at, \
                                answered_at, ended_at, outcome, wait_ms, talk_ms, operator, short_abandon, \
                                last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $10) \
             ON CONFLICT (id) DO UPDATE SET \
                 caller = excluded.caller, language = excluded.language, ivr_path = excluded.ivr_path, \
                 queue = excluded.queue, arrived_at = excluded.arrived_at, \
                 queued_at = COALESCE(excluded.queued_at, calls.queued_at), \
                 answered_at = excluded.answered_at, ended_at = excluded.ended_at, \
                 outcome = excluded.outcome, wait_ms = excluded.wait_ms, talk_ms = excluded.talk_ms, \
                 operator = excluded.operator, short_abandon = excluded.short_abandon, \
                 last_seen_at = excluded.last_seen_at",
        )
        .bind(&r.id.0)
        .bind(self.node())
        .bind(self.stored_caller(&r.caller))
        .bind(r.language.code())
        .bind(ivr_path_text(&r.ivr_path))
        .bind(r.queue.as_ref().map(|q| q.0.as_str()))
        .bind(to_ms(r.started_at))
        .bind(queued_at)
        .bind(r.answered_at.map(to_ms))
        .bind(to_ms(r.ended_at))
        .bind(r.outcome.as_str())
        .bind(wait_ms)
        .bind(r.talk.map(duration_ms))
        .bind(r.operator.as_ref().map(|o| o.0.as_str()))
        .bind(short_abandon)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Appends events with multi-row inserts (one round trip per [`EVENTS_PER_INSERT`] events).
async fn insert_events<'e>(
    conn: &mut AnyConnection,
    events: impl IntoIterator<Item = &'e QueueEvent>,
) -> Result<(), StoreError> {
    let events: Vec<&QueueEvent> = events.into_iter().collect();
    for chunk in events.chunks(EVENTS_PER_INSERT) {
        let mut query = sqlx::query(AssertSqlSafe(insert_events_sql(chunk.len())));
        for e in chunk {
            query = query
                .bind(to_ms(e.at))
                .bind(e.call_id.as_str())
                .bind(e.queue.as_str())
                .bind(e.operator.as_deref())
                .bind(e.event.as_str());
            for col in e.data_columns() {
                query = query.bind(col);
            }
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `INSERT … VALUES ($1, …, $10), ($11, …)` for `rows` events. Built from a count only.
fn insert_events_sql(rows: usize) -> String {
    const COLS: usize = 5 + DATA_COLUMNS;
    let mut sql = String::from(
        "INSERT INTO queue_events (at, call_id, queue, operator, event, data1, data2, data3, data4, data5) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        let params: Vec<String> = (1..=COLS).map(|c| format!("${}", r * COLS + c)).collect();
        sql.push('(');
        sql.push_str(&params.join(", "));
        sql.push(')');
    }
    sql
}

/// Moves each live call's `last_seen_at` forward to the latest time given for it.
async fn touch_calls<'a>(
    conn: &mut AnyConnection,
    seen: impl IntoIterator<Item = (&'a str, jiff::Timestamp)>,
) -> Result<(), StoreError> {
    let mut latest: HashMap<&str, jiff::Timestamp> = HashMap::new();
    for (id, at) in seen {
        let t = latest.entry(id).or_insert(at);
        *t = (*t).max(at);
    }
    for (id, at) in latest {
        sqlx::query("UPDATE calls SET last_seen_at = $1 WHERE id = $2 AND outcome IS NULL AND last_seen_at < $1")
            .bind(to_ms(at))
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Closes the operator's open presence row at `at` and opens one for the new state.
async fn record_presence(
    conn: &mut AnyConnection,
    username: &str,
    state: &str,
    reason: Option<&str>,
    at: jiff::Timestamp,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE operator_presence SET ended_at = $2 WHERE username = $1 AND ended_at IS NULL")
        .bind(username.to_string())
        .bind(to_ms(at))
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO operator_presence (username, state, reason, started_at) VALUES ($1, $2, $3, $4)")
        .bind(username.to_string())
        .bind(state.to_string())
        .bind(reason.map(str::to_string))
        .bind(to_ms(at))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_insert_numbers_placeholders_row_after_row() {
        let sql = insert_events_sql(2);
        assert!(
            sql.ends_with(
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10), ($11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
            ),
            "{sql}"
        );
    }
}

