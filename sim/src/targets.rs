//! The targets a benchmark states, checked: a miss is printed with the value, and the
//! benchmark exits with 1 at the end (so a bench that states a target fails when it misses).

/// Targets met or missed so far.
#[derive(Debug, Default)]
pub struct Targets {
    missed: Vec<String>,
}

impl Targets {
    /// No target checked yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `what` must be at most `limit`.
    pub fn at_most(&mut self, what: &str, value: f64, limit: f64) {
        if value > limit {
            self.missed
                .push(format!("{what}: {value:.2}, target ≤ {limit}"));
        }
    }

    /// `what` must be at least `limit`.
    pub fn at_least(&mut self, what: &str, value: f64, limit: f64) {
        if value < limit {
            self.missed
                .push(format!("{what}: {value:.2}, target ≥ {limit}"));
        }
    }

    /// The targets missed so far.
    pub fn missed(&self) -> &[String] {
        &self.missed
    }

    /// Prints the misses and exits with 1 if there were any.
    pub fn finish(self) {
        if self.missed.is_empty() {
            println!("every stated target met");
            return;
        }
        for m in &self.missed {
            eprintln!("target missed: {m}");
        }
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_past_its_limit_is_a_miss() {
        let mut t = Targets::new();
        t.at_most("median", 7.9, 8.0);
        t.at_least("speed", 1000.0, 1000.0);
        assert!(t.missed().is_empty());
        t.at_most("median", 8.1, 8.0);
        t.at_least("speed", 999.0, 1000.0);
        assert_eq!(t.missed().len(), 2);
    }
}
