//! The edge's guard, shared by every SIP entry point (the UDP screen, the TCP accept loop,
//! the dispatcher, the registrar's driver): bans, known scanners, and admission of new
//! calls, with the logging and counting the sans-IO parts leave to their driver.
//!
//! Owns: the locks around `Admission` and `BanList`, the trunk address list, the scanner
//! list, and `CallPermit` (a call's place in the admission counts, returned on drop).
//! Must not touch: transactions, dialogs, call policy.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::admission::{Admission, AdmissionConfig, AdmissionStats, Decision, SourceClass};
use super::bans::{BanList, BanReason, BanStats, BanView};
use crate::clock::Now;

/// How the edge is set up.
#[derive(Clone, Debug)]
pub struct EdgeSettings {
    pub admission: AdmissionConfig,
    /// Carriers' and proxies' addresses: their calls get the trunk limits.
    pub trunk_sources: Vec<ipnet::IpNet>,
    /// Lower-case fragments of User-Agent headers that mark a scanner.
    pub scanner_agents: Vec<String>,
    /// How long a ban lasts.
    pub ban_duration: Duration,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        EdgeSettings {
            admission: AdmissionConfig::default(),
            trunk_sources: Vec::new(),
            scanner_agents: DEFAULT_SCANNERS.iter().map(|s| s.to_ascii_lowercase()).collect(),
            ban_duration: Duration::from_secs(900),
        }
    }
}

/// User-Agents of SIP scanners and war-dialers seen on the internet.
pub const DEFAULT_SCANNERS: [&str; 8] =
    ["friendly-scanner", "sipvicious", "sipcli", "VaxSIPUserAgent", "sundayddr", "iWar", "sip-scan", "SIVuS"];

/// A refused INVITE: answer 503 with this `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

/// Counters for metrics.
#[derive(Clone, Debug, Default)]
pub struct EdgeStats {
    pub admission: AdmissionStats,
    pub bans: BanStats,
    pub bans_active: usize,
    pub calls: usize,
    /// Messages dropped because their User-Agent is a scanner's.
    pub scanners: u64,
}

/// The guard.
pub struct Edge {
    settings: EdgeSettings,
    // std Mutexes: each held for one decision, never across an `.await`.
    admission: Mutex<Admission>,
    bans: Mutex<BanList>,
    scanners: AtomicU64,
}

impl Edge {
    pub fn new(settings: EdgeSettings) -> Arc<Edge> {
        Arc::new(Edge {
            admission: Mutex::new(Admission::new(settings.admission.clone())),
            bans: Mutex::new(BanList::new(100_000)),
            settings,
            scanners: AtomicU64::new(0),
        })
    }

    fn admission(&self) -> MutexGuard<'_, Admission> {
        // Poisoned only by a panic mid-decision elsewhere; the counts are still usable.
        self.admission.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ban_list(&self) -> MutexGuard<'_, BanList> {
        self.bans.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a message from `ip` is to be dropped unanswered (a ban); counted.
    pub fn drops(&self, ip: IpAddr) -> bool {
        self.ban_list().drops(Now::read().instant, ip)
    }

    /// Whether `ip` belongs to a configured trunk.
    pub fn is_trunk(&self, ip: IpAddr) -> bool {
        self.settings.trunk_sources.iter().any(|net| net.contains(&ip))
    }

    /// Whether `user_agent` is a scanner's. A scanner is banned (never a trunk's address: a
    /// spoofed source must not cut off a carrier) and its message dropped; `true` then.
    pub fn drops_scanner(&self, ip: IpAddr, user_agent: &str) -> bool {
        let ua = user_agent.to_ascii_lowercase();
        let Some(pattern) = self.settings.scanner_agents.iter().find(|p| !p.is_empty() && ua.contains(p.as_str())) else {
            return false;
        };
        self.scanners.fetch_add(1, Ordering::Relaxed);
        if !self.is_trunk(ip) {
            self.ban(ip, BanReason::Scanner, &format!("User-Agent contains {pattern:?}"));
        }
        true
    }

    /// Bans `ip` for the configured time, logging it with the address once per ban.
    pub fn ban(&self, ip: IpAddr, reason: BanReason, detail: &str) {
        let now = Now::read();
        let duration = self.settings.ban_duration;
        if self.ban_list().ban(now.instant, now.wall, ip, reason, duration) {
            tracing::warn!(source = %ip, reason = reason.as_str(), detail, ban_secs = duration.as_secs(), "source banned");
        }
    }

    /// Admits a new call from `ip` (`operator`: the address of a registered operator).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, operator: bool) -> Result<CallPermit, Refused> {
        let class = if self.is_trunk(ip) {
            SourceClass::Trunk
        } else if operator {
            SourceClass::Operator
        } else {
            SourceClass::Unknown
        };
        let decision = self.admission().admit(Now::read().instant, ip, class);
        match decision {
            Decision::Admit => Ok(CallPermit { edge: self.clone(), ip }),
            Decision::Refuse { reason, retry_after, ban } => {
                tracing::debug!(source = %ip, class = class.as_str(), reason = reason.as_str(), "call refused");
                if ban {
                    self.ban(ip, BanReason::CallFlood, reason.as_str());
                }
                Err(Refused { retry_after })
            }
        }
    }

    /// The bans in force.
    pub fn bans(&self) -> Vec<BanView> {
        self.ban_list().list(Now::read().instant)
    }

    /// Lifts the ban on `ip`; `true` if there was one.
    pub fn lift(&self, ip: IpAddr) -> bool {
        let lifted = self.ban_list().lift(ip);
        if lifted {
            tracing::info!(source = %ip, "ban lifted");
        }
        lifted
    }

    /// Forgets expired bans and idle sources (called now and then by a driver).
    pub fn tidy(&self) {
        let now = Now::read().instant;
        self.ban_list().expire(now);
        self.admission().forget_idle(now);
    }

    pub fn stats(&self) -> EdgeStats {
        let now = Now::read().instant;
        let (bans, bans_active) = {
            let list = self.ban_list();
            (list.stats().clone(), list.active(now))
        };
        let (admission, calls) = {
            let a = self.admission();
            (a.stats().clone(), a.calls())
        };
        EdgeStats { admission, bans, bans_active, calls, scanners: self.scanners.load(Ordering::Relaxed) }
    }
}

/// A call's place in the admission counts; dropping it (when the call's leg ends) frees it.
pub struct CallPermit {
    edge: Arc<Edge>,
    ip: IpAddr,
}

impl Drop for CallPermit {
    fn drop(&mut self) {
        self.edge.admission().release(self.ip);
    }
}

impl std::fmt::Debug for CallPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CallPermit({})", self.ip)
    }
}

/// The User-Agent header's value in a raw message, if any (for screening before parsing).
pub fn raw_user_agent(message: &[u8]) -> Option<&str> {
    let head_end = message.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(message.len());
    let head = std::str::from_utf8(&message[..head_end]).ok()?;
    head.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("user-agent").then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_scanner_is_dropped_and_banned_but_a_trunk_address_is_never_banned() {
        let edge = Edge::new(EdgeSettings { trunk_sources: vec!["10.5.0.0/16".parse().unwrap()], ..EdgeSettings::default() });
        assert!(!edge.drops_scanner(ip("127.0.0.2"), "baresip v1.0.0"));
        assert!(edge.drops_scanner(ip("127.0.0.2"), "friendly-scanner"));
        assert!(edge.drops(ip("127.0.0.2")), "banned for everything from then on");
        assert!(edge.drops_scanner(ip("10.5.1.1"), "SIPVicious/0.3"));
        assert!(!edge.drops(ip("10.5.1.1")), "a trunk's address is dropped once, not banned");
        let listed = edge.bans();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].reason, BanReason::Scanner);
        assert_eq!(edge.stats().scanners, 2);
    }

    #[test]
    fn permits_return_their_place_when_dropped() {
        let mut settings = EdgeSettings::default();
        settings.admission.unknown.max_calls = 1;
        let edge = Edge::new(settings);
        let permit = edge.admit(ip("127.0.0.3"), false).expect("first call");
        assert!(edge.admit(ip("127.0.0.3"), false).is_err());
        drop(permit);
        assert!(edge.admit(ip("127.0.0.3"), false).is_ok());
        assert_eq!(edge.stats().calls, 0, "the second permit was dropped at once too");
    }

    #[test]
    fn the_user_agent_is_found_in_raw_messages() {
        let msg = b"OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2\r\nuser-agent : friendly-scanner\r\n\r\nbody User-Agent: x";
        assert_eq!(raw_user_agent(msg), Some("friendly-scanner"));
        assert_eq!(raw_user_agent(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n"), None);
        assert_eq!(raw_user_agent(&[0xff, 0xfe]), None);
    }
}
