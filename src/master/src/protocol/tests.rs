use super::*;
use proptest::prelude::*;

const HA_2_3: HaVersion = HaVersion(2026, 3, 0);
const HA_V1: HaVersion = HaVersion(2025, 1, 0);

fn table() -> HaThresholds {
    HaThresholds {
        v1_from: Some(HA_V1),
        v2_from: Some(HA_2_3),
    }
}

fn ha(agent: &str) -> Client {
    Client::from_user_agent(Some(agent))
}

#[test]
fn user_agents_are_read() {
    assert_eq!(
        ha("HomeAssistant/2026.3.1 aiohttp/3.14.5 Python/3.14"),
        Client::HomeAssistant(Some(HaVersion(2026, 3, 1)))
    );
    assert_eq!(
        ha("HomeAssistant/2026.4.0b2 aiohttp/3.14.5"),
        Client::HomeAssistant(Some(HaVersion(2026, 4, 0)))
    );
    assert_eq!(ha("HomeAssistant/garbage"), Client::HomeAssistant(None));
    assert_eq!(ha("sluice/0.1.0"), Client::Other);
    assert_eq!(Client::from_user_agent(None), Client::Other);
}

#[test]
fn home_assistant_gets_cbc_and_the_version_its_release_honours() {
    let terms = |agent, edge| decide(ha(agent), Asked::default(), edge, table()).unwrap();
    let v2 = ProtocolVersion::V2;
    assert_eq!(
        terms("HomeAssistant/2026.3.0", v2).version,
        ProtocolVersion::V2
    );
    assert_eq!(
        terms("HomeAssistant/2026.2.9", v2).version,
        ProtocolVersion::V1
    );
    assert_eq!(
        terms("HomeAssistant/2024.12.0", v2).version,
        ProtocolVersion::V0
    );
    assert_eq!(
        terms("HomeAssistant/unreadable", v2).version,
        ProtocolVersion::V0
    );
    assert_eq!(
        terms("HomeAssistant/2026.3.0", ProtocolVersion::V1).version,
        ProtocolVersion::V1,
        "never above the edge"
    );
    // What a modified client asks for does not matter: aes-cbc, by the table.
    let asked = Asked {
        protocol_version: Some(2),
        cipher: Some(CipherKind::AesGcmSiv),
    };
    let t = decide(ha("HomeAssistant/2025.6.0"), asked, v2, table()).unwrap();
    assert_eq!(
        (t.version, t.cipher),
        (ProtocolVersion::V1, CipherKind::AesCbc)
    );
    // With no table every Home Assistant gets 0.
    let t = decide(
        ha("HomeAssistant/2030.1.0"),
        asked,
        v2,
        HaThresholds::default(),
    )
    .unwrap();
    assert_eq!(t.version, ProtocolVersion::V0);
}

#[test]
fn sluice_gets_what_it_asks_for_within_the_edge() {
    let asked = Asked {
        protocol_version: Some(2),
        cipher: Some(CipherKind::AesGcmSiv),
    };
    let t = decide(Client::Other, asked, ProtocolVersion::V2, table()).unwrap();
    assert_eq!(
        (t.version, t.cipher),
        (ProtocolVersion::V2, CipherKind::AesGcmSiv)
    );
    let t = decide(
        Client::Other,
        Asked::default(),
        ProtocolVersion::V2,
        table(),
    )
    .unwrap();
    assert_eq!(
        (t.version, t.cipher),
        (ProtocolVersion::V0, CipherKind::AesCbc)
    );
    let gcm = Asked {
        protocol_version: Some(2),
        cipher: Some(CipherKind::AesGcm),
    };
    assert_eq!(
        decide(Client::Other, gcm, ProtocolVersion::V2, table()),
        Err(TermsError::GcmKeyReuse)
    );
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V0),
        Just(ProtocolVersion::V1),
        Just(ProtocolVersion::V2)
    ]
}

proptest! {
    #[test]
    fn never_above_either_side_and_never_v2_for_old_home_assistant(
        year in 2020u32..2032, month in 1u32..13, patch in 0u32..10,
        asked_version in proptest::option::of(0u64..1000),
        edge in version(),
        siv in any::<bool>(),
    ) {
        let agent = format!("HomeAssistant/{year}.{month}.{patch} aiohttp/3.14.5");
        let asked = Asked {
            protocol_version: asked_version,
            cipher: siv.then_some(CipherKind::AesGcmSiv),
        };
        let t = decide(ha(&agent), asked, edge, table()).unwrap();
        prop_assert!(t.version <= edge);
        prop_assert_eq!(t.cipher, CipherKind::AesCbc);
        if HaVersion(year, month, patch) < HA_2_3 {
            prop_assert!(t.version <= ProtocolVersion::V1);
        }
        let t = decide(Client::Other, asked, edge, table()).unwrap();
        prop_assert!(t.version <= edge);
        prop_assert!(u64::from(t.version.number()) <= asked_version.unwrap_or(0));
    }
}
