//! Where a request comes from, for the log: the TCP peer, or, when the peer is one of the
//! operator's TLS-terminating proxies (`--trusted-proxies`), the client its
//! `X-Forwarded-For` names. A header from anyone else is ignored, so a client cannot choose
//! the address it is logged under. `X-Forwarded-Proto` and `-Host` are never read: URLs
//! come from `--public-url`. Nothing is authorised by address.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// The TCP peer of a connection, put in each request's extensions by the listener.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// An address block (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpBlock {
    base: IpAddr,
    prefix: u8,
}

impl FromStr for IpBlock {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let (address, prefix) = match raw.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (raw, None),
        };
        let base: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{raw:?} is not an IP address or CIDR block"))?;
        let width = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= width)
                .ok_or_else(|| format!("{raw:?} has a prefix length outside 0..={width}"))?,
            None => width,
        };
        Ok(Self { base, prefix })
    }
}

impl IpBlock {
    /// Whether `address` lies in the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (self.base, address) {
            (IpAddr::V4(base), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(base) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(base), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(base) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// The address a request is logged under: the peer, or the nearest address in
/// `X-Forwarded-For` that is not a trusted proxy when the peer is one.
pub(super) fn source_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpBlock]) -> IpAddr {
    let is_trusted = |address: IpAddr| trusted.iter().any(|block| block.contains(address));
    if !is_trusted(peer) {
        return peer;
    }
    // Proxies append, so the list reads client, proxy 1, proxy 2…: walk it from the end
    // and stop at the first hop the operator does not run.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    let mut source = peer;
    for hop in hops.iter().rev() {
        let Ok(address) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        source = address;
        if !is_trusted(address) {
            break;
        }
    }
    source
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn blocks(raw: &[&str]) -> Vec<IpBlock> {
        raw.iter().map(|raw| raw.parse().expect("block")).collect()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                "x-forwarded-for",
                HeaderValue::from_str(value).expect("header"),
            );
        }
        headers
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().expect("ip")
    }

    #[test]
    fn blocks_parse_and_match() {
        let block: IpBlock = "10.1.0.0/16".parse().expect("block");
        assert!(block.contains(ip("10.1.200.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(block.contains(ip("::ffff:10.1.0.9")));
        let v6: IpBlock = "2001:db8::/32".parse().expect("block");
        assert!(v6.contains(ip("2001:db8:1::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(
            "0.0.0.0/0"
                .parse::<IpBlock>()
                .expect("all")
                .contains(ip("8.8.8.8"))
        );
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129", ""] {
            assert!(bad.parse::<IpBlock>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let trusted = blocks(&["10.0.0.0/8"]);
        let header = forwarded(&["203.0.113.7, 10.0.0.2"]);
        // From a proxy: the client it names.
        assert_eq!(
            source_address(ip("10.0.0.1"), &header, &trusted),
            ip("203.0.113.7")
        );
        // From anyone else: the peer, whatever the header says.
        assert_eq!(
            source_address(ip("198.51.100.9"), &header, &trusted),
            ip("198.51.100.9")
        );
        assert_eq!(source_address(ip("10.0.0.1"), &header, &[]), ip("10.0.0.1"));
        // A client's own forged entries sit left of the first untrusted hop: ignored.
        let forged = forwarded(&["1.2.3.4", "203.0.113.7"]);
        assert_eq!(
            source_address(ip("10.0.0.1"), &forged, &trusted),
            ip("203.0.113.7")
        );
        // Garbage stops the walk at the last address that parsed.
        let garbage = forwarded(&["nonsense, 10.0.0.3"]);
        assert_eq!(
            source_address(ip("10.0.0.1"), &garbage, &trusted),
            ip("10.0.0.3")
        );
    }
}
