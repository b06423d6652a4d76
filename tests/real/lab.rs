//! The suite's machinery: one private journald for all, and per service a
//! lab: a server and a client network namespace joined by a veth, a
//! private mount namespace (sandbox.sh) in which the real daemons, their
//! configuration and jailwarden itself run, processes stopped by PID.
//!
//! Addresses (documentation ranges only; the host's own network is never
//! touched): the server is 192.0.2.1 and 2001:db8::1; clients are
//! 192.0.2.N and 2001:db8::N for N in 2..=99, each tool given its source.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::process::Pid;
pub use rustix::process::Signal;

use crate::support::PrivateJournald;

/// The repository.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory of this suite's scripts.
pub fn here() -> PathBuf {
    repo().join("tests/real")
}

/// Where the package layers live (built by layers.sh; .ci/setup.d builds
/// them on CI, the suite on first use elsewhere).
pub const LAYERS: &str = "/var/cache/jailwarden-real";

/// Directories of the host a sandbox shows through overlays; /var last
/// (the layers live under /var/cache: an upper or lower directory must not
/// be reached through an overlay already mounted).
const OVERLAID: &[&str] = &["etc", "usr", "srv", "opt", "home", "root", "var"];

/// What all labs share.
pub struct Suite {
    tmp: Option<tempfile::TempDir>,
    pub dir: PathBuf,
    pub journald: PrivateJournald,
    /// `<cgroup2>/jwr<pid>.slice`: journald names `_SYSTEMD_UNIT` after
    /// the last path component, slices skipped, so a daemon in
    /// `.../jwr<pid>-sshd.slice/ssh.service` is logged as ssh.service.
    pub cgroup: PathBuf,
    pub tag: String,
    started: Instant,
    /// Groups whose /var layer has been linked under `dir` (see
    /// [`Suite::var_layer`]).
    var_layers: Mutex<Vec<String>>,
}

impl Suite {
    pub fn new() -> Suite {
        let tag = format!("jwr{}", std::process::id());
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{tag}-"))
            .tempdir()
            .expect("create the suite's directory");
        let dir = tmp.path().to_path_buf();
        // Daemons that drop privileges (www-data, bind, mysql...) read it.
        set_mode(&dir, 0o755);
        let cgroup = cgroup2_root().join(format!("{tag}.slice"));
        std::fs::create_dir_all(&cgroup).expect("create the suite's cgroup");
        let journald = PrivateJournald::started();
        Suite {
            tmp: Some(tmp),
            dir,
            journald,
            cgroup,
            tag,
            started: Instant::now(),
            var_layers: Mutex::new(Vec::new()),
        }
    }

    /// A group's /var layer as a lower directory: overlayfs refuses a
    /// lower layer inside another (the cache is under /var), so /var's
    /// layer is a hard-linked copy in the suite's directory (cheap; the
    /// whiteouts and opaque markers come along).
    pub fn var_layer(&self, group: &str) -> PathBuf {
        let dst = self.dir.join("layers").join(group).join("var");
        let mut done = self.var_layers.lock().unwrap();
        if !done.iter().any(|g| g == group) {
            std::fs::create_dir_all(dst.parent().expect("parent")).expect("layers dir");
            let out = run_limited(
                {
                    let mut c = Command::new("cp");
                    c.arg("-al")
                        .arg(Path::new(LAYERS).join(group).join("var"))
                        .arg(&dst);
                    c
                },
                Duration::from_secs(60),
            );
            ok_or_panic(&format!("link the {group} /var layer"), &out);
            done.push(group.to_string());
        }
        dst
    }

    /// Keep the suite's directory (JW_REAL_KEEP).
    pub fn keep_dir(&mut self) {
        if let Some(t) = self.tmp.take() {
            let _ = t.keep();
        }
    }

    /// Seconds since the suite started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Entries of the private journal, as `journalctl -o json` objects.
    pub fn journal_json(&self, matches: &[&str]) -> Vec<serde_json::Value> {
        let out = Command::new("journalctl")
            .arg("-D")
            .arg(self.journald.log_dir())
            .args(["--no-pager", "-o", "json"])
            .args(matches)
            .output()
            .expect("run journalctl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Entries as `journalctl -o short-iso` prints them (what a filter sees
    /// once the date is cut: `HOST IDENT[PID]: MESSAGE`).
    pub fn journal_text(&self, matches: &[&str]) -> String {
        let out = Command::new("journalctl")
            .arg("-D")
            .arg(self.journald.log_dir())
            .args(["--no-pager", "-q", "-o", "short-iso"])
            .args(matches)
            .output()
            .expect("run journalctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Suite {
    fn drop(&mut self) {
        remove_cgroup_tree(&self.cgroup);
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// cgroup2's mount: `/sys/fs/cgroup/unified` on hybrid hosts, else
/// `/sys/fs/cgroup`.
fn cgroup2_root() -> PathBuf {
    let hybrid = Path::new("/sys/fs/cgroup/unified");
    if hybrid.join("cgroup.procs").exists() {
        hybrid.to_path_buf()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// A process we started, stopped by its PID.
pub struct Proc {
    pub pid: u32,
    child: Option<Child>,
}

impl Proc {
    fn from_child(child: Child) -> Proc {
        Proc {
            pid: child.id(),
            child: Some(child),
        }
    }

    /// Still running (not exited, not a zombie)?
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => pid_alive(self.pid),
        }
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; reaps it.
    pub fn stop(&mut self, grace: Duration) {
        signal(self.pid, Signal::TERM);
        let deadline = Instant::now() + grace;
        while self.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if self.alive() {
            signal(self.pid, Signal::KILL);
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

fn signal(pid: u32, sig: Signal) {
    if let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => !matches!(
            stat.rsplit_once(") ").map(|(_, r)| r.as_bytes()[0]),
            Some(b'Z' | b'X')
        ),
    }
}

/// Run a command with a time limit; its output (killed if over time).
pub fn run_limited(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    // Read both pipes on threads so a chatty child cannot block.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if Instant::now() >= deadline {
            signal(child.id(), Signal::KILL);
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

fn ok_or_panic(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One service's lab.
pub struct Lab<'s> {
    pub suite: &'s Suite,
    pub name: String,
    pub dir: PathBuf,
    pub server_ns: String,
    pub client_ns: String,
    /// The veth ends: in the server and in the client namespace.
    pub server_dev: String,
    pub client_dev: String,
    /// The cgroup slice of this lab's daemons.
    slice: PathBuf,
    keeper: Mutex<Option<Proc>>,
    keeper_pid: u32,
    procs: Mutex<Vec<Proc>>,
}

/// Host addresses a lab gives its client namespace: 2..=LAST.
pub const LAST_CLIENT: u8 = 60;

impl<'s> Lab<'s> {
    /// Namespaces, addresses and the sandbox over the package layer
    /// `group` (`host`: the host's packages).
    pub fn new(suite: &'s Suite, index: usize, name: &str, group: &str) -> Lab<'s> {
        let dir = suite.dir.join(name);
        std::fs::create_dir_all(&dir).expect("lab dir");
        set_mode(&dir, 0o755);
        let server_ns = format!("{}-{index}s", suite.tag);
        let client_ns = format!("{}-{index}c", suite.tag);
        let ip = |args: &[&str]| {
            let out = run_limited(
                {
                    let mut c = Command::new("ip");
                    c.args(args);
                    c
                },
                Duration::from_secs(20),
            );
            ok_or_panic(&format!("ip {args:?}"), &out);
        };
        ip(&["netns", "add", &server_ns]);
        ip(&["netns", "add", &client_ns]);
        let (server_dev, client_dev) = (format!("jw{index}s"), format!("jw{index}c"));
        let slice = suite
            .cgroup
            .join(format!("{}-{name}.slice", suite.tag.replace('-', "_")));
        std::fs::create_dir_all(&slice).expect("lab cgroup");
        let mut lab = Lab {
            suite,
            name: name.to_string(),
            dir,
            server_ns,
            client_ns,
            server_dev,
            client_dev,
            slice,
            keeper: Mutex::new(None),
            keeper_pid: 0,
            procs: Mutex::new(Vec::new()),
        };
        let (vs, vc) = (lab.server_dev.clone(), lab.client_dev.clone());
        ip(&[
            "link",
            "add",
            &vs,
            "netns",
            &lab.server_ns,
            "type",
            "veth",
            "peer",
            "name",
            &vc,
            "netns",
            &lab.client_ns,
        ]);
        let s = lab.server_ns.clone();
        let c = lab.client_ns.clone();
        ip(&["-n", &s, "addr", "add", "192.0.2.1/24", "dev", &vs]);
        ip(&[
            "-n",
            &s,
            "addr",
            "add",
            "2001:db8::1/64",
            "dev",
            &vs,
            "nodad",
        ]);
        // Many addresses at once: one `ip -batch`.
        let mut batch = String::new();
        for n in 2..=LAST_CLIENT {
            let _ = writeln!(batch, "addr add 192.0.2.{n}/24 dev {vc}");
            let _ = writeln!(batch, "addr add 2001:db8::{n}/64 dev {vc} nodad");
        }
        let path = lab.dir.join("client-addrs.batch");
        std::fs::write(&path, batch).expect("write batch");
        ip(&["-n", &c, "-batch", &path.display().to_string()]);
        for (ns, dev) in [(&s, &vs), (&c, &vc)] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        lab.start_keeper(group);
        lab
    }

    /// The sandbox: a process that holds the private mount namespace
    /// (sleeping, bounded) for the others to enter.
    fn start_keeper(&mut self, group: &str) {
        let layer = Path::new(LAYERS).join(group);
        let up = self.dir.join("up");
        let work = self.dir.join("ovl-work");
        let mut args: Vec<String> = vec![
            "--work".into(),
            self.dir.join("sandbox").display().to_string(),
            // The private journald's files and sockets, as journald's own
            // mount namespace (entered below) has them.
            "--keep".into(),
            "/var/log/journal".into(),
            "--keep".into(),
            "/run/systemd/journal".into(),
        ];
        for d in OVERLAID {
            let lower = layer.join(d);
            let has_layer = std::fs::read_dir(&lower).is_ok_and(|mut r| r.next().is_some());
            let lower = match (has_layer, *d) {
                (false, _) => "-".into(),
                (true, "var") => self.suite.var_layer(group).display().to_string(),
                (true, _) => lower.display().to_string(),
            };
            if *d == "usr" {
                if has_layer {
                    args.extend(["--overlay".into(), format!("/{d}"), lower]);
                }
                continue;
            }
            let (u, w) = (up.join(d), work.join(d));
            std::fs::create_dir_all(&u).expect("upper");
            std::fs::create_dir_all(&w).expect("workdir");
            args.extend([
                "--overlay-rw".into(),
                format!("/{d}"),
                lower,
                u.display().to_string(),
                w.display().to_string(),
            ]);
        }
        args.extend(["--tmpfs".into(), "/run".into(), "--dev".into()]);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.server_ns, "nsenter", "-t"])
            .arg(self.suite.journald.pid().to_string())
            .arg("-m")
            .arg(here().join("sandbox.sh"))
            .args(&args)
            .args(["--", "sleep", "1800"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("sandbox.err")).expect("sandbox.err"));
        let child = cmd.spawn().expect("start the sandbox");
        let keeper = Proc::from_child(child);
        self.keeper_pid = keeper.pid;
        *self.keeper.lock().unwrap() = Some(keeper);
        // Ready when its /run is the tmpfs (the last mounts before exec).
        let pid = self.keeper_pid;
        let ok = crate::support::wait_until(Duration::from_secs(20), || {
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with("sleep\0"))
        });
        assert!(
            ok,
            "{}: the sandbox did not come up: {}",
            self.name,
            std::fs::read_to_string(self.dir.join("sandbox.err")).unwrap_or_default()
        );
        // A tmpfs /run starts empty: what a boot's tmpfiles would make.
        self.sh_ok("mkdir -p /run/lock /run/sshd && chmod 1777 /run/lock");
    }

    /// The PID holding the sandbox (`nsenter -t PID -m -n` enters it).
    pub fn keeper_pid(&self) -> u32 {
        self.keeper_pid
    }

    /// `nsenter` into the sandbox (mount and server network namespaces);
    /// in the cgroup of `unit` when given.
    pub fn command(&self, unit: Option<&str>, argv: &[&str]) -> Command {
        let mut cmd = Command::new("sh");
        let cg = unit.map(|u| {
            let d = self.slice.join(u);
            std::fs::create_dir_all(&d).expect("unit cgroup");
            d
        });
        cmd.arg("-c")
            .arg(r#"[ -z "$1" ] || echo $$ > "$1/cgroup.procs"; shift; exec "$@""#)
            .arg("sh")
            .arg(cg.map(|d| d.display().to_string()).unwrap_or_default())
            .args([
                "nsenter",
                "-t",
                &self.keeper_pid.to_string(),
                "-m",
                "-n",
                "--",
            ])
            .args(argv)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("LANG", "C.UTF-8")
            .env("HOME", "/root")
            .current_dir("/");
        cmd
    }

    /// A shell script in the sandbox (as root, in the server namespace).
    pub fn sh(&self, script: &str) -> Output {
        run_limited(
            self.command(None, &["sh", "-ec", script]),
            Duration::from_secs(120),
        )
    }

    /// [`sh`](Self::sh), panicking with its output on failure.
    pub fn sh_ok(&self, script: &str) -> String {
        ok_or_panic(&format!("{}: {script}", self.name), &self.sh(script))
    }

    /// Start a daemon in the sandbox (in `unit`'s cgroup), its stdout and
    /// stderr to `<lab>/<name>.out`. Returns its PID.
    pub fn spawn(&self, name: &str, unit: Option<&str>, argv: &[&str]) -> u32 {
        let out = std::fs::File::create(self.dir.join(format!("{name}.out"))).expect("out file");
        let err = out.try_clone().expect("dup");
        let child = self
            .command(unit, argv)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let p = Proc::from_child(child);
        let pid = p.pid;
        self.procs.lock().unwrap().push(p);
        pid
    }

    /// Stop a daemon that forked, by the PID it wrote to `pidfile` (a path
    /// in the sandbox).
    pub fn stop_pidfile(&self, pidfile: &str) {
        let out = self.sh(&format!("cat {pidfile} 2>/dev/null || true"));
        for pid in String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            // Only a process inside our server namespace is ours.
            if self.ns_pids(&self.server_ns).contains(&pid) {
                let mut p = Proc { pid, child: None };
                p.stop(Duration::from_secs(10));
            }
        }
    }

    /// Processes in the server namespace whose command line is `cmdline`
    /// (arguments joined by spaces).
    pub fn server_pids(&self, cmdline: &str) -> Vec<u32> {
        self.ns_pids(&self.server_ns)
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    let args: Vec<String> = c
                        .split(|b| *b == 0)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect();
                    args.join(" ") == cmdline
                })
            })
            .collect()
    }

    /// Send `sig` to processes of the server namespace (ours).
    pub fn signal_server(&self, pids: &[u32], sig: Signal) {
        let inside = self.ns_pids(&self.server_ns);
        for pid in pids.iter().filter(|p| inside.contains(p)) {
            signal(*pid, sig);
        }
    }

    fn ns_pids(&self, ns: &str) -> Vec<u32> {
        let out = run_limited(
            {
                let mut c = Command::new("ip");
                c.args(["netns", "pids", ns]);
                c
            },
            Duration::from_secs(10),
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Wait until something listens on `port` (`tcp` or `udp`) in the
    /// server namespace; a probe connection would be logged like a client,
    /// so look at the sockets instead.
    pub fn wait_listen(&self, proto: &str, port: u16, limit: Duration) {
        let flag = if proto == "udp" { "-lun" } else { "-ltn" };
        let filter = format!("sport = :{port}");
        let ok = crate::support::wait_until(limit, || {
            let out = run_limited(
                {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", &self.server_ns, "ss", "-H", flag, &filter]);
                    c
                },
                Duration::from_secs(10),
            );
            !String::from_utf8_lossy(&out.stdout).trim().is_empty()
        });
        if !ok {
            let mut outs = String::new();
            for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "out") {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(10).collect();
                    outs.push_str(&format!(
                        "\n--- {} ---\n{}",
                        p.display(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    ));
                }
            }
            panic!(
                "{}: nothing listens on {proto}/{port} after {} s{outs}",
                self.name,
                limit.as_secs()
            );
        }
    }

    /// A client command in the client namespace, bounded by `limit`.
    pub fn client(&self, argv: &[&str], limit: Duration) -> Output {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.client_ns, "timeout", "-s", "KILL"])
            .arg(format!("{}", limit.as_secs().max(1)))
            .args(argv)
            .env("LANG", "C.UTF-8");
        run_limited(c, limit + Duration::from_secs(5))
    }

    /// Does a TCP connection from `src` to the server's `port` open?
    pub fn tcp_connects(&self, src: &str, port: u16) -> bool {
        let dst = server_for(src);
        self.client(
            &["nc", "-s", src, "-w", "2", "-z", dst, &port.to_string()],
            Duration::from_secs(5),
        )
        .status
        .success()
    }

    /// A file the sandbox wrote, read from the host (its overlay upper).
    pub fn file(&self, path_in_sandbox: &str) -> Option<Vec<u8>> {
        let rel = path_in_sandbox.trim_start_matches('/');
        std::fs::read(self.dir.join("up").join(rel)).ok()
    }
}

/// The server address of a client's family.
pub fn server_for(src: &str) -> &'static str {
    if src.contains(':') {
        "2001:db8::1"
    } else {
        "192.0.2.1"
    }
}

impl Drop for Lab<'_> {
    fn drop(&mut self) {
        let mut procs = std::mem::take(&mut *self.procs.lock().unwrap_or_else(|e| e.into_inner()));
        for p in procs.iter_mut().rev() {
            p.stop(Duration::from_secs(10));
        }
        // What the daemons left (sessions, workers, forked children): every
        // process in our namespaces is one we started.
        for ns in [self.client_ns.clone(), self.server_ns.clone()] {
            for sig in [Signal::TERM, Signal::KILL] {
                let pids = self.ns_pids(&ns);
                if pids.is_empty() {
                    break;
                }
                for pid in pids {
                    signal(pid, sig);
                }
                let deadline = Instant::now() + Duration::from_secs(5);
                while !self.ns_pids(&ns).is_empty() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        if let Some(mut k) = self.keeper.lock().unwrap_or_else(|e| e.into_inner()).take() {
            k.stop(Duration::from_secs(5));
        }
        for ns in [&self.client_ns, &self.server_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        remove_cgroup_tree(&self.slice);
    }
}
