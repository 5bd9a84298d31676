//! [`Route`]: the path of a payment, hop by hop, and the per-hop amounts and
//! expiries it implies.

use bitcoin::secp256k1::PublicKey;

use crate::error::StoreError;
use crate::onion::{HopPayload, MAX_HOPS};
use crate::types::ShortChannelId;

/// One hop of a route: the channel to cross and the node at its far end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteHop {
    /// The node this hop reaches.
    pub node_id: PublicKey,
    /// The channel that reaches it.
    pub short_channel_id: ShortChannelId,
    /// The fee `node_id` charges to forward to the next hop (0 for the last hop).
    pub fee_msat: u64,
    /// The cltv delta `node_id` requires to forward (ignored for the last hop).
    pub cltv_expiry_delta: u32,
}

/// A path from us to a payment's recipient. `hops[0]` is our own channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The hops, first to last.
    pub hops: Vec<RouteHop>,
}

/// What the first hop carries, and the onion payloads for every hop.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RoutePlan {
    /// Amount of the HTLC on our channel.
    pub(crate) first_amount_msat: u64,
    /// Its expiry.
    pub(crate) first_cltv_expiry: u32,
    /// Payloads, one per hop, for the onion.
    pub(crate) payloads: Vec<HopPayload>,
    /// Total fees paid to intermediate hops.
    pub(crate) fee_msat: u64,
}

impl Route {
    /// Works backwards from the recipient: each hop's incoming amount is the
    /// next hop's plus the fee, each incoming expiry the next one's plus the
    /// delta. The recipient's expiry is `best_height + final_cltv_delta`.
    pub(crate) fn plan(
        &self,
        amount_msat: u64,
        best_height: u32,
        final_cltv_delta: u32,
    ) -> Result<RoutePlan, StoreError> {
        let n = self.hops.len();
        if n == 0 {
            return Err(StoreError::InvalidRoute { reason: "no hops" });
        }
        if n > MAX_HOPS {
            return Err(StoreError::InvalidRoute {
                reason: "too many hops",
            });
        }
        if self.hops[n - 1].fee_msat != 0 {
            return Err(StoreError::InvalidRoute {
                reason: "the last hop must charge no fee",
            });
        }
        let overflow = StoreError::InvalidRoute {
            reason: "amount or expiry overflows",
        };
        let mut amount = amount_msat;
        let mut cltv = best_height
            .checked_add(final_cltv_delta)
            .ok_or(overflow.clone())?;
        let mut payloads = vec![HopPayload {
            short_channel_id: None,
            amt_to_forward: amount,
            outgoing_cltv_value: cltv,
        }];
        // Hop i (for i < n-1) forwards over hops[i+1]'s channel.
        for i in (0..n - 1).rev() {
            let next_scid = self.hops[i + 1].short_channel_id;
            let forward = HopPayload {
                short_channel_id: Some(next_scid),
                amt_to_forward: amount,
                outgoing_cltv_value: cltv,
            };
            amount = amount
                .checked_add(self.hops[i].fee_msat)
                .ok_or(overflow.clone())?;
            cltv = cltv
                .checked_add(self.hops[i].cltv_expiry_delta)
                .ok_or(overflow.clone())?;
            payloads.push(forward);
        }
        payloads.reverse();
        Ok(RoutePlan {
            first_amount_msat: amount,
            first_cltv_expiry: cltv,
            payloads,
            fee_msat: amount - amount_msat,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secp::SECP;
    use bitcoin::secp256k1::SecretKey;

    fn hop(n: u8, fee_msat: u64, delta: u32) -> RouteHop {
        RouteHop {
            node_id: PublicKey::from_secret_key(&SECP, &SecretKey::from_slice(&[n; 32]).unwrap()),
            short_channel_id: ShortChannelId::new(u32::from(n), 0, 0).unwrap(),
            fee_msat,
            cltv_expiry_delta: delta,
        }
    }

    #[test]
    fn two_hop_plan_adds_fee_and_delta() {
        let route = Route {
            hops: vec![hop(1, 1_500, 72), hop(2, 0, 0)],
        };
        let plan = route.plan(100_000, 1000, 18).unwrap();
        assert_eq!(plan.first_amount_msat, 101_500);
        assert_eq!(plan.first_cltv_expiry, 1000 + 18 + 72);
        assert_eq!(plan.fee_msat, 1_500);
        assert_eq!(
            plan.payloads[0].short_channel_id,
            Some(route.hops[1].short_channel_id)
        );
        assert_eq!(plan.payloads[0].amt_to_forward, 100_000);
        assert_eq!(plan.payloads[0].outgoing_cltv_value, 1018);
        assert_eq!(
            plan.payloads[1],
            HopPayload {
                short_channel_id: None,
                amt_to_forward: 100_000,
                outgoing_cltv_value: 1018
            }
        );
    }

    #[test]
    fn bad_routes_are_refused() {
        assert!(Route { hops: vec![] }.plan(1, 0, 0).is_err());
        assert!(Route {
            hops: vec![hop(1, 5, 0)]
        }
        .plan(1, 0, 0)
        .is_err());
        assert!(Route {
            hops: vec![hop(1, u64::MAX, 0), hop(2, 0, 0)]
        }
        .plan(1, 0, 0)
        .is_err());
    }
}
