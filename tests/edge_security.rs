//! The SIP edge against an attacker on another address (all on 127.0.0.0/8): in-dialog
//! requests forged with a live call's Call-ID and tags, a source over its call limits, and a
//! scanner's User-Agent. The service runs in-process; the phones are raw SIP
//! (tests/common/uac.rs) bound to their own loopback addresses.

mod common;

use std::time::Duration;

use centralino::engine::call::Outcome;
use common::uac::{Message, Uac};
use common::{TestOptions, TestService};

const SECS: Duration = Duration::from_secs(5);

fn te(pt: u8) -> String {
    format!("a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n")
}

fn is_response_to(method: &'static str) -> impl Fn(&Message) -> bool {
    move |m| m.status().is_some() && m.header("CSeq").is_some_and(|c| c.ends_with(method))
}

/// The attacker knows everything on the wire (Call-ID, tags, CSeq) but sends from 127.0.0.3:
/// its BYE, INFO and re-INVITE get 403 and change nothing; the caller then steers its own
/// call and hangs up normally.
#[tokio::test]
async fn in_dialog_requests_from_another_address_are_refused_and_the_call_goes_on() {
    let mut svc = TestService::start(TestOptions { rtp_slot: 21, ..Default::default() }).await;
    let mut caller = Uac::udp(svc.udp()).await;
    let offer = caller.sdp_offer("0 101", &te(101));
    assert_eq!(caller.call(&offer).await.status(), Some(200));

    let mut attacker = Uac::udp_from("127.0.0.3", svc.udp()).await;
    attacker.call_id = caller.call_id.clone();
    attacker.from_tag = caller.from_tag.clone();
    attacker.to_tag = caller.to_tag.clone();
    attacker.cseq = caller.cseq + 1_000_000;
    let info = attacker.request("INFO", "evil1", "", "Signal=2\r\nDuration=160\r\n", "application/dtmf-relay");
    attacker.send_raw(&info).await;
    assert_eq!(attacker.expect(SECS, is_response_to("INFO")).await.status(), Some(403));
    attacker.cseq += 1;
    let reinvite = attacker.request("INVITE", "evil2", "", &attacker.sdp_offer("0", ""), "application/sdp");
    attacker.send_raw(&reinvite).await;
    assert_eq!(attacker.expect(SECS, is_response_to("INVITE")).await.status(), Some(403));
    attacker.cseq += 1;
    let bye = attacker.request("BYE", "evil3", "", "", "");
    attacker.send_raw(&bye).await;
    assert_eq!(attacker.expect(SECS, is_response_to("BYE")).await.status(), Some(403));

    // Still in the main menu, still getting its prompts (the media did not move).
    let calls = svc.http_get("/api/v1/calls").await;
    assert!(calls.contains("\"stage\":\"ivr\""), "the forged INFO did not steer the call: {calls}");
    assert!(caller.count_rtp(Duration::from_millis(400)).await > 5, "the caller still hears the prompts");

    // The caller's own requests work, with CSeqs below the attacker's.
    caller.cseq += 1;
    let info = caller.request("INFO", "own1", "", "Signal=2\r\nDuration=160\r\n", "application/dtmf-relay");
    caller.send_raw(&info).await;
    assert_eq!(caller.expect(SECS, is_response_to("INFO")).await.status(), Some(200));
    let mut queued = String::new();
    for _ in 0..50 {
        queued = svc.http_get("/api/v1/calls").await;
        if queued.contains("\"stage\":\"queued\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(queued.contains("\"queue\":\"tributi\""), "{queued}");
    assert_eq!(caller.hang_up().await.status(), Some(200));
    let record = svc.next_record(SECS).await;
    assert_eq!(record.outcome, Outcome::Abandoned, "the caller's own BYE ended it, in the queue");

    let metrics = svc.http_get("/metrics").await;
    let foreign = common::metric(&metrics, "centralino_sip_rejected_total{reason=\"foreign_in_dialog\"}");
    assert_eq!(foreign, 3.0, "the three forged requests are counted");
    svc.service.shutdown().await;
}

/// An unknown source may hold `unknown_max_calls` calls; the next INVITEs get 503 with
/// Retry-After; after `ban_after_refusals` refusals it is banned and gets no answer at all.
/// A caller from another address is served throughout.
#[tokio::test]
async fn a_source_over_its_limits_gets_503_then_a_ban_and_others_are_served() {
    let limits = [
        ("CENTRALINO_LIMITS__UNKNOWN_MAX_CALLS", "2"),
        ("CENTRALINO_LIMITS__BAN_AFTER_REFUSALS", "4"),
        ("CENTRALINO_LIMITS__RETRY_AFTER_SECS", "17"),
    ];
    let extra_env = limits.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let svc = TestService::start(TestOptions { rtp_slot: 22, extra_env, ..Default::default() }).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut uac = Uac::udp_from("127.0.0.2", svc.udp()).await;
        let offer = uac.sdp_offer("0", "");
        assert_eq!(uac.call(&offer).await.status(), Some(200));
        held.push(uac);
    }
    for i in 0..4 {
        let mut uac = Uac::udp_from("127.0.0.2", svc.udp()).await;
        let offer = uac.sdp_offer("0", "");
        let resp = uac.call(&offer).await;
        assert_eq!(resp.status(), Some(503), "refusal {i}: {resp:?}");
        assert_eq!(resp.header("Retry-After"), Some("17"));
    }
    // Banned now: silence, even for OPTIONS.
    let mut banned = Uac::udp_from("127.0.0.2", svc.udp()).await;
    let options = banned.request("OPTIONS", "o1", "", "", "");
    banned.send_raw(&options).await;
    assert!(banned.recv(Duration::from_millis(500)).await.is_none(), "a banned source gets no answer");

    let mut other = Uac::udp_from("127.0.0.3", svc.udp()).await;
    let offer = other.sdp_offer("0", "");
    assert_eq!(other.call(&offer).await.status(), Some(200), "another address is served");

    let metrics = svc.http_get("/metrics").await;
    assert_eq!(common::metric(&metrics, "centralino_sip_bans_total{reason=\"call_flood\"}"), 1.0);
    assert_eq!(common::metric(&metrics, "centralino_sip_bans_active"), 1.0);
    assert_eq!(common::metric(&metrics, "centralino_sip_rejected_total{reason=\"source_calls\"}"), 4.0);
    assert!(common::metric(&metrics, "centralino_sip_rejected_total{reason=\"banned\"}") >= 1.0);
    let bans = svc.service.bans();
    assert_eq!(bans.len(), 1);
    assert_eq!((bans[0].source.as_str(), bans[0].reason.as_str()), ("127.0.0.2", "call_flood"));

    // The API lists the ban, and an administrator lifts it: the address is answered again.
    let listed = svc.http_get("/api/v1/bans").await;
    assert!(listed.contains("\"source\":\"127.0.0.2\"") && listed.contains("\"reason\":\"call_flood\""), "{listed}");
    let addr = svc.service.http;
    let auth = format!("Bearer {}", svc.service.admin_token);
    let host = addr.to_string();
    let headers = [("Host", host.as_str()), ("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let lifted = common::http_request(addr, "DELETE", "/api/v1/bans/127.0.0.2", &headers, "").await;
    assert_eq!(lifted.status, 200, "{}", lifted.body);
    let again = common::http_request(addr, "DELETE", "/api/v1/bans/127.0.0.2", &headers, "").await;
    assert_eq!(again.status, 404);
    let no_token = common::http_request(addr, "DELETE", "/api/v1/bans/127.0.0.2", &headers[..1], "").await;
    assert_eq!(no_token.status, 401, "lifting a ban needs the admin token");
    let options = banned.request("OPTIONS", "o2", "", "", "");
    banned.send_raw(&options).await;
    assert_eq!(banned.expect(SECS, |m| m.status().is_some()).await.status(), Some(200), "answered again");
    svc.service.shutdown().await;
}

/// SIPVicious announces itself (`User-Agent: friendly-scanner`): dropped unanswered and its
/// address banned, while the same OPTIONS from a phone is answered.
#[tokio::test]
async fn a_scanner_is_dropped_and_its_address_banned() {
    let svc = TestService::start(TestOptions { rtp_slot: 23, ..Default::default() }).await;
    let mut scanner = Uac::udp_from("127.0.0.4", svc.udp()).await;
    let probe = scanner.request("OPTIONS", "s1", "User-Agent: friendly-scanner\r\n", "", "");
    scanner.send_raw(&probe).await;
    assert!(scanner.recv(Duration::from_millis(500)).await.is_none(), "no answer to a scanner");
    let polite = scanner.request("OPTIONS", "s2", "User-Agent: Linphone/5.2\r\n", "", "");
    scanner.send_raw(&polite).await;
    assert!(scanner.recv(Duration::from_millis(500)).await.is_none(), "nor to anything else from its address");

    let mut phone = Uac::udp_from("127.0.0.5", svc.udp()).await;
    let polite = phone.request("OPTIONS", "p1", "User-Agent: Linphone/5.2\r\n", "", "");
    phone.send_raw(&polite).await;
    assert_eq!(phone.expect(SECS, |m| m.status().is_some()).await.status(), Some(200));

    // Over TCP (checked by the dispatcher, not the UDP screen), from 127.0.0.1, a trunk
    // address in the tests: dropped too, but a trunk is never banned.
    let mut over_tcp = Uac::tcp(svc.tcp()).await;
    let probe = over_tcp.request("OPTIONS", "t1", "User-Agent: friendly-scanner\r\n", "", "");
    over_tcp.send_raw(&probe).await;
    assert!(over_tcp.recv(Duration::from_millis(500)).await.is_none(), "no answer to a scanner over TCP");
    let polite = over_tcp.request("OPTIONS", "t2", "User-Agent: Linphone/5.2\r\n", "", "");
    over_tcp.send_raw(&polite).await;
    assert_eq!(over_tcp.expect(SECS, |m| m.status().is_some()).await.status(), Some(200), "the trunk address is not banned");

    let metrics = svc.http_get("/metrics").await;
    assert_eq!(common::metric(&metrics, "centralino_sip_bans_total{reason=\"scanner\"}"), 1.0);
    assert_eq!(common::metric(&metrics, "centralino_sip_rejected_total{reason=\"scanner\"}"), 2.0);
    svc.service.shutdown().await;
}
