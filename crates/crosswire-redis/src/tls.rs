//! `rediss://`: TLS to Redis (feature `tls`, rustls with the *ring*
//! provider), with a private certificate authority and, for mutual TLS, a
//! client certificate.

use crate::RedisBusError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// TLS settings for the `rediss://` nodes of a bus
/// ([`RedisBusConfig::tls`](crate::RedisBusConfig::tls)): which certificate
/// authority to trust and, for Redis servers that require it
/// (`tls-auth-clients yes`), the client certificate to present. `redis://`
/// nodes ignore them.
///
/// Without settings (or without [`ca_pem`](Self::ca_pem)) a `rediss://` node
/// is verified against the system's trusted certificates. The server's
/// certificate must name the host of the URL (`rediss://127.0.0.1:6380`
/// needs `127.0.0.1` among its subject alternative names).
///
/// `rediss://` URLs need the crate's `tls` feature; in a build without it
/// they are refused as invalid, naming the feature. In configuration files
/// the fields are PEM text. The `Debug` output leaves the private key out.
///
/// # Examples
///
/// ```
/// use crosswire_redis::{RedisBusConfig, RedisTls};
/// # let ca_pem = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n";
/// let config = RedisBusConfig {
///     tls: Some(RedisTls::trust_ca(ca_pem)),
///     ..RedisBusConfig::new(["rediss://redis.internal:6380"])
/// };
/// assert!(config.tls.is_some_and(|t| t.client_cert_pem.is_none()));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisTls {
    /// The certificate authority (or authorities) that signed the Redis
    /// servers' certificates, PEM. `None`: the system's trusted
    /// certificates.
    pub ca_pem: Option<String>,
    /// The client certificate chain presented to the servers, PEM (mutual
    /// TLS); needs [`client_key_pem`](Self::client_key_pem).
    pub client_cert_pem: Option<String>,
    /// The client certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub client_key_pem: Option<String>,
}

impl RedisTls {
    /// Trusts the certificate authority `ca_pem` (and no other) for the
    /// `rediss://` nodes.
    ///
    /// # Examples
    ///
    /// ```
    /// # let ca_pem = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n";
    /// let tls = crosswire_redis::RedisTls::trust_ca(ca_pem);
    /// assert_eq!(tls.ca_pem.as_deref(), Some(ca_pem));
    /// ```
    pub fn trust_ca(ca_pem: impl Into<String>) -> Self {
        RedisTls {
            ca_pem: Some(ca_pem.into()),
            ..RedisTls::default()
        }
    }

    /// [`trust_ca`](Self::trust_ca) with the PEM of a file.
    ///
    /// # Examples
    ///
    /// ```
    /// let missing = crosswire_redis::RedisTls::read_ca_file("/nonexistent/ca.pem");
    /// assert!(missing.is_err_and(|e| e.to_string().contains("/nonexistent/ca.pem")));
    /// ```
    pub fn read_ca_file(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref();
        std::fs::read_to_string(path)
            .map(Self::trust_ca)
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot read the Redis CA file {}: {e}", path.display()),
                )
            })
    }

    /// Presents `cert_pem` (signed by an authority the servers trust) with
    /// its key `key_pem`: for servers with `tls-auth-clients yes`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let (ca, cert, key) = ("<ca pem>", "<cert pem>", "<secret key pem>");
    /// let tls = crosswire_redis::RedisTls::trust_ca(ca).with_client_cert(cert, key);
    /// assert_eq!(tls.client_cert_pem.as_deref(), Some(cert));
    /// assert!(!format!("{tls:?}").contains(key), "the key is not shown");
    /// ```
    pub fn with_client_cert(
        mut self,
        cert_pem: impl Into<String>,
        key_pem: impl Into<String>,
    ) -> Self {
        self.client_cert_pem = Some(cert_pem.into());
        self.client_key_pem = Some(key_pem.into());
        self
    }
}

impl RedisTls {
    /// The settings a program's flags name: the CA file to trust (`None`:
    /// the system's) and a client certificate and key file (mutual TLS).
    /// `None` when neither is given; an unreadable file is an error naming
    /// it.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_redis::RedisTls;
    /// assert_eq!(RedisTls::from_pem_files(None, None), Ok(None));
    /// let missing = RedisTls::from_pem_files(Some("/nonexistent/ca.pem".as_ref()), None);
    /// assert!(missing.is_err_and(|e| e.contains("/nonexistent/ca.pem")));
    /// ```
    pub fn from_pem_files(
        ca: Option<&Path>,
        client: Option<(&Path, &Path)>,
    ) -> Result<Option<Self>, String> {
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let mut tls = match ca {
            Some(ca) => RedisTls::trust_ca(read(ca)?),
            None => RedisTls::default(),
        };
        if let Some((cert, key)) = client {
            tls = tls.with_client_cert(read(cert)?, read(key)?);
        }
        Ok((tls != RedisTls::default()).then_some(tls))
    }
}

/// Shows the certificates' presence, never the key.
impl fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field(
                "client_cert_pem",
                &self.client_cert_pem.as_ref().map(|_| "<pem>"),
            )
            .field(
                "client_key_pem",
                &self.client_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Refuses a `rediss://` URL in a build without the `tls` feature, saying
/// what to enable (the redis crate's own message names none of this
/// crate's features).
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    #[cfg(not(feature = "tls"))]
    if url
        .trim_start()
        .get(..9)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"))
    {
        return Err(
            "rediss:// (TLS) needs the `tls` feature of crosswire-redis, which this build lacks"
                .into(),
        );
    }
    let _ = url;
    Ok(())
}

/// The client of one node: a `rediss://` node with `tls`'s settings, any
/// other as it is. `shown` is the URL for errors (without password).
pub(crate) fn client(
    info: redis::ConnectionInfo,
    tls: Option<&RedisTls>,
    shown: &str,
) -> Result<redis::Client, RedisBusError> {
    #[cfg(feature = "tls")]
    if matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
        // The redis crate builds its rustls configuration with the process's
        // default provider: make it *ring* unless the application chose one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if let Some(tls) = tls {
            let error = |message: String| RedisBusError::Tls {
                url: shown.to_owned(),
                message,
            };
            let certificates = certificates(tls).map_err(error)?;
            return redis::Client::build_with_tls(info, certificates)
                .map_err(|e| error(e.to_string()));
        }
    }
    let _ = tls;
    redis::Client::open(info).map_err(|e| RedisBusError::InvalidUrl {
        url: shown.to_owned(),
        message: e.to_string(),
    })
}

/// The redis crate's form of `tls`, checked: PEM that holds what it
/// should, a client certificate with its key.
#[cfg(feature = "tls")]
fn certificates(tls: &RedisTls) -> Result<redis::TlsCertificates, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let count = |pem: &str| CertificateDer::pem_slice_iter(pem.as_bytes()).count();
    if let Some(ca) = &tls.ca_pem {
        if count(ca) == 0 {
            return Err("ca_pem holds no PEM certificate (\"BEGIN CERTIFICATE\")".into());
        }
    }
    let client_tls = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert), Some(key)) => {
            if count(cert) == 0 {
                return Err(
                    "client_cert_pem holds no PEM certificate (\"BEGIN CERTIFICATE\")".into(),
                );
            }
            Some(redis::ClientTlsConfig {
                client_cert: cert.clone().into_bytes(),
                client_key: key.clone().into_bytes(),
            })
        }
        (None, None) => None,
        (Some(_), None) => return Err("client_cert_pem is set without client_key_pem".into()),
        (None, Some(_)) => return Err("client_key_pem is set without client_cert_pem".into()),
    };
    Ok(redis::TlsCertificates {
        client_tls,
        root_cert: tls.ca_pem.as_ref().map(|pem| pem.clone().into_bytes()),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn rediss_needs_the_feature_and_says_so() {
        let checked = super::check_url("REDISS://127.0.0.1:6380");
        if cfg!(feature = "tls") {
            assert!(checked.is_ok());
        } else {
            assert!(checked.is_err_and(|e| e.contains("`tls` feature of crosswire-redis")));
        }
        assert!(super::check_url("redis://127.0.0.1:6379").is_ok());
        assert!(super::check_url("redis+unix:///tmp/redis.sock").is_ok());
    }
}
