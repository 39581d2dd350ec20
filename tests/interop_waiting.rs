//! Interop: callers waiting in a queue with no free operator. SIPp callers sit ahead of a
//! test phone that measures what it receives: RTP arrives continuously (announcements, then
//! music) for 60 s, and when the SIPp callers ahead hang up they leave the queue at once and
//! the test phone's next announcement gives a lower position. Ignored by plain `cargo test`.

mod common;

use std::time::{Duration, Instant};

use common::uac::Uac;
use common::{sipp, TestOptions, TestService};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SIPp (sip-tester); about 70 s"]
#[allow(clippy::disallowed_methods)] // measures real packet arrival times on a real socket
async fn waiting_callers_hear_rtp_continuously_and_move_up_when_someone_ahead_hangs_up() {
    let opts = TestOptions {
        rtp_slot: 38,
        queue_settings: vec![("tributi".into(), "announce_interval_secs".into(), toml::Value::Integer(10))],
        ..Default::default()
    };
    let (config, data) = TestService::prepare(&opts);
    // An operator account that never registers: the queue is staffed on paper, nobody answers.
    common::add_operators(&config, &[("op1", "s1", &[("tributi", 1)])]).await;
    let db = config.database.url.clone();
    let svc = TestService::start_with(config, data).await;
    let dir = tempfile::tempdir().unwrap();

    // Three SIPp callers press 2 and wait 20 s, then hang up.
    let keys = [
        ("from_user", "3330000001"),
        ("digits", "2"),
        ("pre_dtmf_ms", "0"),
        ("gap_ms", "200"),
        ("hold_ms", "20000"),
        ("require_remote_bye", "0"),
        ("info_duration", "160"),
    ];
    let ahead = tokio::spawn({
        let (dir, target) = (dir.path().to_path_buf(), svc.udp());
        async move { sipp::run(&dir, target, "caller_info_dtmf.xml", &keys, &["-m", "3", "-r", "10"], Duration::from_secs(40)).await }
    });
    // Wait until they are queued (polling the admin API: nothing else to await from outside).
    let mut queued = 0;
    for _ in 0..100 {
        queued = svc.http_get("/api/v1/calls").await.matches("\"stage\":\"queued\"").count();
        if queued == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(queued, 3, "{}", svc.http_get("/api/v1/calls").await);

    // The test phone joins fourth and listens for 60 s.
    let mut uac = Uac::udp(svc.udp()).await;
    let offer = uac.sdp_offer("0 101", "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n");
    assert_eq!(uac.call(&offer).await.status(), Some(200));
    // The welcome prompt starts once the ACK is in; the key comes after it started.
    assert!(uac.count_rtp(Duration::from_millis(300)).await > 5);
    uac.send_dtmf(2, 101).await;
    let started = Instant::now();
    let mut buf = vec![0u8; 2048];
    let (mut packets, mut max_gap, mut last) = (0usize, Duration::ZERO, None::<Instant>);
    let mut queued_after_hangups = None;
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), uac.rtp.recv_from(&mut buf)).await {
            let now = Instant::now();
            if let Some(prev) = last {
                // The first second is the welcome prompt cut by the digit: measure from the queue on.
                if started.elapsed() > Duration::from_secs(1) {
                    max_gap = max_gap.max(now - prev);
                }
            }
            last = Some(now);
            packets += 1;
        }
        if queued_after_hangups.is_none() && ahead.is_finished() {
            let calls = svc.http_get("/api/v1/calls").await;
            queued_after_hangups = Some(calls.matches("\"stage\":\"queued\"").count());
        }
    }
    let run = ahead.await.unwrap();
    assert!(run.success, "{}", run.stderr);
    assert_eq!(queued_after_hangups, Some(1), "the three who hung up left the queue at once");
    assert!(packets >= 2900, "50 packets/s for 60 s, minus the start: {packets}");
    assert!(max_gap < Duration::from_millis(200), "no silence gap while waiting: longest {max_gap:?}");

    // The phone's announcements: entered 4th; after the others left, a lower position.
    let calls = svc.http_get("/api/v1/calls").await;
    let id = calls.split("\"id\":\"").nth(1).and_then(|s| s.split('"').next()).expect("the phone's call id").to_string();
    uac.hang_up().await;
    svc.service.shutdown().await;
    let store = centralino::store::Store::open(&db).await.unwrap();
    let events = store.call_events(&id).await.unwrap();
    let positions: Vec<u32> = events
        .iter()
        .filter(|e| e.event == "ENTERQUEUE" || e.event == "ANNOUNCE")
        .filter_map(|e| {
            let field = if e.event == "ENTERQUEUE" { e.data.get(2) } else { e.data.first() };
            field.and_then(|p| p.parse().ok())
        })
        .collect();
    assert_eq!(positions.first(), Some(&4), "entered fourth: {events:?}");
    assert_eq!(positions.last(), Some(&1), "first in line after the others hung up: {positions:?}");
    assert!(positions.windows(2).all(|w| w[1] <= w[0]), "a position never goes up: {positions:?}");
    store.close().await;
}
