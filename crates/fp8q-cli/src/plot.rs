//! Small pieces shared by the CLI's SVG plots (plotters).

/// A label formatter for a categorical x axis drawn at 0, 1, …: the name at each integer
/// position, nothing between them or outside.
pub fn category_labels(names: Vec<String>) -> impl Fn(&f64) -> String {
    move |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
            names[i as usize].clone()
        } else {
            String::new()
        }
    }
}
