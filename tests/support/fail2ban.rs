//! Test support: Fail2ban itself, as the reference (Debian's `fail2ban`
//! package, which .ci/run installs): its configuration copied and
//! changed, `fail2ban-client -d` (the command stream its client would send
//! to the server) as JSON, `fail2ban-regex` results per line.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Fail's loudly when Fail2ban is missing (never a silent skip).
pub fn require() {
    for tool in [
        "/usr/bin/fail2ban-client",
        "/usr/bin/fail2ban-regex",
        "/usr/bin/fail2ban-server",
    ] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: these tests need Debian's fail2ban package (.ci/packages/base.txt)"
        );
    }
}

/// Copy a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let t = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &t);
        } else {
            std::fs::copy(&p, &t).unwrap();
        }
    }
}

/// `fail2ban-client -c DIR -d`, each command as a JSON array.
pub fn dump(dir: &Path) -> Vec<Vec<Value>> {
    require();
    let out = Command::new("/usr/bin/fail2ban-client")
        .arg("-c")
        .arg(dir)
        .arg("-d")
        .output()
        .expect("run fail2ban-client");
    assert!(
        out.status.success(),
        "fail2ban-client -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut py = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg("import ast,json,sys\nprint(json.dumps([ast.literal_eval(l) for l in sys.stdin if l.startswith('[')]))")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    py.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let res = py.wait_with_output().unwrap();
    assert!(res.status.success());
    let v: Value = serde_json::from_slice(&res.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_array().unwrap().clone())
        .collect()
}

/// A JSON value as text (numbers as written).
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `fail2ban-regex -c DIR LOG FILTER`: per failure, (1-based line of the
/// log, host, Unix time).
pub fn regex(dir: &Path, log: &Path, filter: &str, tz: &str) -> Vec<(usize, String, i64)> {
    require();
    let out = Command::new("/usr/bin/fail2ban-regex")
        .env("TZ", tz)
        .arg("-c")
        .arg(dir)
        .arg("-o")
        .arg("<ip>\t<time>\t<msg>")
        .arg(log)
        .arg(filter)
        .output()
        .expect("run fail2ban-regex");
    assert!(
        out.status.success(),
        "fail2ban-regex {filter} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut used = vec![false; lines.len()];
    let mut found = Vec::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = l.splitn(3, '\t');
        let (Some(ip), Some(t), Some(msg)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let t: f64 = t.parse().unwrap_or(0.0);
        // The matched line (the last of a multi-line match).
        let last = msg.rsplit('\n').next().unwrap_or(msg);
        let Some(i) = (0..lines.len()).find(|i| !used[*i] && lines[*i] == last) else {
            panic!(
                "fail2ban-regex printed a line not in {}: {last:?}",
                log.display()
            );
        };
        used[i] = true;
        found.push((i + 1, ip.to_string(), t.floor() as i64));
    }
    found.sort();
    found
}
