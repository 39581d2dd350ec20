//! Who each dialog's peer is: the address a caller's INVITE came from, or the operator's
//! registered source for an offer. An in-dialog request (BYE, INFO, re-INVITE, …) must come
//! from that address: with a live Call-ID and tags from anywhere else, a stranger could end a
//! victim's call, steer its IVR or take its media (RFC 3261 leaves authenticating them to
//! the deployment; a B2BUA facing the internet has to).
//!
//! Owns: the Call-ID → peer table, entries removed with their `PeerEntry`.
//! Must not touch: transactions, dialogs.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// The table, shared by the dispatcher and the legs.
#[derive(Clone, Default)]
pub struct DialogPeers {
    // std Mutex: an insert, remove or lookup, never held across an `.await`.
    peers: Arc<Mutex<HashMap<String, IpAddr>>>,
}

/// Whether an in-dialog request may go to its dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerCheck {
    /// From the dialog's peer.
    Peer,
    /// From another address: refuse it.
    Stranger,
    /// No dialog of ours has that Call-ID (the stack answers 481).
    Unknown,
}

impl DialogPeers {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, IpAddr>> {
        // Poisoned only by a panic mid-insert elsewhere; the table is still valid.
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `call_id`'s peer for as long as the returned entry lives.
    pub fn insert(&self, call_id: &str, peer: IpAddr) -> PeerEntry {
        self.lock().insert(call_id.to_owned(), peer);
        PeerEntry { peers: self.clone(), call_id: call_id.to_owned() }
    }

    /// Checks a request with `call_id` from `source`.
    pub fn check(&self, call_id: &str, source: IpAddr) -> PeerCheck {
        match self.lock().get(call_id) {
            None => PeerCheck::Unknown,
            Some(peer) if same_host(*peer, source) => PeerCheck::Peer,
            Some(_) => PeerCheck::Stranger,
        }
    }

    /// The peer of `call_id`'s dialog.
    pub fn peer(&self, call_id: &str) -> Option<IpAddr> {
        self.lock().get(call_id).copied()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The same host, an IPv4-mapped IPv6 address being its IPv4 address.
fn same_host(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// A dialog's row in the table; removed when dropped.
pub struct PeerEntry {
    peers: DialogPeers,
    call_id: String,
}

impl Drop for PeerEntry {
    fn drop(&mut self) {
        self.peers.lock().remove(&self.call_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_peer_passes_and_the_row_goes_with_its_entry() {
        let peers = DialogPeers::default();
        let entry = peers.insert("abc@x", "127.0.0.1".parse().unwrap());
        assert_eq!(peers.check("abc@x", "127.0.0.1".parse().unwrap()), PeerCheck::Peer);
        assert_eq!(peers.check("abc@x", "::ffff:127.0.0.1".parse().unwrap()), PeerCheck::Peer);
        assert_eq!(peers.check("abc@x", "127.0.0.3".parse().unwrap()), PeerCheck::Stranger);
        assert_eq!(peers.check("other", "127.0.0.1".parse().unwrap()), PeerCheck::Unknown);
        drop(entry);
        assert!(peers.is_empty());
        assert_eq!(peers.check("abc@x", "127.0.0.1".parse().unwrap()), PeerCheck::Unknown);
    }
}
