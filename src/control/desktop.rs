//! Desktop notifications for `jailwarden watch --notify`: each ban (and
//! unban by hand, and the daemon going away) as a freedesktop notification
//! (`org.freedesktop.Notifications` on the session bus, which GNOME, KDE,
//! notification-daemon, dunst and mako serve).
//!
//! Under a flood a person needs one message, not hundreds: [`Limiter`]
//! lets [`BURST`] notifications through per [`WINDOW`], then counts the
//! rest and posts one summary, updated in place (`replaces_id`) at most
//! every [`SUMMARY_EVERY`] while the flood lasts. The limiter is pure; the
//! [`Notifier`] posts, and a missing notification server only costs a
//! warning (and a retry later), never the watch.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use zbus::{Connection, Variant};

/// Notifications shown one by one per [`WINDOW`].
pub const BURST: usize = 3;
/// The window [`BURST`] counts in.
pub const WINDOW: Duration = Duration::from_secs(30);
/// A held-back flood is summarized this often at most.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// After a failure to reach the notification server, try again after this.
const RETRY: Duration = Duration::from_secs(30);

#[zbus::proxy(
    interface = "org.freedesktop.Notifications",
    default_service = "org.freedesktop.Notifications",
    default_path = "/org/freedesktop/Notifications"
)]
trait Notifications {
    /// The Desktop Notifications Specification's Notify.
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        app_name: &str,
        replaces_id: u32,
        app_icon: &str,
        summary: &str,
        body: &str,
        actions: &[&str],
        hints: HashMap<&str, Variant<'_>>,
        expire_timeout: i32,
    ) -> zbus::Result<u32>;
}

/// One notification to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub summary: String,
    /// Plain text (escaped for servers that read markup).
    pub body: String,
    pub icon: &'static str,
    /// 0 low, 1 normal, 2 critical.
    pub urgency: u8,
}

/// What the limiter says about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Show,
    /// Counted for the next summary.
    Held,
}

/// Rate limit with summaries; see the module docs.
#[derive(Debug, Default)]
pub struct Limiter {
    shown: VecDeque<Instant>,
    /// Held-back events by jail since the last summary.
    held: BTreeMap<String, u64>,
    /// Held back in this flood, all summaries together (and by jail).
    flood_total: u64,
    flood_by_jail: BTreeMap<String, u64>,
    last_address: Option<String>,
    last_summary: Option<Instant>,
}

impl Limiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A notifiable event of `jail` about `address` happens at `now`.
    pub fn offer(&mut self, jail: &str, address: &str, now: Instant) -> Verdict {
        while self
            .shown
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            self.shown.pop_front();
        }
        // While a flood is being summarized, everything joins the summary.
        if self.shown.len() < BURST && self.flood_total == 0 && self.held.is_empty() {
            self.shown.push_back(now);
            return Verdict::Show;
        }
        *self.held.entry(jail.to_string()).or_default() += 1;
        *self.flood_by_jail.entry(jail.to_string()).or_default() += 1;
        self.flood_total += 1;
        self.last_address = Some(address.to_string());
        Verdict::Held
    }

    /// When the next summary is due, if events are held back.
    pub fn summary_due(&self) -> Option<Instant> {
        if self.held.is_empty() {
            return None;
        }
        Some(match self.last_summary {
            Some(t) => t + SUMMARY_EVERY,
            None => self
                .shown
                .back()
                .map_or_else(Instant::now, |t| *t + Duration::from_secs(1)),
        })
    }

    /// The summary to post at `now`, if one is due: it covers the whole
    /// flood so far. The flood ends (and single notifications resume)
    /// once a window passes without held-back events.
    pub fn take_summary(&mut self, now: Instant) -> Option<Note> {
        if self.held.is_empty() {
            if self
                .last_summary
                .is_some_and(|t| now.duration_since(t) >= WINDOW)
            {
                self.flood_total = 0;
                self.flood_by_jail.clear();
                self.last_summary = None;
                self.shown.clear();
            }
            return None;
        }
        if self.summary_due().is_some_and(|due| now < due) {
            return None;
        }
        let by_jail: Vec<String> = self
            .flood_by_jail
            .iter()
            .map(|(jail, n)| format!("{jail}: {n}"))
            .collect();
        let total = self.flood_total;
        let note = Note {
            summary: format!(
                "jailwarden: {total} more event{} held back",
                if total == 1 { "" } else { "s" }
            ),
            body: escape(&format!(
                "Latest {} ({}). Notifications are limited to {BURST} per {} s; `jailwarden watch` or the Cockpit page show every event.",
                self.last_address.as_deref().unwrap_or("?"),
                by_jail.join(", "),
                WINDOW.as_secs(),
            )),
            icon: "security-high",
            urgency: 1,
        };
        self.held.clear();
        self.last_summary = Some(now);
        Some(note)
    }

    /// Whether the next summary replaces the previous one (same flood).
    pub fn in_flood(&self) -> bool {
        self.last_summary.is_some()
    }
}

/// Escape the characters notification servers read as markup.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Posts notes on the session bus.
pub struct Notifier {
    conn: Option<Connection>,
    /// Don't try the bus again before this (it failed).
    retry_at: Option<Instant>,
    /// The id of the summary notification shown, to update it in place.
    summary_id: u32,
    warned: bool,
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier {
    pub fn new() -> Self {
        Notifier {
            conn: None,
            retry_at: None,
            summary_id: 0,
            warned: false,
        }
    }

    /// Post `note`; `replace` says whether it updates the last summary.
    /// Returns the server's id, or `None` when it could not be posted (a
    /// warning was printed once).
    pub async fn post(&mut self, note: &Note, summary: bool, replace: bool) -> Option<u32> {
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return None;
        }
        if self.conn.is_none() {
            match Connection::session().await {
                Ok(c) => self.conn = Some(c),
                Err(e) => return self.failed(&format!("no session bus ({e})")),
            }
        }
        let conn = self.conn.as_ref()?;
        let proxy = match NotificationsProxy::new(conn).await {
            Ok(p) => p,
            Err(e) => return self.failed(&e.to_string()),
        };
        let mut hints: HashMap<&str, Variant<'_>> = HashMap::new();
        hints.insert("urgency", Variant::from(note.urgency));
        hints.insert("category", Variant::from("network"));
        let replaces = if summary && replace {
            self.summary_id
        } else {
            0
        };
        match proxy
            .notify(
                "jailwarden",
                replaces,
                note.icon,
                &note.summary,
                &note.body,
                &[],
                hints,
                -1,
            )
            .await
        {
            Ok(id) => {
                if summary {
                    self.summary_id = id;
                }
                if self.warned {
                    eprintln!("jailwarden: desktop notifications work again");
                    self.warned = false;
                }
                Some(id)
            }
            Err(e) => {
                // The bus may be gone (session ended): connect afresh next time.
                self.conn = None;
                self.failed(&e.to_string())
            }
        }
    }

    fn failed(&mut self, why: &str) -> Option<u32> {
        if !self.warned {
            eprintln!(
                "jailwarden: cannot post desktop notifications: {why}; trying again every {} s",
                RETRY.as_secs()
            );
            self.warned = true;
        }
        self.retry_at = Some(Instant::now() + RETRY);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_a_flood_is_summarized() {
        let t0 = Instant::now();
        let mut l = Limiter::new();
        for i in 0..BURST {
            assert_eq!(l.offer("sshd", &format!("192.0.2.{i}"), t0), Verdict::Show);
        }
        assert_eq!(l.summary_due(), None);
        for i in 0..100 {
            let jail = if i % 4 == 0 { "nginx" } else { "sshd" };
            assert_eq!(l.offer(jail, &format!("198.51.100.{i}"), t0), Verdict::Held);
        }
        let due = l.summary_due().expect("a summary is due");
        assert!(
            l.take_summary(t0).is_none(),
            "a second after the burst at the earliest"
        );
        let s = l.take_summary(due).expect("summary");
        assert_eq!(s.summary, "jailwarden: 100 more events held back");
        assert!(s.body.contains("198.51.100.99"), "{}", s.body);
        assert!(s.body.contains("nginx: 25, sshd: 75"), "{}", s.body);
        assert!(l.in_flood());
        // The flood goes on: it joins the summary, at most every SUMMARY_EVERY.
        let t1 = due + Duration::from_secs(1);
        assert_eq!(l.offer("sshd", "203.0.113.1", t1), Verdict::Held);
        assert!(l.take_summary(t1).is_none(), "too soon");
        let s = l.take_summary(due + SUMMARY_EVERY).expect("second summary");
        assert_eq!(s.summary, "jailwarden: 101 more events held back");
        assert!(
            s.body.contains("nginx: 25, sshd: 76"),
            "the whole flood: {}",
            s.body
        );
        // Quiet for a window: single notifications again.
        let later = due + SUMMARY_EVERY + WINDOW;
        assert!(l.take_summary(later).is_none());
        assert!(!l.in_flood());
        assert_eq!(l.offer("sshd", "203.0.113.2", later), Verdict::Show);
    }

    #[test]
    fn the_window_slides() {
        let t0 = Instant::now();
        let mut l = Limiter::new();
        for _ in 0..BURST {
            assert_eq!(l.offer("sshd", "192.0.2.1", t0), Verdict::Show);
        }
        // A window later, the burst is free again (nothing was held).
        assert_eq!(l.offer("sshd", "192.0.2.1", t0 + WINDOW), Verdict::Show);
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(escape("a <b> & c"), "a &lt;b&gt; &amp; c");
    }
}
