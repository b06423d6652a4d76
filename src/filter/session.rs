//! Per-connection state for multi-line stories.
//!
//! sshd logs a connection over several lines that share its pid: the host
//! on one line, the failure on another ("Disconnecting: Too many
//! authentication failures" names no address), failed keys that only count
//! if no key is accepted. A [`Sessions`] table keyed by the pattern's
//! `session` capture remembers what each connection said, bounded in size
//! and age so a flood of connections cannot grow memory.
//!
//! **One authentication attempt is one failure**, however many lines tell
//! it. A filter lists the steps of an attempt in the order its service
//! logs them (sshd with PAM: "Invalid user", pam_unix's failure, "Failed
//! password"); a line of step N goes on telling the attempt under way when
//! that attempt's last step came before N, and begins a new attempt
//! otherwise. An attempt counts once, at its first line of role `fail`
//! (or when its pending lines are confirmed).

// Keys are hashes already, but chosen by text a local user may write to a
// syslog file: a seeded hash (foldhash, per process) keeps crafted keys
// from piling into one bucket, at a fraction of SipHash's cost.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::time::Duration;

use jiff::Timestamp;

use super::def::Role;
use crate::addr::Host;

/// What one matched line brings to the story.
#[derive(Debug, Clone)]
pub struct Event {
    pub role: Role,
    /// The host this line names, with its text as captured.
    pub host: Option<(Host, String)>,
    pub user: Option<String>,
    /// The step of an attempt this line tells (index in the filter's
    /// `attempt` list), if its pattern names one.
    pub step: Option<u8>,
    /// Attempts this line tells of (1, or what an `<F-ATTEMPTS>` capture
    /// says: "auth failed, 3 attempts").
    pub attempts: u32,
}

/// A failure the story produced: who, how many attempts, which users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub host: Host,
    pub host_text: String,
    pub attempts: u32,
    pub users: Vec<String>,
    /// Counts only for an address with a counted failure already (role
    /// `repeat`).
    pub repeat: bool,
}

/// The attempt a session is telling: the last step seen, and whether it
/// was counted (if not, its one failure is among the session's waiting).
#[derive(Debug, Clone, Copy)]
struct Attempt {
    step: u8,
    counted: bool,
}

#[derive(Debug, Default)]
struct Session {
    host: Option<(Host, String)>,
    /// Users that failed in this session, distinct, in order.
    users: Vec<String>,
    /// Attempts waiting for confirmation (role pending).
    pending: u32,
    /// Failures waiting for a host.
    hostless: u32,
    /// The attempt whose lines are being told, when its lines have steps.
    attempt: Option<Attempt>,
    last_seen: Option<Timestamp>,
}

impl Session {
    fn waiting(&self) -> u32 {
        self.pending + self.hostless
    }

    fn add_user(&mut self, user: &Option<String>) -> bool {
        match user {
            // An empty name (PAM's "ruser=" for an unknown user) is no user:
            // it must not count as a second user confirming a story.
            Some(u) if !u.is_empty() && !self.users.contains(u) => {
                if self.users.len() < MAX_USERS {
                    self.users.push(u.clone());
                }
                true
            }
            _ => false,
        }
    }
}

const MAX_USERS: usize = 16;

/// A session as it is kept across restarts (JSON in the store), so that a
/// story told across a crash is neither lost nor counted twice.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedSession {
    /// The host as captured (parsed again when restored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    #[serde(default)]
    pub pending: u32,
    #[serde(default)]
    pub hostless: u32,
    /// The attempt under way: (step, counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<(u8, bool)>,
    /// Last seen, µs since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_usec: Option<i64>,
}

impl Session {
    fn save(&self) -> SavedSession {
        SavedSession {
            host: self.host.as_ref().map(|(_, text)| text.clone()),
            users: self.users.clone(),
            pending: self.pending,
            hostless: self.hostless,
            attempt: self.attempt.map(|a| (a.step, a.counted)),
            last_seen_usec: self.last_seen.map(|t| t.as_microsecond()),
        }
    }

    fn restore(saved: SavedSession) -> Session {
        Session {
            host: saved
                .host
                .and_then(|text| crate::addr::parse_host(&text).map(|h| (h, text))),
            users: saved.users.into_iter().take(MAX_USERS).collect(),
            pending: saved.pending,
            hostless: saved.hostless,
            attempt: saved
                .attempt
                .map(|(step, counted)| Attempt { step, counted }),
            last_seen: saved
                .last_seen_usec
                .and_then(|u| Timestamp::from_microsecond(u).ok()),
        }
    }
}

/// Sessions of one matcher, bounded by count and age.
#[derive(Debug)]
pub struct Sessions {
    map: HashMap<u64, Session>,
    timeout: Duration,
    cap: usize,
    /// Sessions dropped because the table was full.
    pub evicted: u64,
    /// Keys changed (or gone) since the last [`Sessions::take_changes`].
    dirty: HashSet<u64>,
    /// Whether changes are kept for [`Sessions::take_changes`] (a caller
    /// that never persists sessions, like `test-filter`, turns it off).
    track: bool,
}

impl Sessions {
    /// An empty table keeping at most `cap` sessions, each forgotten after
    /// `timeout` without news.
    pub fn new(timeout: Duration, cap: usize) -> Self {
        Sessions {
            map: HashMap::new(),
            timeout,
            cap: cap.max(1),
            evicted: 0,
            dirty: HashSet::new(),
            track: true,
        }
    }

    /// Stop keeping changes for [`Sessions::take_changes`]: nothing will
    /// ask for them.
    pub fn untracked(mut self) -> Self {
        self.track = false;
        self.dirty = HashSet::new();
        self
    }

    /// The sessions changed since the last call: each key with its state
    /// now, `None` when it is gone. The caller saves them with the source
    /// position of the line that changed them last.
    pub fn take_changes(&mut self) -> Vec<(u64, Option<SavedSession>)> {
        let mut out: Vec<(u64, Option<SavedSession>)> = self
            .dirty
            .drain()
            .map(|k| (k, self.map.get(&k).map(Session::save)))
            .collect();
        out.sort_unstable_by_key(|(k, _)| *k);
        out
    }

    /// Put back a session saved before a restart (within the cap; not
    /// reported as a change).
    pub fn restore(&mut self, key: u64, saved: SavedSession) {
        if self.map.len() < self.cap || self.map.contains_key(&key) {
            self.map.insert(key, Session::restore(saved));
        }
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no session is remembered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Apply a line without a session key: only plain failures with a host
    /// count; the other roles need a story to belong to.
    pub fn stateless(ev: Event) -> Option<Verdict> {
        match (ev.role, ev.host) {
            (Role::Fail | Role::Repeat, Some((host, host_text))) => Some(Verdict {
                host,
                host_text,
                attempts: if ev.role == Role::Repeat {
                    1
                } else {
                    ev.attempts.max(1)
                },
                users: ev.user.into_iter().collect(),
                repeat: ev.role == Role::Repeat,
            }),
            _ => None,
        }
    }

    /// Apply a line of session `key` at time `now`.
    pub fn apply(&mut self, key: u64, ev: Event, now: Option<Timestamp>) -> Option<Verdict> {
        if !self.map.contains_key(&key) {
            if ev.role == Role::Close || ev.role == Role::Success {
                // Nothing is waiting in a session we never saw.
                return None;
            }
            self.make_room(now);
            self.map.insert(key, Session::default());
        }
        if self.track {
            self.dirty.insert(key);
        }
        let s = self.map.get_mut(&key)?;
        if let (Some(now), Some(last)) = (now, s.last_seen) {
            if now.duration_since(last)
                > jiff::SignedDuration::try_from(self.timeout).unwrap_or_default()
            {
                *s = Session::default(); // a new connection reusing the pid
            }
        }
        if now.is_some() {
            s.last_seen = now;
        }
        if s.host.is_none() {
            s.host.clone_from(&ev.host);
        }
        let host = ev.host.clone().or_else(|| s.host.clone());
        // Does this line go on telling the attempt under way?
        let continues = match (ev.step, s.attempt) {
            (Some(step), Some(a)) => a.step < step,
            _ => false,
        };
        let emit = |s: &mut Session, attempts: u32, extra_user: Option<&String>| {
            let (host, host_text) = host.clone()?;
            let mut users = s.users.clone();
            if let Some(u) = extra_user {
                if !users.contains(u) {
                    users.push(u.clone());
                }
            }
            s.pending = 0;
            s.hostless = 0;
            // Nothing waits any more: the attempt under way is counted.
            if let Some(a) = s.attempt.as_mut() {
                a.counted = true;
            }
            Some(Verdict {
                host,
                host_text,
                attempts,
                users,
                repeat: false,
            })
        };
        match ev.role {
            Role::Note => None,
            Role::Repeat => {
                // Counted (or not) by the jail on its own: it neither
                // confirms nor carries what waits in the session.
                let (host, host_text) = host?;
                Some(Verdict {
                    host,
                    host_text,
                    attempts: 1,
                    users: ev.user.into_iter().collect(),
                    repeat: true,
                })
            }
            Role::Pending => {
                let new_user = s.add_user(&ev.user);
                match (continues, s.attempt.as_mut(), ev.step) {
                    (true, Some(a), Some(step)) => a.step = step,
                    _ => {
                        s.pending += 1;
                        s.attempt = ev.step.map(|step| Attempt {
                            step,
                            counted: false,
                        });
                    }
                }
                let n = s.waiting();
                if new_user && s.users.len() > 1 && host.is_some() && n > 0 {
                    emit(s, n, None)
                } else {
                    None
                }
            }
            Role::Fail => {
                s.add_user(&ev.user);
                match (continues, s.attempt.as_mut(), ev.step) {
                    (true, Some(a), Some(step)) => {
                        a.step = step;
                        if a.counted {
                            // The same attempt, told again.
                            return None;
                        }
                        // Its one failure already waits (pending or hostless).
                        if host.is_some() {
                            let n = s.waiting().max(1) + ev.attempts.max(1) - 1;
                            emit(s, n, None)
                        } else {
                            None
                        }
                    }
                    _ => {
                        s.attempt = ev.step.map(|step| Attempt {
                            step,
                            counted: false,
                        });
                        if host.is_some() {
                            let n = s.waiting() + ev.attempts.max(1);
                            emit(s, n, None)
                        } else {
                            s.hostless += ev.attempts.max(1);
                            None
                        }
                    }
                }
            }
            Role::Close => {
                let n = s.waiting();
                let out = if n > 0 { emit(s, n, None) } else { None };
                self.map.remove(&key);
                out
            }
            Role::Success => {
                let same_user = match &ev.user {
                    Some(u) => s.users.contains(u),
                    None => true,
                };
                let out = if s.users.is_empty() && s.waiting() == 0 || same_user {
                    None
                } else {
                    let n = s.waiting() + 1;
                    emit(s, n, ev.user.as_ref())
                };
                self.map.remove(&key);
                out
            }
        }
    }

    /// Drop stale sessions; if still full, drop the least recently seen
    /// half (amortized O(1) per insert), counting them.
    fn make_room(&mut self, now: Option<Timestamp>) {
        if self.map.len() < self.cap {
            return;
        }
        let dirty = &mut self.dirty;
        if let Some(now) = now {
            let timeout = jiff::SignedDuration::try_from(self.timeout).unwrap_or_default();
            self.map.retain(|k, s| {
                let keep = s
                    .last_seen
                    .is_none_or(|last| now.duration_since(last) <= timeout);
                if !keep {
                    dirty.insert(*k);
                }
                keep
            });
        }
        if self.map.len() >= self.cap {
            let mut seen: Vec<Option<Timestamp>> = self.map.values().map(|s| s.last_seen).collect();
            seen.sort_unstable();
            let cutoff = seen[seen.len() / 2];
            let before = self.map.len();
            self.map.retain(|k, s| {
                let keep = s.last_seen > cutoff;
                if !keep {
                    dirty.insert(*k);
                }
                keep
            });
            if self.map.len() >= self.cap {
                dirty.extend(self.map.keys().copied());
                self.map.clear();
            }
            self.evicted += (before - self.map.len()) as u64;
        }
        if !self.track {
            self.dirty.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(role: Role, host: Option<&str>, user: Option<&str>) -> Event {
        Event {
            role,
            host: host.map(|h| (crate::addr::parse_host(h).unwrap(), h.to_string())),
            user: user.map(str::to_string),
            step: None,
            attempts: 1,
        }
    }

    fn step(mut e: Event, step: u8) -> Event {
        e.step = Some(step);
        e
    }

    fn t(s: i64) -> Option<Timestamp> {
        Some(Timestamp::from_second(1_000_000 + s).unwrap())
    }

    #[test]
    fn hostless_failure_waits_for_the_close_that_names_the_host() {
        let mut s = Sessions::new(Duration::from_secs(600), 100);
        assert_eq!(s.apply(1, ev(Role::Fail, None, Some("root")), t(0)), None);
        let v = s
            .apply(1, ev(Role::Close, Some("192.0.2.1"), None), t(1))
            .unwrap();
        assert_eq!((v.host_text.as_str(), v.attempts), ("192.0.2.1", 1));
        assert!(s.is_empty());
    }

    #[test]
    fn pending_attempts_need_confirmation() {
        let mut s = Sessions::new(Duration::from_secs(600), 100);
        // Same user twice, then accepted: a legitimate user, nothing counts.
        s.apply(1, ev(Role::Pending, Some("192.0.2.1"), Some("git")), t(0));
        s.apply(1, ev(Role::Pending, Some("192.0.2.1"), Some("git")), t(0));
        assert_eq!(
            s.apply(1, ev(Role::Success, Some("192.0.2.1"), Some("git")), t(0)),
            None
        );
        // Second distinct user confirms; success for a third counts too.
        s.apply(2, ev(Role::Pending, Some("192.0.2.2"), Some("root")), t(0));
        let v = s
            .apply(
                2,
                ev(Role::Pending, Some("192.0.2.2"), Some("sudoer")),
                t(0),
            )
            .unwrap();
        assert_eq!((v.attempts, v.users.len()), (2, 2));
        let v = s
            .apply(2, ev(Role::Success, Some("192.0.2.2"), Some("known")), t(0))
            .unwrap();
        assert_eq!(
            (v.attempts, v.users),
            (1, vec!["root".into(), "sudoer".into(), "known".into()])
        );
        // A later failure carries the waiting attempts.
        s.apply(3, ev(Role::Pending, Some("192.0.2.3"), Some("git")), t(0));
        s.apply(3, ev(Role::Pending, Some("192.0.2.3"), Some("git")), t(0));
        let v = s.apply(3, ev(Role::Fail, None, Some("git")), t(0)).unwrap();
        assert_eq!((v.host_text.as_str(), v.attempts), ("192.0.2.3", 3));
    }

    #[test]
    fn an_empty_user_name_confirms_nothing() {
        // sshd: "Invalid user x", then PAM with an empty ruser: one user.
        let mut s = Sessions::new(Duration::from_secs(600), 100);
        let v = s
            .apply(4, ev(Role::Fail, Some("192.0.2.4"), Some("x")), t(0))
            .unwrap();
        assert_eq!(v.attempts, 1);
        assert_eq!(
            s.apply(4, ev(Role::Pending, Some("192.0.2.4"), Some("")), t(0)),
            None
        );
    }

    #[test]
    fn a_note_provides_the_host_and_stale_sessions_are_forgotten() {
        let mut s = Sessions::new(Duration::from_secs(60), 100);
        s.apply(1, ev(Role::Note, Some("192.0.2.5"), None), t(0));
        let v = s.apply(1, ev(Role::Fail, None, None), t(10)).unwrap();
        assert_eq!(v.host_text, "192.0.2.5");
        s.apply(2, ev(Role::Note, Some("192.0.2.6"), None), t(0));
        assert_eq!(s.apply(2, ev(Role::Fail, None, None), t(120)), None);
    }

    /// sshd with `UsePAM yes`, as OpenSSH 9.2p1 on Debian 12 writes it
    /// (tests/real/fixtures/sshd): steps 0 "Invalid user", 1 pam_unix,
    /// 2 "Failed password", 3 "maximum authentication attempts exceeded".
    #[test]
    fn one_attempt_counts_once_however_many_lines_tell_it() {
        let mut s = Sessions::new(Duration::from_secs(600), 100);
        let h = Some("192.0.2.3");
        let counted = |s: &mut Sessions, key, e| s.apply(key, e, t(0)).map_or(0, |v| v.attempts);
        // An existing user, two wrong passwords: pam + Failed, twice.
        let mut total = 0;
        for _ in 0..2 {
            total += counted(&mut s, 1, step(ev(Role::Pending, h, Some("jwtest")), 1));
            total += counted(&mut s, 1, step(ev(Role::Fail, h, Some("jwtest")), 2));
        }
        assert_eq!(total, 2);
        // An invalid user: Invalid user + pam (no user) + Failed, then a
        // second password: pam + Failed.
        let mut lines = vec![
            step(ev(Role::Fail, h, Some("admin")), 0),
            step(ev(Role::Pending, h, Some("")), 1),
            step(ev(Role::Fail, h, Some("admin")), 2),
        ];
        assert_eq!(
            lines
                .drain(..)
                .map(|e| counted(&mut s, 2, e))
                .collect::<Vec<_>>(),
            [1, 0, 0],
            "counted at the first line, told again after"
        );
        assert_eq!(
            counted(&mut s, 2, step(ev(Role::Pending, h, Some("")), 1)),
            0
        );
        assert_eq!(
            counted(&mut s, 2, step(ev(Role::Fail, h, Some("admin")), 2)),
            1
        );
        // Failed then the limit it reached: one attempt; without PAM lines
        // each Failed is an attempt of its own.
        assert_eq!(
            counted(&mut s, 3, step(ev(Role::Fail, h, Some("root")), 2)),
            1
        );
        assert_eq!(
            counted(&mut s, 3, step(ev(Role::Fail, h, Some("root")), 2)),
            1
        );
        assert_eq!(
            counted(&mut s, 3, step(ev(Role::Fail, h, Some("root")), 3)),
            0
        );
        // A PAM failure and then success for the same user: nothing (a
        // second PAM module accepted the password).
        assert_eq!(
            counted(&mut s, 4, step(ev(Role::Pending, h, Some("rda")), 1)),
            0
        );
        assert_eq!(counted(&mut s, 4, ev(Role::Success, h, Some("rda"))), 0);
        // A client that names an invalid user and leaves: one attempt.
        assert_eq!(counted(&mut s, 5, step(ev(Role::Fail, h, Some("x")), 0)), 1);
        assert_eq!(counted(&mut s, 5, ev(Role::Close, h, Some("x"))), 0);
    }

    #[test]
    fn repeats_stand_alone() {
        let mut s = Sessions::new(Duration::from_secs(600), 100);
        s.apply(1, ev(Role::Pending, Some("192.0.2.8"), Some("a")), t(0));
        let v = s
            .apply(1, ev(Role::Repeat, Some("192.0.2.8"), None), t(0))
            .unwrap();
        assert!(v.repeat);
        assert_eq!(v.attempts, 1);
        // What waited still waits.
        let v = s.apply(1, ev(Role::Close, None, None), t(0)).unwrap();
        assert_eq!((v.attempts, v.repeat), (1, false));
    }

    #[test]
    fn the_table_stays_bounded_under_a_flood() {
        let mut s = Sessions::new(Duration::from_secs(600), 1000);
        for i in 0..100_000u32 {
            s.apply(
                u64::from(i),
                ev(Role::Fail, None, None),
                t(i64::from(i) / 1000),
            );
            assert!(s.len() <= 1000);
        }
        assert!(s.evicted > 90_000);
    }
}
