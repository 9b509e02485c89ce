//! Which worker owns a key: a hash whose output is fixed by its specification (SipHash-2-4
//! with the zero key, over explicit bytes), not by the Rust release. `std`'s `DefaultHasher`
//! and the `Hash` impls of strings may change between compiler versions; partition routing and
//! the keys derived from it must not.
//!
//! Each string is hashed as its UTF-8 bytes followed by `0xff`, the framing `std` used when
//! this was written, so routing is unchanged from the builds before this module.

use std::hash::Hasher;

use siphasher::sip::SipHasher24;

/// The route of a key made of `parts`, in order.
pub(crate) fn route_strs(parts: &[&str]) -> u64 {
    let mut h = SipHasher24::new_with_keys(0, 0);
    for p in parts {
        h.write(p.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::route_strs;

    /// Golden values, computed with the routing of the builds before this module (std's
    /// deprecated `SipHasher` over `str::hash`): a compiler upgrade must not move a series to
    /// another worker, nor change a key.
    #[test]
    fn routes_are_fixed() {
        assert_eq!(route_strs(&["checkout"]), GOLDEN_ONE);
        assert_eq!(
            route_strs(&["checkout", "http.server.duration"]),
            GOLDEN_TWO
        );
        assert_eq!(route_strs(&[""]), GOLDEN_EMPTY);
        // The framing separates parts: ("ab", "c") is not ("a", "bc").
        assert_ne!(route_strs(&["ab", "c"]), route_strs(&["a", "bc"]));
    }

    const GOLDEN_ONE: u64 = 0xddc2_090e_f891_192a;
    const GOLDEN_TWO: u64 = 0x9322_60e7_4e26_2eab;
    const GOLDEN_EMPTY: u64 = 0x20dd_4eb3_3d95_90f2;
}
