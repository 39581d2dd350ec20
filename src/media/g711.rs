//! G.711 µ-law (PCMU) and A-law (PCMA): 16-bit linear PCM <-> 8-bit codes.
//!
//! Owns: the ITU-T G.711 companding (the classic segment/mantissa reference algorithm,
//! 14-bit µ-law and 13-bit A-law magnitudes), and the `Codec` we negotiate in SDP.
//! Must not touch: RTP, SDP text, files. Pure functions; every input is valid.
//! Invariant: `encode(decode(b)) == b` for every code, except µ-law 0x7F (negative zero),
//! which decodes to 0 and re-encodes as 0xFF (positive zero).

/// µ-law bias added before the segment search (0x84 = 132, in 16-bit units).
const ULAW_BIAS: i32 = 0x84;
/// Largest µ-law magnitude in 14-bit units before the bias (8159 = 32635 >> 2).
const ULAW_CLIP: i32 = 8159;
/// Segment end points for µ-law (14-bit magnitude + bias/4).
const ULAW_SEG_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Segment end points for A-law (13-bit magnitude).
const ALAW_SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// The segment holding `value`, or 8 when it is beyond the last one.
fn segment(value: i32, ends: &[i32; 8]) -> u8 {
    ends.iter().position(|&end| value <= end).map_or(8, |seg| seg as u8)
}

/// Encodes one linear sample as µ-law. `0` gives `0xFF`.
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 2;
    let mask: u8 = if pcm < 0 {
        pcm = -pcm;
        0x7F
    } else {
        0xFF
    };
    let pcm = pcm.min(ULAW_CLIP) + (ULAW_BIAS >> 2);
    let seg = segment(pcm, &ULAW_SEG_END);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mantissa = ((pcm >> (seg + 1)) & 0x0F) as u8;
    ((seg << 4) | mantissa) ^ mask
}

/// Decodes one µ-law code to linear PCM (range −32124..=32124).
pub fn ulaw_decode(byte: u8) -> i16 {
    let u = !byte;
    let t = ((i32::from(u & 0x0F) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
    let value = if u & 0x80 != 0 { ULAW_BIAS - t } else { t - ULAW_BIAS };
    // |value| <= 32124, always fits.
    value as i16
}

/// Encodes one linear sample as A-law. `0` gives `0xD5`.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut pcm = i32::from(sample) >> 3;
    let mask: u8 = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    let seg = segment(pcm, &ALAW_SEG_END);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let shift = if seg < 2 { 1 } else { seg };
    let mantissa = ((pcm >> shift) & 0x0F) as u8;
    ((seg << 4) | mantissa) ^ mask
}

/// Decodes one A-law code to linear PCM (range −32256..=32256; A-law has no zero).
pub fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let mut t = i32::from(a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    let value = if a & 0x80 != 0 { t } else { -t };
    // |value| <= 32256, always fits.
    value as i16
}

/// An audio codec we speak: G.711 only, 8 kHz, 1 byte per sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static RTP payload type 0.
    Pcmu,
    /// G.711 A-law, static RTP payload type 8.
    Pcma,
}

impl Codec {
    /// Every codec, in our order of preference for offers.
    pub const ALL: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

    /// The static RTP payload type (RFC 3551): 0 or 8.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The codec with this static payload type, if it is one of ours.
    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| c.payload_type() == pt)
    }

    /// The SDP `rtpmap` encoding name: `PCMU` or `PCMA`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// The codec with this `rtpmap` encoding name, compared case-insensitively.
    pub fn from_encoding_name(name: &str) -> Option<Codec> {
        Codec::ALL.into_iter().find(|c| c.encoding_name().eq_ignore_ascii_case(name))
    }

    /// The code for linear zero, used to pad frames: 0xFF (µ-law) or 0xD5 (A-law).
    pub fn silence_byte(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }

    /// Encodes linear PCM, one byte per sample.
    pub fn encode(self, pcm: &[i16]) -> Vec<u8> {
        let f = match self {
            Codec::Pcmu => ulaw_encode,
            Codec::Pcma => alaw_encode,
        };
        pcm.iter().map(|&s| f(s)).collect()
    }

    /// Decodes codes to linear PCM, one sample per byte.
    pub fn decode(self, bytes: &[u8]) -> Vec<i16> {
        let f = match self {
            Codec::Pcmu => ulaw_decode,
            Codec::Pcma => alaw_decode,
        };
        bytes.iter().map(|&b| f(b)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The width of the quantisation interval a µ-law code belongs to, in 16-bit units.
    fn ulaw_step(code: u8) -> i32 {
        8 << ((!code & 0x70) >> 4)
    }

    /// The width of the quantisation interval an A-law code belongs to, in 16-bit units.
    fn alaw_step(code: u8) -> i32 {
        let seg = ((code ^ 0x55) & 0x70) >> 4;
        if seg < 2 {
            16
        } else {
            16 << (seg - 1)
        }
    }

    fn all_samples() -> impl Iterator<Item = i16> {
        i16::MIN..=i16::MAX
    }

    #[test]
    fn reference_values() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        // G.711 µ-law: 1000 lies in segment 3 (cf. Sun g711.c tables).
        assert_eq!(ulaw_encode(1000), 0xCE);
        assert_eq!(ulaw_decode(0xCE), 988);
    }

    #[test]
    fn ulaw_every_sample_within_one_step_and_monotonic() {
        let mut previous = i16::MIN;
        for x in all_samples() {
            let code = ulaw_encode(x);
            let y = ulaw_decode(code);
            assert!(
                (i32::from(y) - i32::from(x)).abs() <= ulaw_step(code),
                "x={x} code={code:#04x} y={y}"
            );
            assert!(y >= previous, "not monotonic at x={x}");
            previous = y;
        }
    }

    #[test]
    fn alaw_every_sample_within_one_step_and_monotonic() {
        let mut previous = i16::MIN;
        for x in all_samples() {
            let code = alaw_encode(x);
            let y = alaw_decode(code);
            assert!(
                (i32::from(y) - i32::from(x)).abs() <= alaw_step(code),
                "x={x} code={code:#04x} y={y}"
            );
            assert!(y >= previous, "not monotonic at x={x}");
            previous = y;
        }
    }

    #[test]
    fn every_code_round_trips() {
        for b in 0..=u8::MAX {
            let expected = if b == 0x7F { 0xFF } else { b };
            assert_eq!(ulaw_encode(ulaw_decode(b)), expected, "µ-law {b:#04x}");
            assert_eq!(alaw_encode(alaw_decode(b)), b, "A-law {b:#04x}");
        }
    }

    #[test]
    fn codec_helpers() {
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::from_payload_type(8), Some(Codec::Pcma));
        assert_eq!(Codec::from_payload_type(18), None);
        assert_eq!(Codec::from_encoding_name("pcmu"), Some(Codec::Pcmu));
        assert_eq!(Codec::from_encoding_name("G729"), None);
        for codec in Codec::ALL {
            assert_eq!(codec.encode(&[0]), vec![codec.silence_byte()]);
            let pcm = [0i16, 1000, -1000, 32000, -32000];
            let back = codec.decode(&codec.encode(&pcm));
            assert_eq!(back.len(), pcm.len());
            assert_eq!(codec.encode(&back), codec.encode(&pcm));
        }
    }
}
