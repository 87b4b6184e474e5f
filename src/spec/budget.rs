//! The per-process call budget as a setting (`--max-tps`, `--burst`; the spec's and the
//! hub's): its defaults and bounds, checked in one place. Pure; the token bucket that
//! enforces it is [`crate::source::budget`].

use std::fmt;

/// Default calls per second of one process: half the account's default quota.
pub const DEFAULT_MAX_TPS: f64 = 20.0;
/// Default burst: a render of 400 names (40 GetParameters calls) runs without waiting.
pub const DEFAULT_BURST: u32 = 40;
/// Bounds of `--max-tps`: a token every 1,000 s at the least, and no more than the
/// highest quota Parameter Store sells.
pub const MIN_TPS: f64 = 0.001;
pub const MAX_TPS: f64 = 10_000.0;
/// Upper bound of `--burst`.
pub const MAX_BURST: u32 = 10_000;

/// A checked budget setting: `per_second` in `[MIN_TPS, MAX_TPS]`, `burst` in
/// `[1, MAX_BURST]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    pub per_second: f64,
    pub burst: u32,
}

// `per_second` is never NaN (checked in `BudgetConfig::new`), so equality is total.
impl Eq for BudgetConfig {}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            per_second: DEFAULT_MAX_TPS,
            burst: DEFAULT_BURST,
        }
    }
}

/// A budget flag out of range; the message gives the range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("--max-tps must be between {MIN_TPS} and {MAX_TPS} calls per second, not {0}")]
    Rate(String),
    #[error("--burst must be between 1 and {MAX_BURST} calls, not {0}")]
    Burst(u32),
}

impl BudgetConfig {
    /// Checks both settings.
    pub fn new(per_second: f64, burst: u32) -> Result<BudgetConfig, BudgetError> {
        if !(MIN_TPS..=MAX_TPS).contains(&per_second) {
            return Err(BudgetError::Rate(per_second.to_string()));
        }
        if !(1..=MAX_BURST).contains(&burst) {
            return Err(BudgetError::Burst(burst));
        }
        Ok(BudgetConfig { per_second, burst })
    }
}

impl fmt::Display for BudgetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} calls/s, burst {}", self.per_second, self.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_refused_with_the_range() {
        assert_eq!(
            BudgetConfig::new(0.0, 1).unwrap_err().to_string(),
            "--max-tps must be between 0.001 and 10000 calls per second, not 0"
        );
        assert!(BudgetConfig::new(f64::NAN, 1).is_err());
        assert!(BudgetConfig::new(f64::INFINITY, 1).is_err());
        assert_eq!(
            BudgetConfig::new(1.0, 0).unwrap_err(),
            BudgetError::Burst(0)
        );
        assert!(BudgetConfig::new(MAX_TPS, MAX_BURST).is_ok());
    }
}
