fn main() -> std::process::ExitCode {
    supra_broker::cli::main()
}
