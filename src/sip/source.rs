//! The key a remote party is counted and limited by: an IPv4 address, or an IPv6 /64 (one
//! host usually owns a whole /64, so counting single IPv6 addresses would let one host
//! rotate through 2^64 of them). IPv4-mapped IPv6 addresses count as their IPv4 address.
//!
//! Owns: that mapping. Must not touch: anything else.

use std::net::IpAddr;

/// A source as the limits see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKey {
    V4(u32),
    V6Prefix(u64),
}

impl From<IpAddr> for SourceKey {
    fn from(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(v4) => SourceKey::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey::V4(v4.into()),
                None => SourceKey::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceKey::V4(v4) => write!(f, "{}", std::net::Ipv4Addr::from(*v4)),
            SourceKey::V6Prefix(p) => write!(f, "{}/64", std::net::Ipv6Addr::from(u128::from(*p) << 64)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_hosts_of_one_slash64_are_one_source_and_mapped_v4_is_v4() {
        let a = SourceKey::from("2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(a, SourceKey::from("2001:db8::ffff:2".parse::<IpAddr>().unwrap()));
        assert_ne!(a, SourceKey::from("2001:db8:0:1::1".parse::<IpAddr>().unwrap()));
        assert_eq!(SourceKey::from("::ffff:10.0.0.9".parse::<IpAddr>().unwrap()), SourceKey::from("10.0.0.9".parse::<IpAddr>().unwrap()));
        assert_eq!(a.to_string(), "2001:db8::/64");
        assert_eq!(SourceKey::from("127.0.0.2".parse::<IpAddr>().unwrap()).to_string(), "127.0.0.2");
    }
}
