//! Top-1, top-5 accuracy and mean cross-entropy, accumulated over batches.
//!
//! ```
//! use fp8q_ptq::metrics::Metrics;
//! let mut m = Metrics::default();
//! m.update(&[0.0, 2.0, 1.0], &[1], 3);
//! assert_eq!(m.top1(), 1.0);
//! ```

/// Running classification metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Images seen.
    pub count: usize,
    /// Images whose label is the argmax.
    pub top1_correct: usize,
    /// Images whose label is among the five largest logits.
    pub top5_correct: usize,
    /// Σ cross-entropy (natural log).
    pub loss_sum: f64,
}

impl Metrics {
    /// Add a batch: `logits` holds `labels.len()` rows of `classes` values.
    pub fn update(&mut self, logits: &[f32], labels: &[usize], classes: usize) {
        for (row, &label) in logits.chunks(classes).zip(labels) {
            let target = row[label];
            // rank = number of logits strictly larger, ties broken by index like a stable sort
            let rank = row
                .iter()
                .enumerate()
                .filter(|&(j, &v)| v > target || (v == target && j < label))
                .count();
            self.top1_correct += (rank == 0) as usize;
            self.top5_correct += (rank < 5) as usize;
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            self.loss_sum += lse - target as f64;
            self.count += 1;
        }
    }

    /// Top-1 accuracy in [0, 1].
    pub fn top1(&self) -> f64 {
        self.top1_correct as f64 / self.count.max(1) as f64
    }

    /// Top-5 accuracy in [0, 1].
    pub fn top5(&self) -> f64 {
        self.top5_correct as f64 / self.count.max(1) as f64
    }

    /// Mean cross-entropy.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example() {
        let mut m = Metrics::default();
        // row 1: label 0 is the argmax; row 2: label 2 ranks 6th of 7
        let logits = [
            3.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, //
            9.0, 8.0, 1.0, 7.0, 6.0, 5.0, 0.0,
        ];
        m.update(&logits, &[0, 2], 7);
        assert_eq!((m.top1_correct, m.top5_correct, m.count), (1, 1, 2));
        let l1 = (3f64.exp() + 1f64.exp() + 5.0).ln() - 3.0;
        let l2 = [9.0f64, 8.0, 1.0, 7.0, 6.0, 5.0, 0.0]
            .iter()
            .map(|v| v.exp())
            .sum::<f64>()
            .ln()
            - 1.0;
        assert!((m.loss() - (l1 + l2) / 2.0).abs() < 1e-12);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
    }
}
