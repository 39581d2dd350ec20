//! The RTP port pool: one even port per call leg, handed out as a lease that returns the
//! port when dropped, so a port can never leak past its call.
//!
//! Owns: which ports of the configured range are free. Must not touch: SIP, engine state.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
    // std Mutex: held for a push or pop only, never across an `.await`.
    free: Mutex<VecDeque<u16>>,
    in_use: AtomicUsize,
    capacity: usize,
    /// Signalled when the last lease returns.
    all_back: tokio::sync::Notify,
}

impl PortPool {
    /// A pool over the even ports of `range`.
    pub fn new(range: RangeInclusive<u16>) -> PortPool {
        let free: VecDeque<u16> = range.filter(|p| p % 2 == 0).collect();
        let capacity = free.len();
        PortPool {
            inner: Arc::new(PoolInner {
                free: Mutex::new(free),
                in_use: AtomicUsize::new(0),
                capacity,
                all_back: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Binds a UDP socket on a free port of `ip`. Ports taken by other programs are skipped
    /// (and put back at the end of the line).
    pub fn bind(&self, ip: IpAddr) -> Result<(std::net::UdpSocket, PortLease), PortError> {
        for _ in 0..self.inner.capacity.min(64) {
            let port = self.lock().pop_front().ok_or(PortError::Exhausted)?;
            match std::net::UdpSocket::bind(SocketAddr::new(ip, port)) {
                Ok(socket) => {
                    self.inner.in_use.fetch_add(1, Ordering::Relaxed);
                    return Ok((socket, PortLease { pool: self.clone(), port }));
                }
                Err(_) => self.lock().push_back(port),
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

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<u16>> {
        // A poisoned lock only means another thread panicked mid push/pop; the deque is
        // still a valid list of ports.
        self.inner.free.lock().unwrap_or_else(|e| e.into_inner())
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
        self.pool.lock().push_back(self.port);
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
        let pool = PortPool::new(41000..=41005);
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
        let pool = PortPool::new(41010..=41011);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let _held = pool.bind(ip).unwrap();
        assert!(matches!(pool.bind(ip), Err(PortError::Exhausted)));
    }
}
