//! `fail2ban-client` compatibility: the jailwarden binary invoked under
//! that name (a symlink `make install-compat` installs) answers the
//! commands scripts and monitoring send to Fail2ban, with Fail2ban's
//! output and exit codes, by asking the running daemon (control socket,
//! else the system bus, as the CLI does):
//!
//! `ping`, `version`, `status`, `status JAIL [FLAVOR]`, `status --all`,
//! `set JAIL banip|unbanip [--report-absent] ADDR...`, `unban ADDR...|--all`,
//! `banned [ADDR...]`, `get JAIL banned [ADDR...]`, `get JAIL banip [SEP|--with-time]`,
//! `get JAIL maxretry|findtime|bantime`, `reload [--restart|--unban|--if-exists] [JAIL|--all]`,
//! `flushlogs`, `echo`.
//!
//! Anything else is refused with the jailwarden command to use. Exit
//! status as Fail2ban's client: 0, or 255 for any error. Documented
//! differences: `version` prints jailwarden's version; jails are listed in
//! name order; an address that is not an IP address is refused; `-s`, `-c`
//! and the other client options that name Fail2ban's files are ignored
//! (the daemon is found as `jailwarden` finds it, `$JAILWARDEN_SOCKET`).

pub mod output;

use std::io::Write;

use zbus::Connection;

use crate::control::cli::{Props, prop, prop_string};
use crate::control::dbus::ManagerProxy;
use crate::control::error::{CallError, Error};
use crate::control::{BUS_NAME, JAIL_INTERFACE, MANAGER_PATH};
use output::{BanTimes, Flavor, JailStatus};

/// The name the binary answers to.
pub const PROGRAM: &str = "fail2ban-client";

/// Fail2ban's client exits with 255 on any error.
const FAILED: i32 = 255;

/// What a command printed and how it ended.
struct Reply {
    stdout: String,
    stderr: Vec<String>,
    code: i32,
}

impl Reply {
    fn ok(s: impl Into<String>) -> Reply {
        Reply {
            stdout: s.into(),
            stderr: Vec::new(),
            code: 0,
        }
    }

    /// A failure Fail2ban reports on stdout (and logs as NOK).
    fn nok(s: impl Into<String>) -> Reply {
        let s = s.into();
        Reply {
            stderr: vec![format!("NOK: {s}")],
            stdout: s,
            code: FAILED,
        }
    }

    /// A failure reported on stderr only.
    fn error(s: impl Into<String>) -> Reply {
        Reply {
            stdout: String::new(),
            stderr: vec![s.into()],
            code: FAILED,
        }
    }

    fn no_jail(name: &str) -> Reply {
        Reply::nok(format!("Sorry but the jail '{name}' does not exist"))
    }

    fn unsupported(what: &str, instead: &str) -> Reply {
        Reply::error(format!(
            "{what} is not supported by jailwarden's fail2ban-client; use: {instead}"
        ))
    }
}

/// Is argv[0] `fail2ban-client`?
pub fn invoked_as_client(argv0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == PROGRAM)
}

const USAGE: &str = "Usage: fail2ban-client [OPTIONS] <COMMAND>

jailwarden answering as fail2ban-client (for scripts and monitoring written
for Fail2ban). Commands:
  ping                                  check that the daemon answers
  version                               the daemon's (jailwarden's) version
  status [JAIL [FLAVOR]] | status --all  jails, counters, banned addresses
  set JAIL banip ADDR ...               ban addresses in a jail
  set JAIL unbanip [--report-absent] ADDR ...
  unban ADDR ... | unban --all          lift bans in every jail
  banned [ADDR ...]                     which jails ban what
  get JAIL banned [ADDR ...]            a jail's bans (or 1/0 per address)
  get JAIL banip [SEP | --with-time]    a jail's bans by end of ban
  get JAIL maxretry|findtime|bantime
  reload [--restart] [--unban] [--if-exists] [JAIL | --all]
  flushlogs                             nothing to do (jailwarden logs to the journal)

Options -c, -s, -p, --timeout, -v, -q are accepted and ignored: the daemon is
found at $JAILWARDEN_SOCKET, else /run/jailwarden/control.sock, else the
system bus. Everything else: see `jailwarden --help`.
";

/// Run as `fail2ban-client` with these arguments (without argv[0]).
pub fn run(args: Vec<String>) -> i32 {
    let mut words: Vec<String> = Vec::new();
    let mut it = args.into_iter().peekable();
    while let Some(a) = it.next() {
        if !words.is_empty() || !a.starts_with('-') {
            words.push(a);
            continue;
        }
        match a.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return 0;
            }
            "-V" => {
                println!("{}", env!("CARGO_PKG_VERSION"));
                return 0;
            }
            "--version" => {
                println!(
                    "jailwarden v{} (answering as fail2ban-client)",
                    env!("CARGO_PKG_VERSION")
                );
                return 0;
            }
            "-c" | "-s" | "-p" | "--pidfile" | "--timeout" | "--loglevel" | "--logtarget"
            | "--syslogsocket" => {
                it.next();
            }
            "-v" | "-q" | "-vv" | "-vvv" | "-qq" | "--async" | "-x" | "-f" | "-b" => {}
            "--str2sec" => {
                let Some(v) = it.next() else {
                    return finish(Reply::error("--str2sec needs a value"));
                };
                return finish(match crate::r#import::syntax::str2seconds(&v) {
                    Ok(s) => Reply::ok(s.to_string()),
                    Err(e) => Reply::error(e),
                });
            }
            "-t" | "--test" | "-d" | "--dp" | "--dump-pretty" => {
                return finish(Reply::unsupported(
                    &format!("option {a}"),
                    "jailwarden check-config",
                ));
            }
            "-i" | "--interactive" => {
                return finish(Reply::unsupported(
                    "the interactive mode",
                    "jailwarden --help",
                ));
            }
            other
                if other.starts_with("-c")
                    || other.starts_with("-s")
                    || other.starts_with("--timeout=") => {}
            other => {
                return finish(Reply::error(format!(
                    "unknown option {other} (see fail2ban-client --help)"
                )));
            }
        }
    }
    if words.is_empty() {
        print!("{USAGE}");
        return FAILED;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return finish(Reply::error(format!("cannot start the async runtime: {e}"))),
    };
    finish(runtime.block_on(dispatch(&words)))
}

fn finish(r: Reply) -> i32 {
    if !r.stdout.is_empty() || r.code == 0 {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", r.stdout);
    }
    for e in &r.stderr {
        eprintln!("jailwarden (fail2ban-client): ERROR   {e}");
    }
    r.code
}

/// Commands that need no daemon, and hints for those jailwarden does not have.
fn offline(words: &[String]) -> Option<Reply> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    Some(match w.as_slice() {
        ["echo", rest @ ..] => Reply::ok(rest.join(" ")),
        ["start", ..] => Reply::unsupported("start", "systemctl start jailwarden"),
        ["stop"] => Reply::unsupported("stop", "systemctl stop jailwarden"),
        ["stop", _] => Reply::unsupported(
            "stopping a jail",
            "enabled = false in its [jails.NAME], then jailwarden reload",
        ),
        ["restart", ..] => Reply::unsupported(
            "restart",
            "systemctl restart jailwarden (bans stay in force), or jailwarden reload",
        ),
        ["add", ..] => Reply::unsupported(
            "add",
            "a [jails.NAME] table in /etc/jailwarden/jail.d/, then jailwarden reload",
        ),
        ["set", _, "banip" | "unbanip", ..] => return None,
        ["set", ..] => Reply::unsupported(
            "this set command",
            "the jail's key in /etc/jailwarden/jail.d/*.toml, then jailwarden reload (jailwarden ban/unban for bans)",
        ),
        [
            "get",
            _,
            "banned" | "banip" | "maxretry" | "findtime" | "bantime",
            ..,
        ] => return None,
        ["get", ..] => Reply::unsupported(
            "this get command",
            "jailwarden status JAIL (or jailwarden status --json)",
        ),
        ["stats" | "statistics", ..] => Reply::unsupported("stats", "jailwarden status"),
        ["flushlogs"] => Reply::ok("logs: flushed"),
        [
            "ping" | "version" | "status" | "unban" | "banned" | "reload",
            ..,
        ] => return None,
        _ => Reply {
            stdout: "Invalid command".into(),
            stderr: vec![
                "NOK: Invalid command (jailwarden --help lists what jailwarden does)".into(),
            ],
            code: FAILED,
        },
    })
}

async fn dispatch(words: &[String]) -> Reply {
    if let Some(r) = offline(words) {
        return r;
    }
    let conn = match crate::control::cli::connect_daemon(None).await {
        Ok(c) => c,
        Err(e) => return Reply::error(format!("{e}. Is jailwarden running?")),
    };
    match command(&conn, words).await {
        Ok(r) => r,
        Err(CallError::Api(Error::NoSuchJail(j))) => Reply::no_jail(
            j.trim_matches('"')
                .trim_start_matches("no jail named ")
                .trim_matches('"'),
        ),
        Err(CallError::AccessDenied(why)) => Reply::error(format!(
            "Permission denied: {why} (changing bans needs root, or polkit's org.jailwarden1.manage)"
        )),
        Err(e) => Reply::error(e.to_string()),
    }
}

fn prop_strings(p: &Props, key: &str) -> Vec<String> {
    p.get(key)
        .and_then(|v| <Vec<String>>::try_from(v.clone()).ok())
        .unwrap_or_default()
}

/// The enabled jails with their properties, by name.
async fn jails(conn: &Connection) -> Result<Vec<(String, Props)>, CallError> {
    let objects = zbus::fdo::ObjectManagerProxy::builder(conn)
        .destination(BUS_NAME)
        .path(MANAGER_PATH)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?
        .get_managed_objects()
        .await
        .map_err(zbus::Error::from)?;
    let mut out: Vec<(String, Props)> = objects
        .into_values()
        .filter_map(|ifaces| {
            let (_, p) = ifaces
                .into_iter()
                .find(|(n, _)| n.as_str() == JAIL_INTERFACE)?;
            let p: Props = p.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            let name = prop_string(&p, "Name");
            let enabled: bool = prop(&p, "Enabled");
            enabled.then_some((name, p))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// `(jail, address, banned_at_usec, expires_at_usec)`, by jail then ban time.
async fn bans(conn: &Connection, jail: &str) -> Result<Vec<(String, String, u64, u64)>, CallError> {
    let proxy = ManagerProxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    crate::control::dbus::list_all_bans(&proxy, jail).await
}

fn same_addr(a: &str, b: &str) -> bool {
    match (crate::addr::parse_addr(a), crate::addr::parse_addr(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn status_of(name: &str, p: &Props, banned: Vec<String>) -> JailStatus {
    let jm = prop_string(p, "JournalMatch");
    let paths = prop_strings(p, "LogPath");
    // Fail2ban lists the files it found for its globs.
    let mut files = Vec::new();
    for pat in paths {
        match glob::glob(&pat) {
            Ok(g) => {
                let mut found: Vec<String> = g.flatten().map(|p| p.display().to_string()).collect();
                if found.is_empty() && !pat.contains(['*', '?', '[']) {
                    found.push(pat.clone());
                }
                files.extend(found);
            }
            Err(_) => files.push(pat),
        }
    }
    let currently_failed: u32 = prop(p, "CurrentlyFailed");
    let currently_banned: u32 = prop(p, "CurrentlyBanned");
    JailStatus {
        name: name.to_string(),
        currently_failed: u64::from(currently_failed),
        total_failed: prop(p, "TotalFailed"),
        files,
        journal_match: (!jm.is_empty()).then_some(jm),
        currently_banned: u64::from(currently_banned),
        total_banned: prop(p, "TotalBanned"),
        banned,
    }
}

fn flavor(f: Option<&str>) -> Flavor {
    match f {
        Some("short") => Flavor::Short,
        _ => Flavor::Basic,
    }
}

async fn command(conn: &Connection, words: &[String]) -> Result<Reply, CallError> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let m = ManagerProxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    Ok(match w.as_slice() {
        ["ping", ..] => Reply::ok("Server replied: pong"),
        ["version"] => Reply::ok(m.version().await?),
        ["status"] => {
            let names: Vec<String> = jails(conn).await?.into_iter().map(|(n, _)| n).collect();
            Reply::ok(output::status(&names))
        }
        ["status", "--all", rest @ ..] if rest.len() <= 1 => {
            let mut all = Vec::new();
            for (name, p) in jails(conn).await? {
                let b = bans(conn, &name)
                    .await?
                    .into_iter()
                    .map(|(_, a, _, _)| a)
                    .collect();
                all.push(status_of(&name, &p, b));
            }
            Reply::ok(output::status_all(&all, flavor(rest.first().copied())))
        }
        ["status", jail, rest @ ..] if rest.len() <= 1 => {
            let list = jails(conn).await?;
            let Some((name, p)) = list.iter().find(|(n, _)| n == jail) else {
                return Ok(Reply::no_jail(jail));
            };
            let b = bans(conn, name)
                .await?
                .into_iter()
                .map(|(_, a, _, _)| a)
                .collect();
            Reply::ok(output::jail_status(
                &status_of(name, p, b),
                flavor(rest.first().copied()),
            ))
        }
        ["status", ..] => Reply::nok("Invalid command (no status)"),
        ["set", jail, "banip", addrs @ ..] if !addrs.is_empty() => {
            let list = jails(conn).await?;
            if !list.iter().any(|(n, _)| n == jail) {
                return Ok(Reply::no_jail(jail));
            }
            let mut current: Vec<String> = bans(conn, jail)
                .await?
                .into_iter()
                .map(|(_, a, _, _)| a)
                .collect();
            let mut count = 0;
            let mut notes = Vec::new();
            for a in addrs {
                // A ban in force stays as it is (Fail2ban would extend
                // it, keeping its start: a documented difference).
                if current.iter().any(|c| same_addr(c, a)) {
                    continue;
                }
                match m.ban(jail, a, 0).await {
                    Ok(()) => {
                        count += 1;
                        current.push(a.to_string());
                    }
                    Err(CallError::Api(Error::IgnoredAddress(why))) => notes.push(why),
                    Err(CallError::Api(Error::InvalidAddress(why))) => {
                        return Ok(Reply::nok(why));
                    }
                    Err(e) => return Err(e),
                }
            }
            Reply {
                stdout: count.to_string(),
                stderr: notes,
                code: 0,
            }
        }
        ["set", jail, "unbanip", rest @ ..] => {
            let (report_absent, addrs) = match rest {
                ["--report-absent", a @ ..] => (true, a),
                a => (false, a),
            };
            if addrs.is_empty() {
                return Ok(Reply::nok("Invalid command"));
            }
            let list = jails(conn).await?;
            if !list.iter().any(|(n, _)| n == jail) {
                return Ok(Reply::no_jail(jail));
            }
            let current: Vec<String> = bans(conn, jail)
                .await?
                .into_iter()
                .map(|(_, a, _, _)| a)
                .collect();
            let mut count = 0;
            let mut missed = Vec::new();
            for a in addrs {
                match current.iter().find(|c| same_addr(c, a)) {
                    Some(c) => {
                        m.unban(jail, c).await?;
                        count += 1;
                    }
                    None => missed.push(a.to_string()),
                }
            }
            if report_absent && !missed.is_empty() {
                Reply::nok(format!("not banned: {}", output::py_list(&missed)))
            } else {
                Reply::ok(count.to_string())
            }
        }
        ["unban", "--all"] => {
            let n = bans(conn, "").await?.len();
            for range in ["0.0.0.0/0", "::/0"] {
                match m.unban("", range).await {
                    Ok(()) | Err(CallError::Api(Error::NotBanned(_))) => {}
                    Err(e) => return Err(e),
                }
            }
            Reply::ok(n.to_string())
        }
        ["unban", addrs @ ..] if !addrs.is_empty() => {
            let all = bans(conn, "").await?;
            let mut count = 0;
            for a in addrs {
                let hits: Vec<&(String, String, u64, u64)> =
                    all.iter().filter(|(_, b, _, _)| same_addr(b, a)).collect();
                for (jail, b, _, _) in hits {
                    m.unban(jail, b).await?;
                    count += 1;
                }
            }
            Reply::ok(count.to_string())
        }
        ["unban"] => Reply::nok("Invalid command"),
        ["banned"] => {
            let list = jails(conn).await?;
            let all = bans(conn, "").await?;
            let per: Vec<(String, Vec<String>)> = list
                .iter()
                .map(|(n, _)| {
                    (
                        n.clone(),
                        all.iter()
                            .filter(|(j, ..)| j == n)
                            .map(|(_, a, _, _)| a.clone())
                            .collect(),
                    )
                })
                .collect();
            Reply::ok(output::banned_all(&per))
        }
        ["banned", addrs @ ..] => {
            let list = jails(conn).await?;
            let all = bans(conn, "").await?;
            let per: Vec<Vec<String>> = addrs
                .iter()
                .map(|a| {
                    list.iter()
                        .filter(|(n, _)| all.iter().any(|(j, b, _, _)| j == n && same_addr(b, a)))
                        .map(|(n, _)| n.clone())
                        .collect()
                })
                .collect();
            Reply::ok(output::banned_ips(&per))
        }
        ["get", jail, what, rest @ ..] => {
            let list = jails(conn).await?;
            let Some((_, p)) = list.iter().find(|(n, _)| n == jail) else {
                return Ok(Reply::no_jail(jail));
            };
            match (*what, rest) {
                ("banned", []) => {
                    let b: Vec<String> = bans(conn, jail)
                        .await?
                        .into_iter()
                        .map(|(_, a, _, _)| a)
                        .collect();
                    Reply::ok(output::py_list(&b))
                }
                ("banned", addrs) => {
                    let b = bans(conn, jail).await?;
                    let flags: Vec<bool> = addrs
                        .iter()
                        .map(|a| b.iter().any(|(_, x, _, _)| same_addr(x, a)))
                        .collect();
                    Reply::ok(output::banned_flags(&flags))
                }
                ("banip", sep) if sep.len() <= 1 => {
                    let b: Vec<BanTimes> = bans(conn, jail)
                        .await?
                        .into_iter()
                        .map(|(_, address, at, exp)| BanTimes {
                            address,
                            banned_at_usec: at,
                            expires_at_usec: exp,
                        })
                        .collect();
                    Reply::ok(output::banip(
                        &b,
                        sep.first().copied(),
                        &jiff::tz::TimeZone::system(),
                    ))
                }
                ("maxretry", []) => Reply::ok(prop::<u32>(p, "MaxRetry").to_string()),
                ("findtime", []) => {
                    Reply::ok((prop::<u64>(p, "FindTimeUSec") / 1_000_000).to_string())
                }
                ("bantime", []) => {
                    let b: u64 = prop(p, "BanTimeUSec");
                    Reply::ok(if b == 0 {
                        "-1".to_string()
                    } else {
                        (b / 1_000_000).to_string()
                    })
                }
                _ => Reply::nok("Invalid command (no get action or not yet implemented)"),
            }
        }
        ["reload", rest @ ..] => {
            let mut unban = false;
            let mut if_exists = false;
            let mut target: Option<&str> = None;
            for a in rest {
                match *a {
                    "--restart" => {}
                    "--unban" => unban = true,
                    "--if-exists" => if_exists = true,
                    "--all" => target = None,
                    j if target.is_none() => target = Some(j),
                    _ => {
                        return Ok(Reply::error(format!(
                            "Unexpected argument(s) for reload: {}",
                            output::py_list(
                                &rest.iter().map(|s| s.to_string()).collect::<Vec<_>>()
                            )
                        )));
                    }
                }
            }
            if unban {
                for range in ["0.0.0.0/0", "::/0"] {
                    match m.unban(target.unwrap_or(""), range).await {
                        Ok(()) | Err(CallError::Api(Error::NotBanned(_))) => {}
                        Err(CallError::Api(Error::NoSuchJail(_))) if if_exists => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            match m.reload().await {
                Ok(()) => {}
                Err(CallError::Api(Error::Config(problems))) => {
                    return Ok(Reply::error(format!(
                        "Failed during configuration: the configuration has problems (the running one stays):\n{problems}"
                    )));
                }
                Err(e) => return Err(e),
            }
            if let Some(j) = target {
                if !jails(conn).await?.iter().any(|(n, _)| n == j) && !if_exists {
                    return Ok(Reply::error(format!(
                        "Failed during configuration: No section: '{j}' (no such jail)"
                    )));
                }
            }
            Reply::ok("OK")
        }
        _ => Reply::nok("Invalid command"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_commands_name_the_jailwarden_command() {
        let w = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let r = offline(&w("set sshd findtime 600")).unwrap();
        assert_eq!(r.code, FAILED);
        assert!(
            r.stderr[0].contains("jail.d") && r.stderr[0].contains("jailwarden reload"),
            "{:?}",
            r.stderr
        );
        assert!(offline(&w("start")).unwrap().stderr[0].contains("systemctl start jailwarden"));
        assert_eq!(offline(&w("frobnicate")).unwrap().stdout, "Invalid command");
        assert_eq!(offline(&w("flushlogs")).unwrap().stdout, "logs: flushed");
        assert!(offline(&w("status sshd")).is_none());
        assert!(offline(&w("set sshd banip 192.0.2.1")).is_none());
        assert!(invoked_as_client(std::ffi::OsStr::new(
            "/usr/local/bin/fail2ban-client"
        )));
        assert!(!invoked_as_client(std::ffi::OsStr::new("jailwarden")));
    }
}
