//! Test support: the built `jailwarden daemon` run against a private
//! journald, observed through its journal events and its state database.
//!
//! ```ignore
//! let j = PrivateJournald::started();
//! let d = Daemon::start(&j, CONFIG);       // config with {journal} and {filters} filled in
//! j.syslog("sshd", "Failed password ...");
//! d.wait_ban("sshd", "192.0.2.7");
//! d.term();                                // SIGTERM, waits for exit
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};

use super::{PrivateJournald, wait_until};

/// MESSAGE_IDs (see src/events.rs).
pub const BAN_ID: &str = "20f4993d915743ba897492a7b5b7ca50";
pub const UNBAN_ID: &str = "50b57ea4be684049a56d67a997969cff";
pub const READY_ID: &str = "81fd7018acd5491989e86f286c9ac619";
pub const RELOAD_ID: &str = "8e3598b6af4a4d1d9d9e3544677111c2";
pub const CONFIG_ERROR_ID: &str = "b79d11c760994931a134e52bed1c70ff";

/// A ban event as read back from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanEvent {
    pub jail: String,
    pub address: String,
    pub bantime_usec: u64,
    pub failures: u32,
    pub pid: u32,
}

/// A running daemon and its files.
pub struct Daemon {
    child: Option<Child>,
    /// Run inside this named network namespace (`ip netns`), if any.
    netns: Option<String>,
    pub dir: tempfile::TempDir,
    journal_pid: u32,
    log_dir: PathBuf,
    /// Extra environment for the daemon (e.g. NOTIFY_SOCKET).
    env: Vec<(String, String)>,
}

/// The repository's shipped filters.
pub fn filters_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config/filters"))
}

impl Daemon {
    /// Write `config` (with `{journal}` replaced by the journald's log
    /// directory, `{filters}` by the shipped filters, `{dir}` by the
    /// daemon's temp dir) and start the daemon inside the journald's mount
    /// namespace (so its own events reach that journald). Returns once it
    /// logged READY.
    pub fn start(j: &PrivateJournald, config: &str) -> Daemon {
        Self::start_in(j, config, None)
    }

    /// [`start`](Self::start) inside the named network namespace `netns`,
    /// so its firewall changes stay there.
    pub fn start_in(j: &PrivateJournald, config: &str, netns: Option<&str>) -> Daemon {
        let mut d = Self::prepare_in(j, config, netns);
        d.spawn();
        d
    }

    /// [`start_in`](Self::start_in) without starting it: the directory and
    /// configuration are ready, `spawn` starts it (e.g. after mounting
    /// something on its state directory).
    pub fn prepare_in(j: &PrivateJournald, config: &str, netns: Option<&str>) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("jw-daemon-")
            .tempdir()
            .expect("tempdir");
        let d = Daemon {
            child: None,
            netns: netns.map(str::to_string),
            dir,
            journal_pid: j.pid(),
            log_dir: j.log_dir(),
            env: Vec::new(),
        };
        d.write_config(config);
        d
    }

    /// Set an environment variable for the next spawns.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_string(), value.to_string()));
    }

    /// The state directory given to the daemon (`--state-dir`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `jailwarden ARGS` over this daemon's control socket (no bus).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_jailwarden"))
            .args(args)
            .env("JAILWARDEN_SOCKET", self.dir.path().join("control.sock"))
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                "unix:path=/nonexistent/jw-no-bus",
            )
            .env("TZ", "UTC")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run the CLI")
    }

    /// Path of the main config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("jailwarden.toml")
    }

    /// Replace the configuration (then [`reload`](Self::reload) or restart).
    pub fn write_config(&self, config: &str) {
        // Each test daemon gets its own control socket and stays off any
        // system bus, unless the test says otherwise.
        let mut config = config.to_string();
        if !config.contains("socket =") {
            config = config.replacen("[daemon]", "[daemon]\nsocket = \"{dir}/control.sock\"", 1);
        }
        if !config.contains("dbus =") {
            config = config.replacen("[daemon]", "[daemon]\ndbus = false", 1);
        }
        let text = config
            .replace("{journal}", &self.log_dir.display().to_string())
            .replace("{filters}", &filters_dir().display().to_string())
            .replace("{dir}", &self.dir.path().display().to_string());
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// Start (again) with the same config and state.
    pub fn spawn(&mut self) {
        let since = self.ready_count();
        self.spawn_unready();
        assert!(
            wait_until(Duration::from_secs(20), || self.ready_count() > since),
            "the daemon did not become ready"
        );
    }

    /// Start (again) without waiting for READY (to kill it during start-up).
    pub fn spawn_unready(&mut self) {
        assert!(self.child.is_none(), "already running");
        // `ip netns exec` then `nsenter`: the other order fails, as the
        // named namespace is not mounted in journald's mount namespace.
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.as_str(), "nsenter"]);
                c
            }
            None => Command::new("nsenter"),
        };
        let child = cmd
            .arg("-t")
            .arg(self.journal_pid.to_string())
            .arg("-m")
            .arg(env!("CARGO_BIN_EXE_jailwarden"))
            .arg("daemon")
            .arg("--config")
            .arg(self.config_path())
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .env("JAILWARDEN_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start jailwarden daemon");
        self.child = Some(child);
    }

    /// How many times a daemon on this state logged READY.
    pub fn readies(&self) -> usize {
        self.ready_count()
    }

    /// SIGHUP (a reload), without waiting for it.
    pub fn hup(&self) {
        self.signal(Signal::HUP);
    }

    /// Whether the daemon process is still running (not exited).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Wait for the daemon to exit by itself; its exit status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.child.take().expect("running").wait().expect("wait")
    }

    /// The daemon's PID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    fn signal(&self, sig: Signal) {
        if let Some(pid) = self
            .child
            .as_ref()
            .and_then(|c| Pid::from_raw(c.id() as i32))
        {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }

    /// SIGTERM and wait for a clean exit (status 0).
    pub fn term(&mut self) {
        self.signal(Signal::TERM);
        let mut child = self.child.take().expect("running");
        let status = child.wait().expect("wait");
        assert!(status.success(), "daemon exited with {status}");
    }

    /// SIGKILL: no chance to write anything more.
    pub fn kill(&mut self) {
        self.signal(Signal::KILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// SIGHUP and wait for the reload (or the configuration error) event.
    pub fn reload(&self) {
        let reloads = self.count(&[&format!("MESSAGE_ID={RELOAD_ID}")]);
        let errors = self.count(&[&format!("MESSAGE_ID={CONFIG_ERROR_ID}")]);
        self.signal(Signal::HUP);
        assert!(
            wait_until(Duration::from_secs(10), || {
                self.count(&[&format!("MESSAGE_ID={RELOAD_ID}")]) > reloads
                    || self.count(&[&format!("MESSAGE_ID={CONFIG_ERROR_ID}")]) > errors
            }),
            "no reload event"
        );
    }

    /// Resident memory of the daemon, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn journal(&self, matches: &[&str], output: &str) -> String {
        let out = Command::new("journalctl")
            .arg("-D")
            .arg(&self.log_dir)
            .args(["--no-pager", "-o", output, "SYSLOG_IDENTIFIER=jailwarden"])
            .args(matches)
            .output()
            .expect("journalctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn count(&self, matches: &[&str]) -> usize {
        self.journal(matches, "cat").lines().count()
    }

    fn ready_count(&self) -> usize {
        self.count(&[&format!("MESSAGE_ID={READY_ID}")])
    }

    /// Every ban event so far, oldest first.
    pub fn bans(&self) -> Vec<BanEvent> {
        self.journal(&[&format!("MESSAGE_ID={BAN_ID}")], "json")
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| BanEvent {
                jail: v["JAILWARDEN_JAIL"].as_str().unwrap_or("").to_string(),
                address: v["JAILWARDEN_ADDRESS"].as_str().unwrap_or("").to_string(),
                bantime_usec: v["JAILWARDEN_BANTIME_USEC"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                failures: v["JAILWARDEN_FAILURES"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
                pid: v["_PID"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0),
            })
            .collect()
    }

    /// Messages of other events (unbans, config errors...).
    pub fn messages(&self, message_id: &str) -> Vec<String> {
        self.journal(&[&format!("MESSAGE_ID={message_id}")], "cat")
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Every message the daemon logged.
    pub fn log(&self) -> Vec<String> {
        self.journal(&[], "cat")
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Wait until `address` is banned in `jail`; returns the event.
    pub fn wait_ban(&self, jail: &str, address: &str) -> BanEvent {
        let mut found = None;
        let ok = wait_until(Duration::from_secs(15), || {
            found = self
                .bans()
                .into_iter()
                .find(|b| b.jail == jail && b.address == address);
            found.is_some()
        });
        assert!(
            ok,
            "{address} was not banned in {jail}; bans: {:?}",
            self.bans()
        );
        found.expect("found")
    }

    /// The state database (read-only view).
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.dir.path().join("state/jailwarden.sqlite3"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open state db")
    }

    /// Failures stored for `addr` in `jail` (sum of attempts).
    pub fn stored_failures(&self, jail: &str, addr: &str) -> i64 {
        self.db()
            .query_row(
                "SELECT coalesce(sum(attempts), 0) FROM failures WHERE jail = ?1 AND addr = ?2",
                [jail, addr],
                |r| r.get(0),
            )
            .unwrap_or(0)
    }

    /// Active bans in the store: (jail, net).
    pub fn stored_bans(&self) -> Vec<(String, String)> {
        let db = self.db();
        let mut st = db
            .prepare("SELECT jail, net FROM bans ORDER BY jail, net")
            .expect("query");
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .flatten()
            .collect()
    }

    /// The state directory.
    pub fn state(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Daemon {
    /// Every field of the entries matching `matches`, as `journalctl -o
    /// verbose` prints them.
    pub fn journal_fields(&self, matches: &[&str]) -> String {
        self.journal(matches, "verbose")
    }
}
