//! Fail2ban's jails, filters and actions resolved as its client resolves
//! them before sending them to the server (client/jailreader.py,
//! filterreader.py, actionreader.py, configreader.py's
//! DefinitionInitConfigReader): options in two passes, a filter's
//! `[Init]` and the jail's `filter = name[params]`, `<tag>` substitution
//! (helpers.substituteRecursiveTags), and the `known/` options a jail
//! sees of its filter. Everything keeps the file:line it came from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::confreader::{Merged, Vars};
use super::ini::{IniError, Options, Pos, Spanned};
use super::syntax::{as_bool, extract_options, split_with_options};

/// The version whose behaviour is reproduced (`%(fail2ban_version)s`).
pub const FAIL2BAN_VERSION: &str = "1.0.2";

/// Options of a filter's `[Definition]` the client sends to the server.
pub const FILTER_OPTS: &[&str] = &[
    "usedns",
    "prefregex",
    "ignoreregex",
    "failregex",
    "maxlines",
    "datepattern",
    "journalmatch",
];

/// Options of an action's `[Definition]`.
pub const ACTION_OPTS: &[&str] = &[
    "actionstart",
    "actionstart_on_demand",
    "actionstop",
    "actionflush",
    "actionreload",
    "actioncheck",
    "actionrepair",
    "actionrepair_on_unban",
    "actionban",
    "actionprolong",
    "actionreban",
    "actionunban",
    "norestored",
];

/// A jail's options (second pass).
const JAIL_OPTS: &[&str] = &[
    "enabled",
    "backend",
    "maxretry",
    "maxmatches",
    "findtime",
    "bantime",
    "bantime.increment",
    "bantime.factor",
    "bantime.formula",
    "bantime.multipliers",
    "bantime.maxtime",
    "bantime.rndtime",
    "bantime.overalljails",
    "ignorecommand",
    "ignoreself",
    "ignoreip",
    "ignorecache",
    "filter",
    "logtimezone",
    "logencoding",
    "logpath",
    "action",
];

/// Fail2ban's MAX_TAG_REPLACE_COUNT.
const MAX_TAG_REPLACE: u32 = 25;

/// A filter as a jail uses it.
#[derive(Debug, Clone)]
pub struct FilterRef {
    pub name: String,
    /// `filter = name[params]`.
    pub params: Vec<(String, String)>,
    /// Where `filter =` was written.
    pub pos: Pos,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// The combined options after tag substitution (failregex & co.,
    /// init parameters).
    pub opts: Options,
    /// The filter's options that the jail itself set (they replace the
    /// filter's: failregex, journalmatch, ...).
    pub overridden: Vec<String>,
    /// The merged files, for looking at how it was defined.
    pub unit: Merged,
}

/// An action as a jail uses it.
#[derive(Debug, Clone)]
pub struct ActionRef {
    pub name: String,
    pub params: Vec<(String, String)>,
    /// Where the action's entry was written.
    pub pos: Pos,
    /// A Python action (`x.py`): code, not a command.
    pub python: bool,
    pub files: Vec<PathBuf>,
    /// Combined options (actionban & co., `[Init]`, parameters), tags
    /// substituted except the ones filled in at ban time.
    pub opts: Options,
}

/// A jail section.
#[derive(Debug, Clone)]
pub struct JailDef {
    pub name: String,
    /// The section header where the jail was first defined.
    pub pos: Pos,
    pub enabled: bool,
    /// Second-pass options, interpolated (enabled jails only).
    pub opts: Options,
    pub filter: Option<FilterRef>,
    pub actions: Vec<ActionRef>,
}

impl JailDef {
    /// An option's value and where it was written.
    pub fn opt(&self, name: &str) -> Option<&Spanned> {
        self.opts.get(name)
    }
}

/// A whole Fail2ban configuration directory.
#[derive(Debug, Clone)]
pub struct Fail2ban {
    pub dir: PathBuf,
    pub jails: Vec<JailDef>,
    /// The `jail` unit's files in reading order.
    pub files: Vec<PathBuf>,
    /// `fail2ban.conf`'s `[Definition] dbfile`, when readable.
    pub dbfile: Option<Spanned>,
}

/// Read `dir` (like `/etc/fail2ban`): every jail section, and for the
/// enabled ones everything Fail2ban would resolve. Any problem is an
/// error with file:line (nothing is guessed).
pub fn read(dir: &Path) -> Result<Fail2ban, IniError> {
    let dirpos = Pos::new(&std::rc::Rc::new(dir.to_path_buf()), 0);
    if !dir.is_dir() {
        return Err(IniError::new(dirpos, "no such directory"));
    }
    let mut unit = Merged::read_unit(dir, "jail")?.ok_or_else(|| {
        IniError::new(
            dirpos.clone(),
            "no jail.conf, jail.local or jail.d/*.conf|*.local here: not a Fail2ban configuration",
        )
    })?;
    unit.set_default(
        "fail2ban_version",
        Spanned::new(FAIL2BAN_VERSION, Pos::none()),
    );
    unit.set_default(
        "fail2ban_confpath",
        Spanned::new(dir.display().to_string(), Pos::none()),
    );
    let names: Vec<String> = unit
        .section_names()
        .into_iter()
        .filter(|n| *n != "Definition")
        .map(str::to_string)
        .collect();
    let mut jails = Vec::new();
    for name in names {
        jails.push(read_jail(dir, &mut unit, &name)?);
    }
    let dbfile = match Merged::read_unit(dir, "fail2ban")? {
        Some(f) => f.get("Definition", "dbfile", &Vars::default())?,
        None => None,
    };
    Ok(Fail2ban {
        dir: dir.to_path_buf(),
        jails,
        files: unit.files.clone(),
        dbfile,
    })
}

fn get_opts(
    unit: &Merged,
    section: &str,
    names: &[&str],
    vars: &Vars,
) -> Result<Options, IniError> {
    let mut out = Options::default();
    for n in names {
        if let Some(v) = unit.get(section, n, vars)? {
            out.set(n, v);
        }
    }
    Ok(out)
}

fn read_jail(dir: &Path, unit: &mut Merged, name: &str) -> Result<JailDef, IniError> {
    let pos = unit.section(name).map_or_else(Pos::none, |s| s.pos.clone());
    // First pass: what decides whether (and with which filter) it runs.
    let first = get_opts(
        unit,
        name,
        &["enabled", "backend", "filter"],
        &Vars::default(),
    )?;
    let enabled = first.get("enabled").is_some_and(|v| as_bool(v.text()));
    let mut def = JailDef {
        name: name.to_string(),
        pos: pos.clone(),
        enabled,
        opts: first.clone(),
        filter: None,
        actions: Vec::new(),
    };
    if !enabled {
        return Ok(def);
    }
    let backend = first
        .get("backend")
        .map_or("auto".to_string(), |v| v.text().to_string());
    let mut filter = None;
    if let Some(fv) = first.get("filter").filter(|v| !v.text().trim().is_empty()) {
        let (fname, params) = extract_options(fv.text().trim())
            .map_err(|e| IniError::new(fv.pos(), format!("filter = {}: {e}", fv.text())))?;
        let mut f = FilterReader::open(dir, fname.trim(), params, fv.pos(), &backend)?;
        f.options(&first, true)?;
        let combined = f.combined()?;
        unit.merge_prefixed(name, &combined, "known/");
        filter = Some(f);
    }
    // Second pass: everything, with %(known/...)s of the filter available.
    let mut names: Vec<&str> = JAIL_OPTS.to_vec();
    names.extend_from_slice(FILTER_OPTS);
    let opts = get_opts(unit, name, &names, &Vars::default())?;
    if let Some(mut f) = filter {
        f.options(&opts, false)?;
        let combined = f.combined()?;
        let overridden = FILTER_OPTS
            .iter()
            .filter(|o| opts.contains(o))
            .map(|o| o.to_string())
            .collect();
        def.filter = Some(FilterRef {
            name: f.name,
            params: f.params,
            pos: f.pos,
            files: f.unit.files.clone(),
            opts: combined,
            overridden,
            unit: f.unit,
        });
    }
    if let Some(actions) = opts.get("action") {
        for (offset, text) in split_with_options(actions.text()) {
            if text.is_empty() {
                continue;
            }
            let apos = actions.pos_at(offset);
            let (aname, params) = extract_options(&text)
                .map_err(|e| IniError::new(apos.clone(), format!("action {text:?}: {e}")))?;
            let aname = aname.trim().to_string();
            if aname.ends_with(".py") {
                def.actions.push(ActionRef {
                    name: aname,
                    params,
                    pos: apos,
                    python: true,
                    files: Vec::new(),
                    opts: Options::default(),
                });
                continue;
            }
            def.actions
                .push(read_action(dir, name, &aname, params, apos, &opts)?);
        }
    }
    def.opts = opts;
    Ok(def)
}

fn params_as_options(params: &[(String, String)], pos: &Pos) -> Options {
    let mut o = Options::default();
    for (k, v) in params {
        o.set(&k.to_lowercase(), Spanned::new(v.clone(), pos.clone()));
    }
    o
}

/// DefinitionInitConfigReader for filters.
struct FilterReader {
    name: String,
    params: Vec<(String, String)>,
    pos: Pos,
    unit: Merged,
    init: Options,
    opts: Options,
    popts: Options,
}

impl FilterReader {
    fn open(
        dir: &Path,
        name: &str,
        params: Vec<(String, String)>,
        pos: Pos,
        backend: &str,
    ) -> Result<FilterReader, IniError> {
        let unit = Merged::read_unit(dir, &format!("filter.d/{name}"))?.ok_or_else(|| {
            IniError::new(
                pos.clone(),
                format!(
                    "filter {name:?}: no {} (nor .local)",
                    dir.join("filter.d").join(format!("{name}.conf")).display()
                ),
            )
        })?;
        Ok(FilterReader::with_unit(unit, name, params, pos, backend))
    }

    fn with_unit(
        unit: Merged,
        name: &str,
        params: Vec<(String, String)>,
        pos: Pos,
        backend: &str,
    ) -> FilterReader {
        let mut init = params_as_options(&params, &pos);
        // applyAutoOptions: the log type follows the backend.
        if !init.contains("logtype")
            && !unit
                .own_options("Definition")
                .iter()
                .any(|o| o == "logtype")
        {
            let t = if backend.starts_with("systemd") {
                "journal"
            } else {
                "file"
            };
            init.set("logtype", Spanned::new(t, pos.clone()));
        }
        FilterReader {
            name: name.to_string(),
            params,
            pos,
            unit,
            init,
            opts: Options::default(),
            popts: Options::default(),
        }
    }

    fn options(&mut self, jail: &Options, all: bool) -> Result<(), IniError> {
        let (opts, popts) = definition_options(&self.unit, &mut self.init, jail, FILTER_OPTS, all)?;
        self.opts = opts;
        self.popts = popts;
        Ok(())
    }

    fn combined(&self) -> Result<Options, IniError> {
        combine(&self.unit, &self.opts, &self.init, &self.popts, &[])
    }
}

/// The jail's filter as it would be with only the stock files
/// (`filter.d/NAME.conf` and its includes, no `.local`): what a `.local`
/// changed is the difference. `None` without a NAME.conf.
pub fn resolve_filter_without_locals(
    dir: &Path,
    jail: &JailDef,
    f: &FilterRef,
) -> Result<Option<FilterRef>, IniError> {
    let conf = dir.join("filter.d").join(format!("{}.conf", f.name));
    if !conf.is_file() {
        return Ok(None);
    }
    let mut unit = Merged::default();
    unit.read_files_without_locals(&[conf])?;
    let backend = jail
        .opt("backend")
        .map_or("auto".to_string(), |v| v.text().to_string());
    let mut r = FilterReader::with_unit(unit, &f.name, f.params.clone(), f.pos.clone(), &backend);
    r.options(&jail.opts, true)?;
    r.options(&jail.opts, false)?;
    let opts = r.combined()?;
    Ok(Some(FilterRef {
        name: r.name,
        params: r.params,
        pos: r.pos,
        files: r.unit.files.clone(),
        opts,
        overridden: Vec::new(),
        unit: r.unit,
    }))
}

/// DefinitionInitConfigReader.getOptions: the `[Definition]` options
/// (those the jail did not give), `[Init]` into the init options.
fn definition_options(
    unit: &Merged,
    init: &mut Options,
    jail: &Options,
    names: &[&str],
    all: bool,
) -> Result<(Options, Options), IniError> {
    let mut popts = jail.clone();
    for (k, v) in init.iter() {
        popts.set(k, v.clone());
    }
    let mut opts = Options::default();
    for n in names {
        if popts.contains(n) {
            continue;
        }
        if unit.has_section("Definition") {
            if let Some(v) = unit.get("Definition", n, &popts)? {
                opts.set(n, v);
            }
        }
    }
    if unit.section("Init").is_some() {
        for opt in unit.own_options("Init") {
            if opt == "__name__" {
                continue;
            }
            let Some(v) = unit.get("Init", &opt, &Vars::default())? else {
                continue;
            };
            if !opt.starts_with("known/") {
                init.set(&format!("known/{opt}"), v.clone());
            }
            if !init.contains(&opt) {
                init.set(&opt, v);
            }
        }
    }
    if all && unit.section("Definition").is_some() {
        for opt in unit.options_with_defaults("Definition") {
            if opt == "__name__" || opts.contains(&opt) {
                continue;
            }
            if let Some(v) = unit.get("Definition", &opt, &Vars::default())? {
                opts.set(&opt, v);
            }
        }
    }
    Ok((opts, popts))
}

/// getCombined: definition options with init options over them, `<tags>`
/// substituted.
fn combine(
    unit: &Merged,
    opts: &Options,
    init: &Options,
    popts: &Options,
    ignore: &[&str],
) -> Result<Options, IniError> {
    let mut combined = opts.clone();
    for (k, v) in init.iter() {
        combined.set(k, v.clone());
    }
    let mut ignore: Vec<String> = ignore.iter().map(|s| s.to_string()).collect();
    for n in combined.names() {
        if let Some(q) = n.find('?') {
            ignore.push(n[..q].to_string());
        }
    }
    let mut cache: HashMap<String, Option<Spanned>> = HashMap::new();
    let mut addrepl = |tag: &str| -> Result<Option<Spanned>, IniError> {
        if let Some(v) = cache.get(tag) {
            return Ok(v.clone());
        }
        // Tags that name no option (<HOST>, <ip>) give None and stay.
        let v = unit.get_ex("Definition", tag, popts)?;
        cache.insert(tag.to_string(), v.clone());
        Ok(v)
    };
    substitute_tags(&mut combined, &ignore, &mut addrepl)?;
    Ok(combined)
}

/// helpers.substituteRecursiveTags: `<name>` in values replaced by other
/// values (or `addrepl`'s), repeatedly, so `<mdre-<mode>>` works; tags
/// that name nothing stay (`<HOST>`, `<ip>`).
pub fn substitute_tags(
    tags: &mut Options,
    ignore: &[String],
    addrepl: &mut dyn FnMut(&str) -> Result<Option<Spanned>, IniError>,
) -> Result<(), IniError> {
    let mut done: Vec<String> = Vec::new();
    let mut counts: HashMap<String, HashMap<String, u32>> = HashMap::new();
    loop {
        let mut again = false;
        let names: Vec<String> = tags.names().map(str::to_string).collect();
        for tag in names {
            if ignore.contains(&tag) || done.contains(&tag) {
                continue;
            }
            let Some(orig) = tags.get(&tag).cloned() else {
                continue;
            };
            let mut value = orig.clone();
            let mut rplc = counts.get(&tag).cloned().unwrap_or_default();
            let mut from = 0;
            while let Some((start, end, rtag)) = find_tag(value.text(), from) {
                if ignore.contains(&rtag) {
                    from = end;
                    continue;
                }
                if rtag == tag || rplc.get(&rtag).copied().unwrap_or(1) > MAX_TAG_REPLACE {
                    return Err(IniError::new(
                        orig.pos(),
                        format!(
                            "<{rtag}> refers to itself (in option {tag}): the tags cannot be resolved"
                        ),
                    ));
                }
                let repl = match tags.get(&rtag) {
                    Some(v) => Some(v.clone()),
                    None => addrepl(&rtag)?,
                };
                let Some(repl) = repl else {
                    from = end;
                    continue;
                };
                value = value.replace_all(&format!("<{rtag}>"), &repl);
                *rplc.entry(rtag).or_insert(0) += 1;
                from = start;
            }
            if value.text() != orig.text() {
                if find_tag(value.text(), 0).is_some() {
                    counts.insert(tag.clone(), rplc);
                    again = true;
                }
                tags.set(&tag, value.clone());
            }
            if !value.text().contains('<') {
                done.push(tag);
            }
        }
        if !again {
            return Ok(());
        }
    }
}

/// The next `<tag>` (Fail2ban's `<([^ <>]+)>`) at or after `from`.
fn find_tag(text: &str, from: usize) -> Option<(usize, usize, String)> {
    let b = text.as_bytes();
    let mut i = from;
    while i < b.len() {
        if b[i] == b'<' {
            let mut j = i + 1;
            while j < b.len() && !matches!(b[j], b' ' | b'<' | b'>') {
                j += 1;
            }
            if j < b.len() && b[j] == b'>' && j > i + 1 {
                return Some((i, j + 1, text[i + 1..j].to_string()));
            }
        }
        i += 1;
    }
    None
}

/// Tags an action fills in at ban time: never substituted at read time.
const ACTION_RUNTIME_IGNORED: &[&str] = &[
    "matches",
    "ipmatches",
    "ipjailmatches",
    "timeout",
    "bantime",
];

fn read_action(
    dir: &Path,
    jail: &str,
    name: &str,
    params: Vec<(String, String)>,
    pos: Pos,
    jail_opts: &Options,
) -> Result<ActionRef, IniError> {
    let unit = Merged::read_unit(dir, &format!("action.d/{name}"))?.ok_or_else(|| {
        IniError::new(
            pos.clone(),
            format!(
                "action {name:?}: no {} (nor .local)",
                dir.join("action.d").join(format!("{name}.conf")).display()
            ),
        )
    })?;
    let mut init = params_as_options(&params, &pos);
    let n = match init.get("name") {
        Some(v) => v.text().to_string(),
        None => {
            init.set("name", Spanned::new(jail, pos.clone()));
            jail.to_string()
        }
    };
    if !init.contains("actname") {
        let mut actname = name.to_string();
        if n != jail {
            actname.push_str(&match n.strip_prefix(jail) {
                Some(rest) => rest.to_string(),
                None => format!("-{n}"),
            });
        }
        init.set("actname", Spanned::new(actname, pos.clone()));
    }
    let (opts, popts) = definition_options(&unit, &mut init, jail_opts, ACTION_OPTS, false)?;
    let combined = combine(&unit, &opts, &init, &popts, ACTION_RUNTIME_IGNORED)?;
    Ok(ActionRef {
        name: name.to_string(),
        params,
        pos,
        python: false,
        files: unit.files.clone(),
        opts: combined,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (p, t) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, t).unwrap();
        }
        dir
    }

    const COMMON: &str = "[DEFAULT]\nlogtype = file\n_daemon = \\S*\n__prefix_line = <lt_<logtype>/__prefix_line>\n[lt_file]\n__prefix_line = F:<_daemon>:\n[lt_journal]\n__prefix_line = J:\n";

    #[test]
    fn filters_resolve_modes_tags_init_and_known() {
        let dir = setup(&[
            (
                "jail.conf",
                "[DEFAULT]\nmode = normal\nfilter = %(__name__)s[mode=%(mode)s]\nenabled = false\n[sshd]\nenabled = true\nmode = extra\nbackend = systemd\n[off]\nfilter = missing\n",
            ),
            ("filter.d/common.conf", COMMON),
            (
                "filter.d/sshd.conf",
                "[INCLUDES]\nbefore = common.conf\n[Definition]\n_daemon = sshd\nmdre-normal = ^n <HOST>$\nmdre-extra = ^e <HOST>$\n            %(mdre-normal)s\nfailregex = ^%(__prefix_line)s<mdre-<mode>>\njournalmatch = _SYSTEMD_UNIT=sshd.service\n[Init]\nmaxlines = 1\n",
            ),
            (
                "filter.d/sshd.local",
                "[Definition]\nfailregex = %(known/failregex)s\n            ^local <HOST>$\n",
            ),
        ]);
        let f = read(dir.path()).unwrap();
        assert_eq!(f.jails.len(), 2);
        let off = &f.jails[1];
        assert!(
            !off.enabled && off.filter.is_none(),
            "a disabled jail's filter is not read"
        );
        let j = &f.jails[0];
        let flt = j.filter.as_ref().unwrap();
        assert_eq!(flt.name, "sshd");
        assert_eq!(flt.params, [("mode".to_string(), "extra".to_string())]);
        let fr = flt.opts.get("failregex").unwrap();
        assert_eq!(fr.text(), "^J:^e <HOST>$\n^n <HOST>$\n^local <HOST>$");
        let lines = fr.lines();
        assert!(
            lines[0].1.to_string().ends_with("sshd.conf:8"),
            "{}",
            lines[0].1
        );
        assert!(
            lines[1].1.to_string().ends_with("sshd.conf:5"),
            "{}",
            lines[1].1
        );
        assert!(
            lines[2].1.to_string().ends_with("sshd.local:3"),
            "{}",
            lines[2].1
        );
        assert_eq!(flt.opts.get("maxlines").unwrap().text(), "1");
        assert_eq!(flt.opts.get("logtype").unwrap().text(), "journal");
        assert!(flt.overridden.is_empty());
    }

    #[test]
    fn actions_get_their_init_and_parameters() {
        let dir = setup(&[
            (
                "jail.conf",
                "[DEFAULT]\nport = 0:65535\nchain = <known/chain>\nbanaction = fw\naction_ = %(banaction)s[port=\"%(port)s\", chain=\"%(chain)s\"]\naction = %(action_)s\n         mailer[dest=root]  tool.py\n[j]\nenabled = true\nport = ssh\n",
            ),
            (
                "action.d/fw.conf",
                "[Definition]\nactionban = fw add <name> <ip> -p <port> -c <chain> <blocktype>\n[Init]\nchain = INPUT\nblocktype = REJECT\nport = 1\n",
            ),
            (
                "action.d/mailer.conf",
                "[Definition]\nactionban = mail -s 'banned <ip>' <dest> <matches>\n",
            ),
        ]);
        let f = read(dir.path()).unwrap();
        let a = &f.jails[0].actions;
        assert_eq!(a.len(), 3);
        assert_eq!(
            a[0].opts.get("actionban").unwrap().text(),
            "fw add j <ip> -p ssh -c INPUT REJECT"
        );
        assert_eq!(
            a[1].opts.get("actionban").unwrap().text(),
            "mail -s 'banned <ip>' root <matches>"
        );
        assert!(a[2].python);
    }

    #[test]
    fn self_referencing_tags_are_errors() {
        let dir = setup(&[
            ("jail.conf", "[j]\nenabled = true\nfilter = f\n"),
            (
                "filter.d/f.conf",
                "[Definition]\nfailregex = <a>\na = x<b>\nb = <a>\n",
            ),
        ]);
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("refers to itself") || e.contains("cannot be resolved"),
            "{e}"
        );
    }
}
