//! `#field`: one key of a JSON object value (a Secrets Manager secret, usually).

use super::error::Cause;
use crate::secret::Secret;
use zeroize::Zeroizing;

/// Takes `field` out of a JSON object value. Strings come out as they are; numbers and
/// booleans as their JSON text; objects and arrays as compact JSON. A missing or null
/// field is an error naming the field; the value itself never appears in an error.
pub fn extract(value: &Secret, field: &str) -> Result<Secret, Cause> {
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(value.expose()).map_err(|_| Cause::NotJsonObject {
            field: field.to_owned(),
        })?;
    let out = match object.remove(field) {
        None | Some(serde_json::Value::Null) => {
            return Err(Cause::MissingField {
                field: field.to_owned(),
            });
        }
        Some(serde_json::Value::String(s)) => Secret::new(s),
        Some(other) => {
            let text = Zeroizing::new(other.to_string());
            Secret::new(text.as_str().to_owned())
        }
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_fields_come_out_verbatim() {
        let v =
            Secret::from(r#"{"user":"app","password":"p\"w\nd","port":5432,"tls":{"on":true}}"#);
        assert_eq!(extract(&v, "password").unwrap().expose(), "p\"w\nd");
        assert_eq!(extract(&v, "port").unwrap().expose(), "5432");
        assert_eq!(extract(&v, "tls").unwrap().expose(), r#"{"on":true}"#);
    }

    #[test]
    fn a_missing_field_is_named_and_the_value_is_not_shown() {
        let v = Secret::from(r#"{"user":"topsecret-user"}"#);
        let e = extract(&v, "password").unwrap_err();
        assert_eq!(
            e,
            Cause::MissingField {
                field: "password".into()
            }
        );
        assert!(!e.to_string().contains("topsecret"));
    }

    #[test]
    fn a_value_that_is_not_a_json_object_is_an_error() {
        for raw in ["plain-topsecret", "[1,2]", "\"s\"", "{broken"] {
            let e = extract(&Secret::from(raw), "f").unwrap_err();
            assert!(matches!(e, Cause::NotJsonObject { .. }), "{raw}");
            assert!(!e.to_string().contains("topsecret"));
        }
    }
}
