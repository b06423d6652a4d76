//! The journal source against a real systemd-journald (a private one per
//! test, see `support`): matching and dispatch, live following, resuming,
//! and the file-set changes Fail2ban's journal backend broke on (rotation,
//! vacuuming, journald restarts, files appearing).
//!
//! Needs root, like CI. Every wait is bounded.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jailwarden::config::journal_match::JournalMatch;
use jailwarden::source::journal::{
    JournalBatch, JournalEntry, JournalError, JournalHandle, JournalOptions, JournalSource,
    MAX_BATCH_ENTRIES, StartAt,
};
use jailwarden::source::{JailId, MAX_MESSAGE_BYTES};
use jiff::Timestamp;
use support::{PrivateJournald, wait_until};
use tokio::sync::mpsc::Receiver;

/// Generous: a loaded CI machine runs many journalds at once.
const TIMEOUT: Duration = Duration::from_secs(10);

fn jm(terms: &[&str]) -> JournalMatch {
    JournalMatch::parse(terms).expect("valid test match")
}

fn hour() -> StartAt {
    StartAt {
        since: Duration::from_secs(3600),
        ..StartAt::default()
    }
}

fn id(name: &str) -> JailId {
    JailId::from(name)
}

fn options(dir: PathBuf, jails: Vec<(JailId, JournalMatch)>, start: StartAt) -> JournalOptions {
    JournalOptions {
        directory: Some(dir),
        jails,
        extra_fields: Vec::new(),
        start,
        channel_capacity: 64,
    }
}

fn spawn(opts: JournalOptions) -> (JournalHandle, Receiver<JournalBatch>) {
    support::init_logging();
    JournalSource::spawn(opts).expect("start the journal reader")
}

fn text(e: &JournalEntry) -> String {
    String::from_utf8_lossy(&e.line).into_owned()
}

/// The MESSAGE part of a rendered line (test messages contain no ": ").
fn message(e: &JournalEntry) -> String {
    let t = text(e);
    match t.split_once(": ") {
        Some((_, m)) => m.to_string(),
        None => t,
    }
}

fn messages(entries: &[JournalEntry]) -> Vec<String> {
    entries.iter().map(message).collect()
}

/// Receive entries until one whose message is `last`; returns them all,
/// `last` included. Panics after [`TIMEOUT`], or if `last` is not the end
/// of its batch (then more entries were delivered than the test expects).
fn recv_through(rx: &mut Receiver<JournalBatch>, last: &str) -> Vec<JournalEntry> {
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(batch) => {
                assert!(!batch.is_empty(), "empty batch");
                let n = batch.len();
                for (i, e) in batch.into_iter().enumerate() {
                    let done = message(&e) == last;
                    got.push(e);
                    if done {
                        assert_eq!(i + 1, n, "entries after {last:?}: {:?}", messages(&got));
                        return got;
                    }
                }
            }
            Err(_) => {
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {last:?}; got {:?}",
                    messages(&got)
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

fn syslog_all(j: &PrivateJournald, ident: &str, msgs: &[&str]) {
    for m in msgs {
        j.syslog(ident, m);
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("read the host name")
        .trim()
        .to_string()
}

#[test]
fn only_matching_entries_arrive_dispatched_to_their_jails() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let ssh = j.unit("ssh.service");
    let cron = j.unit("cron.service");
    let mut opts = options(
        j.log_dir(),
        vec![
            (id("j1"), jm(&[&format!("_SYSTEMD_UNIT={ssh}")])),
            (id("j2"), jm(&["SYSLOG_IDENTIFIER=sshd"])),
            (id("j3"), jm(&["SYSLOG_IDENTIFIER=jw-marker"])),
            (id("j4"), JournalMatch::default()), // not a journal jail
        ],
        hour(),
    );
    opts.extra_fields = vec!["JAILWARDEN_ADDRESS".into(), "MESSAGE_ID".into()];
    let started = Timestamp::now();
    let (handle, mut rx) = spawn(opts);

    j.send_in_unit(
        &ssh,
        &[
            &[
                ("MESSAGE", b"both"),
                ("SYSLOG_IDENTIFIER", b"sshd"),
                ("JAILWARDEN_ADDRESS", b"192.0.2.7"),
                ("MESSAGE_ID", b"0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
            ],
            &[
                ("MESSAGE", b"unit-only"),
                ("SYSLOG_IDENTIFIER", b"sshd-session"),
            ],
        ],
    );
    j.send_in_unit(
        &cron,
        &[&[("MESSAGE", b"other unit"), ("SYSLOG_IDENTIFIER", b"CRON")]],
    );
    j.syslog("sshd", "ident-only");
    j.syslog("cron", "nobody wants this");
    j.send(&[&[("MESSAGE", b"end"), ("SYSLOG_IDENTIFIER", b"jw-marker")]]);

    let got = recv_through(&mut rx, "end");
    assert_eq!(messages(&got), ["both", "unit-only", "ident-only", "end"]);
    let jails: Vec<&[JailId]> = got.iter().map(|e| &*e.jails).collect();
    assert_eq!(
        jails,
        [
            &[id("j1"), id("j2")][..],
            &[id("j1")],
            &[id("j2")],
            &[id("j3")]
        ]
    );

    // HOSTNAME IDENTIFIER[PID]: MESSAGE
    let host = hostname();
    for (e, ident) in got
        .iter()
        .zip(["sshd", "sshd-session", "sshd", "jw-marker"])
    {
        let t = text(e);
        let prefix = format!("{host} {ident}[");
        assert!(t.starts_with(&prefix), "{t:?} should start with {prefix:?}");
        let pid = &t[prefix.len()..t.find("]: ").expect("[PID]: ")];
        assert!(pid.parse::<u32>().is_ok(), "{t:?}");
        assert!(e.time >= started - jiff::SignedDuration::from_secs(60));
        assert!(e.time <= Timestamp::now());
        assert!(e.cursor.starts_with("s="), "{:?}", e.cursor);
        assert!(!e.truncated);
    }
    assert_eq!(
        got[0].extra.get("JAILWARDEN_ADDRESS"),
        Some(&b"192.0.2.7"[..])
    );
    assert_eq!(
        got[0].extra.get("MESSAGE_ID"),
        Some(&b"0f1e2d3c4b5a69788796a5b4c3d2e1f0"[..])
    );
    assert!(got[1].extra.is_empty());

    // The other entries (journald's own, cron's) were filtered out by the
    // journal itself: the reader never saw them.
    let stats = handle.stats();
    assert_eq!((stats.read, stats.delivered), (4, 4), "{stats:?}");
    handle.stop();
}

#[test]
fn follows_new_entries_promptly() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let (handle, mut rx) = spawn(options(
        j.log_dir(),
        vec![(id("j7"), jm(&["SYSLOG_IDENTIFIER=jw-live"]))],
        hour(),
    ));
    assert!(wait_until(TIMEOUT, || handle.stats().caught_up > 0));
    for i in 0..5 {
        let msg = format!("live {i}");
        let sent = Instant::now();
        j.syslog("jw-live", &msg);
        let got = recv_through(&mut rx, &msg);
        // Woken by the journal's fd: this is milliseconds, not a poll period.
        let latency = sent.elapsed();
        assert!(latency < Duration::from_secs(2), "{msg}: {latency:?}");
        assert_eq!(messages(&got), [msg]);
        assert_eq!(*got[0].jails, [id("j7")]);
    }
    // Idle means asleep: no timed polling. (journald touching its files
    // may wake the reader once or twice.)
    let before = handle.stats().caught_up;
    std::thread::sleep(Duration::from_secs(1));
    let wakeups = handle.stats().caught_up - before;
    assert!(wakeups <= 3, "{wakeups} wake-ups in an idle second");
    handle.stop();
}

#[test]
fn first_start_reads_from_now_minus_since() {
    support::needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::now().as_microsecond() as u64;
    let min = 60_000_000;
    let entry = |m: &'static str| -> support::Fields<'static> {
        match m {
            "old" => &[("SYSLOG_IDENTIFIER", b"sshd"), ("MESSAGE", b"old")],
            "recent" => &[("SYSLOG_IDENTIFIER", b"sshd"), ("MESSAGE", b"recent")],
            "fresh" => &[("SYSLOG_IDENTIFIER", b"sshd"), ("MESSAGE", b"fresh")],
            _ => &[("SYSLOG_IDENTIFIER", b"cron"), ("MESSAGE", b"unrelated")],
        }
    };
    support::write_journal_file(
        &dir.path().join("remote.journal"),
        &[
            (now - 120 * min, entry("old")),
            (now - 30 * min, entry("recent")),
            (now - 20 * min, entry("other")),
            (now - min, entry("fresh")),
        ],
    );
    let jails = || vec![(id("j1"), jm(&["SYSLOG_IDENTIFIER=sshd"]))];

    let (handle, mut rx) = spawn(options(dir.path().into(), jails(), hour()));
    let got = recv_through(&mut rx, "fresh");
    assert_eq!(messages(&got), ["recent", "fresh"]);
    assert_eq!(got[0].time.as_microsecond() as u64, now - 30 * min);
    assert!(wait_until(TIMEOUT, || handle.stats().caught_up > 0));
    assert!(rx.try_recv().is_err());
    handle.stop();

    // No cursor but a last time: what is not newer was processed already.
    let start = StartAt {
        last_time: Some(got[0].time),
        ..hour()
    };
    let (handle, mut rx) = spawn(options(dir.path().into(), jails(), start));
    assert_eq!(messages(&recv_through(&mut rx, "fresh")), ["fresh"]);
    handle.stop();
}

#[test]
fn resumes_after_the_saved_cursor_without_loss_or_duplicates() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let jails = || vec![(id("j1"), jm(&["SYSLOG_IDENTIFIER=jw-resume"]))];
    let (handle, mut rx) = spawn(options(j.log_dir(), jails(), hour()));
    syslog_all(&j, "jw-resume", &["r1", "r2", "r3"]);
    let got = recv_through(&mut rx, "r3");
    assert_eq!(messages(&got), ["r1", "r2", "r3"]);
    handle.stop();

    // Written while no reader runs.
    syslog_all(&j, "jw-resume", &["r4", "r5"]);
    let at = |e: &JournalEntry| StartAt {
        cursor: Some(e.cursor.clone()),
        last_time: Some(e.time),
        ..hour()
    };
    let (handle, mut rx) = spawn(options(j.log_dir(), jails(), at(&got[2])));
    j.syslog("jw-resume", "r6");
    let got = recv_through(&mut rx, "r6");
    assert_eq!(messages(&got), ["r4", "r5", "r6"]);
    handle.stop();

    // Resuming at the very last entry delivers only what comes next.
    let (handle, mut rx) = spawn(options(j.log_dir(), jails(), at(&got[2])));
    j.syslog("jw-resume", "r7");
    assert_eq!(messages(&recv_through(&mut rx, "r7")), ["r7"]);
    handle.stop();
}

#[test]
fn vacuumed_cursor_falls_back_to_the_last_time() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let ident = "SYSLOG_IDENTIFIER=jw-vacuum";
    let jails = || vec![(id("j1"), jm(&[ident]))];
    let (handle, mut rx) = spawn(options(j.log_dir(), jails(), hour()));
    syslog_all(&j, "jw-vacuum", &["v1", "v2", "v3"]);
    let got = recv_through(&mut rx, "v3");
    handle.stop();

    // v1..v3 end up in an archived file, which vacuuming deletes.
    j.rotate();
    syslog_all(&j, "jw-vacuum", &["v4", "v5"]);
    j.vacuum();
    assert_eq!(j.messages(&[ident]), ["v4", "v5"], "v1..v3 vacuumed");

    let start = StartAt {
        cursor: Some(got[2].cursor.clone()),
        last_time: Some(got[2].time),
        ..hour()
    };
    let (handle, mut rx) = spawn(options(j.log_dir(), jails(), start));
    j.syslog("jw-vacuum", "v6");
    let after = recv_through(&mut rx, "v6");
    assert_eq!(messages(&after), ["v4", "v5", "v6"]);
    handle.stop();

    // A cursor that never existed, without a saved time: the time inside
    // the cursor is used; v4 (at that time) counts as processed.
    let t = after[0].time.as_microsecond();
    let bogus = format!(
        "s=00000000000000000000000000000001;i=1;b=00000000000000000000000000000002;\
         m=1;t={t:x};x=1"
    );
    let start = StartAt {
        cursor: Some(bogus),
        ..hour()
    };
    let (handle, mut rx) = spawn(options(j.log_dir(), jails(), start));
    j.syslog("jw-vacuum", "v7");
    assert_eq!(messages(&recv_through(&mut rx, "v7")), ["v5", "v6", "v7"]);
    handle.stop();
}

#[test]
fn binary_and_huge_messages_are_kept_as_bytes_and_capped() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let (handle, mut rx) = spawn(options(
        j.log_dir(),
        vec![(id("j1"), jm(&["SYSLOG_IDENTIFIER=jw-bytes"]))],
        hour(),
    ));
    let binary: &[u8] = b"bad \xff\xfe utf-8\nsecond line \x01";
    let huge: Vec<u8> = (0..1 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    j.send(&[
        &[("SYSLOG_IDENTIFIER", b"jw-bytes"), ("MESSAGE", binary)],
        &[("SYSLOG_IDENTIFIER", b"jw-bytes"), ("MESSAGE", &huge)],
        &[("SYSLOG_IDENTIFIER", b"jw-bytes"), ("MESSAGE", b"after")],
    ]);
    let got = recv_through(&mut rx, "after");
    assert_eq!(got.len(), 3);
    assert!(got[0].line.ends_with(binary), "{:?}", text(&got[0]));
    assert!(!got[0].truncated);
    let head = got[1].line.len() - MAX_MESSAGE_BYTES;
    assert_eq!(&got[1].line[head..], &huge[..MAX_MESSAGE_BYTES]);
    assert!(got[1].line[..head].ends_with(b"]: "));
    assert!(got[1].truncated);
    assert_eq!(handle.stats().truncated, 1);
    handle.stop();
}

/// journald cuts a stdout line at its `LineMax=` (48K by default) and says
/// so (`_LINE_BREAK=line-max`): the entry is flagged as cut, so no filter
/// takes its end for the end of the line the service wrote.
#[test]
fn stdout_lines_journald_cut_at_line_max_are_flagged() {
    use std::io::Write;
    let j = PrivateJournald::started();
    let (handle, mut rx) = spawn(options(
        j.log_dir(),
        vec![(id("j1"), jm(&["SYSLOG_IDENTIFIER=jw-stdout"]))],
        hour(),
    ));
    let long = format!("{} TAIL", "b".repeat(60_000));
    let mut cat = j
        .in_namespace("systemd-cat")
        .args(["-t", "jw-stdout"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run systemd-cat");
    cat.stdin
        .take()
        .expect("piped")
        .write_all(format!("{long}\nshort\nafter\n").as_bytes())
        .expect("write to systemd-cat");
    assert!(cat.wait().expect("wait for systemd-cat").success());
    j.sync();
    let got = recv_through(&mut rx, "after");
    let flags: Vec<(usize, bool)> = got
        .iter()
        .map(|e| (message(e).len(), e.truncated))
        .collect();
    // The long line arrives as its first 48 KiB (cut) and the rest.
    assert_eq!(
        flags,
        [
            (48 * 1024, true),
            (60_005 - 48 * 1024, false),
            (5, false),
            (5, false)
        ]
    );
    // Not our own cut: the counter of lines we cut stays 0.
    assert_eq!(handle.stats().truncated, 0);
    handle.stop();
}

#[test]
fn keeps_reading_across_journald_restarts() {
    support::needs_root!();
    let mut j = PrivateJournald::started();
    let (handle, mut rx) = spawn(options(
        j.log_dir(),
        vec![(id("j1"), jm(&["SYSLOG_IDENTIFIER=jw-restart"]))],
        hour(),
    ));
    j.syslog("jw-restart", "a1");
    recv_through(&mut rx, "a1");

    j.restart(); // clean stop: files closed and reused
    j.syslog("jw-restart", "a2");
    assert_eq!(messages(&recv_through(&mut rx, "a2")), ["a2"]);

    j.crash(); // SIGKILL: the dirty file is set aside, a new one started
    j.start();
    j.syslog("jw-restart", "a3");
    assert_eq!(messages(&recv_through(&mut rx, "a3")), ["a3"]);

    j.syslog("jw-restart", "end");
    assert_eq!(messages(&recv_through(&mut rx, "end")), ["end"]);
    assert!(handle.is_running());
    handle.stop();
}

#[test]
fn keeps_reading_across_rotation_and_vacuuming() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let (handle, mut rx) = spawn(options(
        j.log_dir(),
        vec![(id("j1"), jm(&["SYSLOG_IDENTIFIER=jw-rotate"]))],
        hour(),
    ));
    let mut want = Vec::new();
    for round in 0..3 {
        let m = |i| format!("b{round}-{i}");
        j.syslog("jw-rotate", &m(1));
        j.syslog("jw-rotate", &m(2));
        j.rotate();
        j.syslog("jw-rotate", &m(3));
        j.vacuum();
        want.extend([m(1), m(2), m(3)]);
    }
    j.syslog("jw-rotate", "end");
    want.push("end".into());
    assert_eq!(messages(&recv_through(&mut rx, "end")), want);
    let stats = handle.stats();
    assert!(stats.invalidations > 0, "{stats:?}");
    assert_eq!(stats.reopened, 0, "{stats:?}");
    handle.stop();
}

#[test]
fn picks_up_journal_files_that_appear_later() {
    support::needs_root!();
    // The reader opens an empty directory; journald then creates the
    // machine-id directory and its files.
    let mut j = PrivateJournald::new();
    let (handle, mut rx) = spawn(options(
        j.log_dir(),
        vec![(id("j1"), jm(&["SYSLOG_IDENTIFIER=jw-appear"]))],
        hour(),
    ));
    j.start();
    j.syslog("jw-appear", "c1");
    assert_eq!(messages(&recv_through(&mut rx, "c1")), ["c1"]);
    handle.stop();
}

#[test]
fn reopens_a_journal_directory_replaced_under_it() {
    support::needs_root!();
    // sd-journal watches the directory it opened, not the path: a collector
    // that recreates its output directory would go unnoticed.
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("journal");
    std::fs::create_dir(&dir).unwrap();
    let now = Timestamp::now().as_microsecond() as u64;
    let sshd = |m: &'static [u8]| -> support::Fields<'static> {
        match m {
            b"d1" => &[("SYSLOG_IDENTIFIER", b"sshd"), ("MESSAGE", b"d1")],
            _ => &[("SYSLOG_IDENTIFIER", b"sshd"), ("MESSAGE", b"d2")],
        }
    };
    support::write_journal_file(&dir.join("a.journal"), &[(now - 60_000_000, sshd(b"d1"))]);
    let (handle, mut rx) = spawn(options(
        dir.clone(),
        vec![(id("j1"), jm(&["SYSLOG_IDENTIFIER=sshd"]))],
        hour(),
    ));
    assert_eq!(messages(&recv_through(&mut rx, "d1")), ["d1"]);

    std::fs::rename(&dir, base.path().join("old")).unwrap();
    std::fs::create_dir(&dir).unwrap();
    support::write_journal_file(&dir.join("b.journal"), &[(now, sshd(b"d2"))]);
    assert_eq!(messages(&recv_through(&mut rx, "d2")), ["d2"]);
    assert!(handle.stats().reopened >= 1, "{:?}", handle.stats());
    handle.stop();
}

#[test]
fn a_missing_directory_is_an_error_at_start() {
    support::needs_root!();
    let dir = tempfile::tempdir().unwrap();
    let err = JournalSource::spawn(options(
        dir.path().join("missing"),
        vec![(id("j1"), jm(&["SYSLOG_IDENTIFIER=x"]))],
        hour(),
    ))
    .expect_err("no such directory");
    assert!(matches!(err, JournalError::Open { .. }), "{err}");
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn waits_for_a_slow_core_and_still_stops_promptly() {
    support::needs_root!();
    let j = PrivateJournald::started();
    // A backlog of more than two batches, with room for one in the channel:
    // the reader must wait for the core with the second.
    let n = 2 * MAX_BATCH_ENTRIES + 10;
    let msgs: Vec<Vec<u8>> = (0..n).map(|i| format!("s{i}").into_bytes()).collect();
    let entries: Vec<[(&str, &[u8]); 2]> = msgs
        .iter()
        .map(|m| {
            [
                ("SYSLOG_IDENTIFIER", &b"jw-slow"[..]),
                ("MESSAGE", m.as_slice()),
            ]
        })
        .collect();
    let entries: Vec<support::Fields> = entries.iter().map(|e| &e[..]).collect();
    j.send(&entries);

    let mut opts = options(
        j.log_dir(),
        vec![(id("j1"), jm(&["SYSLOG_IDENTIFIER=jw-slow"]))],
        hour(),
    );
    opts.channel_capacity = 1;
    let (handle, mut rx) = spawn(opts);
    assert!(wait_until(TIMEOUT, || handle.stats().backpressure_waits > 0));
    let stats = handle.stats();
    assert_eq!(stats.delivered, MAX_BATCH_ENTRIES as u64, "{stats:?}");

    let asked = Instant::now();
    handle.stop();
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    // What was in the channel stays there for the core.
    let batch = rx.try_recv().expect("the first batch");
    assert_eq!(batch.len(), MAX_BATCH_ENTRIES);
    assert_eq!(message(&batch[0]), "s0");
    assert!(rx.try_recv().is_err());
}

#[test]
fn stops_promptly_when_idle_and_exits_when_the_receiver_goes() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let jails = || vec![(id("j1"), jm(&["SYSLOG_IDENTIFIER=jw-idle"]))];
    let (handle, _rx) = spawn(options(j.log_dir(), jails(), hour()));
    assert!(wait_until(TIMEOUT, || handle.stats().caught_up > 0));
    let asked = Instant::now();
    handle.stop();
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );

    let (handle, rx) = spawn(options(j.log_dir(), jails(), hour()));
    drop(rx);
    j.syslog("jw-idle", "nobody listens");
    assert!(wait_until(TIMEOUT, || !handle.is_running()));
}

/// The default mode (no `journal_directory`): the local system journal.
/// The reader is started from a thread that entered the private journald's
/// mount namespace, where `/var/log/journal` is that journald's; its own
/// thread inherits the namespace.
#[test]
fn reads_the_local_journal_when_no_directory_is_given() {
    support::needs_root!();
    use std::os::fd::AsRawFd;

    let j = PrivateJournald::started();
    let ns = std::fs::File::open(format!("/proc/{}/ns/mnt", j.pid())).expect("open mount ns");
    let opts = JournalOptions {
        directory: None,
        ..options(
            PathBuf::new(),
            vec![(id("j1"), jm(&["SYSLOG_IDENTIFIER=jw-local"]))],
            hour(),
        )
    };
    let (handle, mut rx) = std::thread::spawn(move || {
        // SAFETY: plain syscalls on this thread only: unshare(CLONE_FS) so
        // the thread may join another mount namespace without affecting
        // the rest of the test process; `ns` is an open namespace fd.
        unsafe {
            assert_eq!(libc::unshare(libc::CLONE_FS), 0, "unshare(CLONE_FS)");
            assert_eq!(
                libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS),
                0,
                "setns(mount namespace)"
            );
        }
        spawn(opts)
    })
    .join()
    .expect("namespace thread");
    j.syslog("jw-local", "local 1");
    assert_eq!(messages(&recv_through(&mut rx, "local 1")), ["local 1"]);
    handle.stop();
}

/// How the daemon's core uses it: spawned from async code, batches awaited,
/// the handle dropped there too.
#[tokio::test]
async fn serves_an_async_core() {
    support::needs_root!();
    let j = PrivateJournald::started();
    let (handle, mut rx) = spawn(options(
        j.log_dir(),
        vec![(id("j3"), jm(&["SYSLOG_IDENTIFIER=jw-async"]))],
        hour(),
    ));
    j.syslog("jw-async", "hello");
    let batch = tokio::time::timeout(TIMEOUT, rx.recv())
        .await
        .expect("a batch in time")
        .expect("the reader is running");
    assert_eq!(messages(&batch), ["hello"]);
    assert_eq!(*batch[0].jails, [id("j3")]);
    drop(handle);
    // The reader is gone: the channel ends.
    assert!(rx.recv().await.is_none());
}

/// Send `msgs` natively as entries of `ident`, in one go (one sender).
fn send_all(j: &PrivateJournald, ident: &str, msgs: &[String]) {
    let entries: Vec<Vec<(&str, &[u8])>> = msgs
        .iter()
        .map(|m| {
            vec![
                ("SYSLOG_IDENTIFIER", ident.as_bytes()),
                ("MESSAGE", m.as_bytes()),
            ]
        })
        .collect();
    let refs: Vec<support::Fields> = entries.iter().map(Vec::as_slice).collect();
    j.send(&refs);
    j.sync();
}

/// `journalctl --vacuum-size`: archived files go until the journal is
/// below `size` (the active file always stays).
fn vacuum_size(j: &PrivateJournald, size: &str) {
    let out = std::process::Command::new("journalctl")
        .arg("-D")
        .arg(j.log_dir())
        .arg(format!("--vacuum-size={size}"))
        .output()
        .expect("run journalctl --vacuum-size");
    assert!(out.status.success(), "journalctl --vacuum-size failed");
}

/// The journal changes under a reader that is deep in a backlog (its
/// core slow, its channel full): rotation, `--vacuum-size` deleting the
/// very file being read, a clean journald restart and a crash. Every entry
/// arrives once, in order: sd-journal keeps a deleted file it has open
/// readable until it looks at the directory again, which it does only
/// once the backlog is read.
#[test]
fn a_backlog_survives_rotation_vacuuming_and_journald_restarts_under_it() {
    support::needs_root!();
    let mut j = PrivateJournald::started();
    let ident = "jw-churn";
    let batch = |round: usize, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("c{round}-{i:05}")).collect()
    };
    let mut want: Vec<String> = batch(0, 3 * MAX_BATCH_ENTRIES);
    send_all(&j, ident, &want);
    let mut opts = options(
        j.log_dir(),
        vec![(id("j1"), jm(&[&format!("SYSLOG_IDENTIFIER={ident}")]))],
        hour(),
    );
    opts.channel_capacity = 1;
    let (handle, mut rx) = spawn(opts);
    // The first batch: the reader is now blocked in the backlog.
    let deadline = Instant::now() + TIMEOUT;
    let mut got: Vec<JournalEntry> = Vec::new();
    while got.is_empty() {
        assert!(Instant::now() < deadline, "no first batch");
        if let Ok(b) = rx.try_recv() {
            got.extend(b);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(got.len() < want.len(), "the backlog was read at once");

    j.rotate();
    let more = batch(1, 50);
    send_all(&j, ident, &more);
    want.extend(more);
    // Everything archived goes, the file being read among them.
    vacuum_size(&j, "1");
    j.restart();
    let more = batch(2, 50);
    send_all(&j, ident, &more);
    want.extend(more);
    j.crash();
    j.start();
    let more = batch(3, 50);
    send_all(&j, ident, &more);
    want.extend(more);
    want.push("end".into());
    j.syslog(ident, "end");

    got.extend(recv_through(&mut rx, "end"));
    let got = messages(&got);
    assert_eq!(got.len(), want.len(), "lost or doubled entries");
    assert_eq!(got, want);
    assert!(handle.is_running());
    handle.stop();
}

/// A `journal_directory` (a collector's output, journal-remote) whose
/// files appear, vanish and are replaced while the reader follows it:
/// each entry once, nothing from a vanished file read twice, the reader
/// never stuck.
#[test]
fn a_journal_directory_whose_files_appear_and_vanish() {
    support::needs_root!();
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("remote");
    std::fs::create_dir(&dir).unwrap();
    let now = Timestamp::now().as_microsecond() as u64;
    // journal-remote must write into a directory of its own (it may
    // rotate into siblings): build each file aside, then move it in.
    let built = std::cell::Cell::new(0);
    let file = |name: &str, first: u64, msgs: &[&str]| {
        built.set(built.get() + 1);
        let tmp = base.path().join(format!("build-{}", built.get()));
        std::fs::create_dir(&tmp).unwrap();
        let texts: Vec<Vec<u8>> = msgs.iter().map(|m| m.as_bytes().to_vec()).collect();
        let fields: Vec<[(&str, &[u8]); 2]> = texts
            .iter()
            .map(|m| {
                [
                    ("SYSLOG_IDENTIFIER", &b"sshd"[..]),
                    ("MESSAGE", m.as_slice()),
                ]
            })
            .collect();
        let entries: Vec<(u64, support::Fields)> = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (first + i as u64 * 1000, &f[..]))
            .collect();
        let path = tmp.join(format!("{name}.journal"));
        support::write_journal_file(&path, &entries);
        std::fs::rename(&path, dir.join(format!("{name}.journal"))).unwrap();
    };
    let minute = 60_000_000;
    file("a", now - 5 * minute, &["a1", "a2"]);
    let (handle, mut rx) = spawn(options(
        dir.clone(),
        vec![(id("j1"), jm(&["SYSLOG_IDENTIFIER=sshd"]))],
        hour(),
    ));
    assert_eq!(messages(&recv_through(&mut rx, "a2")), ["a1", "a2"]);

    // A new file appears; the old one vanishes; another appears.
    file("b", now - 4 * minute, &["b1", "b2"]);
    assert_eq!(messages(&recv_through(&mut rx, "b2")), ["b1", "b2"]);
    std::fs::remove_file(dir.join("a.journal")).unwrap();
    file("c", now - 3 * minute, &["c1"]);
    assert_eq!(messages(&recv_through(&mut rx, "c1")), ["c1"]);
    // Everything vanishes, then a file of the same name comes back with
    // newer entries (a collector that restarted).
    std::fs::remove_file(dir.join("b.journal")).unwrap();
    std::fs::remove_file(dir.join("c.journal")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    file("b", now - 2 * minute, &["b3", "b4"]);
    assert_eq!(messages(&recv_through(&mut rx, "b4")), ["b3", "b4"]);
    file("d", now - minute, &["d1"]);
    assert_eq!(messages(&recv_through(&mut rx, "d1")), ["d1"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(rx.try_recv().is_err(), "entries delivered twice");
    assert!(handle.is_running());
    handle.stop();
}

/// The daemon was stopped longer than the journal keeps entries: its saved
/// cursor, and entries after it, were vacuumed away. It resumes from the
/// oldest entry left, counts the failures there, and says in its journal
/// event how much it never read.
#[test]
fn a_vacuumed_cursor_resumes_at_the_oldest_entry_and_says_what_was_skipped() {
    use support::daemon::Daemon;
    support::needs_root!();
    const GAP_ID: &str = jailwarden::events::MESSAGE_ID_JOURNAL_GAP;
    let j = PrivateJournald::started();
    let mut d = Daemon::start(
        &j,
        r#"
[daemon]
backend = "none"
journal_directory = "{journal}"
filter_dirs = ["{filters}"]
[defaults]
ignoreself = false
[jails.sshd]
journal_match = ["_UID=0", "SYSLOG_IDENTIFIER=sshd"]
maxretry = 5
findtime = "1h"
"#,
    );
    let failed = |addr: &str| {
        j.syslog(
            "sshd",
            &format!("Failed password for root from {addr} port 4242 ssh2"),
        )
    };
    failed("192.0.2.10");
    assert!(
        wait_until(TIMEOUT, || d.stored_failures("sshd", "192.0.2.10") == 1),
        "first failure not counted"
    );
    d.term();
    // While it is down: two failures, then the file holding them (and the
    // cursor's entry) is archived and vacuumed away.
    failed("192.0.2.20");
    failed("192.0.2.20");
    j.rotate();
    failed("192.0.2.30");
    vacuum_size(&j, "1");
    assert!(
        !j.messages(&["SYSLOG_IDENTIFIER=sshd"])
            .iter()
            .any(|m| m.contains("192.0.2.20")),
        "not vacuumed"
    );
    d.spawn();
    assert!(
        wait_until(TIMEOUT, || d.stored_failures("sshd", "192.0.2.30") == 1),
        "the failure after the gap was not counted"
    );
    assert_eq!(d.stored_failures("sshd", "192.0.2.10"), 1, "counted twice");
    assert_eq!(d.stored_failures("sshd", "192.0.2.20"), 0);
    let gaps = d.journal_fields(&[&format!("MESSAGE_ID={GAP_ID}")]);
    let skipped: i64 = gaps
        .lines()
        .find_map(|l| l.trim().strip_prefix("JAILWARDEN_SKIPPED_ENTRIES="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no gap event: {gaps}"));
    // The two failures, and whatever else was logged meanwhile (the
    // daemon's own stop, journald's rotation notes).
    assert!(skipped >= 2, "{gaps}");
    assert!(gaps.contains("were never read"), "{gaps}");
    d.term();
}
