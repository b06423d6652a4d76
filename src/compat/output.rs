//! Fail2ban's output shapes, byte for byte (fail2ban/client/beautifier.py
//! and what its server answers): the status trees, Python `repr` of the
//! lists `banned` prints, the `--with-time` lines. Pure functions.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// One jail as `status JAIL` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JailStatus {
    pub name: String,
    pub currently_failed: u64,
    pub total_failed: u64,
    /// Files read ("File list"); empty with a journal-only jail.
    pub files: Vec<String>,
    /// journalctl-syntax match ("Journal matches"), if it reads the journal.
    pub journal_match: Option<String>,
    pub currently_banned: u64,
    pub total_banned: u64,
    /// In the order they were banned.
    pub banned: Vec<String>,
}

/// `(label, value)` pairs of one section of the tree.
type Section = (&'static str, Vec<(&'static str, String)>);

fn sections(j: &JailStatus, flavor: Flavor) -> Vec<Section> {
    let mut filter = vec![
        ("Currently failed", j.currently_failed.to_string()),
        ("Total failed", j.total_failed.to_string()),
    ];
    // Fail2ban has one backend per jail: files, or the journal.
    if let Some(m) = &j.journal_match {
        if !j.files.is_empty() {
            filter.push(("File list", j.files.join(" ")));
        }
        filter.push(("Journal matches", m.clone()));
    } else {
        filter.push(("File list", j.files.join(" ")));
    }
    let mut actions = vec![
        ("Currently banned", j.currently_banned.to_string()),
        ("Total banned", j.total_banned.to_string()),
    ];
    if flavor != Flavor::Short {
        actions.push(("Banned IP list", j.banned.join(" ")));
    }
    vec![("Filter", filter), ("Actions", actions)]
}

/// Beautifier's tree of one jail, lines prefixed with `pref`.
fn tree(out: &mut Vec<String>, j: &JailStatus, flavor: Flavor, pref: &str) {
    let secs = sections(j, flavor);
    for (n, (title, items)) in secs.iter().enumerate() {
        let last = n + 1 == secs.len();
        out.push(format!("{pref}{} {title}", if last { "`-" } else { "|-" }));
        let p1 = format!("{pref}{}", if last { "   " } else { "|  " });
        for (m, (k, v)) in items.iter().enumerate() {
            let p2 = format!("{p1}{}", if m + 1 == items.len() { "`-" } else { "|-" });
            out.push(format!("{p2} {k}:\t{v}"));
        }
    }
}

/// `status JAIL [flavor]` flavors (Fail2ban's "basic", "short").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Basic,
    Short,
}

/// `status JAIL`.
pub fn jail_status(j: &JailStatus, flavor: Flavor) -> String {
    let mut out = vec![format!("Status for the jail: {}", j.name)];
    tree(&mut out, j, flavor, "");
    out.join("\n")
}

/// `status`: the jail names sorted.
pub fn status(names: &[String]) -> String {
    let mut names = names.to_vec();
    names.sort();
    format!(
        "Status\n|- Number of jail:\t{}\n`- Jail list:\t{}",
        names.len(),
        names.join(", ")
    )
}

/// `status --all [flavor]` (Fail2ban 1.1): the list, then every jail.
pub fn status_all(jails: &[JailStatus], flavor: Flavor) -> String {
    let mut names: Vec<String> = jails.iter().map(|j| j.name.clone()).collect();
    names.sort();
    let mut out = vec![
        "Status".to_string(),
        format!("|- Number of jail:\t{}", names.len()),
        format!("|- Jail list:\t{}", names.join(", ")),
        "`- Status for the jails:".to_string(),
    ];
    for (i, j) in jails.iter().enumerate() {
        let last = i + 1 == jails.len();
        out.push(format!(
            "   {} Jail: {}",
            if last { "`-" } else { "|-" },
            j.name
        ));
        tree(&mut out, j, flavor, if last { "      " } else { "   |  " });
    }
    out.join("\n")
}

/// Python's `repr` of a string.
pub fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr` of a list of strings.
pub fn py_list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| py_str(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `banned`: `[{'sshd': ['192.0.2.1']}, {'nginx': []}]`.
pub fn banned_all(jails: &[(String, Vec<String>)]) -> String {
    let parts: Vec<String> = jails
        .iter()
        .map(|(j, ips)| format!("{{{}: {}}}", py_str(j), py_list(ips)))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// `banned IP...`: per address, the jails banning it: `[['sshd'], []]`.
pub fn banned_ips(per_ip: &[Vec<String>]) -> String {
    format!(
        "[{}]",
        per_ip
            .iter()
            .map(|j| py_list(j))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `get JAIL banned IP...`: 1 or 0 for one address, `[1, 0]` for several.
pub fn banned_flags(flags: &[bool]) -> String {
    if flags.len() == 1 {
        return if flags[0] { "1" } else { "0" }.to_string();
    }
    format!(
        "[{}]",
        flags
            .iter()
            .map(|f| if *f { "1" } else { "0" })
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A ban as `get JAIL banip` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanTimes {
    pub address: String,
    pub banned_at_usec: u64,
    /// 0: permanent.
    pub expires_at_usec: u64,
}

/// Fail2ban's MyTime.time2str: local time, seconds truncated; past year
/// 9999 (its permanent bans) the last second of 9999.
fn time2str(secs: i64, tz: &TimeZone) -> String {
    if secs >= 253_402_214_400 {
        return "9999-12-31 23:59:59".into();
    }
    match Timestamp::from_second(secs) {
        Ok(t) => t
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => "9999-12-31 23:59:59".into(),
    }
}

/// `get JAIL banip [SEP | --with-time]`: ordered by the end of the ban
/// (permanent last, ties in ban order), joined by SEP (default a space),
/// or one `ADDR \tSTART + SECONDS = END` line each.
pub fn banip(bans: &[BanTimes], sep: Option<&str>, tz: &TimeZone) -> String {
    /// Fail2ban's Ticket.MAX_TIME, the end of a permanent ban.
    const MAX_TIME: i64 = 0x7FFF_FFFF_FFFF;
    let end = |b: &BanTimes| -> i64 {
        if b.expires_at_usec == 0 {
            MAX_TIME
        } else {
            (b.expires_at_usec / 1_000_000) as i64
        }
    };
    let mut v: Vec<&BanTimes> = bans.iter().collect();
    v.sort_by_key(|b| end(b)); // stable: ties keep the ban order
    match sep {
        Some("--with-time") => v
            .iter()
            .map(|b| {
                let start = (b.banned_at_usec / 1_000_000) as i64;
                let secs = if b.expires_at_usec == 0 {
                    -1
                } else {
                    ((b.expires_at_usec.saturating_sub(b.banned_at_usec)) as f64 / 1e6).round()
                        as i64
                };
                let e = if secs < 0 { MAX_TIME } else { start + secs };
                format!(
                    "{} \t{} + {secs} = {}",
                    b.address,
                    time2str(start, tz),
                    time2str(e, tz)
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => v
            .iter()
            .map(|b| b.address.as_str())
            .collect::<Vec<_>>()
            .join(other.unwrap_or(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail() -> JailStatus {
        JailStatus {
            name: "sshd".into(),
            currently_failed: 1,
            total_failed: 7,
            files: vec!["/var/log/auth.log".into()],
            journal_match: None,
            currently_banned: 2,
            total_banned: 3,
            banned: vec!["192.0.2.10".into(), "192.0.2.11".into()],
        }
    }

    #[test]
    fn status_trees_as_fail2ban_prints_them() {
        assert_eq!(
            jail_status(&jail(), Flavor::Basic),
            "Status for the jail: sshd\n|- Filter\n|  |- Currently failed:\t1\n|  |- Total failed:\t7\n|  `- File list:\t/var/log/auth.log\n`- Actions\n   |- Currently banned:\t2\n   |- Total banned:\t3\n   `- Banned IP list:\t192.0.2.10 192.0.2.11"
        );
        let mut j = jail();
        j.files.clear();
        j.journal_match = Some("_SYSTEMD_UNIT=sshd.service + _COMM=sshd".into());
        j.banned.clear();
        let s = jail_status(&j, Flavor::Basic);
        assert!(
            s.contains("|  `- Journal matches:\t_SYSTEMD_UNIT=sshd.service + _COMM=sshd\n"),
            "{s}"
        );
        assert!(s.ends_with("`- Banned IP list:\t"), "{s}");
        assert!(!jail_status(&j, Flavor::Short).contains("Banned IP list"));
        assert_eq!(
            status(&["sshd".into(), "nginx-http-auth".into()]),
            "Status\n|- Number of jail:\t2\n`- Jail list:\tnginx-http-auth, sshd"
        );
        let all = status_all(
            &[
                jail(),
                JailStatus {
                    name: "x".into(),
                    ..jail()
                },
            ],
            Flavor::Basic,
        );
        assert!(
            all.contains("`- Status for the jails:\n   |- Jail: sshd\n   |  |- Filter\n"),
            "{all}"
        );
        assert!(all.contains("\n   `- Jail: x\n      |- Filter\n"), "{all}");
    }

    #[test]
    fn python_reprs() {
        assert_eq!(
            banned_all(&[
                (
                    "sshd".into(),
                    vec!["192.0.2.10".into(), "192.0.2.11".into()]
                ),
                ("nginx-http-auth".into(), vec!["2001:db8::1".into()])
            ]),
            "[{'sshd': ['192.0.2.10', '192.0.2.11']}, {'nginx-http-auth': ['2001:db8::1']}]"
        );
        assert_eq!(banned_ips(&[vec!["sshd".into()], vec![]]), "[['sshd'], []]");
        assert_eq!(banned_flags(&[true, false]), "[1, 0]");
        assert_eq!(banned_flags(&[false]), "0");
        assert_eq!(py_str("it's"), "\"it's\"");
        assert_eq!(py_list(&[]), "[]");
    }

    #[test]
    fn banip_order_and_times() {
        let tz = TimeZone::UTC;
        let b = |a: &str, at: u64, exp: u64| BanTimes {
            address: a.into(),
            banned_at_usec: at * 1_000_000,
            expires_at_usec: exp * 1_000_000,
        };
        let bans = [
            b("192.0.2.10", 1_000, 4_600),
            b("192.0.2.11", 1_001, 0),
            b("192.0.2.12", 1_002, 1_602),
        ];
        assert_eq!(banip(&bans, None, &tz), "192.0.2.12 192.0.2.10 192.0.2.11");
        assert_eq!(
            banip(&bans, Some(","), &tz),
            "192.0.2.12,192.0.2.10,192.0.2.11"
        );
        assert_eq!(
            banip(&bans, Some("--with-time"), &tz),
            "192.0.2.12 \t1970-01-01 00:16:42 + 600 = 1970-01-01 00:26:42\n\
             192.0.2.10 \t1970-01-01 00:16:40 + 3600 = 1970-01-01 01:16:40\n\
             192.0.2.11 \t1970-01-01 00:16:41 + -1 = 9999-12-31 23:59:59"
        );
        assert_eq!(banip(&[], None, &tz), "");
    }
}
