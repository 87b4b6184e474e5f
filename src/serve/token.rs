//! The token every read must carry, as the extension asks for it: the header
//! `X-Aws-Parameters-Secrets-Token` (the AWS Secrets Manager Agent's `X-Vault-Token` too),
//! compared in constant time. A request that went through a proxy (`X-Forwarded-For`) is
//! refused whatever its token, as the Secrets Manager Agent refuses it: the endpoint is
//! for the pod's own processes, and a forwarding proxy is how a server-side request
//! forgery would reach it. Pure.

use super::request::Refusal;
use subtle::ConstantTimeEq;

/// The token headers, lower case (HTTP header names are case-insensitive).
pub const HEADERS: [&str; 2] = ["x-aws-parameters-secrets-token", "x-vault-token"];

/// Accepts a request whose token header holds `want`.
pub fn check(given: &[&[u8]], forwarded: bool, want: &[u8]) -> Result<(), Refusal> {
    if forwarded {
        return Err(Refusal {
            status: 400,
            message: "refused: the request came through a proxy (X-Forwarded-For)".to_owned(),
        });
    }
    // Every header is compared, so the time does not say which one matched.
    let ok = given
        .iter()
        .fold(subtle::Choice::from(0), |acc, g| acc | g.ct_eq(want));
    if bool::from(ok) && !want.is_empty() {
        Ok(())
    } else {
        Err(Refusal {
            status: 401,
            message:
                "bad session token or header key: send the token in X-Aws-Parameters-Secrets-Token"
                    .to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_accepted() {
        let want = b"t0ken";
        assert!(check(&[b"t0ken"], false, want).is_ok());
        assert!(check(&[b"other", b"t0ken"], false, want).is_ok());
        for given in [
            &[][..],
            &[&b"t0ke"[..]][..],
            &[&b"t0ken "[..]][..],
            &[&b""[..]][..],
        ] {
            assert_eq!(check(given, false, want).unwrap_err().status, 401);
        }
        assert_eq!(check(&[b"t0ken"], true, want).unwrap_err().status, 400);
        // An empty token never opens the door.
        assert!(check(&[b""], false, b"").is_err());
    }
}
