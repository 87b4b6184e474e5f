//! The self-managed CA (`--tls-secret`): what its Secret holds, when the CA rotates, which
//! CA signs the serving certificate, and the certificates themselves. No I/O: the caller
//! reads and writes the Secret ([`super::selftls`]) and passes the time in.
//!
//! The Secret holds only CAs: `ca.crt` is the PEM bundle of the CAs still valid, newest
//! first (what the API server and injected sidecars trust); `ca.key` is the key of the
//! newest; `ca-previous.key` the key of the one before it, while it is in the bundle. Each
//! replica issues its own serving certificate in memory, so restarts write nothing.
//!
//! Rotation: when the newest CA has less than [`Lifetimes::ca_renew_before`] left, a new CA
//! is put in front of the bundle. Serving certificates keep coming from the previous CA
//! until the new one has been in the bundle for [`Lifetimes::ca_propagation`] (every
//! replica and the webhook configuration have it by then); expired CAs leave the bundle.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// The Secret key with the CA bundle (PEM, newest first).
pub const CERT_KEY: &str = "ca.crt";
/// The Secret key with the newest CA's private key (PEM, PKCS#8).
pub const KEY_KEY: &str = "ca.key";
/// The Secret key with the private key of the CA before the newest, while it is valid.
pub const PREVIOUS_KEY_KEY: &str = "ca-previous.key";

/// How far into the past certificates start, for clocks a little behind this one.
pub const BACKDATE: Duration = Duration::from_secs(60);

const HOUR: u64 = 3600;

/// Lifetimes of the CA and of the serving certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Validity of a new CA.
    pub ca: Duration,
    /// A new CA is made when the newest has less than this left.
    pub ca_renew_before: Duration,
    /// How long a new CA is in the bundle before it signs serving certificates.
    pub ca_propagation: Duration,
    /// Validity of a serving certificate; it is reissued after two thirds of it.
    pub leaf: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            ca: Duration::from_secs(87_600 * HOUR),
            ca_renew_before: Duration::from_secs(8_760 * HOUR),
            ca_propagation: Duration::from_secs(24 * HOUR),
            leaf: Duration::from_secs(720 * HOUR),
        }
    }
}

/// Lifetimes that cannot work together. Messages name the flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifetimeError {
    #[error("{flag} must be longer than 0s")]
    Zero { flag: &'static str },
    #[error(
        "--tls-ca-renew-before ({renew_before}) must be shorter than --tls-ca-validity ({ca}), or every new CA would be due for rotation at once"
    )]
    RenewBefore { renew_before: String, ca: String },
    #[error(
        "--tls-ca-propagation ({propagation}) must be shorter than --tls-ca-renew-before ({renew_before}): the old CA must outlive the time the new one waits in the bundle"
    )]
    Propagation {
        propagation: String,
        renew_before: String,
    },
}

impl Lifetimes {
    /// Checks that the lifetimes fit together.
    pub fn check(self) -> Result<Lifetimes, LifetimeError> {
        for (flag, d) in [
            ("--tls-ca-validity", self.ca),
            ("--tls-ca-renew-before", self.ca_renew_before),
            ("--tls-cert-validity", self.leaf),
        ] {
            if d.is_zero() {
                return Err(LifetimeError::Zero { flag });
            }
        }
        let show = |d: Duration| humantime::format_duration(d).to_string();
        if self.ca_renew_before >= self.ca {
            return Err(LifetimeError::RenewBefore {
                renew_before: show(self.ca_renew_before),
                ca: show(self.ca),
            });
        }
        if self.ca_propagation >= self.ca_renew_before {
            return Err(LifetimeError::Propagation {
                propagation: show(self.ca_propagation),
                renew_before: show(self.ca_renew_before),
            });
        }
        Ok(self)
    }
}

/// Secret content that is not a CA this code wrote. Messages name the Secret's key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("key {key} is missing")]
    Missing { key: &'static str },
    #[error("key {key} is not PEM text")]
    NotText { key: &'static str },
    #[error("key {key} holds no PEM certificate")]
    NoCertificate { key: &'static str },
    #[error("key {key}: certificate {index} cannot be read ({reason})")]
    BadCertificate {
        key: &'static str,
        index: usize,
        reason: String,
    },
    #[error("key {key}: certificate {index} is not a CA certificate")]
    NotCa { key: &'static str, index: usize },
    #[error("key {key} holds no PEM private key that can sign ({reason})")]
    BadKey { key: &'static str, reason: String },
    #[error("key {key} is not the private key of certificate {index} in {CERT_KEY}")]
    KeyMismatch { key: &'static str, index: usize },
}

/// A certificate could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    #[error("cannot make the {what}: {reason}")]
    Generate { what: &'static str, reason: String },
    #[error("the CA bundle has no valid CA with its key to sign a serving certificate")]
    NoSigner,
}

fn generate(what: &'static str) -> impl Fn(rcgen::Error) -> CaError {
    move |e| CaError::Generate {
        what,
        reason: e.to_string(),
    }
}

/// A private key as PEM; never printed.
#[derive(Clone)]
struct KeyPem(Zeroizing<String>);

impl fmt::Debug for KeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPem(redacted)")
    }
}

/// One CA of the bundle.
#[derive(Debug, Clone)]
pub struct Ca {
    der: Vec<u8>,
    not_before: SystemTime,
    not_after: SystemTime,
    key: Option<KeyPem>,
}

impl Ca {
    /// The certificate (DER).
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// When it was made (its notBefore is [`BACKDATE`] earlier).
    pub fn made(&self) -> SystemTime {
        self.not_before + BACKDATE
    }

    fn valid_at(&self, now: SystemTime) -> bool {
        self.not_before <= now && now < self.not_after
    }

    fn pem(&self) -> String {
        use base64::Engine;
        let b64 = base64::prelude::BASE64_STANDARD.encode(&self.der);
        let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }

    /// Reads one certificate of `ca.crt` (`index` counts from 1 in messages).
    fn parse(der: Vec<u8>, index: usize) -> Result<Ca, ContentError> {
        let (_, x509) = x509_parser::parse_x509_certificate(&der).map_err(|e| {
            ContentError::BadCertificate {
                key: CERT_KEY,
                index,
                reason: e.to_string(),
            }
        })?;
        if !x509.is_ca() {
            return Err(ContentError::NotCa {
                key: CERT_KEY,
                index,
            });
        }
        let validity = x509.validity();
        let (not_before, not_after) = (
            SystemTime::from(validity.not_before.to_datetime()),
            SystemTime::from(validity.not_after.to_datetime()),
        );
        Ok(Ca {
            der,
            not_before,
            not_after,
            key: None,
        })
    }

    /// Attaches the key from Secret key `key`, which must be this certificate's.
    fn with_key(mut self, pem: &[u8], key: &'static str, index: usize) -> Result<Ca, ContentError> {
        let text = std::str::from_utf8(pem).map_err(|_| ContentError::NotText { key })?;
        let pair = KeyPair::from_pem(text).map_err(|e| ContentError::BadKey {
            key,
            reason: e.to_string(),
        })?;
        let (_, x509) = x509_parser::parse_x509_certificate(&self.der).map_err(|e| {
            ContentError::BadCertificate {
                key: CERT_KEY,
                index,
                reason: e.to_string(),
            }
        })?;
        if x509.public_key().raw != pair.subject_public_key_info().as_slice() {
            return Err(ContentError::KeyMismatch { key, index });
        }
        self.key = Some(KeyPem(Zeroizing::new(text.to_owned())));
        Ok(self)
    }

    /// A new self-signed CA (ECDSA P-256) named `name`, valid from `now` for `validity`.
    pub fn generate(name: &str, now: SystemTime, validity: Duration) -> Result<Ca, CaError> {
        let key = KeyPair::generate().map_err(generate("CA key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate("CA"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.distinguished_name.push(DnType::CommonName, name);
        params.not_before = whole_seconds(now - BACKDATE).into();
        params.not_after = whole_seconds(now + validity).into();
        let cert = params.self_signed(&key).map_err(generate("CA"))?;
        let pem = Zeroizing::new(key.serialize_pem());
        Ca::parse(cert.der().to_vec(), 1)
            .and_then(|ca| ca.with_key(pem.as_bytes(), KEY_KEY, 1))
            .map_err(|e| CaError::Generate {
                what: "CA",
                reason: e.to_string(),
            })
    }
}

/// Drops the sub-second part (certificates carry whole seconds).
fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

/// The CAs of the Secret, newest first.
#[derive(Debug, Clone)]
pub struct CaSet {
    cas: Vec<Ca>,
}

/// What the Secret needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// A new CA goes in front.
    pub rotate: bool,
    /// This many expired CAs leave the bundle.
    pub expired: usize,
}

impl CaSet {
    /// A set of one new CA.
    pub fn new(ca: Ca) -> CaSet {
        CaSet { cas: vec![ca] }
    }

    /// Reads the Secret's data; errors name the key at fault.
    pub fn parse(data: &BTreeMap<String, Vec<u8>>) -> Result<CaSet, ContentError> {
        let bundle = data
            .get(CERT_KEY)
            .ok_or(ContentError::Missing { key: CERT_KEY })?;
        let key = data
            .get(KEY_KEY)
            .ok_or(ContentError::Missing { key: KEY_KEY })?;
        std::str::from_utf8(bundle).map_err(|_| ContentError::NotText { key: CERT_KEY })?;
        let mut cas = Vec::new();
        for (i, der) in CertificateDer::pem_slice_iter(bundle).enumerate() {
            let der = der.map_err(|e| ContentError::BadCertificate {
                key: CERT_KEY,
                index: i + 1,
                reason: e.to_string(),
            })?;
            cas.push(Ca::parse(der.to_vec(), i + 1)?);
        }
        let mut cas = cas.into_iter();
        let first = cas
            .next()
            .ok_or(ContentError::NoCertificate { key: CERT_KEY })?
            .with_key(key, KEY_KEY, 1)?;
        let mut all = vec![first];
        if let Some(second) = cas.next() {
            all.push(match data.get(PREVIOUS_KEY_KEY) {
                Some(pem) => second.with_key(pem, PREVIOUS_KEY_KEY, 2)?,
                None => second,
            });
        }
        all.extend(cas);
        Ok(CaSet { cas: all })
    }

    /// The Secret's data for this set.
    pub fn to_data(&self) -> BTreeMap<String, Vec<u8>> {
        let mut data = BTreeMap::new();
        data.insert(CERT_KEY.to_owned(), self.bundle_pem().into_bytes());
        for (ca, key) in self.cas.iter().zip([KEY_KEY, PREVIOUS_KEY_KEY]) {
            if let Some(pem) = &ca.key {
                data.insert(key.to_owned(), pem.0.as_bytes().to_vec());
            }
        }
        data
    }

    /// The PEM bundle, newest first (`ca.crt`).
    pub fn bundle_pem(&self) -> String {
        self.cas.iter().map(Ca::pem).collect()
    }

    pub fn cas(&self) -> &[Ca] {
        &self.cas
    }

    /// What the Secret needs at `now`: a new CA when the newest has less than
    /// `ca_renew_before` left (or none is valid), and the expired ones dropped.
    pub fn change(&self, now: SystemTime, lifetimes: &Lifetimes) -> Change {
        let expired = self.cas.iter().filter(|c| c.not_after <= now).count();
        let rotate = match self.cas.first() {
            None => true,
            Some(newest) => newest
                .not_after
                .duration_since(now)
                .map_or(true, |left| left < lifetimes.ca_renew_before),
        };
        Change { rotate, expired }
    }

    /// The set after `change`: `new` in front (when rotating), expired CAs dropped, and
    /// keys kept for the two newest only.
    pub fn apply(&self, now: SystemTime, new: Option<Ca>) -> CaSet {
        let mut cas: Vec<Ca> = new.into_iter().collect();
        cas.extend(self.cas.iter().filter(|c| c.not_after > now).cloned());
        for ca in cas.iter_mut().skip(2) {
            ca.key = None;
        }
        CaSet { cas }
    }

    /// The CA that signs serving certificates at `now`: the newest valid CA with a key that
    /// has been in the bundle for `propagation`; else the oldest valid one with a key (a
    /// first CA has nothing to wait for).
    pub fn signer(&self, now: SystemTime, propagation: Duration) -> Option<&Ca> {
        let mut keyed = self
            .cas
            .iter()
            .filter(|c| c.key.is_some() && c.valid_at(now));
        let first = keyed.clone().find(|c| {
            now.duration_since(c.made())
                .is_ok_and(|age| age >= propagation)
        });
        first.or_else(|| keyed.next_back())
    }

    /// The next time something changes without anyone writing: a rotation comes due, a
    /// newer CA starts signing, or a CA expires.
    pub fn next_event(&self, now: SystemTime, lifetimes: &Lifetimes) -> Option<SystemTime> {
        let mut times = Vec::new();
        if let Some(newest) = self.cas.first()
            && let Some(due) = newest.not_after.checked_sub(lifetimes.ca_renew_before)
        {
            times.push(due);
        }
        for ca in &self.cas {
            times.push(ca.not_after);
            if ca.key.is_some() {
                times.push(ca.made() + lifetimes.ca_propagation);
            }
        }
        times.into_iter().filter(|t| *t > now).min()
    }
}

/// A serving certificate issued in memory.
#[derive(Debug)]
pub struct Leaf {
    /// The chain (the certificate only) and its key, for rustls.
    pub certified: CertifiedKey,
    /// The CA that signed it (DER).
    pub issuer: Vec<u8>,
    pub issued: SystemTime,
    pub not_after: SystemTime,
}

impl Leaf {
    /// When two thirds of its life have passed.
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.issued)
            .unwrap_or_default();
        self.issued + life * 2 / 3
    }
}

/// The names of a Service's certificate: SERVICE, SERVICE.NS, SERVICE.NS.svc and
/// SERVICE.NS.svc.cluster.local, then `extra` (DNS names or IP addresses).
pub fn service_names(service: &str, namespace: &str, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        format!("{service}.{namespace}.svc"),
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ];
    for e in extra {
        if !names.contains(e) {
            names.push(e.clone());
        }
    }
    names
}

/// Issues a serving certificate (ECDSA P-256, server auth) for `names` (the first is also
/// its common name) signed by `ca`, valid from `now` for `validity` but never past the CA.
pub fn issue(
    ca: &Ca,
    names: &[String],
    now: SystemTime,
    validity: Duration,
) -> Result<Leaf, CaError> {
    let ca_key = ca.key.as_ref().ok_or(CaError::NoSigner)?;
    let ca_key = KeyPair::from_pem(&ca_key.0).map_err(generate("CA key"))?;
    let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(ca.der.as_slice()), ca_key)
        .map_err(generate("CA"))?;
    let key = KeyPair::generate().map_err(generate("serving key"))?;
    let mut params = CertificateParams::new(names.to_vec()).map_err(generate("certificate"))?;
    if let Some(cn) = names.first() {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let not_after = whole_seconds((now + validity).min(ca.not_after));
    params.not_before = whole_seconds(now - BACKDATE).into();
    params.not_after = not_after.into();
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(generate("certificate"))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let certified = CertifiedKey::from_der(vec![cert.der().clone()], der, &super::tls::provider())
        .map_err(|e| CaError::Generate {
            what: "certificate",
            reason: e.to_string(),
        })?;
    Ok(Leaf {
        certified,
        issuer: ca.der.clone(),
        issued: now,
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn lifetimes() -> Lifetimes {
        Lifetimes {
            ca: 100 * DAY,
            ca_renew_before: 30 * DAY,
            ca_propagation: DAY,
            leaf: 10 * DAY,
        }
    }

    fn data(pairs: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect()
    }

    #[test]
    fn a_new_ca_round_trips_through_the_secret_data() {
        let set = CaSet::new(Ca::generate("test CA", t0(), 100 * DAY).expect("CA"));
        let data = set.to_data();
        assert_eq!(data.keys().collect::<Vec<_>>(), [CERT_KEY, KEY_KEY]);
        let back = CaSet::parse(&data).expect("parses");
        assert_eq!(back.bundle_pem(), set.bundle_pem());
        assert_eq!(back.cas()[0].not_after(), t0() + 100 * DAY);
        assert_eq!(back.cas()[0].made(), t0());
        assert_eq!(back.to_data(), data, "no churn: the same bytes come back");
    }

    #[test]
    fn broken_secret_content_names_the_key() {
        let set = CaSet::new(Ca::generate("a", t0(), 100 * DAY).expect("CA"));
        let other = CaSet::new(Ca::generate("b", t0(), 100 * DAY).expect("CA"));
        let good = set.to_data();
        let (crt, key) = (&good[CERT_KEY], &good[KEY_KEY]);
        let leaf = {
            let l = issue(&set.cas[0], &["x.y.svc".to_owned()], t0(), DAY).expect("leaf");
            let der = l.certified.cert[0].to_vec();
            Ca {
                der,
                not_before: t0(),
                not_after: t0(),
                key: None,
            }
            .pem()
        };
        type Case = (&'static str, BTreeMap<String, Vec<u8>>, ContentError);
        let cases: Vec<Case> = vec![
            (
                "no ca.crt",
                data(&[(KEY_KEY, key)]),
                ContentError::Missing { key: CERT_KEY },
            ),
            (
                "no ca.key",
                data(&[(CERT_KEY, crt)]),
                ContentError::Missing { key: KEY_KEY },
            ),
            (
                "garbage ca.crt",
                data(&[(CERT_KEY, b"garbage"), (KEY_KEY, key)]),
                ContentError::NoCertificate { key: CERT_KEY },
            ),
            (
                "binary ca.crt",
                data(&[(CERT_KEY, &[0xff, 0xfe]), (KEY_KEY, key)]),
                ContentError::NotText { key: CERT_KEY },
            ),
            (
                "a leaf, not a CA",
                data(&[(CERT_KEY, leaf.as_bytes()), (KEY_KEY, key)]),
                ContentError::NotCa {
                    key: CERT_KEY,
                    index: 1,
                },
            ),
            (
                "another CA's key",
                data(&[(CERT_KEY, crt), (KEY_KEY, &other.to_data()[KEY_KEY])]),
                ContentError::KeyMismatch {
                    key: KEY_KEY,
                    index: 1,
                },
            ),
        ];
        for (name, d, want) in cases {
            let got = CaSet::parse(&d).expect_err(name);
            assert_eq!(got, want, "{name}");
        }
        let e = CaSet::parse(&data(&[(CERT_KEY, crt), (KEY_KEY, b"garbage")])).expect_err("key");
        assert!(
            matches!(e, ContentError::BadKey { key: KEY_KEY, .. }),
            "{e}"
        );
        assert!(!e.to_string().contains("PRIVATE"), "{e}");
    }

    #[test]
    fn the_ca_rotates_within_the_margin_and_expired_cas_leave_the_bundle() {
        let lt = lifetimes();
        let first = CaSet::new(Ca::generate("first", t0(), lt.ca).expect("CA"));
        let nothing = Change {
            rotate: false,
            expired: 0,
        };
        assert_eq!(first.change(t0() + 69 * DAY, &lt), nothing);
        assert_eq!(
            first.change(t0() + 71 * DAY, &lt),
            Change {
                rotate: true,
                expired: 0
            }
        );
        let now = t0() + 71 * DAY;
        let second = first.apply(now, Some(Ca::generate("second", now, lt.ca).expect("CA")));
        assert_eq!(second.cas().len(), 2);
        assert_eq!(second.change(now, &lt), nothing);
        let data = second.to_data();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            [PREVIOUS_KEY_KEY, CERT_KEY, KEY_KEY]
        );
        let parsed = CaSet::parse(&data).expect("parses");
        assert_eq!(parsed.cas()[1].der(), first.cas()[0].der());
        // The first CA expires: dropped, and its key with it.
        let later = t0() + 100 * DAY;
        assert_eq!(
            parsed.change(later, &lt),
            Change {
                rotate: false,
                expired: 1
            }
        );
        let dropped = parsed.apply(later, None);
        assert_eq!(dropped.cas().len(), 1);
        assert_eq!(
            dropped.to_data().keys().collect::<Vec<_>>(),
            [CERT_KEY, KEY_KEY]
        );
    }

    #[test]
    fn serving_certificates_move_to_a_new_ca_only_after_the_propagation_delay() {
        let lt = lifetimes();
        let first = CaSet::new(Ca::generate("first", t0(), lt.ca).expect("CA"));
        // A first CA signs at once: there is nothing older to wait on.
        assert_eq!(
            first.signer(t0(), lt.ca_propagation).map(Ca::der),
            Some(first.cas()[0].der())
        );
        let rotated_at = t0() + 71 * DAY;
        let both = first.apply(
            rotated_at,
            Some(Ca::generate("second", rotated_at, lt.ca).expect("CA")),
        );
        let signer = |at| both.signer(at, lt.ca_propagation).map(Ca::der);
        assert_eq!(signer(rotated_at), Some(first.cas()[0].der()));
        assert_eq!(
            both.next_event(rotated_at, &lt),
            Some(rotated_at + lt.ca_propagation)
        );
        assert_eq!(
            signer(rotated_at + lt.ca_propagation - Duration::from_secs(1)),
            Some(first.cas()[0].der())
        );
        assert_eq!(
            signer(rotated_at + lt.ca_propagation),
            Some(both.cas()[0].der())
        );
    }

    #[test]
    fn a_leaf_names_the_service_chains_to_the_ca_and_renews_after_two_thirds() {
        let lt = lifetimes();
        let set = CaSet::new(Ca::generate("ca", t0(), lt.ca).expect("CA"));
        let names = service_names("hook", "ops", &["127.0.0.1".to_owned()]);
        assert_eq!(
            names,
            [
                "hook.ops.svc",
                "hook",
                "hook.ops",
                "hook.ops.svc.cluster.local",
                "127.0.0.1"
            ]
        );
        let leaf = issue(&set.cas()[0], &names, t0(), 30 * DAY).expect("leaf");
        assert_eq!(leaf.renew_at(), t0() + 20 * DAY);
        assert_eq!(leaf.issuer, set.cas()[0].der());
        let (_, x509) =
            x509_parser::parse_x509_certificate(&leaf.certified.cert[0]).expect("a certificate");
        assert!(!x509.is_ca());
        assert_eq!(
            x509.issuer().to_string(),
            "CN=ca",
            "signed by the CA, not self-signed"
        );
        let sans = x509
            .subject_alternative_name()
            .expect("SAN")
            .expect("present")
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>();
        assert_eq!(
            sans,
            [
                "DNSName(hook.ops.svc)",
                "DNSName(hook)",
                "DNSName(hook.ops)",
                "DNSName(hook.ops.svc.cluster.local)",
                "IPAddress(7f:00:00:01)"
            ]
        );

        // Never valid past its CA.
        let late = t0() + 95 * DAY;
        let short = issue(&set.cas()[0], &names, late, 30 * DAY).expect("leaf");
        assert_eq!(short.not_after, t0() + 100 * DAY);
    }

    #[test]
    fn lifetimes_that_cannot_work_are_refused_naming_the_flag() {
        assert_eq!(Lifetimes::default().check(), Ok(Lifetimes::default()));
        let e = Lifetimes {
            ca_renew_before: 200 * DAY,
            ..lifetimes()
        }
        .check()
        .expect_err("renew before longer than the CA");
        assert!(e.to_string().contains("--tls-ca-renew-before"), "{e}");
        let e = Lifetimes {
            ca_propagation: 40 * DAY,
            ..lifetimes()
        }
        .check()
        .expect_err("propagation");
        assert!(e.to_string().contains("--tls-ca-propagation"), "{e}");
        let e = Lifetimes {
            leaf: Duration::ZERO,
            ..lifetimes()
        }
        .check()
        .expect_err("zero");
        assert!(e.to_string().contains("--tls-cert-validity"), "{e}");
    }
}
