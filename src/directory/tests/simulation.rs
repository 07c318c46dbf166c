//! The fleet simulation over many seeds (see `sim/mod.rs` for what it checks). A failing
//! seed prints itself, its parameters and its last events; replay one with
//! `SIM_SEED=<n> cargo test -p sluice-directory --test simulation replay -- --nocapture`.

mod sim;

use sim::{Params, World};

/// Seeds every run covers (`SIM_SEEDS` asks for another count, for a longer hunt).
const SEEDS: u64 = 200;

fn run(seed: u64) -> Result<World, String> {
    let mut w = World::new(seed, Params::for_seed(seed));
    w.run()?;
    Ok(w)
}

#[test]
fn fleet_converges_after_faults_for_every_seed() {
    let mut worst = std::time::Duration::ZERO;
    let mut faults = std::collections::BTreeMap::new();
    let mut live_yields = 0;
    let seeds = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS);
    for seed in 0..seeds {
        match run(seed) {
            Ok(w) => {
                worst = worst.max(w.worst_conflict);
                live_yields += w.live_yields;
                for (kind, n) in w.faults {
                    *faults.entry(kind).or_insert(0) += n;
                }
            }
            Err(report) => panic!("{report}"),
        }
    }
    // The runs did meet conflicts and every kind of fault (a check that never sees one
    // checks nothing).
    assert!(worst > std::time::Duration::ZERO);
    assert_eq!(faults.len(), 10, "{faults:?}");
    println!(
        "longest conflict: {worst:?}; live tunnels yielded: {live_yields}; faults: {faults:?}"
    );
}

/// Replays the seed in `SIM_SEED` (does nothing without it).
#[test]
fn replay() {
    let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) else {
        return;
    };
    match run(seed) {
        Ok(w) => println!(
            "seed {seed} passes; longest conflict {:?}; faults {:?}",
            w.worst_conflict, w.faults
        ),
        Err(report) => panic!("{report}"),
    }
}
