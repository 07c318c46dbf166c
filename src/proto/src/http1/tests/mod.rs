//! Both directions, fed in pieces of every size; the two together under property tests.

mod exchange;
mod proptests;
mod request;
mod response;

pub(super) const CALLER: &str = "203.0.113.7";
pub(super) const ADDED: &str = "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nForwarded: for=203.0.113.7;proto=https\r\n";

/// `head` (ending with the CRLF of its last field) as the rewriter sends it on.
pub(super) fn with_added(head: &str) -> String {
    format!("{head}{ADDED}\r\n")
}
