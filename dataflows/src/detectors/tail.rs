//! A compact, fading sketch of a positive quantity's upper tail: how large a series' changes
//! usually are, kept in about 170 bytes whatever the series' history.
//!
//! Values go into logarithmic bins a quarter of an octave wide (each 19% wider than the one
//! below), [`BINS`] of them counting down from the highest bin seen so far, so that the sketch
//! covers ten octaves (a factor of 1,000) below its largest value; smaller values fold into the
//! lowest bin and exact zeros are counted apart. Quantiles near the top, which are what a
//! threshold is made of, are within half a bin (±9%). Old values fade: every new value weighs
//! `1 / (1 - λ)` times the one before (kept as a growing weight, renormalised now and then), so
//! the sketch describes about the last `1 / λ` values. It is deterministic: the same values in
//! the same order give the same bits.

/// Bins below the highest one.
pub const BINS: usize = 40;
/// Bins per octave.
const PER_OCTAVE: f64 = 4.0;
/// The weight is renormalised once it passes this.
const RENORMALISE: f64 = 1e12;

/// The fading sketch of one quantity.
#[derive(Clone, Debug, PartialEq)]
pub struct TailSketch {
    /// Weight of each bin, the highest (`top`) first.
    bins: [f32; BINS],
    /// The index of the highest bin (`floor(4 log2 v)` of its values).
    top: i32,
    /// Weight of the exact zeros.
    zeros: f64,
    /// Total weight.
    total: f64,
    /// The weight the next value gets (grows by `1 / (1 - λ)` a value).
    weight: f64,
    /// Values added.
    count: u64,
}

impl Default for TailSketch {
    fn default() -> Self {
        TailSketch {
            bins: [0.0; BINS],
            top: 0,
            zeros: 0.0,
            total: 0.0,
            weight: 1.0,
            count: 0,
        }
    }
}

fn bin_of(v: f64) -> i32 {
    (PER_OCTAVE * v.log2()).floor().clamp(-4_000.0, 4_000.0) as i32
}

impl TailSketch {
    /// How many values it has been given.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds `v` (negative and NaN are ignored; the caller passes magnitudes), with the values
    /// before it faded by `1 - fade`.
    pub fn add(&mut self, v: f64, fade: f64) {
        if v.is_nan() || v < 0.0 {
            return;
        }
        self.weight /= 1.0 - fade.clamp(0.0, 0.5);
        let w = self.weight;
        if v == 0.0 {
            self.zeros += w;
        } else {
            let i = bin_of(v);
            if self.total == self.zeros {
                // The first positive value decides where the bins start.
                self.top = i;
            } else if i > self.top {
                let shift = (i - self.top) as usize;
                let folded: f32 = if shift >= BINS {
                    self.bins.iter().sum()
                } else {
                    self.bins[BINS - shift..].iter().sum()
                };
                if shift >= BINS {
                    self.bins = [0.0; BINS];
                } else {
                    self.bins.copy_within(0..BINS - shift, shift);
                    self.bins[..shift].fill(0.0);
                }
                self.bins[BINS - 1] += folded;
                self.top = i;
            }
            let slot = ((self.top - i) as usize).min(BINS - 1);
            self.bins[slot] += w as f32;
        }
        self.total += w;
        self.count += 1;
        if self.weight > RENORMALISE {
            let w = self.weight;
            for b in self.bins.iter_mut() {
                *b = (*b as f64 / w) as f32;
            }
            self.zeros /= w;
            self.total /= w;
            self.weight = 1.0;
        }
    }

    /// The `p`-quantile (0 < p < 1) of the faded values: 0 when more than `p` of the weight is
    /// exact zeros, or when it holds nothing.
    pub fn quantile(&self, p: f64) -> f64 {
        let target = (1.0 - p) * self.total;
        let mut above = 0.0;
        for (k, b) in self.bins.iter().enumerate() {
            let b = *b as f64;
            if b > 0.0 && above + b >= target {
                // Spread evenly (in log) over the bin: the part above the quantile is its top.
                let within = ((target - above) / b).clamp(0.0, 1.0);
                let i = (self.top - k as i32) as f64;
                return 2f64.powf((i + 1.0 - within) / PER_OCTAVE);
            }
            above += b;
        }
        0.0
    }

    /// The weight of the values at or above `v`, in values (a value added last counts 1, one
    /// added `1 / λ` values ago about `1 / e`).
    pub fn weight_at_least(&self, v: f64) -> f64 {
        if v.is_nan() || v <= 0.0 {
            return self.total / self.weight;
        }
        let i = bin_of(v);
        let mut above = 0.0;
        for (k, b) in self.bins.iter().enumerate() {
            let j = self.top - k as i32;
            let b = *b as f64;
            if j > i {
                above += b;
            } else {
                if j == i {
                    // Spread evenly in log over the bin, as `quantile` reads it.
                    let within = (j + 1) as f64 - PER_OCTAVE * v.log2();
                    above += b * within.clamp(0.0, 1.0);
                }
                break;
            }
        }
        above / self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Noise;
    use super::*;

    #[test]
    fn quantiles_are_within_half_a_bin() {
        let mut g = Noise::new(3);
        let mut sketch = TailSketch::default();
        let mut values: Vec<f64> = (0..20_000).map(|_| g.normal().abs()).collect();
        for v in &values {
            sketch.add(*v, 0.0);
        }
        values.sort_by(f64::total_cmp);
        for p in [0.5, 0.9, 0.99, 0.999] {
            let exact = values[(p * values.len() as f64) as usize];
            let got = sketch.quantile(p);
            assert!((got / exact - 1.0).abs() < 0.1, "p {p}: {got} vs {exact}");
        }
        let above = sketch.weight_at_least(values[19_800]);
        assert!((above - 200.0).abs() < 40.0, "{above}");
    }

    #[test]
    fn zeros_large_values_and_fading() {
        let mut sketch = TailSketch::default();
        assert_eq!(sketch.quantile(0.99), 0.0);
        for _ in 0..100 {
            sketch.add(0.0, 0.0);
        }
        assert_eq!(sketch.quantile(0.9), 0.0);
        sketch.add(5.0, 0.0);
        assert!(sketch.quantile(0.995) > 4.0);
        // A value far above folds everything below into the lowest bin, and is the top.
        sketch.add(1e9, 0.0);
        assert!(sketch.quantile(0.999) > 5e8);
        // Fading: after many values of 1, the old ones hardly count.
        let mut fading = TailSketch::default();
        for _ in 0..100 {
            fading.add(1000.0, 0.01);
        }
        for _ in 0..2000 {
            fading.add(1.0, 0.01);
        }
        assert!(fading.quantile(0.999) < 1.3, "{}", fading.quantile(0.999));
        assert!(fading.weight_at_least(500.0) < 1e-5);
        assert_eq!(fading.count(), 2100);
    }
}
