//! The device's own key and its certificate signing request (`vaka-agent identity request`).
//!
//! The key is made here, on the device, and never leaves it: the installer sends only the
//! request to the hub (`POST /api/v1/devices/{id}/certificate`) and puts the certificate it
//! answers with where `mqtt.client_cert_file` points. The hub takes just the public key from
//! the request and names the certificate after the registered device.
//!
//! Rotation: make a request with a new key file (`--key /etc/vaka/device-2026.key`), install
//! the new certificate and key in the config; the old certificate keeps working until it
//! expires or is revoked.

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use std::io::Write;
use std::path::Path;
use vaka_protocol::DeviceId;

/// A signing request (PEM) for `device` with the key at `key_path`, made there first (P-256,
/// readable by the agent's user alone) when the file does not exist. Also says whether the
/// key is new.
pub fn signing_request(device: &DeviceId, key_path: &Path) -> Result<(String, bool), String> {
    let (key, created) = match std::fs::read_to_string(key_path) {
        Ok(pem) => (KeyPair::from_pem(&pem).map_err(|e| format!("{}: not a private key this tool can use: {e}", key_path.display()))?, false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options
                .open(key_path)
                .and_then(|mut f| f.write_all(key.serialize_pem().as_bytes()).and_then(|_| f.sync_all()))
                .map_err(|e| format!("{}: cannot write the new key: {e}", key_path.display()))?;
            (key, true)
        }
        Err(e) => return Err(format!("{}: cannot read: {e}", key_path.display())),
    };
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, device.as_str());
    params.distinguished_name = name;
    let csr = params.serialize_request(&key).map_err(|e| format!("cannot make the request: {e}"))?;
    Ok((csr.pem().map_err(|e| format!("cannot write the request as PEM: {e}"))?, created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_private_and_reused_for_the_next_request() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("device.key");
        let device = DeviceId::new("home-7".to_string()).unwrap();
        let (first, created) = signing_request(&device, &key).unwrap();
        assert!(created);
        assert!(first.starts_with("-----BEGIN CERTIFICATE REQUEST-----"), "{first}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let pem = std::fs::read_to_string(&key).unwrap();
        let (_, again) = signing_request(&device, &key).unwrap();
        assert!(!again, "an existing key is used, not replaced");
        assert_eq!(std::fs::read_to_string(&key).unwrap(), pem);
        std::fs::write(&key, "not a key").unwrap();
        assert!(signing_request(&device, &key).unwrap_err().contains("not a private key"));
    }
}
