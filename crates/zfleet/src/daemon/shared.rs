//! What the scheduler and the listener share: the fleet in force, the last
//! observation of the hosts, the running transfers and the state database.
//! The listener assembles the report on each request from these, so ages
//! and "late" are as of the request, not of the last observation.

use std::sync::{Arc, RwLock};

use jiff::tz::TimeZone;
use zfleet_core::config::Fleet;
use zfleet_core::state::State;
use zfleet_core::status::collect::{assemble, Observed, Scope};
use zfleet_core::status::{history, StatusReport};

use super::transfers::Transfers;

pub struct View {
    pub fleet: Arc<Fleet>,
    pub observed: Observed,
}

pub struct Shared {
    pub this_host: String,
    pub tz: TimeZone,
    pub view: RwLock<View>,
    pub transfers: Arc<Transfers>,
    pub state: Arc<State>,
}

impl Shared {
    pub fn scope(&self) -> Scope {
        Scope {
            only: vec![self.this_host.clone()],
            daemon_server: Some(self.this_host.clone()),
        }
    }

    /// Puts a new observation in place, keeping the state summary.
    pub fn set_observed(&self, mut o: Observed) {
        let mut v = self.view.write().unwrap_or_else(|p| p.into_inner());
        o.dumps.remove(&self.this_host);
        v.observed = o;
    }

    pub fn set_fleet(&self, f: Arc<Fleet>) {
        self.view.write().unwrap_or_else(|p| p.into_inner()).fleet = f;
    }

    pub fn report(&self, now: i64) -> StatusReport {
        let dump = history::dump(&self.state, &self.this_host, now);
        let mut v = self.view.write().unwrap_or_else(|p| p.into_inner());
        match dump {
            Ok(d) => {
                v.observed.dumps.insert(self.this_host.clone(), d);
            }
            Err(e) => tracing::warn!("{e}"),
        }
        let mut r = assemble(&v.fleet, &self.scope(), &v.observed, now, &self.tz);
        drop(v);
        for s in &mut r.servers {
            for row in &mut s.rows {
                row.transfer = self.transfers.note(&row.client, &row.dataset);
            }
        }
        r
    }
}
