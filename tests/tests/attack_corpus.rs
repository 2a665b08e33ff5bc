//! The token attack corpus as a test binary: one libtest-mimic trial per case of
//! `hub_tests::attack_corpus`, so `cargo nextest run -p hub-tests --test attack_corpus`
//! lists and runs every forged token as its own named test.
//!
//! A process starts its rig (issuer, canary, gateway) when its first trial runs and stops
//! it, asserting a clean exit, after its last. Listing the trials starts nothing.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use hub_tests::attack_corpus::{Rig, cases};
use libtest_mimic::{Arguments, Failed, Trial};
use tokio::runtime::Runtime;
use tokio::sync::OnceCell;

fn main() -> ExitCode {
    let arguments = Arguments::from_args();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => Arc::new(runtime),
        Err(error) => {
            eprintln!("attack corpus: cannot build a tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let rig: Arc<OnceCell<Rig>> = Arc::new(OnceCell::new());
    let trials = cases()
        .into_iter()
        .map(|case| {
            let (runtime, rig) = (Arc::clone(&runtime), Arc::clone(&rig));
            Trial::test(case.name().to_owned(), move || {
                run(&runtime, &rig, &case).map_err(|error| Failed::from(format!("{error:#}")))
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&arguments, trials);
    // The trials (and their handles on the rig) are gone: stop the gateway if one started.
    let stopped = match Arc::into_inner(rig).and_then(OnceCell::into_inner) {
        Some(rig) => runtime.block_on(rig.stop()),
        None => Ok(()),
    };
    if let Err(error) = stopped {
        eprintln!("attack corpus: the gateway did not stop cleanly: {error:#}");
        return ExitCode::FAILURE;
    }
    conclusion.exit_code()
}

fn run(
    runtime: &Runtime,
    rig: &OnceCell<Rig>,
    case: &hub_tests::attack_corpus::Case,
) -> anyhow::Result<()> {
    runtime.block_on(async {
        let key_cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let rig = rig.get_or_try_init(|| Rig::start(key_cache)).await?;
        rig.run(case).await
    })
}
