//! The registrar and location service for operators (RFC 3261 §10.3): authenticates REGISTER
//! with digest (RFC 7616 / RFC 8760), keeps each operator's contact bindings, and tells the
//! runtime when an operator becomes reachable or unreachable.
//!
//! Owns: the REGISTER policy, with bindings (`location.rs`), nonces (`nonce.rs`) and failure
//! throttling (`throttle.rs`), and counters.
//! Must not touch: sockets, clocks (`now`/`wall` are parameters), the database (credentials come
//! from a synchronous `lookup` over the in-memory operator directory), call policy.
//! Invariant: `Registered` is emitted when a user's first binding appears and `Unregistered`
//! when the last one goes, so the two alternate per user (`location.rs` keeps it).
//!
//! ```text
//!  REGISTER ──▶ (address, user) or user blocked? ──yes──▶ 403 (not checked, not a guess)
//!                   │ no
//!                   ▼
//!       Authorization for our realm? ──no──▶ 401 challenge (fresh nonce)
//!                   │ yes
//!                   ▼
//!  username = To user, user known, response right? ──no──▶ 403, failure counted
//!                   │ yes
//!                   ▼
//!  nonce fresh, nc above the last one seen? ──no──▶ 401 stale=true (fresh nonce)
//!                   │ yes
//!                   ▼
//!  Contact/Expires (§10.3 steps 6–8): 423 too brief · 400 bad `*` · 500 old CSeq · 200 + bindings
//! ```
//!
//! Decisions worth knowing:
//! - A wrong response gets 403 at once, not another 401: a phone with a wrong password would
//!   otherwise loop on challenges. An expired nonce or a reused `nc` with a *right* response gets
//!   401 `stale=true`, which phones answer silently with the new nonce.
//! - A nonce this node did not issue (e.g. before a restart, when the secret is per process) is
//!   handled like an expired one: right response → 401 `stale=true`.
//! - A known Call-ID with a CSeq not above the binding's gets 500 (RFC 3261 §10.3 step 7).
//! - The To host is not compared with the realm: phones often register to `sip:user@<IP>`.
//!   The digest `uri` is not compared with the Request-URI either (a proxy in front, e.g.
//!   Kamailio's dispatcher, rewrites the Request-URI); it is covered by the hash.
//! - Above `max_bindings_per_user`, the binding that expires first is dropped.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rsipstack::sip::prelude::ToTypedHeader;
use rsipstack::sip::typed::Contact;
use rsipstack::sip::uri::Scheme;
use rsipstack::sip::{Header, HeadersExt, Method, Request, StatusCode, Transport};

use super::digest::{self, DigestAlgorithm, DigestCredentials, DigestError};
use super::location::{contact_key, Location};
pub use super::location::{Binding, RegistrarEvent};
use super::nonce::{NonceStatus, Nonces};
use super::throttle::{Block, Throttle, ThrottleConfig};

/// Registrar settings (`[sip]` in the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// The digest realm, i.e. the configured SIP domain.
    pub realm: String,
    /// Shorter requested intervals get 423 with `Min-Expires`.
    pub min_expires: Duration,
    /// Longer requested intervals are shortened to this.
    pub max_expires: Duration,
    /// Used when the request names no interval.
    pub default_expires: Duration,
    /// How long a nonce may be used.
    pub nonce_ttl: Duration,
    /// The algorithms offered in a 401, one `WWW-Authenticate` each, in this order. All of
    /// MD5, SHA-256 and their `-sess` forms are verified whatever is offered.
    /// The default is MD5 only: baresip 1.0 (libre 1.1) fails outright ("Function not
    /// implemented") on a 401 that contains any SHA-256 challenge, and SIPp 3.6 fails when
    /// SHA-256 comes first. Use `[Sha256, Md5]` (RFC 8760 order) when every phone copes.
    pub challenge_algorithms: Vec<DigestAlgorithm>,
    /// Bound on bindings per user.
    pub max_bindings_per_user: usize,
    /// Bound on the nonce replay table.
    pub max_tracked_nonces: usize,
    pub throttle: ThrottleConfig,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            realm: "centralino.local".into(),
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
            default_expires: Duration::from_secs(600),
            nonce_ttl: Duration::from_secs(300),
            challenge_algorithms: vec![DigestAlgorithm::Md5],
            max_bindings_per_user: 10,
            max_tracked_nonces: 100_000,
            throttle: ThrottleConfig::default(),
        }
    }
}

/// What the operator store keeps for digest: HA1 per algorithm, never the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// `MD5(username:realm:password)` in hex; empty if unknown (MD5 answers then fail).
    pub ha1_md5: String,
    /// `SHA-256(username:realm:password)` in hex; empty if unknown.
    pub ha1_sha256: String,
}

impl Credentials {
    /// Both HA1s for a new or changed password (`centralino operators add|passwd`). A change of
    /// realm invalidates them.
    pub fn from_password(username: &str, realm: &str, password: &str) -> Credentials {
        Credentials {
            ha1_md5: digest::ha1(DigestAlgorithm::Md5, username, realm, password),
            ha1_sha256: digest::ha1(DigestAlgorithm::Sha256, username, realm, password),
        }
    }

    fn ha1(&self, alg: DigestAlgorithm) -> &str {
        match alg.base() {
            DigestAlgorithm::Md5 => &self.ha1_md5,
            _ => &self.ha1_sha256,
        }
    }
}

/// The answer to send: `tx.reply_with(reply.status, reply.headers, None)`.
#[derive(Clone, Debug)]
pub struct RegisterReply {
    pub status: StatusCode,
    /// Extra headers: `WWW-Authenticate` (401), `Min-Expires` (423), `Contact` per binding
    /// (200). rsipstack adds Via, From, To (with tag), Call-ID, CSeq and Content-Length.
    pub headers: Vec<Header>,
    pub outcome: RegisterOutcome,
}

/// What a REGISTER did, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// 401: credentials asked for; `stale` when they were right but the nonce was not.
    Challenge { stale: bool },
    /// 200: the bindings were updated (or only listed, without Contact); `bindings` is how many
    /// the user has now.
    Ok {
        username: String,
        bindings: usize,
        became_registered: bool,
    },
    /// 200: this request removed the user's last binding.
    Unregistered { username: String },
    /// Any other final answer.
    Rejected { reason: RejectReason },
}

/// Why a REGISTER was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// 405: not a REGISTER.
    NotRegister,
    /// 400: To, Call-ID or CSeq missing or unparsable, or To has no user part.
    BadHeaders,
    /// 400: an `Authorization` header that cannot be parsed.
    BadAuthorization,
    /// 400: a Contact that cannot be parsed, or not a sip/sips URI.
    BadContact,
    /// 400: `Contact: *` with other contacts or without `Expires: 0`.
    BadWildcard,
    /// 403: too many failures from this source lately; not checked.
    Throttled,
    /// 403: the digest username differs from the To user.
    UsernameMismatch,
    /// 403: no such operator.
    UnknownUser,
    /// 403: wrong response (wrong password).
    WrongPassword,
    /// 423: interval below `min_expires`.
    IntervalTooBrief,
    /// 500: a known Call-ID with a CSeq not above the binding's.
    OutOfOrder,
}

impl RejectReason {
    fn status(self) -> StatusCode {
        match self {
            RejectReason::NotRegister => StatusCode::MethodNotAllowed,
            RejectReason::BadHeaders
            | RejectReason::BadAuthorization
            | RejectReason::BadContact
            | RejectReason::BadWildcard => StatusCode::BadRequest,
            RejectReason::Throttled
            | RejectReason::UsernameMismatch
            | RejectReason::UnknownUser
            | RejectReason::WrongPassword => StatusCode::Forbidden,
            RejectReason::IntervalTooBrief => StatusCode::IntervalTooBrief,
            RejectReason::OutOfOrder => StatusCode::ServerInternalError,
        }
    }
}

/// Counters as plain data, for `metrics.rs`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistrarStats {
    /// 401s sent (including stale ones).
    pub challenges: u64,
    /// Requests whose credentials were accepted.
    pub successes: u64,
    /// Authentication failures (wrong response, unknown user, username mismatch).
    pub failures: u64,
    /// Requests refused unchecked because their source was throttled.
    pub throttled: u64,
    /// Right credentials with an expired or foreign nonce (answered `stale=true`).
    pub stale: u64,
    /// Right credentials with a nonce count already used (answered `stale=true`).
    pub replays: u64,
    /// Bindings held now.
    pub bindings: u64,
    /// Users with at least one binding now.
    pub registered_users: u64,
}

/// The registrar; see the module docs.
pub struct Registrar {
    config: RegistrarConfig,
    nonces: Nonces,
    throttle: Throttle,
    location: Location,
    stats: RegistrarStats,
}

/// The parts of a REGISTER the registrar needs, parsed once.
struct RegisterRequest {
    username: String,
    call_id: String,
    cseq: u32,
    transport: Transport,
    user_agent: Option<String>,
    expires: Option<u64>,
    contacts: Vec<Contact>,
}

impl Registrar {
    /// `secret` keys the nonces: random per process, or shared by nodes that should accept
    /// each other's nonces. `rng_seed` seeds nonce salts.
    pub fn new(config: RegistrarConfig, secret: &[u8; 32], rng_seed: u64) -> Registrar {
        let nonces = Nonces::new(
            secret,
            &config.realm,
            config.nonce_ttl,
            config.max_tracked_nonces,
            rng_seed,
        );
        let throttle = Throttle::new(config.throttle.clone());
        Registrar {
            config,
            nonces,
            throttle,
            location: Location::default(),
            stats: RegistrarStats::default(),
        }
    }

    /// Handles one REGISTER that arrived from `source`. `now` drives bindings and throttling,
    /// `wall` (e.g. `SystemTime::from(now.wall)`) the nonces. `lookup` returns the stored
    /// credentials of a username; it is called at most once, only after the client answered a
    /// challenge, so unknown and known users look alike until then.
    pub fn handle_register(
        &mut self,
        now: Instant,
        wall: SystemTime,
        source: SocketAddr,
        req: &Request,
        lookup: impl FnOnce(&str) -> Option<Credentials>,
    ) -> (RegisterReply, Vec<RegistrarEvent>) {
        let mut events = Vec::new();
        let reply = self.register(now, wall, source, req, lookup, &mut events);
        self.refresh_gauges();
        (reply, events)
    }

    /// Drops expired bindings (and old throttling state). Call at `poll_timeout()`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<RegistrarEvent> {
        let events = self.location.handle_timeout(now);
        self.throttle.handle_timeout(now);
        self.refresh_gauges();
        events
    }

    /// When the next binding expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.location.poll_timeout()
    }

    /// The live bindings of `username`, least recently (re-)registered first: where to send an
    /// INVITE.
    pub fn contacts(&self, now: Instant, username: &str) -> Vec<&Binding> {
        self.location.contacts(now, username)
    }

    /// Whether a live binding of any operator was registered from `ip`.
    pub fn has_source_ip(&self, now: Instant, ip: std::net::IpAddr) -> bool {
        self.location.has_source_ip(now, ip)
    }

    /// Whether `username` has a live binding.
    pub fn is_registered(&self, now: Instant, username: &str) -> bool {
        !self.contacts(now, username).is_empty()
    }

    /// Forgets every binding of `username` (operator deleted or disabled).
    pub fn remove_user(&mut self, username: &str) -> Vec<RegistrarEvent> {
        let events = self.location.remove_user(username);
        self.refresh_gauges();
        events
    }

    pub fn stats(&self) -> RegistrarStats {
        self.stats
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    fn register(
        &mut self,
        now: Instant,
        wall: SystemTime,
        source: SocketAddr,
        req: &Request,
        lookup: impl FnOnce(&str) -> Option<Credentials>,
        events: &mut Vec<RegistrarEvent>,
    ) -> RegisterReply {
        if req.method != Method::Register {
            return rejected(RejectReason::NotRegister);
        }
        let register = match parse_register(req) {
            Ok(r) => r,
            Err(reason) => return rejected(reason),
        };
        if self.throttle.blocked(now, source.ip(), &register.username).is_some() {
            self.stats.throttled += 1;
            return rejected(RejectReason::Throttled);
        }
        let creds = match self.credentials(req) {
            Ok(Some(creds)) => creds,
            Ok(None) => return self.challenge(wall, false),
            // Answerable with a challenge we do support.
            Err(
                DigestError::NotDigest
                | DigestError::UnsupportedAlgorithm(_)
                | DigestError::UnsupportedQop(_)
                | DigestError::UserHash,
            ) => return self.challenge(wall, false),
            Err(_) => return rejected(RejectReason::BadAuthorization),
        };
        if creds.username != register.username {
            return self.failure(source, now, &register.username, RejectReason::UsernameMismatch, events);
        }
        let Some(stored) = lookup(&creds.username) else {
            return self.failure(source, now, &register.username, RejectReason::UnknownUser, events);
        };
        let ha1 = stored.ha1(creds.algorithm);
        if ha1.is_empty() || !digest::verify(ha1, req.method.to_string().as_str(), &creds) {
            return self.failure(source, now, &register.username, RejectReason::WrongPassword, events);
        }
        self.throttle.record_success(now, source.ip(), &register.username);
        let NonceStatus::Fresh(nonce) = self.nonces.check(&creds.nonce, wall) else {
            self.stats.stale += 1;
            return self.challenge(wall, true);
        };
        let nc = creds.qop.as_ref().map_or(0, |q| q.nc);
        if !self.nonces.record_use(nonce, nc, wall) {
            self.stats.replays += 1;
            return self.challenge(wall, true);
        }
        self.stats.successes += 1;
        self.update_bindings(now, source, register, events)
    }

    /// The first `Authorization` for our realm; `Ok(None)` if there is none.
    fn credentials(&self, req: &Request) -> Result<Option<DigestCredentials>, DigestError> {
        let mut first_error = None;
        for header in req.headers.iter() {
            if let Header::Authorization(value) = header {
                match DigestCredentials::parse(value.value()) {
                    Ok(creds) if creds.realm == self.config.realm => return Ok(Some(creds)),
                    Ok(_) => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        first_error.map_or(Ok(None), Err)
    }

    fn challenge(&mut self, wall: SystemTime, stale: bool) -> RegisterReply {
        self.stats.challenges += 1;
        let nonce = self.nonces.issue(wall);
        let headers = self
            .config
            .challenge_algorithms
            .iter()
            .map(|&alg| {
                Header::WwwAuthenticate(
                    digest::challenge_value(&self.config.realm, &nonce, alg, stale).into(),
                )
            })
            .collect();
        RegisterReply {
            status: StatusCode::Unauthorized,
            headers,
            outcome: RegisterOutcome::Challenge { stale },
        }
    }

    fn failure(
        &mut self,
        source: SocketAddr,
        now: Instant,
        username: &str,
        reason: RejectReason,
        events: &mut Vec<RegistrarEvent>,
    ) -> RegisterReply {
        self.stats.failures += 1;
        let exists = reason == RejectReason::WrongPassword;
        let outcome = self.throttle.record_failure(now, source.ip(), username, exists);
        if let Some((block, backoff)) = outcome.blocked {
            let scope = match block {
                Block::Pair { .. } => "address+user",
                Block::User { .. } => "user",
            };
            events.push(RegistrarEvent::Blocked {
                source: source.ip(),
                username: username.to_owned(),
                scope,
                secs: backoff.as_secs(),
            });
        }
        if outcome.guesser {
            events.push(RegistrarEvent::Guesser { source: source.ip(), username: username.to_owned() });
        }
        rejected(reason)
    }

    /// RFC 3261 §10.3 steps 6–8, applied all-or-nothing.
    fn update_bindings(
        &mut self,
        now: Instant,
        source: SocketAddr,
        register: RegisterRequest,
        events: &mut Vec<RegistrarEvent>,
    ) -> RegisterReply {
        let user = register.username.clone();
        events.extend(self.location.expire_user(now, &user));
        let current = self.location.bindings(&user).to_vec();
        let updated = if register.contacts.iter().any(is_wildcard) {
            if register.contacts.len() != 1 || register.expires != Some(0) {
                return rejected(RejectReason::BadWildcard);
            }
            if current
                .iter()
                .any(|b| b.call_id == register.call_id && register.cseq <= b.cseq)
            {
                return rejected(RejectReason::OutOfOrder);
            }
            Vec::new()
        } else {
            match self.apply_contacts(now, source, &register, current.clone()) {
                Ok(list) => list,
                Err(reason) => return self.reject_contacts(reason),
            }
        };
        let (before, after) = (current.len(), updated.len());
        events.extend(self.location.set(&user, updated));
        let contacts = self.contact_headers(now, &user);
        let outcome = if before > 0 && after == 0 {
            RegisterOutcome::Unregistered { username: user }
        } else {
            let became_registered = before == 0 && after > 0;
            RegisterOutcome::Ok {
                username: user,
                bindings: after,
                became_registered,
            }
        };
        RegisterReply {
            status: StatusCode::OK,
            headers: contacts,
            outcome,
        }
    }

    /// The user's bindings after this request's contacts, or why the request must fail.
    fn apply_contacts(
        &self,
        now: Instant,
        source: SocketAddr,
        register: &RegisterRequest,
        mut list: Vec<Binding>,
    ) -> Result<Vec<Binding>, RejectReason> {
        let mut changes = Vec::with_capacity(register.contacts.len());
        for contact in &register.contacts {
            if !matches!(contact.uri.scheme, Some(Scheme::Sip | Scheme::Sips)) {
                return Err(RejectReason::BadContact);
            }
            let requested = contact.expires().map(u64::from).or(register.expires);
            let granted = match requested {
                Some(0) => None,
                Some(secs) if Duration::from_secs(secs) < self.config.min_expires => {
                    return Err(RejectReason::IntervalTooBrief)
                }
                Some(secs) => Some(Duration::from_secs(secs).min(self.config.max_expires)),
                None => Some(
                    self.config
                        .default_expires
                        .clamp(self.config.min_expires, self.config.max_expires),
                ),
            };
            let key = contact_key(&contact.uri);
            if let Some(old) = list.iter().find(|b| contact_key(&b.contact) == key) {
                if old.call_id == register.call_id && register.cseq <= old.cseq {
                    return Err(RejectReason::OutOfOrder);
                }
            }
            changes.push((key, contact, granted));
        }
        for (key, contact, granted) in changes {
            list.retain(|b| contact_key(&b.contact) != key);
            if let Some(granted) = granted {
                list.push(Binding {
                    contact: contact.uri.clone(),
                    expires_at: now + granted,
                    source,
                    transport: register.transport,
                    call_id: register.call_id.clone(),
                    cseq: register.cseq,
                    user_agent: register.user_agent.clone(),
                });
            }
        }
        while list.len() > self.config.max_bindings_per_user.max(1) {
            let soonest = list
                .iter()
                .enumerate()
                .min_by_key(|(_, b)| b.expires_at)
                .map(|(i, _)| i);
            match soonest {
                Some(i) => list.remove(i),
                None => break,
            };
        }
        Ok(list)
    }

    fn reject_contacts(&self, reason: RejectReason) -> RegisterReply {
        let mut reply = rejected(reason);
        if reason == RejectReason::IntervalTooBrief {
            reply.headers.push(Header::MinExpires(
                self.config.min_expires.as_secs().to_string().into(),
            ));
        }
        reply
    }

    /// RFC 3261 §10.3 step 8: every current binding with its remaining time.
    fn contact_headers(&self, now: Instant, user: &str) -> Vec<Header> {
        self.contacts(now, user)
            .into_iter()
            .map(|b| {
                let left = b.expires_at.saturating_duration_since(now).as_secs();
                Header::Contact(format!("<{}>;expires={left}", b.contact).into())
            })
            .collect()
    }

    fn refresh_gauges(&mut self) {
        self.stats.bindings = self.location.binding_count() as u64;
        self.stats.registered_users = self.location.user_count() as u64;
    }
}

fn rejected(reason: RejectReason) -> RegisterReply {
    RegisterReply {
        status: reason.status(),
        headers: Vec::new(),
        outcome: RegisterOutcome::Rejected { reason },
    }
}

fn parse_register(req: &Request) -> Result<RegisterRequest, RejectReason> {
    let to = req
        .to_header()
        .ok()
        .and_then(|h| h.typed().ok())
        .ok_or(RejectReason::BadHeaders)?;
    let username = to
        .uri
        .auth
        .map(|a| a.user)
        .filter(|u| !u.is_empty())
        .ok_or(RejectReason::BadHeaders)?;
    let call_id = req
        .call_id_header()
        .map(|h| h.value().trim().to_owned())
        .map_err(|_| RejectReason::BadHeaders)?;
    let cseq = req
        .cseq_header()
        .ok()
        .and_then(|h| h.typed().ok())
        .ok_or(RejectReason::BadHeaders)?
        .seq;
    if call_id.is_empty() {
        return Err(RejectReason::BadHeaders);
    }
    let transport = req
        .top_via_header()
        .ok()
        .and_then(|v| v.typed().ok())
        .map(|v| v.transport)
        .unwrap_or_default();
    // RFC 3261 §20.19: an unparsable Expires is ignored; huge values saturate.
    let expires = req
        .expires_header()
        .and_then(|h| h.value().trim().parse::<u64>().ok())
        .map(|secs| secs.min(u64::from(u32::MAX)));
    let contacts = req
        .typed_contact_headers()
        .map_err(|_| RejectReason::BadContact)?;
    Ok(RegisterRequest {
        username,
        call_id,
        cseq,
        transport,
        user_agent: req.user_agent_header().map(|h| h.value().to_owned()),
        expires,
        contacts,
    })
}

fn is_wildcard(contact: &Contact) -> bool {
    matches!(&contact.uri.scheme, Some(Scheme::Other(s)) if s == "*")
}

#[cfg(test)]
#[path = "registrar_tests.rs"]
mod tests;
