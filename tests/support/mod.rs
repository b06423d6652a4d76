//! Test support: a private systemd-journald per test.
//!
//! [`PrivateJournald`] runs `tests/support/private-journald.sh` (TESTING.md
//! section 1): a real journald in its own mount namespace, with its sockets
//! and journal files in a temporary directory, so tests need no host
//! journald and never touch the host's. It is stopped by PID when dropped.
//!
//! ```ignore
//! mod support;
//! let j = support::PrivateJournald::started();
//! j.syslog("sshd", "Failed password for root from 192.0.2.7 port 22 ssh2");
//! j.send(&[&[("MESSAGE", b"hi"), ("SYSLOG_IDENTIFIER", b"sshd"), ("X", b"1")]]);
//! let unit = j.unit("ssh.service");            // unique per journald
//! j.send_in_unit(&unit, &[&[("MESSAGE", b"from the unit")]]);
//! // read with journalctl -D j.log_dir() or jailwarden's journal_directory
//! ```
//!
//! Every writer returns only once journald has written what it sent
//! (`journalctl --sync` in its namespace), so a test can rely on order.
//!
//! Needs root (mount namespaces, cgroups), `systemd`, `python3-systemd`
//! and `util-linux`; CI runs tests as root.

#![allow(dead_code)] // each test binary uses its own subset

pub mod daemon;
pub mod fail2ban;
pub mod netns;
pub mod root;

/// First line of a root-only test: when not root it returns at once, says
/// so on the terminal, and the suite ends with the count of tests skipped.
#[allow(unused_macros)]
macro_rules! needs_root {
    () => {
        if $crate::support::root::skip_unless_root() {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use needs_root;

#[allow(unused_imports)] // each test binary uses its own subset
pub use netns::{Elem, NamedNetns, elements, in_netns, nft_json, nft_script, output, run, values};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/private-journald.sh"
);

/// Fields of one entry to send natively: `(NAME, value)`, values raw bytes.
pub type Fields<'a> = &'a [(&'a str, &'a [u8])];

/// A private systemd-journald writing into a temporary directory.
pub struct PrivateJournald {
    dir: tempfile::TempDir,
    pid: Option<u32>,
    /// Makes unit names unique across journalds of concurrent tests.
    tag: String,
    /// Unit cgroups created, removed on drop.
    cgroups: std::sync::Mutex<Vec<PathBuf>>,
}

static INSTANCES: AtomicU32 = AtomicU32::new(0);

impl PrivateJournald {
    /// A directory for a journald, not started yet (so a reader can be
    /// pointed at `log_dir()` before any journal file exists).
    pub fn new() -> Self {
        root::require_root("a private journald (TESTING.md 1: mount namespaces, cgroups)");
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{n}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix(&format!("jw-journald-{tag}-"))
            .tempdir()
            .expect("create a temporary directory for journald");
        std::fs::create_dir_all(dir.path().join("log")).expect("create DIR/log");
        PrivateJournald {
            dir,
            pid: None,
            tag,
            cgroups: Default::default(),
        }
    }

    /// [`new`](Self::new) and [`start`](Self::start).
    pub fn started() -> Self {
        let mut j = Self::new();
        j.start();
        j
    }

    /// Start journald on this directory (again, after a stop: a restart).
    pub fn start(&mut self) {
        assert!(self.pid.is_none(), "journald already running");
        let out = Command::new(SCRIPT)
            .arg(self.dir.path())
            .stderr(Stdio::inherit())
            .output()
            .expect("run private-journald.sh");
        assert!(out.status.success(), "private-journald.sh failed");
        let pid: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("private-journald.sh prints a PID");
        self.pid = Some(pid);
        // The script waits for the sockets; --sync also waits for the
        // varlink socket, i.e. journald's event loop is running.
        self.sync();
    }

    /// Stop journald (SIGTERM: it closes its files cleanly) and wait for it.
    pub fn stop(&mut self) {
        self.signal_and_wait(Signal::TERM);
    }

    /// Kill journald with SIGKILL: its active file is left dirty, as after
    /// a crash; the next journald sets it aside and starts a new one.
    pub fn crash(&mut self) {
        self.signal_and_wait(Signal::KILL);
    }

    /// Stop and start again on the same files.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// journald's PID, while running.
    pub fn pid(&self) -> u32 {
        self.pid.expect("journald is not running")
    }

    /// The test directory (sockets in `sock/`, journal files in `log/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the journal files are: what a reader's journal directory is.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// A unit name unique to this journald, e.g. `jw1234-0-ssh.service`:
    /// concurrent tests must not share unit cgroups.
    pub fn unit(&self, base: &str) -> String {
        format!("jw{}-{base}", self.tag)
    }

    /// Log a syslog datagram to its `/dev/log`, like sshd does (logger
    /// adds `SYSLOG_PID`, journald `_PID`, `_COMM=logger`).
    pub fn syslog(&self, ident: &str, message: &str) {
        let status = Command::new("logger")
            .arg("-u")
            .arg(self.dir.path().join("sock/dev-log"))
            .args(["-t", ident, "-i", "--", message])
            .status()
            .expect("run logger");
        assert!(status.success(), "logger failed");
        self.sync();
    }

    /// Send entries natively (any fields, binary values), in this order.
    pub fn send(&self, entries: &[Fields]) {
        self.send_from(None, entries);
    }

    /// Send entries from a process in `unit`'s cgroup, so journald gives
    /// them `_SYSTEMD_UNIT=unit`. Use [`unit`](Self::unit) for the name.
    pub fn send_in_unit(&self, unit: &str, entries: &[Fields]) {
        let root = cgroup2_root();
        let cg = root.join("system.slice").join(unit);
        // Another test may remove an empty system.slice concurrently: retry.
        let mut tries = 0;
        while let Err(e) = std::fs::create_dir_all(&cg) {
            tries += 1;
            assert!(tries < 50, "create cgroup {}: {e}", cg.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        self.cgroups.lock().unwrap().push(cg.clone());
        self.send_from(Some(&cg), entries);
    }

    /// Send entries from a process in the cgroup `rel` (below the cgroup2
    /// root, e.g. `system.slice/system-ssh.slice/ssh@x.service`): journald
    /// names `_SYSTEMD_UNIT`, `_SYSTEMD_SLICE` after it. Make the unit part
    /// unique with [`unit`](Self::unit); the cgroups made are removed on
    /// drop when empty.
    pub fn send_in_cgroup(&self, rel: &str, entries: &[Fields]) {
        let root = cgroup2_root();
        let cg = root.join(rel);
        let mut tries = 0;
        while let Err(e) = std::fs::create_dir_all(&cg) {
            tries += 1;
            assert!(tries < 50, "create cgroup {}: {e}", cg.display());
            std::thread::sleep(Duration::from_millis(10));
        }
        {
            let mut made = self.cgroups.lock().unwrap();
            // Innermost first, so parents empty before they are removed;
            // system.slice itself is shared and stays.
            let mut dir = cg.clone();
            while dir != root && dir != root.join("system.slice") {
                if !made.contains(&dir) {
                    made.push(dir.clone());
                }
                match dir.parent() {
                    Some(p) => dir = p.to_path_buf(),
                    None => break,
                }
            }
        }
        self.send_from(Some(&cg), entries);
    }

    /// Run `program` in journald's mount namespace as user and group
    /// `nobody` (65534): an unprivileged local user writing to the journal.
    pub fn as_nobody(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.pid().to_string())
            .args(["-m", "-S", "65534", "-G", "65534", program]);
        c
    }

    /// Write everything journald has received to disk before returning.
    pub fn sync(&self) {
        let status = self
            .in_namespace("journalctl")
            .arg("--sync")
            .status()
            .expect("run journalctl --sync");
        assert!(status.success(), "journalctl --sync failed");
    }

    /// Rotate the journal files (the active file is archived as
    /// `system@....journal`, a new `system.journal` started).
    pub fn rotate(&self) {
        let status = self
            .in_namespace("journalctl")
            .arg("--rotate")
            .status()
            .expect("run journalctl --rotate");
        assert!(status.success(), "journalctl --rotate failed");
    }

    /// Delete archived journal files (keeping the active one), as journald's
    /// vacuuming does when the journal reaches its size limit.
    pub fn vacuum(&self) {
        let out = Command::new("journalctl")
            .arg("-D")
            .arg(self.log_dir())
            .arg("--vacuum-files=1")
            .output()
            .expect("run journalctl --vacuum-files");
        assert!(out.status.success(), "journalctl --vacuum-files failed");
    }

    /// The journal files now present.
    pub fn journal_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for sub in std::fs::read_dir(self.log_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(sub.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                files.push(f.path());
            }
        }
        files.sort();
        files
    }

    /// `MESSAGE`s of the entries matching `matches`, as journalctl sees them.
    pub fn messages(&self, matches: &[&str]) -> Vec<String> {
        let out = Command::new("journalctl")
            .arg("-D")
            .arg(self.log_dir())
            .args(["--no-pager", "-o", "cat"])
            .args(matches)
            .output()
            .expect("run journalctl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A command run inside journald's mount namespace, where the usual
    /// socket paths lead to this journald.
    pub fn in_namespace(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.pid().to_string())
            .arg("-m")
            .arg(program);
        c
    }

    fn send_from(&self, cgroup: Option<&Path>, entries: &[Fields]) {
        // One python process sends every entry, then syncs while still
        // alive: journald reads the sender's /proc/PID (its cgroup gives
        // _SYSTEMD_UNIT) when it processes the datagram.
        const SENDER: &str = r#"
import struct, subprocess, sys
from systemd import journal
data = sys.stdin.buffer.read()
pos = 0
def u32():
    global pos
    (v,) = struct.unpack_from("<I", data, pos)
    pos += 4
    return v
for _ in range(u32()):
    items = []
    for _ in range(u32()):
        n = u32()
        items.append(data[pos:pos + n])
        pos += n
    journal.sendv(*items)
subprocess.run(["journalctl", "--sync"], check=True)
"#;
        let mut input = Vec::new();
        let u32le = |v: usize| u32::try_from(v).expect("small").to_le_bytes();
        input.extend(u32le(entries.len()));
        for fields in entries {
            input.extend(u32le(fields.len()));
            for (name, value) in fields.iter() {
                input.extend(u32le(name.len() + 1 + value.len()));
                input.extend(name.as_bytes());
                input.push(b'=');
                input.extend(*value);
            }
        }
        let pid = self.pid().to_string();
        let mut cmd = match cgroup {
            // Enter the cgroup first, then exec nsenter (same PID) → python.
            Some(cg) => {
                let mut c = Command::new("sh");
                c.args([
                    "-c",
                    r#"echo $$ > "$1/cgroup.procs" && shift && exec "$@""#,
                    "sh",
                ])
                .arg(cg);
                c.args(["nsenter", "-t", &pid, "-m"]);
                c
            }
            None => {
                let mut c = Command::new("nsenter");
                c.args(["-t", &pid, "-m"]);
                c
            }
        };
        cmd.args(["/usr/bin/python3", "-c", SENDER])
            .stdin(Stdio::piped());
        let mut child = cmd.spawn().expect("start the python sender");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(&input)
            .expect("feed the python sender");
        let status = child.wait().expect("wait for the python sender");
        assert!(status.success(), "python journal sender failed");
    }

    fn signal_and_wait(&mut self, signal: Signal) {
        let Some(pid) = self.pid.take() else {
            return;
        };
        // Only ever our own journald: check it is still that process.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "systemd-journal" {
            return;
        }
        let Some(p) = Pid::from_raw(pid as i32) else {
            return;
        };
        let _ = rustix::process::kill_process(p, signal);
        // journald is not our child (the script backgrounds it), so it is
        // reaped by init: gone or a zombie both mean it has exited.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return,
                Ok(stat) => {
                    let state = stat.rsplit_once(") ").map(|(_, rest)| rest.as_bytes()[0]);
                    if matches!(state, Some(b'Z' | b'X')) {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("journald {pid} did not exit within 10 s");
    }
}

impl Default for PrivateJournald {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PrivateJournald {
    fn drop(&mut self) {
        self.signal_and_wait(Signal::TERM);
        // The senders have exited; their (empty) unit cgroups can go.
        // system.slice itself is shared with other tests and stays.
        let cgroups = std::mem::take(&mut *self.cgroups.lock().unwrap_or_else(|e| e.into_inner()));
        let mut cgroups = cgroups;
        // Deepest first: a slice goes after the units inside it.
        cgroups.sort_by_key(|c| std::cmp::Reverse(c.components().count()));
        for cg in cgroups {
            let _ = std::fs::remove_dir(cg);
        }
    }
}

/// Where cgroup2 is mounted: `/sys/fs/cgroup/unified` on hybrid hosts
/// (TESTING.md), `/sys/fs/cgroup` on unified ones. journald derives
/// `_SYSTEMD_UNIT` from the sender's cgroup2 path only.
fn cgroup2_root() -> PathBuf {
    let hybrid = Path::new("/sys/fs/cgroup/unified");
    if hybrid.join("cgroup.procs").exists() {
        hybrid.to_path_buf()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

/// Poll `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Write `entries` as a journal file at `path` (must end in `.journal`;
/// its directory must hold nothing else journal-remote might rotate into)
/// with `systemd-journal-remote`, for offline fixtures whose timestamps a
/// test chooses. Each entry is `(realtime_usec, fields)`; `_BOOT_ID` and
/// `__MONOTONIC_TIMESTAMP` (consistent with the realtime) are filled in.
pub fn write_journal_file(path: &Path, entries: &[(u64, Fields)]) {
    const BOOT_ID: &str = "0123456789abcdef0123456789abcdef";
    const BOOT_AT: u64 = 1_000_000_000_000_000;
    let mut export = Vec::new();
    for (n, (usec, fields)) in entries.iter().enumerate() {
        writeln!(export, "__REALTIME_TIMESTAMP={usec}").unwrap();
        // One boot, started at BOOT_AT: monotonic time follows realtime,
        // across files too (sd-journal orders one boot's entries of
        // different files by it).
        let mono = usec.checked_sub(BOOT_AT).unwrap_or(1_000_000 + n as u64);
        writeln!(export, "__MONOTONIC_TIMESTAMP={mono}").unwrap();
        writeln!(export, "_BOOT_ID={BOOT_ID}").unwrap();
        for (name, value) in fields.iter() {
            if value.contains(&b'\n') {
                // Export format's binary-safe form: NAME\n, le64 size, data.
                export.extend(name.as_bytes());
                export.push(b'\n');
                export.extend((value.len() as u64).to_le_bytes());
                export.extend(*value);
            } else {
                export.extend(name.as_bytes());
                export.push(b'=');
                export.extend(*value);
            }
            export.push(b'\n');
        }
        export.push(b'\n');
    }
    let mut child = Command::new("/lib/systemd/systemd-journal-remote")
        .arg("-o")
        .arg(path)
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run systemd-journal-remote");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(&export)
        .expect("feed systemd-journal-remote");
    let status = child.wait().expect("wait for systemd-journal-remote");
    assert!(status.success(), "systemd-journal-remote failed");
}

/// Show the library's tracing output in test logs (`cargo test -- --nocapture`,
/// `RUST_LOG=jailwarden=debug`); call at the top of a test, as often as you like.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "jailwarden=info".into()),
        )
        .with_test_writer()
        .try_init();
}
