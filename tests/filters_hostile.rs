//! Hostile lines: attacker text (user names, URLs, HELO names, paths,
//! headers) that contains an address must never choose the host a filter
//! blames. Each family of filters has its own module.

/// Run lines through a shipped filter and return the host each blames.
mod web_family_support {
    use std::path::PathBuf;
    use std::sync::Arc;

    use jailwarden::config::reader::Diagnostics;
    use jailwarden::filter::date::DateFinder;
    use jailwarden::filter::def::FilterPath;
    use jailwarden::filter::{FilterLoader, Outcome};
    use jiff::Timestamp;
    use jiff::tz::TimeZone;

    /// The address attacks try to frame.
    pub const VICTIM: &str = "192.0.2.9";
    /// The attacker, who wrote the line.
    pub const REAL: &str = "203.0.113.5";

    /// The host `line` blames through `filter` in `mode`, if any.
    pub fn host(filter: &str, mode: &str, line: &str) -> Option<String> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/filters");
        let loader = FilterLoader::new(FilterPath::new(vec![dir]));
        let diags = Diagnostics::new();
        let compiled = loader.compile(filter, mode, &diags);
        let errors: Vec<String> = diags.into_sorted().iter().map(|d| d.to_string()).collect();
        let f = Arc::new(compiled.unwrap_or_else(|| panic!("{filter}: {errors:?}")));
        let now = Timestamp::from_second(1_124_013_600).expect("now");
        let mut m = f.matcher(DateFinder::new(TimeZone::UTC, now));
        match m.file_line(line.as_bytes()) {
            Outcome::Matched {
                failure: Some(f), ..
            } => Some(f.host_text),
            _ => None,
        }
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
        // The virtual host (the client's Host header) first.
        let line = "192.0.2.9 203.0.113.5 - - [20/Jan/2015:19:53:28 +0100] \
                    \"GET / HTTP/1.1\" 400 47 \"-\" \"-\"";
        assert_eq!(one("nginx-bad-request", line).as_deref(), Some(REAL));
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
        let line = "Fri Jan 19 12:20:33 2007 [pid 1] [x] FAIL LOGIN: Client \
                    \"192.0.2.9\"] FAIL LOGIN: Client \"203.0.113.5\"";
        assert_eq!(one("vsftpd", line).as_deref(), Some(REAL));
        // PAM: a user name with spaces shifts the tokens; not counted.
        let line = "Oct 23 21:15:42 vps vsftpd: pam_unix(vsftpd:auth): authentication \
                    failure; logname= uid=0 euid=0 tty=ftp ruser=x rhost=192.0.2.9 \
                    rhost=203.0.113.5 user=x rhost=192.0.2.9";
        assert_ne!(one("vsftpd", line).as_deref(), Some(VICTIM));
    }
}
