//! Latency summaries: nearest-rank percentiles of millisecond samples, so a p99 is always a
//! latency that was actually observed.

use serde::Serialize;

/// p50, p99 and max of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// The `p`-th percentile (0 to 100) of `sorted` by nearest rank.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil();
    // `rank` is in 0..=len; the cast cannot truncate anything that matters.
    let index = (rank as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// Summarises `samples`; `None` when there are none.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
    Some(Summary {
        count: sorted.len(),
        p50: percentile(&sorted, 50.0),
        p99: percentile(&sorted, 99.0),
        max: percentile(&sorted, 100.0),
        mean,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let summary = summarize(&samples).unwrap();
        assert_eq!(summary.p50, 50.0);
        assert_eq!(summary.p99, 99.0);
        assert_eq!(summary.max, 100.0);
        assert_eq!(summary.count, 100);
    }

    #[test]
    fn one_sample_and_none() {
        let summary = summarize(&[7.0]).unwrap();
        assert_eq!((summary.p50, summary.p99, summary.max), (7.0, 7.0, 7.0));
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[f64::NAN]).is_none());
    }
}
