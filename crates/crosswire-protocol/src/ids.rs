//! Callback id generators in the original's formats (`docs/protocol.md` §3.2, §7.3).
//!
//! * node (cross-server) ids: `<last 6 chars of the server name>-<ms base36>-<4 random base36>-<counter base36>`,
//!   e.g. `erverA-mwyijang-ip49-1`;
//! * client ids: `<ms base36>-<4 random base36>-<counter base36>`, e.g.
//!   `mwyihlrn-18kj-1`.
//!
//! The counter starts at 1 per generator and is never reset. Ids are unique
//! with high probability only; receivers treat them as opaque strings.

use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Number of trailing server-name characters in a node callback id.
const NAME_SUFFIX_CHARS: usize = 6;
/// Number of random base36 characters in an id.
const RANDOM_CHARS: usize = 4;
const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A generator of callback ids; shareable between threads (`next` takes
/// `&self`).
///
/// # Examples
///
/// ```
/// use crosswire_protocol::ids::CallbackIds;
/// let ids = CallbackIds::server("serverA");
/// assert_eq!(ids.next_with(1_724_635_324_887, "k3x9"), "erverA-m0abcdef-k3x9-1");
/// assert_eq!(ids.next_with(1_724_635_324_887, "k3x9"), "erverA-m0abcdef-k3x9-2");
/// let ids = CallbackIds::client();
/// assert_eq!(ids.next_with(1_724_635_324_887, "18kj"), "m0abcdef-18kj-1");
/// ```
#[derive(Debug)]
pub struct CallbackIds {
    prefix: Option<String>,
    counter: AtomicU64,
}

impl CallbackIds {
    /// Ids for a node named `server_name`, prefixed with the last six
    /// characters of the name (JavaScript `slice(-6)`; counted in Unicode
    /// scalar values rather than UTF-16 units, which only differs for names
    /// with characters outside the Basic Multilingual Plane).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::ids::CallbackIds;
    /// let ids = CallbackIds::server("serverA");
    /// assert_eq!(ids.next_with(0, "abcd"), "erverA-0-abcd-1");
    /// assert!(CallbackIds::server("n1").next().starts_with("n1-"));
    /// ```
    pub fn server(server_name: &str) -> Self {
        let count = server_name.chars().count();
        let suffix: String = server_name
            .chars()
            .skip(count.saturating_sub(NAME_SUFFIX_CHARS))
            .collect();
        CallbackIds {
            prefix: Some(suffix),
            counter: AtomicU64::new(1),
        }
    }

    /// Ids in the client's format (no name prefix).
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::ids::CallbackIds;
    /// let ids = CallbackIds::client();
    /// assert_eq!(ids.next_with(36, "wxyz"), "10-wxyz-1");
    /// assert_eq!(ids.next().split('-').count(), 3);
    /// ```
    pub fn client() -> Self {
        CallbackIds {
            prefix: None,
            counter: AtomicU64::new(1),
        }
    }

    /// The next id, using the current time and four random base36
    /// characters.
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::ids::CallbackIds;
    /// let ids = CallbackIds::server("game-server-42");
    /// let id = ids.next();
    /// assert!(id.starts_with("ver-42-"));
    /// assert!(id.ends_with("-1"));
    /// assert_ne!(ids.next(), id);
    /// ```
    pub fn next(&self) -> String {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let mut rng = rand::rng();
        let mut random = [0u8; RANDOM_CHARS];
        for b in &mut random {
            *b = BASE36[rng.random_range(0..BASE36.len())];
        }
        // Every byte comes from the ASCII alphabet above.
        let random = std::str::from_utf8(&random).unwrap_or("0000");
        self.next_with(now_ms, random)
    }

    /// The next id with the given time (ms since the Unix epoch) and random
    /// part; deterministic, for tests. Advances the counter like
    /// [`CallbackIds::next`].
    ///
    /// # Examples
    ///
    /// ```
    /// use crosswire_protocol::ids::CallbackIds;
    /// let ids = CallbackIds::client();
    /// assert_eq!(ids.next_with(1_724_635_324_887, "18kj"), "m0abcdef-18kj-1");
    /// assert_eq!(ids.next_with(1_724_635_324_887, "18kj"), "m0abcdef-18kj-2");
    /// ```
    pub fn next_with(&self, now_ms: u64, random: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(32);
        if let Some(prefix) = &self.prefix {
            id.push_str(prefix);
            id.push('-');
        }
        push_base36(&mut id, now_ms);
        id.push('-');
        id.push_str(random);
        id.push('-');
        push_base36(&mut id, n);
        id
    }
}

/// `n` in base 36 with lowercase digits, as JavaScript's
/// `n.toString(36)`.
///
/// # Examples
///
/// ```
/// use crosswire_protocol::ids::to_base36;
/// assert_eq!(to_base36(0), "0");
/// assert_eq!(to_base36(35), "z");
/// assert_eq!(to_base36(36), "10");
/// ```
pub fn to_base36(n: u64) -> String {
    let mut s = String::with_capacity(13);
    push_base36(&mut s, n);
    s
}

fn push_base36(out: &mut String, mut n: u64) {
    // u64::MAX has 13 base36 digits.
    let mut digits = [0u8; 13];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = BASE36[(n % 36) as usize];
        n /= 36;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn base36() {
        assert_eq!(to_base36(u64::MAX), "3w5e11264sgsf");
        assert_eq!(to_base36(1_724_635_324_887), "m0abcdef");
    }

    #[test]
    fn server_prefixes() {
        let ids = CallbackIds::server("abc");
        assert_eq!(ids.next_with(0, "tvvb"), "abc-0-tvvb-1");
        let ids = CallbackIds::server("game-server-42");
        assert_eq!(ids.next_with(36, "5yxh"), "ver-42-10-5yxh-1");
        let ids = CallbackIds::server("");
        assert_eq!(ids.next_with(1, "abcd"), "-1-abcd-1");
        let ids = CallbackIds::server("ñandú-über");
        assert_eq!(ids.next_with(1, "abcd"), "ú-über-1-abcd-1");
    }

    #[test]
    fn counter_grows_in_base36() {
        let ids = CallbackIds::client();
        for _ in 0..35 {
            ids.next_with(1, "x");
        }
        assert_eq!(ids.next_with(1, "x"), "1-x-10");
    }

    #[test]
    fn random_ids_have_the_expected_shape() {
        let ids = CallbackIds::client();
        let id = ids.next();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].len(), 4);
        assert!(id
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || b.is_ascii_lowercase()));
        assert!(crate::client::is_valid_callback_id(&id));
    }

    #[test]
    fn send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CallbackIds>();
    }
}
