//! Opening: `open_channel` → `accept_channel` → `funding_created` →
//! `funding_signed` → `channel_ready`, with the BOLT 2 checks each receiver
//! must make. Nothing changes until a message has passed every check.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bitcoin::constants::ChainHash;
use bitcoin::secp256k1::PublicKey;
use bitcoin::OutPoint;

use super::signer::ChannelSigner;
use super::{Channel, Effects, Phase, SideParams};
use crate::config::{StoreConfig, MAX_ACCEPTED_HTLCS_LIMIT, MAX_DUST_LIMIT_SAT};
use crate::error::StoreError;
use crate::event::Event;
use crate::features::Features;
use crate::keys::CounterpartyCommitmentSecrets;
use crate::message::{
    AcceptChannel, ChannelReady, FundingCreated, FundingSigned, Message, OpenChannel,
};
use crate::transactions::{commitment_fee_sat, funding_output_script, ChannelPublicKeys};
use crate::types::{ChannelId, ShortChannelId};

/// The limits and basepoints a peer announces: `open_channel` and
/// `accept_channel` carry them under the same field names.
macro_rules! announced {
    ($msg:expr) => {
        (
            SideParams {
                dust_limit_sat: $msg.dust_limit_satoshis,
                max_htlc_value_in_flight_msat: $msg.max_htlc_value_in_flight_msat,
                channel_reserve_sat: $msg.channel_reserve_satoshis,
                htlc_minimum_msat: $msg.htlc_minimum_msat,
                to_self_delay: $msg.to_self_delay,
                max_accepted_htlcs: $msg.max_accepted_htlcs,
            },
            ChannelPublicKeys {
                funding_pubkey: $msg.funding_pubkey,
                revocation_basepoint: $msg.revocation_basepoint,
                payment_basepoint: $msg.payment_basepoint,
                delayed_payment_basepoint: $msg.delayed_payment_basepoint,
                htlc_basepoint: $msg.htlc_basepoint,
            },
        )
    };
}

/// BOLT 2's lowest allowed dust limit.
const MIN_DUST_LIMIT_SAT: u64 = 354;
/// Most confirmations we agree to wait for.
const MAX_MINIMUM_DEPTH: u32 = 2016;

/// A peer's `channel_type` must be `option_static_remotekey` exactly, the
/// type we propose and the only one we build; when absent (a peer without
/// `option_channel_type`), BOLT 2 derives the type from the `init`
/// features, and `init` already made sure both sides have
/// `option_static_remotekey`.
fn check_channel_type(channel_id: ChannelId, t: Option<&Features>) -> Result<(), StoreError> {
    match t {
        Some(t) if !t.bits().eq(Features::static_remotekey_channel().bits()) => {
            Err(StoreError::UnsupportedChannelType {
                channel_id,
                bits: t.bits().collect(),
            })
        }
        _ => Ok(()),
    }
}

/// Returns `UnacceptableParameter` unless `ok`.
fn require(
    ok: bool,
    channel_id: ChannelId,
    parameter: &'static str,
    value: u64,
    limit: u64,
) -> Result<(), StoreError> {
    if ok {
        Ok(())
    } else {
        Err(StoreError::UnacceptableParameter {
            channel_id,
            parameter,
            value,
            limit,
        })
    }
}

/// The limits a peer announced, checked against BOLT 2 and our config.
/// `our_dust_sat` / `our_reserve_sat` are what we announce in return.
fn check_side_params(
    config: &StoreConfig,
    id: ChannelId,
    funding_sat: u64,
    theirs: &SideParams,
    our_dust_sat: u64,
    our_reserve_sat: u64,
) -> Result<(), StoreError> {
    // In u128: a peer's funding_satoshis is any u64 (checked against
    // max_funding_sat only on some paths before this).
    let max_reserve = (u128::from(funding_sat)
        * u128::from(config.max_channel_reserve_proportional_millionths)
        / 1_000_000)
        .min(u128::from(u64::MAX)) as u64;
    require(
        theirs.dust_limit_sat >= MIN_DUST_LIMIT_SAT,
        id,
        "dust_limit_satoshis",
        theirs.dust_limit_sat,
        MIN_DUST_LIMIT_SAT,
    )?;
    require(
        theirs.dust_limit_sat <= our_reserve_sat,
        id,
        "dust_limit_satoshis",
        theirs.dust_limit_sat,
        our_reserve_sat,
    )?;
    require(
        theirs.dust_limit_sat <= MAX_DUST_LIMIT_SAT,
        id,
        "dust_limit_satoshis",
        theirs.dust_limit_sat,
        MAX_DUST_LIMIT_SAT,
    )?;
    require(
        theirs.channel_reserve_sat <= max_reserve,
        id,
        "channel_reserve_satoshis",
        theirs.channel_reserve_sat,
        max_reserve,
    )?;
    require(
        theirs.channel_reserve_sat >= our_dust_sat,
        id,
        "channel_reserve_satoshis",
        theirs.channel_reserve_sat,
        our_dust_sat,
    )?;
    let max_delay = u64::from(config.max_to_self_delay);
    require(
        u64::from(theirs.to_self_delay) <= max_delay,
        id,
        "to_self_delay",
        theirs.to_self_delay.into(),
        max_delay,
    )?;
    let max_htlcs = u64::from(MAX_ACCEPTED_HTLCS_LIMIT);
    let htlcs = u64::from(theirs.max_accepted_htlcs);
    require(
        htlcs >= 1 && htlcs <= max_htlcs,
        id,
        "max_accepted_htlcs",
        htlcs,
        max_htlcs,
    )?;
    let capacity_msat = funding_sat * 1000;
    require(
        theirs.htlc_minimum_msat < capacity_msat,
        id,
        "htlc_minimum_msat",
        theirs.htlc_minimum_msat,
        capacity_msat,
    )?;
    Ok(())
}

/// Checks funding amount and push against our config.
fn check_funding(
    config: &StoreConfig,
    id: ChannelId,
    funding_sat: u64,
    push_msat: u64,
) -> Result<(), StoreError> {
    if funding_sat < config.min_funding_sat {
        return Err(StoreError::FundingTooSmall {
            channel_id: id,
            funding_sat,
            min_sat: config.min_funding_sat,
        });
    }
    if funding_sat > config.max_funding_sat {
        return Err(StoreError::FundingTooLarge {
            channel_id: id,
            funding_sat,
            max_sat: config.max_funding_sat,
        });
    }
    // Not above max_funding_sat here, which validate keeps below 21M BTC.
    let funding_msat = funding_sat * 1000;
    if push_msat > funding_msat {
        return Err(StoreError::PushExceedsFunding {
            channel_id: id,
            push_msat,
            funding_msat,
        });
    }
    Ok(())
}

impl Channel {
    /// A channel in its first phase, before the peer's parameters are known.
    #[allow(clippy::too_many_arguments)]
    fn blank(
        config: &StoreConfig,
        temporary_channel_id: ChannelId,
        counterparty: PublicKey,
        is_outbound: bool,
        phase: Phase,
        funding_sat: u64,
        push_msat: u64,
        signer: ChannelSigner,
        feerate_per_kw: u32,
    ) -> Channel {
        let ours = SideParams {
            dust_limit_sat: config.dust_limit_sat,
            max_htlc_value_in_flight_msat: config.max_htlc_value_in_flight_msat,
            channel_reserve_sat: config.channel_reserve_sat(funding_sat),
            htlc_minimum_msat: config.htlc_minimum_msat,
            to_self_delay: config.to_self_delay,
            max_accepted_htlcs: config.max_accepted_htlcs,
        };
        let capacity = funding_sat * 1000;
        let (to_local_msat, to_remote_msat) = if is_outbound {
            (capacity - push_msat, push_msat)
        } else {
            (push_msat, capacity - push_msat)
        };
        let channel = Channel {
            channel_id: temporary_channel_id,
            temporary_channel_id,
            counterparty,
            is_outbound,
            phase,
            funding_sat,
            funding_outpoint: None,
            short_channel_id: None,
            signer,
            their_keys: None,
            ours,
            theirs: SideParams::default(),
            minimum_depth: config.minimum_depth,
            their_minimum_depth: None,
            feerate_per_kw,
            pending_fees: Vec::new(),
            local_commitment_number: 0,
            remote_commitment_number: 0,
            their_prev_point: None,
            their_current_point: None,
            their_next_point: None,
            their_secrets: CounterpartyCommitmentSecrets::new(),
            awaiting_revoke: false,
            cs_after_raa: false,
            paused: false,
            to_local_msat,
            to_remote_msat,
            htlcs: Vec::new(),
            next_offered_id: 0,
            next_received_id: 0,
            funding_confirmed: false,
            sent_ready: false,
            received_ready: false,
            local_shutdown_script: None,
            remote_shutdown_script: None,
            shutdown_requested: false,
            shutdown_sent_at: None,
            counterparty_policy: None,
            closing: Default::default(),
            closing_ticks: 0,
            held_fee: None,
            signed_closings: Vec::new(),
            ended_htlcs: Vec::new(),
            unfunded_ticks: 0,
            resuming: false,
            just_reestablished: false,
            shutdown_while_resuming: false,
            closing_tx: None,
            holder_sigs: None,
            funding_height: 0,
            closure: None,
            disk: Default::default(),
            tables: Default::default(),
            verify_signatures: config.verify_signatures,
            snapshot: Arc::new(ArcSwap::from_pointee(
                crate::event::ChannelDetails::placeholder(temporary_channel_id, counterparty),
            )),
        };
        channel.publish();
        channel
    }

    /// Opens a channel to `counterparty`: the channel and its `open_channel`.
    pub(crate) fn new_outbound(
        config: &StoreConfig,
        counterparty: PublicKey,
        funding_sat: u64,
        push_msat: u64,
        signer: ChannelSigner,
    ) -> Result<(Channel, OpenChannel), StoreError> {
        let id = ChannelId::temporary();
        check_funding(config, id, funding_sat, push_msat)?;
        let fee_msat = commitment_fee_sat(config.feerate_per_kw, 0, false) * 1000;
        let funder_msat = funding_sat * 1000 - push_msat;
        if funder_msat < fee_msat {
            return Err(StoreError::ReserveViolated {
                channel_id: id,
                balance_msat: funder_msat as i64 - fee_msat as i64,
                reserve_msat: fee_msat,
            });
        }
        let channel = Channel::blank(
            config,
            id,
            counterparty,
            true,
            Phase::OpenSent,
            funding_sat,
            push_msat,
            signer,
            config.feerate_per_kw,
        );
        let keys = &channel.signer.pubkeys;
        let open = OpenChannel {
            chain_hash: ChainHash::using_genesis_block(config.network),
            temporary_channel_id: id,
            funding_satoshis: funding_sat,
            push_msat,
            dust_limit_satoshis: channel.ours.dust_limit_sat,
            max_htlc_value_in_flight_msat: channel.ours.max_htlc_value_in_flight_msat,
            channel_reserve_satoshis: channel.ours.channel_reserve_sat,
            htlc_minimum_msat: channel.ours.htlc_minimum_msat,
            feerate_per_kw: config.feerate_per_kw,
            to_self_delay: channel.ours.to_self_delay,
            max_accepted_htlcs: channel.ours.max_accepted_htlcs,
            funding_pubkey: keys.funding_pubkey,
            revocation_basepoint: keys.revocation_basepoint,
            payment_basepoint: keys.payment_basepoint,
            delayed_payment_basepoint: keys.delayed_payment_basepoint,
            htlc_basepoint: keys.htlc_basepoint,
            first_per_commitment_point: channel.signer.commitment_point(0),
            channel_flags: 0,
            // BOLT 2: with `open_channel_tlvs`, an empty script (none).
            shutdown_scriptpubkey: Some(bitcoin::ScriptBuf::new()),
            channel_type: Some(Features::static_remotekey_channel()),
        };
        Ok((channel, open))
    }

    /// Answers a peer's `open_channel`: the channel and our `accept_channel`.
    pub(crate) fn new_inbound(
        config: &StoreConfig,
        counterparty: PublicKey,
        msg: &OpenChannel,
        signer: ChannelSigner,
    ) -> Result<(Channel, AcceptChannel), StoreError> {
        let id = msg.temporary_channel_id;
        if msg.chain_hash != ChainHash::using_genesis_block(config.network) {
            return Err(StoreError::WrongChain { channel_id: id });
        }
        check_funding(config, id, msg.funding_satoshis, msg.push_msat)?;
        check_channel_type(id, msg.channel_type.as_ref())?;
        // BOLT 7: an `announce_channel` opener is owed
        // `announcement_signatures`, which we never send (every channel is
        // unannounced), so the channel would never become what it asked
        // for. LDK refuses a different announcement preference too.
        require(
            msg.channel_flags & 1 == 0,
            id,
            "channel_flags (announce_channel)",
            msg.channel_flags.into(),
            0,
        )?;
        let feerate = u64::from(msg.feerate_per_kw);
        require(
            feerate >= u64::from(config.min_feerate_per_kw),
            id,
            "feerate_per_kw",
            feerate,
            config.min_feerate_per_kw.into(),
        )?;
        require(
            feerate <= u64::from(config.max_feerate_per_kw),
            id,
            "feerate_per_kw",
            feerate,
            config.max_feerate_per_kw.into(),
        )?;
        let theirs = announced!(msg).0;
        // BOLT 2: the dust limit may not exceed the sender's own reserve
        // (which `check_side_params` bounds by the funding): it becomes our
        // reserve below, so it must stay a sane amount.
        require(
            msg.dust_limit_satoshis <= msg.channel_reserve_satoshis,
            id,
            "dust_limit_satoshis",
            msg.dust_limit_satoshis,
            msg.channel_reserve_satoshis,
        )?;
        // Our reserve must cover their dust limit (BOLT 2), so raise it if needed.
        let our_reserve = config
            .channel_reserve_sat(msg.funding_satoshis)
            .max(msg.dust_limit_satoshis);
        check_side_params(
            config,
            id,
            msg.funding_satoshis,
            &theirs,
            config.dust_limit_sat,
            our_reserve,
        )?;
        let funder_msat = msg.funding_satoshis * 1000 - msg.push_msat;
        let fee_msat = commitment_fee_sat(msg.feerate_per_kw, 0, false) * 1000;
        if funder_msat < fee_msat {
            return Err(StoreError::ReserveViolated {
                channel_id: id,
                balance_msat: funder_msat as i64 - fee_msat as i64,
                reserve_msat: fee_msat,
            });
        }
        let to_funder_sat = (funder_msat - fee_msat) / 1000;
        let to_fundee_sat = msg.push_msat / 1000;
        if to_funder_sat <= our_reserve && to_fundee_sat <= msg.channel_reserve_satoshis {
            return Err(StoreError::ReserveViolated {
                channel_id: id,
                balance_msat: (funder_msat - fee_msat) as i64,
                reserve_msat: our_reserve * 1000,
            });
        }
        let mut channel = Channel::blank(
            config,
            id,
            counterparty,
            false,
            Phase::AcceptSent,
            msg.funding_satoshis,
            msg.push_msat,
            signer,
            msg.feerate_per_kw,
        );
        channel.ours.channel_reserve_sat = our_reserve;
        channel.theirs = theirs;
        channel.their_keys = Some(announced!(msg).1);
        channel.their_current_point = Some(msg.first_per_commitment_point);
        let keys = &channel.signer.pubkeys;
        let accept = AcceptChannel {
            temporary_channel_id: id,
            dust_limit_satoshis: channel.ours.dust_limit_sat,
            max_htlc_value_in_flight_msat: channel.ours.max_htlc_value_in_flight_msat,
            channel_reserve_satoshis: channel.ours.channel_reserve_sat,
            htlc_minimum_msat: channel.ours.htlc_minimum_msat,
            minimum_depth: config.minimum_depth,
            to_self_delay: channel.ours.to_self_delay,
            max_accepted_htlcs: channel.ours.max_accepted_htlcs,
            funding_pubkey: keys.funding_pubkey,
            revocation_basepoint: keys.revocation_basepoint,
            payment_basepoint: keys.payment_basepoint,
            delayed_payment_basepoint: keys.delayed_payment_basepoint,
            htlc_basepoint: keys.htlc_basepoint,
            first_per_commitment_point: channel.signer.commitment_point(0),
            shutdown_scriptpubkey: Some(bitcoin::ScriptBuf::new()),
            // BOLT 2: "MUST set it to the channel_type from open_channel".
            channel_type: msg.channel_type.clone(),
        };
        channel.publish();
        Ok((channel, accept))
    }

    /// The funder takes the peer's `accept_channel`; the user must now fund.
    pub(crate) fn handle_accept_channel(
        &mut self,
        config: &StoreConfig,
        msg: &AcceptChannel,
    ) -> Result<Event, StoreError> {
        if self.phase != Phase::OpenSent {
            return Err(self.wrong_state("accept_channel"));
        }
        let id = self.channel_id;
        check_channel_type(id, msg.channel_type.as_ref())?;
        let theirs = announced!(msg).0;
        check_side_params(
            config,
            id,
            self.funding_sat,
            &theirs,
            self.ours.dust_limit_sat,
            self.ours.channel_reserve_sat,
        )?;
        let depth = u64::from(msg.minimum_depth);
        require(
            depth <= u64::from(MAX_MINIMUM_DEPTH),
            id,
            "minimum_depth",
            depth,
            MAX_MINIMUM_DEPTH.into(),
        )?;
        let their_keys = announced!(msg).1;
        self.theirs = theirs;
        // BOLT 2: the funder waits for the depth the fundee asked for (LDK
        // as fundee asks for 6); we keep our own too, if it is more.
        self.their_minimum_depth = Some(msg.minimum_depth);
        self.minimum_depth = self.minimum_depth.max(msg.minimum_depth);
        self.their_keys = Some(their_keys);
        self.their_current_point = Some(msg.first_per_commitment_point);
        self.phase = Phase::AwaitingFundingTx;
        Ok(Event::FundingGenerationReady {
            temporary_channel_id: id,
            counterparty_node_id: self.counterparty,
            channel_value_sat: self.funding_sat,
            output_script: funding_output_script(
                &self.signer.pubkeys.funding_pubkey,
                &their_keys.funding_pubkey,
            ),
        })
    }

    /// The funder learned its funding outpoint: sign the peer's first
    /// commitment and send `funding_created`. The channel takes its permanent id.
    pub(crate) fn funding_transaction_generated(
        &mut self,
        outpoint: OutPoint,
    ) -> Result<FundingCreated, StoreError> {
        if self.phase != Phase::AwaitingFundingTx {
            return Err(self.wrong_state("funding_transaction_generated"));
        }
        let point = self
            .their_current_point
            .ok_or_else(|| self.wrong_state("funding_transaction_generated"))?;
        if outpoint.vout > u32::from(u16::MAX) {
            return Err(StoreError::UnacceptableParameter {
                channel_id: self.channel_id,
                parameter: "funding_output_index",
                value: outpoint.vout.into(),
                limit: u16::MAX.into(),
            });
        }
        self.funding_outpoint = Some(outpoint);
        let built = self.build_commitment(false, 0, &point, super::commit::unchanged)?;
        let (signature, _) = self.sign_remote(&built)?;
        self.channel_id = ChannelId::from_funding_outpoint(&outpoint);
        self.phase = Phase::FundingCreatedSent;
        Ok(FundingCreated {
            temporary_channel_id: self.temporary_channel_id,
            funding_txid: outpoint.txid,
            funding_output_index: outpoint.vout as u16,
            signature,
        })
    }

    /// The fundee checks the funder's signature on our first commitment and
    /// signs theirs. The channel takes its permanent id.
    pub(crate) fn handle_funding_created(
        &mut self,
        msg: &FundingCreated,
    ) -> Result<FundingSigned, StoreError> {
        if self.phase != Phase::AcceptSent {
            return Err(self.wrong_state("funding_created"));
        }
        let point = self
            .their_current_point
            .ok_or_else(|| self.wrong_state("funding_created"))?;
        let outpoint = OutPoint::new(msg.funding_txid, msg.funding_output_index.into());
        let real_id = ChannelId::from_funding_outpoint(&outpoint);
        // Build and check with the outpoint in place, then roll back on failure.
        self.funding_outpoint = Some(outpoint);
        let result = self
            .build_commitment(
                true,
                0,
                &self.signer.commitment_point(0),
                super::commit::unchanged,
            )
            .and_then(|ours| self.verify_local(&ours, &msg.signature, &[]))
            .and_then(|()| self.build_commitment(false, 0, &point, super::commit::unchanged))
            .and_then(|theirs| self.sign_remote(&theirs));
        let (signature, _) = match result {
            Ok(sigs) => sigs,
            Err(e) => {
                self.funding_outpoint = None;
                return Err(e);
            }
        };
        self.set_holder_signatures(msg.signature, Vec::new());
        self.channel_id = real_id;
        self.phase = Phase::AwaitingReady;
        Ok(FundingSigned {
            channel_id: real_id,
            signature,
        })
    }

    /// The funder checks the fundee's signature on our first commitment.
    pub(crate) fn handle_funding_signed(&mut self, msg: &FundingSigned) -> Result<(), StoreError> {
        if self.phase != Phase::FundingCreatedSent {
            return Err(self.wrong_state("funding_signed"));
        }
        let ours = self.build_commitment(
            true,
            0,
            &self.signer.commitment_point(0),
            super::commit::unchanged,
        )?;
        self.verify_local(&ours, &msg.signature, &[])?;
        self.set_holder_signatures(msg.signature, Vec::new());
        self.phase = Phase::AwaitingReady;
        Ok(())
    }

    /// The funding transaction confirmed in block `scid.block_height()`:
    /// `channel_ready` goes once it is `minimum_depth` deep at the best
    /// height (now, or from a later `best_block_updated`).
    pub(crate) fn funding_confirmed(
        &mut self,
        scid: ShortChannelId,
        best_height: u32,
    ) -> Result<Effects, StoreError> {
        // A close begun before the channel was ready still wants its
        // confirmation (the unfunded caps count it until then).
        let waits = matches!(
            self.phase,
            Phase::AwaitingReady | Phase::ShuttingDown | Phase::Negotiating
        );
        if !waits || self.funding_confirmed {
            return Err(self.wrong_state("funding_confirmed"));
        }
        self.funding_confirmed = true;
        self.short_channel_id = Some(scid);
        Ok(self.send_ready_if_deep(best_height))
    }

    /// Confirmations of the funding transaction at `best_height` (0 until
    /// the user reported it confirmed).
    pub(crate) fn funding_depth(&self, best_height: u32) -> u32 {
        match (self.funding_confirmed, self.short_channel_id) {
            (true, Some(scid)) => best_height
                .saturating_add(1)
                .saturating_sub(scid.block_height()),
            _ => 0,
        }
    }

    /// A channel the peer opened whose funding we have not seen confirmed:
    /// it holds a place under `max_unfunded_channels_per_peer` and
    /// `max_inbound_unfunded_channels`, funded or not (a `funding_created`
    /// can name a transaction that never existed, at no cost to its
    /// sender), until the funding confirms or the channel, or its closed
    /// record, goes.
    pub(crate) fn holds_unconfirmed_slot(&self) -> bool {
        !self.is_outbound && !self.funding_confirmed
    }

    /// Whether `channel_ready` waits only for the funding to get deeper.
    pub(crate) fn awaits_depth(&self) -> bool {
        self.phase == Phase::AwaitingReady && self.funding_confirmed && !self.sent_ready
    }

    /// Sends `channel_ready` if the funding is deep enough at `best_height`
    /// (BOLT 2: not before `minimum_depth`; see `minimum_depth`).
    pub(crate) fn send_ready_if_deep(&mut self, best_height: u32) -> Effects {
        let mut effects = Effects::default();
        if !self.awaits_depth() || self.funding_depth(best_height) < self.minimum_depth.max(1) {
            return effects;
        }
        self.sent_ready = true;
        effects.msgs.push(Message::ChannelReady(ChannelReady {
            channel_id: self.channel_id,
            second_per_commitment_point: self.signer.commitment_point(1),
        }));
        self.become_normal_if_ready(&mut effects);
        effects
    }

    /// The peer's `channel_ready`: its second per-commitment point.
    pub(crate) fn handle_channel_ready(
        &mut self,
        msg: &ChannelReady,
    ) -> Result<Effects, StoreError> {
        let mut effects = Effects::default();
        match self.phase {
            // Also once a close began before the channel was ready: its
            // point is kept (a reestablish needs it), the channel stays
            // closing.
            Phase::AwaitingReady | Phase::ShuttingDown | Phase::Negotiating
                if !self.received_ready => {}
            // BOLT 2: a redundant channel_ready (retransmitted after a
            // reconnection) is ignored.
            phase if phase.is_funded() && self.received_ready => return Ok(effects),
            _ => return Err(self.wrong_state("channel_ready")),
        }
        self.received_ready = true;
        self.their_next_point = Some(msg.second_per_commitment_point);
        self.become_normal_if_ready(&mut effects);
        Ok(effects)
    }

    fn become_normal_if_ready(&mut self, effects: &mut Effects) {
        if self.sent_ready && self.received_ready && self.phase == Phase::AwaitingReady {
            self.phase = Phase::Normal;
            // BOLT 7: after channel_ready both ways, tell the peer our
            // policy (LDK does the same, channelmanager.rs:10882-10890).
            effects.send_channel_update = true;
            effects.events.push(Event::ChannelReady {
                channel_id: self.channel_id,
                counterparty_node_id: self.counterparty,
            });
        }
    }
}
