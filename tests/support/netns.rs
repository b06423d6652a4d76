//! Running tests against the real kernel without touching the machine's
//! own network: every test body runs on a thread of its own that first
//! moves into a new network namespace (`unshare(CLONE_NEWNET)` is
//! per-thread). The namespace, with its nftables ruleset, goes away with
//! the thread. Programs the test starts (`nft`, `ip`) inherit it.
//! Peers for packet tests are named namespaces (`ip netns add`), removed
//! by a guard even when the test fails.

#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// Run `body` in a fresh network namespace, on its own thread; panics in
/// `body` fail the test.
pub fn in_netns<F: FnOnce() + Send + 'static>(body: F) {
    let t = std::thread::spawn(move || {
        // SAFETY: unshare(2) with CLONE_NEWNET only changes this thread's
        // network namespace; it takes no pointers.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {} (tests need root)",
            std::io::Error::last_os_error()
        );
        // Loopback up, so local traffic in the namespace works.
        run("ip", &["link", "set", "lo", "up"]);
        body();
    });
    if let Err(panic) = t.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Run a program, panic with its output when it fails.
pub fn run(prog: &str, args: &[&str]) -> String {
    let out = output(prog, args);
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn output(prog: &str, args: &[&str]) -> Output {
    Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"))
}

/// `nft -f -` with a script.
pub fn nft_script(script: &str) {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write");
    assert!(
        child.wait().expect("nft").success(),
        "nft -f failed:\n{script}"
    );
}

/// `nft -j list ...` parsed.
pub fn nft_json(args: &[&str]) -> Value {
    let mut a = vec!["-j", "list"];
    a.extend_from_slice(args);
    serde_json::from_str(&run("nft", &a)).expect("nft -j output")
}

/// An element as `nft -j` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Elem {
    /// `192.0.2.7` or `2001:db8::/64`.
    pub val: String,
    /// Seconds; `None` for elements without timeout.
    pub timeout: Option<u64>,
    pub expires: Option<u64>,
}

fn elem_val(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) if o.contains_key("prefix") => format!(
            "{}/{}",
            o["prefix"]["addr"].as_str().unwrap_or("?"),
            o["prefix"]["len"]
        ),
        Value::Object(o) if o.contains_key("range") => {
            format!("{}-{}", o["range"][0], o["range"][1])
        }
        other => other.to_string(),
    }
}

/// The elements of a set of `inet jailwarden`, sorted by value.
pub fn elements(set: &str) -> Vec<Elem> {
    let v = nft_json(&["set", "inet", "jailwarden", set]);
    let mut out = Vec::new();
    for item in v["nftables"].as_array().expect("nftables array") {
        let Some(elems) = item["set"]["elem"].as_array() else {
            continue;
        };
        for e in elems {
            match e.get("elem") {
                Some(inner) => out.push(Elem {
                    val: elem_val(&inner["val"]),
                    timeout: inner["timeout"].as_u64(),
                    expires: inner["expires"].as_u64(),
                }),
                None => out.push(Elem {
                    val: elem_val(e),
                    timeout: None,
                    expires: None,
                }),
            }
        }
    }
    out.sort_by(|a, b| a.val.cmp(&b.val));
    out
}

pub fn values(set: &str) -> Vec<String> {
    elements(set).into_iter().map(|e| e.val).collect()
}

static NS_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A named network namespace, deleted on drop.
pub struct NamedNetns(pub String);

impl NamedNetns {
    /// `jwtest-<pid>-<n>-<tag>`: unique among concurrent test runs.
    pub fn new(tag: &str) -> NamedNetns {
        let n = NS_COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("jwtest-{}-{n}-{tag}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = NamedNetns(name);
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn exec(&self, cmd: &[&str]) -> Output {
        let mut a = vec!["netns", "exec", self.0.as_str()];
        a.extend_from_slice(cmd);
        output("ip", &a)
    }

    pub fn exec_ok(&self, cmd: &[&str]) -> String {
        let out = self.exec(cmd);
        assert!(
            out.status.success(),
            "in {}: {cmd:?} failed: {}",
            self.0,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The elements of set `set` in table `inet jailwarden` here, with
    /// their kernel timeouts in seconds where they have one (empty if the
    /// set does not exist).
    pub fn set_elements(&self, set: &str) -> Vec<(String, Option<u64>)> {
        let out = self.exec(&["nft", "-j", "list", "set", "inet", "jailwarden", set]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["set"]["elem"].as_array().cloned())
            .flatten()
            .map(|e| match &e["elem"] {
                serde_json::Value::Object(m) => (
                    m["val"].as_str().unwrap_or("").to_string(),
                    m["timeout"].as_u64(),
                ),
                _ => (e.as_str().unwrap_or("").to_string(), None),
            })
            .collect()
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = output("ip", &["netns", "del", &self.0]);
    }
}
