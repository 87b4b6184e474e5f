//! Where values come from. `batch` and `field` are pure; `ssm` is the only AWS code.

pub mod batch;
pub mod error;
pub mod field;
pub mod ssm;

pub use error::{Cause, FetchError, FetchFailure, Kind};
pub use ssm::{CallObserver, Fetched, Operation, Source};
