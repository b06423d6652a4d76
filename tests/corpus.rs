//! The corpus test: every annotation of Fail2ban's sample logs
//! (tests/corpus, provenance in tests/corpus/PROVENANCE.md) against our
//! shipped filters.
//!
//! Each `# failJSON:` annotation says whether the next line must produce a
//! failure, and with which host, time (local time in CET/CEST, year-less
//! dates resolved against 2005-08-14 12:00 CEST), user(s) and attempts.
//! Every line of a file goes through the filter in order (multi-line
//! stories need the lines between), once per `filterOptions` set.
//!
//! The test prints one line per file and the overall pass rate. It fails on
//! any mismatch not listed in tests/corpus-known-failures.txt, and on any
//! listed one that now passes (so the list stays true). Files without a
//! shipped filter are listed with the reason in tests/corpus-skipped.txt.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jailwarden::config::reader::Diagnostics;
use jailwarden::filter::date::DateFinder;
use jailwarden::filter::def::FilterPath;
use jailwarden::filter::{Filter, FilterLoader, Matcher, Outcome};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Map, Value};

const TZ: &str = "CET-01CEST-02,M3.5.0,M10.5.0";
const NOW: i64 = 1_124_013_600;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Annotation {
    file: String,
    line_no: usize,
    json: Map<String, Value>,
}

/// A line to feed, with its annotation if any.
struct Line {
    text: Vec<u8>,
    annotation: Option<usize>,
}

/// One block of lines sharing a list of option sets.
struct Block {
    options: Vec<Map<String, Value>>,
    lines: Vec<Line>,
}

struct Parsed {
    blocks: Vec<Block>,
    annotations: Vec<Annotation>,
    bad_json: Vec<String>,
    disabled: usize,
}

fn parse_options(text: &str) -> Option<Vec<Map<String, Value>>> {
    match serde_json::from_str::<Value>(text.trim()).ok()? {
        Value::Object(o) => Some(vec![o]),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::Object(o) => Some(o),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Parse a corpus file (and the files it adds) into blocks.
fn parse(dir: &Path, name: &str, parsed: &mut Parsed, file_options: &Map<String, Value>) {
    let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut file_options = file_options.clone();
    let mut options = vec![file_options.clone()];
    let mut block = Block {
        options: options.clone(),
        lines: Vec::new(),
    };
    let mut pending: Option<usize> = None;
    let mut adds = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let text = String::from_utf8_lossy(raw);
        // "#failJSON:" (no space) counts too; "# #_dis_failJSON:" is disabled.
        let annotation = text
            .strip_prefix('#')
            .map(str::trim_start)
            .and_then(|t| t.strip_prefix("failJSON:"));
        if text.contains("_dis_failJSON:") {
            parsed.disabled += 1;
            continue;
        }
        if let Some(rest) = annotation {
            match serde_json::from_str::<Value>(rest.trim()) {
                Ok(Value::Object(json)) => {
                    parsed.annotations.push(Annotation {
                        file: name.to_string(),
                        line_no: i + 2,
                        json,
                    });
                    pending = Some(parsed.annotations.len() - 1);
                }
                _ => {
                    parsed.bad_json.push(format!("{name}:{}", i + 1));
                    pending = None;
                }
            }
            continue;
        }
        if let Some(pos) = text.find("# filterOptions:") {
            let sets = parse_options(&text[pos + "# filterOptions:".len()..])
                .unwrap_or_else(|| panic!("{name}:{}: bad filterOptions", i + 1));
            options = sets
                .into_iter()
                .map(|mut o| {
                    for (k, v) in &file_options {
                        o.entry(k.clone()).or_insert(v.clone());
                    }
                    o
                })
                .collect();
            parsed.blocks.push(std::mem::replace(
                &mut block,
                Block {
                    options: options.clone(),
                    lines: Vec::new(),
                },
            ));
            continue;
        }
        if let Some(rest) = text.strip_prefix("# fileOptions:") {
            let sets = parse_options(rest).expect("fileOptions");
            file_options = sets.into_iter().next().unwrap_or_default();
            options = vec![file_options.clone()];
            // Like Fail2ban's test: the options hold for filters set up
            // after this line, not for a block already under way
            // (vsftpd's journal samples come after file lines).
            if block.lines.is_empty() {
                block.options = options.clone();
            }
            continue;
        }
        if let Some(rest) = text.strip_prefix("# addFILE:") {
            let add: String = serde_json::from_str(rest.trim()).expect("addFILE");
            adds.push(add);
            continue;
        }
        if text.starts_with('#') || text.trim().is_empty() {
            continue;
        }
        block.lines.push(Line {
            text: raw.to_vec(),
            annotation: pending.take(),
        });
    }
    parsed.blocks.push(block);
    for add in adds {
        parse(dir, &add, parsed, &Map::new());
    }
}

/// Evaluate the few condition forms the corpus uses.
fn condition(expr: &str, name: &str, opts: &Map<String, Value>) -> bool {
    let expr = expr.replace(' ', "");
    let (lhs, rhs, eq) = if let Some((l, r)) = expr.split_once("==") {
        (l.to_string(), r.to_string(), true)
    } else if let Some((l, r)) = expr.split_once("!=") {
        (l.to_string(), r.to_string(), false)
    } else {
        panic!("condition {expr:?}")
    };
    let rhs = rhs.trim_matches('\'').to_string();
    let value = match lhs.as_str() {
        "name" => Some(name.to_string()),
        "opts.get('mode')" => opts.get("mode").and_then(Value::as_str).map(str::to_string),
        other => panic!("condition on {other:?}"),
    };
    (value.as_deref() == Some(rhs.as_str())) == eq
}

/// Zero-pad the date's fields, as Fail2ban's strptime reads them
/// (postfix writes one annotation as `2005-03-7T02:09:33`).
fn pad_time(want: &str) -> String {
    match want.split_once('T') {
        Some((date, time)) => {
            let date: Vec<String> = date
                .split('-')
                .map(|p| {
                    if p.len() == 1 {
                        format!("0{p}")
                    } else {
                        p.to_string()
                    }
                })
                .collect();
            format!("{}T{time}", date.join("-"))
        }
        None => want.to_string(),
    }
}

fn local(t: Timestamp, tz: &TimeZone, frac: bool) -> String {
    let dt = tz.to_datetime(t);
    if frac {
        dt.strftime("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    } else {
        dt.strftime("%Y-%m-%dT%H:%M:%S").to_string()
    }
}

/// Check one outcome against an annotation; `Err` says why not.
fn check(a: &Annotation, out: &Outcome, tz: &TimeZone) -> Result<(), String> {
    let want_match = a
        .json
        .get("match")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let failure = match out {
        Outcome::Matched {
            failure: Some(f), ..
        } => Some(f),
        _ => None,
    };
    let Some(f) = failure else {
        return if want_match {
            Err(format!("no failure ({out:?})"))
        } else {
            Ok(())
        };
    };
    if !want_match {
        return Err(format!(
            "unexpected failure {} [regex #{}]",
            f.host_text, f.regex
        ));
    }
    let host = ["host", "ip4", "ip6"]
        .iter()
        .find_map(|k| a.json.get(*k).and_then(Value::as_str));
    if let Some(h) = host {
        let same = h == f.host_text || jailwarden::addr::parse_host(h).is_some_and(|p| p == f.host);
        if !same {
            return Err(format!(
                "host {} (regex #{}), want {h}",
                f.host_text, f.regex
            ));
        }
    }
    if let Some(want) = a.json.get("time").and_then(Value::as_str) {
        let Some(t) = f.time else {
            return Err("no time".into());
        };
        let got = local(t, tz, want.contains('.'));
        let want = pad_time(want);
        let want_cmp = if want.contains('.') {
            format!("{want:0<26}")
        } else {
            want.clone()
        };
        if got != want_cmp {
            return Err(format!("time {got}, want {want}"));
        }
    }
    if let Some(want) = a.json.get("user").and_then(Value::as_str) {
        if f.user.as_deref() != Some(want) {
            return Err(format!("user {:?}, want {want:?}", f.user));
        }
    }
    if let Some(want) = a.json.get("users").and_then(Value::as_array) {
        let mut want: Vec<&str> = want.iter().filter_map(Value::as_str).collect();
        let mut got: Vec<&str> = f.users.iter().map(String::as_str).collect();
        want.sort_unstable();
        got.sort_unstable();
        if want != got {
            return Err(format!("users {got:?}, want {want:?}"));
        }
    }
    if let Some(want) = a.json.get("attempts").and_then(Value::as_u64) {
        if u64::from(f.attempts) != want {
            return Err(format!("attempts {}, want {want}", f.attempts));
        }
    }
    Ok(())
}

/// Run one corpus file through its filter; returns failed annotations
/// (index → reason) and the number checked.
fn run_file(
    loader: &FilterLoader,
    dir: &Path,
    name: &str,
    parsed: &Parsed,
) -> BTreeMap<usize, String> {
    let tz = TimeZone::posix(TZ).expect("tz");
    let now = Timestamp::from_second(NOW).expect("now");
    let mut failed: BTreeMap<usize, String> = BTreeMap::new();
    let mut filters: HashMap<String, Result<Arc<Filter>, String>> = HashMap::new();
    let mut matchers: HashMap<String, Matcher> = HashMap::new();
    // Per matcher, each address's last counted failure (for role repeat).
    let mut counted: HashMap<String, HashMap<jailwarden::addr::Host, Option<Timestamp>>> =
        HashMap::new();
    let _ = dir;
    for block in &parsed.blocks {
        for opts in &block.options {
            if let Some(cond) = opts.get("test.condition").and_then(Value::as_str) {
                if !condition(cond, name, opts) {
                    continue;
                }
            }
            let mode = opts
                .get("mode")
                .and_then(Value::as_str)
                .unwrap_or("normal")
                .to_string();
            let journal = opts.get("logtype").and_then(Value::as_str) == Some("journal");
            let key = serde_json::to_string(opts).unwrap_or_default();
            let filter = filters
                .entry(mode.clone())
                .or_insert_with(|| {
                    let diags = Diagnostics::new();
                    loader
                        .compile(name, &mode, &diags)
                        .map(Arc::new)
                        .ok_or_else(|| {
                            diags
                                .into_sorted()
                                .iter()
                                .map(|d| d.to_string())
                                .collect::<Vec<_>>()
                                .join("; ")
                        })
                })
                .clone();
            for line in &block.lines {
                let outcome = match &filter {
                    Ok(f) => {
                        let m = matchers
                            .entry(key.clone())
                            .or_insert_with(|| f.matcher(DateFinder::new(tz.clone(), now)));
                        if journal {
                            m.journal_line(&line.text, now, None, false)
                        } else {
                            m.file_line(&line.text)
                        }
                    }
                    Err(e) => {
                        if let Some(i) = line.annotation {
                            failed.entry(i).or_insert_with(|| format!("filter: {e}"));
                        }
                        continue;
                    }
                };
                // A jail counts a `repeat` failure only for an address that
                // already has a counted failure within findtime (the
                // default, 10 minutes).
                let outcome = match outcome {
                    Outcome::Matched {
                        regex,
                        failure: Some(f),
                    } => {
                        let seen = counted.entry(key.clone()).or_default();
                        let in_window =
                            seen.get(&f.host).is_some_and(|last| match (last, f.time) {
                                (Some(last), Some(now)) => {
                                    now.duration_since(*last)
                                        <= jiff::SignedDuration::from_secs(600)
                                }
                                _ => true,
                            });
                        if f.repeat && !in_window {
                            Outcome::Matched {
                                regex,
                                failure: None,
                            }
                        } else {
                            if !f.repeat {
                                seen.insert(f.host.clone(), f.time);
                            }
                            Outcome::Matched {
                                regex,
                                failure: Some(f),
                            }
                        }
                    }
                    other => other,
                };
                let Some(i) = line.annotation else { continue };
                let a = &parsed.annotations[i];
                if let Some(c) = a.json.get("constraint").and_then(Value::as_str) {
                    if !condition(c, name, opts) {
                        continue;
                    }
                }
                if let Err(why) = check(a, &outcome, &tz) {
                    failed.entry(i).or_insert_with(|| {
                        format!(
                            "[{}] {why}",
                            if opts.is_empty() {
                                "{}".to_string()
                            } else {
                                serde_json::to_string(opts).unwrap_or_default()
                            }
                        )
                    });
                }
            }
        }
    }
    failed
}

fn read_list(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((k, why)) => (k.to_string(), why.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

#[test]
fn corpus_annotations_pass() {
    let dir = root().join("tests/corpus");
    let loader = FilterLoader::new(FilterPath::new(vec![root().join("config/filters")]));
    let known = read_list(&root().join("tests/corpus-known-failures.txt"));
    let skipped = read_list(&root().join("tests/corpus-skipped.txt"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "PROVENANCE.md")
        .collect();
    names.sort();
    let mut total = 0usize;
    let mut passed = 0usize;
    let mut problems = Vec::new();
    let mut seen_known = Vec::new();
    let mut disabled = 0;
    for name in &names {
        let mut parsed = Parsed {
            blocks: Vec::new(),
            annotations: Vec::new(),
            bad_json: Vec::new(),
            disabled: 0,
        };
        parse(&dir, name, &mut parsed, &Map::new());
        // Files added by another (sshd-journal by sshd) are counted there.
        let own = parsed
            .annotations
            .iter()
            .filter(|a| &a.file == name)
            .count();
        if parsed.annotations.iter().all(|a| &a.file == name) {
            disabled += parsed.disabled;
        }
        let added_elsewhere = name == "sshd-journal";
        if added_elsewhere {
            continue;
        }
        if loader.path().find(name).is_none() {
            total += own + parsed.bad_json.len();
            let why = skipped.get(name.as_str());
            println!(
                "{name:<28} {:>4} annotations  NO FILTER ({})",
                own,
                why.map_or("not listed in corpus-skipped.txt!", |s| s.as_str())
            );
            if why.is_none() {
                problems.push(format!(
                    "{name}: no filter and not listed in tests/corpus-skipped.txt"
                ));
            }
            continue;
        }
        if skipped.contains_key(name.as_str()) {
            problems.push(format!(
                "{name}: has a filter but is listed in tests/corpus-skipped.txt"
            ));
        }
        total += parsed.annotations.len() + parsed.bad_json.len();
        let failed = run_file(&loader, &dir, name, &parsed);
        let n = parsed.annotations.len();
        passed += n - failed.len();
        println!(
            "{name:<28} {n:>4} checked {:>4} failed{}",
            failed.len(),
            if parsed.bad_json.is_empty() {
                String::new()
            } else {
                format!(" ({} unparsable annotations)", parsed.bad_json.len())
            }
        );
        for (i, why) in &failed {
            let a = &parsed.annotations[*i];
            let id = format!("{}:{}", a.file, a.line_no);
            if known.contains_key(&id) {
                seen_known.push(id);
            } else {
                problems.push(format!("{id}: {why}"));
            }
        }
    }
    for id in known.keys() {
        if !seen_known.contains(id) {
            problems.push(format!(
                "{id}: listed in corpus-known-failures.txt but passes (or is gone): remove it"
            ));
        }
    }
    let rate = 100.0 * passed as f64 / total.max(1) as f64;
    println!(
        "corpus: {passed}/{total} annotations pass ({rate:.1}%); {disabled} disabled in the corpus itself (\"#_dis_failJSON\") not counted"
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
