//! The errors of the D-Bus API, by name, so clients can tell them apart
//! (never everything as `org.freedesktop.DBus.Error.Failed`).
//!
//! [`Error`] holds ours (`org.jailwarden1.Error.*`); [`CallError`] adds the
//! standard `org.freedesktop.DBus.Error.AccessDenied` for refused callers,
//! which the derive cannot name because its prefix is not ours.

use zbus::DBusError;
use zbus::message::{Header, Message};
use zbus::names::ErrorName;

use crate::daemon::control::ControlError;

/// Errors named `org.jailwarden1.Error.<Variant>`; the string is the
/// human-readable description sent with the error.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.jailwarden1.Error")]
pub enum Error {
    /// Transport-level failure (client side only: never sent by the daemon).
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The jail is not configured (or not enabled, for bans).
    NoSuchJail(String),
    /// The address is not an IPv4/IPv6 address (or, for Unban, a CIDR).
    InvalidAddress(String),
    /// The address is in the jail's ignoreip or trusted_proxies, or is this host's own.
    IgnoredAddress(String),
    /// Unban matched no ban.
    NotBanned(String),
    /// A ban duration out of range (below 1 s, or beyond 100 years).
    InvalidDuration(String),
    /// Reload found problems in the configuration; the running one is kept.
    Config(String),
    /// The daemon is stopping.
    ShuttingDown(String),
    /// Refused to bound what reading costs: the answer would be too large
    /// (page it), or the caller (or everyone) has too many calls in
    /// flight (try again shortly).
    LimitsExceeded(String),
    /// An argument the method cannot use (a ListBansPaged cursor it did
    /// not give out).
    InvalidArgs(String),
    /// Anything else; the description says what.
    Failed(String),
}

/// Echo at most this much of a caller's argument in an error text: the
/// argument may be megabytes of garbage.
const ECHO_MAX: usize = 80;

/// A caller's argument, shortened for an error message.
pub fn echo(text: &str) -> String {
    if text.len() <= ECHO_MAX {
        return text.to_string();
    }
    let mut end = ECHO_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl From<ControlError> for Error {
    fn from(e: ControlError) -> Self {
        let text = e.to_string();
        match e {
            ControlError::NoSuchJail(_) => Error::NoSuchJail(text),
            ControlError::InvalidAddress(_) | ControlError::InvalidRange(_) => {
                Error::InvalidAddress(text)
            }
            ControlError::IgnoredAddress(_) => Error::IgnoredAddress(text),
            ControlError::Config(_) => Error::Config(text),
            ControlError::ShuttingDown => Error::ShuttingDown(text),
            ControlError::LimitsExceeded(_) => Error::LimitsExceeded(text),
            ControlError::Failed(_) => Error::Failed(text),
        }
    }
}

/// What a method of ours can fail with: one of [`Error`], or access denied.
#[derive(Debug)]
pub enum CallError {
    /// `org.jailwarden1.Error.*`.
    Api(Error),
    /// `org.freedesktop.DBus.Error.AccessDenied`: the caller may not do this.
    AccessDenied(String),
}

const ACCESS_DENIED: &str = "org.freedesktop.DBus.Error.AccessDenied";

impl DBusError for CallError {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<Message> {
        match self {
            CallError::Api(e) => e.create_reply(call),
            CallError::AccessDenied(text) => Message::error(call, self.name()).build(&text),
        }
    }

    fn name(&self) -> ErrorName<'_> {
        match self {
            CallError::Api(e) => e.name(),
            CallError::AccessDenied(_) => ErrorName::from_static_str_unchecked(ACCESS_DENIED),
        }
    }

    fn description(&self) -> Option<&str> {
        match self {
            CallError::Api(e) => e.description(),
            CallError::AccessDenied(text) => Some(text),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The description alone: it already says what happened.
            CallError::Api(Error::ZBus(e)) => write!(f, "{e}"),
            CallError::Api(e) => f.write_str(e.description().unwrap_or("failed")),
            CallError::AccessDenied(text) => write!(f, "access denied: {text}"),
        }
    }
}

impl std::error::Error for CallError {}

/// Client side: a reply's error back into the type the server sent.
impl From<zbus::Error> for CallError {
    fn from(e: zbus::Error) -> Self {
        if let zbus::Error::FDO(fdo) = &e {
            if let zbus::fdo::Error::AccessDenied(text) = fdo.as_ref() {
                return CallError::AccessDenied(text.clone());
            }
        }
        CallError::Api(Error::from(e))
    }
}

impl From<Error> for CallError {
    fn from(e: Error) -> Self {
        CallError::Api(e)
    }
}

impl From<ControlError> for CallError {
    fn from(e: ControlError) -> Self {
        CallError::Api(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_ours_except_access_denied() {
        let e = CallError::from(ControlError::NoSuchJail("x".into()));
        assert_eq!(e.name().as_str(), "org.jailwarden1.Error.NoSuchJail");
        assert_eq!(e.description(), Some("no jail named \"x\""));
        let e = CallError::AccessDenied("no".into());
        assert_eq!(e.name().as_str(), ACCESS_DENIED);
    }

    #[test]
    fn echo_cuts_long_arguments_at_a_char_boundary() {
        assert_eq!(echo("short"), "short");
        let long = "é".repeat(100);
        let cut = echo(&long);
        assert!(cut.len() <= ECHO_MAX + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
