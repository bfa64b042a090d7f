//! A throw-away certificate authority for TLS tests: a CA, a broker certificate for
//! `localhost`/127.0.0.1, and client certificates on demand, all written as PEM files.

use rcgen::{date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};

pub struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    pub ca_file: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

impl Pki {
    /// A CA named `name` and a broker certificate signed by it, in `dir`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let ca = CertifiedIssuer::self_signed(params, key).unwrap_or_else(|e| panic!("{e}"));
        let ca_file = dir.join(format!("{name}-ca.pem"));
        write(&ca_file, &ca.pem());
        let mut pki = Pki {
            dir: dir.to_path_buf(),
            ca,
            ca_file,
            server_cert: PathBuf::new(),
            server_key: PathBuf::new(),
        };
        let (cert, key) = pki.issue(&format!("{name}-broker"), &["localhost", "127.0.0.1"]);
        pki.server_cert = cert;
        pki.server_key = key;
        pki
    }

    /// Issues a certificate for `common_name` (and the given subject alternative names) and
    /// returns the paths of its PEM certificate and key.
    pub fn issue(&self, common_name: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap_or_else(|e| panic!("{e}"));
        params.distinguished_name.push(DnType::CommonName, common_name);
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let cert = params.signed_by(&key, &self.ca).unwrap_or_else(|e| panic!("{e}"));
        let cert_file = self.dir.join(format!("{common_name}.pem"));
        let key_file = self.dir.join(format!("{common_name}.key"));
        write(&cert_file, &cert.pem());
        write(&key_file, &key.serialize_pem());
        (cert_file, key_file)
    }

    /// Issues a certificate for `common_name` that expired on 2021-01-01 (valid through 2020),
    /// from this CA; returns the paths of its PEM certificate and key.
    pub fn issue_expired(&self, common_name: &str) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let cert = params.signed_by(&key, &self.ca).unwrap_or_else(|e| panic!("{e}"));
        let cert_file = self.dir.join(format!("{common_name}-expired.pem"));
        let key_file = self.dir.join(format!("{common_name}-expired.key"));
        write(&cert_file, &cert.pem());
        write(&key_file, &key.serialize_pem());
        (cert_file, key_file)
    }
}
