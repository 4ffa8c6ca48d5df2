//! `zfleet-lab`: bring the test lab up and down by hand, for demos and debugging.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("no lab commands yet")
}
