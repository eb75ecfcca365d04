//! Where this node is on its way out of the cluster: serving (perhaps in a full-cluster
//! shutdown), Down and letting that spread, or Exiting and confirming its exit.

/// This node's departure sequence. Each state holds only what applies to it: a Down node's
/// wait for its status to spread, an Exiting node's confirmation rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Departure {
    /// Taking part. `full_shutdown`: this node started or joined a full-cluster shutdown, and
    /// lets nobody in or up even before its gossip says so.
    Serving { full_shutdown: bool },
    /// Its own status is Down and [`crate::Event::SelfDowned`] was reported; `ticks` leader
    /// ticks spent letting the Down spread before it stops.
    Downed { ticks: u32 },
    /// Exiting; `ticks` leader ticks spent confirming the exit. `downed`: it was downed on the
    /// way out and [`crate::Event::SelfDowned`] was reported (it goes on exiting).
    Exiting { ticks: u32, downed: bool },
}

impl Departure {
    /// Not on the way out.
    pub(crate) const SERVING: Departure = Departure::Serving {
        full_shutdown: false,
    };

    /// Whether this node started or joined a full-cluster shutdown while serving. (Once Down
    /// or Exiting it lets nobody in anyway.)
    pub(crate) fn full_shutdown(&self) -> bool {
        matches!(
            self,
            Departure::Serving {
                full_shutdown: true
            }
        )
    }

    /// This node started or joined a full-cluster shutdown.
    pub(crate) fn prepare_for_shutdown(&mut self) {
        if let Departure::Serving { full_shutdown } = self {
            *full_shutdown = true;
        }
    }

    /// Its status is Down: true the first time, when `SelfDowned` is to be reported.
    pub(crate) fn downed(&mut self) -> bool {
        match self {
            Departure::Serving { .. } => {
                *self = Departure::Downed { ticks: 0 };
                true
            }
            Departure::Exiting { downed, .. } if !*downed => {
                *downed = true;
                true
            }
            _ => false,
        }
    }

    /// It became Exiting: the confirmation rounds start.
    pub(crate) fn start_exit(&mut self) {
        *self = Departure::Exiting {
            ticks: 0,
            downed: false,
        };
    }

    /// A leader tick while Down or Exiting: the ticks spent so far, this one included.
    pub(crate) fn tick(&mut self) -> u32 {
        match self {
            Departure::Serving { .. } => 0,
            Departure::Downed { ticks } | Departure::Exiting { ticks, .. } => {
                *ticks += 1;
                *ticks
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_downed_is_reported_once_whether_serving_or_exiting() {
        let mut d = Departure::SERVING;
        d.prepare_for_shutdown();
        assert!(d.full_shutdown());
        assert!(d.downed());
        assert!(!d.downed());
        assert!(!d.full_shutdown());
        assert_eq!((d.tick(), d.tick()), (1, 2));

        let mut d = Departure::SERVING;
        d.start_exit();
        assert_eq!(d.tick(), 1);
        assert!(d.downed());
        assert!(!d.downed());
        assert_eq!(d.tick(), 2, "downed on the way out, it goes on exiting");
    }
}
