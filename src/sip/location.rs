//! The location service (RFC 3261 §10.3): the contact bindings of each registered operator,
//! their expiry, and the reachability events derived from them.
//!
//! Owns: the bindings. Must not touch: authentication and the REGISTER rules (`registrar.rs`
//! decides what a binding list becomes), clocks (`now` is a parameter), IO.
//! Invariants: a user has an entry only while it has at least one binding; `Registered` is
//! emitted when a user's list goes from empty to non-empty and `Unregistered` when it goes back,
//! so the two alternate per user.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use rsipstack::sip::uri::Param;
use rsipstack::sip::{Transport, Uri};

/// One contact of a registered operator.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    /// The Contact URI as registered (behind NAT it may name a private address: prefer
    /// `source` to reach it).
    pub contact: Uri,
    pub expires_at: Instant,
    /// Where the REGISTER came from (the NAT's public side).
    pub source: SocketAddr,
    /// Transport of the REGISTER (top Via).
    pub transport: Transport,
    pub call_id: String,
    pub cseq: u32,
    pub user_agent: Option<String>,
}

/// What the runtime hears about operators' reachability.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RegistrarEvent {
    /// The user's first binding appeared.
    Registered { username: String },
    /// The user's last binding went (expiry, `Expires: 0`, `*`, or `remove_user`).
    Unregistered { username: String },
    /// Failed answers blocked `source` (`scope` "address+user") or every address but the
    /// user's own phones (`scope` "user") from trying `username` for `secs`.
    Blocked { source: std::net::IpAddr, username: String, scope: &'static str, secs: u64 },
    /// `source` failed for too many usernames: a guesser, to be banned.
    Guesser { source: std::net::IpAddr, username: String },
}

/// Bindings per username.
#[derive(Debug, Default)]
pub struct Location {
    users: HashMap<String, Vec<Binding>>,
}

impl Location {
    /// The user's bindings, including expired ones not yet dropped by `expire_user` or
    /// `handle_timeout`.
    pub fn bindings(&self, user: &str) -> &[Binding] {
        self.users.get(user).map_or(&[], Vec::as_slice)
    }

    /// The live bindings, least recently (re-)registered first.
    pub fn contacts(&self, now: Instant, user: &str) -> Vec<&Binding> {
        self.bindings(user)
            .iter()
            .filter(|b| b.expires_at > now)
            .collect()
    }

    /// Whether a live binding was registered from `ip`.
    pub fn has_source_ip(&self, now: Instant, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.users.values().flatten().any(|b| b.expires_at > now && b.source.ip().to_canonical() == ip)
    }

    /// Replaces the user's bindings; the event if reachability changed.
    pub fn set(&mut self, user: &str, list: Vec<Binding>) -> Option<RegistrarEvent> {
        let was = self.users.contains_key(user);
        let is = !list.is_empty();
        if is {
            self.users.insert(user.to_owned(), list);
        } else {
            self.users.remove(user);
        }
        let username = user.to_owned();
        match (was, is) {
            (false, true) => Some(RegistrarEvent::Registered { username }),
            (true, false) => Some(RegistrarEvent::Unregistered { username }),
            _ => None,
        }
    }

    /// Drops the user's expired bindings.
    pub fn expire_user(&mut self, now: Instant, user: &str) -> Option<RegistrarEvent> {
        let list = self.users.get(user)?;
        if list.iter().all(|b| b.expires_at > now) {
            return None;
        }
        let live = list
            .iter()
            .filter(|b| b.expires_at > now)
            .cloned()
            .collect();
        self.set(user, live)
    }

    /// Drops every expired binding; the events sorted by user.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<RegistrarEvent> {
        let mut users: Vec<String> = self.users.keys().cloned().collect();
        users.sort();
        users
            .iter()
            .filter_map(|user| self.expire_user(now, user))
            .collect()
    }

    /// When the next binding expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.users.values().flatten().map(|b| b.expires_at).min()
    }

    /// Forgets every binding of `user`.
    pub fn remove_user(&mut self, user: &str) -> Vec<RegistrarEvent> {
        self.set(user, Vec::new()).into_iter().collect()
    }

    pub fn binding_count(&self) -> usize {
        self.users.values().map(Vec::len).sum()
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }
}

/// Contacts that are "the same" for RFC 3261 §10.3 step 7 (a simplification of the §19.1.4
/// URI comparison): scheme, user, host (case-insensitive), port and transport.
pub fn contact_key(uri: &Uri) -> String {
    let scheme = uri
        .scheme
        .as_ref()
        .map(|s| s.to_string().to_ascii_lowercase())
        .unwrap_or_default();
    let user = uri.auth.as_ref().map_or("", |a| a.user.as_str());
    let host = uri.host_with_port.host.to_string().to_ascii_lowercase();
    let port = uri
        .host_with_port
        .port
        .as_ref()
        .map(|p| p.value().to_string())
        .unwrap_or_default();
    let transport = uri
        .params
        .iter()
        .find_map(|p| match p {
            Param::Transport(t) => Some(t.to_string().to_ascii_lowercase()),
            _ => None,
        })
        .unwrap_or_default();
    format!("{scheme}:{user}@{host}:{port};{transport}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_key_ignores_host_case_and_other_params_but_not_port_or_transport() {
        let key = |s: &str| contact_key(&Uri::try_from(s).unwrap());
        assert_eq!(
            key("sip:a@PC.example:5060;ob"),
            key("sip:a@pc.example:5060")
        );
        assert_ne!(key("sip:a@pc.example:5060"), key("sip:a@pc.example"));
        assert_ne!(
            key("sip:a@pc.example;transport=tcp"),
            key("sip:a@pc.example")
        );
        assert_ne!(key("sip:A@pc.example"), key("sip:a@pc.example"));
    }
}
