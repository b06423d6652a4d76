//! jailwarden as Debian installs it and systemd runs it: Debian 12
//! (bookworm: systemd 252, OpenSSH 9.2, nftables 1.0.6) and Debian 13
//! (trixie: systemd 257, OpenSSH 10 with sshd-session, nftables 1.1)
//! containers booted with systemd as PID 1 (TESTING.md section 6), the
//! same package (built by `make deb` from the binary under test) installed
//! in each, and an attacker next door. Both run at once.
//!
//! The container has a network namespace of its own, joined by a veth pair
//! to a peer namespace (192.0.2.1 ↔ 192.0.2.2); both are created and
//! deleted here, so the host's network and firewall are never touched. The
//! root file system is a cached debootstrap tree per release under
//! `/var/tmp/jailwarden-nspawn-root/` (built on the first run, ~1-2 min),
//! booted with `--volatile=overlay`, so every run starts from the same tree
//! and leaves it as it was.
//!
//! Needs root, `debootstrap`, `systemd-container`, `iproute2`, `nftables`,
//! `sshpass`/`openssh-client`, the Debian mirror, and `cargo-deb`
//! (`cargo install cargo-deb --locked`). The mirror is the Debian one apt
//! uses here (its sources); `JAILWARDEN_NSPAWN_MIRROR` overrides it, and
//! without either the test fails and says so.
//!
//! `cargo test --test nspawn -- --nocapture` shows each step and its time.

#[path = "support/root.rs"]
mod root;

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Cached trees live here, one directory per [`tree_key`].
const CACHE: &str = "/var/tmp/jailwarden-nspawn-root";
/// A Debian release to boot.
#[derive(Clone, Copy)]
struct Release {
    suite: &'static str,
    version: u32,
    /// systemd's version there (Type=notify-reload needs 253).
    systemd: u32,
}
const BOOKWORM: Release = Release {
    suite: "bookworm",
    version: 12,
    systemd: 252,
};
const TRIXIE: Release = Release {
    suite: "trixie",
    version: 13,
    systemd: 257,
};
/// Bump to rebuild the cached trees for a reason the package list doesn't show.
const TREE_VERSION: u32 = 1;
/// What the container needs besides minbase: systemd as init, the bus and
/// polkit for the D-Bus API, nftables to look at the kernel's sets, sshd
/// to attack, procps for the unit's /bin/kill, make for `make install`,
/// postfix for the mail action, man-db for `man jailwarden`.
/// The .deb's own dependencies are all here, so it installs offline.
const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "libpam-systemd",
    "dbus",
    "polkitd",
    "nftables",
    "iproute2",
    "openssh-server",
    "procps",
    "make",
    "postfix",
    "man-db",
];
const CONTAINER_ADDR: &str = "192.0.2.1";
const PEER_ADDR: &str = "192.0.2.2";
/// How long any single wait may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(60);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The longest any one command may take: systemctl waits up to 90 s for
/// a start job, and a first debootstrap takes its own, longer limit.
const COMMAND_LIMIT: Duration = Duration::from_secs(150);

fn run(cmd: &mut Command) -> Output {
    run_for(cmd, COMMAND_LIMIT)
}

/// Run `cmd` to completion, at most `limit`: then kill it (our child, by
/// PID) and fail, rather than let a hung step hang the whole test.
fn run_for(cmd: &mut Command, limit: Duration) -> Output {
    let t = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = wait_child(&mut child, limit)
        .unwrap_or_else(|| panic!("{cmd:?} still running after {:?}: killed", t.elapsed()));
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Wait for our child at most `limit`; kill it and return `None` after.
fn wait_child(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("wait for a child") {
            return Some(st);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Say where the test is and how long it has run, so a slow or stuck
/// step shows in the log.
fn step(started: (Instant, &str), what: &str) {
    eprintln!(
        "nspawn {}: [{:>6.1} s] {what}",
        started.1,
        started.0.elapsed().as_secs_f64()
    );
}

fn ok(cmd: &mut Command) -> String {
    let o = run(cmd);
    assert!(o.status.success(), "{cmd:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Poll `probe` every 100 ms until it returns `Some`, at most `PATIENCE`.
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let end = Instant::now() + PATIENCE;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= end => {
                panic!("waited {PATIENCE:?} for {what}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// FNV-1a: a hash that stays the same across Rust versions, for the key.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The cached tree's directory name: suite, version and package list.
fn tree_key(release: Release) -> String {
    let list = PACKAGES.join(",");
    let suite = release.suite;
    format!(
        "{suite}-v{TREE_VERSION}-{:016x}",
        fnv(&format!("{suite} {list}"))
    )
}

/// The Debian mirror apt uses here (first `.../debian` URI in its
/// sources), or `$JAILWARDEN_NSPAWN_MIRROR`; no host name of our own.
fn mirror() -> String {
    if let Ok(m) = std::env::var("JAILWARDEN_NSPAWN_MIRROR") {
        return m;
    }
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(content) = std::fs::read_to_string(&f) else {
            continue;
        };
        for line in content.lines().map(str::trim) {
            let uris: Vec<&str> = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().collect()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                // deb [options] URI suite components
                let rest = match rest.trim_start().strip_prefix('[') {
                    Some(r) => r.split_once(']').map_or("", |(_, r)| r),
                    None => rest,
                };
                rest.split_whitespace().take(1).collect()
            } else {
                Vec::new()
            };
            if let Some(u) = uris
                .into_iter()
                .find(|u| u.trim_end_matches('/').ends_with("/debian"))
            {
                return u.to_string();
            }
        }
    }
    panic!(
        "no Debian mirror: apt's sources (/etc/apt/sources.list, /etc/apt/sources.list.d/) \
         name no .../debian URI; set JAILWARDEN_NSPAWN_MIRROR=<mirror URL> to choose one"
    )
}

/// The cached bookworm tree, debootstrapped on first use. A lock keeps
/// concurrent test runs from building it twice; a tree only gets its final
/// name once complete, so a killed run leaves nothing half-built in use.
fn cached_tree(release: Release) -> PathBuf {
    let base = Path::new(CACHE);
    let suite = release.suite;
    std::fs::create_dir_all(base).expect("create the cache directory");
    // One lock per release: both releases' trees are built at once.
    let lock = File::create(base.join(format!(".lock-{suite}"))).expect("create the cache lock");
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("lock the cache");
    let key = tree_key(release);
    let tree = base.join(&key);
    if tree.is_dir() {
        return tree;
    }
    // This release's older versions and leftovers of interrupted runs.
    for e in std::fs::read_dir(base).expect("read the cache").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("{suite}-")) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let tmp = base.join(format!("{key}.tmp"));
    let mirror = mirror();
    eprintln!(
        "nspawn: debootstrapping Debian {suite} from {mirror} into {} (first run only; 1-2 min)",
        tree.display()
    );
    let t = Instant::now();
    let o = run_for(
        Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", PACKAGES.join(",")))
            .arg(suite)
            .arg(&tmp)
            .arg(&mirror),
        Duration::from_secs(1200),
    );
    if !o.status.success() {
        let log =
            std::fs::read_to_string(tmp.join("debootstrap/debootstrap.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!(
            "debootstrap failed: {}\n--- debootstrap.log (end) ---\n{}",
            text(&o),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    std::fs::rename(&tmp, &tree).expect("move the tree in place");
    eprintln!("nspawn: tree ready in {:?}", t.elapsed());
    tree
}

/// Build the .deb from the binary under test with `cargo deb --no-build`:
/// cargo-deb takes `target/release/jailwarden` from `$CARGO_TARGET_DIR`,
/// so a scratch target directory holding a copy of the test binary makes
/// it package exactly what `cargo test` built, without a release build.
fn build_deb() -> PathBuf {
    // Both releases install the same package: built once.
    static DEB: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DEB.get_or_init(build_deb_once).clone()
}

fn build_deb_once() -> PathBuf {
    let stage = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nspawn-deb");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(stage.join("release")).expect("create the staging dir");
    std::fs::copy(
        env!("CARGO_BIN_EXE_jailwarden"),
        stage.join("release/jailwarden"),
    )
    .expect("stage the binary");
    let out = stage.join("out");
    std::fs::create_dir_all(&out).expect("create the output dir");
    // `make deb` as a packager runs it: the man pages and completions the
    // binary generates, then cargo deb.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new("make");
    cmd.current_dir(repo())
        .env("CARGO_TARGET_DIR", &stage)
        .env("CARGO", cargo)
        .args(["--no-print-directory", "deb", "NO_BUILD=1"])
        .arg(format!(
            "DEB_FLAGS=--strip --no-dbgsym --fast --offline -o {}",
            out.display()
        ));
    let o = run(&mut cmd);
    let t = text(&o);
    assert!(
        !t.contains("no such command"),
        "cargo-deb is needed: cargo install cargo-deb --locked\n{t}"
    );
    assert!(o.status.success(), "cargo deb failed:\n{t}");
    let deb = std::fs::read_dir(&out)
        .expect("read the output dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .unwrap_or_else(|| panic!("no .deb in {}:\n{t}", out.display()));
    // The scratch copy of the binary is big; the package is what we need.
    let _ = std::fs::remove_dir_all(stage.join("release"));
    deb
}

/// Two network namespaces joined by a veth pair: the container's and the
/// peer's. Deleted (veth with them) when dropped.
struct Net {
    container: String,
    peer: String,
}

impl Net {
    /// `n` tells apart the networks of one test process.
    fn new(n: u32) -> Net {
        let id = std::process::id();
        let net = Net {
            container: format!("jwns-c{n}-{id}"),
            peer: format!("jwns-p{n}-{id}"),
        };
        for ns in [&net.container, &net.peer] {
            let _ = run(Command::new("ip").args(["netns", "del", ns]));
            ok(Command::new("ip").args(["netns", "add", ns]));
        }
        let (c, p) = (net.container.as_str(), net.peer.as_str());
        ok(Command::new("ip").args([
            "link", "add", "vC", "netns", c, "type", "veth", "peer", "name", "vP", "netns", p,
        ]));
        ok(Command::new("ip").args(["-n", c, "addr", "add", "192.0.2.1/24", "dev", "vC"]));
        ok(Command::new("ip").args(["-n", p, "addr", "add", "192.0.2.2/24", "dev", "vP"]));
        ok(Command::new("ip").args(["-n", c, "link", "set", "vC", "up"]));
        ok(Command::new("ip").args(["-n", p, "link", "set", "vP", "up"]));
        ok(Command::new("ip").args(["-n", p, "link", "set", "lo", "up"]));
        net
    }

    /// A command run in the peer's namespace (host binaries).
    fn peer(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.peer]).args(args);
        c
    }

    /// Whether the peer can open a TCP connection to the container's sshd.
    fn peer_connects_to_ssh(&self) -> bool {
        let probe = format!("exec 3<>/dev/tcp/{CONTAINER_ADDR}/22");
        run(&mut self.peer(&["timeout", "3", "bash", "-c", &probe]))
            .status
            .success()
    }

    /// One failed password login from the peer (wrong password, unknown
    /// user); the caller runs several at once, each costs ~2 s of PAM delay.
    fn failed_ssh_login(&self, user: &str) -> Child {
        let target = format!("{user}@{CONTAINER_ADDR}");
        // A client whose connection is cut by the ban it helped cause would
        // wait for TCP to give up: end it after 20 s (exit 124), as banned.
        self.peer(&[
            "timeout",
            "20",
            "sshpass",
            "-p",
            "wrong-password",
            "ssh",
            "-F",
            "/dev/null",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            &target,
            "true",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run sshpass/ssh in the peer namespace (packages sshpass, openssh-client)")
    }

    /// The container's table, as JSON.
    fn table_json(&self) -> Option<String> {
        table_json(&self.container)
    }
}

/// `nft -j list table inet jailwarden` in network namespace `netns`, with
/// the host's nft (quicker than entering the container); `None` if absent.
fn table_json(netns: &str) -> Option<String> {
    let o = run(Command::new("ip").args([
        "netns",
        "exec",
        netns,
        "nft",
        "-j",
        "list",
        "table",
        "inet",
        "jailwarden",
    ]));
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.container, &self.peer] {
            let _ = run(Command::new("ip").args(["netns", "del", ns]));
        }
    }
}

/// A booted container. Powered off (nspawn gets SIGTERM, by PID) when
/// dropped; its mounts live in a mount namespace that goes with it.
struct Container {
    nspawn: Child,
    leader: u32,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Container {
    /// Boot `tree` in network namespace `netns`, with host directories
    /// bound read-only at `(host, inside)`.
    fn boot(tree: &Path, netns: &str, binds: &[(&Path, &str)]) -> Container {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("nspawn.log");
        let out = File::create(&log).expect("create the nspawn log");
        // /run is no tmpfs on this host: nspawn needs one over /run/systemd
        // (TESTING.md 6), in a mount namespace of its own.
        let script = "tree=$1; netns=$2; shift 2; \
            mount -t tmpfs tmpfs /run/systemd && exec systemd-nspawn -q \
            -D \"$tree\" --volatile=overlay --boot --register=no --keep-unit \
            --network-namespace-path=\"/run/netns/$netns\" --capability=CAP_NET_ADMIN \
            --console=pipe \"$@\"";
        let bind_args = binds
            .iter()
            .map(|(host, inside)| format!("--bind-ro={}:{inside}", host.display()));
        let nspawn = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(tree)
            .arg(netns)
            .args(bind_args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .spawn()
            .expect("start systemd-nspawn");
        let mut c = Container {
            leader: 0,
            nspawn,
            log,
            _dir: dir,
        };
        // nspawn's first child is short-lived: the container's PID 1 is
        // the child whose comm is "systemd".
        let parent = c.nspawn.id();
        c.leader = wait_for("the container's systemd", || {
            if let Ok(Some(st)) = c.nspawn.try_wait() {
                panic!("systemd-nspawn exited ({st}): {}", c.log_text());
            }
            child_named(parent, "systemd").ok_or_else(|| "not yet".to_string())
        });
        wait_for("the container to finish booting", || {
            let o = run(&mut c.cmd(&["systemctl", "is-system-running", "--wait"]));
            let st = String::from_utf8_lossy(&o.stdout).trim().to_string();
            match st.as_str() {
                "running" | "degraded" => Ok(()),
                _ => Err(format!("{st} {}", text(&o))),
            }
        });
        c
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A command run inside the container (its namespaces and binaries).
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.leader.to_string())
            .args(["-m", "-u", "-i", "-n", "-p", "--"])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .env("SYSTEMD_PAGER", "")
            .env("SYSTEMD_COLORS", "0")
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        run(&mut self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&mut self.cmd(args))
    }

    /// `systemctl restart jailwarden.service`. systemd 252 on cgroup v1 in
    /// a container sometimes cannot recreate a unit's cgroup right after
    /// a stop (exit status 219/CGROUP before our binary runs: nothing of
    /// ours started): that one case is retried once, and said.
    fn restart_service(&self) {
        let o = self.run(&["systemctl", "restart", "jailwarden.service"]);
        if o.status.success() {
            return;
        }
        let status = self.show("jailwarden.service");
        if status.get("ExecMainStatus").map(String::as_str) == Some("219") {
            eprintln!(
                "nspawn: systemd could not create jailwarden.service's cgroup (219/CGROUP, before the binary ran): retrying the restart once"
            );
            std::thread::sleep(Duration::from_secs(1));
            self.ok(&["systemctl", "reset-failed", "jailwarden.service"]);
            self.ok(&["systemctl", "restart", "jailwarden.service"]);
            return;
        }
        panic!(
            "systemctl restart jailwarden.service failed: {}{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(
                &self
                    .run(&[
                        "journalctl",
                        "-u",
                        "jailwarden.service",
                        "-n",
                        "30",
                        "--no-pager"
                    ])
                    .stdout
            )
        );
    }

    /// `systemctl show` properties of a unit.
    fn show(&self, unit: &str) -> HashMap<String, String> {
        self.ok(&["systemctl", "show", unit])
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Wait until the service runs, READY=1 received (active/running),
    /// with a STATUS= summary.
    fn wait_service_ready(&self) -> HashMap<String, String> {
        wait_for("jailwarden.service active (running) with a status", || {
            let p = self.show("jailwarden.service");
            let st = (
                p.get("ActiveState").map(String::as_str),
                p.get("SubState").map(String::as_str),
            );
            if st == (Some("active"), Some("running"))
                && p.get("StatusText").is_some_and(|s| s.contains(" banned"))
            {
                Ok(p)
            } else {
                Err(format!(
                    "{st:?} {:?} {:?}",
                    p.get("StatusText"),
                    p.get("Result")
                ))
            }
        })
    }

    fn journal(&self, args: &[&str]) -> String {
        let mut a = vec!["journalctl", "--no-pager", "-u", "jailwarden.service"];
        a.extend_from_slice(args);
        self.ok(&a)
    }

    /// The host's path to a file inside the running container.
    fn host_path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.leader))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let j = self.run(&[
                "journalctl",
                "-b",
                "--no-pager",
                "-n",
                "200",
                "-o",
                "short-monotonic",
            ]);
            eprintln!(
                "--- container journal (end) ---\n{}\n--- nspawn log ---\n{}",
                text(&j),
                self.log_text()
            );
        }
        let pid = rustix::process::Pid::from_raw(self.nspawn.id() as i32);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// The PID of a child of `parent` whose comm is `name`.
fn child_named(parent: u32, name: &str) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may hold spaces and parens.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let ppid = stat[close + 1..].split_whitespace().nth(1);
        if comm == name && ppid == Some(parent.to_string().as_str()) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn service_in_a_booted_debian_12() {
    if root::skip_unless_root() {
        return;
    }
    booted(BOOKWORM);
}

#[test]
fn service_in_a_booted_debian_13() {
    if root::skip_unless_root() {
        return;
    }
    booted(TRIXIE);
}

fn booted(release: Release) {
    let started = (Instant::now(), release.suite);
    step(started, "building the .deb");
    let deb = build_deb();
    step(started, "the cached tree");
    let tree = cached_tree(release);
    step(started, "booting");
    let net = Net::new(release.version);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_jailwarden"))
        .parent()
        .expect("the binary's directory");
    let c = Container::boot(
        &tree,
        &net.container,
        &[
            (
                deb.parent().expect("the .deb's directory"),
                "/mnt/jailwarden",
            ),
            (repo(), "/mnt/src"),
            (bin_dir, "/mnt/bin"),
        ],
    );
    step(started, "booted");
    wait_for("sshd in the container", || {
        net.peer_connects_to_ssh()
            .then_some(())
            .ok_or_else(|| "no connection".to_string())
    });

    // --- Install: postinst creates the user, enables and starts it. ---
    step(
        started,
        "Install: postinst creates the user, enables and starts it.",
    );
    let deb_inside = format!(
        "/mnt/jailwarden/{}",
        deb.file_name().expect("name").to_string_lossy()
    );
    c.ok(&[
        "apt-get",
        "install",
        "-y",
        "--no-install-recommends",
        &deb_inside,
    ]);
    // The package enables and starts both units itself (its postinst,
    // through deb-systemd-helper and deb-systemd-invoke): no systemctl here.
    let os = c.ok(&["sh", "-c", ". /etc/os-release; echo $VERSION_ID"]);
    assert_eq!(
        os.trim(),
        release.version.to_string(),
        "the container's release"
    );
    let systemd = c.ok(&["systemctl", "--version"]);
    let systemd: u32 = systemd
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        systemd >= release.systemd,
        "systemd {systemd} in Debian {}",
        release.version
    );
    let enabled = c.ok(&[
        "systemctl",
        "is-enabled",
        "jailwarden.service",
        "jailwarden.socket",
    ]);
    assert_eq!(enabled.trim(), "enabled\nenabled", "{enabled}");
    let p = c.wait_service_ready();
    assert_eq!(p["StatusText"], "1 jail, 0 banned, 0 lines/min");
    assert_eq!(p["NRestarts"], "0");
    assert_eq!(p["Type"], "notify");
    assert_eq!(c.show("jailwarden.socket")["SubState"], "running");
    // The control socket: 0600, handed to the daemon's user by the unit's
    // RuntimeDirectory= (docs/cli-json.md, jailwarden(8) say so).
    let sock = c.ok(&["stat", "-c", "%A %U", "/run/jailwarden/control.sock"]);
    assert_eq!(sock.trim(), "srw------- jailwarden", "the control socket");
    // The manual and the completions came with the package.
    let page = c.ok(&["env", "MANWIDTH=120", "man", "-P", "cat", "jailwarden"]);
    assert!(
        page.contains("jailwarden test-filter"),
        "man jailwarden: {page}"
    );
    let page = c.ok(&["env", "MANWIDTH=120", "man", "-P", "cat", "jailwarden.toml"]);
    assert!(page.contains("ignoreip"), "man jailwarden.toml: {page}");
    c.ok(&["man", "-w", "jailwarden-filter"]);
    for f in [
        "/usr/share/bash-completion/completions/jailwarden",
        "/usr/share/zsh/vendor-completions/_jailwarden",
        "/usr/share/fish/vendor_completions.d/jailwarden.fish",
    ] {
        c.ok(&["test", "-s", f]);
    }

    // The sandbox as it runs: user jailwarden, CAP_NET_ADMIN and nothing
    // else, systemd's own verdicts.
    let pid = p["MainPID"].clone();
    let status = c.ok(&["cat", &format!("/proc/{pid}/status")]);
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let uid = c.ok(&["id", "-u", "jailwarden"]);
    assert!(field("Uid:").starts_with(uid.trim()), "{status}");
    assert_eq!(field("CapEff:"), "0000000000001000", "CAP_NET_ADMIN only");
    assert_eq!(field("CapBnd:"), "0000000000001000", "CAP_NET_ADMIN only");
    let verify = c.run(&[
        "systemd-analyze",
        "verify",
        "jailwarden.service",
        "jailwarden.socket",
    ]);
    assert!(
        verify.status.success() && text(&verify).trim().is_empty(),
        "systemd-analyze verify: {}",
        text(&verify)
    );
    let security = c.ok(&[
        "systemd-analyze",
        "security",
        "--no-pager",
        "jailwarden.service",
    ]);
    let overall = security
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_default();
    eprintln!("nspawn: {overall}");
    let level: f64 = overall
        .split(": ")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    assert!(level <= 2.0, "{security}");

    // --- Failed ssh logins from the peer get it banned. ---
    step(started, "Failed ssh logins from the peer get it banned.");
    assert!(net.peer_connects_to_ssh());
    let mut clients: Vec<Child> = (0..4)
        .map(|i| net.failed_ssh_login(&format!("nosuchuser{i}")))
        .collect();
    for ch in &mut clients {
        wait_child(ch, Duration::from_secs(60)).expect("an ssh client hung");
    }
    let banned = wait_for("the ban in STATUS", || {
        let p = c.show("jailwarden.service");
        let s = p.get("StatusText").cloned().unwrap_or_default();
        if s.starts_with("1 jail, 1 banned") {
            Ok(p)
        } else {
            Err(s)
        }
    });
    let explained = c.journal(&["-x", "MESSAGE_ID=20f4993d915743ba897492a7b5b7ca50"]);
    assert!(
        explained.contains(&format!("[sshd] Ban {PEER_ADDR} for 10m after"))
            && explained.contains(&format!("Subject: Banned {PEER_ADDR} in jail sshd"))
            && explained.contains(&format!("jailwarden unban --jail sshd {PEER_ADDR}")),
        "journalctl -x shows the ban with the catalog text:\n{explained}"
    );
    let fields = c.journal(&[&format!("JAILWARDEN_ADDRESS={PEER_ADDR}"), "-o", "verbose"]);
    for f in [
        "JAILWARDEN_JAIL=sshd",
        "JAILWARDEN_BANTIME_USEC=600000000",
        "JAILWARDEN_FAILURES=",
        "_SYSTEMD_UNIT=jailwarden.service",
    ] {
        assert!(fields.contains(f), "{f} missing:\n{fields}");
    }
    let listed = c.ok(&["nft", "list", "table", "inet", "jailwarden"]);
    assert!(listed.contains(PEER_ADDR), "no element:\n{listed}");
    if release.version >= 13 {
        // OpenSSH 10 logs authentication from sshd-session: the shipped
        // filter's journal_match and prefregex catch it.
        let sessions = c.ok(&[
            "journalctl",
            "--no-pager",
            "-o",
            "cat",
            "_SYSTEMD_UNIT=ssh.service",
            "_COMM=sshd-session",
        ]);
        assert!(
            sessions.contains("nosuchuser"),
            "no sshd-session lines: {sessions}"
        );
    }
    assert!(
        !net.peer_connects_to_ssh(),
        "the banned peer still reaches port 22"
    );
    let bans = c.ok(&[
        "busctl",
        "call",
        "org.jailwarden1",
        "/org/jailwarden1",
        "org.jailwarden1.Manager",
        "ListBans",
        "s",
        "",
    ]);
    assert!(bans.contains(PEER_ADDR), "ListBans: {bans}");
    let cli = c.ok(&["jailwarden", "bans"]);
    assert!(cli.contains(PEER_ADDR), "jailwarden bans: {cli}");
    c.ok(&["pkaction", "--action-id", "org.jailwarden1.manage"]);
    // A user polkit lets manage: the daemon, itself not root, must be
    // allowed to ask polkit about other users (the action's owner
    // annotation names user jailwarden). Others stay refused.
    let ban_as_nobody = |c: &Container| {
        c.run(&[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "busctl",
            "call",
            "org.jailwarden1",
            "/org/jailwarden1",
            "org.jailwarden1.Manager",
            "Ban",
            "sst",
            "sshd",
            "198.51.100.9",
            "0",
        ])
    };
    let refused = ban_as_nobody(&c);
    assert!(
        !refused.status.success() && text(&refused).contains("Access denied"),
        "an unprivileged Ban: {}",
        text(&refused)
    );
    let rule = c.host_path("/etc/polkit-1/rules.d/50-jailwarden-test.rules");
    std::fs::write(
        &rule,
        "polkit.addRule(function(action, subject) {\n\
         \x20 if (action.id == \"org.jailwarden1.manage\" && subject.user == \"nobody\")\n\
         \x20   return polkit.Result.YES;\n});\n",
    )
    .expect("write a polkit rule into the container");
    wait_for("polkit to let nobody ban", || {
        let o = ban_as_nobody(&c);
        o.status.success().then_some(()).ok_or_else(|| text(&o))
    });
    let bans = c.ok(&["jailwarden", "bans"]);
    assert!(bans.contains("198.51.100.9"), "{bans}");
    c.ok(&["jailwarden", "unban", "--jail", "sshd", "198.51.100.9"]);
    std::fs::remove_file(&rule).expect("remove the polkit rule");
    wait_for("the 2nd ban lifted", || {
        let s = c.show("jailwarden.service")["StatusText"].clone();
        s.starts_with("1 jail, 1 banned").then_some(()).ok_or(s)
    });

    // --- Reload keeps the bans. ---
    step(started, "Reload keeps the bans.");
    let reloads = |c: &Container| {
        c.journal(&["MESSAGE_ID=8e3598b6af4a4d1d9d9e3544677111c2", "-o", "cat"])
            .lines()
            .count()
    };
    let before = reloads(&c);
    c.ok(&["systemctl", "reload", "jailwarden.service"]);
    wait_for("the reload event", || {
        (reloads(&c) > before)
            .then_some(())
            .ok_or_else(|| "none".into())
    });
    let p = c.wait_service_ready();
    assert_eq!(p["MainPID"], banned["MainPID"], "reload is not a restart");
    assert!(p["StatusText"].starts_with("1 jail, 1 banned"), "{p:?}");
    let t = net.table_json().expect("table after reload");
    assert!(t.contains(PEER_ADDR), "{t}");

    // --- Restart: the kernel set never loses the ban meanwhile. ---
    step(
        started,
        "Restart: the kernel set never loses the ban meanwhile.",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let ns = net.container.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push(table_json(&ns));
                std::thread::sleep(Duration::from_millis(20));
            }
            samples
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    c.restart_service();
    let p = c.wait_service_ready();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler");
    assert_ne!(p["MainPID"], banned["MainPID"], "restarted");
    assert!(
        p["StatusText"].starts_with("1 jail, 1 banned"),
        "bans restored from the state database: {p:?}"
    );
    assert!(samples.len() >= 10, "{} samples", samples.len());
    let lost = samples
        .iter()
        .filter(|s| !s.as_deref().is_some_and(|t| t.contains(PEER_ADDR)))
        .count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} samples lacked the ban",
        samples.len()
    );

    // --- Upgrade (the same package again): restarted, bans kept. ---
    step(
        started,
        "Upgrade (the same package again): restarted, bans kept.",
    );
    let old = c.show("jailwarden.service")["MainPID"].clone();
    c.ok(&["dpkg", "-i", &deb_inside]);
    wait_for("the restart by postinst", || {
        let p = c.show("jailwarden.service");
        if p["MainPID"] != old && p["MainPID"] != "0" {
            Ok(())
        } else {
            Err(format!("MainPID {}", p["MainPID"]))
        }
    });
    let p = c.wait_service_ready();
    assert!(p["StatusText"].starts_with("1 jail, 1 banned"), "{p:?}");

    // --- The socket starts the service on the first connection. ---
    step(
        started,
        "The socket starts the service on the first connection.",
    );
    c.ok(&["systemctl", "stop", "jailwarden.service"]);
    assert_eq!(c.show("jailwarden.service")["ActiveState"], "inactive");
    let socket_state = c.show("jailwarden.socket")["SubState"].clone();
    assert_eq!(
        socket_state,
        "listening",
        "the control socket after the service stopped:\n{}",
        String::from_utf8_lossy(
            &c.run(&[
                "sh",
                "-c",
                "systemctl status --no-pager jailwarden.socket jailwarden.service; \
                 journalctl --no-pager -u jailwarden.socket -u jailwarden.service -n 40",
            ])
            .stdout
        )
    );
    let sock = c.host_path("/run/jailwarden/control.sock");
    let conn =
        UnixStream::connect(&sock).unwrap_or_else(|e| panic!("connect {}: {e}", sock.display()));
    let p = c.wait_service_ready();
    assert!(p["StatusText"].starts_with("1 jail, 1 banned"), "{p:?}");
    drop(conn);
    // The CLI, through the socket.
    c.ok(&["systemctl", "stop", "jailwarden.service"]);
    let st = c.ok(&["jailwarden", "status"]);
    assert!(st.contains("sshd"), "jailwarden status: {st}");
    c.wait_service_ready();
    // Bus activation.
    c.ok(&["systemctl", "stop", "jailwarden.service"]);
    let jails = c.ok(&[
        "busctl",
        "--timeout=20",
        "call",
        "org.jailwarden1",
        "/org/jailwarden1",
        "org.jailwarden1.Manager",
        "ListJails",
    ]);
    assert!(jails.contains("\"sshd\""), "ListJails: {jails}");
    c.wait_service_ready();

    // --- A hung main loop is killed by the watchdog and restarted. ---
    step(
        started,
        "A hung main loop is killed by the watchdog and restarted.",
    );
    let dropin = "/run/systemd/system/jailwarden.service.d";
    c.ok(&["mkdir", "-p", dropin]);
    c.ok(&[
        "sh",
        "-c",
        &format!(
            "printf '[Service]\\nWatchdogSec=2s\\nTimeoutAbortSec=2s\\nRestartSec=500ms\\n' \
             > {dropin}/watchdog.conf"
        ),
    ]);
    c.ok(&["systemctl", "daemon-reload"]);
    // This test restarts the service more often than StartLimitBurst= allows.
    c.ok(&[
        "systemctl",
        "reset-failed",
        "jailwarden.service",
        "jailwarden.socket",
    ]);
    c.restart_service();
    let p = c.wait_service_ready();
    // Pings at 1 s keep a live daemon alive past several periods.
    std::thread::sleep(Duration::from_secs(5));
    let same = c.show("jailwarden.service");
    assert_eq!(
        (same["MainPID"].as_str(), same["NRestarts"].as_str()),
        (p["MainPID"].as_str(), "0"),
        "a healthy daemon was restarted"
    );
    c.ok(&["kill", "-STOP", &p["MainPID"]]);
    let p2 = wait_for("the watchdog restart", || {
        let q = c.show("jailwarden.service");
        if q["NRestarts"] != "0" && q["SubState"] == "running" && q["MainPID"] != p["MainPID"] {
            Ok(q)
        } else {
            Err(format!("{:?} {:?}", q["NRestarts"], q["SubState"]))
        }
    });
    assert!(p2["StatusText"].contains("1 banned"), "{p2:?}");
    let log = c.journal(&["-o", "cat"]);
    assert!(log.contains("Watchdog timeout"), "{log}");
    c.ok(&["rm", "-r", dropin]);
    c.ok(&["systemctl", "daemon-reload"]);
    // This test restarts the service more often than StartLimitBurst= allows.
    c.ok(&[
        "systemctl",
        "reset-failed",
        "jailwarden.service",
        "jailwarden.socket",
    ]);
    c.restart_service();
    c.wait_service_ready();

    // --- systemd >= 253: the notify-reload drop-in makes reload synchronous. ---
    if release.systemd >= 253 {
        step(
            started,
            "notify-reload: systemctl reload waits for the daemon.",
        );
        let dropins = "/etc/systemd/system/jailwarden.service.d";
        c.ok(&["mkdir", "-p", dropins]);
        c.ok(&[
            "cp",
            "/usr/share/doc/jailwarden/examples/notify-reload.conf.example",
            &format!("{dropins}/notify-reload.conf"),
        ]);
        c.ok(&["systemctl", "daemon-reload"]);
        // This test restarts the service more often than StartLimitBurst= allows.
        c.ok(&[
            "systemctl",
            "reset-failed",
            "jailwarden.service",
            "jailwarden.socket",
        ]);
        c.restart_service();
        let p = c.wait_service_ready();
        assert_eq!(p["Type"], "notify-reload", "{p:?}");
        assert!(
            p.get("ExecReload").is_none_or(|v| v.is_empty()),
            "the drop-in clears ExecReload=: {p:?}"
        );
        assert_eq!(
            p.get("ReloadSignal").map(String::as_str),
            Some("1"),
            "SIGHUP: {p:?}"
        );
        let before = reloads(&c);
        c.ok(&["systemctl", "reload", "jailwarden.service"]);
        // No waiting here: systemctl returned after the daemon's READY=1,
        // which follows its reload event (journald is only asked to have
        // written what it already received).
        c.ok(&["journalctl", "--sync"]);
        assert_eq!(
            reloads(&c),
            before + 1,
            "reload done when systemctl returns"
        );
        let p = c.show("jailwarden.service");
        assert_eq!(
            (p["ActiveState"].as_str(), p["SubState"].as_str()),
            ("active", "running")
        );
        c.ok(&["rm", "-r", dropins]);
        c.ok(&["systemctl", "daemon-reload"]);
        // This test restarts the service more often than StartLimitBurst= allows.
        c.ok(&[
            "systemctl",
            "reset-failed",
            "jailwarden.service",
            "jailwarden.socket",
        ]);
        c.restart_service();
        c.wait_service_ready();
    }

    // --- Stop: clean exit; bans stay in the kernel. ---
    step(started, "Stop: clean exit; bans stay in the kernel.");
    c.ok(&[
        "systemctl",
        "stop",
        "jailwarden.service",
        "jailwarden.socket",
    ]);
    let p = c.show("jailwarden.service");
    assert_eq!(
        (p["Result"].as_str(), p["ExecMainStatus"].as_str()),
        ("success", "0"),
        "{p:?}"
    );
    let t = net.table_json().expect("table after stop");
    assert!(t.contains(PEER_ADDR), "bans stay in force: {t}");

    // --- Purge: units, state and the table go; the mirror isn't needed. ---
    step(
        started,
        "Purge: units, state and the table go; the mirror isn't needed.",
    );
    c.ok(&["apt-get", "purge", "-y", "jailwarden"]);
    let units = c.run(&["systemctl", "cat", "jailwarden.service"]);
    assert!(!units.status.success(), "unit still there");
    let state = c.run(&["test", "-e", "/var/lib/jailwarden"]);
    assert!(
        !state.status.success(),
        "/var/lib/jailwarden survived purge"
    );
    assert!(net.table_json().is_none(), "table survived purge");

    // --- The README's other way: `make install` from the source tree. ---
    step(
        started,
        "The README's other way: `make install` from the source tree.",
    );
    let make = |target: &str, extra: &[&str]| {
        let mut a = vec![
            "make",
            "--no-print-directory",
            "-C",
            "/mnt/src",
            target,
            "NO_BUILD=1",
            "BIN=/mnt/bin/jailwarden",
        ];
        a.extend_from_slice(extra);
        c.ok(&a)
    };
    make("install", &[]);
    let p = c.wait_service_ready();
    assert_eq!(p["StatusText"], "1 jail, 0 banned, 0 lines/min");
    assert_eq!(c.show("jailwarden.socket")["SubState"], "running");
    let enabled = c.ok(&["systemctl", "is-enabled", "jailwarden.service"]);
    assert_eq!(enabled.trim(), "enabled");
    let catalog = c.ok(&["journalctl", "--list-catalog"]);
    assert!(
        catalog.contains("20f4993d915743ba897492a7b5b7ca50"),
        "{catalog}"
    );
    let jails = c.ok(&[
        "busctl",
        "call",
        "org.jailwarden1",
        "/org/jailwarden1",
        "org.jailwarden1.Manager",
        "ListJails",
    ]);
    assert!(jails.contains("\"sshd\""), "ListJails: {jails}");
    // --- Actions: commands work in the default sandbox; hosts.deny and mail with their drop-ins. ---
    step(
        started,
        "Actions: commands work in the default sandbox; hosts.deny and mail with their drop-ins.",
    );
    std::fs::write(
        c.host_path("/etc/jailwarden/jail.d/actions.toml"),
        "[[jails.sshd.action]]\n\
         type = \"command\"\n\
         name = \"log\"\n\
         ban = [\"logger\", \"-t\", \"jw-action\", \"ban {address} {jail}\"]\n\
         [[jails.sshd.action]]\n\
         type = \"hosts-deny\"\n\
         [[jails.sshd.action]]\n\
         type = \"mail\"\n\
         dest = [\"root@localhost\"]\n",
    )
    .expect("a jail.d file with actions");
    c.ok(&["jailwarden", "reload"]);
    c.ok(&["jailwarden", "ban", "sshd", "198.51.100.7"]);
    wait_for("the command action", || {
        let log = c.ok(&["journalctl", "--no-pager", "-o", "cat", "-t", "jw-action"]);
        log.contains("ban 198.51.100.7 sshd")
            .then_some(())
            .ok_or(log)
    });
    wait_for("hosts-deny refused by the sandbox", || {
        let log = c.journal(&["-o", "cat", "MESSAGE_ID=8cc0cf9c1332425cb093fdd88231951f"]);
        (log.contains("hosts-deny") && log.contains("Read-only file system"))
            .then_some(())
            .ok_or(log)
    });
    let dropins = "/etc/systemd/system/jailwarden.service.d";
    c.ok(&["mkdir", "-p", dropins]);
    for f in ["hosts-deny.conf", "mail.conf"] {
        c.ok(&[
            "cp",
            &format!("/usr/share/doc/jailwarden/examples/{f}.example"),
            &format!("{dropins}/{f}"),
        ]);
    }
    c.ok(&["systemctl", "daemon-reload"]);
    // This test restarts the service more often than StartLimitBurst= allows.
    c.ok(&[
        "systemctl",
        "reset-failed",
        "jailwarden.service",
        "jailwarden.socket",
    ]);
    c.restart_service();
    c.wait_service_ready();
    c.ok(&["jailwarden", "ban", "sshd", "198.51.100.8"]);
    wait_for("both bans in /etc/hosts.deny", || {
        let f = c.ok(&["cat", "/etc/hosts.deny"]);
        (f.contains("ALL: 198.51.100.7") && f.contains("ALL: 198.51.100.8"))
            .then_some(())
            .ok_or(f)
    });
    wait_for("the mail in root's mailbox", || {
        let m = c.run(&["cat", "/var/mail/root"]);
        let m = String::from_utf8_lossy(&m.stdout).into_owned();
        m.contains("sshd: banned 198.51.100.8")
            .then_some(())
            .ok_or(m)
    });
    // Actions removed by a reload: the hosts.deny block goes with them.
    c.ok(&["rm", "/etc/jailwarden/jail.d/actions.toml"]);
    c.ok(&["jailwarden", "reload"]);
    wait_for("the hosts.deny block removed", || {
        let f = c.ok(&["cat", "/etc/hosts.deny"]);
        (!f.contains("jailwarden")).then_some(()).ok_or(f)
    });
    c.ok(&["rm", "-r", dropins]);
    c.ok(&["systemctl", "daemon-reload"]);
    // This test restarts the service more often than StartLimitBurst= allows.
    c.ok(&[
        "systemctl",
        "reset-failed",
        "jailwarden.service",
        "jailwarden.socket",
    ]);
    c.restart_service();
    c.wait_service_ready();

    std::fs::write(
        c.host_path("/etc/jailwarden/jail.d/local.toml"),
        "[defaults]\nbantime = \"1h\"\n",
    )
    .expect("an admin's jail.d file");
    make("uninstall", &[]);
    assert_eq!(c.show("jailwarden.service")["LoadState"], "not-found");
    assert!(
        c.run(&["test", "-e", "/etc/jailwarden/jail.d/local.toml"])
            .status
            .success(),
        "uninstall kept the configuration"
    );
    make("uninstall", &["PURGE=1"]);
    for gone in [
        "/etc/jailwarden",
        "/var/lib/jailwarden",
        "/usr/bin/jailwarden",
    ] {
        assert!(
            !c.run(&["test", "-e", gone]).status.success(),
            "{gone} left"
        );
    }

    step(started, "done");
}
