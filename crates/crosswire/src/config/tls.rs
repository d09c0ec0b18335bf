//! TLS for the standalone listener (feature `tls`): the certificate chain
//! and key a node serves `wss://` with.

use crate::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The only application protocol the listener speaks over TLS: the
/// WebSocket upgrade is an HTTP/1.1 request.
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// What a node serves TLS with: a certificate chain and its private key, or
/// a whole rustls server configuration. Given to
/// [`NodeBuilder::tls`](crate::NodeBuilder::tls), it makes
/// [`Node::listen`](crate::Node::listen) and
/// [`Node::serve`](crate::Node::serve) accept `wss://` connections only.
///
/// The TLS handshake is part of the connection's handshake: it counts
/// against [`handshake_timeout`](crate::NodeConfig::handshake_timeout) and
/// [`max_pending_handshakes`](crate::NodeConfig::max_pending_handshakes) like
/// the HTTP request head that follows it. rustls uses the *ring* provider
/// with its safe defaults (TLS 1.2 and 1.3); ALPN offers `http/1.1`.
///
/// Available with the crate's `tls` feature.
///
/// # Examples
///
/// ```
/// // A self-signed certificate for the example; a real node reads the PEM
/// // files of its certificate authority (`TlsConfig::from_pem_files`).
/// let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
/// let tls = crosswire::config::TlsConfig::from_pem(
///     cert.cert.pem().as_bytes(),
///     cert.signing_key.serialize_pem().as_bytes(),
/// )?;
/// assert_eq!(tls.server_config().alpn_protocols, [b"http/1.1".to_vec()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<ServerConfig>,
}

impl TlsConfig {
    /// Reads a PEM certificate chain (the server's certificate first, then
    /// the intermediates; the `fullchain.pem` of most certificate
    /// authorities) and a PEM private key (PKCS#8, PKCS#1 or SEC1) from
    /// files.
    ///
    /// Fails with [`Error::Config`] naming the file when one cannot be read,
    /// holds no certificate or key, or the key does not match the
    /// certificate.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join(format!("crosswire-doc-tls-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    /// std::fs::write(dir.join("fullchain.pem"), cert.cert.pem())?;
    /// std::fs::write(dir.join("privkey.pem"), cert.signing_key.serialize_pem())?;
    ///
    /// use crosswire::config::TlsConfig;
    /// let tls = TlsConfig::from_pem_files(dir.join("fullchain.pem"), dir.join("privkey.pem"))?;
    /// # let _ = tls;
    /// let missing = TlsConfig::from_pem_files(dir.join("nothing.pem"), dir.join("privkey.pem"));
    /// assert!(missing.is_err_and(|e| e.to_string().contains("nothing.pem")));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_pem_files(
        cert_chain_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Self> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path).map_err(|e| {
                Error::Config(format!(
                    "TLS: cannot read the {what} {}: {e}",
                    path.display()
                ))
            })
        };
        let cert_chain_path = cert_chain_path.as_ref();
        let key_path = key_path.as_ref();
        let chain = read(cert_chain_path, "certificate chain")?;
        let key = read(key_path, "private key")?;
        Self::build(
            &chain,
            &key,
            &cert_chain_path.display().to_string(),
            &key_path.display().to_string(),
        )
    }

    /// Takes a PEM certificate chain (the server's certificate first) and a
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) from memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire::config::TlsConfig;
    /// let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    /// let key = cert.signing_key.serialize_pem();
    /// assert!(TlsConfig::from_pem(cert.cert.pem().as_bytes(), key.as_bytes()).is_ok());
    /// // No certificate: refused, saying so.
    /// let none = TlsConfig::from_pem(b"", key.as_bytes());
    /// assert!(none.is_err_and(|e| e.to_string().contains("no certificate")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        Self::build(cert_chain_pem, key_pem, "certificate chain", "private key")
    }

    /// Uses a rustls server configuration as it is (client certificates,
    /// session resumption, another crypto provider, ...). Its
    /// `alpn_protocols` must be empty or `["http/1.1"]`: the listener speaks
    /// HTTP/1.1 only, and a client that negotiated another protocol would
    /// fail after the handshake.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire::config::TlsConfig;
    /// use rustls::pki_types::pem::PemObject;
    /// use std::sync::Arc;
    /// let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    /// let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(
    ///     cert.signing_key.serialize_pem().as_bytes(),
    /// )?;
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let mut server = rustls::ServerConfig::builder_with_provider(provider)
    ///     .with_protocol_versions(&[&rustls::version::TLS13])?
    ///     .with_no_client_auth()
    ///     .with_single_cert(vec![cert.cert.der().clone()], key)?;
    /// server.alpn_protocols = vec![b"http/1.1".to_vec()];
    /// let tls = TlsConfig::from_rustls(Arc::new(server.clone()))?;
    /// # let _ = tls;
    /// server.alpn_protocols = vec![b"h2".to_vec()];
    /// assert!(TlsConfig::from_rustls(Arc::new(server)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_rustls(config: Arc<ServerConfig>) -> Result<Self> {
        if config.alpn_protocols.iter().any(|p| p != ALPN_HTTP_1_1) {
            return Err(Error::Config(
                "TLS: the listener speaks HTTP/1.1 only: alpn_protocols must be empty or [\"http/1.1\"]"
                    .into(),
            ));
        }
        Ok(TlsConfig { server: config })
    }

    /// The rustls server configuration the listener uses.
    ///
    /// # Examples
    ///
    /// ```
    /// let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    /// let tls = crosswire::config::TlsConfig::from_pem(
    ///     cert.cert.pem().as_bytes(),
    ///     cert.signing_key.serialize_pem().as_bytes(),
    /// )?;
    /// assert!(tls.server_config().alpn_protocols.contains(&b"http/1.1".to_vec()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn server_config(&self) -> &Arc<ServerConfig> {
        &self.server
    }

    /// The acceptor of the listener.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }

    /// A server configuration from PEM; `chain_name` and `key_name` say
    /// where the PEM came from in errors.
    fn build(chain: &[u8], key: &[u8], chain_name: &str, key_name: &str) -> Result<Self> {
        let chain = CertificateDer::pem_slice_iter(chain)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Config(format!("TLS: {chain_name}: {e}")))?;
        if chain.is_empty() {
            return Err(Error::Config(format!(
                "TLS: {chain_name}: no certificate (expected PEM \"BEGIN CERTIFICATE\" sections)"
            )));
        }
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => Error::Config(format!(
                "TLS: {key_name}: no private key (expected a PEM \"BEGIN PRIVATE KEY\", \
                 \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" section)"
            )),
            e => Error::Config(format!("TLS: {key_name}: {e}")),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|e| {
                Error::Config(format!(
                    "TLS: {chain_name} and {key_name} are not usable together: {e}"
                ))
            })?;
        server.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
        Ok(TlsConfig {
            server: Arc::new(server),
        })
    }
}

/// Shows the application protocols, never the key.
impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alpn: Vec<_> = self
            .server
            .alpn_protocols
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        f.debug_struct("TlsConfig")
            .field("alpn_protocols", &alpn)
            .finish_non_exhaustive()
    }
}
