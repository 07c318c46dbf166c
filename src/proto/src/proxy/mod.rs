//! PROXY protocol v1 and v2. (Being written.)
