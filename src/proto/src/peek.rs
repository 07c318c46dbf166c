//! The three-way answer every incremental parser in this crate gives.
//!
//! A parser that looks at the first bytes of a stream must never confuse "not enough bytes
//! yet" with "wrong protocol": the first means *read more and ask again*, the second means
//! *stop*. Malformed input of the right protocol is an `Err` of the parser's own error type.

/// The answer of an incremental parser over a prefix of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peek<T> {
    /// A whole value was recognised.
    Complete(T),
    /// The bytes so far are a valid prefix; more are needed to decide.
    NeedMore,
    /// The bytes cannot be the start of this protocol.
    NotThisProtocol,
}

impl<T> Peek<T> {
    /// Maps the complete value, keeping the other answers.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Peek<U> {
        match self {
            Self::Complete(v) => Peek::Complete(f(v)),
            Self::NeedMore => Peek::NeedMore,
            Self::NotThisProtocol => Peek::NotThisProtocol,
        }
    }

    /// The complete value, if there is one.
    pub fn complete(self) -> Option<T> {
        match self {
            Self::Complete(v) => Some(v),
            _ => None,
        }
    }
}
