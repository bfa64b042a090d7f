//! The hub's device certificate authority: every device gets its own key and certificate, with
//! its device id as the certificate's common name (the identity Mosquitto's
//! `use_identity_as_username` takes as the MQTT user name).
//!
//! The CA is made on the hub's first start (rcgen, ECDSA P-256) and kept beside the database:
//! `ca.pem` (the certificate, handed to brokers and devices) and `ca.key` (readable by the hub
//! alone). Device certificates are for TLS client authentication only and last
//! [`DEVICE_CERT_DAYS`]; a new one for the same device does not end the old one (rotation: both
//! work until the old expires or is revoked). A device that can make its own key sends a
//! signing request ([`DeviceCa::issue_for_csr`]) so the key never leaves it; only its public
//! key is taken from the request, the name and uses are the hub's. Revoked certificates go
//! into a revocation list signed by the CA ([`DeviceCa::crl`]), kept as `crl.pem` beside the
//! CA for the brokers' `crlfile` and for the hub's own device listener.
//!
//! [`broker_files`] writes what a Mosquitto needs to take devices by these certificates: the
//! CA, a listener that requires a client certificate and takes its common name as the user
//! name, an ACL that lets each device publish only to its own `events`, `status` and
//! `snapshot` topics and read only its own `acks` and `cmd`, and a client certificate for the
//! hub itself (user [`HUB_USER`], every Vaka topic).

use jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, RevocationReason, RevokedCertParams,
    SerialNumber,
};
use std::path::{Path, PathBuf};
use thiserror::Error;
use vaka_protocol::DeviceId;

/// The CA certificate's common name. The issuer name of every device certificate must match
/// it exactly, so it is a constant: the key and this name rebuild the issuer on each start.
const CA_NAME: &str = "Vaka device CA";
const CA_YEARS: i64 = 20;
/// How long a device certificate lasts.
pub const DEVICE_CERT_DAYS: i64 = 825;
/// How long a revocation list is valid: brokers refuse every device once it has expired, so
/// the hub writes a new one each day ([`CRL_REFRESH`]) and at each revocation.
pub const CRL_DAYS: i64 = 7;
pub const CRL_REFRESH: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// The revocation list's file name in the CA's directory.
pub const CRL_FILE: &str = "crl.pem";

/// The hub's MQTT user name (its client certificate's common name) on a broker that takes
/// identities from certificates.
pub const HUB_USER: &str = "vaka-hub";

/// The device CA's directory for a hub whose database is `store_path`: beside it.
pub fn ca_dir(store_path: &Path) -> PathBuf {
    store_path.parent().unwrap_or(Path::new(".")).join("device-ca")
}

#[derive(Debug, Error)]
pub enum PkiError {
    #[error("device CA in {dir}: {message}")]
    Files { dir: PathBuf, message: String },
    #[error("cannot make a certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("not a usable certificate signing request: {0}")]
    BadRequest(String),
}

/// A device's new certificate, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    /// Hex, as `openssl x509 -serial` prints it (for revocation lists and the audit log).
    pub serial: String,
    pub not_after: Timestamp,
}

pub struct DeviceCa {
    ca_pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for DeviceCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCa").finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    name.push(DnType::OrganizationName, "Vaka");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

/// Valid from the start of the UTC day before `from` (clock skew) to the start of the UTC day
/// of `to`, as rcgen takes validity dates; that end.
fn validity(params: &mut CertificateParams, from: Timestamp, to: Timestamp) -> Timestamp {
    let utc = jiff::tz::TimeZone::UTC;
    let day = |t: Timestamp| {
        let d = t.to_zoned(utc.clone()).date();
        (rcgen::date_time_ymd(d.year().into(), d.month() as u8, d.day() as u8), d)
    };
    params.not_before = day(from - SignedDuration::from_hours(24)).0;
    let (end, date) = day(to);
    params.not_after = end;
    date.to_zoned(utc).map(|z| z.timestamp()).unwrap_or(to)
}

impl DeviceCa {
    /// The CA in `dir`, made there (with the directory) if it has none yet.
    pub fn load_or_create(dir: &Path) -> Result<DeviceCa, PkiError> {
        let files = |message: String| PkiError::Files { dir: dir.to_path_buf(), message };
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let ca_pem = std::fs::read_to_string(&cert_path).map_err(|e| files(format!("cannot read ca.pem: {e}")))?;
                let key_pem = std::fs::read_to_string(&key_path).map_err(|e| files(format!("cannot read ca.key: {e}")))?;
                let key = KeyPair::from_pem(&key_pem).map_err(|e| files(format!("ca.key is not a private key: {e}")))?;
                Ok(DeviceCa { ca_pem, key })
            }
            (false, false) => {
                std::fs::create_dir_all(dir).map_err(|e| files(format!("cannot create: {e}")))?;
                let key = KeyPair::generate()?;
                let mut params = ca_params();
                let now = Timestamp::now();
                validity(&mut params, now, now + SignedDuration::from_hours(24 * 365 * CA_YEARS));
                let cert = params.self_signed(&key)?;
                write_private(&key_path, &key.serialize_pem()).map_err(|e| files(format!("cannot write ca.key: {e}")))?;
                std::fs::write(&cert_path, cert.pem()).map_err(|e| files(format!("cannot write ca.pem: {e}")))?;
                tracing::info!(dir = %dir.display(), "Device CA created");
                Ok(DeviceCa { ca_pem: cert.pem(), key })
            }
            (true, false) => Err(files("ca.pem is there but ca.key is missing; restore it or remove both to start a new CA (every device then needs a new certificate)".into())),
            (false, true) => Err(files("ca.key is there but ca.pem is missing; restore it or remove both to start a new CA (every device then needs a new certificate)".into())),
        }
    }

    /// The CA certificate (PEM): what brokers trust for device client certificates.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A new certificate for `device` and its new private key (PEM), valid from the day
    /// before `now` (clock skew) for [`DEVICE_CERT_DAYS`].
    pub fn issue(&self, device: &DeviceId, now: Timestamp) -> Result<(Issued, String), PkiError> {
        let key = KeyPair::generate()?;
        Ok((self.sign(device, &key, now)?, key.serialize_pem()))
    }

    /// A certificate for `device` for the public key of a signing request the device made
    /// (PEM). The request's signature must hold (it proves the device has the key); its name
    /// and requested extensions are ignored: the certificate names `device` and allows TLS
    /// client authentication only, as [`DeviceCa::issue`]'s.
    pub fn issue_for_csr(&self, device: &DeviceId, csr_pem: &str, now: Timestamp) -> Result<Issued, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            PkiError::BadRequest(match e {
                rcgen::Error::InvalidCertificationRequestSignature => "its signature does not match its public key".to_string(),
                rcgen::Error::CouldNotParseCertificationRequest => "it is not a PEM certificate signing request (-----BEGIN CERTIFICATE REQUEST-----)".to_string(),
                other => other.to_string(),
            })
        })?;
        self.sign(device, &csr.public_key, now)
    }

    fn sign(&self, device: &DeviceId, public_key: &impl PublicKeyData, now: Timestamp) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, device.as_str());
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let serial: [u8; 16] = rand_serial();
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let not_after = validity(&mut params, now, now + SignedDuration::from_hours(24 * DEVICE_CERT_DAYS));
        let issuer = Issuer::new(ca_params(), &self.key);
        let cert = params.signed_by(public_key, &issuer)?;
        Ok(Issued { cert_pem: cert.pem(), serial: serial.iter().map(|b| format!("{b:02X}")).collect(), not_after })
    }

    /// The revocation list (PEM) of `revoked` (serial as [`Issued::serial`], when), issued
    /// `now` and valid for [`CRL_DAYS`]. Its number is `now` in microseconds, so a newer list
    /// always has the higher number.
    pub fn crl(&self, revoked: &[(String, Timestamp)], now: Timestamp) -> Result<String, PkiError> {
        let time = |t: Timestamp| {
            time::OffsetDateTime::from_unix_timestamp(t.as_second()).map_err(|e| PkiError::BadRequest(format!("time {t} out of range: {e}")))
        };
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for (serial, at) in revoked {
            let bytes = hex_bytes(serial).ok_or_else(|| PkiError::Files { dir: PathBuf::new(), message: format!("serial {serial:?} in the database is not hex") })?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&bytes),
                revocation_time: time(*at)?,
                reason_code: Some(RevocationReason::CessationOfOperation),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: time(now - SignedDuration::from_mins(5))?,
            next_update: time(now + SignedDuration::from_hours(24 * CRL_DAYS))?,
            crl_number: SerialNumber::from_slice(&now.as_microsecond().max(0).to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let issuer = Issuer::new(ca_params(), &self.key);
        Ok(params.signed_by(&issuer)?.pem()?)
    }

    /// Writes [`DeviceCa::crl`] to `crl.pem` in `dir` (the CA's directory), replacing the old
    /// list in one rename so a broker never reads half a file.
    pub fn write_crl(&self, dir: &Path, revoked: &[(String, Timestamp)], now: Timestamp) -> Result<(PathBuf, String), PkiError> {
        let pem = self.crl(revoked, now)?;
        let path = dir.join(CRL_FILE);
        let tmp = dir.join(format!(".{CRL_FILE}.tmp"));
        let files = |message: String| PkiError::Files { dir: dir.to_path_buf(), message };
        std::fs::write(&tmp, &pem).map_err(|e| files(format!("cannot write {CRL_FILE}: {e}")))?;
        std::fs::rename(&tmp, &path).map_err(|e| files(format!("cannot replace {CRL_FILE}: {e}")))?;
        Ok((path, pem))
    }
}

fn hex_bytes(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 || hex.is_empty() {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

/// Mosquitto's ACL for Vaka: the hub reads and writes every Vaka topic; each device (`%u`, its
/// certificate's common name) only its own.
pub fn mosquitto_acl() -> String {
    use vaka_protocol::topic::ROOT;
    format!(
        "# Vaka broker ACL, written by `vaka-hub broker-files`. User names are the common names of\n\
         # the client certificates (use_identity_as_username): the hub is {HUB_USER}, a device its id.\n\
         user {HUB_USER}\n\
         topic readwrite {ROOT}/#\n\
         # Hubs of a shared group pass their consoles' live feed to each other.\n\
         topic readwrite vaka/hubs/#\n\
         \n\
         # Every other user: only its own device's topics, in any site.\n\
         pattern write {ROOT}/+/%u/events\n\
         pattern write {ROOT}/+/%u/status\n\
         pattern write {ROOT}/+/%u/snapshot\n\
         pattern read {ROOT}/+/%u/acks\n\
         pattern read {ROOT}/+/%u/cmd\n"
    )
}

/// Where [`broker_files`] puts the listener and what it names.
#[derive(Debug, Clone)]
pub struct Listener {
    pub port: u16,
    /// The broker's own certificate and key (from the municipality's PKI, not the device CA).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// Writes into `out`: `device-ca.pem`, `vaka.acl`, `vaka-hub.pem`/`vaka-hub.key` (the hub's
/// client certificate) and `vaka.conf`, a Mosquitto listener to include (or run as it is)
/// that requires device certificates, checks them against the revocation list at `crl` (the
/// hub's own `crl.pem`, which it keeps current) and applies the ACL. Returns the files written.
pub fn broker_files(ca: &DeviceCa, out: &Path, listener: &Listener, crl: &Path, now: Timestamp) -> Result<Vec<PathBuf>, PkiError> {
    let files = |message: String| PkiError::Files { dir: out.to_path_buf(), message };
    std::fs::create_dir_all(out).map_err(|e| files(format!("cannot create: {e}")))?;
    let hub = DeviceId::new(HUB_USER.to_string()).map_err(|e| files(e.to_string()))?;
    let (issued, key_pem) = ca.issue(&hub, now)?;
    let path = |name: &str| out.join(name);
    let conf = format!(
        "# Vaka devices on Mosquitto, written by `vaka-hub broker-files` at {now}.\n\
         # Include it from mosquitto.conf (include_dir) or run it as it is: mosquitto -c {conf}\n\
         per_listener_settings false\n\
         listener {port}\n\
         certfile {cert}\n\
         keyfile {key}\n\
         # Clients must present a certificate from the hub's device CA; its common name is the user.\n\
         cafile {ca}\n\
         require_certificate true\n\
         # Revoked device certificates; the hub rewrites it, then Mosquitto reads it on SIGHUP\n\
         # (set the hub's device_ca.crl_reload, e.g. [\"systemctl\", \"reload\", \"mosquitto\"]).\n\
         crlfile {crl}\n\
         use_identity_as_username true\n\
         tls_version tlsv1.2\n\
         allow_anonymous false\n\
         acl_file {acl}\n",
        conf = path("vaka.conf").display(),
        port = listener.port,
        cert = listener.server_cert.display(),
        key = listener.server_key.display(),
        ca = path("device-ca.pem").display(),
        acl = path("vaka.acl").display(),
        crl = crl.display(),
    );
    let written = [("device-ca.pem", ca.ca_pem().to_string()), ("vaka.acl", mosquitto_acl()), ("vaka-hub.pem", issued.cert_pem), ("vaka.conf", conf)];
    let mut out_files = Vec::new();
    for (name, text) in written {
        std::fs::write(path(name), text).map_err(|e| files(format!("cannot write {name}: {e}")))?;
        out_files.push(path(name));
    }
    let key = path("vaka-hub.key");
    let _ = std::fs::remove_file(&key);
    write_private(&key, &key_pem).map_err(|e| files(format!("cannot write vaka-hub.key: {e}")))?;
    out_files.push(key);
    Ok(out_files)
}

/// 16 random bytes with the top bit clear (a positive serial number, as X.509 asks).
fn rand_serial() -> [u8; 16] {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f;
    bytes
}

/// Writes a private key readable by the hub's user alone.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, UnixTime};
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;
    use std::sync::Arc;

    fn verify(ca_pem: &str, issued: &Issued, at: Timestamp) -> Result<(), rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
        let cert = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.as_second() as u64));
        verifier.verify_client_cert(&cert, &[], now).map(|_| ())
    }

    #[test]
    fn a_device_certificate_chains_to_the_ca_even_after_a_restart_and_names_the_device() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DeviceCa::load_or_create(&dir.path().join("device-ca")).unwrap();
        let now = Timestamp::now();
        let device = DeviceId::new("home-042".to_string()).unwrap();
        let (first, first_key) = ca.issue(&device, now).unwrap();
        verify(ca.ca_pem(), &first, now).unwrap();
        assert!(PrivateKeyDer::from_pem_slice(first_key.as_bytes()).is_ok());
        assert_eq!(first.serial.len(), 32);
        // The CA read back from its files issues certificates that chain to the same CA.
        let again = DeviceCa::load_or_create(&dir.path().join("device-ca")).unwrap();
        assert_eq!(again.ca_pem(), ca.ca_pem());
        let (second, _) = again.issue(&device, now).unwrap();
        verify(ca.ca_pem(), &second, now).unwrap();
        assert_ne!(first.serial, second.serial);
        // Its subject is the device id.
        let der = CertificateDer::from_pem_slice(second.cert_pem.as_bytes()).unwrap();
        let needle = b"home-042";
        assert!(der.windows(needle.len()).any(|w| w == needle));
        // Expired after its days; refused by another CA.
        let late = now + SignedDuration::from_hours(24 * (DEVICE_CERT_DAYS + 2));
        assert!(matches!(verify(ca.ca_pem(), &second, late), Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. }))));
        let other = DeviceCa::load_or_create(&dir.path().join("other")).unwrap();
        assert!(verify(other.ca_pem(), &second, now).is_err());
    }

    fn verify_with_crl(ca_pem: &str, crl_pem: &str, cert_pem: &str, at: Timestamp) -> Result<(), rustls::Error> {
        use rustls::pki_types::CertificateRevocationListDer;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
        let crl = CertificateRevocationListDer::from_pem_slice(crl_pem.as_bytes()).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).with_crls([crl]).build().unwrap();
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.as_second() as u64));
        verifier.verify_client_cert(&cert, &[], now).map(|_| ())
    }

    #[test]
    fn a_signing_request_gets_a_certificate_for_the_registered_device_and_revocation_lists_refuse_it() {
        let dir = tempfile::tempdir().unwrap();
        let ca = DeviceCa::load_or_create(&dir.path().join("device-ca")).unwrap();
        let now = Timestamp::now();
        let device = DeviceId::new("home-7".to_string()).unwrap();
        // The device names itself something else in its request: the certificate names the
        // registered device all the same, for the request's own key.
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "vaka-hub");
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let issued = ca.issue_for_csr(&device, &csr, now).unwrap();
        verify(ca.ca_pem(), &issued, now).unwrap();
        let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
        assert!(der.windows(6).any(|w| w == b"home-7"));
        assert!(!der.windows(8).any(|w| w == b"vaka-hub"), "the request's name was taken");
        assert!(der.windows(key.public_key_raw().len()).any(|w| w == key.public_key_raw()), "not the request's key");
        // A request whose signature does not hold, or that is no request, is refused.
        let mut broken = csr.clone().into_bytes();
        let mid = broken.len() / 2;
        broken[mid] = if broken[mid] == b'A' { b'B' } else { b'A' };
        assert!(matches!(ca.issue_for_csr(&device, std::str::from_utf8(&broken).unwrap(), now), Err(PkiError::BadRequest(_))));
        assert!(ca.issue_for_csr(&device, "hello", now).unwrap_err().to_string().contains("signing request"));

        // A list revoking one certificate: that one is refused, another of the device is not.
        let (other, _) = ca.issue(&device, now).unwrap();
        let crl = ca.crl(&[(issued.serial.clone(), now)], now).unwrap();
        assert!(matches!(verify_with_crl(ca.ca_pem(), &crl, &issued.cert_pem, now), Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked))));
        verify_with_crl(ca.ca_pem(), &crl, &other.cert_pem, now).unwrap();
        // An empty list refuses nothing; the file is replaced whole.
        let (path, pem) = ca.write_crl(&dir.path().join("device-ca"), &[], now).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
        verify_with_crl(ca.ca_pem(), &pem, &issued.cert_pem, now).unwrap();
        assert!(hex_bytes("0A1").is_none() && hex_bytes("zz").is_none());
        assert_eq!(hex_bytes("0aFF"), Some(vec![0x0a, 0xff]));
    }

    #[test]
    fn a_half_present_ca_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("device-ca");
        DeviceCa::load_or_create(&ca_dir).unwrap();
        std::fs::remove_file(ca_dir.join("ca.key")).unwrap();
        let e = DeviceCa::load_or_create(&ca_dir).unwrap_err().to_string();
        assert!(e.contains("ca.key is missing"), "{e}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let fresh = dir.path().join("fresh");
            DeviceCa::load_or_create(&fresh).unwrap();
            assert_eq!(std::fs::metadata(fresh.join("ca.key")).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
