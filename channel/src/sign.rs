//! secp256k1 keys and Ethereum-style 65-byte signatures over EIP-712 digests.
//!
//! Signatures are `r ‖ s ‖ v` with `v ∈ {27, 28}` and **low-s only**, exactly what OpenZeppelin's
//! `ECDSA.recover` accepts on-chain. [`verify`] recovers the signer and compares addresses;
//! [`PublicKey::verify`] is the fast path when the signer's key is already known (no recovery, no
//! keccak of the key), and still checks `v`, since the judge recovers with it.

use alloy_primitives::{Address, B256, keccak256};
use k256::ecdsa::{RecoveryId, Signature as EcdsaSig, SigningKey, VerifyingKey};
use k256::elliptic_curve::ops::{Invert, MulByGeneratorVartime, Reduce};
use k256::elliptic_curve::point::AffineCoordinates;
use k256::elliptic_curve::scalar::IsHigh;
use k256::{ProjectivePoint, Scalar};

/// Why a signature or key was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// A signature is exactly 65 bytes.
    #[error("signature must be 65 bytes, got {0}")]
    Length(usize),
    /// `v` must be 27 or 28.
    #[error("signature v must be 27 or 28, got {0}")]
    BadV(u8),
    /// `s` in the upper half of the curve order (malleable form).
    #[error("high-s signature")]
    HighS,
    /// `r` or `s` is zero or not below the curve order.
    #[error("malformed signature scalars")]
    Malformed,
    /// The signature does not verify (no key recovers, or the equation fails).
    #[error("invalid signature")]
    Invalid,
    /// Valid, but by someone else.
    #[error("signed by {got}, expected {expected}")]
    WrongSigner {
        /// Who should have signed.
        expected: Address,
        /// Who did.
        got: Address,
    },
}

/// Why a key could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Secret scalar zero or not below the curve order.
    #[error("invalid secret key")]
    InvalidSecret,
    /// Not a valid SEC1 encoding of a curve point.
    #[error("invalid public key")]
    InvalidPublic,
}

/// A 65-byte Ethereum signature `r ‖ s ‖ v`.
///
/// Building one only checks the length: validity is checked by [`verify`] / [`PublicKey::verify`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 65]);

impl Signature {
    /// From exactly 65 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Self, SigError> {
        let arr: [u8; 65] = b.try_into().map_err(|_| SigError::Length(b.len()))?;
        Ok(Self(arr))
    }

    /// The raw bytes, as the judge takes them (`bytes sig`).
    pub fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }

    /// `v` (27 or 28 for a well-formed signature).
    pub fn v(&self) -> u8 {
        self.0[64]
    }

    /// Parses into k256's form; checks `v`, range and low-s.
    fn parse(&self) -> Result<(EcdsaSig, bool), SigError> {
        let odd = match self.v() {
            27 => false,
            28 => true,
            v => return Err(SigError::BadV(v)),
        };
        let sig = EcdsaSig::from_slice(&self.0[..64]).map_err(|_| SigError::Malformed)?;
        if bool::from(sig.s().is_high()) {
            return Err(SigError::HighS);
        }
        Ok((sig, odd))
    }
}

impl core::fmt::Debug for Signature {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Signature(0x")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl serde::Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = crate::wire::adapters::bytes::deserialize(d)?;
        Signature::from_slice(&v).map_err(serde::de::Error::custom)
    }
}

/// A secp256k1 public key with its precomputed Ethereum address.
#[derive(Clone, Copy)]
pub struct PublicKey {
    key: VerifyingKey,
    point: ProjectivePoint,
    address: Address,
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        // The address is a hash of the key: comparing keys only when addresses match is cheap.
        self.address == other.address && self.key == other.key
    }
}

impl Eq for PublicKey {}

impl core::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PublicKey({})", self.address)
    }
}

impl PublicKey {
    fn from_verifying(key: VerifyingKey) -> Self {
        let enc = key.to_sec1_point(false);
        let bytes = enc.as_bytes();
        // An uncompressed SEC1 point is 0x04 ‖ x ‖ y.
        let hash = keccak256(bytes.get(1..).unwrap_or_default());
        let address = Address::from_slice(&hash[12..]);
        let point = ProjectivePoint::from(*key.as_affine());
        Self {
            key,
            point,
            address,
        }
    }

    /// From a SEC1 encoding (33-byte compressed or 65-byte uncompressed).
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_sec1_bytes(bytes).map_err(|_| KeyError::InvalidPublic)?;
        Ok(Self::from_verifying(key))
    }

    /// The 33-byte compressed SEC1 encoding.
    pub fn to_sec1_compressed(&self) -> [u8; 33] {
        let enc = self.key.to_sec1_point(true);
        let mut out = [0u8; 33];
        let b = enc.as_bytes();
        if b.len() == 33 {
            out.copy_from_slice(b);
        }
        out
    }

    /// The Ethereum address of this key.
    pub fn address(&self) -> Address {
        self.address
    }

    pub(crate) fn affine(&self) -> &k256::AffinePoint {
        self.key.as_affine()
    }

    /// Verifies `sig` over `digest` by this key (fast path: no recovery).
    ///
    /// Rejects what [`verify`] rejects, including a `v` that would make the judge's `ecrecover`
    /// return another address.
    pub fn verify(&self, digest: &B256, sig: &Signature) -> Result<(), SigError> {
        let (sig, odd) = sig.parse()?;
        let (r, s) = sig.split_scalars();
        let z =
            <Scalar as Reduce<k256::U256>>::reduce(&k256::U256::from_be_slice(digest.as_slice()));
        let s_inv = *s.invert_vartime();
        let u1 = z * s_inv;
        let u2 = *r * s_inv;
        let big_r = ProjectivePoint::mul_by_generator_and_mul_add_vartime(&u1, &u2, &self.point)
            .to_affine();
        let x = big_r.x();
        // r must equal R.x exactly (not only mod n): Ethereum's v cannot express a reduced x.
        if x.as_slice() != r.to_bytes().as_slice() {
            return Err(SigError::Invalid);
        }
        if bool::from(big_r.y_is_odd()) != odd {
            return Err(SigError::Invalid);
        }
        Ok(())
    }
}

/// Recovers the signer's public key of `sig` over `digest`.
pub fn recover(digest: &B256, sig: &Signature) -> Result<PublicKey, SigError> {
    let (esig, odd) = sig.parse()?;
    let recid = RecoveryId::new(odd, false);
    let key = VerifyingKey::recover_from_prehash(digest.as_slice(), &esig, recid)
        .map_err(|_| SigError::Invalid)?;
    Ok(PublicKey::from_verifying(key))
}

/// Verifies that `sig` over `digest` was made by `expected`; returns the signer's public key, so a
/// caller can switch to [`PublicKey::verify`] for that signer's next signatures.
pub fn verify(digest: &B256, sig: &Signature, expected: Address) -> Result<PublicKey, SigError> {
    let key = recover(digest, sig)?;
    if key.address != expected {
        return Err(SigError::WrongSigner {
            expected,
            got: key.address,
        });
    }
    Ok(key)
}

/// A secp256k1 signing key and its address.
#[derive(Clone)]
pub struct Keypair {
    secret: SigningKey,
    public: PublicKey,
}

impl core::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Keypair({})", self.public.address)
    }
}

impl Keypair {
    /// From a 32-byte big-endian secret scalar (e.g. an Ethereum private key). The caller brings
    /// the entropy: the engine has no random source.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Result<Self, KeyError> {
        let secret = SigningKey::from_slice(secret).map_err(|_| KeyError::InvalidSecret)?;
        let public = PublicKey::from_verifying(*secret.verifying_key());
        Ok(Self { secret, public })
    }

    /// The Ethereum address.
    pub fn address(&self) -> Address {
        self.public.address
    }

    /// The public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs a 32-byte digest: RFC 6979 deterministic nonce, low-s, `v ∈ {27, 28}`.
    pub fn sign(&self, digest: &B256) -> Signature {
        let (sig, recid) = self.secret.sign_prehash_recoverable(digest.as_slice());
        // k256 normalizes s (Secp256k1::NORMALIZE_S) and adjusts the recovery id accordingly.
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = 27 + u8::from(recid.is_y_odd());
        Signature(out)
    }

    /// ECDH with `peer`: the x-coordinate of `secret * peer`.
    pub(crate) fn ecdh(&self, peer: &PublicKey) -> [u8; 32] {
        let shared = k256::ecdh::diffie_hellman(self.secret.as_nonzero_scalar(), peer.affine());
        let mut out = [0u8; 32];
        out.copy_from_slice(shared.raw_secret_bytes().as_slice());
        out
    }

    /// HKDF-derived secret material bound to this key and `label`: lets the engine derive per-stream
    /// secrets (epoch keys) that are stable across restarts without persisting extra secrets.
    pub(crate) fn derive_secret(&self, label: &[u8]) -> [u8; 32] {
        let ikm = self.secret.to_bytes();
        let hk = hkdf::Hkdf::<k256::sha2::Sha256>::new(Some(b"supra-derive-v1"), ikm.as_slice());
        let mut out = [0u8; 32];
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(label, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kp(b: u8) -> Keypair {
        Keypair::from_secret_bytes(&[b; 32]).unwrap()
    }

    #[test]
    fn known_address() {
        // Anvil's first account.
        let sk: [u8; 32] = alloy_primitives::hex!(
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
        );
        let k = Keypair::from_secret_bytes(&sk).unwrap();
        assert_eq!(
            k.address(),
            alloy_primitives::address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266")
        );
    }

    #[test]
    fn sign_verify_round_trip() {
        let k = kp(7);
        for i in 0..50u8 {
            let d = keccak256([i]);
            let s = k.sign(&d);
            assert!(s.v() == 27 || s.v() == 28);
            assert_eq!(verify(&d, &s, k.address()).unwrap().address(), k.address());
            k.public().verify(&d, &s).unwrap();
        }
    }

    #[test]
    fn rejects_bad_signatures() {
        let k = kp(7);
        let other = kp(8);
        let d = keccak256(b"x");
        let s = k.sign(&d);
        assert_eq!(
            Signature::from_slice(&[0u8; 64]).unwrap_err(),
            SigError::Length(64)
        );
        // wrong signer
        assert!(matches!(
            verify(&d, &s, other.address()),
            Err(SigError::WrongSigner { .. })
        ));
        assert!(other.public().verify(&d, &s).is_err());
        // bad v
        let mut bad = s;
        bad.0[64] = 29;
        assert_eq!(
            verify(&d, &bad, k.address()).unwrap_err(),
            SigError::BadV(29)
        );
        assert_eq!(k.public().verify(&d, &bad).unwrap_err(), SigError::BadV(29));
        // flipped v recovers someone else / fails the fast path
        let mut flip = s;
        flip.0[64] = if s.v() == 27 { 28 } else { 27 };
        assert!(verify(&d, &flip, k.address()).is_err());
        assert_eq!(k.public().verify(&d, &flip).unwrap_err(), SigError::Invalid);
        // high s: s' = n - s, v flipped, is the malleable twin
        let esig = EcdsaSig::from_slice(&s.0[..64]).unwrap();
        let (r, s_scalar) = esig.split_scalars();
        let high = EcdsaSig::from_scalars(r.to_bytes(), (-*s_scalar).to_bytes()).unwrap();
        let mut hs = [0u8; 65];
        hs[..64].copy_from_slice(&high.to_bytes());
        hs[64] = flip.v();
        let hs = Signature(hs);
        assert_eq!(verify(&d, &hs, k.address()).unwrap_err(), SigError::HighS);
        assert_eq!(k.public().verify(&d, &hs).unwrap_err(), SigError::HighS);
        // zero r/s
        let mut z = [0u8; 65];
        z[64] = 27;
        assert_eq!(
            verify(&d, &Signature(z), k.address()).unwrap_err(),
            SigError::Malformed
        );
        // wrong digest
        assert!(k.public().verify(&keccak256(b"y"), &s).is_err());
    }

    #[test]
    fn ecdh_agrees() {
        let a = kp(1);
        let b = kp(2);
        assert_eq!(a.ecdh(b.public()), b.ecdh(a.public()));
    }

    #[test]
    fn public_key_sec1_round_trip() {
        let k = kp(3);
        let c = k.public().to_sec1_compressed();
        assert_eq!(PublicKey::from_sec1(&c).unwrap(), *k.public());
        assert!(PublicKey::from_sec1(&[0u8; 33]).is_err());
    }
}
