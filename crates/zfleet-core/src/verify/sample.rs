//! `--sample PERCENT`: which files a run reads. Files fall into buckets by a
//! hash of their path (the same on every host and every run); run `n` reads
//! bucket `n mod buckets`, so every file is read within `buckets` runs, and
//! a file added later simply joins its bucket.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub bucket: u32,
    pub buckets: u32,
}

impl Sample {
    pub const ALL: Sample = Sample {
        bucket: 0,
        buckets: 1,
    };

    /// The share of run `run` (counted from 0 per job) for `percent` in
    /// 1..=100: at least that share of files, every file within
    /// `floor(100 / percent)` runs.
    pub fn rotation(percent: u8, run: u64) -> Result<Self, String> {
        if percent == 0 || percent > 100 {
            return Err(format!(
                "--sample takes a percentage from 1 to 100, not {percent}"
            ));
        }
        let buckets = 100 / u32::from(percent);
        Ok(Sample {
            bucket: (run % u64::from(buckets)) as u32,
            buckets,
        })
    }

    pub fn is_all(&self) -> bool {
        self.buckets <= 1
    }

    /// Whether this run reads `path` (a listing path).
    pub fn covers(&self, path: &str) -> bool {
        if self.is_all() {
            return true;
        }
        let h = blake3::hash(path.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&h.as_bytes()[..8]);
        (u64::from_le_bytes(first) % u64::from(self.buckets)) as u32 == self.bucket
    }

    /// `3/10`: on a command line and in the serve request.
    pub fn word(&self) -> String {
        format!("{}/{}", self.bucket, self.buckets)
    }

    pub fn parse(word: &str) -> Result<Self, String> {
        let bad = || format!("`{word}` is not a sample (BUCKET/BUCKETS, like 3/10)");
        let (b, n) = word.split_once('/').ok_or_else(bad)?;
        let (bucket, buckets): (u32, u32) =
            (b.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        if buckets == 0 || buckets > 100 || bucket >= buckets {
            return Err(bad());
        }
        Ok(Sample { bucket, buckets })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn paths() -> Vec<String> {
        (0..2000)
            .map(|i| format!("dir{}/file{i}", i % 17))
            .collect()
    }

    #[rstest]
    #[case(100, 1)]
    #[case(50, 2)]
    #[case(34, 2)]
    #[case(30, 3)]
    #[case(25, 4)]
    #[case(10, 10)]
    #[case(1, 100)]
    fn every_file_is_read_within_n_runs_and_once_per_round(#[case] percent: u8, #[case] n: u64) {
        let paths = paths();
        let mut times = vec![0u32; paths.len()];
        // Any n consecutive runs, not only the first n.
        for run in 7..7 + n {
            let s = Sample::rotation(percent, run).unwrap();
            assert_eq!(u64::from(s.buckets), n);
            let mut read = 0;
            for (i, p) in paths.iter().enumerate() {
                if s.covers(p) {
                    times[i] += 1;
                    read += 1;
                }
            }
            // Each run reads roughly its share, never nothing (2000 paths).
            assert!(read > 0 || n > 50, "run {run} read nothing");
        }
        assert!(
            times.iter().all(|&t| t == 1),
            "within {n} runs every file is read exactly once"
        );
    }

    #[test]
    fn the_share_is_at_least_the_percentage_asked() {
        let paths = paths();
        for percent in [10u8, 25, 30, 50] {
            let s = Sample::rotation(percent, 0).unwrap();
            let read = paths.iter().filter(|p| s.covers(p)).count();
            // 1/buckets ≥ percent; hashing spreads paths within a few percent.
            let share = read as f64 / paths.len() as f64;
            assert!(
                share > f64::from(percent) / 100.0 * 0.85,
                "{percent}%: {share}"
            );
        }
    }

    #[test]
    fn words_round_trip_and_bad_ones_are_refused() {
        let s = Sample::rotation(10, 13).unwrap();
        assert_eq!(s.word(), "3/10");
        assert_eq!(Sample::parse("3/10").unwrap(), s);
        for bad in ["3", "10/10", "1/0", "a/b", "0/101"] {
            assert!(Sample::parse(bad).is_err(), "{bad}");
        }
        assert!(Sample::rotation(0, 0).is_err());
        assert!(Sample::rotation(101, 0).is_err());
        assert!(Sample::ALL.covers("anything"));
    }
}
