//! `capacity`: the fleet capacity model. AWS calls per second and monthly API cost for
//! pods × parameters × interval × mode, checked against Parameter Store's throughput quota.
//!
//! Pure: no I/O, no environment, no clock. Every price and quota is an input with a
//! documented default (see `docs/capacity.md` for the sources and the date they were read).
//! The model follows what the code does:
//!
//! * by name: one GetParameters call per 10 names per region, every poll;
//! * by path: one GetParametersByPath call per page of 10, every poll;
//! * hub: each hub replica reads the versions of the fleet's distinct plain names with
//!   DescribeParameters (50 names per call, outside the 40 calls/s quota) and of Secrets
//!   Manager references with DescribeSecret, once per hub interval; a pod calls AWS only
//!   when something it watches changes, and then re-fetches its whole spec.
//!
//! Jitter spreads polls but does not change the mean rate, so it is not an input.
//!
//! - `inputs`: the inputs as given ([`Inputs`]), their defaults and bounds; [`Inputs::check`]
//!   gives [`Checked`] inputs or an error naming the flag.
//! - `model`: checked inputs → [`Estimate`] (arithmetic only).
//! - `report`: the estimate as a text table ([`text`]) or JSON ([`json`]).
//! - `docs` (tests only): the worked tables of docs/capacity.md and the test that the doc
//!   holds them.

mod inputs;
mod model;
mod report;

#[cfg(test)]
mod docs;

pub use inputs::{
    CapacityError, Checked, DEFAULT_HIGH_THROUGHPUT_BY_PATH_TPS, DEFAULT_HIGH_THROUGHPUT_TPS,
    DEFAULT_HUB_INTERVAL, DEFAULT_HUB_REPLICAS, DEFAULT_INTERVAL, DEFAULT_KMS_FREE_REQUESTS,
    DEFAULT_KMS_PRICE, DEFAULT_PARAMETER_STORE_PRICE, DEFAULT_QUOTA_TPS, DEFAULT_ROTATIONS_PER_DAY,
    DEFAULT_SECRETS_MANAGER_PRICE, DEFAULT_TARGET_TPS, Inputs, MAX_INTERVAL, MAX_PARAMS,
    MAX_PER_DAY, MAX_PODS, MAX_PRICE, MAX_REGIONS, MAX_REPLICAS, MAX_TPS, MIN_INTERVAL, Mode,
    Prices, Quotas,
};
pub use model::{
    Cost, DESCRIBE_PER_CALL, Estimate, HubEstimate, MONTH_DAYS, PER_CALL, calls_by_name, compute,
    describe_calls, min_interval, pages_by_path, rotation_window,
};
pub use report::{duration_text, json, number, text};

/// Checks the inputs and runs the model. Errors name the flag that is out of range.
pub fn estimate(i: &Inputs) -> Result<Estimate, CapacityError> {
    Ok(compute(i.check()?))
}

#[cfg(test)]
mod fixtures {
    use super::{Estimate, Inputs, Mode, estimate};
    use std::time::Duration;

    /// Equal within a relative 1e-6 (or 1e-6 near zero).
    pub(super) fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1.0)
    }

    /// The estimate for these four inputs, everything else at its default.
    pub(super) fn run(pods: u64, params: u64, mode: Mode, secs: u64) -> Estimate {
        estimate(&Inputs::new(pods, params, mode, Duration::from_secs(secs))).expect("valid")
    }
}
