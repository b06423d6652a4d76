//! One enabled Fail2ban jail as a `[jails.NAME]` table: where it reads
//! (journal or files), its numbers, ignore lists, escalation, ban
//! settings and actions. Every key is written explicitly, so that
//! jailwarden's own `[defaults]` (or another jail.d file) cannot change
//! what the jail does.

use std::path::Path;
use std::time::Duration;

use super::action::{self, ActionOut};
use super::filter::{self, OurFilters, Plan};
use super::ini::{Pos, Spanned};
use super::reader::JailDef;
use super::report::{Kind, Report, toml_list, toml_str};
use super::syntax::{as_bool, split_words, str2seconds};
use crate::config::duration::format_duration;

/// A jail ready to be written.
#[derive(Debug, Clone)]
pub struct JailOut {
    pub name: String,
    /// Fail2ban's section name, when it had to be renamed.
    pub fail2ban_name: String,
    pub pos: Pos,
    /// `key = value` lines of `[jails.NAME]`.
    pub keys: Vec<String>,
    /// Lines of `[jails.NAME.increment]`.
    pub increment: Vec<String>,
    pub actions: Vec<ActionOut>,
    pub plan: Plan,
}

/// A valid jailwarden jail name for a Fail2ban section name.
fn jail_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    while s.starts_with('.') {
        s.remove(0);
    }
    s.truncate(64);
    if s.is_empty() { "jail".into() } else { s }
}

fn secs(d: i64) -> String {
    format_duration(Duration::from_secs(d.max(0).unsigned_abs()))
}

/// Is this value Fail2ban's default (from jail.conf, not the admin's files)?
fn from_stock_jail_conf(v: &Spanned, dir: &Path) -> bool {
    v.pos().file.as_path() == dir.join("jail.conf")
}

/// `ignoreip` entries as jailwarden takes them: addresses and CIDRs
/// (netmasks become prefixes); names are reported.
fn ignore_list(jail: &str, v: &Spanned, report: &mut Report) -> Vec<String> {
    let mut out = Vec::new();
    for w in split_words(v.text()) {
        let entry = match w.split_once('/') {
            Some((a, m)) if m.contains('.') => match (
                a.parse::<std::net::Ipv4Addr>(),
                m.parse::<std::net::Ipv4Addr>(),
            ) {
                (Ok(a), Ok(mask)) => {
                    let bits = u32::from(mask);
                    if bits.leading_ones() + bits.trailing_zeros() == 32 {
                        Some(format!("{a}/{}", bits.leading_ones()))
                    } else {
                        None
                    }
                }
                _ => None,
            },
            _ => {
                let mut l = crate::addr::AddrList::new();
                l.push_str(&w).ok().map(|_| w.clone())
            }
        };
        match entry {
            Some(e) => out.push(e),
            None => report.add(&v.pos(), Some(jail), Kind::LeftOut, format!("ignoreip entry {w}"), "not an address or CIDR range: jailwarden does not look names up for ignoreip (name resolution is attacker-influenced); add its addresses"),
        }
    }
    out
}

/// Where the jail reads: journal terms and/or log paths.
struct Source {
    journal: Vec<String>,
    logpath: Vec<String>,
}

fn source(j: &JailDef, plan: &Plan, ours: &OurFilters, report: &mut Report) -> Option<Source> {
    let name = j.name.as_str();
    let backend = j
        .opt("backend")
        .map_or("auto".to_string(), |v| v.text().trim().to_string());
    let backend_pos = j.opt("backend").map_or_else(|| j.pos.clone(), |v| v.pos());
    let our_match = || -> Vec<String> {
        if plan.ours {
            ours.get(plan.filter.trim_end_matches("-fail2ban"))
                .or_else(|| ours.get(&plan.filter))
                .map(|o| o.journal_match.clone())
                .unwrap_or_default()
        } else {
            Vec::new()
        }
    };
    // The journal match: the jail's own journalmatch, else the filter's
    // (ours when it is ours: it knows the unit names of today's distributions).
    let journal_terms = |report: &mut Report| -> Vec<String> {
        if let Some(v) = j
            .opt("journalmatch")
            .filter(|v| !v.text().trim().is_empty())
        {
            report.carried(Some(name));
            return filter::journal_terms(v);
        }
        let ours = our_match();
        if !ours.is_empty() {
            if let Some((theirs, pos)) = &plan.journalmatch {
                if *theirs != ours {
                    report.add(
                        pos,
                        Some(name),
                        Kind::FellBack,
                        format!("journalmatch = {}", theirs.join(" ")),
                        format!(
                            "jailwarden's {} filter's own match is used: {}",
                            plan.filter,
                            ours.join(" ")
                        ),
                    );
                } else {
                    report.carried(Some(name));
                }
            }
            return ours;
        }
        plan.journalmatch
            .as_ref()
            .map(|(t, _)| t.clone())
            .unwrap_or_default()
    };
    if let Some(opts) = backend.strip_prefix("systemd") {
        if !opts.trim().is_empty() {
            report.add(&backend_pos, Some(name), Kind::LeftOut, format!("backend = {backend}"), "journal options per jail: jailwarden reads one journal for all jails ([daemon] journal_directory for journal files elsewhere)");
        } else {
            report.carried(Some(name));
        }
        let terms = journal_terms(report);
        if terms.is_empty() {
            report.add(&backend_pos, Some(name), Kind::LeftOut, "backend = systemd", "neither the jail nor its filter has a journalmatch: the jail is left out (give it journalmatch = _SYSTEMD_UNIT=...)");
            return None;
        }
        if plan.filter == "recidive" {
            note_recidive(j, report);
        }
        return Some(Source {
            journal: terms,
            logpath: Vec::new(),
        });
    }
    let Some(lp) = j.opt("logpath").filter(|v| !v.text().trim().is_empty()) else {
        report.add(
            &j.pos,
            Some(name),
            Kind::LeftOut,
            "no logpath",
            "the jail reads nothing: left out",
        );
        return None;
    };
    let mut paths = Vec::new();
    let mut found = 0;
    for (line, pos) in lp.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        // "path [head|tail]"
        let path = match line.rsplit_once(' ') {
            Some((p, "head" | "tail")) => p.trim(),
            _ => line,
        };
        if !path.starts_with('/') {
            report.add(
                &pos,
                Some(name),
                Kind::LeftOut,
                format!("logpath {path}"),
                "not an absolute path",
            );
            continue;
        }
        if glob::Pattern::new(path).is_err() {
            report.add(
                &pos,
                Some(name),
                Kind::LeftOut,
                format!("logpath {path}"),
                "not a valid glob",
            );
            continue;
        }
        found += glob::glob(path)
            .map(|g| g.flatten().filter(|p| p.exists()).count())
            .unwrap_or(0);
        paths.push(path.to_string());
    }
    if plan.filter == "recidive" {
        // Our recidive reads our own ban events in the journal, and
        // Fail2ban's log for the history from before the move.
        let terms = our_match();
        report.add(&lp.pos(), Some(name), Kind::Translated, format!("logpath = {}", paths.join(" ")), "recidive also reads jailwarden's own ban events from the journal (and keeps Fail2ban's log for the bans from before the move)");
        return Some(Source {
            journal: terms,
            logpath: paths,
        });
    }
    if found == 0 && backend == "auto" {
        let terms = journal_terms(report);
        if !terms.is_empty() {
            report.add(&lp.pos(), Some(name), Kind::Translated, format!("logpath = {} (backend = auto)", paths.join(" ")), format!(
                "no such file exists now (Fail2ban would refuse to start the jail): jailwarden reads the journal instead ({})",
                terms.join(" ")
            ));
            return Some(Source {
                journal: terms,
                logpath: Vec::new(),
            });
        }
        report.add(
            &lp.pos(),
            Some(name),
            Kind::Translated,
            format!("logpath = {}", paths.join(" ")),
            "no such file exists now; kept (jailwarden picks files up when they appear)",
        );
    } else if !matches!(backend.as_str(), "auto" | "polling" | "pyinotify" | "gamin") {
        report.add(
            &backend_pos,
            Some(name),
            Kind::Translated,
            format!("backend = {backend}"),
            "jailwarden follows files with inotify",
        );
    } else {
        report.carried(Some(name));
    }
    Some(Source {
        journal: Vec::new(),
        logpath: paths,
    })
}

fn note_recidive(j: &JailDef, report: &mut Report) {
    report.add(
        &j.pos,
        Some(&j.name),
        Kind::Translated,
        "recidive",
        "counts jailwarden's own ban events (MESSAGE_ID of a ban) from the journal",
    );
}

/// Translate an enabled jail; `None` when it is left out (the report says why).
pub fn translate(
    j: &JailDef,
    ours: &OurFilters,
    dir: &Path,
    report: &mut Report,
) -> Option<JailOut> {
    let name = jail_name(&j.name);
    if name != j.name {
        report.add(
            &j.pos,
            Some(&j.name),
            Kind::Translated,
            format!("jail [{}]", j.name),
            format!("renamed {name} (jailwarden jail names are letters, digits, '-', '_' and '.')"),
        );
    }
    let Some(f) = &j.filter else {
        report.add(
            &j.pos,
            Some(&j.name),
            Kind::LeftOut,
            format!("jail [{}]", j.name),
            "no filter: left out",
        );
        return None;
    };
    let plan = filter::plan(j, f, ours, dir, report)?;
    let src = source(j, &plan, ours, report)?;
    let jn = j.name.as_str();
    let mut keys: Vec<String> = vec!["enabled = true".into()];
    keys.push(format!("filter = {}", toml_str(&plan.filter)));
    keys.push(format!("mode = {}", toml_str(&plan.mode)));
    keys.push(format!("journal_match = {}", toml_list(&src.journal)));
    keys.push(format!("logpath = {}", toml_list(&src.logpath)));

    // Numbers.
    let number = |key: &str, report: &mut Report| -> Option<(i64, Pos)> {
        let v = j.opt(key)?;
        match str2seconds(v.text()) {
            Ok(s) => Some((s, v.pos())),
            Err(e) => {
                report.add(
                    &v.pos(),
                    Some(jn),
                    Kind::LeftOut,
                    format!("{key} = {}", v.text()),
                    format!("{e}: jailwarden's default is used"),
                );
                None
            }
        }
    };
    let findtime = number("findtime", report);
    match findtime {
        Some((s, _)) if s > 0 => {
            keys.push(format!("findtime = {}", toml_str(&secs(s))));
            report.carried(Some(jn));
        }
        Some((s, pos)) => report.add(
            &pos,
            Some(jn),
            Kind::LeftOut,
            format!("findtime = {s}"),
            "must be longer than 0s: jailwarden's 10m is used",
        ),
        None => keys.push("findtime = \"10m\"".into()),
    }
    if let Some(v) = j.opt("maxretry") {
        match v.text().trim().parse::<i64>() {
            Ok(n) if (1..=100_000).contains(&n) => {
                keys.push(format!("maxretry = {n}"));
                report.carried(Some(jn));
            }
            Ok(n) if n <= 0 => {
                keys.push("maxretry = 1".into());
                report.add(
                    &v.pos(),
                    Some(jn),
                    Kind::Translated,
                    format!("maxretry = {n}"),
                    "Fail2ban bans at the first failure: maxretry = 1",
                );
            }
            _ => report.add(
                &v.pos(),
                Some(jn),
                Kind::LeftOut,
                format!("maxretry = {}", v.text()),
                "not a number from 1 to 100000: jailwarden's 5 is used",
            ),
        }
    }
    let bantime = number("bantime", report);
    let base_bantime = match bantime {
        Some((s, _)) if s < 0 => {
            keys.push("bantime = \"permanent\"".into());
            report.carried(Some(jn));
            None
        }
        Some((s, _)) if s > 0 => {
            keys.push(format!("bantime = {}", toml_str(&secs(s))));
            report.carried(Some(jn));
            Some(s)
        }
        Some((_, pos)) => {
            report.add(
                &pos,
                Some(jn),
                Kind::LeftOut,
                "bantime = 0",
                "a ban of 0 seconds: jailwarden's 10m is used",
            );
            Some(600)
        }
        None => Some(600),
    };
    if let Some(v) = j.opt("maxmatches") {
        match v.text().trim().parse::<i64>() {
            Ok(n) if (0..=1000).contains(&n) => {
                keys.push(format!("maxmatches = {n}"));
                report.carried(Some(jn));
            }
            _ => report.add(
                &v.pos(),
                Some(jn),
                Kind::LeftOut,
                format!("maxmatches = {}", v.text()),
                "not a number from 0 to 1000",
            ),
        }
    }
    // Ignoring.
    let ignoreip = j
        .opt("ignoreip")
        .map(|v| ignore_list(jn, v, report))
        .unwrap_or_default();
    keys.push(format!("ignoreip = {}", toml_list(&ignoreip)));
    let ignoreself = j.opt("ignoreself").is_none_or(|v| as_bool(v.text()));
    keys.push(format!("ignoreself = {ignoreself}"));
    if let Some(v) = j
        .opt("ignorecommand")
        .filter(|v| !v.text().trim().is_empty())
    {
        report.add(&v.pos(), Some(jn), Kind::LeftOut, format!("ignorecommand = {}", v.text().trim()), "jailwarden has no ignorecommand (a program asked about every failure); list the addresses in ignoreip");
    }
    match j.opt("usedns").map(|v| (v.text().trim().to_lowercase(), v)) {
        Some((u, v)) if (u == "yes" || u == "warn") && !from_stock_jail_conf(v, dir) => {
            keys.push(format!("usedns = {}", toml_str(&u)));
            report.add(&v.pos(), Some(jn), Kind::Translated, format!("usedns = {u}"), "kept; the daemon needs the usedns drop-in (units/jailwarden.service.d/) to reach DNS");
        }
        Some((u, v)) if u == "yes" || u == "warn" => {
            keys.push("usedns = \"no\"".into());
            report.add(&v.pos(), Some(jn), Kind::Translated, format!("usedns = {u} (Fail2ban's default)"), "usedns = \"no\": jailwarden does not resolve host names by default (whoever controls the name chooses the address); set it yourself to keep resolving");
        }
        Some((u, v)) => {
            keys.push("usedns = \"no\"".into());
            if u == "no" {
                report.carried(Some(jn));
            } else {
                report.add(
                    &v.pos(),
                    Some(jn),
                    Kind::Translated,
                    format!("usedns = {u}"),
                    "usedns = \"no\"",
                );
            }
        }
        None => keys.push("usedns = \"no\"".into()),
    }
    for (key, why) in [
        (
            "logencoding",
            "jailwarden reads UTF-8 (other bytes are kept as they are)",
        ),
        (
            "logtimezone",
            "jailwarden reads dates without a zone in the local time zone",
        ),
        ("ignorecache", "jailwarden has no ignore cache"),
    ] {
        if let Some(v) = j.opt(key) {
            let t = v.text().trim();
            if !(t.is_empty()
                || (key == "logencoding" && (t == "auto" || t.eq_ignore_ascii_case("utf-8"))))
            {
                report.add(
                    &v.pos(),
                    Some(jn),
                    Kind::LeftOut,
                    format!("{key} = {t}"),
                    why,
                );
            }
        }
    }
    // Escalation.
    let mut increment = Vec::new();
    let inc = j
        .opt("bantime.increment")
        .is_some_and(|v| as_bool(v.text()));
    if inc && base_bantime.is_some() {
        increment.push("enabled = true".into());
        report.carried(Some(jn));
        // Every number is written: another file's [defaults] or jail table
        // must not change the escalation.
        let mut factor = 1.0;
        if let Some(v) = j.opt("bantime.factor") {
            match v.text().trim().parse::<f64>() {
                Ok(f) if f > 0.0 => {
                    factor = f;
                    report.carried(Some(jn));
                }
                _ => report.add(
                    &v.pos(),
                    Some(jn),
                    Kind::LeftOut,
                    format!("bantime.factor = {}", v.text()),
                    "not a number above 0: 1 is used",
                ),
            }
        }
        increment.push(format!("factor = {factor:?}"));
        if let Some(v) = j
            .opt("bantime.multipliers")
            .filter(|v| !v.text().trim().is_empty())
        {
            let m: Result<Vec<f64>, _> =
                v.text().split_whitespace().map(str::parse::<f64>).collect();
            match m {
                Ok(m) if !m.is_empty() && m.iter().all(|x| *x > 0.0) => {
                    increment.push(format!(
                        "multipliers = [{}]",
                        m.iter()
                            .map(|x| format!("{x:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    report.carried(Some(jn));
                }
                _ => report.add(
                    &v.pos(),
                    Some(jn),
                    Kind::LeftOut,
                    format!("bantime.multipliers = {}", v.text()),
                    "not a list of numbers above 0",
                ),
            }
        }
        if let Some(v) = j
            .opt("bantime.formula")
            .filter(|v| !v.text().trim().is_empty())
        {
            let default = "ban.Time * (1<<(ban.Count if ban.Count<20 else 20)) * banFactor";
            if v.text().split_whitespace().collect::<String>()
                == default.split_whitespace().collect::<String>()
            {
                report.carried(Some(jn));
            } else {
                report.add(&v.pos(), Some(jn), Kind::LeftOut, format!("bantime.formula = {}", v.text()), "a Python expression: jailwarden escalates by factor × 2^(previous bans) or by multipliers");
            }
        }
        match number("bantime.maxtime", report) {
            Some((s, _)) if s > 0 => {
                increment.push(format!("maxtime = {}", toml_str(&secs(s))));
                report.carried(Some(jn));
            }
            Some(_) | None => {
                let base = base_bantime.unwrap_or(600);
                let ours = (base * 7 * 24).min(5 * 7 * 86_400);
                increment.push(format!("maxtime = {}", toml_str(&secs(ours))));
                let pos = j
                    .opt("bantime.increment")
                    .map_or_else(|| j.pos.clone(), |v| v.pos());
                report.add(
                    &pos,
                    Some(jn),
                    Kind::Translated,
                    "bantime.maxtime not set (Fail2ban: no limit)",
                    format!(
                        "jailwarden caps escalated bans at bantime × 168, at most 5w: {}",
                        secs(ours)
                    ),
                );
            }
        }
        match number("bantime.rndtime", report).filter(|(s, _)| *s > 0) {
            Some((s, _)) => {
                increment.push(format!("rndtime = {}", toml_str(&secs(s))));
                report.carried(Some(jn));
            }
            None => increment.push("rndtime = \"0s\"".into()),
        }
        let all = j
            .opt("bantime.overalljails")
            .is_some_and(|v| as_bool(v.text()));
        increment.push(format!("overalljails = {all}"));
    } else {
        increment.push("enabled = false".into());
    }
    // Ban settings and actions.
    let (fw, actions) = action::translate(jn, &j.actions, report);
    match &fw {
        Some(fw) => {
            if let Some(p) = &fw.port {
                match crate::config::ports::parse_ports(p) {
                    Ok(_) => keys.push(format!("port = {}", toml_str(p))),
                    Err(e) => report.add(
                        &j.pos,
                        Some(jn),
                        Kind::LeftOut,
                        format!("port = {p}"),
                        format!("{e}: the ban covers every port"),
                    ),
                }
            }
            match fw.protocol.as_deref().map(str::trim) {
                None | Some("tcp") => keys.push("protocol = \"tcp\"".into()),
                Some("udp") => keys.push("protocol = \"udp\"".into()),
                Some("all" | "tcp,udp" | "udp,tcp") => keys.push("protocol = \"all\"".into()),
                Some(other) => {
                    keys.push("protocol = \"all\"".into());
                    report.add(
                        &j.pos,
                        Some(jn),
                        Kind::Translated,
                        format!("protocol = {other}"),
                        "jailwarden bans tcp, udp or both: both",
                    );
                }
            }
            keys.push(format!(
                "blocktype = {}",
                toml_str(fw.blocktype.as_deref().unwrap_or("reject"))
            ));
        }
        None => {
            report.add(&j.pos, Some(jn), Kind::Translated, "no firewall action", "jailwarden bans in nftables in every jail (backend = \"none\" in [daemon] only logs)");
        }
    }
    if actions.is_empty() {
        keys.push("action = []".into());
    }
    Some(JailOut {
        name,
        fail2ban_name: j.name.clone(),
        pos: j.pos.clone(),
        keys,
        increment,
        actions,
        plan,
    })
}
