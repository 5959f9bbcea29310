//! Where webhooks may be sent. Private, loopback, link-local and other
//! non-public addresses are refused unless allow-listed (local development),
//! and plain http only where a setting allows it. The delivery client applies
//! `allows` to every address it is about to connect to, so a name that
//! resolves to a private address is refused too.

use std::net::IpAddr;

use ipnet::IpNet;
use url::{Host, Url};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Networks allowed even though they are not public.
    pub allowed: Vec<IpNet>,
    /// Whether `http://` URLs are accepted (local development only).
    pub allow_http: bool,
}

/// Networks no webhook may reach by default: everything that is not a
/// public unicast address.
const BLOCKED: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    // IPv6 forms that carry an IPv4 address, so that a blocked IPv4 address
    // cannot be reached in IPv6 clothing (the well-known NAT64 prefix
    // `64:ff9b::/96` is judged by the address it embeds, in `allows`):
    "::/96",          // IPv4-compatible (deprecated), with :: and ::1
    "::ffff:0:0/96",  // IPv4-mapped
    "64:ff9b:1::/48", // local-use NAT64 (RFC 8215): a private translator
    "2001::/32",      // Teredo
    "2002::/16",      // 6to4
    "::1/128",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10", // site-local (deprecated)
    "ff00::/8",
];

/// The longest URL an endpoint may have.
pub const MAX_URL_LEN: usize = 2048;

/// The IPv4 address a well-known-prefix NAT64 address (`64:ff9b::a.b.c.d`,
/// RFC 6052) translates to.
fn nat64_embedded(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let o = v6.octets();
    (o[..12] == [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0])
        .then(|| std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]))
}

impl AddressPolicy {
    /// Parses `KEYHUB_WEBHOOK_ALLOWED_NETWORKS` (comma-separated CIDRs).
    pub fn parse(networks: &str, allow_http: bool) -> Result<Self, String> {
        let allowed = networks
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .map_err(|_| format!("{s:?} is not a CIDR network"))
            })
            .collect::<Result<_, _>>()?;
        Ok(AddressPolicy {
            allowed,
            allow_http,
        })
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.allowed.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        // ::ffff:127.0.0.1 is 127.0.0.1 to an allow-list (local development
        // lists IPv4 networks); to the block list it is blocked as mapped.
        if let IpAddr::V6(v6) = ip
            && let Some(v4) = v6.to_ipv4_mapped()
            && self.allowed.iter().any(|n| n.contains(&IpAddr::V4(v4)))
        {
            return true;
        }
        // 64:ff9b::a.b.c.d reaches a.b.c.d through a NAT64 gateway: as
        // reachable as that address.
        if let IpAddr::V6(v6) = ip
            && let Some(v4) = nat64_embedded(v6)
        {
            return self.allows(IpAddr::V4(v4));
        }
        !BLOCKED
            .iter()
            .filter_map(|b| b.parse::<IpNet>().ok())
            .any(|n| n.contains(&ip))
    }

    /// Checks a webhook URL before it is stored or called: the scheme, and a
    /// literal address (names are checked when resolved).
    pub fn check_url(&self, raw: &str) -> Result<Url, String> {
        if raw.len() > MAX_URL_LEN {
            return Err(format!(
                "the URL is {} characters long; at most {MAX_URL_LEN} are allowed",
                raw.len()
            ));
        }
        let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => return Err("the URL must use https".into()),
            other => return Err(format!("the URL must use https, not {other}")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the URL must not carry credentials".into());
        }
        let ip = match url.host() {
            None => return Err("the URL has no host".into()),
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
            }
            Some(Host::Domain(_)) => None,
        };
        if let Some(ip) = ip
            && !self.allows(ip)
        {
            return Err(format!("{ip} is not a public address"));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_refused_by_default() {
        let p = AddressPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!p.allows(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(p.allows(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_embedding_ipv4_are_refused() {
        let p = AddressPolicy::default();
        for ip in [
            "::7f00:1",       // IPv4-compatible 127.0.0.1
            "::a00:1",        // IPv4-compatible 10.0.0.1
            "::ffff:1.1.1.1", // mapped, even of a public address
            "::ffff:169.254.169.254",
            "2002:7f00:1::1",                       // 6to4 of 127.0.0.1
            "2002:101:101::1",                      // 6to4 of a public address: a relay
            "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
            "64:ff9b:1::a00:1",                     // local-use NAT64
            "64:ff9b::a00:1",                       // well-known NAT64 of 10.0.0.1
            "64:ff9b::7f00:1",                      // ... of 127.0.0.1
            "64:ff9b::a9fe:a9fe",                   // ... of 169.254.169.254
            "fec0::1",                              // site-local
        ] {
            assert!(!p.allows(ip.parse().unwrap()), "{ip}");
        }
        // The well-known NAT64 prefix with a public address is a public
        // destination on an IPv6-only network.
        assert!(p.allows("64:ff9b::101:101".parse().unwrap()));
        assert!(p.allows("2001:4860:4860::8888".parse().unwrap()));
        // A literal in a URL is refused the same way.
        assert!(p.check_url("https://[::ffff:127.0.0.1]/").is_err());
        assert!(p.check_url("https://[2002:a00:1::1]/").is_err());
        // An allow-list of IPv4 networks still covers their mapped form.
        let dev = AddressPolicy::parse("127.0.0.0/8", true).unwrap();
        assert!(dev.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!dev.allows("::ffff:10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn urls_longer_than_the_cap_are_refused_with_a_reason() {
        let p = AddressPolicy::default();
        let base = "https://hooks.example.com/";
        let at_cap = format!("{base}{}", "a".repeat(MAX_URL_LEN - base.len()));
        assert!(p.check_url(&at_cap).is_ok());
        let err = p.check_url(&format!("{at_cap}a")).unwrap_err();
        assert!(err.contains("2048"), "{err}");
    }

    #[test]
    fn an_allow_list_opens_exactly_its_networks() {
        let p = AddressPolicy::parse("127.0.0.0/8, ::1/128", true).unwrap();
        assert!(p.allows("127.0.0.1".parse().unwrap()));
        assert!(p.allows("::1".parse().unwrap()));
        assert!(!p.allows("10.0.0.1".parse().unwrap()));
        assert!(AddressPolicy::parse("nonsense", false).is_err());
    }

    #[test]
    fn urls_need_https_and_a_public_literal() {
        let p = AddressPolicy::default();
        assert!(p.check_url("https://hooks.example.com/keyhub").is_ok());
        for bad in [
            "http://hooks.example.com/",
            "ftp://example.com/",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://localhost:8443/",
            "https://169.254.169.254/latest/meta-data",
            "https://user:pass@example.com/",
            "not a url",
        ] {
            assert!(p.check_url(bad).is_err(), "{bad}");
        }
        let dev = AddressPolicy::parse("127.0.0.0/8", true).unwrap();
        assert!(dev.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(dev.check_url("http://10.0.0.1/").is_err());
    }
}
