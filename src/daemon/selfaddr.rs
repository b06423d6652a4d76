//! This host's own addresses, for `ignoreself`: a jail never bans the
//! machine it protects (a misconfigured proxy or a local health check
//! would otherwise lock the admin out).

use std::net::IpAddr;

use crate::addr::AddrList;

/// Every address configured on an interface, plus loopback.
pub fn addresses() -> AddrList {
    let mut list = AddrList::new();
    for a in ["127.0.0.0/8", "::1"] {
        let _ = list.push_str(a);
    }
    match nix::ifaddrs::getifaddrs() {
        Ok(ifaces) => {
            for iface in ifaces {
                let Some(addr) = iface.address else { continue };
                let ip: Option<IpAddr> = if let Some(v4) = addr.as_sockaddr_in() {
                    Some(IpAddr::V4(v4.ip()))
                } else {
                    addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
                };
                if let Some(ip) = ip {
                    list.push(ipnet::IpNet::from(ip));
                }
            }
        }
        Err(e) => tracing::warn!("cannot list this host's addresses (ignoreself): {e}"),
    }
    list
}
