//! Sequence checking: every stream must deliver every sequence number `0..expected` exactly once, in order.

/// What one stream (or the sum of several) got wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeqReport {
    /// Sequence numbers received (including duplicates and unexpected ones).
    pub received: u64,
    /// Expected sequence numbers never received.
    pub lost: u64,
    /// Receptions of a sequence number already received.
    pub duplicated: u64,
    /// First receptions of a number smaller than one received before it (arrived out of order).
    pub reordered: u64,
    /// Sequence numbers outside `0..expected`.
    pub unexpected: u64,
}

impl SeqReport {
    /// Adds another report's counts to this one.
    pub fn add(&mut self, other: &SeqReport) {
        self.received += other.received;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.unexpected += other.unexpected;
    }

    /// True when nothing was lost, duplicated, reordered or unexpected.
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.reordered == 0 && self.unexpected == 0
    }
}

/// Checks the sequence numbers of one stream as they arrive.
#[derive(Clone, Debug)]
pub struct SeqChecker {
    seen: Vec<bool>,
    unique: u64,
    max_seen: Option<u64>,
    report: SeqReport,
}

impl SeqChecker {
    /// A checker for a stream that should carry `0..expected`.
    pub fn new(expected: u64) -> Self {
        SeqChecker {
            seen: vec![false; expected as usize],
            unique: 0,
            max_seen: None,
            report: SeqReport::default(),
        }
    }

    /// Records the arrival of `seq`.
    pub fn push(&mut self, seq: u64) {
        self.report.received += 1;
        let Some(slot) = self.seen.get_mut(seq as usize) else {
            self.report.unexpected += 1;
            return;
        };
        if *slot {
            self.report.duplicated += 1;
            return;
        }
        *slot = true;
        self.unique += 1;
        match self.max_seen {
            Some(max) if seq < max => self.report.reordered += 1,
            _ => self.max_seen = Some(seq),
        }
    }

    /// The verdict so far: numbers not yet received count as lost.
    pub fn report(&self) -> SeqReport {
        SeqReport { lost: self.seen.len() as u64 - self.unique, ..self.report }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn check(expected: u64, seqs: &[u64]) -> SeqReport {
        let mut c = SeqChecker::new(expected);
        seqs.iter().for_each(|&s| c.push(s));
        c.report()
    }

    #[test]
    fn in_order_is_clean() {
        let r = check(5, &[0, 1, 2, 3, 4]);
        assert!(r.is_clean());
        assert_eq!(r.received, 5);
    }

    #[test]
    fn lost() {
        let r = check(5, &[0, 1, 3]);
        assert_eq!((r.lost, r.duplicated, r.reordered, r.unexpected), (2, 0, 0, 0));
        assert_eq!(check(3, &[]).lost, 3);
    }

    #[test]
    fn duplicated() {
        let r = check(3, &[0, 1, 1, 2, 2, 2]);
        assert_eq!((r.lost, r.duplicated, r.reordered), (0, 3, 0));
    }

    #[test]
    fn reordered() {
        let r = check(4, &[0, 2, 1, 3]);
        assert_eq!((r.lost, r.duplicated, r.reordered), (0, 0, 1));
        let r = check(4, &[3, 2, 1, 0]);
        assert_eq!((r.lost, r.duplicated, r.reordered), (0, 0, 3));
    }

    #[test]
    fn unexpected_and_sum() {
        let r = check(2, &[0, 1, 7]);
        assert_eq!(r.unexpected, 1);
        assert!(!r.is_clean());
        let mut sum = SeqReport::default();
        sum.add(&r);
        sum.add(&check(2, &[1]));
        assert_eq!((sum.received, sum.lost, sum.unexpected), (4, 1, 1));
    }
}
