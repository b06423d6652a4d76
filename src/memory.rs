//! Giving back memory an idle daemon holds only because of past work: file
//! pages it touched (code, read-only data, journal files) are dropped from
//! this process's page tables. They stay in the page cache: what runs or
//! is read again maps its page back, a minor fault, no disk read.

/// Which mappings [`release_file_pages`] drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilePages {
    /// The code and read-only data of our executable and its shared
    /// libraries (private, read-only, not a page copied on write).
    Code,
    /// The journal files sd-journal maps (shared, read-only). Only the
    /// thread that reads the journal may drop these: it is the one that
    /// maps and unmaps them, so the ranges cannot change under it.
    Journal,
}

/// Drop the pages of `which` mappings from this process's memory with
/// `MADV_DONTNEED`. [`FilePages::Code`]: start-up (the configuration
/// parser, the regex compiler, clap), a burst of lines, bans or a reload
/// touched code an idle daemon does not run. [`FilePages::Journal`]: the
/// parts of the journal files read so far. So an idle daemon's RSS is what
/// it holds (heap, state), not the code it ran or the entries it read an
/// hour ago.
pub fn release_file_pages(which: FilePages) {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for (start, end) in clean_file_mappings(&smaps, &exe.to_string_lossy(), which) {
        // SAFETY: the range is a whole mapping of this process, read from
        // /proc/self/smaps: a private, read-only mapping of our executable
        // or a library without a single anonymous (copied-on-write) page,
        // or a read-only shared mapping of a journal file (never written
        // through), so every page is exactly the file's and MADV_DONTNEED
        // only makes the next access map it again from the page cache.
        // Writable data, RELRO pages (relocated, so anonymous) and the heap
        // are never touched. Journal mappings are only released by the
        // thread that maps them (see `FilePages::Journal`), so the range is
        // still that mapping.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// A shared library's path: `/…/NAME.so` or `/…/NAME.so.1.2` (not
/// `/etc/ld.so.cache`).
fn is_shared_object(path: &str) -> bool {
    if !path.starts_with('/') {
        return false;
    }
    let mut name = path.rsplit('/').next().unwrap_or("");
    while let Some((rest, last)) = name.rsplit_once('.') {
        if last.is_empty() || !last.bytes().all(|b| b.is_ascii_digit()) {
            break;
        }
        name = rest;
    }
    name.ends_with(".so")
}

/// A journal file's path (`system.journal`, `user-1000@….journal~`).
fn is_journal_file(path: &str) -> bool {
    path.starts_with('/') && (path.ends_with(".journal") || path.ends_with(".journal~"))
}

/// The mappings of `/proc/self/smaps` that [`release_file_pages`] may drop,
/// all not writable and with `Anonymous: 0 kB`: for [`FilePages::Code`]
/// private (`p`) ones of our executable `exe` or a shared library, for
/// [`FilePages::Journal`] shared (`s`) ones of journal files.
fn clean_file_mappings(smaps: &str, exe: &str, which: FilePages) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else {
            continue;
        };
        if let Some((start, end)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            current = None;
            let Some(perms) = fields.next() else {
                continue;
            };
            let path = fields.nth(3).unwrap_or("");
            let wanted = match which {
                FilePages::Code => (path == exe || is_shared_object(path)) && perms.ends_with('p'),
                FilePages::Journal => is_journal_file(path) && perms.ends_with('s'),
            };
            if !wanted || perms.contains('w') {
                continue;
            }
            if let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) {
                current = Some((start, end));
            }
        } else if first == "Anonymous:" {
            // The field comes once per mapping: decide there.
            if let Some(range) = current.take() {
                if fields.next() == Some("0") {
                    out.push(range);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{FilePages, clean_file_mappings};

    const SMAPS: &str = "\
5648c5d5f000-5648c60c6000 r--p 00000000 fd:00 42 /usr/sbin/jailwarden
Size:               3484 kB
Rss:                 512 kB
Anonymous:             0 kB
VmFlags: rd mr mw me sd
5648c60c6000-5648c6bdf000 r-xp 00367000 fd:00 42 /usr/sbin/jailwarden
Rss:                4860 kB
Anonymous:             0 kB
5648c6bdf000-5648c6c4d000 r--p 00e7f000 fd:00 42 /usr/sbin/jailwarden
Rss:                 440 kB
Anonymous:           440 kB
5648c6c4d000-5648c6c54000 rw-p 00eed000 fd:00 42 /usr/sbin/jailwarden
Anonymous:            28 kB
5648e54f3000-5648e59da000 rw-p 00000000 00:00 0 [heap]
Anonymous:          2276 kB
7fe15d0ad000-7fe15d203000 r-xp 00028000 fd:00 7 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7fe15d256000-7fe15d25a000 r--p 001d8000 fd:00 7 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:            16 kB
7fe15cdec000-7fe15cdf4000 rw-s 00000000 fd:00 9 /var/lib/jailwarden/jailwarden.sqlite3-shm
Anonymous:             0 kB
7fe15c000000-7fe15c008000 r--s 00000000 fd:00 9 /var/lib/jailwarden/jailwarden.sqlite3-shm
Anonymous:             0 kB
7fe15a000000-7fe15a100000 r--s 00000000 fd:00 11 /var/log/journal/m/system.journal
Anonymous:             0 kB
7fe159000000-7fe159800000 r--s 00000000 fd:00 13 /var/log/journal/m/system@0006-0007.journal~
Anonymous:             0 kB
7fe15b000000-7fe15b001000 r--p 00000000 fd:00 12 /etc/ld.so.cache
Anonymous:             0 kB
";

    #[test]
    fn code_release_drops_only_clean_read_only_code_mappings() {
        let ranges = clean_file_mappings(SMAPS, "/usr/sbin/jailwarden", FilePages::Code);
        assert_eq!(
            ranges,
            vec![
                (0x5648c5d5f000, 0x5648c60c6000),
                (0x5648c60c6000, 0x5648c6bdf000),
                (0x7fe15d0ad000, 0x7fe15d203000),
            ],
            "text and clean read-only data of the binary and libraries only: \
             never RELRO (anonymous), data, heap, shared or other files"
        );
    }

    #[test]
    fn journal_release_drops_only_read_only_journal_files() {
        let ranges = clean_file_mappings(SMAPS, "/usr/sbin/jailwarden", FilePages::Journal);
        assert_eq!(
            ranges,
            vec![
                (0x7fe15a000000, 0x7fe15a100000),
                (0x7fe159000000, 0x7fe159800000),
            ],
            "the journal files sd-journal maps, active and archived: never \
             the store's shared memory (even mapped read-only) or code"
        );
    }
}
