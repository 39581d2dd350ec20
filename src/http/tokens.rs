//! The admin API's bearer tokens and the scope each grants.
//!
//! Owns: matching a presented token against the configured ones without leaking, through
//! timing, how much of it was right or how long the real ones are.
//! Must not touch: requests, headers, the config file, the token file.

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// What a request may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// No token checked (`/healthz`, public `/metrics`).
    Anonymous,
    /// Reads, callers' numbers masked.
    Read,
    /// Everything.
    Admin,
}

/// The configured tokens, kept as SHA-256 digests: every comparison is then between 32
/// bytes, so neither a token's length nor its common prefix with a guess shows in timing.
#[derive(Clone, Default)]
pub struct Tokens {
    admin: Vec<[u8; 32]>,
    read: Vec<[u8; 32]>,
}

impl Tokens {
    pub fn new<S: AsRef<str>>(admin: &[S], read: &[S]) -> Tokens {
        Tokens {
            admin: admin.iter().map(|t| digest(t.as_ref())).collect(),
            read: read.iter().map(|t| digest(t.as_ref())).collect(),
        }
    }

    /// The scope `presented` grants, `None` for an unknown token. Every configured token is
    /// compared, whichever matches.
    pub fn scope_of(&self, presented: &str) -> Option<Access> {
        let presented = digest(presented);
        let any = |set: &[[u8; 32]]| set.iter().fold(Choice::from(0), |acc, t| acc | t.ct_eq(&presented));
        let (admin, read) = (any(&self.admin), any(&self.read));
        if bool::from(admin) {
            Some(Access::Admin)
        } else if bool::from(read) {
            Some(Access::Read)
        } else {
            None
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_grants_its_scope_and_nothing_else_matches() {
        let tokens = Tokens::new(&["admin-token-0123456789"], &["read-token-0123456789", "wall-0123456789abcdef"]);
        assert_eq!(tokens.scope_of("admin-token-0123456789"), Some(Access::Admin));
        assert_eq!(tokens.scope_of("wall-0123456789abcdef"), Some(Access::Read));
        assert_eq!(tokens.scope_of("admin-token-012345678"), None, "a prefix is not the token");
        assert_eq!(tokens.scope_of("admin-token-01234567890"), None);
        assert_eq!(tokens.scope_of(""), None);
        assert_eq!(Tokens::default().scope_of(""), None, "no tokens: nothing matches");
    }

    #[test]
    fn scopes_are_ordered_by_what_they_allow() {
        assert!(Access::Admin > Access::Read && Access::Read > Access::Anonymous);
    }
}
