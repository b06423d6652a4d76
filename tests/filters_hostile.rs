//! Hostile lines: attacker text (user names, HELO names, commands,
//! recipients) that contains an address must never choose the host a
//! filter blames. Each family of filters has its own module.

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
        // A one-token user that carries "ADDR):" is followed by ",REAL",
        // never by the "): " with a space that the pattern needs.
        let line = "Jan 29 05:13:40 mail dovecot: auth-worker(31326): \
                    pam(x,192.0.2.9):,203.0.113.5): unknown user";
        assert_eq!(one("dovecot", line).as_deref(), Some(REAL));
        let line = "Jan 29 05:13:40 mail dovecot: auth: \
                    sql(x,192.0.2.9,<a>):,203.0.113.5,<b>): Password mismatch";
        assert_eq!(one("dovecot", line).as_deref(), Some(REAL));
        // With spaces in the user the line is not ours at all.
        let line = "Jan 29 05:13:40 mail dovecot: auth: \
                    sql(x,192.0.2.9): Password mismatch (given password: y,203.0.113.5): Password mismatch";
        assert_ne!(one("dovecot", line).as_deref(), Some("192.0.2.9"));
    }

    #[test]
    fn dovecot_24_user_and_password_text_cannot_supply_the_address() {
        let line = "Aug 30 00:10:57 auth(bob,203.0.113.5,sasl:login)<CvN>: Info: sql: Password \
                    mismatch (given password: x 192.0.2.9,sasl:login)";
        assert_eq!(one("dovecot", line).as_deref(), Some(REAL));
        // A user with spaces forging the whole prefix: the real one would
        // have to sit inside the given password, which holds no ")".
        let line = "Aug 30 00:10:57 auth(y,192.0.2.9,sasl:login)<a>: Info: sql: Password mismatch \
                    (given password: x,203.0.113.5,sasl:login)<CvN>: Info: sql: Password mismatch \
                    (given password: pw)";
        assert_eq!(one("dovecot", line), None);
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
