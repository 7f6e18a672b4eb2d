//! secp256k1 keys and Ethereum-style 65-byte signatures over EIP-712 digests.
//!
//! Signatures are `r ‖ s ‖ v` with `v ∈ {27, 28}` and **low-s only**, exactly what OpenZeppelin's
//! `ECDSA.recover` accepts on-chain. [`verify`] recovers the signer and compares addresses;
//! [`PublicKey::verify`] is the fast path when the signer's key is already known (no recovery, no
//! keccak of the key), and still checks `v`, since the judge recovers with it.
//!
//! # Fast simulation keys (feature `testkit` only)
//!
//! The simulator runs 10⁶-message subscriptions, where k256 would be ~90 % of the wall time. With
//! the `testkit` feature, `Keypair::fast_for_simulation` builds a key whose [`Keypair::sign`] /
//! [`PublicKey::verify`] are a keyed hash instead of ECDSA:
//!
//! * A fast key is an ordinary secp256k1 key (same secret scalar, same public point, same
//!   Ethereum address) whose **signature scheme** is replaced: a fast signature is
//!   `r = keccak256("supra-fast-sim-sig-v1" ‖ mac ‖ digest)`, `s = 0`, `v = 0`, where
//!   `mac = keccak256("supra-fast-sim-key-v1" ‖ secret)` is carried by the public key. Anyone
//!   holding a fast public key can forge its signatures: it models *who* signed what in a closed
//!   simulation, it is not a signature scheme.
//! * ECDH, sealing and the key's derived secrets keep using the real secret scalar and the real
//!   public point: sealing (key grants, epoch keys) is **real k256** in both modes, and a fast run
//!   seals exactly the bytes a real run seals.
//!
//! Safety properties (tests in this module and in `tests/fast_crypto.rs`):
//!
//! 1. **A normal build cannot construct a fast key.** The variant, its constructor and its code
//!    exist only with the `testkit` feature. In every build, keys parsed or recovered from bytes —
//!    [`PublicKey::from_sec1`], [`recover`], [`verify`], [`Keypair::from_secret_bytes`], records,
//!    the peer handshake — are real k256 keys: the only way to a fast key is calling
//!    `Keypair::fast_for_simulation` on a secret, and then [`Keypair::public`] of that key.
//! 2. **Fast and real never verify each other.** A fast signature has `v = 0` and `s = 0`: every
//!    real check rejects it before any curve arithmetic (`BadV`), and so does the judge on-chain
//!    (OpenZeppelin's `ECDSA.recover` needs `v ∈ {27, 28}` and a nonzero `s`). A fast key accepts
//!    only `v = 0`, `s = 0` and its own keyed hash, so it rejects every real signature
//!    (`v ∈ {27, 28}`). Fast and real public keys with the same address are not equal.
//! 3. **Feature unification opens no path from the network to fast mode.** The broker is built in
//!    the same workspace as the simulator, so `testkit` may be on in the broker binary. Whether a
//!    key is fast is decided only by the constructor that made it, never by input: frames carry
//!    signatures (bytes) and addresses, and every key the broker learns from a peer, a record or
//!    the chain comes from `from_sec1` / `recover` (property 1), hence is real and rejects fast
//!    signatures (property 2). The broker's own key comes from `from_secret_bytes`. A broker that
//!    nevertheless used a fast key of its own would only make signatures that every peer and the
//!    judge reject: fast mode can make something *fail*, never make a real check *pass*. A test
//!    (`tests/fast_crypto.rs`) checks that the broker's sources never name the fast constructor.

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
        let v = crate::wire::adapters::fixed::deserialize::<_, 65>(d)?;
        Signature::from_slice(&v).map_err(serde::de::Error::custom)
    }
}

/// How a key's signatures are made and checked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// secp256k1 ECDSA, low-s, `v ∈ {27, 28}`: what peers and the judge accept.
    K256,
    /// Simulation only: a keyed hash under this MAC key (see the module docs).
    #[cfg(feature = "testkit")]
    Fast([u8; 32]),
}

/// A secp256k1 public key with its precomputed Ethereum address.
///
/// Keys built from bytes ([`from_sec1`](Self::from_sec1), [`recover`]) are always real k256 keys;
/// see the module docs for the `testkit`-only fast keys.
#[derive(Clone, Copy)]
pub struct PublicKey {
    key: VerifyingKey,
    point: ProjectivePoint,
    address: Address,
    scheme: Scheme,
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        // The address is a hash of the key: comparing keys only when addresses match is cheap.
        self.address == other.address && self.scheme == other.scheme && self.key == other.key
    }
}

impl Eq for PublicKey {}

impl core::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_fast() {
            write!(f, "PublicKey({}, fast simulation key)", self.address)
        } else {
            write!(f, "PublicKey({})", self.address)
        }
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
            scheme: Scheme::K256,
        }
    }

    /// From a SEC1 encoding (33-byte compressed or 65-byte uncompressed). Always a real k256 key.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_sec1_bytes(bytes).map_err(|_| KeyError::InvalidPublic)?;
        Ok(Self::from_verifying(key))
    }

    /// The 33-byte compressed SEC1 encoding (of the real secp256k1 point, also for a fast
    /// simulation key: parsing it back gives a real key).
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

    /// Whether this is a `testkit` fast simulation key (always `false` without that feature).
    pub fn is_fast(&self) -> bool {
        match self.scheme {
            Scheme::K256 => false,
            #[cfg(feature = "testkit")]
            Scheme::Fast(_) => true,
        }
    }

    /// The real secp256k1 point (ECDH uses it, for fast simulation keys too).
    pub(crate) fn affine(&self) -> &k256::AffinePoint {
        self.key.as_affine()
    }

    /// Verifies `sig` over `digest` by this key (fast path: no recovery).
    ///
    /// Rejects what [`verify`] rejects, including a `v` that would make the judge's `ecrecover`
    /// return another address. A fast simulation key checks its keyed hash instead, and rejects
    /// every real signature.
    pub fn verify(&self, digest: &B256, sig: &Signature) -> Result<(), SigError> {
        match self.scheme {
            Scheme::K256 => self.verify_k256(digest, sig),
            #[cfg(feature = "testkit")]
            Scheme::Fast(mac) => fast::verify(&mac, digest, sig),
        }
    }

    fn verify_k256(&self, digest: &B256, sig: &Signature) -> Result<(), SigError> {
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

/// Recovers the signer's public key of `sig` over `digest`. Real k256 only: the result is a real
/// key, and a fast simulation signature never recovers (`v = 0` is rejected).
pub fn recover(digest: &B256, sig: &Signature) -> Result<PublicKey, SigError> {
    let (esig, odd) = sig.parse()?;
    let recid = RecoveryId::new(odd, false);
    let key = VerifyingKey::recover_from_prehash(digest.as_slice(), &esig, recid)
        .map_err(|_| SigError::Invalid)?;
    Ok(PublicKey::from_verifying(key))
}

/// Verifies that `sig` over `digest` was made by `expected`; returns the signer's public key, so a
/// caller can switch to [`PublicKey::verify`] for that signer's next signatures. Real k256 only,
/// like [`recover`].
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

/// A secp256k1 signing key and its address (a real k256 key, or with the `testkit` feature a fast
/// simulation key: see the module docs).
#[derive(Clone)]
pub struct Keypair {
    secret: SigningKey,
    public: PublicKey,
}

impl core::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_fast() {
            write!(f, "Keypair({}, fast simulation key)", self.public.address)
        } else {
            write!(f, "Keypair({})", self.public.address)
        }
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

    /// **Simulation only** (feature `testkit`): the key of `secret` with its signature scheme
    /// replaced by a cheap keyed hash (see the module docs). Same address, same ECDH key; its
    /// signatures are rejected by every real key, by [`verify`] / [`recover`] and by the judge.
    /// Never use it outside a closed simulation: its public key lets anyone forge its signatures.
    #[cfg(feature = "testkit")]
    pub fn fast_for_simulation(secret: &[u8; 32]) -> Result<Self, KeyError> {
        let mut k = Self::from_secret_bytes(secret)?;
        k.public.scheme = Scheme::Fast(fast::mac_key(secret));
        Ok(k)
    }

    /// Whether this is a `testkit` fast simulation key (always `false` without that feature).
    pub fn is_fast(&self) -> bool {
        self.public.is_fast()
    }

    /// The Ethereum address.
    pub fn address(&self) -> Address {
        self.public.address
    }

    /// The public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs a 32-byte digest: RFC 6979 deterministic nonce, low-s, `v ∈ {27, 28}` (a fast
    /// simulation key makes its keyed hash instead).
    pub fn sign(&self, digest: &B256) -> Signature {
        match self.public.scheme {
            Scheme::K256 => self.sign_k256(digest),
            #[cfg(feature = "testkit")]
            Scheme::Fast(mac) => fast::sign(&mac, digest),
        }
    }

    fn sign_k256(&self, digest: &B256) -> Signature {
        let (sig, recid) = self.secret.sign_prehash_recoverable(digest.as_slice());
        // k256 normalizes s (Secp256k1::NORMALIZE_S) and adjusts the recovery id accordingly.
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = 27 + u8::from(recid.is_y_odd());
        Signature(out)
    }

    /// ECDH with `peer`: the x-coordinate of `secret * peer` (real secp256k1 for every key).
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

/// The `testkit`-only keyed-hash scheme (see the module docs).
#[cfg(feature = "testkit")]
mod fast {
    use super::{B256, SigError, Signature, keccak256};

    /// `v` of a fast signature: never 27 or 28, so no real check accepts it.
    pub(super) const V: u8 = 0;

    /// The MAC key of a fast key, from its secret.
    pub(super) fn mac_key(secret: &[u8; 32]) -> [u8; 32] {
        let mut pre = Vec::with_capacity(21 + 32);
        pre.extend_from_slice(b"supra-fast-sim-key-v1");
        pre.extend_from_slice(secret);
        keccak256(&pre).0
    }

    fn tag(mac: &[u8; 32], digest: &B256) -> [u8; 32] {
        let mut pre = [0u8; 21 + 32 + 32];
        pre[..21].copy_from_slice(b"supra-fast-sim-sig-v1");
        pre[21..53].copy_from_slice(mac);
        pre[53..].copy_from_slice(digest.as_slice());
        keccak256(pre).0
    }

    /// `r = tag`, `s = 0`, `v = 0`.
    pub(super) fn sign(mac: &[u8; 32], digest: &B256) -> Signature {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&tag(mac, digest));
        out[64] = V;
        Signature(out)
    }

    pub(super) fn verify(mac: &[u8; 32], digest: &B256, sig: &Signature) -> Result<(), SigError> {
        // Shape first: a real signature (v 27/28, s nonzero) is never compared with a tag.
        if sig.v() != V || sig.0[32..64].iter().any(|b| *b != 0) {
            return Err(SigError::Invalid);
        }
        if sig.0[..32] != tag(mac, digest) {
            return Err(SigError::Invalid);
        }
        Ok(())
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

    #[cfg(feature = "testkit")]
    #[test]
    fn fast_keys_never_mix_with_real_ones() {
        let secret = [7u8; 32];
        let real = Keypair::from_secret_bytes(&secret).unwrap();
        let fast = Keypair::fast_for_simulation(&secret).unwrap();
        assert!(fast.is_fast() && fast.public().is_fast());
        assert!(!real.is_fast() && !real.public().is_fast());
        // Same key material: same address, same ECDH secret and point, same derived secrets.
        assert_eq!(fast.address(), real.address());
        assert_eq!(fast.public().to_sec1_compressed(), real.public().to_sec1_compressed());
        let peer = kp(9);
        assert_eq!(fast.ecdh(peer.public()), real.ecdh(peer.public()));
        assert_eq!(peer.ecdh(fast.public()), peer.ecdh(real.public()));
        assert_eq!(fast.derive_secret(b"x"), real.derive_secret(b"x"));
        // ... but not the same public key.
        assert_ne!(fast.public(), real.public());
        for i in 0..20u8 {
            let d = keccak256([i]);
            let fs = fast.sign(&d);
            let rs = real.sign(&d);
            assert_eq!(fs.v(), 0);
            assert_eq!(&fs.0[32..64], &[0u8; 32]);
            fast.public().verify(&d, &fs).unwrap();
            real.public().verify(&d, &rs).unwrap();
            // A fast signature is rejected by every real check, before any curve arithmetic.
            assert_eq!(real.public().verify(&d, &fs).unwrap_err(), SigError::BadV(0));
            assert_eq!(verify(&d, &fs, fast.address()).unwrap_err(), SigError::BadV(0));
            assert_eq!(recover(&d, &fs).unwrap_err(), SigError::BadV(0));
            // A real signature is rejected by the fast key.
            assert_eq!(fast.public().verify(&d, &rs).unwrap_err(), SigError::Invalid);
            // Fast keys do not verify each other, nor another digest.
            let other = Keypair::fast_for_simulation(&[8u8; 32]).unwrap();
            assert!(other.public().verify(&d, &fs).is_err());
            assert!(fast.public().verify(&keccak256([i, 1]), &fs).is_err());
            // Any change to the tag, s or v is rejected.
            for k in [0usize, 31, 32, 63, 64] {
                let mut bad = fs;
                bad.0[k] ^= 1;
                assert!(fast.public().verify(&d, &bad).is_err(), "byte {k}");
            }
        }
        // Bytes always parse to real keys.
        let parsed = PublicKey::from_sec1(&fast.public().to_sec1_compressed()).unwrap();
        assert!(!parsed.is_fast());
        assert_eq!(parsed, *real.public());
        let d = keccak256(b"r");
        assert!(!recover(&d, &real.sign(&d)).unwrap().is_fast());
    }
}
