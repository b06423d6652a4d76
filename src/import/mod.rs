//! `jailwarden import-fail2ban`: read a Fail2ban configuration the way
//! Fail2ban does and write the jailwarden configuration that does the
//! same, listing everything that could not be carried over exactly.

pub mod confreader;
pub mod ini;
pub mod pyre;
pub mod reader;
pub mod syntax;
