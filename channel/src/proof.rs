//! Amortised signatures: the seller signs one [`Batch`] — the Merkle root of a run of its messages'
//! digests — instead of every message (docs/PROTOCOL.md §1, Batches).
//!
//! A message is seller-signed when its [`MessageProof`] holds: the batch is of the message's stream
//! and its range holds the message's seq, the Merkle path folds the message's digest onto the batch's
//! root, and the seller signed the batch. The judge checks exactly this (`SupraJudge._checkSigned`,
//! with OpenZeppelin's `MerkleProof.processProofCalldata`); [`VerifiedBatches`] lets a buyer check
//! each batch's signature once and only hash for the rest of its messages.

use std::collections::{HashMap, VecDeque};

use alloy_primitives::{B256, Keccak256};
use serde::{Deserialize, Serialize};

use crate::sign::{Keypair, PublicKey, SigError, Signature};
use crate::types::{Batch, Domain, Message};
use crate::wire::adapters;

/// Most messages in one batch (`SupraJudge.MAX_BATCH`).
pub const MAX_BATCH: u64 = 256;
/// Longest Merkle path a proof may carry: `log2(MAX_BATCH)` (`SupraJudge.MAX_PROOF_DEPTH`).
pub const MAX_PROOF_DEPTH: usize = 8;

/// A parent node: keccak256 of its two children in ascending order (OpenZeppelin's
/// `Hashes.commutativeKeccak256`).
pub fn parent(a: B256, b: B256) -> B256 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = Keccak256::new();
    h.update(lo);
    h.update(hi);
    h.finalize()
}

/// Folds `path` onto `leaf`: the root the path leads to.
pub fn fold_path(leaf: B256, path: &[B256]) -> B256 {
    path.iter().fold(leaf, |node, sibling| parent(node, *sibling))
}

/// A batch's Merkle tree over its messages' digests, every level kept to hand out paths.
///
/// A level with an odd count carries its last node up unchanged (no sibling in its path).
#[derive(Clone, Debug)]
pub struct MerkleTree {
    levels: Vec<Vec<B256>>,
}

impl MerkleTree {
    /// Builds the tree of `leaves` (at least one).
    pub fn new(leaves: Vec<B256>) -> Self {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let above = below
                .chunks(2)
                .map(|pair| match pair {
                    [a, b] => parent(*a, *b),
                    [a] => *a,
                    _ => B256::ZERO,
                })
                .collect();
            levels.push(above);
        }
        Self { levels }
    }

    /// The root (zero for an empty tree).
    pub fn root(&self) -> B256 {
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default()
    }

    /// The path of leaf `index`, from the leaf up.
    pub fn path(&self, mut index: usize) -> Vec<B256> {
        let mut path = Vec::new();
        for level in &self.levels[..self.levels.len().saturating_sub(1)] {
            if let Some(sibling) = level.get(index ^ 1) {
                path.push(*sibling);
            }
            index /= 2;
        }
        path
    }
}

/// Why a [`MessageProof`] does not show that the seller signed a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The batch is of another stream than the message.
    #[error("the batch is of another stream than the message")]
    WrongStream,
    /// The message's seq is outside the batch's range (the judge's `NotInBatch`).
    #[error("message {seq} is not in batch {first}..={last}")]
    NotInBatch {
        /// The message's seq.
        seq: u64,
        /// The batch's first seq.
        first: u64,
        /// The batch's last seq.
        last: u64,
    },
    /// The batch covers more than [`MAX_BATCH`] messages, or the path is longer than
    /// [`MAX_PROOF_DEPTH`] (the judge's `BatchTooLarge`).
    #[error("batch or path too large")]
    BatchTooLarge,
    /// The path does not lead from the message's digest to the batch's root: the message is
    /// not one of the batch's (the judge's `WrongRoot`).
    #[error("the message is not in the batch (its path leads to another root)")]
    WrongRoot,
    /// The batch's signature is not the seller's.
    #[error("batch signature: {0}")]
    Sig(#[from] SigError),
}

/// What proves that the seller signed a message: a batch, the seller's signature of it, and the
/// message digest's path to the batch's root (`BatchProof` in SupraTypes.sol).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageProof {
    /// The signed batch.
    #[serde(with = "adapters::BatchDef")]
    pub batch: Batch,
    /// The seller's signature of `batch`.
    pub sig: Signature,
    /// Sibling hashes from the leaf up.
    #[serde(with = "adapters::b256_vec")]
    pub path: Vec<B256>,
}

impl MessageProof {
    /// Signs a batch of one message (`root` = its digest, empty path).
    pub fn sign_single(domain: &Domain, key: &Keypair, message: &Message, digest: B256) -> Self {
        let batch = Batch {
            streamId: message.streamId,
            firstSeq: message.seq,
            lastSeq: message.seq,
            root: digest,
        };
        let sig = key.sign(&domain.digest(&batch));
        Self {
            batch,
            sig,
            path: Vec::new(),
        }
    }

    /// Signs one batch over `messages` (consecutive seqs of one stream, with their digests, at
    /// most [`MAX_BATCH`]) and returns each message's proof, in order.
    pub fn sign_batch(domain: &Domain, key: &Keypair, messages: &[(&Message, B256)]) -> Vec<Self> {
        let (Some((first, _)), Some((last, _))) = (messages.first(), messages.last()) else {
            return Vec::new();
        };
        let tree = MerkleTree::new(messages.iter().map(|(_, d)| *d).collect());
        let batch = Batch {
            streamId: first.streamId,
            firstSeq: first.seq,
            lastSeq: last.seq,
            root: tree.root(),
        };
        let sig = key.sign(&domain.digest(&batch));
        (0..messages.len())
            .map(|i| Self {
                batch: batch.clone(),
                sig,
                path: tree.path(i),
            })
            .collect()
    }

    /// Checks everything but the signature: same stream, seq in range, sizes, and the path from
    /// `digest` (the message's EIP-712 digest) to the root. Returns the batch's digest, whose
    /// signature remains to be checked.
    pub fn check_membership(
        &self,
        domain: &Domain,
        message: &Message,
        digest: B256,
    ) -> Result<B256, ProofError> {
        self.check_shape(message)?;
        if fold_path(digest, &self.path) != self.batch.root {
            return Err(ProofError::WrongRoot);
        }
        Ok(domain.digest(&self.batch))
    }

    /// What needs no hashing: same stream, seq in range, batch and path within the judge's sizes.
    fn check_shape(&self, message: &Message) -> Result<(), ProofError> {
        let b = &self.batch;
        if b.streamId != message.streamId {
            return Err(ProofError::WrongStream);
        }
        if message.seq < b.firstSeq || message.seq > b.lastSeq {
            return Err(ProofError::NotInBatch {
                seq: message.seq,
                first: b.firstSeq,
                last: b.lastSeq,
            });
        }
        if b.lastSeq - b.firstSeq >= MAX_BATCH || self.path.len() > MAX_PROOF_DEPTH {
            return Err(ProofError::BatchTooLarge);
        }
        Ok(())
    }

    /// Checks that `seller` signed `message` (whose digest is `digest`) through this proof.
    pub fn verify(
        &self,
        domain: &Domain,
        seller: &PublicKey,
        message: &Message,
        digest: B256,
    ) -> Result<(), ProofError> {
        let batch_digest = self.check_membership(domain, message, digest)?;
        seller.verify(&batch_digest, &self.sig)?;
        Ok(())
    }
}

/// What a buyer remembers of the batches it checked, so that a batch costs one signature check
/// and one hash per tree node, not a signature and a whole path per message: the last few batches
/// whose seller signature it verified, and the parent nodes (`parent(a, b)` for each pair it
/// hashed) of the newest batch's tree. A message's path is still folded step by step to the
/// root; a step hashed before is looked up instead (`parent` is a pure function), so what is
/// accepted, and kept as evidence for the judge, is exactly what `MessageProof::verify` accepts.
#[derive(Clone, Debug, Default)]
pub struct VerifiedBatches {
    /// Whose batches these are: a change of domain or seller forgets everything.
    owner: Option<(Domain, alloy_primitives::Address)>,
    /// Checked batches with their signature bytes, oldest first.
    recent: VecDeque<(Batch, Signature)>,
    /// The root whose tree `parents` holds nodes of.
    parents_of: B256,
    /// `(lo, hi) -> parent(lo, hi)` for pairs hashed under `parents_of`.
    parents: HashMap<(B256, B256), B256>,
}

/// How many checked batches a buyer remembers (a batch's messages arrive together; a few cover
/// retransmissions that interleave with new batches).
const REMEMBERED_BATCHES: usize = 8;
/// Most parent nodes remembered: the largest tree has `MAX_BATCH - 1` inner nodes; twice that
/// leaves room for a few steps that are not the tree's, and a seller sending paths of its choosing
/// makes the memo start over, not grow (~50 KiB at most).
const REMEMBERED_PARENTS: usize = 2 * MAX_BATCH as usize;

impl VerifiedBatches {
    /// Checks `proof` for `message` like [`MessageProof::verify`], skipping the signature when
    /// this batch's was checked already. Returns `true` when a signature was verified now.
    pub fn verify(
        &mut self,
        domain: &Domain,
        seller: &PublicKey,
        message: &Message,
        digest: B256,
        proof: &MessageProof,
    ) -> Result<bool, ProofError> {
        let owner = (*domain, seller.address());
        if self.owner != Some(owner) {
            *self = VerifiedBatches {
                owner: Some(owner),
                ..VerifiedBatches::default()
            };
        }
        proof.check_shape(message)?;
        if self.fold(digest, &proof.path, proof.batch.root) != proof.batch.root {
            return Err(ProofError::WrongRoot);
        }
        // The root was reached from this message, so a remembered batch equal in every field,
        // signed with the same bytes, was verified for it. The signature bytes must be the ones
        // checked: the proof is kept as evidence for the judge, and a seller must not slip a
        // broken signature into it.
        if self
            .recent
            .iter()
            .any(|(batch, sig)| *batch == proof.batch && *sig == proof.sig)
        {
            return Ok(false);
        }
        let batch_digest = domain.digest(&proof.batch);
        seller.verify(&batch_digest, &proof.sig)?;
        if self.recent.len() == REMEMBERED_BATCHES {
            self.recent.pop_front();
        }
        self.recent.push_back((proof.batch.clone(), proof.sig));
        Ok(true)
    }

    /// [`fold_path`], with the parents hashed for the tree of `root` remembered.
    fn fold(&mut self, leaf: B256, path: &[B256], root: B256) -> B256 {
        if self.parents_of != root || self.parents.len() + path.len() > REMEMBERED_PARENTS {
            self.parents.clear();
            self.parents_of = root;
        }
        path.iter().fold(leaf, |node, sibling| {
            let pair = if node <= *sibling {
                (node, *sibling)
            } else {
                (*sibling, node)
            };
            *self
                .parents
                .entry(pair)
                .or_insert_with(|| parent(pair.0, pair.1))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, keccak256};

    fn domain() -> Domain {
        Domain::new(31337, Address::repeat_byte(0x11))
    }

    fn messages(n: u64) -> Vec<(Message, B256)> {
        let d = domain();
        let mut prev = B256::ZERO;
        (0..n)
            .map(|seq| {
                let m = Message {
                    streamId: B256::repeat_byte(7),
                    seq: 10 + seq,
                    timestamp: 1_000 + seq,
                    payloadHash: keccak256(seq.to_le_bytes()),
                    prev,
                };
                prev = d.digest(&m);
                (m, prev)
            })
            .collect()
    }

    #[test]
    fn every_message_of_every_batch_size_verifies() {
        let (d, key) = (domain(), Keypair::from_secret_bytes(&[3; 32]).unwrap());
        for n in [1u64, 2, 3, 5, 8, 13, 64, 255, 256] {
            let ms = messages(n);
            let refs: Vec<_> = ms.iter().map(|(m, d)| (m, *d)).collect();
            let proofs = MessageProof::sign_batch(&d, &key, &refs);
            assert_eq!(proofs.len() as u64, n);
            for ((m, digest), p) in ms.iter().zip(&proofs) {
                p.verify(&d, key.public(), m, *digest).unwrap();
                assert!(p.path.len() <= MAX_PROOF_DEPTH);
            }
        }
    }

    #[test]
    fn a_forged_leaf_path_stream_or_range_is_refused() {
        let (d, key) = (domain(), Keypair::from_secret_bytes(&[3; 32]).unwrap());
        let ms = messages(5);
        let refs: Vec<_> = ms.iter().map(|(m, d)| (m, *d)).collect();
        let proofs = MessageProof::sign_batch(&d, &key, &refs);
        let (m, digest) = &ms[2];
        // Another payload under the same proof.
        let mut forged = m.clone();
        forged.payloadHash = B256::repeat_byte(0xee);
        let fd = d.digest(&forged);
        assert_eq!(
            proofs[2].verify(&d, key.public(), &forged, fd),
            Err(ProofError::WrongRoot)
        );
        // A wrong sibling.
        let mut p = proofs[2].clone();
        p.path[0] = B256::repeat_byte(1);
        assert_eq!(p.verify(&d, key.public(), m, *digest), Err(ProofError::WrongRoot));
        // An inner node presented as a message cannot be: the judge recomputes the leaf from a
        // Message. Out of range and another stream are refused before any hashing.
        let mut outside = m.clone();
        outside.seq = 99;
        assert!(matches!(
            proofs[2].verify(&d, key.public(), &outside, d.digest(&outside)),
            Err(ProofError::NotInBatch { .. })
        ));
        let mut other = m.clone();
        other.streamId = B256::repeat_byte(8);
        assert_eq!(
            proofs[2].verify(&d, key.public(), &other, d.digest(&other)),
            Err(ProofError::WrongStream)
        );
        // Another signer.
        let mallory = Keypair::from_secret_bytes(&[4; 32]).unwrap();
        assert!(matches!(
            proofs[2].verify(&d, mallory.public(), m, *digest),
            Err(ProofError::Sig(_))
        ));
    }

    #[test]
    fn a_batch_signature_is_checked_once() {
        let (d, key) = (domain(), Keypair::from_secret_bytes(&[3; 32]).unwrap());
        let ms = messages(16);
        let refs: Vec<_> = ms.iter().map(|(m, d)| (m, *d)).collect();
        let proofs = MessageProof::sign_batch(&d, &key, &refs);
        let mut seen = VerifiedBatches::default();
        let checked: Vec<bool> = ms
            .iter()
            .zip(&proofs)
            .map(|((m, digest), p)| seen.verify(&d, key.public(), m, *digest, p).unwrap())
            .collect();
        assert_eq!(checked.iter().filter(|c| **c).count(), 1);
        // The same batch with other signature bytes is checked again (and refused).
        let mut broken = proofs[5].clone();
        broken.sig.0[3] ^= 1;
        assert!(seen.verify(&d, key.public(), &ms[5].0, ms[5].1, &broken).is_err());
        // A remembered batch does not vouch for a message outside its tree.
        let mut forged = ms[3].0.clone();
        forged.timestamp += 1;
        assert_eq!(
            seen.verify(&d, key.public(), &forged, d.digest(&forged), &proofs[3]),
            Err(ProofError::WrongRoot)
        );
    }

    #[test]
    fn a_batch_costs_one_hash_per_inner_node_and_any_forged_step_is_still_refused() {
        let (d, key) = (domain(), Keypair::from_secret_bytes(&[3; 32]).unwrap());
        for n in [1u64, 2, 5, 64, 256] {
            let ms = messages(n);
            let refs: Vec<_> = ms.iter().map(|(m, d)| (m, *d)).collect();
            let proofs = MessageProof::sign_batch(&d, &key, &refs);
            let mut seen = VerifiedBatches::default();
            for ((m, digest), p) in ms.iter().zip(&proofs) {
                seen.verify(&d, key.public(), m, *digest, p).unwrap();
            }
            assert_eq!(seen.parents.len() as u64, n - 1, "{n} messages: each inner node hashed once");
            // With every node of the tree remembered, a step that is not the tree's is hashed and
            // leads elsewhere: a wrong sibling at any level, or a path cut short or made longer.
            for ((m, digest), p) in ms.iter().zip(&proofs).step_by(7) {
                for level in 0..p.path.len() {
                    let mut forged = p.clone();
                    forged.path[level] = B256::repeat_byte(level as u8 + 1);
                    assert_eq!(seen.verify(&d, key.public(), m, *digest, &forged), Err(ProofError::WrongRoot));
                }
                if let Some(short) = p.path.len().checked_sub(1) {
                    let mut forged = p.clone();
                    forged.path.truncate(short);
                    assert_eq!(seen.verify(&d, key.public(), m, *digest, &forged), Err(ProofError::WrongRoot));
                }
                let mut longer = p.clone();
                longer.path.push(p.batch.root);
                if longer.path.len() <= MAX_PROOF_DEPTH {
                    assert_eq!(seen.verify(&d, key.public(), m, *digest, &longer), Err(ProofError::WrongRoot));
                }
            }
        }
    }

    #[test]
    fn single_batch_root_is_the_digest() {
        let (d, key) = (domain(), Keypair::from_secret_bytes(&[3; 32]).unwrap());
        let (m, digest) = &messages(1)[0];
        let p = MessageProof::sign_single(&d, &key, m, *digest);
        assert_eq!(p.batch.root, *digest);
        assert!(p.path.is_empty());
        p.verify(&d, key.public(), m, *digest).unwrap();
    }
}
