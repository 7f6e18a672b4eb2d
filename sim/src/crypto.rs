//! What signatures cost on this machine, to tell how much of a SUPRA run's wall time is
//! cryptography (the engine signs every message once and the buyer verifies it once): real k256,
//! or the `testkit` fast simulation keys ([`Crypto::Fast`]).

use std::hint::black_box;
use std::time::Instant;

use alloy_primitives::{B256, keccak256};
use supra_channel::testkit::{fast_test_key, test_key};

use crate::params::Crypto;

/// Measured cost of one signature and one known-key verification.
#[derive(Clone, Copy, Debug)]
pub struct CryptoCost {
    /// `Keypair::sign`, µs.
    pub sign_us: f64,
    /// `PublicKey::verify` (the engines' known-key path), µs.
    pub verify_us: f64,
}

impl CryptoCost {
    /// Estimated time of `signs` signatures and `verifies` verifications, ms.
    pub fn estimate_ms(&self, signs: u64, verifies: u64) -> f64 {
        (signs as f64 * self.sign_us + verifies as f64 * self.verify_us) / 1e3
    }
}

/// Times `n` signatures and `n` verifications with the engine's own key code in mode `crypto`,
/// three rounds, keeping the fastest (the least disturbed by other work on the machine).
pub fn calibrate(n: u64, crypto: Crypto) -> CryptoCost {
    let key = match crypto {
        Crypto::Real => test_key("calibrate", 0),
        Crypto::Fast => fast_test_key("calibrate", 0),
    };
    let digests: Vec<B256> = (0..n.max(1)).map(|i| keccak256(i.to_be_bytes())).collect();
    for d in digests.iter().take(50) {
        black_box(key.sign(d));
    }
    let (mut sign_us, mut verify_us) = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let t = Instant::now();
        let sigs: Vec<_> = digests.iter().map(|d| key.sign(d)).collect();
        sign_us = sign_us.min(t.elapsed().as_secs_f64() * 1e6 / digests.len() as f64);
        let t = Instant::now();
        for (d, s) in digests.iter().zip(&sigs) {
            black_box(key.public().verify(d, s).is_ok());
        }
        verify_us = verify_us.min(t.elapsed().as_secs_f64() * 1e6 / digests.len() as f64);
    }
    CryptoCost { sign_us, verify_us }
}
