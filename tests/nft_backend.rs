//! The nftables backend against the real kernel, each test in a network
//! namespace of its own (see `support`). Needs root, as CI runs it.
//! Assertions look at what a user would: `nft -j list ...` output.

mod support;

use std::time::Duration;

use ipnet::IpNet;
use jailwarden::ban::nftables::{KernelLimits, Nftables};
use jailwarden::ban::{Ban, BanError, Banner, JailFirewall, PortRange, Protocol, Verdict};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use support::{elements, in_netns, nft_json, nft_script, run, values, wait_until};

fn jail(name: &str) -> JailFirewall {
    JailFirewall {
        jail: name.into(),
        ports: vec![],
        protocols: vec![],
        verdict: Verdict::Drop,
        v6_prefix: 128,
        set_size: 0,
    }
}

fn ban(jail: &str, net: &str, secs: Option<i64>, now: Timestamp) -> Ban {
    let net: IpNet = net
        .parse()
        .unwrap_or_else(|_| IpNet::from(net.parse::<std::net::IpAddr>().expect("address")));
    Ban {
        jail: jail.into(),
        net,
        banned_at: now,
        expires_at: secs.map(|s| now + SignedDuration::from_secs(s)),
        failures: 3,
    }
}

fn backend(jails: &[JailFirewall]) -> Nftables {
    let mut nft = Nftables::new().expect("netlink socket");
    nft.configure(jails).expect("configure");
    nft
}

/// The rules of our chain as `nft -j` shows them.
fn rules() -> Vec<Value> {
    let v = nft_json(&["chain", "inet", "jailwarden", "input"]);
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("rule").cloned())
        .collect()
}

fn rule_text() -> String {
    run("nft", &["list", "chain", "inet", "jailwarden", "input"])
}

#[test]
fn bans_are_elements_with_the_remaining_time_as_timeout() {
    support::needs_root!();
    in_netns(|| {
        let now = Timestamp::now();
        let mut nft = backend(&[jail("sshd")]);
        nft.ban(
            &[
                ban("sshd", "192.0.2.7", Some(3600), now),
                ban("sshd", "192.0.2.8", None, now),
                ban("sshd", "2001:db8::7", Some(600), now),
                // IPv4-mapped IPv6 is the IPv4 address.
                ban("sshd", "::ffff:198.51.100.9", Some(3600), now),
            ],
            now,
        )
        .unwrap();
        let v4 = elements("sshd-v4");
        assert_eq!(
            v4.iter().map(|e| e.val.as_str()).collect::<Vec<_>>(),
            ["192.0.2.7", "192.0.2.8", "198.51.100.9"]
        );
        assert_eq!(v4[0].timeout, Some(3600));
        assert!(
            v4[0].expires.is_some_and(|e| (3590..=3600).contains(&e)),
            "{v4:?}"
        );
        assert_eq!(v4[1].timeout, None, "permanent bans have no timeout");
        let v6 = elements("sshd-v6");
        assert_eq!(v6.len(), 1);
        assert_eq!(v6[0].val, "2001:db8::7");
        assert_eq!(v6[0].timeout, Some(600));

        // The chain: filter, input hook, before the usual filter chains.
        let v = nft_json(&["chain", "inet", "jailwarden", "input"]);
        let chain = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|i| i.get("chain"))
            .expect("chain")
            .clone();
        assert_eq!(chain["hook"], "input");
        assert_eq!(chain["type"], "filter");
        assert_eq!(chain["policy"], "accept");
        assert!(chain["prio"].as_i64().unwrap() <= -10, "{chain}");
        let text = rule_text();
        assert!(text.contains("ip saddr @sshd-v4"), "{text}");
        assert!(text.contains("ip6 saddr @sshd-v6"), "{text}");
        assert_eq!(rules().len(), 2);
        // The backend's own listing agrees.
        let mut listed: Vec<(String, Option<u64>)> = nft
            .elements("sshd")
            .unwrap()
            .iter()
            .map(|e| (e.net().unwrap().to_string(), e.timeout.map(|t| t.as_secs())))
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            [
                ("192.0.2.7/32".to_string(), Some(3600)),
                ("192.0.2.8/32".to_string(), None),
                ("198.51.100.9/32".to_string(), Some(3600)),
                ("2001:db8::7/128".to_string(), Some(600)),
            ]
        );
        let limits = nft.kernel_limits().expect("probed");
        assert!(
            limits.max_timeout >= Duration::from_secs(86400 * 365),
            "{limits:?}"
        );

        // Re-asserting with a new expiry renews the timeout.
        nft.ban(&[ban("sshd", "192.0.2.7", Some(7200), now)], now)
            .unwrap();
        assert_eq!(elements("sshd-v4")[0].timeout, Some(7200));

        nft.unban(&[
            ban("sshd", "192.0.2.7", None, now),
            // already gone: not an error
            ban("sshd", "192.0.2.99", None, now),
        ])
        .unwrap();
        assert_eq!(values("sshd-v4"), ["192.0.2.8", "198.51.100.9"]);
    });
}

#[test]
fn the_kernel_expires_elements_on_time() {
    support::needs_root!();
    in_netns(|| {
        let now = Timestamp::now();
        let mut nft = backend(&[jail("sshd")]);
        nft.ban(
            &[
                ban("sshd", "192.0.2.1", Some(1), now),
                ban("sshd", "192.0.2.2", Some(3600), now),
            ],
            now,
        )
        .unwrap();
        assert_eq!(values("sshd-v4"), ["192.0.2.1", "192.0.2.2"]);
        // No daemon involved: the kernel drops it.
        assert!(
            wait_until(Duration::from_secs(5), || values("sshd-v4")
                == ["192.0.2.2"]),
            "still {:?}",
            values("sshd-v4")
        );
        drop(nft);
    });
}

#[test]
fn reconcile_restores_what_was_flushed_or_deleted_behind_our_back() {
    support::needs_root!();
    in_netns(|| {
        let now = Timestamp::now();
        let mut nft = backend(&[jail("sshd"), jail("web")]);
        let bans = vec![
            ban("sshd", "192.0.2.1", Some(3600), now),
            ban("sshd", "192.0.2.2", None, now),
            ban("sshd", "2001:db8::1", Some(3600), now),
            ban("web", "198.51.100.1", Some(3600), now),
        ];
        let r = nft.reconcile(&bans, now).unwrap();
        assert_eq!((r.added, r.kept, r.removed, r.renewed), (4, 0, 0, 0));

        run("nft", &["flush", "set", "inet", "jailwarden", "sshd-v4"]);
        assert!(values("sshd-v4").is_empty());
        // An idle daemon's release of the receive buffer: the next read
        // works as before.
        nft.shrink();
        let r = nft.reconcile(&bans, now).unwrap();
        assert_eq!((r.added, r.kept, r.removed, r.renewed), (2, 2, 0, 0));
        assert_eq!(values("sshd-v4"), ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(elements("sshd-v4")[0].timeout, Some(3600));

        run("nft", &["delete", "table", "inet", "jailwarden"]);
        let r = nft.reconcile(&bans, now).unwrap();
        assert_eq!((r.added, r.kept), (4, 0));
        assert_eq!(values("sshd-v4"), ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(values("sshd-v6"), ["2001:db8::1"]);
        assert_eq!(values("web-v4"), ["198.51.100.1"]);
        assert_eq!(rules().len(), 4, "{}", rule_text());

        // A rule deleted by hand comes back too.
        let handle = rules()[0]["handle"].as_u64().unwrap().to_string();
        run(
            "nft",
            &[
                "delete",
                "rule",
                "inet",
                "jailwarden",
                "input",
                "handle",
                &handle,
            ],
        );
        nft.reconcile(&bans, now).unwrap();
        assert_eq!(rules().len(), 4);

        // A chain policy changed by hand (which would cut the host off),
        // or a chain at another priority, is put back.
        let chain = || {
            let v = nft_json(&["chain", "inet", "jailwarden", "input"]);
            v["nftables"][1]["chain"].clone()
        };
        run(
            "nft",
            &["chain", "inet", "jailwarden", "input", "{ policy drop; }"],
        );
        assert_eq!(chain()["policy"], "drop");
        nft.reconcile(&bans, now).unwrap();
        assert_eq!(chain()["policy"], "accept");
        run("nft", &["delete", "table", "inet", "jailwarden"]);
        nft_script(
            "table inet jailwarden {
               chain input {
                 type filter hook input priority 0; policy accept;
               }
             }",
        );
        let r = nft.reconcile(&bans, now).unwrap();
        assert_eq!(r.added, 4);
        assert_eq!(chain()["prio"], -10);
        assert_eq!(rules().len(), 4);

        // ban() and unban() survive the table vanishing too.
        run("nft", &["delete", "table", "inet", "jailwarden"]);
        nft.unban(&bans[..1]).unwrap();
        nft.ban(&bans[..1], now).unwrap();
        assert_eq!(values("sshd-v4"), ["192.0.2.1"]);
        assert_eq!(rules().len(), 4);
    });
}

#[test]
fn a_restarted_daemon_keeps_every_element_and_fixes_only_what_differs() {
    support::needs_root!();
    in_netns(|| {
        let now = Timestamp::now();
        let jails = [jail("sshd")];
        let bans: Vec<Ban> = (1..=50)
            .map(|i| ban("sshd", &format!("192.0.2.{i}"), Some(3600 + i), now))
            .chain([ban("sshd", "2001:db8::9", None, now)])
            .collect();
        let mut first = backend(&jails);
        assert_eq!(first.reconcile(&bans, now).unwrap().added, 51);
        let before = elements("sshd-v4");
        drop(first);

        // "Restart": a new instance, a little later, same store.
        std::thread::sleep(Duration::from_millis(1200));
        let mut second = backend(&jails);
        let later = Timestamp::now();
        let r = second.reconcile(&bans, later).unwrap();
        assert_eq!((r.kept, r.added, r.removed, r.renewed), (51, 0, 0, 0));
        // Nothing re-added: the kernel's expiry still counts down from the
        // first install.
        let after = elements("sshd-v4");
        assert_eq!(before.len(), after.len());
        assert!(after.iter().all(|e| e.expires < e.timeout), "{after:?}");

        // Changes behind our back: an element nobody banned, one whose
        // timeout drifted, one gone.
        run(
            "nft",
            &[
                "add",
                "element",
                "inet",
                "jailwarden",
                "sshd-v4",
                "{ 203.0.113.5 timeout 1h }",
            ],
        );
        run(
            "nft",
            &[
                "add",
                "element",
                "inet",
                "jailwarden",
                "sshd-v4",
                "{ 192.0.2.1 timeout 10m }",
            ],
        );
        run(
            "nft",
            &[
                "delete",
                "element",
                "inet",
                "jailwarden",
                "sshd-v4",
                "{ 192.0.2.2 }",
            ],
        );
        let r = second.reconcile(&bans, Timestamp::now()).unwrap();
        assert_eq!((r.kept, r.added, r.removed, r.renewed), (49, 1, 1, 1));
        let v = elements("sshd-v4");
        assert!(!v.iter().any(|e| e.val == "203.0.113.5"));
        let renewed = v.iter().find(|e| e.val == "192.0.2.1").unwrap();
        // Renewed to the time left of its ban (3601 s from the first `now`).
        assert!(
            renewed.timeout.is_some_and(|t| (3590..=3601).contains(&t)),
            "{renewed:?}"
        );
    });
}

#[test]
fn ipv6_prefix_bans_are_interval_elements() {
    support::needs_root!();
    in_netns(|| {
        let now = Timestamp::now();
        let mut j = jail("sshd");
        j.v6_prefix = 64;
        let mut nft = backend(&[j]);
        let bans = vec![
            ban("sshd", "2001:db8:1:2::/64", Some(600), now),
            ban("sshd", "2001:db8:5::/64", None, now),
            // A single address in an interval set is fine too.
            ban("sshd", "2001:db8:9::1", Some(600), now),
            // Inside a banned prefix that lasts longer: nothing to add.
            ban("sshd", "2001:db8:1:2::77", Some(60), now),
        ];
        nft.ban(&bans, now).unwrap();
        let v6 = elements("sshd-v6");
        assert_eq!(
            v6.iter().map(|e| e.val.as_str()).collect::<Vec<_>>(),
            ["2001:db8:1:2::/64", "2001:db8:5::/64", "2001:db8:9::1"]
        );
        assert_eq!(v6[0].timeout, Some(600));
        assert_eq!(v6[1].timeout, None);
        let set = nft_json(&["set", "inet", "jailwarden", "sshd-v6"]);
        let flags = set["nftables"][1]["set"]["flags"].to_string();
        assert!(
            flags.contains("interval") && flags.contains("timeout"),
            "{flags}"
        );

        let r = nft.reconcile(&bans, now).unwrap();
        assert_eq!((r.kept, r.added, r.removed, r.renewed), (3, 0, 0, 0));
        run("nft", &["flush", "set", "inet", "jailwarden", "sshd-v6"]);
        let r = nft.reconcile(&bans[..2], now).unwrap();
        assert_eq!(r.added, 2);
        assert_eq!(values("sshd-v6"), ["2001:db8:1:2::/64", "2001:db8:5::/64"]);
        nft.unban(&bans[..1]).unwrap();
        assert_eq!(values("sshd-v6"), ["2001:db8:5::/64"]);
    });
}

#[test]
fn rules_follow_ports_protocols_and_verdict() {
    support::needs_root!();
    in_netns(|| {
        let mut j = jail("sshd");
        j.ports = vec![
            PortRange {
                first: 22,
                last: 22,
            },
            PortRange {
                first: 2222,
                last: 2222,
            },
        ];
        let mut web = jail("web");
        web.ports = vec![
            PortRange {
                first: 80,
                last: 80,
            },
            PortRange {
                first: 8000,
                last: 8080,
            },
        ];
        web.protocols = vec![Protocol::Tcp, Protocol::Udp];
        web.verdict = Verdict::Reject;
        let mut nft = backend(&[j.clone(), web.clone()]);
        let text = rule_text();
        let sshd: Vec<&str> = text.lines().filter(|l| l.contains("@sshd-v4")).collect();
        assert_eq!(sshd.len(), 1, "{text}");
        assert!(sshd[0].contains("tcp dport { 22, 2222 }"), "{text}");
        assert!(sshd[0].contains("drop"), "{text}");
        let webl: Vec<&str> = text.lines().filter(|l| l.contains("@web-v6")).collect();
        assert!(webl[0].contains("8000-8080"), "{text}");
        assert!(webl[0].contains("reject"), "{text}");
        assert!(webl[0].contains("tcp") && webl[0].contains("udp"), "{text}");
        let handles = |t: &str| {
            rules()
                .iter()
                .filter(|r| r["comment"].as_str().unwrap_or("").contains(t))
                .map(|r| r["handle"].as_u64().unwrap())
                .collect::<Vec<_>>()
        };
        let sshd_handles = handles("sshd-");
        let web_handles = handles("web-");

        // Unchanged configuration: nothing is touched.
        nft.configure(&[j.clone(), web.clone()]).unwrap();
        assert_eq!(handles("sshd-"), sshd_handles);

        // Changing one jail replaces its rules only; its elements stay.
        let now = Timestamp::now();
        nft.ban(&[ban("sshd", "192.0.2.3", Some(600), now)], now)
            .unwrap();
        j.verdict = Verdict::Reject;
        nft.configure(&[j.clone(), web.clone()]).unwrap();
        assert_ne!(handles("sshd-"), sshd_handles);
        assert_eq!(handles("web-"), web_handles);
        assert!(
            rule_text()
                .lines()
                .any(|l| l.contains("@sshd-v4") && l.contains("reject with tcp reset")),
            "{}",
            rule_text()
        );
        assert_eq!(values("sshd-v4"), ["192.0.2.3"]);
    });
}

#[test]
fn jails_no_longer_configured_lose_their_sets_others_keep_theirs() {
    support::needs_root!();
    in_netns(|| {
        let now = Timestamp::now();
        let mut nft = backend(&[jail("a"), jail("b")]);
        nft.ban(
            &[
                ban("a", "192.0.2.1", Some(600), now),
                ban("b", "192.0.2.2", Some(600), now),
            ],
            now,
        )
        .unwrap();
        let mut a = jail("a");
        a.set_size = 0;
        nft.configure(&[a, jail("c")]).unwrap();
        let table = run("nft", &["list", "table", "inet", "jailwarden"]);
        assert!(
            !table.contains("b-v4") && !table.contains("b-v6"),
            "{table}"
        );
        assert!(table.contains("set c-v4"), "{table}");
        assert_eq!(values("a-v4"), ["192.0.2.1"], "never flushed");
        assert_eq!(rules().len(), 4);
        // Bans for the removed jail are refused clearly.
        match nft.ban(&[ban("b", "192.0.2.9", Some(60), now)], now) {
            Err(BanError::UnknownJail { jail }) => assert_eq!(jail, "b"),
            other => panic!("{other:?}"),
        }
        // Changing a set's kind recreates that set only.
        let mut a6 = jail("a");
        a6.v6_prefix = 64;
        nft.configure(&[a6, jail("c")]).unwrap();
        assert_eq!(values("a-v4"), ["192.0.2.1"]);
        let set = nft_json(&["set", "inet", "jailwarden", "a-v6"]);
        assert!(
            set["nftables"][1]["set"]["flags"]
                .to_string()
                .contains("interval")
        );
    });
}

#[test]
fn odd_and_long_jail_names_get_safe_stable_set_names() {
    support::needs_root!();
    in_netns(|| {
        let long = "x".repeat(300);
        let names = ["my jail/ü", long.as_str()];
        let jails: Vec<JailFirewall> = names.iter().map(|n| jail(n)).collect();
        let now = Timestamp::now();
        let mut nft = backend(&jails);
        for n in names {
            nft.ban(&[ban(n, "192.0.2.4", Some(60), now)], now).unwrap();
            let [v4, _] = Nftables::set_names(n);
            assert!(v4.len() < 100, "{v4}");
            assert_eq!(values(&v4), ["192.0.2.4"]);
        }
    });
}

#[test]
fn a_full_set_names_the_element_that_did_not_fit_and_changes_nothing() {
    support::needs_root!();
    in_netns(|| {
        let now = Timestamp::now();
        let mut j = jail("sshd");
        j.set_size = 2;
        let mut nft = backend(&[j]);
        nft.ban(&[ban("sshd", "192.0.2.1", Some(600), now)], now)
            .unwrap();
        let err = nft
            .ban(
                &[
                    ban("sshd", "192.0.2.2", Some(600), now),
                    ban("sshd", "192.0.2.3", Some(600), now),
                ],
                now,
            )
            .unwrap_err();
        match &err {
            BanError::SetFull { jail, element } => {
                assert_eq!(jail, "sshd");
                assert_eq!(element, "192.0.2.3");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("192.0.2.3"), "{err}");
        // One transaction: 192.0.2.2 was not added either.
        assert_eq!(values("sshd-v4"), ["192.0.2.1"]);
    });
}

#[test]
fn wrong_family_or_prefix_is_a_clear_error() {
    support::needs_root!();
    in_netns(|| {
        let now = Timestamp::now();
        let mut nft = backend(&[jail("sshd")]);
        for (net, what) in [
            ("2001:db8::/64", "IPv6 prefixes"),
            ("192.0.2.0/24", "IPv4 networks"),
        ] {
            match nft.ban(&[ban("sshd", net, Some(60), now)], now) {
                Err(e @ BanError::BadElement { .. }) => {
                    assert!(e.to_string().contains(what), "{e}");
                    assert!(e.to_string().contains(net), "{e}");
                }
                other => panic!("{net}: {other:?}"),
            }
        }
        assert!(matches!(
            nft.reconcile(&[ban("nope", "192.0.2.1", Some(60), now)], now),
            Err(BanError::UnknownJail { .. })
        ));
        // Unbanning a network never lifts one of its addresses instead.
        nft.ban(&[ban("sshd", "192.0.2.0", Some(60), now)], now)
            .unwrap();
        assert!(matches!(
            nft.unban(&[ban("sshd", "192.0.2.0/24", None, now)]),
            Err(BanError::BadElement { .. })
        ));
        assert_eq!(values("sshd-v4"), ["192.0.2.0"]);
        nft.unban(&[ban("sshd", "192.0.2.0", None, now)]).unwrap();
        let mut bad = jail("x");
        bad.v6_prefix = 0;
        assert!(matches!(
            nft.configure(&[bad]),
            Err(BanError::BadConfig { .. })
        ));
        assert!(values("sshd-v4").is_empty());
    });
}

#[test]
fn other_programs_tables_are_never_touched() {
    support::needs_root!();
    in_netns(|| {
        nft_script(
            "table inet other {
               set s { type ipv4_addr; flags timeout; elements = { 192.0.2.50 timeout 1h } }
               chain input { type filter hook input priority 0; policy accept; ip saddr @s drop; }
             }
             table ip jailwarden {
               chain c {
               }
             }",
        );
        let snapshot = || {
            let mut v = nft_json(&["table", "inet", "other"]);
            // Expiry counts down; compare the rest.
            for item in v["nftables"].as_array_mut().unwrap() {
                if let Some(elems) = item.pointer_mut("/set/elem") {
                    for e in elems.as_array_mut().unwrap() {
                        if let Some(o) = e.get_mut("elem").and_then(Value::as_object_mut) {
                            o.remove("expires");
                        }
                    }
                }
            }
            (v, run("nft", &["list", "table", "ip", "jailwarden"]))
        };
        let before = snapshot();
        let now = Timestamp::now();
        let mut nft = backend(&[jail("sshd")]);
        nft.ban(&[ban("sshd", "192.0.2.50", Some(60), now)], now)
            .unwrap();
        nft.reconcile(&[], now).unwrap();
        nft.unban(&[ban("sshd", "192.0.2.50", None, now)]).unwrap();
        nft.shutdown(true).unwrap();
        assert_eq!(snapshot(), before);
        let tables = run("nft", &["list", "tables"]);
        assert!(!tables.contains("inet jailwarden"), "{tables}");
    });
}

#[test]
fn shutdown_leaves_bans_in_force_unless_asked_to_flush() {
    support::needs_root!();
    in_netns(|| {
        let now = Timestamp::now();
        let mut nft = backend(&[jail("sshd")]);
        nft.ban(&[ban("sshd", "192.0.2.1", Some(600), now)], now)
            .unwrap();
        nft.shutdown(false).unwrap();
        drop(nft);
        assert_eq!(values("sshd-v4"), ["192.0.2.1"]);
        let mut nft = backend(&[jail("sshd")]);
        nft.shutdown(true).unwrap();
        assert!(!run("nft", &["list", "tables"]).contains("jailwarden"));
        // Flushing twice is fine.
        nft.shutdown(true).unwrap();
    });
}

#[test]
fn long_bans_are_capped_and_reported_for_renewal() {
    support::needs_root!();
    in_netns(|| {
        let now = Timestamp::now();
        let mut nft = backend(&[jail("sshd")]);
        let real = nft.kernel_limits().unwrap();
        // Pretend the kernel's cap is 20 s (older kernels have small ones).
        nft.assume_kernel_limits(KernelLimits {
            max_timeout: Duration::from_secs(20),
            ..real
        });
        let long = ban("sshd", "192.0.2.1", Some(3600), now);
        let short = ban("sshd", "192.0.2.2", Some(10), now);
        let forever = ban("sshd", "192.0.2.3", None, now);
        let all = [long.clone(), short, forever];
        nft.ban(&all, now).unwrap();
        let v4 = elements("sshd-v4");
        assert_eq!(v4[0].timeout, Some(20), "capped: {v4:?}");
        assert_eq!(v4[1].timeout, Some(10));
        assert_eq!(v4[2].timeout, None);
        // Lapses in 20 s: due within a 30 s horizon, not within 5 s.
        assert_eq!(
            nft.renewals_due(&all, now, Duration::from_secs(30)),
            std::slice::from_ref(&long)
        );
        assert!(
            nft.renewals_due(&all, now, Duration::from_secs(5))
                .is_empty()
        );
        // Reconcile keeps a capped element while it has half its time left.
        let r = nft.reconcile(&all, now).unwrap();
        assert_eq!((r.kept, r.renewed), (3, 0));
        // A fresh instance does not know when it lapses: due.
        let mut other = Nftables::new().unwrap();
        other.configure(&[jail("sshd")]).unwrap();
        other.assume_kernel_limits(KernelLimits {
            max_timeout: Duration::from_secs(20),
            ..real
        });
        assert_eq!(
            other.renewals_due(&all, now, Duration::from_secs(1)),
            std::slice::from_ref(&long)
        );
        // ... until it reads the table back.
        other.reconcile(&all, Timestamp::now()).unwrap();
        assert!(
            other
                .renewals_due(&all, Timestamp::now(), Duration::from_secs(5))
                .is_empty()
        );
    });
}

#[test]
fn older_kernels_get_the_fallbacks() {
    support::needs_root!();
    in_netns(|| {
        let now = Timestamp::now();
        let mut nft = backend(&[jail("sshd")]);
        let real = nft.kernel_limits().unwrap();
        // No DESTROYSETELEM, no timeout updates, no element count.
        nft.assume_kernel_limits(KernelLimits {
            timeout_update: false,
            destroy: false,
            set_count: false,
            ..real
        });
        nft.ban(&[ban("sshd", "192.0.2.1", Some(600), now)], now)
            .unwrap();
        nft.ban(
            &[
                ban("sshd", "192.0.2.1", Some(1200), now),
                ban("sshd", "192.0.2.2", Some(600), now),
            ],
            now,
        )
        .unwrap();
        let v4 = elements("sshd-v4");
        assert_eq!(v4[0].timeout, Some(1200), "re-asserted by delete + add");
        nft.unban(&[
            ban("sshd", "192.0.2.9", None, now),
            ban("sshd", "192.0.2.2", None, now),
        ])
        .unwrap();
        assert_eq!(values("sshd-v4"), ["192.0.2.1"]);
        run(
            "nft",
            &[
                "add",
                "element",
                "inet",
                "jailwarden",
                "sshd-v4",
                "{ 192.0.2.1 timeout 5m }",
            ],
        );
        let r = nft
            .reconcile(&[ban("sshd", "192.0.2.1", Some(1200), now)], now)
            .unwrap();
        assert_eq!(r.renewed, 1);
        assert_eq!(elements("sshd-v4")[0].timeout, Some(1200));
    });
}

#[test]
fn big_sets_are_read_back_by_key_and_extras_still_found() {
    support::needs_root!();
    in_netns(|| {
        let now = Timestamp::now();
        let mut nft = backend(&[jail("big")]);
        // More than the dump threshold, so reconcile looks keys up.
        let bans: Vec<Ban> = (0..60_000u32)
            .map(|i| {
                let a = std::net::Ipv4Addr::from(0x0a00_0000 + i);
                Ban {
                    jail: "big".into(),
                    net: IpNet::from(std::net::IpAddr::V4(a)),
                    banned_at: now,
                    expires_at: Some(now + SignedDuration::from_secs(3600)),
                    failures: 1,
                }
            })
            .collect();
        assert_eq!(nft.reconcile(&bans, now).unwrap().added, 60_000);
        let r = nft.reconcile(&bans, now).unwrap();
        assert_eq!((r.kept, r.added, r.removed, r.renewed), (60_000, 0, 0, 0));
        // Elements nobody asked for, and a missing one.
        run(
            "nft",
            &[
                "add",
                "element",
                "inet",
                "jailwarden",
                "big-v4",
                "{ 192.0.2.1, 192.0.2.2 }",
            ],
        );
        run(
            "nft",
            &[
                "delete",
                "element",
                "inet",
                "jailwarden",
                "big-v4",
                "{ 10.0.0.5 }",
            ],
        );
        let r = nft.reconcile(&bans, now).unwrap();
        assert_eq!((r.kept, r.added, r.removed), (59_999, 1, 2));
        let listed = run("nft", &["list", "set", "inet", "jailwarden", "big-v4"]);
        assert!(!listed.contains("192.0.2.1"));
        assert!(listed.contains("10.0.0.5 "));
    });
}

/// Drop CAP_NET_ADMIN from the calling thread (capabilities are per
/// thread; the test's thread ends with the test).
fn drop_cap_net_admin() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget(2)/capset(2) with a v3 header and the two data
    // structs v3 expects, all live for the calls; pid 0 is this thread.
    unsafe {
        assert_eq!(
            libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()),
            0
        );
        data[0].effective &= !(1 << CAP_NET_ADMIN);
        data[0].permitted &= !(1 << CAP_NET_ADMIN);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()),
            0
        );
    }
}

#[test]
fn without_cap_net_admin_the_error_says_so() {
    support::needs_root!();
    in_netns(|| {
        drop_cap_net_admin();
        let mut nft = Nftables::new().expect("opening the socket needs no privilege");
        match nft.configure(&[jail("sshd")]) {
            Err(e @ BanError::Permission(_)) => {
                assert!(e.to_string().contains("CAP_NET_ADMIN"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    });
}

/// jailwarden.toml(5): `protocol` only acts with `port`; a jail without
/// ports bans every port of every protocol, whatever `protocol` says.
#[test]
fn protocol_without_port_blocks_every_protocol() {
    support::needs_root!();
    in_netns(|| {
        let mut udp_only = jail("dns");
        udp_only.protocols = vec![Protocol::Udp];
        let _nft = backend(&[udp_only]);
        let text = rule_text();
        let rule: Vec<&str> = text.lines().filter(|l| l.contains("@dns-v4")).collect();
        assert_eq!(rule.len(), 1, "{text}");
        assert!(
            !rule[0].contains("udp") && !rule[0].contains("tcp") && !rule[0].contains("dport"),
            "a rule without ports matches the address only: {text}"
        );
        assert!(rule[0].contains("drop"), "{text}");
    });
}
