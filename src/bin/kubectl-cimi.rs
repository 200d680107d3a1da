//! `kubectl-cimi`: the kubectl plugin (`kubectl cimi ...`); everything lives in [`cimi_operator::plugin`].

fn main() -> std::process::ExitCode {
    cimi_operator::plugin::main()
}
