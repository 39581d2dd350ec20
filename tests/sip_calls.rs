//! Integration: the service in-process on loopback, driven with real SIP over UDP and TCP
//! by a raw test user agent (tests/common/uac.rs).

mod common;

use std::time::Duration;

use centralino::engine::call::Outcome;
use common::uac::{Message, Uac};
use common::{TestOptions, TestService};

const SECS: Duration = Duration::from_secs(5);

fn te(pt: u8) -> String {
    format!("a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n")
}

#[tokio::test]
async fn options_outside_a_dialog_gets_200_with_allow() {
    let svc = TestService::start(TestOptions { rtp_slot: 1, ..Default::default() }).await;
    let mut uac = Uac::udp(svc.udp()).await;
    let req = uac.request("OPTIONS", "opt1", "", "", "");
    uac.send_raw(&req).await;
    let resp = uac.expect(SECS, |m| m.status().is_some()).await;
    assert_eq!(resp.status(), Some(200));
    let allow = resp.header("Allow").expect("Allow header");
    for method in ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO"] {
        assert!(allow.contains(method), "{allow}");
    }
    svc.service.shutdown().await;
}

#[tokio::test]
async fn unknown_methods_get_501_and_unsupported_ones_405() {
    let svc = TestService::start(TestOptions { rtp_slot: 2, ..Default::default() }).await;
    let mut uac = Uac::udp(svc.udp()).await;
    let req = uac.request("FROBNICATE", "x1", "", "", "");
    uac.send_raw(&req).await;
    let resp = uac.expect(SECS, |m| m.status().is_some()).await;
    assert_eq!(resp.status(), Some(501), "{resp:?}");

    let req = uac.request("SUBSCRIBE", "x2", "Event: presence\r\n", "", "");
    uac.send_raw(&req).await;
    let resp = uac.expect(SECS, |m| m.status().is_some()).await;
    assert_eq!(resp.status(), Some(405), "{resp:?}");
    assert!(resp.header("Allow").is_some());

    // Garbage is dropped without an answer and counted.
    uac.send_raw("\u{1}\u{2} not sip at all").await;
    assert!(uac.recv(Duration::from_millis(300)).await.is_none());
    let metrics = svc.http_get("/metrics").await;
    let parse_errors = common::metric(&metrics, "centralino_sip_parse_errors_total");
    assert!(parse_errors >= 2.0, "FROBNICATE and garbage counted: {parse_errors}");
    svc.service.shutdown().await;
}

#[tokio::test]
async fn a_call_over_udp_hears_the_welcome_and_a_digit_puts_it_in_the_tax_queue() {
    let mut svc = TestService::start(TestOptions { rtp_slot: 3, ..Default::default() }).await;
    let mut uac = Uac::udp(svc.udp()).await;
    let offer = uac.sdp_offer("0 8 101", &te(101));
    let resp = uac.call(&offer).await;
    assert_eq!(resp.status(), Some(200), "{resp:?}");
    assert!(resp.body.contains("RTP/AVP 0 101"), "answers PCMU + telephone-event: {}", resp.body);
    assert!(resp.body.contains("a=rtpmap:101 telephone-event/8000"), "{}", resp.body);

    // The welcome prompt flows at 50 packets per second.
    let packets = uac.count_rtp(Duration::from_millis(500)).await;
    assert!(packets >= 15, "welcome prompt RTP: {packets} packets in 500 ms");

    uac.send_dtmf(2, 101).await;
    let calls = wait_for_stage(&svc, "queued").await;
    assert!(calls.contains("\"queue\":\"tributi\""), "{calls}");
    assert!(calls.contains("principale"), "IVR path recorded: {calls}");

    let bye = uac.hang_up().await;
    assert_eq!(bye.status(), Some(200));
    let record = svc.next_record(SECS).await;
    assert_eq!(record.queue.map(|q| q.0), Some("tributi".to_string()));
    assert_eq!(record.outcome, Outcome::Abandoned);
    svc.assert_ports_returned().await;
    svc.service.shutdown().await;
}

#[tokio::test]
async fn a_call_over_tcp_with_a_pcma_only_offer_and_info_dtmf_reaches_a_submenu_queue() {
    let mut svc = TestService::start(TestOptions { rtp_slot: 4, ..Default::default() }).await;
    let mut uac = Uac::tcp(svc.tcp()).await;
    let offer = uac.sdp_offer("8", "");
    let resp = uac.call(&offer).await;
    assert_eq!(resp.status(), Some(200), "{resp:?}");
    assert!(resp.body.contains("RTP/AVP 8"), "answers PCMA only: {}", resp.body);
    assert!(!resp.body.contains("telephone-event"), "{}", resp.body);

    for (i, digit) in ["1", "2"].iter().enumerate() {
        uac.cseq += 1;
        let info = uac.request("INFO", &format!("info{i}"), "", &format!("Signal={digit}\r\nDuration=160\r\n"), "application/dtmf-relay");
        uac.send_raw(&info).await;
        let ok = uac.expect(SECS, |m| m.header("CSeq").map(|c| c.ends_with("INFO")).unwrap_or(false)).await;
        assert_eq!(ok.status(), Some(200));
    }
    let calls = wait_for_stage(&svc, "queued").await;
    assert!(calls.contains("\"queue\":\"demografici_cie\""), "1 then 2 is the identity-card desk: {calls}");
    uac.hang_up().await;
    let record = svc.next_record(SECS).await;
    assert_eq!(record.ivr_path.len(), 2, "{:?}", record.ivr_path);
    svc.service.shutdown().await;
}

#[tokio::test]
async fn an_unacceptable_offer_gets_488_and_a_bye_for_no_dialog_gets_481() {
    let svc = TestService::start(TestOptions { rtp_slot: 5, ..Default::default() }).await;
    let mut uac = Uac::udp(svc.udp()).await;
    let offer = uac.sdp_offer("18", "a=rtpmap:18 G729/8000\r\n");
    let resp = uac.call(&offer).await;
    assert_eq!(resp.status(), Some(488));

    let mut other = Uac::udp(svc.udp()).await;
    other.to_tag = Some("nope".into());
    let bye = other.request("BYE", "b1", "", "", "");
    other.send_raw(&bye).await;
    let resp = other.expect(SECS, |m| m.status().is_some()).await;
    assert_eq!(resp.status(), Some(481));
    svc.service.shutdown().await;
}

#[tokio::test]
async fn a_reinvite_moves_the_media_and_shutdown_ends_calls_with_bye() {
    let mut svc = TestService::start(TestOptions { rtp_slot: 6, ..Default::default() }).await;
    let mut uac = Uac::udp(svc.udp()).await;
    let offer = uac.sdp_offer("0 101", &te(101));
    assert_eq!(uac.call(&offer).await.status(), Some(200));

    // Move our RTP to a new socket with a re-INVITE: the prompt must follow.
    let new_rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let old_port = uac.rtp.local_addr().unwrap().port();
    uac.rtp = new_rtp;
    let offer = uac.sdp_offer("0 101", &te(101));
    uac.cseq += 1;
    let reinvite = uac.request("INVITE", "reinv", "", &offer, "application/sdp");
    uac.send_raw(&reinvite).await;
    let ok = uac.expect(SECS, |m| m.status().map(|s| s >= 200).unwrap_or(false)).await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert_ne!(old_port, uac.rtp.local_addr().unwrap().port());
    let ack = uac.request("ACK", "reack", "", "", "");
    uac.send_raw(&ack).await;
    assert!(uac.count_rtp(Duration::from_millis(400)).await >= 10, "media follows the re-INVITE");

    // Shutdown: the caller gets a BYE, new INVITEs get 503.
    let service = svc.service;
    let stopper = tokio::spawn(service.shutdown());
    let bye: Message = uac.expect(SECS, |m| m.method() == Some("BYE")).await;
    uac.answer_ok(&bye).await;
    let record = tokio::time::timeout(SECS, svc.records.recv()).await.unwrap().unwrap();
    assert_eq!(record.outcome, Outcome::Interrupted);
    stopper.await.unwrap();
}

#[tokio::test]
async fn a_caller_who_puts_the_call_on_hold_gets_no_rtp_until_resuming() {
    let svc = TestService::start(TestOptions { rtp_slot: 7, ..Default::default() }).await;
    let mut uac = Uac::udp(svc.udp()).await;
    let offer = uac.sdp_offer("0 101", &te(101));
    assert_eq!(uac.call(&offer).await.status(), Some(200));
    assert!(uac.count_rtp(Duration::from_millis(300)).await >= 8, "the welcome prompt flows");

    for (branch, direction, expect_rtp) in [("hold", "a=sendonly", false), ("unhold", "a=sendrecv", true)] {
        let offer = uac.sdp_offer("0 101", &te(101)).replace("a=sendrecv", direction);
        uac.cseq += 1;
        let reinvite = uac.request("INVITE", branch, "", &offer, "application/sdp");
        uac.send_raw(&reinvite).await;
        let ok = uac.expect(SECS, |m| m.status().map(|s| s >= 200).unwrap_or(false)).await;
        assert_eq!(ok.status(), Some(200));
        if !expect_rtp {
            assert!(ok.body.contains("a=recvonly"), "RFC 3264: sendonly is answered recvonly: {}", ok.body);
        }
        let ack = uac.request("ACK", &format!("{branch}-ack"), "", "", "");
        uac.send_raw(&ack).await;
        // Drain what was in flight before the re-INVITE took effect, then count.
        uac.count_rtp(Duration::from_millis(100)).await;
        let packets = uac.count_rtp(Duration::from_millis(400)).await;
        if expect_rtp {
            assert!(packets >= 10, "resumed: {packets} packets");
        } else {
            assert_eq!(packets, 0, "on hold, centralino sends nothing");
        }
    }
    svc.service.shutdown().await;
}

/// Polls the live-calls API until some call is in `stage`.
async fn wait_for_stage(svc: &TestService, stage: &str) -> String {
    let needle = format!("\"stage\":\"{stage}\"");
    for _ in 0..100 {
        let calls = svc.http_get("/api/v1/calls").await;
        if calls.contains(&needle) {
            return calls;
        }
        // Polling an HTTP API from outside the process: there is no event to await here.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no call reached stage {stage}: {}", svc.http_get("/api/v1/calls").await);
}

