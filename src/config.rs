//! Typed configuration: embedded defaults, then a TOML file, then `CENTRALINO_*` variables.
//!
//! Owns: the `Config` tree, its parsing and its validation (`validate`, shared by `check`).
//! Must not touch: sockets, the database, the engine's runtime state.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::engine::schedule::ScheduleSpec;

/// The commented default configuration, printed by `centralino default-config`.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

/// Prefix of environment overrides: `CENTRALINO_<SECTION>__<KEY>`.
const ENV_PREFIX: &str = "CENTRALINO_";

/// The top-level keys an environment override may start with.
const CONFIG_SECTIONS: [&str; 8] = ["node", "sip", "media", "limits", "http", "database", "ivr", "schedule"];

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's name, part of call ids and records.
    pub node: String,
    pub sip: SipConfig,
    pub media: MediaConfig,
    pub limits: LimitsConfig,
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub ivr: IvrConfig,
    pub schedule: ScheduleSpec,
    #[serde(rename = "queue")]
    pub queues: Vec<QueueConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    pub listen: Vec<String>,
    pub domain: String,
    pub advertise_ip: String,
    pub user_agent: String,
    pub answer_after_ms: u64,
    pub digest_algorithms: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    pub rtp_ports: String,
    pub rtp_timeout_secs: u64,
}

/// What the SIP edge allows each kind of source (`[limits]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub trunk_sources: Vec<String>,
    pub max_calls: usize,
    pub trunk_max_calls: usize,
    pub trunk_invites_per_sec: f64,
    pub trunk_invite_burst: f64,
    pub operator_max_calls: usize,
    pub operator_invites_per_sec: f64,
    pub operator_invite_burst: f64,
    pub unknown_max_calls: usize,
    pub unknown_invites_per_sec: f64,
    pub unknown_invite_burst: f64,
    pub ban_after_refusals: usize,
    pub ban_window_secs: u64,
    pub ban_secs: u64,
    pub retry_after_secs: u64,
    pub scanner_user_agents: Vec<String>,
}

impl LimitsConfig {
    /// The edge's settings; `rtp_ports` is the size of the RTP pool, which the automatic
    /// service ceiling stays below (valid after `validate`).
    pub fn edge(&self, rtp_ports: usize) -> crate::sip::edge::EdgeSettings {
        use crate::sip::admission::{AdmissionConfig, SourceLimits};
        use std::time::Duration;
        // A caller's leg takes a port and an answered call a second one for the operator:
        // a tenth of the pool stays for operators' legs (far more than an office has).
        let max_calls = if self.max_calls > 0 { self.max_calls } else { (rtp_ports * 9 / 10).max(1) };
        crate::sip::edge::EdgeSettings {
            admission: AdmissionConfig {
                max_calls,
                trunk: SourceLimits {
                    max_calls: self.trunk_max_calls,
                    invites_per_sec: self.trunk_invites_per_sec,
                    invite_burst: self.trunk_invite_burst,
                },
                operator: SourceLimits {
                    max_calls: self.operator_max_calls,
                    invites_per_sec: self.operator_invites_per_sec,
                    invite_burst: self.operator_invite_burst,
                },
                unknown: SourceLimits {
                    max_calls: self.unknown_max_calls,
                    invites_per_sec: self.unknown_invites_per_sec,
                    invite_burst: self.unknown_invite_burst,
                },
                ban_after: self.ban_after_refusals,
                ban_window: Duration::from_secs(self.ban_window_secs),
                retry_after: Duration::from_secs(self.retry_after_secs),
                ..AdmissionConfig::default()
            },
            trunk_sources: self.trunk_sources.iter().filter_map(|s| parse_net(s).ok()).collect(),
            scanner_agents: self.scanner_user_agents.iter().map(|s| s.to_ascii_lowercase()).collect(),
            ban_duration: Duration::from_secs(self.ban_secs),
        }
    }

    fn validate(&self, problems: &mut Vec<(String, String)>) {
        for (i, s) in self.trunk_sources.iter().enumerate() {
            if let Err(m) = parse_net(s) {
                problems.push((format!("limits.trunk_sources[{i}]"), m));
            }
        }
        for (key, rate, burst) in [
            ("trunk", self.trunk_invites_per_sec, self.trunk_invite_burst),
            ("operator", self.operator_invites_per_sec, self.operator_invite_burst),
            ("unknown", self.unknown_invites_per_sec, self.unknown_invite_burst),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                problems.push((format!("limits.{key}_invites_per_sec"), "a rate above 0".into()));
            }
            if !(burst.is_finite() && burst >= 1.0) {
                problems.push((format!("limits.{key}_invite_burst"), "at least 1".into()));
            }
        }
        if self.ban_secs == 0 && self.ban_after_refusals > 0 {
            problems.push(("limits.ban_secs".into(), "above 0 (or ban_after_refusals = 0 to never ban)".into()));
        }
        if self.scanner_user_agents.iter().any(|s| s.trim().is_empty()) {
            problems.push(("limits.scanner_user_agents".into(), "an empty entry would match every User-Agent".into()));
        }
    }
}

/// An IP address or a CIDR network, e.g. `203.0.113.7` or `203.0.113.0/24`.
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(ip));
    }
    s.parse::<ipnet::IpNet>().map_err(|_| format!("{s:?} is not an IP address or CIDR network (e.g. 203.0.113.0/24)"))
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: String,
    /// Bearer tokens of the `admin` scope: everything, mutations included.
    pub admin_tokens: Vec<String>,
    /// Bearer tokens of the `read` scope: `GET /api/v1/*` with callers' numbers masked.
    pub read_tokens: Vec<String>,
    /// Where `serve` keeps the admin token it generates when `admin_tokens` is empty.
    pub token_file: PathBuf,
    /// Whether `/metrics` is served without a token.
    pub public_metrics: bool,
    /// Host names accepted in the `Host` header besides IP literals and `localhost`.
    pub allowed_hosts: Vec<String>,
}

/// Shortest token accepted in `admin_tokens`/`read_tokens`: a guessable token is no lock.
pub const MIN_TOKEN_CHARS: usize = 16;

impl HttpConfig {
    /// Every problem of the `[http]` section as `(key path, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.listen.parse::<SocketAddr>().is_err() {
            problems.push(("http.listen".into(), "expected IP:PORT".into()));
        }
        if let Some(m) = self.exposure_problem() {
            problems.push(("http.listen".into(), m));
        }
        for (key, tokens) in [("admin_tokens", &self.admin_tokens), ("read_tokens", &self.read_tokens)] {
            for (i, t) in tokens.iter().enumerate() {
                if t.chars().count() < MIN_TOKEN_CHARS || !t.chars().all(|c| c.is_ascii_graphic()) {
                    problems.push((
                        format!("http.{key}[{i}]"),
                        format!("a token is at least {MIN_TOKEN_CHARS} printable ASCII characters without spaces (e.g. `openssl rand -hex 32`)"),
                    ));
                }
            }
        }
        if self.read_tokens.iter().any(|t| self.admin_tokens.contains(t)) {
            problems.push(("http.read_tokens".into(), "a token is both in admin_tokens and read_tokens: pick one scope".into()));
        }
        if self.token_file.as_os_str().is_empty() {
            problems.push(("http.token_file".into(), "a path is needed (where the generated admin token is kept)".into()));
        }
        for (i, h) in self.allowed_hosts.iter().enumerate() {
            let ok = !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !ok {
                problems.push((format!("http.allowed_hosts[{i}]"), format!("{h:?}: a host name without scheme or port, e.g. \"centralino.example.org\"")));
            }
        }
        problems
    }

    /// Why the admin API must not start as configured: it listens off loopback and only the
    /// generated token protects it (that token is meant for the local command line, and a
    /// file on this host is no secret shared with the remote clients who need one).
    pub fn exposure_problem(&self) -> Option<String> {
        let addr: SocketAddr = self.listen.parse().ok()?;
        if addr.ip().is_loopback() || !self.admin_tokens.is_empty() {
            return None;
        }
        Some(format!(
            "{addr} is not a loopback address and http.admin_tokens is empty: set http.admin_tokens \
             (e.g. CENTRALINO_HTTP__ADMIN_TOKENS='[\"<output of openssl rand -hex 32>\"]'), \
             or listen on 127.0.0.1"
        ))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub retention_days: u32,
    pub hash_callers: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IvrConfig {
    pub scripts: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub name: String,
    /// What an operator's phone shows, e.g. `Tributi`.
    pub theme: String,
    /// The desk's own hours, when they differ from the office's.
    #[serde(default)]
    pub hours: Option<ScheduleSpec>,
    /// longest-idle, round-robin, fewest-calls, least-talk-time, ring-all, linear.
    #[serde(default = "default_strategy")]
    pub strategy: String,
    /// Seconds an operator's phone rings before the next one is tried.
    #[serde(default = "default_ring_timeout")]
    pub ring_timeout_secs: u64,
    /// Seconds before offering again after a ring-no-answer or a refusal.
    #[serde(default = "default_retry_delay")]
    pub retry_delay_secs: u64,
    /// Seconds of wrap-up after each call before the operator is available again.
    #[serde(default = "default_wrap_up")]
    pub wrap_up_secs: u64,
    /// Longest wait in seconds (0: no limit).
    #[serde(default)]
    pub max_wait_secs: u64,
    /// Where callers go at the max wait.
    #[serde(default)]
    pub overflow: Option<String>,
    /// The service-level threshold in seconds (answered within it counts as on time).
    #[serde(default = "default_service_level")]
    pub service_level_secs: u64,
    /// Seconds an English-speaking caller waits for an English-speaking operator before anyone may take the call.
    #[serde(default = "default_language_wait")]
    pub language_wait_secs: u64,
    /// Higher goes first when operators serve several queues.
    #[serde(default)]
    pub priority: i32,
    /// Consecutive unanswered offers before the operator is paused ("no answer"); 0 never.
    #[serde(default = "default_auto_pause")]
    pub auto_pause_after: u32,
    /// Most callers waiting at once (0: no limit); more go to `overflow` (or a message).
    /// Bounded by default: a queue is not a place to park an unlimited number of calls.
    #[serde(default = "default_max_callers")]
    pub max_callers: usize,
    /// A caller who arrives while no operator of the queue is logged in: `join`, `overflow`
    /// or `message`.
    #[serde(default = "default_no_operators")]
    pub when_no_operators: String,
    /// A key that takes a waiting caller out of the queue (e.g. "#"); "" for none.
    #[serde(default)]
    pub exit_key: String,
    /// Where the exit key goes: `menu` (the main menu) or `overflow`.
    #[serde(default = "default_exit_to")]
    pub exit_to: String,
    /// Seconds between announcements while waiting (0: only the one on entering).
    #[serde(default = "default_announce_interval")]
    pub announce_interval_secs: u64,
    /// Say the caller's position.
    #[serde(default = "default_true")]
    pub announce_position: bool,
    /// Say the expected wait (when it can be estimated).
    #[serde(default = "default_true")]
    pub announce_wait: bool,
    /// Prompts played in turn between position updates.
    #[serde(default = "default_info_prompts")]
    pub info_prompts: Vec<String>,
    /// Talk time assumed for estimates until enough calls were measured (0: say no wait until then).
    #[serde(default)]
    pub expected_talk_secs: u64,
}

fn default_max_callers() -> usize {
    250
}
fn default_no_operators() -> String {
    "join".into()
}
fn default_exit_to() -> String {
    "menu".into()
}
fn default_announce_interval() -> u64 {
    45
}
fn default_true() -> bool {
    true
}
fn default_info_prompts() -> Vec<String> {
    vec!["servizi_online".into()]
}

fn default_strategy() -> String {
    "longest-idle".into()
}
fn default_ring_timeout() -> u64 {
    20
}
fn default_retry_delay() -> u64 {
    2
}
fn default_wrap_up() -> u64 {
    10
}
fn default_service_level() -> u64 {
    20
}
fn default_language_wait() -> u64 {
    30
}
fn default_auto_pause() -> u32 {
    3
}

impl QueueConfig {
    /// The engine's view of this queue (valid after `validate`).
    pub fn setup(&self) -> Result<crate::engine::QueueSetup, String> {
        use std::time::Duration;
        let mut q = crate::engine::QueueSetup::new(crate::engine::ids::QueueName(self.name.clone()));
        q.theme = self.theme.clone();
        q.hours = match &self.hours {
            Some(spec) => Some(spec.compile().map_err(|e| e.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))?),
            None => None,
        };
        q.strategy = self.strategy.parse().map_err(|_| format!("unknown strategy {:?}", self.strategy))?;
        q.ring_timeout = Duration::from_secs(self.ring_timeout_secs);
        q.retry_delay = Duration::from_secs(self.retry_delay_secs);
        q.wrap_up = Duration::from_secs(self.wrap_up_secs);
        q.max_wait = (self.max_wait_secs > 0).then(|| Duration::from_secs(self.max_wait_secs));
        q.overflow = self.overflow.clone().map(crate::engine::ids::QueueName);
        q.service_level = Duration::from_secs(self.service_level_secs);
        q.language_wait = Duration::from_secs(self.language_wait_secs);
        q.priority = self.priority;
        q.auto_pause_after = self.auto_pause_after;
        q.max_callers = (self.max_callers > 0).then_some(self.max_callers);
        q.when_no_operators = self.when_no_operators.parse().map_err(|_| format!("when_no_operators: {:?} (join, overflow, message)", self.when_no_operators))?;
        q.exit_key = match self.exit_key.as_str() {
            "" => None,
            k => Some(k.chars().next().and_then(crate::engine::ids::DtmfDigit::from_char).filter(|_| k.chars().count() == 1).ok_or_else(|| format!("exit_key: {k:?} is not one key"))?),
        };
        q.exit_to = self.exit_to.parse().map_err(|_| format!("exit_to: {:?} (menu, overflow)", self.exit_to))?;
        q.announce_interval = (self.announce_interval_secs > 0).then(|| Duration::from_secs(self.announce_interval_secs));
        q.announce_position = self.announce_position;
        q.announce_wait = self.announce_wait;
        q.info_prompts = self.info_prompts.clone();
        q.expected_talk = (self.expected_talk_secs > 0).then(|| Duration::from_secs(self.expected_talk_secs));
        Ok(q)
    }
}

/// A SIP listening address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listen {
    Udp(SocketAddr),
    Tcp(SocketAddr),
}

/// Why a configuration cannot be used. Each message names the key, and the line when known.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}:{line}: {message}")]
    Invalid { file: String, line: usize, message: String },
}

impl Config {
    /// Loads the defaults, the optional file and the environment overrides.
    pub fn load(file: Option<&Path>) -> Result<Config, Vec<ConfigError>> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Config::load_with_env(file, &env)
    }

    /// As [`Config::load`], with the environment passed in (tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Config, Vec<ConfigError>> {
        let mut tree: toml::Table = DEFAULT_CONFIG
            .parse()
            .expect("the embedded default config is valid TOML (tested)");
        let (file_name, text) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| {
                    vec![ConfigError::Read { file: path.display().to_string(), source }]
                })?;
                let overlay: toml::Table = text.parse().map_err(|e: toml::de::Error| {
                    vec![invalid_at_span(&path.display().to_string(), &text, e.span(), e.message())]
                })?;
                merge(&mut tree, overlay);
                (path.display().to_string(), text)
            }
            None => ("<defaults>".to_string(), DEFAULT_CONFIG.to_string()),
        };
        apply_env(&mut tree, env).map_err(|m| {
            vec![ConfigError::Invalid { file: "<environment>".into(), line: 0, message: m }]
        })?;
        let config: Config = toml::Value::Table(tree).try_into().map_err(|e: toml::de::Error| {
            vec![ConfigError::Invalid {
                file: file_name.clone(),
                line: 0,
                message: e.message().to_string(),
            }]
        })?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems
                .into_iter()
                .map(|(key, message)| ConfigError::Invalid {
                    file: file_name.clone(),
                    line: line_of_key(&text, &key),
                    message: format!("{key}: {message}"),
                })
                .collect())
        }
    }

    /// Every problem as `(key path, message)`; empty when the config is usable.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if self.sip.listen.is_empty() {
            problems.push(("sip.listen".into(), "at least one address is needed".into()));
        }
        for (i, l) in self.sip.listen.iter().enumerate() {
            if let Err(m) = parse_listen(l) {
                problems.push((format!("sip.listen[{i}]"), m));
            }
        }
        if !self.sip.advertise_ip.is_empty()
            && self.sip.advertise_ip.parse::<std::net::IpAddr>().is_err()
        {
            problems.push(("sip.advertise_ip".into(), "not an IP address".into()));
        }
        if self.sip.digest_algorithms.is_empty() {
            problems.push(("sip.digest_algorithms".into(), "at least one of MD5, SHA-256".into()));
        }
        for a in &self.sip.digest_algorithms {
            if crate::sip::digest::DigestAlgorithm::from_token(a).is_none() {
                problems.push(("sip.digest_algorithms".into(), format!("unknown algorithm {a:?} (MD5, SHA-256)")));
            }
        }
        if let Err(m) = parse_port_range(&self.media.rtp_ports) {
            problems.push(("media.rtp_ports".into(), m));
        }
        if self.sip.user_agent.chars().any(char::is_control) || self.sip.user_agent.len() > 128 {
            problems.push(("sip.user_agent".into(), "up to 128 characters, no control characters (it is written into SIP headers)".into()));
        }
        self.limits.validate(&mut problems);
        problems.extend(self.http.problems());
        if self.node.is_empty() || !self.node.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            problems.push(("node".into(), "use letters, digits and '-' only".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, q) in self.queues.iter().enumerate() {
            if !seen.insert(q.name.clone()) {
                problems.push((format!("queue[{i}].name"), format!("duplicate queue {:?}", q.name)));
            }
        }
        for (i, q) in self.queues.iter().enumerate() {
            if q.strategy.parse::<crate::engine::Strategy>().is_err() {
                problems.push((format!("queue[{i}].strategy"), format!("unknown strategy {:?} (longest-idle, round-robin, fewest-calls, least-talk-time, ring-all, linear)", q.strategy)));
            }
            // The strategy and the hours are reported below with their own keys; the rest of
            // the queue's settings are checked by building its engine view.
            let hours_ok = q.hours.as_ref().is_none_or(|h| h.compile().is_ok());
            if hours_ok && q.strategy.parse::<crate::engine::Strategy>().is_ok() {
                if let Err(m) = q.setup() {
                    problems.push((format!("queue[{i}]"), m));
                }
            }
            if q.ring_timeout_secs == 0 {
                problems.push((format!("queue[{i}].ring_timeout_secs"), "must be at least 1".into()));
            }
            if let Some(o) = &q.overflow {
                if !self.queues.iter().any(|x| &x.name == o) {
                    problems.push((format!("queue[{i}].overflow"), format!("no queue named {o:?}")));
                }
            }
            if let Some(Err(errors)) = q.hours.as_ref().map(ScheduleSpec::compile) {
                for e in errors {
                    problems.push((format!("queue[{i}].hours.{}", e.field), e.message));
                }
            }
        }
        if let Err(errors) = self.schedule.compile() {
            for e in errors {
                problems.push((format!("schedule.{}", e.field), e.message));
            }
        }
        problems
    }

    /// The parsed SIP listening addresses (valid after `validate`).
    pub fn sip_listen(&self) -> Vec<Listen> {
        self.sip.listen.iter().filter_map(|l| parse_listen(l).ok()).collect()
    }

    /// The RTP port range (valid after `validate`).
    pub fn rtp_ports(&self) -> RangeInclusive<u16> {
        parse_port_range(&self.media.rtp_ports).unwrap_or(20000..=29999)
    }
}

fn parse_listen(text: &str) -> Result<Listen, String> {
    let (transport, addr) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected udp:IP:PORT or tcp:IP:PORT"))?;
    let addr: SocketAddr = addr.parse().map_err(|_| format!("{text:?}: bad IP:PORT"))?;
    match transport {
        "udp" => Ok(Listen::Udp(addr)),
        "tcp" => Ok(Listen::Tcp(addr)),
        other => Err(format!("{text:?}: unknown transport {other:?} (udp or tcp)")),
    }
}

fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (lo, hi) = text.split_once('-').ok_or("expected LOW-HIGH, e.g. 20000-29999")?;
    let lo: u16 = lo.trim().parse().map_err(|_| "bad low port")?;
    let hi: u16 = hi.trim().parse().map_err(|_| "bad high port")?;
    if lo == 0 || lo >= hi {
        return Err("the range must be LOW-HIGH with 0 < LOW < HIGH".into());
    }
    Ok(lo..=hi)
}

/// Deep-merges `overlay` into `base`: tables merge, everything else (arrays too) replaces.
fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// Applies `CENTRALINO_SECTION__KEY=value`: the value is read as TOML when it parses
/// (numbers, arrays, booleans), else as a plain string.
fn apply_env(tree: &mut toml::Table, env: &[(String, String)]) -> Result<(), String> {
    for (name, raw) in env {
        let Some(path) = name.strip_prefix(ENV_PREFIX) else { continue };
        let keys: Vec<String> = path.split("__").map(|k| k.to_ascii_lowercase()).collect();
        // Other CENTRALINO_* variables belong to the command line (CENTRALINO_CONFIG,
        // CENTRALINO_OPERATOR_PASSWORD) or to tests (CENTRALINO_TEST_…), not to the config.
        if !CONFIG_SECTIONS.contains(&keys[0].as_str()) {
            continue;
        }
        if keys.iter().any(|k| k.is_empty()) {
            return Err(format!("{name}: empty key segment"));
        }
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let mut table = &mut *tree;
        for key in &keys[..keys.len() - 1] {
            let entry = table
                .entry(key.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry
                .as_table_mut()
                .ok_or_else(|| format!("{name}: {key} is not a section"))?;
        }
        table.insert(keys[keys.len() - 1].clone(), value);
    }
    Ok(())
}

fn invalid_at_span(
    file: &str,
    text: &str,
    span: Option<std::ops::Range<usize>>,
    message: &str,
) -> ConfigError {
    let line = span.map(|s| line_at_offset(text, s.start)).unwrap_or(0);
    ConfigError::Invalid { file: file.to_string(), line, message: message.to_string() }
}

/// 1-based line of a byte offset.
pub fn line_at_offset(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Best-effort line of a key path like `schedule.monday[1]` in the file's text: the line of
/// the last key name that appears after its section header. 0 when not found.
fn line_of_key(text: &str, key: &str) -> usize {
    let mut parts = key.split('.');
    let section = parts.next().unwrap_or_default();
    let leaf = key.rsplit('.').next().unwrap_or(key);
    let leaf = leaf.split('[').next().unwrap_or(leaf);
    let header = format!("[{section}]");
    let mut in_section = !key.contains('.');
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_section = trimmed.starts_with(&header) || !key.contains('.');
        }
        if in_section && (trimmed.starts_with(&format!("{leaf} ")) || trimmed.starts_with(&format!("{leaf}="))) {
            return i + 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_load_and_validate() {
        let config = Config::load_with_env(None, &[]).expect("defaults are valid");
        assert_eq!(config.sip_listen().len(), 2);
        assert_eq!(config.rtp_ports(), 20000..=29999);
        assert!(config.queues.iter().any(|q| q.name == "generale"));
    }

    #[test]
    fn environment_overrides_nested_keys_with_typed_values() {
        let env = vec![
            ("CENTRALINO_DATABASE__URL".to_string(), "postgres://x/y".to_string()),
            ("CENTRALINO_SIP__LISTEN".to_string(), r#"["udp:127.0.0.1:5070"]"#.to_string()),
            ("OTHER".to_string(), "ignored".to_string()),
            ("CENTRALINO_CONFIG".to_string(), "/etc/centralino.toml".to_string()),
            ("CENTRALINO_TEST_POSTGRES_URL".to_string(), "postgres://x".to_string()),
        ];
        let config = Config::load_with_env(None, &env).expect("valid");
        assert_eq!(config.database.url, "postgres://x/y");
        assert_eq!(config.sip_listen(), vec![Listen::Udp("127.0.0.1:5070".parse().unwrap())]);
    }

    #[test]
    fn a_file_overrides_only_what_it_names_and_errors_carry_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[media]\nrtp_ports = \"30000-30100\"\n").unwrap();
        let config = Config::load_with_env(Some(&path), &[]).expect("valid");
        assert_eq!(config.rtp_ports(), 30000..=30100);
        assert_eq!(config.http.listen, "127.0.0.1:9464");

        std::fs::write(&path, "[media]\n\nrtp_ports = \"9-3\"\n").unwrap();
        let errors = Config::load_with_env(Some(&path), &[]).unwrap_err();
        let text = errors[0].to_string();
        assert!(text.contains("c.toml:3: media.rtp_ports"), "{text}");

        std::fs::write(&path, "[media\nrtp_ports = 1\n").unwrap();
        let errors = Config::load_with_env(Some(&path), &[]).unwrap_err();
        assert!(errors[0].to_string().contains("c.toml:1:"), "{}", errors[0]);
    }

    #[test]
    fn bad_listen_addresses_are_rejected() {
        assert!(parse_listen("sctp:1.2.3.4:5").is_err());
        assert!(parse_listen("udp:nope").is_err());
        assert_eq!(parse_listen("tcp:127.0.0.1:5060"), Ok(Listen::Tcp("127.0.0.1:5060".parse().unwrap())));
    }

    #[test]
    fn the_admin_api_off_loopback_needs_a_configured_admin_token() {
        let off = vec![("CENTRALINO_HTTP__LISTEN".to_string(), "0.0.0.0:9464".to_string())];
        let errors = Config::load_with_env(None, &off).unwrap_err();
        let text = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n");
        assert!(text.contains("http.listen") && text.contains("http.admin_tokens"), "{text}");
        assert!(text.contains("CENTRALINO_HTTP__ADMIN_TOKENS"), "{text}");

        let mut with_token = off.clone();
        with_token.push(("CENTRALINO_HTTP__ADMIN_TOKENS".into(), r#"["0123456789abcdef0123"]"#.into()));
        let config = Config::load_with_env(None, &with_token).expect("a configured token allows it");
        assert_eq!(config.http.admin_tokens, vec!["0123456789abcdef0123".to_string()]);

        let v6 = vec![("CENTRALINO_HTTP__LISTEN".to_string(), "[::1]:9464".to_string())];
        assert!(Config::load_with_env(None, &v6).is_ok(), "IPv6 loopback is loopback");
    }

    #[test]
    fn weak_tokens_shared_tokens_and_bad_host_names_are_rejected() {
        let env = vec![
            ("CENTRALINO_HTTP__ADMIN_TOKENS".to_string(), r#"["short", "0123456789abcdef0123"]"#.to_string()),
            ("CENTRALINO_HTTP__READ_TOKENS".to_string(), r#"["0123456789abcdef0123", "with spaces in the token"]"#.to_string()),
            ("CENTRALINO_HTTP__ALLOWED_HOSTS".to_string(), r#"["ok.example.org", "http://x", "host:80", ""]"#.to_string()),
        ];
        let errors = Config::load_with_env(None, &env).unwrap_err();
        let text = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n");
        for key in [
            "http.admin_tokens[0]",
            "http.read_tokens[1]",
            "http.read_tokens: a token is both",
            "http.allowed_hosts[1]",
            "http.allowed_hosts[2]",
            "http.allowed_hosts[3]",
        ] {
            assert!(text.contains(key), "{key} in {text}");
        }
        assert!(!text.contains("http.admin_tokens[1]") && !text.contains("allowed_hosts[0]"), "{text}");
    }
}
