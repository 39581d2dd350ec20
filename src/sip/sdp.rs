//! SDP offer/answer for one audio stream (RFC 3264 over RFC 8866 syntax).
//!
//! Owns: reading an offer or answer into `RemoteMedia` (address, G.711 codec, RFC 4733
//! payload type, direction), writing our answer and our offer. The only import site of
//! `sdp-types`. Must not touch: SIP messages, sockets, media state.
//! Rules: first offered format we support wins (PCMU/PCMA at static PT 0/8); the offer's
//! telephone-event PT is kept whatever its number; direction is mirrored (RFC 3264 §6.1);
//! every offered m-line gets an answer line, the ones we refuse with port 0 (§6).

use std::net::{IpAddr, SocketAddr};

use sdp_types::{Attribute, Connection, Media, Origin, RtpMap, Session, Time};
use thiserror::Error;

use crate::media::g711::Codec;

/// The telephone-event payload type we offer.
pub const OFFER_TELEPHONE_EVENT_PT: u8 = 101;
/// Session name and origin user name in our SDP.
const SDP_NAME: &str = "centralino";

/// Why an SDP body cannot set up audio; the SIP layer answers 488 to an offer.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SdpError {
    /// Not parseable as SDP (also: not UTF-8 where text is required).
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// No audio m-line with a non-zero port.
    #[error("no usable audio stream")]
    NoAudio,
    /// Audio offered, but neither PCMU nor PCMA at its static payload type.
    #[error("no common codec (we need PCMU/0 or PCMA/8)")]
    NoCommonCodec,
    /// The only audio uses another transport than RTP/AVP(F), e.g. SRTP.
    #[error("unsupported transport {0}")]
    UnsupportedTransport(String),
    /// The audio stream has no usable `c=` address (missing, or not an IP address).
    #[error("no usable connection address")]
    NoConnection,
}

/// Media direction attribute, from the sender of the SDP's point of view (RFC 3264 §5.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv`, also the default.
    #[default]
    SendRecv,
    /// `a=sendonly`: the peer puts us on hold (it sends music, we must not send).
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    const ALL: [Direction; 4] =
        [Direction::SendRecv, Direction::SendOnly, Direction::RecvOnly, Direction::Inactive];

    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer gives to an offer with this one (RFC 3264 §6.1).
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// Whether the side that wrote it sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side that wrote it receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    fn from_attribute(name: &str) -> Option<Direction> {
        Direction::ALL.into_iter().find(|d| d.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

/// What the peer told us about its audio stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Where to send RTP: the `c=` address (media level over session level) and m= port.
    pub addr: SocketAddr,
    /// The codec both sides use.
    pub codec: Codec,
    /// The peer's RFC 4733 payload type; `None` means DTMF must come by SIP INFO.
    pub telephone_event_pt: Option<u8>,
    /// The peer's direction attribute, as written by the peer.
    pub direction: Direction,
}

impl RemoteMedia {
    /// The peer holds the call: `c=0.0.0.0` (RFC 2543 style), `sendonly` or `inactive`.
    /// We must not send media then.
    pub fn is_hold(&self) -> bool {
        self.addr.ip().is_unspecified() || !self.direction.receives()
    }
}

/// Answers an offer. Returns the peer's media and our answer SDP.
pub fn answer_offer(
    offer: &[u8],
    local_ip: IpAddr,
    local_port: u16,
    session_id: u64,
    version: u64,
) -> Result<(RemoteMedia, String), SdpError> {
    let offer = parse(offer)?;
    let (chosen, remote) = choose_audio(&offer)?;
    let mut answer = base_session(local_ip, session_id, version);
    for (i, offered) in offer.medias.iter().enumerate() {
        if i == chosen {
            answer.medias.push(audio_media(
                local_port,
                &offered.proto,
                remote.codec,
                remote.telephone_event_pt,
                remote.direction.reverse(),
            ));
        } else {
            answer.medias.push(refused(offered));
        }
    }
    Ok((remote, write(&answer)))
}

/// Our offer: PCMU/0, PCMA/8, telephone-event/8000 at PT 101 (events 0-16), ptime 20,
/// sendrecv.
/// The SDP `o=` session id of a call: a stable hash of its id (FNV-1a), kept below 2^63 as
/// RFC 4566 numeric fields are parsed as signed by some peers.
pub fn session_id(call_id: &str) -> u64 {
    call_id.bytes().fold(1469598103934665603u64, |h, b| (h ^ b as u64).wrapping_mul(1099511628211)) >> 1
}

pub fn make_offer(local_ip: IpAddr, local_port: u16, session_id: u64, version: u64) -> String {
    let mut offer = base_session(local_ip, session_id, version);
    let mut media = audio_media(
        local_port,
        "RTP/AVP",
        Codec::Pcmu,
        Some(OFFER_TELEPHONE_EVENT_PT),
        Direction::SendRecv,
    );
    media.fmt = format!("0 8 {OFFER_TELEPHONE_EVENT_PT}");
    let pcma = RtpMap::new(Codec::Pcma.payload_type(), Codec::Pcma.encoding_name(), 8000);
    media.attributes.insert(1, pcma.into());
    offer.medias.push(media);
    write(&offer)
}

/// Reads the peer's answer to our offer.
pub fn parse_answer(answer: &[u8]) -> Result<RemoteMedia, SdpError> {
    let answer = parse(answer)?;
    choose_audio(&answer).map(|(_, remote)| remote)
}

fn parse(body: &[u8]) -> Result<Session, SdpError> {
    // A body whose last line ends in a bare CR is rejected by sdp-types; trim it.
    let end = body.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    Session::parse(&body[..end]).map_err(|e| SdpError::Malformed(e.to_string()))
}

/// The first usable audio m-line: its index and what the peer wants.
fn choose_audio(sdp: &Session) -> Result<(usize, RemoteMedia), SdpError> {
    let mut refusal = SdpError::NoAudio;
    for (i, media) in sdp.medias.iter().enumerate() {
        if !media.media.eq_ignore_ascii_case("audio") || media.port == 0 {
            continue;
        }
        if !is_rtp_avp(&media.proto) {
            refusal = worst(refusal, SdpError::UnsupportedTransport(media.proto.clone()));
            continue;
        }
        let Some(codec) = pick_codec(media) else {
            refusal = worst(refusal, SdpError::NoCommonCodec);
            continue;
        };
        let ip = connection_ip(media, sdp).ok_or(SdpError::NoConnection)?;
        let direction = direction_of(&media.attributes)
            .or_else(|| direction_of(&sdp.attributes))
            .unwrap_or_default();
        let remote = RemoteMedia {
            addr: SocketAddr::new(ip, media.port),
            codec,
            telephone_event_pt: telephone_event_pt(media),
            direction,
        };
        return Ok((i, remote));
    }
    Err(refusal)
}

/// Keeps the most telling reason: a codec mismatch over a transport one over "no audio".
fn worst(current: SdpError, new: SdpError) -> SdpError {
    match (&current, &new) {
        (SdpError::NoCommonCodec, _) => current,
        _ => new,
    }
}

fn is_rtp_avp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

fn formats(media: &Media) -> impl Iterator<Item = u8> + '_ {
    media.fmt.split_ascii_whitespace().filter_map(|f| f.parse::<u8>().ok()).filter(|&pt| pt < 128)
}

/// The `a=rtpmap` for `pt`, if any: (encoding name, clock rate).
fn rtpmap(media: &Media, pt: u8) -> Option<RtpMap> {
    attribute_values(&media.attributes, "rtpmap")
        .filter_map(|v| v.parse::<RtpMap>().ok())
        .find(|map| map.payload_type == pt)
}

/// PCMU/PCMA at their static payload type, in the peer's order. A dynamic PT mapped to
/// PCMU/PCMA is not accepted (the session sends the static PT).
fn pick_codec(media: &Media) -> Option<Codec> {
    formats(media).find_map(|pt| {
        let codec = Codec::from_payload_type(pt)?;
        match rtpmap(media, pt) {
            None => Some(codec),
            Some(map) => (Codec::from_encoding_name(map.encoding_name.trim()) == Some(codec)
                && map.clock_rate == 8000)
                .then_some(codec),
        }
    })
}

/// The first listed format mapped to telephone-event/8000.
fn telephone_event_pt(media: &Media) -> Option<u8> {
    formats(media).find(|&pt| {
        rtpmap(media, pt).is_some_and(|map| {
            map.encoding_name.trim().eq_ignore_ascii_case("telephone-event")
                && map.clock_rate == 8000
        })
    })
}

fn connection_ip(media: &Media, sdp: &Session) -> Option<IpAddr> {
    let connection = media.connections.first().or(sdp.connection.as_ref())?;
    connection.try_address().ok().map(|address| address.ip)
}

fn direction_of(attributes: &[Attribute]) -> Option<Direction> {
    attributes.iter().find_map(|a| Direction::from_attribute(&a.attribute))
}

fn attribute_values<'a>(
    attributes: &'a [Attribute],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    attributes
        .iter()
        .filter(move |a| a.attribute.trim().eq_ignore_ascii_case(name))
        .filter_map(|a| a.value.as_deref().map(str::trim))
}

fn base_session(local_ip: IpAddr, session_id: u64, version: u64) -> Session {
    let mut origin = Origin::with_ip_addr(session_id, version, local_ip);
    origin.username = Some(SDP_NAME.to_owned());
    let mut session = Session::new(origin, SDP_NAME);
    session.connection = Some(Connection::from_ip_addr(local_ip));
    session.times.push(Time::new(0, 0));
    session
}

fn audio_media(
    port: u16,
    proto: &str,
    codec: Codec,
    telephone_event_pt: Option<u8>,
    direction: Direction,
) -> Media {
    let pt = codec.payload_type();
    let mut fmt = pt.to_string();
    let mut attributes = vec![RtpMap::new(pt, codec.encoding_name(), 8000).into()];
    if let Some(te) = telephone_event_pt {
        fmt = format!("{pt} {te}");
        attributes.push(RtpMap::new(te, "telephone-event", 8000).into());
        attributes.push(Attribute::with_value("fmtp", format!("{te} 0-16")));
    }
    attributes.push(Attribute::with_value("ptime", 20));
    attributes.push(Attribute::new(direction.as_str()));
    Media { attributes, ..bare_media("audio", port, proto, fmt) }
}

/// An answer line refusing an offered stream: same media, proto and formats, port 0.
fn refused(offered: &Media) -> Media {
    bare_media(&offered.media, 0, &offered.proto, offered.fmt.clone())
}

fn bare_media(media: &str, port: u16, proto: &str, fmt: String) -> Media {
    Media {
        media: media.to_owned(),
        port,
        num_ports: None,
        proto: proto.to_owned(),
        fmt,
        media_title: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
    }
}

fn write(sdp: &Session) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = sdp.write(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

    /// The offer of SIPp's caller scenarios (after SIPp strips the indentation).
    fn sipp_offer(m_line: &str, extra: &str) -> String {
        format!(
            "v=0\r\no=sipp-caller 1234 1 IN IP4 198.51.100.7\r\ns=sipp caller\r\n\
             c=IN IP4 198.51.100.7\r\nt=0 0\r\n{m_line}\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n{extra}a=ptime:20\r\na=sendrecv\r\n"
        )
    }

    fn answer(offer: &str) -> Result<(RemoteMedia, String), SdpError> {
        answer_offer(offer.as_bytes(), LOCAL, 40000, 77, 1)
    }

    fn remote(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    #[test]
    fn pcmu_pcma_te_offer() {
        let offer = sipp_offer(
            "m=audio 6000 RTP/AVP 0 8 101",
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
        );
        let (r, sdp) = answer(&offer).expect("answerable");
        assert_eq!(r.addr, remote([198, 51, 100, 7], 6000));
        assert_eq!((r.codec, r.telephone_event_pt), (Codec::Pcmu, Some(101)));
        assert_eq!(r.direction, Direction::SendRecv);
        assert!(!r.is_hold());
        let expected = "v=0\r\no=centralino 77 1 IN IP4 192.0.2.10\r\ns=centralino\r\n\
                        c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\n\
                        a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
                        a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";
        assert_eq!(sdp, expected);
    }

    #[test]
    fn pcma_only_and_no_telephone_event() {
        let offer =
            sipp_offer("m=audio 6000 RTP/AVP 8 0", "").replace("a=rtpmap:0 PCMU/8000\r\n", "");
        let (r, sdp) = answer(&offer).expect("answerable");
        assert_eq!((r.codec, r.telephone_event_pt), (Codec::Pcma, None));
        assert!(sdp.contains("m=audio 40000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:20\r\n"));
        assert!(!sdp.contains("telephone-event"));
    }

    #[test]
    fn te_at_96_and_dynamic_codecs_skipped() {
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                     m=audio 7000 RTP/AVP 111 9 8 96 97\r\na=rtpmap:111 opus/48000/2\r\n\
                     a=rtpmap:9 G722/8000\r\na=rtpmap:97 telephone-event/48000\r\n\
                     a=rtpmap:96 TELEPHONE-EVENT/8000\r\na=fmtp:96 0-15\r\n";
        let (r, sdp) = answer(offer).expect("answerable");
        assert_eq!((r.codec, r.telephone_event_pt), (Codec::Pcma, Some(96)));
        assert!(sdp.contains("m=audio 40000 RTP/AVP 8 96\r\n"));
        assert!(sdp.contains("a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-16\r\n"));
        // A static PT remapped to another codec is not PCMU.
        let odd = offer.replace("111 9 8", "0").replace("a=rtpmap:9 G722", "a=rtpmap:0 G722");
        assert_eq!(answer(&odd).map(|r| r.0), Err(SdpError::NoCommonCodec));
        let lower = offer.replace("111 9 8", "0").replace("a=rtpmap:9 G722", "a=rtpmap:0 pcmu");
        assert_eq!(answer(&lower).map(|r| r.0.codec), Ok(Codec::Pcmu));
    }

    #[test]
    fn hold_offers_are_mirrored() {
        let offer = sipp_offer("m=audio 6000 RTP/AVP 0", "").replace("a=sendrecv", "a=sendonly");
        let (r, sdp) = answer(&offer).expect("answerable");
        assert_eq!(r.direction, Direction::SendOnly);
        assert!(r.is_hold());
        assert!(sdp.contains("a=recvonly\r\n"));
        for (offered, answered) in [("recvonly", "sendonly"), ("inactive", "inactive")] {
            let offer = sipp_offer("m=audio 6000 RTP/AVP 0", "").replace("sendrecv", offered);
            let (_, sdp) = answer(&offer).expect("answerable");
            assert!(sdp.ends_with(&format!("a={answered}\r\n")), "{offered}");
        }
        // Session-level direction applies when the media has none.
        let offer = "v=0\r\ns=-\r\nc=IN IP4 10.0.0.1\r\na=inactive\r\nm=audio 5 RTP/AVP 0\r\n";
        assert_eq!(answer(offer).map(|r| r.0.direction), Ok(Direction::Inactive));
    }

    #[test]
    fn zero_address_hold_and_media_level_connection() {
        let offer = sipp_offer("m=audio 6000 RTP/AVP 0", "")
            .replace("IN IP4 198.51.100.7\r\nt", "IN IP4 0.0.0.0\r\nt");
        let (r, _) = answer(&offer).expect("answerable");
        assert!(r.is_hold());
        assert_eq!(r.direction, Direction::SendRecv);
        let offer = sipp_offer("m=audio 6000 RTP/AVP 0\r\nc=IN IP4 203.0.113.5", "");
        assert_eq!(answer(&offer).map(|r| r.0.addr), Ok(remote([203, 0, 113, 5], 6000)));
        let offer = "v=0\r\ns=-\r\nm=audio 5004 RTP/AVP 0\r\nc=IN IP6 2001:db8::1\r\n";
        let (r, sdp) = answer_offer(offer.as_bytes(), "2001:db8::2".parse().expect("ip"), 9, 1, 2)
            .expect("answerable");
        assert_eq!(r.addr, "[2001:db8::1]:5004".parse().expect("addr"));
        assert!(sdp.contains("c=IN IP6 2001:db8::2\r\n"));
        let no_c = "v=0\r\ns=-\r\nm=audio 5004 RTP/AVP 0\r\n";
        assert_eq!(answer(no_c).map(|r| r.0), Err(SdpError::NoConnection));
        let host = "v=0\r\ns=-\r\nc=IN IP4 pbx.example.com\r\nm=audio 5004 RTP/AVP 0\r\n";
        assert_eq!(answer(host).map(|r| r.0), Err(SdpError::NoConnection));
    }

    #[test]
    fn refusals() {
        let base = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n";
        let cases = [
            ("m=video 5000 RTP/AVP 96\r\n", SdpError::NoAudio),
            ("", SdpError::NoAudio),
            ("m=audio 0 RTP/AVP 0\r\n", SdpError::NoAudio),
            ("m=audio 5000 RTP/AVP 18 9\r\n", SdpError::NoCommonCodec),
            ("m=audio 5000 RTP/SAVP 0\r\n", SdpError::UnsupportedTransport("RTP/SAVP".into())),
        ];
        for (media, expected) in cases {
            let offer = format!("{base}{media}");
            assert_eq!(answer(&offer).map(|r| r.0), Err(expected.clone()), "{media}");
            assert_eq!(parse_answer(offer.as_bytes()), Err(expected));
        }
        for garbage in
            ["", "hello", "v=1\r\n", "v=0\r\nm=audio x RTP/AVP 0\r\n", "v=0\r\nbroken\r\n"]
        {
            assert!(matches!(answer(garbage), Err(SdpError::Malformed(_))), "{garbage:?}");
        }
    }

    #[test]
    fn declined_streams_keep_their_place() {
        let offer = "v=0\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nm=video 5000 RTP/AVP 96\r\n\
                     m=audio 5002 RTP/AVP 0\r\nm=audio 5004 RTP/AVP 8\r\n";
        let (r, sdp) = answer(offer).expect("answerable");
        assert_eq!((r.addr.port(), r.codec), (5002, Codec::Pcmu));
        let m_lines: Vec<&str> = sdp.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m_lines,
            ["m=video 0 RTP/AVP 96", "m=audio 40000 RTP/AVP 0", "m=audio 0 RTP/AVP 8"]
        );
    }

    #[test]
    fn offer_and_answer_round_trip() {
        let offer = make_offer(LOCAL, 40000, 5, 3);
        assert!(offer.contains("m=audio 40000 RTP/AVP 0 8 101\r\n"));
        assert!(offer.contains("a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"));
        assert!(offer.contains("a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"));
        let (ours, answer_sdp) = answer_offer(offer.as_bytes(), [10, 1, 1, 1].into(), 6000, 9, 1)
            .expect("we answer our own offer");
        assert_eq!(ours.addr, SocketAddr::new(LOCAL, 40000));
        let theirs = parse_answer(answer_sdp.as_bytes()).expect("valid answer");
        let expected = RemoteMedia {
            addr: remote([10, 1, 1, 1], 6000),
            codec: Codec::Pcmu,
            telephone_event_pt: Some(101),
            direction: Direction::SendRecv,
        };
        assert_eq!(theirs, expected);
    }

    #[test]
    fn baresip_like_offer_with_lf_and_trailing_cr() {
        let offer = "v=0\no=- 3862 1 IN IP4 10.0.0.9\ns=-\nc=IN IP4 10.0.0.9\nt=0 0\n\
                     m=audio 10000 RTP/AVP 96 0 8 101\nb=AS:64\na=rtpmap:96 opus/48000/2\n\
                     a=fmtp:96 stereo=1;sprop-stereo=1\na=rtpmap:101 telephone-event/8000\n\
                     a=fmtp:101 0-15\na=rtcp-mux\na=ssrc:12 cname:x@y\na=ptime:20\na=sendrecv\r";
        let (r, _) = answer(offer).expect("answerable");
        assert_eq!((r.codec, r.telephone_event_pt), (Codec::Pcmu, Some(101)));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = answer_offer(&bytes, LOCAL, 1, 1, 1);
            let _ = parse_answer(&bytes);
        }

        #[test]
        fn sdp_shaped_text_never_panics(
            lines in proptest::collection::vec("[vosctmab]=[ -~]{0,40}", 0..12),
            m_line in "m=(audio|video) [0-9]{1,6} (RTP/AVP|RTP/SAVP|udp)( [0-9]{1,3}){0,4}",
            attrs in proptest::collection::vec("a=(rtpmap|fmtp|sendonly|ptime):[ -~]{0,30}", 0..6),
        ) {
            let text = format!("v=0\r\n{}\r\n{}\r\n{}\r\n", lines.join("\r\n"), m_line, attrs.join("\r\n"));
            let _ = answer_offer(text.as_bytes(), LOCAL, 1, 1, 1);
            let _ = parse_answer(text.as_bytes());
        }
    }
}
