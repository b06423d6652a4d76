//! `port = "ssh,2222"` as Fail2ban users write it: numbers, ranges
//! (`8000:8080` or `8000-8080`) and service names.

use crate::ban::PortRange;

/// Service names every admin expects, used when `/etc/services` is absent
/// (minimal containers) or lacks them.
const WELL_KNOWN: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("http", 80),
    ("pop3", 110),
    ("sunrpc", 111),
    ("imap", 143),
    ("imap2", 143),
    ("ldap", 389),
    ("https", 443),
    ("submissions", 465),
    ("smtps", 465),
    ("submission", 587),
    ("ldaps", 636),
    ("imaps", 993),
    ("pop3s", 995),
    ("openvpn", 1194),
    ("ms-sql-s", 1433),
    ("mysql", 3306),
    ("rdp", 3389),
    ("ms-wbt-server", 3389),
    ("sip", 5060),
    ("sip-tls", 5061),
    ("postgresql", 5432),
    ("http-alt", 8080),
    ("webcache", 8080),
];

/// Why a port specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("{0:?} is not a port number, range (8000:8080) or known service name")]
    Unknown(String),
    #[error("port range {0:?} is empty or out of 1-65535")]
    BadRange(String),
}

/// Look a service name up in `/etc/services`, then the built-in table.
fn service_port(name: &str) -> Option<u16> {
    if let Ok(text) = std::fs::read_to_string("/etc/services") {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(service), Some(port_proto)) = (words.next(), words.next()) else {
                continue;
            };
            let aliases: Vec<&str> = words.collect();
            if service == name || aliases.contains(&name) {
                if let Some(port) = port_proto.split('/').next().and_then(|p| p.parse().ok()) {
                    return Some(port);
                }
            }
        }
    }
    WELL_KNOWN.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}

fn one_port(text: &str) -> Result<u16, PortError> {
    match text.parse::<u16>() {
        Ok(0) => Err(PortError::BadRange(text.to_string())),
        Ok(p) => Ok(p),
        Err(_) => service_port(text).ok_or_else(|| PortError::Unknown(text.to_string())),
    }
}

/// Parse one entry, which may itself list ports separated by commas.
pub fn parse_ports(spec: &str) -> Result<Vec<PortRange>, PortError> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let range = match part.split_once([':', '-']) {
            // A service name may contain '-' (ftp-data): try it whole first.
            Some(_) if service_port(part).is_some() => {
                let p = one_port(part)?;
                PortRange { first: p, last: p }
            }
            Some((a, b)) => {
                let (first, last) = (one_port(a.trim())?, one_port(b.trim())?);
                if first > last {
                    return Err(PortError::BadRange(part.to_string()));
                }
                PortRange { first, last }
            }
            None => {
                let p = one_port(part)?;
                PortRange { first: p, last: p }
            }
        };
        if !out.contains(&range) {
            out.push(range);
        }
    }
    if out.is_empty() {
        return Err(PortError::Unknown(spec.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(first: u16, last: u16) -> PortRange {
        PortRange { first, last }
    }

    #[test]
    fn numbers_ranges_and_names() {
        assert_eq!(parse_ports("22"), Ok(vec![r(22, 22)]));
        assert_eq!(parse_ports("ssh, 2222"), Ok(vec![r(22, 22), r(2222, 2222)]));
        assert_eq!(parse_ports("8000:8080"), Ok(vec![r(8000, 8080)]));
        assert_eq!(parse_ports("8000-8080"), Ok(vec![r(8000, 8080)]));
        assert_eq!(parse_ports("http,https"), Ok(vec![r(80, 80), r(443, 443)]));
        assert_eq!(parse_ports("ftp-data"), Ok(vec![r(20, 20)]));
    }

    #[test]
    fn refuses_nonsense() {
        assert!(parse_ports("0").is_err());
        assert!(parse_ports("70000").is_err());
        assert!(parse_ports("9000:8000").is_err());
        assert!(parse_ports("no-such-service").is_err());
        assert!(parse_ports("").is_err());
    }
}
