//! `[[jails.NAME.action]]` (and `[[defaults.action]]`): a jail's actions
//! besides the firewall, validated with positions like everything else.
//!
//! Layering: `action` is a list, and lists are not merged. The last layer
//! that has `action` (a jail's own tables, later files first, then
//! `[defaults]`) gives the whole list; `action = []` in a jail turns off
//! actions inherited from `[defaults]`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use super::duration::parse_duration;
use super::keys;
use super::reader::{Diagnostics, Item, Located, Table};
use crate::ban::actions::template::{BAN_VARS, JAIL_VARS, Template};
use crate::ban::actions::{
    ActionConfig, ActionKind, CommandConfig, Family, HostsDenyConfig, MailConfig, hosts_deny, mail,
};

const TYPES: &str = "\"command\", \"hosts-deny\" or \"mail\"";

/// Read the `action` list of the layer that has it (`None`: no layer has).
pub fn read(layer: Option<&Table>, diags: &Diagnostics) -> Vec<ActionConfig> {
    let Some(items) = layer.and_then(|t| t.items("action")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut labels = HashSet::new();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Item::Str(s) => s.error(
                diags,
                format!("action must list tables ([[jails.NAME.action]] with type = {TYPES})"),
            ),
            Item::Table(t) => {
                if let Some((label_at, a)) = read_one(&t, i, diags) {
                    if !labels.insert(a.label.clone()) {
                        label_at.error(
                            diags,
                            format!("two actions of this jail are named {:?}", a.label),
                        );
                    }
                    out.push(a);
                }
            }
        }
    }
    out
}

fn read_one(
    t: &Table,
    index: usize,
    diags: &Diagnostics,
) -> Option<(Located<String>, ActionConfig)> {
    let Some(ty) = t.string("type") else {
        if !t.has("type") {
            t.error(format!("an action needs type = {TYPES}"));
        }
        return None;
    };
    let label = match t.string("name") {
        Some(n) => {
            if !crate::filter::def::valid_filter_name(&n.value) || n.value.len() > 64 {
                n.error(
                    diags,
                    "action name must be 1-64 letters, digits, '-', '_' or '.'",
                );
            }
            n
        }
        None => ty.map(format!("{}#{}", ty.value, index + 1)),
    };
    let before = diags.len();
    let kind = match ty.value.as_str() {
        "command" => {
            t.check_keys(&keys::names(keys::COMMAND_ACTION));
            read_command(t, diags).map(ActionKind::Command)
        }
        "hosts-deny" => {
            t.check_keys(&keys::names(keys::HOSTS_DENY_ACTION));
            Some(ActionKind::HostsDeny(read_hosts_deny(t, diags)))
        }
        "mail" => {
            t.check_keys(&keys::names(keys::MAIL_ACTION));
            read_mail(t, diags).map(ActionKind::Mail)
        }
        other => {
            ty.error(diags, format!("action type must be {TYPES}, not {other:?}"));
            None
        }
    }?;
    (diags.len() == before).then(|| {
        (
            label.clone(),
            ActionConfig {
                label: label.value,
                kind,
            },
        )
    })
}

fn timeout(t: &Table, diags: &Diagnostics, default: Duration) -> Duration {
    let Some(v) = t.text_or_integer("timeout") else {
        return default;
    };
    match parse_duration(&v.value) {
        Ok(d) if d.is_zero() || d > Duration::from_secs(86_400) => {
            v.error(diags, "timeout must be longer than 0s and at most 1d");
            default
        }
        Ok(d) => d,
        Err(e) => {
            v.error(diags, format!("timeout: {e}"));
            default
        }
    }
}

fn template(
    t: &Table,
    key: &str,
    args: &[Located<String>],
    allowed: &'static [crate::ban::actions::template::Var],
    diags: &Diagnostics,
) -> Option<Template> {
    let strs: Vec<&str> = args.iter().map(|a| a.value.as_str()).collect();
    let what: &'static str = match key {
        "ban" => "ban",
        "unban" => "unban",
        "start" => "start",
        _ => "stop",
    };
    match Template::parse(&strs, allowed, what) {
        Ok(tpl) => Some(tpl),
        Err(e) => {
            match e.arg().and_then(|i| args.get(i)) {
                Some(a) => a.error(diags, format!("{key}: {e}")),
                None => t.error(format!("{key}: {e}")),
            }
            None
        }
    }
}

fn read_command(t: &Table, diags: &Diagnostics) -> Option<CommandConfig> {
    let ban = match t.argv("ban") {
        Some(args) => template(t, "ban", &args, BAN_VARS, diags),
        None => {
            if !t.has("ban") {
                t.error("a command action needs ban = [\"program\", \"argument\", ...]");
            }
            None
        }
    };
    let unban = t
        .argv("unban")
        .and_then(|args| template(t, "unban", &args, BAN_VARS, diags));
    let list = |key: &str| -> Vec<Template> {
        t.argvs(key)
            .unwrap_or_default()
            .iter()
            .filter_map(|args| template(t, key, args, JAIL_VARS, diags))
            .collect()
    };
    let start = list("start");
    let stop = list("stop");
    let family = t.string("family").and_then(|f| match f.value.as_str() {
        "inet" => Some(Family::Inet),
        "inet6" => Some(Family::Inet6),
        other => {
            f.error(
                diags,
                format!("family must be \"inet\" (IPv4) or \"inet6\" (IPv6), not {other:?}"),
            );
            None
        }
    });
    Some(CommandConfig {
        ban: ban?,
        unban,
        start,
        stop,
        timeout: timeout(t, diags, Duration::from_secs(10)),
        family,
        concurrency: t
            .integer("concurrency", 1..=64)
            .map_or(4, |v| v.value as u32),
        restore: t.bool("restore").is_none_or(|v| v.value),
    })
}

fn absolute(t: &Table, key: &str, default: &str, diags: &Diagnostics) -> PathBuf {
    match t.string(key) {
        Some(v) if v.value.starts_with('/') && !v.value.ends_with('/') => PathBuf::from(v.value),
        Some(v) => {
            v.error(diags, format!("{key} must be an absolute file path"));
            PathBuf::from(default)
        }
        None => PathBuf::from(default),
    }
}

fn read_hosts_deny(t: &Table, diags: &Diagnostics) -> HostsDenyConfig {
    let daemon = match t.string("daemon") {
        Some(d) if hosts_deny::valid_daemon_list(&d.value) => d.value.trim().to_string(),
        Some(d) => {
            d.error(
                diags,
                "daemon must be a tcp_wrappers daemon list such as \"ALL\", \"sshd\" or \"sshd, vsftpd\" (no ':' or '#')",
            );
            hosts_deny::DEFAULT_DAEMON.to_string()
        }
        None => hosts_deny::DEFAULT_DAEMON.to_string(),
    };
    HostsDenyConfig {
        path: absolute(t, "path", hosts_deny::DEFAULT_PATH, diags),
        daemon,
    }
}

fn read_mail(t: &Table, diags: &Diagnostics) -> Option<MailConfig> {
    let check = |v: &Located<String>, key: &str| -> bool {
        let ok = mail::valid_address(&v.value);
        if !ok {
            v.error(
                diags,
                format!(
                    "{key}: {:?} is not a plain mail address (local@domain, no names, quotes or spaces)",
                    v.value
                ),
            );
        }
        ok
    };
    let dest: Vec<String> = match t.strings("dest") {
        Some(list) if list.is_empty() => {
            t.error("dest must name at least one address");
            Vec::new()
        }
        Some(list) => list
            .iter()
            .filter(|v| check(v, "dest"))
            .map(|v| v.value.clone())
            .collect(),
        None => {
            if !t.has("dest") {
                t.error("a mail action needs dest = \"root@localhost\" (or a list)");
            }
            return None;
        }
    };
    let sender = t
        .string("sender")
        .filter(|v| check(v, "sender"))
        .map(|v| v.value);
    Some(MailConfig {
        dest,
        sender,
        sendmail: absolute(t, "sendmail", mail::DEFAULT_SENDMAIL, diags),
        max_per_hour: t
            .integer("max_per_hour", 1..=10_000)
            .map_or(mail::DEFAULT_MAX_PER_HOUR, |v| v.value as u32),
        timeout: timeout(t, diags, Duration::from_secs(30)),
    })
}
