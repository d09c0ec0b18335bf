//! Byte bounds for the queues of a bus.

use bytes::Bytes;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A bound in bytes shared by the messages of one queue: each message
/// reserves its size on the way in, and gives it back when its last copy is
/// dropped. A message is refused when it would take the total over the
/// bound, except when nothing is reserved: one message bigger than the bound
/// still passes an empty queue.
///
/// Bus implementations use it beside the bound in messages of their queues
/// (a `tokio::sync::mpsc` channel counts messages, not bytes).
///
/// # Examples
///
/// ```
/// use crosswire::bus::ByteBudget;
/// let budget = ByteBudget::new(10);
/// let a = budget.reserve(6).expect("fits");
/// assert!(budget.reserve(6).is_none()); // 12 > 10
/// let b = budget.reserve(4).expect("fits");
/// assert_eq!(budget.used(), 10);
/// drop((a, b));
/// assert_eq!(budget.used(), 0);
/// // Alone, a message bigger than the bound passes.
/// assert!(budget.reserve(50).is_some());
/// ```
#[derive(Clone)]
pub struct ByteBudget(Arc<Inner>);

struct Inner {
    limit: usize,
    used: AtomicUsize,
}

impl fmt::Debug for ByteBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteBudget")
            .field("limit", &self.limit())
            .field("used", &self.used())
            .finish()
    }
}

impl ByteBudget {
    /// A budget of `limit` bytes, none used.
    ///
    /// # Examples
    ///
    /// ```
    /// let budget = crosswire::bus::ByteBudget::new(64 << 20);
    /// assert_eq!(budget.limit(), 64 << 20);
    /// ```
    pub fn new(limit: usize) -> Self {
        ByteBudget(Arc::new(Inner {
            limit,
            used: AtomicUsize::new(0),
        }))
    }

    /// The bound, in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(crosswire::bus::ByteBudget::new(5).limit(), 5);
    /// ```
    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Bytes reserved now.
    ///
    /// # Examples
    ///
    /// ```
    /// let budget = crosswire::bus::ByteBudget::new(100);
    /// let _charge = budget.reserve(30);
    /// assert_eq!(budget.used(), 30);
    /// ```
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Acquire)
    }

    /// Reserves `bytes` until the returned [`Charge`] is dropped; `None`
    /// when they do not fit (see [`ByteBudget`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let budget = crosswire::bus::ByteBudget::new(8);
    /// let charge = budget.reserve(8).expect("fits");
    /// assert!(budget.reserve(1).is_none());
    /// drop(charge);
    /// assert!(budget.reserve(1).is_some());
    /// ```
    pub fn reserve(&self, bytes: usize) -> Option<Charge> {
        let used = &self.0.used;
        let mut now = used.load(Ordering::Acquire);
        loop {
            if now > 0 && now.saturating_add(bytes) > self.0.limit {
                return None;
            }
            match used.compare_exchange_weak(
                now,
                now.saturating_add(bytes),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Charge {
                        budget: self.clone(),
                        bytes,
                    })
                }
                Err(seen) => now = seen,
            }
        }
    }
}

/// Bytes reserved in a [`ByteBudget`], given back when dropped.
///
/// # Examples
///
/// ```
/// use crosswire::bus::ByteBudget;
/// let budget = ByteBudget::new(1024);
/// let payload = bytes::Bytes::from_static(b"hello");
/// let charged = budget.reserve(payload.len()).expect("fits").attach(payload);
/// assert_eq!(&charged[..], b"hello");
/// let copy = charged.clone();
/// drop(charged);
/// assert_eq!(budget.used(), 5); // a copy is still alive
/// drop(copy);
/// assert_eq!(budget.used(), 0);
/// ```
pub struct Charge {
    budget: ByteBudget,
    bytes: usize,
}

impl fmt::Debug for Charge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Charge")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Charge {
    /// `payload`, holding this charge until its last clone is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let budget = crosswire::bus::ByteBudget::new(16);
    /// let payload = budget.reserve(3).expect("fits").attach("abc".into());
    /// assert_eq!(budget.used(), 3);
    /// drop(payload);
    /// assert_eq!(budget.used(), 0);
    /// ```
    pub fn attach(self, payload: Bytes) -> Bytes {
        Bytes::from_owner(Charged {
            payload,
            _charge: self,
        })
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.0.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

struct Charged {
    payload: Bytes,
    _charge: Charge,
}

impl AsRef<[u8]> for Charged {
    fn as_ref(&self) -> &[u8] {
        &self.payload
    }
}
