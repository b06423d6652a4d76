//! `jailwarden watch` against the built daemon on a private system bus
//! (TESTING.md section 3): a thousand bans and their unbans in order,
//! daemon restarts and reloads followed, `--jail`, the system bus as an
//! unprivileged user (signals from anyone but the daemon ignored), and
//! `--notify` against a real notification server (Debian's
//! notification-daemon under Xvfb on a private session bus, watched with
//! dbus-monitor).
//!
//! Needs root (setpriv to nobody), `dbus`, `busctl`, and for `--notify`
//! `xvfb` and `notification-daemon` (.ci/packages/cockpit.txt); CI runs
//! as root.

mod bus_support;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use bus_support::{BIN, Daemon, DaemonSpec, PrivateBus, no_bus, ok, wait_for};
use jailwarden::control::dbus::ManagerProxy;
use rustix::process::{Pid, Signal};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A running `jailwarden watch`, its stdout lines arriving on a channel.
struct Watch {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Watch {
    fn spawn(mut cmd: Command) -> Watch {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run jailwarden watch");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watch {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line, within `limit`.
    fn next(&mut self, limit: Duration) -> Option<String> {
        match self.lines.recv_timeout(limit) {
            Ok(l) => {
                self.seen.push(l.clone());
                Some(l)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Lines until one parses to JSON with `"event": event`.
    fn until(&mut self, event: &str, limit: Duration) -> serde_json::Value {
        let end = Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let line = self
                .next(left)
                .unwrap_or_else(|| panic!("no {event:?} line in {limit:?}; saw {:#?}", self.seen));
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if v["event"] == event {
                return v;
            }
        }
    }

    /// Every line arriving within `quiet` of the previous one.
    fn drain(&mut self, quiet: Duration) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        while let Some(line) = self.next(quiet) {
            out.push(serde_json::from_str(&line).expect("JSON line"));
        }
        out
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, Signal::INT);
        }
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn watch_cmd(daemon: &Daemon, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("watch")
        .args(args)
        .env("JAILWARDEN_SOCKET", daemon.socket())
        .env("DBUS_SYSTEM_BUS_ADDRESS", no_bus(daemon.dir()))
        .env_remove("DBUS_SESSION_BUS_ADDRESS");
    cmd
}

/// A p2p connection to the daemon's control socket.
async fn control(daemon: &Daemon) -> zbus::Connection {
    let stream = std::os::unix::net::UnixStream::connect(daemon.socket()).expect("control socket");
    zbus::connection::Builder::unix_stream(stream)
        .p2p()
        .build()
        .await
        .expect("p2p connection")
}

/// 1000 distinct test addresses (documentation ranges).
fn addresses() -> Vec<String> {
    let mut v = Vec::new();
    for i in 1..=250 {
        v.push(format!("198.51.100.{i}"));
        v.push(format!("203.0.113.{i}"));
    }
    for i in 1..=500 {
        v.push(format!("2001:db8:1::{i:x}"));
    }
    v
}

#[test]
fn a_thousand_bans_in_order_restarts_and_reloads() {
    bus_support::needs_root!();
    let mut daemon = Daemon::start(DaemonSpec::default());
    let mut w = Watch::spawn(watch_cmd(&daemon, &["--json"]));
    let c = w.until("connected", Duration::from_secs(20));
    assert_eq!(c["via"], "socket", "{c}");
    assert_eq!(c["version"], env!("CARGO_PKG_VERSION"));

    let addrs = addresses();
    let rt = runtime();
    let started = Instant::now();
    rt.block_on(async {
        let conn = control(&daemon).await;
        let m = ManagerProxy::new(&conn).await.expect("proxy");
        for a in &addrs {
            m.ban("sshd", a, 3_600_000_000).await.expect("ban");
        }
        m.unban("", "0.0.0.0/0").await.expect("unban v4");
        m.unban("", "::/0").await.expect("unban v6");
    });
    let calls = started.elapsed();
    let mut banned = Vec::new();
    let mut unbanned = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while unbanned.len() < addrs.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = w
            .next(left)
            .unwrap_or_else(|| panic!("{} bans, {} unbans seen", banned.len(), unbanned.len()));
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        let addr = v["address"].as_str().unwrap_or_default().to_string();
        match v["event"].as_str() {
            Some("banned") => {
                assert_eq!(v["jail"], "sshd");
                assert_eq!(v["permanent"], false);
                assert_eq!(v["failures"], 0, "by hand");
                let left =
                    v["expires_at_usec"].as_u64().unwrap() - v["time_usec"].as_u64().unwrap();
                assert!(left <= 3_600_000_000 && left > 3_500_000_000, "{v}");
                assert!(unbanned.is_empty(), "a ban after the unbans began: {line}");
                banned.push(addr);
            }
            Some("unbanned") => {
                assert_eq!(v["reason"], "manual");
                assert!(banned.contains(&addr), "unban before its ban: {line}");
                assert!(unbanned.insert(addr), "unbanned twice: {line}");
            }
            _ => panic!("unexpected: {line}"),
        }
    }
    assert_eq!(banned, addrs, "bans in the order they were made");
    eprintln!("1000 bans + 1000 unbans followed; calls took {calls:?}");

    // A reload is a line with the jails.
    daemon.rewrite_config(
        "[jails.postfix]\nfilter = \"dummy\"\njournal_match = [\"_SYSTEMD_UNIT=postfix.service\"]\n",
    );
    ok(&daemon.cli(&["reload"]));
    let r = w.until("reloaded", Duration::from_secs(10));
    assert_eq!(
        r["jails"],
        serde_json::json!(["nginx-http-auth", "postfix", "sshd", "web"])
    );

    // The daemon stops and comes back: watch says so and goes on.
    daemon.stop();
    let d = w.until("disconnected", Duration::from_secs(10));
    assert!(d["reason"].as_str().is_some_and(|r| !r.is_empty()), "{d}");
    daemon.spawn();
    daemon.wait_ready(None);
    w.until("connected", Duration::from_secs(20));
    ok(&daemon.cli(&["ban", "sshd", "198.51.100.77", "--for", "1s"]));
    let b = w.until("banned", Duration::from_secs(10));
    assert_eq!(b["address"], "198.51.100.77");
    let u = w.until("unbanned", Duration::from_secs(10));
    assert_eq!(
        (u["address"].as_str(), u["reason"].as_str()),
        (Some("198.51.100.77"), Some("expired"))
    );
}

#[test]
fn text_lines_and_a_wrong_jail() {
    bus_support::needs_root!();
    let daemon = Daemon::start(DaemonSpec::default());
    let mut w = Watch::spawn(watch_cmd(&daemon, &[]));
    let line = w.next(Duration::from_secs(20)).expect("connected line");
    assert!(
        line.contains("connected") && line.contains("control socket"),
        "{line}"
    );
    ok(&daemon.cli(&["ban", "sshd", "198.51.100.9", "--for", "1h"]));
    let line = w.next(Duration::from_secs(10)).expect("banned line");
    assert!(
        line.contains("banned")
            && line.contains("sshd  198.51.100.9  for 1h")
            && line.ends_with(", by hand"),
        "{line}"
    );
    drop(w);

    let out = watch_cmd(&daemon, &["--jail", "nope"])
        .output()
        .expect("run watch");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no jail named \"nope\""));
}

#[test]
fn over_the_bus_as_nobody_only_the_daemon_is_believed() {
    bus_support::needs_root!();
    let bus = PrivateBus::start();
    let mut daemon = Daemon::start(DaemonSpec {
        bus: Some(&bus),
        ..Default::default()
    });
    let dir = tempfile::Builder::new()
        .prefix("jw-watch-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = bus_support::binary_for_nobody(dir.path());
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&bin)
        .args(["watch", "--json", "--jail", "nginx-http-auth"])
        // The control socket is root's: watch falls back to the bus.
        .env("JAILWARDEN_SOCKET", daemon.socket())
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .env_remove("DBUS_SESSION_BUS_ADDRESS");
    let mut w = Watch::spawn(cmd);
    let c = w.until("connected", Duration::from_secs(20));
    assert_eq!(c["via"], "bus", "{c}");

    // Anyone may send a signal that looks like the daemon's.
    ok(&bus.busctl(&[
        "emit",
        "/org/jailwarden1",
        "org.jailwarden1.Manager",
        "Banned",
        "sstu",
        "nginx-http-auth",
        "203.0.113.66",
        "0",
        "0",
    ]));
    ok(&daemon.cli(&["ban", "sshd", "198.51.100.1"]));
    ok(&daemon.cli(&["ban", "nginx-http-auth", "198.51.100.2"]));
    let b = w.until("banned", Duration::from_secs(10));
    assert_eq!(
        b["address"], "198.51.100.2",
        "only nginx-http-auth, never the forgery"
    );
    assert!(
        w.drain(Duration::from_millis(500)).is_empty(),
        "{:#?}",
        w.seen
    );

    // The daemon leaves the bus and comes back under a new unique name.
    daemon.stop();
    w.until("disconnected", Duration::from_secs(10));
    daemon.spawn();
    daemon.wait_ready(Some(&bus));
    let c = w.until("connected", Duration::from_secs(20));
    assert_eq!(c["via"], "bus", "{c}");
    ok(&daemon.cli(&["ban", "nginx-http-auth", "198.51.100.3"]));
    assert_eq!(
        w.until("banned", Duration::from_secs(10))["address"],
        "198.51.100.3"
    );
}

/// Xvfb, a session bus, notification-daemon and dbus-monitor, stopped by
/// PID when dropped.
struct Desktop {
    dir: tempfile::TempDir,
    xvfb: Child,
    bus_pid: u32,
    bus_address: String,
    server: Child,
    monitor: Child,
}

impl Desktop {
    fn start() -> Desktop {
        let dir = tempfile::Builder::new()
            .prefix("jw-desktop-")
            .tempdir()
            .expect("tempdir");
        // -displayfd: Xvfb picks a free display and prints its number.
        let mut xvfb = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1024x768x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run Xvfb (package xvfb)");
        let mut display = String::new();
        BufReader::new(xvfb.stdout.take().expect("stdout"))
            .read_line(&mut display)
            .expect("Xvfb's display number");
        let display = format!(":{}", display.trim());
        let out = Command::new("dbus-daemon")
            .args(["--session", "--fork", "--print-pid=1", "--print-address=2"])
            .output()
            .expect("run dbus-daemon --session");
        let bus_pid: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("session bus pid");
        let bus_address = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let monitor = Command::new("dbus-monitor")
            .args(["--address", &bus_address])
            .arg("type='method_call',interface='org.freedesktop.Notifications',member='Notify'")
            .arg("type='method_return'")
            .stdout(std::fs::File::create(dir.path().join("monitor.log")).expect("log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("run dbus-monitor");
        let server = Command::new("/usr/lib/notification-daemon/notification-daemon")
            .env("DISPLAY", &display)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus_address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run notification-daemon (package notification-daemon)");
        let d = Desktop {
            dir,
            xvfb,
            bus_pid,
            bus_address,
            server,
            monitor,
        };
        wait_for(
            Duration::from_secs(20),
            "org.freedesktop.Notifications",
            || {
                let out = Command::new("busctl")
                    .arg(format!("--address={}", d.bus_address))
                    .args(["status", "org.freedesktop.Notifications"])
                    .output()
                    .ok()?;
                out.status.success().then_some(())
            },
        );
        d
    }

    /// The Notify calls the server answered, in order: (summary, body,
    /// urgency, replaces_id, id it returned).
    fn notifications(&self) -> Vec<Notified> {
        let log = std::fs::read_to_string(self.dir.path().join("monitor.log")).unwrap_or_default();
        parse_monitor(&log)
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        for c in [&mut self.server, &mut self.monitor, &mut self.xvfb] {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(pid) = Pid::from_raw(self.bus_pid as i32) {
            let _ = rustix::process::kill_process(pid, Signal::TERM);
        }
    }
}

#[derive(Debug, Clone)]
#[allow(dead_code)] // shown when an assertion fails
struct Notified {
    replaces: u32,
    summary: String,
    body: String,
    urgency: Option<u8>,
    id: Option<u32>,
}

/// Notify calls and their returns out of dbus-monitor's text.
fn parse_monitor(log: &str) -> Vec<Notified> {
    // Serials are per sender: a return answers (its destination, reply_serial).
    let mut calls: Vec<((String, u64), Notified)> = Vec::new();
    let mut returns: HashMap<(String, u64), u32> = HashMap::new();
    let blocks = log
        .split("\nmethod ")
        .map(|b| b.trim_start_matches("method "));
    for b in blocks {
        let head = b.lines().next().unwrap_or_default();
        let text = |name: &str| -> String {
            head.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_default()
                .trim_end_matches(';')
                .to_string()
        };
        let field = |name: &str| -> Option<u64> { text(name).parse().ok() };
        if b.starts_with("call") && b.contains("member=Notify") {
            let strings: Vec<String> = b
                .lines()
                .filter_map(|l| l.trim().strip_prefix("string \""))
                .map(|s| s.trim_end_matches('"').to_string())
                .collect();
            let replaces = b
                .lines()
                .find_map(|l| l.trim().strip_prefix("uint32 "))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let urgency = b
                .split("\"urgency\"")
                .nth(1)
                .and_then(|rest| rest.split("byte ").nth(1))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok());
            // app_name, app_icon, summary, body, then hint keys.
            let key = (text("sender="), field("serial=").unwrap_or(0));
            calls.push((
                key,
                Notified {
                    replaces,
                    summary: strings.get(2).cloned().unwrap_or_default(),
                    body: strings.get(3).cloned().unwrap_or_default(),
                    urgency,
                    id: None,
                },
            ));
        } else if b.starts_with("return") {
            if let (Some(reply), Some(id)) = (
                field("reply_serial=").map(|r| (text("destination="), r)),
                b.lines()
                    .find_map(|l| l.trim().strip_prefix("uint32 "))
                    .and_then(|v| v.parse().ok()),
            ) {
                returns.insert(reply, id);
            }
        }
    }
    calls
        .into_iter()
        .map(|(key, mut n)| {
            n.id = returns.get(&key).copied();
            n
        })
        .collect()
}

#[test]
fn notify_posts_rate_limited_desktop_notifications() {
    bus_support::needs_root!();
    let desktop = Desktop::start();
    let mut daemon = Daemon::start(DaemonSpec::default());
    let mut cmd = watch_cmd(&daemon, &["--notify", "--json"]);
    cmd.env("DBUS_SESSION_BUS_ADDRESS", &desktop.bus_address);
    let mut w = Watch::spawn(cmd);
    w.until("connected", Duration::from_secs(20));

    ok(&daemon.cli(&["ban", "sshd", "198.51.100.1", "--for", "1h"]));
    ok(&daemon.cli(&["unban", "198.51.100.1"]));
    let got = wait_for(Duration::from_secs(10), "two notifications", || {
        let n = desktop.notifications();
        (n.len() >= 2 && n.iter().all(|n| n.id.is_some())).then_some(n)
    });
    assert_eq!(got[0].summary, "198.51.100.1 banned (sshd)");
    assert_eq!(got[0].body, "Banned in jail sshd for 1h, by hand.");
    assert_eq!(got[0].urgency, Some(1));
    assert_eq!(got[1].summary, "198.51.100.1 unbanned (sshd)");
    assert!(
        got.iter().all(|n| n.id.is_some_and(|id| id > 0)),
        "the server answered: {got:#?}"
    );

    // A flood: one more single notification (the burst is 3), then one
    // summary of the rest, not 60 notifications.
    let rt = runtime();
    rt.block_on(async {
        let conn = control(&daemon).await;
        let m = ManagerProxy::new(&conn).await.expect("proxy");
        for i in 1..=60 {
            m.ban("nginx-http-auth", &format!("203.0.113.{i}"), 0)
                .await
                .expect("ban");
        }
    });
    // The summary covers the whole flood; a slow flood may need a second
    // one, which replaces the first on screen.
    let got = wait_for(Duration::from_secs(20), "the flood's summary", || {
        let n = desktop.notifications();
        n.iter()
            .any(|n| n.summary == "jailwarden: 59 more events held back" && n.id.is_some())
            .then_some(n)
    });
    assert_eq!(got[2].summary, "203.0.113.1 banned (nginx-http-auth)");
    let summaries = &got[3..];
    assert!(
        summaries
            .iter()
            .all(|n| n.summary.ends_with("more events held back")),
        "nothing but summaries after the burst: {got:#?}"
    );
    assert!(
        summaries.len() <= 3,
        "{} summaries for one flood",
        summaries.len()
    );
    for pair in summaries.windows(2) {
        assert_eq!(
            pair[1].replaces,
            pair[0].id.unwrap_or(0),
            "updated in place: {got:#?}"
        );
    }
    let last = summaries.last().expect("a summary");
    assert!(
        last.body.contains("nginx-http-auth: 59") && last.body.contains("203.0.113.60"),
        "{:?}",
        last.body
    );
    // Every event still has its line.
    let lines = w.drain(Duration::from_millis(300));
    let banned = w.seen.iter().filter(|l| l.contains("\"banned\"")).count();
    assert_eq!(banned, 61, "{} lines after the flood", lines.len());

    // The daemon away for long: a critical notification; back: another.
    daemon.stop();
    let got = wait_for(
        Duration::from_secs(20),
        "the daemon-down notification",
        || {
            let n = desktop.notifications();
            n.iter()
                .any(|n| n.summary == "jailwarden is not running")
                .then_some(n)
        },
    );
    let down = got
        .iter()
        .find(|n| n.summary == "jailwarden is not running")
        .unwrap();
    assert_eq!(down.urgency, Some(2));
    daemon.spawn();
    daemon.wait_ready(None);
    wait_for(
        Duration::from_secs(20),
        "the daemon-back notification",
        || {
            desktop
                .notifications()
                .iter()
                .any(|n| n.summary == "jailwarden is running again")
                .then_some(())
        },
    );
    drop(w);
}
