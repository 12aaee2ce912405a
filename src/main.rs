fn main() {
    std::process::exit(aes67::cli::main());
}
