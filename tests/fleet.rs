//! The fleet (`[fleet]`, issue 18) against a real redis-server: three
//! daemons, each in its own network namespace with its own nftables table
//! and state directory, one redis-server in a namespace of its own,
//! reached over a shared unix socket path, with one ACL user per host.
//!
//! Needs root (namespaces, nftables), `redis-server` and `redis-tools`
//! (.ci/packages/fleet.txt), journald (support).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::daemon::Daemon;
use support::{NamedNetns, PrivateJournald, wait_until};

/// MESSAGE_ID of a remote ban applied (src/events.rs).
const REMOTE_BAN_ID: &str = "5d0c3e1f8a2b4c6d9e7f1a3b5c7d9e0f";

/// The ACL a fleet needs (README, "Fleet"): each host reads every
/// jailwarden key and writes only its own three.
fn acl_line(host: &str, password: &str) -> String {
    format!(
        "user {host} on >{password} resetkeys %R~jailwarden:* %W~jailwarden:bans:{host} \
         %W~jailwarden:active:{host} %W~jailwarden:member:{host} resetchannels -@all \
         +@connection +xadd +xread +xrange +xrevrange +zadd +zrem +zrange \
         +zremrangebyscore +hset +hget +del +multi +exec +scan"
    )
}

/// A redis-server in its own network namespace, listening on a unix
/// socket only, without persistence (a restart loses everything).
struct Redis {
    ns: NamedNetns,
    dir: PathBuf,
    child: Option<Child>,
    /// redis-server's TLS options, when it also listens with TLS.
    tls: Vec<String>,
}

impl Redis {
    fn start(dir: &Path, hosts: &[&str]) -> Redis {
        let mut acl = String::from("user default on nopass ~* &* +@all\n");
        for h in hosts {
            acl.push_str(&acl_line(h, &format!("pw-{h}")));
            acl.push('\n');
        }
        std::fs::write(dir.join("users.acl"), acl).unwrap();
        let mut r = Redis {
            ns: NamedNetns::new("redis"),
            dir: dir.to_path_buf(),
            child: None,
            tls: Vec::new(),
        };
        r.spawn();
        r
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns.0, "redis-server"])
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args([
                "--unixsocketperm",
                "777",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(&self.tls)
            .arg("--aclfile")
            .arg(self.dir.join("users.acl"))
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        self.child = Some(child);
        assert!(
            wait_until(Duration::from_secs(10), || self.cli(&["PING"]).trim()
                == "PONG"),
            "redis-server did not start"
        );
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// redis-cli as the default (admin) user.
    fn cli(&self, args: &[&str]) -> String {
        self.cli_as(None, args)
    }

    fn cli_as(&self, user: Option<(&str, &str)>, args: &[&str]) -> String {
        let mut c = Command::new("redis-cli");
        c.arg("-s").arg(self.socket());
        if let Some((u, p)) = user {
            c.args(["--user", u, "--pass", p, "--no-auth-warning"]);
        }
        let out = c.args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One fleet host: a daemon in its namespace, with an address of its own.
struct Host {
    name: String,
    ns: NamedNetns,
    daemon: Daemon,
}

fn config(name: &str, redis: &Redis, pwfile: &Path, ignore: &str, quorum: u32) -> String {
    format!(
        r#"
[daemon]
backend = "nftables"
journal_directory = "{{journal}}"
filter_dirs = ["{{filters}}"]
[jails.sshd]
journal_match = ["_UID=0", "SYSLOG_IDENTIFIER=sshd"]
bantime = "10m"
ignoreip = [{ignore}]
[fleet]
url = "redis+unix://{sock}?user={name}"
password_file = "{pw}"
host = "{name}"
quorum = {quorum}
max_bantime = "1h"
"#,
        sock = redis.socket().display(),
        pw = pwfile.display(),
    )
}

impl Host {
    fn start(
        j: &PrivateJournald,
        redis: &Redis,
        dir: &Path,
        name: &str,
        addr: &str,
        ignore: &str,
    ) -> Host {
        let ns = NamedNetns::new(name);
        ns.exec_ok(&["ip", "addr", "add", &format!("{addr}/32"), "dev", "lo"]);
        let pw = dir.join(format!("{name}.password"));
        std::fs::write(&pw, format!("pw-{name}\n")).unwrap();
        let daemon = Daemon::start_in(j, &config(name, redis, &pw, ignore, 1), Some(&ns.0));
        Host {
            name: name.to_string(),
            ns,
            daemon,
        }
    }

    fn socket(&self) -> PathBuf {
        self.daemon.dir.path().join("control.sock")
    }

    /// `jailwarden ARGS --socket ...`; stdout, asserting success.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_jailwarden"))
            .args(args)
            .arg("--socket")
            .arg(self.socket())
            .output()
            .expect("jailwarden");
        assert!(
            out.status.success(),
            "{}: jailwarden {args:?}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn ban(&self, addr: &str) {
        self.cli(&["ban", "sshd", addr]);
    }

    fn fleet(&self) -> serde_json::Value {
        serde_json::from_str(&self.cli(&["fleet", "status", "--json"])).expect("fleet status JSON")
    }

    fn peer(&self, name: &str) -> serde_json::Value {
        self.fleet()["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_default()
    }

    /// Elements of a set of this host's table: (value, timeout seconds).
    fn set(&self, set: &str) -> Vec<(String, Option<u64>)> {
        self.ns.set_elements(set)
    }

    fn has(&self, set: &str, addr: &str) -> bool {
        self.set(set).iter().any(|(v, _)| v == addr)
    }

    /// Wait until `addr` is (or is not) in the fleet set; how long it took.
    fn wait_remote(&self, addr: &str, present: bool) -> Duration {
        let t0 = Instant::now();
        assert!(
            wait_until(Duration::from_secs(10), || self.has("fleet-inet", addr)
                == present),
            "{}: {addr} {} fleet-inet: {:?}\nlog: {:#?}",
            self.name,
            if present { "never reached" } else { "still in" },
            self.set("fleet-inet"),
            self.daemon.log()
        );
        t0.elapsed()
    }

    /// This daemon's remote ban events (the journal is shared).
    fn remote_bans_logged(&self) -> Vec<String> {
        self.daemon
            .journal_fields(&[
                &format!("MESSAGE_ID={REMOTE_BAN_ID}"),
                &format!("_PID={}", self.daemon.pid()),
            ])
            .lines()
            .filter_map(|l| l.trim().strip_prefix("MESSAGE=").map(str::to_string))
            .collect()
    }

    fn remote_ban_messages(&self, addr: &str) -> usize {
        self.remote_bans_logged()
            .iter()
            .filter(|m| m.contains(&format!(" Ban {addr} ")))
            .count()
    }
}

/// Wait until every host follows every other.
fn wait_peers(hosts: &[&Host]) {
    for h in hosts {
        for o in hosts {
            if h.name != o.name {
                assert!(
                    wait_until(Duration::from_secs(10), || h.peer(&o.name)["name"]
                        == o.name.as_str()),
                    "{} never saw {}: {}",
                    h.name,
                    o.name,
                    h.fleet()
                );
            }
        }
    }
}

#[test]
fn bans_spread_across_the_fleet_with_policy_and_survive_redis_restarts() {
    support::needs_root!();
    let tmp = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(tmp.path(), &["a", "b", "c"]);
    let j = PrivateJournald::started();
    let a = Host::start(&j, &redis, tmp.path(), "a", "198.51.100.1", "");
    let c = Host::start(&j, &redis, tmp.path(), "c", "198.51.100.3", "");
    wait_peers(&[&a, &c]);

    // A ban on A reaches C's kernel, in the fleet set, with A's end.
    a.ban("192.0.2.10");
    assert!(a.has("sshd-v4", "192.0.2.10"));
    let took = c.wait_remote("192.0.2.10", true);
    eprintln!("propagation A -> C: {took:?}");
    let (_, timeout) = c
        .set("fleet-inet")
        .into_iter()
        .find(|(v, _)| v == "192.0.2.10")
        .unwrap();
    assert!(
        timeout.is_some_and(|t| (590..=600).contains(&t)),
        "{timeout:?}"
    );
    assert!(
        c.set("sshd-v4").is_empty(),
        "remote bans stay out of the jails' sets"
    );
    assert_eq!(c.remote_ban_messages("192.0.2.10"), 1);
    assert!(
        c.remote_bans_logged()
            .iter()
            .any(|m| m.starts_with("[fleet:a] Ban 192.0.2.10 for ")),
        "{:?}",
        c.remote_bans_logged()
    );
    // `bans` on C shows it with its origin.
    let bans: serde_json::Value = serde_json::from_str(&c.cli(&["bans", "--json"])).unwrap();
    assert_eq!(bans["remote_bans"][0]["origin"], "a", "{bans}");
    assert_eq!(bans["remote_bans"][0]["address"], "192.0.2.10", "{bans}");

    // Unban propagates.
    a.ban("192.0.2.11");
    c.wait_remote("192.0.2.11", true);
    a.cli(&["unban", "192.0.2.10"]);
    c.wait_remote("192.0.2.10", false);

    // B starts late, ignoring 203.0.113.0/24: it catches up with what is
    // in force (192.0.2.11), not what was lifted (192.0.2.10).
    let b = Host::start(
        &j,
        &redis,
        tmp.path(),
        "b",
        "198.51.100.2",
        "\"203.0.113.0/24\"",
    );
    wait_peers(&[&a, &b, &c]);
    b.wait_remote("192.0.2.11", true);
    assert!(!b.has("fleet-inet", "192.0.2.10"));

    // Policy on B: its ignoreip, and fleet members' addresses, are refused.
    a.ban("203.0.113.5");
    a.ban("198.51.100.3"); // C's own address
    a.ban("192.0.2.13");
    b.wait_remote("192.0.2.13", true);
    c.wait_remote("203.0.113.5", true);
    assert!(!b.has("fleet-inet", "203.0.113.5"), "B's ignoreip banned");
    assert!(
        !b.has("fleet-inet", "198.51.100.3"),
        "a fleet member banned"
    );
    assert!(!c.has("fleet-inet", "198.51.100.3"), "C banned itself");
    assert!(b.peer("a")["refused"].as_u64() >= Some(2), "{}", b.fleet());

    // No echo: B and C published nothing but their resync markers.
    for h in ["b", "c"] {
        let entries = redis.cli(&["XRANGE", &format!("jailwarden:bans:{h}"), "-", "+"]);
        assert!(
            !entries.contains("\nban\n") && !entries.contains("192.0.2."),
            "{h}: {entries}"
        );
    }

    // ACL: A may write its own keys, not B's; it reads everyone's.
    let as_a = Some(("a", "pw-a"));
    let denied = redis.cli_as(as_a, &["ZADD", "jailwarden:active:b", "1", "x"]);
    assert!(denied.contains("NOPERM"), "{denied}");
    let denied = redis.cli_as(as_a, &["XADD", "jailwarden:bans:b", "*", "type", "ban"]);
    assert!(denied.contains("NOPERM"), "{denied}");
    let read = redis.cli_as(as_a, &["ZRANGE", "jailwarden:active:a", "0", "-1"]);
    assert!(read.contains("192.0.2.11|sshd"), "{read}");

    // Redis killed: local bans go on; after its restart (empty: no
    // persistence) the fleet converges again, nothing applied twice.
    redis.kill();
    a.ban("192.0.2.12");
    assert!(
        a.has("sshd-v4", "192.0.2.12"),
        "a local ban waited for Redis"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(!a.fleet()["connected"].as_bool().unwrap_or(true));
    redis.spawn();
    for h in [&b, &c] {
        h.wait_remote("192.0.2.12", true);
        h.wait_remote("192.0.2.11", true);
    }
    a.ban("192.0.2.14");
    c.wait_remote("192.0.2.14", true);
    for addr in ["192.0.2.11", "192.0.2.12", "192.0.2.14"] {
        assert_eq!(
            c.remote_ban_messages(addr),
            1,
            "{addr} logged again on C: {:#?}",
            c.remote_bans_logged()
        );
    }

    // C restarted: its remote bans stay in the kernel and the store; it
    // reads A's stream on from the position it stored, exactly: what it
    // missed is applied once, what it had is not applied again.
    let mut c = c;
    c.daemon.term();
    a.ban("192.0.2.15");
    c.daemon.spawn();
    assert!(
        c.has("fleet-inet", "192.0.2.11"),
        "{:?}",
        c.set("fleet-inet")
    );
    c.wait_remote("192.0.2.15", true);
    std::thread::sleep(Duration::from_millis(300));
    let logged = c.remote_bans_logged();
    assert_eq!(logged.len(), 1, "{logged:#?}");
    assert!(
        logged[0].starts_with("[fleet:a] Ban 192.0.2.15 "),
        "{logged:#?}"
    );

    // Quorum 2 on C: one origin is not enough, two are.
    let pw = tmp.path().join("c.password");
    c.daemon.write_config(&config("c", &redis, &pw, "", 2));
    c.daemon.reload();
    c.wait_remote("192.0.2.14", false);
    a.ban("192.0.2.20");
    b.wait_remote("192.0.2.20", true);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !c.has("fleet-inet", "192.0.2.20"),
        "one origin met quorum 2"
    );
    b.ban("192.0.2.20");
    c.wait_remote("192.0.2.20", true);
}

/// RemoteUnbanned signals of a daemon, collected over its control socket
/// from when this returns: (origin, jail, address, reason).
type Signals = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String, String)>>>;

fn remote_unbanned_signals(socket: &Path) -> Signals {
    let seen: Signals = Default::default();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (socket, out) = (socket.to_path_buf(), seen.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async move {
            let stream = std::os::unix::net::UnixStream::connect(&socket).expect("control socket");
            let conn = zbus::connection::Builder::unix_stream(stream)
                .p2p()
                .build()
                .await
                .expect("p2p connection");
            let rule = zbus::MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .interface("org.jailwarden1.Manager")
                .member("RemoteUnbanned")
                .build()
                .expect("match rule");
            let mut signals = zbus::MessageStream::for_match_rule(rule, &conn, None)
                .await
                .expect("subscribe");
            // A call answered: the daemon serves this connection.
            let _: Vec<(String, u64, u64, u64, u64, u64, u32)> = conn
                .call_method(
                    None::<&str>,
                    "/org/jailwarden1",
                    Some("org.jailwarden1.Manager"),
                    "FleetPeers",
                    &(),
                )
                .await
                .expect("FleetPeers")
                .body()
                .deserialize()
                .expect("FleetPeers reply");
            let _ = ready_tx.send(());
            while let Some(Ok(msg)) =
                std::future::poll_fn(|cx| std::pin::Pin::new(&mut signals).poll_next(cx)).await
            {
                if let Ok(args) = msg.body().deserialize::<(String, String, String, String)>() {
                    out.lock().unwrap().push(args);
                }
            }
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("signal subscription");
    seen
}

use zbus::export::futures_core::Stream;

fn wait_signal(seen: &Signals, want: (&str, &str, &str, &str)) {
    assert!(
        wait_until(Duration::from_secs(10), || seen.lock().unwrap().iter().any(
            |(o, j, a, r)| (o.as_str(), j.as_str(), a.as_str(), r.as_str()) == want
        )),
        "no RemoteUnbanned {want:?}: {:?}",
        seen.lock().unwrap()
    );
}

impl Host {
    /// `jailwarden ARGS --socket ...`: (exit code, stdout, stderr).
    fn cli_status(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_jailwarden"))
            .args(args)
            .arg("--socket")
            .arg(self.socket())
            .output()
            .expect("jailwarden");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The remote bans held, as `bans --json` lists them: (origin, address).
    fn remote_held(&self) -> Vec<(String, String)> {
        let bans: serde_json::Value =
            serde_json::from_str(&self.cli(&["bans", "--json"])).expect("bans JSON");
        let mut v: Vec<(String, String)> = bans["remote_bans"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| {
                (
                    b["origin"].as_str().unwrap_or_default().to_string(),
                    b["address"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn fleet_set(&self) -> Vec<String> {
        let mut v: Vec<String> = self.set("fleet-inet").into_iter().map(|(v, _)| v).collect();
        v.sort();
        v
    }
}

#[test]
fn unban_origin_lifts_only_that_origins_remote_bans_and_remote_unbans_are_signalled() {
    support::needs_root!();
    let tmp = tempfile::tempdir().unwrap();
    let redis = Redis::start(tmp.path(), &["a", "b", "c"]);
    let j = PrivateJournald::started();
    let mut a = Host::start(&j, &redis, tmp.path(), "a", "198.51.100.1", "");
    let b = Host::start(&j, &redis, tmp.path(), "b", "198.51.100.2", "");
    let c = Host::start(&j, &redis, tmp.path(), "c", "198.51.100.3", "");
    wait_peers(&[&a, &b, &c]);
    let signals = remote_unbanned_signals(&c.socket());

    // C bans .40 itself; A bans .40, .41, .43; B bans .41, .42.
    c.ban("192.0.2.40");
    for addr in ["192.0.2.40", "192.0.2.41", "192.0.2.43"] {
        a.ban(addr);
    }
    for addr in ["192.0.2.41", "192.0.2.42"] {
        b.ban(addr);
    }
    for addr in ["192.0.2.40", "192.0.2.41", "192.0.2.42", "192.0.2.43"] {
        c.wait_remote(addr, true);
    }
    assert!(
        wait_until(Duration::from_secs(10), || c.remote_held().len() == 5),
        "{:?}",
        c.remote_held()
    );

    // A peer's unban: signalled with its origin.
    a.cli(&["unban", "192.0.2.43"]);
    c.wait_remote("192.0.2.43", false);
    wait_signal(&signals, ("a", "sshd", "192.0.2.43", "unban"));

    // unban --origin A ADDR: A's remote ban of .40 ends; C's own stays.
    let out = c.cli(&["unban", "--origin", "a", "192.0.2.40"]);
    assert!(out.contains("unbanned 192.0.2.40"), "{out}");
    c.wait_remote("192.0.2.40", false);
    assert!(c.has("sshd-v4", "192.0.2.40"), "the local ban went too");
    wait_signal(&signals, ("a", "sshd", "192.0.2.40", "manual"));
    // Not held from A (B's only): NotBanned, exit status 1, nothing lifted.
    let (code, _, err) = c.cli_status(&["unban", "--origin", "a", "192.0.2.42"]);
    assert_eq!(code, 1, "{err}");
    assert!(c.has("fleet-inet", "192.0.2.42"));

    // unban --origin A --all: .41 stays in the set, B still bans it.
    let out = c.cli(&["unban", "--origin", "a", "--all"]);
    assert_eq!(out, "lifted 1 remote ban of a\n");
    wait_signal(&signals, ("a", "sshd", "192.0.2.41", "manual"));
    assert_eq!(c.fleet_set(), ["192.0.2.41", "192.0.2.42"]);
    let b_only = [
        ("b".to_string(), "192.0.2.41".to_string()),
        ("b".to_string(), "192.0.2.42".to_string()),
    ];
    assert_eq!(c.remote_held(), b_only);
    assert_eq!(c.set("sshd-v4").len(), 1, "{:?}", c.set("sshd-v4"));

    // A restarts: it rewrites its active set (still .40, .41) and tells
    // the peers to read it again; what C lifted by hand stays lifted.
    a.daemon.term();
    a.daemon.spawn();
    a.ban("192.0.2.44");
    c.wait_remote("192.0.2.44", true);
    std::thread::sleep(Duration::from_millis(300));
    let held = c.remote_held();
    assert!(
        !held.iter().any(|(o, a)| o == "a" && a != "192.0.2.44"),
        "a resync brought back what was lifted: {held:?}"
    );
    assert!(!c.has("fleet-inet", "192.0.2.40"));
    // A new decision of A applies again.
    a.cli(&["ban", "sshd", "192.0.2.40", "--for", "20m"]);
    c.wait_remote("192.0.2.40", true);

    // A short remote ban: its expiry is signalled.
    a.cli(&["ban", "sshd", "192.0.2.45", "--for", "2s"]);
    c.wait_remote("192.0.2.45", true);
    c.wait_remote("192.0.2.45", false);
    wait_signal(&signals, ("a", "sshd", "192.0.2.45", "expired"));

    // unban --fleet --all: every remote ban, never a local one.
    let out = c.cli(&["unban", "--fleet", "--all"]);
    assert!(out.starts_with("lifted "), "{out}");
    assert!(c.fleet_set().is_empty(), "{:?}", c.fleet_set());
    assert!(c.remote_held().is_empty(), "{:?}", c.remote_held());
    assert!(c.has("sshd-v4", "192.0.2.40"), "a local ban was lifted");
    let out = c.cli(&["unban", "--fleet", "--all"]);
    assert_eq!(out, "no remote bans of every fleet host\n");
    // The others' sets are theirs: nothing changed on B.
    assert!(b.has("fleet-inet", "192.0.2.40"));
    assert!(b.has("sshd-v4", "192.0.2.42"));
}

/// `openssl ARGS` in `dir`, asserting success.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME.pem`, `NAME.key`) made with openssl in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=jailwarden test {name}"),
        ],
    );
}

#[test]
fn rediss_links_over_tls_checked_against_ca_file() {
    support::needs_root!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A CA, and a certificate for 127.0.0.1 it signed; another CA.
    make_ca(dir, "ca");
    make_ca(dir, "other");
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    // redis-server: TLS on 127.0.0.1:6380 of its namespace (no plain TCP),
    // and its unix socket.
    let mut redis = Redis::start(dir, &["a", "c"]);
    redis.kill();
    let path = |f: &str| dir.join(f).display().to_string();
    redis.tls = vec![
        "--tls-port".into(),
        "6380".into(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--tls-cert-file".into(),
        path("server.pem"),
        "--tls-key-file".into(),
        path("server.key"),
        "--tls-ca-cert-file".into(),
        path("ca.pem"),
        "--tls-auth-clients".into(),
        "no".into(),
    ];
    redis.spawn();
    let j = PrivateJournald::started();
    // A shares redis's namespace and speaks TLS to it; C uses the socket.
    let tls_config = |ca: &str| {
        format!(
            r#"
[daemon]
backend = "nftables"
journal_directory = "{{journal}}"
filter_dirs = ["{{filters}}"]
[jails.sshd]
journal_match = ["_UID=0", "SYSLOG_IDENTIFIER=sshd"]
bantime = "10m"
[fleet]
url = "rediss://a@127.0.0.1:6380"
ca_file = "{ca}"
password_file = "{pw}"
host = "a"
"#,
            ca = path(ca),
            pw = path("a.password"),
        )
    };
    std::fs::write(dir.join("a.password"), "pw-a\n").unwrap();
    let ns = NamedNetns(redis.ns.0.clone());
    ns.exec_ok(&["ip", "addr", "add", "198.51.100.1/32", "dev", "lo"]);
    let mut a = Host {
        name: "a".into(),
        daemon: Daemon::start_in(&j, &tls_config("ca.pem"), Some(&ns.0)),
        ns,
    };
    let c = Host::start(&j, &redis, dir, "c", "198.51.100.3", "");
    wait_peers(&[&a, &c]);
    assert_eq!(a.fleet()["connected"], true, "{}", a.fleet());
    a.ban("192.0.2.60");
    c.wait_remote("192.0.2.60", true);
    c.ban("192.0.2.61");
    a.wait_remote("192.0.2.61", true);

    // A server certificate of another CA: refused, said why.
    a.daemon.term();
    a.daemon.write_config(&tls_config("other.pem"));
    a.daemon.spawn();
    assert!(
        wait_until(Duration::from_secs(10), || a.fleet()["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())),
        "{}",
        a.fleet()
    );
    let f = a.fleet();
    assert_eq!(f["connected"], false, "{f}");
    let e = f["last_error"].as_str().unwrap_or_default().to_lowercase();
    eprintln!("wrong CA: {e}");
    assert!(e.contains("certificate") || e.contains("issuer"), "{f}");
}

/// A redis-server (or Sentinel) in `ns`, on 127.0.0.1:`port` there, stopped
/// by PID on drop.
struct Server(Child);

impl Server {
    fn start(ns: &NamedNetns, args: &[String]) -> Server {
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0, "redis-server"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `redis-cli -p PORT ARGS` in `ns` (127.0.0.1).
fn cli_port(ns: &NamedNetns, port: u16, args: &[&str]) -> String {
    let port = port.to_string();
    let mut cmd = vec!["redis-cli", "-h", "127.0.0.1", "-p", &port];
    cmd.extend_from_slice(args);
    let out = ns.exec(&cmd);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sentinels_name_the_master_and_the_links_follow_a_failover() {
    support::needs_root!();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // redis's namespace (and A's), and C's, linked by a veth pair made in
    // them: 10.99.0.1 (redis, A) and 10.99.0.2 (C).
    let mut redis = Redis::start(dir, &["a", "c"]); // the ACL file, the namespace
    redis.kill();
    let rns = NamedNetns(redis.ns.0.clone());
    let cns = NamedNetns::new("c");
    let tag = std::process::id() % 100_000;
    let (vr, vc) = (format!("jw{tag}r"), format!("jw{tag}c"));
    support::netns::run(
        "ip",
        &[
            "link", "add", &vc, "netns", &cns.0, "type", "veth", "peer", "name", &vr, "netns",
            &rns.0,
        ],
    );
    rns.exec_ok(&["ip", "addr", "add", "10.99.0.1/30", "dev", &vr]);
    rns.exec_ok(&["ip", "link", "set", &vr, "up"]);
    cns.exec_ok(&["ip", "addr", "add", "10.99.0.2/30", "dev", &vc]);
    cns.exec_ok(&["ip", "link", "set", &vc, "up"]);
    // With Sentinels the client checks the master's ROLE: +role too.
    let acl = std::fs::read_to_string(dir.join("users.acl")).unwrap();
    let acl: String = acl
        .lines()
        .map(|l| {
            if l.starts_with("user default") {
                format!("{l}\n")
            } else {
                format!("{l} +role\n")
            }
        })
        .collect();
    std::fs::write(dir.join("users.acl"), acl).unwrap();
    // The master (6390), a replica (6391), one Sentinel (26379) watching
    // them as "fleetmaster".
    let server = |port: u16, extra: &[&str]| {
        let d = dir.join(format!("r{port}"));
        std::fs::create_dir_all(&d).unwrap();
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "10.99.0.1",
            "127.0.0.1",
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync",
            "yes",
            "--aclfile",
            &dir.join("users.acl").display().to_string(),
            "--dir",
            &d.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        Server::start(&rns, &args)
    };
    let _master = server(6390, &[]);
    let _replica = server(6391, &["--replicaof", "10.99.0.1", "6390"]);
    assert!(
        wait_until(Duration::from_secs(10), || cli_port(
            &rns,
            6391,
            &["INFO", "replication"]
        )
        .contains("master_link_status:up")),
        "the replica never synced"
    );
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        "port 26379\nbind 10.99.0.1 127.0.0.1\nprotected-mode no\n\
         sentinel monitor fleetmaster 10.99.0.1 6390 1\n\
         sentinel down-after-milliseconds fleetmaster 1000\nsentinel failover-timeout fleetmaster 10000\n",
    )
    .unwrap();
    let _sentinel = Server::start(
        &rns,
        &[conf.display().to_string(), "--sentinel".to_string()],
    );
    assert!(
        wait_until(Duration::from_secs(10), || cli_port(
            &rns,
            26379,
            &["SENTINEL", "replicas", "fleetmaster"]
        )
        .contains("6391")),
        "the Sentinel never saw the replica"
    );

    // A and C ask the Sentinel where the master is.
    let j = PrivateJournald::started();
    let host = |name: &str, ns: NamedNetns, addr: &str| {
        let pw = dir.join(format!("{name}.password"));
        std::fs::write(&pw, format!("pw-{name}\n")).unwrap();
        ns.exec_ok(&["ip", "addr", "add", &format!("{addr}/32"), "dev", "lo"]);
        let config = format!(
            r#"
[daemon]
backend = "nftables"
journal_directory = "{{journal}}"
filter_dirs = ["{{filters}}"]
[jails.sshd]
journal_match = ["_UID=0", "SYSLOG_IDENTIFIER=sshd"]
bantime = "10m"
[fleet]
url = "redis://{name}@fleetmaster"
sentinels = ["redis://10.99.0.1:26379"]
password_file = "{pw}"
host = "{name}"
"#,
            pw = pw.display(),
        );
        Host {
            name: name.into(),
            daemon: Daemon::start_in(&j, &config, Some(&ns.0)),
            ns,
        }
    };
    let a = host("a", rns, "198.51.100.1");
    let c = host("c", cns, "198.51.100.3");
    wait_peers(&[&a, &c]);
    a.ban("192.0.2.70");
    c.wait_remote("192.0.2.70", true);

    // Failover: the replica becomes the master, the old master its
    // replica. The links' writes fail there (READONLY) or their
    // connections drop; they ask the Sentinel again and go on with the
    // new master.
    let out = cli_port(&a.ns, 26379, &["SENTINEL", "FAILOVER", "fleetmaster"]);
    assert!(out.contains("OK"), "{out}");
    assert!(
        wait_until(Duration::from_secs(20), || cli_port(&a.ns, 6391, &["ROLE"])
            .starts_with("master")),
        "no failover"
    );
    assert!(
        wait_until(Duration::from_secs(20), || cli_port(&a.ns, 6390, &["ROLE"])
            .starts_with("slave")),
        "the old master is still one"
    );
    let t0 = Instant::now();
    a.ban("192.0.2.71");
    c.ban("192.0.2.72");
    c.wait_remote("192.0.2.71", true);
    a.wait_remote("192.0.2.72", true);
    eprintln!("bans across the failover after {:?}", t0.elapsed());
    let active = cli_port(&a.ns, 6391, &["ZRANGE", "jailwarden:active:a", "0", "-1"]);
    assert!(
        active.contains("192.0.2.71"),
        "not on the new master: {active}"
    );
    assert!(c.has("fleet-inet", "192.0.2.70"));
    for h in [&a, &c] {
        assert_eq!(h.fleet()["connected"], true, "{}", h.fleet());
    }
}
