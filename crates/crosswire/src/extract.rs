//! The machinery of handlers: extractors, replies, and the handler traits
//! (the public face is [`crate::handler`]).

use crate::{Error, Result};
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::future::Future;
use std::marker::PhantomData;

/// The payload, deserialized into `T`. As an argument, a payload that does
/// not deserialize into `T` never reaches the handler (the sender gets the
/// `bad_payload` error reply); as a return value, `T` is serialized into the
/// reply.
///
/// # Examples
///
/// ```
/// # fn main() -> crosswire::Result<()> {
/// # let rt = tokio::runtime::Runtime::new()?;
/// # let _guard = rt.enter();
/// use crosswire::handler::Data;
/// #[derive(serde::Deserialize, serde::Serialize)]
/// struct Msg { text: String }
/// let node = crosswire::Node::builder().build()?;
/// node.on("shout", |Data(msg): Data<Msg>| async move {
///     Data(Msg { text: msg.text.to_uppercase() })
/// })?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Data<T>(pub T);

/// The application's state, given once to
/// [`NodeBuilder::state`](crate::NodeBuilder::state) (a clone per call:
/// keep it cheap to clone, e.g. an `Arc`). Registering a handler that asks
/// for a state the node was not given fails with [`Error::MissingState`].
///
/// # Examples
///
/// ```
/// # fn main() -> crosswire::Result<()> {
/// # let rt = tokio::runtime::Runtime::new()?;
/// # let _guard = rt.enter();
/// use crosswire::handler::State;
/// #[derive(Clone)]
/// struct Db(std::sync::Arc<Vec<String>>);
/// let node = crosswire::Node::builder().state(Db(Default::default())).build()?;
/// node.on("size", |State(db): State<Db>| async move { Ok::<_, String>(db.0.len()) })?;
/// // A state of another type was never given:
/// assert!(matches!(
///     node.on("bad", |State(_): State<u32>| async {}),
///     Err(crosswire::Error::MissingState(_))
/// ));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct State<S>(pub S);

impl<T: Serialize> Serialize for Data<T> {
    fn serialize<Ser: serde::Serializer>(
        &self,
        serializer: Ser,
    ) -> std::result::Result<Ser::Ok, Ser::Error> {
        self.0.serialize(serializer)
    }
}

/// Why an extractor refused a call: the handler does not run.
#[derive(Debug)]
#[non_exhaustive]
pub enum Rejection {
    /// The payload does not deserialize into the requested type.
    BadPayload(serde_json::Error),
    /// The node has no state of the requested type.
    MissingState(&'static str),
}

/// The error reply sent to a caller: `{"error": {"code": CODE, "message":
/// MESSAGE}}`.
///
/// # Examples
///
/// ```
/// use crosswire::handler::ReplyError;
/// let e = ReplyError::new("not_found", "no such room");
/// assert_eq!(
///     e.to_value(),
///     serde_json::json!({"error": {"code": "not_found", "message": "no such room"}})
/// );
/// // Strings become code "error".
/// assert_eq!(ReplyError::from("nope").code(), "error");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyError {
    code: String,
    message: String,
}

/// The error code of a payload that does not deserialize.
///
/// # Examples
///
/// ```
/// assert_eq!(crosswire::handler::BAD_PAYLOAD, "bad_payload");
/// ```
pub const BAD_PAYLOAD: &str = "bad_payload";

impl ReplyError {
    /// An error reply with a machine-readable `code` and a `message`.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = crosswire::handler::ReplyError::new("full", "the room is full");
    /// assert_eq!((e.code(), e.message()), ("full", "the room is full"));
    /// ```
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ReplyError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The code.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(crosswire::handler::ReplyError::new("x", "y").code(), "x");
    /// ```
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The message.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(crosswire::handler::ReplyError::new("x", "y").message(), "y");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The reply payload.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = crosswire::handler::ReplyError::new("x", "y").to_value();
    /// assert_eq!(v["error"]["code"], "x");
    /// ```
    pub fn to_value(&self) -> Value {
        serde_json::json!({ "error": { "code": self.code, "message": self.message } })
    }
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ReplyError {}

impl From<String> for ReplyError {
    fn from(message: String) -> Self {
        ReplyError::new("error", message)
    }
}

impl From<&str> for ReplyError {
    fn from(message: &str) -> Self {
        ReplyError::new("error", message)
    }
}

impl From<Error> for ReplyError {
    fn from(e: Error) -> Self {
        ReplyError::new("error", e.to_string())
    }
}

impl From<serde_json::Error> for ReplyError {
    fn from(e: serde_json::Error) -> Self {
        ReplyError::new(BAD_PAYLOAD, e.to_string())
    }
}

impl From<Box<dyn std::error::Error + Send + Sync>> for ReplyError {
    fn from(e: Box<dyn std::error::Error + Send + Sync>) -> Self {
        ReplyError::new("error", e.to_string())
    }
}

/// What a handler's return value becomes: `None` for no reply, else the
/// reply payload (or the error reply).
///
/// # Examples
///
/// ```
/// use crosswire::handler::{Data, IntoReply};
/// assert_eq!(().into_reply(), None);
/// assert_eq!(None::<serde_json::Value>.into_reply(), None);
/// assert_eq!(Data(3).into_reply(), Some(Ok(serde_json::json!(3))));
/// let failed: Result<u8, &str> = Err("no");
/// assert_eq!(failed.into_reply().and_then(Result::err).map(|e| e.to_string()), Some("error: no".into()));
/// ```
pub trait IntoReply {
    /// The reply, if any.
    fn into_reply(self) -> Option<std::result::Result<Value, ReplyError>>;
}

impl IntoReply for () {
    fn into_reply(self) -> Option<std::result::Result<Value, ReplyError>> {
        None
    }
}

impl IntoReply for Value {
    fn into_reply(self) -> Option<std::result::Result<Value, ReplyError>> {
        Some(Ok(self))
    }
}

impl<T: Serialize> IntoReply for Data<T> {
    fn into_reply(self) -> Option<std::result::Result<Value, ReplyError>> {
        Some(serde_json::to_value(self.0).map_err(|e| ReplyError::new("error", e.to_string())))
    }
}

/// `None`: no reply; `Some(r)`: what `r` replies.
impl<T: IntoReply> IntoReply for Option<T> {
    fn into_reply(self) -> Option<std::result::Result<Value, ReplyError>> {
        self.and_then(IntoReply::into_reply)
    }
}

impl<T: Serialize, E: Into<ReplyError>> IntoReply for std::result::Result<T, E> {
    fn into_reply(self) -> Option<std::result::Result<Value, ReplyError>> {
        Some(match self {
            Ok(v) => serde_json::to_value(v).map_err(|e| ReplyError::new("error", e.to_string())),
            Err(e) => Err(e.into()),
        })
    }
}

/// The application's states, by type: what
/// [`NodeBuilder::state`](crate::NodeBuilder::state) was given.
///
/// # Examples
///
/// ```
/// # fn main() -> crosswire::Result<()> {
/// # let rt = tokio::runtime::Runtime::new()?;
/// # let _guard = rt.enter();
/// let node = crosswire::Node::builder().state(7u8).build()?;
/// assert_eq!(node.states().get::<u8>(), Some(7));
/// assert_eq!(node.states().get::<u16>(), None);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct States(http::Extensions);

impl States {
    /// A clone of the state of type `S`, if there is one.
    ///
    /// # Examples
    ///
    /// See [`States`].
    pub fn get<S: Clone + Send + Sync + 'static>(&self) -> Option<S> {
        self.0.get::<S>().cloned()
    }

    /// Adds (or replaces) the state of type `S`.
    pub(crate) fn insert<S: Clone + Send + Sync + 'static>(&mut self, state: S) {
        self.0.insert(state);
    }
}

/// What a handler runs with: the application's states, the payload and the
/// reply handle of one event, for extractors to take from.
pub trait Context: Send + 'static {
    /// The application's states.
    fn states(&self) -> &States;
    /// Takes the payload (`Null` once taken).
    fn take_payload(&mut self) -> Value;
    /// Ends a call: sends the reply when the sender asked for one and no
    /// extractor took the reply handle.
    fn finish(self, reply: Option<std::result::Result<Value, ReplyError>>);
    /// Ends a call refused by an extractor.
    fn reject(self, rejection: Rejection);
}

/// Builds a handler argument from the event's [`Context`].
///
/// # Examples
///
/// An extractor of the application's own: the caller's user id, bound to
/// the socket at login.
///
/// ```
/// use crosswire::handler::{ClientContext, FromContext, Rejection};
/// struct UserId(Option<String>);
/// impl FromContext<ClientContext> for UserId {
///     fn from_context(cx: &mut ClientContext) -> Result<Self, Rejection> {
///         Ok(UserId(cx.socket().socket_ids().into_iter().next()))
///     }
/// }
/// # fn main() -> crosswire::Result<()> {
/// # let rt = tokio::runtime::Runtime::new()?;
/// # let _guard = rt.enter();
/// let node = crosswire::Node::builder().build()?;
/// node.on("me", |UserId(id): UserId| async move { Ok::<_, String>(id) })?;
/// # Ok(())
/// # }
/// ```
pub trait FromContext<Cx>: Sized {
    /// Takes the argument from `cx`, or refuses the call.
    fn from_context(cx: &mut Cx) -> std::result::Result<Self, Rejection>;

    /// Checks at registration that the argument can ever be provided, given
    /// the node's `states`.
    fn check(_states: &States) -> Result<()> {
        Ok(())
    }
}

impl<Cx: Context, T: DeserializeOwned> FromContext<Cx> for Data<T> {
    fn from_context(cx: &mut Cx) -> std::result::Result<Self, Rejection> {
        serde_json::from_value(cx.take_payload())
            .map(Data)
            .map_err(Rejection::BadPayload)
    }
}

impl<Cx: Context> FromContext<Cx> for Value {
    fn from_context(cx: &mut Cx) -> std::result::Result<Self, Rejection> {
        Ok(cx.take_payload())
    }
}

impl<Cx: Context, S: Clone + Send + Sync + 'static> FromContext<Cx> for State<S> {
    fn from_context(cx: &mut Cx) -> std::result::Result<Self, Rejection> {
        cx.states()
            .get::<S>()
            .map(State)
            .ok_or(Rejection::MissingState(std::any::type_name::<S>()))
    }

    fn check(states: &States) -> Result<()> {
        match states.get::<S>() {
            Some(_) => Ok(()),
            None => Err(Error::MissingState(std::any::type_name::<S>())),
        }
    }
}

/// Sends a handler's reply (or error reply) through `send`, when the caller
/// expects one and the handler returned one.
pub(crate) fn send_reply<F: FnOnce(&Value) -> Result<()>>(
    send: Option<F>,
    reply: Option<std::result::Result<Value, ReplyError>>,
) {
    if let (Some(send), Some(reply)) = (send, reply) {
        let sent = match reply {
            Ok(v) => send(&v),
            Err(e) => send(&e.to_value()),
        };
        if let Err(e) = sent {
            tracing::debug!(error = %e, "reply not sent");
        }
    }
}

/// An async function whose arguments are extractors of context `Cx` and
/// whose output is an [`IntoReply`]. Implemented for functions and closures
/// of up to eight arguments; `M` only tells the implementations apart.
pub trait Handler<Cx, M>: Send + Sync + 'static {
    /// Runs the handler on one event.
    fn call(&self, cx: Cx) -> BoxFuture<'static, ()>;

    /// Checks at registration that every argument can be provided, given
    /// the node's `states`.
    fn check(states: &States) -> Result<()>;
}

/// A handler with its types erased, as the registries hold it.
pub(crate) trait ErasedHandler<Cx>: Send + Sync {
    fn call(&self, cx: Cx) -> BoxFuture<'static, ()>;
}

struct Erased<H, M> {
    handler: H,
    _marker: PhantomData<fn() -> M>,
}

impl<Cx, M: 'static, H: Handler<Cx, M>> ErasedHandler<Cx> for Erased<H, M> {
    fn call(&self, cx: Cx) -> BoxFuture<'static, ()> {
        self.handler.call(cx)
    }
}

/// Checks `handler` against the node's `states` and erases its types.
pub(crate) fn erase<Cx: 'static, M: 'static, H: Handler<Cx, M>>(
    states: &States,
    handler: H,
) -> Result<std::sync::Arc<dyn ErasedHandler<Cx>>> {
    H::check(states)?;
    Ok(std::sync::Arc::new(Erased {
        handler,
        _marker: PhantomData,
    }))
}

macro_rules! impl_handler {
    ($($T:ident),*) => {
        #[allow(non_snake_case, unused_mut, unused_variables)]
        impl<Cx, F, Fut, R, $($T,)*> Handler<Cx, ($($T,)*)> for F
        where
            Cx: Context,
            F: Fn($($T),*) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = R> + Send + 'static,
            R: IntoReply,
            $($T: FromContext<Cx> + Send + 'static,)*
        {
            fn call(&self, mut cx: Cx) -> BoxFuture<'static, ()> {
                $(
                    let $T = match $T::from_context(&mut cx) {
                        Ok(v) => v,
                        Err(rejection) => {
                            cx.reject(rejection);
                            return Box::pin(async {});
                        }
                    };
                )*
                let fut = self($($T),*);
                Box::pin(async move {
                    let out = fut.await;
                    cx.finish(out.into_reply());
                })
            }

            fn check(states: &States) -> Result<()> {
                $($T::check(states)?;)*
                Ok(())
            }
        }
    };
}

impl_handler!();
impl_handler!(T1);
impl_handler!(T1, T2);
impl_handler!(T1, T2, T3);
impl_handler!(T1, T2, T3, T4);
impl_handler!(T1, T2, T3, T4, T5);
impl_handler!(T1, T2, T3, T4, T5, T6);
impl_handler!(T1, T2, T3, T4, T5, T6, T7);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8);
