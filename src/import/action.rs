//! A jail's Fail2ban actions: firewall actions become the jail's nftables
//! settings (ports, protocol, drop or reject), mail actions jailwarden's
//! mail action, `hostsdeny` its hosts-deny action, and everything else a
//! `command` action with the argv Fail2ban's `actionban` would run, for
//! review. A command that needs a shell (pipes, `&&`, redirections,
//! variables) is never made a shell string run blindly: it is written
//! commented out, with what it would be.

use super::ini::Spanned;
use super::reader::ActionRef;
use super::report::{Kind, Report, toml_list, toml_str};

/// What the firewall actions say about the jail's ban.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Firewall {
    /// The first firewall action's name.
    pub action: String,
    /// `None`: every port.
    pub port: Option<String>,
    pub protocol: Option<String>,
    /// `drop` or `reject`.
    pub blocktype: Option<String>,
}

/// An action written to the jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionOut {
    /// Comment lines above it.
    pub comment: String,
    /// `key = value` lines of its `[[jails.NAME.action]]` table.
    pub keys: Vec<String>,
    /// false: written commented out.
    pub active: bool,
}

const FIREWALLS: &[&str] = &[
    "iptables",
    "ip6tables",
    "nftables",
    "firewallcmd",
    "shorewall",
    "ufw",
    "ipset",
    "pf",
    "bsd-ipfw",
    "ipfw",
    "npf",
    "apf",
    "route",
    "osx-ipfw",
    "osx-afctl",
    "ipfilter",
    "symbiosis-blacklist",
    "netscaler",
];

fn is_firewall(name: &str) -> bool {
    FIREWALLS.iter().any(|f| {
        name == *f || name.starts_with(&format!("{f}-")) || name.starts_with(&format!("{f}_"))
    })
}

fn is_mail(name: &str) -> bool {
    name == "mail"
        || name == "sendmail"
        || name.starts_with("mail-")
        || name.starts_with("sendmail-")
}

fn opt<'a>(a: &'a ActionRef, k: &str) -> Option<&'a Spanned> {
    a.opts.get(k).filter(|v| !v.text().trim().is_empty())
}

fn param<'a>(a: &'a ActionRef, k: &str) -> Option<&'a str> {
    a.params
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.as_str())
}

/// Translate the actions; returns the firewall settings (if any firewall
/// action) and the other actions.
pub fn translate(
    jail: &str,
    actions: &[ActionRef],
    report: &mut Report,
) -> (Option<Firewall>, Vec<ActionOut>) {
    let mut fw: Option<Firewall> = None;
    let mut out = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    for a in actions {
        let label = {
            let base = a
                .opts
                .get("actname")
                .map_or(a.name.clone(), |v| v.text().to_string());
            let mut l = base.clone();
            let mut n = 2;
            while labels.contains(&l) {
                l = format!("{base}-{n}");
                n += 1;
            }
            labels.push(l.clone());
            l
        };
        let what = format!("action {}", a.name);
        if a.python {
            report.add(&a.pos, Some(jail), Kind::LeftOut, what, "a Python action (code run inside Fail2ban): write a command action for what it does");
            continue;
        }
        if is_firewall(&a.name) {
            let allports = a.name.contains("allports")
                || param(a, "type") == Some("allports")
                || opt(a, "type").is_some_and(|t| t.text() == "allports");
            let port = if allports {
                None
            } else {
                opt(a, "port").map(|p| p.text().trim().to_string())
            };
            let port =
                port.filter(|p| p != "0:65535" && p != "1:65535" && p != "any" && !p.is_empty());
            let protocol = opt(a, "protocol").map(|p| p.text().trim().to_string());
            let blocktype = opt(a, "blocktype").map(|b| {
                let t = b.text().to_lowercase();
                if t.contains("reject") || t.contains("unreachable") {
                    "reject".to_string()
                } else {
                    "drop".to_string()
                }
            });
            let this = Firewall {
                action: a.name.clone(),
                port,
                protocol,
                blocktype,
            };
            match &fw {
                None => {
                    if a.name.starts_with("nftables") {
                        report.carried(Some(jail));
                    } else {
                        report.add(&a.pos, Some(jail), Kind::Translated, what, format!(
                            "jailwarden bans in its own nftables sets (table inet jailwarden), with {}{}",
                            this.port.as_deref().map_or("every port".into(), |p| format!("port {p}")),
                            this.blocktype.as_deref().map_or(String::new(), |b| format!(", {b}")),
                        ));
                    }
                    fw = Some(this);
                }
                Some(first) if first.port == this.port && first.protocol == this.protocol => {
                    report.add(&a.pos, Some(jail), Kind::Translated, what, format!("a second firewall action like {}: one nftables rule covers both address families", first.action));
                }
                Some(first) if first.port == this.port => {
                    // tcp and udp on the same ports (asterisk, freeswitch, nsd): both.
                    let first_action = first.action.clone();
                    if let Some(f) = fw.as_mut() {
                        f.protocol = Some("all".into());
                    }
                    report.add(&a.pos, Some(jail), Kind::Translated, what, format!(
                        "a second firewall action like {first_action} for protocol {}: the jail's rule covers tcp and udp",
                        this.protocol.as_deref().unwrap_or("tcp")
                    ));
                }
                Some(first) => {
                    // Other ports too (counter-strike: tcp A, udp B): one
                    // rule on both lists and protocols, broader than Fail2ban's.
                    let first_action = first.action.clone();
                    let port = match (&first.port, &this.port) {
                        (Some(a), Some(b)) => Some(format!("{a},{b}")),
                        _ => None,
                    };
                    let same_protocol = first.protocol == this.protocol;
                    if let Some(f) = fw.as_mut() {
                        f.port = port.clone();
                        if !same_protocol {
                            f.protocol = Some("all".into());
                        }
                    }
                    report.add(&a.pos, Some(jail), Kind::Translated, what, format!(
                        "a second firewall action like {first_action} with other ports: jailwarden has one rule per jail, on {}{} (broader than Fail2ban's two)",
                        port.as_deref().map_or("every port".to_string(), |p| format!("ports {p}")),
                        if same_protocol { "" } else { " for tcp and udp" }
                    ));
                }
            }
            continue;
        }
        if is_mail(&a.name) {
            let Some(dest) = opt(a, "dest") else {
                report.add(
                    &a.pos,
                    Some(jail),
                    Kind::LeftOut,
                    what,
                    "a mail action without dest",
                );
                continue;
            };
            let dests: Vec<String> = dest
                .text()
                .split([',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let mut keys = vec![
                "type = \"mail\"".to_string(),
                format!("name = {}", toml_str(&label)),
                format!("dest = {}", toml_list(&dests)),
            ];
            let mut notes = vec!["one mail per ban with the matched lines, at most 10 an hour (the rest summed up); no whois lookup, no mails when jails start or stop".to_string()];
            match opt(a, "sender").map(|s| s.text().trim().to_string()) {
                Some(s) if !s.contains('<') => keys.push(format!("sender = {}", toml_str(&s))),
                Some(s) => notes.push(format!(
                    "sender {s} is made at run time: jailwarden@<host name> is used"
                )),
                None => {}
            }
            report.add(
                &a.pos,
                Some(jail),
                Kind::Translated,
                what,
                format!("jailwarden's mail action: {}", notes.join("; ")),
            );
            out.push(ActionOut {
                comment: format!("from Fail2ban's action {} ({})", a.name, a.pos),
                keys,
                active: true,
            });
            continue;
        }
        if a.name == "hostsdeny" {
            let mut keys = vec![
                "type = \"hosts-deny\"".to_string(),
                format!("name = {}", toml_str(&label)),
            ];
            if let Some(f) = opt(a, "file") {
                keys.push(format!("path = {}", toml_str(f.text().trim())));
            }
            if let Some(d) = opt(a, "daemon_list") {
                keys.push(format!("daemon = {}", toml_str(d.text().trim())));
            }
            report.add(&a.pos, Some(jail), Kind::Translated, what, "jailwarden's hosts-deny action (one marked block per jail, replaced atomically; needs the hosts-deny drop-in)");
            out.push(ActionOut {
                comment: format!("from Fail2ban's action hostsdeny ({})", a.pos),
                keys,
                active: true,
            });
            continue;
        }
        out.push(command(jail, a, &label, report));
    }
    (fw, out)
}

/// Fail2ban's ban-time tags and ours.
const TAGS: &[(&str, &str)] = &[
    ("ip", "{address}"),
    ("failures", "{failures}"),
    ("bantime", "{bantime}"),
];

/// An action's command as an argv, if it needs no shell: `Err` says why not.
fn argv(cmd: &str) -> Result<Vec<String>, String> {
    let t = cmd.trim();
    // Our placeholders are not shell syntax; literal braces were doubled.
    let mut scan = t.to_string();
    for (_, ours) in TAGS {
        scan = scan.replace(ours, "");
    }
    if t.contains('\n') {
        return Err("several commands (lines)".into());
    }
    for (c, what) in [
        ('|', "a pipe"),
        ('&', "&&, & or a redirection"),
        (';', "several commands (;)"),
        ('>', "a redirection"),
        ('<', "a redirection or a tag jailwarden does not have"),
        ('$', "shell variables or $(...)"),
        ('`', "command substitution"),
        ('*', "a glob"),
        ('?', "a glob"),
        ('(', "a subshell"),
        ('{', "braces"),
        ('~', "a home directory"),
        ('#', "a comment"),
    ] {
        if scan.contains(c) {
            return Err(format!("{what} needs a shell"));
        }
    }
    let words = super::filter::shell_words(t);
    if words.is_empty() {
        return Err("an empty command".into());
    }
    Ok(words)
}

/// Replace Fail2ban's ban-time tags by our placeholders; `Err` names the
/// first tag we do not have.
fn placeholders(cmd: &str) -> Result<String, String> {
    let mut s = cmd.replace('{', "{{").replace('}', "}}");
    for (tag, ours) in TAGS {
        s = s.replace(&format!("<{tag}>"), ours);
    }
    if let Some(start) = s.find('<') {
        if let Some(end) = s[start..].find('>') {
            let tag = &s[start..start + end + 1];
            if !tag.contains(' ') {
                return Err(format!(
                    "the tag {tag} (jailwarden fills in {{address}}, {{failures}}, {{bantime}}, {{jail}}, {{timeout}}, {{family}}, {{net}})"
                ));
            }
        }
    }
    Ok(s)
}

fn command(jail: &str, a: &ActionRef, label: &str, report: &mut Report) -> ActionOut {
    let what = format!("action {}", a.name);
    let mut keys = vec![
        "type = \"command\"".to_string(),
        format!("name = {}", toml_str(label)),
    ];
    let mut problems: Vec<String> = Vec::new();
    let mut shell_keys: Vec<String> = keys.clone();
    for (ours, theirs) in [
        ("ban", "actionban"),
        ("unban", "actionunban"),
        ("start", "actionstart"),
        ("stop", "actionstop"),
    ] {
        let Some(v) = opt(a, theirs) else {
            continue;
        };
        let text = v.text().trim();
        match placeholders(text) {
            Ok(p) => {
                match argv(&p) {
                    Ok(words) => keys.push(format!("{ours} = {}", toml_list(&words))),
                    Err(why) => problems.push(format!("{theirs}: {why}")),
                }
                shell_keys.push(format!(
                    "{ours} = {}",
                    toml_list(&["/bin/sh".into(), "-c".into(), p])
                ));
            }
            Err(why) => {
                problems.push(format!("{theirs}: {why}"));
                shell_keys.push(format!(
                    "{ours} = {}",
                    toml_list(&["/bin/sh".into(), "-c".into(), text.to_string()])
                ));
            }
        }
    }
    for other in [
        "actioncheck",
        "actionflush",
        "actionreload",
        "actionprolong",
        "actionrepair",
    ] {
        if let Some(v) = opt(a, other) {
            report.add(
                &v.pos(),
                Some(jail),
                Kind::LeftOut,
                format!("{other} of action {}", a.name),
                "jailwarden's command actions have ban, unban, start and stop only",
            );
        }
    }
    if !keys.iter().any(|k| k.starts_with("ban = ")) && problems.is_empty() {
        problems.push("no actionban".into());
    }
    if problems.is_empty() {
        report.add(&a.pos, Some(jail), Kind::Translated, what, "a command action running the same argv without a shell: REVIEW it before starting jailwarden");
        ActionOut {
            comment: format!(
                "REVIEW: from Fail2ban's action {} ({}), run without a shell",
                a.name, a.pos
            ),
            keys,
            active: true,
        }
    } else {
        report.add(&a.pos, Some(jail), Kind::LeftOut, what, format!(
            "written commented out for review, not active ({}): turn it into a program or script taking {{address}} as an argument",
            problems.join("; ")
        ));
        ActionOut {
            comment: format!(
                "REVIEW: Fail2ban's action {} ({}) is not active: {}.\nAs a shell command it would be the following; jailwarden never runs\nshell strings it did not get from you: make it a script, then uncomment.",
                a.name,
                a.pos,
                problems.join("; ")
            ),
            keys: shell_keys,
            active: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_without_shell_become_argv() {
        assert_eq!(
            argv(&placeholders("/usr/local/bin/notify --ip <ip> --n <failures> 'a b'").unwrap())
                .unwrap(),
            [
                "/usr/local/bin/notify",
                "--ip",
                "{address}",
                "--n",
                "{failures}",
                "a b"
            ]
        );
        assert!(argv("echo <ip> >> /tmp/x").is_err());
        assert!(
            placeholders("curl -d ip=<ip> -d m=<matches>")
                .unwrap_err()
                .contains("<matches>")
        );
        assert!(argv("a && b").is_err());
    }

    #[test]
    fn kinds_by_name() {
        assert!(is_firewall("iptables-multiport") && is_firewall("nftables") && is_firewall("ufw"));
        assert!(!is_firewall("cloudflare") && !is_firewall("abuseipdb"));
        assert!(is_mail("sendmail-whois-lines") && is_mail("mail") && !is_mail("mailgun"));
    }
}
