//! The emulator's random numbers: SplitMix64, defined here so a seed means
//! the same losses and the same jitter on every machine and every version
//! (a library RNG may change its algorithm).

/// SplitMix64 (Steele, Lea, Flood 2014), the same generator as the
/// workload data's in `wirebench-formats`.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SplitMix64 {
    /// The generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// Stream number `k` of `seed`: a generator seeded with the `k`-th
    /// output of `SplitMix64::new(seed)`. Each direction of each client's
    /// link draws loss and jitter from its own stream, so adding jitter or
    /// a client never changes which packets another stream loses.
    pub fn stream(seed: u64, k: u64) -> SplitMix64 {
        SplitMix64::new(mix(seed.wrapping_add(k.wrapping_add(1).wrapping_mul(GAMMA))))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix(self.state)
    }

    /// Uniform in `0..=max`, by multiply-and-shift (bias below 2^-64 × max).
    pub fn up_to(&mut self, max: u64) -> u64 {
        ((u128::from(self.next_u64()) * (u128::from(max) + 1)) >> 64) as u64
    }

    /// True with probability `ppm / 1_000_000`.
    pub fn chance_ppm(&mut self, ppm: u32) -> bool {
        let threshold = (u128::from(ppm) << 64) / 1_000_000;
        u128::from(self.next_u64()) < threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_outputs() {
        // The published outputs for seed 1234567 (Rosetta Code's SplitMix64
        // task, from Vigna's splitmix64.c).
        let mut rng = SplitMix64::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(rng.next_u64(), 9_817_491_932_198_370_423);
    }

    #[test]
    fn stream_k_is_seeded_with_output_k() {
        let mut parent = SplitMix64::new(42);
        for k in 0..5 {
            let seed = parent.next_u64();
            assert_eq!(SplitMix64::stream(42, k).next_u64(), SplitMix64::new(seed).next_u64());
        }
    }

    #[test]
    fn chance_and_range_bounds() {
        let mut rng = SplitMix64::new(7);
        assert!((0..10_000).all(|_| !rng.chance_ppm(0)));
        assert!((0..10_000).all(|_| rng.chance_ppm(1_000_000)));
        assert!((0..10_000).all(|_| rng.up_to(0) == 0));
        let draws: Vec<u64> = (0..10_000).map(|_| rng.up_to(3)).collect();
        assert!(draws.iter().all(|&d| d <= 3));
        assert!((0..=3).all(|v| draws.contains(&v)));
        // The full range neither overflows nor collapses.
        let wide: std::collections::HashSet<u64> = (0..1_000).map(|_| rng.up_to(u64::MAX)).collect();
        assert_eq!(wide.len(), 1_000);
        assert!(wide.iter().any(|&v| v > u64::MAX / 2));
    }
}
