//! AWS region names: checked before any call, wherever the region comes from (a flag, the
//! spec file, an annotation, `AWS_REGION`, `AWS_DEFAULT_REGION`).

/// An AWS region name: `^[a-z]{2}(-[a-z]+)+-[0-9]+$` (eu-west-1, us-gov-west-1,
/// ap-southeast-5), at most 32 characters.
pub fn is_region(r: &str) -> bool {
    let Some((head, number)) = r.rsplit_once('-') else {
        return false;
    };
    let mut parts = head.split('-');
    let country = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    r.len() <= 32
        && country.len() == 2
        && country.chars().all(|c| c.is_ascii_lowercase())
        && !rest.is_empty()
        && rest
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
}

/// The environment variables the AWS SDK reads the region from, in its order.
pub const REGION_VARIABLES: [&str; 2] = ["AWS_REGION", "AWS_DEFAULT_REGION"];

/// The first of [`REGION_VARIABLES`] that is set (not blank) and malformed, with its
/// value: what the SDK would read when no region is given. `env` looks a variable up.
pub fn malformed_in_environment(
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(&'static str, String)> {
    REGION_VARIABLES
        .iter()
        .find_map(|name| {
            env(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (*name, v))
        })
        .filter(|(_, value)| !is_region(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_look_like_aws_regions() {
        for (r, ok) in [
            ("eu-west-1", true),
            ("us-gov-west-1", true),
            ("ap-southeast-5", true),
            ("cn-north-1", true),
            ("il-central-1", true),
            ("eu-west", false),
            ("EU-west-1", false),
            ("eu--west-1", false),
            ("eu-west-1a", false),
            ("e-west-1", false),
            ("eu-1", false),
            ("eu-west-1 ", false),
            ("", false),
            ("-west-1", false),
        ] {
            assert_eq!(is_region(r), ok, "{r:?}");
        }
    }

    #[test]
    fn the_first_region_variable_set_is_the_one_checked() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(malformed_in_environment(&env(&[])), None);
        assert_eq!(
            malformed_in_environment(&env(&[("AWS_REGION", "eu-west-1")])),
            None
        );
        assert_eq!(
            malformed_in_environment(&env(&[("AWS_REGION", " "), ("AWS_DEFAULT_REGION", "x_y")])),
            Some(("AWS_DEFAULT_REGION", "x_y".to_owned()))
        );
        assert_eq!(
            malformed_in_environment(&env(&[
                ("AWS_REGION", "eu-west-1"),
                ("AWS_DEFAULT_REGION", "x")
            ])),
            None
        );
    }
}
