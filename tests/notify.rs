//! The daemon's side of `Type=notify`, without systemd (TESTING.md section
//! 7): the test binds the notification socket itself and checks what the
//! built binary sends and when, so the protocol is tested on every
//! `cargo test`, root or not. The same messages as seen by a real systemd
//! are checked by `tests/nspawn.rs`.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `jailwarden daemon` with a notification socket of its own.
struct Daemon {
    child: Child,
    socket: UnixDatagram,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// Start it with a file jail on `DIR/auth.log`, backend `none`, and the
    /// watchdog asking for a ping every `watchdog` (pings come at half).
    fn start(watchdog: Duration) -> Daemon {
        let dir = tempfile::tempdir().expect("temporary directory");
        let filters = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/filters");
        std::fs::write(dir.path().join("auth.log"), b"").expect("write auth.log");
        std::fs::create_dir(dir.path().join("state")).expect("create state dir");
        let config = format!(
            "[daemon]\nbackend = \"none\"\nfilter_dirs = [{filters:?}]\n\
             socket = {socket:?}\ndbus = false\n\
             [defaults]\nmaxretry = 3\nignoreip = []\n\
             [jails.sshd]\nenabled = true\nfilter = \"sshd\"\njournal_match = []\n\
             logpath = [{log:?}]\n",
            filters = filters.display().to_string(),
            log = dir.path().join("auth.log").display().to_string(),
            // Not /run/jailwarden: the test runs as any user.
            socket = dir.path().join("control.sock").display().to_string(),
        );
        std::fs::write(dir.path().join("jailwarden.toml"), config).expect("write config");
        let (child, socket) = Daemon::spawn(dir.path(), watchdog);
        Daemon { child, socket, dir }
    }

    /// Start it again on the same files and state, after it stopped.
    fn restart(&mut self, watchdog: Duration) {
        assert!(
            self.child.try_wait().expect("wait").is_some(),
            "restart: still running"
        );
        let _ = std::fs::remove_file(self.dir.path().join("notify.sock"));
        (self.child, self.socket) = Daemon::spawn(self.dir.path(), watchdog);
    }

    fn spawn(dir: &Path, watchdog: Duration) -> (Child, UnixDatagram) {
        let sock_path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&sock_path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("set timeout");
        let child = Command::new(env!("CARGO_BIN_EXE_jailwarden"))
            .arg("daemon")
            .arg("--config")
            .arg(dir.join("jailwarden.toml"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
            .env_remove("WATCHDOG_PID")
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start jailwarden daemon");
        (child, socket)
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("auth.log")
    }

    /// The next message, if one comes within `within`.
    fn recv(&self, within: Duration) -> Option<String> {
        let end = Instant::now() + within;
        let mut buf = [0u8; 4096];
        while Instant::now() < end {
            if let Ok(n) = self.socket.recv(&mut buf) {
                return Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        None
    }

    /// Wait (bounded) for a message with this line, skipping others.
    fn expect(&self, line: &str, within: Duration) -> String {
        self.expect_where(|m| m.lines().any(|l| l == line), line, within)
    }

    /// Wait (bounded) for a message that satisfies `pred`, skipping others.
    fn expect_where(&self, pred: impl Fn(&str) -> bool, what: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        let mut seen = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(m) if pred(&m) => return m,
                Some(m) => seen.push(m),
                None => break,
            }
        }
        panic!("no {what:?} within {within:?}; got {seen:?}");
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("child pid");
        rustix::process::kill_process(pid, sig).expect("signal the daemon");
    }

    /// Exit status after SIGTERM, waiting at most 10 s.
    fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(rustix::process::Signal::TERM);
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(Instant::now() < end, "the daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The value of `KEY=` in a message.
fn field<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// A failed-password line for the sshd filter, stamped now (UTC), so it is
/// inside the jail's findtime.
fn failure(addr: &str) -> String {
    let now = jiff::Timestamp::now();
    format!(
        "{} srv sshd[4242]: Failed password for root from {addr} port 2222 ssh2\n",
        now.strftime("%b %e %H:%M:%S")
    )
}

/// CLOCK_MONOTONIC in microseconds, as systemd compares MONOTONIC_USEC.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

#[test]
fn ready_status_watchdog_reload_and_stopping() {
    let mut d = Daemon::start(Duration::from_secs(1));

    let ready = d.expect("READY=1", Duration::from_secs(20));
    assert_eq!(
        field(&ready, "STATUS"),
        Some("1 jail, 0 banned, 0 lines/min"),
        "{ready}"
    );

    // Pings at half of WATCHDOG_USEC: at least two within 1.5 s.
    let t = Instant::now();
    d.expect("WATCHDOG=1", Duration::from_secs(2));
    d.expect("WATCHDOG=1", Duration::from_secs(2));
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );

    // A ban shows in STATUS without waiting for the 30 s housekeeping.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.log())
        .expect("open auth.log");
    for _ in 0..3 {
        f.write_all(failure("192.0.2.7").as_bytes())
            .expect("append");
    }
    drop(f);
    let banned = "1 jail, 1 banned, 0 lines/min";
    let t = Instant::now();
    d.expect_where(
        |m| field(m, "STATUS") == Some(banned),
        banned,
        Duration::from_secs(10),
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // SIGHUP: RELOADING=1 with the monotonic time, then READY=1 again.
    d.signal(rustix::process::Signal::HUP);
    let reloading = d.expect("RELOADING=1", Duration::from_secs(10));
    let usec: u64 = field(&reloading, "MONOTONIC_USEC")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC with RELOADING: {reloading:?}"));
    let now_usec = monotonic_usec();
    assert!(
        usec <= now_usec && now_usec - usec < 10_000_000,
        "{usec} vs {now_usec}"
    );
    let ready = d.expect("READY=1", Duration::from_secs(10));
    assert_eq!(
        field(&ready, "STATUS"),
        Some("1 jail, 1 banned, 0 lines/min"),
        "bans survive a reload: {ready}"
    );

    // SIGTERM: STOPPING=1, then a clean exit.
    d.signal(rustix::process::Signal::TERM);
    d.expect("STOPPING=1", Duration::from_secs(10));
    let status = d.terminate();
    assert!(status.success(), "{status}");
}

/// `status` (text, or `--json`) through the daemon's control socket.
fn status_output(d: &Daemon, json: bool) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jailwarden"));
    c.arg("status")
        .arg("--socket")
        .arg(d.dir.path().join("control.sock"))
        .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent");
    if json {
        c.arg("--json");
    }
    let o = c.output().expect("run jailwarden status");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn status_json(d: &Daemon) -> serde_json::Value {
    serde_json::from_str(&status_output(d, true)).expect("status --json is JSON")
}

/// A log file that grew by 96 MB while the daemon was stopped: at the next
/// start `STATUS=`, `status` and `status --json` (`file_backlog`) say how much is
/// read and left, until the end is reached; a ban from the last lines
/// shows it got there. A SIGTERM leaves the database alone in the state
/// directory: its WAL is checkpointed and removed.
#[test]
fn a_file_backlog_shows_its_progress_and_a_stop_leaves_no_wal() {
    let mut d = Daemon::start(Duration::from_secs(60));
    d.expect("READY=1", Duration::from_secs(20));
    assert!(d.terminate().success());
    let state = d.dir.path().join("state");
    let left: Vec<String> = std::fs::read_dir(&state)
        .expect("read the state dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["jailwarden.sqlite3"], "after SIGTERM");

    // Lines the sshd filter reads and drops (long, so the file is large
    // for few lines), then an attacker at the very end.
    let stamp = jiff::Timestamp::now()
        .strftime("%b %e %H:%M:%S")
        .to_string();
    let noise = format!(
        "{stamp} srv sshd[4242]: Received disconnect from 192.0.2.9 port 2222:11: {}\n",
        "x".repeat(380)
    );
    let mut block = String::new();
    while block.len() < 1 << 20 {
        block.push_str(&noise);
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.log())
        .expect("open auth.log");
    for _ in 0..96 {
        f.write_all(block.as_bytes()).expect("append");
    }
    for _ in 0..3 {
        f.write_all(failure("192.0.2.8").as_bytes())
            .expect("append");
    }
    drop(f);

    d.restart(Duration::from_secs(60));
    let ready = d.expect("READY=1", Duration::from_secs(20));
    // The backlog is seen at its first batch: READY may already say so.
    let mut statuses = vec![field(&ready, "STATUS").unwrap_or("").to_string()];
    let mut fractions = Vec::new();
    let mut texts = Vec::new();
    let end = Instant::now() + Duration::from_secs(300);
    loop {
        let v = status_json(&d);
        let b = &v["file_backlog"];
        if b.is_null() {
            if v["active_bans"] == 1 {
                break;
            }
        } else {
            let (read, left) = (b["bytes_read"].as_u64(), b["bytes_left"].as_u64());
            let (Some(read), Some(left)) = (read, left) else {
                panic!("file_backlog without bytes_read/bytes_left: {b}");
            };
            assert!(read + left <= 97 << 20 && read + left > 90 << 20, "{b}");
            fractions.push(b["fraction"].as_f64().expect("fraction"));
            // The text form too (the backlog may end between the calls).
            if let Some(l) = status_output(&d, false)
                .lines()
                .find(|l| l.starts_with("reading log files: "))
            {
                texts.push(l.to_string());
            }
        }
        while let Some(m) = d.recv(Duration::from_millis(1)) {
            if let Some(s) = field(&m, "STATUS") {
                statuses.push(s.to_string());
            }
        }
        assert!(
            Instant::now() < end,
            "not read to the end in 300 s; seen {fractions:?}, STATUS {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        fractions.iter().any(|f| *f > 0.0 && *f < 1.0),
        "no progress seen mid-way: {fractions:?}"
    );
    assert!(
        texts
            .iter()
            .any(|l| l.contains("%, ") && l.ends_with(" left")),
        "status (text) never showed the backlog: {texts:?}"
    );
    assert!(
        fractions.windows(2).all(|w| w[0] <= w[1]),
        "progress only grows: {fractions:?}"
    );
    // Once read, STATUS says so too (sent at most every second or so).
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if let Some(st) = d
            .recv(Duration::from_millis(200))
            .as_deref()
            .and_then(|m| field(m, "STATUS"))
        {
            statuses.push(st.to_string());
        }
    }
    assert!(
        statuses
            .iter()
            .any(|s| s.contains("; reading log files: ") && s.contains("%, ")),
        "STATUS never showed the backlog: {statuses:?}"
    );
    let last = statuses.last().expect("a STATUS");
    assert!(
        last.contains("1 banned") && !last.contains("reading"),
        "STATUS after the backlog: {statuses:?}"
    );
}
