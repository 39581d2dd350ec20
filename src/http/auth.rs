//! Who may do what on the admin API: one middleware in front of every route.
//!
//! Owns: the verdict on a request from its method, path and headers (Host, Origin,
//! Authorization, Content-Type) and the error answers of a refusal. The verdict is a pure
//! function ([`decide`]) so each rule is unit-tested without a socket.
//! Must not touch: the handlers' work, the engine, the token file.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::tokens::{Access, Tokens};

/// What the middleware enforces, built once from `[http]`.
#[derive(Clone)]
pub struct Policy {
    tokens: Tokens,
    public_metrics: bool,
    /// Lower case, no trailing dot.
    allowed_hosts: Vec<String>,
}

impl Policy {
    pub fn new(tokens: Tokens, public_metrics: bool, allowed_hosts: &[String]) -> Policy {
        Policy { tokens, public_metrics, allowed_hosts: allowed_hosts.iter().map(|h| normalize_host(h)).collect() }
    }
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// The `Host` is a name this service was not told about: a page reaching it through a
    /// DNS name that resolves here (DNS rebinding) would send its own name.
    UnknownHost,
    /// A browser's cross-origin mutation (its `Origin` is not the `Host` it talks to).
    CrossOrigin,
    /// No bearer token where one is needed.
    MissingToken,
    /// A bearer token that is none of the configured ones.
    InvalidToken,
    /// A read token on a mutation.
    NeedsAdmin,
    /// A mutation without `Content-Type: application/json`. Browsers cannot send that type
    /// cross-origin without a preflight this API never grants.
    NotJson,
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    Nothing,
    Read,
    Admin,
}

/// The verdict on one request: the access it is granted, or why it is refused.
pub fn decide(policy: &Policy, method: &Method, path: &str, headers: &HeaderMap) -> Result<Access, Denial> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).and_then(host_of).ok_or(Denial::UnknownHost)?;
    if !host_accepted(policy, &host) {
        return Err(Denial::UnknownHost);
    }
    // GET and HEAD read; every other method is treated as a mutation, so a method the
    // router does not know yet cannot slip past the checks.
    let mutation = !matches!(*method, Method::GET | Method::HEAD);
    if mutation {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let same = origin.to_str().ok().and_then(origin_host).is_some_and(|o| o == host);
            if !same {
                return Err(Denial::CrossOrigin);
            }
        }
    }
    let need = match path {
        _ if mutation => Need::Admin,
        "/healthz" => Need::Nothing,
        "/metrics" if policy.public_metrics => Need::Nothing,
        _ => Need::Read,
    };
    if need == Need::Nothing {
        return Ok(Access::Anonymous);
    }
    let access = match bearer(headers) {
        None => return Err(Denial::MissingToken),
        Some(token) => policy.tokens.scope_of(token).ok_or(Denial::InvalidToken)?,
    };
    if need == Need::Admin && access != Access::Admin {
        return Err(Denial::NeedsAdmin);
    }
    if mutation && !is_json(headers.get(header::CONTENT_TYPE)) {
        return Err(Denial::NotJson);
    }
    Ok(access)
}

/// The middleware: refuses, or passes the request on with its [`Access`] in the extensions.
pub async fn enforce(State(policy): State<Arc<Policy>>, mut request: Request, next: Next) -> Response {
    match decide(&policy, request.method(), request.uri().path(), request.headers()) {
        Ok(access) => {
            request.extensions_mut().insert(access);
            next.run(request).await
        }
        Err(denial) => denial.into_response(),
    }
}

impl IntoResponse for Denial {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Denial::UnknownHost => (
                StatusCode::FORBIDDEN,
                "Host not accepted: use an IP address or localhost, or add the name to http.allowed_hosts",
            ),
            Denial::CrossOrigin => (StatusCode::FORBIDDEN, "cross-origin request refused: Origin differs from Host"),
            Denial::MissingToken => (StatusCode::UNAUTHORIZED, "a bearer token is needed (Authorization: Bearer <token>)"),
            Denial::InvalidToken => (StatusCode::UNAUTHORIZED, "the bearer token is not valid"),
            Denial::NeedsAdmin => (StatusCode::FORBIDDEN, "this needs an admin token"),
            Denial::NotJson => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type: application/json is needed"),
        };
        let mut response = super::error(status, message);
        let challenge = match self {
            Denial::MissingToken => Some(r#"Bearer realm="centralino""#),
            Denial::InvalidToken => Some(r#"Bearer realm="centralino", error="invalid_token""#),
            _ => None,
        };
        if let Some(challenge) = challenge {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

/// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `application/json`, with parameters or not (`; charset=utf-8`).
fn is_json(value: Option<&HeaderValue>) -> bool {
    let Some(Ok(value)) = value.map(HeaderValue::to_str) else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// A host name or IP literal, normalized for comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

fn host_accepted(policy: &Policy, host: &Host) -> bool {
    match host {
        Host::Ip(_) => true,
        Host::Name(name) => name == "localhost" || policy.allowed_hosts.iter().any(|h| h == name),
    }
}

/// The host of a `Host` header, `host[:port]` or `[v6]:port`; the port is ignored.
fn host_of(value: &str) -> Option<Host> {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return ip.parse::<Ipv6Addr>().ok().map(|ip| Host::Ip(IpAddr::V6(ip)));
    }
    let name = match value.rsplit_once(':') {
        Some((name, port)) if is_port(port) => name,
        Some(_) => return None,
        None => value,
    };
    // An IPv6 literal without brackets, or a second colon: not a Host.
    if name.is_empty() || name.contains(':') {
        return None;
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => Some(Host::Ip(ip)),
        Err(_) => Some(Host::Name(normalize_host(name))),
    }
}

/// The host of an `Origin` header, `scheme://host[:port]`; `null` and anything else
/// unparsable give `None`.
fn origin_host(value: &str) -> Option<Host> {
    let (_scheme, authority) = value.trim().split_once("://")?;
    if authority.contains(['/', '@', '?', '#']) {
        return None;
    }
    host_of(authority)
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

fn normalize_host(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN: &str = "admin-0123456789abcdef";
    const READ: &str = "read-0123456789abcdef";

    fn policy(public_metrics: bool) -> Policy {
        Policy::new(Tokens::new(&[ADMIN], &[READ]), public_metrics, &["Centralino.Example.org.".to_string()])
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn get(path: &str, pairs: &[(&'static str, &str)]) -> Result<Access, Denial> {
        decide(&policy(true), &Method::GET, path, &headers(pairs))
    }

    fn post(pairs: &[(&'static str, &str)]) -> Result<Access, Denial> {
        decide(&policy(true), &Method::POST, "/api/v1/operators/op1/pause", &headers(pairs))
    }

    const LOCAL: (&str, &str) = ("host", "127.0.0.1:9464");
    const JSON: (&str, &str) = ("content-type", "application/json");

    fn auth(token: &str) -> (&'static str, String) {
        ("authorization", format!("Bearer {token}"))
    }

    #[test]
    fn health_is_open_and_metrics_are_open_unless_configured_otherwise() {
        assert_eq!(get("/healthz", &[LOCAL]), Ok(Access::Anonymous));
        assert_eq!(get("/metrics", &[LOCAL]), Ok(Access::Anonymous));
        let private = policy(false);
        let h = |pairs: &[(&'static str, &str)]| decide(&private, &Method::GET, "/metrics", &headers(pairs));
        assert_eq!(h(&[LOCAL]), Err(Denial::MissingToken));
        let (n, v) = auth(READ);
        assert_eq!(h(&[LOCAL, (n, &v)]), Ok(Access::Read));
        assert_eq!(decide(&private, &Method::GET, "/healthz", &headers(&[LOCAL])), Ok(Access::Anonymous));
    }

    #[test]
    fn reads_need_a_token_of_either_scope() {
        assert_eq!(get("/api/v1/calls", &[LOCAL]), Err(Denial::MissingToken));
        let (n, v) = auth("nope-0123456789abcdef");
        assert_eq!(get("/api/v1/calls", &[LOCAL, (n, &v)]), Err(Denial::InvalidToken));
        let (n, v) = auth(READ);
        assert_eq!(get("/api/v1/calls", &[LOCAL, (n, &v)]), Ok(Access::Read));
        let (n, v) = auth(ADMIN);
        assert_eq!(get("/api/v1/operators", &[LOCAL, (n, &v)]), Ok(Access::Admin));
        assert_eq!(get("/somewhere/else", &[LOCAL]), Err(Denial::MissingToken), "unknown paths fail closed");
        assert_eq!(get("/api/v1/calls", &[LOCAL, ("authorization", &format!("bearer  {READ}"))]), Ok(Access::Read));
        assert_eq!(get("/api/v1/calls", &[LOCAL, ("authorization", &format!("Basic {READ}"))]), Err(Denial::MissingToken));
    }

    #[test]
    fn mutations_need_the_admin_scope_then_json() {
        assert_eq!(post(&[LOCAL, JSON]), Err(Denial::MissingToken));
        let (n, v) = auth(READ);
        assert_eq!(post(&[LOCAL, JSON, (n, &v)]), Err(Denial::NeedsAdmin));
        let (n, v) = auth(ADMIN);
        assert_eq!(post(&[LOCAL, JSON, (n, &v)]), Ok(Access::Admin));
        assert_eq!(post(&[LOCAL, (n, &v)]), Err(Denial::NotJson));
        assert_eq!(post(&[LOCAL, (n, &v), ("content-type", "text/plain")]), Err(Denial::NotJson));
        assert_eq!(post(&[LOCAL, (n, &v), ("content-type", "Application/JSON; charset=utf-8")]), Ok(Access::Admin));
        assert_eq!(post(&[LOCAL, (n, &v), ("content-type", "application/jsonx")]), Err(Denial::NotJson));
        // Any method but GET and HEAD is a mutation.
        let delete = decide(&policy(true), &Method::DELETE, "/healthz", &headers(&[LOCAL]));
        assert_eq!(delete, Err(Denial::MissingToken));
    }

    #[test]
    fn only_ip_literals_localhost_and_allowed_names_are_accepted_as_host() {
        for host in ["127.0.0.1", "127.0.0.1:9464", "10.1.2.3:80", "[::1]:9464", "[::1]", "localhost:9464", "LOCALHOST", "centralino.example.org", "Centralino.Example.Org.:443"] {
            assert_eq!(get("/healthz", &[("host", host)]), Ok(Access::Anonymous), "{host}");
        }
        for host in ["evil.example", "evil.example:9464", "localhost.evil.example", "evil.localhost", "", ":9464", "127.0.0.1:http", "[::1", "[nope]:1", "::1"] {
            assert_eq!(get("/healthz", &[("host", host)]), Err(Denial::UnknownHost), "{host:?}");
        }
        assert_eq!(get("/healthz", &[]), Err(Denial::UnknownHost), "no Host at all");
        // The Host is checked before the token: a rebinding page learns nothing else.
        let (n, v) = auth(ADMIN);
        assert_eq!(get("/api/v1/calls", &[("host", "evil.example"), (n, &v)]), Err(Denial::UnknownHost));
    }

    #[test]
    fn a_mutation_from_another_origin_is_refused_even_with_the_admin_token() {
        let (n, v) = auth(ADMIN);
        let with_origin = |origin: &str| post(&[LOCAL, JSON, (n, &v), ("origin", origin)]);
        assert_eq!(with_origin("http://evil.example"), Err(Denial::CrossOrigin));
        assert_eq!(with_origin("null"), Err(Denial::CrossOrigin));
        assert_eq!(with_origin("http://127.0.0.1.evil.example"), Err(Denial::CrossOrigin));
        assert_eq!(with_origin("http://127.0.0.1@evil.example"), Err(Denial::CrossOrigin));
        assert_eq!(with_origin("http://127.0.0.1:9464"), Ok(Access::Admin));
        assert_eq!(with_origin("https://127.0.0.1"), Ok(Access::Admin), "the port is ignored, as behind a TLS proxy");
        // Reads carry no Origin check: a browser cannot attach the token cross-origin anyway.
        assert_eq!(get("/api/v1/calls", &[LOCAL, (n, &v), ("origin", "http://evil.example")]), Ok(Access::Admin));
    }
}
