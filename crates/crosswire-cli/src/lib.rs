//! A small client of a crosswire node's HTTP API (see the `crosswire`
//! crate's `http_api` module and `docs/http-api.md`), and the `crosswire`
//! command line built on it.
//!
//! One [`ApiClient`] keeps one HTTP/1.1 connection open and sends its
//! requests on it one after the other (it reconnects when the node closed
//! it); clone nothing, make one per task.
//!
//! # Examples
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), crosswire_cli::ClientError> {
//! use crosswire_cli::ApiClient;
//! let mut api = ApiClient::new("127.0.0.1:8090", "s3cret");
//! let answer = api
//!     .post("/api/v1/rooms/send", &serde_json::json!({
//!         "namespace": "chat", "room": "lobby", "event": "say", "payload": {"text": "hi"}
//!     }))
//!     .await?;
//! assert_eq!(answer.status, 200);
//! # Ok(())
//! # }
//! ```

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::time::Duration;

/// What can go wrong talking to the API (an error answer of the API is not
/// one: it is an [`ApiResponse`] with its status).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Connecting to the node failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (a bad path or token).
    #[error("bad request: {0}")]
    Request(#[from] http::Error),
    /// The node did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One answer of the API.
///
/// # Examples
///
/// ```
/// let r = crosswire_cli::ApiResponse { status: 401, body: serde_json::json!({"error": {"code": "unauthorized", "message": "x"}}) };
/// assert_eq!(r.error_code(), Some("unauthorized"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body (`null` when empty, a string when not JSON).
    pub body: Value,
}

impl ApiResponse {
    /// The error code of an error answer.
    pub fn error_code(&self) -> Option<&str> {
        self.body.get("error")?.get("code")?.as_str()
    }
}

/// A client of one node's HTTP API; see the [crate](crate) documentation.
pub struct ApiClient {
    addr: String,
    token: String,
    timeout: Duration,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client of the API at `addr` (`host:port`) sending `token`; requests
    /// time out after 30 s.
    ///
    /// # Examples
    ///
    /// ```
    /// let api = crosswire_cli::ApiClient::new("127.0.0.1:8090", "t");
    /// assert!(format!("{api:?}").contains("127.0.0.1:8090"));
    /// assert!(!format!("{api:?}").contains("\"t\""));
    /// ```
    pub fn new(addr: impl Into<String>, token: impl Into<String>) -> Self {
        ApiClient {
            addr: addr.into(),
            token: token.into(),
            timeout: Duration::from_secs(30),
            conn: None,
        }
    }

    /// Sets how long one request may take.
    ///
    /// # Examples
    ///
    /// ```
    /// let api = crosswire_cli::ApiClient::new("127.0.0.1:8090", "t").timeout(std::time::Duration::from_secs(2));
    /// # let _ = api;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Result<ApiResponse, ClientError> {
        self.request(Method::GET, path, None).await
    }

    /// `POST path` with `body` as JSON.
    pub async fn post(&mut self, path: &str, body: &Value) -> Result<ApiResponse, ClientError> {
        let bytes = Bytes::from(body.to_string());
        self.request(Method::POST, path, Some(bytes)).await
    }

    /// Any request: `body`, when given, is sent as `application/json` as is.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<ApiResponse, ClientError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(method, path, body)).await {
            Ok(answer) => answer,
            Err(_) => {
                // The connection may hold a half-done exchange: start anew.
                self.conn = None;
                Err(ClientError::Timeout(timeout))
            }
        }
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<ApiResponse, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.addr)
            .header(AUTHORIZATION, format!("Bearer {}", self.token));
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        let sender = self.connection().await?;
        let answer = match sender.send_request(req).await {
            Ok(answer) => answer,
            Err(e) => {
                self.conn = None;
                return Err(e.into());
            }
        };
        let status = answer.status().as_u16();
        let bytes = answer.into_body().collect().await?.to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(ApiResponse { status, body })
    }

    /// The open connection, or a new one.
    async fn connection(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, ClientError> {
        let usable = match &mut self.conn {
            Some(c) => c.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            let stream = tokio::net::TcpStream::connect(&self.addr)
                .await
                .map_err(|source| ClientError::Connect {
                    addr: self.addr.clone(),
                    source,
                })?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.conn = Some(sender);
        }
        match &mut self.conn {
            Some(c) => Ok(c),
            None => unreachable!("set above"),
        }
    }
}
