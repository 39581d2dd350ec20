//! A minimal raw SIP user agent client for integration tests: enough of RFC 3261 to place
//! a call over UDP or TCP, send RFC 4733 DTMF over RTP and hang up, written as text so the
//! tests exercise the service's real parser and transaction layer.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

pub enum Transport {
    Udp(UdpSocket),
    Tcp(TcpStream, Vec<u8>),
}

/// One test phone with one call.
pub struct Uac {
    pub transport: Transport,
    pub service: SocketAddr,
    pub local: SocketAddr,
    pub rtp: UdpSocket,
    pub call_id: String,
    /// Who calls (From, Contact): a citizen's number unless a test sets an operator.
    pub from_user: String,
    /// Whom it calls (request URI, To): the service number unless a test dials a code.
    pub to_user: String,
    pub from_tag: String,
    pub to_tag: Option<String>,
    pub cseq: u32,
    /// Where the service wants RTP (from its SDP answer).
    pub remote_rtp: Option<SocketAddr>,
    rtp_seq: u16,
    rtp_ts: u32,
}

#[derive(Debug, Clone)]
pub struct Message {
    pub start: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Message {
    pub fn status(&self) -> Option<u16> {
        self.start.strip_prefix("SIP/2.0 ").and_then(|r| r.get(..3)).and_then(|c| c.parse().ok())
    }
    pub fn method(&self) -> Option<&str> {
        if self.start.starts_with("SIP/2.0") { None } else { self.start.split(' ').next() }
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn parse(text: &str) -> Option<Message> {
        let (head, body) = text.split_once("\r\n\r\n")?;
        let mut lines = head.split("\r\n");
        let start = lines.next()?.to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string())))
            .collect();
        Some(Message { start, headers, body: body.to_string() })
    }
}

impl Uac {
    pub async fn udp(service: SocketAddr) -> Uac {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = socket.local_addr().unwrap();
        Uac::new(Transport::Udp(socket), service, local).await
    }

    /// A UDP phone whose SIP and RTP sockets are bound to `ip` (any of 127.0.0.0/8 works on
    /// Linux): another host, as far as the service can tell.
    pub async fn udp_from(ip: &str, service: SocketAddr) -> Uac {
        let socket = UdpSocket::bind((ip, 0)).await.unwrap();
        let local = socket.local_addr().unwrap();
        let mut uac = Uac::new(Transport::Udp(socket), service, local).await;
        uac.rtp = UdpSocket::bind((ip, 0)).await.unwrap();
        uac
    }

    pub async fn tcp(service: SocketAddr) -> Uac {
        let stream = TcpStream::connect(service).await.unwrap();
        let local = stream.local_addr().unwrap();
        Uac::new(Transport::Tcp(stream, Vec::new()), service, local).await
    }

    async fn new(transport: Transport, service: SocketAddr, local: SocketAddr) -> Uac {
        let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let n = local.port();
        Uac {
            transport,
            service,
            local,
            rtp,
            call_id: format!("test-{n}-{}", std::process::id()),
            from_user: "3331234567".into(),
            to_user: "ivr".into(),
            from_tag: format!("ft{n}"),
            to_tag: None,
            cseq: 1,
            remote_rtp: None,
            rtp_seq: 100,
            rtp_ts: 1000,
        }
    }

    fn proto(&self) -> &'static str {
        match self.transport {
            Transport::Udp(_) => "UDP",
            Transport::Tcp(..) => "TCP",
        }
    }

    pub fn sdp_offer(&self, formats: &str, extra: &str) -> String {
        let rtp = self.rtp.local_addr().unwrap();
        let (ip, port) = (rtp.ip(), rtp.port());
        format!(
            "v=0\r\no=test 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {formats}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n{extra}a=sendrecv\r\n"
        )
    }

    pub fn request(&self, method: &str, branch: &str, extra_headers: &str, body: &str, content_type: &str) -> String {
        let to_tag = self.to_tag.as_ref().map(|t| format!(";tag={t}")).unwrap_or_default();
        let ct = if body.is_empty() { String::new() } else { format!("Content-Type: {content_type}\r\n") };
        format!(
            "{method} sip:{to}@{svc} SIP/2.0\r\nVia: SIP/2.0/{proto} {local};branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\nFrom: \"Test\" <sip:{from}@{local}>;tag={ft}\r\nTo: <sip:{to}@{svc}>{to_tag}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContact: <sip:{from}@{local};transport={lproto}>\r\n{extra_headers}{ct}Content-Length: {len}\r\n\r\n{body}",
            svc = self.service,
            from = self.from_user,
            to = self.to_user,
            proto = self.proto(),
            lproto = self.proto().to_lowercase(),
            local = self.local,
            ft = self.from_tag,
            cid = self.call_id,
            cseq = self.cseq,
            len = body.len(),
        )
    }

    pub async fn send_raw(&mut self, text: &str) {
        match &mut self.transport {
            Transport::Udp(s) => {
                s.send_to(text.as_bytes(), self.service).await.unwrap();
            }
            Transport::Tcp(s, _) => s.write_all(text.as_bytes()).await.unwrap(),
        }
    }

    /// The next SIP message, or `None` after `within`.
    pub async fn recv(&mut self, within: Duration) -> Option<Message> {
        tokio::time::timeout(within, self.recv_inner()).await.ok().flatten()
    }

    async fn recv_inner(&mut self) -> Option<Message> {
        match &mut self.transport {
            Transport::Udp(s) => {
                let mut buf = vec![0u8; 8192];
                let (n, _) = s.recv_from(&mut buf).await.ok()?;
                Message::parse(&String::from_utf8_lossy(&buf[..n]))
            }
            Transport::Tcp(s, pending) => loop {
                if let Some(msg) = take_stream_message(pending) {
                    return Some(msg);
                }
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.ok()?;
                if n == 0 {
                    return None;
                }
                pending.extend_from_slice(&buf[..n]);
            },
        }
    }

    /// Waits for a message matching `pred`, answering requests from the service on the way
    /// (200 to BYE/INFO/OPTIONS) and returning the match.
    pub async fn expect(&mut self, within: Duration, pred: impl Fn(&Message) -> bool) -> Message {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self.recv(left).await.expect("expected SIP message did not arrive in time");
            if pred(&msg) {
                return msg;
            }
        }
    }

    /// INVITE → expects a final response; on 200 records the To tag and remote RTP, sends ACK.
    pub async fn call(&mut self, offer: &str) -> Message {
        let invite = self.request("INVITE", "inv1", "", offer, "application/sdp");
        self.send_raw(&invite).await;
        let resp = self
            .expect(Duration::from_secs(5), |m| m.status().map(|s| s >= 200).unwrap_or(false))
            .await;
        if resp.status() == Some(200) {
            self.to_tag = resp.header("To").and_then(|t| t.split("tag=").nth(1)).map(|t| t.split(';').next().unwrap_or(t).to_string());
            self.remote_rtp = sdp_audio_addr(&resp.body);
            let ack = self.request("ACK", "ack1", "", "", "");
            self.send_raw(&ack).await;
        }
        resp
    }

    /// Sends one RFC 4733 key press (start, 2 continuations, 3 end packets) at PT `pt`.
    pub async fn send_dtmf(&mut self, event: u8, pt: u8) {
        let to = self.remote_rtp.expect("call answered with SDP");
        self.rtp_ts = self.rtp_ts.wrapping_add(8000);
        for i in 0..6u16 {
            let end = i >= 3;
            let duration: u16 = 160 * (i.min(3) + 1);
            let mut pkt = vec![0x80, pt | if i == 0 { 0x80 } else { 0 }];
            pkt.extend_from_slice(&self.rtp_seq.to_be_bytes());
            pkt.extend_from_slice(&self.rtp_ts.to_be_bytes());
            pkt.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            pkt.extend_from_slice(&[event, if end { 0x80 | 10 } else { 10 }]);
            pkt.extend_from_slice(&duration.to_be_bytes());
            self.rtp.send_to(&pkt, to).await.unwrap();
            self.rtp_seq = self.rtp_seq.wrapping_add(1);
        }
    }

    /// Counts RTP packets arriving within `window`.
    pub async fn count_rtp(&self, window: Duration) -> usize {
        let mut buf = vec![0u8; 2048];
        let deadline = tokio::time::Instant::now() + window;
        let mut n = 0;
        while let Ok(Ok(_)) = tokio::time::timeout_at(deadline, self.rtp.recv_from(&mut buf)).await {
            n += 1;
        }
        n
    }

    /// Sends BYE and waits for its 200.
    pub async fn hang_up(&mut self) -> Message {
        self.cseq += 1;
        let bye = self.request("BYE", "bye1", "", "", "");
        self.send_raw(&bye).await;
        self.expect(Duration::from_secs(5), |m| m.header("CSeq").map(|c| c.ends_with("BYE")).unwrap_or(false) && m.status().is_some()).await
    }

    /// Answers a request from the service with 200 (e.g. its BYE).
    pub async fn answer_ok(&mut self, req: &Message) {
        let mut out = String::from("SIP/2.0 200 OK\r\n");
        for (n, v) in &req.headers {
            if ["via", "from", "to", "call-id", "cseq"].contains(&n.to_ascii_lowercase().as_str()) {
                out.push_str(&format!("{n}: {v}\r\n"));
            }
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        self.send_raw(&out).await;
    }
}

fn take_stream_message(pending: &mut Vec<u8>) -> Option<Message> {
    let text = String::from_utf8_lossy(pending).to_string();
    let trimmed = text.trim_start_matches("\r\n");
    let skipped = text.len() - trimmed.len();
    let head_end = trimmed.find("\r\n\r\n")?;
    let head = &trimmed[..head_end];
    let len: usize = head
        .split("\r\n")
        .find_map(|l| l.split_once(':').filter(|(n, _)| n.trim().eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let total = head_end + 4 + len;
    if trimmed.len() < total {
        return None;
    }
    let msg = Message::parse(&trimmed[..total]);
    pending.drain(..skipped + total);
    msg
}

/// The audio address of an SDP body.
pub fn sdp_audio_addr(sdp: &str) -> Option<SocketAddr> {
    let ip = sdp.lines().find_map(|l| l.strip_prefix("c=IN IP4 "))?.trim();
    let port = sdp.lines().find_map(|l| l.strip_prefix("m=audio "))?.split(' ').next()?;
    format!("{ip}:{port}").parse().ok()
}
