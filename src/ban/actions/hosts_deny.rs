//! `type = "hosts-deny"`: a jail's bans as tcp_wrappers rules in
//! `/etc/hosts.deny` (for services linked with libwrap, or reading the file
//! themselves).
//!
//! # What we own in the file
//!
//! tcp_wrappers has no end-of-line comments (`ALL: 192.0.2.7 # x` would make
//! `#` and `x` client patterns), so our lines cannot carry a marker of their
//! own. Each jail gets one marked block instead:
//!
//! ```text
//! # BEGIN jailwarden sshd (managed by jailwarden; edits inside are lost)
//! ALL: 192.0.2.7
//! ALL: [2001:db8::1]
//! ALL: [2001:db8:1::]/64
//! # END jailwarden sshd
//! ```
//!
//! Everything between a jail's BEGIN and END lines is ours and is rewritten
//! to hold exactly the jail's bans; every other line of the file is kept
//! byte for byte. A BEGIN without its END (a damaged block) owns only the
//! rule-shaped lines right after it; a stray END of ours is dropped. With no
//! bans the block disappears. IPv6 is written as tcp_wrappers wants it,
//! `[addr]` and `[net]/len`; IPv4 networks as `net/mask`.
//!
//! # How the file is changed
//!
//! Under an exclusive `flock` on a sibling lock file (`hosts.deny.jailwarden-lock`:
//! the file itself is replaced, so a lock on it would not be seen by the next
//! writer), the file is read, our block rebuilt, and written to a temporary
//! file in the same directory with the original's mode and owner, fsynced and
//! renamed over the original (then the directory fsynced). Readers see the
//! old or the new file, never half of one; two jails (or two daemons) writing
//! the same file never lose each other's lines. Nothing is written when the
//! block is already right, so re-applying is free.
//!
//! The worker keeps the jail's wanted set and applies it whenever it
//! changes (bursts coalesce into one write), and again after a backoff when
//! a write failed: the file converges to the bans in force.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Context, HostsDenyConfig};

/// Default file.
pub const DEFAULT_PATH: &str = "/etc/hosts.deny";
/// Default daemon list: every service.
pub const DEFAULT_DAEMON: &str = "ALL";
/// How long to wait for another writer's lock before reporting.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

const BEGIN: &str = "# BEGIN jailwarden ";
const END: &str = "# END jailwarden ";

/// Is `daemon` a daemon list we can write (`ALL`, `sshd`, `sshd, vsftpd`,
/// `sshd@192.0.2.1`)? No `:` (the field separator), `#`, or line breaks.
pub fn valid_daemon_list(daemon: &str) -> bool {
    !daemon.trim().is_empty()
        && daemon.len() <= 200
        && daemon
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " ,._-@[]/".contains(c))
}

/// One rule: `DAEMON: CLIENT` in tcp_wrappers' syntax.
pub fn rule(daemon: &str, net: IpNet) -> String {
    let net = net.trunc();
    let client = match net {
        IpNet::V4(n) if n.prefix_len() == 32 => n.addr().to_string(),
        IpNet::V4(n) => format!("{}/{}", n.network(), n.netmask()),
        IpNet::V6(n) if n.prefix_len() == 128 => format!("[{}]", n.addr()),
        IpNet::V6(n) => format!("[{}]/{}", n.network(), n.prefix_len()),
    };
    format!("{}: {client}", daemon.trim())
}

fn marker_jail<'l>(line: &'l str, prefix: &str) -> Option<&'l str> {
    line.trim_end()
        .strip_prefix(prefix)
        .and_then(|rest| rest.split_whitespace().next())
}

/// Shaped like a rule we write: `DAEMONS: CLIENT`, one client, no comment.
fn rule_shaped(line: &str) -> bool {
    let l = line.trim_end();
    if l.is_empty() || l.contains('#') {
        return false;
    }
    l.split_once(": ").is_some_and(|(daemons, client)| {
        !daemons.trim().is_empty() && !client.trim().is_empty() && !client.trim().contains(' ')
    })
}

/// The file's text with `jail`'s block holding exactly `rules` (pure: the
/// editing logic, tested without files). Other lines are kept as they are.
pub fn edit(text: &str, jail: &str, rules: &[String]) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut ours = vec![false; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        if marker_jail(lines[i], BEGIN) == Some(jail) {
            let end = (i + 1..lines.len()).find(|&j| {
                marker_jail(lines[j], END) == Some(jail)
                    || marker_jail(lines[j], BEGIN) == Some(jail)
            });
            match end {
                Some(j) if marker_jail(lines[j], END) == Some(jail) => {
                    ours[i..=j].iter_mut().for_each(|o| *o = true);
                    i = j + 1;
                }
                _ => {
                    // Damaged: BEGIN without END. Claim only rule lines.
                    ours[i] = true;
                    i += 1;
                    while i < lines.len()
                        && rule_shaped(lines[i])
                        && marker_jail(lines[i], BEGIN).is_none()
                    {
                        ours[i] = true;
                        i += 1;
                    }
                }
            }
        } else {
            if marker_jail(lines[i], END) == Some(jail) {
                ours[i] = true; // stray END
            }
            i += 1;
        }
    }
    let block = if rules.is_empty() {
        String::new()
    } else {
        let mut b = format!("{BEGIN}{jail} (managed by jailwarden; edits inside are lost)\n");
        for r in rules {
            b.push_str(r);
            b.push('\n');
        }
        b.push_str(&format!("{END}{jail}\n"));
        b
    };
    let mut out = String::with_capacity(text.len() + block.len());
    let mut placed = false;
    for (line, mine) in lines.iter().zip(&ours) {
        if *mine {
            if !placed {
                push_block(&mut out, &block);
                placed = true;
            }
        } else {
            out.push_str(line);
        }
    }
    if !placed {
        push_block(&mut out, &block);
    }
    out
}

fn push_block(out: &mut String, block: &str) {
    if block.is_empty() {
        return;
    }
    // tcp_wrappers ignores a last line without its newline: a foreign line
    // before our block gets the newline it lacked, nothing else changes.
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(block);
}

/// Why the file could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum HostsDenyError {
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is locked by another writer (waited {}s)", LOCK_TIMEOUT.as_secs())]
    Busy { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The lock file next to `path`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".jailwarden-lock");
    path.with_file_name(name)
}

/// Make `jail`'s block of the file at `path` hold a rule for each of
/// `nets`. Returns whether the file was rewritten. Blocking: run it off the
/// async thread.
pub fn apply(
    path: &Path,
    jail: &str,
    daemon: &str,
    nets: &BTreeSet<IpNet>,
) -> Result<bool, HostsDenyError> {
    // Edit the file a symlink points to, not the link.
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let lock_at = lock_path(&path);
    let _lock = lock(&lock_at)?;
    let read_err = |source| HostsDenyError::Read {
        path: path.clone(),
        source,
    };
    let (old, meta) = match File::open(&path) {
        Ok(mut f) => {
            let meta = f.metadata().map_err(read_err)?;
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).map_err(read_err)?;
            (String::from_utf8_lossy(&bytes).into_owned(), Some(meta))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => (String::new(), None),
        Err(e) => return Err(read_err(e)),
    };
    let rules: Vec<String> = nets.iter().map(|n| rule(daemon, *n)).collect();
    let new = edit(&old, jail, &rules);
    if new == old {
        return Ok(false);
    }
    write_atomically(&path, new.as_bytes(), meta.as_ref()).map_err(|source| {
        HostsDenyError::Write {
            path: path.clone(),
            source,
        }
    })?;
    Ok(true)
}

/// An exclusive flock on `lock_at`, waiting up to [`LOCK_TIMEOUT`] (never
/// forever: a stuck writer elsewhere is reported, and retried later).
fn lock(lock_at: &Path) -> Result<File, HostsDenyError> {
    let err = |source| HostsDenyError::Lock {
        path: lock_at.to_path_buf(),
        source,
    };
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_at)
        .map_err(err)?;
    let deadline = std::time::Instant::now() + LOCK_TIMEOUT;
    loop {
        match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(f),
            Err(rustix::io::Errno::WOULDBLOCK) | Err(rustix::io::Errno::INTR) => {
                if std::time::Instant::now() >= deadline {
                    return Err(HostsDenyError::Busy {
                        path: lock_at.to_path_buf(),
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(err(e.into())),
        }
    }
}

fn write_atomically(path: &Path, data: &[u8], meta: Option<&fs::Metadata>) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.jailwarden-{}.tmp", std::process::id()));
    let result = (|| {
        let mode = meta.map_or(0o644, |m| m.permissions().mode() & 0o7777);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        if let Some(m) = meta {
            // Keep the owner (root:root normally); as non-root this fails
            // harmlessly when the owner is someone else.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
        }
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// What the worker is asked to make true.
#[derive(Debug, Default)]
struct Wanted {
    nets: BTreeSet<IpNet>,
    /// Bumped at every change; the worker applies when it differs from
    /// what it last wrote.
    version: u64,
    /// No more changes will come: apply once more and exit.
    closing: bool,
}

/// One jail's hosts-deny action at run time.
pub struct Worker {
    wanted: Arc<Mutex<Wanted>>,
    wake: Arc<Notify>,
    finished: CancellationToken,
}

impl Worker {
    /// Start the worker: after `after` (the action it replaces) finished,
    /// sync the file to `active`, then follow the changes.
    pub fn spawn(
        ctx: Context,
        cfg: HostsDenyConfig,
        active: impl IntoIterator<Item = IpNet>,
        after: Vec<CancellationToken>,
    ) -> Worker {
        let wanted = Arc::new(Mutex::new(Wanted {
            nets: active.into_iter().map(|n| n.trunc()).collect(),
            version: 1,
            closing: false,
        }));
        let wake = Arc::new(Notify::new());
        let finished = CancellationToken::new();
        let task = run(ctx, cfg, wanted.clone(), wake.clone(), after);
        let guard = finished.clone().drop_guard();
        tokio::spawn(async move {
            let _guard = guard;
            task.await;
        });
        Worker {
            wanted,
            wake,
            finished,
        }
    }

    fn change(&self, f: impl FnOnce(&mut Wanted)) {
        // A std Mutex: held for a set insert, never across an await.
        let mut w = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut w);
        w.version += 1;
        drop(w);
        self.wake.notify_one();
    }

    /// A ban took effect.
    pub fn ban(&self, net: IpNet) {
        self.change(|w| {
            w.nets.insert(net.trunc());
        });
    }

    /// A ban ended.
    pub fn unban(&self, net: IpNet) {
        self.change(|w| {
            w.nets.remove(&net.trunc());
        });
    }

    /// Stop after writing what is pending. `retire`: the action is gone
    /// from the configuration, so its block is removed; otherwise (the
    /// daemon stops) the rules stay, as bans stay in force.
    pub fn close(self, retire: bool) -> CancellationToken {
        self.change(|w| {
            if retire {
                w.nets.clear();
            }
            w.closing = true;
        });
        self.finished
    }
}

async fn run(
    ctx: Context,
    cfg: HostsDenyConfig,
    wanted: Arc<Mutex<Wanted>>,
    wake: Arc<Notify>,
    after: Vec<CancellationToken>,
) {
    for t in after {
        t.cancelled().await;
    }
    let mut written = 0u64;
    let mut backoff = Duration::from_secs(5);
    loop {
        let (nets, version, closing) = {
            let w = wanted.lock().unwrap_or_else(|e| e.into_inner());
            (w.nets.clone(), w.version, w.closing)
        };
        if version != written {
            let (path, daemon, jail) = (cfg.path.clone(), cfg.daemon.clone(), ctx.jail.clone());
            let result =
                tokio::task::spawn_blocking(move || apply(&path, &jail, &daemon, &nets)).await;
            match result {
                Ok(Ok(changed)) => {
                    written = version;
                    backoff = Duration::from_secs(5);
                    if changed {
                        tracing::debug!(jail = %ctx.jail, action = %ctx.label, "{} updated", cfg.path.display());
                    }
                }
                Ok(Err(e)) => {
                    if closing {
                        ctx.failed(None, &format!("{e}; giving up (the daemon stops)"));
                        return;
                    }
                    ctx.failed(
                        None,
                        &format!(
                            "{e}; retrying in {}",
                            crate::config::duration::format_duration(backoff)
                        ),
                    );
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = wake.notified() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(300));
                    continue;
                }
                Err(e) => {
                    ctx.failed(None, &format!("the file editor panicked: {e}"));
                    return;
                }
            }
            continue;
        }
        if closing {
            return;
        }
        wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> BTreeSet<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn rules(list: &[&str]) -> Vec<String> {
        nets(list).into_iter().map(|n| rule("ALL", n)).collect()
    }

    const ADMIN: &str = "# /etc/hosts.deny: admin's own rules\nsshd: 198.51.100.1\n\nALL: .evil.example EXCEPT good.example\n";

    #[test]
    fn rules_use_tcp_wrappers_syntax() {
        let r = |s: &str| rule("ALL", s.parse().unwrap());
        assert_eq!(r("192.0.2.7/32"), "ALL: 192.0.2.7");
        assert_eq!(r("192.0.2.0/24"), "ALL: 192.0.2.0/255.255.255.0");
        assert_eq!(r("2001:db8::1/128"), "ALL: [2001:db8::1]");
        assert_eq!(r("2001:db8:1:2::9/64"), "ALL: [2001:db8:1:2::]/64");
        assert_eq!(
            rule(" sshd, vsftpd ", "192.0.2.7/32".parse().unwrap()),
            "sshd, vsftpd: 192.0.2.7"
        );
        assert!(valid_daemon_list("sshd, vsftpd"));
        assert!(valid_daemon_list("sshd@192.0.2.1"));
        for bad in ["", " ", "ALL: 1.2.3.4", "ALL #x", "a\nb"] {
            assert!(!valid_daemon_list(bad), "{bad:?}");
        }
    }

    #[test]
    fn only_our_block_changes_and_it_is_idempotent() {
        let one = edit(ADMIN, "sshd", &rules(&["192.0.2.7/32", "2001:db8::1/128"]));
        assert_eq!(
            one,
            format!(
                "{ADMIN}# BEGIN jailwarden sshd (managed by jailwarden; edits inside are lost)\nALL: 192.0.2.7\nALL: [2001:db8::1]\n# END jailwarden sshd\n"
            )
        );
        assert_eq!(
            edit(&one, "sshd", &rules(&["192.0.2.7/32", "2001:db8::1/128"])),
            one
        );
        // Another jail's block sits next to ours, untouched by our edits.
        let two = edit(&one, "dovecot", &rules(&["203.0.113.5/32"]));
        assert!(two.starts_with(&one));
        let three = edit(&two, "sshd", &rules(&["2001:db8::1/128"]));
        assert_eq!(
            three,
            format!(
                "{ADMIN}# BEGIN jailwarden sshd (managed by jailwarden; edits inside are lost)\nALL: [2001:db8::1]\n# END jailwarden sshd\n# BEGIN jailwarden dovecot (managed by jailwarden; edits inside are lost)\nALL: 203.0.113.5\n# END jailwarden dovecot\n"
            )
        );
        // Nothing banned: the block goes, the admin's lines stay as they were.
        let four = edit(&edit(&three, "sshd", &[]), "dovecot", &[]);
        assert_eq!(four, ADMIN);
    }

    #[test]
    fn a_jail_whose_name_prefixes_another_is_not_confused() {
        let a = edit("", "ssh", &rules(&["192.0.2.1/32"]));
        let b = edit(&a, "sshd", &rules(&["192.0.2.2/32"]));
        let c = edit(&b, "ssh", &[]);
        assert_eq!(c, edit("", "sshd", &rules(&["192.0.2.2/32"])));
    }

    #[test]
    fn a_missing_final_newline_is_added_before_our_block_only() {
        let out = edit("sshd: 198.51.100.1", "sshd", &rules(&["192.0.2.7/32"]));
        assert!(out.starts_with("sshd: 198.51.100.1\n# BEGIN jailwarden sshd"));
        assert_eq!(
            edit("sshd: 198.51.100.1", "sshd", &[]),
            "sshd: 198.51.100.1"
        );
    }

    #[test]
    fn damaged_blocks_claim_only_rule_lines_and_stray_ends_go() {
        // BEGIN without END: our rule lines after it are ours, the admin's
        // comment and rule after that are not.
        let damaged = "a: 1.1.1.1\n# BEGIN jailwarden sshd\nALL: 192.0.2.9\nALL: [2001:db8::9]\n# admin\nb: 2.2.2.2\n";
        assert_eq!(
            edit(damaged, "sshd", &[]),
            "a: 1.1.1.1\n# admin\nb: 2.2.2.2\n"
        );
        assert_eq!(
            edit("x: y\n# END jailwarden sshd\nz: w\n", "sshd", &[]),
            "x: y\nz: w\n"
        );
        // Duplicate blocks merge into one, at the first one's place.
        let dup = "# BEGIN jailwarden sshd\nALL: 192.0.2.1\n# END jailwarden sshd\nx: y\n# BEGIN jailwarden sshd\nALL: 192.0.2.2\n# END jailwarden sshd\n";
        assert_eq!(
            edit(dup, "sshd", &rules(&["192.0.2.3/32"])),
            "# BEGIN jailwarden sshd (managed by jailwarden; edits inside are lost)\nALL: 192.0.2.3\n# END jailwarden sshd\nx: y\n"
        );
    }

    #[test]
    fn applies_atomically_keeping_mode_and_only_writes_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.deny");
        fs::write(&path, ADMIN).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(apply(&path, "sshd", "ALL", &nets(&["192.0.2.7/32"])).unwrap());
        let ino = fs::metadata(&path).unwrap().ino();
        assert!(!apply(&path, "sshd", "ALL", &nets(&["192.0.2.7/32"])).unwrap());
        assert_eq!(fs::metadata(&path).unwrap().ino(), ino, "not rewritten");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert!(fs::read_to_string(&path).unwrap().starts_with(ADMIN));
        assert!(apply(&path, "sshd", "ALL", &BTreeSet::new()).unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), ADMIN);
        // No temporary files left behind; the lock file stays (it is tiny).
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["hosts.deny", "hosts.deny.jailwarden-lock"]);
        // A missing file is created.
        let fresh = dir.path().join("new.deny");
        assert!(apply(&fresh, "j", "sshd", &nets(&["2001:db8::5/128"])).unwrap());
        assert!(
            fs::read_to_string(&fresh)
                .unwrap()
                .contains("\nsshd: [2001:db8::5]\n")
        );
    }

    #[test]
    fn concurrent_writers_lose_no_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.deny");
        fs::write(&path, ADMIN).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let jail = format!("jail{t}");
                    let mut set = BTreeSet::new();
                    for i in 0..25 {
                        set.insert(format!("10.{t}.0.{i}/32").parse().unwrap());
                        apply(&path, &jail, "ALL", &set).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(ADMIN));
        for t in 0..4 {
            for i in 0..25 {
                assert!(
                    text.contains(&format!("\nALL: 10.{t}.0.{i}\n")),
                    "10.{t}.0.{i} lost"
                );
            }
        }
        assert_eq!(text.lines().count(), ADMIN.lines().count() + 4 * 27);
    }
}
