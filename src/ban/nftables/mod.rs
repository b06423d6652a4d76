//! `backend = "nftables"`.

#[allow(dead_code)] // used by the backend, which comes next
mod netlink;
