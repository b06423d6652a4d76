//! Resolution of host names captured by `<HOST>`, for jails with
//! `usedns = "yes"` or `"warn"`: off the core's task, with a timeout and a
//! bounded cache, so a slow or hostile DNS server cannot stall decisions.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::core::PendingName;

const TIMEOUT: Duration = Duration::from_secs(3);
const TTL: Duration = Duration::from_secs(300);
const CACHE_CAP: usize = 4096;

type Cache = Arc<Mutex<HashMap<String, (Instant, Vec<IpAddr>)>>>;

/// Sends resolved names back to the core.
pub struct Resolver {
    tx: mpsc::Sender<(PendingName, Vec<IpAddr>)>,
    cache: Cache,
}

impl Resolver {
    /// Results go to `tx`.
    pub fn new(tx: mpsc::Sender<(PendingName, Vec<IpAddr>)>) -> Self {
        Resolver {
            tx,
            cache: Arc::default(),
        }
    }

    /// Resolve in the background; names that fail or time out come back
    /// with no address (logged), never retried in a loop.
    pub fn resolve(&self, p: PendingName) {
        if let Ok(cache) = self.cache.lock() {
            if let Some((at, addrs)) = cache.get(&p.name) {
                if at.elapsed() < TTL {
                    let (tx, addrs) = (self.tx.clone(), addrs.clone());
                    tokio::spawn(async move {
                        let _ = tx.send((p, addrs)).await;
                    });
                    return;
                }
            }
        }
        let tx = self.tx.clone();
        let cache = self.cache.clone();
        tokio::spawn(async move {
            let name = p.name.clone();
            let lookup = tokio::task::spawn_blocking(move || {
                (name.as_str(), 0)
                    .to_socket_addrs()
                    .map(|it| it.map(|sa| sa.ip()).collect::<Vec<_>>())
            });
            let addrs = match tokio::time::timeout(TIMEOUT, lookup).await {
                Ok(Ok(Ok(mut addrs))) => {
                    addrs.sort();
                    addrs.dedup();
                    addrs
                }
                Ok(Ok(Err(e))) => {
                    tracing::info!(host = p.name, "cannot resolve: {e}");
                    Vec::new()
                }
                _ => {
                    tracing::info!(host = p.name, "resolution timed out");
                    Vec::new()
                }
            };
            if let Ok(mut c) = cache.lock() {
                if c.len() >= CACHE_CAP {
                    c.clear();
                }
                c.insert(p.name.clone(), (Instant::now(), addrs.clone()));
            }
            // Also when nothing was found: the core forgets the name then.
            let _ = tx.send((p, addrs)).await;
        });
    }
}
