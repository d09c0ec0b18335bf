//! Certificates made in the test: a private certificate authority, a server
//! certificate for `127.0.0.1` and `localhost` and a client certificate,
//! signed by it, as PEM in memory and in files (for `redis-server`), and
//! rustls client configurations that trust that authority only.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A certificate and its private key, in PEM.
#[derive(Debug, Clone)]
pub struct CertPem {
    /// The certificate (`BEGIN CERTIFICATE`).
    pub cert: String,
    /// Its private key, PKCS#8 (`BEGIN PRIVATE KEY`).
    pub key: String,
}

/// A private certificate authority with a server certificate (for
/// `127.0.0.1` and `localhost`) and a client certificate it signed, written
/// to a temporary directory that is removed on drop.
///
/// ```
/// let pki = crosswire_test_support::TestPki::new("example");
/// assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// assert!(pki.server().key.contains("PRIVATE KEY"));
/// assert!(pki.server_cert_path().exists() && pki.ca_path().exists());
/// ```
#[derive(Debug)]
pub struct TestPki {
    ca: String,
    server: CertPem,
    client: CertPem,
    dir: PathBuf,
}

impl TestPki {
    /// A new authority named `name` (in its common name) and its two
    /// certificates. Every call makes new keys: two `TestPki`s do not trust
    /// each other.
    pub fn new(name: &str) -> Self {
        match Self::generate(name) {
            Ok(pki) => pki,
            Err(e) => panic!("cannot make the test certificates: {e}"),
        }
    }

    fn generate(name: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("crosswire test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;

        let leaf = |names: Vec<String>, purpose: ExtendedKeyUsagePurpose, cn: &str| {
            let mut params = CertificateParams::new(names)?;
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![purpose];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &ca)?;
            Ok::<_, rcgen::Error>(CertPem {
                cert: cert.pem(),
                key: key.serialize_pem(),
            })
        };
        let server = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            "localhost",
        )?;
        let client = leaf(
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            "crosswire test client",
        )?;

        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "crosswire-test-pki-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let pki = TestPki {
            ca: ca.pem(),
            server,
            client,
            dir,
        };
        std::fs::write(pki.ca_path(), &pki.ca)?;
        std::fs::write(pki.server_cert_path(), &pki.server.cert)?;
        std::fs::write(pki.server_key_path(), &pki.server.key)?;
        Ok(pki)
    }

    /// The authority's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca
    }

    /// The server certificate (for `127.0.0.1` and `localhost`) and key.
    pub fn server(&self) -> &CertPem {
        &self.server
    }

    /// A client certificate (for mutual TLS) and key.
    pub fn client(&self) -> &CertPem {
        &self.client
    }

    /// The file holding [`ca_pem`](Self::ca_pem).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The file holding the server certificate.
    pub fn server_cert_path(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// The file holding the server certificate's key.
    pub fn server_key_path(&self) -> PathBuf {
        self.dir.join("server-key.pem")
    }

    /// The directory of the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A rustls client configuration (*ring* provider) that trusts this
    /// authority only, without a client certificate.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let builder = self.client_builder();
        Arc::new(builder.with_no_client_auth())
    }

    /// As [`client_config`](Self::client_config), presenting the client
    /// certificate when the server asks for one.
    pub fn client_config_with_cert(&self) -> Arc<rustls::ClientConfig> {
        let chain = vec![pem_cert(&self.client.cert)];
        let key = match PrivateKeyDer::from_pem_slice(self.client.key.as_bytes()) {
            Ok(key) => key,
            Err(e) => panic!("the test client key is not PEM: {e}"),
        };
        match self.client_builder().with_client_auth_cert(chain, key) {
            Ok(config) => Arc::new(config),
            Err(e) => panic!("the test client certificate is refused by rustls: {e}"),
        }
    }

    fn client_builder(
        &self,
    ) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
        let mut roots = rustls::RootCertStore::empty();
        if let Err(e) = roots.add(pem_cert(&self.ca)) {
            panic!("the test CA is refused by rustls: {e}");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        match rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
        {
            Ok(builder) => builder.with_root_certificates(roots),
            Err(e) => panic!("rustls has no safe protocol version: {e}"),
        }
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The one certificate of `pem`.
fn pem_cert(pem: &str) -> CertificateDer<'static> {
    match CertificateDer::from_pem_slice(pem.as_bytes()) {
        Ok(cert) => cert,
        Err(e) => panic!("not a PEM certificate: {e}"),
    }
}
