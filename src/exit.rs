//! The process exit codes (also in `--help` and the README). A leaf: every command's error
//! enum maps itself to one of these, and `main` returns it.

pub const OK: u8 = 0;
/// Anything not covered below (unexpected AWS answers, internal errors).
pub const OTHER: u8 = 1;
/// Bad flags, spec file, name, variable or template file.
pub const USAGE: u8 = 2;
/// A required parameter, path content or JSON field is not there.
pub const NOT_FOUND: u8 = 3;
/// IAM or KMS denied access, or no credentials.
pub const DENIED: u8 = 4;
/// Throttled after retries, AWS 5xx, network down, timeout.
pub const UNAVAILABLE: u8 = 5;
/// An output could not be formatted or written; for `exec`, the environment could not
/// be built (key clash with an existing variable, invalid name, NUL in a value).
pub const OUTPUT: u8 = 6;
/// `exec`: the command was found but could not be run (permissions, not executable).
pub const EXEC_FAILED: u8 = 126;
/// `exec`: the command was not found.
pub const EXEC_NOT_FOUND: u8 = 127;
