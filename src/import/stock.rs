//! Fail2ban's stock filters: which `filter.d/*.conf` texts Fail2ban has
//! shipped (`stock/filters.txt`: SHA-256 of each normalized text, from
//! every upstream release since 0.9.0 and Debian's package, made by
//! `stock/generate.py`), and how Fail2ban's filter modes map to the modes
//! of jailwarden's filter of the same name.

use std::collections::HashMap;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

const DATA: &str = include_str!("stock/filters.txt");

fn table() -> &'static HashMap<&'static str, Vec<(&'static str, &'static str)>> {
    static T: OnceLock<HashMap<&'static str, Vec<(&'static str, &'static str)>>> = OnceLock::new();
    T.get_or_init(|| {
        let mut m: HashMap<&str, Vec<(&str, &str)>> = HashMap::new();
        for line in DATA.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let mut it = line.splitn(3, ' ');
            if let (Some(name), Some(hash), Some(sources)) = (it.next(), it.next(), it.next()) {
                m.entry(name).or_default().push((hash, sources));
            }
        }
        m
    })
}

/// The text as `generate.py` normalizes it: comment and blank lines
/// dropped, trailing whitespace removed.
pub fn normalize(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        let s = line.trim();
        if s.is_empty() || s.starts_with('#') || s.starts_with(';') {
            continue;
        }
        out.push(line.trim_end());
    }
    out.join("\n")
}

fn digest(text: &str) -> String {
    let h = Sha256::digest(normalize(text).as_bytes());
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// The releases that shipped exactly this `filter.d/NAME.conf` text
/// (e.g. `upstream-1.0.2,debian-bookworm-1.0.2-2`), or `None`.
pub fn shipped_in(name: &str, text: &str) -> Option<&'static str> {
    let d = digest(text);
    table()
        .get(name)?
        .iter()
        .find(|(h, _)| *h == d)
        .map(|(_, s)| *s)
}

/// Whether Fail2ban ever shipped a filter of this name.
pub fn is_stock_name(name: &str) -> bool {
    table().contains_key(name)
}

/// The jailwarden mode for Fail2ban's `mode` of a stock filter, and a
/// note when it is not the same set of patterns. `our_modes` are the
/// modes jailwarden's filter has.
pub fn map_mode(filter: &str, mode: &str, our_modes: &[String]) -> (String, Option<String>) {
    let has = |m: &str| our_modes.iter().any(|o| o == m);
    // Fail2ban modes whose content another name of ours has.
    let mapped: Option<(&str, &str)> = match (filter, mode) {
        ("postfix", "more") => Some((
            "normal",
            "Fail2ban's postfix mode \"more\" is its \"normal\" set",
        )),
        ("postfix", "extra") => Some((
            "auth",
            "Fail2ban's postfix mode \"extra\" is its \"auth\" set",
        )),
        ("postfix", "aggressive") => Some((
            "aggressive",
            "jailwarden's postfix aggressive mode counts every mode's failures (Fail2ban's counts only SASL failures)",
        )),
        ("freeswitch", "extra") => Some((
            "normal",
            "Fail2ban's freeswitch mode \"extra\" is its \"normal\" set",
        )),
        ("nginx-http-auth", "auth") => Some(("auth", "")),
        _ => None,
    };
    if let Some((ours, why)) = mapped {
        if has(ours) || ours == "normal" {
            return (ours.to_string(), (!why.is_empty()).then(|| why.to_string()));
        }
    }
    if mode == "normal" || has(mode) {
        return (mode.to_string(), None);
    }
    (
        "normal".to_string(),
        Some(format!(
            "jailwarden's {filter} filter has no mode {mode:?} (modes: {}): normal is used",
            our_modes.join(", ")
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_and_upstream_texts_are_known() {
        let sshd = std::fs::read_to_string("/etc/fail2ban/filter.d/sshd.conf");
        if let Ok(text) = sshd {
            let s = shipped_in("sshd", &text).expect("Debian's sshd.conf is stock");
            assert!(s.contains("upstream-1.0.2"), "{s}");
            // A changed pattern is not stock; comments and blank lines do not count.
            let changed = text.replacen("Failed", "Faild", 1);
            assert_eq!(shipped_in("sshd", &changed), None);
            let commented = format!("# my notes\n\n{text}\n   ; more\n");
            assert!(shipped_in("sshd", &commented).is_some());
        }
        assert!(is_stock_name("sshd") && is_stock_name("common") && !is_stock_name("my-app"));
        // Every line of the data is well-formed.
        for line in DATA.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 3, "{line}");
            assert_eq!(f[1].len(), 64, "{line}");
        }
    }

    #[test]
    fn modes_map_to_ours() {
        let ours = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let sshd = ours(&["normal", "ddos", "extra", "aggressive"]);
        assert_eq!(
            map_mode("sshd", "aggressive", &sshd),
            ("aggressive".into(), None)
        );
        let pf = ours(&["normal", "rbl", "auth", "ddos", "errors", "aggressive"]);
        assert_eq!(map_mode("postfix", "auth", &pf).0, "auth");
        assert_eq!(map_mode("postfix", "more", &pf).0, "normal");
        let (m, note) = map_mode("sshd", "bogus", &sshd);
        assert_eq!(m, "normal");
        assert!(note.unwrap().contains("no mode \"bogus\""));
    }
}
