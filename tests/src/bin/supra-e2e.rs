//! The `supra` command line, built inside this crate so that its end-to-end tests can run the real
//! broker as a separate process (cargo hands integration tests the path of their own package's
//! binaries only).
fn main() -> std::process::ExitCode {
    supra_broker::cli::main()
}
