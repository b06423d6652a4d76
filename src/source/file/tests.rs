//! Scenario tests of the file source through its public API, against real
//! files in temporary directories and the real thread.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::Receiver;
use tokio::time::{Instant, timeout};

use super::tailer::head_hash;
use super::*;

/// Long enough for a loaded CI machine; the tests only wait this long when
/// they are about to fail.
const DEADLINE: Duration = Duration::from_secs(10);

/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(300);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

fn jail(name: &str) -> JailId {
    Arc::from(name)
}

fn spawn_with(
    patterns: &[&Path],
    saved: Vec<SavedPosition>,
    max_line: usize,
) -> (FileHandle, Receiver<FileLine>) {
    init_tracing();
    let patterns = patterns
        .iter()
        .map(|p| p.to_str().expect("temp paths are UTF-8").to_owned())
        .collect();
    let mut opts = FileOptions::new(vec![(jail("j"), patterns)]);
    opts.saved = saved;
    opts.max_line = max_line;
    FileSource::spawn(opts).expect("spawn")
}

fn spawn(patterns: &[&Path]) -> (FileHandle, Receiver<FileLine>) {
    spawn_with(patterns, Vec::new(), DEFAULT_MAX_LINE)
}

/// Receives exactly `n` lines, failing after [`DEADLINE`].
async fn recv_n(rx: &mut Receiver<FileLine>, n: usize) -> Vec<FileLine> {
    let end = Instant::now() + DEADLINE;
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match timeout(end.saturating_duration_since(Instant::now()), rx.recv()).await {
            Ok(Some(line)) => got.push(line),
            Ok(None) => panic!("source ended after {:?}", texts(&got)),
            Err(_) => panic!("only {} of {n} lines: {:?}", got.len(), texts(&got)),
        }
    }
    got
}

/// Asserts that nothing arrives for [`QUIET`].
async fn assert_quiet(rx: &mut Receiver<FileLine>) {
    if let Ok(Some(line)) = timeout(QUIET, rx.recv()).await {
        panic!("unexpected line {:?}", String::from_utf8_lossy(&line.bytes));
    }
}

fn texts(lines: &[FileLine]) -> Vec<String> {
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(&l.bytes).into_owned())
        .collect()
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(bytes).expect("append");
}

fn file_id(path: &Path) -> FileId {
    let m = fs::metadata(path).expect("stat");
    FileId {
        dev: m.dev(),
        ino: m.ino(),
    }
}

#[tokio::test]
async fn first_start_begins_at_the_end_then_follows_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    fs::write(&log, b"old 1\nold 2\n").expect("write");
    let (handle, mut rx) = spawn(&[&log]);
    let starts = handle.start_positions();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].path, log);
    assert_eq!(starts[0].position.offset, 12);
    assert_eq!(starts[0].position.head_hash, head_hash(b"old 1\nold 2\n"));
    assert_quiet(&mut rx).await;

    append(&log, b"new 1\nnew 2\n");
    let got = recv_n(&mut rx, 2).await;
    assert_eq!(texts(&got), ["new 1", "new 2"]);
    assert_eq!(*got[0].path, *log);
    assert_eq!(&*got[0].jails, &[jail("j")]);
    assert_eq!(got[0].position.offset, 18);
    assert_eq!(got[1].position.offset, 24);
    assert_eq!(got[1].position.id(), file_id(&log));
    assert_eq!(got[1].position.head_len, 24);
    assert_eq!(
        got[1].position.head_hash,
        head_hash(b"old 1\nold 2\nnew 1\nnew 2\n")
    );
    assert!(!got[0].truncated);
    assert_eq!(handle.stats().lines, 2);
    assert_eq!(handle.stats().open_files, 1);
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn first_start_keeps_an_incomplete_last_line_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    fs::write(&log, b"old\nhalf a ").expect("write");
    let (handle, mut rx) = spawn(&[&log]);
    append(&log, b"line\n");
    assert_eq!(texts(&recv_n(&mut rx, 1).await), ["half a line"]);
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn partial_line_is_held_until_completed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    let (handle, mut rx) = spawn(&[&log]);
    append(&log, b"one\ntw");
    assert_eq!(texts(&recv_n(&mut rx, 1).await), ["one"]);
    assert_quiet(&mut rx).await;
    append(&log, b"o");
    assert_quiet(&mut rx).await;
    append(&log, b"\nthree\n");
    let got = recv_n(&mut rx, 2).await;
    assert_eq!(texts(&got), ["two", "three"]);
    assert_eq!(got[0].position.offset, 8);
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn rename_rotation_loses_nothing_written_to_either_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let mut old = File::create(&log).expect("create");
    let (handle, mut rx) = spawn(&[&log]);
    old.write_all(b"before\n").expect("write");
    assert_eq!(texts(&recv_n(&mut rx, 1).await), ["before"]);
    let old_id = file_id(&log);

    // logrotate renames; the service still writes to its open descriptor
    // until it is told to reopen.
    fs::rename(&log, &rotated).expect("rename");
    old.write_all(b"after rename\n").expect("write");
    old.write_all(b"partial ").expect("write");
    let mut new = File::create(&log).expect("create new");
    old.write_all(b"line\nafter create\n").expect("write");
    new.write_all(b"new 1\nnew 2\n").expect("write");

    let got = recv_n(&mut rx, 5).await;
    let (from_old, from_new): (Vec<_>, Vec<_>) =
        got.into_iter().partition(|l| l.position.id() == old_id);
    assert_eq!(
        texts(&from_old),
        ["after rename", "partial line", "after create"]
    );
    assert!(from_old.iter().all(|l| *l.path == *log), "former path kept");
    assert_eq!(texts(&from_new), ["new 1", "new 2"]);
    assert_eq!(from_new[0].position.id(), file_id(&log));

    // The rotated file is still followed, and closed once deleted.
    old.write_all(b"late\n").expect("write");
    assert_eq!(texts(&recv_n(&mut rx, 1).await), ["late"]);
    assert_eq!(handle.stats().open_files, 2);
    drop(old);
    fs::remove_file(&rotated).expect("remove");
    let end = Instant::now() + DEADLINE;
    while handle.stats().open_files != 1 {
        assert!(Instant::now() < end, "rotated file never closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_quiet(&mut rx).await;
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn second_rotation_closes_the_first_generation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    fs::write(&log, b"").expect("create");
    let (handle, mut rx) = spawn(&[&log]);
    for generation in 1..=3 {
        append(&log, format!("gen {generation}\n").as_bytes());
        recv_n(&mut rx, 1).await;
        fs::rename(&log, dir.path().join(format!("a.log.{generation}"))).expect("rename");
        fs::write(&log, b"").expect("recreate");
    }
    append(&log, b"gen 4\n");
    recv_n(&mut rx, 1).await;
    // The current file and the last rotated one.
    assert_eq!(handle.stats().open_files, 2);
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn copytruncate_restarts_at_the_beginning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    let (handle, mut rx) = spawn(&[&log]);
    append(&log, b"a long first line\nanother long line\n");
    recv_n(&mut rx, 2).await;

    OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    append(&log, b"short\n");
    let got = recv_n(&mut rx, 1).await;
    assert_eq!(texts(&got), ["short"]);
    assert_eq!(got[0].position.offset, 6);
    assert_eq!(got[0].position.head_hash, head_hash(b"short\n"));
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn truncation_rewritten_past_the_offset_is_noticed_by_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    let (handle, mut rx) = spawn(&[&log]);
    append(&log, b"2024-01-01 one\n");
    recv_n(&mut rx, 1).await;
    // Truncate and regrow beyond the offset in one step, as if both
    // happened before the source looked.
    let tmp = dir.path().join("tmp");
    fs::write(&tmp, b"2024-01-02 two\n2024-01-02 three\n").expect("write");
    let content = fs::read(&tmp).expect("read");
    let f = OpenOptions::new().write(true).open(&log).expect("open");
    f.set_len(0).expect("truncate");
    std::os::unix::fs::FileExt::write_all_at(&f, &content, 0).expect("rewrite");
    let got = recv_n(&mut rx, 2).await;
    assert_eq!(
        texts(&got),
        ["2024-01-02 two", "2024-01-02 three"],
        "{got:?}"
    );
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn deleted_and_recreated_file_is_read_from_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    let (handle, mut rx) = spawn(&[&log]);
    let mut w = File::create(&log).expect("create");
    w.write_all(b"one\n").expect("write");
    recv_n(&mut rx, 1).await;
    // Written just before the unlink: read through the descriptor, since a
    // deleted file is drained before it is closed.
    w.write_all(b"two\n").expect("write");
    fs::remove_file(&log).expect("remove");
    drop(w);
    append(&log, b"three\n");
    let got = recv_n(&mut rx, 2).await;
    assert_eq!(texts(&got), ["two", "three"]);
    assert_eq!(got[1].position.offset, 6);
    assert_quiet(&mut rx).await;
    assert_eq!(handle.stats().open_files, 1);
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn glob_picks_up_files_created_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("site1-error.log"), b"old\n").expect("write");
    let pattern = dir.path().join("*error.log");
    let (handle, mut rx) = spawn(&[&pattern]);
    assert_quiet(&mut rx).await;

    let later = dir.path().join("site2-error.log");
    fs::write(&later, b"first\n").expect("write");
    fs::write(dir.path().join("site2-access.log"), b"not matched\n").expect("write");
    fs::write(dir.path().join(".hidden-error.log"), b"not matched\n").expect("write");
    let got = recv_n(&mut rx, 1).await;
    assert_eq!(texts(&got), ["first"]);
    assert_eq!(*got[0].path, *later);
    append(&dir.path().join("site1-error.log"), b"new\n");
    assert_eq!(texts(&recv_n(&mut rx, 1).await), ["new"]);
    assert_quiet(&mut rx).await;
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn file_and_directories_that_appear_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("var/log/app/a.log");
    let glob = dir.path().join("srv/*/logs/*.log");
    let (handle, mut rx) = spawn(&[&log, &glob]);
    assert_eq!(handle.stats().open_files, 0);

    fs::create_dir_all(log.parent().expect("parent")).expect("mkdir");
    fs::write(&log, b"hello\n").expect("write");
    assert_eq!(texts(&recv_n(&mut rx, 1).await), ["hello"]);

    let site = dir.path().join("srv/site1/logs");
    fs::create_dir_all(&site).expect("mkdir");
    fs::write(site.join("x.log"), b"from the glob\n").expect("write");
    assert_eq!(texts(&recv_n(&mut rx, 1).await), ["from the glob"]);

    // A directory moved into place brings its files with it.
    let staging = dir.path().join("staging");
    fs::create_dir_all(staging.join("logs")).expect("mkdir");
    fs::write(staging.join("logs/y.log"), b"moved in\n").expect("write");
    fs::rename(&staging, dir.path().join("srv/site2")).expect("rename");
    assert_eq!(texts(&recv_n(&mut rx, 1).await), ["moved in"]);
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_symlinked_log_is_followed_through_its_target() {
    let dir = tempfile::tempdir().expect("tempdir");
    let real = dir.path().join("real");
    fs::create_dir(&real).expect("mkdir");
    let target = real.join("target.log");
    fs::write(&target, b"").expect("create");
    let log = dir.path().join("a.log");
    std::os::unix::fs::symlink(&target, &log).expect("symlink");
    let (handle, mut rx) = spawn(&[&log]);
    append(&target, b"one\n");
    let got = recv_n(&mut rx, 1).await;
    assert_eq!(texts(&got), ["one"]);
    assert_eq!(*got[0].path, *log);
    assert_eq!(got[0].position.id(), file_id(&target));
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn restart_resumes_without_loss_or_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    fs::write(&log, b"").expect("create");
    let (handle, mut rx) = spawn(&[&log]);
    append(&log, b"one\ntwo\nthr");
    let got = recv_n(&mut rx, 2).await;
    handle.stop().await.expect("clean stop");
    let saved = vec![got[1].saved_position()];

    append(&log, b"ee\nfour\n");
    let (handle, mut rx) = spawn_with(&[&log], saved, DEFAULT_MAX_LINE);
    assert!(handle.unmatched_saved().is_empty());
    assert_eq!(texts(&recv_n(&mut rx, 2).await), ["three", "four"]);
    assert_quiet(&mut rx).await;
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_quiet_file_is_not_replayed_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let quiet = dir.path().join("quiet.log");
    let busy = dir.path().join("busy.log");
    fs::write(&quiet, b"history\n").expect("write");
    fs::write(&busy, b"history\n").expect("write");
    let pattern = dir.path().join("*.log");
    let (handle, mut rx) = spawn(&[&pattern]);
    // The store, as the daemon keeps it: start positions, then lines.
    let mut store: Vec<SavedPosition> = handle.start_positions().to_vec();
    assert_eq!(store.len(), 2);
    append(&busy, b"one\n");
    let got = recv_n(&mut rx, 1).await;
    store.retain(|s| s.position.id() != got[0].position.id());
    store.push(got[0].saved_position());
    handle.stop().await.expect("clean stop");

    let (handle, mut rx) = spawn_with(&[&pattern], store, DEFAULT_MAX_LINE);
    assert_quiet(&mut rx).await;
    append(&quiet, b"news\n");
    assert_eq!(texts(&recv_n(&mut rx, 1).await), ["news"]);
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn restart_finds_a_file_rotated_while_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    let unrelated = dir.path().join("other.log");
    fs::write(&log, b"").expect("create");
    fs::write(&unrelated, b"").expect("create");
    let (handle, mut rx) = spawn(&[&log]);
    append(&log, b"one\n");
    let got = recv_n(&mut rx, 1).await;
    handle.stop().await.expect("clean stop");
    let mut saved = vec![got[0].saved_position()];
    // A position for a file that is gone.
    saved.push(SavedPosition {
        path: log.clone(),
        position: FilePosition {
            dev: got[0].position.dev,
            ino: file_id(&unrelated).ino + 1_000_000,
            head_len: 0,
            head_hash: head_hash(b""),
            offset: 0,
        },
    });

    // While stopped: more lines, rotation, lines in the new file.
    append(&log, b"two\n");
    fs::rename(&log, dir.path().join("a.log.1")).expect("rename");
    append(&log, b"three\n");

    let (handle, mut rx) = spawn_with(&[&log], saved.clone(), DEFAULT_MAX_LINE);
    assert_eq!(handle.unmatched_saved(), &saved[1..]);
    let got = recv_n(&mut rx, 2).await;
    assert_eq!(texts(&got), ["two", "three"], "rotated file first");
    assert!(got.iter().all(|l| *l.path == *log));
    assert_quiet(&mut rx).await;
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn rotated_file_under_a_matching_name_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    let pattern = dir.path().join("a.log*");
    fs::write(&log, b"").expect("create");
    let (handle, mut rx) = spawn(&[&pattern]);
    append(&log, b"one\n");
    let got = recv_n(&mut rx, 1).await;
    handle.stop().await.expect("clean stop");

    append(&log, b"two\n");
    let rotated = dir.path().join("a.log.1");
    fs::rename(&log, &rotated).expect("rename");
    append(&log, b"three\n");
    let (handle, mut rx) = spawn_with(&[&pattern], vec![got[0].saved_position()], DEFAULT_MAX_LINE);
    let mut got = recv_n(&mut rx, 2).await;
    got.sort_by_key(|l| l.bytes.clone());
    assert_eq!(texts(&got), ["three", "two"]);
    assert_eq!(*got[1].path, *rotated);
    assert_eq!(
        *got[0].path, *log,
        "new file under a followed pattern: from 0"
    );
    assert_quiet(&mut rx).await;
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn reused_inode_is_told_apart_by_the_head_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    fs::write(&log, b"2024-05-01 new content\nsecond\n").expect("write");
    let id = file_id(&log);
    // What a previous file with the same inode left in the store: a
    // position inside the file, but another head.
    let stale = SavedPosition {
        path: log.clone(),
        position: FilePosition {
            dev: id.dev,
            ino: id.ino,
            head_len: 10,
            head_hash: head_hash(b"2024-04-01"),
            offset: 10,
        },
    };
    let (handle, mut rx) = spawn_with(&[&log], vec![stale.clone()], DEFAULT_MAX_LINE);
    assert_eq!(
        handle.unmatched_saved(),
        &[],
        "the id was seen, just not resumed"
    );
    // Not resumed at 10, and not skipped to the end: the pattern was
    // followed before, so this is a new file, read whole.
    assert_eq!(
        texts(&recv_n(&mut rx, 2).await),
        ["2024-05-01 new content", "second"]
    );
    handle.stop().await.expect("clean stop");

    // The same position with the right head resumes at 10.
    let good = SavedPosition {
        position: FilePosition {
            head_hash: head_hash(b"2024-05-01"),
            ..stale.position
        },
        ..stale
    };
    let (handle, mut rx) = spawn_with(&[&log], vec![good], DEFAULT_MAX_LINE);
    assert_eq!(texts(&recv_n(&mut rx, 2).await), [" new content", "second"]);
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_one_mebibyte_line_is_delivered_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    let max = 64 * 1024;
    let (handle, mut rx) = spawn_with(&[&log], Vec::new(), max);
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..16 {
        append(&log, &chunk);
    }
    append(&log, b"\nshort\n");
    let got = recv_n(&mut rx, 2).await;
    assert_eq!(got[0].bytes.len(), max);
    assert!(got[0].truncated);
    assert_eq!(got[0].position.offset, 1024 * 1024 + 1);
    assert_eq!(texts(&got[1..]), ["short"]);
    assert!(!got[1].truncated);
    let stats = handle.stats();
    assert_eq!(stats.truncated_lines, 1);
    assert_eq!(stats.bytes, 1024 * 1024 + 7);
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn invalid_utf8_is_delivered_as_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    let (handle, mut rx) = spawn(&[&log]);
    append(&log, b"\xff\xfe from 203.0.113.7 \xc3\n\r\n");
    let got = recv_n(&mut rx, 2).await;
    assert_eq!(got[0].bytes, b"\xff\xfe from 203.0.113.7 \xc3");
    assert_eq!(got[1].bytes, b"\r");
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn many_files_each_in_order() {
    const FILES: usize = 40;
    const LINES: usize = 50;
    let dir = tempfile::tempdir().expect("tempdir");
    let pattern = dir.path().join("*.log");
    let (handle, mut rx) = spawn(&[&pattern]);
    let mut writers: Vec<File> = (0..FILES)
        .map(|f| File::create(dir.path().join(format!("{f:02}.log"))).expect("create"))
        .collect();
    for l in 0..LINES {
        for (f, w) in writers.iter_mut().enumerate() {
            w.write_all(format!("file {f} line {l}\n").as_bytes())
                .expect("write");
        }
    }
    let got = recv_n(&mut rx, FILES * LINES).await;
    let mut next = [0; FILES];
    for line in &got {
        let name = line
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name");
        let f: usize = name[..2].parse().expect("index");
        assert_eq!(
            String::from_utf8_lossy(&line.bytes),
            format!("file {f} line {}", next[f])
        );
        next[f] += 1;
    }
    assert_quiet(&mut rx).await;
    assert_eq!(handle.stats().open_files, FILES as u64);
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_file_several_jails_want_is_read_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("auth.log");
    let path = |p: PathBuf| p.to_str().expect("UTF-8").to_owned();
    init_tracing();
    let opts = FileOptions::new(vec![
        (jail("sshd"), vec![path(log.clone())]),
        (jail("vsftpd"), vec![path(dir.path().join("*.log"))]),
        (jail("other"), vec![path(dir.path().join("other.log"))]),
    ]);
    let (handle, mut rx) = FileSource::spawn(opts).expect("spawn");
    append(&log, b"one\n");
    let got = recv_n(&mut rx, 1).await;
    assert_eq!(&*got[0].jails, &[jail("sshd"), jail("vsftpd")]);
    assert_quiet(&mut rx).await;
    handle.stop().await.expect("clean stop");
}

#[tokio::test]
async fn backpressure_then_stop_while_the_channel_is_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    init_tracing();
    let mut opts = FileOptions::new(vec![(
        jail("j"),
        vec![log.to_str().expect("UTF-8").to_owned()],
    )]);
    opts.channel_capacity = 1;
    let (handle, mut rx) = FileSource::spawn(opts).expect("spawn");
    let lines: String = (0..100).map(|i| format!("line {i}\n")).collect();
    append(&log, lines.as_bytes());
    // Backpressure: the thread waits on the full channel, and goes on as
    // lines are taken.
    let got = recv_n(&mut rx, 50).await;
    let want: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
    assert_eq!(texts(&got), want);
    // Let the thread fill the channel again and block on it.
    let end = Instant::now() + DEADLINE;
    while handle.stats().lines < 52 {
        assert!(Instant::now() < end, "not read on");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    timeout(DEADLINE, handle.stop())
        .await
        .expect("stop returns")
        .expect("clean stop");
    drop(rx);
}

#[tokio::test]
async fn bad_patterns_are_refused_at_spawn() {
    let opts = FileOptions::new(vec![(jail("j"), vec!["/var/log/[z-a.log".into()])]);
    match FileSource::spawn(opts) {
        Err(FileSourceError::Pattern { pattern, .. }) => assert_eq!(pattern, "/var/log/[z-a.log"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn dropping_the_receiver_ends_the_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("a.log");
    let (handle, rx) = spawn(&[&log]);
    drop(rx);
    append(&log, b"one\n");
    timeout(DEADLINE, handle.stop())
        .await
        .expect("stop returns")
        .expect("clean stop");
}

/// Runs `f` with this thread's filesystem uid set to nobody when running as
/// root, so that permissions apply (root's DAC override is dropped with it).
fn as_nobody<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        // SAFETY: setfsuid only changes the calling thread's filesystem uid
        // (a direct syscall, not broadcast to other threads by glibc), and
        // it is restored below before anything else runs on this thread.
        unsafe { libc::setfsuid(65534) };
    }
    let out = f();
    if root {
        // SAFETY: as above.
        unsafe { libc::setfsuid(0) };
    }
    out
}

#[test]
fn an_unreadable_file_is_retried_when_its_permissions_change() {
    use std::os::unix::fs::PermissionsExt;

    if !rustix::process::geteuid().is_root() {
        // Straight to the terminal (the harness captures eprintln!).
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (needs root, to act as another user): {}",
            module_path!()
        );
        return;
    }

    use super::tailer::{Sink, Stopped, Tailer};

    struct Collect(Vec<FileLine>);
    impl Sink for Collect {
        fn deliver(&mut self, line: FileLine) -> Result<(), Stopped> {
            self.0.push(line);
            Ok(())
        }
    }
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let log = dir.path().join("a.log");
    fs::write(&log, b"").expect("create");
    fs::set_permissions(&log, fs::Permissions::from_mode(0o000)).expect("chmod");
    let jails = vec![(jail("j"), vec![log.to_str().expect("UTF-8").to_owned()])];
    let (mut tailer, startup) = as_nobody(|| {
        Tailer::new(jails, Vec::new(), DEFAULT_MAX_LINE, Arc::default()).expect("tailer")
    });
    assert!(startup.starts.is_empty(), "cannot be opened");
    let mut sink = Collect(Vec::new());
    let mut pump = |sink: &mut Collect| {
        as_nobody(|| while tailer.pump(sink).expect("pump") {});
    };

    append(&log, b"one\n");
    pump(&mut sink);
    assert!(sink.0.is_empty());

    fs::set_permissions(&log, fs::Permissions::from_mode(0o644)).expect("chmod");
    pump(&mut sink);
    assert_eq!(texts(&sink.0), ["one"], "retried, and read from the start");
}
