//! How sanoid builds a dataset's settings when a recursive section covers a
//! section of its own, reproduced for `zfleet import sanoid`.
//!
//! sanoid reads sections in file order. A section starts from the defaults
//! (and `[template_default]`) only if nothing initialised it yet; a
//! recursive section copies its finished settings onto every dataset below
//! it, which marks them initialised. So a child section read after its
//! recursive parent is laid over the parent's values (its own comment in
//! the example sanoid.conf: "it will only override the values already set by
//! the parent template"), and a child read before the parent is replaced by
//! the parent's values altogether. zfleet's rule is simpler (the deepest
//! entry decides, from the defaults), so the import writes out, in the
//! child's section, every value that sanoid would take from the parent.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::sanoid_import::{is_policy_key, sanoid_default, toggle, Section};

/// Explicit values; a key not present has sanoid's default.
pub(super) type Values = BTreeMap<String, String>;

/// What sanoid ends up with for one dataset section.
#[derive(Debug, Clone, Default)]
pub(super) struct Effective {
    pub values: Values,
    /// The recursive section whose values were copied onto this one.
    pub from: Option<String>,
    /// Below a `recursive = zfs` section: snapshots come from its `zfs
    /// snapshot -r`, so `autosnap` does not matter.
    pub in_zfs_tree: bool,
    /// Removed by a parent's `skip_children`: sanoid does not manage it.
    pub skipped_by: Option<String>,
}

fn policy_keys(s: &Section) -> impl Iterator<Item = (&String, &String)> {
    s.keys
        .iter()
        .filter(|(k, v, _)| is_policy_key(k) && !v.is_empty())
        .map(|(k, v, _)| (k, v))
}

fn templates_of(s: &Section) -> Vec<String> {
    s.keys
        .iter()
        .find(|(k, _, _)| k == "use_template")
        .map(|(_, v, _)| {
            v.split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn value<'a>(s: &'a Section, key: &str) -> Option<&'a str> {
    s.keys
        .iter()
        .find(|(k, _, _)| k == key)
        .map(|(_, v, _)| v.as_str())
}

fn path(s: &Section) -> &str {
    value(s, "path").unwrap_or(&s.name)
}

/// zfleet's rule for a section: defaults ← `template_default` ← its
/// templates ← its own keys.
pub(super) fn zfleet_rule(s: &Section, sections: &[Section]) -> Values {
    let template = |name: &str| {
        sections
            .iter()
            .find(|t| t.name == format!("template_{name}"))
    };
    let mut v = Values::new();
    for t in std::iter::once("default".to_string())
        .chain(templates_of(s))
        .filter_map(|t| template(&t))
    {
        v.extend(policy_keys(t).map(|(k, x)| (k.clone(), x.clone())));
    }
    v.extend(policy_keys(s).map(|(k, x)| (k.clone(), x.clone())));
    v
}

/// sanoid's `init`, over the dataset sections of the file (the datasets
/// that exist are not known here; those without a section of their own get
/// their recursive ancestor's settings in both tools alike).
pub(super) fn sanoid_rule(sections: &[Section]) -> HashMap<String, Effective> {
    let template = |name: &str| {
        sections
            .iter()
            .find(|t| t.name == format!("template_{name}"))
    };
    let datasets: Vec<&Section> = sections
        .iter()
        .filter(|s| !s.name.starts_with("template_"))
        .collect();
    let mut config: HashMap<String, Effective> = HashMap::new();
    let mut initialized: HashSet<String> = HashSet::new();
    for s in &datasets {
        let mut e = config.remove(&s.name).unwrap_or_default();
        if !initialized.contains(&s.name) {
            e.values = template("default")
                .map(|t| {
                    policy_keys(t)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
        }
        for t in templates_of(s).iter().filter_map(|t| template(t)) {
            e.values
                .extend(policy_keys(t).map(|(k, v)| (k.clone(), v.clone())));
        }
        e.values
            .extend(policy_keys(s).map(|(k, v)| (k.clone(), v.clone())));
        e.skipped_by = None;
        let recursive = value(s, "recursive");
        let zfs = recursive.is_some_and(|r| r.to_ascii_lowercase().contains("zfs"));
        let yes = recursive.and_then(toggle) == Some(true);
        let skip = value(s, "skip_children").and_then(toggle) == Some(true);
        let below = format!("{}/", path(s));
        if zfs || yes || skip {
            for child in datasets.iter().filter(|c| c.name.starts_with(&below)) {
                if skip && !zfs {
                    config.insert(
                        child.name.clone(),
                        Effective {
                            skipped_by: Some(s.name.clone()),
                            ..Effective::default()
                        },
                    );
                    initialized.remove(&child.name);
                    continue;
                }
                let mut copy = e.values.clone();
                if zfs {
                    copy.insert("autosnap".into(), "0".into());
                }
                config.insert(
                    child.name.clone(),
                    Effective {
                        values: copy,
                        from: Some(s.name.clone()),
                        in_zfs_tree: zfs,
                        skipped_by: None,
                    },
                );
                initialized.insert(child.name.clone());
            }
        }
        config.insert(s.name.clone(), e);
    }
    config
}

/// Whether two values of a key mean the same (sanoid normalises yes/no).
pub(super) fn same(a: Option<&String>, b: Option<&String>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x == y || (toggle(x).is_some() && toggle(x) == toggle(y)),
        (None, None) => true,
        _ => false,
    }
}

/// The values sanoid would give section `s` that zfleet's rule would not,
/// as key and sanoid's value (`None`: sanoid's default).
pub(super) fn differing(
    s: &Section,
    sections: &[Section],
    sanoid: &HashMap<String, Effective>,
) -> Vec<(String, Option<String>)> {
    let Some(e) = sanoid.get(&s.name).filter(|e| e.from.is_some()) else {
        return Vec::new();
    };
    let ours = zfleet_rule(s, sections);
    let keys: std::collections::BTreeSet<&String> = e.values.keys().chain(ours.keys()).collect();
    // A value written out equal to the default is the default.
    let effective = |m: &Values, k: &str| m.get(k).cloned().or_else(|| sanoid_default(k));
    keys.into_iter()
        .filter(|k| !(e.in_zfs_tree && k.as_str() == "autosnap"))
        .filter(|k| {
            let (a, b) = (effective(&e.values, k), effective(&ours, k));
            if a.is_some() || b.is_some() {
                !same(a.as_ref(), b.as_ref())
            } else {
                !same(e.values.get(*k), ours.get(*k))
            }
        })
        .map(|k| (k.clone(), e.values.get(k).cloned()))
        .collect()
}
