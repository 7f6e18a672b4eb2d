//! The peer handshake (PROTOCOL.md §4, step 1): mutual authentication of two brokers.
//!
//! ```text
//! initiator (buyer)                      responder (seller)
//!   Hello{version, from, nonce}      ->
//!                                    <-  Hello{version, from, nonce, auth: sig(PeerAuth_r)}
//!   Auth{sig(PeerAuth_i)}            ->
//! ```
//!
//! Each side signs `PeerAuth{from: self, to: peer, nonceFrom: own nonce, nonceTo: peer's nonce}`
//! (EIP-712, same domain as every statement) and checks that the peer's signature recovers to the
//! address it announced (and, for the initiator, to the seller it meant to reach). Both sides
//! learn the peer's public key, which the engines use for ECDH grants and fast verification.
//! Nonces come from the caller (fresh randomness).

use alloy_primitives::{Address, B256};

use crate::sign::{Keypair, PublicKey, SigError, verify};
use crate::types::{Domain, PeerAuth};
use crate::wire::{Frame, Hello, VERSION};

/// The authenticated peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its broker address.
    pub address: Address,
    /// Its public key.
    pub key: PublicKey,
}

/// Handshake failures: close the link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// A frame that does not belong at this step.
    #[error("unexpected frame in handshake")]
    Unexpected,
    /// The peer speaks another protocol version.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// The responder's Hello has no signature.
    #[error("missing peer signature")]
    MissingAuth,
    /// The peer is not who we wanted to reach.
    #[error("peer is {got}, expected {expected}")]
    WrongPeer {
        /// Expected address.
        expected: Address,
        /// Announced address.
        got: Address,
    },
    /// Bad signature.
    #[error("bad peer signature: {0}")]
    Signature(#[from] SigError),
}

fn auth_digest(
    domain: &Domain,
    from: Address,
    to: Address,
    nonce_from: B256,
    nonce_to: B256,
) -> B256 {
    domain.digest(&PeerAuth {
        from,
        to,
        nonceFrom: nonce_from,
        nonceTo: nonce_to,
    })
}

/// The connecting side (the buyer).
#[derive(Debug, Clone)]
pub struct Initiator {
    domain: Domain,
    me: Address,
    nonce: B256,
    expected: Option<Address>,
}

impl Initiator {
    /// Starts a handshake towards `expected_peer` (`None`: accept any); returns the `Hello` to send.
    pub fn new(
        domain: Domain,
        me: &Keypair,
        nonce: B256,
        expected_peer: Option<Address>,
    ) -> (Self, Frame) {
        let hello = Frame::Hello(Hello {
            version: VERSION,
            from: me.address(),
            nonce,
            auth: None,
        });
        (
            Self {
                domain,
                me: me.address(),
                nonce,
                expected: expected_peer,
            },
            hello,
        )
    }

    /// Handles the responder's `Hello`: returns the `Auth` frame to send and the authenticated peer.
    pub fn on_hello(
        &self,
        me: &Keypair,
        frame: Frame,
    ) -> Result<(Frame, PeerInfo), HandshakeError> {
        let Frame::Hello(h) = frame else {
            return Err(HandshakeError::Unexpected);
        };
        if h.version != VERSION {
            return Err(HandshakeError::Version(h.version));
        }
        if let Some(expected) = self.expected
            && expected != h.from
        {
            return Err(HandshakeError::WrongPeer {
                expected,
                got: h.from,
            });
        }
        let sig = h.auth.ok_or(HandshakeError::MissingAuth)?;
        let key = verify(
            &auth_digest(&self.domain, h.from, self.me, h.nonce, self.nonce),
            &sig,
            h.from,
        )?;
        let mine = me.sign(&auth_digest(
            &self.domain,
            self.me,
            h.from,
            self.nonce,
            h.nonce,
        ));
        Ok((
            Frame::Auth { sig: mine },
            PeerInfo {
                address: h.from,
                key,
            },
        ))
    }
}

/// The accepting side (the seller).
#[derive(Debug, Clone)]
pub struct Responder {
    domain: Domain,
    me: Address,
    nonce: B256,
    peer: Option<(Address, B256)>,
}

impl Responder {
    /// Waits for an initiator's `Hello`.
    pub fn new(domain: Domain, me: &Keypair, nonce: B256) -> Self {
        Self {
            domain,
            me: me.address(),
            nonce,
            peer: None,
        }
    }

    /// Handles the initiator's `Hello`; returns our signed `Hello` to send.
    pub fn on_hello(&mut self, me: &Keypair, frame: Frame) -> Result<Frame, HandshakeError> {
        let Frame::Hello(h) = frame else {
            return Err(HandshakeError::Unexpected);
        };
        if h.version != VERSION {
            return Err(HandshakeError::Version(h.version));
        }
        if self.peer.is_some() || h.auth.is_some() {
            return Err(HandshakeError::Unexpected);
        }
        let sig = me.sign(&auth_digest(
            &self.domain,
            self.me,
            h.from,
            self.nonce,
            h.nonce,
        ));
        self.peer = Some((h.from, h.nonce));
        Ok(Frame::Hello(Hello {
            version: VERSION,
            from: self.me,
            nonce: self.nonce,
            auth: Some(sig),
        }))
    }

    /// Handles the initiator's `Auth`: returns the authenticated peer (check it against an
    /// allow-list if the seller has one).
    pub fn on_auth(&self, frame: Frame) -> Result<PeerInfo, HandshakeError> {
        let Frame::Auth { sig } = frame else {
            return Err(HandshakeError::Unexpected);
        };
        let (peer, peer_nonce) = self.peer.ok_or(HandshakeError::Unexpected)?;
        let key = verify(
            &auth_digest(&self.domain, peer, self.me, peer_nonce, self.nonce),
            &sig,
            peer,
        )?;
        Ok(PeerInfo { address: peer, key })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutual_auth() {
        let domain = Domain::new(1, Address::repeat_byte(9));
        let buyer = Keypair::from_secret_bytes(&[1; 32]).unwrap();
        let seller = Keypair::from_secret_bytes(&[2; 32]).unwrap();
        let (init, hello) =
            Initiator::new(domain, &buyer, B256::repeat_byte(1), Some(seller.address()));
        let mut resp = Responder::new(domain, &seller, B256::repeat_byte(2));
        let reply = resp.on_hello(&seller, hello).unwrap();
        let (auth, peer) = init.on_hello(&buyer, reply.clone()).unwrap();
        assert_eq!(peer.address, seller.address());
        let p = resp.on_auth(auth.clone()).unwrap();
        assert_eq!(p.address, buyer.address());
        assert_eq!(p.key, *buyer.public());
        // replaying the auth to a responder with another nonce fails
        let mut resp2 = Responder::new(domain, &seller, B256::repeat_byte(3));
        let (_, hello2) = Initiator::new(domain, &buyer, B256::repeat_byte(1), None);
        resp2.on_hello(&seller, hello2).unwrap();
        assert!(resp2.on_auth(auth).is_err());
        // wrong expected seller
        let (init3, _) =
            Initiator::new(domain, &buyer, B256::repeat_byte(1), Some(buyer.address()));
        assert!(matches!(
            init3.on_hello(&buyer, reply),
            Err(HandshakeError::WrongPeer { .. })
        ));
    }
}
