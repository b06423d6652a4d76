//! `fail2ban-client` compatibility, side by side: a real `fail2ban-server`
//! (TESTING.md section 5: private paths, the dummy action, no firewall)
//! and a jailwarden daemon (backend none, its own control socket) with the
//! same two jails; the same addresses banned and unbanned through each
//! one's client, the real `fail2ban-client` against Fail2ban and our
//! binary invoked as `fail2ban-client` (a symlink, as `make install-compat`
//! installs) against jailwarden; every command's output must be equal line
//! by line, and its exit code too. The times in `--with-time` lines (the
//! two daemons ban a moment apart) are compared separately: ours must be
//! jailwarden's own ban times.
//!
//! Then `import-fail2ban --write --bans` carries Fail2ban's bans (from its
//! database) into a stopped jailwarden's store, and a daemon started on it
//! holds them with their remaining time.
//!
//! Needs root (the daemon runs beside a private journald) and Debian's
//! fail2ban package.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use support::daemon::Daemon;
use support::{PrivateJournald, fail2ban, wait_until};

/// A private fail2ban-server, stopped (by PID) when dropped.
struct Fail2banServer {
    dir: PathBuf,
    child: Option<Child>,
}

impl Fail2banServer {
    fn conf(&self) -> PathBuf {
        self.dir.join("conf")
    }

    fn sock(&self) -> PathBuf {
        self.dir.join("run/fail2ban.sock")
    }

    fn start(dir: &Path, journal: &Path) -> Fail2banServer {
        fail2ban::require();
        let conf = dir.join("conf");
        fail2ban::copy_dir(Path::new("/etc/fail2ban"), &conf);
        let _ = std::fs::remove_file(conf.join("jail.d/defaults-debian.conf"));
        std::fs::create_dir_all(dir.join("run")).unwrap();
        let d = dir.display();
        std::fs::write(
            conf.join("fail2ban.local"),
            format!("[Definition]\nallowipv6 = auto\nlogtarget = {d}/fail2ban.log\nsocket = {d}/run/fail2ban.sock\npidfile = {d}/run/fail2ban.pid\ndbfile = {d}/fail2ban.sqlite3\n"),
        )
        .unwrap();
        std::fs::write(dir.join("auth.log"), "").unwrap();
        std::fs::write(dir.join("web.log"), "").unwrap();
        std::fs::write(
            conf.join("jail.local"),
            format!(
                "[DEFAULT]\nbanaction = dummy\nbanaction_allports = dummy\nignoreself = false\n\
                 [sshd]\nenabled = true\nbackend = polling\nlogpath = {d}/auth.log\naction = dummy[target={d}/bans.txt]\nmaxretry = 3\nfindtime = 10m\nbantime = 1h\n\
                 [zz-journal]\nenabled = true\nfilter = sshd\nbackend = systemd[journalpath={j}]\njournalmatch = _SYSTEMD_UNIT=sshd.service + _COMM=sshd\naction = dummy[target={d}/bans-journal.txt]\n\
                 [zz-web]\nenabled = true\nfilter = nginx-http-auth\nbackend = polling\nlogpath = {d}/web.log\naction = dummy[target={d}/bans-web.txt]\nmaxretry = 5\nbantime = -1\n",
                j = journal.display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/fail2ban-server")
            .args(["-f", "-x", "-c"])
            .arg(&conf)
            .arg("-s")
            .arg(dir.join("run/fail2ban.sock"))
            .arg("-p")
            .arg(dir.join("run/fail2ban.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fail2ban-server");
        let s = Fail2banServer {
            dir: dir.to_path_buf(),
            child: Some(child),
        };
        assert!(
            wait_until(Duration::from_secs(30), || s
                .client(&["ping"])
                .status
                .success()),
            "fail2ban-server did not answer"
        );
        s
    }

    fn client(&self, args: &[&str]) -> Output {
        Command::new("/usr/bin/fail2ban-client")
            .arg("-c")
            .arg(self.conf())
            .arg("-s")
            .arg(self.sock())
            .args(args)
            .output()
            .expect("run fail2ban-client")
    }

    fn stop(&mut self) {
        let _ = self.client(&["stop"]);
        if let Some(mut c) = self.child.take() {
            if !wait_until(Duration::from_secs(10), || {
                c.try_wait().ok().flatten().is_some()
            }) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Fail2banServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The end of a `--with-time` line (`ADDR \tSTART + N = END`), Unix seconds.
fn end_of(line: &str) -> i64 {
    let end = line.rsplit(" = ").next().unwrap();
    jiff::tz::TimeZone::system()
        .to_timestamp(jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", end).unwrap())
        .unwrap()
        .as_second()
}

/// Our binary under the name scripts call.
fn compat_client(dir: &Path) -> PathBuf {
    let link = dir.join("bin/fail2ban-client");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_jailwarden"), &link).unwrap();
    link
}

fn ours(client: &Path, socket: &Path, args: &[&str]) -> Output {
    Command::new(client)
        .args(args)
        .env("JAILWARDEN_SOCKET", socket)
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .expect("run our fail2ban-client")
}

/// stdout with the `YYYY-MM-DD HH:MM:SS` times masked.
fn masked(s: &str) -> String {
    let re = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d").unwrap();
    re.replace_all(s, "<TIME>").into_owned()
}

const CONFIG: &str = r#"
[daemon]
backend = "none"
filter_dirs = ["{filters}"]
state_dir = "{dir}/state"
journal_directory = "{journal}"

[jails.sshd]
filter = "sshd"
journal_match = []
logpath = ["@F2B@/auth.log"]
maxretry = 3
findtime = "10m"
bantime = "1h"
ignoreself = false

[jails.zz-journal]
filter = "sshd"
journal_match = ["_SYSTEMD_UNIT=sshd.service", "+", "_COMM=sshd"]

[jails.zz-web]
filter = "nginx-http-auth"
journal_match = []
logpath = ["@F2B@/web.log"]
maxretry = 5
bantime = "permanent"
ignoreself = false
"#;

#[test]
fn fail2ban_client_commands_answer_like_fail2ban() {
    let tmp = tempfile::Builder::new()
        .prefix("jw-compat-")
        .tempdir()
        .unwrap();
    let j = PrivateJournald::started();
    let mut f2b = Fail2banServer::start(&tmp.path().join("f2b"), &j.log_dir());
    let daemon = Daemon::start(&j, &CONFIG.replace("@F2B@", &f2b.dir.display().to_string()));
    let socket = daemon.dir.path().join("control.sock");
    let client = compat_client(tmp.path());

    // One failed login in the shared log: both count it.
    let now = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::system());
    let line = format!(
        "{} host1 sshd[4242]: Failed password for root from 192.0.2.50 port 40000 ssh2\n",
        now.strftime("%b %e %H:%M:%S")
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(f2b.dir.join("auth.log"))
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    let failed = |o: &Output| String::from_utf8_lossy(&o.stdout).contains("Total failed:\t1");
    assert!(
        wait_until(Duration::from_secs(15), || failed(
            &f2b.client(&["status", "sshd"])
        ) && failed(&ours(
            &client,
            &socket,
            &["status", "sshd"]
        ))),
        "both count the failure"
    );

    // (command, compare stdout exactly, or with times masked)
    let steps: &[(&str, bool)] = &[
        ("ping", true),
        ("status", true),
        ("status sshd", true),
        ("status zz-web", true),
        ("status zz-journal", true),
        ("status sshd --all", true),
        ("status nosuch", true),
        ("set sshd banip 192.0.2.10 192.0.2.11", true),
        ("set zz-web banip 2001:db8::1 192.0.2.10", true),
        ("set nosuch banip 192.0.2.1", true),
        ("status sshd", true),
        ("status zz-web", true),
        ("banned", true),
        ("banned 192.0.2.10 192.0.2.99", true),
        ("banned 2001:db8::1", true),
        ("get sshd banned", true),
        ("get sshd banned 192.0.2.10 192.0.2.99", true),
        ("get sshd banned 192.0.2.11", true),
        ("get sshd banip", true),
        ("get sshd banip ,", true),
        ("get sshd banip --with-time", false),
        ("get zz-web banip --with-time", false),
        ("get sshd maxretry", true),
        ("get sshd findtime", true),
        ("get sshd bantime", true),
        ("get zz-web bantime", true),
        ("set sshd banip 192.0.2.10", true),
        ("get sshd banip", false),
        (
            "set sshd unbanip --report-absent 192.0.2.11 192.0.2.99",
            true,
        ),
        ("set sshd unbanip 192.0.2.55", true),
        ("status sshd", true),
        ("unban 192.0.2.10", true),
        ("banned", true),
        ("set sshd banip 192.0.2.12 192.0.2.13", true),
        ("unban --all", true),
        ("status sshd", true),
        ("unban", true),
        ("reload", true),
        ("reload sshd", true),
        ("frobnicate", true),
    ];
    let mut compared = 0;
    for (cmd, exact) in steps {
        let args: Vec<&str> = cmd.split(' ').collect();
        let theirs = f2b.client(&args);
        let mine = ours(&client, &socket, &args);
        let (t, m) = (
            String::from_utf8_lossy(&theirs.stdout).into_owned(),
            String::from_utf8_lossy(&mine.stdout).into_owned(),
        );
        let (t_cmp, m_cmp) = if *exact {
            (t.clone(), m.clone())
        } else {
            (masked(&t), masked(&m))
        };
        if *cmd == "get sshd banip" && !exact {
            // Documented difference: banning an address already banned
            // extends its ban in Fail2ban (so it sorts later by end of
            // ban); jailwarden leaves the ban as it is.
            assert_eq!(
                t.trim(),
                "192.0.2.11 192.0.2.10",
                "Fail2ban extended 192.0.2.10"
            );
            assert_eq!(m.trim(), "192.0.2.10 192.0.2.11", "jailwarden did not");
            continue;
        }
        assert_eq!(
            m_cmp.lines().collect::<Vec<_>>(),
            t_cmp.lines().collect::<Vec<_>>(),
            "`fail2ban-client {cmd}`: stdout differs\nFail2ban:\n{t}\njailwarden:\n{m}\n(stderr: {})",
            String::from_utf8_lossy(&mine.stderr)
        );
        assert_eq!(
            mine.status.code(),
            theirs.status.code(),
            "`fail2ban-client {cmd}`: exit code (Fail2ban stderr: {}; ours: {})",
            String::from_utf8_lossy(&theirs.stderr),
            String::from_utf8_lossy(&mine.stderr)
        );
        compared += t.lines().count().max(1);
        if *cmd == "get sshd banip --with-time" {
            // Our times are jailwarden's: the bans' own start, + 3600 = end.
            let bans = Command::new(env!("CARGO_BIN_EXE_jailwarden"))
                .args(["bans", "--jail", "sshd", "--json", "--socket"])
                .arg(&socket)
                .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&bans.stdout).unwrap();
            for b in v["bans"].as_array().unwrap() {
                let addr = b["address"].as_str().unwrap();
                let at = b["banned_at_usec"].as_u64().unwrap() / 1_000_000;
                let start = jiff::Timestamp::from_second(at as i64)
                    .unwrap()
                    .to_zoned_datetime(jiff::tz::TimeZone::system())
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string();
                let end = jiff::Timestamp::from_second(at as i64 + 3600)
                    .unwrap()
                    .to_zoned_datetime(jiff::tz::TimeZone::system())
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string();
                let line = format!("{addr} \t{start} + 3600 = {end}");
                assert!(m.lines().any(|l| l == line), "{line:?} not in:\n{m}");
            }
        }
    }
    println!("{} commands, {compared} lines compared equal", steps.len());

    // Commands jailwarden does not have name the one to use.
    let o = ours(&client, &socket, &["set", "sshd", "findtime", "600"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("jailwarden reload"),
        "{o:?}"
    );
    // Without a daemon: Fail2ban's exit code, and a clear message.
    let o = ours(&client, &tmp.path().join("nowhere.sock"), &["status"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("jailwarden is not running"),
        "{o:?}"
    );

    // --bans with the daemon running: through its API, with the time left.
    f2b.client(&["set", "sshd", "banip", "192.0.2.30"]);
    let f2b_end: i64 = {
        let l =
            String::from_utf8_lossy(&f2b.client(&["get", "sshd", "banip", "--with-time"]).stdout)
                .into_owned();
        let line = l
            .lines()
            .find(|l| l.starts_with("192.0.2.30 "))
            .expect("banned")
            .to_string();
        end_of(&line)
    };
    let out1 = tmp.path().join("jailwarden-running");
    std::fs::create_dir_all(&out1).unwrap();
    std::fs::write(
        out1.join("jailwarden.toml"),
        format!(
            "[daemon]\nfilter_dirs = [\"{}\"]\n",
            support::daemon::filters_dir().display()
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_jailwarden"))
        .arg("import-fail2ban")
        .arg(f2b.conf())
        .args([
            "--output",
            out1.to_str().unwrap(),
            "--write",
            "--bans",
            "--socket",
            socket.to_str().unwrap(),
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .unwrap();
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("bans in force through the running daemon"),
        "{t}"
    );
    let o = ours(&client, &socket, &["get", "sshd", "banip", "--with-time"]);
    let mine = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = mine
        .lines()
        .find(|l| l.starts_with("192.0.2.30 "))
        .unwrap_or_else(|| panic!("carried over: {mine}"));
    assert!(
        (end_of(line) - f2b_end).abs() <= 2,
        "the same end of ban: {line} vs {f2b_end}"
    );
    f2b.client(&["set", "sshd", "unbanip", "192.0.2.30"]);
    drop(daemon);
    drop(j);

    // Carry Fail2ban's bans over into a stopped jailwarden.
    f2b.client(&["set", "sshd", "banip", "192.0.2.20", "192.0.2.21"]);
    f2b.client(&["set", "zz-web", "banip", "198.51.100.9"]);
    let listed =
        String::from_utf8_lossy(&f2b.client(&["get", "sshd", "banip", "--with-time"]).stdout)
            .into_owned();
    f2b.stop();
    let out = tmp.path().join("jailwarden");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("jailwarden.toml"),
        format!(
            "[daemon]\nbackend = \"none\"\ndbus = false\nsocket = \"{}/control.sock\"\nfilter_dirs = [\"{}\"]\n",
            out.display(),
            support::daemon::filters_dir().display()
        ),
    )
    .unwrap();
    let state = out.join("state");
    let o = Command::new(env!("CARGO_BIN_EXE_jailwarden"))
        .arg("import-fail2ban")
        .arg(f2b.conf())
        .args([
            "--output",
            out.to_str().unwrap(),
            "--write",
            "--bans",
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .args(["--socket", out.join("control.sock").to_str().unwrap()])
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("Carried over 3 of Fail2ban's 3 bans in force into "),
        "{text}"
    );
    let store = jailwarden::store::Store::open(&state).unwrap();
    let mut got = Vec::new();
    store.for_each_ban(|b| got.push(b)).unwrap();
    got.sort_by_key(|b| b.net.to_string());
    let names: Vec<String> = got
        .iter()
        .map(|b| format!("{} {}", b.jail, b.net.addr()))
        .collect();
    assert_eq!(
        names,
        ["sshd 192.0.2.20", "sshd 192.0.2.21", "zz-web 198.51.100.9"]
    );
    // The same end of ban as Fail2ban had (its database keeps whole
    // seconds, rounded: within a second); permanent stays permanent.
    for b in got.iter().filter(|b| b.jail == "sshd") {
        let end = b.expires_at.unwrap().as_second();
        let line = listed
            .lines()
            .find(|l| l.starts_with(&format!("{} \t", b.net.addr())))
            .unwrap_or_else(|| panic!("{} not in {listed}", b.net.addr()));
        let theirs = line.rsplit(" = ").next().unwrap();
        let theirs = jiff::tz::TimeZone::system()
            .to_timestamp(jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", theirs).unwrap())
            .unwrap()
            .as_second();
        assert!(
            (end - theirs).abs() <= 1,
            "end {end} vs Fail2ban's {theirs} ({line})"
        );
        assert!(line.contains(" + 3600 = "), "{line}");
    }
    assert_eq!(
        got.iter().find(|b| b.jail == "zz-web").unwrap().expires_at,
        None
    );
}

/// `make install-compat` makes the symlink, never replaces Fail2ban's own
/// client, and the Debian package ships no fail2ban-client.
#[test]
fn install_compat_links_and_never_replaces_fail2ban() {
    let tmp = tempfile::tempdir().unwrap();
    let make = |target: &str| {
        Command::new("make")
            .args(["-s", "-C", env!("CARGO_MANIFEST_DIR"), target])
            .arg(format!("DESTDIR={}", tmp.path().display()))
            .output()
            .expect("make (the make package)")
    };
    let link = tmp.path().join("usr/bin/fail2ban-client");
    let o = make("install-compat");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("jailwarden"));
    assert!(make("install-compat").status.success(), "again: idempotent");
    std::fs::remove_file(&link).unwrap();
    std::fs::write(&link, "#!/usr/bin/python3\n# Fail2ban's\n").unwrap();
    let o = make("install-compat");
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is not jailwarden's"),
        "{o:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&link).unwrap(),
        "#!/usr/bin/python3\n# Fail2ban's\n",
        "untouched"
    );
    let cargo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let assets = &cargo[cargo.find("assets = [").unwrap()..];
    assert!(
        !assets[..assets.find("\n]").unwrap()].contains("fail2ban"),
        "the .deb must not ship fail2ban-client"
    );
}
