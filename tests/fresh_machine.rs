//! The fresh-machine path: a bare Debian 12 (debootstrap minbase, plus
//! sudo) in systemd-nspawn, with this machine's Rust toolchain and the
//! checkout overlaid (writable, thrown away), runs what the README tells a
//! newcomer to run:
//!
//! 1. `.ci/run` without cargo: it says what to do, at once (exit 1);
//! 2. the build packages of `.ci/packages/build.txt` (and this suite's
//!    `native.txt`), installed the way `.ci/run` installs them;
//! 3. the crates that build C or link system libraries (SQLite's bundled
//!    C, rustables' bindgen through libclang, libsystemd through
//!    pkg-config) rebuilt there from scratch, with the README's test
//!    command on three offline suites: `sudo -E env "PATH=$PATH" cargo
//!    test --test cli_offline --test manual --test completions`;
//! 4. the README's install command on the binary built there
//!    (`make install NO_BUILD=1`; a release build from scratch does not fit
//!    the time budget): files in place, the user created, the
//!    "systemd is not PID 1" hint, `check-config`, `man jailwarden`,
//!    then `make start`: the daemon in the foreground, ready with the
//!    shipped sshd jail, until stopped;
//! 5. a root-only suite run as a user: skipped, said and counted.
//!
//! Crates other than those are reused from this checkout's target/ (the
//! same paths inside, so cargo's fingerprints match). Needs root,
//! debootstrap, systemd-container and the Debian mirror apt uses here.
//! The tree is cached in /var/tmp/jailwarden-fresh-root/, downloaded
//! packages in its apt-archives/.

#[path = "support/root.rs"]
mod root;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CACHE: &str = "/var/tmp/jailwarden-fresh-root";
const TREE: &str = "bookworm-minbase-sudo-v1";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Debian mirror apt uses here; no host name of our own.
fn mirror() -> String {
    if let Ok(m) = std::env::var("JAILWARDEN_NSPAWN_MIRROR") {
        return m;
    }
    let mut text = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            text.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        }
    }
    text.split_whitespace()
        .find(|w| {
            (w.starts_with("http://") || w.starts_with("https://"))
                && w.trim_end_matches('/').ends_with("/debian")
        })
        .map(str::to_string)
        .unwrap_or_else(|| {
            panic!("no Debian mirror in apt's sources; set JAILWARDEN_NSPAWN_MIRROR=<mirror URL>")
        })
}

fn tree() -> PathBuf {
    let base = Path::new(CACHE);
    std::fs::create_dir_all(base.join("apt-archives/partial")).expect("cache dir");
    let lock = File::create(base.join(".lock")).expect("lock file");
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("lock");
    let tree = base.join(TREE);
    if tree.is_dir() {
        return tree;
    }
    let tmp = base.join(format!("{TREE}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    let t = Instant::now();
    let o = Command::new("debootstrap")
        .args(["--variant=minbase", "--include=sudo", "bookworm"])
        .arg(&tmp)
        .arg(mirror())
        .stdin(Stdio::null())
        .output()
        .expect("debootstrap (package debootstrap)");
    assert!(
        o.status.success(),
        "debootstrap: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::rename(&tmp, &tree).expect("tree in place");
    eprintln!("fresh: debootstrap took {:?}", t.elapsed());
    tree
}

/// What runs inside: each step prints a marker the test checks.
const SCRIPT: &str = r#"
set -u
export DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cd "$REPO"
t0=$(date +%s)
mark() { echo "@@ $1 $(( $(date +%s) - t0 ))s"; }

mark "1 .ci/run without cargo"
bash .ci/run > /tmp/ci.out 2>&1; echo "@@ ci-run-exit $?"
cat /tmp/ci.out

mark "2 packages"
mapfile -t packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' .ci/packages/build.txt .ci/packages/native.txt | sort -u)
apt-get update -qq || exit 1
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${packages[@]}" >/dev/null || exit 1
for p in build-essential pkg-config libsystemd-dev libclang-dev; do dpkg -s "$p" >/dev/null || { echo "@@ missing $p"; exit 1; }; done

mark "3 build and test"
. "$CARGO_HOME/env"
# Only what depends on the system is built from scratch.
for c in libsqlite3-sys rusqlite rustables libsystemd-sys systemd jailwarden; do
  rm -rf "$TARGET"/debug/.fingerprint/"$c"-* "$TARGET"/debug/build/"$c"-*
done
sudo -E env "PATH=$PATH" cargo test --locked --test cli_offline --test manual --test completions > /tmp/test.out 2>&1
echo "@@ cargo-test-exit $?"
grep -E "^ *Compiling (libsqlite3-sys|rustables|libsystemd-sys) |^test result|^error|panicked" /tmp/test.out

mark "4 make install"
make --no-print-directory install NO_BUILD=1 BIN="$TARGET/debug/jailwarden" 2>&1
echo "@@ make-install-exit $?"
id jailwarden
/usr/bin/jailwarden check-config; echo "@@ check-config-exit $?"
MANWIDTH=100 man -P cat jailwarden | head -5
ls /usr/share/bash-completion/completions/jailwarden /usr/share/zsh/vendor-completions/_jailwarden /usr/share/fish/vendor_completions.d/jailwarden.fish
mark "4b make start"
# The README's first command ends in `start`: no systemd as PID 1 here, so
# the daemon runs in the foreground with the shipped config until stopped.
timeout -s INT 15 make --no-print-directory start > /tmp/start.out 2>&1; echo "@@ make-start-exit $?"
cat /tmp/start.out

mark "5 as a user"
sudo -E env "PATH=$PATH" cargo test --locked --test claims --no-run 2>&1 | tail -2
bin=$(ls -t "$TARGET"/debug/deps/claims-* | grep -v '\.d$' | head -1)
setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp "$bin" > /tmp/user.out 2>&1
echo "@@ as-user-exit $?"
grep -E "SKIPPED|^test result|panicked" /tmp/user.out
mark "done"
"#;

#[test]
fn the_readme_commands_on_a_bare_debian_12() {
    if root::skip_unless_root() {
        return;
    }
    let started = Instant::now();
    let tree = tree();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{home}/.cargo"));
    let rustup_home = std::env::var("RUSTUP_HOME").unwrap_or_else(|_| format!("{home}/.rustup"));
    assert!(
        Path::new(&cargo_home).join("env").exists(),
        "a rustup toolchain is needed ({cargo_home}/env)"
    );
    let target = Path::new(env!("CARGO_BIN_EXE_jailwarden"))
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let repo_dir = repo().display().to_string();
    let mut args: Vec<String> = vec![
        "-q".into(),
        format!("--directory={}", tree.display()),
        "--volatile=overlay".into(),
        "--register=no".into(),
        "--keep-unit".into(),
        "--console=pipe".into(),
        "--resolv-conf=copy-host".into(),
        format!("--bind={CACHE}/apt-archives:/var/cache/apt/archives"),
        format!("--overlay={repo_dir}::{repo_dir}"),
        format!("--overlay={cargo_home}::{cargo_home}"),
        format!("--bind-ro={rustup_home}"),
        format!("--setenv=REPO={repo_dir}"),
        format!("--setenv=CARGO_HOME={cargo_home}"),
        format!("--setenv=RUSTUP_HOME={rustup_home}"),
        format!("--setenv=TARGET={}", target.display()),
    ];
    if !target.starts_with(repo()) {
        let t = target.display().to_string();
        args.push(format!("--overlay={t}::{t}"));
    }
    // nspawn creates bind mount points, not overlay ones: empty dirs in
    // the tree (harmless to keep).
    for dir in [repo_dir.as_str(), cargo_home.as_str(), rustup_home.as_str()]
        .into_iter()
        .map(PathBuf::from)
        .chain(std::iter::once(target.clone()))
    {
        let inside = tree.join(dir.strip_prefix("/").unwrap_or(&dir));
        std::fs::create_dir_all(&inside).expect("mount point in the tree");
    }
    args.extend(["/bin/bash".into(), "-c".into(), SCRIPT.into()]);
    // /run is no tmpfs here: nspawn wants one over /run/systemd (TESTING.md 6).
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs tmpfs /run/systemd && exec systemd-nspawn \"$@\"")
        .arg("sh")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("systemd-nspawn (package systemd-container)");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("fresh: {:?} in all", started.elapsed());
    for l in out.lines().filter(|l| l.starts_with("@@ ")) {
        eprintln!("fresh: {l}");
    }
    let has = |s: &str| out.contains(s);
    assert!(has("@@ done"), "the script stopped early:\n{out}");
    // 1: no cargo, a clear message, before any package was installed.
    assert!(has("@@ ci-run-exit 1"), "{out}");
    assert!(
        has("cargo is missing. Install Rust's stable toolchain first") && has("rustup"),
        "{out}"
    );
    // 3: the C-built and system-linked crates built there, tests passed.
    assert!(has("@@ cargo-test-exit 0"), "{out}");
    for c in ["libsqlite3-sys", "rustables", "libsystemd-sys"] {
        assert!(
            has(&format!("Compiling {c} ")),
            "{c} was not rebuilt: {out}"
        );
    }
    assert!(!has("@@ missing "), "{out}");
    assert!(
        out.matches("test result: ok.").count() >= 3,
        "three suites passed:\n{out}"
    );
    // 4: installed, no systemd as PID 1 here: the hint to run it by hand.
    assert!(has("@@ make-install-exit 0"), "{out}");
    assert!(has("systemd is not running as PID 1 here"), "{out}");
    assert!(has("jailwarden daemon --foreground"), "{out}");
    // 4b: `make start` ran the daemon in the foreground, protecting sshd
    // with the shipped config, until the signal (timeout's exit code).
    assert!(has("starting in the foreground"), "{out}");
    assert!(has("ready: 1 jail"), "the daemon did not get ready: {out}");
    assert!(has("@@ make-start-exit 124"), "{out}");
    assert!(has("uid=") && has("(jailwarden)"), "user jailwarden: {out}");
    assert!(has("@@ check-config-exit 0"), "{out}");
    assert!(has("JAILWARDEN(8)"), "man jailwarden: {out}");
    // 5: a root-only suite as a user: skipped, said, counted; the rest ran.
    assert!(has("@@ as-user-exit 0"), "{out}");
    assert!(has("SKIPPED (needs root): "), "{out}");
    assert!(
        has("tests of tests/claims.rs SKIPPED: they need root"),
        "{out}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(600),
        "over budget: {:?}",
        started.elapsed()
    );
}
