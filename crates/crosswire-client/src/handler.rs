//! Handlers of pushed events: closures whose arguments are taken from the
//! event ([`FromEvent`]) — the payload deserialized into any type, the
//! application state ([`State`]), a [`Connector`] handle, the message's
//! room position ([`Meta`]) — or the raw payload as a `&serde_json::Value`.

use crate::connector::Connector;
use crate::error::ConnectorError;
use crate::recovery::Meta;
use crate::shared::{EventContext, PushFn, Rejection, Shared};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

/// The application state given once with
/// [`ConnectorBuilder::state`](crate::ConnectorBuilder::state), as a handler
/// argument: each call gets a clone (wrap big or mutable state in an
/// [`Arc`]). Registering a handler that takes `State<S>` fails with
/// [`ConnectorError::MissingState`] when the connector has no state of type
/// `S`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_client::{Connector, ConnectorError, ConnectorOptions, State};
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
///
/// #[derive(Default)]
/// struct Scores {
///     total: AtomicU64,
/// }
///
/// let c = Connector::builder(ConnectorOptions::new("ws://127.0.0.1:9000"))
///     .state(Arc::new(Scores::default()))
///     .build()?;
/// c.on("score", |State(scores): State<Arc<Scores>>, points: u64| {
///     scores.total.fetch_add(points, Ordering::Relaxed);
/// })?;
/// // A state of another type is refused when the handler is registered.
/// let wrong = c.on("score", |State(_): State<String>| {});
/// assert!(matches!(wrong, Err(ConnectorError::MissingState(_))));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State<S>(pub S);

/// A value a handler of pushed events can take as an argument:
///
/// * any `T: serde::de::DeserializeOwned` — the payload deserialized into
///   `T` (a frame without a payload reads as JSON `null`, so `Option<T>` and
///   `()` accept it). A payload that does not deserialize never reaches the
///   handler: it is logged (`tracing`, level `warn`) and counted by
///   [`Connector::rejected_payloads`];
/// * [`State<S>`] — the application state;
/// * [`Connector`] — a handle on the connector, made for the call (the
///   handler needs not capture one, so the handler registry never keeps the
///   connector alive);
/// * [`Meta`] — the message's room position and whether it is a replay of
///   one sent while the connector was away (with
///   [`recovery`](crate::ConnectorOptions::recovery()) on).
///
/// The trait is sealed: these are the arguments there are.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let node = crosswire::Node::builder().build()?;
/// # node.on("shout", |socket: crosswire::Socket, payload: serde_json::Value, _reply: Option<crosswire::Reply>| async move {
/// #     let _ = socket.emit("heard", &payload);
/// # })?;
/// # let addr = node.listen("127.0.0.1:0").await?;
/// # let url = format!("ws://{addr}");
/// use crosswire_client::{ClientEvent, Connector, ConnectorOptions};
/// #[derive(serde::Deserialize)]
/// struct Heard {
///     n: u32,
/// }
/// let c = Connector::new(ConnectorOptions::new(url))?;
/// let mut events = c.subscribe();
/// // The payload, typed, and a handle to answer with: nothing captured.
/// c.on("heard", |heard: Heard, c: Connector| {
///     if heard.n < 3 {
///         let _ = c.emit("shout", &serde_json::json!({ "n": heard.n + 1 }));
///     }
/// })?;
/// c.start();
/// while events.recv().await != Some(ClientEvent::Open) {}
/// c.emit("shout", &serde_json::json!({ "n": 1 }))?;
/// let mut last = 0;
/// while last < 3 {
///     if let Some(ClientEvent::Push { payload: Some(p), .. }) = events.recv().await {
///         last = p["n"].as_u64().ok_or("no n")?;
///     }
/// }
/// # Ok(())
/// # }
/// ```
pub trait FromEvent<M>: private::Extract<M> {}

impl<M, T: private::Extract<M>> FromEvent<M> for T {}

/// A handler of pushed events, for [`Connector::on`] and
/// [`Listen::on`](crate::Listen::on): a closure (run on the connector's
/// task: keep it short and spawn anything that waits) taking
///
/// * up to four arguments that are each [`FromEvent`]: the payload as any
///   deserializable type, [`State<S>`], [`Connector`], [`Meta`] — in any
///   order;
/// * or the raw payload, `|payload: &serde_json::Value| ...` (`Null` when the
///   frame had none): the untyped form, which sees every payload.
///
/// `M` is a marker the compiler infers from the closure's arguments; the
/// arguments need type annotations.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_client::{Connector, ConnectorOptions, State};
/// use serde_json::Value;
///
/// #[derive(serde::Deserialize)]
/// struct Chat {
///     from: String,
///     text: String,
/// }
///
/// let c = Connector::builder(ConnectorOptions::new("ws://127.0.0.1:9000"))
///     .state("lobby".to_owned())
///     .build()?;
/// c.on("roomMessage", |chat: Chat| println!("{}: {}", chat.from, chat.text))?;
/// c.on("roomMessage", |State(room): State<String>, chat: Chat, c: Connector| {
///     println!("[{room}] {} ({})", chat.text, c.url());
/// })?;
/// c.on("roomMessage", |payload: &Value| println!("raw: {payload}"))?;
/// c.on("tick", || println!("tick"))?;
/// c.on("maybe", |payload: Option<u32>| println!("{payload:?}"))?;
/// assert_eq!(c.off_event("roomMessage"), 3);
/// # Ok(())
/// # }
/// ```
pub trait Handler<M>: private::Call<M> + Send + Sync + 'static {}

impl<M, H: private::Call<M> + Send + Sync + 'static> Handler<M> for H {}

/// Whether `H` can be registered on this connector (its [`State`] exists).
pub(crate) fn check<H: Handler<M>, M>(shared: &Shared) -> Result<(), ConnectorError> {
    H::check(shared)
}

/// `handler`, type-erased for the registry.
pub(crate) fn erase<H: Handler<M>, M>(handler: H) -> PushFn {
    handler.into_push()
}

mod private {
    use super::*;

    /// Marks an argument deserialized from the payload.
    #[derive(Debug)]
    pub struct ViaPayload;

    /// Marks an argument taken from the connector or the frame ([`State`],
    /// [`Connector`], [`Meta`]).
    #[derive(Debug)]
    pub struct ViaConnector;

    /// Marks the untyped form, `Fn(&Value)`.
    #[derive(Debug)]
    pub struct RawPayload;

    pub trait Extract<M>: Sized {
        /// Whether the argument can ever be made on this connector.
        fn check(_shared: &Shared) -> Result<(), ConnectorError> {
            Ok(())
        }

        fn extract(cx: &EventContext<'_>) -> Result<Self, Rejection>;
    }

    pub trait Call<M> {
        fn check(shared: &Shared) -> Result<(), ConnectorError>;

        fn into_push(self) -> PushFn;
    }

    impl<T: DeserializeOwned> Extract<ViaPayload> for T {
        fn extract(cx: &EventContext<'_>) -> Result<Self, Rejection> {
            T::deserialize(cx.payload).map_err(Rejection::Decode)
        }
    }

    impl<S: Clone + Send + Sync + 'static> Extract<ViaConnector> for State<S> {
        fn check(shared: &Shared) -> Result<(), ConnectorError> {
            match &shared.app_state {
                Some(state) if (**state).is::<S>() => Ok(()),
                _ => Err(ConnectorError::MissingState(std::any::type_name::<S>())),
            }
        }

        fn extract(cx: &EventContext<'_>) -> Result<Self, Rejection> {
            cx.shared
                .app_state
                .as_ref()
                .and_then(|state| (**state).downcast_ref::<S>())
                .map(|s| State(s.clone()))
                .ok_or(Rejection::Unavailable("the application state"))
        }
    }

    impl Extract<ViaConnector> for Connector {
        fn extract(cx: &EventContext<'_>) -> Result<Self, Rejection> {
            Connector::for_handler(cx.commands, cx.shared)
                .ok_or(Rejection::Unavailable("the connector (it is going away)"))
        }
    }

    impl Extract<ViaConnector> for Meta {
        fn extract(cx: &EventContext<'_>) -> Result<Self, Rejection> {
            Ok(cx.meta.clone())
        }
    }

    impl<F> Call<RawPayload> for F
    where
        F: Fn(&Value) + Send + Sync + 'static,
    {
        fn check(_shared: &Shared) -> Result<(), ConnectorError> {
            Ok(())
        }

        fn into_push(self) -> PushFn {
            Arc::new(move |cx: &EventContext<'_>| {
                self(cx.payload);
                Ok(())
            })
        }
    }

    macro_rules! call_impl {
        ($($T:ident $M:ident),*) => {
            impl<F, $($T, $M,)*> Call<($($M, $T,)*)> for F
            where
                F: Fn($($T),*) + Send + Sync + 'static,
                $($T: FromEvent<$M> + 'static, $M: 'static,)*
            {
                fn check(_shared: &Shared) -> Result<(), ConnectorError> {
                    $(<$T as Extract<$M>>::check(_shared)?;)*
                    Ok(())
                }

                #[allow(non_snake_case)]
                fn into_push(self) -> PushFn {
                    Arc::new(move |_cx: &EventContext<'_>| {
                        $(let $T = <$T as Extract<$M>>::extract(_cx)?;)*
                        self($($T),*);
                        Ok(())
                    })
                }
            }
        };
    }

    call_impl!();
    call_impl!(T1 M1);
    call_impl!(T1 M1, T2 M2);
    call_impl!(T1 M1, T2 M2, T3 M3);
    call_impl!(T1 M1, T2 M2, T3 M3, T4 M4);
}
