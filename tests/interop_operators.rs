//! Interop: SIPp operators register with digest auth and take routed calls from SIPp callers.
//! Ignored by plain `cargo test`; CI runs them with `--include-ignored`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use centralino::engine::call::Outcome;
use common::{sipp, TestOptions, TestService};

fn info_caller_keys(digit: &str) -> Vec<(&str, &str)> {
    vec![
        ("from_user", "3331234567"),
        ("digits", digit),
        ("pre_dtmf_ms", "300"),
        ("gap_ms", "300"),
        ("hold_ms", "30000"),
        ("require_remote_bye", "1"),
        ("info_duration", "160"),
    ]
}

#[tokio::test]
#[ignore = "needs SIPp (sip-tester)"]
async fn sipp_operators_register_with_digest_and_take_20_calls_from_two_queues() {
    let opts = TestOptions {
        rtp_slot: 30,
        extra_env: vec![("CENTRALINO_MEDIA__RTP_PORTS".into(), "41000-41399".into())],
        queue_settings: vec![
            ("tributi".into(), "wrap_up_secs".into(), toml::Value::Integer(0)),
            ("educazione".into(), "wrap_up_secs".into(), toml::Value::Integer(0)),
        ],
        ..Default::default()
    };
    let (config, data) = TestService::prepare(&opts);
    let tributi: &[(&str, u32)] = &[("tributi", 1)];
    let educazione: &[(&str, u32)] = &[("educazione", 1)];
    common::add_operators(
        &config,
        &[("op1", "s1", tributi), ("op2", "s2", tributi), ("op3", "s3", tributi), ("op4", "s4", educazione), ("op5", "s5", educazione)],
    )
    .await;
    let mut svc = TestService::start_with(config, data).await;
    let dir = tempfile::tempdir().unwrap();
    let mut phones = Vec::new();
    for (user, pass) in [("op1", "s1"), ("op2", "s2"), ("op3", "s3"), ("op4", "s4"), ("op5", "s5")] {
        phones.push(sipp::spawn_operator(dir.path(), svc.udp(), user, pass, "answer", 1500, Duration::from_secs(60)));
    }
    common::wait_registered(&svc, 5).await;

    // 10 callers press 2 (Tributi) and 10 press 3 (Politiche educative), at 4 calls/s.
    let (keys2, keys3) = (info_caller_keys("2"), info_caller_keys("3"));
    let (a, b) = tokio::join!(
        sipp::run(dir.path(), svc.udp(), "caller_info_dtmf.xml", &keys2, &["-m", "10", "-r", "2"], Duration::from_secs(50)),
        sipp::run(dir.path(), svc.udp(), "caller_info_dtmf.xml", &keys3, &["-m", "10", "-r", "2"], Duration::from_secs(50)),
    );
    assert!(a.success && b.success, "callers: every one answered and hung up by the operator\n{}\n{}", a.stderr, b.stderr);

    let mut by_operator: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..20 {
        let r = svc.next_record(Duration::from_secs(10)).await;
        assert_eq!(r.outcome, Outcome::Answered, "{r:?}");
        let operator = r.operator.clone().expect("answered by an operator").0;
        let queue = r.queue.clone().unwrap().0;
        let right = match queue.as_str() {
            "tributi" => ["op1", "op2", "op3"].contains(&operator.as_str()),
            "educazione" => ["op4", "op5"].contains(&operator.as_str()),
            other => panic!("unexpected queue {other}"),
        };
        assert!(right, "{operator} answered a {queue} call");
        *by_operator.entry(operator).or_default() += 1;
    }
    // Longest-idle spreads the work: every operator took calls, none took most of them.
    assert_eq!(by_operator.len(), 5, "{by_operator:?}");
    assert!(by_operator.values().all(|&n| n <= 6), "{by_operator:?}");
    svc.assert_ports_returned().await;
    let db = svc.config.database.url.clone();
    let scripts = svc.config.ivr.scripts.clone();
    svc.service.shutdown().await; // the writer drains before this returns

    // What SIPp saw (20 answered: 10 per queue) is what the records and the report say.
    let today = svc_today();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_centralino"))
        .args(["report", "--format", "json", "--from", &today])
        .env("CENTRALINO_DATABASE__URL", &db)
        .env("CENTRALINO_IVR__SCRIPTS", scripts.display().to_string())
        .output()
        .expect("centralino report runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let row = |q: &str| report["rows"].as_array().unwrap().iter().find(|r| r["queue"] == q).cloned().unwrap_or_default();
    for q in ["tributi", "educazione"] {
        let r = row(q);
        assert_eq!((r["offered"].as_u64(), r["answered"].as_u64(), r["abandoned"].as_u64()), (Some(10), Some(10), Some(0)), "{q}: {r}");
    }
    assert_eq!(report["total"]["calls"].as_u64(), Some(20), "{report}");
}

/// Today's date in Rome, as the report takes it.
fn svc_today() -> String {
    #[allow(clippy::disallowed_methods)] // the test asks for today's report
    let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::get("Europe/Rome").unwrap());
    now.date().to_string()
}

#[tokio::test]
#[ignore = "needs SIPp (sip-tester)"]
async fn sipp_a_noanswer_operator_is_cancelled_and_a_busy_one_skipped() {
    let opts = TestOptions {
        rtp_slot: 31,
        queue_settings: vec![
            ("tributi".into(), "strategy".into(), toml::Value::String("linear".into())),
            ("tributi".into(), "ring_timeout_secs".into(), toml::Value::Integer(2)),
            ("tributi".into(), "retry_delay_secs".into(), toml::Value::Integer(0)),
        ],
        ..Default::default()
    };
    let (config, data) = TestService::prepare(&opts);
    // Linear by level: the busy phone first, then the one that never answers, then op3.
    common::add_operators(
        &config,
        &[("busy1", "b", &[("tributi", 1)]), ("silent1", "s", &[("tributi", 2)]), ("op3", "s3", &[("tributi", 3)])],
    )
    .await;
    let mut svc = TestService::start_with(config, data).await;
    let dir = tempfile::tempdir().unwrap();
    let _busy = sipp::spawn_operator(dir.path(), svc.udp(), "busy1", "b", "busy", 1000, Duration::from_secs(40));
    let _silent = sipp::spawn_operator(dir.path(), svc.udp(), "silent1", "s", "noanswer", 1000, Duration::from_secs(40));
    let _good = sipp::spawn_operator(dir.path(), svc.udp(), "op3", "s3", "answer", 1500, Duration::from_secs(40));
    common::wait_registered(&svc, 3).await;

    let run = sipp::run(dir.path(), svc.udp(), "caller_info_dtmf.xml", &info_caller_keys("2"), &["-m", "1"], Duration::from_secs(30)).await;
    assert!(run.success, "{}", run.stderr);
    let r = svc.next_record(Duration::from_secs(10)).await;
    assert_eq!((r.outcome, r.operator.map(|o| o.0)), (Outcome::Answered, Some("op3".to_string())));
    let metrics = svc.http_get("/metrics").await;
    assert!(metrics.contains("centralino_queue_ring_no_answer_total{queue=\"tributi\"} 1"), "the silent phone's ring timed out once");
    assert!(metrics.contains("centralino_queue_offers_total{queue=\"tributi\"} 3"), "busy, silent, then op3");
    svc.service.shutdown().await;
}

#[tokio::test]
#[ignore = "needs SIPp (sip-tester)"]
async fn sipp_operator_feature_codes_pause_and_resume_with_a_spoken_confirmation() {
    let (svc, dir, _phone) = with_op1_registered(33, Duration::from_secs(60)).await;
    assert!(svc.http_get("/api/v1/operators").await.contains("\"state\":\"available\""));

    // op1 dials *1: answered, hears the confirmation, centralino hangs up; op1 is paused.
    let keys = [("from_user", "op1"), ("te_pt", "101")];
    let run = sipp::run(dir.path(), svc.udp(), "caller_closed.xml", &keys, &["-m", "1", "-s", "*1"], Duration::from_secs(40)).await;
    assert!(run.success, "{}", run.stderr);
    let ops = svc.http_get("/api/v1/operators").await;
    assert!(ops.contains("\"state\":\"paused\"") && ops.contains("pausa"), "{ops}");

    let run = sipp::run(dir.path(), svc.udp(), "caller_closed.xml", &keys, &["-m", "1", "-s", "*2"], Duration::from_secs(40)).await;
    assert!(run.success, "{}", run.stderr);
    assert!(svc.http_get("/api/v1/operators").await.contains("\"state\":\"available\""));

    // Someone who is not a registered operator cannot use the codes.
    let keys = [("from_user", "3331234567"), ("te_pt", "101")];
    let run = sipp::run(dir.path(), svc.udp(), "caller_closed.xml", &keys, &["-m", "1", "-s", "*1"], Duration::from_secs(10)).await;
    assert!(!run.success, "a 403, not the feature");
    svc.service.shutdown().await;
}

#[tokio::test]
#[ignore = "needs SIPp (sip-tester)"]
async fn a_key_press_during_the_feature_confirmation_does_not_run_the_feature_again() {
    // rsipstack returns a dialog to Confirmed after each INFO it answers; the call was
    // established once, so the pause and its spoken confirmation must happen once.
    let (svc, _dir, _phone) = with_op1_registered(35, Duration::from_secs(60)).await;
    let prompt = concat!(env!("CARGO_MANIFEST_DIR"), "/ivr-scripts/prompts/it/funzione_pausa.wav");
    let prompt_packets = (hound::WavReader::open(prompt).unwrap().duration() / 160) as usize;

    // op1 dials *1 from where it registered (raw SIP: SIPp cannot send an INFO mid-prompt).
    let mut phone = common::uac::Uac::udp(svc.udp()).await;
    phone.from_user = "op1".into();
    phone.to_user = "*1".into();
    let offer = phone.sdp_offer("0", "");
    assert_eq!(phone.call(&offer).await.status(), Some(200));
    // Halfway through the confirmation, an INFO (a keep-alive, as some phones send).
    let mut buf = [0u8; 2048];
    for _ in 0..prompt_packets / 2 {
        tokio::time::timeout(Duration::from_secs(2), phone.rtp.recv_from(&mut buf)).await.expect("the confirmation plays").unwrap();
    }
    phone.cseq += 1;
    let info = phone.request("INFO", "info1", "", "", "");
    phone.send_raw(&info).await;
    // centralino hangs up when the confirmation ends; what it played until then is queued
    // in the phone's RTP socket.
    let bye = phone.expect(Duration::from_secs(15), |m| m.method() == Some("BYE")).await;
    phone.answer_ok(&bye).await;
    let heard = prompt_packets / 2 + phone.count_rtp(Duration::from_millis(300)).await;
    assert!(
        heard < prompt_packets * 5 / 4,
        "{heard} packets for a {prompt_packets}-packet confirmation: it started again after the INFO"
    );
    assert!(heard >= prompt_packets * 9 / 10, "{heard} packets: the confirmation was cut short");
    let ops = svc.http_get("/api/v1/operators").await;
    assert!(ops.contains("\"state\":\"paused\""), "{ops}");
    svc.service.shutdown().await;
}

#[tokio::test]
#[ignore = "needs SIPp (sip-tester)"]
async fn http_api_pauses_and_resumes_an_operator_and_validates_input() {
    let (svc, _dir, _phone) = with_op1_registered(34, Duration::from_secs(30)).await;
    let post = |path: &'static str, body: &'static str| svc.http_post(path, body);
    let (status, _) = post("/api/v1/operators/op1/pause", r#"{"reason":"riunione"}"#).await;
    assert_eq!(status, 200);
    let ops = svc.http_get("/api/v1/operators").await;
    assert!(ops.contains("\"state\":\"paused\"") && ops.contains("riunione"), "{ops}");
    assert_eq!(post("/api/v1/operators/op1/resume", "").await.0, 200);
    assert!(svc.http_get("/api/v1/operators").await.contains("\"state\":\"available\""));
    assert_eq!(post("/api/v1/operators/nobody/pause", "").await.0, 404);
    assert_eq!(post("/api/v1/operators/op1/dance", "").await.0, 404);
    assert_eq!(post("/api/v1/operators/op1/pause", r#"{"reason":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#).await.0, 422);
    assert_eq!(post("/api/v1/operators/op1/logout", "").await.0, 200);
    assert!(svc.http_get("/api/v1/operators").await.contains("\"state\":\"offline\""));
    svc.service.shutdown().await;
}

/// The service with one operator, op1 (password s1, serving tributi), registered from a SIPp
/// phone that answers after 1 s and stays registered for `phone_lifetime`.
async fn with_op1_registered(
    rtp_slot: u16,
    phone_lifetime: Duration,
) -> (TestService, tempfile::TempDir, (tokio::process::Child, u16)) {
    let opts = TestOptions { rtp_slot, ..Default::default() };
    let (config, data) = TestService::prepare(&opts);
    common::add_operators(&config, &[("op1", "s1", &[("tributi", 1)])]).await;
    let svc = TestService::start_with(config, data).await;
    let dir = tempfile::tempdir().unwrap();
    let phone = sipp::spawn_operator(dir.path(), svc.udp(), "op1", "s1", "answer", 1000, phone_lifetime);
    common::wait_registered(&svc, 1).await;
    (svc, dir, phone)
}
