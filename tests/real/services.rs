//! The services under attack: how each real daemon is configured (Debian
//! 12's stock configuration plus the least a test needs, written inside
//! the lab's sandbox), started, and attacked by real clients.

use std::time::Duration;

use crate::lab::{Lab, here, server_for};
use crate::scenario::{Attempt, Capture, JailTest, Row, Success, Warden, Who, bystander_of};

/// The suite's test user, made in every package layer by layers.sh.
pub const USER: &str = "jwreal";
pub const PASSWORD: &str = "Correct-Horse-7";

pub trait Service: Sync {
    /// The lab's name (also the fixture's).
    fn name(&self) -> &'static str;
    /// The package layer (lab.rs, layers.sh).
    fn group(&self) -> &'static str {
        "host"
    }
    /// The Debian package whose version the report gives.
    fn package(&self) -> &'static str;
    /// Configure and start the daemons; return once they serve.
    fn start(&self, lab: &Lab);
    /// The jails to test.
    fn jails(&self) -> Vec<JailTest>;
    /// How the service was configured, for the fixtures' provenance.
    fn config_note(&self) -> &'static str;
    /// Checks beyond the jails' common ones, after them.
    fn extra(&self, _warden: &Warden) -> Vec<Row> {
        Vec::new()
    }
    /// Stop daemons that forked (the lab stops what it started by PID,
    /// and then everything left in its namespaces).
    fn stop(&self, _lab: &Lab) {}
}

/// Every service, the slowest first (they start first; PAM and the mail
/// servers' delays make those the longest).
pub fn all() -> Vec<Box<dyn Service>> {
    vec![
        Box::new(Courier),
        Box::new(Postfix),
        Box::new(Vsftpd),
        Box::new(PureFtpd),
        Box::new(Sshd),
        Box::new(Proftpd),
        Box::new(Exim),
        Box::new(Bind),
        Box::new(Apache),
        Box::new(Nginx),
        Box::new(Lighttpd),
        Box::new(Mariadb),
    ]
}

/// A user name by role: attackers guess a name that does not exist, or the
/// real account.
fn user_for(who: Who) -> &'static str {
    match who {
        Who::Attacker => "admin",
        Who::AttackerKnownUser | Who::User => USER,
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "exit {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// clients.py: 0 accepted, 1 refused, else broken.
fn py(lab: &Lab, args: &[&str]) -> Result<bool, String> {
    let script = here().join("clients.py");
    let mut argv = vec!["/usr/bin/python3", script.to_str().expect("path")];
    argv.extend_from_slice(args);
    let out = lab.client(&argv, Duration::from_secs(60));
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(text(&out)),
    }
}

fn refused(r: Result<bool, String>) -> Result<(), String> {
    match r {
        Ok(false) => Ok(()),
        Ok(true) => Err("the server accepted it".into()),
        Err(e) => Err(e),
    }
}

fn accepted(r: Result<bool, String>) -> Result<(), String> {
    match r {
        Ok(true) => Ok(()),
        Ok(false) => Err("the server refused it".into()),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------- sshd

struct Sshd;

const SSH_OPTS: &[&str] = &[
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "PreferredAuthentications=password",
    "-o",
    "PubkeyAuthentication=no",
    "-o",
    "NumberOfPasswordPrompts=1",
];

fn ssh(lab: &Lab, src: &str, user: &str, password: &str) -> Result<bool, String> {
    let target = format!("{user}@{}", server_for(src));
    let mut argv = vec!["sshpass", "-p", password, "ssh"];
    argv.extend_from_slice(SSH_OPTS);
    argv.extend(["-b", src, &target, "true"]);
    let out = lab.client(&argv, Duration::from_secs(40));
    let err = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Ok(true),
        // sshpass: 5 = wrong password; ssh: 255 after "Permission denied".
        Some(5) => Ok(false),
        Some(255) if err.contains("Permission denied") => Ok(false),
        _ => Err(text(&out)),
    }
}

/// Several passwords on one connection: ssh asks SSH_ASKPASS for each.
fn ssh_burst() -> crate::scenario::Burst {
    Box::new(|lab, src, n| {
        let askpass = lab.dir.join("askpass-wrong.sh");
        std::fs::write(&askpass, "#!/bin/sh\necho wrong-password\n").map_err(|e| e.to_string())?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
        }
        let prompts = format!("NumberOfPasswordPrompts={n}");
        let target = format!("admin@{}", server_for(src));
        let askpass_env = format!("SSH_ASKPASS={}", askpass.display());
        let mut argv = vec![
            "env",
            &askpass_env,
            "SSH_ASKPASS_REQUIRE=force",
            "DISPLAY=:0",
            "ssh",
        ];
        // SSH_OPTS ends with the one-prompt pair: this client wants n.
        argv.extend_from_slice(&SSH_OPTS[..SSH_OPTS.len() - 2]);
        argv.extend(["-o", &prompts, "-b", src, &target, "true"]);
        let out = lab.client(&argv, Duration::from_secs(60));
        let err = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(255) if err.contains("Permission denied") => Ok(()),
            _ => Err(text(&out)),
        }
    })
}

impl Service for Sshd {
    fn name(&self) -> &'static str {
        "sshd"
    }
    fn package(&self) -> &'static str {
        "openssh-server"
    }
    fn config_note(&self) -> &'static str {
        "Debian 12 stock sshd_config (UsePAM yes, KbdInteractiveAuthentication no, password authentication on), through the journal as ssh.service"
    }
    fn start(&self, lab: &Lab) {
        // As ssh.service runs it: `sshd -D`.
        lab.spawn("sshd", Some("ssh.service"), &["/usr/sbin/sshd", "-D"]);
        lab.wait_listen("tcp", 22, Duration::from_secs(20));
    }
    fn jails(&self) -> Vec<JailTest> {
        let fail: Attempt =
            Box::new(|lab, who, src| refused(ssh(lab, src, user_for(who), "wrong-password")));
        let succeed: Success = Box::new(|lab, src| accepted(ssh(lab, src, USER, PASSWORD)));
        vec![JailTest {
            jail: "sshd",
            example: "jailwarden",
            port: 22,
            fail,
            succeed,
            ipv6: true,
            source: Capture::Journal("ssh", &["_SYSTEMD_UNIT=ssh.service"]),
            what: "one wrong password per connection (invalid user admin over IPv4, the real account over IPv6)",
            maxretry: None,
            burst: Some(ssh_burst()),
            package: None,
        }]
    }
}

// ---------------------------------------------------------------- web

/// A request with curl from `src`; the HTTP status. Every request names
/// the bystander in its Host header: a filter that took the Host for the
/// client would ban it.
fn curl(lab: &Lab, src: &str, path: &str, extra: &[&str]) -> Result<u16, String> {
    let host = if src.contains(':') {
        "[2001:db8::1]".to_string()
    } else {
        "192.0.2.1".to_string()
    };
    let url = format!("http://{host}{path}");
    let forged = format!("Host: {}", bystander_of(src));
    let mut argv = vec![
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
        "--interface",
        src,
        "-H",
        &forged,
    ];
    argv.extend_from_slice(extra);
    argv.push(&url);
    let out = lab.client(&argv, Duration::from_secs(20));
    let code = String::from_utf8_lossy(&out.stdout).trim().parse::<u16>();
    match code {
        Ok(c) if c > 0 => Ok(c),
        _ => Err(text(&out)),
    }
}

fn expect_status(got: Result<u16, String>, want: &[u16]) -> Result<(), String> {
    match got {
        Ok(c) if want.contains(&c) => Ok(()),
        Ok(c) => Err(format!("HTTP {c}, want {want:?}")),
        Err(e) => Err(e),
    }
}

/// Basic authentication with a wrong password.
fn basic_fail(path: &'static str) -> Attempt {
    Box::new(move |lab, who, src| {
        let cred = format!("{}:wrong-password", user_for(who));
        expect_status(curl(lab, src, path, &["-u", &cred]), &[401])
    })
}

fn basic_ok(path: &'static str) -> Success {
    Box::new(move |lab, src| {
        let cred = format!("{USER}:{PASSWORD}");
        expect_status(curl(lab, src, path, &["-u", &cred]), &[200])
    })
}

/// A robot announcing itself (apache-badbots' list).
fn bad_bot() -> Attempt {
    Box::new(|lab, _, src| expect_status(curl(lab, src, "/", &["-A", "EmailCollector"]), &[200]))
}

/// A scanner probing for phpMyAdmin (nginx-botsearch).
fn bot_search() -> Attempt {
    Box::new(|lab, _, src| expect_status(curl(lab, src, "/phpmyadmin/index.php", &[]), &[404]))
}

fn browse() -> Success {
    Box::new(|lab, src| {
        let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0";
        expect_status(curl(lab, src, "/", &["-A", ua]), &[200])
    })
}

/// An htpasswd file with the test user, in the sandbox.
fn htpasswd(lab: &Lab, path: &str) {
    lab.sh_ok(&format!(
        "htpasswd -cbB {path} {USER} {PASSWORD} 2>/dev/null"
    ));
}

const PRIVATE_DIR: &str =
    "mkdir -p /var/www/html/private && echo private > /var/www/html/private/index.html\n";

struct Apache;

impl Service for Apache {
    fn name(&self) -> &'static str {
        "apache2"
    }
    fn package(&self) -> &'static str {
        "apache2"
    }
    fn config_note(&self) -> &'static str {
        "Debian 12 stock apache2 (LogLevel warn, combined access log) plus conf-enabled/jw-auth.conf: AuthType Basic on /private/ (AuthUserFile with the test user)"
    }
    fn start(&self, lab: &Lab) {
        htpasswd(lab, "/etc/apache2/jw.htpasswd");
        lab.sh_ok(&format!(
            "{PRIVATE_DIR}cat > /etc/apache2/conf-available/jw-auth.conf <<'EOF'
<Location /private/>
    AuthType Basic
    AuthName \"jailwarden test\"
    AuthUserFile /etc/apache2/jw.htpasswd
    Require valid-user
</Location>
EOF
a2enconf -q jw-auth"
        ));
        // As apache2.service runs it (apachectl start), in the foreground.
        lab.spawn(
            "apache2",
            Some("apache2.service"),
            &[
                "sh",
                "-c",
                ". /etc/apache2/envvars && mkdir -p $APACHE_RUN_DIR $APACHE_LOCK_DIR $APACHE_LOG_DIR && exec /usr/sbin/apache2 -DFOREGROUND",
            ],
        );
        lab.wait_listen("tcp", 80, Duration::from_secs(20));
    }
    fn jails(&self) -> Vec<JailTest> {
        vec![
            JailTest {
                jail: "apache-auth",
                example: "apache",
                port: 80,
                fail: basic_fail("/private/"),
                succeed: basic_ok("/private/"),
                ipv6: true,
                source: Capture::File("/var/log/apache2/error.log"),
                what: "HTTP basic auth with a wrong password (unknown user admin over IPv4, the real user over IPv6), Host header naming the bystander",
                maxretry: None,
                burst: None,
                package: None,
            },
            JailTest {
                jail: "apache-badbots",
                example: "apache",
                port: 80,
                fail: bad_bot(),
                succeed: browse(),
                ipv6: true,
                source: Capture::File("/var/log/apache2/access.log"),
                what: "GET / with User-Agent EmailCollector, Host header naming the bystander",
                maxretry: None,
                burst: None,
                package: None,
            },
        ]
    }
}

struct Nginx;

impl Service for Nginx {
    fn name(&self) -> &'static str {
        "nginx"
    }
    fn package(&self) -> &'static str {
        "nginx"
    }
    fn config_note(&self) -> &'static str {
        "Debian 12 stock nginx (default site with try_files, combined access log) plus auth_basic on /private/ in the default site"
    }
    fn start(&self, lab: &Lab) {
        htpasswd(lab, "/etc/nginx/jw.htpasswd");
        lab.sh_ok(&format!(
            r#"{PRIVATE_DIR}sed -i 's|^\(\s*\)location / {{|\1location /private/ {{\n\1\tauth_basic "jailwarden test";\n\1\tauth_basic_user_file /etc/nginx/jw.htpasswd;\n\1}}\n\n\1location / {{|' /etc/nginx/sites-available/default
grep -q jw.htpasswd /etc/nginx/sites-available/default
nginx -t -q"#
        ));
        lab.spawn(
            "nginx",
            Some("nginx.service"),
            &["/usr/sbin/nginx", "-g", "daemon off; master_process on;"],
        );
        lab.wait_listen("tcp", 80, Duration::from_secs(20));
    }
    fn jails(&self) -> Vec<JailTest> {
        vec![
            JailTest {
                jail: "nginx-http-auth",
                example: "nginx",
                port: 80,
                fail: basic_fail("/private/"),
                succeed: basic_ok("/private/"),
                ipv6: true,
                source: Capture::File("/var/log/nginx/error.log"),
                what: "HTTP basic auth with a wrong password (unknown user admin over IPv4, the real user over IPv6), Host header naming the bystander",
                maxretry: None,
                burst: None,
                package: None,
            },
            JailTest {
                jail: "nginx-botsearch",
                example: "nginx",
                port: 80,
                fail: bot_search(),
                succeed: browse(),
                ipv6: true,
                source: Capture::File("/var/log/nginx/access.log"),
                what: "GET /phpmyadmin/index.php (404), Host header naming the bystander",
                maxretry: None,
                burst: None,
                package: None,
            },
        ]
    }
}

struct Lighttpd;

impl Service for Lighttpd {
    fn name(&self) -> &'static str {
        "lighttpd"
    }
    fn package(&self) -> &'static str {
        "lighttpd"
    }
    fn config_note(&self) -> &'static str {
        "Debian 12 stock lighttpd plus `lighty-enable-mod auth accesslog` (default access log format: %h %V %u %t ...) and auth.require on /private/ (htpasswd backend)"
    }
    fn start(&self, lab: &Lab) {
        htpasswd(lab, "/etc/lighttpd/jw.htpasswd");
        lab.sh_ok(&format!(
            "{PRIVATE_DIR}lighty-enable-mod auth accesslog >/dev/null
cat > /etc/lighttpd/conf-enabled/99-jw-auth.conf <<'EOF'
auth.backend = \"htpasswd\"
auth.backend.htpasswd.userfile = \"/etc/lighttpd/jw.htpasswd\"
auth.require = ( \"/private/\" => ( \"method\" => \"basic\", \"realm\" => \"jailwarden test\", \"require\" => \"valid-user\" ) )
EOF
mkdir -p /run/lighttpd && chown www-data:www-data /run/lighttpd
lighttpd -tt -f /etc/lighttpd/lighttpd.conf"
        ));
        lab.spawn(
            "lighttpd",
            Some("lighttpd.service"),
            &[
                "/usr/sbin/lighttpd",
                "-D",
                "-f",
                "/etc/lighttpd/lighttpd.conf",
            ],
        );
        lab.wait_listen("tcp", 80, Duration::from_secs(20));
    }
    fn jails(&self) -> Vec<JailTest> {
        vec![
            JailTest {
                jail: "lighttpd-auth",
                example: "lighttpd",
                port: 80,
                fail: basic_fail("/private/"),
                succeed: basic_ok("/private/"),
                ipv6: true,
                source: Capture::File("/var/log/lighttpd/error.log"),
                what: "HTTP basic auth with a wrong password (unknown user admin over IPv4, the real user over IPv6), Host header naming the bystander",
                maxretry: None,
                burst: None,
                package: None,
            },
            JailTest {
                jail: "lighttpd-badbots",
                example: "lighttpd",
                port: 80,
                fail: bad_bot(),
                succeed: browse(),
                ipv6: true,
                source: Capture::File("/var/log/lighttpd/access.log"),
                what: "GET / with User-Agent EmailCollector, Host header naming the bystander (lighttpd logs it second)",
                maxretry: None,
                burst: None,
                package: None,
            },
            JailTest {
                jail: "lighttpd-botsearch",
                example: "lighttpd",
                port: 80,
                fail: bot_search(),
                succeed: browse(),
                ipv6: true,
                source: Capture::File("/var/log/lighttpd/access.log"),
                what: "GET /phpmyadmin/index.php (404), Host header naming the bystander (lighttpd logs it second)",
                maxretry: None,
                burst: None,
                package: None,
            },
        ]
    }
}

// ---------------------------------------------------------------- ftp

fn ftp_fail() -> Attempt {
    Box::new(|lab, who, src| {
        refused(py(
            lab,
            &["ftp", src, server_for(src), user_for(who), "wrong-password"],
        ))
    })
}

fn ftp_burst() -> crate::scenario::Burst {
    Box::new(|lab, src, n| {
        let n = n.to_string();
        refused(py(
            lab,
            &[
                "ftp-burst",
                src,
                server_for(src),
                "admin",
                "wrong-password",
                &n,
            ],
        ))
    })
}

fn ftp_ok() -> Success {
    Box::new(|lab, src| accepted(py(lab, &["ftp", src, server_for(src), USER, PASSWORD])))
}

struct Vsftpd;

impl Service for Vsftpd {
    fn name(&self) -> &'static str {
        "vsftpd"
    }
    fn package(&self) -> &'static str {
        "vsftpd"
    }
    fn config_note(&self) -> &'static str {
        "Debian 12 stock vsftpd.conf (listen_ipv6=YES, local users through PAM, xferlog_enable=YES: /var/log/vsftpd.log)"
    }
    fn start(&self, lab: &Lab) {
        lab.sh_ok("mkdir -p /run/vsftpd/empty");
        lab.spawn(
            "vsftpd",
            Some("vsftpd.service"),
            &["/usr/sbin/vsftpd", "/etc/vsftpd.conf"],
        );
        lab.wait_listen("tcp", 21, Duration::from_secs(20));
    }
    fn jails(&self) -> Vec<JailTest> {
        vec![JailTest {
            jail: "vsftpd",
            example: "vsftpd",
            port: 21,
            fail: ftp_fail(),
            succeed: ftp_ok(),
            ipv6: true,
            source: Capture::File("/var/log/vsftpd.log"),
            what: "FTP login with a wrong password (unknown user admin over IPv4, the real user over IPv6)",
            maxretry: None,
            burst: Some(ftp_burst()),
            package: None,
        }]
    }
}

struct Proftpd;

impl Service for Proftpd {
    fn name(&self) -> &'static str {
        "proftpd"
    }
    fn group(&self) -> &'static str {
        "proftpd"
    }
    fn package(&self) -> &'static str {
        "proftpd-core"
    }
    fn config_note(&self) -> &'static str {
        "Debian 12 stock proftpd.conf as proftpd-core's postinst writes it (standalone, UseIPv6 on, PAM, MaxLoginAttempts default 3, SystemLog /var/log/proftpd/proftpd.log)"
    }
    fn start(&self, lab: &Lab) {
        lab.sh_ok("mkdir -p /run/proftpd");
        // As proftpd.service runs it: it forks (Type=forking, PIDFile
        // /run/proftpd.pid). In the foreground (-n) it would log to
        // stderr instead of its SystemLog.
        lab.spawn(
            "proftpd",
            Some("proftpd.service"),
            &["/usr/sbin/proftpd", "-c", "/etc/proftpd/proftpd.conf"],
        );
        lab.wait_listen("tcp", 21, Duration::from_secs(20));
    }
    fn stop(&self, lab: &Lab) {
        lab.stop_pidfile("/run/proftpd.pid");
    }
    fn jails(&self) -> Vec<JailTest> {
        vec![JailTest {
            jail: "proftpd",
            example: "proftpd",
            port: 21,
            fail: ftp_fail(),
            succeed: ftp_ok(),
            ipv6: true,
            source: Capture::File("/var/log/proftpd/proftpd.log"),
            what: "FTP login with a wrong password (unknown user admin over IPv4, the real user over IPv6)",
            maxretry: None,
            burst: Some(ftp_burst()),
            package: None,
        }]
    }
}

struct PureFtpd;

impl Service for PureFtpd {
    fn name(&self) -> &'static str {
        "pure-ftpd"
    }
    fn group(&self) -> &'static str {
        "pure-ftpd"
    }
    fn package(&self) -> &'static str {
        "pure-ftpd"
    }
    fn config_note(&self) -> &'static str {
        "Debian 12 stock pure-ftpd (pure-ftpd-wrapper with /etc/pure-ftpd/conf: PAM authentication), through the journal as pure-ftpd.service"
    }
    fn start(&self, lab: &Lab) {
        lab.spawn(
            "pure-ftpd",
            Some("pure-ftpd.service"),
            &["/usr/sbin/pure-ftpd-wrapper"],
        );
        lab.wait_listen("tcp", 21, Duration::from_secs(20));
    }
    fn jails(&self) -> Vec<JailTest> {
        vec![JailTest {
            jail: "pure-ftpd",
            example: "pure-ftpd",
            port: 21,
            fail: ftp_fail(),
            succeed: ftp_ok(),
            ipv6: true,
            source: Capture::Journal(
                "pure-ftpd",
                &[
                    "_SYSTEMD_UNIT=pure-ftpd.service",
                    "+",
                    "SYSLOG_IDENTIFIER=pure-ftpd",
                    "_UID=0",
                ],
            ),
            what: "FTP login with a wrong password (unknown user admin over IPv4, the real user over IPv6)",
            maxretry: None,
            burst: None,
            package: None,
        }]
    }
}

// ---------------------------------------------------------------- mail

/// The test domain the mail servers accept mail for.
const DOMAIN: &str = "jw.example.test";

fn smtp_auth_fail() -> Attempt {
    Box::new(|lab, who, src| {
        refused(py(
            lab,
            &[
                "smtp-auth",
                src,
                server_for(src),
                user_for(who),
                "wrong-password",
            ],
        ))
    })
}

fn smtp_auth_ok() -> Success {
    Box::new(|lab, src| {
        accepted(py(
            lab,
            &["smtp-auth", src, server_for(src), USER, PASSWORD],
        ))
    })
}

/// Mail for a foreign domain from an unauthenticated client: relaying.
fn smtp_relay() -> Attempt {
    Box::new(|lab, _, src| {
        refused(py(
            lab,
            &[
                "smtp-relay",
                src,
                server_for(src),
                "someone@example.net",
                "victim@example.org",
            ],
        ))
    })
}

/// Mail for the local user: accepted.
fn smtp_local() -> Success {
    Box::new(|lab, src| {
        let rcpt = format!("{USER}@{DOMAIN}");
        accepted(py(
            lab,
            &[
                "smtp-relay",
                src,
                server_for(src),
                "someone@example.net",
                &rcpt,
            ],
        ))
    })
}

fn imap_fail(tls: &'static str) -> Attempt {
    Box::new(move |lab, who, src| {
        let mut args = vec![
            "imap",
            src,
            server_for(src),
            user_for(who),
            "wrong-password",
        ];
        if !tls.is_empty() {
            args.push(tls);
        }
        refused(py(lab, &args))
    })
}

fn imap_burst(tls: &'static str) -> crate::scenario::Burst {
    Box::new(move |lab, src, n| {
        let n = n.to_string();
        let mut args = vec![
            "imap-burst",
            src,
            server_for(src),
            "admin",
            "wrong-password",
            &n,
        ];
        if !tls.is_empty() {
            args.push(tls);
        }
        refused(py(lab, &args))
    })
}

fn imap_ok(tls: &'static str) -> Success {
    Box::new(move |lab, src| {
        let mut args = vec!["imap", src, server_for(src), USER, PASSWORD];
        if !tls.is_empty() {
            args.push(tls);
        }
        accepted(py(lab, &args))
    })
}

/// postfix with dovecot: SMTP relaying and AUTH (dovecot's SASL), IMAP.
struct Postfix;

const POSTFIX_JOURNAL: &[&str] = &["_SYSTEMD_UNIT=postfix@-.service"];
const DOVECOT_JOURNAL: &[&str] = &["_SYSTEMD_UNIT=dovecot.service"];

impl Service for Postfix {
    fn name(&self) -> &'static str {
        "postfix"
    }
    fn package(&self) -> &'static str {
        "postfix"
    }
    fn config_note(&self) -> &'static str {
        "Debian 12 postfix as \"Internet Site\" (smtpd_relay_restrictions ... defer_unauth_destination: relaying gets 454) with SASL through dovecot 2.3 (smtpd_sasl_type=dovecot, private/auth), dovecot-imapd stock (PAM, disable_plaintext_auth: STARTTLS); through the journal as postfix@-.service and dovecot.service"
    }
    fn start(&self, lab: &Lab) {
        lab.sh_ok(&format!(
            "postconf -e myhostname=mail.{DOMAIN} 'mydestination=$myhostname, {DOMAIN}, localhost' \
               smtpd_sasl_type=dovecot smtpd_sasl_path=private/auth smtpd_sasl_auth_enable=yes
cat > /etc/dovecot/conf.d/99-jw.conf <<'EOF'
service auth {{
  unix_listener /var/spool/postfix/private/auth {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
EOF
mkdir -p /run/dovecot"
        ));
        lab.spawn(
            "dovecot",
            Some("dovecot.service"),
            &["/usr/sbin/dovecot", "-F"],
        );
        lab.wait_listen("tcp", 143, Duration::from_secs(60));
        // As postfix@-.service starts it (forking; master.pid).
        lab.spawn(
            "postfix",
            Some("postfix@-.service"),
            &[
                "sh",
                "-c",
                "/usr/lib/postfix/configure-instance.sh - && exec /usr/sbin/postmulti -i - -p start",
            ],
        );
        lab.wait_listen("tcp", 25, Duration::from_secs(60));
    }
    fn stop(&self, lab: &Lab) {
        lab.stop_pidfile("/var/spool/postfix/pid/master.pid");
    }
    /// An outage of Dovecot's auth server (its process stopped): every
    /// client's AUTH ends "Connection lost to authentication server".
    /// That line never counts alone (a client with the right password is
    /// not counted), and counts for an address that already has a counted
    /// failure, whose next guess then bans it at maxretry.
    fn extra(&self, warden: &Warden) -> Vec<Row> {
        let lab = warden.lab;
        let started = std::time::Instant::now();
        let (innocent, guesser) = ("192.0.2.51", "192.0.2.52");
        let jail = "postfix-sasl";
        let m = crate::scenario::MAXRETRY;
        let total_before = warden.total_failed(jail).unwrap_or(0);
        let guess = |src: &str| {
            refused(py(
                lab,
                &["smtp-auth", src, "192.0.2.1", "admin", "wrong-password"],
            ))
            .unwrap_or_else(|e| panic!("postfix/{jail} outage: {src}: {e}"));
        };
        guess(guesser);
        let auth = lab.server_pids("dovecot/auth");
        assert!(
            !auth.is_empty(),
            "postfix/{jail} outage: no dovecot/auth process"
        );
        lab.signal_server(&auth, crate::lab::Signal::STOP);
        let during = std::thread::scope(|s| {
            let a = s.spawn(|| py(lab, &["smtp-auth", innocent, "192.0.2.1", USER, PASSWORD]));
            let b = s.spawn(|| {
                py(
                    lab,
                    &["smtp-auth", guesser, "192.0.2.1", "admin", "wrong-password"],
                )
            });
            (a.join(), b.join())
        });
        lab.signal_server(&auth, crate::lab::Signal::CONT);
        let (a, b) = (during.0.expect("client"), during.1.expect("client"));
        assert!(
            matches!(a, Ok(false)) && matches!(b, Ok(false)),
            "postfix/{jail} outage: AUTH during the outage: {a:?} {b:?}"
        );
        let want: std::collections::BTreeMap<String, i64> = warden
            .counted(jail)
            .into_iter()
            .filter(|(k, _)| k != innocent && k != guesser)
            .chain([(guesser.to_string(), 2)])
            .collect();
        let ok =
            crate::support::wait_until(Duration::from_secs(30), || warden.counted(jail) == want);
        std::thread::sleep(Duration::from_secs(2));
        let counted = warden.counted(jail);
        assert!(
            ok && counted == want,
            "postfix/{jail} outage: counted {counted:?}, want {want:?} (the innocent {innocent} never, the guesser {guesser} twice)"
        );
        assert!(
            !warden
                .bans()
                .iter()
                .any(|b| b.address == innocent || b.address == guesser),
            "postfix/{jail} outage: banned during the outage"
        );
        // The guesser's next guess is its third counted failure: banned.
        guess(guesser);
        let mut failures = 0;
        let banned = crate::support::wait_until(Duration::from_secs(30), || {
            failures = warden
                .bans()
                .iter()
                .find(|b| b.jail == jail && b.address == guesser)
                .map_or(0, |b| b.failures);
            failures > 0
        });
        assert!(
            banned && failures == m,
            "postfix/{jail} outage: the guesser's ban: {failures} failures"
        );
        assert!(
            crate::support::wait_until(Duration::from_secs(10), || warden.in_kernel(guesser)),
            "postfix/{jail} outage: the guesser's ban is not in the kernel set"
        );
        assert!(
            !lab.tcp_connects(guesser, 25),
            "postfix/{jail} outage: the guesser still connects"
        );
        assert!(
            lab.tcp_connects(innocent, 25),
            "postfix/{jail} outage: the innocent client cannot connect"
        );
        let wrong: Vec<String> = warden
            .counted(jail)
            .keys()
            .filter(|k| *k == innocent)
            .cloned()
            .collect();
        std::thread::sleep(Duration::from_secs(1));
        let counted_here = warden.total_failed(jail).unwrap_or(0) - total_before;
        vec![Row {
            service: lab.name.clone(),
            jail: format!("{jail} (auth outage)"),
            version: String::new(),
            what: "Dovecot's auth process stopped: AUTH from a client with the right password and from a guesser with one failure end \"Connection lost to authentication server\"; then the guesser's next guess".to_string(),
            maxretry: m,
            attempts: 3,
            counted: counted_here,
            banned_after: vec![failures],
            wrong_hosts: wrong,
            seconds: started.elapsed().as_secs_f64(),
            expected: [(guesser.to_string(), 3)].into_iter().collect(),
        }]
    }
    fn jails(&self) -> Vec<JailTest> {
        vec![
            JailTest {
                jail: "postfix",
                example: "postfix",
                port: 25,
                fail: smtp_relay(),
                succeed: smtp_local(),
                ipv6: true,
                source: Capture::Journal("postfix", POSTFIX_JOURNAL),
                what: "RCPT TO a foreign domain without AUTH (relaying: 454 4.7.1 Relay access denied); the user then sends to a local address",
                maxretry: None,
                burst: None,
                package: None,
            },
            JailTest {
                jail: "postfix-sasl",
                example: "postfix",
                port: 25,
                fail: smtp_auth_fail(),
                succeed: smtp_auth_ok(),
                ipv6: true,
                source: Capture::Journal("postfix", POSTFIX_JOURNAL),
                what: "SMTP AUTH PLAIN (after STARTTLS) with a wrong password (unknown user admin over IPv4, the real user over IPv6)",
                maxretry: None,
                burst: None,
                package: None,
            },
            JailTest {
                jail: "dovecot",
                example: "dovecot",
                port: 143,
                fail: imap_fail("starttls"),
                succeed: imap_ok("starttls"),
                ipv6: true,
                source: Capture::Journal("dovecot", DOVECOT_JOURNAL),
                what: "IMAP LOGIN (after STARTTLS) with a wrong password (unknown user admin over IPv4, the real user over IPv6)",
                maxretry: None,
                burst: Some(imap_burst("starttls")),
                package: Some("dovecot-core"),
            },
        ]
    }
}

/// Courier IMAP and POP3 with authdaemond (PAM).
struct Courier;

const COURIER_JOURNAL: &[&str] = &["_SYSTEMD_UNIT=courier-imap.service"];

impl Service for Courier {
    fn name(&self) -> &'static str {
        "courier"
    }
    fn group(&self) -> &'static str {
        "courier"
    }
    fn package(&self) -> &'static str {
        "courier-imap"
    }
    fn config_note(&self) -> &'static str {
        "Debian 12 courier-imap 5.0 and courier-authdaemon stock (authpam), as their postinsts set them up; imapd through syslog, in the journal as courier-imap.service"
    }
    fn start(&self, lab: &Lab) {
        // The user's mailbox, as an admin makes it for Courier.
        lab.sh_ok(&format!(
            "mkdir -p /run/courier/authdaemon
[ -d /home/{USER}/Maildir ] || su -s /bin/sh {USER} -c 'maildirmake /home/{USER}/Maildir'"
        ));
        // As the units run them: each daemonizes (courierlogger), PID files
        // under /run/courier.
        lab.spawn(
            "authdaemond",
            Some("courier-authdaemon.service"),
            &["/usr/sbin/authdaemond", "start"],
        );
        let ok = crate::support::wait_until(Duration::from_secs(20), || {
            lab.sh("test -S /run/courier/authdaemon/socket")
                .status
                .success()
        });
        assert!(ok, "courier: authdaemond did not open its socket");
        lab.spawn(
            "imapd",
            Some("courier-imap.service"),
            &["/usr/sbin/imapd", "start"],
        );
        lab.wait_listen("tcp", 143, Duration::from_secs(20));
    }
    fn stop(&self, lab: &Lab) {
        lab.stop_pidfile("/run/courier/imapd.pid");
        lab.stop_pidfile("/run/courier/authdaemon/pid");
    }
    fn jails(&self) -> Vec<JailTest> {
        vec![JailTest {
            jail: "courier-auth",
            example: "courier",
            port: 143,
            fail: imap_fail(""),
            succeed: imap_ok(""),
            ipv6: true,
            source: Capture::Journal("imapd", COURIER_JOURNAL),
            what: "IMAP LOGIN with a wrong password (unknown user admin over IPv4, the real user over IPv6)",
            maxretry: None,
            burst: Some(imap_burst("")),
            package: None,
        }]
    }
}

/// Exim 4 with AUTH PLAIN against a passwd file (Debian's plain_server).
struct Exim;

impl Service for Exim {
    fn name(&self) -> &'static str {
        "exim4"
    }
    fn group(&self) -> &'static str {
        "exim4"
    }
    fn package(&self) -> &'static str {
        "exim4-daemon-light"
    }
    fn config_note(&self) -> &'static str {
        "Debian 12 exim4 (split-less template) as \"internet site\" listening on all interfaces, plain_server authenticator enabled against /etc/exim4/passwd (AUTH_SERVER_ALLOW_NOTLS_PASSWORDS), domain jw.example.test local"
    }
    fn start(&self, lab: &Lab) {
        lab.sh_ok(&format!(
            "sed -i \"s/^dc_eximconfig_configtype=.*/dc_eximconfig_configtype='internet'/;s/^dc_local_interfaces=.*/dc_local_interfaces=''/;s/^dc_other_hostnames=.*/dc_other_hostnames='{DOMAIN}'/\" /etc/exim4/update-exim4.conf.conf
sed -i '/^# plain_server:/,/^$/s/^# //' /etc/exim4/exim4.conf.template
echo 'AUTH_SERVER_ALLOW_NOTLS_PASSWORDS = 1' >> /etc/exim4/exim4.conf.localmacros
printf '{USER}:%s\\n' \"$(openssl passwd -6 {PASSWORD})\" > /etc/exim4/passwd
chgrp Debian-exim /etc/exim4/passwd && chmod 640 /etc/exim4/passwd
update-exim4.conf
mkdir -p /run/exim4 && chown Debian-exim:Debian-exim /run/exim4"
        ));
        lab.spawn(
            "exim4",
            Some("exim4.service"),
            &["/usr/sbin/exim4", "-bdf", "-q30m"],
        );
        lab.wait_listen("tcp", 25, Duration::from_secs(20));
    }
    fn jails(&self) -> Vec<JailTest> {
        // One jail, both kinds of abuse its normal mode counts: the IPv4
        // attacker guesses passwords, the IPv6 one tries to relay.
        let auth = smtp_auth_fail();
        let relay = smtp_relay();
        let fail: Attempt = Box::new(move |lab, who, src| match who {
            Who::AttackerKnownUser => relay(lab, who, src),
            _ => auth(lab, who, src),
        });
        vec![JailTest {
            jail: "exim",
            example: "exim4",
            port: 25,
            fail,
            succeed: smtp_auth_ok(),
            ipv6: true,
            source: Capture::File("/var/log/exim4/mainlog"),
            what: "SMTP AUTH PLAIN with a wrong password (user admin, over IPv4; the real user's typos) and relaying to a foreign domain (over IPv6)",
            maxretry: None,
            burst: None,
            package: None,
        }]
    }
}

// ---------------------------------------------------------------- mariadb

/// MariaDB's client has no source option: each client address gets a
/// server address of its own (another prefix), routed from that source.
fn db_target(src: &str) -> String {
    let last = src.rsplit(['.', ':']).next().unwrap_or("2");
    if src.contains(':') {
        format!("2001:db8:1::{last}")
    } else {
        format!("198.51.100.{last}")
    }
}

fn mariadb(lab: &Lab, src: &str, user: &str, password: &str) -> Result<bool, String> {
    let host = db_target(src);
    let pw = format!("-p{password}");
    let out = lab.client(
        &[
            "mariadb",
            "--protocol=tcp",
            "--connect-timeout=10",
            "-h",
            &host,
            "-u",
            user,
            &pw,
            "-e",
            "select 1",
        ],
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Ok(true),
        // 1045: wrong password; 1698: no such account (also "Access denied").
        _ if err.contains("ERROR 1045") || err.contains("ERROR 1698") => Ok(false),
        _ => Err(text(&out)),
    }
}

struct Mariadb;

impl Service for Mariadb {
    fn name(&self) -> &'static str {
        "mariadb"
    }
    fn package(&self) -> &'static str {
        "mariadb-server"
    }
    fn config_note(&self) -> &'static str {
        "Debian 12 mariadb-server 10.11 stock (log_warnings 2: \"Access denied\" logged) plus bind-address = * in conf.d, a user jwreal@'%'; stderr to the journal as mariadb.service (SyslogIdentifier mariadbd)"
    }
    fn start(&self, lab: &Lab) {
        lab.sh_ok(
            "printf '[mysqld]\\nbind-address = *\\n' > /etc/mysql/mariadb.conf.d/99-jw.cnf
mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld",
        );
        // Addresses for the routed clients (db_target) of jail 0.
        let mut addrs = String::new();
        let mut routes = String::new();
        for n in 2..=9 {
            for src in [format!("192.0.2.{n}"), format!("2001:db8::{n}")] {
                let (dst, len, dad) = match db_target(&src) {
                    d if d.contains(':') => (d, 128, " nodad"),
                    d => (d, 32, ""),
                };
                addrs.push_str(&format!(
                    "addr add {dst}/{len} dev {}{dad}\n",
                    lab.server_dev
                ));
                routes.push_str(&format!(
                    "route add {dst}/{len} dev {} src {src}\n",
                    lab.client_dev
                ));
            }
        }
        for (ns, text) in [(&lab.server_ns, addrs), (&lab.client_ns, routes)] {
            let path = lab.dir.join(format!("{ns}.batch"));
            std::fs::write(&path, text).expect("write batch");
            let out = std::process::Command::new("ip")
                .args(["-n", ns, "-batch"])
                .arg(&path)
                .output()
                .expect("ip -batch");
            assert!(
                out.status.success(),
                "mariadb addresses: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // As mariadb.service runs it: its stderr is the journal.
        lab.spawn(
            "mariadbd",
            Some("mariadb.service"),
            &[
                "systemd-cat",
                "--identifier=mariadbd",
                "/usr/sbin/mariadbd",
                "--user=mysql",
            ],
        );
        lab.wait_listen("tcp", 3306, Duration::from_secs(60));
        lab.sh_ok(&format!(
            "mariadb -e \"CREATE USER {USER}@'%' IDENTIFIED BY '{PASSWORD}'\""
        ));
    }
    fn jails(&self) -> Vec<JailTest> {
        vec![JailTest {
            jail: "mysqld-auth",
            example: "mariadb",
            port: 3306,
            fail: Box::new(|lab, who, src| {
                refused(mariadb(lab, src, user_for(who), "wrong-password"))
            }),
            succeed: Box::new(|lab, src| accepted(mariadb(lab, src, USER, PASSWORD))),
            ipv6: true,
            source: Capture::Journal("mariadbd", &["_SYSTEMD_UNIT=mariadb.service"]),
            what: "MariaDB login over TCP with a wrong password (unknown user admin over IPv4, the real user over IPv6)",
            maxretry: None,
            burst: None,
            package: None,
        }]
    }
}

// ---------------------------------------------------------------- bind9

fn dig(lab: &Lab, src: &str, args: &[&str]) -> Result<String, String> {
    let server = format!("@{}", server_for(src));
    let mut argv = vec!["dig", "+time=3", "+tries=1", "-b", src, &server];
    argv.extend_from_slice(args);
    let out = lab.client(&argv, Duration::from_secs(15));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(text(&out))
    }
}

struct Bind;

impl Service for Bind {
    fn name(&self) -> &'static str {
        "bind9"
    }
    fn package(&self) -> &'static str {
        "bind9"
    }
    fn config_note(&self) -> &'static str {
        "Debian 12 bind9 9.18 stock options plus a primary zone jw.example.test in named.conf.local with allow-transfer { none; }; through the journal as named.service"
    }
    fn start(&self, lab: &Lab) {
        lab.sh_ok(&format!(
            "cat > /etc/bind/db.{DOMAIN} <<'EOF'
$TTL 300
@   IN SOA ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 300
    IN NS  ns.{DOMAIN}.
ns  IN A   192.0.2.1
www IN A   192.0.2.80
EOF
cat >> /etc/bind/named.conf.local <<'EOF'
zone \"{DOMAIN}\" {{ type primary; file \"/etc/bind/db.{DOMAIN}\"; allow-transfer {{ none; }}; }};
EOF
mkdir -p /run/named && chown bind:bind /run/named
named-checkconf"
        ));
        lab.spawn(
            "named",
            Some("named.service"),
            &["/usr/sbin/named", "-f", "-u", "bind"],
        );
        lab.wait_listen("tcp", 53, Duration::from_secs(30));
        lab.wait_listen("udp", 53, Duration::from_secs(30));
    }
    fn jails(&self) -> Vec<JailTest> {
        let axfr: Attempt = Box::new(|lab, _, src| {
            let zone = DOMAIN.to_string();
            match dig(lab, src, &[&zone, "AXFR"]) {
                Ok(out) if out.contains("Transfer failed") => Ok(()),
                Ok(out) => Err(format!("AXFR not refused: {out}")),
                // dig exits 9 or 10 on a refused transfer in some versions.
                Err(e) if e.contains("Transfer failed") => Ok(()),
                Err(e) => Err(e),
            }
        });
        let query: Success = Box::new(|lab, src| {
            let name = format!("www.{DOMAIN}");
            match dig(lab, src, &["+short", &name, "A"]) {
                Ok(out) if out.trim() == "192.0.2.80" => Ok(()),
                Ok(out) => Err(format!("unexpected answer {out:?}")),
                Err(e) => Err(e),
            }
        });
        vec![JailTest {
            jail: "named-refused",
            example: "bind9",
            port: 53,
            fail: axfr,
            succeed: query,
            ipv6: true,
            source: Capture::Journal("named", &["_SYSTEMD_UNIT=named.service"]),
            what: "dig AXFR of the zone (allow-transfer { none; }: refused)",
            maxretry: None,
            burst: None,
            package: None,
        }]
    }
}
