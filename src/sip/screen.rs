//! A UDP socket that screens datagrams before the SIP stack sees them.
//!
//! rsipstack drops what it cannot parse without a word and cannot parse unknown methods.
//! This wrapper sits under its UDP transport (through rsipstack's socket seam) so that:
//! - unparseable datagrams are counted;
//! - a request with an unknown method still gets `501 Not Implemented`, and a malformed
//!   request whose routing headers are readable gets `400 Bad Request` (RFC 3261 §8.2.1, §21);
//! - a body without `Content-Length` (allowed on UDP, RFC 3261 §18.3) gets one, since
//!   rsipstack would otherwise drop the body (its SDP);
//! - datagrams from banned sources, and from known scanners (which are then banned), are
//!   dropped before anything is parsed: a flood from a banned address costs a table lookup.
//!
//! Owns: that pre-parse screening. Must not touch: transactions, dialogs, call policy.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rsipstack::platform::net::UdpSocket as StackUdpSocket;
use rsipstack::sip::SipMessage;

use super::counters::SipCounters;
use super::edge::{raw_user_agent, Edge};

/// Methods rsipstack can parse; anything else in a request line is "unknown" (501).
const KNOWN_METHODS: [&str; 14] = [
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "PRACK", "SUBSCRIBE",
    "NOTIFY", "UPDATE", "MESSAGE", "REFER", "PUBLISH",
];

/// The screening socket.
pub struct ScreenedUdp {
    inner: tokio::net::UdpSocket,
    counters: Arc<SipCounters>,
    user_agent: String,
    edge: Arc<Edge>,
}

impl ScreenedUdp {
    pub fn new(inner: tokio::net::UdpSocket, counters: Arc<SipCounters>, user_agent: String, edge: Arc<Edge>) -> Self {
        ScreenedUdp { inner, counters, user_agent, edge }
    }

    /// Whether the edge drops this datagram unseen: a banned source, or a scanner.
    fn edge_drops(&self, datagram: &[u8], from: SocketAddr) -> bool {
        if self.edge.drops(from.ip()) {
            return true;
        }
        raw_user_agent(datagram).is_some_and(|ua| self.edge.drops_scanner(from.ip(), ua))
    }
}

/// What to do with one datagram.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Hand it to the stack, possibly rewritten (new length).
    Pass(usize),
    /// Answer with these bytes and drop it.
    Answer(Vec<u8>),
    /// Drop it (counted).
    Drop,
}

/// Screens one datagram in place. `capacity` is the buffer's size, for rewriting.
pub fn screen(buf: &mut [u8], len: usize, user_agent: &str) -> Verdict {
    let packet = &buf[..len];
    if packet.iter().all(|b| b.is_ascii_whitespace()) {
        return Verdict::Pass(len); // keep-alives: the stack answers them
    }
    let len = add_missing_content_length(buf, len);
    let packet = &buf[..len];
    if SipMessage::try_from(packet).is_ok() {
        return Verdict::Pass(len);
    }
    let text = String::from_utf8_lossy(packet);
    let Some(request_line) = text.lines().next() else { return Verdict::Drop };
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(_uri), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Verdict::Drop;
    };
    if !version.eq_ignore_ascii_case("SIP/2.0") || method == "ACK" {
        return Verdict::Drop; // a response, garbage, or an ACK (never answered)
    }
    let known = KNOWN_METHODS.contains(&method);
    let valid_token = method.chars().all(|c| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c));
    let (code, reason) = if !known && valid_token { (501, "Not Implemented") } else { (400, "Bad Request") };
    match minimal_response(&text, code, reason, user_agent) {
        Some(bytes) => Verdict::Answer(bytes),
        None => Verdict::Drop,
    }
}

/// Builds a response from the request's raw Via/From/To/Call-ID/CSeq lines, or `None` when
/// they are missing (then there is nobody to answer reliably).
fn minimal_response(text: &str, code: u16, reason: &str, user_agent: &str) -> Option<Vec<u8>> {
    let head = text.split("\r\n\r\n").next().unwrap_or(text);
    let mut vias = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for line in head.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "via" | "v" => vias.push(value.to_string()),
            "from" | "f" => from = Some(value.to_string()),
            "to" | "t" => to = Some(value.to_string()),
            "call-id" | "i" => call_id = Some(value.to_string()),
            "cseq" => cseq = Some(value.to_string()),
            _ => {}
        }
    }
    if vias.is_empty() {
        return None;
    }
    let (from, mut to, call_id, cseq) = (from?, to?, call_id?, cseq?);
    if !to.contains("tag=") {
        to.push_str(";tag=c-err");
    }
    let mut out = format!("SIP/2.0 {code} {reason}\r\n");
    for via in vias {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    out.push_str(&format!("From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\n"));
    out.push_str(&format!("Allow: {}\r\n", super::ALLOW));
    out.push_str(&format!("Server: {user_agent}\r\nContent-Length: 0\r\n\r\n"));
    Some(out.into_bytes())
}

/// Inserts `Content-Length` when a message has a body but no such header. Returns the new
/// length (unchanged when nothing was needed or the buffer is too small).
fn add_missing_content_length(buf: &mut [u8], len: usize) -> usize {
    let Some(head_end) = find(&buf[..len], b"\r\n\r\n") else { return len };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let has_length = head
        .split("\r\n")
        .any(|l| l.starts_with("content-length") || l.starts_with("l:") || l.starts_with("l :"));
    let body_len = len - head_end - 4;
    if has_length || body_len == 0 {
        return len;
    }
    let header = format!("\r\nContent-Length: {body_len}");
    let new_len = len + header.len();
    if new_len > buf.len() {
        return len;
    }
    buf.copy_within(head_end..len, head_end + header.len());
    buf[head_end..head_end + header.len()].copy_from_slice(header.as_bytes());
    new_len
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[async_trait::async_trait]
impl StackUdpSocket for ScreenedUdp {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        loop {
            let (len, from) = self.inner.recv_from(buf).await?;
            if self.edge_drops(&buf[..len], from) {
                continue;
            }
            match screen(buf, len, &self.user_agent) {
                Verdict::Pass(len) => return Ok((len, from)),
                Verdict::Answer(bytes) => {
                    self.counters.parse_errors.fetch_add(1, Ordering::Relaxed);
                    let _ = self.inner.send_to(&bytes, from).await;
                }
                Verdict::Drop => {
                    self.counters.parse_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        Ok(self.inner.send_to(buf, addr).await?)
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.inner.local_addr()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADERS: &str = "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c1\r\nCSeq: 1 FOO\r\n";

    fn run(text: &str) -> Verdict {
        let mut buf = vec![0u8; 4096];
        buf[..text.len()].copy_from_slice(text.as_bytes());
        screen(&mut buf, text.len(), "test")
    }

    #[test]
    fn unknown_methods_get_501_with_the_request_routing_headers() {
        let Verdict::Answer(bytes) = run(&format!("FOO sip:b@y SIP/2.0\r\n{HEADERS}Content-Length: 0\r\n\r\n")) else {
            panic!("expected an answer")
        };
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("SIP/2.0 501 Not Implemented\r\n"), "{text}");
        assert!(text.contains("Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-1\r\n"));
        assert!(text.contains("Call-ID: c1\r\n") && text.contains("To: <sip:b@y>;tag="));
        assert!(SipMessage::try_from(text.as_str()).is_ok(), "our 501 must parse: {text}");
    }

    #[test]
    fn garbage_and_headerless_requests_are_dropped() {
        assert_eq!(run("\x00\x01hello"), Verdict::Drop);
        assert_eq!(run("FOO sip:b@y SIP/2.0\r\n\r\n"), Verdict::Drop);
        assert_eq!(run("SIP/2.0 200 OK garbage"), Verdict::Drop);
    }

    #[test]
    fn valid_messages_pass_and_keepalives_pass() {
        let ok = format!("OPTIONS sip:b@y SIP/2.0\r\n{}Content-Length: 0\r\n\r\n", HEADERS.replace("FOO", "OPTIONS"));
        assert_eq!(run(&ok), Verdict::Pass(ok.len()));
        assert_eq!(run("\r\n\r\n"), Verdict::Pass(4));
    }

    #[test]
    fn a_udp_body_without_content_length_gets_one() {
        let msg = format!("INFO sip:b@y SIP/2.0\r\n{}Content-Type: application/dtmf\r\n\r\n5", HEADERS.replace("FOO", "INFO"));
        let mut buf = vec![0u8; 4096];
        buf[..msg.len()].copy_from_slice(msg.as_bytes());
        let Verdict::Pass(len) = screen(&mut buf, msg.len(), "t") else { panic!() };
        let Ok(SipMessage::Request(parsed)) = SipMessage::try_from(&buf[..len]) else { panic!("parses") };
        assert_eq!(parsed.body(), b"5");
    }
}
