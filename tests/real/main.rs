//! tests/real: Debian 12's real servers under attack by real clients, with
//! the built jailwarden following their logs and banning in nftables.
//!
//! Each service runs in a lab of its own (lab.rs): a server and a client
//! network namespace joined by a veth, and a private mount namespace over
//! the host's files (plus, for packages that conflict with the host's,
//! a layer where apt installed them: layers.sh), so stock Debian paths
//! (/var/log/apache2, /run/..., /dev/log) are the lab's own. All labs log
//! into one private journald, run in parallel, and are torn down by PID.
//! scenario.rs says what is checked for every jail; services.rs how each
//! daemon is set up and attacked.
//!
//! The suite prints a table (service | version | attempts | counted |
//! banned after | wrong host) to stderr and to
//! `target/tmp/tests-real-report.txt`, and keeps the lines every daemon
//! wrote in the suite's directory; with `JW_REAL_CAPTURE=1` it writes them
//! to tests/real/fixtures/ with their provenance (tests/real_fixtures.rs
//! checks those without root). `JW_REAL_ONLY=sshd,postfix` runs a subset;
//! `JW_REAL_KEEP=1` keeps the suite's directory.
//!
//! Needs root (namespaces, mounts, nftables) and the packages of
//! .ci/packages/real-servers.txt; says so, and does not run, without root.

#[path = "../support/mod.rs"]
mod support;

mod lab;
mod scenario;
mod services;

use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::process::Command;

use lab::{LAYERS, Lab, Suite, here, repo};
use scenario::{Capture, Row, Warden, run_jail};
use services::Service;

#[test]
fn real_servers_under_attack() {
    if !rustix::process::geteuid().is_root() {
        let _ = writeln!(
            std::io::stderr(),
            "tests/real: NOT RUN: it needs root (network and mount namespaces, nftables, real servers); \
             run `sudo cargo test --test real` on a machine set up by .ci/run"
        );
        return;
    }
    let only: Option<Vec<String>> = std::env::var("JW_REAL_ONLY")
        .ok()
        .map(|s| s.split(',').map(str::to_string).collect());
    let services: Vec<Box<dyn Service>> = services::all()
        .into_iter()
        .filter(|s| {
            only.as_ref()
                .is_none_or(|o| o.iter().any(|n| n == s.name()))
        })
        .collect();
    assert!(!services.is_empty(), "JW_REAL_ONLY names no service");
    build_layers(&services);
    let mut suite = Suite::new();
    let results: Vec<(String, Result<Vec<Row>, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = services
            .iter()
            .enumerate()
            .map(|(i, svc)| {
                let suite = &suite;
                scope.spawn(move || {
                    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        run_service(suite, i, svc.as_ref())
                    }))
                    .map_err(|p| {
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_else(|| "panicked".into())
                    });
                    (svc.name().to_string(), r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("service thread"))
            .collect()
    });
    let _ = std::fs::write(suite.dir.join("journal.txt"), suite.journal_text(&[]));
    let report = report(&suite, &results);
    let _ = std::io::stderr().write_all(report.as_bytes());
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("tests-real-report.txt"),
        &report,
    );
    if std::env::var_os("JW_REAL_KEEP").is_some() {
        let _ = writeln!(
            std::io::stderr(),
            "tests/real: kept {}",
            suite.dir.display()
        );
        suite.keep_dir();
    }
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(failed.is_empty(), "tests/real:\n{}", failed.join("\n"));
}

/// The package layers the services need (built once; .ci/setup.d does it
/// on CI).
fn build_layers(services: &[Box<dyn Service>]) {
    let mut groups: Vec<&str> = services.iter().map(|s| s.group()).collect();
    groups.sort_unstable();
    groups.dedup();
    let status = Command::new(here().join("layers.sh"))
        .arg(LAYERS)
        .args(&groups)
        .status()
        .expect("run tests/real/layers.sh");
    assert!(
        status.success(),
        "tests/real/layers.sh {LAYERS} {} failed: the servers' package layers are missing (apt-get update, network to the Debian mirror?)",
        groups.join(" ")
    );
}

/// Labs starting their daemons at once: 2 cores cannot start a dozen
/// servers together without some taking a minute.
const STARTING_AT_ONCE: usize = 4;
static STARTING: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
static STARTED: std::sync::Condvar = std::sync::Condvar::new();

fn run_service(suite: &Suite, index: usize, svc: &dyn Service) -> Vec<Row> {
    {
        let mut n = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= STARTING_AT_ONCE {
            n = STARTED.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
    }
    struct Started;
    impl Drop for Started {
        fn drop(&mut self) {
            *STARTING.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
            STARTED.notify_one();
        }
    }
    let starting = Started;
    let lab = Lab::new(suite, index, svc.name(), svc.group());
    svc.start(&lab);
    drop(starting);
    if let Some(secs) = std::env::var("JW_REAL_PAUSE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        // Debugging: the lab stays up (bounded) for a look from outside.
        let _ = writeln!(
            std::io::stderr(),
            "tests/real: {} paused {secs} s: sandbox {}, netns {} / {}",
            lab.name,
            lab.keeper_pid(),
            lab.server_ns,
            lab.client_ns
        );
        std::thread::sleep(std::time::Duration::from_secs(secs.min(900)));
    }
    let version_of = |package: &str| {
        String::from_utf8_lossy(
            &lab.sh(&format!("dpkg-query -W -f '${{Version}}' {package}"))
                .stdout,
        )
        .trim()
        .to_string()
    };
    let tests = svc.jails();
    let warden = Warden::start(&lab, &tests);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        std::thread::scope(|scope| {
            let handles: Vec<_> = tests
                .iter()
                .enumerate()
                .map(|(j, t)| {
                    let warden = &warden;
                    let version = version_of(t.package.unwrap_or(svc.package()));
                    scope.spawn(move || run_jail(warden, t, j, &version))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect::<Vec<Row>>()
        })
    }));
    // Checks of the service's own, once the common ones passed.
    let outcome = outcome.and_then(|mut rows| {
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            for mut row in svc.extra(&warden) {
                row.version = version_of(svc.package());
                rows.push(row);
            }
            rows
        }))
    });
    // What the daemons wrote is worth keeping, above all when a check failed.
    keep_fixtures(
        &lab,
        svc,
        &tests,
        outcome.as_ref().ok().map(Vec::as_slice),
        &version_of,
    );
    svc.stop(&lab);
    outcome.unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Save what the daemon wrote: always in the suite's directory; into
/// tests/real/fixtures with JW_REAL_CAPTURE=1.
fn keep_fixtures(
    lab: &Lab,
    svc: &dyn Service,
    tests: &[scenario::JailTest],
    rows: Option<&[Row]>,
    version_of: &dyn Fn(&str) -> String,
) {
    let capture = std::env::var_os("JW_REAL_CAPTURE").is_some();
    let mut sources: Vec<&Capture> = tests.iter().map(|t| &t.source).collect();
    sources.dedup();
    for source in sources {
        let body = match source {
            Capture::Journal(_, matches) => lab.suite.journal_text(matches).into_bytes(),
            Capture::File(path) => lab.file(path).unwrap_or_default(),
        };
        let name = source.fixture_name(svc.name());
        let package = tests
            .iter()
            .find(|t| &t.source == source)
            .and_then(|t| t.package)
            .unwrap_or(svc.package());
        let mut head = String::new();
        head.push_str(&format!(
            "# tests/real fixture: what {package} {} wrote on Debian 12 under attack by real clients.\n",
            version_of(package)
        ));
        head.push_str(&format!("# configuration: {}\n", svc.config_note()));
        head.push_str(&match source {
            Capture::Journal(_, matches) => format!(
                "# source: the journal, journalctl -o short-iso {}\n",
                matches.join(" ")
            ),
            Capture::File(path) => format!("# source: {path}\n"),
        });
        for (i, t) in tests
            .iter()
            .enumerate()
            .filter(|(_, t)| &t.source == source)
        {
            let filter = jail_filter(t.jail);
            head.push_str(&format!(
                "# jail: {} filter: {} mode: {} clients: {}\n",
                t.jail, filter.0, filter.1, t.what
            ));
            // The jail's own checks (row i) and any extra ones on it.
            let extra = format!("{} (", t.jail);
            let mine: Vec<&Row> = rows
                .into_iter()
                .flatten()
                .enumerate()
                .filter(|(k, r)| *k == i || r.jail.starts_with(&extra))
                .map(|(_, r)| r)
                .collect();
            if mine.is_empty() {
                head.push_str("# expect: (the run failed: no expectations)\n");
            } else {
                let mut expect = std::collections::BTreeMap::new();
                for r in mine {
                    expect.extend(r.expected.iter().map(|(a, n)| (a.clone(), *n)));
                }
                let expect: Vec<String> = expect.iter().map(|(a, n)| format!("{a}={n}")).collect();
                head.push_str(&format!("# expect: {}\n", expect.join(" ")));
            }
        }
        let mut text = head.into_bytes();
        text.extend_from_slice(&body);
        let _ = std::fs::write(lab.dir.join(&name), &text);
        if capture && rows.is_some() {
            let dir = repo().join("tests/real/fixtures");
            let _ = std::fs::create_dir_all(&dir);
            std::fs::write(dir.join(&name), &text).expect("write fixture");
        }
    }
}

/// The filter and mode a jail uses, from the shipped configuration.
fn jail_filter(jail: &str) -> (String, String) {
    // The example files and the main file are TOML; read them loosely.
    let mut files = vec![repo().join("config/jailwarden.toml")];
    if let Ok(dir) = std::fs::read_dir(repo().join("config/jail.d/examples")) {
        files.extend(dir.flatten().map(|e| e.path()));
    }
    let (mut filter, mut mode) = (jail.to_string(), "normal".to_string());
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let Ok(v) = text.parse::<toml::Table>() else {
            continue;
        };
        if let Some(j) = v.get("jails").and_then(|j| j.get(jail)) {
            if let Some(f) = j.get("filter").and_then(|f| f.as_str()) {
                filter = f.to_string();
            }
            if let Some(m) = j.get("mode").and_then(|m| m.as_str()) {
                mode = m.to_string();
            }
        }
    }
    (filter, mode)
}

fn report(suite: &Suite, results: &[(String, Result<Vec<Row>, String>)]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "\ntests/real: {} services in {:.0} s\n\n",
        results.len(),
        suite.elapsed()
    ));
    out.push_str(
        "| service | jail | version | attempts | counted | banned after | wrong host | s |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for (name, r) in results {
        match r {
            Ok(rows) => {
                for row in rows {
                    out.push_str(&format!(
                        "| {} | {} | {} | {} | {} | {} | {} | {:.0} |\n",
                        row.service,
                        row.jail,
                        row.version,
                        row.attempts,
                        row.counted,
                        row.banned_after
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                        if row.wrong_hosts.is_empty() {
                            "0".to_string()
                        } else {
                            format!("{} ({})", row.wrong_hosts.len(), row.wrong_hosts.join(" "))
                        },
                        row.seconds
                    ));
                }
            }
            Err(e) => {
                let first = e.lines().next().unwrap_or("");
                out.push_str(&format!("| {name} | FAILED: {first} | | | | | | |\n"));
            }
        }
    }
    out.push_str("\nclients, per jail:\n");
    for (_, r) in results {
        for row in r.iter().flatten() {
            out.push_str(&format!(
                "- {}/{} (maxretry {}): {}\n",
                row.service, row.jail, row.maxretry, row.what
            ));
        }
    }
    out.push_str("\nattempts: failed attempts the clients made (attackers maxretry each, the real user maxretry - 1);\n");
    out.push_str("counted: failures the jail counted (total_failed); banned after: the ban events' failure counts;\n");
    out.push_str("wrong host: addresses counted or banned that made no failed attempt (forged headers name the bystander).\n");
    out
}
