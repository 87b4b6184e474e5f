//! What the capacity model takes: the inputs as given ([`Inputs`], with their defaults and
//! bounds) and their check ([`Inputs::check`] → [`Checked`]), whose errors name the flag
//! and what it allows.

use serde::Serialize;
use std::time::Duration;

/// Parameter Store's default throughput: calls/s per account and region, shared by
/// GetParameter, GetParameters and GetParametersByPath.
pub const DEFAULT_QUOTA_TPS: f64 = 40.0;
/// Parameter Store's higher-throughput limit for GetParameter and GetParameters.
pub const DEFAULT_HIGH_THROUGHPUT_TPS: f64 = 10_000.0;
/// Parameter Store's higher-throughput limit for GetParametersByPath (a separate, lower one).
pub const DEFAULT_HIGH_THROUGHPUT_BY_PATH_TPS: f64 = 100.0;
/// USD per 10,000 Parameter Store API interactions once higher throughput is on (all
/// interactions are then charged; at standard throughput they are free).
pub const DEFAULT_PARAMETER_STORE_PRICE: f64 = 0.05;
/// USD per 10,000 Secrets Manager API calls.
pub const DEFAULT_SECRETS_MANAGER_PRICE: f64 = 0.05;
/// USD per 10,000 KMS requests beyond the free tier (AWS managed keys included).
pub const DEFAULT_KMS_PRICE: f64 = 0.03;
/// KMS requests per month that are free (account-wide, all regions).
pub const DEFAULT_KMS_FREE_REQUESTS: f64 = 20_000.0;
/// Calls/s the fleet should stay under by default: the whole default quota (see
/// `docs/capacity.md` for why not a fraction of it).
pub const DEFAULT_TARGET_TPS: f64 = DEFAULT_QUOTA_TPS;
/// The sidecar's default poll interval (`render --watch --interval`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(600);
/// The hub's default poll interval.
pub const DEFAULT_HUB_INTERVAL: Duration = Duration::from_secs(30);
/// The hub's default replica count (each replica polls).
pub const DEFAULT_HUB_REPLICAS: u64 = 2;
/// Default rotations per parameter per day (hub mode: each one makes every watching pod
/// re-fetch its whole spec).
pub const DEFAULT_ROTATIONS_PER_DAY: f64 = 1.0;

/// Bounds of the inputs; anything outside is a typo or a fleet no account can hold.
pub const MAX_PODS: u64 = 10_000_000;
pub const MAX_PARAMS: u64 = 100_000;
pub const MAX_REGIONS: u64 = 50;
pub const MAX_REPLICAS: u64 = 100;
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_INTERVAL: Duration = Duration::from_secs(30 * 86_400);
pub const MAX_TPS: f64 = 1_000_000.0;
pub const MAX_PRICE: f64 = 1_000.0;
pub const MAX_PER_DAY: f64 = 1_000_000_000.0;

/// How the pods get their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `--param`: GetParameters, 10 names per call, per region, every poll.
    ByName,
    /// `--path`: GetParametersByPath, 10 parameters per page, every poll.
    ByPath,
    /// The version hub: the hub reads versions (DescribeParameters, DescribeSecret), pods
    /// re-fetch their spec when something they watch changed.
    Hub,
}

impl Mode {
    /// The name used by `--mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ByName => "by-name",
            Mode::ByPath => "by-path",
            Mode::Hub => "hub",
        }
    }
}

/// Parameter Store throughput quotas (calls/s per account and region).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quotas {
    /// Standard throughput, shared by GetParameter(s) and GetParametersByPath.
    pub standard_tps: f64,
    /// Higher throughput: GetParameter and GetParameters.
    pub high_throughput_tps: f64,
    /// Higher throughput: GetParametersByPath.
    pub high_throughput_by_path_tps: f64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            standard_tps: DEFAULT_QUOTA_TPS,
            high_throughput_tps: DEFAULT_HIGH_THROUGHPUT_TPS,
            high_throughput_by_path_tps: DEFAULT_HIGH_THROUGHPUT_BY_PATH_TPS,
        }
    }
}

/// Prices in USD.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prices {
    /// Per 10,000 Parameter Store API interactions with higher throughput on.
    pub parameter_store_per_10k: f64,
    /// Per 10,000 Secrets Manager API calls.
    pub secrets_manager_per_10k: f64,
    /// Per 10,000 KMS requests beyond the free tier.
    pub kms_per_10k: f64,
    /// Free KMS requests per month.
    pub kms_free_requests: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            parameter_store_per_10k: DEFAULT_PARAMETER_STORE_PRICE,
            secrets_manager_per_10k: DEFAULT_SECRETS_MANAGER_PRICE,
            kms_per_10k: DEFAULT_KMS_PRICE,
            kms_free_requests: DEFAULT_KMS_FREE_REQUESTS,
        }
    }
}

/// What the model needs, as given. [`Inputs::new`] takes the four that matter most and
/// defaults the rest; [`Inputs::check`] checks them all.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// Pods (or tasks) with a sidecar.
    pub pods: u64,
    /// Parameters each pod reads (names, or parameters under its paths).
    pub params_per_pod: u64,
    pub mode: Mode,
    /// The sidecar's poll interval. In hub mode, the interval pods fall back to when the
    /// hub is away.
    pub interval: Duration,
    /// Regions the names are spread over evenly (by name and hub; a path is in one region).
    pub regions: u64,
    /// Paths the parameters are spread over evenly (by path).
    pub paths: u64,
    /// Count one more (empty) page when a path holds an exact multiple of 10 parameters,
    /// as AWS and moto sometimes answer.
    pub extra_empty_page: bool,
    /// Of each pod's names, how many are `/aws/reference/secretsmanager/` references.
    pub secret_refs: u64,
    /// Fraction of the other parameters that are SecureStrings (each read is a KMS Decrypt).
    pub secure_fraction: f64,
    /// Pod starts per day across the fleet (each start is one init render).
    pub pod_starts_per_day: f64,
    /// Distinct names across the fleet (hub) [default: `params_per_pod`: every pod
    /// watches the same set].
    pub distinct_names: Option<u64>,
    pub hub_interval: Duration,
    pub hub_replicas: u64,
    /// Rotations per parameter per day (hub: each makes every watching pod re-fetch its
    /// whole spec).
    pub rotations_per_day: f64,
    /// Calls/s the fleet should stay under (busiest region).
    pub target_tps: f64,
    pub quotas: Quotas,
    pub prices: Prices,
}

impl Inputs {
    /// The inputs the sidecar benchmark varies; everything else at its default.
    pub fn new(pods: u64, params_per_pod: u64, mode: Mode, interval: Duration) -> Inputs {
        Inputs {
            pods,
            params_per_pod,
            mode,
            interval,
            ..Inputs::default()
        }
    }
}

impl Default for Inputs {
    /// 10,000 pods × 20 names by name every 10 minutes, one region, nothing else.
    fn default() -> Self {
        Inputs {
            pods: 10_000,
            params_per_pod: 20,
            mode: Mode::ByName,
            interval: DEFAULT_INTERVAL,
            regions: 1,
            paths: 1,
            extra_empty_page: false,
            secret_refs: 0,
            secure_fraction: 1.0,
            pod_starts_per_day: 0.0,
            distinct_names: None,
            hub_interval: DEFAULT_HUB_INTERVAL,
            hub_replicas: DEFAULT_HUB_REPLICAS,
            rotations_per_day: DEFAULT_ROTATIONS_PER_DAY,
            target_tps: DEFAULT_TARGET_TPS,
            quotas: Quotas::default(),
            prices: Prices::default(),
        }
    }
}

/// An input out of range; the message names the flag and what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CapacityError {
    #[error("{flag} {value} is out of range: allowed {allowed}")]
    OutOfRange {
        flag: &'static str,
        value: String,
        allowed: String,
    },
    #[error(
        "--secret-refs is for --mode by-name or hub: a path cannot hold Secrets Manager references"
    )]
    SecretRefsByPath,
}

pub(super) fn out_of_range(
    flag: &'static str,
    value: impl ToString,
    allowed: impl ToString,
) -> CapacityError {
    CapacityError::OutOfRange {
        flag,
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}

fn check_int(flag: &'static str, v: u64, min: u64, max: u64) -> Result<(), CapacityError> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(out_of_range(flag, v, format!("{min} to {max}")))
    }
}

fn check_f64(
    flag: &'static str,
    v: f64,
    min: f64,
    max: f64,
    min_open: bool,
) -> Result<(), CapacityError> {
    let low_ok = if min_open { v > min } else { v >= min };
    if v.is_finite() && low_ok && v <= max {
        Ok(())
    } else {
        let low = if min_open { "more than" } else { "from" };
        Err(out_of_range(flag, v, format!("{low} {min} to {max}")))
    }
}

fn check_duration(flag: &'static str, v: Duration) -> Result<(), CapacityError> {
    if (MIN_INTERVAL..=MAX_INTERVAL).contains(&v) {
        Ok(())
    } else {
        Err(out_of_range(
            flag,
            humantime::format_duration(v),
            "1s to 30days",
        ))
    }
}

/// `--target-tps`: more than 0, at most [`MAX_TPS`] (the model divides by it).
pub(super) fn check_target_tps(v: f64) -> Result<(), CapacityError> {
    check_f64("--target-tps", v, 0.0, MAX_TPS, true)
}

/// Inputs that passed [`Inputs::check`]: the only thing the model takes.
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a>(&'a Inputs);

impl<'a> Checked<'a> {
    /// The inputs, every one within its bounds.
    pub fn inputs(self) -> &'a Inputs {
        self.0
    }
}

impl Inputs {
    /// Checks every input against its bounds, in the order of the flags; the first one out
    /// of range is the error, naming its flag and what is allowed.
    pub fn check(&self) -> Result<Checked<'_>, CapacityError> {
        check_all(self)?;
        Ok(Checked(self))
    }
}

fn check_all(i: &Inputs) -> Result<(), CapacityError> {
    check_int("--pods", i.pods, 1, MAX_PODS)?;
    check_int("--params", i.params_per_pod, 1, MAX_PARAMS)?;
    check_duration("--interval", i.interval)?;
    check_int("--regions", i.regions, 1, MAX_REGIONS.min(i.params_per_pod))?;
    check_int("--paths", i.paths, 1, i.params_per_pod)?;
    check_int("--secret-refs", i.secret_refs, 0, i.params_per_pod)?;
    if i.mode == Mode::ByPath && i.secret_refs > 0 {
        return Err(CapacityError::SecretRefsByPath);
    }
    check_f64("--secure-fraction", i.secure_fraction, 0.0, 1.0, false)?;
    check_f64(
        "--pod-starts-per-day",
        i.pod_starts_per_day,
        0.0,
        MAX_PER_DAY,
        false,
    )?;
    if let Some(d) = i.distinct_names {
        let max = i.pods.saturating_mul(i.params_per_pod).min(MAX_PODS);
        check_int(
            "--distinct-names",
            d,
            i.params_per_pod,
            max.max(i.params_per_pod),
        )?;
    }
    check_duration("--hub-interval", i.hub_interval)?;
    check_int("--hub-replicas", i.hub_replicas, 1, MAX_REPLICAS)?;
    check_f64(
        "--rotations-per-day",
        i.rotations_per_day,
        0.0,
        MAX_PER_DAY,
        false,
    )?;
    check_target_tps(i.target_tps)?;
    check_f64("--quota-tps", i.quotas.standard_tps, 0.0, MAX_TPS, true)?;
    check_f64(
        "--high-throughput-tps",
        i.quotas.high_throughput_tps,
        0.0,
        MAX_TPS,
        true,
    )?;
    check_f64(
        "--high-throughput-by-path-tps",
        i.quotas.high_throughput_by_path_tps,
        0.0,
        MAX_TPS,
        true,
    )?;
    check_f64(
        "--parameter-store-price",
        i.prices.parameter_store_per_10k,
        0.0,
        MAX_PRICE,
        false,
    )?;
    check_f64(
        "--secrets-manager-price",
        i.prices.secrets_manager_per_10k,
        0.0,
        MAX_PRICE,
        false,
    )?;
    check_f64("--kms-price", i.prices.kms_per_10k, 0.0, MAX_PRICE, false)?;
    check_f64(
        "--kms-free-requests",
        i.prices.kms_free_requests,
        0.0,
        MAX_PER_DAY,
        false,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::estimate;

    #[test]
    fn bad_inputs_are_errors_that_name_the_flag() {
        type Change = fn(&mut Inputs);
        let cases: Vec<(&str, Change)> = vec![
            ("--pods", |i| i.pods = 0),
            ("--pods", |i| i.pods = MAX_PODS + 1),
            ("--params", |i| i.params_per_pod = 0),
            ("--interval", |i| i.interval = Duration::ZERO),
            ("--interval", |i| {
                i.interval = Duration::from_secs(365 * 86_400)
            }),
            ("--regions", |i| i.regions = 0),
            ("--regions", |i| i.regions = 21),
            ("--paths", |i| i.paths = 21),
            ("--secret-refs", |i| i.secret_refs = 21),
            ("--secure-fraction", |i| i.secure_fraction = 1.5),
            ("--secure-fraction", |i| i.secure_fraction = f64::NAN),
            ("--pod-starts-per-day", |i| i.pod_starts_per_day = -1.0),
            ("--distinct-names", |i| i.distinct_names = Some(19)),
            ("--hub-interval", |i| {
                i.hub_interval = Duration::from_millis(10)
            }),
            ("--hub-replicas", |i| i.hub_replicas = 0),
            ("--rotations-per-day", |i| {
                i.rotations_per_day = f64::INFINITY
            }),
            ("--target-tps", |i| i.target_tps = 0.0),
            ("--quota-tps", |i| i.quotas.standard_tps = -40.0),
            ("--kms-price", |i| i.prices.kms_per_10k = -0.03),
        ];
        for (flag, change) in cases {
            let mut i = Inputs::default();
            change(&mut i);
            let e = estimate(&i).expect_err(flag);
            assert!(e.to_string().starts_with(flag), "{flag}: {e}");
        }
        let mut i = Inputs::new(1, 20, Mode::ByPath, DEFAULT_INTERVAL);
        i.secret_refs = 1;
        assert_eq!(estimate(&i), Err(CapacityError::SecretRefsByPath));
    }
}
