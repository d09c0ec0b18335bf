//! What one client saw of one room's stream: which sequence numbers arrived,
//! how often and in which order, and the position it holds.

use crate::loadgen::gen::MAX_INDEX;

/// How a received sequence number counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The first time, after every lower number that arrived so far.
    New,
    /// The first time, but after a higher number: it came out of order.
    OutOfOrder,
    /// Already received.
    Duplicate,
    /// Not a sequence number of the stream (0, or too high).
    Invalid,
}

/// One client's view of one room.
#[derive(Debug, Default, Clone)]
pub(crate) struct RoomTrack {
    /// Bit `q` set: sequence number `q` arrived.
    bits: Vec<u64>,
    /// Highest sequence number that arrived.
    max: u64,
    /// Distinct sequence numbers received.
    pub(crate) unique: u64,
    /// Deliveries of a number already received.
    pub(crate) duplicates: u64,
    /// Numbers that arrived after a higher one.
    pub(crate) out_of_order: u64,
    /// Messages received marked as sent again (`cwRecovered`).
    pub(crate) recovered: u64,
    /// A recovery of this room was reported incomplete: what the client
    /// misses of it is accounted for.
    pub(crate) incomplete: bool,
    /// The last position the client holds: (epoch, offset).
    pub(crate) position: Option<(String, u64)>,
    /// Waiting for the room's `_cw_joined` after a (re)join.
    pub(crate) awaiting_joined: bool,
}

impl RoomTrack {
    /// Accounts for sequence number `q` (the stream numbers a room's
    /// messages from 1).
    pub(crate) fn arrive(&mut self, q: u64) -> Arrival {
        if q == 0 || q >= MAX_INDEX {
            return Arrival::Invalid;
        }
        let w = (q / 64) as usize;
        if self.bits.len() <= w {
            self.bits.resize(w + 1, 0);
        }
        let m = 1u64 << (q % 64);
        if self.bits[w] & m != 0 {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        self.bits[w] |= m;
        self.unique += 1;
        if q < self.max {
            self.out_of_order += 1;
            Arrival::OutOfOrder
        } else {
            self.max = q;
            Arrival::New
        }
    }

    /// Messages of the `sent` the room received that this client lacks.
    pub(crate) fn missed(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.unique)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_way_a_number_can_arrive() {
        let mut t = RoomTrack::default();
        assert_eq!(t.arrive(1), Arrival::New);
        assert_eq!(t.arrive(2), Arrival::New);
        assert_eq!(t.arrive(2), Arrival::Duplicate);
        assert_eq!(t.arrive(5), Arrival::New);
        assert_eq!(t.arrive(4), Arrival::OutOfOrder);
        assert_eq!(t.arrive(0), Arrival::Invalid);
        assert_eq!(t.arrive(MAX_INDEX), Arrival::Invalid);
        assert_eq!((t.unique, t.duplicates, t.out_of_order), (4, 1, 1));
        // 1, 2, 4 and 5 of 6: 3 and 6 are missing.
        assert_eq!(t.missed(6), 2);
        assert_eq!(t.missed(3), 0);
    }
}
