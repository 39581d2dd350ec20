//! The load benchmark's smoke run (issue 8): `ops/bench/bench.py --quick` against the test
//! build, so the script, its SIPp scenarios and the bench config cannot rot. The figures
//! themselves are not asserted (performance is measured, never asserted in tests); what is
//! asserted is that each part measured something real: every call of the throughput step
//! answered by an operator, every waiting caller queued and sent 50 RTP packets a second,
//! every port back afterwards, and a routing latency for each call when tshark is there.
//!
//! Needs python3 and SIPp (`apt-get install sip-tester`); tshark is optional. Run by CI with
//! `--include-ignored`.

use std::process::Command;

#[test]
#[ignore = "needs python3 and SIPp; run by CI with --include-ignored"]
fn the_benchmark_runs_end_to_end_in_quick_mode() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ops/bench/bench.py"))
        .args(["--quick", "--bin", env!("CARGO_BIN_EXE_centralino")])
        .arg("--json")
        .arg(&json)
        .arg("--markdown")
        .arg(dir.path().join("bench.md"))
        .output()
        .expect("python3 runs");
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "bench.py failed:\n{log}");
    let figures: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();

    let step = &figures["throughput"][0];
    assert_eq!(step["ok"], step["calls"], "every call of the step succeeded:\n{log}");
    assert_eq!(step["answered"].as_f64(), step["calls"].as_f64(), "every call answered by an operator:\n{log}");
    assert!(step["cpu_ms_per_call"].as_f64().unwrap() > 0.0, "CPU measured:\n{log}");

    let wait = &figures["waiting"][0];
    assert_eq!(wait["queued"].as_f64(), wait["callers"].as_f64(), "every caller queued:\n{log}");
    let (pps, expected) = (wait["rtp_pps"].as_f64().unwrap(), wait["expected_pps"].as_f64().unwrap());
    assert!((pps - expected).abs() <= expected * 0.05, "{pps} RTP packets/s sent, {expected} expected:\n{log}");
    assert_eq!(wait["ports_after"].as_f64(), Some(0.0), "every RTP port back:\n{log}");

    let route = &figures["route"];
    if route.get("skipped").is_none() {
        assert!(route["samples"].as_u64().unwrap() >= 5, "routing latency measured:\n{log}");
        assert!(route["p99_ms"].as_f64().unwrap() > 0.0, "{route}");
    }
}
