//! Test support for the control surfaces: a private system-bus-like
//! dbus-daemon that includes our `dbus/org.jailwarden1.conf` (TESTING.md
//! section 3), and the built daemon in a temporary directory (backend
//! "none"), both stopped by PID when dropped.
//!
//! Every instance uses its own directory, socket paths and names, so tests
//! (and other engineers' test runs) can run at once.

#![allow(dead_code)] // each test binary uses its own subset

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

#[path = "../support/root.rs"]
pub mod root;

pub const BIN: &str = env!("CARGO_BIN_EXE_jailwarden");

/// First line of a root-only test: when not root it returns at once, says
/// so on the terminal, and the suite ends with the count of tests skipped.
#[allow(unused_macros)]
macro_rules! needs_root {
    () => {
        if $crate::bus_support::root::skip_unless_root() {
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use needs_root;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The daemon's binary where the user nobody can run it: the build's,
/// or a copy in `dir` when the build directory is closed to others.
pub fn binary_for_nobody(dir: &std::path::Path) -> std::path::PathBuf {
    let runs = std::process::Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            BIN,
            "--version",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        return BIN.into();
    }
    let copy = dir.join("jailwarden");
    std::fs::copy(BIN, &copy).expect("copy the binary");
    copy
}

/// Poll `f` until it returns `Some`, or panic after `limit` with `what`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn stop(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        if let Some(pid) = Pid::from_raw(child.id() as i32) {
            let _ = rustix::process::kill_process(pid, Signal::TERM);
        }
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// A private dbus-daemon with a system-bus-like policy plus ours.
pub struct PrivateBus {
    dir: tempfile::TempDir,
    child: Child,
    address: String,
}

impl PrivateBus {
    pub fn start() -> PrivateBus {
        Self::start_with("")
    }

    /// Start with extra `<policy>` XML (e.g. letting root own a fake
    /// polkit).
    pub fn start_with(extra_policy: &str) -> PrivateBus {
        let dir = tempfile::Builder::new()
            .prefix("jw-bus-")
            .tempdir()
            .expect("temporary directory for the bus");
        // nobody must reach the socket (access-control tests).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the bus directory");
        let socket = dir.path().join("system_bus_socket");
        let conf = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type> <auth>EXTERNAL</auth>
  <listen>unix:path={socket}</listen>
  <policy context="default">
    <allow user="*"/> <deny own="*"/> <deny send_type="method_call"/> <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/> <allow receive_type="method_return"/>
    <allow receive_type="error"/> <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
  </policy>
  {extra_policy}
  <include>{policy}</include>
</busconfig>
"#,
            socket = socket.display(),
            policy = repo().join("dbus/org.jailwarden1.conf").display(),
        );
        let conf_path = dir.path().join("bus.conf");
        std::fs::write(&conf_path, conf).expect("write bus.conf");
        let child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf_path.display()))
            .args(["--nofork", "--nopidfile"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run dbus-daemon (package dbus)");
        let address = format!("unix:path={}", socket.display());
        let bus = PrivateBus {
            dir,
            child,
            address,
        };
        wait_for(Duration::from_secs(10), "dbus-daemon to listen", || {
            std::os::unix::net::UnixStream::connect(&socket).ok()
        });
        bus
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// `busctl --address=... ARGS`.
    pub fn busctl(&self, args: &[&str]) -> Output {
        Command::new("busctl")
            .arg(format!("--address={}", self.address))
            .args(args)
            .output()
            .expect("run busctl")
    }

    /// `busctl` as the unprivileged user nobody.
    pub fn busctl_as_nobody(&self, args: &[&str]) -> Output {
        Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "busctl",
            ])
            .arg(format!("--address={}", self.address))
            .args(args)
            .output()
            .expect("run busctl as nobody")
    }

    /// `dbus-send --print-reply` (prints error names, unlike busctl);
    /// with `as_nobody`, as the user nobody.
    pub fn dbus_send(&self, as_nobody: bool, args: &[&str]) -> Output {
        let mut cmd = if as_nobody {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "dbus-send",
            ]);
            c
        } else {
            Command::new("dbus-send")
        };
        cmd.arg(format!("--bus={}", self.address))
            .arg("--print-reply")
            .args(args)
            .output()
            .expect("run dbus-send")
    }

    /// The unique name owning `name`, if any.
    pub fn owner(&self, name: &str) -> Option<String> {
        let out = self.busctl(&[
            "call",
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "GetNameOwner",
            "s",
            name,
        ]);
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .strip_prefix("s ")
            .map(|s| s.trim_matches('"').to_string())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// How to start a daemon.
pub struct DaemonSpec<'a> {
    /// The bus to join; `None` points the daemon at a bus that is not there.
    pub bus: Option<&'a PrivateBus>,
    /// Extra jails (TOML) appended to the configuration.
    pub extra: &'a str,
    /// Use this control socket instead of one in the daemon's directory.
    pub socket: Option<PathBuf>,
    /// Wait until the bus name is owned by this daemon.
    pub wait_for_name: bool,
    /// Ban in nftables (else backend "none"); run it in `netns` then.
    pub nftables: bool,
    /// Run inside this named network namespace (`ip netns exec`).
    pub netns: Option<&'a str>,
    /// More `[daemon]` keys (TOML lines).
    pub daemon_keys: &'a str,
}

impl Default for DaemonSpec<'_> {
    fn default() -> Self {
        DaemonSpec {
            bus: None,
            extra: "",
            socket: None,
            wait_for_name: true,
            nftables: false,
            netns: None,
            daemon_keys: "",
        }
    }
}

/// The jailwarden daemon in a temporary directory.
pub struct Daemon {
    dir: tempfile::TempDir,
    child: Option<Child>,
    socket: PathBuf,
    bus_address: String,
    netns: Option<String>,
    /// The start of config(): backend and [daemon] keys.
    head: String,
}

/// A bus address where no bus listens.
pub fn no_bus(dir: &Path) -> String {
    format!("unix:path={}", dir.join("no-bus-here").display())
}

impl Daemon {
    /// Write the configuration: jails `sshd` (maxretry 3, bantime 10m),
    /// `nginx-http-auth` and a disabled `web`, filter `dummy`
    /// (`failure from <HOST>`), an empty journal directory, backend none.
    pub fn prepare(spec: &DaemonSpec<'_>) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("jw-daemon-")
            .tempdir()
            .expect("temporary directory for the daemon");
        let d = dir.path();
        for sub in ["etc/filters", "journal", "state"] {
            std::fs::create_dir_all(d.join(sub)).expect("create daemon dirs");
        }
        std::fs::write(
            d.join("etc/filters/dummy.toml"),
            "description = \"test\"\nfailregex = ['^failure from <HOST>$']\n",
        )
        .expect("write filter");
        let socket = spec
            .socket
            .clone()
            .unwrap_or_else(|| d.join("run/jailwarden/control.sock"));
        let head = format!(
            "backend = \"{}\"\n{}",
            if spec.nftables { "nftables" } else { "none" },
            spec.daemon_keys
        );
        std::fs::write(
            d.join("etc/jailwarden.toml"),
            config(d, &socket, &head, spec.extra),
        )
        .expect("write config");
        let bus_address = match spec.bus {
            Some(b) => b.address().to_string(),
            None => no_bus(d),
        };
        Daemon {
            dir,
            child: None,
            socket,
            bus_address,
            netns: spec.netns.map(str::to_string),
            head,
        }
    }

    /// [`prepare`](Self::prepare), start, and wait until it serves.
    pub fn start(spec: DaemonSpec<'_>) -> Daemon {
        let mut d = Self::prepare(&spec);
        d.spawn();
        d.wait_ready(spec.bus.filter(|_| spec.wait_for_name));
        d
    }

    pub fn command(&self) -> Command {
        let mut cmd = match &self.netns {
            // ip execs the daemon: the child's PID is the daemon's.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("daemon")
            .arg("--config")
            .arg(self.config_path())
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .arg("--foreground")
            .env("DBUS_SYSTEM_BUS_ADDRESS", &self.bus_address)
            .env("JAILWARDEN_LOG", "info,zbus=warn")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    }

    pub fn spawn(&mut self) {
        let log = std::fs::File::create(self.log_path()).expect("daemon log");
        let child = self.command().stderr(log).spawn().expect("run the daemon");
        self.child = Some(child);
    }

    /// Wait for the control socket to answer, and for the bus name.
    pub fn wait_ready(&mut self, bus: Option<&PrivateBus>) {
        let socket = self.socket.clone();
        wait_for(Duration::from_secs(30), "the control socket", || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("the daemon exited ({status}):\n{}", self.log());
            }
            std::os::unix::net::UnixStream::connect(&socket).ok()
        });
        if let Some(bus) = bus {
            let pid = self.pid();
            wait_for(
                Duration::from_secs(30),
                "org.jailwarden1 on the bus",
                || {
                    let owner = bus.owner("org.jailwarden1")?;
                    (bus_pid(bus, &owner)? == pid).then_some(())
                },
            );
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("etc/jailwarden.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Rewrite the configuration with other extra jails.
    pub fn rewrite_config(&self, extra: &str) {
        std::fs::write(
            self.config_path(),
            config(self.dir.path(), &self.socket, &self.head, extra),
        )
        .expect("rewrite config");
    }

    /// Run the CLI against this daemon's socket (no bus unless `bus`).
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.socket, &no_bus(self.dir.path()), args)
    }

    /// Stop it (SIGTERM, then SIGKILL after 10 s); returns its exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        stop(&mut child);
        child.wait().ok()
    }

    /// Wait for it to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("started");
        wait_for(limit, "the daemon to exit", || {
            child.try_wait().ok().flatten()
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop(&mut c);
        }
    }
}

fn config(d: &Path, socket: &Path, head: &str, extra: &str) -> String {
    format!(
        r#"[daemon]
{head}
journal_directory = "{journal}"
socket = "{socket}"

[defaults]
findtime = "10m"
maxretry = 5
bantime = "10m"
ignoreip = ["127.0.0.0/8", "::1"]

[jails.sshd]
enabled = true
filter = "dummy"
journal_match = ["_SYSTEMD_UNIT=ssh.service"]
maxretry = 3

[jails.nginx-http-auth]
enabled = true
filter = "dummy"
journal_match = ["_SYSTEMD_UNIT=nginx.service"]

[jails.web]
enabled = false
filter = "dummy"
journal_match = ["_SYSTEMD_UNIT=web.service"]
{extra}
"#,
        journal = d.join("journal").display(),
        socket = socket.display(),
    )
}

/// Run the CLI with a given socket and bus address.
pub fn cli(socket: &Path, bus: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("JAILWARDEN_SOCKET", socket)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus)
        .env("TZ", "UTC")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .expect("run the CLI")
}

/// The pid behind a unique name.
pub fn bus_pid(bus: &PrivateBus, unique: &str) -> Option<u32> {
    let out = bus.busctl(&[
        "call",
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        "org.freedesktop.DBus",
        "GetConnectionUnixProcessID",
        "s",
        unique,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().strip_prefix("u ")?.trim().parse().ok()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert success, showing both streams otherwise.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}
