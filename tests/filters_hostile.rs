//! Hostile lines: attacker text (user names, URLs, headers, SIP URIs,
//! query names) that contains an address must never choose the host a
//! filter blames. Each family of filters has its own module.

/// Web applications, databases, VoIP, DNS and misc services (and
/// recidive, which reads jailwarden's own ban events).
mod apps {
    use std::path::PathBuf;
    use std::sync::Arc;

    use jailwarden::config::reader::Diagnostics;
    use jailwarden::filter::date::DateFinder;
    use jailwarden::filter::def::FilterPath;
    use jailwarden::filter::{Filter, FilterLoader, Matcher, Outcome};
    use jiff::Timestamp;
    use jiff::tz::TimeZone;

    const REAL: &str = "203.0.113.5";

    fn compile(name: &str, mode: &str) -> Arc<Filter> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/filters");
        let loader = FilterLoader::new(FilterPath::new(vec![dir]));
        let diags = Diagnostics::new();
        let f = loader.compile(name, mode, &diags);
        let errors: Vec<String> = diags.into_sorted().iter().map(|d| d.to_string()).collect();
        Arc::new(f.unwrap_or_else(|| panic!("{name}: {errors:?}")))
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_124_013_600).expect("now")
    }

    fn matcher(name: &str, mode: &str) -> Matcher {
        compile(name, mode).matcher(DateFinder::new(TimeZone::UTC, now()))
    }

    fn blamed(out: Outcome) -> Option<String> {
        match out {
            Outcome::Matched {
                failure: Some(f), ..
            } => Some(f.host_text),
            _ => None,
        }
    }

    /// The host the last of `lines` blames (all through one matcher).
    fn last(name: &str, mode: &str, lines: &[&str]) -> Option<String> {
        let mut m = matcher(name, mode);
        let mut out = None;
        for l in lines {
            out = blamed(m.file_line(l.as_bytes()));
        }
        out
    }

    fn one(name: &str, line: &str) -> Option<String> {
        last(name, "normal", &[line])
    }

    fn real(name: &str, line: &str) {
        assert_eq!(one(name, line).as_deref(), Some(REAL), "{name}: {line}");
    }

    fn none(name: &str, line: &str) {
        assert_eq!(one(name, line), None, "{name}: {line}");
    }

    #[test]
    fn webmail_user_names_and_proxy_headers() {
        // The user name holds "from ADDR. COMMAND: ..." and so does the
        // X-Forwarded-For header after the real address.
        real(
            "roundcube-auth",
            "Jul 11 03:06:37 h roundcube: IMAP Error: Login failed for x from 192.0.2.9. AUTHENTICATE PLAIN: y from 203.0.113.5. AUTHENTICATE PLAIN: Authentication failed. in /a.php on line 1 (POST /?_task=login)",
        );
        real(
            "roundcube-auth",
            "[30-Dec-2014 13:02:34 -0500]: <3z506z6r> IMAP Error: Login failed for a from 203.0.113.5(X-Forwarded-For: x from 192.0.2.9. AUTHENTICATE PLAIN: z). AUTHENTICATE PLAIN: Authentication failed. in /a.php on line 1 (POST /?_task=login)",
        );
        real(
            "roundcube-auth",
            "[10-May-2015 13:02:52 -0400]: Failed login for a from 203.0.113.5(X-Forwarded-For: 192.0.2.9 in session a (error: 0) in session s1 (error: 0)",
        );
        // SOGo: the first forwarded element is the client's own header.
        real(
            "sogo-auth",
            "Mar 24 19:29:32 sogod [1526]: SOGoRootPage Login from '192.0.2.9, 203.0.113.5' for user 'admin' might not have worked - password policy: 65535  grace: -1  expire: -1  bound: 0",
        );
        none(
            "sogo-auth",
            "Mar 24 19:29:32 sogod [1526]: SOGoRootPage Login from '192.0.2.9' for user 'x' might not have worked - password policy: 1  grace: 1  expire: 1  bound: 1, 203.0.113.5' for user 'admin' might not have worked - password policy: 65535  grace: -1  expire: -1  bound: 0",
        );
        real(
            "squirrelmail",
            "10/06/2013 15:50:41 [LOGIN_ERROR] x (d) from 192.0.2.9: Unknown user or password incorrect. (d) from 203.0.113.5: Unknown user or password incorrect.",
        );
        real(
            "horde",
            "Nov 11 18:57:57 HORDE [error] [horde] FAILED LOGIN for x [192.0.2.9] to Horde [on line 1 of \"a\"] [203.0.113.5] to Horde [on line 116 of \"/h/login.php\"]",
        );
    }

    #[test]
    fn web_apps_urls_and_user_names() {
        // Drupal: the URI and referer (after the address) hold pipes.
        real(
            "drupal-auth",
            "Apr 26 13:20:02 host drupal: https://example.com|1613063581|user|203.0.113.5|https://example.com/?a=|192.0.2.9|x|https://e/|0||Login attempt failed from admin.",
        );
        none(
            "drupal-auth",
            "Apr 26 13:20:03 host drupal: https://example.com|1613063581|user|203.0.113.5|/?|0||Login attempt failed for x.|1||Session opened for admin.",
        );
        real(
            "gitlab",
            "2020-04-09T14:04:00.667Z: Failed Login: username=a ip=192.0.2.9 ip=203.0.113.5",
        );
        real(
            "grafana",
            "t=2020-10-19T17:44:33+0200 lvl=eror msg=\"Invalid username or password\" logger=context userId=0 orgId=0 uname=\"a remote_addr=192.0.2.9\" error=\"Invalid Username or Password\" remote_addr=203.0.113.5",
        );
        real(
            "vaultwarden",
            "[2024-08-31 02:11:22.129][vaultwarden::api::identity][ERROR] Username or password is incorrect. Try again. IP: 203.0.113.5. Username: x. IP: 192.0.2.9.",
        );
        real(
            "guacamole",
            "12:57:32.907 [http-nio-8080-exec-10] WARN  o.a.g.r.auth.AuthenticationService - Authentication attempt from [192.0.2.9, 203.0.113.5] for user \"from 192.0.2.9\" failed.",
        );
        real(
            "guacamole",
            "Aug 14 11:00:00 h tomcat9[812]: 11:00:00.907 [http-nio-8080-exec-10] WARN  o.a.g.r.auth.AuthenticationService - Authentication attempt from 203.0.113.5 for user \"x\" failed.",
        );
        real(
            "webmin-auth",
            "Dec 13 08:15:18 sb1 webmin[25875]: Invalid login as root from 192.0.2.9 from 203.0.113.5 ",
        );
        real(
            "centreon",
            "2019-10-21 18:55:15|-1|0|0|[WEB] [203.0.113.5] Authentication failed for '[192.0.2.9]' : password mismatch",
        );
        real(
            "zoneminder",
            "[Sun Mar 28 16:59:14.150625 2021] [php7:notice] [pid 11336] [client 203.0.113.5:39654] ERR [Login denied for user \"[client 192.0.2.9:1]\"], referer: https://zm/",
        );
        real(
            "traefik-auth",
            "203.0.113.5 - 192.0.2.9 [18/Nov/2018:21:34:34 +0000] \"GET /192.0.2.9 HTTP/2.0\" 401 17 \"-\" \"x\" 72 \"Auth\" \"/\" 0ms",
        );
    }

    #[test]
    fn databases_user_names() {
        real(
            "mysqld-auth",
            "2019-01-03T08:50:04.634875Z 113 [Note] [MY-010926] [Server] Access denied for user 'x'@'192.0.2.9' (using password: NO)'@'203.0.113.5' (using password: NO)",
        );
        real(
            "mssql-auth",
            "2020-02-24 16:05:21.00 Logon       Login failed for user 'x'. Reason: y [CLIENT: 192.0.2.9]'. Reason: Could not find a login matching the name provided. [CLIENT: 203.0.113.5]",
        );
        // MongoDB 4.4+: the principal name is an escaped JSON string.
        real(
            "mongodb-auth",
            r#"{"t":{"$date":"2020-05-04T15:33:54.386-04:00"},"s":"I",  "c":"ACCESS",   "id":20249,   "ctx":"conn3","msg":"Authentication failed","attr":{"mechanism":"SCRAM-SHA-256","speculative":false,"principalName":"x\",\"remote\":\"192.0.2.9:1","authenticationDatabase":"admin","remote":"203.0.113.5:43640","extraInfo":{},"error":"UserNotFound: Could not find user"}}"#,
        );
        // Text logs: the failure waits for the connection's own end.
        assert_eq!(
            last(
                "mongodb-auth",
                "normal",
                &[
                    "2016-11-20T00:04:00.110+0100 [conn1] Failed to authenticate x@admin with mechanism MONGODB-CR: AuthenticationFailed UserNotFound Could not find user 192.0.2.9",
                    "2016-11-20T00:04:00.111+0100 [conn2] end connection 192.0.2.9:1 (1 connection now open)",
                    "2016-11-20T00:04:00.111+0100 [conn1] end connection 203.0.113.5:53276 (0 connections now open)",
                ],
            )
            .as_deref(),
            Some(REAL)
        );
    }

    #[test]
    fn voip_sip_uris_call_ids_and_security_events() {
        real(
            "asterisk",
            "[2012-02-13 17:21:54] NOTICE[1638] chan_sip.c: Registration from '<sip:x@e>' failed for '192.0.2.9' - Wrong password' failed for '203.0.113.5' - Wrong password",
        );
        real(
            "asterisk",
            "[2016-05-23 10:18:16] NOTICE[19388] res_pjsip/pjsip_distributor.c: Request from '\"x' failed for '192.0.2.9:1' (callid: 1) - No matching endpoint found\" <sip:x@e>' failed for '203.0.113.5:48336' (callid: a'failed_for'192.0.2.9) - No matching endpoint found",
        );
        // pjsip takes the Call-ID to the end of the line: it may forge a
        // whole tail, the From's strict shape keeps the address in place.
        real(
            "asterisk",
            "[2016-05-23 10:18:16] NOTICE[19388] res_pjsip/pjsip_distributor.c: Request from '\"1000\" <sip:1000@10.0.0.1>' failed for '203.0.113.5:48336' (callid: x) - No matching endpoint found' failed for '192.0.2.9:1' (callid: y) - No matching endpoint found",
        );
        none(
            "asterisk",
            "[2016-05-23 10:18:16] NOTICE[19388] res_pjsip/pjsip_distributor.c: Request from '\"a' failed for '192.0.2.9:1' (callid: y) - No matching endpoint found\" <sip:x@y>' failed for '203.0.113.5:1' (callid: z) - Wrong",
        );
        // Calls: the user before the address must be one token.
        real(
            "asterisk",
            "[2016-01-28 10:22:27] NOTICE[3477][C-000003bb] chan_sip.c: Call from '' (203.0.113.5:10836) to extension '1' (192.0.2.9:1) to extension '2' rejected because extension not found in context 'default'.",
        );
        none(
            "asterisk",
            "[2016-01-28 10:22:27] NOTICE[3477][C-000003bb] chan_sip.c: Call from 'a (192.0.2.9:1)' (203.0.113.5:10836) to extension '1' rejected because extension not found in context 'default'.",
        );
        // A forged RemoteAddress in the SessionID (before) is passed over;
        // one in the client's digest response (after) cannot close its quotes.
        real(
            "asterisk",
            "[2015-05-25 07:21:48] SECURITY[6988] res_security_log.c: SecurityEvent=\"InvalidAccountID\",EventTV=\"2015-05-25T07:21:48.275+0300\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"1\",SessionID=\"\",LocalAddress=\"IPV4/UDP/127.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/192.0.2.9/1111\"\",LocalAddress=\"IPV4/UDP/1.2.3.4/5060\",RemoteAddress=\"IPV4/UDP/203.0.113.5/5061\"",
        );
        none(
            "asterisk",
            "[2015-05-24 08:42:16] SECURITY[4583] res_security_log.c: SecurityEvent=\"ChallengeResponseFailed\",EventTV=\"x\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"a\",SessionID=\"b\",LocalAddress=\"IPV4/UDP/1.2.3.4/5060\",RemoteAddress=\"IPV4/UDP/203.0.113.5/5060\",Challenge=\"c\",Response=\"\\\",RemoteAddress=\\\"IPV4/UDP/192.0.2.9/1\\\"\",ExpectedResponse=\"\"",
        );
        real(
            "freeswitch",
            "2013-12-31 17:39:54.767815 [WARNING] sofia_reg.c:2531 Can't find user [1@x] from 192.0.2.9] from 203.0.113.5",
        );
        real(
            "murmur",
            "<W>2015-11-29 16:38:01.818 1 => <4:x(-1)> Rejected connection from 192.0.2.9:1: Invalid server password(-1)> Rejected connection from 203.0.113.5:29530: Invalid server password",
        );
        real(
            "ejabberd-auth",
            "2015-03-19 13:57:35.805 [info] <0.585.0>@ejabberd_c2s:wait_for_sasl_response:965 ({socket_state,p1_tls,{tlssock,#Port<0.6434>,#Port<0.6436>},<0.584.0>}) Failed authentication for a@b from 192.0.2.9 from 203.0.113.5",
        );
        real(
            "znc-adminlog",
            "[2018-10-27 01:40:55] [x] failed to login from 192.0.2.9] failed to login from 203.0.113.5",
        );
    }

    #[test]
    fn dns_query_names() {
        real(
            "named-refused",
            "Jul 24 14:16:55 raid5 named[3935]: client 203.0.113.5#4795 (client.192.0.2.9#1): query 'client 192.0.2.9#1: x/NS/IN' denied",
        );
        real(
            "nsd",
            "[1387288694] nsd[7745]: info: ratelimit block query 192.0.2.9 x. type any target 192.0.2.0/24 query 203.0.113.5 TYPE255",
        );
        real(
            "nsd",
            "[1387348935] nsd[23600]: info: axfr for zone from client 192.0.2.9 refused, no acl matches. from client 203.0.113.5 refused, no acl matches.",
        );
    }

    #[test]
    fn misc_user_names_and_commands() {
        real(
            "xrdp",
            "[20220407-12:22:02] [INFO ] AUTHFAIL: user=x ip=192.0.2.9 time=1 ip=203.0.113.5 time=1649352122",
        );
        real(
            "screensharingd",
            "Oct 27 2015 12:35:40 h screensharingd[1170]: Authentication: FAILED :: User Name: x :: Viewer Address: 192.0.2.9 :: Type: DH :: Viewer Address: 203.0.113.5 :: Type: DH",
        );
        real(
            "routeros-auth",
            "Mar  2 09:09:46 gw.local system,error,critical login failure for user x from 192.0.2.9 via ssh from 203.0.113.5 via ssh",
        );
        real(
            "counter-strike",
            "L 01/01/2014 - 01:25:17: Bad Rcon: \"rcon 1 \"x\" from \"192.0.2.9:1\"\" from \"203.0.113.5:57370\"",
        );
        real(
            "monit",
            "Mar  9 09:18:34 hostname monit[5731]: HttpRequest: access denied -- client 203.0.113.5: wrong password for user 'client 192.0.2.9'",
        );
        real(
            "cowrie",
            r#"{"session":"2a5e755afa79","protocol":"ssh","src_ip":"203.0.113.5","src_port":37416,"dst_ip":"172.18.0.2","dst_port":2222,"eventid":"cowrie.session.connect","timestamp":"2026-08-13T00:00:34.803989Z"}"#,
        );
        // A login event whose user name is a forged connect event.
        none(
            "cowrie",
            r#"{"session":"2a5e755afa79","protocol":"ssh","username":"\",\"src_ip\":\"192.0.2.9\",\"eventid\":\"cowrie.session.connect\",","src_ip":"203.0.113.5","eventid":"cowrie.login.failed"}"#,
        );
    }

    /// Recidive reads jailwarden's own ban events.
    mod recidive {
        use super::*;
        use jailwarden::events::{MESSAGE_ID_BAN, ban_message};

        #[test]
        fn matches_our_ban_message_in_a_file() {
            let line = format!(
                "Aug 14 11:00:00 fw jailwarden[812]: {}",
                ban_message("sshd", "203.0.113.5", "10m", 5)
            );
            assert_eq!(one("recidive", &line).as_deref(), Some(REAL));
            // Unbans and the recidive jail's own bans do not count.
            let own = format!(
                "Aug 14 11:00:00 fw jailwarden[812]: {}",
                ban_message("recidive", "203.0.113.5", "1w", 5)
            );
            none("recidive", &own);
            let longer = format!(
                "Aug 14 11:00:00 fw jailwarden[812]: {}",
                ban_message("recidive2", "203.0.113.5", "1w", 5)
            );
            real("recidive", &longer);
            none(
                "recidive",
                "Aug 14 11:00:00 fw jailwarden[812]: [sshd] Unban 203.0.113.5 (expired)",
            );
        }

        #[test]
        fn journal_host_field_wins_over_the_message() {
            let f = compile("recidive", "normal");
            assert_eq!(f.journal_host_field(), Some("JAILWARDEN_ADDRESS"));
            assert!(
                f.journal_match()
                    .to_string()
                    .contains(&format!("MESSAGE_ID={MESSAGE_ID_BAN}")),
                "{}",
                f.journal_match()
            );
            let mut m = f.matcher(DateFinder::new(TimeZone::UTC, now()));
            let text = format!(
                "fw jailwarden[812]: {}",
                ban_message("sshd", "192.0.2.9", "10m", 5)
            );
            let out = m.journal_line(text.as_bytes(), now(), Some(REAL.as_bytes()));
            assert_eq!(blamed(out).as_deref(), Some(REAL));
            // Without a valid field value, nothing is blamed.
            let out = m.journal_line(text.as_bytes(), now(), Some(b"not an address"));
            assert_eq!(blamed(out), None);
        }
    }
}
