//! The Cockpit page (`cockpit/`) in a real browser, against real Cockpit
//! and the real daemon (TESTING.md sections 3 and 9): a private
//! system-bus-like dbus-daemon with our policy; the built daemon on it,
//! banning in nftables inside a network namespace, its history seeded with
//! a month of past bans through the store; Debian's `cockpit-ws
//! --local-session=cockpit-bridge` twice inside a second namespace (as
//! root, and as the user nobody), the bridges' system bus pointed at the
//! private one; Debian's Chromium, headless, driven by Selenium
//! (`tests/cockpit/drive.py`, run by the system python3).
//!
//! The driver asserts what an admin would check (no console errors; jails
//! and counters equal to `jailwarden status --json`; a CLI ban shown within
//! a second without reload; Unban on the page removes the kernel's
//! element; the chart counts the test's bans and the seeded ones; a jail
//! added by Reload appears; the address history and "Show in logs"; as
//! nobody the controls are hidden and a D-Bus Ban is refused; with the
//! daemon stopped the page says so, and recovers when it is back) and
//! saves a screenshot of each state under target/tmp/cockpit/, checked not
//! to be blank. It asks this test, line by line on its stdin/stdout, to
//! stop, start or reconfigure the daemon.
//!
//! Needs root (skipped, saying so, without), and the packages of
//! .ci/packages/cockpit.txt (cockpit-ws, cockpit-bridge, cockpit-system,
//! chromium, chromium-driver, python3-selenium, python3-pil): it fails,
//! naming what is missing, without them.

mod bus_support;
#[path = "support/netns.rs"]
mod netns;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bus_support::{BIN, Daemon, DaemonSpec, PrivateBus, repo, wait_for};
use jailwarden::ban::Ban;
use jailwarden::store::{Changes, Ended, Store};
use jiff::{SignedDuration, Timestamp};
use netns::NamedNetns;
use rustix::process::{Pid, Signal};

const COCKPIT_WS: &str = "/usr/lib/cockpit/cockpit-ws";
const PYTHON: &str = "/usr/bin/python3";
/// The whole browser run may take this long at most.
const DRIVER_LIMIT: Duration = Duration::from_secs(180);

/// Stop by PID (TERM, then KILL) when dropped.
struct Proc(Child, &'static str);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            if let Some(pid) = Pid::from_raw(self.0.id() as i32) {
                let _ = rustix::process::kill_process(pid, Signal::TERM);
            }
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!("{} did not stop; killing it", self.1);
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// A session bus (`dbus-daemon --session --fork`), killed by PID.
struct SessionBus {
    pid: u32,
    address: String,
}

impl SessionBus {
    /// Started as `user` (via setpriv) when given.
    fn start(user: Option<&str>) -> SessionBus {
        let mut cmd = match user {
            Some(u) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={u}"),
                    "--regid=nogroup",
                    "--clear-groups",
                    "dbus-daemon",
                ]);
                c
            }
            None => Command::new("dbus-daemon"),
        };
        let out = cmd
            .args(["--session", "--fork", "--print-pid=1", "--print-address=2"])
            .output()
            .expect("run dbus-daemon --session");
        assert!(out.status.success(), "dbus-daemon --session: {out:?}");
        SessionBus {
            pid: String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .expect("session bus pid"),
            address: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }
    }
}

impl Drop for SessionBus {
    fn drop(&mut self) {
        if let Some(pid) = Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process(pid, Signal::TERM);
        }
    }
}

fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    for (path, package) in [
        (COCKPIT_WS, "cockpit-ws"),
        ("/usr/bin/cockpit-bridge", "cockpit-bridge"),
        ("/usr/share/cockpit/shell/index.html", "cockpit-system"),
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/chromedriver", "chromium-driver"),
        ("/usr/sbin/nft", "nftables"),
    ] {
        if !Path::new(path).exists() {
            missing.push(format!("{path} (package {package})"));
        }
    }
    for (module, package) in [("selenium", "python3-selenium"), ("PIL", "python3-pil")] {
        let ok = Command::new(PYTHON)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            missing.push(format!("python module {module} (package {package})"));
        }
    }
    missing
}

/// A month of past bans, all ended, written through the store as the
/// daemon would have: `(jail, days ago, hour)`; returns how many fall in
/// the last 30 days and in the last 24 hours.
fn seed_history(state: &Path, now: Timestamp) -> (u32, u32) {
    let mut store = Store::open(state).expect("open the state database");
    let mut c = Changes::default();
    let mut month = 0;
    let mut day = 0;
    let mut n = 0u32;
    for days_ago in [1i64, 2, 3, 5, 6, 8, 11, 12, 15, 19, 20, 23, 26, 28] {
        for k in 0..(days_ago % 4 + 1) {
            let jail = if (days_ago + k) % 3 == 0 {
                "nginx-http-auth"
            } else {
                "sshd"
            };
            let at = now
                - SignedDuration::from_hours(days_ago * 24 - 2)
                - SignedDuration::from_mins(k * 37);
            n += 1;
            let net = format!("203.0.113.{}/32", n % 250 + 1)
                .parse()
                .expect("net");
            let expires = at + SignedDuration::from_mins(10);
            c.bans.push(Ban {
                jail: jail.into(),
                net,
                banned_at: at,
                expires_at: Some(expires),
                failures: 3 + n % 4,
            });
            c.unbans.push((jail.into(), net));
            c.ended.push(Ended {
                jail: jail.into(),
                net,
                at: expires,
                reason: if n % 5 == 0 { "manual" } else { "expired" }.into(),
            });
            let e = c.totals.entry(jail.to_string()).or_default();
            e.0 += 4;
            e.1 += 1;
            month += 1;
            if now.duration_since(at) < SignedDuration::from_hours(23) {
                day += 1;
            }
        }
    }
    store.commit(&c).expect("seed the history");
    (month, day)
}

/// The page's files as Cockpit finds them in `$XDG_DATA_HOME/cockpit/`.
fn install_package(xdg: &Path) {
    let dest = xdg.join("cockpit/jailwarden");
    std::fs::create_dir_all(&dest).expect("mkdir package");
    for entry in std::fs::read_dir(repo().join("cockpit")).expect("cockpit/") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dest.join(path.file_name().expect("name"))).expect("copy");
    }
    for p in [xdg.to_path_buf(), xdg.join("cockpit"), dest] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

/// One `cockpit-ws --local-session`: its bridge runs as `user` (root when
/// `None`), sees the private bus as its system bus, and finds the page in
/// `xdg`.
struct Ws<'a> {
    port: u16,
    user: Option<&'a str>,
    home: &'a Path,
    session_bus: &'a str,
}

fn cockpit_ws(ns: &NamedNetns, ws: Ws<'_>, xdg: &Path, system_bus: &str, log: &Path) -> Proc {
    let Ws {
        port,
        user,
        home,
        session_bus,
    } = ws;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.0]);
    if let Some(u) = user {
        cmd.args([
            "setpriv",
            &format!("--reuid={u}"),
            "--regid=nogroup",
            "--clear-groups",
        ]);
    }
    let child = cmd
        .arg(COCKPIT_WS)
        .args([
            "--no-tls",
            "--address",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .arg("--local-session=cockpit-bridge")
        .env("DBUS_SYSTEM_BUS_ADDRESS", system_bus)
        .env("DBUS_SESSION_BUS_ADDRESS", session_bus)
        .env("XDG_DATA_HOME", xdg)
        .env("HOME", home)
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).expect("ws log"))
        .stderr(std::fs::File::create(log.with_extension("err")).expect("ws log"))
        .spawn()
        .expect("run cockpit-ws");
    Proc(child, "cockpit-ws")
}

const POSTFIX_JAIL: &str =
    "[jails.postfix]\nfilter = \"dummy\"\njournal_match = [\"_SYSTEMD_UNIT=postfix.service\"]\n";

#[test]
fn the_cockpit_page_in_a_real_browser() {
    bus_support::needs_root!();
    let missing = missing_prerequisites();
    assert!(
        missing.is_empty(),
        "the Cockpit browser test needs: {} (see .ci/packages/cockpit.txt)",
        missing.join(", ")
    );
    let started = Instant::now();
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cockpit");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");

    let dns = NamedNetns::new("ckd");
    let wns = NamedNetns::new("ckw");
    let bus = PrivateBus::start();
    let mut daemon = Daemon::prepare(&DaemonSpec {
        bus: Some(&bus),
        nftables: true,
        netns: Some(&dns.0),
        daemon_keys: "dbpurgeage = \"35d\"\n",
        ..Default::default()
    });
    let (seeded_month, seeded_day) = seed_history(&daemon.dir().join("state"), Timestamp::now());
    daemon.spawn();
    daemon.wait_ready(Some(&bus));

    let t = tempfile::Builder::new()
        .prefix("jw-cockpit-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let xdg = t.path().join("xdg");
    install_package(&xdg);
    let root_home = t.path().join("root-home");
    let user_home = t.path().join("user-home");
    for h in [&root_home, &user_home] {
        std::fs::create_dir(h).expect("mkdir home");
    }
    let chown = Command::new("chown")
        .args(["nobody:nogroup"])
        .arg(&user_home)
        .status()
        .expect("chown");
    assert!(chown.success());
    let root_session = SessionBus::start(None);
    let user_session = SessionBus::start(Some("nobody"));
    // One cockpit-ws per browser session, started when the driver asks:
    // a --local-session ends with its browser's connection.
    let mut servers: Vec<Proc> = Vec::new();
    let mut next_port = 9090u16;
    let mut new_ws = |user: Option<&str>| -> u16 {
        let port = next_port;
        next_port += 1;
        let (home, session_bus) = match user {
            Some(_) => (&user_home, &user_session.address),
            None => (&root_home, &root_session.address),
        };
        servers.push(cockpit_ws(
            &wns,
            Ws {
                port,
                user,
                home,
                session_bus,
            },
            &xdg,
            bus.address(),
            &t.path().join(format!("ws-{port}.log")),
        ));
        wait_for(Duration::from_secs(20), "cockpit-ws to listen", || {
            wns.exec(&["nc", "-z", "127.0.0.1", &port.to_string()])
                .status
                .success()
                .then_some(())
        });
        port
    };

    let mut driver = Command::new("ip")
        .args(["netns", "exec", &wns.0, PYTHON])
        .arg(repo().join("tests/cockpit/drive.py"))
        .env("JW_BIN", BIN)
        .env("JW_SOCKET", daemon.socket())
        .env("JW_DAEMON_NETNS", &dns.0)
        .env("JW_ARTIFACTS", &artifacts)
        .env("JW_SEEDED_MONTH", seeded_month.to_string())
        .env("JW_SEEDED_DAY", seeded_day.to_string())
        .env("JW_PROFILE", t.path().join("chromium"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run tests/cockpit/drive.py");
    let mut to_driver = driver.stdin.take().expect("stdin");
    let from_driver = BufReader::new(driver.stdout.take().expect("stdout"));
    let driver = Proc(driver, "drive.py");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in from_driver.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + DRIVER_LIMIT;
    let mut result = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("the browser driver took longer than {DRIVER_LIMIT:?}")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        eprintln!("drive.py: {line}");
        if let Some(ask) = line.strip_prefix("ASK ") {
            let mut answer = "ok".to_string();
            match ask {
                "ws-root" => answer = format!("ok {}", new_ws(None)),
                "ws-nobody" => answer = format!("ok {}", new_ws(Some("nobody"))),
                "stop-daemon" => {
                    daemon.stop();
                }
                "start-daemon" => {
                    daemon.spawn();
                    daemon.wait_ready(Some(&bus));
                }
                "add-jail" => daemon.rewrite_config(POSTFIX_JAIL),
                "break-config" => daemon.rewrite_config("[jails.bad]\nbogus = 1\n"),
                other => panic!("the driver asked for {other:?}"),
            }
            writeln!(to_driver, "{answer}").expect("answer the driver");
            to_driver.flush().expect("flush");
        } else if let Some(json) = line.strip_prefix("RESULT ") {
            result = Some(serde_json::from_str::<serde_json::Value>(json).expect("result JSON"));
        }
    }
    let mut driver = driver;
    let status = driver.0.wait().expect("driver exit");
    assert!(
        status.success(),
        "the browser driver failed ({status}); cockpit-ws logs in {}; daemon log:\n{}",
        t.path().display(),
        daemon.log()
    );
    let result = result.expect("the driver's RESULT line");
    eprintln!(
        "screenshots in {} ({:.1} s in all)",
        artifacts.display(),
        started.elapsed().as_secs_f64()
    );
    // Every state has its screenshot, and none is blank.
    let shots = result["screenshots"].as_object().expect("screenshots");
    for name in [
        "overview",
        "ban-error",
        "history",
        "chart-30d",
        "reloaded",
        "read-only",
        "read-only-dark",
        "stopped",
        "shell-page",
        "shell-logs",
    ] {
        let s = &shots[name];
        let path = PathBuf::from(s["path"].as_str().expect("path"));
        assert!(
            path.starts_with(&artifacts) && path.is_file(),
            "{name}: {s}"
        );
        let stddev = s["stddev"].as_f64().expect("stddev");
        assert!(
            stddev > 8.0,
            "{name} looks blank (pixel stddev {stddev}): {}",
            path.display()
        );
        println!("screenshot {name}: {}", path.display());
    }
    assert!(
        result["ban_seen_after_s"].as_f64().expect("latency") < 1.0,
        "{result}"
    );
    drop(daemon);
}
