//! The admin HTTP API's access control, end to end: bearer tokens and their scopes, the
//! generated token file, the Host and Origin checks, the JSON content type of mutations, and
//! the refusal to listen off loopback without a configured admin token. Raw HTTP over TCP,
//! as a script or a browser would send it.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use centralino::sip::digest::{self, DigestAlgorithm, QopAuth};
use common::uac::Uac;
use common::{HttpReply, TestOptions, TestService};

const READ_TOKEN: &str = "wallboard-0123456789abcdef";
const ACTIONS: [&str; 4] = ["pause", "resume", "login", "logout"];

/// A request with the listener's address as Host, plus `headers`.
async fn request(svc: &TestService, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> HttpReply {
    let host = svc.service.http.to_string();
    let mut all = vec![("Host", host.as_str())];
    all.extend_from_slice(headers);
    common::http_request(svc.service.http, method, path, &all, body).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

fn with_read_token(rtp_slot: u16) -> TestOptions {
    TestOptions {
        rtp_slot,
        extra_env: vec![("CENTRALINO_HTTP__READ_TOKENS".into(), format!(r#"["{READ_TOKEN}"]"#))],
        ..Default::default()
    }
}

#[tokio::test]
async fn without_a_valid_token_every_read_and_mutation_is_401_with_a_bearer_challenge() {
    let svc = TestService::start(TestOptions { rtp_slot: 50, ..Default::default() }).await;
    let wrong = bearer("not-the-token-0123456789");
    for path in ["/api/v1/calls", "/api/v1/operators"] {
        for headers in [vec![], vec![("Authorization", wrong.as_str())]] {
            let reply = request(&svc, "GET", path, &headers, "").await;
            assert_eq!(reply.status, 401, "GET {path} {headers:?}: {reply:?}");
            assert!(reply.header("WWW-Authenticate").is_some_and(|v| v.starts_with("Bearer")), "{reply:?}");
            assert!(reply.body.contains("\"error\""), "a JSON error: {}", reply.body);
        }
    }
    for action in ACTIONS {
        let path = format!("/api/v1/operators/op1/{action}");
        for headers in [vec![JSON], vec![JSON, ("Authorization", wrong.as_str())]] {
            let reply = request(&svc, "POST", &path, &headers, "").await;
            assert_eq!(reply.status, 401, "POST {path} {headers:?}: {reply:?}");
            assert!(reply.header("WWW-Authenticate").is_some_and(|v| v.starts_with("Bearer")), "{reply:?}");
        }
    }
    svc.service.shutdown().await;
}

#[tokio::test]
async fn a_read_token_sees_calls_with_masked_numbers_and_cannot_change_anything() {
    let (config, data) = TestService::prepare(&with_read_token(51));
    common::add_operators(&config, &[("op1", "s1", &[("tributi", 1)])]).await;
    let svc = TestService::start_with(config, data).await;
    let mut caller = Uac::udp(svc.udp()).await;
    assert_eq!(caller.from_user, "3331234567");
    let offer = caller.sdp_offer("0", "");
    assert_eq!(caller.call(&offer).await.status(), Some(200));

    let read = bearer(READ_TOKEN);
    let calls = request(&svc, "GET", "/api/v1/calls", &[("Authorization", &read)], "").await;
    assert_eq!(calls.status, 200, "{calls:?}");
    assert!(calls.body.contains(r#""caller":"*******567""#), "{}", calls.body);
    assert!(!calls.body.contains("3331234567"), "{}", calls.body);
    // The admin scope sees the number in full.
    assert!(svc.http_get("/api/v1/calls").await.contains(r#""caller":"3331234567""#));

    let ops = request(&svc, "GET", "/api/v1/operators", &[("Authorization", &read)], "").await;
    assert_eq!(ops.status, 200, "{ops:?}");
    assert!(ops.body.contains(r#""username":"op1""#), "{}", ops.body);
    for action in ACTIONS {
        let path = format!("/api/v1/operators/op1/{action}");
        let reply = request(&svc, "POST", &path, &[JSON, ("Authorization", &read)], "").await;
        assert_eq!(reply.status, 403, "POST {path}: {reply:?}");
        assert!(reply.body.contains("admin token"), "{}", reply.body);
    }
    assert!(svc.http_get("/api/v1/operators").await.contains(r#""logged_in":true"#), "the logout was refused");
    caller.hang_up().await;
    svc.service.shutdown().await;
}

#[tokio::test]
async fn the_admin_token_applies_every_action_and_a_mutation_needs_the_json_content_type() {
    let (config, data) = TestService::prepare(&TestOptions { rtp_slot: 52, ..Default::default() });
    common::add_operators(&config, &[("op1", "s1", &[("tributi", 1)])]).await;
    let svc = TestService::start_with(config, data).await;
    let _phone = register(svc.udp(), "op1", "s1").await;
    common::wait_registered(&svc, 1).await;
    let state = || async { svc.http_get("/api/v1/operators").await };

    let (status, body) = svc.http_post("/api/v1/operators/op1/pause", r#"{"reason":"riunione"}"#).await;
    assert_eq!(status, 200, "{body}");
    let ops = state().await;
    assert!(ops.contains(r#""state":"paused""#) && ops.contains("riunione"), "{ops}");
    assert_eq!(svc.http_post("/api/v1/operators/op1/resume", "").await.0, 200);
    assert!(state().await.contains(r#""state":"available""#));
    assert_eq!(svc.http_post("/api/v1/operators/op1/logout", "").await.0, 200);
    let ops = state().await;
    assert!(ops.contains(r#""state":"offline""#) && ops.contains(r#""logged_in":false"#), "{ops}");
    assert_eq!(svc.http_post("/api/v1/operators/op1/login", "").await.0, 200);
    assert!(state().await.contains(r#""state":"available""#));
    // The body of a pause stays optional; a malformed one is a clear 400.
    assert_eq!(svc.http_post("/api/v1/operators/op1/pause", "").await.0, 200);
    assert!(state().await.contains(r#""reason":"pausa""#));
    let (status, body) = svc.http_post("/api/v1/operators/op1/resume", "{not json").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    assert_eq!(svc.http_post("/api/v1/operators/op1/resume", "").await.0, 200);

    // Without the JSON content type, body-less or not: 415, and nothing happens.
    let admin = bearer(&svc.service.admin_token);
    let reply = request(&svc, "POST", "/api/v1/operators/op1/logout", &[("Authorization", &admin)], "").await;
    assert_eq!(reply.status, 415, "{reply:?}");
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let reply = request(&svc, "POST", "/api/v1/operators/op1/pause", &[("Authorization", &admin), form], "reason=x").await;
    assert_eq!(reply.status, 415, "{reply:?}");
    assert!(state().await.contains(r#""state":"available""#));
    svc.service.shutdown().await;
}

#[tokio::test]
async fn a_cross_origin_mutation_and_a_foreign_host_are_refused() {
    let opts = TestOptions {
        rtp_slot: 53,
        extra_env: vec![("CENTRALINO_HTTP__ALLOWED_HOSTS".into(), r#"["centralino.example.org"]"#.into())],
        ..Default::default()
    };
    let (config, data) = TestService::prepare(&opts);
    common::add_operators(&config, &[("op1", "s1", &[("tributi", 1)])]).await;
    let svc = TestService::start_with(config, data).await;
    let admin = bearer(&svc.service.admin_token);
    let auth = ("Authorization", admin.as_str());

    // A page on another site POSTing with the token it somehow has: still refused.
    let evil = ("Origin", "http://evil.example");
    let reply = request(&svc, "POST", "/api/v1/operators/op1/logout", &[auth, JSON, evil], "").await;
    assert_eq!(reply.status, 403, "{reply:?}");
    assert!(reply.body.contains("cross-origin"), "{}", reply.body);
    assert!(svc.http_get("/api/v1/operators").await.contains(r#""logged_in":true"#));
    let own = format!("http://{}", svc.service.http);
    let reply = request(&svc, "POST", "/api/v1/operators/op1/logout", &[auth, JSON, ("Origin", &own)], "").await;
    assert_eq!(reply.status, 200, "same origin: {reply:?}");

    // DNS rebinding: the browser sends the attacker's name as Host.
    for path in ["/healthz", "/metrics", "/api/v1/calls"] {
        let reply = common::http_request(svc.service.http, "GET", path, &[("Host", "evil.example"), auth], "").await;
        assert_eq!(reply.status, 403, "{path}: {reply:?}");
    }
    for host in ["localhost:9464", "centralino.example.org", "[::1]:9464"] {
        let reply = common::http_request(svc.service.http, "GET", "/api/v1/calls", &[("Host", host), auth], "").await;
        assert_eq!(reply.status, 200, "{host}: {reply:?}");
    }
    svc.service.shutdown().await;
}

#[tokio::test]
async fn health_and_metrics_are_open_by_default_and_metrics_can_require_a_token() {
    let svc = TestService::start(TestOptions { rtp_slot: 54, ..Default::default() }).await;
    let health = request(&svc, "GET", "/healthz", &[], "").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let metrics = request(&svc, "GET", "/metrics", &[], "").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("centralino_build_info"), "{}", metrics.body);
    svc.service.shutdown().await;

    let mut opts = with_read_token(55);
    opts.extra_env.push(("CENTRALINO_HTTP__PUBLIC_METRICS".into(), "false".into()));
    let svc = TestService::start(opts).await;
    assert_eq!(request(&svc, "GET", "/metrics", &[], "").await.status, 401);
    let read = bearer(READ_TOKEN);
    let metrics = request(&svc, "GET", "/metrics", &[("Authorization", &read)], "").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("centralino_build_info"));
    assert_eq!(request(&svc, "GET", "/healthz", &[], "").await.status, 200, "health stays open");
    svc.service.shutdown().await;
}

#[tokio::test]
async fn listening_off_loopback_without_an_admin_token_does_not_start() {
    let (mut config, data) = TestService::prepare(&TestOptions { rtp_slot: 56, ..Default::default() });
    config.http.listen = "0.0.0.0:0".into();
    let e = centralino::app::start(config.clone()).await.err().expect("refused");
    let text = format!("{e:#}");
    assert!(text.contains("http.admin_tokens") && text.contains("0.0.0.0:0"), "{text}");
    assert!(!config.http.token_file.exists(), "refused before anything was made");

    // The binary: the same refusal from the config's validation, for `serve` and `check`.
    let binary_env = [
        ("CENTRALINO_HTTP__LISTEN", "0.0.0.0:0".to_string()),
        ("CENTRALINO_SIP__LISTEN", r#"["udp:127.0.0.1:0"]"#.to_string()),
        ("CENTRALINO_DATABASE__URL", config.database.url.clone()),
        ("CENTRALINO_HTTP__TOKEN_FILE", config.http.token_file.display().to_string()),
        ("CENTRALINO_IVR__SCRIPTS", config.ivr.scripts.display().to_string()),
    ];
    for command in ["serve", "check"] {
        let out = run_binary(&[command], &binary_env).await;
        assert!(!out.status.success(), "{command} refuses");
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(said.contains("http.listen") && said.contains("http.admin_tokens"), "{command}: {said}");
    }
    // With an admin token configured, check is satisfied.
    let mut with_token = binary_env.to_vec();
    with_token.push(("CENTRALINO_HTTP__ADMIN_TOKENS", r#"["remote-admin-0123456789"]"#.to_string()));
    let out = run_binary(&["check"], &with_token).await;
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    drop(data);
}

#[tokio::test]
async fn the_generated_token_file_is_private_reused_and_printed_by_admin_token() {
    let (config, data) = TestService::prepare(&TestOptions { rtp_slot: 57, ..Default::default() });
    let env = [("CENTRALINO_HTTP__TOKEN_FILE", config.http.token_file.display().to_string())];
    let out = run_binary(&["admin-token"], &env).await;
    assert!(!out.status.success(), "no token yet");
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist yet"), "{out:?}");

    let svc = TestService::start_with(config, data).await;
    let token = svc.service.admin_token.clone();
    let path = svc.config.http.token_file.clone();
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), token);
    assert_eq!(token.len(), 64, "32 random bytes, hex");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let out = run_binary(&["admin-token"], &env).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), token);

    let TestService { service, config, data, .. } = svc;
    service.shutdown().await;
    let svc = TestService::start_with(config, data).await;
    assert_eq!(svc.service.admin_token, token, "reused at the second start");
    assert!(svc.http_get("/api/v1/operators").await.contains("\"operators\""));

    // A configured admin token comes first.
    let mut configured = env.to_vec();
    configured.push(("CENTRALINO_HTTP__ADMIN_TOKENS", r#"["configured-0123456789abcdef"]"#.to_string()));
    let out = run_binary(&["admin-token"], &configured).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "configured-0123456789abcdef");
    svc.service.shutdown().await;
}

/// Runs the centralino binary to completion (bounded: a regression must not hang the suite).
async fn run_binary(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_centralino"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("CENTRALINO_SCHEDULE__HOLIDAYS", "none")
        .env("CENTRALINO_SCHEDULE__EXTRA_HOLIDAYS", "[]")
        .env_remove("CENTRALINO_CONFIG")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), child).await.expect("the binary finished").expect("the binary runs")
}

/// Registers `user` from a raw SIP phone (REGISTER, 401 digest challenge, REGISTER with
/// the answer); the phone must live as long as the registration is needed.
async fn register(service: SocketAddr, user: &str, password: &str) -> Uac {
    let mut phone = Uac::udp(service).await;
    phone.from_user = user.into();
    phone.to_user = user.into();
    let first = phone.request("REGISTER", "reg1", "Expires: 300\r\n", "", "");
    phone.send_raw(&first).await;
    let challenge = phone.expect(Duration::from_secs(5), |m| m.status() == Some(401)).await;
    let www = challenge.header("WWW-Authenticate").expect("a digest challenge").to_string();
    let param = |name: &str| {
        www.split(',')
            .filter_map(|p| p.trim().trim_start_matches("Digest ").split_once('='))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let (realm, nonce) = (param("realm"), param("nonce"));
    let uri = format!("sip:{user}@{service}");
    let ha1 = digest::ha1(DigestAlgorithm::Md5, user, &realm, password);
    let qop = QopAuth { nc: "00000001", cnonce: "c0ffee" };
    let response = digest::expected_response(DigestAlgorithm::Md5, &ha1, "REGISTER", &uri, &nonce, Some(qop));
    let authorization = format!(
        "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\"\r\nExpires: 300\r\n"
    );
    phone.cseq += 1;
    let second = phone.request("REGISTER", "reg2", &authorization, "", "");
    phone.send_raw(&second).await;
    let ok = phone.expect(Duration::from_secs(5), |m| m.status().is_some_and(|s| s >= 200)).await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    phone
}
