//! The lines Debian 12's real servers wrote under attack (captured by
//! tests/real with `JW_REAL_CAPTURE=1`, kept in tests/real/fixtures with
//! their provenance in each file's header), replayed through the shipped
//! filters and a jail's counting: no root, no servers, in milliseconds.
//!
//! A fixture's header names, per jail, the filter and mode it uses and the
//! failed attempts each client made (`# expect: ADDR=N ...`). Replayed in
//! order, the filter and the jail's counting (roles `repeat` included)
//! must find exactly those: one attempt one failure, however many lines
//! tell it, and no other address (forged Host headers name a bystander).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jailwarden::addr::{AddrList, Host};
use jailwarden::config::reader::Diagnostics;
use jailwarden::filter::date::DateFinder;
use jailwarden::filter::def::FilterPath;
use jailwarden::filter::{Filter, FilterLoader, Outcome};
use jailwarden::jail::{Decision, Jail, Limits};
use jiff::Timestamp;
use jiff::tz::TimeZone;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn filter(name: &str, mode: &str) -> Arc<Filter> {
    let loader = FilterLoader::new(FilterPath::new(vec![repo().join("config/filters")]));
    let diags = Diagnostics::new();
    let f = loader.compile(name, mode, &diags);
    let problems: Vec<String> = diags.into_sorted().iter().map(|d| d.to_string()).collect();
    match f {
        Some(f) if problems.is_empty() => Arc::new(f),
        _ => panic!("filter {name} mode {mode}: {problems:?}"),
    }
}

struct JailSpec {
    jail: String,
    filter: String,
    mode: String,
    expect: BTreeMap<String, u32>,
}

struct Fixture {
    name: String,
    jails: Vec<JailSpec>,
    lines: Vec<Vec<u8>>,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("{key}: "))? + key.len() + 2;
    line[start..].split_whitespace().next()
}

fn read(path: &Path) -> Fixture {
    let bytes = std::fs::read(path).expect("read fixture");
    let mut jails: Vec<JailSpec> = Vec::new();
    let mut lines = Vec::new();
    for raw in bytes.split(|b| *b == b'\n') {
        if raw.is_empty() {
            continue;
        }
        if raw.starts_with(b"# ") {
            let text = String::from_utf8_lossy(raw);
            if let Some(rest) = text.strip_prefix("# jail: ") {
                let jail = rest.split_whitespace().next().unwrap_or("").to_string();
                jails.push(JailSpec {
                    jail,
                    filter: field(&text, "filter").expect("filter:").to_string(),
                    mode: field(&text, "mode").expect("mode:").to_string(),
                    expect: BTreeMap::new(),
                });
            } else if let Some(rest) = text.strip_prefix("# expect: ") {
                let j = jails.last_mut().expect("# expect after # jail");
                for pair in rest.split_whitespace() {
                    let (a, n) = pair.split_once('=').expect("ADDR=N");
                    j.expect.insert(a.to_string(), n.parse().expect("count"));
                }
            }
            continue;
        }
        lines.push(raw.to_vec());
    }
    Fixture {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        jails,
        lines,
    }
}

fn fixtures() -> Vec<Fixture> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/real/fixtures"))
        .expect("tests/real/fixtures")
        .flatten()
        .map(|e| e.path())
        .collect();
    paths.sort();
    paths.iter().map(|p| read(p)).collect()
}

/// Failures per address as a jail (no ban, window wide open) counts
/// them from `lines` through `filter` in `mode`.
fn counted(lines: &[Vec<u8>], filter: &Arc<Filter>) -> BTreeMap<String, u32> {
    // The fixtures are from 2026: "now" is after every line.
    let now = Timestamp::from_second(4_102_444_800).expect("2100");
    let mut m = filter.matcher(DateFinder::new(TimeZone::UTC, now));
    let mut jail = Jail::new(
        Limits {
            findtime: Duration::from_secs(100 * 365 * 86_400),
            maxretry: u32::MAX,
            maxtracked: 100_000,
        },
        AddrList::new(),
    );
    let mut out: BTreeMap<String, u32> = BTreeMap::new();
    for line in lines {
        let Outcome::Matched {
            failure: Some(f), ..
        } = m.file_line(line)
        else {
            continue;
        };
        let Host::Addr(addr) = f.host else {
            panic!(
                "a host name from {}: {}",
                filter.name(),
                String::from_utf8_lossy(line)
            );
        };
        let addr: IpAddr = jailwarden::addr::canonical(addr);
        let time = f.time.unwrap_or(now);
        let decision = if f.repeat {
            jail.record_repeat(addr, time, now)
        } else {
            jail.record(addr, time, f.attempts, now)
        };
        if decision != Decision::Alone {
            *out.entry(addr.to_string()).or_insert(0) += if f.repeat { 1 } else { f.attempts };
        }
    }
    out
}

#[test]
fn real_daemons_lines_count_one_failure_per_attempt() {
    let all = fixtures();
    assert!(!all.is_empty(), "no fixtures in tests/real/fixtures");
    let mut problems = Vec::new();
    let mut checked = 0;
    for fx in &all {
        assert!(!fx.jails.is_empty(), "{}: no `# jail:` header", fx.name);
        for j in &fx.jails {
            if j.expect.is_empty() {
                problems.push(format!("{} / {}: no expectations", fx.name, j.jail));
                continue;
            }
            let f = filter(&j.filter, &j.mode);
            let got = counted(&fx.lines, &f);
            let want: BTreeMap<String, u32> = j.expect.clone();
            if got != want {
                problems.push(format!(
                    "{} / jail {} ({} mode {}): counted {got:?}, the clients made {want:?}",
                    fx.name, j.jail, j.filter, j.mode
                ));
            }
            checked += 1;
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {checked} jails:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// lighttpd writes the client and then the Host header the client sent
/// (`%h %V %u %t ...`). The attackers' requests named the bystander in
/// it: in the filters' normal mode such lines read two ways (a virtual
/// host and a client) and count for nobody, the bystander least of all;
/// the jails for lighttpd use mode `lighttpd` (checked above).
#[test]
fn lighttpd_host_headers_never_choose_the_ban() {
    let fx = fixtures()
        .into_iter()
        .find(|f| f.name == "lighttpd.access.log")
        .expect("tests/real/fixtures/lighttpd.access.log");
    let forged = fx
        .lines
        .iter()
        .filter(|l| {
            let t = String::from_utf8_lossy(l);
            let mut fields = t.split(' ');
            let (client, host) = (fields.next(), fields.next());
            client.is_some() && host.is_some_and(|h| h.starts_with("192.0.2.")) && client != host
        })
        .count();
    assert!(forged > 0, "the fixture has no forged Host headers");
    for name in [
        "apache-badbots",
        "nginx-botsearch",
        "apache-fakegooglebot",
        "nginx-bad-request",
    ] {
        let got = counted(&fx.lines, &filter(name, "normal"));
        assert!(
            got.is_empty(),
            "{name} (normal mode) on lighttpd's access log counted {got:?}"
        );
    }
}
