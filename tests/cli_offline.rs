//! The offline commands run as an admin would: the built binary,
//! `test-filter` and `check-config`, checking output and exit codes.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn jailwarden(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jailwarden"))
        .args(args)
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run jailwarden");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.unwrap_or_default().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    out
}

fn filters() -> String {
    root().join("config/filters").display().to_string()
}

#[test]
fn test_filter_tsv_prints_line_host_time() {
    let log =
        b"Feb 25 14:34:10 srv sshd[1]: Failed password for root from 192.0.2.7 port 22 ssh2\n\
Feb 25 14:34:11 srv CRON[2]: pam_unix(cron:session): session opened\n\
2024-02-25T14:34:12+01:00 srv sshd[3]: Invalid user bob from 2001:db8::9 port 4444\n";
    let out = jailwarden(
        &[
            "test-filter",
            "--filter-dir",
            &filters(),
            "sshd",
            "-",
            "--format",
            "tsv",
        ],
        Some(log),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("1\t192.0.2.7\t"), "{text}");
    assert!(lines[0].ends_with("-02-25T14:34:10+00:00"), "{text}");
    assert_eq!(lines[1], "3\t2001:db8::9\t2024-02-25T13:34:12+00:00");
}

#[test]
fn test_filter_text_summary_and_json() {
    // One wrong password for an invalid user, as sshd 9.2p1 with Debian's
    // UsePAM yes writes it: three failure lines, one attempt.
    let log = b"Feb 25 14:34:10 srv sshd[1]: Invalid user admin from 192.0.2.7 port 57365
Feb 25 14:34:10 srv sshd[1]: pam_unix(sshd:auth): check pass; user unknown
Feb 25 14:34:10 srv sshd[1]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.7
Feb 25 14:34:12 srv sshd[1]: Failed password for invalid user admin from 192.0.2.7 port 57365 ssh2
Feb 25 14:34:13 srv sshd[1]: Connection closed by invalid user admin 192.0.2.7 port 57365 [preauth]
noise
";
    let out = jailwarden(
        &["test-filter", "--filter-dir", &filters(), "sshd", "-"],
        Some(log),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "Lines:    6 read: 3 tell failed attempts, 1 other matches (helper lines), 0 ignored, 2 missed"
        ),
        "{text}"
    );
    assert!(text.contains("Attempts: 1 counted, on 1 lines"), "{text}");
    let out = jailwarden(
        &[
            "test-filter",
            "--filter-dir",
            &filters(),
            "sshd",
            "-",
            "--format",
            "json",
        ],
        Some(log),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["failures"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["failures"][0]["host"], "192.0.2.7");
    assert_eq!(v["failures"][0]["user"], "admin");
    assert_eq!(v["failures"][0]["attempts"], 1);
    assert_eq!(v["failures"][0]["repeat"], false);
    assert_eq!(v["lines"], 6);
    assert_eq!(v["matched"], 1);
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["failure_lines"], 3);
    assert_eq!(v["missed"], 2);
    let steps: Vec<&str> = v["regexes"]
        .as_array()
        .expect("regexes")
        .iter()
        .filter(|r| r["hits"].as_u64() > Some(0))
        .filter_map(|r| r["step"].as_str())
        .collect();
    assert_eq!(steps, ["result", "user", "pam"], "{}", v["regexes"]);
}

#[test]
fn test_filter_lists_a_repeat_only_when_a_jail_would_count_it() {
    // Postfix during an auth-server outage (tests/real): the line alone
    // never counts; after the address's own failure it does.
    let log = b"Feb  3 08:29:28 mail postfix/smtpd[1]: warning: unknown[192.0.2.51]: SASL PLAIN authentication failed: Connection lost to authentication server, sasl_username=(unavailable)
Feb  3 08:30:00 mail postfix/smtpd[1]: warning: unknown[192.0.2.52]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=admin
Feb  3 08:30:10 mail postfix/smtpd[1]: warning: unknown[192.0.2.52]: SASL PLAIN authentication failed: Connection lost to authentication server, sasl_username=(unavailable)
Feb  3 08:59:00 mail postfix/smtpd[1]: warning: unknown[192.0.2.52]: SASL PLAIN authentication failed: Connection lost to authentication server, sasl_username=(unavailable)
";
    let out = jailwarden(
        &[
            "test-filter",
            "--filter-dir",
            &filters(),
            "postfix",
            "-",
            "--mode",
            "auth",
            "--format",
            "json",
        ],
        Some(log),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let got: Vec<(u64, &str, bool)> = v["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .map(|f| {
            (
                f["line"].as_u64().unwrap_or(0),
                f["host"].as_str().unwrap_or(""),
                f["repeat"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(got, [(2, "192.0.2.52", false), (3, "192.0.2.52", true)]);
    assert_eq!(v["attempts"], 2);
}

#[test]
fn hostile_input_never_crashes_nor_bans_the_injected_address() {
    let mut log = Vec::new();
    log.extend_from_slice(b"Feb 25 14:34:10 srv sshd[1]: Failed password for invalid user x from 10.0.0.1 port 22 ssh2 from 192.0.2.9 port 5555 ssh2\n");
    log.extend_from_slice(b"Feb 25 14:34:10 srv sshd[1]: Failed password for \xff\xfe\x00 from 192.0.2.10 port 1 ssh2\n");
    log.extend(std::iter::repeat_n(b'A', 1 << 20));
    log.extend_from_slice(
        b"\nFeb 25 14:34:10 srv sshd[1]: Invalid user y from 192.0.2.11 port 1\n",
    );
    let out = jailwarden(
        &[
            "test-filter",
            "--filter-dir",
            &filters(),
            "sshd",
            "-",
            "--format",
            "tsv",
        ],
        Some(&log),
    );
    assert!(out.status.success());
    let hosts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').nth(1).unwrap_or("").to_string())
        .collect();
    assert_eq!(hosts, ["192.0.2.9", "192.0.2.10", "192.0.2.11"]);
}

#[test]
fn unknown_filter_and_bad_mode_exit_2() {
    let out = jailwarden(
        &["test-filter", "--filter-dir", &filters(), "nope", "-"],
        Some(b""),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no filter \"nope\""));
    let out = jailwarden(
        &[
            "test-filter",
            "--filter-dir",
            &filters(),
            "sshd",
            "-",
            "--mode",
            "paranoid",
        ],
        Some(b""),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no mode \"paranoid\""));
}

#[test]
fn check_config_accepts_the_shipped_config() {
    let cfg = root().join("config/jailwarden.toml");
    let out = jailwarden(
        &["check-config", "--config", &cfg.display().to_string()],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK: 1 jail (1 enabled: sshd)"));
}

#[test]
fn check_config_names_file_line_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("filters")).unwrap();
    std::fs::copy(
        root().join("config/filters/sshd.toml"),
        dir.path().join("filters/sshd.toml"),
    )
    .unwrap();
    std::fs::copy(
        root().join("config/filters/common.toml"),
        dir.path().join("filters/common.toml"),
    )
    .unwrap();
    let cfg = dir.path().join("jailwarden.toml");
    std::fs::write(
        &cfg,
        "[jails.sshd]\nbantime = \"forever and ever\"\nignoreip = [\"10.0.0.0/8\", \"nonsense\"]\n",
    )
    .unwrap();
    let out = jailwarden(
        &["check-config", "--config", &cfg.display().to_string()],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let c = cfg.display();
    assert!(
        err.contains(&format!("{c}:2:11: bantime: duration \"forever and ever\"")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{c}:3:27: ignoreip: \"nonsense\"")),
        "{err}"
    );
    assert!(err.contains("2 problems"), "{err}");
}

/// From a checkout, with no flags and nothing installed: `filters` and
/// `test-filter` find the repository's config/filters (the binary lives
/// in its target/), and `filters` says where it looked.
#[test]
fn filters_and_test_filter_find_the_checkout_filters() {
    let out = jailwarden(
        &["filters", "--config", "/nonexistent/jailwarden.toml"],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() || err.contains("/nonexistent"),
        "{err}"
    );
    let out = jailwarden(&["filters"], None);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let shipped = std::fs::read_dir(root().join("config/filters"))
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            let n = n.to_string_lossy();
            n.ends_with(".toml") && n != "common.toml"
        })
        .count();
    assert!(
        text.lines().any(|l| l.starts_with("sshd ")),
        "sshd not listed:\n{text}"
    );
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.contains(&root().join("config/filters").display().to_string()),
        "{last}"
    );
    let listed: usize = last.split_whitespace().next().unwrap().parse().unwrap();
    assert!(listed >= shipped, "{listed} listed, {shipped} shipped");
    let log =
        b"Feb 25 14:34:10 srv sshd[1]: Failed password for root from 192.0.2.7 port 22 ssh2\n";
    let out = jailwarden(&["test-filter", "sshd", "-", "--format", "tsv"], Some(log));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("1\t192.0.2.7\t"));
}

/// `filters` and `test-filter` search the configuration's
/// `[daemon] filter_dirs` (relative to the file) like the daemon does; a
/// broken configuration is reported and its part of the path skipped.
#[test]
fn offline_commands_use_the_configs_filter_dirs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mine")).unwrap();
    std::fs::write(
        dir.path().join("mine/only-here.toml"),
        "description = \"a local filter\"\nfailregex = ['^bad login from <HOST>$']\n",
    )
    .unwrap();
    let config = dir.path().join("jailwarden.toml");
    std::fs::write(
        &config,
        "[daemon]\nfilter_dirs = [\"mine\"]\n[jails.x]\nfilter = \"only-here\"\nlogpath = [\"/x\"]\n",
    )
    .unwrap();
    let config_arg = config.display().to_string();
    let out = jailwarden(&["filters", "--config", &config_arg], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("only-here ") && l.contains("a local filter")),
        "{text}"
    );
    let out = jailwarden(
        &[
            "test-filter",
            "only-here",
            "-",
            "--config",
            &config_arg,
            "--format",
            "tsv",
        ],
        Some(b"bad login from 198.51.100.4\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\t198.51.100.4\t-\n");
    // The default configuration's filter_dirs are not searched when the
    // file is another: without --config the filter is not found.
    let out = jailwarden(&["test-filter", "only-here", "-"], Some(b""));
    assert_eq!(out.status.code(), Some(2));
    // A broken configuration: said on stderr, the rest still works.
    std::fs::write(&config, "[daemon]\nfilter_dirs = [1]\n").unwrap();
    let out = jailwarden(&["filters", "--config", &config_arg], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(
        err.contains("its filter_dirs are not searched") && err.contains("jailwarden.toml:2:"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sshd "));
}

/// `filters --json` has the shape docs/cli-json.md documents.
#[test]
fn filters_json_shape_is_as_documented() {
    let out = jailwarden(&["filters", "--json", "--filter-dir", &filters()], None);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let list = v.as_array().expect("an array");
    let sshd = list
        .iter()
        .find(|f| f["name"] == "sshd")
        .expect("sshd listed");
    assert_eq!(sshd["modes"][0], "normal");
    assert!(
        sshd["modes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "aggressive")
    );
    assert_eq!(sshd["problems"], 0);
    assert!(sshd["description"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(
        sshd["path"]
            .as_str()
            .unwrap()
            .ends_with("config/filters/sshd.toml")
    );
    let names: Vec<&str> = list.iter().map(|f| f["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "sorted by name");
    let doc = std::fs::read_to_string(root().join("docs/cli-json.md")).unwrap();
    for field in ["name", "modes", "description", "path", "problems"] {
        assert!(
            doc.contains(&format!("| `{field}` |")),
            "{field} undocumented"
        );
        assert!(sshd.get(field).is_some(), "{field} missing");
    }
    assert_eq!(
        sshd.as_object().unwrap().len(),
        5,
        "an undocumented field: {sshd}"
    );
}

/// On a terminal, test-filter shows a progress line while it reads a large
/// file (lines, percentage, lines/s) and erases it; piped, or with stderr
/// not a terminal, nothing. The terminal is a real pty (script(1)).
#[test]
fn test_filter_shows_progress_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    // Enough lines that even a fast machine reads for several times the
    // progress line's quiet half second (30,000 took 0.48 s here once the
    // filter got faster: the line was never drawn).
    let mut text = String::new();
    for i in 0..150_000 {
        text.push_str(&format!(
            "Feb 25 14:34:{:02} srv sshd[{i}]: Failed password for root from 192.0.2.{} port 22 ssh2\n",
            i % 60,
            i % 250
        ));
    }
    std::fs::write(&log, text).unwrap();
    let bin = env!("CARGO_BIN_EXE_jailwarden");
    let on_tty = |shell: &str| {
        let o = Command::new("script")
            .args(["-qec", shell, "/dev/null"])
            .env("JAILWARDEN_FILTER_PATH", filters())
            .stdin(Stdio::null())
            .output()
            .expect("script (util-linux)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let log = log.display();
    let screen = on_tty(&format!(
        "{bin} test-filter sshd {log} --format tsv > /dev/null"
    ));
    let frames: Vec<&str> = screen
        .split('\r')
        .filter(|f| f.contains(" lines/s"))
        .collect();
    assert!(
        !frames.is_empty(),
        "no progress line on the terminal: {screen:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.contains('%') && f.contains(" lines ") && f.contains("left")),
        "{frames:?}"
    );
    assert!(
        screen.ends_with("\r\x1b[K"),
        "the line is erased at the end: {screen:?}"
    );
    // The summary on the same terminal starts on a clean line.
    let screen = on_tty(&format!("{bin} test-filter sshd {log}"));
    assert!(
        screen.contains("\x1b[KFilter:") || screen.contains("\nFilter:"),
        "{screen:?}"
    );
    // Piped stdout, or stderr not a terminal: no progress at all.
    let piped = on_tty(&format!(
        "{bin} test-filter sshd {log} --format tsv | tail -1"
    ));
    assert!(
        !piped.contains("lines/s") && !piped.contains('\x1b'),
        "{piped:?}"
    );
    let out = jailwarden(
        &[
            "test-filter",
            "sshd",
            &log.to_string(),
            "--filter-dir",
            &filters(),
        ],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.is_empty(),
        "progress written when stderr is no terminal: {err:?}"
    );
}
