//! What both sides of a job hold, as the planner takes it: one listing per
//! side (the source's often shared by all of a client's jobs), and for a
//! partial receive on the target, the sender's reading of its resume token.

use super::job::JobSpec;
use super::sides::{Dataset, Observed, Point, ResumeState, TokenContents};
use crate::exec::{ExecError, RunOptions};
use crate::failure::{Failure, Side};
use crate::host::{Host, QUERY_TIMEOUT};
use crate::zfs::{cmd, parse, Dialect, Listing, ObjectInfo, ObjectType};
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
    let src_l = match source {
        Some(l) => l,
        None => src
            .observe_with(&job.source, &[marker.to_string()])
            .map_err(on(Side::Source, src))?,
    };
    let dst_caps = dst.caps().map_err(|e| on(Side::Target, dst)(e.into()))?;
    let mut extra = vec![marker.to_string()];
    if matches!(dst_caps.dialect, Dialect::OpenZfs { .. }) {
        extra.extend(["receive_resume_token".to_string(), "written".to_string()]);
    }
    let dst_l = dst
        .observe_if_exists(&job.target, &extra)
        .map_err(on(Side::Target, dst))?;
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

/// The sender's reading of a resume token: what it continues, or (when the
/// sender cannot send it any more) what it said.
fn read_token(src: &Host, token: &str) -> Result<Result<TokenContents, String>, Error> {
    match src.endpoint().run(
        &cmd::send_resume_estimate(token),
        &RunOptions::timeout(QUERY_TIMEOUT),
    ) {
        Ok(out) => {
            let text = format!("{}\n{}", out.stdout_text(), out.stderr_text());
            Ok(parse::resume_token_contents(&text)
                .map(|c| TokenContents {
                    to_name: c
                        .to_name
                        .rsplit_once('@')
                        .map_or(c.to_name.as_str(), |(_, n)| n)
                        .to_string(),
                    to_guid: c.to_guid,
                    from_guid: c.from_guid,
                    size: c.size,
                })
                .ok_or_else(|| "it printed no token contents".to_string()))
        }
        // zfs ran and refused the token: that is the answer, not a failure.
        Err(ExecError::Failed { stderr, .. }) => Ok(Err(stderr)),
        Err(e) => Err(e.into()),
    }
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
