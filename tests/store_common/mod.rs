//! The store suite, written once and run against SQLite (`store_sqlite.rs`) and PostgreSQL
//! (`store_postgres.rs`). Each test gets a fresh database: a SQLite file in a temporary folder,
//! or a PostgreSQL schema `t_<random>` selected through the URL's `search_path`, dropped after.
//! No sleeps: waits are on the writer's progress, bounded by a timeout.
#![allow(dead_code, unused_macros, unused_imports)] // each test file uses a part of the suite

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use centralino::engine::call::{CallRecord, Outcome};
use centralino::engine::ids::{CallId, Language, OperatorId, QueueName};
use centralino::store::report::{GroupBy, ReportParams};
use centralino::store::{spawn_writer, CallStart, CallerHasher, QueueEvent, Store, WriteItem, WriterStats};

/// Declares one `#[tokio::test]` per suite test, each run through `$with_db`.
macro_rules! suite {
    ($with_db:path) => {
        $crate::store_common::suite!(@each $with_db;
            migrations_apply_twice_idempotently,
            start_then_finish_round_trips,
            answered_call_stores_operator_answer_and_talk,
            finish_without_start_still_lands,
            late_start_does_not_reopen_a_finished_call,
            close_interrupted_ends_this_nodes_live_calls_at_last_seen,
            writer_batches_and_drains_on_shutdown,
            writer_retries_after_a_database_error_and_loses_nothing,
            report_kpis_on_a_known_data_set,
            queue_log_export_pages_through_events_in_order,
            retention_deletes_old_finished_rows_and_keeps_live_calls,
            hashed_callers_are_stored_without_their_number,
            presence_history_closes_each_state_when_the_next_begins,
            operator_accounts_round_trip_without_plain_passwords
        );
    };
    (@each $with_db:path; $($name:ident),*) => {
        $(
            // Current-thread: the writer task runs only when the test awaits, so items sent
            // back to back share a batch deterministically.
            #[tokio::test]
            async fn $name() {
                $with_db($crate::store_common::$name).await
            }
        )*
    };
}
pub(crate) use suite;

/// A random lower-case suffix for schema names (std's randomly keyed hasher; no RNG crate).
fn random_suffix() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// Runs `body` with the URL of a fresh SQLite file in a folder that does not exist yet.
pub async fn with_sqlite<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}/data/centralino.db", dir.path().display());
    body(url).await;
}

/// The PostgreSQL server to test against, if any.
pub fn postgres_base_url() -> Option<String> {
    std::env::var("CENTRALINO_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
}

/// Runs `body` with a URL whose `search_path` is a fresh schema, dropped afterwards (also when
/// the body panics). Returns at once, with a note, when `CENTRALINO_TEST_POSTGRES_URL` is unset.
pub async fn with_postgres<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(base) = postgres_base_url() else {
        eprintln!("CENTRALINO_TEST_POSTGRES_URL is unset: PostgreSQL store test skipped");
        return;
    };
    sqlx::any::install_default_drivers();
    let schema = format!("t_{}", random_suffix());
    let admin = sqlx::AnyPool::connect(&base).await.expect("connect to PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .expect("create test schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let outcome = tokio::spawn(body(url)).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&admin)
        .await
        .expect("drop test schema");
    admin.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

// ---- fixtures ----

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().expect("RFC 3339 timestamp")
}

fn start(id: &str, node: &str, at: &str) -> CallStart {
    CallStart { id: id.into(), node: node.into(), caller: "3331234567".into(), arrived_at: ts(at) }
}

fn record(id: &str, at: &str, queue: Option<&str>, outcome: Outcome, wait_s: Option<u64>) -> CallRecord {
    let started_at = ts(at);
    let wait = wait_s.map(Duration::from_secs);
    let ended_at = started_at + jiff::SignedDuration::from_secs(30 + wait_s.unwrap_or(0) as i64);
    CallRecord {
        id: CallId(id.into()),
        caller: "3331234567".into(),
        started_at,
        ended_at,
        language: Language::En,
        ivr_path: vec!["principale:1".into(), "demografici:2".into()],
        queue: queue.map(|q| QueueName(q.into())),
        outcome,
        wait,
        operator: None,
        answered_at: None,
        talk: None,
        announced_wait: None,
    }
}

/// An answered call: waited `wait_s`, talked `talk_s`, then hung up.
fn answered(id: &str, at: &str, queue: &str, wait_s: u64, talk_s: u64) -> CallRecord {
    let mut r = record(id, at, Some(queue), Outcome::Answered, Some(wait_s));
    let answered_at = r.started_at + jiff::SignedDuration::from_secs(30 + wait_s as i64);
    r.answered_at = Some(answered_at);
    r.ended_at = answered_at + jiff::SignedDuration::from_secs(talk_s as i64);
    r.talk = Some(Duration::from_secs(talk_s));
    r.operator = Some(OperatorId("mrossi".into()));
    r
}

fn event(at: &str, call: &str, name: &str, data: &[&str]) -> QueueEvent {
    QueueEvent {
        at: ts(at),
        call_id: call.into(),
        queue: "tributi".into(),
        operator: None,
        event: name.into(),
        data: data.iter().map(|s| s.to_string()).collect(),
    }
}

async fn open(url: &str) -> Store {
    Store::open(url).await.expect("open store").with_node("bari1")
}

async fn raw(url: &str, sql: &'static str) {
    let pool = sqlx::AnyPool::connect(url).await.expect("test connection");
    sqlx::query(sql).execute(&pool).await.expect(sql);
    pool.close().await;
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), fut).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

// ---- the suite ----

pub async fn migrations_apply_twice_idempotently(url: String) {
    let first = open(&url).await;
    first.migrate().await.expect("second migrate on the same store");
    first.call_started(&start("c1", "bari1", "2026-03-02T08:00:00Z")).await.unwrap();
    first.close().await;
    let again = open(&url).await;
    assert!(again.call("c1").await.unwrap().is_some(), "data survives re-opening");
    again.close().await;
}

pub async fn start_then_finish_round_trips(url: String) {
    let store = open(&url).await;
    store.call_started(&start("c1", "bari1", "2026-03-02T08:00:00Z")).await.unwrap();
    let live = store.call("c1").await.unwrap().expect("row after start");
    assert_eq!((live.node.as_str(), live.caller.as_str()), ("bari1", "3331234567"));
    assert_eq!((live.outcome, live.ended_at, live.language), (None, None, None));
    assert_eq!(live.last_seen_at, ts("2026-03-02T08:00:00Z"));

    store
        .call_finished(&record("c1", "2026-03-02T08:00:00Z", Some("tributi"), Outcome::Abandoned, Some(3)))
        .await
        .unwrap();
    let done = store.call("c1").await.unwrap().expect("row after finish");
    assert_eq!(done.outcome.as_deref(), Some("abandoned"));
    assert_eq!(done.queue.as_deref(), Some("tributi"));
    assert_eq!(done.ivr_path, "principale:1>demografici:2");
    assert_eq!(done.language.as_deref(), Some("en"));
    assert_eq!(done.wait_ms, Some(3000));
    assert!(done.short_abandon, "3 s is under the 5 s short-abandon threshold");
    assert_eq!(done.ended_at, Some(ts("2026-03-02T08:00:33Z")));
    assert_eq!(done.queued_at, Some(ts("2026-03-02T08:00:30Z")), "end minus wait");
    assert_eq!((done.answered_at, done.talk_ms, done.operator), (None, None, None));
    store.close().await;
}

pub async fn answered_call_stores_operator_answer_and_talk(url: String) {
    let store = open(&url).await;
    store.call_started(&start("c2", "bari1", "2026-03-02T08:00:00Z")).await.unwrap();
    store.call_finished(&answered("c2", "2026-03-02T08:00:00Z", "tributi", 12, 95)).await.unwrap();
    let row = store.call("c2").await.unwrap().unwrap();
    assert_eq!(row.outcome.as_deref(), Some("answered"));
    assert_eq!(row.operator.as_deref(), Some("mrossi"));
    assert_eq!(row.answered_at, Some(ts("2026-03-02T08:00:42Z")));
    assert_eq!(row.queued_at, Some(ts("2026-03-02T08:00:30Z")), "answer minus wait");
    assert_eq!(row.ended_at, Some(ts("2026-03-02T08:02:17Z")));
    assert_eq!((row.wait_ms, row.talk_ms, row.wrap_ms), (Some(12_000), Some(95_000), None));
    assert!(!row.short_abandon);
    store.close().await;
}

pub async fn finish_without_start_still_lands(url: String) {
    let store = open(&url).await;
    store.call_finished(&record("c9", "2026-03-02T09:00:00Z", None, Outcome::Closed, None)).await.unwrap();
    let row = store.call("c9").await.unwrap().expect("upserted row");
    assert_eq!((row.node.as_str(), row.outcome.as_deref()), ("bari1", Some("closed")));
    assert_eq!(row.arrived_at, ts("2026-03-02T09:00:00Z"));
    assert!(!row.short_abandon);
    store.close().await;
}

pub async fn late_start_does_not_reopen_a_finished_call(url: String) {
    let store = open(&url).await;
    store.call_finished(&record("c1", "2026-03-02T09:00:00Z", None, Outcome::Completed, None)).await.unwrap();
    store.call_started(&start("c1", "bari1", "2026-03-02T09:00:00Z")).await.unwrap();
    assert_eq!(store.call("c1").await.unwrap().unwrap().outcome.as_deref(), Some("completed"));
    store.close().await;
}

pub async fn close_interrupted_ends_this_nodes_live_calls_at_last_seen(url: String) {
    let store = open(&url).await;
    store.call_started(&start("live", "bari1", "2026-03-02T08:00:00Z")).await.unwrap();
    store.call_started(&start("touched", "bari1", "2026-03-02T08:00:00Z")).await.unwrap();
    store.call_started(&start("other-node", "bari2", "2026-03-02T08:00:00Z")).await.unwrap();
    store.call_finished(&record("done", "2026-03-02T08:00:00Z", None, Outcome::Closed, None)).await.unwrap();
    store.append_events(&[event("2026-03-02T08:00:40Z", "live", "ENTERQUEUE", &["", "333"])]).await.unwrap();
    store.touch(&["touched".into()], ts("2026-03-02T08:05:00Z")).await.unwrap();
    // An older touch never moves last_seen_at back.
    store.touch(&["touched".into()], ts("2026-03-02T08:01:00Z")).await.unwrap();

    let closed = store.close_interrupted(ts("2026-03-02T10:00:00Z")).await.unwrap();
    assert_eq!(closed, 2);
    let live = store.call("live").await.unwrap().unwrap();
    assert_eq!((live.outcome.as_deref(), live.ended_at), (Some("interrupted"), Some(ts("2026-03-02T08:00:40Z"))));
    let touched = store.call("touched").await.unwrap().unwrap();
    assert_eq!(touched.ended_at, Some(ts("2026-03-02T08:05:00Z")));
    assert_eq!(store.call("other-node").await.unwrap().unwrap().outcome, None, "another node's call");
    assert_eq!(store.call("done").await.unwrap().unwrap().outcome.as_deref(), Some("closed"));
    assert_eq!(store.close_interrupted(ts("2026-03-02T10:00:00Z")).await.unwrap(), 0, "idempotent");
    store.close().await;
}

pub async fn writer_batches_and_drains_on_shutdown(url: String) {
    let store = open(&url).await;
    let stats = Arc::new(WriterStats::default());
    let (handle, task) = spawn_writer(store.clone(), 1024, stats.clone());
    let mut sent = 0;
    for i in 0..100 {
        let id = format!("w{i:03}");
        sent += handle.send(WriteItem::CallStarted(start(&id, "bari1", "2026-03-02T08:00:00Z"))) as u64;
        sent += handle.send(WriteItem::Events(vec![event("2026-03-02T08:00:10Z", &id, "ENTERQUEUE", &[])])) as u64;
        let rec = record(&id, "2026-03-02T08:00:00Z", Some("tributi"), Outcome::Abandoned, Some(20));
        sent += handle.send(WriteItem::CallFinished(Box::new(rec))) as u64;
    }
    assert_eq!(sent, 300);
    drop(handle);
    within("writer drain", task).await.expect("writer task");
    let s = stats.snapshot();
    assert_eq!((s.written, s.dropped, s.errors, s.queued), (300, 0, 0, 0));
    assert!(s.batches < 300, "items share transactions: {} batches", s.batches);
    for i in [0, 57, 99] {
        let id = format!("w{i:03}");
        assert_eq!(store.call(&id).await.unwrap().unwrap().outcome.as_deref(), Some("abandoned"));
        assert_eq!(store.call_events(&id).await.unwrap().len(), 1);
    }
    store.close().await;
}

pub async fn writer_retries_after_a_database_error_and_loses_nothing(url: String) {
    let store = open(&url).await;
    raw(&url, "ALTER TABLE queue_events RENAME TO queue_events_away").await;
    let stats = Arc::new(WriterStats::default());
    let (handle, task) = spawn_writer(store.clone(), 64, stats.clone());
    handle.send(WriteItem::CallStarted(start("r1", "bari1", "2026-03-02T08:00:00Z")));
    handle.send(WriteItem::Events(vec![
        event("2026-03-02T08:00:10Z", "r1", "ENTERQUEUE", &["", "333", "1"]),
        event("2026-03-02T08:00:20Z", "r1", "ABANDON", &["1", "1", "10"]),
    ]));
    within("two failed attempts", stats.wait_until(|s| s.errors >= 2)).await;
    assert_eq!(store.call("r1").await.unwrap(), None, "a failed batch leaves nothing half-written");

    raw(&url, "ALTER TABLE queue_events_away RENAME TO queue_events").await;
    within("the batch to land", stats.wait_until(|s| s.written >= 2)).await;
    drop(handle);
    within("writer drain", task).await.expect("writer task");
    let s = stats.snapshot();
    assert_eq!((s.written, s.dropped, s.rejected), (2, 0, 0));
    assert_eq!(store.call_events("r1").await.unwrap().len(), 2);
    let row = store.call("r1").await.unwrap().expect("start written after the retry");
    assert_eq!(row.last_seen_at, ts("2026-03-02T08:00:20Z"), "events mark the call alive");
    store.close().await;
}

pub async fn report_kpis_on_a_known_data_set(url: String) {
    let store = open(&url).await;
    let day = "2026-03-02T08:00:00Z"; // 09:00 in Rome
    for r in [
        answered("a1", day, "tributi", 10, 100),
        answered("a2", day, "tributi", 20, 200),
        answered("a3", day, "tributi", 30, 300),
        record("b1", day, Some("tributi"), Outcome::Abandoned, Some(3)),
        record("b2", day, Some("tributi"), Outcome::Abandoned, Some(40)),
        record("t1", day, Some("tributi"), Outcome::Timeout, Some(60)),
        record("o1", day, Some("demografici"), Outcome::Overflow, Some(50)),
        record("x1", "2026-03-02T18:30:00Z", None, Outcome::Closed, None),
        // Outside the range: 00:30 on 3 March in Rome.
        answered("late", "2026-03-02T23:30:00Z", "tributi", 1, 1),
    ] {
        store.call_finished(&r).await.unwrap();
    }
    store.call_started(&start("live", "bari1", day)).await.unwrap(); // live calls are left out

    let date = "2026-03-02".parse().unwrap();
    let report = store.report(&ReportParams::new(date, date)).await.unwrap();
    let queues: Vec<Option<&str>> = report.rows.iter().map(|r| r.queue.as_deref()).collect();
    assert_eq!(queues, [Some("demografici"), Some("tributi"), None]);
    let t = &report.rows[1].kpis;
    assert_eq!(
        (t.offered, t.answered, t.answered_in_sl, t.abandoned, t.short_abandoned, t.timeout),
        (6, 3, 2, 2, 1, 1)
    );
    assert_eq!(t.service_level_pct, Some(40.0));
    assert_eq!(t.p90_wait_s, Some(60.0));
    assert_eq!(t.avg_talk_s, Some(200.0));
    assert_eq!((report.total.calls, report.total.closed), (8, 1));

    let only = ReportParams { queue: Some("demografici".into()), by: GroupBy::Day, ..ReportParams::new(date, date) };
    let report = store.report(&only).await.unwrap();
    assert_eq!(report.rows.len(), 1);
    assert_eq!(report.rows[0].period.as_deref(), Some("2026-03-02"));
    assert_eq!((report.total.offered, report.total.overflow), (1, 1));
    store.close().await;
}

pub async fn queue_log_export_pages_through_events_in_order(url: String) {
    let store = open(&url).await;
    let mut events = vec![QueueEvent {
        operator: Some("mrossi".into()),
        ..event("2026-03-02T08:00:05Z", "c1", "CONNECT", &["5", "c1", "2"])
    }];
    // More than one export page, inserted newest first.
    for i in (0..1005).rev() {
        let at = ts("2026-03-02T08:00:00Z") + jiff::SignedDuration::from_millis(i);
        events.push(QueueEvent { at, ..event("2026-03-02T08:00:00Z", &format!("p{i}"), "ENTERQUEUE", &[]) });
    }
    events.push(event("2026-03-03T08:00:00Z", "next-day", "ABANDON", &["1", "1", "9"]));
    store.append_events(&events).await.unwrap();

    let mut out = Vec::new();
    let n = store.export_queue_log(ts("2026-03-02T00:00:00Z"), ts("2026-03-03T00:00:00Z"), &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!((n, lines.len()), (1006, 1006));
    assert_eq!(lines[0], "1772438400|p0|tributi|NONE|ENTERQUEUE");
    assert_eq!(lines[1004], "1772438401|p1004|tributi|NONE|ENTERQUEUE");
    assert_eq!(lines[1005], "1772438405|c1|tributi|mrossi|CONNECT|5|c1|2");
    store.close().await;
}

pub async fn retention_deletes_old_finished_rows_and_keeps_live_calls(url: String) {
    let store = open(&url).await;
    store.call_finished(&record("old", "2026-01-01T08:00:00Z", None, Outcome::Closed, None)).await.unwrap();
    store.call_started(&start("old-live", "bari1", "2026-01-01T08:00:00Z")).await.unwrap();
    store.call_finished(&record("new", "2026-03-01T08:00:00Z", None, Outcome::Closed, None)).await.unwrap();
    store
        .append_events(&[
            event("2026-01-01T08:00:00Z", "old", "ENTERQUEUE", &[]),
            event("2026-03-01T08:00:00Z", "new", "ENTERQUEUE", &[]),
        ])
        .await
        .unwrap();
    let deleted = store.delete_older_than(30, ts("2026-03-02T00:00:00Z")).await.unwrap();
    assert_eq!(deleted, 2, "the old call and its event");
    assert!(store.call("old").await.unwrap().is_none());
    assert!(store.call("old-live").await.unwrap().is_some());
    assert!(store.call("new").await.unwrap().is_some());
    assert_eq!(store.call_events("new").await.unwrap().len(), 1);
    store.close().await;
}

pub async fn hashed_callers_are_stored_without_their_number(url: String) {
    let plain = open(&url).await;
    assert_eq!(plain.install_salt("first").await.unwrap(), "first");
    assert_eq!(plain.install_salt("second").await.unwrap(), "first", "the salt is chosen once");
    let store = plain.clone().with_caller_hasher(CallerHasher::new("first"));
    store.call_started(&start("h1", "bari1", "2026-03-02T08:00:00Z")).await.unwrap();
    store.call_finished(&record("h1", "2026-03-02T08:00:00Z", None, Outcome::Closed, None)).await.unwrap();
    let row = store.call("h1").await.unwrap().unwrap();
    assert_eq!(row.caller, CallerHasher::new("first").hash("3331234567"));
    assert!(!row.caller.contains("3331234567"));
    store.close().await;
}

pub async fn presence_history_closes_each_state_when_the_next_begins(url: String) {
    let store = open(&url).await;
    let stats = Arc::new(WriterStats::default());
    let (handle, task) = spawn_writer(store.clone(), 64, stats);
    for (state, reason, at) in [
        ("available", None, "2026-03-02T08:00:00Z"),
        ("paused", Some("riunione"), "2026-03-02T09:00:00Z"),
        ("available", None, "2026-03-02T09:30:00Z"),
    ] {
        handle.send(WriteItem::Presence { username: "op1".into(), state: state.into(), reason: reason.map(String::from), at: ts(at) });
    }
    drop(handle);
    within("writer drain", task).await.expect("writer task");
    let history = store.presence_history("op1").await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!((history[1].0.as_str(), history[1].1.as_deref()), ("paused", Some("riunione")));
    let paused = history[1].3.unwrap().duration_since(history[1].2);
    assert_eq!(paused.as_secs(), 30 * 60, "the pause lasted until the next state");
    assert!(history[2].3.is_none(), "the current state is open");
    store.close().await;
}

pub async fn operator_accounts_round_trip_without_plain_passwords(url: String) {
    use centralino::store::operators::OperatorRow;
    let store = open(&url).await;
    let row = OperatorRow {
        username: "op1".into(),
        display_name: "Anna".into(),
        ha1_md5: "a".repeat(32),
        ha1_sha256: "b".repeat(64),
        queues: vec![("tributi".into(), 1), ("generale".into(), 2)],
        languages: vec!["it".into(), "en".into()],
        max_calls: 1,
    };
    assert!(store.add_operator(&row, ts("2026-03-02T08:00:00Z")).await.unwrap());
    assert!(!store.add_operator(&row, ts("2026-03-02T08:00:00Z")).await.unwrap(), "no duplicate");
    assert_eq!(store.operators().await.unwrap(), vec![row.clone()]);
    let mut changed = row.clone();
    changed.max_calls = 2;
    changed.queues = vec![("patrimonio".into(), 3)];
    assert!(store.update_operator(&changed).await.unwrap());
    assert_eq!(store.operators().await.unwrap(), vec![changed]);
    assert!(store.remove_operator("op1").await.unwrap());
    assert!(!store.remove_operator("op1").await.unwrap());
    assert!(store.operators().await.unwrap().is_empty());
    store.close().await;
}
