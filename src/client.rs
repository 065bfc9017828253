//! Who is on the other end of a request: client IP and user agent.
//!
//! Behind trusted proxies the client is the right-most `X-Forwarded-For` entry that is not
//! itself a trusted proxy: everything left of it was written by the client (or by proxies
//! nobody vouches for) and is never believed. Entries may carry a port (`1.2.3.4:80`,
//! `[2001:db8::1]:443`, as Azure's proxies append); an entry that still does not parse
//! ends the walk, and the request counts as coming from the TCP peer, never from a value
//! further left that the client chose.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use ipnet::IpNet;

const MAX_USER_AGENT: usize = 512;

/// One entry of `LATCHKEY_TRUSTED_PROXIES`: an address or a CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyRange(IpNet);

impl ProxyRange {
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.0.contains(&canonical(*ip))
    }
}

impl FromStr for ProxyRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(ProxyRange(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| ProxyRange(IpNet::from(canonical(ip))))
            .map_err(|_| format!("'{}' is not an IP address or CIDR range", s.escape_debug()))
    }
}

impl std::fmt::Display for ProxyRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, what a dual-stack socket reports) are
/// the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn is_trusted(ip: &IpAddr, trusted: &[ProxyRange]) -> bool {
    trusted.iter().any(|range| range.contains(ip))
}

/// One `X-Forwarded-For` entry: a bare address, or an address with a port.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(canonical)
}

/// The client IP of a request whose TCP peer is `peer`, given its `X-Forwarded-For`
/// header values in order.
pub fn resolve_ip<'a>(
    peer: IpAddr,
    forwarded: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[ProxyRange],
) -> IpAddr {
    let peer = canonical(peer);
    if !is_trusted(&peer, trusted) {
        return peer;
    }
    let entries: Vec<&str> = forwarded.flat_map(|v| v.split(',')).collect();
    for entry in entries.into_iter().rev() {
        match parse_entry(entry) {
            Some(ip) if is_trusted(&ip, trusted) => continue,
            Some(ip) => return ip,
            None => return peer,
        }
    }
    peer
}

/// The client IP: the TCP peer, unless the peer is a trusted proxy (see the module doc).
pub fn client_ip(req: &HttpRequest, trusted: &[ProxyRange]) -> String {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
        return "unknown".into();
    };
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>();
    resolve_ip(peer, forwarded.into_iter(), trusted).to_string()
}

/// Whether the TCP peer is a trusted proxy (whose `Host`-rewriting headers count).
pub fn peer_is_trusted(req: &HttpRequest, trusted: &[ProxyRange]) -> bool {
    req.peer_addr()
        .is_some_and(|a| is_trusted(&a.ip(), trusted))
}

/// What the lockout counts a client by: its IPv4 address, or the /64 network of its IPv6
/// address (one subscriber usually holds a whole /64 and can pick any address in it).
pub fn lockout_key(ip: &str) -> String {
    match ip.parse::<IpAddr>().map(canonical) {
        Ok(IpAddr::V6(v6)) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", Ipv6Addr::from(prefix))
        }
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

pub fn user_agent(req: &HttpRequest) -> String {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(MAX_USER_AGENT).collect())
        .unwrap_or_default()
}

/// Where a request came from: what sessions and the audit log keep of it.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: String,
    pub user_agent: String,
}

/// `LATCHKEY_TRUSTED_PROXIES`, as the app's data for the [`Client`] extractor.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<ProxyRange>);

/// Extractor form of the two above.
impl FromRequest for Client {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trusted = req
            .app_data::<actix_web::web::Data<TrustedProxies>>()
            .map(|t| t.0.as_slice())
            .unwrap_or(&[]);
        std::future::ready(Ok(Client {
            ip: client_ip(req, trusted),
            user_agent: user_agent(req),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(list: &[&str]) -> Vec<ProxyRange> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = proxies(&["10.0.0.1"]);
        assert_eq!(
            resolve_ip(ip("192.0.2.7"), ["1.1.1.1"].into_iter(), &trusted),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let header = ["6.6.6.6, 203.0.113.9, 10.1.2.3"];
        assert_eq!(
            resolve_ip(ip("10.0.0.1"), header.into_iter(), &trusted),
            ip("203.0.113.9")
        );
        // Several header lines read as one list, in order.
        let lines = ["6.6.6.6", "203.0.113.9", "10.1.2.3"];
        assert_eq!(
            resolve_ip(ip("10.0.0.1"), lines.into_iter(), &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ports_are_stripped() {
        let trusted = proxies(&["10.0.0.1"]);
        for (entry, client) in [
            ("203.0.113.9:8443", "203.0.113.9"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("2001:db8::2", "2001:db8::2"),
        ] {
            let header = [entry];
            assert_eq!(
                resolve_ip(ip("10.0.0.1"), header.into_iter(), &trusted),
                ip(client),
                "{entry}"
            );
        }
    }

    #[test]
    fn an_entry_that_does_not_parse_stops_the_walk_at_the_peer() {
        let trusted = proxies(&["10.0.0.1"]);
        for header in [
            "6.6.6.6, garbage",
            "6.6.6.6, unknown",
            "6.6.6.6,",
            "6.6.6.6, 1.2.3.4:x",
        ] {
            assert_eq!(
                resolve_ip(ip("10.0.0.1"), [header].into_iter(), &trusted),
                ip("10.0.0.1"),
                "{header}"
            );
        }
    }

    #[test]
    fn only_trusted_proxies_all_the_way_is_the_peer() {
        let trusted = proxies(&["10.0.0.1", "10.0.0.2"]);
        assert_eq!(
            resolve_ip(ip("10.0.0.1"), ["10.0.0.2"].into_iter(), &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(
            resolve_ip(ip("10.0.0.1"), std::iter::empty(), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let trusted = proxies(&["127.0.0.1"]);
        assert_eq!(
            resolve_ip(
                ip("::ffff:127.0.0.1"),
                ["203.0.113.9"].into_iter(),
                &trusted
            ),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn proxy_ranges_parse_addresses_and_cidrs() {
        let range: ProxyRange = "10.0.0.0/8".parse().unwrap();
        assert!(range.contains(&ip("10.200.1.1")) && !range.contains(&ip("11.0.0.1")));
        let one: ProxyRange = "fd00::1".parse().unwrap();
        assert!(one.contains(&ip("fd00::1")) && !one.contains(&ip("fd00::2")));
        assert!("10.0.0.0/33".parse::<ProxyRange>().is_err());
        assert!("proxy.local".parse::<ProxyRange>().is_err());
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        assert_eq!(lockout_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(lockout_key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(lockout_key("203.0.113.9"), "203.0.113.9");
        assert_eq!(lockout_key("unknown"), "unknown");
    }
}
