//! `type = "mail"`: a notification per ban through the local `sendmail -t`,
//! with the log lines that led to it, rate-limited per jail.
//!
//! Header injection is impossible by construction: every header value is
//! made of validated parts (jail names are `[A-Za-z0-9._-]`, addresses are
//! parsed IPs, mail addresses are checked by [`valid_address`] at load time,
//! the host name is checked here) and [`Message`] still refuses any value
//! with a control character. Attacker-controlled text (the matched lines)
//! only goes into the body, indented, with control characters escaped.
//!
//! At most `max_per_hour` mails per jail are sent in any hour; bans beyond
//! that are counted and, once the window has room again, summarized in one
//! mail (count and addresses), so a flood never becomes a mail flood.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Context, MailConfig, QUEUE_LIMIT, process};
use crate::ban::Ban;

/// Default sendmail binary.
pub const DEFAULT_SENDMAIL: &str = "/usr/sbin/sendmail";
/// Default rate limit.
pub const DEFAULT_MAX_PER_HOUR: u32 = 10;
/// Addresses listed in a summary mail, at most.
const SUMMARY_ADDRESSES: usize = 100;
/// A body line is cut after this many characters (RFC 5322's line limit
/// is 998 bytes).
const LINE_LIMIT: usize = 900;

/// A mail address we accept in headers: `local@domain`, the local part of
/// RFC 5322's dot-atom characters, the domain of letters, digits, `-`, `.`.
/// No quotes, comments, display names or whitespace: nothing that could
/// smuggle a header.
pub fn valid_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    a.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && valid_domain(domain)
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// This host's name, for the default sender and the message text; checked
/// like a domain (anything else becomes `localhost`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| valid_domain(h))
        .unwrap_or_else(|| "localhost".to_string())
}

/// A header value was unsafe (a bug elsewhere: inputs are validated).
#[derive(Debug, thiserror::Error)]
#[error("refusing to send a mail whose {0} header would hold a control character")]
pub struct UnsafeHeader(&'static str);

/// A plain-text mail being put together.
struct Message {
    head: String,
}

impl Message {
    fn new() -> Self {
        Message {
            head: String::new(),
        }
    }

    fn header(&mut self, name: &'static str, value: &str) -> Result<(), UnsafeHeader> {
        if value.chars().any(char::is_control) {
            return Err(UnsafeHeader(name));
        }
        self.head.push_str(name);
        self.head.push_str(": ");
        self.head.push_str(value);
        self.head.push('\n');
        Ok(())
    }

    fn finish(self, body: &str) -> Vec<u8> {
        let mut out = self.head.into_bytes();
        out.push(b'\n');
        out.extend_from_slice(body.as_bytes());
        out
    }
}

/// Who a mail goes to and comes from, and where it is said to come from.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub from: String,
    pub to: Vec<String>,
    pub hostname: String,
}

fn start(env: &Envelope, subject: &str, now: Timestamp) -> Result<Message, UnsafeHeader> {
    let mut m = Message::new();
    m.header("From", &format!("jailwarden <{}>", env.from))?;
    m.header("To", &env.to.join(", "))?;
    m.header("Subject", subject)?;
    let zoned = now.to_zoned_datetime(jiff::tz::TimeZone::system());
    let date = jiff::fmt::rfc2822::to_string(&zoned).unwrap_or_else(|_| now.to_string());
    m.header("Date", &date)?;
    m.header(
        "Message-ID",
        &format!(
            "<jailwarden.{}.{}@{}>",
            now.as_microsecond(),
            std::process::id(),
            env.hostname
        ),
    )?;
    m.header("MIME-Version", "1.0")?;
    m.header("Content-Type", "text/plain; charset=utf-8")?;
    m.header("Content-Transfer-Encoding", "8bit")?;
    m.header("Auto-Submitted", "auto-generated")?;
    Ok(m)
}

/// A log line as a body line: control characters escaped, cut at
/// [`LINE_LIMIT`] characters, indented (so no line is a lone `.` or starts
/// with `From `).
fn body_line(line: &str) -> String {
    let mut out = String::from("  ");
    for (n, c) in line.chars().enumerate() {
        if n >= LINE_LIMIT {
            out.push('…');
            break;
        }
        if c.is_control() && c != '\t' {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out.push('\n');
    out
}

/// The mail for one ban.
pub fn compose_ban(
    env: &Envelope,
    ban: &Ban,
    lines: &[String],
    now: Timestamp,
) -> Result<Vec<u8>, UnsafeHeader> {
    let address = crate::addr::net_text(ban.net);
    let length = crate::daemon::core::Core::describe(ban);
    let mut m = start(
        env,
        &format!(
            "[jailwarden] {}: banned {address} after {} failures",
            ban.jail, ban.failures
        ),
        now,
    )?;
    m.header("X-Jailwarden-Jail", &ban.jail)?;
    m.header("X-Jailwarden-Address", &address)?;
    let until = match ban.expires_at {
        Some(e) => format!(
            "until {}",
            e.to_zoned_datetime(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
        ),
        None => "permanently".to_string(),
    };
    let mut body = format!(
        "jailwarden on {} banned {address} in jail {},\nafter {} failures, for {length} ({until}).\n",
        env.hostname, ban.jail, ban.failures
    );
    if lines.is_empty() {
        body.push_str("\nNo matched log lines were kept for this ban.\n");
    } else {
        body.push_str(&format!(
            "\nThe log line{} that led to it:\n\n",
            if lines.len() == 1 { "" } else { "s" }
        ));
        for l in lines {
            body.push_str(&body_line(l));
        }
    }
    body.push_str(&format!(
        "\n-- \njailwarden {}\n",
        env!("CARGO_PKG_VERSION")
    ));
    Ok(m.finish(&body))
}

/// The mail summing up bans not mailed because of the rate limit.
pub fn compose_summary(
    env: &Envelope,
    jail: &str,
    summary: &Summary,
    max_per_hour: u32,
    now: Timestamp,
) -> Result<Vec<u8>, UnsafeHeader> {
    let mut m = start(
        env,
        &format!(
            "[jailwarden] {jail}: {} more bans not mailed",
            summary.count
        ),
        now,
    )?;
    m.header("X-Jailwarden-Jail", jail)?;
    let mut body = format!(
        "jailwarden on {} banned {} more addresses in jail {jail} than it mails\n(at most {max_per_hour} mails per hour). They were:\n\n",
        env.hostname, summary.count
    );
    for a in &summary.addresses {
        body.push_str(&body_line(a));
    }
    if summary.count as usize > summary.addresses.len() {
        body.push_str(&format!(
            "  ... and {} more (journalctl MESSAGE_ID={} JAILWARDEN_JAIL={jail})\n",
            summary.count as usize - summary.addresses.len(),
            crate::events::MESSAGE_ID_BAN
        ));
    }
    body.push_str(&format!(
        "\n-- \njailwarden {}\n",
        env!("CARGO_PKG_VERSION")
    ));
    Ok(m.finish(&body))
}

/// Bans not mailed, to be summed up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub count: u32,
    /// The first [`SUMMARY_ADDRESSES`] of them.
    pub addresses: Vec<String>,
}

/// At most `max` mails in any `window` (a sliding window of send times);
/// what does not fit is counted for a summary. Pure: time is passed in.
#[derive(Debug)]
pub struct RateLimit {
    max: usize,
    window: Duration,
    sent: VecDeque<Instant>,
    pending: Summary,
}

impl RateLimit {
    /// `max` mails per `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        RateLimit {
            max: max.max(1) as usize,
            window,
            sent: VecDeque::new(),
            pending: Summary {
                count: 0,
                addresses: Vec::new(),
            },
        }
    }

    fn prune(&mut self, now: Instant) {
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            self.sent.pop_front();
        }
    }

    /// May a mail go out at `now`? If so, it is counted as sent.
    pub fn admit(&mut self, now: Instant) -> bool {
        self.prune(now);
        if self.sent.len() < self.max {
            self.sent.push_back(now);
            true
        } else {
            false
        }
    }

    /// A ban that was not mailed.
    pub fn suppress(&mut self, address: String) {
        self.pending.count = self.pending.count.saturating_add(1);
        if self.pending.addresses.len() < SUMMARY_ADDRESSES {
            self.pending.addresses.push(address);
        }
    }

    /// Bans not mailed so far.
    pub fn suppressed(&self) -> u32 {
        self.pending.count
    }

    /// When a summary can go out: when the oldest mail leaves the window
    /// (or now, if there is room); `None` with nothing to sum up.
    pub fn summary_due(&self) -> Option<Instant> {
        if self.pending.count == 0 {
            return None;
        }
        if self.sent.len() < self.max {
            return Some(Instant::now());
        }
        self.sent.front().map(|t| *t + self.window)
    }

    /// The summary, if there is one and the window has room at `now`.
    pub fn take_summary(&mut self, now: Instant) -> Option<Summary> {
        if self.pending.count == 0 || !self.admit(now) {
            return None;
        }
        Some(std::mem::replace(
            &mut self.pending,
            Summary {
                count: 0,
                addresses: Vec::new(),
            },
        ))
    }
}

/// One jail's mail action at run time.
pub struct Worker {
    tx: mpsc::UnboundedSender<(Ban, Vec<String>)>,
    queued: Arc<AtomicUsize>,
    overflow: u64,
    ctx: Context,
    finished: CancellationToken,
}

impl Worker {
    /// Start the worker (after `after`, the action it replaces, finished).
    pub fn spawn(ctx: Context, cfg: MailConfig, after: Vec<CancellationToken>) -> Worker {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let finished = CancellationToken::new();
        let hostname = hostname();
        let env = Envelope {
            from: cfg
                .sender
                .clone()
                .unwrap_or_else(|| format!("jailwarden@{hostname}")),
            to: cfg.dest.clone(),
            hostname,
        };
        let task = run(ctx.clone(), cfg, env, rx, queued.clone(), after);
        let guard = finished.clone().drop_guard();
        tokio::spawn(async move {
            let _guard = guard;
            task.await;
        });
        Worker {
            tx,
            queued,
            overflow: 0,
            ctx,
            finished,
        }
    }

    /// A new ban (never for bans restored at start: those were mailed).
    pub fn ban(&mut self, ban: &Ban, lines: Vec<String>) {
        if self.queued.load(Ordering::Relaxed) >= QUEUE_LIMIT {
            self.overflow += 1;
            if self.overflow.is_power_of_two() {
                self.ctx.failed(
                    Some(&crate::addr::net_text(ban.net)),
                    &format!(
                        "{QUEUE_LIMIT} mails are waiting (is sendmail stuck?): ban not mailed ({} so far)",
                        self.overflow
                    ),
                );
            }
            return;
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self.tx.send((ban.clone(), lines)).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Stop once the queue is sent.
    pub fn close(self) -> CancellationToken {
        self.finished
    }
}

async fn run(
    ctx: Context,
    cfg: MailConfig,
    env: Envelope,
    mut rx: mpsc::UnboundedReceiver<(Ban, Vec<String>)>,
    queued: Arc<AtomicUsize>,
    after: Vec<CancellationToken>,
) {
    for t in after {
        t.cancelled().await;
    }
    let mut limit = RateLimit::new(cfg.max_per_hour, Duration::from_secs(3600));
    loop {
        let due = limit.summary_due();
        tokio::select! {
            job = rx.recv() => {
                let Some((ban, lines)) = job else { break };
                queued.fetch_sub(1, Ordering::Relaxed);
                let now = Instant::now();
                if let Some(s) = limit.take_summary(now) {
                    send_summary(&ctx, &cfg, &env, &s).await;
                }
                let address = crate::addr::net_text(ban.net);
                if limit.admit(now) {
                    match compose_ban(&env, &ban, &lines, Timestamp::now()) {
                        Ok(mail) => send(&ctx, &cfg, &env, Some(&address), mail).await,
                        Err(e) => ctx.failed(Some(&address), &e.to_string()),
                    }
                } else {
                    limit.suppress(address);
                    if limit.suppressed().is_power_of_two() {
                        tracing::info!(jail = %ctx.jail, action = %ctx.label,
                            "mail rate limit ({} per hour) reached: {} bans not mailed yet, summed up later",
                            cfg.max_per_hour, limit.suppressed());
                    }
                }
            }
            () = sleep_until_opt(due) => {
                if let Some(s) = limit.take_summary(Instant::now()) {
                    send_summary(&ctx, &cfg, &env, &s).await;
                }
            }
        }
    }
    if limit.suppressed() > 0 {
        tracing::info!(jail = %ctx.jail, action = %ctx.label,
            "{} bans were not mailed (rate limit) when the action stopped", limit.suppressed());
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn send_summary(ctx: &Context, cfg: &MailConfig, env: &Envelope, s: &Summary) {
    match compose_summary(env, &ctx.jail, s, cfg.max_per_hour, Timestamp::now()) {
        Ok(mail) => send(ctx, cfg, env, None, mail).await,
        Err(e) => ctx.failed(None, &e.to_string()),
    }
}

/// Hand one mail to `sendmail -t -i -f SENDER` (`-t`: recipients from the
/// headers; `-i`: a lone `.` does not end the input).
async fn send(
    ctx: &Context,
    cfg: &MailConfig,
    env: &Envelope,
    address: Option<&str>,
    mail: Vec<u8>,
) {
    let argv = vec![
        cfg.sendmail.display().to_string(),
        "-t".to_string(),
        "-i".to_string(),
        "-f".to_string(),
        env.from.clone(),
    ];
    let out = process::run(&argv, &[], Some(mail), cfg.timeout).await;
    match out.problem(cfg.timeout) {
        None => tracing::debug!(jail = %ctx.jail, action = %ctx.label, "mail sent"),
        Some(p) => ctx.failed(address, &format!("{} {p}", cfg.sendmail.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Envelope {
        Envelope {
            from: "jailwarden@host.example".into(),
            to: vec!["root@example.org".into(), "ops@example.org".into()],
            hostname: "host.example".into(),
        }
    }

    fn ban() -> Ban {
        let at = Timestamp::from_second(1_700_000_000).unwrap();
        Ban {
            jail: "sshd".into(),
            net: "2001:db8::7/128".parse().unwrap(),
            banned_at: at,
            expires_at: Some(at + jiff::SignedDuration::from_secs(600)),
            failures: 3,
        }
    }

    fn headers(mail: &[u8]) -> Vec<String> {
        let text = String::from_utf8(mail.to_vec()).unwrap();
        let (head, _) = text.split_once("\n\n").unwrap();
        head.lines().map(str::to_string).collect()
    }

    #[test]
    fn validates_mail_addresses_strictly() {
        for ok in [
            "root@localhost",
            "a.b+c@mail.example.org",
            "x_y@h-1.example",
        ] {
            assert!(valid_address(ok), "{ok}");
        }
        for bad in [
            "root",
            "@example.org",
            "a@",
            "a b@example.org",
            "a@exa mple.org",
            "a@example.org\nBcc: x@evil.example",
            "a@example.org\r",
            "\"quoted\"@example.org",
            "Name <a@example.org>",
            "a,b@example.org",
            "a@-x.org",
            "a..b@example.org",
            "a@example..org",
        ] {
            assert!(!valid_address(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_ban_mail_has_safe_headers_and_the_matched_lines() {
        let lines = vec![
            "host sshd[1]: Failed password for root from 2001:db8::7 port 22 ssh2".to_string(),
            "host sshd[1]: Failed password for \r\nBcc: victim@example.org\u{1b}[31m from 2001:db8::7".to_string(),
            ".".to_string(),
            "x".repeat(5000),
        ];
        let mail = compose_ban(&env(), &ban(), &lines, ban().banned_at).unwrap();
        let h = headers(&mail);
        assert_eq!(h[0], "From: jailwarden <jailwarden@host.example>");
        assert_eq!(h[1], "To: root@example.org, ops@example.org");
        assert_eq!(
            h[2],
            "Subject: [jailwarden] sshd: banned 2001:db8::7 after 3 failures"
        );
        assert!(h[3].starts_with("Date: "), "{h:?}");
        assert!(h.contains(&"X-Jailwarden-Address: 2001:db8::7".to_string()));
        assert!(!h.iter().any(|l| l.starts_with("Bcc")));
        let text = String::from_utf8(mail).unwrap();
        let body = text.split_once("\n\n").unwrap().1;
        assert!(body.contains("banned 2001:db8::7 in jail sshd,\nafter 3 failures, for 10m"));
        assert!(body.contains(
            "\n  host sshd[1]: Failed password for root from 2001:db8::7 port 22 ssh2\n"
        ));
        assert!(
            body.contains("for \\x0d\\x0aBcc: victim@example.org\\x1b[31m from"),
            "{body}"
        );
        assert!(body.contains("\n  .\n"), "a lone dot is indented");
        assert!(body.lines().all(|l| l.len() < 998), "lines are cut");
        assert!(!body.lines().any(|l| l.starts_with("Bcc:")));
    }

    #[test]
    fn refuses_a_header_with_a_line_break() {
        let mut e = env();
        e.hostname = "host\nBcc: x@evil.example".into();
        assert!(compose_ban(&e, &ban(), &[], ban().banned_at).is_err());
        let mut b = ban();
        b.jail = "sshd\r\nBcc: x@evil.example".into();
        assert!(compose_ban(&env(), &b, &[], b.banned_at).is_err());
    }

    #[test]
    fn rate_limit_counts_excess_and_sums_it_up_when_the_window_frees() {
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut r = RateLimit::new(2, hour);
        assert!(r.admit(t0));
        assert!(r.admit(t0 + Duration::from_secs(10)));
        assert_eq!(r.summary_due(), None, "nothing to sum up");
        assert!(!r.admit(t0 + Duration::from_secs(20)));
        r.suppress("192.0.2.1".into());
        r.suppress("192.0.2.2".into());
        assert_eq!(r.suppressed(), 2);
        assert_eq!(r.summary_due(), Some(t0 + hour));
        assert_eq!(
            r.take_summary(t0 + Duration::from_secs(1800)),
            None,
            "still full"
        );
        let s = r.take_summary(t0 + hour).expect("room again");
        assert_eq!(s.count, 2);
        assert_eq!(s.addresses, ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(r.suppressed(), 0);
        // The summary took the freed slot; the second one frees 10 s later.
        assert!(!r.admit(t0 + hour + Duration::from_secs(5)));
        assert!(r.admit(t0 + hour + Duration::from_secs(10)));
        // A long flood lists a bounded number of addresses.
        let mut r = RateLimit::new(1, hour);
        assert!(r.admit(t0));
        for i in 0..10_000 {
            r.suppress(format!("10.0.{}.{}", i / 256, i % 256));
        }
        let s = r.take_summary(t0 + hour).unwrap();
        assert_eq!((s.count, s.addresses.len()), (10_000, SUMMARY_ADDRESSES));
        let mail = compose_summary(&env(), "sshd", &s, 1, Timestamp::now()).unwrap();
        let text = String::from_utf8(mail).unwrap();
        assert!(text.contains("Subject: [jailwarden] sshd: 10000 more bans not mailed\n"));
        assert!(text.contains("  ... and 9900 more (journalctl MESSAGE_ID="));
    }
}
