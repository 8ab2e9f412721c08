//! Which destinations an outbound request may reach: the SSRF guard's address rules (public
//! addresses only, in every encoding a URL parser accepts; loopback over plain http for
//! development when allowed). Pure; the guarded client applies them to every resolved
//! address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Destinations an outbound request (a webhook delivery, a partner's JWKS) may go to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Destinations {
    /// Development only: plain http, and only to loopback addresses, is allowed too.
    pub allow_loopback_http: bool,
}

impl Destinations {
    /// Whether a connection to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        is_public(ip) || (self.allow_loopback_http && canonical(ip).is_loopback())
    }

    /// Check a subscription URL's form: https (or http to loopback when allowed), a host,
    /// no credentials, and — when the host is an address in any encoding the URL parser
    /// accepts (`0x7f000001`, `[::ffff:127.0.0.1]`) — an allowed one. Names are checked
    /// when they are resolved, at registration and at every delivery.
    pub fn check_url(&self, text: &str) -> std::result::Result<url::Url, String> {
        if text.len() > 2048 {
            return Err("at most 2048 characters".into());
        }
        let url = url::Url::parse(text).map_err(|e| format!("not an absolute URL ({e})"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "a URL with credentials in it is refused: put them nowhere (the signature authenticates us)".into()
            );
        }
        if url.fragment().is_some() {
            return Err("a URL may not have a fragment".into());
        }
        let ip = match url.host() {
            None => return Err("the URL has no host".into()),
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            Some(url::Host::Domain(_)) => None,
        };
        match url.scheme() {
            "https" => {}
            "http" if self.allow_loopback_http => {}
            "http" => return Err("https only (plain http is allowed only to loopback, in development)".into()),
            other => return Err(format!("scheme {other:?} is not https")),
        }
        if let Some(ip) = ip {
            if !self.allows(ip) {
                return Err(format!("{ip} is not a public address"));
            }
            if url.scheme() == "http" && !canonical(ip).is_loopback() {
                return Err("plain http is allowed only to loopback".into());
            }
        }
        Ok(url)
    }
}

/// The IPv4 address inside an IPv4-mapped IPv6 address, else the address itself.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is a globally routable unicast address: not private, loopback,
/// link-local, multicast, broadcast, unspecified, shared (CGNAT), documentation,
/// benchmarking or reserved — and, for IPv6, no such IPv4 address embedded in it
/// (mapped, compatible, NAT64, 6to4) and no Teredo.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded = |hi: usize| Ipv4Addr::new((s[hi] >> 8) as u8, s[hi] as u8, (s[hi + 1] >> 8) as u8, s[hi + 1] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    if s[..6] == [0; 6] {
        // ::/96: unspecified, loopback, IPv4-compatible.
        return !ip.is_unspecified() && !ip.is_loopback() && is_public_v4(embedded(6));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        return is_public_v4(embedded(6));
    }
    if s[0] == 0x2002 {
        return is_public_v4(embedded(1));
    }
    !(ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x2001 && s[1] == 0)
        || s[0] == 0x0100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_destinations_in_every_encoding() {
        let strict = Destinations::default();
        for bad in [
            "https://127.0.0.1/",
            "https://0x7f000001/",
            "https://2130706433/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/",
            "https://172.16.5.4/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[ff02::1]/",
            "https://224.0.0.1/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:7f00:1::]/",
            "http://example.com/",
            "http://127.0.0.1/",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "not a url",
            "https://",
        ] {
            assert!(strict.check_url(bad).is_err(), "{bad} was allowed");
        }
        for good in ["https://example.com/hooks", "https://8.8.8.8/", "https://[2606:4700::1111]/x?y=1"] {
            assert!(strict.check_url(good).is_ok(), "{good} was refused");
        }
        let dev = Destinations { allow_loopback_http: true };
        assert!(dev.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(dev.check_url("http://[::1]:9000/hook").is_ok());
        assert!(dev.check_url("http://10.0.0.1/").is_err(), "development allows loopback, not private networks");
        assert!(dev.check_url("http://8.8.8.8/").is_err(), "plain http only to loopback");
    }
}
