//! The Fail2ban configuration reader against Fail2ban itself: Debian's
//! installed `/etc/fail2ban` (the `fail2ban` package, which .ci/run
//! installs) with every jail enabled is resolved by our reader and by
//! `fail2ban-client -d` (which prints the command stream Fail2ban's client
//! would send to its server); every filter regex, date pattern, journal
//! match, jail number and action command must be the same text.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use jailwarden::r#import::reader::{self, Fail2ban};
use serde_json::Value;
use support::fail2ban::{copy_dir, dump as fail2ban_stream, text};

/// Per jail: key → values, for the parts we translate.
type Facts = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn facts_of_stream(stream: &[Vec<Value>]) -> Facts {
    let mut out: Facts = BTreeMap::new();
    for c in stream {
        let cmd = text(&c[0]);
        if cmd == "add" {
            out.entry(text(&c[1])).or_default();
        }
        if c.len() < 4 || (cmd != "set" && cmd != "multi-set") {
            continue;
        }
        let jail = text(&c[1]);
        if !out.contains_key(&jail) {
            continue;
        }
        let key = text(&c[2]);
        let f = out.entry(jail).or_default();
        match (cmd.as_str(), key.as_str()) {
            ("set", "addfailregex" | "addignoreregex") => {
                f.entry(key).or_default().push(text(&c[3]));
            }
            ("multi-set", "addfailregex" | "addignoreregex") => {
                let e = f.entry(key).or_default();
                e.extend(c[3].as_array().unwrap().iter().map(text));
            }
            ("set", "addjournalmatch") => {
                let terms: Vec<String> = c[3..].iter().map(text).collect();
                f.entry(key).or_default().push(terms.join(" "));
            }
            ("set", "addaction") => {
                f.entry("actions".into()).or_default().push(text(&c[3]));
            }
            ("multi-set", "action") => {
                let name = text(&c[3]);
                for pair in c[4].as_array().unwrap() {
                    let p = pair.as_array().unwrap();
                    let opt = text(&p[0]);
                    if opt.starts_with("action") {
                        f.entry(format!("{name}.{opt}"))
                            .or_default()
                            .push(text(&p[1]));
                    }
                }
            }
            ("set", "action") => {
                let name = text(&c[3]);
                let opt = text(&c[4]);
                if opt.starts_with("action") {
                    f.entry(format!("{name}.{opt}"))
                        .or_default()
                        .push(text(&c[5]));
                }
            }
            (
                "set",
                "prefregex" | "datepattern" | "maxlines" | "usedns" | "maxretry" | "findtime"
                | "bantime" | "maxmatches" | "ignoreself",
            ) => {
                f.entry(key).or_default().push(text(&c[3]));
            }
            ("set", "addignoreip") => {
                f.entry(key).or_default().extend(c[3..].iter().map(text));
            }
            _ => {}
        }
    }
    out
}

fn facts_of_reader(cfg: &Fail2ban) -> Facts {
    let mut out: Facts = BTreeMap::new();
    for j in cfg.jails.iter().filter(|j| j.enabled) {
        let f = out.entry(j.name.clone()).or_default();
        let mut put = |k: &str, v: Option<&jailwarden::r#import::ini::Spanned>| {
            if let Some(v) = v {
                let list = f.entry(k.to_string()).or_default();
                match k {
                    "addfailregex" | "addignoreregex" => list.extend(
                        v.text()
                            .split('\n')
                            .filter(|l| !l.is_empty())
                            .map(str::to_string),
                    ),
                    "addjournalmatch" => list.extend(
                        v.text()
                            .split('\n')
                            .filter(|l| !l.is_empty())
                            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")),
                    ),
                    "addignoreip" => {
                        list.extend(jailwarden::r#import::syntax::split_words(v.text()))
                    }
                    _ => list.push(v.text().to_string()),
                }
            }
        };
        let flt = j.filter.as_ref();
        for (ours, theirs) in [
            ("failregex", "addfailregex"),
            ("ignoreregex", "addignoreregex"),
            ("prefregex", "prefregex"),
            ("datepattern", "datepattern"),
            ("maxlines", "maxlines"),
            ("journalmatch", "addjournalmatch"),
            ("usedns", "usedns"),
        ] {
            // The filter's value, unless the jail gives its own (it is sent after).
            let v = j.opt(ours).or_else(|| flt.and_then(|f| f.opts.get(ours)));
            put(theirs, v);
        }
        for k in [
            "maxretry",
            "findtime",
            "bantime",
            "maxmatches",
            "ignoreself",
        ] {
            put(k, j.opt(k));
        }
        put("addignoreip", j.opt("ignoreip"));
        for a in &j.actions {
            let actname = a
                .opts
                .get("actname")
                .map_or(a.name.clone(), |n| n.text().to_string());
            f.entry("actions".into()).or_default().push(actname);
            for (k, v) in a.opts.iter() {
                if jailwarden::r#import::reader::ACTION_OPTS.contains(&k) && k.starts_with("action")
                {
                    let name = a
                        .opts
                        .get("actname")
                        .map_or(a.name.clone(), |n| n.text().to_string());
                    f.entry(format!("{name}.{k}"))
                        .or_default()
                        .push(v.text().to_string());
                }
            }
        }
    }
    out
}

fn compare(dir: &Path) -> usize {
    let theirs = facts_of_stream(&fail2ban_stream(dir));
    let cfg = reader::read(dir).unwrap_or_else(|e| panic!("our reader: {e}"));
    let ours = facts_of_reader(&cfg);
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "the same jails are enabled"
    );
    let mut compared = 0;
    for (jail, t) in &theirs {
        let o = &ours[jail];
        for (k, tv) in t {
            let ov = o.get(k).cloned().unwrap_or_default();
            // Fail2ban sends numbers converted (maxlines 1, maxretry 5).
            assert_eq!(&ov, tv, "jail {jail}, {k}");
            compared += tv.len();
        }
        for (k, v) in o {
            assert!(
                v.is_empty() || t.contains_key(k),
                "jail {jail}: we have {k} = {v:?}, Fail2ban does not"
            );
        }
    }
    compared
}

#[test]
fn debian_stock_configuration_resolves_like_fail2ban() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fail2ban");
    copy_dir(Path::new("/etc/fail2ban"), &dir);
    std::fs::write(dir.join("jail.local"), "[DEFAULT]\nenabled = true\n").unwrap();
    let n = compare(&dir);
    println!("{n} values compared with fail2ban-client -d");
    assert!(n > 1000, "only {n} values compared");
}

#[test]
fn journal_backend_and_overrides_resolve_like_fail2ban() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("fail2ban");
    copy_dir(Path::new("/etc/fail2ban"), &dir);
    std::fs::write(
        dir.join("jail.local"),
        "[DEFAULT]\nbanaction = nftables\nbanaction_allports = nftables[type=allports]\naction = %(action_mwl)s\n\
         [sshd]\nenabled = true\nmode = aggressive\nbackend = systemd\n\
         [postfix]\nenabled = true\nmode = auth\nbackend = systemd\n\
         [recidive]\nenabled = true\n\
         [dovecot]\nenabled = true\nfailregex = ^my own <HOST>$\njournalmatch = _SYSTEMD_UNIT=dovecot.service\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("filter.d/nginx-http-auth.local"),
        "[Definition]\nfailregex = %(known/failregex)s\n            ^extra <HOST>$\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("jail.d/nginx.conf"),
        "[nginx-http-auth]\nenabled = true\nbantime = 1h\n",
    )
    .unwrap();
    let n = compare(&dir);
    assert!(n > 50, "only {n} values compared");
}

/// Every failregex of Debian's stock filters either translates into a
/// template our filter compiler accepts, or is refused with a reason.
#[test]
fn stock_patterns_translate_or_are_refused_with_a_reason() {
    use jailwarden::r#import::pyre::{Context, translate};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fail2ban");
    copy_dir(Path::new("/etc/fail2ban"), &dir);
    std::fs::write(dir.join("jail.local"), "[DEFAULT]\nenabled = true\n").unwrap();
    let cfg = reader::read(&dir).unwrap();
    let (mut ok, mut refused) = (0, 0);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for j in cfg.jails.iter().filter(|j| j.enabled) {
        let Some(f) = &j.filter else { continue };
        for key in ["failregex", "ignoreregex", "prefregex"] {
            let Some(v) = f.opts.get(key) else { continue };
            for line in v.text().split('\n').filter(|l| !l.is_empty()) {
                match translate(
                    line,
                    &Context {
                        end_is_line_end: true,
                    },
                ) {
                    Ok(p) => {
                        ok += 1;
                        let e = jailwarden::filter::template::expand(&p.text, &|_| None)
                            .unwrap_or_else(|e| panic!("{}: {line}\n-> {}: {e}", j.name, p.text));
                        regex_syntax::ParserBuilder::new()
                            .unicode(false)
                            .utf8(false)
                            .build()
                            .parse(&e.regex)
                            .unwrap_or_else(|e| panic!("{}: {line}\n-> {}: {e}", j.name, p.text));
                    }
                    Err(why) => {
                        refused += 1;
                        let key = why.split(" (").next().unwrap_or(&why).to_string();
                        *reasons.entry(key).or_default() += 1;
                    }
                }
            }
        }
    }
    println!("translated {ok}, refused {refused}: {reasons:#?}");
    assert!(ok > 10 * refused, "translated {ok}, refused {refused}");
}

/// The translations against Python's own `re`: patterns using the
/// rewritten idioms (lookarounds, tempered tokens) run on many generated
/// lines by Python and, translated, by the regex crate; the same lines
/// must match, with the same captures.
#[test]
fn rewritten_patterns_match_like_python() {
    use jailwarden::r#import::pyre::{Context, translate};
    let patterns = [
        r"^for (?P<user>(?:(?! from ).)*?) from (?P<rest>\S+)$",
        r"^for (?P<user>(?:(?! from ).)*) from (?P<rest>.*)$",
        r"^u (?P<user>(?:(?! from ).)+) from (?P<rest>.*)$",
        r"^a(?:(?!ab).)*ab(?P<rest>.*)$",
        r"^x(?:(?!aa).)*aa(?P<rest>.*)$",
        r"^k(?P<user>(?:(?!abab).)*)abab",
        r"^(?P<user>(?:(?!,).)*),",
        r#"^"(?P<user>(?:(?!").)*)" (?P<rest>.*)"#,
        r"^q (?P<user>\S+)(?= from)",
        r"(?<=k=)(?P<user>\w+)",
        r"^a (?P<user>\w+)(?![\w.])",
        r"(?i)^from (?P<user>[a-z]+)(?=\.| fr)",
        r"^(?P<user>[^ ]+)(?:(?!x)\S)+ b",
        r"^a (?P<user>\S+) failed:(?! from|ab x| fr)",
        r"^x(?P<user>\w*)(?!aa|abab)",
    ];
    let tokens = [
        " from ", " fr", "om ", "from", "a", "b", "ab", "aa", ",", "x", "k=", " ", "q ", ".", "\"",
        "\" ", "u ", "for ", "abab", "A", " failed:", "failed:",
    ];
    // A small deterministic generator: every line from a linear congruence.
    let mut lines: Vec<String> = Vec::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..1500 {
        let mut s = String::new();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let n = (seed >> 60) as usize;
        for _ in 0..n {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s.push_str(tokens[(seed >> 33) as usize % tokens.len()]);
        }
        lines.push(s);
    }
    let base = lines.clone();
    for p in [
        "for ", "u ", "a", "x", "k", "q ", "k=", "from ", "\"", "q x", "a x", "a ",
    ] {
        for i in 0..300 {
            let t = tokens[i % tokens.len()];
            lines.push(format!("{p}{}{t}{}", base[i], base[i + 1]));
        }
    }
    let input = serde_json::json!({"patterns": patterns, "lines": lines});
    let mut py = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            "import json,re,sys\n\
             d=json.load(sys.stdin)\n\
             out=[]\n\
             for p in d['patterns']:\n\
             \x20 r=re.compile(p)\n\
             \x20 row=[]\n\
             \x20 for l in d['lines']:\n\
             \x20   m=r.search(l)\n\
             \x20   row.append(None if m is None else {k:v for k,v in m.groupdict().items() if v is not None})\n\
             \x20 out.append(row)\n\
             print(json.dumps(out))",
        )
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    py.stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let res = py.wait_with_output().unwrap();
    assert!(res.status.success());
    let theirs: Vec<Vec<Value>> = serde_json::from_slice(&res.stdout).unwrap();
    let mut checked = 0;
    for (pi, p) in patterns.iter().enumerate() {
        let t = translate(
            p,
            &Context {
                end_is_line_end: true,
            },
        )
        .unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(!t.notes.is_empty(), "{p}: a rewrite was expected");
        assert!(t.exact, "{p}: rewrites are exact");
        let e = jailwarden::filter::template::expand(&t.text, &|_| None).unwrap();
        let re =
            regex::Regex::new(&e.regex).unwrap_or_else(|err| panic!("{p} -> {}: {err}", e.regex));
        let matched = theirs[pi].iter().filter(|v| !v.is_null()).count();
        assert!(
            matched >= 5 && matched + 5 <= lines.len(),
            "{p}: the lines exercise it ({matched} of {} match)",
            lines.len()
        );
        for (li, l) in lines.iter().enumerate() {
            let ours = re.captures(l).map(|c| {
                re.capture_names()
                    .flatten()
                    .filter_map(|n| {
                        c.name(n)
                            .map(|m| (n.to_string(), Value::String(m.as_str().to_string())))
                    })
                    .collect::<serde_json::Map<_, _>>()
            });
            let want = &theirs[pi][li];
            let got = ours.map(Value::Object).unwrap_or(Value::Null);
            assert_eq!(&got, want, "{p} on {l:?} (ours: {})", e.regex);
            checked += 1;
        }
    }
    println!("{checked} (pattern, line) pairs agree with Python's re");
}
