//! A scripted day of calls through the engine (answered, long and short abandons, a queue
//! timeout, a full queue's overflow, a closed-hours call), stored through the writer, and the
//! report's figures checked exactly — on SQLite, and on PostgreSQL when
//! `CENTRALINO_TEST_POSTGRES_URL` is set.

mod engine_sim;
mod store_common;

use std::sync::Arc;
use std::time::Duration;

use centralino::engine::{Input, Output};
use centralino::store::model::{CallStart, QueueEvent};
use centralino::store::report::ReportParams;
use centralino::store::writer::{spawn_writer, WriteItem, WriterStats};
use centralino::store::Store;
use engine_sim::{account, cid, Sim};

/// Runs the day and returns what the engine asked to store.
fn scripted_day() -> Vec<WriteItem> {
    let queues = Sim::queues(|q| {
        if q.name.0 == "b" {
            q.max_callers = Some(1);
            q.max_wait = Some(Duration::from_secs(30));
        }
        q.wrap_up = Duration::ZERO;
    });
    let mut sim = Sim::new(queues, vec![account("op1", &["a"])], 7);
    let mut items = Vec::new();
    let take = |_: &Sim, out: Vec<Output>, items: &mut Vec<WriteItem>| {
        for o in out {
            match o {
                Output::CallFinished(r) => items.push(WriteItem::CallFinished(r)),
                Output::QueueEvent(e) => items.push(WriteItem::Events(vec![QueueEvent::from(e)])),
                _ => {}
            }
        }
    };
    let start = |sim: &Sim, id: &str| WriteItem::CallStarted(CallStart { id: id.into(), node: "n1".into(), caller: format!("333{id}"), arrived_at: sim.now.wall });

    // op1 registered but busy first: c1 waits 10 s, then is answered and talks 100 s.
    let out = sim.register("op1");
    take(&sim, out, &mut items);
    items.push(start(&sim, "c1"));
    let out = sim.caller("c1", "1");
    take(&sim, out, &mut items);
    let out = sim.advance(Duration::from_secs(10));
    take(&sim, out, &mut items);
    let out = sim.answer("c1", "op1");
    take(&sim, out, &mut items);
    // While op1 talks: c2 waits 40 s and hangs up, c3 hangs up after 3 s.
    items.push(start(&sim, "c2"));
    let out = sim.caller("c2", "1");
    take(&sim, out, &mut items);
    items.push(start(&sim, "c3"));
    let out = sim.caller("c3", "1");
    take(&sim, out, &mut items);
    let out = sim.advance(Duration::from_secs(3));
    take(&sim, out, &mut items);
    let out = sim.input(Input::CallEnded { call: cid("c3") });
    take(&sim, out, &mut items);
    let out = sim.advance(Duration::from_secs(37));
    take(&sim, out, &mut items);
    let out = sim.input(Input::CallEnded { call: cid("c2") });
    take(&sim, out, &mut items);
    // Queue b (nobody serves it, room for one): c4 waits until the 30 s limit; c5 finds it full.
    items.push(start(&sim, "c4"));
    let out = sim.caller("c4", "2");
    take(&sim, out, &mut items);
    items.push(start(&sim, "c5"));
    let out = sim.caller("c5", "2");
    take(&sim, out, &mut items);
    let out = sim.advance(Duration::from_secs(60));
    take(&sim, out, &mut items);
    // c1's talk ends (100 s after the answer).
    let out = sim.input(Input::CallEnded { call: cid("c1") });
    take(&sim, out, &mut items);
    // Messages that end calls are played to the end.
    for call in ["c4", "c5"] {
        let out = sim.input(Input::PlaybackFinished { call: cid(call), seq: u64::MAX });
        take(&sim, out, &mut items);
    }
    // Whatever is still live ends as the caller hangs up.
    for call in ["c4", "c5"] {
        let out = sim.input(Input::CallEnded { call: cid(call) });
        take(&sim, out, &mut items);
    }
    // 23:00: closed. c6 is answered, told, and hung up on.
    let out = sim.advance(Duration::from_secs(12 * 3600));
    take(&sim, out, &mut items);
    items.push(start(&sim, "c6"));
    let mut out = sim.input(Input::CallArrived { call: cid("c6"), caller: "333c6".into() });
    out.extend(sim.input(Input::CallAnswered { call: cid("c6") }));
    let seq = out.iter().find_map(|o| if let Output::Play { seq, .. } = o { Some(*seq) } else { None }).expect("closed message");
    take(&sim, out, &mut items);
    let out = sim.input(Input::PlaybackFinished { call: cid("c6"), seq });
    take(&sim, out, &mut items);
    items
}

async fn check_report(url: String) {
    let store = Store::open(&url).await.unwrap().with_node("n1");
    let stats = Arc::new(WriterStats::default());
    let (writer, task) = spawn_writer(store.clone(), 1024, stats);
    let items = scripted_day();
    let finished = items.iter().filter(|i| matches!(i, WriteItem::CallFinished(_))).count();
    assert_eq!(finished, 6, "every call ends with one record");
    for item in items {
        assert!(writer.send(item));
    }
    drop(writer);
    task.await.unwrap();

    let day: jiff::civil::Date = "2026-11-27".parse().unwrap();
    let report = store.report(&ReportParams::new(day, day)).await.unwrap();
    let row = |q: &str| report.rows.iter().find(|r| r.queue.as_deref() == Some(q)).map(|r| r.kpis.clone()).unwrap_or_else(|| panic!("row {q}: {report:?}"));
    let a = row("a");
    assert_eq!((a.offered, a.answered, a.answered_in_sl, a.abandoned, a.short_abandoned), (3, 1, 1, 2, 1), "{a:?}");
    assert_eq!(a.service_level_pct, Some(50.0), "1 answered within 20 s of (3 offered - 1 short abandon)");
    assert_eq!(a.avg_talk_s, Some(100.0), "{a:?}");
    let b = row("b");
    assert_eq!((b.offered, b.timeout, b.overflow, b.answered), (2, 1, 1, 0), "{b:?}");
    assert_eq!(report.total.closed, 1, "{:?}", report.total);
    assert_eq!(report.total.calls, 6);
    store.close().await;
}

#[tokio::test]
async fn a_scripted_day_reports_exactly_on_sqlite() {
    store_common::with_sqlite(check_report).await;
}

#[tokio::test]
async fn a_scripted_day_reports_exactly_on_postgres() {
    if store_common::postgres_base_url().is_none() {
        eprintln!("CENTRALINO_TEST_POSTGRES_URL is not set: skipping");
        return;
    }
    store_common::with_postgres(check_report).await;
}
