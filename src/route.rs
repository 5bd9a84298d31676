//! [`Route`]: the path of a payment, hop by hop, and the per-hop amounts and
//! expiries it implies.

use bitcoin::secp256k1::PublicKey;

use crate::error::StoreError;
use crate::onion::payload::{HopPayload, PaymentData};
use crate::types::{PaymentSecret, ShortChannelId};

/// One hop of a route: the channel to cross and the node at its far end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteHop {
    /// The node this hop reaches.
    pub node_id: PublicKey,
    /// The channel that reaches it.
    pub short_channel_id: ShortChannelId,
    /// The fee `node_id` charges to forward to the next hop (0 for the last hop).
    pub fee_msat: u64,
    /// The cltv delta `node_id` requires to forward; for the last hop, the
    /// recipient's `min_final_cltv_expiry_delta` (an invoice's `c`), used
    /// when above our `StoreConfig::min_final_cltv_expiry_delta` (0: ours).
    pub cltv_expiry_delta: u32,
}

/// A path from us to a payment's recipient. `hops[0]` is our own channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The hops, first to last.
    pub hops: Vec<RouteHop>,
}

/// What the recipient's onion payload carries besides amount and expiry:
/// what its invoice asked for.
///
/// # Examples
///
/// ```
/// use chanstore::{PaymentSecret, RecipientOnionFields};
///
/// let fields = RecipientOnionFields::secret_only(PaymentSecret([7; 32]));
/// assert_eq!(fields.payment_metadata, None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecipientOnionFields {
    /// The invoice's payment secret. Recipients refuse a payment without
    /// the right one (`incorrect_or_unknown_payment_details`).
    pub payment_secret: Option<PaymentSecret>,
    /// The invoice's `payment_metadata`, passed back to the recipient.
    pub payment_metadata: Option<Vec<u8>>,
}

impl RecipientOnionFields {
    /// Just the invoice's payment secret.
    pub fn secret_only(payment_secret: PaymentSecret) -> Self {
        RecipientOnionFields {
            payment_secret: Some(payment_secret),
            payment_metadata: None,
        }
    }
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
        recipient: &RecipientOnionFields,
        total_msat: u64,
    ) -> Result<RoutePlan, StoreError> {
        let n = self.hops.len();
        if n == 0 {
            return Err(StoreError::InvalidRoute { reason: "no hops" });
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
        let mut payloads = vec![HopPayload::Receive {
            amt_to_forward: amount,
            outgoing_cltv_value: cltv,
            payment_data: recipient.payment_secret.map(|payment_secret| PaymentData {
                payment_secret,
                total_msat,
            }),
            payment_metadata: recipient.payment_metadata.clone(),
        }];
        // Hop i (for i < n-1) forwards over hops[i+1]'s channel.
        for i in (0..n - 1).rev() {
            let next_scid = self.hops[i + 1].short_channel_id;
            let forward = HopPayload::Forward {
                short_channel_id: next_scid,
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
        // At 500,000,000 an expiry is a timestamp: the peer refuses the add
        // (BOLT 2) on every retransmission, and the channel is stuck.
        if cltv >= 500_000_000 {
            return Err(StoreError::InvalidRoute {
                reason: "the first hop's cltv expiry is not a block height",
            });
        }
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
        let secret = PaymentSecret([3; 32]);
        let plan = route
            .plan(
                100_000,
                1000,
                18,
                &RecipientOnionFields::secret_only(secret),
                250_000,
            )
            .unwrap();
        assert_eq!(plan.first_amount_msat, 101_500);
        assert_eq!(plan.first_cltv_expiry, 1000 + 18 + 72);
        assert_eq!(plan.fee_msat, 1_500);
        assert_eq!(
            plan.payloads[0],
            HopPayload::Forward {
                short_channel_id: route.hops[1].short_channel_id,
                amt_to_forward: 100_000,
                outgoing_cltv_value: 1018
            }
        );
        assert_eq!(
            plan.payloads[1],
            HopPayload::Receive {
                amt_to_forward: 100_000,
                outgoing_cltv_value: 1018,
                // One part of a payment of 250_000.
                payment_data: Some(PaymentData {
                    payment_secret: secret,
                    total_msat: 250_000
                }),
                payment_metadata: None,
            }
        );
    }

    #[test]
    fn bad_routes_are_refused() {
        let none = RecipientOnionFields::default();
        assert!(Route { hops: vec![] }.plan(1, 0, 0, &none, 1).is_err());
        assert!(Route {
            hops: vec![hop(1, 5, 0)]
        }
        .plan(1, 0, 0, &none, 1)
        .is_err());
        assert!(Route {
            hops: vec![hop(1, u64::MAX, 0), hop(2, 0, 0)]
        }
        .plan(1, 0, 0, &none, 1)
        .is_err());
    }
}
