//! Address blocks in CIDR notation (`10.0.0.0/8`, `fd00::/8`) and the question a
//! listener asks at accept: is this peer inside one of them?

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One block of addresses. Host bits after the prefix are ignored, as `ip route` does,
/// so `127.0.0.1/8` is the same block as `127.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    address: IpAddr,
    prefix: u8,
}

/// Why a text is not a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a CIDR block like 192.168.1.0/24 or fd00::/8: {why}")]
pub struct CidrError {
    pub text: String,
    pub why: &'static str,
}

impl Cidr {
    /// The loopback blocks: what a listener allows unless told otherwise.
    pub fn loopback() -> Vec<Cidr> {
        vec![
            Cidr { address: IpAddr::from([127, 0, 0, 0]), prefix: 8 },
            Cidr { address: IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]), prefix: 128 },
        ]
    }

    /// Whether `peer` is inside. An IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`, what a
    /// dual-stack socket reports) is matched as the IPv4 address it is.
    pub fn contains(&self, peer: IpAddr) -> bool {
        match (self.address, peer.to_canonical()) {
            (IpAddr::V4(block), IpAddr::V4(peer)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(block) & mask == u32::from(peer) & mask
            }
            (IpAddr::V6(block), IpAddr::V6(peer)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(block) & mask == u128::from(peer) & mask
            }
            _ => false,
        }
    }

    /// Whether any of `blocks` holds `peer`.
    pub fn any_contains(blocks: &[Cidr], peer: IpAddr) -> bool {
        blocks.iter().any(|block| block.contains(peer))
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let fail = |why| CidrError { text: text.to_owned(), why };
        let (address, prefix) = text.split_once('/').ok_or_else(|| fail("no /prefix"))?;
        let address: IpAddr = address.parse().map_err(|_| fail("not an IP address before the /"))?;
        // Digits only: `u8::from_str` would also take a leading `+`.
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail("the prefix is not a number"));
        }
        let prefix: u8 = prefix.parse().map_err(|_| fail("the prefix is not a number"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(fail(if max == 32 { "an IPv4 prefix is at most 32" } else { "an IPv6 prefix is at most 128" }));
        }
        // A mapped IPv4 block is written as the IPv4 block it means.
        let (address, prefix) = match address {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (address, prefix),
            },
            _ => (address, prefix),
        };
        Ok(Cidr { address, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_hold_their_addresses_and_no_others() {
        assert!(cidr("127.0.0.0/8").contains(ip("127.255.0.9")));
        assert!(!cidr("127.0.0.0/8").contains(ip("128.0.0.1")));
        assert!(cidr("127.0.0.1/8").contains(ip("127.0.0.3")), "host bits are ignored");
        assert!(cidr("127.0.0.2/32").contains(ip("127.0.0.2")));
        assert!(!cidr("127.0.0.2/32").contains(ip("127.0.0.1")));
        assert!(cidr("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::2")), "an IPv4 block holds no IPv6 address");
        assert!(cidr("::/0").contains(ip("fe80::1")));
        assert!(cidr("fd00::/8").contains(ip("fdab::1")));
        assert!(!cidr("fd00::/8").contains(ip("fe00::1")));
        assert!(cidr("::1/128").contains(ip("::1")));
        assert!(!cidr("::1/128").contains(ip("::2")));
    }

    #[test]
    fn mapped_ipv6_peers_match_ipv4_blocks() {
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!cidr("10.0.0.0/8").contains(ip("::ffff:11.1.2.3")));
        assert!(Cidr::any_contains(&Cidr::loopback(), ip("::ffff:127.0.0.1")));
        assert!(Cidr::any_contains(&Cidr::loopback(), ip("::1")));
        assert!(!Cidr::any_contains(&Cidr::loopback(), ip("192.168.1.1")));
        // Written in mapped form, a block means its IPv4 addresses.
        assert_eq!(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
    }

    #[test]
    fn bad_blocks_are_refused_naming_the_text() {
        for (text, why) in [
            ("10.0.0.0", "no /prefix"),
            ("10.0.0/8", "not an IP address before the /"),
            ("10.0.0.0/33", "an IPv4 prefix is at most 32"),
            ("::/129", "an IPv6 prefix is at most 128"),
            ("10.0.0.0/+8", "the prefix is not a number"),
            ("10.0.0.0/", "the prefix is not a number"),
            ("10.0.0.0/1000", "the prefix is not a number"),
            ("", "no /prefix"),
        ] {
            let err = text.parse::<Cidr>().unwrap_err();
            assert_eq!(err.why, why, "{text}");
            assert!(err.to_string().starts_with(&format!("{text:?} is not a CIDR block")), "{err}");
        }
    }

    #[test]
    fn display_parses_back() {
        for text in ["10.0.0.0/8", "::1/128", "fd00::/8", "0.0.0.0/0"] {
            assert_eq!(cidr(text).to_string(), text);
        }
    }
}
