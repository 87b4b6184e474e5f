//! What went wrong with a fetch, per parameter, and what kind of failure it is.
//! Causes carry AWS's error code and message (which name resources, never values).

use std::fmt;

/// The broad class of a failure: drives the exit code and whether a retry may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The parameter (or a path's content, or a JSON field) is not there.
    NotFound,
    /// IAM or KMS said no, or there are no usable credentials.
    Denied,
    /// Throttled after retries, 5xx, network down, timeout: may pass by itself.
    Unavailable,
    /// Anything else AWS answered (validation errors, unexpected responses).
    Other,
}

/// Why one parameter or path could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    NotFound,
    EmptyPath,
    AccessDenied {
        code: String,
        message: String,
    },
    Kms {
        code: String,
        message: String,
    },
    NoCredentials {
        detail: String,
    },
    /// AWS did not accept the credentials themselves (an invalid or expired token, a wrong
    /// secret key, a skewed clock): not a permissions problem.
    BadCredentials {
        code: String,
        message: String,
    },
    Throttled {
        code: String,
        attempts: u32,
    },
    ServerError {
        code: String,
        status: u16,
    },
    Unreachable {
        detail: String,
    },
    Rejected {
        code: String,
        message: String,
    },
    MissingField {
        field: String,
    },
    NotJsonObject {
        field: String,
    },
}

impl Cause {
    pub fn kind(&self) -> Kind {
        match self {
            Cause::NotFound | Cause::EmptyPath | Cause::MissingField { .. } => Kind::NotFound,
            Cause::NotJsonObject { .. } => Kind::NotFound,
            Cause::AccessDenied { .. }
            | Cause::Kms { .. }
            | Cause::NoCredentials { .. }
            | Cause::BadCredentials { .. } => Kind::Denied,
            Cause::Throttled { .. } | Cause::ServerError { .. } | Cause::Unreachable { .. } => {
                Kind::Unavailable
            }
            Cause::Rejected { .. } => Kind::Other,
        }
    }

    /// A short, stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Cause::NotFound
            | Cause::EmptyPath
            | Cause::MissingField { .. }
            | Cause::NotJsonObject { .. } => "not_found",
            Cause::AccessDenied { .. } | Cause::NoCredentials { .. } => "denied",
            Cause::BadCredentials { .. } => "credentials",
            Cause::Kms { .. } => "kms",
            Cause::Throttled { .. } => "throttled",
            Cause::ServerError { .. } => "server_error",
            Cause::Unreachable { .. } => "unreachable",
            Cause::Rejected { .. } => "rejected",
        }
    }

    /// Worth another try later (watch mode backs off on these).
    pub fn is_transient(&self) -> bool {
        self.kind() == Kind::Unavailable
    }

    /// Builds a cause from an AWS error code, message and HTTP status.
    pub fn from_service(code: &str, message: &str, status: u16, attempts: u32) -> Cause {
        let lower = message.to_ascii_lowercase();
        let (code_s, message_s) = (code.to_owned(), message.to_owned());
        match code {
            "ParameterNotFound" | "ParameterVersionNotFound" | "ResourceNotFoundException" => {
                Cause::NotFound
            }
            c if c.starts_with("KMS") || c == "InvalidKeyId" || c.contains("Kms") => Cause::Kms {
                code: code_s,
                message: message_s,
            },
            "AccessDeniedException" | "AccessDenied" if lower.contains("kms") => Cause::Kms {
                code: code_s,
                message: message_s,
            },
            "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation" => {
                Cause::AccessDenied {
                    code: code_s,
                    message: message_s,
                }
            }
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "ExpiredTokenException"
            | "ExpiredToken"
            | "RequestExpired"
            | "MissingAuthenticationToken"
            | "MissingAuthenticationTokenException" => Cause::BadCredentials {
                code: code_s,
                message: message_s,
            },
            "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "SlowDown"
            | "ProvisionedThroughputExceededException"
            | "BandwidthLimitExceeded"
            | "PriorRequestNotComplete"
            | "EC2ThrottledException" => Cause::Throttled {
                code: code_s,
                attempts,
            },
            _ if status >= 500 || code == "InternalServerError" || code == "ServiceUnavailable" => {
                Cause::ServerError {
                    code: if code.is_empty() {
                        "(no error code)".into()
                    } else {
                        code_s
                    },
                    status,
                }
            }
            _ if status == 429 => Cause::Throttled {
                code: code_s,
                attempts,
            },
            _ => Cause::Rejected {
                code: if code.is_empty() {
                    format!("HTTP {status}")
                } else {
                    code_s
                },
                message: message_s,
            },
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::NotFound => f.write_str("not found"),
            Cause::EmptyPath => f.write_str(
                "no parameters under this path (check the path and the region, or mark it optional)",
            ),
            Cause::AccessDenied { code, message } => write!(
                f,
                "access denied ({code}: {message}); check the role's ssm:GetParameters / ssm:GetParametersByPath permissions"
            ),
            Cause::Kms { code, message } => write!(
                f,
                "could not be decrypted ({code}: {message}); check kms:Decrypt on the parameter's key"
            ),
            Cause::NoCredentials { detail } => write!(
                f,
                "no usable AWS credentials ({detail}); set up IRSA, EKS Pod Identity, an ECS task role or AWS_* variables"
            ),
            Cause::BadCredentials { code, message } => write!(
                f,
                "AWS did not accept the credentials ({code}: {message}); this is not about IAM permissions: check that the credentials are current and belong together (an expired or wrong AWS_SESSION_TOKEN, a wrong secret key, a web identity token the role does not trust, or a clock that is off)"
            ),
            Cause::Throttled { code, attempts } => write!(
                f,
                "throttled by AWS ({code}) after {attempts} attempts; lower --concurrency, raise AWS_MAX_ATTEMPTS or the account's Parameter Store throughput"
            ),
            Cause::ServerError { code, status } => {
                write!(f, "AWS failed with HTTP {status} ({code}) after retries")
            }
            Cause::Unreachable { detail } => write!(f, "AWS could not be reached: {detail}"),
            Cause::Rejected { code, message } => {
                write!(f, "rejected by AWS ({code}: {message})")
            }
            Cause::MissingField { field } => {
                write!(f, "the JSON value has no field {field:?}")
            }
            Cause::NotJsonObject { field } => write!(
                f,
                "the value is not a JSON object, so #{field} cannot be taken from it"
            ),
        }
    }
}

/// One parameter or path that could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    /// The parameter or path as the user asked for it.
    pub what: String,
    pub cause: Cause,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.cause)
    }
}

/// Every failure of one fetch. Nothing is written when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FetchFailure {
    pub errors: Vec<FetchError>,
}

impl FetchFailure {
    /// The kind that decides the exit code: a transient failure wins (a retry may fix
    /// everything), then denial, then not-found.
    pub fn kind(&self) -> Kind {
        let kinds = self.errors.iter().map(|e| e.cause.kind());
        [Kind::Unavailable, Kind::Denied, Kind::NotFound, Kind::Other]
            .into_iter()
            .find(|k| kinds.clone().any(|x| x == *k))
            .unwrap_or(Kind::Other)
    }
}

impl fmt::Display for FetchFailure {
    /// One line when one thing failed; otherwise grouped by cause so a network outage
    /// over 500 parameters reads as one line, not 500.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [] => f.write_str("fetch failed"),
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} parameters could not be fetched:", many.len())?;
                let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
                for e in many {
                    let cause = e.cause.to_string();
                    match groups.iter_mut().find(|(c, _)| *c == cause) {
                        Some((_, names)) => names.push(&e.what),
                        None => groups.push((cause, vec![&e.what])),
                    }
                }
                for (cause, names) in groups {
                    const SHOWN: usize = 10;
                    let mut list = names
                        .iter()
                        .take(SHOWN)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ");
                    if names.len() > SHOWN {
                        list.push_str(&format!(" and {} more", names.len() - SHOWN));
                    }
                    write!(f, "\n  {list}: {cause}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_are_classified() {
        let c = |code, msg, status| Cause::from_service(code, msg, status, 3).kind();
        assert_eq!(c("ParameterNotFound", "", 400), Kind::NotFound);
        assert_eq!(
            c("AccessDeniedException", "not authorized", 400),
            Kind::Denied
        );
        assert_eq!(
            c("ThrottlingException", "Rate exceeded", 400),
            Kind::Unavailable
        );
        assert_eq!(c("", "", 503), Kind::Unavailable);
        assert_eq!(c("", "", 429), Kind::Unavailable);
        assert_eq!(c("ValidationException", "bad", 400), Kind::Other);
        assert!(matches!(
            Cause::from_service(
                "AccessDeniedException",
                "not authorized to perform kms:Decrypt",
                400,
                3
            ),
            Cause::Kms { .. }
        ));
        assert!(matches!(
            Cause::from_service("KMS.DisabledException", "key disabled", 400, 3),
            Cause::Kms { .. }
        ));
    }

    #[test]
    fn rejected_credentials_are_advised_as_credentials_not_permissions() {
        for code in [
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "ExpiredTokenException",
            "InvalidClientTokenId",
        ] {
            let cause = Cause::from_service(code, "The security token is invalid", 400, 1);
            assert!(matches!(cause, Cause::BadCredentials { .. }), "{code}");
            assert_eq!(cause.kind(), Kind::Denied, "{code}");
            let text = cause.to_string();
            assert!(
                text.contains("did not accept the credentials") && text.contains(code),
                "{text}"
            );
            assert!(!text.contains("ssm:GetParameters"), "{text}");
        }
    }

    #[test]
    fn many_failures_with_one_cause_are_one_line() {
        let errors = (0..25)
            .map(|i| FetchError {
                what: format!("/p/{i}"),
                cause: Cause::Unreachable {
                    detail: "connection refused".into(),
                },
            })
            .chain(std::iter::once(FetchError {
                what: "/q".into(),
                cause: Cause::NotFound,
            }))
            .collect();
        let f = FetchFailure { errors };
        let text = f.to_string();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.contains("and 15 more: AWS could not be reached"),
            "{text}"
        );
        assert!(text.contains("/q: not found"), "{text}");
        assert_eq!(f.kind(), Kind::Unavailable);
    }
}
