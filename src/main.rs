//! The `plinth` executable: everything happens in [`plinth::cli::run`].

fn main() -> std::process::ExitCode {
    plinth::cli::run()
}
