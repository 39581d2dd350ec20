//! The edge under attack by real tools (ignored by default: needs `sip-tester` and, for the
//! guessing test, PyPI's `sipvicious`). Everything stays on 127.0.0.0/8: the attackers bind
//! 127.0.0.2 and 127.0.1.x, the legitimate callers 127.0.0.3, the service 127.0.0.1.
//!
//! - A SIPp INVITE+SDP flood at 2,000 calls/s from one address for 10 s, while SIPp callers
//!   from another address place 5 calls/s: at least 99 % of them succeed, and the flooder
//!   never holds more RTP ports than its per-source cap.
//! - SIPVicious `svcrack` from 20 addresses against an operator's password: as shipped (its
//!   `friendly-scanner` User-Agent) every address is dropped and banned at once; with the
//!   scanner list emptied, the guessing throttle holds the checked guesses to a handful, the
//!   password at the end of the list is never found, and every block is logged with the
//!   address and user.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{TestOptions, TestService};

fn sipp_caller(target: std::net::SocketAddr, ip: &str, rate: u32, calls: u32, hold_ms: u32, secs: u64) -> tokio::process::Command {
    let sf = common::root().join("tests/interop/sipp/caller_load.xml");
    let mut cmd = tokio::process::Command::new("sipp");
    cmd.arg(target.to_string())
        .arg("-sf")
        .arg(sf)
        .args(["-i", ip, "-mi", ip, "-bind_local", "-nostdin", "-s", "ivr", "-key", "te_pt", "101"])
        .args(["-p", &common::sipp::free_sip_port().to_string(), "-mp", &common::sipp::free_media_port().to_string()])
        .args(["-r", &rate.to_string(), "-m", &calls.to_string(), "-d", &hold_ms.to_string()])
        .args(["-timeout", &format!("{secs}s"), "-recv_timeout", "3000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Calls SIPp created (`Total-calls` on its final scenario screen).
fn sipp_total_calls(stdout: &str) -> u64 {
    let lines: Vec<&str> = stdout.lines().collect();
    let Some(header) = lines.iter().rposition(|l| l.contains("Total-calls")) else { return 0 };
    let tokens: Vec<&str> = lines.get(header + 1).map(|l| l.split_whitespace().collect()).unwrap_or_default();
    tokens.len().checked_sub(2).and_then(|i| tokens[i].parse().ok()).unwrap_or(0)
}

/// A number from SIPp's final statistics screen, e.g. `Successful call` (cumulative column).
fn sipp_stat(stdout: &str, label: &str) -> u64 {
    stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
#[ignore = "needs sipp (apt-get install sip-tester)"]
async fn a_flood_from_one_address_does_not_stop_callers_from_another() {
    assert!(common::have("sipp"), "apt-get install sip-tester");
    let svc = TestService::start(TestOptions {
        rtp_slot: 24,
        extra_env: vec![("CENTRALINO_MEDIA__RTP_PORTS".into(), "42000-42399".into())],
        ..Default::default()
    })
    .await;
    let target = svc.udp();
    // The legitimate callers start first and end after the flood: 5 calls/s for 16 s.
    let legit = sipp_caller(target, "127.0.0.3", 5, 80, 1000, 30).spawn().expect("sipp runs");
    // The flood: 20,000 INVITEs at 2,000/s, each holding its call for a minute if answered,
    // without retransmissions (an attacker does not care).
    let flood = sipp_caller(target, "127.0.0.2", 2000, 20_000, 10_000, 20)
        .args(["-rp", "1000", "-nr", "-max_recv_loops", "10000"])
        .spawn()
        .expect("sipp runs");
    // Ports held, sampled while both run.
    let ports = svc.service.ports.clone();
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..300 {
            peak = peak.max(ports.in_use());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        peak
    });
    let flood = flood.wait_with_output().await.expect("flood ran");
    let legit = legit.wait_with_output().await.expect("callers ran");
    let peak = sampler.await.unwrap();
    let flood_out = String::from_utf8_lossy(&flood.stdout);
    let legit_out = String::from_utf8_lossy(&legit.stdout);
    let sent = sipp_total_calls(&flood_out);
    let (ok, failed) = (sipp_stat(&legit_out, "Successful call"), sipp_stat(&legit_out, "Failed call"));
    eprintln!("flood: {sent} INVITEs sent; legitimate: {ok} successful, {failed} failed; peak RTP ports {peak}");
    assert!(sent >= 15_000, "the flood ran at full rate: {sent} INVITEs\n{flood_out}");
    assert!(ok + failed >= 80 && ok * 100 >= (ok + failed) * 99, "≥ 99 % of the legitimate calls succeed: {ok} ok, {failed} failed\n{legit_out}");
    // The flooder holds at most its cap (10) of the 200 ports; the callers' own few besides.
    assert!(peak <= 30, "one source must not take the RTP pool: peak {peak} ports in use");
    let bans = svc.service.bans();
    assert!(bans.iter().any(|b| b.source == "127.0.0.2"), "the flooder is banned: {bans:?}");
    assert!(!bans.iter().any(|b| b.source == "127.0.0.3"), "the callers are not: {bans:?}");
    let metrics = svc.http_get("/metrics").await;
    assert!(common::metric(&metrics, "centralino_sip_rejected_total{reason=\"banned\"}") > 10_000.0, "the flood was dropped as banned");
    svc.service.shutdown().await;
}

/// svcrack from 20 addresses, each with a 40-password list whose last entry is right;
/// asserts that none of them found it.
async fn svcrack_from_twenty(svc: &TestService, dir: &std::path::Path) {
    let words: Vec<String> = (0..39).map(|i| format!("guess{i:02}")).chain(["s3cret-operator-1".to_string()]).collect();
    let dict = dir.join("words.txt");
    std::fs::write(&dict, words.join("\n") + "\n").unwrap();
    let mut runs = Vec::new();
    for a in 1..=20u8 {
        // svcrack 0.3.8 ignores its own -b: the wrapper binds the source address.
        let ip = format!("127.0.1.{a}");
        // svcrack keeps going while it is answered (a refused guess gets 403 too): each runs
        // for 20 s, bounded by timeout(1).
        let cmd = tokio::process::Command::new("timeout")
            .args(["20", "python3"])
            .arg(common::root().join("tests/interop/sipvicious/svcrack_from.py"))
            .arg(&ip)
            .args(["-u", "op1", "-d"])
            .arg(&dict)
            .args(["-x", &ip, "-p", &svc.udp().port().to_string(), "--maximumtime", "3", "-t", "0.05"])
            .arg("127.0.0.1")
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("svcrack runs (pip install sipvicious)");
        runs.push(cmd);
    }
    for run in runs {
        let out = tokio::time::timeout(Duration::from_secs(120), run.wait_with_output()).await.expect("svcrack ends").expect("svcrack ran");
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(!text.contains("s3cret-operator-1"), "password found: {text}");
    }
}

fn have_sipvicious() -> bool {
    std::process::Command::new("python3").args(["-c", "import sipvicious.svcrack"]).output().is_ok_and(|o| o.status.success())
}

async fn operator_service(slot: u16, extra_env: Vec<(String, String)>) -> TestService {
    let (config, data) = TestService::prepare(&TestOptions { rtp_slot: slot, extra_env, ..Default::default() });
    common::add_operators(&config, &[("op1", "s3cret-operator-1", &[("tributi", 1)])]).await;
    TestService::start_with(config, data).await
}

#[tokio::test]
#[ignore = "needs sipvicious (pip install sipvicious)"]
async fn svcrack_as_shipped_is_dropped_as_a_scanner() {
    assert!(have_sipvicious(), "pip install sipvicious");
    let svc = operator_service(25, Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    svcrack_from_twenty(&svc, dir.path()).await;
    let metrics = svc.http_get("/metrics").await;
    let checked = common::metric(&metrics, "centralino_sip_register_total{result=\"auth_failed\"}");
    assert_eq!(checked, 0.0, "no guess was even checked");
    assert_eq!(common::metric(&metrics, "centralino_sip_bans_total{reason=\"scanner\"}"), 20.0, "every address banned");
    svc.service.shutdown().await;
}

#[tokio::test]
#[ignore = "needs sipvicious (pip install sipvicious)"]
async fn svcrack_from_twenty_addresses_gets_a_handful_of_guesses_checked() {
    assert!(have_sipvicious(), "pip install sipvicious");
    // No scanner list: the guessing throttle alone must hold.
    let env = vec![("CENTRALINO_LIMITS__SCANNER_USER_AGENTS".into(), r#"["not-a-real-agent"]"#.into())];
    let svc = operator_service(26, env).await;
    let dir = tempfile::tempdir().unwrap();
    svcrack_from_twenty(&svc, dir.path()).await;
    let metrics = svc.http_get("/metrics").await;
    let checked = common::metric(&metrics, "centralino_sip_register_total{result=\"auth_failed\"}");
    let refused = common::metric(&metrics, "centralino_sip_register_total{result=\"throttled\"}");
    eprintln!("svcrack ×20: {checked} guesses checked, {refused} refused unchecked");
    // 20 free per user (with the 5 per address): the rest is refused unchecked.
    assert!(checked <= 25.0, "{checked} guesses checked");
    assert!(refused >= 100.0, "the rest were refused unchecked: {refused}");
    svc.service.shutdown().await;
}
