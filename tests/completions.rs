//! Shell completion in the real shells: the scripts `make install` puts in
//! the vendor directories are loaded the way each shell loads them
//! (bash-completion's loader, zsh's autoload from $fpath, fish's
//! vendor_completions.d), asked for candidates, and the candidates
//! checked: subcommands, options, filter names from the filter path, jail
//! names from a running daemon (over its control socket) and from the
//! configuration when none runs.
//!
//! Needs bash + bash-completion, zsh, fish (each shell's test says so
//! if it is missing; none is skipped silently); no root.

mod bus_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use bus_support::{Daemon, DaemonSpec, no_bus};

const BIN: &str = env!("CARGO_BIN_EXE_jailwarden");

/// The scripts installed by `make install DESTDIR=...`, and a filter
/// directory holding one filter of our own.
struct Installed {
    dest: tempfile::TempDir,
}

impl Installed {
    fn new() -> Installed {
        let dest = tempfile::tempdir().expect("tempdir");
        let o = Command::new("make")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["--no-print-directory", "install", "NO_BUILD=1"])
            .arg(format!("BIN={BIN}"))
            .arg(format!("DESTDIR={}", dest.path().display()))
            .output()
            .expect("make");
        assert!(
            o.status.success(),
            "make install: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let filters = dest.path().join("myfilters");
        std::fs::create_dir_all(&filters).unwrap();
        std::fs::write(
            filters.join("zz-local-service.toml"),
            "failregex = ['^bad from <HOST>$']\n",
        )
        .unwrap();
        Installed { dest }
    }

    fn share(&self) -> PathBuf {
        self.dest.path().join("usr/share")
    }

    fn filters(&self) -> PathBuf {
        self.dest.path().join("myfilters")
    }

    /// A shell command with the binary first on PATH, the test filter
    /// directory on the filter path, and no daemon reachable unless the
    /// caller sets JAILWARDEN_SOCKET.
    fn shell(&self, program: &str) -> Command {
        let bin_dir = Path::new(BIN).parent().unwrap();
        let path = format!("{}:/usr/bin:/bin", bin_dir.display());
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", path)
            .env("HOME", self.dest.path())
            .env("LANG", "C.UTF-8")
            .env("JAILWARDEN_FILTER_PATH", self.filters())
            .env("JAILWARDEN_SOCKET", self.dest.path().join("no-daemon.sock"))
            .env("DBUS_SYSTEM_BUS_ADDRESS", no_bus(self.dest.path()));
        c
    }
}

fn shell_present(program: &str) -> bool {
    let found = Command::new(program)
        .arg("-c")
        .arg("true")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        panic!("{program} is not installed (Debian package {program}): this test needs it");
    }
    found
}

fn output(mut c: Command) -> Vec<String> {
    let o = c.output().expect("run the shell");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "shell failed: {err}");
    assert!(
        err.trim().is_empty(),
        "the completion printed errors: {err}"
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Candidates bash offers for the words `line` (the last one being
/// completed), with the script loaded by bash-completion's own loader from
/// the installed vendor directory.
fn bash(inst: &Installed, line: &[&str], extra_env: &[(&str, &str)]) -> Vec<String> {
    let script = r#"
        set -e
        . /usr/share/bash-completion/bash_completion
        __load_completion jailwarden
        spec=$(complete -p jailwarden)
        fn=${spec##*-F }; fn=${fn%% *}
        COMP_WORDS=("$@")
        COMP_CWORD=$(( $# - 1 ))
        COMP_LINE="$*"
        COMP_POINT=${#COMP_LINE}
        COMP_TYPE=9
        "$fn" jailwarden "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let mut c = inst.shell("bash");
    c.env("XDG_DATA_DIRS", inst.share())
        .env("BASH_COMPLETION_USER_DIR", inst.dest.path().join("none"))
        .args(["--norc", "--noprofile", "-c", script, "bash"])
        .args(line);
    for (k, v) in extra_env {
        c.env(k, v);
    }
    output(c)
}

fn zsh(inst: &Installed, line: &[&str]) -> Vec<String> {
    // The installed _jailwarden autoloaded from $fpath as compinit would;
    // _describe (zsh's display) replaced by one that prints the candidates.
    let script = r#"
        fpath=("$1" $fpath); shift
        autoload -Uz _jailwarden
        compdef() { : }
        _describe() { local arr=${@[-1]}; print -l -- ${(P)arr} }
        words=("$@"); CURRENT=$#
        _jailwarden
    "#;
    let mut c = inst.shell("zsh");
    c.args(["-f", "-c", script, "zsh"])
        .arg(inst.share().join("zsh/vendor-completions"))
        .args(line);
    output(c)
        .into_iter()
        .map(|l| l.split(':').next().unwrap_or("").replace("\\:", ":"))
        .collect()
}

fn fish(inst: &Installed, line: &str) -> Vec<String> {
    // fish loads vendor_completions.d of every $XDG_DATA_DIRS entry.
    let mut c = inst.shell("fish");
    c.env("XDG_DATA_DIRS", inst.share())
        .env("XDG_CONFIG_HOME", inst.dest.path().join("config"))
        .args(["--no-config", "-c"])
        .arg(format!(
            "set -p fish_complete_path {}/fish/vendor_completions.d; complete -C '{line}'",
            inst.share().display()
        ));
    output(c)
}

fn has(c: &[String], want: &[&str]) {
    for w in want {
        assert!(c.iter().any(|x| x == w), "{w} missing from {c:?}");
    }
}

#[test]
fn bash_completes_commands_options_filters_and_jails() {
    shell_present("bash");
    assert!(
        Path::new("/usr/share/bash-completion/bash_completion").exists(),
        "package bash-completion is needed for this test"
    );
    let inst = Installed::new();
    let c = bash(&inst, &["jailwarden", ""], &[]);
    has(
        &c,
        &[
            "status",
            "bans",
            "ban",
            "unban",
            "test-filter",
            "check-config",
            "filters",
            "reload",
            "report",
        ],
    );
    assert!(
        !c.iter().any(|x| x == "generate"),
        "hidden command offered: {c:?}"
    );
    assert_eq!(bash(&inst, &["jailwarden", "test-f"], &[]), ["test-filter"]);
    has(
        &bash(&inst, &["jailwarden", "status", "--"], &[]),
        &["--json", "--socket"],
    );
    has(
        &bash(&inst, &["jailwarden", "test-filter", "--format", ""], &[]),
        &["text", "tsv", "json"],
    );
    // Filter names from the filter path ($JAILWARDEN_FILTER_PATH here).
    assert_eq!(
        bash(&inst, &["jailwarden", "test-filter", "zz-"], &[]),
        ["zz-local-service"]
    );
    has(
        &bash(&inst, &["jailwarden", "test-filter", ""], &[]),
        &["zz-local-service", "sshd"],
    );

    // Jail names from the running daemon, over its control socket.
    let daemon = Daemon::start(DaemonSpec::default());
    let sock = daemon.socket().display().to_string();
    let env = [("JAILWARDEN_SOCKET", sock.as_str())];
    let jails = bash(&inst, &["jailwarden", "status", ""], &env);
    has(&jails, &["sshd", "nginx-http-auth", "web"]);
    assert_eq!(
        bash(&inst, &["jailwarden", "ban", "ngi"], &env),
        ["nginx-http-auth"]
    );
    assert_eq!(
        bash(&inst, &["jailwarden", "bans", "--jail", "ss"], &env),
        ["sshd"]
    );
    has(
        &bash(&inst, &["jailwarden", "unban", "--jail", ""], &env),
        &["sshd", "web"],
    );
    drop(daemon);
    // No daemon: nothing from it, and no error on the terminal.
    let none = bash(&inst, &["jailwarden", "status", ""], &env);
    assert!(!none.iter().any(|x| x == "nginx-http-auth"), "{none:?}");
}

#[test]
fn zsh_completes_from_the_autoloaded_vendor_file() {
    shell_present("zsh");
    let inst = Installed::new();
    let c = zsh(&inst, &["jailwarden", ""]);
    has(&c, &["status", "test-filter", "unban"]);
    assert_eq!(zsh(&inst, &["jailwarden", "check-c"]), ["check-config"]);
    assert_eq!(
        zsh(&inst, &["jailwarden", "test-filter", "zz-"]),
        ["zz-local-service"]
    );
    has(
        &zsh(&inst, &["jailwarden", "unban", "--"]),
        &["--jail", "--all", "--socket"],
    );
}

#[test]
fn fish_completes_from_vendor_completions() {
    shell_present("fish");
    let inst = Installed::new();
    let c = fish(&inst, "jailwarden ");
    has(&c, &["status", "test-filter", "unban"]);
    assert_eq!(
        fish(&inst, "jailwarden test-filter zz-"),
        ["zz-local-service"]
    );
    has(
        &fish(&inst, "jailwarden test-filter --format "),
        &["text", "tsv", "json"],
    );
    has(
        &fish(&inst, "jailwarden status --"),
        &["--json", "--socket"],
    );
}
