//! The `aes67` command: argument parsing, status lines and the one Ctrl-C
//! handler, over the engine.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
