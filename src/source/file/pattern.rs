//! `logpath` patterns: absolute paths whose components may be globs, and the
//! walk that finds the files they match and the directories to watch.
//!
//! A pattern is split into components so that each directory on the way can
//! be watched: an inotify watch on a directory reports its direct children
//! only, so seeing `/var/log/apache2/` appear (or a new vhost's log inside it)
//! needs a watch on every existing directory the pattern passes through.
//! Events from such a directory matter only when the child's name matches the
//! pattern's next component, which [`LogPattern::relevant`] tells.

use std::ffi::{OsStr, OsString};
use std::fs::{self, Metadata};
use std::io;
use std::path::{Component, Path, PathBuf};

use glob::{MatchOptions, Pattern};

use super::FileSourceError;

/// Shell-like matching, one component at a time: `*` never crosses a `/` (the
/// pattern is split on them anyway) and never matches a leading dot, so
/// `*.log` does not pick up editors' or tools' hidden temporary files.
const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

/// One component of a pattern.
#[derive(Debug)]
enum Part {
    /// Matched byte for byte; may be any name, UTF-8 or not.
    Literal(OsString),
    /// A glob (`*`, `?`, `[...]`). Only UTF-8 names can match it.
    Glob(Pattern),
}

impl Part {
    fn matches(&self, name: &OsStr) -> bool {
        match self {
            Part::Literal(lit) => lit == name,
            Part::Glob(pat) => name.to_str().is_some_and(|s| pat.matches_with(s, MATCH)),
        }
    }
}

/// A parsed `logpath` entry.
#[derive(Debug)]
pub(super) struct LogPattern {
    /// As configured, for messages.
    pub(super) text: String,
    /// Components after the root; the last one names files, the others
    /// directories. Never empty.
    parts: Vec<Part>,
}

impl LogPattern {
    /// Parses `text`. A relative pattern is taken relative to the working
    /// directory at this moment (the daemon's config uses absolute paths).
    /// `.` components are dropped, `..` is kept as a literal name.
    pub(super) fn parse(text: &str) -> Result<Self, FileSourceError> {
        let bad = |reason: String| FileSourceError::Pattern {
            pattern: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(bad("empty path".into()));
        }
        let abs = std::path::absolute(text).map_err(|e| bad(e.to_string()))?;
        let mut parts = Vec::new();
        for comp in abs.components() {
            match comp {
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => parts.push(Part::Literal("..".into())),
                Component::Normal(name) => {
                    let s = name.to_string_lossy();
                    if s.contains(['*', '?', '[']) {
                        let pat = Pattern::new(&s).map_err(|e| bad(e.to_string()))?;
                        parts.push(Part::Glob(pat));
                    } else {
                        parts.push(Part::Literal(name.to_owned()));
                    }
                }
            }
        }
        if parts.is_empty() {
            return Err(bad("names no file".into()));
        }
        Ok(LogPattern {
            text: text.to_owned(),
            parts,
        })
    }

    /// Whether a directory event about `name`, in a directory this pattern
    /// reached at `level` (0 = `/`), may change what the pattern matches.
    pub(super) fn relevant(&self, level: usize, name: &OsStr) -> bool {
        self.parts.get(level).is_some_and(|p| p.matches(name))
    }

    /// Whether `path` (absolute) matches the whole pattern.
    pub(super) fn matches(&self, path: &Path) -> bool {
        let mut names = Vec::new();
        for comp in path.components() {
            match comp {
                Component::Normal(n) => names.push(n),
                Component::ParentDir => names.push(OsStr::new("..")),
                _ => {}
            }
        }
        names.len() == self.parts.len() && self.parts.iter().zip(names).all(|(p, n)| p.matches(n))
    }

    /// Walks the pattern from `/`.
    ///
    /// `watch(dir, level)` is called on every directory the walk enters,
    /// *before* it is listed, so that a child created after the listing is
    /// reported by the watch rather than missed; it returns false when the
    /// directory does not exist (or cannot be watched), which ends that
    /// branch. `found` receives every regular file matched, with its
    /// metadata (symlinks followed). `trouble` receives errors worth a
    /// warning (a directory that cannot be listed, a file that cannot be
    /// stat'ed for another reason than not existing).
    pub(super) fn walk(
        &self,
        watch: &mut dyn FnMut(&Path, usize) -> bool,
        found: &mut dyn FnMut(PathBuf, Metadata),
        trouble: &mut dyn FnMut(&Path, io::Error),
    ) {
        let mut dirs = vec![PathBuf::from("/")];
        for (level, part) in self.parts.iter().enumerate() {
            let mut next = Vec::new();
            for dir in &dirs {
                if !watch(dir, level) {
                    continue;
                }
                match part {
                    Part::Literal(name) => next.push(dir.join(name)),
                    Part::Glob(_) => match fs::read_dir(dir) {
                        Ok(entries) => {
                            let mut matched: Vec<PathBuf> = entries
                                .filter_map(Result::ok)
                                .filter(|e| part.matches(&e.file_name()))
                                .map(|e| e.path())
                                .collect();
                            // Sorted so that discovery order (and so the
                            // order files are first read in) is stable.
                            matched.sort();
                            next.extend(matched);
                        }
                        Err(e) => trouble(dir, e),
                    },
                }
            }
            if level + 1 == self.parts.len() {
                for path in next {
                    match fs::metadata(&path) {
                        Ok(meta) if meta.is_file() => found(path, meta),
                        Ok(_) => {}
                        Err(e) if is_absent(&e) => {}
                        Err(e) => trouble(&path, e),
                    }
                }
                return;
            }
            dirs = next;
        }
    }
}

/// Errors that just mean "not there (any more)": not worth a warning, since
/// files and directories come and go and the watches report their return.
pub(super) fn is_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_literal_and_glob_components() {
        let p = LogPattern::parse("/var/log/apache2/*error.log").expect("valid");
        assert_eq!(p.parts.len(), 4);
        assert!(matches!(p.parts[0], Part::Literal(_)));
        assert!(matches!(p.parts[3], Part::Glob(_)));
        assert!(p.matches(Path::new("/var/log/apache2/site-error.log")));
        assert!(p.matches(Path::new("/var/log/apache2/error.log")));
        assert!(!p.matches(Path::new("/var/log/apache2/error.log.1")));
        assert!(!p.matches(Path::new("/var/log/apache2/.error.log")));
        assert!(!p.matches(Path::new("/var/log/apache2/x/error.log")));
        assert!(p.relevant(2, OsStr::new("apache2")));
        assert!(!p.relevant(2, OsStr::new("nginx")));
        assert!(p.relevant(3, OsStr::new("a-error.log")));
        assert!(!p.relevant(4, OsStr::new("a-error.log")));
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(LogPattern::parse("").is_err());
        assert!(LogPattern::parse("/").is_err());
        assert!(LogPattern::parse("/var/log/[z-a.log").is_err());
    }

    #[test]
    fn relative_patterns_are_made_absolute() {
        let p = LogPattern::parse("x/./y.log").expect("valid");
        let cwd = std::env::current_dir().expect("cwd");
        assert!(p.matches(&cwd.join("x/y.log")));
    }

    #[test]
    fn walk_watches_every_directory_before_listing_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("a/logs")).expect("mkdir");
        fs::create_dir_all(root.join("b/logs")).expect("mkdir");
        fs::create_dir_all(root.join("c")).expect("mkdir");
        fs::write(root.join("a/logs/x.log"), b"").expect("write");
        fs::write(root.join("b/logs/y.log"), b"").expect("write");
        fs::write(root.join("b/logs/y.txt"), b"").expect("write");
        fs::create_dir(root.join("b/logs/z.log")).expect("a directory is not a log");
        let text = format!("{}/*/logs/*.log", root.display());
        let p = LogPattern::parse(&text).expect("valid");
        let mut watched = Vec::new();
        let mut files = Vec::new();
        p.walk(
            &mut |d, level| {
                watched.push((d.to_owned(), level));
                d.is_dir()
            },
            &mut |f, _| files.push(f),
            &mut |path, e| panic!("{}: {e}", path.display()),
        );
        assert_eq!(
            files,
            vec![root.join("a/logs/x.log"), root.join("b/logs/y.log")]
        );
        let depth = root.components().count() - 1;
        assert!(watched.contains(&(PathBuf::from("/"), 0)));
        assert!(watched.contains(&(root.to_owned(), depth)));
        assert!(watched.contains(&(root.join("a/logs"), depth + 2)));
        assert!(
            watched.contains(&(root.join("c/logs"), depth + 2)),
            "tried, absent"
        );
    }
}
