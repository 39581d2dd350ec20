//! Interop: a baresip caller reaches a baresip operator through centralino. The operator
//! registers with digest auth and auto-answers; each side's recording of what it heard is
//! not silent and carries the other side's prompt (its loudness tracks the source's).
//! Ignored by plain `cargo test`; CI runs it.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use centralino::engine::call::Outcome;
use common::{TestOptions, TestService};
use tokio::process::{Child, Command};

/// Writes a baresip config folder from the shipped template and starts baresip.
fn start_baresip(dir: &Path, name: &str, sip_port: u16, ctrl_port: u16, rtp: &str, source: &Path, account: &str) -> Child {
    let template = std::fs::read_to_string(common::root().join("tests/interop/baresip/config.template")).unwrap();
    let conf = dir.join(format!("{name}-conf"));
    let snd = dir.join(name);
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(&snd).unwrap();
    let config = template
        .replace("@SIP_PORT@", &sip_port.to_string())
        .replace("@CTRL_PORT@", &ctrl_port.to_string())
        .replace("@RTP_PORTS@", rtp)
        .replace("@AUDIO_SOURCE@", &source.display().to_string())
        .replace("@SND_PATH@", &snd.display().to_string());
    std::fs::write(conf.join("config"), config).unwrap();
    std::fs::write(conf.join("accounts"), format!("{account}\n")).unwrap();
    std::fs::write(conf.join("contacts"), "").unwrap();
    Command::new("timeout")
        .args(["60", "baresip", "-f"])
        .arg(&conf)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("baresip runs")
}

fn decoded(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| p.to_string_lossy().ends_with("-dec.wav"))
}

/// Samples as floats, and the sample rate.
fn samples(path: &Path) -> (Vec<f64>, u32) {
    let mut reader = hound::WavReader::open(path).expect("a WAV file");
    let rate = reader.spec().sample_rate;
    let channels = reader.spec().channels as usize;
    let s: Vec<f64> = reader.samples::<i16>().filter_map(Result::ok).step_by(channels).map(|v| v as f64 / 32768.0).collect();
    (s, rate)
}

fn rms_of(s: &[f64]) -> f64 {
    if s.is_empty() {
        0.0
    } else {
        (s.iter().map(|v| v * v).sum::<f64>() / s.len() as f64).sqrt()
    }
}

fn rms(path: &Path) -> f64 {
    rms_of(&samples(path).0)
}

/// 20 ms loudness envelope.
fn envelope(s: &[f64], rate: u32) -> Vec<f64> {
    s.chunks((rate / 50) as usize).map(rms_of).collect()
}

/// The best normalised correlation of `tail` against the looped `source` envelope.
fn best_correlation(tail: &[f64], source: &[f64]) -> f64 {
    let norm = |v: &[f64]| {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let c: Vec<f64> = v.iter().map(|x| x - mean).collect();
        let n = c.iter().map(|x| x * x).sum::<f64>().sqrt();
        c.into_iter().map(|x| if n > 0.0 { x / n } else { 0.0 }).collect::<Vec<f64>>()
    };
    let t = norm(tail);
    (0..source.len())
        .map(|lag| {
            let window: Vec<f64> = (0..tail.len()).map(|i| source[(lag + i) % source.len()]).collect();
            norm(&window).iter().zip(&t).map(|(a, b)| a * b).sum::<f64>()
        })
        .fold(f64::MIN, f64::max)
}

#[tokio::test]
#[ignore = "needs baresip and python3"]
async fn baresip_caller_and_baresip_operator_hear_each_other_through_the_bridge() {
    let opts = TestOptions { rtp_slot: 32, ..Default::default() };
    let (config, data) = TestService::prepare(&opts);
    common::add_operators(&config, &[("op9", "secret9", &[("tributi", 1)])]).await;
    let mut svc = TestService::start_with(config, data).await;
    let dir = tempfile::tempdir().unwrap();
    let prompts = common::root().join("ivr-scripts/prompts/it");

    // The operator's phone says "arrivederci…" (a prompt file) over and over; the caller's
    // says the menu prompt. Each must hear the other's.
    let op_sip = common::sipp::free_sip_port();
    let op_ctrl = common::free_tcp_port();
    let operator_account = format!(
        "<sip:op9@{svc};transport=udp>;auth_pass=secret9;answermode=auto;regint=600;audio_codecs=pcmu,pcma",
        svc = svc.udp()
    );
    let _operator = start_baresip(dir.path(), "operator", op_sip, op_ctrl, "47100-47149", &prompts.join("attesa.wav"), &operator_account);
    for _ in 0..100 {
        if svc.http_get("/api/v1/operators").await.contains("\"registered\":true") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // polling the API: no event to await
    }
    assert!(svc.http_get("/api/v1/operators").await.contains("\"registered\":true"), "baresip registered with digest auth");

    let caller_sip = common::sipp::free_sip_port();
    let caller_ctrl = common::free_tcp_port();
    let caller_account = "\"Cittadino\" <sip:3339876543@127.0.0.1;transport=udp>;regint=0;answermode=manual;audio_codecs=pcma";
    let _caller = start_baresip(dir.path(), "caller", caller_sip, caller_ctrl, "47150-47199", &prompts.join("menu_demografici.wav"), caller_account);
    let target = format!("dial sip:ivr@{}", svc.udp());
    let ctrl = Command::new("python3")
        .arg(common::root().join("tests/interop/baresip_ctrl.py"))
        .args(["--port", &caller_ctrl.to_string(), "--timeout", "40"])
        .args([target.as_str(), "wait CALL_ESTABLISHED", "sleep 2", "sndcode 2", "sleep 12", "hangup", "wait CALL_CLOSED"])
        .output()
        .await
        .unwrap();
    assert!(ctrl.status.success(), "{}", String::from_utf8_lossy(&ctrl.stdout));

    let r = svc.next_record(Duration::from_secs(10)).await;
    assert_eq!((r.outcome, r.operator.as_ref().map(|o| o.0.as_str())), (Outcome::Answered, Some("op9")), "{r:?}");
    assert!(r.talk.is_some_and(|t| t > Duration::from_secs(3)), "{r:?}");

    let heard_by_operator = rms(&decoded(&dir.path().join("operator")).expect("operator recording"));
    let heard_by_caller = rms(&decoded(&dir.path().join("caller")).expect("caller recording"));
    assert!(heard_by_operator > 0.01, "the operator hears the caller: RMS {heard_by_operator}");
    assert!(heard_by_caller > 0.01, "the caller hears prompts and the operator: RMS {heard_by_caller}");

    // The last 3 s the caller heard are the operator's audio (bridged: no prompt, no music):
    // its loudness envelope follows the operator's source prompt.
    let (caller_heard, rate) = samples(&decoded(&dir.path().join("caller")).unwrap());
    let tail = &caller_heard[caller_heard.len().saturating_sub(3 * rate as usize)..];
    let (operator_said, src_rate) = samples(&prompts.join("attesa.wav"));
    let corr = best_correlation(&envelope(tail, rate), &envelope(&operator_said, src_rate));
    assert!(corr > 0.6, "the caller hears the operator's own audio: envelope correlation {corr:.2}");
    // The same check against another prompt stays low: the correlation tells sources apart.
    let (other, other_rate) = samples(&prompts.join("menu_principale.wav"));
    let other_corr = best_correlation(&envelope(tail, rate), &envelope(&other[..other.len().min(5 * other_rate as usize)], other_rate));
    eprintln!("envelope correlation: operator's prompt {corr:.2}, another prompt {other_corr:.2}");
    assert!(other_corr < corr, "{other_corr:.2} vs {corr:.2}");
    svc.service.shutdown().await;
}
