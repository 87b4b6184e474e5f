//! `--listen` of the webhook and the hub (pure). The sidecar's admin `--listen` also takes
//! `off`, and is checked with the watch flags (`crate::watch::config`).

use std::net::SocketAddr;

/// A `--listen` that is not an IP address and port.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--listen {value:?}: not an address and port (for example 0.0.0.0:8443)")]
pub struct BadListen {
    /// The flag's value, as given.
    pub value: String,
}

/// An IP address and a port (no host name: nothing is resolved), spaces around ignored.
pub fn parse_listen(value: &str) -> Result<SocketAddr, BadListen> {
    value.trim().parse().map_err(|_| BadListen {
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_and_port_is_taken_and_a_host_name_is_refused_naming_the_flag() {
        assert_eq!(
            parse_listen(" 127.0.0.1:0 "),
            Ok("127.0.0.1:0".parse().expect("address"))
        );
        assert_eq!(
            parse_listen("[::]:8443"),
            Ok("[::]:8443".parse().expect("address"))
        );
        let e = parse_listen("localhost:8443").expect_err("a host name");
        assert_eq!(
            e.to_string(),
            r#"--listen "localhost:8443": not an address and port (for example 0.0.0.0:8443)"#
        );
        assert!(parse_listen("8443").is_err());
    }
}
