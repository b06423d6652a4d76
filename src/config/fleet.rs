//! `[fleet]`: sharing bans with other hosts through Redis (or Valkey).
//! Read here, used by `crate::fleet` (the link) and the core (the policy
//! for remote bans).

use std::path::PathBuf;
use std::time::Duration;

use super::duration::parse_duration;
use super::keys;
use super::reader::{Diagnostics, Table};

/// The validated `[fleet]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// `redis://` or `rediss://` (TLS) URL of the server.
    pub url: String,
    /// File holding the password (the TOML holds no secret).
    pub password_file: Option<PathBuf>,
    /// PEM certificates of the CAs a `rediss://` server's certificate is
    /// checked against (instead of the system's store).
    pub ca_file: Option<PathBuf>,
    /// Redis Sentinels (`redis://HOST:PORT`) that say which server is the
    /// master: then the url's host is the master's name as they know it.
    pub sentinels: Option<Vec<String>>,
    /// This host's name in the fleet (its keys are named after it).
    pub host: String,
    /// Jails whose bans are shared; `None`: every jail.
    pub publish: Option<Vec<String>>,
    /// Apply other hosts' bans.
    pub accept: bool,
    /// Origins whose bans are applied; `None`: every fleet member.
    pub trust: Option<Vec<String>>,
    /// Remote bans last at most this long (permanent ones too).
    pub max_bantime: Duration,
    /// Distinct origins that must ban an address before it is banned here.
    pub quorum: u32,
    /// Remote bans accepted per origin and second (a burst of a minute's
    /// worth is allowed): a compromised host cannot ban the world at once.
    pub max_rate: u32,
}

impl FleetConfig {
    /// Whether bans of `jail` are published.
    pub fn publishes(&self, jail: &str) -> bool {
        self.publish
            .as_ref()
            .is_none_or(|l| l.iter().any(|j| j == jail))
    }

    /// Whether bans from `origin` may be applied.
    pub fn trusts(&self, origin: &str) -> bool {
        self.accept
            && origin != self.host
            && self
                .trust
                .as_ref()
                .is_none_or(|l| l.iter().any(|o| o == origin))
    }
}

/// A fleet member's name: what may appear in a Redis key and an ACL key
/// pattern without meaning more (no `:`, `*`, `?`, `[`).
pub fn valid_host(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// This machine's host name (the default `host`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The last layer that has `key` (later files win).
fn pick<'x, 'a, 'd>(layers: &'x [&'x Table<'a, 'd>], key: &str) -> Option<&'x Table<'a, 'd>> {
    layers.iter().rev().find(|t| t.has(key)).copied()
}

/// Read `[fleet]` from the files' root tables; `None` when absent.
pub fn read(roots: &[Table], diags: &Diagnostics) -> Option<FleetConfig> {
    let tables: Vec<Table> = roots.iter().filter_map(|r| r.table("fleet")).collect();
    if tables.is_empty() {
        return None;
    }
    for t in &tables {
        t.check_keys(&keys::names(keys::FLEET));
    }
    let layers: Vec<&Table> = tables.iter().collect();
    let before = diags.len();
    let url = match pick(&layers, "url").and_then(|t| t.string("url")) {
        Some(v) => {
            let schemes = ["redis://", "rediss://", "redis+unix://", "unix://"];
            if !schemes.iter().any(|s| v.value.starts_with(s)) {
                v.error(
                    diags,
                    format!(
                        "fleet.url must start with redis://, rediss:// or redis+unix:// (a local socket), not {:?}",
                        v.value
                    ),
                );
            } else if v.value.starts_with("rediss://") && !crate::fleet::TLS {
                v.error(
                    diags,
                    "fleet.url: rediss:// (TLS) is not supported by this build; use redis:// over a protected network or a TLS tunnel",
                );
            } else if v.value.starts_with("rediss://") && v.value.contains("#insecure") {
                v.error(
                    diags,
                    "fleet.url: #insecure (no certificate check) is refused: give the server's CA in fleet.ca_file",
                );
            } else if redis_url_has_password(&v.value) {
                v.error(
                    diags,
                    "fleet.url must not hold a password: put it in password_file",
                );
            }
            v.value
        }
        None => {
            tables[tables.len() - 1].error("[fleet] needs url = \"redis://HOST:PORT\"");
            String::new()
        }
    };
    let password_file = pick(&layers, "password_file")
        .and_then(|t| t.string("password_file"))
        .and_then(|v| {
            let p = PathBuf::from(&v.value);
            if p.is_absolute() {
                Some(p)
            } else {
                v.error(diags, "fleet.password_file must be an absolute path");
                None
            }
        });
    let ca_file = pick(&layers, "ca_file")
        .and_then(|t| t.string("ca_file"))
        .and_then(|v| {
            let p = PathBuf::from(&v.value);
            if !p.is_absolute() {
                v.error(diags, "fleet.ca_file must be an absolute path");
                None
            } else if !url.starts_with("rediss://") {
                v.error(diags, "fleet.ca_file is for a rediss:// (TLS) url");
                None
            } else {
                Some(p)
            }
        });
    let sentinels = pick(&layers, "sentinels")
        .and_then(|t| t.strings("sentinels"))
        .map(|items| {
            for i in &items {
                if !i.value.starts_with("redis://") && !i.value.starts_with("rediss://") {
                    i.error(
                        diags,
                        format!(
                            "fleet.sentinels: {:?} must be redis://HOST:PORT or rediss://HOST:PORT",
                            i.value
                        ),
                    );
                } else if redis_url_has_password(&i.value) {
                    i.error(diags, "fleet.sentinels must not hold a password");
                }
            }
            items.into_iter().map(|i| i.value).collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty());
    if sentinels.is_some() && !url.starts_with("redis://") && !url.starts_with("rediss://") {
        tables[tables.len() - 1].error(
            "with fleet.sentinels, fleet.url is redis://[USER@]MASTER-NAME (or rediss://): the Sentinels say where that master is",
        );
    }
    let host = match pick(&layers, "host").and_then(|t| t.string("host")) {
        Some(v) => {
            if !valid_host(&v.value) {
                v.error(
                    diags,
                    format!(
                        "fleet.host {:?} must be 1-64 letters, digits, '-', '_' or '.'",
                        v.value
                    ),
                );
            }
            v.value
        }
        None => {
            let h = hostname();
            if !valid_host(&h) {
                tables[tables.len() - 1].error(format!(
                    "this machine's host name {h:?} cannot name it in the fleet: set fleet.host"
                ));
            }
            h
        }
    };
    let names = |key: &str| -> Option<Vec<String>> {
        let items = pick(&layers, key).and_then(|t| t.strings(key))?;
        for i in &items {
            if !valid_host(&i.value) {
                i.error(
                    diags,
                    format!("fleet.{key}: {:?} is not a valid name", i.value),
                );
            }
        }
        Some(items.into_iter().map(|i| i.value).collect())
    };
    let publish = names("publish");
    let trust = names("trust");
    let accept = pick(&layers, "accept")
        .and_then(|t| t.bool("accept"))
        .is_none_or(|v| v.value);
    let max_bantime =
        match pick(&layers, "max_bantime").and_then(|t| t.text_or_integer("max_bantime")) {
            None => Duration::from_secs(86_400),
            Some(v) => match parse_duration(&v.value) {
                Ok(d) if d >= Duration::from_secs(1) => d,
                Ok(_) => {
                    v.error(diags, "fleet.max_bantime must be at least 1s");
                    Duration::from_secs(86_400)
                }
                Err(e) => {
                    v.error(diags, format!("fleet.max_bantime: {e}"));
                    Duration::from_secs(86_400)
                }
            },
        };
    let quorum = pick(&layers, "quorum")
        .and_then(|t| t.integer("quorum", 1..=100))
        .map_or(1, |v| v.value as u32);
    let max_rate = pick(&layers, "max_rate")
        .and_then(|t| t.integer("max_rate", 1..=1_000_000))
        .map_or(1000, |v| v.value as u32);
    (diags.len() == before).then_some(FleetConfig {
        url,
        password_file,
        ca_file,
        sentinels,
        host,
        publish,
        accept,
        trust,
        max_bantime,
        quorum,
        max_rate,
    })
}

/// Whether a redis URL carries a password (`redis://user:secret@host`,
/// `redis+unix:///path?pass=secret`).
fn redis_url_has_password(url: &str) -> bool {
    if let Some((_, query)) = url.split_once('?') {
        if query.split('&').any(|kv| kv.starts_with("pass=")) {
            return true;
        }
    }
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_seen() {
        assert!(redis_url_has_password("redis://a:b@h:6379"));
        assert!(redis_url_has_password("redis://:b@h"));
        assert!(!redis_url_has_password("redis://web1@h:6379/0"));
        assert!(!redis_url_has_password("redis://h:6379"));
        assert!(redis_url_has_password(
            "redis+unix:///run/r.sock?user=a&pass=x"
        ));
        assert!(!redis_url_has_password("redis+unix:///run/r.sock?user=a"));
    }

    #[test]
    fn host_names_fit_keys_and_acl_patterns() {
        assert!(valid_host("web-1.example"));
        for bad in ["", "a:b", "a*", "a?", "a[b]", "a b"] {
            assert!(!valid_host(bad), "{bad}");
        }
    }
}
