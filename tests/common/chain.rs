//! The chain, as far as closed channels are concerned: a test's stand-in
//! for a user who watches the chain and reports how each HTLC ended.
//!
//! An HTLC whose receiver knows the preimage is claimed by it; an HTLC
//! offered to a receiver that may still learn the preimage waits; any other
//! is timed out by its offerer. Every output is then swept.

use std::collections::HashMap;

use bitcoin::secp256k1::PublicKey;
use chanstore::{
    ChannelId, ChannelStore, ClosedChannelDetails, HtlcDirection, OnChainAction, OnChainHtlc,
    OnChainOutcome, PaymentHash, PaymentPreimage, StoreError,
};

/// One report to a store: (node index, channel, direction, hash, fulfilled).
pub type Report = (usize, ChannelId, HtlcDirection, PaymentHash, bool);

/// What happened on chain so far.
#[derive(Debug, Default)]
pub struct Chain {
    /// HTLCs claimed with their preimage, by (channel, offerer, id): ids
    /// count per direction, so the offerer is part of the name.
    claimed: HashMap<(ChannelId, PublicKey, u64), PaymentPreimage>,
    /// Every outcome reported, in order.
    pub reports: Vec<Report>,
}

impl Chain {
    /// Reports what can be settled now to the stores in `nodes` (`None`:
    /// a node that is down). With `final_round`, nothing waits any more:
    /// what nobody can claim times out. Returns whether anything changed.
    pub fn settle(&mut self, nodes: &[Option<&ChannelStore>], final_round: bool) -> bool {
        self.settle_recorded(nodes, final_round, &mut |_, _, _, _| {})
            .unwrap()
    }

    /// Learns that `offerer`'s HTLC `htlc_id` of `channel` was claimed on
    /// chain with `preimage` (a chain remembered across a crash).
    pub fn learn_claim(
        &mut self,
        channel: ChannelId,
        offerer: PublicKey,
        htlc_id: u64,
        preimage: PaymentPreimage,
    ) {
        self.claimed.insert((channel, offerer, htlc_id), preimage);
    }

    /// [`Chain::settle`], calling `record` with each outcome before it is
    /// reported: (node index, its closed channel, the HTLC, the outcome). A
    /// test that can die between the two writes `record` down first, so
    /// the chain it restarts with knows everything a store may have heard.
    pub fn settle_recorded(
        &mut self,
        nodes: &[Option<&ChannelStore>],
        final_round: bool,
        record: &mut dyn FnMut(usize, &ClosedChannelDetails, &OnChainHtlc, &OnChainOutcome),
    ) -> Result<bool, StoreError> {
        let mut changed = false;
        for (i, n) in nodes.iter().enumerate() {
            let Some(n) = n else { continue };
            for closed in n.closed_channels() {
                for h in &closed.htlcs {
                    if h.direction == HtlcDirection::Received && h.action == OnChainAction::Claim {
                        let p = h.payment_preimage.expect("a claim has its preimage");
                        record(i, &closed, h, &OnChainOutcome::Fulfilled(p));
                        n.htlc_resolved_on_chain(
                            &closed.channel_id,
                            h.direction,
                            h.htlc_id,
                            OnChainOutcome::Fulfilled(p),
                        )?;
                        self.claimed.insert(
                            (closed.channel_id, closed.counterparty_node_id, h.htlc_id),
                            p,
                        );
                        self.reports.push((
                            i,
                            closed.channel_id,
                            h.direction,
                            h.payment_hash,
                            true,
                        ));
                        changed = true;
                    }
                }
            }
        }
        for (i, n) in nodes.iter().enumerate() {
            let Some(n) = n else { continue };
            for closed in n.closed_channels() {
                for h in &closed.htlcs {
                    let outcome = match (h.direction, h.action) {
                        (HtlcDirection::Offered, _) => {
                            let key = (closed.channel_id, n.node_id(), h.htlc_id);
                            match self.claimed.get(&key) {
                                Some(p) => Some(OnChainOutcome::Fulfilled(*p)),
                                None if !final_round
                                    && receiver_may_claim(
                                        nodes,
                                        &closed.channel_id,
                                        &closed.counterparty_node_id,
                                        h.htlc_id,
                                    ) =>
                                {
                                    None
                                }
                                None => Some(OnChainOutcome::Failed),
                            }
                        }
                        (HtlcDirection::Received, OnChainAction::AwaitPreimage) if final_round => {
                            Some(OnChainOutcome::Failed)
                        }
                        _ => None,
                    };
                    if let Some(outcome) = outcome {
                        record(i, &closed, h, &outcome);
                        n.htlc_resolved_on_chain(
                            &closed.channel_id,
                            h.direction,
                            h.htlc_id,
                            outcome,
                        )?;
                        let fulfilled = matches!(outcome, OnChainOutcome::Fulfilled(_));
                        self.reports.push((
                            i,
                            closed.channel_id,
                            h.direction,
                            h.payment_hash,
                            fulfilled,
                        ));
                        changed = true;
                    }
                }
                if !closed.outputs_swept {
                    n.spendable_outputs_swept(&closed.channel_id)?;
                    changed = true;
                }
            }
        }
        Ok(changed)
    }

    /// How `node`'s HTLC of `channel` for `hash` ended on chain, if it went there.
    pub fn outcome(
        &self,
        node: usize,
        channel: &ChannelId,
        direction: HtlcDirection,
        hash: &PaymentHash,
    ) -> Option<bool> {
        self.reports
            .iter()
            .rev()
            .find(|(n, c, d, h, _)| *n == node && c == channel && *d == direction && h == hash)
            .map(|r| r.4)
    }
}

/// Whether `receiver`, of `htlc_id` on `channel`, may still learn its
/// preimage (it waits for one in a closed channel, or the channel is still
/// open on its side with HTLCs in it).
fn receiver_may_claim(
    nodes: &[Option<&ChannelStore>],
    channel: &ChannelId,
    receiver: &PublicKey,
    htlc_id: u64,
) -> bool {
    nodes
        .iter()
        .flatten()
        .filter(|n| n.node_id() == *receiver)
        .any(|n| {
            n.closed_channel(channel).is_some_and(|c| {
                c.htlcs.iter().any(|h| {
                    h.direction == HtlcDirection::Received
                        && h.htlc_id == htlc_id
                        && h.action == OnChainAction::AwaitPreimage
                })
            }) || n
                .channel_details(channel)
                .is_some_and(|d| d.pending_htlcs > 0)
        })
}
