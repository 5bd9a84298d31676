//! BOLT 1 connection rules through the public API: `init` first and both
//! ways, features and chains checked, `ping`/`pong`, `warning`.

mod common;

use bitcoin::constants::ChainHash;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::Network;
use chanstore::features::Features;
use chanstore::message::{Init, Ping, Warning};
use chanstore::{Event, Message, StoreError};
use common::*;

fn stranger() -> PublicKey {
    PublicKey::from_secret_key(
        &Secp256k1::new(),
        &SecretKey::from_slice(&[0x55; 32]).unwrap(),
    )
}

fn chain(store: &chanstore::ChannelStore) -> ChainHash {
    ChainHash::using_genesis_block(store.config().network)
}

#[test]
fn init_goes_out_first_and_must_come_in_first() {
    let hub = node(1);
    let peer = stranger();
    hub.peer_connected(peer);
    let out = hub.get_and_clear_pending_msg_events();
    assert!(
        matches!(&out[..], [(to, Message::Init(i))] if *to == peer && i.combined_features() == Features::ours())
    );
    // Anything before the peer's init is refused and changes nothing.
    let ping = Message::Ping(Ping {
        num_pong_bytes: 4,
        ignored: vec![],
    });
    assert_eq!(
        hub.handle_message(&peer, ping.clone()),
        Err(StoreError::InitRequired {
            node_id: peer,
            message: "ping"
        })
    );
    // Nor may we open a channel before it: nothing but our init may go
    // out, and the channel's type depends on the peer's features.
    assert_eq!(
        hub.create_channel(peer, 100_000, 0),
        Err(StoreError::PeerInitPending { node_id: peer })
    );
    assert_eq!(hub.resource_counts().channels, 0);
    assert!(hub.get_and_clear_pending_msg_events().is_empty());
    hub.handle_message(&peer, Message::Init(Init::ours(chain(&hub))))
        .unwrap();
    hub.handle_message(&peer, ping).unwrap();
    let temp = hub.create_channel(peer, 100_000, 0).unwrap();
    let out = hub.get_and_clear_pending_msg_events();
    assert!(
        matches!(&out[..], [(_, Message::Pong(p)), (_, Message::OpenChannel(o))]
            if p.ignored == vec![0; 4] && o.temporary_channel_id == temp),
        "{out:?}"
    );
    // A second init on one connection is refused.
    assert!(matches!(
        hub.handle_message(&peer, Message::Init(Init::ours(chain(&hub)))),
        Err(StoreError::IncompatiblePeer { .. })
    ));
}

#[test]
fn incompatible_inits_are_refused_precisely() {
    let hub = node(1);
    let peer = stranger();
    let cases: Vec<(Init, &str)> = vec![
        (
            Init {
                global_features: Features::empty(),
                features: Features::from_bits(&[8, 12, 14, 100]),
                networks: None,
            },
            "peer requires unknown feature bit 100",
        ),
        (
            Init {
                global_features: Features::empty(),
                features: Features::from_bits(&[8, 14]),
                networks: None,
            },
            "peer lacks required feature bit 12/13",
        ),
        (
            Init::ours(ChainHash::using_genesis_block(Network::Signet)),
            "peer serves none of our chains",
        ),
    ];
    for (init, why) in cases {
        hub.peer_connected(peer);
        let e = hub.handle_message(&peer, Message::Init(init)).unwrap_err();
        assert!(
            matches!(&e, StoreError::IncompatiblePeer { reason, .. } if reason.starts_with(why)),
            "{e}"
        );
        // Still no init: the peer is not served.
        assert!(matches!(
            hub.handle_message(
                &peer,
                Message::Ping(Ping {
                    num_pong_bytes: 1,
                    ignored: vec![]
                })
            ),
            Err(StoreError::InitRequired { .. })
        ));
        hub.peer_disconnected(&peer);
    }
    // Required bits in the legacy globalfeatures count too (BOLT 1: OR them).
    hub.peer_connected(peer);
    let mut init = Init::ours(chain(&hub));
    init.global_features = Features::from_bits(&[10]);
    assert!(matches!(
        hub.handle_message(&peer, Message::Init(init)),
        Err(StoreError::IncompatiblePeer { .. })
    ));
}

#[test]
fn one_warning_per_connection_becomes_an_event_and_closes_nothing() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 0);
    let warn = |text: &[u8]| {
        Message::Warning(Warning {
            channel_id: id,
            data: text.to_vec(),
        })
    };
    a.handle_message(&b.node_id(), warn(b"fee too low\x07"))
        .unwrap();
    a.handle_message(&b.node_id(), warn(b"again")).unwrap();
    let evs = events(&a);
    assert_eq!(
        evs,
        vec![Event::PeerWarning {
            counterparty_node_id: b.node_id(),
            channel_id: id,
            message: "fee too low?".into()
        }]
    );
    assert!(a.channel_details(&id).is_some(), "the channel stays open");
    // A new connection may warn once more.
    a.peer_disconnected(&b.node_id());
    b.peer_disconnected(&a.node_id());
    connect(&a, &b);
    a.handle_message(&b.node_id(), warn(b"third")).unwrap();
    assert_eq!(events(&a).len(), 1);
}

#[test]
fn a_channel_type_other_than_static_remotekey_is_refused() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    a.create_channel(b.node_id(), 1_000_000, 0).unwrap();
    let Some((_, Message::OpenChannel(mut open))) = a.get_and_clear_pending_msg_events().pop()
    else {
        panic!("open_channel");
    };
    assert_eq!(
        open.channel_type,
        Some(Features::static_remotekey_channel())
    );
    open.channel_type = Some(Features::from_bits(&[12, 22]));
    let frozen = b.debug_state();
    assert_eq!(
        b.handle_message(&a.node_id(), Message::OpenChannel(open.clone())),
        Err(StoreError::UnsupportedChannelType {
            channel_id: open.temporary_channel_id,
            bits: vec![12, 22]
        })
    );
    assert_eq!(b.debug_state(), frozen, "nothing changed");
    // Absent (a peer without option_channel_type): static_remotekey, accepted,
    // and the accept echoes the absence.
    open.channel_type = None;
    b.handle_message(&a.node_id(), Message::OpenChannel(open))
        .unwrap();
    let out = b.get_and_clear_pending_msg_events();
    assert!(
        matches!(&out[..], [(_, Message::AcceptChannel(acc))] if acc.channel_type.is_none()),
        "{out:?}"
    );
}
