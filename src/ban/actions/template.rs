//! Argument templates of `command` actions: an argv (never a shell string)
//! whose arguments may hold placeholders such as `{address}`.
//!
//! A placeholder is replaced inside its argument, as a whole argument or as
//! part of one (`jw-{jail}`, `{address}/32`); the result is handed to
//! `execve` as it is, so no value is ever re-parsed by a shell. Values are
//! safe anyway (addresses are validated, jail names are `[A-Za-z0-9._-]`),
//! but the guarantee does not depend on that. `{{` and `}}` are literal
//! braces. Unknown placeholders (`{adress}`) are configuration errors, found
//! when the configuration is loaded, never when a ban happens.

use std::fmt;

use crate::ban::Ban;

/// A value a template can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// The banned address as the daemon shows it: `192.0.2.7`,
    /// `2001:db8::1`, or the prefix (`2001:db8::/64`) for prefix bans.
    Address,
    /// The banned network, always with a prefix length: `192.0.2.7/32`.
    Net,
    /// `inet` or `inet6`.
    Family,
    /// The jail's name.
    Jail,
    /// The ban's length in seconds, or `permanent`.
    Bantime,
    /// Seconds the ban has left when the command runs, at least 1; `0` for
    /// permanent bans (ipset's and nft's "no timeout").
    Timeout,
    /// Failures that led to the ban (0 for manual bans).
    Failures,
}

impl Var {
    /// Every placeholder, in the order the documentation lists them.
    pub const ALL: [Var; 7] = [
        Var::Address,
        Var::Net,
        Var::Family,
        Var::Jail,
        Var::Bantime,
        Var::Timeout,
        Var::Failures,
    ];

    /// The name between the braces.
    pub fn name(self) -> &'static str {
        match self {
            Var::Address => "address",
            Var::Net => "net",
            Var::Family => "family",
            Var::Jail => "jail",
            Var::Bantime => "bantime",
            Var::Timeout => "timeout",
            Var::Failures => "failures",
        }
    }

    /// The environment variable commands get it in: `JAILWARDEN_ADDRESS`...
    pub fn env_name(self) -> String {
        format!("JAILWARDEN_{}", self.name().to_ascii_uppercase())
    }

    fn from_name(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Var(Var),
}

/// A parsed argv template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    args: Vec<Vec<Piece>>,
}

/// Why an argv template was refused; `arg` is the 0-based index of the
/// argument at fault, so the configuration can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `[]`: there is no program to run.
    #[error("the argument list is empty: give the program and its arguments")]
    Empty,
    /// The program is `""` or holds a placeholder: what runs must be fixed.
    #[error("the program (first argument) must be a fixed, non-empty name or path")]
    BadProgram,
    /// `{adress}`.
    #[error("unknown placeholder {{{name}}} (known: {known})", known = known(&Var::ALL))]
    Unknown { arg: usize, name: String },
    /// A placeholder that has no value in this kind of command (`{address}`
    /// in a `start` command, which runs for no ban in particular).
    #[error("placeholder {{{name}}} has no value in {what} commands (they know {known})", known = known(allowed))]
    NotHere {
        arg: usize,
        name: String,
        what: &'static str,
        allowed: &'static [Var],
    },
    /// `{address` or a lone `}`.
    #[error("unbalanced brace: write {{{{ or }}}} for a literal brace")]
    Brace { arg: usize },
    /// A NUL byte cannot be passed to a program.
    #[error("arguments cannot contain NUL bytes")]
    Nul { arg: usize },
}

impl TemplateError {
    /// The argument at fault, if one is.
    pub fn arg(&self) -> Option<usize> {
        match self {
            TemplateError::Empty => None,
            TemplateError::BadProgram => Some(0),
            TemplateError::Unknown { arg, .. }
            | TemplateError::NotHere { arg, .. }
            | TemplateError::Brace { arg }
            | TemplateError::Nul { arg } => Some(*arg),
        }
    }
}

fn known(vars: &[Var]) -> String {
    vars.iter()
        .map(|v| format!("{{{}}}", v.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Placeholders of commands that run for one ban (`ban`, `unban`).
pub const BAN_VARS: &[Var] = &Var::ALL;
/// Placeholders of commands that run for the jail (`start`, `stop`).
pub const JAIL_VARS: &[Var] = &[Var::Jail];

impl Template {
    /// Parse an argv; `allowed` are the placeholders this kind of command
    /// has values for, `what` names the kind in messages.
    pub fn parse<S: AsRef<str>>(
        args: &[S],
        allowed: &'static [Var],
        what: &'static str,
    ) -> Result<Template, TemplateError> {
        if args.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut out = Vec::with_capacity(args.len());
        for (i, arg) in args.iter().enumerate() {
            let arg = arg.as_ref();
            if arg.contains('\0') {
                return Err(TemplateError::Nul { arg: i });
            }
            let pieces = parse_arg(arg, i, allowed, what)?;
            if i == 0 && (arg.is_empty() || pieces.iter().any(|p| matches!(p, Piece::Var(_)))) {
                return Err(TemplateError::BadProgram);
            }
            out.push(pieces);
        }
        Ok(Template { args: out })
    }

    /// The program (first argument, never templated).
    pub fn program(&self) -> String {
        self.render(&Vars::default()).swap_remove(0)
    }

    /// The argv with every placeholder replaced.
    pub fn render(&self, vars: &Vars) -> Vec<String> {
        self.args
            .iter()
            .map(|pieces| {
                let mut s = String::new();
                for p in pieces {
                    match p {
                        Piece::Lit(l) => s.push_str(l),
                        Piece::Var(v) => s.push_str(vars.get(*v)),
                    }
                }
                s
            })
            .collect()
    }
}

impl fmt::Display for Template {
    /// The template as written (for logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pieces) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            for p in pieces {
                match p {
                    Piece::Lit(l) => f.write_str(&l.replace('{', "{{").replace('}', "}}"))?,
                    Piece::Var(v) => write!(f, "{{{}}}", v.name())?,
                }
            }
        }
        Ok(())
    }
}

fn parse_arg(
    arg: &str,
    i: usize,
    allowed: &'static [Var],
    what: &'static str,
) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut rest = arg;
    while let Some(pos) = rest.find(['{', '}']) {
        lit.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("{{") {
            lit.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            lit.push('}');
            rest = after;
        } else if tail.starts_with('}') {
            return Err(TemplateError::Brace { arg: i });
        } else {
            let Some(end) = tail.find('}') else {
                return Err(TemplateError::Brace { arg: i });
            };
            let name = &tail[1..end];
            if name.contains('{') {
                return Err(TemplateError::Brace { arg: i });
            }
            let Some(var) = Var::from_name(name) else {
                return Err(TemplateError::Unknown {
                    arg: i,
                    name: name.to_string(),
                });
            };
            if !allowed.contains(&var) {
                return Err(TemplateError::NotHere {
                    arg: i,
                    name: name.to_string(),
                    what,
                    allowed,
                });
            }
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Var(var));
            rest = &tail[end + 1..];
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Lit(lit));
    }
    Ok(pieces)
}

/// The values of one run. Made from a [`Ban`] at the moment the command
/// starts (so `{timeout}` is what is left then), or for the jail alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    pub address: String,
    pub net: String,
    pub family: String,
    pub jail: String,
    pub bantime: String,
    pub timeout: String,
    pub failures: String,
}

impl Vars {
    /// Values for `start`/`stop` commands: only the jail.
    pub fn for_jail(jail: &str) -> Vars {
        Vars {
            jail: jail.to_string(),
            ..Vars::default()
        }
    }

    /// Values for a ban's commands, at `now`.
    pub fn for_ban(ban: &Ban, now: jiff::Timestamp) -> Vars {
        let net = ban.net.trunc();
        let (bantime, timeout) = match ban.expires_at {
            None => ("permanent".to_string(), "0".to_string()),
            Some(end) => {
                let total = end.as_second() - ban.banned_at.as_second();
                // Rounded up and at least 1: a job that waited in the queue
                // past the ban's end must not become "0 = no timeout".
                let left_us = end.as_microsecond() - now.as_microsecond();
                let left = (left_us + 999_999).div_euclid(1_000_000).max(1);
                (total.max(0).to_string(), left.to_string())
            }
        };
        Vars {
            address: crate::addr::net_text(net),
            net: net.to_string(),
            family: if ban.is_ipv6() { "inet6" } else { "inet" }.to_string(),
            jail: ban.jail.clone(),
            bantime,
            timeout,
            failures: ban.failures.to_string(),
        }
    }

    /// The value of one placeholder.
    pub fn get(&self, v: Var) -> &str {
        match v {
            Var::Address => &self.address,
            Var::Net => &self.net,
            Var::Family => &self.family,
            Var::Jail => &self.jail,
            Var::Bantime => &self.bantime,
            Var::Timeout => &self.timeout,
            Var::Failures => &self.failures,
        }
    }

    /// The values as environment variables (`JAILWARDEN_ADDRESS`...), for
    /// scripts that prefer them to arguments.
    pub fn env(&self) -> Vec<(String, String)> {
        Var::ALL
            .into_iter()
            .filter(|v| !self.get(*v).is_empty())
            .map(|v| (v.env_name(), self.get(v).to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn ban(net: &str, secs: Option<i64>) -> Ban {
        let at = Timestamp::from_second(1_700_000_000).unwrap();
        Ban {
            jail: "sshd".into(),
            net: net.parse().unwrap(),
            banned_at: at,
            expires_at: secs.map(|s| at + jiff::SignedDuration::from_secs(s)),
            failures: 3,
        }
    }

    #[test]
    fn substitutes_whole_and_partial_arguments_without_splitting() {
        let t = Template::parse(
            &[
                "ipset",
                "add",
                "jw-{jail}-{family}",
                "{address}",
                "timeout",
                "{timeout}",
                "{{literal}} {failures}/{bantime}",
                "{net}",
            ],
            BAN_VARS,
            "ban",
        )
        .unwrap();
        let b = ban("192.0.2.7/32", Some(600));
        let now = b.banned_at + jiff::SignedDuration::from_secs(100);
        assert_eq!(
            t.render(&Vars::for_ban(&b, now)),
            [
                "ipset",
                "add",
                "jw-sshd-inet",
                "192.0.2.7",
                "timeout",
                "500",
                "{literal} 3/600",
                "192.0.2.7/32"
            ]
        );
        assert_eq!(t.program(), "ipset");
    }

    #[test]
    fn ipv6_prefixes_permanent_bans_and_late_jobs() {
        let t = Template::parse(
            &[
                "x",
                "{address}",
                "{net}",
                "{family}",
                "{bantime}",
                "{timeout}",
            ],
            BAN_VARS,
            "ban",
        )
        .unwrap();
        let b = ban("2001:db8::/64", None);
        assert_eq!(
            t.render(&Vars::for_ban(&b, b.banned_at)),
            [
                "x",
                "2001:db8::/64",
                "2001:db8::/64",
                "inet6",
                "permanent",
                "0"
            ]
        );
        let b = ban("2001:db8::1/128", Some(60));
        let late = b.banned_at + jiff::SignedDuration::from_secs(3600);
        assert_eq!(
            t.render(&Vars::for_ban(&b, late)),
            ["x", "2001:db8::1", "2001:db8::1/128", "inet6", "60", "1"],
            "an expired ban never becomes timeout 0 (= permanent)"
        );
    }

    #[test]
    fn a_value_is_one_argument_even_with_spaces_or_quotes() {
        // The jail name cannot hold such characters, but the template does
        // not rely on that.
        let t = Template::parse(&["echo", "{jail}"], JAIL_VARS, "start").unwrap();
        let v = Vars::for_jail("a b; rm -rf / 'x'");
        assert_eq!(t.render(&v), ["echo", "a b; rm -rf / 'x'"]);
    }

    #[test]
    fn refuses_bad_templates_naming_the_argument() {
        let cases: &[(&[&str], &'static [Var], TemplateError)] = &[
            (&[], BAN_VARS, TemplateError::Empty),
            (&[""], BAN_VARS, TemplateError::BadProgram),
            (&["{jail}.sh"], BAN_VARS, TemplateError::BadProgram),
            (
                &["x", "{adress}"],
                BAN_VARS,
                TemplateError::Unknown {
                    arg: 1,
                    name: "adress".into(),
                },
            ),
            (
                &["x", "a", "{address"],
                BAN_VARS,
                TemplateError::Brace { arg: 2 },
            ),
            (&["x", "}"], BAN_VARS, TemplateError::Brace { arg: 1 }),
            (&["x", "{{a}"], BAN_VARS, TemplateError::Brace { arg: 1 }),
            (&["x", "{a{b}"], BAN_VARS, TemplateError::Brace { arg: 1 }),
            (&["x", "a\0b"], BAN_VARS, TemplateError::Nul { arg: 1 }),
            (
                &["x", "{address}"],
                JAIL_VARS,
                TemplateError::NotHere {
                    arg: 1,
                    name: "address".into(),
                    what: "start",
                    allowed: JAIL_VARS,
                },
            ),
        ];
        for (args, allowed, want) in cases {
            assert_eq!(
                Template::parse(args, allowed, "start").as_ref(),
                Err(want),
                "{args:?}"
            );
        }
        let e = Template::parse(&["x", "{adress}"], BAN_VARS, "ban").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown placeholder {adress} (known: {address}, {net}, {family}, {jail}, {bantime}, {timeout}, {failures})"
        );
        let e = Template::parse(&["x", "{net}"], JAIL_VARS, "stop").unwrap_err();
        assert_eq!(
            e.to_string(),
            "placeholder {net} has no value in stop commands (they know {jail})"
        );
    }

    #[test]
    fn displays_as_written_and_exports_environment() {
        let t = Template::parse(&["a", "{{x}}", "-{jail}-"], JAIL_VARS, "start").unwrap();
        assert_eq!(t.to_string(), "a {{x}} -{jail}-");
        let b = ban("192.0.2.7/32", Some(600));
        let env = Vars::for_ban(&b, b.banned_at).env();
        assert!(env.contains(&("JAILWARDEN_ADDRESS".into(), "192.0.2.7".into())));
        assert!(env.contains(&("JAILWARDEN_TIMEOUT".into(), "600".into())));
        assert_eq!(
            Vars::for_jail("j").env(),
            [("JAILWARDEN_JAIL".into(), "j".into())]
        );
    }
}
