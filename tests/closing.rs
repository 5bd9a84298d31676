//! The cooperative close's fee negotiation (BOLT 2 "Legacy Closing
//! Negotiation", with `fee_range`) and the closing transaction each side
//! signs (BOLT 3: trimmed at the signer's own dust limit).

mod common;

use bitcoin::secp256k1::ecdsa::Signature;
use bitcoin::secp256k1::{Secp256k1, SecretKey};
use chanstore::message::{ClosingFeeRange, ClosingSigned};
use chanstore::{ChannelStore, ClosureReason, Event, Message, StoreConfig, StoreError};
use common::*;

/// Runs the close between `a` and `b` until both are quiet, handing each
/// `closing_signed` to `tamper` first. Returns the `closing_signed`s, in
/// order, as (sender is `a`, message), and the first refusal.
fn run_close(
    a: &ChannelStore,
    b: &ChannelStore,
    mut tamper: impl FnMut(bool, &mut ClosingSigned),
) -> (Vec<(bool, ClosingSigned)>, Option<StoreError>) {
    let mut seen = Vec::new();
    for _ in 0..20 {
        let mut moved = false;
        for (from_a, from, to) in [(true, a, b), (false, b, a)] {
            for (_, mut m) in from.get_and_clear_pending_msg_events() {
                if let Message::ClosingSigned(cs) = &mut m {
                    tamper(from_a, cs);
                    seen.push((from_a, cs.clone()));
                }
                if let Err(e) = to.handle_message(&from.node_id(), m) {
                    return (seen, Some(e));
                }
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    (seen, None)
}

fn cooperative_fee(node: &ChannelStore) -> Option<u64> {
    events(node).into_iter().find_map(|e| match e {
        Event::ChannelClosed {
            reason: ClosureReason::Cooperative { closing_tx_fee_sat },
            ..
        } => Some(closing_tx_fee_sat),
        _ => None,
    })
}

fn with_floor(min_closing_feerate_per_kw: u32) -> StoreConfig {
    StoreConfig {
        min_closing_feerate_per_kw,
        ..StoreConfig::default()
    }
}

/// Weight of a closing transaction paying two P2WPKH outputs (both sides'
/// shutdown scripts), as both chanstore and LDK count it.
const WEIGHT: u64 = 674;

/// Every `closing_signed` carries `fee_range`; the fundee answers with the
/// fee of the overlap nearest the funder's, and the funder takes it by
/// replying with the same fee: three messages.
#[test]
fn fee_ranges_converge_in_three_messages() {
    let (a, b) = (node(1), node_with(2, with_floor(1_000)));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 100_000_000);
    a.close_channel(&id).unwrap();
    let (seen, refused) = run_close(&a, &b, |_, _| {});
    assert_eq!(refused, None);
    let fees: Vec<(bool, u64, Option<ClosingFeeRange>)> = seen
        .iter()
        .map(|(from_a, cs)| (*from_a, cs.fee_satoshis, cs.fee_range))
        .collect();
    let a_floor = WEIGHT * 253 / 1000;
    let b_floor = WEIGHT * 1_000 / 1000;
    // A pays at most the commitment's fee plus 1000 sat (LDK's default
    // force_close_avoidance_max_fee_satoshis).
    let a_max = 724 * 253 / 1000 + 1_000;
    let a_range = Some(ClosingFeeRange {
        min_fee_satoshis: a_floor,
        max_fee_satoshis: a_max,
    });
    let b_range = Some(ClosingFeeRange {
        min_fee_satoshis: b_floor,
        max_fee_satoshis: 900_000,
    });
    assert_eq!(
        fees,
        [
            (true, a_floor, a_range),
            (false, b_floor, b_range),
            (true, b_floor, a_range)
        ]
    );
    assert_eq!(cooperative_fee(&a), Some(b_floor));
    assert_eq!(cooperative_fee(&b), Some(b_floor));
    // Both hold the same, fully signed, closing transaction.
    let tx = |n: &ChannelStore| n.closed_channel(&id).and_then(|c| c.transaction.clone());
    assert!(tx(&a).is_some() && tx(&a) == tx(&b));
}

/// Ranges with no fee in common: the fundee refuses the funder's offer with
/// a precise error, and nothing changes (it may still get a better one).
#[test]
fn disjoint_fee_ranges_are_refused() {
    let (a, b) = (node(1), node_with(2, with_floor(5_000)));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 100_000_000);
    a.close_channel(&id).unwrap();
    let mut frozen = None;
    let (_, refused) = run_close(&a, &b, |from_a, _| {
        if from_a {
            frozen = Some(b.debug_state());
        }
    });
    assert_eq!(
        refused,
        Some(StoreError::ClosingFeeRangesDisjoint {
            channel_id: id,
            our_min_sat: WEIGHT * 5,
            our_max_sat: 900_000,
            their_min_sat: WEIGHT * 253 / 1000,
            their_max_sat: 724 * 253 / 1000 + 1_000,
        })
    );
    assert_eq!(Some(b.debug_state()), frozen);
    assert_eq!(b.channel_details(&id).unwrap().state, "negotiating_close");
}

/// A fee outside the sender's own `fee_range` is refused, and changes
/// nothing (`fee_range` is not signed: a peer or a bug may send any).
#[test]
fn a_fee_outside_the_senders_range_is_refused() {
    let (a, b) = (node(1), node_with(2, with_floor(1_000)));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 100_000_000);
    a.close_channel(&id).unwrap();
    let mut frozen = None;
    let (_, refused) = run_close(&a, &b, |from_a, cs| {
        if !from_a {
            cs.fee_range = Some(ClosingFeeRange {
                min_fee_satoshis: cs.fee_satoshis + 1,
                max_fee_satoshis: cs.fee_satoshis + 10,
            });
            frozen = Some(a.debug_state());
        }
    });
    let fee = WEIGHT;
    assert_eq!(
        refused,
        Some(StoreError::ClosingFeeOutOfRange {
            channel_id: id,
            fee_sat: fee,
            min_sat: fee + 1,
            max_sat: fee + 10,
        })
    );
    assert_eq!(Some(a.debug_state()), frozen);
}

fn foreign_signature() -> Signature {
    let secp = Secp256k1::new();
    let msg = bitcoin::secp256k1::Message::from_digest([0x42; 32]);
    secp.sign_ecdsa(&msg, &SecretKey::from_slice(&[0x43; 32]).unwrap())
}

/// As funder, a fee the fundee may accept but outside what we accept is
/// refused (BOLT 2: "if fee_satoshis is not in the overlap"), precisely,
/// and the channel is unchanged. (Signatures are not checked here, so the
/// fundee's message can be made up.)
#[test]
fn as_funder_a_fee_outside_the_overlap_is_refused() {
    let funder_config = StoreConfig {
        verify_signatures: false,
        ..StoreConfig::default()
    };
    let (a, b) = (node_with(1, funder_config), node(2));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 100_000_000);
    a.close_channel(&id).unwrap();
    // Shutdowns both ways; A's first closing_signed is dropped.
    for _ in 0..3 {
        for (from, to) in [(&a, &b), (&b, &a)] {
            for (_, m) in take_msgs(from) {
                if !matches!(m, Message::ClosingSigned(_)) {
                    deliver_one(from, to, m);
                }
            }
        }
    }
    let a_max = 724 * 253 / 1000 + 1_000;
    let forged = |fee: u64, min: u64, max: u64| {
        Message::ClosingSigned(ClosingSigned {
            channel_id: id,
            fee_satoshis: fee,
            signature: foreign_signature(),
            fee_range: Some(ClosingFeeRange {
                min_fee_satoshis: min,
                max_fee_satoshis: max,
            }),
        })
    };
    let before = a.debug_state();
    assert_eq!(
        a.handle_message(&b.node_id(), forged(1_500, 600, 2_000)),
        Err(StoreError::ClosingFeeOutOfRange {
            channel_id: id,
            fee_sat: 1_500,
            min_sat: 600,
            max_sat: a_max,
        })
    );
    // A zero fee is never signed: its range meets none of ours.
    assert_eq!(
        a.handle_message(&b.node_id(), forged(0, 0, 0)),
        Err(StoreError::ClosingFeeRangesDisjoint {
            channel_id: id,
            our_min_sat: WEIGHT * 253 / 1000,
            our_max_sat: a_max,
            their_min_sat: 0,
            their_max_sat: 0,
        })
    );
    assert_eq!(a.debug_state(), before);
    assert!(take_msgs(&a).is_empty());
    // A fee in the overlap is taken: A replies with it and closes.
    a.handle_message(&b.node_id(), forged(600, 600, 2_000))
        .unwrap();
    let reply = take_msgs(&a);
    assert!(
        matches!(&reply[..], [(_, Message::ClosingSigned(cs))] if cs.fee_satoshis == 600),
        "{reply:?}"
    );
    assert_eq!(cooperative_fee(&a), Some(600));
}

/// Dust limits differ (A 354 sat, B 546) and B's output, 450 sat, lies
/// between them: A signs a transaction with it, B one without (BOLT 3:
/// each trims at its own limit). B answers A's fee with a neighbouring one
/// over its own transaction, which A signs back: both close cooperatively
/// with the same transaction, which has no output below B's limit.
#[test]
fn each_signer_trims_at_its_own_dust_limit() {
    let b_config = StoreConfig {
        dust_limit_sat: 546,
        ..StoreConfig::default()
    };
    let (a, b) = (node(1), node_with(2, b_config));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 100_000, 450_000);
    b.close_channel(&id).unwrap();
    let (seen, refused) = run_close(&a, &b, |_, _| {});
    assert_eq!(refused, None);
    let fees: Vec<(bool, u64)> = seen.iter().map(|(f, cs)| (*f, cs.fee_satoshis)).collect();
    let floor = WEIGHT * 253 / 1000;
    assert_eq!(fees, [(true, floor), (false, floor + 1), (true, floor + 1)]);
    assert_eq!(cooperative_fee(&a), Some(floor + 1));
    assert_eq!(cooperative_fee(&b), Some(floor + 1));
    // B, with nothing left to sweep, keeps no record; A's transaction is
    // the one B signed too (B checked A's signature on it above).
    let tx = a
        .closed_channel(&id)
        .and_then(|c| c.transaction.clone())
        .expect("a closing transaction");
    let outputs: Vec<u64> = tx.output.iter().map(|o| o.value.to_sat()).collect();
    assert_eq!(outputs, [100_000 - 450 - (floor + 1)]);
}

/// BOLT 2: a segwit v1+ `shutdown` script is allowed only "if
/// `option_shutdown_anysegwit` is negotiated". We offer it; a peer whose
/// `init` does not is refused one (and the channel stays as it was), a
/// peer whose `init` does is not.
#[test]
fn a_segwit_v1_shutdown_script_needs_option_shutdown_anysegwit() {
    use bitcoin::constants::ChainHash;
    use chanstore::features::{Features, SHUTDOWN_ANYSEGWIT};
    use chanstore::message::{Init, Shutdown};
    let taproot = || {
        let mut script = vec![0x51, 0x20];
        script.extend_from_slice(&[7; 32]);
        bitcoin::ScriptBuf::from_bytes(script)
    };
    for offered in [false, true] {
        let (a, b) = (node(71), node(72));
        a.peer_connected(b.node_id());
        b.peer_connected(a.node_id());
        let _ = a.get_and_clear_pending_msg_events();
        let _ = b.get_and_clear_pending_msg_events();
        let chain = ChainHash::using_genesis_block(a.config().network);
        b.handle_message(&a.node_id(), Message::Init(Init::ours(chain)))
            .unwrap();
        let bits: Vec<u32> = Features::ours()
            .bits()
            .filter(|&bit| offered || bit / 2 != SHUTDOWN_ANYSEGWIT / 2)
            .collect();
        let init = Init {
            global_features: Features::empty(),
            features: Features::from_bits(&bits),
            networks: Some(vec![chain]),
        };
        a.handle_message(&b.node_id(), Message::Init(init)).unwrap();
        let (id, _) = open_channel(&a, &b, 1_000_000, 0);
        let shutdown = Message::Shutdown(Shutdown {
            channel_id: id,
            scriptpubkey: taproot(),
        });
        let result = a.handle_message(&b.node_id(), shutdown);
        if offered {
            result.unwrap();
            // No HTLC in flight: straight to the fee negotiation.
            assert_eq!(a.channel_details(&id).unwrap().state, "negotiating_close");
        } else {
            assert_eq!(
                result,
                Err(StoreError::InvalidShutdownScript { channel_id: id })
            );
            assert_eq!(a.channel_details(&id).unwrap().state, "normal");
        }
    }
}

/// A closing transaction with an output below its script's relay dust
/// (BOLT 3 "Dust Limits": 546 sat for P2PKH) is non-standard and never
/// relays. A peer with a P2PKH shutdown script and 400 sat (above both dust
/// limits, 354) used to get our signature on one, and once it signed it
/// back the channel counted as closed cooperatively with nothing to fall
/// back on: our balance stuck. Now the negotiation fails at once and our
/// commitment goes out, which pays the peer's 400 sat to its P2WPKH
/// `to_remote` (relay dust 294).
#[test]
fn a_closing_transaction_that_would_not_relay_is_never_signed() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 100_000, 400_000);
    a.close_channel(&id).unwrap();
    deliver_one_way(&a, &b);
    let p2pkh =
        bitcoin::ScriptBuf::from_bytes([&[0x76, 0xa9, 0x14][..], &[7; 20], &[0x88, 0xac]].concat());
    for (_, mut m) in b.get_and_clear_pending_msg_events() {
        if let Message::Shutdown(s) = &mut m {
            s.scriptpubkey = p2pkh.clone();
        }
        a.handle_message(&b.node_id(), m).unwrap();
    }
    let sent = a.get_and_clear_pending_msg_events();
    assert!(
        !sent
            .iter()
            .any(|(_, m)| matches!(m, Message::ClosingSigned(_))),
        "A signed a closing transaction paying 400 sat to P2PKH: {sent:?}"
    );
    let evs = events(&a);
    assert!(
        evs.iter().any(|e| matches!(
            e,
            Event::ChannelClosed {
                reason: ClosureReason::ClosingNegotiationFailed { .. },
                ..
            }
        )),
        "{evs:?}"
    );
    let commitment = evs
        .iter()
        .find_map(|e| match e {
            Event::BroadcastTransaction { transaction, .. } => Some(transaction),
            _ => None,
        })
        .expect("A broadcasts its commitment");
    assert!(commitment
        .output
        .iter()
        .any(|o| o.value.to_sat() == 400 && o.script_pubkey.is_p2wpkh()));
}

/// Every message `from` has, to `to`.
fn deliver_one_way(from: &ChannelStore, to: &ChannelStore) {
    for (_, m) in from.get_and_clear_pending_msg_events() {
        to.handle_message(&from.node_id(), m).unwrap();
    }
}

/// The channel's close reason from `node`'s `ChannelClosed` event, if any.
fn closed_reason(evs: &[Event]) -> Option<ClosureReason> {
    evs.iter().find_map(|e| match e {
        Event::ChannelClosed { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

/// Ranges with no fee in common, and no side gives in: each side fails the
/// channel once the negotiation has waited
/// `closing_negotiation_timeout_ticks` timer ticks (BOLT 2: no satisfying
/// fee after a reasonable time), with an `error` and its latest commitment
/// to broadcast; one tick fewer changes nothing.
#[test]
fn a_negotiation_that_cannot_agree_fails_the_channel_in_time() {
    let (a, b) = (node(1), node_with(2, with_floor(5_000)));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 100_000_000);
    a.close_channel(&id).unwrap();
    let (_, refused) = run_close(&a, &b, |_, _| {});
    assert!(matches!(
        refused,
        Some(StoreError::ClosingFeeRangesDisjoint { .. })
    ));
    let _ = (events(&a), events(&b));
    let ticks = b.config().closing_negotiation_timeout_ticks;
    assert_eq!(ticks, 2, "LDK's two ticks");
    for _ in 1..ticks {
        b.timer_tick_occurred();
    }
    assert_eq!(b.channel_details(&id).unwrap().state, "negotiating_close");
    assert!(closed_reason(&events(&b)).is_none());
    b.timer_tick_occurred();
    let evs = events(&b);
    assert_eq!(
        closed_reason(&evs),
        Some(ClosureReason::ClosingNegotiationTimedOut)
    );
    assert!(
        (evs.iter()).any(|e| matches!(e, Event::BroadcastTransaction { .. })),
        "B's commitment goes out: {evs:?}"
    );
    assert!(b.channel_details(&id).is_none());
    // B's `error` closes A's side too.
    let msgs = b.get_and_clear_pending_msg_events();
    assert!(
        matches!(msgs.as_slice(), [(_, Message::Error(e))] if e.channel_id == id),
        "{msgs:?}"
    );
    for (_, m) in msgs {
        a.handle_message(&b.node_id(), m).unwrap();
    }
    assert!(matches!(
        closed_reason(&events(&a)),
        Some(ClosureReason::CounterpartyError { .. })
    ));
}

/// A peer that disconnects once both sides shut down and stays away holds
/// the close no longer than the timeout: the count goes on while the
/// channel is paused (reconnecting restarts the negotiation, not the count).
#[test]
fn a_peer_that_stays_away_after_both_shutdowns_cannot_hold_the_close() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 100_000_000);
    a.close_channel(&id).unwrap();
    // A's shutdown, B's shutdown; A's first closing_signed is not delivered.
    deliver_one_way(&a, &b);
    deliver_one_way(&b, &a);
    let _ = a.get_and_clear_pending_msg_events();
    a.timer_tick_occurred();
    a.peer_disconnected(&b.node_id());
    b.peer_disconnected(&a.node_id());
    assert!(closed_reason(&events(&a)).is_none());
    a.timer_tick_occurred();
    assert_eq!(
        closed_reason(&events(&a)),
        Some(ClosureReason::ClosingNegotiationTimedOut)
    );
}

/// HTLCs still in flight after both `shutdown`s are not the negotiation's
/// time: however many ticks they take to settle, the close then goes on
/// cooperatively.
#[test]
fn htlcs_draining_after_shutdown_do_not_count_towards_the_closing_timeout() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, scid) = open_channel(&a, &b, 1_000_000, 0);
    let p = preimage(7, 1);
    let route = route_to(&b, scid);
    (a.pay_invoice(&route, p.payment_hash(), 5_000_000)).unwrap();
    deliver_all(&[&a, &b]);
    assert!((events(&b).iter()).any(|e| matches!(e, Event::PaymentReceived { .. })));
    a.close_channel(&id).unwrap();
    deliver_all(&[&a, &b]);
    assert_eq!(a.channel_details(&id).unwrap().state, "shutting_down");
    for _ in 0..5 {
        a.timer_tick_occurred();
        b.timer_tick_occurred();
    }
    assert!(closed_reason(&events(&a)).is_none());
    assert!(closed_reason(&events(&b)).is_none());
    b.claim_funds(p).unwrap();
    deliver_all(&[&a, &b]);
    assert!(cooperative_fee(&a).is_some());
}

/// A channel funded but not confirmed yet closes cooperatively, whichever
/// side asks (BOLT 2 allows `shutdown` once `funding_signed` is through):
/// no `channel_ready` is needed, and the funding reported confirmed
/// afterwards is still taken while the negotiation runs.
#[test]
fn a_channel_not_ready_yet_closes_cooperatively() {
    for closer in [0, 1] {
        let (a, b) = (node(1), node(2));
        connect_all(&[&a, &b]);
        let temp = a.create_channel(b.node_id(), 1_000_000, 0).unwrap();
        deliver_all(&[&a, &b]);
        let outpoint =
            bitcoin::OutPoint::new(bitcoin::hashes::Hash::from_byte_array([0x77; 32]), 0);
        let id = a
            .funding_transaction_generated(&temp, &b.node_id(), outpoint)
            .unwrap();
        deliver_all(&[&a, &b]);
        assert_eq!(
            b.channel_details(&id).unwrap().state,
            "awaiting_channel_ready"
        );
        let _ = (events(&a), events(&b));
        [&a, &b][closer].close_channel(&id).unwrap();
        // Confirmed while the shutdowns cross: still reported.
        let scid = chanstore::ShortChannelId::new(HEIGHT, 1, 0).unwrap();
        a.funding_confirmed(&id, scid).unwrap();
        deliver_all(&[&a, &b]);
        let (fa, fb) = (cooperative_fee(&a), cooperative_fee(&b));
        assert!(fa.is_some() && fa == fb, "closer {closer}: {fa:?} {fb:?}");
        assert!(a.channel_details(&id).is_none() && b.channel_details(&id).is_none());
    }
}

/// A peer that never negotiates but reconnects (sending only its
/// `channel_reestablish`) between each of our timer ticks cannot keep the
/// closing timeout from firing: a tick that ends the window of its
/// retransmissions still counts. (Before, each such tick only ended the
/// window, and the close waited forever.)
#[test]
fn a_peer_reconnecting_every_tick_cannot_hold_the_close() {
    let (a, b) = (node(1), node(2));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 100_000_000);
    a.close_channel(&id).unwrap();
    // A's shutdown to B, B's shutdown to A; A's closing_signed dropped (B never negotiates).
    for (_, m) in take_msgs(&a) {
        deliver_one(&a, &b, m);
    }
    for (_, m) in take_msgs(&b) {
        deliver_one(&b, &a, m);
    }
    let _ = take_msgs(&a);
    let _ = (events(&a), events(&b));
    let mut closed = None;
    for _ in 0..10 {
        a.peer_disconnected(&b.node_id());
        b.peer_disconnected(&a.node_id());
        connect(&a, &b);
        // Only B's channel_reestablish reaches A; nothing of A's reaches B.
        let _ = take_msgs(&a);
        for (_, m) in take_msgs(&b) {
            if matches!(m, Message::ChannelReestablish(_)) {
                deliver_one(&b, &a, m);
            }
        }
        let _ = take_msgs(&a);
        a.timer_tick_occurred();
        let _ = take_msgs(&a);
        if let Some(r) = closed_reason(&events(&a)) {
            closed = Some(r);
            break;
        }
    }
    assert_eq!(
        closed,
        Some(ClosureReason::ClosingNegotiationTimedOut),
        "10 ticks (timeout {}) and the close still waits: {:?}",
        a.config().closing_negotiation_timeout_ticks,
        a.channel_details(&id).map(|d| d.state)
    );
}

/// A `closing_signed` that ends the wait for the peer's retransmissions and
/// is refused leaves the channel as it was (the adversarial suite's rule);
/// one that finds our own negotiation failing as it begins (our closing
/// floor above our ceiling) is taken, the channel failed as the next poll
/// would have. (Before, the failure was half undone: `closure` stayed set
/// on a channel still shutting down, its `error` and event dropped.)
#[test]
fn a_closing_signed_ending_the_retransmission_wait_is_all_or_nothing() {
    let a = node_with(
        1,
        chanstore::StoreConfig {
            min_closing_feerate_per_kw: 5_000,
            ..chanstore::StoreConfig::default()
        },
    );
    let b = node(2);
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 100_000_000);
    a.close_channel(&id).unwrap();
    let lost = take_msgs(&a);
    assert!(matches!(&lost[..], [(_, Message::Shutdown(_))]), "{lost:?}");
    a.peer_disconnected(&b.node_id());
    b.peer_disconnected(&a.node_id());
    connect(&a, &b);
    // A's reestablish to B; B's reestablish alone back (its channel_ready
    // and channel_update are not needed: no order is fixed).
    for (_, m) in take_msgs(&a) {
        deliver_one(&a, &b, m);
    }
    for (_, m) in take_msgs(&b) {
        if matches!(m, Message::ChannelReestablish(_)) {
            deliver_one(&b, &a, m);
        }
    }
    // A's shutdown again, to B; B's shutdown, the first message after its
    // reestablish.
    for (_, m) in take_msgs(&a) {
        if matches!(m, Message::Shutdown(_)) {
            deliver_one(&a, &b, m);
        }
    }
    let from_b = take_msgs(&b);
    let names: Vec<_> = from_b.iter().map(|(_, m)| m.name()).collect();
    let shutdown = from_b
        .into_iter()
        .map(|(_, m)| m)
        .find(|m| matches!(m, Message::Shutdown(_)));
    deliver_one(
        &b,
        &a,
        shutdown.unwrap_or_else(|| panic!("B's shutdown: {names:?}")),
    );
    let _ = take_msgs(&a);
    assert_eq!(a.channel_details(&id).unwrap().state, "shutting_down");
    let (frozen, _) = freeze(&[&a]);
    let sig = bitcoin::secp256k1::ecdsa::Signature::from_compact(&[1u8; 64]).unwrap();
    let cs = Message::ClosingSigned(chanstore::message::ClosingSigned {
        channel_id: id,
        fee_satoshis: 500,
        signature: sig,
        fee_range: Some(chanstore::message::ClosingFeeRange {
            min_fee_satoshis: 200,
            max_fee_satoshis: 4_000,
        }),
    });
    // Refused, nothing may have changed; taken, the channel failed whole.
    if a.handle_message(&b.node_id(), cs).is_err() {
        assert_unchanged(&[&a], &frozen);
    } else {
        assert!(a.channel_details(&id).is_none());
        assert!(matches!(
            closed_reason(&events(&a)),
            Some(ClosureReason::ClosingNegotiationFailed { .. })
        ));
    }
}

/// Our output in `tx` (the one not paying `theirs_sat`), as the closed
/// record must list it.
fn our_output_in(tx: &bitcoin::Transaction, theirs_sat: u64) -> (bitcoin::OutPoint, u64) {
    let txid = tx.compute_txid();
    tx.output
        .iter()
        .enumerate()
        .find(|(_, o)| o.value.to_sat() != theirs_sat)
        .map(|(vout, o)| (bitcoin::OutPoint::new(txid, vout as u32), o.value.to_sat()))
        .expect("the closing transaction pays us")
}

fn lists(
    record: &chanstore::ClosedChannelDetails,
    (outpoint, value_sat): (bitcoin::OutPoint, u64),
) -> bool {
    record
        .outputs
        .iter()
        .any(|o| o.outpoint == Some(outpoint) && o.value_sat == value_sat)
}

/// The fundee takes the funder's first offer and closes with it; its reply
/// is lost. The funder, reconnecting (after a restart, or not), finds the
/// channel gone on the other side and fails it with its commitment: but
/// the closing transaction it signed may confirm instead (the fundee
/// broadcast it), so its record must still list its output in it.
#[test]
fn a_closing_transaction_we_signed_stays_in_the_record_when_the_channel_fails() {
    for restart in [false, true] {
        let (a, b) = (node(1), node(2));
        connect_all(&[&a, &b]);
        let (id, _) = open_channel(&a, &b, 1_000_000, 300_000_000);
        a.close_channel(&id).unwrap();
        for from_a in [true, false, true] {
            let (from, to) = if from_a { (&a, &b) } else { (&b, &a) };
            for (_, m) in take_msgs(from) {
                deliver_one(from, to, m); // shutdowns, then A's closing_signed
            }
        }
        let lost = take_msgs(&b);
        assert!(
            matches!(lost[..], [(_, Message::ClosingSigned(_))]),
            "{lost:?}"
        );
        let b_record = b.closed_channel(&id).unwrap();
        assert!(matches!(b_record.reason, ClosureReason::Cooperative { .. }));
        let ours = our_output_in(b_record.transaction.as_ref().unwrap(), 300_000);
        let a = if restart { reread(&a, 1) } else { a };
        a.peer_disconnected(&b.node_id());
        b.peer_disconnected(&a.node_id());
        connect(&a, &b);
        deliver_all(&[&a, &b]);
        let record = a.closed_channel(&id).expect("A failed the channel");
        assert!(
            !matches!(record.reason, ClosureReason::Cooperative { .. }),
            "{:?}",
            record.reason
        );
        assert!(
            lists(&record, ours),
            "restart {restart}: {:?} not in {:?}",
            ours,
            record.outputs
        );
        // And it comes out of a restart with the record.
        assert!(lists(&reread(&a, 1).closed_channel(&id).unwrap(), ours));
    }
}

/// The fundee counters the funder's offer (its floor is higher); the
/// funder takes the counter and closes, but the fundee never gets that
/// reply: its record lists its output in the counter-offer it signed.
/// The funder's cooperative record lists its output in its first offer
/// too, which the fundee holds signed as well.
#[test]
fn every_closing_transaction_signed_is_listed_by_both_sides() {
    let (a, b) = (node(1), node_with(2, with_floor(1_000)));
    connect_all(&[&a, &b]);
    let (id, _) = open_channel(&a, &b, 1_000_000, 100_000_000);
    a.close_channel(&id).unwrap();
    let mut offers = Vec::new();
    for from_a in [true, false, true, false] {
        let (from, to) = if from_a { (&a, &b) } else { (&b, &a) };
        for (_, m) in take_msgs(from) {
            if let Message::ClosingSigned(cs) = &m {
                offers.push((from_a, cs.fee_satoshis));
            }
            deliver_one(from, to, m);
        }
    }
    let (a_first, b_counter) = (WEIGHT * 253 / 1000, WEIGHT * 1_000 / 1000);
    assert_eq!(offers, [(true, a_first), (false, b_counter)]);
    // A took the counter-offer; its reply is lost.
    let lost = take_msgs(&a);
    assert!(
        matches!(lost[..], [(_, Message::ClosingSigned(_))]),
        "{lost:?}"
    );
    let a_record = a.closed_channel(&id).unwrap();
    assert_eq!(
        a_record.reason,
        ClosureReason::Cooperative {
            closing_tx_fee_sat: b_counter
        }
    );
    let closing_tx = a_record.transaction.clone().unwrap();
    let a_out = our_output_in(&closing_tx, 100_000);
    assert_eq!(a_out.1, 900_000 - b_counter);
    assert!(lists(&a_record, a_out));
    // A's first offer, signed and held by B: a different transaction.
    assert!(
        a_record.outputs.iter().any(|o| o
            .outpoint
            .is_some_and(|p| p.txid != closing_tx.compute_txid())
            && o.value_sat == 900_000 - a_first),
        "{:?}",
        a_record.outputs
    );
    // B's counter-offer is the transaction A broadcast.
    let b_out = our_output_in(&closing_tx, 900_000 - b_counter);
    a.peer_disconnected(&b.node_id());
    b.peer_disconnected(&a.node_id());
    connect(&a, &b);
    deliver_all(&[&a, &b]);
    let b_record = b.closed_channel(&id).expect("B failed the channel");
    assert!(!matches!(
        b_record.reason,
        ClosureReason::Cooperative { .. }
    ));
    assert!(
        lists(&b_record, b_out),
        "{b_out:?} not in {:?}",
        b_record.outputs
    );
}
