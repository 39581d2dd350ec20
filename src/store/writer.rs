//! The batching writer task: call handling hands records over without ever waiting on the database.
//!
//! ```text
//!  runtime ──send (try_send; full → dropped += 1)──▶ bounded mpsc ──▶ task: take ≤ MAX_BATCH items
//!                                                                       │ one transaction
//!        ┌──── retryable error: keep the batch, errors += 1, back off 100 ms → … → 5 s ◀──┤
//!        └──── rejected (constraint): write items one by one, skip the refused (rejected += 1)
//!  every handle dropped → channel closed → the task drains what is queued, then ends
//! ```
//! Owns: the channel, the batch and its retries, [`WriterStats`].
//! Must not touch: SQL (records.rs writes the batch), engine decisions, the wall clock
//! (only `tokio::time`, so tests can pause it).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use super::model::{CallStart, QueueEvent};
use super::{Store, StoreError};
use crate::engine::call::CallRecord;

/// Most items written in one transaction.
pub const MAX_BATCH: usize = 256;
/// The first wait after a failed batch; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts while the database is away.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Something to store.
#[derive(Clone, Debug)]
pub enum WriteItem {
    /// A call arrived: send when the engine accepts the INVITE.
    CallStarted(CallStart),
    /// A call ended: send for every `Output::CallFinished`.
    CallFinished(Box<CallRecord>),
    /// Queue-log lines; they also mark their calls as alive at their time.
    Events(Vec<QueueEvent>),
    /// Live calls are alive at `at` (optional heartbeat bounding a crash's end times).
    Touch {
        /// The live calls' ids.
        call_ids: Vec<String>,
        /// When they were seen.
        at: jiff::Timestamp,
    },
    /// An operator's presence changed: closes their open history row, opens a new one.
    Presence {
        /// The operator's username.
        username: String,
        /// `available`, `paused`, `offline`, …
        state: String,
        /// The pause reason, for `paused`.
        reason: Option<String>,
        /// When it changed.
        at: jiff::Timestamp,
    },
}

impl WriteItem {
    fn kind(&self) -> &'static str {
        match self {
            WriteItem::CallStarted(_) => "call start",
            WriteItem::CallFinished(_) => "call record",
            WriteItem::Events(_) => "queue events",
            WriteItem::Touch { .. } => "touch",
            WriteItem::Presence { .. } => "presence",
        }
    }
}

/// The writer's counters, shared with metrics (`centralino_store_*`).
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Items waiting in the channel now.
    pub queued: AtomicU64,
    /// Items written.
    pub written: AtomicU64,
    /// Transactions committed (written ÷ batches is the mean batch size).
    pub batches: AtomicU64,
    /// Items dropped because the channel was full (or the task had ended).
    pub dropped: AtomicU64,
    /// Items the database refused (constraint violations) and that were skipped.
    pub rejected: AtomicU64,
    /// Failed write attempts (each retried, unless rejected).
    pub errors: AtomicU64,
    /// How long the last successful batch took to write, in milliseconds.
    pub last_batch_ms: AtomicU64,
    progress: Notify,
}

/// The counters read at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterSnapshot {
    /// See [`WriterStats::queued`].
    pub queued: u64,
    /// See [`WriterStats::written`].
    pub written: u64,
    /// See [`WriterStats::batches`].
    pub batches: u64,
    /// See [`WriterStats::dropped`].
    pub dropped: u64,
    /// See [`WriterStats::rejected`].
    pub rejected: u64,
    /// See [`WriterStats::errors`].
    pub errors: u64,
    /// See [`WriterStats::last_batch_ms`].
    pub last_batch_ms: u64,
}

impl WriterStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> WriterSnapshot {
        WriterSnapshot {
            queued: self.queued.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_batch_ms: self.last_batch_ms.load(Ordering::Relaxed),
        }
    }

    /// Waits until `done` holds, re-checking after every write attempt (for tests and shutdown
    /// reporting; wrap it in a timeout when the database may stay away).
    pub async fn wait_until(&self, done: impl Fn(&WriterSnapshot) -> bool) {
        loop {
            let changed = self.progress.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(&self.snapshot()) {
                return;
            }
            changed.await;
        }
    }

    fn bump(&self, counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
        self.progress.notify_waiters();
    }
}

/// The runtime's side of the writer: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct WriterHandle {
    tx: mpsc::Sender<WriteItem>,
    stats: Arc<WriterStats>,
}

impl WriterHandle {
    /// Queues an item without waiting. When the channel is full the item is dropped and counted
    /// (`dropped`): calls keep flowing while the database is slow. Returns whether it was queued.
    pub fn send(&self, item: WriteItem) -> bool {
        // Count before sending so the task never decrements below zero.
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(e) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                let closed = matches!(e, mpsc::error::TrySendError::Closed(_));
                let item = e.into_inner();
                let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                self.stats.progress.notify_waiters();
                // Log the 1st, 2nd, 4th, 8th … drop: a flood stays readable.
                if dropped.is_power_of_two() {
                    tracing::warn!(kind = item.kind(), dropped, closed, "store writer queue full: record dropped");
                }
                false
            }
        }
    }
}

/// Starts the writer task over `store` with a channel of `capacity` items (at least 1).
/// The task ends after every [`WriterHandle`] is dropped and everything queued is written.
pub fn spawn_writer(store: Store, capacity: usize, stats: Arc<WriterStats>) -> (WriterHandle, JoinHandle<()>) {
    spawn_with(store, capacity, MAX_BATCH, stats)
}

/// Where batches go: the store, or a fake in tests.
trait BatchSink: Send + Sync + 'static {
    fn write<'a>(&'a self, items: &'a [WriteItem]) -> impl Future<Output = Result<(), StoreError>> + Send + 'a;
}

impl BatchSink for Store {
    fn write<'a>(&'a self, items: &'a [WriteItem]) -> impl Future<Output = Result<(), StoreError>> + Send + 'a {
        self.write_batch(items)
    }
}

fn spawn_with<S: BatchSink>(
    sink: S,
    capacity: usize,
    max_batch: usize,
    stats: Arc<WriterStats>,
) -> (WriterHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let task = tokio::spawn(run(sink, rx, max_batch.max(1), stats.clone()));
    (WriterHandle { tx, stats }, task)
}

async fn run<S: BatchSink>(sink: S, mut rx: mpsc::Receiver<WriteItem>, max_batch: usize, stats: Arc<WriterStats>) {
    let mut batch = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        stats.queued.fetch_sub(batch.len() as u64, Ordering::Relaxed);
        if let Err(rejected) = write_until_done(&sink, &batch, &stats).await {
            tracing::warn!(error = %rejected, items = batch.len(), "store rejected a batch: writing its items one by one");
            for item in &batch {
                if let Err(e) = write_until_done(&sink, std::slice::from_ref(item), &stats).await {
                    tracing::error!(error = %e, kind = item.kind(), "store rejected a record: skipped");
                    stats.bump(&stats.rejected, 1);
                }
            }
        }
        batch.clear();
    }
    tracing::debug!("store writer drained and stopped");
}

/// Writes `items` in one transaction, retrying retryable errors with backoff until it lands.
/// Returns the error when the database rejects the data itself.
async fn write_until_done<S: BatchSink>(sink: &S, items: &[WriteItem], stats: &WriterStats) -> Result<(), StoreError> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = tokio::time::Instant::now();
        match sink.write(items).await {
            Ok(()) => {
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                stats.last_batch_ms.store(ms, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats.bump(&stats.written, items.len() as u64);
                return Ok(());
            }
            Err(e) => {
                stats.bump(&stats.errors, 1);
                if !e.is_retryable() {
                    return Err(e);
                }
                tracing::warn!(error = %e, items = items.len(), retry_in = ?backoff, "store write failed: will retry");
                tokio::time::sleep(backoff).await;
                backoff = next_backoff(backoff);
            }
        }
    }
}

/// The wait after `current`: doubled, at most [`MAX_BACKOFF`].
fn next_backoff(current: Duration) -> Duration {
    current.saturating_mul(2).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records what it is given; fails the first `failures` attempts; rejects touches of "bad".
    #[derive(Default)]
    struct FakeSink {
        failures: AtomicU64,
        attempts: Mutex<Vec<tokio::time::Instant>>,
        written: Mutex<Vec<String>>,
    }

    fn id_of(item: &WriteItem) -> String {
        match item {
            WriteItem::CallStarted(s) => s.id.clone(),
            WriteItem::Touch { call_ids, .. } => call_ids.join(","),
            other => other.kind().to_string(),
        }
    }

    impl BatchSink for Arc<FakeSink> {
        async fn write(&self, items: &[WriteItem]) -> Result<(), StoreError> {
            self.attempts.lock().unwrap().push(tokio::time::Instant::now());
            if self.failures.load(Ordering::Relaxed) > 0 {
                self.failures.fetch_sub(1, Ordering::Relaxed);
                return Err(StoreError::Database(sqlx::Error::PoolTimedOut));
            }
            if items.iter().any(|i| id_of(i) == "bad") {
                return Err(StoreError::Rejected(sqlx::Error::RowNotFound));
            }
            self.written.lock().unwrap().extend(items.iter().map(id_of));
            Ok(())
        }
    }

    fn start(id: &str) -> WriteItem {
        WriteItem::CallStarted(CallStart {
            id: id.into(),
            node: "n1".into(),
            caller: "3331234567".into(),
            arrived_at: jiff::Timestamp::UNIX_EPOCH,
        })
    }

    fn touch(id: &str) -> WriteItem {
        WriteItem::Touch { call_ids: vec![id.into()], at: jiff::Timestamp::UNIX_EPOCH }
    }

    #[tokio::test(start_paused = true)]
    async fn full_channel_drops_and_counts_instead_of_blocking() {
        let sink = Arc::new(FakeSink::default());
        let stats = Arc::new(WriterStats::default());
        let (handle, task) = spawn_with(sink.clone(), 2, 8, stats.clone());
        // The task has not run yet (current-thread runtime): the third send finds the channel full.
        assert!(handle.send(start("a")));
        assert!(handle.send(start("b")));
        assert!(!handle.send(start("c")));
        assert_eq!(stats.snapshot().queued, 2);
        assert_eq!(stats.snapshot().dropped, 1);
        drop(handle);
        task.await.unwrap();
        assert_eq!(*sink.written.lock().unwrap(), vec!["a", "b"]);
        assert_eq!(stats.snapshot().queued, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_batch_is_kept_and_retried_with_doubling_backoff() {
        let sink = Arc::new(FakeSink { failures: AtomicU64::new(3), ..FakeSink::default() });
        let stats = Arc::new(WriterStats::default());
        let (handle, task) = spawn_with(sink.clone(), 8, 8, stats.clone());
        handle.send(start("a"));
        handle.send(start("b"));
        drop(handle);
        task.await.unwrap();
        assert_eq!(*sink.written.lock().unwrap(), vec!["a", "b"]);
        let attempts = sink.attempts.lock().unwrap().clone();
        let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps, [100, 200, 400].map(Duration::from_millis));
        let s = stats.snapshot();
        assert_eq!((s.errors, s.written, s.dropped), (3, 2, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn rejected_record_is_skipped_and_the_rest_of_its_batch_lands() {
        let sink = Arc::new(FakeSink::default());
        let stats = Arc::new(WriterStats::default());
        let (handle, task) = spawn_with(sink.clone(), 8, 8, stats.clone());
        handle.send(start("a"));
        handle.send(touch("bad"));
        handle.send(start("b"));
        drop(handle);
        task.await.unwrap();
        assert_eq!(*sink.written.lock().unwrap(), vec!["a", "b"]);
        let s = stats.snapshot();
        assert_eq!((s.written, s.rejected), (2, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn closing_the_channel_drains_everything_in_several_batches() {
        let sink = Arc::new(FakeSink::default());
        let stats = Arc::new(WriterStats::default());
        let (handle, task) = spawn_with(sink.clone(), 32, 4, stats.clone());
        let ids: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        for id in &ids {
            handle.send(start(id));
        }
        drop(handle);
        task.await.unwrap();
        assert_eq!(*sink.written.lock().unwrap(), ids);
        assert_eq!(sink.attempts.lock().unwrap().len(), 3, "batches of 4, 4 and 2");
    }

    #[tokio::test(start_paused = true)]
    async fn wait_until_wakes_when_the_writer_makes_progress() {
        let sink = Arc::new(FakeSink::default());
        let stats = Arc::new(WriterStats::default());
        let (handle, task) = spawn_with(sink, 8, 8, stats.clone());
        handle.send(start("a"));
        stats.wait_until(|s| s.written == 1).await;
        drop(handle);
        task.await.unwrap();
    }

    #[test]
    fn backoff_doubles_then_stays_at_five_seconds() {
        let mut b = FIRST_BACKOFF;
        let mut seen = vec![b];
        for _ in 0..8 {
            b = next_backoff(b);
            seen.push(b);
        }
        assert_eq!(seen[..4], [100, 200, 400, 800].map(Duration::from_millis));
        assert_eq!(*seen.last().unwrap(), MAX_BACKOFF);
        assert!(seen.iter().all(|d| *d <= MAX_BACKOFF));
    }

    #[tokio::test]
    async fn zero_capacity_is_treated_as_one_instead_of_panicking() {
        let sink = Arc::new(FakeSink::default());
        let (handle, task) = spawn_with(sink.clone(), 0, 0, Arc::new(WriterStats::default()));
        assert!(handle.send(start("a")));
        drop(handle);
        task.await.unwrap();
        assert_eq!(*sink.written.lock().unwrap(), vec!["a"]);
    }
}
