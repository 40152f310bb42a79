//! Gauss–Legendre rules on `[-1, 1]`, computed once by Newton iteration on the Legendre
//! recurrence (accurate to a few ulps for the orders used here).

use std::sync::OnceLock;

/// Largest order provided.
pub const MAX_ORDER: usize = 32;

/// Nodes and weights of one rule (nodes ascending).
#[derive(Debug, Clone)]
pub struct Rule {
    /// Nodes in `(-1, 1)`.
    pub nodes: Vec<f64>,
    /// Weights (sum 2).
    pub weights: Vec<f64>,
}

fn legendre_and_derivative(n: usize, x: f64) -> (f64, f64) {
    // P_0 = 1, P_1 = x, (k+1) P_{k+1} = (2k+1) x P_k - k P_{k-1}
    let mut p0 = 1.0;
    let mut p1 = x;
    for k in 1..n {
        let kf = k as f64;
        let p2 = ((2.0 * kf + 1.0) * x * p1 - kf * p0) / (kf + 1.0);
        p0 = p1;
        p1 = p2;
    }
    // P_n'(x) = n (x P_n - P_{n-1}) / (x^2 - 1)
    let dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
    (p1, dp)
}

fn compute(n: usize) -> Rule {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        // Tricomi's initial guess for the i-th largest root
        let theta = std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5);
        let mut x = theta.cos();
        for _ in 0..100 {
            let (p, dp) = legendre_and_derivative(n, x);
            let dx = p / dp;
            x -= dx;
            if dx.abs() <= 1e-16 * x.abs().max(1e-300) {
                break;
            }
        }
        let (_, dp) = legendre_and_derivative(n, x);
        let w = 2.0 / ((1.0 - x * x) * dp * dp);
        nodes[n - 1 - i] = x;
        nodes[i] = -x;
        weights[n - 1 - i] = w;
        weights[i] = w;
    }
    if n % 2 == 1 {
        nodes[n / 2] = 0.0;
    }
    Rule { nodes, weights }
}

/// The `n`-point rule, `1 <= n <= MAX_ORDER`.
pub fn rule(n: usize) -> &'static Rule {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        (0..=MAX_ORDER)
            .map(|n| {
                if n == 0 {
                    Rule {
                        nodes: vec![],
                        weights: vec![],
                    }
                } else {
                    compute(n)
                }
            })
            .collect()
    });
    assert!((1..=MAX_ORDER).contains(&n), "Gauss-Legendre order {n} out of range");
    &rules[n]
}

/// `∫_a^b f` with the `n`-point rule.
#[cfg(test)]
#[inline]
pub fn integrate<F: FnMut(f64) -> f64>(a: f64, b: f64, n: usize, mut f: F) -> f64 {
    let r = rule(n);
    let half = 0.5 * (b - a);
    let mid = a + half;
    let mut s = 0.0;
    for (x, w) in r.nodes.iter().zip(&r.weights) {
        s += w * f(mid + half * x);
    }
    s * half
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_two_and_polynomials_are_exact() {
        for n in 1..=MAX_ORDER {
            let r = rule(n);
            let sum: f64 = r.weights.iter().sum();
            assert!((sum - 2.0).abs() < 1e-14, "n={n} sum={sum}");
            // degree 2n-1 monomial x^(2n-2) integrates to 2/(2n-1)
            let k = 2 * n - 2;
            let got = integrate(-1.0, 1.0, n, |x| x.powi(k as i32));
            let want = 2.0 / (k as f64 + 1.0);
            assert!(
                (got - want).abs() < 1e-14 * want.max(1.0),
                "n={n} got={got} want={want}"
            );
        }
    }

    #[test]
    fn smooth_function() {
        let got = integrate(0.0, 1.0, 12, f64::exp);
        assert!((got - (std::f64::consts::E - 1.0)).abs() < 1e-15);
    }
}
