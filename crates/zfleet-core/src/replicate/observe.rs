//! What both sides of a job hold, as the planner takes it: one listing per
//! side (the source's often shared by all of a client's jobs), and for a
//! partial receive on the target, the sender's reading of its resume token.

use super::job::JobSpec;
use super::sides::{Dataset, Observed, Point, ResumeState, TokenContents};
use crate::exec::{ExecError, RunOptions};
use crate::failure::{Failure, Side};
use crate::host::{Host, QUERY_TIMEOUT};
use crate::zfs::{cmd, resume_token, Dialect, Listing, ObjectInfo, ObjectType};
use crate::Error;

/// Observes both sides of `job`. `source` is a listing of the source made
/// moments before (it must hold the job's source and the base marker).
pub fn observe(
    src: &Host,
    dst: &Host,
    job: &JobSpec,
    marker: &str,
    source: Option<Listing>,
) -> Result<Observed, Failure> {
    fn on(side: Side, host: &Host) -> impl Fn(Error) -> Failure + '_ {
        move |e| Failure::on(side, &host.name, &e)
    }
    // The two listings are taken side by side: over ssh each is a round trip.
    let (src_l, dst_l) = std::thread::scope(|s| {
        let src_l = s.spawn(|| match source {
            Some(l) => Ok(l),
            None => src
                .observe_own(&[&job.source], &[marker.to_string()])
                .map_err(on(Side::Source, src)),
        });
        let dst_l = dst
            .caps()
            .map_err(|e| on(Side::Target, dst)(e.into()))
            .and_then(|dst_caps| {
                let mut extra = vec![marker.to_string()];
                if matches!(dst_caps.dialect, Dialect::OpenZfs { .. }) {
                    extra.extend(["receive_resume_token".to_string(), "written".to_string()]);
                }
                dst.observe_own_if_exists(&job.target, &extra)
                    .map_err(on(Side::Target, dst))
            });
        let src_l = src_l
            .join()
            .unwrap_or_else(|_| Err(Failure::internal("listing the source panicked")));
        (src_l, dst_l)
    });
    let (src_l, dst_l) = (src_l?, dst_l?);
    let mut obs = Observed {
        source: dataset(Some(&src_l), job, true, marker),
        target: dataset(dst_l.as_ref(), job, false, marker),
    };
    let token = dst_l
        .as_ref()
        .and_then(|l| l.dataset(&job.target))
        .and_then(|d| d.props.get("receive_resume_token"))
        .cloned();
    if let Some(token) = token {
        obs.target.resume = Some(ResumeState {
            contents: read_token(src, &token).map_err(on(Side::Source, src))?,
            token,
        });
    }
    Ok(obs)
}

/// What a resume token continues, decoded here, and the sender's own
/// verdict on it with its size estimate (`zfs send -nvP -t`): a sender that
/// refuses the token (it no longer has what it names) says why.
fn read_token(src: &Host, token: &str) -> Result<Result<TokenContents, String>, Error> {
    let decoded = match resume_token::decode(token) {
        Ok(t) => t,
        Err(why) => return Ok(Err(why)),
    };
    let size = match src.endpoint().run(
        &cmd::send_resume_estimate(token),
        &RunOptions::timeout(QUERY_TIMEOUT),
    ) {
        Ok(out) => cmd::parse_send_estimate(&out.stdout_text())
            .or_else(|| cmd::parse_send_estimate(&out.stderr_text())),
        // zfs ran and refused the token: that is the answer, not a failure.
        Err(ExecError::Failed { stderr, .. }) => return Ok(Err(stderr)),
        Err(e) => return Err(e.into()),
    };
    Ok(Ok(TokenContents {
        to_name: decoded
            .toname
            .rsplit_once('@')
            .map_or(decoded.toname.as_str(), |(_, n)| n)
            .to_string(),
        to_guid: decoded.toguid,
        from_guid: decoded.fromguid,
        size,
    }))
}

fn points(objs: &[&ObjectInfo]) -> Vec<Point> {
    objs.iter()
        .map(|o| Point {
            name: short_name(o),
            guid: o.guid,
            createtxg: o.createtxg,
            creation: o.creation,
        })
        .collect()
}

/// The part of an object's name after `@` or `#`.
pub fn short_name(o: &ObjectInfo) -> String {
    o.name.short().to_string()
}

fn dataset(l: Option<&Listing>, job: &JobSpec, source: bool, marker: &str) -> Dataset {
    let ds = if source { &job.source } else { &job.target };
    let Some(l) = l else {
        return Dataset::default();
    };
    let Some(d) = l.dataset(ds) else {
        return Dataset::default();
    };
    let snaps = l.snapshots_of(ds);
    Dataset {
        exists: true,
        snapshots: points(&snaps),
        bookmarks: points(&l.bookmarks_of(ds)),
        marked: snaps
            .iter()
            .filter(|o| o.kind == ObjectType::Snapshot && o.props.contains_key(marker))
            .map(|o| short_name(o))
            .collect(),
        resume: None,
        written: d.props.get("written").and_then(|w| w.parse().ok()),
    }
}
