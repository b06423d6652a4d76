//! docs/services.md, checked: its jails pass check-config with the
//! shipped filters, every `test-filter` it tells an admin to run names a
//! filter (and mode) that exists and finds failures in that filter's
//! sample log, and every log path it names is one a filter header or a
//! shipped example jail names too (the headers are the source).

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_jailwarden");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn guide() -> String {
    std::fs::read_to_string(repo().join("docs/services.md")).expect("docs/services.md")
}

#[test]
fn the_guides_jails_pass_check_config() {
    let text = guide();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    assert!(blocks.len() >= 12, "{} jail blocks", blocks.len());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("jail.d")).unwrap();
    std::fs::write(
        dir.path().join("jailwarden.toml"),
        format!(
            "[daemon]\nfilter_dirs = [{:?}]\n",
            repo().join("config/filters").display().to_string()
        ),
    )
    .unwrap();
    for (i, b) in blocks.iter().enumerate() {
        std::fs::write(dir.path().join(format!("jail.d/{i:02}.toml")), b).unwrap();
    }
    let o = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(dir.path().join("jailwarden.toml"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "check-config on the guide's jails:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn every_test_filter_in_the_guide_works_on_the_sample_log() {
    let text = guide();
    let mut checked = 0;
    for (i, _) in text.match_indices("test-filter ") {
        let words: Vec<&str> = text[i + "test-filter ".len()..]
            .split(|c: char| c.is_whitespace() || c == '`')
            .filter(|w| !w.is_empty())
            .take(4)
            .collect();
        let name = words[0];
        if name.chars().all(|c| c.is_ascii_uppercase()) {
            continue; // FILTER LOG
        }
        let mode = words
            .iter()
            .position(|w| *w == "--mode")
            .and_then(|p| words.get(p + 1))
            .copied()
            .unwrap_or("normal");
        let sample: PathBuf = repo().join("tests/corpus").join(name);
        assert!(
            sample.exists(),
            "no sample log for {name} (tests/corpus/{name})"
        );
        let o = Command::new(BIN)
            .args(["test-filter", name])
            .arg(&sample)
            .args(["--mode", mode, "--format", "json"])
            .env("JAILWARDEN_FILTER_PATH", repo().join("config/filters"))
            .env("TZ", "UTC")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "test-filter {name} --mode {mode}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(
            v["matched"].as_u64() > Some(0),
            "test-filter {name} --mode {mode} finds nothing in its sample"
        );
        checked += 1;
    }
    assert!(checked >= 15, "{checked} test-filter commands checked");
}

#[test]
fn every_log_path_in_the_guide_is_one_the_filters_name() {
    let mut sources = String::new();
    for dir in ["config/filters", "config/jail.d/examples"] {
        for e in std::fs::read_dir(repo().join(dir)).unwrap().flatten() {
            sources.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    let text = guide();
    let mut checked = 0;
    for (i, _) in text.match_indices("/var/log/") {
        let path: String = text[i..]
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, '`' | '"' | ',' | ')'))
            .collect();
        let path = path.trim_end_matches(['.', '/']);
        if path == "/var/log" {
            continue;
        }
        let file = path.rsplit('/').next().unwrap_or(path);
        assert!(
            sources.contains(path)
                || sources.contains(&format!(" {file}"))
                || sources.contains(&format!("{file}/")),
            "{path} is in docs/services.md but in no filter header or example jail"
        );
        checked += 1;
    }
    assert!(checked >= 20, "{checked} paths checked");
}
