//! Authentication helpers (the FAQ's two recipes).
//!
//! * **At upgrade**: verify a token from the URL in the upgrade hook
//!   ([`NodeBuilder::on_upgrade`](crate::NodeBuilder::on_upgrade)) and refuse
//!   with an HTTP status; [`query_token_hook`] builds such a hook.
//! * **By message**: the socket connects unauthenticated and must send an
//!   auth event within a timeout
//!   ([`NodeBuilder::auth_message`](crate::NodeBuilder::auth_message)); until
//!   then it gets no broadcasts and its other frames are dropped.

use crate::socket::Handshake;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use http::StatusCode;
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub(crate) type Verify = Box<dyn Fn(Value) -> BoxFuture<'static, Option<String>> + Send + Sync>;

pub(crate) struct AuthMessage {
    pub(crate) event: String,
    pub(crate) timeout: Duration,
    pub(crate) verify: Verify,
}

/// The user an upgrade-time token resolved to; attached to the socket by
/// [`query_token_hook`] (read it with `socket.data::<AuthenticatedUser>()`).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire::auth::{query_token_hook, AuthenticatedUser};
/// let node = crosswire::Node::builder()
///     .on_upgrade(query_token_hook("token", |token| async move {
///         (token == "secret").then(|| "u1".to_owned())
///     }))
///     .build()?;
/// let (tx, mut sockets) = tokio::sync::mpsc::unbounded_channel();
/// node.on_connection(move |socket, _| {
///     let _ = tx.send(socket);
///     async {}
/// });
/// let addr = node.listen("127.0.0.1:0").await?;
/// let (_client, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/?token=secret")).await?;
/// let socket = sockets.recv().await.ok_or("no connection")?;
/// assert_eq!(socket.data::<AuthenticatedUser>(), Some(AuthenticatedUser("u1".into())));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser(pub String);

/// An upgrade hook that reads query parameter `param`, passes it to
/// `verify`, and refuses the upgrade with 401 when the token is missing or
/// `verify` returns `None`. On success the returned user id is attached to
/// the socket as [`AuthenticatedUser`].
///
/// # Examples
///
/// ```no_run
/// # fn f() -> crosswire::Result<()> {
/// use crosswire::auth::query_token_hook;
/// let node = crosswire::Node::builder()
///     .on_upgrade(query_token_hook("token", |token| async move {
///         (token == "secret").then(|| "u1".to_owned())
///     }))
///     .build()?;
/// # Ok(()) }
/// ```
pub fn query_token_hook<F, Fut>(
    param: &str,
    verify: F,
) -> impl Fn(Arc<Handshake>) -> BoxFuture<'static, Result<(), Refusal>> + Send + Sync + 'static
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<String>> + Send + 'static,
{
    let param = param.to_owned();
    let verify = Arc::new(verify);
    move |hs: Arc<Handshake>| {
        let token = hs.param(&param).map(str::to_owned);
        let verify = verify.clone();
        Box::pin(async move {
            let Some(token) = token.filter(|t| !t.is_empty()) else {
                return Err(Refusal::new(StatusCode::UNAUTHORIZED, "missing token"));
            };
            match verify(token).await {
                Some(user) => {
                    hs.insert_data(AuthenticatedUser(user));
                    Ok(())
                }
                None => Err(Refusal::new(StatusCode::UNAUTHORIZED, "invalid token")),
            }
        })
    }
}

/// An upgrade refused by the upgrade hook: the HTTP status and body the
/// client gets instead of `101 Switching Protocols`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> crosswire::Result<()> {
/// use crosswire::{Node, Refusal};
/// use http::StatusCode;
/// let node = Node::builder()
///     .on_upgrade(|handshake| async move {
///         match handshake.param("token") {
///             Some("secret") => Ok(()),
///             _ => Err(Refusal::new(StatusCode::UNAUTHORIZED, "bad token")),
///         }
///     })
///     .build()?;
/// let addr = node.listen("127.0.0.1:0").await?;
/// let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/?token=guess")).await;
/// assert!(matches!(
///     refused,
///     Err(tokio_tungstenite::tungstenite::Error::Http(response)) if response.status() == StatusCode::UNAUTHORIZED
/// ));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    /// A refusal with `status` and a short text body.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire::Refusal;
    /// use http::StatusCode;
    /// let refusal = Refusal::new(StatusCode::FORBIDDEN, "banned");
    /// assert_eq!(refusal.status(), StatusCode::FORBIDDEN);
    /// ```
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
        }
    }

    /// The HTTP status.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire::Refusal;
    /// use http::StatusCode;
    /// assert_eq!(Refusal::new(StatusCode::TOO_MANY_REQUESTS, "slow down").status(), 429);
    /// ```
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, self.message).into_response()
    }
}

pub(crate) type UpgradeHook =
    Arc<dyn Fn(Arc<Handshake>) -> BoxFuture<'static, Result<(), Refusal>> + Send + Sync>;
