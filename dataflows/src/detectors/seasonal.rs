//! The seasonal baseline: what this series does at this hour of the day, on weekdays and on
//! weekends apart (48 slots, UTC), learned online. It reports what only its own hour shows: the
//! Monday-morning rise that does not come, which a window of the last half hour calls normal.
//!
//! Each slot keeps an exponentially weighted mean and variance (weight 1/n at first, then about
//! a week of that slot's samples) and the number of distinct days it has seen; it is used once it
//! has seen 3 days. The statistic is `(x - mean) / sd` of the slot, over 4 for the strength. A slot
//! in use learns a sample as at most 2 standard deviations off, so that an hour-long anomaly does
//! not teach it that the anomaly is normal. The slots are made on the series' first sample
//! (48 x 16 bytes).

use super::Reading;
use crate::time::Time;

/// Slots: 24 hours x (weekday, weekend).
const SLOTS: usize = 48;
/// Days a slot must have seen before it is used.
const MIN_DAYS: u16 = 3;
/// The seasonal z at strength 1.
pub const THRESHOLD: f64 = 4.0;
/// The longest memory of a slot, in samples (about a week at one sample a minute).
const MEMORY: f32 = 7.0 * 60.0;
/// How far off (in standard deviations) a sample counts at most when a slot in use learns it.
const CLIP: f32 = 2.0;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Slot {
    mean: f32,
    var: f32,
    n: u16,
    days: u16,
    last_day: u32,
}

/// One series' seasonal slots.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seasonal {
    slots: Option<Box<[Slot; SLOTS]>>,
}

/// The slot of a time: its hour of the day, weekdays and weekends apart (1970-01-01 was a
/// Thursday).
fn slot_of(t: Time) -> (usize, u32) {
    let day = (t / 86_400_000) as u32;
    let hour = ((t / 3_600_000) % 24) as usize;
    let weekend = matches!((day + 3) % 7, 5 | 6);
    (hour + if weekend { 24 } else { 0 }, day)
}

impl Seasonal {
    /// Scores `x` at `t` against its slot, then learns from it.
    pub fn observe(&mut self, t: Time, x: f64) -> Reading {
        if !x.is_finite() {
            return Reading::NONE;
        }
        let slots = self
            .slots
            .get_or_insert_with(|| Box::new([Slot::default(); SLOTS]));
        let (index, day) = slot_of(t);
        let slot = &mut slots[index];
        let reading = if slot.days >= MIN_DAYS && slot.var > 0.0 {
            let (mean, sd) = (slot.mean as f64, (slot.var as f64).sqrt());
            let z = (x - mean) / sd;
            Reading {
                strength: z.abs() / THRESHOLD,
                expected: mean,
                band: THRESHOLD * sd,
                statistic: z,
            }
        } else {
            Reading::NONE
        };
        if slot.n == 0 || slot.last_day != day {
            slot.days = slot.days.saturating_add(1);
            slot.last_day = day;
        }
        slot.n = slot.n.saturating_add(1);
        let weight = 1.0 / (slot.n as f32).min(MEMORY);
        // Once in use, a slot learns from an unusual sample as if it were only two standard
        // deviations off: an anomaly must not teach the slot that it is normal.
        let mut d = x as f32 - slot.mean;
        if reading.strength > 0.0 {
            let limit = CLIP * slot.var.sqrt();
            d = d.clamp(-limit, limit);
        }
        slot.mean += weight * d;
        slot.var = (1.0 - weight) * (slot.var + weight * d * d);
        reading
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::Noise;
    use super::*;

    const MINUTE: Time = 60_000;
    /// 2026-11-23T00:00:00Z, a Monday.
    const MONDAY: Time = 1_795_392_000_000;

    /// Traffic that rises from 10 to 100 at 08:00 on weekdays.
    fn traffic(t: Time, g: &mut Noise) -> f64 {
        let (slot, _) = slot_of(t);
        let busy = slot < 24 && (8..20).contains(&slot);
        (if busy { 100.0 } else { 10.0 }) * (1.0 + 0.03 * g.normal())
    }

    #[test]
    fn a_rise_that_does_not_come_is_seen_against_its_own_hour_only() {
        let mut g = Noise::new(9);
        let mut s = Seasonal::default();
        let mut alarms = 0;
        // Four weekdays learned: no alarm once the slots are in use.
        for minute in 0..4 * 1440 {
            let t = MONDAY + minute * MINUTE;
            alarms += usize::from(s.observe(t, traffic(t, &mut g)).is_anomalous());
        }
        assert_eq!(alarms, 0);
        // Friday 08:00-09:00: the traffic stays at its night level.
        let friday = MONDAY + 4 * 1440 * MINUTE;
        let missing = (8 * 60..9 * 60)
            .filter(|m| s.observe(friday + m * MINUTE, 10.0).is_anomalous())
            .count();
        assert!(missing >= 55, "{missing}");
        // At night 10 is what the hour expects.
        assert!(!s.observe(friday + 3 * 60 * MINUTE, 10.0).is_anomalous());
    }

    #[test]
    fn slots_tell_weekends_and_hours_apart() {
        assert_eq!(slot_of(MONDAY), (0, (MONDAY / 86_400_000) as u32));
        assert_eq!(slot_of(MONDAY + 9 * 60 * MINUTE).0, 9);
        assert_eq!(slot_of(MONDAY + 5 * 1440 * MINUTE).0, 24); // Saturday 00:00
        assert_eq!(slot_of(MONDAY + 6 * 1440 * MINUTE + 60 * MINUTE).0, 25); // Sunday 01:00
        assert_eq!(slot_of(MONDAY + 7 * 1440 * MINUTE).0, 0); // Monday again
    }
}
