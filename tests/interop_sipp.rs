//! Interop with SIPp (Debian `sip-tester`) as the caller. Ignored by plain `cargo test`;
//! CI runs them with `--include-ignored` after installing SIPp. SIPp's pcap DTMF play uses
//! a raw socket, so these run as root (as CI does).

mod common;

use std::time::Duration;

use centralino::engine::call::Outcome;
use common::{sipp, TestOptions, TestService};

fn ivr_keys<'a>(digits: &'a str, hold_ms: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("from_user", "3331234567"),
        ("digits", digits),
        ("dtmf_mode", "pcap"),
        ("te_pt", "101"),
        ("pre_dtmf_ms", "1500"),
        ("gap_ms", "1500"),
        ("hold_ms", hold_ms),
        ("require_remote_bye", "0"),
    ]
}

fn assert_ok(run: &sipp::SippRun) {
    assert!(run.success, "SIPp failed\n--- stdout\n{}\n--- stderr\n{}", tail(&run.stdout), run.stderr);
}

fn tail(s: &str) -> String {
    s.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[tokio::test]
#[ignore = "needs SIPp (sip-tester) and root for pcap DTMF"]
async fn sipp_rfc4733_pcap_digit_over_udp_reaches_the_tax_queue() {
    let mut svc = TestService::start(TestOptions { rtp_slot: 10, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let run = sipp::run(dir.path(), svc.udp(), "caller_ivr.xml", &ivr_keys("2", "1500"), &["-m", "1"], Duration::from_secs(30)).await;
    assert_ok(&run);
    let record = svc.next_record(Duration::from_secs(5)).await;
    assert_eq!(record.queue.map(|q| q.0).as_deref(), Some("tributi"));
    assert_eq!(record.ivr_path, vec!["principale:2".to_string()]);
    assert_eq!(record.outcome, Outcome::Abandoned);
    svc.assert_ports_returned().await;
    svc.service.shutdown().await;
}

#[tokio::test]
#[ignore = "needs SIPp (sip-tester)"]
async fn sipp_sip_info_digits_over_udp_reach_a_submenu_queue() {
    let mut svc = TestService::start(TestOptions { rtp_slot: 11, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        ("from_user", "3331234567"),
        ("digits", "14"),
        ("pre_dtmf_ms", "1000"),
        ("gap_ms", "1000"),
        ("hold_ms", "1500"),
        ("require_remote_bye", "0"),
        ("info_duration", "160"),
    ];
    let run = sipp::run(dir.path(), svc.udp(), "caller_info_dtmf.xml", &keys, &["-m", "1"], Duration::from_secs(30)).await;
    assert_ok(&run);
    let record = svc.next_record(Duration::from_secs(5)).await;
    assert_eq!(record.queue.map(|q| q.0).as_deref(), Some("demografici_elettorale"));
    svc.service.shutdown().await;
}

#[tokio::test]
#[ignore = "needs SIPp (sip-tester) and root for pcap DTMF"]
async fn sipp_over_tcp_with_rfc4733_digit_reaches_the_general_queue() {
    let mut svc = TestService::start(TestOptions { rtp_slot: 12, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let run = sipp::run(dir.path(), svc.tcp(), "caller_ivr.xml", &ivr_keys("0", "1500"), &["-m", "1", "-t", "t1"], Duration::from_secs(30)).await;
    assert_ok(&run);
    let record = svc.next_record(Duration::from_secs(5)).await;
    assert_eq!(record.queue.map(|q| q.0).as_deref(), Some("generale"));
    svc.service.shutdown().await;
}

#[tokio::test]
#[ignore = "needs SIPp (sip-tester) and root for pcap DTMF"]
async fn sipp_invalid_digit_then_valid_digit() {
    let mut svc = TestService::start(TestOptions { rtp_slot: 13, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    // 8 is not a choice of the main menu: "scelta non valida", the menu again, then 5.
    let run = sipp::run(dir.path(), svc.udp(), "caller_ivr.xml", &ivr_keys("85", "1500"), &["-m", "1"], Duration::from_secs(30)).await;
    assert_ok(&run);
    let record = svc.next_record(Duration::from_secs(5)).await;
    assert_eq!(record.queue.map(|q| q.0).as_deref(), Some("servizi_persona"));
    assert_eq!(record.ivr_path.last().map(String::as_str), Some("principale:5"));
    svc.service.shutdown().await;
}

#[tokio::test]
#[ignore = "needs SIPp (sip-tester)"]
async fn sipp_no_input_repeats_the_menu_then_goes_to_the_general_queue() {
    let scripts = common::short_timeout_scripts();
    let opts = TestOptions {
        rtp_slot: 14,
        extra_env: vec![("CENTRALINO_IVR__SCRIPTS".into(), scripts.path().display().to_string())],
        ..Default::default()
    };
    let mut svc = TestService::start(opts).await;
    let dir = tempfile::tempdir().unwrap();
    // welcome 5.2 s + short menu ~5 s + 1 s, once more, then the general queue.
    let run = sipp::run(dir.path(), svc.udp(), "caller_ivr.xml", &ivr_keys("", "25000"), &["-m", "1"], Duration::from_secs(40)).await;
    assert_ok(&run);
    let record = svc.next_record(Duration::from_secs(5)).await;
    assert_eq!(record.queue.map(|q| q.0).as_deref(), Some("generale"));
    assert_eq!(record.ivr_path, vec!["principale:timeout".to_string()]);
    svc.service.shutdown().await;
}

#[tokio::test]
#[ignore = "needs SIPp (sip-tester)"]
async fn sipp_cancel_before_answer_gets_487_and_frees_everything() {
    let opts = TestOptions {
        rtp_slot: 15,
        extra_env: vec![("CENTRALINO_SIP__ANSWER_AFTER_MS".into(), "4000".into())],
        ..Default::default()
    };
    let mut svc = TestService::start(opts).await;
    let dir = tempfile::tempdir().unwrap();
    let keys = [("from_user", "3331234567"), ("te_pt", "101"), ("cancel_after_ms", "1000")];
    let run = sipp::run(dir.path(), svc.udp(), "caller_cancel.xml", &keys, &["-m", "1"], Duration::from_secs(20)).await;
    assert_ok(&run);
    let record = svc.next_record(Duration::from_secs(5)).await;
    assert_eq!(record.outcome, Outcome::IvrHangup);
    assert!(record.queue.is_none());
    svc.assert_ports_returned().await;
    svc.service.shutdown().await;
}

#[tokio::test]
#[ignore = "needs SIPp (sip-tester) and root for pcap DTMF"]
async fn sipp_bye_during_the_welcome_prompt_ends_the_call_cleanly() {
    let mut svc = TestService::start(TestOptions { rtp_slot: 16, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        ("from_user", "3331234567"),
        ("digits", ""),
        ("pre_dtmf_ms", "300"),
        ("gap_ms", "300"),
        ("abandon_ms", "1000"),
        ("te_pt", "101"),
    ];
    let run = sipp::run(dir.path(), svc.udp(), "caller_abandon.xml", &keys, &["-m", "1"], Duration::from_secs(20)).await;
    assert_ok(&run);
    let record = svc.next_record(Duration::from_secs(5)).await;
    assert_eq!(record.outcome, Outcome::IvrHangup);
    svc.assert_ports_returned().await;
    let calls = svc.http_get("/api/v1/calls").await;
    assert!(calls.contains("\"calls\":[]"), "{calls}");
    svc.service.shutdown().await;
}

#[tokio::test]
#[ignore = "needs SIPp (sip-tester)"]
async fn sipp_closed_hours_call_is_answered_told_and_ended_by_centralino() {
    let mut svc = TestService::start(TestOptions { rtp_slot: 17, open: false, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let keys = [("from_user", "3331234567"), ("te_pt", "101")];
    let run = sipp::run(dir.path(), svc.udp(), "caller_closed.xml", &keys, &["-m", "1"], Duration::from_secs(45)).await;
    assert_ok(&run);
    let record = svc.next_record(Duration::from_secs(5)).await;
    assert_eq!(record.outcome, Outcome::Closed);
    svc.service.shutdown().await;
}

#[tokio::test]
#[ignore = "needs SIPp (sip-tester); about 40 s"]
async fn sipp_200_concurrent_callers_wait_in_queue_for_30_s_and_every_port_is_freed() {
    let opts = TestOptions {
        rtp_slot: 0,
        extra_env: vec![("CENTRALINO_MEDIA__RTP_PORTS".into(), "40000-40999".into())],
        ..Default::default()
    };
    let mut svc = TestService::start(opts).await;
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        ("from_user", "3331234567"),
        ("digits", "2"),
        ("pre_dtmf_ms", "500"),
        ("gap_ms", "300"),
        ("hold_ms", "30000"),
        ("require_remote_bye", "0"),
        ("info_duration", "160"),
    ];
    let run = sipp::run(
        dir.path(),
        svc.udp(),
        "caller_info_dtmf.xml",
        &keys,
        &["-m", "200", "-l", "200", "-r", "50"],
        Duration::from_secs(90),
    )
    .await;
    assert_ok(&run);
    let mut tributi = 0;
    for _ in 0..200 {
        let r = svc.next_record(Duration::from_secs(10)).await;
        assert_eq!(r.outcome, Outcome::Abandoned, "{r:?}");
        if r.queue.map(|q| q.0).as_deref() == Some("tributi") {
            tributi += 1;
        }
    }
    assert_eq!(tributi, 200, "every caller sat in the tax queue");
    svc.assert_ports_returned().await;
    let metrics = svc.http_get("/metrics").await;
    assert!(metrics.contains("centralino_rtp_ports_active 0"), "{metrics}");
    // Nothing of the SIP stack outlives the calls: no dialog, no answer waiting for an ACK,
    // and the last BYE transactions end as their handlers return (rsipstack reports no
    // event for that, so its gauge is polled, for at most 10 s).
    assert_eq!(common::metric(&metrics, "centralino_sip_dialogs"), 0.0, "{metrics}");
    assert_eq!(common::metric(&metrics, "centralino_sip_transactions{state=\"waiting_ack\"}"), 0.0);
    let mut running = f64::NAN;
    for _ in 0..100 {
        running = common::metric(&svc.http_get("/metrics").await, "centralino_sip_transactions{state=\"running\"}");
        if running == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running, 0.0, "SIP transactions still running 10 s after the last call");
    let sent = metrics
        .lines()
        .find(|l| l.starts_with("centralino_rtp_packets_sent_total "))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    // 200 callers × ~30 s × 50 packets/s, allowing for set-up and the ramp.
    assert!(sent > 200.0 * 25.0 * 50.0, "music on hold reached every caller: {sent} packets");
    assert!(metrics.contains("centralino_prompts_missing_total 0"));
    // The control loop's own load: each call brought it at least its arrival, answer, key
    // and hang-up; the busy time is real time spent, well under the run's.
    let wakeups = common::metric(&metrics, "centralino_control_wakeups_total");
    assert!(wakeups >= 200.0 * 4.0, "{wakeups} control-loop wake-ups for 200 calls");
    let busy = common::metric(&metrics, "centralino_control_busy_seconds_total");
    assert!(busy > 0.0 && busy < 30.0, "control loop busy {busy} s");
    svc.service.shutdown().await;
}
