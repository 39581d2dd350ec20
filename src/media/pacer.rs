//! The outgoing audio schedule: which 20 ms frame goes out when, with which timestamp.
//!
//! Owns: when the n-th packet of a talkspurt is due (start + n·20 ms, no drift), how many
//! are due at `now`, the late-wake-up skip rule, the RTP timestamp of an instant, and the
//! `Cursor` that cuts prompts (back to back, last frame padded) and looping music into frames.
//! Must not touch: the clock (every instant is passed in), RTP headers, sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// One packet's worth of audio: 20 ms.
pub const PTIME: Duration = Duration::from_millis(20);
/// Bytes of G.711 audio per packet (20 ms at 8 kHz, one byte per sample).
pub const FRAME_BYTES: usize = 160;
/// RTP timestamp units per packet at 8 kHz.
pub const SAMPLES_PER_PACKET: u32 = 160;
/// If more than this many packets are due at once, the driver woke late: send only the
/// newest and skip the time of the others instead of bursting.
pub const MAX_CATCH_UP: u64 = 3;

/// Packets per second.
const PACKETS_PER_SEC: u64 = 50;
const PTIME_NANOS: u64 = 20_000_000;
/// RTP timestamp units per second.
const SAMPLE_RATE: u64 = 8000;
/// Nanoseconds per RTP timestamp unit at 8 kHz.
const NANOS_PER_SAMPLE: u64 = 125_000;

/// The RTP timestamp follows wall time since the session started, so it stays consistent
/// across pauses in sending (RFC 3550 §5.1: timestamps advance while silent).
#[derive(Clone, Copy, Debug)]
pub struct RtpClock {
    origin: Instant,
    initial: u32,
}

impl RtpClock {
    /// A clock reading `initial` at `origin`.
    pub fn new(origin: Instant, initial: u32) -> Self {
        RtpClock { origin, initial }
    }

    /// The timestamp at `at` (8 kHz, wrapping). Instants before the origin read `initial`.
    pub fn timestamp_at(&self, at: Instant) -> u32 {
        // In u64, not u128: this runs for every packet sent.
        let since = at.saturating_duration_since(self.origin);
        let samples = since.as_secs().wrapping_mul(SAMPLE_RATE) + u64::from(since.subsec_nanos()) / NANOS_PER_SAMPLE;
        // Truncation is the modulo-2^32 wrap RTP timestamps are defined with.
        self.initial.wrapping_add(samples as u32)
    }
}

/// What to do at a wake-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Due {
    /// Index of the first packet to send now.
    pub first: u64,
    /// Packets to send now, indices `first..first + send`.
    pub send: u64,
    /// Packet slots skipped before the first of them (late wake-up); 0 normally.
    pub skipped: u64,
}

/// The schedule of one talkspurt: packet n is due at `start + n·20 ms`.
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    start: Instant,
    /// Index of the next packet to send.
    next: u64,
}

impl Pacer {
    /// A schedule whose first packet is due at `start`.
    pub fn new(start: Instant) -> Self {
        Pacer { start, next: 0 }
    }

    /// When packet `n` is due.
    pub fn deadline_of(&self, n: u64) -> Instant {
        // 20 ms · n overflows Duration only after ~10^10 years of one talkspurt.
        let offset = PTIME.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
        self.start.checked_add(offset).unwrap_or(self.start)
    }

    /// When the next packet is due.
    pub fn next_deadline(&self) -> Instant {
        self.deadline_of(self.next)
    }

    /// Index of the next packet to send.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Which packets are due at `now`, applying the skip rule; advances past them.
    pub fn advance(&mut self, now: Instant) -> Due {
        if now < self.start {
            return Due { first: self.next, send: 0, skipped: 0 };
        }
        let elapsed = now.duration_since(self.start);
        let slots = elapsed.as_secs().saturating_mul(PACKETS_PER_SEC) + u64::from(elapsed.subsec_nanos()) / PTIME_NANOS;
        let due_total = slots.min(u64::MAX - 1) + 1;
        let pending = due_total.saturating_sub(self.next);
        let due = if pending > MAX_CATCH_UP {
            Due { first: due_total - 1, send: 1, skipped: pending - 1 }
        } else {
            Due { first: self.next, send: pending, skipped: 0 }
        };
        self.next = self.next.max(due_total);
        due
    }
}

/// Where playback is in its audio; cuts it into `FRAME_BYTES` frames.
#[derive(Debug)]
pub struct Cursor(Audio);

#[derive(Debug)]
enum Audio {
    Prompts {
        token: u64,
        clips: Vec<Arc<[u8]>>,
        clip: usize,
        offset: usize,
    },
    /// `clip` is never empty.
    Music {
        clip: Arc<[u8]>,
        offset: usize,
    },
}

impl Cursor {
    /// Clips back to back; `None` if there is no audio at all.
    pub fn prompts(token: u64, clips: Vec<Arc<[u8]>>) -> Option<Cursor> {
        let mut audio = Audio::Prompts { token, clips, clip: 0, offset: 0 };
        (!audio.exhausted()).then_some(Cursor(audio))
    }

    /// One clip looped from `offset_hint` (modulo its length); `None` if it is empty.
    pub fn music(clip: Arc<[u8]>, offset_hint: usize) -> Option<Cursor> {
        let offset = offset_hint.checked_rem(clip.len())?;
        Some(Cursor(Audio::Music { clip, offset }))
    }

    /// Fills `frame` with the next audio, padding with `silence`. False when nothing is left.
    pub fn fill(&mut self, frame: &mut [u8; FRAME_BYTES], silence: u8) -> bool {
        if self.0.exhausted() {
            return false;
        }
        match &mut self.0 {
            Audio::Prompts { clips, clip, offset, .. } => {
                let mut written = 0;
                while written < FRAME_BYTES && *clip < clips.len() {
                    let rest = clips[*clip].get(*offset..).unwrap_or_default();
                    let n = rest.len().min(FRAME_BYTES - written);
                    frame[written..written + n].copy_from_slice(&rest[..n]);
                    written += n;
                    *offset += n;
                    skip_spent_clips(clips, clip, offset);
                }
                frame[written..].fill(silence);
            }
            Audio::Music { clip, offset } => {
                // Whole runs of the clip at a time: this runs for every waiting caller 50
                // times a second.
                let mut written = 0;
                while written < FRAME_BYTES {
                    let rest = clip.get(*offset..).unwrap_or_default();
                    let n = rest.len().min(FRAME_BYTES - written);
                    frame[written..written + n].copy_from_slice(&rest[..n]);
                    written += n;
                    *offset = (*offset + n) % clip.len();
                }
            }
        }
        true
    }

    /// The token of prompts that have nothing left to send; `None` for music.
    pub fn finished_token(&mut self) -> Option<u64> {
        match self.0 {
            Audio::Prompts { token, .. } => self.0.exhausted().then_some(token),
            Audio::Music { .. } => None,
        }
    }

    /// The byte offset music has reached; `None` for prompts.
    pub fn music_position(&self) -> Option<usize> {
        match self.0 {
            Audio::Music { offset, .. } => Some(offset),
            Audio::Prompts { .. } => None,
        }
    }
}

impl Audio {
    /// Steps over spent and empty clips; true when prompts have nothing left.
    fn exhausted(&mut self) -> bool {
        match self {
            Audio::Prompts { clips, clip, offset, .. } => {
                skip_spent_clips(clips, clip, offset);
                *clip >= clips.len()
            }
            Audio::Music { .. } => false,
        }
    }
}

fn skip_spent_clips(clips: &[Arc<[u8]>], clip: &mut usize, offset: &mut usize) {
    while *clip < clips.len() && *offset >= clips[*clip].len() {
        *clip += 1;
        *offset = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // tests build their own simulated time
    fn t0() -> Instant {
        Instant::now()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rtp_clock_counts_samples_and_wraps() {
        let t = t0();
        let clock = RtpClock::new(t, u32::MAX - 100);
        assert_eq!(clock.timestamp_at(t), u32::MAX - 100);
        assert_eq!(clock.timestamp_at(t + ms(20)), 59);
        assert_eq!(clock.timestamp_at(t + ms(1000)).wrapping_sub(u32::MAX - 100), 8000);
        assert_eq!(clock.timestamp_at(t.checked_sub(ms(5)).unwrap_or(t)), u32::MAX - 100);
    }

    #[test]
    fn deadlines_do_not_drift() {
        let t = t0();
        let mut p = Pacer::new(t + ms(3));
        assert_eq!(p.advance(t), Due { first: 0, send: 0, skipped: 0 });
        assert_eq!(p.advance(t + ms(3)), Due { first: 0, send: 1, skipped: 0 });
        assert_eq!(p.next_deadline(), t + ms(23));
        // A wake-up 7 ms late still aims the next packet at start + 2·20 ms.
        assert_eq!(p.advance(t + ms(30)), Due { first: 1, send: 1, skipped: 0 });
        assert_eq!(p.next_deadline(), t + ms(43));
        assert_eq!(p.advance(t + ms(30)), Due { first: 2, send: 0, skipped: 0 });
        assert_eq!(p.deadline_of(1000), t + ms(20_003));
    }

    #[test]
    fn small_lateness_catches_up_large_lateness_skips() {
        let t = t0();
        let mut p = Pacer::new(t);
        assert_eq!(p.advance(t + ms(59)), Due { first: 0, send: 3, skipped: 0 });
        assert_eq!(p.next_index(), 3);
        // ~0.5 s late: packets 3..=28 are due; send #28 only, skip the time of 3..=27.
        assert_eq!(p.advance(t + ms(560)), Due { first: 28, send: 1, skipped: 25 });
        assert_eq!(p.next_index(), 29);
        assert_eq!(p.next_deadline(), t + ms(580));
    }

    fn clip(len: usize, first: u8) -> Arc<[u8]> {
        (0..len).map(|i| first.wrapping_add(i as u8)).collect()
    }

    fn frames(cursor: &mut Cursor, silence: u8, max: usize) -> Vec<[u8; FRAME_BYTES]> {
        let mut out = Vec::new();
        let mut frame = [0; FRAME_BYTES];
        while out.len() < max && cursor.fill(&mut frame, silence) {
            out.push(frame);
        }
        out
    }

    #[test]
    fn prompts_back_to_back_last_frame_padded() {
        let clips = vec![clip(100, 0), clip(0, 0), clip(100, 100), clip(50, 200)];
        let mut c = Cursor::prompts(7, clips).expect("has audio");
        let mut frame = [0; FRAME_BYTES];
        assert!(c.fill(&mut frame, 0xD5));
        assert_eq!(c.finished_token(), None);
        let expected: Vec<u8> = (0..250).map(|i| i as u8).collect();
        assert_eq!(frame[..], expected[..160]);
        assert!(c.fill(&mut frame, 0xD5));
        assert_eq!(frame[..90], expected[160..]);
        assert!(frame[90..].iter().all(|&b| b == 0xD5));
        assert_eq!(c.finished_token(), Some(7));
        assert!(!c.fill(&mut frame, 0xD5));
        assert!(Cursor::prompts(1, vec![]).is_none());
        assert!(Cursor::prompts(1, vec![clip(0, 0), clip(0, 0)]).is_none());
        assert_eq!(Cursor::prompts(1, vec![clip(1, 0)]).and_then(|c| c.music_position()), None);
    }

    #[test]
    fn frame_count_is_ceil_of_len_over_160() {
        for len in [1usize, 159, 160, 161, 320, 1000] {
            let mut c = Cursor::prompts(1, vec![clip(len, 3)]).expect("has audio");
            assert_eq!(frames(&mut c, 0xFF, 100).len(), len.div_ceil(FRAME_BYTES), "len {len}");
            assert_eq!(c.finished_token(), Some(1));
        }
    }

    #[test]
    fn music_wraps_from_offset_and_short_clips_repeat() {
        let mut c = Cursor::music(clip(200, 0), 350).expect("not empty");
        let f = frames(&mut c, 0xFF, 2);
        let expected: Vec<u8> = (150..200).chain(0..110).map(|i| i as u8).collect();
        assert_eq!(f[0][..], expected[..]);
        assert_eq!(f[1][..2], [110, 111]);
        assert_eq!(c.music_position(), Some(70));
        assert_eq!(c.finished_token(), None);
        let mut c = Cursor::music(clip(7, 0), 0).expect("not empty");
        assert_eq!(frames(&mut c, 0xFF, 1)[0][..9], [0, 1, 2, 3, 4, 5, 6, 0, 1]);
        assert!(Cursor::music(clip(0, 0), 5).is_none());
    }
}
