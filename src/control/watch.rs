//! `jailwarden watch`: follow bans, unbans and reloads as they happen, one
//! line per event (`--json`: one JSON object per line, documented in
//! `docs/cli-json.md`), and with `--notify` as desktop notifications.
//!
//! It listens to the Manager's signals over the control socket, else the
//! system bus (there, only signals sent by the current owner of
//! `org.jailwarden1` count: anyone may send a signal that looks like
//! ours). All signals come through one ordered stream, so lines are in
//! the order the daemon sent them. When the daemon goes away (stop,
//! restart, upgrade) it says so and waits for it to come back.

use std::num::NonZeroUsize;
use std::pin::Pin;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Serialize;
use zbus::export::futures_core::Stream;
use zbus::message::Type;
use zbus::{Connection, MatchRule, Message, MessageStream};

use super::cli::{Connect, Failure, connect, socket_path};
use super::dbus::ManagerProxy;
use super::desktop::{Limiter, Note, Notifier, Verdict, escape};
use super::format::{Colour, Style, local_time, rfc3339, short_duration};
use super::{BUS_NAME, MANAGER_INTERFACE, MANAGER_PATH};

/// How often to look for the daemon while it is away.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// Signals queued before we read them; the daemon drops a peer that does
/// not read for 2 s, so this only has to cover short stalls.
const QUEUE: usize = 16 * 1024;
/// The daemon must be away this long before a notification says so
/// (restarts and upgrades take a moment).
const DOWN_NOTICE_AFTER: Duration = Duration::from_secs(10);

/// What `watch` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    /// Following the daemon (at start, and after it came back).
    Connected {
        /// "socket" or "bus".
        via: String,
        /// The control socket's path, with via "socket".
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        version: String,
    },
    /// The daemon went away; `watch` waits for it.
    Disconnected {
        reason: String,
    },
    Banned {
        jail: String,
        address: String,
        expires_at: Option<String>,
        /// `null` for permanent bans.
        expires_at_usec: Option<u64>,
        permanent: bool,
        /// 0 for bans by hand.
        failures: u32,
    },
    Unbanned {
        jail: String,
        address: String,
        reason: String,
    },
    Reloaded {
        jails: Vec<String>,
    },
}

impl Event {
    fn jail(&self) -> Option<&str> {
        match self {
            Event::Banned { jail, .. } | Event::Unbanned { jail, .. } => Some(jail),
            _ => None,
        }
    }

    /// The event a Manager signal stands for; `None` for others (a newer
    /// daemon may send more).
    pub fn from_signal(msg: &Message) -> Option<Event> {
        let header = msg.header();
        let body = msg.body();
        match header.member()?.as_str() {
            "Banned" => {
                let (jail, address, expires, failures): (String, String, u64, u32) =
                    body.deserialize().ok()?;
                Some(Event::Banned {
                    jail,
                    address,
                    expires_at: rfc3339(expires),
                    expires_at_usec: (expires != 0).then_some(expires),
                    permanent: expires == 0,
                    failures,
                })
            }
            "Unbanned" => {
                let (jail, address, reason): (String, String, String) = body.deserialize().ok()?;
                Some(Event::Unbanned {
                    jail,
                    address,
                    reason,
                })
            }
            "Reloaded" => {
                let (jails,): (Vec<String>,) = body.deserialize().ok()?;
                Some(Event::Reloaded { jails })
            }
            _ => None,
        }
    }
}

/// One JSON line: the event and when `watch` received it.
#[derive(Serialize)]
struct JsonLine<'a> {
    #[serde(flatten)]
    event: &'a Event,
    time: Option<String>,
    time_usec: u64,
}

/// Whole seconds from `at` to `expires_usec`, rounded: a ban of 1h seen
/// a moment after it began still reads 1h.
fn left_secs(expires_usec: u64, at: Timestamp) -> u64 {
    let left = i64::try_from(expires_usec)
        .unwrap_or(i64::MAX)
        .saturating_sub(at.as_microsecond())
        .max(0);
    (left.unsigned_abs() + 500_000) / 1_000_000
}

fn usec(t: Timestamp) -> u64 {
    u64::try_from(t.as_microsecond()).unwrap_or(0)
}

/// The JSON line of `event` received at `at`.
pub fn json_line(event: &Event, at: Timestamp) -> String {
    let line = JsonLine {
        event,
        time: rfc3339(usec(at)),
        time_usec: usec(at),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

/// The text line of `event` received at `at`.
pub fn text_line(event: &Event, at: Timestamp, style: &Style) -> String {
    let when = local_time(usec(at));
    let what = |w: &str, c: Colour| style.paint(&format!("{w:<12}"), Some(c));
    let rest = match event {
        Event::Connected { via, path, version } => {
            let place = match (via.as_str(), path) {
                ("socket", Some(p)) => format!("the control socket {p}"),
                _ => "the system bus".to_string(),
            };
            format!(
                "{}jailwarden {version}, over {place}",
                what("connected", Colour::Bold)
            )
        }
        Event::Disconnected { reason } => {
            format!(
                "{}{reason}; waiting for it",
                what("disconnected", Colour::Yellow)
            )
        }
        Event::Banned {
            jail,
            address,
            expires_at_usec,
            failures,
            ..
        } => {
            let how = match expires_at_usec {
                None => "permanently".to_string(),
                Some(e) => {
                    let left = left_secs(*e, at);
                    format!(
                        "for {} (until {})",
                        short_duration(Duration::from_secs(left)),
                        local_time(*e)
                    )
                }
            };
            let after = match failures {
                0 => ", by hand".to_string(),
                1 => ", after 1 failure".to_string(),
                n => format!(", after {n} failures"),
            };
            format!(
                "{}{jail}  {address}  {how}{after}",
                what("banned", Colour::Red)
            )
        }
        Event::Unbanned {
            jail,
            address,
            reason,
        } => format!(
            "{}{jail}  {address}  ({reason})",
            what("unbanned", Colour::Green)
        ),
        Event::Reloaded { jails } => format!(
            "{}{} jail{}: {}",
            what("reloaded", Colour::Dim),
            jails.len(),
            if jails.len() == 1 { "" } else { "s" },
            jails.join(", ")
        ),
    };
    format!("{when}  {rest}")
}

/// The desktop notification for an event, if it deserves one: bans, and
/// unbans other than expiry.
pub fn note_for(event: &Event, at: Timestamp) -> Option<Note> {
    match event {
        Event::Banned {
            jail,
            address,
            expires_at_usec,
            failures,
            ..
        } => {
            let how = match expires_at_usec {
                None => "permanently".to_string(),
                Some(e) => {
                    let left = left_secs(*e, at);
                    format!("for {}", short_duration(Duration::from_secs(left)))
                }
            };
            let after = match failures {
                0 => "by hand".to_string(),
                1 => "after 1 failure".to_string(),
                n => format!("after {n} failures"),
            };
            Some(Note {
                summary: format!("{address} banned ({jail})"),
                body: escape(&format!("Banned in jail {jail} {how}, {after}.")),
                icon: "security-high",
                urgency: 1,
            })
        }
        Event::Unbanned {
            jail,
            address,
            reason,
        } if reason != "expired" => Some(Note {
            summary: format!("{address} unbanned ({jail})"),
            body: escape(&format!("The ban in jail {jail} was lifted: {reason}.")),
            icon: "dialog-information",
            urgency: 1,
        }),
        _ => None,
    }
}

/// Where events go: stdout, and the desktop.
struct Output {
    json: bool,
    style: Style,
    jail: Option<String>,
    desktop: Option<(Limiter, Notifier)>,
}

impl Output {
    async fn event(&mut self, event: &Event) {
        if let (Some(want), Some(jail)) = (self.jail.as_deref(), event.jail()) {
            if want != jail {
                return;
            }
        }
        let at = Timestamp::now();
        let line = if self.json {
            json_line(event, at)
        } else {
            text_line(event, at, &self.style)
        };
        println!("{line}");
        if let (Some((limiter, notifier)), Some(note)) =
            (self.desktop.as_mut(), note_for(event, at))
        {
            let jail = event.jail().unwrap_or_default();
            let address = match event {
                Event::Banned { address, .. } | Event::Unbanned { address, .. } => address.as_str(),
                _ => "",
            };
            if limiter.offer(jail, address, Instant::now()) == Verdict::Show {
                notifier.post(&note, false, false).await;
            }
        }
    }

    /// A note outside the rate limit (the daemon's own state).
    async fn notify(&mut self, note: Note) {
        if let Some((_, notifier)) = self.desktop.as_mut() {
            notifier.post(&note, false, false).await;
        }
    }

    /// When a flood summary is due.
    fn due(&self) -> Option<Instant> {
        self.desktop.as_ref().and_then(|(l, _)| l.summary_due())
    }

    /// Post the flood summary if it is due.
    async fn tick(&mut self) {
        if let Some((limiter, notifier)) = self.desktop.as_mut() {
            let replace = limiter.in_flood();
            if let Some(note) = limiter.take_summary(Instant::now()) {
                notifier.post(&note, true, replace).await;
            }
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Why following stopped.
enum Stopped {
    /// The daemon went away.
    Gone(String),
    /// Ctrl-C or SIGTERM.
    Asked,
}

async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

/// Follow one connection until the daemon goes away or we are asked to stop.
async fn follow(
    conn: &Connection,
    out: &mut Output,
    stop: &mut (impl std::future::Future<Output = ()> + Unpin),
    first: &mut bool,
    via_path: Option<String>,
) -> Result<Stopped, Failure> {
    let mut rule = MatchRule::builder()
        .msg_type(Type::Signal)
        .path(MANAGER_PATH)
        .interface(MANAGER_INTERFACE);
    let mut owner_changes = None;
    if conn.is_bus() {
        let dbus = zbus::fdo::DBusProxy::new(conn).await?;
        // Subscribe before asking, so a change in between is not missed.
        owner_changes = Some(
            dbus.receive_name_owner_changed_with_args(&[(0, BUS_NAME)])
                .await?,
        );
        let owner = dbus
            .get_name_owner(BUS_NAME.try_into()?)
            .await
            .map_err(zbus::Error::from)?;
        rule = rule.sender(owner.to_string());
    }
    let mut signals =
        MessageStream::for_match_rule(rule.build()?, conn, NonZeroUsize::new(QUEUE)).await?;
    let manager = ManagerProxy::builder(conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    let version = manager.version().await?;
    if *first {
        if let Some(want) = out.jail.as_deref() {
            let jails = manager.list_jails().await?;
            if !jails.iter().any(|(name, _)| name == want) {
                return Err(Failure::usage(format!("no jail named {want:?}")));
            }
        }
        *first = false;
    }
    out.event(&Event::Connected {
        via: if conn.is_bus() { "bus" } else { "socket" }.into(),
        path: via_path,
        version,
    })
    .await;
    loop {
        let owner_change = async {
            match owner_changes.as_mut() {
                Some(s) => next(s).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            msg = next(&mut signals) => match msg {
                Some(Ok(msg)) => {
                    if let Some(e) = Event::from_signal(&msg) {
                        out.event(&e).await;
                    }
                }
                Some(Err(e)) => return Ok(Stopped::Gone(format!("the connection failed: {e}"))),
                None => return Ok(Stopped::Gone("the daemon went away".into())),
            },
            _ = owner_change => return Ok(Stopped::Gone("the daemon left the bus".into())),
            _ = sleep_until(out.due()) => out.tick().await,
            _ = &mut *stop => return Ok(Stopped::Asked),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn asked_to_stop() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}

/// `jailwarden watch`: runs until interrupted.
pub(super) async fn run(
    jail: Option<String>,
    json: bool,
    notify: bool,
    c: &Connect,
    style: Style,
) -> Result<String, Failure> {
    let mut out = Output {
        json,
        style,
        jail,
        desktop: notify.then(|| (Limiter::new(), Notifier::new())),
    };
    let mut stop = Box::pin(asked_to_stop());
    let mut first = true;
    let mut down_since: Option<Instant> = None;
    let mut down_noticed = false;
    let mut said_waiting = false;
    loop {
        match connect(c).await {
            Ok(conn) => {
                let via_path = (!conn.is_bus()).then(|| socket_path(c).display().to_string());
                if down_noticed {
                    out.notify(Note {
                        summary: "jailwarden is running again".into(),
                        body: "Bans are being made again.".into(),
                        icon: "security-high",
                        urgency: 1,
                    })
                    .await;
                }
                down_noticed = false;
                said_waiting = false;
                match follow(&conn, &mut out, &mut stop, &mut first, via_path).await {
                    Ok(Stopped::Asked) => return Ok(String::new()),
                    Ok(Stopped::Gone(reason)) => {
                        out.event(&Event::Disconnected { reason }).await;
                        down_since = Some(Instant::now());
                    }
                    // A wrong --jail, at the first connection.
                    Err(f) if f.code == 2 => return Err(f),
                    Err(f) => {
                        out.event(&Event::Disconnected { reason: f.message }).await;
                        down_since = Some(Instant::now());
                    }
                }
            }
            Err(f) => {
                if !said_waiting {
                    eprintln!("jailwarden: {}; waiting for it", f.message);
                    said_waiting = true;
                }
                let since = *down_since.get_or_insert_with(Instant::now);
                if !down_noticed && since.elapsed() >= DOWN_NOTICE_AFTER {
                    down_noticed = true;
                    out.notify(Note {
                        summary: "jailwarden is not running".into(),
                        body: escape(
                            "No new bans are made. Bans already in the kernel stay until they expire.",
                        ),
                        icon: "dialog-warning",
                        urgency: 2,
                    })
                    .await;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_EVERY) => {},
            _ = sleep_until(out.due()) => out.tick().await,
            _ = &mut stop => return Ok(String::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        Timestamp::from_second(1_714_564_800).unwrap()
    }

    #[test]
    fn json_lines_are_stable() {
        let e = Event::Banned {
            jail: "sshd".into(),
            address: "192.0.2.7".into(),
            expires_at: rfc3339(1_714_565_400_000_000),
            expires_at_usec: Some(1_714_565_400_000_000),
            permanent: false,
            failures: 5,
        };
        assert_eq!(
            json_line(&e, at()),
            r#"{"event":"banned","jail":"sshd","address":"192.0.2.7","expires_at":"2024-05-01T12:10:00Z","expires_at_usec":1714565400000000,"permanent":false,"failures":5,"time":"2024-05-01T12:00:00Z","time_usec":1714564800000000}"#
        );
        let e = Event::Unbanned {
            jail: "sshd".into(),
            address: "2001:db8::/64".into(),
            reason: "expired".into(),
        };
        assert!(json_line(&e, at()).starts_with(
            r#"{"event":"unbanned","jail":"sshd","address":"2001:db8::/64","reason":"expired","#
        ));
        let e = Event::Connected {
            via: "bus".into(),
            path: None,
            version: "0.1.0".into(),
        };
        assert!(
            json_line(&e, at())
                .starts_with(r#"{"event":"connected","via":"bus","version":"0.1.0","#)
        );
    }

    #[test]
    fn text_lines_say_what_happened() {
        let style = Style::plain();
        let e = Event::Banned {
            jail: "sshd".into(),
            address: "192.0.2.7".into(),
            expires_at: None,
            expires_at_usec: Some(1_714_565_400_000_000),
            permanent: false,
            failures: 5,
        };
        let line = text_line(&e, at(), &style);
        assert!(
            line.ends_with("banned      sshd  192.0.2.7  for 10m (until ")
                || line.contains("banned      sshd  192.0.2.7  for 10m (until "),
            "{line}"
        );
        assert!(line.ends_with("), after 5 failures"), "{line}");
        let e = Event::Reloaded {
            jails: vec!["a".into(), "b".into()],
        };
        assert!(text_line(&e, at(), &style).ends_with("reloaded    2 jails: a, b"));
    }

    #[test]
    fn notes_for_bans_and_manual_unbans_only() {
        let ban = Event::Banned {
            jail: "sshd".into(),
            address: "192.0.2.7".into(),
            expires_at: None,
            expires_at_usec: None,
            permanent: true,
            failures: 0,
        };
        let n = note_for(&ban, at()).expect("a note");
        assert_eq!(n.summary, "192.0.2.7 banned (sshd)");
        assert_eq!(n.body, "Banned in jail sshd permanently, by hand.");
        let unban = |reason: &str| Event::Unbanned {
            jail: "sshd".into(),
            address: "192.0.2.7".into(),
            reason: reason.into(),
        };
        assert!(note_for(&unban("expired"), at()).is_none());
        assert!(note_for(&unban("manual"), at()).is_some());
        assert!(note_for(&Event::Reloaded { jails: vec![] }, at()).is_none());
    }
}
