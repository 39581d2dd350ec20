//! Interop with baresip (Debian) as a real softphone: it dials centralino, its recording of
//! what it heard is not silent (the welcome prompt), and a key it sends by RFC 4733 takes
//! the call to the tax queue. Ignored by plain `cargo test`; CI runs it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{TestOptions, TestService};
use tokio::process::Command;

#[tokio::test]
#[ignore = "needs baresip and python3"]
async fn baresip_dials_hears_the_welcome_prompt_and_presses_a_key() {
    let mut svc = TestService::start(TestOptions { rtp_slot: 20, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let interop = common::root().join("tests/interop");
    let sip_port = common::sipp::free_sip_port();
    let ctrl_port = common::free_tcp_port();
    let source = common::root().join("ivr-scripts/prompts/it/arrivederci.wav");
    let mut baresip = Command::new("bash")
        .arg(interop.join("baresip/run_baresip.sh"))
        .args(["caller", &sip_port.to_string(), &ctrl_port.to_string(), "47000-47049"])
        .arg(&source)
        .arg(dir.path())
        .arg("40")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("baresip starts");

    let target = format!("dial sip:ivr@{}", svc.udp());
    let ctrl = Command::new("python3")
        .arg(interop.join("baresip_ctrl.py"))
        .args(["--port", &ctrl_port.to_string(), "--timeout", "30"])
        .args([target.as_str(), "wait CALL_ESTABLISHED", "sleep 4", "sndcode 2", "sleep 3", "hangup", "wait CALL_CLOSED"])
        .output()
        .await
        .expect("python3 runs");
    let ctrl_out = String::from_utf8_lossy(&ctrl.stdout);
    assert!(ctrl.status.success(), "baresip script failed:\n{ctrl_out}\n{}", String::from_utf8_lossy(&ctrl.stderr));

    let record = svc.next_record(Duration::from_secs(10)).await;
    assert_eq!(record.queue.map(|q| q.0).as_deref(), Some("tributi"), "the key reached the menu");
    let _ = baresip.kill().await;

    let heard = decoded_recording(dir.path()).expect("baresip's sndfile dump of what it heard");
    let rms = rms(&heard);
    assert!(rms > 0.01, "the welcome prompt is audible in baresip's recording: RMS {rms}");
    svc.service.shutdown().await;
}

/// The decoded (received) audio baresip's sndfile module wrote.
fn decoded_recording(dir: &Path) -> Option<std::path::PathBuf> {
    std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| {
        let name = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        name.ends_with("-dec.wav")
    })
}

fn rms(path: &Path) -> f64 {
    let mut reader = hound::WavReader::open(path).expect("a WAV file");
    let samples: Vec<f64> = reader.samples::<i16>().filter_map(Result::ok).map(|s| s as f64 / 32768.0).collect();
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| s * s).sum::<f64>() / samples.len() as f64).sqrt()
}
