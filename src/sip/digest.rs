//! HTTP Digest authentication, server side (RFC 7616, as used by SIP per RFC 3261 §22.4 and
//! RFC 8760): algorithm tokens, HA1, the `Authorization` header's parameters, and constant-time
//! verification of a client's `response`.
//!
//! Owns: the digest arithmetic. Must not touch: nonces (`nonce.rs`), users, clocks, IO; it does
//! not import the SIP crate, so it can be tested on plain strings.
//! Invariants: the hash inputs are the parameter values exactly as the client sent them (after
//! removing quotes and `\` escapes); a wrong or malformed response is `false`, never a panic.
//!
//! Why not rsipstack's `DigestGenerator` (rsipstack 0.7.14): it is a client helper that needs
//! the plain password, compares with `==`, computes `-sess` without the nonce and cnonce, and
//! rsipstack's typed `Authorization` fails on `algorithm=SHA-256` (it only knows `SHA256`) and on
//! `nc` above `000000ff` (it keeps `nc` in a `u8`). It is still used in the tests, as an
//! independent client for MD5.

use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// A digest algorithm centralino can verify (RFC 7616 §3.3; RFC 8760 for SIP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// `MD5`, the default when a client sends no `algorithm` (RFC 2617).
    Md5,
    /// `MD5-sess`: HA1 also covers the nonce and cnonce.
    Md5Sess,
    /// `SHA-256` (RFC 7616 spelling; `SHA256`, rsipstack's spelling, is accepted too).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
}

impl DigestAlgorithm {
    /// Parses an `algorithm` token, case-insensitively: `MD5`, `MD5-sess`, `SHA-256`, `SHA256`,
    /// `SHA-256-sess`, `SHA256-sess`. Anything else (e.g. `SHA-512-256`, `AKAv1-MD5`) is `None`.
    pub fn from_token(token: &str) -> Option<DigestAlgorithm> {
        let t = token.trim();
        let is = |s: &str| t.eq_ignore_ascii_case(s);
        if is("MD5") {
            Some(DigestAlgorithm::Md5)
        } else if is("MD5-sess") {
            Some(DigestAlgorithm::Md5Sess)
        } else if is("SHA-256") || is("SHA256") {
            Some(DigestAlgorithm::Sha256)
        } else if is("SHA-256-sess") || is("SHA256-sess") {
            Some(DigestAlgorithm::Sha256Sess)
        } else {
            None
        }
    }

    /// The RFC 7616 token, as written in a challenge.
    pub fn token(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Md5Sess => "MD5-sess",
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// Whether HA1 is per session (`-sess`).
    pub fn is_sess(self) -> bool {
        matches!(self, DigestAlgorithm::Md5Sess | DigestAlgorithm::Sha256Sess)
    }

    /// The algorithm without `-sess`: the one whose HA1 is stored.
    pub fn base(self) -> DigestAlgorithm {
        match self {
            DigestAlgorithm::Md5 | DigestAlgorithm::Md5Sess => DigestAlgorithm::Md5,
            DigestAlgorithm::Sha256 | DigestAlgorithm::Sha256Sess => DigestAlgorithm::Sha256,
        }
    }

    /// `H(data)` in lower-case hex.
    fn hash_hex(self, data: &[u8]) -> String {
        match self.base() {
            DigestAlgorithm::Md5 => hex::encode(Md5::digest(data)),
            _ => hex::encode(Sha256::digest(data)),
        }
    }
}

impl std::fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.token())
    }
}

/// `H(username ":" realm ":" password)` in lower-case hex: what the operator store keeps. For a
/// `-sess` algorithm this is the stored (base) HA1; the session HA1 is derived in [`verify`].
pub fn ha1(alg: DigestAlgorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hash_hex(format!("{username}:{realm}:{password}").as_bytes())
}

/// The `qop=auth` part of a response: nonce count and client nonce, as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QopAuth<'a> {
    /// `nc`, the 8 hex digits exactly as the client wrote them.
    pub nc: &'a str,
    /// `cnonce`.
    pub cnonce: &'a str,
}

/// The expected `response` (lower-case hex) for `ha1_hex` (the stored, base HA1).
/// `qop: None` is RFC 2069 mode: `H(HA1:nonce:HA2)`; `Some` is `qop=auth`:
/// `H(HA1:nonce:nc:cnonce:auth:HA2)`, with `HA2 = H(method:uri)` in both.
/// A `-sess` algorithm needs `qop` (its HA1 covers the cnonce); without it the session HA1 is
/// computed with an empty cnonce, which no client produces, so verification fails.
pub fn expected_response(
    alg: DigestAlgorithm,
    ha1_hex: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<QopAuth<'_>>,
) -> String {
    let ha1 = if alg.is_sess() {
        let cnonce = qop.map_or("", |q| q.cnonce);
        alg.hash_hex(format!("{}:{nonce}:{cnonce}", ha1_hex.to_ascii_lowercase()).as_bytes())
    } else {
        ha1_hex.to_ascii_lowercase()
    };
    let ha2 = alg.hash_hex(format!("{method}:{uri}").as_bytes());
    let kd = match qop {
        Some(q) => format!("{ha1}:{nonce}:{}:{}:auth:{ha2}", q.nc, q.cnonce),
        None => format!("{ha1}:{nonce}:{ha2}"),
    };
    alg.hash_hex(kd.as_bytes())
}

/// Whether `creds.response` is right for `ha1_hex` and `method` (RFC 7616 §3.4.1), compared in
/// constant time. The algorithm is `creds.algorithm`; `ha1_hex` must be the stored HA1 for its
/// [`DigestAlgorithm::base`]. Does not check the nonce's freshness or the nonce count.
pub fn verify(ha1_hex: &str, method: &str, creds: &DigestCredentials) -> bool {
    let expected = expected_response(
        creds.algorithm,
        ha1_hex,
        method,
        &creds.uri,
        &creds.nonce,
        creds.qop.as_ref().map(|q| QopAuth {
            nc: &q.nc_text,
            cnonce: &q.cnonce,
        }),
    );
    constant_time_eq_hex(&expected, &creds.response)
}

/// Compares two hex strings, the second case-insensitively, without a data-dependent early exit.
/// Lengths are public (they follow from the algorithm).
fn constant_time_eq_hex(expected: &str, given: &str) -> bool {
    let given = given.to_ascii_lowercase();
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// The `qop=auth` parameters of an `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QopParams {
    /// `nc` as sent (hashed verbatim).
    pub nc_text: String,
    /// `nc` as a number, for replay protection.
    pub nc: u32,
    /// `cnonce`.
    pub cnonce: String,
}

/// A parsed `Authorization: Digest …` header (RFC 7616 §3.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    /// `uri` as sent (hashed verbatim, never re-serialised).
    pub uri: String,
    pub response: String,
    /// `MD5` when the client sent no `algorithm`.
    pub algorithm: DigestAlgorithm,
    pub opaque: Option<String>,
    /// `None`: RFC 2069 compatibility mode (no `qop`).
    pub qop: Option<QopParams>,
}

/// Why an `Authorization` header cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("authorization scheme is not Digest")]
    NotDigest,
    #[error("malformed authorization parameters")]
    Malformed,
    #[error("authorization parameter `{0}` is missing")]
    Missing(&'static str),
    #[error("authorization parameter `{0}` appears twice")]
    Duplicate(String),
    #[error("unsupported digest algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    #[error("unsupported qop `{0}`")]
    UnsupportedQop(String),
    #[error("invalid nonce count `{0}`")]
    BadNonceCount(String),
    #[error("userhash is not supported")]
    UserHash,
}

impl DigestCredentials {
    /// Parses the value of an `Authorization` header (without the `Authorization:` name).
    /// Parameter names are case-insensitive; values may be quoted (with `\` escapes) or tokens.
    /// `qop` other than `auth` (e.g. `auth-int`, which centralino never offers), an unknown
    /// `algorithm`, or `userhash=true` are errors the caller answers with a new challenge.
    pub fn parse(value: &str) -> Result<DigestCredentials, DigestError> {
        let value = value.trim();
        let (scheme, rest) = value
            .split_once(|c: char| c.is_ascii_whitespace())
            .ok_or(DigestError::NotDigest)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest);
        }
        let params = parse_params(rest)?;
        let get = |name: &'static str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let need = |name: &'static str| {
            get(name)
                .map(str::to_owned)
                .ok_or(DigestError::Missing(name))
        };
        if get("userhash").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Err(DigestError::UserHash);
        }
        let algorithm = match get("algorithm") {
            None => DigestAlgorithm::Md5,
            Some(t) => DigestAlgorithm::from_token(t)
                .ok_or_else(|| DigestError::UnsupportedAlgorithm(t.to_owned()))?,
        };
        let qop = match get("qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc_text = need("nc")?;
                let nc = parse_nc(&nc_text)
                    .ok_or_else(|| DigestError::BadNonceCount(nc_text.clone()))?;
                Some(QopParams {
                    nc_text,
                    nc,
                    cnonce: need("cnonce")?,
                })
            }
            Some(q) => return Err(DigestError::UnsupportedQop(q.to_owned())),
        };
        Ok(DigestCredentials {
            username: need("username")?,
            realm: need("realm")?,
            nonce: need("nonce")?,
            uri: need("uri")?,
            response: need("response")?,
            algorithm,
            opaque: get("opaque").map(str::to_owned),
            qop,
        })
    }
}

/// `nc`: 1 to 8 hex digits (RFC 7616 says exactly 8; shorter ones are accepted, and hashed as
/// sent).
fn parse_nc(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// `name=value` pairs separated by commas (RFC 7235 auth-param); duplicates are rejected, so a
/// hash can never be computed over a different value than the one checked.
fn parse_params(s: &str) -> Result<Vec<(String, String)>, DigestError> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return Ok(params);
        }
        let eq = rest.find('=').ok_or(DigestError::Malformed)?;
        let name = rest[..eq].trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(DigestError::Malformed);
        }
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let (v, after) = parse_quoted(quoted)?;
            value = v;
            rest = after.trim_start();
            if !(rest.is_empty() || rest.starts_with(',')) {
                return Err(DigestError::Malformed);
            }
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_owned();
            if value.is_empty() || value.contains(|c: char| c.is_ascii_whitespace() || c == '"') {
                return Err(DigestError::Malformed);
            }
            rest = &rest[end..];
        }
        if params.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            return Err(DigestError::Duplicate(name.to_ascii_lowercase()));
        }
        params.push((name.to_owned(), value));
    }
}

/// The content of a quoted string (after the opening quote) with `\` escapes removed, and the
/// text after the closing quote.
fn parse_quoted(s: &str) -> Result<(String, &str), DigestError> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => out.push(chars.next().ok_or(DigestError::Malformed)?.1),
            c => out.push(c),
        }
    }
    Err(DigestError::Malformed)
}

/// The value of one `WWW-Authenticate` header (RFC 7616 §3.3 / RFC 8760 §2.3):
/// `Digest realm="…", nonce="…", algorithm=…, qop="auth"[, stale=true]`.
pub fn challenge_value(realm: &str, nonce: &str, alg: DigestAlgorithm, stale: bool) -> String {
    let mut v = format!(
        "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
        escape_quoted(realm),
        alg.token()
    );
    if stale {
        v.push_str(", stale=true");
    }
    v
}

fn escape_quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // RFC 7616 §3.9.1: both requests share these values.
    const RFC7616_COMMON: &str = r#"username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

    #[test]
    fn rfc7616_md5_example_verifies() {
        let creds = DigestCredentials::parse(&format!(
            r#"Digest {RFC7616_COMMON}, algorithm=MD5, response="8ca523f5e9506fed4657c9700eebdbec""#
        ))
        .unwrap();
        let ha1 = ha1(
            DigestAlgorithm::Md5,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert!(verify(&ha1, "GET", &creds));
        assert!(!verify(&ha1, "POST", &creds));
    }

    #[test]
    fn rfc7616_sha256_example_verifies() {
        let creds = DigestCredentials::parse(&format!(
            r#"Digest {RFC7616_COMMON}, algorithm=SHA-256, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1""#
        ))
        .unwrap();
        assert_eq!(creds.algorithm, DigestAlgorithm::Sha256);
        let ha1 = ha1(
            DigestAlgorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert!(verify(&ha1, "GET", &creds));
        let wrong = ha1.replace('0', "1");
        assert!(!verify(&wrong, "GET", &creds));
    }

    #[test]
    fn rfc2617_example_verifies() {
        let creds = DigestCredentials::parse(
            r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert_eq!(creds.algorithm, DigestAlgorithm::Md5);
        assert_eq!(creds.qop.as_ref().unwrap().nc, 1);
        let ha1 = ha1(
            DigestAlgorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert!(verify(&ha1, "GET", &creds));
    }

    #[test]
    fn rfc2069_mode_without_qop_verifies() {
        // RFC 2069 §2.4 prints e966c932…, a known erratum; 1949323746… is H(HA1:nonce:HA2)
        // computed independently (Python hashlib) for password "CircleOfLife".
        let creds = DigestCredentials::parse(
            r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", response="1949323746fe6a43ef61f9606e7febea", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert!(creds.qop.is_none());
        let ha1 = ha1(
            DigestAlgorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "CircleOfLife",
        );
        assert!(verify(&ha1, "GET", &creds));
    }

    #[test]
    fn baresip_1_0_capture_verifies() {
        // Captured from baresip 1.0.0 (libre 1.1.0) against a test registrar: no `algorithm`,
        // unquoted qop, nonce "abc123", password "secret".
        let creds = DigestCredentials::parse(
            r#"Digest username="alice", realm="centralino.local", nonce="abc123", uri="sip:127.0.0.1:5099", response="a802d2cdb6d9a658cde9e98826452cdb", cnonce="3de3a0dc32f201e4", qop=auth, nc=00000001"#,
        )
        .unwrap();
        let ha1 = ha1(DigestAlgorithm::Md5, "alice", "centralino.local", "secret");
        assert!(verify(&ha1, "REGISTER", &creds));
    }

    #[test]
    fn sipp_3_6_capture_verifies() {
        // Captured from SIPp 3.6.1's [authentication] (no spaces after commas).
        let creds = DigestCredentials::parse(
            r#"Digest username="alice",realm="centralino.local",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:5099",nonce="abc123",response="f914808c89f7c93b114df93bd7d5524d",algorithm=MD5"#,
        )
        .unwrap();
        let ha1 = ha1(DigestAlgorithm::Md5, "alice", "centralino.local", "secret");
        assert!(verify(&ha1, "REGISTER", &creds));
    }

    #[test]
    fn sess_variants_hash_nonce_and_cnonce_into_ha1() {
        let base = ha1(DigestAlgorithm::Sha256, "bob", "r", "pw");
        let q = QopAuth {
            nc: "00000002",
            cnonce: "cn",
        };
        let resp = expected_response(
            DigestAlgorithm::Sha256Sess,
            &base,
            "REGISTER",
            "sip:r",
            "n1",
            Some(q),
        );
        // By hand: HA1' = H(HA1:nonce:cnonce).
        let sess = DigestAlgorithm::Sha256.hash_hex(format!("{base}:n1:cn").as_bytes());
        let plain = expected_response(
            DigestAlgorithm::Sha256,
            &sess,
            "REGISTER",
            "sip:r",
            "n1",
            Some(q),
        );
        assert_eq!(resp, plain);
        let header = format!(
            r#"Digest username="bob", realm="r", nonce="n1", uri="sip:r", algorithm=SHA-256-sess, qop=auth, nc=00000002, cnonce="cn", response="{resp}""#
        );
        assert!(verify(
            &base,
            "REGISTER",
            &DigestCredentials::parse(&header).unwrap()
        ));
    }

    #[test]
    fn algorithm_tokens_accept_both_sha256_spellings() {
        for (t, a) in [
            ("MD5", DigestAlgorithm::Md5),
            ("md5-SESS", DigestAlgorithm::Md5Sess),
            ("SHA-256", DigestAlgorithm::Sha256),
            ("SHA256", DigestAlgorithm::Sha256),
            ("sha-256-sess", DigestAlgorithm::Sha256Sess),
            ("SHA256-sess", DigestAlgorithm::Sha256Sess),
        ] {
            assert_eq!(DigestAlgorithm::from_token(t), Some(a), "{t}");
        }
        assert_eq!(DigestAlgorithm::from_token("SHA-512-256"), None);
        assert_eq!(DigestAlgorithm::from_token("AKAv1-MD5"), None);
    }

    #[test]
    fn uppercase_response_hex_is_accepted() {
        let creds = DigestCredentials::parse(
            r#"Digest username="alice", realm="centralino.local", nonce="abc123", uri="sip:127.0.0.1:5099", response="A802D2CDB6D9A658CDE9E98826452CDB", cnonce="3de3a0dc32f201e4", qop=auth, nc=00000001"#,
        )
        .unwrap();
        assert!(verify(
            &ha1(DigestAlgorithm::Md5, "alice", "centralino.local", "secret"),
            "REGISTER",
            &creds
        ));
    }

    #[test]
    fn md5_matches_rsipstack_client_digest() {
        // rsipstack's client-side generator, as an independent implementation.
        use rsipstack::sip::headers::auth::{Algorithm, AuthQop};
        use rsipstack::sip::{DigestGenerator, Method, Uri};
        let uri = Uri::try_from("sip:centralino.local").unwrap();
        let qop = AuthQop::Auth {
            cnonce: "xyz".into(),
            nc: 7,
        };
        let theirs = DigestGenerator {
            username: "alice",
            password: "pw",
            nonce: "n0",
            uri: &uri,
            realm: "centralino.local",
            method: &Method::Register,
            qop: Some(&qop),
            algorithm: Algorithm::Md5,
        }
        .compute();
        let ha1 = ha1(DigestAlgorithm::Md5, "alice", "centralino.local", "pw");
        let ours = expected_response(
            DigestAlgorithm::Md5,
            &ha1,
            "REGISTER",
            "sip:centralino.local",
            "n0",
            Some(QopAuth {
                nc: "00000007",
                cnonce: "xyz",
            }),
        );
        assert_eq!(ours, theirs);
    }

    #[test]
    fn parse_rejects_what_it_cannot_check() {
        let ok = r#"username="a", realm="r", nonce="n", uri="sip:r", response="00""#;
        assert_eq!(
            DigestCredentials::parse(&format!("Basic {ok}")),
            Err(DigestError::NotDigest)
        );
        assert_eq!(
            DigestCredentials::parse(&format!("Digest {ok}, algorithm=SHA-512-256")),
            Err(DigestError::UnsupportedAlgorithm("SHA-512-256".into()))
        );
        assert_eq!(
            DigestCredentials::parse(&format!(
                "Digest {ok}, qop=auth-int, nc=00000001, cnonce=\"c\""
            )),
            Err(DigestError::UnsupportedQop("auth-int".into()))
        );
        assert_eq!(
            DigestCredentials::parse(&format!("Digest {ok}, qop=auth, nc=zz, cnonce=\"c\"")),
            Err(DigestError::BadNonceCount("zz".into()))
        );
        assert_eq!(
            DigestCredentials::parse(&format!("Digest {ok}, qop=auth, cnonce=\"c\"")),
            Err(DigestError::Missing("nc"))
        );
        assert_eq!(
            DigestCredentials::parse(&format!("Digest {ok}, Nonce=\"other\"")),
            Err(DigestError::Duplicate("nonce".into()))
        );
        assert_eq!(
            DigestCredentials::parse(&format!("Digest {ok}, userhash=true")),
            Err(DigestError::UserHash)
        );
        assert_eq!(
            DigestCredentials::parse(r#"Digest username="a, realm="r""#),
            Err(DigestError::Malformed)
        );
        assert_eq!(
            DigestCredentials::parse(r#"Digest realm="r", nonce="n", uri="u", response="0""#),
            Err(DigestError::Missing("username"))
        );
    }

    #[test]
    fn quoted_values_unescape() {
        let c = DigestCredentials::parse(
            r#"Digest username="a\"b", realm="r,x", nonce="n", uri="sip:r", response="0""#,
        )
        .unwrap();
        assert_eq!(c.username, "a\"b");
        assert_eq!(c.realm, "r,x");
    }

    #[test]
    fn challenge_value_parses_back_with_rsipstack() {
        use rsipstack::sip::headers::auth::{Algorithm, Qop};
        use rsipstack::sip::typed::WwwAuthenticate;
        let v = challenge_value("centralino.local", "abcd", DigestAlgorithm::Md5, true);
        assert_eq!(
            v,
            r#"Digest realm="centralino.local", nonce="abcd", algorithm=MD5, qop="auth", stale=true"#
        );
        let parsed = WwwAuthenticate::parse(&v).unwrap();
        assert_eq!(parsed.algorithm, Some(Algorithm::Md5));
        assert_eq!(parsed.qop, Some(Qop::Auth));
        assert_eq!(parsed.stale.as_deref(), Some("true"));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = DigestCredentials::parse(&s);
            let _ = DigestCredentials::parse(&format!("Digest {s}"));
        }

        #[test]
        fn a_response_verifies_only_for_its_own_inputs(
            user in "[a-z]{1,8}", pw in "[ -~]{0,12}", nonce in "[0-9a-f]{8,64}",
            cnonce in "[A-Za-z0-9]{1,16}", nc in 1u32.., sha in any::<bool>(),
        ) {
            let alg = if sha { DigestAlgorithm::Sha256 } else { DigestAlgorithm::Md5 };
            let stored = ha1(alg, &user, "centralino.local", &pw);
            let nc_text = format!("{nc:08x}");
            let resp = expected_response(alg, &stored, "REGISTER", "sip:centralino.local", &nonce,
                Some(QopAuth { nc: &nc_text, cnonce: &cnonce }));
            let header = format!(
                r#"Digest username="{user}", realm="centralino.local", nonce="{nonce}", uri="sip:centralino.local", response="{resp}", algorithm={alg}, qop=auth, nc={nc_text}, cnonce="{cnonce}""#);
            let creds = DigestCredentials::parse(&header).unwrap();
            prop_assert_eq!(creds.qop.as_ref().unwrap().nc, nc);
            prop_assert!(verify(&stored, "REGISTER", &creds));
            let other = ha1(alg, &user, "centralino.local", &format!("{pw}x"));
            prop_assert!(!verify(&other, "REGISTER", &creds));
            prop_assert!(!verify(&stored, "INVITE", &creds));
        }
    }
}
