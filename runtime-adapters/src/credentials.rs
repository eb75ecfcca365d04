//! A running node's TLS credentials: reloading them (and the deny list) without a restart,
//! and warning before they expire.
//!
//! Reloading swaps the certificate, key, CA and deny list for new connections; connections
//! in use stay, so membership does not change, except that peers whose certificate is now
//! denied are disconnected (see [`fjell_quic::Transport::reload`]). A reload happens when
//! asked ([`crate::Cluster::reload_credentials`], `SIGHUP` in the `fjell` binary) and, when
//! the credentials come from files, when one of the files changes (checked every
//! `tls.watch`). A reload that fails keeps the credentials in use and says why.
//!
//! What a reload does not do: it keeps connections already admitted under the old CA
//! (only the deny list closes connections), the stateless-reset and connection ID keys
//! derived from the private key at start, the address map, and the list of files watched.
//! After a key leak or a CA compromise, restart the node once the new files are in place.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fjell_core::Instant;
use fjell_quic::{Credentials, Fingerprint, Transport};

/// Loads the credentials and the deny list anew (from the files they came from).
pub type LoadCredentials =
    Arc<dyn Fn() -> Result<(Credentials, Vec<Fingerprint>), String> + Send + Sync>;

/// Certificates expiring within this are warned about, at start and daily.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Where a node's credentials come from, to reload them.
#[derive(Clone)]
pub struct CredentialSource {
    /// The files whose change triggers a reload.
    pub paths: Vec<PathBuf>,
    /// Reads them.
    pub load: LoadCredentials,
    /// How often the files are checked (`None`: only on request).
    pub watch: Option<Duration>,
}

impl std::fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialSource")
            .field("paths", &self.paths)
            .field("watch", &self.watch)
            .finish_non_exhaustive()
    }
}

/// What a file holds, as a hash of its contents (a modification time can miss an edit of
/// the same length within its resolution); `None` if it cannot be read.
type Stamp = Option<u64>;

fn stamp(path: &PathBuf) -> Stamp {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let bytes = std::fs::read(path).ok()?;
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

/// The driver's side: watching, reloading, expiry warnings.
pub(crate) struct Keeper {
    source: Option<CredentialSource>,
    stamps: Vec<Stamp>,
    next_watch: Option<Instant>,
    expires: Option<SystemTime>,
    next_expiry_check: Instant,
}

impl Keeper {
    pub(crate) fn new(
        source: Option<CredentialSource>,
        credentials: &Credentials,
        now: Instant,
    ) -> Self {
        let stamps = source
            .as_ref()
            .map(|s| s.paths.iter().map(stamp).collect())
            .unwrap_or_default();
        let next_watch = source.as_ref().and_then(|s| s.watch).map(|w| now + w);
        Keeper {
            source,
            stamps,
            next_watch,
            expires: credentials.expires().ok(),
            next_expiry_check: now,
        }
    }

    /// When [`Keeper::poll`] next has something to do.
    pub(crate) fn deadline(&self) -> Instant {
        match self.next_watch {
            Some(w) => w.min(self.next_expiry_check),
            None => self.next_expiry_check,
        }
    }

    /// Reloads changed files and warns of expiry, when due.
    pub(crate) fn poll(&mut self, now: Instant, transport: &Transport) {
        if now >= self.next_expiry_check {
            self.next_expiry_check = now + DAY;
            if let Some(w) = self.expiry_warning(SystemTime::now()) {
                tracing::warn!("fjell: {w}");
            }
        }
        let (Some(next), Some(source)) = (self.next_watch, &self.source) else {
            return;
        };
        if now < next {
            return;
        }
        self.next_watch = source.watch.map(|w| now + w);
        let stamps: Vec<Stamp> = source.paths.iter().map(stamp).collect();
        if stamps != self.stamps {
            self.stamps = stamps;
            let _ = self.reload(transport);
        }
    }

    /// Reloads now. Logs and returns the outcome.
    pub(crate) fn reload(&mut self, transport: &Transport) -> Result<Fingerprint, String> {
        let Some(source) = &self.source else {
            return Err("the credentials were not loaded from files".into());
        };
        let loaded = (source.load)().and_then(|(creds, deny)| {
            let n = deny.len();
            transport
                .reload(&creds, deny)
                .map_err(|e| e.to_string())
                .map(|()| (creds, n))
        });
        match loaded {
            Ok((creds, denied)) => {
                self.expires = creds.expires().ok();
                let fp = creds.fingerprint();
                tracing::info!(
                    "fjell: reloaded the TLS credentials (certificate {fp}) and the deny list \
                     ({denied} certificates)"
                );
                if let Some(w) = self.expiry_warning(SystemTime::now()) {
                    tracing::warn!("fjell: {w}");
                }
                Ok(fp)
            }
            Err(e) => {
                tracing::warn!(
                    "fjell: cannot reload the TLS credentials, keeping those in use: {e}"
                );
                Err(e)
            }
        }
    }

    fn expiry_warning(&self, wall: SystemTime) -> Option<String> {
        expiry_warning(self.expires?, wall)
    }
}

/// The warning for credentials that expire at `expires`, seen at `wall`.
pub(crate) fn expiry_warning(expires: SystemTime, wall: SystemTime) -> Option<String> {
    let date = humantime_date(expires);
    match expires.duration_since(wall) {
        Err(_) => Some(format!(
            "this node's certificate (or its CA) expired on {date}: peers refuse it; \
             issue a new one and reload it"
        )),
        Ok(left) if left < EXPIRY_WARNING => Some(format!(
            "this node's certificate (or its CA) expires on {date}, in {} days: issue a new \
             one and reload it",
            left.as_secs() / DAY.as_secs()
        )),
        Ok(_) => None,
    }
}

/// `YYYY-MM-DD` (UTC) of `t`.
fn humantime_date(t: SystemTime) -> String {
    let days = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / DAY.as_secs()) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_within_thirty_days_and_after_expiry_only() {
        let expires = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000); // 2027-01-15
        let day = |n: u64| Duration::from_secs(n * 24 * 3600);
        assert_eq!(expiry_warning(expires, expires - day(31)), None);
        assert_eq!(
            expiry_warning(expires, expires - day(12)).unwrap(),
            "this node's certificate (or its CA) expires on 2027-01-15, in 12 days: issue a \
             new one and reload it"
        );
        assert!(expiry_warning(expires, expires + day(1))
            .unwrap()
            .contains("expired on 2027-01-15"));
        assert_eq!(humantime_date(SystemTime::UNIX_EPOCH), "1970-01-01");
        assert_eq!(
            humantime_date(SystemTime::UNIX_EPOCH + day(19_723)),
            "2024-01-01"
        );
    }
}
