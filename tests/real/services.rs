//! The services under attack: how each real daemon is configured (Debian
//! 12's stock configuration plus the least a test needs, written inside
//! the lab's sandbox), started, and attacked by real clients.

use std::time::Duration;

use crate::lab::{Lab, here, server_for};
use crate::scenario::{Attempt, Capture, JailTest, Success, Who, bystander_of};

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
    /// Stop daemons that forked (the lab stops what it started by PID,
    /// and then everything left in its namespaces).
    fn stop(&self, _lab: &Lab) {}
}

/// Every service, in report order.
pub fn all() -> Vec<Box<dyn Service>> {
    vec![
        Box::new(Sshd),
        Box::new(Apache),
        Box::new(Nginx),
        Box::new(Lighttpd),
        Box::new(Vsftpd),
        Box::new(Proftpd),
        Box::new(PureFtpd),
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
        }]
    }
}
