//! The D-Bus API against a real dbus-daemon (private, system-bus-like,
//! with our policy file) and the built daemon: methods, properties, typed
//! errors, signals, coalesced PropertiesChanged, ObjectManager and reload,
//! introspection equal to dbus/org.jailwarden1.xml, access control for
//! unprivileged callers (with no polkit, and with a stand-in polkit that
//! checks it is asked about the caller), and the bus name guarded.
//!
//! Needs root (setpriv to nobody), `dbus`, `busctl` (systemd); CI runs as root.

mod bus_support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus_support::{Daemon, DaemonSpec, PrivateBus, ok, stderr, stdout, wait_for};
use jailwarden::control::dbus::{JailProxy, ManagerProxy};
use jailwarden::control::{BUS_NAME, MANAGER_PATH, jail_path};
use tokio::time::timeout;
use zbus::proxy::CacheProperties;

const MGR: &str = "org.jailwarden1.Manager";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn started() -> (PrivateBus, Daemon) {
    let bus = PrivateBus::start();
    let daemon = Daemon::start(DaemonSpec {
        bus: Some(&bus),
        ..Default::default()
    });
    (bus, daemon)
}

/// `busctl call org.jailwarden1 PATH IFACE METHOD ARGS...` as root.
fn call(bus: &PrivateBus, path: &str, iface: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["call", BUS_NAME, path, iface];
    all.extend_from_slice(args);
    bus.busctl(&all)
}

/// The error name dbus-send prints for a failing call.
fn error_name(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected an error: {}", stdout(out));
    let text = stderr(out);
    text.split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .trim_end_matches(':')
        .to_string()
}

#[test]
fn bus_methods_properties_and_typed_errors() {
    bus_support::needs_root!();
    let (bus, daemon) = started();
    let out = ok(&call(&bus, MANAGER_PATH, MGR, &["ListJails"]));
    assert_eq!(
        out.trim(),
        "a(so) 3 \"nginx-http-auth\" \"/org/jailwarden1/jail/nginx_2dhttp_2dauth\" \
         \"sshd\" \"/org/jailwarden1/jail/sshd\" \"web\" \"/org/jailwarden1/jail/web\""
    );
    let out = ok(&call(
        &bus,
        MANAGER_PATH,
        MGR,
        &["GetJail", "s", "nginx-http-auth"],
    ));
    assert_eq!(
        out.trim(),
        "o \"/org/jailwarden1/jail/nginx_2dhttp_2dauth\""
    );

    ok(&call(
        &bus,
        MANAGER_PATH,
        MGR,
        &["Ban", "sst", "sshd", "192.0.2.7", "0"],
    ));
    ok(&call(
        &bus,
        MANAGER_PATH,
        MGR,
        &["Ban", "sst", "sshd", "198.51.100.4", "90000000"],
    ));
    ok(&call(
        &bus,
        MANAGER_PATH,
        MGR,
        &[
            "Ban",
            "sst",
            "nginx-http-auth",
            "2001:db8::5",
            "18446744073709551615",
        ],
    ));
    let out = ok(&bus.busctl(&[
        "--json=short",
        "call",
        BUS_NAME,
        MANAGER_PATH,
        MGR,
        "ListBans",
        "s",
        "",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("busctl JSON");
    let bans = v["data"][0].as_array().expect("bans").clone();
    let by_addr: BTreeMap<String, (String, u64, u64)> = bans
        .iter()
        .map(|b| {
            (
                b[1].as_str().unwrap_or_default().to_string(),
                (
                    b[0].as_str().unwrap_or_default().to_string(),
                    b[2].as_u64().unwrap_or(0),
                    b[3].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect();
    assert_eq!(by_addr.len(), 3, "{out}");
    let (jail, at, exp) = &by_addr["192.0.2.7"];
    assert_eq!(jail, "sshd");
    assert_eq!(exp - at, 600_000_000, "the jail's bantime");
    let (_, at, exp) = &by_addr["198.51.100.4"];
    assert_eq!(exp - at, 90_000_000);
    let (jail, _, exp) = &by_addr["2001:db8::5"];
    assert_eq!((jail.as_str(), *exp), ("nginx-http-auth", 0), "permanent");
    let now_usec = jiff::Timestamp::now().as_microsecond() as u64;
    assert!(at.abs_diff(now_usec) < 60_000_000, "realtime microseconds");

    // Properties reflect the bans at once.
    let sshd = jail_path("sshd");
    let out = ok(&bus.busctl(&[
        "get-property",
        BUS_NAME,
        sshd.as_str(),
        "org.jailwarden1.Jail",
        "Name",
        "Filter",
        "Enabled",
        "MaxRetry",
        "FindTimeUSec",
        "BanTimeUSec",
        "CurrentlyBanned",
        "TotalBanned",
        "CurrentlyFailed",
        "TotalFailed",
    ]));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "s \"sshd\"",
            "s \"dummy\"",
            "b true",
            "u 3",
            "t 600000000",
            "t 600000000",
            "u 2",
            "t 2",
            "u 0",
            "t 0"
        ]
    );
    let out = ok(&bus.busctl(&[
        "get-property",
        BUS_NAME,
        MANAGER_PATH,
        MGR,
        "Version",
        "ActiveBans",
        "TotalBans",
    ]));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            format!("s \"{}\"", env!("CARGO_PKG_VERSION")).as_str(),
            "u 3",
            "t 3"
        ]
    );
    let web = jail_path("web");
    let out = ok(&bus.busctl(&[
        "get-property",
        BUS_NAME,
        web.as_str(),
        "org.jailwarden1.Jail",
        "Enabled",
    ]));
    assert_eq!(out.trim(), "b false");

    // Typed errors, by name.
    let m = "org.jailwarden1.Manager";
    let send = |args: &[&str]| {
        let mut all = vec!["--dest=org.jailwarden1", MANAGER_PATH];
        all.extend_from_slice(args);
        bus.dbus_send(false, &all)
    };
    let ban = format!("{m}.Ban");
    for (args, name) in [
        (
            vec![
                ban.as_str(),
                "string:nosuch",
                "string:192.0.2.1",
                "uint64:0",
            ],
            "org.jailwarden1.Error.NoSuchJail",
        ),
        (
            vec![ban.as_str(), "string:web", "string:192.0.2.1", "uint64:0"],
            "org.jailwarden1.Error.NoSuchJail",
        ),
        (
            vec![
                ban.as_str(),
                "string:sshd",
                "string:not-an-address",
                "uint64:0",
            ],
            "org.jailwarden1.Error.InvalidAddress",
        ),
        (
            vec![ban.as_str(), "string:sshd", "string:127.0.0.5", "uint64:0"],
            "org.jailwarden1.Error.IgnoredAddress",
        ),
        (
            vec![ban.as_str(), "string:sshd", "string:192.0.2.1", "uint64:5"],
            "org.jailwarden1.Error.InvalidDuration",
        ),
        (
            vec![
                ban.as_str(),
                "string:sshd",
                "string:192.0.2.1",
                "uint64:9007199254740991",
            ],
            "org.jailwarden1.Error.InvalidDuration",
        ),
    ] {
        assert_eq!(error_name(&send(&args)), name, "{args:?}");
    }
    let huge = format!("string:{}", "x".repeat(100_000));
    let out = send(&[&ban, "string:sshd", &huge, "uint64:0"]);
    assert_eq!(error_name(&out), "org.jailwarden1.Error.InvalidAddress");
    assert!(stderr(&out).len() < 1000, "errors echo only a prefix");
    let unban = format!("{m}.Unban");
    let out = send(&[&unban, "string:", "string:203.0.113.1"]);
    assert_eq!(error_name(&out), "org.jailwarden1.Error.NotBanned");
    let out = send(&[&format!("{m}.GetJail"), "string:nosuch"]);
    assert_eq!(error_name(&out), "org.jailwarden1.Error.NoSuchJail");

    // The jail object's own methods.
    let iface = "org.jailwarden1.Jail";
    ok(&call(
        &bus,
        sshd.as_str(),
        iface,
        &["Ban", "st", "203.0.113.9", "60000000"],
    ));
    let out = ok(&call(&bus, sshd.as_str(), iface, &["ListBans"]));
    assert!(out.starts_with("a(stt) 3 "), "{out}");
    assert!(out.contains("\"203.0.113.9\""), "{out}");
    ok(&call(
        &bus,
        sshd.as_str(),
        iface,
        &["Unban", "s", "203.0.113.9"],
    ));
    // Unban in every jail, by range.
    ok(&call(
        &bus,
        MANAGER_PATH,
        MGR,
        &["Unban", "ss", "", "192.0.2.0/24"],
    ));
    let out = ok(&call(&bus, MANAGER_PATH, MGR, &["ListBans", "s", "sshd"]));
    assert!(
        out.starts_with("a(sstt) 1 ") && out.contains("198.51.100.4"),
        "{out}"
    );

    // The CLI over the bus (no control socket).
    let out = ok(&bus_support::cli(
        &daemon.dir().join("no-socket-here"),
        bus.address(),
        &["bans", "--json"],
    ));
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["bans"].as_array().map(Vec::len), Some(2), "{out}");
    drop(daemon);
}

/// `busctl --json=short call` on the manager; the reply's data.
fn call_json(bus: &PrivateBus, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json=short", "call", BUS_NAME, MANAGER_PATH, MGR];
    all.extend_from_slice(args);
    let out = ok(&bus.busctl(&all));
    let v: serde_json::Value = serde_json::from_str(&out).expect("busctl JSON");
    v["data"].clone()
}

#[test]
fn ban_details_history_and_histogram() {
    bus_support::needs_root!();
    let bus = PrivateBus::start();
    let daemon = Daemon::start(DaemonSpec {
        bus: Some(&bus),
        extra: "[jails.v6]\nfilter = \"dummy\"\njournal_match = [\"_SYSTEMD_UNIT=v6.service\"]\nipv6_prefix = 64\n",
        ..Default::default()
    });
    let before = jiff::Timestamp::now().as_microsecond() as u64;
    for (jail, addr, usec) in [
        ("sshd", "192.0.2.7", "0"),
        ("nginx-http-auth", "198.51.100.4", "90000000"),
        ("v6", "2001:db8::5", "18446744073709551615"),
    ] {
        ok(&call(
            &bus,
            MANAGER_PATH,
            MGR,
            &["Ban", "sst", jail, addr, usec],
        ));
    }
    // Three failures reported: a ban with failures = 3.
    for _ in 0..3 {
        ok(&call(
            &bus,
            MANAGER_PATH,
            MGR,
            &["Report", "ss", "sshd", "203.0.113.9"],
        ));
    }
    ok(&call(
        &bus,
        MANAGER_PATH,
        MGR,
        &["Unban", "ss", "", "192.0.2.7"],
    ));

    // Details: the daemon's clock and one dictionary per ban in force.
    let d = call_json(&bus, &["ListBanDetails", "s", ""]);
    let now = d[0].as_u64().expect("now_usec");
    assert!(now >= before && now < before + 60_000_000, "{d}");
    let bans = d[1].as_array().expect("bans").clone();
    let by_addr: BTreeMap<String, serde_json::Value> = bans
        .iter()
        .map(|b| {
            (
                b["address"]["data"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                b.clone(),
            )
        })
        .collect();
    assert_eq!(
        by_addr.keys().collect::<Vec<_>>(),
        ["198.51.100.4", "2001:db8::/64", "203.0.113.9"],
        "{d}"
    );
    let reported = &by_addr["203.0.113.9"];
    assert_eq!(reported["jail"]["data"], "sshd");
    assert_eq!(reported["failures"]["data"], 3);
    let nginx = &by_addr["198.51.100.4"];
    assert_eq!(
        nginx["expires_at_usec"]["data"].as_u64().unwrap()
            - nginx["banned_at_usec"]["data"].as_u64().unwrap(),
        90_000_000
    );
    assert_eq!(
        by_addr["2001:db8::/64"]["expires_at_usec"]["data"], 0,
        "permanent"
    );

    // History: newest first, ended ones with their end and reason.
    let h = call_json(&bus, &["History", "sstu", "", "", "0", "0"]);
    let rows = h[0].as_array().expect("rows").clone();
    assert_eq!(rows.len(), 4, "{h}");
    let starts: Vec<u64> = rows.iter().map(|r| r[2].as_u64().unwrap()).collect();
    assert!(
        starts.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {starts:?}"
    );
    let row = |addr: &str| rows.iter().find(|r| r[1] == addr).unwrap().clone();
    let unbanned = row("192.0.2.7");
    assert_eq!(unbanned[0], "sshd");
    assert!(
        unbanned[3].as_u64().unwrap() >= unbanned[2].as_u64().unwrap(),
        "{unbanned}"
    );
    assert_eq!(
        (unbanned[4].as_u64(), unbanned[5].as_str()),
        (Some(0), Some("manual"))
    );
    let reported = row("203.0.113.9");
    assert_eq!(
        (
            reported[3].as_u64(),
            reported[4].as_u64(),
            reported[5].as_str()
        ),
        (Some(0), Some(3), Some(""))
    );
    assert_eq!(row("2001:db8::/64")[0], "v6");
    // Filters.
    let h = call_json(&bus, &["History", "sstu", "sshd", "", "0", "0"]);
    assert_eq!(h[0].as_array().unwrap().len(), 2, "{h}");
    let h = call_json(&bus, &["History", "sstu", "", "2001:db8::/64", "0", "0"]);
    assert_eq!(h[0].as_array().unwrap().len(), 1, "{h}");
    let h = call_json(&bus, &["History", "sstu", "", "", "0", "1"]);
    assert_eq!(h[0].as_array().unwrap().len(), 1, "limit");
    let far = (before + 3_600_000_000).to_string();
    let h = call_json(&bus, &["History", "sstu", "", "", &far, "0"]);
    assert!(h[0].as_array().unwrap().is_empty(), "since: {h}");
    let out = bus.dbus_send(
        false,
        &[
            "--dest=org.jailwarden1",
            MANAGER_PATH,
            "org.jailwarden1.Manager.History",
            "string:",
            "string:not-an-address",
            "uint64:0",
            "uint32:0",
        ],
    );
    assert_eq!(error_name(&out), "org.jailwarden1.Error.InvalidAddress");

    // Per hour over the last day (and the next hour, in case the clock
    // passed one while the test ran): all four bans in the current hour.
    let hour = 3_600_000_000u64;
    let since = (before / hour + 1) * hour - 24 * hour;
    let c = call_json(
        &bus,
        &[
            "BanHistogram",
            "sttu",
            "",
            &since.to_string(),
            &hour.to_string(),
            "25",
        ],
    );
    let counts = c[0].as_array().expect("counts").clone();
    let total: u64 = counts.iter().map(|r| r[2].as_u64().unwrap()).sum();
    assert_eq!(total, 4, "{c}");
    let sshd: u64 = counts
        .iter()
        .filter(|r| r[0] == "sshd")
        .map(|r| r[2].as_u64().unwrap())
        .sum();
    assert_eq!(sshd, 2, "{c}");
    assert!(counts.iter().all(|r| r[1].as_u64().unwrap() >= 23), "{c}");
    let out = bus.dbus_send(
        false,
        &[
            "--dest=org.jailwarden1",
            MANAGER_PATH,
            "org.jailwarden1.Manager.BanHistogram",
            "string:",
            "uint64:0",
            "uint64:1000000",
            "uint32:1001",
        ],
    );
    assert_eq!(error_name(&out), "org.jailwarden1.Error.Failed");

    // Properties.
    let out = ok(&bus.busctl(&[
        "get-property",
        BUS_NAME,
        MANAGER_PATH,
        MGR,
        "Backend",
        "DbPurgeAgeUSec",
    ]));
    assert_eq!(out, "s \"none\"\nt 86400000000\n");

    // An expired ban ends at its expiry, reason "expired".
    ok(&call(
        &bus,
        MANAGER_PATH,
        MGR,
        &["Ban", "sst", "sshd", "192.0.2.77", "1000000"],
    ));
    let row = wait_for(Duration::from_secs(10), "the ban to expire", || {
        let h = call_json(&bus, &["History", "sstu", "", "192.0.2.77", "0", "0"]);
        let r = h[0][0].clone();
        (r[3].as_u64() != Some(0)).then_some(r)
    });
    assert_eq!(row[5], "expired");
    assert_eq!(
        row[3].as_u64().unwrap() - row[2].as_u64().unwrap(),
        1_000_000,
        "{row}"
    );
    drop(daemon);
}

#[test]
fn ranges_the_jail_bans_by_and_a_permanent_javascript_can_send() {
    bus_support::needs_root!();
    let bus = PrivateBus::start();
    let daemon = Daemon::start(DaemonSpec {
        bus: Some(&bus),
        extra: "[jails.v6]\nfilter = \"dummy\"\njournal_match = [\"_SYSTEMD_UNIT=v6.service\"]\nipv6_prefix = 64\n",
        ..Default::default()
    });
    ok(&call(
        &bus,
        MANAGER_PATH,
        MGR,
        &["Ban", "sst", "v6", "2001:db8:5::/64", "0"],
    ));
    ok(&call(
        &bus,
        MANAGER_PATH,
        MGR,
        &["Ban", "sst", "sshd", "198.51.100.8/32", "9007199254740992"],
    ));
    let ban = |jail: &str, addr: &str| {
        bus.dbus_send(
            false,
            &[
                "--dest=org.jailwarden1",
                MANAGER_PATH,
                "org.jailwarden1.Manager.Ban",
                &format!("string:{jail}"),
                &format!("string:{addr}"),
                "uint64:0",
            ],
        )
    };
    for (jail, addr) in [
        ("v6", "2001:db8:6::/48"),
        ("sshd", "198.51.100.0/24"),
        ("sshd", "2001:db8::/64"),
    ] {
        let out = ban(jail, addr);
        assert_eq!(
            error_name(&out),
            "org.jailwarden1.Error.InvalidAddress",
            "{jail} {addr}"
        );
        assert!(
            stderr(&out).contains("only such a range can be banned"),
            "{}",
            stderr(&out)
        );
    }
    let d = call_json(&bus, &["ListBans", "s", ""]);
    let bans: Vec<(String, u64)> = d[0]
        .as_array()
        .expect("bans")
        .iter()
        .map(|b| {
            (
                b[1].as_str().unwrap_or_default().to_string(),
                b[3].as_u64().unwrap_or(1),
            )
        })
        .collect();
    assert_eq!(
        bans,
        [
            ("198.51.100.8".to_string(), 0),
            ("2001:db8:5::/64".to_string(), bans[1].1)
        ],
        "2^53 µs is permanent"
    );
    drop(daemon);
}

#[test]
fn signals_and_coalesced_property_changes() {
    bus_support::needs_root!();
    let (bus, daemon) = started();
    let rt = runtime();
    rt.block_on(async {
        let conn = zbus::connection::Builder::address(bus.address())
            .build()
            .await
            .expect("connect");
        let mgr = ManagerProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .expect("proxy");
        let mut banned = mgr.receive_banned().await.expect("subscribe");
        let mut unbanned = mgr.receive_unbanned().await.expect("subscribe");
        let nginx = jail_path("nginx-http-auth");
        let props = zbus::fdo::PropertiesProxy::builder(&conn)
            .destination(BUS_NAME)
            .path(nginx.clone())
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .expect("properties proxy");
        let mut changes = props.receive_properties_changed().await.expect("subscribe");

        mgr.ban("sshd", "192.0.2.20", 3_600_000_000)
            .await
            .expect("ban");
        let sig = timeout(Duration::from_secs(10), futures_next(&mut banned))
            .await
            .expect("Banned in time")
            .expect("stream");
        let a = sig.args().expect("args");
        assert_eq!(
            (a.jail(), a.address(), *a.failures()),
            (&"sshd", &"192.0.2.20", 0)
        );
        let now = jiff::Timestamp::now().as_microsecond() as u64;
        assert!(a.expires_at_usec().abs_diff(now + 3_600_000_000) < 60_000_000);
        mgr.unban("", "192.0.2.20").await.expect("unban");
        let sig = timeout(Duration::from_secs(10), futures_next(&mut unbanned))
            .await
            .expect("Unbanned in time")
            .expect("stream");
        let a = sig.args().expect("args");
        assert_eq!(
            (a.jail(), a.address(), a.reason()),
            (&"sshd", &"192.0.2.20", &"manual")
        );

        // A flood of reports: 300 failures, a PropertiesChanged or three.
        let start = std::time::Instant::now();
        for i in 0..300u32 {
            let addr = format!("198.51.{}.{}", 100 + i / 250, i % 250 + 1);
            let (outcome, failures) = mgr.report("nginx-http-auth", &addr).await.expect("report");
            assert_eq!((outcome.as_str(), failures), ("counted", 1));
        }
        let flood = start.elapsed();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
        loop {
            let next = tokio::time::timeout_at(deadline, futures_next(&mut changes)).await;
            let Ok(Some(sig)) = next else { break };
            let args = sig.args().expect("args");
            let total: Option<u64> = args
                .changed_properties()
                .get("TotalFailed")
                .and_then(|v| u64::try_from(v).ok());
            seen.push(total);
        }
        let allowed = (flood.as_secs_f64() / 0.3).ceil() as usize + 2;
        assert!(
            !seen.is_empty() && seen.len() <= allowed,
            "{} PropertiesChanged for 300 reports in {flood:?} (at most {allowed})",
            seen.len()
        );
        assert_eq!(seen.iter().flatten().last(), Some(&300), "{seen:?}");
        let jail = JailProxy::builder(&conn)
            .path(nginx)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .expect("jail proxy");
        assert_eq!(jail.currently_failed().await.expect("property"), 300);
    });
    drop(daemon);
}

async fn futures_next<S: futures_util_lite::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    futures_util_lite::next(s).await
}

/// The little of `futures` these tests need, on `futures_core::Stream`
/// (what zbus's streams implement).
mod futures_util_lite {
    use std::pin::Pin;
    pub use zbus::export::futures_core::Stream;

    pub async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
        std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
    }
}

/// One interface of an introspection document, normalized: methods,
/// signals and properties by name, args in order, annotations other than
/// documentation, comments and whitespace ignored.
type Iface = BTreeMap<String, Vec<String>>;

fn interfaces(xml: &str) -> BTreeMap<String, Iface> {
    let doc = roxmltree::Document::parse_with_options(
        xml,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("introspection XML parses");
    let mut out = BTreeMap::new();
    for iface in doc.descendants().filter(|n| n.has_tag_name("interface")) {
        let name = iface.attribute("name").unwrap_or_default();
        if name.starts_with("org.freedesktop.DBus.") {
            continue;
        }
        let mut members: Iface = BTreeMap::new();
        for m in iface.children().filter(|n| n.is_element()) {
            let kind = m.tag_name().name();
            if kind == "annotation" {
                continue;
            }
            let mut desc = Vec::new();
            if kind == "property" {
                desc.push(format!(
                    "type={} access={}",
                    m.attribute("type").unwrap_or_default(),
                    m.attribute("access").unwrap_or_default()
                ));
            }
            for c in m.children().filter(|n| n.is_element()) {
                match c.tag_name().name() {
                    "arg" => desc.push(format!(
                        "arg {} {} {}",
                        c.attribute("name").unwrap_or_default(),
                        c.attribute("type").unwrap_or_default(),
                        c.attribute("direction").unwrap_or(if kind == "signal" {
                            ""
                        } else {
                            "in"
                        })
                    )),
                    "annotation" => {
                        let n = c.attribute("name").unwrap_or_default();
                        if !n.contains("DocString") {
                            desc.push(format!(
                                "annotation {n}={}",
                                c.attribute("value").unwrap_or_default()
                            ));
                        }
                    }
                    other => desc.push(other.to_string()),
                }
            }
            let key = format!("{kind} {}", m.attribute("name").unwrap_or_default());
            assert!(members.insert(key.clone(), desc).is_none(), "{key} twice");
        }
        out.insert(name.to_string(), members);
    }
    out
}

#[test]
fn introspection_matches_the_shipped_xml() {
    bus_support::needs_root!();
    let (bus, daemon) = started();
    let shipped = std::fs::read_to_string(bus_support::repo().join("dbus/org.jailwarden1.xml"))
        .expect("dbus/org.jailwarden1.xml");
    let shipped = interfaces(&shipped);
    let mut served = BTreeMap::new();
    for path in [MANAGER_PATH.to_string(), jail_path("sshd").to_string()] {
        let out = ok(&bus.busctl(&[
            "--json=short",
            "call",
            BUS_NAME,
            &path,
            "org.freedesktop.DBus.Introspectable",
            "Introspect",
        ]));
        let v: serde_json::Value = serde_json::from_str(&out).expect("busctl JSON");
        let xml = v["data"][0].as_str().expect("XML string");
        // Only this object's own interfaces (children are listed as nodes).
        let top: String = {
            let doc = roxmltree::Document::parse_with_options(
                xml,
                roxmltree::ParsingOptions {
                    allow_dtd: true,
                    ..Default::default()
                },
            )
            .expect("parse");
            let root = doc.root_element();
            root.children()
                .filter(|n| n.has_tag_name("interface"))
                .map(|n| xml[n.range()].to_string())
                .collect()
        };
        served.extend(interfaces(&format!("<node>{top}</node>")));
    }
    assert_eq!(
        served.keys().collect::<Vec<_>>(),
        ["org.jailwarden1.Jail", "org.jailwarden1.Manager"]
    );
    for (name, iface) in &served {
        let want = shipped
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from the XML"));
        assert_eq!(
            iface, want,
            "{name}: served (left) vs dbus/org.jailwarden1.xml (right)"
        );
    }
    assert_eq!(
        served.len(),
        shipped.len(),
        "the XML has interfaces the daemon lacks"
    );
    drop(daemon);
}

#[test]
fn object_manager_follows_reload() {
    bus_support::needs_root!();
    let (bus, daemon) = started();
    let rt = runtime();
    rt.block_on(async {
        let conn = zbus::connection::Builder::address(bus.address())
            .build()
            .await
            .expect("connect");
        let om = zbus::fdo::ObjectManagerProxy::builder(&conn)
            .destination(BUS_NAME)
            .path(MANAGER_PATH)
            .build()
            .await
            .expect("object manager proxy");
        let objects = om.get_managed_objects().await.expect("GetManagedObjects");
        // zbus also lists the bare /org/jailwarden1/jail node, with no
        // interfaces; clients look for the Jail interface.
        let jails = |objects: &zbus::fdo::ManagedObjects| -> Vec<String> {
            let mut v: Vec<String> = objects
                .iter()
                .filter(|(_, i)| i.keys().any(|n| n.as_str() == "org.jailwarden1.Jail"))
                .map(|(p, _)| p.to_string())
                .collect();
            v.sort();
            v
        };
        let mut paths = jails(&objects);
        paths.sort();
        assert_eq!(
            paths,
            [
                "/org/jailwarden1/jail/nginx_2dhttp_2dauth",
                "/org/jailwarden1/jail/sshd",
                "/org/jailwarden1/jail/web"
            ]
        );
        let sshd = &objects[&jail_path("sshd")];
        let props = sshd
            .iter()
            .find(|(i, _)| i.as_str() == "org.jailwarden1.Jail")
            .expect("Jail interface")
            .1;
        assert_eq!(u32::try_from(&props["MaxRetry"]).ok(), Some(3));
        assert_eq!(props.len(), 12, "every property");
        assert!(<&str>::try_from(&props["JournalMatch"]).is_ok(), "JournalMatch is a string");
        assert!(<Vec<String>>::try_from(props["LogPath"].clone()).is_ok(), "LogPath is a list");

        let mut added = om.receive_interfaces_added().await.expect("subscribe");
        let mut removed = om.receive_interfaces_removed().await.expect("subscribe");
        let mgr = ManagerProxy::builder(&conn)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .expect("proxy");
        let mut reloaded = mgr.receive_reloaded().await.expect("subscribe");
        daemon.rewrite_config(
            "[jails.postfix]\nenabled = true\nfilter = \"dummy\"\njournal_match = [\"_SYSTEMD_UNIT=postfix.service\"]\n",
        );
        // Remove "web" by rewriting without it.
        let text = std::fs::read_to_string(daemon.config_path()).expect("config");
        let text = text.replace("[jails.web]\nenabled = false\n", "[jails.gone]\nenabled = false\n");
        std::fs::write(daemon.config_path(), text).expect("config");
        let out = daemon.cli(&["reload"]);
        assert_eq!(ok(&out), "reloaded\n");
        let mut got_added = Vec::new();
        while got_added.len() < 2 {
            let sig = timeout(Duration::from_secs(10), futures_next(&mut added))
                .await
                .expect("InterfacesAdded in time")
                .expect("stream");
            got_added.push(sig.args().expect("args").object_path().to_string());
        }
        got_added.sort();
        assert_eq!(got_added, ["/org/jailwarden1/jail/gone", "/org/jailwarden1/jail/postfix"]);
        let sig = timeout(Duration::from_secs(10), futures_next(&mut removed))
            .await
            .expect("InterfacesRemoved in time")
            .expect("stream");
        assert_eq!(sig.args().expect("args").object_path().as_str(), "/org/jailwarden1/jail/web");
        let sig = timeout(Duration::from_secs(10), futures_next(&mut reloaded))
            .await
            .expect("Reloaded in time")
            .expect("stream");
        assert_eq!(
            sig.args().expect("args").jails(),
            &["gone", "nginx-http-auth", "postfix", "sshd"]
        );
        let objects = om.get_managed_objects().await.expect("GetManagedObjects");
        assert_eq!(
            jails(&objects),
            [
                "/org/jailwarden1/jail/gone",
                "/org/jailwarden1/jail/nginx_2dhttp_2dauth",
                "/org/jailwarden1/jail/postfix",
                "/org/jailwarden1/jail/sshd"
            ]
        );
    });
    // A broken configuration: refused with file:line:column, exit 2; the
    // running one stays.
    std::fs::write(
        daemon.config_path(),
        "[daemon]\nbackend = \"none\"\nbogus = 1\n",
    )
    .expect("config");
    let out = daemon.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("reload refused") && err.contains("jailwarden.toml:3:"),
        "{err}"
    );
    let out = ok(&call(&bus, MANAGER_PATH, MGR, &["ListJails"]));
    assert!(out.starts_with("a(so) 4 "), "{out}");
}

#[test]
fn unprivileged_callers_read_but_cannot_change_and_cannot_take_the_name() {
    bus_support::needs_root!();
    let (bus, daemon) = started();
    ok(&call(
        &bus,
        MANAGER_PATH,
        MGR,
        &["Ban", "sst", "sshd", "192.0.2.7", "0"],
    ));
    // Reading is open.
    let out =
        ok(&bus.busctl_as_nobody(&["call", BUS_NAME, MANAGER_PATH, MGR, "ListBans", "s", ""]));
    assert!(out.contains("192.0.2.7"), "{out}");
    let out = ok(&bus.busctl_as_nobody(&[
        "call",
        BUS_NAME,
        MANAGER_PATH,
        MGR,
        "History",
        "sstu",
        "",
        "",
        "0",
        "0",
    ]));
    assert!(out.contains("192.0.2.7"), "{out}");
    let out =
        ok(&bus.busctl_as_nobody(&["get-property", BUS_NAME, MANAGER_PATH, MGR, "ActiveBans"]));
    assert_eq!(out.trim(), "u 1");
    ok(&bus.busctl_as_nobody(&["introspect", BUS_NAME, jail_path("sshd").as_str()]));
    ok(&bus.busctl_as_nobody(&[
        "call",
        BUS_NAME,
        MANAGER_PATH,
        "org.freedesktop.DBus.ObjectManager",
        "GetManagedObjects",
    ]));
    // Changing is refused: no polkit runs on this bus.
    let m = "org.jailwarden1.Manager";
    for args in [
        vec![
            format!("{m}.Ban"),
            "string:sshd".into(),
            "string:192.0.2.8".into(),
            "uint64:0".into(),
        ],
        vec![
            format!("{m}.Unban"),
            "string:".into(),
            "string:192.0.2.7".into(),
        ],
        vec![format!("{m}.Reload")],
        vec![
            format!("{m}.UnbanRemote"),
            "string:".into(),
            "string:".into(),
        ],
        vec![
            format!("{m}.Report"),
            "string:sshd".into(),
            "string:192.0.2.8".into(),
        ],
    ] {
        let mut all = vec![
            "--dest=org.jailwarden1".to_string(),
            MANAGER_PATH.to_string(),
        ];
        all.extend(args.clone());
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = bus.dbus_send(true, &all);
        assert_eq!(
            error_name(&out),
            "org.freedesktop.DBus.Error.AccessDenied",
            "{args:?}"
        );
        assert!(stderr(&out).contains("polkit"), "{}", stderr(&out));
    }
    let sshd = jail_path("sshd");
    let out = bus.dbus_send(
        true,
        &[
            "--dest=org.jailwarden1",
            sshd.as_str(),
            "org.jailwarden1.Jail.Ban",
            "string:192.0.2.9",
            "uint64:0",
        ],
    );
    assert_eq!(error_name(&out), "org.freedesktop.DBus.Error.AccessDenied");
    let out = ok(&call(&bus, MANAGER_PATH, MGR, &["ListBans", "s", ""]));
    assert!(out.starts_with("a(sstt) 1 "), "nothing changed: {out}");

    // nobody may not own the name (bus policy) ...
    let out = bus.dbus_send(
        true,
        &[
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.RequestName",
            "string:org.jailwarden1",
            "uint32:4",
        ],
    );
    assert_eq!(error_name(&out), "org.freedesktop.DBus.Error.AccessDenied");
    // ... and a second daemon (root) does not take it: it says so and
    // serves its own control socket.
    let mut second = Daemon::start(DaemonSpec {
        bus: Some(&bus),
        wait_for_name: false,
        ..Default::default()
    });
    wait_for(
        Duration::from_secs(30),
        "the second daemon to give up the name",
        || {
            second
                .log()
                .contains("cannot own org.jailwarden1")
                .then_some(())
        },
    );
    let owner = bus.owner("org.jailwarden1").expect("owned");
    assert_eq!(bus_support::bus_pid(&bus, &owner), Some(daemon.pid()));
    let out = ok(&second.cli(&["status", "--json"]));
    assert!(out.contains("\"active_bans\": 0"), "{out}");
    second.stop();
}

/// A stand-in for polkitd on the private bus: records what it is asked
/// and who the subject is, and answers as told.
#[derive(Default)]
struct Asked {
    kind: String,
    action: String,
    /// The subject's uid, looked up while the call is pending.
    uid: Option<u32>,
    /// For unix-process subjects: whether start-time matched /proc.
    start_time_matches: Option<bool>,
    pid: Option<u32>,
}

struct FakeAuthority {
    allow: Arc<std::sync::atomic::AtomicBool>,
    asked: Arc<Mutex<Vec<Asked>>>,
}

#[zbus::interface(name = "org.freedesktop.PolicyKit1.Authority")]
impl FakeAuthority {
    async fn check_authorization(
        &self,
        subject: (String, HashMap<String, zbus::OwnedVariant>),
        action_id: String,
        _details: HashMap<String, String>,
        _flags: u32,
        _cancellation_id: String,
        #[zbus(connection)] conn: &zbus::Connection,
    ) -> (bool, bool, HashMap<String, String>) {
        let (kind, details) = subject;
        let mut asked = Asked {
            kind: kind.clone(),
            action: action_id,
            ..Default::default()
        };
        if kind == "system-bus-name" {
            if let Some(name) = details.get("name").and_then(|v| <&str>::try_from(v).ok()) {
                if let Ok(dbus) = zbus::fdo::DBusProxy::new(conn).await {
                    if let Ok(n) = zbus::names::BusName::try_from(name) {
                        asked.uid = dbus.get_connection_unix_user(n).await.ok();
                    }
                }
            }
        } else if kind == "unix-process" {
            let pid = details.get("pid").and_then(|v| u32::try_from(v).ok());
            let start = details
                .get("start-time")
                .and_then(|v| u64::try_from(v).ok());
            asked.pid = pid;
            if let Some(pid) = pid {
                let status =
                    std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                asked.uid = status
                    .lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().next())
                    .and_then(|u| u.parse().ok());
                asked.start_time_matches =
                    Some(jailwarden::control::polkit::process_start_time(pid) == start);
            }
        }
        self.asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(asked);
        (
            self.allow.load(std::sync::atomic::Ordering::SeqCst),
            false,
            HashMap::new(),
        )
    }
}

/// The CLI binary where nobody can run it (a copy if the build directory
/// is closed to others).

#[test]
fn polkit_is_asked_about_the_caller_not_the_daemon() {
    bus_support::needs_root!();
    use std::os::unix::fs::PermissionsExt;
    let bus = PrivateBus::start_with(
        r#"<policy user="root"><allow own="org.freedesktop.PolicyKit1"/></policy>
  <policy context="default"><allow send_destination="org.freedesktop.PolicyKit1"/></policy>"#,
    );
    let allow = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asked: Arc<Mutex<Vec<Asked>>> = Arc::default();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let address = bus.address().to_string();
    let fake = FakeAuthority {
        allow: allow.clone(),
        asked: asked.clone(),
    };
    let polkitd = std::thread::spawn(move || {
        runtime().block_on(async move {
            let conn = zbus::connection::Builder::address(address.as_str())
                .serve_at("/org/freedesktop/PolicyKit1/Authority", fake)
                .name("org.freedesktop.PolicyKit1")
                .build()
                .await
                .expect("fake polkit on the bus");
            let _ = ready_tx.send(());
            let _ = stop_rx.await;
            drop(conn);
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("fake polkit up");
    let daemon = Daemon::start(DaemonSpec {
        bus: Some(&bus),
        ..Default::default()
    });
    let m = "org.jailwarden1.Manager";
    let ban = |addr: &str| {
        bus.dbus_send(
            true,
            &[
                "--dest=org.jailwarden1",
                MANAGER_PATH,
                &format!("{m}.Ban"),
                "string:sshd",
                &format!("string:{addr}"),
                "uint64:0",
            ],
        )
    };
    // polkit says no.
    assert_eq!(
        error_name(&ban("192.0.2.30")),
        "org.freedesktop.DBus.Error.AccessDenied"
    );
    // polkit says yes.
    allow.store(true, std::sync::atomic::Ordering::SeqCst);
    ok(&ban("192.0.2.31"));
    {
        let asked = asked.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(asked.len(), 2);
        for a in asked.iter() {
            assert_eq!(a.kind, "system-bus-name");
            assert_eq!(a.action, "org.jailwarden1.manage");
            assert_eq!(
                a.uid,
                Some(65534),
                "the subject is the caller (nobody), not the daemon"
            );
        }
    }
    // Root is never asked.
    ok(&call(
        &bus,
        MANAGER_PATH,
        MGR,
        &["Ban", "sst", "sshd", "192.0.2.32", "0"],
    ));
    assert_eq!(asked.lock().unwrap_or_else(|p| p.into_inner()).len(), 2);

    // On the control socket: the peer process is the subject.
    let mut p = daemon.socket().to_path_buf();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).expect("chmod socket");
    while let Some(parent) = p.parent() {
        if parent == daemon.dir().parent().unwrap_or(parent) {
            break;
        }
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))
            .expect("chmod dir");
        p = parent.to_path_buf();
    }
    let bin = bus_support::binary_for_nobody(daemon.dir());
    let run_as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&bin)
            .args(args)
            .arg("--socket")
            .arg(daemon.socket())
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus_support::no_bus(daemon.dir()))
            .output()
            .expect("run the CLI as nobody")
    };
    let out = ok(&run_as_nobody(&["ban", "sshd", "192.0.2.33"]));
    assert_eq!(out, "banned 192.0.2.33 in sshd\n");
    allow.store(false, std::sync::atomic::Ordering::SeqCst);
    let out = run_as_nobody(&["unban", "192.0.2.33"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("access denied"), "{}", stderr(&out));
    {
        let asked = asked.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(asked.len(), 4);
        for a in &asked[2..] {
            assert_eq!(a.kind, "unix-process");
            assert_eq!(a.uid, Some(65534), "the peer (nobody), not the daemon");
            assert_ne!(a.pid, Some(daemon.pid()));
            assert_eq!(a.start_time_matches, Some(true));
        }
    }
    let out = ok(&call(&bus, MANAGER_PATH, MGR, &["ListBans", "s", "sshd"]));
    assert!(
        out.starts_with("a(sstt) 3 ") && out.contains("192.0.2.33"),
        "{out}"
    );
    drop(daemon);
    let _ = stop_tx.send(());
    polkitd.join().expect("fake polkit thread");
}

#[test]
fn list_bans_paged_walks_every_ban_in_order_and_refuses_forged_cursors() {
    bus_support::needs_root!();
    let (bus, daemon) = started();
    for (jail, addr) in [
        ("sshd", "192.0.2.7"),
        ("nginx-http-auth", "198.51.100.4"),
        ("sshd", "192.0.2.8"),
        ("nginx-http-auth", "2001:db8::5"),
        ("sshd", "192.0.2.9"),
    ] {
        ok(&call(
            &bus,
            MANAGER_PATH,
            MGR,
            &["Ban", "sst", jail, addr, "0"],
        ));
    }
    let unpaged = call_json(&bus, &["ListBans", "s", ""]);
    let want: Vec<(String, String)> = unpaged[0]
        .as_array()
        .expect("bans")
        .iter()
        .map(|b| {
            (
                b[0].as_str().unwrap_or_default().into(),
                b[1].as_str().unwrap_or_default().into(),
            )
        })
        .collect();
    assert_eq!(want.len(), 5);
    // Pages of two: three pages, the same bans in the same order as
    // ListBans, with their failures (0: by hand).
    let mut got = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page = call_json(&bus, &["ListBansPaged", "ssu", "", &cursor, "2"]);
        pages += 1;
        assert!(page[0].as_u64().unwrap_or(0) > 0, "now_usec: {page}");
        for b in page[1].as_array().expect("bans") {
            assert_eq!(b[4].as_u64(), Some(0), "{b}");
            got.push((
                b[0].as_str().unwrap_or_default().to_string(),
                b[1].as_str().unwrap_or_default().to_string(),
            ));
        }
        let next = page[2].as_str().expect("next_cursor").to_string();
        if next.is_empty() {
            break;
        }
        assert!(pages < 10, "pages never end");
        cursor = next;
    }
    assert_eq!(pages, 3);
    assert_eq!(got, want);
    // One jail; limit 0 is the default page (all five fit).
    let sshd = call_json(&bus, &["ListBansPaged", "ssu", "sshd", "", "0"]);
    assert_eq!(sshd[1].as_array().map(Vec::len), Some(3));
    assert_eq!(sshd[2], "");
    // A cursor the daemon did not give, and an unknown jail.
    for (jail, cursor, error) in [
        (
            "",
            "sshd/notanumber/192.0.2.7/32",
            "org.jailwarden1.Error.InvalidArgs",
        ),
        ("", "garbage", "org.jailwarden1.Error.InvalidArgs"),
        ("", &"x".repeat(10_000), "org.jailwarden1.Error.InvalidArgs"),
        ("nope", "", "org.jailwarden1.Error.NoSuchJail"),
    ] {
        let out = bus.dbus_send(
            true,
            &[
                "--dest=org.jailwarden1",
                MANAGER_PATH,
                "org.jailwarden1.Manager.ListBansPaged",
                &format!("string:{jail}"),
                &format!("string:{cursor}"),
                "uint32:2",
            ],
        );
        assert_eq!(error_name(&out), error, "{}", stderr(&out));
    }
    drop(daemon);
}
