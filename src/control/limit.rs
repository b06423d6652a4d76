//! What reading costs, bounded: reading the API is open to every local
//! user, so no caller (nor all of them together) may make the daemon grow
//! without bound or keep it from its work.
//!
//! * Calls in flight: at most [`PER_PEER_CALLS`] per caller (a unique bus
//!   name, or a control-socket peer) and [`TOTAL_CALLS`] in all; more are
//!   refused at once (`LimitsExceeded`).
//! * Rows in flight: a call that answers many rows (ListBans and its
//!   paged form, ListBanDetails, History...) first takes one unit of
//!   [`ROW_BUDGET`] per [`ROWS_PER_UNIT`] rows it may answer, waits at
//!   most [`ROW_WAIT`] for them (first come, first served), and holds them
//!   until its reply has been written to the connection ([`Limited`]), so
//!   the rows being built, serialized or sent never exceed the budget.
//! * Memory is given back: when the last large answer is gone, the heap
//!   is trimmed (glibc `malloc_trim`), at most once a second.
//! * Each refusal is logged (INFO), at most one line per caller per
//!   [`LOG_EVERY`], with the count of those not logged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::info;
use zbus::Signature;
use zbus::message::Header;
use zbus::zvariant::Type;

use super::dbus::Transport;
use super::error::{CallError, Error};

/// Read calls one caller may have in flight.
pub const PER_PEER_CALLS: usize = 4;
/// Read calls in flight, all callers.
pub const TOTAL_CALLS: usize = 32;
/// Rows (bans, history rows, buckets) per unit of the row budget.
pub const ROWS_PER_UNIT: usize = 1_000;
/// Rows being answered at once, all callers, in units: 150,000 rows (one
/// largest unpaged answer and some pages; about 100 MB at the peak, see
/// units/jailwarden.service).
pub const ROW_BUDGET: usize = 150;
/// How long a call waits for its rows before it is refused.
pub const ROW_WAIT: Duration = Duration::from_secs(5);
/// At most one refusal line per caller this often.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// Callers whose refusals are counted separately; beyond, one line for all.
const LOG_PEERS: usize = 256;
/// Trim the heap after answers of at least this many units.
const TRIM_UNITS: u32 = 10;
/// And not more often than this.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// The limits of one daemon's control surfaces (the bus and the socket
/// share them).
#[derive(Clone)]
pub struct Limits(Arc<Inner>);

struct Inner {
    rows: Arc<Semaphore>,
    state: Mutex<State>,
    served: AtomicU64,
    refused: AtomicU64,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    per_peer: HashMap<String, usize>,
    /// Per caller: when its last refusal line was logged, and how many
    /// refusals since went unlogged.
    log: HashMap<String, (Instant, u64)>,
    large_in_flight: usize,
    trimmed: Option<Instant>,
    /// A trim is scheduled (the last was too recent).
    trim_pending: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new()
    }
}

impl Limits {
    pub fn new() -> Self {
        Limits(Arc::new(Inner {
            rows: Arc::new(Semaphore::new(ROW_BUDGET)),
            state: Mutex::new(State::default()),
            served: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the counts stand.
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (calls admitted, calls refused) so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.0.served.load(Ordering::Relaxed),
            self.0.refused.load(Ordering::Relaxed),
        )
    }

    /// Admit a read call of `method` that may answer up to `rows` rows,
    /// or refuse it (and log that, rate-limited).
    pub async fn admit(
        &self,
        transport: Transport,
        header: &Header<'_>,
        method: &str,
        rows: usize,
    ) -> Result<Permit, CallError> {
        let peer = peer_name(transport, header);
        {
            let mut st = self.state();
            let mine = st.per_peer.get(&peer).copied().unwrap_or(0);
            let why = if mine >= PER_PEER_CALLS {
                Some(format!(
                    "{PER_PEER_CALLS} calls of this caller are in flight; try again when one is answered"
                ))
            } else if st.in_flight >= TOTAL_CALLS {
                Some(format!(
                    "{TOTAL_CALLS} read calls are in flight; try again shortly"
                ))
            } else {
                None
            };
            if let Some(why) = why {
                drop(st);
                return Err(self.refuse(&peer, method, why));
            }
            st.in_flight += 1;
            *st.per_peer.entry(peer.clone()).or_default() += 1;
        }
        let mut permit = Permit {
            limits: self.clone(),
            peer,
            rows: None,
            units: 0,
        };
        let units = units_for(rows);
        if units == 0 {
            self.0.served.fetch_add(1, Ordering::Relaxed);
            return Ok(permit);
        }
        let acquire = self.0.rows.clone().acquire_many_owned(units);
        match tokio::time::timeout(ROW_WAIT, acquire).await {
            Ok(Ok(p)) => {
                permit.rows = Some(p);
                permit.units = units;
            }
            Ok(Err(_)) => return Err(Error::ShuttingDown("shutting down".into()).into()),
            Err(_) => {
                let why = format!(
                    "busy answering {} rows for others (at most {} at once); try again shortly",
                    (ROW_BUDGET - self.0.rows.available_permits()) * ROWS_PER_UNIT,
                    ROW_BUDGET * ROWS_PER_UNIT
                );
                return Err(self.refuse(&permit.peer, method, why));
            }
        }
        if units >= TRIM_UNITS {
            self.state().large_in_flight += 1;
        }
        self.0.served.fetch_add(1, Ordering::Relaxed);
        Ok(permit)
    }

    fn refuse(&self, peer: &str, method: &str, why: String) -> CallError {
        self.0.refused.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut st = self.state();
        if st.log.len() >= LOG_PEERS && !st.log.contains_key(peer) {
            st.log
                .retain(|_, (at, _)| now.duration_since(*at) < LOG_EVERY);
        }
        let key = if st.log.len() >= LOG_PEERS && !st.log.contains_key(peer) {
            "other callers"
        } else {
            peer
        };
        let line = match st.log.get_mut(key) {
            Some((at, unlogged)) if now.duration_since(*at) < LOG_EVERY => {
                *unlogged += 1;
                None
            }
            Some((at, unlogged)) => {
                let n = std::mem::take(unlogged);
                *at = now;
                Some(n)
            }
            None => {
                st.log.insert(key.to_string(), (now, 0));
                Some(0)
            }
        };
        drop(st);
        if let Some(unlogged) = line {
            let more = if unlogged > 0 {
                format!(
                    " ({unlogged} more refused from it in the last {} s, not logged)",
                    LOG_EVERY.as_secs()
                )
            } else {
                String::new()
            };
            info!("control: refused {method} from {key}: {why}{more}");
        }
        Error::LimitsExceeded(format!("{method} refused: {why}")).into()
    }

    fn release(&self, peer: &str, units: u32) {
        let trim = {
            let mut st = self.state();
            st.in_flight = st.in_flight.saturating_sub(1);
            if let Some(n) = st.per_peer.get_mut(peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    st.per_peer.remove(peer);
                }
            }
            if units >= TRIM_UNITS {
                st.large_in_flight = st.large_in_flight.saturating_sub(1);
                st.large_in_flight == 0
            } else {
                false
            }
        };
        if trim {
            self.trim();
        }
    }

    /// Trim now if the last trim is a second old, else a second after it
    /// (so the last large answer of a flood is always given back).
    fn trim(&self) {
        let wait = {
            let mut st = self.state();
            match st.trimmed.map(|t| t.elapsed()) {
                Some(e) if e < TRIM_EVERY => {
                    if st.trim_pending {
                        return;
                    }
                    st.trim_pending = true;
                    Some(TRIM_EVERY - e)
                }
                _ => {
                    st.trimmed = Some(Instant::now());
                    None
                }
            }
        };
        match wait {
            None => give_back_memory(),
            Some(wait) => {
                let Ok(rt) = tokio::runtime::Handle::try_current() else {
                    self.state().trim_pending = false;
                    return give_back_memory();
                };
                let limits = self.clone();
                rt.spawn(async move {
                    tokio::time::sleep(wait).await;
                    let due = {
                        let mut st = limits.state();
                        st.trim_pending = false;
                        let idle = st.large_in_flight == 0;
                        if idle {
                            st.trimmed = Some(Instant::now());
                        }
                        idle
                    };
                    if due {
                        give_back_memory();
                    }
                });
            }
        }
    }
}

/// Units of the row budget for an answer of up to `rows` rows: none for
/// none (ListJails, GetJail: they never wait behind large answers), else
/// one for the call and one per [`ROWS_PER_UNIT`] rows, at most the whole
/// budget.
fn units_for(rows: usize) -> u32 {
    if rows == 0 {
        return 0;
    }
    let units = (1 + rows.div_ceil(ROWS_PER_UNIT)).min(ROW_BUDGET);
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// Who is calling, for the per-caller limit and the log.
fn peer_name(transport: Transport, header: &Header<'_>) -> String {
    match transport {
        Transport::Bus => match header.sender() {
            Some(s) => format!("bus peer {s}"),
            None => "bus peer ?".to_string(),
        },
        Transport::Peer(cred) => {
            format!("socket peer pid {} uid {}", cred.pid, cred.uid)
        }
    }
}

/// Hand freed heap memory back to the system (glibc keeps it otherwise).
pub fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases glibc's free lists; it
    // takes the allocator's own locks and touches no memory of ours.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A call's admission: gives its place (and rows) back when dropped.
pub struct Permit {
    limits: Limits,
    peer: String,
    rows: Option<OwnedSemaphorePermit>,
    units: u32,
}

impl Drop for Permit {
    fn drop(&mut self) {
        // The rows go back first, then the call's place (and maybe a trim).
        drop(self.rows.take());
        self.limits.release(&self.peer, self.units);
    }
}

/// A reply that holds its call's [`Permit`] until it has been written to
/// the connection: zbus drops a method's return value only after sending
/// it. On the wire (and to proxies) it is just `T`.
pub struct Limited<T> {
    value: T,
    _permit: Option<Permit>,
}

impl<T> Limited<T> {
    /// `value`, answered under `permit`.
    pub fn new(value: T, permit: Permit) -> Self {
        Limited {
            value,
            _permit: Some(permit),
        }
    }

    /// The value (client side: what the daemon sent).
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> std::ops::Deref for Limited<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Limited<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl<T: Serialize> Serialize for Limited<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Limited<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Limited {
            value: T::deserialize(d)?,
            _permit: None,
        })
    }
}

impl<T: Type> Type for Limited<T> {
    const SIGNATURE: &'static Signature = T::SIGNATURE;
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::message::Message;

    fn call_from(sender: &str) -> Message {
        Message::method_call("/org/jailwarden1", "ListBans")
            .sender(sender)
            .build(&())
            .expect("a message")
    }

    #[tokio::test]
    async fn calls_are_capped_per_caller_and_in_all_and_come_back() {
        let limits = Limits::new();
        let a = call_from(":1.1");
        let mut held = Vec::new();
        for _ in 0..PER_PEER_CALLS {
            held.push(
                limits
                    .admit(Transport::Bus, &a.header(), "ListBans", 0)
                    .await
                    .ok(),
            );
        }
        assert!(held.iter().all(Option::is_some));
        let refused = limits
            .admit(Transport::Bus, &a.header(), "ListBans", 0)
            .await;
        let Err(CallError::Api(Error::LimitsExceeded(why))) = refused else {
            panic!("the caller's fifth call is refused");
        };
        assert!(why.contains("of this caller"), "{why}");
        // Others still get in, up to the total.
        let mut n = 2;
        while held.len() < TOTAL_CALLS {
            let m = call_from(&format!(":1.{n}"));
            held.push(
                limits
                    .admit(Transport::Bus, &m.header(), "History", 0)
                    .await
                    .ok(),
            );
            n += 1;
        }
        assert!(held.iter().all(Option::is_some));
        let m = call_from(":1.999");
        let Err(CallError::Api(Error::LimitsExceeded(why))) = limits
            .admit(Transport::Bus, &m.header(), "History", 0)
            .await
        else {
            panic!("beyond the total, calls are refused");
        };
        assert!(why.contains("in flight"), "{why}");
        assert_eq!(limits.counts(), (TOTAL_CALLS as u64, 2));
        // Answered calls give their places back.
        held.clear();
        assert!(
            limits
                .admit(Transport::Bus, &a.header(), "ListBans", 0)
                .await
                .is_ok()
        );
        assert!(
            limits.state().per_peer.is_empty(),
            "no caller is remembered once answered"
        );
    }

    #[tokio::test]
    async fn rows_wait_for_the_budget_and_are_held_by_the_reply() {
        let limits = Limits::new();
        let a = call_from(":1.1");
        let b = call_from(":1.2");
        let big = limits
            .admit(
                Transport::Bus,
                &a.header(),
                "ListBans",
                ROW_BUDGET * ROWS_PER_UNIT,
            )
            .await
            .ok();
        let reply = Limited::new(vec![1u32], big.expect("the whole budget"));
        // Nothing is left: a second large call waits, then gets in once the
        // first reply is gone.
        let b_header = b.header();
        let second = limits.admit(Transport::Bus, &b_header, "ListBans", 5_000);
        let release = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(reply.into_inner(), [1]);
        };
        let (second, ()) = tokio::join!(second, release);
        assert!(second.is_ok());
    }

    #[test]
    fn units_cover_the_rows_and_stop_at_the_budget() {
        assert_eq!(units_for(0), 0);
        assert_eq!(units_for(1), 2);
        assert_eq!(units_for(1_000), 2);
        assert_eq!(units_for(1_001), 3);
        assert_eq!(units_for(100_000), 101);
        assert_eq!(units_for(usize::MAX), ROW_BUDGET as u32);
    }
}
