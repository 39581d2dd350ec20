//! Tests of `registrar.rs`: REGISTER texts as phones send them, parsed by rsipstack, answered
//! through the sans-IO registrar on a simulated clock. Digest responses are computed here with
//! md-5/sha2 directly, the way a phone does, not with `digest.rs`.

use std::cell::Cell;
use std::time::UNIX_EPOCH;

use md5::{Digest, Md5};
use proptest::prelude::*;
use sha2::Sha256;

use super::*;

const SECRET: [u8; 32] = [42; 32];
const PHONE: &str = "192.0.2.10:5060";

struct Harness {
    reg: Registrar,
    t0: Instant,
    w0: SystemTime,
    elapsed: Duration,
    lookups: Cell<u32>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(RegistrarConfig::default())
    }

    fn with(config: RegistrarConfig) -> Harness {
        #[allow(clippy::disallowed_methods)] // an arbitrary origin for the test
        let t0 = Instant::now();
        Harness {
            reg: Registrar::new(config, &SECRET, 7),
            t0,
            w0: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            elapsed: Duration::ZERO,
            lookups: Cell::new(0),
        }
    }

    fn now(&self) -> Instant {
        self.t0 + self.elapsed
    }

    fn advance(&mut self, d: Duration) -> Vec<RegistrarEvent> {
        self.elapsed += d;
        self.reg.handle_timeout(self.now())
    }

    fn send_from(&mut self, source: &str, text: &str) -> (RegisterReply, Vec<RegistrarEvent>) {
        let req = Request::try_from(text).expect("test REGISTER parses");
        let (now, wall) = (self.now(), self.w0 + self.elapsed);
        let lookups = &self.lookups;
        self.reg
            .handle_register(now, wall, source.parse().unwrap(), &req, |user| {
                lookups.set(lookups.get() + 1);
                directory(user)
            })
    }

    fn send(&mut self, text: &str) -> (RegisterReply, Vec<RegistrarEvent>) {
        self.send_from(PHONE, text)
    }

    /// REGISTER without credentials, then again with the answer to the challenge (CSeq + 1).
    fn register(&mut self, phone: &Phone, password: &str) -> (RegisterReply, Vec<RegistrarEvent>) {
        let (challenge, _) = self.send(&phone.text(None));
        assert_eq!(challenge.status, StatusCode::Unauthorized);
        let auth = phone.answer(&challenge, password, 1);
        self.send(&phone.next().text(Some(&auth)))
    }
}

fn directory(user: &str) -> Option<Credentials> {
    match user {
        "alice" => Some(Credentials::from_password(
            "alice",
            "centralino.local",
            "secret",
        )),
        "bob" => Some(Credentials::from_password(
            "bob",
            "centralino.local",
            "hunter2",
        )),
        _ => None,
    }
}

/// A softphone's REGISTER, Linphone/Yealink style.
#[derive(Clone)]
struct Phone {
    user: &'static str,
    contact: String,
    call_id: &'static str,
    cseq: u32,
    expires: Option<&'static str>,
    algorithm: Option<&'static str>,
}

impl Phone {
    fn new(user: &'static str) -> Phone {
        Phone {
            user,
            contact: format!("<sip:{user}@192.168.1.20:5062;transport=udp>"),
            call_id: "a84b4c76e66710@pc33",
            cseq: 1,
            expires: Some("3600"),
            algorithm: None,
        }
    }

    fn next(&self) -> Phone {
        Phone {
            cseq: self.cseq + 1,
            ..self.clone()
        }
    }

    fn text(&self, authorization: Option<&str>) -> String {
        let user = self.user;
        let mut t = format!(
            "REGISTER sip:centralino.local SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"Operator\" <sip:{user}@centralino.local>;tag=456248\r\n\
             To: \"Operator\" <sip:{user}@centralino.local>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: {contact}\r\n",
            branch = 1000 + self.cseq,
            call_id = self.call_id,
            cseq = self.cseq,
            contact = self.contact,
        );
        if let Some(e) = self.expires {
            t.push_str(&format!("Expires: {e}\r\n"));
        }
        if let Some(a) = authorization {
            t.push_str(&format!("Authorization: {a}\r\n"));
        }
        t.push_str("User-Agent: Linphone/5.2\r\nContent-Length: 0\r\n\r\n");
        t
    }

    /// The Authorization a phone computes for the challenge with its preferred algorithm.
    fn answer(&self, challenge: &RegisterReply, password: &str, nc: u32) -> String {
        let alg = self.algorithm.unwrap_or("MD5");
        let nonce = nonce_of(challenge);
        phone_authorization(
            self.user,
            password,
            &nonce,
            "sip:centralino.local",
            alg,
            nc,
            "0a4f113b",
        )
    }
}

/// The nonce of the first challenge.
fn nonce_of(reply: &RegisterReply) -> String {
    let value = www_authenticate(reply)
        .into_iter()
        .next()
        .expect("a challenge");
    let start = value.find("nonce=\"").expect("nonce") + 7;
    value[start..start + value[start..].find('"').unwrap()].to_owned()
}

fn www_authenticate(reply: &RegisterReply) -> Vec<String> {
    reply
        .headers
        .iter()
        .filter_map(|h| match h {
            Header::WwwAuthenticate(v) => Some(v.value().to_owned()),
            _ => None,
        })
        .collect()
}

fn contact_values(reply: &RegisterReply) -> Vec<String> {
    reply
        .headers
        .iter()
        .filter_map(|h| match h {
            Header::Contact(v) => Some(v.value().to_owned()),
            _ => None,
        })
        .collect()
}

/// RFC 7616 §3.4.1 with qop=auth, computed from the password like a phone.
fn phone_authorization(
    user: &str,
    password: &str,
    nonce: &str,
    uri: &str,
    alg: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let h = |s: String| -> String {
        if alg.to_ascii_uppercase().starts_with("SHA") {
            hex::encode(Sha256::digest(s.as_bytes()))
        } else {
            hex::encode(Md5::digest(s.as_bytes()))
        }
    };
    let ha1 = h(format!("{user}:centralino.local:{password}"));
    let ha2 = h(format!("REGISTER:{uri}"));
    let response = h(format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"centralino.local\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={alg}, cnonce=\"{cnonce}\", qop=auth, nc={nc:08x}"
    )
}

fn registered(user: &str) -> RegistrarEvent {
    RegistrarEvent::Registered {
        username: user.into(),
    }
}

fn unregistered(user: &str) -> RegistrarEvent {
    RegistrarEvent::Unregistered {
        username: user.into(),
    }
}

#[test]
fn register_is_challenged_then_accepted_with_the_binding() {
    let mut h = Harness::new();
    let phone = Phone::new("alice");
    let (challenge, events) = h.send(&phone.text(None));
    assert_eq!(challenge.status, StatusCode::Unauthorized);
    assert_eq!(
        challenge.outcome,
        RegisterOutcome::Challenge { stale: false }
    );
    assert!(events.is_empty());
    assert_eq!(
        h.lookups.get(),
        0,
        "no user lookup before the challenge is answered"
    );
    let chal = www_authenticate(&challenge);
    assert_eq!(chal.len(), 1);
    assert!(
        chal[0].starts_with("Digest realm=\"centralino.local\", nonce=\""),
        "{}",
        chal[0]
    );
    assert!(
        chal[0].ends_with("algorithm=MD5, qop=\"auth\""),
        "{}",
        chal[0]
    );

    let auth = phone.answer(&challenge, "secret", 1);
    let (ok, events) = h.send(&phone.next().text(Some(&auth)));
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.outcome,
        RegisterOutcome::Ok {
            username: "alice".into(),
            bindings: 1,
            became_registered: true
        }
    );
    assert_eq!(events, vec![registered("alice")]);
    assert_eq!(
        contact_values(&ok),
        vec!["<sip:alice@192.168.1.20:5062>;expires=3600".to_string()]
    );

    let bindings = h.reg.contacts(h.now(), "alice");
    assert_eq!(bindings.len(), 1);
    let b = bindings[0];
    assert_eq!(b.contact.to_string(), "sip:alice@192.168.1.20:5062");
    assert_eq!(b.source, PHONE.parse().unwrap());
    assert_eq!(b.transport, Transport::Udp);
    assert_eq!(b.call_id, "a84b4c76e66710@pc33");
    assert_eq!(b.cseq, 2);
    assert_eq!(b.user_agent.as_deref(), Some("Linphone/5.2"));
    assert_eq!(b.expires_at, h.now() + Duration::from_secs(3600));
    let stats = h.reg.stats();
    assert_eq!(
        (
            stats.challenges,
            stats.successes,
            stats.failures,
            stats.bindings
        ),
        (1, 1, 0, 1)
    );
    assert_eq!(stats.registered_users, 1);
}

#[test]
fn sha256_is_offered_first_when_configured_and_verified() {
    let mut h = Harness::with(RegistrarConfig {
        challenge_algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
        ..RegistrarConfig::default()
    });
    let phone = Phone {
        algorithm: Some("SHA-256"),
        ..Phone::new("bob")
    };
    let (challenge, _) = h.send(&phone.text(None));
    let chal = www_authenticate(&challenge);
    assert_eq!(chal.len(), 2);
    assert!(chal[0].contains("algorithm=SHA-256"));
    assert!(chal[1].contains("algorithm=MD5"));
    let auth = phone.answer(&challenge, "hunter2", 1);
    let (ok, events) = h.send(&phone.next().text(Some(&auth)));
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(events, vec![registered("bob")]);
}

#[test]
fn rsipstack_sha256_spelling_is_accepted() {
    let mut h = Harness::new();
    let phone = Phone {
        algorithm: Some("SHA256"),
        ..Phone::new("bob")
    };
    let (ok, _) = h.register(&phone, "hunter2");
    assert_eq!(ok.status, StatusCode::OK);
}

#[test]
fn wrong_password_gets_403_and_is_counted() {
    let mut h = Harness::new();
    let (reply, events) = h.register(&Phone::new("alice"), "guess");
    assert_eq!(reply.status, StatusCode::Forbidden);
    assert_eq!(
        reply.outcome,
        RegisterOutcome::Rejected {
            reason: RejectReason::WrongPassword
        }
    );
    assert!(events.is_empty());
    assert!(h.reg.contacts(h.now(), "alice").is_empty());
    assert_eq!(h.reg.stats().failures, 1);
    assert_eq!(h.reg.stats().successes, 0);
}

#[test]
fn unknown_user_is_challenged_like_a_known_one_then_refused() {
    let mut h = Harness::new();
    let (known, _) = h.send(&Phone::new("alice").text(None));
    let (unknown, _) = h.send(&Phone::new("mallory").text(None));
    assert_eq!(unknown.status, known.status);
    assert_eq!(
        www_authenticate(&unknown).len(),
        www_authenticate(&known).len()
    );
    let (reply, _) = h.register(&Phone::new("mallory"), "x");
    assert_eq!(
        reply.outcome,
        RegisterOutcome::Rejected {
            reason: RejectReason::UnknownUser
        }
    );
    assert_eq!(reply.status, StatusCode::Forbidden);
    assert_eq!(h.reg.stats().failures, 1);
}

#[test]
fn authorization_username_must_be_the_to_user() {
    let mut h = Harness::new();
    let phone = Phone::new("alice");
    let (challenge, _) = h.send(&phone.text(None));
    // Bob's valid credentials on Alice's registration.
    let auth = phone_authorization(
        "bob",
        "hunter2",
        &nonce_of(&challenge),
        "sip:centralino.local",
        "MD5",
        1,
        "c",
    );
    let (reply, _) = h.send(&phone.next().text(Some(&auth)));
    assert_eq!(
        reply.outcome,
        RegisterOutcome::Rejected {
            reason: RejectReason::UsernameMismatch
        }
    );
    assert_eq!(h.lookups.get(), 0);
}

#[test]
fn replayed_nonce_count_is_refused_with_a_stale_challenge() {
    let mut h = Harness::new();
    let phone = Phone::new("alice");
    let (challenge, _) = h.send(&phone.text(None));
    let nonce = nonce_of(&challenge);
    let auth1 = phone.answer(&challenge, "secret", 1);
    assert_eq!(
        h.send(&phone.next().text(Some(&auth1))).0.status,
        StatusCode::OK
    );
    // The same Authorization again, on a later request: a replay.
    let (replay, events) = h.send(&phone.next().next().text(Some(&auth1)));
    assert_eq!(replay.status, StatusCode::Unauthorized);
    assert_eq!(replay.outcome, RegisterOutcome::Challenge { stale: true });
    assert!(www_authenticate(&replay)[0].ends_with("stale=true"));
    assert!(events.is_empty());
    assert_eq!(h.reg.stats().replays, 1);
    assert_eq!(
        h.reg.stats().failures,
        0,
        "a replay is not a password guess"
    );
    assert_eq!(
        h.reg.contacts(h.now(), "alice")[0].cseq,
        2,
        "binding untouched"
    );
    // The next count on the same nonce is fine.
    let auth2 = phone_authorization(
        "alice",
        "secret",
        &nonce,
        "sip:centralino.local",
        "MD5",
        2,
        "0a4f113b",
    );
    let (ok, _) = h.send(&phone.next().next().next().text(Some(&auth2)));
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(h.reg.contacts(h.now(), "alice")[0].cseq, 4);
}

#[test]
fn expired_nonce_gets_stale_challenge_if_the_password_is_right() {
    let mut h = Harness::new();
    let phone = Phone::new("alice");
    let (challenge, _) = h.send(&phone.text(None));
    h.advance(Duration::from_secs(301));
    let auth = phone.answer(&challenge, "secret", 1);
    let (stale, _) = h.send(&phone.next().text(Some(&auth)));
    assert_eq!(stale.outcome, RegisterOutcome::Challenge { stale: true });
    assert_ne!(nonce_of(&stale), nonce_of(&challenge));
    assert_eq!((h.reg.stats().stale, h.reg.stats().failures), (1, 0));
    // The phone retries silently with the new nonce.
    let auth = phone.answer(&stale, "secret", 1);
    assert_eq!(
        h.send(&phone.next().next().text(Some(&auth))).0.status,
        StatusCode::OK
    );
    // A wrong password on an expired nonce is a failure, not "stale".
    let bob = Phone::new("bob");
    let (challenge, _) = h.send(&bob.text(None));
    h.advance(Duration::from_secs(301));
    let (reply, _) = h.send(&bob.next().text(Some(&bob.answer(&challenge, "wrong", 1))));
    assert_eq!(
        reply.outcome,
        RegisterOutcome::Rejected {
            reason: RejectReason::WrongPassword
        }
    );
}

#[test]
fn nonce_from_before_a_restart_gets_stale_challenge() {
    let mut old = Harness::new();
    old.reg = Registrar::new(RegistrarConfig::default(), &[1; 32], 1);
    let phone = Phone::new("alice");
    let (challenge, _) = old.send(&phone.text(None));
    let mut h = Harness::new();
    let (reply, _) = h.send(
        &phone
            .next()
            .text(Some(&phone.answer(&challenge, "secret", 1))),
    );
    assert_eq!(reply.outcome, RegisterOutcome::Challenge { stale: true });
}

#[test]
fn repeated_failures_from_one_source_are_throttled_for_a_cool_off() {
    let mut h = Harness::new();
    let phone = Phone::new("alice");
    for _ in 0..5 {
        assert_eq!(h.register(&phone, "guess").0.status, StatusCode::Forbidden);
    }
    assert_eq!(h.reg.stats().failures, 5);
    // Even a request without credentials is refused now, and nothing is checked.
    let (reply, _) = h.send(&phone.text(None));
    assert_eq!(
        reply.outcome,
        RegisterOutcome::Rejected {
            reason: RejectReason::Throttled
        }
    );
    assert_eq!(reply.status, StatusCode::Forbidden);
    assert_eq!(h.reg.stats().throttled, 1);
    // Another source is not affected.
    assert_eq!(
        h.send_from("198.51.100.7:5060", &phone.text(None)).0.status,
        StatusCode::Unauthorized
    );
    h.advance(Duration::from_secs(60));
    assert_eq!(h.register(&phone, "secret").0.status, StatusCode::OK);
}

#[test]
fn too_brief_interval_gets_423_with_min_expires() {
    let mut h = Harness::new();
    let phone = Phone {
        expires: Some("30"),
        ..Phone::new("alice")
    };
    let (reply, events) = h.register(&phone, "secret");
    assert_eq!(reply.status, StatusCode::IntervalTooBrief);
    assert_eq!(
        reply.outcome,
        RegisterOutcome::Rejected {
            reason: RejectReason::IntervalTooBrief
        }
    );
    assert!(reply.headers.contains(&Header::MinExpires("60".into())));
    assert!(events.is_empty());
    assert!(h.reg.contacts(h.now(), "alice").is_empty());
}

#[test]
fn long_interval_is_clamped_and_contact_param_beats_header() {
    let mut h = Harness::new();
    let phone = Phone {
        expires: Some("7200"),
        ..Phone::new("alice")
    };
    let (reply, _) = h.register(&phone, "secret");
    assert_eq!(
        contact_values(&reply),
        vec!["<sip:alice@192.168.1.20:5062>;expires=3600".to_string()]
    );
    let phone = Phone {
        contact: "<sip:alice@192.168.1.21:5062>;expires=120".into(),
        call_id: "other-call-id",
        ..Phone::new("alice")
    };
    let (reply, _) = h.register(&phone, "secret");
    let contacts = contact_values(&reply);
    assert!(
        contacts.contains(&"<sip:alice@192.168.1.21:5062>;expires=120".to_string()),
        "{contacts:?}"
    );
    // No interval at all: the default.
    let phone = Phone {
        expires: None,
        call_id: "third",
        ..Phone::new("bob")
    };
    let (reply, _) = h.register(&phone, "hunter2");
    assert_eq!(
        contact_values(&reply),
        vec!["<sip:bob@192.168.1.20:5062>;expires=600".to_string()]
    );
}

#[test]
fn expires_zero_removes_the_contact_and_unregisters() {
    let mut h = Harness::new();
    let phone = Phone::new("alice");
    h.register(&phone, "secret");
    let bye = Phone {
        expires: Some("0"),
        cseq: 3,
        ..phone
    };
    let (reply, events) = h.register(&bye, "secret");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.outcome,
        RegisterOutcome::Unregistered {
            username: "alice".into()
        }
    );
    assert_eq!(events, vec![unregistered("alice")]);
    assert!(contact_values(&reply).is_empty());
    assert_eq!(h.reg.stats().bindings, 0);
    assert_eq!(h.reg.poll_timeout(), None);
}

#[test]
fn wildcard_with_expires_zero_removes_every_contact() {
    let mut h = Harness::new();
    let desk = Phone::new("alice");
    let mobile = Phone {
        contact: "<sip:alice@10.1.1.1:5060>".into(),
        call_id: "mobile-1",
        ..Phone::new("alice")
    };
    h.register(&desk, "secret");
    h.register(&mobile, "secret");
    assert_eq!(h.reg.contacts(h.now(), "alice").len(), 2);
    let bad = Phone {
        contact: "*".into(),
        expires: Some("60"),
        call_id: "wipe",
        ..Phone::new("alice")
    };
    assert_eq!(
        h.register(&bad, "secret").0.outcome,
        RegisterOutcome::Rejected {
            reason: RejectReason::BadWildcard
        }
    );
    let wipe = Phone {
        contact: "*".into(),
        expires: Some("0"),
        call_id: "wipe",
        cseq: 10,
        ..Phone::new("alice")
    };
    let (reply, events) = h.register(&wipe, "secret");
    assert_eq!(
        reply.outcome,
        RegisterOutcome::Unregistered {
            username: "alice".into()
        }
    );
    assert_eq!(events, vec![unregistered("alice")]);
    assert!(h.reg.contacts(h.now(), "alice").is_empty());
}

#[test]
fn two_contacts_are_both_kept_and_listed() {
    let mut h = Harness::new();
    let desk = Phone::new("alice");
    let soft = Phone {
        contact: "<sip:alice@10.1.1.1:5070;transport=tcp>".into(),
        call_id: "soft-1",
        ..Phone::new("alice")
    };
    let (_, first) = h.register(&desk, "secret");
    assert_eq!(first, vec![registered("alice")]);
    let (reply, second) = h.register(&soft, "secret");
    assert!(second.is_empty(), "Registered only for the first binding");
    assert_eq!(
        reply.outcome,
        RegisterOutcome::Ok {
            username: "alice".into(),
            bindings: 2,
            became_registered: false
        }
    );
    assert_eq!(contact_values(&reply).len(), 2);
    let contacts: Vec<String> = h
        .reg
        .contacts(h.now(), "alice")
        .iter()
        .map(|b| b.contact.to_string())
        .collect();
    assert_eq!(
        contacts,
        vec![
            "sip:alice@192.168.1.20:5062",
            "sip:alice@10.1.1.1:5070;transport=TCP"
        ]
    );
    assert_eq!(h.reg.stats().bindings, 2);
    assert_eq!(h.reg.stats().registered_users, 1);
}

#[test]
fn one_request_may_carry_several_contacts() {
    let mut h = Harness::new();
    let phone = Phone {
        contact: "<sip:alice@10.0.0.1>;expires=300, <sip:alice@10.0.0.2>;expires=900".into(),
        ..Phone::new("alice")
    };
    let (reply, _) = h.register(&phone, "secret");
    assert_eq!(
        contact_values(&reply),
        vec![
            "<sip:alice@10.0.0.1>;expires=300".to_string(),
            "<sip:alice@10.0.0.2>;expires=900".to_string()
        ]
    );
}

#[test]
fn expiry_unregisters_only_when_the_last_binding_goes() {
    let mut h = Harness::new();
    let short = Phone {
        expires: Some("120"),
        ..Phone::new("alice")
    };
    let long = Phone {
        contact: "<sip:alice@10.1.1.1>".into(),
        call_id: "long",
        expires: Some("600"),
        ..Phone::new("alice")
    };
    h.register(&short, "secret");
    h.advance(Duration::from_secs(10));
    h.register(&long, "secret");
    assert_eq!(h.reg.poll_timeout(), Some(h.t0 + Duration::from_secs(120)));
    assert!(h.advance(Duration::from_secs(109)).is_empty());
    assert_eq!(h.reg.contacts(h.now(), "alice").len(), 2);
    assert!(
        h.advance(Duration::from_secs(1)).is_empty(),
        "first expiry: still registered"
    );
    assert_eq!(h.reg.contacts(h.now(), "alice").len(), 1);
    assert_eq!(h.reg.poll_timeout(), Some(h.t0 + Duration::from_secs(610)));
    assert_eq!(
        h.advance(Duration::from_secs(490)),
        vec![unregistered("alice")]
    );
    assert_eq!(h.reg.poll_timeout(), None);
    assert_eq!(h.reg.stats().bindings, 0);
}

#[test]
fn refresh_with_higher_cseq_replaces_and_lower_cseq_gets_500() {
    let mut h = Harness::new();
    let phone = Phone::new("alice");
    h.register(&phone, "secret"); // CSeq 1 (challenged), 2 (accepted)
    h.advance(Duration::from_secs(1000));
    let refresh = Phone {
        cseq: 3,
        ..phone.clone()
    };
    let (reply, events) = h.register(&refresh, "secret");
    assert_eq!(
        reply.outcome,
        RegisterOutcome::Ok {
            username: "alice".into(),
            bindings: 1,
            became_registered: false
        }
    );
    assert!(events.is_empty());
    let b = h.reg.contacts(h.now(), "alice")[0].clone();
    assert_eq!(
        (b.cseq, b.expires_at),
        (4, h.now() + Duration::from_secs(3600))
    );
    // An older request of the same Call-ID (e.g. delayed in the network).
    let old = Phone { cseq: 0, ..phone };
    let (reply, _) = h.register(&old, "secret");
    assert_eq!(reply.status, StatusCode::ServerInternalError);
    assert_eq!(
        reply.outcome,
        RegisterOutcome::Rejected {
            reason: RejectReason::OutOfOrder
        }
    );
    assert_eq!(h.reg.contacts(h.now(), "alice")[0].cseq, 4);
}

#[test]
fn register_without_contact_lists_the_bindings() {
    let mut h = Harness::new();
    h.register(&Phone::new("alice"), "secret");
    let query = Phone::new("alice").text(None).replace(
        "Contact: <sip:alice@192.168.1.20:5062;transport=udp>\r\n",
        "",
    );
    let (challenge, _) = h.send(&query);
    let auth = Phone::new("alice").answer(&challenge, "secret", 1);
    let query = query.replace("CSeq: 1 ", "CSeq: 5 ").replace(
        "Content-Length",
        &format!("Authorization: {auth}\r\nContent-Length"),
    );
    let (reply, events) = h.send(&query);
    assert_eq!(reply.status, StatusCode::OK);
    assert!(events.is_empty());
    assert_eq!(
        contact_values(&reply),
        vec!["<sip:alice@192.168.1.20:5062>;expires=3600".to_string()]
    );
}

#[test]
fn bindings_per_user_are_bounded_by_dropping_the_soonest_to_expire() {
    let mut h = Harness::with(RegistrarConfig {
        max_bindings_per_user: 2,
        ..RegistrarConfig::default()
    });
    for (i, call_id) in ["c1", "c2", "c3"].into_iter().enumerate() {
        let phone = Phone {
            contact: format!("<sip:alice@10.0.0.{i}>"),
            call_id,
            ..Phone::new("alice")
        };
        h.register(&phone, "secret");
        h.advance(Duration::from_secs(1));
    }
    let contacts: Vec<String> = h
        .reg
        .contacts(h.now(), "alice")
        .iter()
        .map(|b| b.contact.to_string())
        .collect();
    assert_eq!(contacts, vec!["sip:alice@10.0.0.1", "sip:alice@10.0.0.2"]);
}

#[test]
fn remove_user_unregisters() {
    let mut h = Harness::new();
    h.register(&Phone::new("alice"), "secret");
    assert_eq!(h.reg.remove_user("alice"), vec![unregistered("alice")]);
    assert!(h.reg.remove_user("alice").is_empty());
    assert_eq!(h.reg.stats().bindings, 0);
}

#[test]
fn malformed_requests_get_400_or_405() {
    let mut h = Harness::new();
    let no_user = Phone::new("alice").text(None).replace(
        "To: \"Operator\" <sip:alice@centralino.local>",
        "To: <sip:centralino.local>",
    );
    assert_eq!(
        h.send(&no_user).0.outcome,
        RegisterOutcome::Rejected {
            reason: RejectReason::BadHeaders
        }
    );
    let garbage_auth = Phone::new("alice").text(Some("Digest username=\"alice, realm=oops"));
    assert_eq!(h.send(&garbage_auth).0.status, StatusCode::BadRequest);
    let options = Phone::new("alice")
        .text(None)
        .replace("REGISTER sip:", "OPTIONS sip:")
        .replace("1 REGISTER", "1 OPTIONS");
    assert_eq!(h.send(&options).0.status, StatusCode::MethodNotAllowed);
    // An algorithm we cannot check is answered with our challenge, not an error.
    let auth = "Digest username=\"alice\", realm=\"centralino.local\", nonce=\"n\", uri=\"sip:centralino.local\", response=\"00\", algorithm=SHA-512-256";
    assert_eq!(
        h.send(&Phone::new("alice").text(Some(auth))).0.status,
        StatusCode::Unauthorized
    );
}

/// SIPp 3.6's operator_register.xml (/work/shared/interop/sipp/operator_register.xml), with
/// the `[authentication]` header as SIPp 3.6.1 writes it (captured): no spaces, `qop=auth`
/// unquoted, `algorithm=MD5` last, Request-URI and digest uri `sip:<ip>:<port>`.
#[test]
fn sipp_operator_register_flow() {
    let mut h = Harness::new();
    let sipp = |cseq: u32, auth: Option<&str>, expires: u32| {
        format!(
            "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5170;branch=z9hG4bK-4242-{cseq}-0\r\n\
             From: <sip:op1@127.0.0.1>;tag=4242SIPpReg1\r\n\
             To: <sip:op1@127.0.0.1>\r\n\
             Call-ID: 1-4242@127.0.0.1\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:op1@127.0.0.1:5170;transport=UDP>\r\n\
             {auth}\
             Expires: {expires}\r\n\
             Max-Forwards: 70\r\n\
             User-Agent: sipp-operator\r\n\
             Content-Length: 0\r\n\r\n",
            auth = auth.map(|a| format!("{a}\r\n")).unwrap_or_default()
        )
    };
    let sipp_auth = |nonce: &str| {
        let ha1 = hex::encode(Md5::digest(b"op1:centralino.local:op1pass"));
        let ha2 = hex::encode(Md5::digest(b"REGISTER:sip:127.0.0.1:5060"));
        let resp = hex::encode(Md5::digest(
            format!("{ha1}:{nonce}:00000001:6b8b4567:auth:{ha2}").as_bytes(),
        ));
        format!(
            "Authorization: Digest username=\"op1\",realm=\"centralino.local\",cnonce=\"6b8b4567\",nc=00000001,qop=auth,uri=\"sip:127.0.0.1:5060\",nonce=\"{nonce}\",response=\"{resp}\",algorithm=MD5"
        )
    };
    let lookup = |user: &str| {
        (user == "op1").then(|| Credentials::from_password("op1", "centralino.local", "op1pass"))
    };
    let send = |h: &mut Harness, text: String| {
        let req = Request::try_from(text.as_str()).unwrap();
        h.reg.handle_register(
            h.now(),
            h.w0 + h.elapsed,
            "127.0.0.1:5170".parse().unwrap(),
            &req,
            lookup,
        )
    };
    let (challenge, _) = send(&mut h, sipp(1, None, 120));
    let (ok, events) = send(
        &mut h,
        sipp(2, Some(&sipp_auth(&nonce_of(&challenge))), 120),
    );
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(events, vec![registered("op1")]);
    // SIPp's Contact keeps transport=UDP? rsipstack drops `transport=udp` from Contact URIs.
    assert_eq!(
        contact_values(&ok),
        vec!["<sip:op1@127.0.0.1:5170>;expires=120".to_string()]
    );
    // Refresh: a new challenge on the same Call-ID, CSeq + 1 each time.
    let (challenge, _) = send(&mut h, sipp(3, None, 120));
    let (ok, events) = send(
        &mut h,
        sipp(4, Some(&sipp_auth(&nonce_of(&challenge))), 120),
    );
    assert_eq!((ok.status, events.len()), (StatusCode::OK, 0));
    // Un-REGISTER (Expires: 0).
    let (challenge, _) = send(&mut h, sipp(5, None, 0));
    let (bye, events) = send(&mut h, sipp(6, Some(&sipp_auth(&nonce_of(&challenge))), 0));
    assert_eq!(
        bye.outcome,
        RegisterOutcome::Unregistered {
            username: "op1".into()
        }
    );
    assert_eq!(events, vec![unregistered("op1")]);
}

/// baresip 1.0.0 (libre 1.1.0), as captured: Contact user differs from the AOR, the interval is
/// a Contact parameter, no Expires header, and the Authorization carries no `algorithm`.
#[test]
fn baresip_flow() {
    let mut h = Harness::new();
    let baresip = |cseq: u32, auth: Option<&str>, expires: u32| {
        format!(
            "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5171;branch=z9hG4bK2e8ae459c11c{cseq:04};rport\r\n\
             Contact: <sip:alice-0x56146af7b510@127.0.0.1:5171>;expires={expires}\r\n\
             Max-Forwards: 70\r\n\
             {auth}\
             To: <sip:alice@127.0.0.1:5060>\r\n\
             From: <sip:alice@127.0.0.1:5060>;tag=71400de2f2f8104c\r\n\
             Call-ID: 2dfebb23ff63d435\r\n\
             CSeq: {cseq} REGISTER\r\n\
             User-Agent: baresip v1.0.0 (x86_64/linux)\r\n\
             Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,REFER\r\n\
             Content-Length: 0\r\n\r\n",
            auth = auth.map(|a| format!("{a}\r\n")).unwrap_or_default()
        )
    };
    let baresip_auth = |nonce: &str| {
        let ha1 = hex::encode(Md5::digest(b"alice:centralino.local:secret"));
        let ha2 = hex::encode(Md5::digest(b"REGISTER:sip:127.0.0.1:5060"));
        let cnonce = "3de3a0dc32f201e4";
        let resp = hex::encode(Md5::digest(
            format!("{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}").as_bytes(),
        ));
        format!(
            "Authorization: Digest username=\"alice\", realm=\"centralino.local\", nonce=\"{nonce}\", uri=\"sip:127.0.0.1:5060\", response=\"{resp}\", cnonce=\"{cnonce}\", qop=auth, nc=00000001"
        )
    };
    let (challenge, _) = h.send_from("127.0.0.1:5171", &baresip(53655, None, 60));
    let (ok, events) = h.send_from(
        "127.0.0.1:5171",
        &baresip(53656, Some(&baresip_auth(&nonce_of(&challenge))), 60),
    );
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(events, vec![registered("alice")]);
    assert_eq!(
        contact_values(&ok),
        vec!["<sip:alice-0x56146af7b510@127.0.0.1:5171>;expires=60".to_string()]
    );
    let (challenge, _) = h.send_from("127.0.0.1:5171", &baresip(53657, None, 0));
    let (bye, events) = h.send_from(
        "127.0.0.1:5171",
        &baresip(53658, Some(&baresip_auth(&nonce_of(&challenge))), 0),
    );
    assert_eq!(
        bye.outcome,
        RegisterOutcome::Unregistered {
            username: "alice".into()
        }
    );
    assert_eq!(events, vec![unregistered("alice")]);
}

#[derive(Clone, Debug)]
enum Step {
    Register {
        user: usize,
        contact: usize,
        expires: u64,
    },
    Advance(u64),
    Remove(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..2usize, 0..3usize, prop_oneof![Just(0u64), 60..4000u64]).prop_map(
            |(user, contact, expires)| Step::Register {
                user,
                contact,
                expires
            }
        ),
        (1..900u64).prop_map(Step::Advance),
        (0..2usize).prop_map(Step::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever happens, Registered and Unregistered alternate per user, starting with
    /// Registered, and match whether the user has bindings; the gauges match the bindings.
    #[test]
    fn events_alternate_and_match_bindings(steps in proptest::collection::vec(step(), 1..40)) {
        let users = ["alice", "bob"];
        let passwords = ["secret", "hunter2"];
        let mut h = Harness::new();
        let mut up = [false, false];
        let mut cseq = 10;
        for s in steps {
            let events = match s {
                Step::Register { user, contact, expires } => {
                    cseq += 2;
                    let phone = Phone {
                        contact: format!("<sip:{}@10.0.0.{contact}>;expires={expires}", users[user]),
                        cseq,
                        ..Phone::new(users[user])
                    };
                    let (reply, events) = h.register(&phone, passwords[user]);
                    prop_assert_eq!(reply.status, StatusCode::OK);
                    events
                }
                Step::Advance(secs) => h.advance(Duration::from_secs(secs)),
                Step::Remove(user) => h.reg.remove_user(users[user]),
            };
            for e in events {
                let (name, now_up) = match &e {
                    RegistrarEvent::Registered { username } => (username.clone(), true),
                    RegistrarEvent::Unregistered { username } => (username.clone(), false),
                    other => return Err(TestCaseError::fail(format!("only right passwords here: {other:?}"))),
                };
                let i = users.iter().position(|u| *u == name).unwrap();
                prop_assert_ne!(up[i], now_up, "{:?} twice", e);
                up[i] = now_up;
            }
            for (i, user) in users.iter().enumerate() {
                prop_assert_eq!(up[i], h.reg.is_registered(h.now(), user));
            }
            let total: usize = users.iter().map(|u| h.reg.contacts(h.now(), u).len()).sum();
            prop_assert_eq!(h.reg.stats().bindings, total as u64);
        }
    }
}
