//! Media facing a hostile network: the attacks that worked against an edge on 127.0.0.0/8,
//! replayed against the service in-process. Attackers send from other loopback addresses
//! (127.0.0.2, .3, …: Linux routes all of 127/8 to lo), callers and operators are raw SIP
//! (tests/common/uac.rs).
//!
//! - RFC 4733 key presses from another address, aimed at the call's port or sprayed over the
//!   whole range, do not steer the IVR; audio injected from there does not reach the operator;
//! - an attacker's RTP that reaches a fresh call's port before the caller's gets nothing
//!   back, and the caller hears the prompts;
//! - an SDP naming a third party gets no media (no reflection);
//! - datagrams that are not the peer's RTP do not keep a dead call, or its port, alive;
//! - a caller behind NAT (SDP naming a private address) is latched once, to its own IP.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use centralino::engine::call::Outcome;
use common::uac::{Message, Uac};
use common::{TestOptions, TestService};
use tokio::net::UdpSocket;

const SECS: Duration = Duration::from_secs(5);

fn te(pt: u8) -> String {
    format!("a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n")
}

async fn bind(ip: &str) -> UdpSocket {
    UdpSocket::bind(format!("{ip}:0")).await.unwrap()
}

/// One RFC 4733 key press as the attacks sent it: start, continuations, three end packets.
fn key_press(digit: u8, pt: u8, timestamp: u32) -> Vec<Vec<u8>> {
    (0..8u16)
        .map(|i| {
            let end = i >= 5;
            let mut pkt = vec![0x80, pt | if i == 0 { 0x80 } else { 0 }];
            pkt.extend_from_slice(&(500 + i).to_be_bytes());
            pkt.extend_from_slice(&timestamp.to_be_bytes());
            pkt.extend_from_slice(&0xBAD0_0BADu32.to_be_bytes());
            pkt.extend_from_slice(&[digit, if end { 0x80 | 10 } else { 10 }]);
            pkt.extend_from_slice(&(160 * (i.min(5) + 1)).to_be_bytes());
            pkt
        })
        .collect()
}

/// One 20 ms PCMU frame whose every byte is `fill`.
fn pcmu(fill: u8, seq: u16) -> Vec<u8> {
    let mut pkt = vec![0x80, 0];
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    pkt.extend_from_slice(&0x0000_0A11u32.to_be_bytes());
    pkt.extend_from_slice(&[fill; 160]);
    pkt
}

/// The even ports of the service's RTP range (what a blind spray covers).
fn rtp_ports(svc: &TestService) -> Vec<u16> {
    svc.config.rtp_ports().filter(|p| p % 2 == 0).collect()
}

/// Polls the metrics until `name` reaches `at_least` (no event reaches a test from
/// outside the process: the exposition is what there is).
async fn metric_reaches(svc: &TestService, name: &str, at_least: f64) -> f64 {
    let mut value = 0.0;
    for _ in 0..250 {
        value = common::metric(&svc.http_get("/metrics").await, name);
        if value >= at_least {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{name} stayed at {value}, expected at least {at_least}");
}

/// Polls the live-calls API until some call is in `stage`.
async fn wait_for_stage(svc: &TestService, stage: &str) -> String {
    let needle = format!("\"stage\":\"{stage}\"");
    for _ in 0..250 {
        let calls = svc.http_get("/api/v1/calls").await;
        if calls.contains(&needle) {
            return calls;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no call reached stage {stage}: {}", svc.http_get("/api/v1/calls").await);
}

const FOREIGN: &str = "centralino_rtp_rejected_total{reason=\"foreign_source\"}";

/// Attack (a): eight packets of key 2 from 127.0.0.2, at the call's port and sprayed over
/// the range, while the caller is in the main menu. They are dropped and counted; the
/// caller's own key 5 is the one the IVR takes.
#[tokio::test]
async fn key_presses_from_another_address_do_not_steer_the_ivr() {
    let mut svc = TestService::start(TestOptions { rtp_slot: 50, ..Default::default() }).await;
    let mut uac = Uac::udp(svc.udp()).await;
    let offer = uac.sdp_offer("0 101", &te(101));
    assert_eq!(uac.call(&offer).await.status(), Some(200));
    let port = uac.remote_rtp.expect("an SDP answer");
    assert!(uac.count_rtp(Duration::from_millis(300)).await >= 8, "the welcome prompt flows");

    let attacker = bind("127.0.0.2").await;
    let mut sent = 0;
    for packet in key_press(2, 101, 7777) {
        attacker.send_to(&packet, port).await.unwrap();
        sent += 1;
    }
    // A blind spray: the same press at every port of the range (the call's among them).
    for p in rtp_ports(&svc) {
        for packet in key_press(2, 101, 8888) {
            attacker.send_to(&packet, SocketAddr::new(port.ip(), p)).await.unwrap();
        }
    }
    sent += 8;
    let dropped = metric_reaches(&svc, FOREIGN, f64::from(sent)).await;
    assert_eq!(dropped, f64::from(sent), "exactly the attacker's packets at the call's port");
    let calls = svc.http_get("/api/v1/calls").await;
    assert!(calls.contains("\"stage\":\"ivr\""), "still in the menu: {calls}");

    // The caller's own key: 5, social services.
    uac.send_dtmf(5, 101).await;
    let calls = wait_for_stage(&svc, "queued").await;
    assert!(calls.contains("\"queue\":\"servizi_persona\""), "{calls}");
    uac.hang_up().await;
    let record = svc.next_record(SECS).await;
    assert_eq!(record.ivr_path, vec!["principale:5".to_string()], "the attacker's 2 never counted");
    let metrics = svc.http_get("/metrics").await;
    assert_eq!(common::metric(&metrics, "centralino_dtmf_digits_total{method=\"rfc4733\"}"), 1.0);
    svc.assert_ports_returned().await;
    svc.service.shutdown().await;
}

/// Attack (b): the attacker's valid RTP reaches the fresh call's port before the caller
/// sends anything. It gets nothing back; the caller hears the prompts, and then its own
/// RTP changes nothing either.
#[tokio::test]
async fn rtp_racing_the_caller_to_a_fresh_port_takes_nothing() {
    let svc = TestService::start(TestOptions { rtp_slot: 51, ..Default::default() }).await;
    let mut uac = Uac::udp(svc.udp()).await;
    let offer = uac.sdp_offer("0 101", &te(101));
    // The race is won by the attacker: it knows the port the moment the 200 leaves (here,
    // from the answer; in the attack, from spraying).
    assert_eq!(uac.call(&offer).await.status(), Some(200));
    let port = uac.remote_rtp.expect("an SDP answer");
    let attacker = bind("127.0.0.3").await;
    for seq in 0..10 {
        attacker.send_to(&pcmu(0x77, seq), port).await.unwrap();
    }
    metric_reaches(&svc, FOREIGN, 10.0).await;
    let caller_heard = uac.count_rtp(Duration::from_millis(1000)).await;
    let mut buf = [0u8; 512];
    let stolen = tokio::time::timeout(Duration::from_millis(10), attacker.recv_from(&mut buf)).await;
    assert!(stolen.is_err(), "the attacker received the call's audio");
    assert!(caller_heard >= 25, "the caller hears the prompt: {caller_heard} packets in 1 s");
    // Now the caller's phone starts sending: nothing moves.
    for seq in 0..5 {
        uac.rtp.send_to(&pcmu(0xFF, seq), port).await.unwrap();
    }
    assert!(uac.count_rtp(Duration::from_millis(300)).await >= 8);
    assert!(tokio::time::timeout(Duration::from_millis(10), attacker.recv_from(&mut buf)).await.is_err());
    svc.service.shutdown().await;
}

/// Attack (c): an SDP naming a third party (127.0.0.9) while signalling from 127.0.0.1.
/// Nothing is streamed there, while a control call whose SDP is its own address hears the
/// prompt in the same two seconds.
#[tokio::test]
async fn an_sdp_naming_a_third_party_gets_no_media() {
    let svc = TestService::start(TestOptions { rtp_slot: 52, ..Default::default() }).await;
    let mut reflector = Uac::udp(svc.udp()).await;
    reflector.rtp = bind("127.0.0.9").await; // the victim listens here
    let offer = reflector.sdp_offer("0 101", &te(101)).replace("c=IN IP4 127.0.0.1", "c=IN IP4 127.0.0.9");
    assert_eq!(reflector.call(&offer).await.status(), Some(200));
    let mut control = Uac::udp(svc.udp()).await;
    let offer = control.sdp_offer("0 101", &te(101));
    assert_eq!(control.call(&offer).await.status(), Some(200));
    let window = Duration::from_secs(2);
    let (victim, heard) = tokio::join!(reflector.count_rtp(window), control.count_rtp(window));
    assert_eq!(victim, 0, "centralino streamed the prompt at a third party");
    assert!(heard >= 50, "the control call hears the prompt: {heard} packets in 2 s");
    svc.service.shutdown().await;
}

/// Attack (d): a "caller" that sends one byte every 0.5 s from its own address (and an
/// attacker's valid RTP from elsewhere) does not keep the call alive past `rtp_timeout`:
/// it is ended and its port returned, while a caller sending real RTP, started first, is
/// still up.
#[tokio::test]
async fn bytes_that_are_not_rtp_do_not_keep_a_call_alive() {
    let opts = TestOptions {
        rtp_slot: 53,
        extra_env: vec![("CENTRALINO_MEDIA__RTP_TIMEOUT_SECS".into(), "2".into())],
        ..Default::default()
    };
    let mut svc = TestService::start(opts).await;
    let mut alive = Uac::udp(svc.udp()).await;
    alive.from_user = "3330000001".into();
    let offer = alive.sdp_offer("0 101", &te(101));
    assert_eq!(alive.call(&offer).await.status(), Some(200));
    let mut squatter = Uac::udp(svc.udp()).await;
    squatter.from_user = "3330000002".into();
    let offer = squatter.sdp_offer("0 101", &te(101));
    assert_eq!(squatter.call(&offer).await.status(), Some(200));

    // Every 0.5 s: the squatter's byte from its own SDP address, an attacker's valid RTP at
    // the squatter's port; every 0.25 s the live caller's real RTP.
    let (squatter_port, alive_port) = (squatter.remote_rtp.unwrap(), alive.remote_rtp.unwrap());
    let squatter_rtp = std::mem::replace(&mut squatter.rtp, bind("127.0.0.1").await);
    let alive_rtp = std::mem::replace(&mut alive.rtp, bind("127.0.0.1").await);
    let attacker = bind("127.0.0.4").await;
    let noise = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        for seq in 0u16.. {
            tick.tick().await;
            let _ = alive_rtp.send_to(&pcmu(0xFF, seq), alive_port).await;
            if seq % 2 == 0 {
                let _ = squatter_rtp.send_to(&[0], squatter_port).await;
                let _ = attacker.send_to(&pcmu(0x77, seq), squatter_port).await;
            }
        }
    });

    let ended = svc.next_record(Duration::from_secs(10)).await;
    assert_eq!(ended.caller, "3330000002", "the one that sent no RTP ends first");
    let bye: Message = squatter.expect(SECS, |m| m.method() == Some("BYE")).await;
    squatter.answer_ok(&bye).await;
    let calls = svc.http_get("/api/v1/calls").await;
    assert!(calls.contains("3330000001"), "the caller sending RTP is still up: {calls}");
    noise.abort();
    alive.hang_up().await;
    svc.next_record(SECS).await;
    svc.assert_ports_returned().await;
    svc.service.shutdown().await;
}

/// NAT: the SDP names a private address (10.0.0.99), the phone's RTP comes from its
/// signalling IP on another port. Nothing is sent before it arrives; then media goes where
/// it came from, its key presses count, and a second source port on the same IP is not
/// taken (one latch, never again).
#[tokio::test]
async fn a_caller_behind_nat_is_latched_once() {
    let mut svc = TestService::start(TestOptions { rtp_slot: 54, ..Default::default() }).await;
    let mut uac = Uac::udp(svc.udp()).await;
    let offer = uac.sdp_offer("0 101", &te(101)).replace("c=IN IP4 127.0.0.1", "c=IN IP4 10.0.0.99");
    assert_eq!(uac.call(&offer).await.status(), Some(200));
    let port = uac.remote_rtp.expect("an SDP answer");
    assert_eq!(uac.count_rtp(Duration::from_millis(300)).await, 0, "nothing to the SDP's own port");
    // The NAT's mapping: a new source port on the signalling IP.
    let mapped = bind("127.0.0.1").await;
    mapped.send_to(&pcmu(0xFF, 1), port).await.unwrap();
    let mut buf = [0u8; 512];
    let (_, from) = tokio::time::timeout(SECS, mapped.recv_from(&mut buf)).await.expect("the prompt follows the latch").unwrap();
    assert_eq!(from, port);
    // Another port on the same IP, later: not the call's.
    let second = bind("127.0.0.1").await;
    for packet in key_press(2, 101, 9999) {
        second.send_to(&packet, port).await.unwrap();
    }
    metric_reaches(&svc, FOREIGN, 8.0).await;
    assert!(svc.http_get("/api/v1/calls").await.contains("\"stage\":\"ivr\""));
    // The latched source's key press counts.
    uac.rtp = mapped;
    uac.send_dtmf(5, 101).await;
    let calls = wait_for_stage(&svc, "queued").await;
    assert!(calls.contains("\"queue\":\"servizi_persona\""), "{calls}");
    uac.hang_up().await;
    let record = svc.next_record(SECS).await;
    assert_eq!(record.ivr_path, vec!["principale:5".to_string()]);
    assert_eq!(record.outcome, Outcome::Abandoned);
    svc.service.shutdown().await;
}

/// Attack (a), bridged: audio and key presses injected at either leg's port from another
/// address never reach the other side; each side hears only the other's own RTP.
#[tokio::test]
async fn injected_audio_reaches_neither_the_operator_nor_the_caller() {
    let opts = TestOptions { rtp_slot: 55, ..Default::default() };
    let (config, data) = TestService::prepare(&opts);
    common::add_operators(&config, &[("op1", "s1", &[("tributi", 1)])]).await;
    let mut svc = TestService::start_with(config, data).await;
    let mut phone = register_operator(&svc, "op1", "s1").await;

    let mut uac = Uac::udp(svc.udp()).await;
    let offer = uac.sdp_offer("0 101", &te(101));
    assert_eq!(uac.call(&offer).await.status(), Some(200));
    let caller_leg = uac.remote_rtp.expect("an SDP answer");
    uac.send_dtmf(2, 101).await; // tributi, op1's queue
    let operator_leg = answer_offer(&mut phone).await;
    wait_for_stage(&svc, "connected").await;

    let attacker = bind("127.0.0.2").await;
    for seq in 0..10 {
        attacker.send_to(&pcmu(0x77, seq), caller_leg).await.unwrap();
        attacker.send_to(&pcmu(0x66, seq), operator_leg).await.unwrap();
    }
    for packet in key_press(2, 101, 4242) {
        attacker.send_to(&packet, caller_leg).await.unwrap();
        attacker.send_to(&packet, operator_leg).await.unwrap();
    }
    // Each side's own frames, sent after the attacker's: they arrive after those were handled.
    for seq in 0..5 {
        uac.rtp.send_to(&pcmu(0x11, seq), caller_leg).await.unwrap();
        phone.rtp.send_to(&pcmu(0x22, seq), operator_leg).await.unwrap();
    }
    let at_operator = frames_until(&phone.rtp, 0x11, 5).await;
    assert!(!at_operator.contains(&Some(0x77)), "injected audio reached the operator: {at_operator:x?}");
    assert!(at_operator.iter().all(|f| f.is_some()), "a key press passed through to the operator: {at_operator:x?}");
    let at_caller = frames_until(&uac.rtp, 0x22, 5).await;
    assert!(!at_caller.contains(&Some(0x66)), "injected audio reached the caller: {at_caller:x?}");
    assert!(common::metric(&svc.http_get("/metrics").await, FOREIGN) >= 36.0);

    uac.hang_up().await;
    let record = svc.next_record(SECS).await;
    assert_eq!(record.outcome, Outcome::Answered);
    svc.assert_ports_returned().await;
    svc.service.shutdown().await;
}

/// Reads RTP from `socket` until `n` PCMU frames filled with `wanted` arrived (5 s at most).
/// Returns what each packet was: `Some(fill)` for a PCMU frame of one repeated byte,
/// `Some(0)` for other audio (prompts, music), `None` for any other payload type.
async fn frames_until(socket: &UdpSocket, wanted: u8, n: usize) -> Vec<Option<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 2048];
    while seen.iter().filter(|&&f| f == Some(wanted)).count() < n {
        let received = tokio::time::timeout(SECS, socket.recv_from(&mut buf)).await;
        let (len, _) = received.unwrap_or_else(|_| panic!("{n} frames of {wanted:#x} did not arrive: {seen:x?}")).unwrap();
        let packet = &buf[..len];
        let (pt, payload) = (packet[1] & 0x7F, &packet[12..]);
        seen.push(match pt {
            0 if payload.iter().all(|&b| b == payload[0]) => Some(payload[0]),
            0 => Some(0),
            _ => None,
        });
    }
    seen
}

/// Registers `user` by raw SIP from 127.0.0.1, answering the digest challenge.
async fn register_operator(svc: &TestService, user: &str, password: &str) -> Uac {
    use centralino::sip::digest::{expected_response, ha1, DigestAlgorithm, QopAuth};
    let mut phone = Uac::udp(svc.udp()).await;
    phone.from_user = user.into();
    phone.to_user = user.into();
    let register = phone.request("REGISTER", "reg1", "Expires: 600\r\n", "", "");
    phone.send_raw(&register).await;
    let challenge = phone.expect(SECS, |m| m.status().is_some()).await;
    assert_eq!(challenge.status(), Some(401), "{challenge:?}");
    let www = challenge.header("WWW-Authenticate").expect("a challenge");
    let param = |name: &str| {
        let rest = www.split(&format!("{name}=\"")).nth(1).expect("challenge parameter");
        rest.split('"').next().unwrap().to_string()
    };
    let (realm, nonce) = (param("realm"), param("nonce"));
    let uri = format!("sip:{user}@{}", svc.udp());
    let qop = QopAuth { nc: "00000001", cnonce: "c0ffee" };
    let stored = ha1(DigestAlgorithm::Md5, user, &realm, password);
    let response = expected_response(DigestAlgorithm::Md5, &stored, "REGISTER", &uri, &nonce, Some(qop));
    let auth = format!(
        "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\nExpires: 600\r\n"
    );
    phone.cseq += 1;
    let register = phone.request("REGISTER", "reg2", &auth, "", "");
    phone.send_raw(&register).await;
    let ok = phone.expect(SECS, |m| m.status().is_some()).await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    common::wait_registered(svc, 1).await;
    phone
}

/// Waits for centralino's INVITE and answers it with 200 and an SDP naming the phone's RTP
/// socket; returns the operator leg's RTP address (from the offer).
async fn answer_offer(phone: &mut Uac) -> SocketAddr {
    let invite = phone.expect(Duration::from_secs(10), |m| m.method() == Some("INVITE")).await;
    let leg = common::uac::sdp_audio_addr(&invite.body).expect("an SDP offer");
    let port = phone.rtp.local_addr().unwrap().port();
    let sdp = format!(
        "v=0\r\no=op 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    );
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for (name, value) in &invite.headers {
        match name.to_ascii_lowercase().as_str() {
            "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" => ok.push_str(&format!("{name}: {value}\r\n")),
            "to" | "t" => ok.push_str(&format!("{name}: {value};tag=op1phone\r\n")),
            _ => {}
        }
    }
    ok.push_str(&format!(
        "Contact: <sip:op1@{}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        phone.local,
        sdp.len()
    ));
    phone.send_raw(&ok).await;
    phone.expect(SECS, |m| m.method() == Some("ACK")).await;
    leg
}
