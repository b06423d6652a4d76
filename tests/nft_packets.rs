//! Traffic through the nftables backend: three network namespaces on veth
//! pairs (documentation addresses only). The test's own namespace is the
//! server running the backend; `banned` gets banned; `other` never is.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use jailwarden::ban::nftables::Nftables;
use jailwarden::ban::{Ban, Banner, JailFirewall, PortRange, Protocol, Verdict};
use jiff::{SignedDuration, Timestamp};
use support::{NamedNetns, in_netns, run, values, wait_until};

/// Does a TCP connection from `ns` to `addr:port` succeed? (nc waits at
/// most 1 s.) Also returns how long the attempt took.
fn connects(ns: &NamedNetns, addr: &str, port: u16) -> (bool, Duration) {
    let start = Instant::now();
    let out = ns.exec(&["nc", "-z", "-w", "1", addr, &port.to_string()]);
    (out.status.success(), start.elapsed())
}

/// A veth pair from this namespace to `peer`, with addresses on both ends.
fn link(peer: &NamedNetns, here: &str, there: &str, here_addrs: &[&str], peer_addrs: &[&str]) {
    run(
        "ip",
        &[
            "link", "add", here, "type", "veth", "peer", "name", there, "netns", &peer.0,
        ],
    );
    for a in here_addrs {
        // nodad: IPv6 addresses are usable at once, not after DAD.
        run("ip", &["addr", "add", a, "dev", here, "nodad"]);
    }
    run("ip", &["link", "set", here, "up"]);
    for a in peer_addrs {
        peer.exec_ok(&["ip", "addr", "add", a, "dev", there, "nodad"]);
    }
    peer.exec_ok(&["ip", "link", "set", there, "up"]);
}

fn ban(net: &str, secs: i64) -> Ban {
    let now = Timestamp::now();
    Ban {
        jail: "sshd".into(),
        net: IpNet::from(net.parse::<std::net::IpAddr>().expect("address")),
        banned_at: now,
        expires_at: Some(now + SignedDuration::from_secs(secs)),
        failures: 5,
    }
}

#[test]
fn a_banned_peer_is_cut_off_until_the_kernel_lifts_its_ban() {
    support::needs_root!();
    in_netns(|| {
        let banned = NamedNetns::new("banned");
        let other = NamedNetns::new("other");
        link(
            &banned,
            "jwb0",
            "jwb1",
            &["192.0.2.1/25", "2001:db8::1/64"],
            &["192.0.2.2/25", "2001:db8::2/64"],
        );
        link(
            &other,
            "jwo0",
            "jwo1",
            &["192.0.2.129/25", "2001:db8:0:1::1/64"],
            &["192.0.2.130/25", "2001:db8:0:1::2/64"],
        );
        // Dual-stack listeners; the kernel completes handshakes from the
        // backlog, no accept() needed.
        let _ssh = TcpListener::bind("[::]:2222").expect("listen 2222");
        let _web = TcpListener::bind("[::]:8080").expect("listen 8080");
        for (ns, v4, v6) in [
            (&banned, "192.0.2.1", "2001:db8::1"),
            (&other, "192.0.2.129", "2001:db8:0:1::1"),
        ] {
            assert!(connects(ns, v4, 2222).0, "baseline {}", ns.0);
            assert!(connects(ns, v6, 2222).0, "baseline {}", ns.0);
        }

        let mut jail = JailFirewall {
            jail: "sshd".into(),
            ports: vec![PortRange {
                first: 2222,
                last: 2222,
            }],
            protocols: vec![Protocol::Tcp],
            verdict: Verdict::Drop,
            v6_prefix: 128,
            set_size: 0,
        };
        let mut nft = Nftables::new().expect("socket");
        nft.configure(std::slice::from_ref(&jail))
            .expect("configure");
        let banned_at = Instant::now();
        let bans = [ban("192.0.2.2", 6), ban("2001:db8::2", 6)];
        nft.ban(&bans, Timestamp::now()).expect("ban");

        assert!(!connects(&banned, "192.0.2.1", 2222).0, "banned over IPv4");
        assert!(
            !connects(&banned, "2001:db8::1", 2222).0,
            "banned over IPv6"
        );
        assert!(
            connects(&banned, "192.0.2.1", 8080).0,
            "other ports stay open"
        );
        assert!(
            connects(&other, "192.0.2.129", 2222).0,
            "others are not banned"
        );
        assert!(
            connects(&other, "2001:db8:0:1::1", 2222).0,
            "others are not banned"
        );
        assert!(
            banned_at.elapsed() < Duration::from_secs(5),
            "checks ran while the ban lasted"
        );

        // The kernel lifts it, no daemon involved.
        assert!(
            wait_until(Duration::from_secs(10), || values("sshd-v4").is_empty()
                && values("sshd-v6").is_empty()),
            "elements did not expire"
        );
        assert!(connects(&banned, "192.0.2.1", 2222).0, "unbanned over IPv4");
        assert!(
            connects(&banned, "2001:db8::1", 2222).0,
            "unbanned over IPv6"
        );

        // Reject: the banned client fails fast instead of timing out.
        jail.verdict = Verdict::Reject;
        nft.configure(std::slice::from_ref(&jail))
            .expect("configure");
        nft.ban(&[ban("192.0.2.2", 60)], Timestamp::now())
            .expect("ban");
        let (ok, took) = connects(&banned, "192.0.2.1", 2222);
        assert!(!ok, "rejected");
        assert!(
            took < Duration::from_millis(900),
            "reset, not a timeout: {took:?}"
        );
        assert!(connects(&other, "192.0.2.129", 2222).0);
        nft.unban(&[ban("192.0.2.2", 60)]).expect("unban");
        assert!(connects(&banned, "192.0.2.1", 2222).0, "unbanned");
    });
}
