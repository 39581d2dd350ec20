//! The RTP port pool: one even port per call leg, handed out as a lease that returns the
//! port when dropped, so a port can never leak past its call.
//!
//! The next port is drawn at random among the free ones: handed out in order (41000,
//! 41002, …), a fresh call's port was the next one, and an attacker spraying a few ports
//! ahead met most new calls before their phones did. At random, a port says nothing about
//! the next call's.
//!
//! Owns: which ports of the configured range are free, the draw. Must not touch: SIP,
//! engine state, the global RNG (the seed is given by the driver).

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use thiserror::Error;

/// Why no RTP socket could be had.
#[derive(Debug, Error)]
pub enum PortError {
    #[error("no free RTP port in the configured range")]
    Exhausted,
}

/// A shared pool of even ports. Cheap to clone.
#[derive(Clone)]
pub struct PortPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    // std Mutex: held for a draw or a push only, never across an `.await`.
    free: Mutex<Free>,
    in_use: AtomicUsize,
    capacity: usize,
    /// Signalled when the last lease returns.
    all_back: tokio::sync::Notify,
}

impl PortPool {
    /// A pool over the even ports of `range`, drawing with an RNG seeded by `seed` (the
    /// driver's, from the OS).
    pub fn new(range: RangeInclusive<u16>, seed: u64) -> PortPool {
        let ports: Vec<u16> = range.filter(|p| p % 2 == 0).collect();
        let capacity = ports.len();
        PortPool {
            inner: Arc::new(PoolInner {
                free: Mutex::new(Free { ports, rng: SmallRng::seed_from_u64(seed) }),
                in_use: AtomicUsize::new(0),
                capacity,
                all_back: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Binds a UDP socket on a free port of `ip`, drawn at random. Ports taken by other
    /// programs are skipped (and stay free, for a later draw).
    pub fn bind(&self, ip: IpAddr) -> Result<(std::net::UdpSocket, PortLease), PortError> {
        // Set aside until the search ends, so a draw never meets the same taken port twice
        // (empty, and not allocated, unless a port is taken).
        let mut taken = Vec::new();
        let bound = self.bind_drawn(ip, &mut taken);
        if !taken.is_empty() {
            self.lock().ports.extend(taken);
        }
        bound
    }

    fn bind_drawn(&self, ip: IpAddr, taken: &mut Vec<u16>) -> Result<(std::net::UdpSocket, PortLease), PortError> {
        for _ in 0..self.inner.capacity.min(64) {
            let Some(port) = self.lock().draw() else { break };
            match std::net::UdpSocket::bind(SocketAddr::new(ip, port)) {
                Ok(socket) => {
                    self.inner.in_use.fetch_add(1, Ordering::Relaxed);
                    return Ok((socket, PortLease { pool: self.clone(), port }));
                }
                Err(_) => taken.push(port),
            }
        }
        Err(PortError::Exhausted)
    }

    /// Ports leased now.
    pub fn in_use(&self) -> usize {
        self.inner.in_use.load(Ordering::Relaxed)
    }

    /// Resolves once no port is leased. A leg's port returns with the last reference to
    /// the leg, shortly after its call ends (its receive task and send worker let go).
    pub async fn all_returned(&self) {
        loop {
            let notified = self.inner.all_back.notified();
            if self.in_use() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Ports in the pool.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Free> {
        // A poisoned lock only means another thread panicked mid draw/push; the list is
        // still a valid list of ports.
        self.inner.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The free ports, in no meaningful order, and the RNG that draws from them.
struct Free {
    ports: Vec<u16>,
    rng: SmallRng,
}

impl Free {
    /// Takes a free port at random: O(1), the last one moves into its place.
    fn draw(&mut self) -> Option<u16> {
        if self.ports.is_empty() {
            return None;
        }
        let i = self.rng.gen_range(0..self.ports.len());
        Some(self.ports.swap_remove(i))
    }
}

/// A leased port; dropping it returns the port to the pool.
pub struct PortLease {
    pool: PortPool,
    port: u16,
}

impl PortLease {
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.pool.lock().ports.push(self.port);
        if self.pool.inner.in_use.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.pool.inner.all_back.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_return_their_port_on_drop_and_only_even_ports_are_used() {
        let pool = PortPool::new(41000..=41005, 1);
        assert_eq!(pool.capacity(), 3);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (_s1, a) = pool.bind(ip).unwrap();
        let (_s2, b) = pool.bind(ip).unwrap();
        assert!(a.port() % 2 == 0 && b.port() % 2 == 0 && a.port() != b.port());
        assert_eq!(pool.in_use(), 2);
        drop(a);
        drop(b);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn an_exhausted_pool_says_so() {
        let pool = PortPool::new(41010..=41011, 1);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let _held = pool.bind(ip).unwrap();
        assert!(matches!(pool.bind(ip), Err(PortError::Exhausted)));
    }

    /// The draw itself, without sockets: different seeds, different orders; consecutive
    /// leases are not neighbouring ports in general; a freed port is not simply next.
    #[test]
    fn ports_are_drawn_at_random() {
        let order = |seed: u64| -> Vec<u16> {
            let mut free = Free { ports: (41000..=41199).step_by(2).collect(), rng: SmallRng::seed_from_u64(seed) };
            std::iter::from_fn(|| free.draw()).collect()
        };
        let (a, b) = (order(1), order(2));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (41000..=41199).step_by(2).collect::<Vec<_>>(), "every port once");
        assert_ne!(a, b, "two seeds, two orders");
        let neighbours = a.windows(2).filter(|w| w[0].abs_diff(w[1]) == 2).count();
        assert!(neighbours < 10, "{neighbours} of 99 consecutive leases were neighbouring ports");
        // A port just freed is not simply the next one handed out.
        let mut free = Free { ports: (41000..=41199).step_by(2).collect(), rng: SmallRng::seed_from_u64(3) };
        let mut again = 0;
        for _ in 0..20 {
            let freed = free.draw().unwrap();
            free.ports.push(freed);
            let next = free.draw().unwrap();
            free.ports.push(next);
            again += usize::from(next == freed);
        }
        assert!(again < 5, "the port just freed came back {again} times of 20");
    }

    /// Through real sockets: two pools with different seeds lease different sequences, and
    /// a port taken by another program is skipped.
    #[test]
    fn pools_with_different_seeds_lease_different_ports_and_skip_taken_ones() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let leases = |seed: u64| -> Vec<u16> {
            let pool = PortPool::new(41100..=41139, seed);
            let held: Vec<_> = (0..10).map(|_| pool.bind(ip).unwrap()).collect();
            held.iter().map(|(_, lease)| lease.port()).collect()
        };
        assert_ne!(leases(7), leases(8));
        // Another program's port: an even one the kernel handed out, with a free neighbour.
        let (taken, base) = loop {
            let socket = std::net::UdpSocket::bind((ip, 0)).unwrap();
            let port = socket.local_addr().unwrap().port();
            if port.is_multiple_of(2) && port < 65000 && std::net::UdpSocket::bind((ip, port + 2)).is_ok() {
                break (socket, port);
            }
        };
        let pool = PortPool::new(base..=base + 3, 9);
        let (_s, lease) = pool.bind(ip).unwrap();
        assert_eq!(lease.port(), base + 2, "{base} is another program's");
        assert!(matches!(pool.bind(ip), Err(PortError::Exhausted)));
        drop(taken);
        let (_s2, lease2) = pool.bind(ip).unwrap();
        assert_eq!(lease2.port(), base, "skipped, not lost");
        assert_eq!(pool.in_use(), 2);
    }
}
