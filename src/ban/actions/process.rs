//! Running one program for an action: no shell, in a process group of its
//! own, output captured up to a bound, killed at its timeout.
//!
//! The process group is what makes the timeout mean something: a template
//! like `["sh", "-c", "..."]` forks, and killing only `sh` would leave its
//! children running (and holding our pipes open). On timeout the whole
//! group gets SIGTERM, then SIGKILL a second later.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Bytes kept of each of stdout and stderr (the rest is read and dropped,
/// so a chatty program never blocks on a full pipe).
pub const OUTPUT_LIMIT: usize = 4096;

/// How long to wait for the pipes to close after the program exited (a
/// background child it left may hold them).
const PIPE_GRACE: Duration = Duration::from_millis(300);

/// Between SIGTERM and SIGKILL on timeout.
const KILL_GRACE: Duration = Duration::from_secs(1);

/// How a run ended.
#[derive(Debug)]
pub enum Status {
    /// The program exited (or was killed by a signal from elsewhere).
    Exited(ExitStatus),
    /// It ran past its timeout; its process group was killed.
    TimedOut,
    /// It could not be started (missing program, permissions...).
    NotStarted(std::io::Error),
}

/// What a run produced.
#[derive(Debug)]
pub struct Output {
    pub status: Status,
    /// At most [`OUTPUT_LIMIT`] bytes each.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The process ID (0 when not started), for logs and tests.
    pub pid: u32,
}

impl Output {
    /// Exit status 0?
    pub fn success(&self) -> bool {
        matches!(&self.status, Status::Exited(s) if s.success())
    }

    /// What went wrong, for the log: the status and, on failure, what the
    /// program printed. `None` on success.
    pub fn problem(&self, timeout: Duration) -> Option<String> {
        let what = match &self.status {
            Status::Exited(s) if s.success() => return None,
            Status::Exited(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(s))
            {
                (Some(code), _) => format!("exited with status {code}"),
                (None, Some(sig)) => format!("was killed by signal {sig}"),
                _ => format!("failed ({s})"),
            },
            Status::TimedOut => format!(
                "timed out after {}; its process group was killed",
                crate::config::duration::format_duration(timeout)
            ),
            Status::NotStarted(e) => format!("could not be started: {e}"),
        };
        let mut text = what;
        for (name, bytes) in [("stderr", &self.stderr), ("stdout", &self.stdout)] {
            let shown = printable(bytes);
            if !shown.is_empty() {
                text.push_str(&format!("; {name}: {shown}"));
            }
        }
        Some(text)
    }
}

/// Output made safe for one log line: invalid UTF-8 replaced, control
/// characters escaped, surrounding whitespace trimmed.
pub fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        match c {
            '\n' => out.push_str(" | "),
            '\t' => out.push(' '),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Run `argv` (never through a shell) with extra `env`, feeding `stdin`
/// when given; kill its process group at `timeout`. Never panics on what
/// the program does; the caller reports the outcome.
pub async fn run(
    argv: &[String],
    env: &[(String, String)],
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Output {
    let Some((program, args)) = argv.split_first() else {
        return Output {
            status: Status::NotStarted(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "empty argument list",
            )),
            stdout: Vec::new(),
            stderr: Vec::new(),
            pid: 0,
        };
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Output {
                status: Status::NotStarted(e),
                stdout: Vec::new(),
                stderr: Vec::new(),
                pid: 0,
            };
        }
    };
    let pid = child.id().unwrap_or(0);
    let input = child.stdin.take();
    let out = child.stdout.take();
    let err = child.stderr.take();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let status = {
        // Borrows the buffers: what was read is kept even when the pipes
        // are given up on.
        let io = async {
            let feed = async move {
                if let (Some(mut pipe), Some(data)) = (input, stdin) {
                    // A program that exits without reading gives EPIPE: fine.
                    let _ = pipe.write_all(&data).await;
                    let _ = pipe.shutdown().await;
                }
            };
            tokio::join!(
                feed,
                read_bounded(out, &mut stdout),
                read_bounded(err, &mut stderr)
            );
        };
        tokio::pin!(io);
        let deadline = Instant::now() + timeout;
        let mut io_done = false;
        let exited = loop {
            tokio::select! {
                status = child.wait() => break Some(status),
                () = &mut io, if !io_done => io_done = true,
                _ = tokio::time::sleep_until(deadline) => break None,
            }
        };
        let status = match exited {
            Some(Ok(s)) => Status::Exited(s),
            Some(Err(e)) => Status::NotStarted(e),
            None => {
                kill_group(pid, Signal::TERM);
                if tokio::time::timeout(KILL_GRACE, child.wait())
                    .await
                    .is_err()
                {
                    kill_group(pid, Signal::KILL);
                    let _ = child.wait().await;
                }
                Status::TimedOut
            }
        };
        if !io_done {
            let _ = tokio::time::timeout(PIPE_GRACE, &mut io).await;
        }
        status
    };
    Output {
        status,
        stdout,
        stderr,
        pid,
    }
}

/// Signal every process of the group `pid` leads (only ever one we
/// started: the group was created for it with `process_group(0)`).
fn kill_group(pid: u32, sig: Signal) {
    if let Some(p) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process_group(p, sig);
    }
}

async fn read_bounded<R: AsyncRead + Unpin>(pipe: Option<R>, kept: &mut Vec<u8>) {
    let Some(mut pipe) = pipe else {
        return;
    };
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn reports_exit_status_and_bounded_output() {
        rt().block_on(async {
            let ok = run(&argv(&["true"]), &[], None, Duration::from_secs(5)).await;
            assert!(ok.success());
            assert_eq!(ok.problem(Duration::from_secs(5)), None);
            let bad = run(
                &argv(&[
                    "sh",
                    "-c",
                    "echo out; echo 'no such set' >&2; head -c 100000 /dev/zero; exit 3",
                ]),
                &[],
                None,
                Duration::from_secs(5),
            )
            .await;
            assert!(!bad.success());
            assert_eq!(bad.stdout.len(), OUTPUT_LIMIT);
            let p = bad.problem(Duration::from_secs(5)).unwrap();
            assert!(
                p.starts_with("exited with status 3; stderr: no such set; stdout: out | \\x00"),
                "{p}"
            );
            let missing = run(
                &argv(&["/nonexistent/x"]),
                &[],
                None,
                Duration::from_secs(5),
            )
            .await;
            assert!(matches!(missing.status, Status::NotStarted(_)));
        });
    }

    #[test]
    fn feeds_stdin_and_passes_environment_not_a_shell() {
        rt().block_on(async {
            let out = run(
                &argv(&[
                    "sh",
                    "-c",
                    "cat; printf '%s|' \"$1\" \"$JW_X\"",
                    "sh",
                    "$(id); `x`",
                ]),
                &[("JW_X".into(), "y z".into())],
                Some(b"mail body\n".to_vec()),
                Duration::from_secs(5),
            )
            .await;
            assert!(out.success(), "{:?}", out.problem(Duration::ZERO));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "mail body\n$(id); `x`|y z|"
            );
        });
    }

    #[test]
    fn a_hanging_command_is_killed_with_its_whole_process_group() {
        rt().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let pidfile = dir.path().join("pid");
            let started = std::time::Instant::now();
            // The shell's child (sleep) would survive a kill of the shell alone.
            let out = run(
                &argv(&[
                    "sh",
                    "-c",
                    "sleep 300 & echo $! > \"$1\"; wait",
                    "sh",
                    &pidfile.display().to_string(),
                ]),
                &[],
                None,
                Duration::from_millis(500),
            )
            .await;
            assert!(matches!(out.status, Status::TimedOut));
            assert!(started.elapsed() < Duration::from_secs(5));
            assert_eq!(
                out.problem(Duration::from_millis(500)).unwrap(),
                "timed out after 500ms; its process group was killed"
            );
            let sleeper: i32 = std::fs::read_to_string(&pidfile)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            // Gone, or a zombie waiting for init.
            let gone = (0..100).any(|_| {
                let stat = std::fs::read_to_string(format!("/proc/{sleeper}/stat"));
                let dead = match stat {
                    Err(_) => true,
                    Ok(s) => s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')),
                };
                if !dead {
                    std::thread::sleep(Duration::from_millis(20));
                }
                dead
            });
            assert!(gone, "the background sleep {sleeper} survived");
        });
    }

    #[test]
    fn a_background_child_holding_the_pipes_does_not_make_it_hang() {
        rt().block_on(async {
            let started = std::time::Instant::now();
            let out = run(
                &argv(&["sh", "-c", "echo hi; sleep 3 & exit 0"]),
                &[],
                None,
                Duration::from_secs(10),
            )
            .await;
            assert!(out.success());
            assert!(started.elapsed() < Duration::from_secs(2));
            assert_eq!(out.stdout, b"hi\n");
            kill_group(out.pid, Signal::KILL);
        });
    }
}
