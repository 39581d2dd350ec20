//! Digest nonces that verify themselves, and nonce-count replay protection (RFC 7616 §3.3,
//! §5.4 and §5.5).
//!
//! Owns: the nonce secret, the table of the highest `nc` seen per nonce. Must not touch: users,
//! passwords, clocks (wall time is a parameter), IO.
//! Invariants: a nonce is `hex(salt ‖ issued_ms ⊕ mask(salt) ‖ HMAC-SHA-256(secret, issued_ms ‖
//! salt ‖ realm)[..16])`, so any nonce this secret issued is recognised without state, and the
//! issue time is readable only with the secret (`mask(salt)` is an HMAC of the salt: a nonce
//! does not tell a scanner the server's clock or uptime); the replay table
//! holds only nonces that are still fresh and at most `max_tracked` of them — to stay bounded it
//! forgets the oldest ones and from then on treats every nonce issued at or before them as stale.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sha2::Sha256;

/// How far in the future a nonce's timestamp may be (clock steps, other nodes) and still count.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5);
const MAC_LEN: usize = 16;
const NONCE_BYTES: usize = 8 + 8 + MAC_LEN;
const DOMAIN_TAG: &[u8] = b"centralino-nonce-v1";
const MASK_TAG: &[u8] = b"centralino-nonce-time-mask-v1";

/// The identity of a nonce this node issued: when, and a salt that makes it unique.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NonceId {
    issued_ms: u64,
    salt: u64,
}

/// What a nonce is worth now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonceStatus {
    /// Issued by us and still within its lifetime.
    Fresh(NonceId),
    /// Issued by us, but expired (or forgotten by the replay table): answer `stale=true` if the
    /// credentials are right.
    Stale,
    /// Not ours (another secret, e.g. before a restart), or garbage.
    Unknown,
}

/// Issues and checks nonces; remembers nonce counts.
pub struct Nonces {
    mac: Hmac<Sha256>,
    realm: String,
    ttl: Duration,
    max_tracked: usize,
    rng: SmallRng,
    /// Highest `nc` accepted per fresh nonce (`0` for an RFC 2069 use without `qop`).
    used: BTreeMap<NonceId, u32>,
    /// Nonces issued at or before this instant (ms since the epoch) count as stale.
    floor_ms: u64,
}

impl Nonces {
    /// `secret` keys the HMAC (nodes that share it accept each other's nonces); `rng_seed` seeds
    /// the salt. `ttl` is the nonce lifetime; `max_tracked` bounds the replay table.
    pub fn new(
        secret: &[u8; 32],
        realm: &str,
        ttl: Duration,
        max_tracked: usize,
        rng_seed: u64,
    ) -> Nonces {
        Nonces {
            mac: <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
                .expect("HMAC takes keys of any length"),
            realm: realm.to_owned(),
            ttl,
            max_tracked: max_tracked.max(1),
            rng: SmallRng::seed_from_u64(rng_seed),
            used: BTreeMap::new(),
            floor_ms: 0,
        }
    }

    /// A new nonce (64 lower-case hex digits).
    pub fn issue(&mut self, wall: SystemTime) -> String {
        let id = NonceId {
            issued_ms: epoch_ms(wall),
            salt: self.rng.gen(),
        };
        let mut bytes = Vec::with_capacity(NONCE_BYTES);
        bytes.extend_from_slice(&id.salt.to_be_bytes());
        bytes.extend_from_slice(&(id.issued_ms ^ self.time_mask(id.salt)).to_be_bytes());
        bytes.extend_from_slice(&self.tag(id)[..MAC_LEN]);
        hex::encode(bytes)
    }

    /// Whether `nonce` is ours and fresh at `wall`.
    pub fn check(&self, nonce: &str, wall: SystemTime) -> NonceStatus {
        let Some(id) = self.authentic(nonce) else {
            return NonceStatus::Unknown;
        };
        let now_ms = epoch_ms(wall);
        let age_ok = id.issued_ms.saturating_add(duration_ms(self.ttl)) >= now_ms;
        let not_future = id.issued_ms <= now_ms.saturating_add(duration_ms(MAX_CLOCK_SKEW));
        if age_ok && not_future && id.issued_ms > self.floor_ms {
            NonceStatus::Fresh(id)
        } else {
            NonceStatus::Stale
        }
    }

    /// Records a use of the fresh nonce `id` with nonce count `nc` (`0` without `qop`). `false`
    /// when `nc` is not above the highest count already accepted for it: a replay, or a client
    /// that reuses counts; either way the caller asks for a new nonce.
    /// Call only after the response has been verified, so a forged count cannot block a nonce.
    pub fn record_use(&mut self, id: NonceId, nc: u32, wall: SystemTime) -> bool {
        self.forget_expired(wall);
        if id.issued_ms <= self.floor_ms {
            return false;
        }
        match self.used.get_mut(&id) {
            Some(highest) if nc <= *highest => return false,
            Some(highest) => *highest = nc,
            None => {
                self.used.insert(id, nc);
            }
        }
        while self.used.len() > self.max_tracked {
            // Bounded memory: forget the oldest nonce, and stop accepting it and all older ones.
            let Some((oldest, _)) = self.used.pop_first() else {
                break;
            };
            self.floor_ms = self.floor_ms.max(oldest.issued_ms);
        }
        true
    }

    /// How many nonces the replay table holds.
    #[cfg_attr(not(test), allow(dead_code))] // read by tests and for diagnostics
    pub fn tracked(&self) -> usize {
        self.used.len()
    }

    /// Drops the counts of nonces that are no longer fresh.
    pub fn forget_expired(&mut self, wall: SystemTime) {
        let cutoff = epoch_ms(wall).saturating_sub(duration_ms(self.ttl));
        self.used = self.used.split_off(&NonceId {
            issued_ms: cutoff,
            salt: 0,
        });
    }

    fn authentic(&self, nonce: &str) -> Option<NonceId> {
        if nonce.len() != NONCE_BYTES * 2 {
            return None;
        }
        let bytes = hex::decode(nonce).ok()?;
        let salt = u64::from_be_bytes(bytes[0..8].try_into().ok()?);
        let masked = u64::from_be_bytes(bytes[8..16].try_into().ok()?);
        let id = NonceId { issued_ms: masked ^ self.time_mask(salt), salt };
        let mut mac = self.mac.clone();
        mac.update(&Self::mac_input(id, &self.realm));
        mac.verify_truncated_left(&bytes[16..]).ok()?;
        Some(id)
    }

    /// What hides the issue time: a keyed function of the (random, public) salt.
    fn time_mask(&self, salt: u64) -> u64 {
        let mut mac = self.mac.clone();
        mac.update(MASK_TAG);
        mac.update(&salt.to_be_bytes());
        let out = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&out[..8]);
        u64::from_be_bytes(first)
    }

    fn tag(&self, id: NonceId) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(&Self::mac_input(id, &self.realm));
        mac.finalize().into_bytes().to_vec()
    }

    fn mac_input(id: NonceId, realm: &str) -> Vec<u8> {
        let mut input = Vec::with_capacity(DOMAIN_TAG.len() + 16 + realm.len());
        input.extend_from_slice(DOMAIN_TAG);
        input.extend_from_slice(&id.issued_ms.to_be_bytes());
        input.extend_from_slice(&id.salt.to_be_bytes());
        input.extend_from_slice(realm.as_bytes());
        input
    }
}

fn epoch_ms(wall: SystemTime) -> u64 {
    wall.duration_since(UNIX_EPOCH).map_or(0, duration_ms)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];

    fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn nonces() -> Nonces {
        Nonces::new(
            &SECRET,
            "centralino.local",
            Duration::from_secs(300),
            1000,
            1,
        )
    }

    #[test]
    fn issued_nonce_is_fresh_until_ttl_then_stale() {
        let mut n = nonces();
        let nonce = n.issue(t(0));
        assert_eq!(nonce.len(), 64);
        assert!(matches!(n.check(&nonce, t(0)), NonceStatus::Fresh(_)));
        assert!(matches!(n.check(&nonce, t(300)), NonceStatus::Fresh(_)));
        assert_eq!(n.check(&nonce, t(301)), NonceStatus::Stale);
    }

    /// Two nonces issued a millisecond apart share no readable time: without the secret,
    /// no 8-byte field moves by the elapsed time (the old layout began with the clock).
    #[test]
    fn a_nonce_does_not_show_the_clock() {
        let mut n = nonces();
        let issued = epoch_ms(t(0));
        for _ in 0..50 {
            let bytes = hex::decode(n.issue(t(0))).unwrap();
            for field in bytes.chunks(8) {
                let value = u64::from_be_bytes(field.try_into().unwrap());
                assert!(value.abs_diff(issued) > 1 << 40, "a field within reach of the clock: {value} vs {issued}");
            }
        }
    }

    #[test]
    fn nonces_are_unique_within_one_millisecond() {
        let mut n = nonces();
        assert_ne!(n.issue(t(0)), n.issue(t(0)));
    }

    #[test]
    fn tampered_foreign_or_garbage_nonces_are_unknown() {
        let mut n = nonces();
        let nonce = n.issue(t(0));
        let mut tampered = nonce.clone().into_bytes();
        tampered[3] = if tampered[3] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(n.check(&tampered, t(0)), NonceStatus::Unknown);
        let other_secret = Nonces::new(
            &[8; 32],
            "centralino.local",
            Duration::from_secs(300),
            10,
            1,
        );
        assert_eq!(other_secret.check(&nonce, t(0)), NonceStatus::Unknown);
        let other_realm = Nonces::new(&SECRET, "elsewhere", Duration::from_secs(300), 10, 1);
        assert_eq!(other_realm.check(&nonce, t(0)), NonceStatus::Unknown);
        for junk in ["", "abc", &"z".repeat(64), &nonce[..62]] {
            assert_eq!(n.check(junk, t(0)), NonceStatus::Unknown);
        }
    }

    #[test]
    fn nonce_from_the_future_is_stale() {
        let mut n = nonces();
        let nonce = n.issue(t(60));
        assert_eq!(n.check(&nonce, t(0)), NonceStatus::Stale);
    }

    #[test]
    fn nonce_count_must_grow() {
        let mut n = nonces();
        let nonce = n.issue(t(0));
        let NonceStatus::Fresh(id) = n.check(&nonce, t(1)) else {
            panic!()
        };
        assert!(n.record_use(id, 1, t(1)));
        assert!(!n.record_use(id, 1, t(2)));
        assert!(n.record_use(id, 2, t(2)));
        assert!(!n.record_use(id, 1, t(3)));
        // RFC 2069 mode (count 0) is single use.
        let second = n.issue(t(0));
        let NonceStatus::Fresh(id2) = n.check(&second, t(1)) else {
            panic!()
        };
        assert!(n.record_use(id2, 0, t(1)));
        assert!(!n.record_use(id2, 0, t(1)));
    }

    #[test]
    fn replay_table_forgets_expired_nonces() {
        let mut n = nonces();
        let nonce = n.issue(t(0));
        let NonceStatus::Fresh(id) = n.check(&nonce, t(0)) else {
            panic!()
        };
        assert!(n.record_use(id, 1, t(0)));
        assert_eq!(n.tracked(), 1);
        n.forget_expired(t(400));
        assert_eq!(n.tracked(), 0);
    }

    #[test]
    fn full_replay_table_makes_the_oldest_nonces_stale() {
        let mut n = Nonces::new(&SECRET, "r", Duration::from_secs(300), 2, 1);
        let a = n.issue(t(0));
        let b = n.issue(t(1));
        let c = n.issue(t(2));
        for (nonce, at) in [(&a, 0), (&b, 1), (&c, 2)] {
            let NonceStatus::Fresh(id) = n.check(nonce, t(at)) else {
                panic!()
            };
            assert!(n.record_use(id, 1, t(at)));
        }
        assert_eq!(n.tracked(), 2);
        // `a` was forgotten, so it must not be usable again with nc=1.
        assert_eq!(n.check(&a, t(3)), NonceStatus::Stale);
        assert!(matches!(n.check(&b, t(3)), NonceStatus::Fresh(_)));
    }
}
