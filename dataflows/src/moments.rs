//! `Moments`: the exact difference type of the rolling baselines.
//!
//! A baseline is the accumulated difference of a series' key in the window arrangement: count,
//! sum and sum of squares of the window's values in fixed point ([`SCALE`] = 1e9, so values are
//! quantised to 1e-9). Every part is an integer (the sum of squares is 256-bit), so the retraction
//! at `t + 1 + W` cancels the insertion at `t + 1` exactly, a window that empties vanishes from the
//! arrangement, and the same input gives bit-identical baselines at every worker count.

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Semigroup};
use ethnum::I256;
use serde::{Deserialize, Serialize};

/// Fixed-point scale of sample values.
pub const SCALE: f64 = 1e9;
/// Largest accepted |value|: keeps a window's sum of squares far from 256-bit overflow.
pub const MAX_ABS_VALUE: f64 = 1e18;

/// Converts a finite value with |value| < [`MAX_ABS_VALUE`] to fixed point: `value * 1e9` rounded
/// to the nearest integer, computed exactly from the float's mantissa and exponent (a float
/// multiplication would lose digits of large values such as memory in bytes).
pub fn to_fixed(value: f64) -> i128 {
    let bits = value.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = (bits & ((1u64 << 52) - 1)) as i128;
    let (mantissa, power) = if exponent == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, exponent - 1075)
    };
    // value = mantissa * 2^power, so value * 1e9 = mantissa * 1e9 * 2^power (mantissa * 1e9 < 2^83).
    let scaled = mantissa * 1_000_000_000;
    let magnitude = if power >= 0 {
        scaled << power.min(40)
    } else if power < -100 {
        0
    } else {
        let shift = -power;
        (scaled + (1i128 << (shift - 1))) >> shift
    };
    if bits >> 63 == 1 {
        -magnitude
    } else {
        magnitude
    }
}

/// (count, sum, sum of squares) of fixed-point values.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Moments {
    /// Number of values.
    pub n: i64,
    /// Sum of fixed-point values.
    pub sum: i128,
    /// Sum of squares of fixed-point values.
    pub sumsq: I256,
}

impl Moments {
    /// The moments of one fixed-point value.
    pub fn of(fixed: i128) -> Self {
        let x = I256::from(fixed);
        Moments {
            n: 1,
            sum: fixed,
            sumsq: x * x,
        }
    }

    /// The moments of one fixed-point value taken `copies` times (negative: a retraction).
    pub fn of_copies(fixed: i128, copies: i64) -> Self {
        let mut m = Self::of(fixed);
        m.n *= copies;
        m.sum *= copies as i128;
        m.sumsq *= I256::from(copies);
        m
    }

    /// Mean of the values (None when empty).
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum as f64 / self.n as f64 / SCALE)
    }

    /// Sample standard deviation (Bessel's n - 1), from the exact integer numerator
    /// `n * Σx² - (Σx)²`; None with fewer than two values.
    pub fn stddev(&self) -> Option<f64> {
        if self.n < 2 {
            return None;
        }
        let n = I256::from(self.n);
        let sum = I256::from(self.sum);
        let numerator = n * self.sumsq - sum * sum;
        let var = to_f64(numerator) / (self.n as f64 * (self.n - 1) as f64) / (SCALE * SCALE);
        Some(var.max(0.0).sqrt())
    }

    /// True when all values are equal (the exact numerator is zero).
    pub fn is_flat(&self) -> bool {
        let n = I256::from(self.n);
        let sum = I256::from(self.sum);
        n * self.sumsq == sum * sum
    }

    /// True when `fixed` equals the mean exactly.
    pub fn is_mean(&self, fixed: i128) -> bool {
        I256::from(fixed) * I256::from(self.n) == I256::from(self.sum)
    }
}

/// Converts exactly-held 256-bit integers to the nearest-ish f64 (exact rounding below 2^127).
fn to_f64(x: I256) -> f64 {
    match i128::try_from(x) {
        Ok(small) => small as f64,
        Err(_) => {
            let (hi, lo) = x.into_words();
            hi as f64 * 2f64.powi(128) + (lo as u128) as f64
        }
    }
}

impl IsZero for Moments {
    fn is_zero(&self) -> bool {
        self.n == 0 && self.sum == 0 && self.sumsq == I256::ZERO
    }
}

impl Semigroup for Moments {
    fn plus_equals(&mut self, rhs: &Self) {
        self.n += rhs.n;
        self.sum += rhs.sum;
        self.sumsq += rhs.sumsq;
    }
}

impl Monoid for Moments {
    fn zero() -> Self {
        Moments::default()
    }
}

impl Abelian for Moments {
    fn negate(&mut self) {
        self.n = -self.n;
        self.sum = -self.sum;
        self.sumsq = -self.sumsq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retraction_cancels_exactly() {
        let values = [0.1, 0.2, 0.3, 1e12, -7.25, 0.000_000_001];
        let mut acc = Moments::zero();
        for v in values {
            acc.plus_equals(&Moments::of(to_fixed(v)));
        }
        for v in values {
            let mut m = Moments::of(to_fixed(v));
            m.negate();
            acc.plus_equals(&m);
        }
        assert!(acc.is_zero());
    }

    #[test]
    fn mean_and_stddev_match_the_textbook() {
        let values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let mut acc = Moments::zero();
        for v in values {
            acc.plus_equals(&Moments::of(to_fixed(v)));
        }
        assert_eq!(acc.mean(), Some(5.0));
        let sd = acc.stddev().unwrap();
        assert!((sd - (32.0f64 / 7.0).sqrt()).abs() < 1e-12, "{sd}");
        assert!(!acc.is_flat());
        assert!(acc.is_mean(to_fixed(5.0)));
    }

    #[test]
    fn fixed_point_is_exact_rounding() {
        assert_eq!(to_fixed(0.42), 420_000_000);
        assert_eq!(to_fixed(-1.5), -1_500_000_000);
        assert_eq!(to_fixed(0.0), 0);
        assert_eq!(to_fixed(1e-10), 0);
        assert_eq!(to_fixed(6e-10), 1);
        assert_eq!(to_fixed(60_000_001_000.0), 60_000_001_000_000_000_000);
        assert_eq!(to_fixed(9.99e17), 999_000_000_000_000_000_000_000_000);
    }

    #[test]
    fn large_values_keep_small_spreads() {
        // memory in bytes: 6e10 with a spread of a few kilobytes
        let mut acc = Moments::zero();
        for v in [6e10, 6e10 + 1000.0, 6e10 - 1000.0] {
            acc.plus_equals(&Moments::of(to_fixed(v)));
        }
        assert_eq!(acc.stddev(), Some(1000.0));
        assert_eq!(Moments::of_copies(to_fixed(2.0), -2).n, -2);
    }
}
