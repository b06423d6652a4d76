//! The files that make jailwarden a system service, checked with systemd's
//! own tools on the host (no systemd as PID 1 needed): the units pass
//! `systemd-analyze verify`, the service's exposure stays at most 2.0, the
//! journal catalog explains every event `src/events.rs` defines, and `make
//! install` stages what it should. `tests/nspawn.rs` runs them for real.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (is package systemd installed?)"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The drop-in examples shipped next to the unit.
fn drop_ins() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("units/jailwarden.service.d"))
        .expect("units/jailwarden.service.d")
        .map(|e| e.expect("read dir").path())
        .filter(|p| p.to_string_lossy().ends_with(".conf.example"))
        .collect();
    v.sort();
    v
}

/// systemd's version, from `systemctl --version` ("systemd 252 (...)").
fn systemd_version() -> u32 {
    let o = run(Command::new("systemctl").arg("--version"));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("systemd version")
}

/// A root for `systemd-analyze verify --root`: the host's units (for
/// sysinit.target & co.), ours, and stand-ins for the programs they run,
/// since verify checks that ExecStart= and ExecReload= exist.
fn verify_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    std::fs::create_dir_all(r.join("usr/lib/systemd")).expect("mkdir");
    std::fs::create_dir_all(r.join("usr/bin")).expect("mkdir");
    std::os::unix::fs::symlink("usr/bin", r.join("bin")).expect("symlink bin");
    let cp = run(Command::new("cp")
        .arg("-a")
        .arg("/usr/lib/systemd/system")
        .arg(r.join("usr/lib/systemd/")));
    assert!(cp.status.success(), "copy host units: {}", text(&cp));
    for unit in ["jailwarden.service", "jailwarden.socket"] {
        std::fs::copy(
            repo().join("units").join(unit),
            r.join("usr/lib/systemd/system").join(unit),
        )
        .expect("copy unit");
    }
    for prog in ["jailwarden", "kill"] {
        let p = r.join("usr/bin").join(prog);
        std::fs::write(&p, "#!/bin/sh\n").expect("stand-in");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    // verify runs man(1) on each Documentation=man:... page: the pages the
    // binary generates (and the package installs) must be the ones named.
    let man = r.join("usr/share/man");
    let generated = run(Command::new(env!("CARGO_BIN_EXE_jailwarden"))
        .args(["generate", "man"])
        .arg(&man));
    assert!(
        generated.status.success(),
        "generate man: {}",
        text(&generated)
    );
    for (page, section) in [
        ("jailwarden.8", "man8"),
        ("jailwarden.toml.5", "man5"),
        ("jailwarden-filter.5", "man5"),
    ] {
        std::fs::create_dir_all(man.join(section)).expect("mkdir");
        std::fs::rename(man.join(page), man.join(section).join(page)).expect("move page");
    }
    root
}

fn verify(root: &Path) {
    let o = run(Command::new("systemd-analyze")
        .arg("verify")
        .env("MANPATH", root.join("usr/share/man"))
        .arg(format!("--root={}", root.display()))
        .args(["jailwarden.service", "jailwarden.socket"]));
    let out = text(&o);
    // Unknown keys and bad values are only warnings: fail on any remark.
    assert!(
        o.status.success() && !out.contains("jailwarden"),
        "systemd-analyze verify:\n{out}"
    );
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let root = verify_root();
    verify(root.path());
}

#[test]
fn units_with_each_drop_in_example_pass_verify() {
    let version = systemd_version();
    for drop_in in drop_ins() {
        let name = drop_in.file_name().expect("name").to_string_lossy();
        if name.starts_with("notify-reload") && version < 253 {
            // Type=notify-reload is what the example is for, and systemd
            // before 253 rejects it; its README line says so.
            eprintln!("{name}: not verified, systemd {version} < 253");
            continue;
        }
        let root = verify_root();
        let dir = root.path().join("etc/systemd/system/jailwarden.service.d");
        std::fs::create_dir_all(&dir).expect("mkdir drop-in dir");
        std::fs::copy(&drop_in, dir.join(name.trim_end_matches(".example"))).expect("copy");
        verify(root.path());
    }
}

#[test]
fn the_notifications_user_unit_passes_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = std::fs::read_to_string(repo().join("units/user/jailwarden-notify.service"))
        .expect("units/user/jailwarden-notify.service")
        .replace("/usr/bin/jailwarden", env!("CARGO_BIN_EXE_jailwarden"));
    let path = dir.path().join("jailwarden-notify.service");
    std::fs::write(&path, unit).expect("write unit");
    let runtime = dir.path().join("run");
    std::fs::create_dir(&runtime).expect("mkdir");
    let o = run(Command::new("systemd-analyze")
        .args(["--user", "--man=no", "verify"])
        .arg(&path)
        .env("XDG_RUNTIME_DIR", &runtime));
    // verify only warns about unknown keys and sections: none may appear.
    assert!(
        o.status.success() && !text(&o).contains("ignoring"),
        "{}",
        text(&o)
    );
}

#[test]
fn service_exposure_is_at_most_2_0() {
    let o = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(repo().join("units/jailwarden.service")));
    let out = text(&o);
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level for jailwarden.service"))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{out}"));
    println!("{line}");
    let level: f64 = line
        .split(": ")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the level from {line:?}"));
    assert!(level <= 2.0, "{line}");
}

/// `MESSAGE_ID_*` constants of src/events.rs: (name, id).
fn event_ids() -> Vec<(String, String)> {
    let src = std::fs::read_to_string(repo().join("src/events.rs")).expect("src/events.rs");
    src.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("pub const MESSAGE_ID_")?;
            let (name, value) = rest.split_once(": &str = \"")?;
            Some((name.to_string(), value.trim_end_matches("\";").to_string()))
        })
        .collect()
}

#[test]
fn catalog_explains_every_event() {
    let ids = event_ids();
    assert!(ids.len() >= 6, "constants not found: {ids:?}");
    let catalog =
        std::fs::read_to_string(repo().join("units/jailwarden.catalog")).expect("catalog");
    // Entries: "-- ID" then headers up to a blank line, then the body.
    let mut entries: Vec<(String, Vec<String>, String)> = Vec::new();
    for chunk in catalog.split("\n-- ").skip(1) {
        let (id, rest) = chunk.split_once('\n').expect("entry id line");
        let (head, body) = rest.split_once("\n\n").expect("headers then body");
        entries.push((
            id.trim().to_string(),
            head.lines().map(str::to_string).collect(),
            body.to_string(),
        ));
    }
    let catalog_ids: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    for (name, id) in &ids {
        assert_eq!(
            catalog_ids.iter().filter(|c| *c == id).count(),
            1,
            "MESSAGE_ID_{name} ({id}) must have exactly one catalog entry"
        );
    }
    assert_eq!(catalog_ids.len(), ids.len(), "entries without an event");
    for (id, head, body) in &entries {
        for key in ["Subject: ", "Defined-By: ", "Support: ", "Documentation: "] {
            assert!(head.iter().any(|h| h.starts_with(key)), "{id}: no {key}");
        }
        assert!(
            body.trim().len() > 100,
            "{id}: the body explains too little"
        );
    }
    // Ban and unban entries show their fields.
    let ban = ids.iter().find(|(n, _)| n == "BAN").expect("ban id");
    let unban = ids.iter().find(|(n, _)| n == "UNBAN").expect("unban id");
    for (id, fields) in [
        (
            &ban.1,
            &[
                "@JAILWARDEN_JAIL@",
                "@JAILWARDEN_ADDRESS@",
                "@JAILWARDEN_FAILURES@",
            ][..],
        ),
        (
            &unban.1,
            &[
                "@JAILWARDEN_JAIL@",
                "@JAILWARDEN_ADDRESS@",
                "@JAILWARDEN_REASON@",
            ][..],
        ),
    ] {
        let e = entries.iter().find(|e| &e.0 == id).expect("entry");
        for f in fields {
            assert!(
                e.1.iter().any(|h| h.contains(f)) || e.2.contains(f),
                "{id}: {f} unused"
            );
        }
    }

    // journalctl compiles it and lists every entry.
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("usr/lib/systemd/catalog");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::create_dir_all(root.path().join("var/lib/systemd/catalog")).expect("mkdir");
    std::fs::copy(
        repo().join("units/jailwarden.catalog"),
        dir.join("jailwarden.catalog"),
    )
    .expect("copy");
    let root_arg = format!("--root={}", root.path().display());
    let o = run(Command::new("journalctl").args([&root_arg, "--update-catalog"]));
    assert!(o.status.success(), "update-catalog: {}", text(&o));
    let o = run(Command::new("journalctl").args([&root_arg, "--list-catalog"]));
    let listed = String::from_utf8_lossy(&o.stdout);
    for (name, id) in &ids {
        assert!(
            listed.contains(id.as_str()),
            "{name} not compiled:\n{listed}"
        );
    }
}

#[test]
fn make_install_stages_everything_and_keeps_an_existing_config() {
    let dest = tempfile::tempdir().expect("tempdir");
    let make = |target: &str, extra: &[&str]| {
        let o = run(Command::new("make")
            .current_dir(repo())
            .arg("--no-print-directory")
            .arg(target)
            .arg(format!("DESTDIR={}", dest.path().display()))
            .arg("NO_BUILD=1")
            .arg(format!("BIN={}", env!("CARGO_BIN_EXE_jailwarden")))
            .args(extra));
        assert!(o.status.success(), "make {target}: {}", text(&o));
        text(&o)
    };
    make("install", &["PREFIX=/usr/local"]);
    let d = dest.path();
    for f in [
        "usr/local/bin/jailwarden",
        "usr/local/lib/systemd/system/jailwarden.service",
        "usr/local/lib/systemd/system/jailwarden.socket",
        "usr/local/lib/systemd/user/jailwarden-notify.service",
        "usr/local/lib/sysusers.d/jailwarden.conf",
        "usr/local/lib/systemd/catalog/jailwarden.catalog",
        "usr/local/share/doc/jailwarden/examples/hosts-deny.conf.example",
        "usr/local/share/doc/jailwarden/examples/jail.d/hosts-deny.toml.example",
        "usr/share/jailwarden/filters/sshd.toml",
        "etc/jailwarden/jailwarden.toml",
    ] {
        assert!(d.join(f).is_file(), "{f} not installed");
    }
    assert!(d.join("etc/jailwarden/jail.d").is_dir());
    let unit = std::fs::read_to_string(d.join("usr/local/lib/systemd/system/jailwarden.service"))
        .expect("unit");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/jailwarden daemon"),
        "ExecStart not rewritten for PREFIX"
    );
    let unit =
        std::fs::read_to_string(d.join("usr/local/lib/systemd/user/jailwarden-notify.service"))
            .expect("user unit");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/jailwarden watch --notify"),
        "user unit's ExecStart not rewritten for PREFIX"
    );
    for f in [
        "usr/share/dbus-1/system.d/org.jailwarden1.conf",
        "usr/share/dbus-1/system-services/org.jailwarden1.service",
        "usr/share/dbus-1/interfaces/org.jailwarden1.xml",
        "usr/share/polkit-1/actions/org.jailwarden1.policy",
        "usr/share/cockpit/jailwarden/manifest.json",
        "usr/share/cockpit/jailwarden/index.html",
        "usr/share/cockpit/jailwarden/jailwarden.js",
        "usr/share/cockpit/jailwarden/jailwarden.css",
    ] {
        assert!(d.join(f).is_file(), "{f} not installed");
    }
    // Cockpit (Python bridge) shows the page only where the binary is.
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("usr/share/cockpit/jailwarden/manifest.json"))
            .expect("manifest"),
    )
    .expect("manifest is JSON");
    assert_eq!(
        manifest["conditions"][0]["path-exists"], "/usr/local/bin/jailwarden",
        "manifest condition not rewritten for PREFIX"
    );

    // An admin's configuration survives a re-install and an uninstall.
    let conf = d.join("etc/jailwarden/jailwarden.toml");
    std::fs::write(&conf, "# mine\n").expect("write config");
    let out = make("install", &["PREFIX=/usr/local"]);
    assert!(out.contains("keeping"), "{out}");
    make("uninstall", &["PREFIX=/usr/local"]);
    assert_eq!(std::fs::read_to_string(&conf).expect("config"), "# mine\n");
    assert!(!d.join("usr/local/bin/jailwarden").exists());
    assert!(!d.join("usr/share/cockpit/jailwarden").exists());
    assert!(
        !d.join("usr/local/lib/systemd/user/jailwarden-notify.service")
            .exists()
    );
    assert!(!d.join("usr/share/jailwarden").exists());
    make("uninstall", &["PREFIX=/usr/local", "PURGE=1"]);
    assert!(!d.join("etc/jailwarden").exists());
}
