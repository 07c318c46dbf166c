//! The SNI peek: an incremental ClientHello parser. (Being written.)
