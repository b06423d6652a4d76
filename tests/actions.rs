//! Actions against the built daemon and a private journald: commands that
//! write to a temp file (order, start/stop, restore, a hanging one killed),
//! hosts.deny on a temp file, mail through a fake sendmail. And the shipped
//! examples pass `check-config`.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::daemon::Daemon;
use support::{PrivateJournald, wait_until};

/// MESSAGE_ID of action failures (src/events.rs).
const ACTION_ERROR_ID: &str = "8cc0cf9c1332425cb093fdd88231951f";

const BASE: &str = r#"
[daemon]
backend = "none"
journal_directory = "{journal}"
filter_dirs = ["{filters}"]
[defaults]
ignoreip = ["127.0.0.0/8"]
ignoreself = false
[jails.sshd]
journal_match = ["_UID=0", "SYSLOG_IDENTIFIER=sshd"]
maxretry = 2
findtime = "10m"
"#;

/// A script that appends its arguments to `WORK/log` (one line per run);
/// `slow` in them makes it take two seconds (logged at start and end);
/// 192.0.2.66 makes it hang, 192.0.2.99 fail.
const ACT: &str = r#"#!/bin/sh
log="$(dirname "$0")/log"
case "$*" in
  *192.0.2.66*) echo $$ > "$log.hang"; exec sleep 1000;;
  *192.0.2.99*) echo "no such set" >&2; exit 3;;
  *slow*) echo "$* start" >> "$log"; sleep 2; echo "$* end" >> "$log";;
  *) echo "$*" >> "$log";;
esac
"#;

struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        let dir = tempfile::Builder::new()
            .prefix("jw-actions-")
            .tempdir()
            .expect("tempdir");
        let w = Work { dir };
        w.script("act.sh", ACT);
        w
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn script(&self, name: &str, text: &str) {
        let p = self.path(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The config with WORK replaced by this directory.
    fn config(&self, extra: &str) -> String {
        format!("{BASE}{extra}").replace("WORK", &self.dir.path().display().to_string())
    }

    fn log(&self) -> Vec<String> {
        fs::read_to_string(self.path("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn wait_log(&self, line: &str) {
        assert!(
            wait_until(Duration::from_secs(15), || self
                .log()
                .iter()
                .any(|l| l == line)),
            "no {line:?} in {:?}",
            self.log()
        );
    }
}

fn failed(j: &PrivateJournald, addr: &str) {
    j.syslog(
        "sshd",
        &format!("Failed password for root from {addr} port 4242 ssh2"),
    );
}

fn process_gone(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')),
    }
}

#[test]
fn ban_and_unban_commands_run_in_order_per_address() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let w = Work::new();
    let d = Daemon::start(
        &j,
        &w.config(
            r#"bantime = "1s"
[[jails.sshd.action]]
type = "command"
ban = ["WORK/act.sh", "ban", "{address}", "{jail}", "{bantime}", "{failures}", "{net}", "{family}", "slow"]
unban = ["WORK/act.sh", "unban", "{address}", "{net}"]
"#,
        ),
    );
    failed(&j, "192.0.2.7");
    failed(&j, "192.0.2.7");
    d.wait_ban("sshd", "192.0.2.7");
    failed(&j, "2001:db8::7");
    failed(&j, "2001:db8::7");
    w.wait_log("unban 192.0.2.7 192.0.2.7/32");
    w.wait_log("unban 2001:db8::7 2001:db8::7/128");
    let log = w.log();
    let v4: Vec<&String> = log.iter().filter(|l| l.contains("192.0.2.7")).collect();
    // The ban expired after 1 s, while its 2 s command still ran: the
    // unban waited for it.
    assert_eq!(
        v4,
        [
            "ban 192.0.2.7 sshd 1 2 192.0.2.7/32 inet slow start",
            "ban 192.0.2.7 sshd 1 2 192.0.2.7/32 inet slow end",
            "unban 192.0.2.7 192.0.2.7/32"
        ]
    );
    let v6: Vec<&String> = log.iter().filter(|l| l.contains("2001:db8::7")).collect();
    assert_eq!(
        v6,
        [
            "ban 2001:db8::7 sshd 1 2 2001:db8::7/128 inet6 slow start",
            "ban 2001:db8::7 sshd 1 2 2001:db8::7/128 inet6 slow end",
            "unban 2001:db8::7 2001:db8::7/128"
        ]
    );
    assert!(d.messages(ACTION_ERROR_ID).is_empty());
}

#[test]
fn start_stop_and_restore_of_bans_in_force() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let w = Work::new();
    let mut d = Daemon::start(
        &j,
        &w.config(
            r#"bantime = "10m"
[[jails.sshd.action]]
type = "command"
start = [["WORK/act.sh", "start", "{jail}"], ["WORK/act.sh", "start2"]]
stop = ["WORK/act.sh", "stop", "{jail}"]
ban = ["WORK/act.sh", "ban", "{address}", "{timeout}"]
"#,
        ),
    );
    w.wait_log("start2");
    failed(&j, "192.0.2.10");
    failed(&j, "192.0.2.10");
    w.wait_log("ban 192.0.2.10 600");
    d.term();
    assert_eq!(
        w.log(),
        ["start sshd", "start2", "ban 192.0.2.10 600", "stop sshd"]
    );
    // At the next start the ban in force is run again (restore), with the
    // time it has left.
    d.spawn();
    assert!(wait_until(Duration::from_secs(15), || w.log().len() == 7));
    let log = w.log();
    assert_eq!(log[4..6], ["start sshd", "start2"]);
    let left: u64 = log[6]
        .strip_prefix("ban 192.0.2.10 ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{log:?}"));
    assert!((590..=600).contains(&left), "{log:?}");
}

#[test]
fn reload_replaces_changed_actions_in_order_and_removed_jails_unban() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let w = Work::new();
    let action = |tag: &str| {
        format!(
            r#"bantime = "10m"
[[jails.sshd.action]]
type = "command"
start = ["WORK/act.sh", "start-{tag}"]
stop = ["WORK/act.sh", "stop-{tag}"]
ban = ["WORK/act.sh", "ban-{tag}", "{{address}}"]
unban = ["WORK/act.sh", "unban-{tag}", "{{address}}"]
"#
        )
    };
    let d = Daemon::start(&j, &w.config(&action("a")));
    failed(&j, "192.0.2.10");
    failed(&j, "192.0.2.10");
    w.wait_log("ban-a 192.0.2.10");
    // Unchanged on reload: nothing restarts.
    d.reload();
    // Changed: the old action stops before the new one starts, and the new
    // one takes over the ban in force.
    d.write_config(&w.config(&action("b")));
    d.reload();
    w.wait_log("ban-b 192.0.2.10");
    // The jail goes: its bans are lifted (unban runs), then its action stops.
    let other = w
        .config("")
        .replace("[jails.sshd]", "[jails.other]\nfilter = \"sshd\"");
    d.write_config(&other);
    d.reload();
    w.wait_log("stop-b");
    assert_eq!(
        w.log(),
        [
            "start-a",
            "ban-a 192.0.2.10",
            "stop-a",
            "start-b",
            "ban-b 192.0.2.10",
            "unban-b 192.0.2.10",
            "stop-b"
        ]
    );
}

#[test]
fn a_hanging_command_is_killed_at_its_timeout_and_reported() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let w = Work::new();
    let d = Daemon::start(
        &j,
        &w.config(
            r#"bantime = "10m"
[[jails.sshd.action]]
type = "command"
name = "record"
ban = ["WORK/act.sh", "ban", "{address}"]
timeout = "1s"
concurrency = 1
"#,
        ),
    );
    failed(&j, "192.0.2.66");
    failed(&j, "192.0.2.66");
    d.wait_ban("sshd", "192.0.2.66");
    // Queued behind the hanging one in the only lane.
    failed(&j, "192.0.2.8");
    failed(&j, "192.0.2.8");
    d.wait_ban("sshd", "192.0.2.8");
    w.wait_log("ban 192.0.2.8");
    let hung: i32 = fs::read_to_string(w.path("log.hang"))
        .expect("the hanging command ran")
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || process_gone(hung)),
        "the hanging command {hung} still runs"
    );
    failed(&j, "192.0.2.99");
    failed(&j, "192.0.2.99");
    let mut errors = Vec::new();
    assert!(wait_until(Duration::from_secs(15), || {
        errors = d.messages(ACTION_ERROR_ID);
        errors.len() == 2
    }));
    let dir = w.dir.path().display().to_string();
    assert_eq!(
        errors,
        [
            format!(
                "[sshd] action record failed: ban command `{dir}/act.sh ban 192.0.2.66` timed out after 1s; its process group was killed"
            ),
            format!(
                "[sshd] action record failed: ban command `{dir}/act.sh ban 192.0.2.99` exited with status 3; stderr: no such set"
            ),
        ]
    );
    // The daemon kept working all along.
    failed(&j, "192.0.2.9");
    failed(&j, "192.0.2.9");
    w.wait_log("ban 192.0.2.9");
}

#[test]
fn hosts_deny_follows_the_bans_and_keeps_other_lines() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let w = Work::new();
    let admin = "# admin's rules\nsshd: 198.51.100.1\nALL: .evil.example\n";
    fs::write(
        w.path("hosts.deny"),
        format!("{admin}# BEGIN jailwarden sshd\nsshd: 203.0.113.9\n# END jailwarden sshd\n"),
    )
    .unwrap();
    let _d = Daemon::start(
        &j,
        &w.config(
            r#"bantime = "3s"
[[jails.sshd.action]]
type = "hosts-deny"
path = "WORK/hosts.deny"
daemon = "sshd"
"#,
        ),
    );
    let read = || fs::read_to_string(w.path("hosts.deny")).unwrap();
    // Synced at start: the stale rule of a ban no longer in force went.
    assert!(
        wait_until(Duration::from_secs(10), || read() == admin),
        "{}",
        read()
    );
    failed(&j, "192.0.2.7");
    failed(&j, "192.0.2.7");
    failed(&j, "2001:db8::7");
    failed(&j, "2001:db8::7");
    let want = format!(
        "{admin}# BEGIN jailwarden sshd (managed by jailwarden; edits inside are lost)\nsshd: 192.0.2.7\nsshd: [2001:db8::7]\n# END jailwarden sshd\n"
    );
    assert!(
        wait_until(Duration::from_secs(10), || read() == want),
        "{}",
        read()
    );
    // Expired: the block goes, the admin's lines are as they were.
    assert!(
        wait_until(Duration::from_secs(15), || read() == admin),
        "{}",
        read()
    );
}

#[test]
fn mail_goes_through_sendmail_with_the_matched_lines_and_is_rate_limited() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let w = Work::new();
    w.script(
        "sendmail",
        "#!/bin/sh\nn=$(date +%s%N)\necho \"$*\" > \"$(dirname \"$0\")/mail.$n.args\"\ncat > \"$(dirname \"$0\")/mail.$n.tmp\"\nmv \"$(dirname \"$0\")/mail.$n.tmp\" \"$(dirname \"$0\")/mail.$n\"\n",
    );
    let d = Daemon::start(
        &j,
        &w.config(
            r#"bantime = "10m"
[[jails.sshd.action]]
type = "mail"
dest = ["root@localhost", "ops@example.org"]
sender = "jw@host.example"
sendmail = "WORK/sendmail"
max_per_hour = 2
"#,
        ),
    );
    let mails = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(w.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .strip_prefix("mail.")
                    .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
            })
            .collect();
        v.sort();
        v
    };
    for addr in ["192.0.2.7", "192.0.2.8", "192.0.2.9"] {
        failed(&j, addr);
        failed(&j, addr);
        d.wait_ban("sshd", addr);
    }
    assert!(wait_until(Duration::from_secs(10), || mails().len() == 2));
    assert!(
        wait_until(Duration::from_secs(10), || d
            .log()
            .iter()
            .any(|m| m.contains(
                "mail rate limit (2 per hour) reached: 1 bans not mailed yet"
            ))),
        "{:?}",
        d.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(mails().len(), 2, "the third ban is not mailed");
    let first = fs::read_to_string(&mails()[0]).unwrap();
    let (head, body) = first.split_once("\n\n").expect("headers, blank line, body");
    assert!(
        head.contains("\nTo: root@localhost, ops@example.org\n"),
        "{head}"
    );
    assert!(
        head.starts_with("From: jailwarden <jw@host.example>\n"),
        "{head}"
    );
    assert!(
        head.contains("\nSubject: [jailwarden] sshd: banned 192.0.2.7 after 2 failures\n"),
        "{head}"
    );
    let matched: Vec<&str> = body
        .lines()
        .filter(|l| l.contains("Failed password for root from 192.0.2.7 port 4242 ssh2"))
        .collect();
    assert_eq!(matched.len(), 2, "{body}");
    assert!(
        matched
            .iter()
            .all(|l| l.starts_with("  ") && l.contains(" sshd[")),
        "{body}"
    );
    let args = fs::read_to_string(format!("{}.args", mails()[0].display())).unwrap();
    assert_eq!(args.trim(), "-t -i -f jw@host.example");
    assert!(d.messages(ACTION_ERROR_ID).is_empty());
}

/// Each shipped example, copied into a jail.d next to the shipped main
/// file, passes `jailwarden check-config`.
#[test]
fn shipped_action_examples_pass_check_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples = root.join("config/jail.d/examples");
    let mut names: Vec<PathBuf> = fs::read_dir(&examples)
        .expect("config/jail.d/examples")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".toml.example"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    for example in names {
        let dir = tempfile::tempdir().unwrap();
        fs::copy(
            root.join("config/jailwarden.toml"),
            dir.path().join("jailwarden.toml"),
        )
        .unwrap();
        std::os::unix::fs::symlink(root.join("config/filters"), dir.path().join("filters"))
            .unwrap();
        fs::create_dir(dir.path().join("jail.d")).unwrap();
        let name = example
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".example", "");
        fs::copy(&example, dir.path().join("jail.d").join(&name)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_jailwarden"))
            .arg("check-config")
            .arg("--config")
            .arg(dir.path().join("jailwarden.toml"))
            .output()
            .expect("run check-config");
        assert!(
            out.status.success(),
            "{}: {}{}",
            example.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(": OK: "),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
