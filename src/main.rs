//! The `plinth` executable: everything happens in [`plinth::cli::run`].

/// Scripts and JSON allocate many small values per request; mimalloc's
/// thread-local heaps make that markedly cheaper than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    plinth::cli::run()
}
