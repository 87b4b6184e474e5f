//! Where values come from. `batch` and `field` are pure, `budget` (token bucket) and
//! `coalesce` (identical calls in flight share one answer) guard every call; `ssm` (values),
//! `versions` (the hub's reads, never decrypted) and `queue` (the hub's push events, SQS)
//! are the only AWS code, and each makes its calls through `caller` (budget, attempts,
//! classification, metrics), on the one AWS configuration of `config`.

pub mod batch;
pub mod budget;
pub mod caller;
pub mod coalesce;
pub mod config;
pub mod delta;
pub mod error;
pub mod field;
pub mod queue;
pub mod ssm;
pub mod versions;

pub use caller::{CallObserver, Operation};
pub use error::{Cause, FetchError, FetchFailure, Kind};
pub use ssm::{Fetched, Source};
