//! Property tests of the key schema: round trips, and no panic on whatever the store holds.

use proptest::prelude::*;
use sluice_directory::schema::{
    EDGES, EdgeValue, Key, KeyError, MAX_KEY_LEN, MAX_VALUE_LEN, PREFIX, ROUTES, RouteValue,
};
use sluice_proto::{EdgeId, Hostname};

fn hostname() -> impl Strategy<Value = Hostname> {
    // Labels of letters, digits, '-' and '_' (no '-' at an end); the last one has a letter so
    // the name is never an IPv4 literal.
    let label = "[a-z0-9_]([a-z0-9_-]{0,20}[a-z0-9_])?";
    (prop::collection::vec(label, 0..4), "[a-z][a-z0-9]{0,10}").prop_map(|(mut labels, tld)| {
        labels.push(tld);
        labels.join(".").parse().unwrap()
    })
}

fn edge_id() -> impl Strategy<Value = EdgeId> {
    "[a-z0-9]([a-z0-9._-]{0,40}[a-z0-9])?".prop_map(|s| s.parse().unwrap())
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        hostname().prop_map(Key::Route),
        edge_id().prop_map(Key::Edge)
    ]
}

/// Bytes that look like keys often enough to reach past the prefix checks.
fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
    let prefix = prop_oneof![Just(ROUTES), Just(EDGES), Just(PREFIX), Just("")];
    (
        prefix,
        prop::collection::vec(any::<u8>(), 0..MAX_KEY_LEN + 10),
    )
        .prop_map(|(p, tail)| {
            let mut k = p.as_bytes().to_vec();
            k.extend(tail);
            k
        })
}

proptest! {
    #[test]
    fn keys_round_trip(k in key()) {
        let bytes = k.encode();
        prop_assert!(bytes.len() <= MAX_KEY_LEN);
        prop_assert!(bytes.starts_with(PREFIX.as_bytes()));
        prop_assert_eq!(Key::decode(&bytes), Ok(k));
    }

    #[test]
    fn any_key_bytes_decode_or_refuse_without_panic(raw in key_bytes()) {
        match Key::decode(&raw) {
            // What decodes is written back byte for byte: one spelling per key.
            Ok(k) => prop_assert_eq!(k.encode(), raw),
            Err(KeyError::TooLong(n)) => prop_assert!(n > MAX_KEY_LEN),
            Err(_) => {}
        }
    }

    #[test]
    fn route_values_round_trip(edge in edge_id(), tunnel in any::<u64>(), primary in any::<bool>()) {
        let v = RouteValue { edge, tunnel, primary };
        let bytes = v.encode();
        prop_assert!(bytes.len() <= MAX_VALUE_LEN);
        prop_assert_eq!(RouteValue::decode(&bytes), Ok(v));
    }

    #[test]
    fn edge_values_round_trip(ip in any::<[u8; 4]>(), port in any::<u16>()) {
        let v = EdgeValue { addr: (ip, port).into() };
        prop_assert_eq!(EdgeValue::decode(&v.encode()), Ok(v));
    }

    #[test]
    fn any_value_bytes_decode_or_refuse_without_panic(raw in prop::collection::vec(any::<u8>(), 0..MAX_VALUE_LEN + 10)) {
        let _ = RouteValue::decode(&raw);
        let _ = EdgeValue::decode(&raw);
    }

    #[test]
    fn damaged_route_values_decode_or_refuse_without_panic(
        edge in edge_id(),
        tunnel in any::<u64>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut raw = RouteValue { edge, tunnel, primary: true }.encode();
        let i = at.index(raw.len());
        raw[i] = byte;
        if let Ok(v) = RouteValue::decode(&raw) {
            // Whatever still parses is a valid value: its id passed the edge-id rules.
            prop_assert!(EdgeId::parse(v.edge.as_str()).is_ok());
        }
    }
}
