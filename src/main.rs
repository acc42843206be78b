fn main() {
    std::process::exit(geomount::cli::main());
}
