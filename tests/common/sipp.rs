//! Running SIPp (Debian `sip-tester`) against a test service.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::process::Command;

/// A SIPp run's result.
pub struct SippRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// A free UDP port pair base (even) for SIPp's media.
pub fn free_media_port() -> u16 {
    loop {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = s.local_addr().unwrap().port();
        if p.is_multiple_of(2) && p < 65000 && std::net::UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// A free port for SIPp's SIP socket.
pub fn free_sip_port() -> u16 {
    let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = u.local_addr().unwrap().port();
    drop(u);
    p
}

/// A SIPp operator phone: registers with digest, then answers INVITEs out-of-call
/// (`operator_register.xml` + `-oocsf operator_uas.xml`) until `lifetime` ends.
pub fn spawn_operator(
    workdir: &Path,
    target: SocketAddr,
    user: &str,
    password: &str,
    answer_mode: &str,
    talk_ms: u32,
    lifetime: Duration,
) -> (tokio::process::Child, u16) {
    let dir = super::root().join("tests/interop/sipp");
    let port = free_sip_port();
    let refresh_ms = lifetime.as_millis().to_string();
    let talk = talk_ms.to_string();
    let child = Command::new("sipp")
        .arg(target.to_string())
        .arg("-sf")
        .arg(dir.join("operator_register.xml"))
        .arg("-oocsf")
        .arg(dir.join("operator_uas.xml"))
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-bind_local", "-ci", "127.0.0.1", "-nostdin"])
        .args(["-p", &port.to_string(), "-mp", &free_media_port().to_string(), "-m", "1"])
        .args(["-au", user, "-ap", password, "-trace_err"])
        .args(["-key", "op_user", user, "-key", "expires", "600", "-key", "refresh_ms", &refresh_ms])
        .args(["-key", "refreshes", "1", "-key", "unregister", "1", "-key", "answer_mode", answer_mode])
        .args(["-key", "ring_ms", "200", "-key", "talk_ms", &talk])
        .current_dir(workdir)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sipp runs (apt-get install sip-tester)");
    (child, port)
}

/// Runs `sipp` with a scenario from tests/interop/sipp against `target`, in `workdir`.
/// `keys` are `-key NAME VALUE` pairs; `extra` are more SIPp flags.
pub async fn run(
    workdir: &Path,
    target: SocketAddr,
    scenario: &str,
    keys: &[(&str, &str)],
    extra: &[&str],
    limit: Duration,
) -> SippRun {
    let sf = super::root().join("tests/interop/sipp").join(scenario);
    let mut cmd = Command::new("sipp");
    cmd.arg(target.to_string())
        .arg("-sf")
        .arg(&sf)
        .args(["-i", "127.0.0.1", "-mi", "127.0.0.1", "-bind_local", "-ci", "127.0.0.1", "-nostdin"])
        .args(["-p", &free_sip_port().to_string(), "-mp", &free_media_port().to_string()])
        .args(["-trace_err", "-timeout", &format!("{}s", limit.as_secs()), "-timeout_error"]);
    if !extra.contains(&"-s") {
        cmd.args(["-s", "ivr"]);
    }
    for (k, v) in keys {
        cmd.args(["-key", k, v]);
    }
    cmd.args(extra).current_dir(workdir).kill_on_drop(true);
    let out = tokio::time::timeout(limit + Duration::from_secs(10), cmd.output())
        .await
        .expect("sipp finished within its own -timeout")
        .expect("sipp runs (apt-get install sip-tester)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    for entry in std::fs::read_dir(workdir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().ends_with("_errors.log") {
            stderr.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    SippRun { success: out.status.success(), stdout, stderr }
}
