//! The control socket and the CLI with no system bus at all: every client
//! command, text and JSON output, exit codes, the socket's permissions,
//! the refusal to start a second daemon on a live socket, stale sockets,
//! and systemd socket activation (systemd-socket-activate).

mod bus_support;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;

use bus_support::{Daemon, DaemonSpec, cli, no_bus, ok, stderr, stdout, wait_for};

#[test]
fn cli_works_over_the_socket_with_no_bus() {
    bus_support::needs_root!();
    let daemon = Daemon::start(DaemonSpec::default());
    // The bus is joined in the background: its absence is logged after the
    // socket is up, not necessarily before the socket appears.
    wait_for(
        Duration::from_secs(10),
        "the daemon to say it serves the socket only",
        || daemon.log().contains("no system bus").then_some(()),
    );

    let out = ok(&daemon.cli(&["status"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "jailwarden {}: 3 jails, 0 bans in force, 0 ever",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert!(lines[2].starts_with("JAIL "), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "sshd", "yes", "dummy", "0", "0", "0", "0", "3", "10m", "10m"
                ]),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "no colour when not on a terminal");

    assert_eq!(
        ok(&daemon.cli(&["ban", "sshd", "192.0.2.7"])),
        "banned 192.0.2.7 in sshd\n"
    );
    assert_eq!(
        ok(&daemon.cli(&["ban", "sshd", "192.0.2.8", "--for", "1h 30m"])),
        "banned 192.0.2.8 in sshd for 1h 30m\n"
    );
    ok(&daemon.cli(&[
        "ban",
        "nginx-http-auth",
        "2001:db8::1",
        "--for",
        "permanent",
    ]));

    let out = ok(&daemon.cli(&["bans"]));
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["JAIL", "ADDRESS", "BANNED", "AT", "EXPIRES"]);
    assert_eq!(rows.len(), 4, "{out}");
    let row = |addr: &str| {
        rows.iter()
            .find(|r| r[1] == addr)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(row("2001:db8::1").last(), Some(&"permanent"));
    let left = row("192.0.2.8");
    assert!(
        left.ends_with(&["left"]) && left[left.len() - 2].starts_with("1h"),
        "{left:?}"
    );
    let left = row("192.0.2.7");
    assert!(
        left[left.len() - 2].starts_with("9m") || left[left.len() - 2] == "10m",
        "{left:?}"
    );

    let out = ok(&daemon.cli(&["bans", "--json", "--jail", "sshd"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let bans = v["bans"].as_array().expect("bans array");
    assert_eq!(bans.len(), 2);
    let b = bans
        .iter()
        .find(|b| b["address"] == "192.0.2.8")
        .expect("ban");
    assert_eq!(b["jail"], "sshd");
    assert_eq!(b["permanent"], false);
    let at = b["banned_at_usec"].as_u64().expect("usec");
    let exp = b["expires_at_usec"].as_u64().expect("usec");
    assert_eq!(exp - at, 5400 * 1_000_000);
    assert!(
        b["banned_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{b}"
    );
    let out = ok(&daemon.cli(&["bans", "--json", "--jail", "nginx-http-auth"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["bans"][0]["permanent"], true);
    assert!(v["bans"][0]["expires_at"].is_null() && v["bans"][0]["expires_at_usec"].is_null());

    let out = ok(&daemon.cli(&["status", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["active_bans"], 3);
    assert_eq!(v["total_bans"], 3);
    let sshd = &v["jails"].as_array().expect("jails")[1];
    let mut keys: Vec<&str> = sshd
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "bantime_usec",
            "currently_banned",
            "currently_failed",
            "enabled",
            "filter",
            "findtime_usec",
            "maxretry",
            "name",
            "path",
            "total_banned",
            "total_failed"
        ]
    );
    assert_eq!(sshd["name"], "sshd");
    assert_eq!(sshd["path"], "/org/jailwarden1/jail/sshd");
    assert_eq!(sshd["currently_banned"], 2);
    assert_eq!(sshd["bantime_usec"], 600_000_000u64);
    let out = ok(&daemon.cli(&["status", "web", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["jails"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["jails"][0]["enabled"], false);

    // report: counted, counted, banned (maxretry 3), already banned.
    for (n, want) in [
        (1, "sshd: 203.0.113.5 has 1 failure(s) in the window"),
        (2, "sshd: 203.0.113.5 has 2 failure(s) in the window"),
        (3, "sshd: 203.0.113.5 banned after 3 failures"),
        (4, "sshd: 203.0.113.5 is already banned"),
    ] {
        let out = ok(&daemon.cli(&["report", "sshd", "203.0.113.5"]));
        assert_eq!(out.trim(), want, "report {n}");
    }

    let out = ok(&daemon.cli(&["status", "sshd"]));
    assert!(out.starts_with("jail               sshd\n"), "{out}");
    assert!(out.contains("banned             3 now, 3 total"), "{out}");
    assert!(out.contains("203.0.113.5"), "{out}");

    // unban: one, several with one not banned (exit 1), all.
    assert_eq!(
        ok(&daemon.cli(&["unban", "192.0.2.7"])),
        "unbanned 192.0.2.7\n"
    );
    let out = daemon.cli(&["unban", "--jail", "sshd", "192.0.2.8", "192.0.2.99"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "unbanned 192.0.2.8 in sshd\n");
    assert!(
        stderr(&out).contains("192.0.2.99 is not banned"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ok(&daemon.cli(&["unban", "--all"])), "lifted every ban\n");
    assert_eq!(ok(&daemon.cli(&["unban", "--all"])), "no bans in force\n");
    assert_eq!(ok(&daemon.cli(&["bans"])), "no bans in force\n");

    // Wrong requests exit 2; valid ones that cannot be done exit 1.
    for (args, code, text) in [
        (
            vec!["ban", "nosuch", "192.0.2.1"],
            2,
            "no jail named \"nosuch\"",
        ),
        (vec!["ban", "sshd", "nonsense"], 2, "is not an IP address"),
        (
            vec!["ban", "sshd", "192.0.2.1", "--for", "5 parsecs"],
            2,
            "--for",
        ),
        (vec!["ban", "sshd", "127.0.0.1"], 1, "ignoreip"),
        (vec!["status", "nosuch"], 2, "no jail named"),
        (vec!["unban"], 2, "required"),
    ] {
        let out = daemon.cli(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(text), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(ok(&daemon.cli(&["reload"])), "reloaded\n");
}

#[test]
fn cli_says_when_the_daemon_is_not_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("control.sock");
    let out = cli(&socket, &no_bus(dir.path()), &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "jailwarden: jailwarden is not running (no control socket at {}, no system bus)",
            socket.display()
        )
    );
}

#[test]
fn the_socket_is_private_and_never_shared() {
    let mut daemon = Daemon::start(DaemonSpec::default());
    let socket = daemon.socket().to_path_buf();
    let meta = std::fs::symlink_metadata(&socket).expect("socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir = socket.parent().expect("dir");
    assert_eq!(
        std::fs::metadata(dir).expect("dir").permissions().mode() & 0o777,
        0o755
    );

    // A second daemon on the same socket refuses to start.
    let mut second = Daemon::prepare(&DaemonSpec {
        socket: Some(socket.clone()),
        ..Default::default()
    });
    second.spawn();
    let status = second.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{}", second.log());
    assert!(
        second.log().contains("another jailwarden answers on"),
        "{}",
        second.log()
    );
    ok(&daemon.cli(&["status"]));

    // Stopped, it removes its socket.
    daemon.stop();
    assert!(!socket.exists(), "socket removed at exit");

    // A stale socket (nobody listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("stale socket"));
    assert!(socket.exists());
    let mut third = Daemon::prepare(&DaemonSpec {
        socket: Some(socket.clone()),
        ..Default::default()
    });
    third.spawn();
    third.wait_ready(None);
    assert!(
        third.log().contains("removing a stale control socket"),
        "{}",
        third.log()
    );
    ok(&third.cli(&["status"]));

    // A file that is not a socket is never removed.
    third.stop();
    std::fs::write(&socket, "precious").expect("file");
    let mut fourth = Daemon::prepare(&DaemonSpec {
        socket: Some(socket.clone()),
        ..Default::default()
    });
    fourth.spawn();
    let status = fourth.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1));
    assert!(fourth.log().contains("is not a socket"), "{}", fourth.log());
    assert_eq!(
        std::fs::read_to_string(&socket).ok().as_deref(),
        Some("precious")
    );
}

#[test]
fn socket_activation_takes_the_socket_from_systemd() {
    let daemon = Daemon::prepare(&DaemonSpec::default());
    let socket = daemon.dir().join("activated.sock");
    let inner = daemon.command();
    let args: Vec<String> = std::iter::once(inner.get_program())
        .chain(inner.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let log = std::fs::File::create(daemon.log_path()).expect("log");
    let mut activator = Command::new("systemd-socket-activate");
    activator
        .arg("-l")
        .arg(&socket)
        .arg("--fdname=control")
        .args(["-E", "DBUS_SYSTEM_BUS_ADDRESS", "-E", "JAILWARDEN_LOG"])
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => activator.env(k, v),
            None => activator.env_remove(k),
        };
    }
    let mut child = activator.spawn().expect("run systemd-socket-activate");
    wait_for(Duration::from_secs(10), "the activation socket", || {
        socket.exists().then_some(())
    });
    // The first connection starts the daemon, which serves it.
    let out = cli(&socket, &no_bus(daemon.dir()), &["status", "--json"]);
    let log = daemon.log();
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < end && child.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = ok(&out);
    assert!(text.contains("\"jails\""), "{text}");
    assert!(
        log.contains("control socket handed over by systemd"),
        "{log}"
    );
    assert!(
        !daemon.socket().exists(),
        "the configured socket was not created"
    );
}
