//! `journal_match` terms with journalctl's semantics.
//!
//! Terms are `FIELD=VALUE`. Within one group, terms on the same field are
//! OR'ed and terms on different fields AND'ed; a `"+"` term starts a new
//! group, and groups are OR'ed. This is exactly what `sd_journal_add_match`
//! and `sd_journal_add_disjunction` build, so the same expression can be
//! handed to the journal (to filter there) and evaluated here (to dispatch an
//! entry to the jails whose match it satisfies).

use std::collections::BTreeMap;
use std::fmt;

/// A parsed `journal_match`: OR of groups, each an AND over fields of an OR
/// over values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalMatch {
    groups: Vec<MatchGroup>,
}

/// One conjunction: every field listed must have one of its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchGroup {
    fields: BTreeMap<String, Vec<Vec<u8>>>,
}

/// Why a term was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchTermError {
    #[error("journal match term {0:?} is not FIELD=VALUE or \"+\"")]
    NotATerm(String),
    #[error(
        "journal field name {0:?} is invalid (uppercase letters, digits and '_', not starting with a digit)"
    )]
    BadField(String),
    #[error(
        "journal match has an empty group (a \"+\" at the start, at the end, or twice in a row)"
    )]
    EmptyGroup,
}

/// A journal field name as journald accepts it.
pub fn valid_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.as_bytes()[0].is_ascii_digit()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Fields journald sets itself that say who wrote an entry, and that no
/// unprivileged local user can choose: the unit, slice and cgroup (a
/// process is placed there by root) and the user and group IDs (the
/// kernel's credentials of the sender). Fields without a leading `_` are
/// the writer's to choose (`logger --journald` sets any, `logger -t`
/// SYSLOG_IDENTIFIER); so are `_COMM` (`prctl`, a renamed copy), `_EXE` and
/// `_CMDLINE` (anyone may run /usr/sbin/sshd, in a namespace of their own
/// with any address), `_HOSTNAME`, and `_SYSTEMD_USER_UNIT` (the user's own
/// manager names it).
pub const WRITER_FIELDS: &[&str] = &[
    "_SYSTEMD_UNIT",
    "_SYSTEMD_SLICE",
    "_SYSTEMD_CGROUP",
    "_UID",
    "_GID",
];

/// `_TRANSPORT` values only the kernel or journald itself produce.
const KERNEL_TRANSPORTS: &[&[u8]] = &[b"kernel", b"audit", b"driver"];

impl JournalMatch {
    /// Index, among `terms`, of the first term of each group (what a
    /// positioned message about a group points at).
    pub fn group_starts<S: AsRef<str>>(terms: &[S]) -> Vec<usize> {
        let mut starts = Vec::new();
        let mut open = false;
        for (i, t) in terms.iter().enumerate() {
            if t.as_ref() == "+" {
                open = false;
            } else if !open {
                starts.push(i);
                open = true;
            }
        }
        starts
    }

    /// Groups (by index) that name no writer journald vouches for: any
    /// local user can write entries they match.
    pub fn forgeable_groups(&self) -> impl Iterator<Item = (usize, &MatchGroup)> {
        self.groups
            .iter()
            .enumerate()
            .filter(|(_, g)| !g.names_writer())
    }

    /// Add `field=value` to every group (AND): e.g. `_UID` of the daemon
    /// for a filter over jailwarden's own events.
    pub fn require(&mut self, field: &str, value: &[u8]) {
        for g in &mut self.groups {
            g.fields.insert(field.to_string(), vec![value.to_vec()]);
        }
    }

    /// Parse terms; an empty list means "no journal match" (matches nothing
    /// from the journal: the jail reads no journal).
    pub fn parse<S: AsRef<str>>(terms: &[S]) -> Result<Self, MatchTermError> {
        let mut groups = Vec::new();
        let mut current = MatchGroup::default();
        for term in terms {
            let term = term.as_ref();
            if term == "+" {
                if current.fields.is_empty() {
                    return Err(MatchTermError::EmptyGroup);
                }
                groups.push(std::mem::take(&mut current));
                continue;
            }
            let (field, value) = term
                .split_once('=')
                .ok_or_else(|| MatchTermError::NotATerm(term.to_string()))?;
            if !valid_field_name(field) {
                return Err(MatchTermError::BadField(field.to_string()));
            }
            let values = current.fields.entry(field.to_string()).or_default();
            if !values.iter().any(|v| v == value.as_bytes()) {
                values.push(value.as_bytes().to_vec());
            }
        }
        if !current.fields.is_empty() {
            groups.push(current);
        } else if !groups.is_empty() {
            return Err(MatchTermError::EmptyGroup);
        }
        Ok(JournalMatch { groups })
    }

    /// True when there is no term at all.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The OR'ed groups.
    pub fn groups(&self) -> &[MatchGroup] {
        &self.groups
    }

    /// Every field name used, so a reader knows which fields to fetch.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.groups
            .iter()
            .flat_map(|g| g.fields.keys().map(String::as_str))
    }

    /// Evaluate against an entry; `get` returns a field's value.
    pub fn matches<'a>(&self, mut get: impl FnMut(&str) -> Option<&'a [u8]>) -> bool {
        self.groups.iter().any(|g| g.matches(&mut get))
    }
}

impl MatchGroup {
    /// Whether the group names a writer no unprivileged local user can
    /// be: one of [`WRITER_FIELDS`], or a `_TRANSPORT` only the kernel or
    /// journald write (kernel, audit, driver).
    pub fn names_writer(&self) -> bool {
        self.fields.iter().any(|(field, values)| {
            WRITER_FIELDS.contains(&field.as_str())
                || (field == "_TRANSPORT"
                    && values
                        .iter()
                        .all(|v| KERNEL_TRANSPORTS.contains(&v.as_slice())))
        })
    }

    /// `(field, values)` pairs: AND over pairs, OR over values.
    pub fn terms(&self) -> impl Iterator<Item = (&str, &[Vec<u8>])> {
        self.fields.iter().map(|(f, v)| (f.as_str(), v.as_slice()))
    }

    fn matches<'a>(&self, get: &mut impl FnMut(&str) -> Option<&'a [u8]>) -> bool {
        self.fields.iter().all(|(field, values)| {
            get(field).is_some_and(|have| values.iter().any(|v| v.as_slice() == have))
        })
    }
}

impl fmt::Display for MatchGroup {
    /// The group's terms as journalctl takes them: `A=x A=y B=z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (field, values) in &self.fields {
            for v in values {
                if !first {
                    f.write_str(" ")?;
                }
                first = false;
                write!(f, "{field}={}", String::from_utf8_lossy(v))?;
            }
        }
        Ok(())
    }
}

/// The problem with a group that names no writer journald vouches for,
/// for a positioned configuration error.
pub fn forgeable_message(group: &MatchGroup) -> String {
    format!(
        "journal_match group \"{group}\" names no writer journald vouches for: any local user can write entries it matches (logger --journald, logger -t, a renamed program); add the writer's _SYSTEMD_UNIT=, _SYSTEMD_SLICE= or _UID= to the group"
    )
}

impl fmt::Display for JournalMatch {
    /// journalctl's own syntax, e.g. `_SYSTEMD_UNIT=ssh.service + _COMM=sshd`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first_group = true;
        for g in &self.groups {
            if !first_group {
                f.write_str(" + ")?;
            }
            first_group = false;
            g.fmt(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(fields: &'a [(&'a str, &'a str)]) -> impl FnMut(&str) -> Option<&'a [u8]> {
        move |name| {
            fields
                .iter()
                .find(|(f, _)| *f == name)
                .map(|(_, v)| v.as_bytes())
        }
    }

    #[test]
    fn same_field_is_or_different_fields_and() {
        let m = JournalMatch::parse(&[
            "_SYSTEMD_UNIT=ssh.service",
            "_SYSTEMD_UNIT=sshd.service",
            "_COMM=sshd",
        ])
        .unwrap();
        assert!(m.matches(entry(&[
            ("_SYSTEMD_UNIT", "sshd.service"),
            ("_COMM", "sshd")
        ])));
        assert!(m.matches(entry(&[
            ("_SYSTEMD_UNIT", "ssh.service"),
            ("_COMM", "sshd")
        ])));
        assert!(!m.matches(entry(&[("_SYSTEMD_UNIT", "ssh.service")])));
        assert!(!m.matches(entry(&[
            ("_SYSTEMD_UNIT", "cron.service"),
            ("_COMM", "sshd")
        ])));
    }

    #[test]
    fn plus_starts_an_ored_group() {
        let m = JournalMatch::parse(&["_SYSTEMD_UNIT=ssh.service", "+", "SYSLOG_IDENTIFIER=sshd"])
            .unwrap();
        assert!(m.matches(entry(&[("SYSLOG_IDENTIFIER", "sshd")])));
        assert!(m.matches(entry(&[("_SYSTEMD_UNIT", "ssh.service")])));
        assert!(!m.matches(entry(&[("SYSLOG_IDENTIFIER", "cron")])));
        assert_eq!(
            m.to_string(),
            "_SYSTEMD_UNIT=ssh.service + SYSLOG_IDENTIFIER=sshd"
        );
    }

    #[test]
    fn bad_terms_are_refused() {
        assert_eq!(
            JournalMatch::parse(&["unit"]),
            Err(MatchTermError::NotATerm("unit".into()))
        );
        assert_eq!(
            JournalMatch::parse(&["_systemd_unit=x"]),
            Err(MatchTermError::BadField("_systemd_unit".into()))
        );
        assert_eq!(
            JournalMatch::parse(&["+", "A=b"]),
            Err(MatchTermError::EmptyGroup)
        );
        assert_eq!(
            JournalMatch::parse(&["A=b", "+"]),
            Err(MatchTermError::EmptyGroup)
        );
        assert!(JournalMatch::parse::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn groups_must_name_a_writer_journald_vouches_for() {
        let m = JournalMatch::parse(&[
            "_SYSTEMD_UNIT=ssh.service",
            "+",
            "SYSLOG_IDENTIFIER=sshd",
            "_COMM=sshd",
            "_EXE=/usr/sbin/sshd",
            "+",
            "_TRANSPORT=audit",
            "+",
            "_TRANSPORT=syslog",
            "+",
            "MESSAGE_ID=x",
            "_UID=0",
            "+",
            "_SYSTEMD_SLICE=system-ssh.slice",
        ])
        .unwrap();
        let bad: Vec<(usize, String)> = m
            .forgeable_groups()
            .map(|(i, g)| (i, g.to_string()))
            .collect();
        assert_eq!(
            bad,
            [
                (
                    1,
                    "SYSLOG_IDENTIFIER=sshd _COMM=sshd _EXE=/usr/sbin/sshd".to_string()
                ),
                (3, "_TRANSPORT=syslog".to_string())
            ]
        );
        assert_eq!(
            JournalMatch::group_starts(&["A=1", "B=2", "+", "C=3", "+", "D=4"]),
            [0, 3, 5]
        );
        let mut own = JournalMatch::parse(&["MESSAGE_ID=x", "+", "MESSAGE_ID=y"]).unwrap();
        assert_eq!(own.forgeable_groups().count(), 2);
        own.require("_UID", b"998");
        assert_eq!(own.forgeable_groups().count(), 0);
        assert_eq!(
            own.to_string(),
            "MESSAGE_ID=x _UID=998 + MESSAGE_ID=y _UID=998"
        );
    }

    #[test]
    fn values_may_contain_equals_and_be_empty() {
        let m = JournalMatch::parse(&["MESSAGE=a=b", "X="]).unwrap();
        assert!(m.matches(entry(&[("MESSAGE", "a=b"), ("X", "")])));
    }
}
