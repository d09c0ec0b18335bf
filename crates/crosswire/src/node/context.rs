//! What a handler runs with: the context of a client event and of a
//! cross-server event, and the extractors that take from them.

use super::Node;
use crate::cross_server::CrossServerMessage;
use crate::events::Reply;
use crate::extract::{
    send_reply, Context, FromContext, Rejection, ReplyError, States, BAD_PAYLOAD,
};
use crate::stats::Stats;
use crate::{CrossReply, Result, Socket};
use serde_json::Value;

/// The context of a client event: the node, the socket that sent it, its
/// payload and its reply handle.
pub struct ClientContext {
    node: Node,
    socket: Socket,
    payload: Value,
    reply: Option<Reply>,
}

impl ClientContext {
    pub(crate) fn new(node: Node, socket: Socket, payload: Value, reply: Option<Reply>) -> Self {
        ClientContext {
            node,
            socket,
            payload,
            reply,
        }
    }

    /// The node.
    ///
    /// # Examples
    ///
    /// See [`FromContext`].
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The socket that sent the event.
    ///
    /// # Examples
    ///
    /// See [`FromContext`].
    pub fn socket(&self) -> &Socket {
        &self.socket
    }
}

impl FromContext<ClientContext> for Socket {
    fn from_context(cx: &mut ClientContext) -> std::result::Result<Self, Rejection> {
        Ok(cx.socket.clone())
    }
}

impl FromContext<ClientContext> for Option<Reply> {
    fn from_context(cx: &mut ClientContext) -> std::result::Result<Self, Rejection> {
        Ok(cx.reply.take())
    }
}

/// The context of a cross-server event: the node, the message and its reply
/// handle.
pub struct CrossContext {
    node: Node,
    message: CrossServerMessage,
    reply: Option<CrossReply>,
}

impl CrossContext {
    pub(crate) fn new(node: Node, message: CrossServerMessage, reply: Option<CrossReply>) -> Self {
        CrossContext {
            node,
            message,
            reply,
        }
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The message (its payload is `Null` once an extractor took it).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire::handler::{CrossContext, FromContext, Rejection};
    /// /// The name of the node that sent the call.
    /// struct Sender(Option<String>);
    /// impl FromContext<CrossContext> for Sender {
    ///     fn from_context(cx: &mut CrossContext) -> Result<Self, Rejection> {
    ///         Ok(Sender(cx.message().sender_server.clone()))
    ///     }
    /// }
    /// ```
    pub fn message(&self) -> &CrossServerMessage {
        &self.message
    }
}

impl FromContext<CrossContext> for CrossServerMessage {
    fn from_context(cx: &mut CrossContext) -> std::result::Result<Self, Rejection> {
        Ok(cx.message.clone())
    }
}

impl FromContext<CrossContext> for Option<CrossReply> {
    fn from_context(cx: &mut CrossContext) -> std::result::Result<Self, Rejection> {
        Ok(cx.reply.take())
    }
}

/// Where a context's reply goes: a client's callback or a cross-server
/// caller.
trait Answer {
    fn answer(&self, payload: &Value) -> Result<()>;
}

impl Answer for Reply {
    fn answer(&self, payload: &Value) -> Result<()> {
        self.send(payload)
    }
}

impl Answer for CrossReply {
    fn answer(&self, payload: &Value) -> Result<()> {
        self.send(payload)
    }
}

/// Counts a refused call and sends the error reply when one is expected.
fn reject<A: Answer>(node: &Node, reply: Option<A>, rejection: Rejection) {
    let error = match rejection {
        Rejection::BadPayload(e) => {
            Stats::incr(&node.inner.stats.frames_dropped_bad_payload);
            tracing::debug!(error = %e, "payload does not fit the handler: not run");
            ReplyError::new(BAD_PAYLOAD, e.to_string())
        }
        Rejection::MissingState(ty) => {
            tracing::error!(
                state = ty,
                "handler asks for a state the node was not given"
            );
            ReplyError::new("error", "internal error")
        }
    };
    if let Some(reply) = reply {
        let _ = reply.answer(&error.to_value());
    }
}

/// The [`Context`] of a context type whose payload is at `$payload` (a
/// path from the context), and its [`Node`] extractor.
macro_rules! context {
    ($cx:ty, $($payload:ident).+) => {
        impl Context for $cx {
            fn states(&self) -> &States {
                &self.node.inner.state
            }

            fn take_payload(&mut self) -> Value {
                self.$($payload).+.take()
            }

            fn finish(self, reply: Option<std::result::Result<Value, ReplyError>>) {
                send_reply(self.reply.map(|r| move |v: &Value| r.answer(v)), reply);
            }

            fn reject(self, rejection: Rejection) {
                reject(&self.node, self.reply, rejection);
            }
        }

        impl FromContext<$cx> for Node {
            fn from_context(cx: &mut $cx) -> std::result::Result<Self, Rejection> {
                Ok(cx.node.clone())
            }
        }
    };
}

context!(ClientContext, payload);
context!(CrossContext, message.payload);
