//! The threads that send every playing leg's RTP. Legs are spread over a few workers; each
//! worker wakes every 5 ms and serves only the legs whose next packet falls in that quarter of
//! the 20 ms cycle. One wake-up per worker and tick replaces a timer, a task wake-up and a
//! channel poll per leg and packet, which were most of the user-space cost of music on hold.
//!
//! Owns: the workers and their threads, the tick grid, which legs a worker serves on a tick
//! (its wheel), and [`Place`], a leg's filing in that wheel.
//! Must not touch: what a leg sends (its `MediaSession` decides), sockets, SIP, engine state.
//!
//! Filing: a leg is filed under the slot of its next packet's deadline, with a ticket. When
//! the deadline moves to another slot (a new talkspurt) or playback stops, the leg's `Place`
//! takes a new ticket and every older filing goes stale; the worker drops stale filings when it
//! meets them. So a leg is served once per cycle, by at most one live filing, without the
//! worker and the callers that change a leg ever holding two locks at once.
//!
//! Timing: a talkspurt's packets all leave at the same offset (0–5 ms) after their deadlines,
//! so the spacing between them stays 20 ms; the RTP timestamps follow the deadlines.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often a worker wakes.
pub const TICK: Duration = Duration::from_millis(5);
/// Ticks per 20 ms packet time.
const SLOTS: usize = 4;
const TICK_NANOS: u64 = 5_000_000;

/// What a worker sends for: a leg of a call, or a stand-in in tests.
pub trait Paced: Send + Sync + 'static {
    /// The tick for the slot this leg was filed under with `ticket`: send what is due at
    /// `now` and say where the leg goes next (`Place::moved_to`; `Unfiled` for an ended leg
    /// or a stale ticket). Totals of what was sent go into `sent`.
    fn on_tick(&self, now: Instant, ticket: u64, grid: &Grid, sent: &mut Sent) -> Moved;
}

/// Where and under which ticket a leg is filed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filing {
    pub slot: usize,
    pub ticket: u64,
}

/// Packets and bytes sent during one tick, published once per tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub packets: u64,
    pub bytes: u64,
}

/// The tick grid shared by every worker: tick k is at `epoch + k·5 ms` and serves slot k mod 4.
#[derive(Clone, Copy, Debug)]
pub struct Grid {
    epoch: Instant,
}

impl Grid {
    pub fn new(epoch: Instant) -> Grid {
        Grid { epoch }
    }

    /// The slot of the first tick at or after `deadline`: by then the packet is due.
    pub fn slot_of(&self, deadline: Instant) -> usize {
        let nanos = nanos_u64(deadline.saturating_duration_since(self.epoch));
        (nanos.div_ceil(TICK_NANOS) % SLOTS as u64) as usize
    }

    /// The index of the last tick at or before `now`.
    fn index_at(&self, now: Instant) -> u64 {
        nanos_u64(now.saturating_duration_since(self.epoch)) / TICK_NANOS
    }

    fn instant_of(&self, index: u64) -> Instant {
        let offset = TICK.saturating_mul(u32::try_from(index).unwrap_or(u32::MAX));
        self.epoch.checked_add(offset).unwrap_or(self.epoch)
    }
}

/// In u64 (584 years), not u128: this runs for every leg on every tick.
fn nanos_u64(d: Duration) -> u64 {
    d.as_secs().saturating_mul(1_000_000_000).saturating_add(u64::from(d.subsec_nanos()))
}

/// A leg's filing in its worker's wheel, kept under the leg's own lock.
#[derive(Debug, Default)]
pub struct Place {
    slot: Option<usize>,
    ticket: u64,
}

/// How a leg's filing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moved {
    /// Its next packet falls in the same slot: the live filing stays where it is.
    Unchanged,
    /// Needs filing here (after a tick the worker does it; anyone else calls `Worker::file`).
    Filed(Filing),
    /// No filing is live: silent now (or, from a tick, ended or stale).
    Unfiled,
}

impl Place {
    /// The leg's next packet is due at `next` (`None`: it sends nothing until told to).
    pub fn moved_to(&mut self, next: Option<Instant>, grid: &Grid) -> Moved {
        let slot = next.map(|d| grid.slot_of(d));
        if slot == self.slot {
            return Moved::Unchanged;
        }
        self.slot = slot;
        self.ticket += 1;
        match slot {
            Some(slot) => Moved::Filed(Filing { slot, ticket: self.ticket }),
            None => Moved::Unfiled,
        }
    }

    /// Whether a filing with `ticket` is the live one.
    pub fn holds(&self, ticket: u64) -> bool {
        self.slot.is_some() && self.ticket == ticket
    }
}

/// One worker's wheel: the filings of each slot.
struct Wheel<L> {
    slots: [Vec<(Arc<L>, u64)>; SLOTS],
}

impl<L: Paced> Wheel<L> {
    fn new() -> Self {
        Wheel { slots: Default::default() }
    }

    fn is_empty(&self) -> bool {
        self.slots.iter().all(Vec::is_empty)
    }

    fn file(&mut self, leg: Arc<L>, filing: Filing) {
        self.slots[filing.slot % SLOTS].push((leg, filing.ticket));
    }

    /// Serves every filing of `slot`.
    fn serve(&mut self, slot: usize, now: Instant, grid: &Grid, sent: &mut Sent) {
        let filings = std::mem::take(&mut self.slots[slot]);
        for (leg, ticket) in filings {
            match leg.on_tick(now, ticket, grid, sent) {
                Moved::Unchanged => self.slots[slot].push((leg, ticket)),
                Moved::Filed(f) => self.file(leg, f),
                Moved::Unfiled => {}
            }
        }
    }
}

/// What others hand a worker: new filings, and the stop order.
struct Inbox<L> {
    filings: Vec<(Arc<L>, Filing)>,
    stop: bool,
    /// The worker waits for filings (it has none): a filing must wake it.
    parked: bool,
}

/// One sending thread's shared side.
pub struct Worker<L> {
    inbox: Mutex<Inbox<L>>,
    wake: Condvar,
}

impl<L: Paced> Worker<L> {
    /// Hands the worker a filing; it serves it from its next tick on.
    pub fn file(&self, leg: Arc<L>, filing: Filing) {
        let mut inbox = self.lock();
        inbox.filings.push((leg, filing));
        if inbox.parked {
            self.wake.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inbox<L>> {
        // A panic on a worker thread cannot leave the inbox half-pushed.
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(&self, grid: Grid, publish: &(dyn Fn(Sent) + Send + Sync)) {
        let mut wheel = Wheel::new();
        #[allow(clippy::disallowed_methods)] // driver clock site: the worker's own clock
        let mut last = grid.index_at(Instant::now());
        loop {
            {
                let mut inbox = self.lock();
                if wheel.is_empty() && inbox.filings.is_empty() && !inbox.stop {
                    inbox.parked = true;
                    inbox = self.wake.wait_while(inbox, |i| i.filings.is_empty() && !i.stop).unwrap_or_else(|e| e.into_inner());
                    inbox.parked = false;
                    #[allow(clippy::disallowed_methods)] // driver clock site
                    {
                        last = grid.index_at(Instant::now());
                    }
                }
                if inbox.stop {
                    // Filings hold their legs and a leg holds its worker: let go of them, or
                    // a leg filed at shutdown would keep its socket and port forever.
                    inbox.filings.clear();
                    return;
                }
            }
            #[allow(clippy::disallowed_methods)] // driver clock site
            let wait = grid.instant_of(last + 1).saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            // Filings handed over during the sleep are served on this very tick.
            for (leg, filing) in std::mem::take(&mut self.lock().filings) {
                wheel.file(leg, filing);
            }
            #[allow(clippy::disallowed_methods)] // driver clock site
            let now = Instant::now();
            let current = grid.index_at(now).max(last + 1);
            // A late wake-up serves every slot it slept through, each once.
            let mut sent = Sent::default();
            for index in (last + 1..=current).rev().take(SLOTS) {
                wheel.serve((index % SLOTS as u64) as usize, now, &grid, &mut sent);
            }
            last = current;
            if sent != Sent::default() {
                publish(sent);
            }
        }
    }
}

/// The workers. Dropping the pool stops their threads.
pub struct SendPool<L: Paced> {
    workers: Vec<Arc<Worker<L>>>,
    next: AtomicUsize,
    grid: Grid,
}

impl<L: Paced> SendPool<L> {
    /// Starts `threads` workers (at least one); `publish` receives each tick's totals.
    pub fn start(threads: usize, now: Instant, publish: Arc<dyn Fn(Sent) + Send + Sync>) -> std::io::Result<SendPool<L>> {
        let grid = Grid::new(now);
        let mut workers = Vec::new();
        for n in 0..threads.max(1) {
            let worker = Arc::new(Worker {
                inbox: Mutex::new(Inbox { filings: Vec::new(), stop: false, parked: false }),
                wake: Condvar::new(),
            });
            let (w, publish) = (worker.clone(), publish.clone());
            std::thread::Builder::new().name(format!("rtp-send-{n}")).spawn(move || w.run(grid, &*publish))?;
            workers.push(worker);
        }
        Ok(SendPool { workers, next: AtomicUsize::new(0), grid })
    }

    /// The worker for a new leg, in turn.
    pub fn assign(&self) -> Arc<Worker<L>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        self.workers[n].clone()
    }

    /// The grid every worker ticks on.
    pub fn grid(&self) -> Grid {
        self.grid
    }
}

impl<L: Paced> Drop for SendPool<L> {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.lock().stop = true;
            worker.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[allow(clippy::disallowed_methods)] // tests build their own simulated time
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_deadline_belongs_to_the_first_tick_at_or_after_it() {
        let t = t0();
        let grid = Grid::new(t);
        assert_eq!(grid.slot_of(t), 0);
        assert_eq!(grid.slot_of(t + Duration::from_micros(1)), 1);
        assert_eq!(grid.slot_of(t + ms(5)), 1);
        assert_eq!(grid.slot_of(t + ms(6)), 2);
        assert_eq!(grid.slot_of(t + ms(19)), 0);
        assert_eq!(grid.slot_of(t + ms(20)), 0);
        assert_eq!(grid.slot_of(t + ms(21)), 1, "the cycle repeats every 20 ms");
        assert_eq!(grid.index_at(t + ms(14)), 2);
        assert_eq!(grid.instant_of(3), t + ms(15));
    }

    #[test]
    fn a_place_takes_a_new_ticket_only_when_its_slot_changes() {
        let t = t0();
        let grid = Grid::new(t);
        let mut place = Place::default();
        assert_eq!(place.moved_to(None, &grid), Moved::Unchanged, "silent from the start");
        let Moved::Filed(first) = place.moved_to(Some(t + ms(7)), &grid) else { panic!("filed") };
        assert_eq!(first.slot, 2);
        assert!(place.holds(first.ticket));
        assert_eq!(place.moved_to(Some(t + ms(27)), &grid), Moved::Unchanged, "the next packet of the talkspurt");
        let Moved::Filed(second) = place.moved_to(Some(t + ms(41)), &grid) else { panic!("moved") };
        assert_eq!(second.slot, 1);
        assert!(!place.holds(first.ticket) && place.holds(second.ticket), "the old filing is stale");
        assert_eq!(place.moved_to(None, &grid), Moved::Unfiled);
        assert!(!place.holds(second.ticket), "silent: no filing is live");
    }

    /// A stand-in leg: due every 20 ms from `start`, counts the ticks that served it.
    struct Fake {
        state: Mutex<(Place, Instant)>,
        served: AtomicU64,
        stop_after: u64,
    }

    impl Paced for Fake {
        fn on_tick(&self, now: Instant, ticket: u64, grid: &Grid, sent: &mut Sent) -> Moved {
            let mut st = self.state.lock().unwrap();
            if !st.0.holds(ticket) {
                return Moved::Unfiled;
            }
            assert!(now >= st.1, "served before its deadline");
            let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
            sent.packets += 1;
            st.1 += ms(20);
            let next = (n < self.stop_after).then_some(st.1);
            st.0.moved_to(next, grid)
        }
    }

    #[test]
    fn the_wheel_serves_each_live_filing_once_per_cycle_and_drops_stale_ones() {
        let t = t0();
        let grid = Grid::new(t);
        let mut wheel = Wheel::new();
        let leg = Arc::new(Fake { state: Mutex::new((Place::default(), t + ms(3))), served: AtomicU64::new(0), stop_after: 3 });
        let Moved::Filed(f) = leg.state.lock().unwrap().0.moved_to(Some(t + ms(3)), &grid) else { panic!() };
        wheel.file(leg.clone(), f);
        wheel.file(leg.clone(), Filing { slot: 1, ticket: f.ticket + 7 }); // a stale duplicate
        let mut sent = Sent::default();
        for k in 1..=16u64 {
            wheel.serve((k % 4) as usize, t + ms(5 * k), &grid, &mut sent);
        }
        assert_eq!(leg.served.load(Ordering::Relaxed), 3, "served at 5, 25 and 45 ms, then silent");
        assert_eq!(sent.packets, 3);
        assert!(wheel.is_empty(), "the silent leg and the stale filing are gone");
    }

    #[test]
    fn workers_serve_filed_legs_on_their_own_threads_and_stop_with_the_pool() {
        let t = t0();
        let total = Arc::new(AtomicU64::new(0));
        let counted = total.clone();
        let pool: SendPool<Fake> = SendPool::start(2, t, Arc::new(move |s: Sent| {
            counted.fetch_add(s.packets, Ordering::Relaxed);
        }))
        .expect("threads");
        let grid = pool.grid();
        let legs: Vec<_> = (0..10u64)
            .map(|i| {
                let due = t + ms(i);
                let leg = Arc::new(Fake { state: Mutex::new((Place::default(), due)), served: AtomicU64::new(0), stop_after: 5 });
                let Moved::Filed(f) = leg.state.lock().unwrap().0.moved_to(Some(due), &grid) else { panic!() };
                pool.assign().file(leg.clone(), f);
                leg
            })
            .collect();
        // Each leg goes silent after 5 packets; wait for the workers to get there (bounded).
        for _ in 0..500 {
            if legs.iter().all(|l| l.served.load(Ordering::Relaxed) == 5) && total.load(Ordering::Relaxed) == 50 {
                break;
            }
            std::thread::sleep(ms(10));
        }
        assert!(legs.iter().all(|l| l.served.load(Ordering::Relaxed) == 5));
        assert_eq!(total.load(Ordering::Relaxed), 50, "every packet published once");
        drop(pool);
    }
}
