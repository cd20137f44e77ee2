//! A stable hash and a small generator, so the mock's answers stay the same across builds.

/// FNV-1a, finished with a SplitMix step so the low bits (used with `%`) are well mixed.
///
/// Our own rather than `std`'s `DefaultHasher`, whose output may change between Rust releases:
/// the mock's answers must stay the same across builds.
pub(super) struct Fnv(u64);

impl Fnv {
    pub(super) fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(super) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so ("ab", "c") and ("a", "bc") hash apart.
        self.0 = (self.0 ^ 0xff).wrapping_mul(0x0000_0100_0000_01b3);
    }

    pub(super) fn finish(&self) -> u64 {
        SplitMix(self.0).next()
    }

    pub(super) fn hash(bytes: &[u8]) -> u64 {
        let mut hash = Fnv::new();
        hash.write(bytes);
        hash.finish()
    }
}

/// SplitMix64: a tiny, well-mixed generator for deterministic words and vectors.
pub(super) struct SplitMix(pub(super) u64);

impl SplitMix {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
