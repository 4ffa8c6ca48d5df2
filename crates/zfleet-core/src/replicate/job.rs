//! A replication job as the engine takes it ([`JobSpec`], [`Options`]) and
//! what it reports back ([`JobReport`]): the plan it made, the steps that ran,
//! the base both sides now share, and a typed outcome.

use serde::{Serialize, Serializer};

use super::plan::{self, Plan, Refusal, Snap, Step};
use crate::failure::Failure;
use crate::transfer::PumpOptions;
use crate::zfs::DatasetName;

/// One replication to run.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The host whose dataset is backed up (the source's host for `zfleet sync`).
    pub client: String,
    pub source: DatasetName,
    pub target: DatasetName,
    /// Whose base this is: the server's name for backups, `sync` for ad-hoc copies.
    pub marker: String,
    /// Send encrypted datasets raw, so the receiver never needs the key.
    pub raw: bool,
    /// Create missing parents of the target down from here (a server's target root).
    pub create_parents_below: Option<DatasetName>,
    /// Native properties to copy from the source to the target.
    pub preserve: Vec<String>,
    /// Take a sync snapshot before sending, and remove this marker's older ones.
    pub sync_snapshot: bool,
    /// zstd on the wire where a side is remote.
    pub compress: bool,
}

impl JobSpec {
    /// A plain copy: no property preservation, no sync snapshot, no compression.
    pub fn new(
        client: impl Into<String>,
        source: DatasetName,
        target: DatasetName,
        marker: impl Into<String>,
    ) -> Self {
        Self {
            client: client.into(),
            source,
            target,
            marker: marker.into(),
            raw: true,
            create_parents_below: None,
            preserve: Vec::new(),
            sync_snapshot: false,
            compress: false,
        }
    }

    /// `alpha:zroot/persistSave`, for progress and logs.
    pub fn label(&self) -> String {
        format!("{}:{}", self.client, self.source)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub plan: plan::Options,
    pub pump: PumpOptions,
    pub dry_run: bool,
}

/// How a job ended. Serialised as `"sent"`, or `{"refused": {…}}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    UpToDate,
    Sent,
    /// `--dry-run`: the plan is what would run.
    Planned,
    Refused {
        refusal: Refusal,
        message: String,
        hint: String,
    },
    /// The source has no snapshot yet (a new client before its first `zfleet run`).
    NothingToSend {
        message: String,
    },
    Failed(Failure),
    /// The snapshots were sent and the base moved, but the backup lacks what
    /// it should carry: the source's properties (preserved ones, and the
    /// `zfleet:src:*` a restore needs) could not be read or set.
    Degraded {
        message: String,
    },
}

impl Outcome {
    pub fn ok(&self) -> bool {
        matches!(
            self,
            Outcome::UpToDate | Outcome::Sent | Outcome::Planned | Outcome::NothingToSend { .. }
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub client: String,
    /// Whose base the job keeps: the server (`sync` for `zfleet sync`).
    pub server: String,
    /// The client's dataset.
    pub dataset: DatasetName,
    /// `client1:zroot/persistSave`.
    pub source: String,
    /// `backup:zstorage/backups/client1/zroot/persistSave`.
    pub target: String,
    pub outcome: Outcome,
    /// The plan the job ran (or, with `--dry-run`, would run): the last one
    /// made, when the world changed under an earlier one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// The steps that ran, in words (a discarded stale receive is among the
    /// warnings); typed in `plan`.
    #[serde(serialize_with = "words")]
    pub steps: Vec<Step>,
    pub bytes: u64,
    pub snapshots: u64,
    pub seconds: f64,
    /// The newest snapshot both sides now share.
    pub base: Option<Snap>,
    /// Things that went wrong without failing the job.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn words<S: Serializer>(steps: &[Step], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(
        steps
            .iter()
            .filter(|st| !matches!(st, Step::AbortResume { .. }))
            .map(Step::describe),
    )
}

impl JobReport {
    /// A report with nothing done yet.
    pub fn new(job: &JobSpec, source_host: &str, target_host: &str, outcome: Outcome) -> Self {
        Self {
            client: job.client.clone(),
            server: job.marker.clone(),
            dataset: job.source.clone(),
            source: format!("{source_host}:{}", job.source),
            target: format!("{target_host}:{}", job.target),
            outcome,
            plan: None,
            steps: Vec::new(),
            bytes: 0,
            snapshots: 0,
            seconds: 0.0,
            base: None,
            warnings: Vec::new(),
        }
    }

    pub fn ok(&self) -> bool {
        self.outcome.ok()
    }

    pub fn failure(&self) -> Option<&Failure> {
        match &self.outcome {
            Outcome::Failed(f) => Some(f),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::{FailureKind, Side};
    use crate::replicate::base_moves::{BaseMove, BaseMoves};
    use crate::replicate::plan::Base;

    fn spec() -> JobSpec {
        JobSpec::new(
            "client1",
            DatasetName::parse("zroot/persistSave").unwrap(),
            DatasetName::parse("zstorage/backups/client1/zroot/persistSave").unwrap(),
            "backup",
        )
    }

    /// `zfleet backup --dry-run --json`: each job with its plan as a value,
    /// and its steps in words for scripts that read those.
    #[test]
    fn a_planned_job_as_json() {
        let steps = vec![
            Step::AbortResume {
                reason: "it continues @b, which the source no longer has".into(),
            },
            Step::Incremental {
                from: Base::Snapshot {
                    name: "a".into(),
                    guid: 1,
                },
                to: Snap {
                    name: "c".into(),
                    guid: 3,
                },
                intermediates: true,
                raw: false,
                snapshots: 2,
                estimated_bytes: Some(1 << 20),
            },
        ];
        let mut r = JobReport::new(&spec(), "client1", "backup", Outcome::Planned);
        r.plan = Some(Plan::Send {
            base: Some(Base::Snapshot {
                name: "a".into(),
                guid: 1,
            }),
            steps: steps.clone(),
            new_base: Snap {
                name: "c".into(),
                guid: 3,
            },
            base_moves: BaseMoves {
                source: vec![BaseMove::Mark {
                    snapshot: "c".into(),
                }],
                target: vec![BaseMove::Release {
                    snapshot: "a".into(),
                }],
            },
        });
        r.steps = steps;
        insta::assert_json_snapshot!(r);
    }

    #[test]
    fn a_failed_job_as_json() {
        let f = Failure {
            side: Some(Side::Source),
            host: Some("client1".into()),
            bytes: 12 << 20,
            ..Failure::new(
                FailureKind::Unreachable,
                "client1 stopped answering during `zfs send -I zroot/persistSave@a zroot/persistSave@c`, after 12.0 MiB: Timeout, server 10.77.0.2 not responding.",
            )
        };
        let mut r = JobReport::new(&spec(), "client1", "backup", Outcome::Failed(f));
        r.bytes = 12 << 20;
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["outcome"]["failed"]["kind"], "unreachable");
        assert_eq!(v["outcome"]["failed"]["side"], "source");
        assert_eq!(v["outcome"]["failed"]["host"], "client1");
        assert_eq!(v["outcome"]["failed"]["bytes"], v["bytes"]);
        assert!(!r.ok());
        // A refusal carries its reason next to the message and hint.
        let refusal = Refusal::TargetModified {
            common: "a".into(),
            written: 4096,
        };
        let r = JobReport::new(
            &spec(),
            "client1",
            "backup",
            Outcome::Refused {
                message: refusal.message("client1:zroot/persistSave", "backup:…"),
                hint: refusal.hint().into(),
                refusal,
            },
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["outcome"]["refused"]["refusal"]["reason"],
            "target_modified"
        );
        assert!(v["outcome"]["refused"]["hint"]
            .as_str()
            .unwrap()
            .contains("--rollback"));
    }
}
