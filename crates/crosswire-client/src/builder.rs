//! [`ConnectorBuilder`]: a connector with application state for its
//! handlers.

use crate::connector::Connector;
use crate::error::ConnectorError;
use crate::options::ConnectorOptions;
use crate::shared::AppState;
use std::fmt;
use std::sync::Arc;

impl Connector {
    /// A builder: the options plus what [`ConnectorOptions`] cannot hold,
    /// the application state handlers take as [`State<S>`](crate::State).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions, State};
    /// let c = Connector::builder(ConnectorOptions::new("ws://127.0.0.1:9000"))
    ///     .state(42u32)
    ///     .build()?;
    /// c.on("score", |State(base): State<u32>, points: u32| println!("{}", base + points))?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(options: ConnectorOptions) -> ConnectorBuilder {
        ConnectorBuilder {
            options,
            state: None,
        }
    }
}

/// Builds a [`Connector`] with application state; made by
/// [`Connector::builder`].
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use crosswire_client::{Connector, ConnectorBuilder, ConnectorOptions};
/// use std::sync::Arc;
/// let builder: ConnectorBuilder = Connector::builder(ConnectorOptions::new("ws://127.0.0.1:9000"));
/// let c = builder.state(Arc::new(String::from("app"))).build()?;
/// assert!(!c.is_open());
/// # Ok(())
/// # }
/// ```
#[must_use = "a ConnectorBuilder does nothing until build or connect"]
pub struct ConnectorBuilder {
    options: ConnectorOptions,
    state: Option<AppState>,
}

impl ConnectorBuilder {
    /// The application state: handlers take it as
    /// [`State<S>`](crate::State), each call with a clone (so share big or
    /// mutable state through an [`Arc`]). One state per connector; a
    /// second call replaces the first.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorOptions, State};
    /// use std::sync::{Arc, Mutex};
    /// let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    /// let c = Connector::builder(ConnectorOptions::new("ws://127.0.0.1:9000"))
    ///     .state(seen.clone())
    ///     .build()?;
    /// c.on("news", |State(seen): State<Arc<Mutex<Vec<String>>>>, headline: String| {
    ///     if let Ok(mut seen) = seen.lock() {
    ///         seen.push(headline);
    ///     }
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn state<S: Clone + Send + Sync + 'static>(mut self, state: S) -> Self {
        self.state = Some(Arc::new(state));
        self
    }

    /// Creates the connector without connecting, as [`Connector::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use crosswire_client::{Connector, ConnectorError, ConnectorOptions};
    /// let c = Connector::builder(ConnectorOptions::new("ws://127.0.0.1:9000")).build()?;
    /// assert!(!c.is_open());
    /// let err = Connector::builder(ConnectorOptions::new("")).build().err();
    /// assert_eq!(err, Some(ConnectorError::MissingUrl));
    /// # Ok(())
    /// # }
    /// ```
    pub fn build(self) -> Result<Connector, ConnectorError> {
        Connector::spawn(self.options, self.state)
    }

    /// Creates the connector and connects at once, as
    /// [`Connector::connect`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let node = crosswire::Node::builder().build()?;
    /// # let addr = node.listen("127.0.0.1:0").await?;
    /// # let url = format!("ws://{addr}");
    /// use crosswire_client::{ClientEvent, Connector, ConnectorOptions};
    /// let c = Connector::builder(ConnectorOptions::new(url)).state(1u8).connect()?;
    /// let mut events = c.subscribe();
    /// while !c.is_open() {
    ///     events.recv().await.ok_or("ended")?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn connect(self) -> Result<Connector, ConnectorError> {
        let c = self.build()?;
        c.start();
        Ok(c)
    }
}

impl fmt::Debug for ConnectorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorBuilder")
            .field("options", &self.options)
            .field("state", &self.state.is_some())
            .finish()
    }
}
