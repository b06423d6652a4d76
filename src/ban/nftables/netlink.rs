//! The netlink messages rustables 0.9 cannot send, and the socket every
//! nftables message of jailwarden goes through.
//!
//! # What rustables lacks
//!
//! rustables builds tables, chains and rules well, and we use it for those
//! (see `layout.rs`). It cannot:
//!
//! - give a set element a timeout (`NFTA_SET_ELEM_TIMEOUT`), read back its
//!   timeout and expiration, or mark an element as the end of an interval
//!   (`NFTA_SET_ELEM_FLAGS` = `NFT_SET_ELEM_INTERVAL_END`): its `SetElement`
//!   has a key and nothing else;
//! - cap a set's size (`NFTA_SET_DESC` / `NFTA_SET_DESC_SIZE`);
//! - list a set's elements (`NFT_MSG_GETSETELEM` dump), look elements up by
//!   key, or read a set's element count (`NFTA_SET_COUNT`, Linux 6.16);
//! - delete an element that may already be gone (`NFT_MSG_DESTROYSETELEM`,
//!   Linux 6.3);
//! - say which message of a failed batch broke it: `Batch::send` stops at the
//!   first error and drops the extended ACK that points at the offending
//!   attribute, so a failed batch of 100,000 elements cannot name the one
//!   that did not fit.
//!
//! # Why not extend its types
//!
//! Its building blocks are crate-private: the `NfNetlinkObject` and
//! `NfNetlinkAttribute` traits live in a `pub(crate)` module, and the
//! `#[nfnetlink_struct]` macro expands to `crate::nlmsg::…` and
//! `crate::parser::…` paths (and reads rustables' own `OUT_DIR/sys.rs`), so
//! it only compiles inside rustables. No attribute can be added from outside.
//!
//! # What we did
//!
//! This module writes those few messages by hand on a raw `NETLINK_NETFILTER`
//! socket (rustix for the socket calls, libc for the two `SOL_NETLINK`
//! options rustix lacks), and reuses rustables' public pieces: the uapi
//! constants of [`rustables::sys`], and [`rustables::Batch::finalize`], whose
//! wire bytes let rustables' tables, chains and rules join our batches, so
//! one transaction can hold both. Every reply is parsed with bounds checks:
//! the kernel's bytes never index a slice unchecked.
//!
//! # Worth offering upstream
//!
//! `SetElement` with flags, timeout, expiration and key end; `Set` with a
//! `desc` (size); a `list_set_elements` dump and the `NFTA_SET_COUNT`
//! attribute; `NETLINK_EXT_ACK` in `recv_and_process`, returning the failing
//! sequence number and attribute offset; a public way to append raw messages
//! to a `Batch`; and making the `#[nfnetlink_struct]` expansion use
//! `::rustables::` paths so other crates can define attributes.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustables::sys as nf;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, netlink, sockopt};

/// `NFT_MSG_DESTROYSETELEM` (Linux 6.3): delete, and no ENOENT when absent.
/// Newer than the uapi headers rustables' constants are generated from.
pub(crate) const NFT_MSG_DESTROYSETELEM: u16 = 30;
/// `NFTA_SET_COUNT` (Linux 6.16): number of elements, in set replies.
pub(crate) const NFTA_SET_COUNT: u16 = 20;

/// Netlink and nfnetlink header sizes (both already 4-byte aligned).
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLA_HDRLEN: usize = 4;
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = !(3 << 14);
/// Reply flags of extended ACKs (`include/uapi/linux/netlink.h`).
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
/// nf_tables' value of `nfgenmsg.version`.
const NFNETLINK_V0: u8 = 0;

/// Largest payload we put in one `NFTA_SET_ELEM_LIST_ELEMENTS` nest: the
/// nest's length field is 16 bits, so one message carries at most 64 KiB of
/// elements; nft itself stays well below that too.
pub(crate) const ELEMS_PER_MSG_BYTES: usize = 48 * 1024;

/// Receive buffer for replies: dump messages are at most 32 KiB (the
/// kernel caps them there); lookups take up to 1024 small replies at once.
const RECV_BUF: usize = 1024 * 1024;
/// Socket buffers we ask for with `SO_*BUFFORCE` (needs CAP_NET_ADMIN,
/// which we need anyway): a whole batch must go in one `send`, and the
/// replies to a keyed lookup all queue up before we read them.
const WANT_SNDBUF: usize = 256 << 20;
const WANT_RCVBUF: usize = 32 << 20;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Why a netlink exchange failed, as seen by this module. The backend maps
/// it to [`crate::ban::BanError`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum NlError {
    /// `socket(AF_NETLINK, …, NETLINK_NETFILTER)` or its setup failed.
    #[error("cannot open a netfilter netlink socket: {0}")]
    Open(#[source] io::Error),
    /// `send` failed (EMSGSIZE when a batch exceeds the socket buffer).
    #[error("cannot send to the kernel: {0}")]
    Send(#[source] io::Error),
    /// `recv` failed (ENOBUFS when replies were lost).
    #[error("cannot receive from the kernel: {0}")]
    Recv(#[source] io::Error),
    /// The kernel refused a message.
    #[error("the kernel refused {what}: {source}{}", kernel_msg.as_ref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kernel {
        /// The message's label, e.g. `add elements to set sshd-v4`.
        what: String,
        /// The caller's id of the element the kernel pointed at, if any.
        element: Option<u32>,
        /// The kernel's extended-ACK text, if it gave one.
        kernel_msg: Option<String>,
        #[source]
        source: io::Error,
    },
    /// A reply did not parse.
    #[error("malformed netlink reply: {0}")]
    Malformed(&'static str),
    /// A dump kept being interrupted by concurrent changes.
    #[error("the dump was interrupted by concurrent ruleset changes")]
    Interrupted,
    /// A batch got neither an error nor the acknowledgement of its last
    /// message.
    #[error("the kernel did not acknowledge the batch")]
    NoAck,
}

impl NlError {
    /// The errno of a kernel refusal.
    pub(crate) fn errno(&self) -> Option<i32> {
        match self {
            NlError::Kernel { source, .. } => source.raw_os_error(),
            NlError::Open(e) | NlError::Send(e) | NlError::Recv(e) => e.raw_os_error(),
            _ => None,
        }
    }
}

/// Writes netlink messages and attributes into one buffer. nfnetlink puts
/// headers in host order and attribute values in network order.
#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

/// A nest being written: where its header is.
#[must_use]
pub(crate) struct Nest(usize);

impl Writer {
    fn begin(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by `end`
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        self.buf.push(family);
        self.buf.push(NFNETLINK_V0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        start
    }

    fn end(&mut self, start: usize) {
        let len = u32::try_from(self.buf.len() - start).unwrap_or(u32::MAX);
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// An attribute with raw bytes.
    pub(crate) fn put(&mut self, ty: u16, data: &[u8]) {
        let len = u16::try_from(NLA_HDRLEN + data.len())
            .expect("attributes are small: keys, names and numbers");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    pub(crate) fn put_u32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }

    pub(crate) fn put_u64(&mut self, ty: u16, v: u64) {
        self.put(ty, &v.to_be_bytes());
    }

    /// A NUL-terminated string, as nft sends names.
    pub(crate) fn put_str(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.put(ty, &v);
    }

    pub(crate) fn nest(&mut self, ty: u16) -> Nest {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        Nest(at)
    }

    pub(crate) fn end_nest(&mut self, nest: Nest) {
        let len = u16::try_from(self.buf.len() - nest.0)
            .expect("element lists are split below 64 KiB (ELEMS_PER_MSG_BYTES)");
        self.buf[nest.0..nest.0 + 2].copy_from_slice(&len.to_ne_bytes());
    }
}

/// What one message of a batch is, for error reports.
struct MsgInfo {
    label: String,
    /// Offset of this message in the batch buffer.
    start: usize,
    /// For element messages: (offset of the element's attribute within the
    /// message, caller's element id), in order.
    elements: Vec<(u32, u32)>,
}

/// Messages to be applied in one transaction: all of them or none.
pub(crate) struct Batch {
    w: Writer,
    seq0: u32,
    msgs: Vec<MsgInfo>,
}

/// One set element to add or delete. `id` is the caller's, returned when
/// the kernel refuses this element.
pub(crate) struct ElemOut {
    pub id: u32,
    /// Key bytes in `key[..key_len]` (4 for IPv4, 16 for IPv6, 2 for ports).
    pub key: [u8; 16],
    pub key_len: u8,
    /// `NFT_SET_ELEM_INTERVAL_END` or 0.
    pub flags: u32,
    /// Milliseconds; `None` for no timeout attribute (never expires).
    pub timeout_ms: Option<u64>,
}

impl ElemOut {
    /// Copy up to 16 key bytes into the fixed buffer.
    pub(crate) fn key_from(bytes: &[u8]) -> ([u8; 16], u8) {
        let mut key = [0u8; 16];
        let n = bytes.len().min(16);
        key[..n].copy_from_slice(&bytes[..n]);
        (key, n as u8)
    }
}

/// The object kinds rustables may contribute to a batch. rustables' object
/// trait is crate-private, so we cannot be generic over it.
pub(crate) enum RsObject<'a> {
    Table(&'a rustables::Table),
    Chain(&'a rustables::Chain),
    Rule(&'a rustables::Rule),
}

impl Batch {
    /// A batch whose messages are numbered from `seq0` (the batch-begin
    /// message) upwards.
    pub(crate) fn new(seq0: u32) -> Batch {
        let mut w = Writer::default();
        let s = w.begin(
            nf::NFNL_MSG_BATCH_BEGIN as u16,
            nf::NLM_F_REQUEST as u16,
            seq0,
            libc::AF_UNSPEC as u8,
            nf::NFNL_SUBSYS_NFTABLES as u16,
        );
        w.end(s);
        Batch {
            w,
            seq0,
            msgs: Vec::new(),
        }
    }

    /// Bytes so far.
    pub(crate) fn bytes(&self) -> usize {
        self.w.len()
    }

    fn next_seq(&self) -> u32 {
        self.seq0
            .wrapping_add(1)
            .wrapping_add(self.msgs.len() as u32)
    }

    /// A message of ours: nftables message type `op`, attributes written by
    /// `body`.
    pub(crate) fn message(
        &mut self,
        op: u16,
        flags: u16,
        family: u8,
        label: impl Into<String>,
        body: impl FnOnce(&mut Writer),
    ) {
        let seq = self.next_seq();
        let start = self.w.begin(
            ((nf::NFNL_SUBSYS_NFTABLES as u16) << 8) | op,
            nf::NLM_F_REQUEST as u16 | flags,
            seq,
            family,
            0,
        );
        body(&mut self.w);
        self.w.end(start);
        self.msgs.push(MsgInfo {
            label: label.into(),
            start,
            elements: Vec::new(),
        });
    }

    /// A rustables object, added (`MsgType::Add`) or deleted. rustables
    /// writes it into a batch of its own; we lift the one message out of
    /// those wire bytes and renumber it.
    pub(crate) fn rustables(
        &mut self,
        obj: RsObject<'_>,
        ty: rustables::MsgType,
        label: impl Into<String>,
    ) -> Result<(), NlError> {
        let mut rb = rustables::Batch::new();
        match obj {
            RsObject::Table(t) => rb.add(t, ty),
            RsObject::Chain(c) => rb.add(c, ty),
            RsObject::Rule(r) => rb.add(r, ty),
        }
        let bytes = rb.finalize();
        // [batch begin][our object][batch end]
        let mut msgs = Messages::new(&bytes);
        let _begin = msgs.next().ok_or(NlError::Malformed("rustables batch"))??;
        let obj_msg = msgs.next().ok_or(NlError::Malformed("rustables batch"))??;
        let seq = self.next_seq();
        let start = self.w.len();
        self.w.buf.extend_from_slice(obj_msg.raw);
        self.w.buf[start + 8..start + 12].copy_from_slice(&seq.to_ne_bytes());
        self.w.buf.resize(align4(self.w.buf.len()), 0);
        self.msgs.push(MsgInfo {
            label: label.into(),
            start,
            elements: Vec::new(),
        });
        Ok(())
    }

    /// Set elements for `op` (`NFT_MSG_NEWSETELEM`, `…DELSETELEM`,
    /// `NFT_MSG_DESTROYSETELEM`), split over as many messages as their size
    /// needs. `set_id` names a set created earlier in the same batch.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn elements(
        &mut self,
        op: u16,
        flags: u16,
        table: &str,
        set: &str,
        set_id: Option<u32>,
        label: &str,
        elems: impl IntoIterator<Item = ElemOut>,
    ) {
        let mut it = elems.into_iter().peekable();
        while it.peek().is_some() {
            let seq = self.next_seq();
            let start = self.w.begin(
                ((nf::NFNL_SUBSYS_NFTABLES as u16) << 8) | op,
                nf::NLM_F_REQUEST as u16 | flags,
                seq,
                libc::NFPROTO_INET as u8,
                0,
            );
            self.w.put_str(nf::NFTA_SET_ELEM_LIST_TABLE, table);
            self.w.put_str(nf::NFTA_SET_ELEM_LIST_SET, set);
            if let Some(id) = set_id {
                self.w.put_u32(nf::NFTA_SET_ELEM_LIST_SET_ID, id);
            }
            let list = self.w.nest(nf::NFTA_SET_ELEM_LIST_ELEMENTS);
            let list_start = self.w.len();
            let mut ids = Vec::new();
            while let Some(e) = it.next_if(|_| self.w.len() - list_start < ELEMS_PER_MSG_BYTES) {
                ids.push(((self.w.len() - start) as u32, e.id));
                write_element(&mut self.w, &e);
            }
            self.w.end_nest(list);
            self.w.end(start);
            self.msgs.push(MsgInfo {
                label: format!("{label} (set {set})"),
                start,
                elements: ids,
            });
        }
    }

    /// Close the batch: the last message asks for an acknowledgement, which
    /// tells us the kernel has processed everything.
    pub(crate) fn finish(mut self) -> Finished {
        if let Some(last) = self.msgs.last() {
            let at = last.start + 6;
            let mut flags = u16::from_ne_bytes([self.w.buf[at], self.w.buf[at + 1]]);
            flags |= nf::NLM_F_ACK as u16;
            self.w.buf[at..at + 2].copy_from_slice(&flags.to_ne_bytes());
        }
        let seq = self.next_seq();
        let s = self.w.begin(
            nf::NFNL_MSG_BATCH_END as u16,
            nf::NLM_F_REQUEST as u16,
            seq,
            libc::AF_UNSPEC as u8,
            nf::NFNL_SUBSYS_NFTABLES as u16,
        );
        self.w.end(s);
        Finished {
            bytes: self.w.buf,
            seq0: self.seq0,
            msgs: self.msgs,
        }
    }
}

fn write_element(w: &mut Writer, e: &ElemOut) {
    let el = w.nest(nf::NFTA_LIST_ELEM);
    let key = w.nest(nf::NFTA_SET_ELEM_KEY);
    w.put(
        nf::NFTA_DATA_VALUE,
        &e.key[..usize::from(e.key_len).min(16)],
    );
    w.end_nest(key);
    if e.flags != 0 {
        w.put_u32(nf::NFTA_SET_ELEM_FLAGS, e.flags);
    }
    if let Some(t) = e.timeout_ms {
        w.put_u64(nf::NFTA_SET_ELEM_TIMEOUT, t);
    }
    w.end_nest(el);
}

/// A closed batch, ready to send.
pub(crate) struct Finished {
    bytes: Vec<u8>,
    seq0: u32,
    msgs: Vec<MsgInfo>,
}

impl Finished {
    fn last_seq(&self) -> u32 {
        self.seq0.wrapping_add(self.msgs.len() as u32)
    }

    /// Turn a kernel error for message `seq` into an [`NlError::Kernel`]
    /// naming the message and, through the extended ACK's attribute offset,
    /// the element.
    fn describe(&self, err: &ErrReply) -> NlError {
        let idx = err.seq.wrapping_sub(self.seq0).wrapping_sub(1) as usize;
        let (what, element) = match self.msgs.get(idx) {
            Some(m) => {
                let element = err.offset.and_then(|off| {
                    // The offending attribute is the element starting at
                    // `off`, or (for an attribute inside it) the last element
                    // starting before it.
                    m.elements
                        .iter()
                        .take_while(|(o, _)| *o <= off)
                        .last()
                        .map(|(_, id)| *id)
                });
                (m.label.clone(), element)
            }
            None if err.seq == self.seq0 => ("the batch".to_string(), None),
            None => (format!("message {}", err.seq), None),
        };
        NlError::Kernel {
            what,
            element,
            kernel_msg: err.msg.clone(),
            source: io::Error::from_raw_os_error(err.errno),
        }
    }
}

/// One netlink message in a buffer.
pub(crate) struct Msg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    /// After the netlink header (for nftables messages: nfgenmsg first).
    pub payload: &'a [u8],
    raw: &'a [u8],
}

impl<'a> Msg<'a> {
    /// The attributes of an nftables message (after its nfgenmsg).
    pub(crate) fn attrs(&self) -> Result<Attrs<'a>, NlError> {
        self.payload
            .get(NFGENMSG_LEN..)
            .map(Attrs::new)
            .ok_or(NlError::Malformed("short nftables message"))
    }
}

/// Iterates over the netlink messages of a datagram.
pub(crate) struct Messages<'a> {
    buf: &'a [u8],
}

impl<'a> Messages<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Messages { buf }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Msg<'a>, NlError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len < NLMSG_HDRLEN || len > self.buf.len() {
            self.buf = &[];
            return Some(Err(NlError::Malformed("netlink message length")));
        }
        let raw = &self.buf[..len];
        let msg = Msg {
            ty: u16::from_ne_bytes([raw[4], raw[5]]),
            flags: u16::from_ne_bytes([raw[6], raw[7]]),
            seq: u32::from_ne_bytes([raw[8], raw[9], raw[10], raw[11]]),
            payload: &raw[NLMSG_HDRLEN..],
            raw,
        };
        self.buf = self.buf.get(align4(len)..).unwrap_or(&[]);
        Some(Ok(msg))
    }
}

/// Iterates over netlink attributes: `(type, payload)`, the nested flag and
/// byte-order flag masked off. Stops at the first malformed attribute.
#[derive(Clone)]
pub(crate) struct Attrs<'a> {
    buf: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Attrs { buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.len() < NLA_HDRLEN {
            return None;
        }
        let len = u16::from_ne_bytes([self.buf[0], self.buf[1]]) as usize;
        let ty = u16::from_ne_bytes([self.buf[2], self.buf[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > self.buf.len() {
            self.buf = &[];
            return None;
        }
        let payload = &self.buf[NLA_HDRLEN..len];
        self.buf = self.buf.get(align4(len)..).unwrap_or(&[]);
        Some((ty, payload))
    }
}

/// A big-endian u32 attribute value.
pub(crate) fn be_u32(p: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(p.get(..4)?.try_into().ok()?))
}

/// A big-endian u64 attribute value.
pub(crate) fn be_u64(p: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(p.get(..8)?.try_into().ok()?))
}

/// A string attribute value (NUL-terminated or not).
pub(crate) fn string(p: &[u8]) -> String {
    let p = p.strip_suffix(&[0]).unwrap_or(p);
    String::from_utf8_lossy(p).into_owned()
}

/// An `NLMSG_ERROR` reply: an error, or (errno 0) an acknowledgement.
#[derive(Debug, Clone)]
struct ErrReply {
    seq: u32,
    errno: i32,
    /// Extended ACK: offset of the offending attribute in our message.
    offset: Option<u32>,
    /// Extended ACK: the kernel's explanation.
    msg: Option<String>,
}

fn parse_error(m: &Msg<'_>) -> Result<ErrReply, NlError> {
    let p = m.payload;
    let code = p
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(NlError::Malformed("short error message"))?;
    let mut reply = ErrReply {
        seq: m.seq,
        errno: code.saturating_abs(),
        offset: None,
        msg: None,
    };
    if m.flags & NLM_F_ACK_TLVS != 0 {
        // nlmsgerr = error code + the header of our message (+ our payload
        // unless the reply is capped), then the TLVs.
        let orig_len = p
            .get(4..8)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or(NlError::Malformed("short error message"))?;
        let tlv_at = if m.flags & NLM_F_CAPPED != 0 {
            4 + NLMSG_HDRLEN
        } else {
            4 + align4(orig_len)
        };
        for (ty, v) in Attrs::new(p.get(tlv_at..).unwrap_or(&[])) {
            match ty as u32 {
                x if x == nf::NLMSGERR_ATTR_MSG => reply.msg = Some(string(v)),
                x if x == nf::NLMSGERR_ATTR_OFFS => {
                    reply.offset = v
                        .get(..4)
                        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                }
                _ => {}
            }
        }
    }
    Ok(reply)
}

/// A set element as the kernel reports it (borrowing the reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ElemIn<'a> {
    pub key: &'a [u8],
    pub flags: u32,
    /// The element's timeout (ms), absent when it never expires.
    pub timeout_ms: Option<u64>,
    /// Time left (ms) when the kernel wrote the reply.
    pub expires_ms: Option<u64>,
}

/// Parse the elements of one `NFT_MSG_NEWSETELEM` message (dump or get
/// reply) and pass them to `f`.
pub(crate) fn parse_elements<'a>(
    m: &Msg<'a>,
    f: &mut dyn FnMut(ElemIn<'a>),
) -> Result<(), NlError> {
    for (ty, v) in m.attrs()? {
        if ty != nf::NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for (ty, el) in Attrs::new(v) {
            if ty != nf::NFTA_LIST_ELEM {
                continue;
            }
            let mut e = ElemIn {
                key: &[],
                flags: 0,
                timeout_ms: None,
                expires_ms: None,
            };
            for (ty, v) in Attrs::new(el) {
                match ty {
                    nf::NFTA_SET_ELEM_KEY => {
                        for (ty, d) in Attrs::new(v) {
                            if ty == nf::NFTA_DATA_VALUE {
                                e.key = d;
                            }
                        }
                    }
                    nf::NFTA_SET_ELEM_FLAGS => e.flags = be_u32(v).unwrap_or(0),
                    nf::NFTA_SET_ELEM_TIMEOUT => e.timeout_ms = be_u64(v),
                    nf::NFTA_SET_ELEM_EXPIRATION => e.expires_ms = be_u64(v),
                    _ => {}
                }
            }
            if e.key.is_empty() && e.flags & nf::NFT_SET_ELEM_CATCHALL == 0 {
                return Err(NlError::Malformed("set element without a key"));
            }
            f(e);
        }
    }
    Ok(())
}

/// Answer to one keyed lookup request.
enum LookupStop {
    /// Every key of the request was found.
    AllFound,
    /// The key at this index of the request is not in the set; the kernel
    /// stopped there.
    Missing(usize),
    /// The kernel stopped before this index for another reason (replies
    /// dropped on a full socket buffer): ask again from there.
    Resume(usize),
}

/// The netfilter netlink socket.
pub(crate) struct Socket {
    fd: OwnedFd,
    seq: u32,
    /// The receive buffer, allocated when a reply is read and dropped by
    /// [`Socket::release_buffer`] (an idle daemon need not keep 1 MiB).
    rbuf: Vec<u8>,
    /// Largest batch one `send` takes (the socket's send buffer).
    max_send: usize,
    /// Receive buffer size, to size lookup requests.
    rcvbuf: usize,
}

impl Socket {
    /// Open and configure the socket: extended ACKs (which element broke a
    /// batch), capped ACKs (errors do not echo our 64 KiB messages back),
    /// and large buffers.
    pub(crate) fn open() -> Result<Socket, NlError> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            Some(netlink::NETFILTER),
        )
        .map_err(|e| NlError::Open(e.into()))?;
        rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, 0))
            .map_err(|e| NlError::Open(e.into()))?;
        // Both options are best effort: without them errors name the
        // message but not the element, and echo our payload.
        let _ = set_netlink_opt(&fd, libc::NETLINK_EXT_ACK, 1);
        let _ = set_netlink_opt(&fd, libc::NETLINK_CAP_ACK, 1);
        if sockopt::set_socket_send_buffer_size_force(&fd, WANT_SNDBUF).is_err() {
            let _ = sockopt::set_socket_send_buffer_size(&fd, WANT_SNDBUF);
        }
        if sockopt::set_socket_recv_buffer_size_force(&fd, WANT_RCVBUF).is_err() {
            let _ = sockopt::set_socket_recv_buffer_size(&fd, WANT_RCVBUF);
        }
        // netlink_sendmsg refuses datagrams longer than sk_sndbuf - 32.
        let max_send = sockopt::socket_send_buffer_size(&fd)
            .unwrap_or(212_992)
            .saturating_sub(64);
        let rcvbuf = sockopt::socket_recv_buffer_size(&fd).unwrap_or(212_992);
        Ok(Socket {
            fd,
            seq: std::process::id().wrapping_mul(7919),
            rbuf: Vec::new(),
            max_send,
            rcvbuf,
        })
    }

    /// Largest batch (bytes) one transaction can carry on this socket.
    pub(crate) fn max_batch_bytes(&self) -> usize {
        self.max_send
    }

    /// A fresh sequence number range of `n`.
    pub(crate) fn seqs(&mut self, n: u32) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(n.max(1));
        s
    }

    /// A new batch, numbered from a fresh sequence number.
    pub(crate) fn batch(&mut self) -> Batch {
        // Sequence numbers are only compared for equality; leave room for
        // a million messages.
        let seq0 = self.seqs(1 << 20);
        Batch::new(seq0)
    }

    /// Give the receive buffer back; the next read allocates it again.
    pub(crate) fn release_buffer(&mut self) {
        self.rbuf = Vec::new();
    }

    /// The receive buffer, taken out of the socket (put it back after).
    fn take_buf(&mut self) -> Vec<u8> {
        let buf = std::mem::take(&mut self.rbuf);
        if buf.len() == RECV_BUF {
            buf
        } else {
            vec![0; RECV_BUF]
        }
    }

    fn recv(&mut self, flags: RecvFlags) -> io::Result<usize> {
        if self.rbuf.len() != RECV_BUF {
            self.rbuf = vec![0; RECV_BUF];
        }
        loop {
            match rustix::net::recv(&self.fd, &mut self.rbuf[..], flags) {
                Ok((_, n)) => return Ok(n),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Send a batch and wait for the kernel's verdict: Ok when it committed,
    /// else the first error, naming the message and element it is about.
    ///
    /// nfnetlink processes a batch synchronously inside `send`, so by the
    /// time `send` returns every reply is queued on the socket; we drain it
    /// without blocking. (Blocking for the last message's ACK could hang:
    /// a batch refused as a whole, e.g. for lack of CAP_NET_ADMIN, gets one
    /// error for its begin message and nothing else.)
    pub(crate) fn commit(&mut self, batch: Finished) -> Result<(), NlError> {
        if batch.msgs.is_empty() {
            return Ok(());
        }
        self.drain_stale();
        match rustix::net::send(&self.fd, &batch.bytes, SendFlags::empty()) {
            Ok(_) => {}
            Err(e) => return Err(NlError::Send(e.into())),
        }
        let last = batch.last_seq();
        let mut acked = false;
        let mut first_err: Option<ErrReply> = None;
        let mut lost: Option<io::Error> = None;
        loop {
            let n = match self.recv(RecvFlags::DONTWAIT) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    lost = Some(e);
                    continue;
                }
                Err(e) => return Err(NlError::Recv(e)),
            };
            for m in Messages::new(&self.rbuf[..n]) {
                let m = m?;
                if m.ty != libc::NLMSG_ERROR as u16 {
                    continue;
                }
                let r = parse_error(&m)?;
                if r.seq.wrapping_sub(batch.seq0) > last.wrapping_sub(batch.seq0) {
                    continue; // not ours
                }
                if r.errno == 0 {
                    acked |= r.seq == last;
                } else if first_err
                    .as_ref()
                    .is_none_or(|f| r.seq.wrapping_sub(batch.seq0) < f.seq.wrapping_sub(batch.seq0))
                {
                    first_err = Some(r);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(batch.describe(&e));
        }
        if let Some(e) = lost {
            return Err(NlError::Recv(e));
        }
        if acked { Ok(()) } else { Err(NlError::NoAck) }
    }

    /// Throw away replies left over from an earlier exchange that returned
    /// early, so they are not taken for replies to the next one.
    fn drain_stale(&mut self) {
        while let Ok(n) = self.recv(RecvFlags::DONTWAIT) {
            if n == 0 {
                break;
            }
        }
    }

    /// Run a dump request (`NLM_F_DUMP`) of nftables message type `op` and
    /// pass every reply message to `each`. Returns
    /// [`NlError::Interrupted`] when the ruleset changed during the dump
    /// (the caller starts over).
    pub(crate) fn dump(
        &mut self,
        op: u16,
        family: u8,
        body: impl FnOnce(&mut Writer),
        each: &mut dyn FnMut(&Msg<'_>) -> Result<(), NlError>,
    ) -> Result<(), NlError> {
        self.drain_stale();
        let seq = self.seqs(1);
        let mut w = Writer::default();
        let s = w.begin(
            ((nf::NFNL_SUBSYS_NFTABLES as u16) << 8) | op,
            (nf::NLM_F_REQUEST | nf::NLM_F_DUMP) as u16,
            seq,
            family,
            0,
        );
        body(&mut w);
        w.end(s);
        rustix::net::send(&self.fd, &w.buf, SendFlags::empty())
            .map_err(|e| NlError::Send(e.into()))?;
        let mut interrupted = false;
        loop {
            let n = self.recv(RecvFlags::empty()).map_err(NlError::Recv)?;
            if n == 0 {
                return Err(NlError::Malformed("end of file on netlink socket"));
            }
            let buf = self.take_buf();
            let r = (|| {
                for m in Messages::new(&buf[..n]) {
                    let m = m?;
                    if m.seq != seq {
                        continue;
                    }
                    if m.flags & nf::NLM_F_DUMP_INTR as u16 != 0 {
                        interrupted = true;
                    }
                    match m.ty as i32 {
                        libc::NLMSG_DONE => return Ok(true),
                        libc::NLMSG_ERROR => {
                            let e = parse_error(&m)?;
                            if e.errno != 0 {
                                return Err(NlError::Kernel {
                                    what: "a listing".into(),
                                    element: None,
                                    kernel_msg: e.msg,
                                    source: io::Error::from_raw_os_error(e.errno),
                                });
                            }
                        }
                        libc::NLMSG_NOOP => {}
                        _ => each(&m)?,
                    }
                }
                Ok(false)
            })();
            self.rbuf = buf;
            match r {
                Ok(true) if interrupted => return Err(NlError::Interrupted),
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    // Leave no half-read dump behind for the next request.
                    self.abandon_dump();
                    return Err(e);
                }
            }
        }
    }

    /// Read and drop the rest of a dump we gave up on.
    fn abandon_dump(&mut self) {
        for _ in 0..1_000_000 {
            let Ok(n) = self.recv(RecvFlags::DONTWAIT) else {
                return;
            };
            let done = Messages::new(&self.rbuf[..n])
                .flatten()
                .any(|m| m.ty as i32 == libc::NLMSG_DONE || m.ty as i32 == libc::NLMSG_ERROR);
            if n == 0 || done {
                return;
            }
        }
    }

    /// Look elements of a (non-interval) set up by key: `key_at(i)` gives
    /// the i-th of `n` keys; `found(i, element)` gets every element present.
    /// Keys without an element are skipped.
    ///
    /// nf_tables answers a `NFT_MSG_GETSETELEM` request (not a dump) with
    /// one message per key and stops at the first key it does not find,
    /// pointing at it with the extended ACK; we carry on after it. This reads
    /// back n known elements in O(n), where a dump of a set of n elements
    /// costs O(n²) (the kernel restarts its walk for every 32 KiB reply).
    pub(crate) fn lookup(
        &mut self,
        table: &str,
        set: &str,
        n: usize,
        key_at: &dyn Fn(usize) -> ([u8; 16], u8),
        found: &mut dyn FnMut(usize, ElemIn<'_>),
    ) -> Result<(), NlError> {
        // Every reply is its own ~4 KiB socket buffer; a request must not
        // ask for more replies than the receive buffer holds. Beyond a few
        // hundred, bigger requests only cost more (measured: 2.33 s of
        // kernel time per million keys at 256, 2.53 s at 2048).
        let max_chunk = (self.rcvbuf / 6000).clamp(8, 256);
        let mut chunk = max_chunk;
        let mut at = 0;
        while at < n {
            let end = (at + chunk).min(n);
            match self.lookup_once(table, set, at..end, key_at, found)? {
                LookupStop::AllFound => {
                    at = end;
                    chunk = (chunk * 2).min(max_chunk);
                }
                LookupStop::Missing(i) => {
                    at += i + 1;
                    // Misses come in runs (a flushed set, a new batch of
                    // bans): ask for less at a time while they do.
                    chunk = (chunk / 2).max(8);
                }
                LookupStop::Resume(i) => {
                    at += i;
                    chunk = (chunk / 2).max(1);
                }
            }
        }
        Ok(())
    }

    fn lookup_once(
        &mut self,
        table: &str,
        set: &str,
        range: std::ops::Range<usize>,
        key_at: &dyn Fn(usize) -> ([u8; 16], u8),
        found: &mut dyn FnMut(usize, ElemIn<'_>),
    ) -> Result<LookupStop, NlError> {
        self.drain_stale();
        let seq = self.seqs(1);
        let keys: Vec<([u8; 16], u8)> = range.clone().map(key_at).collect();
        let mut w = Writer::default();
        let s = w.begin(
            ((nf::NFNL_SUBSYS_NFTABLES as u16) << 8) | nf::NFT_MSG_GETSETELEM as u16,
            (nf::NLM_F_REQUEST | nf::NLM_F_ACK) as u16,
            seq,
            libc::NFPROTO_INET as u8,
            0,
        );
        w.put_str(nf::NFTA_SET_ELEM_LIST_TABLE, table);
        w.put_str(nf::NFTA_SET_ELEM_LIST_SET, set);
        let list = w.nest(nf::NFTA_SET_ELEM_LIST_ELEMENTS);
        let mut offsets = Vec::with_capacity(keys.len());
        for (k, len) in &keys {
            offsets.push((w.len() - s) as u32);
            let el = w.nest(nf::NFTA_LIST_ELEM);
            let key = w.nest(nf::NFTA_SET_ELEM_KEY);
            w.put(nf::NFTA_DATA_VALUE, &k[..usize::from(*len).min(16)]);
            w.end_nest(key);
            w.end_nest(el);
        }
        w.end_nest(list);
        w.end(s);
        rustix::net::send(&self.fd, &w.buf, SendFlags::empty())
            .map_err(|e| NlError::Send(e.into()))?;

        // Replies come in request order; `next` is the key we expect.
        let key_of = |i: usize| &keys[i].0[..usize::from(keys[i].1).min(16)];
        let mut answered = vec![false; keys.len()];
        let mut next = 0;
        let mut stop = None;
        let mut lost = false;
        // The kernel answered synchronously inside `send`: drain, many
        // datagrams per system call.
        let mut buf = self.take_buf();
        let result = loop {
            let lens = match recv_many(&self.fd, &mut buf) {
                Ok(l) => l,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    lost = true;
                    continue;
                }
                Err(e) => break Err(NlError::Recv(e)),
            };
            let r = (|| {
                for (slot, len) in lens.iter().enumerate() {
                    let dgram = &buf[slot * RECV_SLOT..slot * RECV_SLOT + len];
                    for m in Messages::new(dgram) {
                        let m = m?;
                        if m.seq != seq {
                            continue;
                        }
                        if m.ty as i32 == libc::NLMSG_ERROR {
                            stop = Some(parse_error(&m)?);
                            continue;
                        }
                        parse_elements(&m, &mut |e| {
                            let i = if next < keys.len() && key_of(next) == e.key {
                                Some(next)
                            } else {
                                (0..keys.len()).find(|&i| key_of(i) == e.key)
                            };
                            if let Some(i) = i {
                                answered[i] = true;
                                next = i + 1;
                                found(range.start + i, e);
                            }
                        })?;
                    }
                }
                Ok::<(), NlError>(())
            })();
            if let Err(e) = r {
                break Err(e);
            }
        };
        self.rbuf = buf;
        result?;
        let first_unanswered = answered.iter().position(|a| !a).unwrap_or(keys.len());
        match stop {
            Some(e) if e.errno == 0 => Ok(LookupStop::AllFound),
            Some(e) if e.errno == libc::ENOENT => {
                let at = e
                    .offset
                    .and_then(|off| offsets.iter().rposition(|o| *o <= off))
                    .unwrap_or(first_unanswered);
                Ok(LookupStop::Missing(at))
            }
            Some(e) if e.errno == libc::ENOBUFS || e.errno == libc::EAGAIN => {
                Ok(LookupStop::Resume(first_unanswered))
            }
            Some(e) => Err(NlError::Kernel {
                what: format!("a lookup in set {set}"),
                element: None,
                kernel_msg: e.msg,
                source: io::Error::from_raw_os_error(e.errno),
            }),
            // The final ACK was dropped with the replies before it.
            None if lost => Ok(LookupStop::Resume(first_unanswered)),
            None => Err(NlError::NoAck),
        }
    }
}

/// Size of one datagram slot for [`recv_many`]: lookup replies are one
/// element each (~100 bytes), errors are capped.
const RECV_SLOT: usize = 1024;

/// Receive the datagrams queued on `fd` (without waiting), many per system
/// call, into `RECV_SLOT`-sized pieces of `buf`; returns their lengths.
/// Lookup replies are one datagram per element, so one `recv` each would
/// cost a system call per element.
fn recv_many(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Vec<usize>> {
    let slots = buf.len() / RECV_SLOT;
    let mut iovs: Vec<libc::iovec> = buf
        .chunks_exact_mut(RECV_SLOT)
        .map(|c| libc::iovec {
            iov_base: c.as_mut_ptr().cast(),
            iov_len: c.len(),
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: mmsghdr is plain data (pointers and integers, some
            // private padding on some libcs); all-zero is a valid value.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    loop {
        // SAFETY: `hdrs` holds `slots` initialized headers, each pointing
        // at one iovec of `iovs`, which points into `buf`; all outlive the
        // call and are not otherwise accessed during it. No timeout.
        let n = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                slots as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut lens = Vec::with_capacity(n as usize);
        for h in &hdrs[..n as usize] {
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                return Err(io::Error::other("netlink reply larger than expected"));
            }
            lens.push(h.msg_len as usize);
        }
        return Ok(lens);
    }
}

/// `setsockopt(fd, SOL_NETLINK, opt, &value)`; rustix has no wrapper for
/// these netlink options.
fn set_netlink_opt(fd: &OwnedFd, opt: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `fd` is an open socket for the duration of the call (we hold
    // the OwnedFd), and we pass a pointer to a live c_int with its exact
    // size, as SOL_NETLINK boolean options expect.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_NETLINK,
            opt,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_messages_are_split_and_map_offsets_to_ids() {
        let mut b = Batch::new(100);
        let keys: Vec<[u8; 4]> = (0u32..5000).map(|i| i.to_be_bytes()).collect();
        b.elements(
            nf::NFT_MSG_NEWSETELEM as u16,
            nf::NLM_F_CREATE as u16,
            "jailwarden",
            "sshd-v4",
            None,
            "add",
            keys.iter().enumerate().map(|(i, k)| ElemOut {
                id: i as u32,
                key: ElemOut::key_from(k).0,
                key_len: 4,
                flags: 0,
                timeout_ms: Some(60_000),
            }),
        );
        let fin = b.finish();
        assert!(
            fin.msgs.len() >= 2,
            "5000 elements need more than one message"
        );
        // Walk the wire bytes: begin, element messages, end; each element
        // list below 64 KiB; every element id present once, in order.
        let msgs: Vec<_> = Messages::new(&fin.bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.first().unwrap().ty, nf::NFNL_MSG_BATCH_BEGIN as u16);
        assert_eq!(msgs.last().unwrap().ty, nf::NFNL_MSG_BATCH_END as u16);
        let mut n = 0;
        for m in &msgs[1..msgs.len() - 1] {
            let mut keys_seen = 0;
            parse_elements(m, &mut |e| {
                assert_eq!(e.key, (n as u32).to_be_bytes());
                assert_eq!(e.timeout_ms, Some(60_000));
                n += 1;
                keys_seen += 1;
            })
            .unwrap();
            assert!(keys_seen > 0);
        }
        assert_eq!(n, 5000);
        // Only the last real message asks for an ACK.
        let acks: Vec<bool> = msgs[1..msgs.len() - 1]
            .iter()
            .map(|m| m.flags & nf::NLM_F_ACK as u16 != 0)
            .collect();
        assert_eq!(acks.iter().filter(|a| **a).count(), 1);
        assert!(acks.last().copied().unwrap());
        // An error pointing into the second message maps back to its element.
        let second = &fin.msgs[1];
        let (off, id) = second.elements[3];
        let err = ErrReply {
            seq: 100 + 2,
            errno: libc::ENFILE,
            offset: Some(off + 8),
            msg: None,
        };
        match fin.describe(&err) {
            NlError::Kernel { element, what, .. } => {
                assert_eq!(element, Some(id));
                assert!(what.contains("sshd-v4"), "{what}");
            }
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn attribute_parsing_survives_garbage() {
        // Lengths that run past the buffer, zero lengths, odd sizes.
        for buf in [
            &[0xff, 0xff, 1, 0, 1, 2][..],
            &[0, 0, 1, 0][..],
            &[5, 0, 1, 0, 9][..],
            &[][..],
        ] {
            let _ = Attrs::new(buf).count();
            let _ = Messages::new(buf).count();
        }
        let mut w = Writer::default();
        w.put_u32(1, 7);
        w.put_str(2, "abc");
        let got: Vec<_> = Attrs::new(&w.buf).collect();
        assert_eq!(got[0], (1, &7u32.to_be_bytes()[..]));
        assert_eq!(string(got[1].1), "abc");
    }
}
