//! The local address to put in SDP and Contact for a peer: the one the kernel's routing
//! table picks to reach it, remembered for a while.
//!
//! Why a cache: asking the kernel costs a socket, a connect and a close (three system calls
//! and a file descriptor) and was 2.5 % of the CPU per call at 1,000 calls/s, partly inside
//! the control loop (operator offers). Routes change rarely (an interface going up or down),
//! so an answer is reused for `TTL`.
//!
//! Owns: the cache. Must not touch: which address is advertised when one is configured
//! (`advertise_ip` wins: `SipContext::local_ip_towards`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a route lookup is reused.
const TTL: Duration = Duration::from_secs(10);
/// Peers remembered at most; past it the cache starts again (callers come from anywhere).
const MAX_PEERS: usize = 4096;

/// Route lookups by peer address.
#[derive(Debug, Default)]
pub(crate) struct LocalIps {
    known: Mutex<HashMap<IpAddr, (IpAddr, Instant)>>,
}

impl LocalIps {
    /// The local IP towards `peer` as of `now`, asking `lookup` when not known or too old.
    pub(crate) fn towards_with(&self, peer: IpAddr, now: Instant, lookup: impl FnOnce(IpAddr) -> IpAddr) -> IpAddr {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&(local, at)) = known.get(&peer) {
            if now.saturating_duration_since(at) < TTL {
                return local;
            }
        }
        if known.len() >= MAX_PEERS {
            known.clear();
        }
        let local = lookup(peer);
        known.insert(peer, (local, now));
        local
    }

    /// The local IP towards `peer`, from the kernel's routing table.
    pub(crate) fn towards(&self, peer: IpAddr) -> IpAddr {
        #[allow(clippy::disallowed_methods)] // driver clock site: cache age only
        let now = Instant::now();
        self.towards_with(peer, now, local_ip_towards)
    }
}

/// The local IP the kernel would use to reach `peer`: the right address for SDP and
/// Contact on a single-homed host, and 127.0.0.1 for a peer on loopback.
fn local_ip_towards(peer: IpAddr) -> IpAddr {
    let bind: SocketAddr = if peer.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
    std::net::UdpSocket::bind(bind)
        .and_then(|s| s.connect(SocketAddr::new(peer, 9)).map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .unwrap_or(if peer.is_ipv4() { IpAddr::from([127, 0, 0, 1]) } else { IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[allow(clippy::disallowed_methods)] // tests build their own simulated time from here
    fn origin() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_route_is_asked_once_per_peer_until_it_is_older_than_the_ttl() {
        let ips = LocalIps::default();
        let asked = Cell::new(0);
        let lookup = |_| {
            asked.set(asked.get() + 1);
            IpAddr::from([10, 0, 0, asked.get() as u8])
        };
        let t0 = origin();
        let peer = IpAddr::from([192, 0, 2, 7]);
        assert_eq!(ips.towards_with(peer, t0, lookup), IpAddr::from([10, 0, 0, 1]));
        assert_eq!(ips.towards_with(peer, t0 + TTL / 2, lookup), IpAddr::from([10, 0, 0, 1]), "cached");
        assert_eq!(asked.get(), 1);
        assert_eq!(ips.towards_with(IpAddr::from([192, 0, 2, 8]), t0, lookup), IpAddr::from([10, 0, 0, 2]), "another peer");
        assert_eq!(ips.towards_with(peer, t0 + TTL, lookup), IpAddr::from([10, 0, 0, 3]), "expired: asked again");
        assert_eq!(asked.get(), 3);
    }

    #[test]
    fn the_cache_starts_again_when_full_instead_of_growing() {
        let ips = LocalIps::default();
        let t0 = origin();
        for n in 0..(MAX_PEERS as u32 + 10) {
            ips.towards_with(IpAddr::from(n.to_be_bytes()), t0, |_| IpAddr::from([10, 0, 0, 1]));
        }
        assert!(ips.known.lock().unwrap().len() <= MAX_PEERS);
    }

    #[test]
    fn loopback_is_reached_from_loopback() {
        assert_eq!(LocalIps::default().towards(IpAddr::from([127, 0, 0, 1])), IpAddr::from([127, 0, 0, 1]));
    }
}
