//! Hostile lines: attacker text (user names, URLs, HELO names, paths,
//! headers, commands, recipients) that contains an address must never
//! choose the host a filter blames. Each family of filters has its own
//! module.

/// Run lines through a shipped filter, one matcher for all (so
/// multi-line stories are told), and return the host each line blames.
mod mail_family_support {
    use std::path::PathBuf;
    use std::sync::Arc;

    use jailwarden::config::reader::Diagnostics;
    use jailwarden::filter::date::DateFinder;
    use jailwarden::filter::def::FilterPath;
    use jailwarden::filter::{FilterLoader, Outcome};
    use jiff::Timestamp;
    use jiff::tz::TimeZone;

    pub fn hosts(filter: &str, mode: &str, lines: &[&str]) -> Vec<Option<String>> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/filters");
        let loader = FilterLoader::new(FilterPath::new(vec![dir]));
        let diags = Diagnostics::new();
        let compiled = loader.compile(filter, mode, &diags);
        let errors: Vec<String> = diags.into_sorted().iter().map(|d| d.to_string()).collect();
        let f = Arc::new(compiled.unwrap_or_else(|| panic!("{filter}: {errors:?}")));
        let now = Timestamp::from_second(1_124_013_600).expect("now");
        let mut m = f.matcher(DateFinder::new(TimeZone::UTC, now));
        lines
            .iter()
            .map(|l| match m.file_line(l.as_bytes()) {
                Outcome::Matched {
                    failure: Some(f), ..
                } => Some(f.host_text),
                _ => None,
            })
            .collect()
    }

    /// The host the last of `lines` blames.
    pub fn last(filter: &str, mode: &str, lines: &[&str]) -> Option<String> {
        hosts(filter, mode, lines).pop().flatten()
    }

    pub fn one(filter: &str, line: &str) -> Option<String> {
        last(filter, "normal", &[line])
    }
}

/// Mail servers: dovecot, exim, sendmail, domino, kerio.
mod mail {
    use super::mail_family_support::{last, one};

    const REAL: &str = "203.0.113.5";

    #[test]
    fn dovecot_login_user_cannot_supply_rip() {
        let line = "Jun 13 16:30:54 mx dovecot: imap-login: Disconnected (auth failed, 2 attempts): \
                    user=<x>, method=PLAIN, rip=192.0.2.9, lip=192.0.2.1, TLS, session=<a>>, \
                    method=PLAIN, rip=203.0.113.5, lip=192.0.2.1, TLS, session=<b>";
        assert_eq!(one("dovecot", line).as_deref(), Some(REAL));
    }

    #[test]
    fn dovecot_passdb_user_token_cannot_supply_the_address() {
        // Passdb lines count in mode passdb (in normal mode the login
        // process's line counts the attempt).
        // A one-token user that carries "ADDR):" is followed by ",REAL",
        // never by the "): " with a space that the pattern needs.
        let line = "Jan 29 05:13:40 mail dovecot: auth-worker(31326): \
                    pam(x,192.0.2.9):,203.0.113.5): unknown user";
        assert_eq!(last("dovecot", "passdb", &[line]).as_deref(), Some(REAL));
        let line = "Jan 29 05:13:40 mail dovecot: auth: \
                    sql(x,192.0.2.9,<a>):,203.0.113.5,<b>): Password mismatch";
        assert_eq!(last("dovecot", "passdb", &[line]).as_deref(), Some(REAL));
        // With spaces in the user the line is not ours at all.
        let line = "Jan 29 05:13:40 mail dovecot: auth: \
                    sql(x,192.0.2.9): Password mismatch (given password: y,203.0.113.5): Password mismatch";
        assert_ne!(
            last("dovecot", "passdb", &[line]).as_deref(),
            Some("192.0.2.9")
        );
    }

    #[test]
    fn dovecot_24_user_and_password_text_cannot_supply_the_address() {
        let line = "Aug 30 00:10:57 auth(bob,203.0.113.5,sasl:login)<CvN>: Info: sql: Password \
                    mismatch (given password: x 192.0.2.9,sasl:login)";
        assert_eq!(last("dovecot", "passdb", &[line]).as_deref(), Some(REAL));
        // A user with spaces forging the whole prefix: the real one would
        // have to sit inside the given password, which holds no ")".
        let line = "Aug 30 00:10:57 auth(y,192.0.2.9,sasl:login)<a>: Info: sql: Password mismatch \
                    (given password: x,203.0.113.5,sasl:login)<CvN>: Info: sql: Password mismatch \
                    (given password: pw)";
        assert_eq!(last("dovecot", "passdb", &[line]), None);
    }

    #[test]
    fn exim_quoted_command_and_set_id_cannot_supply_the_host() {
        let line = "2017-11-28 14:14:32 SMTP protocol error in \"AUTH LOGIN\" H=(x) [192.0.2.9] \
                    AUTH command used when not advertised\" H=(roxzgj) [203.0.113.5] AUTH command used \
                    when not advertised";
        assert_eq!(last("exim", "more", &[line]).as_deref(), Some(REAL));
        let line = "2013-06-12 03:57:58 login authenticator failed for (ylmf-pc) [203.0.113.5]: \
                    535 Incorrect authentication data (set_id=a (b) [192.0.2.9]: 535 Incorrect \
                    authentication data)";
        assert_eq!(one("exim", line).as_deref(), Some(REAL));
        // A HELO holding an address literal is one token before the real one.
        let line = "2013-06-12 03:57:58 login authenticator failed for ([192.0.2.9]) \
                    [203.0.113.5]: 535 Incorrect authentication data";
        assert_eq!(one("exim", line).as_deref(), Some(REAL));
    }

    #[test]
    fn exim_synchronization_error_needs_a_one_token_command() {
        // Command before the host and next input after it: a command with
        // spaces could forge the whole tail, so such lines do not match.
        let line = "2013-06-02 09:05:48 SMTP protocol synchronization error (next input sent too \
                    soon: pipelining was not advertised): rejected \"x\" H=(a) [192.0.2.9] next \
                    input=\"y\" H=ba77.mx83.fr [203.0.113.5]:58302 next input=\"QUIT\"";
        assert_ne!(last("exim", "more", &[line]).as_deref(), Some("192.0.2.9"));
    }

    #[test]
    fn exim_spam_quoted_sender_cannot_supply_the_host() {
        let line = "2013-06-09 10:21:28 [14127] 1UlasQ-0003fr-45 F=<\"x H=(a) [192.0.2.9] P=esmtp \
                    rejected by local_scan(): y\"@example.org> H=(mail.example.org) [203.0.113.5]:43671 \
                    P=esmtp rejected by local_scan(): Rejected";
        assert_eq!(one("exim-spam", line).as_deref(), Some(REAL));
    }

    #[test]
    fn sendmail_recipient_cannot_supply_the_relay() {
        let line = "Feb 25 03:01:10 mx sm-mta[27713]: s1P819mk027713: ruleset=check_rcpt, \
                    arg1=<\"a, relay=[192.0.2.9], reject=550 5.7.1 b\"@example.org>, \
                    relay=[203.0.113.5], reject=550 5.7.1 <\"a, relay=[192.0.2.9], reject=550 \
                    5.7.1 b\"@example.org>... Relaying denied";
        assert_ne!(one("sendmail-reject", line).as_deref(), Some("192.0.2.9"));
        let line = "Feb 25 03:01:10 mx sm-mta[27713]: s1P819mk027713: ruleset=check_rcpt, \
                    arg1=<a@example.org>, relay=[203.0.113.5], reject=550 5.7.1 \
                    <a@example.org>... Relaying denied. IP name lookup failed [203.0.113.5]";
        assert_eq!(one("sendmail-reject", line).as_deref(), Some(REAL));
    }

    #[test]
    fn exim_spam_message_id_cannot_supply_the_host() {
        let line = "2013-12-29 15:34:12 1VxHRO-000NiI-Ly SA: Action: silently tossed message: \
                    score=31.0 required=5.0 trigger=30.0 (scanned in 6/6 secs | Message-Id: x). \
                    From <a> (host=b [192.0.2.9]) for c). From <s@example.org> (host=h.example.org \
                    [203.0.113.5]) for me@example.com";
        assert_eq!(one("exim-spam", line).as_deref(), Some(REAL));
    }

    #[test]
    fn sendmail_user_cannot_supply_the_relay() {
        let line = "Feb 25 04:02:28 relay1 sendmail[16665]: 06I02CNi016765: AUTH failure (LOGIN): \
                    authentication failure (-13) SASL(-13): authentication failure: checkpass \
                    failed, user=x, relay=[192.0.2.9] (may be forged), relay=[203.0.113.5]";
        assert_eq!(one("sendmail-auth", line).as_deref(), Some(REAL));
        let lines = [
            "Nov  3 11:35:30 mx sendmail[26254]: rA37ZTSC026254: <a@example.com>... No such user here",
            "Nov  3 11:35:30 mx sendmail[26254]: rA37ZTSC026254: from=<x>, relay=[192.0.2.9], \
             size=0, class=0, nrcpts=0, proto=ESMTP, daemon=MTA, relay=[203.0.113.5]",
        ];
        assert_eq!(
            last("sendmail-reject", "normal", &lines).as_deref(),
            Some(REAL)
        );
    }

    #[test]
    fn domino_and_kerio_user_text_cannot_supply_the_address() {
        let line = "2016-11-07 22:21:21   smtp: x [192.0.2.9] authentication failure using internet \
                    password [203.0.113.5] authentication failure using internet password";
        assert_eq!(one("domino-smtp", line).as_deref(), Some(REAL));
        let line = "[17/Jun/2011 17:00:45] Attempt to deliver to unknown recipient <a>, from <b>, \
                    IP address 192.0.2.9>, from <c@example.org>, IP address 203.0.113.5";
        assert_eq!(one("kerio", line).as_deref(), Some(REAL));
    }
}

/// FTP servers and PAM: pam-generic, proftpd, pure-ftpd, dropbear.
mod ftp_pam {
    use super::mail_family_support::{hosts, one};

    const REAL: &str = "203.0.113.5";

    #[test]
    fn pam_ruser_forging_a_user_part_is_not_matched() {
        // ruser = "x rhost=192.0.2.9 user=y" (vsftpd puts the login name there).
        let line = "Jul 19 18:11:50 srv vsftpd: pam_unix(vsftpd:auth): authentication failure; \
                    logname= uid=0 euid=0 tty=ftp ruser=x rhost=192.0.2.9 user=y rhost=203.0.113.5";
        assert_eq!(one("pam-generic", line), None);
    }

    #[test]
    fn pam_user_part_cannot_supply_rhost() {
        let line = "Jul 19 18:11:52 srv sshd[1]: pam_unix(sshd:auth): authentication failure; \
                    logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5 user=x rhost=192.0.2.9";
        assert_ne!(one("pam-generic", line).as_deref(), Some("192.0.2.9"));
        let line = "Jul 19 18:11:52 srv vsftpd: pam_unix(vsftpd:auth): authentication failure; \
                    logname= uid=0 euid=0 tty=ftp ruser=x rhost=192.0.2.9 rhost=203.0.113.5";
        assert_eq!(one("pam-generic", line).as_deref(), Some(REAL));
    }

    #[test]
    fn proftpd_takes_the_session_address_not_the_user_text() {
        let line = "Jun 14 00:09:59 ftp proftpd[17839] ftp.example.com (h.example.org[203.0.113.5]): \
                    USER x (evil[192.0.2.9]): no such user found from 192.0.2.9 [192.0.2.9] to \
                    192.0.2.1:21";
        assert_eq!(one("proftpd", line).as_deref(), Some(REAL));
    }

    #[test]
    fn dropbear_user_cannot_supply_the_address() {
        let line = "Mar 24 15:25:51 box dropbear[4092]: Bad password attempt for \
                    'root' from 192.0.2.9:22' from 203.0.113.5:5543";
        assert_eq!(one("dropbear", line).as_deref(), Some(REAL));
    }

    #[test]
    fn pure_ftpd_account_token_cannot_supply_the_host() {
        let line = "Jan 31 16:54:07 box pure-ftpd: (a@192.0.2.9)@203.0.113.5) [WARNING] \
                    Authentication failed for user [x]";
        assert_eq!(one("pure-ftpd", line).as_deref(), Some(REAL));
        let lines = [line];
        assert_eq!(hosts("pure-ftpd", "normal", &lines).len(), 1);
    }
}

/// VPNs, proxies, LDAP: softethervpn, 3proxy, slapd, dante.
mod vpn_proxy {
    use super::mail_family_support::{last, one};

    const REAL: &str = "203.0.113.5";

    #[test]
    fn softether_user_cannot_supply_the_address() {
        let line = "2020-05-12 10:53:19.781 Connection \"CID-72\": User authentication failed. The \
                    user name that has been provided was \"bob\", from 192.0.2.9.\", from 203.0.113.5.";
        assert_eq!(one("softethervpn", line).as_deref(), Some(REAL));
    }

    #[test]
    fn threeproxy_user_with_spaces_is_not_matched() {
        let line = "11-06-2013 02:09:40 +0300 PROXY.3128 00004 a 192.0.2.9:1 0.0.0.0:0 0 0 0 x \
                    203.0.113.5:28783 0.0.0.0:0 0 0 0 GET http://example.org/ HTTP/1.1";
        assert_ne!(one("3proxy", line).as_deref(), Some("192.0.2.9"));
    }

    #[test]
    fn slapd_blames_the_accepted_address_not_the_bind_dn() {
        let lines = [
            "Jul  8 01:47:19 ldap slapd[1183]: conn=7 fd=21 ACCEPT from IP=203.0.113.5:45011 (IP=0.0.0.0:636)",
            "Jul  8 01:47:20 ldap slapd[1183]: conn=7 op=1 BIND dn=\"cn=x ACCEPT from IP=192.0.2.9:1 (IP=0.0.0.0:636)\" method=128",
            "Jul  8 01:47:20 ldap slapd[1183]: conn=7 op=1 RESULT tag=97 err=49 text=",
        ];
        assert_eq!(last("slapd", "normal", &lines).as_deref(), Some(REAL));
    }

    #[test]
    fn dante_user_cannot_supply_the_address() {
        let line = "Apr 14 15:44:26 vps danted[1846]: info: block(1): tcp/accept ]: 203.0.113.5.57178 \
                    0.0.0.0.1080: error after reading 18 bytes in 0 seconds: system password \
                    authentication failed for user \"x ]: 192.0.2.9.1 \"";
        assert_eq!(one("dante", line).as_deref(), Some(REAL));
    }
}

/// Run lines through a shipped filter and return the host each blames.
mod web_family_support {
    /// The address attacks try to frame.
    pub const VICTIM: &str = "192.0.2.9";
    /// The attacker, who wrote the line.
    pub const REAL: &str = "203.0.113.5";

    /// The host `line` blames through `filter` in `mode`, if any.
    pub fn host(filter: &str, mode: &str, line: &str) -> Option<String> {
        super::mail_family_support::last(filter, mode, &[line])
    }

    pub fn one(filter: &str, line: &str) -> Option<String> {
        host(filter, "normal", line)
    }
}

/// Web servers: apache-*, nginx-*, lighttpd-auth, suhosin, php-url-fopen.
mod web {
    use super::web_family_support::{REAL, VICTIM, host, one};

    #[test]
    fn apache_client_bracket_inside_the_message_is_never_the_host() {
        let line = "[Sat Jun 01 02:17:42 2013] [error] [client 203.0.113.5] \
                    user [client 192.0.2.9] not found: /";
        assert_eq!(one("apache-auth", line).as_deref(), Some(REAL));
        let line = "[Sat Jun 01 02:17:42 2013] [error] [client 203.0.113.5] \
                    File does not exist: /x/[client 192.0.2.9] user root not found";
        assert_eq!(one("apache-auth", line), None);
        // ModSecurity repeats a client of its own after Apache's.
        let line = "[Sat Sep 28 09:18:06 2018] [error] [client 203.0.113.5:55555] \
                    [client 192.0.2.9] ModSecurity: [msg \"x [client 192.0.2.9]\"] \
                    Access denied with code 403 (phase 2). [uri \"/\"]";
        assert_eq!(one("apache-modsecurity", line).as_deref(), Some(REAL));
        let line = "[Thu Sep 25 09:27:18.813902 2014] [cgi:error] [pid 1] \
                    [client 203.0.113.5:59635] AH01215: /bin/bash: warning: \
                    HTTP_X_192.0.2.9: ignoring function definition attempt";
        assert_eq!(one("apache-shellshock", line).as_deref(), Some(REAL));
    }

    #[test]
    fn access_log_user_and_vhost_cannot_move_the_client() {
        // A user name with spaces and an address.
        let line = "203.0.113.5 - x 192.0.2.9 - - [20/Jan/2015:19:53:28 +0100] \
                    \"GET / HTTP/1.1\" 400 47 \"-\" \"-\"";
        assert_eq!(one("nginx-bad-request", line).as_deref(), Some(REAL));
        // A virtual host (maybe the client's Host header) first: a name.
        let line = "www.example.net 203.0.113.5 - - [20/Jan/2015:19:53:28 +0100] \
                    \"GET / HTTP/1.1\" 400 47 \"-\" \"-\"";
        assert_eq!(one("nginx-bad-request", line).as_deref(), Some(REAL));
        // Two addresses first read two ways: a vhost and the client, or
        // lighttpd's client and the Host header it was sent. Not counted;
        // lighttpd's format has a mode of its own, where the first is the
        // client whatever the Host says.
        let line = "192.0.2.9 203.0.113.5 - - [20/Jan/2015:19:53:28 +0100] \
                    \"GET / HTTP/1.1\" 400 47 \"-\" \"-\"";
        assert_eq!(one("nginx-bad-request", line), None);
        let lighttpd = "203.0.113.5 192.0.2.9 - [20/Jan/2015:19:53:28 +0100] \
                        \"GET / HTTP/1.1\" 400 47 \"-\" \"-\"";
        assert_eq!(one("nginx-bad-request", lighttpd), None);
        assert_eq!(
            host("nginx-bad-request", "lighttpd", lighttpd).as_deref(),
            Some(REAL)
        );
        // A request, referer and agent that look like a whole other line.
        let line = "203.0.113.5 - - [05/Mar/2007:14:39:21 +0100] \
                    \"GET /?192.0.2.9 - - \\\"GET / HTTP/1.0\\\" HTTP/1.0\" 301 459 \
                    \"192.0.2.9 - - \" \"TrackBack/1.02\"";
        assert_eq!(one("apache-badbots", line).as_deref(), Some(REAL));
        let line = "203.0.113.5 - - [26/Mar/2009:08:44:20 -0500] \
                    \"GET /index.php?n=http://192.0.2.9/x? HTTP/1.1\" 200 114 \"-\" \"-\"";
        assert_eq!(one("php-url-fopen", line).as_deref(), Some(REAL));
    }

    #[test]
    fn nginx_lines_that_read_two_ways_are_not_counted() {
        let tail = "server: s, request: \"GET / HTTP/1.1\", host: \"h\"";
        // Injection through the user name ...
        let line = format!(
            "2014/04/03 22:20:40 [error] 1#0: *3 user \"x\": password mismatch, \
             client: {VICTIM}, {tail}\": password mismatch, client: {REAL}, {tail}"
        );
        assert_ne!(one("nginx-http-auth", &line).as_deref(), Some(VICTIM));
        // ... or through the referrer: the same shape, refused alike.
        let line = format!(
            "2014/04/03 22:20:40 [error] 1#0: *3 user \"x\": password mismatch, \
             client: {REAL}, {tail}, referrer: \"\": password mismatch, \
             client: {VICTIM}, {tail}"
        );
        assert_ne!(one("nginx-http-auth", &line).as_deref(), Some(VICTIM));
        // A path carrying a fake tail in nginx-botsearch.
        let line = format!(
            "2015/01/21 10:56:10 [error] 2833#0: *1 open() \"/var/www/pma\" failed \
             (2: No such file or directory), client: {VICTIM}, server: s, \
             request: \"GET /pma HTTP/1.1\", host: \"h\"\" failed \
             (2: No such file or directory), client: {REAL}, server: s, \
             request: \"GET /pma HTTP/1.1\", host: \"h\""
        );
        assert_ne!(one("nginx-botsearch", &line).as_deref(), Some(VICTIM));
        // Clean lines still count, spaces in the user name included.
        let line = format!(
            "2014/04/03 22:20:38 [error] 1#0: *3 user \"a {VICTIM}\": password \
             mismatch, client: {REAL}, {tail}, referrer: \"http://{VICTIM}/\""
        );
        assert_eq!(one("nginx-http-auth", &line).as_deref(), Some(REAL));
        // Where nginx's own text precedes the client, the tail is free.
        let line = format!(
            "2015/10/29 20:01:02 [error] 1#0: *9 limiting requests, excess: 1.8 by \
             zone \"one\", client: {REAL}, server: s, request: \"GET /\", \
             client: {VICTIM}, server: s\", host: \"h\""
        );
        assert_eq!(one("nginx-limit-req", &line).as_deref(), Some(REAL));
        let line = format!(
            "2020/11/25 14:42:16 [crit] 1#1: *2 SSL_do_handshake() failed (SSL: \
             error:1408F0C6:SSL routines:ssl3_get_record:packet length too long) \
             while SSL handshaking, client: {REAL}, server: 0.0.0.0:443"
        );
        assert_eq!(
            host("nginx-http-auth", "aggressive", &line).as_deref(),
            Some(REAL)
        );
    }

    #[test]
    fn user_names_before_an_end_anchored_address() {
        let line = "2011-12-25 17:09:20: (http_auth.c.875) password doesn't match \
                    for /x username: a, IP: 192.0.2.9, IP: 203.0.113.5";
        assert_eq!(one("lighttpd-auth", line).as_deref(), Some(REAL));
        let line = "Nov 18 20:18:31 h suhosin[1]: ALERT - dropped variable \
                    'x' (attacker '192.0.2.9', file '/a.php')' (attacker '203.0.113.5', \
                    file '/var/www/index.php')";
        assert_eq!(one("suhosin", line).as_deref(), Some(REAL));
    }
}

/// Mail: postfix, courier-auth, courier-smtp, qmail.
mod postfix_courier_qmail {
    use super::web_family_support::{REAL, one};

    #[test]
    fn postfix_client_is_the_first_bracket_after_the_phrase() {
        let line = "Jul 12 07:47:48 mx postfix/smtpd[8738]: NOQUEUE: reject: RCPT from \
                    unknown[203.0.113.5]: 554 5.7.1 <a[192.0.2.9]>: Relay access denied; \
                    from=<x@[192.0.2.9]> to=<y> proto=SMTP helo=<[192.0.2.9]>";
        assert_eq!(one("postfix", line).as_deref(), Some(REAL));
        let line = "Jun 12 08:58:35 mx postfix/smtpd[1]: improper command pipelining \
                    after AUTH from unknown[203.0.113.5]: warning: unknown[192.0.2.9]: x";
        assert_eq!(one("postfix", line).as_deref(), Some(REAL));
        let line = "Nov  4 09:11:01 mx postfix/smtpd[1]: warning: unknown[203.0.113.5]: \
                    SASL LOGIN authentication failed: (reason unavailable), \
                    sasl_username=x unknown[192.0.2.9]";
        assert_eq!(
            super::web_family_support::host("postfix", "auth", line).as_deref(),
            Some(REAL)
        );
    }

    #[test]
    fn courier_and_qmail_hosts_come_from_their_fixed_places() {
        let line = "Apr 27 09:00:00 mx imapd: LOGIN FAILED, user=x, ip=[::ffff:192.0.2.9], \
                    ip=[::ffff:203.0.113.5], port=[255]";
        assert_eq!(one("courier-auth", line).as_deref(), Some(REAL));
        let line = "Apr 10 03:47:57 mx courieresmtpd: error,relay=::ffff:203.0.113.5,\
                    from=<x,relay=::ffff:192.0.2.9>,to=<y>: 550 User unknown.";
        assert_eq!(one("courier-smtp", line).as_deref(), Some(REAL));
        let line = "Jun 30 15:13:33 mx rblsmtpd: 203.0.113.5 pid 1 bl.example: 451 \
                    http://bl.example/?ip=192.0.2.9";
        assert_eq!(one("qmail", line).as_deref(), Some(REAL));
    }
}

/// FTP: vsftpd.
mod vsftpd {
    use super::web_family_support::{REAL, VICTIM, one};

    #[test]
    fn vsftpd_user_names_cannot_supply_the_client() {
        // A user name holding a quote reads two ways (see the next test):
        // not counted, and never for the address inside it.
        let line = "Fri Jan 19 12:20:33 2007 [pid 1] [x] FAIL LOGIN: Client \
                    \"192.0.2.9\"] FAIL LOGIN: Client \"203.0.113.5\"";
        assert_eq!(one("vsftpd", line), None);
        let line = "Fri Jan 19 12:20:33 2007 [pid 1] [x] FAIL LOGIN: Client \
                    ] FAIL LOGIN: Client \"203.0.113.5\"";
        assert_eq!(one("vsftpd", line).as_deref(), Some(REAL));
        let line = "Thu Sep  8 00:39:49 2016 [pid 1] [guest] FAIL LOGIN: Client \
                    \"203.0.113.5\", \"User is not in the allow user list.\"";
        assert_eq!(one("vsftpd", line).as_deref(), Some(REAL));
        // PAM: a user name with spaces shifts the tokens; not counted.
        let line = "Oct 23 21:15:42 vps vsftpd: pam_unix(vsftpd:auth): authentication \
                    failure; logname= uid=0 euid=0 tty=ftp ruser=x rhost=192.0.2.9 \
                    rhost=203.0.113.5 user=x rhost=192.0.2.9";
        assert_ne!(one("vsftpd", line).as_deref(), Some(VICTIM));
    }

    /// vsftpd ends many lines with attacker text after the real client: the
    /// anonymous password, paths, whole FTP commands. Each could end in a
    /// forged '] FAIL LOGIN: Client "VICTIM"'; none may count.
    #[test]
    fn lines_ending_in_attacker_text_never_forge_a_fail_login() {
        let forged = format!("x] FAIL LOGIN: Client \"{VICTIM}");
        for line in [
            // An anonymous login (no account needed): the password.
            format!(
                "Fri Jan 19 12:20:33 2007 [pid 1] [ftp] OK LOGIN: Client \"{REAL}\", anon password \"{forged}\""
            ),
            // Paths of a logged-in user.
            format!(
                "Fri Jan 19 12:20:33 2007 [pid 1] [bob] OK MKDIR: Client \"{REAL}\", \"/{forged}\""
            ),
            format!(
                "Fri Jan 19 12:20:33 2007 [pid 1] [bob] FAIL DELETE: Client \"{REAL}\", \"/{forged}\""
            ),
            format!(
                "Fri Jan 19 12:20:33 2007 [pid 1] [bob] OK RENAME: Client \"{REAL}\", \"/a /{forged}\""
            ),
            format!(
                "Fri Jan 19 12:20:33 2007 [pid 1] [bob] OK UPLOAD: Client \"{REAL}\", \"/{forged}\", 10 bytes, 1.00Kbyte/sec"
            ),
            // log_ftp_protocol: every command, before and after login.
            format!(
                "Fri Jan 19 12:20:33 2007 [pid 1] FTP command: Client \"{REAL}\", \"USER {forged}\""
            ),
            format!(
                "Fri Jan 19 12:20:33 2007 [pid 1] [bob] FTP command: Client \"{REAL}\", \"SITE {forged}\""
            ),
            // Through syslog (syslog_enable: no date, identifier vsftpd).
            format!(
                "Jan 19 12:20:33 ftp vsftpd[1]: [pid 1] [ftp] OK LOGIN: Client \"{REAL}\", anon password \"{forged}\""
            ),
        ] {
            assert_eq!(one("vsftpd", &line), None, "{line}");
        }
    }
}

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
        // Headers holding a parenthesis may read two ways: not counted.
        none(
            "roundcube-auth",
            "[10-May-2015 13:02:52 -0400]: Failed login for a from 203.0.113.5(X-Forwarded-For: 192.0.2.9 in session a (error: 0) in session s1 (error: 0)",
        );
        // A user "x from VICTIM(y" and a header "z": with parentheses
        // allowed in the header, the line would read with VICTIM as the
        // address and "(y from REAL(X-Forwarded-For: z)" as its header.
        none(
            "roundcube-auth",
            "[30-Dec-2014 13:02:34 -0500]: <3z506z6r> IMAP Error: Login failed for x from 192.0.2.9(y from 203.0.113.5(X-Forwarded-For: z). AUTHENTICATE PLAIN: Authentication failed. in /a.php on line 1 (POST /?_task=login)",
        );
        none(
            "roundcube-auth",
            "[30-Dec-2014 13:02:34 -0500]: <3z506z6r> IMAP Error: Login failed for u from 203.0.113.5(X-Forwarded-For: a from 192.0.2.9(X-Forwarded-For: z). AUTHENTICATE PLAIN: Authentication failed. in /a.php on line 1 (POST /?_task=login)",
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
        // A user holding "'@'" reads two ways: not counted.
        none(
            "mysqld-auth",
            "2019-01-03T08:50:04.634875Z 113 [Note] [MY-010926] [Server] Access denied for user 'x'@'192.0.2.9' (using password: NO)'@'203.0.113.5' (using password: NO)",
        );
        // MariaDB (log_warnings >= 2) logs a denied database, which the
        // client chose: it must not end the line like a failed login.
        none(
            "mysqld-auth",
            "2026-12-01 23:56:31 4 [Warning] Access denied for user 'u'@'203.0.113.5' to database 'x'@'192.0.2.9'",
        );
        real(
            "mysqld-auth",
            "2026-12-01 23:56:31 5 [Warning] Access denied for user 'o\'neil'@'203.0.113.5' (using password: YES)",
        );
        real(
            "mysqld-auth",
            "2020-01-16 21:34:14 4644 [Warning] Access denied for user 'root'@'203.0.113.5'",
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
            let out = m.journal_line(text.as_bytes(), now(), Some(REAL.as_bytes()), false);
            assert_eq!(blamed(out).as_deref(), Some(REAL));
            // Without a valid field value, nothing is blamed.
            let out = m.journal_line(text.as_bytes(), now(), Some(b"not an address"), false);
            assert_eq!(blamed(out), None);
        }
    }
}

/// Cut lines: a service that cuts its own long lines (nginx's error log at
/// 2047 bytes), our own 64 KiB cut, journald's `LineMax`. Attacker text
/// pushed up to the cut can look like the end of a line's structure; the
/// real client, past the cut, never arrives. The head of a cut line must
/// never supply the host.
mod cut_lines {
    use super::mail_family_support::{last, one};
    use super::web_family_support::{REAL, VICTIM};
    use jailwarden::filter::MAX_LINE;

    /// `head`, filler, then `tail`: `len` bytes in all, as a service (or
    /// our reader) delivers a line cut at `len`.
    fn exactly(len: usize, head: &str, tail: &str) -> String {
        let line = format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()));
        assert_eq!(line.len(), len);
        line
    }

    #[test]
    fn nginx_error_lines_cut_at_2047_bytes_do_not_count() {
        // nginx (NGX_MAX_ERROR_STR) writes at most 2047 bytes per line. The
        // basic-auth user name carries a whole forged tail up to the cut;
        // the real ", client: REAL, ..." was cut off.
        let head = format!(
            "2014/04/03 22:20:40 [error] 1#0: *3 user \"A\": password mismatch, \
             client: {VICTIM}, server: "
        );
        let cut = exactly(2047, &head, "");
        assert_eq!(one("nginx-http-auth", &cut), None);
        // Through syslog and the journal: nginx's message, longer with
        // the syslog head, is cut all the same.
        let syslog = format!("Apr  3 22:20:40 web nginx: {cut}");
        assert_eq!(one("nginx-http-auth", &syslog), None);
        // One byte shorter nginx did not cut: the line is whole and counts.
        let whole = exactly(2046, &head, "");
        assert_eq!(one("nginx-http-auth", &whole).as_deref(), Some(VICTIM));
        // The path before the client in nginx-botsearch, likewise.
        let head = format!(
            "2015/01/21 10:56:10 [error] 2833#0: *1 open() \"/var/www/pma/x\" failed \
             (2: No such file or directory), client: {VICTIM}, server: s, request: \
             \"GET /pma/"
        );
        let cut = exactly(2047, &head, " HTTP/1.1\", host: \"h\"");
        assert_eq!(one("nginx-botsearch", &cut), None);
    }

    #[test]
    fn lines_cut_at_our_64k_limit_never_end_in_the_attackers_tail() {
        // Courier: the user name before ip=[...].
        let line = exactly(
            MAX_LINE,
            "Apr 27 09:00:00 mx imapd: LOGIN FAILED, user=",
            &format!(", ip=[::ffff:{VICTIM}]"),
        );
        assert_eq!(one("courier-auth", &line), None);
        let mut longer = line.clone();
        longer.push_str(&format!(", ip=[::ffff:{REAL}]"));
        assert_eq!(one("courier-auth", &longer), None);
        // Dovecot: user=<...> before rip=.
        let line = exactly(
            MAX_LINE,
            "Jun 13 16:30:54 mx dovecot: imap-login: Disconnected (auth failed, 1 attempts): user=<",
            &format!(">, method=PLAIN, rip={VICTIM}, lip=192.0.2.1, TLS"),
        );
        assert_eq!(one("dovecot", &line), None);
        // lighttpd: URL and user name before "IP: ADDR" at the end.
        let line = exactly(
            MAX_LINE,
            "2011-12-25 17:09:20: (http_auth.c.875) password doesn't match for /",
            &format!(" username: a, IP: {VICTIM}"),
        );
        assert_eq!(one("lighttpd-auth", &line), None);
        // The same shapes under the limit are whole lines and count.
        let line = exactly(
            MAX_LINE - 1,
            "2011-12-25 17:09:20: (http_auth.c.875) password doesn't match for /",
            &format!(" username: a, IP: {REAL}"),
        );
        assert_eq!(one("lighttpd-auth", &line).as_deref(), Some(REAL));
    }

    #[test]
    fn sshd_messages_cut_at_500_bytes_do_not_count() {
        // sshd hands syslog at most 500 bytes ("%.500s" in log.c); its
        // user fields are bounded well below that, so a line this long is
        // cut, and its end is no end.
        let line = exactly(
            500,
            "Feb 25 14:34:11 h sshd[7]: Failed password for invalid user ",
            &format!(" from {VICTIM} port 22 ssh2"),
        );
        assert_eq!(last("sshd", "normal", &[&line]), None);
        let line = exactly(
            499,
            "Feb 25 14:34:11 h sshd[7]: Failed password for invalid user ",
            &format!(" from {REAL} port 22 ssh2"),
        );
        assert_eq!(last("sshd", "normal", &[&line]).as_deref(), Some(REAL));
    }
}

/// Time from attacker text: a date written in a field the client chose
/// (an access log's user, filled from any Authorization header) must never
/// date the line. Dated 2001, the attack would be dropped as stale and
/// never banned.
mod attacker_dates {
    use std::path::PathBuf;
    use std::sync::Arc;

    use jailwarden::config::reader::Diagnostics;
    use jailwarden::filter::date::DateFinder;
    use jailwarden::filter::def::FilterPath;
    use jailwarden::filter::{Filter, FilterLoader, Outcome};
    use jiff::Timestamp;
    use jiff::tz::TimeZone;

    fn compile(name: &str) -> Arc<Filter> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/filters");
        let loader = FilterLoader::new(FilterPath::new(vec![dir]));
        let diags = Diagnostics::new();
        let f = loader.compile(name, "normal", &diags);
        Arc::new(f.unwrap_or_else(|| panic!("{name}: {:?}", diags.into_sorted())))
    }

    /// (host, time) a file line blames, with "now" in late November 2025.
    fn failure(name: &str, line: &str) -> Option<(String, Option<String>)> {
        let now = Timestamp::from_second(1_764_070_000).expect("now");
        let mut m = compile(name).matcher(DateFinder::new(TimeZone::UTC, now));
        match m.file_line(line.as_bytes()) {
            Outcome::Matched {
                failure: Some(f), ..
            } => Some((f.host_text, f.time.map(|t| t.to_string()))),
            _ => None,
        }
    }

    const REAL_TIME: &str = "2025-11-25T10:20:30Z";

    #[test]
    fn an_access_logs_user_field_never_dates_the_line() {
        for user in [
            "2001-01-01T00:00:00Z",
            "[01/Jan/2001:00:00:00 +0000]",
            "x [01/Jan/2001:00:00:00 +0000] y",
            "Jan  1 00:00:00",
        ] {
            let line = format!(
                "192.0.2.171 - {user} [25/Nov/2025:10:20:30 +0000] \"GET /phpmyadmin/ \
                 HTTP/1.1\" 404 162 \"-\" \"-\""
            );
            assert_eq!(
                failure("nginx-botsearch", &line),
                Some(("192.0.2.171".to_string(), Some(REAL_TIME.to_string()))),
                "user {user:?}"
            );
            let line = format!(
                "192.0.2.171 - {user} [25/Nov/2025:10:20:30 +0000] \"GET / HTTP/1.1\" \
                 200 814 \"-\" \"EmailCollector\""
            );
            assert_eq!(
                failure("apache-badbots", &line),
                Some(("192.0.2.171".to_string(), Some(REAL_TIME.to_string()))),
                "user {user:?}"
            );
        }
    }

    #[test]
    fn an_escaped_quote_in_the_user_does_not_hide_the_real_date() {
        // Apache writes a quote in the user as \": the date after it is
        // still the server's.
        let line = "192.0.2.171 - a\\\" [01/Jan/2001:00:00:00 +0000] \\\"b \
                    [25/Nov/2025:10:20:30 +0000] \"GET / HTTP/1.1\" 200 814 \"-\" \
                    \"EmailCollector\"";
        let f = failure("apache-badbots", line);
        assert_ne!(
            f.as_ref().and_then(|f| f.1.as_deref()),
            Some("2001-01-01T00:00:00Z"),
            "{f:?}"
        );
    }

    #[test]
    fn a_date_anywhere_but_the_formats_place_is_not_the_lines_date() {
        // A syslog line dates from its head; a date in the message (here a
        // user name) is text, not the line's time.
        let line = "Nov 25 10:20:30 h sshd[1]: Invalid user 2001-01-01T00:00:00Z \
                    from 192.0.2.171 port 22";
        assert_eq!(
            failure("sshd", line),
            Some(("192.0.2.171".to_string(), Some(REAL_TIME.to_string())))
        );
        // Without a date where the format puts one, the line has none
        // (the reader's time applies), whatever dates its text holds.
        let line = "192.0.2.171 - 2001-01-01T00:00:00Z \"GET /phpmyadmin/ HTTP/1.1\" 404 \
                    162 \"-\" \"-\"";
        assert_eq!(failure("nginx-botsearch", line).and_then(|f| f.1), None);
    }

    #[test]
    fn journal_entries_are_dated_by_the_journal_never_by_their_text() {
        let entry_time = Timestamp::from_second(1_764_066_030).expect("time");
        let mut m = compile("nginx-http-auth").matcher(DateFinder::new(TimeZone::UTC, entry_time));
        let text = "web nginx[9]: 2001/01/01 00:00:00 [error] 9#9: *1 user \"u\": password \
                    mismatch, client: 192.0.2.171, server: s, request: \"GET / HTTP/1.1\", \
                    host: \"h\"";
        match m.journal_line(text.as_bytes(), entry_time, None, false) {
            Outcome::Matched {
                failure: Some(f), ..
            } => {
                assert_eq!(f.host_text, "192.0.2.171");
                assert_eq!(f.time, Some(entry_time));
            }
            o => panic!("{o:?}"),
        }
    }
}

/// Evasion and false blame: attacker text that hides a failure (an ident
/// with commas), a legitimate client blamed for what another page said
/// (a Referer), and messages of the same service whose end is attacker
/// text forging another message's tail.
mod evasion_and_false_blame {
    use super::mail_family_support::one;
    use super::web_family_support::{REAL, VICTIM};

    #[test]
    fn courier_ident_with_commas_does_not_hide_the_client() {
        // The ident is the client host's own identd answer: anything.
        let line = format!(
            "Apr 10 03:47:57 mx courieresmtpd: error,relay=::ffff:{REAL},ident=a,b=c,\
             from=<x@example.org>,to=<nobody@example.com>: 550 User unknown."
        );
        assert_eq!(one("courier-smtp", &line).as_deref(), Some(REAL));
        let line = format!(
            "Apr 10 03:47:57 mx courieresmtpd: error,relay=::ffff:{REAL},ident=,,,,\
             msg=\"535 Authentication failed.\",cmd: AUTH LOGIN"
        );
        assert_eq!(one("courier-smtp", &line).as_deref(), Some(REAL));
        // Still the relay= client, whatever the ident says.
        let line = format!(
            "Apr 10 03:47:57 mx courieresmtpd: error,relay=::ffff:{REAL},ident=x,relay=::ffff:{VICTIM},\
             from=<x@example.org>,to=<nobody@example.com>: 550 User unknown."
        );
        assert_eq!(one("courier-smtp", &line).as_deref(), Some(REAL));
    }

    #[test]
    fn a_referer_never_makes_a_missing_file_a_script_probe() {
        // A browser on /index.php missing an image is not a scanner.
        for line in [
            format!(
                "[Sat Jun 01 11:23:08 2013] [error] [client {REAL}] File does not exist: \
                 /var/www/img/logo.png, referer: http://example.com/index.php"
            ),
            format!(
                "[Sat Jun 01 11:23:08.123456 2013] [core:info] [pid 1] [client {REAL}:5555] \
                 AH00128: File does not exist: /var/www/img/logo.png, referer: \
                 http://example.com/blog/~"
            ),
        ] {
            assert_eq!(one("apache-noscript", &line), None, "{line}");
            assert_eq!(one("apache-nohome", &line), None, "{line}");
        }
        // The path itself still counts, with or without a referer.
        let line = format!(
            "[Sat Jun 01 11:23:08 2013] [error] [client {REAL}] File does not exist: \
             /var/www/phpmyadmin/index.php, referer: http://example.com/"
        );
        assert_eq!(one("apache-noscript", &line).as_deref(), Some(REAL));
        let line = format!(
            "[Sat Jun 01 11:23:08 2013] [error] [client {REAL}] File does not exist: /var/www/~"
        );
        assert_eq!(one("apache-nohome", &line).as_deref(), Some(REAL));
    }

    #[test]
    fn freepbx_log_lines_ending_in_a_caller_id_do_not_forge_a_rejection() {
        let line = format!(
            "[2013-11-11 14:33:38] WARNING[6756][C-0000001d] Ext. s: \"Unknown call from \
             a: \"Rejecting unknown SIP connection from {VICTIM}\""
        );
        assert_eq!(one("asterisk", &line), None);
        let line = format!(
            "Mar  1 15:35:53 pbx asterisk[2350]: WARNING[1195][C-00000b43]: Ext. s:6 in @ \
             from-sip-external: \"Rejecting unknown SIP connection from {REAL}\""
        );
        assert_eq!(one("asterisk", &line).as_deref(), Some(REAL));
    }
}

/// Behind reverse proxies: filters that read an X-Forwarded-For list hand
/// the whole chain over; with the jail's trusted_proxies the client is the
/// rightmost address that is not a trusted proxy, and a trusted proxy is
/// never the one blamed.
mod forwarded_for {
    use std::path::PathBuf;
    use std::sync::Arc;

    use jailwarden::addr::{AddrList, Host, client_behind};
    use jailwarden::config::reader::Diagnostics;
    use jailwarden::filter::date::DateFinder;
    use jailwarden::filter::def::FilterPath;
    use jailwarden::filter::{FilterLoader, Outcome};
    use jiff::Timestamp;
    use jiff::tz::TimeZone;

    /// The client a jail trusting `trusted` blames for `line`.
    fn client(name: &str, line: &str, trusted: &[&str]) -> Option<String> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/filters");
        let loader = FilterLoader::new(FilterPath::new(vec![dir]));
        let diags = Diagnostics::new();
        let f = Arc::new(loader.compile(name, "normal", &diags).expect(name));
        let now = Timestamp::from_second(1_124_013_600).expect("now");
        let mut m = f.matcher(DateFinder::new(TimeZone::UTC, now));
        let Outcome::Matched {
            failure: Some(f), ..
        } = m.file_line(line.as_bytes())
        else {
            return None;
        };
        let mut t = AddrList::new();
        for n in trusted {
            t.push_str(n).expect("cidr");
        }
        client_behind(&f.host, &f.forwarded, &t).map(|h: Host| h.to_string())
    }

    const PROXIES: &[&str] = &["10.0.0.0/8", "2001:db8:1::/48"];

    #[test]
    fn sogo_blames_the_client_behind_the_proxies_never_a_proxy() {
        // 192.0.2.9: the client's own header; 203.0.113.5: what the first
        // trusted proxy saw; 10.0.0.1: the next proxy.
        let line = "Mar 24 19:29:32 sogod [1526]: SOGoRootPage Login from '192.0.2.9, 203.0.113.5, 10.0.0.1' \
                    for user 'admin' might not have worked - password policy: 65535  grace: -1  \
                    expire: -1  bound: 0";
        assert_eq!(
            client("sogo-auth", line, PROXIES).as_deref(),
            Some("203.0.113.5")
        );
        // Without trusted proxies: the last element (the proxy's view).
        assert_eq!(client("sogo-auth", line, &[]).as_deref(), Some("10.0.0.1"));
        // Only proxies: nobody (a health check, a proxy's own request).
        let line = "Mar 24 19:29:32 sogod [1526]: SOGoRootPage Login from '10.0.0.7, 10.0.0.1' for \
                    user 'admin' might not have worked - password policy: 65535  grace: -1  \
                    expire: -1  bound: 0";
        assert_eq!(client("sogo-auth", line, PROXIES), None);
    }

    #[test]
    fn guacamole_and_roundcube_read_the_chain_too() {
        let line = "12:57:32.907 [http-nio-8080-exec-10] WARN  o.a.g.r.auth.AuthenticationService - \
                    Authentication attempt from [192.0.2.9, 203.0.113.5, 10.0.0.3] for user \"x\" failed.";
        assert_eq!(
            client("guacamole", line, PROXIES).as_deref(),
            Some("203.0.113.5")
        );
        assert_eq!(client("guacamole", line, &[]).as_deref(), Some("10.0.0.3"));
        // Roundcube: REMOTE_ADDR (the proxy) and X-Forwarded-For.
        let line = "[17-Jan-2016 11:09:06 +0200]: <j2pncet8> IMAP Error: Login failed for u@example.com \
                    from 10.0.0.3(X-Real-IP: 203.0.113.5,X-Forwarded-For: 192.0.2.9, 203.0.113.5). \
                    AUTHENTICATE PLAIN: Authentication failed. in /usr/share/roundcube/x.php on line \
                    1 (POST /?_task=login&_action=login)";
        assert_eq!(
            client("roundcube-auth", line, PROXIES).as_deref(),
            Some("203.0.113.5")
        );
        assert_eq!(
            client("roundcube-auth", line, &[]).as_deref(),
            Some("10.0.0.3")
        );
        // A client talking to Roundcube directly with a forged header: the
        // header is never believed, REMOTE_ADDR is the client.
        let line = "[17-Jan-2016 11:09:06 +0200]: <j2pncet8> IMAP Error: Login failed for u@example.com \
                    from 203.0.113.5(X-Forwarded-For: 192.0.2.9). AUTHENTICATE PLAIN: Authentication \
                    failed. in /usr/share/roundcube/x.php on line 1 (POST /?_task=login&_action=login)";
        assert_eq!(
            client("roundcube-auth", line, PROXIES).as_deref(),
            Some("203.0.113.5")
        );
    }
}
