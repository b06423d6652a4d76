//! Configuration: `jailwarden.toml`, then `jail.d/*.toml` in name order
//! (later wins, key by key), `[defaults]` inherited by every
//! `[jails.NAME]`, filters compiled along the search path.
//!
//! [`load`] reads and validates everything and returns either a
//! [`Config`] ready to run or **every** problem as a positioned
//! [`Diagnostic`] (`file:line:column: message`). Nothing here does I/O
//! beyond reading the files; a running daemon calls it on reload and keeps
//! its configuration when it fails.

pub mod actions;
pub mod duration;
pub mod fleet;
pub mod journal_match;
pub mod keys;
pub mod ports;
pub mod reader;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::addr::AddrList;
use crate::ban::actions::ActionConfig;
use crate::ban::{PortRange, Protocol, Verdict};
use crate::filter::def::FilterPath;
use crate::filter::{Filter, FilterLoader, Shared};
use duration::{BanTime, parse_bantime, parse_duration};
use journal_match::JournalMatch;
pub use reader::Diagnostic;
use reader::{Diagnostics, Located, SourceFile, Table};

/// Where the main file lives by default.
pub const DEFAULT_CONFIG: &str = "/etc/jailwarden/jailwarden.toml";
/// The shipped filters' directory.
pub const SHARED_FILTERS: &str = "/usr/share/jailwarden/filters";
/// The control socket's default path.
pub const DEFAULT_SOCKET: &str = "/run/jailwarden/control.sock";
/// The state directory's default.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/jailwarden";

/// Firewall backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Native nftables sets over netlink.
    Nftables,
    /// Detect and log only.
    None,
}

/// `usedns`: what to do with a host name captured by `<HOST>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseDns {
    /// Resolve it and ban every address it has.
    Yes,
    /// Resolve and ban, with a warning (the name is attacker-influenced).
    Warn,
    /// Never resolve: a failure naming only a host name is logged, not counted.
    No,
}

/// `[daemon]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    pub backend: Backend,
    /// Read journal files from here instead of the local journal.
    pub journal_directory: Option<PathBuf>,
    /// Where filters are searched, first found wins.
    pub filter_path: FilterPath,
    /// Ban history older than this is purged (Fail2ban's dbpurgeage).
    pub dbpurgeage: Duration,
    /// Remove our firewall table when the daemon stops.
    pub flush_on_exit: bool,
    /// Control socket path (when not handed over by systemd).
    pub socket: PathBuf,
    /// Also serve `org.jailwarden1` on the system bus.
    pub dbus: bool,
    /// State directory (`$STATE_DIRECTORY` and `--state-dir` win).
    pub state_dir: Option<PathBuf>,
    /// How often the firewall is checked against the store (restoring
    /// what was changed behind our back, renewing timeouts).
    pub recheck: Duration,
}

impl DaemonConfig {
    /// The `[daemon]` keys read only at start (`keys::Applies::AtStart`)
    /// whose value differs in `new`: a reload keeps the running value and
    /// names these in its event.
    pub fn changed_at_start(&self, new: &DaemonConfig) -> Vec<&'static str> {
        keys::DAEMON
            .iter()
            .filter(|k| k.applies == keys::Applies::AtStart)
            .filter(|k| self.differs(k.name, new) != Some(false))
            .map(|k| k.name)
            .collect()
    }

    /// Whether `key` differs; `None` for a key this does not know (a key
    /// added to the table as at-start must be added here: a test checks).
    fn differs(&self, key: &str, new: &DaemonConfig) -> Option<bool> {
        Some(match key {
            "backend" => self.backend != new.backend,
            "socket" => self.socket != new.socket,
            "dbus" => self.dbus != new.dbus,
            "state_dir" => self.state_dir != new.state_dir,
            "recheck" => self.recheck != new.recheck,
            "flush_on_exit" => self.flush_on_exit != new.flush_on_exit,
            _ => return None,
        })
    }
}

/// `[jails.NAME.increment]`: longer bans for repeat offenders.
#[derive(Debug, Clone, PartialEq)]
pub struct Increment {
    /// A repeat offender: bantime × factor × 2^(previous bans) ...
    pub factor: f64,
    /// ... or bantime × factor × multipliers[n] after n bans (the last
    /// repeats); a first offence gets bantime.
    pub multipliers: Vec<f64>,
    /// Never longer than this.
    pub maxtime: Duration,
    /// Up to this much random extra, so botnets cannot predict the unban.
    pub rndtime: Duration,
    /// Count previous bans in every jail, not only this one.
    pub overalljails: bool,
}

/// One jail, validated, its filter compiled.
#[derive(Debug, Clone)]
pub struct JailConfig {
    pub name: String,
    pub enabled: bool,
    pub filter_name: String,
    pub mode: String,
    pub filter: Arc<Filter>,
    /// The journal entries the jail reads (empty: no journal).
    pub journal_match: JournalMatch,
    /// Files (or globs) the jail reads.
    pub logpath: Vec<String>,
    pub findtime: Duration,
    pub maxretry: u32,
    pub bantime: BanTime,
    pub increment: Option<Increment>,
    pub ignoreip: AddrList,
    /// Reverse proxies in front of the service: never banned; the client
    /// is the rightmost forwarded-for address that is not one of them.
    pub trusted_proxies: AddrList,
    pub ignoreself: bool,
    pub usedns: UseDns,
    /// Matched lines kept per address (for notifications).
    pub maxmatches: u32,
    /// Cap on addresses tracked with failures (oldest evicted first).
    pub maxtracked: u32,
    pub ports: Vec<PortRange>,
    pub protocols: Vec<Protocol>,
    pub blocktype: Verdict,
    /// IPv6 bans cover this prefix (128: single addresses).
    pub ipv6_prefix: u8,
    /// Cap on elements per firewall set (0: none).
    pub set_size: u32,
    /// Actions besides the firewall (`[[jails.NAME.action]]`).
    pub actions: Vec<ActionConfig>,
    /// Lines this long or longer may have been cut by a relay (a syslog
    /// daemon's message size): their end is not taken for an end. The
    /// filter's own `line_limit` applies too; the lower wins.
    pub line_limit: Option<usize>,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub daemon: DaemonConfig,
    /// By name.
    pub jails: BTreeMap<String, JailConfig>,
    /// `[fleet]`: bans shared with other hosts (none when absent).
    pub fleet: Option<fleet::FleetConfig>,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
}

impl JailConfig {
    /// The journal entries the jail reads: its journal_match, and for a
    /// filter over jailwarden's own events (recidive) only those the
    /// daemon running as `own_uid` wrote itself (`_UID` added to every
    /// group): any local user can write an entry with our MESSAGE_ID.
    pub fn journal_reads(&self, own_uid: u32) -> JournalMatch {
        let mut m = self.journal_match.clone();
        if self.filter.journal_own_events() {
            m.require("_UID", own_uid.to_string().as_bytes());
        }
        m
    }
}

impl Config {
    /// Enabled jails.
    pub fn enabled(&self) -> impl Iterator<Item = &JailConfig> {
        self.jails.values().filter(|j| j.enabled)
    }

    /// The longest findtime of enabled jails (how far back a first start reads).
    pub fn longest_findtime(&self) -> Duration {
        self.enabled()
            .map(|j| j.findtime)
            .max()
            .unwrap_or(Duration::from_secs(600))
    }
}

/// The files a configuration consists of: the main file, then
/// `jail.d/*.toml` next to it in name order.
pub fn config_files(main: &Path) -> Vec<PathBuf> {
    let mut files = vec![main.to_path_buf()];
    let dir = main.parent().unwrap_or(Path::new(".")).join("jail.d");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut extra: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        extra.sort();
        files.extend(extra);
    }
    files
}

/// Read and validate the configuration rooted at `main`. On failure,
/// every problem found, sorted by file and position.
pub fn load(main: &Path) -> Result<Config, Vec<Diagnostic>> {
    let diags = Diagnostics::new();
    let paths = config_files(main);
    let mut files = Vec::new();
    for p in &paths {
        match SourceFile::read(p) {
            Ok(f) => files.push(f),
            Err(d) => diags.push(d),
        }
    }
    let docs: Vec<_> = files.iter().map(|f| f.parse(&diags)).collect();
    let roots: Vec<Table> = files
        .iter()
        .zip(&docs)
        .map(|(f, d)| Table::root(f, d, &diags))
        .collect();
    for root in &roots {
        root.check_keys(&keys::names(keys::TOP));
    }
    let daemon = read_daemon(&roots, main, &diags);
    let fleet = fleet::read(&roots, &diags);
    let defaults: Vec<Table> = roots.iter().filter_map(|r| r.table("defaults")).collect();
    for d in &defaults {
        d.check_keys(&keys::names(keys::JAIL));
    }
    // Jail tables by name, in file order.
    let mut jail_tables: BTreeMap<String, Vec<(Located<String>, Table)>> = BTreeMap::new();
    for root in &roots {
        if let Some(jails) = root.table("jails") {
            for (name, t) in jails.tables() {
                t.check_keys(&keys::names(keys::JAIL));
                jail_tables
                    .entry(name.value.clone())
                    .or_default()
                    .push((name, t));
            }
        }
    }
    let loader = FilterLoader::new(daemon.filter_path.clone());
    let mut jails = BTreeMap::new();
    for (name, tables) in &jail_tables {
        let mut layers: Vec<&Table> = defaults.iter().collect();
        layers.extend(tables.iter().map(|(_, t)| t));
        let at = &tables[tables.len() - 1].0;
        if let Some(j) = read_jail(name, at, &layers, &loader, &diags) {
            jails.insert(name.clone(), j);
        }
    }
    if jail_tables.is_empty() {
        if let Some(f) = files.first() {
            diags.error(f, 0, "no jail is configured ([jails.NAME] tables)");
        }
    }
    if diags.is_empty() {
        Ok(Config {
            daemon,
            jails,
            fleet,
            files: paths,
        })
    } else {
        Err(diags.into_sorted())
    }
}

/// The daemon's filter path: `[daemon] filter_dirs` (relative to the main
/// file's directory), `filters/` beside the main file, the shipped ones.
fn daemon_filter_path(daemon_layers: &[&Table], main: &Path) -> FilterPath {
    let config_dir = main.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut filter_dirs: Vec<PathBuf> = Vec::new();
    if let Some(dirs) = pick(daemon_layers, "filter_dirs").and_then(|t| t.strings("filter_dirs")) {
        filter_dirs.extend(dirs.iter().map(|d| config_dir.join(&d.value)));
    }
    filter_dirs.push(config_dir.join("filters"));
    filter_dirs.push(PathBuf::from(SHARED_FILTERS));
    FilterPath::new(filter_dirs)
}

/// The filter path the daemon would use with the configuration at `main`,
/// reading only what that needs (offline commands: `filters`,
/// `test-filter`). Problems in those files are returned; the rest of the
/// configuration is not validated.
pub fn filter_path_of(main: &Path) -> Result<FilterPath, Vec<Diagnostic>> {
    let diags = Diagnostics::new();
    let files: Vec<_> = config_files(main)
        .iter()
        .filter_map(|p| SourceFile::read(p).map_err(|d| diags.push(d)).ok())
        .collect();
    let docs: Vec<_> = files.iter().map(|f| f.parse(&diags)).collect();
    let roots: Vec<Table> = files
        .iter()
        .zip(&docs)
        .map(|(f, d)| Table::root(f, d, &diags))
        .collect();
    let tables: Vec<Table> = roots.iter().filter_map(|r| r.table("daemon")).collect();
    let layers: Vec<&Table> = tables.iter().collect();
    let path = daemon_filter_path(&layers, main);
    if diags.is_empty() {
        Ok(path)
    } else {
        Err(diags.into_sorted())
    }
}

/// The last layer that has `key` (later files and jails override).
fn pick<'x, 'a, 'd>(layers: &'x [&'x Table<'a, 'd>], key: &str) -> Option<&'x Table<'a, 'd>> {
    layers.iter().rev().find(|t| t.has(key)).copied()
}

fn read_daemon(roots: &[Table], main: &Path, diags: &Diagnostics) -> DaemonConfig {
    let tables: Vec<Table> = roots.iter().filter_map(|r| r.table("daemon")).collect();
    for t in &tables {
        t.check_keys(&keys::names(keys::DAEMON));
    }
    let layers: Vec<&Table> = tables.iter().collect();
    let mut cfg = DaemonConfig {
        backend: Backend::Nftables,
        journal_directory: None,
        filter_path: daemon_filter_path(&layers, main),
        dbpurgeage: Duration::from_secs(86_400),
        flush_on_exit: false,
        socket: PathBuf::from(DEFAULT_SOCKET),
        dbus: true,
        state_dir: None,
        recheck: Duration::from_secs(60),
    };
    if let Some(v) = pick(&layers, "backend").and_then(|t| t.string("backend")) {
        match v.value.as_str() {
            "nftables" => cfg.backend = Backend::Nftables,
            "none" => cfg.backend = Backend::None,
            other => v.error(
                diags,
                format!("backend must be \"nftables\" or \"none\", not {other:?}"),
            ),
        }
    }
    let path = |key: &str| -> Option<PathBuf> {
        let v = pick(&layers, key).and_then(|t| t.string(key))?;
        let p = PathBuf::from(&v.value);
        if p.is_absolute() {
            Some(p)
        } else {
            v.error(diags, format!("{key} must be an absolute path"));
            None
        }
    };
    cfg.journal_directory = path("journal_directory");
    if let Some(p) = path("socket") {
        cfg.socket = p;
    }
    cfg.state_dir = path("state_dir");
    if let Some(v) = pick(&layers, "dbpurgeage").and_then(|t| t.text_or_integer("dbpurgeage")) {
        match parse_duration(&v.value) {
            Ok(d) => cfg.dbpurgeage = d,
            Err(e) => v.error(diags, format!("dbpurgeage: {e}")),
        }
    }
    if let Some(v) = pick(&layers, "recheck").and_then(|t| t.text_or_integer("recheck")) {
        match parse_duration(&v.value) {
            Ok(d) if d >= Duration::from_secs(1) => cfg.recheck = d,
            Ok(_) => v.error(diags, "recheck must be at least 1s"),
            Err(e) => v.error(diags, format!("recheck: {e}")),
        }
    }
    if let Some(v) = pick(&layers, "flush_on_exit").and_then(|t| t.bool("flush_on_exit")) {
        cfg.flush_on_exit = v.value;
    }
    if let Some(v) = pick(&layers, "dbus").and_then(|t| t.bool("dbus")) {
        cfg.dbus = v.value;
    }
    cfg
}

fn read_jail(
    name: &str,
    at: &Located<String>,
    layers: &[&Table],
    loader: &FilterLoader,
    diags: &Diagnostics,
) -> Option<JailConfig> {
    let before = diags.len();
    if !crate::filter::def::valid_filter_name(name) || name.len() > 64 {
        at.error(
            diags,
            format!("jail name {name:?} must be 1-64 letters, digits, '-', '_' or '.'"),
        );
    }
    let string = |key: &str| pick(layers, key).and_then(|t| t.string(key));
    let boolean = |key: &str, default: bool| {
        pick(layers, key)
            .and_then(|t| t.bool(key))
            .map_or(default, |v| v.value)
    };
    let integer = |key: &str, range: std::ops::RangeInclusive<i64>, default: i64| {
        pick(layers, key)
            .and_then(|t| t.integer(key, range))
            .map_or(default, |v| v.value)
    };
    let duration = |key: &str, default: Duration| {
        let Some(v) = pick(layers, key).and_then(|t| t.text_or_integer(key)) else {
            return default;
        };
        match parse_duration(&v.value) {
            Ok(d) if d.is_zero() => {
                v.error(diags, format!("{key} must be longer than 0s"));
                default
            }
            Ok(d) => d,
            Err(e) => {
                v.error(diags, format!("{key}: {e}"));
                default
            }
        }
    };

    let enabled = boolean("enabled", true);
    let filter_key = string("filter");
    let filter_name = filter_key
        .as_ref()
        .map_or(name.to_string(), |v| v.value.clone());
    let mode_key = string("mode");
    let mode = mode_key
        .as_ref()
        .map_or("normal".to_string(), |v| v.value.clone());
    let filter = match loader.shared(&filter_name, &mode, diags) {
        Shared::Missing => {
            let msg = format!(
                "no filter {filter_name:?} (searched {})",
                loader.path().describe()
            );
            match &filter_key {
                Some(k) => k.error(diags, msg),
                None => at.error(diags, format!("jail {name}: {msg}; set filter = \"...\"")),
            }
            None
        }
        Shared::NoMode(modes) => {
            let msg = format!(
                "filter {filter_name} has no mode {mode:?} (modes: {})",
                modes.join(", ")
            );
            match &mode_key {
                Some(k) => k.error(diags, msg),
                None => at.error(diags, msg),
            }
            None
        }
        // Its problems were reported once, with the first jail using it.
        Shared::Broken => None,
        Shared::Ready(f) => Some(f),
    };

    let journal_match = match pick(layers, "journal_match").and_then(|t| t.strings("journal_match"))
    {
        Some(terms) => {
            match JournalMatch::parse(&terms.iter().map(|t| t.value.as_str()).collect::<Vec<_>>()) {
                Ok(m) => {
                    // Forged entries: every group must name its writer (a
                    // filter over our own events gets the daemon's _UID).
                    if !filter.as_ref().is_some_and(|f| f.journal_own_events()) {
                        let starts = JournalMatch::group_starts(&terms);
                        for (i, g) in m.forgeable_groups() {
                            if let Some(term) = starts.get(i).and_then(|&t| terms.get(t)) {
                                term.error(diags, journal_match::forgeable_message(g));
                            }
                        }
                    }
                    Some(m)
                }
                Err(e) => {
                    terms.first().map_or_else(
                        || at.error(diags, e.to_string()),
                        |t| t.error(diags, e.to_string()),
                    );
                    None
                }
            }
        }
        None => None,
    };
    let logpath: Vec<Located<String>> = pick(layers, "logpath")
        .and_then(|t| t.strings("logpath"))
        .unwrap_or_default();
    for p in &logpath {
        if !p.value.starts_with('/') {
            p.error(
                diags,
                "logpath entries must be absolute paths (globs allowed)",
            );
        } else if let Err(e) = glob::Pattern::new(&p.value) {
            p.error(diags, format!("logpath: bad glob: {e}"));
        }
    }
    // A jail reads the journal with its own match, or the filter's
    // default unless it names files only.
    let journal_match = match (journal_match, &filter) {
        (Some(m), _) => m,
        (None, Some(f)) if logpath.is_empty() => f.journal_match().clone(),
        _ => JournalMatch::default(),
    };
    if enabled && journal_match.is_empty() && logpath.is_empty() && filter.is_some() {
        at.error(
            diags,
            format!("jail {name} reads nothing: give journal_match or logpath (its filter has no default journal_match)"),
        );
    }

    let findtime = duration("findtime", Duration::from_secs(600));
    let maxretry = integer("maxretry", 1..=100_000, 5) as u32;
    let bantime = match pick(layers, "bantime").and_then(|t| t.text_or_integer("bantime")) {
        None => BanTime::For(Duration::from_secs(600)),
        Some(v) => match parse_bantime(&v.value) {
            Ok(BanTime::For(d)) if d.is_zero() => {
                v.error(diags, "bantime must be longer than 0s (or \"permanent\")");
                BanTime::For(Duration::from_secs(600))
            }
            Ok(b) => b,
            Err(e) => {
                v.error(diags, format!("bantime: {e}"));
                BanTime::For(Duration::from_secs(600))
            }
        },
    };
    let mut ignoreip = AddrList::new();
    for item in pick(layers, "ignoreip")
        .and_then(|t| t.strings("ignoreip"))
        .unwrap_or_default()
    {
        if let Err(e) = ignoreip.push_str(&item.value) {
            item.error(diags, format!("ignoreip: {e}"));
        }
    }
    let mut trusted_proxies = AddrList::new();
    for item in pick(layers, "trusted_proxies")
        .and_then(|t| t.strings("trusted_proxies"))
        .unwrap_or_default()
    {
        if let Err(e) = trusted_proxies.push_str(&item.value) {
            item.error(diags, format!("trusted_proxies: {e}"));
        }
    }
    let usedns = match string("usedns") {
        None => UseDns::No,
        Some(v) => match v.value.as_str() {
            "yes" => UseDns::Yes,
            "warn" => UseDns::Warn,
            "no" => UseDns::No,
            other => {
                v.error(
                    diags,
                    format!("usedns must be \"yes\", \"warn\" or \"no\", not {other:?}"),
                );
                UseDns::No
            }
        },
    };
    let ports = match pick(layers, "port").and_then(|t| t.strings("port")) {
        None => Vec::new(),
        Some(items) => {
            let mut out = Vec::new();
            for item in items {
                match ports::parse_ports(&item.value) {
                    Ok(p) => out.extend(p),
                    Err(e) => item.error(diags, format!("port: {e}")),
                }
            }
            out
        }
    };
    let protocols = match string("protocol") {
        None => vec![Protocol::Tcp],
        Some(v) => match v.value.as_str() {
            "tcp" => vec![Protocol::Tcp],
            "udp" => vec![Protocol::Udp],
            "all" | "tcp,udp" => vec![Protocol::Tcp, Protocol::Udp],
            other => {
                v.error(
                    diags,
                    format!("protocol must be \"tcp\", \"udp\" or \"all\", not {other:?}"),
                );
                vec![Protocol::Tcp]
            }
        },
    };
    let blocktype = match string("blocktype") {
        None => Verdict::Drop,
        Some(v) => match v.value.as_str() {
            "drop" | "DROP" => Verdict::Drop,
            "reject" | "REJECT" => Verdict::Reject,
            other => {
                v.error(
                    diags,
                    format!("blocktype must be \"drop\" or \"reject\", not {other:?}"),
                );
                Verdict::Drop
            }
        },
    };
    let increment = read_increment(layers, &bantime, diags);
    let actions = actions::read(pick(layers, "action"), diags);
    let config = JailConfig {
        name: name.to_string(),
        enabled,
        filter_name,
        mode,
        filter: filter?,
        journal_match,
        logpath: logpath.into_iter().map(|p| p.value).collect(),
        findtime,
        maxretry,
        bantime,
        increment,
        ignoreip,
        trusted_proxies,
        ignoreself: boolean("ignoreself", true),
        usedns,
        maxmatches: integer("maxmatches", 0..=1000, i64::from(maxretry.min(1000))) as u32,
        maxtracked: integer("maxtracked", 1..=10_000_000, 50_000) as u32,
        ports,
        protocols,
        blocktype,
        ipv6_prefix: integer("ipv6_prefix", 16..=128, 128) as u8,
        set_size: integer("set_size", 0..=100_000_000, 0) as u32,
        actions,
        line_limit: pick(layers, "line_limit")
            .and_then(|t| t.integer("line_limit", 64..=(crate::filter::MAX_LINE as i64)))
            .map(|v| v.value as usize),
    };
    (diags.len() == before).then_some(config)
}

fn read_increment(layers: &[&Table], bantime: &BanTime, diags: &Diagnostics) -> Option<Increment> {
    let tables: Vec<Table> = layers.iter().filter_map(|t| t.table("increment")).collect();
    if tables.is_empty() {
        return None;
    }
    for t in &tables {
        t.check_keys(&keys::names(keys::INCREMENT));
    }
    let inc: Vec<&Table> = tables.iter().collect();
    if let Some(v) = pick(&inc, "enabled").and_then(|t| t.bool("enabled")) {
        if !v.value {
            return None;
        }
    }
    let positive = |key: &str, default: f64| -> f64 {
        match pick(&inc, key).and_then(|t| t.number(key)) {
            Some(v) if v.value > 0.0 && v.value < 1e6 => v.value,
            Some(v) => {
                v.error(
                    diags,
                    format!("increment.{key} must be a number above 0 and below 1000000"),
                );
                default
            }
            None => default,
        }
    };
    let dur = |key: &str, default: Duration| -> Duration {
        match pick(&inc, key).and_then(|t| t.text_or_integer(key)) {
            Some(v) => parse_duration(&v.value).unwrap_or_else(|e| {
                v.error(diags, format!("increment.{key}: {e}"));
                default
            }),
            None => default,
        }
    };
    let mut multipliers = Vec::new();
    // Not a list of finite numbers: reported by `numbers`.
    if let Some(list) = pick(&inc, "multipliers").and_then(|t| t.numbers("multipliers")) {
        if list.value.is_empty() || !list.value.iter().all(|m| *m > 0.0 && *m < 1e6) {
            list.error(
                diags,
                "increment.multipliers must list numbers above 0 and below 1000000",
            );
        } else {
            multipliers = list.value;
        }
    }
    let base = bantime.duration().unwrap_or(Duration::from_secs(600));
    Some(Increment {
        factor: positive("factor", 1.0),
        multipliers,
        maxtime: dur(
            "maxtime",
            (base * 7 * 24).min(Duration::from_secs(5 * 7 * 86_400)),
        ),
        rndtime: dur("rndtime", Duration::ZERO),
        overalljails: pick(&inc, "overalljails")
            .and_then(|t| t.bool("overalljails"))
            .is_some_and(|v| v.value),
    })
}

#[cfg(test)]
mod tests;
