//! SIGBUS from journal files cut short under the reader.
//!
//! sd-journal reads journal files through `mmap`. When a file shrinks
//! while mapped (journald truncating or replacing a file it owns, a
//! collector rewriting its output), touching a page past the new end
//! raises SIGBUS, whose default action kills the whole daemon. systemd's
//! own tools install a handler for this that libsystemd does not export;
//! this is the same remedy: the faulting page is replaced by a zero page,
//! the read goes on (sd-journal sees a broken object and says so), and the
//! reader, which checks [`faults`] after each journal call, drops what it
//! read since it last handed entries on and reopens the journal.
//!
//! Only threads that called [`guard_this_thread`] (the journal reader) are
//! covered: a SIGBUS anywhere else gets the default action, as before.

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

static FAULTS: AtomicU64 = AtomicU64::new(0);
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();

thread_local! {
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// SIGBUS faults absorbed so far (process-wide).
pub fn faults() -> u64 {
    FAULTS.load(Ordering::SeqCst)
}

/// Install the handler (once per process) and cover the calling thread.
pub fn guard_this_thread() {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if let Ok(page) = usize::try_from(page)
            && page.is_power_of_two()
        {
            PAGE.store(page, Ordering::SeqCst);
        }
        // SAFETY: a zeroed sigaction is a valid starting point; the handler
        // has the SA_SIGINFO signature and only does async-signal-safe work
        // (mmap, atomics, a const thread-local, signal).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) != 0 {
                tracing::warn!(
                    error = %std::io::Error::last_os_error(),
                    "cannot install the SIGBUS handler for journal files"
                );
            }
        }
    });
    GUARDED.with(|g| g.set(true));
}

extern "C" fn handler(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let guarded = GUARDED.try_with(Cell::get).unwrap_or(false);
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = if info.is_null() {
        0
    } else {
        unsafe { (*info).si_addr() as usize }
    };
    if guarded && addr != 0 {
        let page = PAGE.load(Ordering::Relaxed);
        let base = addr & !(page - 1);
        // SAFETY: replaces one page of a file mapping sd-journal owns (the
        // one that faulted) with anonymous zeros; sd-journal unmaps its
        // whole window later, which covers this page too.
        let r = unsafe {
            libc::mmap(
                base as *mut libc::c_void,
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if r != libc::MAP_FAILED {
            FAULTS.fetch_add(1, Ordering::SeqCst);
            return;
        }
    }
    // Not a journal read: the default action (the fault repeats on return).
    // SAFETY: signal() with SIG_DFL is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGBUS, libc::SIG_DFL);
    }
}
